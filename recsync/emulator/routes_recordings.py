"""Recording routes: metadata, recordings, batch downloads and screen sessions.

Waiting modes of the metadata calls, for a recording created in the primary but
not yet visible in the caller's org:

- ``maxWaitMs=0`` or ``async=true``: 202 with an empty body at once.
- no ``maxWaitMs``: hold until visible (200) or 30 platform seconds (408).
- ``maxWaitMs=N``: hold up to N ms; then 202, or 408 when N reaches 30 s.

``/recordings`` holds up to ``maxWaitMs`` (default 5000) and then returns 202 with
no body while transcoding. ``/recordings/{id}`` never holds and returns 202 with a
``Recording`` whose ``fileState`` is ``UPLOADING``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
from starlette.requests import Request
from starlette.routing import Route

from recsync.emulator.batch import BatchRequestInvalid, parse_batch_body
from recsync.emulator.generation import Recording
from recsync.emulator.guard import LOCK_TIMEOUT_S, Guard, Reply, RequestContext
from recsync.emulator.payloads import (
    full_recording,
    pending_recording,
    recording_metadata,
)
from recsync.emulator.world import Lookup

DEFAULT_RECORDINGS_WAIT_MS = 5000


@attrs.frozen
class WaitMode:
    """How long a request may hold, and the status it returns when the hold runs out."""

    wait_s: float
    timeout_status: int


class BadQuery(ValueError):
    """A query parameter with an invalid value."""


def _wait_mode(request: Request, *, default_ms: int | None) -> WaitMode:
    query = request.query_params
    if query.get("async", "").lower() == "true":
        return WaitMode(0.0, 202)
    raw = query.get("maxWaitMs")
    if raw is None:
        if default_ms is None:
            return WaitMode(LOCK_TIMEOUT_S, 408)
        return WaitMode(min(default_ms / 1000.0, LOCK_TIMEOUT_S), 202)
    try:
        wait_ms = int(raw)
    except ValueError:
        raise BadQuery(
            f"maxWaitMs {raw!r} is not an integer number of milliseconds"
        ) from None
    if wait_ms < 0:
        raise BadQuery(f"maxWaitMs {wait_ms} is negative; use 0 for no wait")
    wait_s = wait_ms / 1000.0
    if default_ms is None and wait_s >= LOCK_TIMEOUT_S:
        return WaitMode(LOCK_TIMEOUT_S, 408)
    return WaitMode(min(wait_s, LOCK_TIMEOUT_S), 202)


async def _hold_until_visible(
    ctx: RequestContext, lookup: Callable[[], Lookup], wait_s: float
) -> Lookup:
    deadline_s = ctx.world.now() + wait_s
    while True:
        found = lookup()
        now_s = ctx.world.now()
        if not found.known or found.visible or now_s >= deadline_s:
            return found
        wake_s = min(deadline_s, found.next_visible_at_s or deadline_s)
        # Sleep a microsecond past visibility so the next lookup finds it visible.
        await ctx.hold(max(wake_s - now_s, 0.0) + 1e-6)


def _not_found(ctx: RequestContext, kind: str, item_id: str) -> Reply:
    return ctx.error(404, f"The requested {kind} was not found", entity_id=item_id)


def _pending(ctx: RequestContext, mode: WaitMode) -> Reply:
    if mode.timeout_status == 408:
        return ctx.error(408, "A request timed out")
    return Reply(202)


def _metadata(ctx: RequestContext, recording: Recording) -> dict[str, Any]:
    world = ctx.world
    conversation = world.conversation(recording.conversation_id)
    return recording_metadata(
        recording, conversation, region=ctx.org.region, times=world.times
    )


async def metadata_list(
    ctx: RequestContext, conversation_id: str, mode: WaitMode
) -> Reply:
    """Return the metadata of every recording of a conversation visible now."""
    world = ctx.world
    found = await _hold_until_visible(
        ctx, lambda: world.lookup_conversation(ctx.org.id, conversation_id), mode.wait_s
    )
    if not found.known:
        return _not_found(ctx, "conversation", conversation_id)
    if not found.visible:
        return _pending(ctx, mode)
    return Reply(200, [_metadata(ctx, recording) for recording in found.visible])


async def metadata_single(
    ctx: RequestContext, conversation_id: str, recording_id: str, mode: WaitMode
) -> Reply:
    """Answer one recording's metadata once it is visible."""
    world = ctx.world
    found = await _hold_until_visible(
        ctx,
        lambda: world.lookup_recording(ctx.org.id, conversation_id, recording_id),
        mode.wait_s,
    )
    if not found.known:
        return _not_found(ctx, "recording", recording_id)
    if not found.visible:
        return _pending(ctx, mode)
    return Reply(200, _metadata(ctx, found.visible[0]))


def _guarded_query(
    handler: Callable[[Request, RequestContext], Any],
) -> Callable[[Request, RequestContext], Any]:
    async def run(request: Request, ctx: RequestContext) -> Reply:
        try:
            reply: Reply = await handler(request, ctx)
        except BadQuery as exc:
            return ctx.error(400, str(exc))
        return reply

    return run


@_guarded_query
async def get_metadata_list(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/conversations/{cid}/recordingmetadata."""
    mode = _wait_mode(request, default_ms=None)
    return await metadata_list(ctx, request.path_params["conversation_id"], mode)


@_guarded_query
async def get_metadata_single(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/conversations/{cid}/recordingmetadata/{rid}."""
    mode = _wait_mode(request, default_ms=None)
    params = request.path_params
    return await metadata_single(
        ctx, params["conversation_id"], params["recording_id"], mode
    )


@_guarded_query
async def get_interactions_recordings(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/interactions/recordings: alias of the metadata calls."""
    conversation_id = request.query_params.get("conversationId")
    if not conversation_id:
        return ctx.error(400, "The conversationId query parameter is required")
    mode = _wait_mode(request, default_ms=None)
    recording_id = request.query_params.get("recordingId")
    if recording_id:
        return await metadata_single(ctx, conversation_id, recording_id, mode)
    return await metadata_list(ctx, conversation_id, mode)


def _full(ctx: RequestContext, recording: Recording) -> dict[str, Any]:
    conversation = ctx.world.conversation(recording.conversation_id)
    return full_recording(
        recording,
        conversation,
        region=ctx.org.region,
        times=ctx.world.times,
        base_url=ctx.base_url,
    )


@_guarded_query
async def get_recordings(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/conversations/{cid}/recordings (``maxWaitMs``, default 5000)."""
    mode = _wait_mode(request, default_ms=DEFAULT_RECORDINGS_WAIT_MS)
    conversation_id = request.path_params["conversation_id"]
    world = ctx.world
    found = await _hold_until_visible(
        ctx, lambda: world.lookup_conversation(ctx.org.id, conversation_id), mode.wait_s
    )
    if not found.known:
        return _not_found(ctx, "conversation", conversation_id)
    if not found.visible:
        return Reply(202)
    return Reply(200, [_full(ctx, recording) for recording in found.visible])


async def get_recording(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/conversations/{cid}/recordings/{rid}: 202 while transcoding."""
    params = request.path_params
    found = ctx.world.lookup_recording(
        ctx.org.id, params["conversation_id"], params["recording_id"]
    )
    if not found.known:
        return _not_found(ctx, "recording", params["recording_id"])
    if found.visible:
        return Reply(200, _full(ctx, found.visible[0]))
    recording = ctx.world.recordings[params["recording_id"]]
    remaining_s = ctx.world.visible_at(ctx.org.id, recording.id) - ctx.world.now()
    return Reply(
        202, pending_recording(recording, remaining_ms=int(remaining_s * 1000))
    )


async def post_batch(request: Request, ctx: RequestContext) -> Reply:
    """POST /api/v2/recording/batchrequests (at most 100 items)."""
    try:
        body = json.loads(await request.body() or b"null")
        items = parse_batch_body(body)
    except ValueError as exc:
        message = (
            str(exc) if isinstance(exc, BatchRequestInvalid) else "The body is not JSON"
        )
        return ctx.error(400, message)
    job = ctx.world.batch.submit(
        org_id=ctx.org.id,
        client_id=ctx.token.client_id,
        items=items,
        now_s=ctx.world.now(),
    )
    return Reply(
        200, {"id": job.id, "selfUri": f"/api/v2/recording/batchrequests/{job.id}"}
    )


async def get_batch(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/recording/batchrequests/{jobId}: only for the submitting client."""
    job_id = request.path_params["job_id"]
    job = ctx.world.batch.get(job_id, client_id=ctx.token.client_id)
    if job is None:
        return _not_found(ctx, "batch request", job_id)
    resolve = ctx.world.batch_rows(ctx.org.id, ctx.base_url)
    document = ctx.world.batch.status_document(
        job, now_s=ctx.world.now(), resolve=resolve
    )
    return Reply(200, document)


async def get_screen_sessions(request: Request, ctx: RequestContext) -> Reply:
    """GET /api/v2/recordings/screensessions/details."""
    return Reply(200, {"count": ctx.world.active_screen_sessions(ctx.org.id)})


def recording_routes(guard: Guard) -> list[Route]:
    """Return the recording routes wrapped in the request pipeline."""
    conversation = "/api/v2/conversations/{conversation_id}"
    table: list[tuple[str, Any, str]] = [
        (f"{conversation}/recordingmetadata", get_metadata_list, "GET"),
        (
            f"{conversation}/recordingmetadata/{{recording_id}}",
            get_metadata_single,
            "GET",
        ),
        ("/api/v2/interactions/recordings", get_interactions_recordings, "GET"),
        (f"{conversation}/recordings", get_recordings, "GET"),
        (f"{conversation}/recordings/{{recording_id}}", get_recording, "GET"),
        ("/api/v2/recording/batchrequests", post_batch, "POST"),
        ("/api/v2/recording/batchrequests/{job_id}", get_batch, "GET"),
        ("/api/v2/recordings/screensessions/details", get_screen_sessions, "GET"),
    ]
    return [
        Route(path, guard.route(f"{method} {path}", handler), methods=[method])
        for path, handler, method in table
    ]
