"""Checks and stable fingerprints of RecordingMetadata bodies.

The platform gives hold annotations a fresh random id on every request, so two fetches
of an unchanged recording differ. The fingerprint ignores those ids (and their
``selfUri``), so a re-fetch counts as a change only when a stable field changed.
Unknown ``fileState`` values are kept exactly as the platform sent them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from recsync.errors import InvalidResponse

KNOWN_FILE_STATES = frozenset(
    {"ARCHIVED", "AVAILABLE", "DELETED", "RESTORED", "RESTORING", "UPLOADING", "ERROR"}
)
_VOLATILE_ANNOTATION_FIELDS = ("id", "selfUri")


def check_metadata(
    body: dict[str, Any], *, org_id: str, recording_id: str
) -> dict[str, Any]:
    """Return ``body`` if it is usable RecordingMetadata, else raise InvalidResponse."""
    problems = []
    if body.get("id") != recording_id:
        problems.append(f"id is {body.get('id')!r}, expected {recording_id!r}")
    for field in ("conversationId", "fileState"):
        if field in body and not isinstance(body[field], str):
            problems.append(
                f"{field} is {type(body[field]).__name__}, expected a string"
            )
    if "annotations" in body and not isinstance(body["annotations"], list):
        problems.append("annotations is not a list")
    if problems:
        raise InvalidResponse(
            f"org {org_id}: recording {recording_id}: invalid metadata: "
            + "; ".join(problems)
        )
    return body


def is_final(body: dict[str, Any]) -> bool:
    """Tell whether the metadata is complete: annotations only come with AVAILABLE.

    Unknown states count as final so that a new platform state never stalls a record.
    """
    return body.get("fileState") not in ("UPLOADING", "RESTORING")


def fingerprint(body: dict[str, Any]) -> str:
    """Return a digest of the stable fields of a metadata body."""
    stable = dict(body)
    annotations = body.get("annotations")
    if isinstance(annotations, list):
        stable["annotations"] = sorted(
            (_stable_annotation(a) for a in annotations),
            key=lambda a: json.dumps(a, sort_keys=True),
        )
    canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _stable_annotation(annotation: Any) -> Any:
    if not isinstance(annotation, dict):
        return annotation
    if str(annotation.get("type", "")).lower() != "hold":
        return annotation
    return {k: v for k, v in annotation.items() if k not in _VOLATILE_ANNOTATION_FIELDS}
