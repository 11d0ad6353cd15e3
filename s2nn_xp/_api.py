"""The public functions: thin wrappers that validate, dispatch and compute."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Any, Protocol, TypeAlias, TypeVar

import numpy as np

from . import _dispatch
from ._evaluation import evaluate
from ._validation import (
    Prepared,
    prepare,
    prepare_cotangent,
    validate_flag,
    with_cotangent_mask,
)

__all__ = ["forward", "gradient", "origin", "s2nn", "vjp"]

Array = Any
ArrayLike = Any
"""Any array-API array, or a Python scalar or (nested) list of numbers."""
Parameter = Any
"""A positive Python number, or an array broadcasting to ``x`` (per neuron)."""
Flag: TypeAlias = bool | np.bool_
"""A flag (``origin``, ...): Python's or NumPy's bool, as ``validate_flag`` takes."""

_Result_co = TypeVar("_Result_co", covariant=True)


class Pullback(Protocol[_Result_co]):
    """What a ``vjp`` returns beside the spike (this package's and its adapters').

    Called with a cotangent, positionally or as ``cotangent=``: the cotangent
    times the surrogate gradient, of the library and dtype of ``x``. For
    annotations: ``Pullback[numpy.ndarray]``, ``Pullback[torch.Tensor]``,
    ``Pullback[jax.Array]``.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> def backward(pullback: s2nn_xp.Pullback[np.ndarray]) -> np.ndarray:
    ...     return pullback(cotangent=np.ones(2))
    >>> spikes, pullback = s2nn_xp.vjp(np.array([-1.0, 1.0]))
    >>> backward(pullback)
    array([0.07065082, 0.5       ])
    """

    def __call__(self, cotangent: Any) -> _Result_co: ...


ALPHA = 4.0
BETA = 1.0
EPSILON = 1e-8


def forward(x: ArrayLike, *, xp: ModuleType | None = None) -> Array:
    """The spike: the Heaviside step of `x`.

    Parameters
    ----------
    x : array_like
        Membrane potential minus threshold. Any array-API array; Python
        scalars and lists are NumPy input. Integer and bool input is promoted
        to the default real floating dtype; complex input raises.
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from. Python
        and NumPy scalars and lists given with it are input of its library
        (a NumPy array is refused: it is NumPy's).

    Returns
    -------
    array
        1 where ``x >= 0`` (``-0.0`` included), 0 where ``x < 0``, NaN where
        `x` is NaN; same library, device, shape and dtype as `x`. Its
        derivative, where autodiff records it, is the step's, 0 (as
        ``torch.floor``'s); :func:`s2nn` is the spike with the surrogate
        gradient.

    Raises
    ------
    TypeError
        Complex input, an object that is no array or number, or an `xp`
        that is not `x`'s library.
    ValueError
        A list NumPy cannot read as an array (rows of different lengths),
        or a Python number beyond float64's range (``10**400``).

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.forward(np.array([-1.0, -0.0, 0.5, np.nan]))
    array([ 0.,  1.,  1., nan])
    """
    kernel = _dispatch.implementation("forward", x, xp)
    if kernel is not None:
        return kernel(x)
    p = prepare(x, xp=xp)
    return evaluate(p, "forward")


def origin(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    xp: ModuleType | None = None,
) -> Array:
    """The smooth original function whose slope the surrogate gradient is.

    ``sigmoid(alpha * x)`` for ``x < 0`` and ``beta * log1p(x + epsilon) + 0.5``
    for ``x >= 0``.

    Parameters
    ----------
    x : array_like
        Input, as for :func:`forward`.
    alpha : float or array, default 4.0
        Steepness of the sigmoid branch; finite and > 0. Arrays broadcast to
        `x` (one value per neuron).
    beta : float or array, default 1.0
        Scale of the logarithmic branch; finite and > 0.
    epsilon : float or array, default 1e-8
        Offset inside the logarithm; finite and >= 0.
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from. Python
        and NumPy scalars and lists given with it are input of its library
        (a NumPy array is refused: it is NumPy's).

    Returns
    -------
    array
        Same library, device, shape and dtype as `x`; NaN for NaN, ``+inf``
        for ``+inf`` and 0 for ``-inf``.

    Raises
    ------
    ValueError
        A parameter out of its range (Python numbers, lists and arrays whose
        values sit in host memory are checked, as the docs' Definition page
        lists them; arrays that may sit on a GPU or be traced are not), a
        number that overflows the
        dtype `x` is computed in, or an array parameter that does not
        broadcast to `x`; the message names the parameter. For `x`, a list
        NumPy cannot read as an array (rows of different lengths), or a
        Python number beyond float64's range (``10**400``).
    TypeError
        Complex or non-numeric input or parameters.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.origin(np.array([-1.0, 0.0, 1.0]))
    array([0.01798621, 0.50000001, 1.19314719])
    """
    kernel = _dispatch.implementation("origin", x, xp)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    return evaluate(p, "origin", **p.params)


def gradient(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    *,
    xp: ModuleType | None = None,
) -> Array:
    """The surrogate gradient: the derivative the backward pass uses.

    ``alpha * s * (1 - s)`` with ``s = sigmoid(alpha * x)`` for ``x < 0``, and
    ``beta / (x + 1)`` for ``x >= 0``. There is no ``epsilon`` here, as in the
    paper.

    Parameters
    ----------
    x : array_like
        Input, as for :func:`forward`.
    alpha, beta : float or array
        As for :func:`origin`.
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from. Python
        and NumPy scalars and lists given with it are input of its library
        (a NumPy array is refused: it is NumPy's).

    Returns
    -------
    array
        Same library, device, shape and dtype as `x`; finite and >= 0 for
        finite `x` (also at and below ``x = -1``; 0 where the sigmoid branch
        underflows), 0 at ``+-inf``, NaN for NaN; a 16- or 8-bit result is
        computed in float32 and rounded once by the library's conversion, so
        that a value beyond its dtype's range is inf there (in a format
        without inf, NaN, and the largest value in one without NaN either,
        ml_dtypes' float4 and float6; PyTorch saturates: the docs'
        Definition page, Dtypes).

    Raises
    ------
    ValueError, TypeError
        As for :func:`origin`.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.gradient(np.array([-1.0, 0.0, 1.0]))
    array([0.07065082, 1.        , 0.5       ])
    """
    kernel = _dispatch.implementation("gradient", x, xp)
    if kernel is not None:
        return kernel(x, alpha, beta)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta)
    return evaluate(p, "gradient", **p.params)


def s2nn(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
    xp: ModuleType | None = None,
) -> Array:
    """The spike function with the S2NN surrogate gradient attached.

    On JAX arrays and PyTorch tensors the result carries the surrogate
    derivatives into every autodiff transform of that library (see
    :mod:`s2nn_xp.jax` and :mod:`s2nn_xp.torch`). Arrays of libraries without
    autodiff (the docs' *Backends* table) get the plain values; use
    :func:`vjp` to train with them.

    Parameters
    ----------
    x : array_like
        Input, as for :func:`forward`.
    alpha, beta, epsilon : float or array
        As for :func:`origin`.
    origin : bool, default False
        Return the smooth :func:`origin` function instead of the spike (the
        derivatives stay the surrogate's).
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from. Python
        and NumPy scalars and lists given with it are input of its library
        (a NumPy array is refused: it is NumPy's).

    Returns
    -------
    array
        ``forward(x)``, or ``origin(x, ...)`` when `origin` is true.

    Raises
    ------
    ValueError, TypeError
        As for :func:`origin`; TypeError for an `origin` that is no bool.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.s2nn(np.array([-0.5, 0.5]))
    array([0., 1.])
    """
    origin = validate_flag("origin", origin)
    kernel = _dispatch.implementation("s2nn", x, xp)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon, origin=origin)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    return _primal(p, origin)


def _primal(p: Prepared, with_origin: bool) -> Array:
    """The spike or the origin function of prepared arguments, finished."""
    if with_origin:
        return evaluate(p, "origin", **p.params)
    return evaluate(p, "forward")


def vjp(
    x: ArrayLike,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: Flag = False,
    xp: ModuleType | None = None,
) -> tuple[Array, Pullback[Array]]:
    """The spike and its pullback, for training without an autodiff system.

    Parameters
    ----------
    x : array_like
        Input, as for :func:`forward`.
    alpha, beta, epsilon : float or array
        As for :func:`origin`.
    origin : bool, default False
        Return :func:`origin` values instead of spikes.
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from. Python
        and NumPy scalars and lists given with it are input of its library
        (a NumPy array is refused: it is NumPy's).

    Returns
    -------
    y : array
        ``s2nn(x, ...)``.
    pullback : callable
        ``pullback(cotangent)`` returns ``cotangent * gradient(x, alpha,
        beta)`` in `x`'s dtype and shape. `cotangent` broadcasts to `x`: an
        array of `x`'s library, or host data (a Python number, a list, a
        NumPy array) with `x` of any library. It keeps copies
        of `x` and of array parameters, so that it differentiates at the
        values of this call even where they are changed in place before it
        is called (``v *= decay`` in a training loop). (JAX arrays cannot
        change and are kept as they are: memory a JAX array shares through
        DLPack, changed in place, is undefined behaviour in JAX.)

    Raises
    ------
    ValueError, TypeError
        As for :func:`origin`; the pullback's name the cotangent (of a shape
        that `x`'s cannot take, or of another library).

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> spikes, pullback = s2nn_xp.vjp(np.array([-1.0, 0.0, 1.0]))
    >>> spikes
    array([0., 1., 1.])
    >>> pullback(np.array([1.0, 2.0, 2.0]))
    array([0.07065082, 2.        , 1.        ])
    """
    origin = validate_flag("origin", origin)
    kernel = _dispatch.implementation("vjp", x, xp)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon, origin=origin)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    y = _primal(p, origin)
    p = _kept(p)

    def pullback(cotangent: ArrayLike) -> Array:
        # Checked first: a masked cotangent's shape and library, before
        # its mask is broadcast to x's shape.
        checked = prepare_cotangent(p, cotangent)
        masked = with_cotangent_mask(p, cotangent)
        alpha, beta = p.params["alpha"], p.params["beta"]
        return evaluate(masked, "pullback", p.x, checked, alpha=alpha, beta=beta)

    return y, pullback


def _kept(p: Prepared) -> Prepared:
    """``p`` with copies of its arrays (and mask), for a pullback to differentiate at.

    They may be the caller's own arrays, which a training loop updates in
    place (``v *= decay``; a Dask array's item assignment too) before it
    calls the pullback: the pullback must see the values of the call, as
    JAX's and PyTorch's do.
    """
    params = {
        name: value if isinstance(value, float) else p.xp.asarray(value, copy=True)
        for name, value in p.params.items()
    }
    # A NumPy masked x's mask is x's own array (getmaskarray): an update of
    # x (x[i] = v unmasks i) changes it in place.
    mask = None if p.mask is None else p.mask.copy()
    x = p.xp.asarray(p.x, copy=True)
    return dataclasses.replace(p, x=x, params=params, mask=mask)
