"""The official Genesys Cloud Python SDK (purecloudplatformclientv2) on the emulator.

With a loopback base URL the SDK finds no ``//api.`` to turn into ``//login.``, so
it posts ``/oauth/token`` to the emulator's own port. The gateway configuration
(one host, a path prefix for login) reaches ``/login/oauth/token`` instead.

For a 202 with an empty body, the SDK (version 269) raises nothing. It returns
``[]`` when the call is typed as a list, and a model whose fields are all None when
the call is typed as a single model. Call recordings carry ``mediaSubtype: "Trunk"``,
a value of the SDK's enum, so the SDK keeps it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import PureCloudPlatformClientV2 as sdk
import pytest
from PureCloudPlatformClientV2.rest import ApiException

from recsync.emulator import EmulatorServer, load_scenario

TIME_SCALE = 0.01
SATELLITE_DELAY_S = 25.0


def scenario() -> dict[str, Any]:
    def org(org_id: str, role: str, delay_s: float) -> dict[str, Any]:
        return {
            "id": org_id,
            "role": role,
            "region": "eu-west-1",
            "client_id": f"{org_id}-client",
            "client_secret": f"{org_id}-secret",
            "propagation": {"distribution": "fixed", "value_s": delay_s},
        }

    return {
        "seed": 4,
        "conversations": 2000,
        "duration_s": 3000,
        "screen_ratio": 0.5,
        "users": 7,
        "batch_completion_s": 30,
        "orgs": [
            org("org-primary", "primary", 0),
            org("org-never", "satellite", 1_000_000),
        ],
    }


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorServer]:
    with EmulatorServer(load_scenario(scenario()), time_scale=TIME_SCALE) as running:
        # Let a few conversations be created before the first test.
        while running.world.now() < 20:
            time.sleep(0.01)
        yield running


def api_client(server: EmulatorServer, org_id: str = "org-primary") -> sdk.ApiClient:
    org = server.scenario.org(org_id)
    client = sdk.ApiClient(host=server.base_url)
    return client.get_client_credentials_token(org.client_id, org.client_secret)


def latest_created(server: EmulatorServer, media: str = "audio") -> Any:
    now_s = server.world.now()
    return max(
        (
            r
            for r in server.world.plan.recordings
            if r.created_at_s <= now_s and r.media == media
        ),
        key=lambda r: r.created_at_s,
    )


def wait_until_platform(server: EmulatorServer, at_s: float) -> None:
    deadline = time.monotonic() + 30
    while server.world.now() < at_s and time.monotonic() < deadline:
        time.sleep(0.005)


def test_client_credentials_token(server: EmulatorServer) -> None:
    client = api_client(server)
    assert len(client.access_token) >= 32


def test_gateway_configuration_login(server: EmulatorServer) -> None:
    org = server.scenario.org("org-primary")
    client = sdk.ApiClient()
    client.set_gateway("127.0.0.1", "http", server.port, "login", "")
    client.get_client_credentials_token(org.client_id, org.client_secret)
    users = sdk.UsersApi(client).get_users(page_size=2)
    assert users.total == 7


def test_bad_credentials_raise(server: EmulatorServer) -> None:
    client = sdk.ApiClient(host=server.base_url)
    with pytest.raises(ApiException) as caught:
        client.get_client_credentials_token("org-primary-client", "wrong")
    assert caught.value.status == 401


def test_metadata_list(server: EmulatorServer) -> None:
    recording = latest_created(server)
    documents = sdk.RecordingApi(api_client(server)).get_conversation_recordingmetadata(
        recording.conversation_id
    )
    found = next(d for d in documents if d.id == recording.id)
    assert isinstance(found, sdk.RecordingMetadata)
    assert found.conversation_id == recording.conversation_id
    assert found.file_state == "AVAILABLE"
    assert found.media == "audio"
    assert found.region == "eu-west-1"
    assert found.start_time.endswith("Z")
    assert found.annotations[0].reason == "Hold"
    assert found.self_uri.endswith(recording.id)
    assert found.archive_date is not None


def test_metadata_call_subtype_kept_by_sdk(server: EmulatorServer) -> None:
    recording = latest_created(server)
    found = sdk.RecordingApi(
        api_client(server)
    ).get_conversation_recordingmetadata_recording_id(
        recording.conversation_id, recording.id
    )
    assert found.media_subtype == "Trunk"


def test_metadata_single_screen(server: EmulatorServer) -> None:
    recording = latest_created(server, media="screen")
    found = sdk.RecordingApi(
        api_client(server)
    ).get_conversation_recordingmetadata_recording_id(
        recording.conversation_id, recording.id
    )
    assert found.id == recording.id
    assert found.media == "screen"
    assert found.media_subtype == "Screen"


def test_recordings_list(server: EmulatorServer) -> None:
    recording = latest_created(server)
    found = sdk.RecordingApi(api_client(server)).get_conversation_recordings(
        recording.conversation_id, max_wait_ms=0
    )
    match = next(r for r in found if r.id == recording.id)
    assert isinstance(match, sdk.Recording)
    assert match.file_state == "AVAILABLE"
    assert match.media_uris["S"].media_uri.startswith(server.base_url)
    assert match.estimated_transcode_time_ms == recording.transcode_ms


def test_recording_single(server: EmulatorServer) -> None:
    recording = latest_created(server)
    found = sdk.RecordingApi(api_client(server)).get_conversation_recording(
        recording.conversation_id, recording.id
    )
    assert found.id == recording.id
    assert found.conversation_id == recording.conversation_id


def test_recordings_list_202_empty(server: EmulatorServer) -> None:
    recording = latest_created(server)
    client = api_client(server, "org-never")
    found = sdk.RecordingApi(client).get_conversation_recordings(
        recording.conversation_id, max_wait_ms=0
    )
    assert found == []
    assert client.last_response.status == 202


def test_recording_single_202(server: EmulatorServer) -> None:
    recording = latest_created(server)
    client = api_client(server, "org-never")
    found = sdk.RecordingApi(client).get_conversation_recording(
        recording.conversation_id, recording.id
    )
    assert client.last_response.status == 202
    assert found.file_state == "UPLOADING"


def call_metadata(
    client: sdk.ApiClient, path: str, params: dict[str, str], response_type: str
) -> Any:
    # The SDK's metadata methods take no maxWaitMs, so call the path directly.
    return client.call_api(
        path,
        "GET",
        path_params=params,
        query_params={"maxWaitMs": 0},
        header_params={"Accept": "application/json"},
        response_type=response_type,
        auth_settings=["PureCloud OAuth"],
    )


def test_metadata_list_202_empty_body(server: EmulatorServer) -> None:
    recording = latest_created(server)
    client = api_client(server, "org-never")
    found = call_metadata(
        client,
        "/api/v2/conversations/{conversationId}/recordingmetadata",
        {"conversationId": recording.conversation_id},
        "list[RecordingMetadata]",
    )
    assert client.last_response.status == 202
    assert found == []


def test_metadata_single_202_empty_body(server: EmulatorServer) -> None:
    recording = latest_created(server)
    client = api_client(server, "org-never")
    found = call_metadata(
        client,
        "/api/v2/conversations/{conversationId}/recordingmetadata/{recordingId}",
        {"conversationId": recording.conversation_id, "recordingId": recording.id},
        "RecordingMetadata",
    )
    assert client.last_response.status == 202
    assert isinstance(found, sdk.RecordingMetadata)
    assert found.id is None


def test_not_found_error(server: EmulatorServer) -> None:
    with pytest.raises(ApiException) as caught:
        sdk.RecordingApi(api_client(server)).get_conversation_recordingmetadata(
            "unknown"
        )
    body = json.loads(caught.value.body)
    assert caught.value.status == 404
    assert body["code"] == "not.found"
    assert caught.value.headers["inin-correlation-id"] == body["contextId"]


def test_batch_request_lifecycle(server: EmulatorServer) -> None:
    recording = latest_created(server)
    api = sdk.RecordingApi(api_client(server))
    body = sdk.BatchDownloadJobSubmission()
    item = sdk.BatchDownloadRequest()
    item.conversation_id = recording.conversation_id
    item.recording_id = recording.id
    body.batch_download_request_list = [item]
    submitted = api.post_recording_batchrequests(body)
    assert isinstance(submitted, sdk.BatchDownloadJobSubmissionResult)
    assert api.get_recording_batchrequest(submitted.id).status == "InProgress"
    wait_until_platform(server, server.world.now() + 31)
    done = api.get_recording_batchrequest(submitted.id)
    assert isinstance(done, sdk.BatchDownloadJobStatusResult)
    assert done.status == "Completed"
    assert done.expected_result_count == 1
    assert done.results[0].recording_id == recording.id
    assert done.results[0].result_url.startswith(server.base_url)


def test_screen_sessions_details(server: EmulatorServer) -> None:
    details = sdk.RecordingApi(
        api_client(server)
    ).get_recordings_screensessions_details()
    assert isinstance(details, sdk.ScreenRecordingActiveSessions)
    assert details.count >= 0


def test_channels_and_subscriptions(server: EmulatorServer) -> None:
    api = sdk.NotificationsApi(api_client(server))
    channel = api.post_notifications_channels()
    assert isinstance(channel, sdk.Channel)
    assert channel.connect_uri == f"{server.ws_url}/channels/{channel.id}"
    assert channel.expires.year == 2026
    user_id = server.world.plan.users[0].id
    topic = f"v2.users.{user_id}.conversations"
    posted = api.post_notifications_channel_subscriptions(channel.id, [{"id": topic}])
    assert isinstance(posted, sdk.ChannelTopicEntityListing)
    assert posted.entities[0].state == "Permitted"
    other = f"v2.users.{server.world.plan.users[1].id}.conversations"
    put = api.put_notifications_channel_subscriptions(channel.id, [{"id": other}])
    assert [e.id for e in put.entities] == [other]
    listed = api.get_notifications_channel_subscriptions(channel.id)
    assert [e.id for e in listed.entities] == [other]
    api.delete_notifications_channel_subscriptions(channel.id)
    assert api.get_notifications_channel_subscriptions(channel.id).entities == []
    assert api.head_notifications_channel(channel.id) is None


def test_rejected_topic_model(server: EmulatorServer) -> None:
    api = sdk.NotificationsApi(api_client(server))
    channel = api.post_notifications_channels()
    posted = api.post_notifications_channel_subscriptions(
        channel.id, [{"id": "v2.nope"}]
    )
    assert posted.entities[0].state == "Rejected"
    assert posted.entities[0].missing_permissions


def test_head_missing_channel_raises(server: EmulatorServer) -> None:
    api = sdk.NotificationsApi(api_client(server))
    with pytest.raises(ApiException) as caught:
        api.head_notifications_channel("missing")
    assert caught.value.status == 404


def test_available_topics(server: EmulatorServer) -> None:
    topics = sdk.NotificationsApi(
        api_client(server)
    ).get_notifications_availabletopics()
    assert isinstance(topics, sdk.AvailableTopicEntityListing)
    by_id = {t.id: t for t in topics.entities}
    assert by_id["v2.users.{id}.conversations"].requires_current_user is False
    assert by_id["v2.users.{id}.conversations.{id}.recordings"].requires_permissions


def test_limits_namespace(server: EmulatorServer) -> None:
    limits = sdk.OrganizationApi(api_client(server)).get_organizations_limits_namespace(
        "platform.api"
    )
    assert isinstance(limits, sdk.LimitsEntityListing)
    values = {limit.key: limit.value for limit in limits.entities}
    assert values["client.credentials.token.rate.per.minute"] == 300


def test_users(server: EmulatorServer) -> None:
    users = sdk.UsersApi(api_client(server)).get_users(page_size=5, page_number=1)
    assert isinstance(users, sdk.UserEntityListing)
    assert users.total == 7
    assert users.page_count == 2
    assert [u.id for u in users.entities] == [u.id for u in server.world.plan.users[:5]]
    assert users.entities[0].state == "active"
