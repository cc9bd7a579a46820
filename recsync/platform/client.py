"""Genesys Cloud REST client for one org: non-blocking, bounded, translated errors.

Every call first draws from the org's shared API budget, carries the org's access
token, and is bounded by httpx timeouts of ``request_timeout_s`` on each phase
(connect, each read, write). A call that needs a token request or a 401 retry makes
up to three such requests. Responses are translated into
recsync's types: a ``202``, ``408``, ``504`` or client timeout becomes
:class:`PlatformPending` ("not yet"), a ``429`` pauses the org's budget and becomes
:class:`RateLimited`, and other failures become :class:`PlatformError` subclasses that
carry the platform's correlation id.

The official SDK is not used here because it applies no socket timeout and repeats a
``429`` up to 10 times inside the calling thread.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx

from recsync.errors import (
    AuthenticationError,
    InvalidResponse,
    NotFound,
    PlatformError,
    PlatformPending,
    PlatformUnavailable,
    RateLimited,
)
from recsync.platform.auth import TokenProvider
from recsync.resilience.budget import ApiBudget
from recsync.store import keys

log = logging.getLogger(__name__)

# Genesys' SDKs wait 3 s when a 429 carries no Retry-After.
DEFAULT_RETRY_AFTER_S = 3.0
MAX_RETRY_AFTER_S = 86_400.0
MAX_BODY_BYTES = 2 * 1024 * 1024


@attrs.frozen
class CallRecord:
    """One platform call, as counted for metrics and the breaker."""

    endpoint: str
    status: int | None
    elapsed_s: float
    timed_out: bool
    correlation_id: str | None


CallObserver = Callable[[CallRecord], None]


class PlatformClient:
    """REST calls for one org."""

    def __init__(
        self,
        *,
        org_id: str,
        api_base_url: str,
        http: httpx.Client,
        tokens: TokenProvider,
        budget: ApiBudget,
        time_scale: float = 1.0,
        max_body_bytes: int = MAX_BODY_BYTES,
        observe: CallObserver | None = None,
        clock: Callable[[], float] = time.time,
        max_retry_after_s: float | None = None,
        on_throttled: Callable[[str, float], None] | None = None,
    ) -> None:
        self.org_id = org_id
        self.api_base_url = api_base_url.rstrip("/")
        self.http = http
        self.tokens = tokens
        self.budget = budget
        self.time_scale = time_scale
        self.max_body_bytes = max_body_bytes
        self.observe = observe
        self.clock = clock
        self.max_retry_after_s = max_retry_after_s
        self.on_throttled = on_throttled

    # Recording metadata -------------------------------------------------------------

    def recording_metadata(
        self, conversation_id: str, recording_id: str
    ) -> dict[str, Any]:
        """Return one recording's metadata without waiting on the platform.

        Raises :class:`PlatformPending` while the platform has not indexed it.
        """
        body = self._call(
            "GET",
            f"/api/v2/conversations/{conversation_id}/recordingmetadata/{recording_id}",
            endpoint="recordingmetadata",
            params={"maxWaitMs": "0"},
        )
        if not isinstance(body, dict):
            raise InvalidResponse(
                f"org {self.org_id}: recording {recording_id}: expected a JSON object, "
                f"got {type(body).__name__}"
            )
        return body

    def conversation_metadata(self, conversation_id: str) -> list[dict[str, Any]]:
        """Return the metadata of every recording of a conversation, non-blocking."""
        body = self._call(
            "GET",
            f"/api/v2/conversations/{conversation_id}/recordingmetadata",
            endpoint="recordingmetadata",
            params={"maxWaitMs": "0"},
        )
        if not isinstance(body, list) or not all(isinstance(i, dict) for i in body):
            raise InvalidResponse(
                f"org {self.org_id}: conversation {conversation_id}: expected a JSON "
                "array of objects"
            )
        return body

    # Batch download jobs ------------------------------------------------------------

    def submit_batch(self, items: list[tuple[str, str]]) -> str:
        """Submit a batch job for (conversation id, recording id) pairs; return its id.

        The platform accepts at most 100 items per job.
        """
        if not 0 < len(items) <= 100:
            raise ValueError(f"a batch takes 1 to 100 items, not {len(items)}")
        payload = {
            "batchDownloadRequestList": [
                {"conversationId": cid, "recordingId": rid} for cid, rid in items
            ]
        }
        body = self._call(
            "POST",
            "/api/v2/recording/batchrequests",
            endpoint="batch",
            json_body=payload,
        )
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise InvalidResponse(f"org {self.org_id}: batch submission has no job id")
        return str(body["id"])

    def batch_status(self, job_id: str) -> dict[str, Any]:
        body = self._call(
            "GET", f"/api/v2/recording/batchrequests/{job_id}", endpoint="batch"
        )
        if not isinstance(body, dict):
            raise InvalidResponse(
                f"org {self.org_id}: batch job {job_id}: not an object"
            )
        return body

    # Notifications ------------------------------------------------------------------

    def create_channel(self) -> dict[str, Any]:
        """Create a notification channel; returns ``{id, connectUri, expires}``."""
        body = self._call(
            "POST", "/api/v2/notifications/channels", endpoint="notifications"
        )
        if (
            not isinstance(body, dict)
            or not body.get("id")
            or not body.get("connectUri")
        ):
            raise InvalidResponse(
                f"org {self.org_id}: channel response lacks id or connectUri"
            )
        return body

    def subscribe(
        self, channel_id: str, topics: list[str], *, replace: bool = False
    ) -> list[dict[str, Any]]:
        """Add topics to a channel (or set them, with ``replace``).

        Returns the state the platform gave each topic.
        """
        body = self._call(
            "PUT" if replace else "POST",
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            endpoint="notifications",
            json_body=[{"id": topic} for topic in topics],
        )
        entities = body.get("entities") if isinstance(body, dict) else body
        if not isinstance(entities, list):
            raise InvalidResponse(
                f"org {self.org_id}: subscription response lacks entities"
            )
        return [e for e in entities if isinstance(e, dict)]

    def unsubscribe_all(self, channel_id: str) -> None:
        self._call(
            "DELETE",
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            endpoint="notifications",
        )

    def channel_alive(self, channel_id: str) -> bool:
        """Probe a channel with ``HEAD``: True on 200, False on 404."""
        try:
            self._call(
                "HEAD",
                f"/api/v2/notifications/channels/{channel_id}",
                endpoint="notifications",
            )
        except NotFound:
            return False
        return True

    def list_users(self, *, page_size: int = 100, max_pages: int = 50) -> list[str]:
        """Return the ids of the org's users, page by page."""
        ids: list[str] = []
        for page in range(1, max_pages + 1):
            body = self._call(
                "GET",
                "/api/v2/users",
                endpoint="users",
                params={"pageSize": str(page_size), "pageNumber": str(page)},
            )
            entities = body.get("entities") if isinstance(body, dict) else None
            if not isinstance(entities, list):
                raise InvalidResponse(f"org {self.org_id}: user listing lacks entities")
            ids.extend(
                str(e["id"]) for e in entities if isinstance(e, dict) and "id" in e
            )
            if page >= int(body.get("pageCount") or 1):
                break
        return ids

    # The one request path -----------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        endpoint: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Any:
        grant = self.budget.try_acquire()
        if not grant.granted:
            raise RateLimited(
                retry_at=self.clock() + grant.wait_s,
                retry_after_s=grant.wait_s,
                from_platform=False,
            )
        token = self.tokens.token()
        response = self._send(method, path, endpoint, token, params, json_body)
        if response.status_code == 401:
            # The token was revoked or expired early: fetch a new one and retry once.
            self.tokens.invalidate(token)
            token = self.tokens.token()
            response = self._send(method, path, endpoint, token, params, json_body)
        return self._interpret(response, path)

    def _send(
        self,
        method: str,
        path: str,
        endpoint: str,
        token: str,
        params: Mapping[str, str] | None,
        json_body: Any,
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            with self.http.stream(
                method,
                self.api_base_url + path,
                params=params,
                json=json_body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                content = bytearray()
                for chunk in response.iter_bytes():
                    content.extend(chunk)
                    if len(content) > self.max_body_bytes:
                        self._record(
                            endpoint, response.status_code, started, False, response
                        )
                        raise InvalidResponse(
                            f"org {self.org_id}: {method} {path}: body exceeds "
                            f"{self.max_body_bytes} bytes",
                            status=response.status_code,
                            correlation_id=response.headers.get("inin-correlation-id"),
                        )
                response._content = bytes(content)
        except httpx.TimeoutException as exc:
            self._record(endpoint, None, started, True, None)
            raise PlatformPending(
                f"{method} {path} timed out after {time.monotonic() - started:.2f} s",
                timed_out=True,
            ) from exc
        except httpx.HTTPError as exc:
            self._record(endpoint, None, started, False, None)
            raise PlatformUnavailable(
                f"org {self.org_id}: {method} {path} failed: {type(exc).__name__}"
            ) from exc
        self._record(endpoint, response.status_code, started, False, response)
        return response

    def _record(
        self,
        endpoint: str,
        status: int | None,
        started: float,
        timed_out: bool,
        response: httpx.Response | None,
    ) -> None:
        if self.observe is None:
            return
        correlation_id = (
            response.headers.get("inin-correlation-id") if response else None
        )
        self.observe(
            CallRecord(
                endpoint, status, time.monotonic() - started, timed_out, correlation_id
            )
        )

    def _interpret(self, response: httpx.Response, path: str) -> Any:
        status = response.status_code
        correlation_id = response.headers.get("inin-correlation-id")
        if status == 202:
            return self._pending(
                path, "202 Accepted: not indexed yet", False, correlation_id
            )
        if status in (408, 504):
            return self._pending(
                path, f"{status} request timed out", True, correlation_id
            )
        if status == 429:
            self._rate_limited(response, path)
        if 200 <= status < 300:
            return self._json(response, path)

        code, message = _error_fields(response)
        text = (
            f"org {self.org_id}: {path}: {status} {code or ''} {message or ''}".strip()
        )
        if status == 401 or status == 403:
            raise AuthenticationError(
                text, status=status, code=code, correlation_id=correlation_id
            )
        if status == 404:
            raise NotFound(
                text, status=status, code=code, correlation_id=correlation_id
            )
        if status >= 500:
            raise PlatformUnavailable(
                text, status=status, code=code, correlation_id=correlation_id
            )
        raise PlatformError(
            text, status=status, code=code, correlation_id=correlation_id
        )

    def _pending(
        self, path: str, reason: str, timed_out: bool, correlation_id: str | None
    ) -> Any:
        raise PlatformPending(
            f"{path}: {reason}", timed_out=timed_out, correlation_id=correlation_id
        )

    def _rate_limited(self, response: httpx.Response, path: str) -> None:
        header = response.headers.get("Retry-After")
        try:
            retry_after = float(header) if header is not None else DEFAULT_RETRY_AFTER_S
        except ValueError:
            retry_after = DEFAULT_RETRY_AFTER_S
        if not math.isfinite(retry_after):
            retry_after = DEFAULT_RETRY_AFTER_S
        # A nonsensical wait (days) would overflow the pause key; a day is the cap.
        retry_after = min(retry_after, MAX_RETRY_AFTER_S)
        retry_after_s = max(retry_after, 0.0) * self.time_scale
        until = self.budget.pause_for(retry_after_s)
        if (
            self.max_retry_after_s is not None
            and retry_after_s > self.max_retry_after_s
        ):
            self._mark_throttled(retry_after, until, response)
        log.info(
            "org %s: %s: 429, pausing requests for %.1f s (correlation id %s)",
            self.org_id,
            path,
            retry_after_s,
            response.headers.get("inin-correlation-id"),
        )
        raise RateLimited(retry_at=until, retry_after_s=retry_after, from_platform=True)

    def _mark_throttled(
        self, retry_after: float, until: float, response: httpx.Response
    ) -> None:
        """Record that the org must wait past the maximum, once per pause."""
        key = keys.throttled(self.org_id)
        fresh = self.budget.redis.hset(
            key,
            mapping={"retry_after_s": repr(retry_after), "until": repr(until)},
        )
        self.budget.redis.pexpireat(key, int(until * 1000))
        if fresh:
            log.warning(
                "org %s: throttled: the platform asked to wait %.0f s, more than the "
                "%.0f s maximum; no request leaves before then (correlation id %s)",
                self.org_id,
                retry_after,
                self.max_retry_after_s / self.time_scale
                if self.max_retry_after_s
                else 0.0,
                response.headers.get("inin-correlation-id"),
            )
            if self.on_throttled is not None:
                self.on_throttled(self.org_id, retry_after)

    def _json(self, response: httpx.Response, path: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json.loads(response.content)
        except ValueError as exc:
            content_type = response.headers.get("content-type", "")
            raise InvalidResponse(
                f"org {self.org_id}: {path}: the response is not JSON "
                f"(content-type {content_type!r})",
                status=response.status_code,
                correlation_id=response.headers.get("inin-correlation-id"),
            ) from exc


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message")
    return (
        str(code) if code is not None else None,
        str(message)[:300] if message else None,
    )
