// recsync status page: reads the token from the URL fragment (#token=...&org=...),
// sends it as a bearer header, and follows the org's change feed with a fetch-based
// server-sent events reader, so the token never appears in a URL sent to the server.
// Every value from the server is set with textContent and is never parsed as HTML.
"use strict";

const STATES = ["pending", "fetching", "async-pending", "batch-pending", "ready",
  "failed"];
const PAGE_LIMIT = 200;
const OVERVIEW_INTERVAL_MS = 10000;
const OVERVIEW_MIN_GAP_MS = 1000;
const RECONNECT_MAX_MS = 10000;

const params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
const token = params.get("token") || "";
let orgId = params.get("org") || "";
let lastEventId = null;
let overviewTimer = null;
let lastOverviewAt = 0;

const rows = new Map();

function $(id) {
  return document.getElementById(id);
}

function setStatus(text, isError) {
  const line = $("status-line");
  line.textContent = text;
  line.className = isError ? "error" : "";
}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  });
  if (!response.ok) {
    let message = response.status + " " + response.statusText;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) {
      // The body is not JSON; the status line is enough.
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

function formatTime(epochSeconds) {
  if (epochSeconds === null || epochSeconds === undefined) return "–";
  return new Date(epochSeconds * 1000).toLocaleTimeString();
}

function orgPath(suffix) {
  return "/orgs/" + encodeURIComponent(orgId) + suffix;
}

function rowFor(recordingId) {
  let row = rows.get(recordingId);
  if (row) return row;
  row = document.createElement("tr");
  row.dataset.recordingId = recordingId;
  for (const name of ["id", "name", "state", "attempts", "next", "error"]) {
    const cell = document.createElement("td");
    cell.className = name;
    row.appendChild(cell);
  }
  row.querySelector("td.id").textContent = recordingId;
  rows.set(recordingId, row);
  $("recordings").appendChild(row);
  return row;
}

function showRecord(record) {
  const row = rowFor(record.recording_id);
  row.dataset.state = record.state;
  const metadata = record.metadata || {};
  const name = typeof metadata.name === "string" ? metadata.name : "";
  if (name || record.metadata) row.querySelector("td.name").textContent = name;
  row.querySelector("td.state").textContent = record.state;
  row.querySelector("td.attempts").textContent = String(record.attempts);
  row.querySelector("td.next").textContent = formatTime(record.next_attempt_at);
  if ("last_error" in record) {
    row.querySelector("td.error").textContent = record.last_error || "";
  }
}

function showChange(change) {
  const row = rowFor(change.recording_id);
  row.dataset.state = change.state;
  row.querySelector("td.state").textContent = change.state;
  row.querySelector("td.attempts").textContent = String(change.attempts);
  row.querySelector("td.next").textContent = formatTime(change.next_attempt_at);
  if (change.state === "ready" || change.state === "failed") {
    // A settled record has metadata or an error that the change does not carry.
    api(orgPath("/recordings/" + encodeURIComponent(change.recording_id)))
      .then(showRecord)
      .catch((error) => setStatus("Could not load a recording: " + error.message,
        true));
  }
}

function showOverview(overview) {
  const realtime = overview.realtime;
  $("realtime-state").textContent = realtime.state;
  $("realtime-seen").textContent = formatTime(realtime.seen_at);
  $("realtime-topics").textContent =
    realtime.topics === null ? "–" : String(realtime.topics);
  $("budget-state").textContent = overview.paused
    ? "paused until " + formatTime(overview.paused_until)
    : "open";
  $("due-count").textContent = String(overview.due_count);
  $("queue-lag").textContent = overview.queue_lag_s.toFixed(1) + " s";
  const breakers = Object.entries(overview.breakers);
  $("breakers").textContent = breakers.length
    ? breakers.map(([endpoint, state]) => endpoint + ": " + state).join(", ")
    : "none recorded";
  $("counts").textContent = Object.entries(overview.counts)
    .map(([state, count]) => state + " " + count)
    .join(", ");
}

async function refreshOverview() {
  lastOverviewAt = Date.now();
  try {
    showOverview(await api(orgPath("/overview")));
  } catch (error) {
    setStatus("Could not load the overview: " + error.message, true);
  }
}

function scheduleOverview() {
  if (overviewTimer !== null) return;
  const wait = Math.max(0, OVERVIEW_MIN_GAP_MS - (Date.now() - lastOverviewAt));
  overviewTimer = setTimeout(() => {
    overviewTimer = null;
    refreshOverview();
  }, wait);
}

async function loadRecordings() {
  for (const state of STATES) {
    const query = "?state=" + encodeURIComponent(state) + "&limit=" + PAGE_LIMIT;
    const page = await api(orgPath("/recordings" + query));
    page.items.forEach(showRecord);
  }
}

function handleEvent(block) {
  let id = null;
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (id !== null) lastEventId = id;
  if (event === "change" && data.length) {
    showChange(JSON.parse(data.join("\n")));
    scheduleOverview();
  }
}

async function followChanges() {
  let delay = 500;
  for (;;) {
    try {
      const headers = { Authorization: "Bearer " + token };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch(orgPath("/changes"), { headers, cache: "no-store" });
      if (!response.ok) throw new Error("change feed returned " + response.status);
      setStatus("Live: following changes of org " + orgId, false);
      delay = 500;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) !== -1) {
          handleEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      setStatus("Change feed interrupted (" + error.message + "); reconnecting", true);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}

async function main() {
  if (!token) {
    setStatus("No token: open this page as /#token=<status token>", true);
    return;
  }
  try {
    if (!orgId) orgId = (await api("/whoami")).org_id;
    $("org-name").textContent = "· " + orgId;
    // Taking the newest change id before listing means the feed replays every
    // change made while the list loads, so no transition is missed.
    const overview = await api(orgPath("/overview"));
    lastEventId = overview.last_change_id;
    showOverview(overview);
    await loadRecordings();
  } catch (error) {
    setStatus("Could not load the status: " + error.message, true);
    return;
  }
  setInterval(refreshOverview, OVERVIEW_INTERVAL_MS);
  followChanges();
}

main();
