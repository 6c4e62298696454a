"""The model-backed ``LengthPredictor`` used by the live ``predict`` stage and the simulator harness.

- Requests without a prompt text, and every request when the checkpoint is missing or broken, get the
  fallback (per-model mean by prompt-length bucket); ``LengthPredictions.source`` is ``"model"``,
  ``"fallback"`` or ``"model+fallback"`` so events and metrics can flag it.
- ``timeout_s``: a call whose forward pass takes longer answers from the fallback; the late forward still
  finishes in the background and fills the cache; while it runs, later calls do not queue behind it.
- A bounded LRU cache keyed by sha1(service, prompt) skips the encoder for repeated prompts.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.request_load.base_predictor import LengthPredictions
from models.request_load.calibration import Calibration, base_from_quantiles, load_calibration
from models.request_load.encoding import clip_text
from models.request_load.engine import EngineConfig, LengthEngine, RawOutputs
from models.request_load.model import POINT_MEAN, quantile_name
from models.request_load.simple_predictors import FallbackPredictor

__all__ = ["ModelPredictor", "PredictorStats", "load_model_predictor", "prompt_key", "outputs_from_raw", "pack_raw", "MODEL_MEAN_BASE"]

MODEL_MEAN_BASE = "head"  # the calibration's name of the encoder's expected-length output

log = logging.getLogger(__name__)


def prompt_key(service: str, prompt: str) -> bytes:
    return hashlib.sha1(f"{service}\x00{prompt}".encode(), usedforsecurity=False).digest()


@dataclass
class PredictorStats:
    rows: int = 0
    cache_hits: int = 0
    model_rows: int = 0
    fallback_rows: int = 0
    timeouts: int = 0
    errors: int = 0
    last_error: str = ""
    reasons: dict[str, int] = field(default_factory=dict)


def outputs_from_raw(packed: np.ndarray, models: Sequence[str], taus: Sequence[float],
                     calibration: Calibration | None, point_estimate: str = "p50") -> LengthPredictions:
    """Predictions from raw rows (the model's quantiles at ``taus``..., then its head mean): calibrated per
    serving model where a calibration is given, else the validation-chosen point as ``mean`` and the raw p90."""
    raw_q, head = packed[:, :-1], packed[:, -1]
    if calibration is not None:
        c, s = base_from_quantiles(raw_q, taus)
        out = calibration.apply(c, s, models, {MODEL_MEAN_BASE: head})
        q = out.by_name()
        return LengthPredictions(mean=out.mean, p90=q["p90"], source="model", quantiles=q)
    names = [quantile_name(t) for t in taus]
    mean = head if point_estimate == POINT_MEAN else raw_q[:, names.index(point_estimate)]
    return LengthPredictions(mean=mean, p90=np.maximum(raw_q[:, names.index("p90")], mean), source="model")


def pack_raw(raw: RawOutputs) -> np.ndarray:
    """(N, Q + 1): the raw quantiles, then the head mean (what the cache keeps per prompt)."""
    return np.concatenate([raw.quantiles, raw.mean[:, None]], axis=1)


class ModelPredictor:
    def __init__(self, engine: LengthEngine | None, fallback: FallbackPredictor, point_estimate: str = "p50",
                 timeout_s: float | None = None, cache_size: int = 100_000, unavailable: str = "",
                 calibration: Calibration | None = None) -> None:
        """:param engine: the batched encoder; None = always fallback (``unavailable`` says why).
        :param point_estimate: without a calibration, which output is ``mean``: a quantile ("p50", "p40", ...
            of the model's quantiles; chosen on validation MAE) or "mean" (the expected-length head).
        :param timeout_s: answer from the fallback when a forward pass takes longer than this.
        :param cache_size: entries of the prompt-hash LRU cache (0 = off).
        :param calibration: fitted on validation (``calibration.json`` next to the checkpoint): ``mean`` is then
            the de-biased expected length and ``quantiles`` p10..p99 are calibrated per serving model."""
        self.engine = engine
        self.fallback = fallback
        self.point_estimate = point_estimate
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self.unavailable = unavailable
        self.calibration = calibration
        self.stats = PredictorStats()
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()  # raw outputs: quantiles..., head mean
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="length-model") if timeout_s else None
        self._inflight: Future[np.ndarray] | None = None
        self._taus: tuple[float, ...] = ()
        if engine is not None:
            self._taus = tuple(engine.model.config.quantiles)
            names = [quantile_name(t) for t in self._taus]
            assert point_estimate == POINT_MEAN or point_estimate in names, f"unknown point {point_estimate!r}"

    @property
    def available(self) -> bool:
        return self.engine is not None

    def _cache_get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _cache_put(self, keys: Sequence[bytes], packed: np.ndarray) -> None:
        if not self.cache_size:
            return
        with self._lock:
            for k, row in zip(keys, packed, strict=True):
                self._cache[k] = row
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _outputs(self, packed: np.ndarray, models: Sequence[str]) -> LengthPredictions:
        return outputs_from_raw(packed, models, self._taus, self.calibration, self.point_estimate)

    def _run_model(self, prompts: list[str], services: list[str], keys: list[bytes]) -> np.ndarray | None:
        """Raw rows of the cache misses; None (after noting why) if the forward failed or timed out."""
        assert self.engine is not None
        engine = self.engine

        def job() -> np.ndarray:
            packed = pack_raw(engine.run(prompts, services))
            self._cache_put(keys, packed)  # also fills the cache when the caller gave up
            return packed

        try:
            if self._pool is None:
                return job()
            if self._inflight is not None and not self._inflight.done():
                self._note("busy")  # a timed-out forward still runs: don't queue behind it
                return None
            self._inflight = self._pool.submit(job)
            return self._inflight.result(timeout=self.timeout_s)
        except FutureTimeout:
            self.stats.timeouts += 1
            self._note("timeout")
        except Exception as err:  # noqa: BLE001 - any model failure must degrade to the fallback, not crash
            self.stats.errors += 1
            self.stats.last_error = f"{type(err).__name__}: {err}"
            self._note("error")
            log.warning("length model failed, using the fallback: %s", self.stats.last_error)
        return None

    def _note(self, reason: str) -> None:
        self.stats.reasons[reason] = self.stats.reasons.get(reason, 0) + 1

    def predict(self, prompts: Sequence[str | None], prompt_tokens: Sequence[int],
                services: Sequence[str]) -> LengthPredictions:
        """``services`` are serving-model names here (the model's input); map service names first
        (``serving.ServiceMap``)."""
        n = len(services)
        assert len(prompts) == n == len(prompt_tokens), "prompts, prompt_tokens and services differ in length"
        width = len(self._taus) + 1
        packed = np.full((n, width), np.nan)
        have = np.zeros(n, dtype=bool)
        miss: list[int] = []
        keys: list[bytes] = []
        if self.engine is not None:
            for i, (p, s) in enumerate(zip(prompts, services, strict=True)):
                if not p:
                    continue
                key = prompt_key(s, clip_text(p, self.engine.budget))  # what the model sees decides the answer
                hit = self._cache_get(key) if self.cache_size else None
                if hit is None:
                    miss.append(i)
                    keys.append(key)
                else:
                    packed[i] = hit
                    have[i] = True
        self.stats.cache_hits += int(have.sum())
        if miss:
            out = self._run_model([prompts[i] or "" for i in miss], [services[i] for i in miss], keys)
            if out is not None:
                packed[miss] = out
                have[miss] = True
                self.stats.model_rows += len(miss)
        todo = np.flatnonzero(~have)
        self.stats.rows += n
        if todo.size == n:
            self.stats.fallback_rows += n
            fb = self.fallback.predict([None] * n, prompt_tokens, services)
            return LengthPredictions(fb.mean, fb.p90, "fallback", fb.quantiles)
        model_rows = np.flatnonzero(have)
        res = self._outputs(packed[model_rows], [services[i] for i in model_rows.tolist()])
        if todo.size == 0:
            return res
        self.stats.fallback_rows += int(todo.size)
        rows = todo.tolist()
        fb = self.fallback.predict([None] * len(rows), [prompt_tokens[i] for i in rows], [services[i] for i in rows])
        mean = np.empty(n)
        p90 = np.empty(n)
        mean[model_rows], mean[todo] = res.mean, fb.mean
        p90[model_rows], p90[todo] = res.p90, fb.p90
        quantiles: dict[str, np.ndarray] = {}
        for name in res.quantiles.keys() & fb.quantiles.keys():
            quantiles[name] = np.empty(n)
            quantiles[name][model_rows], quantiles[name][todo] = res.quantiles[name], fb.quantiles[name]
        return LengthPredictions(mean=mean, p90=p90, source="model+fallback", quantiles=quantiles)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def torch_device_type(device: str) -> str:
    return device.split(":", 1)[0]


def _cpu_or_gpu_engine(model: Any, rows: Any, device: str, engine_kwargs: dict[str, Any]) -> LengthEngine:
    """On CPU: int8 and ONNX Runtime by default (several times faster than torch here, same accuracy: README,
    Speed); if ONNX Runtime is not installed or the export fails, the torch int8 engine."""
    cpu = torch_device_type(device) == "cpu"
    kwargs = {"int8": cpu, **engine_kwargs}
    if cpu and "backend" not in kwargs:
        from models.request_load.onnx_backend import onnx_available

        if onnx_available():
            try:
                return LengthEngine(copy.deepcopy(model), rows, EngineConfig(device=device, backend="onnx", **kwargs))
            except Exception as err:  # noqa: BLE001 - any export/runtime trouble: the torch path still serves
                log.warning("ONNX Runtime engine unavailable, using torch: %s: %s", type(err).__name__, err)
    return LengthEngine(model, rows, EngineConfig(device=device, **kwargs))


def load_model_predictor(path: Path, device: str = "cpu", timeout_s: float | None = None,
                         cache_size: int = 100_000, **engine_kwargs: Any) -> ModelPredictor:
    """The model predictor of checkpoint ``path`` (on CPU: int8 unless ``int8=False``, ONNX Runtime unless
    ``backend="torch"``); if it cannot be loaded (missing, corrupt, no torch, no encoder) a fallback-only
    ``ModelPredictor`` whose ``unavailable`` says why. The fallback table comes from the checkpoint's
    ``baselines.json``, else from the shipped default checkpoint."""
    from models.request_load.baselines import Baselines
    from models.request_load.predictor_registry import default_checkpoint_dir

    tables = path  # the fallback table and its calibration come from the same folder
    try:
        baselines = Baselines.load(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("no usable baselines in %s (%s): using the shipped default's", path, err)
        tables = default_checkpoint_dir()
        baselines = Baselines.load(tables)
    cal = load_calibration(path)
    fb_cal = load_calibration(tables) if tables != path else cal
    fallback = FallbackPredictor(baselines.fallback, calibration=fb_cal.fallback if fb_cal else None)
    try:
        from models.request_load.checkpoint import load_checkpoint

        loaded = load_checkpoint(path)
        engine = _cpu_or_gpu_engine(loaded.model, loaded.rows, device, engine_kwargs)
        if engine.cfg.int8:  # the CPU serving path has its own calibration where one was fitted
            cal = load_calibration(path, int8=True)
        return ModelPredictor(engine, fallback, loaded.meta.point_estimate, timeout_s, cache_size,
                              calibration=cal.model if cal else None)
    except Exception as err:  # noqa: BLE001 - a broken checkpoint must leave the pipeline running
        reason = f"{type(err).__name__}: {err}"
        log.warning("length model unavailable, using the fallback: %s", reason)
        return ModelPredictor(None, fallback, "p50", timeout_s, cache_size, unavailable=reason)
