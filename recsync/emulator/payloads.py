"""JSON documents the emulator sends, shaped like the platform's.

Field names and value sets follow the models of the official Python SDK
(``purecloudplatformclientv2`` 269): ``RecordingMetadata``, ``Recording``,
``BatchDownloadJobStatusResult`` and the notification event bodies. Fields with no
value are left out, as the platform does.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from recsync.emulator.generation import Conversation, Recording

ARCHIVE_AFTER_DAYS = 90
DELETE_AFTER_DAYS = 365
ERROR_CODES = {
    400: "bad.request",
    401: "bad.credentials",
    404: "not.found",
    408: "client.timeout",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "request.timeout",
}


class Timestamps:
    """Turns platform seconds into ISO-8601 wall times after a fixed epoch."""

    def __init__(self, epoch: str) -> None:
        self.epoch = dt.datetime.fromisoformat(epoch.removesuffix("Z") + "+00:00")

    def iso(self, platform_s: float) -> str:
        """Return the wall time ``platform_s`` after the epoch, with ms and Z."""
        moment = self.epoch + dt.timedelta(seconds=platform_s)
        return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{moment.microsecond // 1000:03d}Z"
        )


def error_body(
    status: int,
    message: str,
    *,
    context_id: str,
    code: str | None = None,
    entity_id: str = "",
    entity_name: str = "",
    limit: int | None = None,
) -> dict[str, Any]:
    """Build the platform's error document."""
    body: dict[str, Any] = {
        "message": message,
        "code": code or ERROR_CODES.get(status, "error"),
        "status": status,
        "contextId": context_id,
        "details": [],
        "errors": [],
        "messageWithParams": message,
        "messageParams": {},
        "entityId": entity_id,
        "entityName": entity_name,
        # The platform fills limit only for limit errors such as 429.
        "limit": limit,
    }
    return body


def _stable_rng(recording: Recording) -> random.Random:
    return random.Random(recording.id)


def _derived_uuid(key: str) -> str:
    return str(uuid.UUID(int=random.Random(key).getrandbits(128), version=4))


def hold_annotation(recording: Recording, conversation: Conversation) -> dict[str, Any]:
    """Build a hold annotation; its id is fresh on every call, as on the platform."""
    rng = _stable_rng(recording)
    call_ms = int(conversation.call_duration_s * 1000)
    location_ms = rng.randint(0, max(0, call_ms // 2))
    duration_ms = rng.randint(1000, max(1000, call_ms // 4))
    return {
        "id": str(uuid.uuid4()),
        "name": "Hold",
        "type": "System",
        "location": location_ms,
        "durationMs": duration_ms,
        "absoluteLocation": location_ms,
        "absoluteDurationMs": duration_ms,
        "recordingLocation": location_ms,
        "recordingDurationMs": duration_ms,
        "reason": "Hold",
    }


def recording_metadata(
    recording: Recording,
    conversation: Conversation,
    *,
    region: str,
    times: Timestamps,
) -> dict[str, Any]:
    """Build a ``RecordingMetadata`` document for a visible recording."""
    end_s = recording.created_at_s
    start_s = conversation.started_at_s
    day_s = 86400
    return {
        "id": recording.id,
        "name": f"{recording.media}-{recording.id[:8]}",
        "conversationId": recording.conversation_id,
        "path": f"recordings/{recording.conversation_id}/{recording.id}",
        "startTime": times.iso(start_s),
        "endTime": times.iso(end_s),
        "media": recording.media,
        "mediaSubtype": recording.media_subtype,
        "mediaSubject": "Screen capture" if recording.media == "screen" else "Call",
        "annotations": [hold_annotation(recording, conversation)],
        "fileState": "AVAILABLE",
        "archiveDate": times.iso(end_s + ARCHIVE_AFTER_DAYS * day_s),
        "archiveMedium": "CLOUDARCHIVE",
        "deleteDate": times.iso(end_s + DELETE_AFTER_DAYS * day_s),
        "exportDate": times.iso(end_s + ARCHIVE_AFTER_DAYS * day_s),
        "maxAllowedRestorationsForOrg": 100,
        "remainingRestorationsAllowedForOrg": 100,
        "sessionId": _derived_uuid(f"{recording.id}:session"),
        "region": region,
        "selfUri": metadata_uri(recording),
    }


def metadata_uri(recording: Recording) -> str:
    """Return the API path of a recording's metadata."""
    return (
        f"/api/v2/conversations/{recording.conversation_id}"
        f"/recordingmetadata/{recording.id}"
    )


def recording_uri(recording: Recording) -> str:
    """Return the API path of a recording."""
    return (
        f"/api/v2/conversations/{recording.conversation_id}/recordings/{recording.id}"
    )


def media_url(base_url: str, recording: Recording) -> str:
    """Return the download address of a recording's media."""
    suffix = "webm" if recording.media == "screen" else "opus"
    return f"{base_url}/_emulator/media/{recording.id}.{suffix}"


def full_recording(
    recording: Recording,
    conversation: Conversation,
    *,
    region: str,
    times: Timestamps,
    base_url: str,
) -> dict[str, Any]:
    """Build a ``Recording`` document for a recording that finished transcoding."""
    body = recording_metadata(recording, conversation, region=region, times=times)
    del body["region"]
    body["selfUri"] = recording_uri(recording)
    body["mediaUris"] = {"S": {"mediaUri": media_url(base_url, recording)}}
    body["estimatedTranscodeTimeMs"] = recording.transcode_ms
    body["actualTranscodeTimeMs"] = recording.transcode_ms
    body["creationTime"] = times.iso(recording.created_at_s)
    body["recordingFileRole"] = "CUSTOMER_EXPERIENCE"
    return body


def pending_recording(recording: Recording, *, remaining_ms: int) -> dict[str, Any]:
    """Build the ``Recording`` sent with 202 while a recording is still transcoding."""
    return {
        "id": recording.id,
        "conversationId": recording.conversation_id,
        "media": recording.media,
        "fileState": "UPLOADING",
        "estimatedTranscodeTimeMs": max(0, remaining_ms),
        "selfUri": recording_uri(recording),
    }


def recording_event(recording: Recording, *, base_url: str) -> dict[str, Any]:
    """Build the body of a recording notification (transcode complete)."""
    return {
        "id": recording.id,
        "conversationId": recording.conversation_id,
        "fileState": "AVAILABLE",
        "mediaUris": [
            {
                "channelId": "S",
                "waveUri": f"{base_url}/_emulator/media/{recording.id}.wave",
                "mediaUri": media_url(base_url, recording),
                "waveformData": [0.1, 0.4, 0.2],
            }
        ],
        "estimatedTranscodeTimeMs": recording.transcode_ms,
        "actualTranscodeTimeMs": recording.transcode_ms,
    }


def conversation_event(
    conversation: Conversation, *, has_screen: bool, times: Timestamps
) -> dict[str, Any]:
    """Build the body of a conversation notification for a finished call."""
    agent: dict[str, Any] = {
        "id": _derived_uuid(f"{conversation.id}:agent"),
        "purpose": "agent",
        "userId": conversation.user_id,
        "queueId": conversation.queue_id,
        "connectedTime": times.iso(conversation.started_at_s),
        "endTime": times.iso(conversation.created_at_s),
    }
    if has_screen:
        agent["screenRecordingState"] = "stopped"
    customer = {
        "id": _derived_uuid(f"{conversation.id}:customer"),
        "purpose": "customer",
        "connectedTime": times.iso(conversation.started_at_s),
        "endTime": times.iso(conversation.created_at_s),
    }
    return {
        "id": conversation.id,
        "participants": [customer, agent],
        "recordingState": "active",
    }
