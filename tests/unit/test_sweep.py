"""Fetch under an open breaker, the batch sweep and its scheduling.

The platform is a fake behind ``httpx.MockTransport``, so the real client, budget,
token provider and breaker run unchanged on fakeredis.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import redis

from recsync import runtime as runtime_module
from recsync.actors.fetch import fetch_record
from recsync.actors.periodic import run_due_jobs
from recsync.actors.sweep import SweepJob, choose_mode, lock_key, sweep_org
from recsync.manifest import manifest_from_mapping
from recsync.resilience.breaker import BreakerState
from recsync.runtime import Runtime
from recsync.store import State, keys

ORG = "org-a"
ENV = {"A_ID": "client-a", "A_SECRET": "secret-a"}
METADATA = re.compile(r"^/api/v2/conversations/([^/]+)/recordingmetadata(?:/([^/]+))?$")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class FakePlatform:
    """Recording metadata and batch jobs for one org; counts every request."""

    def __init__(self) -> None:
        self.recordings: dict[str, list[str]] = {}
        self.unavailable: set[str] = set()
        self.metadata_status = 200
        self.job_done = False
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 86400})
        self.requests.append(f"{request.method} {path}")
        match = METADATA.match(path)
        if match:
            return self._metadata(match.group(1), match.group(2))
        if path == "/api/v2/recording/batchrequests":
            self.submitted = json.loads(request.content)["batchDownloadRequestList"]
            return httpx.Response(200, json={"id": "job-1"})
        if path == "/api/v2/recording/batchrequests/job-1":
            return httpx.Response(200, json=self._job())
        return httpx.Response(404, json={"code": "not.found"})

    def _metadata(self, cid: str, rid: str | None) -> httpx.Response:
        if self.metadata_status != 200:
            return httpx.Response(self.metadata_status, json={})
        bodies = [
            {"id": r, "conversationId": cid, "fileState": "AVAILABLE"}
            for r in self.recordings.get(cid, [])
        ]
        if rid is None:
            return httpx.Response(200, json=bodies)
        return httpx.Response(200, json=next(b for b in bodies if b["id"] == rid))

    def _job(self) -> dict[str, Any]:
        if not self.job_done:
            return {"id": "job-1", "status": "InProgress", "results": []}
        results = []
        for item in self.submitted:
            cid = item["conversationId"]
            result = {"conversationId": cid, "recordingId": item["recordingId"]}
            if cid in self.unavailable:
                result["errorMsg"] = "not available"
            else:
                result["resultUrl"] = "https://example.invalid/x"
            results.append(result)
        return {"id": "job-1", "status": "Completed", "results": results}

    def count(self, prefix: str) -> int:
        return sum(1 for r in self.requests if r.startswith(prefix))


class RecordingDispatcher:
    """Stores the messages the logic sends instead of sending them."""

    def __init__(self) -> None:
        self.fetches: list[tuple[str, str, str]] = []
        self.sweeps: list[str] = []
        self.polls: list[SweepJob] = []

    def fetch(
        self,
        org_id: str,
        recording_id: str,
        *,
        reason: str,
        expected_attempts: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.fetches.append((org_id, recording_id, reason))

    def subscribe(self, org_id: str, *, delay_s: float = 0.0) -> None:
        pass

    def reconcile(self, org_id: str) -> None:
        pass

    def sweep(self, org_id: str) -> None:
        self.sweeps.append(org_id)

    def poll_sweep(self, org_id: str, job: SweepJob, *, delay_s: float) -> None:
        self.polls.append(job)


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def runtime(
    fake_redis: redis.Redis, platform: FakePlatform, clock: FakeClock
) -> Runtime:
    manifest = manifest_from_mapping(
        {
            "version": 1,
            "orgs": [
                {
                    "id": ORG,
                    "region": "us-east-1",
                    "role": "primary",
                    "base_url": "http://127.0.0.1:9",
                    "credentials": {
                        "client_id_env": "A_ID",
                        "client_secret_env": "A_SECRET",
                    },
                }
            ],
            "flags": {"realtime": False},
            "policies": {
                "breaker": {"min_calls": 4, "window_s": 60, "open_s": 30},
                "batch": {"interval_s": 10, "max_items": 100, "job_poll_s": 2},
            },
        }
    )
    built = Runtime(
        manifest,
        fake_redis,
        environ=ENV,
        clock=clock,
        transport=httpx.MockTransport(platform.handle),
    )
    fake_redis.hset(keys.org_active(ORG), "active", "1")
    return built


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


def track(runtime: Runtime, platform: FakePlatform, cid: str, rid: str) -> None:
    platform.recordings.setdefault(cid, []).append(rid)
    runtime.store.track(ORG, cid, rid, deadline_s=3600.0)


def open_breaker(runtime: Runtime) -> None:
    breaker = runtime.breaker(ORG)
    for _ in range(runtime.policies.breaker.min_calls):
        breaker.record(failure=True, slow=False)
    assert breaker.state() is BreakerState.OPEN


def batch_pending(runtime: Runtime, cid: str, rid: str) -> None:
    runtime.store.track(ORG, cid, rid, deadline_s=3600.0)
    claim = runtime.store.claim(ORG, rid, token="t", lease_s=30.0, force=True)
    assert claim.claimed
    runtime.store.defer(
        ORG,
        rid,
        token="t",
        next_attempt_at=runtime.clock(),
        error="breaker open",
        state=State.BATCH_PENDING,
    )


def state_of(runtime: Runtime, rid: str) -> State:
    record = runtime.store.get(ORG, rid)
    assert record is not None
    return record.state


def test_observe_timeouts_open_breaker(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    platform.metadata_status = 408
    for index in range(4):
        track(runtime, platform, f"c{index}", f"r{index}")
        fetch_record(runtime, dispatcher, ORG, f"r{index}", reason="event")
    assert runtime.breaker(ORG).state() is BreakerState.OPEN


def test_observe_429_keeps_breaker_closed(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    platform.metadata_status = 429
    for index in range(6):
        track(runtime, platform, f"c{index}", f"r{index}")
        fetch_record(runtime, dispatcher, ORG, f"r{index}", reason="event")
    assert runtime.breaker(ORG).state() is BreakerState.CLOSED


def test_fetch_open_breaker_skips_platform(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    track(runtime, platform, "c1", "r1")
    outcome = fetch_record(runtime, dispatcher, ORG, "r1", reason="event")
    assert outcome == "batch-pending"
    assert platform.count("GET /api/v2/conversations") == 0
    assert state_of(runtime, "r1") is State.BATCH_PENDING


def test_fetch_open_breaker_sends_sweep(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    track(runtime, platform, "c1", "r1")
    track(runtime, platform, "c2", "r2")
    fetch_record(runtime, dispatcher, ORG, "r1", reason="event")
    fetch_record(runtime, dispatcher, ORG, "r2", reason="event")
    assert dispatcher.fetches == []
    assert dispatcher.sweeps == [ORG]


def test_fetch_open_breaker_due_at_next_sweep(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    track(runtime, platform, "c1", "r1")
    track(runtime, platform, "c2", "r2")
    fetch_record(runtime, dispatcher, ORG, "r1", reason="event")
    fetch_record(runtime, dispatcher, ORG, "r2", reason="event")
    record = runtime.store.get(ORG, "r2")
    assert record is not None
    assert record.next_attempt_at == pytest.approx(runtime.clock() + 10.0, abs=0.01)


@pytest.mark.parametrize(
    ("conversations", "jobs", "share", "expected"),
    [
        (1, 1, 0.5, "conversations"),
        (3, 1, 0.0, "conversations"),
        (4, 1, 0.0, "batch"),
        (10, 1, 0.5, "batch"),
        (10, 1, 1.0, "conversations"),
        (100, 1, 0.9, "batch"),
    ],
)
def test_choose_mode_cost(
    conversations: int, jobs: int, share: float, expected: str
) -> None:
    mode = choose_mode(conversations=conversations, jobs=jobs, available_share=share)
    assert mode == expected


def test_sweep_conversation_call_settles_all(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    platform.recordings["c1"] = ["r1", "r2"]
    batch_pending(runtime, "c1", "r1")
    batch_pending(runtime, "c1", "r2")
    assert sweep_org(runtime, dispatcher, ORG) == "conversations"
    assert state_of(runtime, "r1") is State.READY
    assert state_of(runtime, "r2") is State.READY
    assert platform.count("GET /api/v2/conversations/c1/recordingmetadata") == 1


def test_sweep_batch_job_settles_available(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    for index in range(10):
        platform.recordings[f"c{index}"] = [f"r{index}"]
        batch_pending(runtime, f"c{index}", f"r{index}")
    platform.unavailable = {"c0", "c1"}

    assert sweep_org(runtime, dispatcher, ORG) == "polling"
    assert platform.count("POST /api/v2/recording/batchrequests") == 1
    assert sweep_org(runtime, dispatcher, ORG, job=dispatcher.polls[-1]) == "polling"
    platform.job_done = True
    assert sweep_org(runtime, dispatcher, ORG, job=dispatcher.polls[-1]) == "settled"

    assert state_of(runtime, "r0") is State.BATCH_PENDING
    assert state_of(runtime, "r9") is State.READY
    assert platform.count("GET /api/v2/conversations") == 8
    assert platform.count("GET /api/v2/recording/batchrequests/job-1") == 2


def test_sweep_batch_polls_counted(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    for index in range(10):
        batch_pending(runtime, f"c{index}", f"r{index}")
    sweep_org(runtime, dispatcher, ORG)
    sweep_org(runtime, dispatcher, ORG, job=dispatcher.polls[-1])
    assert [job.polls for job in dispatcher.polls] == [0, 1]


def test_sweep_one_at_a_time(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    for index in range(10):
        batch_pending(runtime, f"c{index}", f"r{index}")
    assert sweep_org(runtime, dispatcher, ORG) == "polling"
    assert sweep_org(runtime, dispatcher, ORG) == "busy"


def test_sweep_releases_lock_when_done(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    platform.recordings["c1"] = ["r1"]
    batch_pending(runtime, "c1", "r1")
    sweep_org(runtime, dispatcher, ORG)
    assert not runtime.redis.exists(lock_key(ORG))


def test_sweep_lost_lock_drops_job(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    for index in range(10):
        batch_pending(runtime, f"c{index}", f"r{index}")
    sweep_org(runtime, dispatcher, ORG)
    runtime.redis.delete(lock_key(ORG))
    assert sweep_org(runtime, dispatcher, ORG, job=dispatcher.polls[-1]) == "lost"


def test_sweep_closed_breaker_resumes(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    batch_pending(runtime, "c1", "r1")
    batch_pending(runtime, "c2", "r2")
    assert sweep_org(runtime, dispatcher, ORG) == "resumed"
    assert sorted(dispatcher.fetches) == [
        (ORG, "r1", "resume"),
        (ORG, "r2", "resume"),
    ]


def test_resumed_fetch_ignores_due_time(
    runtime: Runtime,
    platform: FakePlatform,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    platform.recordings["c1"] = ["r1"]
    batch_pending(runtime, "c1", "r1")
    clock.now -= 100.0  # the record is now due in the future
    assert fetch_record(runtime, dispatcher, ORG, "r1", reason="resume") == "ready"


def test_sweep_half_open_probe_closes(
    runtime: Runtime,
    platform: FakePlatform,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    open_breaker(runtime)
    for index in range(3):
        platform.recordings[f"c{index}"] = [f"r{index}"]
        batch_pending(runtime, f"c{index}", f"r{index}")
    clock.now += runtime.policies.breaker.open_s
    assert sweep_org(runtime, dispatcher, ORG) == "resumed"
    assert runtime.breaker(ORG).state() is BreakerState.CLOSED
    assert len(dispatcher.fetches) == 2


def test_sweep_half_open_probe_failure_reopens(
    runtime: Runtime,
    platform: FakePlatform,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    open_breaker(runtime)
    platform.recordings["c1"] = ["r1"]
    batch_pending(runtime, "c1", "r1")
    clock.now += runtime.policies.breaker.open_s
    platform.metadata_status = 504
    sweep_org(runtime, dispatcher, ORG)
    assert runtime.breaker(ORG).state() is BreakerState.OPEN


def test_periodic_sweeps_open_org(
    runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    assert f"sweep:{ORG}" in run_due_jobs(runtime, dispatcher)
    assert dispatcher.sweeps == [ORG]


def test_periodic_sweep_once_per_interval(
    runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    open_breaker(runtime)
    run_due_jobs(runtime, dispatcher)
    run_due_jobs(runtime, dispatcher)
    assert dispatcher.sweeps == [ORG]


def test_periodic_sweeps_batch_pending(
    runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    batch_pending(runtime, "c1", "r1")
    run_due_jobs(runtime, dispatcher)
    assert dispatcher.sweeps == [ORG]


def test_periodic_no_sweep_when_idle(
    runtime: Runtime, dispatcher: RecordingDispatcher
) -> None:
    run_due_jobs(runtime, dispatcher)
    assert dispatcher.sweeps == []


def test_runtime_relays_breaker_change(
    runtime: Runtime, platform: FakePlatform, dispatcher: RecordingDispatcher
) -> None:
    seen: list[dict[str, Any]] = []

    def listen(**change: Any) -> None:
        seen.append(change)

    runtime_module.on_breaker_change.append(listen)
    try:
        platform.metadata_status = 504
        for index in range(4):
            track(runtime, platform, f"c{index}", f"r{index}")
            fetch_record(runtime, dispatcher, ORG, f"r{index}", reason="event")
    finally:
        runtime_module.on_breaker_change.remove(listen)
    assert seen == [
        {
            "org_id": ORG,
            "endpoint": "recordingmetadata",
            "state": "open",
            "failure_ratio": 1.0,
            "window_s": 60.0,
        }
    ]
