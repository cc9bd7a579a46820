"""Read-only views of recsync's Redis state for the status service and the host.

:class:`StatusReader` is the one read path behind both the HTTP status service and
the host's Python API. Every method reads Redis only, never the platform, and costs
a bounded number of round trips: one per call, plus one per record on a page.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

import redis

from recsync.store import RecordStore, State, keys

log = logging.getLogger(__name__)

#: Endpoints whose circuit breakers the overview and the metrics report. These are
#: the ``endpoint`` labels that ``recsync.platform.client`` gives its calls.
BREAKER_ENDPOINTS: tuple[str, ...] = (
    "recordingmetadata",
    "batch",
    "notifications",
    "users",
)

MAX_PAGE_LIMIT = 500
MAX_CHANGES_COUNT = 1000

_STREAM_ID = re.compile(r"^[0-9]{1,20}(-[0-9]{1,20})?$")
_CURSOR = re.compile(r"^([0-9]{1,20}):(.+)$")


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _ms_to_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return int(value) / 1000.0
    except ValueError:
        return None


def check_state(state: str) -> State:
    """Return the :class:`State` named ``state``, or raise ``ValueError``."""
    try:
        return State(state)
    except ValueError:
        known = ", ".join(str(s) for s in State)
        raise ValueError(f"state {state!r} is invalid; use one of: {known}") from None


def check_stream_id(stream_id: str) -> str:
    """Return ``stream_id`` if it is a Redis stream id (``ms-seq``), else raise."""
    if not _STREAM_ID.fullmatch(stream_id):
        raise ValueError(
            f"change id {stream_id!r} is invalid; use an id from the change feed, "
            "such as 1700000000000-0, or 0 to start from the oldest change"
        )
    return stream_id


def _check_limit(limit: int, maximum: int, name: str) -> int:
    if not 1 <= limit <= maximum:
        raise ValueError(f"{name} {limit} is out of range; use 1 to {maximum}")
    return limit


class StatusReader:
    """Read-only status queries about records, orgs and changes, served from Redis."""

    def __init__(
        self,
        store: RecordStore,
        redis_client: redis.Redis,
        *,
        breaker_endpoints: tuple[str, ...] = BREAKER_ENDPOINTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.redis = redis_client
        self.breaker_endpoints = breaker_endpoints
        self.clock = clock

    # Records ------------------------------------------------------------------------

    def recording(self, org_id: str, recording_id: str) -> dict[str, Any] | None:
        """Return one record as a JSON-ready dict, or None if it is not tracked.

        Raises:
            InvalidId: ``org_id`` or ``recording_id`` cannot be part of a key.
        """
        keys.check_org_id(org_id)
        keys.check_entity_id(recording_id)
        record = self.store.get(org_id, recording_id)
        return None if record is None else record.to_dict()

    def recordings(
        self,
        org_id: str,
        state: str,
        cursor: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return one page of an org's records in ``state``, oldest change first.

        The cursor is ``"{score_ms}:{recording_id}"`` of the last record returned.
        A page resumes after that record even when records before it have left the
        state meanwhile, which an offset would turn into skipped records. The second
        value is the cursor of the next page, or None after the last page.

        Raises:
            InvalidId: ``org_id`` is invalid.
            ValueError: ``state``, ``cursor`` or ``limit`` is invalid.
        """
        keys.check_org_id(org_id)
        checked = check_state(state)
        _check_limit(limit, MAX_PAGE_LIMIT, "limit")
        key = keys.by_state(org_id, str(checked))
        start = 0 if cursor is None else self._cursor_start(key, cursor)
        # Reading one member past the page detects whether another page follows.
        raw: list[tuple[bytes, float]] = self.redis.zrange(  # type: ignore[assignment]
            key, start, start + limit, withscores=True
        )
        members = [(_text(m) or "", int(score)) for m, score in raw]
        page = members[:limit]
        records = self.store.get_many(org_id, [m for m, _ in page])
        next_cursor = None
        if len(members) > limit and page:
            last_id, last_score = page[-1]
            next_cursor = f"{last_score}:{last_id}"
        return [r.to_dict() for r in records], next_cursor

    def _cursor_start(self, key: str, cursor: str) -> int:
        match = _CURSOR.fullmatch(cursor)
        if match is None:
            raise ValueError(
                f"cursor {cursor!r} is invalid; pass the next_cursor value of the "
                "previous page unchanged"
            )
        score_ms, member = int(match.group(1)), match.group(2)
        keys.check_entity_id(member)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(key, member)
        pipe.zrank(key, member)
        pipe.zcount(key, "-inf", f"({score_ms}")
        current, rank, before = pipe.execute()
        if current is not None and int(current) == score_ms and rank is not None:
            return int(rank) + 1
        # The cursor's record left the state. Members with the same score may be
        # returned again, but none after the cursor is skipped.
        return int(before)

    # Orgs ---------------------------------------------------------------------------

    def org_ids(self) -> list[str]:
        """Return the valid ids of orgs that have state in this Redis."""
        valid = []
        for org_id in self.store.org_ids():
            try:
                valid.append(keys.check_org_id(org_id))
            except keys.InvalidId:
                log.warning("skipping invalid org id %r in %s", org_id, keys.orgs())
        return valid

    def realtime(self, org_id: str) -> dict[str, Any]:
        """Return the org's realtime connection status (state ``unknown`` if none)."""
        raw = self.redis.hgetall(keys.subscriber_status(org_id))
        fields = {_text(k) or "": _text(v) or "" for k, v in raw.items()}
        seen_at: float | None
        try:
            seen_at = float(fields["seen_at"]) if fields.get("seen_at") else None
        except ValueError:
            seen_at = None
        topics: int | None
        try:
            topics = int(fields["topics"]) if fields.get("topics") else None
        except ValueError:
            topics = None
        return {
            "state": fields.get("state") or "unknown",
            "seen_at": seen_at,
            "channel_id": fields.get("channel_id") or None,
            "topics": topics,
        }

    def breakers(self, org_id: str) -> dict[str, str]:
        """Return the state of each breaker of the org that has a key in Redis.

        An ``open`` breaker whose ``open_until`` (epoch ms) has passed reads
        ``half-open``, as ``CircuitBreaker.state()`` reports it.
        """
        pipe = self.redis.pipeline(transaction=False)
        for endpoint in self.breaker_endpoints:
            pipe.hmget(keys.breaker(org_id, endpoint), "state", "open_until")
        rows = pipe.execute()
        now_ms = self.clock() * 1000
        states = {}
        for endpoint, (raw_state, raw_until) in zip(
            self.breaker_endpoints, rows, strict=True
        ):
            if raw_state is None:
                continue
            state = _text(raw_state) or ""
            until_ms = _text(raw_until)
            expired = bool(until_ms and until_ms.isdigit() and now_ms >= int(until_ms))
            if state == "open" and expired:
                state = "half-open"
            states[endpoint] = state
        return states

    def paused_until(self, org_id: str) -> float | None:
        """Return when the org's API budget pause ends (epoch s), or None."""
        until = _ms_to_seconds(_text(self.redis.get(keys.paused_until(org_id))))
        if until is None or until <= self.clock():
            return None
        return until

    def org_overview(self, org_id: str) -> dict[str, Any]:
        """Return counts by state, realtime, breakers, budget pause and queue lag.

        Raises:
            InvalidId: ``org_id`` is invalid.
        """
        keys.check_org_id(org_id)
        now = self.clock()
        oldest_due_at = self.store.oldest_due_at(org_id)
        paused_until = self.paused_until(org_id)
        return {
            "org_id": org_id,
            "counts": self.store.counts(org_id),
            "realtime": self.realtime(org_id),
            "breakers": self.breakers(org_id),
            "paused": paused_until is not None,
            "paused_until": paused_until,
            "throttled": self.throttled(org_id),
            "due_count": self.store.due_count(org_id),
            "oldest_due_at": oldest_due_at,
            "queue_lag_s": (
                max(0.0, now - oldest_due_at) if oldest_due_at is not None else 0.0
            ),
            "last_change_id": self.last_change_id(org_id),
            "now": now,
        }

    def throttled(self, org_id: str) -> dict[str, float] | None:
        """Return the platform's long wait (``retry_after_s``, ``until``) or None."""
        raw = self.redis.hgetall(keys.throttled(org_id))
        if not raw:
            return None
        return {
            (k.decode() if isinstance(k, bytes) else k): float(v)
            for k, v in raw.items()
        }

    def counters(self, org_id: str) -> dict[str, float]:
        """Return the org's store counters (fetch outcomes, status codes, calls)."""
        keys.check_org_id(org_id)
        return self.store.counters(org_id)

    # Changes ------------------------------------------------------------------------

    def last_change_id(self, org_id: str) -> str:
        """Return the id of the org's newest change, or ``0-0`` if there is none.

        A client that reads the records after taking this id and then follows the
        change feed from it misses no change.
        """
        newest = self.redis.xrevrange(keys.changes(org_id), count=1)
        if not newest:
            return "0-0"
        return _text(newest[0][0]) or "0-0"

    def changes(
        self,
        org_id: str,
        after_id: str = "0-0",
        count: int = 100,
        *,
        block_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """Return up to ``count`` changes after ``after_id``, oldest first.

        Each change has its stream ``id``, ``recording_id``, ``conversation_id``,
        ``state``, ``previous``, ``attempts``, ``next_attempt_at`` and ``at`` (epoch
        seconds). With ``block_ms`` the call waits up to that long for a change.

        Raises:
            InvalidId: ``org_id`` is invalid.
            ValueError: ``after_id`` or ``count`` is invalid.
        """
        keys.check_org_id(org_id)
        check_stream_id(after_id)
        _check_limit(count, MAX_CHANGES_COUNT, "count")
        entries = self.store.read_changes(
            org_id, after_id=after_id, count=count, block_ms=block_ms
        )
        return [_change(entry_id, fields) for entry_id, fields in entries]


def _change(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    try:
        attempts = int(fields.get("attempts") or 0)
    except ValueError:
        attempts = 0
    return {
        "id": entry_id,
        "recording_id": fields.get("recording_id", ""),
        "conversation_id": fields.get("conversation_id", ""),
        "state": fields.get("state", ""),
        "previous": fields.get("previous") or None,
        "attempts": attempts,
        "next_attempt_at": _ms_to_seconds(fields.get("next_attempt_at")),
        "at": _ms_to_seconds(fields.get("at")),
    }
