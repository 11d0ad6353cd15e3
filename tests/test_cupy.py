"""The CuPy kernels on a CUDA device, against the float64 NumPy reference.

Runs in the cupy session only (``S2NN_XP_BACKENDS=cupy``), and skips with the
reason where CuPy or a CUDA device is missing. Covers every kernel (forward,
origin, gradient, forward_and_gradient, vjp and its pullback), both launch
paths (contiguous and elementwise), float16/float32/float64, shapes, strides,
``out=``, streams and devices. The docstring examples of ``s2nn_xp.cupy`` run
in ``tests/test_docs.py`` in the same session.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _cupy_kernels, _fused
from tests._support import (
    SPECIAL_X,
    grid,
    normal_or_zero,
    ref_forward,
    ref_gradient,
    ref_origin,
    reference,
    require,
    ulp_error,
)

cupy = require("cupy")
import s2nn_xp.cupy as s2nn_cupy  # noqa: E402 - only where CuPy imports

FLOATS = ("float16", "float32", "float64")
FUNCTIONS = ("forward", "origin", "gradient")
PARAMS = {"alpha": 4.0, "beta": 1.0, "epsilon": 1e-8}


def numpy_reference(name: str, x: np.ndarray, params=PARAMS) -> np.ndarray:
    """The float64 NumPy path (the reference backend) at ``x``."""
    x = np.asarray(x, dtype=np.float64)
    if name == "forward":
        return s2nn_xp.forward(x)
    if name == "origin":
        return s2nn_xp.origin(x, **params)
    return s2nn_xp.gradient(x, params["alpha"], params["beta"])


def mpmath_reference(name: str, x: np.ndarray, params=PARAMS) -> np.ndarray:
    if name == "forward":
        return reference(ref_forward, x)
    if name == "origin":
        return reference(ref_origin, x, **params)
    return reference(ref_gradient, x, alpha=params["alpha"], beta=params["beta"])


def kernel(name: str, x, params=PARAMS, **kwargs):
    if name == "forward":
        return s2nn_cupy.forward(x, **kwargs)
    if name == "origin":
        return s2nn_cupy.origin(x, **params, **kwargs)
    return s2nn_cupy.gradient(x, params["alpha"], params["beta"], **kwargs)


def max_ulp(actual, desired, dtype) -> float:
    return float(ulp_error(cupy.asnumpy(actual), desired, dtype).max())


def strided(values: np.ndarray):
    """A CuPy view of ``values`` with stride 2 (the elementwise path)."""
    return cupy.asarray(np.repeat(values, 2))[::2]


LAYOUTS = {"contiguous": cupy.asarray, "strided": strided}


class TestAccuracy:
    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_float32_within_4_ulp_of_float64_reference(self, name, layout):
        # CuPy compiles with -ftz=true: float32 subnormals are 0 (the docs'
        # Definition page; tests/test_validation.py holds it to that)
        x_np = normal_or_zero(grid(4.0, 2000, 20.0).astype(np.float32))
        got = kernel(name, LAYOUTS[layout](x_np))
        assert got.dtype == cupy.float32
        err = ulp_error(cupy.asnumpy(got), numpy_reference(name, x_np), np.float32)
        assert err.max() <= 4, f"{err.max()} ulp at x={x_np[err.argmax()]}"

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("name", FUNCTIONS)
    @pytest.mark.parametrize(
        "params", [PARAMS, {"alpha": 8.0, "beta": 2.0, "epsilon": 0.0}]
    )
    def test_float64_within_4_ulp_of_float64_reference(self, name, layout, params):
        x_np = grid(params["alpha"], 2000, 700.0)
        got = cupy.asnumpy(kernel(name, LAYOUTS[layout](x_np), params))
        assert max_ulp(got, numpy_reference(name, x_np, params), np.float64) <= 4
        assert (
            max_ulp(got[::7], mpmath_reference(name, x_np[::7], params), np.float64)
            <= 3
        )

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_float16_is_the_float32_result_rounded_once(self, name, layout):
        x16 = grid(4.0, 2000, 20.0).astype(np.float16)
        got = kernel(name, LAYOUTS[layout](x16))
        via32 = kernel(name, LAYOUTS[layout](x16.astype(np.float32)))
        assert got.dtype == cupy.float16
        np.testing.assert_array_equal(
            cupy.asnumpy(got), cupy.asnumpy(via32).astype(np.float16)
        )

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_special_values(self, name, dtype, layout):
        """NaN, infinities, zeros and spikes exactly; x <= -1 finite."""
        with np.errstate(over="ignore"):
            x_np = SPECIAL_X.astype(dtype)
            want = mpmath_reference(name, x_np).astype(dtype)
        got = cupy.asnumpy(kernel(name, LAYOUTS[layout](x_np)))
        exact = ~np.isfinite(x_np) | ~np.isfinite(want) | (want == 0) | (want == 1)
        np.testing.assert_array_equal(got[exact], want[exact])
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        np.testing.assert_allclose(got, want, rtol=8 * np.finfo(dtype).eps)
        assert np.isfinite(got[x_np <= -1][1:]).all()  # all but -inf

    def test_gradient_at_minus_one_is_not_nan(self):
        """The blend a * mask + b * (1 - mask) gives NaN here; selection not."""
        for dtype in FLOATS:
            got = s2nn_cupy.gradient(cupy.full(1000, -1.0, dtype=dtype))
            assert bool(cupy.isfinite(got).all())

    def test_alpha_that_is_no_power_of_two(self):
        x_np = np.linspace(-5, 5, 1001).astype(np.float32)
        got = s2nn_cupy.gradient(cupy.asarray(x_np), alpha=3.3, beta=0.7)
        want = numpy_reference("gradient", x_np, {"alpha": 3.3, "beta": 0.7})
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=2e-6)


class TestFusedKernels:
    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("dtype", FLOATS)
    def test_forward_and_gradient_is_forward_and_gradient(self, dtype, layout):
        x = LAYOUTS[layout](grid(4.0, 500, 20.0).astype(dtype))
        spike, grad = s2nn_cupy.forward_and_gradient(x, 2.0, 0.5)
        assert spike.dtype == grad.dtype == x.dtype
        cupy.testing.assert_array_equal(spike, s2nn_cupy.forward(x))
        cupy.testing.assert_array_equal(grad, s2nn_cupy.gradient(x, 2.0, 0.5))

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("with_origin", [False, True])
    def test_vjp(self, dtype, layout, with_origin):
        rng = np.random.default_rng(4)
        x = LAYOUTS[layout](rng.normal(scale=3, size=999).astype(dtype))
        ct = LAYOUTS[layout](rng.normal(size=999).astype(dtype))
        y, pullback = s2nn_cupy.vjp(x, 2.0, 0.5, 1e-3, origin=with_origin)
        primal = (
            s2nn_cupy.origin(x, 2.0, 0.5, 1e-3) if with_origin else s2nn_cupy.forward(x)
        )
        cupy.testing.assert_array_equal(y, primal)
        got = pullback(ct)
        assert got.dtype == x.dtype
        compute = cupy.float32 if dtype == "float16" else x.dtype
        grad = s2nn_cupy.gradient(x.astype(compute), 2.0, 0.5)
        want = (ct.astype(compute) * grad).astype(x.dtype)  # rounded once
        cupy.testing.assert_array_equal(got, want)

    def test_pullback_keeps_the_gradient_not_x(self):
        x = cupy.asarray([-1.0, 0.0, 1.0])
        _, pullback = s2nn_cupy.vjp(x)
        first = pullback(1.0)
        x[...] = 5.0
        cupy.testing.assert_array_equal(pullback(1.0), first)

    def test_cotangents(self):
        x = cupy.zeros((2, 3), dtype=cupy.float16)
        _, pullback = s2nn_cupy.vjp(x)
        for cotangent, want in [
            (2, np.full((2, 3), 2.0)),
            (cupy.asarray([1.0, 2.0, 3.0]), np.broadcast_to([1.0, 2.0, 3.0], (2, 3))),
            (cupy.ones((2, 3), dtype=cupy.int32), np.ones((2, 3))),
            (cupy.ones((2, 3), dtype=cupy.float16), np.ones((2, 3))),
        ]:
            got = pullback(cotangent)
            assert got.dtype == cupy.float16
            np.testing.assert_array_equal(cupy.asnumpy(got), want)
        with pytest.raises(ValueError, match="cotangent"):
            pullback(cupy.ones(4))
        # host data is read, as every adapter's pullback reads it
        got = pullback(np.full((2, 3), 3.0))  # the gradient at 0 is beta, 1
        np.testing.assert_array_equal(cupy.asnumpy(got), np.full((2, 3), 3.0))
        with pytest.raises(TypeError, match="cotangent"):
            pullback("text")

    @pytest.mark.parametrize("name", ["origin", "gradient"])
    def test_per_neuron_parameters(self, name):
        rng = np.random.default_rng(1)
        x_np = rng.normal(size=(5, 3))
        alphas, betas = np.array([2.0, 4.0, 8.0]), np.linspace(0.5, 4, 5)[:, None]
        got = getattr(s2nn_cupy, name)(
            cupy.asarray(x_np), alpha=cupy.asarray(alphas), beta=cupy.asarray(betas)
        )
        want = getattr(s2nn_xp, name)(x_np, alpha=alphas, beta=betas)
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-14)


SHAPES = [(), (0,), (3, 0, 2), (1,), (7,), (2, 3, 4), (1025,), (2**20 + 3,)]


class TestShapesAndLayouts:
    @pytest.mark.parametrize("shape", SHAPES, ids=str)
    @pytest.mark.parametrize("dtype", FLOATS)
    def test_shapes(self, shape, dtype):
        x_np = np.random.default_rng(2).normal(scale=3, size=shape).astype(dtype)
        for name in FUNCTIONS:
            got = kernel(name, cupy.asarray(x_np))
            assert got.shape == shape and got.dtype == x_np.dtype
            want = numpy_reference(name, x_np).astype(dtype)
            np.testing.assert_allclose(
                cupy.asnumpy(got), want, rtol=8 * np.finfo(dtype).eps
            )

    @pytest.mark.parametrize(
        "view",
        [
            lambda a: a[::3],
            lambda a: a[::-1],
            lambda a: a.reshape(60, 70).T,
            lambda a: a.reshape(60, 70)[5:50:2, 3:],
            lambda a: a[1:],  # misaligned for 16-byte loads
            lambda a: cupy.asfortranarray(a.reshape(60, 70)),
            lambda a: a.reshape(3, 4, 350)[:, ::2, 1::3],
        ],
    )
    @pytest.mark.parametrize("dtype", FLOATS)
    def test_views(self, view, dtype):
        base = cupy.asarray(np.linspace(-6, 6, 4200).astype(dtype))
        before = base.copy()
        x = view(base)
        for name in FUNCTIONS:
            got = kernel(name, x)
            want = kernel(name, cupy.ascontiguousarray(x))
            assert got.shape == x.shape
            cupy.testing.assert_array_equal(got, want)
        cupy.testing.assert_array_equal(base, before)  # x is not modified

    def test_integer_input_promotes_to_float64(self):
        got = s2nn_cupy.gradient(cupy.asarray([-2, 0, 3]))
        assert got.dtype == cupy.float64
        np.testing.assert_allclose(cupy.asnumpy(got), s2nn_xp.gradient([-2, 0, 3]))


class TestOut:
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_out_and_in_place(self, name, dtype):
        x = cupy.linspace(-3, 3, 1001, dtype=dtype)
        want = kernel(name, x)
        out = cupy.empty_like(x)
        assert kernel(name, x, out=out) is out
        cupy.testing.assert_array_equal(out, want)
        assert kernel(name, x, out=x) is x
        cupy.testing.assert_array_equal(x, want)

    def test_strided_out(self):
        x = cupy.linspace(-3, 3, 100)
        buffer = cupy.zeros(200)
        s2nn_cupy.gradient(x, out=buffer[::2])
        cupy.testing.assert_array_equal(buffer[::2], s2nn_cupy.gradient(x))
        assert not buffer[1::2].any()

    def test_errors(self):
        x = cupy.linspace(-1, 1, 4)
        with pytest.raises(ValueError, match="out has shape"):
            s2nn_cupy.gradient(x, out=cupy.empty(5))
        with pytest.raises(TypeError, match="out has dtype"):
            s2nn_cupy.gradient(x, out=cupy.empty(4, dtype=cupy.float32))
        with pytest.raises(TypeError, match="out must be a CuPy array"):
            s2nn_cupy.gradient(x, out=np.empty(4))
        with pytest.raises(ValueError, match="overlaps"):
            s2nn_cupy.gradient(x, out=x[::-1])


class TestStreamsAndDevices:
    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    def test_kernels_run_on_the_current_stream(self, layout):
        """Captured into a CUDA graph on the current stream: nothing runs until
        the graph is launched (a launch on another stream would have run, or
        failed the capture)."""
        x = LAYOUTS[layout](np.linspace(-3, 3, 5000))
        out = cupy.zeros(x.shape)
        spike, grad = cupy.zeros(x.shape), cupy.zeros(x.shape)
        s2nn_cupy.gradient(x, out=out)  # compile before capturing
        s2nn_cupy.forward_and_gradient(x, out=(spike, grad))
        out[...] = 0
        spike[...] = 0
        grad[...] = 0
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            s2nn_cupy.gradient(x, out=out)
            s2nn_cupy.forward_and_gradient(x, out=(spike, grad))
            graph = stream.end_capture()
        stream.synchronize()
        assert not out.any() and not grad.any()
        graph.launch(stream)
        stream.synchronize()
        cupy.testing.assert_array_equal(out, s2nn_cupy.gradient(x))
        cupy.testing.assert_array_equal(grad, out)
        cupy.testing.assert_array_equal(spike, s2nn_cupy.forward(x))

    def test_results_on_a_non_blocking_stream(self):
        x = cupy.linspace(-3, 3, 2**20)
        want = s2nn_cupy.gradient(x)
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            _, pullback = s2nn_cupy.vjp(x)
            got = pullback(cupy.ones_like(x))
        stream.synchronize()
        cupy.testing.assert_array_equal(got, want)

    def test_other_device(self):
        if cupy.cuda.runtime.getDeviceCount() < 2:
            pytest.skip("needs two CUDA devices")
        with cupy.cuda.Device(1):
            x = cupy.linspace(-3, 3, 1000)
        with cupy.cuda.Device(0):
            got = s2nn_cupy.gradient(x)
            with pytest.raises(ValueError, match="alpha is on device 0"):
                s2nn_cupy.gradient(x, alpha=cupy.ones(1000))
        assert got.device.id == 1
        with cupy.cuda.Device(1):
            cupy.testing.assert_array_equal(got, s2nn_cupy.gradient(x))


class TestPublicAPI:
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_public_functions_run_the_kernels(self, name):
        x = cupy.linspace(-3, 3, 100, dtype=cupy.float32)
        got = getattr(s2nn_xp, name)(x)
        assert isinstance(got, cupy.ndarray)
        cupy.testing.assert_array_equal(got, kernel(name, x))

    def test_s2nn_and_vjp(self):
        x = cupy.linspace(-3, 3, 100)
        cupy.testing.assert_array_equal(s2nn_xp.s2nn(x), s2nn_cupy.forward(x))
        y, pullback = s2nn_xp.vjp(x, origin=True)
        cupy.testing.assert_array_equal(y, s2nn_cupy.origin(x))
        cupy.testing.assert_array_equal(pullback(1.0), s2nn_cupy.gradient(x))
        fn = s2nn_xp.S2NN(alpha=8.0)
        cupy.testing.assert_array_equal(
            fn.surrogate_grad(x), s2nn_cupy.gradient(x, 8.0)
        )


class TestFallback:
    """A kernel that fails to build on the GPU leaves the call to the math."""

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_build_failure_gives_the_array_api_values(self, monkeypatch, name, layout):
        monkeypatch.setattr(_fused, "_failed", set())
        monkeypatch.setattr(s2nn_cupy, "_contiguous_modules", {})  # none compiled
        monkeypatch.setattr(s2nn_cupy, "_elementwise_kernels", {})
        broken = _cupy_kernels.DEVICE_MATH + "\n#error forced build failure\n"
        monkeypatch.setattr(_cupy_kernels, "DEVICE_MATH", broken)
        x_np = normal_or_zero(grid(4.0, 300, 20.0).astype(np.float32))  # -ftz=true
        with pytest.warns(_fused.FusedKernelWarning, match="failed on CUDA device"):
            got = kernel(name, LAYOUTS[layout](x_np))
        assert got.dtype == cupy.float32
        assert max_ulp(got, mpmath_reference(name, x_np), np.float32) <= 4
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # not tried, nor warned about, again
            again = kernel(name, LAYOUTS[layout](x_np))
        cupy.testing.assert_array_equal(again, got)
