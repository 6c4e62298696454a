"""One real llama.cpp engine process (the project's tiny random-weight Llama): cold start and decode speed.

Measures, for ``--processes`` engines started one after another by the process actuator: the cold start
(spawn -> ``/health`` answers 200), then per engine the decode rate of one stream (forced ``--tokens`` output
tokens, first token -> last) and the aggregate rate of ``--streams`` concurrent streams. Run on a quiet machine
(numbers on a shared 2-core box move with the other load):

    .venv/bin/python -m bench.bench_engine [--processes 2] [--tokens 256] [--streams 4] [--threads 1]

Needs the engine built (``bash scripts/setup_engine.sh``). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fleet.live.base_engine_adapter import LiveRequest
from fleet.live.llama_cpp.locate import llama_server_command, tiny_model
from fleet.live.openai_engine import OpenAIEngine, OpenAIEngineConfig
from fleet.live.process_actuator import ProcessActuator, ProcessEngineSpec

__all__ = ["main"]


def _stream_rates(url: str, model: str, tokens: int, streams: int) -> tuple[float, float]:
    """(tokens/s of one stream, aggregate tokens/s of ``streams`` concurrent ones), first token to last."""
    eng = OpenAIEngine(OpenAIEngineConfig(url, model, flavor="llama-cpp", concurrency=streams))
    try:
        def run(n: int) -> list[tuple[float, float, int]]:
            for i in range(n):
                eng.submit(LiveRequest(f"b{time.time()}-{i}", "bench", time.time(), 16, tokens), time.time())
            done: list = []
            while len(done) < n:
                done += eng.advance(time.time())
                time.sleep(0.01)
            return [(f.first_token_at, f.finished_at, f.output_tokens) for f in done]

        (first, end, n), = run(1)
        single = (n - 1) / max(1e-9, end - first)
        many = run(streams)
        agg = sum(x[2] for x in many) / max(1e-9, max(x[1] for x in many) - min(x[0] for x in many))
        return single, agg
    finally:
        eng.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    model = str(tiny_model())
    cmd = llama_server_command(parallel=max(args.streams, 1), threads=args.threads)
    out: dict = {"model": Path(model).name, "threads": args.threads, "engines": []}
    with tempfile.TemporaryDirectory() as tmp:
        act = ProcessActuator(ProcessEngineSpec(cmd, model, Path(tmp), tuple(f"cpu{i}" for i in range(args.processes))))
        try:
            for i in range(args.processes):
                proc = act.start(f"bench-{i}")
                while proc.lifecycle.ready_at is None:
                    act.poll(lambda _i: 0)
                    if proc.lifecycle.reason:
                        raise SystemExit(f"engine failed: {proc.lifecycle.reason}; log {proc.log_path}")
                    time.sleep(0.01)
                single, agg = _stream_rates(proc.base_url, model, args.tokens, args.streams)
                out["engines"].append({"cold_start_s": round(proc.lifecycle.cold_start_s or 0.0, 3),
                                       "tokens_per_s_1_stream": round(single, 1),
                                       f"tokens_per_s_{args.streams}_streams": round(agg, 1)})
        finally:
            act.shutdown()
    out["median_cold_start_s"] = statistics.median(e["cold_start_s"] for e in out["engines"])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
