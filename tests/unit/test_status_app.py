"""Status service routes over fakeredis: auth, id checks, reads and the page."""

from __future__ import annotations

import time

import pytest
import redis
from starlette.testclient import TestClient

from recsync.status.app import create_status_app
from recsync.status.reads import StatusReader
from recsync.store import RecordStore, keys

TOKENS = {"org-a": "token-a", "org-b": "token-b"}
A = {"Authorization": "Bearer token-a"}
B = {"Authorization": "Bearer token-b"}


@pytest.fixture
def store(fake_redis: redis.Redis) -> RecordStore:
    return RecordStore(fake_redis)


@pytest.fixture
def client(store: RecordStore, fake_redis: redis.Redis) -> TestClient:
    reader = StatusReader(store, fake_redis)
    return TestClient(create_status_app(reader=reader, tokens=TOKENS))


@pytest.fixture
def open_client(store: RecordStore, fake_redis: redis.Redis) -> TestClient:
    reader = StatusReader(store, fake_redis)
    app = create_status_app(reader=reader, tokens=TOKENS, allow_unauthenticated=True)
    return TestClient(app)


def make_ready(store: RecordStore, org: str, rec: str, name: str) -> None:
    store.track(org, "conv-1", rec, deadline_s=600)
    store.claim(org, rec, token="t", lease_s=10)
    store.mark_ready(org, rec, token="t", metadata={"name": name}, fingerprint="x")


def test_recording_ready_returns_metadata(
    client: TestClient, store: RecordStore
) -> None:
    make_ready(store, "org-a", "rec-1", "hello")
    response = client.get("/orgs/org-a/recordings/rec-1", headers=A)
    assert response.status_code == 200
    assert response.json()["state"] == "ready"
    assert response.json()["metadata"] == {"name": "hello"}


def test_recording_deferred_fields(client: TestClient, store: RecordStore) -> None:
    store.track("org-a", "conv-1", "rec-1", deadline_s=600)
    store.claim("org-a", "rec-1", token="t", lease_s=10)
    due = time.time() + 5
    store.defer("org-a", "rec-1", token="t", next_attempt_at=due, error="202")
    body = client.get("/orgs/org-a/recordings/rec-1", headers=A).json()
    assert body["state"] == "async-pending"
    assert body["attempts"] == 1
    assert body["next_attempt_at"] == pytest.approx(due, abs=0.01)
    assert body["last_error"] == "202"
    assert body["metadata"] is None


def test_recording_unknown_is_404(client: TestClient) -> None:
    response = client.get("/orgs/org-a/recordings/rec-9", headers=A)
    assert response.status_code == 404
    assert "rec-9" in response.json()["error"]


def test_recording_missing_token_is_401(client: TestClient) -> None:
    response = client.get("/orgs/org-a/recordings/rec-1")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Bearer wrong", "Basic dG9rZW4tYQ==", "token-a", "Bearer ", "Bearer"]
)
def test_recording_invalid_token_is_401(client: TestClient, header: str) -> None:
    response = client.get(
        "/orgs/org-a/recordings/rec-1", headers={"Authorization": header}
    )
    assert response.status_code == 401


def test_recording_other_org_token_is_403(
    client: TestClient, store: RecordStore
) -> None:
    make_ready(store, "org-a", "rec-1", "secret")
    response = client.get("/orgs/org-a/recordings/rec-1", headers=B)
    assert response.status_code == 403
    assert "secret" not in response.text


@pytest.mark.parametrize("path", ["recordings/rec-1", "recordings", "overview"])
def test_org_routes_other_org_403(client: TestClient, path: str) -> None:
    assert client.get(f"/orgs/org-b/{path}", headers=A).status_code == 403


@pytest.mark.parametrize("org", ["%2A", "*", "org-a:rec", "ORG-A", "org-a%3Arec"])
def test_crafted_org_id_is_400(client: TestClient, org: str) -> None:
    response = client.get(f"/orgs/{org}/overview", headers=A)
    assert response.status_code == 400
    assert "org id" in response.json()["error"]


@pytest.mark.parametrize("rec", ["%2A", "*", "org-a:rec", "rec%20x", "..."])
def test_crafted_recording_id_is_400(client: TestClient, rec: str) -> None:
    response = client.get(f"/orgs/org-a/recordings/{rec}", headers=A)
    assert response.status_code == 400
    assert "recording id" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/orgs/org-b/../org-a/recordings/rec-1",
        "/orgs/org-b%2F..%2Forg-a/recordings/rec-1",
        "/orgs/org-b/recordings/..%2F..%2Forg-a%2Frecordings%2Frec-1",
        "/orgs/org-b/recordings/rec-1%2F..%2F..%2Forg-a",
    ],
)
def test_traversal_never_reads_org_a(
    client: TestClient, store: RecordStore, path: str
) -> None:
    make_ready(store, "org-a", "rec-1", "secret-of-a")
    response = client.get(path, headers=B)
    assert response.status_code in (400, 403, 404)
    assert "secret-of-a" not in response.text


def test_recordings_paginates(client: TestClient, store: RecordStore) -> None:
    for i in range(5):
        store.track("org-a", "conv-1", f"rec-{i}", deadline_s=600)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"state": "pending", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/orgs/org-a/recordings", params=params, headers=A).json()
        seen.extend(item["recording_id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"rec-{i}" for i in range(5)]
    assert len(seen) == 5


@pytest.mark.parametrize(
    "query", ["state=done", "state=pending&limit=x", "limit=0", "cursor=zz"]
)
def test_recordings_bad_query_is_400(client: TestClient, query: str) -> None:
    response = client.get(f"/orgs/org-a/recordings?{query}", headers=A)
    assert response.status_code == 400


def test_overview_returns_breakers(client: TestClient, fake_redis: redis.Redis) -> None:
    fake_redis.hset(keys.breaker("org-a", "batch"), "state", "half-open")
    body = client.get("/orgs/org-a/overview", headers=A).json()
    assert body["breakers"] == {"batch": "half-open"}
    assert body["org_id"] == "org-a"


def test_changes_bad_after_is_400(client: TestClient) -> None:
    response = client.get("/orgs/org-a/changes?after=$", headers=A)
    assert response.status_code == 400


def test_changes_missing_token_is_401(client: TestClient) -> None:
    assert client.get("/orgs/org-a/changes").status_code == 401


def test_changes_query_token_other_org_403(client: TestClient) -> None:
    response = client.get("/orgs/org-b/changes?access_token=token-a")
    assert response.status_code == 403


def test_query_token_rejected_off_feed(client: TestClient) -> None:
    response = client.get("/orgs/org-a/overview?access_token=token-a")
    assert response.status_code == 401


def test_healthz_is_open(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_whoami_returns_token_org(client: TestClient) -> None:
    assert client.get("/whoami", headers=B).json() == {"org_id": "org-b"}


def test_metrics_needs_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


@pytest.mark.parametrize("path", ["/", "/static/app.js"])
def test_page_is_served_without_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/", "/static/app.js"])
def test_closed_routes_accept_any_token(client: TestClient, path: str) -> None:
    assert client.get(path, headers=B).status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/", "/static/app.js"])
def test_open_mode_serves_without_token(open_client: TestClient, path: str) -> None:
    assert open_client.get(path).status_code == 200


def test_open_mode_org_routes_need_token(open_client: TestClient) -> None:
    assert open_client.get("/orgs/org-a/overview").status_code == 401


def test_page_has_csp(open_client: TestClient) -> None:
    response = open_client.get("/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("name", ["../app.py", "missing.js", "..%2Fapp.py"])
def test_static_unknown_is_404(open_client: TestClient, name: str) -> None:
    assert open_client.get(f"/static/{name}").status_code == 404


def test_create_app_rejects_empty_token(
    store: RecordStore, fake_redis: redis.Redis
) -> None:
    reader = StatusReader(store, fake_redis)
    with pytest.raises(ValueError, match="empty"):
        create_status_app(reader=reader, tokens={"org-a": ""})


def test_create_app_rejects_bad_org(
    store: RecordStore, fake_redis: redis.Redis
) -> None:
    reader = StatusReader(store, fake_redis)
    with pytest.raises(keys.InvalidId):
        create_status_app(reader=reader, tokens={"Org A": "x"})
