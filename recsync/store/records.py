"""Record state in Redis: atomic, monotonic transitions and O(1) reads.

A record is one recording in one org. Its hash holds the state, the attempt count,
the next attempt time and the last error; per-state sorted sets list an org's records
by state; a ``due`` sorted set orders every unsettled record by when it is owed, which
is what the reconciler reads; every transition is appended to the org's change stream.
All transitions run as Lua scripts, so two workers can never both fetch a record and a
late answer can never move a ``ready`` record back.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import attrs
import redis

from recsync.store import keys

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class State(enum.StrEnum):
    """Lifecycle states of a record."""

    PENDING = "pending"
    FETCHING = "fetching"
    ASYNC_PENDING = "async-pending"
    BATCH_PENDING = "batch-pending"
    READY = "ready"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        return self in (State.READY, State.FAILED)


class ClaimOutcome(enum.StrEnum):
    CLAIMED = "claimed"
    MISSING = "missing"
    SETTLED = "settled"
    BUSY = "busy"
    STALE = "stale"
    EARLY = "early"
    EXPIRED = "expired"


@attrs.frozen
class Claim:
    """Result of trying to take a record for one fetch attempt."""

    outcome: ClaimOutcome
    attempts: int
    previous_state: str

    @property
    def claimed(self) -> bool:
        return self.outcome is ClaimOutcome.CLAIMED


@attrs.frozen
class Record:
    """One recording's sync state in one org, as the UI reads it."""

    org_id: str
    recording_id: str
    conversation_id: str
    state: State
    attempts: int
    created_at: float
    updated_at: float
    deadline_at: float
    user_id: str | None = None
    next_attempt_at: float | None = None
    ready_at: float | None = None
    last_error: str | None = None
    source: str | None = None
    metadata: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict with the state as a string."""
        data = attrs.asdict(self)
        data["state"] = str(self.state)
        return data


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _seconds(value: bytes | str | None) -> float | None:
    if value is None or value == b"" or value == "":
        return None
    return int(value) / 1000.0


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _load_script(client: redis.Redis, name: str) -> Any:
    source = resources.files("recsync.store").joinpath(f"lua/{name}.lua").read_text()
    return client.register_script(source)


class RecordStore:
    """Reads and transitions records; the only writer of record keys."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        clock: Clock = time.time,
        stream_maxlen: int = 100_000,
    ) -> None:
        # redis-py's return types depend on decode_responses; read them as Any.
        self.redis: Any = client
        self.clock = clock
        self.stream_maxlen = stream_maxlen
        self._track = _load_script(client, "track")
        self._claim = _load_script(client, "claim")
        self._settle = _load_script(client, "settle")
        self._take_overdue = _load_script(client, "take_overdue")

    def _keys(self, org_id: str, recording_id: str) -> list[str]:
        return [
            keys.record(org_id, recording_id),
            keys.due(org_id),
            keys.changes(org_id),
        ]

    def _state_prefix(self, org_id: str) -> str:
        return keys.by_state(org_id, "")

    def track(
        self,
        org_id: str,
        conversation_id: str,
        recording_id: str,
        *,
        deadline_s: float,
        user_id: str | None = None,
        source: str = "host",
        due_in_s: float = 0.0,
    ) -> tuple[bool, State]:
        """Create a ``pending`` record unless one exists.

        Returns whether it was created and the record's current state. After
        ``due_in_s`` the reconciler sends it, unless a fetch settled it first.
        """
        keys.check_entity_id(conversation_id, kind="conversation")
        if user_id is not None:
            keys.check_entity_id(user_id, kind="user")
        now = self.clock()
        created, state = self._track(
            keys=[
                *self._keys(org_id, recording_id),
                keys.conversation(org_id, conversation_id),
            ],
            args=[
                self._state_prefix(org_id),
                recording_id,
                conversation_id,
                user_id or "",
                _ms(now),
                _ms(now + deadline_s),
                source,
                _ms(now + due_in_s),
                self.stream_maxlen,
            ],
        )
        self.redis.sadd(keys.orgs(), org_id)
        return bool(created), State(_text(state) or "")

    def claim(
        self,
        org_id: str,
        recording_id: str,
        *,
        token: str,
        lease_s: float,
        expected_attempts: int | None = None,
        force: bool = False,
    ) -> Claim:
        """Take the record for one fetch attempt, under a lease of ``lease_s``.

        ``expected_attempts`` makes a message that was scheduled for an earlier
        attempt (a duplicate, or one redelivered after a crash) come back ``stale``.
        Without ``force`` a record whose next attempt lies in the future comes back
        ``early``.
        """
        outcome, attempts, previous = self._claim(
            keys=self._keys(org_id, recording_id),
            args=[
                self._state_prefix(org_id),
                recording_id,
                _ms(self.clock()),
                _ms(lease_s),
                token,
                -1 if expected_attempts is None else expected_attempts,
                1 if force else 0,
                self.stream_maxlen,
            ],
        )
        return Claim(
            ClaimOutcome(_text(outcome) or ""), int(attempts), _text(previous) or ""
        )

    def _settle_call(
        self,
        org_id: str,
        recording_id: str,
        *,
        token: str,
        state: State,
        next_attempt_at: float | None = None,
        error: str = "",
        metadata: str = "",
        fingerprint: str = "",
    ) -> str:
        outcome, _previous = self._settle(
            keys=self._keys(org_id, recording_id),
            args=[
                self._state_prefix(org_id),
                recording_id,
                _ms(self.clock()),
                token,
                str(state),
                "" if next_attempt_at is None else _ms(next_attempt_at),
                error,
                metadata,
                fingerprint,
                self.stream_maxlen,
            ],
        )
        return _text(outcome) or ""

    def mark_ready(
        self,
        org_id: str,
        recording_id: str,
        *,
        token: str,
        metadata: dict[str, Any],
        fingerprint: str,
    ) -> str:
        """Store the metadata and settle the record as ``ready``.

        Returns ``ok``, ``updated`` (was ready, metadata changed), ``unchanged``,
        ``settled`` (already failed) or ``missing``.
        """
        body = json.dumps(metadata, separators=(",", ":"), sort_keys=True)
        return self._settle_call(
            org_id,
            recording_id,
            token=token,
            state=State.READY,
            metadata=body,
            fingerprint=fingerprint,
        )

    def defer(
        self,
        org_id: str,
        recording_id: str,
        *,
        token: str,
        next_attempt_at: float,
        error: str,
        state: State = State.ASYNC_PENDING,
    ) -> str:
        """Put a claimed record back as ``async-pending``, ``batch-pending`` or
        ``pending``."""
        if state not in (State.ASYNC_PENDING, State.BATCH_PENDING, State.PENDING):
            raise ValueError(f"defer() takes a pending state, not {state!r}")
        return self._settle_call(
            org_id,
            recording_id,
            token=token,
            state=state,
            next_attempt_at=next_attempt_at,
            error=error,
        )

    def mark_failed(
        self, org_id: str, recording_id: str, *, token: str, error: str
    ) -> str:
        """Settle a claimed record as ``failed`` with its reason."""
        return self._settle_call(
            org_id, recording_id, token=token, state=State.FAILED, error=error
        )

    def get(self, org_id: str, recording_id: str) -> Record | None:
        """Return one record, or None; one Redis round trip, never the platform."""
        raw = self.redis.hgetall(keys.record(org_id, recording_id))
        if not raw:
            return None
        return _record_from_hash(org_id, raw)

    def conversation_tracked(self, org_id: str, conversation_id: str) -> int:
        """Return how many recordings of the conversation are tracked in the org."""
        return int(self.redis.scard(keys.conversation(org_id, conversation_id)))

    def conversation_settled(self, org_id: str, conversation_id: str) -> bool:
        """Tell whether the conversation has tracked records and all are settled."""
        members = self.redis.smembers(keys.conversation(org_id, conversation_id))
        ids = sorted(_text(m) or "" for m in members)
        if not ids:
            return False
        return all(record.state.settled for record in self.get_many(org_id, ids))

    def get_many(self, org_id: str, recording_ids: list[str]) -> list[Record]:
        """Return the records that exist among ``recording_ids``, in that order."""
        pipe = self.redis.pipeline(transaction=False)
        for recording_id in recording_ids:
            pipe.hgetall(keys.record(org_id, recording_id))
        return [_record_from_hash(org_id, raw) for raw in pipe.execute() if raw]

    def list_by_state(
        self, org_id: str, state: State, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[Record], int | None]:
        """Return one page of an org's records in ``state``, oldest change first.

        The second value is the offset of the next page, or None after the last.
        """
        ids = self.redis.zrange(
            keys.by_state(org_id, str(state)), offset, offset + limit
        )
        page = [_text(i) or "" for i in ids[:limit]]
        next_offset = offset + limit if len(ids) > limit else None
        return self.get_many(org_id, page), next_offset

    def counts(self, org_id: str) -> dict[str, int]:
        """Return the number of records in each state."""
        pipe = self.redis.pipeline(transaction=False)
        for state in State:
            pipe.zcard(keys.by_state(org_id, str(state)))
        return {str(s): int(n) for s, n in zip(State, pipe.execute(), strict=True)}

    def take_overdue(
        self, org_id: str, *, limit: int, grace_s: float, late_by_s: float = 0.0
    ) -> list[str]:
        """Return up to ``limit`` records owed for at least ``late_by_s``.

        Each returned record is held back for ``grace_s`` so the next reconciler pass
        skips it while the fetch just sent is still queued.
        """
        now = self.clock()
        ids = self._take_overdue(
            keys=[keys.due(org_id)],
            args=[_ms(now), limit, _ms(grace_s), _ms(now - late_by_s)],
        )
        return [_text(i) or "" for i in ids]

    def due_count(self, org_id: str) -> int:
        return int(self.redis.zcard(keys.due(org_id)))

    def oldest_due_at(self, org_id: str) -> float | None:
        """Return when the longest-owed unsettled record was due (epoch s)."""
        first = self.redis.zrange(keys.due(org_id), 0, 0, withscores=True)
        return first[0][1] / 1000.0 if first else None

    def read_changes(
        self,
        org_id: str,
        *,
        after_id: str = "0-0",
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[tuple[str, dict[str, str]]]:
        """Return changes after ``after_id`` from the org's change stream."""
        answer = self.redis.xread(
            {keys.changes(org_id): after_id}, count=count, block=block_ms
        )
        if not answer:
            return []
        _stream, entries = answer[0]
        return [
            (
                _text(entry_id) or "",
                {_text(k) or "": _text(v) or "" for k, v in fields.items()},
            )
            for entry_id, fields in entries
        ]

    def iter_records(self, org_id: str, *, batch: int = 500) -> Iterator[Record]:
        """Yield every record of an org, state by state."""
        for state in State:
            offset: int | None = 0
            while offset is not None:
                page, offset = self.list_by_state(
                    org_id, state, offset=offset, limit=batch
                )
                yield from page

    def incr(self, org_id: str, counter: str, amount: int = 1) -> None:
        self.redis.hincrby(keys.counters(org_id), counter, amount)

    def counters(self, org_id: str) -> dict[str, float]:
        """Return the org's counters; totals of seconds are floats."""
        raw = self.redis.hgetall(keys.counters(org_id))
        return {_text(k) or "": float(v) for k, v in raw.items()}

    def org_ids(self) -> list[str]:
        return sorted(_text(o) or "" for o in self.redis.smembers(keys.orgs()))

    def purge_org(self, org_id: str) -> int:
        """Delete every key of an org (uninstall). Returns how many were deleted."""
        deleted = 0
        for key in self.redis.scan_iter(
            match=f"{keys.org_prefix(org_id)}:*", count=1000
        ):
            deleted += int(self.redis.delete(key))
        self.redis.srem(keys.orgs(), org_id)
        return deleted


def _record_from_hash(org_id: str, raw: dict[Any, Any]) -> Record:
    fields = {_text(k) or "": _text(v) for k, v in raw.items()}
    metadata = fields.get("metadata")
    return Record(
        org_id=org_id,
        recording_id=fields.get("recording_id") or "",
        conversation_id=fields.get("conversation_id") or "",
        state=State(fields.get("state") or ""),
        attempts=int(fields.get("attempts") or 0),
        created_at=_seconds(fields.get("created_at")) or 0.0,
        updated_at=_seconds(fields.get("updated_at")) or 0.0,
        deadline_at=_seconds(fields.get("deadline_at")) or 0.0,
        user_id=fields.get("user_id"),
        next_attempt_at=_seconds(fields.get("next_attempt_at")),
        ready_at=_seconds(fields.get("ready_at")),
        last_error=fields.get("last_error"),
        source=fields.get("source"),
        metadata=json.loads(metadata) if metadata else None,
    )
