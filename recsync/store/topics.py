"""The realtime topics each org's subscriber should hold.

Writers (the host's ``track`` call, the fetch actor when a record settles) add and
remove topics here. The org's subscriber reads the set and its version counter, and
brings the channel's subscriptions in line. Topics are per recording
(``v2.users.{userId}.conversations.{conversationId}.recordings.{recordingId}``, the
transcode-complete topic), so a settled recording's topic can be dropped at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from recsync.store import keys


def recording_topic(user_id: str, conversation_id: str, recording_id: str) -> str:
    return (
        f"v2.users.{user_id}.conversations.{conversation_id}.recordings.{recording_id}"
    )


def conversation_recordings_topic(user_id: str, conversation_id: str) -> str:
    return f"v2.users.{user_id}.conversations.{conversation_id}.recordings"


def user_conversations_topic(user_id: str) -> str:
    return f"v2.users.{user_id}.conversations"


class TopicRegistry:
    """Per-org sorted set of wanted topics, oldest first, with a version counter."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time):
        self.redis: Any = client
        self.clock = clock

    def _version_key(self, org_id: str) -> str:
        return keys.watch_topics(org_id) + ":version"

    def add(self, org_id: str, topic: str) -> None:
        pipe = self.redis.pipeline()
        pipe.zadd(keys.watch_topics(org_id), {topic: self.clock()}, nx=True)
        pipe.incr(self._version_key(org_id))
        pipe.execute()

    def remove(self, org_id: str, topic: str) -> None:
        """Drop a topic; the version moves only when the topic was wanted."""
        if self.redis.zrem(keys.watch_topics(org_id), topic):
            self.redis.incr(self._version_key(org_id))

    def prune(self, org_id: str, *, added_before: float) -> int:
        """Drop topics added before ``added_before`` (epoch s); return how many.

        A backstop: every record behind such a topic is past its retry deadline,
        so no event on it can matter any more.
        """
        removed = int(
            self.redis.zremrangebyscore(keys.watch_topics(org_id), "-inf", added_before)
        )
        if removed:
            self.redis.incr(self._version_key(org_id))
        return removed

    def is_wanted(self, org_id: str, topic: str) -> bool:
        return self.redis.zscore(keys.watch_topics(org_id), topic) is not None

    def version(self, org_id: str) -> int:
        return int(self.redis.get(self._version_key(org_id)) or 0)

    def wanted(self, org_id: str, *, limit: int) -> list[str]:
        """Return the ``limit`` oldest wanted topics."""
        raw = self.redis.zrange(keys.watch_topics(org_id), 0, limit - 1)
        return [t.decode() if isinstance(t, bytes) else t for t in raw]

    def _live_key(self, org_id: str) -> str:
        return keys.watch_topics(org_id) + ":live"

    def mark_live(self, org_id: str, topics: set[str], *, replace: bool) -> None:
        """Record which topics the platform confirmed on the org's current channel."""
        pipe = self.redis.pipeline()
        if replace:
            pipe.delete(self._live_key(org_id))
        if topics:
            pipe.sadd(self._live_key(org_id), *topics)
        pipe.execute()

    def is_live(self, org_id: str, topic: str) -> bool:
        """Tell whether an event on ``topic`` would reach the org's subscriber now."""
        return bool(self.redis.sismember(self._live_key(org_id), topic))

    def count(self, org_id: str) -> int:
        return int(self.redis.zcard(keys.watch_topics(org_id)))
