"""What each array backend is and can do: the registry behind the CLI and docs.

A :class:`Backend` knows how to import its library lazily, tell whether it
has a device here, move NumPy data in and out, wait for its device, compile
functions and take the autodiff gradient of :func:`s2nn_xp.s2nn` the way
users of that library do. Its ``capabilities`` are the facts the
documentation's backend table prints; the tests check them against the code.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "Backend", "available", "get"]


@dataclass(frozen=True)
class Backend:
    """One array library as the CLI and the docs see it.

    Attributes
    ----------
    name
        The backend's name, as in the nox sessions and ``S2NN_XP_BACKENDS``.
    module
        The module users take arrays from (``jax.numpy``, ``torch``, ...).
    autodiff
        How ``s2nn_xp.s2nn`` carries the surrogate gradient there.
    transforms
        Autodiff transforms supported with the surrogate derivatives.
    dtypes
        Floating dtypes supported.
    fused
        Where fused kernels run, if anywhere.
    adapter
        The package module that attaches the backend, if any.
    device_kinds
        The kinds of device its arrays can live on (what :meth:`devices`
        lists here is checked against them).
    """

    name: str
    module: str
    autodiff: str
    transforms: tuple[str, ...]
    dtypes: tuple[str, ...]
    fused: str = "no (the array-API math)"
    adapter: str | None = None
    device_kinds: tuple[str, ...] = ("cpu",)
    _hooks: dict[str, Callable[..., Any]] = field(default_factory=dict, repr=False)

    def load(self) -> ModuleType:
        """Import and return the backend's module (ImportError if absent)."""
        return importlib.import_module(self.module)

    def is_installed(self) -> bool:
        """Whether the backend's module imports."""
        try:
            self.load()
        except ImportError:
            return False
        return True

    def has_device(self) -> bool:
        """Whether the library finds a device to run on here.

        False where it imports but has no device, or fails to tell (as for
        CuPy on a machine without a usable CUDA GPU); True for the libraries
        that run on the CPU.
        """
        try:
            return bool(self._hooks.get("has_device", lambda: True)())
        except Exception:  # a runtime that cannot even count its devices
            return False

    def version(self) -> str:
        """The installed version of the backend's library."""
        top_level = importlib.import_module(self.module.partition(".")[0])
        return str(getattr(top_level, "__version__", "unknown"))

    def dispatched(self) -> tuple[str, ...]:
        """The public functions the adapter implements for this backend.

        Read from the adapter's source, so it works where the library itself
        is not installed (as for CuPy without a GPU).
        """
        if self.adapter is None:
            return ()
        spec = importlib.util.find_spec(self.adapter)
        tree = ast.parse(Path(spec.origin).read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                getattr(target, "id", None) == "DISPATCHED" for target in node.targets
            ):
                return tuple(ast.literal_eval(node.value))
        msg = f"{self.adapter} defines no DISPATCHED tuple"
        raise LookupError(msg)

    def devices(self) -> list[str]:
        """The devices arrays of this backend can live on here."""
        return self._hooks.get("devices", lambda: ["cpu"])()

    def asarray(self, values: np.ndarray, dtype: str | None = None) -> Any:
        """A backend array holding `values` (optionally cast to `dtype`)."""
        if dtype is not None:
            values = values.astype(dtype)
        return self._hooks.get("asarray", self.load().asarray)(values)

    def to_numpy(self, array: Any) -> np.ndarray:
        """A NumPy copy of a backend array (computing lazy arrays)."""
        return self._hooks.get("to_numpy", np.asarray)(array)

    def synchronize(self, result: Any) -> None:
        """Wait until `result` (an array or tuple of arrays) is computed."""
        self._hooks.get("synchronize", lambda r: None)(result)

    def autodiff_gradient(self, x: Any, alpha: float, beta: float) -> Any:
        """Gradient of ``sum(s2nn(x))`` with the library's own autodiff."""
        return self._hooks.get("autodiff_gradient", _pullback_gradient)(x, alpha, beta)

    def forward_and_backward(self) -> Callable[[Any, Any], Any]:
        """``(x, cotangent) -> (spike, input gradient)``, jitted for JAX."""
        return self._hooks.get("forward_and_backward", _vjp_round_trip)()

    def jit(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` compiled the way the library's users run it.

        ``jax.jit`` for JAX; `fn` itself for the libraries that run eagerly.
        """
        return self._hooks.get("jit", lambda f: f)(fn)


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


# --- per-library hooks --------------------------------------------------------


def _strict_to_numpy(array: Any) -> np.ndarray:
    return np.from_dlpack(array)


def _dask_asarray(values: np.ndarray) -> Any:
    import dask.array as da

    return da.from_array(values, chunks=max(1, values.size // 4 or 1))


def _dask_to_numpy(array: Any) -> np.ndarray:
    return np.asarray(array.compute())


def _dask_synchronize(result: Any) -> None:
    import dask

    dask.compute(result)


def _jax_asarray(values: np.ndarray) -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 data stays float64
    return jax.numpy.asarray(values)


def _jax_devices() -> list[str]:
    import jax

    return [str(d) for d in jax.devices()]


def _jax_synchronize(result: Any) -> None:
    import jax

    jax.block_until_ready(result)


def _jax_jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    import jax

    return jax.jit(fn)


def _jax_gradient(x: Any, alpha: float, beta: float) -> Any:
    import jax

    import s2nn_xp

    return jax.grad(lambda v: s2nn_xp.s2nn(v, alpha, beta).sum())(x)


def _jax_forward_and_backward() -> Callable[[Any, Any], Any]:
    import jax

    import s2nn_xp

    @jax.jit
    def round_trip(x: Any, cotangent: Any) -> Any:
        spike, pullback = jax.vjp(s2nn_xp.s2nn, x)
        return spike, pullback(cotangent)[0]

    return round_trip


def _torch_devices() -> list[str]:
    import torch

    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu", *gpus]


def _torch_asarray(values: np.ndarray) -> Any:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.asarray(values, device=device)


def _torch_to_numpy(array: Any) -> np.ndarray:
    import torch

    array = array.detach()
    if array.dtype == torch.bfloat16:
        array = array.float()
    return array.cpu().numpy()


def _torch_synchronize(result: Any) -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _torch_gradient(x: Any, alpha: float, beta: float) -> Any:
    import s2nn_xp

    x = x.detach().requires_grad_(True)
    s2nn_xp.s2nn(x, alpha, beta).sum().backward()
    return x.grad


def _torch_forward_and_backward() -> Callable[[Any, Any], Any]:
    import torch

    import s2nn_xp

    def round_trip(x: Any, cotangent: Any) -> Any:
        x = x.detach().requires_grad_(True)
        spike = s2nn_xp.s2nn(x)
        (grad,) = torch.autograd.grad(spike, x, cotangent)
        return spike, grad

    return round_trip


def _cupy_has_device() -> bool:
    import cupy

    return cupy.cuda.runtime.getDeviceCount() > 0


def _cupy_devices() -> list[str]:
    import cupy

    return [f"cuda:{i}" for i in range(cupy.cuda.runtime.getDeviceCount())]


def _cupy_to_numpy(array: Any) -> np.ndarray:
    return array.get()


def _cupy_synchronize(result: Any) -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


_NUMPY_DTYPES = ("float16", "float32", "float64")
_PULLBACK = "s2nn_xp.vjp (explicit pullback)"

BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend("numpy", "numpy", _PULLBACK, (), _NUMPY_DTYPES),
        Backend(
            "array_api_strict",
            "array_api_strict",
            _PULLBACK,
            (),
            ("float32", "float64"),
            _hooks={"to_numpy": _strict_to_numpy},
        ),
        Backend(
            "dask",
            "dask.array",
            _PULLBACK,
            (),
            _NUMPY_DTYPES,
            _hooks={
                "asarray": _dask_asarray,
                "to_numpy": _dask_to_numpy,
                "synchronize": _dask_synchronize,
            },
        ),
        Backend(
            "jax",
            "jax.numpy",
            "jax.custom_jvp",
            (
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
            ("float16", "bfloat16", "float32", "float64"),
            "no (XLA fuses the math under jit)",
            "s2nn_xp.jax",
            ("cpu", "gpu", "tpu"),
            _hooks={
                "devices": _jax_devices,
                "asarray": _jax_asarray,
                "synchronize": _jax_synchronize,
                "autodiff_gradient": _jax_gradient,
                "forward_and_backward": _jax_forward_and_backward,
                "jit": _jax_jit,
            },
        ),
        Backend(
            "torch",
            "torch",
            "torch.autograd.Function",
            (
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
            ("float16", "bfloat16", "float32", "float64"),
            "CUDA tensors in eager mode (Triton)",
            "s2nn_xp.torch",
            ("cpu", "cuda"),
            _hooks={
                "devices": _torch_devices,
                "asarray": _torch_asarray,
                "to_numpy": _torch_to_numpy,
                "synchronize": _torch_synchronize,
                "autodiff_gradient": _torch_gradient,
                "forward_and_backward": _torch_forward_and_backward,
            },
        ),
        Backend(
            "cupy",
            "cupy",
            _PULLBACK,
            (),
            _NUMPY_DTYPES,
            "always (CuPy kernels)",
            "s2nn_xp.cupy",
            ("cuda",),
            _hooks={
                "has_device": _cupy_has_device,
                "devices": _cupy_devices,
                "to_numpy": _cupy_to_numpy,
                "synchronize": _cupy_synchronize,
            },
        ),
    )
}


def get(name: str) -> Backend:
    """The backend called `name`; ValueError naming the known ones otherwise."""
    try:
        return BACKENDS[name]
    except KeyError:
        msg = f"unknown backend {name!r}; known: {', '.join(BACKENDS)}"
        raise ValueError(msg) from None


def available() -> list[Backend]:
    """The backends whose library imports here and finds a device to run on."""
    return [b for b in BACKENDS.values() if b.is_installed() and b.has_device()]
