"""The fallback of the fused kernels (``_fused.launched``), without a GPU.

The kernels themselves fail in the adapters' tests (Triton's interpreter,
CuPy's emulation); here the rules of the fallback, with stand-in launches.
"""

from __future__ import annotations

import warnings

import pytest

import s2nn_xp
from s2nn_xp import _fused


@pytest.fixture(autouse=True)
def _no_failures_remembered(monkeypatch):
    monkeypatch.setattr(_fused, "_failed", set())


def _failing(exc):
    calls = []

    def launch():
        calls.append(1)
        raise exc

    return launch, calls


def test_the_warning_class_is_public():
    assert s2nn_xp.FusedKernelWarning is _fused.FusedKernelWarning
    assert issubclass(s2nn_xp.FusedKernelWarning, RuntimeWarning)


def test_a_failure_warns_once_and_is_not_tried_again():
    launch, calls = _failing(RuntimeError("unsupported PTX version"))
    with pytest.warns(s2nn_xp.FusedKernelWarning, match="unsupported PTX version"):
        assert not _fused.launched("kernel k", "cuda:0", launch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _fused.launched("kernel k", "cuda:0", launch)
    assert len(calls) == 1


def test_where_warnings_are_errors_every_call_raises_not_only_the_first():
    """The failure was remembered before the warning: the next calls were silent."""
    launch, calls = _failing(RuntimeError("no kernel image"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(2):
            with pytest.raises(s2nn_xp.FusedKernelWarning, match="no kernel image"):
                _fused.launched("kernel k", "cuda:0", launch)
        # filtered by its class, the call falls back quietly
        warnings.simplefilter("ignore", s2nn_xp.FusedKernelWarning)
        assert not _fused.launched("kernel k", "cuda:0", launch)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error",
    [
        MemoryError("cudaMalloc"),
        type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory."),
        RuntimeError("Triton Error [CUDA]: out of memory"),
        RuntimeError("CUDA_ERROR_OUT_OF_MEMORY"),
    ],
    ids=["MemoryError", "torch", "triton", "driver"],
)
def test_running_out_of_memory_is_raised_and_not_remembered(error):
    """Not the kernel's fault: the next call, with memory freed, may run it."""
    launch, calls = _failing(error)
    for _ in range(2):
        with pytest.raises(type(error)):
            _fused.launched("kernel k", "cuda:0", launch)
    assert len(calls) == 2
    assert _fused.launched("kernel k", "cuda:0", lambda: None)


def test_a_failure_where_the_device_cannot_run_the_math_is_raised_each_time():
    """A graph capture, or an error of earlier work: the math would fail too,
    and the kernel is not to blame (nor turned off)."""
    error = RuntimeError("Triton Error [CUDA]: operation not permitted when capturing")
    launch, calls = _failing(error)
    asked = []

    def device_unusable() -> bool:
        asked.append(1)
        return False

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        for _ in range(2):
            with pytest.raises(RuntimeError, match="capturing"):
                _fused.launched(
                    "kernel k", "cuda:0", launch, device_usable=device_unusable
                )
    assert len(calls) == len(asked) == 2


def test_the_device_is_asked_about_only_after_a_failure():
    def never() -> bool:
        raise AssertionError("asked")

    assert _fused.launched("kernel k", "cuda:0", lambda: None, device_usable=never)
    launch, _ = _failing(RuntimeError("no kernel image"))
    with pytest.warns(s2nn_xp.FusedKernelWarning, match="no kernel image"):
        assert not _fused.launched(
            "kernel k", "cuda:0", launch, device_usable=lambda: True
        )


def test_the_warning_names_the_root_cause_and_the_end_of_a_long_log():
    """Triton's CompilationError says where; the exception under it says why."""
    try:
        try:
            raise ValueError("ROOT CAUSE: libdevice has no exp for sm_120")
        except ValueError as inner:
            raise RuntimeError("at 15:8: e = _exp(x) ^" + " source" * 300) from inner
    except RuntimeError as outer:
        error = outer
    with pytest.warns(s2nn_xp.FusedKernelWarning) as caught:
        _fused.launched("kernel k", "cuda:0", _failing(error)[0])
    message = str(caught[0].message)
    assert "RuntimeError: at 15:8" in message
    assert "ROOT CAUSE: libdevice has no exp for sm_120" in message
    assert "[...]" in message and len(message) < 1400


def test_a_cycle_of_causes_ends():
    error = RuntimeError("outer")
    inner = ValueError("inner")
    error.__cause__, inner.__cause__ = inner, error
    with pytest.warns(s2nn_xp.FusedKernelWarning, match="caused by ValueError: inner"):
        _fused.launched("kernel k", "cuda:0", _failing(error)[0])


def _raised_from(outer, inner, *, suppress=False):
    try:
        try:
            raise inner
        except type(inner) as error:
            if suppress:
                raise outer from None
            raise outer from error
    except type(outer) as error:
        return error


def test_running_out_of_memory_under_another_error_is_raised():
    wrapped = _raised_from(RuntimeError("kernel launch failed"), MemoryError("alloc"))
    launch, _ = _failing(wrapped)
    with pytest.raises(RuntimeError, match="kernel launch failed"):
        _fused.launched("kernel k", "cuda:0", launch)
    assert _fused.launched("kernel k", "cuda:0", lambda: None)


def test_a_compiler_message_about_memory_is_a_kernel_failure():
    """Only the runtime's own words for it: a message is not an allocation."""
    error = ValueError("shared memory request would run out of memory on sm_70")
    with pytest.warns(s2nn_xp.FusedKernelWarning, match="would run out of memory"):
        assert not _fused.launched("kernel k", "cuda:0", _failing(error)[0])


def test_a_context_suppressed_with_from_none_is_no_cause():
    error = _raised_from(
        RuntimeError("ptxas exited 255"), KeyError("cache-key"), suppress=True
    )
    with pytest.warns(s2nn_xp.FusedKernelWarning) as caught:
        _fused.launched("kernel k", "cuda:0", _failing(error)[0])
    assert "ptxas exited 255" in str(caught[0].message)
    assert "cache-key" not in str(caught[0].message)
