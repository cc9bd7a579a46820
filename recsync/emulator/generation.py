"""Seeded traffic of a scenario: users, queues, conversations and recordings.

Everything derives from ``scenario.seed``: the same scenario always yields the same
ids and times. Each org draws its propagation delays from its own random stream, so
adding or removing an org leaves the others' delays unchanged.
"""

from __future__ import annotations

import random
import uuid

import attrs

from recsync.emulator.scenario import OrgSpec, Scenario

# Calls last between these bounds; the recording is indexed when the call ends.
MIN_CALL_S = 20.0
MAX_CALL_S = 600.0
# A screen recording is indexed shortly after the call recording of its conversation.
MAX_SCREEN_OFFSET_S = 2.0


@attrs.frozen
class User:
    """An agent; the same id exists in every org."""

    id: str
    name: str
    email: str


@attrs.frozen
class Conversation:
    """A call handled by one agent, created in the primary at ``created_at_s``."""

    id: str
    user_id: str
    queue_id: str
    created_at_s: float
    call_duration_s: float

    @property
    def started_at_s(self) -> float:
        """Platform time the call started (may be before the emulator started)."""
        return self.created_at_s - self.call_duration_s


@attrs.frozen
class Recording:
    """One recording of a conversation: the call audio or a screen capture."""

    id: str
    conversation_id: str
    user_id: str
    media: str
    created_at_s: float
    transcode_ms: int

    @property
    def media_subtype(self) -> str:
        """The platform's mediaSubtype: "Trunk" (an external call) or "Screen"."""
        return "Screen" if self.media == "screen" else "Trunk"


@attrs.frozen
class Plan:
    """The generated traffic and, per org, when each recording becomes visible."""

    users: tuple[User, ...]
    queue_ids: tuple[str, ...]
    conversations: tuple[Conversation, ...]
    recordings: tuple[Recording, ...]
    # org id -> recording id -> platform seconds when it becomes visible there
    visible_at_s: dict[str, dict[str, float]]


def new_uuid(rng: random.Random) -> str:
    """Draw a version-4 UUID string from a seeded random stream."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate_plan(scenario: Scenario) -> Plan:
    """Generate the scenario's users, conversations, recordings and visibility."""
    rng = random.Random(scenario.seed)
    users = tuple(
        User(
            id=new_uuid(rng),
            name=f"Agent {index + 1:02d}",
            email=f"agent{index + 1:02d}@example.com",
        )
        for index in range(scenario.users)
    )
    queue_ids = tuple(new_uuid(rng) for _ in range(scenario.queues))
    conversations: list[Conversation] = []
    recordings: list[Recording] = []
    for _ in range(scenario.conversations):
        conversation, owned = _generate_conversation(rng, scenario, users, queue_ids)
        conversations.append(conversation)
        recordings.extend(owned)
    visible_at_s = {
        org.id: _propagate(org, scenario.seed, recordings) for org in scenario.orgs
    }
    return Plan(
        users=users,
        queue_ids=queue_ids,
        conversations=tuple(conversations),
        recordings=tuple(recordings),
        visible_at_s=visible_at_s,
    )


def _generate_conversation(
    rng: random.Random,
    scenario: Scenario,
    users: tuple[User, ...],
    queue_ids: tuple[str, ...],
) -> tuple[Conversation, list[Recording]]:
    conversation = Conversation(
        id=new_uuid(rng),
        user_id=rng.choice(users).id,
        queue_id=rng.choice(queue_ids),
        created_at_s=rng.uniform(0.0, scenario.duration_s),
        call_duration_s=rng.uniform(MIN_CALL_S, MAX_CALL_S),
    )
    recordings = [
        Recording(
            id=new_uuid(rng),
            conversation_id=conversation.id,
            user_id=conversation.user_id,
            media="audio",
            created_at_s=conversation.created_at_s,
            transcode_ms=rng.randint(500, 5000),
        )
    ]
    # Draw both numbers every time so the stream does not depend on the ratio.
    screen_draw = rng.random()
    screen_offset_s = rng.uniform(0.0, MAX_SCREEN_OFFSET_S)
    screen_id = new_uuid(rng)
    screen_transcode_ms = rng.randint(500, 5000)
    if screen_draw < scenario.screen_ratio:
        recordings.append(
            Recording(
                id=screen_id,
                conversation_id=conversation.id,
                user_id=conversation.user_id,
                media="screen",
                created_at_s=conversation.created_at_s + screen_offset_s,
                transcode_ms=screen_transcode_ms,
            )
        )
    return conversation, recordings


def _propagate(
    org: OrgSpec, seed: int, recordings: list[Recording]
) -> dict[str, float]:
    rng = random.Random(f"{seed}:propagation:{org.id}")
    return {
        recording.id: recording.created_at_s + org.propagation.sample(rng)
        for recording in recordings
    }
