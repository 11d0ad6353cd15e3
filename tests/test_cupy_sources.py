"""CPU checks of the CuPy backend, for CI machines without a GPU.

Three kinds of check, none of which needs a CUDA device or CuPy:

* **Compile checks.** The kernel sources of :mod:`s2nn_xp._cupy_kernels`
  compile with NVRTC (the compiler CuPy uses), found as a shared library, and
  with ``nvcc`` where it is installed; the PTX of every contiguous kernel
  moves its arrays with 128-bit loads and stores and uses no local memory.
* **Dispatch.** With a stand-in ``cupy`` module, the public functions of
  :mod:`s2nn_xp` hand CuPy arrays to :mod:`s2nn_xp.cupy`, with the arguments
  its functions take.
* **Host emulation.** The same stand-in runs :mod:`s2nn_xp.cupy` end to end:
  its ``RawModule`` compiles the contiguous kernels' CUDA source as host C++
  and runs every thread of the launch grid the module asks for, and its
  ``ElementwiseKernel`` compiles the elementwise operations the way CuPy wraps
  them. Results are checked against independent references, the array-API
  math and the special values of the docs' Definition page, for every dtype,
  layout, ``out=`` use and launch configuration. What this cannot check is
  the GPU's own arithmetic (CUDA's ``expf``, ``log1pf``, binary16 conversion
  instructions); the GPU tests in ``tests/test_cupy.py`` do.

Needs a C++ compiler with ``_Float16`` (g++ >= 12) for the emulation, and
NVRTC or ``nvcc`` for the compile checks; each skips with a message otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import doctest
import glob
import hashlib
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import s2nn_xp
import s2nn_xp._dispatch as dispatch
from s2nn_xp import _backends, _fused
from s2nn_xp import _cupy_kernels as kernels
from tests._support import (
    PUBLIC_CALLS,
    SPECIAL_X,
    Quantity,
    Unit,
    grid,
    ref_forward,
    ref_gradient,
    ref_origin,
    reference,
    require,
    ulp_error,
)

require("numpy")

FLOATS = ("float16", "float32", "float64")
SENTINEL = -7.0  # what fresh arrays hold: no S2NN value is negative
MAX_THREADS_PER_BLOCK = 1024  # of every CUDA GPU


# --- NVRTC and nvcc -----------------------------------------------------------


def _nvrtc_candidates() -> list[str]:
    """Paths where a libnvrtc may be: NVIDIA wheels, CUDA toolkits, the loader."""
    found: list[str] = []
    prefixes = dict.fromkeys([sys.prefix, sys.base_prefix])
    for prefix in prefixes:
        pattern = f"{prefix}/lib/python3*/site-packages/nvidia/**/libnvrtc.so*"
        found += glob.glob(pattern, recursive=True)
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")):
        if home:
            found += glob.glob(f"{home}/lib*/libnvrtc.so*")
    found += glob.glob("/usr/local/cuda*/lib*/libnvrtc.so*")
    found = [p for p in found if "builtins" not in p and ".alt." not in p]
    found.sort(key=lambda p: ("cu12" not in p, p))  # CUDA 12 first, as cupy-cuda12x
    return found


def _load_nvrtc() -> ctypes.CDLL | None:
    for path in _nvrtc_candidates():
        directory = os.path.dirname(path)
        with contextlib.suppress(OSError):
            for builtins in glob.glob(f"{directory}/libnvrtc-builtins.so*"):
                if ".alt." not in builtins:  # NVRTC dlopens it by name
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
    return None


_NVRTC = _load_nvrtc()
_NVCC = shutil.which("nvcc")
WANTED_ARCHITECTURES = (70, 80, 90)


def nvrtc_compile(source: str, options: list[str]) -> tuple[str, bytes]:
    """Compile with NVRTC: (PTX, or CUBIN for an ``sm_`` arch). Raises on error."""
    lib = _NVRTC
    program = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(
        ctypes.byref(program), source.encode(), b"s2nn.cu", 0, None, None
    )
    assert status == 0, f"nvrtcCreateProgram: {status}"
    try:
        encoded = [o.encode() for o in options]
        status = lib.nvrtcCompileProgram(
            program, len(encoded), (ctypes.c_char_p * len(encoded))(*encoded)
        )
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        assert status == 0, f"NVRTC failed ({options}):\n{log.value.decode()}"
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, ptx)
        cubin = b""
        if any(o.startswith("--gpu-architecture=sm_") for o in options):
            lib.nvrtcGetCUBINSize(program, ctypes.byref(size))
            buffer = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetCUBIN(program, buffer)
            cubin = buffer.raw
        return ptx.value.decode(), cubin
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def nvcc_compile(source: str, options: list[str], output: str) -> bytes:
    """Compile with nvcc to ``output`` (``-ptx`` or ``-cubin``). Raises on error."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "s2nn.cu"
        path.write_text(source)
        result = subprocess.run(
            [_NVCC, output, *options, "-o", str(path.with_suffix(".out")), str(path)],
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode()
        return path.with_suffix(".out").read_bytes()


class Compiler:
    """NVRTC (the compiler CuPy uses) or nvcc, whichever is asked for."""

    def __init__(self, name: str) -> None:
        self.name = name

    def architectures(self) -> list[int]:
        """Of WANTED_ARCHITECTURES, those this compiler supports."""
        if self.name == "nvrtc":
            count = ctypes.c_int()
            _NVRTC.nvrtcGetNumSupportedArchs(ctypes.byref(count))
            supported = (ctypes.c_int * count.value)()
            _NVRTC.nvrtcGetSupportedArchs(supported)
            have = set(supported)
        else:
            listed = subprocess.run(
                [_NVCC, "--list-gpu-arch"], capture_output=True, text=True, check=True
            ).stdout
            have = {int(a) for a in re.findall(r"compute_(\d+)", listed)}
        return [a for a in WANTED_ARCHITECTURES if a in have]

    def ptx(self, source: str, arch: int) -> str:
        options = list(kernels.COMPILE_OPTIONS)
        if self.name == "nvrtc":
            return nvrtc_compile(
                source, [f"--gpu-architecture=compute_{arch}", *options]
            )[0]
        return nvcc_compile(
            source, [f"-arch=compute_{arch}", *options], "-ptx"
        ).decode()

    def cubin(self, source: str, arch: int) -> bytes:
        options = list(kernels.COMPILE_OPTIONS)
        if self.name == "nvrtc":
            return nvrtc_compile(source, [f"--gpu-architecture=sm_{arch}", *options])[1]
        return nvcc_compile(source, [f"-arch=sm_{arch}", *options], "-cubin")


@pytest.fixture(
    params=[
        pytest.param(
            "nvrtc",
            marks=pytest.mark.skipif(
                _NVRTC is None,
                reason="NVRTC not found (install the nvidia-cuda-nvrtc wheel, or "
                "nvidia-cuda-nvrtc-cu12, or a CUDA toolkit): NVRTC checks not run",
            ),
        ),
        pytest.param(
            "nvcc",
            marks=pytest.mark.skipif(
                _NVCC is None, reason="nvcc not installed: nvcc checks not run"
            ),
        ),
    ]
)
def compiler(request) -> Compiler:
    return Compiler(request.param)


def ptx_entries(ptx: str) -> dict[str, str]:
    """Kernel name -> PTX body."""
    parts = re.split(r"\.visible \.entry (\w+)\(", ptx)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


# A stand-in for CuPy's float16 class in the elementwise operations: it
# converts to and from float, which is all the operations ask of it.
_DEVICE_FLOAT16 = r"""
struct float16 {
    unsigned short bits;
    __device__ float16() {}
    __device__ float16(float f) { asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(f)); }
    __device__ operator float() const {
        float f;
        asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(bits));
        return f;
    }
};
"""

_C_TYPES = {
    "float16": "float16",
    "float32": "float",
    "float64": "double",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "bool": "bool",
}


def parse_params(params: str) -> list[tuple[str, str]]:
    """``"X x, float32 alpha"`` -> ``[("X", "x"), ("float32", "alpha")]``."""
    return [tuple(p.split()) for p in params.split(",") if p.strip()]


def elementwise_kernel_source(
    spec: kernels.ElementwiseSpec,
    types_of: dict[str, str],
    scalars: set[str],
    *,
    device: bool,
) -> str:
    """An elementwise operation wrapped in a loop, as CuPy wraps it.

    ``types_of`` maps each placeholder letter to a dtype name; parameters named
    in ``scalars`` are values, the others arrays (``_raw_NAME``). The device
    version is a ``__global__`` kernel (without the device math and the float16
    stand-in, which the caller puts first); the host one is a function taking
    the buffers as ``void**``, with the device math before it.
    """
    inputs, outputs = parse_params(spec.in_params), parse_params(spec.out_params)

    def c_type(t: str) -> str:
        return t if len(t) == 1 else _C_TYPES[t]

    typedefs = "".join(f"typedef {_C_TYPES[d]} {t};\n" for t, d in types_of.items())
    declarations, body = [], []
    for index, (t, name) in enumerate(inputs + outputs):
        const = "const " if (t, name) in inputs else ""
        if name in scalars:
            declarations.append(
                f"const {c_type(t)} {name} = *(const {c_type(t)}*) _buffers[{index}];"
            )
        else:
            declarations.append(
                f"{const}{c_type(t)}* _raw_{name} = ({const}{c_type(t)}*) "
                f"_buffers[{index}];"
            )
            body.append(f"{const}{c_type(t)} &{name} = _raw_{name}[i];")
    loop = "\n".join(body) + "\n" + spec.operation
    if device:
        head = (
            f'extern "C" __global__ void {spec.name}('
            "void** _buffers, long long _n) {\n"
            "for (long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;\n"
            "     i < _n; i += (long long) blockDim.x * gridDim.x) {\n"
        )
    else:
        head = (
            f'extern "C" void {spec.name}(void** _buffers, long long _n) {{\n'
            "for (long long i = 0; i < _n; ++i) {\n"
        )
    return (
        typedefs
        + ("" if device else kernels.DEVICE_MATH)
        + head.replace("{\n", "{\n" + "\n".join(declarations) + "\n", 1)
        + loop
        + "\n}\n}\n"
    )


def _elementwise_cases() -> list[tuple[str, str, dict[str, str], set[str]]]:
    """(operation, compute dtype, placeholder types, scalar parameters)."""
    cases = []
    for compute in ("float32", "float64"):
        storages = ("float16", "float32") if compute == "float32" else ("float64",)
        for operation, (in_params, out_params, _) in kernels.ELEMENTWISE.items():
            letters = sorted(
                set(re.findall(r"\b([A-Z]) \w+", f"{in_params}, {out_params}"))
            )
            for storage in storages:
                types_of = {t: storage for t in letters}
                if "G" in types_of:
                    types_of["G"] = compute
                if "T" in types_of:
                    types_of["T"] = "int64"  # a cotangent of another dtype
                scalars = {"alpha", "beta", "epsilon"}
                if operation == "pullback_scalar":
                    scalars.add("c")
                cases.append((operation, compute, types_of, scalars))
    return cases


class TestCompiles:
    """The kernel sources compile for the GPU, and compile to what they should."""

    def test_docstring_examples(self):
        result = doctest.testmod(kernels, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0
        assert result.failed == 0

    def test_sources_include_no_headers(self):
        for dtype in FLOATS:
            source = kernels.contiguous_source(dtype, chunks_per_thread=4)
            assert "#include" not in source  # NVRTC has no header search path here

    @pytest.mark.parametrize("dtype", FLOATS)
    def test_contiguous_kernels_compile(self, compiler, dtype):
        architectures = compiler.architectures()
        assert architectures, f"{compiler.name} supports none of sm_70, sm_80, sm_90"
        source = kernels.contiguous_source(dtype, chunks_per_thread=4)
        for arch in architectures:
            assert sorted(ptx_entries(compiler.ptx(source, arch))) == sorted(
                s.name for s in kernels.contiguous_kernels(dtype)
            )
        # and through ptxas, for the newest architecture
        assert compiler.cubin(source, architectures[-1])[:4] == b"\x7fELF"

    @pytest.mark.parametrize("chunks_per_thread", [1, 4])
    @pytest.mark.parametrize("dtype", FLOATS)
    def test_contiguous_kernels_move_16_bytes_per_access(
        self, compiler, dtype, chunks_per_thread
    ):
        """Each chunk of each array moves with 128-bit loads and stores (v4 of
        32-bit or v2 of 64-bit words), one scalar access per array serves the
        rest, and the chunks stay in registers (no local memory)."""
        source = kernels.contiguous_source(dtype, chunks_per_thread=chunks_per_thread)
        ptx = compiler.ptx(source, compiler.architectures()[-1])
        assert ".local" not in ptx
        wide = r"\.v4\.(f32|u32|b32)|\.v2\.(f64|u64|b64)"
        entries = ptx_entries(ptx)
        for spec in kernels.contiguous_kernels(dtype):
            loads = re.findall(r"ld\.global\S*", entries[spec.name])
            stores = re.findall(r"st\.global\S*", entries[spec.name])
            wide_loads = [op for op in loads if re.search(wide, op)]
            wide_stores = [op for op in stores if re.search(wide, op)]
            chunk_bytes = {d: spec.chunk * np.dtype(d).itemsize for d in FLOATS}
            per_thread = chunks_per_thread
            assert len(wide_loads) == per_thread * sum(
                chunk_bytes[d] // 16 for d in spec.inputs
            ), (spec.name, loads)
            assert len(wide_stores) == per_thread * sum(
                chunk_bytes[d] // 16 for d in spec.outputs
            ), (spec.name, stores)
            assert len(loads) - len(wide_loads) == len(spec.inputs), spec.name
            assert len(stores) - len(wide_stores) == len(spec.outputs), spec.name

    def test_elementwise_operations_compile(self, compiler):
        """Every elementwise operation, for every dtype it is used with, wrapped
        as CuPy wraps it (one translation unit, one namespace per case)."""
        cases, names = [], []
        for index, (operation, compute, types_of, scalars) in enumerate(
            _elementwise_cases()
        ):
            spec = kernels.elementwise_spec(operation, compute)
            name = f"{spec.name}_{index}"
            names.append(name)
            spec = kernels.ElementwiseSpec(
                name, spec.in_params, spec.out_params, spec.operation
            )
            body = elementwise_kernel_source(spec, types_of, scalars, device=True)
            cases.append(f"namespace s2nn_case_{index} {{\n{body}}}\n")
        source = _DEVICE_FLOAT16 + kernels.DEVICE_MATH + "".join(cases)
        ptx = compiler.ptx(source, compiler.architectures()[-1])
        assert sorted(ptx_entries(ptx)) == sorted(names)


# --- Host emulation -------------------------------------------------------------

_HOST_PRELUDE = r"""
#include <math.h>
#include <string.h>
struct s2nn_dim3 { unsigned int x, y, z; };
static s2nn_dim3 threadIdx, blockIdx, blockDim, gridDim;
extern "C" void s2nn_host_set_thread(
        unsigned int block, unsigned int thread, unsigned int block_dim,
        unsigned int grid_dim) {
    blockIdx.x = block; threadIdx.x = thread;
    blockDim.x = block_dim; gridDim.x = grid_dim;
    blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
    blockDim.y = blockDim.z = gridDim.y = gridDim.z = 1;
}
#define __global__
static inline float s2nn_half_to_float(unsigned short h) {
    _Float16 v; memcpy(&v, &h, 2); return (float) v;
}
static inline unsigned short s2nn_float_to_half(float f) {
    _Float16 v = (_Float16) f; unsigned short h; memcpy(&h, &v, 2); return h;
}
struct float16 {  // CuPy's float16 class, as the elementwise operations use it
    _Float16 v;
    float16() {}
    float16(float f) : v((_Float16) f) {}
    operator float() const { return (float) v; }
};
"""


class CompileError(RuntimeError):
    """The host compiler rejected a kernel source (CuPy raises CompileException)."""


class HostCompiler:
    """Compiles CUDA kernel source as host C++ into shared libraries, cached."""

    def __init__(self, compiler: str, directory: Path) -> None:
        self.directory = directory
        self.compiler_options = [compiler, "-O1", "-std=c++17", "-shared", "-fPIC"]
        self.compiler_options += ["-w", "-ffp-contract=off", "-fno-strict-aliasing"]
        self._libraries: dict[str, ctypes.CDLL] = {}

    def load(self, source: str) -> ctypes.CDLL:
        source = _HOST_PRELUDE + source
        key = hashlib.sha256(source.encode()).hexdigest()[:20]
        if key not in self._libraries:
            cpp, library = self.directory / f"{key}.cpp", self.directory / f"{key}.so"
            cpp.write_text(source)
            result = subprocess.run(
                [*self.compiler_options, "-o", library, cpp],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode:
                raise CompileError(result.stderr)
            self._libraries[key] = ctypes.CDLL(str(library))
        return self._libraries[key]


@pytest.fixture(scope="session")
def host_compiler(tmp_path_factory) -> HostCompiler:
    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler: host emulation of the CUDA kernels not run")
    directory = tmp_path_factory.mktemp("s2nn_host_kernels")
    probe = directory / "probe.cpp"
    probe.write_text("_Float16 half(float f) { return (_Float16) f; }\n")
    result = subprocess.run(
        [compiler, "-c", "-o", os.devnull, probe],
        capture_output=True,
        check=False,
    )
    if result.returncode:
        pytest.skip(f"{compiler} has no _Float16 (g++ >= 12 has): emulation not run")
    return HostCompiler(compiler, directory)


def _ctype_argument(value):
    if isinstance(value, np.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    converters = {
        np.int64: ctypes.c_longlong,
        np.float32: ctypes.c_float,
        np.float64: ctypes.c_double,
    }
    assert type(value) in converters, f"kernel argument of type {type(value)}"
    return converters[type(value)](value)


class FakeDevice:
    """A device of a :class:`FakeCuPy`: ``with`` makes it the current one."""

    def __init__(self, fake: FakeCuPy, device_id: int) -> None:
        self.fake, self.id = fake, device_id
        self.entered: list[int] = []

    def __enter__(self):
        self.entered.append(self.fake.current_device)
        self.fake.current_device = self.id
        return self

    def __exit__(self, *exc):
        self.fake.current_device = self.entered.pop()
        return False


class FakeStream:
    """The current stream: capturing a graph, or holding an error of earlier work."""

    def __init__(self) -> None:
        self.capturing = False
        self.error: Exception | None = None

    def is_capturing(self) -> bool:
        return self.capturing

    def synchronize(self) -> None:
        if self.capturing:
            raise AssertionError("synchronised while capturing")
        if self.error is not None:
            raise self.error


class FakeCuPy:
    """A ``cupy`` module on the host: NumPy arrays, emulated kernels.

    Records every launch in ``launches`` as ``(kind, name, grid, block)``.
    """

    def __init__(self, compiler: HostCompiler) -> None:
        self.compiler = compiler
        self.launches: list[tuple[str, str, tuple, tuple]] = []
        self.current_device = 0  # where CuPy allocates
        self.stream = FakeStream()
        fake = self

        class ndarray(np.ndarray):  # noqa: N801 - the name CuPy's type has
            device_id = 0

            def __array_finalize__(self, obj):  # views and results: obj's device
                self.device_id = getattr(obj, "device_id", fake.current_device)

            @property
            def device(self):
                return FakeDevice(fake, self.device_id)

            def astype(self, dtype, *args, **kwargs):
                """A copy on the current device, as CuPy allocates (a view if
                ``copy=False`` and nothing changes)."""
                result = super().astype(dtype, *args, **kwargs)
                if result is not self:
                    result.device_id = fake.current_device
                return result

            @property
            def data(self):
                return types.SimpleNamespace(ptr=self.ctypes.data)

            def get(self):
                return np.array(self)

        class RawModule:
            def __init__(self, code: str, options=()):
                assert tuple(options) == kernels.COMPILE_OPTIONS
                self.code = code

            def get_function(self, name: str):
                library = fake.compiler.load(self.code)
                return RawKernel(library, name)

        class RawKernel:
            def __init__(self, library, name):
                self.function = getattr(library, name)
                self.function.restype = None
                self.set_thread = library.s2nn_host_set_thread
                self.name = name

            def __call__(self, grid, block, args):
                (blocks,), (threads,) = grid, block
                if threads > MAX_THREADS_PER_BLOCK:  # as the CUDA driver refuses
                    raise RuntimeError("CUDA_ERROR_INVALID_VALUE: invalid argument")
                fake.launches.append(("raw", self.name, tuple(grid), tuple(block)))
                arguments = [_ctype_argument(a) for a in args]
                for b in range(blocks):
                    for t in range(threads):
                        self.set_thread(b, t, threads, blocks)
                        self.function(*arguments)

        class ElementwiseKernel:
            def __init__(self, in_params, out_params, operation, name, preamble,
                         options=()):  # fmt: skip
                assert preamble == kernels.DEVICE_MATH
                assert tuple(options) == kernels.COMPILE_OPTIONS
                self.spec = kernels.ElementwiseSpec(
                    name, in_params, out_params, operation
                )
                self.inputs = parse_params(in_params)
                self.outputs = parse_params(out_params)

            def __call__(self, *args):
                n_in = len(self.inputs)
                assert len(args) == n_in + len(self.outputs), "outputs are passed"
                types_of, scalars, buffers = {}, set(), []
                for (t, name), a in zip(self.inputs + self.outputs, args, strict=True):
                    if isinstance(a, np.ndarray):
                        assert isinstance(a, ndarray), f"{name}: a host array"
                        if len(t) == 1:
                            assert types_of.setdefault(t, a.dtype.name) == a.dtype.name
                        else:  # CuPy requires the exact dtype here
                            assert a.dtype.name == t, (name, a.dtype, t)
                    else:
                        assert len(t) > 1, f"CuPy cannot type scalar {name}"
                        scalars.add(name)
                arrays = [a for a in args if isinstance(a, np.ndarray)]
                shape = np.broadcast_shapes(*(a.shape for a in arrays))
                for a in args[n_in:]:
                    assert a.shape == shape, "Out shape is mismatched"
                for (t, name), a in zip(self.inputs + self.outputs, args, strict=True):
                    dtype = np.dtype(types_of.get(t, t))
                    if name in scalars:
                        buffers.append(np.array(dtype.type(a), dtype=dtype))
                    else:
                        buffers.append(
                            np.ascontiguousarray(np.broadcast_to(np.asarray(a), shape))
                        )
                fake.launches.append(("elementwise", self.spec.name, (), ()))
                source = elementwise_kernel_source(
                    self.spec, types_of, scalars, device=False
                )
                function = getattr(fake.compiler.load(source), self.spec.name)
                function.restype = None
                pointers = (ctypes.c_void_p * len(buffers))(
                    *[b.ctypes.data for b in buffers]
                )
                function(pointers, ctypes.c_longlong(int(np.prod(shape))))
                for out, buffer in zip(args[n_in:], buffers[n_in:], strict=True):
                    np.asarray(out)[...] = buffer

        def on_current_device(a: np.ndarray) -> ndarray:
            result = a.view(ndarray)
            result.device_id = fake.current_device
            return result

        def asarray(a, dtype=None):
            return on_current_device(np.array(a, dtype=dtype))

        def empty_like(a, dtype=None):
            order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
            return on_current_device(aligned_array(a.shape, dtype or a.dtype, order))

        module = types.ModuleType("cupy")
        module.ndarray = ndarray
        module.asarray = asarray
        module.empty_like = empty_like
        module.may_share_memory = np.may_share_memory
        module.RawModule = RawModule
        module.ElementwiseKernel = ElementwiseKernel
        module.cuda = types.SimpleNamespace(get_current_stream=lambda: fake.stream)
        for name in ("float16", "float32", "float64", "int64", "nan"):
            setattr(module, name, getattr(np, name))
        self.module = module
        self.ndarray = ndarray

    def array(self, values, dtype=None, order="C", offset_bytes=0, device=0):
        """A fake CuPy array on ``device``; its data 64-byte aligned plus
        ``offset_bytes``."""
        values = np.asarray(values, dtype=dtype)
        extra = -(-offset_bytes // values.dtype.itemsize) if offset_bytes else 0
        flat = aligned_array((values.size + extra,), values.dtype, "C")
        start = offset_bytes // values.dtype.itemsize
        view = flat[start : start + values.size]
        view = view.reshape(values.shape, order=order)
        view[...] = values
        view = view.view(self.ndarray)
        view.device_id = device
        return view

    def kinds(self) -> list[str]:
        return [kind for kind, *_ in self.launches]


def aligned_array(shape, dtype, order) -> np.ndarray:
    """A new array filled with SENTINEL, its data 64-byte aligned."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    raw = np.empty(size * dtype.itemsize + 64, dtype=np.uint8)
    start = -raw.ctypes.data % 64
    flat = raw[start : start + size * dtype.itemsize].view(dtype)
    flat[...] = SENTINEL
    return flat.reshape(shape, order=order)


@pytest.fixture
def fake(host_compiler, monkeypatch):
    """``cupy`` replaced by a :class:`FakeCuPy`, ``s2nn_xp.cupy`` imported anew."""
    fake = FakeCuPy(host_compiler)
    monkeypatch.setitem(sys.modules, "cupy", fake.module)
    monkeypatch.setattr(_fused, "_failed", set())  # no failure from another test
    saved = sys.modules.pop("s2nn_xp.cupy", None)
    fake.adapter = importlib.import_module("s2nn_xp.cupy")
    loaded = getattr(dispatch, "_loaded", None)  # the dispatcher's adapter cache
    if loaded is not None:
        monkeypatch.setitem(loaded, "s2nn_xp.cupy", fake.adapter)
    yield fake
    sys.modules.pop("s2nn_xp.cupy", None)
    if saved is not None:
        sys.modules["s2nn_xp.cupy"] = saved
    if hasattr(s2nn_xp, "cupy"):
        delattr(s2nn_xp, "cupy")


@pytest.fixture
def small_launches(fake):
    """Blocks of 32 threads, 2 chunks each: many blocks for small arrays."""
    fake.adapter._LAUNCH = fake.adapter._LaunchConfiguration(32, 2)
    return fake


# --- References ---------------------------------------------------------------

PARAMS = {"alpha": 4.0, "beta": 1.0, "epsilon": 1e-8}
ODD_PARAMS = {"alpha": 8.0, "beta": 2.0, "epsilon": 0.0}


def reference_values(name: str, x: np.ndarray, params=PARAMS) -> np.ndarray:
    """mpmath references (float64) of forward, origin or gradient."""
    if name == "forward":
        return reference(ref_forward, x)
    if name == "origin":
        return reference(ref_origin, x, **params)
    return reference(ref_gradient, x, alpha=params["alpha"], beta=params["beta"])


def core_values(name: str, x: np.ndarray, params=PARAMS) -> np.ndarray:
    """The array-API math on NumPy."""
    if name == "forward":
        return s2nn_xp.forward(x)
    if name == "origin":
        return s2nn_xp.origin(x, **params)
    return s2nn_xp.gradient(x, params["alpha"], params["beta"])


def call(fake, name: str, x, params=PARAMS, **kwargs):
    adapter = fake.adapter
    if name == "forward":
        return adapter.forward(x, **kwargs)
    if name == "origin":
        return adapter.origin(x, **params, **kwargs)
    return adapter.gradient(x, params["alpha"], params["beta"], **kwargs)


def max_ulp(actual, desired, dtype) -> float:
    return float(ulp_error(np.asarray(actual), desired, dtype).max())


FUNCTIONS = ("forward", "origin", "gradient")


class TestDispatch:
    """The public API hands CuPy arrays to s2nn_xp.cupy."""

    IMPLEMENTED = _backends.get("cupy").implements

    def test_the_adapter_lists_its_public_names_alone(self, fake):
        """Tab completion offered its imports too (np, numbers, ...)."""
        assert dir(fake.adapter) == sorted(fake.adapter.__all__)

    def test_import_without_cupy_says_how_to_install(self):
        code = (
            "import sys\n"
            "class NoCuPy:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'cupy' or name.startswith('cupy.'):\n"
            "            raise ModuleNotFoundError(\"No module named 'cupy'\")\n"
            "sys.meta_path.insert(0, NoCuPy())\n"
            "import numpy, s2nn_xp\n"
            "assert s2nn_xp.gradient(numpy.zeros(2)).tolist() == [1.0, 1.0]\n"
            "try:\n"
            "    import s2nn_xp.cupy\n"
            "except ImportError as exc:\n"
            "    print(exc)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert 'pip install "s2nn-xp[cupy]"' in result.stdout
        assert "cupy-cuda13x" in result.stdout

    def test_adapter_is_found_for_cupy_arrays_only(self, fake):
        x = fake.array([0.5])
        assert dispatch.adapter_for(x) is fake.adapter
        assert dispatch.adapter_for(np.array([0.5])) is None

    @pytest.mark.parametrize("name", IMPLEMENTED)
    def test_public_function_calls_the_adapter(self, fake, monkeypatch, name):
        received = []

        def spy(*args, **kwargs):
            received.append((args, kwargs))
            return "from the adapter"

        args, kwargs = PUBLIC_CALLS[name]
        inspect.signature(getattr(fake.adapter, name)).bind(None, *args, **kwargs)
        monkeypatch.setattr(fake.adapter, name, spy)
        x = fake.array([0.5, -0.5])
        assert getattr(s2nn_xp, name)(x, *args, **kwargs) == "from the adapter"
        assert received == [((x, *args), kwargs)]

    def test_s2nn_object_uses_the_kernels(self, fake):
        x = fake.array([-1.0, 0.5])
        fn = s2nn_xp.S2NN(alpha=8.0)
        np.testing.assert_array_equal(fn(x).get(), [0.0, 1.0])
        np.testing.assert_array_equal(
            fn.surrogate_grad(x).get(), s2nn_xp.gradient(x.get(), 8.0)
        )
        assert fake.kinds() == ["raw", "raw"]


class TestEmulatedKernels:
    """s2nn_xp.cupy run on the host: the kernels' values and launch logic."""

    @pytest.mark.parametrize("name", FUNCTIONS)
    @pytest.mark.parametrize("params", [PARAMS, ODD_PARAMS], ids=["a4", "a8"])
    def test_float64_within_2_ulp_of_mpmath(self, fake, name, params):
        x_np = grid(params["alpha"], 300, 700.0)
        got = call(fake, name, fake.array(x_np), params).get()
        assert max_ulp(got, reference_values(name, x_np, params), np.float64) <= 2
        assert fake.kinds() == ["raw"]

    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_float32_within_4_ulp_of_mpmath(self, fake, name):
        x_np = grid(4.0, 300, 20.0).astype(np.float32)
        got = call(fake, name, fake.array(x_np)).get()
        assert got.dtype == np.float32
        assert max_ulp(got, reference_values(name, x_np), np.float32) <= 4

    def test_bell_denominator_keeps_float32_gradient_accurate(self, fake):
        """With the host's correctly rounded expf the bell branch stays within
        3 ulp; (1 + e)**2 from the rounded sum alone would reach 3.6."""
        x_np = grid(4.0, 3000, 20.0).astype(np.float32)
        got = call(fake, "gradient", fake.array(x_np)).get()
        assert max_ulp(got, reference_values("gradient", x_np), np.float32) <= 3

    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_float16_is_float32_rounded_once(self, fake, name):
        x16 = grid(4.0, 200, 20.0).astype(np.float16)
        got = call(fake, name, fake.array(x16)).get()
        via32 = call(fake, name, fake.array(x16.astype(np.float32))).get()
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got, via32.astype(np.float16))
        assert fake.kinds() == ["raw", "raw"]

    @pytest.mark.parametrize("name", FUNCTIONS)
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("layout", ["contiguous", "strided"])
    def test_special_values_exact(self, fake, name, dtype, layout):
        """NaN, infinities, zeros and spikes exactly; x <= -1 finite."""
        with np.errstate(over="ignore"):
            x_np = SPECIAL_X.astype(dtype)
            want = reference_values(name, x_np).astype(dtype)
        if layout == "strided":
            x = fake.array(np.repeat(x_np, 2))[::2]
        else:
            x = fake.array(x_np)
        got = call(fake, name, x).get()
        exact = ~np.isfinite(x_np) | ~np.isfinite(want) | (want == 0) | (want == 1)
        np.testing.assert_array_equal(got[exact], want[exact])  # NaN matches NaN
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps)
        assert np.isfinite(got[x_np <= -1][1:]).all()  # all but -inf
        assert fake.kinds() == ["raw" if layout == "contiguous" else "elementwise"]

    @pytest.mark.parametrize("name", FUNCTIONS)
    @pytest.mark.parametrize("dtype", FLOATS)
    def test_agrees_with_the_array_api_math(self, fake, name, dtype):
        x_np = grid(4.0, 100, 30.0).astype(dtype)
        got = call(fake, name, fake.array(x_np)).get()
        want = core_values(name, x_np)
        tolerance = 0 if name == "forward" else {"float64": 2, "float32": 4}
        if dtype == "float16":  # one float32 ulp may round the other way
            tolerance = 0 if name == "forward" else 1
        else:
            tolerance = tolerance if name == "forward" else tolerance[dtype]
        assert max_ulp(got, want, np.dtype(dtype)) <= tolerance

    @pytest.mark.parametrize("name", ["origin", "gradient"])
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("layout", ["contiguous", "strided"])
    def test_a_tiny_alpha_at_minus_infinity_is_the_maths(
        self, fake, name, dtype, layout
    ):
        """The kernels gave 0 at ``x = -inf`` where the math (and the
        Definition) gives the sigmoid of ``alpha`` times the lowest value of
        the compute dtype, for an ``alpha`` below 1000 over the largest."""
        compute = np.float64 if dtype == "float64" else np.float32
        params = {
            "alpha": 4 * float(np.finfo(compute).tiny),
            "beta": 1.0,
            "epsilon": 0.0,
        }
        x_np = np.array([-np.inf, -1.0, -0.0, 2.0], dtype)
        x = (
            fake.array(x_np)
            if layout == "contiguous"
            else fake.array(np.repeat(x_np, 2))[::2]
        )
        got = call(fake, name, x, params).get()
        want = core_values(name, x_np, params)
        if name == "origin":
            assert want[0] > 0  # sigmoid(-16)
        # a subnormal gradient too (within a few of the smallest subnormal
        # ulps, which 0 is: the sign of the value tells)
        assert (got[0] > 0) == (want[0] > 0)
        assert max_ulp(got, want, np.dtype(dtype)) <= (1 if dtype == "float16" else 4)

    LAYOUTS: ClassVar = {
        "0-d": (lambda f, v: f.array(v[0]), "raw"),
        "1-d tail": (lambda f, v: f.array(v[:37]), "raw"),
        "2-d C": (lambda f, v: f.array(v[:48].reshape(6, 8)), "raw"),
        "2-d F": (lambda f, v: f.array(v[:48].reshape(6, 8), order="F"), "raw"),
        "transposed": (lambda f, v: f.array(v[:48].reshape(6, 8)).T, "raw"),
        "strided": (lambda f, v: f.array(v[:48])[::3], "elementwise"),
        "3-d view": (
            lambda f, v: f.array(v[:60].reshape(3, 4, 5))[:, 1:3, ::2],
            "elementwise",
        ),
        "misaligned": (lambda f, v: f.array(v[:40], offset_bytes=8), "elementwise"),
        "empty": (lambda f, v: f.array(v[:0]), None),
        "empty 3-d": (lambda f, v: f.array(v[:0].reshape(3, 0, 2)), None),
    }

    @pytest.mark.parametrize("layout", sorted(LAYOUTS))
    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_layouts(self, fake, name, dtype, layout):
        make, path = self.LAYOUTS[layout]
        values = np.random.default_rng(5).normal(scale=3, size=64).astype(dtype)
        x = make(fake, values)
        got = call(fake, name, x)
        assert isinstance(got, fake.ndarray)
        assert got.shape == x.shape and got.dtype == x.dtype
        want = call_reference_rounded(name, x.get())
        np.testing.assert_allclose(
            got.get().astype(np.float64), want, rtol=4 * np.finfo(dtype).eps, atol=0
        )
        assert fake.kinds() == ([path] if path else [])

    def test_misaligned_float64_by_8_bytes_is_not_contiguous_path(self, fake):
        x = fake.array(np.linspace(-2, 2, 10), offset_bytes=8)
        call(fake, "gradient", x)
        assert fake.kinds() == ["elementwise"]

    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("size", [1, 7, 8, 9, 63, 64, 65, 511, 512, 513, 1100])
    def test_every_element_written_with_many_blocks(self, small_launches, dtype, size):
        fake = small_launches
        x_np = np.linspace(-3, 3, size).astype(dtype)
        x = fake.array(x_np)
        spike, grad = fake.adapter.forward_and_gradient(x)
        np.testing.assert_array_equal(spike.get(), s2nn_xp.forward(x_np))
        want = call_reference_rounded("gradient", x_np)
        np.testing.assert_allclose(grad.get(), want, rtol=4 * np.finfo(dtype).eps)
        (kind, _, grid_shape, block), *_ = fake.launches
        chunk = 16 // np.dtype(dtype).itemsize
        assert kind == "raw" and block == (32,)
        assert grid_shape == (max(1, -(-(size // chunk) // 64)),)

    @pytest.mark.parametrize("name", ["origin", "gradient"])
    def test_per_neuron_parameters(self, fake, name):
        rng = np.random.default_rng(1)
        x_np = rng.normal(size=(5, 3))
        alphas = np.array([2.0, 4.0, 8.0])
        betas = np.array([[0.5], [1.0], [2.0], [3.0], [4.0]])
        x = fake.array(x_np)
        kwargs = {"alpha": fake.array(alphas), "beta": fake.array(betas)}
        got = getattr(fake.adapter, name)(x, **kwargs).get()
        want = getattr(s2nn_xp, name)(x_np, alpha=alphas, beta=betas)
        np.testing.assert_allclose(got, want, rtol=1e-15)
        got_list = getattr(fake.adapter, name)(x, alpha=[2.0, 4.0, 8.0]).get()
        np.testing.assert_allclose(
            got_list, getattr(s2nn_xp, name)(x_np, alpha=alphas), rtol=1e-15
        )
        assert fake.kinds() == ["elementwise", "elementwise"]

    def test_array_parameters_follow_x_dtype(self, fake):
        x = fake.array([-0.5, 0.5], dtype=np.float16)
        got = fake.adapter.gradient(x, alpha=fake.array([4.0, 4.0]))
        assert got.dtype == np.float16
        np.testing.assert_array_equal(got.get(), fake.adapter.gradient(x).get())

    def test_integer_and_bool_input_promote_to_float64(self, fake):
        for values in ([-2, 0, 3], [True, False]):
            got = fake.adapter.gradient(fake.array(values))
            assert got.dtype == np.float64
            np.testing.assert_allclose(
                got.get(), s2nn_xp.gradient(np.array(values)), rtol=1e-15
            )

    def test_python_numbers_and_lists_are_accepted(self, fake):
        assert fake.adapter.forward(-0.0).get() == 1.0
        np.testing.assert_allclose(
            fake.adapter.origin([[-1.0, 0.0]]).get(), s2nn_xp.origin([[-1.0, 0.0]])
        )

    def test_x_is_not_modified(self, fake):
        x = fake.array([-2.0, -0.5, 0.0, 0.5, np.nan])
        before = x.get()
        for name in FUNCTIONS:
            call(fake, name, x)
        fake.adapter.vjp(x)[1](1.0)
        np.testing.assert_array_equal(x.get(), before)


def call_reference_rounded(name: str, x: np.ndarray) -> np.ndarray:
    """The mpmath reference, rounded to ``x``'s dtype, as float64."""
    want = reference_values(name, x.astype(np.float64))
    return want.astype(x.dtype).astype(np.float64)


class TestOut:
    """``out=``: preallocated results, in place, and the errors."""

    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_out_is_filled_and_returned(self, fake, name):
        x = fake.array(np.linspace(-2, 2, 13, dtype=np.float32))
        out = fake.array(np.zeros(13, dtype=np.float32))
        assert call(fake, name, x, out=out) is out
        np.testing.assert_array_equal(out.get(), call(fake, name, x).get())

    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_in_place(self, fake, name):
        values = np.linspace(-2, 2, 13)
        x = fake.array(values)
        assert call(fake, name, x, out=x) is x
        np.testing.assert_array_equal(
            x.get(), call(fake, name, fake.array(values)).get()
        )

    def test_strided_out(self, fake):
        x = fake.array(np.linspace(-2, 2, 8))
        buffer = fake.array(np.zeros(16))
        fake.adapter.gradient(x, out=buffer[::2])
        np.testing.assert_allclose(
            buffer.get()[::2], s2nn_xp.gradient(x.get()), rtol=1e-15
        )
        np.testing.assert_array_equal(buffer.get()[1::2], 0.0)
        assert fake.kinds() == ["elementwise"]

    def test_forward_and_gradient_out_pair(self, fake):
        x = fake.array(np.linspace(-2, 2, 9, dtype=np.float16))
        spike_out = fake.array(np.zeros(9, dtype=np.float16))
        spike, grad = fake.adapter.forward_and_gradient(x, out=(spike_out, None))
        assert spike is spike_out and grad.dtype == np.float16
        np.testing.assert_array_equal(grad.get(), fake.adapter.gradient(x).get())
        spike, grad = fake.adapter.forward_and_gradient(x, out=(x, None))
        assert spike is x

    @pytest.mark.parametrize(
        ("make_out", "error", "match"),
        [
            (lambda f, x: np.zeros(4), TypeError, "out must be a CuPy array"),
            (lambda f, x: f.array(np.zeros(5)), ValueError, r"out has shape \(5,\)"),
            (
                lambda f, x: f.array(np.zeros(4, dtype=np.float32)),
                TypeError,
                "out has dtype float32",
            ),
            (lambda f, x: x[::-1], ValueError, "out overlaps an input"),
        ],
    )
    def test_bad_out(self, fake, make_out, error, match):
        x = fake.array(np.linspace(-1, 1, 4))
        with pytest.raises(error, match=match):
            fake.adapter.gradient(x, out=make_out(fake, x))

    @pytest.mark.parametrize("in_place", [False, True])
    def test_out_whose_elements_share_memory_is_refused(self, fake, in_place):
        """GPU threads would write one element at once, some reading it
        written: ``forward`` of a broadcast -1 could come back 1."""
        base = fake.array(np.full(1, -1.0))
        shared = np.lib.stride_tricks.as_strided(
            base, shape=(2, 3), strides=(0, 0), subok=True, writeable=True
        )
        x = shared if in_place else fake.array(np.full((2, 3), -1.0))
        for name in FUNCTIONS:
            with pytest.raises(ValueError, match="out has elements that share memory"):
                call(fake, name, x, out=shared)
        assert fake.launches == [] and base.get()[0] == -1.0

    def test_out_of_any_layout_whose_elements_are_its_own_is_taken(self, fake):
        x = fake.array(np.linspace(-2, 2, 12).reshape(3, 4))
        want = s2nn_xp.gradient(x.get())
        buffer = fake.array(np.zeros((4, 3, 2)))
        # padded, transposed, reversed: no element shared
        for out in (buffer[:, :, 0].T, buffer[::-1, :, 1].T[::-1]):
            assert fake.adapter.gradient(x, out=out) is out
            np.testing.assert_array_equal(out.get(), want)

    def test_bad_out_pairs(self, fake):
        x = fake.array(np.linspace(-1, 1, 4))
        buffer = fake.array(np.zeros(4))
        with pytest.raises(ValueError, match="must not overlap"):
            fake.adapter.forward_and_gradient(x, out=(buffer, buffer))
        with pytest.raises(TypeError, match="pair"):
            fake.adapter.forward_and_gradient(x, out=buffer)
        with pytest.raises(TypeError, match=r"out\[1\] has dtype"):
            fake.adapter.forward_and_gradient(
                x, out=(None, fake.array(np.zeros(4, dtype=np.float32)))
            )


class TestVJP:
    """vjp: spike and gradient in one launch; the pullback in one more."""

    @pytest.mark.parametrize("dtype", FLOATS)
    @pytest.mark.parametrize("with_origin", [False, True])
    def test_values_and_launches(self, fake, dtype, with_origin):
        rng = np.random.default_rng(3)
        x_np = rng.normal(scale=2, size=(4, 6)).astype(dtype)
        ct_np = rng.normal(size=(4, 6)).astype(dtype)
        y, pullback = fake.adapter.vjp(fake.array(x_np), 2.0, 0.5, origin=with_origin)
        assert fake.kinds() == ["raw"]
        got_ct = pullback(fake.array(ct_np))
        assert fake.kinds() == ["raw", "raw"]
        assert y.dtype == got_ct.dtype == np.dtype(dtype)
        if with_origin:
            want_y = reference(ref_origin, x_np, alpha=2.0, beta=0.5)
        else:
            want_y = reference(ref_forward, x_np)
        grad = reference(ref_gradient, x_np, alpha=2.0, beta=0.5)
        compute = np.float32 if dtype == "float16" else dtype
        want_ct = ct_np.astype(compute) * grad.astype(compute)
        tolerance = 4 * np.finfo(dtype).eps
        np.testing.assert_allclose(y.get(), want_y.astype(dtype), rtol=tolerance)
        np.testing.assert_allclose(got_ct.get(), want_ct.astype(dtype), rtol=tolerance)

    def test_pullback_holds_the_gradient_not_x(self, fake):
        x = fake.array([-1.0, 0.0, 1.0])
        _, pullback = fake.adapter.vjp(x)
        first = pullback(1.0).get()
        x[...] = 5.0  # a reset in place
        np.testing.assert_array_equal(pullback(1.0).get(), first)
        np.testing.assert_allclose(first, s2nn_xp.gradient([-1.0, 0.0, 1.0]))

    def test_float16_pullback_rounds_once(self, fake):
        x16 = grid(4.0, 50, 10.0).astype(np.float16)
        _, pullback = fake.adapter.vjp(fake.array(x16))
        ct = np.full(x16.shape, 3.0, dtype=np.float16)
        got = pullback(fake.array(ct)).get()
        grad32 = fake.adapter.gradient(fake.array(x16.astype(np.float32))).get()
        np.testing.assert_array_equal(
            got, (np.float32(3.0) * grad32).astype(np.float16)
        )

    def test_cotangents(self, fake):
        x_np = np.zeros((2, 3), dtype=np.float16)
        _, pullback = fake.adapter.vjp(fake.array(x_np))
        for cotangent, want in [
            (2, np.full((2, 3), 2.0)),
            (0.5, np.full((2, 3), 0.5)),
            (fake.array([1.0, 2.0, 3.0]), np.broadcast_to([1.0, 2.0, 3.0], (2, 3))),
            (fake.array(np.ones((2, 3), dtype=np.float64)), np.ones((2, 3))),
            (fake.array(np.ones((2, 3), dtype=np.int32)), np.ones((2, 3))),
            ([[1.0], [2.0]], np.broadcast_to([[1.0], [2.0]], (2, 3))),
        ]:
            got = pullback(cotangent)
            assert got.dtype == np.float16
            np.testing.assert_array_equal(got.get(), want.astype(np.float16))
        # by name too, as every library's pullback (the Pullback protocol)
        np.testing.assert_array_equal(pullback(cotangent=2).get(), np.full((2, 3), 2.0))
        assert set(fake.kinds()[1:]) == {"elementwise"}

    def test_pullback_out_and_in_place(self, fake):
        _, pullback = fake.adapter.vjp(fake.array([-1.0, 1.0]))
        ct = fake.array([2.0, 2.0])
        out = fake.array([0.0, 0.0])
        assert pullback(ct, out=out) is out
        assert pullback(ct, out=ct) is ct
        np.testing.assert_array_equal(ct.get(), out.get())

    @pytest.mark.parametrize(
        ("cotangent", "error", "match"),
        [
            ([[1.0, 2.0]] * 2, ValueError, "cotangent of shape .2, 2. has more"),
            # a bool or complex number is refused as a kind, as every
            # adapter's pullback refuses it
            (True, TypeError, "cotangent must be a real number or an array, not"),
            (1j, TypeError, "cotangent must be a real number or an array, not"),
            ("2", TypeError, "cotangent"),
            # the shared rules of host data (its mask, a unit, digits) were not
            # the CuPy pullback's: the mask and the unit were dropped silently
            (
                np.ma.array([1.0, 2.0], mask=[False, True]),
                TypeError,
                "^cotangent is a masked NumPy array",
            ),
            (Quantity([1.0, 2.0], Unit("%")), TypeError, "^cotangent is a quantity"),
            ([Quantity([1.0, 2.0], Unit("%"))], TypeError, "^cotangent is a quantity"),
            (10**400, ValueError, "^cotangent is a number of 401 digits"),
        ],
    )
    def test_bad_cotangents(self, fake, cotangent, error, match):
        """Host data (NumPy, lists) is copied to the device as parameters are."""
        _, pullback = fake.adapter.vjp(fake.array([-1.0, 1.0]))
        with pytest.raises(error, match=match):
            pullback(cotangent)

    @pytest.mark.parametrize("cotangent", [1e300, np.array(1e300), [1e300, -1e300]])
    def test_a_cotangent_beyond_the_dtype_is_inf_quietly(self, fake, cotangent):
        """As NumPy's pullback: a 0-d one warned in NumPy's cast (an error
        under np.errstate(all="raise"))."""
        _, pullback = fake.adapter.vjp(fake.array(np.float32([-0.5, 0.5])))
        with np.errstate(all="raise"):
            got = pullback(cotangent).get()
        want = s2nn_xp.vjp(np.float32([-0.5, 0.5]))[1](cotangent)
        np.testing.assert_array_equal(got, want)
        assert np.isinf(got).all()

    def test_bad_cotangent_shapes(self, fake):
        _, pullback = fake.adapter.vjp(fake.array(np.zeros((2, 3))))
        with pytest.raises(ValueError, match=r"cotangent of shape \(4,\)"):
            pullback(fake.array(np.ones(4)))
        with pytest.raises(ValueError, match="more dimensions"):
            pullback(fake.array(np.ones((5, 2, 3))))


class TestArguments:
    """Errors name the offending argument, as in the core."""

    @pytest.mark.parametrize(
        ("x", "error", "match"),
        [
            ([[1.0], [1.0, 2.0]], ValueError, "^x is no rectangular array"),
            ([1.0, "2"], TypeError, "^x "),
            (Quantity([50.0], Unit("%")), TypeError, "^x is a quantity"),
        ],
    )
    def test_host_x_is_checked_as_every_adapter_checks_it(self, fake, x, error, match):
        """A ragged list raised NumPy's error (not naming x); a quantity was
        told to move to the GPU with cupy.asarray, which drops its unit."""
        with pytest.raises(error, match=match):
            fake.adapter.forward(x)

    @pytest.mark.parametrize(
        ("name", "value"),
        [("alpha", 0.0), ("alpha", np.inf), ("beta", -2), ("epsilon", np.nan)],
    )
    @pytest.mark.parametrize("function", ["origin", "s2nn", "vjp"])
    def test_bad_parameter_values(self, fake, function, name, value):
        with pytest.raises(ValueError, match=name):
            getattr(fake.adapter, function)(fake.array([0.5]), **{name: value})

    def test_parameter_arrays(self, fake):
        x = fake.array(np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"alpha of shape \(4,\)"):
            fake.adapter.gradient(x, alpha=fake.array(np.ones(4)))
        # NumPy values are host data, checked and copied as lists are.
        np.testing.assert_array_equal(
            fake.adapter.gradient(x, beta=np.full(3, 2.0)).get(), np.full((2, 3), 2.0)
        )
        with pytest.raises(ValueError, match="beta must be finite"):
            fake.adapter.gradient(x, beta=np.zeros(3))
        strict = pytest.importorskip("array_api_strict")
        with pytest.raises(TypeError, match=r"different libraries.*beta"):
            fake.adapter.gradient(x, beta=strict.ones(3))
        with pytest.raises(TypeError, match="alpha must have a real numeric dtype"):
            fake.adapter.gradient(x, alpha=fake.array([True, False, True]))
        with pytest.raises(TypeError, match="bool"):
            fake.adapter.gradient(x, alpha=True)
        # A number that is 0 in the compute dtype (float32 here) is no alpha > 0.
        x32 = fake.array(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="alpha=1e-300 is 0 in float32"):
            fake.adapter.gradient(x32, alpha=1e-300)
        with pytest.raises(ValueError, match="beta has values that are 0 in float32"):
            fake.adapter.gradient(x32, beta=[1e-300] * 3)
        fake.adapter.origin(x32, epsilon=1e-300)  # epsilon may be 0

    @pytest.mark.parametrize("origin", [False, True])
    def test_s2nn_checks_every_parameter_as_origin_does(self, fake, origin):
        """Also where the spike does not use them, as the core s2nn does."""
        x = fake.array(np.zeros((2, 3)))
        with pytest.raises(ValueError, match=r"epsilon of shape \(4,\)"):
            fake.adapter.s2nn(x, epsilon=fake.array(np.ones(4)), origin=origin)
        with pytest.raises(ValueError, match=r"alpha of shape \(4,\)"):
            s2nn_xp.s2nn(x.get(), alpha=np.ones(4), origin=origin)

    def test_bad_inputs(self, fake):
        with pytest.raises(TypeError, match="x must be a CuPy array"):
            fake.adapter.gradient(np.zeros(3))
        with pytest.raises(TypeError, match="complex"):
            fake.adapter.gradient(fake.array([1 + 1j]))
        with pytest.raises(TypeError, match="x must"):
            fake.adapter.forward("text")


# --- Kernels that cannot run ----------------------------------------------------

FORCED_FAILURE = "forced build failure"
FALLBACK_CALLS = (
    "forward",
    "origin",
    "gradient",
    "forward_and_gradient",
    "vjp",
    "vjp origin",
)


def fallback_call(name: str, library, x, cotangent) -> list:
    """The results of ``name`` from ``library``: the adapter, or ``s2nn_xp``."""
    if name == "forward_and_gradient":
        if library is s2nn_xp:
            return [s2nn_xp.forward(x), s2nn_xp.gradient(x, 2.0, 0.5)]
        return list(library.forward_and_gradient(x, 2.0, 0.5))
    if name.startswith("vjp"):
        y, pullback = library.vjp(x, 2.0, 0.5, 0.0, origin=name == "vjp origin")
        return [y, pullback(cotangent)]
    if name == "forward":
        return [library.forward(x)]
    if name == "origin":
        return [library.origin(x, 2.0, 0.5, 0.0)]
    return [library.gradient(x, 2.0, 0.5)]


@pytest.fixture
def broken_build(fake, monkeypatch):
    """Every kernel source fails to compile; ``fake.builds`` counts the tries."""
    broken = kernels.DEVICE_MATH + f"\n#error {FORCED_FAILURE}\n"
    monkeypatch.setattr(kernels, "DEVICE_MATH", broken)
    fake.builds = []
    load = fake.compiler.load

    def counting_load(source):
        fake.builds.append(source)
        return load(source)

    monkeypatch.setattr(fake.compiler, "load", counting_load)
    return fake


def assert_same_results(got: list, want: list, fake) -> None:
    """Arrays of the (fake) device, equal to the NumPy results bit for bit."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, fake.ndarray)
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g.get(), w)


class TestFallback:
    """A kernel that fails to build or launch leaves the call to the array-API
    math: one warning naming the cause, the same values, no second try."""

    @pytest.mark.parametrize("layout", ["contiguous", "strided"])
    @pytest.mark.parametrize(
        ("name", "dtype"),
        [(name, "float16") for name in FALLBACK_CALLS]
        + [("vjp", "float32"), ("vjp origin", "float64")],
    )
    def test_build_failure_gives_the_array_api_values(
        self, broken_build, name, dtype, layout
    ):
        fake = broken_build
        with np.errstate(over="ignore"):
            x_np = np.concatenate([SPECIAL_X, grid(2.0, 40, 10.0)]).astype(dtype)
        cotangent_np = np.linspace(-3, 3, x_np.size).astype(dtype)
        if layout == "strided":
            x = fake.array(np.repeat(x_np, 2))[::2]
            cotangent = fake.array(np.repeat(cotangent_np, 2))[::2]
        else:
            x, cotangent = fake.array(x_np), fake.array(cotangent_np)
        with pytest.warns(_fused.FusedKernelWarning, match=FORCED_FAILURE) as caught:
            got = fallback_call(name, fake.adapter, x, cotangent)
        assert_same_results(got, fallback_call(name, s2nn_xp, x_np, cotangent_np), fake)
        # the warning points at the caller's line, and names kernel and device
        assert {w.filename for w in caught} == {__file__}
        assert all("on CUDA device 0" in str(w.message) for w in caught)
        # the vjp and its pullback share the contiguous module: one warning;
        # the elementwise kernels are two, each warned about once
        kernels_used = 2 if name.startswith("vjp") and layout == "strided" else 1
        assert len(caught) == kernels_used

    def test_a_failed_kernel_is_not_tried_again(self, broken_build):
        fake = broken_build
        x = fake.array(np.linspace(-2.0, 2.0, 16))
        with pytest.warns(_fused.FusedKernelWarning, match=FORCED_FAILURE):
            fake.adapter.gradient(x)
        builds = len(fake.builds)
        assert builds == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a second warning would raise
            got = fake.adapter.gradient(x)
            fake.adapter.forward_and_gradient(x)  # the same module: no try
        assert len(fake.builds) == builds
        np.testing.assert_array_equal(got.get(), s2nn_xp.gradient(x.get()))
        # another kernel (float32 x) is tried, and warned about, by itself
        with pytest.warns(_fused.FusedKernelWarning, match="float32"):
            fake.adapter.gradient(x.astype(np.float32))
        assert len(fake.builds) == builds + 1

    def test_out_and_in_place(self, broken_build):
        fake = broken_build
        values = np.linspace(-2.0, 2.0, 9, dtype=np.float32)
        x = fake.array(values)
        buffer = fake.array(np.zeros(18, dtype=np.float32))
        with pytest.warns(_fused.FusedKernelWarning):
            spike, _ = fake.adapter.forward_and_gradient(x, out=(x, buffer[::2]))
        assert spike is x
        np.testing.assert_array_equal(x.get(), s2nn_xp.forward(values))
        np.testing.assert_array_equal(buffer.get()[::2], s2nn_xp.gradient(values))
        np.testing.assert_array_equal(buffer.get()[1::2], 0.0)

    def test_per_neuron_parameters_and_scalar_cotangents(self, broken_build):
        fake = broken_build
        x_np = np.random.default_rng(4).normal(scale=2, size=(5, 3))
        alpha = np.array([2.0, 4.0, 8.0])
        x, alpha_array = fake.array(x_np), fake.array(alpha)
        # each elementwise kernel fails, and is named, by itself
        with pytest.warns(_fused.FusedKernelWarning, match="kernel origin "):
            got = fake.adapter.origin(x, alpha=alpha_array)
        with pytest.warns(_fused.FusedKernelWarning, match="forward_and_gradient"):
            _, pullback = fake.adapter.vjp(x, alpha=alpha_array)
        with pytest.warns(_fused.FusedKernelWarning, match="pullback_scalar"):
            scaled = pullback(2)
        np.testing.assert_array_equal(got.get(), s2nn_xp.origin(x_np, alpha=alpha))
        np.testing.assert_array_equal(
            scaled.get(), s2nn_xp.vjp(x_np, alpha=alpha)[1](2.0)
        )

    def test_launch_failure_falls_back_and_other_kernels_still_run(self, fake):
        fake.adapter._LAUNCH = fake.adapter._LaunchConfiguration(2048, 4)
        x = fake.array(np.linspace(-2.0, 2.0, 64))
        with pytest.warns(_fused.FusedKernelWarning, match="CUDA_ERROR_INVALID_VALUE"):
            got = fake.adapter.gradient(x)
        np.testing.assert_array_equal(got.get(), s2nn_xp.gradient(x.get()))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fake.adapter.gradient(x)  # not tried again
            strided = fake.adapter.gradient(x[::2])  # the elementwise kernel runs
        assert fake.kinds() == ["elementwise"]
        np.testing.assert_array_equal(strided.get(), s2nn_xp.gradient(x.get()[::2]))

    def test_a_failure_while_a_graph_is_captured_is_raised_each_time(
        self, broken_build
    ):
        """CUDA loses the capture whatever runs next: the math cannot serve,
        and the kernel may run once the user warms up before capturing."""
        fake = broken_build
        x = fake.array(np.linspace(-2.0, 2.0, 16))
        fake.stream.capturing = True
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no FusedKernelWarning either
            for _ in range(2):
                with pytest.raises(Exception, match=FORCED_FAILURE) as raised:
                    fake.adapter.gradient(x)
                assert not isinstance(raised.value, Warning)  # the compiler's
        assert len(fake.builds) == 2  # not remembered
        fake.stream.capturing = False
        with pytest.warns(_fused.FusedKernelWarning, match=FORCED_FAILURE):
            got = fake.adapter.gradient(x)
        np.testing.assert_array_equal(got.get(), s2nn_xp.gradient(x.get()))

    def test_an_error_of_earlier_work_is_raised_not_blamed_on_the_kernel(self, fake):
        """An illegal address in another kernel, which CUDA reports at this
        launch: the user's bug, not one to report here, nor a reason to turn
        the kernel off."""
        fake.adapter._LAUNCH = fake.adapter._LaunchConfiguration(2048, 4)
        x = fake.array(np.linspace(-2.0, 2.0, 64))
        fake.stream.error = RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RuntimeError, match="CUDA_ERROR_INVALID_VALUE"):
                fake.adapter.gradient(x)
        assert not _fused._failed  # not turned off
        fake.stream.error = None
        with pytest.warns(_fused.FusedKernelWarning, match="CUDA_ERROR_INVALID_VALUE"):
            got = fake.adapter.gradient(x)
        np.testing.assert_array_equal(got.get(), s2nn_xp.gradient(x.get()))


class TestDevices:
    """Work and results on ``x``'s device, whichever device is current."""

    def test_arrays_on_another_device_are_refused_in_the_shared_words(self, fake):
        """A parameter, an ``out`` or a cotangent on another device than x:
        the adapter wrote its own message, without the remedy every other
        backend's gives (_validation.check_same_device)."""
        x = fake.array([0.5, -0.5])
        elsewhere = fake.array([1.0, 1.0], device=1)
        said = "{0} is on device 1, x on device 0; move {0} to x's"
        with pytest.raises(ValueError, match="^" + said.format("alpha")):
            fake.adapter.origin(x, alpha=elsewhere)
        with pytest.raises(ValueError, match="^" + said.format("out")):
            fake.adapter.forward(x, out=elsewhere)
        _, pullback = fake.adapter.vjp(x)
        with pytest.raises(ValueError, match="^" + said.format("cotangent")):
            pullback(elsewhere)

    @pytest.mark.parametrize("dtype", ["int64", "bool", "float32", "float16"])
    @pytest.mark.parametrize("name", FUNCTIONS)
    def test_results_are_on_the_device_of_x(self, fake, name, dtype):
        values = np.array([-2, 0, 1, 3]).astype(dtype)
        x = fake.array(values, device=1)
        assert fake.current_device == 0
        result = call(fake, name, x)
        assert result.device.id == 1  # integers were cast on device 0
        assert fake.current_device == 0
        want = call(fake, name, fake.array(values))
        np.testing.assert_array_equal(result.get(), want.get())


class TestFusedHelper:
    """s2nn_xp._fused, the one fallback rule of the Triton and CUDA kernels."""

    def test_docstring_examples(self, monkeypatch):
        monkeypatch.setattr(_fused, "_failed", set())
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # the example records its own
            result = doctest.testmod(_fused, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0
        assert result.failed == 0

    def test_memory_errors_propagate_and_are_not_remembered(self, monkeypatch):
        monkeypatch.setattr(_fused, "_failed", set())

        def out_of_memory():
            raise MemoryError("out of memory")

        with pytest.raises(MemoryError):
            _fused.launched("kernel", "device", out_of_memory)
        assert _fused.launched("kernel", "device", lambda: None)

    def test_long_causes_are_cut(self, monkeypatch):
        monkeypatch.setattr(_fused, "_failed", set())

        def compiler_log():
            raise RuntimeError("error: " + "x" * 10_000)

        with pytest.warns(_fused.FusedKernelWarning) as caught:
            assert not _fused.launched("kernel", "device", compiler_log)
        assert len(str(caught[0].message)) < 1500
        assert "[...]" in str(caught[0].message)
