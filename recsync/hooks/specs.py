"""Hook specifications: the host's manifest lifecycle and recsync's extension hooks.

Each hook is a documented no-op taking keyword arguments only. The host calls the
lifecycle hooks; recsync calls the extension hooks so other plugins can react.
``manifest`` is a validated :class:`recsync.manifest.Manifest`; ``org_id`` names one
of its orgs.
"""

from __future__ import annotations

from typing import Any

from recsync.hooks.markers import hookspec

# Host lifecycle ---------------------------------------------------------------------


@hookspec
def appfoundry_manifest_loaded(manifest: Any) -> None:
    """Fires when the host has loaded and validated a manifest."""


@hookspec
def appfoundry_install(manifest: Any, org_id: str) -> None:
    """Fires when the app is installed in an org; prepare its state."""


@hookspec
def appfoundry_activate(manifest: Any, org_id: str) -> None:
    """Fires when an installed org is activated; start syncing it."""


@hookspec
def appfoundry_configuration_changed(old: Any, new: Any) -> None:
    """Fires when the host replaces the manifest of a running app."""


@hookspec
def appfoundry_org_added(manifest: Any, org_id: str) -> None:
    """Fires when an org joins a running deployment; it is installed and activated."""


@hookspec
def appfoundry_org_removed(manifest: Any, org_id: str) -> None:
    """Fires when an org leaves the deployment; stop syncing it and drop its state."""


@hookspec
def appfoundry_deactivate(manifest: Any, org_id: str) -> None:
    """Fires when an org is deactivated; stop syncing but keep its state."""


@hookspec
def appfoundry_uninstall(manifest: Any, org_id: str) -> None:
    """Fires when the app is uninstalled from an org; drop every trace of it."""


@hookspec
def appfoundry_recording_created(
    org_id: str, conversation_id: str, recording_id: str, user_id: str | None
) -> None:
    """Fires when the host learns of a recording; the plugin starts tracking it."""


# recsync extension hooks -------------------------------------------------------------


@hookspec
def recsync_breaker_changed(
    org_id: str, endpoint: str, state: str, failure_ratio: float, window_s: float
) -> None:
    """Fires once when an org's breaker changes state: closed, open or half-open."""


@hookspec
def recsync_org_throttled(org_id: str, retry_after_s: float) -> None:
    """Fires when the platform requests a wait longer than the maximum."""
