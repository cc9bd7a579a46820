"""Valid manifests: loading, defaults, merged rate limits, hosts and the summary."""

from __future__ import annotations

import pathlib

import pytest

from recsync.errors import ManifestError
from recsync.manifest import (
    BatchPolicy,
    BreakerPolicy,
    Flags,
    Jitter,
    Manifest,
    Policies,
    RateLimitPolicy,
    RealtimePolicy,
    ReconcilerPolicy,
    RetryPolicy,
    Role,
    StatusConfig,
    example_manifest_text,
    load_manifest,
    manifest_from_mapping,
    parse_manifest,
    summarize,
)

GOOD_DIR = pathlib.Path(__file__).parents[1] / "data" / "manifests" / "good"
GOOD_FILES = sorted(GOOD_DIR.glob("*.yaml"))
EXAMPLE = pathlib.Path(__file__).parents[2] / "recsync" / "manifest" / "example.yaml"


def load_good(name: str) -> Manifest:
    return load_manifest(GOOD_DIR / name)


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda path: path.stem)
def test_good_file_loads(path: pathlib.Path) -> None:
    manifest = load_manifest(path)

    assert manifest.version == 1
    assert manifest.primary.role is Role.PRIMARY


def test_example_loads() -> None:
    manifest = load_manifest(EXAMPLE)

    assert [org.id for org in manifest.orgs] == ["org-primary", "org-eu"]


def test_example_text_matches_file() -> None:
    assert example_manifest_text() == EXAMPLE.read_text("utf-8")


def test_example_shows_defaults() -> None:
    manifest = load_manifest(EXAMPLE)

    assert manifest.policies == Policies()
    assert manifest.flags == Flags()
    assert manifest.status == StatusConfig()
    assert manifest.time_scale == 1.0


def test_minimal_defaults() -> None:
    manifest = load_good("minimal.yaml")
    org = manifest.orgs[0]

    assert manifest.time_scale == 1.0
    assert manifest.flags == Flags(async_metadata_sync=True, realtime=True)
    assert manifest.status == StatusConfig(host="127.0.0.1", port=8765)
    assert org.name == "org-primary"
    assert org.base_url is None
    assert org.status_token_env is None
    assert org.users == ()
    assert org.rate_limit == RateLimitPolicy()
    assert manifest.durations_scaled is False


def test_default_policy_values() -> None:
    policies = load_good("minimal.yaml").policies

    assert policies.retry == RetryPolicy(
        initial_delay_s=5,
        multiplier=2,
        max_delay_s=30,
        jitter=Jitter.FULL,
        deadline_s=3600,
    )
    assert policies.breaker == BreakerPolicy(
        failure_ratio=0.05,
        window_s=60,
        min_calls=20,
        open_s=60,
        slow_call_s=10,
        slow_call_ratio=0.5,
    )
    assert policies.batch == BatchPolicy(interval_s=60, max_items=100, job_poll_s=5)
    assert policies.rate_limit == RateLimitPolicy(
        requests_per_minute=300, max_retry_after_s=180
    )
    assert policies.request_timeout_s == 5
    assert policies.reconciler == ReconcilerPolicy(interval_s=15)
    assert policies.realtime == RealtimePolicy(
        lease_ttl_s=30,
        session_s=300,
        heartbeat_timeout_s=35,
        max_topics_per_channel=1000,
        max_channels=20,
    )


def test_full_reads_every_key() -> None:
    manifest = load_good("full.yaml")
    policies = manifest.policies

    assert manifest.time_scale == 0.5
    assert manifest.flags == Flags(async_metadata_sync=False, realtime=False)
    assert policies.retry == RetryPolicy(2, 3, 40, Jitter.DECORRELATED, 7200)
    assert policies.breaker == BreakerPolicy(0.1, 30, 10, 45, 8, 1)
    assert policies.batch == BatchPolicy(30, 50, 2)
    assert policies.rate_limit == RateLimitPolicy(120, 60)
    assert policies.request_timeout_s == 7
    assert policies.reconciler == ReconcilerPolicy(20)
    assert policies.realtime == RealtimePolicy(20, 600, 40, 500, 5)
    assert manifest.status == StatusConfig(host="0.0.0.0", port=9000)


def test_full_org_fields() -> None:
    org = load_good("full.yaml").org("org-primary")

    assert org.name == "Primary Org"
    assert org.region.name == "us-east-1"
    assert org.credentials.client_id_env == "RECSYNC_PRIMARY_CLIENT_ID"
    assert org.credentials.client_secret_env == "RECSYNC_PRIMARY_CLIENT_SECRET"
    assert org.status_token_env == "RECSYNC_PRIMARY_STATUS_TOKEN"
    assert org.base_url == "https://api.example.test/gateway"


def test_users_normalised_lowercase() -> None:
    org = load_good("full.yaml").org("org-primary")

    assert org.users == (
        "3b1f0a52-8c1e-4a9e-9f55-2d7c6b0e4a11",
        "7e0c4b8a-1d2f-4c3b-9a8e-5f6d7c8b9a00",
    )


def test_org_rate_limit_merges_global() -> None:
    manifest = load_good("full.yaml")

    primary = manifest.org("org-primary").rate_limit
    europe = manifest.org("org-eu").rate_limit
    assert primary == RateLimitPolicy(requests_per_minute=600, max_retry_after_s=60)
    assert europe == RateLimitPolicy(requests_per_minute=120, max_retry_after_s=90)


def test_anchors_shared_values() -> None:
    manifest = load_good("anchors.yaml")

    assert manifest.org("org-eu").rate_limit.requests_per_minute == 60
    assert manifest.policies.breaker.failure_ratio == 0.2
    assert manifest.policies.batch == BatchPolicy(90, 10, 3)


def test_null_sections_take_defaults() -> None:
    manifest = load_good("null_sections.yaml")

    assert manifest.policies == Policies()
    assert manifest.flags == Flags()
    assert manifest.time_scale == 1.0
    assert manifest.orgs[0].name == "org-primary"


def test_region_spellings_canonical() -> None:
    manifest = load_good("region_spellings.yaml")

    names = [org.region.name for org in manifest.orgs]
    assert names == ["us-east-1", "eu-west-2", "ap-northeast-1", "eusc-de-east-1"]


def test_org_lookup_unknown() -> None:
    manifest = load_good("minimal.yaml")

    with pytest.raises(KeyError, match="no org 'org-x' in the manifest"):
        manifest.org("org-x")


def test_satellites_excludes_primary() -> None:
    manifest = load_good("full.yaml")

    assert [org.id for org in manifest.satellites] == ["org-eu"]


def test_hosts_from_region() -> None:
    org = load_good("minimal.yaml").orgs[0]

    assert org.api_host == "https://api.mypurecloud.com"
    assert org.login_host == "https://login.mypurecloud.com"
    assert org.streaming_host == "wss://streaming.mypurecloud.com"


def test_hosts_from_loopback_base_url() -> None:
    manifest = load_good("emulator.yaml")
    org = manifest.org("org-primary")

    assert org.api_host == "http://127.0.0.1:8080"
    assert org.login_host == "http://127.0.0.1:8080"
    assert org.streaming_host == "ws://127.0.0.1:8080"
    assert manifest.org("org-apac").api_host == "http://localhost:8080"
    assert manifest.org("org-v6").api_host == "http://[::1]:8081"


def test_hosts_from_api_base_url() -> None:
    text = (GOOD_DIR / "minimal.yaml").read_text()
    text += "    base_url: https://api.proxy.example.test\n"

    org = parse_manifest(text).orgs[0]

    assert org.login_host == "https://login.proxy.example.test"
    assert org.streaming_host == "wss://streaming.proxy.example.test"


def test_credentials_resolve_values() -> None:
    org = load_good("minimal.yaml").orgs[0]
    environ = {
        "RECSYNC_PRIMARY_CLIENT_ID": "client-1",
        "RECSYNC_PRIMARY_CLIENT_SECRET": "secret-1",
    }

    assert org.credentials.resolve(environ) == ("client-1", "secret-1")
    assert org.resolve_credentials(environ) == ("client-1", "secret-1")


def test_credentials_resolve_missing_names_variable() -> None:
    org = load_good("minimal.yaml").orgs[0]
    environ = {"RECSYNC_PRIMARY_CLIENT_ID": "client-1"}

    with pytest.raises(ManifestError) as caught:
        org.credentials.resolve(environ)

    assert len(caught.value.problems) == 1
    assert "RECSYNC_PRIMARY_CLIENT_SECRET is not set" in caught.value.problems[0]
    assert "client-1" not in str(caught.value)


def test_credentials_resolve_empty_and_unset() -> None:
    org = load_good("minimal.yaml").orgs[0]
    environ = {"RECSYNC_PRIMARY_CLIENT_ID": ""}

    with pytest.raises(ManifestError) as caught:
        org.resolve_credentials(environ)

    problems = caught.value.problems
    assert "RECSYNC_PRIMARY_CLIENT_ID is empty" in problems[0]
    assert "RECSYNC_PRIMARY_CLIENT_SECRET is not set" in problems[1]
    assert problems[0].startswith("orgs[org-primary].credentials.client_id_env: ")


def test_status_token_resolve() -> None:
    org = load_good("full.yaml").org("org-primary")

    assert org.resolve_status_token({"RECSYNC_PRIMARY_STATUS_TOKEN": "t"}) == "t"
    with pytest.raises(ManifestError, match="RECSYNC_PRIMARY_STATUS_TOKEN is not set"):
        org.resolve_status_token({})


def test_status_token_absent_is_none() -> None:
    org = load_good("minimal.yaml").orgs[0]

    assert org.resolve_status_token({}) is None


def test_scaled_multiplies_durations() -> None:
    manifest = load_good("emulator.yaml")

    scaled = manifest.scaled()

    retry = scaled.policies.retry
    assert retry.initial_delay_s == pytest.approx(0.25)
    assert retry.max_delay_s == pytest.approx(1.5)
    assert retry.deadline_s == pytest.approx(180)
    assert scaled.policies.breaker.window_s == pytest.approx(3)
    assert scaled.policies.breaker.open_s == pytest.approx(3)
    assert scaled.policies.breaker.slow_call_s == pytest.approx(0.5)
    assert scaled.policies.batch.interval_s == pytest.approx(3)
    assert scaled.policies.batch.job_poll_s == pytest.approx(0.25)
    assert scaled.policies.request_timeout_s == pytest.approx(0.25)
    assert scaled.policies.reconciler.interval_s == pytest.approx(0.75)
    assert scaled.policies.realtime.lease_ttl_s == pytest.approx(1.5)
    assert scaled.policies.realtime.session_s == pytest.approx(15)
    assert scaled.policies.realtime.heartbeat_timeout_s == pytest.approx(1.75)
    assert scaled.policies.rate_limit.max_retry_after_s == pytest.approx(9)


def test_scaled_keeps_counts_and_ratios() -> None:
    manifest = load_good("emulator.yaml")

    scaled = manifest.scaled()

    assert scaled.policies.retry.multiplier == 2
    assert scaled.policies.breaker.failure_ratio == 0.05
    assert scaled.policies.breaker.slow_call_ratio == 0.5
    assert scaled.policies.breaker.min_calls == 20
    assert scaled.policies.batch.max_items == 100
    assert scaled.policies.realtime.max_topics_per_channel == 1000
    assert scaled.policies.realtime.max_channels == 20


def test_scaled_divides_rates() -> None:
    scaled = load_good("emulator.yaml").scaled()

    assert scaled.policies.rate_limit.requests_per_minute == pytest.approx(6000)
    assert scaled.orgs[0].rate_limit.requests_per_minute == pytest.approx(6000)
    assert scaled.orgs[0].rate_limit.max_retry_after_s == pytest.approx(9)


def test_scaled_twice_is_once() -> None:
    manifest = load_good("emulator.yaml")

    scaled = manifest.scaled()

    assert scaled.durations_scaled is True
    assert scaled.time_scale == 0.05
    assert scaled.scaled() == scaled


def test_scaled_identity_at_one() -> None:
    manifest = load_good("minimal.yaml")

    assert manifest.scaled().policies == manifest.policies


def test_policies_scaled_rejects_zero() -> None:
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        Policies().scaled(0)


def test_mapping_input_loads() -> None:
    data = {
        "version": 1,
        "orgs": [
            {
                "id": "org-primary",
                "region": "us-east-1",
                "role": "primary",
                "credentials": {"client_id_env": "A", "client_secret_env": "B"},
            }
        ],
    }

    manifest = manifest_from_mapping(data, source="host config")

    assert manifest.primary.id == "org-primary"


def test_mapping_error_names_source() -> None:
    with pytest.raises(ManifestError) as caught:
        manifest_from_mapping({"version": 1}, source="host config")

    assert caught.value.source == "host config"
    assert str(caught.value).startswith("host config: 1 problem:")


def test_summary_lines() -> None:
    summary = summarize(load_good("full.yaml"))

    lines = summary.splitlines()
    assert lines[0] == "manifest version 1, time_scale 0.5, 2 orgs, primary org-primary"
    assert lines[1].startswith(
        "org org-primary (Primary Org): primary, region us-east-1"
    )
    assert "$RECSYNC_EU_CLIENT_SECRET" in lines[2]
    assert "decorrelated jitter" in summary
    assert "status service: 0.0.0.0:9000" in summary


def test_summary_never_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYNC_PRIMARY_CLIENT_SECRET", "leaked-secret-value")

    summary = summarize(load_good("minimal.yaml"))

    assert "leaked-secret-value" not in summary


SCHEMA_KEYS = [
    "version",
    "time_scale",
    "orgs",
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
    "flags",
    "async_metadata_sync",
    "realtime",
    "policies",
    "retry",
    "initial_delay_s",
    "multiplier",
    "max_delay_s",
    "jitter",
    "deadline_s",
    "breaker",
    "failure_ratio",
    "window_s",
    "min_calls",
    "open_s",
    "slow_call_s",
    "slow_call_ratio",
    "batch",
    "interval_s",
    "max_items",
    "job_poll_s",
    "request_timeout_s",
    "reconciler",
    "lease_ttl_s",
    "session_s",
    "heartbeat_timeout_s",
    "max_topics_per_channel",
    "max_channels",
    "status",
    "host",
    "port",
]


@pytest.mark.parametrize("key", SCHEMA_KEYS)
def test_example_documents_key(key: str) -> None:
    assert f"{key}:" in EXAMPLE.read_text("utf-8")
