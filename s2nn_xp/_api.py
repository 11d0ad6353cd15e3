"""The public functions: thin wrappers that validate, dispatch and compute."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _compat, _dispatch, _math
from ._validation import (
    Prepared,
    finish,
    prepare,
    validate_flag,
    validate_parameter,
)

__all__ = ["S2NN", "forward", "gradient", "origin", "s2nn", "vjp"]

Array = Any
ArrayLike = Any
"""Any array-API array, or a Python scalar or (nested) list of numbers."""
Parameter = Any
"""A positive Python number, or an array broadcasting to ``x`` (per neuron)."""

ALPHA = 4.0
BETA = 1.0
EPSILON = 1e-8


def forward(x: ArrayLike, /, *, xp: ModuleType | None = None) -> Array:
    """The spike: the Heaviside step of `x`.

    Parameters
    ----------
    x : array_like
        Membrane potential minus threshold. Any array-API array; Python
        scalars and lists are NumPy input. Integer and bool input is promoted
        to the default real floating dtype; complex input raises.
    xp : namespace, optional
        The array-API namespace; by default the one `x` comes from.

    Returns
    -------
    array
        1 where ``x >= 0`` (``-0.0`` included), 0 where ``x < 0``, NaN where
        `x` is NaN; same library, device, shape and dtype as `x`.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.forward(np.array([-1.0, -0.0, 0.5, np.nan]))
    array([ 0.,  1.,  1., nan])
    """
    kernel = _dispatch.implementation("forward", x)
    if kernel is not None:
        return kernel(x)
    p = prepare(x, xp=xp)
    return finish(_math.forward(p.xp, p.x), p)


def origin(
    x: ArrayLike,
    /,
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
        The array-API namespace; by default the one `x` comes from.

    Returns
    -------
    array
        Same library, device, shape and dtype as `x`; NaN for NaN, ``+inf``
        for ``+inf`` and 0 for ``-inf``.

    Raises
    ------
    ValueError
        A parameter out of its range (Python numbers, lists and NumPy or
        array-api-strict arrays are checked; arrays of other libraries may
        sit on a GPU or be traced, and are not), a number that overflows the
        dtype `x` is computed in, or an array parameter that does not
        broadcast to `x`; the message names the parameter.
    TypeError
        Complex or non-numeric input or parameters.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.origin(np.array([-1.0, 0.0, 1.0]))
    array([0.01798621, 0.50000001, 1.19314719])
    """
    kernel = _dispatch.implementation("origin", x)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    return finish(_math.origin(p.xp, p.x, **p.params), p)


def gradient(
    x: ArrayLike,
    /,
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
        The array-API namespace; by default the one `x` comes from.

    Returns
    -------
    array
        Same library, device, shape and dtype as `x`; positive and finite for
        finite `x` (also at and below ``x = -1``), 0 at ``+-inf``, NaN for NaN.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.gradient(np.array([-1.0, 0.0, 1.0]))
    array([0.07065082, 1.        , 0.5       ])
    """
    kernel = _dispatch.implementation("gradient", x)
    if kernel is not None:
        return kernel(x, alpha, beta)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta)
    return finish(_math.gradient(p.xp, p.x, **p.params), p)


def s2nn(
    x: ArrayLike,
    /,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: bool = False,
    xp: ModuleType | None = None,
) -> Array:
    """The spike function with the S2NN surrogate gradient attached.

    On JAX arrays and PyTorch tensors the result carries the surrogate
    derivatives into every autodiff transform of that library (see
    :mod:`s2nn_xp.jax` and :mod:`s2nn_xp.torch`). Arrays of libraries without
    autodiff (NumPy, CuPy, Dask, array-api-strict) get the plain values; use
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
        The array-API namespace; by default the one `x` comes from.

    Returns
    -------
    array
        ``forward(x)``, or ``origin(x, ...)`` when `origin` is true.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> s2nn_xp.s2nn(np.array([-0.5, 0.5]))
    array([0., 1.])
    """
    origin = validate_flag("origin", origin)
    kernel = _dispatch.implementation("s2nn", x)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon, origin=origin)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    return finish(_primal(p, origin), p)


def _primal(p: Prepared, with_origin: bool) -> Array:
    if with_origin:
        return _math.origin(p.xp, p.x, **p.params)
    return _math.forward(p.xp, p.x)


def vjp(
    x: ArrayLike,
    /,
    alpha: Parameter = ALPHA,
    beta: Parameter = BETA,
    epsilon: Parameter = EPSILON,
    *,
    origin: bool = False,
    xp: ModuleType | None = None,
) -> tuple[Array, Callable[[ArrayLike], Array]]:
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
        The array-API namespace; by default the one `x` comes from.

    Returns
    -------
    y : array
        ``s2nn(x, ...)``.
    pullback : callable
        ``pullback(cotangent)`` returns ``cotangent * gradient(x, alpha,
        beta)`` in `x`'s dtype and shape. `cotangent` is an array of `x`'s
        library (or a Python number) that broadcasts to `x`.

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
    kernel = _dispatch.implementation("vjp", x)
    if kernel is not None:
        return kernel(x, alpha, beta, epsilon, origin=origin)
    p = prepare(x, xp=xp, alpha=alpha, beta=beta, epsilon=epsilon)
    y = finish(_primal(p, origin), p)

    def pullback(cotangent: ArrayLike) -> Array:
        cotangent = _prepare_cotangent(p, cotangent)
        grad = _math.gradient(p.xp, p.x, p.params["alpha"], p.params["beta"])
        grad *= cotangent  # a fresh array: safe to update in place
        return finish(grad, p)

    return y, pullback


def _prepare_cotangent(p: Prepared, cotangent: ArrayLike) -> Array:
    """The cotangent in the compute dtype, checked against ``x``."""
    xp = p.xp
    if not _compat.is_array_api_obj(cotangent):
        cotangent = xp.asarray(cotangent, device=_compat.device(p.x))
    _compat.namespace_of(p.x, cotangent, names=("x", "cotangent"))
    if not xp.isdtype(cotangent.dtype, ("real floating", "integral")):
        msg = f"cotangent must have a real numeric dtype, not {cotangent.dtype}"
        raise TypeError(msg)
    if tuple(cotangent.shape) != tuple(p.x.shape):
        try:
            xp.broadcast_to(cotangent, p.x.shape)
        except (ValueError, RuntimeError) as exc:
            msg = (
                f"cotangent of shape {tuple(cotangent.shape)} does not broadcast "
                f"to the shape of x, {tuple(p.x.shape)}"
            )
            raise ValueError(msg) from exc
        if cotangent.ndim > p.x.ndim:
            msg = (
                f"cotangent of shape {tuple(cotangent.shape)} has more dimensions "
                f"than x, {tuple(p.x.shape)}"
            )
            raise ValueError(msg)
    return xp.astype(cotangent, p.x.dtype, copy=False)


class S2NN:
    """The S2NN spike function as a callable object with fixed parameters.

    Calling it is :func:`s2nn` with its parameters; it also carries the
    smooth function and the surrogate gradient as methods, as
    ``braintools.surrogate.S2NN`` does.

    Parameters
    ----------
    alpha, beta, epsilon : float or array
        As for :func:`origin`, checked at construction.
    origin : bool, default False
        Return the smooth function instead of the spike; a settable attribute.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> fn = s2nn_xp.S2NN(alpha=4.0, beta=1.0)
    >>> fn
    S2NN(alpha=4.0, beta=1.0, epsilon=1e-08)
    >>> fn(np.array([-0.5, 0.5]))
    array([0., 1.])
    >>> fn.origin = True
    >>> fn(np.array([0.0]))
    array([0.50000001])
    >>> fn.surrogate_grad(np.array([0.0, 1.0]))
    array([1. , 0.5])
    """

    __slots__ = ("_origin", "alpha", "beta", "epsilon")

    def __init__(
        self,
        alpha: Parameter = ALPHA,
        beta: Parameter = BETA,
        epsilon: Parameter = EPSILON,
        origin: bool = False,
    ) -> None:
        self.alpha = validate_parameter("alpha", alpha)
        self.beta = validate_parameter("beta", beta)
        self.epsilon = validate_parameter("epsilon", epsilon)
        self.origin = origin

    @property
    def origin(self) -> bool:
        """Whether calls return the smooth function instead of the spike."""
        return self._origin

    @origin.setter
    def origin(self, value: bool) -> None:
        self._origin = validate_flag("origin", value)

    def __call__(self, x: ArrayLike) -> Array:
        """``s2nn(x, alpha, beta, epsilon, origin=self.origin)``."""
        return s2nn(x, self.alpha, self.beta, self.epsilon, origin=self.origin)

    def surrogate_fun(self, x: ArrayLike) -> Array:
        """The smooth original function, :func:`origin`."""
        return origin(x, self.alpha, self.beta, self.epsilon)

    def surrogate_grad(self, x: ArrayLike) -> Array:
        """The surrogate gradient, :func:`gradient`."""
        return gradient(x, self.alpha, self.beta)

    def vjp(self, x: ArrayLike) -> tuple[Array, Callable[[ArrayLike], Array]]:
        """:func:`vjp` with this object's parameters."""
        return vjp(x, self.alpha, self.beta, self.epsilon, origin=self.origin)

    def _key(self) -> tuple[Any, ...]:
        return (self.alpha, self.beta, self.epsilon)

    def __repr__(self) -> str:
        flag = ", origin=True" if self.origin else ""
        return (
            f"{type(self).__name__}(alpha={self.alpha!r}, beta={self.beta!r}, "
            f"epsilon={self.epsilon!r}{flag})"
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        same = all(
            a is b or (isinstance(a, float) and a == b)
            for a, b in zip(self._key(), other._key(), strict=True)
        )
        return same and self.origin == other.origin

    def __hash__(self) -> int:
        return hash((type(self), *(_hash_key(v) for v in self._key())))


def _hash_key(value: Any) -> Any:
    """Floats hash by value, array parameters by identity (as they compare)."""
    return value if isinstance(value, float) else id(value)
