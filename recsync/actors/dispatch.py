"""The seam between recsync's logic and Dramatiq: sending actor messages.

Logic modules take a :class:`Dispatcher` rather than calling actors directly, so unit
tests can record what would be sent without a broker.
"""

from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    """Sends recsync's actor messages."""

    def fetch(
        self,
        org_id: str,
        recording_id: str,
        *,
        reason: str,
        expected_attempts: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        """Send a fetch for one record, after ``delay_s`` seconds."""

    def conversation(
        self,
        org_id: str,
        conversation_id: str,
        *,
        user_id: str | None,
        expects_screen: bool = False,
    ) -> None:
        """Send a conversation-level fetch (one call settles all its recordings)."""

    def subscribe(self, org_id: str, *, delay_s: float = 0.0) -> None:
        """Send a realtime subscriber session for one org."""

    def reconcile(self, org_id: str) -> None:
        """Send a reconciler pass for one org."""

    def sweep(self, org_id: str) -> None:
        """Send a batch sweep for one org."""
