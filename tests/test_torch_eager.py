"""The eager PyTorch kernel against ``_math``: bit for bit, every special value."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ._support import (
    ANY_ALPHA,
    ANY_EPSILON,
    GRID,
    KERNEL_X,
    POSITIVE,
    assert_same_bits,
    count_calls,
    require,
    to_numpy,
)

torch = require("torch")

import array_api_compat.torch as xp  # noqa: E402

import s2nn_xp.torch  # noqa: E402
from s2nn_xp import _math, _torch_eager  # noqa: E402

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="no CUDA device"
        ),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("alpha", "beta"),
    [(4.0, 1.0), (2.5, 0.75), (1e-37, 3.0), (1e4, 1.0), (4.0, 3.4e38), (3.4e38, 1.0)],
)
def test_gradient_is_the_math_bit_for_bit(device, dtype, alpha, beta):
    x = torch.asarray(KERNEL_X).to(device=device, dtype=dtype)
    want = _math.gradient(xp, x, alpha, beta, in_place=False)
    assert_same_bits(_torch_eager.gradient(x, alpha, beta), want)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=dtype, device=device)
    assert_same_bits(_torch_eager.gradient(x, alpha, beta, cotangent), want * cotangent)
    out = torch.empty(x.shape, dtype=torch.float16, device=device)
    _torch_eager.gradient(x, alpha, beta, out=out)
    assert_same_bits(out, want.to(torch.float16))


@pytest.mark.parametrize(
    "dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64]
)
def test_spike_is_the_math_in_every_dtype(dtype):
    x = torch.asarray(KERNEL_X).to(dtype)
    assert_same_bits(_torch_eager.spike(x), _math.forward(xp, x, in_place=False))
    assert _torch_eager.spike(x).dtype == dtype


def test_the_adapter_uses_the_kernel_where_nothing_differentiates(monkeypatch):
    calls = count_calls(monkeypatch, _torch_eager, ("gradient",))
    x = torch.asarray(GRID, requires_grad=True)
    s2nn_xp.torch.s2nn(x).sum().backward()
    assert calls["gradient"] == 1  # the first-order backward
    (grad,) = torch.autograd.grad(s2nn_xp.torch.s2nn(x).sum(), x, create_graph=True)
    assert calls["gradient"] == 1  # double backward differentiates _math instead
    assert_same_bits(grad.detach(), x.grad)


def _partials_times(x, alpha, beta, epsilon, cotangent):
    """``_math.partials`` times the cotangent: what the eager kernel returns."""
    grad, d_alpha, d_beta = _math.partials(xp, x, alpha, beta, epsilon, in_place=False)
    return grad * cotangent, d_alpha * cotangent, d_beta * cotangent


def _per_neuron(values, dtype, neurons):
    return torch.as_tensor(values, dtype=dtype).reshape(-1)[:neurons]


# Python-number parameters: ordinary, epsilon 0, a tiny alpha, the largest
# float32 beta.
NUMBER_PARAMETERS = [
    (4.0, 1.0, 1e-8),
    (2.5, 0.75, 0.0),
    (1e-37, 3.0, 0.5),
    (1e4, 3.4e38, 1e-8),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("alpha", "beta", "epsilon"),
    [
        *NUMBER_PARAMETERS,
        ("tensor", "tensor", 1e-8),
        ("tensor", 1.0, "tensor"),
    ],
)
def test_cotangents_are_the_math_partials(device, dtype, alpha, beta, epsilon):
    """Every term equals _math.partials times the cotangent (zeros' signs aside)."""
    x = torch.asarray(np.resize(KERNEL_X, (3, KERNEL_X.size))).to(
        device=device, dtype=dtype
    )
    neurons = x.shape[1]
    if alpha == "tensor":
        alpha = torch.linspace(0.5, 8.0, neurons, dtype=dtype, device=device)
    if beta == "tensor":
        beta = torch.linspace(0.25, 4.0, neurons, dtype=dtype, device=device)
    if epsilon == "tensor":
        epsilon = torch.linspace(0.0, 1e-3, neurons, dtype=dtype, device=device)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=dtype, device=device)
    cotangent = cotangent.reshape(x.shape)
    want = _partials_times(x, alpha, beta, epsilon, cotangent)
    got = _torch_eager.cotangents(
        x, alpha, beta, epsilon, cotangent, with_alpha=True, with_beta=True
    )
    for term, expected in zip(got, want, strict=True):
        # the sign of a zero term may differ
        assert_same_bits(term.abs(), expected.abs())
        np.testing.assert_array_equal(
            np.sign(to_numpy(term)), np.sign(to_numpy(expected))
        )
    assert_same_bits(got[0], want[0])  # the gradient bit for bit, zeros' signs included


def test_cotangents_into_out_and_a_reused_workspace():
    x = torch.asarray(np.resize(KERNEL_X, (4, KERNEL_X.size)))
    alpha = torch.linspace(0.5, 8.0, x.shape[1], dtype=x.dtype)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=x.dtype).reshape(x.shape)
    fresh = _torch_eager.cotangents(
        x, alpha, 1.5, 1e-8, cotangent, with_alpha=True, with_beta=True
    )
    scratch = _torch_eager.workspace(x.numel() + 7, x.dtype)
    for buffer in scratch:
        buffer.fill_(float("nan"))  # leftovers of an earlier piece must not leak
    out = torch.empty_like(x)
    got = _torch_eager.cotangents(
        x,
        alpha,
        1.5,
        1e-8,
        cotangent,
        with_alpha=True,
        with_beta=True,
        out=out,
        scratch=scratch,
    )
    assert got[0] is out
    for term, expected in zip(got, fresh, strict=True):
        assert_same_bits(term, expected)
    only_beta = _torch_eager.cotangents(
        x, alpha, 1.5, 1e-8, cotangent, with_alpha=False, with_beta=True
    )
    assert only_beta[1] is None
    assert_same_bits(only_beta[2], fresh[2])


def test_gradient_with_a_reused_workspace_is_the_fresh_result():
    x = torch.asarray(KERNEL_X)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=x.dtype)
    scratch = _torch_eager.workspace(x.numel() * 2, x.dtype)
    for buffer in scratch:
        buffer.fill_(float("nan"))
    want = _torch_eager.gradient(x, 2.0, 0.5, cotangent)
    assert_same_bits(
        _torch_eager.gradient(x, 2.0, 0.5, cotangent, scratch=scratch), want
    )
    out = torch.empty_like(x)
    got = _torch_eager.gradient(x, 2.0, 0.5, cotangent, out=out, scratch=scratch)
    assert got is out
    assert_same_bits(out, want)


def test_the_adapter_uses_the_cotangents_kernel_only_at_first_order(monkeypatch):
    calls = count_calls(monkeypatch, _torch_eager, ("cotangents",))
    x = torch.asarray(GRID, requires_grad=True)
    alpha = torch.full_like(x, 3.0, requires_grad=True)
    first = torch.autograd.grad(s2nn_xp.torch.s2nn(x, alpha).sum(), (x, alpha))
    assert calls["cotangents"] == 1
    graph = torch.autograd.grad(
        s2nn_xp.torch.s2nn(x, alpha).sum(), (x, alpha), create_graph=True
    )
    assert calls["cotangents"] == 1  # double backward differentiates _math instead
    for eager, differentiable in zip(first, graph, strict=True):
        torch.testing.assert_close(eager, differentiable.detach(), rtol=0, atol=0)


# Learnable parameters of every shape that broadcasts to x (5, 4): the eager
# kernel's terms, summed to each parameter's shape (each path of _reduced),
# are the differentiable path's.
@pytest.mark.parametrize(
    ("alpha_shape", "beta_shape"),
    [
        ((4,), (4,)),
        ((1, 4), (1, 4)),
        ((5, 1), (5, 1)),
        ((5, 4), (5, 4)),
        ((), ()),
        ((4,), ()),
        ((5, 1), (1, 4)),
        ((4,), None),
        (None, (5, 1)),
    ],
)
def test_first_order_parameter_gradients_are_the_differentiable_ones(
    monkeypatch, alpha_shape, beta_shape
):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(5, 4, dtype=torch.float64, generator=generator) * 3
    x = x.requires_grad_()
    cotangent = torch.randn(5, 4, dtype=torch.float64, generator=generator)
    parameters = {"alpha": 4.0, "beta": 1.0}
    for name, shape in (("alpha", alpha_shape), ("beta", beta_shape)):
        if shape is not None:
            value = torch.rand(shape, dtype=torch.float64, generator=generator)
            parameters[name] = value.add_(0.5).requires_grad_()
    learned = [p for p in parameters.values() if isinstance(p, torch.Tensor)]
    calls = count_calls(monkeypatch, _torch_eager, ("cotangents",))
    spike = s2nn_xp.torch.s2nn(x, **parameters)
    eager = torch.autograd.grad(spike, [x, *learned], cotangent)
    assert calls["cotangents"] == 1
    spike = s2nn_xp.torch.s2nn(x, **parameters)
    graph = torch.autograd.grad(spike, [x, *learned], cotangent, create_graph=True)
    assert calls["cotangents"] == 1  # the second: _math.partials
    for got, want, tensor in zip(eager, graph, [x, *learned], strict=True):
        assert got.shape == tensor.shape
        torch.testing.assert_close(got, want.detach(), rtol=1e-13, atol=0)


# Any value of x and any parameters: the kernels' shorter forms (the tail at
# max(x, 0), lerp, the sigmoid input clipped at the dtype's lowest value, the
# beta term's input with epsilon times the weight) must give _math's values,
# not only at the special values above.
@settings(max_examples=100, deadline=None)
@given(
    dtype=st.sampled_from([torch.float32, torch.float64]),
    data=st.data(),
    alpha=ANY_ALPHA,
    beta=POSITIVE,
    epsilon=ANY_EPSILON,
)
def test_kernels_are_the_math_for_any_values(dtype, data, alpha, beta, epsilon):
    values = data.draw(
        hnp.arrays(np.float32, (3, data.draw(st.integers(1, 16), label="neurons"))),
        label="x",
    )
    x = torch.asarray(values).to(dtype)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=dtype).reshape(x.shape)
    want = _math.gradient(xp, x, alpha, beta, in_place=False)
    assert_same_bits(_torch_eager.gradient(x, alpha, beta), want)
    assert_same_bits(_torch_eager.gradient(x, alpha, beta, cotangent), want * cotangent)
    assert_same_bits(
        _torch_eager.origin(x, alpha, beta, epsilon),
        _math.origin(xp, x, alpha, beta, epsilon, in_place=False),
    )
    per_neuron = {
        "alpha": torch.full(x.shape[1:], alpha, dtype=dtype),
        "beta": beta,
        "epsilon": torch.full(x.shape[1:], epsilon, dtype=dtype),
    }
    for parameters in ({"alpha": alpha, "beta": beta, "epsilon": epsilon}, per_neuron):
        expected = _partials_times(x, *parameters.values(), cotangent)
        got = _torch_eager.cotangents(
            x, *parameters.values(), cotangent, with_alpha=True, with_beta=True
        )
        for term, wanted in zip(got, expected, strict=True):
            # the sign of a zero term may differ
            assert_same_bits(term.abs(), wanted.abs())
        assert_same_bits(got[0], expected[0])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("alpha", "beta", "epsilon"),
    [*NUMBER_PARAMETERS, (3.4e38, 1.0, 3.4e38)],
)
def test_origin_is_the_math_bit_for_bit(device, dtype, alpha, beta, epsilon):
    x = torch.asarray(KERNEL_X).to(device=device, dtype=dtype)
    want = _math.origin(xp, x, alpha, beta, epsilon, in_place=False)
    assert_same_bits(_torch_eager.origin(x, alpha, beta, epsilon), want)
    out = torch.empty(x.shape, dtype=torch.float16, device=device)
    assert _torch_eager.origin(x, alpha, beta, epsilon, out=out) is out
    assert_same_bits(out, want.to(torch.float16))
    scratch = _torch_eager.workspace(x.numel() + 3, dtype, x.device)
    for buffer in scratch:
        buffer.fill_(float("nan"))  # leftovers must not leak into the result
    same = torch.empty_like(x)
    assert (
        _torch_eager.origin(x, alpha, beta, epsilon, out=same, scratch=scratch) is same
    )
    assert_same_bits(same, want)


@pytest.mark.parametrize("layout", ["transposed", "sliced", "channels_last"])
def test_kernels_in_a_workspace_keep_any_layout(layout):
    """Temporaries from a workspace take x's shape whatever its strides."""
    base = torch.asarray(np.resize(KERNEL_X, (2, 3, 4, KERNEL_X.size)))
    x = {
        "transposed": base[0, 0].t(),
        "sliced": base[:, :, ::2, ::3],
        "channels_last": base.contiguous(memory_format=torch.channels_last),
    }[layout]
    scratch = _torch_eager.workspace(base.numel(), x.dtype)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=x.dtype).reshape(x.shape)
    assert_same_bits(
        _torch_eager.origin(x, 2.5, 0.75, 1e-8, scratch=scratch),
        _math.origin(xp, x, 2.5, 0.75, 1e-8, in_place=False),
    )
    assert_same_bits(
        _torch_eager.gradient(x, 2.5, 0.75, cotangent, scratch=scratch),
        _math.gradient(xp, x, 2.5, 0.75, in_place=False) * cotangent,
    )


def test_the_adapter_computes_the_origin_by_the_kernel_where_nothing_records(
    monkeypatch,
):
    calls = count_calls(monkeypatch, _torch_eager, ("origin",))
    x = torch.asarray(GRID)
    want = _math.origin(xp, x, 2.0, 0.5, 1e-8, in_place=False)
    assert_same_bits(s2nn_xp.torch.origin(x, 2.0, 0.5), want)
    assert_same_bits(s2nn_xp.torch.s2nn(x, 2.0, 0.5, origin=True), want)
    assert calls["origin"] == 2
    leaf = x.clone().requires_grad_(True)
    recorded = s2nn_xp.torch.origin(leaf, 2.0, 0.5)  # differentiable operations
    assert calls["origin"] == 2
    assert recorded.requires_grad
    assert_same_bits(recorded.detach(), want)


class _PassThroughMode(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that runs every operation as it is (as loggers do)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_kernel_constants_are_kept_tensors_on_the_cpu_outside_modes(monkeypatch):
    """Kept 0-d tensors save each operation the conversion of a Python number;
    under a dispatch mode they would be a make_fx graph's constants (or refused
    by FakeTensorMode); off the CPU (not measured there) numbers stay."""
    monkeypatch.setattr(_torch_eager, "_KEPT_CONSTANTS", {})
    for dtype in (torch.float32, torch.float64):
        x = torch.zeros(3, dtype=dtype)
        with torch.inference_mode():  # made first where inference tensors are
            kept = _torch_eager._constants(x)
        assert _torch_eager._constants(x) is kept  # made once per dtype
        for constant, number in zip(kept, _torch_eager._NUMBERS, strict=True):
            assert (constant.dtype, constant.device.type) == (dtype, "cpu")
            assert constant.ndim == 0 and constant.item() == number
            assert not constant.is_inference()  # usable by any later call
    numbers = _torch_eager._NUMBERS
    assert _torch_eager._constants(torch.zeros(3, device="meta")) is numbers
    with _PassThroughMode():
        assert _torch_eager._constants(torch.zeros(3)) is numbers


def test_fake_tensors_used_after_their_mode_take_no_kept_constants():
    """A FakeTensor's operations enter its mode even after the ``with`` block
    that made it: a kept (real) constant beside it was refused, and every
    call on one failed where torch's own operations work."""
    fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")
    with fake_tensor.FakeTensorMode():
        x = torch.randn(4, 16)
        alpha = torch.full((16,), 2.0, requires_grad=True)
    assert not _torch_eager.takes_kept_tensors(x)
    assert s2nn_xp.torch.s2nn(x).shape == x.shape
    assert s2nn_xp.torch.origin(x, 2.0, 0.75).shape == x.shape
    assert s2nn_xp.torch.gradient(x).shape == x.shape
    leaf = x.clone().requires_grad_(True)
    grads = torch.autograd.grad(
        s2nn_xp.torch.s2nn(leaf, alpha, origin=True).sum(), (leaf, alpha)
    )
    assert [g.shape for g in grads] == [x.shape, alpha.shape]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_with_numbers_are_the_kernels_with_kept_constants(dtype):
    """The two kinds of operands (numbers under a mode, kept tensors outside)
    give the same bits, zeros' signs included."""
    x = torch.asarray(np.resize(KERNEL_X, (3, KERNEL_X.size))).to(dtype)
    alpha = torch.linspace(0.5, 8.0, x.shape[1], dtype=dtype)
    cotangent = torch.linspace(-3.0, 3.0, x.numel(), dtype=dtype).reshape(x.shape)

    def run_every_kernel():
        terms = _torch_eager.cotangents(
            x, alpha, 1.5, 1e-8, cotangent, with_alpha=True, with_beta=True
        )
        return [
            _torch_eager.gradient(x, 2.5, 0.75, cotangent),
            _torch_eager.origin(x, 2.5, 0.75, 1e-8),
            _torch_eager.spike(x),
            *terms,
        ]

    kept = run_every_kernel()
    with _PassThroughMode():
        numbers = run_every_kernel()
    for got, want in zip(numbers, kept, strict=True):
        assert_same_bits(got, want)
