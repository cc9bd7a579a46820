"""Platform time for the emulator.

Every duration the emulator handles is in platform seconds. A time scale F maps them
to wall time (wall_s = platform_s * F), so F=0.05 runs the same schedule 20 times
faster. Waits go through the clock, never through ``asyncio.sleep`` directly, so unit
tests can swap in :class:`FakeClock` and run a 30 s hold instantly.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Source of platform time and of waits measured in platform seconds."""

    @property
    def time_scale(self) -> float:
        """Wall seconds per platform second."""
        ...

    def now(self) -> float:
        """Return platform seconds since the emulator started."""
        ...

    async def sleep(self, duration_s: float) -> None:
        """Wait ``duration_s`` platform seconds without blocking the event loop."""
        ...


class ScaledClock:
    """Clock that runs ``1 / time_scale`` platform seconds per wall second."""

    def __init__(self, *, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(
                f"time_scale: {time_scale!r} is not positive; use a factor such as "
                "1.0 (real time) or 0.05 (20 times faster)"
            )
        self._time_scale = float(time_scale)
        self._start = time.monotonic()

    @property
    def time_scale(self) -> float:
        """Wall seconds per platform second."""
        return self._time_scale

    def now(self) -> float:
        """Return platform seconds since this clock was created."""
        return (time.monotonic() - self._start) / self._time_scale

    async def sleep(self, duration_s: float) -> None:
        """Wait ``duration_s`` platform seconds (scaled to wall time)."""
        await asyncio.sleep(max(0.0, duration_s) * self._time_scale)

    def reset(self) -> None:
        """Restart platform time at zero (when a server starts serving)."""
        self._start = time.monotonic()

    def to_wall_s(self, platform_s: float) -> float:
        """Convert a platform duration into wall seconds."""
        return platform_s * self._time_scale


class FakeClock:
    """Clock for tests: time moves only by :meth:`advance` or by a sleep.

    A sleep jumps the clock forward by its duration at once, so code that waits
    30 platform seconds finishes in one event-loop turn with ``now()`` 30 s later.
    """

    def __init__(self, *, start_s: float = 0.0, time_scale: float = 1.0) -> None:
        self._now_s = float(start_s)
        self._time_scale = time_scale

    @property
    def time_scale(self) -> float:
        """Wall seconds per platform second (reported, never applied)."""
        return self._time_scale

    def now(self) -> float:
        """Return the current fake platform time in seconds."""
        return self._now_s

    def advance(self, duration_s: float) -> None:
        """Move the clock forward by ``duration_s`` platform seconds."""
        if duration_s < 0:
            raise ValueError(f"advance: {duration_s!r} is negative; time only moves on")
        self._now_s += duration_s

    async def sleep(self, duration_s: float) -> None:
        """Jump forward by ``duration_s`` and yield once to the event loop."""
        self._now_s += max(0.0, duration_s)
        await asyncio.sleep(0)
