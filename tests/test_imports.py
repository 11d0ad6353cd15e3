"""``import s2nn_xp`` imports no framework; an array imports its own adapter only.

Runs in every nox session, so each checks it with its own framework installed
(a framework that is not installed could not be imported by mistake). The
frameworks and their adapters are the backend registry's.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

from s2nn_xp import _backends

# The libraries a user may not have: every backend's but NumPy's (a dependency).
OPTIONAL = {
    name: backend
    for name, backend in _backends.BACKENDS.items()
    if backend.module.partition(".")[0] != "numpy"
}


def _top_level(backend: _backends.Backend) -> str:
    return backend.module.partition(".")[0]


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


def _stand_in(folder, backend: _backends.Backend, source: str) -> None:
    """A package in `folder` named as `backend`'s library, of `source`.

    Imported in its place by a process that puts `folder` first on its path.
    """
    package = folder / _top_level(backend)
    package.mkdir()
    (package / "__init__.py").write_text(source + "\n")


def test_import_and_numpy_use_touch_no_framework():
    frameworks = sorted({_top_level(b) for b in OPTIONAL.values()})
    _run(
        "import sys, s2nn_xp, numpy as np\n"
        "s2nn_xp.s2nn(np.ones(3)); s2nn_xp.vjp([1.0])[1](1.0)\n"
        "s2nn_xp.S2NN()(np.zeros(2)); s2nn_xp.gradient(0.5)\n"
        f"loaded = [m for m in {frameworks!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )


@pytest.mark.parametrize("name", sorted(OPTIONAL))
def test_an_array_loads_only_its_own_adapter(name):
    """Calls on an array import its adapter and no other framework.

    What the array's library imports itself is the library's business (``import
    dask.array`` imports CuPy and pydata/sparse where they are installed), so
    modules are counted from after the array exists.
    """
    backend = OPTIONAL[name]
    if not (backend.is_installed() and backend.has_device()):
        pytest.skip(f"{name} is not installed here, or finds no device")
    others = sorted({_top_level(b) for b in OPTIONAL.values()} - {_top_level(backend)})
    adapters = sorted(b.adapter for b in OPTIONAL.values() if b.adapter is not None)
    want = [backend.adapter] if backend.adapter is not None else []
    _run(
        "import sys, numpy as np\n"
        "import s2nn_xp\n"
        "from s2nn_xp import _backends\n"
        f"x = _backends.get({name!r}).asarray(np.ones(3))\n"
        "before = set(sys.modules)\n"
        "s2nn_xp.s2nn(x); s2nn_xp.gradient(x)\n"
        "new = set(sys.modules) - before\n"
        f"wrong = sorted(m for m in new if m.split('.')[0] in {others!r})\n"
        "assert not wrong, wrong\n"
        f"new_adapters = sorted(m for m in new if m in {adapters!r})\n"
        f"assert set(new_adapters) <= set({want!r}), new_adapters\n"
        f"missing = sorted(set({want!r}) - set(sys.modules))\n"
        "assert not missing, missing\n"
    )


WITH_LIBRARY = sorted(name for name, b in OPTIONAL.items() if b.adapter_with_library)


@pytest.mark.parametrize(
    "library_first", [True, False], ids=["library-first", "s2nn-first"]
)
@pytest.mark.parametrize("name", WITH_LIBRARY)
def test_an_adapter_with_library_comes_with_its_library(name, library_first):
    """Imported with its library, before any array arrives (torch.compile)."""
    backend = OPTIONAL[name]
    if not backend.is_installed():
        pytest.skip(f"{name} is not installed here")
    library = f"import {_top_level(backend)}"
    imports = [library, "import s2nn_xp"]
    if not library_first:
        imports.reverse()
        imports.insert(1, f"assert {backend.adapter!r} not in sys.modules")
    _run(
        "import sys\n"
        + "\n".join(imports)
        + f"\nassert {backend.adapter!r} in sys.modules\n"
    )


ADAPTERS = sorted(b.adapter for b in OPTIONAL.values() if b.adapter is not None)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_that_cannot_be_imported_is_no_attribute(adapter):
    """hasattr, getattr with a default, inspect and help() take the package whole.

    The adapter made unimportable (None in ``sys.modules``, as where its
    framework is not installed), whichever frameworks are installed here:
    the attribute raises AttributeError saying why, the ImportError as its
    cause; importing the adapter raises the ImportError.
    """
    name = adapter.rpartition(".")[2]
    _run(
        "import importlib, inspect, pydoc, sys\n"
        f"sys.modules[{adapter!r}] = None\n"
        "import s2nn_xp\n"
        f"assert not hasattr(s2nn_xp, {name!r})\n"
        f"assert getattr(s2nn_xp, {name!r}, 'absent') == 'absent'\n"
        "members = dict(inspect.getmembers(s2nn_xp))\n"
        f"assert {name!r} not in members and 's2nn' in members\n"
        "assert 'S2NN surrogate' in pydoc.render_doc(s2nn_xp)\n"
        "try:\n"
        f"    getattr(s2nn_xp, {name!r})\n"
        "except AttributeError as exc:\n"
        f"    assert str(exc).startswith('{adapter} cannot be imported here:'), exc\n"
        "    assert isinstance(exc.__cause__, ImportError), exc.__cause__\n"
        "try:\n"
        f"    importlib.import_module({adapter!r})\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('imported')\n"
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_whose_framework_is_broken_is_no_attribute(adapter, tmp_path):
    """A framework that fails to import (jaxlib of another version: RuntimeError)."""
    backend = next(b for b in OPTIONAL.values() if b.adapter == adapter)
    _stand_in(tmp_path, backend, "raise RuntimeError('jaxlib too old')")
    name = adapter.rpartition(".")[2]
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import inspect, s2nn_xp\n"
        f"assert not hasattr(s2nn_xp, {name!r})\n"
        "assert 's2nn' in dict(inspect.getmembers(s2nn_xp))\n"
        "try:\n"
        f"    getattr(s2nn_xp, {name!r})\n"
        "except AttributeError as exc:\n"
        "    assert 'jaxlib too old' in str(exc), exc\n"
        "    assert isinstance(exc.__cause__, RuntimeError), exc.__cause__\n"
    )
    _run(code)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_refuses_a_framework_older_than_its_oldest(adapter, tmp_path):
    """torch 2.4.1 and JAX 0.4.30 were taken without a word, and their
    transforms failed in other words ("module 'torch.compiler' has no
    attribute 'is_exporting'"; JAX's tracers "arrays from different
    libraries"), and ``s2nn-xp info`` said "pass"."""
    backend = next(b for b in OPTIONAL.values() if b.adapter == adapter)
    _stand_in(tmp_path, backend, "__version__ = '0.0.1'")
    _run(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "try:\n"
        f"    import {adapter}\n"
        "except ImportError as exc:\n"
        "    assert not isinstance(exc, ModuleNotFoundError), repr(exc)\n"
        f"    assert exc.name == {_top_level(backend)!r}, exc.name\n"
        f"    want = '{adapter} needs {backend.title} {backend.oldest} or later'\n"
        "    assert str(exc).startswith(want + ', not 0.0.1'), exc\n"
        "    assert 'install' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('imported')\n"
    )


@pytest.mark.parametrize(
    "library_first", [True, False], ids=["library-first", "s2nn-first"]
)
@pytest.mark.parametrize("name", WITH_LIBRARY)
def test_a_too_old_library_of_an_adapter_with_library_imports_quietly(
    name, library_first, tmp_path
):
    """Its adapter is not imported with it, and nothing warns: the hook that
    imports it warned "could not import s2nn_xp.torch" at ``import torch``
    (or at ``import s2nn_xp`` after it), an error where warnings are.
    The adapter refuses it when it is imported."""
    backend = OPTIONAL[name]
    _stand_in(tmp_path, backend, "__version__ = '0.0.1'")
    imports = [f"import {_top_level(backend)}", "import s2nn_xp"]
    if not library_first:
        imports.reverse()
    _run(
        f"import sys, warnings; sys.path.insert(0, {str(tmp_path)!r})\n"
        "warnings.simplefilter('error')\n"
        + "\n".join(imports)
        + f"\nassert {backend.adapter!r} not in sys.modules\n"
        "try:\n"
        f"    import {backend.adapter}\n"
        "except ImportError as exc:\n"
        "    assert 'or later, not 0.0.1' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('imported')\n"
    )


@pytest.mark.parametrize(
    ("installed", "taken"),
    [
        ("2.13.0+cpu", True),
        ("2.13", True),
        ("2.14.1", True),
        ("10.0", True),
        ("2.13.0a0+git1234", True),  # a pre-release of the release itself
        ("2.12.9", False),
        ("2.4.1", False),
        ("1.99", False),
        ("unknown", True),  # no release numbers: a build of a checkout
    ],
)
def test_a_framework_version_is_compared_by_its_release_numbers(
    installed, taken, monkeypatch
):
    backend = _backends.Backend(
        "fake", "fake", ("fake",), lambda xp: False,
        adapter="s2nn_xp.fake", title="Fake", install="Install it.", oldest="2.13",
    )  # fmt: skip
    monkeypatch.setitem(_backends.BACKENDS, "fake", backend)
    monkeypatch.setattr(_backends.Backend, "version", lambda self: installed)
    if taken:
        _backends.check_framework_version("fake")
    else:
        with pytest.raises(ImportError, match=rf"Fake 2\.13 or later, not {installed}"):
            _backends.check_framework_version("fake")


@pytest.mark.parametrize(
    ("package", "why", "error"),
    [
        (None, "which is not installed", "ModuleNotFoundError"),
        (
            "raise ImportError('libcudart.so.12: cannot open')",
            "which does not import (libcudart.so.12: cannot open)",
            "ImportError",
        ),
    ],
    ids=["missing", "broken"],
)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_says_if_its_framework_is_missing_or_broken(
    adapter, package, why, error, tmp_path
):
    """The adapter's ImportError says what is wrong and what to install.

    PyTorch's and JAX's were Python's bare "No module named 'torch'"; an
    installed CuPy that fails to load (a CUDA library of another version) was
    said to be "not installed", the cause in the chain only. A missing
    framework is a ModuleNotFoundError naming it, as Python's own.
    """
    backend = next(b for b in OPTIONAL.values() if b.adapter == adapter)
    top_level = _top_level(backend)
    if package is not None:
        _stand_in(tmp_path, backend, package)
    hide = f"sys.modules[{top_level!r}] = None\n" if package is None else ""
    name = top_level if package is None else None
    _run(
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n" + hide + "try:\n"
        f"    import {adapter}\n"
        "except ImportError as exc:\n"
        f"    assert type(exc).__name__ == {error!r}, repr(exc)\n"
        f"    assert exc.name == {name!r}, exc.name\n"
        f"    assert str(exc).startswith('{adapter} needs '), exc\n"
        f"    assert ', {why}. ' in str(exc), exc\n"
        "    assert 'pip install' in str(exc), exc\n"
        "    assert isinstance(exc.__cause__, ImportError), exc.__cause__\n"
        "else:\n"
        "    raise AssertionError('imported')\n"
    )


def test_array_api_compat_is_imported_by_compat_alone():
    """One module imports it (docs/contributing.rst): the PyTorch adapter
    imported array_api_compat.torch of its own."""
    package = Path(_backends.__file__).parent
    importers = set()
    for source in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n.partition(".")[0] == "array_api_compat" for n in names):
                importers.add(source.name)
    assert importers == {"_compat.py"}


def test_the_torch_adapter_imports_without_touching_the_default_device():
    """It made a tensor there at import: with a CUDA default device, torch
    without CUDA refused the import, and with CUDA it was started; and asked
    array-api-compat its namespace, which tests the tensor against a stand-in
    of another library (Sphinx's mock of CuPy: the docs' build failed)."""
    pytest.importorskip("torch")
    _run(
        "import sys, types\n"
        "sys.modules['cupy'] = stand_in = types.ModuleType('cupy')\n"
        "stand_in.ndarray = object()  # no class, as a mock's attribute\n"
        "import torch\n"
        "torch.set_default_device('cuda')\n"
        "import s2nn_xp.torch\n"
        "assert not torch.cuda.is_initialized()\n"
        "x = torch.ones(3, device='cpu')\n"
        "assert s2nn_xp.torch.s2nn(x).tolist() == [1.0, 1.0, 1.0]\n"
    )


_ADAPTER_AND_LIBRARY_RACE = """
import sys, threading, time, warnings
warnings.simplefilter("error")
import s2nn_xp

errors = []
def imports(name):
    try:
        __import__(name)
    except BaseException as exc:
        errors.append(f"{name}: {exc!r}")

library = threading.Thread(target=imports, args=(sys.argv[1],))
library.start()
while sys.argv[1] not in sys.modules:  # until its import has begun
    time.sleep(0.0005)
adapter = threading.Thread(target=imports, args=(sys.argv[2],))
adapter.start()
library.join()
adapter.join()
assert not errors, errors
assert sys.argv[2] in sys.modules
"""


@pytest.mark.parametrize("name", WITH_LIBRARY)
def test_an_adapter_imported_while_its_library_imports_in_another_thread(name):
    """The adapter's thread waits for the library, whose import (in the other
    thread) then imports the adapter: Python refuses that import as a
    deadlock. It said so in a warning, raised by ``-W error`` in the user's
    ``import torch``, which left torch half-imported for good; the adapter's
    own import completes it, without a word."""
    backend = OPTIONAL[name]
    if not backend.is_installed():
        pytest.skip(f"{name} is not installed here")
    subprocess.run(
        [
            sys.executable,
            "-c",
            _ADAPTER_AND_LIBRARY_RACE,
            _top_level(backend),
            str(backend.adapter),
        ],
        check=True,
        timeout=120,
    )


def test_an_import_deadlock_of_an_adapter_with_its_library_is_no_error(monkeypatch):
    """Where the race above is not met, the rule itself."""
    from s2nn_xp import _dispatch

    def refused(module):
        raise _dispatch._IMPORT_DEADLOCK[0](f"deadlock detected by {module}")

    monkeypatch.setattr(_dispatch, "older_than_supported", lambda name: None)
    monkeypatch.setattr(_dispatch, "_load", refused)
    importing = types.ModuleType("s2nn_xp.torch")  # another thread's import
    monkeypatch.setitem(sys.modules, "s2nn_xp.torch", importing)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _dispatch._load_supported("torch", "s2nn_xp.torch")
    # with no import of the adapter under way, the deadlock is not that one
    monkeypatch.delitem(sys.modules, "s2nn_xp.torch")
    with pytest.raises(_dispatch._IMPORT_DEADLOCK[0]):
        _dispatch._load_supported("torch", "s2nn_xp.torch")
    monkeypatch.setattr(_dispatch, "_load", lambda module: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors are the caller's
        _dispatch._load_supported("torch", "s2nn_xp.torch")


_WHILE_ANOTHER_THREAD_IMPORTS = """
import sys, threading, time
import numpy as np
import s2nn_xp

spike = s2nn_xp.S2NN()
def imports():
    try:
        __import__(sys.argv[1])
    except ImportError:  # a library that fails to import: the other thread's
        pass


importer = threading.Thread(target=imports)
importer.start()
while sys.argv[1] not in sys.modules:  # until its import has begun
    time.sleep(0.001)
x = np.array([-1.0, 0.5])
calls = {
    "object": lambda: spike(x),
    "object of a list": lambda: spike.surrogate_grad([0.5, -1.0]),
    "constructor": lambda: s2nn_xp.S2NN(alpha=np.array([2.0, 4.0])),
    "host data": lambda: s2nn_xp.gradient([1.0, -2.0]),
    "pullback": lambda: s2nn_xp.vjp(x)[1](1.0),
}
failed = {}
for name, call in calls.items():
    try:
        call()
    except Exception as exc:
        failed[name] = repr(exc)
importer.join()
assert not failed, failed
"""


@pytest.mark.parametrize("fails", [False, True], ids=["imports", "fails"])
@pytest.mark.parametrize(
    ("library", "defines"), [("brainstate", "State"), ("dask.array", "Array")]
)
def test_a_library_another_thread_is_importing_is_waited_for(
    tmp_path, library, defines, fails
):
    """A module another thread is still importing is in ``sys.modules``
    without the names it has yet to define: calls on NumPy data (the
    object's, array-api-compat's checks of host data) raised AttributeError
    ("partially initialized module") for as long as the import lasted. The
    import is waited for, never run again here where it failed (its error
    came out of a call on NumPy data)."""
    package = tmp_path.joinpath(*library.split("."))
    package.mkdir(parents=True)
    for folder in [package, *package.parents][: library.count(".") + 1]:
        folder.joinpath("__init__.py").touch()
    runs = tmp_path / "runs"
    ending = "raise ImportError('broken')" if fails else f"class {defines}: ..."
    package.joinpath("__init__.py").write_text(
        f"import time\nwith open({str(runs)!r}, 'a') as f:\n    f.write('run ')\n"
        f"time.sleep(1.0)\n{ending}\n"
    )
    path = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    subprocess.run(
        [sys.executable, "-c", _WHILE_ANOTHER_THREAD_IMPORTS, library],
        check=True,
        env=env,
        timeout=60,
    )
    assert runs.read_text() == "run "  # once, by the other thread
