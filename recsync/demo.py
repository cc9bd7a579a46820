"""``recsync demo``: the whole sync on one machine, with nothing installed but Python.

It starts the Genesys Cloud emulator on loopback, an embedded Redis (fakeredis with
Lua, in process) unless ``--redis`` names a real one, the reference host with the
plugin loaded from its entry point, and in-process Dramatiq workers. Then it plays the
integration host: each recording the primary org creates is announced to the plugin
for every org, and the demo watches the records settle.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import attrs
import dramatiq
import httpx
import redis

from recsync import runtime as runtime_module
from recsync.actors.broker import install_broker, make_broker
from recsync.emulator import load_scenario
from recsync.hooks import Host
from recsync.manifest import Manifest, manifest_from_mapping
from recsync.runtime import Runtime
from recsync.store import State

log = logging.getLogger(__name__)

DEFAULT_TIME_SCALE = 0.2


@attrs.frozen
class OrgSummary:
    """Figures of one org at the end of a demo run."""

    org_id: str
    role: str
    records: int
    ready: int
    failed: int
    platform_calls: int
    timeouts_408: int
    lag_p50_s: float | None
    lag_p95_s: float | None
    retried: int
    """Records that took more than one fetch attempt."""
    fetch_errors: int
    """Fetch attempts that ended in an error response (5xx, invalid body, ...)."""
    breaker_opened: int
    """Times the org's circuit breaker opened."""
    batch_sweeps: int
    """Sweep passes run for the org (batch jobs, conversation calls or resuming
    records once the breaker closed)."""
    swept_ready: int
    """Records that a sweep settled as ready."""
    rate_limited_429: int
    """429s the platform sent this org, injected ones included."""
    injected_429: int
    """429s forced by the scenario's ``rate_limit`` faults."""


@attrs.frozen
class DemoSummary:
    """Summary that ``recsync demo`` prints at the end."""

    records: int
    ready: int
    failed: int
    pending: int
    platform_calls: int
    calls_per_record: float
    timeouts_408: int
    rate_limited_429: int
    """Every 429 the platform sent, injected ones included."""
    rate_limited_429_by_recsync: int
    """429s not forced by a scenario fault: recsync overspent a budget."""
    breaker_opened: int
    batch_sweeps: int
    propagation_to_ready_p50_s: float | None
    propagation_to_ready_p95_s: float | None
    elapsed_s: float
    time_scale: float
    realtime: bool
    orgs: tuple[OrgSummary, ...]

    @property
    def ok(self) -> bool:
        return self.records > 0 and self.ready == self.records


class EmulatorProcess:
    """The emulator in a child process, so it does not share the GIL with the workers.

    The demo reads the timeline, clock and statistics over the emulator's
    ``/_emulator/`` routes, as a user's own tooling would.
    """

    def __init__(self, scenario: str, *, time_scale: float) -> None:
        self.scenario = scenario
        self.time_scale = time_scale
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=self.base_url, timeout=10.0)

    def start(self, *, timeout_s: float = 20.0) -> EmulatorProcess:
        command = [
            sys.executable,
            "-m",
            "recsync.emulator",
            "--scenario",
            self.scenario,
            "--time-scale",
            repr(self.time_scale),
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = (
                    self.process.stderr.read().decode() if self.process.stderr else ""
                )
                raise RuntimeError(f"the emulator exited at start: {stderr.strip()}")
            try:
                self.http.get("/_emulator/clock").raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"the emulator did not respond on {self.base_url} within {timeout_s} s"
        )

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def now_s(self) -> float:
        """Return the emulator's clock in platform seconds."""
        return float(self.http.get("/_emulator/clock").json()["now_s"])

    def timeline(self) -> list[dict[str, Any]]:
        return list(self.http.get("/_emulator/timeline").json())

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/_emulator/stats").json())


def _credential_env(org_id: str, part: str) -> str:
    return f"RECSYNC_DEMO_{org_id.upper().replace('-', '_')}_{part}"


def demo_manifest(
    scenario: Any, *, base_url: str, time_scale: float, realtime: bool
) -> Manifest:
    """Build the manifest the demo's host loads: the scenario's orgs on the emulator."""
    orgs = []
    for org in scenario.orgs:
        orgs.append(
            {
                "id": org.id,
                "name": org.name,
                "region": org.region,
                "role": str(org.role),
                "base_url": base_url,
                "credentials": {
                    "client_id_env": _credential_env(org.id, "CLIENT_ID"),
                    "client_secret_env": _credential_env(org.id, "CLIENT_SECRET"),
                },
            }
        )
    data = {
        "version": 1,
        "time_scale": time_scale,
        "orgs": orgs,
        "flags": {"async_metadata_sync": True, "realtime": realtime},
    }
    return manifest_from_mapping(data, source="demo manifest")


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(share * 100) - 1]


class Demo:
    """One demo run; :meth:`run` returns the summary."""

    def __init__(
        self,
        *,
        scenario: str | None = None,
        time_scale: float = DEFAULT_TIME_SCALE,
        redis_url: str | None = None,
        realtime: bool = True,
        threads: int = 8,
        timeout_s: float | None = None,
        progress: Any = None,
    ) -> None:
        self.scenario_source = scenario or "default"
        self.scenario = load_scenario(self.scenario_source)
        self.time_scale = time_scale
        self.redis_url = redis_url
        self.realtime = realtime
        self.threads = threads
        self.timeout_s = timeout_s
        self.progress = progress
        self.emulator: Any = None
        self.worker: dramatiq.Worker | None = None

    def _redis(self) -> redis.Redis:
        if self.redis_url:
            return redis.Redis.from_url(self.redis_url)
        import fakeredis

        return fakeredis.FakeRedis(server=fakeredis.FakeServer())

    def run(self) -> DemoSummary:
        started = time.monotonic()
        self.emulator = EmulatorProcess(
            self.scenario_source, time_scale=self.time_scale
        )
        self.emulator.start()
        try:
            return self._run(started)
        finally:
            if self.worker is not None:
                self.worker.stop(timeout=5000)
            self.emulator.stop()

    def _run(self, started: float) -> DemoSummary:
        for org in self.scenario.orgs:
            os.environ[_credential_env(org.id, "CLIENT_ID")] = org.client_id
            os.environ[_credential_env(org.id, "CLIENT_SECRET")] = org.client_secret
        manifest = demo_manifest(
            self.scenario,
            base_url=self.emulator.base_url,
            time_scale=self.time_scale,
            realtime=self.realtime,
        )
        client = self._redis()
        runtime = Runtime(manifest, client)
        for org_config in manifest.orgs:
            runtime.store.purge_org(org_config.id)
        broker = make_broker(self.redis_url if self.redis_url else "stub://")
        install_broker(broker)
        runtime_module.install(runtime)
        from recsync.actors.tasks import attach_broker

        attach_broker(broker)

        if self.redis_url is not None:
            broker.flush_all()
        self.worker = dramatiq.Worker(
            broker, worker_threads=self.threads, worker_timeout=100
        )
        self.worker.start()

        host = Host()
        loaded = host.load_entry_points()
        if "recsync" not in loaded:
            from recsync.plugin import RecsyncPlugin

            host.register(RecsyncPlugin(runtime), name="recsync")
        host.start(manifest)

        timeline = self.emulator.timeline()
        feeder = threading.Thread(
            target=self._announce, args=(host, timeline, manifest), daemon=True
        )
        feeder.start()
        total = len(timeline)
        self._wait(runtime, manifest, total)
        feeder.join(timeout=1)
        summary = self._summarize(
            runtime, manifest, timeline, time.monotonic() - started
        )
        # Deactivating ends the subscribers' sessions before the emulator goes away.
        host.stop(manifest)
        return summary

    def _announce(self, host: Host, timeline: list[Any], manifest: Manifest) -> None:
        """Play the host: announce each recording to every org once the primary has it.

        The host learns of a recording from the primary org, so it announces it then.
        """
        primary = manifest.primary.id
        entries = [e for e in timeline if e["org"] == primary]
        # The emulator's clock started before ours; measure the offset once.
        offset_s = self.emulator.now_s() - time.monotonic() / self.time_scale
        for entry in sorted(entries, key=lambda e: e["visible_at_s"]):
            now_s = time.monotonic() / self.time_scale + offset_s
            wait_s = (entry["visible_at_s"] - now_s) * self.time_scale
            if wait_s > 0:
                time.sleep(wait_s)
            for org in manifest.orgs:
                host.recording_created(
                    org.id,
                    entry["conversation_id"],
                    entry["recording_id"],
                    entry["user_id"],
                )

    def _settled(self, runtime: Runtime, manifest: Manifest) -> int:
        settled = 0
        for org in manifest.orgs:
            counts = runtime.store.counts(org.id)
            settled += counts[str(State.READY)] + counts[str(State.FAILED)]
        return settled

    def _wait(self, runtime: Runtime, manifest: Manifest, total: int) -> None:
        horizon_s = (
            self.scenario.duration_s + runtime.backoff.deadline_s / self.time_scale
        )
        limit_s = self.timeout_s or max(60.0, horizon_s * self.time_scale * 1.5)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            settled = self._settled(runtime, manifest)
            if self.progress is not None:
                self.progress(settled, total)
            if settled >= total:
                return
            time.sleep(0.1)
        log.warning("demo: gave up waiting after %.0f s", limit_s)

    def _summarize(
        self,
        runtime: Runtime,
        manifest: Manifest,
        timeline: list[Any],
        elapsed_s: float,
    ) -> DemoSummary:
        wall_start = time.time() - self.emulator.now_s() * self.time_scale
        org_summaries = []
        all_lags: list[float] = []
        stats = self.emulator.stats()
        for org in manifest.orgs:
            entries = [e for e in timeline if e["org"] == org.id]
            lags = []
            retried = 0
            for entry in entries:
                record = runtime.store.get(org.id, entry["recording_id"])
                if record is not None and record.attempts > 1:
                    retried += 1
                if record is not None and record.ready_at is not None:
                    visible_wall = wall_start + entry["visible_at_s"] * self.time_scale
                    lags.append(
                        max(record.ready_at - visible_wall, 0.0) / self.time_scale
                    )
            all_lags.extend(lags)
            counts = runtime.store.counts(org.id)
            counters = runtime.store.counters(org.id)
            org_stats = stats.get(org.id, {})
            org_summaries.append(
                OrgSummary(
                    org_id=org.id,
                    role=str(org.role),
                    records=len(entries),
                    ready=counts[str(State.READY)],
                    failed=counts[str(State.FAILED)],
                    platform_calls=int(counters.get("platform_calls", 0)),
                    timeouts_408=int(org_stats.get("timeouts_408", 0)),
                    lag_p50_s=_percentile(lags, 0.5),
                    lag_p95_s=_percentile(lags, 0.95),
                    retried=retried,
                    fetch_errors=int(counters.get("fetch:error", 0)),
                    breaker_opened=int(counters.get("breaker:open", 0)),
                    batch_sweeps=int(counters.get("sweep:passes", 0)),
                    swept_ready=int(counters.get("sweep:ready", 0)),
                    rate_limited_429=int(org_stats.get("rate_limited_429", 0)),
                    injected_429=int(org_stats.get("injected_429", 0)),
                )
            )
        records = sum(o.records for o in org_summaries)
        ready = sum(o.ready for o in org_summaries)
        failed = sum(o.failed for o in org_summaries)
        calls = sum(o.platform_calls for o in org_summaries)
        return DemoSummary(
            records=records,
            ready=ready,
            failed=failed,
            pending=records - ready - failed,
            platform_calls=calls,
            calls_per_record=calls / records if records else 0.0,
            timeouts_408=sum(o.timeouts_408 for o in org_summaries),
            rate_limited_429=sum(o.rate_limited_429 for o in org_summaries),
            rate_limited_429_by_recsync=sum(
                max(o.rate_limited_429 - o.injected_429, 0) for o in org_summaries
            ),
            breaker_opened=sum(o.breaker_opened for o in org_summaries),
            batch_sweeps=sum(o.batch_sweeps for o in org_summaries),
            propagation_to_ready_p50_s=_percentile(all_lags, 0.5),
            propagation_to_ready_p95_s=_percentile(all_lags, 0.95),
            elapsed_s=elapsed_s,
            time_scale=self.time_scale,
            realtime=self.realtime,
            orgs=tuple(org_summaries),
        )
