"""The notification service: channel sockets, event publishing and socket faults.

One socket per channel: a second connection to a channel closes the first. Events
reach only sockets connected at that moment whose channel subscribes to the topic;
nothing is stored for later. Socket faults:

- ``drop_events``, ``duplicate_events``, ``reorder_events``: per event, by ratio.
- ``silent_socket``: no heartbeats, events or pongs during the window; the socket
  stays open.
- ``socket_closing``: a ``v2.system.socket_closing`` message, then the socket closes
  60 platform seconds later while events still flow meanwhile.
- ``no_longer_subscribed``: a ``v2.system.no_longer_subscribed.<id>`` message and the
  channel is deleted, but the socket stays open with heartbeats only, so a client
  that ignores the message keeps a socket that never carries events again.
- ``channel_expiry``: the same message, then the socket closes and the channel is
  deleted (404 on HEAD and subscriptions), as when its 24 h lifetime runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from recsync.emulator.channels import Channel, ChannelRegistry
from recsync.emulator.scenario import FaultSpec
from recsync.emulator.world import World

logger = logging.getLogger(__name__)

HEARTBEAT_PERIOD_S = 30.0
SOCKET_CLOSING_GRACE_S = 60.0
# A reordered event is sent after the next event of its org, or after this delay
# when no other event follows.
REORDER_RELEASE_S = 2.0
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
HEARTBEAT = {
    "topicName": "channel.metadata",
    "eventBody": {"message": "WebSocket Heartbeat"},
}
PONG = {"topicName": "channel.metadata", "eventBody": {"message": "pong"}}


def envelope(topic: str, body: dict[str, Any]) -> dict[str, Any]:
    """Wrap an event body the way the platform does (no id, no sequence)."""
    return {
        "topicName": topic,
        "version": "2",
        "eventBody": body,
        "metadata": {"CorrelationId": str(uuid.uuid4())},
    }


class _Close:
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class SocketConnection:
    """One accepted WebSocket of a channel, with its outbox and heartbeat."""

    def __init__(
        self, websocket: WebSocket, channel: Channel, hub: NotificationHub
    ) -> None:
        self.websocket = websocket
        self.channel_id = channel.id
        self.org_id = channel.org_id
        self.closed = False
        self._hub = hub
        self._outbox: asyncio.Queue[dict[str, Any] | _Close] = asyncio.Queue()

    def send(self, document: dict[str, Any]) -> bool:
        """Queue a message; return False when the socket is closing."""
        if self.closed:
            return False
        self._outbox.put_nowait(document)
        return True

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the socket once the messages queued before are sent."""
        if not self.closed:
            self.closed = True
            self._outbox.put_nowait(_Close(code, reason))

    async def run(self) -> None:
        """Serve the socket until either side closes it."""
        tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._write()),
            asyncio.create_task(self._beat()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.closed = True
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                self._hub.on_client_message(self, text)

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, _Close):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await self.websocket.close(code=item.code, reason=item.reason)
                return
            try:
                await self.websocket.send_text(json.dumps(item))
            except (RuntimeError, WebSocketDisconnect, OSError):
                return

    async def _beat(self) -> None:
        world = self._hub.world
        while True:
            await world.clock.sleep(HEARTBEAT_PERIOD_S)
            if world.faults.is_silent(self.org_id, world.now()):
                continue
            if self.send(HEARTBEAT):
                world.stats.add(self.org_id, "heartbeats_sent")


class NotificationHub:
    """Channels, connected sockets and the publishing of events to them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.registry = ChannelRegistry(
            user_ids=world.user_ids, queue_ids=world.queue_ids
        )
        self.sockets: dict[str, SocketConnection] = {}
        world.gauges = lambda: (self.registry.counts_by_org(), self.socket_counts())
        self._held: dict[str, list[tuple[dict[str, Any], list[str]]]] = {}

    # Channels

    def create_channel(self, *, org_id: str, client_id: str) -> Channel:
        """Create a channel, evicting the client's oldest beyond 20."""
        channel, evicted = self.registry.create(
            org_id=org_id, client_id=client_id, now_s=self.world.now()
        )
        self.world.stats.add(org_id, "channels_created")
        for old in evicted:
            logger.info(
                "channel %s of org %s evicted by a 21st channel", old.id, org_id
            )
            self.world.stats.add(org_id, "channels_evicted")
            self._end_channel(old, close_socket=True)
        return channel

    def _end_channel(self, channel: Channel, *, close_socket: bool) -> None:
        self.registry.remove(channel.id)
        connection = self.sockets.get(channel.id)
        if connection is None:
            return
        topic = f"v2.system.no_longer_subscribed.{channel.id}"
        body = {
            "message": "The channel is no longer subscribed",
            "channelId": channel.id,
        }
        self._send_system(connection, topic, body)
        if close_socket:
            connection.close(CLOSE_NORMAL, "channel removed")

    def expire_due(self) -> None:
        """Remove channels whose 24 h lifetime ran out."""
        for channel in self.registry.expired(self.world.now()):
            logger.info("channel %s of org %s expired", channel.id, channel.org_id)
            self.world.stats.add(channel.org_id, "channels_expired")
            self._end_channel(channel, close_socket=True)

    # Sockets

    def attach(self, channel: Channel, websocket: WebSocket) -> SocketConnection:
        """Register a new socket for a channel, closing the one it replaces."""
        previous = self.sockets.get(channel.id)
        if previous is not None:
            previous.close(
                CLOSE_NORMAL, "another connection to this channel replaced it"
            )
        connection = SocketConnection(websocket, channel, self)
        self.sockets[channel.id] = connection
        self.world.stats.add(channel.org_id, "sockets_opened")
        return connection

    def detach(self, connection: SocketConnection) -> None:
        """Forget a socket that has closed."""
        if self.sockets.get(connection.channel_id) is connection:
            del self.sockets[connection.channel_id]
        self.world.stats.add(connection.org_id, "sockets_closed")

    def drop_all_sockets(self) -> int:
        """Close every socket at once; return how many were open."""
        connections = list(self.sockets.values())
        for connection in connections:
            connection.close(CLOSE_GOING_AWAY, "dropped by the emulator")
        logger.info("dropped %d sockets", len(connections))
        return len(connections)

    def socket_counts(self) -> dict[str, int]:
        """Return how many sockets each org has open."""
        counts: dict[str, int] = {}
        for connection in self.sockets.values():
            counts[connection.org_id] = counts.get(connection.org_id, 0) + 1
        return counts

    def on_client_message(self, connection: SocketConnection, text: str) -> None:
        """Send a pong in reply to a client's ``{"message": "ping"}``."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or message.get("message") != "ping":
            return
        if not self.world.faults.is_silent(connection.org_id, self.world.now()):
            connection.send(PONG)

    def _send_system(
        self, connection: SocketConnection, topic: str, body: dict[str, Any]
    ) -> None:
        connection.send(envelope(topic, body))

    # Events

    def publish(self, org_id: str, topic: str, body: dict[str, Any]) -> None:
        """Send an event to the org's channels subscribed to ``topic`` now."""
        targets = [c.id for c in self.registry.subscribed(org_id, topic)]
        if not targets:
            return
        fault = self.world.faults.for_event(org_id, self.world.now())
        if fault.silent or fault.drop:
            self.world.stats.add(org_id, "events_dropped", len(targets))
            return
        message = envelope(topic, body)
        if fault.reorder and not self._held.get(org_id):
            self._held[org_id] = [(message, targets)]
            self.world.stats.add(org_id, "events_reordered")
            asyncio.get_running_loop().create_task(self._release_later(org_id))
            return
        self._deliver(org_id, message, targets)
        if fault.duplicate:
            self.world.stats.add(org_id, "events_duplicated")
            self._deliver(org_id, message, targets)
        self._release(org_id)

    def _deliver(
        self, org_id: str, message: dict[str, Any], targets: list[str]
    ) -> None:
        for channel_id in targets:
            connection = self.sockets.get(channel_id)
            if connection is not None and connection.send(message):
                self.world.stats.add(org_id, "events_sent")
            else:
                self.world.stats.add(org_id, "events_lost")

    def _release(self, org_id: str) -> None:
        for message, targets in self._held.pop(org_id, []):
            self._deliver(org_id, message, targets)

    async def _release_later(self, org_id: str) -> None:
        await self.world.clock.sleep(REORDER_RELEASE_S)
        self._release(org_id)

    # One-shot faults

    def fire(self, fault: FaultSpec) -> None:
        """Carry out a one-shot socket fault on every channel of its org."""
        logger.info("fault %s fired for org %s", fault.kind, fault.org)
        for channel in self.registry.of_org(fault.org):
            if fault.kind == "socket_closing":
                self._announce_closing(channel)
            elif fault.kind == "no_longer_subscribed":
                self._end_channel(channel, close_socket=False)
            elif fault.kind == "channel_expiry":
                self.world.stats.add(channel.org_id, "channels_expired")
                self._end_channel(channel, close_socket=True)

    def _announce_closing(self, channel: Channel) -> None:
        connection = self.sockets.get(channel.id)
        if connection is None:
            return
        body = {"message": "The socket closes soon; open a new one to the same channel"}
        self._send_system(connection, "v2.system.socket_closing", body)
        asyncio.get_running_loop().create_task(self._close_later(connection))

    async def _close_later(self, connection: SocketConnection) -> None:
        await self.world.clock.sleep(SOCKET_CLOSING_GRACE_S)
        connection.close(CLOSE_GOING_AWAY, "socket closing for maintenance")
