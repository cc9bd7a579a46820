"""The emulated platform's state: orgs, traffic, visibility, tokens, limits, faults.

A recording exists once the primary creates it (``created_at_s``) and becomes
visible in org o at ``visible_at_s[o]``. Between the two a request from org o finds
it pending (202 or a blocking hold); before creation it is unknown (404).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attrs

from recsync.emulator.auth import TokenBook
from recsync.emulator.batch import BatchItem, BatchJobs, Resolver
from recsync.emulator.clock import Clock, ScaledClock
from recsync.emulator.faults import FaultBook
from recsync.emulator.generation import Conversation, Plan, Recording, generate_plan
from recsync.emulator.payloads import Timestamps
from recsync.emulator.ratelimit import RateLimiter
from recsync.emulator.scenario import FaultSpec, OrgSpec, Scenario
from recsync.emulator.stats import Stats

logger = logging.getLogger(__name__)

# The platform caps concurrent screen recordings per org at this figure.
MAX_SCREEN_SESSIONS = 2000


@attrs.frozen
class Lookup:
    """State of a conversation or recording in one org at one time.

    ``known`` is False for ids never created (404). Otherwise ``visible`` lists the
    recordings the org can see and ``next_visible_at_s`` tells when the first
    pending one appears (None when nothing is pending).
    """

    known: bool
    visible: tuple[Recording, ...] = ()
    next_visible_at_s: float | None = None


class World:
    """In-process model of every org of a scenario; the app's single state."""

    def __init__(self, scenario: Scenario, *, clock: Clock | None = None) -> None:
        self.scenario = scenario
        # Public address used in event payloads; the server sets it once bound.
        self.base_url = "http://127.0.0.1"
        self.clock: Clock = clock if clock is not None else ScaledClock()
        self.plan: Plan = generate_plan(scenario)
        self.orgs: dict[str, OrgSpec] = {org.id: org for org in scenario.orgs}
        self.times = Timestamps(scenario.epoch)
        self.stats = Stats(list(self.orgs))
        self.tokens = TokenBook(scenario.orgs, self.clock)
        self.limiter = RateLimiter(self.clock)
        self.faults = FaultBook(scenario.faults, seed=scenario.seed)
        self.batch = BatchJobs(completion_s=scenario.batch_completion_s)
        self.conversations = {c.id: c for c in self.plan.conversations}
        self.recordings = {r.id: r for r in self.plan.recordings}
        # Live channel and socket counts per org, registered by the notification hub.
        self.gauges: Callable[[], tuple[dict[str, int], dict[str, int]]] = lambda: (
            {},
            {},
        )
        self.user_ids = frozenset(user.id for user in self.plan.users)
        self.queue_ids = frozenset(self.plan.queue_ids)
        self._by_conversation: dict[str, list[Recording]] = {}
        for recording in self.plan.recordings:
            self._by_conversation.setdefault(recording.conversation_id, []).append(
                recording
            )

    def now(self) -> float:
        """Return platform seconds since start."""
        return self.clock.now()

    def visible_at(self, org_id: str, recording_id: str) -> float:
        """Return when a recording becomes visible in an org (platform seconds)."""
        return self.plan.visible_at_s[org_id][recording_id]

    def recordings_of(self, conversation_id: str) -> list[Recording]:
        """Return every recording of a conversation, created or not yet."""
        return list(self._by_conversation.get(conversation_id, []))

    def conversation_visible_at(self, org_id: str, conversation_id: str) -> float:
        """Return when the first recording of a conversation is visible in an org."""
        return min(
            self.visible_at(org_id, recording.id)
            for recording in self._by_conversation[conversation_id]
        )

    def lookup_conversation(self, org_id: str, conversation_id: str) -> Lookup:
        """Return the recordings of a conversation that are visible in an org now."""
        return self._lookup(org_id, self._by_conversation.get(conversation_id, []))

    def lookup_recording(
        self, org_id: str, conversation_id: str, recording_id: str
    ) -> Lookup:
        """Return whether one recording of a conversation is visible in an org now."""
        recording = self.recordings.get(recording_id)
        if recording is None or recording.conversation_id != conversation_id:
            return Lookup(known=False)
        return self._lookup(org_id, [recording])

    def _lookup(self, org_id: str, recordings: list[Recording]) -> Lookup:
        now_s = self.now()
        created = [r for r in recordings if r.created_at_s <= now_s]
        if not created:
            return Lookup(known=False)
        visible = tuple(r for r in created if self.visible_at(org_id, r.id) <= now_s)
        pending = [self.visible_at(org_id, r.id) for r in created if r not in visible]
        return Lookup(
            known=True,
            visible=visible,
            next_visible_at_s=min(pending) if pending else None,
        )

    def conversation(self, conversation_id: str) -> Conversation:
        """Return a conversation of the plan by id."""
        return self.conversations[conversation_id]

    def active_screen_sessions(self, org_id: str) -> int:
        """Count screen recordings whose call is in progress now (capped at 2000)."""
        now_s = self.now()
        count = 0
        for recording in self.plan.recordings:
            if recording.media != "screen":
                continue
            conversation = self.conversations[recording.conversation_id]
            if conversation.started_at_s <= now_s < conversation.created_at_s:
                count += 1
        return min(count, MAX_SCREEN_SESSIONS)

    def batch_rows(self, org_id: str, base_url: str) -> Resolver:
        """Return the resolver that turns a batch item into result rows for an org."""

        def resolve(
            item: BatchItem, submitted_at_s: float, completes_at_s: float
        ) -> list[tuple[str | None, str, str | None]]:
            recordings = [
                r
                for r in self._by_conversation.get(item.conversation_id, [])
                if r.created_at_s <= submitted_at_s
                and (item.recording_id is None or r.id == item.recording_id)
            ]
            if not recordings:
                return [(item.recording_id, "", None)]
            rows: list[tuple[str | None, str, str | None]] = []
            for recording in recordings:
                visible = self.visible_at(org_id, recording.id) <= completes_at_s
                url = f"{base_url}/_emulator/media/{recording.id}" if visible else None
                content_type = (
                    "video/webm" if recording.media == "screen" else "audio/ogg"
                )
                rows.append((recording.id, content_type, url))
            return rows

        return resolve

    def timeline(self) -> list[dict[str, Any]]:
        """Return one entry per (org, recording) with creation and visibility times."""
        entries = []
        for org_id in self.orgs:
            for recording in self.plan.recordings:
                entries.append(
                    {
                        "org": org_id,
                        "conversation_id": recording.conversation_id,
                        "recording_id": recording.id,
                        "user_id": recording.user_id,
                        "media": recording.media,
                        "created_at_s": round(recording.created_at_s, 6),
                        "visible_at_s": round(self.visible_at(org_id, recording.id), 6),
                    }
                )
        return entries

    def stats_report(self) -> dict[str, Any]:
        """Return per-org counters with live channel and socket counts.

        Safe in the server's event loop; from another thread use
        ``EmulatorServer.stats()``, which runs this in the loop.
        """
        channels, sockets = self.gauges()
        return self.stats.snapshot(channels=channels, sockets=sockets)

    def add_fault(self, fault: FaultSpec) -> None:
        """Add a fault at run time (already checked against the scenario's orgs)."""
        self.faults.add(fault)
