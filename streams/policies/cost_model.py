"""Step-time cost model of one vLLM-style engine step (one forward pass over a continuous batch).

A step processes ``prefill_tokens`` new prompt tokens (whole prompts or chunks) and one token for each of
``decode_seqs`` running sequences. Its time is a sum of non-negative terms, each tied to a kernel family:

* ``c0``: fixed cost per step — reading the weights once (the linear layers are memory-bound at small batch),
  kernel launches, LM head.
* ``c_tok * n`` and ``c_tok_hinge * max(0, n - tok_knee)`` with ``n = prefill_tokens + decode_seqs``: the linear
  layers (QKV/out projections, gated MLP). Below the knee the GEMMs stay bound by the weight read and cost
  little per extra token; above it they are compute-bound and cost ~2 x 6.7 GFLOP per token.
* ``c_seq * decode_seqs``: per-sequence work that is not per-token GEMM (sampling, per-sequence attention setup).
* ``c_ctx * context_tokens``: decode attention, which reads the whole KV cache of each decoding sequence
  (HBM-bandwidth-bound: 0.5 MiB of fp16 K and V per token for Llama-2-7B).
* ``c_pf_attn * prefill_pairs``: causal prefill attention, compute-bound and quadratic in the chunk.
* ``cpu_overhead_s + cpu_per_seq_s * decode_seqs``: engine CPU time per step (scheduling, input preparation,
  output processing) that a GPU-only measurement does not see. Kept apart from the fitted GPU terms so that
  the calibration can be re-fitted without touching them.

All coefficients are non-negative, so the time is monotone non-decreasing in every argument. ``step_time`` is
plain float arithmetic because the simulator calls it millions of times.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["CostModel", "FEATURE_NAMES", "step_features"]

# Order of the fitted linear coefficients; ``step_features`` returns the matching feature vector.
FEATURE_NAMES: tuple[str, ...] = ("c0", "c_tok", "c_tok_hinge", "c_seq", "c_ctx", "c_pf_attn")


def step_features(prefill_tokens: float, decode_seqs: float, context_tokens: float, prefill_pairs: float,
                  tok_knee: float) -> list[float]:
    """Feature vector of one step, in ``FEATURE_NAMES`` order (used by the least-squares fit)."""
    n = prefill_tokens + decode_seqs
    return [1.0, n, max(0.0, n - tok_knee), decode_seqs, context_tokens, prefill_pairs]


@dataclass(frozen=True)
class CostModel:
    """Coefficients of the step-time model (seconds, per token / sequence / context token / query-key pair)."""

    c0: float = field(metadata={"help": "fixed GPU time per step (s)"})
    c_tok: float = field(metadata={"help": "linear-layer time per batched token below and above the knee (s)"})
    c_tok_hinge: float = field(metadata={"help": "extra linear-layer time per batched token above tok_knee (s)"})
    c_seq: float = field(metadata={"help": "GPU time per decoding sequence besides its token (s)"})
    c_ctx: float = field(metadata={"help": "decode attention time per KV-context token read (s)"})
    c_pf_attn: float = field(metadata={"help": "prefill attention time per chunk x (cached + chunk) pair (s)"})
    tok_knee: float = field(default=128.0, metadata={"help": "batched tokens where GEMMs turn compute-bound"})
    cpu_overhead_s: float = field(default=0.0, metadata={"help": "engine CPU time per step, not in the GPU fit"})
    cpu_per_seq_s: float = field(default=0.0, metadata={"help": "engine CPU time per decoding sequence"})
    source: str = field(default="", compare=False, metadata={"help": "how and where the coefficients were obtained"})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float | int) and not isinstance(value, bool):
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"CostModel.{f.name} must be finite and >= 0, got {value!r}")

    def step_time(self, prefill_tokens: int, decode_seqs: int, context_tokens: int,
                  prefill_pairs: float | None = None) -> float:
        """Seconds for one engine step.

        :param prefill_tokens: new prompt tokens processed in this step (sum over prompts / chunks).
        :param decode_seqs: sequences generating one token in this step.
        :param context_tokens: KV tokens read by decode attention: the sum, over decoding sequences, of their
            current length (prompt + tokens generated so far).
        :param prefill_pairs: sum over the step's prefill chunks of ``chunk * (cached_prefix + chunk)``. The
            default, ``prefill_tokens ** 2``, is exact for one un-chunked prompt and an upper bound otherwise;
            pass the sum when a step batches several prompts (the quadratic term then shrinks).
        :returns: seconds; 0.0 for an empty step.
        """
        n = prefill_tokens + decode_seqs
        if n <= 0:
            return 0.0
        pairs = float(prefill_tokens) * prefill_tokens if prefill_pairs is None else prefill_pairs
        hinge = n - self.tok_knee
        t = (self.c0 + self.cpu_overhead_s + self.c_tok * n + (self.c_seq + self.cpu_per_seq_s) * decode_seqs
             + self.c_ctx * context_tokens + self.c_pf_attn * pairs)
        if hinge > 0:
            t += self.c_tok_hinge * hinge
        return t

    def decode_run_time(self, k_steps: int, decode_seqs: int, context_tokens: int) -> float:
        """Seconds for ``k_steps`` consecutive pure-decode steps of the same ``decode_seqs`` sequences.

        The context starts at ``context_tokens`` and grows by ``decode_seqs`` per step, so this equals
        ``sum(step_time(0, decode_seqs, context_tokens + i * decode_seqs) for i in range(k_steps))`` in closed
        form: every term but attention is the same each step, and attention grows arithmetically.
        """
        if k_steps <= 0 or decode_seqs <= 0:
            return 0.0
        per_step = self.step_time(0, decode_seqs, 0)
        ctx_sum = k_steps * context_tokens + decode_seqs * (k_steps * (k_steps - 1) // 2)
        return k_steps * per_step + self.c_ctx * ctx_sum

    def with_cpu_overhead(self, cpu_overhead_s: float, cpu_per_seq_s: float) -> CostModel:
        """Copy with other engine CPU overheads (the GPU coefficients unchanged)."""
        values = asdict(self)
        values.update(cpu_overhead_s=cpu_overhead_s, cpu_per_seq_s=cpu_per_seq_s)
        return CostModel(**values)

    def scaled(self, factor: float) -> CostModel:
        """Copy whose every step takes ``factor`` times as long (an engine slower or faster than its profile:
        the simulator runs it while the policies keep reading the profile)."""
        if not math.isfinite(factor) or factor <= 0:
            raise ValueError(f"scale factor must be > 0, got {factor!r}")
        values = asdict(self)
        for name in ("c0", "c_tok", "c_tok_hinge", "c_seq", "c_ctx", "c_pf_attn", "cpu_overhead_s", "cpu_per_seq_s"):
            values[name] *= factor
        values["source"] = f"{self.source} x{factor:g}"
        return CostModel(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostModel:
        """Build from a dict; unknown keys are ignored so that a calibration JSON may carry provenance fields."""
        names = {f.name for f in fields(cls)}
        missing = [n for n in FEATURE_NAMES if n not in data]
        if missing:
            raise ValueError(f"cost model is missing coefficients {missing}")
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in names}
        for key, value in kwargs.items():
            if key != "source":
                kwargs[key] = float(value)
        return cls(**kwargs)

    def to_json(self, path: str | Path, extra: dict[str, Any] | None = None) -> None:
        """Write the coefficients (plus optional provenance/fit-error fields) as JSON."""
        payload = {**(extra or {}), **self.to_dict()}
        Path(path).write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> CostModel:
        """Read a calibration JSON written by ``to_json`` (or ``preserve calibrate fit``)."""
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from exc
        if isinstance(data, dict) and isinstance(data.get("cost_model"), dict):
            data = data["cost_model"]
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of coefficients")
        return cls.from_dict(data)
