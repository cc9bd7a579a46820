"""Property tests: no input makes the manifest loader fail other than ManifestError."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsync.errors import ManifestError
from recsync.manifest import Manifest, manifest_from_mapping, parse_manifest

KNOWN_KEYS = [
    "version",
    "time_scale",
    "orgs",
    "flags",
    "policies",
    "status",
    "id",
    "name",
    "region",
    "role",
    "credentials",
    "client_id_env",
    "client_secret_env",
    "base_url",
    "status_token_env",
    "users",
    "rate_limit",
    "requests_per_minute",
    "max_retry_after_s",
    "retry",
    "breaker",
    "batch",
    "reconciler",
    "realtime",
    "initial_delay_s",
    "multiplier",
    "max_delay_s",
    "jitter",
    "deadline_s",
    "failure_ratio",
    "window_s",
    "min_calls",
    "open_s",
    "slow_call_s",
    "slow_call_ratio",
    "interval_s",
    "max_items",
    "job_poll_s",
    "request_timeout_s",
    "lease_ttl_s",
    "session_s",
    "heartbeat_timeout_s",
    "max_topics_per_channel",
    "max_channels",
    "host",
    "port",
    "client_secret",
    "password",
    "token",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["us-east-1", "primary", "satellite", "full", "http://127.0.0.1"]),
    st.dates(),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=12), st.integers())
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=30,
)

VALID: dict[str, Any] = {
    "version": 1,
    "orgs": [
        {
            "id": "org-primary",
            "region": "us-east-1",
            "role": "primary",
            "credentials": {"client_id_env": "A_ID", "client_secret_env": "A_SECRET"},
            "users": ["3b1f0a52-8c1e-4a9e-9f55-2d7c6b0e4a11"],
            "rate_limit": {"requests_per_minute": 100},
        },
        {
            "id": "org-eu",
            "region": "eu-west-1",
            "role": "satellite",
            "credentials": {"client_id_env": "B_ID", "client_secret_env": "B_SECRET"},
            "base_url": "http://127.0.0.1:8080",
        },
    ],
    "flags": {"realtime": True},
    "policies": {
        "retry": {"initial_delay_s": 5, "jitter": "full"},
        "breaker": {"failure_ratio": 0.05},
        "batch": {"max_items": 100},
    },
    "status": {"host": "127.0.0.1", "port": 8765},
}


def check_outcome(load: Any) -> None:
    """Call ``load``; it must return a Manifest or raise a well-formed ManifestError."""
    try:
        result = load()
    except ManifestError as exc:
        assert exc.problems, "ManifestError without problems"
        for problem in exc.problems:
            assert "\n" not in problem, problem
        return
    assert isinstance(result, Manifest)


def paths_of(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (tuple of keys and indexes) inside a nested value."""
    found = [prefix]
    if isinstance(data, dict):
        for key, child in data.items():
            found.extend(paths_of(child, (*prefix, key)))
    elif isinstance(data, list):
        for index, child in enumerate(data):
            found.extend(paths_of(child, (*prefix, index)))
    return found


VALID_PATHS = [path for path in paths_of(VALID) if path]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_fuzz_arbitrary_value_from_mapping(data: Any) -> None:
    check_outcome(lambda: manifest_from_mapping(data))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=8))
def test_fuzz_arbitrary_mapping(data: dict[Any, Any]) -> None:
    check_outcome(lambda: manifest_from_mapping(data))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_PATHS), values, st.booleans())
def test_fuzz_valid_with_one_change(
    path: tuple[Any, ...], replacement: Any, delete: bool
) -> None:
    data = copy.deepcopy(VALID)
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement

    check_outcome(lambda: manifest_from_mapping(data))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(text: str) -> None:
    check_outcome(lambda: parse_manifest(text))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_fuzz_dumped_yaml(data: Any) -> None:
    text = yaml.safe_dump(data)

    check_outcome(lambda: parse_manifest(text))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                "version: 1\n",
                "orgs:\n",
                "  - ",
                "id: a\n",
                "&x ",
                "*x\n",
                "[",
                "]",
                "{",
                "}",
                ": ",
                "- ",
                "<<: *x\n",
                "!!str ",
                "!!timestamp ",
                "!!bool ",
                "!!binary ",
                "!!python/object ",
                "? ",
                "'",
                '"',
                "\t",
                "\n",
                "---\n",
            ]
        ),
        max_size=40,
    )
)
def test_fuzz_yaml_fragments(parts: list[str]) -> None:
    check_outcome(lambda: parse_manifest("".join(parts)))


def test_fuzz_self_containing_mapping() -> None:
    data: dict[str, Any] = {"version": 1}
    data["orgs"] = [data]

    check_outcome(lambda: manifest_from_mapping(data))


def test_valid_base_loads() -> None:
    manifest = manifest_from_mapping(copy.deepcopy(VALID))

    assert manifest.org("org-primary").rate_limit.requests_per_minute == 100


durations = st.floats(min_value=0.001, max_value=1e6)


@settings(max_examples=200)
@given(
    initial=durations,
    extra=st.floats(min_value=0, max_value=1e6),
    multiplier=st.floats(min_value=1, max_value=10),
    failure_ratio=st.floats(min_value=0.0001, max_value=0.9999),
    max_items=st.integers(min_value=1, max_value=100),
    time_scale=st.floats(min_value=0.001, max_value=100),
)
def test_fuzz_valid_values_round_trip(
    initial: float,
    extra: float,
    multiplier: float,
    failure_ratio: float,
    max_items: int,
    time_scale: float,
) -> None:
    data = copy.deepcopy(VALID)
    data["time_scale"] = time_scale
    data["policies"]["retry"] = {
        "initial_delay_s": initial,
        "max_delay_s": initial + extra,
        "deadline_s": initial + extra,
        "multiplier": multiplier,
    }
    data["policies"]["breaker"] = {"failure_ratio": failure_ratio}
    data["policies"]["batch"] = {"max_items": max_items}

    manifest = parse_manifest(yaml.safe_dump(data))

    assert manifest.policies.retry.initial_delay_s == initial
    assert manifest.policies.retry.multiplier == multiplier
    assert manifest.policies.breaker.failure_ratio == failure_ratio
    assert manifest.policies.batch.max_items == max_items
    assert manifest.scaled().policies.retry.initial_delay_s == initial * time_scale
