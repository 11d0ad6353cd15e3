"""S2NN surrogate spiking function for every array library.

One definition of the S2NN spike function (Suetake et al., arXiv:2201.10879)
that computes the same values and surrogate gradients on NumPy, CuPy, JAX,
PyTorch, Dask and any other array-API library, and plugs into the autodiff
transforms of JAX and PyTorch. Importing this package imports no framework;
the library of the array you pass is the only one touched. The framework
adapters (``s2nn_xp.torch``, ``s2nn_xp.jax``, ``s2nn_xp.cupy``) are
attributes of the package, each imported (with its framework) on first use;
``s2nn_xp.torch`` also as soon as PyTorch is imported, for ``torch.compile``.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING

from . import _backends, _dispatch, _jax_pytree
from ._api import Pullback, forward, gradient, origin, s2nn, vjp
from ._fused import FusedKernelWarning
from ._object import S2NN

if TYPE_CHECKING:
    # What __getattr__ gives, as type checkers can see it (it is hidden from
    # them below, so that a misspelt attribute is an error there too).
    from . import cupy as cupy
    from . import jax as jax
    from . import torch as torch

__version__ = "0.1.0"

__all__ = [
    "S2NN",
    "FusedKernelWarning",
    "Pullback",
    "__version__",
    "forward",
    "gradient",
    "origin",
    "s2nn",
    "vjp",
]

# s2nn_xp.S2NN becomes a JAX pytree as soon as JAX is imported, before or
# after this package.
_jax_pytree.register_when_jax_is_imported()
# The PyTorch adapter comes with PyTorch, for torch.compile (see _dispatch).
_dispatch.import_adapters_with_their_libraries()

# The adapter modules, as the backend registry names them.
_ADAPTERS = frozenset(b.adapter for b in _backends.BACKENDS.values() if b.adapter)


def _import_adapter(name: str) -> ModuleType:
    """Import a framework adapter on first access (``s2nn_xp.torch``, ...).

    Where it cannot be imported (its framework is not installed, or fails
    to import), an AttributeError that says why, the error as its cause: ``hasattr``,
    ``getattr`` with a default, ``inspect.getmembers`` and ``help()`` expect
    one from a module attribute (``import s2nn_xp.jax`` still raises the
    ImportError itself).
    """
    module = f"{__name__}.{name}"
    if module in _ADAPTERS:
        try:
            return importlib.import_module(module)
        except Exception as exc:  # not installed, or broken (jaxlib: RuntimeError)
            msg = f"{module} cannot be imported here: {exc!r}"
            raise AttributeError(msg) from exc
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


if not TYPE_CHECKING:
    __getattr__ = _import_adapter


# Each adapter's attribute name -> the top-level module of its framework.
_FRAMEWORK_OF_ADAPTER = {
    b.adapter.rpartition(".")[2]: b.module.partition(".")[0]
    for b in _backends.BACKENDS.values()
    if b.adapter
}


def __dir__() -> list[str]:
    """The public names, and the adapters whose framework is imported.

    Tab completion offers no imports. ``help()`` and ``inspect.getmembers``
    get every name listed: an adapter of a framework not imported would
    import it (``help(s2nn_xp)`` imported PyTorch and JAX, seconds, and
    listed CuPy's adapter where CuPy is not installed). The others are
    attributes all the same (``s2nn_xp.torch``, ``import s2nn_xp.torch``).
    """
    imported = [
        name
        for name, framework in _FRAMEWORK_OF_ADAPTER.items()
        if framework in sys.modules
    ]
    return sorted({*__all__, *imported})
