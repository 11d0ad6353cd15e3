"""Fused Triton kernels for CUDA tensors: the forward and the backward in one pass each.

:mod:`s2nn_xp.torch` calls :func:`spike` and :func:`spike_vjp` for CUDA
tensors in eager mode where no autodiff system records the operations and the
parameters are Python numbers; everything else takes the pure torch path
(the array-API math of :mod:`s2nn_xp._math`), and so does all of
:func:`torch.compile`, whose Inductor fuses that path by itself.

These kernels write the S2NN formulas again, as a fused kernel must (as do
the CuPy, NumPy and eager PyTorch kernels, the only other places outside
``_math``); the tests check them against ``_math`` (also
on the CPU, through Triton's interpreter, ``TRITON_INTERPRET=1``). The
numerics follow ``_math``: both branch inputs are guarded before use (the
sigmoid branch sees ``min(x, 0)``, and ``-inf`` as the lowest float32, the
``x >= 0`` branch ``max(x, -0.5)``), the
sigmoid is ``e / (1 + e)`` with ``e = exp(alpha * min(x, 0)) <= 1``,
``(1 + e)**2`` is ``(e + 2) * e + 1`` (within 1.25 ulp; no multiply-add
is fused, see :data:`COMPILE_OPTIONS`), NaN input
gives NaN, and 16-bit inputs are computed in float32 and rounded once.
On a GPU, ``exp`` and ``log1p`` are libdevice's accurate versions and the
divisions are correctly rounded, not the fast approximations Triton uses by
default (``ex2.approx`` of ``z * log2(e)`` can be off by several ulp at
``|alpha * x| = 20``); the interpreter, which has no libdevice, uses NumPy's
``exp`` and a ``log1p`` from NumPy's ``log`` instead. float64 tensors take
the pure torch path (see :func:`launchable`).

Importing this module never fails: :data:`AVAILABLE` is False where Triton
is not installed, and the caller keeps the pure torch path. Nor does a call: a
kernel that fails to compile or launch on a GPU (these have not run on every
GPU and Triton version) returns None, and the caller computes the same values
with the pure torch path; one warning names the cause, and the kernel is not
tried again on that device for that dtype (see :mod:`s2nn_xp._fused`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import torch

from . import _fused

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton ships with CUDA builds of torch only
    triton = None
    tl = None
except Exception as exc:  # a broken install (two clashing triton packages)
    warnings.warn(
        f"s2nn_xp: Triton is installed but does not import ({type(exc).__name__}: "
        f"{exc}); the fused kernels are off, the array-API math serves",
        _fused.FusedKernelWarning,
        stacklevel=2,
    )
    triton = None
    tl = None

__all__ = ["AVAILABLE", "INTERPRETED", "launchable", "spike", "spike_vjp"]

AVAILABLE = triton is not None
"""Whether Triton imports, so that the kernels below exist."""

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"
"""Whether Triton runs kernels in its NumPy interpreter (CPU tensors)."""

_BLOCK = 1024
"""Elements per program: 8 per thread with 4 warps."""

COMPILE_OPTIONS: dict[str, Any] = {"num_warps": 4, "enable_fp_fusion": False}
"""How every kernel is compiled: 4 warps, and no multiply-add fused.

Triton has fused ``a * b + c`` into one ``fma`` by default, which 3.10 is
to change (3.9 warns of it at every first compile where no option is
given): rounded once where ``_math`` rounds twice, so ``(e + 2) * e + 1``
and ``log1p * beta + 0.5`` would change by up to an ulp with the version.
Fusion off gives ``_math``'s roundings on every version, as the CuPy
kernels' ``--fmad=false`` does; and no warning (where warnings are errors,
Triton's was raised at the launch, which made every call warn of a failed
kernel: with that warning raised too, every eager CUDA call failed).
"""

if AVAILABLE:
    try:
        from triton.language.extra import libdevice
    except ImportError:  # pragma: no cover - very old Triton
        from triton.language.extra.cuda import libdevice

    @triton.jit
    def _exp(z, use_libdevice: tl.constexpr):
        if use_libdevice:
            return libdevice.exp(z)
        else:
            return tl.exp(z)

    @triton.jit
    def _log1p(t, use_libdevice: tl.constexpr):
        if use_libdevice:
            return libdevice.log1p(t)
        else:
            # The interpreter has no libdevice: log1p(t) in float64 as
            # log(u) * t / (u - 1) with u = 1 + t, which corrects the rounding
            # of u (t itself where u rounds to 1). The guards keep NumPy from
            # meeting inf / inf or 0 / 0 in lanes that are not taken.
            wide = t.to(tl.float64)
            finite = wide < float("inf")
            safe = tl.where(finite, wide, 1.0)
            one_plus = safe + 1.0
            shift = one_plus - 1.0
            exact = shift == 0.0
            ratio = safe / tl.where(exact, 1.0, shift)
            result = tl.where(exact, safe, tl.log(one_plus) * ratio)
            return tl.where(finite, result, wide).to(t.dtype)

    @triton.jit
    def _sigmoid_exp(x, alpha, use_libdevice: tl.constexpr):
        """``exp(alpha * min(x, 0))``, ``x = -inf`` as the lowest float32.

        As ``_math``'s clip (at -1000 / alpha, within the dtype) takes it:
        for an ``alpha`` below 1000 over the largest float32 the sigmoid at
        ``-inf`` is that of ``alpha`` times the lowest, not 0.
        """
        guarded = tl.minimum(tl.maximum(x, -3.4028234663852886e38), 0.0)
        return _exp(guarded * alpha, use_libdevice)

    @triton.jit
    def _load_float32(pointer, offsets, mask):
        return tl.load(pointer + offsets, mask=mask, other=0.0).to(tl.float32)

    @triton.jit
    def _offsets(n, block: tl.constexpr):
        start = tl.program_id(0).to(tl.int64) * block
        offsets = start + tl.arange(0, block)
        return offsets, offsets < n

    @triton.jit
    def _spike_kernel(
        x_ptr,
        y_ptr,
        n,
        alpha,
        beta,
        epsilon,
        with_origin: tl.constexpr,
        use_libdevice: tl.constexpr,
        block: tl.constexpr,
    ):
        """Write forward(x), or origin(x) when `with_origin`, to y."""
        offsets, mask = _offsets(n, block)
        x = _load_float32(x_ptr, offsets, mask)
        if with_origin:
            e = _sigmoid_exp(x, alpha, use_libdevice)
            sigmoid = tl.div_rn(e, e + 1.0)
            tail = _log1p(tl.maximum(x, -0.5) + epsilon, use_libdevice) * beta + 0.5
            y = tl.where(x >= 0.0, tail, sigmoid)
        else:
            y = tl.where(x >= 0.0, 1.0, 0.0).to(x.dtype)
        y = tl.where(x != x, x, y)  # NaN stays NaN
        tl.store(y_ptr + offsets, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _spike_vjp_kernel(
        cotangent_ptr,
        x_ptr,
        out_ptr,
        n,
        alpha,
        beta,
        with_cotangent: tl.constexpr,
        use_libdevice: tl.constexpr,
        block: tl.constexpr,
    ):
        """Write cotangent * gradient(x) to out (gradient(x) without a cotangent)."""
        offsets, mask = _offsets(n, block)
        x = _load_float32(x_ptr, offsets, mask)
        e = _sigmoid_exp(x, alpha, use_libdevice)
        bell = tl.div_rn(e * alpha, (e + 2.0) * e + 1.0)  # (1 + e)**2
        tail = tl.div_rn(beta + tl.zeros_like(x), tl.maximum(x, -0.5) + 1.0)
        grad = tl.where(x >= 0.0, tail, bell)
        grad = tl.where(x != x, x, grad)  # NaN stays NaN
        if with_cotangent:
            result = grad * _load_float32(cotangent_ptr, offsets, mask)
        else:
            result = grad
        tl.store(out_ptr + offsets, result.to(out_ptr.dtype.element_ty), mask=mask)


def _dense(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself where its elements fill its memory in some order, else a copy.

    The kernels run over memory, flat; a result made with
    :func:`torch.empty_like` has the same layout (row-major, channels-last).
    """
    x = _readable(x)
    if (
        x.is_contiguous()
        or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last))
        or (x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d))
    ):
        return x
    return x.contiguous()


def _readable(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` with its values in its memory, where the kernels read them.

    A view with the negative bit (``-t`` in ``t``'s memory:
    ``z.conj().imag``) is copied with its values, and a zero tensor (no
    memory, a pointer of 0: torch's in some derivative formulas) made zeros.
    """
    if tensor._is_zerotensor():
        return torch.zeros(tensor.shape, dtype=tensor.dtype, device=tensor.device)
    return tensor.resolve_neg()


def launchable(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x``: float16, bfloat16 and float32 tensors.

    Triton passes Python-float parameters as float32 scalars, as the pure
    torch path rounds them for these dtypes; float64 tensors, which would need
    float64 parameters, take the pure torch path.
    """
    return x.dtype in (torch.float16, torch.bfloat16, torch.float32)


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, _BLOCK),)


def _device_guard(x: torch.Tensor) -> Any:
    """Launch on ``x``'s GPU (Triton uses the current device and stream)."""
    if x.device.type == "cuda":
        return torch.cuda.device(x.device)
    return contextlib.nullcontext()  # the interpreter: CPU tensors


def _launched(
    kernel: Any, arrays: tuple[torch.Tensor, ...], *parameters: float, **constants: Any
) -> bool:
    """Run ``kernel`` over the elements of ``arrays`` (the output last).

    False where it cannot be compiled or launched on the output's device:
    :func:`s2nn_xp._fused.launched` has warned once, and the caller computes
    with the math.
    """
    out = arrays[-1]
    n = out.numel()
    if not n:
        return True

    def launch() -> None:
        with _device_guard(out):
            kernel[_grid(n)](
                *arrays,
                n,
                *parameters,
                **constants,
                use_libdevice=not INTERPRETED,
                block=_BLOCK,
                **COMPILE_OPTIONS,
            )

    name = f"Triton kernel {kernel.__name__} for {out.dtype}"
    return _fused.launched(
        name,
        str(out.device),
        launch,
        framework="torch",
        device_usable=lambda: _device_usable(out.device),
    )


def _device_usable(device: torch.device) -> bool:
    """Whether the math can run on ``device`` after a kernel failed there.

    Not while its current stream captures a CUDA graph, nor once the device
    holds an error of earlier work, which the first call into CUDA here
    reports (the capture query, or synchronising the stream); any error of
    this probe means no (see :mod:`s2nn_xp._fused`). The stream, not the
    device, is synchronised: that would be invalid while another stream
    captures.
    """
    if device.type != "cuda":
        return True  # the interpreter: CPU tensors
    try:
        with torch.cuda.device(device):
            if torch.cuda.is_current_stream_capturing():
                return False
            torch.cuda.current_stream(device).synchronize()
    except Exception:  # CUDA's error of earlier work, whichever type
        return False
    return True


def spike(
    x: torch.Tensor, alpha: float, beta: float, epsilon: float, *, origin: bool
) -> torch.Tensor | None:
    """``forward(x)`` (or ``origin(x, ...)``) in one kernel, in ``x``'s dtype.

    Parameters
    ----------
    x : torch.Tensor
        A real floating CUDA tensor (a CPU tensor under the interpreter).
    alpha, beta, epsilon : float
        Checked Python-number parameters.
    origin : bool
        Compute the origin function instead of the spike.

    Returns
    -------
    torch.Tensor or None
        A new tensor of ``x``'s shape, dtype and (dense) layout; None where
        the kernel cannot be compiled or launched on ``x``'s device (warned
        once), for the caller to compute with the math.
    """
    x = _dense(x)
    y = torch.empty_like(x)
    if _launched(_spike_kernel, (x, y), alpha, beta, epsilon, with_origin=origin):
        return y
    return None


def spike_vjp(
    cotangent: torch.Tensor | None, x: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor | None:
    """``cotangent * gradient(x, alpha, beta)`` in one kernel, in ``x``'s dtype.

    Parameters
    ----------
    cotangent : torch.Tensor or None
        The incoming gradient; it must broadcast to ``x``. None: the gradient
        itself (``s2nn_xp.gradient``), no cotangent read.
    x : torch.Tensor
        The saved input (a real floating CUDA tensor).
    alpha, beta : float
        Checked Python-number parameters.

    Returns
    -------
    torch.Tensor or None
        A new tensor of ``x``'s shape, dtype and (dense) layout; None where
        the kernel cannot run, as for :func:`spike`.
    """
    x = _dense(x)
    if cotangent is None:
        read = x  # a pointer for the argument, never read
    else:
        read = _readable(cotangent)
        if read.shape != x.shape or read.stride() != x.stride():
            # An expanded or differently laid out cotangent (``y.sum()`` gives
            # a broadcast one): copy it into x's layout so that both run flat.
            read = torch.empty_like(x, dtype=read.dtype).copy_(read)
    out = torch.empty_like(x)
    with_cotangent = cotangent is not None
    if _launched(
        _spike_vjp_kernel, (read, x, out), alpha, beta, with_cotangent=with_cotangent
    ):
        return out
    return None
