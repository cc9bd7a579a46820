"""Circuit breaker on fakeredis with a fake clock."""

from __future__ import annotations

import threading

import pytest
import redis

from recsync.manifest.models import BreakerPolicy
from recsync.resilience.breaker import (
    BreakerChange,
    BreakerState,
    CircuitBreaker,
    is_failure,
)

POLICY = BreakerPolicy(
    failure_ratio=0.05,
    window_s=10.0,
    min_calls=20,
    open_s=5.0,
    slow_call_s=1.0,
    slow_call_ratio=0.5,
)


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[BreakerChange]:
    return []


@pytest.fixture
def breaker(
    fake_redis: redis.Redis, clock: FakeClock, changes: list[BreakerChange]
) -> CircuitBreaker:
    return CircuitBreaker(
        fake_redis,
        "org-a",
        "recordingmetadata",
        POLICY,
        clock,
        on_change=changes.append,
    )


def feed(breaker: CircuitBreaker, *, calls: int, failures: int, slow: int = 0) -> None:
    # Failures come last, so the ratio crosses the threshold only at the end.
    for index in range(calls):
        breaker.record(failure=index >= calls - failures, slow=index < slow)


def open_breaker(breaker: CircuitBreaker) -> None:
    feed(breaker, calls=20, failures=20)
    assert breaker.state() is BreakerState.OPEN


def test_breaker_starts_closed(breaker: CircuitBreaker) -> None:
    assert breaker.state() is BreakerState.CLOSED
    assert breaker.allow().allowed


def test_breaker_below_min_calls_stays_closed(breaker: CircuitBreaker) -> None:
    feed(breaker, calls=19, failures=19)
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_opens_above_ratio(
    breaker: CircuitBreaker, changes: list[BreakerChange]
) -> None:
    feed(breaker, calls=40, failures=3)  # 7.5 % over 40 calls
    assert breaker.state() is BreakerState.OPEN
    assert [c.state for c in changes] == [BreakerState.OPEN]
    assert changes[0].failure_ratio > 0.05
    assert changes[0].window_s == POLICY.window_s


def test_breaker_ratio_at_threshold_stays_closed(breaker: CircuitBreaker) -> None:
    feed(breaker, calls=40, failures=2)  # exactly 5 %
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_open_denies_calls(breaker: CircuitBreaker) -> None:
    open_breaker(breaker)
    permission = breaker.allow()
    assert not permission.allowed
    assert permission.state is BreakerState.OPEN


def test_breaker_window_forgets_old_failures(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    feed(breaker, calls=10, failures=10)
    clock.now += POLICY.window_s + 1
    feed(breaker, calls=20, failures=0)
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_window_slides_over_buckets(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    feed(breaker, calls=10, failures=2)
    clock.now += POLICY.window_s / 2
    feed(breaker, calls=10, failures=0)
    assert breaker.state() is BreakerState.OPEN


@pytest.mark.parametrize(
    ("status", "timed_out", "expected"),
    [
        (200, False, False),
        (202, False, False),
        (429, False, False),
        (404, False, False),
        (408, False, True),
        (504, False, True),
        (503, False, True),
        (None, True, True),
        (None, False, True),
    ],
)
def test_is_failure_statuses(
    status: int | None, timed_out: bool, expected: bool
) -> None:
    assert is_failure(status, timed_out=timed_out) is expected


def test_breaker_ignores_429_and_202(breaker: CircuitBreaker) -> None:
    for status in [429, 202] * 20:
        breaker.record(failure=is_failure(status, timed_out=False), slow=False)
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_opens_on_slow_calls(breaker: CircuitBreaker) -> None:
    feed(breaker, calls=20, failures=0, slow=11)
    assert breaker.state() is BreakerState.OPEN


def test_breaker_slow_below_ratio_stays_closed(breaker: CircuitBreaker) -> None:
    feed(breaker, calls=20, failures=0, slow=10)
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_turns_half_open(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    assert breaker.state() is BreakerState.HALF_OPEN
    permission = breaker.allow()
    assert permission.allowed
    assert permission.probe


def test_breaker_half_open_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    first = breaker.allow()
    second = breaker.allow()
    assert first.probe
    assert not second.allowed


def test_breaker_one_probe_among_threads(
    fake_redis: redis.Redis, breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    start = threading.Barrier(8)
    probes: list[bool] = []
    lock = threading.Lock()

    def ask() -> None:
        own = CircuitBreaker(fake_redis, "org-a", "recordingmetadata", POLICY, clock)
        start.wait()
        permission = own.allow()
        with lock:
            probes.append(permission.probe)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert probes.count(True) == 1
    assert len(probes) == 8


def test_breaker_probe_success_closes(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[BreakerChange]
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    assert breaker.allow().probe
    breaker.record(failure=False, slow=False, probe=True)
    assert breaker.state() is BreakerState.CLOSED
    assert [str(c.state) for c in changes] == ["open", "half-open", "closed"]


def test_breaker_probe_success_resets_window(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    breaker.allow()
    breaker.record(failure=False, slow=False, probe=True)
    feed(breaker, calls=1, failures=1)
    assert breaker.state() is BreakerState.CLOSED


def test_breaker_probe_failure_reopens(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    breaker.allow()
    breaker.record(failure=True, slow=False, probe=True)
    assert breaker.state() is BreakerState.OPEN
    assert not breaker.allow().allowed


def test_breaker_non_probe_outcome_keeps_half_open(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    breaker.allow()
    breaker.record(failure=False, slow=False, probe=False)
    assert breaker.state() is BreakerState.HALF_OPEN


def test_breaker_released_probe_frees_lock(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.now += POLICY.open_s
    permission = breaker.allow()
    with breaker.probing(permission):
        pass  # the call never went out (budget spent)
    assert breaker.allow().probe


def test_breaker_logs_open_once(
    breaker: CircuitBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="recsync.resilience.breaker")
    feed(breaker, calls=40, failures=40)
    opened = [r for r in caplog.records if "opened" in r.getMessage()]
    assert len(opened) == 1
    assert opened[0].levelname == "WARNING"


def test_breaker_listener_error_is_contained(
    fake_redis: redis.Redis, clock: FakeClock
) -> None:
    def broken(change: BreakerChange) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker(
        fake_redis, "org-a", "recordingmetadata", POLICY, clock, on_change=broken
    )
    feed(breaker, calls=20, failures=20)
    assert breaker.state() is BreakerState.OPEN


def test_breakers_are_per_endpoint(
    fake_redis: redis.Redis, breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    other = CircuitBreaker(fake_redis, "org-a", "batch", POLICY, clock)
    assert other.state() is BreakerState.CLOSED
