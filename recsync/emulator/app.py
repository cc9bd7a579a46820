"""The emulator's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from recsync.emulator.admin import admin_routes
from recsync.emulator.clock import Clock, ScaledClock
from recsync.emulator.guard import Guard, error_response
from recsync.emulator.notifications import NotificationHub
from recsync.emulator.routes_platform import (
    notification_routes,
    oauth_endpoint,
    organization_routes,
)
from recsync.emulator.routes_recordings import recording_routes
from recsync.emulator.scenario import Scenario
from recsync.emulator.scheduler import Scheduler
from recsync.emulator.world import World

logger = logging.getLogger(__name__)


class EmulatorApp(Starlette):
    """Starlette app with the emulator's world, hub and scheduler attached."""

    world: World
    hub: NotificationHub
    scheduler: Scheduler | None
    loop: asyncio.AbstractEventLoop | None


def create_app(
    scenario: Scenario | World, *, time_scale: float = 1.0, clock: Clock | None = None
) -> EmulatorApp:
    """Build the emulator app for a scenario (or an existing world).

    The scheduler that publishes events starts with the app's lifespan.
    """
    if isinstance(scenario, World):
        world = scenario
    else:
        world = World(scenario, clock=clock or ScaledClock(time_scale=time_scale))
    hub = NotificationHub(world)
    guard = Guard(world)
    holder: dict[str, Scheduler] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        scheduler = Scheduler(world, hub)
        holder["scheduler"] = scheduler
        emulator.scheduler = scheduler
        emulator.loop = asyncio.get_running_loop()
        task = asyncio.create_task(scheduler.run())
        logger.info(
            "emulator started: scenario=%s orgs=%s",
            world.scenario.name,
            list(world.orgs),
        )
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            hub.drop_all_sockets()
            logger.info("emulator stopped")

    async def channel_socket(websocket: WebSocket) -> None:
        channel = hub.registry.get(websocket.path_params["channel_id"])
        if channel is None:
            await websocket.send_denial_response(Response(status_code=404))
            return
        await websocket.accept()
        connection = hub.attach(channel, websocket)
        try:
            await connection.run()
        finally:
            hub.detach(connection)

    oauth = oauth_endpoint(world)
    routes = [
        Route("/oauth/token", oauth, methods=["POST"]),
        Route("/login/oauth/token", oauth, methods=["POST"]),
        *recording_routes(guard),
        *notification_routes(guard, hub),
        *organization_routes(guard),
        *admin_routes(hub, lambda: holder.get("scheduler")),
        WebSocketRoute("/channels/{channel_id}", channel_socket),
    ]
    emulator = EmulatorApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error_handler(world)},
    )
    emulator.world = world
    emulator.hub = hub
    emulator.scheduler = None
    emulator.loop = None
    return emulator


def http_error_handler(world: World) -> Any:
    """Return a handler that sends the platform's error body for routing errors."""

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        messages = {
            404: "The requested resource was not found",
            405: "The method is not allowed",
        }
        return error_response(
            exc.status_code,
            messages.get(exc.status_code, str(exc.detail)),
            context_id=str(uuid.uuid4()),
            budget=world.limiter.anonymous(),
        )

    return handle
