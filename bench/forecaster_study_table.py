"""Markdown tables of the issue-16 forecaster study (the JSONs of ``bench/forecaster_study.sh``).

  python bench/forecaster_study_table.py out/study test
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.workload import protocol as pr  # noqa: E402

CASES = [("m-mid", "requests"), ("m-mid", "generated_tokens"), ("m-small", "requests"),
         ("m-small", "generated_tokens")]


def _iv(d: dict[str, float], digits: int = 4) -> str:
    return f"{d['value']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]"


def _load(folder: Path, split: str, series: str, target: str) -> dict[str, Any]:
    models: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for variant in ("base", "lstm", "mem"):
        p = folder / f"{split}_{variant}_{series}_{target}.json"
        if p.exists():
            r = json.loads(p.read_text())
            for name, m in r["models"].items():
                models[name if variant != "mem" else f"{name}_2day"] = m
            extra = {k: r[k] for k in ("linear_oracle_in_sample", "capacity", "scored_pairs") if k in r}
    return {"models": models, **extra}


def main() -> None:
    folder, split = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "test"
    print(f"## SMAPE, split {split} (networks: mean of seeds 0-2; 95% block-bootstrap interval)\n")
    print("| series | target | model | h1 | h6 | all | cov 0.5 / 0.9 / 0.99 | under@q0.9 | over inst-h@q0.9 "
          "| LV over inst-h at equal under |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s, t in CASES:
        r = _load(folder, split, s, t)
        for name, m in r["models"].items():
            iv = m["intervals"]
            cov = " / ".join(f"{m['coverage'][q]:.3f}" for q in ("0.5", "0.9", "0.99"))
            p9 = m["provisioning"]["0.9"]
            lv = m["provisioning"]["last_value_at_equal_under_0.9"]
            print(f"| {s} | {t} | {name} | {_iv(iv['h1']['smape'])} | {_iv(iv['h6']['smape'])} | "
                  f"{_iv(iv['all']['smape'])} | {cov} | {p9['under_share']:.4f} | {p9['over_instance_hours']:.0f} | "
                  f"{lv['over_instance_hours']:.0f} (x{lv['headroom']:.2f}) |")
        terms, mask = _terms(folder, split, s, t)
        for name in [n for n in terms if n.endswith("_online_choice") and n not in r["models"]]:
            print(f"| {s} | {t} | {name} | {_iv(pr.block_bootstrap(terms[name][:, 0], mask[:, 0]))} | "
                  f"{_iv(pr.block_bootstrap(terms[name][:, -1], mask[:, -1]))} | "
                  f"{terms[name][mask].mean():.4f} | | | | |")
        if "linear_oracle_in_sample" in r:
            o = r["linear_oracle_in_sample"]["smape_by_horizon"]
            print(f"| {s} | {t} | linear oracle (in-sample) | {o[0]:.4f} | {o[-1]:.4f} | "
                  f"{r['linear_oracle_in_sample']['smape']:.4f} | | | | |")
    print("\n## Paired differences (from the saved forecasts; networks averaged over seeds per pair)\n")
    print("| series | target | model | h1 - last value | h1 - EWMA | h6 / last value | h6 / EWMA | h6 / min(LV, EWMA) "
          "| h1 / h6 minus plain LSTM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s_, t in CASES:
        terms, mask = _terms(folder, split, s_, t)
        if not terms:
            continue
        h6 = mask.shape[1] - 1
        for name in [n for n in terms if n.startswith(("mlstm", "lstm"))]:
            def d(other: str, h: int, ratio: bool = False, name: str = name, terms: dict[str, Any] = terms,
                  mask: Any = mask) -> str:
                return _diff(terms, mask, name, other, h, ratio)
            best = "last_value" if terms["last_value"][:, h6][mask[:, h6]].mean() <= \
                terms["ewma"][:, h6][mask[:, h6]].mean() else "ewma"
            vs = f"{d('lstm', 0)} / {d('lstm', h6)}" if name != "lstm" else ""
            print(f"| {s_} | {t} | {name} | {d('last_value', 0)} | {d('ewma', 0)} | {d('last_value', h6, True)} | "
                  f"{d('ewma', h6, True)} | {d(best, h6, True)} ({best}) | {vs} |")


def _diff(terms: dict[str, Any], mask: Any, name: str, other: str, h: int, ratio: bool) -> str:
    if other not in terms:
        return ""
    return _iv(pr.block_bootstrap(terms[name][:, h], mask[:, h], terms[other][:, h], ratio=ratio), 3 if ratio else 4)


def _terms(folder: Path, split: str, series: str, target: str) -> tuple[dict[str, Any], Any]:
    """Per-pair SMAPE terms (S, H) of every model in the case's saved forecasts (seed mean for networks)."""
    import numpy as np

    out: dict[str, Any] = {}
    mask = None
    for variant in ("base", "lstm", "mem"):
        p = folder / f"{split}_{variant}_{series}_{target}.forecasts.npz"
        if not p.exists():
            continue
        z = np.load(p)
        mask = z["mask"]
        names = sorted({k.rsplit("_s", 1)[0] for k in z.files if "_s" in k and not k.endswith("_cal")})
        for n in names:
            seeds = [k for k in z.files if k.startswith(n + "_s") and not k.endswith("_cal")]
            key = n if variant != "mem" else f"{n}_2day"
            out[key] = np.mean([pr.smape_terms(z[k], z["actual"]) for k in seeds], axis=0)
            if n in ("mlstm", "lstm") and "last_value_s0" in z.files and "ewma_s0" in z.files:
                act = np.concatenate([z["cal_actual"], z["actual"]])
                msk = np.concatenate([z["cal_mask"], z["mask"]])
                base = {b: np.concatenate([z[f"{b}_s0_cal"], z[f"{b}_s0"]]) for b in ("last_value", "ewma")}
                ch = [pr.online_choice({n: np.concatenate([z[k + "_cal"], z[k]]), **base}, act, msk, prefer=n)
                      [len(z["cal_actual"]):] for k in seeds]
                out[f"{key}_online_choice"] = np.mean([pr.smape_terms(c, z["actual"]) for c in ch], axis=0)
    if "lstm" in out and "last_value" in out and "lstm_online_choice" not in out:
        lz = np.load(folder / f"{split}_lstm_{series}_{target}.forecasts.npz")
        bz = np.load(folder / f"{split}_base_{series}_{target}.forecasts.npz")
        act = np.concatenate([lz["cal_actual"], lz["actual"]])
        msk = np.concatenate([lz["cal_mask"], lz["mask"]])
        base = {b: np.concatenate([bz[f"{b}_s0_cal"], bz[f"{b}_s0"]]) for b in ("last_value", "ewma")}
        seeds = [k for k in lz.files if k.startswith("lstm_s") and not k.endswith("_cal")]
        ch = [pr.online_choice({"lstm": np.concatenate([lz[k + "_cal"], lz[k]]), **base}, act, msk, prefer="lstm")
              [len(lz["cal_actual"]):] for k in seeds]
        out["lstm_online_choice"] = np.mean([pr.smape_terms(c, lz["actual"]) for c in ch], axis=0)
    return out, mask


if __name__ == "__main__":
    main()
