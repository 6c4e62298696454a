"""Multi-service (LMaaS) days: ServeGen clients split into services, each service one serving model's prompts.

The paper's setting is one fleet serving many services. We build it from two real sources:

* **Arrivals**: the ServeGen clients of one or more recordings (``m-small``, ``m-mid``) are split
  deterministically into ``N`` services; a service's arrivals are the union of its clients' windows, each client
  keeping its own rate shape, burstiness (cv) and inter-arrival law (``servegen_synth.synthesize_arrivals``).
* **Requests**: service ``k`` is serving model ``k`` of a prompt corpus (the ``N`` models with the most rows unless
  given); each request carries a real prompt of that model with that model's real output length, sampled with
  replacement.

The split and the sampling depend on ``seed`` and the recording, never on the window: day 1 (``start_hour=0``) and
day 2 (``start_hour=24``) of one seed are the same services with the same clients, prompts and models — day 1 is
the history day the schedule-fitted and online-learning policies may read. Clients are dealt like a snake draft
over the clients ordered by their recorded volume (the whole recording), the order of the services in each round
drawn from the seed: every service gets one of the ``N`` largest clients, and services differ in size as real
services do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from replay.servegen_synth import SynthConfig, synthesize_arrivals, window_rates
from replay.trace_schema import empty_trace

__all__ = ["pick_models", "split_clients", "synthesize_lmaas"]


def pick_models(corpus: pd.DataFrame, services: int, models: Sequence[str] | None = None) -> list[str]:
    """The serving models of the services: ``models`` as given (each must be in the corpus), else the ``services``
    models with the most rows (ties by name, so the choice is stable)."""
    counts = corpus.loc[corpus["model"].astype(str) != "", "model"].value_counts()
    if models:
        unknown = [m for m in models if m not in counts.index]
        if unknown:
            raise ValueError(f"model(s) {unknown} not in the prompt corpus; it has: {sorted(counts.index)}")
        if len(models) != services:
            raise ValueError(f"{len(models)} models given for {services} services: give one per service")
        return list(models)
    if len(counts) < services:
        raise ValueError(f"{services} services need {services} serving models; the corpus has {len(counts)}: "
                         f"{sorted(counts.index)}")
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [name for name, _ in ranked[:services]]


def split_clients(clients: pd.DataFrame, services: int, seed: int) -> dict[tuple[str, int], int]:
    """``(source, client) -> service index``: a snake draft over clients by recorded volume (see module doc).

    :param clients: ServeGen windows with ``source`` (which recording), ``client``, ``rate``.
    """
    volume = clients.groupby(["source", "client"], sort=True)["rate"].sum()
    volume = volume[volume > 0]
    if len(volume) < services:
        raise ValueError(f"{services} services need at least {services} clients with arrivals; found {len(volume)}")
    order = sorted(volume.items(), key=lambda kv: (-kv[1], kv[0]))
    rng = np.random.default_rng([seed, 0x5e57])
    out: dict[tuple[str, int], int] = {}
    for start in range(0, len(order), services):
        deal = rng.permutation(services)
        for (key, _), svc in zip(order[start:start + services], deal, strict=False):
            out[(str(key[0]), int(key[1]))] = int(svc)
    return out


def synthesize_lmaas(clients: pd.DataFrame, cfg: SynthConfig, corpus: pd.DataFrame, services: int,
                     models: Sequence[str] | None, seed: int) -> pd.DataFrame:
    """A normalised multi-service trace with ``prompt`` and ``model`` columns; service name = serving model.

    :param clients: ServeGen windows of every recording, with a ``source`` column naming the recording.
    :param corpus: ``prompt, prompt_tokens, response_tokens, model`` (``length_pool.load_prompt_corpus``).
    """
    chosen = pick_models(corpus, services, models)
    owner = split_clients(clients, services, seed)
    keys = list(zip(clients["source"].astype(str), clients["client"].astype(int), strict=True))
    service_of = np.fromiter((owner.get(k, -1) for k in keys), np.int64, len(keys))
    frames = []
    for k, model in enumerate(chosen):
        mine = clients[service_of == k]
        rows = window_rates(mine, replace(cfg, service=model))
        if rows.empty:
            continue
        # one random stream per (seed, service, first hour): reproducible, and day 2 independent of day 1
        rng = np.random.default_rng([seed, k, int(round(cfg.start_hour * 3600))])
        arrival, _ = synthesize_arrivals(rows, rng)
        arrival.sort(kind="stable")
        pool = corpus[corpus["model"] == model]
        pick = rng.integers(0, len(pool), size=len(arrival))
        frames.append(pd.DataFrame({
            "arrival_s": arrival,
            "service": model,
            "prompt_tokens": pool["prompt_tokens"].to_numpy(np.int64)[pick],
            "output_tokens": pool["response_tokens"].to_numpy(np.int64)[pick],
            "prompt": pool["prompt"].to_numpy(object)[pick],
            "model": model,
        }))
    if not frames:
        return empty_trace()
    df = pd.concat(frames, ignore_index=True).sort_values("arrival_s", kind="stable").reset_index(drop=True)
    df["arrival_s"] -= df["arrival_s"].iloc[0]
    df.insert(0, "request_id", [f"h{cfg.start_hour:g}-{i}" for i in range(len(df))])
    return df
