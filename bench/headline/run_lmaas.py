"""The LMaaS headline (issue 15): a multi-service day in trace time on one shared GPU pool, every baseline family
swept, the oracle schedule as the bound, PreServe and its ablations — per engine preset and engine mismatch.

Stages (``--stage all`` runs them in order; each reads what the one before wrote under ``--work``):

1. ``synth``: day 1 (the history day, never scored) and day 2 (scored) of one LMaaS workload: the ServeGen
   clients of ``--servegen`` split into ``--services`` services, each one serving model of the prompt corpora
   (``preserve synth --services``), same seed, ``--start-hour 0`` and ``24``, in trace time (no compression).
2. ``predict``: the trained length predictor and the fallback over every prompt of the chosen serving models,
   stored in a Parquet file (``preserve eval --prediction-cache``), so that the evaluation can run on a machine
   without the encoder's weights (a many-core box) and every policy reads the same predictions.
3. ``eval``: for each preset x mismatch, every policy is one ``preserve eval`` process on day 2 with
   ``--history`` day 1 (``--jobs`` at a time); the parts are merged into one results JSON per setting with the
   summary (``cost_ratio``, ``gap_closed``, ``tail_ratio``) recomputed over all its rows.
4. ``report``: a Markdown table per setting (``lmaas_tables.md``) and a frontier plot per setting (every run:
   P99 TTFT and P99 e2e against instance-hours; baseline families as curves, candidates as stars).

The settings of every policy are the same for every workload; nothing here is chosen per day. Usage::

    python -m bench.headline.run_lmaas --rate-scale 0.004 --jobs 16
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PRESERVE = [sys.executable, "-m", "preserve_cli.main"]

# (label suffix, policy, extra eval flags): PreServe and its ablations (issue 18's table)
CANDIDATES: list[tuple[str, str, list[str]]] = [
    ("", "preserve(predictor=model):preserve", []),  # the system
    ("", "preserve(predictor=fallback):preserve", []),  # length predictor -> fallback table
    (" [forecast=last_value]", "preserve(predictor=model):preserve", ["--forecast-model", "last_value"]),
    ("", "preserve(predictor=oracle):preserve(forecast=oracle)", []),  # oracle lengths + oracle forecast
    ("", "preserve(predictor=model):reactive", []),  # router only
    ("", "least-requests:preserve", []),  # scaler only
]


def baselines(pool: int, services: int) -> list[str]:
    """Every baseline family's grid and the oracle schedule (``frontier_specs``, as ``preserve eval --frontier``)."""
    from streams.policies.builder import frontier_specs

    return [spec.label for spec in frontier_specs(pool, history=True, services=services)]


def _preserve(args: list[str], log: Path) -> None:
    with open(log, "w") as err:
        subprocess.run([*PRESERVE, *args], check=True, cwd=ROOT, stderr=err, stdout=err)


def synth(a: argparse.Namespace) -> None:
    """Day 1 and day 2, synthesised side by side (each ~2 minutes: most of it writing the prompts)."""
    def one(day: str, hour: int) -> None:
        out = a.work / f"{day}.csv.gz"
        if out.exists():
            return
        cmd = ["synth", *[x for s in a.servegen.split(",") for x in ("--servegen", s)], "--services",
               str(a.services), "--start-hour", str(hour), "--hours", f"{a.hours:g}", "--rate-scale",
               f"{a.rate_scale:g}", "--seed", str(a.seed), "--out", str(out)]
        for p in a.prompts:
            cmd += ["--prompts", str(p)]
        print("$ preserve " + " ".join(shlex.quote(x) for x in cmd), flush=True)
        _preserve(cmd, a.work / f"synth_{day}.log")

    with ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(lambda d: one(*d), (("day1", 0), ("day2", 24))))


def predict(a: argparse.Namespace) -> Path:
    """Both predictors over every prompt of the day's serving models in the corpora (a superset of the prompts
    of any day synthesised from them, wherever it is synthesised)."""
    import pandas as pd

    from fleet.harness.runner import PredictionCache
    from replay.length_pool import load_prompt_corpus
    from replay.lmaas_synth import pick_models

    store = a.work / "predictions.parquet"
    corpus = load_prompt_corpus(list(a.prompts))
    models = set(pick_models(corpus, a.services, None))  # the serving models synth chose
    corpus = corpus[corpus["model"].isin(models)].drop_duplicates(["prompt", "prompt_tokens", "model"])
    rows = pd.DataFrame({"request_id": [f"c{i}" for i in range(len(corpus))], "arrival_s": 0.0,
                         "service": corpus["model"].to_numpy(), "prompt_tokens": corpus["prompt_tokens"].to_numpy(),
                         "output_tokens": corpus["response_tokens"].to_numpy(), "prompt": corpus["prompt"].to_numpy(),
                         "model": corpus["model"].to_numpy()})
    cache = PredictionCache(rows, seed=0, store=store)
    for spec in ("model", "fallback"):
        started = time.time()
        cache.get(spec)
        print(f"predicted {len(rows):,} distinct prompts with {spec} in {time.time() - started:.0f} s", flush=True)
    cache.save()
    return store


def _setting(preset: str, mismatch: float) -> str:
    return f"{preset}_x{mismatch:g}"


Job = tuple[str, str, list[str], list[str]]  # (setting, label suffix, eval flags, policies)


def plan(a: argparse.Namespace) -> list[Job]:
    """Processes of ``preserve eval``: per setting and flag set, the policies dealt into chunks so that there
    are about ``--jobs`` processes in all (a process reads the day once for all its policies)."""
    groups: list[tuple[str, str, list[str], list[str]]] = []
    for preset in a.presets.split(","):
        for mismatch in (float(x) for x in a.mismatch.split(",")):
            setting, flags = _setting(preset, mismatch), ["--engine", preset, "--engine-mismatch", f"{mismatch:g}"]
            plain = [p for s, p, f in CANDIDATES if not f] + baselines(a.pool, a.services)
            groups.append((setting, "", flags, plain))
            groups += [(setting, s, [*flags, *f], [p]) for s, p, f in CANDIDATES if f]
    total = sum(len(g[3]) for g in groups)
    size = max(1, -(-total // max(a.jobs, 1)))
    jobs: list[Job] = []
    for setting, suffix, flags, policies in groups:
        n = -(-len(policies) // size)
        jobs += [(setting, suffix, flags, policies[k::n]) for k in range(n)]  # dealt: slow ones spread out
    return jobs


def evaluate(a: argparse.Namespace) -> None:
    jobs = plan(a)
    parts = a.work / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    common = _eval_args(a)
    started = time.time()

    def one(k: int) -> tuple[int, float]:
        setting, _, flags, policies = jobs[k]
        out = parts / f"{setting}_{k:03d}.json"
        t = time.time()
        if not out.exists():
            _preserve([*common, *flags, "--policies", ",".join(policies), "--json", str(out)],
                      parts / f"{setting}_{k:03d}.log")
        return k, time.time() - t

    print(f"{sum(len(j[3]) for j in jobs)} runs in {len(jobs)} processes, {a.jobs} at a time", flush=True)
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for n, (k, took) in enumerate(ex.map(one, range(len(jobs))), 1):
            print(f"[{n}/{len(jobs)}] {jobs[k][0]}{jobs[k][1]}: {len(jobs[k][3])} runs in {took:.0f} s "
                  f"({time.time() - started:.0f} s in all)", flush=True)
    merge(a, jobs, parts, common)


def _eval_args(a: argparse.Namespace) -> list[str]:
    """The ``preserve eval`` arguments every run of the headline shares."""
    return ["eval", "--trace", str(a.work / "day2.csv.gz"), "--history", str(a.work / "day1.csv.gz"),
            "--max-instances", str(a.pool), "--instances", str(a.instances), "--cold-start-s", f"{a.cold_start:g}",
            "--predictor", "model", "--prediction-cache", str(a.work / "predictions.parquet"),
            "--slo-ttft-s", "1.0", "--slo-tpot-s", "0.1"]


def merge(a: argparse.Namespace, jobs: list[Job], parts: Path, common: list[str]) -> None:
    """One results JSON per setting from its parts (a missing part is listed under ``missing_policies``)."""
    from fleet.harness.summary import summarize_runs

    a.out.mkdir(parents=True, exist_ok=True)
    for setting in dict.fromkeys(j[0] for j in jobs):
        rows: list[dict[str, Any]] = []
        missing: list[str] = []
        doc: dict[str, Any] | None = None
        for k, (s, suffix, _, policies) in enumerate(jobs):
            path = parts / f"{s}_{k:03d}.json"
            if s != setting:
                continue
            if not path.exists():
                missing += [p + suffix for p in policies]
                continue
            part = json.loads(path.read_text())
            doc = doc or part
            for row in part["results"]:
                row["label"] += suffix
                rows.append(row)
        if doc is None:
            print(f"{setting}: no part finished", flush=True)
            continue
        shown = [x.replace(f"{ROOT}/", "") for x in common]
        doc.update(results=rows, summary=summarize_runs(rows), missing_policies=missing,
                   commands={"eval": "preserve " + " ".join(shlex.quote(x) for x in shown) +
                             " --engine PRESET --engine-mismatch X --policies P1,P2,...",
                             "headline": "python -m bench.headline.run_lmaas " + " ".join(sys.argv[1:])})
        (a.out / f"lmaas_{setting}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {a.out / f'lmaas_{setting}.json'} ({len(rows)} runs, {len(missing)} missing)", flush=True)


def report(a: argparse.Namespace) -> Path:
    """Per setting: the cheapest SLO-meeting run of each baseline family, the oracle, and every candidate."""
    from fleet.harness.plots import frontier

    lines = []
    for path in sorted(a.out.glob("lmaas_*.json")):
        doc = json.loads(path.read_text())
        rows, summ = doc["results"], doc["summary"]
        frontier(rows, path.with_name(f"frontier_{path.stem}.png"), f"{path.stem[6:]}: every run",
                 family=lambda r: r["label"] if r["kind"] == "candidate" else f"{r['kind']}: {r['policy'].split(':')[1]}",
                 highlight=lambda r: r["kind"] == "candidate", slo_share=0.99)
        lines += [f"### {path.stem[6:]}", "",
                  f"{doc['trace']['requests']:,} requests, {len(doc['trace'].get('services') or [])} services; "
                  f"cheapest baseline meeting the SLO: `{summ['cheapest_baseline']}` "
                  f"({_f(summ['cheapest_baseline_instance_hours'])} inst-h); oracle `{summ['oracle']}` "
                  f"({_f(summ['oracle_instance_hours'])} inst-h)", "",
                  "| kind | policy | inst-h | SLO | worst service SLO | P99 TTFT s | P99 ITL s | pool waits | "
                  "cost ratio | gap closed | tail ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        best: dict[str, dict[str, Any]] = {}
        for r in rows:
            family = r["policy"] if r["kind"] != "candidate" else r["label"]
            ok = r["slo_attainment"] is not None and r["slo_attainment"] >= 0.99
            cur = best.get(family)
            if r["kind"] == "candidate" or cur is None or (ok, -r["instance_hours"]) > (
                    cur["slo_attainment"] >= 0.99, -cur["instance_hours"]):
                best[family] = r
        for r in sorted(best.values(), key=lambda r: ({"candidate": 0, "oracle": 1}.get(r["kind"], 2),
                                                     r["instance_hours"])):
            c = summ["candidates"].get(r["label"], {})
            worst = min((s["slo_attainment"] for s in r.get("per_service", {}).values()), default=None)
            lines.append(f"| {r['kind']} | `{r['label']}` | {_f(r['instance_hours'])} | {_f(r['slo_attainment'], 4)} "
                         f"| {_f(worst, 4)} | {_f(r['p99_ttft_s'])} | {_f(r.get('p99_itl_s'))} | "
                         f"{r.get('pool_waits', '-')} | {_f(c.get('cost_ratio'))} | {_f(c.get('gap_closed'))} | "
                         f"{_f(c.get('tail_ratio'))} |")
        lines.append("")
    out = a.out / "lmaas_tables.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return out


def _f(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    from streams.settings import data_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=["synth", "predict", "eval", "merge", "report", "all"], default="all")
    ap.add_argument("--servegen", default="m-small,m-mid", help="comma-separated ServeGen recordings")
    ap.add_argument("--prompts", type=Path, action="append",
                    default=None, help="prompt corpora (default: every prompts/*.jsonl.gz of the data)")
    ap.add_argument("--services", type=int, default=3)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--rate-scale", type=float, required=True, help="ServeGen rate multiplier of the day")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--presets", default="llama2-13b-h100,llama2-7b-h100")
    ap.add_argument("--mismatch", default="1.0,1.15", help="engine mismatch factors")
    ap.add_argument("--pool", type=int, default=16, help="GPUs shared by every service")
    ap.add_argument("--instances", type=int, default=1, help="warm instances per service at the start")
    ap.add_argument("--cold-start", type=float, default=180.0, help="cold start (s): 3 min, as operators see it")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--work", type=Path, default=ROOT / ".data" / "lmaas")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "headline" / "results")
    a = ap.parse_args(argv)
    a.prompts = a.prompts or sorted(data_path("prompts").glob("*.jsonl.gz"))
    a.work.mkdir(parents=True, exist_ok=True)
    if a.stage in ("synth", "all"):
        synth(a)
    if a.stage in ("predict", "all"):
        predict(a)
    if a.stage in ("eval", "all"):
        evaluate(a)
    if a.stage == "merge":
        merge(a, plan(a), a.work / "parts", _eval_args(a))
    if a.stage in ("report", "all"):
        report(a)


if __name__ == "__main__":
    main()
