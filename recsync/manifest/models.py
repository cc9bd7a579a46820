"""The manifest as frozen attrs values.

The classes carry the defaults of the YAML schema, so ``Policies()`` is the default
policy set. They do not validate their own fields: :mod:`recsync.manifest.validation`
checks a document before it builds them, and code that constructs them directly is
trusted.

Durations are in manifest seconds. The runtime waits ``manifest seconds *
time_scale`` wall seconds, and :meth:`Manifest.scaled` returns the copy whose durations
are already in wall seconds.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
import math
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from recsync.errors import ManifestError
from recsync.manifest.regions import Region

logger = logging.getLogger(__name__)

_PolicyT = TypeVar("_PolicyT", bound=attrs.AttrsInstance)


class Jitter(enum.StrEnum):
    """Randomisation mode of the retry delays."""

    NONE = "none"
    """Exact exponential delays."""
    FULL = "full"
    """Uniform between zero and the exponential step."""
    DECORRELATED = "decorrelated"
    """Each delay is drawn from a range that grows with the previous delay."""


class Role(enum.StrEnum):
    """An org's place in the propagation: metadata reaches the primary first."""

    PRIMARY = "primary"
    SATELLITE = "satellite"


def _check_factor(factor: float) -> None:
    if isinstance(factor, bool) or not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"time scale factor {factor!r} must be a finite number > 0")


def _scale_durations(policy: _PolicyT, factor: float) -> _PolicyT:
    """Return a copy of an attrs policy with each ``*_s`` field multiplied by factor."""
    _check_factor(factor)
    values: dict[str, Any] = attrs.asdict(policy, recurse=False)
    for name, value in values.items():
        if name.endswith("_s"):
            values[name] = value * factor
    return type(policy)(**values)


@attrs.frozen
class RetryPolicy:
    """Backoff schedule for records whose metadata is not visible yet."""

    initial_delay_s: float = 5.0
    multiplier: float = 2.0
    max_delay_s: float = 30.0
    jitter: Jitter = Jitter.FULL
    deadline_s: float = 3600.0
    """Time after the first attempt at which a record becomes failed."""

    def scaled(self, factor: float) -> RetryPolicy:
        """Return a copy with every duration multiplied by ``factor``."""
        return _scale_durations(self, factor)


@attrs.frozen
class BreakerPolicy:
    """Per-org circuit breaker on the share of failed and slow platform calls."""

    failure_ratio: float = 0.05
    """The breaker opens when more than this share of calls in the window fail."""
    window_s: float = 60.0
    min_calls: int = 20
    """Calls in the window below which the breaker never opens."""
    open_s: float = 60.0
    """Time the breaker stays open before one half-open probe."""
    slow_call_s: float = 10.0
    """A call slower than this counts as slow."""
    slow_call_ratio: float = 0.5
    """The breaker opens when this share of calls in the window are slow."""

    def scaled(self, factor: float) -> BreakerPolicy:
        """Return a copy with every duration multiplied by ``factor``."""
        return _scale_durations(self, factor)


@attrs.frozen
class BatchPolicy:
    """Batch sweep that fetches pending records while the breaker is open."""

    interval_s: float = 60.0
    max_items: int = 100
    """Items per batch request, at most 100 (the platform maximum)."""
    job_poll_s: float = 5.0

    def scaled(self, factor: float) -> BatchPolicy:
        """Return a copy with every duration multiplied by ``factor``."""
        return _scale_durations(self, factor)


@attrs.frozen
class RateLimitPolicy:
    """Per-org API budget and the longest ``Retry-After`` that recsync waits out."""

    requests_per_minute: float = 300.0
    max_retry_after_s: float = 180.0
    """A ``Retry-After`` longer than this marks the org throttled."""

    def scaled(self, factor: float) -> RateLimitPolicy:
        """Return a copy in wall time: durations times ``factor``, the rate divided.

        A rate of N requests per manifest minute is N requests per ``60 * factor``
        wall seconds, which is ``N / factor`` requests per wall minute.
        """
        _check_factor(factor)
        return RateLimitPolicy(
            requests_per_minute=self.requests_per_minute / factor,
            max_retry_after_s=self.max_retry_after_s * factor,
        )


@attrs.frozen
class ReconcilerPolicy:
    """Periodic pass that back-fills records the realtime stream may have missed."""

    interval_s: float = 15.0

    def scaled(self, factor: float) -> ReconcilerPolicy:
        """Return a copy with every duration multiplied by ``factor``."""
        return _scale_durations(self, factor)


@attrs.frozen
class RealtimePolicy:
    """Notification-socket settings for the per-org subscriber."""

    lease_ttl_s: float = 30.0
    session_s: float = 300.0
    """Time that one run of the subscribe actor keeps the socket open."""
    heartbeat_timeout_s: float = 35.0
    """Silence after which the socket counts as dead."""
    max_topics_per_channel: int = 1000
    max_channels: int = 20

    def scaled(self, factor: float) -> RealtimePolicy:
        """Return a copy with every duration multiplied by ``factor``."""
        return _scale_durations(self, factor)


@attrs.frozen
class Policies:
    """Every policy of the manifest, each with the schema's defaults."""

    retry: RetryPolicy = attrs.Factory(RetryPolicy)
    breaker: BreakerPolicy = attrs.Factory(BreakerPolicy)
    batch: BatchPolicy = attrs.Factory(BatchPolicy)
    rate_limit: RateLimitPolicy = attrs.Factory(RateLimitPolicy)
    request_timeout_s: float = 5.0
    """Connect plus read timeout of one platform call."""
    reconciler: ReconcilerPolicy = attrs.Factory(ReconcilerPolicy)
    realtime: RealtimePolicy = attrs.Factory(RealtimePolicy)

    def scaled(self, factor: float) -> Policies:
        """Return a copy with every duration multiplied by ``factor``.

        Rates are divided by ``factor`` (see :meth:`RateLimitPolicy.scaled`).
        """
        _check_factor(factor)
        return Policies(
            retry=self.retry.scaled(factor),
            breaker=self.breaker.scaled(factor),
            batch=self.batch.scaled(factor),
            rate_limit=self.rate_limit.scaled(factor),
            request_timeout_s=self.request_timeout_s * factor,
            reconciler=self.reconciler.scaled(factor),
            realtime=self.realtime.scaled(factor),
        )


@attrs.frozen
class Flags:
    """Feature switches."""

    async_metadata_sync: bool = True
    """Ask the platform in non-blocking mode and track records as async-pending."""
    realtime: bool = True
    """Subscribe to the notification stream in addition to polling."""


@attrs.frozen
class StatusConfig:
    """Listen address of the status service."""

    host: str = "127.0.0.1"
    port: int = 8765


@attrs.frozen
class Credentials:
    """Names of the environment variables with the id and secret of an OAuth client."""

    client_id_env: str
    client_secret_env: str

    def resolve(
        self, environ: Mapping[str, str], *, label: str = "credentials"
    ) -> tuple[str, str]:
        """Read the client id and secret from ``environ``.

        Raises:
            ManifestError: a variable is unset or empty. The message names the
                variable and never contains a value.
        """
        problems = []
        values = []
        for key, name in (
            ("client_id_env", self.client_id_env),
            ("client_secret_env", self.client_secret_env),
        ):
            value = environ.get(name)
            if not value:
                state = "empty" if name in environ else "not set"
                problems.append(
                    f"{label}.{key}: environment variable {name} is {state}; "
                    f"export {name} with the org's OAuth client "
                    f"{'id' if key == 'client_id_env' else 'secret'}"
                )
            values.append(value or "")
        if problems:
            raise ManifestError(problems, source="environment")
        return values[0], values[1]


_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback_host(host: str) -> bool:
    """Return whether ``host`` (a name or IP address) is a loopback address."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@attrs.frozen
class OrgConfig:
    """One Genesys Cloud org: where it is, how to log in and what to watch."""

    id: str
    """Slug that becomes part of Redis keys."""
    name: str
    region: Region
    role: Role
    credentials: Credentials
    base_url: str | None = None
    """API host override (emulator, proxy), without a trailing slash."""
    status_token_env: str | None = None
    """Environment variable that contains the status service's bearer token."""
    users: tuple[str, ...] = ()
    """Agent user ids whose conversation topics to watch, or empty to list them."""
    rate_limit: RateLimitPolicy = attrs.Factory(RateLimitPolicy)
    """Effective rate limit: the org's override merged over the global policy."""

    @property
    def is_primary(self) -> bool:
        """Whether this org is the primary org."""
        return self.role is Role.PRIMARY

    @property
    def api_host(self) -> str:
        """Base URL of the REST API: ``base_url`` when set, else the region's."""
        if self.base_url is not None:
            return self.base_url
        return self.region.api_host

    @property
    def login_host(self) -> str:
        """Base URL of the OAuth server.

        With ``base_url`` set, this follows the official SDK: ``//api.`` becomes
        ``//login.``. A URL without ``//api.``, such as a loopback emulator's,
        keeps its host, so OAuth requests go to the API host itself.
        """
        if self.base_url is None:
            return self.region.login_host
        return self.base_url.replace("//api.", "//login.", 1)

    @property
    def streaming_host(self) -> str:
        """Base URL of the notification WebSocket service.

        With ``base_url`` set, ``http`` becomes ``ws``, ``https`` becomes ``wss`` and
        ``//api.`` becomes ``//streaming.``. Channels carry their own ``connectUri``,
        which takes precedence over this value.
        """
        if self.base_url is None:
            return self.region.streaming_host
        url = self.base_url.replace("//api.", "//streaming.", 1)
        if url.startswith("https://"):
            return "wss://" + url.removeprefix("https://")
        return "ws://" + url.removeprefix("http://")

    def resolve_credentials(self, environ: Mapping[str, str]) -> tuple[str, str]:
        """Read this org's client id and secret with :meth:`Credentials.resolve`."""
        return self.credentials.resolve(environ, label=f"orgs[{self.id}].credentials")

    def resolve_status_token(self, environ: Mapping[str, str]) -> str | None:
        """Read the status service token, or return None when none is configured.

        Raises:
            ManifestError: ``status_token_env`` names an unset or empty variable.
        """
        name = self.status_token_env
        if name is None:
            return None
        value = environ.get(name)
        if not value:
            state = "empty" if name in environ else "not set"
            problem = (
                f"orgs[{self.id}].status_token_env: environment variable {name} is "
                f"{state}; export {name} with the status service token"
            )
            raise ManifestError([problem], source="environment")
        return value

    def scaled(self, factor: float) -> OrgConfig:
        """Return a copy whose rate limit is in wall time (see RateLimitPolicy)."""
        return attrs.evolve(self, rate_limit=self.rate_limit.scaled(factor))


@attrs.frozen
class Manifest:
    """A validated recsync manifest."""

    version: int
    orgs: tuple[OrgConfig, ...]
    flags: Flags = attrs.Factory(Flags)
    policies: Policies = attrs.Factory(Policies)
    status: StatusConfig = attrs.Factory(StatusConfig)
    time_scale: float = 1.0
    """Wall seconds per manifest second."""
    durations_scaled: bool = False
    """Whether durations are already in wall seconds (set by :meth:`scaled`)."""

    def org(self, org_id: str) -> OrgConfig:
        """Return the org with this id.

        Raises:
            KeyError: no org has this id. The message lists the known ids.
        """
        for org in self.orgs:
            if org.id == org_id:
                return org
        known = ", ".join(org.id for org in self.orgs)
        raise KeyError(f"no org {org_id!r} in the manifest; known orgs: {known}")

    @property
    def primary(self) -> OrgConfig:
        """The primary org, of which a validated manifest has exactly one."""
        for org in self.orgs:
            if org.is_primary:
                return org
        raise LookupError(
            "the manifest has no primary org; build it with load_manifest or "
            "manifest_from_mapping, which require one"
        )

    @property
    def satellites(self) -> tuple[OrgConfig, ...]:
        """Every org except the primary, in manifest order."""
        return tuple(org for org in self.orgs if not org.is_primary)

    def scaled(self) -> Manifest:
        """Return a copy whose durations are wall seconds.

        Every duration is multiplied by ``time_scale`` and every rate divided by it.
        ``time_scale`` keeps its value so that code can convert durations that the
        platform reports, such as ``Retry-After``. A manifest that is already scaled
        is returned unchanged, so calling this twice does not scale twice.
        """
        if self.durations_scaled:
            return self
        factor = self.time_scale
        return attrs.evolve(
            self,
            orgs=tuple(org.scaled(factor) for org in self.orgs),
            policies=self.policies.scaled(factor),
            durations_scaled=True,
        )
