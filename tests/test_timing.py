"""The one timing method of ``s2nn-xp bench`` and ``benchmarks/*.py``."""

from __future__ import annotations

import ast
import importlib.util
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from s2nn_xp import _cli, _timing
from tests._support import load_backend, selected_backends

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def test_cases_take_turns_after_their_warmup():
    calls = []
    cases = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    seconds = _timing.median_seconds(cases, repeats=3, warmup=2)
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]
    for turn in range(3):  # each case once a turn
        assert sorted(calls[6 + 3 * turn : 9 + 3 * turn]) == ["a", "b", "c"]
    assert list(seconds) == ["a", "b", "c"]
    assert all(value >= 0 for value in seconds.values())


def test_no_case_always_follows_the_same_one():
    """A fixed order gave a case the same neighbour, which slowed it
    (spikingjelly's S2NN after the learnable case: 13%)."""
    calls = []
    cases = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    _timing.median_seconds(cases, repeats=40, warmup=0)
    for name in "abcd":
        before = {
            calls[i - 1] for i, called in enumerate(calls) if i and called == name
        }
        assert len(before) >= 3  # the others, and itself across turns
    again = []
    cases = {name: (lambda name=name: again.append(name)) for name in "abcd"}
    _timing.median_seconds(cases, repeats=40, warmup=0)
    assert again == calls  # the same orders every run


def test_every_result_is_waited_for():
    waited = []
    _timing.median_seconds(
        {"one": lambda: 1, "two": lambda: 2},
        repeats=2,
        synchronize=waited.append,
        warmup=1,
    )
    assert waited[:2] == [1, 2] and sorted(waited[2:]) == [1, 1, 2, 2]


def test_the_median_is_taken(monkeypatch):
    ticks = iter([0.0, 5.0, 10.0, 11.0, 20.0, 22.0])  # 5, 1 and 2 seconds
    monkeypatch.setattr(_timing.time, "perf_counter", lambda: next(ticks))
    assert _timing.median_seconds({"x": lambda: None}, repeats=3, warmup=0) == {
        "x": 2.0
    }


@pytest.mark.parametrize("repeats", [0, -1])
def test_at_least_one_repeat(repeats):
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        _timing.median_seconds({"x": lambda: None}, repeats=repeats)


def test_floors_compute_what_they_are_named():
    x = np.linspace(-3.0, 3.0, 16)
    g = np.full_like(x, 2.0)
    floors = _timing.floor_cases(x, g)
    assert list(floors) == list(_timing.FLOORS)
    copy = floors["copy"]()
    np.testing.assert_array_equal(copy, x)
    assert not np.shares_memory(copy, x)
    np.testing.assert_array_equal(floors["-x"](), -x)
    np.testing.assert_array_equal(floors["x*g"](), 2 * x)
    negative, scaled = floors["-x, x*g"]()
    np.testing.assert_array_equal(negative, -x)
    np.testing.assert_array_equal(scaled, 2 * x)


def test_floors_are_compiled_as_asked():
    compiled = []

    def compile(fn):
        compiled.append(fn.__name__)
        return fn

    _timing.floor_cases(np.zeros(2), np.ones(2), compile)
    assert compiled == ["copy", "negative", "scale", "negative_and_scale"]


def test_every_way_of_each_floor_is_a_case():
    cases = _timing.floor_cases(np.zeros(2), np.ones(2))
    for floor in (_timing.ONE_ARRAY, _timing.ROUND_TRIP):
        for way in floor.split(" | "):
            assert set(way.split(" + ")) <= set(cases), way


def test_a_floor_is_its_fastest_way():
    """A copy alone was no floor where the library copies slowly (XLA's)."""
    seconds = {"copy": 2.0, "-x": 1.5, "x*g": 3.0, "-x, x*g": 6.0, "gradient": 9.0}
    assert _timing.floor_of(seconds, _timing.ONE_ARRAY) == 1.5
    assert _timing.floor_of(seconds, _timing.ROUND_TRIP) == 5.0  # copy + x*g
    seconds["-x, x*g"] = 4.0  # one call, where two cost two dispatches
    assert _timing.floor_of(seconds, _timing.ROUND_TRIP) == 4.0
    seconds["-x"] = 2.5
    assert _timing.floor_of(seconds, _timing.ONE_ARRAY) == 2.0


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_benchmark_scripts_time_with_the_shared_module(script):
    """No script keeps its own clock or median: they use s2nn_xp._timing."""
    tree = ast.parse((BENCHMARKS / script).read_text())
    names = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute | ast.Name)
    }
    defined = {
        node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
    }
    assert "median_seconds" not in defined
    assert "perf_counter" not in names
    if script != "bench_cupy.py":  # GPU times: CUDA events, by cupyx.profiler
        assert "median" not in names


def run_script(name: str, *argv: str) -> None:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(list(argv))


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_profile_call_runs(capsys, framework):
    if framework not in selected_backends():
        pytest.skip(f"backend {framework!r} not selected")
    run_script("profile_call", "--size", "64", "--calls", "5", "--framework", framework)
    out = capsys.readouterr().out
    assert "us a call" in out and "cumulative" in out


def test_bench_core_runs(capsys):
    if "numpy" not in selected_backends():
        pytest.skip("backend 'numpy' not selected")
    run_script("bench_core", "--size", "2^8", "--dtype", "float32", "--repeats", "1")
    out = capsys.readouterr().out
    for case in ("naive", "guarded_where", "gradient", "vjp (fwd+bwd)"):
        assert case in out


def test_bench_torch_runs(tmp_path, capsys):
    if "torch" not in selected_backends():
        pytest.skip("backend 'torch' not selected")
    load_backend("torch")
    out = tmp_path / "torch.json"
    run_script(
        "bench_torch", "--size", "256", "--repeats", "1", "--warmup", "1",
        "--cuda-size", "256", "--json", str(out),
    )  # fmt: skip
    assert "eager fwd+bwd s2nn_xp" in capsys.readouterr().out
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("script", "argv", "said"),
    [
        ("bench_core", ["--repeats", "0"], "--repeats: must be a whole number"),
        ("bench_core", ["--size", "-3"], "--size"),
        ("bench_core", ["--dtype", "int32"], "unknown dtype 'int32'"),
        ("bench_torch", ["--size", "0"], "--size: size must be between 1"),
        ("bench_torch", ["--warmup", "-1"], "--warmup: must be a whole number"),
        ("bench_torch", ["--json", "/nonexistent/x.json"], "does not exist"),
    ],
)
def test_benchmark_scripts_refuse_bad_options_before_any_work(
    script, argv, said, capsys
):
    """As ``s2nn-xp bench`` does: its rules, one place (they raised tracebacks
    after the run, or took the value: a --json that could not be written lost
    the figures)."""
    if script == "bench_torch":
        if "torch" not in selected_backends():
            pytest.skip("backend 'torch' not selected")
        load_backend("torch")
    with pytest.raises(SystemExit) as raised:
        run_script(script, *argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("script", "library", "said"),
    [("bench_cupy", "cupy", "needs CuPy"), ("bench_torch", "torch", "needs PyTorch")],
)
def test_benchmark_scripts_name_a_missing_library(
    script, library, said, monkeypatch, capsys
):
    """As the command says a backend is not installed: exit 2, one line (a
    ModuleNotFoundError traceback, even for --help)."""
    monkeypatch.setitem(sys.modules, library, None)  # import raises ImportError
    with pytest.raises(SystemExit) as raised:
        run_script(script, "--help")
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert f": error: {said}, which cannot be imported here" in err
    assert "Traceback" not in err


def test_benchmark_scripts_check_memory_before_any_work(monkeypatch, capsys):
    """As the command does (the script ran out of memory in a traceback)."""
    monkeypatch.setattr(_cli, "available_memory", lambda: 2**30)
    with pytest.raises(SystemExit) as raised:
        run_script("bench_core", "--size", "2^24", "--dtype", "float64")
    assert raised.value.code == 2
    assert "GiB of memory for float64" in capsys.readouterr().err


def test_benchmark_scripts_extend_repeated_options_as_the_command(capsys):
    """``--size 64 --size 128`` runs both, as ``s2nn-xp bench`` does (the
    scripts ran the last)."""
    if "numpy" not in selected_backends():
        pytest.skip("backend 'numpy' not selected")
    argv = ["--size", "64", "--size", "96", "--dtype", "float32", "--repeats", "1"]
    run_script("bench_core", *argv)
    sizes = {line.split()[1] for line in capsys.readouterr().out.splitlines()[2:]}
    assert sizes == {"2^6", "96"}


def test_peak_bytes_sees_numpy_allocations():
    x = np.zeros(2**16)
    assert _timing.peak_bytes(lambda: x + 1) >= x.nbytes
    assert _timing.peak_bytes(lambda: x[:1] + 1) < x.nbytes


def test_peak_bytes_leaves_a_measurement_in_progress_alone():
    tracemalloc.start()
    try:
        assert _timing.peak_bytes(lambda: np.zeros(8)) is None
        assert tracemalloc.is_tracing()
    finally:
        tracemalloc.stop()
