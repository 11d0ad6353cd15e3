"""``s2nn_xp.torch.S2NN`` as a drop-in surrogate of the SNN libraries users have.

SpikingJelly neurons take it as ``surrogate_function=``, snnTorch neurons as
``spike_grad=``; a few training steps must give finite gradients that reach
every parameter. Each library's tests are skipped where it is not installed
(``nox -s clients`` installs both).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests._support import require

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


# --- SpikingJelly's surrogate API: what its neurons, layers and models read -----


def test_complementary_lif_reads_spiking_in_eval_mode(spikingjelly):
    """ComplementaryLIFNode swaps in a Heaviside step where ``spiking`` is True."""
    _, _, neuron, _ = spikingjelly
    torch.manual_seed(0)
    x = torch.randn(8, 4, 16)
    node = neuron.ComplementaryLIFNode(surrogate_function=S2NN(), step_mode="m")
    trained = node(x)
    node.reset()
    evaluated = node.eval()(x)
    torch.testing.assert_close(evaluated, trained)
    assert set(torch.unique(evaluated).tolist()) <= {0.0, 1.0}


def test_spiking_false_is_the_origin_function_with_the_same_gradient(spikingjelly):
    """SpikingJelly's surrogate contract: the spiking gradient is the derivative
    of the ``spiking=False`` function (a finite difference of it)."""
    *_, surrogate = spikingjelly
    spike = S2NN(spiking=True)
    x = torch.linspace(-3.0, 3.0, 601, dtype=torch.float64)
    x = x[x.abs() > 1e-3].requires_grad_(True)
    (grad,) = torch.autograd.grad(spike(x).sum(), x)
    spike.set_spiking_mode(False)
    assert not spike.spiking
    step = 1e-6
    with torch.no_grad():
        difference = (spike(x + step) - spike(x - step)) / (2 * step)
    torch.testing.assert_close(grad, difference, rtol=1e-6, atol=1e-8)
    # Their own checker runs on our functions too.
    surrogate.check_manual_grad(
        S2NN.primitive_function, S2NN.spiking_function, alpha=4.0, beta=1.0
    )


def test_spiking_keyword_as_spikingjelly_spells_it(spikingjelly):
    *_, surrogate = spikingjelly
    x = torch.linspace(-2.0, 2.0, 9)
    for spiking in (True, False):
        theirs = surrogate.S2NN(alpha=4.0, beta=1.0, spiking=spiking)
        # Their origin function has 1e-5 where ours has epsilon.
        ours = S2NN(alpha=4.0, beta=1.0, epsilon=1e-5, spiking=spiking)
        assert ours.spiking == theirs.spiking == spiking
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-6)


def test_spiking_lstm_with_two_surrogates(spikingjelly):
    """SpikingLSTM compares ``spiking`` of its two surrogate functions."""
    from spikingjelly.activation_based import rnn

    torch.manual_seed(0)
    lstm = rnn.SpikingLSTM(
        4, 6, 1, surrogate_function1=S2NN(), surrogate_function2=S2NN(alpha=2.0)
    )
    output, _ = lstm(torch.randn(5, 3, 4))
    output.sum().backward()
    grads = [p.grad for p in lstm.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_spike_dhs_search_reads_and_assigns_alpha(spikingjelly):
    """SpikeDHS's differentiable gradient search moves the surrogate's alpha."""
    from spikingjelly.activation_based.model import spike_dhs

    torch.manual_seed(0)
    stem = spike_dhs.SearchSpikingConv2d_stem(2, 4)
    for node in (stem.spike_m, stem.spike_b, stem.spike_s):
        node.surrogate_function = S2NN(alpha=3.0)
    stem.dgs_init_stage()  # spike_s, spike_b get alpha -+ 0.2
    assert stem.spike_s.surrogate_function.alpha == pytest.approx(2.8)
    assert stem.spike_b.surrogate_function.alpha == pytest.approx(3.2)
    stem(torch.rand(2, 2, 8, 8)).sum().backward()
    stem.dgs_finish_stage(2)  # alpha += 0.2 on spike_m
    assert stem.spike_m.surrogate_function.alpha == pytest.approx(3.2)
    low = spike_dhs.SearchSpikingConv2d_stem(2, 4)
    low.spike_m.surrogate_function = S2NN(alpha=0.2)
    low.spike_s.surrogate_function = S2NN()
    with pytest.raises(ValueError, match="alpha must be finite and > 0"):
        low.dgs_init_stage()  # 0.2 - 0.2: the constructor's rule holds


def test_per_channel_learnable_alpha_in_a_multi_step_conv_network(spikingjelly):
    """Per-channel parameters of a (T, N, C, H, W) input have shape (C, 1, 1)."""
    functional, layer, neuron, _ = spikingjelly
    torch.manual_seed(0)
    spike = S2NN(alpha=torch.full((4, 1, 1), 4.0), learnable=True)
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(surrogate_function=spike, step_mode="m"),
    )
    out = net(torch.rand(3, 2, 1, 6, 6) * 4)
    out.mean().backward()
    functional.reset_net(net)
    assert spike.alpha.grad.shape == (4, 1, 1)
    assert torch.isfinite(spike.alpha.grad).all() and spike.alpha.grad.abs().sum() > 0
