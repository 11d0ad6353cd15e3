"""``s2nn_xp.torch.S2NN`` as a drop-in surrogate of the SNN libraries users have.

SpikingJelly neurons take it as ``surrogate_function=``, snnTorch neurons as
``spike_grad=``; a few training steps must give finite gradients that reach
every parameter. Each library's tests are skipped where it is not installed
(``nox -s clients`` installs both).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch")

from torch import nn  # noqa: E402

from s2nn_xp.torch import S2NN, s2nn  # noqa: E402

# torch 2.13 and 2.14 warn, from their own forward-mode AD, that the
# torch.jit.script they load its decompositions with is deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.script` is deprecated")


def _train(model, inputs, target, steps=5):
    """A few Adam steps; every gradient finite and some nonzero, every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(inputs), target)
        loss.backward()
        total = 0.0
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
            total += float(parameter.grad.abs().sum())
        assert total > 0
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    return losses


# --- SpikingJelly ----------------------------------------------------------------


@pytest.fixture
def spikingjelly():
    pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    return functional, layer, neuron, surrogate


class _JellyNet(nn.Module):
    def __init__(self, layer, neuron, functional, surrogate_function):
        super().__init__()
        self.functional = functional
        self.net = nn.Sequential(
            layer.Linear(12, 32),
            neuron.LIFNode(surrogate_function=surrogate_function, step_mode="m"),
            layer.Linear(32, 3),
            neuron.LIFNode(surrogate_function=S2NN(), step_mode="m"),
        )
        functional.set_step_mode(self.net, "m")

    def forward(self, inputs):  # (time, batch, 12) -> firing rates (batch, 3)
        self.functional.reset_net(self.net)
        return self.net(inputs).mean(0) * 10


@pytest.mark.parametrize("learnable", [False, True])
def test_surrogate_function_of_a_spikingjelly_lif_network(spikingjelly, learnable):
    functional, layer, neuron, _ = spikingjelly
    torch.manual_seed(0)
    spike = S2NN(alpha=torch.full((32,), 4.0), learnable=learnable)
    model = _JellyNet(layer, neuron, functional, spike)
    inputs = torch.rand(6, 16, 12) * 3
    target = torch.randint(0, 3, (16,))
    alpha_before = spike.alpha.detach().clone()
    _train(model, inputs, target)
    assert learnable != torch.equal(spike.alpha.detach(), alpha_before)


def test_same_surrogate_gradient_as_spikingjelly(spikingjelly):
    *_, surrogate = spikingjelly
    x = torch.linspace(-4.0, 4.0, 2001, dtype=torch.float64)
    for alpha, beta in ((4.0, 1.0), (2.0, 0.5)):
        grads = []
        for fn in (surrogate.S2NN(alpha=alpha, beta=beta), S2NN(alpha, beta)):
            leaf = x.clone().requires_grad_(True)
            y = fn(leaf)
            y.sum().backward()
            grads.append(leaf.grad)
            assert torch.equal(y, (x >= 0).to(x.dtype))
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-13, atol=1e-300)


def test_transforms_that_spikingjelly_lacks(spikingjelly):
    """torch.func.vmap and forward mode work with the drop-in (not with theirs)."""
    x = torch.linspace(-2.0, 2.0, 12).reshape(3, 4)
    batched = torch.func.vmap(torch.func.grad(lambda v: S2NN()(v).sum()))(x)
    _, tangent = torch.func.jvp(S2NN(), (x,), (torch.ones_like(x),))
    torch.testing.assert_close(batched, tangent)


# --- snnTorch --------------------------------------------------------------------


@pytest.fixture
def snntorch():
    return pytest.importorskip("snntorch")


class _LeakyNet(nn.Module):
    def __init__(self, snntorch, spike_grad):
        super().__init__()
        self.fc1 = nn.Linear(12, 32)
        self.lif1 = snntorch.Leaky(beta=0.9, spike_grad=spike_grad)
        self.fc2 = nn.Linear(32, 3)
        self.lif2 = snntorch.Leaky(beta=0.9, spike_grad=S2NN())

    def forward(self, inputs):  # (time, batch, 12) -> spike counts (batch, 3)
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        counts = 0
        for step in inputs:
            spk1, mem1 = self.lif1(self.fc1(step), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            counts = counts + spk2
        return counts


@pytest.mark.parametrize("learnable", [False, True])
def test_spike_grad_of_an_snntorch_leaky_network(snntorch, learnable):
    torch.manual_seed(0)
    spike = S2NN(alpha=2.0, beta=0.5, learnable=learnable)
    model = _LeakyNet(snntorch, spike)
    inputs = torch.rand(6, 16, 12) * 3
    target = torch.randint(0, 3, (16,))
    _train(model, inputs, target)
    names = {name for name, _ in model.named_parameters()}
    assert ({"lif1.spike_grad.alpha", "lif1.spike_grad.beta"} <= names) == learnable


def test_snntorch_leaky_fires_as_the_plain_function(snntorch):
    torch.manual_seed(0)
    current = torch.randn(4, 8, requires_grad=True)
    neuron = snntorch.Leaky(beta=0.5, spike_grad=S2NN(), threshold=1.0)
    spikes, _ = neuron(current, neuron.init_leaky())
    torch.testing.assert_close(spikes, s2nn(current - 1.0))
    (grad,) = torch.autograd.grad(spikes.sum(), current)
    torch.testing.assert_close(grad, s2nn_xp_gradient(current.detach() - 1.0))


def s2nn_xp_gradient(x):
    import s2nn_xp

    return s2nn_xp.gradient(x)


def test_bench_anchor_is_spikingjelly_forward_and_backward():
    """``s2nn-xp bench`` times spikingjelly on the same arrays, doing the same work."""
    pytest.importorskip("spikingjelly")
    import s2nn_xp
    from s2nn_xp import _backends, _cli

    x = torch.linspace(-3.0, 3.0, 301)
    cotangent = torch.full_like(x, 2.0)
    anchors = _cli._anchor_cases(_backends.get("torch"), x, cotangent)
    spike, grad = anchors["spikingjelly"]()
    torch.testing.assert_close(spike, s2nn_xp.forward(x))
    torch.testing.assert_close(grad, 2.0 * s2nn_xp.gradient(x), rtol=1e-5, atol=1e-7)
