"""``s2nn_xp`` as the spike function of the JAX SNN libraries users have.

braintools' ``surrogate.S2NN`` is the JAX anchor: the same spikes and first
derivative, and (unlike it) the Definition page's second derivative.
brainstate networks and brainpy's ``state.LIF`` take the function as
``spk_fun``; a few steps of a network through them must give finite, nonzero
gradients. Each library's tests
are skipped where it is not installed (``nox -s clients`` installs them).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests._support import require

require("jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import s2nn_xp  # noqa: E402
import s2nn_xp.jax  # noqa: E402
from tests._support import SPECIAL_X, ref_dgradient_dx, reference  # noqa: E402
from tests.test_jax import grad_x  # noqa: E402

# Both branches, dense near the kink; |alpha * x| <= 80, so no float32 value is
# subnormal (XLA on the CPU flushes those to zero).
_rng = np.random.default_rng(20261128)
GRID = np.concatenate(
    [
        _rng.uniform(-20.0, 20.0, 200),
        -np.logspace(-8, np.log10(20.0), 50),
        np.logspace(-8, np.log10(20.0), 50),
        [-1.0, -0.0, 0.0],
    ]
).astype(np.float32)


def test_first_derivative_agrees_with_braintools_and_the_second_does_not():
    surrogate = pytest.importorskip("braintools.surrogate")
    theirs = surrogate.S2NN(alpha=4.0, beta=1.0)
    ours = s2nn_xp.S2NN(alpha=4.0, beta=1.0)
    x = jnp.asarray(GRID)
    np.testing.assert_array_equal(ours(x), theirs(x))
    np.testing.assert_allclose(
        grad_x(ours)(x), grad_x(theirs)(x), rtol=4e-6, atol=1e-30
    )
    # braintools' second derivative is 0; the Definition page's is d gradient / dx.
    assert not np.asarray(grad_x(theirs, 2)(x)).any()
    want = reference(ref_dgradient_dx, GRID.astype(np.float64))
    np.testing.assert_allclose(grad_x(ours, 2)(x), want, rtol=1e-4, atol=1e-5)


def test_braintools_gives_spike_0_for_nan_and_s2nn_xp_gives_nan():
    """The documented difference in the special values, checked on both."""
    surrogate = pytest.importorskip("braintools.surrogate")
    special = np.append(SPECIAL_X.astype(np.float64), np.nan)
    too_big = np.isfinite(special) & (np.abs(special) > np.finfo(np.float32).max)
    special = special[~too_big]  # finite in float32
    x = jnp.asarray(special, dtype=jnp.float32)
    nan = np.isnan(special)
    theirs = np.asarray(surrogate.S2NN()(x))
    ours = np.asarray(s2nn_xp.S2NN()(x))
    assert (theirs[nan] == 0).all()
    assert np.isnan(ours[nan]).all()
    np.testing.assert_array_equal(ours[~nan], theirs[~nan])


def test_as_spike_function_of_a_brainstate_network():
    brainstate = pytest.importorskip("brainstate")

    class LIF(brainstate.nn.Dynamics):
        """A brainstate LIF layer that takes its spike function as ``spk_fun``."""

        def __init__(self, size, spk_fun, tau=5.0, v_th=1.0):
            super().__init__(size)
            self.spk_fun, self.decay, self.v_th = spk_fun, float(np.exp(-1 / tau)), v_th

        def init_state(self, batch_size=None, **kwargs):
            self.v = brainstate.HiddenState(jnp.zeros((batch_size, *self.in_size)))

        def update(self, current):
            v = self.decay * self.v.value + current
            spike = self.spk_fun(v - self.v_th)
            self.v.value = v - spike * self.v_th
            return spike

    class Network(brainstate.nn.Module):
        def __init__(self, spk_fun):
            super().__init__()
            self.weights = brainstate.ParamState(jnp.full((6, 4), 0.4))
            self.neurons = LIF(4, spk_fun)

        def update(self, inputs):
            return self.neurons(inputs @ self.weights.value)

    inputs = jax.random.uniform(jax.random.key(2), (15, 3, 6))
    for spk_fun in (s2nn_xp.S2NN(), s2nn_xp.jax.s2nn):
        net = Network(spk_fun)
        brainstate.nn.init_all_states(net, batch_size=3)

        def loss(net=net):
            spikes = brainstate.transform.for_loop(net.update, inputs)
            return spikes.mean()

        grads = brainstate.transform.grad(loss, net.states(brainstate.ParamState))()
        values = jax.tree.leaves(grads)
        assert values and all(np.isfinite(v).all() for v in values)
        assert any(np.abs(v).max() > 0 for v in values)


def test_brainstate_states_as_learnable_parameters():
    """``S2NN(alpha=ParamState(...))``: read at every call, found and trained."""
    brainstate = pytest.importorskip("brainstate")

    class Layer(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = brainstate.ParamState(jnp.full((3, 4), 0.5))
            self.spk_fun = s2nn_xp.S2NN(
                alpha=brainstate.ParamState(jnp.full(4, 4.0)),
                beta=brainstate.ParamState(jnp.ones(4)),
            )

        def update(self, inputs):
            return self.spk_fun(inputs @ self.weights.value - 1.0)

    layer = Layer()
    alpha, beta = layer.spk_fun.alpha, layer.spk_fun.beta
    states = layer.states(brainstate.ParamState)
    assert states[("spk_fun", "alpha")] is alpha
    assert states[("spk_fun", "beta")] is beta
    inputs = jax.random.uniform(jax.random.key(0), (8, 3), minval=-1.0, maxval=2.0)

    def loss():
        return layer.spk_fun.surrogate_fun(inputs @ layer.weights.value - 1.0).sum()

    grads = brainstate.transform.grad(loss, states)()
    potential = inputs @ layer.weights.value - 1.0
    want_alpha, want_beta = jax.grad(
        lambda a, b: s2nn_xp.origin(potential, a, b).sum(), argnums=(0, 1)
    )(alpha.value, beta.value)
    np.testing.assert_allclose(grads[("spk_fun", "alpha")], want_alpha, rtol=1e-6)
    np.testing.assert_allclose(grads[("spk_fun", "beta")], want_beta, rtol=1e-6)
    spikes = layer.update(inputs)
    # Read at call time: a new value of the state is used by the next call.
    alpha.value = jnp.full(4, 0.5)
    np.testing.assert_array_equal(layer.update(inputs), spikes)
    np.testing.assert_allclose(
        layer.spk_fun.surrogate_grad(potential),
        s2nn_xp.gradient(potential, 0.5, beta.value),
        rtol=1e-6,
    )


def test_a_state_batched_by_brainstate_vmap_is_one_parameter_a_lane():
    """An ensemble of alphas (vmap over the state): brainstate probes the
    function with NumPy zeros in place of a batched state's values, which
    were checked as host values and refused (alpha must be > 0)."""
    brainstate = pytest.importorskip("brainstate")
    x = jnp.linspace(-2.0, 2.0, 5)
    lanes = jnp.array([1.0, 2.0, 4.0])
    alphas = brainstate.ParamState(lanes)
    spike = s2nn_xp.S2NN(alpha=alphas)
    vmap = brainstate.transform.vmap
    slopes = vmap(lambda: spike.surrogate_grad(x), in_states=alphas)()
    want = jnp.stack([s2nn_xp.gradient(x, a) for a in lanes.tolist()])
    np.testing.assert_allclose(slopes, want, rtol=1e-6)
    np.testing.assert_array_equal(
        vmap(lambda: spike(x), in_states=alphas)(),
        jnp.broadcast_to(s2nn_xp.forward(x), (3, 5)),
    )

    def loss():
        return vmap(lambda: spike.surrogate_fun(x).sum(), in_states=alphas)().sum()

    grads = brainstate.transform.grad(loss, alphas)()
    want = jax.vmap(jax.grad(lambda a: s2nn_xp.origin(x, a).sum()))(lanes)
    np.testing.assert_allclose(grads, want, rtol=1e-6)
    # The probe's zeros are of the state's dtype: integers, bfloat16 too
    for values, potential in (
        (jnp.array([1, 2, 4]), x),
        (lanes.astype(jnp.bfloat16), x.astype(jnp.bfloat16)),
    ):
        state = brainstate.ParamState(values)
        typed = s2nn_xp.S2NN(alpha=state)
        got = vmap(lambda: typed.surrogate_grad(potential), in_states=state)()  # noqa: B023
        assert got.shape == (3, 5)
        assert np.isfinite(np.asarray(got, dtype=np.float32)).all()
    u = pytest.importorskip("brainunit")  # x a dimensionless quantity too
    quantity = vmap(lambda: spike.surrogate_grad(u.Quantity(x)), in_states=alphas)()
    np.testing.assert_allclose(quantity, slopes, rtol=1e-6)
    # Only those zeros: a state's other NumPy values are checked, as ever
    # (they were taken unchecked as JAX data, a 2**32 + 2 wrapped to 2).
    beta = brainstate.ParamState(np.array([2.0, 2.0]))
    other = s2nn_xp.S2NN(beta=beta)
    pair = jnp.array([-1.0, 1.0])
    beta.value = np.array([2.0**32 + 2] * 2)
    wide = other.surrogate_grad(pair)[1]  # float32 or 64: brainstate sets x64
    np.testing.assert_allclose(wide, (2.0**32 + 2) / 2, rtol=1e-6)
    beta.value = np.array([-1.0, 2.0])
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        other.surrogate_fun(pair)


def test_a_dimensionless_quantity_of_a_jax_array_stays_in_jax():
    """brainunit's Quantity has no __jax_array__: read by __array__, a JAX
    membrane potential gave a NumPy result, and under jax.grad an error
    about a traced array. One with a unit is refused, naming x."""
    u = pytest.importorskip("brainunit")
    v = jnp.array([-1.0, 0.0, 2.0])
    spikes = s2nn_xp.S2NN()(u.Quantity(v))
    assert isinstance(spikes, jax.Array)
    np.testing.assert_array_equal(spikes, s2nn_xp.forward(v))
    grad = jax.grad(lambda v: s2nn_xp.S2NN()(u.Quantity(v)).sum())(v)
    np.testing.assert_array_equal(grad, s2nn_xp.gradient(v))
    slope = s2nn_xp.gradient(v, u.Quantity(jnp.asarray(2.0)))
    np.testing.assert_array_equal(slope, s2nn_xp.gradient(v, 2.0))
    with pytest.raises(TypeError, match=r"^x .*dimensionless"):
        s2nn_xp.S2NN()(v * u.mV)
    # a dimensionless unit's scale (mV / V), and a subclass: their values
    scaled = u.Quantity(v, unit=u.mV / u.volt)
    np.testing.assert_array_equal(s2nn_xp.gradient(scaled), s2nn_xp.gradient(v / 1000))

    class Potential(u.Quantity):
        pass

    assert isinstance(s2nn_xp.S2NN()(Potential(v)), jax.Array)


def test_a_subclass_s_states_are_found_and_trained():
    """A subclass was one opaque leaf: brainstate found none of its states."""
    brainstate = pytest.importorskip("brainstate")

    class Spike(s2nn_xp.S2NN):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.gain = brainstate.ParamState(jnp.ones(4))

        def __call__(self, x):
            return super().__call__(x) * self.gain.value

    class Layer(brainstate.nn.Module):
        def __init__(self):
            super().__init__()
            self.spk_fun = Spike(alpha=brainstate.ParamState(jnp.full(4, 4.0)))

    layer = Layer()
    states = layer.states(brainstate.ParamState)
    assert sorted(states) == [("spk_fun", "alpha"), ("spk_fun", "gain")]
    potential = jnp.linspace(-1.0, 1.0, 4)
    grads = brainstate.transform.grad(lambda: layer.spk_fun(potential).sum(), states)()
    np.testing.assert_array_equal(grads[("spk_fun", "gain")], s2nn_xp.s2nn(potential))
    want = jax.grad(lambda a: s2nn_xp.origin(potential, a).sum())(jnp.full(4, 4.0))
    np.testing.assert_allclose(grads[("spk_fun", "alpha")], want, rtol=1e-6)


def test_brainstate_state_values_are_checked():
    brainstate = pytest.importorskip("brainstate")
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        s2nn_xp.S2NN(alpha=brainstate.ParamState(np.array([4.0, -1.0])))
    spike = s2nn_xp.S2NN()
    with pytest.raises(ValueError, match="beta must be finite and > 0"):
        spike.beta = brainstate.ParamState(np.array([0.0]))


def test_as_spk_fun_of_brainpy_state_lif():
    brainpy = pytest.importorskip("brainpy")
    if not hasattr(getattr(brainpy, "state", None), "LIF"):
        pytest.skip("brainpy.state.LIF is not available")
    brainstate = pytest.importorskip("brainstate")
    units = pytest.importorskip("brainunit")

    neurons = brainpy.state.LIF(4, spk_fun=s2nn_xp.S2NN(), tau=5.0 * units.ms)
    brainstate.nn.init_all_states(neurons, batch_size=2)
    weights = brainstate.ParamState(jnp.full((3, 4), 2.0))
    inputs = jnp.ones((10, 2, 3))

    def loss():
        def step(current):
            return neurons((current @ weights.value) * units.mA)

        return brainstate.transform.for_loop(step, inputs).mean()

    with brainstate.environ.context(dt=0.1 * units.ms):
        rate = float(loss())
        grads = np.asarray(brainstate.transform.grad(loss, weights)())
    assert 0 < rate < 1  # the neurons spike, but not at every step
    assert np.isfinite(grads).all()
    assert np.abs(grads).max() > 0


def test_bench_anchor_is_braintools_forward_and_backward():
    """``s2nn-xp bench`` times braintools on the same arrays, doing the same work."""
    pytest.importorskip("braintools")
    from s2nn_xp import _backends, _cli

    x = jnp.asarray(GRID)
    cotangent = jnp.ones_like(x)
    anchors = _cli._anchor_cases(_backends.get("jax"), x, cotangent)
    spike, grad = anchors["braintools"]()
    np.testing.assert_array_equal(spike, s2nn_xp.s2nn(x))
    np.testing.assert_allclose(grad, s2nn_xp.gradient(x), rtol=4e-6, atol=1e-30)


def test_jax_export_serialises_an_s2nn_with_an_array_epsilon():
    """Its values go into the static part, which compares them by value."""
    pytest.importorskip("flatbuffers")  # jax.export's serialisation needs it
    step = jax.jit(lambda spike, x: spike(x))
    values = jnp.array([[-1.0, 0.0, 1.0]])
    for epsilon, x in (
        (1e-5, values),
        (jnp.full(3, 1e-5), values),
        (jnp.full(3, 1e-2, dtype=jnp.bfloat16), values),  # its str is '<V2'
        (np.full(3, 1e-2, dtype=np.float16), values),
        (np.full(3, 0.25, dtype=">f8"), values),  # byte-swapped: as pickled
        (np.full(3, 0.25, dtype=np.longdouble), values),  # no JSON number
        (np.zeros((0, 3)), jnp.zeros((0, 3))),  # its shape kept, though empty
    ):
        spike = s2nn_xp.S2NN(alpha=jnp.full(3, 4.0), epsilon=epsilon, origin=True)
        blob = jax.export.export(step)(spike, x).serialize(vjp_order=1)
        restored = jax.export.deserialize(blob)
        np.testing.assert_array_equal(restored.call(spike, x), step(spike, x))
        grads = jax.grad(lambda s, f=restored.call, x=x: f(s, x).sum())(spike)
        want = jax.grad(lambda s, x=x: step(s, x).sum())(spike)
        np.testing.assert_array_equal(grads.alpha, want.alpha)


def test_jax_export_serialises_a_subclass():
    pytest.importorskip("flatbuffers")  # jax.export's serialisation needs it

    class Gained(s2nn_xp.S2NN):
        def __init__(self, *args, gain, **kwargs):
            super().__init__(*args, **kwargs)
            self.gain = gain

        def __call__(self, x):
            return super().__call__(x) * self.gain

    step = jax.jit(lambda spike, x: spike(x))
    x = jnp.array([-1.0, 0.0, 1.0])
    spike = Gained(alpha=jnp.full(3, 4.0), gain=jnp.full(3, 2.0))
    blob = jax.export.export(step)(spike, x).serialize(vjp_order=1)
    restored = jax.export.deserialize(blob)
    np.testing.assert_array_equal(restored.call(spike, x), step(spike, x))
    grads = jax.grad(lambda s: restored.call(s, x).sum())(spike)
    np.testing.assert_array_equal(grads.gain, s2nn_xp.s2nn(x))


@pytest.mark.parametrize("how", ["cell run again", "reload _object", "import again"])
def test_jax_export_serialises_objects_of_classes_defined_again(how):
    """A class defined again (a notebook cell run again; S2NN after a
    reload) held no serialisation name, its earlier definition's: jax.export
    raised "Cannot serialize PyTreeDef containing an unregistered type". The
    newest definition reads back; the earlier one's objects are still
    written."""
    pytest.importorskip("flatbuffers")  # jax.export's serialisation needs it
    again = {
        "cell run again": "",
        "reload _object": "importlib.reload(s2nn_xp._object)",
        "import again": (
            "for name in [n for n in sys.modules if n.split('.')[0] == 's2nn_xp']:\n"
            "    del sys.modules[name]\n"
            "import s2nn_xp"
        ),
    }[how]
    cell = (
        "class Gained(s2nn_xp._object.S2NN):\n"
        "    def __call__(self, x):\n"
        "        return super().__call__(x) * 2.0\n"
    )
    code = f"""
import importlib, sys, warnings
warnings.simplefilter("error")
import jax, jax.numpy as jnp, numpy as np
import s2nn_xp, s2nn_xp._object

def written_and_read(spike):
    step = jax.jit(lambda spike, x: spike(x).sum())
    x = jnp.array([-1.0, 0.0, 1.0])
    blob = jax.export.export(step)(spike, x).serialize(vjp_order=1)
    restored = jax.export.deserialize(blob)
    assert restored.in_tree == jax.tree.structure(((spike, x), {{}}))
    assert float(restored.call(spike, x)) == float(step(spike, x))

{cell}
earlier = [s2nn_xp._object.S2NN(alpha=jnp.full(3, 4.0)), Gained(alpha=4.0)]
for spike in earlier:
    written_and_read(spike)
{again}
{cell}
for spike in [s2nn_xp._object.S2NN(alpha=jnp.full(3, 4.0)), Gained(alpha=4.0)]:
    written_and_read(spike)
for spike in earlier:  # written still; read back as the newest class
    jax.export.export(jax.jit(spike))(jnp.ones(3)).serialize()
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_jax_export_keeps_the_first_of_classes_made_in_a_function():
    """Classes made by calling one function twice live side by side and may
    differ (a closure's values): the first keeps the serialisation name, and
    its exported blobs read back as it; the second says, once, that its
    objects cannot be serialised (still a pytree)."""
    pytest.importorskip("flatbuffers")  # jax.export's serialisation needs it

    def make(gain):
        class Gained(s2nn_xp.S2NN):
            def __call__(self, x):
                return super().__call__(x) * gain

        return Gained

    step = jax.jit(lambda spike, x: spike(x).sum())
    x = jnp.array([-1.0, 0.0, 1.0])
    first = make(2.0)(alpha=4.0)
    blob = jax.export.export(step)(first, x).serialize()
    with pytest.warns(RuntimeWarning, match=r"cannot serialise objects of this "):
        second = make(3.0)(alpha=4.0)
    assert float(step(second, x)) == 6.0
    restored = jax.export.deserialize(blob)
    assert float(restored.call(first, x)) == 4.0
    with pytest.warns(RuntimeWarning, match="define the class once") as caught:
        make(4.0)(alpha=4.0)  # each class made again: warned at its first object
    assert caught[0].filename == __file__  # the user's line, not the package's


@pytest.mark.parametrize("registry", ["read", "not found"])
def test_a_class_defined_again_takes_its_name_or_says_it_cannot(monkeypatch, registry):
    """A class defined again at a module's top level takes the name its
    earlier definition held, in JAX's private registry; where that is not
    found, a warning says that its objects cannot be serialised (it is
    still a pytree)."""
    import types

    from s2nn_xp import _jax_pytree

    # JAX 0.4.35 imports jax.export with absl, not among its dependencies:
    # without it no class is written, and none says it cannot be
    export = pytest.importorskip("jax.export")
    if not hasattr(export, "register_pytree_node_serialization"):
        pytest.skip("this JAX has no serialisation of pytree nodes")

    if registry == "not found":
        monkeypatch.setattr(
            _jax_pytree, "_private_deserialization_registry", lambda: None
        )
    cells = types.ModuleType(f"s2nn_xp_test_cells_{registry.replace(' ', '_')}")
    monkeypatch.setitem(sys.modules, cells.__name__, cells)
    cell = "import s2nn_xp\nclass Twice(s2nn_xp.S2NN):\n    pass\n"
    exec(compile(cell, "<cell>", "exec"), cells.__dict__)
    cells.Twice()
    exec(compile(cell, "<cell>", "exec"), cells.__dict__)  # run again
    if registry == "read":
        spike = cells.Twice(alpha=jnp.full(2, 3.0))  # no warning
    else:
        with pytest.warns(RuntimeWarning, match=r"cannot serialise .*\.Twice"):
            spike = cells.Twice(alpha=jnp.full(2, 3.0))
    assert jax.tree_util.tree_leaves(spike)[0].shape == (2,)


def test_the_adapters_refuse_each_others_arrays():
    """A JAX array was copied to the host into a tensor (under jit, JAX's
    tracer error); a tensor that requires grad raised torch's own error."""
    torch = pytest.importorskip("torch")
    import s2nn_xp.torch

    with pytest.raises(TypeError, match=r"x is jax.*, not an array of torch"):
        s2nn_xp.torch.s2nn(jnp.ones(2))
    with pytest.raises(TypeError, match=r"x is jax.*Tracer, not an array of torch"):
        jax.jit(s2nn_xp.torch.s2nn)(jnp.ones(2))
    with pytest.raises(TypeError, match=r"x is torch.Tensor, not an array of jax"):
        s2nn_xp.jax.s2nn(torch.ones(2, requires_grad=True))


def test_flax_serialization_writes_and_restores_objects_and_subclasses():
    """flax's ``to_bytes`` raised "can not serialize 'S2NN' object" for a
    parameter tree holding one (the integrations page trains them in such
    trees); ``from_bytes`` restores its children into the target, whose
    static part (epsilon, origin) stands."""
    serialization = pytest.importorskip("flax.serialization")
    params = {
        "w": jnp.ones(3),
        "spike": s2nn_xp.S2NN(alpha=jnp.full(3, 2.0), beta=0.5, epsilon=1e-5),
        "gained": _Gained(jnp.asarray(3.0), alpha=8.0),
    }
    target = {
        "w": jnp.zeros(3),
        "spike": s2nn_xp.S2NN(alpha=jnp.ones(3), epsilon=1e-5),
        "gained": _Gained(jnp.asarray(0.0)),
    }
    restored = serialization.from_bytes(target, serialization.to_bytes(params))
    assert serialization.to_state_dict(params["spike"]) == {
        "alpha": params["spike"].alpha,
        "beta": 0.5,
    }
    assert restored["spike"] == s2nn_xp.S2NN(
        alpha=restored["spike"].alpha, beta=0.5, epsilon=1e-5
    )
    np.testing.assert_array_equal(restored["spike"].alpha, [2.0, 2.0, 2.0])
    assert type(restored["gained"]) is _Gained
    assert (float(restored["gained"].gain), restored["gained"].alpha) == (3.0, 8.0)
    with pytest.raises(ValueError, match=r"holds \['alpha'\], not its fields"):
        serialization.from_state_dict(s2nn_xp.S2NN(), {"alpha": 1.0})
    # flax imported before s2nn_xp too
    code = (
        "from flax import serialization\n"
        "import s2nn_xp\n"
        "saved = serialization.to_bytes([s2nn_xp.S2NN(alpha=2.0)])\n"
        "assert serialization.from_bytes([s2nn_xp.S2NN()], saved)[0].alpha == 2.0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


class _Gained(s2nn_xp.S2NN):
    __slots__ = ("gain",)

    def __init__(self, gain, **parameters):
        super().__init__(**parameters)
        self.gain = gain


def test_flax_nnx_params_holding_arrays_train():
    """nnx finds the ``Param`` objects held in an object given as data and
    trains them, eagerly and compiled; a ``Param`` holding a number, which an
    eager call sees as a number (``nnx.jit`` makes it an array), is refused
    with what to give instead."""
    nnx = pytest.importorskip("flax.nnx")
    x = jnp.array([-0.5, 0.0, 1.0])

    class Layer(nnx.Module):
        def __init__(self):
            alpha, beta = nnx.Param(jnp.asarray(4.0)), nnx.Param(jnp.full(3, 2.0))
            self.spike = nnx.data(s2nn_xp.S2NN(alpha=alpha, beta=beta))

        def __call__(self, x):
            return self.spike(x)

    layer = Layer()
    assert isinstance(layer.spike.alpha, nnx.Param)
    eager = nnx.grad(lambda layer: layer(x).sum())(layer)
    compiled = nnx.jit(nnx.grad(lambda layer: layer(x).sum()))(layer)
    want = jax.grad(lambda a, b: s2nn_xp.s2nn(x, a, b).sum(), argnums=(0, 1))(
        jnp.float32(4.0), jnp.full(3, 2.0)
    )
    for got in (eager, compiled):
        spike = got["spike"]
        np.testing.assert_allclose(spike["alpha"].get_value(), want[0], rtol=1e-6)
        np.testing.assert_allclose(spike["beta"].get_value(), want[1], rtol=1e-6)
    with pytest.raises(TypeError, match=r"gave float, not a JAX array; give it a"):
        s2nn_xp.S2NN(alpha=nnx.Param(4.0))


_FLAX_IMPORTED_WHILE_A_SUBCLASS_REGISTERS = """
import sys, threading, time
import jax, s2nn_xp

class Sub(s2nn_xp.S2NN):
    pass

importer = threading.Thread(target=__import__, args=("flax",), daemon=True)
importer.start()
while "flax.serialization" not in sys.modules:
    time.sleep(0.0005)
maker = threading.Thread(target=Sub, kwargs={"alpha": 2.0}, daemon=True)
maker.start()
maker.join(60)
importer.join(60)
assert not maker.is_alive() and not importer.is_alive(), "deadlock"
from flax import serialization
assert serialization.to_state_dict(Sub(alpha=3.0)) == {"alpha": 3.0, "beta": 1.0}
"""


def test_a_subclass_registered_while_another_thread_imports_flax():
    """A subclass's first object, made while another thread imported flax,
    imported flax.serialization under the registry's lock, which the
    importing thread's hook waited for: both hung."""
    pytest.importorskip("flax")
    code = _FLAX_IMPORTED_WHILE_A_SUBCLASS_REGISTERS
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
