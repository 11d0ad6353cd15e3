"""Fused Triton kernels for CUDA tensors: the forward and the backward in one pass each.

:mod:`s2nn_xp.torch` calls them for CUDA tensors in eager mode where no
autodiff system records the operations: :func:`spike` for the spike (any
parameters: it reads none) and the origin function (Python-number
parameters), :func:`spike_vjp` for the backward with Python-number
parameters, and :func:`cotangents` for the backward with tensor parameters
per neuron or of one element (the gradient in ``x`` and the learning
parameters' terms, summed over the batch). Everything else takes the eager
or pure torch path (the array-API math of :mod:`s2nn_xp._math`), and so does
all of :func:`torch.compile`, whose Inductor fuses that path by itself.

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

A kernel is compiled by Triton at its first launch, and launched directly
after that, for arguments that Triton would compile no other way
(:data:`DIRECT_LAUNCH`): Triton's own launch binds and specialises every
argument again, about 10 us of host time on the project's CPU against 2-4 us
for a call of the compiled kernel, which counts at small layers.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any

import torch

from . import _fused, _torch_eager

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

__all__ = ["AVAILABLE", "INTERPRETED", "cotangents", "launchable", "spike", "spike_vjp"]

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
    def _gradient(x, e, denominator, alpha, beta):
        """``gradient(x)`` from ``e = exp(alpha * min(x, 0))`` and ``(1 + e)**2``.

        One division, of the branch that ``x`` selects: a correctly rounded
        quotient depends on its operands alone, so selecting the operands
        and dividing gives, bit for bit, the quotient that dividing in both
        branches and selecting gave, at half the divisions (each one a
        dozen instructions and a slow path).
        """
        right = x >= 0.0
        numerator = tl.where(right, beta, e * alpha)
        shifted = tl.maximum(x, -0.5) + 1.0  # the x >= 0 branch's x + 1
        return tl.div_rn(numerator, tl.where(right, shifted, denominator))

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
        grad = _gradient(x, e, (e + 2.0) * e + 1.0, alpha, beta)  # (1 + e)**2
        grad = tl.where(x != x, x, grad)  # NaN stays NaN
        if with_cotangent:
            result = grad * _load_float32(cotangent_ptr, offsets, mask)
        else:
            result = grad
        tl.store(out_ptr + offsets, result.to(out_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _parameter(pointer, value, column, mask, period, is_tensor: tl.constexpr):
        """A parameter's value for each column: its tensor's, or the number."""
        if is_tensor:
            return tl.load(pointer + column % period, mask=mask, other=1.0).to(
                tl.float32
            )
        else:
            return tl.zeros(column.shape, tl.float32) + value

    @triton.jit
    def _cotangents_tile(
        row,
        column,
        column_mask,
        rows,
        columns,
        cotangent_ptr,
        x_ptr,
        grad_ptr,
        a,
        b,
        eps,
        with_x: tl.constexpr,
        with_alpha: tl.constexpr,
        with_beta: tl.constexpr,
        use_libdevice: tl.constexpr,
    ):
        """One tile of :func:`_cotangents_kernel`.

        Writes x's cotangent; returns the column sums of the parameters'
        terms (0 where not asked for).
        """
        mask = (row < rows)[:, None] & column_mask[None, :]
        offsets = row[:, None] * columns + column[None, :]
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(cotangent_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        left = tl.minimum(tl.maximum(x, -3.4028234663852886e38), 0.0)
        e = _exp(left * a, use_libdevice)
        denominator = (e + 2.0) * e + 1.0  # (1 + e)**2
        below = x < 0.0
        nan = x != x
        if with_x:
            grad = tl.where(nan, x, _gradient(x, e, denominator, a, b)) * g
            tl.store(grad_ptr + offsets, grad.to(grad_ptr.dtype.element_ty), mask=mask)
        alpha_part = tl.zeros(column.shape, tl.float32)
        beta_part = tl.zeros(column.shape, tl.float32)
        if with_alpha:
            # x s (1 - s) where x < 0, else 0; NaN stays NaN
            d_alpha = tl.where(below, tl.div_rn(left * e, denominator), 0.0)
            d_alpha = tl.where(nan, x, d_alpha) * g
            alpha_part = tl.sum(tl.where(mask, d_alpha, 0.0), axis=0)
        if with_beta:
            # log1p(x + epsilon) where x >= 0, else 0; NaN stays NaN
            log = _log1p(tl.maximum(x, -0.5) + eps, use_libdevice)
            d_beta = tl.where(nan, x, tl.where(below, 0.0, log)) * g
            beta_part = tl.sum(tl.where(mask, d_beta, 0.0), axis=0)
        return alpha_part, beta_part

    @triton.jit
    def _cotangents_kernel(
        cotangent_ptr,
        x_ptr,
        grad_ptr,
        alpha_sums_ptr,
        beta_sums_ptr,
        alpha_ptr,
        beta_ptr,
        epsilon_ptr,
        alpha,
        beta,
        epsilon,
        alpha_period,
        beta_period,
        epsilon_period,
        rows,
        columns,
        rows_per_program,
        alpha_is_tensor: tl.constexpr,
        beta_is_tensor: tl.constexpr,
        epsilon_is_tensor: tl.constexpr,
        with_x: tl.constexpr,
        with_alpha: tl.constexpr,
        with_beta: tl.constexpr,
        use_libdevice: tl.constexpr,
        block_rows: tl.constexpr,
        block_columns: tl.constexpr,
    ):
        """Cotangents of x, alpha and beta from one pass over x as rows x columns.

        A tensor parameter repeats every ``period`` columns (it is aligned
        with x's last axes). Writes ``cotangent * gradient`` to grad and, for
        each row block of programs, the column sums of ``cotangent * d origin
        / d alpha`` (``beta``) to ``alpha_sums`` (``beta_sums``), a row per
        program along axis 1.
        """
        column = tl.program_id(0) * block_columns + tl.arange(0, block_columns)
        column_mask = column < columns
        a = _parameter(
            alpha_ptr, alpha, column, column_mask, alpha_period, alpha_is_tensor
        )[None, :]
        b = _parameter(beta_ptr, beta, column, column_mask, beta_period, beta_is_tensor)
        b = b[None, :]
        eps = _parameter(
            epsilon_ptr, epsilon, column, column_mask, epsilon_period, epsilon_is_tensor
        )[None, :]
        alpha_sum = tl.zeros([block_columns], tl.float32)
        beta_sum = tl.zeros([block_columns], tl.float32)
        first = tl.program_id(1).to(tl.int64) * rows_per_program
        if use_libdevice:  # compiled: the program's row blocks in turn
            for start in range(0, rows_per_program, block_rows):
                alpha_part, beta_part = _cotangents_tile(
                    first + start + tl.arange(0, block_rows),
                    column,
                    column_mask,
                    rows,
                    columns,
                    cotangent_ptr,
                    x_ptr,
                    grad_ptr,
                    a,
                    b,
                    eps,
                    with_x,
                    with_alpha,
                    with_beta,
                    use_libdevice,
                )
                alpha_sum += alpha_part
                beta_sum += beta_part
        else:
            # The interpreter: one row block a program (the host makes
            # rows_per_program block_rows). Triton 3.6's takes no bound of a
            # loop but literals: it makes a tensor of every other value, a
            # 1-element array, of which NumPy 2 makes no int.
            alpha_sum, beta_sum = _cotangents_tile(
                first + tl.arange(0, block_rows),
                column,
                column_mask,
                rows,
                columns,
                cotangent_ptr,
                x_ptr,
                grad_ptr,
                a,
                b,
                eps,
                with_x,
                with_alpha,
                with_beta,
                use_libdevice,
            )
        sums = tl.program_id(1).to(tl.int64) * columns + column
        if with_alpha:
            tl.store(alpha_sums_ptr + sums, alpha_sum, mask=column_mask)
        if with_beta:
            tl.store(beta_sums_ptr + sums, beta_sum, mask=column_mask)


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


def _ceil_div(numerator: int, denominator: int) -> int:
    """``triton.cdiv`` for Python ints on the host.

    Triton's (a function that kernels may call too) cost about 2.7 us a call
    on the project's CPU, a hundred times the integer division.
    """
    return -(-numerator // denominator)


def _next_power_of_2(n: int) -> int:
    """``triton.next_power_of_2`` of a positive int, as :func:`_ceil_div`."""
    return 1 << (n - 1).bit_length()


def _grid(n: int) -> tuple[int]:
    return (_ceil_div(n, _BLOCK),)


def _device_guard(x: torch.Tensor) -> Any:
    """Launch on ``x``'s GPU (Triton uses the current device and stream).

    No guard where it is the current device already: entering one cost
    about 20 us a launch on an H200's host, a tenth of a call at 2^16.
    """
    if x.is_cuda and x.get_device() != torch.cuda.current_device():
        return torch.cuda.device(x.device)
    return _NO_GUARD  # the current device, or the interpreter


_NO_GUARD = contextlib.nullcontext()  # stateless: one serves every launch


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
    return _run(
        kernel, out, _grid(n), (*arrays, n, *parameters), {**constants, "block": _BLOCK}
    )


def _run(
    kernel: Any,
    out: torch.Tensor,
    grid: tuple[int, ...],
    arguments: tuple[Any, ...],
    constants: dict[str, Any],
) -> bool:
    """Launch ``kernel`` on ``grid`` on ``out``'s device, as :func:`_launched` says."""
    constexprs = {**constants, "use_libdevice": not INTERPRETED}

    def launch() -> None:
        with _device_guard(out):
            key = _specialisation(kernel, out, arguments, constexprs)
            cached = _compiled.get(key) if key is not None else None
            if cached is not None and not kernel.pre_run_hooks:
                compiled, constexpr_values = cached
                compiled[(*grid, 1, 1)[:3]](*arguments, *constexpr_values)
                return
            launched = kernel[grid](*arguments, **constexprs, **COMPILE_OPTIONS)
            _remember(kernel, key, launched, len(arguments), constexprs)

    name = f"Triton kernel {kernel.__name__} for {out.dtype}"
    return _fused.launched(
        name,
        str(out.device),
        launch,
        framework="torch",
        device_usable=lambda: _device_usable(out.device),
    )


# Triton's own launch (``kernel[grid](...)``, ``JITFunction.run``) binds and
# specialises every argument, and builds its cache key, at every launch: about
# 10 us of host time a launch on the project's CPU, where a call of the
# compiled kernel (``CompiledKernel[grid](...)``, as Triton's maintainers
# advise for launch-bound code) takes 2-4 us. So each kernel compiled by a
# first launch is kept under a key at least as fine as Triton's
# specialisation (:func:`_specialisation`), and later launches of the same
# key call it directly. Only for the Triton versions whose calling convention
# the tests check (every parameter, constexprs included, in the signature's
# order); any other version launches through Triton each time.
_DIRECT_LAUNCH_VERSIONS = ("3.6.", "3.9.")
DIRECT_LAUNCH = (
    AVAILABLE
    and not INTERPRETED
    and triton.__version__.startswith(_DIRECT_LAUNCH_VERSIONS)
)
"""Whether a kernel compiled before is launched without ``JITFunction.run``."""

# Keys kept: kernels x dtypes x alignments x the ints' classes x the
# learnable kernel's blocks x devices; later ones launch through Triton.
_MOST_COMPILED = 256
_compiled: dict[tuple[Any, ...], tuple[Any, tuple[Any, ...]]] = {}


def _specialisation(
    kernel: Any,
    out: torch.Tensor,
    arguments: tuple[Any, ...],
    constexprs: dict[str, Any],
) -> tuple[Any, ...] | None:
    """The compiled kernel's key: None where launches go through Triton.

    Triton compiles a kernel anew for each of these (its
    ``native_specialize_impl``; the tests compare): a tensor's dtype and
    whether its address is a multiple of 16 bytes; an int's type (32 or 64
    bits), whether it is a multiple of 16, whether it is 1 (then a
    constant); the constexprs; the options (``COMPILE_OPTIONS``, and the
    settings Triton's launch reads: debug, instrumentation, 3.9's
    floating-point sanitizer); the device. A float is an ``fp32`` whatever
    its value. None (Triton's launch) while a stages-inspection hook is set,
    whose pipeline 3.9 keys its kernels by.
    """
    if not DIRECT_LAUNCH:
        return None
    runtime, compilation = triton.knobs.runtime, triton.knobs.compilation
    if runtime.add_stages_inspection_hook is not None:
        return None  # 3.9 keys its kernels by the hook's pipeline too
    key: list[Any] = [
        id(kernel),  # a module's kernel, alive for good (its own hash takes a lock)
        out.get_device(),
        *constexprs.items(),
        *COMPILE_OPTIONS.items(),
        # the settings Triton's launch adds to the options (3.9: the last)
        runtime.debug,
        compilation.instrumentation_mode,
        getattr(compilation, "fpsan_homomorphic_casts", None),
    ]
    for argument in arguments:
        kind = type(argument)
        if kind is float:
            key.append(float)
        elif kind is int:
            key.append(
                (
                    argument == 1,
                    argument % 16 == 0,
                    -(2**31) <= argument < 2**31,
                    -(2**63) <= argument < 2**63,
                )
            )
        elif isinstance(argument, torch.Tensor):
            key.append((argument.dtype, argument.data_ptr() % 16 == 0))
        else:
            return None  # of a kind the kernels are not given (None, a bool)
    return tuple(key)


def _remember(
    kernel: Any,
    key: tuple[Any, ...] | None,
    launched: Any,
    positional: int,
    constexprs: dict[str, Any],
) -> None:
    """Keep the kernel that Triton compiled and launched, for ``key``."""
    if key is None or len(_compiled) >= _MOST_COMPILED:
        return
    if not isinstance(launched, triton.compiler.CompiledKernel):
        return  # an asynchronous compile, or an unknown Triton: no shortcut
    names = kernel.arg_names[positional:]
    if sorted(names) != sorted(constexprs):
        return  # a default or a keyword the call left to Triton
    _compiled[key] = (launched, tuple(constexprs[name] for name in names))


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


# Programs along the rows at most, so that the column sums each leaves are few
# (summed by torch after the kernel) while the GPU still has work for every
# multiprocessor where the columns alone give few programs.
_ROW_PROGRAMS = 1024
_BLOCK_COLUMNS = 128


def _period(x: torch.Tensor, parameter: float | torch.Tensor) -> int | None:
    """Columns after which a tensor parameter repeats over ``x``, flat; else None.

    1 for a number or a tensor of one element; the parameter's size where
    it is a dense tensor whose shape, leading 1s aside, is that of ``x``'s
    last axes (per neuron); None for any other layout (the caller then
    computes with the eager kernel).
    """
    if not isinstance(parameter, torch.Tensor):
        return 1
    if parameter.device != x.device:  # a CPU 0-d tensor, which torch's ops take
        return None
    if parameter.numel() == 1:
        return 1
    if parameter.numel() >= 2**31:  # the kernel's columns are int32
        return None
    shape = list(parameter.shape)
    while shape and shape[0] == 1:
        del shape[0]
    if (
        len(shape) > x.dim()
        or tuple(x.shape[x.dim() - len(shape) :]) != tuple(shape)
        or not parameter.is_contiguous()
    ):
        return None
    return parameter.numel()


def cotangents(
    cotangent: torch.Tensor,
    x: torch.Tensor,
    alpha: float | torch.Tensor,
    beta: float | torch.Tensor,
    epsilon: float | torch.Tensor,
    *,
    with_x: bool,
    with_alpha: bool,
    with_beta: bool,
) -> dict[str, torch.Tensor | None] | None:
    """The cotangents of ``x``, ``alpha`` and ``beta`` in one kernel.

    ``cotangent * gradient(x)`` in ``x``'s dtype, and ``cotangent * d
    origin / d alpha`` (``beta``) summed to the parameter's shape, in its
    dtype, each where asked for (else None); the values of
    ``_math.partials``, the sums in float32 in another order than torch's.

    Parameters
    ----------
    cotangent : torch.Tensor
        The incoming gradient, of ``x``'s shape.
    x : torch.Tensor
        The saved input: a float16, bfloat16 or float32 CUDA tensor (a CPU
        tensor under the interpreter).
    alpha, beta, epsilon : float or torch.Tensor
        Checked parameters: numbers, or tensors aligned with ``x``'s last
        axes (per neuron) or of one element.
    with_x, with_alpha, with_beta : bool
        Which cotangents to compute (a parameter's only where it is a tensor).

    Returns
    -------
    dict or None
        ``{"x": ..., "alpha": ..., "beta": ...}``; None where a parameter's
        layout is not one the kernel reads, ``x`` is empty, or the kernel
        cannot run (warned once, as for :func:`spike`): the caller computes
        with the eager kernel.
    """
    found = [_period(x, value) for value in (alpha, beta, epsilon)]
    if None in found or not x.numel() or cotangent.shape != x.shape:
        return None
    periods = [period for period in found if period is not None]
    x = _readable(x).contiguous()
    cotangent = _readable(cotangent).contiguous()
    columns = max(periods)
    rows = x.numel() // columns
    block_columns = min(_BLOCK_COLUMNS, _next_power_of_2(columns))
    block_rows = min(max(_BLOCK // block_columns, 1), _next_power_of_2(rows))
    column_programs = _ceil_div(columns, block_columns)
    row_blocks = _ceil_div(rows, block_rows)
    row_programs = min(row_blocks, max(1, _ROW_PROGRAMS // column_programs))
    if INTERPRETED:  # one row block a program (see the kernel)
        row_programs = row_blocks
    rows_per_program = _ceil_div(row_blocks, row_programs) * block_rows
    row_programs = _ceil_div(rows, rows_per_program)
    grad = torch.empty_like(x) if with_x else x  # x: a pointer, never written

    def sums(wanted: bool) -> torch.Tensor:
        if not wanted:
            return x  # a pointer, never written
        return torch.empty(
            (row_programs, columns), dtype=torch.float32, device=x.device
        )

    alpha_sums, beta_sums = sums(with_alpha), sums(with_beta)
    tensors = [
        _readable(v) if isinstance(v, torch.Tensor) else x
        for v in (alpha, beta, epsilon)
    ]
    numbers = [
        0.0 if isinstance(v, torch.Tensor) else v for v in (alpha, beta, epsilon)
    ]
    launched = _run(
        _cotangents_kernel,
        x,
        (column_programs, row_programs),
        (
            cotangent,
            x,
            grad,
            alpha_sums,
            beta_sums,
            *tensors,
            *numbers,
            *periods,
            rows,
            columns,
            rows_per_program,
        ),
        {
            "alpha_is_tensor": isinstance(alpha, torch.Tensor),
            "beta_is_tensor": isinstance(beta, torch.Tensor),
            "epsilon_is_tensor": isinstance(epsilon, torch.Tensor),
            "with_x": with_x,
            "with_alpha": with_alpha,
            "with_beta": with_beta,
            "block_rows": block_rows,
            "block_columns": block_columns,
        },
    )
    if not launched:
        return None

    def reduced(
        column_sums: torch.Tensor, parameter: float | torch.Tensor, period: int
    ) -> torch.Tensor:
        assert isinstance(parameter, torch.Tensor)  # asked for: a tensor
        # One program along the rows (a large batch) left the sums
        # themselves: no reduction to launch; nor a view, nor a cast, where
        # the sums have the parameter's shape and dtype already (together
        # about 18 us of the host's on the project's CPU).
        total = column_sums if row_programs == 1 else column_sums.sum(0)
        if period != columns:
            total = total.view(-1, period).sum(0)
        if total.shape != parameter.shape:
            total = total.view(parameter.shape)
        return _torch_eager.in_dtype(total, parameter.dtype)

    return {
        "x": grad if with_x else None,
        "alpha": reduced(alpha_sums, alpha, periods[0]) if with_alpha else None,
        "beta": reduced(beta_sums, beta, periods[1]) if with_beta else None,
    }
