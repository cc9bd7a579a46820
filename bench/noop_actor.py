"""A trivial Dramatiq actor: the baseline for recsync's pipeline capacity.

Each message increments one Redis counter, so the benchmark can tell when all of
them ran. ``BENCH_REDIS_URL`` names the Redis that is both broker and counter store.
"""

from __future__ import annotations

import os

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
COUNTER_KEY = "bench:noop:done"
QUEUE = "bench-noop"

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)
_client = redis.Redis.from_url(URL)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(index: int) -> None:
    """Count one message."""
    _client.incr(COUNTER_KEY)
