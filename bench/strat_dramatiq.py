"""Strategy (c): a plain Dramatiq actor with the Retries middleware on Redis.

Backoff runs from 5 s to 30 s in platform time, so the millisecond values passed
to Dramatiq are multiplied by the time scale.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.common import NotReady, PlatformClient, Settings

QUEUE = "bench"
MIN_BACKOFF_MS = 5000
MAX_BACKOFF_MS = 30000

settings = Settings.from_environment()
broker = RedisBroker(url=settings.redis_url)
dramatiq.set_broker(broker)
_client: PlatformClient | None = None


def _platform() -> PlatformClient:
    global _client
    if _client is None:
        _client = PlatformClient(settings)
    return _client


@dramatiq.actor(
    queue_name=QUEUE,
    max_retries=settings.max_retries,
    min_backoff=int(MIN_BACKOFF_MS * settings.time_scale),
    max_backoff=int(MAX_BACKOFF_MS * settings.time_scale),
    retry_when=lambda retries, exc: (
        isinstance(exc, NotReady) and retries < settings.max_retries
    ),
)
def fetch_plain(org_id: str, conversation_id: str, recording_id: str) -> None:
    """Fetch one record's metadata; the Retries middleware retries on NotReady."""
    _platform().fetch(org_id, conversation_id, recording_id)


def announce(org_id: str, conversation_id: str, recording_id: str) -> None:
    """Send one record to the Dramatiq worker."""
    fetch_plain.send(org_id, conversation_id, recording_id)
