"""Typed signals of the sinks (quix-streams style): callers react to the type, not to a message string."""

from __future__ import annotations

__all__ = ["SinkError", "BackpressureError"]


class SinkError(RuntimeError):
    """The archive rejected data for a reason retrying will not fix (schema, permissions, bad DSN)."""


class BackpressureError(SinkError):
    """The store cannot keep up (server overloaded or unreachable, disk full); retry after ``retry_after`` s.

    The failed batch has already been cleared from the sink: the caller re-adds the same items (or re-consumes
    from its last committed offset). Writes are idempotent per (topic, partition, offset), so this never
    duplicates rows.
    """

    def __init__(self, retry_after: float, reason: str = "") -> None:
        super().__init__(f"archive backpressure ({reason}); retry after {retry_after:.1f} s")
        self.retry_after = retry_after
        self.reason = reason
