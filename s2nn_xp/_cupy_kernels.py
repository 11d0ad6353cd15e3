"""CUDA C++ source of the CuPy kernels, as text (importable without CuPy).

:mod:`s2nn_xp.cupy` compiles two kinds of kernels from this source:

* **contiguous kernels** (:func:`contiguous_source`, loaded with
  ``cupy.RawModule``): one launch over arrays that share one memory order and
  16-byte-aligned data, each thread loading ``chunks_per_thread`` chunks of
  16 bytes per array (128-bit loads and stores) before computing;
* **elementwise kernels** (:data:`ELEMENTWISE`, built with
  ``cupy.ElementwiseKernel``): everything else (strided views, broadcast
  per-neuron parameters, broadcast cotangents, misaligned data), with CuPy's
  indexing.

Both evaluate the device functions of :data:`DEVICE_MATH`, CuPy's one copy
of the S2NN formulas (the Triton, NumPy and eager PyTorch kernels have
theirs; nothing else outside :mod:`s2nn_xp._math` writes them). They follow
``_math`` operation by operation (the same ``(e + 2) * e + 1`` denominator, the
same order of roundings; kernels are compiled with ``--fmad=false`` so no rounding is
fused away), but select the branch with a conditional instead of blending the
two: an untaken branch is never evaluated into the result, so ``x <= -1`` and
``exp`` overflow need no guard, and NaN goes to the ``x >= 0`` branch, which
propagates it. (``_math`` also clips the exponent at -1000, for its
derivatives in ``alpha``; ``exp`` is 0 there in every dtype, so no value
differs; but the clip stays within the dtype, which the kernels' does too:
``x = -inf`` is the lowest finite value, whose sigmoid is not 0 for an
``alpha`` below 1000 over the largest.) 16-bit input is read as binary16,
computed in float32 and rounded once when stored.

The source also compiles as host C++ (``__CUDACC__`` undefined) with a small
prelude that provides the thread indices and the binary16 conversions; the
CPU tests run the kernels that way to check them against ``_math`` without a
GPU.

Examples
--------
>>> from s2nn_xp import _cupy_kernels
>>> [k.name for k in _cupy_kernels.contiguous_kernels("float32")][:3]
['s2nn_forward_f32', 's2nn_origin_f32', 's2nn_gradient_f32']
>>> _cupy_kernels.chunk_elements(("float16", "float32"))
8
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from . import _backends

__all__ = [
    "COMPILE_OPTIONS",
    "DEVICE_MATH",
    "ELEMENTWISE",
    "OPERATIONS",
    "ElementwiseSpec",
    "KernelSpec",
    "Operation",
    "chunk_elements",
    "compute_dtype_name",
    "contiguous_kernels",
    "contiguous_source",
    "elementwise_spec",
    "kernel_name",
]

COMPILE_OPTIONS: tuple[str, ...] = ("--fmad=false",)
"""NVRTC options of every kernel: no fused multiply-add, so each operation is
rounded as in the array-API math."""

CHUNK_BYTES = 16
"""Bytes one thread loads from (or stores to) an array in one instruction."""

# dtype name -> (code in kernel names, storage type in the kernel, compute type)
_TYPES: dict[str, tuple[str, str, str]] = {
    "float16": ("f16", "s2nn_half", "float"),
    "float32": ("f32", "float", "float"),
    "float64": ("f64", "double", "double"),
}
_ITEMSIZE = {name: _backends.FLOAT_BITS[name] // 8 for name in _TYPES}
_COMPUTE_DTYPE = {name: _backends.COMPUTE_DTYPES[name] for name in _TYPES}

DEVICE_MATH = r"""
// ---- S2NN values in the compute type C (float or double) -------------------
// The formulas of s2nn_xp/_math.py, operation by operation, with the branch
// selected by a conditional: the untaken branch never reaches the result.
#ifndef S2NN_DEVICE_MATH
#define S2NN_DEVICE_MATH
#if defined(__CUDACC__)
#define S2NN_DEVICE __device__ __forceinline__
#else
#define S2NN_DEVICE inline
#endif

S2NN_DEVICE float s2nn_exp(float z) { return expf(z); }
S2NN_DEVICE double s2nn_exp(double z) { return exp(z); }
S2NN_DEVICE float s2nn_log1p(float v) { return log1pf(v); }
S2NN_DEVICE double s2nn_log1p(double v) { return log1p(v); }

// The spike: 0 where x < 0, 1 where x >= 0 (-0.0 included), NaN for NaN.
template <typename C>
S2NN_DEVICE C s2nn_forward_value(C x) {
    return x < C(0) ? C(0) : (x >= C(0) ? C(1) : x);
}

// exp(alpha * x) for x < 0 (the sigmoid branch), with -inf taken as the
// lowest finite value, as _math's clip takes it: for an alpha below
// 1000 / (the largest finite value) the sigmoid at -inf is that of
// alpha * lowest, not 0. x < 0 only.
S2NN_DEVICE float s2nn_lowest(float) { return -3.40282346638528859812e+38f; }
S2NN_DEVICE double s2nn_lowest(double) { return -1.79769313486231570815e+308; }
template <typename C>
S2NN_DEVICE C s2nn_sigmoid_exp(C x, C alpha) {
    const C lowest = s2nn_lowest(x);
    return s2nn_exp((x < lowest ? lowest : x) * alpha);
}

// sigmoid(alpha * x) = e / (e + 1), e = exp(alpha * x) in [0, 1]: x < 0 only.
template <typename C>
S2NN_DEVICE C s2nn_sigmoid_branch(C e) {
    return e / (e + C(1));
}

// alpha * e / (1 + e)^2 with (1 + e)^2 = (e + 2) * e + 1: x < 0 only.
template <typename C>
S2NN_DEVICE C s2nn_bell_branch(C e, C alpha) {
    const C denominator = (e + C(2)) * e + C(1);
    return (e * alpha) / denominator;
}

// beta * log1p(x + epsilon) + 0.5: x >= 0 or NaN only.
template <typename C>
S2NN_DEVICE C s2nn_log_branch(C x, C beta, C epsilon) {
    return s2nn_log1p(x + epsilon) * beta + C(0.5);
}

template <typename C>
S2NN_DEVICE C s2nn_origin_value(C x, C alpha, C beta, C epsilon) {
    if (x < C(0)) {
        return s2nn_sigmoid_branch(s2nn_sigmoid_exp(x, alpha));
    }
    return s2nn_log_branch(x, beta, epsilon);
}

template <typename C>
S2NN_DEVICE C s2nn_gradient_value(C x, C alpha, C beta) {
    if (x < C(0)) {
        return s2nn_bell_branch(s2nn_sigmoid_exp(x, alpha), alpha);
    }
    return beta / (x + C(1));  // x >= 0 or NaN
}

// origin and gradient together, sharing one exp; the same values as above.
template <typename C>
S2NN_DEVICE void s2nn_origin_and_gradient_value(
        C x, C alpha, C beta, C epsilon, C& origin, C& gradient) {
    if (x < C(0)) {
        const C e = s2nn_sigmoid_exp(x, alpha);
        origin = s2nn_sigmoid_branch(e);
        gradient = s2nn_bell_branch(e, alpha);
    } else {
        origin = s2nn_log_branch(x, beta, epsilon);
        gradient = beta / (x + C(1));
    }
}
#endif  // S2NN_DEVICE_MATH
"""
"""Device functions of the S2NN values; the preamble of every kernel."""

_CONTIGUOUS_TEMPLATES = r"""
// ---- Storage types and conversions -----------------------------------------
typedef unsigned short s2nn_half;  // IEEE binary16 bits, as cupy.float16 stores

#if defined(__CUDACC__)
#define S2NN_RESTRICT __restrict__
__device__ __forceinline__ float s2nn_half_to_float(s2nn_half h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ s2nn_half s2nn_float_to_half(float f) {
    s2nn_half h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));  // one rounding, to nearest
    return h;
}
#else
#define S2NN_RESTRICT __restrict
#endif

template <typename T> struct S2nnStorage;
template <> struct S2nnStorage<float> {
    typedef float compute;
    static S2NN_DEVICE float load(float v) { return v; }
    static S2NN_DEVICE float store(float v) { return v; }
};
template <> struct S2nnStorage<double> {
    typedef double compute;
    static S2NN_DEVICE double load(double v) { return v; }
    static S2NN_DEVICE double store(double v) { return v; }
};
template <> struct S2nnStorage<s2nn_half> {
    typedef float compute;
    static S2NN_DEVICE float load(s2nn_half v) { return s2nn_half_to_float(v); }
    static S2NN_DEVICE s2nn_half store(float v) { return s2nn_float_to_half(v); }
};

// K consecutive elements of one array: a multiple of 16 bytes, 16-aligned, so
// that it moves with 128-bit loads and stores.
template <typename T, int K>
struct alignas(16) S2nnChunk {
    T v[K];
};

// ---- Operations: compute-type values of one element ------------------------
template <typename C> struct S2nnForward {
    S2NN_DEVICE C operator()(C x) const { return s2nn_forward_value(x); }
};
template <typename C> struct S2nnOrigin {
    C alpha, beta, epsilon;
    S2NN_DEVICE C operator()(C x) const {
        return s2nn_origin_value(x, alpha, beta, epsilon);
    }
};
template <typename C> struct S2nnGradient {
    C alpha, beta;
    S2NN_DEVICE C operator()(C x) const { return s2nn_gradient_value(x, alpha, beta); }
};
template <typename C> struct S2nnForwardAndGradient {
    C alpha, beta;
    S2NN_DEVICE void operator()(C x, C& spike, C& gradient) const {
        spike = s2nn_forward_value(x);
        gradient = s2nn_gradient_value(x, alpha, beta);
    }
};
template <typename C> struct S2nnOriginAndGradient {
    C alpha, beta, epsilon;
    S2NN_DEVICE void operator()(C x, C& origin, C& gradient) const {
        s2nn_origin_and_gradient_value(x, alpha, beta, epsilon, origin, gradient);
    }
};
template <typename C> struct S2nnPullback {
    S2NN_DEVICE C operator()(C cotangent, C gradient) const {
        return cotangent * gradient;
    }
};

// ---- Launch layout ----------------------------------------------------------
// n elements form n / K chunks of K elements and a rest of n % K < K elements.
// Block b owns chunks [b * U * blockDim.x, (b + 1) * U * blockDim.x); its
// thread t takes chunks first + u * blockDim.x (u < U), so each of the U loads
// of a warp is one coalesced 512-byte transaction, and all U are in flight
// before the first value is computed. Thread t < K of block 0 also takes
// element (n / K) * K + t of the rest.
template <int K, int U>
struct S2nnLayout {
    long long chunks, first;
    S2NN_DEVICE S2nnLayout(long long n)
        : chunks(n / K),
          first((long long)blockIdx.x * blockDim.x * U + threadIdx.x) {}
    S2NN_DEVICE long long chunk(int u) const {
        return first + (long long)u * blockDim.x;
    }
    S2NN_DEVICE long long rest(long long n) const {
        const long long i = chunks * K + threadIdx.x;
        return (blockIdx.x == 0 && threadIdx.x < K && i < n) ? i : -1;
    }
};

template <int K, int U, typename TX, typename TY, typename Op>
S2NN_DEVICE void s2nn_map_1_1(
        const TX* S2NN_RESTRICT x, TY* S2NN_RESTRICT y, long long n, const Op& op) {
    typedef S2nnChunk<TX, K> ChunkX;
    typedef S2nnChunk<TY, K> ChunkY;
    const S2nnLayout<K, U> at(n);
    ChunkX in[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            in[u] = reinterpret_cast<const ChunkX*>(x)[at.chunk(u)];
        }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            ChunkY out;
#pragma unroll
            for (int k = 0; k < K; ++k) {
                const typename S2nnStorage<TX>::compute value =
                    S2nnStorage<TX>::load(in[u].v[k]);
                out.v[k] = S2nnStorage<TY>::store(op(value));
            }
            reinterpret_cast<ChunkY*>(y)[at.chunk(u)] = out;
        }
    }
    const long long i = at.rest(n);
    if (i >= 0) y[i] = S2nnStorage<TY>::store(op(S2nnStorage<TX>::load(x[i])));
}

template <int K, int U, typename TX, typename TY, typename TG, typename Op>
S2NN_DEVICE void s2nn_map_1_2(
        const TX* S2NN_RESTRICT x, TY* S2NN_RESTRICT y, TG* S2NN_RESTRICT g,
        long long n, const Op& op) {
    typedef S2nnChunk<TX, K> ChunkX;
    typedef S2nnChunk<TY, K> ChunkY;
    typedef S2nnChunk<TG, K> ChunkG;
    const S2nnLayout<K, U> at(n);
    ChunkX in[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            in[u] = reinterpret_cast<const ChunkX*>(x)[at.chunk(u)];
        }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            ChunkY out_y;
            ChunkG out_g;
#pragma unroll
            for (int k = 0; k < K; ++k) {
                typename S2nnStorage<TX>::compute value_y, value_g;
                op(S2nnStorage<TX>::load(in[u].v[k]), value_y, value_g);
                out_y.v[k] = S2nnStorage<TY>::store(value_y);
                out_g.v[k] = S2nnStorage<TG>::store(value_g);
            }
            reinterpret_cast<ChunkY*>(y)[at.chunk(u)] = out_y;
            reinterpret_cast<ChunkG*>(g)[at.chunk(u)] = out_g;
        }
    }
    const long long i = at.rest(n);
    if (i >= 0) {
        typename S2nnStorage<TX>::compute value_y, value_g;
        op(S2nnStorage<TX>::load(x[i]), value_y, value_g);
        y[i] = S2nnStorage<TY>::store(value_y);
        g[i] = S2nnStorage<TG>::store(value_g);
    }
}

template <int K, int U, typename TA, typename TB, typename TY, typename Op>
S2NN_DEVICE void s2nn_map_2_1(
        const TA* S2NN_RESTRICT a, const TB* S2NN_RESTRICT b, TY* S2NN_RESTRICT y,
        long long n, const Op& op) {
    typedef S2nnChunk<TA, K> ChunkA;
    typedef S2nnChunk<TB, K> ChunkB;
    typedef S2nnChunk<TY, K> ChunkY;
    const S2nnLayout<K, U> at(n);
    ChunkA in_a[U];
    ChunkB in_b[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            in_a[u] = reinterpret_cast<const ChunkA*>(a)[at.chunk(u)];
            in_b[u] = reinterpret_cast<const ChunkB*>(b)[at.chunk(u)];
        }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
        if (at.chunk(u) < at.chunks) {
            ChunkY out;
#pragma unroll
            for (int k = 0; k < K; ++k) {
                out.v[k] = S2nnStorage<TY>::store(op(
                    S2nnStorage<TA>::load(in_a[u].v[k]),
                    S2nnStorage<TB>::load(in_b[u].v[k])));
            }
            reinterpret_cast<ChunkY*>(y)[at.chunk(u)] = out;
        }
    }
    const long long i = at.rest(n);
    if (i >= 0) {
        y[i] = S2nnStorage<TY>::store(
            op(S2nnStorage<TA>::load(a[i]), S2nnStorage<TB>::load(b[i])));
    }
}
"""


class Operation(NamedTuple):
    """What one operation of the kernels takes and gives."""

    parameters: tuple[str, ...]
    """Names of its scalar parameters, in argument order."""
    functor: str
    """The C++ functor that computes one element."""
    outputs: int
    """How many arrays it writes."""


OPERATIONS: dict[str, Operation] = {
    "forward": Operation((), "S2nnForward", 1),
    "origin": Operation(("alpha", "beta", "epsilon"), "S2nnOrigin", 1),
    "gradient": Operation(("alpha", "beta"), "S2nnGradient", 1),
    "forward_and_gradient": Operation(("alpha", "beta"), "S2nnForwardAndGradient", 2),
    "origin_and_gradient": Operation(
        ("alpha", "beta", "epsilon"), "S2nnOriginAndGradient", 2
    ),
    "pullback": Operation((), "S2nnPullback", 1),
}
"""The operations of the kernels, by name (the pullback: cotangent * gradient)."""


def compute_dtype_name(dtype_name: str) -> str:
    """The dtype a kernel computes in for storage dtype ``dtype_name``.

    Examples
    --------
    >>> compute_dtype_name("float16")
    'float32'
    """
    return _COMPUTE_DTYPE[dtype_name]


def chunk_elements(dtype_names: tuple[str, ...]) -> int:
    """Elements per 16-byte chunk of the narrowest of the arrays of a kernel.

    Every array of a contiguous kernel moves in chunks of this many elements,
    a whole number of 16-byte loads or stores for each of them.
    """
    return CHUNK_BYTES // min(_ITEMSIZE[name] for name in dtype_names)


def kernel_name(operation: str, dtype_names: tuple[str, ...]) -> str:
    """The ``extern "C"`` name of a contiguous kernel.

    ``dtype_names`` are the dtypes of its arrays, inputs first; names repeat
    only where they differ from the first.

    Examples
    --------
    >>> kernel_name("gradient", ("float32", "float32"))
    's2nn_gradient_f32'
    >>> kernel_name("forward_and_gradient", ("float16", "float16", "float32"))
    's2nn_forward_and_gradient_f16_f32'
    """
    codes = [_TYPES[dtype_names[0]][0]]
    codes += [_TYPES[n][0] for n in dtype_names[1:] if n != dtype_names[0]]
    codes = list(dict.fromkeys(codes))
    return f"s2nn_{operation}_{'_'.join(codes)}"


@dataclass(frozen=True)
class KernelSpec:
    """One contiguous kernel: its name, operation and array dtypes.

    Attributes
    ----------
    name
        The ``extern "C"`` function name.
    operation
        A key of :data:`OPERATIONS`: ``"forward"``, ``"origin"``, ``"gradient"``,
        ``"forward_and_gradient"``, ``"origin_and_gradient"``, ``"pullback"``.
    inputs, outputs
        dtype names of the input and output arrays, in argument order.
    parameters
        Names of the scalar parameters (in the compute dtype), after ``n``.
    """

    name: str
    operation: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parameters: tuple[str, ...]

    @property
    def compute(self) -> str:
        """The compute dtype name."""
        return compute_dtype_name(self.inputs[0])

    @property
    def chunk(self) -> int:
        """Elements per chunk (:func:`chunk_elements` of all its arrays)."""
        return chunk_elements(self.inputs + self.outputs)

    def source(self) -> str:
        """The ``extern "C" __global__`` wrapper of this kernel."""
        compute = _TYPES[self.compute][2]
        arrays = [
            f"const {_TYPES[d][1]}* S2NN_RESTRICT in{i}"
            for i, d in enumerate(self.inputs)
        ] + [
            f"{_TYPES[d][1]}* S2NN_RESTRICT out{i}" for i, d in enumerate(self.outputs)
        ]
        scalars = [f"{compute} {p}" for p in self.parameters]
        params = ", ".join([*arrays, "long long n", *scalars])
        functor = OPERATIONS[self.operation].functor
        arguments = [f"in{i}" for i in range(len(self.inputs))]
        arguments += [f"out{i}" for i in range(len(self.outputs))]
        shape = f"{len(self.inputs)}_{len(self.outputs)}"
        return (
            f'extern "C" __global__ void {self.name}({params}) {{\n'
            f"    const {functor}<{compute}> op = {{{', '.join(self.parameters)}}};\n"
            f"    s2nn_map_{shape}<{self.chunk}, S2NN_CHUNKS_PER_THREAD>("
            f"{', '.join(arguments)}, n, op);\n"
            "}\n"
        )


def contiguous_kernels(dtype_name: str) -> list[KernelSpec]:
    """The contiguous kernels for input arrays of dtype ``dtype_name``.

    The spike-and-gradient kernels store the gradient both in the input dtype
    (:func:`s2nn_xp.cupy.forward_and_gradient`) and, for 16-bit input, in the
    float32 compute dtype (what :func:`s2nn_xp.cupy.vjp` keeps, so its pullback
    rounds once); the pullback reads a cotangent of the input dtype and that
    gradient.
    """
    compute = compute_dtype_name(dtype_name)
    gradient_dtypes = dict.fromkeys([dtype_name, compute])
    specs = []
    layouts: list[tuple[tuple[str, ...], tuple[str, ...]]]  # (inputs, outputs)
    for operation, (parameters, _, n_outputs) in OPERATIONS.items():
        if operation == "pullback":
            layouts = [((dtype_name, compute), (dtype_name,))]
        elif n_outputs == 2:
            layouts = [((dtype_name,), (dtype_name, g)) for g in gradient_dtypes]
        else:
            layouts = [((dtype_name,), (dtype_name,))]
        for inputs, outputs in layouts:
            name = kernel_name(operation, inputs + outputs)
            specs.append(KernelSpec(name, operation, inputs, outputs, parameters))
    return specs


def contiguous_source(dtype_name: str, *, chunks_per_thread: int) -> str:
    """The ``RawModule`` source of :func:`contiguous_kernels` for ``dtype_name``.

    Parameters
    ----------
    dtype_name
        ``"float16"``, ``"float32"`` or ``"float64"``: the dtype of ``x``.
    chunks_per_thread
        Chunks (16 bytes of each array) per thread: the loads each thread has
        in flight.
    """
    wrappers = "".join(spec.source() for spec in contiguous_kernels(dtype_name))
    return (
        f"#define S2NN_CHUNKS_PER_THREAD {int(chunks_per_thread)}\n"
        + DEVICE_MATH
        + _CONTIGUOUS_TEMPLATES
        + wrappers
    )


@dataclass(frozen=True)
class ElementwiseSpec:
    """Arguments of one ``cupy.ElementwiseKernel``.

    Single capital letters are CuPy type placeholders, set by the arrays passed;
    parameters have the concrete compute dtype (Python floats are converted to
    it, as the array-API math converts them).
    """

    name: str
    in_params: str
    out_params: str
    operation: str


# operation -> (in_params, out_params, operation); {c} is the compute dtype
# name, {C} its C type.
ELEMENTWISE: dict[str, tuple[str, str, str]] = {
    "forward": ("X x", "Y y", "y = (Y) s2nn_forward_value(({C}) x);"),
    "origin": (
        "X x, {c} alpha, {c} beta, {c} epsilon",
        "Y y",
        "y = (Y) s2nn_origin_value(({C}) x, alpha, beta, epsilon);",
    ),
    "gradient": (
        "X x, {c} alpha, {c} beta",
        "Y g",
        "g = (Y) s2nn_gradient_value(({C}) x, alpha, beta);",
    ),
    "forward_and_gradient": (
        "X x, {c} alpha, {c} beta",
        "Y y, G g",
        "const {C} v = ({C}) x;\n"
        "y = (Y) s2nn_forward_value(v);\n"
        "g = (G) s2nn_gradient_value(v, alpha, beta);",
    ),
    "origin_and_gradient": (
        "X x, {c} alpha, {c} beta, {c} epsilon",
        "Y y, G g",
        "{C} value_y, value_g;\n"
        "s2nn_origin_and_gradient_value(({C}) x, alpha, beta, epsilon, "
        "value_y, value_g);\n"
        "y = (Y) value_y;\n"
        "g = (G) value_g;",
    ),
    # the cotangent array, of any real dtype, broadcast to the gradient
    "pullback": ("T c, {c} g", "Y out", "out = (Y) (({C}) c * g);"),
    # a Python-number cotangent, converted to the compute dtype
    "pullback_scalar": ("{c} c, {c} g", "Y out", "out = (Y) (c * g);"),
}
"""Elementwise kernels: operation -> (in_params, out_params, operation)."""


def elementwise_spec(operation: str, compute_dtype: str) -> ElementwiseSpec:
    """The :class:`ElementwiseSpec` of ``operation`` in ``compute_dtype``.

    Examples
    --------
    >>> elementwise_spec("gradient", "float32").in_params
    'X x, float32 alpha, float32 beta'
    """
    in_params, out_params, operation_code = ELEMENTWISE[operation]
    names = {"c": compute_dtype, "C": _TYPES[compute_dtype][1]}
    return ElementwiseSpec(
        name=f"s2nn_{operation}_{_TYPES[compute_dtype][0]}",
        in_params=in_params.format(**names),
        out_params=out_params.format(**names),
        operation=operation_code.format(**names),
    )
