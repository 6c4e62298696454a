"""Workload forecaster network: embedding -> mLSTM (or plain LSTM) stack -> direct multi-step heads.

Both backbones share everything else (embedding, width, depth, heads, loss), so the comparison between the mLSTM
and the LSTM isolates the recurrent cell. The network sees ``history`` windows of the features of
:mod:`models.workload.features` and predicts, for every horizon 1..H and every target channel, the change of the
standardised log from the reference level (the origin window by default): a point forecast (trained with L1,
i.e. the median, which is what MAPE/SMAPE reward) and an upper quantile (pinball loss) kept above the point
forecast by construction. :class:`ForecasterEnsemble` averages ``members`` such networks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from models.workload.features import N_CALENDAR, TARGETS
from models.workload.mlstm import MLSTMBlock, MLSTMLayer

__all__ = ["ForecasterConfig", "WorkloadForecaster", "ForecasterEnsemble", "forecast_loss", "pinball"]


@dataclass(frozen=True)
class ForecasterConfig:
    backbone: str = field(default="mlstm", metadata={"help": "mlstm or lstm (plain LSTM of the same width/depth)"})
    history: int = field(default=25, metadata={"help": "input windows (PreServe: 25)"})
    horizon: int = field(default=6, metadata={"help": "windows forecast directly, 1..horizon"})
    dim: int = field(default=32, metadata={"help": "model width"})
    layers: int = field(default=1, metadata={"help": "stacked recurrent layers"})
    heads: int = field(default=4, metadata={"help": "mLSTM heads (ignored by the LSTM)"})
    block: str = field(default="simple", metadata={"help": "mLSTM block: simple (pre-norm cell + output gate) or "
                                                        "xlstm (the paper's up-projection block with causal conv)"})
    head_norm: bool = field(default=False, metadata={"help": "per-head GroupNorm of the mLSTM layer's output "
                                                           "(simple block; off: it removes the scale of what a "
                                                           "head retrieves, see MLSTMLayer)"})
    exp_forget: bool = field(default=False, metadata={"help": "exponential instead of sigmoid forget gate"})
    dropout: float = field(default=0.1, metadata={"help": "dropout between layers"})
    quantile: float = field(default=0.9, metadata={"help": "upper quantile the scaler provisions for"})
    n_channels: int = field(default=len(TARGETS), metadata={"help": "density channels in the input"})
    targets: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "indices of the channels forecast"})
    level_alpha: float = field(default=1.0, metadata={"help": "inputs/targets are relative to an EWMA of the history "
                                                            "with this weight on the newest window; 1 = the origin "
                                                            "window (chosen on validation data, see README)"})
    members: int = field(default=5, metadata={"help": "independently seeded networks whose forecasts are averaged"})
    day_lags: int = field(default=0, metadata={"help": "multi-day network: previous days fed as inputs (the level d "
                                                       "days earlier, horizon windows ahead of each step); > 0 also "
                                                       "adds a real-window flag and allows left padding"})
    min_history: int = field(default=0, metadata={"help": "multi-day network: real windows an origin needs (the "
                                                          "rest of the history is padded); 0 = history"})

    def __post_init__(self) -> None:
        if self.backbone not in ("mlstm", "lstm"):
            raise ValueError(f"backbone must be mlstm or lstm, got {self.backbone!r}")
        if self.history < 2 or self.horizon < 1 or not 0.5 < self.quantile < 1:
            raise ValueError("need history >= 2, horizon >= 1 and 0.5 < quantile < 1")
        if self.block not in ("simple", "xlstm"):
            raise ValueError(f"block must be simple or xlstm, got {self.block!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be a multiple of heads {self.heads}")
        if not 0 < self.level_alpha <= 1 or self.members < 1:
            raise ValueError("need 0 < level_alpha <= 1 and members >= 1")
        if self.day_lags < 0 or not 0 <= self.min_history <= self.history:
            raise ValueError("need day_lags >= 0 and 0 <= min_history <= history")
        if self.memory and self.level_alpha != 1.0:
            raise ValueError("the multi-day network (day_lags/min_history) is relative to the origin window")

    @property
    def memory(self) -> bool:
        """The multi-day input layout (padding, real-window flag, day lags)."""
        return self.day_lags > 0 or 0 < self.min_history < self.history

    @property
    def needed_history(self) -> int:
        """Real windows an origin needs."""
        return self.min_history if self.memory and self.min_history > 0 else self.history

    def n_inputs(self) -> int:
        return self.n_channels + N_CALENDAR + ((1 + self.n_channels * self.day_lags) if self.memory else 0)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["targets"] = list(self.targets)
        return d

    @staticmethod
    def from_dict(d: dict[str, object]) -> ForecasterConfig:
        kw = dict(d)
        kw["targets"] = tuple(kw["targets"])  # type: ignore[arg-type]
        for key, before in (("level_alpha", 1.0), ("members", 1), ("head_norm", True), ("day_lags", 0),
                            ("min_history", 0)):  # older checkpoints
            kw.setdefault(key, before)
        return ForecasterConfig(**kw)  # type: ignore[arg-type]


class WorkloadForecaster(nn.Module):
    def __init__(self, cfg: ForecasterConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Linear(cfg.n_inputs(), cfg.dim)
        if cfg.backbone == "mlstm":
            self.blocks = nn.ModuleList(
                MLSTMBlock(cfg.dim, cfg.heads, cfg.exp_forget, cfg.dropout) if cfg.block == "xlstm"
                else MLSTMLayer(cfg.dim, cfg.heads, cfg.exp_forget, cfg.dropout, cfg.head_norm)
                for _ in range(cfg.layers))
            self.lstm = None
        else:
            self.blocks = nn.ModuleList()
            self.lstm = nn.LSTM(cfg.dim, cfg.dim, cfg.layers, batch_first=True,
                                dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        # the same dropout on the recurrent output as each mLSTM layer applies to its residual branch, so the
        # two backbones are regularised alike
        self.drop = nn.Dropout(cfg.dropout)
        self.out_norm = nn.LayerNorm(cfg.dim)
        n_out = cfg.horizon * len(cfg.targets)
        self.head = nn.Linear(cfg.dim, 2 * n_out)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) -> (point, upper), each (B, H, T): changes of standardised log from the origin."""
        b, t, _ = x.shape
        assert t <= 4 * self.cfg.history, "sequence much longer than the configured history"
        h = self.embed(x)  # (B, L, D)
        if self.lstm is not None:
            h = self.drop(self.lstm(h)[0])
        else:
            for j, block in enumerate(self.blocks):
                # only the last position is read: the last simple layer computes just that, linear in L
                last_layer = j == len(self.blocks) - 1 and isinstance(block, MLSTMLayer)
                h = block(h, last_only=True) if last_layer else block(h)
        last = self.out_norm(h[:, -1])  # (B, D)
        out = self.head(last).view(b, 2, self.cfg.horizon, len(self.cfg.targets))
        point = out[:, 0]
        upper = point + F.softplus(out[:, 1])
        return point, upper


class ForecasterEnsemble(nn.Module):
    """``cfg.members`` independently initialised and trained networks; the forecast is their mean (in the
    standardised-log space of the outputs). With ~1,000 training windows a single network's forecast moves by
    about as much between seeds as the mLSTM and the LSTM differ, so a comparison of one seed each mostly
    compares seeds; averaging removes most of that variance (and lowers the error of either backbone)."""

    def __init__(self, cfg: ForecasterConfig, members: list[WorkloadForecaster] | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        nets = members if members is not None else [WorkloadForecaster(cfg) for _ in range(cfg.members)]
        assert len(nets) == cfg.members, f"{len(nets)} networks for {cfg.members} members"
        self.members = nn.ModuleList(nets)

    def member(self, k: int) -> WorkloadForecaster:
        net = self.members[k]
        assert isinstance(net, WorkloadForecaster)
        return net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) -> (point, upper), each (B, H, T): the members' mean."""
        outs = [net(x) for net in self.members]
        return torch.stack([o[0] for o in outs]).mean(0), torch.stack([o[1] for o in outs]).mean(0)


def pinball(pred: torch.Tensor, target: torch.Tensor, q: float) -> torch.Tensor:
    diff = target - pred
    return torch.maximum(q * diff, (q - 1) * diff).mean()


def forecast_loss(point: torch.Tensor, upper: torch.Tensor, target: torch.Tensor, q: float) -> torch.Tensor:
    """L1 on the point forecast + pinball on the upper quantile (the upper head gets no gradient into the point)."""
    return (point - target).abs().mean() + pinball(upper, target, q)
