"""Large NumPy inputs are computed block by block: same bits, less memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _api

from ._support import SPECIAL_X, require

require("numpy")

FUNCTIONS = {
    "forward": lambda x: s2nn_xp.forward(x),
    "origin": lambda x: s2nn_xp.origin(x, 2.5, 0.75),
    "gradient": lambda x: s2nn_xp.gradient(x, 2.5, 0.75),
    "s2nn": lambda x: s2nn_xp.s2nn(x, origin=True),
    "pullback": lambda x: s2nn_xp.vjp(x, 2.5)[1](np.linspace(-2, 2, x.size)),
}


def _large(dtype) -> np.ndarray:
    """Three and a half blocks, with every special value in the last one."""
    size = 7 * (_api._BLOCK_BYTES // np.dtype(dtype).itemsize) // 2
    x = np.random.default_rng(0).normal(scale=3.0, size=size)
    x[-SPECIAL_X.size :] = SPECIAL_X
    with np.errstate(over="ignore"):  # +-1e300 become +-inf in float16
        return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_blocks_give_the_whole_array_bits(monkeypatch, dtype, name):
    x = _large(dtype)
    blocked = FUNCTIONS[name](x)
    monkeypatch.setattr(_api, "_BLOCK_BYTES", 1 << 62)  # one piece
    whole = FUNCTIONS[name](x)
    assert blocked.dtype == whole.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(blocked, whole)


@pytest.mark.parametrize("name", ["forward", "origin", "gradient"])
def test_peak_memory_is_the_output_and_cache_sized_blocks(name):
    x = _large(np.float32)
    FUNCTIONS[name](x)  # warm up
    tracemalloc.start()
    try:
        FUNCTIONS[name](x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.25 * x.nbytes + 16 * _api._BLOCK_BYTES


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_fortran_order_is_computed_by_the_kernels_in_its_order(monkeypatch, name):
    """A transposed x (and cotangent) took the general path: with
    array-api-compat's clip, which gives C order, at 2-10 times the time."""
    x = _large(np.float32)[: 128 * 1024].reshape(128, 1024)
    if name == "pullback":
        cotangent = np.linspace(-2, 2, x.size).reshape(x.shape).T
        _, pullback = s2nn_xp.vjp(x.T, 2.5)
        want = s2nn_xp.vjp(np.ascontiguousarray(x.T), 2.5)[1](
            np.ascontiguousarray(cotangent)
        )
        got = pullback(cotangent)
    else:
        kernels = []
        original = _api._block_size
        monkeypatch.setattr(
            _api, "_block_size", lambda *a: kernels.append(original(*a)) or kernels[-1]
        )
        got = FUNCTIONS[name](x.T)
        assert kernels and all(kernels)  # the kernels, not the math
        want = FUNCTIONS[name](np.ascontiguousarray(x.T))
    np.testing.assert_array_equal(got, want)
    assert got.flags.f_contiguous


def test_array_parameters_and_masks_take_the_whole_array_path():
    x = _large(np.float32).reshape(-1, 7)
    alpha = np.linspace(1.0, 4.0, 7)
    got = s2nn_xp.gradient(x, alpha)
    np.testing.assert_array_equal(got[:, 3], s2nn_xp.gradient(x[:, 3], alpha[3]))
    masked = np.ma.array(x, mask=x > 2.0)
    assert (np.ma.getmaskarray(s2nn_xp.gradient(masked)) == (x > 2.0)).all()
