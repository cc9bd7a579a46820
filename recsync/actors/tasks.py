"""The Dramatiq actors: fetch, subscribe, reconcile, sweep.

Importing this module declares the actors on the installed broker (see
:mod:`recsync.actors.broker`), so ``dramatiq recsync.actors.tasks`` runs a worker.
The actors are thin: each builds nothing, takes the process's runtime and calls the
logic in :mod:`recsync.actors.fetch`, :mod:`recsync.actors.subscribe` and
:mod:`recsync.actors.reconcile` and :mod:`recsync.actors.sweep`.
"""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.middleware import Shutdown

from recsync import runtime as _runtime
from recsync.actors.broker import broker_from_environment, install_broker
from recsync.actors.conversation import fetch_conversation
from recsync.actors.fetch import fetch_record
from recsync.actors.periodic import PeriodicJobs
from recsync.actors.reconcile import reconcile_org
from recsync.actors.subscribe import Subscriber
from recsync.actors.sweep import SweepJob, sweep_org

log = logging.getLogger(__name__)

QUEUE = "recsync"
REALTIME_QUEUE = "recsync-realtime"

broker = broker_from_environment()


def _ms(seconds: float) -> int:
    return max(int(seconds * 1000), 0)


class ActorDispatcher:
    """Sends recsync's messages through the Dramatiq actors below."""

    def fetch(
        self,
        org_id: str,
        recording_id: str,
        *,
        reason: str,
        expected_attempts: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        fetch_metadata.send_with_options(
            args=(org_id, recording_id),
            kwargs={"reason": reason, "expected_attempts": expected_attempts},
            delay=_ms(delay_s) or None,
        )

    def conversation(
        self,
        org_id: str,
        conversation_id: str,
        *,
        user_id: str | None,
        expects_screen: bool = False,
    ) -> None:
        fetch_conversation_metadata.send(
            org_id, conversation_id, user_id=user_id, expects_screen=expects_screen
        )

    def subscribe(self, org_id: str, *, delay_s: float = 0.0) -> None:
        subscribe.send_with_options(args=(org_id,), delay=_ms(delay_s) or None)

    def reconcile(self, org_id: str) -> None:
        reconcile.send(org_id)

    def sweep(self, org_id: str) -> None:
        sweep.send(org_id)

    def poll_sweep(self, org_id: str, job: SweepJob, *, delay_s: float) -> None:
        sweep.send_with_options(
            args=(org_id,),
            kwargs={
                "job_id": job.job_id,
                "token": job.token,
                "items": [list(item) for item in job.items],
                "polls": job.polls,
            },
            delay=_ms(delay_s) or None,
        )


dispatcher = ActorDispatcher()


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=120_000)
def fetch_metadata(
    org_id: str,
    recording_id: str,
    *,
    reason: str = "retry",
    expected_attempts: int | None = None,
) -> None:
    """Fetch one recording's metadata without waiting on the platform."""
    fetch_record(
        _runtime.current(),
        dispatcher,
        org_id,
        recording_id,
        reason=reason,
        expected_attempts=expected_attempts,
    )


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=120_000)
def fetch_conversation_metadata(
    org_id: str,
    conversation_id: str,
    *,
    user_id: str | None = None,
    expects_screen: bool = False,
) -> None:
    """Settle every visible recording of a conversation with one platform call."""
    fetch_conversation(
        _runtime.current(),
        org_id,
        conversation_id,
        user_id=user_id,
        expects_screen=expects_screen,
    )


# notify_shutdown makes a worker's shutdown raise in this thread, so the session ends
# (and its lease is released) instead of holding the shutdown for the whole session.
@dramatiq.actor(
    queue_name=REALTIME_QUEUE,
    max_retries=0,
    time_limit=3_600_000,
    notify_shutdown=True,
)
def subscribe(org_id: str) -> None:
    """Hold the org's realtime socket for one session, then hand over."""
    runtime = _runtime.current()
    try:
        outcome = Subscriber(runtime, dispatcher, org_id).run()
    except Shutdown:
        # The worker is stopping; the session released its lease on the way out.
        log.info("org %s: realtime session ended by worker shutdown", org_id)
        return
    log.info("org %s: realtime session ended: %s", org_id, outcome)
    if outcome in ("session-ended", "error") and runtime.is_active(org_id):
        delay_s = 0.0 if outcome == "session-ended" else runtime.backoff.initial_delay_s
        dispatcher.subscribe(org_id, delay_s=delay_s)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=120_000)
def reconcile(org_id: str) -> None:
    """Re-send every overdue record of one org."""
    reconcile_org(_runtime.current(), dispatcher, org_id)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=600_000)
def sweep(
    org_id: str,
    *,
    job_id: str | None = None,
    token: str | None = None,
    items: list[list[str]] | None = None,
    polls: int = 0,
) -> None:
    """Settle one org's batch-pending records, or poll the batch job in progress."""
    job = None
    if job_id is not None and token is not None:
        pairs = tuple((str(cid), str(rid)) for cid, rid in items or [])
        job = SweepJob(job_id, token, pairs, polls)
    outcome = sweep_org(_runtime.current(), dispatcher, org_id, job=job)
    log.debug("org %s: sweep step: %s", org_id, outcome)


def attach_broker(target: dramatiq.Broker) -> dramatiq.Broker:
    """Declare every actor of this module on ``target`` and install it.

    Actors bind to a broker once, when this module is first imported. A process that
    switches brokers later (the demo, tests) calls this to move them.
    """
    for actor in (
        fetch_metadata,
        fetch_conversation_metadata,
        subscribe,
        reconcile,
        sweep,
    ):
        actor.broker = target
        target.declare_actor(actor)
    if not any(isinstance(m, PeriodicJobs) for m in target.middleware):
        target.add_middleware(
            PeriodicJobs(runtime=_runtime.current, dispatcher=lambda: dispatcher)
        )
    install_broker(target)
    return target


attach_broker(broker)

__all__ = [
    "QUEUE",
    "REALTIME_QUEUE",
    "ActorDispatcher",
    "attach_broker",
    "broker",
    "dispatcher",
    "fetch_conversation_metadata",
    "fetch_metadata",
    "reconcile",
    "subscribe",
    "sweep",
]
