"""One breaker shared by separate worker processes through a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import RedisServer

# Each process builds its own breaker on the same Redis key, with a fixed clock so
# the outcome does not depend on how fast the processes start.
SCRIPT = """
import json, sys
import redis
from recsync.manifest.models import BreakerPolicy
from recsync.resilience.breaker import CircuitBreaker

port, now, action = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
policy = BreakerPolicy(failure_ratio=0.05, window_s=60, min_calls=20, open_s=30)
breaker = CircuitBreaker(
    redis.Redis(port=port), "org-a", "recordingmetadata", policy, lambda: now
)
if action == "fail":
    for _ in range(int(sys.argv[4])):
        breaker.record(failure=True, slow=False)
permission = breaker.allow()
print(json.dumps({
    "state": str(breaker.state()),
    "allowed": permission.allowed,
    "probe": permission.probe,
}))
"""
NOW = 1_700_000_000.0


def run_worker(server: RedisServer, now: float, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(server.port), repr(now), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_breaker_processes_share_open(
    redis_server: RedisServer, real_redis: Any
) -> None:
    first = run_worker(redis_server, NOW, "fail", "20")
    second = run_worker(redis_server, NOW, "ask")
    assert first["state"] == "open"
    assert second["state"] == "open"
    assert second["allowed"] is False


def test_breaker_processes_below_min_calls(
    redis_server: RedisServer, real_redis: Any
) -> None:
    run_worker(redis_server, NOW, "fail", "19")
    second = run_worker(redis_server, NOW, "ask")
    assert second["state"] == "closed"
    assert second["allowed"] is True


def test_breaker_processes_one_probe(
    redis_server: RedisServer, real_redis: Any
) -> None:
    run_worker(redis_server, NOW, "fail", "20")
    later = NOW + 31.0
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda _: run_worker(redis_server, later, "ask"), range(6))
        )
    probes = [answer["probe"] for answer in answers]
    assert probes.count(True) == 1
    assert all(answer["state"] == "half-open" for answer in answers)
