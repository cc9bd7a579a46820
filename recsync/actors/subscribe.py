"""The realtime subscriber: one socket per org, held under a Redis lease.

Genesys allows one socket per channel and evicts the oldest of 20 channels per OAuth
client, so two workers subscribing for one org would fight. The subscriber therefore
runs only while it holds the org's lease (a Redis key with a TTL, renewed while
connected). One actor run keeps the socket for a bounded session and then hands over
by sending itself again, so it stays inside the worker's time limit. When its worker
dies, the lease expires and the periodic jobs send a new subscriber.

The socket is an accelerator, never the only source: events are not durable, so
after each (re)connect the records that were waiting are fetched once (back-fill),
and the reconciler catches anything else the socket missed.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from recsync.actors.dispatch import Dispatcher
from recsync.errors import NotYet, PlatformError, RecsyncError
from recsync.platform.notifications import Frame, parse_frame, ping_frame
from recsync.runtime import Runtime
from recsync.store import State, keys
from recsync.store.topics import TopicRegistry, user_conversations_topic

log = logging.getLogger(__name__)

_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
EVENT_DEDUP_TTL_MS = 10 * 60 * 1000


class _Reconnect(Exception):
    """Signal to leave the current socket and open a new one, on a new channel if
    ``new_channel`` is set."""

    def __init__(self, reason: str, *, new_channel: bool) -> None:
        super().__init__(reason)
        self.new_channel = new_channel


class Subscriber:
    """One bounded session of an org's realtime subscription."""

    def __init__(self, runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> None:
        self.runtime = runtime
        self.dispatcher = dispatcher
        self.org_id = org_id
        self.policy = runtime.policies.realtime
        self.topics = TopicRegistry(runtime.redis, clock=runtime.clock)
        self.lease_token = uuid.uuid4().hex
        self._renew = runtime.redis.register_script(_RENEW_LEASE)
        self._release = runtime.redis.register_script(_RELEASE_LEASE)
        self.channel: dict[str, Any] | None = None
        self.subscribed: set[str] = set()
        self.topics_version = -1
        self.last_frame_at = 0.0
        self.user_topics: list[str] = []
        self.connected_since = 0.0

    # Lease ------------------------------------------------------------------------

    def acquire_lease(self) -> bool:
        ttl_ms = int(self.policy.lease_ttl_s * 1000)
        key = keys.subscriber_lease(self.org_id)
        return bool(self.runtime.redis.set(key, self.lease_token, nx=True, px=ttl_ms))

    def renew_lease(self) -> bool:
        ttl_ms = int(self.policy.lease_ttl_s * 1000)
        key = keys.subscriber_lease(self.org_id)
        return bool(self._renew(keys=[key], args=[self.lease_token, ttl_ms]))

    def release_lease(self) -> None:
        self._release(
            keys=[keys.subscriber_lease(self.org_id)], args=[self.lease_token]
        )

    def _set_status(self, state: str, **fields: Any) -> None:
        mapping = {"state": state, "seen_at": repr(self.runtime.clock()), **fields}
        self.runtime.redis.hset(
            keys.subscriber_status(self.org_id),
            mapping={k: str(v) for k, v in mapping.items()},
        )

    # Session ------------------------------------------------------------------------

    def run(self) -> str:
        """Hold the socket until the session ends; return why it ended."""
        if not self.acquire_lease():
            return "lease-held"
        deadline = time.monotonic() + self.policy.session_s
        outcome = "session-ended"
        reconnects = 0
        try:
            new_channel = False
            while time.monotonic() < deadline:
                if not self.runtime.is_active(self.org_id):
                    outcome = "inactive"
                    break
                try:
                    self._connect_and_listen(deadline, new_channel=new_channel)
                    break
                except _Reconnect as exc:
                    log.info("org %s: realtime reconnect: %s", self.org_id, exc)
                    self.runtime.store.incr(self.org_id, "realtime:reconnects")
                    new_channel = exc.new_channel
                except ConnectionClosed as exc:
                    # Closed while sending or closing: the same channel still works.
                    log.info(
                        "org %s: socket closed (%s); reconnecting", self.org_id, exc
                    )
                    self.runtime.store.incr(self.org_id, "realtime:reconnects")
                    new_channel = False
                except (
                    NotYet,
                    PlatformError,
                    OSError,
                    InvalidHandshake,
                    InvalidURI,
                    TimeoutError,
                ) as exc:
                    log.warning("org %s: realtime session failed: %s", self.org_id, exc)
                    self.runtime.store.incr(self.org_id, "realtime:errors")
                    outcome = "error"
                    break
                if not self.renew_lease():
                    outcome = "lease-lost"
                    break
                reconnects += 1
                stable_s = time.monotonic() - self.connected_since
                if stable_s > self.policy.heartbeat_timeout_s:
                    reconnects = 1  # the last socket was healthy for a while
                self._pause_before_reconnect(reconnects)
        finally:
            # A subscriber whose lease passed to another must not overwrite the new
            # holder's status or live topics.
            if self.holds_lease():
                self.topics.mark_live(self.org_id, set(), replace=True)
                self._set_status("down", reason=outcome)
                self.release_lease()
        return outcome

    def holds_lease(self) -> bool:
        current: Any = self.runtime.redis.get(keys.subscriber_lease(self.org_id))
        return current is not None and current.decode() == self.lease_token

    def _pause_before_reconnect(self, reconnects: int) -> None:
        """Wait a jittered, growing delay so a socket that keeps closing at once
        does not turn into a tight reconnect loop. The first reconnect (a
        ``socket_closing`` handover) goes at once."""
        if reconnects <= 1:
            return
        schedule = self.runtime.backoff
        step_s = min(
            schedule.initial_delay_s * 2 ** (reconnects - 2), schedule.max_delay_s
        )
        # The subscriber owns its worker thread for the session, so sleeping here
        # blocks no other message. The lease TTL bounds the wait.
        time.sleep(min(random.uniform(0, step_s), self.policy.lease_ttl_s / 3))

    def _open_channel(self, *, new_channel: bool) -> dict[str, Any]:
        client = self.runtime.org(self.org_id).client
        stored: list[Any] = self.runtime.redis.hmget(
            keys.subscriber_status(self.org_id), "channel_id", "connect_uri"
        )
        if not new_channel and stored[0] and stored[1]:
            channel_id = stored[0].decode()
            if client.channel_alive(channel_id):
                return {"id": channel_id, "connectUri": stored[1].decode()}
        channel = client.create_channel()
        self.subscribed = set()
        self.topics_version = -1
        return channel

    def _load_user_topics(self) -> None:
        """Watch each agent's conversation topic, so new conversations announce
        themselves: from the manifest's ``users``, else from the platform."""
        if self.user_topics:
            return
        users = list(self.runtime.manifest.org(self.org_id).users)
        if not users:
            users = self.runtime.org(self.org_id).client.list_users()
            self.renew_lease()
        limit = self.policy.max_topics_per_channel // 2
        if len(users) > limit:
            log.warning(
                "org %s: %d users; watching the conversations of the first %d only",
                self.org_id,
                len(users),
                limit,
            )
        self.user_topics = [user_conversations_topic(u) for u in users[:limit]]

    def _connect_and_listen(self, deadline: float, *, new_channel: bool) -> None:
        self._set_status("connecting")
        self._load_user_topics()
        self.channel = self._open_channel(new_channel=new_channel)
        timeout_s = max(self.runtime.policies.request_timeout_s, 1.0)
        with connect(
            self.channel["connectUri"], open_timeout=timeout_s, max_size=2**20
        ) as socket:
            self.subscribed = set()
            self.topics.mark_live(self.org_id, set(), replace=True)
            self.topics_version = -1
            self._sync_topics()
            self.last_frame_at = time.monotonic()
            self.connected_since = self.last_frame_at
            self._set_status(
                "connected",
                channel_id=self.channel["id"],
                connect_uri=self.channel["connectUri"],
                since=repr(self.runtime.clock()),
            )
            log.info(
                "org %s: realtime connected to channel %s",
                self.org_id,
                self.channel["id"],
            )
            self._backfill()
            self._listen(socket, deadline)

    def _listen(self, socket: ClientConnection, deadline: float) -> None:
        tick_s = min(1.0, max(self.policy.heartbeat_timeout_s / 10, 0.05))
        # New topics go live quickly: an event published before its topic is live
        # is lost, and the record would wait for its safety-net poll.
        recv_timeout_s = min(tick_s, 0.1)
        next_tick = time.monotonic() + tick_s
        pinged = False
        while time.monotonic() < deadline:
            try:
                raw = socket.recv(timeout=recv_timeout_s)
            except TimeoutError:
                raw = None
            except ConnectionClosed as exc:
                raise _Reconnect(
                    f"socket closed ({exc.rcvd})", new_channel=False
                ) from exc
            now = time.monotonic()
            if raw is not None:
                self.last_frame_at = now
                pinged = False
                self._handle(parse_frame(raw))
            if now >= next_tick:
                next_tick = now + tick_s
                self._tick()
            else:
                self._sync_topics()
            silence_s = now - self.last_frame_at
            if silence_s > self.policy.heartbeat_timeout_s:
                raise _Reconnect(f"no frame for {silence_s:.1f} s", new_channel=False)
            if not pinged and silence_s > self.policy.heartbeat_timeout_s / 2:
                socket.send(ping_frame())
                pinged = True

    def _tick(self) -> None:
        if not self.renew_lease():
            raise _Reconnect("lease lost", new_channel=False)
        if not self.runtime.is_active(self.org_id):
            raise _Reconnect("org deactivated", new_channel=False)
        self.runtime.redis.hset(
            keys.subscriber_status(self.org_id),
            mapping={"state": "connected", "seen_at": repr(self.runtime.clock())},
        )
        self._sync_topics()

    # Topics -------------------------------------------------------------------------

    def _sync_topics(self) -> None:
        try:
            self._sync_topics_once()
        except NotYet as exc:
            # The org's budget is spent; the version stays old, so the next tick
            # tries again.
            log.debug("org %s: topic update postponed: %s", self.org_id, exc)

    def _sync_topics_once(self) -> None:
        version = self.topics.version(self.org_id)
        if version == self.topics_version or self.channel is None:
            return
        room = self.policy.max_topics_per_channel - len(self.user_topics)
        wanted = set(self.user_topics)
        wanted |= set(self.topics.wanted(self.org_id, limit=max(room, 0)))
        added = sorted(wanted - self.subscribed)
        removed = self.subscribed - wanted
        client = self.runtime.org(self.org_id).client
        # Topics of settled records cost nothing but a slot: events on them are
        # ignored. Replace the list only when slots run short, which saves a call
        # per settled conversation.
        slots_short = (
            len(self.subscribed) + len(added) > self.policy.max_topics_per_channel * 0.8
        )
        if removed and slots_short:
            states = client.subscribe(self.channel["id"], sorted(wanted), replace=True)
            self.subscribed = self._permitted(states)
            self.topics.mark_live(self.org_id, self.subscribed, replace=True)
        elif added:
            states = client.subscribe(self.channel["id"], added)
            permitted = self._permitted(states)
            self.subscribed |= permitted
            self.topics.mark_live(self.org_id, permitted, replace=not self.subscribed)
        self.topics_version = version
        self.runtime.redis.hset(
            keys.subscriber_status(self.org_id), "topics", str(len(self.subscribed))
        )

    def _permitted(self, states: list[dict[str, Any]]) -> set[str]:
        permitted = set()
        for entity in states:
            topic = str(entity.get("id", ""))
            state = entity.get("state", "Permitted")
            if state == "Rejected":
                self.runtime.store.incr(self.org_id, "realtime:topics-rejected")
                log.warning(
                    "org %s: topic %s rejected (missing permissions: %s); its records "
                    "fall back to polling",
                    self.org_id,
                    topic,
                    entity.get("missingPermissions") or entity.get("reason"),
                )
            else:
                permitted.add(topic)
        return permitted

    # Frames -------------------------------------------------------------------------

    def _handle(self, frame: Frame) -> None:
        store = self.runtime.store
        if frame.kind in ("heartbeat", "pong", "subscription_updated"):
            return
        if frame.kind == "socket_closing":
            raise _Reconnect("platform is closing the socket", new_channel=False)
        if frame.kind == "no_longer_subscribed":
            raise _Reconnect("channel no longer subscribed", new_channel=True)
        if frame.kind == "token_revoked":
            org = self.runtime.org(self.org_id)
            org.client.tokens.invalidate(org.client.tokens.token())
            raise _Reconnect("token revoked", new_channel=True)
        if frame.kind == "recording":
            self._on_recording(frame)
            return
        if frame.kind == "conversation":
            self._on_conversation(frame)
            return
        store.incr(self.org_id, f"realtime:frames-{frame.kind}")
        if frame.kind == "invalid":
            log.info("org %s: ignored a frame: %s", self.org_id, frame.problem)

    def _on_recording(self, frame: Frame) -> None:
        assert frame.recording_id is not None and frame.conversation_id is not None
        if not self._valid_ids(frame):
            return
        store = self.runtime.store
        dedup_key = (
            keys.event_seen(self.org_id) + f":{frame.recording_id}:{frame.file_state}"
        )
        first = self.runtime.redis.set(dedup_key, 1, nx=True, px=EVENT_DEDUP_TTL_MS)
        if not first:
            store.incr(self.org_id, "realtime:duplicate-events")
            return
        store.incr(self.org_id, "realtime:events")
        if frame.file_state in ("UPLOADING", "RESTORING"):
            return
        try:
            record = store.get(self.org_id, frame.recording_id)
        except RecsyncError:
            store.incr(self.org_id, "realtime:frames-invalid")
            return
        if record is None:
            # An unknown recording is discovered from the stream and tracked.
            store.track(
                self.org_id,
                frame.conversation_id,
                frame.recording_id,
                user_id=frame.user_id,
                deadline_s=self.runtime.backoff.deadline_s,
                source="realtime",
            )
        elif record.state.settled:
            return
        self.dispatcher.fetch(self.org_id, frame.recording_id, reason="event")

    def _valid_ids(self, frame: Frame) -> bool:
        try:
            for value, kind in (
                (frame.conversation_id, "conversation"),
                (frame.recording_id, "recording"),
                (frame.user_id, "user"),
            ):
                if value is not None:
                    keys.check_entity_id(value, kind=kind)
        except keys.InvalidId as exc:
            self.runtime.store.incr(self.org_id, "realtime:frames-invalid")
            log.info(
                "org %s: ignored an event with an invalid id: %s", self.org_id, exc
            )
            return False
        return True

    def _on_conversation(self, frame: Frame) -> None:
        assert frame.conversation_id is not None
        if not self._valid_ids(frame):
            return
        store = self.runtime.store
        body = frame.body or {}
        participants = body.get("participants")
        expects_screen = isinstance(participants, list) and any(
            isinstance(p, dict) and p.get("screenRecordingState") for p in participants
        )
        marker = f"{body.get('recordingState')}:{expects_screen}"
        dedup_key = (
            keys.event_seen(self.org_id) + f":conv:{frame.conversation_id}:{marker}"
        )
        if not self.runtime.redis.set(dedup_key, 1, nx=True, px=EVENT_DEDUP_TTL_MS):
            store.incr(self.org_id, "realtime:duplicate-events")
            return
        store.incr(self.org_id, "realtime:conversation-events")
        self.dispatcher.conversation(
            self.org_id,
            frame.conversation_id,
            user_id=frame.user_id,
            expects_screen=expects_screen,
        )

    def _backfill(self) -> None:
        """Fetch once every record that waited while no socket was listening."""
        store = self.runtime.store
        # Take the ids first: paging while fetches move records out of the state
        # would skip some.
        waiting: list[Any] = self.runtime.redis.zrange(
            keys.by_state(self.org_id, str(State.ASYNC_PENDING)), 0, -1
        )
        sent = 0
        for raw in waiting:
            recording_id = raw.decode() if isinstance(raw, bytes) else raw
            self.dispatcher.fetch(self.org_id, recording_id, reason="backfill")
            sent += 1
            if sent % 500 == 0 and not self.renew_lease():
                raise _Reconnect("lease lost during back-fill", new_channel=False)
        if sent:
            store.incr(self.org_id, "realtime:backfilled", sent)
            log.info(
                "org %s: back-filled %d records after (re)connecting", self.org_id, sent
            )
