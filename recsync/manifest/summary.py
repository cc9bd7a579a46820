"""A short plain-text description of a manifest, as ``recsync check`` prints it."""

from __future__ import annotations

import logging

from recsync.manifest.models import Manifest, OrgConfig

logger = logging.getLogger(__name__)


def _on_off(flag: bool) -> str:
    return "on" if flag else "off"


def _describe_org(org: OrgConfig) -> str:
    users = f"{len(org.users)} users" if org.users else "users listed from the platform"
    return (
        f"org {org.id} ({org.name}): {org.role.value}, region {org.region.name}, "
        f"api {org.api_host}, credentials from ${org.credentials.client_id_env} and "
        f"${org.credentials.client_secret_env}, {users}, "
        f"{org.rate_limit.requests_per_minute:g} requests/min"
    )


def summarize(manifest: Manifest) -> str:
    """Describe a manifest in a few lines: orgs, flags and the main policies.

    Names environment variables but never reads them, so no secret appears.
    """
    policies = manifest.policies
    retry = policies.retry
    breaker = policies.breaker
    batch = policies.batch
    unit = "wall s" if manifest.durations_scaled else "s"
    lines = [
        f"manifest version {manifest.version}, time_scale {manifest.time_scale:g}, "
        f"{len(manifest.orgs)} orgs, primary {manifest.primary.id}",
    ]
    lines.extend(_describe_org(org) for org in manifest.orgs)
    lines.append(
        f"flags: async_metadata_sync {_on_off(manifest.flags.async_metadata_sync)}, "
        f"realtime {_on_off(manifest.flags.realtime)}"
    )
    lines.append(
        f"retry: {retry.initial_delay_s:g} {unit} x{retry.multiplier:g} up to "
        f"{retry.max_delay_s:g} {unit}, {retry.jitter.value} jitter, failed after "
        f"{retry.deadline_s:g} {unit}"
    )
    lines.append(
        f"breaker: opens above {breaker.failure_ratio * 100:g}% failed or at "
        f"{breaker.slow_call_ratio * 100:g}% slower than "
        f"{breaker.slow_call_s:g} {unit}, "
        f"over {breaker.window_s:g} {unit} and at least {breaker.min_calls} calls; "
        f"stays open {breaker.open_s:g} {unit}"
    )
    lines.append(
        f"batch: every {batch.interval_s:g} {unit}, up to {batch.max_items} items, "
        f"polled every {batch.job_poll_s:g} {unit}; request timeout "
        f"{policies.request_timeout_s:g} {unit}"
    )
    lines.append(f"status service: {manifest.status.host}:{manifest.status.port}")
    return "\n".join(lines)
