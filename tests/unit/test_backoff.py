"""Property tests of the retry schedule."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from recsync.resilience.backoff import BackoffSchedule, Jitter

jitters = st.sampled_from(list(Jitter))
attempts = st.integers(min_value=1, max_value=10_000)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
nows = st.floats(min_value=0, max_value=4e9, allow_nan=False)


def test_backoff_none_exact_steps() -> None:
    schedule = BackoffSchedule(jitter=Jitter.NONE)
    delays = [schedule.delay_s(attempt) for attempt in range(1, 8)]
    assert delays == [5.0, 10.0, 20.0, 30.0, 30.0, 30.0, 30.0]


@given(attempt=attempts)
def test_backoff_none_equals_step(attempt: int) -> None:
    schedule = BackoffSchedule(jitter=Jitter.NONE)
    assert schedule.delay_s(attempt) == min(30.0, 5.0 * 2 ** min(attempt - 1, 10))


@given(
    jitter=jitters,
    attempt=attempts,
    seed=seeds,
    previous=st.none() | st.floats(min_value=0, max_value=1e6),
)
def test_backoff_never_exceeds_cap(
    jitter: Jitter, attempt: int, seed: int, previous: float | None
) -> None:
    schedule = BackoffSchedule(jitter=jitter)
    delay = schedule.delay_s(
        attempt, previous_delay_s=previous, rng=random.Random(seed)
    )
    assert delay <= schedule.max_delay_s


@given(jitter=jitters, attempt=attempts, seed=seeds)
def test_backoff_never_negative(jitter: Jitter, attempt: int, seed: int) -> None:
    schedule = BackoffSchedule(jitter=jitter)
    assert schedule.delay_s(attempt, rng=random.Random(seed)) >= 0.0


@given(
    jitter=jitters,
    attempt=attempts,
    seed=seeds,
    now=nows,
    age_s=st.floats(min_value=0, max_value=10_000),
)
def test_backoff_deadline_honoured(
    jitter: Jitter, attempt: int, seed: int, now: float, age_s: float
) -> None:
    schedule = BackoffSchedule(jitter=jitter, deadline_s=600.0)
    created_at = now - age_s
    when = schedule.next_attempt_at(
        attempt=attempt, now=now, created_at=created_at, rng=random.Random(seed)
    )
    if when is not None:
        assert when <= created_at + schedule.deadline_s


@given(jitter=jitters, attempt=attempts, seed=seeds, now=nows)
def test_backoff_past_deadline_gives_none(
    jitter: Jitter, attempt: int, seed: int, now: float
) -> None:
    schedule = BackoffSchedule(jitter=jitter, deadline_s=600.0)
    when = schedule.next_attempt_at(
        attempt=attempt,
        now=now,
        created_at=now - 601.0,
        rng=random.Random(seed),
    )
    assert when is None


@given(
    jitter=jitters,
    attempt=attempts,
    seed=seeds,
    now=st.floats(min_value=0, max_value=1e9),
    retry_after_s=st.floats(min_value=0, max_value=3000),
)
def test_backoff_not_before_never_shortened(
    jitter: Jitter, attempt: int, seed: int, now: float, retry_after_s: float
) -> None:
    schedule = BackoffSchedule(jitter=jitter, deadline_s=3600.0)
    not_before = now + retry_after_s
    when = schedule.next_attempt_at(
        attempt=attempt,
        now=now,
        created_at=now,
        not_before=not_before,
        rng=random.Random(seed),
    )
    if when is not None:
        assert when >= not_before


@given(jitter=jitters, attempt=attempts, seed=seeds, now=nows)
def test_backoff_next_attempt_after_now(
    jitter: Jitter, attempt: int, seed: int, now: float
) -> None:
    schedule = BackoffSchedule(jitter=jitter)
    when = schedule.next_attempt_at(
        attempt=attempt, now=now, created_at=now, rng=random.Random(seed)
    )
    assert when is not None
    assert when >= now
