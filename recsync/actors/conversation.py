"""Settle every visible recording of a conversation with one platform call.

A conversation event (``v2.users.{userId}.conversations``) means the conversation now
exists in the org. One non-blocking call to the conversation-level
``recordingmetadata`` endpoint then returns all its recordings that the org has
indexed, so one call can settle several records, and records the host never announced
are discovered and tracked here.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from recsync.errors import NotYet, RecsyncError
from recsync.platform.metadata import check_metadata, fingerprint, is_final
from recsync.runtime import Runtime
from recsync.store.topics import (
    TopicRegistry,
    conversation_recordings_topic,
    recording_topic,
)

log = logging.getLogger(__name__)


def fetch_conversation(
    runtime: Runtime,
    org_id: str,
    conversation_id: str,
    *,
    user_id: str | None,
    expects_screen: bool = False,
) -> int:
    """Settle the conversation's visible recordings; return how many became ready."""
    if not runtime.is_active(org_id):
        return 0
    store = runtime.store
    if not expects_screen and store.conversation_settled(org_id, conversation_id):
        # The host's own fetch got there first (usual in the primary org).
        store.incr(org_id, "conversation:already-settled")
        return 0
    expected = 2 if expects_screen else 1
    if runtime.manifest.org(org_id).is_primary and (
        store.conversation_tracked(org_id, conversation_id) >= expected
    ):
        # The primary indexes a recording before the host hears of it, so when the
        # host has announced every recording the event implies (the call, and the
        # screen recording if any), a fetch is already on its way for each.
        store.incr(org_id, "conversation:host-fetching")
        return 0
    try:
        bodies = runtime.org(org_id).client.conversation_metadata(conversation_id)
    except NotYet as exc:
        # Nothing indexed yet (202) or no budget: the recording events and the
        # records' own schedules take it from here.
        store.incr(org_id, "conversation:not-yet")
        log.debug("org %s conversation %s: %s", org_id, conversation_id, exc)
        return 0
    except RecsyncError as exc:
        store.incr(org_id, "conversation:error")
        log.warning(
            "org %s conversation %s: listing failed: %s", org_id, conversation_id, exc
        )
        return 0

    settled = sum(
        _settle_one(runtime, org_id, conversation_id, body, user_id=user_id)
        for body in bodies
    )
    store.incr(org_id, "conversation:fetched")
    has_screen = any(body.get("media") == "screen" for body in bodies)
    missing_screen = expects_screen and not has_screen
    if user_id and (
        missing_screen or not store.conversation_settled(org_id, conversation_id)
    ):
        # Some recordings of the conversation are indexed later (often the screen
        # recording), and the conversation's recording events announce them.
        topic = conversation_recordings_topic(user_id, conversation_id)
        TopicRegistry(runtime.redis, clock=runtime.clock).add(org_id, topic)
    return settled


def forget_conversation_topic(
    runtime: Runtime, org_id: str, conversation_id: str, user_id: str | None
) -> None:
    """Drop the conversation's recording topic once all its records are settled."""
    if not user_id:
        return
    topic = conversation_recordings_topic(user_id, conversation_id)
    registry = TopicRegistry(runtime.redis, clock=runtime.clock)
    if not registry.is_wanted(org_id, topic):
        return
    if runtime.store.conversation_settled(org_id, conversation_id):
        registry.remove(org_id, topic)


def _settle_one(
    runtime: Runtime,
    org_id: str,
    conversation_id: str,
    body: dict[str, Any],
    *,
    user_id: str | None,
) -> int:
    store = runtime.store
    recording_id = body.get("id")
    if not isinstance(recording_id, str):
        store.incr(org_id, "conversation:invalid-item")
        return 0
    try:
        check_metadata(body, org_id=org_id, recording_id=recording_id)
        store.track(
            org_id,
            conversation_id,
            recording_id,
            user_id=user_id,
            deadline_s=runtime.backoff.deadline_s,
            source="realtime",
            due_in_s=runtime.claim_lease_s,
        )
    except RecsyncError as exc:
        store.incr(org_id, "conversation:invalid-item")
        log.warning(
            "org %s conversation %s: skipped an item: %s", org_id, conversation_id, exc
        )
        return 0
    if not is_final(body):
        return 0
    token = uuid.uuid4().hex
    claim = store.claim(
        org_id, recording_id, token=token, lease_s=runtime.claim_lease_s, force=True
    )
    if not claim.claimed:
        return 0
    store.mark_ready(
        org_id, recording_id, token=token, metadata=body, fingerprint=fingerprint(body)
    )
    store.incr(org_id, "fetch:ready")
    record = store.get(org_id, recording_id)
    if record is not None and record.user_id:
        TopicRegistry(runtime.redis, clock=runtime.clock).remove(
            org_id,
            recording_topic(record.user_id, conversation_id, recording_id),
        )
        forget_conversation_topic(runtime, org_id, conversation_id, record.user_id)
    return 1
