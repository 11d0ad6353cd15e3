"""The input rules, once, for every entry point and every backend.

Each rule of the docs' *Definition* page (dtypes, promotion, complex and
non-numeric rejection, parameter bounds, representability in the compute
dtype, broadcasting, cotangents) is one function here with one message, and
the public functions, the JAX, PyTorch and CuPy adapters and the nn.Module all
call it. Checks of Python numbers use comparisons only, so that the same
function traces under ``torch.compile`` and ``jax.jit`` (a comparison of a
traced number becomes a guard, where ``math.isfinite`` cannot be traced).

``prepare`` turns the caller's arguments into what the math needs (``x`` in
the dtype the computation runs in, parameters as Python floats or arrays of
``x``'s library in that dtype); ``finish`` rounds a result back to the
caller's dtype.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from . import _backends, _compat
from ._fused import stacklevel_of_the_user

__all__ = [
    "BOUNDS",
    "EPSILON_IS_CONSTANT",
    "Prepared",
    "above_lower_bound",
    "as_input",
    "bound_error",
    "broadcasts_to",
    "check_arguments",
    "check_broadcast",
    "check_cotangent_shape",
    "check_device",
    "check_namespace",
    "check_number",
    "check_parameter",
    "check_real_dtype",
    "check_representable",
    "check_same_device",
    "describe",
    "finish",
    "has_masked_chunks",
    "host_floats",
    "host_input",
    "host_values",
    "input_dtypes",
    "is_host_data",
    "known",
    "masked_host_data",
    "masked_parameter",
    "may_be_zero",
    "mixed_libraries",
    "ml_dtypes_kind",
    "other_devices_error",
    "overflow_limit",
    "prepare",
    "prepare_cotangent",
    "real_dtype_error",
    "refuse_other_library",
    "tell_epsilon_is_constant",
    "validate_flag",
    "validate_parameter",
    "with_cotangent_mask",
]

_PACKAGE = __name__.partition(".")[0]

# What a PyTorch epsilon that requires grad is told (the functions, the
# modules, the objects): it is a constant.
EPSILON_IS_CONSTANT = "epsilon requires grad, but it is a constant: it gets none"


def tell_epsilon_is_constant(epsilon: Any) -> None:
    """Warn where ``epsilon``, a tensor, requires grad: it gets none.

    At the user's line; not under ``torch.compile``, whose graph would break
    at the warning (``fullgraph=True`` failed there).
    """
    if not epsilon.requires_grad or _torch_compiling():
        return
    level = stacklevel_of_the_user((_PACKAGE, "torch"))
    warnings.warn(EPSILON_IS_CONSTANT, UserWarning, stacklevel=level)


# Parameter name -> (lower bound, whether the bound itself is allowed).
BOUNDS: dict[str, tuple[float, bool]] = {
    "alpha": (0.0, False),
    "beta": (0.0, False),
    "epsilon": (0.0, True),
}

_INF = float("inf")


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
    mask
        The mask of a NumPy masked-array ``x`` (results carry it), else None.
    mask_settings
        Such an ``x``'s fill value (None where it has NumPy's default) and
        ``hard_mask``, which results keep, as NumPy's ufuncs' do.
    """

    xp: ModuleType
    x: Any
    dtype: Any
    params: dict[str, Any]
    mask: Any = None
    mask_settings: tuple[Any, bool] | None = None


def describe(value: Any) -> str:
    """``module.TypeName`` of ``value``, for error messages; a module by name."""
    if isinstance(value, ModuleType):  # not "builtins.module"
        return f"the module {value.__name__}"
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
    if _compat.is_jax_tracer(value):
        # jax.jit(s2nn_xp.s2nn)(x, origin=True) traces every argument
        msg += (
            f" (a traced value: a JAX transform traces its arguments; give a "
            f"Python bool, under jax.jit as a static argument, "
            f"static_argnames={name!r}, or closed over)"
        )
    raise TypeError(msg)


def bound_error(name: str) -> ValueError:
    """The error for a parameter value outside its range.

    Its text made once, not formatted here: ``torch.compile(dynamic=True)``
    traces the bounds as symbolic floats, which no f-string in the traced
    code can format (``fullgraph=True`` then lost the error itself).
    """
    return ValueError(_BOUND_MESSAGES[name])


def _bound_message(name: str) -> str:
    lower, inclusive = BOUNDS[name]
    relation = ">=" if inclusive else ">"
    return f"{name} must be finite and {relation} {lower}"


_BOUND_MESSAGES = {name: _bound_message(name) for name in BOUNDS}


def above_lower_bound(name: str, value: Any) -> Any:
    """Whether ``value`` is above parameter ``name``'s lower bound (elementwise).

    ``value`` is a number, an array or a value a compiler traces: the
    comparison alone, of its kind (False for NaN). The upper bound, finite,
    is checked with the dtype (:func:`check_representable`).
    """
    lower, inclusive = BOUNDS[name]
    return value >= lower if inclusive else value > lower


def may_be_zero(name: str) -> bool:
    """Whether 0 is a valid value of parameter ``name`` (epsilon's is)."""
    return bool(above_lower_bound(name, 0.0))


def check_number(name: str, value: float) -> float:
    """Raise ValueError unless the number ``value`` is in ``name``'s range.

    Comparisons only, so that a number traced by ``torch.compile`` is
    checked by the same code, as guards. NaN first, as the number unequal
    to itself: with ``dynamic=True`` Dynamo traces the bounds as symbolic
    floats, and ordering a NaN against one raised "Invalid NaN comparison"
    inside Dynamo.
    """
    if value != value:
        raise bound_error(name)
    if not (above_lower_bound(name, value) and value < _INF):
        raise bound_error(name)
    return value


def checked_number(
    name: str,
    value: float,
    dtype: Any,
    largest: float,
    *,
    flushed_by: str | None = None,
) -> float:
    """A Python float parameter checked once for each value and dtype.

    By :func:`check_number`, then :func:`check_representable` in ``dtype``.
    A module's numbers come again at every call, where their checks were a
    tenth of a call's cost at 8,192 values: those found valid are kept (a
    bounded record, cleared when full: an annealed one) and returned as
    given (``-0.0`` too). A NaN is never valid, nor equal to one kept.
    """
    # the dtype's type before it: a library's dtype may warn when compared
    # with another's (array-api-strict's with NumPy's, of the same hash)
    key = (name, value, type(dtype), dtype, flushed_by)
    if key in _VALID_NUMBERS:
        return value
    check_number(name, value)
    checked: float = check_representable(
        name, value, dtype, largest, flushed_by=flushed_by
    )
    if len(_VALID_NUMBERS) >= VALID_NUMBERS_KEPT:
        _VALID_NUMBERS.clear()
    _VALID_NUMBERS.add(key)
    return checked


# Python-number parameters found valid: (name, value, the compute dtype's
# type, the compute dtype, the library that flushes subnormals there or None).
_VALID_NUMBERS: set[tuple[str, float, type, Any, str | None]] = set()
VALID_NUMBERS_KEPT = 256


def check_representable(
    name: str,
    value: Any,
    dtype: Any,
    largest: float,
    why: str = "the dtype x is computed in",
    *,
    flushed_by: str | None = None,
    element: bool = False,
) -> Any:
    """Raise ValueError unless ``value`` is finite in ``dtype``.

    ``value`` is a Python number or a NumPy array of host values; ``largest``
    is ``finfo(dtype).max``; ``why`` says what ``dtype`` is, for the
    message. A parameter that overflows the dtype the
    computation runs in would become ``inf`` and make NaN (``0 * inf``) in
    the branch that is not taken. ``flushed_by`` names the library that
    computes subnormal numbers as 0 (XLA), where ``x``'s does: there a
    subnormal ``alpha`` or ``beta`` is refused too (it would act as 0:
    ``alpha=1e-38`` gave ``sigmoid(0)`` for every ``x``, silently); a tiny
    ``epsilon`` acts as 0, which it may be, as one that rounds to 0 does.
    A number that is an `element` of `name`'s list is said to be held by it.
    """
    # Half the smallest subnormal rounds to 0 (alpha > 0 and beta > 0 would
    # not hold; epsilon may be 0). Only float32 has one above float64's.
    narrow = largest < _FLOAT64_LARGEST  # float32, the other compute dtype
    vanishing = _FLOAT32_VANISHING if narrow else 0.0
    # Values up to half an ulp beyond the largest round to it, not to inf.
    limit = overflow_limit(largest, 2.0**-23 if narrow else 2.0**-52)
    if isinstance(value, numbers.Real):  # a float, or a Fraction float64 rounds
        number = float(value)
        too_large = not (-limit < number < limit)
        too_small = not may_be_zero(name) and abs(number) <= vanishing
    else:
        import numpy as np

        # Compared in float64, which holds every value of the narrower
        # dtypes exactly: NumPy would cast the bounds to a float16 or float32
        # array's dtype instead (NumPy 2 for Python floats, 1.x for float64
        # scalars too), where they overflow or underflow (a warning, or an
        # error under the caller's np.errstate).
        with np.errstate(over="ignore", under="ignore"):  # longdouble: inf, 0
            magnitude = np.abs(np.asarray(value, dtype=np.float64))
        too_large = bool(np.any(magnitude >= limit))
        too_small = not may_be_zero(name) and bool(np.any(magnitude <= vanishing))
    if not (too_large or too_small):
        if flushed_by is not None and not may_be_zero(name):
            # (epsilon may be 0: a tiny one acts as 0, as one that rounds to 0)
            _check_not_flushed(name, value, narrow, dtype, flushed_by)
        return value
    if isinstance(value, float):  # an f-string, which torch.compile traces
        what = f"{name}={value!r} " + ("overflows" if too_large else "is 0 in")
    elif isinstance(value, numbers.Real):
        subject = (
            f"{name} holds {_number_text(value)}, which"
            if element
            else _named_number(name, value)
        )
        what = subject + (" overflows" if too_large else " is 0 in")
    else:
        what = f"{name} has values that " + ("overflow" if too_large else "are 0 in")
    msg = f"{what} {_dtype_name(dtype)}, {why}"
    raise ValueError(msg)


def _named_number(name: str, value: numbers.Real) -> str:
    """``alpha=Fraction(1, 3)``; a long one by its type and magnitude."""
    text = _number_text(value)
    return f"{name} ({text})" if text.startswith("a ") else f"{name}={text}"


def _number_text(value: numbers.Real) -> str:
    """``Fraction(1, 3)``; a long one ``a Fraction of about 1e-400``.

    Long: more than 40 characters, or terms of more than 128 bits, whose
    text is not made (beyond ``sys.get_int_max_str_digits`` digits, ``repr``
    raises).
    """
    if not isinstance(value, numbers.Rational):
        return repr(value)
    numerator, denominator = abs(int(value.numerator)), int(value.denominator)
    if max(numerator.bit_length(), denominator.bit_length()) <= 128:
        text = repr(value)
        if len(text) <= 40:
            return text
    return _magnitude(value)


def _magnitude(value: numbers.Rational) -> str:
    """``a Fraction of about 1e-400``: a long number by its type and size."""
    numerator, denominator = abs(int(value.numerator)), int(value.denominator)
    exponent = math.floor(math.log10(numerator) - math.log10(denominator))
    return f"a {type(value).__name__} of about 1e{exponent}"


def overflow_limit(largest: float, eps: float) -> float:
    """The smallest magnitude that rounds beyond ``largest`` in a binary dtype.

    ``largest`` plus half its ulp (``eps`` is the dtype's machine epsilon;
    ``inf`` for float64, where that sum itself rounds up). A saturating
    format (float8_e4m3fn, no infinity) stores such a value as ``largest``;
    there, whose largest has an even last digit, the tie itself would round
    to it, and is refused all the same.
    """
    return largest + math.ldexp(eps, math.frexp(largest)[1] - 2)


# float32's smallest subnormal, halved: the largest value that rounds to 0.
_FLOAT32_VANISHING = 2.0**-150
_FLOAT64_LARGEST = 1.7976931348623157e308
_INT64_LARGEST = 2**63 - 1
# What float64 is, where a value beyond it is refused whatever x's dtype.
_WIDEST_COMPUTED = "the widest dtype computed in"


def _dtype_name(dtype: Any) -> str:
    """``float32`` for NumPy's, torch's, JAX's or array-api-strict's float32."""
    name = getattr(dtype, "__name__", None) or str(dtype)
    return name.rpartition(".")[2]


def ml_dtypes_kind(dtype: Any) -> str | None:
    """``"floating"`` or ``"integral"`` for a dtype of ml_dtypes, else None.

    NumPy arrays may hold ml_dtypes' types (bfloat16, the float8, float6 and
    float4 formats, int4, uint4), which NumPy's ``isdtype`` (and
    array-api-compat's) does not know and JAX does: the *Definition*'s rules
    for floating and integer input apply to them as to JAX's.
    """
    kind = getattr(dtype, "type", None)
    if kind is None or getattr(kind, "__module__", None) != "ml_dtypes":
        return None
    return "integral" if kind.__name__.startswith(("int", "uint")) else "floating"


def _is_time_delta(dtype: Any) -> bool:
    """Whether ``dtype`` is NumPy's ``timedelta64``, which NumPy 1.x calls integral.

    Durations are no real numbers: NumPy 2 refuses arithmetic with them as
    such, NumPy 1.x's ``isdtype`` (array-api-compat's) counts them integers.
    """
    return getattr(dtype, "kind", None) == "m"


def check_real_dtype(name: str, xp: ModuleType, dtype: Any) -> None:
    """TypeError unless ``dtype`` is a real floating or integer dtype of ``xp``."""
    # Not while torch.compile traces: Dynamo would have to compare the
    # dtypes of every library in the set with this one, and cannot compare
    # ml_dtypes' NumPy dtypes (Unsupported, which fullgraph=True raised).
    compiling = _torch_compiling()
    key = (xp.__name__, dtype)
    if not compiling and key in _REAL_DTYPES:
        return
    if ml_dtypes_kind(dtype) is None and (
        _is_time_delta(dtype) or not _is_real_number(xp, dtype)
    ):
        raise real_dtype_error(name, dtype)
    if not compiling:
        _REAL_DTYPES.add(key)


def _torch_compiling() -> bool:
    """Whether torch.compile traces this call (False where torch is not imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.compiler.is_compiling())


def _is_real_number(xp: ModuleType, dtype: Any) -> bool:
    try:
        if xp.isdtype(dtype, "real floating"):
            # a float that holds no value an element (torch's packed
            # float4_e2m1fn_x2) has no largest value, and converts to no other
            # dtype
            xp.finfo(dtype).max  # noqa: B018 (the question asked of xp)
            return True
        return bool(xp.isdtype(dtype, "integral"))
    except (TypeError, NotImplementedError):
        # a dtype isdtype refuses to judge (NumPy's StringDType)
        return False


def real_dtype_error(name: str, dtype: Any) -> TypeError:
    """The error for ``name`` of a dtype that is no real number's."""
    return TypeError(f"{name} must have a real numeric dtype, not {dtype}")


# The dtypes check_real_dtype took: xp.isdtype costs microseconds a call,
# which a module paid at every call for each tensor parameter (a set, not
# functools.lru_cache, which torch.compile warns about). Not those refused,
# which have no bound (a string dtype of each length).
_REAL_DTYPES: set[tuple[str, Any]] = set()


def broadcasts_to(shape: tuple[Any, ...], target: tuple[Any, ...]) -> bool:
    """Whether an array of ``shape`` broadcasts to exactly ``target``.

    Sizes not known yet (None, Dask's NaN) equal nothing: :func:`check_broadcast`
    refuses them first, naming the way to know them.
    """
    if len(shape) > len(target):
        return False
    for n, m in zip(reversed(shape), reversed(target), strict=False):
        # Two comparisons, not ``n not in (1, m)``: Dynamo (torch 2.13) tests
        # membership of a symbolic size by identity, so a parameter's static
        # 64 was "not in" (1, s0) for a dynamic x of 64 columns.
        if n != 1 and n != m:
            return False
    return True


def check_broadcast(
    name: str, shape: tuple[Any, ...], x_shape: tuple[Any, ...]
) -> None:
    """ValueError unless an array of ``shape`` broadcasts to the shape of ``x``.

    Where a size is not known yet (Dask's NaN after boolean indexing, the
    None of a lazy library's data-dependent or symbolic size, as a model
    input of ndonnx has) on an axis the array does
    not broadcast along (its size there is not 1), the rule cannot be
    checked, and Dask would pair the chunks one by one, broadcasting a chunk
    of 1 silently: refused, with the way to know them.
    """
    shape, x_shape = tuple(shape), tuple(x_shape)
    for n, m in zip(reversed(shape), reversed(x_shape), strict=False):
        if n != 1 and (_unknown(n) or _unknown(m)):
            msg = (
                f"{name} of shape {shape} against x of shape {x_shape}: sizes "
                "not known yet (a lazy array's None or NaN) cannot be checked; "
                "pass arrays whose sizes are known (make them known first, as "
                "Dask's compute_chunk_sizes() does), or a number"
            )
            raise ValueError(msg)
    if not broadcasts_to(shape, x_shape):
        msg = f"{name} of shape {shape} does not broadcast to the shape of x, {x_shape}"
        raise ValueError(msg)


def check_device(name: str, value: Any, x: Any) -> None:
    """ValueError unless the array ``value`` is on ``x``'s device.

    Where the library moves arrays itself (the registry's
    ``places_arrays``), it decides, except between arrays committed to
    different devices, which it refuses.
    """
    backend = _backends.of_array(x)
    if backend is not None and backend.places_arrays:
        here = _compat.committed_devices(value)
        there = None if here is None else _compat.committed_devices(x)
        if there is not None:
            check_same_device(name, _device_names(here), _device_names(there))
        return
    check_same_device(name, _compat.device(value), _compat.device(x))


def _device_names(devices: Any) -> str:
    """Devices in order as one device's name, or the list of several."""
    names = [str(device) for device in devices]
    return names[0] if len(names) == 1 else f"[{', '.join(names)}]"


def check_same_device(name: str, here: Any, there: Any) -> None:
    """ValueError unless ``name``'s device, `here`, is ``x``'s, `there`."""
    if here != there:
        msg = f"{name} is on device {here}, x on device {there}; move {name} to x's"
        raise ValueError(msg)


def other_devices_error(
    names: Sequence[str], *, traced: bool, meshes: bool = False
) -> ValueError:
    """The error for arrays that the library underneath found on other devices.

    Refused by the library underneath (JAX) in words naming its own
    function's arguments, where the devices were not compared before the
    call: ``names`` are the arrays that may be the ones elsewhere. Under a
    transform (``traced``) their devices cannot be read, and a tangent that
    the transform carries with them, or with ``x``, may be the one instead.
    ``meshes``: refused as typed with different meshes (explicit sharding:
    other devices, axis names or axis types), which putting the array on
    ``x``'s mesh mends.
    """
    which = " or ".join(names)
    where, wheres, remedy, refused = (
        ("mesh", "meshes", "put {} on x's mesh", "typed with different meshes")
        if meshes
        else ("device", "devices", "move {} to x's", "on incompatible devices")
    )
    if traced:
        return ValueError(
            f"{which} is on another {where} than x, or a tangent of x or of "
            f"{which} is; {remedy.format('it')} (JAX refused the call's arrays "
            f"as {refused}; under a transform their {wheres} cannot be read)"
        )
    return ValueError(
        f"{which} is on another {where} than x; {remedy.format(which)} (JAX "
        f"refused the call's arrays as {refused})"
    )


def check_cotangent_shape(shape: tuple[Any, ...], x_shape: tuple[Any, ...]) -> None:
    """ValueError unless a cotangent of ``shape`` broadcasts to ``x``'s shape."""
    if len(shape) > len(x_shape):
        msg = (
            f"cotangent of shape {tuple(shape)} has more dimensions than x, "
            f"{tuple(x_shape)}"
        )
        raise ValueError(msg)
    check_broadcast("cotangent", shape, x_shape)


def _unknown(n: Any) -> bool:
    """Whether the size ``n`` is not known yet: None, or NaN (Dask's).

    A symbolic size (torch.compile's, jax.export's) is known: it equals
    itself, and comparisons of it become guards or constraints.
    """
    return n is None or n != n


def _in_chunks_of_x(name: str, value: Any, x: Any) -> Any:
    """A Dask array argument in ``x``'s chunks, where ``x`` has over 32 dimensions.

    Dask computes arrays in different chunks by rechunking them in ``x``'s
    dimensions, which it refuses beyond 32 (its RuntimeError named nothing):
    rechunked in its own, or refused naming it where it has as many.
    """
    if not (
        _compat.is_dask_array(x)
        and x.ndim > _compat.DASK_DIMENSIONS
        and known(tuple(x.shape))
        and known(tuple(value.shape))
    ):
        return value
    chunked = _compat.chunked_like(value, x)
    if chunked is None:
        msg = (
            f"{name} is chunked otherwise than x, and Dask rechunks arrays of at "
            f"most {_compat.DASK_DIMENSIONS} dimensions ({name} has "
            f"{value.ndim}); give it x's chunks"
        )
        raise ValueError(msg)
    return chunked


def known(shape: tuple[Any, ...]) -> bool:
    """Whether every size of ``shape`` is known."""
    return not any(_unknown(n) for n in shape)


def masked_host_data(name: str, library: str) -> TypeError:
    """The error for a masked NumPy array given where ``library`` computes.

    Its mask cannot go into that library's arrays, and its data alone would
    drop it silently.
    """
    return TypeError(
        f"{name} is a masked NumPy array, whose mask does not go into "
        f"{library} arrays; fill it ({name}.filled(0.0)), or give an array of "
        f"{library}"
    )


def _foreign_input(x: Any, library: str) -> TypeError:
    """The error for an ``x`` of a third library given to ``library``'s adapter."""
    return TypeError(
        f"x is {describe(x)}, not an array of {library}; give a {library} array "
        "or host data (numbers, lists, NumPy arrays), or call s2nn_xp's own "
        "functions (s2nn_xp.s2nn, ...), which compute in x's library"
    )


def mixed_libraries(x: Any, name: str, value: Any) -> TypeError:
    """The error for an array argument of another library than ``x``'s.

    Where ``x`` is a NumPy array, the computation's library is NumPy's (as
    ``x``'s library decides): the way to compute in ``value``'s (under a
    ``jax.grad`` in ``alpha``, say) is an ``x`` of it.
    """
    instead = (
        f"{name} as a Python number, a list, a NumPy array or an array of x's library"
    )
    if _is_numpy(x) and _compat.is_array_api_obj(value):
        library = _library(_compat.array_namespace(value)).partition(".")[0]
        instead += f", or x as an array of {library}, which then computes"
    return TypeError(
        f"arrays from different libraries cannot be mixed (x: {describe(x)}, "
        f"{name}: {describe(value)}); pass {instead}"
    )


def _host_view(name: str, value: Any) -> Any:
    """A NumPy view of `name`, an array whose values sit in host memory, else None.

    The registry says which libraries' values do (``values_on_host``): they
    can be checked
    without waiting for a device or meeting a tracer. A lazy array of such a
    library (its record's ``lazy``: values not computed yet) is not read.
    """
    if isinstance(value, numbers.Number) or _is_sequence(value):
        return None
    if not _may_be_array(value):
        return None
    backend = _backends.of_array(value)
    if backend is None or not backend.values_on_host or backend.lazy:
        return None
    try:
        return backend.to_numpy(value)
    except MemoryError:
        raise  # too large to read whole (a huge sparse array): no user's mistake
    except Exception as exc:  # the record's to_numpy cannot read it
        msg = f"{name} could not be read by backend record {backend.name!r}: {exc}"
        raise TypeError(msg) from exc


def _may_be_array(value: Any) -> bool:
    """Whether ``value`` may be an array: NumPy can read it, or it has a namespace.

    Every array library's arrays have one of the two; other objects (a
    string) need no lookup, which ``torch.compile`` cannot trace (the
    registry's ``str.partition``, array-api-compat's cached checks).
    """
    return hasattr(value, "__array__") or hasattr(value, "__array_namespace__")


def _is_numpy(value: Any) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, (numpy.ndarray, numpy.generic))


def has_masked_chunks(value: Any) -> bool:
    """Whether ``value`` is a lazy array of NumPy masked chunks.

    Its ``_meta`` says so (Dask's ``da.ma``): masks unseen at the call, which
    would mask results where NumPy input's masked parameter is refused.
    """
    numpy = sys.modules.get("numpy")
    meta = getattr(value, "_meta", None)
    return numpy is not None and isinstance(meta, numpy.ma.MaskedArray)


def masked_parameter(name: str) -> TypeError:
    """The error for a masked array as parameter ``name``."""
    return TypeError(
        f"{name} must not be a masked array: a parameter needs a value for "
        "every neuron (pass its data, or a filled array)"
    )


def host_values(name: str, value: Any, x_shape: tuple[Any, ...] | None = None) -> Any:
    """The values of a list, tuple or array whose values sit in host memory, as NumPy.

    Checked: real numeric dtype, not masked, broadcasting to ``x_shape``
    (where given), inside the parameter's range: the shape before the
    values, which a wrong shape makes no sense of (and a broadcast view of
    a few bytes, of a shape that does not fit, would have them compared in
    full).
    """
    import numpy as np

    check_plain_values(name, value)  # before its attributes are read as data
    # NumPy's masked arrays, and marray's (every marray array has a mask;
    # one with a masked element); a method called mask is none.
    mask = None if _is_numpy(value) else getattr(value, "mask", None)
    if callable(mask):
        mask = None
    if isinstance(value, np.ma.MaskedArray) or (
        mask is not None and bool(np.any(np.asarray(mask)))
    ):
        raise masked_parameter(name)
    view = _host_view(name, value)
    values = _host_array(name, value if view is None else view)
    check_real_dtype(name, _compat.array_namespace(values), values.dtype)
    if x_shape is not None:
        check_broadcast(name, values.shape, x_shape)
    # ml_dtypes' formats compared in float64, which holds all their values:
    # in their own dtype the bound may not exist (float8_e8m0fnu has no 0,
    # which became NaN there, and every value was refused).
    compared = values if ml_dtypes_kind(values.dtype) is None else values.astype(float)
    with np.errstate(invalid="ignore"):
        in_range = above_lower_bound(name, compared)
        outside = ~(np.isfinite(compared) & in_range)
    if outside.any():
        # Which of how many: a tensor given where a number was meant (a
        # membrane potential, as a class given for an instance gets) shows.
        count = int(outside.sum())
        which = (
            f"its one value (shape {values.shape}) is not"
            if values.size == 1
            else f"{count} of its {values.size} values (shape {values.shape}) "
            + ("is not" if count == 1 else "are not")
        )
        msg = f"{_BOUND_MESSAGES[name]}; {which}"
        raise ValueError(msg)
    _within_float64(name, values)  # longdouble: 1e400 is finite there
    return values


def validate_parameter(
    name: str, value: Any, x_shape: tuple[Any, ...] | None = None
) -> Any:
    """Check a parameter as far as its own value allows.

    Parameters
    ----------
    name
        ``"alpha"``, ``"beta"`` or ``"epsilon"``.
    value
        A real Python or NumPy number, a list or tuple of them, or an array.
    x_shape
        The shape of the ``x`` it goes with, if known: host values must
        broadcast to it, checked before their values (:func:`host_values`).

    Returns
    -------
    float, numpy.ndarray or array
        ``float(value)`` for numbers; the checked values as a NumPy array for
        host data (lists, tuples, arrays of the libraries whose record says
        ``values_on_host``, see :func:`_host_view`); other arrays unchanged
        (they may live on a GPU or be traced: their values are not checked).

    Raises
    ------
    TypeError
        For booleans, complex numbers, masked arrays and objects that are no
        number or array.
    ValueError
        For a value outside the parameter's range, or not finite.
    """
    if _is_bool(value):
        raise TypeError(f"{name} must be {_accepted(name)}, not a bool")
    if _is_time_delta(getattr(value, "dtype", None)):  # NumPy calls it Integral
        raise real_dtype_error(name, value.dtype)
    if isinstance(value, numbers.Real):
        _within_float64(name, value)
        try:
            number = float(value)
        except OverflowError:  # an int beyond float64
            raise _beyond_float64(name, value) from None
        _check_not_vanished(name, value, number)
        return check_number(name, number)
    if isinstance(value, numbers.Complex):
        msg = f"{name} must be real, not complex ({value!r})"
        raise TypeError(msg)
    if _is_sequence(value):  # a list, tuple, range, deque, array.array, ...
        return host_values(name, value, x_shape)
    # A wrapper of a JAX array first, as for x: one that also passes on its
    # value's __array_namespace__ (flax's nnx.Param) was taken as an array
    # of no known library, its values unchecked (alpha = -4 was used).
    unwrapped = _compat.stood_for(value, name)
    if unwrapped is not value:
        return unwrapped
    try:
        view = _host_view(name, value)
    except Exception:
        # a library's reading of an array of an older standard (the DLPack
        # of array-api-strict set to 2022.12) fails in its own words
        if _compat.is_array_api_obj(value):
            check_standard_version(_compat.array_namespace(value), name)
        raise
    if view is not None:
        values = host_values(name, value, x_shape)
        # NumPy data goes to x's library; other libraries' arrays stay theirs.
        return values if _is_numpy(value) else value
    if _may_be_array(value) and _compat.is_array_api_obj(value):
        if not _has_array_attributes(value):
            raise _not_an_array(name, value)
        if has_masked_chunks(value):
            raise masked_parameter(name)
        return value
    if _reads_as_array(value):  # host data as x takes it (NumPy reads it)
        return host_values(name, value, x_shape)
    raise wrong_type(name, value)


def _reads_as_array(value: Any) -> bool:
    """Whether NumPy reads ``value`` as an array by a protocol (``__array__``...).

    Host data that ``x`` takes, as parameters and cotangents take it too.
    """
    return any(
        hasattr(value, protocol)
        for protocol in ("__array__", "__array_interface__", "__array_struct__")
    )


def _check_not_vanished(
    name: str, value: numbers.Real, number: float, *, element: bool = False
) -> None:
    """ValueError for a positive ``alpha`` or ``beta`` that ``float`` made 0.

    A Fraction below float64's range: said so, not "must be > 0" of a
    positive number (a float's 0 is 0; a tiny ``epsilon`` may be 0); as
    what `name` holds where it is an `element` of a list.
    """
    if number != 0 or not isinstance(value, numbers.Rational):
        return
    if int(value.numerator) <= 0 or may_be_zero(name):
        return
    check_representable(
        name, value, "float64", _FLOAT64_LARGEST, _WIDEST_COMPUTED, element=element
    )


def _within_float64(name: str, value: Any) -> None:
    """ValueError for finite values wider than float64 beyond its range.

    NumPy's longdouble holds 1e400 and 1e-400, which no computation can
    (float64 is the widest dtype computed in): said so now, rather than
    "must be finite and > 0" for the number, or at every call for an array.
    """
    dtype = getattr(value, "dtype", None)
    if dtype is None or dtype.kind != "f" or dtype.itemsize <= 8:
        return
    import numpy as np

    finite = np.asarray(value)[np.isfinite(value)]  # others: the range check's
    check_representable(name, finite, np.float64, _FLOAT64_LARGEST, _WIDEST_COMPUTED)


def input_dtypes(xp: ModuleType, x: Any) -> tuple[Any, Any]:
    """(compute dtype, result dtype) for ``x`` by the *Definition*'s dtype rules.

    A NumPy dtype of a non-native byte order (a Dask array's) gives native
    ones, as NumPy input does (:func:`host_input`).
    """
    dtype = _native_order(x.dtype)
    ml_kind = ml_dtypes_kind(dtype)  # arrays of ml_dtypes' types (NumPy's, Dask's)
    if ml_kind == "floating":  # all narrower than 32 bits
        return xp.float32, dtype
    try:
        bits = xp.finfo(dtype).bits if xp.isdtype(dtype, "real floating") else 0
        integral = not bits and xp.isdtype(dtype, ("bool", "integral"))
        integral = integral and not _is_time_delta(dtype)
        complex_input = xp.isdtype(dtype, "complex floating")
    except (TypeError, ValueError):  # a dtype the namespace does not know
        bits, integral, complex_input = 0, False, False
    # One that it does not know, as False (Dask's isdtype), or as an error
    integral = integral or ml_kind == "integral"
    if bits > 64:  # NumPy's longdouble where it is wider than float64
        msg = (
            f"x has dtype {dtype}, wider than float64, which s2nn_xp does not "
            "compute in (its guards assume float64's range); convert x to float64"
        )
        raise TypeError(msg)
    if bits:
        return (xp.float32 if _backends.computes_in_float32(bits) else dtype), dtype
    if integral:
        info = xp.__array_namespace_info__()
        default = info.default_dtypes(device=_compat.device(x))["real floating"]
        return default, default
    if complex_input:
        msg = f"x must be real; complex input (dtype {dtype}) is not supported"
    else:
        msg = f"x must have a real numeric dtype, not {dtype}"
    raise TypeError(msg)


def as_input(x: Any, xp: ModuleType | None = None) -> Any:
    """``x`` as an array: arrays unchanged, numbers and lists as NumPy (or ``xp``).

    A wrapper of a JAX array (:func:`s2nn_xp._compat.stood_for`) is the JAX
    array it wraps, even where it also says it is an array of a library
    (flax's ``nnx.Variable`` passes on its value's ``__array_namespace__``).
    """
    unwrapped = _compat.stood_for(x)
    if unwrapped is not x:
        return unwrapped
    if xp is not None and _numpy_number(x):
        return _host_array("x", x, xp.asarray)
    if _compat.is_array_api_obj(x):
        if not _has_array_attributes(x):
            raise _not_an_array("x", x)
        if _is_numpy(x):  # a subclass of ndarray: astropy's Quantity, say
            check_plain_values("x", x)
        return x
    if x is None or isinstance(x, (*_TEXT, dict, set)):
        raise wrong_type("x", x)
    if _compat.is_numpy_array(x):
        # np.matrix, which array-api-compat counts as no array (deprecated):
        # NumPy's array all the same, so x of NumPy, which a given xp of
        # another library does not match (as host data it went to xp's
        # library, silently); a plain ndarray (a matrix's * multiplies
        # matrices).
        if xp is not None:
            check_namespace(xp, x)  # naming the matrix, not the array it becomes
        return _host_array("x", x)
    return _host_array("x", _python_number("x", x), None if xp is None else xp.asarray)


def wrong_type(name: str, value: Any) -> TypeError:
    """The error for a value of ``name`` that is no array, number or list."""
    return TypeError(f"{name} must be {_accepted(name)}, not {describe(value)}")


def _accepted(name: str) -> str:
    """What ``name`` takes, in the words of its errors (``x`` is the array)."""
    return "an array or a real number" if name == "x" else "a real number or an array"


def _has_array_attributes(value: Any) -> bool:
    """Whether an object with ``__array_namespace__`` has what every array has."""
    return hasattr(value, "dtype") and hasattr(value, "shape")


def _not_an_array(name: str, value: Any) -> TypeError:
    """The error for an object that names a namespace but is no array."""
    msg = (
        f"{name} must be {_accepted(name)}, not {describe(value)}, which has "
        "__array_namespace__ but no dtype or shape"
    )
    return TypeError(msg)


def _python_number(name: str, value: Any, *, element: bool = False) -> Any:
    """A Python number as NumPy reads it as a real number; anything else as is.

    NumPy makes an object array of an int beyond int64 and of other
    ``numbers.Real`` types (``Fraction``), which parameters accept as
    numbers: those become floats. ValueError beyond float64's range (the
    digits are not printed: there may be hundreds), saying that `name`
    holds it where it is an `element` of a list.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) or _compat.is_array_api_obj(value):
        return value  # NumPy scalars keep their dtype
    try:
        number = float(value)
    except OverflowError:
        raise _beyond_float64(name, value, element=element) from None
    if name in BOUNDS:  # a parameter's list: as for the number alone
        _check_not_vanished(name, value, number, element=element)
    return number


def _beyond_float64(name: str, value: Any, *, element: bool = False) -> ValueError:
    """The error for a Python number (an int) beyond float64's range.

    Its digits counted, not printed (there may be thousands); by its
    logarithm beyond the digits Python turns into text
    (``sys.get_int_max_str_digits``), where ``str`` raises.
    """
    whole = abs(int(value))
    try:
        digits = len(str(whole))
    except ValueError:
        # log10 rounds 10**k - 1 up to k: the estimate mended by comparison
        digits = math.floor(math.log10(whole)) + 1
        if whole < 10 ** (digits - 1):
            digits -= 1
    what = "holds" if element else "is"
    return ValueError(
        f"{name} {what} a number of {digits} digits, beyond the range of float64"
    )


def _host_array(
    name: str, values: Any, asarray: Callable[[Any], Any] | None = None
) -> Any:
    """``numpy.asarray(values)`` (or ``asarray``'s); errors name `name`.

    ValueError for ragged lists, TypeError for data the library refuses
    (strings, for array-api-strict), whichever library reads them.

    A sequence holding masked arrays (or ``np.ma.masked``) is refused:
    ``asarray`` would keep the data under their masks as values, silently;
    so is one holding another library's arrays. Python numbers NumPy keeps
    as objects (ints beyond int64, ``Fraction``) become floats, in a list as
    on their own.
    """
    import numpy as np

    check_plain_values(name, values)
    held, holds_bool = (
        _list_contents(name, values, np) if _is_sequence(values) else (None, False)
    )
    if held is not None and isinstance(held, np.ma.MaskedArray):
        # a parameter takes no mask at all (a value for every neuron)
        instead = (
            "filled values"
            if name in BOUNDS
            else ("one masked array (numpy.ma.stack) or filled values")
        )
        msg = (
            f"{name} is a list holding masked arrays, whose masks a list does "
            f"not keep; give {instead}"
        )
        raise TypeError(msg)
    if held is not None:
        library = _library(_compat.array_namespace(held)).partition(".")[0]
        msg = (
            f"{name} is a list holding {library} arrays, which a list would pass "
            "as plain numbers (no gradient, no device); give one array of x's "
            "library (stack them) or numbers"
        )
        raise TypeError(msg)
    if name != "x" and holds_bool:
        # NumPy reads [True, 2.0] as [1.0, 2.0]: a bool in a parameter's or a
        # cotangent's list is the mistake a bool one is, not a 1 (x's bools
        # are spikes, which become floats)
        msg = f"{name} is a list holding a bool; give real numbers"
        raise TypeError(msg)
    if _is_sequence(values):
        host = _read(name, np.asarray, values)
        if host.dtype == object:  # Python ints beyond int64, Fractions
            host = _real_numbers(name, host, np)
            if host.dtype == object:
                _refuse_odd_items(name, host)
            else:
                values = host
        elif host.dtype == np.uint64 and _holds_int_beyond_int64(values):
            # NumPy reads ints up to 2**64 - 1 as uint64, and larger ones as
            # objects: a float first, as on their own and beyond uint64
            host = values = host.astype(np.float64)
    elif asarray is None or not (
        isinstance(values, numbers.Real)
        # CUDA memory NumPy can copy (a Numba device array): for xp's asarray
        # to take as it is (CuPy's, without a copy through the host)
        or (_reads_as_array(values) and hasattr(values, "__cuda_array_interface__"))
    ):
        host = _read(name, np.asarray, values)
        if host.dtype == object and not _reads_as_array(values):
            # NumPy keeps an object it cannot read as itself (one with
            # __dlpack__ alone), or reads one with a length as a sequence of
            # objects (a JAX sparse array): no array, not one of objects. (An
            # object array by a protocol is refused by its dtype, later.)
            raise wrong_type(name, values)
        if asarray is not None:
            # Read once, by NumPy: the standard's asarray need not take an
            # object by NumPy's protocols (pydata/sparse's refuses them).
            values = host
    if asarray is None:
        return host
    return _read(name, asarray, values)


def check_plain_values(name: str, value: Any) -> None:
    """TypeError for host data that means more than its values.

    Labelled data (xarray's named dimensions, pandas' index) read as an
    array would lose its labels and broadcast against the other arguments
    by position, not by label (a per-``time`` ``alpha`` put along the
    neurons, a cotangent paired with the wrong neuron), and a Dask-backed
    one would be computed where Dask holds it; a quantity with units
    (astropy's, pint's, unyt's) would lose them (a percent read as its
    number: 100 times the value meant, silently, where NumPy's own ``exp``
    converts it, and a voltage where ``exp`` raises). brainunit's reads
    itself in no unit, refusing one with a unit in its own words.
    """
    kind = type(value)
    if kind in _PLAIN_TYPES or kind.__module__ == "numpy" or not _reads_as_array(value):
        return
    dims = getattr(value, "dims", None)
    if isinstance(dims, tuple):  # xarray's: its attributes are its coordinates
        if dims:
            msg = (
                f"{name} has named dimensions {dims} ({describe(value)}), which "
                "s2nn_xp would broadcast by position, dropping its coordinates; "
                "apply the function with xarray.apply_ufunc (dask='parallelized' "
                "for Dask-backed data), or give its .data"
            )
            raise TypeError(msg)
        return  # 0-d: a number, whatever its coordinates and attributes
    index = getattr(value, "index", None)  # not a sequence's method index
    if index is not None and not callable(index) and hasattr(value, "loc"):
        msg = (
            f"{name} is labelled data ({describe(value)}), whose index "
            "s2nn_xp would drop, pairing its values with the other arguments "
            "by position; align it first and give its values (.to_numpy())"
        )
        raise TypeError(msg)
    units = _unit_of(value)
    if units is not None:
        msg = (
            f"{name} is a quantity ({describe(value)}, in {units}), whose units "
            "s2nn_xp would drop; give its values in the unit meant "
            "(astropy: .to_value(unit), pint: .m_as(unit), unyt: .to_value(unit))"
        )
        raise TypeError(msg)


def _unit_of(value: Any) -> str | None:
    """The unit a quantity's values are in, as text; None for no quantity.

    astropy's ``unit``, pint's and unyt's ``units``; not a time resolution
    (pandas' ``unit``, a string), a record array's field, or a unit that
    changes no value (dimensionless and unscaled: nothing is lost), nor
    brainunit's quantities, which read themselves in no unit (refusing one
    with a unit, in their own words).
    """
    units = getattr(value, "unit", None)
    if units is None:
        units = getattr(value, "units", None)
    if (
        units is None
        or callable(units)  # a method of that name
        or isinstance(units, str)
        or hasattr(units, "shape")  # an array: a record array's field
        or _compat.is_brainunit_quantity(value)
    ):
        return None
    text = str(units)
    return None if text in _NO_UNIT else text


# How astropy (""), pint and unyt write a dimensionless, unscaled unit.
_NO_UNIT = frozenset({"", "dimensionless"})


# Types whose values are all they mean (a call's common host data): no
# attribute of theirs need be read.
_PLAIN_TYPES: frozenset[type] = frozenset({list, tuple, int, float})


def _refuse_odd_items(name: str, host: Any) -> None:
    """TypeError naming an item of a list that is no number (None, an object).

    Where every item is a number of some kind (bools beside Fractions, 0-d
    object arrays), the dtype check refuses the object array instead.
    """
    import numpy as np

    for item in host.reshape(-1).tolist():
        if not isinstance(item, (numbers.Number, np.ndarray, np.generic)):
            held = "None" if item is None else describe(item)
            msg = f"{name} is a list holding {held}; give real numbers"
            raise TypeError(msg)


def _read(name: str, asarray: Callable[[Any], Any], values: Any) -> Any:
    """``asarray(values)``; its errors named as :func:`_host_array` says."""
    try:
        return asarray(values)
    except (ValueError, TypeError, NotImplementedError) as exc:
        if isinstance(exc, ValueError) and _is_sequence(values):
            # ragged nested lists: a shape, not a kind
            msg = f"{name} is no rectangular array of numbers: {exc}"
            raise ValueError(msg) from exc
        # Odd objects (Dask: their dtype), and an array-like object that a
        # library reads no numbers from, whatever it raises (ndonnx's
        # asarray of object data: ValueError): of a kind, as others say.
        msg = f"{name} is no array of real numbers: {exc}"
        raise TypeError(msg) from exc


def _is_sequence(values: Any) -> bool:
    """A list, tuple or other sequence of host values (not text, not an array)."""
    return isinstance(values, Sequence) and not isinstance(values, _TEXT)


# Sequences that are text or bytes: no numbers. A bytearray would be read
# as uint8 data; a memoryview by its format, which a bytes object's says
# bytes too: refused with them, as no list of numbers.
_TEXT = (str, bytes, bytearray, memoryview)


def _holds_int_beyond_int64(values: Sequence[Any]) -> bool:
    """Whether a (nested) sequence holds a Python int beyond int64."""
    return any(
        _holds_int_beyond_int64(item)
        if _is_sequence(item)
        else isinstance(item, int) and item > _INT64_LARGEST
        for item in values
    )


def _real_numbers(name: str, array: Any, np: ModuleType) -> Any:
    """An object array of Python real numbers as float64; others unchanged.

    Bools too in ``x`` (0 and 1, as NumPy reads them in a list of numbers
    it can type); a parameter's or a cotangent's list refuses them.
    """
    flat = array.reshape(-1).tolist()
    takes_bools = name == "x"
    if not flat or not all(
        _is_real_value(v) or (takes_bools and isinstance(v, (bool, np.bool_)))
        for v in flat
    ):
        return array  # refused by the caller, naming what it holds
    floats = [_python_number(name, v, element=True) for v in flat]
    return np.asarray(floats, dtype=np.float64).reshape(array.shape)


def _is_real_value(value: Any) -> bool:
    """Whether a list's element is a real number (not a bool, time or text)."""
    import numpy as np

    # NumPy calls timedelta64 Integral: a count of its units, no number
    return isinstance(value, numbers.Real) and not isinstance(
        value, (bool, np.timedelta64, np.datetime64)
    )


def _list_contents(
    name: str,
    values: Sequence[Any],
    np: ModuleType,
    depth: int = 1,
    seen: dict[int, Any] | None = None,
) -> tuple[Any, bool]:
    """What a (nested) sequence holds that NumPy would read wrongly, in one walk.

    ``(array, holds_bool)``: the first array in it that a list cannot hold,
    or None: a NumPy masked array (the list keeps no mask), or an array of
    another library than NumPy (a tensor that requires grad, a JAX tracer:
    the list would read it as numbers, or fail inside that library); and
    whether it holds a bool (Python's, NumPy's, an array of them or an
    object NumPy reads as one), which NumPy reads as 0 or 1. The walk stops
    at the first such array: it is reported before any bool. Lists nested
    deeper than an array's dimensions can go are not walked further, nor a
    list met before (``seen``, by id, holding each list so that no id is
    reused: a sequence may make its rows as they are read): NumPy refuses
    the first, and a list that holds itself (twice, the walk would take
    2**64 steps); the second holds what was found already.
    """
    seen = {} if seen is None else seen
    seen[id(values)] = values
    holds_bool = False
    for value in values:
        kind = type(value)
        if kind is float or kind is int:  # most elements: a fast check
            continue
        if kind is bool:
            holds_bool = True
        elif isinstance(value, np.generic):
            holds_bool = holds_bool or value.dtype == np.bool_
        elif _is_sequence(value):
            if depth == _MOST_DIMENSIONS or id(value) in seen:
                continue
            held, inner_bool = _list_contents(name, value, np, depth + 1, seen)
            if held is not None:
                return held, holds_bool
            holds_bool = holds_bool or inner_bool
        elif (unwrapped := _compat.stood_for(value, name, held=True)) is not value:
            # a wrapper of a JAX array (brainpy's Array) in a list: the list
            # would read its values as numbers, as it would the array's
            return unwrapped, holds_bool
        elif isinstance(value, np.ma.MaskedArray) or (
            _compat.is_array_api_obj(value) and not _compat.is_numpy_array(value)
        ):
            return value, holds_bool
        elif isinstance(value, np.ndarray):
            check_plain_values(name, value)  # a subclass: astropy's Quantity
            holds_bool = holds_bool or value.dtype == np.bool_
        elif hasattr(type(value), "__array__"):
            check_plain_values(name, value)  # an xarray DataArray, a pandas Series
            try:
                holds_bool = holds_bool or np.asarray(value).dtype == np.bool_
            except Exception:  # the list's own read (NumPy's) names it
                continue
    return None, holds_bool


# The most dimensions a NumPy array has (NumPy 2; NumPy 1 has 32).
_MOST_DIMENSIONS = 64


def _library(xp: ModuleType) -> str:
    """The library a namespace belongs to (array-api-compat's wrappers included)."""
    name = getattr(xp, "__name__", "")
    return name.removeprefix("array_api_compat.")


def _numpy_number(value: Any) -> bool:
    """Whether ``value`` is a NumPy scalar (ml_dtypes' too: ``bfloat16(0.5)``).

    Such a scalar is the value it holds (``numpy.float64`` is a ``float``;
    indexing a NumPy array gives one), so given with ``xp`` it is host data,
    input of ``xp``'s library (and refused there by the rules of host data,
    a complex one as complex), as a Python number or a list of them is.
    """
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, np.generic)


def is_host_data(x: Any) -> bool:
    """Whether ``x`` is host data, which goes to a given ``xp``'s library.

    Numbers, lists and NumPy's scalars of numbers are; arrays (NumPy's
    too) are of their own library, which a given ``xp`` must match.
    """
    return _numpy_number(x) or not (
        _compat.is_numpy_array(x) or _compat.is_array_api_obj(x)
    )


def check_namespace(xp: Any, x: Any) -> ModuleType:
    """``xp`` checked to be a namespace module of ``x``'s library.

    Host data (numbers, lists) fits any namespace: it goes to ``xp``'s library.
    """
    if not isinstance(xp, ModuleType) or not hasattr(xp, "asarray"):
        msg = (
            "xp must be an array-API namespace module (numpy, jax.numpy, torch, "
            f"...), not {describe(xp)}"
        )
        raise TypeError(msg)
    if is_host_data(x):  # np.matrix is not, though no array-API object
        return xp
    _compat.stood_for(x)  # a JAX reference, which has no namespace, is refused
    own = "numpy" if _compat.is_numpy_array(x) else _library(_compat.array_namespace(x))
    if own != _library(xp):
        # The namespace's name as well as the type's: marray's array types
        # are local classes (masked_namespace.<locals>.MArray), whichever
        # library is under them.
        msg = (
            f"xp={_library(xp)} does not match the library of x, {own} "
            f"(x is of type {describe(x)}); leave xp out to compute in {own}, or "
            f"convert x to {_library(xp)} first"
        )
        raise TypeError(msg)
    return xp


def host_input(x: Any, library: str, *, promote_integers: bool = False) -> Any:
    """``x`` for an adapter: arrays unchanged, host data as checked NumPy.

    Numbers, lists and NumPy arrays become a NumPy array in native byte
    order, checked by the *Definition*'s dtype rules here (the adapter's
    library would refuse some dtypes in its own words, or take them
    wrongly); with ``promote_integers``, integers and bools become NumPy's
    default float first (JAX without x64 would wrap int64 into int32,
    -2**40 + 1 becoming 1). ``library`` names the adapter's, for errors.
    """
    x = as_input(x)
    if _compat.is_array_api_obj(x) and not _compat.is_numpy_array(x):
        own = _library(_compat.array_namespace(x)).partition(".")[0]
        if own != library.partition(".")[0]:
            # read as host data it would leave its library silently (its
            # gradient, device, laziness), or fail there in its own words
            raise _foreign_input(x, library)
    if _compat.is_numpy_array(x):
        if isinstance(x, sys.modules["numpy"].ma.MaskedArray):
            raise masked_host_data("x", library)
        x = _native_byte_order(x)
        result_dtype = input_dtypes(_compat.array_namespace(x), x)[1]
        if promote_integers and x.dtype != result_dtype:
            x = x.astype(result_dtype)
    return x


def _native_order(dtype: Any) -> Any:
    """``dtype`` in native byte order (by NumPy's ``isnative``; others as given)."""
    if getattr(dtype, "isnative", True) is False:
        return dtype.newbyteorder("=")
    return dtype


def _native_byte_order(x: Any) -> Any:
    """NumPy arrays of a non-native byte order, converted (ufuncs reject them)."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(x, numpy.ndarray):
        return x
    native = _native_order(x.dtype)
    return x if native is x.dtype else x.astype(native)


def _check_not_flushed(
    name: str, value: Any, narrow: bool, dtype: Any, library: str
) -> None:
    """Raise ValueError where ``value`` is subnormal in ``dtype`` (not 0).

    Judged after rounding to ``dtype`` (float32 where ``narrow``): a value
    just below the smallest normal number may round to it.
    """
    smallest_normal = 2.0**-126 if narrow else 2.0**-1022
    if isinstance(value, float) and (value == 0 or abs(value) >= smallest_normal):
        return  # the common case, without NumPy (a call's cost)
    import numpy as np

    with np.errstate(all="ignore"):
        rounded = np.abs(
            np.asarray(value, dtype=np.float64).astype(
                np.float32 if narrow else np.float64
            )
        )
    if not bool(np.any((rounded > 0) & (rounded < smallest_normal))):
        return
    what = (
        f"{name}={value!r} is"
        if isinstance(value, float)
        else (f"{name} has values that are")
    )
    msg = (
        f"{what} subnormal in {_dtype_name(dtype)}, which {library} computes "
        f"as 0 (it flushes subnormal numbers to zero); give at least "
        f"{smallest_normal!r}"
    )
    raise ValueError(msg)


def refuse_other_library(xp: ModuleType, name: str, value: Any, x: Any) -> None:
    """Raise TypeError where ``value`` is an array of a library not ``xp``'s.

    Before its values are read, so that the type of the error does not
    depend on them; NumPy arrays are host data, which every library takes.
    """
    # An array of x's own type first (no lookup, at every call); then
    # _may_be_array: a str needs no lookup (torch.compile cannot trace
    # array-api-compat's cached checks); an object with a namespace but no
    # dtype or shape is no array, which validate_parameter says.
    if type(value) is type(x) or _is_numpy(value) or not _may_be_array(value):
        return
    # A wrapper of a JAX array is that array (stood_for refuses one of
    # anything else, naming it, where its namespace would say NumPy's).
    value = _compat.stood_for(value, name)
    if not (_compat.is_array_api_obj(value) and _has_array_attributes(value)):
        return
    if _library(_compat.array_namespace(value)) != _library(xp):
        raise mixed_libraries(x, name, value)


def check_parameter(
    xp: ModuleType,
    name: str,
    value: Any,
    x: Any,
    compute_dtype: Any,
    largest: float,
    *,
    flushed_by: str | None = None,
) -> Any:
    """A validated parameter: a checked float, or an array of ``x``'s library.

    ``value`` as given: an array of a third library is refused
    (:func:`refuse_other_library`), then the value is validated
    (:func:`validate_parameter`). Host values (NumPy) are checked against the
    compute dtype and moved to ``x``'s library and device in that dtype;
    arrays of ``x``'s library are checked for dtype and shape (and returned
    in their own dtype: casting may be left to compiled code). ``flushed_by``
    as for :func:`check_representable`.
    """
    if type(value) is float:  # the common case, once for each number and dtype
        return checked_number(
            name, value, compute_dtype, largest, flushed_by=flushed_by
        )
    given = value
    if not isinstance(value, float):
        refuse_other_library(xp, name, value, x)
    value = validate_parameter(name, value, tuple(x.shape))
    if isinstance(value, float):
        return check_representable(
            name, value, compute_dtype, largest, flushed_by=flushed_by
        )
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.ndarray):
        check_representable(name, value, compute_dtype, largest, flushed_by=flushed_by)
        # A value that rounds to 0 or inf in the compute dtype was judged
        # above, as numbers are: the cast itself is quiet.
        if _compat.is_numpy_namespace(xp):
            with numpy.errstate(over="ignore", under="ignore"):
                return value.astype(compute_dtype, copy=False)
        return _from_host(xp, name, value, compute_dtype, x)
    if value is not given:  # the array a wrapper stood for
        refuse_other_library(xp, name, value, x)
    check_real_dtype(name, xp, value.dtype)
    check_broadcast(name, value.shape, x.shape)
    check_device(name, value, x)
    view = _host_view(name, value)
    if view is not None:
        check_representable(name, view, compute_dtype, largest, flushed_by=flushed_by)
    return _in_chunks_of_x(name, value, x)


def _float_input(xp: ModuleType, x: Any) -> tuple[Any, Any, float]:
    """:func:`input_dtypes` of ``x`` and the compute dtype's largest value.

    Kept for floating ``x`` (its result dtype its own), whose answer its
    dtype alone decides: asked at every call, where a call's cost counts.
    """
    dtype = x.dtype
    try:
        known = _FLOAT_INPUTS.get((xp, dtype))
    except TypeError:  # a dtype that cannot be hashed
        known, dtype = None, None
    if known is not None:
        return known
    compute_dtype, result_dtype = input_dtypes(xp, x)
    known = (compute_dtype, result_dtype, float(xp.finfo(compute_dtype).max))
    # x's own dtype object as the result (compared by identity: a library's
    # dtype may warn when compared with another's)
    if dtype is not None and result_dtype is dtype and len(_FLOAT_INPUTS) < 64:
        _FLOAT_INPUTS[(xp, dtype)] = known
    return known


# (namespace, floating dtype) -> (compute dtype, result dtype, largest)
_FLOAT_INPUTS: dict[tuple[ModuleType, Any], tuple[Any, Any, float]] = {}


def check_arguments(
    xp: ModuleType, x: Any, params: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    """(compute dtype, result dtype, checked parameters) for an array ``x`` of ``xp``.

    Nothing of ``x``'s size is computed: adapters that compile call this
    before their compiled function, which casts.
    """
    compute_dtype, result_dtype, largest = _float_input(xp, x)
    backend = _backends.of_array(x)
    limit = None if backend is None else backend.max_dimensions
    if backend is not None and limit is not None and x.ndim > limit:
        msg = (
            f"x has {x.ndim} dimensions, and {backend.name} computes with at "
            f"most {limit}; reshape x to fewer (the spike acts value by value)"
        )
        raise ValueError(msg)
    flushed_by = backend.name if backend and backend.flushes(x, compute_dtype) else None
    checked = {
        name: check_parameter(
            xp,
            name,
            value,
            x,
            compute_dtype,
            largest,
            flushed_by=flushed_by,
        )
        for name, value in params.items()
    }
    return compute_dtype, result_dtype, checked


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
    x = as_input(x, xp)
    if xp is not None:
        # Checked, then replaced by array-api-compat's namespace of x: the
        # plain module (numpy before 2.0, dask.array) lacks functions the
        # math calls.
        check_namespace(xp, x)
        xp = None
    settings = _mask_settings(x)
    x, mask = unmasked(_native_byte_order(x))
    if xp is None:
        xp = _compat.array_namespace(x)
        check_standard_version(xp)
    compute_dtype, result_dtype, params = check_arguments(xp, x, params)
    if x.dtype != compute_dtype:
        x = xp.astype(x, compute_dtype)
    # Quietly, as a NumPy parameter is cast in check_parameter: a float64
    # array of x's own library (array-api-strict, marray: NumPy underneath)
    # with a value beyond a float32 x's range rounds to 0 or inf there, as
    # the Definition says, and raised under np.errstate(all="raise").
    # A Dask array's cast is a task of its own, quiet too (astype_quietly).
    for name, value in params.items():
        if not isinstance(value, float):
            params[name] = _compat.astype_quietly(xp, value, compute_dtype)
    return Prepared(
        xp=xp,
        x=x,
        dtype=result_dtype,
        params=params,
        mask=mask,
        mask_settings=settings,
    )


# The array API standard the math needs: clip (2023.12) and the namespace's
# __array_namespace_info__ (default dtypes, 2023.12).
MINIMUM_STANDARD = "2023.12"


def check_standard_version(xp: ModuleType, name: str = "x") -> None:
    """Raise TypeError where ``xp`` implements an older array API standard.

    Versions are ``YYYY.MM`` strings, ordered as strings; a namespace that
    states none is taken at its word (array-api-compat's state theirs).
    ``name`` is the argument's.
    """
    version = getattr(xp, "__array_api_version__", None)
    if isinstance(version, str) and version < MINIMUM_STANDARD:
        msg = (
            f"{name} is an array of {_library(xp)}, whose namespace implements the "
            f"array API standard {version}; s2nn_xp needs {MINIMUM_STANDARD} "
            "or later (clip, __array_namespace_info__)"
        )
        raise TypeError(msg)


def host_floats(name: str, values: Any) -> Any:
    """Host data (a number, list or NumPy array) as a NumPy float array.

    For a cotangent or parameter on its way to another library: checked for
    a real dtype; integers, bools and floats wider than float64 become
    float64 here, in NumPy (JAX without x64 would wrap int64 values into
    int32, -2**40 + 1 becoming 1, and has no longdouble); ml_dtypes' floats
    become float32, which holds each of their values (PyTorch cannot read
    them).
    """
    import numpy as np

    array = _host_array(name, _python_number(name, values))
    check_real_dtype(name, _compat.array_namespace(array), array.dtype)
    kind = ml_dtypes_kind(array.dtype)
    if kind == "floating":
        return array.astype(np.float32)
    if kind is None and array.dtype.kind == "f" and array.dtype.itemsize <= 8:
        return array
    return array.astype(np.float64)


def cotangent_of_a_kind(cotangent: Any) -> Any:
    """``cotangent`` (the array a wrapper stands for) if a cotangent may be one.

    A number, host data (sequences, NumPy's arrays and scalars, what NumPy
    reads) or an array; TypeError naming the cotangent otherwise. Which
    library's array, and its values, the caller judges.
    """
    cotangent = _compat.stood_for(cotangent, "cotangent")  # first, as for x
    if _compat.is_array_api_obj(cotangent) and not _has_array_attributes(cotangent):
        raise _not_an_array("cotangent", cotangent)
    if _is_bool(cotangent) or not (
        isinstance(cotangent, numbers.Real)
        or _is_sequence(cotangent)
        or _compat.is_array_api_obj(cotangent)
        or _is_numpy(cotangent)  # subclasses too (np.matrix), as for x
        or _reads_as_array(cotangent)
    ):
        raise wrong_type("cotangent", cotangent)
    return cotangent


def prepare_cotangent(p: Prepared, cotangent: Any) -> Any:
    """The cotangent of a pullback in the compute dtype, checked against ``x``."""
    xp = p.xp
    cotangent = cotangent_of_a_kind(cotangent)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(cotangent, numpy.ma.MaskedArray):
        if not _compat.is_numpy_namespace(xp):
            raise masked_host_data("cotangent", _library(xp))
        # Its mask goes to the result (with_cotangent_mask), its data here.
        cotangent = numpy.ma.getdata(cotangent)
    if (
        numpy is not None
        and _is_numpy(cotangent)
        and type(cotangent) is not numpy.ndarray
    ):
        # A subclass's (or scalar's) own arithmetic is not the math's (an
        # __array_ufunc__ of its own, np.matrix's product): its values.
        check_plain_values("cotangent", cotangent)
        cotangent = numpy.asarray(cotangent)
    host = not _compat.is_array_api_obj(cotangent)  # a number or a list
    if not host and _library(_compat.array_namespace(cotangent)) != _library(xp):
        if not _is_numpy(cotangent):  # NumPy arrays and scalars are host data
            raise mixed_libraries(p.x, "cotangent", cotangent)
        host = True
    # In the dtype x is computed in (float32 for 16-bit x, whether or not an
    # adapter's p.x is cast already), so that the product is rounded once;
    # host data goes there directly (a device may lack float64).
    compute_dtype = input_dtypes(xp, p.x)[0]
    if host:
        cotangent = _from_host(xp, "cotangent", cotangent, compute_dtype, p.x)
    else:
        check_device("cotangent", cotangent, p.x)
    check_real_dtype("cotangent", xp, cotangent.dtype)
    check_cotangent_shape(tuple(cotangent.shape), tuple(p.x.shape))
    cotangent = _in_chunks_of_x("cotangent", cotangent, p.x)
    # A cotangent beyond the compute dtype's range rounds to 0 or inf there,
    # quietly (np.errstate(all="raise") raised), as x does; then inf times a
    # gradient of 0 is NaN (the Definition says so).
    return _compat.astype_quietly(xp, cotangent, compute_dtype)


def unmasked(x: Any) -> tuple[Any, Any]:
    """``(data, mask)`` of a NumPy masked array (mask an array), else ``(x, None)``."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(x, numpy.ma.MaskedArray):
        return x, None
    return numpy.ma.getdata(x), numpy.ma.getmaskarray(x)


def _mask_settings(x: Any) -> tuple[Any, bool] | None:
    """A NumPy masked array's fill value (None: the default) and ``hard_mask``."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(x, numpy.ma.MaskedArray):
        return None
    # _fill_value: None until one is set (fill_value would make NumPy's own)
    return x._fill_value, bool(x.hardmask)


def with_cotangent_mask(p: Prepared, cotangent: Any) -> Prepared:
    """``p``, whose results are also masked where a masked cotangent is.

    A masked element of the cotangent has no value: the gradient there has
    none either (NumPy masked arrays; marray's masks come through its own
    arithmetic). A masked cotangent gives a masked result even where it
    masks no element, as a masked ``x`` does and NumPy's arithmetic does:
    the result's type does not depend on the mask's values.
    """
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(cotangent, numpy.ma.MaskedArray):
        return p
    mask = numpy.broadcast_to(numpy.ma.getmaskarray(cotangent), tuple(p.x.shape))
    if p.mask is not None:
        mask = mask | p.mask
    return replace(p, mask=mask)


def _from_host(xp: ModuleType, name: str, values: Any, dtype: Any, x: Any) -> Any:
    """Host data (:func:`host_floats`) as an array of ``x``'s library in `dtype`.

    Cast by NumPy whatever the library (JAX's ``asarray`` too), quietly: a
    value beyond `dtype`'s range rounds to 0 or inf there, as the math
    rounds, not a warning or, under ``np.errstate(all="raise")``, an error.
    """
    import numpy as np

    with np.errstate(over="ignore", under="ignore"):
        host = _compat.readable_host_array(host_floats(name, values))
        host = _compat.private_host_array(host, values)
        return _compat.array_for(xp, host, dtype, x)


def finish(result: Any, prepared: Prepared) -> Any:
    """Round ``result`` once, from the compute dtype to the result dtype.

    NumPy turns 0-d results of its ufuncs into scalars; they become 0-d
    arrays again, as the array API returns. A masked input's mask comes back.
    """
    if result.dtype != prepared.dtype:
        result = prepared.xp.astype(result, prepared.dtype)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(result, numpy.generic):
        result = numpy.asarray(result)
    if prepared.mask is not None:
        # A copy of the mask: MaskedArray would share it, and a change to the
        # result's mask would change x's (or another result's).
        result = masked_result(result, prepared.mask.copy(), prepared.mask_settings)
    return result


def masked_result(
    result: Any, mask: Any, settings: tuple[Any, bool] | None = None
) -> Any:
    """NumPy ``result`` as a masked array of ``mask`` (taken as is; or nomask).

    With ``x``'s fill value and ``hard_mask`` (`settings`, from
    :func:`_mask_settings`), as NumPy's ufuncs keep them.
    """
    import numpy as np

    fill_value, hard_mask = settings or (None, False)
    result = np.ma.MaskedArray(result, mask=mask, hard_mask=hard_mask)
    # Its fill value set now, quietly: NumPy's default for floats, 1e20,
    # overflows a float16 result when first read (a warning; under
    # np.errstate(all="raise") an error where Dask joins chunks). ml_dtypes'
    # floats get 1e20 as they round it (bfloat16 9.97e19; the largest value
    # of those without infinity, or NaN), where NumPy's default for them,
    # b"???", cannot be cast to them when Dask joins chunks. Like float16's
    # inf, such a fill value may equal a result's value: the mask says which.
    with np.errstate(over="ignore", invalid="ignore"):
        if fill_value is None:
            fill_value = np.ma.default_fill_value(np.float64(0.0))
        result.fill_value = fill_value
    return result
