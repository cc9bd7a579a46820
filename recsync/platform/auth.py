"""OAuth client credentials per org, with the access token shared through Redis.

Every worker process of the cluster uses the same token for an org. The first one to
find it missing or about to expire takes a short Redis lock and fetches a new one. The
others wait for it briefly, or fetch their own if the lock holder dies. The client
secret stays in process memory, read from the environment variable the manifest
names; it is never logged, put in an exception or written to Redis.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import httpx
import redis

from recsync.errors import AuthenticationError, InvalidResponse, PlatformUnavailable
from recsync.store import keys

log = logging.getLogger(__name__)

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Refresh when less than this share of the token's lifetime is left.
REFRESH_MARGIN_RATIO = 0.1
# After rejected credentials, wait this long (platform seconds) before asking again.
REJECTED_CREDENTIALS_WAIT_S = 60.0


class TokenProvider:
    """Fetches, caches and refreshes one org's access token."""

    def __init__(
        self,
        *,
        org_id: str,
        client: redis.Redis,
        http: httpx.Client,
        token_url: str,
        client_id: str,
        client_secret: str,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.org_id = org_id
        self.redis = client
        self.http = http
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self.time_scale = time_scale
        self.clock = clock
        self._cached: tuple[str, float] | None = None

    @property
    def _rejected_key(self) -> str:
        return keys.token(self.org_id) + ":rejected"

    def __repr__(self) -> str:
        return f"TokenProvider(org_id={self.org_id!r}, token_url={self.token_url!r})"

    def token(self) -> str:
        """Return a valid access token, fetching a new one when needed.

        After the platform rejected the credentials, every call raises
        :class:`AuthenticationError` without a request until
        ``REJECTED_CREDENTIALS_WAIT_S`` (scaled) has passed, so a wrong secret does
        not send a token request for every record.
        """
        # This process's copy first: one Redis read per call is the common cost.
        if self._cached is not None and self._cached[1] > self.clock():
            return self._cached[0]
        rejected = self.redis.get(self._rejected_key)
        if rejected is not None:
            raise AuthenticationError(
                f"org {self.org_id}: the OAuth client credentials were rejected "
                "recently; check the client id and secret in the environment "
                "variables the manifest names",
                status=401,
                code="bad.credentials",
            )
        cached = self.redis.hmget(keys.token(self.org_id), "access_token", "refresh_at")
        access_token, refresh_at = cached
        if access_token and refresh_at and float(refresh_at) > self.clock():
            value = (
                access_token.decode()
                if isinstance(access_token, bytes)
                else access_token
            )
            self._cached = (value, float(refresh_at))
            return value
        return self._refresh(stale=access_token)

    def invalidate(self, rejected_token: str) -> None:
        """Forget the cached token after the platform rejected it with 401."""
        self._cached = None
        current = self.redis.hget(keys.token(self.org_id), "access_token")
        if (
            current is not None
            and (current.decode() if isinstance(current, bytes) else current)
            == rejected_token
        ):
            self.redis.delete(keys.token(self.org_id))

    def _refresh(self, *, stale: object) -> str:
        lock_key = keys.token_lock(self.org_id)
        lock_value = uuid.uuid4().hex
        got_lock = self.redis.set(lock_key, lock_value, nx=True, px=10_000)
        if not got_lock:
            # Another process is fetching; its token is usually there within moments.
            for _ in range(20):
                time.sleep(0.05)
                value = self.redis.hget(keys.token(self.org_id), "access_token")
                if value and value != stale:
                    return value.decode() if isinstance(value, bytes) else value
        try:
            return self._fetch_and_store()
        finally:
            if got_lock:
                # Compare and delete in one step, so an expired lock that another
                # process took since is not deleted.
                self.redis.eval(_RELEASE_LOCK, 1, lock_key, lock_value)

    def _fetch_and_store(self) -> str:
        try:
            response = self.http.post(
                self.token_url,
                data={"grant_type": "client_credentials"},
                auth=(self._client_id, self._client_secret),
            )
        except httpx.HTTPError as exc:
            raise PlatformUnavailable(
                f"org {self.org_id}: token request to {self.token_url} failed: "
                f"{type(exc).__name__}"
            ) from exc
        correlation_id = response.headers.get("inin-correlation-id")
        if response.status_code in (400, 401, 403):
            wait_ms = max(int(REJECTED_CREDENTIALS_WAIT_S * self.time_scale * 1000), 1)
            self.redis.set(self._rejected_key, "1", px=wait_ms)
            log.error(
                "org %s: the platform rejected the OAuth client credentials "
                "(status %d, correlation id %s); no token request for %.0f s",
                self.org_id,
                response.status_code,
                correlation_id,
                wait_ms / 1000,
            )
            raise AuthenticationError(
                f"org {self.org_id}: the platform rejected the OAuth client "
                "credentials; "
                "check the client id and secret in the environment variables the "
                "manifest names",
                status=response.status_code,
                code="bad.credentials",
                correlation_id=correlation_id,
            )
        if response.status_code != 200:
            raise PlatformUnavailable(
                f"org {self.org_id}: token request failed",
                status=response.status_code,
                correlation_id=correlation_id,
            )
        try:
            body = response.json()
            access_token = str(body["access_token"])
            expires_in_s = float(body.get("expires_in", 86400))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidResponse(
                f"org {self.org_id}: the token response is not the expected JSON",
                status=response.status_code,
                correlation_id=correlation_id,
            ) from exc

        lifetime_s = expires_in_s * self.time_scale
        now = self.clock()
        refresh_at = now + lifetime_s * (1.0 - REFRESH_MARGIN_RATIO)
        key = keys.token(self.org_id)
        pipe = self.redis.pipeline()
        pipe.hset(
            key, mapping={"access_token": access_token, "refresh_at": repr(refresh_at)}
        )
        pipe.pexpire(key, max(int(lifetime_s * 1000), 1))
        pipe.execute()
        log.info(
            "org %s: fetched an OAuth token valid for %.0f s", self.org_id, lifetime_s
        )
        self._cached = (access_token, refresh_at)
        return access_token
