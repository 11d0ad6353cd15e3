"""``s2nn_xp.S2NN`` is a JAX pytree: alpha and beta leaves, epsilon and origin static.

So JAX's transforms take the object itself: ``jax.grad`` of a loss in it,
``jit`` and ``vmap`` over it, optax updates of it and equinox modules that
hold it. optax and equinox are installed in the ``clients`` session; their
tests skip elsewhere.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

from tests._support import require

require("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import s2nn_xp  # noqa: E402
import s2nn_xp.jax  # noqa: E402

X = jnp.linspace(-2.0, 2.0, 8)
ALPHA = jnp.linspace(2.0, 6.0, 8)
BETA = jnp.linspace(0.5, 1.5, 8)


@pytest.mark.parametrize("jax_first", [False, True])
def test_registered_whether_jax_is_imported_before_or_after(jax_first):
    imports = "import jax\nimport s2nn_xp\n"
    if not jax_first:
        imports = (
            "import sys\nimport s2nn_xp\n"
            "assert 'jax' not in sys.modules\n"
            "spike = s2nn_xp.S2NN(alpha=[4.0, 2.0])  # made before JAX is imported\n"
            "import jax\n"
        )
    code = imports + (
        "fn = s2nn_xp.S2NN(alpha=jax.numpy.ones(2), beta=2.0)\n"
        "assert jax.tree.leaves(fn) == [fn.alpha, 2.0], jax.tree.leaves(fn)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("subclass_first", [False, True])
def test_registered_where_jax_has_not_imported_jax_export(subclass_first):
    """JAX 0.4.35, the oldest the package takes, does not import jax.export
    with jax: reading it as jax's attribute warned at every import and left
    subclasses no pytrees (a single leaf, and jax.grad over one raised)."""
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "import jax\n"
        "vars(jax).pop('export', None)  # as import jax leaves it in JAX 0.4.35\n"
        "import s2nn_xp\n"
        "class Scaled(s2nn_xp.S2NN):\n"
        "    def __init__(self, *args, gain, **kwargs):\n"
        "        super().__init__(*args, **kwargs)\n"
        "        self.gain = gain\n"
        + ("Scaled(gain=1.0)\n" if subclass_first else "s2nn_xp.S2NN()\n")
        + "scaled = Scaled(alpha=jax.numpy.ones(2), gain=jax.numpy.ones(2))\n"
        "paths = jax.tree_util.tree_flatten_with_path(scaled)[0]\n"
        "keys = [jax.tree_util.keystr(path) for path, _ in paths]\n"
        "assert keys == ['.alpha', '.beta', '.gain'], keys\n"
        "grad = jax.grad(lambda s: (s(jax.numpy.ones(2)) * s.gain).sum())(scaled)\n"
        "assert grad.gain.tolist() == [1.0, 1.0], grad.gain\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_failing_registration_never_breaks_the_import_of_jax():
    code = (
        "import sys, warnings\n"
        "import s2nn_xp, s2nn_xp._jax_pytree as p\n"
        "def broken():\n"
        "    raise RuntimeError('no pytrees today')\n"
        "p.register = broken\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import jax\n"
        "assert 'jax' in sys.modules and jax.numpy.ones(2).sum() == 2.0\n"
        "(w,) = [w for w in caught if 's2nn_xp' in str(w.message)]\n"
        "assert 'no pytrees today' in str(w.message), w.message\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("how", ["import again", "reload _object"])
def test_classes_made_again_are_pytrees(how):
    """A notebook's hard reload (s2nn_xp's modules dropped from sys.modules,
    then imported again) ended the registration at the serialisation name
    that the first S2NN held: a warning that S2NN was no pytree (it was) and
    subclasses left opaque leaves, whose parameters trained nothing; after
    importlib.reload of the module that defines S2NN, its objects were
    opaque leaves."""
    again = {
        "import again": (
            "for name in [n for n in sys.modules if n.split('.')[0] == 's2nn_xp']:\n"
            "    del sys.modules[name]\n"
            "import s2nn_xp"
        ),
        "reload _object": "importlib.reload(s2nn_xp._object)",
    }[how]
    code = f"""
import importlib, sys, warnings
warnings.simplefilter("error")
import jax, jax.numpy as jnp
import s2nn_xp
s2nn_xp.S2NN()
{again}
S2NN = (s2nn_xp._object if {how == "reload _object"} else s2nn_xp).S2NN
class Sub(S2NN):
    __slots__ = ("gain",)
    def __init__(self, gain=2.0, **kwargs):
        super().__init__(**kwargs)
        self.gain = gain
alpha = jnp.array([4.0, 2.0])
for obj in (S2NN(alpha=alpha), Sub(alpha=alpha)):
    leaves = jax.tree_util.tree_leaves(obj)
    children = 3 if type(obj) is Sub else 2  # alpha, beta and gain
    assert leaves[0] is alpha and len(leaves) == children, leaves
grad = jax.grad(lambda o: o(jnp.array([-1.0, 0.5])).sum())(Sub(alpha=alpha))
assert grad.alpha.shape == (2,)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_leaves_key_paths_and_static_part():
    epsilon = np.array([1e-8])
    spike = s2nn_xp.S2NN(alpha=ALPHA, beta=2.0, epsilon=epsilon, origin=True)
    paths, treedef = jax.tree_util.tree_flatten_with_path(spike)
    assert [jax.tree_util.keystr(path) for path, _ in paths] == [".alpha", ".beta"]
    assert paths[0][1] is ALPHA and paths[1][1] == 2.0
    rebuilt = jax.tree.unflatten(treedef, [BETA, 3.0])
    assert rebuilt.epsilon is spike.epsilon and rebuilt.origin is True
    assert rebuilt.alpha is BETA and rebuilt.beta == 3.0
    # The static part compares by value: an array epsilon by dtype, shape and
    # values (a copy, or JAX's array of the same values, is the same).
    for same in (
        s2nn_xp.S2NN(alpha=BETA, epsilon=epsilon, origin=True),
        s2nn_xp.S2NN(alpha=BETA, epsilon=epsilon.copy(), origin=True),
        s2nn_xp.S2NN(alpha=BETA, epsilon=jnp.asarray(epsilon), origin=True),
    ):
        assert jax.tree.structure(same) == treedef
        # (a treedef's hash leaves its node data out: the static part's own)
        static = jax.tree_util.tree_flatten(same)[1].node_data()[1][0]
        assert hash(static) == hash(treedef.node_data()[1][0])
    for other in (
        s2nn_xp.S2NN(alpha=BETA, epsilon=epsilon),  # origin differs
        s2nn_xp.S2NN(alpha=BETA, epsilon=2 * epsilon, origin=True),
        s2nn_xp.S2NN(alpha=BETA, epsilon=epsilon.astype(np.float32), origin=True),
        s2nn_xp.S2NN(alpha=BETA, epsilon=np.array([[1e-8]]), origin=True),
        s2nn_xp.S2NN(alpha=BETA, epsilon=1e-8, origin=True),
    ):
        assert jax.tree.structure(other) != treedef


def test_a_copy_of_an_object_with_an_array_epsilon_is_the_same_tree():
    """A deep copy (a checkpoint read back) meets the original's gradients."""
    import copy

    spike = s2nn_xp.S2NN(alpha=jnp.full(3, 4.0), epsilon=jnp.full(3, 1e-8))
    grads = jax.grad(lambda s: s(X[:3]).sum())(spike)
    restored = copy.deepcopy(spike)
    stepped = jax.tree.map(lambda p, g: p - 0.1 * g, restored, grads)
    np.testing.assert_array_equal(stepped.alpha, spike.alpha - 0.1 * grads.alpha)
    traces = []

    @jax.jit
    def spikes(fn):
        traces.append(None)
        return fn(X[:3])

    for _ in range(3):  # equal values, fresh arrays: one trace
        spikes(s2nn_xp.S2NN(epsilon=jnp.float32(1e-8)))
    assert len(traces) == 1

    # A traced epsilon has no values: its tree is compared by identity.
    def same_structure(first, second):
        structure = jax.tree.structure
        return structure(s2nn_xp.S2NN(epsilon=first)) == structure(
            s2nn_xp.S2NN(epsilon=second)
        )

    assert not jax.jit(same_structure)(jnp.float32(1e-8), jnp.float32(1e-8))


def test_a_change_to_the_callers_epsilon_array_reaches_no_compiled_object():
    """The object keeps a read-only copy: its compiled code stays its own.

    A jitted function traced with an object whose epsilon the caller then
    changed in place gave a new, equal-valued object that code (wrong
    values, silently).
    """
    origin = jax.jit(lambda spike, x: spike(x))
    x = jnp.zeros(2)
    mine = np.zeros(2)
    first = s2nn_xp.S2NN(epsilon=mine, origin=True)
    want_first = first(x)
    np.testing.assert_array_equal(origin(first, x), want_first)
    mine[:] = 1.0
    assert not first.epsilon.flags.writeable
    np.testing.assert_array_equal(first(x), want_first)
    fresh = s2nn_xp.S2NN(epsilon=np.ones(2), origin=True)
    np.testing.assert_array_equal(origin(fresh, x), fresh(x))


def test_a_byte_swapped_epsilon_is_the_same_tree_as_its_pickled_copy():
    """Pickling gives native byte order back: the key is taken in it."""
    import pickle

    spike = s2nn_xp.S2NN(epsilon=np.full(3, 0.25, dtype=">f8"), origin=True)
    restored = pickle.loads(pickle.dumps(spike))
    assert jax.tree.structure(restored) == jax.tree.structure(spike)


def test_array_epsilons_of_two_dtypes_with_the_same_bytes_differ():
    """ml_dtypes' dtype.str is a raw-bytes code ('<V1' for most float8s)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    raw = bytes([0x38] * 3)
    e4m3 = np.frombuffer(raw, ml_dtypes.float8_e4m3fn).copy()  # 1.0 each
    e4m3fnuz = np.frombuffer(raw, ml_dtypes.float8_e4m3fnuz).copy()  # 0.5 each
    first, second = (s2nn_xp.S2NN(epsilon=e, origin=True) for e in (e4m3, e4m3fnuz))
    assert jax.tree.structure(first) != jax.tree.structure(second)
    x = jnp.array([0.0, 0.6, 3.0])
    origin = jax.jit(lambda spike, x: spike(x))
    origin(first, x)
    np.testing.assert_array_equal(origin(second, x), second(x))


def test_placeholder_leaves_are_not_checked():
    """JAX rebuilds pytrees with None, object() and specs as leaves."""
    spike = s2nn_xp.S2NN(alpha=ALPHA)
    axes = jax.tree.map(lambda _: None, spike)
    assert axes.alpha is None and axes.beta is None
    shapes = jax.eval_shape(lambda s: s, spike)
    assert shapes.alpha.shape == ALPHA.shape


def test_grad_of_a_loss_in_the_object_is_the_parameter_gradient():
    spike = s2nn_xp.S2NN(alpha=ALPHA, beta=BETA, origin=True)

    def loss(fn):
        return (fn(X) ** 2).sum()

    grads = jax.grad(loss)(spike)
    assert isinstance(grads, s2nn_xp.S2NN)

    def by_arguments(alpha, beta):
        return (s2nn_xp.jax.s2nn(X, alpha, beta, origin=True) ** 2).sum()

    want_alpha, want_beta = jax.grad(by_arguments, argnums=(0, 1))(ALPHA, BETA)
    np.testing.assert_allclose(grads.alpha, want_alpha, rtol=1e-12)
    np.testing.assert_allclose(grads.beta, want_beta, rtol=1e-12)


def test_a_list_of_integers_becomes_a_float_leaf_that_trains():
    """As an int becomes a float: the list's array is the library's making
    (int64 before, which jax.grad refused: "grad requires real- or
    complex-valued inputs")."""
    spike = s2nn_xp.S2NN(alpha=[2, 3, 4], beta=(1, 2, 3))
    assert spike.alpha.dtype == np.float64 and spike.beta.dtype == np.float64
    ml_dtypes = pytest.importorskip("ml_dtypes")
    for kind in ("int4", "uint4"):  # no NumPy kind "i" or "u"
        numbers = [getattr(ml_dtypes, kind)(n) for n in (2, 3, 4)]
        assert s2nn_xp.S2NN(alpha=numbers).alpha.dtype == np.float64
    assert repr(spike) == repr(s2nn_xp.S2NN(alpha=[2.0, 3.0, 4.0], beta=[1.0, 2, 3]))
    x = jnp.asarray([-1.0, 0.5, 2.0])
    grads = jax.grad(lambda fn: fn(x).sum())(spike)
    want = jax.grad(lambda a: s2nn_xp.s2nn(x, a).sum())(jnp.asarray([2.0, 3.0, 4.0]))
    np.testing.assert_allclose(grads.alpha, want, rtol=1e-6)


def test_jit_over_the_object_traces_once_for_new_values():
    traces = []

    @jax.jit
    def spikes(fn, x):
        traces.append(None)
        return fn(x)

    for scale in (1.0, 2.0, 3.0):
        fn = s2nn_xp.S2NN(alpha=ALPHA * scale, beta=BETA)
        np.testing.assert_array_equal(spikes(fn, X), s2nn_xp.forward(X))
    assert len(traces) == 1


def test_vmap_over_a_batch_of_objects():
    alphas = jnp.stack([ALPHA, 2 * ALPHA, 3 * ALPHA])
    batch = s2nn_xp.S2NN(alpha=alphas, beta=BETA)
    # in_axes as a tree of the object's shape: alpha mapped, beta shared.
    axes = jax.tree.map(lambda leaf: 0 if leaf is alphas else None, batch)

    def surrogate_grad(fn):
        return jax.grad(lambda x: fn(x).sum())(X - 0.5)

    batched = jax.vmap(surrogate_grad, in_axes=(axes,))(batch)
    for row, alpha in zip(batched, alphas, strict=True):
        np.testing.assert_allclose(
            row, s2nn_xp.gradient(X - 0.5, alpha, BETA), rtol=1e-12
        )


def test_optax_updates_the_object():
    optax = pytest.importorskip("optax")
    spike = s2nn_xp.S2NN(alpha=ALPHA, beta=BETA, origin=True)
    optimizer = optax.adam(1e-2)
    state = optimizer.init(spike)
    grads = jax.grad(lambda fn: fn(X).sum())(spike)
    updates, state = optimizer.update(grads, state, spike)
    trained = optax.apply_updates(spike, updates)
    assert isinstance(trained, s2nn_xp.S2NN) and trained.origin is True
    assert trained.epsilon == spike.epsilon
    moved = np.asarray(trained.alpha) != np.asarray(ALPHA)
    assert moved[np.asarray(X) < 0].all()  # alpha acts on x < 0 only


# optax's optimizers that read each leaf's shape, dtype or ndim: they fail on
# a Python number's leaf (S2NN()'s, as on {"alpha": 4.0}), which the docs say.
LEAF_READING_OPTIMIZERS = ["adafactor", "lamb", "lars", "muon", "schedule_free"]


@pytest.mark.parametrize("name", LEAF_READING_OPTIMIZERS)
def test_optimizers_that_read_leaves_train_typed_array_parameters(name):
    """The docs' advice for them: give alpha and beta as arrays with a dtype."""
    optax = pytest.importorskip("optax")
    if name == "schedule_free":
        optimizer = optax.contrib.schedule_free_adamw(1e-1)
    else:  # muon is in contrib in optax 0.2.8
        optimizer = getattr(optax, name, None) or getattr(optax.contrib, name)
        optimizer = optimizer(1e-1)
    x = jnp.asarray(X - 0.5, dtype=jnp.float32)  # both sides: alpha and beta act

    def step(spike):
        state = optimizer.init(spike)
        grads = jax.grad(lambda fn: fn(x).sum())(spike)
        updates, state = optimizer.update(grads, state, spike)
        return optax.apply_updates(spike, updates)

    with pytest.raises(AttributeError, match="'float' object has no attribute"):
        step(s2nn_xp.S2NN(origin=True))  # optax's limitation, which the docs name
    # one value each, as a 0-d array
    trained = step(
        s2nn_xp.S2NN(alpha=jnp.float32(4.0), beta=jnp.float32(1.0), origin=True)
    )
    assert isinstance(trained, s2nn_xp.S2NN) and trained.origin is True
    assert float(trained.alpha) != 4.0 and float(trained.beta) != 1.0


@pytest.mark.parametrize("spike_class", ["S2NN", "a subclass"])
def test_equinox_module_holding_the_object_trains_it(spike_class):
    # A subclass was one opaque leaf, which filter_grad left out: None, silently.
    eqx = pytest.importorskip("equinox")
    spike_type = s2nn_xp.S2NN if spike_class == "S2NN" else _Rate

    class Layer(eqx.Module):
        weight: jax.Array
        spike: s2nn_xp.S2NN

        def __call__(self, x):
            return self.spike(x * self.weight)

    layer = Layer(jnp.ones(8), spike_type(alpha=ALPHA, beta=BETA))
    grads = eqx.filter_grad(lambda m: m(X).sum())(layer)
    assert grads.spike.alpha.shape == ALPHA.shape
    np.testing.assert_allclose(grads.weight, X * s2nn_xp.gradient(X, ALPHA, BETA))
    assert np.abs(grads.spike.alpha).max() > 0
    assert np.abs(grads.spike.beta).max() > 0


def test_the_object_itself_compiles_and_checkpoints():
    """jax.jit and jax.checkpoint keep weak references to what they wrap."""
    spike = s2nn_xp.S2NN(alpha=2.0)
    x = jnp.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(jax.jit(spike)(x), spike(x))
    np.testing.assert_array_equal(jax.checkpoint(spike)(x), spike(x))
    grad = jax.grad(lambda v: jax.checkpoint(spike)(v).sum())(x)
    np.testing.assert_array_equal(grad, s2nn_xp.gradient(x, 2.0))


def test_jit_takes_an_array_epsilon_after_a_float_one():
    """epsilon is static: JAX compared the float with the array, and raised."""
    loss = jax.jit(lambda spike, x: spike(x).sum())
    x = jnp.array([-1.0, 1.0])
    assert loss(s2nn_xp.S2NN(epsilon=0.5), x) == 1.0
    for epsilon in (np.array([0.1, 0.1]), jnp.array([0.1, 0.1])):
        assert loss(s2nn_xp.S2NN(epsilon=epsilon), x) == 1.0
    structure = jax.tree_util.tree_structure
    assert structure(s2nn_xp.S2NN()) != structure(s2nn_xp.S2NN(epsilon=np.ones(2)))


@pytest.mark.parametrize(
    "copier",
    [copy.copy, copy.deepcopy, lambda tree: pickle.loads(pickle.dumps(tree))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_trees_of_its_structure_copy_whatever_their_leaves(copier):
    """Gradients (negative), optimizer moments (zeros) and optax's labels
    (bools, strings, None) in alpha and beta: the copy rebuilt the object by
    its checks and refused them once they were host values."""
    spike = s2nn_xp.S2NN(alpha=jnp.full(3, 4.0), epsilon=1e-5, origin=True)
    gradients = jax.device_get(jax.grad(lambda s: s(X[:3]).sum())(spike))
    assert (gradients.alpha < 0).any()
    trees = [
        gradients,
        jax.tree.map(np.zeros_like, jax.device_get(spike)),
        *(jax.tree.map(lambda _, v=v: v, spike) for v in (False, "frozen", None)),
    ]
    for tree in trees:
        copied = copier(tree)
        assert jax.tree.structure(copied) == jax.tree.structure(tree)
        for got, want in zip(
            jax.tree.leaves(copied, is_leaf=lambda v: v is None),
            jax.tree.leaves(tree, is_leaf=lambda v: v is None),
            strict=True,
        ):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        copier(gradients)(X[:3])  # a call checks its parameters


def test_the_hash_follows_every_value_equality_compares():
    """JAX's caches keep the object itself under the hash of its first use.

    origin was left out of the hash (after fn.origin = True, jax.checkpoint(fn)
    found the spike's entry, for fn and for any fresh S2NN(origin=True)), and
    arrays hashed by id, which CPython gives a new array once a freed one's:
    a replaced alpha met the trace of an old one. An array's token is its
    own for good; it reads no values (by value, every hash copied the array
    to the host, and an update in place lost the object from a set).
    """
    assert hash(s2nn_xp.S2NN()) != hash(s2nn_xp.S2NN(origin=True))
    alpha = np.full(2, 1.0)
    fn = s2nn_xp.S2NN(alpha=alpha)
    first = hash(fn)
    assert hash(s2nn_xp.S2NN(alpha=alpha)) == first  # equal: the same array
    held = {fn}
    alpha[0] = 2.0  # changed in place: the same array, the same hash
    assert hash(fn) == first and fn in held
    hashes = set()
    for step in range(50):  # freed arrays' ids come back; their hashes do not
        fn.alpha = jnp.full(2, float(step + 3))
        hashes.add(hash(fn))
    assert len(hashes) == 50
    assert hash(fn) == hash(s2nn_xp.S2NN(alpha=fn.alpha))


def test_threads_hashing_one_object_get_one_hash():
    """Two threads could each make a token for one array, one of them lost."""
    import sys
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(30):
            fn = s2nn_xp.S2NN(alpha=np.array([1.0, 2.0]))
            barrier = threading.Barrier(6)
            hashes = []

            def take(fn=fn, barrier=barrier, hashes=hashes):
                barrier.wait()
                hashes.append(hash(fn))

            threads = [threading.Thread(target=take) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(set(hashes)) == 1
    finally:
        sys.setswitchinterval(interval)


def test_a_changed_object_that_jit_holds_is_read_as_the_docstring_warns():
    """The docstring said a changed object held by jax.jit gave its old
    values, as a closure does: its plain calls do, but a transform of the
    compiled function traces it again and reads the new ones (a forward
    pass with the old alpha, a backward pass with the new)."""
    x = jnp.array([-1.0, 0.0, 1.0])
    fn = s2nn_xp.S2NN(origin=True)
    compiled = jax.jit(fn)
    old = compiled(x)
    fn.alpha = 8.0
    np.testing.assert_array_equal(compiled(x), old)  # what was compiled
    tangent = jax.jvp(compiled, (x,), (jnp.ones(3),))[0]
    np.testing.assert_array_equal(tangent, fn(x))  # traced again: the new alpha
    assert not np.array_equal(tangent, old)


@pytest.mark.parametrize("kind", ["float", "numpy", "jax", "origin"])
def test_a_changed_object_passed_as_an_argument_reaches_every_transform(kind):
    """The way the docstring gives to change values between transformed calls."""
    x = jnp.array([-1.0, -0.5, 0.5])
    fn = s2nn_xp.S2NN(alpha=4.0, origin=kind != "origin")
    transforms = {
        "checkpoint": jax.checkpoint(lambda f, x: f(x)),
        "cond": lambda f, x: jax.lax.cond(True, lambda f: f(x), lambda f: x, f),
        "jit": jax.jit(lambda f, x: f(x)),
    }
    for run in transforms.values():
        run(fn, x)
    for step in range(2, 6):
        if kind == "origin":
            fn.origin = not fn.origin
        else:
            value = float(step)
            fn.alpha = {"float": value, "numpy": np.full(3, value)}.get(
                kind, jnp.full(3, value)
            )
        want = fn(x)
        for name, run in transforms.items():
            np.testing.assert_array_equal(run(fn, x), want, err_msg=name)


def test_equal_objects_share_one_compiled_function_as_static_arguments():
    traces = []

    def spikes(x, fn):
        traces.append(None)
        return fn(x)

    compiled = jax.jit(spikes, static_argnums=1)
    for _ in range(3):
        compiled(X, s2nn_xp.S2NN(alpha=4.0))
    assert len(traces) == 1


# --- subclasses -------------------------------------------------------------------


def _key_paths(tree):
    """The key paths of ``tree``'s leaves, as text (``".alpha"``, ...)."""
    paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(path) for path, _ in paths]


class _Rate(s2nn_xp.S2NN):
    """A subclass that adds a method only (the common kind)."""

    def rate(self, x):
        return self(x).mean()


class _Gained(s2nn_xp.S2NN):
    """A subclass with an attribute of its own (and a setting on the class)."""

    name = "lif"

    def __init__(self, *args, gain=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = jnp.full(8, 2.0) if gain is None else gain

    def __call__(self, x):
        return super().__call__(x) * self.gain


class _Slotted(s2nn_xp.S2NN):
    __slots__ = ("__hidden", "scale")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.__hidden = 3
        self.scale = jnp.ones(2)

    def hidden(self):
        return self.__hidden


def test_a_subclass_is_a_pytree_as_s2nn_is():
    """Its alpha and beta are leaves (it was one opaque leaf: not trained)."""
    spike = _Rate(alpha=ALPHA, beta=BETA)
    assert jax.tree.leaves(spike) == [ALPHA, BETA]
    grads = jax.grad(lambda s: s.rate(X))(spike)
    assert type(grads) is _Rate
    want = jax.grad(lambda s: s(X).mean())(s2nn_xp.S2NN(alpha=ALPHA, beta=BETA))
    np.testing.assert_array_equal(grads.alpha, want.alpha)
    np.testing.assert_array_equal(grads.beta, want.beta)
    assert jax.jit(lambda s: s.rate(X))(spike) == spike.rate(X)
    batch = jax.vmap(lambda a: _Rate(alpha=a).rate(X))(jnp.stack([ALPHA, BETA]))
    assert batch.shape == (2,)


def test_a_subclass_s_own_attributes_are_children():
    spike = _Gained(alpha=2.0)
    treedef = jax.tree.structure(spike)
    assert _key_paths(spike) == [".alpha", ".beta", ".gain"]
    grads = jax.grad(lambda s: s(X).sum())(spike)
    np.testing.assert_array_equal(grads.gain, s2nn_xp.s2nn(X))  # the added one learns
    assert type(grads) is _Gained
    # JAX rebuilds the tree with placeholders in the leaves (lowering, eval_shape):
    # the structure must not follow the leaves' values.
    step = jax.jit(lambda s, x: s(x))
    assert step.lower(spike, X).compile()(spike, X).shape == X.shape
    assert type(jax.eval_shape(lambda s: s, spike)) is _Gained
    rebuilt = jax.tree.map(lambda leaf: None, spike)
    assert jax.tree.structure(rebuilt, is_leaf=lambda v: v is None) == treedef
    assert jax.tree.structure(copy.deepcopy(spike)) == treedef
    # Whatever the value and however it was set: a child (an array set
    # without __setattr__, or in a hashable container, was static: untrained).
    other = _Gained(alpha=2.0)
    object.__setattr__(other, "shift", jnp.zeros(8))
    other.__dict__.update(pair=(jnp.ones(8), s2nn_xp.S2NN(alpha=jnp.asarray(2.0))))
    assert _key_paths(other) == [
        ".alpha",
        ".beta",
        ".gain",
        ".pair[0]",
        ".pair[1].alpha",
        ".pair[1].beta",
        ".shift",
    ]
    # Anything else is a leaf too, which JAX's transforms refuse, loudly.
    other.mode = "lif"
    with pytest.raises(TypeError, match=r"at path s\.mode"):
        step(other, X)
    del other.mode, other.pair, other.shift  # own attributes may go
    assert jax.tree.structure(other) == treedef
    with pytest.raises(AttributeError, match="cannot delete 'alpha'"):
        del other.alpha


def test_a_subclass_s_lists_and_dicts_are_trees_of_their_own():
    """Arrays in containers train; a change in place reaches jit (no stale trace)."""

    class Weighted(s2nn_xp.S2NN):
        def __init__(self):
            super().__init__(alpha=ALPHA)
            self.weights = [jnp.ones(8), {"scale": 2.0}]
            self.inner = s2nn_xp.S2NN(alpha=BETA)

        def __call__(self, x):
            weight, settings = self.weights
            return super().__call__(x) * weight * settings["scale"] + self.inner(x)

    spike = Weighted()
    assert _key_paths(spike) == [
        ".alpha",
        ".beta",
        ".inner.alpha",
        ".inner.beta",
        ".weights[0]",
        ".weights[1]['scale']",
    ]
    grads = jax.grad(lambda s: s(X).sum())(spike)
    np.testing.assert_array_equal(grads.weights[0], 2.0 * s2nn_xp.s2nn(X))
    want = jax.grad(lambda s: s(X).sum())(s2nn_xp.S2NN(alpha=BETA))
    np.testing.assert_array_equal(grads.inner.alpha, want.alpha)
    step = jax.jit(lambda s, x: s(x))
    first = step(spike, X)
    spike.weights[1]["scale"] = 3.0
    np.testing.assert_array_equal(step(spike, X), spike(X))
    assert not np.array_equal(step(spike, X), first)


def test_a_subclass_s_attributes_named_as_the_parameters_are_the_parameters():
    class Shadowed(s2nn_xp.S2NN):
        alpha = 3.0  # a class attribute: the objects' alpha goes to __dict__

    spike = Shadowed(alpha=ALPHA)
    assert jax.tree.leaves(spike) == [ALPHA, 1.0]
    grads = jax.grad(lambda s: s.surrogate_fun(X).sum())(spike)
    want = jax.grad(lambda s: s.surrogate_fun(X).sum())(s2nn_xp.S2NN(alpha=ALPHA))
    np.testing.assert_array_equal(grads.alpha, want.alpha)
    assert jax.tree.map(lambda a: a * 10, Shadowed(alpha=5.0)).alpha == 50.0


def test_subclasses_with_getattr_new_and_generic_bases():
    import typing

    class Lookup(s2nn_xp.S2NN):
        def __init__(self, **settings):
            super().__init__()
            self.settings = settings

        def __getattr__(self, name):  # answers for unset slots, unless read past
            return self.settings[name]

    assert Lookup(gain=2.0).gain == 2.0
    assert len(jax.tree.leaves(Lookup(gain=jnp.ones(2)))) == 3

    class Delegating(s2nn_xp.S2NN):  # slots only, and a __getattr__ of its own
        __slots__ = ("inner", "weight")

        def __init__(self):
            super().__init__()
            self.weight = jnp.ones(2)
            self.inner = types.SimpleNamespace(hidden=jnp.zeros(3))

        def __getattr__(self, name):  # asked for __dict__ too, unless read past
            return getattr(object.__getattribute__(self, "inner"), name)

    spike = Delegating()
    # no .hidden of inner's
    assert _key_paths(spike) == [".alpha", ".beta", ".inner", ".weight"]
    assert spike == spike and jax.tree.map(lambda v: v, spike).weight is spike.weight

    class Mixin:
        def __new__(cls, *args, **kwargs):
            obj = super().__new__(cls)
            obj.made_with = args
            return obj

    class Mixed(s2nn_xp.S2NN, Mixin):
        pass

    assert Mixed(2.0).made_with == (2.0,)

    # The mixin's __new__ is found at every object: below a class whose
    # __init_subclass__ does not call super's, and where one is given to a
    # class after it was made (a flag set when the class was made missed
    # both: no arguments, or object.__new__ given them).
    class Registry(s2nn_xp.S2NN):
        def __init_subclass__(cls, **kwargs):
            pass

    class Registered(Registry, Mixin):
        pass

    assert Registered(alpha=2.0).made_with == ()
    assert Registered(3.0).made_with == (3.0,)

    class Plain:
        pass

    class Later(s2nn_xp.S2NN, Plain):
        pass

    def recording_new(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.made_with = args
        return obj

    Plain.__new__ = staticmethod(recording_new)
    assert Later(4.0).made_with == (4.0,)
    del Plain.__new__
    assert Later(alpha=4.0).alpha == 4.0
    T = typing.TypeVar("T")

    class Typed(s2nn_xp.S2NN, typing.Generic[T]):
        pass

    assert jax.tree.structure(Typed[float](alpha=2.0)) == jax.tree.structure(
        Typed(alpha=2.0)
    )


def test_a_subclass_s_slots_are_its_state_too():
    spike = _Slotted(alpha=2.0)
    assert _key_paths(spike) == [".alpha", ".beta", "._Slotted__hidden", ".scale"]
    rebuilt = jax.tree.map(lambda leaf: leaf, spike)
    assert rebuilt.hidden() == 3 and rebuilt.scale is spike.scale


def _pickled(obj):
    return pickle.loads(pickle.dumps(obj))


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy, _pickled])
def test_a_copy_of_a_subclass_is_the_same_tree(copier):
    spike = _Gained(alpha=2.0, gain=np.full(8, 3.0))
    assert jax.tree.structure(copier(spike)) == jax.tree.structure(spike)


def test_a_subclass_that_registers_itself_keeps_its_own_rules():
    @jax.tree_util.register_pytree_node_class
    class Own(s2nn_xp.S2NN):
        def tree_flatten(self):
            return (self.alpha,), None

        @classmethod
        def tree_unflatten(cls, aux, children):
            return cls(alpha=children[0])

    assert jax.tree.leaves(Own(alpha=3.0, beta=2.0)) == [3.0]


@pytest.mark.parametrize("made", ["class", "object"])
def test_a_subclass_made_before_jax_is_imported_is_a_pytree(made):
    code = (
        "import sys\n"
        "import s2nn_xp\n"
        "class Rate(s2nn_xp.S2NN):\n"
        "    pass\n"
        "class Deeper(Rate):\n"
        "    pass\n"
        + ("spike = Deeper(alpha=2.0)\n" if made == "object" else "")
        + "assert 'jax' not in sys.modules\n"
        "import jax\n"
        "for cls in (Rate, Deeper):\n"
        "    leaves = jax.tree.leaves(cls(alpha=2.0, beta=3.0))\n"
        "    assert leaves == [2.0, 3.0], leaves\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_subclass_objects_with_equal_settings_are_equal():
    """Equal objects share what JAX compiles: equal strings and ints, not 1 and True."""

    class Setting(s2nn_xp.S2NN):
        def __init__(self, setting):
            super().__init__()
            self.setting = setting

    for make in (lambda: int("1000"), lambda: "".join(["l", "if"]), lambda: 2.5):
        first, second = Setting(make()), Setting(make())
        assert first == second and hash(first) == hash(second)
        assert copy.deepcopy(first) == first
    assert Setting(1) != Setting(True)
    assert Setting(jnp.ones(2)) != Setting(jnp.ones(2))  # arrays: by identity


def test_the_constructor_s_signature_is_init_s():
    # S2NN has a __new__ of its own, which inspect (help(), Sphinx) reads first.
    import inspect

    names = ["alpha", "beta", "epsilon", "origin"]
    assert list(inspect.signature(s2nn_xp.S2NN).parameters) == names
    assert list(inspect.signature(_Rate).parameters) == names
    assert list(inspect.signature(_Gained).parameters) == ["args", "gain", "kwargs"]
