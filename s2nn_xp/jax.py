"""JAX adapter: the S2NN spike with its surrogate derivatives in every transform.

:func:`s2nn` returns the spike (the Heaviside step), or with ``origin=True``
the smooth origin function, through a :func:`jax.custom_jvp` whose tangent is
the surrogate model (the docs' *Definition* page)::

    d s2nn = gradient(x) * dx + d origin / d alpha * dalpha
                              + d origin / d beta * dbeta

Every term comes from :mod:`s2nn_xp._math`; no formula is written here. The
parameter terms are ``_math.partials`` (``d origin / d alpha`` and
``d origin / d beta``, from the same pass as the gradient) times the
parameters' tangents, and derivatives of higher order are JAX's derivatives
of those formulas, whose guards are exact. Because the rule is a JVP, it
serves forward and reverse mode alike (``grad``, ``vjp``, ``jvp``,
``linearize``, ``hessian``), and ``vmap``, ``jit``, ``checkpoint`` and
``lax.scan`` see only ordinary JAX operations.
A call that is not differentiated computes the primal alone (the rule is
only traced under differentiation), and tangents that JAX knows to be zero
are skipped (symbolic zeros): differentiating in ``x`` alone computes no
parameter derivative.

Parameters are traced, never static. Each call runs one compiled function
(:func:`jax.jit`) to which Python-number parameters are passed as traced
scalars after they are checked in Python: changing ``alpha`` or ``beta``
between calls (a schedule, a hyper-parameter search, a learnable parameter
under the caller's ``jit``) reuses the compiled code instead of compiling
again, and the dtype of ``x`` decides the dtype of the computation, as a Python
number would. Array parameters (per-neuron values, learnable ones) may be
tracers and are differentiable; their derivatives are summed over the axes
they are broadcast along. Their values are not checked before the call (they
may be tracers): out of range (an optimizer's step to ``alpha <= 0``) the
values they enter are NaN at every element the parameter broadcasts to: the
origin function for each, the surrogate gradient and the parameter's own
gradient for ``alpha`` and ``beta`` (the spike stays the step), which
checkify's float checks and ``jax.debug_nans`` find (the user guide says
how, on each JAX). ``epsilon`` is a
constant: its derivative is 0.

This module is imported by :func:`s2nn_xp.s2nn` when a JAX array arrives;
``s2nn_xp.s2nn`` and :class:`s2nn_xp.S2NN` on JAX arrays call :func:`s2nn`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import _backends

try:
    import jax
except ImportError as exc:
    raise _backends.framework_import_error("jax", exc) from exc
else:  # too old a version is refused too
    _backends.check_framework_version("jax")

import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from . import _compat, _math
from ._adapter_docs import documented, listing
from ._api import ALPHA, BETA, EPSILON, Flag, Pullback
from ._validation import (
    BOUNDS,
    Prepared,
    check_arguments,
    host_input,
    ml_dtypes_kind,
    other_devices_error,
    prepare_cotangent,
    validate_flag,
)

__all__ = ["forward", "gradient", "origin", "s2nn", "vjp"]
__dir__ = listing(__all__)

# The parameters in the order the compiled functions take them.
_PARAMETERS = tuple(BOUNDS)  # alpha, beta, epsilon

ArrayLike = Any
"""A JAX or NumPy array, or a Python number or (nested) list of numbers."""
Parameter = Any
"""A positive Python number, or an array broadcasting to ``x`` (per neuron)."""


_Function = TypeVar("_Function", bound=Callable[..., Any])


def _shown_as(name: str) -> Callable[[_Function], _Function]:
    """Give a function the name JAX shows for it (jaxprs, HLO, profiles).

    Its own name is private (``_compiled``), which says nothing in a
    user's profile or ``jax.make_jaxpr``; this says it is s2nn_xp's.
    """

    def rename(function: _Function) -> _Function:
        function.__name__ = function.__qualname__ = name
        return function

    return rename


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
@_shown_as("s2nn_xp_surrogate")
def _surrogate(
    x: jax.Array,
    alpha: jax.Array,
    beta: jax.Array,
    epsilon: jax.Array,
    with_origin: bool,
) -> jax.Array:
    """The primal: the spike, or the origin function; all in the compute dtype."""
    if with_origin:
        y = _math.origin(jnp, x, alpha, beta, epsilon, in_place=False)
    else:
        y = _math.forward(jnp, x, in_place=False)
    return _typed_as_all(y, alpha, beta, epsilon)


def _typed_as_all(y: jax.Array, *params: jax.Array) -> jax.Array:
    """``y`` plus zeros of each parameter: typed as a function of them all.

    Under explicit sharding, and inside ``shard_map``, JAX's type of an
    array holds its sharding (or the mesh axes it varies along), and an
    elementwise operation of two arrays takes both. The spike reads ``x``
    alone, its tangent the parameters too (the origin function's reads
    ``epsilon`` where the gradient does not), and JAX refuses a JVP rule
    whose tangent's type is not its primal's: a per-neuron ``alpha`` split
    over another mesh axis than ``x`` failed every derivative. A parameter
    whose sharding cannot meet ``x``'s (split over a mesh axis that ``x``
    uses for another dimension) is left out: the spike's value needs none
    of its values, and computes as before; derivatives, which do, fail
    there, as ``gradient`` does. The sum is exact: no value of the spike,
    the origin function or a tangent is changed by adding +0.0 but -0.0,
    and under ``jit`` (every call here is compiled) XLA folds the additions
    of zeros away, so not even that; under ``jax.disable_jit()`` a tangent
    of -0.0 comes out +0.0.
    """
    for p in params:
        with contextlib.suppress(*_SHARDING_TYPE_ERRORS):
            y = y + jnp.zeros_like(p)
    return y


# JAX's refusal of an operation of arrays whose shardings cannot meet (its
# class is not public); none where a JAX has no sharding in its types.
def _sharding_type_errors() -> tuple[type[Exception], ...]:
    try:
        from jax._src.core import ShardingTypeError
    except ImportError:
        return ()
    return (ShardingTypeError,)


_SHARDING_TYPE_ERRORS = _sharding_type_errors()


def _is_zero(tangent: Any) -> bool:
    return type(tangent) is SymbolicZero


def _surrogate_jvp(
    with_origin: bool, primals: tuple[Any, ...], tangents: tuple[Any, ...]
) -> tuple[jax.Array, jax.Array]:
    """The surrogate model's tangent; ``epsilon``'s tangent is ignored."""
    x, alpha, beta, epsilon = primals
    x_dot, alpha_dot, beta_dot, _ = tangents
    # The primal output goes through the custom rule again, so that derivatives
    # of the tangent below (second order and up) see the surrogate as well.
    y = _surrogate(x, alpha, beta, epsilon, with_origin)
    moving = {
        name: dot
        for name, dot in (("x", x_dot), ("alpha", alpha_dot), ("beta", beta_dot))
        if not _is_zero(dot)
    }
    terms = []
    if set(moving) == {"x"}:  # the common case: the gradient alone
        terms.append(_math.gradient(jnp, x, alpha, beta, in_place=False) * x_dot)
    elif moving:  # parameters move: all partials from one pass
        partials = _math.partials(jnp, x, alpha, beta, epsilon, in_place=False)
        # Computed once, not once per output: XLA would fuse the partials
        # into each consumer (the x term and each parameter's sum over the
        # broadcast axes), repeating exp and log1p in every one.
        if _barrier_transforms():
            partials = jax.lax.optimization_barrier(partials)
        partial = dict(zip(("x", "alpha", "beta"), partials, strict=True))
        for name, dot in moving.items():
            # A parameter's tangent broadcasts over x, so that its transpose
            # (the cotangent) sums over the batch, pairwise or by XLA's
            # reduction (_spread), to a few ulp; not as a product with ones,
            # faster on JAX 0.10's CPU but summed in order there: float32
            # 250 ulp off over 2^20 rows.
            terms.append(partial[name] * _spread(dot, x.shape))
    if not terms:
        return y, jnp.zeros_like(y)
    # Typed as the value is, by zeros of each parameter (a gradient reads no
    # epsilon, which a value may be split along); not zeros of the value's
    # shape, which a linearization kept as a residual as large as x (a pass
    # over it too) wherever the backward was not compiled with the forward.
    return y, _typed_as_all(functools.reduce(jnp.add, terms), alpha, beta, epsilon)


_surrogate.defjvp(_surrogate_jvp, symbolic_zeros=True)


# Where a parameter's cotangent is summed pairwise (_spread): a parameter of
# at least _PAIRWISE_KEPT values (its size, not a row's: a per-channel one
# of fewer channels is not) over a batch of 2 to this many rows; outside, where
# XLA's reduction was as fast (or the pairwise sum slower: 4,096 rows and
# more), XLA's reduction. Measured, not derived.
_PAIRWISE_ROWS = 2048
_PAIRWISE_KEPT = 1024
# Rows summed in one stage of the pairwise sum: a fusion XLA keeps whole.
_STAGE_ROWS = 16
# Batches of these rows are repeated to a stage's rows and sliced (whose
# transpose pads the cotangent with rows of zeros): as pieces of 8 and 4
# rows and more they took 4-7 times as long as 16 rows on JAX 0.10's CPU
# (longer than XLA's reduction; 9 to 11 rows did not). Measured.
_PADDED_ROWS = range(12, _STAGE_ROWS)


def _spread(tangent: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """A parameter's ``tangent``, repeated along ``shape``'s leading batch axes.

    The leading axes where the parameter has size 1 (its neurons being the
    rest) repeated by concatenation, so that the transpose, the sum of the
    cotangent over the batch, is a pairwise sum of slices, which XLA fuses
    with the partials that it sums. XLA's CPU reduction over a leading axis
    computing those in it took 2-40 times as long as the slices at 8 to
    2,048 rows of 4,096 to 2^17 values (JAX 0.10 and 0.4.35), the whole
    backward of 64 x 2^18 values 430 ms against 160 ms. Only on a single
    CPU device: a batch split over devices would have its slices cross
    them (XLA's reduction sums each device's share first), and other
    devices' reductions were not measured so. Elsewhere the tangent as it
    is, broadcast, summed by XLA's reduction; the values to a few ulp
    either way (tested against float64 sums).
    """
    if tangent.ndim != len(shape) or not _sums_pairwise():
        return tangent  # a number's (0-d): XLA's reduction of all of it
    if not all(isinstance(size, int) for size in (*shape, *tangent.shape)):
        return tangent  # a symbolic size (jax.export): no count to repeat
    leading = 0
    while leading < len(shape) - 1 and tangent.shape[leading] == 1:
        leading += 1
    rows = math.prod(shape[:leading])
    kept = math.prod(tangent.shape[leading:])
    if not 1 < rows <= _PAIRWISE_ROWS or kept < _PAIRWISE_KEPT:
        return tangent
    tiled = _tiled(tangent.reshape((1, kept)), rows)
    return tiled.reshape(shape[:leading] + tangent.shape[leading:])


def _sums_pairwise() -> bool:
    """Whether this JAX computes on one CPU device (:func:`_spread`)."""
    return jax.default_backend() == "cpu" and jax.device_count() == 1


def _tiled(row: jax.Array, rows: int) -> jax.Array:
    """``row`` (of shape ``(1, n)``) ``rows`` times: ``(rows, n)``.

    By doubling concatenations, whose transpose adds halves: in stages of
    up to :data:`_STAGE_ROWS` rows, each summing groups of the one before.
    """
    if rows in _PADDED_ROWS:
        return _doubled(row, _STAGE_ROWS, 0)[:rows]
    if rows <= _STAGE_ROWS:
        return _doubled(row, rows, 0)
    groups, rest = divmod(rows, _STAGE_ROWS)
    grouped = _doubled(_tiled(row, groups).reshape((groups, 1, -1)), _STAGE_ROWS, 1)
    tiled = grouped.reshape((groups * _STAGE_ROWS, -1))
    return jnp.concatenate([tiled, _doubled(row, rest, 0)]) if rest else tiled


def _doubled(block: jax.Array, times: int, axis: int) -> jax.Array:
    """``block`` (of size 1 along ``axis``) ``times`` times along ``axis``."""
    pieces = []
    while True:
        if times & 1:
            pieces.append(block)
        times >>= 1
        if not times:
            break
        block = jnp.concatenate([block, block], axis=axis)
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces[::-1], axis=axis)


@functools.cache
def _barrier_transforms() -> bool:
    """Whether this JAX batches and differentiates ``optimization_barrier``.

    Older JAX (0.4.35, the oldest the package takes) has no rules for it:
    ``vmap`` and second derivatives of a call with moving parameters raised
    NotImplementedError. There the partials go without the barrier (the same
    values, computed again where XLA fuses them). Asked of JAX once, in a
    trace of its own (the caller may be tracing).
    """
    probe = np.zeros(1, np.float32)
    try:
        jax.make_jaxpr(
            lambda v: jax.jvp(jax.vmap(jax.lax.optimization_barrier), (v,), (v,))
        )(probe)
    except NotImplementedError:
        return False
    return True


def _parameter(name: str, value: Any, x: jax.Array, compute_dtype: Any) -> jax.Array:
    """A parameter in the compute dtype, with as many axes as ``x``; NaN out of range.

    Leading axes of size 1, so that the math broadcasts arrays of one rank:
    under ``jax.numpy_rank_promotion("raise")`` (a user's setting) JAX
    refuses to broadcast ``(3,)`` against ``(4, 3)``, and under ``"warn"``
    it warns. A JAX array's values are not checked before the call (they
    may be traced; so are an object's numbers that ``jit`` traces): out of
    the parameter's range in the compute dtype (an optimizer's step to
    ``alpha <= 0``) the math gave finite values of no formula (``alpha <=
    0`` breaks the sigmoid branch's guard: a constant gradient ``alpha /
    4``), silently. NaN instead, which checkify's float checks and
    ``jax.debug_nans`` find: a few operations on each parameter's values,
    computed with the rest; values in range come through unchanged (times
    1).
    """
    value = jnp.asarray(value, dtype=compute_dtype)
    lower, inclusive = BOUNDS[name]
    # alpha and beta: subnormal values too, which XLA computes as 0 (a
    # number is refused there, as the Definition says)
    least = lower if inclusive else jnp.finfo(compute_dtype).tiny
    above = value >= least
    in_range = above & jnp.isfinite(value)
    # 1, or the square root of -1: no NaN or inf written as a constant,
    # which jax_debug_nans and jax_debug_infs, run op by op
    # (jax.disable_jit), took for a NaN of every call. A factor, not a
    # select, whose transpose gave the values out of range a gradient of 0:
    # alpha's and beta's own gradients are NaN too (beta's partial,
    # log1p(x + epsilon), does not read beta). lax's select: jnp.where
    # shows in jaxprs as a function of its own.
    ones = jnp.ones_like(value)
    factor = jnp.sqrt(jax.lax.select(in_range, ones, -ones))
    value = value * factor
    if 0 < value.ndim < x.ndim:
        value = value.reshape((1,) * (x.ndim - value.ndim) + value.shape)
    return value


@functools.partial(jax.jit, static_argnames=("with_origin", "compute_dtype"))
@_shown_as("s2nn_xp_s2nn")
def _compiled(
    x: jax.Array,
    alpha: Any,
    beta: Any,
    epsilon: Any,
    *,
    with_origin: bool,
    compute_dtype: Any,
) -> jax.Array:
    """Casts to the compute dtype, the custom-JVP call and the rounding, as one."""
    result_dtype = x.dtype
    alpha, beta, epsilon = (
        _parameter(name, p, x, compute_dtype)
        for name, p in zip(_PARAMETERS, (alpha, beta, epsilon), strict=True)
    )
    result = _surrogate(x.astype(compute_dtype), alpha, beta, epsilon, with_origin)
    return _typed_as(result, x, result_dtype)


def _typed_as(result: jax.Array, x: jax.Array, dtype: Any) -> jax.Array:
    """``result`` in ``dtype``, weakly typed where ``x`` is, as JAX's own are.

    A weakly typed ``x`` (a Python number traced by ``jit``,
    ``jnp.asarray(0.5)``) gives ``jnp.tanh`` a weakly typed result, which
    takes the dtype of an array it meets (bfloat16 stays bfloat16); a
    strongly typed one made it float32. JAX's cast that keeps the weak
    type is private: without it (another JAX), results are strong.
    """
    if _weak_cast is not None and x.weak_type:
        return _weak_cast(result, dtype, weak_type=True)
    return result.astype(dtype)


def _weak_cast_of_jax() -> Callable[..., jax.Array] | None:
    """JAX's cast that can keep a weak type (private), or None without it."""
    try:
        from jax._src.lax.lax import _convert_element_type
    except ImportError:  # pragma: no cover - a JAX without it: strong results
        return None
    return _convert_element_type


_weak_cast = _weak_cast_of_jax()


def s2nn(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
) -> jax.Array:
    """The S2NN spike function for JAX, differentiable by its surrogate model.

    The value is the spike (or the smooth origin function); every derivative
    of every order, in forward and reverse mode and in ``x``, ``alpha`` and
    ``beta``, is that of the surrogate model: ``d/dx`` is
    :func:`s2nn_xp.gradient`, ``d/d alpha`` and ``d/d beta`` are those of
    :func:`s2nn_xp.origin`, and ``d^2/dx^2`` is the derivative of the gradient.

    Parameters
    ----------
    x : array_like
        Membrane potential minus threshold: a JAX array (or tracer), or
        NumPy / Python input, which becomes a JAX array. float16 and bfloat16
        are computed in float32 and rounded once; integer and bool input is
        promoted to JAX's default floating dtype; complex input raises, and
        so does an array of another library (a tensor: :func:`s2nn_xp.s2nn`
        computes in any array's own library).
    alpha : float or array, default 4.0
        Steepness of the sigmoid branch (``x < 0``). A Python number must be
        finite and > 0; an array (per-neuron values, or a learnable
        parameter) must broadcast to `x` and may be a tracer.
    beta : float or array, default 1.0
        Scale of the logarithmic branch (``x >= 0``), as `alpha`.
    epsilon : float or array, default 1e-8
        Offset inside the logarithm of the origin function; finite and >= 0.
        A constant: nothing is differentiated with respect to it.
    origin : bool, default False
        Return the smooth origin function instead of the spike; the
        derivatives stay those of the surrogate model.

    Returns
    -------
    jax.Array
        1 where ``x >= 0`` (``-0.0`` too), 0 where ``x < 0``, NaN for NaN (or
        the origin function's values); `x`'s shape and dtype, and its
        sharding where array parameters are replicated or split as `x` is
        (else that of an elementwise operation of them all, as JAX gives).

    Raises
    ------
    ValueError
        A Python-number parameter out of its range, or an array parameter
        that does not broadcast to `x`; the message names the parameter.
    TypeError
        Complex or non-numeric `x` or parameters, or a non-bool `origin`.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from s2nn_xp.jax import s2nn
    >>> x = jnp.array([-1.0, 0.0, 1.0], dtype=jnp.float32)
    >>> s2nn(x)
    Array([0., 1., 1.], dtype=float32)
    >>> jax.grad(lambda x: s2nn(x).sum())(x)
    Array([0.0706508..., 1.        , 0.5       ], dtype=float32)

    A learnable, per-neuron ``beta``:

    >>> beta = jnp.array([1.0, 2.0, 3.0], dtype=jnp.float32)
    >>> jax.grad(lambda beta: s2nn(x + 1.0, beta=beta).sum())(beta)
    Array([9.9999999e-09, 6.9314718e-01, 1.0986123e+00], dtype=float32)
    """
    origin = validate_flag("origin", origin)
    x, compute_dtype, params = _arguments(x, alpha=alpha, beta=beta, epsilon=epsilon)
    _refuse_taylor_mode(x, params)
    return _call(
        _compiled,
        x,
        params,
        x,
        **params,
        with_origin=origin,
        compute_dtype=compute_dtype,
    )


def _refuse_taylor_mode(x: jax.Array, params: dict[str, Any]) -> None:
    """NotImplementedError where ``jax.experimental.jet`` traces the spike.

    Taylor mode takes no ``custom_jvp`` rule: JAX 0.4.35's differentiates
    the step itself, whose every coefficient is 0 (silently), JAX 0.10's
    raises an UnexpectedTracerError that names no cause. A jet of a
    function that compiles the spike inside (``jet(jit(f))``) reaches here
    with jit's tracers, and is not told.
    """
    jet = sys.modules.get("jax.experimental.jet")
    tracer = getattr(jet, "JetTracer", None)
    if tracer is None:
        return
    if any(_traced_by(tracer, v) for v in (x, *params.values())):
        msg = (
            "jax.experimental.jet (Taylor mode) takes no custom_jvp rule, so "
            "it cannot see the surrogate derivatives (it would differentiate "
            "the step: zeros); nest jax.jvp or jax.jacfwd for higher orders"
        )
        raise NotImplementedError(msg)


def _traced_by(tracer: type, value: Any) -> bool:
    """Whether ``value`` is a ``tracer``, or holds one inside other tracers.

    The tracers of transforms within the tracer's (``jet(vmap(f))``: a
    batch tracer of a jet tracer).
    """
    for _ in range(64):  # a chain of nested transforms, never a cycle
        if isinstance(value, tracer):
            return True
        # jvp's and linearize's tracers hold a primal, vmap's a val. Each
        # asked, taken where it is a tracer: JAX 0.4.35's tracers answer
        # any attribute from their abstract value (a jvp tracer's "val"
        # is an array there).
        inner = [
            held
            for held in (getattr(value, "primal", None), getattr(value, "val", None))
            if isinstance(held, jax.core.Tracer)
        ]
        if not inner:
            return False
        value = inner[0]
    return False


def _arguments(x: ArrayLike, **params: Any) -> tuple[jax.Array, Any, dict[str, Any]]:
    """``x`` (promoted) and its parameters checked, outside the compiled code."""
    # A Python number is weakly typed, as JAX's functions take it (_typed_as).
    weak = type(x) in (int, float)
    if not isinstance(x, jax.Array):
        x = host_input(x, "jax.numpy", promote_integers=True)
    if not isinstance(x, jax.Array):  # not a wrapper of one (brainpy's Array)
        x = _from_numpy(x)
        if weak and _weak_cast is not None:
            x = _weak_cast(x, x.dtype, weak_type=True)
    # Only 64-bit dtypes change (the test is a call); JAX's extended dtypes
    # (PRNG keys), no NumPy dtypes, are refused by check_arguments.
    if isinstance(x.dtype, np.dtype) and x.dtype.itemsize == 8:
        _check_x64(x)
    compute_dtype, result_dtype, params = check_arguments(jnp, x, params)
    if x.dtype != result_dtype:  # integers and bools: promoted first
        x = _typed_as(x, x, result_dtype)
    return x, compute_dtype, params


def _check_x64(x: jax.Array) -> None:
    """Refuse a 64-bit ``x`` made while ``jax_enable_x64`` was on, used with it off.

    JAX computes such an array in 32 bits (with a warning of its own),
    where the parameters were checked against its 64-bit dtype: a number
    that overflows float32 gave NaN everywhere, one that is subnormal there
    was flushed to 0, and the result was not of ``x``'s dtype.
    """
    canonical = jax.dtypes.canonicalize_dtype(x.dtype)
    if canonical != x.dtype:
        msg = (
            f"x is a JAX array of {x.dtype}, which JAX computes in {canonical} now "
            "that jax_enable_x64 is off (it was made while it was on): cast it "
            f"(x.astype(jnp.{canonical})) or turn jax_enable_x64 on"
        )
        raise TypeError(msg)


def _call(
    compiled: Callable[..., jax.Array],
    x: jax.Array,
    arrays: dict[str, Any],
    *args: Any,
    **kwargs: Any,
) -> jax.Array:
    """``compiled(*args, **kwargs)``; JAX's refusal of devices naming ``arrays``.

    :func:`check_arguments` compares the devices of concrete arrays with
    ``x``'s before a call; a tracer of a transform outside ``jit`` (``grad``,
    ``jvp``, ``vmap``) shows none, and JAX's compiled function refuses the
    arrays instead (or, on meshes with explicit axes, their meshes), naming
    that function's arguments, or none, and not the user's.
    ``arrays`` are the arrays it is given besides ``x``, by name; the error
    names those of them that may be elsewhere (:func:`_may_be_elsewhere`),
    and JAX's stands where none may be (a tangent of ``x`` elsewhere, a
    context mesh of other devices than ``x``'s).
    """
    try:
        return compiled(*args, **kwargs)
    except ValueError as error:
        message = str(error)
        if _DEVICES_REFUSED not in message and _MESHES_REFUSED not in message:
            raise
        x_devices = _compat.committed_devices(x)
        if _CONTEXT_MESH in message and (
            x_devices is None or [d.id for d in x_devices] != _mesh_ids(message)
        ):
            # x itself may be off the mesh, or on its devices in another
            # order: no argument moved to x's helps
            raise
        x_placed = x_devices is not None
        names = [
            name
            for name, value in arrays.items()
            if _may_be_elsewhere(value, x_placed=x_placed)
        ]
        # Refused as typed with other meshes (other devices, axis names or
        # types), not as on other devices
        meshes = _DEVICES_REFUSED not in message
        if not names:
            raise
        traced = _compat.is_jax_tracer(x) or any(
            _compat.is_jax_tracer(value) for value in arrays.values()
        )
        raise other_devices_error(names, traced=traced, meshes=meshes) from error


def _may_be_elsewhere(value: Any, *, x_placed: bool) -> bool:
    """Whether JAX may have refused ``value`` as on another device.

    A tracer, whose device is not known here; or an array committed to a
    device where ``x`` is not a concrete committed array (a tracer, or an
    array that JAX moves): compared with a concrete committed ``x``, it was
    checked already. Host data, numbers and uncommitted arrays JAX moves to
    where they are needed: never.
    """
    if _compat.is_jax_tracer(value):
        return True
    return not x_placed and _compat.committed_devices(value) is not None


def _mesh_ids(message: str) -> list[int] | None:
    """The ids of the context mesh's devices that JAX's refusal names, or None.

    In the mesh's order, which JAX compares (:func:`_compat.committed_devices`
    gives ``x``'s so). Read from its words: under a transform, where the call
    runs, JAX gives no concrete context mesh (``jax.sharding.get_mesh``
    raises there).
    """
    found = _MESH_IDS.search(message)
    return None if found is None else [int(i) for i in found[1].split(",")]


_MESH_IDS = re.compile(r"context mesh with device ids \[([\d, ]+)\]")


# Words of JAX's error for a compiled function's arguments committed to
# different devices (its "Received incompatible devices for jitted
# computation").
_DEVICES_REFUSED = "incompatible devices"
# ... and of its refusal, under a transform, of arrays typed with other meshes
# (explicit sharding: a parameter on a mesh of other devices than x's).
_MESHES_REFUSED = "Mesh for all inputs should be equal"
# ... and of one about the devices of the caller's context mesh (set_mesh),
# which no argument moved to x's device satisfies unless x is on the mesh.
_CONTEXT_MESH = "context mesh"


def _from_numpy(values: Any) -> jax.Array:
    """Host data as a JAX array; an ml_dtypes float XLA cannot hold, in float32.

    JAX names every ml_dtypes float, but XLA's CPU backend holds no float6
    (an XLA error at transfer) and its GPU backend compiles no cast of one
    (an XLA error at the call, on an H200 with JAX 0.11), and older JAX
    (0.4.35) takes no float4 (a TypeError): those go through float32, which
    holds each of their values, and stay float32, as in the PyTorch adapter.
    """
    float6 = values.dtype.name.startswith("float6")  # on every device alike
    if float6 and ml_dtypes_kind(values.dtype) == "floating":
        return jnp.asarray(values.astype("float32"))
    try:
        # Quietly, as for parameters: without x64 a float64 value beyond
        # float32's range becomes inf there, as the math rounds, not a
        # warning or, under np.errstate(all="raise"), an error.
        with np.errstate(over="ignore", under="ignore"):
            return jnp.asarray(values)
    except (jax.errors.JaxRuntimeError, TypeError):
        if ml_dtypes_kind(values.dtype) != "floating":
            raise
        return jnp.asarray(values.astype("float32"))


# The other public functions of s2nn_xp for JAX arrays: each one compiled
# computation (casts, math, rounding), with parameters traced as in s2nn.


@functools.partial(jax.jit, static_argnames=("function", "compute_dtype"))
@_shown_as("s2nn_xp_math")
def _compiled_math(
    x: jax.Array, *params: Any, function: str, compute_dtype: Any
) -> jax.Array:
    """``_math.<function>`` of ``x`` in the compute dtype, rounded once."""
    # alpha and beta (gradient), and epsilon (origin), in that order
    params = tuple(
        _parameter(name, p, x, compute_dtype)
        for name, p in zip(_PARAMETERS, params, strict=False)
    )
    compute = getattr(_math, function)
    result = compute(jnp, x.astype(compute_dtype), *params, in_place=False)
    return _typed_as(result, x, x.dtype)


@functools.partial(jax.jit, static_argnames=("compute_dtype",))
@_shown_as("s2nn_xp_pullback")
def _compiled_pullback(
    cotangent: jax.Array, x: jax.Array, alpha: Any, beta: Any, *, compute_dtype: Any
) -> jax.Array:
    """``cotangent * gradient(x)`` in the compute dtype, rounded once."""
    alpha = _parameter("alpha", alpha, x, compute_dtype)
    beta = _parameter("beta", beta, x, compute_dtype)
    grad = _math.gradient(jnp, x.astype(compute_dtype), alpha, beta, in_place=False)
    # Broadcast explicitly: a user's numpy_rank_promotion("raise") refuses
    # an implicit (3,) against (4, 3).
    cotangent = jnp.broadcast_to(cotangent.astype(compute_dtype), x.shape)
    return _typed_as(grad * cotangent, x, x.dtype)


_FORWARD_EXAMPLES = """\
    >>> import jax.numpy as jnp
    >>> import s2nn_xp.jax
    >>> s2nn_xp.jax.forward(jnp.array([-1.0, -0.0, 2.0]))
    Array([0., 1., 1.], dtype=float32)
"""


@documented("jax.Array", _FORWARD_EXAMPLES)
def forward(x: ArrayLike) -> jax.Array:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, compute_dtype, _ = _arguments(x)
    return _compiled_math(x, function="forward", compute_dtype=compute_dtype)


_ORIGIN_EXAMPLES = """\
    >>> import jax.numpy as jnp
    >>> import s2nn_xp.jax
    >>> s2nn_xp.jax.origin(jnp.array([-1.0, 0.0, 1.0]))
    Array([0.01798621, 0.5       , 1.1931472 ], dtype=float32)
"""


@documented("jax.Array", _ORIGIN_EXAMPLES)
def origin(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
) -> jax.Array:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, compute_dtype, p = _arguments(x, alpha=alpha, beta=beta, epsilon=epsilon)
    # epsilon is a constant (the Definition), as in s2nn and in PyTorch
    epsilon = p["epsilon"]
    if isinstance(epsilon, jax.Array):
        epsilon = _compat.without_derivative(jnp, epsilon)
    return _call(
        _compiled_math,
        x,
        p,
        x,
        p["alpha"],
        p["beta"],
        epsilon,
        function="origin",
        compute_dtype=compute_dtype,
    )


_GRADIENT_EXAMPLES = """\
    >>> import jax.numpy as jnp
    >>> import s2nn_xp.jax
    >>> s2nn_xp.jax.gradient(jnp.array([-1.0, 0.0, 1.0]))
    Array([0.0706508..., 1.        , 0.5       ], dtype=float32)
"""


@documented("jax.Array", _GRADIENT_EXAMPLES)
def gradient(
    x: ArrayLike, alpha: Parameter = ALPHA, beta: Parameter = BETA
) -> jax.Array:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, compute_dtype, p = _arguments(x, alpha=alpha, beta=beta)
    return _call(
        _compiled_math,
        x,
        p,
        x,
        p["alpha"],
        p["beta"],
        function="gradient",
        compute_dtype=compute_dtype,
    )


# The end of vjp's note on its pullback.
_PULLBACK = """traceable by JAX's transforms."""
_VJP_EXAMPLES = """\
    >>> import jax.numpy as jnp
    >>> import s2nn_xp.jax
    >>> y, pullback = s2nn_xp.jax.vjp(jnp.array([-1.0, 0.0, 1.0]))
    >>> y
    Array([0., 1., 1.], dtype=float32)
    >>> pullback(jnp.array([1.0, 2.0, 2.0]))
    Array([0.0706508..., 2.        , 1.        ], dtype=float32)
"""


@documented("jax.Array", _VJP_EXAMPLES, _PULLBACK)
def vjp(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
) -> tuple[jax.Array, Pullback[jax.Array]]:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    with_origin = validate_flag("origin", origin)
    x, compute_dtype, p = _arguments(x, alpha=alpha, beta=beta, epsilon=epsilon)
    _refuse_taylor_mode(x, p)
    y = _call(
        _compiled, x, p, x, **p, with_origin=with_origin, compute_dtype=compute_dtype
    )
    prepared = Prepared(xp=jnp, x=x, dtype=x.dtype, params=p)

    def pullback(cotangent: Any) -> jax.Array:
        cotangent = prepare_cotangent(prepared, cotangent)
        return _call(
            _compiled_pullback,
            x,
            {"cotangent": cotangent, "alpha": p["alpha"], "beta": p["beta"]},
            cotangent,
            x,
            p["alpha"],
            p["beta"],
            compute_dtype=compute_dtype,
        )

    return y, pullback
