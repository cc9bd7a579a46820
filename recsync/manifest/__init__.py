"""The recsync manifest: attrs models, YAML loading and validation.

``load_manifest(path)`` reads a YAML file and returns a validated, frozen
:class:`Manifest`, or raises :class:`~recsync.errors.ManifestError` listing every
problem of the file at once. The package imports nothing of recsync but
:mod:`recsync.errors`. ``example.yaml`` in this package documents every key.
"""

from __future__ import annotations

from importlib import resources

from recsync.manifest.loader import (
    MAX_FILE_BYTES,
    load_manifest,
    manifest_from_mapping,
    parse_manifest,
)
from recsync.manifest.models import (
    BatchPolicy,
    BreakerPolicy,
    Credentials,
    Flags,
    Jitter,
    Manifest,
    OrgConfig,
    Policies,
    RateLimitPolicy,
    RealtimePolicy,
    ReconcilerPolicy,
    RetryPolicy,
    Role,
    StatusConfig,
)
from recsync.manifest.regions import (
    REGION_NAMES,
    REGIONS,
    Region,
    find_region,
    get_region,
)
from recsync.manifest.summary import summarize
from recsync.manifest.validation import MAX_DEPTH, MAX_VALUES

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "REGIONS",
    "REGION_NAMES",
    "BatchPolicy",
    "BreakerPolicy",
    "Credentials",
    "Flags",
    "Jitter",
    "Manifest",
    "OrgConfig",
    "Policies",
    "RateLimitPolicy",
    "RealtimePolicy",
    "ReconcilerPolicy",
    "Region",
    "RetryPolicy",
    "Role",
    "StatusConfig",
    "example_manifest_text",
    "find_region",
    "get_region",
    "load_manifest",
    "manifest_from_mapping",
    "parse_manifest",
    "summarize",
]


def example_manifest_text() -> str:
    """Return the text of the example manifest shipped with the package."""
    return resources.files(__name__).joinpath("example.yaml").read_text("utf-8")
