"""The s2nn-xp command: info, plot and bench on the CPU backends."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import errno
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from s2nn_xp import _backends, _cli
from s2nn_xp._backends import Capability
from tests._support import backend_of, load_backend, selected_backends

# No module-level backend: NumPy is always installed, and each session runs the
# generic tests plus those of its own backend (optional_backend).

TINY = ("--size", "1024", "--repeats", "1")


def run(*argv, capsys):
    code = _cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def usage_error(*argv, capsys) -> str:
    """The message of an exit-2 error of ``s2nn-xp argv``."""
    with pytest.raises(SystemExit) as exc:
        _cli.main(list(argv))
    assert exc.value.code == 2
    return capsys.readouterr().err


def optional_backend(name: str):
    """Backend `name`'s module, or a skip where it is not selected or installed."""
    if name not in selected_backends():
        pytest.skip(f"backend {name!r} not selected")
    return load_backend(name)


def no_work(*args, **kwargs):
    pytest.fail("the work started before the arguments were checked")


@pytest.fixture(params=["raises", "no devices"])
def cupy_without_device(request, monkeypatch):
    """A ``cupy`` that imports but finds no CUDA device, as on a CPU machine."""

    class CUDARuntimeError(RuntimeError):
        pass

    def get_device_count():
        if request.param == "raises":
            msg = "cudaErrorNoDevice: no CUDA-capable device is detected"
            raise CUDARuntimeError(msg)
        return 0

    cupy = types.ModuleType("cupy")
    cupy.__version__ = "13.0.0"
    cupy.ndarray = type("ndarray", (), {})
    cupy.asarray = no_work
    cupy.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(
            getDeviceCount=get_device_count, CUDARuntimeError=CUDARuntimeError
        )
    )
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    cupy.query_raises = request.param == "raises"  # for the tests, not the library
    return cupy


class BackendStandIn:
    """A registry record with some methods replaced (records are frozen)."""

    def __init__(self, real, **replaced):
        self._real, self._replaced = real, replaced

    def __getattr__(self, name):
        if name in self._replaced:
            return self._replaced[name]
        return getattr(self._real, name)


def raising(exc):
    def call(*args, **kwargs):
        raise exc

    return call


def test_info_passes_on_installed_backends(capsys):
    code, out, _ = run("info", capsys=capsys)
    assert code == 0
    assert "numpy" in out
    assert "pass (max rel. err" in out


def test_info_fails_when_a_backend_disagrees(capsys, monkeypatch):
    numpy_backend = _backends.BACKENDS["numpy"]
    broken = BackendStandIn(
        numpy_backend, autodiff_gradient=lambda x, a, b: np.zeros_like(x)
    )
    monkeypatch.setitem(_backends.BACKENDS, "numpy", broken)
    code, out, _ = run("info", capsys=capsys)
    assert code == 1
    assert "FAIL" in out
    assert _cli.check_backend(numpy_backend)["passed"]
    assert not _cli.check_backend(broken)["passed"]


def test_info_checks_numpys_kernels_against_the_math(monkeypatch):
    """The reference was NumPy's own functions: its row could not fail."""
    from s2nn_xp import _numpy_kernels

    numpy_backend = _backends.BACKENDS["numpy"]
    assert _cli.check_backend(numpy_backend)["passed"]
    right = _numpy_kernels.gradient

    def off(x, *args, out, **kwargs):  # beyond info's tolerance, 1e-12
        right(x, *args, out=out, **kwargs)
        out *= 1 + 1e-9

    monkeypatch.setattr(_numpy_kernels, "gradient", off)
    report = _cli.check_backend(numpy_backend)
    assert not report["passed"]
    assert report["gradient"] > 0


@pytest.mark.parametrize(
    "setting", ["debug_nans", "debug_infs", "transfer_guard"], ids=str
)
def test_info_checks_jax_whatever_its_debugging_checks(setting):
    """The agreement grid holds NaN and infinities on purpose: JAX_DEBUG_NANS
    (or _INFS, or a transfer guard) made info report JAX as disagreeing."""
    optional_backend("jax")
    import jax

    switched_on = (
        jax.transfer_guard("disallow")
        if setting == "transfer_guard"
        else getattr(jax, setting)(True)
    )
    with switched_on:
        assert _cli.check_backend(_backends.BACKENDS["jax"])["passed"]


def test_info_skips_an_installed_backend_without_a_device(cupy_without_device, capsys):
    code, out, _ = run("info", capsys=capsys)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("cupy ")]
    assert "installed, no device (skipped)" in row
    # what the device query raised, if it did, is shown, not hidden
    cause = ": CUDARuntimeError: cudaErrorNoDevice: no CUDA-capable device"
    assert (cause in row) == cupy_without_device.query_raises, row
    assert "FAIL" not in out
    assert not _backends.get("cupy").has_device()
    assert "cupy" not in [b.name for b in _backends.available()]


def test_relative_error_catches_misplaced_specials():
    want = np.array([np.nan, np.inf, 1.0])
    assert _cli._relative_error(want.copy(), want) == 0.0
    assert _cli._relative_error(np.array([0.0, np.inf, 1.0]), want) == np.inf
    assert _cli._relative_error(np.array([np.nan, 5.0, 1.0]), want) == np.inf


@pytest.mark.parametrize(
    ("suffix", "magic"),
    [
        (".png", b"\x89PNG"),
        (".svg", b"<?xml"),
        (".pdf", b"%PDF"),
    ],
)
def test_plot_writes_a_valid_image(tmp_path, capsys, suffix, magic):
    pytest.importorskip("matplotlib")
    out = tmp_path / f"figure{suffix}"
    code, stdout, _ = run("plot", "--out", str(out), capsys=capsys)
    assert code == 0
    assert out.read_bytes().startswith(magic)
    assert str(out) in stdout


def test_plot_draws_the_curves_of_the_docs_figure():
    """The home page says ``s2nn-xp plot`` draws its figure's curves too: the
    CLI drew two of its three origin functions, and no dashed spike."""
    plt = pytest.importorskip("matplotlib.pyplot")
    import s2nn_xp

    script = Path(__file__).parents[1] / "docs" / "_plots" / "surrogate_curves.py"
    (pairs,) = re.findall(r"for alpha, beta in (\[.*\]):", script.read_text())
    assert tuple(ast.literal_eval(pairs)) == _cli.PLOT_PAIRS
    figure = _cli.make_figure()
    gradients, origins = figure.axes
    *curves, step = origins.lines
    assert len(gradients.lines) == len(curves) == len(_cli.PLOT_PAIRS)
    for (alpha, beta), gradient, origin in zip(
        _cli.PLOT_PAIRS, gradients.lines, curves, strict=True
    ):
        x = _cli.PLOT_X
        np.testing.assert_array_equal(
            gradient.get_ydata(), s2nn_xp.gradient(x, alpha, beta)
        )
        np.testing.assert_array_equal(
            origin.get_ydata(), s2nn_xp.origin(x, alpha, beta)
        )
    assert step.get_linestyle() == "--"
    np.testing.assert_array_equal(step.get_ydata(), s2nn_xp.forward(_cli.PLOT_X))
    plt.close(figure)


@pytest.mark.parametrize(
    ("alpha", "beta"),
    [("3", "0.75"), ("1e308", "1e299")],  # the second: large, but drawable
)
def test_plot_custom_pairs(alpha, beta, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "pairs.png"
    code, *_ = run(
        "plot", "--out", str(out), "--alpha", alpha, "--beta", beta, capsys=capsys
    )
    assert code == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "--out", "fig.txt"], "--out must end in"),
        (["plot", "--out", "f.png", "--alpha", "2"], "same number of times"),
        (
            ["plot", "--out", "f.png", "--alpha", "-2", "--beta", "1"],
            "--alpha -2 --beta 1: alpha must be finite and > 0",
        ),
        (
            ["plot", "--out", "f.png", "--alpha", "2", "--beta", "nan"],
            "--alpha 2 --beta nan: beta must be finite and > 0",
        ),
        (  # in the words typed: float() made it inf ("must be finite")
            ["plot", "--out", "f.png", "--alpha", "1e400", "--beta", "1"],
            "argument --alpha: 1e400 is too large for float64",
        ),
        (  # and 0 ("--alpha 0 ... must be > 0")
            ["plot", "--out", "f.png", "--alpha", "1", "--beta", "2.5e-400"],
            "argument --beta: 2.5e-400 is too small for float64 (it rounds to 0)",
        ),
        (
            ["plot", "--out", "f.png", "--alpha", "1" + "0" * 400, "--beta", "1"],
            "argument --alpha: 10000000000000000000...0000000000 is too large",
        ),
        (
            ["plot", "--out", "f.png", "--alpha", "2", "--beta", "one"],
            "argument --beta: 'one' is not a number",
        ),
        # what float() reads besides numbers' notation, as --size refuses it
        (
            ["plot", "--out", "f.png", "--alpha", " 4", "--beta", "1"],
            "argument --alpha: ' 4' is not a number",
        ),
        (
            ["plot", "--out", "f.png", "--alpha", "4_0", "--beta", "1"],
            "argument --alpha: '4_0' is not a number",
        ),
        (
            ["plot", "--out", "f.png", "--alpha", "\u0664", "--beta", "1"],
            "argument --alpha: '\u0664' is not a number",
        ),
        (["bench", "--backend", "nope"], "unknown backend 'nope'"),
        (
            ["bench", "--backend", "numpy", "--dtype", "float8"],
            "unknown dtype 'float8'",
        ),
        (["bench", "--size", "0"], "size must be between"),
        (["bench", "--size", "lots"], "size must be a whole number"),
        (["bench", "--repeats", "0"], "argument --repeats: must be a whole number"),
        (["bench", "--repeats", "-3"], "argument --repeats: must be a whole number"),
        (["bench", "--repeats", "two"], "argument --repeats: must be a whole number"),
    ],
)
def test_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        _cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_json_schema(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, stdout, stderr = run(
        "bench",
        "--backend",
        "numpy",
        "--size",
        "2^8",
        "100",
        "--dtype",
        "float32",
        "float64",
        "--repeats",
        "2",
        "--json",
        str(out),
        capsys=capsys,
    )
    assert code == 0
    assert "[4/4] numpy float64 n=100" in stderr  # the progress display
    records = json.loads(out.read_text())
    assert len(records) == 2 * 2 * 4
    keys = {
        "backend",
        "op",
        "dtype",
        "size",
        "seconds",
        "floor_seconds",
        "ratio_to_floor",
        "repeats",
        "version",
        "device",
    }
    for record in records:
        assert keys <= record.keys()
        assert record["device"] == "cpu"  # where it ran (a GPU's is cuda:0)
        assert record["repeats"] == 2
        assert record["backend"] == "numpy"
        assert record["op"] in _cli.OPS
        assert record["seconds"] > 0
        assert record["ratio_to_floor"] == pytest.approx(
            record["seconds"] / record["floor_seconds"]
        )
    assert {r["size"] for r in records} == {256, 100}
    assert "x floor" in stdout


def test_bench_says_how_many_runs_and_its_defaults(capsys):
    code, stdout, _ = run("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert code == 0
    assert "medians of 1 run after warm-up" in stdout
    with pytest.raises(SystemExit):
        _cli.main(["bench", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "(default: float32)" in helptext
    assert "(default: 15)" in helptext


def test_an_autodiff_backend_without_a_learnable_case_has_no_learnable_row(
    capsys, monkeypatch
):
    """A contributor's new autodiff backend: bench must not assume PyTorch."""
    numpy_entry = _backends.get("numpy")
    # A stand-in: a real record with transforms needs an adapter (NumPy's
    # arrays would go to it)
    with_autodiff = BackendStandIn(
        numpy_entry,
        transforms=("grad",),
        capabilities=numpy_entry.capabilities | {Capability.AUTODIFF},
    )
    monkeypatch.setitem(_backends.BACKENDS, "numpy", with_autodiff)
    code, stdout, _ = run("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert code == 0
    assert "vjp+pullback" in stdout
    assert "learnable" not in stdout


def test_bench_skips_dtypes_a_backend_lacks(capsys):
    code, stdout, stderr = run(
        "bench",
        "--backend",
        "numpy",
        "--dtype",
        "bfloat16",
        "float32",
        *TINY,
        capsys=capsys,
    )
    assert code == 0
    assert "note: numpy has no bfloat16" in stderr
    table = stdout.split("----", 1)[-1]
    assert "bfloat16" not in table
    assert "float32" in table


def test_bench_rejects_dtypes_no_backend_has(capsys, monkeypatch):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    err = usage_error(
        "bench", "--backend", "numpy", "--dtype", "bfloat16", *TINY, capsys=capsys
    )
    assert "nothing to run: numpy has no bfloat16 (only float16" in err


@pytest.mark.parametrize(
    "flags",
    [
        ["--backend", "numpy", "dask", "--backend", "jax"],
        ["--backend", "numpy", "--backend", "dask", "jax"],
        ["--backend", "numpy", "--backend", "dask", "--backend", "jax"],
    ],
)
def test_bench_backend_takes_several_values_per_flag(flags):
    args = _cli.build_parser().parse_args(["bench", *flags])
    assert args.backend == ["numpy", "dask", "jax"]


@pytest.mark.parametrize("other", ["dask", "array_api_strict"])
def test_bench_runs_several_backends_of_one_flag(other, tmp_path, capsys):
    optional_backend(other)
    out = tmp_path / "bench.json"
    code, *_ = run(
        "bench", "--backend", "numpy", other, *TINY, "--json", str(out), capsys=capsys
    )
    assert code == 0
    backends = [r["backend"] for r in json.loads(out.read_text())]
    assert backends == 4 * ["numpy"] + 4 * [other]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["bench", "--backend", "numpy", "--json", "{tmp}/missing/bench.json"],
            "--json: cannot write '{tmp}/missing/bench.json': '{tmp}/missing' does "
            "not exist",
        ),
        (
            ["bench", "--backend", "numpy", "--json", "{tmp}/file.txt/bench.json"],
            "--json: cannot write '{tmp}/file.txt/bench.json': '{tmp}/file.txt' is "
            "not a directory",
        ),
        (["bench", "--backend", "numpy", "--json", ""], "--json: an empty path"),
        (["plot", "--out", ""], "--out: an empty path"),
        (
            ["plot", "--out", "{tmp}/.png"],
            "not '.png' (a name that starts with a dot has no suffix)",
        ),
        (
            ["bench", "--backend", "numpy", "--json", "{tmp}"],
            "--json: cannot write '{tmp}': it is a directory",
        ),
        (
            ["plot", "--out", "{tmp}/missing/figure.png"],
            "--out: cannot write '{tmp}/missing/figure.png': '{tmp}/missing' does "
            "not exist",
        ),
        (["plot", "--out", "{tmp}/missing/figure.jpg"], "--out must end in"),
    ],
)
def test_unwritable_outputs_fail_before_any_work(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    monkeypatch.setattr(_cli, "make_figure", no_work)
    (tmp_path / "file.txt").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert message.format(tmp=tmp_path) in usage_error(*argv, capsys=capsys)
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("command", ["bench", "plot"])
def test_every_file_system_error_of_an_output_is_the_options(
    command, tmp_path, capsys, monkeypatch
):
    """A name too long and a loop of links passed the check or raised a
    traceback (the loop failed after the whole run), and so did a folder the
    user may not enter (pathlib's is_dir raises there)."""
    monkeypatch.setattr(_cli, "bench_records", no_work)
    monkeypatch.setattr(_cli, "make_figure", no_work)
    option = "--json" if command == "bench" else "--out"
    argv = ["--backend", "numpy"] if command == "bench" else []
    suffix = ".json" if command == "bench" else ".png"
    long = tmp_path / ("a" * 300 + suffix)
    err = usage_error(command, *argv, option, str(long), capsys=capsys)
    assert f"{option}: cannot write {str(long)!r}: File name too long" in err
    loop = tmp_path / f"loop{suffix}"
    other = tmp_path / f"other{suffix}"
    loop.symlink_to(other)
    other.symlink_to(loop)
    err = usage_error(command, *argv, option, str(loop), capsys=capsys)
    assert "Too many levels of symbolic links" in err

    def refused(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_cli.Path, "is_dir", refused)
    denied = tmp_path / "x" / f"y{suffix}"
    err = usage_error(command, *argv, option, str(denied), capsys=capsys)
    assert err.endswith("Permission denied\n")


@pytest.mark.parametrize("command", ["bench", "plot"])
def test_an_output_through_a_link_is_checked_where_it_leads(
    command, tmp_path, capsys, monkeypatch
):
    """The file written is the one the link leads to: a link into a folder
    that does not exist passed the check (the link's own folder was) and
    failed after the whole run."""
    monkeypatch.setattr(_cli, "bench_records", no_work)
    monkeypatch.setattr(_cli, "make_figure", no_work)
    name = "bench.json" if command == "bench" else "figure.png"
    option = "--json" if command == "bench" else "--out"
    link = tmp_path / name
    link.symlink_to(tmp_path / "missing" / name)
    argv = ["--backend", "numpy"] if command == "bench" else []
    err = usage_error(command, *argv, option, str(link), capsys=capsys)
    assert f"{option}: cannot write {str(link)!r}: " in err
    assert f"{str(tmp_path / 'missing')!r} does not exist" in err
    link.unlink()
    link.symlink_to(tmp_path)
    err = usage_error(command, *argv, option, str(link), capsys=capsys)
    assert "it is a directory" in err


def test_plot_out_that_is_a_directory_fails_before_drawing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_cli, "make_figure", no_work)
    (tmp_path / "figure.png").mkdir()
    err = usage_error("plot", "--out", str(tmp_path / "figure.png"), capsys=capsys)
    assert "--out: cannot write" in err
    assert "it is a directory" in err


def test_a_failed_json_write_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """After the work, an error of the run (status 1), not of the options (2,
    "before any work"); the table is printed."""

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_cli, "write_output", refuse)
    code = _cli.main(
        ["bench", "--backend", "numpy", *TINY, "--json", str(tmp_path / "b.json")]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert "numpy    float64" in out or "numpy    float32" in out  # the table
    assert "s2nn-xp bench: error: --json: cannot write" in err
    assert "Permission denied" in err
    assert "Traceback" not in err


def test_a_json_write_that_fails_leaves_the_last_file_whole(tmp_path, monkeypatch):
    """Written in place, a full disk left a truncated file where the last was."""
    path = tmp_path / "bench.json"
    path.write_text("[]\n")
    path.chmod(0o640)

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_cli.os, "replace", full)
    with pytest.raises(OSError, match="No space"):
        _cli.write_output(path, "[1]\n")
    assert path.read_text() == "[]\n" and os.listdir(tmp_path) == ["bench.json"]
    monkeypatch.undo()
    _cli.write_output(path, "[1]\n")
    assert path.read_text() == "[1]\n" and path.stat().st_mode & 0o777 == 0o640


def test_ctrl_c_keeps_the_figures_of_the_runs_that_finished(
    tmp_path, capsys, monkeypatch
):
    """They were lost with the run: no table, no JSON, after minutes of work."""
    runs = []
    timed = _cli._run_records

    def second_is_interrupted(*args, **kwargs):
        runs.append(None)
        if len(runs) == 2:
            raise KeyboardInterrupt
        return timed(*args, **kwargs)

    monkeypatch.setattr(_cli, "_run_records", second_is_interrupted)
    path = tmp_path / "partial.json"
    argv = ["bench", "--backend", "numpy", "--size", "1024", "2048", "--repeats", "1"]
    code = _cli.main([*argv, "--json", str(path)])
    out, err = capsys.readouterr()
    assert code == 130
    records = json.loads(path.read_text())
    assert records and {r["size"] for r in records} == {1024}
    assert " 1024 " in out and " 2048 " not in out
    assert "interrupted: the figures of the 1 of 2 runs that finished" in err


def test_a_failed_figure_write_is_a_clear_error(tmp_path, capsys, monkeypatch):
    """After the work, an error of the run (status 1), as a failed --json
    write of bench; it was 2, the status of a mistake in the options. The
    last figure stays whole (savefig wrote in place: a full disk truncated it)."""
    pytest.importorskip("matplotlib.figure")
    path = tmp_path / "figure.png"
    path.write_bytes(b"the last figure")

    def full(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_cli.os, "replace", full)
    code = _cli.main(["plot", "--out", str(path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "s2nn-xp plot: error: --out: cannot write" in err
    assert "No space left on device" in err
    assert "wrote" not in out and "Traceback" not in err
    assert path.read_bytes() == b"the last figure"
    assert os.listdir(tmp_path) == ["figure.png"]


def test_plot_to_a_file_with_a_broken_matplotlib_says_so(tmp_path):
    """An installed matplotlib that fails to import (a library of its own
    missing): ``plot --out`` gave a traceback, where ``plot`` says so."""
    package = tmp_path / "stand_in" / "matplotlib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('raise ImportError("libfreetype.so.6")\n')
    paths = [str(package.parent), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    for argv in (["plot", "--out", str(tmp_path / "figure.png")], ["plot"]):
        completed = subprocess.run(
            _command(*argv), capture_output=True, text=True, env=env
        )
        assert completed.returncode == 2, completed.stderr
        assert "s2nn-xp plot: error: matplotlib cannot" in completed.stderr
        assert "libfreetype.so.6" in completed.stderr
        assert "Traceback" not in completed.stderr


def test_a_json_file_that_cannot_be_replaced_is_written_in_place(tmp_path, monkeypatch):
    """The check before the work finds a file writable that the write then
    could not replace (exit 1 after the whole run): a file mounted on its own
    (EBUSY), a folder the user may not write (EACCES), a name too long for
    the file made beside it."""
    path = tmp_path / "bench.json"
    path.write_text("[]\n")

    def busy(source, target):
        raise OSError(errno.EBUSY, "Device or resource busy")

    monkeypatch.setattr(_cli.os, "replace", busy)
    _cli.write_output(path, "[1]\n")
    assert path.read_text() == "[1]\n" and os.listdir(tmp_path) == ["bench.json"]
    monkeypatch.undo()

    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_cli.tempfile, "mkstemp", refused)
    _cli.write_output(path, "[2]\n")
    assert path.read_text() == "[2]\n"
    monkeypatch.undo()
    # written in place, a failure says that the file may be cut short
    monkeypatch.setattr(_cli.tempfile, "mkstemp", refused)

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_cli.Path, "write_bytes", full)
    with pytest.raises(OSError, match="written in place, the file may be cut short"):
        _cli.write_output(path, "[4]\n")
    monkeypatch.undo()
    longest = tmp_path / ("b" * (255 - len(".json")) + ".json")
    assert _cli._unwritable(longest) is None
    _cli.write_output(longest, "[3]\n")
    assert longest.read_text() == "[3]\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["bench.json", longest.name])


@pytest.mark.skipif(not Path("/dev/fd").is_dir(), reason="no /dev/fd here")
def test_json_to_a_descriptor_named_as_a_file_writes_through_it(tmp_path):
    """``--json /dev/stdout >> log`` replaced log by the JSON alone (its
    earlier lines and the table lost, status 0); to a pipe (``>(jq .)``,
    ``/dev/stdout | cat``) it was refused: "No such file or directory"."""
    tiny = ("bench", "--backend", "numpy", *TINY)
    log = tmp_path / "log.txt"
    log.write_text("earlier line\n")
    completed = _shell(f">> '{log}'", *tiny, "--json", "/dev/stdout")
    assert completed.returncode == 0, completed.stderr
    written = log.read_text()
    assert written.startswith("earlier line\n[")
    # the JSON alone, as for "-": the table and "wrote" on standard error
    assert json.loads(written.split("\n", 1)[1])[0]["backend"] == "numpy"
    assert " 1024 " in completed.stderr and "wrote /dev/stdout" in completed.stderr
    piped = subprocess.run(
        _command(*tiny, "--json", "/dev/stdout"), capture_output=True, text=True
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)[0]["backend"] == "numpy"  # | jq .
    through = _shell("3>&1 >/dev/null", *tiny, "--json", "/dev/fd/3")
    assert {r["backend"] for r in json.loads(through.stdout)} == {"numpy"}
    # other names of the same streams: through a link, spelled otherwise
    link = tmp_path / "link.json"
    link.symlink_to("/dev/stdout")
    for name in (str(link), "//dev/stdout", "/dev/fd/../fd/1", "/dev/./stdout"):
        log.write_text("earlier line\n")
        completed = _shell(f">> '{log}'", *tiny, "--json", name)
        assert completed.returncode == 0, (name, completed.stderr)
        assert log.read_text().startswith("earlier line\n["), name
        piped = subprocess.run(
            _command(*tiny, "--json", name), capture_output=True, text=True
        )
        assert piped.returncode == 0, name
        assert json.loads(piped.stdout)[0]["backend"] == "numpy", name
    # ".." after a link is the link's target's parent, as the system has it:
    # a file there, not standard output (read as text, "/dev/stdout")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "dev").mkdir()
    (tmp_path / "hop").symlink_to(tmp_path / "a" / "b")
    beside = tmp_path / "hop" / ".." / ".." / "dev" / "stdout"
    assert _cli._named_descriptor(beside) is None
    _cli.write_output(beside, "[]\n")
    assert (tmp_path / "dev" / "stdout").read_text() == "[]\n"
    depth = len(tmp_path.parts)  # up to "/" as text, not as the system has it
    up = tmp_path / "hop" / Path(*[".."] * depth) / "dev" / "stdout"
    assert os.path.normpath(up) == "/dev/stdout"
    assert _cli._named_descriptor(up) is None
    # the file standard output is, named: that file, the JSON alone in it
    own = tmp_path / "own.json"
    completed = _shell(f"> '{own}'", *tiny, "--json", str(own))
    assert completed.returncode == 0, completed.stderr
    assert {r["backend"] for r in json.loads(own.read_text())} == {"numpy"}
    # a reader that went away: quietly, as for "-"
    reading, writing = os.pipe()
    os.close(reading)
    try:
        gone = subprocess.run(
            _command(*tiny, "--json", "/dev/stdout"),
            stdout=writing,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(writing)
    assert gone.returncode == 141, gone.stderr
    assert "error" not in gone.stderr and "Traceback" not in gone.stderr
    closed = _shell("", *tiny, "--json", "/dev/fd/9")
    assert closed.returncode == 2
    assert "cannot write '/dev/fd/9': no such descriptor is open" in closed.stderr
    reading = _shell("9</dev/null", *tiny, "--json", "/dev/fd/9")
    assert reading.returncode == 2 and "open for reading only" in reading.stderr


def test_a_descriptor_is_known_by_the_number_its_proc_gives(monkeypatch):
    """In a PID namespace whose /proc is another's (``unshare --pid`` without
    ``--mount-proc``), /dev/fd resolves to /proc/<a number not os.getpid()>:
    ``--json /dev/fd/1`` was refused, "No such file or directory"."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc here")
    own = os.path.realpath("/proc/self")
    monkeypatch.setattr(_cli.os, "getpid", lambda: 999_999_999)
    assert _cli._descriptor_of_name(f"{own}/fd/1") == 1
    assert _cli._named_descriptor(Path("/dev/fd/1")) == 1


def test_a_descriptor_made_non_blocking_gets_all_of_the_output():
    """A pipe that another process made non-blocking, its reader slow: the
    write stopped at EAGAIN with part of the JSON written."""
    import fcntl
    import threading
    import time

    reading, low = os.pipe()
    writing = os.dup2(low, 1500)  # beyond select()'s limit of 1024
    os.close(low)
    flags = fcntl.fcntl(writing, fcntl.F_GETFL)
    fcntl.fcntl(writing, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    received = bytearray()

    def slow_reader():
        time.sleep(0.5)  # the pipe fills first
        while chunk := os.read(reading, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    data = bytes(range(256)) * 4096  # 1 MiB, far beyond a pipe's buffer
    try:
        _cli._write_descriptor(writing, data)
    finally:
        os.close(writing)
        reader.join()
        os.close(reading)
    assert bytes(received) == data


def test_ctrl_c_while_progress_is_written_keeps_the_finished_figures(
    tmp_path, capsys, monkeypatch
):
    """The progress line was written outside the handling of Ctrl-C: a slow
    terminal (or a supervisor that interrupts at a progress line) lost the
    figures of the runs that finished."""
    said = _cli._progress

    def interrupted_at_the_second_run(message):
        if message.startswith("[2/"):
            raise KeyboardInterrupt
        said(message)

    monkeypatch.setattr(_cli, "_progress", interrupted_at_the_second_run)
    path = tmp_path / "partial.json"
    argv = ["bench", "--backend", "numpy", "--size", "1024", "2048", "--repeats", "1"]
    code = _cli.main([*argv, "--json", str(path)])
    assert code == 130
    assert {r["size"] for r in json.loads(path.read_text())} == {1024}
    assert "the figures of the 1 of 2 runs" in capsys.readouterr().err


def test_bench_default_backends_skip_one_without_a_device(
    cupy_without_device, capsys, monkeypatch
):
    registry = {name: _backends.BACKENDS[name] for name in ("numpy", "cupy")}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    code, stdout, stderr = run("bench", *TINY, capsys=capsys)
    assert code == 0
    note = "note: cupy is installed but has no device here"
    assert note in stderr
    cause = "(CUDARuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected)"
    assert (cause in stderr) == cupy_without_device.query_raises, stderr
    table = stdout.split("----", 1)[-1]
    assert "numpy" in table
    assert "cupy" not in table


def test_bench_rejects_a_named_backend_without_a_device(cupy_without_device, capsys):
    err = usage_error("bench", "--backend", "numpy", "cupy", *TINY, capsys=capsys)
    assert "backend 'cupy' is installed but has no device here" in err


@pytest.mark.parametrize("sub", ["info", "plot", "bench"])
def test_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        _cli.main([sub, "--help"])
    assert exc.value.code == 0
    assert "usage: s2nn-xp" in capsys.readouterr().out


def test_module_and_console_script_run():
    result = subprocess.run(
        [sys.executable, "-m", "s2nn_xp", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith("s2nn-xp ")
    script = shutil.which("s2nn-xp")
    if script is not None:  # installed (the nox sessions install the package)
        subprocess.run([script, "--help"], capture_output=True, check=True)


@pytest.mark.parametrize("backend", ["nonsense", "module://no_such_backend"])
def test_plot_to_a_file_needs_no_display_backend(backend, tmp_path):
    """With --out the figure goes to a file: a bad MPLBACKEND raised a
    traceback (matplotlib checks it when imported, pyplot starts it); without
    --out it is a usage error (a module it cannot import was a traceback)."""
    pytest.importorskip("matplotlib")
    env = {**os.environ, "MPLBACKEND": backend}
    out = tmp_path / "figure.png"
    drawn = subprocess.run(
        _command("plot", "--out", str(out)), capture_output=True, text=True, env=env
    )
    assert drawn.returncode == 0, drawn.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    # in a process of its own: the variable stays (it was removed for good)
    code = (
        "import os, sys; from s2nn_xp import _cli\n"
        f"status = _cli.main(['plot', '--out', {str(out)!r}])\n"
        "print(status, os.environ.get('MPLBACKEND'))"
    )
    kept = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert kept.stdout.split()[-2:] == ["0", backend], kept.stderr
    shown = subprocess.run(_command("plot"), capture_output=True, text=True, env=env)
    assert shown.returncode == 2
    assert shown.stderr.startswith("s2nn-xp plot: error: matplotlib cannot start")
    assert "Traceback" not in shown.stderr


def test_plot_without_out_needs_a_display(monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    assert "no display to show the figure on" in usage_error("plot", capsys=capsys)


@pytest.mark.parametrize(
    "backend",
    ["pdf", "svg", "Agg", "cairo", "module://matplotlib.backends.backend_agg"],
)
def test_plot_without_out_needs_a_backend_that_shows(backend, monkeypatch, capsys):
    """Every backend that only writes files, not only agg, is refused before
    work; one named by its module too (it showed nothing, status 0)."""
    pytest.importorskip("matplotlib")
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: backend)
    error = usage_error("plot", capsys=capsys)
    assert "no display to show the figure on" in error
    assert backend in error


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "s2nn_xp", *argv]


def test_output_to_a_reader_that_goes_away_ends_quietly():
    """`s2nn-xp info | head -1`: no BrokenPipeError traceback."""
    reader = subprocess.Popen(
        ["head", "-c", "1"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    completed = subprocess.run(
        _command("info"), stdout=reader.stdin, stderr=subprocess.PIPE, text=True
    )
    reader.stdin.close()
    reader.wait()
    assert "Traceback" not in completed.stderr, completed.stderr
    assert "BrokenPipeError" not in completed.stderr
    # A Unix tool's status when SIGPIPE ends it; 1 is a backend's disagreement.
    assert completed.returncode == 141


@pytest.mark.parametrize("command", ["info", "bench"])
def test_output_closed_from_the_start_is_an_error(command):
    """`s2nn-xp info >&-`: Python has no sys.stdout, and every line was dropped
    with status 0."""
    argv = ["bench", "--backend", "numpy", *TINY] if command == "bench" else [command]
    # By the shell: a preexec_fn forks, which JAX's threads warn of.
    completed = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', *_command(*argv)],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert completed.returncode == 1
    message = f"s2nn-xp {command}: error: cannot write output: [Errno 9] standard"
    assert message in completed.stderr and "Traceback" not in completed.stderr


@pytest.mark.parametrize("command", ["info", "bench"])
def test_ctrl_c_is_one_line_and_the_sigint_code(command, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli, "bench_records", interrupted)
    monkeypatch.setattr(_cli, "usable_devices", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        _cli.main([command, "--backend", "numpy"] if command == "bench" else [command])
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert err.strip() == f"s2nn-xp {command}: interrupted"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_output_to_a_full_disk_is_one_line():
    with open("/dev/full", "w") as full:
        completed = subprocess.run(
            _command("info"), stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr, completed.stderr
    assert "cannot write output" in completed.stderr


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc here")
def test_json_where_no_file_can_be_made_fails_before_any_work(capsys, monkeypatch):
    """/proc takes no new file; the old check only asked whether it was writable."""
    monkeypatch.setattr(_cli, "bench_records", _forbidden_work)
    error = usage_error(
        "bench", "--backend", "numpy", *TINY, "--json", "/proc/s2nn-xp.json",
        capsys=capsys,
    )  # fmt: skip
    assert "--json: cannot write '/proc/s2nn-xp.json'" in error


@pytest.mark.parametrize("command", ["bench", "plot"])
def test_an_output_path_naming_a_folder_fails(tmp_path, capsys, monkeypatch, command):
    """``out/`` wrote a file named ``out`` (Path drops the separator); ``.``
    was said to end in '' rather than to be a folder."""
    monkeypatch.setattr(_cli, "bench_records", _forbidden_work)
    monkeypatch.chdir(tmp_path)
    option = "--json" if command == "bench" else "--out"
    extra = ("--backend", "numpy", *TINY) if command == "bench" else ()
    for folder in (f"{tmp_path / 'new'}{os.sep}", ".", "..", "new/..", "new.png/."):
        error = usage_error(command, *extra, option, folder, capsys=capsys)
        assert f"{folder!r} names a folder; give a file name" in error
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_json_to_a_named_pipe_is_written_once(tmp_path):
    """The writability probe must not open a pipe: its reader would see the end.

    In a process of its own, with a timeout: the bug was a write that blocked
    forever.
    """
    pipe = tmp_path / "figures"
    os.mkfifo(pipe)
    reader = subprocess.Popen(["cat", str(pipe)], stdout=subprocess.PIPE, text=True)
    try:
        completed = subprocess.run(
            _command("bench", "--backend", "numpy", *TINY, "--json", str(pipe)),
            capture_output=True,
            text=True,
            timeout=120,
        )
        out, _ = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out)


def test_an_oserror_that_is_not_the_outputs_keeps_its_traceback(monkeypatch):
    """A library that fails to load (an OSError naming no file) is not 'output'."""

    def broken(args):
        raise OSError("libnvrtc.so.12: cannot open shared object file")

    monkeypatch.setattr(_cli, "run_info", broken)
    with pytest.raises(OSError, match="libnvrtc"):
        _cli.main(["info"])


def _forbidden_work(*args, **kwargs):
    raise AssertionError("benchmarked before the output file was checked")


def test_plot_without_out_shows_the_figure_on_a_display(monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "TkAgg")
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    code, _, _ = run("plot", capsys=capsys)
    assert code == 0
    assert len(shown) == 1
    assert len(shown[0].axes) == 2  # gradients and origin, side by side
    plt.close("all")


def test_bench_reports_each_anchor_beside_forward_and_backward(
    tmp_path, capsys, monkeypatch
):
    """Anchors (spikingjelly, braintools where installed) are timed in the same run."""
    anchored = []

    def fake_anchors(backend, x, cotangent, op="forward+backward"):
        if op != "forward+backward":
            return {}
        anchored.append(backend.name)
        return {"anchorlib": lambda: x * cotangent}

    monkeypatch.setattr(_cli, "_anchor_cases", fake_anchors)
    out = tmp_path / "bench.json"
    code, stdout, _ = run(
        "bench", "--backend", "numpy", *TINY, "--json", str(out), capsys=capsys
    )
    assert code == 0
    assert anchored == ["numpy"]
    (record,) = [
        r for r in json.loads(out.read_text()) if r["op"] == "forward+backward"
    ]
    assert record["anchorlib_seconds"] > 0
    assert record["ratio_to_anchorlib"] == pytest.approx(
        record["seconds"] / record["anchorlib_seconds"]
    )
    assert "anchorlib" in stdout
    others = [r for r in json.loads(out.read_text()) if r["op"] != "forward+backward"]
    assert all("ratio_to_anchorlib" not in r for r in others)


# --- the hostile user (issue 12, items 13-15 and 17-19) --------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--alpha", "4", "--beta", "1e308"],
        ["--alpha", "4", "--beta", "1.7e308"],
        ["--alpha", "4", "--beta", "1", "--alpha", "1", "--beta", "1e308"],
    ],
)
def test_plot_with_curves_too_large_to_draw_is_a_usage_error(
    flags, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_cli, "make_figure", no_work)
    err = usage_error("plot", "--out", str(tmp_path / "f.png"), *flags, capsys=capsys)
    assert "--beta 1e+308" in err or "--beta 1.7e+308" in err
    assert "larger than a plot can draw" in err
    assert not (tmp_path / "f.png").exists()


@pytest.mark.parametrize(
    "text",
    [
        "-2^2",
        "-4",
        "2^-2",
        "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it
        "\uff12^\uff12\uff12",  # FULLWIDTH 2^22
        "2^\u0663",
        "1_024",
        " 1024",
        "2^32",
        "4^16",
        "0",
        "0^5",
        "0^0",  # 0**0 is 1: no size either
        "2**",
        "2^^2",
        "1" * 5000,  # int() refuses more than 4300 digits with its own message
    ],
)
def test_parse_size_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="size must be"):
        _cli.parse_size(text)


@pytest.mark.parametrize(
    "text", ["9" * 33, "2^" + "9" * 40, "1" * 5000, "0", "-4", "-2^2", "-0"]
)
def test_a_long_zero_or_negative_numeral_is_out_of_range_not_no_number(text):
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and 2") as error:
        _cli.parse_size(text)
    assert len(str(error.value)) < 100  # not thousands of digits


@pytest.mark.parametrize(
    "text", ["1" * 5000, "0" * 50 + "15", "0" * 5000 + "15", "1001", "0"]
)
def test_repeats_of_any_length_are_checked_by_the_option(text):
    if text.lstrip("0") == "15":
        assert _cli.parse_repeats(text) == 15
        return
    with pytest.raises(argparse.ArgumentTypeError, match="from 1 to 1000") as error:
        _cli.parse_repeats(text)
    assert len(str(error.value)) < 100


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1", 1),
        ("8192", 8192),
        ("2^22", 2**22),
        ("2**24", 2**24),
        ("2^31", 2**31),
        ("0" * 40 + "16", 16),
        ("0" * 5000 + "16", 16),  # int() refuses more than 4300 digits
        ("2^" + "0" * 5000 + "4", 16),
        ("2^0", 1),
        ("1^99999999999", 1),  # an exponent of many digits, of 1: refused
    ],
)
def test_parse_size_accepts(text, size):
    assert _cli.parse_size(text) == size


@pytest.mark.parametrize("size", ["--size=-2^2", "--size=\u0663"])
def test_bench_size_errors_exit_2(size, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    assert "size must be" in usage_error("bench", size, capsys=capsys)


def test_a_huge_size_exponent_is_refused_before_it_is_computed():
    """9^999999999 would take hours to compute; the range check comes first."""
    code = (
        "import argparse, s2nn_xp._cli as c\n"
        "try:\n    c.parse_size('9^999999999')\n"
        "except argparse.ArgumentTypeError as e:\n    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "size must be between 1 and 2^31, not 9^999999999" in result.stdout


@pytest.mark.parametrize("repeats", ["1001", "10" * 20])
def test_bench_repeats_has_an_upper_bound(repeats, capsys, monkeypatch):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    err = usage_error("bench", "--repeats", repeats, capsys=capsys)
    assert "argument --repeats: must be a whole number from 1 to 1000" in err


def test_bench_checks_memory_before_any_work(capsys, monkeypatch):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    monkeypatch.setattr(_cli, "available_memory", lambda: 8 * 2**30)
    err = usage_error(
        "bench", "--backend", "numpy", "--size", "2^31", "--dtype", "float32",
        capsys=capsys,
    )  # fmt: skip
    needed = _cli.memory_needed(2**31, "float32") / 2**30
    assert f"--size 2147483648 needs about {needed:.1f} GiB of memory" in err
    assert f"({_cli.WORKING_ARRAYS} arrays of 2147483648 float32 values)" in err
    assert "8.0 GiB is available" in err
    assert needed > 8


def test_bench_memory_is_that_of_the_largest_run(capsys, monkeypatch):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    need = _cli.memory_needed(2**20, "float64")
    assert need > _cli.memory_needed(2**20, "float32")
    assert need > _cli.memory_needed(2**19, "float64")
    assert _cli.memory_needed(2**20, "float16") == _cli.memory_needed(
        2**20, "float32"
    )  # computed in float32
    monkeypatch.setattr(_cli, "available_memory", lambda: need - 1)
    argv = ["bench", "--backend", "numpy", "--size", "16", "2^20"]
    err = usage_error(*argv, "--dtype", "float32", "float64", capsys=capsys)
    assert "--size 1048576 needs about" in err
    assert "for float64" in err


def test_memory_needed_bounds_a_real_run():
    """The estimate is at least the peak that tracemalloc sees (NumPy, float32)."""
    numpy_backend = _backends.get("numpy")
    _cli.bench_records([numpy_backend], [64], ["float32"], repeats=1)  # imports
    size = 2**18
    tracemalloc.start()
    try:
        _cli.bench_records([numpy_backend], [size], ["float32"], repeats=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= _cli.memory_needed(size, "float32")


def test_available_memory_is_a_positive_figure_here():
    memory = _cli.available_memory()
    assert memory is None or memory > 0


def test_bench_keeps_the_other_rows_when_one_fails(tmp_path, capsys, monkeypatch):
    import s2nn_xp

    monkeypatch.setattr(s2nn_xp, "gradient", raising(RuntimeError("broken on purpose")))
    out = tmp_path / "bench.json"
    code, stdout, stderr = run(
        "bench", "--backend", "numpy", *TINY, "--json", str(out), capsys=capsys
    )
    assert code == 1
    records = json.loads(out.read_text())
    (failed,) = [r for r in records if "error" in r]
    assert failed == {
        "backend": "numpy",
        "op": "gradient",
        "dtype": "float32",
        "size": 1024,
        "error": "RuntimeError: broken on purpose",
        "repeats": 1,
    }
    timed = {r["op"] for r in records if "error" not in r}
    assert {"forward", "origin", "forward+backward"} <= timed
    assert "FAIL: RuntimeError: broken on purpose" in stdout
    assert "1 row failed" in stderr


def test_bench_a_row_whose_inputs_cannot_be_built_fails_alone(
    tmp_path, capsys, monkeypatch
):
    numpy_backend = _backends.get("numpy")
    monkeypatch.setitem(
        _backends.BACKENDS,
        "numpy",
        BackendStandIn(numpy_backend, asarray=raising(MemoryError("no room"))),
    )
    out = tmp_path / "bench.json"
    code, stdout, _ = run(
        "bench", "--backend", "numpy", *TINY, "--json", str(out), capsys=capsys
    )
    assert code == 1
    (record,) = json.loads(out.read_text())
    assert record["error"] == "MemoryError: no room"
    assert "FAIL: MemoryError: no room" in stdout


def test_bench_float16_with_dask(tmp_path, capsys):
    optional_backend("dask")
    out = tmp_path / "bench.json"
    code, *_ = run(
        "bench", "--backend", "dask", "--dtype", "float16", *TINY, "--json", str(out),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0
    records = json.loads(out.read_text())
    assert records
    assert all("error" not in r and r["dtype"] == "float16" for r in records)


def test_bench_inputs_have_the_dtype_asked_for():
    for backend in _backends.available():
        for dtype in backend.dtypes:
            x = _cli.bench_input(backend, np.linspace(-3, 3, 8), dtype)
            assert _cli.dtype_name(x) == dtype, (backend.name, dtype)


def test_bench_an_input_of_the_wrong_dtype_is_a_failed_row(monkeypatch):
    numpy_backend = _backends.get("numpy")
    standin = BackendStandIn(
        numpy_backend, asarray=lambda values, dtype=None: values.astype(np.float64)
    )
    (record,) = _cli.bench_records([standin], [64], ["float32"], repeats=1)
    assert record["error"] == (
        "RuntimeError: the numpy input came out float64, not float32"
    )


# A braintools stand-in: importing it switches JAX's 64-bit mode off.
FAKE_BRAINTOOLS = {
    "__init__.py": 'import jax\njax.config.update("jax_enable_x64", False)\n',
    "surrogate.py": (
        "import s2nn_xp\n\n\n"
        "class S2NN:\n"
        "    def __call__(self, x):\n"
        "        return s2nn_xp.s2nn(x)\n"
    ),
}


@pytest.fixture
def braintools_that_switches_x64_off(tmp_path, monkeypatch):
    package = tmp_path / "braintools"
    package.mkdir()
    for name, source in FAKE_BRAINTOOLS.items():
        (package / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("braintools", "braintools.surrogate"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("braintools", "braintools.surrogate"):
        sys.modules.pop(name, None)


def test_bench_jax_float64_survives_an_anchor_that_switches_x64_off(
    braintools_that_switches_x64_off, tmp_path, capsys
):
    optional_backend("jax")
    import jax

    assert jax.config.jax_enable_x64
    out = tmp_path / "bench.json"
    code, _, stderr = run(
        "bench", "--backend", "jax", "--dtype", "float64", *TINY, "--json", str(out),
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, stderr
    assert jax.config.jax_enable_x64
    records = json.loads(out.read_text())
    assert all("error" not in r and r["dtype"] == "float64" for r in records)
    anchored = {r["op"] for r in records if "ratio_to_braintools" in r}
    assert anchored == {"forward+backward", "forward+backward eager"}


def test_bench_an_anchor_that_cannot_be_built_is_a_note(
    braintools_that_switches_x64_off, tmp_path, capsys
):
    optional_backend("jax")
    surrogate = tmp_path / "braintools" / "surrogate.py"
    surrogate.write_text("class S2NN:\n    def __init__(self):\n        1 / 0\n")
    code, _, stderr = run("bench", "--backend", "jax", *TINY, capsys=capsys)
    assert code == 0
    assert "note: braintools failed (ZeroDivisionError: division by zero)" in stderr


def test_bench_anchor_loading_keeps_jax_x64(braintools_that_switches_x64_off):
    optional_backend("jax")
    import jax

    assert _cli.load_anchor("braintools") is not None
    assert jax.config.jax_enable_x64


def test_bench_an_anchor_that_fails_is_a_note(tmp_path, capsys, monkeypatch):
    def broken_anchor(backend, x, cotangent, op="forward+backward"):
        return {"anchorlib": raising(RuntimeError("anchor broken"))}

    monkeypatch.setattr(_cli, "_anchor_cases", broken_anchor)
    out = tmp_path / "bench.json"
    code, _, stderr = run(
        "bench", "--backend", "numpy", *TINY, "--json", str(out), capsys=capsys
    )
    assert code == 0
    assert (
        "note: anchorlib failed (RuntimeError: anchor broken); not compared" in stderr
    )
    assert all("error" not in r for r in json.loads(out.read_text()))


@pytest.mark.parametrize(
    ("source", "note"),
    [
        ("", False),  # loads
        ("import a_dependency_not_installed\n", True),  # broken: said
    ],
)
def test_an_anchor_broken_by_a_missing_dependency_is_a_note(
    source, note, tmp_path, capsys, monkeypatch
):
    module = f"anchorlib_s2nn_{tmp_path.name}"  # a name no test imported yet
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    anchors = {
        **_cli.ANCHORS,
        "anchorlib": ("numpy", module),
        "absentlib": ("numpy", "absentlib_s2nn.surrogate"),
    }
    monkeypatch.setattr(_cli, "ANCHORS", anchors)
    monkeypatch.setattr(_cli, "_NOTES_SAID", set())  # as at a run's start
    assert (_cli.load_anchor("anchorlib") is None) is note
    assert _cli.load_anchor("absentlib") is None
    stderr = capsys.readouterr().err
    assert ("note: anchorlib failed to load (ModuleNotFoundError" in stderr) is note
    # not installed: said too (its column was empty without a word)
    assert "note: absentlib is not installed; not compared" in stderr
    assert "absentlib failed" not in stderr
    if note:  # said once a run, where it is loaded for every size and operation
        for _ in range(2):
            argv = ("bench", "--backend", "numpy", "--size", "64", "128")
            code, _, stderr = run(*argv, "--repeats", "1", capsys=capsys)
            assert code == 0
            assert stderr.count("anchorlib failed to load") == 1


@pytest.fixture
def a_backend_whose_device_query_raises(monkeypatch):
    """As JAX with ``JAX_PLATFORMS=cuda`` on a machine without a GPU."""
    numpy_backend = _backends.get("numpy")
    error = RuntimeError("Unable to initialize backend 'cuda'")
    standin = BackendStandIn(
        numpy_backend, has_device=lambda: True, devices=raising(error)
    )
    monkeypatch.setitem(_backends.BACKENDS, "numpy", standin)


def test_info_skips_a_backend_whose_device_query_raises(
    a_backend_whose_device_query_raises, capsys
):
    code, out, _ = run("info", capsys=capsys)
    (row,) = [line for line in out.splitlines() if line.startswith("numpy ")]
    assert "installed, no device (skipped): RuntimeError: Unable to initialize" in row
    assert "FAIL" not in row
    assert code == 0


def test_bench_skips_a_backend_whose_device_query_raises(
    a_backend_whose_device_query_raises, capsys
):
    err = usage_error("bench", "--backend", "numpy", *TINY, capsys=capsys)
    cause = "(RuntimeError: Unable to initialize backend 'cuda')"
    assert f"backend 'numpy' is installed but has no device here {cause}" in err


def test_jax_without_its_platform_is_installed_without_a_device():
    optional_backend("jax")
    import jax

    # a platform JAX lacks here: CUDA, but for a machine that has a GPU
    absent = "tpu" if jax.default_backend() == "gpu" else "cuda"
    env = {**os.environ, "JAX_PLATFORMS": absent, "S2NN_XP_BACKENDS": "numpy,jax"}
    command = [sys.executable, "-m", "s2nn_xp"]
    info = subprocess.run(
        [*command, "info"], capture_output=True, text=True, env=env, timeout=300
    )
    assert "Traceback" not in info.stderr
    (row,) = [line for line in info.stdout.splitlines() if line.startswith("jax ")]
    assert "installed, no device (skipped)" in row
    bench = subprocess.run(
        [*command, "bench", *TINY],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert "Traceback" not in bench.stderr
    assert bench.returncode == 0, bench.stderr
    assert "note: jax is installed but has no device here" in bench.stderr


def test_a_misspelt_jax_platform_is_shown_in_jaxs_words():
    """``JAX_PLATFORMS=bogus`` read as "no device", JAX's message hidden."""
    optional_backend("jax")
    env = {**os.environ, "JAX_PLATFORMS": "bogus", "S2NN_XP_BACKENDS": "numpy,jax"}
    command = [sys.executable, "-m", "s2nn_xp"]
    info = subprocess.run(
        [*command, "info"], capture_output=True, text=True, env=env, timeout=300
    )
    (row,) = [line for line in info.stdout.splitlines() if line.startswith("jax ")]
    assert (
        "no device (skipped): RuntimeError: Unable to initialize backend 'bogus'" in row
    )
    bench = subprocess.run(
        [*command, "bench", "--backend", "jax", *TINY],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bench.returncode == 2
    assert "has no device here (RuntimeError: Unable to initialize backend 'bogus'" in (
        bench.stderr
    )


# --- what bench covers (issue 13) -------------------------------------------------


def bench_json(*argv, tmp_path, capsys) -> list[dict]:
    out = tmp_path / "bench.json"
    code, _, stderr = run("bench", *argv, *TINY, "--json", str(out), capsys=capsys)
    assert code == 0, stderr
    return json.loads(out.read_text())


def test_bench_default_sizes_are_those_of_the_figures():
    assert _cli.DEFAULT_SIZES == (8192, 2**20, 2**22, 2**24)
    assert _cli.DEFAULT_DTYPES == ("float32",)
    args = _cli.build_parser().parse_args(["bench"])
    assert args.size is None and args.dtype is None  # run_bench fills them in


def test_bench_options_add_up_when_repeated():
    """As --backend does: `--size 8 --size 16` times both sizes, not the last."""
    argv = "bench --size 8 --size 16 2^5 --dtype float32 --dtype float64"
    args = _cli.build_parser().parse_args(argv.split())
    assert args.size == [8, 16, 32]
    assert args.dtype == ["float32", "float64"]


def test_bench_times_every_public_function(xp, tmp_path, capsys):
    """On every backend the registry has (a list of three here let a new
    backend's bench fail unseen)."""
    backend = backend_of(xp)
    records = bench_json("--backend", backend.name, tmp_path=tmp_path, capsys=capsys)
    ops = [r["op"] for r in records]
    assert ops[:3] == ["forward", "origin", "gradient"]
    want = {"forward", "origin", "gradient", "forward+backward"}
    if Capability.AUTODIFF in backend.capabilities:
        want.add("vjp+pullback")
    assert want <= set(ops)
    for record in records:
        assert record["floor"] == _cli.OPS[record["op"]]
        assert record["version"] == backend.version()
        assert record["seconds"] > 0


@pytest.mark.parametrize("name", ["jax", "torch"])
def test_bench_autodiff_backends_add_vjp_and_learnable_parameters(
    name, tmp_path, capsys
):
    optional_backend(name)
    records = bench_json("--backend", name, tmp_path=tmp_path, capsys=capsys)
    by_op = {r["op"]: r for r in records}
    assert {
        "forward",
        "origin",
        "gradient",
        "vjp+pullback",
        "forward+backward",
        "forward+backward learnable",
    } <= by_op.keys()
    learnable = by_op["forward+backward learnable"]
    # Which layout was timed: 64 samples where 64 divides the size, else one
    # (the records said neither, and the two differ in time and memory)
    assert learnable["learnable_batch"] == _cli.learnable_batch(learnable["size"])
    assert [_cli.learnable_batch(n) for n in (8192, 64, 8193, 1000)] == [64, 64, 1, 1]
    assert learnable["fixed_seconds"] == by_op["forward+backward"]["seconds"]
    assert learnable["ratio_to_fixed"] == pytest.approx(
        learnable["seconds"] / learnable["fixed_seconds"]
    )
    assert set(by_op) <= set(_cli.OPS)


def test_bench_learnable_cases_compute_every_gradient():
    """The learnable rows time the input and the parameter gradients."""
    for name in ("jax", "torch"):
        if name not in selected_backends():
            continue
        backend = _backends.get(name)
        if not backend.is_installed():
            continue
        x = _cli.bench_input(backend, np.linspace(-3.0, 3.0, 61), "float64")
        inputs = _cli.Inputs(x, x * 0 + 2)
        spike, grads = _cli._learnable_round_trip(backend, inputs)()
        # 61 values are one sample of 61 neurons (not a multiple of the batch)
        grads = [np.ravel(backend.to_numpy(g)) for g in grads]
        x_np = np.linspace(-3.0, 3.0, 61)
        import s2nn_xp

        # PyTorch's learnable parameters are float32 (the default dtype).
        np.testing.assert_allclose(grads[0], 2 * s2nn_xp.gradient(x_np), rtol=1e-6)
        d_beta = np.where(x_np >= 0, 2 * np.log1p(np.abs(x_np) + 1e-8), 0.0)
        np.testing.assert_allclose(grads[2], d_beta, rtol=1e-6, atol=1e-300)
        np.testing.assert_array_equal(np.ravel(backend.to_numpy(spike)), x_np >= 0)


def test_bench_jax_compiles_the_floors_and_forward_backward(monkeypatch):
    optional_backend("jax")
    import jax

    jitted = []
    real_jit = jax.jit

    def spy(fn, *args, **kwargs):
        jitted.append(fn.__name__)
        return real_jit(fn, *args, **kwargs)

    monkeypatch.setattr(jax, "jit", spy)
    backend = _backends.get("jax")
    x = _cli.bench_input(backend, np.linspace(-3.0, 3.0, 1024), "float32")
    cases = _cli._our_cases(backend, _cli.Inputs(x, x * 0 + 2))
    floors = {"copy", "negative", "scale", "negative_and_scale"}
    assert {*floors, "round_trip"} <= set(jitted)
    np.testing.assert_array_equal(np.asarray(cases["copy"]()), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(cases["x*g"]()), 2 * np.asarray(x))
    assert cases["copy"]().unsafe_buffer_pointer() != x.unsafe_buffer_pointer()


def test_bench_rows_agree_with_the_reference():
    """Every timed case of ours computes what its name says."""
    import s2nn_xp

    x_np = np.linspace(-3.0, 3.0, 61)
    want = {
        "forward": s2nn_xp.forward(x_np),
        "origin": s2nn_xp.origin(x_np),
        "gradient": s2nn_xp.gradient(x_np),
    }
    for backend in _backends.available():
        x = _cli.bench_input(backend, x_np, "float64")
        cases = _cli._our_cases(backend, _cli.Inputs(x, x * 0 + 2))
        for op, value in want.items():
            got = backend.to_numpy(cases[op]())
            np.testing.assert_allclose(got, value, rtol=1e-12, err_msg=backend.name)
        for op in ("forward+backward", "vjp+pullback", "forward+backward eager"):
            if op in cases:
                spike, grad = cases[op]()
                np.testing.assert_array_equal(backend.to_numpy(spike), want["forward"])
                np.testing.assert_allclose(
                    backend.to_numpy(grad), 2 * want["gradient"], rtol=1e-12
                )


def test_bench_row_shows_failed_records():
    record = {"backend": "numpy", "op": "gradient", "dtype": "float32", "size": 8}
    cells = _cli.bench_row({**record, "error": "RuntimeError: x"})
    assert cells[:4] == ("numpy", "float32", "8", "gradient")
    assert cells[-1] == "FAIL: RuntimeError: x"
    assert len(cells) == len(_cli.BENCH_HEADER)


def test_bench_row_reads_records_of_earlier_versions():
    """The docs plot JSON written by earlier versions: no new field is required."""
    record = {
        "backend": "jax",
        "op": "forward+backward",
        "dtype": "float32",
        "size": 4194304,
        "seconds": 0.0106,
        "floor_seconds": 0.0057,
        "ratio_to_floor": 1.86,
        "braintools_seconds": 0.0103,
        "ratio_to_braintools": 1.03,
    }
    cells = _cli.bench_row(record)
    assert cells[-3:] == ("1.86", "-", "braintools 1.03x")


@pytest.mark.parametrize(("size", "shown"), [(8192, "64 x 128"), (8200, "1 x 8200")])
def test_bench_row_says_the_learnable_batch(size, shown):
    """8192 values ran as 64 samples, 8200 as one: the table said neither."""
    record = {
        "backend": "torch",
        "op": "forward+backward learnable",
        "dtype": "float32",
        "size": size,
        "seconds": 2e-4,
        "floor_seconds": 1e-5,
        "ratio_to_floor": 20.0,
        "learnable_batch": _cli.learnable_batch(size),
    }
    assert _cli.bench_row(record)[3] == f"forward+backward learnable ({shown})"


def test_bench_a_failing_floor_fails_every_op_of_its_run(monkeypatch):
    def broken_floors(x, cotangent, compile):
        return {"copy": raising(MemoryError("no room")), "x*g": lambda: x * cotangent}

    monkeypatch.setattr(_cli, "floor_cases", broken_floors)
    records = _cli.bench_records([_backends.get("numpy")], [64], ["float32"], 1)
    assert [r["op"] for r in records] == [
        "forward",
        "origin",
        "gradient",
        "forward+backward",
    ]
    assert {r["error"] for r in records} == {
        "the floor copy failed: MemoryError: no room"
    }


@pytest.mark.parametrize(
    ("dtype", "drawn"),
    [("float16", "float32"), ("float32", "float32"), ("float64", "float64")],
)
def test_bench_draws_its_values_in_the_compute_dtype(dtype, drawn, monkeypatch):
    """No float64 temporary for a float32 run (2^31 values: 16 GiB)."""
    dtypes = []

    class Generator:
        def standard_normal(self, size, dtype):
            dtypes.append(np.dtype(dtype))
            return np.zeros(size, dtype)

    monkeypatch.setattr(_cli.np.random, "default_rng", lambda seed: Generator())
    records = _cli.bench_records([_backends.get("numpy")], [64], [dtype], 1)
    assert dtypes == [np.dtype(drawn)]
    assert all("error" not in r for r in records)


def test_bench_numpy_records_peak_memory(tmp_path, capsys):
    records = bench_json("--backend", "numpy", tmp_path=tmp_path, capsys=capsys)
    outputs = {"forward+backward": 2}  # the spike and the gradient; others one
    for record in records:
        assert record["peak_memory_ratio"] >= outputs.get(record["op"], 1)
        assert "saved_for_backward_ratio" not in record
    assert "peak " in _cli.bench_row(records[0])[-2]


def test_bench_torch_records_what_backward_keeps(tmp_path, capsys):
    optional_backend("torch")
    records = bench_json("--backend", "torch", tmp_path=tmp_path, capsys=capsys)
    saved = {r["op"]: r.get("saved_for_backward_ratio") for r in records}
    assert saved["forward+backward"] > 0
    assert saved["gradient"] is None
    assert all("error" not in r for r in records)
    assert all("peak_memory_ratio" not in r for r in records)


def test_torch_saved_bytes_counts_each_storage_once():
    torch = optional_backend("torch")
    x = torch.linspace(-1.0, 1.0, 256)
    g = torch.ones_like(x)
    assert _cli._torch_saved_bytes(
        lambda: _backends.torch_round_trip(torch.sin, x, g)
    ) == (x.nbytes)
    square = _cli._torch_saved_bytes(
        lambda: _backends.torch_round_trip(lambda v: v * v, x, g)
    )
    assert square == x.nbytes  # v is saved twice, one storage


_IMPORT_FAILURES = {
    # jax with a jaxlib of another version
    "RuntimeError": RuntimeError("jaxlib version 0.1 does not match"),
    # jax without jaxlib: an ImportError, but of a dependency (it was shown
    # as "not installed", info passing)
    "ModuleNotFoundError": ModuleNotFoundError(
        "jaxlib version 0.1 does not match: jax requires jaxlib"
    ),
    "ImportError": ImportError("jaxlib version 0.1 does not match: DLL load failed"),
}


@pytest.fixture(params=list(_IMPORT_FAILURES))
def numpy_that_fails_to_import(monkeypatch, request):
    """The numpy record of a library installed but broken: any exception of
    its import but a ModuleNotFoundError naming the module itself."""
    failure = _IMPORT_FAILURES[request.param]

    def broken(module):
        raise failure

    record = dataclasses.replace(_backends.BACKENDS["numpy"], load_module=broken)
    registry = {**_backends.BACKENDS, "numpy": record}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    return record


def test_a_backend_that_fails_to_import_is_reported_not_raised(
    numpy_that_fails_to_import, capsys
):
    assert numpy_that_fails_to_import.is_installed()
    assert numpy_that_fails_to_import not in _backends.available()
    code, out, _ = run("info", capsys=capsys)
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith("numpy ")]
    assert "FAIL: installed, does not import (" in row and "jaxlib version" in row
    err = usage_error("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert "backend 'numpy' is installed but fails to import (" in err


def test_a_failure_of_several_lines_keeps_the_table_whole(monkeypatch, capsys):
    """marray on NumPy 1.26 fails with NumPy's three-line notice, which was
    pasted into its cell: the separator as wide as the notice, its lines
    out of the table."""
    notice = "module 'numpy' has no attribute 'bool'.\n`np.bool` was an\nalias"

    def broken(module):
        raise AttributeError(notice)

    record = dataclasses.replace(_backends.BACKENDS["numpy"], load_module=broken)
    registry = {**_backends.BACKENDS, "numpy": record}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    code, out, _ = run("info", capsys=capsys)
    assert code == 1
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("backend "))
    table = lines[header : header + 2 + len(registry)]
    assert all(len(line) <= len(table[1]) for line in table)
    (row,) = [line for line in table if line.startswith("numpy ")]
    assert "AttributeError: module 'numpy' has no attribute 'bool'." in row
    assert f"numpy: AttributeError: {notice}" in out  # whole, under the table
    # Windows line ends, a leading or trailing line break: one clean line
    details: list[str] = []
    assert _cli._first_line("n", "a\r\nb", details) == "a [whole message below]"
    assert _cli._first_line("n", "\nonly", details) == "only"
    assert _cli._first_line("n", "only\n", details) == "only"
    assert details == ["n: a\r\nb"]


def test_a_library_missing_a_module_of_its_own_is_installed_but_broken():
    """A package present in an older layout (spikingjelly without
    activation_based) was hidden as not installed."""
    missing = ModuleNotFoundError("No module named 'numpy.linalg'", name="numpy.linalg")
    assert not _backends.not_installed(missing, "numpy.linalg")
    assert not _backends.not_installed(missing, "numpy.linalg.lapack")
    absent = ModuleNotFoundError("No module named 'numpy'", name="numpy")
    assert _backends.not_installed(absent, "numpy.linalg")
    assert not _backends.not_installed(absent, "numpyro")


@pytest.mark.parametrize(
    ("module", "missing"), [("numpy", "numpy"), ("numpy.linalg", "numpy")]
)
def test_a_backend_whose_own_module_is_missing_is_not_installed(
    module, missing, monkeypatch, capsys
):
    def absent(module):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)

    record = dataclasses.replace(
        _backends.BACKENDS["numpy"], module=module, load_module=absent
    )
    assert not record.is_installed()
    registry = {"numpy": record}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    code, out, _ = run("info", capsys=capsys)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("numpy ")]
    assert row.endswith("not installed")
    err = usage_error("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert "backend 'numpy' is not installed here" in err


def test_bench_default_backends_fail_one_that_fails_to_import(
    numpy_that_fails_to_import, tmp_path, capsys, monkeypatch
):
    """As ``info`` counts it: a failure. It was a note on standard error,
    status 0, and nothing of it in the JSON: a CI job lost a backend."""
    registry = {"numpy": numpy_that_fails_to_import}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    path = tmp_path / "bench.json"
    sizes = ("--size", "1024", "2048", "--dtype", "float32", "float64")
    code, out, err = run(
        "bench", *sizes, "--repeats", "1", "--json", str(path), capsys=capsys
    )
    assert code == 1  # one row, not one a run
    (row,) = [line for line in out.splitlines() if line.startswith("numpy ")]
    assert "FAIL: numpy is installed but fails to import (" in row
    (record,) = json.loads(path.read_text())
    assert record["op"] == "(setup)" and record["size"] == 1024
    assert record["error"].startswith("numpy is installed but fails to import (")
    assert "1 row failed" in err
    assert "[1/4] numpy float32 n=1024" in err and "[2/4]" not in err  # said once


def test_paths_the_terminal_cannot_encode_are_printed_escaped(tmp_path):
    target = tmp_path / "r\u00e9sultats.json"
    completed = subprocess.run(
        _command("bench", "--backend", "numpy", *TINY, "--json", str(target)),
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert b"r\\xe9sultats.json" in completed.stdout
    assert target.exists()


def test_bench_measures_memory_without_nbytes(capsys, monkeypatch):
    """nbytes is no array-API attribute (array-api-strict's arrays lack it)."""

    class WithoutNbytes(np.ndarray):
        @property
        def nbytes(self):
            raise AttributeError("no nbytes here")

    record = dataclasses.replace(
        _backends.BACKENDS["numpy"],
        from_numpy=lambda xp, values: np.asarray(values).view(WithoutNbytes),
    )
    monkeypatch.setitem(_backends.BACKENDS, "numpy", record)
    monkeypatch.setitem(_cli.BACKENDS, "numpy", record)
    code, _, stderr = run("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert code == 0
    assert "memory not measured" not in stderr
    assert "nbytes" not in stderr


def test_outputs_to_the_file_standard_output_writes_hold_only_the_output(tmp_path):
    """``--json out.json > out.json`` and a figure through a link to
    standard output: the table and "wrote" followed the figures into the
    file, which then did not parse."""
    out = tmp_path / "out.json"
    out.write_text("")
    completed = _shell(
        f"> '{out}'", "bench", "--backend", "numpy", *TINY, "--json", str(out)
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())[0]["backend"] == "numpy"
    assert " 1024 " in completed.stderr and f"wrote {out}" in completed.stderr
    # a character device keeps nothing to parse: the table stays on stdout
    quiet = _shell(
        "> /dev/null", "bench", "--backend", "numpy", *TINY, "--json", "/dev/null"
    )
    assert quiet.returncode == 0 and " 1024 " not in quiet.stderr
    if importlib.util.find_spec("matplotlib") is None:
        return
    link = tmp_path / "figure.svg"
    link.symlink_to("/dev/stdout")
    drawn = subprocess.run(_command("plot", "--out", str(link)), capture_output=True)
    assert drawn.returncode == 0, drawn.stderr
    ElementTree.fromstring(drawn.stdout)  # the SVG alone
    assert f"wrote {link}".encode() in drawn.stderr


def test_what_a_library_prints_during_bench_stays_out_of_the_json(capsys, monkeypatch):
    """``--json -``: a library's print (an anchor's banner at import) went
    into the JSON on standard output."""
    measure, choose = _cli._run_records, _cli._bench_backends

    def chatty(*args, **kwargs):
        print("a library's banner")
        return measure(*args, **kwargs)

    def imported_chatty(*args, **kwargs):  # at its import, as backends load
        print("an import's banner")
        return choose(*args, **kwargs)

    monkeypatch.setattr(_cli, "_run_records", chatty)
    monkeypatch.setattr(_cli, "_bench_backends", imported_chatty)
    code, stdout, stderr = run(
        "bench", "--backend", "numpy", *TINY, "--json", "-", capsys=capsys
    )
    assert code == 0
    assert json.loads(stdout)[0]["backend"] == "numpy"
    assert "a library's banner" in stderr and "an import's banner" in stderr


def test_a_failure_of_several_lines_keeps_the_bench_table_whole(capsys, monkeypatch):
    """As ``info``'s: the first line in the cell, the whole under the table
    (a compiler's message spilled into the first column)."""

    def failing(*args, **kwargs):
        raise RuntimeError("first line\nsecond line\nthird line")

    monkeypatch.setattr(_cli, "_run_records", failing)
    code, out, _ = run("bench", "--backend", "numpy", *TINY, capsys=capsys)
    assert code == 1
    lines = out.splitlines()
    separator, row = lines[1:3]  # one run, one row
    assert row.endswith("FAIL: RuntimeError: first line [whole message below]")
    assert len(row) <= len(separator)
    assert "numpy float32 1024 (setup): RuntimeError: first line\nsecond line" in out
    details: list[str] = []
    record = {"backend": "b", "dtype": "d", "size": 1, "op": "o", "error": "x\ny"}
    assert _cli.bench_row(record, details)[-1] == "FAIL: x [whole message below]"
    assert details == ["b d 1 o: x\ny"]


def test_a_figure_matplotlib_cannot_draw_is_a_one_line_error(
    tmp_path, capsys, monkeypatch
):
    """A matplotlibrc's ``text.usetex: True`` without LaTeX, or a huge
    ``savefig.dpi``, ended in a traceback; nothing is written."""
    figure = pytest.importorskip("matplotlib.figure")

    def no_latex(self, *args, **kwargs):
        raise RuntimeError(
            "Failed to process string with tex because latex could not be found"
        )

    monkeypatch.setattr(figure.Figure, "savefig", no_latex)
    path = tmp_path / "figure.png"
    code = _cli.main(["plot", "--out", str(path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith("s2nn-xp plot: error: the figure cannot be drawn: ")
    assert "latex could not be found" in err and "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_no_file_is_opened_in_the_locale_encoding(tmp_path):
    """``-X warn_default_encoding -W error``: an EncodingWarning ended the run."""
    out = tmp_path / "out.json"
    out.write_text("")  # an existing file is tried for writing first
    bench = _command("bench", "--backend", "numpy", *TINY, "--json", str(out))
    completed = subprocess.run(
        [bench[0], "-X", "warn_default_encoding", "-W", "error", *bench[1:]],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(out.read_text())[0]["backend"] == "numpy"


def test_bench_json_to_standard_output(tmp_path, capsys, monkeypatch):
    """``--json -``: the JSON alone on standard output, no file named '-'."""
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run(
        "bench", "--backend", "numpy", *TINY, "--json", "-", capsys=capsys
    )
    assert code == 0
    records = json.loads(stdout)
    assert {r["backend"] for r in records} == {"numpy"}
    assert "median us" in stderr  # the table
    assert not (tmp_path / "-").exists()
    # "./-" names a file, as for any other command
    code, stdout, _ = run(
        "bench", "--backend", "numpy", *TINY, "--json", "./-", capsys=capsys
    )
    assert code == 0
    assert json.loads((tmp_path / "-").read_text())[0]["backend"] == "numpy"
    assert "median us" in stdout


def _shell(redirect: str, *argv: str) -> subprocess.CompletedProcess:
    """``s2nn-xp argv`` with its streams redirected by the shell."""
    return subprocess.run(
        ["sh", "-c", f'exec "$0" "$@" {redirect}', *_command(*argv)],
        capture_output=True,
        text=True,
    )


def test_streams_that_cannot_be_written_are_reported_or_let_be():
    """stderr closed: diagnostics went into stdout (`--json -` was no JSON);
    stdout read-only: a traceback; stderr full: the bench died before any
    work; help to a full disk: status 0."""
    tiny = ("bench", "--backend", "numpy", "--size", "1024", "--repeats", "1")
    completed = _shell("2>&-", *tiny, "--json", "-")
    assert completed.returncode == 0
    assert {r["backend"] for r in json.loads(completed.stdout)} == {"numpy"}
    completed = _shell("1</dev/null", "info")
    assert completed.returncode == 1 and "Traceback" not in completed.stderr
    assert "cannot write output" in completed.stderr
    if Path("/dev/full").exists():
        completed = _shell("2>/dev/full", *tiny)
        assert completed.returncode == 0 and " 1024 " in completed.stdout
        completed = _shell(">/dev/full", "--help")
        assert completed.returncode == 1 and "cannot write output" in completed.stderr


def test_json_through_a_link_and_option_mistakes_with_stderr_full(tmp_path):
    """A link was replaced by a file (the target kept the old figures); a
    mistake in the options exited 1, not 2, where stderr could not be written."""
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    _cli.write_output(link, "[]\n")
    assert link.is_symlink() and target.read_text() == "[]\n"
    if Path("/dev/full").exists():
        completed = _shell("2>/dev/full", "bench", "--size", "0")
        assert completed.returncode == 2


def test_ctrl_c_while_the_figures_are_saved_waits_for_them():
    """A second Ctrl-C close behind the first lost the finished runs' JSON; a
    second one during the save still stops it."""
    import signal

    with _cli._interrupts_deferred() as deferred:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # the handler runs between bytecodes
            if deferred.count:
                break
    assert deferred.count == 1
    with pytest.raises(KeyboardInterrupt), _cli._interrupts_deferred():  # noqa: PT012
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):
            pass
