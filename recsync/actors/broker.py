"""Dramatiq broker setup for recsync's workers.

Dramatiq binds actors to the global broker when they are declared, so the broker must
exist before ``recsync.actors`` is imported. :func:`install_broker` sets it explicitly
(the demo and tests); otherwise :func:`broker_from_environment` builds one from
``RECSYNC_BROKER_URL``.

The Redis broker's defaults recover a killed worker's messages only after its
heartbeat times out and a random maintenance pass runs (0.1 % of calls). recsync
shortens the heartbeat timeout and raises the maintenance chance, and the store's
reconciler re-sends whatever is still owed, so recovery does not depend on either.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit, urlunsplit

import dramatiq
from dramatiq.brokers.stub import StubBroker

log = logging.getLogger(__name__)

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
# Dramatiq's Redis defaults: 60 s heartbeat timeout, maintenance on 0.1 % of calls.
REDIS_HEARTBEAT_TIMEOUT_MS = 15_000
REDIS_MAINTENANCE_CHANCE = 50_000  # out of a million: 5 % of broker calls

_installed: dramatiq.Broker | None = None


def make_broker(url: str) -> dramatiq.Broker:
    """Build a broker from a URL: ``redis://``, ``rediss://``, ``amqp://`` or ``stub://``."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        return RedisBroker(
            url=url,
            heartbeat_timeout=REDIS_HEARTBEAT_TIMEOUT_MS,
            maintenance_chance=REDIS_MAINTENANCE_CHANCE,
        )
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # Publisher confirms are off by default in Dramatiq; without them a message
        # can be lost between the client and the server.
        return RabbitmqBroker(url=url, confirm_delivery=True)
    if url.startswith("stub://"):
        return StubBroker()
    raise ValueError(
        f"broker URL {redact_url(url)!r} is not supported; use redis://HOST:PORT/DB "
        "or amqp://USER:PASSWORD@HOST:PORT/"
    )


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def install_broker(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Make ``broker`` the one recsync's actors are declared on."""
    global _installed
    _installed = broker
    dramatiq.set_broker(broker)
    return broker


def broker_from_environment() -> dramatiq.Broker:
    """Return the installed broker, or build one from ``RECSYNC_BROKER_URL``."""
    if _installed is not None:
        return _installed
    url = os.environ.get("RECSYNC_BROKER_URL", DEFAULT_BROKER_URL)
    return install_broker(make_broker(url))
