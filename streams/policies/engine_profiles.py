"""Engine profiles (part of the control core): one vLLM-style instance, with presets for Llama-2-7B on one H100 / one
A100 and the KV-tighter Llama-2-13B on one H100.

The cost-model coefficients of a preset live in ``streams/policies/profiles/<preset>.json`` together with how, where
and when they were measured (see ``fleet/calibration/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from streams.policies.cost_model import CostModel

__all__ = ["EngineConfig", "PRESETS", "get_preset", "kv_capacity_tokens", "PROFILES_DIR"]

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

GIB = 1024**3
MIB = 1024**2

# Llama-2-7B: 6,738,415,616 parameters in fp16 -> 13.48 GB = 12.55 GiB of weights.
LLAMA2_7B_WEIGHT_BYTES = 6_738_415_616 * 2
# KV cache per token: 2 bytes (fp16) x 2 (K and V) x 32 layers x 4096 hidden = 524,288 B = 0.5 MiB.
LLAMA2_7B_KV_BYTES_PER_TOKEN = 2 * 2 * 32 * 4096
# vLLM's profiling run reserves memory for the peak activations of a max_num_batched_tokens forward pass, plus
# CUDA-graph pools, the cuBLAS workspace and the sampler's logits; about 2 GiB for a 7B model at 8192 tokens.
ACTIVATION_RESERVE_BYTES = 2 * GIB
GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default


def kv_capacity_tokens(gpu_memory_bytes: int, weight_bytes: int = LLAMA2_7B_WEIGHT_BYTES,
                       kv_bytes_per_token: int = LLAMA2_7B_KV_BYTES_PER_TOKEN, block_size: int = 16,
                       activation_reserve_bytes: int = ACTIVATION_RESERVE_BYTES,
                       gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION) -> int:
    """KV-cache tokens that vLLM allocates: (util x memory - weights - activations) / bytes per token,
    rounded down to whole blocks."""
    free = gpu_memory_utilization * gpu_memory_bytes - weight_bytes - activation_reserve_bytes
    if free <= 0:
        raise ValueError("the model does not fit in this GPU's memory")
    blocks = int(free // (kv_bytes_per_token * block_size))
    return blocks * block_size


# H100 80GB (SXM, HBM3): 81,559 MiB as reported by the driver (79.65 GiB).
#   0.9 x 79.65 GiB = 71.68 GiB; - 12.55 GiB weights - 2 GiB activations = 57.13 GiB for KV;
#   57.13 GiB / 0.5 MiB per token = 117,002 tokens -> 7,312 blocks of 16 = 116,992 tokens.
H100_MEMORY_BYTES = 81_559 * MIB
# A100 80GB (SXM, HBM2e; the SKU Vidur's profiles most likely come from): 81,920 MiB (80 GiB).
#   0.9 x 80 GiB = 72 GiB; - 12.55 - 2 = 57.45 GiB -> 117,659 tokens -> 7,353 blocks of 16 = 117,648 tokens.
A100_MEMORY_BYTES = 81_920 * MIB

# vLLM V1 cold start of a 7B model on a node that already has the image: engine process start, 13.5 GB of weights
# from local NVMe (~5-10 s), torch.compile (~20-40 s without a warm cache) and CUDA-graph capture (~5-15 s).
# 60 s is a middle value; node provisioning and image pulls are not included.
COLD_START_S = 60.0


@dataclass(frozen=True)
class EngineConfig:
    """One serving engine (one model replica on one GPU), as the simulator's instance sees it."""

    name: str = field(metadata={"help": "preset name, e.g. llama2-7b-h100"})
    gpu: str = field(metadata={"help": "GPU model of the instance"})
    model: str = field(metadata={"help": "served model"})
    kv_capacity_tokens: int = field(metadata={"help": "KV-cache capacity in tokens (a multiple of block_size)"})
    cost_model: CostModel = field(metadata={"help": "step-time model of this engine on this GPU"})
    block_size: int = field(default=16, metadata={"help": "tokens per paged KV block"})
    max_num_seqs: int = field(default=256, metadata={"help": "most running sequences per step"})
    max_batched_tokens: int = field(default=8192, metadata={"help": "most tokens (prefill + decode) per step"})
    chunked_prefill: bool = field(default=True, metadata={"help": "split long prompts across steps"})
    max_model_len: int = field(default=4096, metadata={"help": "longest prompt + output in tokens"})
    cold_start_s: float = field(default=COLD_START_S, metadata={"help": "seconds from start request to ready"})

    def __post_init__(self) -> None:
        if min(self.block_size, self.max_num_seqs, self.max_batched_tokens, self.max_model_len) <= 0:
            raise ValueError(f"{self.name}: sizes must be positive")
        if self.kv_capacity_tokens % self.block_size:
            raise ValueError(f"{self.name}: kv_capacity_tokens must be a multiple of block_size")
        if self.kv_capacity_tokens < self.max_model_len:
            raise ValueError(f"{self.name}: the KV cache cannot hold one max_model_len sequence")
        if not self.chunked_prefill and self.max_batched_tokens < self.max_model_len:
            # Same rule as vLLM: without chunking a whole prompt must fit in one step.
            raise ValueError(f"{self.name}: max_batched_tokens < max_model_len needs chunked_prefill")
        if self.cold_start_s < 0:
            raise ValueError(f"{self.name}: cold_start_s must be >= 0")

    @property
    def kv_capacity_blocks(self) -> int:
        return self.kv_capacity_tokens // self.block_size


# Llama-2-13B: 13,015,864,320 parameters in fp16 -> 26.03 GB = 24.24 GiB; KV per token 2 x 2 x 40 layers x 5120
# hidden = 819,200 B. On an H100: (71.68 - 24.24 - 2) GiB / 0.78125 MiB = 59,560 tokens -> 3,722 blocks of 16 =
# 59,552 tokens, about half the 7B preset's: the KV-tight preset.
LLAMA2_13B_WEIGHT_BYTES = 13_015_864_320 * 2
LLAMA2_13B_KV_BYTES_PER_TOKEN = 2 * 2 * 40 * 5120


def _preset(name: str, gpu: str, memory_bytes: int, model: str = "meta-llama/Llama-2-7b-hf",
            weight_bytes: int = LLAMA2_7B_WEIGHT_BYTES,
            kv_bytes_per_token: int = LLAMA2_7B_KV_BYTES_PER_TOKEN) -> EngineConfig:
    return EngineConfig(name=name, gpu=gpu, model=model,
                        kv_capacity_tokens=kv_capacity_tokens(memory_bytes, weight_bytes, kv_bytes_per_token),
                        cost_model=CostModel.from_json(PROFILES_DIR / f"{name}.json"))


PRESETS: dict[str, EngineConfig] = {
    p.name: p for p in (
        _preset("llama2-7b-h100", "NVIDIA H100 80GB HBM3", H100_MEMORY_BYTES),
        _preset("llama2-7b-a100", "NVIDIA A100-SXM4-80GB", A100_MEMORY_BYTES),
        _preset("llama2-13b-h100", "NVIDIA H100 80GB HBM3", H100_MEMORY_BYTES, "meta-llama/Llama-2-13b-hf",
                LLAMA2_13B_WEIGHT_BYTES, LLAMA2_13B_KV_BYTES_PER_TOKEN),
    )
}


def get_preset(name: str) -> EngineConfig:
    """The named preset; raises ``KeyError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown engine preset {name!r}; known: {sorted(PRESETS)}") from None
