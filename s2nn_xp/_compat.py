"""The one place that imports :mod:`array_api_compat`.

Everything else in the package asks this module which library an array comes
from, so that no framework is imported before the caller's array needs it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import array_api_compat

_Function = TypeVar("_Function", bound=Callable[..., Any])


def imported(name: str) -> ModuleType | None:
    """Module `name` where it is imported (finished), else None.

    A module that another thread is still importing is in ``sys.modules``
    already, without the names it has not yet defined: reading one raised
    AttributeError ("partially initialized module 'jax' has no attribute
    'Array'") from calls on NumPy data while another thread imported JAX.
    Such an import is waited for (:func:`_wait_for_import`); where it failed,
    or is this thread's own (a circular import), the module is not there.
    """
    module = finished(name)
    if module is None and name in sys.modules:  # being imported
        _wait_for_import(name)
        module = finished(name)
    return module


def finished(name: str) -> ModuleType | None:
    """Module `name` where its import has finished, else None; never waits."""
    module = sys.modules.get(name)
    return None if module is None or _initializing(module) else module


def _being_imported(name: str) -> bool:
    """Whether module `name` is in ``sys.modules`` and its code has not finished."""
    module = sys.modules.get(name)
    return module is not None and _initializing(module)


def _initializing(module: ModuleType) -> bool:
    """Whether `module`'s code has not finished (its import is under way)."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _wait_for_import(name: str) -> None:
    """Return once another thread's import of `name` has ended, without importing.

    The import system's own wait, by which a second ``import`` of a module
    waits for the first (its module lock; in the importing thread itself it
    returns at once). ``importlib.import_module`` would also import the
    module again where the other thread's import failed, in this thread,
    and raise its error from a call on NumPy data.
    """
    wait = getattr(importlib._bootstrap, "_lock_unlock_module", None)
    if wait is not None:
        wait(name)


def _after_concurrent_imports(function: _Function) -> _Function:
    """array-api-compat's `function`, asked again after imports it met half done.

    It reads each library's array type from ``sys.modules`` (see
    :func:`imported`), where a library another thread is importing may not
    have it yet: AttributeError, which names the module (``obj``). Asked
    again once that import has ended (where it failed, the library is gone
    from ``sys.modules`` and not asked about).
    """

    @functools.wraps(function)
    def after_imports(*args: Any, **kwargs: Any) -> Any:
        ended = False
        while True:
            try:
                return function(*args, **kwargs)
            except AttributeError as exc:
                module = getattr(exc, "obj", None)
                if not isinstance(module, ModuleType):
                    raise
                # The module, or its submodule the attribute names (a package
                # whose submodule another thread imports, or failed to).
                names = (module.__name__, f"{module.__name__}.{exc.name}")
                pending = [n for n in names if _being_imported(n)]
                for name in pending:
                    _wait_for_import(name)
                if any(_being_imported(name) for name in pending):
                    raise  # this thread's own import
                if not pending:
                    if ended:
                        raise
                    ended = True  # one that ended (failed) while it asked

    return after_imports  # type: ignore[return-value]


array_namespace = _after_concurrent_imports(array_api_compat.array_namespace)
is_array_api_obj = _after_concurrent_imports(array_api_compat.is_array_api_obj)
is_array_api_strict_namespace = array_api_compat.is_array_api_strict_namespace
is_cupy_array = _after_concurrent_imports(array_api_compat.is_cupy_array)
is_cupy_namespace = array_api_compat.is_cupy_namespace
is_dask_array = _after_concurrent_imports(array_api_compat.is_dask_array)
is_dask_namespace = array_api_compat.is_dask_namespace
is_jax_array = _after_concurrent_imports(array_api_compat.is_jax_array)
is_jax_namespace = array_api_compat.is_jax_namespace
is_lazy_array = _after_concurrent_imports(array_api_compat.is_lazy_array)
is_numpy_array = _after_concurrent_imports(array_api_compat.is_numpy_array)
is_numpy_namespace = array_api_compat.is_numpy_namespace
is_torch_array = _after_concurrent_imports(array_api_compat.is_torch_array)
_device_of = _after_concurrent_imports(array_api_compat.device)

__all__ = [
    "array_for",
    "array_namespace",
    "astype_quietly",
    "clip",
    "committed_devices",
    "compat_namespace",
    "device",
    "device_name",
    "finished",
    "imported",
    "is_array_api_obj",
    "is_array_api_strict_namespace",
    "is_brainunit_quantity",
    "is_cupy_array",
    "is_cupy_namespace",
    "is_dask_array",
    "is_dask_namespace",
    "is_jax_array",
    "is_jax_namespace",
    "is_jax_tracer",
    "is_lazy_array",
    "is_numpy_array",
    "is_numpy_namespace",
    "is_torch_array",
    "is_torch_namespace",
    "placement",
    "private_host_array",
    "quiet_floating_point",
    "readable_host_array",
    "stood_for",
    "without_derivative",
]


def compat_namespace(library: str) -> ModuleType:
    """array-api-compat's namespace of `library` (``"torch"``), imported now.

    For an adapter, whose library is imported already: by name, not from an
    array (``array_namespace`` of one tests its type against every library's
    that is in ``sys.modules``, a stand-in too, such as a documentation
    build's mock of CuPy, which it cannot test against).
    """
    import importlib

    return importlib.import_module(f"array_api_compat.{library}")


def stood_for(x: Any, name: str = "x", *, held: bool = False) -> Any:
    """The JAX array that ``x`` stands for, where it is a wrapper of one; else x.

    Objects that wrap a JAX array say so with ``__jax_array__`` (brainpy's
    ``Array`` and ``Variable``, pytrees whose leaf is the array): read as
    host data, they would leave JAX, silently in eager code, and with an
    error about tracers under a transform. TypeError, naming ``name``, where
    ``__jax_array__`` gives anything but a JAX array: flax's ``nnx.Param``
    gives what it holds, a number as a number, which ``nnx.jit`` makes a JAX
    array but an eager call has not (the message says to give it one).
    TypeError too for a JAX reference (``jax.new_ref``), a mutable box that
    ``jax.numpy`` refuses as well (read as host data, it failed inside
    NumPy eagerly and inside array-api-compat under ``jax.jit``); one
    `held` in `name`'s list is said to be.
    """
    mantissa = _unitless_mantissa(x)
    if mantissa is not None:
        return mantissa
    unwrap = getattr(type(x), "__jax_array__", None)
    if not callable(unwrap):  # none, or a tracer's property
        if _is_jax_reference(x, tracer=unwrap is not None):
            msg = (
                f"{name} is a list holding a JAX reference (jax.new_ref); give "
                "one array, or numbers"
                if held
                else f"{name} is a JAX reference (jax.new_ref), not an array; "
                f"give the array it holds ({name}[...])"
            )
            raise TypeError(msg)
        return x
    array = unwrap(x)
    if not is_jax_array(array):
        msg = (
            f"{name} is of type {type(x).__name__}, whose __jax_array__() gave "
            f"{type(array).__name__}, not a JAX array; give it a JAX array "
            f"({type(x).__name__}(jnp.asarray(...)))"
        )
        raise TypeError(msg)
    return array


def _is_jax_reference(x: Any, *, tracer: bool) -> bool:
    """Whether ``x`` is a ``jax.Ref``, or a `tracer` of one under a transform.

    By names, at the cost of a string comparison a call: ``isinstance(x,
    jax.Ref)`` imports a module at each check (two microseconds).
    """
    if tracer:
        return type(getattr(x, "aval", None)).__name__ == "AbstractRef"
    kind = type(x)
    return kind.__name__ == "Ref" and kind.__module__.startswith("jax.")


# The libraries whose Quantity may hold a JAX array (never imported here).
_UNITS = ("saiunit", "brainunit")


def is_brainunit_quantity(x: Any) -> bool:
    """Whether ``x`` is a brainunit (saiunit) ``Quantity``.

    Its ``__array__`` reads it in no unit: a dimensionless one's value
    (its unit's scale applied, mV / V), and refuses one with a unit, naming
    it; NumPy may read it as it reads any host data.
    """
    # Every call asks: first whether either is loaded at all, cheaply (a
    # microsecond a call, on every call, otherwise)
    if not any(name in sys.modules for name in _UNITS):
        return False
    # brainunit's Quantity is saiunit's; isinstance, which torch.compile
    # traces (it refused the text of a type's module)
    quantities = (getattr(imported(name), "Quantity", None) for name in _UNITS)
    return any(kind is not None and isinstance(x, kind) for kind in quantities)


def _unitless_mantissa(x: Any) -> Any:
    """The JAX array of a dimensionless brainunit ``Quantity``'s value, else None.

    A quantity has no ``__jax_array__``: read by its ``__array__`` it left
    JAX (a NumPy result of a JAX membrane potential, silently; under a
    transform, an error about a traced array). One with a unit is refused
    by its own ``__array__``, saying so.
    """
    if not is_brainunit_quantity(x):
        return None
    dimension = getattr(x, "dim", None)
    if not getattr(dimension, "is_dimensionless", False):
        return None  # refused by its own __array__, naming its unit
    if not is_jax_array(getattr(x, "mantissa", None)):
        return None  # host data: NumPy reads it, as any
    # Its value: the mantissa times a dimensionless unit's scale (mV / V)
    return x.to_decimal()


def device(x: Any) -> Any:
    """``x``'s device, as :func:`array_api_compat.device` gives it.

    A tensor's is read from it: array-api-compat tests which library an
    array comes from with cached functions, which ``torch.compile`` traces
    into, warning at each of them (seven warnings a compile of a call with
    integer input, whose promotion asks for the device).
    """
    torch = imported("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.device
    return _device_of(x)


def device_name(x: Any) -> str:
    """``x``'s device as the registry's ``devices`` name it (``cpu``, ``cuda:0``).

    A CuPy device prints as ``<CUDA Device 0>``; the registry, as PyTorch's
    and JAX's do, names it ``cuda:0``.
    """
    found = device(x)
    if is_cupy_array(x):
        return f"cuda:{found.id}"
    return str(found)


def placement(x: Any) -> Any:
    """The device to make arrays for ``x`` on: ``x``'s own, or None.

    None (the library's default placement) for an uncommitted JAX ``x``,
    and for an array spread over several devices, a sharded JAX array: its
    "device" is its sharding, made for its own rank, and an array of another
    shape committed to it fails; an uncommitted array meets the sharded one
    wherever JAX moves it.
    """
    if is_jax_array(x) and not is_jax_tracer(x) and committed_devices(x) is None:
        # An uncommitted x: JAX moves it where it meets others, and an array
        # made with a device is committed there, which a parameter
        # committed elsewhere then meets as a refusal.
        return None
    where = device(x)
    devices = getattr(where, "device_set", None)  # a JAX Sharding
    return None if devices is not None and len(devices) > 1 else where


def array_for(xp: ModuleType, host: Any, dtype: Any, x: Any) -> Any:
    """NumPy values ``host`` as an array of ``xp`` in ``dtype``, made to meet ``x``.

    On ``x``'s device; for Dask, in ``x``'s chunks along the axes where
    ``host`` has ``x``'s size (aligned on the last axes, as it broadcasts),
    so that no rechunk is needed: one chunk would be rechunked to ``x``'s,
    which Dask refuses beyond 32 dimensions.
    """
    if not is_dask_array(x):
        return xp.asarray(host, dtype=dtype, device=placement(x))
    import dask.array

    chunks = _chunks_along(host.shape, x)
    return dask.array.from_array(host.astype(dtype, copy=False), chunks=chunks)


def _chunks_along(shape: tuple[int, ...], x: Any) -> tuple[tuple[int, ...], ...]:
    """Chunks for an array of ``shape`` that broadcasts to Dask ``x``.

    ``x``'s along the axes where it has ``x``'s size (aligned on the last
    axes, as it broadcasts), one chunk along the others, and along axes
    ``x`` lacks (an array of more dimensions, which the caller's check of
    its shape then refuses, naming it).
    """
    offset = x.ndim - len(shape)
    return tuple(
        x.chunks[offset + axis]
        if offset + axis >= 0 and size == x.shape[offset + axis]
        else (size,)
        for axis, size in enumerate(shape)
    )


def broadcast_to_x(xp: ModuleType, value: Any, x: Any) -> Any:
    """``value`` (an array of ``xp`` that broadcasts to ``x``) in ``x``'s shape.

    For Dask, in ``x``'s chunks (:func:`chunked_like`): an elementwise
    operation with ``x`` would rechunk it in ``x``'s dimensions, which Dask
    refuses beyond 32.
    """
    if not is_dask_array(x):
        return xp.broadcast_to(value, x.shape)
    import dask.array

    value = chunked_like(value, x)
    if value is None:  # cannot be: the caller made it so (validation)
        msg = "a Dask array of more than 32 dimensions in other chunks than x's"
        raise ValueError(msg)
    return dask.array.broadcast_to(value, x.shape, chunks=x.chunks)


def chunked_like(value: Any, x: Any) -> Any:
    """A Dask ``value`` that broadcasts to Dask ``x``, in ``x``'s chunks, or None.

    Along the axes where it has ``x``'s size; rechunked in its own
    dimensions, which may be fewer than ``x``'s. None where it needs a
    rechunk of more than 32 dimensions, which Dask refuses.
    """
    own = _chunks_along(tuple(value.shape), x)
    if own == value.chunks:
        return value
    if value.ndim > DASK_DIMENSIONS:
        return None
    return value.rechunk(own)


# The most dimensions Dask rechunks (and so computes elementwise with arrays
# in other chunks).
DASK_DIMENSIONS = 32


def is_jax_tracer(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (an abstract value under a transform).

    Without importing JAX: a tracer exists only where JAX was imported.
    """
    jax_core = sys.modules.get("jax.core")
    tracer = getattr(jax_core, "Tracer", None)
    return tracer is not None and isinstance(value, tracer)


def in_forked_child(renew: Callable[[], None]) -> None:
    """Have a fork's child call `renew` (POSIX): a new lock for one of its own.

    A lock that another thread held when the process forked stays held in
    the child, where that thread does not run: its first use waited for
    ever (a hash of an object with an array parameter).
    """
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=renew)


def committed_devices(x: Any) -> tuple[Any, ...] | None:
    """The devices a concrete JAX array is committed to, in order, else None.

    JAX moves an uncommitted array to where it meets others; arrays committed
    (``jax.device_put`` to a device) to different devices it refuses, in
    words naming its compiled function's arguments, and so it does arrays
    on the same devices in another order (meshes of them in other orders).
    A tracer has no devices to compare.
    """
    if not is_jax_array(x) or is_jax_tracer(x):
        return None
    try:
        committed = x.committed
    except Exception:  # a tracer, where JAX's Tracer class has moved
        return None
    if not committed:
        return None
    sharding = x.sharding
    # The order JAX compares; a JAX without it, by ids (the set's order).
    order = getattr(sharding, "_device_assignment", None)
    if order is None:
        order = sorted(sharding.device_set, key=lambda d: d.id)
    return tuple(order)


def readable_host_array(array: Any) -> Any:
    """A NumPy array as every library's ``asarray`` reads it without complaint.

    PyTorch refuses negative strides (``a[::-1]``), strides that are no
    multiple of the item size (a field of a structured array) and a
    non-native byte order, and warns at a read-only array (a tensor would
    share memory it may not write): those are copied, in native byte order.
    """
    if not array.dtype.isnative:
        return array.astype(array.dtype.newbyteorder("="))
    itemsize = array.dtype.itemsize
    if array.flags.writeable and all(
        stride >= 0 and stride % itemsize == 0 for stride in array.strides
    ):
        return array
    return array.copy()


def private_host_array(array: Any, given: Any) -> Any:
    """NumPy ``array``, made from the caller's ``given``, as memory of its own.

    Another library's array made from it may share its memory
    (``torch.as_tensor``, ``array_api_strict``, Dask's graph) and outlive
    the call (saved for backward, kept by a pullback or a graph), where a
    later in-place change of ``given`` (invisible to that library) would
    change what it computes: ``array`` is copied unless it is an array
    made here, from other values (a cast, a list).
    """
    if array is given or not array.flags.owndata:
        return array.copy()
    return array


def is_torch_namespace(xp: ModuleType) -> bool:
    """Whether `xp` is PyTorch's namespace (plain or array-api-compat's).

    The same test as array-api-compat's, without its ``lru_cache``, which
    ``torch.compile`` warns about when it traces the math.
    """
    return getattr(xp, "__name__", None) in ("torch", "array_api_compat.torch")


def clip(
    xp: ModuleType, x: Any, low: Any, high: float | None, *, recorded: bool = False
) -> Any:
    """``xp.clip(x, min=low, max=high)`` with NaN kept, for every library and tracer.

    array-api-compat's ``clip`` checks Python-number bounds with
    ``math.isnan`` and ``torch.result_type``, which ``torch.compile`` cannot
    put in a graph (a graph break inside the S2NN function, fatal with
    ``fullgraph=True``), and on Dask it needs known chunk sizes. Those two
    libraries get their own elementwise operations instead. Where autograd
    records the operation (``recorded``), PyTorch gets ``maximum`` and
    ``minimum``, whose backward passes NaN through (``clamp``'s gives 0 at
    NaN, which would make derivatives of the math 0 instead of NaN there).
    """
    if is_torch_namespace(xp):
        import torch

        tensor_bound = any(isinstance(bound, torch.Tensor) for bound in (low, high))
        if not recorded:
            # clamp, except for a lower bound alone under the legacy ONNX
            # exporter (tracing): its Clip without a maximum caps inf at the
            # largest float in onnxruntime (origin(inf) gave 89); Max does not.
            if tensor_bound:
                # each bound by its own operation: array-api-compat's clip
                # makes a tensor of a number bound (a TracerWarning under
                # torch.jit.trace: a constant of the trace)
                if high is not None:
                    x = (
                        torch.minimum(x, high)
                        if isinstance(high, torch.Tensor)
                        else torch.clamp(x, max=high)
                    )
                if low is None:
                    return x
                if isinstance(low, torch.Tensor):
                    return torch.maximum(x, low)
                return torch.clamp(x, min=low)
            if high is not None or not torch.jit.is_tracing():
                return torch.clamp(x, low, high)
        elif (
            low is not None
            and high is not None
            and not tensor_bound
            and torch.compiler.is_exporting()
        ):
            # torch.export records a forward pass, for inference: a two-sided
            # clamp, which onnxscript's optimizer (0.7) need not fuse from
            # minimum and maximum (fusing two such pairs into Clips, it made
            # an invalid model).
            return torch.clamp(x, low, high)

        def as_tensor(bound: Any) -> Any:
            if isinstance(bound, torch.Tensor):
                return bound
            # x's own factory: a tensor of x's kind (a FakeTensor's is fake,
            # even outside the mode that made it, which refuses a real one).
            # Of x's dimensions, each of size 1: under torch.func.vmap over
            # an empty batch, a 0-d one with x of more broke minimum's
            # batching rule (IndexError from select).
            return x.new_full((1,) * x.ndim, bound)

        if high is not None:
            x = torch.minimum(x, as_tensor(high))
        return x if low is None else torch.maximum(x, as_tensor(low))
    if is_dask_namespace(xp):
        if high is not None:
            x = xp.minimum(x, high)
        return x if low is None else xp.maximum(x, low)
    if getattr(x, "ndim", 0) > _BROADCAST_DIMENSIONS:  # x may be a Python number
        # array-api-compat's and array-api-strict's clip (and marray's, over
        # them) take the result's shape from NumPy's broadcast_shapes, which
        # refuses more than 32 dimensions; minimum and maximum do not.
        def as_array(bound: Any) -> Any:
            if is_array_api_obj(bound):
                return bound
            return xp.asarray(bound, dtype=x.dtype, device=device(x))

        if high is not None:
            x = xp.minimum(x, as_array(high))
        return x if low is None else xp.maximum(x, as_array(low))
    return xp.clip(x, min=low, max=high)


# The most dimensions NumPy's broadcast_shapes takes (np.broadcast's limit).
_BROADCAST_DIMENSIONS = 32


def without_derivative(xp: ModuleType, x: Any) -> Any:
    """``x`` cut off from autodiff (PyTorch's ``detach``, JAX's ``stop_gradient``)."""
    if is_torch_namespace(xp):
        return x.detach()
    if is_jax_namespace(xp):
        import jax

        return jax.lax.stop_gradient(x)
    return x


def quiet_floating_point(xp: ModuleType) -> contextlib.AbstractContextManager[Any]:
    """NumPy's floating-point error state set to ignore, for the guarded math.

    The math underflows on purpose (``exp`` of the guarded sigmoid branch far
    below 0) and meets NaN on purpose (NaN input propagates): valid input
    must not raise or warn under a caller's ``np.errstate(all="raise")``.
    Not NumPy's namespace alone: array-api-strict, marray and Dask's eager
    parts compute with NumPy underneath. (A Dask graph computed later, in
    the caller's thread, runs under the caller's state, but for its tasks
    that run the NumPy path on a chunk.)
    """
    if is_torch_namespace(xp) or is_jax_namespace(xp) or is_cupy_namespace(xp):
        return contextlib.nullcontext()  # no NumPy arithmetic underneath
    import numpy as np

    return np.errstate(all="ignore")


def astype_quietly(xp: ModuleType, a: Any, dtype: Any) -> Any:
    """``xp.astype(a, dtype)``, a value beyond ``dtype``'s range quietly inf.

    Under :func:`quiet_floating_point`; a Dask array's cast runs when the
    graph is computed, under the computing thread's state, so it is a task
    of its own that is quiet (a cotangent of 1e300 for float32 ``x`` raised
    under ``np.errstate(all="raise")``).
    """
    if is_dask_array(a):
        if a.dtype == dtype:
            return a
        return a.map_blocks(_cast_quietly, dtype=dtype, target=dtype)
    with quiet_floating_point(xp):
        return xp.astype(a, dtype, copy=False)


def _cast_quietly(block: Any, target: Any) -> Any:
    """A Dask chunk in ``target``'s dtype, quietly (a task of astype_quietly)."""
    import numpy as np

    with np.errstate(all="ignore"):
        return block.astype(target, copy=False)
