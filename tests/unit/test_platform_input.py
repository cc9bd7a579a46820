"""Hostile platform responses and socket frames: translated, never crashing."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsync.errors import (
    AuthenticationError,
    InvalidResponse,
    NotFound,
    PlatformPending,
    PlatformUnavailable,
    RateLimited,
)
from recsync.platform.auth import TokenProvider
from recsync.platform.client import PlatformClient
from recsync.platform.metadata import check_metadata, fingerprint, is_final
from recsync.platform.notifications import MAX_FRAME_BYTES, parse_frame
from recsync.resilience.budget import ApiBudget

CID = "c0ffee00-0000-4000-8000-000000000001"
RID = "c0ffee00-0000-4000-8000-000000000002"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


class Platform:
    """An httpx transport that returns canned responses in order."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"token-{self.tokens_issued}",
                    "expires_in": 3600,
                },
            )
        self.requests.append(request)
        return self.responses.pop(0)


def make_client(fake_redis: Any, platform: Platform) -> PlatformClient:
    http = httpx.Client(transport=httpx.MockTransport(platform))
    tokens = TokenProvider(
        org_id="org-a",
        client=fake_redis,
        http=http,
        token_url="http://127.0.0.1:1/oauth/token",
        client_id="client-id",
        client_secret="client-secret-value",
    )
    budget = ApiBudget(fake_redis, "org-a", requests_per_minute=600)
    return PlatformClient(
        org_id="org-a",
        api_base_url="http://127.0.0.1:1",
        http=http,
        tokens=tokens,
        budget=budget,
        max_body_bytes=4096,
    )


def metadata(**changes: Any) -> dict[str, Any]:
    body = {
        "id": RID,
        "conversationId": CID,
        "fileState": "AVAILABLE",
        "media": "audio",
        "annotations": [{"id": "hold-1", "type": "hold", "durationMs": 1200}],
    }
    body.update(changes)
    return body


def test_client_202_empty_body_is_pending(fake_redis):
    client = make_client(fake_redis, Platform(httpx.Response(202, content=b"")))
    with pytest.raises(PlatformPending) as caught:
        client.recording_metadata(CID, RID)
    assert caught.value.timed_out is False


def test_client_408_is_pending_timeout(fake_redis):
    answer = httpx.Response(408, json={"code": "client.timeout", "status": 408})
    client = make_client(fake_redis, Platform(answer))
    with pytest.raises(PlatformPending) as caught:
        client.recording_metadata(CID, RID)
    assert caught.value.timed_out is True


def test_client_asks_without_waiting(fake_redis):
    platform = Platform(httpx.Response(200, json=metadata()))
    make_client(fake_redis, platform).recording_metadata(CID, RID)
    assert platform.requests[0].url.params["maxWaitMs"] == "0"


def test_client_html_page_is_invalid_response(fake_redis):
    page = httpx.Response(
        200,
        content=b"<html><body>Bad gateway</body></html>",
        headers={"content-type": "text/html"},
    )
    client = make_client(fake_redis, Platform(page))
    with pytest.raises(InvalidResponse) as caught:
        client.recording_metadata(CID, RID)
    assert "not JSON" in str(caught.value)


def test_client_oversized_body_is_invalid_response(fake_redis):
    huge = httpx.Response(200, content=b"[" + b"1," * 5000 + b"1]")
    client = make_client(fake_redis, Platform(huge))
    with pytest.raises(InvalidResponse) as caught:
        client.recording_metadata(CID, RID)
    assert "exceeds" in str(caught.value)


def test_client_array_where_object_expected(fake_redis):
    client = make_client(fake_redis, Platform(httpx.Response(200, json=[1, 2])))
    with pytest.raises(InvalidResponse):
        client.recording_metadata(CID, RID)


def test_client_429_pauses_for_retry_after(fake_redis):
    answer = httpx.Response(429, headers={"Retry-After": "58"}, json={"status": 429})
    client = make_client(fake_redis, Platform(answer))
    with pytest.raises(RateLimited) as caught:
        client.recording_metadata(CID, RID)
    paused_until = client.budget.paused_until()
    assert caught.value.from_platform is True
    assert caught.value.retry_after_s == 58
    assert paused_until is not None
    assert paused_until >= caught.value.retry_at - 0.01


def test_client_long_retry_after_marks_throttled(fake_redis):
    platform = Platform(
        httpx.Response(429, headers={"Retry-After": "600"}, json={"status": 429})
    )
    client = make_client(fake_redis, platform)
    client.max_retry_after_s = 180.0
    seen: list[tuple[str, float]] = []
    client.on_throttled = lambda org_id, retry_after_s: seen.append(
        (org_id, retry_after_s)
    )
    with pytest.raises(RateLimited):
        client.recording_metadata(CID, RID)
    throttled = fake_redis.hgetall("recsync:org:org-a:budget:throttled")
    assert float(throttled[b"retry_after_s"]) == 600.0
    assert seen == [("org-a", 600.0)]
    assert client.budget.paused_until() is not None


def test_client_short_retry_after_not_throttled(fake_redis):
    platform = Platform(
        httpx.Response(429, headers={"Retry-After": "58"}, json={"status": 429})
    )
    client = make_client(fake_redis, platform)
    client.max_retry_after_s = 180.0
    with pytest.raises(RateLimited):
        client.recording_metadata(CID, RID)
    assert fake_redis.exists("recsync:org:org-a:budget:throttled") == 0


def test_client_paused_budget_sends_nothing(fake_redis):
    platform = Platform()
    client = make_client(fake_redis, platform)
    client.budget.pause_for(30)
    with pytest.raises(RateLimited) as caught:
        client.recording_metadata(CID, RID)
    assert caught.value.from_platform is False
    assert platform.requests == []


def test_client_401_reauthenticates_once(fake_redis):
    platform = Platform(
        httpx.Response(401, json={"code": "bad.credentials"}),
        httpx.Response(200, json=metadata()),
    )
    body = make_client(fake_redis, platform).recording_metadata(CID, RID)
    assert body["id"] == RID
    assert platform.tokens_issued == 2
    assert platform.requests[1].headers["Authorization"] == "Bearer token-2"


def test_client_401_twice_raises(fake_redis):
    platform = Platform(
        httpx.Response(401, json={"code": "bad.credentials"}),
        httpx.Response(401, json={"code": "bad.credentials"}),
    )
    with pytest.raises(AuthenticationError):
        make_client(fake_redis, platform).recording_metadata(CID, RID)


@pytest.mark.parametrize(
    "status, error",
    [(404, NotFound), (500, PlatformUnavailable), (503, PlatformUnavailable)],
)
def test_client_errors_carry_correlation_id(fake_redis, status, error):
    answer = httpx.Response(
        status,
        json={"code": "x", "message": "boom", "contextId": "corr-1"},
        headers={"inin-correlation-id": "corr-1"},
    )
    with pytest.raises(error) as caught:
        make_client(fake_redis, Platform(answer)).recording_metadata(CID, RID)
    assert caught.value.correlation_id == "corr-1"
    assert caught.value.status == status


def test_client_secret_never_in_errors(fake_redis):
    answer = httpx.Response(500, text="oops")
    with pytest.raises(PlatformUnavailable) as caught:
        make_client(fake_redis, Platform(answer)).recording_metadata(CID, RID)
    assert "client-secret-value" not in str(caught.value)
    assert "client-secret-value" not in repr(caught.value)


def test_token_never_contains_secret_in_redis(fake_redis):
    platform = Platform(httpx.Response(200, json=metadata()))
    make_client(fake_redis, platform).recording_metadata(CID, RID)
    for key in fake_redis.scan_iter("*"):
        if fake_redis.type(key) == b"hash":
            values = fake_redis.hgetall(key).values()
        elif fake_redis.type(key) == b"string":
            values = [fake_redis.get(key)]
        else:
            continue
        assert all(b"client-secret-value" not in (v or b"") for v in values), key


def test_metadata_unknown_file_state_is_kept():
    body = metadata(fileState="QUARANTINED")
    assert check_metadata(body, org_id="org-a", recording_id=RID)["fileState"] == (
        "QUARANTINED"
    )
    assert is_final(body)


def test_metadata_uploading_is_not_final():
    assert not is_final(metadata(fileState="UPLOADING"))


@pytest.mark.parametrize(
    "changes",
    [{"id": "other"}, {"fileState": 7}, {"conversationId": ["x"]}, {"annotations": {}}],
)
def test_metadata_wrong_types_rejected(changes):
    with pytest.raises(InvalidResponse):
        check_metadata(metadata(**changes), org_id="org-a", recording_id=RID)


def test_fingerprint_ignores_hold_annotation_ids():
    first = metadata(annotations=[{"id": "a1", "type": "hold", "durationMs": 5}])
    again = metadata(annotations=[{"id": "b7", "type": "hold", "durationMs": 5}])
    assert fingerprint(first) == fingerprint(again)


def test_fingerprint_sees_stable_changes():
    before = metadata(fileState="AVAILABLE")
    after = metadata(fileState="ARCHIVED")
    other = metadata(annotations=[{"id": "a1", "type": "hold", "durationMs": 99}])
    assert fingerprint(before) != fingerprint(after)
    assert fingerprint(before) != fingerprint(other)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_metadata_checks_never_crash(value):
    body = value if isinstance(value, dict) else {"id": RID, "annotations": value}
    with contextlib.suppress(InvalidResponse):
        check_metadata(body, org_id="org-a", recording_id=RID)
    assert isinstance(fingerprint(body), str)
    assert is_final(body) in (True, False)


@settings(max_examples=300, deadline=None)
@given(json_values, st.text(max_size=80))
def test_frames_never_crash(body, topic):
    envelope = json.dumps({"topicName": topic, "eventBody": body})
    frame = parse_frame(envelope)
    assert frame.kind in {
        "heartbeat",
        "pong",
        "socket_closing",
        "no_longer_subscribed",
        "token_revoked",
        "subscription_updated",
        "recording",
        "conversation",
        "unknown",
        "invalid",
    }


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_raw_bytes_frames_never_crash(raw):
    assert parse_frame(raw).kind in {
        "invalid",
        "unknown",
        "heartbeat",
        "pong",
        "recording",
        "conversation",
        "socket_closing",
        "no_longer_subscribed",
        "token_revoked",
        "subscription_updated",
    }


def test_oversized_frame_is_invalid():
    frame = parse_frame("x" * (MAX_FRAME_BYTES + 1))
    assert frame.kind == "invalid"
    assert "exceeds" in (frame.problem or "")


@pytest.mark.parametrize(
    "raw, kind",
    [
        ("not json", "invalid"),
        ("[1, 2]", "invalid"),
        ('{"eventBody": {}}', "invalid"),
        ('{"topicName": "v2.users.u1.presence", "eventBody": {}}', "unknown"),
        ('{"topicName": "channel.metadata", "eventBody": {"message": "pong"}}', "pong"),
        (
            '{"topicName": "channel.metadata", "eventBody": '
            '{"message": "WebSocket Heartbeat"}}',
            "heartbeat",
        ),
        (
            '{"topicName": "v2.system.socket_closing", "eventBody": {}}',
            "socket_closing",
        ),
        (
            '{"topicName": "v2.users.u1.conversations.c1.recordings", "eventBody": '
            '{"id": "r1", "conversationId": "c1", "fileState": "AVAILABLE"}}',
            "recording",
        ),
        (
            '{"topicName": "v2.users.u1.conversations.c1.recordings", "eventBody": '
            '{"conversationId": 5}}',
            "invalid",
        ),
        (
            '{"topicName": "v2.users.u1.conversations", "eventBody": {"id": "c1"}}',
            "conversation",
        ),
    ],
)
def test_frame_kinds(raw, kind):
    assert parse_frame(raw).kind == kind


def test_rejected_credentials_are_not_retried_at_once(fake_redis):
    attempts: list[httpx.Request] = []

    def reject(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        return httpx.Response(401, json={"error": "invalid_client"})

    tokens = TokenProvider(
        org_id="org-a",
        client=fake_redis,
        http=httpx.Client(transport=httpx.MockTransport(reject)),
        token_url="http://127.0.0.1:1/oauth/token",
        client_id="client-id",
        client_secret="client-secret-value",
    )
    for _ in range(5):
        with pytest.raises(AuthenticationError) as caught:
            tokens.token()
        assert "client-secret-value" not in str(caught.value)
    assert len(attempts) == 1
