"""mLSTM (matrix-memory LSTM) in plain PyTorch, from the xLSTM paper.

Reference: M. Beck, K. Pöppel, M. Spanring, A. Auer, O. Prudnikova, M. Kopp, G. Klambauer, J. Brandstetter,
S. Hochreiter, "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024 (arXiv:2405.04517), section 2.3 and
appendix A.3 (parallel form). Written from the equations; the ``xlstm``/``mlstm_kernels`` packages are *not* used
(their kernels are under the NXAI Community License, see DESIGN.md).

Per head (head dim ``d``), with ``k_t`` already scaled by ``1/sqrt(d)``:

    C_t = f_t C_{t-1} + i_t v_t k_t^T          (matrix memory, d x d)
    n_t = f_t n_{t-1} + i_t k_t                (normalizer)
    h_t = o_t * (C_t q_t) / max(|n_t^T q_t|, 1)

with an exponential input gate ``i_t = exp(i~_t)``, a sigmoid (or exponential) forget gate and a sigmoid output
gate. Exponential gates overflow, so both forms carry a stabiliser ``m_t`` in log space and store
``C_t exp(-m_t)``, ``n_t exp(-m_t)``; the ``max(., 1)`` becomes ``max(., exp(-m_t))``, which makes ``h_t``
independent of the choice of ``m_t`` -- that is why the recurrent and parallel forms agree exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLSTMState", "mlstm_parallel", "mlstm_last", "mlstm_chunkwise", "mlstm_step", "mlstm_recurrent",
           "MLSTMLayer", "MLSTMBlock"]


@dataclass
class MLSTMState:
    """Recurrent state of all heads: C (B, NH, DH, DH), n (B, NH, DH), m (B, NH) -- C and n scaled by exp(-m)."""

    c: torch.Tensor
    n: torch.Tensor
    m: torch.Tensor

    @staticmethod
    def zeros(batch: int, heads: int, head_dim: int, like: torch.Tensor) -> MLSTMState:
        return MLSTMState(c=like.new_zeros(batch, heads, head_dim, head_dim), n=like.new_zeros(batch, heads, head_dim),
                          m=like.new_zeros(batch, heads))


def _log_forget(f_pre: torch.Tensor, exp_forget: bool) -> torch.Tensor:
    return f_pre if exp_forget else F.logsigmoid(f_pre)


def mlstm_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor, f_pre: torch.Tensor,
                   exp_forget: bool = False) -> torch.Tensor:
    """Parallel (quadratic in T) mLSTM from a zero state. q, k, v: (B, NH, T, DH); gates: (B, NH, T).

    Returns h~ (B, NH, T, DH), before the output gate. ``k`` must already be scaled by 1/sqrt(DH).
    """
    _, _, t, _ = q.shape
    log_f = _log_forget(f_pre, exp_forget)  # (B, NH, T)
    cum = torch.cumsum(log_f, dim=-1)
    # log D[t, s] = sum_{j=s+1..t} log f_j + i~_s for s <= t, -inf otherwise
    log_d = cum.unsqueeze(-1) - cum.unsqueeze(-2) + i_pre.unsqueeze(-2)  # (B, NH, T, T)
    causal = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    log_d = log_d.masked_fill(~causal, float("-inf"))
    # (B, NH, T, 1); finite (the diagonal is always present). h does not depend on m, so no gradient through it
    m = log_d.amax(dim=-1, keepdim=True).detach()
    d = torch.exp(log_d - m)
    scores = (q @ k.transpose(-1, -2)) * d  # (B, NH, T, T)
    norm = torch.maximum(scores.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))
    return (scores / norm.clamp_min(torch.finfo(q.dtype).tiny)) @ v


def mlstm_last(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor, f_pre: torch.Tensor,
               exp_forget: bool = False) -> torch.Tensor:
    """Output at the last position only, from a zero state: the last row of :func:`mlstm_parallel`, in
    O(T) time and memory instead of O(T^2). Same shapes in; returns h~ (B, NH, 1, DH).

    A forecaster reads only the last hidden state of a one-layer network, so a history of several days (288+
    windows) costs no more per window than a short one; the result is exactly the recurrent form's last step.
    """
    log_f = _log_forget(f_pre, exp_forget)  # (B, NH, T)
    cum = torch.cumsum(log_f, dim=-1)
    log_d = cum[..., -1:] - cum + i_pre  # (B, NH, T): sum_{j=s+1..T} log f_j + i~_s
    m = log_d.amax(dim=-1, keepdim=True).detach()  # (B, NH, 1)
    d = torch.exp(log_d - m)
    scores = (k @ q[:, :, -1:].transpose(-1, -2)).squeeze(-1) * d  # (B, NH, T)
    norm = torch.maximum(scores.sum(dim=-1, keepdim=True).abs(), torch.exp(-m))  # (B, NH, 1)
    h = (scores.unsqueeze(-2) @ v) / norm.unsqueeze(-1).clamp_min(torch.finfo(q.dtype).tiny)
    return h  # (B, NH, 1, DH)


def mlstm_chunkwise(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor, f_pre: torch.Tensor,
                    exp_forget: bool = False, chunk: int = 64,
                    state: MLSTMState | None = None) -> tuple[torch.Tensor, MLSTMState]:
    """All positions in O(T * chunk): the parallel form inside chunks of ``chunk`` steps, the recurrent state
    (C, n, m) carried between them. Same shapes as :func:`mlstm_parallel`; returns h~ and the final state.

    Within a chunk, position t combines the carried state (decayed by the chunk's cumulative forget gate up to
    t) with the chunk's own keys/values; both parts share one stabiliser per position, the max of their log
    weights, so the result equals the parallel and step forms (the tests check float64 agreement).
    """
    b, nh, t, dh = q.shape
    st = state if state is not None else MLSTMState.zeros(b, nh, dh, q)
    log_f_all = _log_forget(f_pre, exp_forget)
    outs = []
    for c0 in range(0, t, chunk):
        sl = slice(c0, min(t, c0 + chunk))
        qc, kc, vc, ic, lf = q[:, :, sl], k[:, :, sl], v[:, :, sl], i_pre[:, :, sl], log_f_all[:, :, sl]
        tc = qc.shape[2]
        cum = torch.cumsum(lf, dim=-1)  # (B, NH, Tc): log decay from the chunk start to each position
        log_d = cum.unsqueeze(-1) - cum.unsqueeze(-2) + ic.unsqueeze(-2)  # (B, NH, Tc, Tc)
        causal = torch.ones(tc, tc, dtype=torch.bool, device=q.device).tril()
        log_d = log_d.masked_fill(~causal, float("-inf"))
        log_state = cum + st.m.unsqueeze(-1)  # (B, NH, Tc): log weight of the carried state at each position
        m = torch.maximum(log_d.amax(dim=-1), log_state).detach()  # (B, NH, Tc)
        d = torch.exp(log_d - m.unsqueeze(-1))
        w_state = torch.exp(log_state - m).unsqueeze(-1)  # (B, NH, Tc, 1)
        scores = (qc @ kc.transpose(-1, -2)) * d  # (B, NH, Tc, Tc)
        num = scores @ vc + w_state * (qc @ st.c.transpose(-1, -2))  # C q: (q C^T) per row
        den_dot = scores.sum(-1, keepdim=True) + w_state * (qc * st.n.unsqueeze(-2)).sum(-1, keepdim=True)
        norm = torch.maximum(den_dot.abs(), torch.exp(-m).unsqueeze(-1))
        outs.append(num / norm.clamp_min(torch.finfo(q.dtype).tiny))
        # carry the state to the chunk's end: C_end = exp(cum_T + m_prev - m_end) C + sum_s exp(log_d[T, s] - m_end) v_s k_s^T
        m_end = torch.maximum(log_state[..., -1], log_d[..., -1, :].amax(dim=-1)).detach()  # (B, NH)
        a = torch.exp(log_state[..., -1] - m_end)  # (B, NH)
        w = torch.exp(log_d[..., -1, :] - m_end.unsqueeze(-1))  # (B, NH, Tc)
        c_new = a[..., None, None] * st.c + (vc * w.unsqueeze(-1)).transpose(-1, -2) @ kc
        n_new = a.unsqueeze(-1) * st.n + (kc * w.unsqueeze(-1)).sum(-2)
        st = MLSTMState(c=c_new, n=n_new, m=m_end)
    return torch.cat(outs, dim=2), st


def mlstm_step(state: MLSTMState, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor,
               f_pre: torch.Tensor, exp_forget: bool = False) -> tuple[torch.Tensor, MLSTMState]:
    """One recurrent step. q, k, v: (B, NH, DH); gates (B, NH). Returns h~ (B, NH, DH) and the new state."""
    log_f = _log_forget(f_pre, exp_forget)
    m_new = torch.maximum(log_f + state.m, i_pre).detach()  # h does not depend on the stabiliser
    f_s = torch.exp(log_f + state.m - m_new).unsqueeze(-1)  # (B, NH, 1)
    i_s = torch.exp(i_pre - m_new).unsqueeze(-1)
    c = f_s.unsqueeze(-1) * state.c + i_s.unsqueeze(-1) * (v.unsqueeze(-1) @ k.unsqueeze(-2))  # (B, NH, DH, DH)
    n = f_s * state.n + i_s * k
    num = (c @ q.unsqueeze(-1)).squeeze(-1)  # (B, NH, DH)
    den = torch.maximum((n * q).sum(-1, keepdim=True).abs(), torch.exp(-m_new).unsqueeze(-1))
    return num / den.clamp_min(torch.finfo(q.dtype).tiny), MLSTMState(c=c, n=n, m=m_new)


def mlstm_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i_pre: torch.Tensor, f_pre: torch.Tensor,
                    exp_forget: bool = False, state: MLSTMState | None = None) -> tuple[torch.Tensor, MLSTMState]:
    """Step-by-step form over a sequence (same shapes as :func:`mlstm_parallel`); returns h~ and the final state."""
    b, nh, t, dh = q.shape
    st = state if state is not None else MLSTMState.zeros(b, nh, dh, q)
    outs = []
    for j in range(t):
        h, st = mlstm_step(st, q[:, :, j], k[:, :, j], v[:, :, j], i_pre[:, :, j], f_pre[:, :, j], exp_forget)
        outs.append(h)
    return torch.stack(outs, dim=2), st


class MLSTMLayer(nn.Module):
    """Multi-head mLSTM layer: pre-norm, projections, mLSTM cell, output gate, head-wise norm, residual.

    :param dim: model width (input and output).
    :param heads: number of heads; ``dim`` must divide evenly.
    :param exp_forget: exponential forget gate instead of sigmoid.
    :param head_norm: normalise each head's output (the paper's GroupNorm). It removes the scale of what a head
        retrieves, which a language model does not need but a regression of level changes does; without it the
        cell output is still bounded, by the normaliser state (``max(|n^T q|, 1)``).
    """

    def __init__(self, dim: int, heads: int, exp_forget: bool = False, dropout: float = 0.0,
                 head_norm: bool = True) -> None:
        super().__init__()
        assert dim % heads == 0, "dim must be a multiple of heads"
        self.heads, self.head_dim, self.exp_forget = heads, dim // heads, exp_forget
        self.chunk = 64  # chunk of the chunkwise form, used above this many steps
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.gates = nn.Linear(dim, 2 * heads)  # input and forget pre-activations, one scalar per head
        self.out_gate = nn.Linear(dim, dim)
        self.head_norm: nn.Module = nn.GroupNorm(heads, dim) if head_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():  # start by remembering: forget gate ~ sigmoid(3) = 0.95; small input gate
            self.gates.bias[heads:].fill_(3.0)
            self.gates.bias[:heads].fill_(-1.0)

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B, NH, T, DH) each
        i_pre, f_pre = self.gates(x).view(b, t, 2, self.heads).permute(2, 0, 3, 1)  # (B, NH, T) each
        return q, k / math.sqrt(self.head_dim), v, i_pre, f_pre

    def _finish(self, x: torch.Tensor, xn: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = h.permute(0, 2, 1, 3).reshape(b, t, d)  # (B, T, D)
        h = self.head_norm(h.reshape(b * t, d)).view(b, t, d)
        h = torch.sigmoid(self.out_gate(xn)) * h
        return x + self.drop(self.proj(h))

    def forward(self, x: torch.Tensor, recurrent: bool = False, last_only: bool = False) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D); ``recurrent=True`` runs the step form (same result, slower for training);
        ``last_only=True`` returns only the last position, (B, 1, D), in time linear in T (:func:`mlstm_last`)."""
        if last_only:
            xn = self.norm(x)
            q, k, v, i_pre, f_pre = self._project(xn)
            h = mlstm_last(q, k, v, i_pre, f_pre, self.exp_forget)
            return self._finish(x[:, -1:], xn[:, -1:], h)
        xn = self.norm(x)
        q, k, v, i_pre, f_pre = self._project(xn)
        if recurrent:
            h, _ = mlstm_recurrent(q, k, v, i_pre, f_pre, self.exp_forget)
        elif x.shape[1] > self.chunk:  # long histories: chunkwise, linear in T
            h, _ = mlstm_chunkwise(q, k, v, i_pre, f_pre, self.exp_forget, self.chunk)
        else:
            h = mlstm_parallel(q, k, v, i_pre, f_pre, self.exp_forget)
        return self._finish(x, xn, h)


class MLSTMBlock(nn.Module):
    """The xLSTM paper's mLSTM block (pre up-projection, its figure 10), at a small scale.

    x -> LayerNorm -> up-projection (factor ``proj_factor``) into a cell branch and a gate branch; the cell
    branch goes through a causal depthwise convolution (kernel ``conv_kernel``) + SiLU which feeds q and k
    (v comes from the un-convolved branch); the mLSTM cell's output is head-normed, gets a learnable skip from
    the convolution, is gated by SiLU(gate branch) and projected back down; residual connection around it all.
    The causal convolution is a learnable local filter over the last few windows (useful on noisy series).
    """

    def __init__(self, dim: int, heads: int, exp_forget: bool = False, dropout: float = 0.0, proj_factor: int = 2,
                 conv_kernel: int = 4) -> None:
        super().__init__()
        inner = proj_factor * dim
        assert inner % heads == 0, "proj_factor * dim must be a multiple of heads"
        self.heads, self.head_dim, self.exp_forget, self.kernel = heads, inner // heads, exp_forget, conv_kernel
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, conv_kernel, groups=inner)
        self.qk = nn.Linear(inner, 2 * inner)
        self.v = nn.Linear(inner, inner)
        self.gates = nn.Linear(3 * inner, 2 * heads)  # from q, k, v as in the paper
        self.head_norm = nn.GroupNorm(heads, inner)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, dim)
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():
            self.gates.bias[heads:].fill_(3.0)
            self.gates.bias[:heads].fill_(-1.0)

    def forward(self, x: torch.Tensor, recurrent: bool = False) -> torch.Tensor:
        """x: (B, T, D) -> (B, T, D)."""
        b, t, _ = x.shape
        cell_in, gate_in = self.up(self.norm(x)).chunk(2, dim=-1)  # (B, T, I) each
        padded = F.pad(cell_in.transpose(1, 2), (self.kernel - 1, 0))  # causal: only past and present
        conv = F.silu(self.conv(padded).transpose(1, 2))  # (B, T, I)
        q, k = self.qk(conv).chunk(2, dim=-1)
        v = self.v(cell_in)
        i_pre, f_pre = self.gates(torch.cat([q, k, v], -1)).view(b, t, 2, self.heads).permute(2, 0, 3, 1)

        def heads(z: torch.Tensor) -> torch.Tensor:
            return z.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, NH, T, DH)

        args = (heads(q), heads(k) / math.sqrt(self.head_dim), heads(v), i_pre, f_pre, self.exp_forget)
        h = mlstm_recurrent(*args)[0] if recurrent else mlstm_parallel(*args)
        h = h.transpose(1, 2).reshape(b, t, -1)  # (B, T, I)
        h = self.head_norm(h.reshape(b * t, -1)).view(b, t, -1) + self.skip * conv
        return x + self.drop(self.down(h * F.silu(gate_in)))
