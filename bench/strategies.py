"""The five strategies, seen from the driver process: how to start their
workers, announce a record, read one back for the UI and count what is ready."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import redis
import yaml

from bench.common import (
    ANNOUNCE_KEY,
    RESULT_PREFIX,
    SETTINGS_ENV,
    WAIT_KEY,
    Settings,
    result_key,
)

log = logging.getLogger(__name__)

THREADS = 8
NAMES = ("sdk", "celery", "dramatiq", "recsync", "recsync-realtime")
LABELS = {
    "sdk": "(a) SDK, 8 blocking threads",
    "celery": "(b) Celery autoretry",
    "dramatiq": "(c) Dramatiq Retries",
    "recsync": "(d) recsync, realtime off",
    "recsync-realtime": "(e) recsync, realtime on",
}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


class Strategy:
    """Base of the baselines: results are ``bench:result:*`` keys in Redis."""

    name = ""
    ready_marker = ""

    def __init__(self, *, redis_url: str, base_url: str, scenario: Any) -> None:
        self.redis_url = redis_url
        self.base_url = base_url
        self.scenario = scenario
        self.redis = redis.Redis.from_url(redis_url)
        self.settings = Settings(
            base_url=base_url,
            redis_url=redis_url,
            time_scale=0.0,
            credentials={
                org.id: (org.client_id, org.client_secret) for org in scenario.orgs
            },
        )

    def configure(self, *, time_scale: float, work_dir: Path) -> None:
        """Prepare settings and files before the workers start."""
        self.settings = Settings(
            base_url=self.settings.base_url,
            redis_url=self.settings.redis_url,
            time_scale=time_scale,
            credentials=self.settings.credentials,
        )
        os.environ[SETTINGS_ENV] = self.settings.to_json()

    def worker_commands(self) -> list[list[str]]:
        """Commands of the worker processes."""
        raise NotImplementedError

    def after_emulator(self) -> None:
        """Hook run once the emulator listens."""

    def announce(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str
    ) -> None:
        """Hand one record to the strategy, as the integration host would."""
        raise NotImplementedError

    def read(self, org_id: str, recording_id: str) -> object:
        """Read one record's state the way a UI would."""
        return self.redis.get(result_key(org_id, recording_id))

    def ready_times(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """Return the wall time each ready record became ready."""
        values = self.redis.mget([result_key(org, rec) for org, rec in pairs])
        return {
            pair: float(value)
            for pair, value in zip(pairs, values, strict=True)
            if value is not None
        }

    def settled_count(self) -> int:
        """Count records that reached a final state."""
        return sum(
            1 for _ in self.redis.scan_iter(match=f"{RESULT_PREFIX}*", count=1000)
        )

    def platform_wait_s(self) -> float:
        """Worker thread-seconds spent waiting on the platform."""
        return float(self.redis.get(WAIT_KEY) or 0.0)

    def close(self) -> None:
        """Release what the strategy holds in the driver process."""


class SdkStrategy(Strategy):
    """(a) The official SDK, blocking calls from 8 threads."""

    name = "sdk"
    ready_marker = "sdk pool ready"

    def worker_commands(self) -> list[list[str]]:
        return [[sys.executable, "-m", "bench.strat_sdk"]]

    def announce(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str
    ) -> None:
        self.redis.lpush(ANNOUNCE_KEY, f"{org_id} {conversation_id} {recording_id}")


class CeleryStrategy(Strategy):
    """(b) Celery with autoretry and exponential backoff."""

    name = "celery"
    ready_marker = "ready."

    def worker_commands(self) -> list[list[str]]:
        return [
            [
                _bin("celery"),
                "-A",
                "bench.strat_celery",
                "worker",
                "--pool",
                "threads",
                "-c",
                str(THREADS),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ]
        ]

    def announce(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str
    ) -> None:
        from bench import strat_celery

        strat_celery.announce(org_id, conversation_id, recording_id)


class DramatiqStrategy(Strategy):
    """(c) A plain Dramatiq actor with the Retries middleware."""

    name = "dramatiq"
    ready_marker = "ready for action"

    def worker_commands(self) -> list[list[str]]:
        return [
            [
                _bin("dramatiq"),
                "bench.strat_dramatiq",
                "--processes",
                "1",
                "--threads",
                str(THREADS),
            ]
        ]

    def announce(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str
    ) -> None:
        from bench import strat_dramatiq

        strat_dramatiq.announce(org_id, conversation_id, recording_id)


def _credential_env(org_id: str, part: str) -> str:
    return f"RECSYNC_BENCH_{org_id.upper().replace('-', '_')}_{part}"


class RecsyncStrategy(Strategy):
    """(d, e) recsync: the plugin in this process, ``recsync worker`` beside it.

    The wiring copies ``recsync.demo``: a runtime on the run's Redis, the broker
    installed before ``recsync.actors.tasks`` is imported, and the reference host
    with the plugin loaded from its entry point.
    """

    ready_marker = "ready for action"

    def __init__(self, *, realtime: bool, processes: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.realtime = realtime
        self.processes = processes
        self.name = "recsync-realtime" if realtime else "recsync"
        self.manifest: Any = None
        self.manifest_path: Path | None = None
        self.runtime: Any = None
        self.host: Any = None

    def configure(self, *, time_scale: float, work_dir: Path) -> None:
        from recsync import runtime as runtime_module
        from recsync.actors.broker import install_broker, make_broker
        from recsync.manifest import manifest_from_mapping
        from recsync.runtime import Runtime

        super().configure(time_scale=time_scale, work_dir=work_dir)
        orgs = []
        for org in self.scenario.orgs:
            os.environ[_credential_env(org.id, "CLIENT_ID")] = org.client_id
            os.environ[_credential_env(org.id, "CLIENT_SECRET")] = org.client_secret
            orgs.append(
                {
                    "id": org.id,
                    "name": org.name,
                    "region": org.region,
                    "role": str(org.role),
                    "base_url": self.base_url,
                    "credentials": {
                        "client_id_env": _credential_env(org.id, "CLIENT_ID"),
                        "client_secret_env": _credential_env(org.id, "CLIENT_SECRET"),
                    },
                    # The operator configures the budget the org really has.
                    "rate_limit": {"requests_per_minute": org.rate_limit_per_minute},
                }
            )
        data = {
            "version": 1,
            "time_scale": time_scale,
            "orgs": orgs,
            "flags": {"async_metadata_sync": True, "realtime": self.realtime},
        }
        self.manifest_path = work_dir / f"manifest-{self.name}.yaml"
        self.manifest_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.manifest = manifest_from_mapping(data, source=str(self.manifest_path))
        self.runtime = Runtime(self.manifest, self.redis)
        install_broker(make_broker(self.redis_url))
        runtime_module.install(self.runtime)
        import recsync.actors.tasks  # noqa: F401  (declares the actors on the broker)

    def worker_commands(self) -> list[list[str]]:
        return [
            [
                _bin("recsync"),
                "worker",
                "--manifest",
                str(self.manifest_path),
                "--broker",
                self.redis_url,
                "--processes",
                str(self.processes),
                "--threads",
                str(THREADS),
            ]
        ]

    def after_emulator(self) -> None:
        from recsync.hooks import Host
        from recsync.plugin import RecsyncPlugin

        self.host = Host()
        loaded = self.host.load_entry_points()
        if "recsync" not in loaded:
            self.host.register(RecsyncPlugin(self.runtime), name="recsync")
        self.host.start(self.manifest)

    def announce(
        self, org_id: str, conversation_id: str, recording_id: str, user_id: str
    ) -> None:
        self.host.recording_created(org_id, conversation_id, recording_id, user_id)

    def read(self, org_id: str, recording_id: str) -> object:
        return self.runtime.store.get(org_id, recording_id)

    def ready_times(self, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
        times = {}
        for org_id, recording_id in pairs:
            record = self.runtime.store.get(org_id, recording_id)
            if record is not None and record.ready_at is not None:
                times[(org_id, recording_id)] = float(record.ready_at)
        return times

    def settled_count(self) -> int:
        from recsync.store import State

        settled = 0
        for org in self.scenario.orgs:
            counts = self.runtime.store.counts(org.id)
            settled += counts[str(State.READY)] + counts[str(State.FAILED)]
        return settled

    def platform_wait_s(self) -> float:
        return sum(
            float(self.runtime.store.counters(org.id).get("platform_wait_s", 0.0))
            for org in self.scenario.orgs
        )

    def close(self) -> None:
        if self.host is not None:
            try:
                self.host.stop(self.manifest)
            except Exception:
                # Teardown must not hide the run's figures; the error is logged.
                log.exception("%s: host.stop failed at teardown", self.name)


def make_strategy(
    name: str,
    *,
    redis_url: str,
    base_url: str,
    scenario: Any,
    processes: int = 1,
) -> Strategy:
    """Build the strategy called ``name`` (one of NAMES).

    ``processes`` sets the worker processes of recsync; the baselines run one.
    """
    common = {"redis_url": redis_url, "base_url": base_url, "scenario": scenario}
    if name == "sdk":
        return SdkStrategy(**common)
    if name == "celery":
        return CeleryStrategy(**common)
    if name == "dramatiq":
        return DramatiqStrategy(**common)
    if name == "recsync":
        return RecsyncStrategy(realtime=False, processes=processes, **common)
    if name == "recsync-realtime":
        return RecsyncStrategy(realtime=True, processes=processes, **common)
    raise ValueError(f"unknown strategy {name!r}; use one of {', '.join(NAMES)}")
