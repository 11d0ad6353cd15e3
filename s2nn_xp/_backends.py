"""The backend registry: one typed record per array library.

A :class:`Backend` says everything the package and its tests need to know
about one array library: the module users take arrays from and how it
loads, how its arrays and namespace are recognised, how NumPy data goes in
and out, which devices it finds, which public functions its adapter
implements, and its capabilities (autodiff transforms, dtypes, fused
kernels, compilation). :data:`BACKENDS` is the only list of backends: the
dispatcher (:mod:`s2nn_xp._dispatch`), ``s2nn-xp info`` and ``bench``, the
docs' backend table and the test fixtures all read it.

Nothing here imports a framework: a record's functions import their
library when they are called.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import re
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

import numpy as np

from . import _compat

__all__ = [
    "BACKENDS",
    "Backend",
    "Capability",
    "available",
    "check_framework_version",
    "framework_import_error",
    "get",
    "jax_round_trip",
    "not_installed",
    "older_than_supported",
    "torch_round_trip",
]


class Capability(enum.Enum):
    """What a backend can do; the tests skip by these, never by backend name.

    Each member is derived from a :class:`Backend`'s fields (see
    :attr:`Backend.capabilities`), and the test suite turns each into a
    marker, ``requires_<value>``.
    """

    AUTODIFF = "autodiff"
    """:func:`s2nn_xp.s2nn` carries the surrogate derivatives into the
    library's own autodiff."""
    JIT = "jit"
    """The library compiles functions (``jax.jit``, ``torch.compile``) and the
    S2NN functions compile with it."""
    FLOAT16 = "float16"
    """float16 arrays (computed in float32, rounded once)."""
    BFLOAT16 = "bfloat16"
    """bfloat16 arrays (computed in float32, rounded once)."""
    HOST_VALUES = "host_values"
    """Array values sit in host memory and are never traced: parameter
    arrays have their values checked like numbers."""
    MUTABLE_ARRAYS = "mutable_arrays"
    """Arrays can be changed in place (item assignment), after a call."""


# The transforms that compile a function, as the backends name them.
_COMPILING_TRANSFORMS = frozenset({"jit", "compile"})


# A record's name or device kind; an array module (a top-level module).
_LOWER_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _cpu_only() -> list[str]:
    return ["cpu"]


def _nothing_to_enable() -> None:
    pass


def _no_debug_checks() -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


def _namespace_asarray(xp: Any, values: np.ndarray) -> Any:
    return xp.asarray(values)


def _numpy_copy(array: Any) -> np.ndarray:
    """``np.asarray(array)``, refused where NumPy cannot read the array.

    NumPy fails in two ways on an array type it cannot read: it raises (a
    library that refuses to be made dense implicitly, as pydata/sparse), or,
    for an object with no ``__array__`` and no buffer, it makes an object
    array holding it, silently. Either way a record of such a library needs
    a ``to_numpy`` of its own, and the error says so.
    """
    try:
        copy = np.asarray(array)
    except Exception as exc:
        # Or computing a lazy array failed (a contributor adding cubed was
        # sent to its record's to_numpy by a failure of cubed's own clip).
        msg = _unreadable(array, "could not", f"it raised {exc!r}")
        raise TypeError(
            f"{msg}; if the array is lazy, that is the error of computing it"
        ) from exc
    if copy.dtype == object and not isinstance(array, np.ndarray):
        raise TypeError(_unreadable(array, "cannot", "it made an object array"))
    return copy


def _unreadable(array: Any, could: str, how: str) -> str:
    # The type's module names the library (a new backend's contributor met
    # "type Array", which names none).
    kind = type(array)
    return (
        f"NumPy {could} read an array of type {kind.__module__}.{kind.__qualname__} "
        f"({how}): give the backend record of its library a to_numpy that "
        "converts it"
    )


def _run_eagerly(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def _nothing_to_wait_for(result: Any) -> None:
    pass


def _pullback_gradient(x: Any, alpha: float, beta: float) -> Any:
    import s2nn_xp

    _, pullback = s2nn_xp.vjp(x, alpha, beta)
    return pullback(1.0)


def _vjp_round_trip() -> Callable[[Any, Any], Any]:
    import s2nn_xp

    def round_trip(x: Any, cotangent: Any) -> Any:
        spike, pullback = s2nn_xp.vjp(x)
        return spike, pullback(cotangent)

    return round_trip


_PULLBACK = "s2nn_xp.vjp (explicit pullback)"
# The floating dtypes the math knows, by their bits.
FLOAT_BITS = {"float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}
_FLOAT_DTYPES = tuple(FLOAT_BITS)


def computes_in_float32(bits: int) -> bool:
    """Whether a float of ``bits`` bits is computed in float32 (and rounded once).

    Those narrower than float32 are (the Definition's Dtypes); the others
    are computed in their own dtype.
    """
    return bits < 32


# Each floating dtype's name -> the name of the dtype it is computed in.
COMPUTE_DTYPES = {
    name: "float32" if computes_in_float32(bits) else name
    for name, bits in FLOAT_BITS.items()
}
_NUMPY_DTYPES = ("float16", "float32", "float64")
# The public functions an adapter implements when it implements them all.
_EVERY_FUNCTION = ("forward", "origin", "gradient", "s2nn", "vjp")


def _release(version: str) -> tuple[int, ...] | None:
    """The release numbers a version starts with (``2.13.0+cpu``: 2, 13, 0)."""
    numbers = re.match(r"\d+(?:\.\d+)*", version)
    if numbers is None:
        return None
    return tuple(int(part) for part in numbers.group().split("."))


@dataclass(frozen=True)
class Backend:
    """One array library: what it is, how to use it, and what it can do.

    Attributes
    ----------
    name
        The backend's name, as in the nox sessions and ``S2NN_XP_BACKENDS``.
    module
        The module users take arrays from (``jax.numpy``, ``torch``, ...).
    array_modules
        The top-level modules that define its array types (``jaxlib`` too for
        JAX): the dispatcher's first, cheap, way to recognise an array.
    is_namespace
        Whether an array-API namespace is this library's (array-api-compat's
        ``is_*_namespace``).
    is_array
        Whether an object is an array of this library (array-api-compat's
        ``is_*_array``), for array types defined outside `array_modules`;
        None where the type's module suffices.
    autodiff
        How :func:`s2nn_xp.s2nn` carries the surrogate gradient there.
    transforms
        The autodiff transforms that carry the surrogate derivatives; empty
        where the library has no autodiff (train with :func:`s2nn_xp.vjp`).
    dtypes
        The floating dtypes supported.
    fused
        Where fused kernels run, if anywhere.
    adapter
        The package module that attaches the backend, if any.
    implements
        The public functions of :mod:`s2nn_xp` that `adapter` implements for
        the library's arrays (each an attribute of the adapter of the same
        name); every other public function runs the array-API math.
    title
        The library's name as its users write it (``PyTorch``), for messages.
    install
        How to install the library, in a sentence (``Install it: ...``),
        for the message of an adapter whose library does not import.
    oldest
        The oldest version of the library supported: the lower bound of
        its extra in ``pyproject.toml`` (a test keeps them equal). Its
        adapter refuses an older one when it is imported (ImportError): the
        transforms failed there in other words (``module 'torch.compiler'
        has no attribute 'is_exporting'``; JAX 0.4.30's tracers called
        arrays of another library).
    adapter_with_library
        Whether `adapter` is imported as soon as the library is, rather than
        when the first array of it arrives: where the library compiles
        functions by tracing their bytecode, which cannot import a module
        (``torch.compile``).
    device_kinds
        The kinds of device its arrays can live on (what `devices` lists here
        is checked against them).
    load_module
        Imports and returns `module`, where ``importlib.import_module`` alone
        does not (marray builds its namespaces on attribute access).
    devices
        Lists the devices found here; may raise where the runtime cannot even
        count them.
    enable_float64
        Makes float64 data stay float64 (JAX's ``jax_enable_x64``).
    without_debug_checks
        A context in which the library's debugging checks that a user may
        have switched on do not stop the computation (JAX's ``debug_nans``,
        ``debug_infs`` and ``transfer_guard``): ``s2nn-xp info`` feeds NaN
        and infinities on purpose, and checks agreement, not those settings.
    from_numpy
        ``(namespace, values) -> array`` of the library.
    to_numpy
        A NumPy copy of one of its arrays, computing a lazy one (for the
        CLI's checks and the tests).
    synchronize
        Blocks until a result (an array or tuple of arrays) is computed.
    jit
        `fn` compiled the way the library's users run it (``jax.jit``); by
        default `fn` itself, for the libraries that run eagerly. A record
        that compiles names "jit" or "compile" in `transforms` (checked).
    flushes_subnormals
        Given an array ``x`` and the dtype it is computed in, whether the
        library's arithmetic takes and gives subnormal numbers as zero there,
        so that a subnormal parameter acts as 0 and is refused (the docs'
        Definition page): XLA on the CPU, JAX's float32 on a GPU, CuPy in
        float32 (it compiles every kernel with ``-ftz=true``). None: never.
    flushes_subnormal_input
        The same for comparisons of ``x``, so that a negative subnormal
        ``x`` spikes: XLA on the CPU and CuPy in float32, not JAX on an
        NVIDIA GPU (whose arithmetic flushes float32). None: as
        ``flushes_subnormals``.
    values_on_host
        Whether its arrays' values sit in host memory, never traced, so that
        parameter values are checked like numbers (read with ``to_numpy``).
        True by default, the safe side for a new CPU library (its arrays that
        are ``lazy`` are not read); False for libraries whose arrays live on a
        GPU or are traced.
    lazy
        Whether its arrays are graphs whose values are computed when asked
        (Dask's): their values are never read at a call (a parameter's are
        not checked; an ``S2NN`` object compares such an ``epsilon`` by the
        graph it names, Dask's token, or else by identity, not by values a
        hash would compute). Say so for every lazy
        library: for arrays of no record array-api-compat's ``is_lazy_array``
        decides, which computes an element of arrays of a library it does not
        know to tell (and said cubed's were not lazy).
    mutable_arrays
        Whether its arrays can be changed in place (item assignment), after a
        call: an ``S2NN`` object keeps its own copy of such an ``epsilon``
        (hashed by its values, or a lazy one by its graph; static where JAX
        compiles the object). JAX's cannot; Dask's can (an assignment gives
        the array another graph).
    places_arrays
        Whether the library itself moves arrays of different devices to
        where they meet (JAX's uncommitted arrays; those committed to
        different devices are still refused, naming the argument);
        elsewhere an array parameter or cotangent on another device than
        ``x`` is refused, naming it, before the library refuses it in its
        own words.
    max_dimensions
        The most dimensions the library computes with, or None for any; an
        ``x`` with more is refused, naming the limit, where the library
        would fail in its own words.
    autodiff_gradient
        The gradient of ``sum(s2nn(x, alpha, beta))`` by the library's own
        autodiff, ``(x, alpha, beta) -> gradient``.
    forward_and_backward
        Builds ``(x, cotangent) -> (spike, input gradient)``, compiled where
        the library's users compile (JAX).
    make_learnable_case
        ``(x, cotangent, alpha, beta) -> case``, where ``case()`` runs the
        forward and backward pass with per-neuron `alpha` and `beta` that
        learn, as the library's users train, and returns ``(spike, (d x,
        d alpha, d beta))``; None where there is none (``s2nn-xp bench``
        then has no learnable row for the backend).
    """

    name: str
    module: str
    array_modules: tuple[str, ...]
    is_namespace: Callable[[ModuleType], bool]
    is_array: Callable[[Any], bool] | None = None
    autodiff: str = _PULLBACK
    transforms: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = _NUMPY_DTYPES
    fused: str = "no (the array-API math)"
    adapter: str | None = None
    implements: tuple[str, ...] = ()
    title: str | None = None
    install: str | None = None
    oldest: str | None = None
    adapter_with_library: bool = False
    device_kinds: tuple[str, ...] = ("cpu",)
    flushes_subnormals: Callable[[Any, Any], bool] | None = None
    flushes_subnormal_input: Callable[[Any, Any], bool] | None = None
    values_on_host: bool = True
    lazy: bool = False
    mutable_arrays: bool = True
    places_arrays: bool = False
    max_dimensions: int | None = None
    load_module: Callable[[str], ModuleType] = importlib.import_module
    devices: Callable[[], list[str]] = _cpu_only
    enable_float64: Callable[[], None] = _nothing_to_enable
    without_debug_checks: Callable[[], AbstractContextManager[Any]] = _no_debug_checks
    from_numpy: Callable[[Any, np.ndarray], Any] = _namespace_asarray
    to_numpy: Callable[[Any], np.ndarray] = _numpy_copy
    synchronize: Callable[[Any], None] = _nothing_to_wait_for
    jit: Callable[[Callable[..., Any]], Callable[..., Any]] = _run_eagerly
    autodiff_gradient: Callable[[Any, float, float], Any] = _pullback_gradient
    forward_and_backward: Callable[[], Callable[[Any, Any], Any]] = _vjp_round_trip
    make_learnable_case: Callable[[Any, Any, Any, Any], Callable[[], Any]] | None = None

    def __post_init__(self) -> None:
        # Each field checked by the kind its annotation declares (the
        # annotations are strings: ``from __future__ import annotations``).
        for field in fields(self):
            self._check_field(field.name, str(field.type))
        for name in ("array_modules", "device_kinds"):
            if not getattr(self, name):
                msg = f"backend {self.name!r}: {name} is empty"
                raise ValueError(msg)
        # Names that are selected in text (S2NN_XP_BACKENDS, a nox session,
        # a device's kind "cpu"), and modules found by their top level.
        lower = (_LOWER_NAME, "lowercase names (letters, digits, _)")
        names = {
            "name": ((self.name,), *lower),
            "device_kinds": (self.device_kinds, *lower),
            "array_modules": (
                self.array_modules,
                _MODULE_NAME,
                "top-level module names (no dots)",
            ),
        }
        for field_name, (values, pattern, what) in names.items():
            wrong = [v for v in values if not pattern.fullmatch(v)]
            if wrong:
                msg = f"backend {self.name!r}: {field_name} must be {what}"
                raise ValueError(f"{msg}, not {wrong!r}")
        unknown = sorted(set(self.dtypes) - set(_FLOAT_DTYPES))
        if unknown or "float32" not in self.dtypes:
            msg = (
                f"backend {self.name!r}: dtypes must include float32 and be among "
                f"{_FLOAT_DTYPES}, not {self.dtypes!r}"
            )
            raise ValueError(msg)
        unknown = sorted(set(self.implements) - set(_EVERY_FUNCTION))
        if unknown:
            msg = (
                f"backend {self.name!r}: implements names {unknown}, which are "
                f"no public functions ({', '.join(_EVERY_FUNCTION)})"
            )
            raise ValueError(msg)
        if self.implements and self.adapter is None:
            msg = f"backend {self.name!r} implements {self.implements} without adapter"
            raise ValueError(msg)
        if self.adapter is not None and None in (self.title, self.install):
            # what the adapter's import errors say (framework_import_error)
            msg = f"backend {self.name!r} has an adapter: give its title and install"
            raise ValueError(msg)
        if self.oldest is not None and _release(self.oldest) is None:
            msg = f"backend {self.name!r}: oldest is no version: {self.oldest!r}"
            raise ValueError(msg)
        missing = [f for f in _EVERY_FUNCTION if f not in self.implements]
        if self.transforms and missing:
            # A library with autodiff reaches the array-API path otherwise,
            # which updates temporaries in place (no autodiff is assumed
            # there) and attaches no surrogate: its gradients would be the
            # step's, 0, silently (or its autodiff refuse the in-place
            # operations).
            msg = (
                f"backend {self.name!r} names transforms {self.transforms}, so "
                f"its adapter must implement every public function; it lacks "
                f"{', '.join(missing)}"
            )
            raise ValueError(msg)
        if self.adapter_with_library and self.adapter is None:
            msg = f"backend {self.name!r} sets adapter_with_library without adapter"
            raise ValueError(msg)
        if self.jit is not _run_eagerly and not _COMPILING_TRANSFORMS.intersection(
            self.transforms
        ):
            # The jit capability (the requires_jit marker, the Backends
            # table) comes from the transforms: a record that compiles
            # without naming one would lack it, silently.
            msg = (
                f"backend {self.name!r} sets jit without naming "
                f"{' or '.join(sorted(_COMPILING_TRANSFORMS))} in transforms"
            )
            raise ValueError(msg)

    def _check_field(self, name: str, annotation: str) -> None:
        """Refuse a field that does not hold what its annotation declares.

        TypeError unless it is a str, a bool, an int > 0, a tuple of str or
        a callable (or None, where the annotation allows it); ValueError for an empty
        str or a tuple that names one value twice.
        """
        value = getattr(self, name)
        kind = annotation.removesuffix("| None").strip()
        if kind != annotation and value is None:
            return
        if kind == "str":
            wanted, holds = "a str", isinstance(value, str)
        elif kind == "bool":
            wanted, holds = "a bool", isinstance(value, bool)
        elif kind == "int":
            wanted = "an int > 0"
            holds = type(value) is int and value > 0
        elif kind == "tuple[str, ...]":
            wanted = "a tuple of str"
            holds = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        elif kind.startswith("Callable["):
            wanted, holds = "a callable", callable(value)
        else:  # a new kind of field: give it a check here
            msg = f"Backend.{name}: no check for fields of type {annotation}"
            raise NotImplementedError(msg)
        if not holds:
            wanted += " or None" if kind != annotation else ""
            msg = f"backend {self.name!r}: {name} must be {wanted}, not {value!r}"
            raise TypeError(msg)
        if value == "":
            msg = f"backend {self.name!r}: {name} is ''"
            raise ValueError(msg)
        if isinstance(value, tuple) and "" in value:
            msg = f"backend {self.name!r}: {name} names ''"
            raise ValueError(msg)
        if isinstance(value, tuple) and len(set(value)) < len(value):
            msg = f"backend {self.name!r}: {name} names a value twice: {value!r}"
            raise ValueError(msg)

    def device_name(self, x: Any) -> str:
        """``x``'s device as :attr:`devices` names it (``cpu``, ``cuda:0``).

        A CPU-only library names its one device so; others as
        :func:`s2nn_xp._compat.device_name` (array-api-strict's device
        prints as ``array_api_strict.Device('CPU_DEVICE')``, CuPy's as
        ``<CUDA Device 0>``; JAX lists its default platform's devices only,
        so an array on its CPU beside a GPU is not the one listed).
        """
        if self.device_kinds == ("cpu",):  # the one device CPU libraries list
            return self.devices()[0]
        return _compat.device_name(x)

    def flushes(self, x: Any, dtype: Any) -> bool:
        """Whether arithmetic takes subnormals as zero for ``x`` in ``dtype``."""
        return self.flushes_subnormals is not None and self.flushes_subnormals(x, dtype)

    def flushes_input(self, x: Any, dtype: Any) -> bool:
        """Whether a negative subnormal ``x`` in ``dtype`` compares as zero (spikes)."""
        if self.flushes_subnormal_input is not None:
            return self.flushes_subnormal_input(x, dtype)
        return self.flushes(x, dtype)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the backend can do: from its dtypes, values_on_host and transforms.

        A compiled run (``Capability.JIT``) is one of ``transforms``, "jit" or
        "compile"; the field ``jit`` only says how ``s2nn-xp bench``
        compiles, and a record that sets it names one of them (checked when
        it is made).
        """
        found = {c for c in Capability if c.value in self.dtypes}
        if self.values_on_host:
            found.add(Capability.HOST_VALUES)
        if self.mutable_arrays:
            found.add(Capability.MUTABLE_ARRAYS)
        if self.transforms:
            found.add(Capability.AUTODIFF)
        if _COMPILING_TRANSFORMS.intersection(self.transforms):
            found.add(Capability.JIT)
        return frozenset(found)

    def load(self) -> ModuleType:
        """Import and return the backend's module (ImportError if absent)."""
        return self.load_module(self.module)

    def is_installed(self) -> bool:
        """Whether the backend's library is installed (:func:`not_installed`).

        A library that is installed but fails to import (jax raises
        RuntimeError for a jaxlib of another version, ModuleNotFoundError
        without jaxlib) counts as installed: :meth:`load_failure` says why
        it cannot be used.
        """
        return not not_installed(self.load_failure(), self.module)

    def load_failure(self) -> Exception | None:
        """Why the backend's module does not import, or None where it does."""
        try:
            self.load()
        except Exception as exc:  # a broken install is reported, not a crash
            return exc
        return None

    def has_device(self) -> bool:
        """Whether the library finds a device to run on here.

        False where it imports but finds no device, or fails to tell (CuPy on
        a machine without a usable CUDA GPU; JAX asked for a platform it does
        not have, e.g. ``JAX_PLATFORMS=cuda`` without a GPU).
        """
        try:
            return bool(self.devices())
        except Exception:  # a runtime that cannot even count its devices
            return False

    def version(self) -> str:
        """The installed version of the backend's library."""
        top_level = importlib.import_module(self.module.partition(".")[0])
        return str(getattr(top_level, "__version__", "unknown"))

    def asarray(self, values: np.ndarray, dtype: str | None = None) -> Any:
        """A backend array holding `values` (optionally cast to `dtype`)."""
        if dtype is not None:
            values = values.astype(dtype)
        xp = self.load()
        self.enable_float64()
        return self.from_numpy(xp, values)


# --- per-library functions ------------------------------------------------------


def _strict_to_numpy(array: Any) -> np.ndarray:
    return np.from_dlpack(array)


def _dask_from_numpy(da: Any, values: np.ndarray) -> Any:
    return da.from_array(values, chunks=max(1, values.size // 4 or 1))


def _dask_to_numpy(array: Any) -> np.ndarray:
    return np.asarray(array.compute())


def _dask_wait(result: Any) -> None:
    import dask

    dask.compute(result)


def _jax_enable_float64() -> None:
    import jax

    jax.config.update("jax_enable_x64", True)


def _jax_without_debug_checks() -> AbstractContextManager[Any]:
    import jax

    stack = contextlib.ExitStack()
    stack.enter_context(jax.debug_nans(False))
    stack.enter_context(jax.debug_infs(False))
    stack.enter_context(jax.transfer_guard("allow"))
    return stack


def _jax_devices() -> list[str]:
    import jax

    return [str(d) for d in jax.devices()]


def _jax_platforms(x: Any) -> set[str]:
    """The platforms of ``x``'s devices; a traced ``x`` has none: JAX's default."""
    try:
        return {device.platform for device in x.devices()}
    except Exception:  # a tracer (ConcretizationTypeError), or no array
        import jax

        return {jax.default_backend()}


# TPUs have no subnormal numbers; XLA's CPU flushes them (every dtype).
_JAX_FLUSHING_PLATFORMS = frozenset({"cpu", "tpu"})


def _jax_flushes(x: Any, dtype: Any) -> bool:
    """XLA's CPU flushes subnormals; its GPU compiles float32 arithmetic so.

    On an H200 (JAX 0.11.2) a subnormal float32 ``alpha`` or ``beta`` made
    every result NaN, where NumPy computes with its value.
    """
    platforms = _jax_platforms(x)
    return bool(platforms & _JAX_FLUSHING_PLATFORMS) or np.dtype(dtype) == np.float32


def _jax_flushes_input(x: Any, dtype: Any) -> bool:
    """A GPU compares a negative subnormal ``x`` as such (an H200, JAX 0.11)."""
    return bool(_jax_platforms(x) & _JAX_FLUSHING_PLATFORMS)


def _jax_to_numpy(array: Any) -> np.ndarray:
    out = np.asarray(array)
    if out.dtype.name == "bfloat16":  # ml_dtypes' bfloat16: NumPy cannot compute
        out = out.astype(np.float32)
    return out


def _jax_wait(result: Any) -> None:
    import jax

    jax.block_until_ready(result)


def _jax_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    import jax

    compiled: Callable[..., Any] = jax.jit(fn)
    return compiled


def _jax_gradient(x: Any, alpha: float, beta: float) -> Any:
    import jax

    import s2nn_xp

    return jax.grad(lambda v: s2nn_xp.s2nn(v, alpha, beta).sum())(x)


def jax_round_trip(spike: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
    """``(x, g) -> (spike(x), g * d spike / dx)`` by JAX's vjp, not compiled.

    Also ``s2nn-xp bench``'s and ``benchmarks/``'s: the anchors and ours do
    the same work.
    """
    import jax

    def round_trip(x: Any, cotangent: Any) -> Any:
        result, pullback = jax.vjp(spike, x)
        return result, pullback(cotangent)[0]

    return round_trip


def _jax_round_trip() -> Callable[[Any, Any], Any]:
    import s2nn_xp

    return _jax_jit(jax_round_trip(s2nn_xp.s2nn))


def _jax_learnable_case(
    x: Any, cotangent: Any, alpha: Any, beta: Any
) -> Callable[[], Any]:
    import jax

    import s2nn_xp

    def learnable(v: Any, a: Any, b: Any, g: Any) -> Any:
        result, pullback = jax.vjp(s2nn_xp.s2nn, v, a, b)
        return result, pullback(g)

    compiled = _jax_jit(learnable)
    return lambda: compiled(x, alpha, beta, cotangent)


def _torch_devices() -> list[str]:
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu", *gpus]


def _torch_from_numpy(torch: Any, values: np.ndarray) -> Any:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.asarray(values, device=device)


def _torch_to_numpy(array: Any) -> np.ndarray:
    import torch

    array = array.detach()
    if array.dtype == torch.bfloat16:
        array = array.float()
    copy: np.ndarray = array.cpu().numpy()
    return copy


def _torch_wait(result: Any) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _torch_gradient(x: Any, alpha: float, beta: float) -> Any:
    import s2nn_xp

    x = x.detach().requires_grad_(True)
    s2nn_xp.s2nn(x, alpha, beta).sum().backward()
    return x.grad


def torch_round_trip(
    spike: Callable[[Any], Any], x: Any, cotangent: Any, *parameters: Any
) -> Any:
    """``(spike(x), g * d spike / dx)`` by autograd, as ``jax.vjp`` gives it.

    With `parameters` (tensors that require grad), ``(spike(x), (d x, d
    parameter, ...))``. Also ``s2nn-xp bench``'s and ``benchmarks/``'s.
    """
    import torch

    leaf = x.detach().requires_grad_(True)
    result = spike(leaf)
    grads = torch.autograd.grad(result, [leaf, *parameters], cotangent)
    return result, grads if parameters else grads[0]


def _torch_round_trip() -> Callable[[Any, Any], Any]:
    import s2nn_xp

    return functools.partial(torch_round_trip, s2nn_xp.s2nn)


def _torch_learnable_case(
    x: Any, cotangent: Any, alpha: Any, beta: Any
) -> Callable[[], Any]:
    """Autograd through an ``s2nn_xp.torch.S2NN`` module whose parameters learn."""
    import s2nn_xp.torch

    module = s2nn_xp.torch.S2NN(alpha=alpha, beta=beta, learnable=True)
    return functools.partial(
        torch_round_trip, module, x, cotangent, module.alpha, module.beta
    )


def _cupy_devices() -> list[str]:
    import cupy

    return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]


def _cupy_flushes(x: Any, dtype: Any) -> bool:
    """CuPy compiles its kernels and ufuncs with ``-ftz=true``: float32 flushes."""
    return np.dtype(dtype) == np.float32


def _cupy_to_numpy(array: Any) -> np.ndarray:
    copy: np.ndarray = array.get()
    return copy


def _cupy_wait(result: Any) -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


def _marray_load(module: str) -> ModuleType:
    # marray makes a new namespace on every ``marray.numpy`` access, each with
    # its own array type; the one registered in sys.modules is kept, so that
    # arrays made here and by the tests share one.
    loaded = sys.modules.get(module)
    if loaded is not None:
        return loaded
    namespace: ModuleType = getattr(
        importlib.import_module("marray"), module.partition(".")[2]
    )
    return namespace


def _is_marray_namespace(xp: ModuleType) -> bool:
    return getattr(xp, "__name__", "").startswith("marray.")


def _marray_to_numpy(array: Any) -> np.ndarray:
    """The data of a masked array (its mask is the tests' own business)."""
    return np.asarray(array.data)


def _registry(*records: Backend) -> dict[str, Backend]:
    """The records by name; ValueError where two share a name or an array module."""
    registry: dict[str, Backend] = {}
    claimed: dict[str, str] = {}
    for record in records:
        if record.name in registry:
            msg = f"two backend records are named {record.name!r}"
            raise ValueError(msg)
        for module in record.array_modules:
            if module in claimed:
                msg = (
                    f"backends {claimed[module]!r} and {record.name!r} both claim "
                    f"the array module {module!r}"
                )
                raise ValueError(msg)
            claimed[module] = record.name
        registry[record.name] = record
    return registry


BACKENDS: dict[str, Backend] = _registry(
    Backend(
        "numpy",
        "numpy",
        ("numpy",),
        _compat.is_numpy_namespace,
        is_array=_compat.is_numpy_array,  # subclasses defined elsewhere too
        fused="NumPy kernels, in blocks",
    ),
    Backend(
        "array_api_strict",
        "array_api_strict",
        ("array_api_strict",),
        _compat.is_array_api_strict_namespace,
        dtypes=("float32", "float64"),
        to_numpy=_strict_to_numpy,
    ),
    Backend(
        "dask",
        "dask.array",
        ("dask",),
        _compat.is_dask_namespace,
        is_array=_compat.is_dask_array,
        fused="NumPy's, a task a chunk",
        values_on_host=False,  # lazy: values exist once computed
        lazy=True,
        from_numpy=_dask_from_numpy,
        to_numpy=_dask_to_numpy,
        synchronize=_dask_wait,
    ),
    Backend(
        "jax",
        "jax.numpy",
        ("jax", "jaxlib"),
        _compat.is_jax_namespace,
        is_array=_compat.is_jax_array,
        autodiff="jax.custom_jvp",
        transforms=(
            "grad",
            "vjp",
            "jvp",
            "vmap",
            "jit",
            "hessian",
            "linearize",
            "checkpoint",
            "lax.scan",
        ),
        dtypes=("float16", "bfloat16", "float32", "float64"),
        fused="no (XLA fuses the math under jit)",
        adapter="s2nn_xp.jax",
        title="JAX",
        install=(
            'Install it: `pip install "s2nn-xp[jax]"` (CPU), or `pip install '
            '"jax[cuda12]"` for NVIDIA GPUs '
            "(https://docs.jax.dev/en/latest/installation.html)."
        ),
        oldest="0.4.35",
        implements=_EVERY_FUNCTION,
        # the kinds of JAX's device names ("cuda:0"), not its platforms ("gpu")
        device_kinds=("cpu", "cuda", "rocm", "tpu"),
        flushes_subnormals=_jax_flushes,
        flushes_subnormal_input=_jax_flushes_input,
        values_on_host=False,  # on a device, or traced
        mutable_arrays=False,
        places_arrays=True,
        devices=_jax_devices,
        enable_float64=_jax_enable_float64,
        without_debug_checks=_jax_without_debug_checks,
        to_numpy=_jax_to_numpy,
        synchronize=_jax_wait,
        jit=_jax_jit,
        autodiff_gradient=_jax_gradient,
        forward_and_backward=_jax_round_trip,
        make_learnable_case=_jax_learnable_case,
    ),
    Backend(
        "torch",
        "torch",
        ("torch",),
        _compat.is_torch_namespace,
        is_array=_compat.is_torch_array,
        autodiff="torch.autograd.Function",
        transforms=(
            "backward",
            "autograd.grad",
            "double backward",
            "func.grad",
            "func.vmap",
            "func.jvp",
            "func.jacrev",
            "func.jacfwd",
            "func.hessian",
            "compile",
        ),
        dtypes=("float16", "bfloat16", "float32", "float64"),
        fused="eager: CPU kernels; CUDA: Triton",
        adapter="s2nn_xp.torch",
        title="PyTorch",
        install=(
            "Install the build for your platform that "
            "https://pytorch.org/get-started/locally/ gives (a CPU build: `pip "
            "install torch --index-url https://download.pytorch.org/whl/cpu`; "
            "from PyPI alone, `pip install torch` is a CUDA build of several GB)."
        ),
        oldest="2.13",
        implements=_EVERY_FUNCTION,
        adapter_with_library=True,  # torch.compile cannot import it
        values_on_host=False,  # on a device, or traced
        device_kinds=("cpu", "cuda"),
        devices=_torch_devices,
        from_numpy=_torch_from_numpy,
        to_numpy=_torch_to_numpy,
        synchronize=_torch_wait,
        autodiff_gradient=_torch_gradient,
        forward_and_backward=_torch_round_trip,
        make_learnable_case=_torch_learnable_case,
    ),
    Backend(
        "cupy",
        "cupy",
        ("cupy",),
        _compat.is_cupy_namespace,
        is_array=_compat.is_cupy_array,
        fused="always (CuPy kernels)",
        adapter="s2nn_xp.cupy",
        title="CuPy",
        install=(
            "Install the CuPy wheel for your CUDA version: "
            '`pip install "s2nn-xp[cupy]"` (CUDA 12, the cupy-cuda12x wheel) or '
            "`pip install cupy-cuda13x` (CUDA 13)."
        ),
        oldest="13",
        flushes_subnormals=_cupy_flushes,
        values_on_host=False,  # on a GPU
        implements=_EVERY_FUNCTION,
        device_kinds=("cuda",),
        devices=_cupy_devices,
        to_numpy=_cupy_to_numpy,
        synchronize=_cupy_wait,
    ),
    # [marray record: shown whole by docs/contributing.rst]
    Backend(
        "marray",
        "marray.numpy",
        ("marray",),
        _is_marray_namespace,
        # marray.numpy's data is NumPy's: parameter values are checked as
        # NumPy arrays are (values_on_host), and a masked element refused.
        load_module=_marray_load,  # marray builds namespaces on access
        to_numpy=_marray_to_numpy,  # the data, for s2nn-xp info's check
        # Its functions broadcast the masks with NumPy's, which stop at 32.
        max_dimensions=32,
    ),
    # [end of the marray record]
)


def not_installed(failure: BaseException | None, module: str) -> bool:
    """Whether ``failure``, importing ``module``, says its library is absent.

    Only a ModuleNotFoundError naming the top-level package of ``module``
    does: any other ImportError (a dependency missing, as jax's without
    jaxlib; a part of the library missing, as an older layout without the
    module named; a compiled part that does not load) comes from an install
    that is there but broken or of another version, which is reported,
    never hidden as absent.
    """
    missing = failure.name if isinstance(failure, ModuleNotFoundError) else None
    return missing is not None and missing == module.partition(".")[0]


def framework_import_error(name: str, failure: ImportError) -> ImportError:
    """The error backend ``name``'s adapter raises where its framework fails to import.

    ``failure`` is the framework's own ImportError; the message names the
    framework by the record's ``title`` and says how to install it
    (``install``). Where it is not installed (:func:`not_installed`), a
    ModuleNotFoundError with ``failure``'s ``name``, as Python's own (so a
    caller that reads ``exc.name`` still finds the library); where it is
    installed but does not load (a dependency or CUDA library missing), an
    ImportError that says so with ``failure``'s words, never "not
    installed". Raise it ``from failure``.
    """
    backend = get(name)
    kind: type[ImportError]
    if not_installed(failure, backend.module):
        why, kind = "which is not installed", ModuleNotFoundError
    else:
        why, kind = f"which does not import ({failure})", ImportError
    msg = f"{backend.adapter} needs {backend.title}, {why}. {backend.install}"
    return kind(msg, name=failure.name, path=failure.path)


def check_framework_version(name: str) -> None:
    """Refuse, by ImportError, a framework older than backend ``name``'s ``oldest``.

    For its adapter, once the framework has imported.
    """
    installed = older_than_supported(name)
    if installed is None:
        return
    backend = get(name)
    msg = (
        f"{backend.adapter} needs {backend.title} {backend.oldest} or later, not "
        f"{installed}, whose transforms fail in other words. {backend.install}"
    )
    raise ImportError(msg, name=backend.module.partition(".")[0])


def older_than_supported(name: str) -> str | None:
    """The installed version of backend ``name``'s library where it is too old.

    Older than the record's ``oldest``; else None. The library must have
    imported. A version that does not start with release numbers (a build
    of a checkout) counts as supported.
    """
    backend = get(name)
    if backend.oldest is None:
        return None
    installed = backend.version()
    found, oldest = _release(installed), _release(backend.oldest)
    if found is None or oldest is None:
        return None
    width = max(len(found), len(oldest))
    if found + (0,) * (width - len(found)) >= oldest + (0,) * (width - len(oldest)):
        return None
    return installed


def get(name: str) -> Backend:
    """The backend called `name`; ValueError naming the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        msg = f"unknown backend {name!r}; known: {', '.join(BACKENDS)}"
        raise ValueError(msg) from None


def available() -> list[Backend]:
    """The backends whose library imports here and finds a device to run on."""
    return [b for b in BACKENDS.values() if b.load_failure() is None and b.has_device()]


def of_namespace(xp: ModuleType) -> Backend | None:
    """The backend whose namespace `xp` is, or None for other libraries."""
    for backend in BACKENDS.values():
        if backend.is_namespace(xp):
            return backend
    return None


def is_lazy(value: Any) -> bool:
    """Whether ``value`` is an array whose values are computed when asked.

    Its record's ``lazy`` says; for arrays of no record, array-api-compat's
    ``is_lazy_array``.
    """
    backend = of_array(value)
    if backend is not None:
        return backend.lazy
    return _compat.is_lazy_array(value)


def of_array(x: Any) -> Backend | None:
    """The backend `x` is an array of, or None for other objects.

    The top-level module of `x`'s type decides first: a dict lookup, cheap
    and traceable by ``torch.compile`` (which warns about the cached type
    checks of array-api-compat); those checks remain the fallback for array
    types defined elsewhere.
    """
    name = _BY_ARRAY_MODULE.get(type(x).__module__.partition(".")[0])
    if name is not None:
        return BACKENDS.get(name)  # None where a test took the record out
    for name in _RECOGNISED_BY_CHECK:
        candidate = BACKENDS.get(name)
        check = None if candidate is None else candidate.is_array
        if check is not None and check(x):
            return candidate
    return None


# Names, not records: the record is read from BACKENDS at each call, so that
# a record replaced there (a test's stand-in) is the one that serves.
_BY_ARRAY_MODULE = {
    module: backend.name
    for backend in BACKENDS.values()
    for module in backend.array_modules
}
# NumPy's check last: it accepts every ndarray subclass, and another library's
# array type may be one (a CuPy stand-in on the host is, in the tests).
_RECOGNISED_BY_CHECK = tuple(
    b.name
    for b in sorted(
        (b for b in BACKENDS.values() if b.is_array is not None),
        key=lambda b: b.is_array is _compat.is_numpy_array,
    )
)
