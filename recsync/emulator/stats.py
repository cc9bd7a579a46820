"""Counters the emulator keeps per org, readable from any thread."""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import attrs


@attrs.define
class OrgStats:
    """Counters of one org since the emulator started."""

    requests: dict[str, dict[str, int]] = attrs.field(
        factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    timeouts_408: int = 0
    rate_limited_429: int = 0
    injected_429: int = 0
    """429s forced by a ``rate_limit`` fault (also counted in rate_limited_429)."""
    held_s: float = 0.0
    channels_created: int = 0
    channels_evicted: int = 0
    channels_expired: int = 0
    sockets_opened: int = 0
    sockets_closed: int = 0
    events_sent: int = 0
    events_dropped: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    events_reordered: int = 0
    heartbeats_sent: int = 0
    tokens_issued: int = 0


class Stats:
    """Per-org counters guarded by a lock so a test thread can read a snapshot."""

    def __init__(self, org_ids: list[str]) -> None:
        self._lock = threading.Lock()
        self._orgs = {org_id: OrgStats() for org_id in org_ids}

    def request(self, org_id: str, route: str, status: int) -> None:
        """Count one answered request by route template and status."""
        with self._lock:
            org = self._orgs.get(org_id)
            if org is None:
                return
            org.requests[route][str(status)] += 1
            if status == 408:
                org.timeouts_408 += 1
            elif status == 429:
                org.rate_limited_429 += 1

    def add(self, org_id: str, counter: str, amount: float = 1) -> None:
        """Add ``amount`` to one named counter of an org."""
        with self._lock:
            org = self._orgs.get(org_id)
            if org is not None:
                setattr(org, counter, getattr(org, counter) + amount)

    def snapshot(
        self, *, channels: dict[str, int], sockets: dict[str, int]
    ) -> dict[str, Any]:
        """Return every counter as plain JSON-ready data, with live gauges."""
        with self._lock:
            result: dict[str, Any] = {}
            for org_id, org in self._orgs.items():
                data = attrs.asdict(org, recurse=False)
                data["requests"] = {
                    route: dict(statuses) for route, statuses in org.requests.items()
                }
                data["held_s"] = round(org.held_s, 3)
                data["channels"] = channels.get(org_id, 0)
                data["sockets"] = sockets.get(org_id, 0)
                result[org_id] = data
            return result
