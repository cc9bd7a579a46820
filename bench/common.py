"""Pieces shared by the baseline strategies: settings from the environment, a
small platform client and the result keys in Redis.

The baselines (SDK pool, Celery, plain Dramatiq) write one Redis string per
finished record, ``bench:result:{org}:{recording}``, holding the wall time it
became ready. That key is also what their UI reader reads.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import attrs
import httpx
import redis

RESULT_PREFIX = "bench:result:"
WAIT_KEY = "bench:platform_wait_s"
ANNOUNCE_KEY = "bench:announce"
SETTINGS_ENV = "BENCH_SETTINGS"


@attrs.frozen
class Settings:
    """Settings of a baseline worker process, passed as JSON in ``BENCH_SETTINGS``."""

    base_url: str
    redis_url: str
    time_scale: float
    # org id -> (client_id, client_secret)
    credentials: dict[str, tuple[str, str]]
    max_retries: int = 20

    def to_json(self) -> str:
        """Serialize for the environment of a worker subprocess."""
        return json.dumps(attrs.asdict(self))

    @classmethod
    def from_environment(cls) -> Settings:
        """Read the settings a parent bench process exported."""
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise RuntimeError(
                f"{SETTINGS_ENV} is not set; start baseline workers through "
                "`python -m bench`"
            )
        data: dict[str, Any] = json.loads(raw)
        data["credentials"] = {
            org: (pair[0], pair[1]) for org, pair in data["credentials"].items()
        }
        return cls(**data)


def result_key(org_id: str, recording_id: str) -> str:
    """Redis key of one finished record of a baseline strategy."""
    return f"{RESULT_PREFIX}{org_id}:{recording_id}"


class NotReady(Exception):
    """The platform did not return the metadata yet (202, 408, 429 or 5xx)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"metadata not ready: HTTP {status}")
        self.status = status


class PlatformClient:
    """Fetch recording metadata with one non-blocking call (``maxWaitMs=0``).

    Written with httpx because the baselines only need a token and one GET; one
    httpx client per thread keeps the connection pools apart.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(settings.redis_url)
        self._local = threading.local()
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    def _http(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.settings.base_url, timeout=None)
            self._local.client = client
        return client

    def _token(self, org_id: str) -> str:
        with self._lock:
            token = self._tokens.get(org_id)
        if token is not None:
            return token
        client_id, secret = self.settings.credentials[org_id]
        response = self._http().post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        response.raise_for_status()
        token = str(response.json()["access_token"])
        with self._lock:
            self._tokens[org_id] = token
        return token

    def fetch(self, org_id: str, conversation_id: str, recording_id: str) -> None:
        """Fetch one record's metadata and store its result key; raise NotReady."""
        path = (
            f"/api/v2/conversations/{conversation_id}/recordingmetadata/{recording_id}"
        )
        started = time.monotonic()
        try:
            response = self._http().get(
                path,
                params={"maxWaitMs": "0"},
                headers={"Authorization": f"Bearer {self._token(org_id)}"},
            )
        finally:
            self.redis.incrbyfloat(WAIT_KEY, time.monotonic() - started)
        if response.status_code != 200:
            raise NotReady(response.status_code)
        self.redis.set(result_key(org_id, recording_id), repr(time.time()))
