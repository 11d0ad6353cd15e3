"""NumPy kernels: ``_math``'s operations with reused temporaries.

``_math`` is written in array-API operations, most of which return a fresh
array. On NumPy (:func:`s2nn_xp._evaluation.evaluate`) a fresh array of a
block's size is fresh memory: glibc serves allocations of this size by
mapping pages and unmaps them when they are freed, so every block faulted
its temporaries' pages in again, which at 2^24 values cost more than the
arithmetic (``gradient`` 8.7x the copy floor, 4.6x with the allocator tuned
to keep its memory). These kernels restate ``_math``'s formulas for NumPy
with ufuncs writing into a few temporaries that every block reuses, and the
thread keeps for its next call (:func:`workspace`,
:mod:`s2nn_xp._temporaries`), and the last operation writing into the
output. The
roundings and their order are ``_math``'s (its in-place path); where fewer
passes give the same values (a branch input from ``|x|``, a blend weighted
by one comparison, the spike as one comparison) a kernel takes them, and
says why the values are the same. So the results are bit for bit
``_math``'s; the tests check that over the special values in every dtype.

For inputs contiguous in one order, C's or Fortran's, read flat (whole,
or block by block), in the compute dtype
(float32 or float64) and Python-number parameters; ``out`` may be of a
narrower dtype (rounded once, as ``_math``'s result would be).
"""

from __future__ import annotations

import numpy as np

from . import _math

__all__ = ["forward", "gradient", "origin", "pullback", "workspace"]

_TEMPORARIES = 3


def workspace(elements: int, dtype: np.dtype) -> list[np.ndarray]:
    """Temporaries for blocks of at most ``elements`` values of ``dtype``."""
    return [np.empty(elements, dtype=dtype) for _ in range(_TEMPORARIES)]


def _temporaries(x: np.ndarray, scratch: list[np.ndarray]) -> list[np.ndarray]:
    return [buffer[: x.size] for buffer in scratch]


def _step_below(x: np.ndarray, into: np.ndarray) -> np.ndarray:
    """``_math._step_below``: ``floor(clip(x, -1, 0))``, -1 or 0, NaN for NaN."""
    np.clip(x, -1.0, 0.0, out=into)
    return np.floor(into, out=into)


def _sigmoid_exp(x: np.ndarray, alpha: float, into: np.ndarray) -> np.ndarray:
    """``_math._sigmoid_exp``: ``exp(alpha * clip(x, -1000 / alpha, 0))``."""
    np.clip(x, _math._exp_floor(np, x, alpha), 0.0, out=into)
    into *= alpha
    return np.exp(into, out=into)


def _sigmoid_exp_of_magnitude(
    x: np.ndarray, magnitude: np.ndarray, alpha: float, into: np.ndarray
) -> np.ndarray:
    """:func:`_sigmoid_exp`'s values where they are selected (``x < 0``).

    ``exp(-alpha * |x|)`` from ``magnitude = |x|``, which the caller shares
    with its other branch: one cheap pass (``abs``) instead of two clips.
    Where ``x < 0`` and ``x >= -1000 / alpha``, ``-alpha * |x|`` is
    ``alpha * x`` bit for bit (IEEE products are symmetric in sign); below
    that both exponentials are 0. Where ``x >= 0`` it is a finite value in
    [0, 1] where ``_math``'s is 1, and the blend multiplies it by 0. A tiny
    ``alpha`` clamps ``_math``'s bound at the dtype's lowest value, where
    ``exp(alpha * lowest)`` is not 0: then ``_math``'s clip is used.
    """
    if _math._exp_floor(np, x, alpha) != _math._EXP_FLOOR / alpha:
        return _sigmoid_exp(x, alpha, into)
    np.multiply(magnitude, -alpha, out=into)
    return np.exp(into, out=into)


def forward(x: np.ndarray, *, out: np.ndarray, scratch: list[np.ndarray]) -> None:
    """``_math.forward`` of ``x`` into ``out``: the spike in one ufunc pass.

    ``x >= 0`` written into ``out`` as 1.0 or 0.0 (the comparison's loop
    casts), which is ``_math``'s ``floor(clip(x, -1, 0)) + 1`` wherever ``x``
    is a number (``-0.0`` included); NaN compares false, so a block whose
    minimum is NaN (the reduction propagates it, and reads without writing)
    gets NaN written where ``x`` is NaN. Three passes took 1.45x the copy
    floor at 2^24 values.
    """
    np.greater_equal(x, 0.0, out=out)
    if np.isnan(np.minimum.reduce(x)):
        np.copyto(out, x, where=np.isnan(x))


def gradient(
    x: np.ndarray,
    alpha: float,
    beta: float,
    *,
    out: np.ndarray,
    scratch: list[np.ndarray],
) -> None:
    """``_math.gradient`` of ``x`` into ``out``.

    Both branch inputs come from ``|x|``: the sigmoid branch's as in
    :func:`_sigmoid_exp_of_magnitude`, the tail's ``|x| + 1`` is ``_math``'s
    ``max(x, -0.5) + 1`` where ``x >= 0`` and at least 1 elsewhere (the
    blend's 0 times ``beta`` divided by it is 0, as in ``_math``; ``-inf``
    gives ``0 / inf``). 14 passes over a block instead of 16.
    """
    shifted, bell, denominator = _temporaries(x, scratch)
    magnitude = np.abs(x, out=shifted)
    e = _sigmoid_exp_of_magnitude(x, magnitude, alpha, bell)
    np.add(e, 2.0, out=denominator)  # _math._squared_one_plus
    denominator *= e
    denominator += 1.0
    e *= alpha
    e /= denominator
    shifted = np.add(magnitude, 1.0, out=shifted)
    # _math._select's blend, weighted by x < 0 (one comparison, not the
    # step's two passes): one term of the sum is 0, so it is exact either
    # way. The weight is 0 at NaN, where both branches are NaN already.
    left_weight = np.less(x, 0.0, out=out if out.dtype == x.dtype else denominator)
    bell *= left_weight
    right = np.subtract(1.0, left_weight, out=left_weight)
    if beta != 1.0:
        right *= beta
    right /= shifted
    np.add(right, bell, out=out)


def _select(
    below: np.ndarray,
    left: np.ndarray,
    right_numerator: float | np.ndarray,
    right_denominator: np.ndarray | None,
    out: np.ndarray,
) -> None:
    """``_math._select`` (in place) with its result in ``out``."""
    left *= below
    step = np.add(below, 1.0, out=below)
    if not _math._is_one(right_numerator):
        step *= right_numerator
    if right_denominator is not None:
        step /= right_denominator
    np.subtract(step, left, out=out)


def origin(
    x: np.ndarray,
    alpha: float,
    beta: float,
    epsilon: float,
    *,
    out: np.ndarray,
    scratch: list[np.ndarray],
) -> None:
    """``_math.origin`` of ``x`` into ``out``."""
    sigmoid, tail, below = _temporaries(x, scratch)
    if out.dtype == x.dtype:  # the step in out itself, as in forward
        below = out
    e = _sigmoid_exp_of_magnitude(x, np.abs(x, out=sigmoid), alpha, sigmoid)
    np.add(e, 1.0, out=tail)
    e /= tail  # e / (1 + e)
    # The tail keeps _math's clip: log1p(|x|) would be inf at x = -inf, and
    # the blend's 0 times it NaN. Where it is not selected _math multiplies
    # it by the step before beta (no overflow there); here, with one
    # temporary, epsilon is (step times epsilon, 0 where x < 0) and
    # max(x + shift, -0.5) is max(x, -0.5) + shift, rounded as _math rounds
    # it: the same values where selected, at most beta * log(2) elsewhere.
    shift = np.add(_step_below(x, below), 1.0, out=tail)
    shift *= epsilon
    np.add(x, shift, out=tail)
    np.maximum(tail, -0.5, out=tail)
    np.log1p(tail, out=tail)
    tail *= beta
    tail += 0.5
    _select(below, sigmoid, tail, None, out)


def pullback(
    x: np.ndarray,
    cotangent: np.ndarray,
    alpha: float,
    beta: float,
    *,
    out: np.ndarray,
    scratch: list[np.ndarray],
) -> None:
    """``cotangent * _math.gradient(x)`` into ``out``, rounded once."""
    # The gradient's own temporaries, its last (free once the sigmoid
    # branch is computed) receiving it.
    rotated = scratch[1:] + scratch[:1]
    grad = _temporaries(x, rotated)[-1]
    gradient(x, alpha, beta, out=grad, scratch=rotated)
    np.multiply(grad, cotangent, out=out)
