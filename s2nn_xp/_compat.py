"""The one place that imports :mod:`array_api_compat`.

Everything else in the package asks this module which library an array comes
from, so that no framework is imported before the caller's array needs it.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from array_api_compat import (
    array_namespace,
    device,
    is_array_api_obj,
    is_cupy_array,
    is_cupy_namespace,
    is_dask_array,
    is_dask_namespace,
    is_jax_array,
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_array,
)

__all__ = [
    "array_namespace",
    "as_array",
    "device",
    "is_array_api_obj",
    "is_cupy_array",
    "is_cupy_namespace",
    "is_dask_array",
    "is_dask_namespace",
    "is_jax_array",
    "is_jax_namespace",
    "is_numpy_namespace",
    "is_torch_array",
    "is_torch_namespace",
    "namespace_of",
]


def is_torch_namespace(xp: ModuleType) -> bool:
    """Whether `xp` is PyTorch's namespace (plain or array-api-compat's).

    The same test as array-api-compat's, without its ``lru_cache``, which
    ``torch.compile`` warns about when it traces the math.
    """
    return getattr(xp, "__name__", None) in ("torch", "array_api_compat.torch")


def as_array(x: Any) -> Any:
    """Return `x` unchanged if it is an array, else as a NumPy array.

    Python scalars, lists and tuples are NumPy input by the package's rules.
    """
    if is_array_api_obj(x):
        return x
    import numpy as np

    return np.asarray(x)


def namespace_of(*arrays: Any, names: tuple[str, ...] | None = None) -> ModuleType:
    """Array-API namespace shared by `arrays` (Python scalars are ignored).

    Parameters
    ----------
    *arrays
        Arrays, or Python numbers, whose library must agree.
    names
        The argument names of `arrays`, used in the error message.

    Raises
    ------
    TypeError
        If the arrays come from different libraries; the message names the
        arguments and their types.
    """
    try:
        return array_namespace(*arrays)
    except TypeError as exc:
        names = names or tuple(f"argument {i}" for i in range(len(arrays)))
        described = ", ".join(
            f"{name}: {type(a).__module__}.{type(a).__qualname__}"
            for name, a in zip(names, arrays, strict=True)
            if is_array_api_obj(a)
        )
        msg = f"arrays from different libraries cannot be mixed ({described})"
        raise TypeError(msg) from exc
