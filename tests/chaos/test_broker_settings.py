"""Broker settings that the chaos suite relies on for recovery."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from recsync.actors.broker import (
    REDIS_HEARTBEAT_TIMEOUT_MS,
    REDIS_MAINTENANCE_CHANCE,
    make_broker,
)

pytestmark = pytest.mark.chaos


def test_redis_broker_heartbeat_timeout() -> None:
    broker = make_broker("redis://127.0.0.1:1/0")
    assert isinstance(broker, RedisBroker)
    assert broker.heartbeat_timeout == REDIS_HEARTBEAT_TIMEOUT_MS


def test_redis_broker_maintenance_chance() -> None:
    broker = make_broker("redis://127.0.0.1:1/0")
    assert isinstance(broker, RedisBroker)
    assert broker.maintenance_chance == REDIS_MAINTENANCE_CHANCE


def test_rabbitmq_broker_publisher_confirms() -> None:
    # Building the broker opens no connection; the first publish does.
    broker = make_broker("amqp://guest:guest@127.0.0.1:1/")
    assert isinstance(broker, RabbitmqBroker)
    assert broker.confirm_delivery is True
