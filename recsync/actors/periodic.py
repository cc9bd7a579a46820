"""Periodic jobs started from inside every worker process.

Dramatiq has no scheduler, and a self-rescheduling actor stops for good if its delayed
message is lost (which a Redis restart can do). Instead each worker process runs one
small thread that, every tick, tries to win a cluster-wide Redis lock per job
(``SET NX PX period``). The winner enqueues that job's actor. So the reconciler runs
once per period per org across the cluster for as long as any worker lives, an org
whose realtime lease is free gets a new subscriber, and an org whose breaker is not
closed or that has ``batch-pending`` records gets a batch sweep every
``batch.interval_s``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import dramatiq
from dramatiq.middleware import Middleware

from recsync.actors.dispatch import Dispatcher
from recsync.resilience.breaker import BreakerState, peek_state
from recsync.runtime import METADATA_ENDPOINT, Runtime
from recsync.store import State, keys

log = logging.getLogger(__name__)


class PeriodicJobs(Middleware):
    """Dramatiq middleware that starts the scheduling thread when a worker boots."""

    def __init__(
        self,
        *,
        runtime: Callable[[], Runtime],
        dispatcher: Callable[[], Dispatcher],
        tick_s: float | None = None,
    ) -> None:
        self._runtime = runtime
        self._dispatcher = dispatcher
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def after_worker_boot(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name="recsync-periodic", daemon=True
        )
        self._thread.start()

    def before_worker_shutdown(
        self, broker: dramatiq.Broker, worker: dramatiq.Worker
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        runtime: Runtime | None = None
        tick_s = self._tick_s or 1.0
        while not self._stop.wait(tick_s):
            try:
                if runtime is None:
                    runtime = self._runtime()
                    interval_s = runtime.policies.reconciler.interval_s
                    tick_s = self._tick_s or min(1.0, interval_s / 4)
                run_due_jobs(runtime, self._dispatcher())
            except Exception:  # keep scheduling whatever one tick hit
                log.exception("periodic jobs: tick failed; retrying next tick")


def _win(runtime: Runtime, job: str, period_s: float) -> bool:
    period_ms = max(int(period_s * 1000), 1)
    return bool(runtime.redis.set(keys.schedule_lock(job), 1, nx=True, px=period_ms))


def _sweep_job(org_id: str) -> str:
    return f"sweep:{org_id}"


def schedule_sweep(runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> bool:
    """Send a batch sweep unless one was sent within ``batch.interval_s``."""
    interval_s = runtime.policies.batch.interval_s
    if not _win(runtime, _sweep_job(org_id), interval_s):
        return False
    dispatcher.sweep(org_id)
    return True


def next_sweep_at(runtime: Runtime, org_id: str) -> float:
    """Return the earliest time (epoch s) the next batch sweep of the org may start."""
    remaining_ms = int(runtime.redis.pttl(keys.schedule_lock(_sweep_job(org_id))))
    return runtime.clock() + max(remaining_ms, 0) / 1000.0


def sweep_needed(runtime: Runtime, org_id: str) -> bool:
    """Tell whether the org's breaker is not closed or it has batch-pending records."""
    # Peek at Redis rather than build the org's client on the scheduling thread.
    state = peek_state(runtime.redis, org_id, METADATA_ENDPOINT, now=runtime.clock())
    if state is not BreakerState.CLOSED:
        return True
    pending = runtime.redis.zcard(keys.by_state(org_id, str(State.BATCH_PENDING)))
    return int(pending) > 0


def run_due_jobs(runtime: Runtime, dispatcher: Dispatcher) -> list[str]:
    """Enqueue every periodic job whose period has passed; return their names."""
    started = []
    for org_id in runtime.org_ids():
        try:
            started.extend(_run_org_jobs(runtime, dispatcher, org_id))
        except Exception:  # one org's failure must not starve the others
            log.exception("periodic jobs: org %s failed this tick", org_id)
    return started


def _run_org_jobs(runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> list[str]:
    started: list[str] = []
    policies = runtime.policies
    if not runtime.is_active(org_id):
        return started
    if _win(runtime, f"reconcile:{org_id}", policies.reconciler.interval_s):
        dispatcher.reconcile(org_id)
        started.append(f"reconcile:{org_id}")
    if (
        runtime.manifest.flags.realtime
        and not runtime.redis.exists(keys.subscriber_lease(org_id))
        and _win(runtime, f"subscribe:{org_id}", policies.realtime.lease_ttl_s)
    ):
        dispatcher.subscribe(org_id)
        started.append(f"subscribe:{org_id}")
    if sweep_needed(runtime, org_id) and schedule_sweep(runtime, dispatcher, org_id):
        started.append(_sweep_job(org_id))
    return started
