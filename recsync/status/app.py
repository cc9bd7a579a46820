"""Starlette app of the status service: JSON reads, a change feed, metrics and a page.

Every route reads Redis through :class:`StatusReader` and never calls the
platform, so the host's UI never waits on Genesys Cloud. Each org has its own bearer
token, and a token opens only its own org's routes.

The change feed is written as server-sent events by hand because the format is a few
lines of text and Starlette's ``StreamingResponse`` carries it. Blocking ``XREAD``
calls run in worker threads (``anyio.to_thread``), bounded by ``max_streams``.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from importlib import resources
from typing import Any

import anyio
import attrs
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from recsync.status.metrics import render_metrics
from recsync.status.reads import StatusReader, check_stream_id
from recsync.store import State, keys

log = logging.getLogger(__name__)

_STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
}
_PAGE_HEADERS = {
    # The page builds every element with textContent and loads only its own script,
    # so a stricter policy costs nothing and stops injected markup from running.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
        "frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@attrs.frozen
class StreamLimits:
    """Bounds of one change feed connection."""

    block_ms: int = 5000
    """Maximum wait of one blocking XREAD, in ms.

    A keep-alive comment follows each empty read.
    """
    max_stream_s: float = 300.0
    """Maximum connection lifetime.

    The client then reconnects and resumes with ``Last-Event-ID``.
    """
    batch: int = 100
    """Changes read from Redis per XREAD."""
    max_streams: int = 16
    """Maximum open change feeds per process.

    Further requests get 503 and ``Retry-After``.
    """


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Auth:
    """Maps bearer tokens to org ids, comparing in constant time."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        for org_id, token in tokens.items():
            keys.check_org_id(org_id)
            if not token:
                raise ValueError(
                    f"the status token of org {org_id!r} is empty; set a non-empty "
                    "token or leave the org out of the token map"
                )
        self.tokens = dict(tokens)

    def org_of(self, token: str | None) -> str | None:
        if not token:
            return None
        found = None
        presented = token.encode()
        # Compare with every token so the time taken does not reveal which matched.
        for org_id, expected in self.tokens.items():
            if hmac.compare_digest(presented, expected.encode()):
                found = org_id
        return found


def _bearer(request: Request, *, allow_query: bool = False) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return request.query_params.get("access_token") or None
    return None


MAX_ERROR_CHARS = 300


def _clip(message: str) -> str:
    """Shorten a message that echoes a huge input back."""
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return message[:MAX_ERROR_CHARS] + f"... ({len(message)} characters)"


def create_status_app(
    *,
    reader: StatusReader,
    tokens: dict[str, str],
    allow_unauthenticated: bool = False,
    limits: StreamLimits | None = None,
) -> Starlette:
    """Build the status service app.

    Args:
        reader: The read path over Redis.
        tokens: Bearer token of each org id. A token opens only its org's routes.
        allow_unauthenticated: Serve ``/``, its script and ``/metrics`` without a
            token. Org routes always need their org's token.
        limits: Bounds of change feed connections.

    Raises:
        InvalidId: an org id in ``tokens`` is invalid.
        ValueError: a token is empty.
    """
    auth = _Auth(tokens)
    stream_limits = limits or StreamLimits()
    open_streams = [0]

    def org_request(
        request: Request, *, allow_query: bool = False
    ) -> tuple[str, str | None]:
        """Authenticate and authorize a request for ``/orgs/{org}/...``."""
        token_org = auth.org_of(_bearer(request, allow_query=allow_query))
        if token_org is None:
            raise _HTTPError(
                401,
                "missing or invalid bearer token; send 'Authorization: Bearer "
                "<token>' with the org's status token",
            )
        org_id = request.path_params["org"]
        try:
            keys.check_org_id(org_id)
        except keys.InvalidId as exc:
            raise _HTTPError(400, str(exc)) from None
        if org_id != token_org:
            raise _HTTPError(403, f"the token does not grant access to org {org_id!r}")
        recording_id = request.path_params.get("id")
        if recording_id is not None:
            try:
                keys.check_entity_id(recording_id)
            except keys.InvalidId as exc:
                raise _HTTPError(400, str(exc)) from None
        return org_id, recording_id

    def check_open(request: Request) -> None:
        if allow_unauthenticated:
            return
        if auth.org_of(_bearer(request)) is None:
            raise _HTTPError(
                401,
                "missing or invalid bearer token; send 'Authorization: Bearer "
                "<token>' with any org's status token",
            )

    def guarded(
        handler: Callable[[Request], Any],
    ) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except _HTTPError as exc:
                log.info(
                    "rejected %s %s with %d: %s",
                    request.method,
                    request.url.path,
                    exc.status,
                    exc.message,
                )
                return _error(exc.status, _clip(exc.message))
            except redis.RedisError as exc:
                log.error(
                    "%s %s: Redis is unavailable: %s",
                    request.method,
                    request.url.path,
                    exc,
                )
                return _error(503, "record state is unavailable: Redis did not respond")
            return response

        return endpoint

    @guarded
    async def healthz(request: Request) -> Response:
        try:
            await anyio.to_thread.run_sync(reader.redis.ping)
        except redis.RedisError as exc:
            log.warning("health check failed: Redis ping raised %r", exc)
            return JSONResponse({"status": "unavailable", "redis": "down"}, 503)
        return JSONResponse({"status": "ok", "redis": "up"})

    @guarded
    async def metrics(request: Request) -> Response:
        check_open(request)
        body = await anyio.to_thread.run_sync(render_metrics, reader)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @guarded
    async def recording(request: Request) -> Response:
        org_id, recording_id = org_request(request)
        assert recording_id is not None
        data = await anyio.to_thread.run_sync(reader.recording, org_id, recording_id)
        if data is None:
            raise _HTTPError(
                404,
                f"recording {recording_id!r} is not tracked in org {org_id!r}; "
                "the host must call track() for it first",
            )
        return JSONResponse(data)

    @guarded
    async def recordings(request: Request) -> Response:
        org_id, _ = org_request(request)
        params = request.query_params
        state = params.get("state")
        if state is None:
            raise _HTTPError(
                400,
                "the state query parameter is missing; use one of: "
                + ", ".join(str(s) for s in State),
            )
        cursor = params.get("cursor") or None
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            raise _HTTPError(
                400, f"limit {params.get('limit')!r} is not an integer"
            ) from None
        try:
            items, next_cursor = await anyio.to_thread.run_sync(
                reader.recordings, org_id, state, cursor, limit
            )
        except ValueError as exc:
            raise _HTTPError(400, str(exc)) from None
        return JSONResponse({"items": items, "next_cursor": next_cursor})

    @guarded
    async def overview(request: Request) -> Response:
        org_id, _ = org_request(request)
        data = await anyio.to_thread.run_sync(reader.org_overview, org_id)
        return JSONResponse(data)

    @guarded
    async def changes(request: Request) -> Response:
        org_id, _ = org_request(request, allow_query=True)
        after = request.headers.get("last-event-id") or request.query_params.get(
            "after"
        )
        try:
            after_id = check_stream_id(after) if after else None
        except ValueError as exc:
            raise _HTTPError(400, str(exc)) from None
        # NOTE: a feed counts once its generator starts, so a burst of concurrent
        # requests can open a few more than max_streams.
        if open_streams[0] >= stream_limits.max_streams:
            return JSONResponse(
                {"error": "too many open change feeds; retry later"},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        if after_id is None:
            after_id = await anyio.to_thread.run_sync(reader.last_change_id, org_id)
        return StreamingResponse(
            _feed(reader, org_id, after_id, stream_limits, open_streams),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @guarded
    async def whoami(request: Request) -> Response:
        org_id = auth.org_of(_bearer(request))
        if org_id is None:
            raise _HTTPError(401, "missing or invalid bearer token")
        return JSONResponse({"org_id": org_id})

    # The page and its script hold no org data, and a browser cannot send a bearer
    # header when it opens a URL, so they are served without a token; the page then
    # sends the token from its URL fragment on every data request.
    @guarded
    async def page(request: Request) -> Response:
        return _static("index.html")

    @guarded
    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_FILES:
            raise _HTTPError(404, f"no static file {name!r}")
        return _static(name)

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/whoami", whoami),
        Route("/orgs/{org}/recordings/{id}", recording),
        Route("/orgs/{org}/recordings", recordings),
        Route("/orgs/{org}/overview", overview),
        Route("/orgs/{org}/changes", changes),
        Route("/", page),
        Route("/static/{name}", static),
    ]
    return Starlette(routes=routes)


def _static(name: str) -> Response:
    body = resources.files("recsync.status").joinpath(f"static/{name}").read_bytes()
    return Response(body, media_type=_STATIC_FILES[name], headers=_PAGE_HEADERS)


def _sse(change: dict[str, Any]) -> str:
    data = json.dumps(change, separators=(",", ":"))
    return f"id: {change['id']}\nevent: change\ndata: {data}\n\n"


async def _feed(
    reader: StatusReader,
    org_id: str,
    after_id: str,
    limits: StreamLimits,
    open_streams: list[int],
) -> AsyncIterator[str]:
    open_streams[0] += 1
    log.info("change feed opened for org %s after %s", org_id, after_id)
    ends_at = time.monotonic() + limits.max_stream_s
    try:
        yield "retry: 1000\n\n"
        while time.monotonic() < ends_at:
            read = functools.partial(
                reader.changes, org_id, after_id, limits.batch, block_ms=limits.block_ms
            )
            batch = await anyio.to_thread.run_sync(read)
            if not batch:
                yield ": keep-alive\n\n"
                continue
            for change in batch:
                after_id = change["id"]
                yield _sse(change)
    finally:
        open_streams[0] -= 1
        log.info("change feed closed for org %s at %s", org_id, after_id)
