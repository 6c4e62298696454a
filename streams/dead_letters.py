"""Turn a message that cannot be processed into a :class:`DeadLetter` (pure, no I/O).

Why: bad input must never stop a worker (design card). Every agent parses raw bytes itself and, on
:class:`InvalidEvent`, sends the result of :func:`dead_letter` to the dead-letter topic with the reason.
"""

from __future__ import annotations

from typing import TypeVar

from streams.records import DeadLetter, EventRecord, InvalidEvent, parse_event

__all__ = ["MAX_PAYLOAD_CHARS", "dead_letter", "parse_or_dead_letter"]

MAX_PAYLOAD_CHARS = 10_000  # a dead letter keeps the head of the payload only: enough to debug, bounded in size

R = TypeVar("R", bound=EventRecord)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return raw[:MAX_PAYLOAD_CHARS * 4].decode("utf-8", errors="replace")[:MAX_PAYLOAD_CHARS]
    return raw[:MAX_PAYLOAD_CHARS]


def dead_letter(source_topic: str, raw: bytes | str | None, reason: str, now: float, key: bytes | str | None = None,
                partition: int | None = None, offset: int | None = None) -> DeadLetter:
    """The dead letter of one raw message; ``now`` is the event time given to it (wall clock at the edge)."""
    key_text = _text(key) if key is not None else None
    return DeadLetter(ts=max(0.0, now), source_topic=source_topic, reason=reason[:2000], payload=_text(raw),
                      key=key_text[:256] if key_text else None, partition=partition, offset=offset)


def parse_or_dead_letter(raw: bytes | str | None, cls: type[R], source_topic: str, now: float,
                         key: bytes | str | None = None, partition: int | None = None,
                         offset: int | None = None) -> R | DeadLetter:
    """Parse ``raw`` as ``cls``; on any problem return the dead letter instead of raising."""
    if raw is None:
        return dead_letter(source_topic, raw, "empty message (null value)", now, key, partition, offset)
    try:
        return parse_event(raw, cls)
    except InvalidEvent as e:
        return dead_letter(source_topic, raw, str(e), now, key, partition, offset)
