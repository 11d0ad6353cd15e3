"""The eager PyTorch kernel against ``_math``: bit for bit, every special value."""

from __future__ import annotations

import numpy as np
import pytest

from ._support import GRID, SPECIAL_X, count_calls, require

torch = require("torch")

import array_api_compat.torch as xp  # noqa: E402

import s2nn_xp.torch  # noqa: E402
from s2nn_xp import _math, _torch_eager  # noqa: E402

X = np.concatenate([GRID, SPECIAL_X, -SPECIAL_X, [-1e-45, -5e-324]])


def _same(a, b):
    """Bitwise equal, NaN where NaN (and the sign of zeros)."""
    a, b = a.double().numpy(), b.double().numpy()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    number = ~np.isnan(a)
    np.testing.assert_array_equal(np.signbit(a[number]), np.signbit(b[number]))
    np.testing.assert_array_equal(np.nan_to_num(a), np.nan_to_num(b))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("alpha", "beta"),
    [(4.0, 1.0), (2.5, 0.75), (1e-37, 3.0), (1e4, 1.0), (4.0, 3.4e38), (3.4e38, 1.0)],
)
def test_gradient_is_the_math_bit_for_bit(dtype, alpha, beta):
    x = torch.asarray(X).to(dtype)
    want = _math.gradient(xp, x, alpha, beta, in_place=False)
    _same(_torch_eager.gradient(x, alpha, beta), want)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=dtype)
    _same(_torch_eager.gradient(x, alpha, beta, cotangent), want * cotangent)
    out = torch.empty(x.shape, dtype=torch.float16)
    _torch_eager.gradient(x, alpha, beta, out=out)
    _same(out, want.to(torch.float16))


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_spike_is_the_math_in_every_dtype(dtype):
    x = torch.asarray(X).to(dtype)
    _same(_torch_eager.spike(x), _math.forward(xp, x, in_place=False))
    assert _torch_eager.spike(x).dtype == dtype


def test_the_adapter_uses_the_kernel_where_nothing_differentiates(monkeypatch):
    calls = count_calls(monkeypatch, _torch_eager, ("gradient",))
    x = torch.asarray(GRID, requires_grad=True)
    s2nn_xp.torch.s2nn(x).sum().backward()
    assert calls["gradient"] == 1  # the first-order backward
    (grad,) = torch.autograd.grad(s2nn_xp.torch.s2nn(x).sum(), x, create_graph=True)
    assert calls["gradient"] == 1  # double backward differentiates _math instead
    _same(grad.detach(), x.grad)
