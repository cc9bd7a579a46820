"""Notification channels, their topics and the topic catalogue.

Limits follow the platform: 20 channels per OAuth client (a 21st evicts the
oldest), 1,000 topics per channel, and a 24 h lifetime that each subscription
request extends.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from typing import Any

import attrs

CHANNEL_LIFETIME_S = 24 * 3600.0
MAX_CHANNELS_PER_CLIENT = 20
MAX_TOPICS_PER_CHANNEL = 1000

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
USER_CONVERSATIONS = re.compile(rf"^v2\.users\.(?P<user>{_UUID})\.conversations$")
USER_RECORDINGS = re.compile(
    rf"^v2\.users\.(?P<user>{_UUID})\.conversations\.{_UUID}\.recordings$"
)
USER_RECORDING = re.compile(
    rf"^v2\.users\.(?P<user>{_UUID})\.conversations\.{_UUID}\.recordings\.{_UUID}$"
)
QUEUE_CONVERSATIONS = re.compile(
    rf"^v2\.routing\.queues\.(?P<queue>{_UUID})\.conversations$"
)

CONVERSATION_PERMISSION = "conversation:communication:view"
RECORDING_PERMISSION = "recording:recording:view"
QUEUE_PERMISSION = "routing:queue:view"


class TopicLimitExceeded(ValueError):
    """A subscription request that would put more than 1,000 topics on a channel."""


@attrs.define
class Channel:
    """A notification channel of one OAuth client and its subscribed topics."""

    id: str
    org_id: str
    client_id: str
    created_at_s: float
    expires_at_s: float
    # Insertion-ordered set of topic names.
    topics: dict[str, None] = attrs.field(factory=dict)

    def document(self, connect_uri: str, expires: str) -> dict[str, Any]:
        """Build the platform's ``Channel`` document."""
        return {"id": self.id, "connectUri": connect_uri, "expires": expires}


def check_topic(
    topic: str, *, user_ids: frozenset[str], queue_ids: frozenset[str]
) -> dict[str, Any]:
    """Return the ``ChannelTopic`` entity for one requested topic."""
    for pattern, permission in (
        (USER_CONVERSATIONS, CONVERSATION_PERMISSION),
        (USER_RECORDINGS, RECORDING_PERMISSION),
        (USER_RECORDING, RECORDING_PERMISSION),
    ):
        match = pattern.match(topic)
        if match:
            if match.group("user").lower() in user_ids:
                return {"id": topic, "state": "Permitted"}
            return _rejected(topic, permission, "the user is not in this org")
    match = QUEUE_CONVERSATIONS.match(topic)
    if match:
        if match.group("queue").lower() in queue_ids:
            return {"id": topic, "state": "Permitted"}
        return _rejected(topic, QUEUE_PERMISSION, "the queue is not in this org")
    return _rejected(topic, CONVERSATION_PERMISSION, "the topic is not available")


def _rejected(topic: str, permission: str, reason: str) -> dict[str, Any]:
    return {
        "id": topic,
        "state": "Rejected",
        "rejectionReason": f"Missing permission {permission}: {reason}",
        "missingPermissions": [permission],
    }


class ChannelRegistry:
    """Every channel of every org, with per-client limits and expiry."""

    def __init__(self, *, user_ids: frozenset[str], queue_ids: frozenset[str]) -> None:
        self._channels: dict[str, Channel] = {}
        self._user_ids = frozenset(user_id.lower() for user_id in user_ids)
        self._queue_ids = frozenset(queue_id.lower() for queue_id in queue_ids)

    def create(
        self, *, org_id: str, client_id: str, now_s: float
    ) -> tuple[Channel, list[Channel]]:
        """Create a channel; return it and the channels evicted to stay within 20."""
        channel = Channel(
            id=str(uuid.uuid4()),
            org_id=org_id,
            client_id=client_id,
            created_at_s=now_s,
            expires_at_s=now_s + CHANNEL_LIFETIME_S,
        )
        self._channels[channel.id] = channel
        owned = sorted(
            (c for c in self._channels.values() if c.client_id == client_id),
            key=lambda c: c.created_at_s,
        )
        evicted = owned[: max(0, len(owned) - MAX_CHANNELS_PER_CLIENT)]
        for old in evicted:
            self.remove(old.id)
        return channel, evicted

    def get(self, channel_id: str, *, client_id: str | None = None) -> Channel | None:
        """Return a live channel; with ``client_id`` only when that client owns it."""
        channel = self._channels.get(channel_id)
        if channel is None or (
            client_id is not None and channel.client_id != client_id
        ):
            return None
        return channel

    def remove(self, channel_id: str) -> Channel | None:
        """Delete a channel and return it, or None when it was already gone."""
        return self._channels.pop(channel_id, None)

    def of_org(self, org_id: str) -> list[Channel]:
        """Return the org's live channels, oldest first."""
        return sorted(
            (c for c in self._channels.values() if c.org_id == org_id),
            key=lambda c: c.created_at_s,
        )

    def of_client(self, client_id: str) -> list[Channel]:
        """Return a client's live channels, oldest first."""
        return [c for c in self.all() if c.client_id == client_id]

    def all(self) -> list[Channel]:
        """Return every live channel, oldest first."""
        return sorted(self._channels.values(), key=lambda c: c.created_at_s)

    def subscribed(self, org_id: str, topic: str) -> list[Channel]:
        """Return the org's channels subscribed to ``topic`` now."""
        return [c for c in self.of_org(org_id) if topic in c.topics]

    def expired(self, now_s: float) -> list[Channel]:
        """Return channels whose lifetime has run out."""
        return [c for c in self._channels.values() if c.expires_at_s <= now_s]

    def next_expiry_s(self) -> float | None:
        """Return the earliest expiry time of any channel."""
        return min((c.expires_at_s for c in self._channels.values()), default=None)

    def subscribe(
        self, channel: Channel, topics: Iterable[str], *, replace: bool, now_s: float
    ) -> list[dict[str, Any]]:
        """Add (or with ``replace`` set) topics; return one entity per topic.

        Rejected topics are reported but not stored. The channel's lifetime
        restarts at 24 h.
        """
        requested = list(dict.fromkeys(topics))
        if len(requested) > MAX_TOPICS_PER_CHANNEL:
            raise TopicLimitExceeded(
                f"the request lists {len(requested)} topics; the maximum per channel "
                f"is {MAX_TOPICS_PER_CHANNEL}, so spread topics over more channels"
            )
        entities = [
            check_topic(t, user_ids=self._user_ids, queue_ids=self._queue_ids)
            for t in requested
        ]
        permitted = [e["id"] for e in entities if e["state"] == "Permitted"]
        new_topics = {} if replace else dict(channel.topics)
        new_topics.update(dict.fromkeys(permitted))
        if len(new_topics) > MAX_TOPICS_PER_CHANNEL:
            raise TopicLimitExceeded(
                f"channel {channel.id} would have {len(new_topics)} topics; the "
                f"maximum is {MAX_TOPICS_PER_CHANNEL}, so spread topics over more "
                "channels"
            )
        channel.topics = new_topics
        channel.expires_at_s = now_s + CHANNEL_LIFETIME_S
        return entities

    def listing(self, channel: Channel) -> list[dict[str, Any]]:
        """Return the channel's topics as ``ChannelTopic`` entities."""
        return [{"id": topic, "state": "Permitted"} for topic in channel.topics]

    def counts_by_org(self) -> dict[str, int]:
        """Return how many live channels each org has."""
        counts: dict[str, int] = {}
        for channel in self._channels.values():
            counts[channel.org_id] = counts.get(channel.org_id, 0) + 1
        return counts


def available_topics() -> list[dict[str, Any]]:
    """Build the catalogue entries of the topics the emulator publishes."""
    entries = [
        (
            "v2.users.{id}.conversations",
            "Conversations of a user",
            CONVERSATION_PERMISSION,
        ),
        (
            "v2.users.{id}.conversations.{id}.recordings",
            "Recordings of a user's conversation",
            RECORDING_PERMISSION,
        ),
        (
            "v2.users.{id}.conversations.{id}.recordings.{id}",
            "Transcode completion of one recording",
            RECORDING_PERMISSION,
        ),
        (
            "v2.routing.queues.{id}.conversations",
            "Conversations of a queue",
            QUEUE_PERMISSION,
        ),
    ]
    return [
        {
            "id": topic,
            "description": description,
            "requiresPermissions": [permission],
            "requiresCurrentUser": False,
            "requiresCurrentUserOrPermission": True,
            "requiresDivisionPermissions": False,
            "enforced": False,
            "visibility": "Public",
            "transports": ["Websocket", "EventBridge"],
            "topicParameters": ["id"] * topic.count("{id}"),
        }
        for topic, description, permission in entries
    ]
