"""The reconciler: re-send every record that the store lists as owed.

Dramatiq's delayed messages are the fast path only: a killed worker's messages come
back late, a Redis restart can strand the delayed messages a worker holds, and a
delayed message can be promoted twice. The store's ``due`` set is the source of truth,
so each pass sends a fetch for every record whose time has come and that no fetch has
settled. Duplicates are harmless: the store's claim lets one fetch through.
"""

from __future__ import annotations

import logging

from recsync.actors.dispatch import Dispatcher
from recsync.runtime import Runtime
from recsync.store.topics import TopicRegistry

log = logging.getLogger(__name__)

PASS_LIMIT = 5000


def reconcile_org(runtime: Runtime, dispatcher: Dispatcher, org_id: str) -> int:
    """Send a fetch for each overdue record of one org; return how many were sent."""
    if not runtime.is_active(org_id):
        return 0
    grace_s = max(runtime.policies.reconciler.interval_s, runtime.claim_lease_s)
    # A record only just due most likely has its delayed message on the way.
    late_by_s = runtime.policies.request_timeout_s
    overdue = runtime.store.take_overdue(
        org_id, limit=PASS_LIMIT, grace_s=grace_s, late_by_s=late_by_s
    )
    for recording_id in overdue:
        dispatcher.fetch(org_id, recording_id, reason="reconcile")
    topics = TopicRegistry(runtime.redis, clock=runtime.clock)
    pruned = topics.prune(
        org_id, added_before=runtime.clock() - runtime.backoff.deadline_s
    )
    if pruned:
        log.info(
            "org %s: dropped %d topics older than the retry deadline", org_id, pruned
        )
    if overdue:
        runtime.store.incr(org_id, "reconciler:resent", len(overdue))
        log.info("org %s: reconciler re-sent %d overdue records", org_id, len(overdue))
    return len(overdue)
