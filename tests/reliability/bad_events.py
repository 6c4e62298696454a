"""Good and bad raw messages for the RequestEvent and Completion consumers (hypothesis strategies + builders).

Each bad case carries the substring its dead-letter reason must contain (the field at fault, or the kind of
syntax error), so a test can check not only *that* a message was rejected but that the operator is told why.
"Odd but valid" inputs (unknown services, duplicate ids, out-of-order timestamps, a prompt exactly at the size
limit) are good events: they must be processed, not dead-lettered.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from streams.records import FUTURE_SKEW_S, MAX_PROMPT_CHARS, MAX_TOKENS

__all__ = ["Case", "good_request", "good_completion", "bad_request", "bad_completion", "every_kind", "mixed",
           "kinds", "REQUIRED", "encode"]

REQUIRED = {
    "requests": ("ts", "request_id", "service", "prompt_tokens"),
    "completions": ("ts", "request_id", "service", "instance_id", "arrival_ts", "prompt_tokens", "output_tokens",
                    "ttft_s", "e2e_s"),
}
# One clock for the module: generated data must not depend on when it is drawn (hypothesis replays draws).
NOW = float(int(time.time()))
TOKEN_FIELDS = {"requests": ("prompt_tokens", "output_tokens", "max_tokens"),
                "completions": ("prompt_tokens", "output_tokens")}


@dataclass(frozen=True)
class Case:
    """One raw message value; ``expect`` is a substring of its dead-letter reason ('' for a good event)."""

    value: bytes | None
    expect: str
    kind: str

    @property
    def bad(self) -> bool:
        return bool(self.expect)


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def good_request(i: int, service: str = "svc-a", ts: float | None = None, prompt: str | None = "hello") -> dict:
    now = NOW - 1.0 if ts is None else ts
    ev: dict[str, Any] = {"v": 1, "ts": now, "request_id": f"r-{i}", "service": service,
                          "prompt_tokens": 10 + i % 500, "output_tokens": 1 + i % 300}
    if prompt is not None:
        ev["prompt"] = prompt
    return ev


def good_completion(i: int, service: str = "svc-a", ts: float | None = None) -> dict:
    end = NOW - 5.0 if ts is None else ts
    return {"v": 1, "ts": end, "request_id": f"c-{i}", "service": service, "instance_id": f"{service}-0",
            "arrival_ts": end - 2.0, "prompt_tokens": 10 + i % 500, "output_tokens": 1 + i % 300,
            "predicted_tokens": 50.0, "ttft_s": 0.1, "e2e_s": 2.0, "preemptions": 0}


_WRONG_TYPES = st.one_of(st.text(alphabet="abcxyz -", min_size=1, max_size=8), st.lists(st.integers(), max_size=3),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                         st.floats(min_value=0.1, max_value=0.9))


KINDS = ["malformed", "not-utf8", "not-object", "null", "missing", "wrong-type", "negative", "huge", "far-future",
         "bad-ts", "unknown-field", "version", "empty-id"]


def kinds(topic: str) -> list[str]:
    return KINDS + (["oversized-prompt"] if topic == "requests" else [])


def _pick(options: list | tuple, variant: int) -> st.SearchStrategy:
    """``sampled_from`` rotated by ``variant``: the simplest draw differs between variants, so a corpus built
    from single examples still covers every field."""
    k = variant % len(options)
    return st.sampled_from(list(options[k:]) + list(options[:k]))


@st.composite
def _mutated(draw: st.DrawFn, topic: str, base: dict, kind: str | None = None, variant: int = 0) -> Case:
    """``base`` broken in one way: ``kind`` (default: drawn at random)."""
    kind = kind or draw(st.sampled_from(kinds(topic)))
    ev = dict(base)
    if kind == "malformed":
        raw = encode(ev)
        return Case(raw[: draw(st.integers(1, len(raw) - 1))], "malformed JSON", kind)
    if kind == "not-utf8":
        return Case(b"\xff\xfe" + encode(ev), "not UTF-8", kind)
    if kind == "not-object":
        return Case(encode(draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=5)))),
                    "expected a JSON object", kind)
    if kind == "null":
        return Case(None, "empty message", kind)
    if kind == "missing":
        field = draw(_pick(REQUIRED[topic], variant))
        del ev[field]
        return Case(encode(ev), f"{field}: Field required", kind)
    if kind in ("wrong-type", "negative", "huge"):
        field = draw(_pick(TOKEN_FIELDS[topic], variant))
        ev[field] = draw({"wrong-type": _WRONG_TYPES, "negative": st.integers(-(10**12), -1),
                          "huge": st.integers(MAX_TOKENS + 1, 10**30)}[kind])
        return Case(encode(ev), field, kind)
    if kind == "far-future":
        ev["ts"] = NOW + FUTURE_SKEW_S + draw(st.floats(3600.0, 1e9))
        return Case(encode(ev), "in the future", kind)
    if kind == "bad-ts":
        ev["ts"] = draw(_pick([-1.0, -1e9, "yesterday", None], variant))
        return Case(encode(ev), "ts:", kind)
    if kind == "unknown-field":
        name = draw(_pick(["password", "extra", "Prompt", "tokens"], variant))
        ev[name] = 1
        return Case(encode(ev), f"{name}: Extra inputs are not permitted", kind)
    if kind == "version":
        ev["v"] = draw(_pick([0, 2, 99, "1.0"], variant))
        return Case(encode(ev), "v:", kind)
    if kind == "empty-id":
        ev["request_id"] = draw(_pick(["", "x" * 257], variant))
        return Case(encode(ev), "request_id", kind)
    ev["prompt"] = "p" * (MAX_PROMPT_CHARS + draw(st.integers(1, 5000)))  # oversized-prompt
    return Case(encode(ev), "prompt", kind)


@st.composite
def _odd_good(draw: st.DrawFn, topic: str, i: int) -> Case:
    """Valid but unusual: unknown service, out-of-order (older) time, prompt exactly at the size limit."""
    service = draw(st.sampled_from(["svc-a", "svc-b"]) | st.text(alphabet="abcdefghij-_.0123456789", min_size=1,
                                                                  max_size=40))
    age = draw(st.floats(0.0, 3 * 86400.0))  # up to three days in the past: late, never rejected
    if topic == "requests":
        prompt = draw(st.sampled_from([None, "", "hi", "é" * 10, "p" * MAX_PROMPT_CHARS]))
        return Case(encode(good_request(i, service, NOW - age, prompt)), "", "good")
    return Case(encode(good_completion(i, service, NOW - 10.0 - age)), "", "good")


def bad_request(i: int = 0) -> st.SearchStrategy[Case]:
    return _mutated("requests", good_request(i))


def bad_completion(i: int = 0) -> st.SearchStrategy[Case]:
    return _mutated("completions", good_completion(i))


def every_kind(topic: str, n: int) -> st.SearchStrategy[tuple[Case, ...]]:
    """``n`` bad messages cycling through every kind (and, within a kind, through its fields): even the
    single example a live test can afford covers them all."""
    base = good_request(0) if topic == "requests" else good_completion(0)
    ks = kinds(topic)
    return st.tuples(*[_mutated(topic, base, ks[i % len(ks)], i // len(ks)) for i in range(n)])


def mixed(topic: str, max_size: int = 30) -> st.SearchStrategy[list[Case]]:
    """A batch of good and bad messages with distinct ids (plus duplicates of good ones drawn separately)."""

    @st.composite
    def build(draw: st.DrawFn) -> list[Case]:
        n = draw(st.integers(1, max_size))
        out = []
        for i in range(n):
            is_bad = draw(st.booleans())
            if is_bad:
                base = good_request(i) if topic == "requests" else good_completion(i)
                out.append(draw(_mutated(topic, base)))
            else:
                out.append(draw(_odd_good(topic, i)))
        return out

    return build()
