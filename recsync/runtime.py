"""Per-process runtime: the manifest, Redis, the record store and one client per org.

Actors run in worker processes that share nothing but Redis, so each process builds
its own runtime from the manifest and the environment, once, and reuses it for every
message. The manifest's durations are converted to wall seconds here (``time_scale``)
so the rest of the code only ever deals in wall time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import redis

from recsync.manifest import Manifest, OrgConfig
from recsync.platform.auth import TokenProvider
from recsync.platform.client import CallRecord, PlatformClient
from recsync.resilience.backoff import BackoffSchedule
from recsync.resilience.breaker import BreakerChange, CircuitBreaker, is_failure
from recsync.resilience.budget import ApiBudget
from recsync.store import RecordStore, keys

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# Wall seconds a process trusts its last reading of an org's active flag.
ACTIVE_CACHE_S = 0.5

# How long a fetch may hold a record before another worker may take it over: several
# request timeouts, so a slow but live worker is not overtaken.
CLAIM_LEASE_TIMEOUTS = 4

# The endpoint whose breaker decides between single fetches and the batch sweep.
METADATA_ENDPOINT = "recordingmetadata"

BreakerListener = Callable[..., None]

# Listeners called with ``recsync_breaker_changed``'s keyword arguments (org_id,
# endpoint, state, failure_ratio, window_s) on every breaker transition in this
# process. The plugin appends a relay to the host's hook here.
on_breaker_change: list[BreakerListener] = []


# Listeners called with ``recsync_org_throttled``'s keyword arguments (org_id,
# retry_after_s) when the platform requests a wait past the configured maximum.
on_org_throttled: list[BreakerListener] = []


def _relay_throttled(org_id: str, retry_after_s: float) -> None:
    for listener in list(on_org_throttled):
        try:
            listener(org_id=org_id, retry_after_s=retry_after_s)
        except Exception:  # one listener's bug must not silence the others
            log.exception("throttle listener %r failed", listener)


def _relay_breaker_change(change: BreakerChange) -> None:
    for listener in list(on_breaker_change):
        try:
            listener(
                org_id=change.org_id,
                endpoint=change.endpoint,
                state=str(change.state),
                failure_ratio=change.failure_ratio,
                window_s=change.window_s,
            )
        except Exception:  # one listener's bug must not silence the others
            log.exception("breaker change listener %r failed", listener)


@attrs.define
class OrgRuntime:
    """Run-time parts of one org: its config, client, budget and breaker."""

    config: OrgConfig
    client: PlatformClient
    budget: ApiBudget
    http: httpx.Client
    breaker: CircuitBreaker


class Runtime:
    """Everything an actor needs, built once per process."""

    def __init__(
        self,
        manifest: Manifest,
        client: redis.Redis,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Clock = time.time,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.manifest = manifest.scaled()
        self.time_scale = manifest.time_scale
        self.redis = client
        self.clock = clock
        self.environ = dict(os.environ if environ is None else environ)
        self.store = RecordStore(client, clock=clock)
        self._transport = transport
        self._orgs: dict[str, OrgRuntime] = {}
        self._active_cache: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()
        self.backoff = self._make_backoff()

    def _make_backoff(self) -> BackoffSchedule:
        retry = self.manifest.policies.retry
        return BackoffSchedule(
            initial_delay_s=retry.initial_delay_s,
            multiplier=retry.multiplier,
            max_delay_s=retry.max_delay_s,
            jitter=str(retry.jitter),
            deadline_s=retry.deadline_s,
        )

    def replace_manifest(self, manifest: Manifest) -> None:
        """Switch to a new manifest: new policies, and clients built afresh.

        Calls in flight on the old clients may fail and are deferred like any
        failure. Worker processes load their manifest at start, so they need a
        restart to see the change.
        """
        with self._lock:
            old_orgs = self._orgs
            self.manifest = manifest.scaled()
            self.time_scale = manifest.time_scale
            self.backoff = self._make_backoff()
            self._orgs = {}
            self._active_cache.clear()
        for org in old_orgs.values():
            org.http.close()

    @property
    def policies(self) -> Any:
        return self.manifest.policies

    @property
    def claim_lease_s(self) -> float:
        return self.policies.request_timeout_s * CLAIM_LEASE_TIMEOUTS

    def org_ids(self) -> list[str]:
        return [org.id for org in self.manifest.orgs]

    def org(self, org_id: str) -> OrgRuntime:
        """Return the org's runtime, building its client on first use."""
        existing = self._orgs.get(org_id)
        if existing is not None:
            return existing
        with self._lock:
            if org_id not in self._orgs:
                self._orgs[org_id] = self._build_org(self.manifest.org(org_id))
            return self._orgs[org_id]

    def _build_org(self, config: OrgConfig) -> OrgRuntime:
        client_id, client_secret = config.resolve_credentials(self.environ)
        timeout_s = self.policies.request_timeout_s
        http = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            transport=self._transport,
            headers={"User-Agent": "appfoundry-recsync"},
            verify=True,
        )
        # The scaled manifest gives requests per wall minute. The platform counts
        # per (scaled) minute, so the bucket is sized for one scaled minute.
        budget = ApiBudget(
            self.redis,
            config.id,
            requests_per_minute=max(
                int(config.rate_limit.requests_per_minute * self.time_scale), 1
            ),
            minute_s=60.0 * self.time_scale,
            clock=self.clock,
        )
        tokens = TokenProvider(
            org_id=config.id,
            client=self.redis,
            http=http,
            token_url=config.login_host.rstrip("/") + "/oauth/token",
            client_id=client_id,
            client_secret=client_secret,
            time_scale=self.time_scale,
            clock=self.clock,
        )
        client = PlatformClient(
            org_id=config.id,
            api_base_url=config.api_host,
            http=http,
            tokens=tokens,
            budget=budget,
            time_scale=self.time_scale,
            observe=lambda call: self._observe(config.id, call),
            clock=self.clock,
            max_retry_after_s=config.rate_limit.max_retry_after_s,
            on_throttled=_relay_throttled,
        )
        breaker = CircuitBreaker(
            self.redis,
            config.id,
            METADATA_ENDPOINT,
            self.policies.breaker,
            self.clock,
            probe_ttl_s=self.claim_lease_s,
            on_change=self._on_breaker_change,
        )
        return OrgRuntime(
            config=config, client=client, budget=budget, http=http, breaker=breaker
        )

    def breaker(self, org_id: str) -> CircuitBreaker:
        """Return the org's ``recordingmetadata`` breaker."""
        return self.org(org_id).breaker

    def _observe(self, org_id: str, call: CallRecord) -> None:
        if call.endpoint == METADATA_ENDPOINT:
            breaker = self.org(org_id).breaker
            breaker.record(
                failure=is_failure(call.status, timed_out=call.timed_out),
                slow=call.elapsed_s > self.policies.breaker.slow_call_s,
                probe=breaker.holds_probe(),
            )
        status = "timeout" if call.timed_out else str(call.status or "error")
        pipe = self.redis.pipeline(transaction=False)
        counters = keys.counters(org_id)
        pipe.hincrby(counters, "platform_calls", 1)
        pipe.hincrby(counters, f"status:{status}", 1)
        pipe.hincrby(counters, f"calls:{call.endpoint}", 1)
        pipe.hincrbyfloat(counters, "platform_wait_s", call.elapsed_s)
        pipe.execute()

    def _on_breaker_change(self, change: BreakerChange) -> None:
        # Counted per state, so summaries and metrics show how often it opened.
        self.redis.hincrby(keys.counters(change.org_id), f"breaker:{change.state}", 1)
        _relay_breaker_change(change)

    def is_active(self, org_id: str) -> bool:
        """Tell whether the host has activated the org and not deactivated it since.

        The flag is cached for ``ACTIVE_CACHE_S`` of wall time per process, because
        every message reads it. A deactivation takes effect within that time.
        """
        now = time.monotonic()
        cached = self._active_cache.get(org_id)
        if cached is not None and now - cached[1] < ACTIVE_CACHE_S:
            return cached[0]
        active = self.redis.hget(keys.org_active(org_id), "active") == b"1"
        self._active_cache[org_id] = (active, now)
        return active

    def realtime_connected(self, org_id: str) -> bool:
        """Tell whether the org's subscriber reported a live socket within the heartbeat
        timeout."""
        if not self.manifest.flags.realtime:
            return False
        state, seen = self.redis.hmget(
            keys.subscriber_status(org_id), "state", "seen_at"
        )
        if state != b"connected" or seen is None:
            return False
        timeout_s = self.policies.realtime.heartbeat_timeout_s
        return self.clock() - float(seen) < timeout_s

    def close(self) -> None:
        for org in self._orgs.values():
            org.http.close()
        self._orgs.clear()


_current: Runtime | None = None
_factory: Callable[[], Runtime] | None = None
_current_lock = threading.Lock()


def install(
    runtime: Runtime | None = None, *, factory: Callable[[], Runtime] | None = None
) -> None:
    """Set this process's runtime, or a factory that builds it on first use."""
    global _current, _factory
    with _current_lock:
        _current = runtime
        _factory = factory


def current() -> Runtime:
    """Return this process's runtime, building it from the environment if needed."""
    global _current
    if _current is not None:
        return _current
    with _current_lock:
        if _current is None:
            _current = (_factory or runtime_from_environment)()
        return _current


def runtime_from_environment() -> Runtime:
    """Build a runtime from ``RECSYNC_MANIFEST`` and ``RECSYNC_REDIS_URL``."""
    from recsync.manifest import load_manifest

    path = os.environ.get("RECSYNC_MANIFEST")
    if not path:
        raise RuntimeError(
            "RECSYNC_MANIFEST is not set; start workers with `recsync worker "
            "--manifest FILE`, or export RECSYNC_MANIFEST=FILE before "
            "`dramatiq recsync.actors.tasks`"
        )
    url = os.environ.get("RECSYNC_REDIS_URL", "redis://127.0.0.1:6379/0")
    return Runtime(load_manifest(path), redis.Redis.from_url(url))
