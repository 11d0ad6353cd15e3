"""The fused Triton kernels of the CUDA path, checked against the array-API math.

Without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``,
on CPU tensors) in a subprocess, since the variable must be set before Triton
is imported; the adapter is pointed at them by adding "cpu" to its fused
devices, so the whole eager path (autograd, dtypes, layouts) runs through
them. The kernels' GPU branch (libdevice ``exp``/``log1p``, correctly rounded
division) is compiled to PTX here, which needs no GPU, and the launches of
the compiled kernels are checked against Triton's own through a driver that
records what would go to CUDA; on a machine with one, ``tests/test_torch.py``
compares CUDA results with the CPU's.
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import numpy as np
import pytest

from tests._support import require

torch = require("torch")
triton = pytest.importorskip("triton", reason="Triton is not installed")

import s2nn_xp._triton  # noqa: E402
import s2nn_xp.torch  # noqa: E402
from tests._support import (  # noqa: E402
    REPO,
    SPECIAL_X,
    env_with_repo,
    ref_gradient,
    ref_origin,
    reference,
    ulp_error,
)

ALPHAS = (4.0, 2.0, 1.0, 0.5)  # powers of two: alpha * x is exact in float32
BETAS = (1.0, 0.75)
# Below 1000 / the largest float32 (about 2.9e-36), normal float32 numbers.
TINY_ALPHAS = (2e-38, 1e-37)

# Run under the interpreter: every kernel output the tests below look at,
# saved to an .npz file (16-bit results widened to float32 without rounding).
_INTERPRETER_SCRIPT = textwrap.dedent(
    """
    import functools, json, sys
    import numpy as np
    import torch
    import array_api_compat.torch as xp
    from s2nn_xp import _math, _triton
    import s2nn_xp.torch as adapter
    assert _triton.INTERPRETED and _triton.AVAILABLE

    out, alphas, betas = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    special = np.array([float(v) for v in json.loads(sys.argv[4])])
    TINY_ALPHAS = json.loads(sys.argv[5])
    results = {}
    def seeded(seed):
        return torch.Generator().manual_seed(seed)
    def keep(name, tensor):
        results[name] = tensor.detach().float().numpy()

    # the math as the adapter calls it where autograd may record
    math_gradient = functools.partial(_math.gradient, in_place=False)
    math_origin = functools.partial(_math.origin, in_place=False)
    math_forward = functools.partial(_math.forward, in_place=False)

    # float32 against the mpmath reference, |alpha * x| <= 20
    for a in alphas:
        for b in betas:
            x = torch.linspace(-20 / a, 20 / a, 4001, dtype=torch.float32)
            keep(f"origin_{a}_{b}", _triton.spike(x, a, b, 1e-8, origin=True))
            keep(f"grad_{a}_{b}", _triton.spike_vjp(None, x, a, b))
            keep(f"x_{a}_{b}", x)

    # alpha * x rounded: against the float32 math itself
    x = torch.linspace(-8.0, 8.0, 4001, dtype=torch.float32)
    for a in (2.5, 0.3):
        keep(f"kernel_grad_{a}", _triton.spike_vjp(None, x, a, 1.0))
        keep(f"math_grad_{a}", math_gradient(xp, x, a, 1.0))
        keep(f"kernel_origin_{a}", _triton.spike(x, a, 1.0, 1e-8, origin=True))
        keep(f"math_origin_{a}", math_origin(xp, x, a, 1.0, 1e-8))

    # special values: kernels and math on the same float32 inputs
    x = torch.tensor(special, dtype=torch.float32)
    keep("special_x", x)
    for origin in (False, True):
        y = _triton.spike(x, 4.0, 1.0, 1e-8, origin=origin)
        keep(f"special_kernel_{origin}", y)
    keep("special_kernel_grad", _triton.spike_vjp(None, x, 4.0, 1.0))
    keep("special_math_grad", math_gradient(xp, x, 4.0, 1.0))
    keep("special_math_origin", math_origin(xp, x, 4.0, 1.0, 1e-8))
    keep("special_math_forward", math_forward(xp, x))
    # an alpha below 1000 / the largest float32: the sigmoid at -inf is that
    # of the lowest float32 (the math's clip), not 0
    for a in TINY_ALPHAS:
        y = _triton.spike(x, a, 1.0, 1e-8, origin=True)
        keep(f"tiny_kernel_origin_{a}", y)
        keep(f"tiny_kernel_grad_{a}", _triton.spike_vjp(torch.ones_like(x), x, a, 1.0))
        keep(f"tiny_math_origin_{a}", math_origin(xp, x, a, 1.0, 1e-8))
        keep(f"tiny_math_grad_{a}", math_gradient(xp, x, a, 1.0))

    # 16-bit: computed in float32, rounded once, like the math
    for dtype in (torch.float16, torch.bfloat16):
        name = str(dtype).split(".")[1]
        x16 = (torch.randn(5000, generator=seeded(0)) * 3).to(dtype)
        g16 = torch.randn(5000, generator=seeded(1)).to(dtype)
        keep(f"{name}_kernel_grad", _triton.spike_vjp(g16, x16, 2.5, 0.75))
        keep(f"{name}_math_grad",
             (math_gradient(xp, x16.float(), 2.5, 0.75) * g16.float()).to(dtype))
        keep(f"{name}_kernel_origin", _triton.spike(x16, 2.5, 0.75, 1e-8, origin=True))
        keep(f"{name}_math_origin",
             math_origin(xp, x16.float(), 2.5, 0.75, 1e-8).to(dtype))
        results[f"{name}_dtypes"] = np.array(
            [str(_triton.spike(x16, 4.0, 1.0, 0.0, origin=False).dtype),
             str(_triton.spike_vjp(g16, x16, 4.0, 1.0).dtype)])

    # layouts: channels-last keeps its layout, strided and expanded operands
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    y = _triton.spike(x, 4.0, 1.0, 1e-8, origin=True)
    kept = y.is_contiguous(memory_format=torch.channels_last)
    results["channels_last_kept"] = np.array(kept)
    keep("channels_last_error", y - math_origin(xp, x.contiguous(), 4.0, 1.0, 1e-8))
    strided = torch.randn(6, 8)[:, ::2]
    expanded = torch.ones(()).expand(6, 4)
    grad = _triton.spike_vjp(expanded, strided, 4.0, 1.0)
    keep("strided_error", grad - math_gradient(xp, strided, 4.0, 1.0))
    results["empty_shape"] = np.array(_triton.spike(torch.empty(0, 3), 4.0, 1.0, 0.0,
                                                    origin=False).shape)

    # views with the negative bit (-t in t's memory, as z.conj().imag of a
    # complex 0-d z gives): the kernels read memory, the values are negated
    base = torch.linspace(-3.0, 3.0, 64)
    negated = base.neg()
    for origin in (False, True):
        keep(f"neg_kernel_{origin}",
             _triton.spike(torch._neg_view(base), 4.0, 1.0, 1e-8, origin=origin))
    keep("neg_math_True", math_origin(xp, negated, 4.0, 1.0, 1e-8))
    keep("neg_math_False", math_forward(xp, negated))
    keep("neg_kernel_grad_x", _triton.spike_vjp(torch.ones(64), torch._neg_view(base),
                                                4.0, 1.0))
    keep("neg_kernel_grad_cotangent",
         _triton.spike_vjp(torch._neg_view(torch.ones(64)), base, 4.0, 1.0))
    keep("neg_math_grad_x", math_gradient(xp, negated, 4.0, 1.0))
    keep("neg_math_grad_cotangent", -math_gradient(xp, base, 4.0, 1.0))
    # a zero tensor (no memory, a pointer of 0: torch's in some derivative
    # formulas): its values are zeros
    zero = torch._efficientzerotensor(64)
    for origin in (False, True):
        keep(f"zero_kernel_{origin}",
             _triton.spike(zero, 4.0, 1.0, 1e-8, origin=origin))
    keep("zero_math_True", math_origin(xp, torch.zeros(64), 4.0, 1.0, 1e-8))
    keep("zero_math_False", math_forward(xp, torch.zeros(64)))
    keep("zero_kernel_grad_x", _triton.spike_vjp(torch.ones(64), zero, 4.0, 1.0))
    keep("zero_math_grad_x", math_gradient(xp, torch.zeros(64), 4.0, 1.0))
    keep("zero_kernel_grad_cotangent", _triton.spike_vjp(zero, base, 4.0, 1.0))
    keep("zero_math_grad_cotangent", torch.zeros(64))

    # the adapter's eager path, routed through the kernels
    calls = {"spike": 0, "spike_vjp": 0}
    for name in calls:
        original = getattr(_triton, name)
        def counting(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        setattr(_triton, name, counting)
    adapter._FUSED_DEVICES = ("cpu",)
    x = (torch.randn(300, generator=seeded(2)) * 3).requires_grad_()
    g = torch.randn(300)
    y = adapter.s2nn(x, 2.5, 0.75)
    y.backward(g)
    results["adapter_calls"] = np.array([calls["spike"], calls["spike_vjp"]])
    keep("adapter_grad_error", x.grad - math_gradient(xp, x.detach(), 2.5, 0.75) * g)
    keep("adapter_y_error", y - math_forward(xp, x.detach()))
    # double backward, tensor parameters and torch.func use the torch path
    (grad,) = torch.autograd.grad(adapter.s2nn(x, 2.5).sum(), x, create_graph=True)
    grad.sum().backward()
    adapter.s2nn(x, torch.tensor(2.5, requires_grad=True)).sum().backward()
    torch.func.grad(lambda t: adapter.s2nn(t).sum())(x.detach())
    results["calls_after_other_paths"] = np.array([calls["spike"], calls["spike_vjp"]])
    # under torch.compile the torch path is traced (for Inductor to fuse)
    compiled = torch.compile(lambda t: adapter.s2nn(t, 2.5, 0.75),
                             backend="aot_eager", fullgraph=True)
    x_compiled = x.detach().clone().requires_grad_()
    y_compiled = compiled(x_compiled)
    y_compiled.backward(g)
    results["calls_after_compile"] = np.array([calls["spike"], calls["spike_vjp"]])
    keep("compiled_y_error", y_compiled - math_forward(xp, x.detach()))
    keep("compiled_grad_error",
         x_compiled.grad - math_gradient(xp, x.detach(), 2.5, 0.75) * g)
    # the public gradient: the kernel without a cotangent
    public = adapter.gradient(x.detach(), 2.5, 0.75)
    results["calls_after_gradient"] = np.array([calls["spike"], calls["spike_vjp"]])
    keep("public_grad_error", public - math_gradient(xp, x.detach(), 2.5, 0.75))

    # learnable parameters: the cotangents kernel against _math.partials in
    # float64, for parameters per neuron (over one or two last axes, with
    # leading 1s), of one element, and numbers; special values included
    layouts = [((64, 100), (100,), (100,)), ((3, 4, 50), (4, 50), (1, 50)),
               ((7, 33), (), (1,)), ((5, 300), (300,), None)]
    for case, (shape, alpha_shape, beta_shape) in enumerate(layouts):
        x = torch.randn(shape, generator=seeded(10 + case)) * 3
        if alpha_shape:  # not where every value joins one sum (then NaN)
            x.view(-1)[:special.size] = torch.tensor(special, dtype=torch.float32)
        g = torch.randn(shape, generator=seeded(20 + case))
        a = torch.rand(alpha_shape, generator=seeded(30 + case)) * 3 + 0.5
        b = 0.75 if beta_shape is None else (
            torch.rand(beta_shape, generator=seeded(40 + case)) + 0.5)
        got = _triton.cotangents(g, x, a, b, 1e-8, with_x=True, with_alpha=True,
                                 with_beta=beta_shape is not None)
        wide = [v.double() if isinstance(v, torch.Tensor) else v for v in (a, b)]
        grad, d_alpha, d_beta = _math.partials(xp, x.double(), *wide, 1e-8,
                                               in_place=False)
        g64 = g.double()
        results[f"cot{case}_x"] = got["x"].numpy()
        # alpha * x rounded in float32 (random alphas): the float32 math's
        # gradient, times the cotangent once rounded
        grad32 = _math.partials(xp, x, a, b, 1e-8, in_place=False)[0]
        results[f"cot{case}_x_want"] = (grad32.double() * g64).numpy()
        # the sums, and the sums of the terms' sizes (how far rounding reaches)
        for name, term, value in (("alpha", d_alpha, a), ("beta", d_beta, b)):
            if got[name] is None:
                continue
            results[f"cot{case}_{name}"] = got[name].numpy()
            results[f"cot{case}_{name}_want"] = (term * g64).sum_to_size(
                value.shape).numpy()
            results[f"cot{case}_{name}_size"] = (term * g64).abs().nan_to_num(
                posinf=0.0).sum_to_size(value.shape).numpy()
            results[f"cot{case}_{name}_shape"] = np.array(got[name].shape)
    # a layout it does not read (a parameter per row): None, for the caller
    x = torch.randn(6, 5)
    results["cot_per_row"] = np.array(_triton.cotangents(
        torch.ones(6, 5), x, torch.ones(6, 1), 1.0, 1e-8,
        with_x=True, with_alpha=True, with_beta=False) is None)

    # the adapter's learnable backward: one kernel, the eager kernel's values
    counted = {"cotangents": 0}
    original_cotangents = _triton.cotangents
    def counting_cotangents(*args, **kwargs):
        result = original_cotangents(*args, **kwargs)
        counted["cotangents"] += result is not None  # the kernel's results
        return result
    _triton.cotangents = counting_cotangents
    def learnable_grads(dtype, alpha_shape):
        x = (torch.randn(64, 100, generator=seeded(50)) * 3).to(dtype)
        x.requires_grad_()
        g = torch.randn(64, 100, generator=seeded(51)).to(dtype)
        module = adapter.S2NN(alpha=torch.full(alpha_shape, 2.5),
                              beta=torch.full(alpha_shape, 0.75), learnable=True)
        module(x).backward(g)
        return [x.grad.float(), module.alpha.grad, module.beta.grad]
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).split(".")[1]
        adapter._FUSED_DEVICES = ("cpu",)
        before = counted["cotangents"]
        fused = learnable_grads(dtype, (100,))
        results[f"learnable_{name}_calls"] = np.array(counted["cotangents"] - before)
        adapter._FUSED_DEVICES = ()
        eager = learnable_grads(dtype, (100,))
        for label, got, want in zip(("x", "alpha", "beta"), fused, eager):
            keep(f"learnable_{name}_{label}", got)
            keep(f"learnable_{name}_{label}_eager", want)
    # which cotangents are asked for, and layouts: the eager kernel's values
    def variant_grads(x_grad, alpha_grad, beta_grad, parameter_shape, transpose):
        # x of shape (24, 40) either way, transposed: not contiguous
        base = torch.randn((40, 24) if transpose else (24, 40), generator=seeded(60))
        x = (base.t() if transpose else base).mul(3).requires_grad_(x_grad)
        g = torch.randn(x.shape, generator=seeded(61))
        alpha = torch.full(parameter_shape, 2.5).requires_grad_(alpha_grad)
        beta = torch.full(parameter_shape, 0.75).requires_grad_(beta_grad)
        asked = [v for v in (x, alpha, beta) if v.requires_grad]
        return torch.autograd.grad(adapter.s2nn(x, alpha, beta), asked, g)
    variants = {
        "fixed": (True, False, False, (40,), False),
        "beta_only": (True, False, True, (40,), False),
        "parameters_only": (False, True, True, (40,), False),
        "full_shape": (True, True, True, (24, 40), True),
        "transposed": (True, True, True, (40,), True),
        "one_element": (True, True, True, (1, 1), False),
    }
    for name, variant in variants.items():
        adapter._FUSED_DEVICES = ("cpu",)
        before = counted["cotangents"]
        fused = variant_grads(*variant)
        results[f"variant_{name}_calls"] = np.array(counted["cotangents"] - before)
        adapter._FUSED_DEVICES = ()
        eager = variant_grads(*variant)
        results[f"variant_{name}_count"] = np.array(len(fused))
        for i, (got, want) in enumerate(zip(fused, eager)):
            keep(f"variant_{name}_{i}", got)
            keep(f"variant_{name}_{i}_eager", want)
    adapter._FUSED_DEVICES = ("cpu",)
    per_row = learnable_grads(torch.float32, (64, 1))
    adapter._FUSED_DEVICES = ()
    per_row_eager = learnable_grads(torch.float32, (64, 1))
    results["per_row_equal"] = np.array(
        all(torch.equal(a, b) for a, b in zip(per_row, per_row_eager)))
    np.savez(out, **results)
    print("done")
    """
)


def run_interpreted(script: str, *args: str) -> str:
    """Run ``script`` under Triton's interpreter; its standard output."""
    return run_script(script, *args, TRITON_INTERPRET="1")


def run_script(script: str, *args: str, **variables: str) -> str:
    """Run ``script`` with environment ``variables`` set; its standard output."""
    env = env_with_repo(**variables)
    env.pop("PYTHONWARNINGS", None)
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed.stdout


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory):
    """The kernels' outputs under Triton's interpreter (one subprocess)."""
    out = tmp_path_factory.mktemp("triton") / "results.npz"
    run_interpreted(
        _INTERPRETER_SCRIPT,
        str(out),
        json.dumps(ALPHAS),
        json.dumps(BETAS),
        json.dumps([v if np.isfinite(v) else str(v) for v in SPECIAL_X.tolist()]),
        json.dumps(TINY_ALPHAS),
    )
    with np.load(out) as data:
        return dict(data)


def test_float32_within_4_ulp_of_the_reference(interpreted):
    worst = {}
    for alpha in ALPHAS:
        for beta in BETAS:
            x = interpreted[f"x_{alpha}_{beta}"].astype(np.float64)
            params = {"alpha": alpha, "beta": beta}
            grad = interpreted[f"grad_{alpha}_{beta}"]
            origin = interpreted[f"origin_{alpha}_{beta}"]
            worst[alpha, beta] = (
                ulp_error(grad, reference(ref_gradient, x, **params), np.float32).max(),
                ulp_error(origin, reference(ref_origin, x, **params), np.float32).max(),
            )
    assert max(max(w) for w in worst.values()) <= 4.0, worst


def test_float32_agrees_with_the_math_for_any_alpha(interpreted):
    for alpha in (2.5, 0.3):
        for name in ("grad", "origin"):
            kernel = interpreted[f"kernel_{name}_{alpha}"]
            math = interpreted[f"math_{name}_{alpha}"]
            assert ulp_error(kernel, math, np.float32).max() <= 4.0, (alpha, name)


def test_special_values_exact(interpreted):
    x = interpreted["special_x"]
    np.testing.assert_array_equal(
        interpreted["special_kernel_False"], interpreted["special_math_forward"]
    )
    exact = np.isnan(x) | np.isinf(x) | (x == 0)  # NaN, +-inf, -0.0, 0
    for kernel, math in (
        ("special_kernel_True", "special_math_origin"),
        ("special_kernel_grad", "special_math_grad"),
    ):
        got, want = interpreted[kernel], interpreted[math]
        np.testing.assert_array_equal(got[exact], want[exact])
        assert np.isfinite(got[np.isfinite(x)]).all()  # -1 and below included
        assert ulp_error(got[~exact], want[~exact], np.float32).max() <= 4.0


@pytest.mark.parametrize("alpha", TINY_ALPHAS)
def test_a_tiny_alpha_at_minus_infinity_is_the_maths(interpreted, alpha):
    """The kernels gave 0 at ``x = -inf`` where the math (and the Definition)
    gives the sigmoid of ``alpha`` times the lowest float32."""
    x = interpreted["special_x"]
    for name in ("origin", "grad"):
        got = interpreted[f"tiny_kernel_{name}_{alpha}"]
        want = interpreted[f"tiny_math_{name}_{alpha}"]
        if name == "origin":  # the gradient, alpha times it, may underflow
            assert want[x == -np.inf].min() > 0
        at_minus_infinity = x == -np.inf  # a subnormal gradient: 0 or not
        np.testing.assert_array_equal(
            got[at_minus_infinity] > 0, want[at_minus_infinity] > 0
        )
        exact = ~np.isfinite(want)  # NaN, and origin's inf at +inf
        np.testing.assert_array_equal(got[exact], want[exact])
        assert ulp_error(got[~exact], want[~exact], np.float32).max() <= 4.0, name


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_is_computed_in_float32_and_rounded_once(interpreted, dtype):
    assert interpreted[f"{dtype}_dtypes"].tolist() == [f"torch.{dtype}"] * 2
    bits = {"float16": 10, "bfloat16": 7}[dtype]
    for name in ("grad", "origin"):
        kernel = interpreted[f"{dtype}_kernel_{name}"].astype(np.float64)
        math = interpreted[f"{dtype}_math_{name}"].astype(np.float64)
        # Equal but where float32 results of the two differ across a
        # rounding boundary of the 16-bit format: one 16-bit ulp at most.
        spacing = np.maximum(np.abs(math) * 2.0**-bits, 2.0**-24)
        assert (np.abs(kernel - math) <= spacing).all(), name
        if dtype == "float16":  # the interpreter rounds to bfloat16 by its own
            # emulation (half up, no ties-to-even); to float16 by NumPy's.
            assert np.mean(kernel == math) > 0.99, name


@pytest.mark.parametrize("kind", ["neg", "zero"])
def test_views_with_the_negative_bit_and_zero_tensors_are_their_values(
    interpreted, kind
):
    """A contiguous view with torch's negative bit went to the kernels as
    its memory: spikes of -x, and gradients of the wrong sign; a zero
    tensor as a pointer of 0, whose launch failed (and turned the kernel
    off for the process)."""
    for name in ("True", "False", "grad_x", "grad_cotangent"):
        got = interpreted[f"{kind}_kernel_{name}"]
        want = interpreted[f"{kind}_math_{name}"]
        np.testing.assert_array_equal(np.sign(got), np.sign(want))
        assert ulp_error(got, want, np.float32).max() <= 4.0, name


def test_layouts_and_empty_input(interpreted):
    assert interpreted["channels_last_kept"]
    assert np.abs(interpreted["channels_last_error"]).max() <= 2e-7
    assert np.abs(interpreted["strided_error"]).max() <= 1e-6
    assert interpreted["empty_shape"].tolist() == [0, 3]


def test_adapter_eager_path_runs_one_kernel_each_way(interpreted):
    assert interpreted["adapter_calls"].tolist() == [1, 1]
    assert not interpreted["adapter_y_error"].any()
    assert np.abs(interpreted["adapter_grad_error"]).max() <= 1e-6
    # The backward of create_graph and torch.func took the torch path, that
    # of a tensor parameter the cotangents kernel. Forwards run the kernel
    # wherever nothing records them: also under create_graph and
    # torch.func.grad (which runs the forward on plain tensors), and with a
    # tensor parameter (the spike reads none).
    assert interpreted["calls_after_other_paths"].tolist() == [4, 1]


def test_no_kernel_under_torch_compile(interpreted):
    """torch.compile traces the torch path (Inductor fuses it); same values."""
    assert interpreted["calls_after_compile"].tolist() == [4, 1]
    assert not interpreted["compiled_y_error"].any()
    assert np.abs(interpreted["compiled_grad_error"]).max() <= 1e-6


def test_public_gradient_runs_the_kernel_without_a_cotangent(interpreted):
    """s2nn_xp.gradient of a CUDA tensor: one kernel, no cotangent read."""
    assert interpreted["calls_after_gradient"].tolist() == [4, 2]
    assert np.abs(interpreted["public_grad_error"]).max() <= 1e-6


def test_learnable_cotangents_in_one_kernel_are_the_maths(interpreted):
    """x's cotangent within 4.5 ulp of the float32 math's gradient times the
    cotangent, NaN where it is NaN; the parameters' sums within float32
    rounding of the sizes summed (against _math.partials in float64), each
    of the parameter's shape."""
    for case in range(4):
        got, want = interpreted[f"cot{case}_x"], interpreted[f"cot{case}_x_want"]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        finite = np.isfinite(want)
        # 4 ulp, as the fixed parameters' kernel, and the product's rounding
        assert ulp_error(got[finite], want[finite], np.float32).max() <= 4.5
        for name in ("alpha", "beta"):
            if f"cot{case}_{name}" not in interpreted:
                continue
            got = interpreted[f"cot{case}_{name}"]
            want = interpreted[f"cot{case}_{name}_want"]
            size = interpreted[f"cot{case}_{name}_size"]
            assert got.shape == want.shape
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            known = np.isfinite(want)
            bound = 1e-5 * size[known] + 1e-30
            assert (np.abs(got[known] - want[known]) <= bound).all(), (case, name)
    assert interpreted["cot_per_row"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_adapter_learnable_backward_runs_the_kernel(interpreted, dtype):
    """Per-neuron learnable parameters: one kernel, the eager kernel's values
    (parameters' sums to float32 rounding); per-row parameters, a layout the
    kernel does not read, take the eager kernel."""
    assert interpreted[f"learnable_{dtype}_calls"] == 1
    for name in ("x", "alpha", "beta"):
        got = interpreted[f"learnable_{dtype}_{name}"]
        want = interpreted[f"learnable_{dtype}_{name}_eager"]
        if name == "x" and dtype == "bfloat16":
            # one bfloat16 ulp: the interpreter rounds to it half up by its
            # own emulation (as test_16_bit_is_computed_in_float32... says)
            spacing = np.maximum(np.abs(want) * 2.0**-7, 2.0**-24)
            assert (np.abs(got - want) <= spacing).all()
            continue
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)
    assert interpreted["per_row_equal"]


@pytest.mark.parametrize(
    ("variant", "count"),
    [
        ("fixed", 1),
        ("beta_only", 2),
        ("parameters_only", 2),
        ("full_shape", 3),
        ("transposed", 3),
        ("one_element", 3),
    ],
)
def test_the_kernel_gives_the_cotangents_asked_for_in_any_layout(
    interpreted, variant, count
):
    """Fixed tensor parameters, one learning, x not asked for, a parameter of
    x's whole shape, a transposed x, one-element parameters: the kernel runs
    (once, with a result) and gives the eager kernel's values."""
    assert interpreted[f"variant_{variant}_calls"] == 1
    assert interpreted[f"variant_{variant}_count"] == count
    for i in range(count):
        got = interpreted[f"variant_{variant}_{i}"]
        want = interpreted[f"variant_{variant}_{i}_eager"]
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)


# A kernel that fails to build: the adapter's calls fall back to the torch path.
_FALLBACK_SCRIPT = textwrap.dedent(
    """
    import json, warnings
    import torch
    import triton
    import triton.language as tl
    import array_api_compat.torch as xp
    from s2nn_xp import _fused, _math, _triton
    import s2nn_xp.torch as adapter
    assert _triton.INTERPRETED and _triton.AVAILABLE

    @triton.jit
    def _broken_spike(x_ptr, y_ptr, n, alpha, beta, epsilon,
                      with_origin: tl.constexpr, use_libdevice: tl.constexpr,
                      block: tl.constexpr):
        offsets = tl.arange(0, block)
        tl.store(y_ptr + offsets, tl.forced_build_failure(offsets), mask=offsets < n)

    @triton.jit
    def _broken_spike_vjp(cotangent_ptr, x_ptr, out_ptr, n, alpha, beta,
                          with_cotangent: tl.constexpr,
                          use_libdevice: tl.constexpr, block: tl.constexpr):
        offsets = tl.arange(0, block)
        tl.store(out_ptr + offsets, tl.forced_build_failure(offsets),
                 mask=offsets < n)

    class Counted:
        # a kernel whose launches are counted
        def __init__(self, kernel):
            self.kernel, self.launches, self.__name__ = kernel, 0, kernel.__name__
        def __getitem__(self, grid):
            self.launches += 1
            return self.kernel[grid]

    spike = _triton._spike_kernel = Counted(_broken_spike)
    spike_vjp = _triton._spike_vjp_kernel = Counted(_broken_spike_vjp)
    adapter._FUSED_DEVICES = ("cpu",)
    results = {}

    def error(got, want):
        return float((got.double() - want.double()).abs().max())

    def run(dtype, origin):
        x = (torch.randn(300, generator=torch.Generator().manual_seed(2)) * 3)
        x = x.to(dtype).requires_grad_()
        g = torch.randn(300, generator=torch.Generator().manual_seed(3)).to(dtype)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = adapter.s2nn(x, 2.5, 0.75, origin=origin)
            y.backward(g)
        x32 = x.detach().float()
        if origin:
            want_y = _math.origin(xp, x32, 2.5, 0.75, 1e-8, in_place=False)
        else:
            want_y = _math.forward(xp, x32, in_place=False)
        want_grad = _math.gradient(xp, x32, 2.5, 0.75, in_place=False) * g.float()
        return {
            "warnings": [
                [w.category.__name__, str(w.message), w.filename] for w in caught
            ],
            "launches": [spike.launches, spike_vjp.launches],
            "y_error": error(y, want_y.to(dtype)),
            "grad_error": error(x.grad, want_grad.to(dtype)),
            "dtypes": [str(y.dtype), str(x.grad.dtype)],
        }

    results["first"] = run(torch.float32, origin=False)
    results["again"] = run(torch.float32, origin=True)
    results["float16"] = run(torch.float16, origin=True)

    @triton.jit
    def _broken_cotangents(
        cotangent_ptr, x_ptr, grad_ptr, alpha_sums_ptr, beta_sums_ptr, alpha_ptr,
        beta_ptr, epsilon_ptr, alpha, beta, epsilon, alpha_period, beta_period,
        epsilon_period, rows, columns, rows_per_program,
        alpha_is_tensor: tl.constexpr, beta_is_tensor: tl.constexpr,
        epsilon_is_tensor: tl.constexpr, with_x: tl.constexpr,
        with_alpha: tl.constexpr, with_beta: tl.constexpr,
        use_libdevice: tl.constexpr, block_rows: tl.constexpr,
        block_columns: tl.constexpr):
        offsets = tl.arange(0, block_columns)
        tl.store(grad_ptr + offsets, tl.forced_build_failure(offsets),
                 mask=offsets < columns)

    cotangents = _triton._cotangents_kernel = Counted(_broken_cotangents)

    def learnable(fused):
        # per-neuron learnable parameters: the eager kernel's values either way
        adapter._FUSED_DEVICES = ("cpu",) if fused else ()
        x = torch.randn(64, 100, generator=torch.Generator().manual_seed(4)) * 3
        x.requires_grad_()
        module = adapter.S2NN(alpha=torch.full((100,), 2.5),
                              beta=torch.full((100,), 0.75), learnable=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module(x).sum().backward()
        adapter._FUSED_DEVICES = ("cpu",)
        grads = [x.grad, module.alpha.grad, module.beta.grad]
        return [str(w.message) for w in caught], grads

    learnable_warnings, fused_grads = learnable(True)
    again_warnings, _ = learnable(True)
    _, eager_grads = learnable(False)
    results["learnable"] = {
        "warnings": learnable_warnings,
        "again": again_warnings,
        "launches": cotangents.launches,
        "equal": all(torch.equal(a, b) for a, b in zip(fused_grads, eager_grads)),
    }

    # Where the device cannot run the math either (a graph capture, an error
    # of earlier work), the kernel's error is raised, each time.
    _triton._device_usable = lambda device: False
    outcomes = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                adapter.s2nn(torch.ones(8, dtype=torch.bfloat16), origin=True)
                outcomes.append("no error")
            except Exception as exc:
                outcomes.append(str(exc))
        outcomes.append(len(caught))
    results["unusable"] = {"outcomes": outcomes, "launches": spike.launches}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def broken_kernels():
    """The adapter's eager path with kernels that fail to build (interpreter)."""
    return json.loads(run_interpreted(_FALLBACK_SCRIPT).splitlines()[-1])


def test_failed_build_warns_once_per_kernel_and_gives_the_torch_values(
    broken_kernels,
):
    first = broken_kernels["first"]
    assert first["launches"] == [1, 1]
    categories = {category for category, _, _ in first["warnings"]}
    assert categories == {"FusedKernelWarning"}
    messages = [message for _, message, _ in first["warnings"]]
    assert len(messages) == 2  # the forward's kernel and the backward's
    kernels = ("_broken_spike", "_broken_spike_vjp")
    for message, kernel in zip(messages, kernels, strict=True):
        assert f"Triton kernel {kernel} for torch.float32 failed on cpu" in message
        assert "forced_build_failure" in message  # the cause
    # both point at the user's lines, past the package and torch.autograd
    assert [filename for _, _, filename in first["warnings"]] == ["<string>"] * 2
    assert first["y_error"] == 0.0
    assert first["grad_error"] <= 1e-6


def test_a_failed_learnable_kernel_warns_once_and_gives_the_eager_values(
    broken_kernels,
):
    learnable = broken_kernels["learnable"]
    # one warning: the forward's kernel failed for float32 before ("first")
    (message,) = learnable["warnings"]
    assert "Triton kernel _broken_cotangents for torch.float32 failed" in message
    assert learnable["again"] == []
    assert learnable["launches"] == 1
    assert learnable["equal"]


def test_failed_kernel_is_not_tried_again(broken_kernels):
    again = broken_kernels["again"]
    assert again["warnings"] == []
    assert again["launches"] == [1, 1]
    assert again["y_error"] <= 2e-7 and again["grad_error"] <= 1e-6


def test_each_dtype_is_its_own_kernel(broken_kernels):
    """float16 compiles its own specialisation: tried, and warned about, once."""
    float16 = broken_kernels["float16"]
    assert float16["dtypes"] == ["torch.float16", "torch.float16"]
    assert float16["launches"] == [2, 2]
    assert len(float16["warnings"]) == 2
    assert all("for torch.float16" in message for _, message, _ in float16["warnings"])
    assert float16["y_error"] <= 1e-3 and float16["grad_error"] <= 1e-2


def test_a_failure_where_the_device_cannot_run_the_math_is_raised_each_time(
    broken_kernels,
):
    unusable = broken_kernels["unusable"]
    first, warned_first, again, warned_again = unusable["outcomes"]
    assert "forced_build_failure" in first and "forced_build_failure" in again
    assert warned_first == warned_again == 0  # raised, not warned about
    assert unusable["launches"] == 4  # tried again: not remembered


class _Stream:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def synchronize(self) -> None:
        if self.error is not None:
            raise self.error


_ILLEGAL_ADDRESS = RuntimeError("CUDA error: an illegal memory access")


@pytest.mark.parametrize(
    ("capturing", "error", "usable"),
    [
        (False, None, True),
        (True, None, False),  # a CUDA graph capture: no synchronisation either
        (False, _ILLEGAL_ADDRESS, False),
        (_ILLEGAL_ADDRESS, None, False),  # the first call into CUDA reports it
    ],
    ids=["healthy", "capturing", "error-at-synchronise", "error-at-capture-query"],
)
def test_a_cuda_device_is_usable_unless_capturing_or_failed(
    monkeypatch, capturing, error, usable
):
    stream = _Stream(error)
    if capturing is True:
        stream.error = AssertionError("synchronised while capturing")

    def is_capturing() -> bool:
        if isinstance(capturing, Exception):
            raise capturing
        return capturing

    monkeypatch.setattr(torch.cuda, "device", lambda device: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", is_capturing)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: stream)
    assert s2nn_xp._triton._device_usable(torch.device("cuda:1")) is usable
    assert s2nn_xp._triton._device_usable(torch.device("cpu"))  # the interpreter


def test_every_launch_passes_the_compile_options():
    """The interpreter ignores launch options it does not know: the PTX
    test alone could not see them dropped from the launch."""
    launches = []

    class Recorded:
        __name__ = "recorded"

        def __getitem__(self, grid):
            return lambda *args, **options: launches.append(options)

    x = torch.ones(5)
    assert s2nn_xp._triton._launched(Recorded(), (x, torch.empty_like(x)), 1.0)
    (options,) = launches
    assert options.items() >= s2nn_xp._triton.COMPILE_OPTIONS.items()
    assert options["enable_fp_fusion"] is False


def _ptx(source: Any, target: Any, options: dict[str, Any]) -> str:
    return triton.compile(source, target=target, options=options).asm["ptx"]


def test_gpu_branch_compiles_with_accurate_math():
    """Compile the kernels for sm_80 and sm_90 (no GPU needed) and look at the PTX.

    Each division is correctly rounded, and there are no more of them than
    the values need: the gradient divides once (in the branch ``x``
    selects), ``d origin / d alpha`` once, the sigmoid once.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernels = s2nn_xp._triton
    signatures = [
        (
            kernels._spike_kernel,
            {"x_ptr": "*bf16", "y_ptr": "*bf16", "n": "i64"},
            {"with_origin": True, "block": 1024},
            1,
        ),
        (
            kernels._spike_vjp_kernel,
            {
                "cotangent_ptr": "*fp32",
                "x_ptr": "*fp32",
                "out_ptr": "*fp32",
                "n": "i32",
            },
            {"with_cotangent": True, "block": 1024},
            1,
        ),
        (
            kernels._cotangents_kernel,
            {
                **{
                    name: "*fp32"
                    for name in kernels._cotangents_kernel.arg_names
                    if name.endswith("_ptr")
                },
                **{
                    name: "i32"
                    for name in kernels._cotangents_kernel.arg_names
                    if name.endswith(("_period", "rows", "columns", "per_program"))
                },
            },
            {
                "alpha_is_tensor": True,
                "beta_is_tensor": True,
                "epsilon_is_tensor": False,
                "with_x": True,
                "with_alpha": True,
                "with_beta": True,
                "block_rows": 8,
                "block_columns": 128,
            },
            2,
        ),
    ]
    # Every kernel computes 1024 values a program (a block, or 8 rows x 128).
    per_thread = 1024 // (32 * kernels.COMPILE_OPTIONS["num_warps"])
    for capability in (80, 90):
        for kernel, pointers, extra, divisions in signatures:
            names = kernel.arg_names
            constants = {"use_libdevice": True, **extra}
            signature = {
                name: pointers.get(name, "constexpr" if name in constants else "fp32")
                for name in names
            }
            source = ASTSource(
                fn=kernel,
                signature=signature,
                constexprs={(names.index(k),): v for k, v in constants.items()},
            )
            target = GPUTarget("cuda", capability, 32)
            with warnings.catch_warnings():
                # Triton 3.9 warns where no option says whether to fuse
                warnings.simplefilter("error")
                ptx = _ptx(source, target, kernels.COMPILE_OPTIONS)
            # No multiply-add fused (the fma left are libdevice's own)
            fused = _ptx(
                source, target, {**kernels.COMPILE_OPTIONS, "enable_fp_fusion": True}
            )
            assert ptx.count("fma.rn.f32") < fused.count("fma.rn.f32")
            assert ptx.count("div.rn.f32") == divisions * per_thread, kernel
            assert "div.full.f32" not in ptx and "div.approx.f32" not in ptx


def test_kernel_configs_times_every_case_under_the_interpreter():
    """benchmarks/kernel_configs.py, which ``.ci/gpu-check`` runs on a GPU:
    its launches, at a small size on the CPU, with a ratio for every case."""
    arguments = ["--size", "2^12", "--rows", "4", "--layers", "2^10"]
    arguments += ["--blocks", "512", "1024", "--warps", "4", "--repeats", "1"]
    script = (
        f"import runpy, sys; sys.argv[1:] = {arguments!r}; "
        "runpy.run_path('benchmarks/kernel_configs.py', run_name='__main__')"
    )
    out = run_interpreted(script)
    assert "Triton kernels on cpu, 4096 float32 values" in out
    lines = out.splitlines()
    kernels = ("forward", "origin", "backward")
    rows = [line.split() for line in lines[2:] if line.startswith(kernels)]
    timed = {" ".join(row[:-2]): row[-2:] for row in rows}
    for block in (512, 1024):
        for kernel in kernels:
            assert f"{kernel}, block {block}, 4 warps" in timed
    learnable = ("learnable", "learnable, one row program", "learnable, x's term only")
    for shape in ("4 x 1024", "4 x 256"):
        for case in ("fixed", *learnable):
            assert f"backward {shape}, {case}" in timed
    assert all(float(value) > 0 for values in timed.values() for value in values)
    hosts = [line for line in lines if line.startswith("host: ")]
    assert [line[:40] for line in hosts] == [
        "host: one backward launch of 1,024 value",
        "host: the same through Triton's launch  ",
    ]
    assert all(float(line.split()[-1]) > 0 for line in hosts)


# Where Triton's own launch serves every launch (an untested version, the
# interpreter), there is no direct launch to test.
_DIRECT_LAUNCH_ONLY = pytest.mark.skipif(
    not s2nn_xp._triton.DIRECT_LAUNCH,
    reason=f"Triton {triton.__version__} launches through JITFunction.run",
)


@_DIRECT_LAUNCH_ONLY
def test_the_launch_key_is_at_least_as_fine_as_tritons_specialisation():
    """Arguments that share a key compile to one kernel in Triton: a key as
    coarse as Triton's would launch a kernel compiled for other arguments
    (an aligned pointer assumed where it is not, an int taken for 1)."""
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.nvidia.compiler import CUDABackend

    ints = [0, 1, 2, 15, 16, 17, 32, -1, -16, -17, 2**31 - 16, 2**31 - 1]
    ints += [2**31, 2**31 + 1, 2**32, 2**63 - 16, 2**63 - 1, -(2**31), -(2**31) - 1]
    floats = [0.0, 1.0, 16.0, -2.5, float("nan"), float("inf")]
    tensors = [
        torch.zeros(64, dtype=dtype)[start:]
        for dtype in (torch.float16, torch.bfloat16, torch.float32)
        for start in range(9)
    ]
    tensors.append(torch.nn.Parameter(torch.zeros(8)))
    out = torch.zeros(1)
    specialisations: dict[Any, Any] = {}
    for argument in [*ints, *floats, *tensors]:
        key = s2nn_xp._triton._specialisation("kernel", out, (argument,), {})
        assert key is not None, argument
        triton_key = native_specialize_impl(CUDABackend, argument, False, True, True)
        assert specialisations.setdefault(key[-1], triton_key) == triton_key, argument
    # what the kernels are never given is left to Triton
    assert s2nn_xp._triton._specialisation("kernel", out, (None,), {}) is None


@_DIRECT_LAUNCH_ONLY
def test_the_launch_key_holds_the_device_the_constants_and_tritons_settings(
    monkeypatch,
):
    """Triton compiles for each device (loaded in its context) and keys its
    kernels by the constexprs and the settings its launch reads."""
    key = functools.partial(s2nn_xp._triton._specialisation, "kernel")
    assert key(_OnGpu(0), (), {}) != key(_OnGpu(1), (), {})
    assert key(_OnGpu(0), (), {"with_origin": True}) != key(
        _OnGpu(0), (), {"with_origin": False}
    )
    plain = key(_OnGpu(0), (), {})
    monkeypatch.setattr(triton.knobs.runtime, "debug", True)
    assert key(_OnGpu(0), (), {}) != plain
    monkeypatch.setattr(triton.knobs.runtime, "add_stages_inspection_hook", object())
    assert key(_OnGpu(0), (), {}) is None  # Triton 3.9 keys by its pipeline


# Compiles the kernels for sm_90 (no GPU needed) and launches them through a
# driver that records what would go to CUDA instead of calling it (each
# compiled kernel its own function handle): the kernels' launches through
# Triton, and the direct ones after them.
_DIRECT_LAUNCH_SCRIPT = textwrap.dedent(
    """
    import itertools, json
    import torch, triton
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver
    from triton.runtime.jit import JITFunction

    handles = itertools.count(1)

    class Utils:
        def load_binary(self, name, kernel, shared, device):
            # module, function, registers, spills, threads
            return 0, next(handles), 32, 0, 1024

        def get_device_properties(self, device):
            return {"max_shared_mem": 232448, "multiprocessor_count": 132}

    launches, through_triton = [], []

    class RecordingDriver:
        utils = Utils()
        def is_active(self): return True
        def get_current_device(self): return 0
        def get_current_stream(self, device=None): return 7
        def get_current_target(self): return GPUTarget("cuda", 90, 32)
        def get_device_interface(self): return torch.cuda
        def get_active_torch_device(self): return torch.device("cpu")
        def launcher_cls(self, src, metadata):
            return lambda *arguments: launches.append(arguments)

    driver.set_active(RecordingDriver())
    run = JITFunction.run
    def counted(self, *args, **kwargs):
        through_triton.append(self.__name__)
        return run(self, *args, **kwargs)
    JITFunction.run = counted

    from s2nn_xp import _triton
    assert _triton.DIRECT_LAUNCH and not _triton.INTERPRETED

    x, g = torch.randn(4097), torch.randn(4097)
    alpha = torch.nn.Parameter(torch.full((4,), 4.0))
    beta = torch.nn.Parameter(torch.ones(4))
    # the inputs by name; a result made by the call is "new"
    names = {}
    for name, tensor in [("x", x), ("g", g), ("alpha", alpha), ("beta", beta)]:
        names[tensor.data_ptr()] = name
        names[tensor.data_ptr() + 4] = name + "[1:]"

    def comparable(value):
        if isinstance(value, torch.Tensor):
            return [str(value.dtype), names.get(value.data_ptr(), "new")]
        if isinstance(value, (bool, int, float)) or value is None:
            return value
        return type(value).__name__

    def record(call):
        first, before = len(launches), len(through_triton)
        call()
        return {
            "through_triton": through_triton[before:],
            "launches": [
                # grid, stream, the function and its packed metadata, the
                # kernel's parameters
                [*launch[:5], repr(launch[5]), [comparable(v) for v in launch[9:]]]
                for launch in launches[first:]
            ],
        }

    vjp = lambda x, g: _triton.spike_vjp(g, x, 4.0, 1.0)
    def learnable(**asked):
        return lambda: _triton.cotangents(
            g[:4096].view(1024, 4), x[:4096].view(1024, 4), alpha, beta, 1e-8,
            with_x=True, **asked)
    both = learnable(with_alpha=True, with_beta=True)
    alpha_only = learnable(with_alpha=True, with_beta=False)
    forward = lambda origin: _triton.spike(x, 4.0, 1.0, 1e-8, origin=origin)
    results = {}
    for name, call in [
        ("first", lambda: vjp(x[:4096], g[:4096])),
        ("again", lambda: vjp(x[:4096], g[:4096])),
        ("other values", lambda: vjp(torch.randn(4096), torch.randn(4096))),
        ("no cotangent", lambda: vjp(x[:4096], None)),
        ("no cotangent again", lambda: vjp(x[:4096], None)),
        ("unaligned", lambda: vjp(x[1:], g[1:])),
        ("unaligned again", lambda: vjp(x[1:], g[1:])),
        ("one value", lambda: vjp(x[:1], g[:1])),
        ("forward", lambda: forward(False)),
        ("forward again", lambda: forward(False)),
        ("origin", lambda: forward(True)),
        ("origin again", lambda: forward(True)),
        ("learnable", both),
        ("learnable again", both),
        ("alpha only", alpha_only),
        ("alpha only again", alpha_only),
    ]:
        results[name] = record(call)
    _triton._spike_vjp_kernel.pre_run_hooks.append(lambda *args, **kwargs: None)
    results["hooked"] = record(lambda: vjp(x[:4096], g[:4096]))
    _triton._spike_vjp_kernel.pre_run_hooks.clear()
    _triton.DIRECT_LAUNCH = False
    results["off"] = record(lambda: vjp(x[:4096], g[:4096]))
    print(json.dumps(results))
    """
)


@_DIRECT_LAUNCH_ONLY
def test_a_compiled_kernel_is_launched_again_with_tritons_own_arguments():
    results = json.loads(run_script(_DIRECT_LAUNCH_SCRIPT).splitlines()[-1])
    vjp, spike, cotangents = "_spike_vjp_kernel", "_spike_kernel", "_cotangents_kernel"
    through = {name: result["through_triton"] for name, result in results.items()}
    # Each specialisation compiled and launched by Triton, then its kernel itself.
    assert through == {
        "first": [vjp],
        "again": [],
        "other values": [],
        "no cotangent": [vjp],  # another constexpr
        "no cotangent again": [],
        "unaligned": [vjp],  # another alignment
        "unaligned again": [],
        "one value": [vjp],  # n == 1 is a constant for Triton
        "forward": [spike],
        "forward again": [],
        "origin": [spike],
        "origin again": [],
        "learnable": [cotangents],
        "learnable again": [],
        "alpha only": [cotangents],
        "alpha only again": [],
        "hooked": [vjp],  # Triton runs the kernel's hooks
        "off": [vjp],
    }
    launched = {name: result["launches"] for name, result in results.items()}
    assert all(len(launches) == 1 for launches in launched.values())
    # The direct launch hands CUDA what Triton's own launch did: the same
    # compiled function, grid, stream, metadata and parameters, in order.
    # (The last: with direct launches off, Triton's own again.)
    for direct, by_triton in [
        ("again", "first"),
        ("no cotangent again", "no cotangent"),
        ("unaligned again", "unaligned"),
        ("forward again", "forward"),
        ("origin again", "origin"),
        ("learnable again", "learnable"),
        ("alpha only again", "alpha only"),
        ("off", "first"),
    ]:
        assert launched[direct] == launched[by_triton], direct
    (first,) = launched["first"]
    assert first[:4] == [4, 1, 1, 7]  # 4,096 values, on the current stream
    assert first[-1][:3] == [
        ["torch.float32", "g"],
        ["torch.float32", "x"],
        ["torch.float32", "new"],
    ]
    (other,) = launched["other values"]
    assert other[4] == first[4] and other[-1][0] == ["torch.float32", "new"]
    # every specialisation its own compiled function
    kinds = ("first", "no cotangent", "unaligned", "forward", "origin")
    functions = [launched[name][0][4] for name in (*kinds, "learnable", "alpha only")]
    assert len(set(functions)) == len(functions)


class _OnGpu:
    """A tensor's device as the guard reads it."""

    is_cuda = True

    def __init__(self, index: int) -> None:
        self.index = index
        self.device = f"cuda:{index}"

    def get_device(self) -> int:
        return self.index


def test_a_launch_enters_the_tensors_device_only_where_it_is_not_current(
    monkeypatch,
):
    """Triton launches on the current device: another one is entered (a
    kernel on the wrong GPU read memory it cannot), the current one not
    (about 20 us a launch on an H200's host)."""
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "device", lambda device: ("entered", device))
    guard = s2nn_xp._triton._device_guard
    assert guard(_OnGpu(0)) == ("entered", "cuda:0")
    assert isinstance(guard(_OnGpu(1)), contextlib.nullcontext)
    assert isinstance(guard(torch.ones(1)), contextlib.nullcontext)  # interpreter
