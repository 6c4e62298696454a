"""Turn a message that cannot be processed into a :class:`DeadLetter` (pure, no I/O).

Why: bad input must never stop a worker (design card). Every agent parses raw bytes itself and, on
:class:`InvalidEvent`, sends the result of :func:`dead_letter` to the dead-letter topic with the reason.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from streams.privacy import prompt_hash
from streams.records import DeadLetter, EventRecord, InvalidEvent, parse_event

__all__ = ["MAX_PAYLOAD_CHARS", "dead_letter", "parse_or_dead_letter"]

MAX_PAYLOAD_CHARS = 10_000  # a dead letter keeps the head of the payload only: enough to debug, bounded in size
# (prompts are redacted before the cut; the payload is decoded whole first, records cap prompts at 200k chars)

R = TypeVar("R", bound=EventRecord)


_PROMPT_FIELD = re.compile(r'"prompt"\s*:\s*"((?:[^"\\]|\\.)*)("?)', re.DOTALL)


def _redact_prompt(text: str) -> str:
    """Replace a prompt's text by its hash and length: dead letters are archived, prompts are sensitive.

    Valid JSON is redacted field-wise; malformed JSON by pattern, up to the end of the string (a truncated
    prompt is redacted too). Text without a ``"prompt"`` field is returned as it is.
    """
    if '"prompt"' not in text:
        return text
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("prompt"), str):
        p = obj.pop("prompt")
        obj["prompt_redacted"] = {"hash": prompt_hash(p), "chars": len(p)}
        return json.dumps(obj, ensure_ascii=False)

    def sub(m: re.Match[str]) -> str:
        return f'"prompt":"<redacted {len(m.group(1))} chars, hmac:{prompt_hash(m.group(1))}>"'

    return _PROMPT_FIELD.sub(sub, text)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    return _redact_prompt(text)[:MAX_PAYLOAD_CHARS]


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
