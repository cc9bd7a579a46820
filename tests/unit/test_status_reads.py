"""StatusReader over fakeredis: records, pagination, overview and changes."""

from __future__ import annotations

import pytest
import redis

from recsync.status.reads import StatusReader
from recsync.store import RecordStore, keys

ORG = "org-a"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(fake_redis: redis.Redis, clock: Clock) -> RecordStore:
    return RecordStore(fake_redis, clock=clock)


@pytest.fixture
def reader(store: RecordStore, fake_redis: redis.Redis, clock: Clock) -> StatusReader:
    return StatusReader(store, fake_redis, clock=clock)


def make_ready(store: RecordStore, rec: str, name: str = "call") -> None:
    store.track(ORG, "conv-1", rec, deadline_s=600)
    store.claim(ORG, rec, token="t", lease_s=10)
    store.mark_ready(ORG, rec, token="t", metadata={"name": name}, fingerprint="x")


def test_recording_unknown_returns_none(reader: StatusReader) -> None:
    assert reader.recording(ORG, "rec-1") is None


def test_recording_ready_has_metadata(store: RecordStore, reader: StatusReader) -> None:
    make_ready(store, "rec-1", name="hello")
    data = reader.recording(ORG, "rec-1")
    assert data is not None
    assert data["state"] == "ready"
    assert data["metadata"] == {"name": "hello"}
    assert data["attempts"] == 1


def test_recording_deferred_has_next_attempt(
    store: RecordStore, reader: StatusReader, clock: Clock
) -> None:
    store.track(ORG, "conv-1", "rec-1", deadline_s=600)
    store.claim(ORG, "rec-1", token="t", lease_s=10)
    store.defer(ORG, "rec-1", token="t", next_attempt_at=clock.now + 5, error="202")
    data = reader.recording(ORG, "rec-1")
    assert data is not None
    assert data["state"] == "async-pending"
    assert data["next_attempt_at"] == pytest.approx(clock.now + 5)
    assert data["last_error"] == "202"


@pytest.mark.parametrize("bad", ["org-b/../org-a", "*", "org-a:rec", "", "ORG"])
def test_recording_invalid_org_raises(reader: StatusReader, bad: str) -> None:
    with pytest.raises(keys.InvalidId):
        reader.recording(bad, "rec-1")


@pytest.mark.parametrize("bad", ["*", "a:b", "../x", "rec 1", "%2A"])
def test_recording_invalid_id_raises(reader: StatusReader, bad: str) -> None:
    with pytest.raises(keys.InvalidId):
        reader.recording(ORG, bad)


def test_recordings_pages_cover_all(
    store: RecordStore, reader: StatusReader, clock: Clock
) -> None:
    for i in range(7):
        clock.now += 1
        store.track(ORG, "conv-1", f"rec-{i}", deadline_s=600)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        items, cursor = reader.recordings(ORG, "pending", cursor, 3)
        seen.extend(item["recording_id"] for item in items)
        pages += 1
        if cursor is None:
            break
    assert seen == [f"rec-{i}" for i in range(7)]
    assert pages == 3


def test_recordings_cursor_survives_removal(
    store: RecordStore, reader: StatusReader, clock: Clock
) -> None:
    for i in range(6):
        clock.now += 1
        store.track(ORG, "conv-1", f"rec-{i}", deadline_s=600)
    items, cursor = reader.recordings(ORG, "pending", None, 3)
    assert [i["recording_id"] for i in items] == ["rec-0", "rec-1", "rec-2"]
    # Records on the first page leave the state before the second page is read.
    store.claim(ORG, "rec-0", token="t", lease_s=10)
    store.claim(ORG, "rec-2", token="t", lease_s=10)
    rest, _ = reader.recordings(ORG, "pending", cursor, 3)
    assert [i["recording_id"] for i in rest] == ["rec-3", "rec-4", "rec-5"]


def test_recordings_invalid_state_raises(reader: StatusReader) -> None:
    with pytest.raises(ValueError, match="state 'done' is invalid"):
        reader.recordings(ORG, "done")


@pytest.mark.parametrize("cursor", ["abc", "12", "1:*", "1:a:b"])
def test_recordings_invalid_cursor_raises(reader: StatusReader, cursor: str) -> None:
    with pytest.raises(ValueError):
        reader.recordings(ORG, "pending", cursor)


@pytest.mark.parametrize("limit", [0, -1, 501])
def test_recordings_invalid_limit_raises(reader: StatusReader, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        reader.recordings(ORG, "pending", None, limit)


def test_overview_reports_org_state(
    store: RecordStore, reader: StatusReader, fake_redis: redis.Redis, clock: Clock
) -> None:
    store.track(ORG, "conv-1", "rec-1", deadline_s=600)
    make_ready(store, "rec-2")
    fake_redis.hset(
        keys.subscriber_status(ORG),
        mapping={"state": "connected", "seen_at": repr(clock.now), "topics": "3"},
    )
    fake_redis.hset(keys.breaker(ORG, "recordingmetadata"), "state", "open")
    fake_redis.set(keys.paused_until(ORG), int((clock.now + 30) * 1000))
    clock.now += 4
    overview = reader.org_overview(ORG)
    assert overview["counts"]["pending"] == 1
    assert overview["counts"]["ready"] == 1
    assert overview["realtime"]["state"] == "connected"
    assert overview["realtime"]["topics"] == 3
    assert overview["breakers"] == {"recordingmetadata": "open"}
    assert overview["paused"] is True
    assert overview["due_count"] == 1
    assert overview["queue_lag_s"] == pytest.approx(4.0)


def test_overview_empty_org_defaults(reader: StatusReader) -> None:
    overview = reader.org_overview("org-empty")
    assert overview["realtime"]["state"] == "unknown"
    assert overview["breakers"] == {}
    assert overview["paused"] is False
    assert overview["oldest_due_at"] is None
    assert overview["last_change_id"] == "0-0"


def test_overview_expired_pause_not_paused(
    reader: StatusReader, fake_redis: redis.Redis, clock: Clock
) -> None:
    fake_redis.set(keys.paused_until(ORG), int((clock.now - 1) * 1000))
    assert reader.org_overview(ORG)["paused"] is False


def test_changes_follow_transitions(store: RecordStore, reader: StatusReader) -> None:
    make_ready(store, "rec-1")
    changes = reader.changes(ORG)
    assert [c["state"] for c in changes] == ["pending", "fetching", "ready"]
    assert changes[-1]["attempts"] == 1
    later = reader.changes(ORG, changes[0]["id"])
    assert [c["state"] for c in later] == ["fetching", "ready"]


def test_changes_last_id_resumes_empty(
    store: RecordStore, reader: StatusReader
) -> None:
    make_ready(store, "rec-1")
    assert reader.changes(ORG, reader.last_change_id(ORG)) == []


@pytest.mark.parametrize("after", ["$", "abc", "1-2-3", "+", ">"])
def test_changes_invalid_after_raises(reader: StatusReader, after: str) -> None:
    with pytest.raises(ValueError, match="change id"):
        reader.changes(ORG, after)


def test_changes_other_org_isolated(store: RecordStore, reader: StatusReader) -> None:
    make_ready(store, "rec-1")
    assert reader.changes("org-b") == []


def test_org_ids_skip_invalid(
    store: RecordStore, reader: StatusReader, fake_redis: redis.Redis
) -> None:
    store.track(ORG, "conv-1", "rec-1", deadline_s=600)
    fake_redis.sadd(keys.orgs(), "bad:org")
    assert reader.org_ids() == [ORG]


def test_breaker_past_open_until_half_open(
    reader: StatusReader, fake_redis: redis.Redis, clock: Clock
) -> None:
    key = keys.breaker(ORG, "batch")
    fake_redis.hset(key, mapping={"state": "open", "open_until": int(clock.now * 1000)})
    assert reader.breakers(ORG) == {"batch": "half-open"}


def test_breaker_before_open_until_open(
    reader: StatusReader, fake_redis: redis.Redis, clock: Clock
) -> None:
    until_ms = int((clock.now + 10) * 1000)
    fake_redis.hset(
        keys.breaker(ORG, "batch"), mapping={"state": "open", "open_until": until_ms}
    )
    assert reader.breakers(ORG) == {"batch": "open"}
