"""Timed work of a run: visibility events, one-shot faults and channel expiry.

One task walks the plan's visibility times in order and sleeps on the clock until
the next due item. Adding a fault at run time wakes it early.
"""

from __future__ import annotations

import asyncio
import logging

import attrs

from recsync.emulator.notifications import NotificationHub
from recsync.emulator.payloads import conversation_event, recording_event
from recsync.emulator.world import World

logger = logging.getLogger(__name__)

# Upper bound on one sleep, so an expiry moved earlier is noticed within it.
MAX_SLEEP_S = 5.0


@attrs.frozen(order=True)
class Due:
    """A visibility event: a recording or a whole conversation reaches an org."""

    at_s: float
    org_id: str
    kind: str
    item_id: str


def visibility_schedule(world: World) -> list[Due]:
    """Return every visibility event of the plan, earliest first."""
    schedule = []
    for org_id in world.orgs:
        for recording in world.plan.recordings:
            schedule.append(
                Due(
                    world.visible_at(org_id, recording.id),
                    org_id,
                    "recording",
                    recording.id,
                )
            )
        for conversation in world.plan.conversations:
            at_s = world.conversation_visible_at(org_id, conversation.id)
            schedule.append(Due(at_s, org_id, "conversation", conversation.id))
    # Conversation events sort before recording events at the same instant.
    return sorted(schedule, key=lambda due: (due.at_s, due.kind != "conversation"))


class Scheduler:
    """Runs the timed work of a world and its notification hub."""

    def __init__(self, world: World, hub: NotificationHub) -> None:
        self.world = world
        self.hub = hub
        self._schedule = visibility_schedule(world)
        self._next = 0
        self._wakeup = asyncio.Event()

    def wake(self) -> None:
        """Re-check due work now (after a fault was added)."""
        self._wakeup.set()

    async def run(self) -> None:
        """Loop until cancelled."""
        while True:
            self.tick()
            await self._sleep(self._next_due_s() - self.world.now())

    def tick(self) -> None:
        """Carry out everything due by now."""
        now_s = self.world.now()
        while (
            self._next < len(self._schedule)
            and self._schedule[self._next].at_s <= now_s
        ):
            self._emit(self._schedule[self._next])
            self._next += 1
        for fault in self.world.faults.due_one_shots(now_s):
            self.hub.fire(fault)
        self.hub.expire_due()

    def _next_due_s(self) -> float:
        candidates = [self.world.now() + MAX_SLEEP_S]
        if self._next < len(self._schedule):
            candidates.append(self._schedule[self._next].at_s)
        for extra in (
            self.world.faults.next_one_shot_s(),
            self.hub.registry.next_expiry_s(),
        ):
            if extra is not None:
                candidates.append(extra)
        return min(candidates)

    async def _sleep(self, duration_s: float) -> None:
        sleeper = asyncio.ensure_future(self.world.clock.sleep(max(0.0, duration_s)))
        waiter = asyncio.ensure_future(self._wakeup.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            waiter.cancel()
            # gather, unlike awaiting each task under suppress(CancelledError), lets
            # a cancellation of this task itself propagate, so shutdown cannot hang.
            await asyncio.gather(sleeper, waiter, return_exceptions=True)
            self._wakeup.clear()

    def _emit(self, due: Due) -> None:
        world = self.world
        if due.kind == "conversation":
            conversation = world.conversation(due.item_id)
            has_screen = any(
                r.media == "screen" for r in world.recordings_of(conversation.id)
            )
            body = conversation_event(
                conversation, has_screen=has_screen, times=world.times
            )
            self.hub.publish(
                due.org_id, f"v2.users.{conversation.user_id}.conversations", body
            )
            queue_topic = f"v2.routing.queues.{conversation.queue_id}.conversations"
            self.hub.publish(due.org_id, queue_topic, body)
            return
        recording = world.recordings[due.item_id]
        body = recording_event(recording, base_url=world.base_url)
        prefix = (
            f"v2.users.{recording.user_id}.conversations.{recording.conversation_id}"
        )
        self.hub.publish(due.org_id, f"{prefix}.recordings", body)
        self.hub.publish(due.org_id, f"{prefix}.recordings.{recording.id}", body)
