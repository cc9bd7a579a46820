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

from recsync import runtime as _runtime
from recsync.actors.broker import broker_from_environment
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


@dramatiq.actor(queue_name=REALTIME_QUEUE, max_retries=0, time_limit=3_600_000)
def subscribe(org_id: str) -> None:
    """Hold the org's realtime socket for one session, then hand over."""
    runtime = _runtime.current()
    outcome = Subscriber(runtime, dispatcher, org_id).run()
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


broker.add_middleware(
    PeriodicJobs(runtime=_runtime.current, dispatcher=lambda: dispatcher)
)

__all__ = [
    "QUEUE",
    "REALTIME_QUEUE",
    "ActorDispatcher",
    "broker",
    "dispatcher",
    "fetch_metadata",
    "reconcile",
    "subscribe",
    "sweep",
]
