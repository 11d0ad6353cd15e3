"""The surrogate derivatives as few eager PyTorch operations: kernels.

In eager PyTorch each operation costs a dispatch of a few microseconds, which
at the sizes of a spiking layer (10^3 to 10^5 values a step) is most of the
time. :func:`s2nn_xp._math.gradient` blends its two branches with the spike,
so that every derivative of it is exact; where nothing differentiates the
gradient (a first-order backward, a plain call), the same branch values can
be computed in fewer operations and blended by one ``lerp`` whose weight is
the spike (exact at 0 and 1; at NaN input both branches are NaN already, so
one comparison gives the weight). This module restates
``_math``'s branches for that case, operation for operation, so that its
results are bit for bit those of ``_math`` (the tests check that over the
special values and every dtype).

:func:`gradient` and :func:`origin` are for tensors no autodiff system
records, with Python-number parameters (:func:`s2nn_xp.torch._plain_eager`);
:func:`cotangents`, the first-order backward with learnable (tensor)
parameters, for the same tensors with parameters of either kind. They run
on any device (on CUDA where the fused Triton kernels do not apply); pieces
of a large input share one :func:`workspace`, which on the CPU the thread
keeps for its next call (:mod:`s2nn_xp._temporaries`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from . import _math

__all__ = [
    "cotangents",
    "gradient",
    "in_dtype",
    "origin",
    "plain_storage",
    "spike",
    "takes_kept_tensors",
    "traced_or_in_mode",
    "workspace",
]

# The guard of _math's sigmoid branch: its input is clipped to
# [max(_EXP_FLOOR / alpha, -largest), 0] (_math._exp_floor, without its
# finfo call at every kernel call).
_EXP_FLOOR = _math._EXP_FLOOR
# Largest finite value of each compute dtype (torch.finfo costs a call).
_LARGEST = {dtype: torch.finfo(dtype).max for dtype in (torch.float32, torch.float64)}


# Private parts of torch (read with a default where a torch lacks them: then
# a mode counts as always on and no tensor as plain, so no kept tensor is
# ever used; slower, never wrong).
_DISPATCH_MODES = getattr(torch._C, "_len_torch_dispatch_stack", None)
try:
    _PYTHON_DISPATCH: Any = torch._C._dispatch_key_parse("Python")
    _DISPATCH_KEYS: Any = torch._C._dispatch_keys
except (AttributeError, RuntimeError):  # pragma: no cover - depends on torch
    _PYTHON_DISPATCH = _DISPATCH_KEYS = None
# What says that make_fx traces before dispatch (as torch.export's
# non-strict tracing does), where its mode is on no stack that
# _DISPATCH_MODES counts.
try:
    _PRE_DISPATCH: Any = torch._C.DispatchKey.PreDispatch
    _KEY_INCLUDED: Any = torch._C._dispatch_tls_is_dispatch_key_included
except AttributeError:  # pragma: no cover - depends on torch
    _PRE_DISPATCH = _KEY_INCLUDED = None
# torch.jit.is_tracing() without its two Python calls (it runs at every call).
_JIT_TRACING = getattr(torch._C, "_is_tracing", torch.jit.is_tracing)


def in_dtype(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor.to(dtype)``, without the call's microsecond where it is one."""
    return tensor if tensor.dtype is dtype else tensor.to(dtype)


def in_dispatch_mode() -> bool:
    """Whether a Python dispatch mode is on (make_fx's, FakeTensorMode, ...)."""
    return _DISPATCH_MODES is None or _DISPATCH_MODES() > 0


def traced_or_in_mode() -> bool:
    """Whether something other than eager PyTorch sees the operations.

    ``torch.jit.trace``, ``make_fx`` before dispatch, or any dispatch mode:
    one may record them as a graph to run later (make_fx's), keep their
    outputs to hand back later (selective activation checkpointing's cache),
    or compute on stand-ins (FakeTensorMode). Where the kernels ran there,
    the graph kept their ``out=`` and in-place operations (which a run with
    inputs that require grad refuses) and the cache kept tensors they then
    updated in place (an error, or, where the cache allows that, wrong
    gradients). Modes that only look (FlopCounterMode, DebugMode) are not
    told apart from those: there the math's ordinary operations run too.
    """
    if _JIT_TRACING() or in_dispatch_mode():
        return True
    return _KEY_INCLUDED is None or _KEY_INCLUDED(_PRE_DISPATCH)


def plain_storage(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s memory is its own.

    Not where it is a subclass that dispatches in Python (DTensor,
    FakeTensor, any ``__torch_dispatch__`` wrapper).
    """
    if _PYTHON_DISPATCH is None:  # pragma: no cover - depends on torch
        return False
    return not _DISPATCH_KEYS(tensor).has(_PYTHON_DISPATCH)


def takes_kept_tensors(*tensors: torch.Tensor) -> bool:
    """Whether tensors made before the call may be operands beside these.

    Not under a dispatch mode, nor beside a tensor that dispatches in Python
    (whose every operation enters its own mode, even after the ``with``
    block that made it: a FakeTensor's). There a kept tensor (a temporary,
    a constant) is what the mode sees as a constant (make_fx put the
    thread's temporaries in its graph: every run of it, in any thread,
    shared them), FakeTensorMode refuses a real one, a wrapper of several
    tensors would compute each of them into the same plain temporaries, and
    a fused kernel's launch is no operation the mode sees at all.
    """
    if in_dispatch_mode():
        return False
    # A loop, not all() of a generator: this runs at every kernel call.
    for tensor in tensors:  # noqa: SIM110
        if not plain_storage(tensor):
            return False
    return True


# A Python number as the operand of an operation on a CPU tensor is wrapped
# in a 0-d tensor and converted to the operation's dtype at every call (an
# aten::to of a microsecond or more: a backward had six, about a twentieth
# of its cost at a layer's sizes); a 0-d tensor of that dtype is taken as it
# is. So the kernels' constants are kept as such, per dtype.
_NUMBERS = (0.0, 0.5, 1.0, 2.0)
_KEPT_CONSTANTS: dict[torch.dtype, tuple[torch.Tensor, ...]] = {}


def _constants(x: torch.Tensor) -> tuple[float | torch.Tensor, ...]:
    """0, 0.5, 1 and 2 as operands of operations on ``x``.

    Kept 0-d CPU tensors of ``x``'s dtype for a CPU ``x`` that takes them
    (:func:`takes_kept_tensors`), else Python numbers (off the CPU, where
    the cost of a number was not measured, as before); the same values
    either way (exact in every dtype).
    """
    if not (x.is_cpu and takes_kept_tensors(x)):
        return _NUMBERS
    kept = _KEPT_CONSTANTS.get(x.dtype)
    if kept is None:
        # Normal tensors even inside inference_mode (an inference tensor
        # could not take part in a later recorded call's operations).
        with torch.inference_mode(False):
            kept = tuple(
                torch.tensor(value, dtype=x.dtype, device="cpu") for value in _NUMBERS
            )
        _KEPT_CONSTANTS[x.dtype] = kept
    return kept


def workspace(
    elements: int, dtype: torch.dtype, device: torch.device | str = "cpu"
) -> list[torch.Tensor]:
    """Temporaries for the kernels on pieces of at most ``elements`` values.

    A caller that runs a kernel piece by piece passes the same workspace to
    every piece: a fresh tensor of a cache-sized block is fresh memory for
    the allocator to map (its pages faulted in at every piece), which cost
    more than the arithmetic did.
    """
    return [
        torch.empty(elements, dtype=dtype, device=device) for _ in range(_TEMPORARIES)
    ]


# Temporaries the kernel with the most (cotangents) uses.
_TEMPORARIES = 5


def _temporaries(
    x: torch.Tensor, scratch: Sequence[torch.Tensor] | None, count: int
) -> list[torch.Tensor]:
    """``count`` tensors of ``x``'s shape and dtype, from ``scratch`` if given."""
    if scratch is None:
        return [torch.empty_like(x) for _ in range(count)]
    # as_strided, one call a temporary where slicing and a view took four
    # times as long (a few microseconds a call at a layer's sizes): row-major,
    # or x's own strides where x is channels-last (its memory format kept,
    # so that the operations run over one layout).
    strides = x.stride() if _channels_last(x) else _row_major(x.shape)
    return [buffer.as_strided(x.shape, strides) for buffer in scratch[:count]]


def _channels_last(x: torch.Tensor) -> bool:
    if x.ndim == 4:
        return x.is_contiguous(memory_format=torch.channels_last)
    if x.ndim == 5:
        return x.is_contiguous(memory_format=torch.channels_last_3d)
    return False


def _row_major(shape: torch.Size) -> tuple[int, ...]:
    strides = []
    stride = 1
    for size in reversed(shape):
        strides.append(stride)
        stride *= max(size, 1)
    return tuple(reversed(strides))


def gradient(
    x: torch.Tensor,
    alpha: float,
    beta: float,
    cotangent: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    scratch: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``gradient(x, alpha, beta)`` (times ``cotangent``) in ``x``'s dtype.

    ``x`` is in its compute dtype (float32 or float64), of any layout;
    ``cotangent``, if given, has ``x``'s dtype and shape, or is 0-d (a
    broadcast one: ``.sum()``'s, or a number given to a pullback); ``out``
    receives the result (it may be of a narrower dtype: the result is
    rounded once, into it); ``scratch`` is a :func:`workspace` at least
    ``x``'s size.
    """
    e, denominator, tail = _temporaries(x, scratch, 3)
    zero, _, one, two = _constants(x)
    lowest = max(_EXP_FLOOR / alpha, -_LARGEST[x.dtype])
    torch.clamp(x, lowest, 0.0, out=e).mul_(alpha).exp_()
    torch.add(e, two, out=denominator).mul_(e).add_(one)
    bell = e.mul_(alpha).div_(denominator)
    # The tail's input clipped at 0, not _math's -0.5: the same values where
    # it is selected (x >= 0), and no overflow of beta / 0.5 for a beta near
    # the dtype's largest where it is not (lerp would carry inf * 0 = NaN).
    torch.clamp(x, min=0.0, out=tail).add_(one)
    if beta != 1.0:
        torch.div(beta, tail, out=tail)
    else:
        tail.reciprocal_()
    # lerp is exact at weights 0 and 1 for finite ends (the guards' promise):
    # the blend of _math in one operation. The weight goes where the
    # denominator was (read for the last time above): one temporary fewer
    # to allocate at every call.
    weight = _branch_weight(x, zero, denominator)
    if out is not None and out.dtype == x.dtype:
        grad = torch.lerp(bell, tail, weight, out=out)
    else:
        grad = torch.lerp(bell, tail, weight, out=bell)
    if cotangent is not None:
        grad.mul_(cotangent)
    if out is None or grad is out:
        return grad
    return out.copy_(grad)


def cotangents(
    x: torch.Tensor,
    alpha: float | torch.Tensor,
    beta: float | torch.Tensor,
    epsilon: float | torch.Tensor,
    cotangent: torch.Tensor,
    *,
    with_alpha: bool,
    with_beta: bool,
    out: torch.Tensor | None = None,
    scratch: Sequence[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``cotangent`` times each of ``_math.partials``, elementwise, unreduced.

    ``(cotangent * gradient, cotangent * d origin / d alpha, cotangent *
    d origin / d beta)`` in ``x``'s dtype; a parameter's term is None unless
    asked for. ``x`` and ``cotangent`` are in one compute dtype (float32 or
    float64) and of one shape, of any layout; tensor parameters are of that
    dtype and broadcast to it; ``out``, of ``x``'s shape and dtype, receives
    the first; ``scratch`` as for :func:`gradient` (the others are views of
    it). The values are ``_math.partials``'s (the
    gradient's bit for bit, as :func:`gradient`), up to the sign of zero
    terms.
    """
    left, e, denominator, right, log = _temporaries(x, scratch, _TEMPORARIES)
    zero, _, one, two = _constants(x)
    # _math clips the sigmoid input at -1000 / alpha: e is 0 from there down,
    # so clipping at the dtype's lowest value gives the same values (and a
    # finite x * e where x = -inf) with Python numbers as bounds.
    torch.clamp(x, -_LARGEST[x.dtype], 0.0, out=left)
    torch.mul(left, alpha, out=e).exp_()
    torch.add(e, two, out=denominator).mul_(e).add_(one)
    # x s (1 - s); _math masks it by x < 0, where left is 0 (x >= 0) it is
    # 0 already, and NaN stays NaN.
    d_alpha = left.mul_(e).div_(denominator).mul_(cotangent) if with_alpha else None
    bell = e.mul_(alpha).div_(denominator)
    # The tail at max(x, 0), as in gradient() (no overflow of beta / 0.5).
    torch.clamp(x, min=0.0, out=right)
    step = _branch_weight(x, zero, denominator)  # read for the last time above
    d_beta = None
    if with_beta:
        # _math's log1p(x + epsilon) masked by the step, in one operation
        # less: epsilon times the weight is epsilon or 0 exactly, so the sum
        # is x + epsilon (rounded once) where x >= 0 and log1p(0) = 0 where
        # x < 0 (right is 0 there); NaN stays NaN.
        if isinstance(epsilon, torch.Tensor):
            torch.addcmul(right, step, epsilon, out=log)
        else:
            torch.add(right, step, alpha=epsilon, out=log)
        d_beta = log.log1p_().mul_(cotangent)
    tail = right.add_(one)
    if _is_one(beta):
        tail.reciprocal_()
    else:
        torch.div(beta, tail, out=tail)
    grad = torch.lerp(bell, tail, step, out=bell if out is None else out)
    return grad.mul_(cotangent), d_alpha, d_beta


def origin(
    x: torch.Tensor,
    alpha: float,
    beta: float,
    epsilon: float,
    *,
    out: torch.Tensor | None = None,
    scratch: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``_math.origin(x, alpha, beta, epsilon)``, its operations in temporaries.

    The same operations in the same order as ``_math``'s in-place path (so
    the same values, bit for bit), each writing into one of four temporaries
    instead of a fresh tensor. Arguments as for :func:`gradient`.
    """
    below, e, shifted, tail = _temporaries(x, scratch, 4)
    _, half, one, _ = _constants(x)
    torch.clamp(x, -1.0, 0.0, out=below).floor_()
    lowest = max(_EXP_FLOOR / alpha, -_LARGEST[x.dtype])
    torch.clamp(x, lowest, 0.0, out=e).mul_(alpha).exp_()
    sigmoid = e.div_(torch.add(e, one, out=shifted))
    torch.clamp(x, min=-0.5, out=tail).add_(epsilon).log1p_()
    step = torch.add(below, one, out=shifted)  # _math adds it twice: once here
    tail.mul_(step).mul_(beta).add_(half)
    left = sigmoid.mul_(below)
    into = out if out is not None and out.dtype == x.dtype else tail
    result = torch.mul(step, tail, out=into).sub_(left)
    if out is None or result is out:
        return result
    return out.copy_(result)


def _branch_weight(
    x: torch.Tensor, zero: float | torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """1.0 where ``x >= 0`` (``-0.0`` too), else 0.0: the spike in one operation.

    0 for NaN, unlike the spike: the kernels need no NaN from it, since both
    branches, and each parameter term, are NaN there already.
    """
    return torch.ge(x, zero, out=out)


def _is_one(value: float | torch.Tensor) -> bool:
    return isinstance(value, float) and value == 1.0


def spike(x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """``_math.forward``: ``floor(clip(x, -1, 0)) + 1``, NaN for NaN."""
    one = _constants(x)[2]
    return torch.clamp(x, -1.0, 0.0, out=out).floor_().add_(one)
