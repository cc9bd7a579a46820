"""World logic of the emulator driven by a fake clock."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from recsync.emulator import FakeClock, World, load_scenario
from recsync.emulator.auth import TokenRejected, parse_basic
from recsync.emulator.batch import BatchRequestInvalid, parse_batch_body
from recsync.emulator.channels import (
    CHANNEL_LIFETIME_S,
    ChannelRegistry,
    TopicLimitExceeded,
)
from recsync.emulator.faults import FaultBook, corrupt_body
from recsync.emulator.guard import RequestContext
from recsync.emulator.notifications import NotificationHub
from recsync.emulator.payloads import Timestamps, recording_metadata
from recsync.emulator.ratelimit import RateLimiter
from recsync.emulator.routes_recordings import WaitMode, metadata_single
from recsync.emulator.scenario import FaultSpec
from recsync.emulator.scheduler import visibility_schedule

SATELLITE_DELAY_S = 20.0


def scenario_mapping(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "seed": 5,
        "conversations": 30,
        "duration_s": 60,
        "screen_ratio": 0.5,
        "users": 4,
        "orgs": [
            {"id": "org-a", "role": "primary", "client_id": "a", "client_secret": "sa"},
            {
                "id": "org-b",
                "role": "satellite",
                "region": "eu-west-1",
                "client_id": "b",
                "client_secret": "sb",
                "token_lifetime_s": 300,
                "propagation": {"distribution": "fixed", "value_s": SATELLITE_DELAY_S},
            },
        ],
    }
    raw.update(overrides)
    return raw


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(load_scenario(scenario_mapping()), clock=clock)


def first_recording(world: World) -> Any:
    return min(world.plan.recordings, key=lambda r: r.created_at_s)


def test_lookup_unknown_before_creation(world: World) -> None:
    recording = first_recording(world)
    found = world.lookup_recording("org-b", recording.conversation_id, recording.id)
    assert not found.known


def test_lookup_pending_after_creation(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s + 1)
    found = world.lookup_recording("org-b", recording.conversation_id, recording.id)
    assert found.known
    assert found.visible == ()
    assert found.next_visible_at_s == recording.created_at_s + SATELLITE_DELAY_S


def test_lookup_visible_after_delay(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s + SATELLITE_DELAY_S)
    found = world.lookup_recording("org-b", recording.conversation_id, recording.id)
    assert found.visible == (recording,)


def test_primary_sees_recording_at_creation(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s)
    found = world.lookup_conversation("org-a", recording.conversation_id)
    assert recording in found.visible


def test_lookup_wrong_conversation_unknown(world: World, clock: FakeClock) -> None:
    clock.advance(1000)
    first, second = world.plan.conversations[:2]
    recording = world.recordings_of(first.id)[0]
    assert not world.lookup_recording("org-a", second.id, recording.id).known


def test_timeline_covers_every_org(world: World) -> None:
    timeline = world.timeline()
    assert len(timeline) == 2 * len(world.plan.recordings)
    assert set(timeline[0]) == {
        "org",
        "conversation_id",
        "recording_id",
        "user_id",
        "media",
        "created_at_s",
        "visible_at_s",
    }


def test_visible_at_adds_delay(world: World) -> None:
    recording = first_recording(world)
    expected = recording.created_at_s + SATELLITE_DELAY_S
    assert world.visible_at("org-b", recording.id) == pytest.approx(expected)


def test_token_issued_for_valid_credentials(world: World) -> None:
    issued = world.tokens.issue("b", "sb")
    assert issued is not None
    assert world.tokens.check(f"Bearer {issued[0].value}").org_id == "org-b"


def test_token_refused_for_wrong_secret(world: World) -> None:
    assert world.tokens.issue("b", "wrong") is None


def test_unknown_token_bad_credentials(world: World) -> None:
    with pytest.raises(TokenRejected) as caught:
        world.tokens.check("Bearer nope")
    assert caught.value.code == "bad.credentials"


def test_token_expires(world: World, clock: FakeClock) -> None:
    issued = world.tokens.issue("b", "sb")
    assert issued is not None
    clock.advance(300)
    with pytest.raises(TokenRejected) as caught:
        world.tokens.check(f"Bearer {issued[0].value}")
    assert caught.value.code == "credentials.expired"


def test_parse_basic_header() -> None:
    assert parse_basic("Basic YTpzYQ==") == ("a", "sa")
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Bearer x") is None


def test_rate_limit_window(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    outcomes = [limiter.take("a", limit=3).allowed for _ in range(4)]
    assert outcomes == [True, True, True, False]


def test_rate_limit_reset_seconds(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    clock.advance(45.5)
    assert limiter.take("a", limit=3).reset_s == 15


def test_rate_limit_new_window_resets(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    for _ in range(4):
        limiter.take("a", limit=3)
    clock.advance(60)
    assert limiter.take("a", limit=3).allowed


def test_rate_limit_counted_per_client(clock: FakeClock) -> None:
    limiter = RateLimiter(clock)
    limiter.take("a", limit=1)
    assert limiter.take("b", limit=1).allowed


def test_fault_window_active() -> None:
    fault = FaultSpec(org="org-b", kind="silent_socket", start_s=5, end_s=8)
    book = FaultBook((fault,), seed=1)
    assert not book.is_silent("org-b", 4.9)
    assert book.is_silent("org-b", 5)
    assert not book.is_silent("org-b", 8)


def test_fault_ratio_zero_never_hits() -> None:
    fault = FaultSpec(org="org-b", kind="drop_events", ratio=0.0)
    book = FaultBook((fault,), seed=1)
    assert not any(book.for_event("org-b", 1).drop for _ in range(100))


def test_fault_ratio_one_always_hits() -> None:
    fault = FaultSpec(org="org-b", kind="duplicate_events", ratio=1.0)
    book = FaultBook((fault,), seed=1)
    assert all(book.for_event("org-b", 1).duplicate for _ in range(100))


def test_fault_limited_to_its_org() -> None:
    fault = FaultSpec(org="org-b", kind="timeout_ratio", ratio=1.0)
    book = FaultBook((fault,), seed=1)
    assert not book.for_request("org-a", 1).time_out


def test_one_shot_fires_once() -> None:
    fault = FaultSpec(org="org-b", kind="channel_expiry", at_s=10)
    book = FaultBook((fault,), seed=1)
    assert book.due_one_shots(9) == []
    assert book.due_one_shots(10) == [fault]
    assert book.due_one_shots(11) == []


def test_rate_limit_fault_forces_retry_after() -> None:
    fault = FaultSpec(
        org="org-b", kind="rate_limit", retry_after_s=58, start_s=0, end_s=5
    )
    book = FaultBook((fault,), seed=1)
    assert book.for_request("org-b", 1).rate_limit_retry_after_s == 58
    assert book.for_request("org-b", 6).rate_limit_retry_after_s is None


@pytest.mark.parametrize(
    ("kind", "media_type"),
    [
        ("html", "text/html"),
        ("not_json", "application/json"),
        ("oversized", "application/json"),
    ],
)
def test_corrupt_body_media_type(kind: str, media_type: str) -> None:
    assert corrupt_body({"id": "x"}, kind)[1] == media_type


def test_corrupt_not_json_unparsable() -> None:
    body, _ = corrupt_body([{"id": "x", "conversationId": "y"}], "not_json")
    with pytest.raises(ValueError):
        json.loads(body)


def test_corrupt_wrong_types() -> None:
    body, _ = corrupt_body({"id": "x", "annotations": []}, "wrong_types")
    assert json.loads(body) == {"id": 12345, "annotations": "not-a-list"}


def test_corrupt_missing_fields() -> None:
    body, _ = corrupt_body([{"id": "x", "name": "n"}], "missing_fields")
    assert json.loads(body) == [{"name": "n"}]


def test_corrupt_unknown_enum() -> None:
    body, _ = corrupt_body({"fileState": "AVAILABLE"}, "unknown_enum")
    assert json.loads(body)["fileState"] == "QUARANTINED"


def test_batch_body_over_100_rejected() -> None:
    items = [{"conversationId": f"c{i}"} for i in range(101)]
    with pytest.raises(BatchRequestInvalid, match="maximum is 100"):
        parse_batch_body({"batchDownloadRequestList": items})


def test_batch_body_needs_conversation() -> None:
    with pytest.raises(BatchRequestInvalid, match=r"\[0\]\.conversationId"):
        parse_batch_body({"batchDownloadRequestList": [{"recordingId": "r"}]})


def test_batch_job_lifecycle(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s + 0.5)
    items = parse_batch_body(
        {"batchDownloadRequestList": [{"conversationId": recording.conversation_id}]}
    )
    job = world.batch.submit(
        org_id="org-b", client_id="b", items=items, now_s=world.now()
    )
    resolve = world.batch_rows("org-b", "http://h")
    early = world.batch.status_document(job, now_s=world.now(), resolve=resolve)
    assert early["status"] == "InProgress"
    clock.advance(5)
    done = world.batch.status_document(job, now_s=world.now(), resolve=resolve)
    assert done["status"] == "Completed"
    assert done["resultCount"] == done["expectedResultCount"]
    # The satellite sees nothing yet 5.5 s after creation: every result has an error.
    assert done["errorCount"] == done["resultCount"]


def test_batch_job_other_client_hidden(world: World) -> None:
    job = world.batch.submit(org_id="org-b", client_id="b", items=(), now_s=0)
    assert world.batch.get(job.id, client_id="a") is None
    assert world.batch.get(job.id, client_id="b") is job


def registry(world: World) -> ChannelRegistry:
    return ChannelRegistry(user_ids=world.user_ids, queue_ids=world.queue_ids)


def test_channel_21st_evicts_oldest(world: World) -> None:
    channels = registry(world)
    created = [
        channels.create(org_id="org-b", client_id="b", now_s=float(i))
        for i in range(21)
    ]
    assert created[-1][1] == [created[0][0]]
    assert channels.get(created[0][0].id) is None
    assert len(channels.of_client("b")) == 20


def test_topic_for_known_user_permitted(world: World) -> None:
    channels = registry(world)
    channel, _ = channels.create(org_id="org-b", client_id="b", now_s=0)
    user_id = world.plan.users[0].id
    entities = channels.subscribe(
        channel, [f"v2.users.{user_id}.conversations"], replace=False, now_s=0
    )
    assert entities[0]["state"] == "Permitted"


def test_topic_for_unknown_user_rejected(world: World) -> None:
    channels = registry(world)
    channel, _ = channels.create(org_id="org-b", client_id="b", now_s=0)
    topic = "v2.users.00000000-0000-4000-8000-000000000000.conversations"
    entity = channels.subscribe(channel, [topic], replace=False, now_s=0)[0]
    assert entity["state"] == "Rejected"
    assert entity["missingPermissions"] == ["conversation:communication:view"]
    assert channel.topics == {}


def test_topic_limit_enforced(world: World) -> None:
    channels = registry(world)
    channel, _ = channels.create(org_id="org-b", client_id="b", now_s=0)
    user_id = world.plan.users[0].id
    topics = [
        f"v2.users.{user_id}.conversations.{world.plan.conversations[0].id[:-4]}"
        f"{i:04d}.recordings"
        for i in range(1001)
    ]
    with pytest.raises(TopicLimitExceeded):
        channels.subscribe(channel, topics, replace=False, now_s=0)


def test_subscribe_extends_expiry(world: World) -> None:
    channels = registry(world)
    channel, _ = channels.create(org_id="org-b", client_id="b", now_s=0)
    channels.subscribe(channel, [], replace=False, now_s=100)
    assert channel.expires_at_s == 100 + CHANNEL_LIFETIME_S


def test_put_replaces_topics(world: World) -> None:
    channels = registry(world)
    channel, _ = channels.create(org_id="org-b", client_id="b", now_s=0)
    first, second = (f"v2.users.{u.id}.conversations" for u in world.plan.users[:2])
    channels.subscribe(channel, [first], replace=False, now_s=0)
    channels.subscribe(channel, [second], replace=True, now_s=0)
    assert list(channel.topics) == [second]


def test_timestamps_iso_with_millis() -> None:
    times = Timestamps("2026-12-01T09:00:00.000Z")
    assert times.iso(61.2345) == "2026-12-01T09:01:01.234Z"


def test_metadata_fields(world: World) -> None:
    recording = first_recording(world)
    conversation = world.conversation(recording.conversation_id)
    first = recording_metadata(
        recording, conversation, region="eu-west-1", times=world.times
    )
    second = recording_metadata(
        recording, conversation, region="eu-west-1", times=world.times
    )
    assert first["fileState"] == "AVAILABLE"
    assert first["annotations"][0]["reason"] == "Hold"
    # The platform gives hold annotations a fresh id on every request.
    assert first["annotations"][0]["id"] != second["annotations"][0]["id"]


def test_schedule_sorted_and_complete(world: World) -> None:
    schedule = visibility_schedule(world)
    times = [due.at_s for due in schedule]
    assert times == sorted(times)
    expected = 2 * (len(world.plan.recordings) + len(world.plan.conversations))
    assert len(schedule) == expected


def context(world: World, org_id: str) -> RequestContext:
    org = world.orgs[org_id]
    issued = world.tokens.issue(org.client_id, org.client_secret)
    assert issued is not None
    return RequestContext(
        world=world, org=org, token=issued[0], context_id="ctx", base_url="http://h"
    )


def test_blocking_hold_ends_in_408(clock: FakeClock) -> None:
    raw = scenario_mapping()
    raw["orgs"][1]["propagation"] = {"distribution": "fixed", "value_s": 1000}
    world = World(load_scenario(raw), clock=clock)
    recording = first_recording(world)
    clock.advance(recording.created_at_s)
    started_s = clock.now()
    reply = asyncio.run(
        metadata_single(
            context(world, "org-b"),
            recording.conversation_id,
            recording.id,
            WaitMode(30.0, 408),
        )
    )
    assert reply.status == 408
    assert reply.document["code"] == "client.timeout"
    assert clock.now() - started_s == pytest.approx(30, abs=0.01)


def test_blocking_hold_returns_when_visible(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s)
    reply = asyncio.run(
        metadata_single(
            context(world, "org-b"),
            recording.conversation_id,
            recording.id,
            WaitMode(30.0, 408),
        )
    )
    assert reply.status == 200
    assert reply.document["region"] == "eu-west-1"
    held = world.stats.snapshot(channels={}, sockets={})["org-b"]["held_s"]
    assert held == pytest.approx(SATELLITE_DELAY_S, abs=0.01)


def test_non_blocking_pending_202(world: World, clock: FakeClock) -> None:
    recording = first_recording(world)
    clock.advance(recording.created_at_s)
    reply = asyncio.run(
        metadata_single(
            context(world, "org-b"),
            recording.conversation_id,
            recording.id,
            WaitMode(0.0, 202),
        )
    )
    assert reply.status == 202
    assert reply.document is None


def test_channel_expires_after_lifetime(world: World, clock: FakeClock) -> None:
    hub = NotificationHub(world)
    channel = hub.create_channel(org_id="org-b", client_id="b")
    clock.advance(CHANNEL_LIFETIME_S - 1)
    hub.expire_due()
    assert hub.registry.get(channel.id) is not None
    clock.advance(1)
    hub.expire_due()
    assert hub.registry.get(channel.id) is None
    assert world.stats_report()["org-b"]["channels_expired"] == 1


def test_stats_report_gauges(world: World) -> None:
    hub = NotificationHub(world)
    hub.create_channel(org_id="org-b", client_id="b")
    report = world.stats_report()
    assert report["org-b"]["channels"] == 1
    assert report["org-b"]["sockets"] == 0


def test_fault_count_caps_hits() -> None:
    fault = FaultSpec(org="org-b", kind="rate_limit", retry_after_s=58, count=1)
    book = FaultBook((fault,), seed=1)
    assert book.for_request("org-b", 1).rate_limit_retry_after_s == 58
    assert book.for_request("org-b", 2).rate_limit_retry_after_s is None


def test_ending_fault_skips_later_rolls() -> None:
    faults = (
        FaultSpec(org="org-b", kind="server_error", status=503),
        FaultSpec(org="org-b", kind="slow", delay_ms=500, count=1),
    )
    book = FaultBook(faults, seed=1)
    outcome = book.for_request("org-b", 1)
    assert outcome.server_error is faults[0]
    assert outcome.delay_ms == 0.0
