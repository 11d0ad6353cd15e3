"""Kept temporaries: one workspace per thread and key, lent one call at a time."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import s2nn_xp
from s2nn_xp import _evaluation, _numpy_kernels
from s2nn_xp._temporaries import Kept

from ._support import (
    KERNEL_X,
    assert_same_bits,
    count_calls,
    require,
    run_in_threads,
)

require("numpy")


def _make(made):
    def make(elements):
        made.append(elements)
        return [np.empty(elements) for _ in range(2)]

    return make


def test_a_workspace_is_kept_and_grows_to_the_largest_need():
    kept, made = Kept(), []
    with kept.lend("f8", 10, _make(made)) as first:
        pass
    with kept.lend("f8", 4, _make(made)) as smaller:
        assert smaller is first  # large enough: lent again
    with kept.lend("f8", 12, _make(made)) as larger:
        assert larger is not first and larger[0].shape[0] == 12
    with kept.lend("f4", 4, _make(made)) as other_key:
        assert other_key is not larger
    assert made == [10, 12, 4]


def test_a_nested_call_gets_its_own_workspace():
    kept, made = Kept(), []
    with kept.lend("f8", 8, _make(made)):
        pass
    with (
        kept.lend("f8", 8, _make(made)) as outer,
        kept.lend("f8", 8, _make(made)) as nested,
    ):
        assert nested is not outer
    with kept.lend("f8", 8, _make(made)) as after:
        assert after is outer  # the outer call's, returned last


def test_unkeepable_workspaces_are_dropped():
    kept, made = Kept(), []
    with kept.lend("f8", 8, _make(made), keepable=lambda scratch: False):
        pass
    with kept.lend("f8", 8, _make(made)) as second:
        pass
    with kept.lend("f8", 8, _make(made)) as third:
        assert third is second
    assert made == [8, 8]


def test_an_exception_returns_the_workspace():
    kept, made = Kept(), []
    with pytest.raises(ValueError, match="inside"), kept.lend("f8", 8, _make(made)):
        raise ValueError("inside")
    with kept.lend("f8", 8, _make(made)):
        pass
    assert made == [8]


def test_each_thread_keeps_its_own():
    kept = Kept()
    lent = {}

    def borrow(name):
        with kept.lend("f8", 8, _make([])) as scratch:
            lent[name] = scratch

    borrow("main")
    thread = threading.Thread(target=borrow, args=("thread",))
    thread.start()
    thread.join()
    assert lent["thread"] is not lent["main"]
    borrow("main again")
    assert lent["main again"] is lent["main"]


# The NumPy kernels take theirs from one Kept (the PyTorch adapter's are
# tests/test_torch.py's).


def test_numpy_inputs_of_any_size_but_0_d_run_the_kernels(monkeypatch):
    calls = count_calls(monkeypatch, _numpy_kernels, ("gradient", "origin"))
    x = KERNEL_X.astype(np.float64)
    with np.errstate(all="ignore"):
        s2nn_xp.gradient(x)
        s2nn_xp.origin(x[:1])
        assert calls == {"gradient": 1, "origin": 1}
        s2nn_xp.gradient(np.float64(0.5))  # 0-d: the math
        s2nn_xp.gradient(x, np.full(x.shape, 2.0))  # an array parameter: the math
        assert calls == {"gradient": 1, "origin": 1}
        s2nn_xp.gradient(x[::-2])  # not contiguous: the kernels too
    assert calls == {"gradient": 2, "origin": 1}


def test_numpy_threads_compute_in_their_own_temporaries(monkeypatch):
    """Two threads at once (NumPy's loops release the GIL): neither writes
    into the other's temporaries."""
    monkeypatch.setattr(_evaluation, "_KEPT", Kept())
    rng = np.random.default_rng(0)
    inputs = [rng.normal(scale=3.0, size=1 << 16) for _ in range(2)]
    wants = [s2nn_xp.gradient(x, 2.5, 0.75) for x in inputs]

    def work(i):
        for _ in range(40):
            assert_same_bits(s2nn_xp.gradient(inputs[i], 2.5, 0.75), wants[i])

    run_in_threads(work)
