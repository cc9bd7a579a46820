"""recsync: Genesys Cloud recording metadata in sync across orgs, never blocking.

A plugin for an AppFoundry integration host. The host calls the plugin's pluggy hooks
on manifest lifecycle events; the plugin answers by sending Dramatiq messages, and
worker processes sharing one Redis do the fetching, retrying and realtime work.
"""

from recsync.errors import (
    AuthenticationError,
    CircuitOpen,
    InvalidResponse,
    ManifestError,
    NotFound,
    NotYet,
    PlatformError,
    PlatformPending,
    PlatformUnavailable,
    RateLimited,
    RecsyncError,
)
from recsync.manifest import Manifest, load_manifest, manifest_from_mapping
from recsync.plugin import RecsyncPlugin
from recsync.store import Record, RecordStore, State

__all__ = [
    # Errors
    "AuthenticationError",
    "CircuitOpen",
    "InvalidResponse",
    # The plugin and its configuration
    "Manifest",
    "ManifestError",
    "NotFound",
    "NotYet",
    "PlatformError",
    "PlatformPending",
    "PlatformUnavailable",
    "RateLimited",
    # Record state, as the host's UI reads it
    "Record",
    "RecordStore",
    "RecsyncError",
    "RecsyncPlugin",
    "State",
    "load_manifest",
    "manifest_from_mapping",
]
