"""CuPy adapter: fused CUDA kernels for the S2NN functions on GPU arrays.

CuPy has no autodiff: CuPy users run the forward and the backward pass
themselves. This module gives them each step as one kernel launch instead of a
chain of ufuncs (the array-API math's gradient is about fifteen, each a
launch and a pass over the array's memory):

* :func:`forward`, :func:`origin` and :func:`gradient`: one launch each;
* :func:`forward_and_gradient`: the spike and the surrogate gradient in one
  pass over ``x``;
* :func:`vjp`: the spike (or the origin function) and the gradient its
  pullback needs, in one pass; the pullback is one more launch
  (``cotangent * gradient``) and holds the gradient, not ``x``, so changing
  ``x`` afterwards (a membrane reset in place, say) does not change it.

:func:`s2nn_xp.forward`, :func:`~s2nn_xp.origin`, :func:`~s2nn_xp.gradient`,
:func:`~s2nn_xp.s2nn` and :func:`~s2nn_xp.vjp` call these functions for CuPy
arrays (the backend registry, :mod:`s2nn_xp._backends`, says so); importing
this module directly also gives ``out=`` arrays for preallocated buffers.

Every function takes CuPy arrays of any shape (0-d and empty too) and
layout (non-contiguous views too) and keeps their shape and dtype: float16
(computed in float32 and rounded once), float32 and float64; integer and bool
input is promoted to float64, complex input raises ``TypeError``, as the
docs' *Definition* page says. Parameters are positive finite Python numbers
or lists (checked, with a ``ValueError`` naming the parameter) or CuPy arrays
that broadcast to ``x`` (per-neuron values, converted to the compute dtype;
their values are not checked, since that would wait for the GPU). Kernels
run on ``x``'s device, on that device's current stream, and return without
synchronising.

Values are those of the *Definition*: NaN gives NaN in all three functions;
``+inf`` gives spike 1, origin ``+inf`` and gradient 0; ``-inf`` gives 0, 0
and 0; ``x <= -1`` gives finite values; ``-0.0`` spikes. The kernels select the
branch of each element rather than blending both branches arithmetically (a
blend such as ``a * mask + b * (1 - mask)`` returns NaN at ``x = -1``, where
``b = beta / (x + 1)`` is infinite). Their source, with the formulas, is
:mod:`s2nn_xp._cupy_kernels`.

How the work is launched: arrays that share one memory order (all
C-contiguous or all Fortran-contiguous) with 16-byte-aligned data, and
parameters that are Python numbers, go to a kernel that moves 16 bytes per
load and store and keeps several loads in flight per thread (the memory
bandwidth bound); everything else (strided views, broadcast parameters or
cotangents) goes to a ``cupy.ElementwiseKernel`` with the same device
functions. Kernels are compiled on first use and cached by CuPy. A kernel
that fails to compile or launch on a GPU leaves the call to the array-API
math of :mod:`s2nn_xp._math` (the same values, more memory traffic), with one
warning naming the cause, and is not tried again on that device (see
:mod:`s2nn_xp._fused`).

Examples
--------
>>> import cupy
>>> import s2nn_xp.cupy as s2nn_cupy
>>> x = cupy.asarray([-1.0, 0.0, 1.0])
>>> spike, grad = s2nn_cupy.forward_and_gradient(x)
>>> spike
array([0., 1., 1.])
>>> grad
array([0.07065082, 1.        , 0.5       ])
>>> s2nn_cupy.gradient(x.astype(cupy.float16)).dtype
dtype('float16')
>>> out = cupy.empty_like(x)
>>> s2nn_cupy.gradient(x, alpha=8.0, out=out) is out
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _backends, _compat, _cupy_kernels, _fused, _math
from ._adapter_docs import listing
from ._api import ALPHA, BETA, EPSILON, Flag
from ._validation import (
    check_broadcast,
    check_cotangent_shape,
    check_plain_values,
    check_real_dtype,
    check_representable,
    check_same_device,
    cotangent_of_a_kind,
    describe,
    host_floats,
    host_input,
    input_dtypes,
    masked_host_data,
    mixed_libraries,
    refuse_other_library,
    validate_flag,
    validate_parameter,
)

try:
    import cupy
except ImportError as exc:
    raise _backends.framework_import_error("cupy", exc) from exc
else:  # too old a version is refused too
    _backends.check_framework_version("cupy")

__all__ = [
    "forward",
    "forward_and_gradient",
    "gradient",
    "origin",
    "s2nn",
    "vjp",
]
__dir__ = listing(__all__)

ArrayLike = Any
"""A CuPy array, or host data but a NumPy array: numbers, NumPy scalars, lists."""
Parameter = Any
"""A positive Python number, or a CuPy array broadcasting to ``x`` (per neuron)."""


class _LaunchConfiguration(NamedTuple):
    """How the contiguous kernels are launched."""

    block_size: int
    """Threads per block."""
    chunks_per_thread: int
    """16-byte chunks of each array per thread: the loads it keeps in flight."""


# The launch configuration of the contiguous kernels. benchmarks/bench_cupy.py
# --sweep and the tests set another one; kernels are compiled and cached per
# chunks_per_thread, so a change needs nothing else.
_LAUNCH = _LaunchConfiguration(block_size=256, chunks_per_thread=4)

_ALIGNMENT = _cupy_kernels.CHUNK_BYTES
_RECORD = _backends.get("cupy")
# The floats CuPy computes (its registry record's) -> the dtype each is
# computed in.
_FLOAT_COMPUTE: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(name): np.dtype(_backends.COMPUTE_DTYPES[name]) for name in _RECORD.dtypes
}

# (operation, dtypes of the arrays, inputs first) -> (contiguous kernel, chunk);
# keyed by dtype objects, which hash fast (dtype.name is slow to compute)
_CONTIGUOUS_SPECS = {
    (spec.operation, tuple(np.dtype(d) for d in spec.inputs + spec.outputs)): (
        spec,
        spec.chunk,
    )
    for dtype in _FLOAT_COMPUTE
    for spec in _cupy_kernels.contiguous_kernels(dtype.name)
}
# (dtype name of x, chunks per thread) -> (cupy.RawModule, {kernel name: RawKernel})
_contiguous_modules: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}
# (operation, compute dtype) -> cupy.ElementwiseKernel
_elementwise_kernels: dict[tuple[str, np.dtype], Any] = {}

# operation -> its outputs by the array-API math, where its kernel cannot run:
# from the inputs in the compute dtype (x; or the cotangent and the gradient)
# and the kernel's parameters.
_ARRAY_API_MATH: dict[str, Callable[..., tuple[Any, ...]]] = {
    "forward": lambda xp, x: (_math.forward(xp, x, in_place=True),),
    "origin": lambda xp, x, *p: (_math.origin(xp, x, *p, in_place=True),),
    "gradient": lambda xp, x, *p: (_math.gradient(xp, x, *p, in_place=True),),
    "forward_and_gradient": lambda xp, x, *p: (
        _math.forward(xp, x, in_place=True),
        _math.gradient(xp, x, *p, in_place=True),
    ),
    "origin_and_gradient": lambda xp, x, alpha, beta, epsilon: (
        _math.origin(xp, x, alpha, beta, epsilon, in_place=True),
        _math.gradient(xp, x, alpha, beta, in_place=True),
    ),
    "pullback": lambda xp, cotangent, grad: (cotangent * grad,),
}


# --- Arguments ---------------------------------------------------------------


def _input(x: ArrayLike) -> tuple[Any, np.dtype, np.dtype]:
    """``x`` as the CuPy array the kernels read, its compute and result dtypes."""
    if not isinstance(x, cupy.ndarray):
        if isinstance(x, np.ndarray):  # an array on the host, not a NumPy scalar
            if isinstance(x, np.ma.MaskedArray):  # its mask would be dropped
                raise masked_host_data("x", "cupy")
            check_plain_values("x", x)  # moved as the message says, it lost them
            msg = (
                f"x must be a CuPy array, not {describe(x)} (move host data to "
                "the GPU with cupy.asarray)"
            )
            raise TypeError(msg)
        # Numbers, lists, NumPy scalars and what NumPy reads: read and checked
        # as every adapter's host data is (ragged lists, ints beyond int64,
        # odd items, other libraries' arrays: errors naming x).
        x = cupy.asarray(host_input(x, "cupy"))
    compute = _FLOAT_COMPUTE.get(x.dtype)
    if compute is not None:  # float16 is read as is and widened in the kernel
        return x, compute, x.dtype
    compute, result = input_dtypes(_compat.array_namespace(x), x)  # raises
    with x.device:  # CuPy allocates on the current device, not x's
        return x.astype(compute), np.dtype(compute), np.dtype(result)


def _quietly_as(dtype: np.dtype[Any], number: Any) -> Any:
    """``number`` as a scalar of ``dtype``: 0 or inf beyond its range, quietly.

    As NumPy's and the other libraries' pullbacks take a cotangent
    (``_validation.prepare_cotangent``); NumPy's cast warned (1e300 for
    float32), and raised under ``np.errstate(all="raise")``.
    """
    with np.errstate(over="ignore", under="ignore"):
        return dtype.type(number)


def _parameter(name: str, value: Parameter, x: Any, compute: np.dtype) -> Any:
    """A Python number as a scalar of the compute dtype; arrays checked and cast."""
    info = np.finfo(compute)
    largest = float(info.max)
    if type(value) is float and float(info.tiny) <= value <= largest:
        return compute.type(value)  # normal in the compute dtype: valid for all three
    if not isinstance(value, cupy.ndarray):  # no lookup at every call
        refuse_other_library(cupy, name, value, x)
    value = validate_parameter(name, value, x.shape)
    # a subnormal alpha or beta would act as 0 where CuPy flushes them
    flushed_by = _RECORD.name if _RECORD.flushes(x, compute) else None
    if isinstance(value, float):
        return compute.type(
            check_representable(name, value, compute, largest, flushed_by=flushed_by)
        )
    if not isinstance(value, (np.ndarray, cupy.ndarray)):
        raise mixed_libraries(x, name, value)
    check_real_dtype(name, np, value.dtype)
    if not isinstance(value, cupy.ndarray):  # host values (lists too), checked
        check_representable(name, value, compute, largest, flushed_by=flushed_by)
        # in the compute dtype on the host: CuPy reads no ml_dtypes (float8)
        with np.errstate(over="ignore", under="ignore"):  # judged above
            value = cupy.asarray(value.astype(compute))
    check_broadcast(name, value.shape, x.shape)
    check_same_device(name, value.device.id, x.device.id)
    return value.astype(compute, copy=False)


def _same_memory(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are the same elements in the same places."""
    return bool(
        a.data.ptr == b.data.ptr
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype.itemsize == b.dtype.itemsize
    )


def _overlaps_itself(a: Any) -> bool:
    """Whether elements of ``a`` may share memory (a stride of 0, say).

    Sorted by stride, each axis must step past the span of the axes before
    it; some exotic layouts that do not overlap fail this too, and are
    refused with the rest.
    """
    if a.size == 0:
        return False
    span = a.dtype.itemsize
    for size, stride in sorted(zip(a.shape, a.strides, strict=True), key=_stride):
        if size == 1:
            continue
        if abs(stride) < span:
            return True
        span += abs(stride) * (size - 1)
    return False


def _stride(axis: tuple[int, int]) -> int:
    return abs(axis[1])


def _output(
    name: str, out: Any, like: Any, dtype: np.dtype, inputs: Sequence[Any]
) -> Any:
    """A new result array, or ``out`` checked against ``like`` and ``inputs``.

    ``out`` may be one of ``inputs`` itself (in place); it may not overlap one
    otherwise, since elements could then be read after they were written.
    """
    if out is None:
        return cupy.empty_like(like, dtype=dtype)
    if not isinstance(out, cupy.ndarray):
        msg = f"{name} must be a CuPy array, not {describe(out)}"
        raise TypeError(msg)
    if out.shape != like.shape:
        msg = f"{name} has shape {out.shape}; it must have the shape of x, {like.shape}"
        raise ValueError(msg)
    if out.dtype != dtype:
        msg = f"{name} has dtype {out.dtype}; the result has dtype {dtype}"
        raise TypeError(msg)
    check_same_device(name, out.device.id, like.device.id)
    if _overlaps_itself(out):
        msg = (
            f"{name} has elements that share memory (a broadcast view?): GPU "
            "threads would write them at once; pass an array whose elements "
            "are all its own"
        )
        raise ValueError(msg)
    for array in inputs:
        if (
            isinstance(array, cupy.ndarray)
            and cupy.may_share_memory(out, array)
            and not _same_memory(out, array)
        ):
            msg = (
                f"{name} overlaps an input without being that input itself; pass "
                "the input itself (to compute in place) or a separate array"
            )
            raise ValueError(msg)
    return out


def _outputs(
    out: Any, like: Any, dtypes: tuple[np.dtype, ...], inputs: Sequence[Any]
) -> tuple[Any, ...]:
    """The result arrays: ``out=array`` for one, ``out=(a, b)`` for two."""
    if len(dtypes) == 1:
        return (_output("out", out, like, dtypes[0], inputs),)
    if out is None:
        out = (None, None)
    if not isinstance(out, tuple | list) or len(out) != 2:
        msg = f"out must be None or a pair of CuPy arrays, not {describe(out)}"
        raise TypeError(msg)
    first = _output("out[0]", out[0], like, dtypes[0], inputs)
    second = _output("out[1]", out[1], like, dtypes[1], inputs)
    if cupy.may_share_memory(first, second):
        msg = "out[0] and out[1] must not overlap"
        raise ValueError(msg)
    return first, second


# --- Launching ---------------------------------------------------------------


def _contiguous_kernel(spec: _cupy_kernels.KernelSpec, chunks_per_thread: int) -> Any:
    """The compiled ``RawKernel`` of ``spec`` (its module compiles on first use)."""
    key = (spec.inputs[0], chunks_per_thread)
    entry = _contiguous_modules.get(key)
    if entry is None:
        module = cupy.RawModule(
            code=_cupy_kernels.contiguous_source(
                spec.inputs[0], chunks_per_thread=chunks_per_thread
            ),
            options=_cupy_kernels.COMPILE_OPTIONS,
        )
        entry = _contiguous_modules[key] = (module, {})
    module, kernels = entry
    kernel = kernels.get(spec.name)
    if kernel is None:
        kernel = kernels[spec.name] = module.get_function(spec.name)
    return kernel


def _elementwise_kernel(operation: str, compute: np.dtype) -> Any:
    """The ``cupy.ElementwiseKernel`` of ``operation`` (compiled on first call)."""
    kernel = _elementwise_kernels.get((operation, compute))
    if kernel is None:
        code = _cupy_kernels.elementwise_spec(operation, compute.name)
        kernel = _elementwise_kernels[operation, compute] = cupy.ElementwiseKernel(
            code.in_params,
            code.out_params,
            code.operation,
            name=code.name,
            preamble=_cupy_kernels.DEVICE_MATH,
            options=_cupy_kernels.COMPILE_OPTIONS,
        )
    return kernel


def _contiguous_layout(arrays: Sequence[Any]) -> bool:
    """Whether the contiguous kernels can take ``arrays``.

    True for CuPy arrays of one shape and one memory order (all C- or all
    Fortran-contiguous) with 16-byte-aligned data: element ``i`` of each then
    sits at byte ``i * itemsize`` of its data, and 16 bytes move at once.
    """
    shape = arrays[0].shape
    c_order = f_order = True
    for a in arrays:
        if not isinstance(a, cupy.ndarray) or a.shape != shape:
            return False
        if a.data.ptr % _ALIGNMENT:
            return False
        flags = a.flags
        c_order = c_order and flags.c_contiguous
        f_order = f_order and flags.f_contiguous
    return c_order or f_order


def _kernel_launch(
    operation: str,
    inputs: Sequence[Any],
    parameters: Sequence[Any],
    outputs: Sequence[Any],
    compute: np.dtype,
) -> tuple[str, Callable[[], None]]:
    """What to launch for ``operation``: (the kernel's name, its launch).

    The contiguous kernel where the arrays allow it, else the elementwise one.
    """
    arrays = (*inputs, *outputs)
    scalar_parameters = True
    for parameter in parameters:
        scalar_parameters = scalar_parameters and not isinstance(
            parameter, cupy.ndarray
        )
    if scalar_parameters and _contiguous_layout(arrays):
        found = _CONTIGUOUS_SPECS.get((operation, tuple(a.dtype for a in arrays)))
        if found is not None:
            spec, chunk = found
            size = outputs[0].size
            block_size, chunks_per_thread = _LAUNCH
            blocks = max(1, -(-(size // chunk) // (block_size * chunks_per_thread)))

            def launch_contiguous() -> None:
                _contiguous_kernel(spec, chunks_per_thread)(
                    (blocks,), (block_size,), (*arrays, np.int64(size), *parameters)
                )

            name = f"CUDA kernels for contiguous {spec.inputs[0]} arrays"
            return name, launch_contiguous
    if operation == "pullback" and not isinstance(inputs[0], cupy.ndarray):
        operation = "pullback_scalar"

    def launch_elementwise() -> None:
        _elementwise_kernel(operation, compute)(*inputs, *parameters, *outputs)

    return f"CUDA elementwise kernel {operation} ({compute})", launch_elementwise


def _device_usable() -> bool:
    """Whether the math can run on the current device after a kernel failed.

    Not while the current stream captures a CUDA graph, nor once the device
    holds an error of earlier work, which synchronising the stream reports
    (see :mod:`s2nn_xp._fused`).
    """
    stream = cupy.cuda.get_current_stream()
    try:
        if stream.is_capturing():  # raises for a capture CUDA invalidated
            return False
        stream.synchronize()
    except Exception:  # CUDA's error of earlier work, whichever type
        return False
    return True


def _launch(
    operation: str,
    inputs: Sequence[Any],
    parameters: Sequence[Any],
    outputs: Sequence[Any],
    compute: np.dtype,
) -> None:
    """Run ``operation`` from ``inputs`` and ``parameters`` into ``outputs``.

    ``inputs`` are ``x``, or for the pullback the cotangent (an array or a
    compute-dtype scalar) and the gradient; the outputs have ``x``'s shape.
    Where the kernel cannot be compiled or launched, the array-API math
    writes the same values (:func:`s2nn_xp._fused.launched`).
    """
    if outputs[0].size == 0:
        return
    kernel, launch = _kernel_launch(operation, inputs, parameters, outputs, compute)
    device = f"CUDA device {outputs[0].device.id}"
    if _fused.launched(kernel, device, launch, device_usable=_device_usable):
        return
    xp = _compat.array_namespace(outputs[0])
    values = [
        a.astype(compute, copy=False) if isinstance(a, cupy.ndarray) else a
        for a in inputs
    ]
    # The kernels' scalars (NumPy's, in the compute dtype) as Python numbers,
    # the same values: the math takes a NumPy scalar for an array otherwise,
    # which CuPy's functions refuse.
    scalars = [p.item() if isinstance(p, np.generic) else p for p in parameters]
    with _compat.quiet_floating_point(xp):
        results = _ARRAY_API_MATH[operation](xp, *values, *scalars)
    for out, result in zip(outputs, results, strict=True):
        out[...] = result


def _compute(
    operation: str,
    x: ArrayLike,
    arguments: dict[str, Parameter],
    out: Any,
    *,
    keep_gradient: bool = False,
) -> tuple[Any, ...]:
    """The skeleton of every function: check, allocate, launch ``operation``.

    ``arguments`` are the parameters the function takes, by name: all are
    checked, and those of the operation are passed to its kernel. With
    ``keep_gradient`` the second output (the gradient) is in the compute
    dtype, for the pullback to round once.
    """
    x, compute, result = _input(x)
    with x.device:
        checked = {
            name: _parameter(name, value, x, compute)
            for name, value in arguments.items()
        }
        parameters = tuple(
            checked[name] for name in _cupy_kernels.OPERATIONS[operation].parameters
        )
        dtypes = (result,) * _cupy_kernels.OPERATIONS[operation].outputs
        if keep_gradient:
            dtypes = (result, compute)
        outputs = _outputs(out, x, dtypes, (x, *parameters))
        _launch(operation, (x,), parameters, outputs, compute)
    return outputs


# --- Public functions --------------------------------------------------------


def forward(x: ArrayLike, *, out: Any | None = None) -> Any:
    """The spike, in one kernel launch: 1 where ``x >= 0``, 0 where ``x < 0``.

    Parameters
    ----------
    x : cupy.ndarray or array_like
        Membrane potential minus threshold: a CuPy array of any shape and
        layout; Python numbers and lists are copied to the current device.
    out : cupy.ndarray, optional
        Where to write the result: ``x``'s shape and (result) dtype, on its
        device; ``x`` itself computes in place. A new array by default.

    Returns
    -------
    cupy.ndarray
        1 where ``x >= 0`` (``-0.0`` included), 0 where ``x < 0``, NaN where
        `x` is NaN; `x`'s shape and dtype (float64 for integer input).

    Raises
    ------
    TypeError
        Input that is no CuPy array or number, complex input, or `out` of
        another type or dtype.
    ValueError
        `out` of another shape or device, partly overlapping `x`, or with
        elements that share memory (a broadcast view).

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> s2nn_cupy.forward(cupy.asarray([-1.0, -0.0, 0.5, cupy.nan]))
    array([ 0.,  1.,  1., nan])
    """
    (spike,) = _compute("forward", x, {}, out)
    return spike


def origin(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    out: Any | None = None,
) -> Any:
    """The smooth original function, in one kernel launch.

    The values of :func:`s2nn_xp.origin`.

    Parameters
    ----------
    x : cupy.ndarray or array_like
        Input, as for :func:`forward`.
    alpha, beta, epsilon : float or cupy.ndarray
        As for :func:`s2nn_xp.origin` (defaults 4, 1 and 1e-8); arrays are
        CuPy arrays on `x`'s device.
    out : cupy.ndarray, optional
        Where to write the result, as for :func:`forward`.

    Returns
    -------
    cupy.ndarray
        `x`'s shape and dtype; NaN for NaN, ``+inf`` for ``+inf`` and 0 for
        ``-inf``.

    Raises
    ------
    ValueError
        A parameter out of its range or not broadcasting to `x`, or a bad
        `out`; the message names the argument.
    TypeError
        Complex or non-numeric input or parameters, arrays of another library.

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> s2nn_cupy.origin(cupy.asarray([-1.0, 0.0, 1.0]))
    array([0.01798621, 0.50000001, 1.19314719])
    """
    arguments = {"alpha": alpha, "beta": beta, "epsilon": epsilon}
    (y,) = _compute("origin", x, arguments, out)
    return y


def gradient(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    *,
    out: Any | None = None,
) -> Any:
    """The surrogate gradient, in one kernel launch.

    The values of :func:`s2nn_xp.gradient`.

    Parameters
    ----------
    x, alpha, beta, out
        As for :func:`origin`.

    Returns
    -------
    cupy.ndarray
        `x`'s shape and dtype; finite and >= 0 for finite `x` (also at and
        below ``x = -1``; 0 where the sigmoid branch underflows), 0 at
        ``+-inf``, NaN for NaN; a float16 result is computed in float32 and
        rounded once, so that a value beyond float16's range is inf.

    Raises
    ------
    ValueError, TypeError
        As for :func:`origin`.

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> s2nn_cupy.gradient(cupy.asarray([-1.0, 0.0, 1.0]))
    array([0.07065082, 1.        , 0.5       ])
    """
    (grad,) = _compute("gradient", x, {"alpha": alpha, "beta": beta}, out)
    return grad


def forward_and_gradient(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    *,
    out: tuple[Any | None, Any | None] | None = None,
) -> tuple[Any, Any]:
    """The spike and the surrogate gradient, in one pass over `x`.

    Equal to ``(forward(x), gradient(x, alpha, beta))`` at the cost of one
    read of `x`.

    Parameters
    ----------
    x, alpha, beta
        As for :func:`origin`.
    out : pair of cupy.ndarray or None, optional
        Where to write the spike and the gradient; either may be None (a new
        array). The spike may be written into `x` itself.

    Returns
    -------
    spike, grad : cupy.ndarray
        `x`'s shape and dtype.

    Raises
    ------
    ValueError, TypeError
        As for :func:`origin`; also for overlapping `out` arrays.

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> spike, grad = s2nn_cupy.forward_and_gradient(cupy.asarray([-1.0, 1.0]))
    >>> spike, grad
    (array([0., 1.]), array([0.07065082, 0.5       ]))
    """
    arguments = {"alpha": alpha, "beta": beta}
    spike, grad = _compute("forward_and_gradient", x, arguments, out)
    return spike, grad


def s2nn(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
    out: Any | None = None,
) -> Any:
    """The spike function: :func:`forward`, or :func:`origin` when `origin`.

    CuPy has no autodiff, so there is no derivative to attach; use
    :func:`vjp` (or :func:`forward_and_gradient`) to train. The parameters are
    checked either way.

    Parameters
    ----------
    x, alpha, beta, epsilon, out
        As for :func:`origin`.
    origin : bool, default False
        Return the smooth origin function instead of the spike.

    Returns
    -------
    cupy.ndarray
        ``forward(x)``, or ``origin(x, alpha, beta, epsilon)``.

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> s2nn_cupy.s2nn(cupy.asarray([-0.5, 0.5]))
    array([0., 1.])
    """
    operation = "origin" if validate_flag("origin", origin) else "forward"
    arguments = {"alpha": alpha, "beta": beta, "epsilon": epsilon}
    (y,) = _compute(operation, x, arguments, out)
    return y


class _Pullback:
    """``pullback(cotangent, *, out=None) -> cotangent * gradient``, one launch.

    Holds the gradient computed by :func:`vjp` (in the compute dtype: float32
    for float16 input), so the result is rounded once to the result dtype.
    """

    __slots__ = ("_dtype", "_gradient")

    def __init__(self, gradient: Any, dtype: np.dtype) -> None:
        self._gradient = gradient
        self._dtype = dtype

    def _cotangent(self, cotangent: ArrayLike) -> Any:
        """A Python number as a compute-dtype scalar, or the checked array."""
        grad = self._gradient
        if type(cotangent) is float:  # the common case: no more lookups
            return _quietly_as(grad.dtype, cotangent)
        if not isinstance(cotangent, cupy.ndarray):
            # of a kind a cotangent may be, as every adapter's pullback takes
            # (a wrapper gives the array it stands for: asked again below)
            cotangent = cotangent_of_a_kind(cotangent)
        if not isinstance(cotangent, cupy.ndarray):
            if isinstance(cotangent, np.ma.MaskedArray):  # its mask, dropped
                raise masked_host_data("cotangent", "cupy")
            if _compat.is_array_api_obj(cotangent) and not _compat.is_numpy_array(
                cotangent
            ):
                raise mixed_libraries(grad, "cotangent", cotangent)
            # Checked as every library's host data is (a real dtype, no units
            # or labels, ints beyond int64 as floats), in float64 at most.
            host = host_floats("cotangent", cotangent)
            if host.ndim == 0:
                return _quietly_as(grad.dtype, host[()])
            cotangent = cupy.asarray(host)
        check_real_dtype("cotangent", np, cotangent.dtype)
        check_cotangent_shape(cotangent.shape, grad.shape)
        check_same_device("cotangent", cotangent.device.id, grad.device.id)
        return cotangent

    def __call__(self, cotangent: ArrayLike, *, out: Any | None = None) -> Any:
        """``cotangent * gradient(x, alpha, beta)`` in `x`'s dtype and shape.

        Parameters
        ----------
        cotangent : cupy.ndarray or float
            A CuPy array of a real dtype that broadcasts to `x`, or a number.
        out : cupy.ndarray, optional
            Where to write the result: `x`'s shape and result dtype; the
            cotangent itself computes in place.
        """
        grad = self._gradient
        with grad.device:
            cotangent = self._cotangent(cotangent)
            (out,) = _outputs(out, grad, (self._dtype,), (cotangent,))
            _launch("pullback", (cotangent, grad), (), (out,), grad.dtype)
        return out


def vjp(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
) -> tuple[Any, Any]:
    """The spike and its pullback: one launch now, one per pullback call.

    The first launch writes the spike (or the origin function) and the
    surrogate gradient, which the pullback keeps; calling the pullback
    multiplies a cotangent by it in one more launch. Memory: one array of `x`'s
    shape in the compute dtype, held by the pullback.

    Parameters
    ----------
    x, alpha, beta, epsilon
        As for :func:`origin`.
    origin : bool, default False
        Return :func:`origin` values instead of spikes.

    Returns
    -------
    y : cupy.ndarray
        ``forward(x)``, or ``origin(x, alpha, beta, epsilon)``.
    pullback : callable
        ``pullback(cotangent, *, out=None)`` returns ``cotangent *
        gradient(x, alpha, beta)`` in `x`'s shape and dtype, rounded once;
        `cotangent` is a CuPy array of a real dtype broadcasting to `x`, or a
        number. It does not read `x` again.

    Examples
    --------
    >>> import cupy
    >>> import s2nn_xp.cupy as s2nn_cupy
    >>> spikes, pullback = s2nn_cupy.vjp(cupy.asarray([-1.0, 0.0, 1.0]))
    >>> spikes
    array([0., 1., 1.])
    >>> pullback(cupy.asarray([1.0, 2.0, 2.0]))
    array([0.07065082, 2.        , 1.        ])
    """
    with_origin = validate_flag("origin", origin)
    operation = "origin_and_gradient" if with_origin else "forward_and_gradient"
    arguments = {"alpha": alpha, "beta": beta, "epsilon": epsilon}
    y, grad = _compute(operation, x, arguments, None, keep_gradient=True)
    return y, _Pullback(grad, y.dtype)
