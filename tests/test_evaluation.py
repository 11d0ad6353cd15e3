"""Large NumPy inputs are computed block by block: same bits, less memory."""

from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _evaluation

from ._support import SPECIAL_X, require

require("numpy")

FUNCTIONS = {
    "forward": lambda x: s2nn_xp.forward(x),
    "origin": lambda x: s2nn_xp.origin(x, 2.5, 0.75),
    "gradient": lambda x: s2nn_xp.gradient(x, 2.5, 0.75),
    "s2nn": lambda x: s2nn_xp.s2nn(x, origin=True),
    "pullback": lambda x: s2nn_xp.vjp(x, 2.5)[1](
        np.linspace(-2, 2, x.size).reshape(x.shape)
    ),
}


def _large(dtype, blocks: float = 3.5) -> np.ndarray:
    """``blocks`` blocks, with every special value in the last one."""
    size = int(blocks * (_evaluation._BLOCK_BYTES // np.dtype(dtype).itemsize))
    x = np.random.default_rng(0).normal(scale=3.0, size=size)
    x[-SPECIAL_X.size :] = SPECIAL_X
    with np.errstate(over="ignore"):  # +-1e300 become +-inf in float16
        return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_blocks_give_the_whole_array_bits(monkeypatch, dtype, name):
    x = _large(dtype)
    blocked = FUNCTIONS[name](x)
    monkeypatch.setattr(_evaluation, "_BLOCK_BYTES", 1 << 62)  # one piece
    whole = FUNCTIONS[name](x)
    assert blocked.dtype == whole.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(blocked, whole)


@pytest.mark.parametrize(
    "name",
    [
        "forward",
        "origin",
        "gradient",
        "pullback of a number",
        "gradient, 0-d alpha",
        "gradient, reversed",
    ],
)
def test_peak_memory_is_the_output_and_cache_sized_blocks(name):
    x = _large(np.float32, blocks=64)  # 16 MiB: beyond the allowance of blocks
    function = FUNCTIONS.get(name) or s2nn_xp.vjp(x)[1]
    if name == "pullback of a number":  # it was broadcast to x: 4 times x's
        function = functools.partial(function, 1.0)
    elif name == "gradient, 0-d alpha":  # the math on the whole array: 4 times
        function = functools.partial(s2nn_xp.gradient, x, np.array(2.5))
    elif name == "gradient, reversed":  # so too
        function = functools.partial(s2nn_xp.gradient, x[::-1])
    else:
        function = functools.partial(function, x)
    function()  # warm up
    tracemalloc.start()
    try:
        function()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 1.25 * x.nbytes + 16 * _evaluation._BLOCK_BYTES


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
        kernels = _block_sizes_chosen(monkeypatch)
        got = FUNCTIONS[name](x.T)
        assert kernels and all(kernels)  # the kernels, not the math
        want = FUNCTIONS[name](np.ascontiguousarray(x.T))
    np.testing.assert_array_equal(got, want)
    assert got.flags.f_contiguous


LAYOUTS = {
    "reversed": lambda a: a.reshape(-1)[::-1],
    "every third": lambda a: a.reshape(-1)[::3],
    "columns of a batch": lambda a: a.reshape(-1, 64)[:, 8:40],
    "reversed rows, transposed": lambda a: a.reshape(-1, 64)[::-1].T,
}


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_views_of_any_layout_are_computed_by_the_kernels(
    monkeypatch, name, layout, dtype
):
    """A reversed or strided view (a slice of a batch's neurons) took the math
    on the whole array: 3-4 times the time and 4 times the memory."""
    x = LAYOUTS[layout](_large(dtype))
    want = FUNCTIONS[name](np.ascontiguousarray(x))
    kernels = _block_sizes_chosen(monkeypatch)
    got = FUNCTIONS[name](x)
    assert kernels and all(kernels)  # the kernels, not the math
    assert got.dtype == want.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0)])
def test_empty_views_of_any_layout_are_empty_results(shape):
    x = np.zeros(shape, dtype=np.float32)
    for view in (x, x.T, x[..., ::2], x[::-1]):
        for name, function in FUNCTIONS.items():
            got = function(view)
            assert got.shape == view.shape and got.dtype == np.float32, name


def test_a_cotangent_of_another_layout_than_x_is_read_in_its_own():
    x = _large(np.float32).reshape(-1, 64)
    cotangent = np.asfortranarray(np.linspace(-2.0, 2.0, x.size).reshape(x.shape))
    _, pullback = s2nn_xp.vjp(x[::-1], 2.5)
    want = s2nn_xp.vjp(np.ascontiguousarray(x[::-1]), 2.5)[1](
        np.ascontiguousarray(cotangent)
    )
    np.testing.assert_array_equal(pullback(cotangent), want)


def _block_sizes_chosen(monkeypatch) -> list[int]:
    """The block sizes the calls from now on choose (0: the math, not the kernels)."""
    chosen: list[int] = []
    original = _evaluation._block_size
    monkeypatch.setattr(
        _evaluation,
        "_block_size",
        lambda *a: chosen.append(original(*a)) or chosen[-1],
    )
    return chosen


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "one_value",
    [np.array(2.5), np.array([2.5]), np.full((1, 1), 2.5, np.float32), [2.5]],
    ids=["0-d", "(1,)", "(1, 1) float32", "list"],
)
@pytest.mark.parametrize("name", ["origin", "gradient", "pullback"])
def test_a_parameter_array_of_one_value_is_taken_by_the_kernels(
    monkeypatch, dtype, one_value, name
):
    """As its number is: it took the math on the whole array (4 times the memory)."""
    x = _large(dtype).reshape(-1, 8)

    def call(alpha):
        if name == "pullback":
            return s2nn_xp.vjp(x, alpha, 0.75)[1](1.0)
        return getattr(s2nn_xp, name)(x, alpha, 0.75)

    want = call(2.5)
    kernels = _block_sizes_chosen(monkeypatch)
    got = call(one_value)
    assert kernels and all(kernels)  # the kernels, not the math
    assert got.dtype == want.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


def test_array_parameters_and_masks_take_the_whole_array_path():
    x = _large(np.float32).reshape(-1, 7)
    alpha = np.linspace(1.0, 4.0, 7)
    got = s2nn_xp.gradient(x, alpha)
    np.testing.assert_array_equal(got[:, 3], s2nn_xp.gradient(x[:, 3], alpha[3]))
    masked = np.ma.array(x, mask=x > 2.0)
    assert (np.ma.getmaskarray(s2nn_xp.gradient(masked)) == (x > 2.0)).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "cotangent",
    [1.7, np.float64(-0.3), np.array(2.5), np.full((1, 1), 1.7), [[-np.inf]]],
    ids=["number", "numpy scalar", "0-d", "(1, 1)", "list"],
)
def test_a_cotangent_of_one_element_is_taken_by_the_kernels(
    monkeypatch, dtype, cotangent
):
    """Broadcast to x first, its strided view took the general path."""
    x = _large(dtype).reshape(-1, 8)
    _, pullback = s2nn_xp.vjp(x, 2.5)
    want = pullback(np.full(x.shape, np.asarray(cotangent).item()))
    kernels = _block_sizes_chosen(monkeypatch)
    got = pullback(cotangent)
    assert kernels and all(kernels)  # the kernels, not the math
    assert got.dtype == want.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, want)


def test_a_cotangent_that_broadcasts_along_some_axes_is_its_broadcast():
    x = _large(np.float32)[: 64 * 1024].reshape(64, 1024)
    cotangent = np.linspace(-2.0, 2.0, 1024)
    _, pullback = s2nn_xp.vjp(x, 2.5)
    want = pullback(np.broadcast_to(cotangent, x.shape).copy())
    np.testing.assert_array_equal(pullback(cotangent), want)
    np.testing.assert_array_equal(pullback(cotangent[None]), want)
