"""Per-client request budget in fixed 60 s windows, as the platform counts it."""

from __future__ import annotations

import math

import attrs

from recsync.emulator.clock import Clock

WINDOW_S = 60.0
# Budget reported on responses that belong to no OAuth client (bad or no token).
DEFAULT_LIMIT_PER_MINUTE = 300
ANONYMOUS_CLIENT = ""


@attrs.frozen
class Budget:
    """Outcome of counting one request against a client's window."""

    allowed: bool
    limit: int
    count: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        """Return the ``inin-ratelimit-*`` headers for this outcome."""
        return {
            "inin-ratelimit-allowed": str(self.limit),
            "inin-ratelimit-count": str(self.count),
            "inin-ratelimit-reset": str(self.reset_s),
        }


class RateLimiter:
    """Counts requests per OAuth client in windows aligned to emulator start."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    def _window(self) -> tuple[int, int]:
        now_s = self._clock.now()
        index = int(now_s // WINDOW_S)
        reset_s = max(1, math.ceil((index + 1) * WINDOW_S - now_s))
        return index, reset_s

    def take(self, client_id: str, *, limit: int) -> Budget:
        """Count one request; ``allowed`` is False once the window's budget is spent."""
        index, reset_s = self._window()
        current, count = self._windows.get(client_id, (index, 0))
        if current != index:
            count = 0
        count += 1
        self._windows[client_id] = (index, count)
        return Budget(allowed=count <= limit, limit=limit, count=count, reset_s=reset_s)

    def anonymous(self) -> Budget:
        """Return the budget sent with responses that name no valid client."""
        return self.peek(ANONYMOUS_CLIENT, limit=DEFAULT_LIMIT_PER_MINUTE)

    def peek(self, client_id: str, *, limit: int) -> Budget:
        """Return the current window's state without counting a request."""
        index, reset_s = self._window()
        current, count = self._windows.get(client_id, (index, 0))
        if current != index:
            count = 0
        return Budget(allowed=count < limit, limit=limit, count=count, reset_s=reset_s)
