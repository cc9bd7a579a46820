"""The emulator's notification service over loopback HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from recsync.emulator import EmulatorServer, load_scenario

TIME_SCALE = 0.01
SATELLITE_DELAY_S = 5.0
# Wall seconds a test waits for a message that should come.
RECEIVE_TIMEOUT_S = 5.0


def scenario() -> dict[str, Any]:
    def org(org_id: str, role: str, delay_s: float) -> dict[str, Any]:
        return {
            "id": org_id,
            "role": role,
            "client_id": f"{org_id}-client",
            "client_secret": f"{org_id}-secret",
            "propagation": {"distribution": "fixed", "value_s": delay_s},
        }

    return {
        "seed": 8,
        # One conversation every 1.5 platform seconds for 9 wall seconds.
        "conversations": 600,
        "duration_s": 900,
        "screen_ratio": 0.5,
        "users": 3,
        "orgs": [
            org("org-primary", "primary", 0),
            org("org-sat", "satellite", SATELLITE_DELAY_S),
        ],
    }


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(load_scenario(scenario()), time_scale=TIME_SCALE) as running:
        yield running


def client(server: EmulatorServer, org_id: str = "org-sat") -> httpx.Client:
    org = server.scenario.org(org_id)
    http = httpx.Client(base_url=server.base_url, timeout=10)
    answer = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(org.client_id, org.client_secret),
    )
    http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
    return http


def new_channel(http: httpx.Client) -> dict[str, Any]:
    answer = http.post("/api/v2/notifications/channels")
    assert answer.status_code == 200
    channel: dict[str, Any] = answer.json()
    return channel


def subscribe(http: httpx.Client, channel_id: str, topics: list[str]) -> httpx.Response:
    return http.post(
        f"/api/v2/notifications/channels/{channel_id}/subscriptions",
        json=[{"id": topic} for topic in topics],
    )


def upcoming_topics(
    server: EmulatorServer, count: int, *, recordings_only: bool = False
) -> list[str]:
    """Return topics of the next conversations to become visible in org-sat."""
    now_s = server.world.now()
    upcoming = sorted(
        (c for c in server.world.plan.conversations if c.created_at_s > now_s + 0.5),
        key=lambda c: c.created_at_s,
    )[:count]
    topics = (
        []
        if recordings_only
        else [f"v2.users.{u.id}.conversations" for u in server.world.plan.users]
    )
    for conversation in upcoming:
        prefix = f"v2.users.{conversation.user_id}.conversations.{conversation.id}"
        topics.append(f"{prefix}.recordings")
        topics.extend(
            f"{prefix}.recordings.{r.id}"
            for r in server.world.recordings_of(conversation.id)
        )
    return topics


async def receive(
    ws: ClientConnection, *, timeout_s: float = RECEIVE_TIMEOUT_S
) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return message


async def collect(
    ws: ClientConnection,
    *,
    wall_s: float,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Gather messages for ``wall_s`` seconds or until ``until`` holds."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + wall_s
    while time.monotonic() < deadline:
        try:
            messages.append(
                await receive(ws, timeout_s=max(0.01, deadline - time.monotonic()))
            )
        except TimeoutError:
            break
        if until is not None and until(messages):
            break
    return messages


def events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["topicName"] != "channel.metadata"]


def add_fault(server: EmulatorServer, fault: dict[str, Any]) -> None:
    answer = httpx.post(f"{server.base_url}/_emulator/faults", json=fault)
    assert answer.status_code == 201, answer.text


def head(http: httpx.Client, channel_id: str) -> int:
    return http.head(f"/api/v2/notifications/channels/{channel_id}").status_code


def test_channel_document(server: EmulatorServer) -> None:
    channel = new_channel(client(server))
    assert channel["connectUri"] == f"{server.ws_url}/channels/{channel['id']}"
    assert channel["expires"].endswith("Z")


def test_head_channel(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)
    assert head(http, channel["id"]) == 200
    assert head(http, "no-such-channel") == 404


def test_channel_of_other_org_hidden(server: EmulatorServer) -> None:
    channel = new_channel(client(server, "org-primary"))
    assert head(client(server, "org-sat"), channel["id"]) == 404


def test_subscriptions_lifecycle(server: EmulatorServer) -> None:
    http = client(server)
    channel_id = new_channel(http)["id"]
    users = [u.id for u in server.world.plan.users]
    path = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
    unknown = "v2.users.00000000-0000-4000-8000-000000000000.conversations"
    posted = subscribe(
        http, channel_id, [f"v2.users.{users[0]}.conversations", unknown]
    ).json()
    states = {e["id"]: e["state"] for e in posted["entities"]}
    assert states[unknown] == "Rejected"
    assert states[f"v2.users.{users[0]}.conversations"] == "Permitted"
    listed = http.get(path).json()["entities"]
    assert [e["id"] for e in listed] == [f"v2.users.{users[0]}.conversations"]
    http.put(path, json=[{"id": f"v2.users.{users[1]}.conversations"}])
    assert [e["id"] for e in http.get(path).json()["entities"]] == [
        f"v2.users.{users[1]}.conversations"
    ]
    assert http.delete(path).status_code == 204
    assert http.get(path).json()["entities"] == []


def test_rejected_topic_reason(server: EmulatorServer) -> None:
    http = client(server)
    channel_id = new_channel(http)["id"]
    entity = subscribe(http, channel_id, ["v2.analytics.everything"]).json()[
        "entities"
    ][0]
    assert entity["state"] == "Rejected"
    assert entity["missingPermissions"]
    assert "Missing permission" in entity["rejectionReason"]


def test_over_1000_topics_400(server: EmulatorServer) -> None:
    http = client(server)
    channel_id = new_channel(http)["id"]
    user_id = server.world.plan.users[0].id
    topics = [
        f"v2.users.{user_id}.conversations.00000000-0000-4000-8000-{i:012d}.recordings"
        for i in range(1001)
    ]
    answer = subscribe(http, channel_id, topics)
    assert answer.status_code == 400
    assert "1000" in answer.json()["message"]


def test_bad_subscription_body_400(server: EmulatorServer) -> None:
    http = client(server)
    channel_id = new_channel(http)["id"]
    answer = http.post(
        f"/api/v2/notifications/channels/{channel_id}/subscriptions", json={"id": "x"}
    )
    assert answer.status_code == 400


def test_unknown_channel_socket_rejected(server: EmulatorServer) -> None:
    async def scenario_run() -> int:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(f"{server.ws_url}/channels/nope"):
                pass
        return caught.value.response.status_code

    assert asyncio.run(scenario_run()) == 404


def test_heartbeat_arrives(server: EmulatorServer) -> None:
    channel = new_channel(client(server))

    async def run() -> dict[str, Any]:
        async with connect(channel["connectUri"]) as ws:
            return await receive(ws)

    message = asyncio.run(run())
    assert message == {
        "topicName": "channel.metadata",
        "eventBody": {"message": "WebSocket Heartbeat"},
    }


def test_ping_pong(server: EmulatorServer) -> None:
    channel = new_channel(client(server))

    async def run() -> dict[str, Any]:
        async with connect(channel["connectUri"]) as ws:
            await ws.send(json.dumps({"message": "ping"}))
            return await receive(ws)

    assert asyncio.run(run())["eventBody"] == {"message": "pong"}


def test_second_socket_closes_first(server: EmulatorServer) -> None:
    channel = new_channel(client(server))

    async def run() -> tuple[bool, dict[str, Any]]:
        # The second connection opens after the first, as the with-items run in order.
        async with (
            connect(channel["connectUri"]) as first,
            connect(channel["connectUri"]) as second,
        ):
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(first.recv(), RECEIVE_TIMEOUT_S)
            await second.send(json.dumps({"message": "ping"}))
            return first.close_code is not None, await receive(second)

    first_closed, answer = asyncio.run(run())
    assert first_closed
    assert answer["eventBody"] == {"message": "pong"}


def test_21st_channel_evicts_oldest(server: EmulatorServer) -> None:
    http = client(server)
    oldest = new_channel(http)

    async def run() -> list[dict[str, Any]]:
        async with connect(oldest["connectUri"]) as ws:
            for _ in range(20):
                new_channel(http)
            messages = []
            with pytest.raises(ConnectionClosed):
                while True:
                    messages.append(await receive(ws))
            return messages

    messages = asyncio.run(run())
    topics = [m["topicName"] for m in messages]
    assert f"v2.system.no_longer_subscribed.{oldest['id']}" in topics
    assert head(http, oldest["id"]) == 404
    assert server.stats()["org-sat"]["channels"] == 20


def test_events_on_visibility(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)
    topics = upcoming_topics(server, 3)
    subscribe(http, channel["id"], topics)
    wanted = {t for t in topics if ".recordings." in t}

    async def run() -> list[tuple[dict[str, Any], float]]:
        received: list[tuple[dict[str, Any], float]] = []
        async with connect(channel["connectUri"]) as ws:
            deadline = time.monotonic() + RECEIVE_TIMEOUT_S
            while (
                wanted - {m["topicName"] for m, _ in received}
                and time.monotonic() < deadline
            ):
                message = await receive(ws)
                received.append((message, server.world.now()))
        return received

    received = asyncio.run(run())
    by_topic = {m["topicName"]: (m, at_s) for m, at_s in received}
    assert wanted <= set(by_topic)
    for topic in wanted:
        message, at_s = by_topic[topic]
        recording_id = topic.rsplit(".", 1)[1]
        body = message["eventBody"]
        assert message["version"] == "2"
        assert message["metadata"]["CorrelationId"]
        assert body["id"] == recording_id
        assert body["fileState"] == "AVAILABLE"
        assert body["mediaUris"][0]["mediaUri"].startswith(server.base_url)
        assert "estimatedTranscodeTimeMs" in body
        assert at_s >= server.world.visible_at("org-sat", recording_id)
    conversation_events = [
        m for m, _ in received if m["topicName"].endswith(".conversations")
    ]
    assert conversation_events
    participants = conversation_events[0]["eventBody"]["participants"]
    assert any(p.get("userId") for p in participants)
    assert "recordingState" in conversation_events[0]["eventBody"]


def test_events_only_for_subscribed_topics(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)
    user_id = server.world.plan.users[0].id
    subscribe(http, channel["id"], [f"v2.users.{user_id}.conversations"])

    async def run() -> list[dict[str, Any]]:
        async with connect(channel["connectUri"]) as ws:
            return await collect(ws, wall_s=0.5, until=lambda ms: len(events(ms)) >= 2)

    topics = {m["topicName"] for m in events(asyncio.run(run()))}
    assert topics == {f"v2.users.{user_id}.conversations"}


def run_with_topics(
    server: EmulatorServer,
    *,
    wall_s: float,
    recordings_only: bool = True,
    until: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    http = client(server)
    channel = new_channel(http)
    subscribe(
        http,
        channel["id"],
        upcoming_topics(server, 40, recordings_only=recordings_only),
    )

    async def run() -> list[dict[str, Any]]:
        async with connect(channel["connectUri"]) as ws:
            return await collect(ws, wall_s=wall_s, until=until)

    return asyncio.run(run())


def test_drop_events_fault(server: EmulatorServer) -> None:
    add_fault(server, {"org": "org-sat", "kind": "drop_events", "ratio": 1.0})
    messages = run_with_topics(server, wall_s=0.5)
    assert events(messages) == []
    assert server.stats()["org-sat"]["events_dropped"] > 0


def test_duplicate_events_fault(server: EmulatorServer) -> None:
    add_fault(server, {"org": "org-sat", "kind": "duplicate_events", "ratio": 1.0})
    messages = run_with_topics(
        server, wall_s=2.0, until=lambda ms: len(events(ms)) >= 4
    )
    ids = [m["metadata"]["CorrelationId"] for m in events(messages)]
    assert len(ids) > len(set(ids))


def test_reorder_events_fault(server: EmulatorServer) -> None:
    add_fault(server, {"org": "org-sat", "kind": "reorder_events", "ratio": 1.0})
    messages = run_with_topics(
        server, wall_s=2.0, until=lambda ms: len(events(ms)) >= 4
    )
    topics = [m["topicName"] for m in events(messages)]
    # Without reordering a recording's ".recordings" event always precedes its
    # ".recordings.<id>" event; with every event reordered the pair swaps.
    assert topics[0].rsplit(".", 1)[1] != "recordings"
    assert server.stats()["org-sat"]["events_reordered"] > 0


def test_silent_socket_fault(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)
    subscribe(http, channel["id"], upcoming_topics(server, 40))
    now_s = server.world.now()
    add_fault(
        server,
        {
            "org": "org-sat",
            "kind": "silent_socket",
            "start_s": now_s,
            "end_s": now_s + 100,
        },
    )

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        async with connect(channel["connectUri"]) as ws:
            await ws.send(json.dumps({"message": "ping"}))
            quiet = await collect(ws, wall_s=0.5)
            while server.world.now() < now_s + 100:
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"message": "ping"}))
            after = await collect(
                ws,
                wall_s=RECEIVE_TIMEOUT_S,
                until=lambda ms: ms[-1]["eventBody"] == {"message": "pong"},
            )
            return quiet, after[-1]

    quiet, last = asyncio.run(run())
    assert quiet == []
    assert last["eventBody"] == {"message": "pong"}


def test_socket_closing_fault(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)

    async def run() -> tuple[list[str], int | None, dict[str, Any]]:
        async with connect(channel["connectUri"]) as ws:
            add_fault(server, {"org": "org-sat", "kind": "socket_closing"})
            topics = []
            with pytest.raises(ConnectionClosed):
                while True:
                    topics.append((await receive(ws))["topicName"])
            code = ws.close_code
        async with connect(channel["connectUri"]) as again:
            await again.send(json.dumps({"message": "ping"}))
            return topics, code, await receive(again)

    topics, code, pong = asyncio.run(run())
    assert topics[0] == "v2.system.socket_closing"
    assert code == 1001
    assert pong["eventBody"] == {"message": "pong"}
    assert head(http, channel["id"]) == 200


def test_no_longer_subscribed_fault(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(channel["connectUri"]) as ws:
            add_fault(server, {"org": "org-sat", "kind": "no_longer_subscribed"})
            notice = await receive(ws)
            await ws.send(json.dumps({"message": "ping"}))
            return notice, await receive(ws)

    notice, pong = asyncio.run(run())
    assert notice["topicName"] == f"v2.system.no_longer_subscribed.{channel['id']}"
    assert pong["eventBody"] == {"message": "pong"}
    assert head(http, channel["id"]) == 404


def test_channel_expiry_fault(server: EmulatorServer) -> None:
    http = client(server)
    channel = new_channel(http)

    async def run() -> list[str]:
        async with connect(channel["connectUri"]) as ws:
            add_fault(server, {"org": "org-sat", "kind": "channel_expiry"})
            topics = []
            with pytest.raises(ConnectionClosed):
                while True:
                    topics.append((await receive(ws))["topicName"])
            return topics

    topics = asyncio.run(run())
    assert topics == [f"v2.system.no_longer_subscribed.{channel['id']}"]
    assert head(http, channel["id"]) == 404
    answer = http.get(f"/api/v2/notifications/channels/{channel['id']}/subscriptions")
    assert answer.status_code == 404


def test_drop_all_sockets(server: EmulatorServer) -> None:
    http = client(server)
    channels = [new_channel(http) for _ in range(2)]

    async def run() -> list[int | None]:
        sockets = [await connect(c["connectUri"]) for c in channels]
        answer = httpx.post(f"{server.base_url}/_emulator/sockets/drop")
        assert answer.json() == {"dropped": 2}
        codes = []
        for ws in sockets:
            with pytest.raises(ConnectionClosed):
                while True:
                    await receive(ws)
            codes.append(ws.close_code)
        return codes

    assert asyncio.run(run()) == [1001, 1001]
