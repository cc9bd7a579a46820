"""OAuth, notification, user and organization routes."""

from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from recsync.emulator.auth import parse_basic
from recsync.emulator.channels import TopicLimitExceeded, available_topics
from recsync.emulator.guard import (
    Guard,
    Reply,
    RequestContext,
    json_response,
)
from recsync.emulator.notifications import NotificationHub
from recsync.emulator.payloads import error_body
from recsync.emulator.world import World

logger = logging.getLogger(__name__)

MAX_USERS_PAGE_SIZE = 500
DEFAULT_USERS_PAGE_SIZE = 25


def oauth_endpoint(world: World) -> Any:
    """Return the ``POST /oauth/token`` endpoint (client credentials grant)."""

    async def token(request: Request) -> Response:
        form = _form_fields(await request.body())
        grant_type = form.get("grant_type")
        credentials = parse_basic(request.headers.get("authorization"))
        if credentials is None and "client_id" in form:
            credentials = (form["client_id"], form.get("client_secret", ""))

        if grant_type != "client_credentials":
            message = (
                f"grant_type {grant_type!r} is not supported; use client_credentials"
            )
            logger.info("token request rejected: %s", message)
            return _oauth_error(world, 400, "unsupported_grant_type", message)
        issued = world.tokens.issue(*credentials) if credentials else None
        if issued is None:
            client_id = credentials[0] if credentials else None
            logger.info(
                "token request rejected: bad credentials for client %r", client_id
            )
            return _oauth_error(
                world, 401, "invalid_client", "Invalid login credentials."
            )

        issued_token, org = issued
        world.stats.add(org.id, "tokens_issued")
        budget = world.limiter.peek(org.client_id, limit=org.rate_limit_per_minute)
        document = {
            "access_token": issued_token.value,
            "token_type": "bearer",
            "expires_in": math.floor(org.token_lifetime_s),
        }
        return json_response(200, document, context_id=str(uuid.uuid4()), budget=budget)

    return token


def _oauth_error(world: World, status: int, error: str, message: str) -> Response:
    # OAuth clients read "error" and "error_description"; platform clients read
    # "code": the body carries both.
    code = "bad.credentials" if status == 401 else None
    document = error_body(status, message, context_id=str(uuid.uuid4()), code=code)
    document.update(error=error, description=message, error_description=message)
    return json_response(
        status,
        document,
        context_id=document["contextId"],
        budget=world.limiter.anonymous(),
    )


def _form_fields(body: bytes) -> dict[str, str]:
    # The token request is application/x-www-form-urlencoded; parsing it with the
    # standard library avoids Starlette's optional python-multipart dependency.
    pairs = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return dict(pairs)


def _channel_or_404(ctx: RequestContext, hub: NotificationHub, request: Request) -> Any:
    channel_id = request.path_params["channel_id"]
    channel = hub.registry.get(channel_id, client_id=ctx.token.client_id)
    if channel is None:
        return ctx.error(
            404, "The requested channel was not found", entity_id=channel_id
        )
    return channel


def notification_routes(guard: Guard, hub: NotificationHub) -> list[Route]:
    """Return the notification routes wrapped in the request pipeline."""
    world = guard.world

    def channel_document(ctx: RequestContext, channel_id: str) -> dict[str, Any]:
        channel = hub.registry.get(channel_id)
        assert channel is not None
        ws_base = ctx.base_url.replace("http://", "ws://", 1).replace(
            "https://", "wss://", 1
        )
        return channel.document(
            f"{ws_base}/channels/{channel.id}", world.times.iso(channel.expires_at_s)
        )

    async def create_channel(request: Request, ctx: RequestContext) -> Reply:
        channel = hub.create_channel(org_id=ctx.org.id, client_id=ctx.token.client_id)
        return Reply(200, channel_document(ctx, channel.id))

    async def list_channels(request: Request, ctx: RequestContext) -> Reply:
        channels = hub.registry.of_client(ctx.token.client_id)
        return Reply(200, {"entities": [channel_document(ctx, c.id) for c in channels]})

    async def head_channel(request: Request, ctx: RequestContext) -> Reply:
        found = _channel_or_404(ctx, hub, request)
        return found if isinstance(found, Reply) else Reply(200)

    async def subscriptions(request: Request, ctx: RequestContext) -> Reply:
        found = _channel_or_404(ctx, hub, request)
        if isinstance(found, Reply):
            return found
        if request.method == "GET":
            return Reply(200, {"entities": hub.registry.listing(found)})
        if request.method == "DELETE":
            found.topics = {}
            return Reply(204)
        topics = _topics_of(await request.body())
        if topics is None:
            return ctx.error(400, 'The body must be a JSON array of {"id": "<topic>"}')
        try:
            entities = hub.registry.subscribe(
                found, topics, replace=request.method == "PUT", now_s=world.now()
            )
        except TopicLimitExceeded as exc:
            return ctx.error(400, str(exc))
        return Reply(200, {"entities": entities})

    async def topics(request: Request, ctx: RequestContext) -> Reply:
        return Reply(200, {"entities": available_topics()})

    base = "/api/v2/notifications"
    channel = f"{base}/channels/{{channel_id}}"
    return [
        Route(
            f"{base}/channels",
            guard.route(f"POST {base}/channels", create_channel),
            methods=["POST"],
        ),
        Route(
            f"{base}/channels",
            guard.route(f"GET {base}/channels", list_channels),
            methods=["GET"],
        ),
        Route(channel, guard.route(f"HEAD {channel}", head_channel), methods=["HEAD"]),
        *[
            Route(
                f"{channel}/subscriptions",
                guard.route(f"{method} {channel}/subscriptions", subscriptions),
                methods=[method],
            )
            for method in ("GET", "POST", "PUT", "DELETE")
        ],
        Route(
            f"{base}/availabletopics",
            guard.route(f"GET {base}/availabletopics", topics),
            methods=["GET"],
        ),
    ]


def _topics_of(raw: bytes) -> list[str] | None:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None
    if not isinstance(body, list):
        return None
    topics = []
    for item in body:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return None
        topics.append(item["id"])
    return topics


def organization_routes(guard: Guard) -> list[Route]:
    """Return the user, limit and organization routes."""
    world = guard.world

    async def users(request: Request, ctx: RequestContext) -> Reply:
        try:
            page_size = int(
                request.query_params.get("pageSize", DEFAULT_USERS_PAGE_SIZE)
            )
            page_number = int(request.query_params.get("pageNumber", 1))
        except ValueError:
            return ctx.error(400, "pageSize and pageNumber must be integers")
        if not 1 <= page_size <= MAX_USERS_PAGE_SIZE or page_number < 1:
            message = (
                f"pageSize must be 1 to {MAX_USERS_PAGE_SIZE} and pageNumber at least 1"
            )
            return ctx.error(400, message)
        everyone = world.plan.users
        start = (page_number - 1) * page_size
        page = everyone[start : start + page_size]
        page_count = max(1, math.ceil(len(everyone) / page_size))
        page_uri = f"/api/v2/users?pageSize={page_size}&pageNumber"
        entities = [
            {
                "id": user.id,
                "name": user.name,
                "email": user.email,
                "username": user.email,
                "state": "active",
                "version": 1,
                "selfUri": f"/api/v2/users/{user.id}",
            }
            for user in page
        ]
        return Reply(
            200,
            {
                "entities": entities,
                "pageSize": page_size,
                "pageNumber": page_number,
                "total": len(everyone),
                "pageCount": page_count,
                "firstUri": f"{page_uri}=1",
                "lastUri": f"{page_uri}={page_count}",
                "selfUri": f"{page_uri}={page_number}",
            },
        )

    async def limits(request: Request, ctx: RequestContext) -> Reply:
        namespace = request.path_params["namespace"]
        if namespace != "platform.api":
            return ctx.error(404, f"The limits namespace {namespace} was not found")
        per_minute = ctx.org.rate_limit_per_minute
        entities = [
            {
                "key": "client.credentials.token.rate.per.minute",
                "namespace": namespace,
                "value": per_minute,
            },
            {
                "key": "token.rate.per.minute",
                "namespace": namespace,
                "value": per_minute,
            },
        ]
        return Reply(200, {"entities": entities})

    async def organization(request: Request, ctx: RequestContext) -> Reply:
        org = ctx.org
        return Reply(
            200,
            {
                "id": org.platform_org_id,
                "name": org.name,
                "thirdPartyOrgName": org.id,
                "domain": org.id,
                "state": "active",
                "selfUri": "/api/v2/organizations/me",
            },
        )

    limits_path = "/api/v2/organizations/limits/namespaces/{namespace}"
    return [
        Route(
            "/api/v2/users", guard.route("GET /api/v2/users", users), methods=["GET"]
        ),
        Route(limits_path, guard.route(f"GET {limits_path}", limits), methods=["GET"]),
        Route(
            "/api/v2/organizations/me",
            guard.route("GET /api/v2/organizations/me", organization),
            methods=["GET"],
        ),
    ]
