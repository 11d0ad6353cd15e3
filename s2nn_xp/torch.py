"""PyTorch adapter: the S2NN spike with its surrogate derivatives in every transform.

:func:`s2nn` returns the spike (the Heaviside step), or with ``origin=True``
the smooth origin function, through a :class:`torch.autograd.Function` whose
derivatives are those of the surrogate model (the docs' *Definition* page)::

    d s2nn = gradient(x) * dx + d origin / d alpha * dalpha
                              + d origin / d beta * dbeta

Every term comes from :mod:`s2nn_xp._math`; no formula is written here:

* the ``x`` term is ``_math.gradient`` times the cotangent (reverse mode) or
  the tangent (forward mode);
* the parameter terms are ``_math.partials`` (``d origin / d alpha`` and
  ``d origin / d beta``, in the same pass as the gradient) times the
  cotangent, summed over the axes the parameters are broadcast along (at
  first order, the eager kernel's restatement of them);
* derivatives of higher order are PyTorch's derivatives of those ordinary
  operations, whose guards are exact (``create_graph=True``, ``hessian``).

The function supports ``backward()``, :func:`torch.autograd.grad` (double
backward included), :func:`torch.autograd.gradcheck` in origin mode (the
spike's finite differences are 0 where its surrogate gradient is not: a
surrogate fails gradcheck by design), and the
:mod:`torch.func` transforms ``grad``, ``vjp``, ``jvp``, ``vmap``, ``jacrev``,
``jacfwd`` and ``hessian``; not forward mode nested in forward mode
(``jacfwd(jacfwd(f))``), whose second and higher derivatives PyTorch gives
as 0 for every ``autograd.Function`` (pytorch/pytorch#197867). Under
:func:`torch.compile` it traces into the graph with no graph break: Dynamo
refuses an ``autograd.Function`` with a custom forward-mode rule, so while
compiling the same function is applied through a subclass that has none
(forward-mode AD is not compiled anyway).
Python-number parameters enter the traced graph as 0-d tensors, so that a
number that changes between calls (which Dynamo makes symbolic) traces too.

The backward keeps exactly one tensor of ``x``'s size, ``x`` itself (in its
own dtype), plus any tensor parameters; the gradient is computed only in the
backward, so a call that is not differentiated computes the forward alone.
16-bit inputs are computed in float32 and rounded once.

Fast paths, used only where no autodiff system records the operations (a
plain forward, a first-order backward):

* CUDA tensors in eager mode run the forward and the backward as one fused
  Triton kernel each (:mod:`s2nn_xp._triton`) where Triton is installed:
  with Python-number parameters, and with tensor parameters per neuron or
  of one element (the spike, and the backward's three cotangents; the
  origin function with tensor parameters takes the torch path); under
  :func:`torch.compile` the pure torch operations are traced instead, so
  that Inductor fuses them with their neighbours.
* Elsewhere the eager kernels of :mod:`s2nn_xp._torch_eager` (``_math``'s
  values in fewer operations or fewer fresh tensors, tested against it)
  compute the gradient and the origin function, and with tensor parameters
  all three cotangents in one pass.
* Large CPU tensors are computed block by block (contiguous ones; with
  learnable parameters, any layout, a few rows or columns at a time), so that
  the temporaries stay in the processor's cache; one set of temporaries
  serves every block, and each thread keeps its set for its next call (a few
  MiB a compute dtype), which fresh memory would cost page faults; inputs of
  up to a block take the kept set too, from half a MiB on.

This module is imported by :func:`s2nn_xp.s2nn` when a tensor arrives;
``s2nn_xp.s2nn`` and :class:`s2nn_xp.S2NN` on tensors call :func:`s2nn`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import numbers
import sys
import warnings
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    Literal,
    Protocol,
    TypeAlias,
    TypeVar,
    cast,
    overload,
)

from . import _backends

try:
    import torch
except ImportError as exc:
    raise _backends.framework_import_error("torch", exc) from exc
else:  # too old a version is refused too
    _backends.check_framework_version("torch")

import numpy as np
import torch.autograd.forward_ad
from torch import nn
from torch.nn.utils import parametrize
from torch.overrides import handle_torch_function, has_torch_function
from typing_extensions import Self
from typing_extensions import TypeVar as TypeVar_

from . import _compat, _math, _torch_eager
from ._adapter_docs import documented, listing
from ._api import ALPHA, BETA, EPSILON, Flag, Pullback
from ._fused import stacklevel_of_the_user
from ._temporaries import Kept
from ._torch_eager import in_dtype as _in_dtype
from ._validation import (
    EPSILON_IS_CONSTANT,
    Prepared,
    above_lower_bound,
    bound_error,
    check_broadcast,
    check_cotangent_shape,
    check_number,
    check_parameter,
    check_representable,
    check_same_device,
    checked_number,
    describe,
    host_input,
    input_dtypes,
    may_be_zero,
    ml_dtypes_kind,
    overflow_limit,
    prepare_cotangent,
    real_dtype_error,
    tell_epsilon_is_constant,
    validate_flag,
    validate_parameter,
)

__all__ = ["S2NN", "forward", "gradient", "origin", "s2nn", "vjp"]
__dir__ = listing(__all__)

# array-api-compat's namespace of tensors, for the shared checks.
_xp = _compat.compat_namespace("torch")

Parameter: TypeAlias = "float | torch.Tensor"
"""A positive Python number, or a tensor broadcasting to ``x`` (per neuron)."""


class _HostArray(Protocol):
    """What NumPy makes an array of: an ndarray, a pandas Series, ..."""

    def __array__(self) -> Any: ...


# An expression, not a string: pyright read the string split over lines as
# no type at all (so it took anything).
TensorLike: TypeAlias = (
    torch.Tensor
    | float
    | numbers.Real
    | np.floating[Any]
    | np.integer[Any]
    | _HostArray
    | list[Any]
    | tuple[Any, ...]
    | Sequence[float]
)
"""A tensor, or host data (a Python number, a nested list, an array).

Not NumPy's ``ArrayLike``, which takes strings, bytes and complex numbers:
a type checker is to refuse what the functions refuse at run time, as far as
types tell. Anything with ``__array__`` passes, so an array of another
library (JAX's) and a complex NumPy array or scalar are refused at run time
only (a dtype is no type to the checkers). Any real number (a ``Fraction``)
and any sequence of numbers (``range``, ``array.array``, a ``deque``) are
taken, as the Definition page says; text is no sequence of numbers (bytes
are, to the checkers: refused at run time only)."""

_PARAMETER_NAMES = ("alpha", "beta", "epsilon")

# Device types whose tensors take the fused Triton kernels. The tests add
# "cpu" to run them through Triton's interpreter (TRITON_INTERPRET=1).
_FUSED_DEVICES = ("cuda",)

# Bytes of one block on the CPU fast path. The temporaries of ``_math`` for a
# block of this size stay in the processor's caches, where each of their
# passes costs a fraction of a pass over main memory; much smaller blocks pay
# more in per-operation overhead than they save.
_CPU_BLOCK_BYTES = 1 << 20

# Bytes from which an eager CPU kernel takes its thread's kept temporaries
# (_workspace) for an input of up to a block: glibc maps and unmaps fresh
# ones this size at every call (at 2^17 float32 values, about 500 page faults
# a call: gradient 820 us, 230 us with kept ones). Below, fresh ones come
# from the allocator's heap, faster than taking the kept set.
_KEPT_FROM_BYTES = 1 << 19


# Largest finite value of each compute dtype (torch.finfo costs a call each time).
_LARGEST = {dtype: torch.finfo(dtype).max for dtype in (torch.float32, torch.float64)}


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16-bit (and narrower) floats, the dtype itself otherwise."""
    return torch.float32 if _backends.computes_in_float32(8 * dtype.itemsize) else dtype


# torch.func offers no public test of whether a tensor is one of its wrappers;
# these private ones, the two autograd.Function.apply uses below, the
# dispatch modes' stack, keys and tracing checks (_torch_eager's
# takes_kept_tensors and traced_or_in_mode) and the torch-function protocol's
# (_overridden) are the only places the package reaches into torch._C. If
# a later torch drops them, every tensor counts as wrapped, every call goes
# through apply, a dispatch mode is always on and records: slower (no
# in-place temporaries, no fast paths), never wrong.
_functorch_wrapped = getattr(
    getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", None
)
_UNWRAP_IF_DEAD = getattr(getattr(torch._C, "_functorch", None), "unwrap_if_dead", None)
_TRANSFORMS_ACTIVE = getattr(torch._C, "_are_functorch_transforms_active", None)


# The legacy vmap (torch._vmap_internals), which gradcheck's batched checks,
# ``autograd.grad(is_grads_batched=True)`` and ``autograd.functional.jacobian
# (vectorize=True)`` run the backward under, marks its tensors with this key.
try:
    _legacy_batched: Any = torch._C._dispatch_key_parse("Batched")
    _dispatch_keys: Any = torch._C._dispatch_keys
except (AttributeError, RuntimeError):  # pragma: no cover - depends on torch
    _legacy_batched = None


def _is_wrapped(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` lives inside a :mod:`torch.func` transform or a vmap."""
    if _functorch_wrapped is None or _legacy_batched is None:  # pragma: no cover
        return True
    return bool(_functorch_wrapped(tensor)) or _dispatch_keys(tensor).has(
        _legacy_batched
    )


def _in_transform() -> bool:
    """Whether a :mod:`torch.func` transform is active (unknown: as if one were)."""
    return _TRANSFORMS_ACTIVE is None or bool(_TRANSFORMS_ACTIVE())


def _forward_ad_level() -> int:
    """The innermost ``torch.autograd.forward_ad.dual_level``, -1 outside one.

    A module global of torch (private; read with a default where a torch
    lacks it): one comparison, where asking each tensor for a tangent costs
    a call.
    """
    level: int = getattr(torch.autograd.forward_ad, "_current_level", -1)
    return level


def _may_update(*values: Any) -> bool:
    """Whether the math may update its temporaries in place for these inputs.

    Not while compiling (functional code for Inductor to fuse), while
    something else sees the operations (:func:`_torch_eager.traced_or_in_mode`:
    a recorded graph would keep the kernels' ``out=`` and in-place
    operations, selective checkpointing's cache tensors they update; and
    ``torch.jit.trace``'s check saw two graphs where it ran without grad), inside
    a :mod:`torch.func` transform, where autograd records the operations, or
    where the tensors are not all of one kind as to dispatching in Python
    (a plain ``x`` with a wrapper subclass's cotangent or parameter: the
    temporaries, made like ``x``, were plain, and an in-place operation on
    one with a TwoTensor kept one of its two tensors' results, silently).
    ``values`` are the call's ``x`` first, then its other inputs.
    """
    if (
        torch.compiler.is_compiling()
        or _torch_eager.traced_or_in_mode()
        # Inside a dual level any tensor may carry a tangent, which the eager
        # kernels' out= operations reject: the math computes it.
        or _forward_ad_level() >= 0
    ):
        return False
    # One loop, no generators: this runs at every call (per-call cost).
    records = torch.is_grad_enabled()
    kind = None  # whether the first tensor (x) is of plain storage
    for value in values:
        if isinstance(value, torch.Tensor):
            if (records and value.requires_grad) or _is_wrapped(value):
                return False
            plain = _torch_eager.plain_storage(value)
            if kind is None:
                kind = plain
            elif plain is not kind:
                return False
    return True


def _plain_eager(x: torch.Tensor, parameters: Sequence[Any], *others: Any) -> bool:
    """Whether a fast path may run: eager, outside every transform, not recorded.

    The fast paths take Python-number parameters only; tensor parameters (per
    neuron, learnable) take the general path.
    """
    for parameter in parameters:
        if not isinstance(parameter, float):
            return False
    return _may_update(x, *others)


def _fused_kernels(
    x: torch.Tensor, parameters: Sequence[Any], *others: torch.Tensor
) -> ModuleType | None:
    """The Triton kernels module where the fused CUDA path applies, else None.

    Its functions return None where a kernel fails to compile or launch (one
    warning); the caller then takes the pure torch path.
    """
    if x.device.type not in _FUSED_DEVICES or not _plain_eager(x, parameters, *others):
        return None
    return _kernels_for(x)


def _kernels_for(x: torch.Tensor) -> ModuleType | None:
    """The Triton kernels module where its kernels may read ``x``, else None.

    For a call that :func:`_may_update` passed: no dispatch mode is on, and
    its other tensors are of ``x``'s kind, so that ``x`` alone says whether
    the kernels may read them all (not a subclass that dispatches in Python,
    whose data_ptr() may be 0, which a kernel would read and write through).
    This runs twice in every eager CUDA forward+backward: one check, where
    asking every tensor again (and importing the module at every call) was
    about 7 % of the instructions of the host's work of a fixed call.
    """
    if not _torch_eager.plain_storage(x):
        return None
    kernels = _triton_module()
    if kernels is None or not kernels.AVAILABLE:
        return None
    return kernels if kernels.launchable(x) else None


@functools.cache
def _triton_module() -> ModuleType | None:
    """:mod:`s2nn_xp._triton`, imported on first use (it imports Triton)."""
    try:
        from . import _triton
    except ImportError:  # pragma: no cover - _triton itself guards the import
        return None
    return _triton


def _cpu_block(x: torch.Tensor, plain: bool, *others: Any) -> int:
    """Elements per block where the CPU block-by-block path applies, else 0.

    ``plain`` is :func:`_plain_eager` of the call, asked first: under
    ``torch.jit.trace`` ``numel()`` is a traced tensor.
    """
    if not (x.is_cpu and plain):
        return 0
    block = _block_elements(_compute_dtype(x.dtype))
    usable = (
        x.numel() > block
        and x.is_contiguous()
        and all(
            o.ndim == 0 or (o.is_contiguous() and o.shape == x.shape) for o in others
        )
    )
    return block if usable else 0


def _block_elements(compute_dtype: torch.dtype) -> int:
    """Values of ``compute_dtype`` in a CPU block."""
    return _CPU_BLOCK_BYTES // compute_dtype.itemsize


# This thread's kept temporaries of the CPU kernels (s2nn_xp._temporaries).
_KEPT = Kept()


def _workspace(
    elements: int, dtype: torch.dtype, *tensors: torch.Tensor
) -> contextlib.AbstractContextManager[list[torch.Tensor] | None]:
    """:func:`_torch_eager.workspace` for CPU pieces of ``elements`` values.

    This thread's kept one where the kernel's inputs (``tensors``) take
    kept tensors (:func:`_torch_eager.takes_kept_tensors`); one made under
    a mode that makes no plain tensors is not kept. Elsewhere None: the
    kernels then make theirs like the input (``empty_like``).
    """
    if not _torch_eager.takes_kept_tensors(*tensors):
        return contextlib.nullcontext()

    def make(elements: int) -> list[torch.Tensor]:
        # Not an inference tensor, which could not be updated in place
        # outside inference mode, where a later call may use it.
        with torch.inference_mode(False):
            return _torch_eager.workspace(elements, dtype)

    return _KEPT.lend(
        dtype,
        elements,
        make,
        keepable=lambda scratch: _torch_eager.plain_storage(scratch[0]),
    )


def _piecewise(
    compute: Callable[..., torch.Tensor],
    plain: bool,
    x: torch.Tensor,
    *others: torch.Tensor,
) -> torch.Tensor:
    """``compute(x, *others, out=None, scratch=...)``, by CPU blocks where they apply.

    ``plain`` is :func:`_plain_eager` of the call; ``others`` are of ``x``'s
    shape, or 0-d (broadcast). Large CPU inputs are computed block by block
    into one result of ``x``'s layout (``compute`` then gets each block of
    ``x`` and ``others`` and of the result, ``out``), in ``x``'s memory
    order (:func:`_in_memory_order`); those of a block or less, whole.
    Either way on the CPU with this thread's kept
    temporaries (``scratch``) where fresh ones would be memory to map (from
    :data:`_KEPT_FROM_BYTES` on), else with none (the kernels make theirs).
    """
    block = _cpu_block(x, plain, *others)
    dtype = _compute_dtype(x.dtype)
    inputs, order = (x, *others), None
    if not block and plain and x.is_cpu and x.numel() > _block_elements(dtype):
        in_memory_order = _in_memory_order(x, others)
        if in_memory_order is not None:  # the same values, by blocks
            order, x_in_order, others_in_order = in_memory_order
            inputs = (x_in_order, *others_in_order)
            block = _cpu_block(x_in_order, plain, *others_in_order)
    if block:
        # The result of x's layout (empty_like keeps a dense x's strides),
        # filled through its view in x's memory order where the inputs are
        # taken so: a permuted view returned instead could not be changed
        # in place (y += residual) where autograd records the call.
        result = torch.empty_like(x)
        out = result if order is None else result.permute(order)
        with _workspace(block, dtype, *inputs) as scratch:
            blocks = functools.partial(compute, scratch=scratch)
            _blockwise(blocks, block, out, *inputs)
        return result
    if plain and x.is_cpu:
        size = x.numel() * dtype.itemsize
        if _KEPT_FROM_BYTES <= size <= _CPU_BLOCK_BYTES:
            with _workspace(x.numel(), dtype, x, *others) as scratch:
                # Into a result of its own: without out the kernels return
                # one of the temporaries, which the next call overwrites.
                out = torch.empty_like(x)
                return compute(x, *others, out=out, scratch=scratch)
    return compute(x, *others, scratch=None)


def _in_memory_order(
    x: torch.Tensor, others: Sequence[torch.Tensor]
) -> tuple[list[int], torch.Tensor, list[torch.Tensor]] | None:
    """``x`` and ``others`` as contiguous views in ``x``'s memory order, or None.

    For an ``x`` that fills its memory in another order than row-major
    (channels-last, transposed) and others of its shape (copied into its
    order where they are in another), or broadcast from one element (the
    cotangent of ``.sum()``, or a number given to a pullback, whose strides
    are all 0: a 0-d view of that element, which the kernels broadcast).
    Returns the permutation into that order (it makes a contiguous view of
    a tensor of ``x``'s layout, as ``empty_like`` gives) and the views.
    Elementwise functions of them are the same values; taken whole, such
    inputs made the kernels' temporaries full-size (two to three times
    ``x``'s memory, 1.3-1.8 times the time).
    """
    order = sorted(range(x.ndim), key=x.stride, reverse=True)  # stable: ties kept
    x_in_order = x.permute(order)
    if not x_in_order.is_contiguous():  # overlapping, or gaps between values
        return None
    others_in_order = []
    for other in others:
        if other.numel() and not any(other.stride()):  # one element, broadcast
            others_in_order.append(other.as_strided((), (), other.storage_offset()))
            continue
        if other.shape != x.shape:
            return None
        # Of another layout than x's: a copy in x's order (one pass, x's
        # memory), where the whole-array path took more of both.
        others_in_order.append(other.permute(order).contiguous())
    return order, x_in_order, others_in_order


def _blockwise(
    compute: Callable[..., torch.Tensor],
    block: int,
    out: torch.Tensor,
    *inputs: torch.Tensor,
) -> torch.Tensor:
    """``out[...] = compute(*inputs)``, block by block over the flat arrays.

    ``compute`` takes blocks of ``inputs`` and the matching block of ``out``
    to write into; all tensors are contiguous and of one shape, but 0-d
    ones, which every block takes whole (a broadcast cotangent).
    """
    flat_out = out.view(-1)
    flat_inputs = [t.view(-1) if t.ndim else t for t in inputs]
    for start in range(0, flat_out.numel(), block):
        part = slice(start, start + block)
        blocks = (t[part] if t.ndim else t for t in flat_inputs)
        compute(*blocks, out=flat_out[part])
    return out


# --- The primal and the derivatives, all from _math ------------------------


def _primal(
    x: torch.Tensor,
    alpha: Parameter,
    beta: Parameter,
    epsilon: Parameter,
    with_origin: bool,
) -> torch.Tensor:
    """The spike (or origin function) of ``x``, in ``x``'s dtype."""
    parameters = (alpha, beta, epsilon)
    # The spike reads no parameter: with tensor ones (per neuron, learnable)
    # it takes the kernel too (the eager ops took three passes over x).
    kernels = _fused_kernels(x, parameters if with_origin else ())
    if kernels is not None:
        numbers = (alpha, beta, epsilon) if with_origin else (1.0, 1.0, 0.0)
        fused = kernels.spike(x, *numbers, origin=with_origin)
        if fused is not None:  # None where the kernel cannot run (warned once)
            return fused
    untraced = _plain_eager(x, ())
    if not with_origin and untraced and x.dtype.itemsize > 1:
        # The spike is exact in every dtype: no cast, no blocks, three ops
        # (not in 8-bit floats, for which torch has no clamp on the CPU).
        return _torch_eager.spike(x)
    compute_dtype = _compute_dtype(x.dtype)
    plain = untraced and all(isinstance(p, float) for p in parameters)

    def primal_block(
        x_block: torch.Tensor,
        out: torch.Tensor | None = None,
        scratch: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x_block = _in_dtype(x_block, compute_dtype)
        if with_origin and plain:  # the eager kernel: Python-number parameters
            y = _torch_eager.origin(
                x_block,
                float(alpha),
                float(beta),
                float(epsilon),
                out=out,
                scratch=scratch,
            )
            return y if out is not None else _in_dtype(y, x.dtype)
        in_place = _may_update(x_block, alpha, beta, epsilon)
        if with_origin:
            y = _math.origin(_xp, x_block, alpha, beta, epsilon, in_place=in_place)
        else:
            y = _math.forward(_xp, x_block, in_place=in_place)
        if out is None:
            return _in_dtype(y, x.dtype)
        return out.copy_(y)

    return _piecewise(primal_block, plain, x)


def _gradient_vjp(
    cotangent: torch.Tensor | None,
    x: torch.Tensor,
    alpha: Parameter,
    beta: Parameter,
) -> torch.Tensor:
    """``cotangent * gradient(x, alpha, beta)`` in ``x``'s dtype.

    With ``cotangent=None``, the gradient itself.
    """
    parameters = (alpha, beta)
    others = () if cotangent is None else (cotangent,)
    kernels = _fused_kernels(x, parameters, *others)
    if kernels is not None:
        fused = kernels.spike_vjp(cotangent, x, alpha, beta)
        if fused is not None:  # None where the kernel cannot run (warned once)
            return fused
    compute_dtype = _compute_dtype(x.dtype)
    plain = _plain_eager(x, parameters, *others)

    def vjp_block(
        x_block: torch.Tensor,
        cotangent_block: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
        scratch: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x_block = _in_dtype(x_block, compute_dtype)
        if cotangent_block is not None:
            cotangent_block = _in_dtype(cotangent_block, compute_dtype)
        if plain:  # nothing differentiates the gradient: the eager kernel
            # (plain means Python-number parameters)
            grad = _torch_eager.gradient(
                x_block,
                float(alpha),
                float(beta),
                cotangent_block,
                out=out,
                scratch=scratch,
            )
            return grad if out is not None else _in_dtype(grad, x.dtype)
        in_place = _may_update(x_block, alpha, beta, cotangent_block)
        grad = _math.gradient(_xp, x_block, alpha, beta, in_place=in_place)
        if cotangent_block is None:
            return _in_dtype(grad, x.dtype) if out is None else out.copy_(grad)
        if out is not None:
            return torch.mul(grad, cotangent_block, out=out)
        # Out of place: the cotangent may be batched (vmap, batched gradcheck)
        # where the gradient is not.
        return _in_dtype(grad * cotangent_block, x.dtype)

    return _piecewise(vjp_block, plain, x, *others)


def _gradient_jvp(
    tangent: torch.Tensor, x: torch.Tensor, alpha: Parameter, beta: Parameter
) -> torch.Tensor:
    """``tangent * gradient(x, alpha, beta)`` in the compute dtype."""
    compute_dtype = _compute_dtype(x.dtype)
    grad = _math.gradient(_xp, x.to(compute_dtype), alpha, beta, in_place=False)
    return grad * tangent.to(compute_dtype)


def _partials(
    x: torch.Tensor, parameters: dict[str, Parameter], *others: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``_math.partials`` of ``x`` in its compute dtype (x, alpha, beta order)."""
    compute_x = x.to(_compute_dtype(x.dtype))
    return _math.partials(
        _xp,
        compute_x,
        parameters["alpha"],
        parameters["beta"],
        parameters["epsilon"],
        in_place=_may_update(compute_x, *parameters.values(), *others),
    )


def _reduced(term: torch.Tensor, parameter: Parameter) -> torch.Tensor:
    """``term`` summed over the axes ``parameter`` is broadcast along.

    A number (a parameter nothing differentiates, whose term no caller asks
    for) takes the sum of all of it, as a 0-d tensor would.
    """
    shape = parameter.shape if isinstance(parameter, torch.Tensor) else ()
    if term.shape == shape:  # sum_to_size would still copy it
        return term
    leading = term.ndim - len(shape)
    if leading and term.shape[leading:] == shape:
        # Per neuron over a batch: one sum over the leading axes, which costs
        # half of sum_to_size's general one at a layer's sizes (over one axis
        # given as a number: a tuple cost another fifth).
        return term.sum(0 if leading == 1 else tuple(range(leading)))
    return term.sum_to_size(shape)


def _backward_with_parameters(
    cotangent: torch.Tensor,
    x: torch.Tensor,
    parameters: dict[str, Parameter],
    needs: dict[str, bool],
) -> dict[str, torch.Tensor | None]:
    """Cotangents of ``x``, ``alpha`` and ``beta`` from one pass of the partials.

    Each parameter's is ``d origin / d parameter * cotangent`` summed to the
    parameter's shape; ``x``'s is the surrogate gradient times the cotangent.
    Where nothing records the backward (no ``create_graph``, no transform)
    the eager kernel computes them, and large CPU inputs are taken a piece
    at a time (a few rows, or a few columns where a row is larger than a
    block), so that the temporaries stay in cache; each parameter's piece of
    the sum is added where it belongs. Elsewhere ``_math.partials`` does,
    differentiably.
    """
    if not _may_update(x, *parameters.values(), cotangent):
        return _cotangents(cotangent, x, parameters, needs)
    fused = _fused_cotangents(cotangent, x, parameters, needs)
    if fused is not None:
        return fused
    pieces = _pieces(x, cotangent)
    if pieces is None:
        return _eager_cotangents(cotangent, x, parameters, needs)
    axis, length = pieces
    compute_dtype = _compute_dtype(x.dtype)
    grad_x = torch.empty_like(x) if needs["x"] else None
    # A parameter that varies along the pieces' axis gets each piece's terms
    # once (written); one that is broadcast along it, a sum (accumulated).
    totals = {}
    for name, value in parameters.items():
        if name != "epsilon" and needs[name] and isinstance(value, torch.Tensor):
            sliced = _piece(value, (slice(None),) * (axis + 1), x.ndim)[1]
            totals[name] = (torch.empty_like if sliced else torch.zeros_like)(value)
    elements = (x.numel() // x.shape[axis]) * length  # in the largest piece
    inputs = [v for v in parameters.values() if isinstance(v, torch.Tensor)]
    with _workspace(elements, compute_dtype, x, cotangent, *inputs) as scratch:
        for start in range(0, x.shape[axis], length):
            index = (slice(None),) * axis + (slice(start, start + length),)
            pieces_of = {
                name: _piece(value, index, x.ndim) for name, value in parameters.items()
            }
            out = None if grad_x is None else grad_x[index]
            terms = _eager_cotangents(
                cotangent[index],
                x[index],
                {name: piece for name, (piece, _) in pieces_of.items()},
                needs,
                out,
                scratch,
            )
            piece = terms["x"]
            if out is not None and piece is not None and piece is not out:
                out.copy_(piece)
            for name, total in totals.items():
                own = pieces_of[name][1]
                term = terms[name]
                assert term is not None  # asked for: totals has only those
                if own:
                    total[own] = term
                else:
                    total += term
    return {"x": grad_x, "alpha": totals.get("alpha"), "beta": totals.get("beta")}


def _pieces(x: torch.Tensor, cotangent: torch.Tensor) -> tuple[int, int] | None:
    """``(axis, length)`` of the pieces of the blocked CPU backward, or None.

    For a CPU ``x`` of more than a block's bytes and a cotangent of its
    shape: pieces of a few rows (first axis) where a row fits in a block,
    else of a few columns (last axis) where a column does.
    """
    block = _block_elements(_compute_dtype(x.dtype))
    if x.numel() <= block or not x.is_cpu or cotangent.shape != x.shape:
        return None
    for axis in (0, x.ndim - 1):
        across = x.numel() // x.shape[axis]  # values in one slice along axis
        if x.shape[axis] > 1 and across <= block // 2:
            return axis, block // across
    return None


def _piece(
    value: Parameter, index: tuple[slice, ...], ndim: int
) -> tuple[Parameter, tuple[slice, ...]]:
    """A parameter's piece for ``x[index]``, and its index in the parameter.

    A tensor parameter is aligned with ``x``'s last axes; along the sliced
    axis it is sliced too unless it is broadcast there (size 1 or absent).
    """
    if not isinstance(value, torch.Tensor):
        return value, ()
    axis = len(index) - 1 - (ndim - value.ndim)
    if axis < 0 or value.shape[axis] == 1:
        return value, ()
    own = (slice(None),) * axis + (index[-1],)
    return value[own], own


def _eager_cotangents(
    cotangent: torch.Tensor,
    x: torch.Tensor,
    parameters: dict[str, Parameter],
    needs: dict[str, bool],
    out: torch.Tensor | None = None,
    scratch: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor | None]:
    """:func:`_cotangents` by the eager kernel (nothing records it).

    ``out`` (of ``x``'s dtype) may receive ``x``'s cotangent. With
    ``scratch`` (a workspace the caller reuses), the parameters' terms may be
    views of it: the caller copies them out before the next piece.
    """
    compute_dtype = _compute_dtype(x.dtype)
    if out is not None and out.dtype != compute_dtype:
        out = None  # computed in float32, rounded by the caller's copy
    grad, d_alpha, d_beta = _torch_eager.cotangents(
        _in_dtype(x, compute_dtype),
        parameters["alpha"],
        parameters["beta"],
        parameters["epsilon"],
        _in_dtype(cotangent, compute_dtype),
        with_alpha=needs["alpha"],
        with_beta=needs["beta"],
        out=out,
        scratch=scratch,
    )
    return {
        "x": _in_dtype(grad, x.dtype) if needs["x"] else None,
        "alpha": None if d_alpha is None else _reduced(d_alpha, parameters["alpha"]),
        "beta": None if d_beta is None else _reduced(d_beta, parameters["beta"]),
    }


def _fused_cotangents(
    cotangent: torch.Tensor,
    x: torch.Tensor,
    parameters: dict[str, Parameter],
    needs: dict[str, bool],
) -> dict[str, torch.Tensor | None] | None:
    """:func:`_eager_cotangents` by one Triton kernel on CUDA, else None.

    For a call that :func:`_may_update` passed (its caller's check).

    Where the parameters are per neuron (aligned with ``x``'s last axes) or
    single values: the eager kernel's dozen passes over the data, and their
    reductions, took 9 to 12 times the fixed parameters' forward+backward at
    2^28 values on an H200.
    """
    if x.device.type not in _FUSED_DEVICES:
        return None
    kernels = _kernels_for(x)  # after _may_update of them all (the caller's)
    if kernels is None:
        return None
    result: dict[str, torch.Tensor | None] | None = kernels.cotangents(
        cotangent,
        x,
        parameters["alpha"],
        parameters["beta"],
        parameters["epsilon"],
        with_x=needs["x"],
        with_alpha=needs["alpha"],
        with_beta=needs["beta"],
    )
    return result


def _cotangents(
    cotangent: torch.Tensor,
    x: torch.Tensor,
    parameters: dict[str, Parameter],
    needs: dict[str, bool],
) -> dict[str, torch.Tensor | None]:
    """:func:`_backward_with_parameters` by ``_math.partials`` (differentiable)."""
    grad, d_alpha, d_beta = _partials(x, parameters, cotangent)
    cotangent = cotangent.to(grad.dtype)
    return {
        "x": _in_dtype(grad * cotangent, x.dtype) if needs["x"] else None,
        "alpha": _reduced(d_alpha * cotangent, parameters["alpha"])
        if needs["alpha"]
        else None,
        "beta": _reduced(d_beta * cotangent, parameters["beta"])
        if needs["beta"]
        else None,
    }


def _parameter_jvp(
    x: torch.Tensor,
    parameters: dict[str, Parameter],
    tangents: dict[str, torch.Tensor],
) -> torch.Tensor:
    """``sum of d origin / d p * tangent_p`` over the parameters with tangents.

    A zero tangent contributes 0, even where the partial is infinite
    (``d origin / d beta = log1p(inf)`` at ``x = inf``): forward-mode AD
    gives a parameter without a tangent of its own one of zeros, and
    ``inf * 0`` would make the tangent NaN (as a zero cotangent there makes
    reverse mode's, in every framework: the Definition page).
    """
    _, d_alpha, d_beta = _partials(x, parameters)
    partial = {"alpha": d_alpha, "beta": d_beta}
    terms = []
    for name, tangent in tangents.items():
        tangent = tangent.to(d_alpha.dtype)
        term = partial[name] * tangent
        terms.append(torch.where(tangent == 0, torch.zeros_like(term), term))
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


# --- The autograd.Function -------------------------------------------------


def _save(
    ctx: Any, x: torch.Tensor, parameters: Sequence[Parameter]
) -> list[torch.Tensor]:
    """Keep ``x`` and the tensor parameters; Python numbers go on ``ctx``."""
    tensors = [x] + [p for p in parameters if isinstance(p, torch.Tensor)]
    ctx.save_for_backward(*tensors)
    ctx.numbers = tuple(None if isinstance(p, torch.Tensor) else p for p in parameters)
    return tensors


def _restore(ctx: Any) -> tuple[torch.Tensor, dict[str, Parameter]]:
    x, *tensors = ctx.saved_tensors
    tensors = iter(tensors)
    parameters = {
        name: next(tensors) if number is None else number
        for name, number in zip(_PARAMETER_NAMES, ctx.numbers, strict=True)
    }
    return x, parameters


class _SpikeTraceable(torch.autograd.Function):
    """The spike with the surrogate VJP; the variant :func:`torch.compile` traces.

    Inputs: ``x`` (any real floating dtype), ``alpha``, ``beta``, ``epsilon``
    (Python floats, or tensors in ``x``'s compute dtype) and ``with_origin``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(
        x: torch.Tensor,
        alpha: Parameter,
        beta: Parameter,
        epsilon: Parameter,
        with_origin: bool,
    ) -> torch.Tensor:
        if (
            not with_origin
            and torch.compiler.is_compiling()
            and torch.is_grad_enabled()
        ):
            # Dynamo traces this forward with autograd on only where it
            # differentiates its operations instead of backward(): under
            # torch.func transforms (whose derivatives were 0, silently:
            # pytorch/pytorch#193279), and where no input needs a gradient.
            compute_x = x.to(_compute_dtype(x.dtype))
            spike = _math.spike_with_model_derivatives(
                _xp, compute_x, alpha, beta, epsilon
            )
            return spike.to(x.dtype)
        return _primal(x, alpha, beta, epsilon, with_origin)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        x, alpha, beta, epsilon, _ = inputs
        _save(ctx, x, (alpha, beta, epsilon))

    @staticmethod
    def backward(ctx: Any, cotangent: torch.Tensor) -> tuple[Any, ...]:
        x, parameters = _restore(ctx)
        needs_x, needs_alpha, needs_beta = ctx.needs_input_grad[:3]
        # Compiled under torch.func transforms, Dynamo may say that x needs
        # no gradient when it does (its gradient was 0, silently:
        # pytorch/pytorch#193279); one that is not needed is dropped unused.
        needs_x = needs_x or torch.compiler.is_compiling()
        alpha, beta = parameters["alpha"], parameters["beta"]
        fixed = not (needs_alpha or needs_beta)
        if fixed and not needs_x:
            return None, None, None, None, None
        numbers = isinstance(alpha, float) and isinstance(beta, float)
        if fixed and (numbers or not _may_update(x, alpha, beta, cotangent)):
            # the common case: one fused pass
            return _gradient_vjp(cotangent, x, alpha, beta), None, None, None, None
        # Parameters that learn, or tensors that need no gradient (fixed
        # per-neuron values, whose x term alone the partials' eager kernel
        # gives in half the math's time at 2^20 values).
        needs = {"x": needs_x, "alpha": needs_alpha, "beta": needs_beta}
        grads = _backward_with_parameters(cotangent, x, parameters, needs)
        return grads["x"], grads["alpha"], grads["beta"], None, None


class _Spike(_SpikeTraceable):
    """:class:`_SpikeTraceable` with a forward-mode rule (``torch.func.jvp``)."""

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        x, alpha, beta, epsilon, _ = inputs
        ctx.save_for_forward(*_save(ctx, x, (alpha, beta, epsilon)))

    @staticmethod
    def jvp(
        ctx: Any,
        x_tangent: torch.Tensor | None,
        alpha_tangent: torch.Tensor | None,
        beta_tangent: torch.Tensor | None,
        *_: Any,
    ) -> torch.Tensor:
        x, parameters = _restore(ctx)
        terms = []
        if x_tangent is not None:
            alpha, beta = parameters["alpha"], parameters["beta"]
            terms.append(_gradient_jvp(x_tangent, x, alpha, beta))
        parameter_tangents = {
            name: t
            for name, t in (("alpha", alpha_tangent), ("beta", beta_tangent))
            if t is not None
        }
        if parameter_tangents:
            terms.append(_parameter_jvp(x, parameters, parameter_tangents))
        if not terms:  # only epsilon has a tangent: it is a constant
            return torch.zeros_like(x)
        tangent = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        return _in_dtype(tangent, x.dtype)


# autograd.Function.apply binds its arguments to forward's signature at every
# call, and inspect.signature rebuilt it each time (a sixth of a call's cost
# at 10^4 values); a signature stored on the function is found first.
_SpikeTraceable.forward.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    _SpikeTraceable.forward
)

# Outside torch.func transforms, autograd.Function.apply unwraps tensors that
# escaped a finished transform and calls the C apply; binding the arguments
# first still cost a tenth of an eager call at 10^4 values (inspect's
# Signature.bind; every argument is given, so it changes none).
_C_APPLY = super(torch.autograd.Function, _Spike).apply


def _apply_spike(
    x: torch.Tensor,
    alpha: Parameter,
    beta: Parameter,
    epsilon: Parameter,
    with_origin: bool,
) -> torch.Tensor:
    """``_Spike.apply(x, alpha, beta, epsilon, with_origin)``, eager, unbound.

    What ``apply`` does outside torch.func transforms, without its
    binding; inside one (or where this torch lacks the private functions),
    ``apply`` itself.
    """
    if _UNWRAP_IF_DEAD is None or _in_transform():
        return _Spike.apply(x, alpha, beta, epsilon, with_origin)
    unwrap = _UNWRAP_IF_DEAD
    return _C_APPLY(
        unwrap(x),
        unwrap(alpha) if isinstance(alpha, torch.Tensor) else alpha,
        unwrap(beta) if isinstance(beta, torch.Tensor) else beta,
        unwrap(epsilon) if isinstance(epsilon, torch.Tensor) else epsilon,
        with_origin,
    )


# --- Public API -------------------------------------------------------------


def _prepare_x(x: Any, *, kept: bool) -> torch.Tensor:
    """``x`` as a dense real floating tensor (integers and bools promoted).

    Host data as a tensor of its own where autograd may keep it for backward
    (``kept``), else over the caller's memory where torch can read it.
    """
    if not isinstance(x, torch.Tensor):
        if hasattr(type(x), "__torch_function__"):
            # A torch.fx.Proxy, while symbolic_trace runs: given to vjp (the
            # other functions pass it to its __torch_function__, unless that
            # is disabled).
            msg = (
                f"x is of type {type(x).__name__}, a stand-in for a tensor (as "
                "torch.fx.symbolic_trace passes), which only s2nn, forward, "
                "origin and gradient take (by __torch_function__); not vjp, "
                "whose pullback is a Python function that no graph holds: use "
                "s2nn and autograd, or trace with make_fx"
            )
            raise TypeError(msg)
        x = _from_numpy(host_input(x, "torch"), device=None, private=kept)
    _check_dense("x", x)
    if not x.is_floating_point():
        x = x.to(input_dtypes(_xp, x)[1])  # raises for complex input
    else:
        _check_real("x", x.dtype)  # a packed float
    return x


def _from_numpy(
    values: Any, *, device: str | None, private: bool = True
) -> torch.Tensor:
    """A NumPy array (of host data) as a tensor, ml_dtypes' types included.

    torch cannot read ml_dtypes' types: their floats go through float32,
    which holds each of their values, into torch's dtype of the same name
    where it has one (bfloat16, the float8 formats), else stay float32; their
    integers (int4, ...) become int64, promoted as integers are. On
    ``device``, None for torch's default device (an ``x``, as
    ``torch.tensor`` makes it); a module's values on the CPU, where they
    are checked (on the meta device they have none) and copied into its
    tensors from (:meth:`S2NN._assign`). ``private``: never over the
    caller's memory (:func:`_compat.private_host_array`).
    """
    given = values
    values = _compat.readable_host_array(np.asarray(values))  # NumPy scalars too
    if values.dtype.type is np.longdouble:
        # torch reads no long double; a parameter of one is checked to hold
        # values of float64 (an x of one is refused before)
        values = values.astype(np.float64)
    kind = ml_dtypes_kind(values.dtype)
    if kind is None and values.dtype.kind == "u" and values.dtype.itemsize == 8:
        # torch reads no uint64 array; integers become the default float
        # anyway (through float64: above 2**53 rounded twice)
        as_float = torch.as_tensor(values.astype(np.float64), device=device)
        return as_float.to(torch.get_default_dtype())
    if kind is None:
        if private:
            # Autograd may keep the tensor for backward (the x of learnable
            # parameters): a later in-place change of the caller's array,
            # which torch cannot see, would change the gradients.
            values = _compat.private_host_array(values, given)
        return torch.as_tensor(values, device=device)
    if kind == "integral":
        return torch.as_tensor(values.astype(np.int64), device=device)
    tensor = torch.as_tensor(values.astype(np.float32), device=device)
    same = getattr(torch, values.dtype.name, None)
    if isinstance(same, torch.dtype) and same.is_floating_point:
        try:
            return tensor.to(same)
        except (RuntimeError, TypeError):  # a format torch cannot convert to
            pass
    return tensor


def _check_real(name: str, dtype: torch.dtype) -> None:
    """TypeError unless `dtype` is a real floating or integer dtype.

    ``check_real_dtype``'s rule from the dtype's own attributes, which
    ``torch.compile`` reads as constants: that function's cache of answers
    is a dict that changes, and a compiled graph guarded on it recompiled
    whenever any call added a dtype to it.
    """
    if dtype in _PACKED_FLOATS or not (
        dtype.is_floating_point or dtype in _INTEGER_DTYPES
    ):
        raise real_dtype_error(name, dtype)


def _packed(dtype: torch.dtype) -> bool:
    """Whether ``dtype`` is a float torch holds packed, no value an element."""
    try:
        torch.finfo(dtype).max  # noqa: B018 (the question asked of torch)
    except (TypeError, NotImplementedError):
        return True
    return False


# torch's floating dtypes that pack several values in an element
# (float4_e2m1fn_x2): torch converts them to no other dtype.
_PACKED_FLOATS = frozenset(
    dtype
    for dtype in vars(torch).values()
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point and _packed(dtype)
)


# torch's integer dtypes (its unsigned ones beyond uint8 are recent).
_INTEGER_NAMES = ("uint8", "uint16", "uint32", "uint64")
_INTEGER_DTYPES = frozenset(
    getattr(torch, name)
    for name in (*_INTEGER_NAMES, "int8", "int16", "int32", "int64")
    if hasattr(torch, name)
)


# torch.masked.MaskedTensor, where this torch has it.
_MASKED_TENSOR = getattr(getattr(torch, "masked", None), "MaskedTensor", None)


def _check_dense(name: str, tensor: torch.Tensor) -> None:
    """TypeError naming `name` unless `tensor` is dense (strided).

    Outside a compiled graph only: Dynamo cannot inspect a traced tensor's
    layout without touching attributes it warns about.
    """
    if torch.compiler.is_compiling():
        return
    if _MASKED_TENSOR is not None and isinstance(tensor, _MASKED_TENSOR):
        # A prototype subclass most operations of the math lack (some passed,
        # others failed inside torch's dispatch).
        msg = (
            f"{name} is a torch MaskedTensor, which s2nn_xp does not compute "
            f"with; give its data ({name}.get_data()) and mask the result"
        )
        raise TypeError(msg)
    if tensor.layout != torch.strided or tensor.is_nested:
        kind = "nested" if tensor.is_nested else str(tensor.layout)
        msg = (
            f"{name} must be a dense (strided) tensor, not a "
            f"{kind.removeprefix('torch.')} one; convert it with .to_dense() "
            "(or .to_padded_tensor() for nested tensors)"
        )
        raise TypeError(msg)


def _prepare_parameter(name: str, value: Any, x: torch.Tensor) -> Parameter:
    """A checked Python float, or a tensor in ``x``'s compute dtype and device."""
    compute_dtype = _compute_dtype(x.dtype)
    if type(value) in _PLAIN_TENSORS and _is_ready(value, x, compute_dtype):
        return _constant(value) if name == "epsilon" else value
    largest = _LARGEST[compute_dtype]
    if type(value) is float and not torch.compiler.is_compiling():
        # The common case, checked by the same rules without the general
        # dispatch on the value's type (a call's cost counts at 10^4 values),
        # once for each number and dtype.
        return checked_number(name, value, compute_dtype, largest)
    numbers = (int, float, torch.SymInt, torch.SymFloat)
    if (
        torch.compiler.is_compiling()
        and isinstance(value, numbers)
        and not isinstance(value, bool)
    ):
        # Dynamo makes a number that changes between calls a graph input;
        # only tensor operations keep it one (a comparison would specialize
        # it: one compile per value). A number it traces as a constant is
        # checked here; a graph input is checked by the graph at run time.
        if type(value) in (int, float):
            check_number(name, cast(float, value))
            check_representable(name, float(value), compute_dtype, largest)
        else:  # symbolic: checks that become guards only where they fail
            above = above_lower_bound(name, value)
            torch._check_value(above, lambda: str(bound_error(name)))
            limit = overflow_limit(largest, torch.finfo(compute_dtype).eps)
            torch._check_value(value < limit, lambda: str(bound_error(name)))
        # one * number, not torch.full: a product is what Dynamo keeps a
        # tensor operation of a symbolic float (a fill value specializes it).
        one = torch.ones((), dtype=compute_dtype, device=x.device)
        return one * cast(float, value)  # torch's stubs take no SymFloat
    if isinstance(value, torch.Tensor):  # x's library: no namespace lookups
        _check_dense(name, value)
        _check_real(name, value.dtype)
        if value.device.type == "meta" != x.device.type:
            msg = (
                f"{name} is on the meta device, which holds no values, and x "
                f"on {x.device}; give {name} real values (S2NN.to_empty() and "
                "an assignment, for a module built on the meta device)"
            )
            raise ValueError(msg)
        if torch.jit.is_tracing():  # sizes are constants of the trace
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                check_broadcast(name, value.shape, x.shape)
        else:
            check_broadcast(name, value.shape, x.shape)
    else:
        value = check_parameter(_xp, name, value, x, compute_dtype, largest)
        if isinstance(value, float):
            return value
    value = value.to(device=x.device, dtype=compute_dtype)
    return _constant(value) if name == "epsilon" else value


def _constant(epsilon: torch.Tensor) -> torch.Tensor:
    """``epsilon`` detached; told, where it requires grad, that it gets none."""
    tell_epsilon_is_constant(epsilon)
    return epsilon.detach()


# Tensor types whose instances _is_ready may pass as they are: not a subclass
# (MaskedTensor, a Python-dispatching wrapper), which the general checks see.
_PLAIN_TENSORS = frozenset((torch.Tensor, nn.Parameter))


def _is_ready(value: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the general checks would pass a tensor parameter unchanged.

    The common case (a module's per-neuron parameters, a layer's values),
    checked in a fraction of the general checks' time, which a call's cost
    at 10^4 values noticed: a dense tensor in the compute dtype on ``x``'s
    device whose shape is ``x``'s last axes (so it broadcasts), outside
    tracing (whose checks are guards). Anything else takes the general path.
    """
    return (
        # First: under torch.jit.trace sizes are traced values, whose
        # comparison warns.
        not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
        and value.dtype is dtype
        and value.device == x.device
        and value.layout is torch.strided
        and not value.is_nested
        and value.ndim <= x.ndim
        and value.shape == x.shape[x.ndim - value.ndim :]
    )


def _prepare(x: Any, **parameters: Any) -> tuple[torch.Tensor, dict[str, Parameter]]:
    """``x`` and its parameters checked and converted for the math."""
    # Autograd keeps x where a parameter requires grad (learnable ones).
    kept = False
    if torch.is_grad_enabled():
        for value in parameters.values():
            kept = kept or (isinstance(value, torch.Tensor) and value.requires_grad)
    x = _prepare_x(x, kept=kept)
    # A loop, not a comprehension: a comprehension would close over x, and
    # Dynamo trips over a traced tensor held in a closure cell.
    prepared = {}
    for name, value in parameters.items():
        prepared[name] = _prepare_parameter(name, value, x)
    return x, prepared


_Public = TypeVar("_Public", bound=Callable[..., Any])
_NOT_OVERRIDDEN = getattr(torch._C, "_disabled_torch_function_impl", None)
_MODE_ON = getattr(torch._C, "_is_torch_function_mode_enabled", None)


def _torch_function_protocol(function: _Public) -> _Public:
    """``function``, honouring ``__torch_function__`` as torch's own functions do.

    An argument that overrides it (a ``torch.fx.Proxy`` while
    :func:`torch.fx.symbolic_trace` traces a model, a tensor subclass) gets
    the call, as for ``torch.nn.functional``; ``symbolic_trace`` records it
    as one node of its graph. For the functions that return tensors: not
    :func:`vjp`, whose pullback a graph node could not hold, and which, as
    :func:`torch.func.vjp`, is a transform of the operations that do.
    A torch-function mode alone does not get the call: it sees the
    operations inside, as before (``handle_torch_function`` would take the
    mode off for the call, and host data would no longer follow
    ``torch.set_default_device``).
    """

    @functools.wraps(function)
    def public(*args: Any, **kwargs: Any) -> Any:
        relevant = (*args, *kwargs.values()) if kwargs else args
        if has_torch_function(relevant) and _overridden(relevant):
            return handle_torch_function(public, relevant, *args, **kwargs)
        return function(*args, **kwargs)

    return public  # type: ignore[return-value]


def _overridden(values: tuple[Any, ...]) -> bool:
    """Whether one of ``values`` overrides ``__torch_function__``.

    ``has_torch_function``'s rule (a type other than ``torch.Tensor`` whose
    ``__torch_function__`` is not the disabled one), asked where it was
    true, without its answer for a torch-function mode, which is always yes.
    """
    if _MODE_ON is not None and not _MODE_ON():
        return True  # has_torch_function said so of an argument
    for value in values:
        kind = type(value)
        if kind is torch.Tensor:
            continue
        if getattr(kind, "__torch_function__", _NOT_OVERRIDDEN) is not _NOT_OVERRIDDEN:
            return True
    return False


@_torch_function_protocol
def s2nn(
    x: TensorLike,
    alpha: TensorLike = ALPHA,
    beta: TensorLike = BETA,
    epsilon: TensorLike = EPSILON,
    *,
    origin: Flag = False,
) -> torch.Tensor:
    """The S2NN spike with its surrogate derivatives, for PyTorch.

    Parameters
    ----------
    x : torch.Tensor
        Membrane potential minus threshold, of any shape, device and memory
        format. Integer and bool tensors are promoted to the default floating
        dtype; complex tensors raise. Python numbers and lists are NumPy
        input, as for :func:`s2nn_xp.s2nn`: Python floats become float64
        tensors (integers the default floating dtype). An array of another
        library (a JAX array) raises TypeError: :func:`s2nn_xp.s2nn`
        computes in any array's own library.
    alpha : float or torch.Tensor, default 4.0
        Steepness of the sigmoid branch; finite and > 0. A tensor broadcasting
        to `x` gives per-neuron values and, with ``requires_grad``, is learned.
    beta : float or torch.Tensor, default 1.0
        Scale of the logarithmic branch; finite and > 0; tensors as `alpha`.
    epsilon : float or torch.Tensor, default 1e-8
        Offset inside the logarithm of the origin function; finite and >= 0.
        A constant: it gets no gradient.
    origin : bool, default False
        Return the smooth origin function instead of the spike; the
        derivatives are the same.

    Returns
    -------
    torch.Tensor
        1 where ``x >= 0`` (``-0.0`` too), 0 where ``x < 0``, NaN where `x`
        is NaN (or the origin function); `x`'s shape, device and floating
        dtype. Its derivatives are the surrogate model's: ``gradient(x)`` in
        `x`, ``d origin / d alpha`` and ``d origin / d beta`` in tensor
        parameters, to every order (forward mode nested in forward mode
        aside: 0 from the second order on, a PyTorch bug).

    Raises
    ------
    ValueError
        A Python-number parameter out of its range, or a tensor parameter
        that does not broadcast to `x`; the message names the parameter.
    TypeError
        Complex input, or a parameter that is no real number or tensor.

    Examples
    --------
    >>> import torch
    >>> from s2nn_xp.torch import s2nn
    >>> x = torch.tensor([-1.0, 0.0, 1.0], requires_grad=True)
    >>> y = s2nn(x)
    >>> y
    tensor([0., 1., 1.], grad_fn=<_SpikeBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([0.0707, 1.0000, 0.5000])

    Learnable per-neuron parameters get the derivative of the origin function:

    >>> alpha = torch.tensor([4.0, 2.0], requires_grad=True)
    >>> s2nn(torch.tensor([[-0.5, -0.5]]), alpha).sum().backward()
    >>> alpha.grad
    tensor([-0.0525, -0.0983])
    """
    origin = validate_flag("origin", origin)
    x, p = _prepare(x, alpha=alpha, beta=beta, epsilon=epsilon)
    return _spike_of_prepared(x, p, origin)


def _spike_of_prepared(
    x: torch.Tensor, p: dict[str, Any], with_origin: bool
) -> torch.Tensor:
    """:func:`s2nn` of prepared arguments: its value and its surrogate rule.

    Through the autograd Function where autodiff may differentiate it, else
    its value alone (the Function's forward, without its machinery).
    """
    alpha, beta, epsilon = p["alpha"], p["beta"], p["epsilon"]
    if torch.compiler.is_compiling():
        return _SpikeTraceable.apply(x, alpha, beta, epsilon, with_origin)
    # Traced or seen by a mode, the Function too: a graph recorded without
    # grad (torch.jit.trace) keeps the surrogate rule for runs with it.
    if _differentiates(x, alpha, beta, epsilon) or _torch_eager.traced_or_in_mode():
        return _apply_spike(x, alpha, beta, epsilon, with_origin)
    return _primal(x, alpha, beta, epsilon, with_origin)


# The public functions of s2nn_xp for tensors: the same paths as the
# autograd.Function (fused Triton kernels on CUDA, blocks on the CPU), and
# where autograd records, ordinary differentiable operations of _math.


_FORWARD_EXAMPLES = """\
    >>> import torch
    >>> import s2nn_xp.torch
    >>> s2nn_xp.torch.forward(torch.tensor([-1.0, -0.0, 2.0]))
    tensor([0., 1., 1.])
"""


@_torch_function_protocol
@documented("torch.Tensor", _FORWARD_EXAMPLES)
def forward(x: TensorLike) -> torch.Tensor:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, _ = _prepare(x)
    if torch.compiler.is_compiling():
        # Dynamo refuses a custom jvp; and a vmap it traces shows no transform
        return _StepTraceable.apply(x)
    if _differentiates(x):
        return _Step.apply(x)
    return _scalar_as_vector(_primal, x, ALPHA, BETA, EPSILON, False)


def _differentiates(*values: Any) -> bool:
    """Whether autodiff may take derivatives of a function of `values` now.

    Autograd records (grad mode, a tensor that requires grad), a forward-mode
    level is open, or a :mod:`torch.func` transform is active (under which a
    tensor shows no requires_grad: vmap's batched one, of a tensor that
    requires it).
    """
    recorded = torch.is_grad_enabled() and any(
        isinstance(v, torch.Tensor) and v.requires_grad for v in values
    )
    return recorded or _forward_ad_level() >= 0 or _in_transform()


class _StepTraceable(torch.autograd.Function):
    """The spike where autodiff records it: the step's derivative, 0; nothing saved.

    Computed where autograd records nothing (as every spike is), it required
    no grad, and ``backward`` of a result of spikes alone raised ("element 0
    of tensors does not require grad"), under ``torch.vmap`` too, where
    ``torch.floor`` gives 0; a dual tensor's tangent was lost. ``floor`` of
    the math's ``clip`` kept ``x`` for that 0. Without a forward-mode rule,
    which ``torch.compile`` refuses (:class:`_Step` has one).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _scalar_as_vector(_primal, x, ALPHA, BETA, EPSILON, False)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        pass  # nothing to keep: the derivative is 0

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(grad)


class _Step(_StepTraceable):
    """:class:`_StepTraceable` with a forward-mode rule: zeros as well."""

    @staticmethod
    def jvp(ctx: Any, tangent: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(tangent)


def _scalar_as_vector(
    function: Callable[..., torch.Tensor], x: torch.Tensor, *arguments: Any
) -> torch.Tensor:
    """``function(x, *arguments)``, for a 0-d ``x`` as for a 1-d one of one value.

    torch.func's forward mode gives a 0-d tensor times (or plus) a Python
    number a float64 tangent, whatever the tensor's dtype (torch 2.13):
    ``jvp`` and ``jacfwd`` of ``origin``, ``gradient`` and ``vjp`` were
    float64.
    """
    if x.ndim:
        return function(x, *arguments)
    return _own_scalar(function(x.reshape(1), *arguments))


def _own_scalar(row: torch.Tensor) -> torch.Tensor:
    """The one value of `row` as a 0-d tensor of its own, not a view of `row`.

    A view made inside an autograd.Function (``forward`` of a 0-d ``x``
    that required grad) cannot be changed in place: ``y.add_(1)`` raised
    "Output 0 of _Step is a view".
    """
    return row.reshape(()).clone()


_ORIGIN_EXAMPLES = """\
    >>> import torch
    >>> import s2nn_xp.torch
    >>> s2nn_xp.torch.origin(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([0.0180, 0.5000, 1.1931])
"""


@_torch_function_protocol
@documented("torch.Tensor", _ORIGIN_EXAMPLES)
def origin(
    x: TensorLike,
    alpha: TensorLike = ALPHA,
    beta: TensorLike = BETA,
    epsilon: TensorLike = EPSILON,
) -> torch.Tensor:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, p = _prepare(x, alpha=alpha, beta=beta, epsilon=epsilon)
    return _scalar_as_vector(_primal, x, p["alpha"], p["beta"], p["epsilon"], True)


_GRADIENT_EXAMPLES = """\
    >>> import torch
    >>> import s2nn_xp.torch
    >>> s2nn_xp.torch.gradient(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([0.0707, 1.0000, 0.5000])
"""


@_torch_function_protocol
@documented("torch.Tensor", _GRADIENT_EXAMPLES)
def gradient(
    x: TensorLike, alpha: TensorLike = ALPHA, beta: TensorLike = BETA
) -> torch.Tensor:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    x, p = _prepare(x, alpha=alpha, beta=beta)
    return _scalar_as_vector(
        functools.partial(_gradient_vjp, None), x, p["alpha"], p["beta"]
    )


# The end of vjp's note on its pullback.
_PULLBACK = """a later in-place change of `x` or a
        parameter does not reach it, and it works under :mod:`torch.func` too."""
_VJP_EXAMPLES = """\
    >>> import torch
    >>> import s2nn_xp.torch
    >>> y, pullback = s2nn_xp.torch.vjp(torch.tensor([-1.0, 0.0, 1.0]))
    >>> y
    tensor([0., 1., 1.])
    >>> pullback(torch.tensor([1.0, 2.0, 2.0]))
    tensor([0.0707, 2.0000, 1.0000])
"""


@documented("torch.Tensor", _VJP_EXAMPLES, _PULLBACK)
def vjp(
    x: TensorLike,
    alpha: TensorLike = ALPHA,
    beta: TensorLike = BETA,
    epsilon: TensorLike = EPSILON,
    *,
    origin: Flag = False,
) -> tuple[torch.Tensor, Pullback[torch.Tensor]]:
    """Documented by :func:`~s2nn_xp._adapter_docs.documented`."""
    with_origin = validate_flag("origin", origin)
    x, p = _prepare(x, alpha=alpha, beta=beta, epsilon=epsilon)
    # The pullback differentiates at this call's values: copies (autograd
    # still sees through them), since a training loop may update x or a
    # parameter in place before it calls the pullback.
    x = x.clone()
    p = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in p.items()}
    # s2nn's value with its derivative (the surrogate rule, as JAX's vjp
    # gives): it had none (torch.func.grad of it was 0, backward() raised),
    # or in origin mode origin's own. Of the copies: what its backward saves
    # is what the pullback holds, once.
    y = _spike_of_prepared(x, p, with_origin)
    # The cotangent is checked against x and cast to x's dtype.
    prepared = Prepared(xp=_xp, x=x, dtype=x.dtype, params=p)

    def pullback(cotangent: Any) -> torch.Tensor:
        cotangent = _prepare_cotangent(prepared, cotangent).expand_as(x)
        if x.ndim:
            return _gradient_vjp(cotangent, x, p["alpha"], p["beta"])
        # as _scalar_as_vector, with the cotangent a 1-d tensor too
        row = _gradient_vjp(cotangent.reshape(1), x.reshape(1), p["alpha"], p["beta"])
        return _own_scalar(row)

    return y, pullback


def _prepare_cotangent(prepared: Prepared, cotangent: Any) -> torch.Tensor:
    """The pullback's cotangent in ``x``'s compute dtype, checked against ``x``.

    A tensor is checked here by the rules of ``prepare_cotangent``, without
    its namespace lookups (array-api-compat's cached functions, each a
    warning of ``torch.compile``); other values go through it.
    """
    if not isinstance(cotangent, torch.Tensor):
        return prepare_cotangent(prepared, cotangent)
    x = prepared.x
    _check_dense("cotangent", cotangent)
    _check_real("cotangent", cotangent.dtype)
    check_same_device("cotangent", cotangent.device, x.device)
    check_cotangent_shape(tuple(cotangent.shape), tuple(x.shape))
    return cotangent.to(_compute_dtype(x.dtype))


if TYPE_CHECKING:

    class _ParameterAttribute:
        """`alpha` and `beta` of :class:`S2NN`, as type checkers see them.

        Read as the module's type argument says it stores them: a Python
        number (a constant) or a tensor (a parameter or a buffer), a tensor
        where learnable; assigned as the constructor takes them. At run
        time :class:`torch.nn.Module` keeps them (no descriptor).
        """

        def __get__(
            self, module: S2NN[_Stored], owner: type | None = None
        ) -> _Stored: ...
        def __set__(self, module: S2NN[Any], value: TensorLike) -> None: ...

    class _EpsilonAttribute:
        """`epsilon` of :class:`S2NN`: a number or a buffer, learnable or not."""

        def __get__(
            self, module: S2NN[Any], owner: type | None = None
        ) -> Parameter: ...
        def __set__(self, module: S2NN[Any], value: TensorLike) -> None: ...


# How S2NN stores alpha and beta, for type checkers: a number or a tensor;
# always a tensor (an nn.Parameter) where built with learnable=True.
# Covariant: a learnable module is a module (an annotation S2NN takes it).
# typing_extensions' TypeVar for the default (PEP 696; in typing from
# Python 3.13), so that S2NN alone means S2NN[float | Tensor]; torch
# requires typing_extensions.
_Stored = TypeVar_("_Stored", bound=Parameter, covariant=True, default=Parameter)


class S2NN(nn.Module, Generic[_Stored]):
    """The S2NN spike function as a :class:`torch.nn.Module`.

    A drop-in surrogate spike function for spiking-network libraries: use it
    as ``surrogate_function=`` of a SpikingJelly neuron or ``spike_grad=`` of
    an snnTorch neuron. It has the surrogate API of SpikingJelly 2.0: the
    ``spiking`` attribute and keyword (the opposite of `origin`),
    :meth:`set_spiking_mode`, and `alpha` that models read and assign.

    Parameters
    ----------
    alpha, beta : float or array_like, default 4.0 and 1.0
        As for :func:`s2nn`. Tensors, lists and arrays give per-neuron values
        (they must broadcast to the inputs).
    epsilon : float or array_like, default 1e-8
        As for :func:`s2nn`; always a constant.
    origin : bool, optional
        Return the smooth origin function instead of the spike; a settable
        attribute. Not given (None): ``not spiking`` if `spiking` is given,
        else False; given, a contradicting `spiking` raises.
    learnable : bool, default False
        Register `alpha` and `beta` as :class:`torch.nn.Parameter` s (in the
        default floating dtype, of the shape given) so that an optimizer
        trains them. Otherwise Python numbers stay constants and tensors are
        buffers (they follow :meth:`~torch.nn.Module.to`): copies, so that a
        tensor that requires grad warns (its copy learns nothing; an
        ``nn.Parameter`` given is shared and learns). For type checkers,
        ``learnable=True`` builds an ``S2NN[torch.Tensor]``, whose `alpha`
        and `beta` read as tensors; other modules are ``S2NN[float |
        torch.Tensor]``, what ``S2NN`` alone means.
    spiking : bool, optional
        SpikingJelly's name for ``not origin`` (``spiking=False`` is
        ``origin=True``); give one of the two.

    Raises
    ------
    ValueError
        A parameter out of its range (tensor values are checked here too,
        but for values batched by ``torch.func.vmap``, which cannot be read
        there), or `spiking` and `origin` that contradict each other.
    TypeError
        A parameter that is no real number or array, or a non-bool flag.

    Notes
    -----
    Parameters keep the constructor's rules after construction: assigning
    ``spike.alpha = value`` (as SpikingJelly's models do) and
    :meth:`~torch.nn.Module.load_state_dict` check the values as the constructor
    does (a refused load is one of torch's loading errors, a RuntimeError naming
    each refused key, after the other modules have loaded; the module refused loads
    nothing), and so does a conversion to another dtype (``.half()``,
    ``.to(dtype)``) in the dtype it stores them in. A learnable parameter keeps its
    :class:`~torch.nn.Parameter` (and an optimizer's hold on it): a number or tensor
    assigned to it is copied into it; an ``nn.Parameter`` assigned replaces it. A
    number assigned to a module that is not learnable is a constant again, a tensor
    a buffer; a constant is in no state dict (as SpikingJelly's numbers are
    not): a number changed after construction (``spike.alpha += 0.2``) is
    kept by pickling the whole module, not by ``state_dict``: a module built
    anew and loaded from the state dict has its constructor's values. After
    ``del spike.alpha`` (or ``beta``), a tensor that autograd
    or forward mode differentiates (a hypernetwork's output, a dual tensor as
    in PyTorch's forward-mode AD of modules), at that assignment and every
    later one, is checked and kept as given, as :class:`torch.nn.Module` keeps
    any tensor there, so that its derivatives reach it (and it is in no state
    dict); a value without derivatives is registered by the constructor's
    rules again (a tensor one copied into a parameter then warns). An
    in-place update of a parameter or buffer (``spike.alpha += step``; for a
    learnable one under :func:`torch.no_grad`, as for any ``nn.Parameter``) is
    checked after the update, which has changed the tensor already: a ValueError
    says that its values broke the rules, and the tensor keeps them until it is
    given valid ones (an optimizer's steps are not checked at all: tensor values are
    not, at a call, as the docs' Definition page says under Parameters). A refused
    conversion leaves this module as it was; modules that a model's ``.half()``
    converted before it stay converted; values that are invalid already (an
    optimizer's steps) are converted as they are, so that a model that diverged can
    still move to float64. A model built on the meta device gets the constructor's
    values by :meth:`reset_parameters` after :meth:`~torch.nn.Module.to_empty` (as
    FSDP initialises each module), where they were numbers, lists or arrays; it
    pickles them as tensors, so that a whole model saved with :func:`torch.save`
    loads with ``torch.load(..., weights_only=True)`` where this class is
    allow-listed (:func:`torch.serialization.safe_globals`). FSDP
    (``FullyShardedDataParallel`` and ``fully_shard``) shards a learnable module as
    any other: what it puts in place of the parameters is stored as given
    (``fully_shard`` takes per-neuron parameters only: it refuses 0-d ones);
    assignments and state dicts are checked as ever, a sharded tensor's values on
    each process, its own shard (so one process may refuse what another takes:
    let the error end every process, since one that catches it waits at the
    next collective for the others); with
    FSDP1's ``use_orig_params=False``, between calls, inside
    ``summon_full_params(writeback=True)`` only. ``torch.distributed.checkpoint``'s
    ``load`` writes into the tensors in place, unchecked, as an optimizer's steps
    do. torch's hook-based wrappers (``spectral_norm``, the old ``weight_norm``,
    ``prune``) hold `alpha` or `beta` as they hold ``nn.Linear``'s weight: the value
    they compute before every call is theirs, unchecked; so is the value a
    parametrization (:mod:`torch.nn.utils.parametrize`) computes at each call
    (a value assigned through it is checked; choose one whose values are
    positive, such as softplus).

    Examples
    --------
    >>> import torch
    >>> from s2nn_xp.torch import S2NN
    >>> spike = S2NN()
    >>> spike
    S2NN(alpha=4.0, beta=1.0, epsilon=1e-08)
    >>> spike(torch.tensor([-0.5, 0.5]))
    tensor([0., 1.])
    >>> spike.spiking
    True
    >>> learned = S2NN(alpha=[4.0, 2.0], learnable=True)
    >>> [name for name, _ in learned.named_parameters()]
    ['alpha', 'beta']
    >>> learned.alpha.shape
    torch.Size([2])
    >>> learned.alpha = 0.5  # copied into the parameter
    >>> learned.alpha
    Parameter containing:
    tensor([0.5000, 0.5000], requires_grad=True)
    >>> learned.alpha = -1.0
    Traceback (most recent call last):
    ...
    ValueError: alpha must be finite and > 0.0
    """

    if TYPE_CHECKING:  # declared, so that pyright does not infer from __init__
        alpha: _ParameterAttribute = _ParameterAttribute()
        beta: _ParameterAttribute = _ParameterAttribute()
        epsilon: _EpsilonAttribute = _EpsilonAttribute()

    @overload
    def __init__(
        self: S2NN[torch.Tensor],
        alpha: TensorLike = ...,
        beta: TensorLike = ...,
        epsilon: TensorLike = ...,
        origin: Flag | None = ...,
        *,
        learnable: Literal[True],
        spiking: Flag | None = ...,
    ) -> None: ...
    @overload
    def __init__(
        self: S2NN[torch.Tensor],
        alpha: TensorLike,
        beta: TensorLike,
        epsilon: TensorLike,
        origin: Flag | None,
        learnable: Literal[True],
        *,
        spiking: Flag | None = ...,
    ) -> None: ...
    @overload
    def __init__(
        self: S2NN[Parameter],
        alpha: TensorLike = ...,
        beta: TensorLike = ...,
        epsilon: TensorLike = ...,
        origin: Flag | None = ...,
        learnable: Flag = ...,
        *,
        spiking: Flag | None = ...,
    ) -> None: ...
    def __init__(
        self,
        alpha: TensorLike = ALPHA,
        beta: TensorLike = BETA,
        epsilon: TensorLike = EPSILON,
        origin: Flag | None = None,
        learnable: Flag = False,
        *,
        spiking: Flag | None = None,
    ) -> None:
        super().__init__()
        self._learnable = validate_flag("learnable", learnable)
        # None: not given (False, or what spiking says)
        self.origin = False if origin is None else origin
        if spiking is not None:
            spiking = validate_flag("spiking", spiking)
            if origin is not None and self.origin == spiking:
                msg = (
                    f"spiking={spiking} contradicts origin={self.origin}; "
                    "give one of them"
                )
                raise ValueError(msg)
            self.spiking = spiking
        self.alpha = alpha
        self.beta = beta
        self.epsilon = epsilon
        # For reset_parameters(): None where a tensor was given without
        # values (on the meta device, or fake).
        given = {"alpha": alpha, "beta": beta, "epsilon": epsilon}
        self._initial_values = {
            name: _known_values(name, value) for name, value in given.items()
        }
        self._keep_pickled_host_values()

    def _keep_pickled_host_values(self) -> None:
        """The tensors that pickling gives for the constructor's NumPy values.

        Made once, here, and kept with the module (views of its arrays, no
        copy): a pickler for another process (multiprocessing's spawn, a
        DataLoader's workers) moves a tensor to shared memory, and one made
        at each pickling was freed before the other process read it (it
        died unpickling). Not where a mode makes stand-ins for tensors
        (FakeTensorMode): pickling makes its own then, as before.
        """
        kept = {}
        for name, value in (self.__dict__.get("_initial_values") or {}).items():
            if isinstance(value, np.ndarray):
                tensor = torch.from_numpy(value)
                if type(tensor) is torch.Tensor:
                    kept[name] = tensor
        self.__dict__[_PICKLED_HOST_VALUES] = kept

    def reset_parameters(self) -> None:
        """Give `alpha`, `beta` and `epsilon` the constructor's values again.

        Into the tensors the module holds, on their device and in their
        dtype (a learnable parameter keeps its ``nn.Parameter``), checked as
        an assignment is. torch's way to give values to a model built
        without them: on the meta device, then :meth:`~torch.nn.Module.to_empty`,
        whose memory holds no values (FSDP calls it on each module). A
        tensor that was given on the meta device has none to give back:
        ValueError, saying to assign them.
        """
        initial = getattr(self, "_initial_values", None)
        if initial is None:
            msg = (
                "this module keeps no constructor values (it was saved by a "
                "version without reset_parameters); assign the values instead"
            )
            raise ValueError(msg)
        for name in _PARAMETER_NAMES:
            value = initial[name]
            if isinstance(value, str) and value == _LOADED_WITHOUT_VALUES:
                msg = (
                    f"{name}'s constructor values were not loaded (torch.load "
                    "to the meta device keeps none); load to a device with "
                    f"values (map_location='cpu'), or assign them (module.{name} "
                    "= ...)"
                )
                raise ValueError(msg)
            if value is None:
                msg = (
                    f"{name} has no constructor values to reset to (given as a "
                    "tensor without values here: on the meta device, fake, or "
                    f"inside a torch.func transform); assign them (module.{name} "
                    "= ...), or build the module from numbers or lists, whose "
                    "values it keeps"
                )
                raise ValueError(msg)
            if parametrize.is_parametrized(self, name):
                setattr(self, name, value)  # to its right_inverse, as assigned
                continue
            wrapper = _wrapper_of(self, name)
            if wrapper is not None:
                msg = (
                    f"{name} is computed before every call by a hook of "
                    f"{type(wrapper).__module__} from tensors of its own, to "
                    "which reset_parameters cannot give values; reset before "
                    f"the wrapper is applied, or give its tensors values"
                )
                raise ValueError(msg)
            value = _checked(name, value, copy=True)  # as the constructor checks
            current: torch.Tensor | None = self._parameters.get(name)
            if current is None and not isinstance(value, float):
                current = self._buffers.get(name)  # a number is a constant again
            if current is None:
                setattr(self, name, value)
                continue
            with torch.no_grad():
                current.copy_(_like(name, value, current))

    def __setattr__(self, name: str, value: Any) -> None:
        """Parameters are checked and stored by the constructor's rules.

        Except where torch's own machinery owns the attribute: a
        parametrization's (``torch.nn.utils.parametrize``; the value goes
        to its ``right_inverse``), a data-parallel replica's (its
        parameters are tensors computed from the original ones, whose
        gradients must reach them), FSDP's (:func:`_set_by_fsdp`) and a
        hook-based wrapper's (:meth:`_is_a_wrappers`).
        """
        if name == "learnable":
            if _setter_of(type(self), name) is not None:
                # A subclass's own setter (nn.Module's __setattr__ would store
                # a parameter or a module value before the property got it).
                object.__setattr__(self, name, value)
                return
            # Refused here (a read-only property, so that type checkers
            # refuse it too).
            msg = (
                "learnable is fixed when the module is built: build "
                "S2NN(..., learnable=True) for alpha and beta to learn, or assign "
                "them nn.Parameter values; to stop them learning, call "
                "requires_grad_(False) on the module"
            )
            raise AttributeError(msg)
        if (
            name not in _PARAMETER_NAMES
            or getattr(self, "_is_replica", False)
            or _set_by_fsdp()
            or _is_flat_parameter_view(value)  # FSDP1's, past any subclass
        ):
            super().__setattr__(name, value)
        elif parametrize.is_parametrized(self, name):
            # The value it stands for: checked, and given to right_inverse as
            # a tensor of its own like the one the parametrization gives (a
            # learnable parameter copies any value into itself likewise;
            # right_inverse takes tensors only, and its result becomes the
            # parameter's storage).
            checked = _checked(name, value, copy=False)
            now = getattr(self, name)
            # in the dtype of the tensor it stores (a parametrization may
            # give another: rounding through that would change the value)
            stored = getattr(_chain(self, name), "original", now)
            replacement = _like(name, checked, now, stored.dtype)
            # No reference of ours to the parameter while it is replaced:
            # torch.utils.swap_tensors (swap_module_params_on_conversion)
            # refuses a tensor referred to from elsewhere.
            del now, stored
            # Its tensors as they are (original, or original0, original1, ...
            # where right_inverse gives several), to put back if refused.
            saved = {
                key: tensor.detach().clone()
                for key, tensor in _originals(_chain(self, name))
            }
            super().__setattr__(name, replacement)
            try:
                # What right_inverse stored, as the parametrization gives it
                # back, is checked as load_state_dict checks it (a value it
                # cannot invert, as one below a floor it adds, became NaN).
                _checked(name, getattr(self, name), copy=False)
            except (TypeError, ValueError) as exc:
                with torch.no_grad():
                    for key, tensor in _originals(_chain(self, name)):
                        tensor.copy_(saved[key])
                msg = (
                    f"{name} assigned through its parametrization comes back "
                    f"from it (right_inverse, then forward) refused: {exc}; "
                    f"{name} is left as it was"
                )
                raise type(exc)(msg) from exc
        elif self._is_a_wrappers(name, value):
            # As nn.Module stores it: the wrapper's, unchecked (its values
            # follow the wrapper's parameters, as an optimizer's steps do).
            for store in (self._parameters, self._buffers):
                store.pop(name, None)
            super().__setattr__(name, value)
        else:
            self._assign(name, value)

    def _is_a_wrappers(self, name: str, value: Any) -> bool:
        """Whether `value` for `name` is torch's hook-based wrapper's to hold.

        :func:`torch.nn.utils.spectral_norm`, :func:`~torch.nn.utils.weight_norm`
        and :mod:`torch.nn.utils.prune` take `alpha` or `beta` out of the
        module, keep their own tensors (``alpha_orig``) and set the value
        they compute from them before every call: it must stay their tensor
        (a parameter of this module made of it took the gradient theirs
        need, and nothing learned). So while such a wrapper's hook holds the
        name, any value is stored as :class:`torch.nn.Module` stores it, as
        for ``nn.Linear``'s weight (a value assigned meanwhile is overwritten
        at the next call; the ``nn.Parameter`` ``prune.remove`` gives back is
        registered as it is, pruned zeros too); and as a wrapper takes the
        name over (before its hook is registered), so is the tensor it sets
        where the tensors it keeps in its place are (``alpha_orig``, or
        ``alpha_g`` and ``alpha_v``).
        """
        if name == "epsilon":
            return False  # a constant: no wrapper takes it
        if _wrapper_of(self, name) is not None:
            return True  # an nn.Parameter too: prune.remove's (unchecked)
        if (
            not isinstance(value, torch.Tensor)
            or isinstance(value, nn.Parameter)
            or name in self._parameters
            or name in self._buffers
            or isinstance(self.__dict__.get(name), float)
        ):
            return False
        # Taken over: the tensors the wrapper keeps in its place are there
        # (prune's and spectral_norm's original, weight_norm's g and v).
        kept = self._parameters
        return f"{name}_orig" in kept or (f"{name}_g" in kept and f"{name}_v" in kept)

    def _assign(self, name: str, value: Any) -> None:
        """Check `value` and store it as a constant, a buffer or a parameter."""
        if _is_flat_parameter_view(self.__dict__.get(name)):
            # FSDP1 (use_orig_params=False) holds it as a view of its flat
            # parameter, and puts that back at the next call: a value
            # stored here was lost, silently.
            msg = (
                f"{name} is a view of FSDP's flat parameter here (FSDP's "
                "use_orig_params=False), which FSDP puts back at every call; "
                "set it (assignment, reset_parameters) inside "
                "FullyShardedDataParallel.summon_full_params(model, "
                "writeback=True), or shard with use_orig_params=True"
            )
            raise RuntimeError(msg)
        differentiated = _differentiated(value)
        # computed from tensors that take its derivatives: not a leaf, or dual
        computed = differentiated and (value.grad_fn is not None or _has_tangent(value))
        if name != "epsilon" and differentiated and self._held_plainly(name):
            # Deleted (or holding such a tensor already), then given a tensor
            # that autograd or forward mode sees through (PyTorch's
            # forward-mode AD of modules: del, then a dual tensor; a
            # hypernetwork's output at every step; functional_call's swap
            # of one): kept as given, as nn.Module keeps any tensor there. A
            # copy into a parameter or buffer lost its derivatives, silently.
            _checked(name, value, copy=False)
            super().__setattr__(name, value)
            return
        learnable = self.learnable and name != "epsilon"
        if (
            not learnable
            and isinstance(value, torch.Tensor)
            and value.requires_grad
            and (name == "epsilon" or not isinstance(value, nn.Parameter))
        ):
            if name == "epsilon":
                msg = EPSILON_IS_CONSTANT
            else:
                msg = (
                    f"{name} requires grad, but this module keeps a copy of it "
                    f"that learns nothing (a buffer); for {name} to learn, pass "
                    "learnable=True (the module learns its own) or an "
                    "nn.Parameter (the module shares it)"
                )
            # torch's frames too: load_state_dict(assign=True) assigns
            level = stacklevel_of_the_user((__name__.partition(".")[0], "torch"))
            warnings.warn(msg, UserWarning, stacklevel=level)
        # Host data (numbers, lists, arrays) becomes a tensor on the CPU, to
        # be checked and copied from there; a new tensor of the module then
        # goes where the tensor it replaces was, or to torch's default device
        # (a module being built), as nn.Linear's parameters do.
        from_host = not isinstance(value, torch.Tensor)
        value = _checked(name, value, copy=not isinstance(value, nn.Parameter))
        if learnable and isinstance(value, float):
            # Stored as a tensor, it must fit float32 as a list's values must;
            # in float64 (exact), so that it is rounded once, into the
            # parameter's dtype, not first into the default dtype.
            _check_float32(name, value)
            value = torch.tensor(value, dtype=torch.float64, device="cpu")
        current = self._parameters.get(name) if learnable else None
        if differentiated and learnable and (current is not None or computed):
            # A hypernetwork's output, given to the constructor or assigned at
            # every step: copied into the module's own parameter (below), it
            # loses its derivatives, and what produced it learns nothing. (A
            # leaf that requires grad, given to the constructor, says the
            # value is to learn: the module's parameter learns it.)
            msg = (
                f"{name} has derivatives (it requires grad, or is a dual "
                "tensor), which this module's own parameter, that it is "
                "copied into, does not pass on; to differentiate through "
                f"the value, assign it after deleting the module's {name} "
                f"(del module.{name}: a tensor with derivatives is then kept "
                "as given), or pass it with torch.func.functional_call"
            )
            level = stacklevel_of_the_user((__name__.partition(".")[0], "torch"))
            warnings.warn(msg, UserWarning, stacklevel=level)
        # Copied into a learnable module's own parameter (an optimizer holds
        # it); a parameter given to a module that is not learnable is the
        # caller's: replaced, not written into.
        if current is not None and not isinstance(value, nn.Parameter):
            with torch.no_grad():
                current.copy_(_like(name, value, current))
            return
        # A new tensor from host data goes where the one it replaces was,
        # else (built, or a number before) to the default device.
        held: torch.Tensor | None = self._parameters.get(name)
        if held is None:
            held = self._buffers.get(name)
        for store in (self._parameters, self._buffers, self.__dict__):
            store.pop(name, None)
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, float):
            # stored as any attribute (torch's stubs name tensors and modules)
            super().__setattr__(name, cast(Any, value))
        else:
            if learnable:
                value = _storable(name, value, torch.get_default_dtype())
            if from_host:
                value = value.to(
                    torch.get_default_device() if held is None else held.device
                )
            if learnable:
                self.register_parameter(name, nn.Parameter(value))
            else:
                self.register_buffer(name, value)

    def _held_plainly(self, name: str) -> bool:
        """Whether `name` of this built module is no parameter, buffer or number.

        Deleted (``del module.alpha``), or a tensor kept as given after that.
        """
        built = "_initial_values" in self.__dict__
        if not built or name in self._parameters or name in self._buffers:
            return False
        held = self.__dict__.get(name)
        return held is None or isinstance(held, torch.Tensor)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Check the parameter values in `state_dict` before they are loaded.

        Loaded into the current tensor's dtype, they are checked in it; with
        ``load_state_dict(assign=True)`` the given tensors replace the
        current ones, in their own dtype. Checked before this module's own
        load pre-hooks run (torch's base method runs them): a value that one
        of them renames or changes is not seen as it loads. A refusal is one of
        torch's loading errors (``error_msgs``: ``load_state_dict`` raises
        them together, naming each key, as a RuntimeError): raised here, it
        skipped the hooks of the modules above (FSDP's, which left the
        model unusable). This module then loads none of its values, its
        parametrizations' tensors neither; its other keys are reported as
        torch reports them.
        """
        assign = local_metadata.get("assign_to_params_buffers", False)
        refused = []
        for name in _PARAMETER_NAMES:
            try:
                self._check_loaded(name, state_dict, prefix, assign)
            except (TypeError, ValueError) as exc:
                key = prefix + name
                if parametrize.is_parametrized(self, name):
                    key = f"{prefix}parametrizations.{name}"
                refused.append(f"refused {key}: {exc}")
        taken_out = []
        if refused:
            error_msgs.extend(refused)
            taken_out = self._keep_values(state_dict, prefix)
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )
        missing_keys[:] = [key for key in missing_keys if key not in taken_out]

    def _keep_values(self, state_dict: dict[str, Any], prefix: str) -> list[str]:
        """Take this module's values out of a load (the dict is the load's copy).

        Its own keys are taken out (the caller takes them off the missing
        ones); its parametrizations' tensors (a child module's, loaded after
        this one) are given themselves instead, which assign=True keeps, so
        that they are not reported missing. Returns the keys taken out.
        """
        # (a name held as a number loads nothing: its key stays, unexpected)
        held_as_tensors = [*self._parameters, *self._buffers]
        taken = [
            prefix + name
            for name in _PARAMETER_NAMES
            if prefix + name in state_dict and name in held_as_tensors
        ]
        for key in taken:
            del state_dict[key]
        chain = getattr(self, "parametrizations", None)
        if isinstance(chain, nn.Module):
            own = f"{prefix}parametrizations."
            # every name of a tensor shared by two parametrizations
            held: dict[str, torch.Tensor] = dict(
                chain.named_parameters(remove_duplicate=False)
            )
            held.update(chain.named_buffers(remove_duplicate=False))
            for key, tensor in held.items():
                if own + key in state_dict:
                    state_dict[own + key] = tensor
        return taken

    def _check_loaded(
        self, name: str, state_dict: dict[str, Any], prefix: str, assign: bool
    ) -> None:
        """Check the value that loading `state_dict` gives parameter `name`."""
        if parametrize.is_parametrized(self, name):
            # Its originals, and the parametrization's own tensors, are
            # loaded by it (a child module, after this one): the value
            # they give together is checked.
            own = f"{prefix}parametrizations.{name}."

            def load(key: str, now: torch.Tensor, own: str = own) -> Any:
                value = state_dict.get(own + key)
                if not isinstance(value, torch.Tensor) or assign:
                    return value
                return value.to(device=now.device, dtype=now.dtype)

            _check_parametrized(self, name, load)
        elif prefix + name in state_dict and (
            name in self._parameters or name in self._buffers
        ):
            # (a name held as a number is loaded from nothing: torch
            # reports the key as unexpected, or ignores it, strict=False)
            given = state_dict[prefix + name]
            value = _checked(name, given, copy=False)
            current = getattr(self, name)
            if isinstance(current, torch.Tensor) and not assign:
                _storable(name, value, current.dtype)
            elif assign and value is not given:
                # Integers, made floating as the constructor makes them
                # (a learnable parameter could not hold them); the dict
                # is load_state_dict's own copy of the caller's.
                state_dict[prefix + name] = value

    def _apply(
        self, fn: Callable[[torch.Tensor], torch.Tensor], *args: Any, **kwargs: Any
    ) -> Any:
        """Refuse a conversion (``.half()``, ``.to(dtype)``) that breaks a value.

        A value stored as valid may not be in a narrower dtype:
        ``S2NN(alpha=1e5, learnable=True).half()`` would store inf. Each
        tensor of this module is converted once beforehand and checked where
        its dtype changes (``to_empty`` keeps dtypes: its uninitialised
        memory is no value), so that a refusal leaves the module as it was.
        """
        for name in _PARAMETER_NAMES:
            if parametrize.is_parametrized(self, name):

                def convert(key: str, now: torch.Tensor) -> torch.Tensor | None:
                    # whether fn changes the dtype, asked of an empty tensor
                    # (no copy where it moves or keeps them: to_empty's
                    # memory holds no value)
                    empty = torch.empty(0, dtype=now.dtype, device=now.device)
                    if fn(empty).dtype == now.dtype:
                        return None
                    return fn(now)

                with torch.no_grad():
                    converted = _check_parametrized(self, name, convert, check=False)
                    if converted is not None:  # a value with values
                        # the value now, in the dtype it will be in (torch
                        # saturates where a float8 format has no inf, and
                        # the value converted is then finite: 1e5 -> 448),
                        # and the value the converted tensors give
                        _check_conversion(
                            name, getattr(self, name), converted.dtype, converted
                        )
                continue
            tensor = self._parameters.get(name, self._buffers.get(name))
            if tensor is None:
                continue
            with torch.no_grad():
                converted = fn(tensor)
            if converted.dtype != tensor.dtype:
                _check_conversion(name, tensor, converted.dtype)
        return super()._apply(fn, *args, **kwargs)

    @property
    def learnable(self) -> bool:
        """Whether `alpha` and `beta` are stored as parameters that learn.

        Fixed when the module is built: setting it would have changed how
        later assignments are stored, not the values the module holds.
        """
        return self._learnable

    def __copy__(self) -> Self:
        """A shallow copy: the same tensors, in containers of its own.

        ``copy.copy``'s default shares nn.Module's dicts and sets (its
        parameters, buffers, submodules, hooks) with the original: assigning
        a number to the copy's `alpha` (a constant, held in none) took the
        original's away, and pruning the copy's (a hook, and tensors of its
        own) left the original's hook without them. The tensors, submodules
        and hook functions themselves stay shared, as a shallow copy's are.
        """
        copied = type(self).__new__(type(self))
        copied.__setstate__(self.__getstate__())
        for name, held in vars(copied).items():
            if isinstance(held, (dict, set)):
                vars(copied)[name] = held.copy()
        return copied

    def __getstate__(self) -> dict[str, Any]:
        """The module's state, the constructor's host values as CPU tensors.

        ``torch.load(weights_only=True)`` reads tensors; a NumPy array needs
        NumPy's internals allow-listed. Each in a 1-tuple, to tell it from a
        tensor given (whose values reset in its own dtype).
        """
        state = dict(super().__getstate__())  # without a compiled call
        kept = state.pop(_PICKLED_HOST_VALUES, {})
        # Set by a call of S2NN[torch.Tensor](...): a typing alias, which
        # torch.load(weights_only=True) would refuse (operator.getitem).
        state.pop("__orig_class__", None)
        initial = state.get("_initial_values")
        if initial is not None:
            state["_initial_values"] = {
                name: (kept[name] if name in kept else torch.from_numpy(value),)
                if isinstance(value, np.ndarray)
                else value
                for name, value in initial.items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A module pickled when `learnable` was a plain attribute loads too."""
        if "learnable" in state:
            state = {**state, "_learnable": state["learnable"]}
            del state["learnable"]
        initial = state.get("_initial_values")
        if initial is not None:  # NumPy arrays again (as earlier versions pickled)
            arrays = {name: _unpickled_initial(v) for name, v in initial.items()}
            state = {**state, "_initial_values": arrays}
        super().__setstate__(state)
        self._keep_pickled_host_values()

    @property
    def origin(self) -> bool:
        """Whether calls return the smooth function instead of the spike."""
        return self._origin

    @origin.setter
    def origin(self, value: Flag) -> None:
        self._origin = validate_flag("origin", value)

    @property
    def spiking(self) -> bool:
        """SpikingJelly's name for ``not origin``: whether calls give the spike."""
        return not self.origin

    @spiking.setter
    def spiking(self, value: Flag) -> None:
        self.origin = not validate_flag("spiking", value)

    def set_spiking_mode(self, spiking: Flag) -> None:
        """SpikingJelly's switch: the spike (True) or the origin function (False).

        Examples
        --------
        >>> import torch
        >>> from s2nn_xp.torch import S2NN
        >>> spike = S2NN()
        >>> spike.set_spiking_mode(False)
        >>> spike(torch.tensor([-1.0, 1.0]))
        tensor([0.0180, 1.1931])
        """
        self.spiking = spiking

    @staticmethod
    def spiking_function(
        x: torch.Tensor, alpha: Parameter = ALPHA, beta: Parameter = BETA
    ) -> torch.Tensor:
        """SpikingJelly's ``spiking_function(x, alpha, beta)``: :func:`s2nn`.

        Examples
        --------
        >>> import torch
        >>> from s2nn_xp.torch import S2NN
        >>> S2NN.spiking_function(torch.tensor([-1.0, 1.0]), 2.0)
        tensor([0., 1.])
        """
        return s2nn(x, alpha, beta)

    @staticmethod
    def primitive_function(
        x: torch.Tensor, alpha: Parameter = ALPHA, beta: Parameter = BETA
    ) -> torch.Tensor:
        """SpikingJelly's ``primitive_function(x, alpha, beta)``: the origin.

        Examples
        --------
        >>> import torch
        >>> from s2nn_xp.torch import S2NN
        >>> S2NN.primitive_function(torch.tensor([-1.0, 1.0]), 2.0)
        tensor([0.1192, 1.1931])
        """
        return s2nn(x, alpha, beta, origin=True)

    # x: torch.Tensor, as nn.Module's forward and methods like it take: a
    # subclass's override that says so is no error (host data works too).
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``s2nn(x, alpha, beta, epsilon, origin=self.origin)``."""
        return s2nn(x, self.alpha, self.beta, self.epsilon, origin=self.origin)

    def surrogate_fun(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`origin` of `x` with the module's parameters, a tensor.

        The smooth origin function, differentiable as ordinary operations (no
        surrogate derivative attached); `x` as for :meth:`forward`.

        Examples
        --------
        >>> import torch
        >>> from s2nn_xp.torch import S2NN
        >>> S2NN(alpha=2.0).surrogate_fun(torch.tensor([-1.0, 1.0]))
        tensor([0.1192, 1.1931])
        """
        return origin(x, self.alpha, self.beta, self.epsilon)

    def surrogate_grad(self, x: torch.Tensor) -> torch.Tensor:
        """:func:`gradient` of `x` with the module's parameters, a tensor.

        The surrogate gradient, differentiable as ordinary operations; `x` as
        for :meth:`forward`.

        Examples
        --------
        >>> import torch
        >>> from s2nn_xp.torch import S2NN
        >>> S2NN(alpha=2.0).surrogate_grad(torch.tensor([-1.0, 1.0]))
        tensor([0.2100, 0.5000])
        """
        return gradient(x, self.alpha, self.beta)

    def __prepare_scriptable__(self) -> S2NN:
        """Refuse ``torch.jit.script``, saying what works instead.

        TorchScript cannot compile an ``autograd.Function`` or the Python
        checks of the arguments; it failed deep inside them ("attribute
        lookup is not defined on python value of type 'dict'").
        """
        msg = (
            "torch.jit.script cannot compile S2NN (an autograd.Function with "
            "Python argument checks); use torch.compile to speed a model up, "
            "and torch.export or ONNX (torch.onnx.export(..., dynamo=True)) "
            "to deploy it (torch.jit.trace runs it, but torch.jit.save cannot "
            "write the trace)"
        )
        raise RuntimeError(msg)

    def extra_repr(self) -> str:
        """``alpha=..., beta=..., epsilon=...`` as the core class prints them."""
        parts = [
            f"{name}={_describe(getattr(self, name))}"
            for name in _PARAMETER_NAMES
            if hasattr(self, name)  # taken out (a wrapper, del): none until set
        ]
        if self.origin:
            parts.append("origin=True")
        if self.learnable:
            parts.append("learnable=True")
        return ", ".join(parts)


# The attribute keeping the tensors that S2NN.__getstate__ pickles for the
# constructor's NumPy values (made where those are set): {name: tensor}.
_PICKLED_HOST_VALUES = "_pickled_host_values"


# torch's hook-based wrappers: (module, class of its hook, attribute naming
# the tensor it computes). Found in sys.modules: a wrapper whose module is
# not imported has no hook on any module.
_HOOK_WRAPPERS = (
    ("torch.nn.utils.prune", "BasePruningMethod", "_tensor_name"),
    ("torch.nn.utils.spectral_norm", "SpectralNorm", "name"),
    ("torch.nn.utils.weight_norm", "WeightNorm", "name"),
)


def _setter_of(cls: type, name: str) -> Callable[..., None] | None:
    """What sets `name` of `cls`'s objects, where it is a descriptor's.

    A property's setter, or another data descriptor's ``__set__``; None for
    a property without a setter (this module's ``learnable``) or no
    descriptor.
    """
    attribute = inspect.getattr_static(cls, name, None)
    if isinstance(attribute, property):
        return attribute.fset
    setter: Callable[..., None] | None = getattr(type(attribute), "__set__", None)
    return setter


def _chain(module: nn.Module, name: str) -> nn.Module:
    """The parametrizations of ``module``'s `name` (``torch.nn.utils.parametrize``)."""
    chains = module.parametrizations
    assert isinstance(chains, nn.ModuleDict)  # for type checkers: a Module
    return chains[name]


def _originals(parametrizations: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The tensors a parametrization computes from, by name (``original*``)."""
    own = [
        *parametrizations.named_parameters(recurse=False),
        *parametrizations.named_buffers(recurse=False),
    ]
    return [(key, tensor) for key, tensor in own if key.startswith("original")]


def _set_by_fsdp() -> bool:
    """Whether the caller of ``S2NN.__setattr__`` is torch's FSDP.

    FSDP puts the parameters it shards back into the module by assignment
    where a module has a ``__setattr__`` of its own: FSDP1 views of its flat
    parameter (plain tensors, after deleting the parameter), FSDP2 its
    sharded ``DTensor`` parameters and their gathered values, at every
    step. They are the module's own values in another form, stored as
    :class:`torch.nn.Module` stores them: checked, a view was copied into a
    new parameter (FSDP1 then refused the module) and a ``DTensor``'s
    values read (which it cannot give).
    """
    if torch.compiler.is_compiling():
        # Dynamo cannot trace sys._getframe (under fullgraph every assignment
        # failed, a model's alpha in its forward, a module built there), and
        # FSDP's hooks that assign run outside compiled code (Dynamo skips
        # them by default).
        return False
    # __setattr__'s caller (setattr() itself has no frame), past the
    # __setattr__ of a subclass that calls this one; no further: FSDP calls
    # users' own code (a param_init_fn, a forward method, reset_parameters),
    # whose assignments are checked.
    caller: Any = sys._getframe(2)
    while caller is not None and caller.f_code.co_name == "__setattr__":
        caller = caller.f_back
    return caller is not None and str(caller.f_globals.get("__name__", "")).startswith(
        _FSDP_MODULES
    )


_FSDP_MODULES = "torch.distributed.fsdp."


def _is_flat_parameter_view(value: Any) -> bool:
    """Whether ``value`` is a view of an FSDP1 flat parameter."""
    base = getattr(value, "_base", None) if isinstance(value, torch.Tensor) else None
    return bool(getattr(base, "_is_flat_param", False))


def _dtensor_type() -> Any:
    """The ``DTensor`` class where torch has imported it (no import of ours)."""
    return getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)


def _wrapper_of(module: nn.Module, name: str) -> Any:
    """The hook of a torch hook-based wrapper computing `name`, or None."""
    for hook in module._forward_pre_hooks.values():
        for module_name, class_name, attribute in _HOOK_WRAPPERS:
            kind = getattr(sys.modules.get(module_name), class_name, None)
            ours = kind is not None and isinstance(hook, kind)
            if ours and getattr(hook, attribute, None) == name:
                return hook
    return None


def _differentiated(value: Any) -> bool:
    """Whether `value` is a tensor whose derivatives autograd or forward mode takes."""
    if not isinstance(value, torch.Tensor) or isinstance(value, nn.Parameter):
        return False
    return value.requires_grad or _has_tangent(value)


def _has_tangent(value: torch.Tensor) -> bool:
    """Whether `value` is a dual tensor of the forward-mode level open now."""
    if _forward_ad_level() < 0:
        return False
    return torch.autograd.forward_ad.unpack_dual(value).tangent is not None


def _checked(name: str, value: Any, *, copy: bool) -> float | torch.Tensor:
    """A parameter value by the constructor's rules: a float or a float tensor.

    Numbers, lists and arrays go through ``validate_parameter``, tensors too
    (a NumPy copy of their values, dtype included); tensors are then made
    floating (integers in the default dtype) and, with `copy`, detached
    copies, so that the module does not share the caller's tensor.
    """
    if not isinstance(value, torch.Tensor):
        value = validate_parameter(name, value)
        if isinstance(value, float):
            return value
        if not isinstance(value, np.ndarray):  # an array of a third library
            msg = (
                f"{name} must be a Python number, a list, a NumPy array or a "
                f"tensor, not {describe(value)}, as for the functions"
            )
            raise TypeError(msg)
        _check_float32(name, value)
        integers = value.dtype.kind in "iu"
        value = _from_numpy(value, device="cpu")  # placed by the caller
        if integers and value.is_floating_point():
            # uint64, which _from_numpy takes to the default dtype itself:
            # checked there, as other integers are below
            _storable(name, value, value.dtype)
    else:
        _check_dense(name, value)
        _check_real(name, value.dtype)  # complex32 first: NumPy has none
        _check_float32(name, validate_parameter(name, _host_values(value)))
    if not value.is_floating_point():
        # checked there: 100000 is inf in a float16 default dtype
        value = _storable(name, value, torch.get_default_dtype())
    return value.detach().clone() if copy else value


def _check_parametrized(
    module: nn.Module,
    name: str,
    replacement: Callable[[str, torch.Tensor], Any],
    *,
    check: bool = True,
) -> torch.Tensor | None:
    """Check the value the parametrization of ``name`` gives from new tensors.

    ``replacement(key, now)`` gives the tensor that is to replace the
    parametrization's tensor ``key`` (its originals, ``original`` or
    ``original0``..., and its own, such as ``0.scale``), now ``now``, or
    None where it stays. The parametrization is evaluated with them in
    place (``torch.func.functional_call``: nothing of it is copied or
    changed) and the value checked as an assignment is, before anything
    changes. Where it cannot be evaluated (tensors on the meta device beside
    real ones), nothing is checked here: torch's own operation says what is
    wrong, or the value has none yet; a value without values (meta, fake)
    passes too. Returns the value checked, or None.
    """
    chain = _chain(module, name)
    tensors = {**dict(chain.named_parameters()), **dict(chain.named_buffers())}
    changed = {}
    for key, now in tensors.items():
        new = replacement(key, now)
        if isinstance(new, torch.Tensor):
            changed[key] = new
    if not changed:
        return None
    try:
        with torch.no_grad():
            value = torch.func.functional_call(chain, {**tensors, **changed}, ())
    except Exception:  # torch's own load or conversion reports it
        return None
    if not isinstance(value, torch.Tensor) or (
        value.device.type == "meta" or _is_fake(value)
    ):
        return None
    if check:
        _checked(name, value, copy=False)
    return value


def _expanded(name: str, value: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """``value`` broadcast to the shape of ``current`` (what the module holds)."""
    try:
        return value.expand_as(current)
    except RuntimeError as exc:
        msg = (
            f"{name} of shape {tuple(value.shape)} does not broadcast to the "
            f"shape of the {name} this module holds, {tuple(current.shape)}"
        )
        raise ValueError(msg) from exc


def _like(
    name: str,
    value: float | torch.Tensor,
    now: torch.Tensor,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A checked value as a tensor of its own like ``now``: shape, device, dtype.

    In ``dtype`` if given, else ``now``'s; a number through float64, so that
    it is rounded once, into that dtype, where it is checked before it
    moves to ``now``'s device (where a meta tensor has no values to check);
    copied, so that no other tensor (the caller's, the module's kept
    constructor values) shares its memory and no two of its elements share
    one place (an optimizer's in-place step writes each).
    """
    dtensor = _dtensor_type()
    if dtensor is not None and isinstance(now, dtensor):
        # Sharded (FSDP2): the whole value, which every process holds, laid
        # out as now is: this process's part of it, with no communication.
        from torch.distributed.tensor import Replicate

        mesh = now.device_mesh
        local = now.to_local()
        whole = torch.empty(now.shape, dtype=now.dtype, device=local.device)
        replicated = dtensor.from_local(
            _like(name, value, whole, dtype),
            mesh,
            [Replicate()] * mesh.ndim,
            run_check=False,
        )
        return replicated.redistribute(mesh, now.placements)
    if isinstance(value, float):  # on the CPU whatever the default device
        value = torch.tensor(value, dtype=torch.float64, device="cpu")
    stored = _storable(name, _expanded(name, value, now), dtype or now.dtype)
    return stored.to(now.device, copy=True, memory_format=torch.contiguous_format)


def _known_values(name: str, value: Any) -> Any:
    """A constructor argument's values to reset to, or None where it has none.

    A float, a NumPy copy of host data (whatever the default device: a
    module built on the meta device from numbers or lists keeps them), or
    a CPU copy of a tensor's; None for a tensor on the meta device, a fake
    one, or one inside a :mod:`torch.func` transform.
    """
    if not isinstance(value, torch.Tensor):
        values = validate_parameter(name, value)  # checked by the assignment
        # a float64 copy: the caller's array may change after the constructor,
        # and its integers are no integers to reset to (float64 holds each
        # value a parameter may have: checked so)
        return values if isinstance(values, float) else np.array(values, np.float64)
    if value.device.type == "meta" or _is_fake(value) or _is_wrapped(value):
        return None
    return value.detach().to("cpu", copy=True)


def _unpickled_initial(value: Any) -> Any:
    """A kept constructor value as unpickled: host values as NumPy again.

    ``_LOADED_WITHOUT_VALUES`` where ``torch.load`` gave the tensor no values
    (``map_location="meta"``, to inspect a checkpoint or fill it with
    ``to_empty``): none to reset to, which :meth:`S2NN.reset_parameters` says.
    Host values are copied to the CPU (``map_location="cuda"`` moved them):
    the tensor may be another module's kept one (``copy.copy`` pickles in
    memory), whose memory a pickler for another process moves to shared
    memory, freeing what a view of it would read.
    """
    host = _pickled_host_values(value)
    tensor = value[0] if host else value
    if not isinstance(tensor, torch.Tensor):
        return value
    if tensor.device.type == "meta" or _is_fake(tensor):
        return _LOADED_WITHOUT_VALUES
    return tensor.detach().cpu().numpy().copy() if host else value


# What a kept constructor value is where torch.load gave it none (the meta
# device): a string, which pickles (weights_only too) if the model is saved again.
_LOADED_WITHOUT_VALUES = "loaded without values"


def _pickled_host_values(value: Any) -> bool:
    """Whether ``value`` is host values as :meth:`S2NN.__getstate__` pickles them."""
    return (
        isinstance(value, tuple)
        and len(value) == 1
        and isinstance(value[0], torch.Tensor)
    )


def _storable(name: str, value: Any, dtype: torch.dtype) -> torch.Tensor:
    """``value`` in the ``dtype`` a module tensor stores it in, checked there.

    Valid as a number, a value may not be in that dtype: a tiny one rounds
    to 0 (not > 0), a huge one to inf (alpha=1e39 in float32).
    """
    _check_real(name, dtype)  # a module converted to a complex dtype
    source = (
        value
        if isinstance(value, torch.Tensor)
        else torch.as_tensor(value, device="cpu")
    )
    stored = source.to(dtype)
    values = _host_values(stored)
    # torch saturates where a float8 format has no inf (float8_e4m3fn: 1e5
    # becomes 448): a value that rounds beyond the largest overflows.
    beyond = overflow_limit(torch.finfo(dtype).max, torch.finfo(dtype).eps)
    if (
        not np.isfinite(values).all()
        or (np.abs(_host_values(source).astype(np.float64)) >= beyond).any()
    ):
        msg = f"{name} has values that overflow {dtype}, the dtype it is stored in"
        raise ValueError(msg)
    if not may_be_zero(name) and (values == 0).any():
        msg = f"{name} has values that are 0 in {dtype}, the dtype it is stored in"
        raise ValueError(msg)
    return stored


def _check_conversion(
    name: str,
    value: torch.Tensor,
    dtype: torch.dtype,
    converted: torch.Tensor | None = None,
) -> None:
    """Refuse a conversion of ``value`` to ``dtype`` that breaks a valid value.

    ``converted``: the value a parametrization gives from its converted
    tensors (of ``value``'s shape), checked by the constructor's rules
    where ``value`` was valid. Values that are invalid already (NaN, inf,
    <= 0: an optimizer's steps are not checked) are converted as they are:
    the conversion did not break them, and a model that diverged must
    still move to float64 to be examined (they were refused as overflowing,
    a NaN too; a negative one passed).
    """
    values = _host_values(value)
    valid = np.isfinite(values) & above_lower_bound(name, values)

    def where_valid(tensor: torch.Tensor) -> torch.Tensor:
        if valid.all():
            return tensor
        return torch.as_tensor(_host_values(tensor)[valid], device="cpu")

    if converted is not None:
        _checked(name, where_valid(converted), copy=False)
    _storable(name, where_valid(value), dtype)


def _check_float32(name: str, values: Any) -> None:
    """Concrete module values must be finite in float32, the narrowest compute dtype.

    A module's values are checked once, when they are set, not at every call
    (where its tensors may sit on a GPU), so against the dtype that every
    input of 32 bits or fewer is computed in.
    """
    check_representable(
        name,
        values,
        torch.float32,
        torch.finfo(torch.float32).max,
        "which a module's tensors must fit (inputs of up to 32 bits are computed "
        "in it; a module that does not learn keeps a Python number, checked against "
        "each input instead)",
    )


def _is_fake(value: torch.Tensor) -> bool:
    """Whether ``value`` is a FakeTensor (private to torch; never, if it moves)."""
    fake_tensor = sys.modules.get("torch._subclasses.fake_tensor")
    is_fake = getattr(fake_tensor, "is_fake", None)
    return is_fake is not None and bool(is_fake(value))


def _host_values(value: torch.Tensor) -> Any:
    """A NumPy copy of a tensor's values, for ``validate_parameter``.

    A meta tensor has no values, nor does a fake one (``FakeTensorMode``,
    which torch's tracers build modules under), nor one that ``vmap``
    batches (its values are each sample's): a one of its dtype stands in, so
    that its dtype is still checked. A tensor made inside another
    :mod:`torch.func` transform (a module built in the function ``grad``
    differentiates) has values, readable as Python numbers only.
    """
    numpy_dtype = _numpy_dtype(value.dtype)
    if value.device.type == "meta" or _is_fake(value):
        # In NumPy: a new tensor would be one more meta tensor under ``with
        # torch.device("meta")``, and a fake one under FakeTensorMode.
        return np.ones((), dtype=numpy_dtype)
    value = value.detach()
    dtensor = _dtensor_type()
    if dtensor is not None and isinstance(value, dtensor):
        # This process's shard (each process checks its own), with no
        # communication: the whole tensor lives on no process.
        value = value.to_local()
    if _is_wrapped(value):  # no storage of its own for .numpy() to read
        try:
            listed = value.resolve_conj().resolve_neg().tolist()
        except RuntimeError:  # batched by vmap: no values but each sample's
            return np.ones((), dtype=numpy_dtype)
        return np.asarray(listed, dtype=numpy_dtype)
    value = value.cpu().resolve_conj().resolve_neg()
    if value.is_floating_point() and value.dtype not in _NUMPY_FLOATS:
        # bfloat16 and the float8 formats: NumPy has none; exact in float32
        value = value.float()
    return value.numpy()


def _numpy_dtype(dtype: torch.dtype) -> Any:
    """NumPy's dtype of ``dtype``'s name; float32 (exact) where NumPy has none."""
    numpy_dtype = getattr(np, str(dtype).removeprefix("torch."), None)
    if not isinstance(numpy_dtype, type):  # bfloat16, the float8 formats
        return np.float32
    return numpy_dtype


# torch's floating dtypes that NumPy has too (Tensor.numpy() takes them).
_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def _describe(value: Parameter) -> str:
    if not isinstance(value, torch.Tensor):  # a float; or a wrapper's meanwhile
        return repr(value)
    if value.is_meta:  # no value to print (a model built on the meta device)
        return f"tensor(shape={tuple(value.shape)}, device='meta')"
    if value.ndim == 0:
        try:
            return repr(float(value.detach()))
        except RuntimeError:  # batched by vmap: no one value to print
            pass
    return f"tensor(shape={tuple(value.shape)})"
