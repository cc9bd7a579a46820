"""Injected faults: which apply now, the dice that pick hit requests, bad bodies.

Dice come from a random stream seeded by the scenario, so a run with the same order
of requests hits the same ones. Faults can be added while the emulator runs.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from typing import Any

import attrs

from recsync.emulator.scenario import ONE_SHOT_FAULTS, FaultSpec

logger = logging.getLogger(__name__)

# An oversized body carries this much filler, far above any real metadata document.
OVERSIZED_PADDING_BYTES = 2 * 1024 * 1024


@attrs.frozen
class RequestFault:
    """What the faults in force do to one API request; all fields may combine."""

    rate_limit_retry_after_s: int | None = None
    server_error: FaultSpec | None = None
    time_out: bool = False
    delay_ms: float = 0.0
    invalid_body: str | None = None


@attrs.frozen
class EventFault:
    """What the faults in force do to one notification event."""

    silent: bool = False
    drop: bool = False
    duplicate: bool = False
    reorder: bool = False


class FaultBook:
    """The faults of a run, from the scenario and added at run time."""

    def __init__(self, faults: tuple[FaultSpec, ...], *, seed: int) -> None:
        self._lock = threading.Lock()
        self._faults: list[FaultSpec] = list(faults)
        self._fired: set[int] = set()
        # fault index -> how many requests or events it has hit (for ``count``)
        self._hits: dict[int, int] = {}
        self._rng = random.Random(f"{seed}:faults")

    def add(self, fault: FaultSpec) -> None:
        """Add a fault while the emulator runs."""
        with self._lock:
            self._faults.append(fault)
        logger.info("fault added: org=%s kind=%s", fault.org, fault.kind)

    def all(self) -> list[FaultSpec]:
        """Return every fault, fired or not."""
        with self._lock:
            return list(self._faults)

    def _active(self, org_id: str, kind: str, now_s: float) -> list[FaultSpec]:
        with self._lock:
            return [
                fault
                for fault in self._faults
                if fault.org == org_id and fault.kind == kind and fault.active_at(now_s)
            ]

    def _hit(self, org_id: str, kind: str, now_s: float) -> FaultSpec | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.org != org_id or fault.kind != kind:
                    continue
                if not fault.active_at(now_s):
                    continue
                hits = self._hits.get(index, 0)
                if fault.count is not None and hits >= fault.count:
                    continue
                if self._rng.random() < fault.ratio:
                    self._hits[index] = hits + 1
                    return fault
        return None

    def for_request(self, org_id: str, now_s: float) -> RequestFault:
        """Roll the dice of the request faults in force, in order of precedence.

        A 429, a server error or a timeout ends the request, so the faults after
        it are not rolled and do not use up their ``count``.
        """
        limited = self._hit(org_id, "rate_limit", now_s)
        if limited is not None:
            return RequestFault(rate_limit_retry_after_s=limited.retry_after_s or 60)
        error = self._hit(org_id, "server_error", now_s)
        if error is not None:
            return RequestFault(server_error=error)
        if self._hit(org_id, "timeout_ratio", now_s) is not None:
            return RequestFault(time_out=True)

        slow = self._hit(org_id, "slow", now_s)
        invalid = self._hit(org_id, "invalid_body", now_s)
        return RequestFault(
            delay_ms=slow.delay_ms if slow else 0.0,
            invalid_body=invalid.body if invalid else None,
        )

    def for_event(self, org_id: str, now_s: float) -> EventFault:
        """Roll the dice of every socket fault in force for one event."""
        return EventFault(
            silent=self.is_silent(org_id, now_s),
            drop=self._hit(org_id, "drop_events", now_s) is not None,
            duplicate=self._hit(org_id, "duplicate_events", now_s) is not None,
            reorder=self._hit(org_id, "reorder_events", now_s) is not None,
        )

    def is_silent(self, org_id: str, now_s: float) -> bool:
        """Tell whether an org's sockets are silenced (no heartbeats, no events)."""
        return bool(self._active(org_id, "silent_socket", now_s))

    def due_one_shots(self, now_s: float) -> list[FaultSpec]:
        """Return one-shot faults due by ``now_s`` and mark them fired."""
        due = []
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.kind not in ONE_SHOT_FAULTS or index in self._fired:
                    continue
                if fault.at_s <= now_s:
                    self._fired.add(index)
                    due.append(fault)
        return due

    def next_one_shot_s(self) -> float | None:
        """Return when the next unfired one-shot fault is due, if any."""
        with self._lock:
            pending = [
                fault.at_s
                for index, fault in enumerate(self._faults)
                if fault.kind in ONE_SHOT_FAULTS and index not in self._fired
            ]
        return min(pending) if pending else None


def corrupt_body(document: Any, kind: str) -> tuple[bytes, str]:
    """Spoil a JSON document the way ``kind`` says; return the body and media type."""
    if kind == "html":
        html = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        return html.encode(), "text/html"
    if kind == "not_json":
        text = json.dumps(document)
        return text[: max(1, len(text) // 2)].encode(), "application/json"
    if kind == "oversized":
        padded = {"items": document, "padding": "x" * OVERSIZED_PADDING_BYTES}
        return json.dumps(padded).encode(), "application/json"
    transform = {
        "wrong_types": _wrong_types,
        "missing_fields": _missing_fields,
        "unknown_enum": _unknown_enum,
    }[kind]
    return json.dumps(_map_documents(document, transform)).encode(), "application/json"


def _map_documents(document: Any, transform: Any) -> Any:
    if isinstance(document, list):
        return [_map_documents(item, transform) for item in document]
    if isinstance(document, dict):
        return transform(dict(document))
    return document


def _wrong_types(document: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(document.items()):
        if isinstance(value, str):
            document[key] = 12345
        elif isinstance(value, list):
            document[key] = "not-a-list"
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            document[key] = str(value)
    return document


def _missing_fields(document: dict[str, Any]) -> dict[str, Any]:
    for key in ("id", "conversationId", "fileState", "media", "status", "entities"):
        document.pop(key, None)
    return document


def _unknown_enum(document: dict[str, Any]) -> dict[str, Any]:
    replacements = {
        "fileState": "QUARANTINED",
        "media": "hologram",
        "mediaSubtype": "Telepathy",
        "status": "Paused",
        "state": "Pondering",
    }
    for key, value in replacements.items():
        if key in document:
            document[key] = value
    return document
