"""Status service over real uvicorn on loopback and a real redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis

from recsync.status.app import StreamLimits, create_status_app
from recsync.status.reads import StatusReader
from recsync.status.server import StatusServer
from recsync.store import RecordStore

ORG = "org-a"
AUTH = {"Authorization": "Bearer token-a"}
pytestmark = pytest.mark.integration

LIMITS = StreamLimits(block_ms=200, max_stream_s=30, max_streams=2)


@pytest.fixture
def store(real_redis: redis.Redis) -> RecordStore:
    return RecordStore(real_redis)


@pytest.fixture
def server(store: RecordStore, real_redis: redis.Redis) -> Iterator[StatusServer]:
    reader = StatusReader(store, real_redis)
    app = create_status_app(reader=reader, tokens={ORG: "token-a"}, limits=LIMITS)
    with StatusServer(app) as running:
        yield running


def read_events(
    response: httpx.Response, count: int
) -> list[tuple[str, dict[str, object]]]:
    """Read ``count`` change events from an open SSE response."""
    events: list[tuple[str, dict[str, object]]] = []
    event_id = ""
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line.removeprefix("data: "))))
            if len(events) == count:
                break
    return events


def transitions(store: RecordStore, rec: str) -> None:
    store.track(ORG, "conv-1", rec, deadline_s=600)
    store.claim(ORG, rec, token="t", lease_s=10)
    store.mark_ready(ORG, rec, token="t", metadata={"name": rec}, fingerprint="x")


def open_feed(
    client: httpx.Client, url: str, headers: dict[str, str]
) -> httpx.Response:
    request = client.build_request("GET", url + f"/orgs/{ORG}/changes", headers=headers)
    return client.send(request, stream=True)


def test_feed_resumes_after_reconnect(server: StatusServer, store: RecordStore) -> None:
    transitions(store, "rec-1")
    with httpx.Client(timeout=10) as client:
        first = open_feed(client, server.url, {**AUTH, "Last-Event-ID": "0"})
        assert first.status_code == 200
        seen = read_events(first, 2)
        first.close()
        transitions(store, "rec-2")
        last_id = seen[-1][0]
        second = open_feed(client, server.url, {**AUTH, "Last-Event-ID": last_id})
        rest = read_events(second, 4)
        second.close()
    states = [(c["recording_id"], c["state"]) for _, c in seen + rest]
    assert states == [
        ("rec-1", "pending"),
        ("rec-1", "fetching"),
        ("rec-1", "ready"),
        ("rec-2", "pending"),
        ("rec-2", "fetching"),
        ("rec-2", "ready"),
    ]


def test_feed_ids_increase(server: StatusServer, store: RecordStore) -> None:
    transitions(store, "rec-1")
    with httpx.Client(timeout=10) as client:
        response = open_feed(client, server.url, {**AUTH, "Last-Event-ID": "0"})
        events = read_events(response, 3)
        response.close()
    ids = [tuple(int(p) for p in event_id.split("-")) for event_id, _ in events]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_feed_after_query_resumes(server: StatusServer, store: RecordStore) -> None:
    transitions(store, "rec-1")
    first_id = StatusReader(store, store.redis).changes(ORG)[0]["id"]
    with httpx.Client(timeout=10) as client:
        url = server.url + f"/orgs/{ORG}/changes?after={first_id}"
        with client.stream("GET", url, headers=AUTH) as response:
            events = read_events(response, 2)
    assert [c["state"] for _, c in events] == ["fetching", "ready"]


def test_feed_without_resume_starts_now(
    server: StatusServer, store: RecordStore
) -> None:
    transitions(store, "rec-old")
    with httpx.Client(timeout=10) as client:
        response = open_feed(client, server.url, AUTH)
        assert response.status_code == 200
        transitions(store, "rec-new")
        events = read_events(response, 1)
        response.close()
    assert events[0][1]["recording_id"] == "rec-new"


def test_feed_query_token_accepted(server: StatusServer, store: RecordStore) -> None:
    transitions(store, "rec-1")
    url = server.url + f"/orgs/{ORG}/changes?after=0&access_token=token-a"
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", url) as response,
    ):
        assert response.status_code == 200
        events = read_events(response, 1)
    assert events[0][1]["state"] == "pending"


def test_feed_limit_returns_503(server: StatusServer) -> None:
    with httpx.Client(timeout=10) as client:
        open_feeds = [open_feed(client, server.url, AUTH) for _ in range(2)]
        # The server counts a feed once it sends the first line, the retry hint.
        for response in open_feeds:
            assert next(response.iter_lines()) == "retry: 1000"
        try:
            extra = client.get(server.url + f"/orgs/{ORG}/changes", headers=AUTH)
        finally:
            for response in open_feeds:
                response.close()
    assert extra.status_code == 503
    assert extra.headers["retry-after"] == "5"


def test_server_reads_over_loopback(server: StatusServer, store: RecordStore) -> None:
    transitions(store, "rec-1")
    response = httpx.get(server.url + f"/orgs/{ORG}/recordings/rec-1", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["metadata"] == {"name": "rec-1"}


def test_server_url_is_loopback(server: StatusServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")


def test_server_rejects_public_host(
    store: RecordStore, real_redis: redis.Redis
) -> None:
    app = create_status_app(reader=StatusReader(store, real_redis), tokens={})
    with pytest.raises(ValueError, match="not a loopback address"):
        StatusServer(app, host="0.0.0.0")
