"""The pipeline every ``/api/v2`` request goes through before and after its route.

Order: bearer token (401), rate limit and the ``rate_limit`` fault (429), the
``server_error`` and ``timeout_ratio`` faults, the ``slow`` delay, the route itself,
then the ``invalid_body`` fault on successful JSON responses. Every response
carries
``inin-correlation-id`` and the ``inin-ratelimit-*`` headers; every error carries
the platform's error document whose ``contextId`` equals the correlation id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import Response

from recsync.emulator.auth import Token, TokenRejected
from recsync.emulator.faults import RequestFault, corrupt_body
from recsync.emulator.payloads import error_body
from recsync.emulator.ratelimit import Budget
from recsync.emulator.scenario import OrgSpec
from recsync.emulator.world import World

logger = logging.getLogger(__name__)

# The platform gives up on a request that waits for a cross-region lock after 30 s.
LOCK_TIMEOUT_S = 30.0


@attrs.frozen
class Reply:
    """Result of a route: a status and a JSON document (None for no body)."""

    status: int
    document: Any = None
    headers: dict[str, str] = attrs.field(factory=dict)
    # Set by the invalid_body fault: how to spoil the document when rendering.
    invalid_body: str | None = None


@attrs.frozen
class RequestContext:
    """The caller of one API request: its org, token and correlation id."""

    world: World
    org: OrgSpec
    token: Token
    context_id: str
    base_url: str

    def error(self, status: int, message: str, **fields: Any) -> Reply:
        """Build an error reply carrying this request's correlation id."""
        return Reply(
            status, error_body(status, message, context_id=self.context_id, **fields)
        )

    async def hold(self, duration_s: float) -> None:
        """Wait on the platform clock, counting the time as held."""
        if duration_s <= 0:
            return
        started_s = self.world.now()
        try:
            await self.world.clock.sleep(duration_s)
        finally:
            self.world.stats.add(self.org.id, "held_s", self.world.now() - started_s)


Handler = Callable[[Request, RequestContext], Awaitable[Reply]]


def base_url_of(request: Request) -> str:
    """Return ``http://host:port`` of the request, without a trailing slash."""
    return str(request.base_url).rstrip("/")


def json_response(
    status: int, document: Any, *, context_id: str, budget: Budget | None
) -> Response:
    """Build a response with the platform's headers; None means an empty body."""
    headers = {"inin-correlation-id": context_id}
    if budget is not None:
        headers.update(budget.headers())
    if document is None:
        return Response(status_code=status, headers=headers)
    body = json.dumps(document).encode()
    return Response(
        body, status_code=status, headers=headers, media_type="application/json"
    )


def error_response(
    status: int,
    message: str,
    *,
    context_id: str,
    budget: Budget | None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build an error response with the platform's error document."""
    document = error_body(status, message, context_id=context_id, code=code)
    response = json_response(status, document, context_id=context_id, budget=budget)
    response.headers.update(headers or {})
    return response


class Guard:
    """Wraps route handlers with authentication, limits, faults and counting."""

    def __init__(self, world: World) -> None:
        self.world = world

    def route(
        self, name: str, handler: Handler
    ) -> Callable[[Request], Awaitable[Response]]:
        """Return an endpoint that runs ``handler`` inside the pipeline."""

        async def endpoint(request: Request) -> Response:
            return await self.handle(request, name, handler)

        return endpoint

    async def handle(self, request: Request, name: str, handler: Handler) -> Response:
        """Run one request through the pipeline."""
        context_id = str(uuid.uuid4())
        world = self.world
        try:
            token = world.tokens.check(request.headers.get("authorization"))
        except TokenRejected as exc:
            logger.debug("%s rejected: %s (contextId=%s)", name, exc.code, context_id)
            return error_response(
                401,
                exc.message,
                context_id=context_id,
                budget=world.limiter.anonymous(),
                code=exc.code,
            )
        org = world.orgs[token.org_id]
        ctx = RequestContext(
            world=world,
            org=org,
            token=token,
            context_id=context_id,
            base_url=base_url_of(request),
        )
        budget = world.limiter.take(token.client_id, limit=org.rate_limit_per_minute)
        reply = await self._run(request, ctx, handler, budget)
        world.stats.request(org.id, name, reply.status)
        if reply.status >= 400:
            logger.debug(
                "%s for org %s: %d (contextId=%s)",
                name,
                org.id,
                reply.status,
                context_id,
            )
        return self._render(reply, ctx, budget, request)

    async def _run(
        self, request: Request, ctx: RequestContext, handler: Handler, budget: Budget
    ) -> Reply:
        # A spent budget returns 429 before any fault is rolled, so faults with a
        # count are not used up by requests that the budget rejects anyway.
        if budget.allowed:
            fault = self.world.faults.for_request(ctx.org.id, self.world.now())
            retry_after_s = fault.rate_limit_retry_after_s
            if retry_after_s is not None:
                # Counted apart, so a client's own overuse can be told from faults.
                self.world.stats.add(ctx.org.id, "injected_429")
        else:
            fault = RequestFault()
            retry_after_s = budget.reset_s
        if retry_after_s is not None:
            message = (
                "Rate limit exceeded the maximum. "
                f"Retry the request in [{retry_after_s}] seconds"
            )
            reply = ctx.error(429, message, limit=ctx.org.rate_limit_per_minute)
            return attrs.evolve(reply, headers={"Retry-After": str(retry_after_s)})
        if fault.server_error is not None:
            error = fault.server_error
            return self._server_error(ctx, error.status, error.retry_after_s)
        if fault.time_out:
            await ctx.hold(LOCK_TIMEOUT_S)
            return ctx.error(408, "A request timed out")
        await ctx.hold(fault.delay_ms / 1000.0)
        reply = await handler(request, ctx)
        if (
            fault.invalid_body is not None
            and reply.status == 200
            and reply.document is not None
        ):
            return attrs.evolve(reply, invalid_body=fault.invalid_body)
        return reply

    def _server_error(
        self, ctx: RequestContext, status: int, retry_after_s: int | None
    ) -> Reply:
        messages = {
            500: "The server encountered an unexpected error",
            502: "The gateway received an invalid response",
            503: "The service is currently unavailable",
            504: "The request timed out upstream",
        }
        reply = ctx.error(status, messages[status])
        if retry_after_s is not None:
            return attrs.evolve(reply, headers={"Retry-After": str(retry_after_s)})
        return reply

    def _render(
        self, reply: Reply, ctx: RequestContext, budget: Budget, request: Request
    ) -> Response:
        context_id = ctx.context_id
        if request.method == "HEAD":
            response = json_response(
                reply.status, None, context_id=context_id, budget=budget
            )
        elif reply.invalid_body is not None:
            body, media_type = corrupt_body(reply.document, reply.invalid_body)
            response = Response(body, status_code=reply.status, media_type=media_type)
            response.headers.update(
                {"inin-correlation-id": context_id, **budget.headers()}
            )
        else:
            response = json_response(
                reply.status, reply.document, context_id=context_id, budget=budget
            )
        response.headers.update(reply.headers)
        return response
