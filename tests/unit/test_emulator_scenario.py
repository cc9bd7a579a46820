"""Scenario loading, checking and seeded generation."""

from __future__ import annotations

import random
import statistics
from typing import Any

import pytest

from recsync.emulator import (
    Propagation,
    ScenarioError,
    default_scenario,
    load_scenario,
    scenario_by_name,
    shipped_scenario_names,
)
from recsync.emulator.generation import generate_plan


def minimal(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 3,
        "conversations": 20,
        "orgs": [
            {"id": "org-a", "role": "primary", "client_id": "a", "client_secret": "s"},
            {
                "id": "org-b",
                "role": "satellite",
                "client_id": "b",
                "client_secret": "s",
                "propagation": {"distribution": "uniform", "low_s": 2, "high_s": 20},
            },
        ],
    }
    raw.update(overrides)
    return raw


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(raw)
    return caught.value.problems


def test_shipped_names_listed() -> None:
    assert shipped_scenario_names() == ["default", "flaky-socket", "storm"]


@pytest.mark.parametrize("name", ["default", "storm", "flaky-socket"])
def test_shipped_scenario_loads(name: str) -> None:
    scenario = scenario_by_name(name)
    assert scenario.name == name
    assert scenario.primary.role == "primary"


def test_default_scenario_shape() -> None:
    scenario = default_scenario()
    plan = generate_plan(scenario)
    assert [org.region for org in scenario.orgs] == [
        "us-east-1",
        "eu-west-1",
        "ap-southeast-2",
    ]
    assert 270 <= len(plan.recordings) <= 330


def test_default_scenario_overrides() -> None:
    scenario = default_scenario(conversations=5, seed=99)
    assert scenario.conversations == 5
    assert scenario.seed == 99


def test_default_scenario_rejects_negative_count() -> None:
    with pytest.raises(ScenarioError):
        default_scenario(conversations=-1)


def test_generation_deterministic() -> None:
    scenario = load_scenario(minimal())
    assert generate_plan(scenario) == generate_plan(scenario)


def test_generation_depends_on_seed() -> None:
    first = generate_plan(load_scenario(minimal(seed=1)))
    second = generate_plan(load_scenario(minimal(seed=2)))
    assert first.recordings[0].id != second.recordings[0].id


def test_generation_same_ids_for_every_org() -> None:
    plan = generate_plan(load_scenario(minimal()))
    assert set(plan.visible_at_s["org-a"]) == set(plan.visible_at_s["org-b"])


def test_primary_visible_when_created() -> None:
    plan = generate_plan(load_scenario(minimal()))
    for recording in plan.recordings:
        assert plan.visible_at_s["org-a"][recording.id] == recording.created_at_s


def test_satellite_delay_within_uniform_bounds() -> None:
    plan = generate_plan(load_scenario(minimal()))
    for recording in plan.recordings:
        delay_s = plan.visible_at_s["org-b"][recording.id] - recording.created_at_s
        assert 2 <= delay_s <= 20


def test_adding_org_keeps_other_delays() -> None:
    raw = minimal()
    before = generate_plan(load_scenario(raw)).visible_at_s["org-b"]
    raw["orgs"].append({"id": "org-c", "client_id": "c", "client_secret": "s"})
    after = generate_plan(load_scenario(raw)).visible_at_s["org-b"]
    assert before == after


def test_screen_ratio_zero_gives_calls_only() -> None:
    plan = generate_plan(load_scenario(minimal(screen_ratio=0)))
    assert {recording.media for recording in plan.recordings} == {"audio"}


def test_screen_recording_after_call() -> None:
    plan = generate_plan(load_scenario(minimal(screen_ratio=1)))
    calls = {r.conversation_id: r for r in plan.recordings if r.media == "audio"}
    for screen in (r for r in plan.recordings if r.media == "screen"):
        assert screen.created_at_s >= calls[screen.conversation_id].created_at_s
        assert screen.media_subtype == "Screen"


def test_creation_times_within_duration() -> None:
    plan = generate_plan(load_scenario(minimal(duration_s=10)))
    for conversation in plan.conversations:
        assert 0 <= conversation.created_at_s < 10


def test_lognormal_quantiles() -> None:
    propagation = Propagation(distribution="lognormal", median_s=8, p99_s=45)
    rng = random.Random(5)
    samples = sorted(propagation.sample(rng) for _ in range(40_000))
    median = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99)]
    assert median == pytest.approx(8, rel=0.05)
    assert p99 == pytest.approx(45, rel=0.1)


def test_fixed_propagation_constant() -> None:
    propagation = Propagation(distribution="fixed", value_s=4)
    assert propagation.sample(random.Random(1)) == 4


def test_load_from_yaml_file(tmp_path: Any) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "orgs:\n  - {id: org-x, role: primary, client_id: x, client_secret: y}\n"
    )
    scenario = load_scenario(path)
    assert scenario.name == "mine"
    assert scenario.orgs[0].id == "org-x"


def test_load_by_shipped_name() -> None:
    assert load_scenario("storm").name == "storm"


def test_load_missing_file_names_choices() -> None:
    with pytest.raises(ScenarioError, match="default"):
        load_scenario("/nonexistent/scenario.yaml")


def test_invalid_yaml_rejected(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("orgs: [\n")
    with pytest.raises(ScenarioError, match="invalid YAML"):
        load_scenario(path)


def test_missing_orgs_rejected() -> None:
    problems = problems_of({"seed": 1})
    assert any(problem.startswith("orgs:") for problem in problems)


def test_two_primaries_rejected() -> None:
    raw = minimal()
    raw["orgs"][1]["role"] = "primary"
    assert any("exactly one" in problem for problem in problems_of(raw))


def test_unknown_region_named() -> None:
    raw = minimal()
    raw["orgs"][1]["region"] = "us-east-9"
    problems = problems_of(raw)
    assert any(
        problem.startswith("orgs[1].region: 'us-east-9'") and "eu-west-1" in problem
        for problem in problems
    )


def test_unknown_key_named() -> None:
    problems = problems_of(minimal(conversation=5))
    assert any(
        problem.startswith("conversation: 5 is not a known field")
        for problem in problems
    )


def test_bad_org_slug_rejected() -> None:
    raw = minimal()
    raw["orgs"][0]["id"] = "Org A"
    assert any(problem.startswith("orgs[0].id") for problem in problems_of(raw))


def test_duplicate_client_rejected() -> None:
    raw = minimal()
    raw["orgs"][1]["client_id"] = "a"
    assert any("orgs[1].client_id" in problem for problem in problems_of(raw))


def test_lognormal_p99_below_median_rejected() -> None:
    raw = minimal()
    raw["orgs"][1]["propagation"] = {
        "distribution": "lognormal",
        "median_s": 10,
        "p99_s": 5,
    }
    assert any("p99_s" in problem for problem in problems_of(raw))


def test_token_lifetime_out_of_range() -> None:
    raw = minimal()
    raw["orgs"][0]["token_lifetime_s"] = 10
    assert any("token_lifetime_s" in problem for problem in problems_of(raw))


def test_fault_unknown_org_rejected() -> None:
    raw = minimal(faults=[{"org": "org-z", "kind": "drop_events", "ratio": 0.1}])
    assert any(
        problem.startswith("faults[0].org: 'org-z'") for problem in problems_of(raw)
    )


def test_fault_unknown_kind_rejected() -> None:
    raw = minimal(faults=[{"org": "org-b", "kind": "meteor"}])
    assert any("faults[0].kind" in problem for problem in problems_of(raw))


def test_fault_ratio_out_of_range() -> None:
    raw = minimal(faults=[{"org": "org-b", "kind": "drop_events", "ratio": 1.5}])
    assert any("faults[0].ratio" in problem for problem in problems_of(raw))


def test_one_shot_fault_needs_time() -> None:
    raw = minimal(faults=[{"org": "org-b", "kind": "socket_closing"}])
    assert any("faults[0].at_s" in problem for problem in problems_of(raw))


def test_fault_window_must_be_ordered() -> None:
    raw = minimal(
        faults=[{"org": "org-b", "kind": "silent_socket", "start_s": 9, "end_s": 3}]
    )
    assert any("faults[0].end_s" in problem for problem in problems_of(raw))


def test_server_error_status_checked() -> None:
    raw = minimal(faults=[{"org": "org-b", "kind": "server_error", "status": 418}])
    assert any("faults[0].status" in problem for problem in problems_of(raw))


def test_every_problem_reported_at_once() -> None:
    raw = minimal(screen_ratio=3, users=0)
    assert len(problems_of(raw)) == 2


def test_error_message_lists_problems() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(minimal(duration_s="long"))
    assert "duration_s: 'long' is not a number" in str(caught.value)


def test_storm_rate_limit_hits_once() -> None:
    fault = next(f for f in scenario_by_name("storm").faults if f.kind == "rate_limit")
    assert fault.retry_after_s == 58
    assert fault.count == 1


def test_fault_count_must_be_positive() -> None:
    raw = minimal(faults=[{"org": "org-b", "kind": "slow", "count": 0}])
    assert any("faults[0].count" in problem for problem in problems_of(raw))
