"""Retry schedule: exponential steps with a cap, jitter and a deadline.

Dramatiq's Retries middleware draws ``min_backoff * 2**n * U(1, 2)`` with a 15 s floor,
which cannot express "5 s, 10 s, 20 s, 30 s, 30 s ...", so recsync computes its own
delays and schedules each retry as a delayed message.

Jitter variants (from AWS's "Exponential Backoff And Jitter" article):
``none`` uses the step itself; ``full`` draws uniformly from [0, step]; and
``decorrelated`` draws uniformly from [initial, 3 * previous delay], capped.
"""

from __future__ import annotations

import enum
import random

import attrs


class Jitter(enum.StrEnum):
    NONE = "none"
    FULL = "full"
    DECORRELATED = "decorrelated"


@attrs.frozen(kw_only=True)
class BackoffSchedule:
    """Delays between attempts; every duration in seconds."""

    initial_delay_s: float = 5.0
    multiplier: float = 2.0
    max_delay_s: float = 30.0
    jitter: Jitter = attrs.field(default=Jitter.FULL, converter=Jitter)
    deadline_s: float = 3600.0

    def __attrs_post_init__(self) -> None:
        if self.initial_delay_s <= 0 or self.max_delay_s < self.initial_delay_s:
            raise ValueError(
                f"invalid backoff: initial_delay_s={self.initial_delay_s}, "
                f"max_delay_s={self.max_delay_s}; need 0 < initial <= max"
            )
        if self.multiplier < 1:
            raise ValueError(f"invalid backoff multiplier {self.multiplier}; use >= 1")

    def step_s(self, attempt: int) -> float:
        """Return the delay without jitter after failed attempt ``attempt``, from 1."""
        exponent = max(attempt - 1, 0)
        # Past 2**64 every realistic step is capped; this also avoids float overflow.
        if exponent > 64:
            return self.max_delay_s
        return min(self.max_delay_s, self.initial_delay_s * self.multiplier**exponent)

    def delay_s(
        self,
        attempt: int,
        *,
        previous_delay_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        """Return the delay to wait after failed attempt ``attempt`` (1-based)."""
        draw = (rng or random).uniform
        step = self.step_s(attempt)
        if self.jitter is Jitter.NONE:
            return step
        if self.jitter is Jitter.FULL:
            return draw(0.0, step)
        previous = previous_delay_s if previous_delay_s else self.initial_delay_s
        upper = max(self.initial_delay_s, previous * 3.0)
        return min(self.max_delay_s, draw(self.initial_delay_s, upper))

    def next_attempt_at(
        self,
        *,
        attempt: int,
        now: float,
        created_at: float,
        not_before: float = 0.0,
        previous_delay_s: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Return when to try next (epoch s), or None when the deadline has passed.

        ``not_before`` is a floor that no jitter or cap may undercut: a platform
        ``Retry-After`` or a paused budget.
        """
        delay = self.delay_s(attempt, previous_delay_s=previous_delay_s, rng=rng)
        when = max(now + delay, not_before)
        if when > created_at + self.deadline_s:
            return None
        return when

    def scaled(self, factor: float) -> BackoffSchedule:
        """Return the same schedule with every duration multiplied by ``factor``."""
        return attrs.evolve(
            self,
            initial_delay_s=self.initial_delay_s * factor,
            max_delay_s=self.max_delay_s * factor,
            deadline_s=self.deadline_s * factor,
        )
