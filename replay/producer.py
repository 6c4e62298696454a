"""Time-compressed replay of a normalised trace into the ``requests`` topic (confluent-kafka).

Request ``i`` gets event time ``epoch + arrival_s[i]`` and is sent at wall time ``start + arrival_s[i] / speedup``:
event time is trace time, only the wall pacing is compressed, so every window, cold start and latency
downstream is measured in trace seconds. Keyed by service (one router owns a service's fleet).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pandas as pd

from streams.records import MAX_PROMPT_CHARS, SCHEMA_VERSION

__all__ = ["ReplayCounts", "default_epoch", "request_payloads", "replay_trace"]

LONG_SPAN_S = 20 * 3600.0  # beyond this a trace is shifted into the past, so no event is in the far future


@dataclass
class ReplayCounts:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    max_behind_s: float = 0.0  # worst wall lateness against the schedule (the producer could not keep up)
    wall_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.wall_s if self.wall_s > 0 else 0.0


def default_epoch(span_s: float, wall_now: float) -> float:
    """Event time of the trace's t=0: now, or for very long traces now - span (events stay in the past)."""
    start = math.floor(wall_now)
    return start - span_s if span_s > LONG_SPAN_S else float(start)


def request_payloads(df: pd.DataFrame, epoch: float, with_prompts: bool = True,
                     with_truth: bool = True) -> Iterator[tuple[float, str, bytes]]:
    """(arrival_s, service, RequestEvent JSON) per row. ``with_truth`` carries the true output length (only
    simulated instances read it); prompts longer than the schema's limit are cut to it."""
    has_prompt = with_prompts and "prompt" in df.columns
    cols = [df["arrival_s"].to_numpy(float), df["request_id"].astype(str).to_numpy(),
            df["service"].astype(str).to_numpy(), df["prompt_tokens"].to_numpy(), df["output_tokens"].to_numpy(),
            df["prompt"].to_numpy() if has_prompt else [None] * len(df)]
    for arrival, rid, service, pt, ot, prompt in zip(*cols, strict=True):
        ev = {"v": SCHEMA_VERSION, "ts": epoch + float(arrival), "request_id": rid, "service": service,
              "prompt_tokens": int(pt)}
        if with_truth:
            ev["output_tokens"] = int(ot)
        if isinstance(prompt, str) and prompt:
            ev["prompt"] = prompt[:MAX_PROMPT_CHARS]
        yield float(arrival), service, json.dumps(ev, ensure_ascii=False).encode()


def replay_trace(df: pd.DataFrame, produce: Callable[[str, bytes], None], speedup: float,
                 epoch: float | None = None, with_prompts: bool = True, poll: Callable[[], None] | None = None,
                 progress: Callable[[int], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> ReplayCounts:
    """Send every row of ``df`` (sorted by ``arrival_s``) at its scaled time through ``produce(key, value)``.

    ``speedup=inf`` sends as fast as possible. ``poll`` is called between sends (delivery callbacks).
    """
    if speedup <= 0:
        raise ValueError("speedup must be > 0")
    span = float(df["arrival_s"].max()) if len(df) else 0.0
    epoch = default_epoch(span, time.time()) if epoch is None else epoch
    counts = ReplayCounts()
    start = clock()
    for arrival, service, payload in request_payloads(df, epoch, with_prompts):
        due = start + arrival / speedup if math.isfinite(speedup) else start
        ahead = due - clock()
        if ahead > 0.001:
            sleep(ahead)
        else:
            counts.max_behind_s = max(counts.max_behind_s, -ahead)
        produce(service, payload)
        counts.sent += 1
        if poll is not None and counts.sent % 100 == 0:
            poll()
        if progress is not None:
            progress(1)
    counts.wall_s = clock() - start
    return counts
