"""A small reference host: loads plugins by entry point and fires lifecycle events.

The AppFoundry integration runtime does this in production. This host exists so the
plugin can be exercised end to end (demo, tests, users' own CI) exactly as a host
would: plugins come from the ``appfoundry.plugins`` entry-point group, a plugin that
fails to load or register is reported and the others still load, and a plugin whose
manifest is invalid is not activated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pluggy

from recsync.hooks import specs
from recsync.hooks.markers import PROJECT

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "appfoundry.plugins"


@attrs.frozen
class LoadProblem:
    """A plugin that could not be loaded or registered."""

    name: str
    error: str


class Host:
    """Holds a pluggy plugin manager and fires the lifecycle hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(specs)
        self.problems: list[LoadProblem] = []

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register every plugin of ``group``; return the names that loaded."""
        loaded = []
        for entry_point in entry_points(group=group):
            try:
                plugin = entry_point.load()
                self.register(
                    plugin() if isinstance(plugin, type) else plugin,
                    name=entry_point.name,
                )
            except Exception as exc:  # a broken plugin must not stop the others
                problem = LoadProblem(entry_point.name, f"{type(exc).__name__}: {exc}")
                self.problems.append(problem)
                log.error(
                    "plugin %s failed to load: %s", entry_point.name, problem.error
                )
                continue
            loaded.append(entry_point.name)
        return loaded

    def register(self, plugin: Any, *, name: str | None = None) -> None:
        """Register one plugin object; pluggy checks its hookimpls against the specs."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
            # A plugin that announces events of its own (recsync's breaker changes)
            # receives the hook relay so other plugins can implement those hooks.
            bind = getattr(plugin, "bind_hooks", None)
            if callable(bind):
                bind(self.pm.hook)
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            raise ValueError(
                f"plugin {name or plugin!r} does not fit the host: {exc}"
            ) from exc

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def start(self, manifest: Any, org_ids: Iterable[str] | None = None) -> None:
        """Fire manifest loaded, then install and activate for each org."""
        self.hook.appfoundry_manifest_loaded(manifest=manifest)
        for org_id in org_ids or [org.id for org in manifest.orgs]:
            self.hook.appfoundry_install(manifest=manifest, org_id=org_id)
            self.hook.appfoundry_activate(manifest=manifest, org_id=org_id)

    def start_plugin(self, name: str, manifest_path: str | Path) -> Any | None:
        """Load one plugin's manifest and fire its lifecycle for that plugin only.

        An invalid manifest is reported (in :attr:`problems` and the log) and the
        plugin is not activated; the other plugins keep running. Returns the
        manifest, or None when it was rejected.
        """
        from recsync.errors import ManifestError
        from recsync.manifest import load_manifest

        try:
            manifest = load_manifest(manifest_path)
        except ManifestError as exc:
            self.problems.append(LoadProblem(name, str(exc)))
            log.error("plugin %s not activated: invalid manifest: %s", name, exc)
            return None
        others = [plugin for n, plugin in self.pm.list_name_plugin() if n != name]

        def only(hook_name: str) -> Any:
            return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

        only("appfoundry_manifest_loaded")(manifest=manifest)
        for org in manifest.orgs:
            only("appfoundry_install")(manifest=manifest, org_id=org.id)
            only("appfoundry_activate")(manifest=manifest, org_id=org.id)
        return manifest

    def stop(self, manifest: Any, *, uninstall: bool = False) -> None:
        """Fire deactivate (and uninstall) for each org of the manifest."""
        for org in manifest.orgs:
            self.hook.appfoundry_deactivate(manifest=manifest, org_id=org.id)
            if uninstall:
                self.hook.appfoundry_uninstall(manifest=manifest, org_id=org.id)

    def recording_created(
        self,
        org_id: str,
        conversation_id: str,
        recording_id: str,
        user_id: str | None = None,
    ) -> None:
        self.hook.appfoundry_recording_created(
            org_id=org_id,
            conversation_id=conversation_id,
            recording_id=recording_id,
            user_id=user_id,
        )
