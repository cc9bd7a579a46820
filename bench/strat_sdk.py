"""Strategy (a): the official SDK polling each record from a pool of 8 threads.

Run as ``python -m bench.strat_sdk`` with ``BENCH_SETTINGS`` set. It takes records
from the Redis list ``bench:announce`` and calls
``RecordingApi.get_conversation_recordingmetadata_recording_id`` without
``maxWaitMs``, so the platform keeps each call open until the recording is visible
or returns 408 after 30 platform seconds. urllib3 keeps its defaults (no timeout).
On 429 a thread sleeps for ``Retry-After`` platform seconds; on any other error
it calls again, up to ``max_retries`` retries.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import PureCloudPlatformClientV2 as platform_sdk
import redis
from PureCloudPlatformClientV2.rest import ApiException

from bench.common import ANNOUNCE_KEY, WAIT_KEY, Settings, result_key

log = logging.getLogger(__name__)
THREADS = 8


def _retry_after_s(exc: ApiException) -> float:
    headers = exc.headers or {}
    try:
        return float(headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0


class SdkClients:
    """One logged-in ``RecordingApi`` per org, built on first use.

    Logging in lazily lets the pool start before the emulator listens.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._apis: dict[str, platform_sdk.RecordingApi] = {}
        self._lock = threading.Lock()

    def api(self, org_id: str) -> platform_sdk.RecordingApi:
        """Return the org's API object, logging in with client credentials once."""
        with self._lock:
            api = self._apis.get(org_id)
            if api is None:
                client_id, secret = self.settings.credentials[org_id]
                client = platform_sdk.api_client.ApiClient(host=self.settings.base_url)
                client = client.get_client_credentials_token(client_id, secret)
                api = platform_sdk.RecordingApi(client)
                self._apis[org_id] = api
            return api


def fetch_blocking(
    clients: SdkClients,
    store: redis.Redis,
    settings: Settings,
    org_id: str,
    conversation_id: str,
    recording_id: str,
) -> None:
    """Poll one record until the SDK returns its metadata or retries run out."""
    api = clients.api(org_id)
    for _ in range(settings.max_retries + 1):
        started = time.monotonic()
        try:
            api.get_conversation_recordingmetadata_recording_id(
                conversation_id, recording_id
            )
        except ApiException as exc:
            store.incrbyfloat(WAIT_KEY, time.monotonic() - started)
            if exc.status == 429:
                time.sleep(_retry_after_s(exc) * settings.time_scale)
            continue
        store.incrbyfloat(WAIT_KEY, time.monotonic() - started)
        store.set(result_key(org_id, recording_id), repr(time.time()))
        return
    log.warning("org %s recording %s: retries exhausted", org_id, recording_id)


def main() -> int:
    """Serve announced records until the parent stops this process."""
    settings = Settings.from_environment()
    store = redis.Redis.from_url(settings.redis_url)
    apis = SdkClients(settings)
    print("sdk pool ready", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        while True:
            item = store.brpop([ANNOUNCE_KEY], timeout=1)
            if item is None:
                continue
            raw = item[1]
            text = raw.decode() if isinstance(raw, bytes) else raw
            org_id, conversation_id, recording_id = text.split(" ")
            pool.submit(
                fetch_blocking,
                apis,
                store,
                settings,
                org_id,
                conversation_id,
                recording_id,
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
