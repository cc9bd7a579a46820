"""Observation and control routes under ``/_emulator/``: no auth, loopback only."""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from recsync.emulator.loading import parse_fault_mapping
from recsync.emulator.notifications import NotificationHub
from recsync.emulator.scenario import ONE_SHOT_FAULTS, ScenarioError
from recsync.emulator.scheduler import Scheduler

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]


def _is_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        # Starlette's test client reports "testclient"; treat names as local.
        return host in ("localhost", "testclient")


def _loopback_only(endpoint: Endpoint) -> Endpoint:
    async def checked(request: Request) -> Response:
        if not _is_loopback(request):
            return JSONResponse(
                {"message": "The emulator's admin routes answer loopback clients only"},
                status_code=403,
            )
        return await endpoint(request)

    return checked


def fault_document(fault: Any) -> dict[str, Any]:
    """Return a fault as JSON-ready data (an open window end becomes null)."""
    data = attrs.asdict(fault)
    if data["end_s"] == float("inf"):
        data["end_s"] = None
    return data


def admin_routes(
    hub: NotificationHub, scheduler_of: Callable[[], Scheduler | None]
) -> list[Route]:
    """Return the ``/_emulator/`` routes."""
    world = hub.world

    async def timeline(request: Request) -> Response:
        return JSONResponse(world.timeline())

    async def stats(request: Request) -> Response:
        return JSONResponse(world.stats_report())

    async def clock(request: Request) -> Response:
        return JSONResponse(
            {"now_s": world.now(), "time_scale": world.clock.time_scale}
        )

    async def list_faults(request: Request) -> Response:
        return JSONResponse([fault_document(fault) for fault in world.faults.all()])

    async def add_fault(request: Request) -> Response:
        try:
            raw = json.loads(await request.body() or b"null")
        except ValueError:
            return JSONResponse({"message": "The body is not JSON"}, status_code=400)
        if isinstance(raw, dict) and raw.get("kind") in ONE_SHOT_FAULTS:
            raw.setdefault("at_s", world.now())
        try:
            fault = parse_fault_mapping(raw, org_ids=set(world.orgs))
        except ScenarioError as exc:
            return JSONResponse(
                {"message": str(exc), "problems": exc.problems}, status_code=400
            )
        world.add_fault(fault)
        scheduler = scheduler_of()
        if scheduler is not None:
            scheduler.wake()
        return JSONResponse(fault_document(fault), status_code=201)

    async def drop_sockets(request: Request) -> Response:
        return JSONResponse({"dropped": hub.drop_all_sockets()})

    async def media(request: Request) -> Response:
        name = request.path_params["name"]
        recording_id = name.split(".", 1)[0]
        if recording_id not in world.recordings:
            return JSONResponse({"message": f"No media for {name}"}, status_code=404)
        # NOTE: the media is a placeholder of a few bytes, not playable audio or video.
        return Response(
            f"emulated media of recording {recording_id}\n".encode(),
            media_type="application/octet-stream",
        )

    table: list[tuple[str, Endpoint, str]] = [
        ("/_emulator/timeline", timeline, "GET"),
        ("/_emulator/stats", stats, "GET"),
        ("/_emulator/clock", clock, "GET"),
        ("/_emulator/faults", list_faults, "GET"),
        ("/_emulator/faults", add_fault, "POST"),
        ("/_emulator/sockets/drop", drop_sockets, "POST"),
        ("/_emulator/media/{name}", media, "GET"),
    ]
    return [
        Route(path, _loopback_only(endpoint), methods=[method])
        for path, endpoint, method in table
    ]
