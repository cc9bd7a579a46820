"""Idempotency of the fetch against duplicate and late messages.

Dramatiq delivers at least once: a message can arrive twice, a delayed message can be
promoted twice, and a message held by a crashed worker comes back with the attempt
count it was sent with. Each case runs :func:`recsync.actors.fetch.fetch_record`
against the emulator and a fakeredis store, and checks the record's state, its
attempt count and the platform calls made.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import fakeredis
import pytest

from recsync.actors.fetch import fetch_record
from recsync.emulator import EmulatorServer, scenario_by_name
from recsync.manifest import manifest_from_mapping
from recsync.runtime import Runtime
from recsync.store import State, keys

pytestmark = pytest.mark.integration

# Platform time runs at wall speed, so the last satellite recording stays invisible
# for about a minute and every fetch of it is deferred.
TIME_SCALE = 1.0


@attrs.frozen
class SentFetch:
    """One fetch message the logic requested."""

    org_id: str
    recording_id: str
    reason: str
    expected_attempts: int | None
    delay_s: float


class RecordingDispatcher:
    """Dispatcher that keeps the messages instead of sending them."""

    def __init__(self) -> None:
        self.fetches: list[SentFetch] = []

    def fetch(
        self,
        org_id: str,
        recording_id: str,
        *,
        reason: str,
        expected_attempts: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.fetches.append(
            SentFetch(org_id, recording_id, reason, expected_attempts, delay_s)
        )

    def subscribe(self, org_id: str, *, delay_s: float = 0.0) -> None:
        pass

    def reconcile(self, org_id: str) -> None:
        pass

    def sweep(self, org_id: str) -> None:
        pass


class SteppedClock:
    """Wall clock that a test can move forward, to reach a record's next attempt."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


@attrs.define
class Env:
    """The emulator, a runtime on fakeredis and the two recordings under test."""

    runtime: Runtime
    clock: SteppedClock
    dispatcher: RecordingDispatcher
    visible: dict[str, Any]
    hidden: dict[str, Any]

    def track(self, entry: dict[str, Any]) -> None:
        self.runtime.store.track(
            entry["org"],
            entry["conversation_id"],
            entry["recording_id"],
            deadline_s=self.runtime.backoff.deadline_s,
        )

    def fetch(
        self,
        entry: dict[str, Any],
        *,
        reason: str,
        expected_attempts: int | None = None,
    ) -> str:
        return fetch_record(
            self.runtime,
            self.dispatcher,
            entry["org"],
            entry["recording_id"],
            reason=reason,
            expected_attempts=expected_attempts,
        )

    def calls(self, org_id: str) -> float:
        return self.runtime.store.counters(org_id).get("platform_calls", 0.0)

    def claims(self, entry: dict[str, Any]) -> int:
        changes = self.runtime.store.read_changes(entry["org"], count=1000)
        return sum(
            1
            for _id, fields in changes
            if fields["recording_id"] == entry["recording_id"]
            and fields["state"] == str(State.FETCHING)
        )

    def record(self, entry: dict[str, Any]) -> Any:
        record = self.runtime.store.get(entry["org"], entry["recording_id"])
        assert record is not None
        return record

    def skip_to_next_attempt(self, entry: dict[str, Any]) -> None:
        record = self.record(entry)
        assert record.next_attempt_at is not None
        self.clock.advance(record.next_attempt_at - self.clock() + 0.01)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(scenario_by_name("default"), time_scale=TIME_SCALE) as server:
        yield server


@pytest.fixture
def env(emulator: EmulatorServer) -> Iterator[Env]:
    scenario = emulator.scenario
    environ = {}
    orgs = []
    for org in scenario.orgs:
        prefix = f"RECSYNC_IDEM_{org.id.upper().replace('-', '_')}"
        environ[f"{prefix}_ID"] = org.client_id
        environ[f"{prefix}_SECRET"] = org.client_secret
        orgs.append(
            {
                "id": org.id,
                "name": org.name,
                "region": org.region,
                "role": str(org.role),
                "base_url": emulator.base_url,
                "credentials": {
                    "client_id_env": f"{prefix}_ID",
                    "client_secret_env": f"{prefix}_SECRET",
                },
            }
        )
    manifest = manifest_from_mapping(
        {
            "version": 1,
            "time_scale": TIME_SCALE,
            "orgs": orgs,
            "flags": {"async_metadata_sync": True, "realtime": False},
        },
        source="idempotency test manifest",
    )

    clock = SteppedClock()
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    runtime = Runtime(manifest, client, environ=environ, clock=clock)
    for org_config in manifest.orgs:
        client.hset(keys.org_active(org_config.id), "active", "1")

    timeline = emulator.world.timeline()
    primary = manifest.primary.id
    visible = min(
        (e for e in timeline if e["org"] == primary), key=lambda e: e["visible_at_s"]
    )
    hidden = max(
        (e for e in timeline if e["org"] != primary), key=lambda e: e["visible_at_s"]
    )
    _wait_visible(emulator, visible)
    assert emulator.world.now() < hidden["visible_at_s"], "the emulator ran too long"
    yield Env(runtime, clock, RecordingDispatcher(), visible, hidden)
    runtime.close()


def _wait_visible(emulator: EmulatorServer, entry: dict[str, Any]) -> None:
    wait_s = (entry["visible_at_s"] - emulator.world.now()) * TIME_SCALE
    if wait_s > 0:
        time.sleep(wait_s + 0.05)


def test_fetch_twice_settles_once(env: Env) -> None:
    entry = env.visible
    env.track(entry)
    first = env.fetch(entry, reason="track")
    calls = env.calls(entry["org"])
    second = env.fetch(entry, reason="track")
    record = env.record(entry)
    assert first == "ready"
    assert second == "settled"
    assert record.state is State.READY
    assert record.attempts == 1
    assert env.claims(entry) == 1
    assert env.calls(entry["org"]) == calls


def test_fetch_during_claim_is_busy(env: Env) -> None:
    entry = env.visible
    env.track(entry)
    claim = env.runtime.store.claim(
        entry["org"],
        entry["recording_id"],
        token=uuid.uuid4().hex,
        lease_s=env.runtime.claim_lease_s,
    )
    outcome = env.fetch(entry, reason="retry")
    record = env.record(entry)
    assert claim.claimed
    assert outcome == "busy"
    assert record.state is State.FETCHING
    assert record.attempts == 1
    assert env.calls(entry["org"]) == 0


def test_delayed_fetch_promoted_twice(env: Env) -> None:
    entry = env.hidden
    env.track(entry)
    assert env.fetch(entry, reason="track") == "deferred"
    retry = env.dispatcher.fetches[-1]
    env.skip_to_next_attempt(entry)
    first = env.fetch(entry, reason=retry.reason, expected_attempts=1)
    calls = env.calls(entry["org"])
    second = env.fetch(entry, reason=retry.reason, expected_attempts=1)
    record = env.record(entry)
    assert retry.expected_attempts == 1
    assert first == "deferred"
    assert second == "stale"
    assert record.state is State.ASYNC_PENDING
    assert record.attempts == 2
    assert env.claims(entry) == 2
    assert env.calls(entry["org"]) == calls
    assert len(env.dispatcher.fetches) == 2


def test_redelivered_fetch_after_crash(env: Env) -> None:
    entry = env.hidden
    env.track(entry)
    assert env.fetch(entry, reason="track") == "deferred"
    env.skip_to_next_attempt(entry)
    # A worker claims attempt 2 from the retry message and dies before settling.
    crashed = env.runtime.store.claim(
        entry["org"],
        entry["recording_id"],
        token=uuid.uuid4().hex,
        lease_s=env.runtime.claim_lease_s,
        expected_attempts=1,
    )
    env.clock.advance(env.runtime.claim_lease_s + 0.01)
    calls = env.calls(entry["org"])
    redelivered = env.fetch(entry, reason="retry", expected_attempts=1)
    calls_after_redelivery = env.calls(entry["org"])
    overdue = env.runtime.store.take_overdue(entry["org"], limit=10, grace_s=1.0)
    reconciled = env.fetch(entry, reason="reconcile")
    record = env.record(entry)
    assert crashed.claimed
    assert redelivered == "stale"
    assert calls_after_redelivery == calls
    assert overdue == [entry["recording_id"]]
    assert reconciled == "deferred"
    assert record.state is State.ASYNC_PENDING
    assert record.attempts == 3
    assert env.claims(entry) == 3


def test_retry_after_is_never_shortened(env: Env, emulator: EmulatorServer) -> None:
    entry = env.visible
    org_id = entry["org"]
    env.track(entry)
    # Fetch the token first so the one 429 lands on the metadata call.
    env.runtime.org(org_id).client.tokens.token()
    emulator.add_fault(
        {"org": org_id, "kind": "rate_limit", "retry_after_s": 58, "count": 1}
    )
    started = env.clock()

    first = env.fetch(entry, reason="track")
    record = env.record(entry)
    calls_after_429 = env.calls(org_id)

    assert first == "deferred"
    assert record.state is State.ASYNC_PENDING
    # Retry-After is a floor: the backoff cap (30 s) and jitter cannot shorten it.
    assert record.next_attempt_at is not None
    assert record.next_attempt_at >= started + 58
    assert env.dispatcher.fetches[-1].delay_s >= 57.9

    # An event 30 s later wants the record now, but the org is paused: no call leaves.
    env.clock.advance(30)
    early = env.fetch(entry, reason="event")
    assert early == "deferred"
    assert env.calls(org_id) == calls_after_429
    assert env.record(entry).next_attempt_at >= started + 58

    env.skip_to_next_attempt(entry)
    last = env.fetch(entry, reason="retry", expected_attempts=2)
    assert last == "ready"
    assert env.calls(org_id) == calls_after_429 + 1


def test_unexpected_error_defers_record(env: Env, monkeypatch) -> None:
    entry = env.visible
    env.track(entry)

    def broken(org_id: str) -> Any:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(env.runtime, "org", broken)
    outcome = env.fetch(entry, reason="track")
    record = env.record(entry)
    assert outcome == "deferred"
    assert record.state is State.ASYNC_PENDING
    assert "simulated bug" in (record.last_error or "")
    assert env.dispatcher.fetches[-1].reason == "retry"
