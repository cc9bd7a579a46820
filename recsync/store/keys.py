"""Redis key names: the one module that defines recsync's key layout.

Every key starts with the namespace ``recsync:`` and, when it belongs to an org,
``recsync:org:{org_id}:`` so that one org's data never shares a key with another's.
Org ids and recording ids are checked against strict patterns before they become part
of a key, so a crafted id cannot reach into another org's namespace.
"""

from __future__ import annotations

import re

from recsync.errors import RecsyncError

NAMESPACE = "recsync"

_ORG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Genesys ids are UUIDs; the pattern also admits other plain tokens (emulator, tests)
# but never a separator, a glob character or whitespace.
_ENTITY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class InvalidId(RecsyncError, ValueError):
    """An org, conversation or recording id that cannot be part of a key."""


def check_org_id(org_id: str) -> str:
    """Return ``org_id`` unchanged, or raise :class:`InvalidId`."""
    if not isinstance(org_id, str) or not _ORG_ID.fullmatch(org_id):
        raise InvalidId(
            f"org id {org_id!r} is invalid; use lowercase letters, digits and '-' "
            "(at most 63 characters), as in the manifest"
        )
    return org_id


def check_entity_id(entity_id: str, *, kind: str = "recording") -> str:
    """Return ``entity_id`` unchanged, or raise :class:`InvalidId`."""
    if not isinstance(entity_id, str) or not _ENTITY_ID.fullmatch(entity_id):
        raise InvalidId(
            f"{kind} id {entity_id!r} is invalid; use the platform's id (a UUID: "
            "letters, digits, '.', '_' and '-', at most 128 characters)"
        )
    return entity_id


def org_prefix(org_id: str) -> str:
    return f"{NAMESPACE}:org:{check_org_id(org_id)}"


def record(org_id: str, recording_id: str) -> str:
    """Hash with one recording's state in one org."""
    return f"{org_prefix(org_id)}:rec:{check_entity_id(recording_id)}"


def conversation(org_id: str, conversation_id: str) -> str:
    """Set of the recording ids tracked for one conversation."""
    checked = check_entity_id(conversation_id, kind="conversation")
    return f"{org_prefix(org_id)}:conv:{checked}"


def by_state(org_id: str, state: str) -> str:
    """Sorted set of recording ids in ``state``, scored by last change (ms)."""
    return f"{org_prefix(org_id)}:state:{state}"


def due(org_id: str) -> str:
    """Sorted set of unsettled recording ids, scored by when they are owed (ms)."""
    return f"{org_prefix(org_id)}:due"


def changes(org_id: str) -> str:
    """Stream of state changes, tailed by the status service."""
    return f"{org_prefix(org_id)}:changes"


def counters(org_id: str) -> str:
    """Hash of counters: fetch outcomes, platform calls, status codes."""
    return f"{org_prefix(org_id)}:counters"


def watch_topics(org_id: str) -> str:
    """Sorted set of realtime topics the org's subscriber should hold."""
    return f"{org_prefix(org_id)}:topics"


def subscriber_lease(org_id: str) -> str:
    return f"{org_prefix(org_id)}:subscriber:lease"


def subscriber_status(org_id: str) -> str:
    """Hash describing the org's realtime connection (state, channel, since)."""
    return f"{org_prefix(org_id)}:subscriber:status"


def token(org_id: str) -> str:
    """Cached OAuth access token of the org (never the client secret)."""
    return f"{org_prefix(org_id)}:oauth:token"


def token_lock(org_id: str) -> str:
    return f"{org_prefix(org_id)}:oauth:lock"


def budget(org_id: str) -> str:
    """Token bucket hash of the org's API budget."""
    return f"{org_prefix(org_id)}:budget"


def paused_until(org_id: str) -> str:
    """Epoch ms before which no request for the org may leave (``Retry-After``)."""
    return f"{org_prefix(org_id)}:budget:paused-until"


def throttled(org_id: str) -> str:
    """Hash set while the platform requests a wait past the configured maximum."""
    return f"{org_prefix(org_id)}:budget:throttled"


def breaker(org_id: str, endpoint: str) -> str:
    return f"{org_prefix(org_id)}:breaker:{endpoint}"


def event_seen(org_id: str) -> str:
    """Prefix of per-event keys with a TTL, for deduplicating realtime events."""
    return f"{org_prefix(org_id)}:events:seen"


def org_active(org_id: str) -> str:
    """Hash describing whether the org is active, and since when."""
    return f"{org_prefix(org_id)}:active"


def schedule_lock(job: str) -> str:
    """Lock that lets one process in the cluster start a periodic job."""
    return f"{NAMESPACE}:schedule:{job}"


def orgs() -> str:
    """Set of org ids that have state in this Redis."""
    return f"{NAMESPACE}:orgs"


def manifest() -> str:
    """Hash with the active manifest (YAML text) and its version number."""
    return f"{NAMESPACE}:manifest"
