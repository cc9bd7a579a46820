"""The recsync plugin: turns host lifecycle events into actor messages.

No hookimpl here waits on the platform: each one writes state to Redis and sends
Dramatiq messages, and returns. The work happens in the worker processes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import redis

from recsync import runtime as runtime_module
from recsync.hooks.markers import hookimpl
from recsync.manifest import Manifest
from recsync.runtime import Runtime
from recsync.store import Record, State, keys
from recsync.store.topics import (
    TopicRegistry,
    recording_topic,
    user_conversations_topic,
)

log = logging.getLogger(__name__)


class RecsyncPlugin:
    """pluggy plugin object registered under the ``appfoundry.plugins`` entry point."""

    def __init__(self, runtime: Runtime | None = None) -> None:
        self._runtime = runtime
        self._hook: Any = None

    def bind_hooks(self, hook: Any) -> None:
        """Take the host's hook relay, to announce breaker changes to other plugins."""
        self._hook = hook
        if self._relay_breaker_change not in runtime_module.on_breaker_change:
            runtime_module.on_breaker_change.append(self._relay_breaker_change)
        if self._relay_throttled not in runtime_module.on_org_throttled:
            runtime_module.on_org_throttled.append(self._relay_throttled)

    def _relay_throttled(self, **change: Any) -> None:
        if self._hook is not None:
            self._hook.recsync_org_throttled(**change)

    def _relay_breaker_change(self, **change: Any) -> None:
        if self._hook is not None:
            self._hook.recsync_breaker_changed(**change)

    # Setup --------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = runtime_module.current()
        return self._runtime

    def _ensure_runtime(self, manifest: Manifest) -> Runtime:
        if self._runtime is None:
            try:
                self._runtime = runtime_module.current()
            except RuntimeError:
                url = os.environ.get("RECSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
                self._runtime = Runtime(manifest, redis.Redis.from_url(url))
                runtime_module.install(self._runtime)
        return self._runtime

    @staticmethod
    def _dispatcher() -> Any:
        from recsync.actors.tasks import dispatcher

        return dispatcher

    # Lifecycle hooks ----------------------------------------------------------------

    @hookimpl
    def appfoundry_manifest_loaded(self, manifest: Manifest) -> None:
        runtime = self._ensure_runtime(manifest)
        runtime.redis.hset(
            keys.manifest(), mapping={"orgs": ",".join(o.id for o in manifest.orgs)}
        )
        log.info("manifest loaded: %d orgs", len(manifest.orgs))

    @hookimpl
    def appfoundry_install(self, manifest: Manifest, org_id: str) -> None:
        runtime = self._ensure_runtime(manifest)
        manifest.org(org_id)  # raises KeyError naming the known orgs
        runtime.redis.sadd(keys.orgs(), org_id)
        log.info("org %s: installed", org_id)

    @hookimpl
    def appfoundry_activate(self, manifest: Manifest, org_id: str) -> None:
        runtime = self._ensure_runtime(manifest)
        runtime.redis.hset(
            keys.org_active(org_id),
            mapping={"active": "1", "since": repr(runtime.clock())},
        )
        dispatcher = self._dispatcher()
        if manifest.flags.realtime:
            dispatcher.subscribe(org_id)
        dispatcher.reconcile(org_id)
        log.info(
            "org %s: activated (realtime %s)",
            org_id,
            "on" if manifest.flags.realtime else "off",
        )

    @hookimpl
    def appfoundry_configuration_changed(self, old: Manifest, new: Manifest) -> None:
        runtime = self._ensure_runtime(new)
        runtime.replace_manifest(new)
        old_ids = {org.id for org in old.orgs}
        for org in new.orgs:
            if org.id not in old_ids:
                self.appfoundry_org_added(manifest=new, org_id=org.id)
        for org_id in old_ids - {org.id for org in new.orgs}:
            self.appfoundry_org_removed(manifest=old, org_id=org_id)
        runtime.redis.hset(keys.manifest(), "orgs", ",".join(o.id for o in new.orgs))
        log.info("configuration changed: %d orgs", len(new.orgs))

    @hookimpl
    def appfoundry_org_added(self, manifest: Manifest, org_id: str) -> None:
        self.appfoundry_install(manifest=manifest, org_id=org_id)
        self.appfoundry_activate(manifest=manifest, org_id=org_id)

    @hookimpl
    def appfoundry_org_removed(self, manifest: Manifest, org_id: str) -> None:
        self.appfoundry_deactivate(manifest=manifest, org_id=org_id)
        self.appfoundry_uninstall(manifest=manifest, org_id=org_id)

    @hookimpl
    def appfoundry_deactivate(self, manifest: Manifest, org_id: str) -> None:
        runtime = self._ensure_runtime(manifest)
        runtime.redis.hset(keys.org_active(org_id), "active", "0")
        log.info("org %s: deactivated; its state is kept", org_id)

    @hookimpl
    def appfoundry_uninstall(self, manifest: Manifest, org_id: str) -> None:
        runtime = self._ensure_runtime(manifest)
        deleted = runtime.store.purge_org(org_id)
        log.info("org %s: uninstalled, %d keys deleted", org_id, deleted)

    @hookimpl
    def appfoundry_recording_created(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str | None
    ) -> None:
        self.track(org_id, conversation_id, recording_id, user_id=user_id)

    # Python API for the host --------------------------------------------------------

    def track(
        self,
        org_id: str,
        conversation_id: str,
        recording_id: str,
        *,
        user_id: str | None = None,
    ) -> State:
        """Start syncing one recording in one org; returns its state at once.

        A new record is ``pending`` and a fetch is on its way; a known record keeps
        its state (tracking twice is harmless).
        """
        runtime = self.runtime
        runtime.manifest.org(org_id)
        # Read once: it costs three Redis calls and decides both the reconciler's
        # safety net and whether to fetch now.
        awaits_event = user_id is not None and self._stream_will_announce(
            org_id, user_id
        )
        created, state = runtime.store.track(
            org_id,
            conversation_id,
            recording_id,
            user_id=user_id,
            deadline_s=runtime.backoff.deadline_s,
            source="host",
            due_in_s=(
                runtime.backoff.max_delay_s if awaits_event else runtime.claim_lease_s
            ),
        )
        if not created:
            return state
        if user_id and runtime.manifest.flags.realtime:
            if awaits_event:
                # A satellite indexes the recording after the primary, and the agent's
                # conversation event announces when. A request now would only cost a
                # call that returns 202. The reconciler polls if no event comes.
                runtime.store.incr(org_id, "track:awaiting-event")
                return state
            if not runtime.manifest.org(org_id).is_primary:
                # No live conversation topic for this agent: watch the recording's
                # own topic instead. The primary has indexed it already.
                topic = recording_topic(user_id, conversation_id, recording_id)
                TopicRegistry(runtime.redis, clock=runtime.clock).add(org_id, topic)
        self._dispatcher().fetch(org_id, recording_id, reason="track")
        return state

    def _stream_will_announce(self, org_id: str, user_id: str) -> bool:
        runtime = self.runtime
        if runtime.manifest.org(org_id).is_primary:
            return False
        if not runtime.realtime_connected(org_id):
            return False
        topic = user_conversations_topic(user_id)
        return TopicRegistry(runtime.redis).is_live(org_id, topic)

    def status(self, org_id: str, recording_id: str) -> Record | None:
        """Return one record's state from Redis; never touches the platform."""
        return self.runtime.store.get(org_id, recording_id)

    def records(
        self, org_id: str, state: State, *, offset: int = 0, limit: int = 100
    ) -> tuple[list[Record], int | None]:
        """Return one page of an org's records in ``state``, and the next offset."""
        return self.runtime.store.list_by_state(
            org_id, state, offset=offset, limit=limit
        )
