"""The S2NN formulas, once, in array-API operations.

Every function here takes ``x`` already in its compute dtype (see
``_validation.prepare``) and parameters that are Python floats or arrays of
that dtype broadcasting to ``x``. They use only the array-API standard, so the
same code runs on NumPy, CuPy, JAX, PyTorch, Dask and array-api-strict, and is
differentiable by JAX and PyTorch autodiff to every order.

How the numerics are kept safe and fast:

* Branch inputs are guarded before use: the sigmoid branch sees
  ``min(x, 0)`` (so ``exp`` never overflows), the ``x >= 0`` branch sees
  ``max(x, -0.5)`` (so ``log1p`` and the division never meet ``x <= -1``).
  The clip points sit inside the *other* branch, so derivatives of the taken
  branch are exact, ties included (``x = 0`` is never clipped by the right
  branch's guard).
* Branches are selected by multiplying with the step ``h`` (the spike itself:
  1 for ``x >= 0``, 0 for ``x < 0``, NaN for NaN) rather than with ``where``:
  both guarded branches are finite, so ``left * (1 - h) + right * h`` is
  exact, and for NaN input every term, and every derivative of every term in
  ``x`` or a parameter, is NaN. A 0/1 mask would give NaN values but 0 for
  derivatives that pass through the mask (XLA rewrites ``mask * y`` into a
  select). NumPy's ``where`` on a random mask costs ten times a
  multiplication, which made the guarded formula slower than the naive one.
* Temporaries are updated in place where no autodiff system records the
  operations, which halves the memory traffic on NumPy and CuPy. Whether
  that is safe is the caller's knowledge (an adapter knows whether its
  framework records operations), so every function takes ``in_place``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import _compat

__all__ = ["forward", "gradient", "origin"]

Array = Any
Parameter = float | Array

# exp underflows to exactly 0 below this in every floating dtype. An int, as
# no constant of this module may be a float: torch.compile with dynamic
# shapes makes a module-level float a graph input, which the backward of an
# autograd.Function cannot take when a graph holds two of them (torch 2.13).
_EXP_FLOOR = -1000


def _mul(a: Array, b: Any, in_place: bool) -> Array:
    if in_place:
        a *= b
        return a
    return a * b


def _div(a: Array, b: Any, in_place: bool) -> Array:
    if in_place:
        a /= b
        return a
    return a / b


def _subtract(a: Array, b: Any, in_place: bool) -> Array:
    if in_place:
        a -= b
        return a
    return a - b


def _add(a: Array, b: Any, in_place: bool) -> Array:
    if in_place:
        a += b
        return a
    return a + b


def _is_one(value: Parameter) -> bool:
    return isinstance(value, float) and value == 1.0


def _step_below(xp: ModuleType, x: Array, in_place: bool) -> Array:
    """The spike minus one: -1 where ``x < 0``, 0 where ``x >= 0``, NaN for NaN.

    ``floor(clip(x, -1, 0))``, which propagates NaN without a ``where``:
    ``clip`` maps ``x < 0`` into ``[-1, 0)`` (floor -1) and ``x >= 0`` to
    ``0`` (floor 0). The blend of the branches needs this, not the spike.

    Its derivative is 0 wherever it has one; where autodiff records, it gets
    none at all, so that a branch that is infinite where it is selected
    (``origin`` at ``x = +inf``) is not multiplied by a tangent of zeros
    (PyTorch's forward mode materialises ``floor``'s: ``0 * inf = NaN``).
    """
    if not in_place:
        x = _compat.without_derivative(xp, x)
    return xp.floor(_compat.clip(xp, x, -1.0, 0.0, recorded=not in_place))


def _step(xp: ModuleType, x: Array, in_place: bool) -> Array:
    """The spike: 1 where ``x >= 0`` (``-0.0`` too), 0 where ``x < 0``, NaN for NaN."""
    return _add(_step_below(xp, x, in_place), 1.0, in_place)


def _sigmoid_input(xp: ModuleType, x: Array, alpha: Parameter, in_place: bool) -> Array:
    """``clip(x, -1000 / alpha, 0)``: the sigmoid branch's guarded input.

    The upper clip keeps ``exp(alpha * x)`` from overflowing in the other
    branch (and, where autodiff records, no derivative passes it at
    ``x = 0``). The lower one changes no value (``exp(-1000)`` is 0 in every
    float dtype) but keeps derivatives in ``alpha`` finite at ``x = -inf`` and
    huge ``|x|`` (``x**k * 0`` instead of ``inf * 0``).
    """
    guarded = _compat.clip(xp, x, _exp_floor(xp, x, alpha), 0.0, recorded=not in_place)
    if in_place:  # nothing differentiates it: the values alone
        return guarded
    # At the tie x = 0 the guard passes half a derivative in x (minimum's)
    # into this branch, where it is not taken; its higher derivatives grow
    # with alpha (inf for a huge one) and the blend's 0 times them was NaN.
    # Times 1 where x < 0 and 0 elsewhere (the step's, with no derivative of
    # its own), none passes; the values are the same.
    return guarded * (0.0 - _step_below(xp, x, in_place=False))  # +0.0, not -0.0


def _sigmoid_exp(xp: ModuleType, x: Array, alpha: Parameter, in_place: bool) -> Array:
    """``exp(alpha * clip(x, -1000 / alpha, 0))``: the sigmoid branch's exponential."""
    return xp.exp(_mul(_sigmoid_input(xp, x, alpha, in_place), alpha, in_place))


def _tail_input(xp: ModuleType, x: Array, in_place: bool) -> Array:
    """``max(x, -0.5)``: the ``x >= 0`` branch's guarded input (``x + 1 >= 0.5``).

    Any floor in (-1, 0) keeps ``x + 1`` positive; -0.5 keeps it at least
    0.5. Written here, not as a module constant (see ``_EXP_FLOOR``).
    """
    return _compat.clip(xp, x, -0.5, None, recorded=not in_place)


def _squared_one_plus(e: Array, in_place: bool) -> Array:
    """``(1 + e)**2`` written as ``1 + e * (2 + e)``.

    Within 1.25 ulp, where squaring a rounded ``1 + e`` loses up to 1.5 ulp,
    which took float64 gradients further past 2 ulp.
    """
    return _add(_mul(e + 2.0, e, in_place), 1.0, in_place)


def _exp_floor(xp: ModuleType, x: Array, alpha: Parameter) -> Parameter:
    """``-1000 / alpha``, kept inside the range of ``x``'s dtype.

    A tiny ``alpha`` (valid by the contract) would put the bound beyond the
    largest float32, which libraries reject or warn about when they convert it.
    """
    lowest = -float(xp.finfo(x.dtype).max)
    if isinstance(alpha, float):
        return max(_EXP_FLOOR / alpha, lowest)
    # No derivative in alpha: the bound changes no value (exp is 0 below
    # it), and its own, 1000 / alpha**2, is inf for a tiny alpha, which the
    # clip's 0 for the bound not taken made NaN in d / d alpha everywhere.
    floor = _EXP_FLOOR / _compat.without_derivative(xp, alpha)
    return _compat.clip(xp, floor, lowest, None, recorded=True)


def _select(
    below: Array,
    left: Array,
    right_numerator: Parameter,
    right_denominator: Array | None,
    in_place: bool,
) -> Array:
    """``left * (1 - step) + step * right_numerator / right_denominator``.

    ``below`` is the step minus one (:func:`_step_below`): -1 or 0, NaN for
    NaN input, so the selected branch comes through unrounded. Both branches
    must be finite wherever they are not selected. Overwrites ``below`` and
    ``left`` when ``in_place``.
    """
    left = _mul(left, below, in_place)  # -left where x < 0, 0 elsewhere
    step = _add(below, 1.0, in_place)
    right = step if _is_one(right_numerator) else _mul(step, right_numerator, in_place)
    if right_denominator is not None:
        right = _div(right, right_denominator, in_place)
    return _subtract(right, left, in_place)


def forward(xp: ModuleType, x: Array, *, in_place: bool) -> Array:
    """The spike: 1 where ``x >= 0`` (``-0.0`` too), 0 where ``x < 0``, NaN for NaN.

    ``in_place``: whether temporaries may be overwritten (no autodiff system
    records the operations); ``x`` itself is never written.
    """
    return _step(xp, x, in_place)


def origin(
    xp: ModuleType,
    x: Array,
    alpha: Parameter,
    beta: Parameter,
    epsilon: Parameter,
    *,
    in_place: bool,
) -> Array:
    """The smooth original function.

    ``sigmoid(alpha * x)`` where ``x < 0``, ``beta * log1p(x + epsilon) + 0.5``
    where ``x >= 0``. ``in_place`` as for :func:`forward`.
    """
    below, sigmoid, tail = _origin_branches(xp, x, alpha, epsilon, in_place)
    tail = _add(_mul(tail, beta, in_place), 0.5, in_place)
    return _select(below, sigmoid, tail, None, in_place)


def _origin_branches(
    xp: ModuleType, x: Array, alpha: Parameter, epsilon: Parameter, in_place: bool
) -> tuple[Array, Array, Array]:
    """``(step - 1, sigmoid(alpha x), log1p(x + epsilon) * step)``, guarded.

    The origin function blends the second with ``beta`` times the third,
    plus 0.5.
    """
    below = _step_below(xp, x, in_place)
    e = _sigmoid_exp(xp, x, alpha, in_place)
    sigmoid = _div(e, e + 1.0, in_place)  # e / (1 + e), stable since e <= 1
    tail = xp.log1p(_add(_tail_input(xp, x, in_place), epsilon, in_place))
    # Times the step (exact: 1 where selected, 0 where not) before beta:
    # where it is not selected, log1p(-0.5 + epsilon) * beta overflows for a
    # large epsilon and beta (and its derivative in x, beta / (1 + x), for
    # beta beyond half the dtype's largest), and the blend's 0 times inf is
    # NaN.
    return below, sigmoid, _mul(tail, below + 1.0, in_place)


def gradient(
    xp: ModuleType, x: Array, alpha: Parameter, beta: Parameter, *, in_place: bool
) -> Array:
    """The surrogate gradient.

    ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)`` where ``x < 0``,
    written ``alpha * e / (1 + e)**2`` with ``e = exp(alpha * x)``;
    ``beta / (x + 1)`` where ``x >= 0``.
    """
    e = _sigmoid_exp(xp, x, alpha, in_place)
    denominator = _squared_one_plus(e, in_place)
    bell = _div(_mul(e, alpha, in_place), denominator, in_place)
    del denominator  # free it before the right branch allocates
    shifted = _add(_tail_input(xp, x, in_place), 1.0, in_place)
    return _select(_step_below(xp, x, in_place), bell, beta, shifted, in_place)


def partials(
    xp: ModuleType,
    x: Array,
    alpha: Parameter,
    beta: Parameter,
    epsilon: Parameter,
    *,
    in_place: bool,
) -> tuple[Array, Array, Array]:
    """The surrogate model's three partials, in one pass over ``x``.

    ``(gradient, d origin / d alpha, d origin / d beta)``: the gradient as
    :func:`gradient` computes it; ``x * s * (1 - s)`` where ``x < 0`` and 0
    elsewhere; 0 where ``x < 0`` and ``log1p(x + epsilon)`` elsewhere. The
    parameter partials are written with the guarded branch inputs and masked
    by the step (NaN for NaN, as in :func:`origin`), so that derivatives of
    these formulas are the exact higher derivatives, ties at 0 included.
    """
    left_x = _sigmoid_input(xp, x, alpha, in_place)
    e = xp.exp(left_x * alpha)  # left_x is kept: d_alpha needs it
    denominator = _squared_one_plus(e, in_place)
    right_x = _tail_input(xp, x, in_place)
    below = _step_below(xp, x, in_place)
    step = below + 1.0
    # Masked by the step as the branches of origin are: at the tie x = 0 the
    # guard min(x, 0) would pass half a derivative in x (torch's minimum).
    d_alpha = _div(_mul(left_x, e, in_place), denominator, in_place)  # x s (1 - s)
    d_alpha = _mul(d_alpha, 1.0 - step, in_place)
    d_beta = _mul(xp.log1p(right_x + epsilon), step, in_place)
    # The gradient exactly as gradient() rounds it.
    bell = _div(_mul(e, alpha, in_place), denominator, in_place)
    shifted = _add(right_x, 1.0, in_place)
    grad = _select(below, bell, beta, shifted, in_place)
    return grad, d_alpha, d_beta


def spike_with_model_derivatives(
    xp: ModuleType,
    x: Array,
    alpha: Parameter,
    beta: Parameter,
    epsilon: Parameter,
) -> Array:
    """The spike as ordinary operations whose derivatives are ``origin``'s.

    For an autodiff system that differentiates the operations of a function
    with a custom derivative rule instead of its rule (``torch.compile``
    tracing it under ``torch.func`` transforms). ``step + (m - m)`` for
    ``m = origin(x)`` with the second ``m`` cut off from autodiff, written
    term by term so that every term is finite (``x`` clipped to the largest
    finite value, where the derivative, like ``gradient``, is 0 anyway;
    ``beta`` times the logarithm, which a huge ``beta`` overflows, as the
    change of a product): the step's value exactly. In ``x`` the derivative
    is ``origin``'s, ``beta / (x + 1 + epsilon)`` on ``x >= 0``, not
    ``gradient``'s ``beta / (x + 1)``.
    """
    largest = float(xp.finfo(x.dtype).max)
    finite = _compat.clip(xp, x, None, largest, recorded=True)
    below, sigmoid, tail = _origin_branches(xp, finite, alpha, epsilon, False)

    def change(value: Array) -> Array:  # 0, with the derivatives of value
        return value - _compat.without_derivative(xp, value)

    # The change of beta * tail, whose value may overflow (a beta near the
    # dtype's largest: inf - inf is NaN), as the change of the product
    # written with finite factors: the same function of beta and x (their
    # values held constant cancel), so the same derivatives at every order.
    if isinstance(beta, float):
        scaled = change(tail) * beta
    else:
        held = _compat.without_derivative(xp, beta)
        scaled = change(beta) * tail + held * change(tail)
    # origin's blend of the branches' changes (its 0.5 changes nothing)
    model_change = _select(below, change(sigmoid), scaled, None, in_place=False)
    return forward(xp, x, in_place=False) + model_change
