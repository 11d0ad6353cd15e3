"""The public API's contract: signatures, errors, the S2NN object, vjp."""

from __future__ import annotations

import collections
import os
import textwrap

import numpy as np
import pytest

import s2nn_xp
from tests._support import (
    python_script,
    ref_gradient,
    reference,
    require,
    selected_backends,
)

require("numpy")

X = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 3.0])


def test_python_scalars_and_lists_are_numpy_input():
    scalar = s2nn_xp.gradient(0.0)
    assert isinstance(scalar, np.ndarray)  # 0-d array, as the array API returns
    assert scalar.shape == ()
    assert scalar.dtype == np.float64
    np.testing.assert_allclose(
        s2nn_xp.gradient([[-1, 0], [1, 2]]),
        s2nn_xp.gradient(np.array([[-1.0, 0.0], [1.0, 2.0]])),
    )
    assert s2nn_xp.forward(-0.0) == 1.0


def test_explicit_namespace():
    import array_api_compat.numpy as xp

    np.testing.assert_array_equal(s2nn_xp.forward(X, xp=xp), (X >= 0).astype(float))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("alpha", 0.0),
        ("alpha", -1.0),
        ("alpha", np.inf),
        ("alpha", np.nan),
        ("beta", 0.0),
        ("beta", -2),
        ("beta", np.inf),
        ("epsilon", -1e-9),
        ("epsilon", np.nan),
        ("epsilon", np.inf),
    ],
)
@pytest.mark.parametrize(
    "fn", [s2nn_xp.origin, s2nn_xp.s2nn, s2nn_xp.vjp, s2nn_xp.S2NN]
)
def test_bad_parameter_values_raise_value_error_naming_them(fn, name, value):
    if fn is s2nn_xp.S2NN:
        call = lambda: fn(**{name: value})  # noqa: E731
    else:
        call = lambda: fn(X, **{name: value})  # noqa: E731
    with pytest.raises(ValueError, match=name):
        call()


def test_gradient_checks_its_parameters():
    with pytest.raises(ValueError, match="beta"):
        s2nn_xp.gradient(X, beta=0.0)
    with pytest.raises(ValueError, match="alpha"):
        s2nn_xp.gradient(X, alpha=np.array([1.0, -1.0, 1.0, 1.0, 1.0, 1.0]))


def test_epsilon_zero_is_allowed():
    assert s2nn_xp.origin(np.array([0.0]), epsilon=0.0)[0] == 0.5


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (True, "bool"),
        (1 + 2j, "complex"),
        ("4", "str"),
        (None, "NoneType"),
        (np.array([1 + 1j]), "dtype"),
        (np.array([True]), "dtype"),
        ([True, 2.0, 2.0, 2.0, 2.0, 2.0], "alpha is a list holding a bool"),
        ([[2.0, 2.0, 2.0], [2.0, np.True_, 2.0]], "alpha is a list holding a bool"),
    ],
)
def test_bad_parameter_types_raise_type_error(value, match):
    with pytest.raises(TypeError, match=match):
        s2nn_xp.origin(X, alpha=value)


def test_parameter_shape_must_broadcast_to_x():
    with pytest.raises(ValueError, match=r"alpha of shape \(4,\)"):
        s2nn_xp.gradient(X, alpha=np.ones(4))
    with pytest.raises(ValueError, match="beta"):
        s2nn_xp.gradient(X[:1], beta=np.ones(6))  # would grow x's shape


def test_per_neuron_parameters_as_lists():
    x = np.zeros((2, 3))
    np.testing.assert_allclose(
        s2nn_xp.gradient(x, beta=[1.0, 2.0, 3.0]),
        np.broadcast_to([1.0, 2.0, 3.0], (2, 3)),
    )


def test_mixed_libraries_raise_type_error():
    """A NumPy x computes in NumPy: the message names the way to the other library."""
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(TypeError, match=r"alpha.*or x as an array of array_api_strict"):
        s2nn_xp.gradient(X, alpha=strict.asarray(4.0))


@pytest.mark.parametrize("bad", [np.array(["a"]), np.array([object()]), "text"])
def test_non_numeric_input_raises_type_error(bad):
    with pytest.raises(TypeError, match="x must"):
        s2nn_xp.gradient(bad)


def test_nan_propagates_everywhere():
    x = np.array([np.nan])
    for fn in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.s2nn):
        assert np.isnan(fn(x)).all()
    y, pullback = s2nn_xp.vjp(x)
    assert np.isnan(y).all() and np.isnan(pullback(1.0)).all()


def test_s2nn_is_forward_or_origin_on_numpy():
    np.testing.assert_array_equal(s2nn_xp.s2nn(X), s2nn_xp.forward(X))
    np.testing.assert_array_equal(
        s2nn_xp.s2nn(X, 8.0, 2.0, origin=True), s2nn_xp.origin(X, 8.0, 2.0)
    )


class TestVJP:
    def test_pullback_is_cotangent_times_gradient(self):
        rng = np.random.default_rng(3)
        x, ct = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
        y, pullback = s2nn_xp.vjp(x, 2.0, 0.5)
        np.testing.assert_array_equal(y, s2nn_xp.forward(x))
        np.testing.assert_allclose(
            pullback(ct),
            ct * reference(ref_gradient, x, alpha=2.0, beta=0.5),
            rtol=1e-15,
        )

    def test_origin_mode(self):
        y, pullback = s2nn_xp.vjp(X, origin=True)
        np.testing.assert_array_equal(y, s2nn_xp.origin(X))
        np.testing.assert_array_equal(pullback(np.ones_like(X)), s2nn_xp.gradient(X))

    def test_dtype_follows_x(self):
        x = X.astype(np.float16)
        y, pullback = s2nn_xp.vjp(x)
        assert y.dtype == np.float16
        assert pullback(np.ones(6, dtype=np.float64)).dtype == np.float16
        assert pullback(1).dtype == np.float16

    def test_cotangent_broadcasts_to_x_only(self):
        _, pullback = s2nn_xp.vjp(np.zeros((2, 3)))
        np.testing.assert_array_equal(
            pullback(np.array([1.0, 2.0, 3.0])),
            np.broadcast_to([1.0, 2.0, 3.0], (2, 3)),
        )
        with pytest.raises(ValueError, match="cotangent"):
            pullback(np.ones(4))
        with pytest.raises(ValueError, match="cotangent"):
            pullback(np.ones((5, 2, 3)))

    def test_bad_cotangents(self):
        _, pullback = s2nn_xp.vjp(X)
        with pytest.raises(TypeError, match="cotangent"):
            pullback(np.ones(6, dtype=complex))
        strict = pytest.importorskip("array_api_strict")
        with pytest.raises(TypeError, match="cotangent"):
            pullback(strict.ones(6))

    def test_pullback_reusable_and_x_untouched(self):
        x = X.copy()
        _, pullback = s2nn_xp.vjp(x)
        first = pullback(np.ones(6))
        np.testing.assert_array_equal(pullback(np.ones(6)), first)
        np.testing.assert_array_equal(x, X)


class TestS2NNObject:
    def test_repr_exact(self):
        assert repr(s2nn_xp.S2NN()) == "S2NN(alpha=4.0, beta=1.0, epsilon=1e-08)"
        assert repr(s2nn_xp.S2NN(8, 2)) == "S2NN(alpha=8.0, beta=2.0, epsilon=1e-08)"
        # Unequal objects print differently: the flag shows when it is set.
        fn = s2nn_xp.S2NN(origin=True)
        assert repr(fn) == "S2NN(alpha=4.0, beta=1.0, epsilon=1e-08, origin=True)"
        fn.origin = np.False_
        assert fn.origin is False
        assert repr(fn) == repr(s2nn_xp.S2NN())

    def test_origin_attribute_takes_bools_only(self):
        fn = s2nn_xp.S2NN()
        fn.origin = np.True_
        assert fn.origin is True
        for bad in ("yes", None, 1):
            with pytest.raises(TypeError, match="origin must be a bool, not"):
                fn.origin = bad
        with pytest.raises(TypeError, match="origin must be a bool"):
            s2nn_xp.S2NN(origin="yes")

    def test_keys_are_read_without_the_lock_a_weak_reference_waits_for(self):
        """An epsilon's key was read under the tokens' lock: where the read
        waited for another thread's import (brainstate's, in _is_state) and
        that thread's garbage collection freed an array with a token (a
        weak reference's callback took the lock), both waited for ever."""
        import threading

        from s2nn_xp import _object

        taken = []

        def take_the_lock():
            taken.append(_object._TOKENS_LOCK.acquire(timeout=2))
            if taken[-1]:
                _object._TOKENS_LOCK.release()

        def read(value):  # another thread wants the lock meanwhile
            thread = threading.Thread(target=take_the_lock)
            thread.start()
            thread.join()
            return ("key", value.shape)

        value = np.ones(2)
        assert _object._per_object({}, value, read) == ("key", (2,))
        assert taken == [True]

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
    def test_a_forked_child_hashes_while_another_thread_held_the_lock(self):
        """A lock that a thread held when the process forked stays held in
        the child, where that thread does not run: the child's first hash of
        an object with an array parameter waited for ever (one in seven
        forks beside a thread that hashed)."""
        script = textwrap.dedent(
            """
            import faulthandler, os, threading
            import numpy as np
            import s2nn_xp
            from s2nn_xp import _jax_pytree, _object

            held, done = threading.Event(), threading.Event()

            def hold():
                with _object._TOKENS_LOCK, _jax_pytree._LOCK:
                    held.set()
                    done.wait()

            threading.Thread(target=hold, daemon=True).start()
            held.wait()
            pid = os.fork()
            if pid == 0:
                faulthandler.dump_traceback_later(20, exit=True)  # stuck: 1
                hash(s2nn_xp.S2NN(alpha=np.full(3, 2.0)))
                assert _jax_pytree._LOCK.acquire(timeout=20)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            done.set()
            print(os.waitstatus_to_exitcode(status))
            """
        )
        completed = python_script(script, timeout=120)
        assert completed.stdout.split() == ["0"], completed.stderr

    def test_equality_and_hash(self):
        a, b = s2nn_xp.S2NN(4.0, 1.0), s2nn_xp.S2NN(alpha=4, beta=1.0, epsilon=1e-8)
        assert a == b and hash(a) == hash(b)
        assert a != s2nn_xp.S2NN(alpha=5.0)
        assert len({a, b, s2nn_xp.S2NN(beta=2.0)}) == 2
        b.origin = True
        assert a != b
        b.origin = False
        assert a == b and hash(a) == hash(b)
        assert a != "S2NN"
        # One not built yet (torch.compile hashes it while it traces the
        # constructor) hashes as itself, and so does a subclass's.
        for cls in (s2nn_xp.S2NN, type("Sub", (s2nn_xp.S2NN,), {})):
            unbuilt = cls.__new__(cls)
            assert hash(unbuilt) == object.__hash__(unbuilt)
            assert unbuilt == unbuilt and unbuilt != cls() and cls() != unbuilt

    def test_array_parameters_compare_by_identity_and_epsilon_by_value(self):
        """alpha and beta may be traced (leaves); epsilon is static, copied."""
        alpha = np.array([4.0, 8.0])
        a = s2nn_xp.S2NN(alpha=alpha)
        assert a == s2nn_xp.S2NN(alpha=alpha)
        assert a != s2nn_xp.S2NN(alpha=alpha.copy())
        assert hash(a) == hash(s2nn_xp.S2NN(alpha=alpha))
        epsilon = np.array([1e-8, 1e-6])
        e = s2nn_xp.S2NN(epsilon=epsilon)
        for same in (
            s2nn_xp.S2NN(epsilon=epsilon.copy()),
            s2nn_xp.S2NN(epsilon=[1e-8, 1e-6]),
        ):
            assert same == e and hash(same) == hash(e)
        assert e != s2nn_xp.S2NN(epsilon=2 * epsilon)
        assert e != s2nn_xp.S2NN(epsilon=epsilon.astype(np.float32))
        assert s2nn_xp.S2NN(epsilon=np.array(1e-8)) != s2nn_xp.S2NN()

    def test_call_and_methods(self):
        fn = s2nn_xp.S2NN(alpha=8.0, beta=2.0)
        np.testing.assert_array_equal(fn(X), s2nn_xp.forward(X))
        np.testing.assert_array_equal(fn.surrogate_fun(X), s2nn_xp.origin(X, 8.0, 2.0))
        np.testing.assert_array_equal(
            fn.surrogate_grad(X), s2nn_xp.gradient(X, 8.0, 2.0)
        )
        fn.origin = True
        np.testing.assert_array_equal(fn(X), s2nn_xp.origin(X, 8.0, 2.0))
        y, pullback = fn.vjp(X)
        np.testing.assert_array_equal(y, s2nn_xp.origin(X, 8.0, 2.0))
        np.testing.assert_array_equal(pullback(1.0), s2nn_xp.gradient(X, 8.0, 2.0))


def test_version_is_the_changelogs_newest_and_the_metadata():
    import importlib.metadata
    import re
    from pathlib import Path

    changelog = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
    newest = re.search(r"^## \[([^\]]+)\]", changelog.read_text(), re.MULTILINE)
    assert newest is not None
    assert newest.group(1) == s2nn_xp.__version__
    assert importlib.metadata.version("s2nn-xp") == s2nn_xp.__version__


NO_REAL_NUMBERS = {
    "timedelta64": lambda: np.array([1, 2], dtype="timedelta64[s]"),
    "datetime64": lambda: np.array([1, 2], dtype="datetime64[D]"),
    "record": lambda: np.rec.array([(1.0,), (2.0,)], dtype=[("a", "f8")]),
    "void": lambda: np.zeros(2, dtype="V8"),
    "str": lambda: np.array(["1", "2"]),
    "StringDType": lambda: np.array(
        ["1", "2"], dtype=pytest.importorskip("numpy.dtypes").StringDType()
    ),
}


@pytest.mark.parametrize("kind", sorted(NO_REAL_NUMBERS))
def test_dtypes_of_no_real_numbers_are_refused_naming_the_argument(kind):
    """TypeError naming the argument, wherever the array goes.

    NumPy 1.x calls timedelta64 integral; NumPy's isdtype raises for a
    record dtype and StringDType, which named no argument.
    """
    if kind == "StringDType" and not hasattr(np.dtypes, "StringDType"):
        pytest.skip("NumPy < 2 has no StringDType")
    times = NO_REAL_NUMBERS[kind]()
    with pytest.raises(TypeError, match=r"x must have a real numeric dtype"):
        s2nn_xp.gradient(times)
    with pytest.raises(TypeError, match=r"alpha must have a real numeric dtype"):
        s2nn_xp.gradient(np.array([-1.0, 1.0]), alpha=times)
    # an element: a NumPy scalar (StringDType's is a Python str)
    with pytest.raises(
        TypeError, match=r"alpha must (have a real numeric dtype|be a real number)"
    ):
        s2nn_xp.gradient(np.array([-1.0, 1.0]), alpha=times[0])
    _, pullback = s2nn_xp.vjp(np.array([-1.0, 1.0]))
    with pytest.raises(TypeError, match=r"cotangent must have a real numeric dtype"):
        pullback(times)
    # an element in a list of numbers (NumPy calls timedelta64 Integral)
    mixed = [times[0], 1.0]
    with pytest.raises(TypeError, match=r"x (must have a real|is no array of real)"):
        s2nn_xp.gradient(mixed)
    with pytest.raises(TypeError, match=r"alpha (must|is)"):
        s2nn_xp.gradient(np.array([-1.0, 1.0]), alpha=mixed)
    with pytest.raises(TypeError, match=r"cotangent (must|is)"):
        pullback(mixed)


def test_masked_arrays_inside_a_list_are_refused():
    """asarray of a list took the data under the masks as values, silently."""
    masked = np.ma.array([-0.5, 0.2, 1.0], mask=[False, True, False])
    with pytest.raises(TypeError, match="x is a list holding masked arrays"):
        s2nn_xp.origin([masked, masked])
    with pytest.raises(
        TypeError, match=r"alpha is a list holding masked .* give filled values$"
    ):
        s2nn_xp.origin(np.ones(3), [[np.ma.masked, 1.0, 2.0]])
    # an array the list cannot hold is named before a bool met earlier
    with pytest.raises(TypeError, match="beta is a list holding masked arrays"):
        s2nn_xp.origin(np.ones(3), beta=[[True, 1.0, 2.0], [masked]])
    _, pullback = s2nn_xp.vjp(np.array([[0.1, 0.2, 0.3]]))
    with pytest.raises(TypeError, match="cotangent is a list holding masked arrays"):
        pullback([masked])
    assert s2nn_xp.origin([[0.5, -0.5]]).shape == (1, 2)  # plain lists stay fine


def test_sequences_other_than_lists_holding_arrays_are_refused():
    """A deque (any sequence) is read as a list is: its tensors refused too."""
    torch = pytest.importorskip("torch")
    if "torch" not in selected_backends():
        pytest.skip("torch not selected")
    deque = collections.deque([torch.tensor(0.5), torch.tensor(-0.5)])
    with pytest.raises(TypeError, match="x is a list holding torch arrays"):
        s2nn_xp.forward(deque)
    np.testing.assert_array_equal(
        s2nn_xp.forward(collections.deque([0.5, -0.5])), [1.0, 0.0]
    )


@pytest.mark.parametrize("library", ["numpy", "array_api_strict"])
def test_inputs_of_more_than_32_dimensions_are_computed(library):
    """NumPy's broadcast_shapes stops at 32 dimensions; the clip of these
    libraries used it (array-api-strict's always, array-api-compat's NumPy
    one with array parameters), and refused a valid input."""
    if library not in selected_backends():
        pytest.skip(f"{library} not selected")
    xp = pytest.importorskip(library)
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("NumPy 1 makes arrays of at most 32 dimensions")
    shape = (1,) * 39 + (3,)
    values = np.broadcast_to(np.array([-0.5, 0.0, 2.0]), shape)
    x = xp.asarray(values)
    alpha = xp.asarray([2.0, 4.0, 8.0])
    for function in (s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.s2nn):
        flat = np.asarray(function(x, alpha=alpha)).reshape(-1)
        np.testing.assert_array_equal(
            flat, np.asarray(function(xp.asarray(values[(0,) * 39]), alpha=alpha))
        )
    np.testing.assert_array_equal(
        np.asarray(s2nn_xp.forward(x)).reshape(-1), [0.0, 1.0, 1.0]
    )
    _, pullback = s2nn_xp.vjp(x, alpha=alpha)
    np.testing.assert_array_equal(
        np.asarray(pullback(x)).reshape(-1),
        np.asarray(s2nn_xp.gradient(x, alpha=alpha) * x).reshape(-1),
    )


def test_x_may_be_given_by_keyword_as_braintools_takes_it():
    """braintools.surrogate.s2nn(x=v, alpha=4.0) is a drop-in's call too."""
    x = np.array([-0.5, 0.0, 0.5])
    for function in (s2nn_xp.forward, s2nn_xp.origin, s2nn_xp.gradient, s2nn_xp.s2nn):
        np.testing.assert_array_equal(function(x=x), function(x))
    np.testing.assert_array_equal(s2nn_xp.s2nn(x=x, alpha=2.0), s2nn_xp.s2nn(x, 2.0))
    np.testing.assert_array_equal(s2nn_xp.vjp(x=x)[0], s2nn_xp.vjp(x)[0])
