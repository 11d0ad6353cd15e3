"""The s2nn-xp command: info, plot and bench on the CPU backends."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from s2nn_xp import _backends, _cli
from tests.conftest import require

require("numpy")


def run(*argv, capsys):
    code = _cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


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
    code, stdout, _ = run(
        "bench",
        "--backend",
        "numpy",
        "--size",
        "16",
        "--dtype",
        "bfloat16",
        "--repeats",
        "1",
        capsys=capsys,
    )
    assert code == 0
    assert "bfloat16" not in stdout.split("----", 1)[-1]


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
