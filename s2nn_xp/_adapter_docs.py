"""What the framework adapters show their users, written once.

:mod:`s2nn_xp.torch` and :mod:`s2nn_xp.jax` each have ``forward``,
``origin``, ``gradient`` and ``vjp``, which differ from the core functions
(no ``xp``) and from each other only in their array type, a note on the
pullback, and their examples: :func:`documented` fills these in. Every
adapter lists its public names alone (:func:`listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["documented", "listing"]

_Function = TypeVar("_Function", bound=Callable[..., Any])


def listing(names: Sequence[str]) -> Callable[[], list[str]]:
    """A module's ``__dir__`` that lists ``names`` (its ``__all__``) alone.

    Tab completion (``dir``, IPython's) offered an adapter's imports beside
    its functions: ``np``, ``torch``, ``nn``, ``sys``, ``Prepared``, the
    validation helpers, sixty names for six.
    """
    public = sorted(names)

    def public_names() -> list[str]:
        return list(public)

    return public_names


_TEMPLATES = {
    "forward": """The spike of a {array}: :func:`s2nn_xp.forward` (no `xp` here).

    Parameters
    ----------
    x : {array} or array_like
        As for :func:`s2nn`.

    Returns
    -------
    {array}
        1 where ``x >= 0`` (``-0.0`` too), 0 where ``x < 0``, NaN where `x`
        is NaN; `x`'s shape, device and floating dtype. Its derivative is
        the step's, 0: :func:`s2nn` is the spike with the surrogate gradient.

    Raises
    ------
    TypeError
        Complex input, or an array of another library.
""",
    "origin": """The smooth origin function of a {array}: :func:`s2nn_xp.origin`.

    Parameters
    ----------
    x, alpha, beta, epsilon : {array}, float or array_like
        As for :func:`s2nn`.

    Returns
    -------
    {array}
        ``sigmoid(alpha * x)`` where ``x < 0``, ``beta * log(1 + x +
        epsilon) + 0.5`` where ``x >= 0``; `x`'s shape, device and floating
        dtype. Differentiable as ordinary operations, in `x` and in array
        parameters (`epsilon` a constant).

    Raises
    ------
    ValueError, TypeError
        As for :func:`s2nn`.
""",
    "gradient": """The surrogate gradient of a {array}: :func:`s2nn_xp.gradient`.

    Parameters
    ----------
    x, alpha, beta : {array}, float or array_like
        As for :func:`s2nn`.

    Returns
    -------
    {array}
        ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)`` where ``x <
        0``, ``beta / (x + 1)`` where ``x >= 0``; `x`'s shape, device and
        floating dtype. Differentiable as ordinary operations (its
        derivative in `x` is the spike's second derivative).

    Raises
    ------
    ValueError, TypeError
        As for :func:`s2nn`.
""",
    "vjp": """The spike and its pullback: :func:`s2nn_xp.vjp`.

    Parameters
    ----------
    x, alpha, beta, epsilon, origin
        As for :func:`s2nn`.

    Returns
    -------
    y : {array}
        ``s2nn(x, alpha, beta, epsilon, origin=origin)``, with its
        derivatives.
    pullback : callable
        ``pullback(cotangent)``: the cotangent (an array or host data that
        broadcasts to `x`) times the surrogate gradient at this call's
        values, in `x`'s dtype; {pullback}

    Raises
    ------
    ValueError, TypeError
        As for :func:`s2nn`; the pullback's name the cotangent.
""",
}


def documented(
    array: str, examples: str, pullback: str = ""
) -> Callable[[_Function], _Function]:
    """Give an adapter's function the docstring of its name.

    `array` names the adapter's array type (``"torch.Tensor"``), `pullback`
    ends ``vjp``'s note on the pullback, and `examples` (a numpydoc
    Examples section's body, run as doctests) ends the docstring.
    """

    def document(function: _Function) -> _Function:
        text = _TEMPLATES[function.__name__].format(array=array, pullback=pullback)
        function.__doc__ = f"{text}\n    Examples\n    --------\n{examples}    "
        return function

    return document
