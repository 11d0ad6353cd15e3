"""Input rules shared by every backend: dtypes, shapes and parameters.

``prepare`` turns the caller's arguments into what the math needs (``x`` in the
dtype the computation runs in, parameters as Python floats or arrays of that
dtype) and raises the package's errors for anything outside the rules of
the docs' *Definition* page. ``finish`` rounds a result back to the caller's dtype.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import _compat

__all__ = [
    "Prepared",
    "broadcasts_to",
    "check_representable",
    "describe",
    "finish",
    "input_dtypes",
    "prepare",
    "validate_flag",
    "validate_parameter",
]

# Parameter name -> (lower bound, whether the bound itself is allowed).
_BOUNDS: dict[str, tuple[float, bool]] = {
    "alpha": (0.0, False),
    "beta": (0.0, False),
    "epsilon": (0.0, True),
}


@dataclass(frozen=True, slots=True)
class Prepared:
    """Arguments ready for the math.

    Attributes
    ----------
    xp
        The array-API namespace of ``x``.
    x
        The input in the compute dtype (float32 for 16-bit input).
    dtype
        The dtype the result is returned in.
    params
        Parameter name -> Python float or array in the compute dtype.
    """

    xp: ModuleType
    x: Any
    dtype: Any
    params: dict[str, Any]


def describe(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _is_bool(value: Any) -> bool:
    """Whether ``value`` is a Python or NumPy bool."""
    numpy = sys.modules.get("numpy")
    return isinstance(value, bool) or (
        numpy is not None and isinstance(value, numpy.bool_)
    )


def validate_flag(name: str, value: Any) -> bool:
    """``value`` as a bool (Python's or NumPy's); anything else raises TypeError."""
    if _is_bool(value):
        return bool(value)
    msg = f"{name} must be a bool, not {describe(value)}"
    raise TypeError(msg)


def check_representable(name: str, value: float, dtype: Any, largest: float) -> float:
    """Raise ValueError unless the Python number ``value`` is finite in ``dtype``.

    ``largest`` is ``finfo(dtype).max``. A parameter that overflows the dtype
    the computation runs in would become ``inf`` and make NaN (``0 * inf``)
    in the branch that is not taken.
    """
    if abs(value) > largest:
        msg = f"{name}={value!r} overflows {dtype}, the dtype x is computed in"
        raise ValueError(msg)
    return value


def _check_values(name: str, values: Any) -> None:
    """Check concrete parameter values (a NumPy array) against the bounds."""
    import numpy as np

    lower, inclusive = _BOUNDS[name]
    in_range = values >= lower if inclusive else values > lower
    _check_bound(name, bool(np.all(np.isfinite(values) & in_range)))


def _check_bound(name: str, ok: bool) -> None:
    lower, inclusive = _BOUNDS[name]
    if not ok:
        relation = ">=" if inclusive else ">"
        msg = f"{name} must be finite and {relation} {lower}"
        raise ValueError(msg)


def validate_parameter(name: str, value: Any) -> Any:
    """Check a parameter that is a Python number; arrays pass through.

    Parameters
    ----------
    name
        ``"alpha"``, ``"beta"`` or ``"epsilon"``.
    value
        A real Python or NumPy scalar, or an array (checked later against ``x``).

    Returns
    -------
    float or array
        ``float(value)`` for numbers, ``value`` itself for anything array-like.
        Lists, tuples and NumPy arrays (host data) have their values checked;
        arrays of other libraries may live on a GPU or be traced, and are not.

    Raises
    ------
    TypeError
        For booleans, complex numbers and objects that are no number or array.
    ValueError
        For a number outside the parameter's range, or not finite.
    """
    if _is_bool(value):
        msg = f"{name} must be a real number or array, not a bool"
        raise TypeError(msg)
    if isinstance(value, numbers.Real):
        try:
            value = float(value)
        except OverflowError:  # an int beyond float64
            value = math.inf
        lower, inclusive = _BOUNDS[name]
        _check_bound(
            name,
            math.isfinite(value) and (value >= lower if inclusive else value > lower),
        )
        return value
    if isinstance(value, numbers.Complex):
        msg = f"{name} must be real, not complex ({value!r})"
        raise TypeError(msg)
    if isinstance(value, list | tuple) or type(value).__module__ == "numpy":
        import numpy as np

        try:
            values = np.asarray(value)
        except ValueError as exc:  # ragged nested lists
            msg = f"{name} is no rectangular array of numbers: {exc}"
            raise ValueError(msg) from exc
        if values.dtype.kind not in "fiu":
            msg = f"{name} must have a real numeric dtype, not {values.dtype}"
            raise TypeError(msg)
        _check_values(name, values)
        return value
    if _compat.is_array_api_obj(value):
        return value
    msg = f"{name} must be a real number or an array, not {describe(value)}"
    raise TypeError(msg)


def broadcasts_to(shape: tuple[Any, ...], target: tuple[Any, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``target``."""
    if len(shape) > len(target):
        return False
    for n, m in zip(reversed(shape), reversed(target), strict=False):
        if n is None or m is None or n != n or m != m:  # unknown (lazy) sizes
            continue
        if n not in (1, m):
            return False
    return True


def input_dtypes(xp: ModuleType, x: Any) -> tuple[Any, Any]:
    """(compute dtype, result dtype) for ``x`` by the *Definition*'s dtype rules."""
    dtype = x.dtype
    try:
        if xp.isdtype(dtype, "real floating"):
            compute = xp.float32 if xp.finfo(dtype).bits < 32 else dtype
            return compute, dtype
        if xp.isdtype(dtype, ("bool", "integral")):
            info = xp.__array_namespace_info__()
            default = info.default_dtypes(device=_compat.device(x))["real floating"]
            return default, default
        complex_input = xp.isdtype(dtype, "complex floating")
    except TypeError:  # a dtype the namespace does not know (object, string, ...)
        complex_input = False
    if complex_input:
        msg = f"x must be real; complex input (dtype {dtype}) is not supported"
    else:
        msg = f"x must have a real numeric dtype, not {dtype}"
    raise TypeError(msg)


def _prepare_array_parameter(
    xp: ModuleType, name: str, value: Any, x: Any, compute_dtype: Any
) -> Any:
    if not _compat.is_array_api_obj(value):  # a list or tuple of per-neuron values
        value = xp.asarray(value, device=_compat.device(x))
    dtype = value.dtype
    if not xp.isdtype(dtype, ("real floating", "integral")):
        msg = f"{name} must have a real numeric dtype, not {dtype}"
        raise TypeError(msg)
    if not broadcasts_to(tuple(value.shape), tuple(x.shape)):
        msg = (
            f"{name} of shape {tuple(value.shape)} does not broadcast to the "
            f"shape of x, {tuple(x.shape)}"
        )
        raise ValueError(msg)
    if _compat.is_array_api_strict_namespace(xp):  # host data: check it
        import numpy as np

        _check_values(name, np.from_dlpack(value))
    return xp.astype(value, compute_dtype, copy=False)


def prepare(x: Any, /, *, xp: ModuleType | None = None, **params: Any) -> Prepared:
    """Check and convert the arguments of a public function.

    Parameters
    ----------
    x
        Any array-API array, or a Python scalar or list (NumPy input).
    xp
        The namespace to use; by default the one ``x`` comes from.
    **params
        ``alpha``, ``beta`` and/or ``epsilon``.

    Returns
    -------
    Prepared
        ``x`` in its compute dtype, the result dtype and the parameters.
    """
    params = {name: validate_parameter(name, value) for name, value in params.items()}
    x = _compat.as_array(x)
    arrays = {n: v for n, v in params.items() if _compat.is_array_api_obj(v)}
    if xp is None:
        xp = _compat.namespace_of(x, *arrays.values(), names=("x", *arrays))
    compute_dtype, result_dtype = input_dtypes(xp, x)
    if x.dtype != compute_dtype:
        x = xp.astype(x, compute_dtype)
    largest = float(xp.finfo(compute_dtype).max)
    for name, value in params.items():
        if isinstance(value, float):
            check_representable(name, value, compute_dtype, largest)
        else:
            params[name] = _prepare_array_parameter(xp, name, value, x, compute_dtype)
    return Prepared(xp=xp, x=x, dtype=result_dtype, params=params)


def finish(result: Any, prepared: Prepared) -> Any:
    """Round ``result`` once, from the compute dtype to the result dtype.

    NumPy turns 0-d results of its ufuncs into scalars; they become 0-d
    arrays again, as the array API returns.
    """
    if result.dtype != prepared.dtype:
        result = prepared.xp.astype(result, prepared.dtype)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(result, numpy.generic):
        return numpy.asarray(result)
    return result
