"""Parsing of notification-service frames.

The envelope is ``{"topicName", "version", "eventBody", "metadata"}`` and carries no
event id, sequence or timestamp, so callers deduplicate on the fields of the body.
Anything that is not a well-formed envelope becomes a :class:`Frame` of kind
``invalid`` rather than an exception: a bad frame must never end the session.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

MAX_FRAME_BYTES = 1024 * 1024

_RECORDING_TOPIC = re.compile(
    r"^v2\.users\.(?P<user>[^.]+)\.conversations\.(?P<conversation>[^.]+)"
    r"\.recordings(?:\.(?P<recording>[^.]+))?$"
)
_CONVERSATION_TOPIC = re.compile(r"^v2\.users\.(?P<user>[^.]+)\.conversations$")


@attrs.frozen
class Frame:
    """One parsed frame from the socket."""

    kind: str
    """heartbeat, pong, socket_closing, no_longer_subscribed, token_revoked,
    subscription_updated, recording, conversation, unknown or invalid."""
    topic: str = ""
    user_id: str | None = None
    conversation_id: str | None = None
    recording_id: str | None = None
    file_state: str | None = None
    body: dict[str, Any] | None = None
    problem: str | None = None


def parse_frame(raw: str | bytes) -> Frame:
    """Classify one frame; never raises."""
    if len(raw) > MAX_FRAME_BYTES:
        return Frame("invalid", problem=f"frame of {len(raw)} bytes exceeds the limit")
    try:
        envelope = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return Frame("invalid", problem="frame is not JSON")
    if not isinstance(envelope, dict):
        return Frame("invalid", problem="frame is not a JSON object")
    topic = envelope.get("topicName")
    body = envelope.get("eventBody")
    if not isinstance(topic, str):
        return Frame("invalid", problem="frame has no topicName")
    if not isinstance(body, dict):
        body = {}
    return _classify(topic, body)


def _classify(topic: str, body: dict[str, Any]) -> Frame:
    if topic == "channel.metadata":
        message = body.get("message")
        kind = "pong" if message == "pong" else "heartbeat"
        return Frame(kind, topic=topic, body=body)
    if topic == "v2.system.socket_closing":
        return Frame("socket_closing", topic=topic, body=body)
    if topic.startswith("v2.system.no_longer_subscribed"):
        return Frame("no_longer_subscribed", topic=topic, body=body)
    if topic.startswith("v2.system.token_revoked"):
        return Frame("token_revoked", topic=topic, body=body)
    if topic == "v2.subscription.updated":
        return Frame("subscription_updated", topic=topic, body=body)

    match = _RECORDING_TOPIC.match(topic)
    if match:
        recording_id = body.get("id") or match.group("recording")
        conversation_id = body.get("conversationId") or match.group("conversation")
        file_state = body.get("fileState")
        if not isinstance(recording_id, str) or not isinstance(conversation_id, str):
            return Frame("invalid", topic=topic, problem="recording event lacks ids")
        return Frame(
            "recording",
            topic=topic,
            user_id=match.group("user"),
            conversation_id=conversation_id,
            recording_id=recording_id,
            file_state=file_state if isinstance(file_state, str) else None,
            body=body,
        )
    match = _CONVERSATION_TOPIC.match(topic)
    if match:
        conversation_id = body.get("id")
        if not isinstance(conversation_id, str):
            return Frame("invalid", topic=topic, problem="conversation event lacks id")
        return Frame(
            "conversation",
            topic=topic,
            user_id=match.group("user"),
            conversation_id=conversation_id,
            body=body,
        )
    return Frame("unknown", topic=topic, body=body)


def ping_frame() -> str:
    return json.dumps({"message": "ping"})
