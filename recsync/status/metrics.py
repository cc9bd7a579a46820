"""Prometheus collector that reads recsync's Redis state at scrape time.

The collector keeps no state of its own, so every process that serves ``/metrics``
reports the same cluster-wide numbers, and a scrape costs a few Redis round trips per
org.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recsync.status.reads import StatusReader

log = logging.getLogger(__name__)

# Store counter fields with a dedicated metric. Other fields go to
# recsync_store_counter_total with the field name as the ``name`` label.
_PREFIXED = {
    "fetch:": ("recsync_fetch_outcomes", "Fetch attempts by outcome.", "outcome"),
    "status:": (
        "recsync_platform_responses",
        "Platform responses by HTTP status code.",
        "status",
    ),
}
_PLAIN = {
    "platform_calls": ("recsync_platform_calls", "Requests sent to the platform."),
    "platform_wait_s": (
        "recsync_platform_wait_seconds",
        "Total seconds spent waiting for platform responses.",
    ),
    "realtime:events": (
        "recsync_realtime_events",
        "Realtime notification events received.",
    ),
}


class StatusCollector(Collector):
    """Exports records, counters, breakers, budget and realtime state per org."""

    def __init__(self, reader: StatusReader) -> None:
        self.reader = reader

    def collect(self) -> Iterator[Metric]:
        """Read every org's state from Redis and yield the metric families."""
        gauges = _gauge_families()
        prefixed = {
            prefix: CounterMetricFamily(name, doc, labels=["org", label])
            for prefix, (name, doc, label) in _PREFIXED.items()
        }
        plain = {
            field: CounterMetricFamily(name, doc, labels=["org"])
            for field, (name, doc) in _PLAIN.items()
        }
        other = CounterMetricFamily(
            "recsync_store_counter",
            "Other store counters by field name.",
            labels=["org", "name"],
        )
        now = self.reader.clock()

        for org_id in self.reader.org_ids():
            overview = self.reader.org_overview(org_id)
            for state, count in overview["counts"].items():
                gauges["records"].add_metric([org_id, state], count)
            gauges["due"].add_metric([org_id], overview["due_count"])
            gauges["lag"].add_metric([org_id], overview["queue_lag_s"])
            for endpoint, state in overview["breakers"].items():
                gauges["breaker"].add_metric([org_id, endpoint, state], 1)
            gauges["paused"].add_metric([org_id], 1 if overview["paused"] else 0)
            gauges["throttled"].add_metric(
                [org_id], 1 if overview.get("throttled") else 0
            )

            status = overview["realtime"]
            gauges["realtime"].add_metric([org_id, status["state"]], 1)
            if status["seen_at"] is not None:
                age_s = max(0.0, now - status["seen_at"])
                gauges["realtime_age"].add_metric([org_id], age_s)

            for field, value in self.reader.counters(org_id).items():
                _add_counter(org_id, field, value, prefixed, plain, other)

        yield from gauges.values()
        yield from prefixed.values()
        yield from plain.values()
        yield other


def _gauge_families() -> dict[str, GaugeMetricFamily]:
    return {
        "records": GaugeMetricFamily(
            "recsync_records", "Records by org and state.", labels=["org", "state"]
        ),
        "due": GaugeMetricFamily(
            "recsync_due_records", "Unsettled records owed a fetch.", labels=["org"]
        ),
        "lag": GaugeMetricFamily(
            "recsync_queue_lag_seconds",
            "Age of the longest-owed unsettled record (0 when none is owed).",
            labels=["org"],
        ),
        "breaker": GaugeMetricFamily(
            "recsync_breaker_state",
            "Circuit breaker state: 1 for the current state of each breaker.",
            labels=["org", "endpoint", "state"],
        ),
        "paused": GaugeMetricFamily(
            "recsync_budget_paused",
            "1 while the org's API budget is paused by a Retry-After, else 0.",
            labels=["org"],
        ),
        "throttled": GaugeMetricFamily(
            "recsync_budget_throttled",
            "1 while the platform asks the org to wait past max_retry_after_s, else 0.",
            labels=["org"],
        ),
        "realtime": GaugeMetricFamily(
            "recsync_realtime_state",
            "Realtime connection state: 1 for the current state of the org.",
            labels=["org", "state"],
        ),
        "realtime_age": GaugeMetricFamily(
            "recsync_realtime_seen_age_seconds",
            "Seconds since the org's realtime subscriber last reported.",
            labels=["org"],
        ),
    }


def _add_counter(
    org_id: str,
    field: str,
    value: float,
    prefixed: dict[str, CounterMetricFamily],
    plain: dict[str, CounterMetricFamily],
    other: CounterMetricFamily,
) -> None:
    if field in plain:
        plain[field].add_metric([org_id], value)
        return
    for prefix, family in prefixed.items():
        if field.startswith(prefix):
            family.add_metric([org_id, field.removeprefix(prefix)], value)
            return
    other.add_metric([org_id, field], value)


def render_metrics(reader: StatusReader) -> bytes:
    """Return the Prometheus text exposition of the current Redis state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(reader))
    return generate_latest(registry)
