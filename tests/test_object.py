"""The ``s2nn_xp.S2NN`` object keeps the constructor's rules; adapters load lazily.

Runs in every session with NumPy parameters; the framework-specific behaviour
of the object (JAX pytree, brainstate states) is in ``test_pytree.py`` and
``test_clients_jax.py``.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest

import s2nn_xp
from tests._support import backend_name, to_numpy

BAD_VALUES = [
    ("alpha", 0.0),
    ("alpha", -1.0),
    ("beta", float("nan")),
    ("beta", [1.0, -2.0]),
    ("epsilon", -1e-9),
    ("epsilon", np.array([np.inf])),
    ("alpha", True),
    ("alpha", "4"),
    ("beta", 1j),
]


def _error_of(call):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_assignment_raises_what_the_constructor_raises(name, value):
    fn = s2nn_xp.S2NN()
    constructed = _error_of(lambda: s2nn_xp.S2NN(**{name: value}))
    assigned = _error_of(lambda: setattr(fn, name, value))
    assert assigned == constructed
    assert name in assigned[1]
    assert fn == s2nn_xp.S2NN()  # unchanged


def test_assignment_stores_what_the_constructor_stores():
    fn = s2nn_xp.S2NN()
    fn.alpha = 8
    fn.beta += 1
    per_neuron = np.array([1.0, 2.0])
    fn.epsilon = per_neuron
    assert fn.alpha == 8.0 and isinstance(fn.alpha, float)
    assert fn.beta == 2.0
    # a read-only copy (static where JAX compiles), equal by value
    assert fn.epsilon is not per_neuron and not fn.epsilon.flags.writeable
    np.testing.assert_array_equal(fn.epsilon, per_neuron)
    assert fn == s2nn_xp.S2NN(8.0, 2.0, per_neuron)
    with pytest.raises(AttributeError):
        fn.gamma = 1.0  # no other attributes (slots)
    for name in ("alpha", "epsilon", "origin"):
        with pytest.raises(AttributeError, match=f"cannot delete '{name}' of S2NN"):
            delattr(fn, name)
    assert fn == s2nn_xp.S2NN(8.0, 2.0, per_neuron)


def test_adapters_are_attributes_loaded_on_first_access():
    code = (
        "import importlib.util, sys, s2nn_xp\n"
        "frameworks = ('jax', 'torch', 'cupy')\n"
        "assert not [m for m in frameworks if m in sys.modules]\n"
        "import pydoc\n"
        "pydoc.render_doc(s2nn_xp)  # help() gets every name dir() lists\n"
        "assert not [m for m in frameworks if m in sys.modules]\n"
        "assert not set(frameworks) & set(dir(s2nn_xp))\n"
        "for name in ('jax', 'torch'):\n"
        "    if importlib.util.find_spec(name) is None:\n"
        "        continue\n"
        "    importlib.import_module(name)\n"
        "    assert name in dir(s2nn_xp)\n"
        "    adapter = getattr(s2nn_xp, name)\n"
        "    assert adapter is sys.modules['s2nn_xp.' + name]\n"
        "    assert callable(adapter.s2nn)\n"
        "try:\n"
        "    s2nn_xp.numpy\n"
        "except AttributeError as exc:\n"
        "    assert 'numpy' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('s2nn_xp.numpy exists')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", ["complex64", "bool"])
def test_an_array_of_a_wrong_dtype_is_refused_at_construction(xp, dtype):
    """Its dtype is known without its values: refused as the call refuses it."""
    namespace = s2nn_xp._compat.array_namespace(xp.asarray(0.0))
    if not hasattr(namespace, dtype):  # its array-API namespace, not NumPy 1.x's
        pytest.skip(f"{backend_name(xp)} has no {dtype}")  # deprecated np.bool
    value = xp.asarray(np.array([1.0]).astype(dtype))
    x = xp.asarray(np.array([0.5, -0.5]))
    called = _error_of(lambda: s2nn_xp.s2nn(x, value))
    constructed = _error_of(lambda: s2nn_xp.S2NN(alpha=value))
    assert constructed == (TypeError, called[1])
    assert constructed[1].startswith("alpha must have a real numeric dtype, not ")
    fn = s2nn_xp.S2NN()
    assert _error_of(lambda: setattr(fn, "alpha", value)) == constructed


@pytest.mark.parametrize("shape", [(), (1,), (3,)])
def test_a_float_and_an_array_parameter_are_unequal_both_ways(xp, shape):
    """Equality is by value for floats, by identity for arrays, without raising.

    A float against an array compared elementwise: True one way for a 0-d or
    one-value array (with different hashes), an error for more values.
    """
    array = xp.asarray(np.full(shape, 4.0))
    plain, with_array = s2nn_xp.S2NN(), s2nn_xp.S2NN(alpha=array)
    assert plain != with_array
    assert with_array != plain
    assert with_array == with_array
    assert with_array not in [plain]
    same_array = s2nn_xp.S2NN(alpha=array)
    assert same_array == with_array and hash(same_array) == hash(with_array)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_an_object_pickles_by_every_protocol_and_copies(protocol):
    spike = s2nn_xp.S2NN(alpha=np.array([4.0, 2.0]), beta=0.5, origin=True)
    for copied in (
        pickle.loads(pickle.dumps(spike, protocol=protocol)),
        copy.copy(spike),
        copy.deepcopy(spike),
    ):
        assert copied is not spike and (copied.beta, copied.origin) == (0.5, True)
        np.testing.assert_array_equal(copied.alpha, spike.alpha)
        x = np.array([-0.5, 0.5])
        np.testing.assert_array_equal(copied(x), spike(x))
    assert copy.deepcopy(spike).alpha is not spike.alpha


class _Subclass(s2nn_xp.S2NN):
    def __init__(self, tag):
        super().__init__(alpha=2.0)
        self.tag = tag


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_subclass_keeps_its_own_state_through_pickle_and_copy(protocol):
    spike = _Subclass("mine")
    for copied in (
        pickle.loads(pickle.dumps(spike, protocol=protocol)),
        copy.copy(spike),
        copy.deepcopy(spike),
    ):
        assert (type(copied), copied.tag, copied.alpha) == (_Subclass, "mine", 2.0)


def test_a_subclass_prints_its_own_state_as_it_compares_it():
    """Two unequal objects of a subclass printed alike (its attributes left
    out), which puzzles whoever looks for a JAX cache miss."""
    mine, yours = _Subclass("mine"), _Subclass("yours")
    assert mine != yours and repr(mine) != repr(yours)
    assert repr(mine) == "_Subclass(alpha=2.0, beta=1.0, epsilon=1e-08, tag='mine')"
    assert repr(s2nn_xp.S2NN(origin=True)) == (
        "S2NN(alpha=4.0, beta=1.0, epsilon=1e-08, origin=True)"
    )


def test_the_package_lists_its_public_names_and_adapters():
    """dir() (tab completion) listed its imports too: ModuleType, importlib,
    TYPE_CHECKING, annotations; and every adapter, which help() then
    imported, with its framework (CuPy's where CuPy is not installed)."""
    imported = [name for name in ("cupy", "jax", "torch") if name in sys.modules]
    assert dir(s2nn_xp) == sorted({*s2nn_xp.__all__, *imported})


@pytest.mark.backends("numpy", "jax")
def test_an_array_epsilon_is_read_once_for_every_flattening(xp, monkeypatch):
    """A jitted function flattens its pytree arguments at every call: an
    array epsilon was read (a device's copied to the host) and its bytes
    hashed at each, a training step's cost. Now once for an array that
    cannot change (JAX's, an object's read-only NumPy copy); its key leaves
    with it."""
    import gc

    from s2nn_xp import _object

    reads = []
    read = _object._concrete
    monkeypatch.setattr(
        _object, "_concrete", lambda value: reads.append(1) or read(value)
    )
    spike = s2nn_xp.S2NN(epsilon=xp.asarray(np.full(1000, 1e-8)))
    statics = [spike._tree_flatten()[1] for _ in range(5)]
    assert len({hash(static) for static in statics}) == 1
    assert len(reads) <= 1  # none where the values are not read (lazy)
    assert copy.deepcopy(spike) == spike  # the copy's own array: read once
    assert len(reads) <= 2
    identity = id(spike.epsilon)
    del spike, statics
    gc.collect()
    assert identity not in _object._KEYS


def test_a_numpy_epsilon_made_writeable_keeps_its_key():
    """Changed after it was keyed, the object's copy was keyed again by its
    new values: it equalled a new object of them, which then took the
    function JAX had compiled with the old ones (a review)."""
    spike = s2nn_xp.S2NN(epsilon=np.array([1e-8, 1e-8]), origin=True)
    first = hash(spike._tree_flatten()[1])
    spike.epsilon.flags.writeable = True
    spike.epsilon[:] = 1.0
    fresh = s2nn_xp.S2NN(epsilon=np.array([1.0, 1.0]), origin=True)
    assert hash(spike._tree_flatten()[1]) == first
    assert spike._tree_flatten()[1] != fresh._tree_flatten()[1]


@pytest.mark.requires_mutable_arrays
@pytest.mark.skip_backends(
    "cupy", reason="values on a GPU are not read for a key: keyed by identity"
)
def test_an_epsilon_changed_in_place_is_keyed_by_its_new_values(xp):
    """The key kept for an array (the commit before this test) stayed the
    first one where the object's own copy can be changed in place (a
    tensor's, a Dask array's): equal to an object of the old values."""
    spike = s2nn_xp.S2NN(epsilon=xp.asarray(np.full(3, 1e-8)))
    twin = s2nn_xp.S2NN(epsilon=xp.asarray(np.full(3, 1e-8)))
    assert spike._tree_flatten()[1] == twin._tree_flatten()[1]
    try:
        spike.epsilon[...] = 0.5
    except ValueError:  # NumPy's copy is read-only: it cannot change
        assert not spike.epsilon.flags.writeable
        return
    assert spike._tree_flatten()[1] != twin._tree_flatten()[1]
    assert spike != twin


@pytest.mark.requires_mutable_arrays
def test_an_array_epsilon_is_the_objects_own_copy(xp):
    """The caller's tensor was kept: changed in place, it changed the object's
    values and its hash (a set lost the object); a NumPy array was copied.
    A Dask array was kept too (counted as unchangeable, by name), and an
    assignment to it changed the object's values."""
    epsilon = xp.asarray(np.array([1e-8, 1e-8]))
    spike = s2nn_xp.S2NN(epsilon=epsilon)
    seen = {spike}
    want = to_numpy(spike.surrogate_fun(xp.asarray(np.array([0.0, 1.0]))))
    epsilon[...] = 0.5
    assert spike in seen
    got = spike.surrogate_fun(xp.asarray(np.array([0.0, 1.0])))
    np.testing.assert_array_equal(to_numpy(got), want)
