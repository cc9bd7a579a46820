from __future__ import annotations

import pytest

from recsync.store import ClaimOutcome, RecordStore, State
from recsync.store.keys import InvalidId


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(fake_redis, clock) -> RecordStore:
    return RecordStore(fake_redis, clock=clock)


def test_track_creates_pending(store):
    created, state = store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    assert created
    assert state is State.PENDING
    assert store.get("org-a", "rec-1").state is State.PENDING


def test_track_twice_keeps_state(store):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    created, state = store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    assert not created
    assert state is State.PENDING


def test_claim_is_exclusive(store):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    first = store.claim("org-a", "rec-1", token="a", lease_s=10)
    second = store.claim("org-a", "rec-1", token="b", lease_s=10)
    assert first.outcome is ClaimOutcome.CLAIMED
    assert second.outcome is ClaimOutcome.BUSY
    assert store.get("org-a", "rec-1").attempts == 1


def test_expired_claim_can_be_taken_over(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    clock.now += 11
    takeover = store.claim("org-a", "rec-1", token="b", lease_s=10)
    assert takeover.claimed
    assert takeover.attempts == 2
    # The overtaken worker can no longer defer the record.
    outcome = store.defer(
        "org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="late"
    )
    assert outcome == "lost"


def test_defer_then_early_claim_is_rejected(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.defer("org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="202")
    early = store.claim("org-a", "rec-1", token="b", lease_s=10)
    assert early.outcome is ClaimOutcome.EARLY
    record = store.get("org-a", "rec-1")
    assert record.state is State.ASYNC_PENDING
    assert record.next_attempt_at == pytest.approx(clock.now + 5)
    assert record.last_error == "202"


def test_stale_message_is_rejected(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.defer("org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="202")
    clock.now += 6
    first = store.claim("org-a", "rec-1", token="b", lease_s=10, expected_attempts=1)
    store.defer("org-a", "rec-1", token="b", next_attempt_at=clock.now, error="202")
    duplicate = store.claim(
        "org-a", "rec-1", token="c", lease_s=10, expected_attempts=1
    )
    assert first.claimed
    assert duplicate.outcome is ClaimOutcome.STALE
    assert store.get("org-a", "rec-1").attempts == 2


def test_ready_is_never_moved_back(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    assert (
        store.mark_ready(
            "org-a", "rec-1", token="a", metadata={"id": "rec-1"}, fingerprint="f1"
        )
        == "ok"
    )
    late = store.defer(
        "org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="late 202"
    )
    again = store.claim("org-a", "rec-1", token="b", lease_s=10, force=True)
    record = store.get("org-a", "rec-1")
    assert late == "unchanged"
    assert again.outcome is ClaimOutcome.SETTLED
    assert record.state is State.READY
    assert record.metadata == {"id": "rec-1"}
    assert record.last_error is None


def test_ready_with_new_fingerprint_updates(store):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.mark_ready("org-a", "rec-1", token="a", metadata={"v": 1}, fingerprint="f1")
    same = store.mark_ready(
        "org-a", "rec-1", token="x", metadata={"v": 1}, fingerprint="f1"
    )
    changed = store.mark_ready(
        "org-a", "rec-1", token="x", metadata={"v": 2}, fingerprint="f2"
    )
    assert same == "unchanged"
    assert changed == "updated"
    assert store.get("org-a", "rec-1").metadata == {"v": 2}


def test_counts_and_listing_by_state(store, clock):
    for index in range(5):
        store.track("org-a", "conv-1", f"rec-{index}", deadline_s=60)
    store.claim("org-a", "rec-0", token="a", lease_s=10)
    store.mark_ready("org-a", "rec-0", token="a", metadata={}, fingerprint="f")
    page, next_offset = store.list_by_state("org-a", State.PENDING, limit=3)
    rest, last = store.list_by_state("org-a", State.PENDING, offset=3, limit=3)
    assert store.counts("org-a")["pending"] == 4
    assert store.counts("org-a")["ready"] == 1
    assert len(page) == 3
    assert next_offset == 3
    assert len(rest) == 1
    assert last is None


def test_change_stream_records_each_transition(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.mark_ready("org-a", "rec-1", token="a", metadata={}, fingerprint="f")
    changes = store.read_changes("org-a")
    states = [fields["state"] for _id, fields in changes]
    assert states == ["pending", "fetching", "ready"]
    assert changes[2][1]["previous"] == "fetching"


def test_take_overdue_holds_records_back(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.defer("org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="202")
    assert store.take_overdue("org-a", limit=10, grace_s=30) == []
    clock.now += 6
    assert store.take_overdue("org-a", limit=10, grace_s=30) == ["rec-1"]
    assert store.take_overdue("org-a", limit=10, grace_s=30) == []
    clock.now += 31
    assert store.take_overdue("org-a", limit=10, grace_s=30) == ["rec-1"]


def test_dead_claim_becomes_overdue(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    clock.now += 11
    assert store.take_overdue("org-a", limit=10, grace_s=30) == ["rec-1"]


def test_orgs_do_not_share_records(store):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    assert store.get("org-b", "rec-1") is None
    assert store.counts("org-b")["pending"] == 0


@pytest.mark.parametrize(
    "org_id, recording_id",
    [
        ("org-a:rec", "rec-1"),
        ("org-*", "rec-1"),
        ("Org-A", "rec-1"),
        ("org-a", "rec:1"),
        ("org-a", "*"),
        ("org-a", "rec 1"),
        ("org-a", ""),
        ("org-a", "../rec"),
        ("org-a", "rec-1\n"),
    ],
)
def test_crafted_ids_are_rejected(store, org_id, recording_id):
    with pytest.raises(InvalidId):
        store.get(org_id, recording_id)


def test_purge_org_deletes_only_that_org(store):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.track("org-b", "conv-1", "rec-1", deadline_s=60)
    deleted = store.purge_org("org-a")
    assert deleted > 0
    assert store.get("org-a", "rec-1") is None
    assert store.get("org-b", "rec-1") is not None


def test_claim_past_deadline_fails_record(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    store.defer("org-a", "rec-1", token="a", next_attempt_at=clock.now + 5, error="202")
    clock.now += 61
    claim = store.claim("org-a", "rec-1", token="b", lease_s=10)
    record = store.get("org-a", "rec-1")
    assert claim.outcome is ClaimOutcome.EXPIRED
    assert record.state is State.FAILED
    assert "deadline" in record.last_error
    assert "202" in record.last_error
    assert store.take_overdue("org-a", limit=10, grace_s=1) == []


def test_crashed_claim_past_deadline_fails(store, clock):
    store.track("org-a", "conv-1", "rec-1", deadline_s=60)
    store.claim("org-a", "rec-1", token="a", lease_s=10)
    clock.now += 70  # the worker died holding the claim; the lease and deadline pass
    claim = store.claim("org-a", "rec-1", token="b", lease_s=10)
    assert claim.outcome is ClaimOutcome.EXPIRED
    assert store.get("org-a", "rec-1").state is State.FAILED
