"""Exceptions raised by recsync.

Every failure recsync raises derives from :class:`RecsyncError`. Errors from httpx,
redis and websockets are translated into these types where they are caught, so a
caller only needs recsync's own names. "Not yet, try again later" is control flow,
not failure, and has its own root, :class:`NotYet`.
"""

from __future__ import annotations


class RecsyncError(Exception):
    """Root of every failure recsync raises."""


class ManifestError(RecsyncError):
    """A manifest that cannot be loaded; ``problems`` lists every finding."""

    def __init__(self, problems: list[str], *, source: str = "manifest") -> None:
        self.problems = list(problems)
        self.source = source
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"{source}: {count} {noun}:\n{lines}")


class PlatformError(RecsyncError):
    """A platform error response: status, code and correlation id."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.correlation_id = correlation_id
        detail = (
            f"{message} (status={status}, code={code}, correlation_id={correlation_id})"
        )
        super().__init__(detail)


class AuthenticationError(PlatformError):
    """The org's OAuth client credentials were rejected."""


class InvalidResponse(PlatformError):
    """A platform response that is not the JSON document its endpoint documents."""


class NotFound(PlatformError):
    """The platform does not know the conversation or recording (404)."""


class PlatformUnavailable(PlatformError):
    """A transient server failure: 500, 502, 503 or a refused connection."""


class NotYet(Exception):
    """Root of "not yet, retry later" signals; not a failure."""


class PlatformPending(NotYet):
    """The platform returned 202 or 408, or did not respond in time."""

    def __init__(
        self, reason: str, *, timed_out: bool, correlation_id: str | None = None
    ) -> None:
        self.reason = reason
        self.timed_out = timed_out
        self.correlation_id = correlation_id
        super().__init__(reason)


class RateLimited(NotYet):
    """The org's API budget is spent until ``retry_at`` (epoch seconds)."""

    def __init__(
        self, *, retry_at: float, retry_after_s: float, from_platform: bool
    ) -> None:
        self.retry_at = retry_at
        self.retry_after_s = retry_after_s
        self.from_platform = from_platform
        super().__init__(f"rate limited for {retry_after_s:.1f} s")


class CircuitOpen(NotYet):
    """The org's circuit breaker is open; the batch sweep owns the record."""
