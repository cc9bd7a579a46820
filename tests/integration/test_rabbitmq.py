"""A fetch round trip through RabbitMQ with publisher confirms and a Dramatiq worker.

The RabbitMQ on 127.0.0.1:5672 is shared, so the actors are moved to queues named
after this run for the test and only those queues are deleted afterwards.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import dramatiq
import pytest
import redis
from conftest import need
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from recsync import runtime as runtime_module
from recsync.actors.broker import install_broker, make_broker
from recsync.emulator import EmulatorServer, scenario_by_name
from recsync.manifest import manifest_from_mapping
from recsync.runtime import Runtime
from recsync.store import State, keys

pytestmark = pytest.mark.integration

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
TIME_SCALE = 0.05
READY_WAIT_S = 30.0


def _rabbitmq_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def rabbitmq_broker() -> Iterator[RabbitmqBroker]:
    need(_rabbitmq_reachable(), "RabbitMQ is not reachable on 127.0.0.1:5672")
    from recsync.actors import tasks

    queue = f"recsync-test-{uuid.uuid4().hex[:12]}"
    actors = [a for a in vars(tasks).values() if isinstance(a, dramatiq.Actor)]
    saved = [(actor, actor.broker, actor.queue_name) for actor in actors]
    broker = make_broker(RABBITMQ_URL)
    assert isinstance(broker, RabbitmqBroker)
    install_broker(broker)
    for actor in actors:
        actor.queue_name = queue
        actor.broker = broker
        broker.declare_actor(actor)
    try:
        yield broker
    finally:
        for actor, old_broker, old_queue in saved:
            actor.queue_name = old_queue
            actor.broker = old_broker
        install_broker(saved[0][1])
        channel = broker.channel
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
        broker.close()


@attrs.frozen
class Deployment:
    """The emulator and a runtime whose manifest points at it."""

    emulator: EmulatorServer
    runtime: Runtime


def _manifest_mapping(scenario: Any, base_url: str) -> dict[str, Any]:
    orgs = [
        {
            "id": org.id,
            "name": org.name,
            "region": org.region,
            "role": str(org.role),
            "base_url": base_url,
            "credentials": {
                "client_id_env": f"RECSYNC_RABBITMQ_{i}_ID",
                "client_secret_env": f"RECSYNC_RABBITMQ_{i}_SECRET",
            },
        }
        for i, org in enumerate(scenario.orgs)
    ]
    return {
        "version": 1,
        "time_scale": TIME_SCALE,
        "orgs": orgs,
        "flags": {"async_metadata_sync": True, "realtime": False},
    }


@pytest.fixture
def deployment(real_redis: redis.Redis) -> Iterator[Deployment]:
    scenario = scenario_by_name("default")
    environ = {}
    for i, org in enumerate(scenario.orgs):
        environ[f"RECSYNC_RABBITMQ_{i}_ID"] = org.client_id
        environ[f"RECSYNC_RABBITMQ_{i}_SECRET"] = org.client_secret
    with EmulatorServer(scenario, time_scale=TIME_SCALE) as emulator:
        mapping = _manifest_mapping(scenario, emulator.base_url)
        manifest = manifest_from_mapping(mapping, source="rabbitmq test manifest")
        runtime = Runtime(manifest, real_redis, environ=environ)
        runtime_module.install(runtime)
        for org_config in manifest.orgs:
            real_redis.hset(keys.org_active(org_config.id), "active", "1")
        try:
            yield Deployment(emulator, runtime)
        finally:
            runtime_module.install(None)
            runtime.close()


def _wait_state(runtime: Runtime, entry: dict[str, Any], state: State) -> bool:
    deadline = time.monotonic() + READY_WAIT_S
    while time.monotonic() < deadline:
        record = runtime.store.get(entry["org"], entry["recording_id"])
        if record is not None and record.state is state:
            return True
        time.sleep(0.05)
    return False


def test_rabbitmq_broker_confirms_delivery(rabbitmq_broker: RabbitmqBroker) -> None:
    assert getattr(rabbitmq_broker, "confirm_delivery", False) is True


def test_rabbitmq_fetch_round_trip(
    rabbitmq_broker: RabbitmqBroker, deployment: Deployment
) -> None:
    from recsync.actors.tasks import dispatcher, fetch_metadata

    emulator, runtime = deployment.emulator, deployment.runtime
    now_s = emulator.world.now()
    # A satellite recording that becomes visible shortly: the first attempt is
    # deferred, so the round trip includes a delayed message.
    entry = min(
        (
            e
            for e in emulator.world.timeline()
            if e["org"] != runtime.manifest.primary.id
            and e["visible_at_s"] > now_s + 40
        ),
        key=lambda e: e["visible_at_s"],
    )
    runtime.store.track(
        entry["org"],
        entry["conversation_id"],
        entry["recording_id"],
        deadline_s=runtime.backoff.deadline_s,
    )
    worker = dramatiq.Worker(
        rabbitmq_broker, queues={fetch_metadata.queue_name}, worker_threads=2
    )
    worker.start()
    try:
        dispatcher.fetch(entry["org"], entry["recording_id"], reason="track")
        ready = _wait_state(runtime, entry, State.READY)
    finally:
        worker.stop(timeout=5000)
    record = runtime.store.get(entry["org"], entry["recording_id"])
    assert ready, f"record did not reach ready: {record}"
    assert record is not None
    assert record.attempts >= 2
    assert record.metadata is not None
