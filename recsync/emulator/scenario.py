"""Scenario models: the orgs, traffic and faults one emulator run plays.

Values are frozen attrs classes. :mod:`recsync.emulator.loading` builds them from
YAML or a mapping and checks every field; :mod:`recsync.emulator.generation` turns a
scenario into its seeded conversations and recordings.
"""

from __future__ import annotations

import math
import random
from typing import Literal

import attrs

DEFAULT_EPOCH = "2026-12-01T09:00:00.000Z"

# z-score of the 99th percentile of the standard normal distribution: a lognormal
# with median m and 99th percentile p has sigma = (ln p - ln m) / Z_P99.
Z_P99 = 2.3263

Role = Literal["primary", "satellite"]
Distribution = Literal["fixed", "uniform", "lognormal"]

FAULT_KINDS = (
    "timeout_ratio",
    "rate_limit",
    "server_error",
    "slow",
    "invalid_body",
    "drop_events",
    "duplicate_events",
    "reorder_events",
    "silent_socket",
    "socket_closing",
    "no_longer_subscribed",
    "channel_expiry",
)
INVALID_BODY_KINDS = (
    "html",
    "not_json",
    "wrong_types",
    "missing_fields",
    "oversized",
    "unknown_enum",
)
# Faults that fire once at ``at_s``; the others apply over [start_s, end_s).
ONE_SHOT_FAULTS = ("socket_closing", "no_longer_subscribed", "channel_expiry")


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; ``problems`` lists every finding."""

    def __init__(self, problems: list[str], *, source: str = "scenario") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {count} {noun}:\n{lines}")


@attrs.frozen
class Propagation:
    """Delay between a recording's creation in the primary and its visibility."""

    distribution: Distribution = "fixed"
    value_s: float = 0.0
    low_s: float = 0.0
    high_s: float = 0.0
    median_s: float = 1.0
    p99_s: float = 1.0

    def sample(self, rng: random.Random) -> float:
        """Draw one delay in platform seconds."""
        if self.distribution == "fixed":
            return self.value_s
        if self.distribution == "uniform":
            return rng.uniform(self.low_s, self.high_s)
        return rng.lognormvariate(self.mu, self.sigma)

    @property
    def mu(self) -> float:
        """Location parameter of the lognormal distribution."""
        return math.log(self.median_s)

    @property
    def sigma(self) -> float:
        """Shape parameter of the lognormal distribution."""
        return (math.log(self.p99_s) - math.log(self.median_s)) / Z_P99


@attrs.frozen
class OrgSpec:
    """One Genesys Cloud org of the scenario with its OAuth client and limits."""

    id: str
    platform_org_id: str
    name: str
    region: str
    role: Role
    client_id: str
    client_secret: str
    propagation: Propagation = Propagation()
    rate_limit_per_minute: int = 300
    token_lifetime_s: float = 86400.0


@attrs.frozen
class FaultSpec:
    """One injected fault; which fields matter depends on ``kind``.

    Window faults apply over [start_s, end_s); one-shot faults fire at ``at_s``.
    ``ratio`` is the share of requests or events the fault hits, and ``count``
    caps how many it hits in total.
    """

    org: str
    kind: str
    ratio: float = 1.0
    start_s: float = 0.0
    end_s: float = math.inf
    at_s: float = 0.0
    retry_after_s: int | None = None
    status: int = 503
    delay_ms: float = 0.0
    body: str = "html"
    # Maximum number of requests or events the fault hits; None means no limit.
    count: int | None = None

    def active_at(self, now_s: float) -> bool:
        """Tell whether a window fault covers platform time ``now_s``."""
        return self.start_s <= now_s < self.end_s


@attrs.frozen
class Scenario:
    """A complete emulator run: orgs, generated traffic and faults."""

    orgs: tuple[OrgSpec, ...]
    seed: int = 7
    epoch: str = DEFAULT_EPOCH
    duration_s: float = 60.0
    conversations: int = 200
    screen_ratio: float = 0.5
    users: int = 10
    queues: int = 1
    batch_completion_s: float = 3.0
    faults: tuple[FaultSpec, ...] = ()
    name: str = "custom"

    @property
    def primary(self) -> OrgSpec:
        """The org where recordings are created first."""
        return next(org for org in self.orgs if org.role == "primary")

    def org(self, org_id: str) -> OrgSpec:
        """Return the org with ``org_id``; raise KeyError when there is none."""
        for org in self.orgs:
            if org.id == org_id:
                return org
        raise KeyError(org_id)
