"""``recsync worker`` supervision: a dead worker process fails the command, SIGTERM
drains the in-flight messages and exits 0."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
import redis
from chaos_cluster import (
    WorkerProcess,
    add_fault,
    bind_actors,
    credential_environ,
    manifest_mapping,
    write_manifest,
)
from conftest import RedisServer, need

from recsync import runtime as runtime_module
from recsync.actors.broker import install_broker, make_broker
from recsync.emulator import EmulatorServer, scenario_by_name
from recsync.hooks import Host
from recsync.manifest import manifest_from_mapping
from recsync.plugin import RecsyncPlugin
from recsync.runtime import Runtime
from recsync.store import State

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(120)]

# Platform time runs at wall speed, so a slow response of 1.5 s stays under the
# manifest's 5 s request timeout while the worker drains.
TIME_SCALE = 1.0
SLOW_RESPONSE_MS = 1500
CLAIM_WAIT_S = 10.0


@attrs.define
class Setup:
    """A Redis, an emulator and a manifest for one worker at a time."""

    redis_server: RedisServer
    emulator: EmulatorServer
    manifest_path: Path
    runtime: Runtime
    environ: dict[str, str]
    workdir: Path

    def worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(
            manifest=self.manifest_path,
            broker_url=self.redis_server.url,
            environ=self.environ,
            log_path=self.workdir / f"{name}.log",
            processes=2,
            threads=2,
            shutdown_timeout_s=10.0,
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    need(shutil.which("redis-server") is not None, "redis-server is not installed")
    workdir = tmp_path_factory.mktemp("supervision")
    redis_server = RedisServer().start()
    scenario = scenario_by_name("default")
    emulator = EmulatorServer(scenario, time_scale=TIME_SCALE).start()
    unbind: Callable[[], None] | None = None
    try:
        mapping = manifest_mapping(
            scenario,
            base_url=emulator.base_url,
            time_scale=TIME_SCALE,
            realtime=False,
        )
        manifest_path = write_manifest(workdir / "manifest.yaml", mapping)
        manifest = manifest_from_mapping(mapping, source=str(manifest_path))
        environ = credential_environ(scenario)
        runtime = Runtime(
            manifest, redis.Redis(port=redis_server.port), environ=environ
        )
        runtime_module.install(runtime)
        unbind = bind_actors(install_broker(make_broker(redis_server.url)))
        yield Setup(
            redis_server=redis_server,
            emulator=emulator,
            manifest_path=manifest_path,
            runtime=runtime,
            environ=environ,
            workdir=workdir,
        )
    finally:
        emulator.stop()
        if unbind is not None:
            unbind()
        runtime_module.install(None)
        redis_server.cleanup()


def test_worker_child_sigkill_exits_nonzero(setup: Setup) -> None:
    worker = setup.worker("sigkill").start()
    try:
        worker.kill_one_child()
        exit_code = worker.wait_exit()
    finally:
        worker.stop()
    assert exit_code != 0


def test_worker_child_sigkill_stops_siblings(setup: Setup) -> None:
    worker = setup.worker("siblings").start()
    try:
        siblings = worker.children()
        worker.kill_one_child()
        worker.wait_exit()
    finally:
        worker.stop()
    alive = [child.pid for child in siblings if child.is_running()]
    assert alive == []


def test_supervisor_sigkill_stops_workers(setup: Setup) -> None:
    worker = setup.worker("supervisor-kill").start()
    try:
        group = worker.children()
        assert worker.process is not None
        worker.process.kill()
        worker.process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            child.is_running() and child.status() != "zombie" for child in group
        ):
            time.sleep(0.2)
    finally:
        worker.stop()
    alive = [
        child.pid
        for child in group
        if child.is_running() and child.status() != "zombie"
    ]
    assert alive == []


def test_worker_sigterm_drains_and_exits_zero(setup: Setup) -> None:
    runtime = setup.runtime
    manifest = runtime.manifest
    primary = manifest.primary.id
    now_s = setup.emulator.world.now()
    entry = next(
        e
        for e in sorted(
            setup.emulator.world.timeline(), key=lambda e: e["visible_at_s"]
        )
        if e["org"] == primary
    )
    add_fault(
        setup.emulator.base_url,
        {
            "org": primary,
            "kind": "slow",
            "delay_ms": SLOW_RESPONSE_MS,
            "start_s": now_s,
            "end_s": now_s + 3600,
        },
    )
    worker = setup.worker("sigterm").start()
    try:
        host = Host()
        host.register(RecsyncPlugin(runtime), name="recsync")
        host.start(manifest, org_ids=[primary])
        host.recording_created(
            primary, entry["conversation_id"], entry["recording_id"], entry["user_id"]
        )

        claimed = False
        deadline = time.monotonic() + CLAIM_WAIT_S
        while not claimed and time.monotonic() < deadline:
            record = runtime.store.get(primary, entry["recording_id"])
            claimed = record is not None and record.state is State.FETCHING
            time.sleep(0.01)
        assert claimed, "no worker claimed the recording"

        exit_code = worker.terminate()
    finally:
        worker.stop()
    record = runtime.store.get(primary, entry["recording_id"])
    assert exit_code == 0
    assert record is not None
    # The in-flight fetch finished before its process exited: the record is not left
    # claimed by a process that no longer exists.
    assert record.state is not State.FETCHING
    assert record.attempts == 1
