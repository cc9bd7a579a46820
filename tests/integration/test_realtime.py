"""The realtime subscriber against the emulator's notification service and faults.

A Subscriber session runs in a thread against the emulator (time scale 0.05) with a
fakeredis store and a dispatcher that records what it would send. Each test injects
one fault and checks what the subscriber did about it, on counters and channels
rather than on timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import attrs
import fakeredis
import pytest

from recsync.actors.subscribe import Subscriber
from recsync.emulator import EmulatorServer, scenario_by_name
from recsync.manifest import manifest_from_mapping
from recsync.runtime import Runtime
from recsync.store import keys

pytestmark = pytest.mark.integration

TIME_SCALE = 0.05
SESSION_S = 60.0  # platform seconds: 3 s of wall time


@attrs.define
class Dispatched:
    conversations: list[str] = attrs.Factory(list)
    fetches: list[tuple[str, str]] = attrs.Factory(list)

    def fetch(
        self,
        org_id: str,
        recording_id: str,
        *,
        reason: str,
        expected_attempts: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.fetches.append((recording_id, reason))

    def conversation(
        self,
        org_id: str,
        conversation_id: str,
        *,
        user_id: str | None,
        expects_screen: bool = False,
    ) -> None:
        self.conversations.append(conversation_id)

    def subscribe(self, org_id: str, *, delay_s: float = 0.0) -> None:
        pass

    def reconcile(self, org_id: str) -> None:
        pass

    def sweep(self, org_id: str) -> None:
        pass


@attrs.define
class Session:
    emulator: EmulatorServer
    runtime: Runtime
    dispatched: Dispatched
    outcome: list[str] = attrs.Factory(list)

    def run(self, org_id: str = "org-eu") -> threading.Thread:
        subscriber = Subscriber(self.runtime, self.dispatched, org_id)
        thread = threading.Thread(
            target=lambda: self.outcome.append(subscriber.run()), daemon=True
        )
        thread.start()
        return thread

    def counter(self, name: str, org_id: str = "org-eu") -> float:
        return self.runtime.store.counters(org_id).get(name, 0.0)

    def status(self, org_id: str = "org-eu") -> dict[str, str]:
        raw = self.runtime.redis.hgetall(keys.subscriber_status(org_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def wait_connected(self, timeout_s: float = 10.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self.status()
            if status.get("state") == "connected":
                return status["channel_id"]
            time.sleep(0.05)
        raise AssertionError(f"the subscriber never connected: {self.status()}")


def quiet_scenario() -> dict[str, Any]:
    """The default scenario with a single satellite and no faults of its own."""
    base = scenario_by_name("flaky-socket")
    return {
        "seed": 3,
        "duration_s": 40,
        "conversations": 40,
        "screen_ratio": 0.5,
        "users": 3,
        "orgs": [
            {
                "id": org.id,
                "region": org.region,
                "role": str(org.role),
                "client_id": org.client_id,
                "client_secret": org.client_secret,
                "propagation": {"distribution": "uniform", "low_s": 1, "high_s": 5}
                if str(org.role) == "satellite"
                else {"distribution": "fixed", "value_s": 0},
            }
            for org in base.orgs
        ],
    }


@pytest.fixture
def session() -> Iterator[Session]:
    scenario = quiet_scenario()
    with EmulatorServer(scenario, time_scale=TIME_SCALE) as emulator:
        environ = {}
        orgs = []
        for org in scenario["orgs"]:
            prefix = f"RT_{org['id'].upper().replace('-', '_')}"
            environ[f"{prefix}_ID"] = org["client_id"]
            environ[f"{prefix}_SECRET"] = org["client_secret"]
            orgs.append(
                {
                    "id": org["id"],
                    "region": org["region"],
                    "role": org["role"],
                    "base_url": emulator.base_url,
                    "credentials": {
                        "client_id_env": f"{prefix}_ID",
                        "client_secret_env": f"{prefix}_SECRET",
                    },
                }
            )
        manifest = manifest_from_mapping(
            {
                "version": 1,
                "time_scale": TIME_SCALE,
                "orgs": orgs,
                "policies": {"realtime": {"session_s": SESSION_S}},
            }
        )
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        runtime = Runtime(manifest, client, environ=environ)
        for org in manifest.orgs:
            client.hset(keys.org_active(org.id), "active", "1")
        yield Session(emulator, runtime, Dispatched())
        for org in manifest.orgs:
            client.hset(keys.org_active(org.id), "active", "0")
        runtime.close()


def test_subscriber_dispatches_conversation_events(session: Session) -> None:
    thread = session.run()
    session.wait_connected()
    listening_from_s = session.emulator.world.now() + 1
    thread.join(timeout=30)
    world = session.emulator.world
    visible = {
        e["conversation_id"]
        for e in world.timeline()
        if e["org"] == "org-eu"
        and listening_from_s
        < world.conversation_visible_at("org-eu", e["conversation_id"])
        < SESSION_S - 5
    }
    seen = set(session.dispatched.conversations)
    assert session.outcome == ["session-ended"]
    assert visible
    # Every conversation indexed while the socket listened was announced, once.
    assert visible - seen == set()
    assert len(seen) == len(session.dispatched.conversations)


def test_subscriber_ignores_duplicated_events(session: Session) -> None:
    session.emulator.add_fault(
        {"org": "org-eu", "kind": "duplicate_events", "ratio": 1.0}
    )
    thread = session.run()
    thread.join(timeout=30)
    assert session.counter("realtime:duplicate-events") > 0
    assert len(set(session.dispatched.conversations)) == len(
        session.dispatched.conversations
    )


def test_subscriber_follows_socket_closing(session: Session) -> None:
    thread = session.run()
    channel = session.wait_connected()
    session.emulator.add_fault({"org": "org-eu", "kind": "socket_closing"})
    thread.join(timeout=30)
    assert session.counter("realtime:reconnects") >= 1
    # socket_closing keeps the channel: the subscriber reopens the same one.
    assert session.status().get("channel_id") == channel


def test_subscriber_replaces_expired_channel(session: Session) -> None:
    thread = session.run()
    channel = session.wait_connected()
    session.emulator.add_fault({"org": "org-eu", "kind": "channel_expiry"})
    thread.join(timeout=30)
    assert session.counter("realtime:reconnects") >= 1
    assert session.status().get("channel_id") != channel


def test_subscriber_replaces_dead_subscription(session: Session) -> None:
    thread = session.run()
    channel = session.wait_connected()
    session.emulator.add_fault({"org": "org-eu", "kind": "no_longer_subscribed"})
    thread.join(timeout=30)
    assert session.status().get("channel_id") != channel


def test_subscriber_reconnects_after_silence(session: Session) -> None:
    thread = session.run()
    session.wait_connected()
    now_s = session.emulator.world.now()
    session.emulator.add_fault(
        {
            "org": "org-eu",
            "kind": "silent_socket",
            "start_s": now_s,
            "end_s": now_s + 40,
        }
    )
    thread.join(timeout=30)
    # 35 s of silence (heartbeat timeout) ends the socket, and a new one is opened.
    assert session.counter("realtime:reconnects") >= 1


def test_subscriber_backfills_after_dropped_sockets(session: Session) -> None:
    store = session.runtime.store
    store.track(
        "org-eu",
        "c0ffee00-0000-4000-8000-0000000000c1",
        "c0ffee00-0000-4000-8000-0000000000r1",
        deadline_s=600,
    )
    claim = store.claim(
        "org-eu", "c0ffee00-0000-4000-8000-0000000000r1", token="t", lease_s=10
    )
    assert claim.claimed
    store.defer(
        "org-eu",
        "c0ffee00-0000-4000-8000-0000000000r1",
        token="t",
        next_attempt_at=time.time() + 600,
        error="202",
    )
    thread = session.run()
    session.wait_connected()
    session.emulator.drop_sockets()
    thread.join(timeout=30)
    backfilled = [r for r, reason in session.dispatched.fetches if reason == "backfill"]
    # Once on the first connect and once after the drop: each gap is back-filled.
    assert backfilled.count("c0ffee00-0000-4000-8000-0000000000r1") >= 2


def test_second_subscriber_waits_for_the_lease(session: Session) -> None:
    thread = session.run()
    session.wait_connected()
    second = Subscriber(session.runtime, session.dispatched, "org-eu").run()
    thread.join(timeout=30)
    assert second == "lease-held"
