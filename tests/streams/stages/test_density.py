"""Crash recovery of the density agent's state: a fresh state restored from the last stored snapshots and fed
the redelivered tail of the partition counts every completion exactly once (the offline function's windows)."""

from __future__ import annotations

import random

import pytest

from streams.policies.density_windows import density_series
from streams.records import Completion, TokenDensity
from streams.stages.density import DensityAgentState
from streams.transport.messages import RawMessage


def _messages(n: int, seed: int) -> list[RawMessage]:
    rng = random.Random(seed)
    out, t = [], 0.0
    for i in range(n):
        t += rng.expovariate(2.0)
        svc = rng.choice(["svc-a", "svc-b"])
        c = Completion(ts=t, request_id=f"r{i}", service=svc, instance_id="i-0", arrival_ts=max(0.0, t - 1),
                       prompt_tokens=rng.randint(1, 500), output_tokens=rng.randint(1, 300), ttft_s=0.1, e2e_s=1.0)
        out.append(RawMessage("completions", svc.encode(), c.to_json(), partition=0 if svc == "svc-a" else 1,
                              offset=i))
    return out


def _windows(records: list) -> dict[tuple[str, float], tuple[int, int, int]]:
    return {(r.service, r.window_start): (r.requests, r.prompt_tokens, r.output_tokens)
            for r in records if isinstance(r, TokenDensity)}


@pytest.mark.parametrize("crash_at,committed_at", [(150, 100), (150, 150), (37, 0), (299, 250)])
def test_restore_then_redelivery_counts_each_completion_once(crash_at: int, committed_at: int) -> None:
    msgs = _messages(300, seed=crash_at)
    first = DensityAgentState(10.0, 2.0)
    emitted = first.handle(msgs[:crash_at], now=0.0)
    table = first.take_snapshots()  # what the changelog holds at the crash (flushed before any commit)

    second = DensityAgentState(10.0, 2.0)  # restarted worker: empty memory, table restored from the changelog
    emitted += second.handle(msgs[committed_at:], now=0.0, stored=table.get)  # redelivery from the commit
    emitted += second.acc.flush()

    comps = [Completion.model_validate_json(m.value) for m in msgs]  # type: ignore[arg-type]
    offline = density_series(comps, 10.0, 2.0).windows
    assert _windows(emitted) == _windows(offline)
    assert second.duplicates == crash_at - committed_at


def test_snapshot_round_trip_is_plain_json_data() -> None:
    import json

    st = DensityAgentState(10.0, 0.0)
    st.handle(_messages(20, seed=1), now=0.0)
    snaps = st.take_snapshots()
    assert set(snaps) == {"svc-a", "svc-b"} and st.take_snapshots() == {}
    assert json.loads(json.dumps(snaps)) == snaps
