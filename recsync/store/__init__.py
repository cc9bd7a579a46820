"""Record state in Redis: the source of truth for what is owed."""

from recsync.store.records import Claim, ClaimOutcome, Record, RecordStore, State

__all__ = ["Claim", "ClaimOutcome", "Record", "RecordStore", "State"]
