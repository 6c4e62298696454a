"""Training, prediction and checkpoints of the workload forecaster (CPU, small, seeded).

``fit_forecaster`` trains on the windows it is given with a chronological validation tail for early stopping
(best weights restored), once per ensemble member (``ForecasterConfig.members``, seeds ``seed * members + k``,
so ``members=1`` is the single network of seed ``seed``). ``FittedForecaster.predict`` turns model outputs back
into the series' units.
Checkpoints (``save_checkpoint``/``load_checkpoint``) hold the model config, the scaler, the window size, the
training summary and the weights, so a checkpoint can't be loaded into a differently shaped model.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.workload.features import DAY_S, LogScaler, make_samples, model_inputs, reference_level
from models.workload.model import ForecasterConfig, ForecasterEnsemble, WorkloadForecaster, forecast_loss

CHECKPOINT_FORMAT = "preserve-workload-forecaster/2"
# Chosen per backbone on the validation split (README, "Choosing the settings"): the mLSTM without its head-wise
# norm did better at 3e-3 than at 1e-3, the LSTM did better at 1e-3, so each backbone trains at its own best rate.
DEFAULT_LR = {"mlstm": 3e-3, "lstm": 1e-3}

__all__ = ["DEFAULT_LR", "TrainConfig", "FittedForecaster", "fit_forecaster", "save_checkpoint", "load_checkpoint"]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=80, metadata={"help": "maximum passes over the training windows"})
    batch_size: int = field(default=64, metadata={"help": "windows per step"})
    lr: float | None = field(default=None, metadata={"help": "AdamW learning rate; None: the backbone's entry in "
                                                             "DEFAULT_LR"})
    weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay"})
    val_frac: float = field(default=0.15, metadata={"help": "chronological tail of the samples for early stopping"})
    patience: int = field(default=12, metadata={"help": "epochs without validation gain before stopping"})
    seed: int = field(default=0, metadata={"help": "torch/numpy seed (same seed, same model)"})
    device: str = field(default="cpu", metadata={"help": "torch device of the training (the fitted networks are "
                                                        "returned on the CPU)"})


@dataclass
class FittedForecaster:
    cfg: ForecasterConfig
    scaler: LogScaler
    window_s: float
    net: ForecasterEnsemble
    info: dict[str, Any] = field(default_factory=dict)

    def memory(self) -> tuple[int, int] | None:
        """``(period, day_lags)`` of the multi-day input layout, None for the plain one."""
        return (max(1, int(round(DAY_S / self.window_s))), self.cfg.day_lags) if self.cfg.memory else None

    @torch.no_grad()
    def predict(self, values: np.ndarray, window_start: np.ndarray, origins: np.ndarray,
                valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Forecasts from each origin (index of the last observed window, >= history - 1).

        Returns (point, upper), each (S, H, len(cfg.targets)) in the units of ``values``.
        """
        origins = np.asarray(origins, dtype=np.int64)
        if len(origins) and origins.min() < self.cfg.needed_history - 1:
            raise ValueError(f"origin {origins.min()} has less than {self.cfg.needed_history} windows of history")
        inputs = model_inputs(values, window_start, self.window_s, self.scaler)
        z = self.scaler.transform(values)
        x, _, _ = make_samples(inputs, z, self.cfg.history, self.cfg.horizon, origins, self.cfg.level_alpha, valid,
                               self.memory())
        self.net.eval()
        point, upper = self.net(torch.from_numpy(x))
        tg = list(self.cfg.targets)
        ref = z[origins] if self.cfg.memory else reference_level(z, origins, self.cfg.history, self.cfg.level_alpha)
        z0 = ref[:, None, tg]  # (S, 1, T)
        mean_, std_ = self.scaler.mean[tg], self.scaler.std[tg]

        def back(delta: torch.Tensor) -> np.ndarray:
            return np.maximum(np.expm1((z0 + delta.numpy().astype(float)) * std_ + mean_), 0.0)

        return back(point), back(upper)


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def _clean_origins(ok: np.ndarray, history: int, horizon: int) -> np.ndarray:
    """Origins whose whole span [t - history + 1, t + horizon] is valid."""
    bad = np.concatenate([[0], np.cumsum(~ok)])  # bad[j] = invalid windows among the first j
    t = np.arange(history - 1, len(ok) - horizon)
    return t[bad[t + horizon + 1] - bad[t - history + 1] == 0]


def _evaluate(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, q: float) -> float:
    net.eval()
    with torch.no_grad():
        point, upper = net(x)
        return float(forecast_loss(point, upper, y, q))


def _train_member(net: WorkloadForecaster, data: tuple[torch.Tensor, ...], tcfg: TrainConfig,
                  seed: int) -> tuple[WorkloadForecaster, int]:
    """AdamW + cosine schedule with early stopping on the validation tail; returns the best weights, epochs run."""
    dev = torch.device(tcfg.device)
    xt, yt, xv, yv = (d.to(dev) for d in data)
    net = net.to(dev)
    q = net.cfg.quantile
    lr = tcfg.lr if tcfg.lr is not None else DEFAULT_LR[net.cfg.backbone]
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=tcfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, tcfg.epochs))
    gen = torch.Generator().manual_seed(seed)
    best, best_state, bad, epochs_run = float("inf"), copy.deepcopy(net.state_dict()), 0, 0
    for epoch in range(1, tcfg.epochs + 1):
        epochs_run = epoch
        net.train()
        perm = torch.randperm(len(xt), generator=gen)
        for s in range(0, len(perm), tcfg.batch_size):
            idx = perm[s:s + tcfg.batch_size].to(dev)
            point, upper = net(xt[idx])
            loss = forecast_loss(point, upper, yt[idx], q)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        sched.step()
        val = _evaluate(net, xv, yv, q)
        if val < best - 1e-5:
            best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
        else:
            bad += 1
            if bad >= tcfg.patience:
                break
    net.load_state_dict(best_state)
    return net.cpu().eval(), epochs_run


def fit_forecaster(values: np.ndarray, window_start: np.ndarray, window_s: float, cfg: ForecasterConfig,
                   tcfg: TrainConfig | None = None, init: FittedForecaster | None = None,
                   valid: np.ndarray | None = None) -> FittedForecaster:
    """Train on all full (history + horizon) windows of the series; ``init`` warm-starts (online fine-tuning)
    and keeps its scaler so that the model's input scale does not jump between refits. ``valid`` (N,) marks
    windows that are real data; samples touching an invalid (gap, imputed) window are not trained on."""
    tcfg = tcfg or TrainConfig()
    t0 = time.perf_counter()
    ok = np.ones(len(values), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    scaler = init.scaler if init is not None else LogScaler.fit(values[ok])
    inputs = model_inputs(values, window_start, window_s, scaler)
    z = scaler.transform(values)
    origins = _clean_origins(ok, cfg.needed_history, cfg.horizon)
    memory = (max(1, int(round(DAY_S / window_s))), cfg.day_lags) if cfg.memory else None
    x, y, _ = make_samples(inputs, z, cfg.history, cfg.horizon, origins, cfg.level_alpha, ok, memory)
    if len(x) < 4:
        raise ValueError(f"need at least {cfg.history + cfg.horizon + 3} windows to train, got {len(values)}")
    y = y[:, :, list(cfg.targets)]
    n_val = max(1, int(len(x) * tcfg.val_frac))
    data = (torch.from_numpy(x[:-n_val]), torch.from_numpy(y[:-n_val]), torch.from_numpy(x[-n_val:]),
            torch.from_numpy(y[-n_val:]))
    nets, epochs = [], []
    for k in range(cfg.members):
        seed = tcfg.seed * cfg.members + k  # disjoint member seeds for different ensemble seeds
        _seed(seed)
        net = copy.deepcopy(init.net.member(k)) if init is not None else WorkloadForecaster(cfg)
        net, n_epochs = _train_member(net, data, tcfg, seed)
        nets.append(net)
        epochs.append(n_epochs)
    ens = ForecasterEnsemble(cfg, nets).eval()
    params = sum(p.numel() for p in ens.parameters())
    info = {"epochs": sum(epochs), "member_epochs": epochs, "val_loss": _evaluate(ens, *data[2:], cfg.quantile),
            "train_windows": int(len(values)), "samples": int(len(x)), "train_s": time.perf_counter() - t0,
            "params": params, "params_per_member": params // cfg.members, "train_config": asdict(tcfg)}
    return FittedForecaster(cfg=cfg, scaler=scaler, window_s=float(window_s), net=ens, info=info)


def save_checkpoint(ff: FittedForecaster, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "config": ff.cfg.to_dict(),
                "scaler": ff.scaler.to_dict(), "window_s": ff.window_s, "info": ff.info,
                "state_dict": ff.net.state_dict()}, path)
    return path


def load_checkpoint(path: str | Path) -> FittedForecaster:
    blob = torch.load(Path(path), map_location="cpu", weights_only=False)
    fmt = blob.get("format") if isinstance(blob, dict) else None
    if fmt not in (CHECKPOINT_FORMAT, "preserve-workload-forecaster/1"):
        raise ValueError(f"{path}: not a workload-forecaster checkpoint")
    cfg = ForecasterConfig.from_dict(blob["config"])
    state = blob["state_dict"]
    if fmt != CHECKPOINT_FORMAT:  # format 1: one network, which is member 0 of an ensemble of one
        state = {f"members.0.{k}": v for k, v in state.items()}
    net = ForecasterEnsemble(cfg)
    net.load_state_dict(state)
    net.eval()
    return FittedForecaster(cfg=cfg, scaler=LogScaler.from_dict(blob["scaler"]), window_s=float(blob["window_s"]),
                            net=net, info=dict(blob.get("info", {})))
