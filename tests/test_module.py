"""``s2nn_xp.torch.S2NN`` after construction: assignment, state dicts, modes, tracing.

Its parameters keep the constructor's rules whatever sets them (assignment as
SpikingJelly's models do it, ``load_state_dict``), and it has SpikingJelly's
surrogate API (``spiking``, ``set_spiking_mode``). The drop-in tests with
SpikingJelly's own objects are in ``test_clients_torch.py``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import multiprocessing
import pickle
import threading
import warnings

import numpy as np
import pytest

from tests._support import assert_same_bits, float8_dtypes, require

torch = require("torch")

from torch import nn  # noqa: E402
from torch.nn.utils import parametrize, prune  # noqa: E402

import s2nn_xp  # noqa: E402
from s2nn_xp.torch import S2NN, s2nn  # noqa: E402

# torch's own deprecation of torch.jit.trace, not this package's.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.trace(_method)?` is deprecated:DeprecationWarning"
)

BAD_VALUES = [
    ("alpha", 0.0),
    ("alpha", -1.0),
    ("alpha", torch.tensor([1.0, -1.0])),
    ("beta", float("nan")),
    ("beta", torch.tensor([float("inf")])),
    ("epsilon", -1e-9),
    ("alpha", True),
    ("alpha", torch.tensor([1j])),
    ("beta", "1"),
]


def _error_of(call):
    with pytest.raises((TypeError, ValueError)) as info:
        call()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_assignment_raises_what_the_constructor_raises(name, value, learnable):
    module = S2NN(alpha=[4.0, 3.0], learnable=learnable)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    constructed = _error_of(lambda: S2NN(**{name: value}, learnable=learnable))
    assigned = _error_of(lambda: setattr(module, name, value))
    assert assigned == constructed
    assert name in assigned[1]
    after = module.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_fixed_module_assignment_stores_as_the_constructor_does():
    spike = S2NN()
    spike.alpha += 1  # SpikeDHS's schedule
    assert spike.alpha == 5.0 and isinstance(spike.alpha, float)
    spike.alpha = torch.tensor([2.0, 3.0])  # a buffer now
    assert dict(spike.named_buffers()).keys() == {"alpha"}
    spike.alpha += 1.0  # in place on the buffer, then checked
    assert spike.alpha.tolist() == [3.0, 4.0]
    spike.alpha = 0.2  # a constant again
    assert spike.alpha == 0.2 and not dict(spike.named_buffers())
    assert spike.state_dict() == {}
    spike.epsilon = 0
    assert spike.epsilon == 0.0


def test_learnable_module_keeps_its_parameter_on_assignment():
    spike = S2NN(alpha=[4.0, 3.0], learnable=True)
    parameter = spike.alpha
    optimizer = torch.optim.SGD(spike.parameters(), lr=0.1)
    spike.alpha = 0.5  # copied in: the optimizer still trains it
    assert spike.alpha is parameter
    assert spike.alpha.tolist() == [0.5, 0.5]
    with torch.no_grad():
        spike.alpha += 0.25
    assert spike.alpha is parameter and spike.alpha.tolist() == [0.75, 0.75]
    spike(torch.full((2,), -0.5)).sum().backward()
    optimizer.step()
    assert spike.alpha is parameter and spike.alpha.grad is not None
    with pytest.raises(ValueError, match="alpha of shape"):
        spike.alpha = [1.0, 2.0, 3.0]
    replacement = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    spike.alpha = replacement  # an nn.Parameter replaces it
    assert spike.alpha is replacement
    assert dict(spike.named_parameters())["alpha"] is replacement
    with pytest.raises(ValueError, match="alpha must be finite"):
        spike.alpha = nn.Parameter(torch.tensor([-1.0]))


def test_a_key_for_a_number_is_unexpected_not_checked():
    """A module that holds alpha as a number loads no alpha: strict=False ignores
    the key, strict=True says it is unexpected (its value was checked first)."""
    state = {"alpha": torch.tensor(-1.0)}
    result = S2NN().load_state_dict(state, strict=False)
    assert result.unexpected_keys == ["alpha"]
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*alpha"):
        S2NN().load_state_dict(state)


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize(("name", "bad"), [("alpha", -1.0), ("beta", 0.0)])
def test_load_state_dict_checks_values(name, bad, learnable):
    module = nn.Sequential(
        nn.Linear(2, 2), S2NN(alpha=[4.0, 3.0], beta=[1.0, 1.0], learnable=learnable)
    )
    state = module.state_dict()
    good = {k: v.clone() for k, v in state.items()}
    state[f"1.{name}"] = torch.full((2,), bad)
    # One of torch's loading errors, naming the key (a model holds many of
    # these modules): raised inside the load, it skipped the hooks of the
    # modules above (FSDP's).
    refused = rf"Error\(s\) in loading.*\n\s*refused 1\.{name}: {name} must be finite"
    with pytest.raises(RuntimeError, match=refused):
        module.load_state_dict(state)
    with pytest.raises(RuntimeError, match=refused):
        module.load_state_dict(state, assign=True)
    assert torch.equal(module[1].alpha.detach(), good["1.alpha"])
    good["1.alpha"] = torch.tensor([2.0, 2.5])
    module.load_state_dict(good)
    assert module[1].alpha.tolist() == [2.0, 2.5]


@pytest.mark.parametrize("learnable", [False, True])
def test_load_state_dict_checks_values_in_the_dtype_they_are_stored_in(learnable):
    """Loaded into a float16 module they overflow; assigned, they stay float32."""
    module = S2NN(alpha=[4.0, 3.0], learnable=learnable).half()
    state = {"alpha": torch.tensor([1e5, 2.0]), "beta": torch.tensor(1.0)}
    with pytest.raises(
        RuntimeError, match=r"alpha has values that overflow torch\.float16"
    ):
        module.load_state_dict(state, strict=False)
    assert module.alpha.tolist() == [4.0, 3.0]
    module.load_state_dict(state, strict=False, assign=True)
    assert module.alpha.dtype == torch.float32
    assert module.alpha.tolist() == [1e5, 2.0]
    assert isinstance(module.alpha, nn.Parameter) is learnable


def test_spiking_mode_is_the_opposite_of_origin():
    spike = S2NN(alpha=2.0, beta=0.5)
    x = torch.linspace(-2.0, 2.0, 9)
    assert spike.spiking is True
    spike.set_spiking_mode(False)
    assert spike.origin is True and spike.spiking is False
    torch.testing.assert_close(spike(x), s2nn(x, 2.0, 0.5, origin=True))
    spike.spiking = True
    assert spike.origin is False
    torch.testing.assert_close(spike(x), s2nn(x))
    assert S2NN(spiking=False).origin is True
    assert S2NN(spiking=True).origin is False
    assert S2NN(origin=True, spiking=False).origin is True
    assert S2NN(origin=False, spiking=True).origin is False
    assert S2NN(origin=None).origin is False
    with pytest.raises(ValueError, match="spiking=True contradicts origin=True"):
        S2NN(origin=True, spiking=True)
    with pytest.raises(ValueError, match="spiking=False contradicts origin=False"):
        S2NN(origin=False, spiking=False)
    with pytest.raises(TypeError, match="origin must be a bool"):
        S2NN(origin="no", spiking=False)
    with pytest.raises(TypeError, match="spiking must be a bool"):
        spike.set_spiking_mode(1)
    with pytest.raises(TypeError, match="spiking must be a bool"):
        S2NN(spiking="no")


@pytest.mark.parametrize(
    "value",
    [True, False, "no", nn.Parameter(torch.ones(())), nn.Identity()],
    ids=["True", "False", "str", "Parameter", "Module"],
)
@pytest.mark.parametrize("learnable", [False, True])
def test_learnable_is_fixed_when_the_module_is_built(learnable, value):
    # A plain attribute before: set after the build, it changed how later
    # assignments were stored (alpha a parameter, beta still a number) and
    # took any value, silently.
    spike = S2NN(alpha=[4.0, 2.0], learnable=learnable)
    stored = dict(spike.named_parameters()), dict(spike.named_buffers())
    with pytest.raises(AttributeError, match="learnable is fixed when the module"):
        spike.learnable = value
    assert spike.learnable is learnable
    assert (dict(spike.named_parameters()), dict(spike.named_buffers())) == stored
    assert dict(spike.named_children()) == {}
    spike.beta = 0.5
    assert isinstance(spike.beta, nn.Parameter) is learnable


def test_a_subclass_setter_of_learnable_is_called():
    """The refusal is the class's read-only property's: a subclass that gives
    ``learnable`` a setter of its own has it called (as before the property
    lost its refusing setter, for type checkers)."""

    class Switchable(S2NN):
        @property
        def learnable(self) -> bool:
            return self._learnable

        @learnable.setter
        def learnable(self, value: bool) -> None:
            self._learnable = value

    spike = Switchable()
    spike.learnable = True
    assert spike.learnable is True

    class Flag:  # a data descriptor of another kind than a property
        def __get__(self, module, owner=None):
            return module.__dict__.get("flag", False)

        def __set__(self, module, value):
            module.__dict__["flag"] = value

    class Flagged(S2NN):
        learnable = Flag()

    flagged = Flagged()
    flagged.learnable = True
    assert flagged.learnable is True


def test_a_module_pickled_with_learnable_as_an_attribute_loads():
    spike = S2NN(alpha=[4.0, 2.0], learnable=True)
    state = dict(spike.__dict__)
    state["learnable"] = state.pop("_learnable")  # as versions before kept it
    loaded = S2NN.__new__(S2NN)
    loaded.__setstate__(state)
    assert loaded.learnable is True
    assert copy.deepcopy(loaded).learnable is True


@pytest.mark.parametrize("learnable", [False, True])
def test_a_module_of_host_values_goes_to_a_spawned_process(learnable):
    """Its pickled constructor values were temporary tensors, which a pickler
    for another process moves to shared memory and which were freed before
    the child read them: it died unpickling the module (a DataLoader's
    workers, Hogwild training with multiprocessing's spawn)."""
    module = S2NN(alpha=[3.0, 2.0], beta=np.array([1.0, 2.0]), learnable=learnable)
    process = multiprocessing.get_context("spawn").Process(target=repr, args=(module,))
    process.start()
    process.join(timeout=300)
    if process.is_alive():  # stuck: not left behind
        process.kill()
    assert process.exitcode == 0
    # pickled again (the tensors made once), its values come back
    copied = pickle.loads(pickle.dumps(pickle.loads(pickle.dumps(module))))
    copied.reset_parameters()
    np.testing.assert_array_equal(copied.beta.detach(), [1.0, 2.0])


def test_a_copy_keeps_its_values_when_the_original_goes_to_another_process():
    """copy.copy took the original's kept tensors as views; pickling the
    original for another process moved their memory to shared memory, and
    once the original was gone the copy read freed memory (junk, a crash)."""
    import gc
    from multiprocessing.reduction import ForkingPickler

    import torch.multiprocessing  # noqa: F401 - torch's reductions for tensors

    size = 1 << 20  # freed by munmap: reused at once
    module = S2NN(alpha=np.full(size, 3.0), beta=np.full(size, 2.0))
    twin = copy.copy(module)
    ForkingPickler.dumps(module)  # what a spawned process's start() does
    del module
    gc.collect()
    junk = [np.full(size, 5.0) for _ in range(4)]
    twin.reset_parameters()
    assert float(twin.beta.min()) == float(twin.beta.max()) == 2.0
    del junk


@pytest.mark.parametrize("learnable", [False, True])
def test_a_shallow_copy_holds_the_same_tensors_in_stores_of_its_own(learnable):
    """copy.copy shared nn.Module's dicts with the original: a number
    assigned to the copy (a constant, in neither dict) or a parameter
    deleted from it took the original's out of them too."""
    module = S2NN(alpha=torch.full((3,), 4.0), learnable=learnable)
    twin = copy.copy(module)
    assert twin.alpha is module.alpha  # shallow: the same tensor
    twin.alpha = 2.0
    if learnable:  # copied into the parameter both hold
        assert torch.equal(module.alpha, torch.full((3,), 2.0))
    else:  # the copy's constant; the original keeps its buffer
        assert twin.alpha == 2.0
        assert torch.equal(module.alpha, torch.full((3,), 4.0))
        assert list(module.state_dict()) == ["alpha"]
    del twin.beta
    assert module.beta == 1.0
    assert [name for name, _ in module.named_parameters()] == (
        ["alpha", "beta"] if learnable else []
    )
    module(torch.tensor([[-0.5, 0.0, 0.5]]))  # it has its alpha and beta
    # nor do the copy's hooks and submodules reach the original: pruning the
    # copy (a hook, and tensors of its own) broke the original's calls
    twin = copy.copy(module)
    calls = []
    twin.register_forward_hook(lambda *args: calls.append("twin"))
    twin.extra = nn.Identity()
    if learnable:
        prune.l1_unstructured(twin, "alpha", amount=1)
    module(torch.tensor([[-0.5, 0.0, 0.5]]))
    assert calls == [] and "extra" not in dict(module.named_children())
    twin(torch.tensor([[-0.5, 0.0, 0.5]]))
    assert calls == ["twin"]


def test_a_module_built_through_its_type_argument_loads_with_weights_only():
    """S2NN[torch.Tensor](...) keeps the typing alias it was called as
    (__orig_class__), which torch.load(weights_only=True) refused
    (operator.getitem) with the class allow-listed."""
    spike = S2NN[torch.Tensor](alpha=[4.0, 2.0], learnable=True)
    buffer = io.BytesIO()
    torch.save(spike, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([S2NN]):
        loaded = torch.load(buffer, weights_only=True)
    assert torch.equal(loaded.alpha, spike.alpha)


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize(
    "alpha",
    [[4.0, 2.0], np.array([4, 2]), np.array(4.0), 4.0, torch.tensor([4.0, 2.0])],
    ids=["list", "numpy-int", "numpy-0d", "number", "tensor"],
)
def test_a_saved_module_loads_with_weights_only_and_resets(alpha, learnable):
    """One built from a list or a NumPy array kept NumPy arrays for
    reset_parameters: torch.load(weights_only=True) refused it even with the
    class allow-listed (numpy._core.multiarray._reconstruct)."""
    spike = S2NN(alpha=alpha, beta=[0.5, 0.25], learnable=learnable)
    buffer = io.BytesIO()
    torch.save(spike, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([S2NN]):
        loaded = torch.load(buffer, weights_only=True)
    for name in ("alpha", "beta"):
        value = getattr(spike, name)
        other = 8.0 if isinstance(value, float) else torch.full_like(value, 8.0)
        setattr(loaded, name, other)
    loaded.reset_parameters()
    for name in ("alpha", "beta", "epsilon"):
        want, got = getattr(spike, name), getattr(loaded, name)
        assert type(got) is type(want)
        if isinstance(want, torch.Tensor):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        else:
            assert got == want


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize(
    "alpha",
    [[4.0, 2.0], np.array([4, 2]), torch.tensor([4.0, 2.0])],
    ids=["list", "numpy-int", "tensor"],
)
def test_a_saved_model_loads_on_the_meta_device(alpha, learnable):
    """``torch.load(map_location="meta")`` (to inspect a checkpoint, or to
    fill it after ``to_empty``) failed unpickling the kept constructor values
    of lists and arrays (no values to read), and reset_parameters raised
    torch's "Cannot copy out of meta tensor" for a tensor's: none are left to
    reset to, which reset_parameters says, as for a tensor given on meta."""
    model = nn.Sequential(nn.Linear(2, 2), S2NN(alpha=alpha, learnable=learnable))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([S2NN, nn.Linear, nn.Sequential]):
        loaded = torch.load(buffer, map_location="meta", weights_only=True)
    assert loaded[1].alpha.device.type == "meta"
    loaded.to_empty(device="cpu")
    with pytest.raises(ValueError, match=r"alpha's constructor values were not loaded"):
        loaded[1].reset_parameters()
    buffer = io.BytesIO()  # saved again, loaded where values are: none still
    torch.save(loaded, buffer)
    buffer.seek(0)
    with torch.serialization.safe_globals([S2NN, nn.Linear, nn.Sequential]):
        again = torch.load(buffer, weights_only=True)
    with pytest.raises(ValueError, match="map_location='cpu'"):
        again[1].reset_parameters()
    loaded[1].alpha = [4.0, 2.0]  # assigned, as the error says
    want = model[1].alpha
    torch.testing.assert_close(loaded[1].alpha, want, rtol=0, atol=0, check_dtype=False)


def test_a_module_pickled_with_numpy_constructor_values_loads_and_resets():
    """Earlier versions pickled them as float64 NumPy arrays."""
    spike = S2NN(alpha=[4.0, 2.0])
    state = dict(spike.__dict__)
    assert isinstance(state["_initial_values"]["alpha"], np.ndarray)
    loaded = S2NN.__new__(S2NN)
    loaded.__setstate__(state)
    loaded.alpha = [8.0, 8.0]
    loaded.reset_parameters()
    np.testing.assert_array_equal(loaded.alpha.numpy(), [4.0, 2.0])
    copied = copy.deepcopy(loaded)
    copied.alpha = [8.0, 8.0]
    copied.reset_parameters()
    np.testing.assert_array_equal(copied.alpha.numpy(), [4.0, 2.0])


def test_a_compiled_module_copies_and_pickles_as_nn_modules_do():
    """S2NN's __getstate__ kept nn.Module.compile()'s bound call, which
    nn.Module's drops: a deep copy ran the original's parameters, silently,
    and pickling failed."""
    spike = S2NN(alpha=[4.0, 2.0], origin=True)
    spike.compile()
    copied = copy.deepcopy(spike)
    copied.alpha = [10.0, 10.0]
    x = torch.tensor([-0.5, -0.5])
    torch.testing.assert_close(copied(x), S2NN(alpha=[10.0, 10.0], origin=True)(x))
    assert "_compiled_call_impl" not in pickle.loads(pickle.dumps(spike)).__dict__


def test_spiking_and_primitive_functions_as_spikingjelly_names_them():
    x = torch.linspace(-2.0, 2.0, 9, requires_grad=True)
    torch.testing.assert_close(S2NN.spiking_function(x, 2.0, 0.5), s2nn(x))
    torch.testing.assert_close(
        S2NN.primitive_function(x, 2.0, 0.5), s2nn(x, 2.0, 0.5, origin=True)
    )
    (grad,) = torch.autograd.grad(S2NN.spiking_function(x, 2.0, 0.5).sum(), x)
    (origin_grad,) = torch.autograd.grad(S2NN.primitive_function(x, 2.0, 0.5).sum(), x)
    torch.testing.assert_close(grad, origin_grad)


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize(
    "make_x",
    [
        lambda values: values.astype(np.float32),
        lambda values: values.tolist(),
        lambda values: torch.tensor(values, dtype=torch.float32),
    ],
    ids=["numpy", "list", "tensor"],
)
def test_surrogate_fun_and_grad_take_what_the_module_takes(make_x, learnable):
    """Host data gave NumPy arrays (the core functions computed), or raised
    mixing a NumPy x with the learnable module's parameters."""
    values = np.array([[-2.0, -0.5, 0.0], [0.5, 1.0, np.nan]])
    module = S2NN(alpha=[2.0, 3.0, 4.0], beta=0.5, epsilon=1e-5, learnable=learnable)
    x = make_x(values)
    called = module(x)
    for got, want in [
        (module.surrogate_fun(x), s2nn_xp.origin(values, [2.0, 3.0, 4.0], 0.5, 1e-5)),
        (module.surrogate_grad(x), s2nn_xp.gradient(values, [2.0, 3.0, 4.0], 0.5)),
    ]:
        assert isinstance(got, torch.Tensor)
        assert (got.dtype, got.shape) == (called.dtype, called.shape)
        rtol = 1e-15 if got.dtype == torch.float64 else 1e-6
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=rtol)
    if learnable:  # differentiable as ordinary operations, in the parameters too
        (d_alpha,) = torch.autograd.grad(module.surrogate_fun(x).nansum(), module.alpha)
        (want,) = torch.autograd.grad(module(x).nansum(), module.alpha)
        torch.testing.assert_close(d_alpha, want, equal_nan=True)


def test_assigned_and_built_inside_fullgraph_compiled_code():
    """The check for FSDP's assignments read the caller's frame, which Dynamo
    cannot trace: every assignment under fullgraph failed (a model setting
    its spike's alpha in forward, as SpikeDHS-style models do; a module built
    in the compiled function), and strict torch.export of such a model."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.spike = S2NN()

        def forward(self, x):
            self.spike.alpha = 2.0
            return self.spike(x)

    torch._dynamo.reset()
    try:
        for function in (Net(), lambda v: S2NN(alpha=2.0)(v)):
            x = torch.linspace(-2.0, 2.0, 9, requires_grad=True)
            compiled = torch.compile(function, fullgraph=True, backend="aot_eager")
            (got,) = torch.autograd.grad(compiled(x).sum(), x)
            (want,) = torch.autograd.grad(s2nn(x, 2.0).sum(), x)
            torch.testing.assert_close(got, want, rtol=0, atol=0)

        class Build(nn.Module):
            def forward(self, v):
                return S2NN(alpha=2.0)(v)

        x = torch.linspace(-2.0, 2.0, 9)
        exported = torch.export.export(Build(), (x,), strict=True)
        torch.testing.assert_close(exported.module()(x), s2nn(x))
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("origin", [False, True], ids=["spike", "origin"])
@pytest.mark.parametrize("learnable", [False, True])
def test_jit_trace_of_a_model_prints_no_tracer_warning(learnable, origin):
    """Origin mode with tensor parameters clipped with a tensor bound through
    array-api-compat's clip, which made a tensor of the number bound."""
    spike = S2NN(alpha=[4.0] * 4, learnable=True) if learnable else S2NN()
    spike.origin = origin
    model = nn.Sequential(nn.Linear(3, 4), spike)
    x = torch.randn(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, x)
    other = torch.randn(7, 3)
    torch.testing.assert_close(traced(other), model(other))


# --- torch's own machinery around the module -------------------------------------


def test_data_parallel_replicas_pass_gradients_to_the_original_parameters():
    """``replicate`` sets a replica's parameters to tensors computed from the originals.

    The module stored them as new leaves (checked, detached copies), so the
    originals got no gradient. CPU replicas stand in for the GPUs here.
    """
    module = S2NN(alpha=torch.full((3,), 4.0), beta=[1.0, 2.0, 0.5], learnable=True)
    replica = module._replicate_for_data_parallel()
    for name in ("alpha", "beta"):
        setattr(replica, name, getattr(module, name) * 1)  # as replicate() does
    x = torch.tensor([[-0.5, -1.0, 0.5]])
    replica(x).sum().backward()
    want = torch.autograd.grad(module(x).sum(), (module.alpha, module.beta))
    torch.testing.assert_close((module.alpha.grad, module.beta.grad), want)
    assert not list(replica.parameters())  # the originals' alone


def test_per_sample_parameter_gradients_through_functional_call():
    """The user guide's ``vmap(grad(...))`` of ``functional_call``: each
    sample's gradients in alpha and beta are those of a backward pass of that
    sample alone, and the module's own parameters get none."""
    module = S2NN(alpha=torch.full((3,), 4.0), beta=[1.0, 2.0, 0.5], learnable=True)
    params = dict(module.named_parameters())
    samples = torch.tensor([[-0.5, 0.0, 1.0], [-2.0, -0.25, 3.0], [0.5, -1.5, -1.0]])
    weights = torch.tensor([0.5, -2.0, 3.0])

    def loss(params, x):
        return (torch.func.functional_call(module, params, (x,)) * weights).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(
        params, samples
    )
    for i, x in enumerate(samples):
        total = (module(x) * weights).sum()
        want = torch.autograd.grad(total, (module.alpha, module.beta))
        torch.testing.assert_close(
            (per_sample["alpha"][i], per_sample["beta"][i]), want
        )
    assert per_sample["alpha"].abs().sum() > 0 and per_sample["beta"].abs().sum() > 0
    assert module.alpha.grad is None and module.beta.grad is None


@pytest.mark.parametrize("wrapper", ["spectral_norm", "weight_norm", "prune"])
def test_hook_based_wrappers_train_the_tensors_they_hold(wrapper):
    """spectral_norm, weight_norm and prune take alpha out and set it before each call.

    The tensor they set was made a new leaf parameter of the module, which
    took the gradient: theirs (alpha_orig; alpha_g, alpha_v) got none, and
    nothing learned, silently.
    """
    module = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the old weight_norm
        if wrapper == "prune":
            prune.identity(module, "alpha")
        else:
            getattr(torch.nn.utils, wrapper)(module, name="alpha")
    names = dict(module.named_parameters())
    assert "alpha" not in names and "beta" in names
    before = module.alpha.detach().clone()
    optimizer = torch.optim.SGD(module.parameters(), lr=1.0)
    module(torch.tensor([-0.5, -0.25, 0.5])).sum().backward()
    assert all(p.grad is not None for p in module.parameters())
    optimizer.step()
    module(torch.zeros(3))  # the wrapper sets alpha from what it holds
    assert not torch.equal(module.alpha.detach(), before)
    # Assigned while the wrapper holds it: overwritten at the next call, as
    # nn.Linear's weight is (it became a parameter that took the gradient,
    # or broke the call).
    for value in (2.0, [2.0, 2.0, 2.0], torch.full((3,), 2.0)):
        module.alpha = value
        optimizer.zero_grad()
        module(torch.tensor([-0.5, -0.25, 0.5])).sum().backward()
        assert "alpha" not in dict(module.named_parameters())
        assert all(p.grad is not None for p in module.parameters())
    with pytest.raises(ValueError, match=r"alpha is computed before every call"):
        module.reset_parameters()
    with torch.no_grad():  # nothing checked at a call: compiles whole
        compiled = torch.compile(module, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(torch.zeros(3)), module(torch.zeros(3)))


def test_wrappers_applied_without_grad_and_removed_after_pruning():
    """weight_norm under no_grad left a stray parameter alpha (its tensor had no
    grad_fn); prune.remove of a pruned alpha failed half-way (its zeros were
    checked), leaving a module without alpha; repr failed on a number
    assigned meanwhile."""
    module = S2NN(alpha=[4.0, 2.0, 3.0], learnable=True, origin=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.nn.utils.weight_norm(module, "alpha", dim=0)
    assert dict(module.named_parameters()).keys() == {"beta", "alpha_g", "alpha_v"}
    pruned = S2NN(alpha=[4.0, 2.0, 3.0], learnable=True)
    prune.l1_unstructured(pruned, "alpha", amount=1)
    pruned.alpha = 2
    assert "alpha=2" in repr(pruned)
    prune.remove(pruned, "alpha")  # the pruned values stay the user's
    assert isinstance(pruned.alpha, nn.Parameter)
    assert pruned.alpha.tolist() == [4.0, 0.0, 3.0]


def test_a_deleted_parameter_takes_values_by_the_constructors_rules_again():
    """Not a wrapper's: a tensor assigned is a parameter (learnable) or a buffer,
    checked (it was stored as a plain attribute, unchecked, for a while)."""
    learned = S2NN(learnable=True)
    del learned.alpha
    learned.alpha = torch.tensor(2.0)
    assert dict(learned.named_parameters()).keys() == {"alpha", "beta"}
    with pytest.raises(ValueError, match="alpha must be finite"):
        learned.alpha = torch.tensor(-1.0, requires_grad=True)
    del learned.alpha
    with pytest.raises(ValueError, match="alpha must be finite"):  # computed too
        learned.alpha = torch.tensor(-1.0, requires_grad=True) * 1
    fixed = S2NN()
    del fixed.beta
    fixed.beta = torch.tensor([1.0, 2.0])
    assert dict(fixed.named_buffers()).keys() == {"beta"}
    del fixed.epsilon
    with pytest.raises(ValueError, match="epsilon must be finite"):
        fixed.epsilon = torch.tensor(-5.0)


def test_a_parameter_given_to_a_module_that_is_not_learnable_is_not_written():
    """A value assigned replaces it (a constant, a buffer), as the docstring says.

    It was copied into the caller's parameter, which other modules share.
    """
    shared = nn.Parameter(torch.tensor([2.0, 3.0]))
    first, second = S2NN(alpha=shared), S2NN(alpha=shared)
    first.alpha = 3.0
    assert first.alpha == 3.0 and not dict(first.named_parameters())
    first.beta = torch.tensor([1.5, 1.5])
    second.alpha = torch.tensor([0.5, 0.5])
    assert dict(second.named_buffers()).keys() == {"alpha"}
    assert shared.tolist() == [2.0, 3.0] and second.alpha.tolist() == [0.5, 0.5]


def test_a_parametrization_receives_assigned_values():
    """``torch.nn.utils.parametrize``: assignment goes to its right_inverse."""

    class Positive(nn.Module):
        def forward(self, raw):
            return nn.functional.softplus(raw)

        def right_inverse(self, value):
            return torch.log(torch.expm1(value))

    module = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
    nn.utils.parametrize.register_parametrization(module, "alpha", Positive())
    module.alpha = torch.full((3,), 2.0)
    torch.testing.assert_close(module.alpha, torch.full((3,), 2.0))
    module(torch.tensor([[-0.5, -1.0, 0.5]])).sum().backward()
    raw = module.parametrizations.alpha.original
    assert raw.grad is not None and raw.grad[:2].abs().min() > 0


@pytest.fixture
def swap_on_conversion():
    """torch's future rule: parameters are swapped in place (swap_tensors)."""
    before = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    yield
    torch.__future__.set_swap_module_params_on_conversion(before)


@pytest.mark.usefixtures("swap_on_conversion")
def test_assignment_through_a_parametrization_when_parameters_are_swapped():
    """The module held the parameter while it was replaced: swap_tensors refused
    ("Expected use_count ... make sure you are not holding references")."""
    module = S2NN(beta=torch.ones(3), learnable=True)
    parametrize.register_parametrization(module, "beta", _Softplus())
    module.beta = 2.0
    torch.testing.assert_close(module.beta.detach(), torch.full((3,), 2.0))
    module.reset_parameters()
    torch.testing.assert_close(module.beta.detach(), torch.ones(3))
    module.double()
    assert module.beta.dtype == torch.float64


def test_constructed_on_the_meta_device():
    with torch.device("meta"):
        module = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
    assert module.alpha.device.type == "meta"


def test_assignment_through_a_parametrization_is_checked():
    """The value assigned is what alpha stands for: the constructor's rules apply."""

    class Identity(nn.Module):
        def forward(self, raw):
            return raw.abs()

        def right_inverse(self, value):
            return value

    module = S2NN(alpha=[1.0, 2.0], learnable=True)
    nn.utils.parametrize.register_parametrization(module, "alpha", Identity())
    for bad in ([0.0, 2.0], [float("inf"), 2.0]):
        with pytest.raises(ValueError, match="alpha must be finite and > 0"):
            module.alpha = torch.tensor(bad)


class _Positive(nn.Module):  # the integrations page's
    floor = 1e-3

    def forward(self, raw):
        return nn.functional.softplus(raw) + self.floor

    def right_inverse(self, value):
        above = value - self.floor
        return above + torch.log(-torch.expm1(-above))


class _Split(nn.Module):  # two tensors (original0, original1); NaN below 1e-3
    def forward(self, scale, raw):
        return scale * raw

    def right_inverse(self, value):
        return torch.where(value < 1e-3, torch.nan, 1.0), value


@pytest.mark.parametrize("parametrization", [_Positive, _Split])
def test_a_value_its_parametrization_cannot_invert_is_refused_and_undone(
    parametrization,
):
    """The value assigned passed the check, and what right_inverse stored came
    back NaN (below the floor of the integrations page's Positive): stored,
    unchecked, and the module computed with NaN."""
    module = S2NN(alpha=[4.0, 4.0], learnable=True)
    nn.utils.parametrize.register_parametrization(module, "alpha", parametrization())
    with pytest.raises(ValueError, match=r"^alpha assigned through its param.*> 0"):
        module.alpha = 0.0005
    torch.testing.assert_close(module.alpha.detach(), torch.full((2,), 4.0))
    module.alpha = 2.0
    torch.testing.assert_close(module.alpha.detach(), torch.full((2,), 2.0))


@pytest.mark.parametrize(
    ("value", "match"),
    [(1e-50, "(are|is) 0 in"), (1e39, r"overflows? (torch\.)?float32")],
)
def test_every_way_into_a_learnable_tensor_checks_its_dtype(value, match):
    """Construction, assignment (a copy into the parameter) and load_state_dict."""
    with pytest.raises(ValueError, match=match):
        S2NN(alpha=value, learnable=True)
    module = S2NN(alpha=[1.0, 2.0], learnable=True)
    with pytest.raises(ValueError, match=match):
        module.alpha = value
    state = {"alpha": torch.tensor([value, 1.0], dtype=torch.float64)}
    with pytest.raises(RuntimeError, match=match):
        module.load_state_dict({**module.state_dict(), **state})
    torch.testing.assert_close(module.alpha.detach(), torch.tensor([1.0, 2.0]))


def test_a_number_is_stored_in_a_learnable_tensor_rounded_once():
    """Into a float64 module: 0.1 is float64's 0.1, not float32's in float64."""
    module = S2NN(alpha=[4.0, 4.0], beta=[1.0, 1.0], learnable=True).double()
    module.alpha = 0.1
    assert module.alpha.dtype == torch.float64
    assert module.alpha.tolist() == [0.1, 0.1]
    with pytest.raises(ValueError, match="which a module's tensors must fit"):
        module.beta = 1e-300  # 0 in float32, not in float64: as a list of it
    assert module.beta.tolist() == [1.0, 1.0]
    half = S2NN(alpha=[4.0, 4.0], learnable=True).half()
    half.alpha = 0.1  # rounded once, into float16
    assert half.alpha.tolist() == [torch.tensor(0.1, dtype=torch.float16).item()] * 2


@pytest.mark.parametrize("default", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "value"), [("alpha", 1e39), ("beta", 1e-46)])
def test_a_learnable_number_must_fit_float32_as_a_list_must(name, value, default):
    """Whatever the default dtype: a number becomes a module tensor there."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(default)
    try:
        for given in (value, [value]):
            with pytest.raises(ValueError, match="which a module's tensors must fit"):
                S2NN(**{name: given}, learnable=True)
        module = S2NN(alpha=[4.0], beta=[1.0], learnable=True)
        with pytest.raises(ValueError, match="which a module's tensors must fit"):
            setattr(module, name, value)
        assert getattr(S2NN(**{name: value}), name) == value  # not learnable: a number
    finally:
        torch.set_default_dtype(saved)


def test_a_module_built_inside_a_torch_func_transform():
    """Its tensors are made there (functorch wraps them): their values are read."""
    from torch.func import grad, jvp, vmap

    x = torch.tensor([-1.0, 0.0, 1.0])
    alphas = torch.tensor([2.0, 3.0, 4.0])
    outside = S2NN(alpha=alphas, learnable=True)
    want = torch.autograd.grad(outside(x.requires_grad_()).sum(), x)[0]
    x = x.detach()
    for build in (
        lambda: S2NN(alpha=torch.tensor([2.0, 3.0, 4.0]), learnable=True),
        lambda: S2NN(alpha=[2.0, 3.0, 4.0], learnable=True),
        lambda: S2NN(alpha=torch.tensor([2.0, 3.0, 4.0])),
    ):
        got = grad(lambda v, build=build: build()(v).sum())(x)
        assert_same_bits(got, want)
        _, tangent = jvp(lambda v, build=build: build()(v), (x,), (torch.ones(3),))
        assert_same_bits(tangent, want)
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        grad(lambda v: S2NN(alpha=torch.tensor([-2.0, 3.0, 4.0]))(v).sum())(x)
    huge = torch.tensor([1e39], dtype=torch.float64)  # its clone is made inside
    with pytest.raises(ValueError, match="which a module's tensors must fit"):
        grad(lambda v: S2NN(alpha=huge.clone())(v).sum())(x)
    # vmap batches a tensor made from its input: each sample's values, no others
    rows = torch.stack([alphas, 2 * alphas])
    batched = vmap(lambda a: S2NN(alpha=a, origin=True)(x))(rows)
    for row, alpha in zip(batched, rows, strict=True):
        assert_same_bits(row, S2NN(alpha=alpha, origin=True)(x))
    # its repr has no one value to print (a 0-d batched alpha raised)
    shown = vmap(lambda a: torch.tensor(len(repr(S2NN(alpha=a)))))(alphas)
    assert shown.shape == (3,)


@pytest.mark.parametrize("learnable", [True, False])
@pytest.mark.parametrize(
    ("name", "value", "convert", "match"),
    [
        ("alpha", 1e5, lambda m: m.half(), r"overflow torch\.float16"),
        ("beta", 1e-10, lambda m: m.to(torch.float16), r"are 0 in torch\.float16"),
        ("alpha", 7e4, lambda m: m.to("cpu", torch.half), r"overflow torch\.float16"),
        ("epsilon", 1e-50, lambda m: m.bfloat16(), None),  # epsilon may be 0
    ],
)
def test_a_dtype_conversion_that_breaks_a_value_is_refused(
    name, value, convert, match, learnable
):
    """``.half()`` and friends check what they store; a refusal changes nothing."""
    module = S2NN(learnable=learnable, **{name: torch.full((3,), value)})
    before = getattr(module, name).detach().clone()
    if match is None:
        convert(module)
        assert getattr(module, name).dtype == torch.bfloat16
        return
    with pytest.raises(ValueError, match=match):
        convert(module)
    after = getattr(module, name)
    assert_same_bits(after.detach(), before)
    assert isinstance(after, nn.Parameter) == (learnable and name != "epsilon")
    # Conversions that keep each value, and to_empty (no values), still work.
    assert module.double().to(device="meta").to_empty(device="cpu") is module


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_a_tensor_that_requires_grad_given_to_a_fixed_module_warns(name):
    """Its copy learns nothing; a learnable module or an nn.Parameter learns."""
    value = torch.tensor([2.0, 3.0], requires_grad=True)
    with pytest.warns(UserWarning, match=f"{name} requires grad") as record:
        module = S2NN(**{name: value})
    assert record[0].filename == __file__  # the user's line
    assert not getattr(module, name).requires_grad
    with pytest.warns(UserWarning, match=f"{name} requires grad") as record:
        setattr(S2NN(), name, value)
    assert record[0].filename == __file__
    fixed = S2NN(**{name: value.detach()})
    with pytest.warns(UserWarning, match=f"{name} requires grad") as record:
        fixed.load_state_dict({name: value}, assign=True)  # inside torch
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        S2NN(**{name: value.detach()})
        if name != "epsilon":  # a Parameter is shared and learns; epsilon never
            S2NN(**{name: nn.Parameter(value.detach())})
            S2NN(learnable=True, **{name: value})
    if name == "epsilon":
        with pytest.warns(UserWarning, match="epsilon requires grad, but it is a"):
            S2NN(epsilon=nn.Parameter(value.detach()))


FLOAT8 = float8_dtypes(torch)


@pytest.mark.parametrize("dtype", FLOAT8, ids=str)
def test_float8_tensors_go_in_every_way_as_into_the_functions(dtype):
    """NumPy has no float8: their values are checked in float32 (exact there)."""
    x = torch.tensor([-1.0, 0.0, 1.0])
    two = torch.tensor([2.0]).to(dtype)
    module = S2NN(alpha=two)
    assert module.alpha.dtype == dtype
    torch.testing.assert_close(module.surrogate_grad(x), s2nn_xp.torch.gradient(x, two))
    assert S2NN(learnable=True).to(dtype).alpha.dtype == dtype
    learnable = S2NN(learnable=True)
    learnable.load_state_dict({"alpha": two[0], "beta": torch.tensor(1.0)})
    assert learnable.alpha.item() == 2.0
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        S2NN(alpha=torch.tensor([-2.0]).to(dtype))


@pytest.mark.skipif(not hasattr(torch, "float8_e4m3fn"), reason="no float8")
def test_a_value_beyond_a_saturating_float8_is_refused():
    """float8_e4m3fn has no inf: torch stores 1e5 as 448, silently."""
    f8 = torch.float8_e4m3fn
    with pytest.raises(ValueError, match=r"overflow torch\.float8_e4m3fn"):
        S2NN(alpha=1e5, learnable=True).to(f8)
    module = S2NN(learnable=True).to(f8)
    with pytest.raises(ValueError, match="overflow"):
        module.alpha = 1e5
    with pytest.raises(RuntimeError, match="overflow"):
        module.load_state_dict({"alpha": torch.tensor(1e5), "beta": torch.tensor(1.0)})
    with pytest.raises(RuntimeError, match="overflow"):
        S2NN(alpha=torch.tensor([4.0])).to(f8).load_state_dict(
            {"alpha": torch.tensor([464.0])}
        )
    module.alpha = 460.0  # rounds to 448, the largest: no overflow
    assert module.alpha.item() == 448.0


@pytest.mark.parametrize("learnable", [True, False])
def test_complex_tensors_and_conversions_are_refused_naming_the_parameter(learnable):
    with pytest.raises(TypeError, match="alpha must have a real numeric dtype"):
        S2NN(alpha=torch.ones(2, dtype=torch.complex64), learnable=learnable)
    module = S2NN(alpha=torch.ones(2), learnable=learnable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's, on complex modules
        with pytest.raises(TypeError, match="alpha must have a real numeric dtype"):
            module.to(torch.complex64)
    assert module.alpha.dtype == torch.float32


def test_a_learnable_value_that_rounds_to_zero_is_refused():
    """1e-50 is > 0, but 0 in the float32 a learnable parameter is stored in."""
    with pytest.raises(ValueError, match=r"alpha=1e-50 is 0 in float32"):
        S2NN(alpha=1e-50, learnable=True)
    with pytest.raises(ValueError, match=r"beta has values that are 0"):
        S2NN(beta=[1.0, 1e-46], learnable=True)
    assert S2NN(alpha=1e-50).alpha == 1e-50  # a number stays a number


def test_a_tensor_value_beyond_float32_is_refused_for_what_it_is():
    """At construction there is no x: the message says why float32, not "x's dtype"."""
    with pytest.raises(ValueError, match="module's tensors must fit") as error:
        S2NN(alpha=torch.tensor(1e39, dtype=torch.float64))
    assert "x is computed in" not in str(error.value)
    assert S2NN(alpha=1e39).alpha == 1e39  # a number: checked against each input


def test_constructed_and_called_under_fake_tensor_mode():
    """torch's tracers build modules under FakeTensorMode: no values to check."""
    fake_tensor = pytest.importorskip("torch._subclasses.fake_tensor")
    with fake_tensor.FakeTensorMode():
        module = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
        module(torch.randn(2, 3)).sum().backward()
        assert module.alpha.grad.shape == (3,)
        with pytest.raises(TypeError, match="alpha must have a real numeric dtype"):
            S2NN(alpha=torch.ones(3, dtype=torch.complex64))


@pytest.mark.parametrize("learnable", [True, False])
def test_load_state_dict_assign_takes_integers_as_the_constructor_does(learnable):
    module = S2NN(alpha=[1.0, 2.0], learnable=learnable)
    state = {**module.state_dict(), "alpha": torch.tensor([3, 4])}
    module.load_state_dict(state, assign=True)
    assert module.alpha.dtype == torch.get_default_dtype()
    torch.testing.assert_close(module.alpha.detach(), torch.tensor([3.0, 4.0]))
    assert state["alpha"].dtype == torch.int64  # the caller's dict is unchanged
    if learnable:
        assert isinstance(module.alpha, torch.nn.Parameter)


def test_an_array_of_a_third_library_is_refused_as_the_functions_refuse_it():
    """It was taken through its __array__; the functions raise TypeError."""

    class Foreign:  # an array-API array of another library
        shape, dtype = (2,), np.float32

        def __array_namespace__(self, api_version=None):
            return np

        def __array__(self, dtype=None, copy=None):
            return np.array([4.0, 2.0], dtype=dtype)

    with pytest.raises(TypeError, match="alpha must be a Python number, a list"):
        S2NN(alpha=Foreign())
    with pytest.raises(TypeError, match="cannot be mixed"):
        s2nn_xp.s2nn(torch.ones(2), Foreign())


def test_torch_jit_script_is_refused_saying_what_works():
    """A model holding the module too (TorchScript prepares every submodule)."""
    for model in (S2NN(), nn.Sequential(nn.Linear(2, 2), S2NN(learnable=True))):
        with pytest.raises(
            RuntimeError, match=r"torch\.compile .* torch\.export or ONNX"
        ):
            torch.jit.script(model)
    x = torch.tensor([[-0.5, 0.5]])
    traced = torch.jit.trace(S2NN(), x)
    torch.testing.assert_close(traced(x), s2nn(x))
    # What the message says of a trace (torch's own limit: when this passes,
    # the message and the user guide change).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.save` is deprecated")
        with pytest.raises(RuntimeError, match="Could not export Python function"):
            torch.jit.save(traced, io.BytesIO())


@pytest.mark.parametrize(
    "dtype",
    [
        np.float16,
        np.float32,
        np.float64,
        np.longdouble,
        np.int8,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
    ],
)
@pytest.mark.parametrize("learnable", [False, True])
def test_every_numpy_dtype_a_function_takes_goes_into_a_module(dtype, learnable):
    """The module read NumPy arrays by torch's rules (no long double) where
    the functions read them by the Definition's; a parameter of any real
    NumPy dtype the functions take goes in by construction and assignment."""
    values = np.array([2.0, 3.0]).astype(dtype)
    x = torch.tensor([[-0.25, 0.5]])
    want = s2nn(x, alpha=values, origin=True)
    built = S2NN(alpha=values, learnable=learnable, origin=True)
    assigned = S2NN(alpha=[1.0, 1.0], learnable=learnable, origin=True)
    assigned.alpha = values
    for module in (built, assigned):
        torch.testing.assert_close(module(x).double(), want.double())


@pytest.mark.parametrize("learnable", [False, True])
def test_reset_parameters_gives_a_module_built_on_meta_its_values(learnable):
    """torch's initialisation of a model built without values (FSDP calls it
    after to_empty); to_empty's memory held whatever was there, and calls
    gave NaN, silently."""
    with torch.device("meta"):
        model = nn.Sequential(
            nn.Linear(2, 3),
            S2NN(alpha=[4.0, 2.0, 8.0], beta=2, learnable=learnable),
        )
    model.to_empty(device="cpu")
    spike = model[1]
    held = [spike.alpha, spike.beta] if learnable else [spike.alpha]
    spike.reset_parameters()
    torch.testing.assert_close(
        spike.alpha.double(), torch.tensor([4.0, 2.0, 8.0]).double()
    )
    assert spike.beta == 2.0 and spike.epsilon == 1e-8
    # into the tensors held: an nn.Parameter stays the one an optimizer holds
    now = [spike.alpha, spike.beta] if learnable else [spike.alpha]
    assert all(a is b for a, b in zip(now, held, strict=True))
    spike.double().reset_parameters()  # in the dtype it is stored in now
    assert spike.alpha.dtype == torch.float64
    x = torch.tensor([[-0.5, 0.5, 1.0]], requires_grad=True)
    spike(x).sum().backward()
    torch.testing.assert_close(
        x.grad, s2nn_xp.torch.gradient(x.detach(), spike.alpha, 2.0)
    )


@pytest.mark.parametrize("learnable", [False, True])
@pytest.mark.parametrize("default", ["set_default_device", "with torch.device"])
def test_host_values_reach_a_module_whatever_torchs_default_device(default, learnable):
    """Values given as numbers, lists or arrays while the default device is
    ``meta`` (FSDP's initialisation: a model built there, moved by
    ``to_empty``, reset in the same context), into a module on the CPU:
    they became meta tensors on their way, "Cannot copy out of meta tensor"
    (``nn.Linear.reset_parameters`` works there). A module built in that
    context still gets tensors on the default device, checked first."""

    @contextlib.contextmanager
    def on_meta():
        if default == "with torch.device":
            with torch.device("meta"):
                yield
            return
        torch.set_default_device("meta")
        try:
            yield
        finally:
            torch.set_default_device("cpu")

    with on_meta():
        model = nn.Sequential(
            nn.Linear(2, 3),
            S2NN(alpha=[4.0, 2.0, 8.0], beta=2.0, epsilon=np.full(3, 0.5),
                 learnable=learnable),
        )  # fmt: skip
        assert model[1].alpha.device.type == "meta"
        assert model[1].epsilon.device.type == "meta"
        with pytest.raises(ValueError, match="alpha must be finite and > 0"):
            S2NN(alpha=[1.0, -1.0], learnable=learnable)  # checked, on no device
    model.to_empty(device="cpu")
    spike = model[1]
    with on_meta():
        model[0].reset_parameters()
        spike.reset_parameters()
    torch.testing.assert_close(
        spike.alpha.double(), torch.tensor([4.0, 2.0, 8.0]).double()
    )
    torch.testing.assert_close(spike.epsilon.double(), torch.full((3,), 0.5).double())
    assert torch.as_tensor(spike.beta).item() == 2.0
    with on_meta():
        spike.alpha = [1.0, 3.0, 5.0]
        spike.beta = 0.5
        with pytest.raises(ValueError, match="alpha must be finite and > 0"):
            spike.alpha = np.array([1.0, 0.0, 1.0])
    assert spike.alpha.device.type == "cpu"
    torch.testing.assert_close(
        spike.alpha.double(), torch.tensor([1.0, 3.0, 5.0]).double()
    )
    assert torch.as_tensor(spike.beta).item() == 0.5
    x = torch.tensor([[-0.5, 0.5, 1.0]])
    torch.testing.assert_close(
        spike(x), s2nn_xp.torch.s2nn(x, spike.alpha.detach(), 0.5, spike.epsilon)
    )


def test_reset_parameters_restores_the_constructors_values_and_kinds():
    given, array = torch.tensor([2.0, 3.0]), np.array([0.5, 0.25])
    spike = S2NN(alpha=given, beta=0.5, epsilon=array)
    given.fill_(7.0)  # the caller's tensor and array: the module kept its own
    array[:] = -1.0
    spike.alpha, spike.beta = 5.0, torch.tensor([1.0, 1.0])
    spike.reset_parameters()
    torch.testing.assert_close(spike.alpha, torch.tensor([2.0, 3.0]))
    assert spike.beta == 0.5 and "beta" not in spike._buffers  # a constant again
    torch.testing.assert_close(spike.epsilon, torch.tensor([0.5, 0.25]).double())
    with torch.device("meta"):
        without_values = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
    without_values.to_empty(device="cpu")
    with pytest.raises(ValueError, match=r"alpha has no constructor values .*assign"):
        without_values.reset_parameters()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        wide = S2NN(alpha=0.1, learnable=True)
    finally:
        torch.set_default_dtype(default)
    wide.reset_parameters()  # rounded once, into float64 (not through float32)
    assert wide.alpha.item() == 0.1


class _Identity(nn.Module):
    def forward(self, value):
        return value

    def right_inverse(self, value):
        return value


class _Exp(nn.Module):
    def forward(self, value):
        return value.exp()

    def right_inverse(self, value):
        return value.log()


def test_a_parametrized_parameter_holds_memory_of_its_own():
    """right_inverse's result became the parameter's storage: it was the
    kept constructor values (training changed what a reset gives back), a
    number broadcast with stride 0 (an optimizer step failed), or the
    caller's array (changed to -1 after the checks)."""
    spike = S2NN(alpha=torch.tensor([2.0, 3.0]), learnable=True)
    parametrize.register_parametrization(spike, "alpha", _Identity())
    spike.reset_parameters()
    with torch.no_grad():
        spike.parametrizations.alpha.original.add_(1.0)
    spike.reset_parameters()
    torch.testing.assert_close(spike.alpha, torch.tensor([2.0, 3.0]))
    spike.alpha = 5.0
    assert spike.parametrizations.alpha.original.stride() == (1,)
    spike(torch.tensor([[-0.5, 0.5]])).sum().backward()
    torch.optim.SGD(spike.parameters(), lr=0.1).step()
    given = np.array([2.0, 3.0], dtype=np.float32)
    spike.alpha = given
    given[:] = -1.0
    torch.testing.assert_close(spike.alpha, torch.tensor([2.0, 3.0]))


@pytest.mark.parametrize("convert", ["half", "double"])
def test_a_parametrized_parameter_takes_values_in_its_own_dtype(convert):
    """Checked and rounded once there (1e5 was inf in float16; 0.1 went
    through float32 into a float64 module); a tensor of another dtype given
    to the constructor reset through an exp parametrization too."""
    spike = getattr(S2NN(alpha=[2.0, 3.0], learnable=True), convert)()
    parametrize.register_parametrization(spike, "alpha", _Identity())
    if convert == "half":
        with pytest.raises(ValueError, match=r"overflow torch\.float16"):
            spike.alpha = 1e5
        with pytest.raises(ValueError, match=r"are 0 in torch\.float16"):
            spike.alpha = 1e-8
    else:
        spike.alpha = 0.1
        assert spike.alpha[0].item() == 0.1
    wider = S2NN(alpha=torch.tensor([2.0, 3.0], dtype=torch.float64), learnable=True)
    parametrize.register_parametrization(wider, "alpha", _Exp())
    getattr(wider, convert)().reset_parameters()
    torch.testing.assert_close(
        wider.alpha.double(), torch.tensor([2.0, 3.0]).double(), rtol=1e-3, atol=0
    )


@pytest.mark.parametrize("alpha", [2.0, [2.0, 3.0]], ids=["number", "list"])
def test_numbers_and_lists_go_through_a_parametrization(alpha):
    """Its right_inverse takes tensors only: a number or list assigned (or
    reset to) raised torch's "should return a tensor. Got float"."""
    spike = S2NN(alpha=alpha, learnable=True)
    parametrize.register_parametrization(spike, "alpha", _Identity())
    shape = spike.alpha.shape
    spike.alpha = 5.0
    torch.testing.assert_close(spike.alpha, torch.full(shape, 5.0))
    spike.alpha = [7.0, 7.0] if shape else 7.0
    spike.reset_parameters()
    torch.testing.assert_close(spike.alpha, torch.tensor(alpha).expand(shape))
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        spike.alpha = -1.0


@pytest.mark.parametrize(
    "value",
    [
        torch.tensor([100000]),
        np.array([100000]),
        np.array([100000], dtype=np.uint64),
        [100000],
    ],
    ids=["tensor", "numpy", "uint64", "list"],
)
@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_integers_are_checked_in_the_default_dtype_they_become(name, value):
    """With float16 the default dtype, 100000 became inf, silently, where a
    module that is not learnable stored it (a learnable one refused it)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)
    try:
        match = f"{name} has values that overflow torch.float16"
        with pytest.raises(ValueError, match=match):
            S2NN(**{name: value})
        spike = S2NN()
        with pytest.raises(ValueError, match=match):
            setattr(spike, name, value)
        assert getattr(spike, name) == getattr(S2NN(), name)
        assert S2NN(**{name: [2]}).state_dict()[name].dtype == torch.float16
    finally:
        torch.set_default_dtype(default)


class _ToBFloat16(nn.Module):
    """A parametrization whose output dtype is not the stored tensor's."""

    def forward(self, value):
        return value.to(torch.bfloat16)

    def right_inverse(self, value):
        return value.to(torch.float32)


def test_a_value_is_rounded_into_the_dtype_stored_not_the_one_given_back():
    """Rounded through the parametrization's bfloat16 output, 0.1 became
    0.10009765625 in the float32 tensor stored."""
    spike = S2NN(alpha=[2.0, 3.0], learnable=True)
    parametrize.register_parametrization(spike, "alpha", _ToBFloat16(), unsafe=True)
    spike.alpha = torch.tensor([0.1, 3.3])
    stored = spike.parametrizations.alpha.original
    torch.testing.assert_close(stored, torch.tensor([0.1, 3.3]), rtol=0, atol=0)


def test_values_for_a_module_on_the_meta_device_are_checked_before_they_move():
    """Moved first, a meta tensor had no values for the check to read."""
    with torch.device("meta"):
        spike = S2NN(alpha=[2.0, 3.0], learnable=True).half()
    with pytest.raises(ValueError, match=r"are 0 in torch\.float16"):
        spike.alpha = torch.tensor([1e-8, 1.0], dtype=torch.float64)
    spike.alpha = [0.5, 0.25]
    assert spike.alpha.device.type == "meta"


class _Softplus(nn.Module):
    """The integrations page's positive parametrization."""

    def forward(self, raw):
        return nn.functional.softplus(raw)

    def right_inverse(self, value):
        return value + torch.log(-torch.expm1(-value))


class _Pair(nn.Module):
    """A parametrization with two originals (right_inverse gives a tuple)."""

    def forward(self, first, second):
        return first * second

    def right_inverse(self, value):
        return value, torch.ones_like(value)


@pytest.mark.parametrize("kind", ["softplus", "pair"])
def test_values_loaded_or_converted_through_a_parametrization_are_checked(kind):
    """load_state_dict of its originals and .half() check the value they give.

    The originals are the parametrization's (a child module's), which the
    module's own checks did not see: NaN, 0 or inf loaded or converted
    silently. A refusal leaves the module as it was.
    """
    spike = S2NN(beta=torch.tensor([1e5, 1.0]), learnable=True)
    parametrization = _Softplus() if kind == "softplus" else _Pair()
    parametrize.register_parametrization(spike, "beta", parametrization)
    key = "parametrizations.beta.original" + ("" if kind == "softplus" else "0")
    before = copy.deepcopy(spike.state_dict())
    bad_raw = {
        "nan": torch.tensor([float("nan"), 1.0]),
        "zero": torch.tensor([-200.0, 1.0]) if kind == "softplus" else torch.zeros(2),
        "inf": torch.tensor([float("inf"), 1.0]),
    }
    for raw in bad_raw.values():
        state = copy.deepcopy(before)
        state[key] = raw
        for assign in (False, True):
            with pytest.raises(RuntimeError, match="beta must be finite and > 0"):
                spike.load_state_dict(state, assign=assign)
            for name, value in spike.state_dict().items():
                torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    with pytest.raises(ValueError, match="beta"):
        spike.half()  # softplus(1e5 in float16 = inf) = inf
    assert spike.beta.dtype == torch.float32
    torch.testing.assert_close(spike.beta, torch.tensor([1e5, 1.0]))
    good = copy.deepcopy(before)
    good[key] = good[key] * 0.5 if kind == "pair" else good[key] - 1.0
    spike.load_state_dict(good)
    assert (spike.beta > 0).all()
    spike.double()  # a conversion that keeps the values valid
    assert spike.beta.dtype == torch.float64


class _Scale(nn.Module):
    """A parametrization with a tensor of its own (a per-neuron scale)."""

    def __init__(self, scale):
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale))

    def forward(self, raw):
        return raw * self.scale

    def right_inverse(self, value):
        return value / self.scale


def test_a_parametrizations_own_tensors_load_and_convert_with_its_originals():
    """The value was computed from the new originals and the parametrization's
    old tensors: a scale that overflowed float16 with them (.half()), or a NaN
    scale loaded beside them, passed silently; a new original and a new scale
    that give a valid value together were refused."""
    spike = S2NN(alpha=[90000.0, 90000.0], learnable=True)
    parametrize.register_parametrization(spike, "alpha", _Scale([300.0, 300.0]))
    with pytest.raises(ValueError, match="alpha"):
        spike.half()  # 300 * 300 overflows float16 (65504)
    assert spike.alpha.dtype == torch.float32
    state = spike.state_dict()
    for scale in (float("nan"), -1.0):
        bad = {**state, "parametrizations.alpha.0.scale": torch.full((2,), scale)}
        with pytest.raises(RuntimeError, match="alpha must be finite and > 0"):
            spike.load_state_dict(bad)
    together = {
        **state,
        "parametrizations.alpha.original": -state["parametrizations.alpha.original"],
        "parametrizations.alpha.0.scale": torch.full((2,), -300.0),
    }
    spike.load_state_dict(together)
    torch.testing.assert_close(spike.alpha, torch.full((2,), 90000.0))


def test_a_model_built_on_the_meta_device_loads_a_parametrization_with_tensors():
    """load_state_dict(assign=True) of real values into a meta-built module
    whose parametrization holds a parameter: the check mixed devices and
    raised (it worked before the check was added)."""

    def build():
        spike = S2NN(alpha=torch.full((3,), 4.0), learnable=True)
        parametrize.register_parametrization(spike, "alpha", _Scale(torch.ones(3)))
        return spike

    state = build().state_dict()
    with torch.device("meta"):
        empty = build()
    empty.load_state_dict(state, assign=True)
    torch.testing.assert_close(empty.alpha, torch.full((3,), 4.0))


def test_a_parametrization_that_cannot_be_copied_is_checked_too():
    """A check that worked on a deep copy skipped, silently, a parametrization
    holding what deepcopy refuses (a lock, a non-leaf tensor): NaN loaded and
    inf converted. It is evaluated in place of nothing now, with the new
    tensors (torch.func.functional_call)."""

    class Locked(_Scale):
        def __init__(self, scale):
            super().__init__(scale)
            self.lock = threading.Lock()

    spike = S2NN(alpha=[1e5, 4.0], learnable=True)
    parametrize.register_parametrization(spike, "alpha", Locked([1.0, 1.0]))
    state = spike.state_dict()
    state["parametrizations.alpha.original"] = torch.tensor([float("nan"), -1.0])
    with pytest.raises(RuntimeError, match="alpha must be finite and > 0"):
        spike.load_state_dict(state)
    with pytest.raises(ValueError, match="alpha"):
        spike.half()
    torch.testing.assert_close(spike.alpha, torch.tensor([1e5, 4.0]))


def test_a_parametrized_value_that_saturates_a_float8_conversion_is_refused():
    """torch saturates where a float8 format has no inf: the value converted
    was finite (1e5 became 448) and passed; it is checked in the dtype it is
    to be in, as an unparametrized one is."""
    spike = S2NN(alpha=[1e5, 4.0], learnable=True)
    parametrize.register_parametrization(spike, "alpha", _Identity())
    with pytest.raises(ValueError, match="alpha has values that overflow"):
        spike.to(torch.float8_e4m3fn)
    assert spike.alpha.dtype == torch.float32
    spike.alpha = torch.tensor([100.0, 4.0])
    spike.to(torch.float8_e4m3fn)  # within its range
    assert spike.alpha.dtype == torch.float8_e4m3fn


@pytest.fixture
def one_process_group(tmp_path):
    """A process group of this process alone (gloo, CPU), as FSDP needs."""
    dist = torch.distributed
    if not dist.is_available():
        pytest.skip("this torch has no torch.distributed")
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _cpu_mesh():
    """FSDP2's mesh of this process, on the CPU: its default is a CUDA device
    where one exists (with a warning that no device was chosen)."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", (1,))


def _spiking_model(spike):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), spike, nn.Linear(6, 2))


def _trained(model):
    """The model after three SGD steps on fixed data."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(16, 5, generator=generator)
    y = torch.randint(0, 2, (16,), generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model


def _learnable_spike():
    return S2NN(alpha=[4.0, 2.0, 8.0, 4.0, 3.0, 5.0], beta=[1.0] * 6, learnable=True)


def _fsdp1(model, **options):
    """``model`` wrapped by FSDP1 on the CPU (``options`` are FSDP's)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # FSDP1's deprecation
        # one process: FSDP1 keeps the flat parameter whole (its views are
        # assigned as ever)
        warnings.filterwarnings("ignore", "FSDP is switching to use `NO_SHARD`")
        return FullyShardedDataParallel(model, device_id=torch.device("cpu"), **options)


@pytest.mark.usefixtures("one_process_group")
@pytest.mark.parametrize("use_orig_params", [False, True])
def test_fsdp1_shards_and_trains_a_learnable_module(use_orig_params):
    """FSDP1 puts views of its flat parameter back by assignment: they were
    copied into new parameters, and FSDP refused the module ("Found an
    unflattened parameter")."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    want = _trained(_spiking_model(_learnable_spike()))
    sharded = _fsdp1(
        _spiking_model(_learnable_spike()), use_orig_params=use_orig_params
    )
    _trained(sharded)
    with FullyShardedDataParallel.summon_full_params(sharded):
        got = [p.detach().clone() for p in sharded.parameters()]
    for a, b in zip(got, want.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-7)


class _Watched(S2NN):
    """A subclass with a __setattr__ of its own, calling S2NN's by a helper."""

    def __setattr__(self, name, value):
        self._store(name, value)

    def _store(self, name, value):
        super().__setattr__(name, value)


# FSDP1 with one process keeps its parameters whole, and says so.
@pytest.mark.filterwarnings("ignore:When using ``NO_SHARD``:UserWarning")
@pytest.mark.usefixtures("one_process_group")
def test_fsdp1_after_a_refused_load_and_assignment_is_still_fsdp():
    """A refusal raised inside the load skipped FSDP's hook that closes what
    its other hook opened: the model listed its original parameters, every
    state_dict() failed, and the process aborted at exit. An assignment
    between calls went into a new parameter that FSDP's view replaced at the
    next call (silently); a subclass's own __setattr__ hid FSDP's."""
    watched = _Watched(alpha=[4.0] * 6, beta=[1.0] * 6, learnable=True)
    for spike in (_learnable_spike(), watched):
        sharded = _fsdp1(_spiking_model(spike))
        state = sharded.state_dict()
        state[next(k for k in state if k.endswith("1.alpha"))] *= -1.0
        with pytest.raises(RuntimeError, match=r"refused .*1\.alpha: alpha must be"):
            sharded.load_state_dict(state)
        assert [name for name, _ in sharded.named_parameters()] == [
            "_fsdp_wrapped_module._flat_param"
        ]
        assert len(sharded.state_dict()) == len(state)
        with pytest.raises(RuntimeError, match=r"alpha is a view of FSDP's flat"):
            spike.alpha = 2.0
        _trained(sharded)


@pytest.mark.usefixtures("one_process_group")
def test_a_user_s_code_that_fsdp_calls_is_checked():
    """FSDP calls a user's own param_init_fn and forward methods (and
    reset_parameters): looking past the user's frames for FSDP's stored what
    they assigned unchecked."""
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    with torch.device("meta"):
        model = nn.Sequential(_learnable_spike())

    def init(module):
        module.to_empty(device="cpu", recurse=False)
        if isinstance(module, S2NN):
            module.alpha = nn.Parameter(torch.full((6,), -1.0))

    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        _fsdp1(model, param_init_fn=init, use_orig_params=True)

    class Annealed(nn.Module):
        def __init__(self):
            super().__init__()
            self.spike = S2NN(alpha=[4.0, 4.0])

        def forward(self, x):
            return self.spike(x)

        def anneal(self, alpha):
            self.spike.alpha = alpha

    annealed = Annealed()
    fully_shard(annealed, mesh=_cpu_mesh())
    register_fsdp_forward_method(annealed, "anneal")
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        annealed.anneal(torch.tensor([-5.0, 1.0]))
    annealed.anneal(torch.tensor([2.0, 1.0]))
    assert annealed.spike.alpha.tolist() == [2.0, 1.0]


@pytest.mark.usefixtures("one_process_group")
def test_fsdp2_shards_trains_and_resets_a_learnable_module():
    """FSDP2 assigns its DTensor parameters: their values were read on the
    host (which a DTensor cannot give), and reset_parameters after to_empty
    copied a whole tensor into a sharded one."""
    from torch.distributed.fsdp import fully_shard

    want = _trained(_spiking_model(_learnable_spike()))
    model = _spiking_model(_learnable_spike())
    fully_shard(model, mesh=_cpu_mesh())
    _trained(model)
    for a, b in zip(model.parameters(), want.parameters(), strict=True):
        torch.testing.assert_close(a.full_tensor(), b.detach(), rtol=1e-6, atol=1e-7)
    # Checked as ever: a user's assignment, a state dict's values.
    spike = model[1]
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        spike.alpha = [1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    spike.beta = 2.0
    torch.testing.assert_close(spike.beta.full_tensor(), torch.full((6,), 2.0))
    state = model.state_dict()
    model.load_state_dict(state)
    state["1.alpha"] = state["1.alpha"] * -1.0
    with pytest.raises(RuntimeError, match="alpha must be finite and > 0"):
        model.load_state_dict(state)
    # Built on the meta device, given values after sharding (as torch's
    # recipe for FSDP2 does).
    with torch.device("meta"):
        built = nn.Sequential(_learnable_spike())
    fully_shard(built, mesh=_cpu_mesh())
    built.to_empty(device="cpu")
    built[0].reset_parameters()
    torch.testing.assert_close(
        built[0].alpha.full_tensor(), torch.tensor([4.0, 2.0, 8.0, 4.0, 3.0, 5.0])
    )
    x = torch.linspace(-1.0, 1.0, 6, requires_grad=True)
    built(x).sum().backward()
    torch.testing.assert_close(
        x.grad, s2nn_xp.torch.gradient(x.detach(), built[0].alpha.full_tensor())
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_values_invalid_already_are_converted_as_they_are(dtype):
    """An optimizer's unchecked steps may leave NaN, inf, 0 or a negative
    value: a conversion did not break them, and a diverged model must still
    move to float64 (NaN and inf were refused as overflowing, 0 as 0; -1
    passed). A valid value beside them is still checked."""
    for bad in (float("nan"), float("inf"), 0.0, -1.0):
        module = S2NN(alpha=[4.0, 4.0], learnable=True)
        with torch.no_grad():
            module.alpha[1] = bad
        module.to(dtype)
        assert module.alpha.dtype == dtype
        np.testing.assert_array_equal(module.alpha.detach().numpy(), [4.0, bad])
    module = S2NN(alpha=[1e5, 4.0], epsilon=1e-8, learnable=True)
    with torch.no_grad():
        module.alpha[1] = float("nan")
    if dtype == torch.float16:
        with pytest.raises(ValueError, match=r"alpha has values that overflow"):
            module.half()
        constant = S2NN(epsilon=torch.tensor([1e5, 1e-3]))
        constant.epsilon[1] = -1.0  # a buffer changed in place: not checked
        with pytest.raises(ValueError, match=r"epsilon has values that overflow"):
            constant.half()
        constant.epsilon[0] = 0.0  # valid for epsilon, and kept
        constant.half()
        assert constant.epsilon.tolist() == [0.0, -1.0]


def test_a_parametrized_value_invalid_already_is_converted_as_it_is():
    """The parametrization's value was checked by the constructor's rules
    after a conversion, which refused what an optimizer's steps had left."""
    for bad in (float("nan"), -1.0):
        spike = S2NN(alpha=[4.0, 4.0], learnable=True)
        parametrize.register_parametrization(spike, "alpha", _Scale([1.0, 1.0]))
        with torch.no_grad():
            spike.parametrizations.alpha.original[1] = bad
        spike.double()
        np.testing.assert_array_equal(spike.alpha.detach().numpy(), [4.0, bad])
        spike.parametrizations.alpha[0].scale[0] = 1e5  # 4e5 overflows float16
        with pytest.raises(ValueError, match="alpha must be finite"):
            spike.half()


def test_a_refused_parametrized_value_loads_nothing_and_names_its_key():
    spike = S2NN(alpha=[4.0, 4.0], learnable=True)
    parametrize.register_parametrization(spike, "alpha", _Scale([1.0, 1.0]))
    state = copy.deepcopy(spike.state_dict())
    state["parametrizations.alpha.original"] = torch.tensor([1.0, -1.0])
    state["parametrizations.alpha.0.scale"] = torch.tensor([2.0, 2.0])
    with pytest.raises(RuntimeError) as refused:
        spike.load_state_dict(state)
    message = str(refused.value)
    assert "refused parametrizations.alpha: alpha must be finite" in message
    assert "Missing" not in message  # its tensors kept their own values
    torch.testing.assert_close(spike.alpha, torch.tensor([4.0, 4.0]))
    assert spike.parametrizations.alpha[0].scale.tolist() == [1.0, 1.0]


def test_a_refused_load_reports_the_module_s_other_keys_as_torch_does():
    spike = S2NN(alpha=[4.0, 4.0], beta=[1.0, 1.0], learnable=True)
    with pytest.raises(RuntimeError) as refused:
        spike.load_state_dict({"alpha": torch.tensor([-1.0, 1.0]), "typo": 1.0})
    message = str(refused.value)
    assert 'Missing key(s) in state_dict: "beta"' in message
    assert 'Unexpected key(s) in state_dict: "typo"' in message
    assert "refused alpha: alpha must be finite" in message
    assert 'alpha"' not in message  # taken out of the load, not missing
    # a key for a value held as a number loads nothing: unexpected, as ever
    constant = S2NN(alpha=4.0, beta=[1.0, 1.0])
    with pytest.raises(RuntimeError) as refused:
        constant.load_state_dict({"alpha": 2.0, "beta": torch.tensor([-1.0, 1.0])})
    assert 'Unexpected key(s) in state_dict: "alpha"' in str(refused.value)


def test_a_parametrization_shared_by_both_parameters_loads_nothing_refused():
    """Its tensor is named once per parameter in the state dict: the second
    name loaded the value refused."""
    spike = S2NN(alpha=[4.0, 4.0], beta=[1.0, 1.0], learnable=True)
    shared = _Scale([1.0, 1.0])
    parametrize.register_parametrization(spike, "alpha", shared)
    parametrize.register_parametrization(spike, "beta", shared)
    state = copy.deepcopy(spike.state_dict())
    for name in ("alpha", "beta"):
        state[f"parametrizations.{name}.0.scale"] = torch.tensor([-1.0, -1.0])
    with pytest.raises(RuntimeError, match=r"refused parametrizations\.alpha"):
        spike.load_state_dict(state)
    assert shared.scale.tolist() == [1.0, 1.0]
    torch.testing.assert_close(spike.beta, torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize("learnable", [False, True])
def test_a_deleted_parameter_takes_a_tensor_with_derivatives_as_given(learnable):
    """PyTorch's forward-mode AD of modules (del, then a dual tensor) and a
    hypernetwork's output: copied into a parameter or buffer, they lost their
    derivatives, silently. As nn.Linear keeps its weight after the same."""
    from torch.autograd import forward_ad

    x = torch.tensor([[-0.5, -0.25, 0.5, 1.0]])
    want = torch.func.grad(lambda a: s2nn_xp.torch.s2nn(x, a).sum())(
        torch.full((4,), 4.0)
    )
    spike = S2NN(alpha=torch.full((4,), 4.0), learnable=learnable)
    raw = torch.zeros(4, requires_grad=True)
    del spike.alpha
    spike.alpha = 4.0 + raw
    spike(x).sum().backward()
    torch.testing.assert_close(raw.grad, want)
    assert "alpha" not in spike.state_dict()  # nn.Module's, as for nn.Linear
    spike = S2NN(alpha=torch.full((4,), 4.0), learnable=learnable)
    with forward_ad.dual_level():
        del spike.alpha
        spike.alpha = forward_ad.make_dual(torch.full((4,), 4.0), torch.ones(4))
        tangent = forward_ad.unpack_dual(spike(x)).tangent
    torch.testing.assert_close(tangent.sum(0), want)
    # still checked: a value out of range is refused, naming it
    spike = S2NN(learnable=learnable)
    del spike.alpha
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        spike.alpha = -1.0 + raw
    # at every step of a hypernetwork's loop, not the first alone (the
    # second was copied: its gradient 0), and through functional_call's swap
    spike = S2NN(alpha=torch.full((4,), 4.0), learnable=learnable)
    del spike.alpha
    for _ in range(3):
        raw = torch.zeros(4, requires_grad=True)
        spike.alpha = 4.0 + raw
        spike(x).sum().backward()
        torch.testing.assert_close(raw.grad, want)
    swapped = torch.func.grad(
        lambda a: torch.func.functional_call(spike, {"alpha": a}, (x,)).sum()
    )(torch.full((4,), 4.0))
    torch.testing.assert_close(swapped, want)
    assert spike.alpha.grad_fn is not None  # put back as it was
    # a plain tensor between (an evaluation step under no_grad) is registered
    # by the constructor's rules again: a tensor with derivatives copied into
    # a parameter then says so (silent before), into a buffer as before
    spike.alpha = torch.full((4,), 4.0)
    assert "alpha" in spike.state_dict()
    with pytest.warns(UserWarning, match="alpha (has derivatives|requires grad)"):
        spike.alpha = 4.0 + torch.zeros(4, requires_grad=True)
    # and so does the constructor, given one (a hypernetwork's output)
    with pytest.warns(UserWarning, match="alpha (has derivatives|requires grad)"):
        S2NN(alpha=4.0 + torch.zeros(4, requires_grad=True), learnable=learnable)


def test_a_deleted_epsilon_stays_a_constant():
    """epsilon takes no derivatives: a tensor that requires grad assigned
    after del is copied and warns once, as before del (it was kept as given,
    and warned at every call)."""
    spike = S2NN()
    del spike.epsilon
    with pytest.warns(UserWarning, match="epsilon requires grad"):
        spike.epsilon = torch.tensor(1e-3, requires_grad=True)
    assert not spike.epsilon.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spike(torch.tensor([0.5]))
