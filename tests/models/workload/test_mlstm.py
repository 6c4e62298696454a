from __future__ import annotations

import pytest
import torch

from models.workload.mlstm import (
    MLSTMBlock,
    MLSTMLayer,
    MLSTMState,
    mlstm_chunkwise,
    mlstm_last,
    mlstm_parallel,
    mlstm_recurrent,
    mlstm_step,
)


def _inputs(seed: int, b: int = 2, nh: int = 3, t: int = 19, dh: int = 5, gate_scale: float = 3.0,
            dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, nh, t, dh, generator=g, dtype=dtype) for _ in range(3))
    i_pre = torch.randn(b, nh, t, generator=g, dtype=dtype) * gate_scale
    f_pre = torch.randn(b, nh, t, generator=g, dtype=dtype) * gate_scale
    return q, k / dh**0.5, v, i_pre, f_pre


@pytest.mark.parametrize("exp_forget", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_form_equals_parallel_form(seed: int, exp_forget: bool) -> None:
    q, k, v, i_pre, f_pre = _inputs(seed)
    par = mlstm_parallel(q, k, v, i_pre, f_pre, exp_forget)
    rec, _ = mlstm_recurrent(q, k, v, i_pre, f_pre, exp_forget)
    torch.testing.assert_close(rec, par, rtol=1e-9, atol=1e-10)


def test_step_matches_unstabilised_definition() -> None:
    """Moderate gates: the stabilised step equals the paper's plain recurrence (C, n without m)."""
    q, k, v, i_pre, f_pre = _inputs(3, b=1, nh=1, t=8, dh=4, gate_scale=1.0)
    c = torch.zeros(4, 4, dtype=torch.float64)
    n = torch.zeros(4, dtype=torch.float64)
    st = MLSTMState.zeros(1, 1, 4, q)
    for j in range(8):
        i, f = torch.exp(i_pre[0, 0, j]), torch.sigmoid(f_pre[0, 0, j])
        c = f * c + i * torch.outer(v[0, 0, j], k[0, 0, j])
        n = f * n + i * k[0, 0, j]
        ref = (c @ q[0, 0, j]) / torch.clamp((n @ q[0, 0, j]).abs(), min=1.0)
        h, st = mlstm_step(st, q[:, :, j], k[:, :, j], v[:, :, j], i_pre[:, :, j], f_pre[:, :, j])
        torch.testing.assert_close(h[0, 0], ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("exp_forget", [False, True])
def test_stabiliser_keeps_large_gates_finite(exp_forget: bool) -> None:
    # exp(200) overflows float32 (max ~3.4e38): without the stabiliser C and n would be inf/nan
    q, k, v, i_pre, f_pre = _inputs(4, gate_scale=200.0, dtype=torch.float32)
    par = mlstm_parallel(q, k, v, i_pre, f_pre, exp_forget)
    rec, st = mlstm_recurrent(q, k, v, i_pre, f_pre, exp_forget)
    assert torch.isfinite(par).all() and torch.isfinite(rec).all()
    assert torch.isfinite(st.c).all() and torch.isfinite(st.n).all()
    torch.testing.assert_close(rec, par, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("cls", [MLSTMLayer, MLSTMBlock])
def test_layer_recurrent_equals_parallel_and_is_causal(cls: type) -> None:
    torch.manual_seed(0)
    layer = cls(12, 3).double().eval()
    x = torch.randn(2, 10, 12, dtype=torch.float64)
    torch.testing.assert_close(layer(x, recurrent=True), layer(x), rtol=1e-9, atol=1e-10)
    x2 = x.clone()
    x2[:, 7:] += 5.0  # changing the future must not change the past
    torch.testing.assert_close(layer(x2)[:, :7], layer(x)[:, :7])


def test_matrix_memory_feeds_the_output() -> None:
    """Not an LSTM in disguise: the output depends on the stored key-value associations."""
    q, k, v, i_pre, f_pre = _inputs(5, t=6)
    base = mlstm_parallel(q, k, v, i_pre, f_pre)
    v2 = v.clone()
    v2[:, :, 0] += 1.0  # a different value stored at step 0 changes what is read later
    assert (mlstm_parallel(q, k, v2, i_pre, f_pre)[:, :, -1] - base[:, :, -1]).abs().max() > 1e-6


def test_gradients_of_both_forms_agree() -> None:
    """The stabiliser carries no gradient (h does not depend on it); both forms train identically."""
    inputs = [t.clone().requires_grad_(True) for t in _inputs(6, t=9)]
    g_par = torch.autograd.grad(mlstm_parallel(*inputs).sum(), inputs)
    g_rec = torch.autograd.grad(mlstm_recurrent(*inputs)[0].sum(), inputs)
    for a, b in zip(g_par, g_rec, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("exp_forget", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 7, 64])
def test_chunkwise_and_last_only_forms_equal_the_parallel_form(chunk: int, exp_forget: bool) -> None:
    """The linear-cost forms of the multi-day network: same outputs, state and gradients (float64)."""
    q, k, v, i_pre, f_pre = _inputs(5, t=23)
    par = mlstm_parallel(q, k, v, i_pre, f_pre, exp_forget)
    chunked, st = mlstm_chunkwise(q, k, v, i_pre, f_pre, exp_forget, chunk=chunk)
    torch.testing.assert_close(chunked, par, rtol=1e-9, atol=1e-10)
    _, st_rec = mlstm_recurrent(q, k, v, i_pre, f_pre, exp_forget)
    scale, scale_rec = torch.exp(st.m)[..., None, None], torch.exp(st_rec.m)[..., None, None]
    torch.testing.assert_close(st.c * scale, st_rec.c * scale_rec, rtol=1e-9, atol=1e-10)  # same C, unscaled
    torch.testing.assert_close(mlstm_last(q, k, v, i_pre, f_pre, exp_forget)[:, :, 0], par[:, :, -1],
                               rtol=1e-9, atol=1e-10)
    inputs = [x.clone().requires_grad_(True) for x in (q, k, v, i_pre, f_pre)]
    g_last = torch.autograd.grad(mlstm_last(*inputs, exp_forget).sum(), inputs)
    g_par = torch.autograd.grad(mlstm_parallel(*inputs, exp_forget)[:, :, -1].sum(), inputs)
    for a, b in zip(g_last, g_par, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_layer_last_only_and_long_sequences() -> None:
    torch.manual_seed(0)
    layer = MLSTMLayer(16, 4, head_norm=False).double().eval()
    x = torch.randn(3, 150, 16, dtype=torch.float64)  # > the layer's chunk: the chunkwise form runs
    full = layer(x)
    torch.testing.assert_close(layer(x, last_only=True)[:, 0], full[:, -1], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(full, layer(x, recurrent=True), rtol=1e-9, atol=1e-10)
