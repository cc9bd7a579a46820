"""Load and check scenarios from YAML files, mappings and the shipped names.

Checks are written by hand instead of with cattrs because each problem must name the
field's path, the value found and the fix, and every problem of a file is reported
at once in one :class:`ScenarioError`.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import re
import uuid
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import attrs
import yaml

from recsync.emulator.scenario import (
    DEFAULT_EPOCH,
    FAULT_KINDS,
    INVALID_BODY_KINDS,
    ONE_SHOT_FAULTS,
    FaultSpec,
    OrgSpec,
    Propagation,
    Scenario,
    ScenarioError,
)

# AWS region names that the platform reports in RecordingMetadata.region.
REGIONS = (
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ca-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-west-2",
)
ORG_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
SERVER_ERROR_STATUSES = (500, 502, 503, 504)
# The platform lets an OAuth client's token live from 5 minutes to 48 hours.
MIN_TOKEN_LIFETIME_S = 300
MAX_TOKEN_LIFETIME_S = 172800
MAX_CONVERSATIONS = 100_000

SCENARIO_KEYS = {
    "name",
    "seed",
    "epoch",
    "duration_s",
    "conversations",
    "screen_ratio",
    "users",
    "queues",
    "batch_completion_s",
    "orgs",
    "faults",
}
ORG_KEYS = {
    "id",
    "platform_org_id",
    "name",
    "region",
    "role",
    "client_id",
    "client_secret",
    "propagation",
    "rate_limit_per_minute",
    "token_lifetime_s",
}
PROPAGATION_KEYS = {
    "fixed": {"distribution", "value_s"},
    "uniform": {"distribution", "low_s", "high_s"},
    "lognormal": {"distribution", "median_s", "p99_s"},
}
FAULT_KEYS = {
    "timeout_ratio": {"ratio", "start_s", "end_s", "count"},
    "rate_limit": {"retry_after_s", "start_s", "end_s", "count"},
    "server_error": {"status", "ratio", "start_s", "end_s", "retry_after_s", "count"},
    "slow": {"delay_ms", "ratio", "start_s", "end_s", "count"},
    "invalid_body": {"ratio", "body", "start_s", "end_s", "count"},
    "drop_events": {"ratio", "start_s", "end_s", "count"},
    "duplicate_events": {"ratio", "start_s", "end_s", "count"},
    "reorder_events": {"ratio", "start_s", "end_s", "count"},
    "silent_socket": {"start_s", "end_s"},
    "socket_closing": {"at_s"},
    "no_longer_subscribed": {"at_s"},
    "channel_expiry": {"at_s"},
}
SHIPPED_DIR = "scenarios"


class _Checker:
    """Collects problems while reading fields of a raw mapping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, value: Any, fix: str) -> None:
        self.problems.append(f"{path}: {value!r} {fix}")

    def unknown_keys(
        self, path: str, raw: Mapping[str, Any], allowed: set[str]
    ) -> None:
        for key in sorted(set(raw) - allowed, key=str):
            self.fail(
                f"{path}.{key}" if path else str(key),
                raw[key],
                f"is not a known field; use one of: {', '.join(sorted(allowed))}",
            )

    def number(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: str,
        default: float,
        *,
        minimum: float = -math.inf,
        maximum: float = math.inf,
        above: bool = False,
        integer: bool = False,
    ) -> float:
        value = raw.get(key, default)
        where = f"{path}.{key}" if path else key
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            noun = "an integer" if integer else "a number"
            self.fail(where, value, f"is not {noun}; write {noun} such as {default}")
            return default
        too_low = value <= minimum if above else value < minimum
        if too_low or value > maximum or math.isnan(value):
            relation = "above" if above else "at least"
            bound = f"{relation} {minimum}"
            if maximum != math.inf:
                bound += f" and at most {maximum}"
            self.fail(where, value, f"is out of range; use a value {bound}")
            return default
        return value

    def integer(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: str,
        default: int,
        *,
        minimum: float = -math.inf,
        maximum: float = math.inf,
    ) -> int:
        value = self.number(
            raw, key, path, default, minimum=minimum, maximum=maximum, integer=True
        )
        return int(value)

    def text(self, raw: Mapping[str, Any], key: str, path: str, default: str) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or not value:
            self.fail(
                f"{path}.{key}", value, "is not a non-empty string; quote a value"
            )
            return default
        return value

    def choice(
        self, raw: Mapping[str, Any], key: str, path: str, options: tuple[str, ...]
    ) -> str:
        value = raw.get(key, options[0])
        if value not in options:
            self.fail(
                f"{path}.{key}", value, f"is invalid; use one of: {', '.join(options)}"
            )
            return options[0]
        return str(value)


def load_scenario(source: str | Path | Mapping[str, Any]) -> Scenario:
    """Load a scenario from a YAML file path, a shipped name or a mapping.

    Raises :class:`ScenarioError` listing every problem found.
    """
    if isinstance(source, Mapping):
        return parse_scenario(source, source_name="scenario")
    path = Path(source)
    if not path.exists() and str(source) in shipped_scenario_names():
        return scenario_by_name(str(source))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        names = ", ".join(shipped_scenario_names())
        raise ScenarioError(
            [f"{source!r} cannot be read ({exc}); give a YAML file or one of: {names}"],
            source=str(source),
        ) from exc
    return parse_yaml(text, source_name=str(path), default_name=path.stem)


def parse_yaml(
    text: str, *, source_name: str, default_name: str = "custom"
) -> Scenario:
    """Parse scenario YAML text (safe loader only)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(
            [f"invalid YAML ({exc}); fix the syntax"], source=source_name
        ) from exc
    if not isinstance(raw, Mapping):
        raise ScenarioError(
            [
                f"top level: {type(raw).__name__} found; "
                "write a mapping with an orgs list"
            ],
            source=source_name,
        )
    raw = dict(raw)
    raw.setdefault("name", default_name)
    return parse_scenario(raw, source_name=source_name)


def shipped_scenario_names() -> list[str]:
    """Return the names of the scenarios shipped with the emulator."""
    folder = resources.files("recsync.emulator").joinpath(SHIPPED_DIR)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def scenario_by_name(name: str) -> Scenario:
    """Load a shipped scenario: ``default``, ``storm`` or ``flaky-socket``."""
    names = shipped_scenario_names()
    if name not in names:
        raise ScenarioError(
            [
                f"name: {name!r} is not a shipped scenario; "
                f"use one of: {', '.join(names)}"
            ]
        )
    entry = resources.files("recsync.emulator").joinpath(SHIPPED_DIR, f"{name}.yaml")
    text = entry.read_text(encoding="utf-8")
    return parse_yaml(text, source_name=f"{name}.yaml", default_name=name)


def default_scenario(
    *, conversations: int | None = None, seed: int | None = None
) -> Scenario:
    """Return the shipped default scenario, with optional overrides."""
    scenario = scenario_by_name("default")
    problems = []
    if conversations is not None and not 0 <= conversations <= MAX_CONVERSATIONS:
        problems.append(
            f"conversations: {conversations!r} is out of range; "
            f"use 0 to {MAX_CONVERSATIONS}"
        )
    if problems:
        raise ScenarioError(problems, source="default_scenario")
    if conversations is not None:
        scenario = attrs.evolve(scenario, conversations=conversations)
    if seed is not None:
        scenario = attrs.evolve(scenario, seed=seed)
    return scenario


def parse_scenario(
    raw: Mapping[str, Any], *, source_name: str = "scenario"
) -> Scenario:
    """Check a raw mapping and build a :class:`Scenario` from it."""
    check = _Checker()
    check.unknown_keys("", raw, SCENARIO_KEYS)
    seed = check.integer(raw, "seed", "", 7)
    epoch = raw.get("epoch", DEFAULT_EPOCH)
    if not _valid_epoch(epoch):
        fix = "is not an ISO-8601 UTC time; write 2026-12-01T09:00:00.000Z"
        check.fail("epoch", epoch, fix)
        epoch = DEFAULT_EPOCH

    orgs = _parse_orgs(check, raw.get("orgs"), seed)
    faults = _parse_faults(check, raw.get("faults", []), {org.id for org in orgs})

    scenario = Scenario(
        orgs=tuple(orgs),
        seed=seed,
        epoch=epoch,
        duration_s=check.number(raw, "duration_s", "", 60.0, minimum=0, above=True),
        conversations=check.integer(
            raw, "conversations", "", 200, minimum=0, maximum=MAX_CONVERSATIONS
        ),
        screen_ratio=check.number(raw, "screen_ratio", "", 0.5, minimum=0, maximum=1),
        users=check.integer(raw, "users", "", 10, minimum=1, maximum=10_000),
        queues=check.integer(raw, "queues", "", 1, minimum=1, maximum=1000),
        batch_completion_s=check.number(raw, "batch_completion_s", "", 3.0, minimum=0),
        faults=tuple(faults),
        name=str(raw.get("name", "custom")),
    )
    if check.problems:
        raise ScenarioError(check.problems, source=source_name)
    return scenario


def _valid_epoch(value: Any) -> bool:
    if not isinstance(value, str) or not value.endswith("Z"):
        return False
    try:
        dt.datetime.fromisoformat(value.removesuffix("Z") + "+00:00")
    except ValueError:
        return False
    return True


def _parse_orgs(check: _Checker, raw_orgs: Any, seed: int) -> list[OrgSpec]:
    if not isinstance(raw_orgs, list) or not raw_orgs:
        check.fail("orgs", raw_orgs, "is not a non-empty list; list at least one org")
        return []
    rng = random.Random(f"{seed}:platform-org-ids")
    orgs: list[OrgSpec] = []
    for index, raw in enumerate(raw_orgs):
        path = f"orgs[{index}]"
        generated_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if not isinstance(raw, Mapping):
            check.fail(path, raw, "is not a mapping; write id, role, client_id, ...")
            continue
        orgs.append(_parse_org(check, raw, path, generated_id))
    _check_org_set(check, orgs)
    return orgs


def _parse_org(
    check: _Checker, raw: Mapping[str, Any], path: str, generated_id: str
) -> OrgSpec:
    check.unknown_keys(path, raw, ORG_KEYS)
    org_id = check.text(raw, "id", path, "org")
    if not ORG_ID_PATTERN.match(org_id):
        check.fail(
            f"{path}.id", org_id, "is not a slug; use lowercase letters, digits and '-'"
        )
    platform_org_id = raw.get("platform_org_id", generated_id)
    if not _is_uuid(platform_org_id):
        check.fail(f"{path}.platform_org_id", platform_org_id, "is not a UUID; omit it")
        platform_org_id = generated_id
    region = raw.get("region", "us-east-1")
    if region not in REGIONS:
        check.fail(
            f"{path}.region", region, f"is not known; use one of: {', '.join(REGIONS)}"
        )
        region = "us-east-1"
    return OrgSpec(
        id=org_id,
        platform_org_id=str(platform_org_id),
        name=check.text(raw, "name", path, org_id),
        region=region,
        role=check.choice(raw, "role", path, ("satellite", "primary")),  # type: ignore[arg-type]
        client_id=check.text(raw, "client_id", path, f"{org_id}-client"),
        client_secret=check.text(raw, "client_secret", path, f"{org_id}-secret"),
        propagation=_parse_propagation(
            check, raw.get("propagation"), f"{path}.propagation"
        ),
        rate_limit_per_minute=check.integer(
            raw, "rate_limit_per_minute", path, 300, minimum=1
        ),
        token_lifetime_s=check.number(
            raw,
            "token_lifetime_s",
            path,
            86400,
            minimum=MIN_TOKEN_LIFETIME_S,
            maximum=MAX_TOKEN_LIFETIME_S,
        ),
    )


def _check_org_set(check: _Checker, orgs: list[OrgSpec]) -> None:
    primaries = [org.id for org in orgs if org.role == "primary"]
    if orgs and len(primaries) != 1:
        check.fail("orgs", primaries, "must contain exactly one org with role: primary")
    for field in ("id", "client_id"):
        seen: set[str] = set()
        for index, org in enumerate(orgs):
            value = getattr(org, field)
            if value in seen:
                check.fail(
                    f"orgs[{index}].{field}", value, "is a duplicate; make it unique"
                )
            seen.add(value)


def _parse_propagation(check: _Checker, raw: Any, path: str) -> Propagation:
    if raw is None:
        return Propagation()
    if not isinstance(raw, Mapping):
        check.fail(
            path, raw, "is not a mapping; write {distribution: fixed, value_s: 0}"
        )
        return Propagation()
    distribution = check.choice(
        raw, "distribution", path, ("fixed", "uniform", "lognormal")
    )
    check.unknown_keys(path, raw, PROPAGATION_KEYS[distribution])
    if distribution == "fixed":
        return Propagation(value_s=check.number(raw, "value_s", path, 0.0, minimum=0))
    if distribution == "uniform":
        low_s = check.number(raw, "low_s", path, 0.0, minimum=0)
        high_s = check.number(raw, "high_s", path, low_s, minimum=0)
        if high_s < low_s:
            check.fail(f"{path}.high_s", high_s, f"is below low_s ({low_s}); raise it")
        return Propagation(distribution="uniform", low_s=low_s, high_s=high_s)
    median_s = check.number(raw, "median_s", path, 8.0, minimum=0, above=True)
    p99_s = check.number(raw, "p99_s", path, median_s * 5, minimum=0, above=True)
    if p99_s <= median_s:
        check.fail(
            f"{path}.p99_s", p99_s, f"is not above median_s ({median_s}); raise it"
        )
        p99_s = median_s * 5
    return Propagation(distribution="lognormal", median_s=median_s, p99_s=p99_s)


def _parse_faults(
    check: _Checker, raw_faults: Any, org_ids: set[str]
) -> list[FaultSpec]:
    if raw_faults is None:
        return []
    if not isinstance(raw_faults, list):
        check.fail(
            "faults", raw_faults, "is not a list; write a list of faults or omit it"
        )
        return []
    faults = []
    for index, raw in enumerate(raw_faults):
        fault = parse_fault(check, raw, f"faults[{index}]", org_ids)
        if fault is not None:
            faults.append(fault)
    return faults


def parse_fault_mapping(raw: Any, *, org_ids: set[str]) -> FaultSpec:
    """Check one fault given at run time; raise :class:`ScenarioError` when invalid."""
    check = _Checker()
    fault = parse_fault(check, raw, "fault", org_ids)
    if fault is None or check.problems:
        raise ScenarioError(check.problems, source="fault")
    return fault


def parse_fault(
    check: _Checker, raw: Any, path: str, org_ids: set[str]
) -> FaultSpec | None:
    """Check one raw fault, adding problems to ``check``; None when unusable."""
    if not isinstance(raw, Mapping):
        check.fail(path, raw, "is not a mapping; write {org: ..., kind: ..., ...}")
        return None
    kind = raw.get("kind")
    if kind not in FAULT_KINDS:
        fix = f"is not a fault kind; use one of: {', '.join(FAULT_KINDS)}"
        check.fail(f"{path}.kind", kind, fix)
        return None
    check.unknown_keys(path, raw, FAULT_KEYS[kind] | {"org", "kind"})

    org = raw.get("org")
    if org not in org_ids:
        known = ", ".join(sorted(org_ids)) or "(no valid orgs)"
        check.fail(
            f"{path}.org", org, f"is not an org of this scenario; use one of: {known}"
        )
    if kind in ONE_SHOT_FAULTS and "at_s" not in raw:
        check.fail(
            f"{path}.at_s", None, f"is missing; {kind} fires once at at_s seconds"
        )

    fault = FaultSpec(
        org=str(org),
        kind=kind,
        ratio=check.number(raw, "ratio", path, 1.0, minimum=0, maximum=1),
        start_s=check.number(raw, "start_s", path, 0.0, minimum=0),
        end_s=check.number(raw, "end_s", path, math.inf, minimum=0),
        at_s=check.number(raw, "at_s", path, 0.0, minimum=0),
        retry_after_s=_retry_after(check, raw, path, kind),
        status=_server_status(check, raw, path),
        delay_ms=check.number(raw, "delay_ms", path, 1000.0, minimum=0),
        body=check.choice(raw, "body", path, INVALID_BODY_KINDS),
        count=check.integer(raw, "count", path, 1, minimum=1)
        if "count" in raw
        else None,
    )
    if fault.end_s <= fault.start_s:
        check.fail(f"{path}.end_s", fault.end_s, "is not after start_s; raise it")
    return fault


def _server_status(check: _Checker, raw: Mapping[str, Any], path: str) -> int:
    status = raw.get("status", 503)
    if status not in SERVER_ERROR_STATUSES:
        allowed = ", ".join(map(str, SERVER_ERROR_STATUSES))
        fix = f"is not a server error status; use one of: {allowed}"
        check.fail(f"{path}.status", status, fix)
        return 503
    return int(status)


def _retry_after(
    check: _Checker, raw: Mapping[str, Any], path: str, kind: str
) -> int | None:
    # A 429 always names its wait; a server error carries Retry-After only if asked.
    if "retry_after_s" not in raw and kind != "rate_limit":
        return None
    return check.integer(raw, "retry_after_s", path, 60, minimum=1)


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)
