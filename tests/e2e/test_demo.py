"""``recsync demo`` end to end, as a user runs it: a subprocess printing JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def run_demo(*args: str) -> tuple[int, dict]:
    completed = subprocess.run(
        [sys.executable, "-m", "recsync.cli", "demo", "--json", *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert completed.stdout, completed.stderr[-2000:]
    return completed.returncode, json.loads(completed.stdout.strip().splitlines()[-1])


def test_demo_default_settles_every_record():
    code, summary = run_demo()
    assert code == 0
    assert summary["records"] == 900
    assert summary["ready"] == summary["records"]
    assert summary["failed"] == 0
    assert summary["realtime"] is True
    assert summary["rate_limited_429"] == 0
    assert {org["org_id"] for org in summary["orgs"]} == {
        "org-primary",
        "org-eu",
        "org-apac",
    }


def test_demo_realtime_fetches_on_events():
    code, summary = run_demo()
    orgs = {org["org_id"]: org for org in summary["orgs"]}
    assert code == 0
    # The primary has each recording when the host announces it: one attempt each.
    assert orgs["org-primary"]["retried"] == 0
    # Satellites wait for the conversation event instead of polling. Only records
    # announced before the socket was live may need a second attempt.
    for org_id in ("org-eu", "org-apac"):
        assert orgs[org_id]["retried"] <= orgs[org_id]["records"] * 0.05, org_id


def test_demo_flaky_socket_loses_nothing():
    code, summary = run_demo("--scenario", "flaky-socket")
    assert code == 0
    assert summary["ready"] == summary["records"]


def test_demo_without_realtime_settles_by_polling():
    code, summary = run_demo("--no-realtime")
    assert code == 0
    assert summary["ready"] == summary["records"]
    assert summary["realtime"] is False


def test_demo_bad_scenario_exits_2():
    completed = subprocess.run(
        [sys.executable, "-m", "recsync.cli", "demo", "--scenario", "no-such-thing"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "no-such-thing" in completed.stderr


def test_demo_storm_keeps_to_the_budget():
    code, summary = run_demo("--scenario", "storm")
    eu = next(org for org in summary["orgs"] if org["org_id"] == "org-eu")
    assert code == 0
    assert summary["ready"] == summary["records"]
    # The scenario injects one 429; recsync itself must never overspend a budget.
    assert eu["injected_429"] == 1
    assert summary["rate_limited_429_by_recsync"] == 0
