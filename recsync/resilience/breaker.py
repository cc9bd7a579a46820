"""Circuit breaker per (org, endpoint), shared by every worker process through Redis.

The breaker counts call outcomes over a sliding time window split into buckets (one
Redis hash per breaker) and opens when, over at least ``min_calls`` calls, the share
of failures exceeds ``failure_ratio`` or the share of slow calls exceeds
``slow_call_ratio``. After ``open_s`` it turns half-open and admits exactly one probe
call across the cluster (a Redis lock with a TTL, so a probe whose worker died frees
the way after ``probe_ttl_s``). A good probe closes the breaker and clears the window;
a bad one opens it again.

pybreaker (1.x, even with its ``CircuitRedisStorage``) opens after ``fail_max``
consecutive failures. It has no failure ratio over a time window and no slow-call
signal, so the state lives in two Lua scripts here (``lua/breaker_allow.lua`` and
``lua/breaker_record.lua``).

Each transition is reported once, by the process whose call caused it: the Lua
script returns the transition to that caller only.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import attrs
import redis

from recsync.manifest.models import BreakerPolicy
from recsync.store import keys

log = logging.getLogger(__name__)

Clock = Callable[[], float]
BUCKETS_PER_WINDOW = 10
DEFAULT_PROBE_TTL_S = 30.0


class BreakerState(enum.StrEnum):
    """States of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@attrs.frozen
class Permission:
    """Outcome of asking the breaker for one call."""

    allowed: bool
    probe: bool
    state: BreakerState


@attrs.frozen
class BreakerChange:
    """One state transition, as passed to the ``on_change`` callback."""

    org_id: str
    endpoint: str
    state: BreakerState
    failure_ratio: float
    slow_ratio: float
    window_s: float


ChangeCallback = Callable[[BreakerChange], None]


def _script(client: redis.Redis, name: str) -> Any:
    text = resources.files("recsync.resilience").joinpath(f"lua/{name}.lua").read_text()
    return client.register_script(text)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CircuitBreaker:
    """The breaker of one org's endpoint; cheap to build, all state is in Redis."""

    def __init__(
        self,
        client: redis.Redis,
        org_id: str,
        endpoint: str,
        policy: BreakerPolicy,
        clock: Clock = time.time,
        *,
        probe_ttl_s: float = DEFAULT_PROBE_TTL_S,
        on_change: ChangeCallback | None = None,
    ) -> None:
        if policy.window_s <= 0 or policy.open_s <= 0:
            raise ValueError(
                f"invalid breaker policy: window_s={policy.window_s}, "
                f"open_s={policy.open_s}; both must be positive"
            )
        if probe_ttl_s <= 0:
            raise ValueError(f"probe_ttl_s={probe_ttl_s} is invalid; use > 0")
        self.redis = client
        self.org_id = org_id
        self.endpoint = endpoint
        self.policy = policy
        self.clock = clock
        self.probe_ttl_s = probe_ttl_s
        self.on_change = on_change
        self.key = keys.breaker(org_id, endpoint)
        self.probe_key = f"{self.key}:probe"
        self._allow = _script(client, "breaker_allow")
        self._record = _script(client, "breaker_record")
        # The probe token of the current thread, so the outcome recorded from the
        # client's observer (same thread) settles the probe this thread holds.
        self._local = threading.local()

    def allow(self) -> Permission:
        """Ask whether one call may go out now; a half-open breaker admits one probe."""
        token = uuid.uuid4().hex
        allowed, probe, state, transition = self._allow(
            keys=[self.key, self.probe_key],
            args=[self._now_ms(), max(int(self.probe_ttl_s * 1000), 1), token],
        )
        current = BreakerState(_text(state))
        if bool(probe):
            self._local.token = token
        if _text(transition):
            self._announce(current, 0.0, 0.0)
        return Permission(bool(allowed), bool(probe), current)

    def record(self, *, failure: bool, slow: bool, probe: bool = False) -> BreakerState:
        """Count one call outcome; ``probe`` settles this thread's half-open probe."""
        token = getattr(self._local, "token", None) if probe else None
        if probe:
            self._local.token = None
        policy = self.policy
        bucket_ms = max(int(policy.window_s * 1000 / BUCKETS_PER_WINDOW), 1)
        state, transition, failure_ratio, slow_ratio, _calls = self._record(
            keys=[self.key, self.probe_key],
            args=[
                self._now_ms(),
                bucket_ms,
                BUCKETS_PER_WINDOW,
                1 if failure else 0,
                1 if slow else 0,
                1 if token else 0,
                token or "",
                policy.min_calls,
                repr(policy.failure_ratio),
                repr(policy.slow_call_ratio),
                max(int(policy.open_s * 1000), 1),
            ],
        )
        current = BreakerState(_text(state))
        if _text(transition):
            self._announce(
                current, float(_text(failure_ratio)), float(_text(slow_ratio))
            )
        return current

    def holds_probe(self) -> bool:
        """Whether the current thread owns the half-open probe lock."""
        return bool(getattr(self._local, "token", None))

    def release_probe(self) -> None:
        """Give up this thread's probe without an outcome (the call never went out)."""
        token = getattr(self._local, "token", None)
        self._local.token = None
        if token and self.redis.get(self.probe_key) == token.encode():
            self.redis.delete(self.probe_key)

    @contextlib.contextmanager
    def probing(self, permission: Permission) -> Iterator[None]:
        """Release the probe on exit unless an outcome was recorded inside."""
        try:
            yield
        finally:
            if permission.probe and self.holds_probe():
                self.release_probe()

    def state(self) -> BreakerState:
        """Return the state; an open breaker past its open time reads half-open."""
        return peek_state(self.redis, self.org_id, self.endpoint, now=self.clock())

    def open_until(self) -> float | None:
        """Return when the open state ends (epoch s), or None unless open."""
        state, open_until = self.redis.hmget(self.key, "state", "open_until")
        if state is None or _text(state) != BreakerState.OPEN or open_until is None:
            return None
        return int(open_until) / 1000.0

    def reset(self) -> None:
        """Forget every count and close the breaker (tests, uninstall)."""
        self.redis.delete(self.key, self.probe_key)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _announce(
        self, state: BreakerState, failure_ratio: float, slow_ratio: float
    ) -> None:
        window_s = self.policy.window_s
        if state is BreakerState.OPEN:
            log.warning(
                "org %s: %s breaker opened: failure ratio %.3f, slow ratio %.3f "
                "over %.1f s",
                self.org_id,
                self.endpoint,
                failure_ratio,
                slow_ratio,
                window_s,
            )
        else:
            log.info(
                "org %s: %s breaker %s: failure ratio %.3f over %.1f s",
                self.org_id,
                self.endpoint,
                state,
                failure_ratio,
                window_s,
            )
        if self.on_change is None:
            return
        change = BreakerChange(
            self.org_id, self.endpoint, state, failure_ratio, slow_ratio, window_s
        )
        try:
            self.on_change(change)
        except Exception:  # a listener's bug must not fail the platform call
            log.exception(
                "org %s: %s breaker: change listener failed", self.org_id, self.endpoint
            )


def peek_state(
    client: redis.Redis, org_id: str, endpoint: str, *, now: float
) -> BreakerState:
    """Read a breaker's state from Redis; an open one past its time reads half-open."""
    state, open_until = client.hmget(
        keys.breaker(org_id, endpoint), "state", "open_until"
    )
    if state is None:
        return BreakerState.CLOSED
    current = BreakerState(_text(state))
    if current is BreakerState.OPEN and int(now * 1000) >= int(open_until or 0):
        return BreakerState.HALF_OPEN
    return current


def is_failure(status: int | None, *, timed_out: bool) -> bool:
    """Whether a call outcome counts against the breaker.

    Timeouts (client-side, ``408``, ``504``), other ``5xx`` and connection errors
    (no status) count. ``202`` (not indexed yet), ``429`` (the budget handles it) and
    every other status show that the platform responds, so they do not count.
    """
    if timed_out or status is None:
        return True
    return status == 408 or status >= 500
