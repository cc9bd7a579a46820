"""Hostile platform responses during a real sync: no crash, no record lost."""

from __future__ import annotations

import yaml

from recsync.demo import Demo
from recsync.emulator import scenario_by_name

BODIES = (
    "html",
    "not_json",
    "wrong_types",
    "missing_fields",
    "oversized",
    "unknown_enum",
)


def write_scenario(tmp_path, *, faults):
    base = scenario_by_name("default")
    orgs = [
        {
            "id": org.id,
            "name": org.name,
            "region": org.region,
            "role": str(org.role),
            "client_id": org.client_id,
            "client_secret": org.client_secret,
            "propagation": {"distribution": "uniform", "low_s": 0, "high_s": 6}
            if str(org.role) == "satellite"
            else {"distribution": "fixed", "value_s": 0},
        }
        for org in base.orgs
    ]
    path = tmp_path / "hostile.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "seed": 11,
                "duration_s": 20,
                "conversations": 40,
                "screen_ratio": 0.5,
                "users": 4,
                "orgs": orgs,
                "faults": faults,
            }
        )
    )
    return str(path)


def test_invalid_bodies_lose_nothing(tmp_path):
    faults = [
        {
            "org": "org-eu",
            "kind": "invalid_body",
            "body": body,
            "ratio": 0.3,
            "end_s": 15,
        }
        for body in BODIES
    ]
    summary = Demo(
        scenario=write_scenario(tmp_path, faults=faults),
        time_scale=0.1,
        realtime=False,
        timeout_s=150,
    ).run()
    eu = next(org for org in summary.orgs if org.org_id == "org-eu")
    assert summary.records > 0
    assert summary.ready == summary.records
    assert summary.failed == 0
    assert eu.fetch_errors > 0


def test_server_errors_and_slow_answers_lose_nothing(tmp_path):
    faults = [
        {
            "org": "org-apac",
            "kind": "server_error",
            "status": 503,
            "ratio": 0.5,
            "end_s": 10,
        },
        {
            "org": "org-apac",
            "kind": "server_error",
            "status": 500,
            "ratio": 0.2,
            "end_s": 10,
        },
        {"org": "org-eu", "kind": "slow", "delay_ms": 8000, "ratio": 0.2, "end_s": 10},
    ]
    summary = Demo(
        scenario=write_scenario(tmp_path, faults=faults),
        time_scale=0.1,
        realtime=True,
        timeout_s=150,
    ).run()
    apac = next(org for org in summary.orgs if org.org_id == "org-apac")
    assert summary.ready == summary.records
    assert summary.failed == 0
    assert apac.fetch_errors > 0
