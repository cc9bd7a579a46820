"""Prometheus text of the status collector, parsed with prometheus-client."""

from __future__ import annotations

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from recsync.status.metrics import render_metrics
from recsync.status.reads import StatusReader
from recsync.store import RecordStore, keys

NOW = 1_700_000_000.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def clock() -> float:
    return NOW


@pytest.fixture
def samples(
    fake_redis: redis.Redis,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    store = RecordStore(fake_redis, clock=clock)
    store.track("org-a", "conv-1", "rec-1", deadline_s=600, due_in_s=-30)
    store.track("org-a", "conv-1", "rec-2", deadline_s=600)
    store.claim("org-a", "rec-2", token="t", lease_s=10)
    store.mark_ready("org-a", "rec-2", token="t", metadata={}, fingerprint="x")
    store.track("org-b", "conv-1", "rec-3", deadline_s=600)
    for field, amount in [
        ("fetch:ready", 4),
        ("fetch:timeout", 2),
        ("status:408", 2),
        ("platform_calls", 9),
        ("platform_wait_s", 3),
        ("realtime:events", 5),
        ("odd", 1),
    ]:
        store.incr("org-a", field, amount)
    fake_redis.hset(keys.breaker("org-a", "recordingmetadata"), "state", "open")
    fake_redis.set(keys.paused_until("org-a"), int((NOW + 60) * 1000))
    fake_redis.hset(
        keys.subscriber_status("org-a"),
        mapping={"state": "connected", "seen_at": repr(NOW - 2)},
    )
    text = render_metrics(StatusReader(store, fake_redis, clock=clock)).decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def test_metrics_records_by_state(samples: Samples) -> None:
    assert value(samples, "recsync_records", org="org-a", state="pending") == 1
    assert value(samples, "recsync_records", org="org-a", state="ready") == 1
    assert value(samples, "recsync_records", org="org-b", state="pending") == 1


def test_metrics_fetch_outcomes(samples: Samples) -> None:
    name = "recsync_fetch_outcomes_total"
    assert value(samples, name, org="org-a", outcome="ready") == 4
    assert value(samples, name, org="org-a", outcome="timeout") == 2


def test_metrics_status_codes(samples: Samples) -> None:
    name = "recsync_platform_responses_total"
    assert value(samples, name, org="org-a", status="408") == 2


def test_metrics_plain_counters(samples: Samples) -> None:
    assert value(samples, "recsync_platform_calls_total", org="org-a") == 9
    assert value(samples, "recsync_platform_wait_seconds_total", org="org-a") == 3
    assert value(samples, "recsync_realtime_events_total", org="org-a") == 5
    assert value(samples, "recsync_store_counter_total", org="org-a", name="odd") == 1


def test_metrics_breaker_state(samples: Samples) -> None:
    labels = {"org": "org-a", "endpoint": "recordingmetadata", "state": "open"}
    assert value(samples, "recsync_breaker_state", **labels) == 1


def test_metrics_budget_paused(samples: Samples) -> None:
    assert value(samples, "recsync_budget_paused", org="org-a") == 1
    assert value(samples, "recsync_budget_paused", org="org-b") == 0


def test_metrics_queue_lag(samples: Samples) -> None:
    assert value(samples, "recsync_queue_lag_seconds", org="org-a") == 30
    assert value(samples, "recsync_due_records", org="org-a") == 1


def test_metrics_realtime_state(samples: Samples) -> None:
    labels = {"org": "org-a", "state": "connected"}
    assert value(samples, "recsync_realtime_state", **labels) == 1
    assert value(samples, "recsync_realtime_seen_age_seconds", org="org-a") == 2
    unknown = {"org": "org-b", "state": "unknown"}
    assert value(samples, "recsync_realtime_state", **unknown) == 1
