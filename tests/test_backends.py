"""The backend registry (behind dispatch, `s2nn-xp`, the docs' table and the
test fixtures) matches the code.

Each backend's session checks its own entry: the dtypes it lists work, its
arrays and namespace are recognised as its own, the autodiff transforms it
names run with the surrogate derivatives, and the adapter it points to
implements what the entry says, and the public functions dispatch to it.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _backends, _compat, _dispatch, _object
from tests._support import (
    backend_of,
    load_backend,
    ref_dgradient_dx,
    reference,
    selected_backends,
    to_numpy,
)

X = np.array([-1.5, -1.0, -0.25, 0.0, 0.5, 2.0])
PUBLIC_FUNCTIONS = [name for name in s2nn_xp.__all__ if name.islower()]
BACKENDS = list(_backends.BACKENDS.values())


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_an_entry_names_public_functions_of_an_existing_adapter(backend):
    assert set(backend.implements) <= set(PUBLIC_FUNCTIONS)
    if backend.adapter is not None:
        assert importlib.util.find_spec(backend.adapter) is not None
    assert set(backend.dtypes) <= {"float16", "bfloat16", "float32", "float64"}


def test_an_entry_that_implements_functions_needs_an_adapter():
    numpy_entry = _backends.get("numpy")
    with pytest.raises(ValueError, match="without adapter"):
        dataclasses.replace(numpy_entry, implements=("s2nn",))
    with pytest.raises(ValueError, match="adapter_with_library without adapter"):
        dataclasses.replace(numpy_entry, adapter_with_library=True)


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown backend 'nope'; known: numpy, "):
        _backends.get("nope")


def test_capabilities_follow_transforms_and_dtypes():
    jax_entry = _backends.get("jax")
    capability = _backends.Capability
    jax_lacks = {capability.HOST_VALUES, capability.MUTABLE_ARRAYS}
    assert jax_entry.capabilities == set(capability) - jax_lacks
    runs_eagerly = _backends.get("numpy").jit  # the default
    eager = dataclasses.replace(
        jax_entry, transforms=("grad",), dtypes=("float32",), jit=runs_eagerly
    )
    assert eager.capabilities == {capability.AUTODIFF}
    assert _backends.get("numpy").capabilities == {
        capability.FLOAT16,
        capability.HOST_VALUES,
        capability.MUTABLE_ARRAYS,
    }
    # A new record's array parameter values are checked unless it says they
    # cannot be read (the safe default), and its arrays copied where kept.
    minimal = _backends.Backend("new", "new", ("new",), lambda xp: False)
    assert {capability.HOST_VALUES, capability.MUTABLE_ARRAYS} <= minimal.capabilities


def test_a_runtime_that_cannot_count_its_devices_has_none():
    def raising():
        msg = "Unknown backend: 'cuda' requested, but no platforms are 'cuda'"
        raise RuntimeError(msg)

    for name in ("jax", "cupy", "numpy"):
        entry = dataclasses.replace(_backends.get(name), devices=raising)
        assert not entry.has_device()
    nothing = dataclasses.replace(_backends.get("numpy"), devices=list)
    assert not nothing.has_device()
    assert _backends.get("numpy").has_device()


def test_an_arrays_device_is_named_as_its_record_names_devices(xp):
    """``s2nn-xp bench`` records the device as ``s2nn-xp info`` lists it
    (a CuPy device prints as ``<CUDA Device 0>``: recorded as ``cuda:0``)."""
    x = xp.asarray([1.0, 2.0])
    assert backend_of(xp).device_name(x) in backend_of(xp).devices()


class _OnPlatform:
    """Stands for an array on one device of a JAX platform."""

    def __init__(self, platform: str) -> None:
        self.platform = platform

    def devices(self) -> set[object]:
        return {self}


@pytest.mark.parametrize(
    ("platform", "dtype", "arithmetic", "comparisons"),
    [
        ("cpu", np.float32, True, True),
        ("cpu", np.float64, True, True),
        # measured on an H200 (JAX 0.11.2): float32 arithmetic flushes (a
        # subnormal alpha gave NaN), a negative subnormal x does not spike
        ("cuda", np.float32, True, False),
        ("cuda", np.float64, False, False),
        ("tpu", np.float32, True, True),
    ],
)
def test_jax_flushes_subnormals_by_platform_and_dtype(
    platform, dtype, arithmetic, comparisons
):
    """Subnormal parameters are refused where arithmetic flushes them; a
    negative subnormal x spikes where comparisons do."""
    jax = _backends.get("jax")
    x = _OnPlatform(platform)
    assert jax.flushes(x, dtype) is arithmetic
    assert jax.flushes_input(x, dtype) is comparisons


def test_input_flushes_as_arithmetic_unless_a_record_says_otherwise():
    cupy = _backends.get("cupy")
    assert cupy.flushes_subnormal_input is None
    for dtype in (np.float32, np.float64):
        assert cupy.flushes_input(None, dtype) is cupy.flushes(None, dtype)
    assert _backends.get("numpy").flushes_input(None, np.float32) is False


@pytest.mark.skipif("jax" not in selected_backends(), reason="jax not selected")
def test_jax_asked_for_a_platform_it_lacks_has_no_device():
    pytest.importorskip("jax")
    code = (
        "from s2nn_xp import _backends; jax = _backends.get('jax');"
        "assert jax.is_installed(); assert not jax.has_device();"
        "assert 'jax' not in [b.name for b in _backends.available()]"
    )
    env = {**os.environ, "JAX_PLATFORMS": "no_such_platform"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_the_entry_of_this_backend(xp):
    backend = backend_of(xp)
    assert backend.is_installed()
    assert backend.has_device()
    assert backend.load() is xp
    ns = s2nn_xp._compat.array_namespace(xp.asarray(0.0))
    assert _backends.of_namespace(ns) is backend, (
        f"{ns.__name__} is not matched to the record {backend.name!r}: check its "
        "array_modules and is_namespace"
    )
    for dtype in backend.dtypes:
        x = _astype(ns, xp.asarray(X), dtype, backend.name)
        assert s2nn_xp.gradient(x).dtype == x.dtype
    # Every floating dtype the namespace has is listed (a record leaving one
    # out would skip its tests silently).
    offered = {d for d in _backends._FLOAT_DTYPES if getattr(ns, d, None) is not None}
    assert offered <= set(backend.dtypes), offered - set(backend.dtypes)
    # NumPy's float16 too where the namespace takes it without naming it
    # (Dask's; a cubed record left it out by the rule above, and its
    # float16 tests skipped).
    if "float16" not in backend.dtypes:
        try:
            half = ns.astype(xp.asarray(X), np.dtype("float16"))
            computes = s2nn_xp.gradient(half).dtype == np.float16
        except Exception:  # refused: the library has no float16
            computes = False
        assert not computes, (
            f"{backend.name!r} computes NumPy's float16: its record's dtypes need it"
        )
    x = backend.asarray(X)
    assert _backends.of_array(x) is backend
    # array-api-compat's is_lazy_array knows some libraries: where it says
    # lazy, so does the record, but for a library that compiles (JAX's arrays
    # it counts as lazy, as they may be traced; values_on_host=False covers
    # that).
    compiles = _backends.Capability.JIT in backend.capabilities
    if s2nn_xp._compat.is_lazy_array(x) and not compiles:
        assert backend.lazy, (
            f"{backend.name!r}: its arrays are lazy (array-api-compat's "
            "is_lazy_array): its record needs lazy=True"
        )
    # A record says whether its arrays can be changed in place: an S2NN
    # object keeps its own copy of such an epsilon (an array of a record
    # that said no was kept, and an assignment changed the object).
    changed = backend.asarray(X)
    try:
        changed[...] = 0.5
    except (TypeError, ValueError, NotImplementedError):
        assert not backend.mutable_arrays, (
            f"{backend.name!r}: its arrays refuse item assignment: its record "
            "needs mutable_arrays=False"
        )
    else:
        assert backend.mutable_arrays, (
            f"{backend.name!r}: its arrays take item assignment: its record "
            "needs mutable_arrays=True (the default)"
        )
        np.testing.assert_array_equal(backend.to_numpy(changed), np.full_like(X, 0.5))
    np.testing.assert_array_equal(backend.to_numpy(x), X)
    grad = to_numpy(backend.autodiff_gradient(x, 4.0, 1.0))
    np.testing.assert_allclose(grad, s2nn_xp.gradient(X), rtol=1e-6)
    spike, grad = backend.forward_and_backward()(x, backend.asarray(2 * X))
    backend.synchronize((spike, grad))
    np.testing.assert_allclose(to_numpy(grad), 2 * X * s2nn_xp.gradient(X), 1e-6)
    # The devices found here are of the kinds the entry lists ("cuda:0" is
    # "cuda", JAX's "TFRT_CPU_0" or "cpu:0" is "cpu").
    for device in backend.devices():
        # the name before ":", less JAX's "tfrt_" and "_<index>" ("npu2" stays)
        kind = device.lower().split(":")[0].removeprefix("tfrt_")
        kind = re.sub(r"_[0-9]+$", "", kind)
        assert kind in backend.device_kinds, (device, backend.device_kinds)


def _astype(ns, x, name, record):
    """``x`` as ``ns``'s dtype ``name``, NumPy's standing in for one it does not name.

    (Dask's namespace names no float16 but takes NumPy's; ml_dtypes gives
    NumPy a bfloat16.) A library that has neither fails here, in these
    words, not deep inside its ``astype``.
    """
    own = getattr(ns, name, None)
    try:
        return ns.astype(x, np.dtype(name) if own is None else own)
    except Exception as exc:
        pytest.fail(
            f"the record {record!r} lists {name!r} in dtypes, which "
            f"{ns.__name__} does not have ({exc!r})"
        )


@pytest.mark.parametrize("name", PUBLIC_FUNCTIONS)
def test_each_public_function_dispatches_as_the_entry_says(xp, name, monkeypatch):
    backend = backend_of(xp)
    x = backend.asarray(X)
    assert (_dispatch.adapter_for(x) is None) == (backend.adapter is None)
    found = _dispatch.implementation(name, x)
    if name not in backend.implements:
        assert found is None
        return
    adapter = _dispatch.adapter_for(x)
    assert found is getattr(adapter, name)
    calls = []
    monkeypatch.setattr(adapter, name, lambda *a, **k: calls.append(a) or "adapter")
    assert getattr(s2nn_xp, name)(x) == "adapter"
    assert calls and calls[0][0] is x


def _jax_transforms():
    import jax
    import jax.numpy as jnp

    f = s2nn_xp.s2nn
    x = jnp.asarray(X)
    one = jnp.ones_like(x)
    first, second = s2nn_xp.gradient(X), reference(ref_dgradient_dx, X)
    return {
        "grad": (lambda: jax.grad(lambda v: f(v).sum())(x), first),
        "vjp": (lambda: jax.vjp(f, x)[1](one)[0], first),
        "jvp": (lambda: jax.jvp(f, (x,), (one,))[1], first),
        "vmap": (lambda: jax.vmap(jax.grad(f))(x), first),
        "jit": (lambda: jax.jit(jax.grad(lambda v: f(v).sum()))(x), first),
        "hessian": (lambda: jnp.diagonal(jax.hessian(lambda v: f(v).sum())(x)), second),
        "linearize": (lambda: jax.linearize(f, x)[1](one), first),
        "checkpoint": (lambda: jax.vmap(jax.grad(jax.checkpoint(f)))(x), first),
        "lax.scan": (
            lambda: jax.lax.scan(lambda c, v: (c, jax.grad(f)(v)), 0.0, x)[1],
            first,
        ),
    }


def _torch_transforms():
    import torch

    f = s2nn_xp.s2nn
    first, second = s2nn_xp.gradient(X), reference(ref_dgradient_dx, X)

    def leaf():
        return torch.asarray(X, requires_grad=True)

    def backward():
        x = leaf()
        f(x).sum().backward()
        return x.grad

    def double_backward():
        x = leaf()
        (g,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        g.sum().backward()
        return x.grad

    def autograd_grad():
        x = leaf()
        return torch.autograd.grad(f(x).sum(), x)[0]

    def compiled():
        x = leaf()
        torch.compile(f, fullgraph=True)(x).sum().backward()
        return x.grad

    x = torch.asarray(X)
    one = torch.ones_like(x)
    return {
        "backward": (backward, first),
        "autograd.grad": (autograd_grad, first),
        "double backward": (double_backward, second),
        "func.grad": (lambda: torch.func.grad(lambda v: f(v).sum())(x), first),
        "func.vmap": (lambda: torch.func.vmap(torch.func.grad(f))(x), first),
        "func.jvp": (lambda: torch.func.jvp(f, (x,), (one,))[1], first),
        "func.jacrev": (lambda: torch.diagonal(torch.func.jacrev(f)(x)), first),
        "func.jacfwd": (lambda: torch.diagonal(torch.func.jacfwd(f)(x)), first),
        "func.hessian": (
            lambda: torch.diagonal(torch.func.hessian(lambda v: f(v).sum())(x)),
            second,
        ),
        "compile": (compiled, first),
    }


_TRANSFORMS = {"jax": _jax_transforms, "torch": _torch_transforms}


@pytest.mark.requires_autodiff
def test_named_transforms_carry_the_surrogate_derivatives(xp):
    backend = backend_of(xp)
    transforms = _TRANSFORMS[backend.name]()
    assert set(transforms) == set(backend.transforms)
    for transform, (run, want) in transforms.items():
        np.testing.assert_allclose(
            to_numpy(run()), want, rtol=1e-6, atol=1e-12, err_msg=transform
        )


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"dtypes": "float32"}, TypeError, "dtypes must be a tuple of str"),
        ({"array_modules": "numpy"}, TypeError, "array_modules must be a tuple"),
        ({"array_modules": ()}, ValueError, "array_modules is empty"),
        ({"array_modules": ("",)}, ValueError, "array_modules names ''"),
        ({"transforms": ("grad", "")}, ValueError, "transforms names ''"),
        ({"values_on_host": "no"}, TypeError, "values_on_host must be a bool"),
        ({"device_kinds": "cpu"}, TypeError, "device_kinds must be a tuple of str"),
        ({"device_kinds": ()}, ValueError, "device_kinds is empty"),
        ({"dtypes": ("float16", "float64")}, ValueError, "must include float32"),
        ({"dtypes": ("float32", "float_16")}, ValueError, "be among"),
        ({"implements": ("s2nn", "spike")}, ValueError, r"\['spike'\]"),
        ({"name": ""}, ValueError, "name is ''"),
        ({"name": 3}, TypeError, "name must be a str, not 3"),
        ({"module": ""}, ValueError, "module is ''"),
        ({"module": ("numpy",)}, TypeError, "module must be a str"),
        ({"fused": None}, TypeError, "fused must be a str"),
        ({"adapter": 3}, TypeError, "adapter must be a str or None"),
        ({"is_namespace": None}, TypeError, "is_namespace must be a callable"),
        ({"devices": ["cpu"]}, TypeError, "devices must be a callable"),
        ({"is_array": "x"}, TypeError, "is_array must be a callable or None"),
        ({"dtypes": ("float32", "float32")}, ValueError, "dtypes names a value twice"),
        # Selected in text (S2NN_XP_BACKENDS, nox, "cpu"), found by top level.
        ({"name": "pydata-sparse"}, ValueError, r"name must be lowercase names"),
        ({"name": "a,b"}, ValueError, r"not \['a,b'\]"),
        ({"device_kinds": ("CPU",)}, ValueError, r"device_kinds must be lowercase"),
        ({"array_modules": ("sparse.numba",)}, ValueError, "top-level module names"),
        # Autodiff without an adapter: in-place math, the step's gradient 0.
        (
            {"transforms": ("grad",)},
            ValueError,
            r"names transforms \('grad',\), so its adapter must implement every "
            r"public function; it lacks forward, origin, gradient, s2nn, vjp",
        ),
        # Which tests run compiled is the transforms' say (none would, silently).
        (
            {"jit": lambda fn: fn},
            ValueError,
            r"jit without naming compile or jit in transforms",
        ),
    ],
)
def test_a_malformed_entry_is_refused_naming_the_field(change, error, match):
    with pytest.raises(error, match=match):
        dataclasses.replace(_backends.get("numpy"), **change)


def test_every_adapter_named_in_a_record_exists():
    """A record's adapter is imported when the library's first array arrives:
    a name that names no module fails there, far from the record."""
    import importlib.util

    for backend in _backends.BACKENDS.values():
        if backend.adapter is not None:
            assert importlib.util.find_spec(backend.adapter), backend.name


def test_two_entries_of_one_name_or_array_module_are_refused():
    numpy_entry = _backends.get("numpy")
    sparse = dataclasses.replace(numpy_entry, name="sparse", array_modules=("sparse",))
    assert list(_backends._registry(numpy_entry, sparse)) == ["numpy", "sparse"]
    with pytest.raises(ValueError, match="two backend records are named 'numpy'"):
        _backends._registry(numpy_entry, dataclasses.replace(sparse, name="numpy"))
    with pytest.raises(ValueError, match=r"'numpy' and 'sparse' both claim .*'numpy'"):
        _backends._registry(
            numpy_entry, dataclasses.replace(sparse, array_modules=("numpy",))
        )


@pytest.mark.parametrize("device_kinds", [("cpu",), ("cuda",)])
def test_a_selected_backend_that_is_not_installed_fails(monkeypatch, device_kinds):
    """A typo in a record's module (or in its session's extra) fails its session.

    GPU-only backends too: only their CUDA libraries may be missing there.
    """
    typo = dataclasses.replace(
        _backends.get("numpy"),
        name="sparse",
        module="sprase",
        array_modules=("sprase",),
        device_kinds=device_kinds,
    )
    monkeypatch.setitem(_backends.BACKENDS, "sparse", typo)
    monkeypatch.setenv("S2NN_XP_BACKENDS", "sparse")
    with pytest.raises(
        pytest.fail.Exception, match="'sparse' was selected but does not"
    ):
        _load_or_fail_on_skip("sparse")
    monkeypatch.setenv("S2NN_XP_BACKENDS", "numpy")
    with pytest.raises(pytest.skip.Exception, match="sparse is not installed"):
        load_backend("sparse")


@pytest.mark.parametrize(
    "devices",
    [lambda: 1 / 0, lambda: [], lambda: None],
    ids=["raises", "[]", "None"],
)
def test_a_selected_cpu_backend_that_finds_no_device_fails(monkeypatch, devices):
    """A broken device lister would skip every test: its session passed empty."""
    broken = dataclasses.replace(_backends.get("numpy"), devices=devices)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", broken)
    monkeypatch.setenv("S2NN_XP_BACKENDS", "numpy")
    with pytest.raises(pytest.fail.Exception, match="runs on CPUs, but finds no"):
        _load_or_fail_on_skip("numpy")
    gpu_only = dataclasses.replace(broken, device_kinds=("cuda",))
    monkeypatch.setitem(_backends.BACKENDS, "numpy", gpu_only)
    with pytest.raises(pytest.skip.Exception, match="finds no device here"):
        load_backend("numpy")  # a GPU-only backend on a machine without one


def _load_or_fail_on_skip(name):
    try:
        load_backend(name)
    except pytest.skip.Exception as exc:  # a skip would pass its session
        raise AssertionError(f"skipped: {exc}") from None


def test_every_backend_has_its_nox_session_and_readme_entry():
    """The registry, the nox matrix and the README's list name the same backends.

    A record without a session is tested nowhere; one missing from the README
    is a session users do not know to run.
    """
    repo = Path(__file__).resolve().parents[1]
    noxfile = (repo / "noxfile.py").read_text()
    listed = re.search(r"nox\.options\.sessions = \[(.*?)\]", noxfile, re.S)
    assert listed is not None
    sessions = re.findall(r'"(\w+)"', listed.group(1))
    defined = _nox_sessions(noxfile)
    for name in _backends.BACKENDS:
        assert name in sessions, f"{name} is not in nox.options.sessions"
        assert name in defined, f"noxfile.py has no session {name!r}"
        assert f'_pytest(session, "{name}"' in defined[name], (
            f"session {name!r} does not run the suite on {name} "
            f'(_pytest(session, "{name}"))'
        )
    readme = (repo / "README.md").read_text()
    per_backend = re.search(r"one session per backend\s*\((.*?)\)", readme, re.S)
    assert per_backend is not None
    in_readme = re.findall(r"`(\w+)`", per_backend.group(1))
    assert sorted(in_readme) == sorted(_backends.BACKENDS), (
        "the README's list of sessions per backend and the registry differ"
    )


def test_every_backends_session_installs_extras_that_exist_and_join_all():
    """The extras a backend's session installs are in ``pyproject.toml``, and
    those of a library that runs on the CPU join ``all`` (nothing checked
    the extras: a missing one failed only when the session installed it)."""
    repo = Path(__file__).resolve().parents[1]
    sessions = _nox_sessions((repo / "noxfile.py").read_text())
    section = _optional_dependencies()
    extras = set(re.findall(r"^([\w-]+) = ", section, re.M))
    everything = re.search(r'^all = \["s2nn-xp\[([\w,-]+)\]"\]$', section, re.M)
    assert everything is not None, 'pyproject.toml: all = ["s2nn-xp[...]"]'
    in_all = set(everything.group(1).split(","))
    tools = {"test", "plot", "docs", "examples"}
    for name, backend in _backends.BACKENDS.items():
        assert name in sessions, f"backend {name!r} has no nox session"
        installed = {
            extra
            for group in re.findall(r'"-e", "\.\[([\w,-]+)\]"', sessions[name])
            for extra in group.split(",")
        }
        assert installed, f"session {name!r} installs no extra of the package"
        unknown = sorted(installed - extras)
        assert not unknown, (
            f"session {name!r} installs extras {unknown} that do not exist"
        )
        if "cpu" in backend.device_kinds:
            outside = sorted(installed - tools - in_all)
            assert not outside, f"extras {outside} of {name!r} are not in all"


def test_the_readme_names_every_extra_and_what_all_holds():
    """The README's install section names each extra of ``pyproject.toml``
    (a command ``s2nn-xp[name]``, or its list of the others) and what
    ``all`` installs (a new backend's extra left it stale, and nothing
    said so)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = _optional_dependencies()
    extras = set(re.findall(r"^([\w-]+) = ", section, re.M))
    others = re.search(r"The other extras:(.*?)\n\n", readme, re.S)
    assert others is not None, "README: no paragraph 'The other extras: ...'"
    named = set(re.findall(r"s2nn-xp\[([\w-]+)\]", readme))
    named |= set(re.findall(r"`([\w-]+)`", others.group(1)))
    missing = sorted(extras - named)
    assert not missing, f"the README names no extra {missing}"
    everything = re.search(r'^all = \["s2nn-xp\[([\w,-]+)\]"\]$', section, re.M)
    said = re.search(r"`all` \(([^)]*)\)", others.group(1))
    assert everything is not None and said is not None
    assert sorted(re.split(r",\s*", said.group(1))) == sorted(
        everything.group(1).split(",")
    ), "the README's `all (...)` and pyproject's all differ"


def test_the_oldest_version_of_each_library_is_its_extras_lower_bound():
    """An adapter refuses a framework older than its record's ``oldest``;
    pyproject's extra installs no older one. A library with an adapter
    names one (it had none: torch 2.4.1 was taken, its transforms failed)."""
    section = _optional_dependencies()
    for name, backend in _backends.BACKENDS.items():
        if backend.adapter is not None:
            assert backend.oldest is not None, f"backend {name!r} names no oldest"
        if backend.oldest is None:
            continue
        extra = re.search(rf"^{name} = \[(.*)\]$", section, re.M)
        assert extra is not None, f"pyproject.toml has no extra {name!r}"
        top_level = backend.module.partition(".")[0]
        requirement = rf'"{top_level}[\w-]*(?:\[\w+\])?>=([\d.]+)'
        bounds = re.findall(requirement, extra.group(1))
        assert bounds == [backend.oldest], (name, extra.group(1), backend.oldest)


def _optional_dependencies() -> str:
    """The text of ``pyproject.toml``'s ``[project.optional-dependencies]``."""
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    section = re.search(
        r"^\[project\.optional-dependencies\]\n(.*?)^\[", pyproject, re.S | re.M
    )
    assert section is not None
    return section.group(1)


def _nox_sessions(source: str) -> dict[str, str]:
    """Each nox session of a noxfile's ``source``, by name: its function's code.

    A session is a function decorated with ``nox.session`` (called or not);
    its name is the decorator's ``name=`` or the function's.
    """
    sessions = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if ast.unparse(target) != "nox.session":
                continue
            name = node.name
            for keyword in call.keywords if call else ():
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    name = keyword.value.value
            sessions[name] = ast.get_source_segment(source, node) or ""
    return sessions


def test_the_default_as_numpy_refuses_what_numpy_cannot_read():
    """np.asarray of an object it cannot read raised, or made an object array."""

    class Opaque:  # an array type without __array__ or a buffer
        pass

    class Refusing:  # an array type that refuses to be made dense (pydata/sparse)
        def __array__(self, *args, **kwargs):
            msg = "Cannot convert a sparse array to dense automatically"
            raise RuntimeError(msg)

    entry = _backends.get("numpy")
    unreadable = r"NumPy cannot read an array of type tests\.test_backends\..*Opaque"
    with pytest.raises(TypeError, match=unreadable):
        entry.to_numpy(Opaque())
    with pytest.raises(
        TypeError, match=r"\.Refusing \(it raised RuntimeError.*to_numpy.*lazy"
    ) as refused:
        entry.to_numpy(Refusing())
    assert isinstance(refused.value.__cause__, RuntimeError)
    np.testing.assert_array_equal(entry.to_numpy([1.0, 2.0]), [1.0, 2.0])
    # A NumPy object array is NumPy's own: its dtype is judged where it is used.
    objects = np.array([1.0, 2.0], dtype=object)
    assert entry.to_numpy(objects) is objects
    with pytest.raises(TypeError, match="alpha must have a real numeric dtype"):
        s2nn_xp.S2NN(alpha=objects)


@pytest.mark.parametrize("error", [TypeError, ValueError, RuntimeError])
def test_an_array_its_record_cannot_read_is_named_with_the_record(error, monkeypatch):
    """The default to_numpy's refusal reached users naming neither (a record's
    own, array-api-strict's from_dlpack, may raise any error)."""

    def unreadable(array):
        raise error("NumPy cannot read an array of type ndarray")

    standin = dataclasses.replace(_backends.get("numpy"), to_numpy=unreadable)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", standin)
    with pytest.raises(
        TypeError, match=r"^alpha could not be read by backend record 'numpy': NumPy"
    ):
        s2nn_xp.gradient(np.ones(3), alpha=np.full(3, 2.0))


def test_an_array_too_large_to_read_raises_the_memory_error(monkeypatch):
    """Came as a TypeError, as if the argument's type were wrong (a huge
    sparse parameter, which densifies to more than memory holds)."""

    def too_large(array):
        raise MemoryError("Unable to allocate 74.5 GiB")

    standin = dataclasses.replace(_backends.get("numpy"), to_numpy=too_large)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", standin)
    with pytest.raises(MemoryError, match=r"74\.5 GiB"):
        s2nn_xp.gradient(np.ones(3), alpha=np.full(3, 2.0))


def test_objects_compare_epsilon_values_as_their_record_reads_them(monkeypatch):
    """By NumPy's asarray, which a library may refuse (pydata/sparse): an
    object and its copy were then compared by identity, unequal."""
    reads = []
    record = _backends.get("numpy")

    def to_numpy(array):
        reads.append(array)
        return record.to_numpy(array)

    standin = dataclasses.replace(record, to_numpy=to_numpy)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", standin)
    epsilon = np.full(3, 1e-8)
    assert _object._Static(epsilon).key()[0] == epsilon.dtype
    assert reads and reads[-1] is epsilon


def test_lazy_arrays_of_a_host_backend_are_not_read(monkeypatch):
    """values_on_host is per library; an array not computed yet has no values.

    Its record's ``lazy`` says so: array-api-compat's ``is_lazy_array``, which
    decided before, computes an element of a library it does not know to
    tell (and said cubed's arrays were not lazy: an S2NN object's epsilon was
    computed at every hash, and array parameters at every call).
    """
    x = np.array([-1.0, 1.0])
    bad = np.array([-2.0, 1.0])
    with pytest.raises(ValueError, match="alpha must be finite"):
        s2nn_xp.gradient(x, bad)
    assert _object._Static(np.array([1e-8])).key()[0] is not None  # by value
    lazy = dataclasses.replace(_backends.get("numpy"), lazy=True)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", lazy)
    monkeypatch.setattr(_compat, "is_lazy_array", lambda value: False)
    s2nn_xp.gradient(x, bad)  # not read: checked as arrays of GPU libraries are
    assert _object._Static(np.array([1e-8])).key()[0] is None  # by identity


def test_nox_sessions_are_found_however_they_are_declared():
    source = (
        "import nox\n\n"
        "@nox.session\ndef plain(session):\n    pass\n\n"
        '@nox.session(python="3.11")\ndef versioned(session):\n    pass\n\n'
        '@nox.session(name="named")\ndef named_onnx(session):\n    pass\n\n'
        "def helper(session):\n    pass\n"
    )
    assert sorted(_nox_sessions(source)) == ["named", "plain", "versioned"]


def test_a_field_of_a_kind_without_a_check_is_a_developer_error():
    """A new field type must get its check: it is not taken for a callable."""
    entry = _backends.get("numpy")
    with pytest.raises(NotImplementedError, match=r"Backend\.name: no check .* float"):
        entry._check_field("name", "float")


@pytest.mark.parametrize("bad", [0, -1, True, 32.0, "32"])
def test_max_dimensions_is_a_positive_int_or_none(bad):
    entry = _backends.get("numpy")
    assert entry.max_dimensions is None
    with pytest.raises(TypeError, match=r"max_dimensions must be an int > 0 or None"):
        dataclasses.replace(entry, max_dimensions=bad)


def test_a_record_replaced_in_the_registry_is_the_one_that_recognises_arrays(
    monkeypatch,
):
    """BACKENDS is the one list: nothing keeps a copy of the record it replaced."""
    standin = dataclasses.replace(_backends.get("numpy"), values_on_host=False)
    monkeypatch.setitem(_backends.BACKENDS, "numpy", standin)
    assert _backends.of_array(np.ones(2)) is standin  # by the array's module
    subclass = type("Sub", (np.ndarray,), {"__module__": "elsewhere"})
    assert _backends.of_array(np.ones(2).view(subclass)) is standin  # by its check


def test_a_record_taken_out_of_the_registry_recognises_nothing(monkeypatch):
    """An array of a library without a record is an array-API array, no KeyError."""
    monkeypatch.delitem(_backends.BACKENDS, "numpy")
    assert _backends.of_array(np.ones(2)) is None
