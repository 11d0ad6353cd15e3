"""The s2nn-xp command: info, plot and bench on the CPU backends."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from s2nn_xp import _backends, _cli
from tests.conftest import load_backend, require, selected_backends

require("numpy")

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
    return cupy


def test_info_passes_on_installed_backends(capsys):
    code, out, _ = run("info", capsys=capsys)
    assert code == 0
    assert "numpy" in out
    assert "pass (max rel. err" in out


def test_info_fails_when_a_backend_disagrees(capsys, monkeypatch):
    numpy_backend = _backends.BACKENDS["numpy"]
    broken = _backends.Backend(
        "numpy",
        "numpy",
        "wrong on purpose",
        (),
        ("float64",),
        _hooks={"autodiff_gradient": lambda x, a, b: np.zeros_like(x)},
    )
    monkeypatch.setitem(_backends.BACKENDS, "numpy", broken)
    code, out, _ = run("info", capsys=capsys)
    assert code == 1
    assert "FAIL" in out
    assert _cli.check_backend(numpy_backend)["passed"]
    assert not _cli.check_backend(broken)["passed"]


def test_info_skips_an_installed_backend_without_a_device(cupy_without_device, capsys):
    code, out, _ = run("info", capsys=capsys)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("cupy ")]
    assert "installed, no device (skipped)" in row
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


def test_plot_custom_pairs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "pairs.png"
    code, *_ = run(
        "plot", "--out", str(out), "--alpha", "3", "--beta", "0.75", capsys=capsys
    )
    assert code == 0
    assert out.stat().st_size > 1000


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plot", "--out", "fig.txt"], "--out must end in"),
        (["plot", "--out", "f.png", "--alpha", "2"], "same number of times"),
        (["plot", "--out", "f.png", "--alpha", "-2", "--beta", "1"], "finite and > 0"),
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
    assert len(records) == 2 * 2 * 3
    keys = {
        "backend",
        "op",
        "dtype",
        "size",
        "seconds",
        "floor_seconds",
        "ratio_to_floor",
    }
    for record in records:
        assert keys <= record.keys()
        assert record["backend"] == "numpy"
        assert record["op"] in _cli.OPS
        assert record["seconds"] > 0
        assert record["ratio_to_floor"] == pytest.approx(
            record["seconds"] / record["floor_seconds"]
        )
    assert {r["size"] for r in records} == {256, 100}
    assert "x floor" in stdout


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
    assert [r["backend"] for r in json.loads(out.read_text())] == 3 * ["numpy"] + 3 * [
        other
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["bench", "--backend", "numpy", "--json", "{tmp}/missing/bench.json"],
            "--json: cannot write '{tmp}/missing/bench.json': no directory",
        ),
        (
            ["bench", "--backend", "numpy", "--json", "{tmp}"],
            "--json: cannot write '{tmp}': it is a directory",
        ),
        (
            ["plot", "--out", "{tmp}/missing/figure.png"],
            "--out: cannot write '{tmp}/missing/figure.png': no directory",
        ),
        (["plot", "--out", "{tmp}/missing/figure.jpg"], "--out must end in"),
    ],
)
def test_unwritable_outputs_fail_before_any_work(
    argv, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_cli, "bench_records", no_work)
    monkeypatch.setattr(_cli, "make_figure", no_work)
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert message.format(tmp=tmp_path) in usage_error(*argv, capsys=capsys)
    assert not (tmp_path / "missing").exists()


def test_plot_out_that_is_a_directory_fails_before_drawing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(_cli, "make_figure", no_work)
    (tmp_path / "figure.png").mkdir()
    err = usage_error("plot", "--out", str(tmp_path / "figure.png"), capsys=capsys)
    assert "--out: cannot write" in err
    assert "it is a directory" in err


def test_a_failed_json_write_is_a_clear_error(tmp_path, capsys, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_text", refuse)
    err = usage_error(
        "bench",
        "--backend",
        "numpy",
        *TINY,
        "--json",
        str(tmp_path / "bench.json"),
        capsys=capsys,
    )
    assert "--json: cannot write" in err
    assert "Permission denied" in err
    assert "Traceback" not in err


def test_a_failed_figure_write_is_a_clear_error(tmp_path, capsys, monkeypatch):
    figure = pytest.importorskip("matplotlib.figure")

    def refuse(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figure.Figure, "savefig", refuse)
    err = usage_error("plot", "--out", str(tmp_path / "figure.png"), capsys=capsys)
    assert "--out: cannot write" in err
    assert "No space left on device" in err


def test_bench_default_backends_skip_one_without_a_device(
    cupy_without_device, capsys, monkeypatch
):
    registry = {name: _backends.BACKENDS[name] for name in ("numpy", "cupy")}
    monkeypatch.setattr(_backends, "BACKENDS", registry)
    monkeypatch.setattr(_cli, "BACKENDS", registry)
    code, stdout, stderr = run("bench", *TINY, capsys=capsys)
    assert code == 0
    assert "note: cupy is installed but has no device; skipped" in stderr
    table = stdout.split("----", 1)[-1]
    assert "numpy" in table
    assert "cupy" not in table


def test_bench_rejects_a_named_backend_without_a_device(cupy_without_device, capsys):
    err = usage_error("bench", "--backend", "numpy", "cupy", *TINY, capsys=capsys)
    assert "backend 'cupy' is installed but has no device here" in err


def test_bench_jits_the_floors_like_the_ops_for_jax(monkeypatch):
    optional_backend("jax")
    import jax

    jitted = []
    real_jit = jax.jit

    def spy(fn, *args, **kwargs):
        jitted.append(fn.__name__)
        return real_jit(fn, *args, **kwargs)

    monkeypatch.setattr(jax, "jit", spy)
    backend = _backends.get("jax")
    x = backend.asarray(np.linspace(-3.0, 3.0, 1024), "float32")
    cotangent = x * 0 + 2
    cases = _cli._cases(backend, x, cotangent)
    assert {"copy", "scale", "s2nn", "gradient"} <= set(jitted)
    np.testing.assert_array_equal(np.asarray(cases["copy"]()), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(cases["x*g"]()), 2 * np.asarray(x))
    assert cases["copy"]().unsafe_buffer_pointer() != x.unsafe_buffer_pointer()


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


def test_plot_without_out_needs_a_display(monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "agg")
    assert "no display to show the figure on" in usage_error("plot", capsys=capsys)


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

    def fake_anchors(backend, x, cotangent):
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
