"""Strategy (b): a Celery task with exponential retry backoff on the same Redis.

The worker runs as ``celery -A bench.strat_celery worker --pool threads -c 8``.
Celery computes backoff in whole seconds (``retry_backoff=5``, ``retry_backoff_max
=30``, full jitter), so :class:`ScaledTask` multiplies each countdown by the time
scale to keep the backoff in platform seconds like the emulator.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task

from bench.common import NotReady, PlatformClient, Settings

settings = Settings.from_environment()
app = Celery("bench_celery", broker=settings.redis_url)
app.conf.update(
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_client: PlatformClient | None = None


def _platform() -> PlatformClient:
    global _client
    if _client is None:
        _client = PlatformClient(settings)
    return _client


class ScaledTask(Task):
    """Task whose retry countdown is in platform seconds."""

    def retry(self, *args: Any, countdown: float | None = None, **kwargs: Any) -> Any:
        if countdown is not None:
            countdown = countdown * settings.time_scale
        return super().retry(*args, countdown=countdown, **kwargs)


@app.task(
    name="bench.fetch",
    base=ScaledTask,
    autoretry_for=(NotReady,),
    retry_backoff=5,
    retry_backoff_max=30,
    retry_jitter=True,
    max_retries=settings.max_retries,
)
def fetch(org_id: str, conversation_id: str, recording_id: str) -> None:
    """Fetch one record's metadata; Celery retries on NotReady."""
    _platform().fetch(org_id, conversation_id, recording_id)


def announce(org_id: str, conversation_id: str, recording_id: str) -> None:
    """Send one record to the Celery worker."""
    fetch.delay(org_id, conversation_id, recording_id)
