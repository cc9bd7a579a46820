"""Each org's API budget, shared by every worker process through Redis.

Genesys limits requests per minute per OAuth client. The budget is a token bucket kept
in one Redis hash per org and updated by a Lua script, so all processes draw from the
same bucket. It refills at 90 % of the limit and holds at most 10 % of it, so no
60-second window, however aligned, sees more requests than the limit allows. A ``429``
sets a "paused until" time that only ever moves later: ``Retry-After`` is a floor that
no backoff cap or jitter may shorten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import attrs
import redis

from recsync.store import keys

log = logging.getLogger(__name__)

# Share of the per-minute limit the bucket may hold as a burst; the rest refills.
BURST_SHARE = 0.1


def _script(client: redis.Redis, name: str) -> Any:
    text = resources.files("recsync.resilience").joinpath(f"lua/{name}.lua").read_text()
    return client.register_script(text)


@attrs.frozen
class Grant:
    """Outcome of asking the budget for one request."""

    granted: bool
    wait_s: float


class ApiBudget:
    """Token bucket of one org's requests per minute, with ``Retry-After`` pauses."""

    def __init__(
        self,
        client: redis.Redis,
        org_id: str,
        *,
        requests_per_minute: int,
        minute_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if requests_per_minute <= 0:
            raise ValueError(
                f"requests_per_minute={requests_per_minute} is invalid; "
                "use a positive number"
            )
        self.org_id = org_id
        self.redis = client
        self.requests_per_minute = requests_per_minute
        self.capacity = max(requests_per_minute * BURST_SHARE, 1.0)
        self.refill_per_minute = requests_per_minute * (1.0 - BURST_SHARE)
        self.minute_s = minute_s
        self.clock = clock
        self._take = _script(client, "budget")
        self._pause = _script(client, "pause")

    def try_acquire(self) -> Grant:
        """Take one request from the budget if one is available now."""
        now_ms = int(self.clock() * 1000)
        refill_per_ms = self.refill_per_minute / (self.minute_s * 1000.0)
        granted, wait_ms = self._take(
            keys=[keys.budget(self.org_id), keys.paused_until(self.org_id)],
            args=[
                now_ms,
                repr(self.capacity),
                repr(refill_per_ms),
                int(self.minute_s * 2000),
            ],
        )
        return Grant(bool(granted), int(wait_ms) / 1000.0)

    def pause_for(self, retry_after_s: float) -> float:
        """Pause the org for ``retry_after_s`` unless a later pause is in force.

        Returns the pause end in force (epoch s).
        """
        until_ms = int((self.clock() + retry_after_s) * 1000)
        in_force = self._pause(
            keys=[keys.paused_until(self.org_id)],
            args=[until_ms, max(int(retry_after_s * 1000) * 2, 1000)],
        )
        return int(in_force) / 1000.0

    def paused_until(self) -> float | None:
        """Return when the current pause ends (epoch s), or None."""
        raw = self.redis.get(keys.paused_until(self.org_id))
        if raw is None:
            return None
        until = int(raw) / 1000.0
        return until if until > self.clock() else None
