"""Batch download jobs: submitted by one client, completed after a fixed delay."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs

MAX_BATCH_ITEMS = 100


@attrs.frozen
class BatchItem:
    """One requested (conversation, recording) pair; no recording means all."""

    conversation_id: str
    recording_id: str | None


@attrs.frozen
class BatchJob:
    """A submitted job; its results are computed for the completion time."""

    id: str
    org_id: str
    client_id: str
    items: tuple[BatchItem, ...]
    submitted_at_s: float
    completes_at_s: float


class BatchRequestInvalid(ValueError):
    """A batch request body that does not follow the documented shape."""


def parse_batch_body(body: Any) -> tuple[BatchItem, ...]:
    """Check a ``batchDownloadRequestList`` body and return its items."""
    if not isinstance(body, dict) or not isinstance(
        body.get("batchDownloadRequestList"), list
    ):
        raise BatchRequestInvalid(
            "The body must be an object with a batchDownloadRequestList array"
        )
    raw_items = body["batchDownloadRequestList"]
    if not raw_items:
        raise BatchRequestInvalid(
            "batchDownloadRequestList is empty; add 1 to 100 items"
        )
    if len(raw_items) > MAX_BATCH_ITEMS:
        raise BatchRequestInvalid(
            f"batchDownloadRequestList has {len(raw_items)} items; "
            f"the maximum is {MAX_BATCH_ITEMS}, so split the request"
        )
    items = []
    for index, raw in enumerate(raw_items):
        conversation_id = raw.get("conversationId") if isinstance(raw, dict) else None
        if not isinstance(conversation_id, str) or not conversation_id:
            raise BatchRequestInvalid(
                f"batchDownloadRequestList[{index}].conversationId is missing"
            )
        recording_id = raw.get("recordingId")
        if recording_id is not None and not isinstance(recording_id, str):
            raise BatchRequestInvalid(
                f"batchDownloadRequestList[{index}].recordingId is not a string"
            )
        items.append(
            BatchItem(conversation_id=conversation_id, recording_id=recording_id)
        )
    return tuple(items)


# (item, submitted_at_s, completes_at_s) -> one row per recording that existed at
# submission: (recording id, content type, result url or None when not visible).
Resolver = Callable[[BatchItem, float, float], list[tuple[str | None, str, str | None]]]


class BatchJobs:
    """Stores submitted jobs and renders their status documents."""

    def __init__(self, *, completion_s: float) -> None:
        self._jobs: dict[str, BatchJob] = {}
        self._completion_s = completion_s

    def submit(
        self, *, org_id: str, client_id: str, items: tuple[BatchItem, ...], now_s: float
    ) -> BatchJob:
        """Store a new job that completes ``completion_s`` after ``now_s``."""
        job = BatchJob(
            id=str(uuid.uuid4()),
            org_id=org_id,
            client_id=client_id,
            items=items,
            submitted_at_s=now_s,
            completes_at_s=now_s + self._completion_s,
        )
        self._jobs[job.id] = job
        return job

    def get(self, job_id: str, *, client_id: str) -> BatchJob | None:
        """Return a job only to the client that submitted it."""
        job = self._jobs.get(job_id)
        if job is None or job.client_id != client_id:
            return None
        return job

    def status_document(
        self, job: BatchJob, *, now_s: float, resolve: Resolver
    ) -> dict[str, Any]:
        """Build the ``BatchDownloadJobStatusResult`` of a job at ``now_s``.

        ``resultCount`` counts every result, failed ones too, so it reaches
        ``expectedResultCount`` when the job completes.
        """
        rows = [
            (item, row)
            for item in job.items
            for row in resolve(item, job.submitted_at_s, job.completes_at_s)
        ]
        self_uri = f"/api/v2/recording/batchrequests/{job.id}"
        document: dict[str, Any] = {
            "id": job.id,
            "jobId": job.id,
            "expectedResultCount": len(rows),
            "resultCount": 0,
            "errorCount": 0,
            "status": "InProgress",
            "results": [],
            "selfUri": self_uri,
        }
        if now_s < job.completes_at_s:
            return document
        results = []
        for item, (recording_id, content_type, url) in rows:
            result: dict[str, Any] = {"conversationId": item.conversation_id}
            if recording_id is not None:
                result["recordingId"] = recording_id
            if url is None:
                result["errorMsg"] = "Recording is not available in this org"
            else:
                result["resultUrl"] = url
                result["contentType"] = content_type
            results.append(result)
        errors = sum(1 for result in results if "errorMsg" in result)
        document.update(
            status="Completed",
            results=results,
            resultCount=len(results),
            errorCount=errors,
        )
        return document
