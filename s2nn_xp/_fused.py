"""What a fused kernel does when it cannot run: one warning, then the math.

The fused kernels (the Triton kernels of :mod:`s2nn_xp._triton` for CUDA
tensors, the CUDA kernels of :mod:`s2nn_xp.cupy`) are compiled on the user's
machine on first use, by a compiler and for a GPU that this project's tests
may never have met. Each adapter launches them through :func:`launched`: if
compiling or launching one raises, the adapter computes the same values with
the array-API math (:mod:`s2nn_xp._math`; more memory traffic, the same
results), and a :class:`FusedKernelWarning` says once which kernel failed, on
which device, and why. The failure is remembered for that kernel and device,
for the rest of the process: later calls go to the math at once, without a
second attempt or a second warning.

Some errors are not the kernel's, and the math could not serve either: they
are raised as they are, not remembered, with no warning. Running out of
memory (a :class:`MemoryError`, as CuPy's is; PyTorch's ``OutOfMemoryError``;
a driver's "out of memory"), since the math needs more memory, not less, and
the next call may have it. Any error while the device cannot run the math
(the caller's ``device_usable`` says so): while the stream captures a CUDA
graph (a first compile loads a module, which CUDA forbids there, and the
capture is lost whatever runs next; warm up before capturing), or once the
device holds an error of earlier work (an illegal address in another kernel,
which CUDA reports at the next call into the driver: often this launch). An
error that a launched kernel meets while it runs is reported later, at some
synchronisation, where no caller can tell it from its own work.

The warning is issued before the failure is remembered: where warnings are
errors (``-W error``, pytest's ``filterwarnings = error``), every call raises
it, not only the first; ``s2nn_xp.FusedKernelWarning`` filters it.

Examples
--------
>>> import warnings
>>> from s2nn_xp import _fused
>>> def broken_compiler():
...     raise RuntimeError("unsupported PTX version")
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     first = _fused.launched("example kernel", "GPU 0", broken_compiler)
...     again = _fused.launched("example kernel", "GPU 0", broken_compiler)
>>> first, again, len(caught)
(False, False, 1)
>>> print(caught[0].message)  # doctest: +ELLIPSIS
s2nn_xp: the fused example kernel failed on GPU 0 (RuntimeError: unsupported ...
>>> _fused.launched("example kernel", "GPU 1", lambda: None)  # another device
True
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable

__all__ = ["FusedKernelWarning", "launched", "stacklevel_of_the_user"]

_ISSUES = "https://github.com/s2nn-xp/s2nn_xp/issues"
_PACKAGE = __name__.partition(".")[0]
_LONGEST_CAUSE = 1000  # characters of the error kept; compiler logs run long

# (kernel, device) pairs that failed: they are not tried again.
_failed: set[tuple[str, str]] = set()


class FusedKernelWarning(RuntimeWarning):
    """A fused kernel failed to compile or launch; the array-API math serves.

    Issued once per kernel and device (at every call where warnings are
    errors: the kernel is tried again); the results are still correct.

    Examples
    --------
    Silenced (or kept from turning into errors under ``-W error``) as any
    warning category is:

    >>> import warnings
    >>> import s2nn_xp
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", s2nn_xp.FusedKernelWarning)
    ...     spikes = s2nn_xp.forward([0.5, -0.5])
    >>> spikes
    array([1., 0.])
    """


def stacklevel_of_the_user(libraries: tuple[str, ...] = (_PACKAGE,)) -> int:
    """The ``stacklevel`` that points a warning at the user's own call.

    The first frame outside the modules of ``libraries`` (this package, and
    a framework whose machinery runs between the user and the package, such
    as autograd); the outermost frame where every frame is theirs (autograd's
    backward on a GPU runs in a thread of its own).
    """
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None:
        module = frame.f_globals.get("__name__", "")
        if module.partition(".")[0] not in libraries:
            break
        level, frame = level + 1, frame.f_back
    return level


def launched(
    kernel: str,
    device: str,
    launch: Callable[[], object],
    *,
    framework: str = "",
    device_usable: Callable[[], bool] = lambda: True,
) -> bool:
    """Call ``launch`` (compile and launch ``kernel``) unless it failed before.

    Parameters
    ----------
    kernel : str
        What is launched, as the warning names it (``"Triton kernel
        _spike_kernel for torch.float16"``); one unit that compiles together.
    device : str
        Where (``"cuda:0"``): a kernel that fails on one GPU may run on another.
    launch : callable
        Compiles (on first use) and launches the kernel; allocations are the
        caller's, before it.
    framework : str, optional
        The library (``"torch"``) whose functions call the adapter: the
        warning points past them, at the user's line.
    device_usable : callable, optional
        Asked after a failure: whether the device can run the math now (no
        graph capture on the stream, no error of earlier work). Where it
        cannot, the error is raised as it is (see above).

    Returns
    -------
    bool
        True if the kernel ran. False if it failed on this device before
        (``launch`` is not called) or fails now (one
        :class:`FusedKernelWarning`); the caller then computes with the math.
    """
    key = (kernel, device)
    if key in _failed:
        return False
    try:
        launch()
    except Exception as exc:  # any compiler's or driver's error
        if _out_of_memory(exc) or not device_usable():
            raise
        msg = (
            f"s2nn_xp: the fused {kernel} failed on {device} ({_cause(exc)}); "
            "the array-API math computes the same values there instead, more "
            f"slowly, for the rest of this process. Please report this at {_ISSUES}"
        )
        libraries = (_PACKAGE, framework) if framework else (_PACKAGE,)
        level = stacklevel_of_the_user(libraries)
        warnings.warn(msg, FusedKernelWarning, stacklevel=level)
        _failed.add(key)  # after the warning: where it raises, it raises again
        return False
    return True


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc``, or an error it was raised from, says memory ran out.

    A MemoryError (CuPy's), PyTorch's OutOfMemoryError (a RuntimeError), or
    a driver's error in its own words: Triton's "Triton Error [CUDA]: out
    of memory", CUDA's CUDA_ERROR_OUT_OF_MEMORY, both RuntimeErrors (a
    compiler's message that mentions memory is not one of them).
    """
    for error in _chain(exc):
        if isinstance(error, MemoryError) or "OutOfMemory" in type(error).__name__:
            return True
        text = str(error)
        if isinstance(error, RuntimeError) and (
            "CUDA_ERROR_OUT_OF_MEMORY" in text or "[CUDA]: out of memory" in text
        ):
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors it was raised from, outermost first.

    ``raise ... from None`` ends the chain: the error it hides is no cause.
    """
    chain, seen = [exc], {id(exc)}
    while True:
        error = chain[-1]
        inner = error.__cause__
        if inner is None and not error.__suppress_context__:
            inner = error.__context__
        if inner is None or id(inner) in seen:  # a cycle, which Python allows
            return chain
        chain.append(inner)
        seen.add(id(inner))


def _cause(exc: BaseException) -> str:
    """``exc`` in a line: its type and message, and its root cause's.

    Triton's CompilationError for a failure inside a nested ``@triton.jit``
    function says only where, in its own message; why is in the exception
    it was raised from. A long message (a compiler's log, its error last)
    keeps its beginning and its end.
    """
    root = _chain(exc)[-1]
    parts = [f"{type(exc).__name__}: {exc}".strip()]
    if root is not exc:
        parts.append(f"caused by {type(root).__name__}: {root}".strip())
    cause = "; ".join(parts)
    if len(cause) > _LONGEST_CAUSE:
        half = _LONGEST_CAUSE // 2
        cause = f"{cause[:half]} [...] {cause[-half:]}"
    return cause
