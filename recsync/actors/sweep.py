"""The batch sweep: settle an org's ``batch-pending`` records while its breaker is open.

While the ``recordingmetadata`` breaker is open, fetches put records in
``batch-pending`` instead of calling the platform. One sweep per org runs at a time
across the cluster (a Redis lock with a TTL) and settles them in one of two ways,
whichever costs fewer requests:

- conversation calls: one ``GET .../conversations/{id}/recordingmetadata`` per
  conversation settles all of its recordings;
- a batch job: ``POST /api/v2/recording/batchrequests`` (at most ``max_items``
  recordings), polled by re-sending the sweep with a delay of ``job_poll_s`` (the
  worker thread never sleeps), then one conversation call per conversation the job
  reports available. The job costs its submission and polls but skips conversations
  that are not available yet.

A half-open breaker gets its probe from the sweep (one batch-pending record fetched
the normal way), and once the breaker is closed the sweep sends every remaining
batch-pending record back to the normal fetch path.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

from recsync.actors.conversation import forget_conversation_topic
from recsync.actors.dispatch import Dispatcher
from recsync.actors.fetch import fetch_record
from recsync.errors import NotYet, RecsyncError
from recsync.platform.metadata import check_metadata, fingerprint, is_final
from recsync.resilience.breaker import BreakerState
from recsync.runtime import Runtime
from recsync.store import Record, State, keys
from recsync.store.topics import TopicRegistry, recording_topic

log = logging.getLogger(__name__)

# Polls a batch job is expected to need; an estimate, since the platform gives no
# completion time.
EXPECTED_POLLS_PER_JOB = 2
# Share of conversations assumed available before any batch job has reported one.
DEFAULT_AVAILABLE_SHARE = 0.5
# A job that has not completed after this many polls is abandoned; its records stay
# batch-pending for the next sweep.
MAX_POLLS = 60
RESUME_PAGE = 500

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


@attrs.frozen
class SweepJob:
    """A submitted batch job that a sweep message carries from poll to poll."""

    job_id: str
    token: str
    items: tuple[tuple[str, str], ...]
    polls: int = 0


class SweepDispatcher(Dispatcher, Protocol):
    """A dispatcher that can also re-send a sweep to poll its batch job."""

    def poll_sweep(self, org_id: str, job: SweepJob, *, delay_s: float) -> None:
        """Send the sweep of ``job`` again after ``delay_s`` seconds."""


def lock_key(org_id: str) -> str:
    """Lock held by the one sweep of an org that is running."""
    return f"{keys.org_prefix(org_id)}:sweep:lock"


def stats_key(org_id: str) -> str:
    """Hash with what the last batch job reported (share of available conversations)."""
    return f"{keys.org_prefix(org_id)}:sweep:stats"


def choose_mode(*, conversations: int, jobs: int, available_share: float) -> str:
    """Return ``batch`` or ``conversations``: whichever is estimated to cost less.

    Conversation calls cost one request per conversation. A batch job costs its
    submission and polls per job plus one call per available conversation.
    """
    direct = conversations
    batch = jobs * (1 + EXPECTED_POLLS_PER_JOB) + math.ceil(
        conversations * min(max(available_share, 0.0), 1.0)
    )
    return "batch" if batch < direct else "conversations"


def sweep_org(
    runtime: Runtime,
    dispatcher: SweepDispatcher,
    org_id: str,
    *,
    job: SweepJob | None = None,
) -> str:
    """Run one sweep step for an org; return what happened (for logs and tests)."""
    if not runtime.is_active(org_id):
        return "inactive"
    lock_ttl_ms = _lock_ttl_ms(runtime)
    if job is None:
        token = uuid.uuid4().hex
        won = runtime.redis.set(lock_key(org_id), token, nx=True, px=lock_ttl_ms)
        if not won:
            return "busy"
        runtime.store.incr(org_id, "sweep:passes")
    else:
        token = job.token
        extend = runtime.redis.register_script(_EXTEND)
        if not extend(keys=[lock_key(org_id)], args=[token, lock_ttl_ms]):
            # The lock expired and another sweep may own the records now.
            log.info(
                "org %s: sweep lock lost; dropping batch job %s", org_id, job.job_id
            )
            return "lost"

    outcome = "error"
    try:
        if job is None:
            outcome = _start(runtime, dispatcher, org_id, token)
        else:
            outcome = _poll(runtime, dispatcher, org_id, job)
    finally:
        if outcome != "polling":
            release = runtime.redis.register_script(_RELEASE)
            release(keys=[lock_key(org_id)], args=[token])
    return outcome


def _lock_ttl_ms(runtime: Runtime) -> int:
    batch = runtime.policies.batch
    ttl_s = max(batch.job_poll_s * 4, runtime.claim_lease_s * 2)
    return max(int(ttl_s * 1000), 1)


def _start(
    runtime: Runtime, dispatcher: SweepDispatcher, org_id: str, token: str
) -> str:
    breaker = runtime.breaker(org_id)
    if breaker.state() is BreakerState.HALF_OPEN:
        _probe(runtime, dispatcher, org_id)
    if breaker.state() is BreakerState.CLOSED:
        resumed = resume_fetches(runtime, dispatcher, org_id)
        return "resumed" if resumed else "idle"

    batch = runtime.policies.batch
    records, _next = runtime.store.list_by_state(
        org_id, State.BATCH_PENDING, limit=batch.max_items
    )
    if not records:
        return "idle"
    conversations = {r.conversation_id for r in records}
    jobs = math.ceil(len(records) / batch.max_items)
    mode = choose_mode(
        conversations=len(conversations),
        jobs=jobs,
        available_share=_available_share(runtime, org_id),
    )
    if mode == "conversations":
        settled = settle_conversations(runtime, org_id, records, token=token)
        runtime.store.incr(org_id, "sweep:conversation-mode")
        log.info(
            "org %s: sweep settled %d of %d batch-pending records with %d "
            "conversation calls",
            org_id,
            settled,
            len(records),
            len(conversations),
        )
        return "conversations"

    items = tuple((r.conversation_id, r.recording_id) for r in records)
    client = runtime.org(org_id).client
    try:
        job_id = client.submit_batch(list(items))
    except (RecsyncError, NotYet) as exc:
        runtime.store.incr(org_id, "sweep:error")
        log.warning("org %s: batch job submission failed: %s", org_id, exc)
        return "error"
    runtime.store.incr(org_id, "sweep:batch-jobs")
    log.info(
        "org %s: batch job %s submitted for %d records", org_id, job_id, len(items)
    )
    dispatcher.poll_sweep(
        org_id, SweepJob(job_id, token, items), delay_s=batch.job_poll_s
    )
    return "polling"


def _poll(
    runtime: Runtime, dispatcher: SweepDispatcher, org_id: str, job: SweepJob
) -> str:
    batch = runtime.policies.batch
    client = runtime.org(org_id).client
    polls = job.polls + 1
    try:
        status = client.batch_status(job.job_id)
    except (RecsyncError, NotYet) as exc:
        log.warning("org %s: batch job %s: status failed: %s", org_id, job.job_id, exc)
        status = {}
    if status.get("status") != "Completed":
        if polls >= MAX_POLLS:
            log.warning(
                "org %s: batch job %s not completed after %d polls; abandoned",
                org_id,
                job.job_id,
                polls,
            )
            return "abandoned"
        dispatcher.poll_sweep(
            org_id, attrs.evolve(job, polls=polls), delay_s=batch.job_poll_s
        )
        return "polling"

    available = _available_conversations(status.get("results"))
    requested = {cid for cid, _rid in job.items}
    if requested:
        share = len(available & requested) / len(requested)
        runtime.redis.hset(stats_key(org_id), "available_share", repr(share))
    records = [
        r
        for r in runtime.store.get_many(org_id, [rid for _cid, rid in job.items])
        if r.state is State.BATCH_PENDING and r.conversation_id in available
    ]
    settled = settle_conversations(runtime, org_id, records, token=job.token)
    log.info(
        "org %s: batch job %s completed: %d of %d records settled",
        org_id,
        job.job_id,
        settled,
        len(job.items),
    )
    return "settled"


def _available_conversations(results: Any) -> set[str]:
    available: set[str] = set()
    if not isinstance(results, list):
        return available
    for result in results:
        if not isinstance(result, dict) or not result.get("resultUrl"):
            continue
        conversation_id = result.get("conversationId")
        if isinstance(conversation_id, str):
            available.add(conversation_id)
    return available


def _available_share(runtime: Runtime, org_id: str) -> float:
    raw = runtime.redis.hget(stats_key(org_id), "available_share")
    if raw is None:
        return DEFAULT_AVAILABLE_SHARE
    return float(raw)


def settle_conversations(
    runtime: Runtime, org_id: str, records: Iterable[Record], *, token: str
) -> int:
    """Fetch each conversation's metadata once and mark its final recordings ready.

    Returns how many records became ready. A conversation whose call fails leaves its
    records batch-pending for the next sweep.
    """
    by_conversation: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_conversation[record.conversation_id].append(record)
    client = runtime.org(org_id).client
    settled = 0
    for conversation_id, waiting in by_conversation.items():
        try:
            bodies = client.conversation_metadata(conversation_id)
        except (RecsyncError, NotYet) as exc:
            runtime.store.incr(org_id, "sweep:call-failed")
            log.debug(
                "org %s conversation %s: sweep call failed: %s",
                org_id,
                conversation_id,
                exc,
            )
            continue
        by_id = {str(b.get("id")): b for b in bodies}
        for record in waiting:
            if _settle_one(runtime, record, by_id.get(record.recording_id), token):
                settled += 1
    if settled:
        runtime.store.incr(org_id, "sweep:ready", settled)
    return settled


def _settle_one(
    runtime: Runtime, record: Record, body: dict[str, Any] | None, token: str
) -> bool:
    if body is None or not is_final(body):
        return False
    org_id, recording_id = record.org_id, record.recording_id
    try:
        check_metadata(body, org_id=org_id, recording_id=recording_id)
    except (RecsyncError, NotYet) as exc:
        log.warning("org %s recording %s: %s", org_id, recording_id, exc)
        return False
    # A ready result needs no claim, because the store accepts it from any worker.
    outcome = runtime.store.mark_ready(
        org_id, recording_id, token=token, metadata=body, fingerprint=fingerprint(body)
    )
    if record.user_id:
        topic = recording_topic(record.user_id, record.conversation_id, recording_id)
        TopicRegistry(runtime.redis, clock=runtime.clock).remove(org_id, topic)
        forget_conversation_topic(
            runtime, org_id, record.conversation_id, record.user_id
        )
    return outcome in ("ok", "updated", "unchanged")


def _probe(runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> None:
    # Fetch one batch-pending record the normal way: the fetch asks the breaker and,
    # if no other worker holds the probe, its call is the half-open probe.
    records, _next = runtime.store.list_by_state(org_id, State.BATCH_PENDING, limit=1)
    if records:
        outcome = fetch_record(
            runtime, dispatcher, org_id, records[0].recording_id, reason="resume"
        )
        log.info("org %s: sweep probe fetch: %s", org_id, outcome)


def resume_fetches(runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> int:
    """Send a fetch for every batch-pending record; return how many were sent."""
    sent = 0
    offset: int | None = 0
    while offset is not None:
        page, offset = runtime.store.list_by_state(
            org_id, State.BATCH_PENDING, offset=offset, limit=RESUME_PAGE
        )
        for record in page:
            dispatcher.fetch(org_id, record.recording_id, reason="resume")
            sent += 1
    if sent:
        runtime.store.incr(org_id, "sweep:resumed", sent)
        log.info(
            "org %s: breaker closed; %d batch-pending records resumed", org_id, sent
        )
    return sent
