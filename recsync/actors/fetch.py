"""Fetch one recording's metadata without waiting on the platform.

One attempt: claim the record in the store (so no other worker fetches it at the same
time), ask the platform in non-blocking mode, and settle the record. "Not yet" responses
(``202``, ``408``, a client timeout, a spent budget) put it back as ``async-pending``
with the next attempt time from recsync's backoff schedule, and a delayed message is
sent for that time. The worker thread never sleeps: waiting is always a delayed
message, and the store's ``due`` set lets the reconciler re-send any message lost on
the way.

Before the call the org's ``recordingmetadata`` circuit breaker is asked. While it is
open the platform is not called: the record goes to ``batch-pending``, due at the next
batch sweep, and no delayed fetch is sent because the sweep (see
:mod:`recsync.actors.sweep`) owns batch-pending records. Call outcomes reach the
breaker through the client's observer (:meth:`recsync.runtime.Runtime._observe`), so
each call counts once.
"""

from __future__ import annotations

import logging
import uuid

import attrs

from recsync.actors.conversation import forget_conversation_topic
from recsync.actors.dispatch import Dispatcher
from recsync.actors.periodic import next_sweep_at, schedule_sweep
from recsync.errors import (
    AuthenticationError,
    NotFound,
    PlatformError,
    PlatformPending,
    RateLimited,
    RecsyncError,
)
from recsync.platform.metadata import check_metadata, fingerprint, is_final
from recsync.runtime import Runtime
from recsync.store import ClaimOutcome, Record, State
from recsync.store.topics import TopicRegistry, recording_topic

log = logging.getLogger(__name__)

# Reasons that fetch a record whatever its next attempt time: news from the host or
# the socket, and the sweep handing batch-pending records back once the breaker closed.
FORCED_REASONS = ("track", "event", "backfill", "resume")


@attrs.frozen
class Deferral:
    """Reason an attempt did not settle the record, and the earliest next attempt."""

    error: str
    not_before: float = 0.0
    realtime_may_help: bool = False


def fetch_record(
    runtime: Runtime,
    dispatcher: Dispatcher,
    org_id: str,
    recording_id: str,
    *,
    reason: str,
    expected_attempts: int | None = None,
    token: str | None = None,
) -> str:
    """Run one fetch attempt; return what happened (for logs and tests)."""
    store = runtime.store
    if not runtime.is_active(org_id):
        log.debug("org %s is not active; dropping fetch of %s", org_id, recording_id)
        return "inactive"

    token = token or uuid.uuid4().hex
    claim = store.claim(
        org_id,
        recording_id,
        token=token,
        lease_s=runtime.claim_lease_s,
        expected_attempts=expected_attempts,
        force=reason in FORCED_REASONS,
    )
    if claim.outcome is ClaimOutcome.EXPIRED:
        return _on_expired(runtime, org_id, recording_id, claim.attempts)
    if not claim.claimed:
        log.debug(
            "org %s recording %s: %s fetch skipped (%s, attempts=%d)",
            org_id,
            recording_id,
            reason,
            claim.outcome,
            claim.attempts,
        )
        return str(claim.outcome)

    record = store.get(org_id, recording_id)
    if record is None:  # purged between the claim and now (uninstall)
        return "missing"
    try:
        return _attempt(runtime, dispatcher, record, token, claim.attempts)
    except Exception as exc:
        # A bug or an unexpected library error must not leave the record claimed
        # until its lease runs out on every attempt: defer it like any failure.
        log.exception(
            "org %s recording %s: unexpected error in a fetch attempt",
            org_id,
            recording_id,
        )
        store.incr(org_id, "fetch:unexpected-error")
        deferral = Deferral(f"unexpected error: {type(exc).__name__}: {exc}")
        return _defer(
            runtime,
            dispatcher,
            record,
            org_id,
            recording_id,
            token,
            claim.attempts,
            deferral,
        )


def _on_expired(runtime: Runtime, org_id: str, recording_id: str, attempts: int) -> str:
    """Clean up after the claim found the record past its deadline and failed it."""
    record = runtime.store.get(org_id, recording_id)
    if record is not None:
        _forget_topic(runtime, record)
        forget_conversation_topic(
            runtime, org_id, record.conversation_id, record.user_id
        )
    runtime.store.incr(org_id, "fetch:failed")
    log.warning(
        "org %s recording %s: failed: retry deadline passed after %d attempts",
        org_id,
        recording_id,
        attempts,
    )
    return "failed"


def _attempt(
    runtime: Runtime,
    dispatcher: Dispatcher,
    record: Record,
    token: str,
    attempts: int,
) -> str:
    """Ask the platform once for a claimed record and settle or defer it."""
    store = runtime.store
    org_id, recording_id = record.org_id, record.recording_id
    org = runtime.org(org_id)
    permission = org.breaker.allow()
    if not permission.allowed:
        store.incr(org_id, "fetch:breaker-open")
        return _defer_to_batch(
            runtime,
            dispatcher,
            record,
            token,
            attempts,
            f"{org.breaker.endpoint} circuit breaker is {permission.state}",
        )
    try:
        with org.breaker.probing(permission):
            body = org.client.recording_metadata(record.conversation_id, recording_id)
        check_metadata(body, org_id=org_id, recording_id=recording_id)
    except PlatformPending as exc:
        store.incr(org_id, "fetch:timeout" if exc.timed_out else "fetch:pending")
        deferral = Deferral(str(exc), realtime_may_help=not exc.timed_out)
    except RateLimited as exc:
        store.incr(org_id, "fetch:rate-limited")
        deferral = Deferral(f"rate limited: {exc}", not_before=exc.retry_at)
    except NotFound as exc:
        # A satellite may not know the conversation until it has propagated.
        store.incr(org_id, "fetch:not-found")
        deferral = Deferral(f"not found yet: {exc}", realtime_may_help=True)
    except AuthenticationError as exc:
        store.incr(org_id, "fetch:auth-error")
        log.error("org %s: authentication failed: %s", org_id, exc)
        deferral = Deferral(f"authentication failed: {exc}")
    except PlatformError as exc:
        store.incr(org_id, "fetch:error")
        log.warning(
            "org %s conversation %s recording %s: fetch failed: %s",
            org_id,
            record.conversation_id,
            recording_id,
            exc,
        )
        deferral = Deferral(str(exc))
    except RecsyncError as exc:
        store.incr(org_id, "fetch:error")
        log.error("org %s recording %s: %s", org_id, recording_id, exc)
        deferral = Deferral(str(exc))
    else:
        if is_final(body):
            _forget_topic(runtime, record)
            outcome = _settle_ready(runtime, org_id, recording_id, token, body)
            forget_conversation_topic(
                runtime, org_id, record.conversation_id, record.user_id
            )
            return outcome
        store.incr(org_id, "fetch:not-final")
        deferral = Deferral(
            f"fileState {body.get('fileState')!r} is not final yet",
            realtime_may_help=True,
        )

    return _defer(
        runtime,
        dispatcher,
        record,
        org_id,
        recording_id,
        token,
        attempts,
        deferral,
    )


def _event_will_come(runtime: Runtime, record: Record) -> bool:
    """Tell whether the org's live socket is subscribed to this recording's topic."""
    if not record.user_id or not runtime.realtime_connected(record.org_id):
        return False
    topic = recording_topic(record.user_id, record.conversation_id, record.recording_id)
    return TopicRegistry(runtime.redis).is_live(record.org_id, topic)


def _forget_topic(runtime: Runtime, record: Record) -> None:
    if record.user_id:
        topic = recording_topic(
            record.user_id, record.conversation_id, record.recording_id
        )
        TopicRegistry(runtime.redis, clock=runtime.clock).remove(record.org_id, topic)


def _settle_ready(
    runtime: Runtime,
    org_id: str,
    recording_id: str,
    token: str,
    body: dict[str, object],
) -> str:
    outcome = runtime.store.mark_ready(
        org_id, recording_id, token=token, metadata=body, fingerprint=fingerprint(body)
    )
    runtime.store.incr(org_id, "fetch:ready")
    log.debug("org %s recording %s: ready (%s)", org_id, recording_id, outcome)
    return "ready"


def _defer_to_batch(
    runtime: Runtime,
    dispatcher: Dispatcher,
    record: Record,
    token: str,
    attempts: int,
    error: str,
) -> str:
    org_id, recording_id = record.org_id, record.recording_id
    next_at = next_sweep_at(runtime, org_id)
    if next_at > record.created_at + runtime.backoff.deadline_s:
        return _fail(runtime, record, token, attempts, error)
    outcome = runtime.store.defer(
        org_id,
        recording_id,
        token=token,
        next_attempt_at=next_at,
        error=error,
        state=State.BATCH_PENDING,
    )
    if outcome != "ok":
        return outcome
    # The record is batch-pending before the sweep is sent, so a sweep sent now
    # finds it.
    schedule_sweep(runtime, dispatcher, org_id)
    log.debug(
        "org %s recording %s: %s; left to the batch sweep", org_id, recording_id, error
    )
    return "batch-pending"


def _fail(
    runtime: Runtime, record: Record, token: str, attempts: int, error: str
) -> str:
    org_id, recording_id = record.org_id, record.recording_id
    _forget_topic(runtime, record)
    runtime.store.mark_failed(
        org_id,
        recording_id,
        token=token,
        error=f"retry deadline passed after {attempts} attempts; last: {error}",
    )
    forget_conversation_topic(runtime, org_id, record.conversation_id, record.user_id)
    runtime.store.incr(org_id, "fetch:failed")
    log.warning(
        "org %s recording %s: failed after %d attempts: %s",
        org_id,
        recording_id,
        attempts,
        error,
    )
    return "failed"


def _defer(
    runtime: Runtime,
    dispatcher: Dispatcher,
    record: Record,
    org_id: str,
    recording_id: str,
    token: str,
    attempts: int,
    deferral: Deferral,
) -> str:
    now = runtime.clock()
    schedule = runtime.backoff
    created_at = record.created_at
    if deferral.realtime_may_help and _event_will_come(runtime, record):
        # The socket will announce the recording; poll only as a safety net.
        not_before = max(deferral.not_before, now + schedule.max_delay_s)
    else:
        not_before = deferral.not_before
    next_at = schedule.next_attempt_at(
        attempt=attempts, now=now, created_at=created_at, not_before=not_before
    )
    if next_at is None:
        current = runtime.store.get(org_id, recording_id)
        if current is None:
            return "missing"
        return _fail(runtime, current, token, attempts, deferral.error)

    outcome = runtime.store.defer(
        org_id,
        recording_id,
        token=token,
        next_attempt_at=next_at,
        error=deferral.error,
        state=State.ASYNC_PENDING,
    )
    if outcome != "ok":
        return outcome
    dispatcher.fetch(
        org_id,
        recording_id,
        reason="retry",
        expected_attempts=attempts,
        delay_s=max(next_at - now, 0.0),
    )
    log.debug(
        "org %s recording %s: attempt %d not ready (%s); next in %.2f s",
        org_id,
        recording_id,
        attempts,
        deferral.error,
        next_at - now,
    )
    return "deferred"
