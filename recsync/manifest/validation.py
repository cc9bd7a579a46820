"""Validation of a manifest document and construction of the models.

:func:`build_manifest` takes the Python value of a parsed document, collects every
problem of the document and raises one :class:`~recsync.errors.ManifestError` with all
of them, or returns a :class:`~recsync.manifest.models.Manifest`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs

from recsync.errors import ManifestError
from recsync.manifest.fields import (
    MISSING,
    Report,
    Section,
    hidden,
    index_path,
    join_path,
    show,
    type_name,
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
    is_loopback_host,
)
from recsync.manifest.regions import REGION_NAMES, Region, find_region

logger = logging.getLogger(__name__)

MAX_VALUES = 100_000
"""Most values (scalars, lists and mappings) a document may contain, aliases expanded.

A manifest of a few hundred orgs and some thousand user ids stays far below this, and
it bounds the work that a document of nested aliases (a "billion laughs") can cause.
"""

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings. The schema itself needs five levels."""

SUPPORTED_VERSION = 1

_TOP_KEYS = ("version", "time_scale", "orgs", "flags", "policies", "status")
_ORG_KEYS = (
    "id",
    "name",
    "region",
    "role",
    "credentials",
    "base_url",
    "status_token_env",
    "users",
    "rate_limit",
)
_CREDENTIAL_KEYS = ("client_id_env", "client_secret_env")
_FLAG_KEYS = ("async_metadata_sync", "realtime")
_POLICY_KEYS = (
    "retry",
    "breaker",
    "batch",
    "rate_limit",
    "request_timeout_s",
    "reconciler",
    "realtime",
)
_RETRY_KEYS = ("initial_delay_s", "multiplier", "max_delay_s", "jitter", "deadline_s")
_BREAKER_KEYS = (
    "failure_ratio",
    "window_s",
    "min_calls",
    "open_s",
    "slow_call_s",
    "slow_call_ratio",
)
_BATCH_KEYS = ("interval_s", "max_items", "job_poll_s")
_RATE_LIMIT_KEYS = ("requests_per_minute", "max_retry_after_s")
_RECONCILER_KEYS = ("interval_s",)
_REALTIME_KEYS = (
    "lease_ttl_s",
    "session_s",
    "heartbeat_timeout_s",
    "max_topics_per_channel",
    "max_channels",
)
_STATUS_KEYS = ("host", "port")

# Org ids become part of Redis keys, so they exclude ':' (the key separator), glob
# characters ('*', '?', '[', ']'), hash tags ('{', '}') and spaces.
_ORG_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_ROLES = {"primary": Role.PRIMARY, "satellite": Role.SATELLITE}
_JITTERS = {jitter.value: jitter for jitter in Jitter}

MAX_BATCH_ITEMS = 100
"""Platform maximum of ``batchDownloadRequestList`` entries per batch request."""
MAX_TOPICS_PER_CHANNEL = 1000
"""Platform maximum of topics on one notification channel."""
MAX_CHANNELS = 20
"""Platform maximum of channels per user and OAuth client (a 21st evicts the oldest)."""


def build_manifest(data: object, *, source: str) -> Manifest:
    """Validate the Python value of a manifest document and build the Manifest.

    Raises:
        ManifestError: with every problem found, one line each.
    """
    report = Report()
    if not _check_structure(data, report):
        raise ManifestError(report.problems, source=source)
    if not isinstance(data, Mapping):
        report.add(
            "",
            f"{show(data)} is {type_name(data)}, not a mapping; the manifest must be "
            "a mapping with the keys version, orgs and optional settings",
        )
        raise ManifestError(report.problems, source=source)

    _find_inline_secrets(data, report)
    top = Section(data, "", report, allowed=_TOP_KEYS)
    version = _read_version(top)
    time_scale = top.number(
        "time_scale",
        1.0,
        fix="use a factor such as 1 for real time or 0.05 to run 20 times faster",
    )
    drafts = _read_orgs(top)
    flags = _read_flags(top.section("flags", allowed=_FLAG_KEYS))
    policies = _read_policies(top.section("policies", allowed=_POLICY_KEYS))
    status = _read_status(top.section("status", allowed=_STATUS_KEYS))

    if report.problems:
        raise ManifestError(report.problems, source=source)
    orgs = tuple(draft.build(policies.rate_limit) for draft in drafts)
    return Manifest(
        version=version,
        orgs=orgs,
        flags=flags,
        policies=policies,
        status=status,
        time_scale=time_scale,
    )


def _check_structure(data: object, report: Report) -> bool:
    """Report a value that is too large or too deeply nested to validate.

    A Python caller may pass a structure that contains itself. Such a structure
    exceeds the depth limit, so this walk always ends.
    """
    stack: list[tuple[object, int]] = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            report.add(
                "",
                f"the document contains more than {MAX_VALUES:,} values; "
                "check that this is the manifest, and write out repeated values "
                "instead of using aliases",
            )
            return False
        if depth > MAX_DEPTH:
            report.add(
                "",
                f"values are nested deeper than {MAX_DEPTH} levels; the manifest "
                "needs no more than 5, so remove the extra nesting",
            )
            return False
        if isinstance(value, Mapping):
            stack.extend((key, depth + 1) for key in value)
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((child, depth + 1) for child in value)
    return True


def _secret_env_key(key: str) -> str | None:
    """Return the ``*_env`` key to use in place of a key that contains a secret."""
    normal = key.strip().lower().replace("-", "_")
    if normal.endswith("_env"):
        return None
    compact = normal.replace("_", "")
    words = re.split(r"[^a-z0-9]+", normal)
    if compact == "clientid":
        return "client_id_env"
    if compact == "credentials":
        return "client_id_env and client_secret_env"
    if "token" in words or compact.endswith("token"):
        return "status_token_env"
    secret_words = (
        "secret",
        "password",
        "passwd",
        "passphrase",
        "apikey",
        "privatekey",
    )
    if any(word in compact for word in secret_words):
        return "client_secret_env"
    return None


def _is_literal(value: object) -> bool:
    if isinstance(value, str):
        return value.strip() != ""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _find_inline_secrets(data: Mapping[Any, Any], report: Report) -> None:
    """Report every key anywhere in the document whose value is a literal secret."""
    stack: list[tuple[object, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, Mapping):
            for key, child in value.items():
                child_path = join_path(path, key)
                env_key = _secret_env_key(key) if isinstance(key, str) else None
                if env_key is None or not _is_literal(child):
                    stack.append((child, child_path))
                    continue
                report.secret_paths.add(child_path)
                report.add(
                    child_path,
                    f"{hidden(child)} is an inline secret, which the manifest must "
                    "not contain; put it in an environment variable and name that "
                    f"variable with {env_key}",
                )
        elif isinstance(value, list | tuple):
            for index, child in enumerate(value):
                stack.append((child, index_path(path, index)))


def _read_version(top: Section) -> int:
    value = top.raw("version", required=True, example=str(SUPPORTED_VERSION))
    if value is MISSING:
        return SUPPORTED_VERSION
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip() == str(SUPPORTED_VERSION):
            fix = "remove the quotes"
        else:
            fix = f"set version: {SUPPORTED_VERSION}"
        top.fail(
            "version",
            f"{show(value)} is {type_name(value)}, expected an integer; {fix}",
        )
    elif value != SUPPORTED_VERSION:
        top.fail(
            "version",
            f"{show(value)} is not a supported version; set version: "
            f"{SUPPORTED_VERSION}, the only version this recsync reads",
        )
    return SUPPORTED_VERSION


@attrs.define
class _OrgDraft:
    """An org read from the document whose rate limit is not merged yet."""

    path: str
    id: str
    name: str
    region: Region | None
    role: Role
    credentials: Credentials
    base_url: str | None
    status_token_env: str | None
    users: tuple[str, ...]
    rate_limit_overrides: dict[str, float]

    def build(self, rate_limit: RateLimitPolicy) -> OrgConfig:
        assert self.region is not None, "build_manifest builds only valid drafts"
        return OrgConfig(
            id=self.id,
            name=self.name,
            region=self.region,
            role=self.role,
            credentials=self.credentials,
            base_url=self.base_url,
            status_token_env=self.status_token_env,
            users=self.users,
            rate_limit=attrs.evolve(rate_limit, **self.rate_limit_overrides),
        )


def _read_orgs(top: Section) -> list[_OrgDraft]:
    value = top.raw("orgs")
    if value is MISSING:
        state = "is empty (null)" if "orgs" in top.data else "required key is missing"
        top.fail(
            "orgs",
            f"{state}; add a list with one entry per org, each with id, "
            "region, role and credentials",
        )
        return []
    if not isinstance(value, list):
        top.fail(
            "orgs",
            f"{show(value)} is {type_name(value)}, expected a list with "
            "one entry per org",
        )
        return []
    if not value:
        top.fail(
            "orgs",
            "empty list; add at least one org, and give one of them role: primary",
        )
        return []

    drafts: list[_OrgDraft] = []
    roles_valid = True
    for index, item in enumerate(value):
        path = index_path("orgs", index)
        if not isinstance(item, Mapping):
            top.report.add(
                path,
                f"{show(item)} is {type_name(item)}, expected a "
                "mapping with id, region, role and credentials",
            )
            roles_valid = False
            continue
        org = Section(item, path, top.report, allowed=_ORG_KEYS)
        drafts.append(_read_org(org))
        roles_valid = roles_valid and org.valid("role")
    _check_org_set(drafts, top.report, roles_valid=roles_valid)
    return drafts


def _read_org(org: Section) -> _OrgDraft:
    org_id = org.text("id", "", required=True, example="org-primary")
    if org.valid("id") and org_id and not _ORG_ID.fullmatch(org_id):
        org.fail(
            "id",
            f"{show(org_id)} is not a valid org id; use 1 to 63 lowercase letters, "
            "digits and '-', starting with a letter or digit, because the id becomes "
            "part of Redis keys",
        )
    prefix = "RECSYNC_" + re.sub(r"[^A-Z0-9]+", "_", (org_id or "org").upper())
    return _OrgDraft(
        path=org.path,
        id=org_id,
        name=org.text("name", org_id, example="Primary"),
        region=_read_region(org),
        role=org.choice("role", _ROLES, Role.SATELLITE, noun="role", required=True),
        credentials=_read_credentials(org, prefix),
        base_url=_read_base_url(org),
        status_token_env=org.env_name(
            "status_token_env", required=False, example=f"{prefix}_STATUS_TOKEN"
        ),
        users=_read_users(org),
        rate_limit_overrides=_read_rate_limit_overrides(org),
    )


def _read_region(org: Section) -> Region | None:
    value = org.raw("region", required=True, example="us-east-1")
    if value is MISSING:
        return None
    names = ", ".join(REGION_NAMES)
    if not isinstance(value, str):
        org.fail(
            "region",
            f"{show(value)} is {type_name(value)}, expected a region "
            f"name; use one of: {names}",
        )
        return None
    region = find_region(value)
    if region is None:
        org.fail("region", f"{show(value)} is not a known region; use one of: {names}")
    return region


def _read_credentials(org: Section, prefix: str) -> Credentials:
    section = org.section(
        "credentials",
        allowed=_CREDENTIAL_KEYS,
        required=True,
        example=f"{{client_id_env: {prefix}_CLIENT_ID, "
        f"client_secret_env: {prefix}_CLIENT_SECRET}}",
    )
    if "credentials" in org.invalid:
        return Credentials(client_id_env="", client_secret_env="")
    client_id_env = section.env_name(
        "client_id_env", required=True, example=f"{prefix}_CLIENT_ID"
    )
    client_secret_env = section.env_name(
        "client_secret_env", required=True, example=f"{prefix}_CLIENT_SECRET"
    )
    if client_id_env is not None and client_id_env == client_secret_env:
        section.fail(
            "client_secret_env",
            f"{client_secret_env!r} is also client_id_env; name two different "
            "variables, one for the client id and one for the secret",
        )
    return Credentials(
        client_id_env=client_id_env or "", client_secret_env=client_secret_env or ""
    )


def _read_base_url(org: Section) -> str | None:
    value = org.raw("base_url")
    if value is MISSING:
        return None
    if not isinstance(value, str):
        org.fail(
            "base_url",
            f"{show(value)} is {type_name(value)}, expected a URL; "
            "write one such as https://api.mypurecloud.com",
        )
        return None
    url, problem = _check_base_url(value)
    if problem is not None:
        org.fail("base_url", problem)
    return url


def _check_base_url(value: str) -> tuple[str | None, str | None]:
    """Return the normalised URL, or None and the problem with it."""
    fix_scheme = (
        "use https://, or http:// only to a loopback host such as http://127.0.0.1:8080"
    )
    text = value.strip()
    # Any '@' may separate a password from the host, even in a URL that does not
    # parse, so the value is hidden before anything else is checked.
    if "@" in text:
        return None, (
            f"{hidden(value)} is a URL with user information, which is an inline "
            "secret; remove the 'user:password@' part and name the OAuth client with "
            "credentials.client_id_env and credentials.client_secret_env"
        )

    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None, f"{show(value)} is not a valid URL; {fix_scheme}"
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("http", "https"):
        return None, f"{show(value)} is not an http(s) URL; {fix_scheme}"
    if not host or any(char.isspace() for char in text):
        return None, f"{show(value)} has no valid host; {fix_scheme}"
    if parts.query or parts.fragment:
        return None, (
            f"{show(value)} has a query or fragment; write only the scheme, host, "
            "port and an optional path prefix"
        )

    if scheme == "http" and not is_loopback_host(host):
        return None, (
            f"{show(value)} uses plain http to a host that is not loopback; use "
            "https, or plain http only to 127.0.0.1, ::1 or localhost"
        )
    return f"{scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}", None


def _read_users(org: Section) -> tuple[str, ...]:
    value = org.raw("users")
    if value is MISSING:
        return ()
    if not isinstance(value, list):
        org.fail(
            "users",
            f"{show(value)} is {type_name(value)}, expected a list of "
            "user ids; write users: [] to list the agents from the platform",
        )
        return ()
    users: list[str] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(value):
        path = index_path(org.key_path("users"), index)
        if not isinstance(item, str) or not _UUID.fullmatch(item.strip()):
            org.invalid.add("users")
            org.report.add(
                path,
                f"{show(item)} is not a user id; write the user's "
                "UUID, such as 3b1f0a52-8c1e-4a9e-9f55-2d7c6b0e4a11",
            )
            continue
        user = item.strip().lower()
        if user in first_index:
            org.invalid.add("users")
            earlier = index_path(org.key_path("users"), first_index[user])
            org.report.add(
                path,
                f"{show(item)} is already listed at {earlier}; remove the duplicate",
            )
            continue
        first_index[user] = index
        users.append(user)
    return tuple(users)


def _read_rate_limit_overrides(org: Section) -> dict[str, float]:
    section = org.section("rate_limit", allowed=_RATE_LIMIT_KEYS)
    overrides: dict[str, float] = {}
    defaults = RateLimitPolicy()
    for key in _RATE_LIMIT_KEYS:
        if section.raw(key) is MISSING:
            continue
        if key == "requests_per_minute":
            value = _read_requests_per_minute(section, defaults.requests_per_minute)
        else:
            value = section.duration(key, getattr(defaults, key))
        if section.valid(key):
            overrides[key] = value
    return overrides


def _read_requests_per_minute(section: Section, default: float) -> float:
    return section.number(
        "requests_per_minute",
        default,
        fix=f"use the org's API limit, such as {default:g}",
    )


def _check_org_set(
    drafts: list[_OrgDraft], report: Report, *, roles_valid: bool
) -> None:
    """Report problems between orgs: duplicate ids, the primary, shared clients."""
    first_with_id: dict[str, str] = {}
    primary_path: str | None = None
    env_owner: dict[str, str] = {}
    for draft in drafts:
        if draft.id:
            earlier = first_with_id.setdefault(draft.id, draft.path)
            if earlier != draft.path:
                report.add(
                    join_path(draft.path, "id"),
                    f"{draft.id!r} is already the "
                    f"id of {earlier}; give each org its own id",
                )
        if draft.role is Role.PRIMARY:
            if primary_path is None:
                primary_path = draft.path
            else:
                report.add(
                    join_path(draft.path, "role"),
                    f"'primary' is already the "
                    f"role of {primary_path}; exactly one org is primary, so "
                    "set role: satellite here",
                )
        _check_shared_client(draft, env_owner, report)
    if primary_path is None and roles_valid:
        report.add(
            "orgs",
            "no org has role 'primary'; set role: primary on exactly "
            "one org, the one where metadata arrives first",
        )


def _check_shared_client(
    draft: _OrgDraft, env_owner: dict[str, str], report: Report
) -> None:
    """Report a client id variable that another org already uses.

    An OAuth client belongs to one org, so two orgs cannot share one.
    """
    name = draft.credentials.client_id_env
    if not name:
        return
    earlier = env_owner.setdefault(name, draft.path)
    if earlier != draft.path:
        path = join_path(join_path(draft.path, "credentials"), "client_id_env")
        report.add(
            path,
            f"{name!r} is already the client id variable of {earlier}; "
            "an OAuth client belongs to one org, so name the variable that "
            "holds this org's client id",
        )


def _read_flags(flags: Section) -> Flags:
    return Flags(
        async_metadata_sync=flags.boolean("async_metadata_sync", True),
        realtime=flags.boolean("realtime", True),
    )


def _read_policies(policies: Section) -> Policies:
    defaults = Policies()
    return Policies(
        retry=_read_retry(policies.section("retry", allowed=_RETRY_KEYS)),
        breaker=_read_breaker(policies.section("breaker", allowed=_BREAKER_KEYS)),
        batch=_read_batch(policies.section("batch", allowed=_BATCH_KEYS)),
        rate_limit=_read_rate_limit(
            policies.section("rate_limit", allowed=_RATE_LIMIT_KEYS)
        ),
        request_timeout_s=policies.duration(
            "request_timeout_s", defaults.request_timeout_s
        ),
        reconciler=ReconcilerPolicy(
            interval_s=policies.section(
                "reconciler", allowed=_RECONCILER_KEYS
            ).duration("interval_s", ReconcilerPolicy().interval_s)
        ),
        realtime=_read_realtime(policies.section("realtime", allowed=_REALTIME_KEYS)),
    )


def _render_setting(section: Section, key: str, value: float) -> str:
    """Render a value read from ``key``, marking a default that the file left out."""
    if section.raw(key) is MISSING:
        return f"{value:g} (the default)"
    return f"{value:g}"


def _read_retry(retry: Section) -> RetryPolicy:
    defaults = RetryPolicy()
    policy = RetryPolicy(
        initial_delay_s=retry.duration("initial_delay_s", defaults.initial_delay_s),
        multiplier=retry.number(
            "multiplier",
            defaults.multiplier,
            minimum=1.0,
            inclusive=True,
            fix="use 1 for a constant delay or more, such as 2, because a "
            "multiplier below 1 shrinks each delay",
        ),
        max_delay_s=retry.duration("max_delay_s", defaults.max_delay_s),
        jitter=retry.choice("jitter", _JITTERS, defaults.jitter, noun="jitter mode"),
        deadline_s=retry.duration("deadline_s", defaults.deadline_s),
    )
    initial = policy.initial_delay_s
    if retry.valid("initial_delay_s", "max_delay_s") and policy.max_delay_s < initial:
        rendered = _render_setting(retry, "max_delay_s", policy.max_delay_s)
        retry.fail(
            "max_delay_s",
            f"{rendered} is less than initial_delay_s ({initial:g}); raise max_delay_s "
            f"to at least {initial:g} or lower initial_delay_s",
        )
    if retry.valid("initial_delay_s", "deadline_s") and policy.deadline_s < initial:
        rendered = _render_setting(retry, "deadline_s", policy.deadline_s)
        retry.fail(
            "deadline_s",
            f"{rendered} is less than initial_delay_s ({initial:g}), so a record would "
            "fail before its first retry; raise deadline_s",
        )
    return policy


def _read_breaker(breaker: Section) -> BreakerPolicy:
    defaults = BreakerPolicy()
    return BreakerPolicy(
        failure_ratio=breaker.ratio("failure_ratio", defaults.failure_ratio),
        window_s=breaker.duration("window_s", defaults.window_s),
        min_calls=breaker.count("min_calls", defaults.min_calls),
        open_s=breaker.duration("open_s", defaults.open_s),
        slow_call_s=breaker.duration("slow_call_s", defaults.slow_call_s),
        # 1 is meaningful here: open only when every call in the window is slow.
        slow_call_ratio=breaker.ratio(
            "slow_call_ratio", defaults.slow_call_ratio, allow_one=True
        ),
    )


def _read_batch(batch: Section) -> BatchPolicy:
    defaults = BatchPolicy()
    return BatchPolicy(
        interval_s=batch.duration("interval_s", defaults.interval_s),
        max_items=batch.count(
            "max_items",
            defaults.max_items,
            maximum=MAX_BATCH_ITEMS,
            maximum_reason=" items that the platform accepts per batch request",
        ),
        job_poll_s=batch.duration("job_poll_s", defaults.job_poll_s),
    )


def _read_rate_limit(rate_limit: Section) -> RateLimitPolicy:
    defaults = RateLimitPolicy()
    return RateLimitPolicy(
        requests_per_minute=_read_requests_per_minute(
            rate_limit, defaults.requests_per_minute
        ),
        max_retry_after_s=rate_limit.duration(
            "max_retry_after_s", defaults.max_retry_after_s
        ),
    )


def _read_realtime(realtime: Section) -> RealtimePolicy:
    defaults = RealtimePolicy()
    return RealtimePolicy(
        lease_ttl_s=realtime.duration("lease_ttl_s", defaults.lease_ttl_s),
        session_s=realtime.duration("session_s", defaults.session_s),
        heartbeat_timeout_s=realtime.duration(
            "heartbeat_timeout_s", defaults.heartbeat_timeout_s
        ),
        max_topics_per_channel=realtime.count(
            "max_topics_per_channel",
            defaults.max_topics_per_channel,
            maximum=MAX_TOPICS_PER_CHANNEL,
            maximum_reason=" topics that the platform allows on one channel",
        ),
        max_channels=realtime.count(
            "max_channels",
            defaults.max_channels,
            maximum=MAX_CHANNELS,
            maximum_reason=" channels per OAuth client (one more evicts the oldest)",
        ),
    )


def _read_status(status: Section) -> StatusConfig:
    defaults = StatusConfig()
    host = status.text("host", defaults.host, example=defaults.host)
    if status.valid("host") and not _is_host(host):
        status.fail(
            "host",
            f"{show(host)} is not a host name or IP address; use one such as "
            f"{defaults.host}",
        )
    port = status.count(
        "port", defaults.port, maximum=65535, maximum_reason=" (the highest TCP port)"
    )
    return StatusConfig(host=host, port=port)


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return _HOSTNAME.fullmatch(text) is not None
    return True
