"""The emulator's REST surface over loopback HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from recsync.emulator import EmulatorServer, load_scenario

TIME_SCALE = 0.01
SLOW_DELAY_S = 25.0


def orgs() -> list[dict[str, Any]]:
    def org(org_id: str, role: str, delay_s: float, **extra: Any) -> dict[str, Any]:
        return {
            "id": org_id,
            "role": role,
            "region": "eu-west-1",
            "client_id": f"{org_id}-client",
            "client_secret": f"{org_id}-secret",
            "propagation": {"distribution": "fixed", "value_s": delay_s},
            **extra,
        }

    return [
        org("org-primary", "primary", 0),
        org("org-slow", "satellite", SLOW_DELAY_S),
        org("org-never", "satellite", 1_000_000),
    ]


def scenario(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 21,
        # One conversation every 1.5 platform seconds for 30 wall seconds.
        "conversations": 2000,
        "duration_s": 3000,
        "screen_ratio": 0.5,
        "users": 6,
        "batch_completion_s": 30,
        "orgs": orgs(),
    }
    raw.update(overrides)
    return raw


Factory = Callable[..., EmulatorServer]


@pytest.fixture
def start_server() -> Iterator[Factory]:
    servers: list[EmulatorServer] = []

    def start(
        raw: dict[str, Any] | None = None, *, time_scale: float = TIME_SCALE
    ) -> EmulatorServer:
        # A short scenario starts faster; these servers live for one test only.
        raw = raw or scenario(conversations=300, duration_s=450)
        server = EmulatorServer(load_scenario(raw), time_scale=time_scale)
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    """A server shared by the tests that change no state other tests read."""
    with EmulatorServer(load_scenario(scenario()), time_scale=TIME_SCALE) as shared:
        yield shared


@pytest.fixture
def fresh(start_server: Factory) -> EmulatorServer:
    """A server of its own for a test that adds faults or reads exact counters."""
    return start_server()


def client(server: EmulatorServer, org_id: str) -> httpx.Client:
    org = server.scenario.org(org_id)
    http = httpx.Client(base_url=server.base_url, timeout=30)
    answer = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(org.client_id, org.client_secret),
    )
    answer.raise_for_status()
    http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return http


def wait_until_platform(server: EmulatorServer, at_s: float) -> None:
    deadline = time.monotonic() + 30
    while server.world.now() < at_s and time.monotonic() < deadline:
        time.sleep(0.005)


def created_recording(server: EmulatorServer, *, pending_for_s: float = 0.0) -> Any:
    """Return a recording already created that is visible in org-slow later."""
    now_s = server.world.now()
    for recording in sorted(
        server.world.plan.recordings, key=lambda r: -r.created_at_s
    ):
        visible_s = server.world.visible_at("org-slow", recording.id)
        if recording.created_at_s <= now_s and visible_s > now_s + pending_for_s:
            return recording
    raise AssertionError("no created, still pending recording in the plan")


def wait_for_created(server: EmulatorServer, count: int = 5) -> None:
    times = sorted(r.created_at_s for r in server.world.plan.recordings)
    wait_until_platform(server, times[count])


def metadata_path(recording: Any, *, single: bool = False) -> str:
    path = f"/api/v2/conversations/{recording.conversation_id}/recordingmetadata"
    return f"{path}/{recording.id}" if single else path


def test_oauth_issues_bearer_token(server: EmulatorServer) -> None:
    answer = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("org-slow-client", "org-slow-secret"),
    )
    document = answer.json()
    assert answer.status_code == 200
    assert document["token_type"] == "bearer"
    assert document["expires_in"] == 86400
    assert len(document["access_token"]) >= 32


def test_oauth_login_path_alias(server: EmulatorServer) -> None:
    answer = httpx.post(
        f"{server.base_url}/login/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("org-slow-client", "org-slow-secret"),
    )
    assert answer.status_code == 200


def test_oauth_bad_credentials(server: EmulatorServer) -> None:
    answer = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("org-slow-client", "wrong"),
    )
    document = answer.json()
    assert answer.status_code == 401
    assert document["code"] == "bad.credentials"
    assert document["error"] == "invalid_client"


def test_oauth_wrong_grant_type(server: EmulatorServer) -> None:
    answer = httpx.post(
        f"{server.base_url}/oauth/token",
        data={"grant_type": "password"},
        auth=("org-slow-client", "org-slow-secret"),
    )
    assert answer.status_code == 400


def test_missing_token_rejected(server: EmulatorServer) -> None:
    answer = httpx.get(f"{server.base_url}/api/v2/users")
    document = answer.json()
    assert answer.status_code == 401
    assert document["code"] == "bad.credentials"
    assert document["limit"] is None
    assert answer.headers["inin-correlation-id"] == document["contextId"]
    assert answer.headers["inin-ratelimit-allowed"] == "300"


def test_unknown_token_rejected(server: EmulatorServer) -> None:
    answer = httpx.get(
        f"{server.base_url}/api/v2/users", headers={"Authorization": "Bearer nope"}
    )
    assert answer.json()["code"] == "bad.credentials"


def test_token_expiry(start_server: Factory) -> None:
    raw = scenario(conversations=300, duration_s=450)
    raw["orgs"][0]["token_lifetime_s"] = 300
    server = start_server(raw, time_scale=0.002)
    http = client(server, "org-primary")
    wait_until_platform(server, server.world.now() + 301)
    answer = http.get("/api/v2/users")
    assert answer.status_code == 401
    assert answer.json()["code"] == "credentials.expired"


def test_error_body_shape(server: EmulatorServer) -> None:
    http = client(server, "org-primary")
    answer = http.get("/api/v2/conversations/unknown/recordingmetadata")
    document = answer.json()
    assert answer.status_code == 404
    assert set(document) >= {
        "message",
        "code",
        "status",
        "contextId",
        "details",
        "errors",
        "messageWithParams",
        "messageParams",
        "entityId",
        "entityName",
    }
    assert document["code"] == "not.found"
    assert answer.headers["inin-correlation-id"] == document["contextId"]


def test_rate_limit_headers_on_success(server: EmulatorServer) -> None:
    answer = client(server, "org-primary").get("/api/v2/users")
    assert answer.headers["inin-ratelimit-allowed"] == "300"
    assert int(answer.headers["inin-ratelimit-count"]) >= 1
    assert 1 <= int(answer.headers["inin-ratelimit-reset"]) <= 60
    assert answer.headers["inin-correlation-id"]


def test_unknown_recording_404(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    path = f"/api/v2/conversations/{recording.conversation_id}/recordingmetadata/nope"
    answer = client(server, "org-primary").get(path)
    assert answer.status_code == 404


def test_not_yet_created_404(server: EmulatorServer) -> None:
    latest = max(server.world.plan.recordings, key=lambda r: r.created_at_s)
    answer = client(server, "org-primary").get(metadata_path(latest, single=True))
    assert answer.status_code == 404


def test_primary_list_200(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-primary").get(metadata_path(recording))
    documents = answer.json()
    assert answer.status_code == 200
    assert recording.id in [document["id"] for document in documents]


def test_metadata_fields(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    document = (
        client(server, "org-primary").get(metadata_path(recording, single=True)).json()
    )
    assert document["fileState"] == "AVAILABLE"
    assert document["conversationId"] == recording.conversation_id
    assert document["media"] in ("audio", "screen")
    assert document["mediaSubtype"] in ("Trunk", "Screen")
    assert document["region"] == "eu-west-1"
    assert document["startTime"].endswith("Z")
    assert document["selfUri"] == metadata_path(recording, single=True)
    assert document["annotations"][0]["name"] == "Hold"


def test_hold_annotation_id_fresh(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    http = client(server, "org-primary")
    first = http.get(metadata_path(recording, single=True)).json()
    second = http.get(metadata_path(recording, single=True)).json()
    assert first["annotations"][0]["id"] != second["annotations"][0]["id"]


def test_non_blocking_202_empty(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-never").get(
        metadata_path(recording, single=True), params={"maxWaitMs": 0}
    )
    assert answer.status_code == 202
    assert answer.content == b""


def test_non_blocking_list_202_empty(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-never").get(
        metadata_path(recording), params={"maxWaitMs": 0}
    )
    assert answer.status_code == 202
    assert answer.content == b""


def test_interactions_alias_async(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-never").get(
        "/api/v2/interactions/recordings",
        params={
            "conversationId": recording.conversation_id,
            "recordingId": recording.id,
            "async": "true",
        },
    )
    assert answer.status_code == 202
    assert answer.content == b""


def test_interactions_alias_200(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-primary").get(
        "/api/v2/interactions/recordings",
        params={"conversationId": recording.conversation_id, "async": "true"},
    )
    assert answer.status_code == 200
    assert isinstance(answer.json(), list)


def test_blocking_hold_ends_408(fresh: EmulatorServer) -> None:
    wait_for_created(fresh)
    recording = created_recording(fresh)
    answer = client(fresh, "org-never").get(metadata_path(recording, single=True))
    document = answer.json()
    assert answer.status_code == 408
    assert document["code"] == "client.timeout"
    assert document["message"] == "A request timed out"
    stats = fresh.stats()["org-never"]
    assert stats["timeouts_408"] == 1
    assert stats["held_s"] >= 29.9


def test_blocking_hold_200_on_visibility(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server, pending_for_s=2.0)
    visible_s = server.world.visible_at("org-slow", recording.id)
    answer = client(server, "org-slow").get(metadata_path(recording, single=True))
    assert answer.status_code == 200
    assert answer.json()["id"] == recording.id
    assert server.world.now() >= visible_s


def test_short_max_wait_202(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-never").get(
        metadata_path(recording, single=True), params={"maxWaitMs": 2000}
    )
    assert answer.status_code == 202


def test_invalid_max_wait_400(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    answer = client(server, "org-never").get(
        metadata_path(recording), params={"maxWaitMs": "soon"}
    )
    assert answer.status_code == 400


def test_recordings_list_202_while_transcoding(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    path = f"/api/v2/conversations/{recording.conversation_id}/recordings"
    answer = client(server, "org-never").get(path, params={"maxWaitMs": 0})
    assert answer.status_code == 202
    assert answer.content == b""


def test_recordings_list_200(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    path = f"/api/v2/conversations/{recording.conversation_id}/recordings"
    documents = client(server, "org-primary").get(path).json()
    found = next(d for d in documents if d["id"] == recording.id)
    assert found["fileState"] == "AVAILABLE"
    assert found["mediaUris"]["S"]["mediaUri"].startswith(server.base_url)


def test_recording_single_202_body(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    path = (
        f"/api/v2/conversations/{recording.conversation_id}/recordings/{recording.id}"
    )
    answer = client(server, "org-never").get(path)
    assert answer.status_code == 202
    assert answer.json()["fileState"] == "UPLOADING"


def test_batch_job_lifecycle(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    http = client(server, "org-primary")
    body = {"batchDownloadRequestList": [{"conversationId": recording.conversation_id}]}
    submitted = http.post("/api/v2/recording/batchrequests", json=body).json()
    path = f"/api/v2/recording/batchrequests/{submitted['id']}"
    assert submitted["selfUri"] == path
    assert http.get(path).json()["status"] == "InProgress"
    wait_until_platform(server, server.world.now() + 31)
    done = http.get(path).json()
    assert done["status"] == "Completed"
    assert done["jobId"] == submitted["id"]
    assert done["resultCount"] == done["expectedResultCount"]
    assert recording.id in [result["recordingId"] for result in done["results"]]
    assert all(result["resultUrl"] for result in done["results"])


def test_batch_invisible_results_error(server: EmulatorServer) -> None:
    wait_for_created(server)
    recording = created_recording(server)
    http = client(server, "org-never")
    body = {"batchDownloadRequestList": [{"conversationId": recording.conversation_id}]}
    job_id = http.post("/api/v2/recording/batchrequests", json=body).json()["id"]
    wait_until_platform(server, server.world.now() + 31)
    done = http.get(f"/api/v2/recording/batchrequests/{job_id}").json()
    assert done["errorCount"] == done["resultCount"]
    assert all("errorMsg" in result for result in done["results"])


def test_batch_other_client_404(server: EmulatorServer) -> None:
    body = {"batchDownloadRequestList": [{"conversationId": "c"}]}
    job_id = (
        client(server, "org-primary")
        .post("/api/v2/recording/batchrequests", json=body)
        .json()["id"]
    )
    answer = client(server, "org-slow").get(f"/api/v2/recording/batchrequests/{job_id}")
    assert answer.status_code == 404


def test_batch_over_100_items_400(server: EmulatorServer) -> None:
    items = [{"conversationId": f"c{i}"} for i in range(101)]
    answer = client(server, "org-primary").post(
        "/api/v2/recording/batchrequests", json={"batchDownloadRequestList": items}
    )
    assert answer.status_code == 400
    assert "maximum is 100" in answer.json()["message"]


def test_screen_sessions_count(server: EmulatorServer) -> None:
    document = (
        client(server, "org-primary")
        .get("/api/v2/recordings/screensessions/details")
        .json()
    )
    assert isinstance(document["count"], int)


def test_limits_document(server: EmulatorServer) -> None:
    document = (
        client(server, "org-primary")
        .get("/api/v2/organizations/limits/namespaces/platform.api")
        .json()
    )
    values = {entity["key"]: entity["value"] for entity in document["entities"]}
    assert values["client.credentials.token.rate.per.minute"] == 300


def test_users_paged(server: EmulatorServer) -> None:
    document = (
        client(server, "org-primary")
        .get("/api/v2/users", params={"pageSize": 4, "pageNumber": 2})
        .json()
    )
    assert document["total"] == 6
    assert document["pageCount"] == 2
    assert len(document["entities"]) == 2


def test_available_topics(server: EmulatorServer) -> None:
    document = (
        client(server, "org-primary")
        .get("/api/v2/notifications/availabletopics")
        .json()
    )
    ids = {entity["id"] for entity in document["entities"]}
    assert "v2.users.{id}.conversations.{id}.recordings" in ids
    assert all("requiresCurrentUser" in entity for entity in document["entities"])


def test_unknown_route_error_body(server: EmulatorServer) -> None:
    answer = httpx.get(f"{server.base_url}/api/v2/nothing-here")
    assert answer.status_code == 404
    assert answer.json()["code"] == "not.found"


def test_rate_limit_429_retry_after(start_server: Factory) -> None:
    raw = scenario(conversations=300, duration_s=450)
    raw["orgs"][0]["rate_limit_per_minute"] = 5
    server = start_server(raw, time_scale=0.05)
    http = client(server, "org-primary")
    statuses = []
    answer = None
    for _ in range(20):
        answer = http.get("/api/v2/users")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            break
    assert answer is not None
    assert 429 in statuses
    assert answer.json()["code"] == "too.many.requests.retry.after"
    assert answer.json()["limit"] == 5
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    assert server.stats()["org-primary"]["rate_limited_429"] == 1


def add_fault(server: EmulatorServer, fault: dict[str, Any]) -> None:
    answer = httpx.post(f"{server.base_url}/_emulator/faults", json=fault)
    assert answer.status_code == 201, answer.text


def test_rate_limit_fault(fresh: EmulatorServer) -> None:
    add_fault(fresh, {"org": "org-slow", "kind": "rate_limit", "retry_after_s": 58})
    answer = client(fresh, "org-slow").get("/api/v2/users")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "58"


def test_server_error_fault(fresh: EmulatorServer) -> None:
    add_fault(fresh, {"org": "org-slow", "kind": "server_error", "status": 503})
    answer = client(fresh, "org-slow").get("/api/v2/users")
    assert answer.status_code == 503
    assert answer.json()["code"] == "service.unavailable"


def test_timeout_fault(fresh: EmulatorServer) -> None:
    add_fault(fresh, {"org": "org-slow", "kind": "timeout_ratio", "ratio": 1.0})
    answer = client(fresh, "org-slow").get("/api/v2/users")
    assert answer.status_code == 408


def test_slow_fault_counts_hold(fresh: EmulatorServer) -> None:
    add_fault(fresh, {"org": "org-slow", "kind": "slow", "delay_ms": 2000, "ratio": 1})
    answer = client(fresh, "org-slow").get("/api/v2/users")
    assert answer.status_code == 200
    assert fresh.stats()["org-slow"]["held_s"] >= 2.0


def test_fault_limited_to_window(fresh: EmulatorServer) -> None:
    now_s = fresh.world.now()
    add_fault(
        fresh,
        {
            "org": "org-slow",
            "kind": "server_error",
            "start_s": now_s + 500,
            "end_s": now_s + 501,
        },
    )
    assert client(fresh, "org-slow").get("/api/v2/users").status_code == 200


def test_invalid_fault_rejected(server: EmulatorServer) -> None:
    answer = httpx.post(
        f"{server.base_url}/_emulator/faults", json={"org": "org-x", "kind": "slow"}
    )
    assert answer.status_code == 400
    assert "org-x" in answer.json()["message"]


@pytest.mark.parametrize(
    "body",
    ["html", "not_json", "wrong_types", "missing_fields", "unknown_enum", "oversized"],
)
def test_invalid_body_fault(fresh: EmulatorServer, body: str) -> None:
    add_fault(
        fresh, {"org": "org-slow", "kind": "invalid_body", "body": body, "ratio": 1}
    )
    answer = client(fresh, "org-slow").get("/api/v2/users")
    assert answer.status_code == 200
    if body == "html":
        assert answer.headers["content-type"].startswith("text/html")
    elif body == "not_json":
        with pytest.raises(ValueError):
            answer.json()
    elif body == "oversized":
        assert len(answer.content) > 1_000_000
    elif body == "missing_fields":
        assert "entities" not in answer.json()
    elif body == "wrong_types":
        assert answer.json()["pageSize"] == "25"
    else:
        assert answer.json() == answer.json()


def test_timeline_endpoint(server: EmulatorServer) -> None:
    timeline = httpx.get(f"{server.base_url}/_emulator/timeline").json()
    assert len(timeline) == 3 * len(server.world.plan.recordings)
    entry = next(e for e in timeline if e["org"] == "org-slow")
    assert entry["visible_at_s"] == pytest.approx(entry["created_at_s"] + SLOW_DELAY_S)


def test_clock_endpoint(server: EmulatorServer) -> None:
    document = httpx.get(f"{server.base_url}/_emulator/clock").json()
    assert document["time_scale"] == TIME_SCALE
    assert document["now_s"] > 0


def test_stats_count_routes(fresh: EmulatorServer) -> None:
    client(fresh, "org-primary").get("/api/v2/users")
    stats = httpx.get(f"{fresh.base_url}/_emulator/stats").json()
    assert stats["org-primary"]["requests"]["GET /api/v2/users"] == {"200": 1}


def test_non_loopback_bind_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(load_scenario(scenario()), host="0.0.0.0")
