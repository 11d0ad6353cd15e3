"""A network trained with s2nn_xp leaves its framework: torch.export, ONNX, jax.export.

The exported programs give the same spikes as the model (onnxruntime runs the
ONNX file), and ``jax.export`` keeps the surrogate gradient (``vjp_order=1``).
Runs in the ``clients`` session, which installs onnx, onnxscript and
onnxruntime; each test skips where its framework is missing.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

# torch's exporters deprecate their own internals (and the legacy exporter
# itself) with warnings that are no concern of this package's.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _torch_model(learnable, origin=False):
    torch = pytest.importorskip("torch")
    from s2nn_xp.torch import S2NN

    torch.manual_seed(0)
    if learnable:
        alpha = torch.linspace(2.0, 6.0, 16)
        spike = S2NN(alpha=alpha, beta=0.5, learnable=True, origin=origin)
    else:
        spike = S2NN(alpha=2.0, beta=0.5, origin=origin)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), spike, torch.nn.Linear(16, 3))
    return torch, model.eval()


def _inputs(torch):
    return torch.randn(32, 8) * 2


@pytest.mark.parametrize("learnable", [False, True])
def test_torch_export_gives_the_same_outputs(learnable):
    torch, model = _torch_model(learnable)
    x = _inputs(torch)
    program = torch.export.export(model, (x,))
    other = _inputs(torch)
    torch.testing.assert_close(program.module()(other), model(other))


@pytest.mark.parametrize("origin", [False, True], ids=["spike", "origin"])
@pytest.mark.parametrize("learnable", [False, True])
def test_onnx_export_runs_in_onnxruntime_with_the_same_spikes(
    learnable, origin, tmp_path
):
    """Origin mode too (onnxscript's optimizer made an invalid model of it)."""
    torch, model = _torch_model(learnable, origin)
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    spikes_of = torch.nn.Sequential(*model[:2]).eval()  # Linear, then S2NN
    x = _inputs(torch)
    path = tmp_path / "spikes.onnx"
    torch.onnx.export(spikes_of, (x,), dynamo=True, verbose=False).save(path)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (name,) = (i.name for i in session.get_inputs())
    other = _inputs(torch)
    (spikes,) = session.run(None, {name: other.numpy()})
    want = spikes_of(other).detach().numpy()
    if origin:  # onnxruntime's exp and log round as they do
        np.testing.assert_allclose(spikes, want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(spikes, want)
        assert 0 < want.mean() < 1


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_onnx_origin_keeps_the_special_values(dynamo, tmp_path):
    """origin(+inf) = +inf (Definition): ONNX's one-sided Clip capped it at 89."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript" if dynamo else "onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from s2nn_xp.torch import S2NN

    model = S2NN(origin=True).eval()
    x = torch.tensor([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, -1.0, 1e30, -1e30])
    path = tmp_path / "origin.onnx"
    if dynamo:
        torch.onnx.export(model, (x,), dynamo=True, verbose=False).save(path)
    else:
        torch.onnx.export(model, (x,), path, dynamo=False)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-6)


# The exporter writes Python numbers as float32 constants: float64's lowest,
# a bound of the sigmoid guard, overflows (the page says so).
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("as_tensors", [False, True], ids=["numbers", "tensors"])
def test_float64_onnx_export_of_origin_mode_runs_without_the_optimizer(
    as_tensors, tmp_path
):
    """The integrations page: in float64, onnxscript 0.7's optimizer fuses the
    Max/Min pairs of torch's clamps into Clips named after their input, and a
    second pair on one input leaves a Clip whose bounds nothing gives
    (onnxruntime refuses the model); with optimize=False the model runs, with
    the model's values where the parameters are tensors, and with them
    rounded to float32 where they are numbers. If the exporter or its
    optimizer is mended, this fails: then the page's note goes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    from s2nn_xp.torch import S2NN

    alpha, beta = ([2.1], [0.3]) if as_tensors else (2.1, 0.3)  # inexact in float32
    model = S2NN(alpha=alpha, beta=beta, origin=True).double().eval()
    x = _inputs(torch).double()
    want = model(x).detach().numpy()
    for optimize in (True, False):
        path = tmp_path / f"origin-{optimize}.onnx"
        program = torch.onnx.export(
            model, (x,), dynamo=True, verbose=False, optimize=optimize
        )
        program.save(path)
        if optimize:
            with pytest.raises(Exception, match="is not a graph input, initializer"):
                onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            continue
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (name,) = (i.name for i in session.get_inputs())
        (got,) = session.run(None, {name: x.numpy()})
        if as_tensors:
            np.testing.assert_allclose(got, want, rtol=1e-14)
            continue
        rounded = S2NN(
            *(float(np.float32(p)) for p in (alpha, beta, model.epsilon)), origin=True
        )
        np.testing.assert_allclose(got, rounded.double()(x).numpy(), rtol=1e-14)
        assert not np.allclose(got, want, rtol=1e-12, atol=0)


def test_legacy_onnx_export_prints_no_tracer_warning(tmp_path):
    torch, model = _torch_model(learnable=False)
    pytest.importorskip("onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        torch.onnx.export(model, (_inputs(torch),), tmp_path / "m.onnx", dynamo=False)


def test_jax_export_keeps_the_surrogate_gradient():
    jax = pytest.importorskip("jax")
    pytest.importorskip("flatbuffers")  # what jax.export serialises with
    import jax.numpy as jnp

    import s2nn_xp

    def spikes(x, alpha):
        return s2nn_xp.S2NN(alpha=alpha, beta=0.5)(x)

    x = jnp.linspace(-2.0, 2.0, 9, dtype=jnp.float32)
    alpha = jnp.linspace(2.0, 6.0, 9, dtype=jnp.float32)
    exported = jax.export.export(jax.jit(spikes))(x, alpha)
    restored = jax.export.deserialize(exported.serialize(vjp_order=1))
    np.testing.assert_array_equal(restored.call(x, alpha), spikes(x, alpha))

    def loss(function):
        return lambda x, alpha: (function(x, alpha) * jnp.arange(9.0)).sum()

    want = jax.grad(loss(spikes), argnums=(0, 1))(x, alpha)
    got = jax.grad(loss(restored.call), argnums=(0, 1))(x, alpha)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    np.testing.assert_allclose(
        got[0], jnp.arange(9.0) * s2nn_xp.gradient(x, alpha, 0.5), rtol=1e-6
    )


# Where onnxscript 0.7's optimizer breaks the model (the integrations page):
# two clamps of one input that it fuses, float64's and origin mode's.
_BROKEN_BY_THE_OPTIMIZER = {
    ("float64", "origin", "once"),
    ("float64", "origin", "twice"),
    ("float64", "origin", "two modules"),
    ("float64", "spike", "twice"),
    ("float64", "spike", "two modules"),
    ("float32", "origin", "twice"),
    ("float32", "origin", "two modules"),
}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("calls", ["once", "twice", "two modules"])
@pytest.mark.parametrize("mode", ["spike", "origin"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_onnx_export_without_the_optimizer_runs_every_model(dtype, mode, calls):
    """The page's advice, optimize=False, and the cases it names: S2NN twice
    on one input (one module or two) in origin mode or float64, a float64 model
    in origin mode (found by a deployment trial: the page said float32 models
    needed nothing). If onnxscript mends its optimizer, the expected failures
    fail: then the page's note goes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    from s2nn_xp.torch import S2NN

    class Calls(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = S2NN(origin=mode == "origin")
            self.second = (
                S2NN(alpha=2.0, origin=mode == "origin")
                if calls == "two modules"
                else self.first
            )

        def forward(self, x):
            y = self.first(x)
            return y if calls == "once" else y + self.second(x)

    model = Calls().to(getattr(torch, dtype)).eval()
    x = (_inputs(torch) / 2).to(getattr(torch, dtype))
    want = model(x).numpy()
    for optimize in (True, False):
        program = torch.onnx.export(
            model, (x,), dynamo=True, verbose=False, optimize=optimize
        )
        model_bytes = program.model_proto.SerializeToString()
        if optimize and (dtype, mode, calls) in _BROKEN_BY_THE_OPTIMIZER:
            with pytest.raises(Exception, match="is not a graph input, initializer"):
                onnxruntime.InferenceSession(
                    model_bytes, providers=["CPUExecutionProvider"]
                )
            continue
        session = onnxruntime.InferenceSession(
            model_bytes, providers=["CPUExecutionProvider"]
        )
        (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        if mode == "spike":
            np.testing.assert_array_equal(got, want)
        else:  # onnxruntime's exp and log round as they do; 16 bits: once more
            tolerance = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-14}[dtype]
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance)
