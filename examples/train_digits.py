"""Train a single-step spiking network with the S2NN surrogate gradient.

The network sees each 8x8 digit once (one time step): pixels -> linear ->
S2NN spikes -> linear readout -> softmax cross-entropy. The same data split,
initial weights (drawn with NumPy from one seed), Adam hyperparameters and
mini-batch order are used in both frameworks, so the two runs are comparable.

Examples
--------
::

    python examples/train_digits.py --framework torch
    python examples/train_digits.py --framework jax --learnable
    python examples/train_digits.py --framework both --epochs 40

The data is scikit-learn's digits set, which ships with scikit-learn (nothing is
downloaded). ``--learnable`` also trains one ``alpha`` and one ``beta`` per
hidden neuron and reports what they became.
"""

from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Config:
    """Hyperparameters shared by both frameworks."""

    hidden: int = 128
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    learnable: bool = False
    alpha: float = 4.0
    beta: float = 1.0


@dataclass
class Result:
    """What one training run reports."""

    framework: str
    test_accuracy: float
    train_seconds: float
    hidden_spike_rate: float
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    alpha: np.ndarray | None = None
    beta: np.ndarray | None = None


def load_data(seed: int):
    """Standardised digits, split 75/25 with a fixed seed (float32)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
    )
    mean, std = x_train.mean(0), x_train.std(0) + 1e-3
    return ((x_train - mean) / std, y_train), ((x_test - mean) / std, y_test)


def initial_parameters(config: Config, n_in: int = 64, n_out: int = 10) -> dict:
    """Glorot-uniform weights, zero biases, from NumPy with the config's seed."""
    rng = np.random.default_rng(config.seed)

    def glorot(fan_in: int, fan_out: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(np.float32)

    params = {
        "w1": glorot(n_in, config.hidden),
        "b1": np.zeros(config.hidden, np.float32),
        "w2": glorot(config.hidden, n_out),
        "b2": np.zeros(n_out, np.float32),
    }
    if config.learnable:
        params["alpha"] = np.full(config.hidden, config.alpha, np.float32)
        params["beta"] = np.full(config.hidden, config.beta, np.float32)
    return params


def batches(n: int, config: Config, epoch: int):
    """The same shuffled mini-batch indices in both frameworks."""
    order = np.random.default_rng(config.seed + 1 + epoch).permutation(n)
    for start in range(0, n, config.batch_size):
        yield order[start : start + config.batch_size]


# --- PyTorch -----------------------------------------------------------------


def train_torch(config: Config, data) -> Result:
    """Train with ``s2nn_xp.torch.S2NN`` as the spike function."""
    import torch

    import s2nn_xp.torch

    torch.manual_seed(config.seed)
    (x_train, y_train), (x_test, y_test) = data
    init = initial_parameters(config)
    layer1 = torch.nn.Linear(64, config.hidden)
    layer2 = torch.nn.Linear(config.hidden, 10)
    with torch.no_grad():
        for layer, w, b in ((layer1, "w1", "b1"), (layer2, "w2", "b2")):
            layer.weight.copy_(torch.from_numpy(init[w].T))
            layer.bias.copy_(torch.from_numpy(init[b]))
    alpha = (
        torch.full((config.hidden,), config.alpha) if config.learnable else config.alpha
    )
    beta = (
        torch.full((config.hidden,), config.beta) if config.learnable else config.beta
    )
    spike = s2nn_xp.torch.S2NN(alpha, beta, learnable=config.learnable)
    model = torch.nn.Sequential(layer1, spike, layer2)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    xs, ys = torch.from_numpy(x_train), torch.from_numpy(y_train)
    x_test_t, y_test_t = torch.from_numpy(x_test), torch.from_numpy(y_test)
    result = Result("torch", 0.0, 0.0, 0.0)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        total = 0.0
        for index in batches(len(xs), config, epoch):
            idx = torch.from_numpy(index)
            loss = torch.nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(index)
        result.losses.append(total / len(xs))
        with torch.no_grad():
            accuracy = (model(x_test_t).argmax(1) == y_test_t).float().mean()
        result.accuracies.append(float(accuracy))
    result.train_seconds = time.perf_counter() - start
    with torch.no_grad():
        result.hidden_spike_rate = float(spike(layer1(x_test_t)).mean())
    result.test_accuracy = result.accuracies[-1]
    if config.learnable:
        result.alpha = spike.alpha.detach().numpy().copy()
        result.beta = spike.beta.detach().numpy().copy()
    return result


# --- JAX -----------------------------------------------------------------------


def train_jax(config: Config, data) -> Result:
    """Train with ``s2nn_xp.jax.s2nn`` as the spike function (Adam by hand)."""
    import jax
    import jax.numpy as jnp

    import s2nn_xp.jax

    (x_train, y_train), (x_test, y_test) = data
    params = {k: jnp.asarray(v) for k, v in initial_parameters(config).items()}

    def hidden_spikes(params, x):
        alpha = params.get("alpha", config.alpha)
        beta = params.get("beta", config.beta)
        return s2nn_xp.jax.s2nn(x @ params["w1"] + params["b1"], alpha, beta)

    def logits(params, x):
        return hidden_spikes(params, x) @ params["w2"] + params["b2"]

    def loss_fn(params, x, y):
        log_p = jax.nn.log_softmax(logits(params, x))
        return -jnp.take_along_axis(log_p, y[:, None], axis=1).mean()

    # Adam with torch.optim.Adam's defaults (betas 0.9, 0.999; eps 1e-8).
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, config.learning_rate

    @jax.jit
    def step(params, moments, t, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        m, v = moments
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        scale_m, scale_v = 1 - b1**t, 1 - b2**t
        params = jax.tree.map(
            lambda p, m, v: p - lr * (m / scale_m) / (jnp.sqrt(v / scale_v) + eps),
            params,
            m,
            v,
        )
        return params, (m, v), loss

    accuracy = jax.jit(lambda p, x, y: (logits(p, x).argmax(1) == y).mean())
    zeros = jax.tree.map(jnp.zeros_like, params)
    moments, t = (zeros, zeros), 0
    xs, ys = jnp.asarray(x_train), jnp.asarray(y_train)
    result = Result("jax", 0.0, 0.0, 0.0)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        total = 0.0
        for index in batches(len(xs), config, epoch):
            t += 1
            params, moments, loss = step(params, moments, t, xs[index], ys[index])
            total += float(loss) * len(index)
        result.losses.append(total / len(xs))
        result.accuracies.append(float(accuracy(params, x_test, y_test)))
    result.train_seconds = time.perf_counter() - start
    result.hidden_spike_rate = float(hidden_spikes(params, x_test).mean())
    result.test_accuracy = result.accuracies[-1]
    if config.learnable:
        result.alpha = np.asarray(params["alpha"])
        result.beta = np.asarray(params["beta"])
    return result


TRAINERS = {"torch": train_torch, "jax": train_jax}
# What each needed library is installed with (the README's words).
INSTALL = {
    "sklearn": 'python -m pip install "s2nn-xp[examples]"',
    "jax": 'python -m pip install "s2nn-xp[jax]"',
    "torch": "install PyTorch as https://pytorch.org/get-started/locally/ says",
}


def report(result: Result) -> str:
    """One run's figures as text."""
    lines = [
        f"[{result.framework}] test accuracy {result.test_accuracy:.3f}, "
        f"training {result.train_seconds:.1f} s, hidden spike rate "
        f"{result.hidden_spike_rate:.3f}, final loss {result.losses[-1]:.3f}"
    ]
    for name in ("alpha", "beta"):
        values = getattr(result, name)
        if values is not None:
            lines.append(
                f"[{result.framework}] learned {name}: mean {values.mean():.3f}, "
                f"min {values.min():.3f}, max {values.max():.3f}"
            )
    return "\n".join(lines)


def main(argv=None) -> list[Result]:
    """Parse the command line, train, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=[*TRAINERS, "both"], default="both")
    parser.add_argument("--epochs", type=int, default=Config.epochs)
    parser.add_argument("--hidden", type=int, default=Config.hidden)
    parser.add_argument(
        "--learnable",
        action="store_true",
        help="train alpha and beta per hidden neuron",
    )
    parser.add_argument("--seed", type=int, default=Config.seed)
    args = parser.parse_args(argv)
    config = Config(
        hidden=args.hidden, epochs=args.epochs, seed=args.seed, learnable=args.learnable
    )
    frameworks = list(TRAINERS) if args.framework == "both" else [args.framework]
    # Imported before any training: a missing one (or JAX without its
    # jaxlib) failed after the other's run.
    missing = []
    for module in ("sklearn", *frameworks):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{module} does not import ({exc}): {INSTALL[module]}")
    if missing:
        parser.error("; ".join(missing))
    data = load_data(config.seed)
    results = []
    for framework in frameworks:
        result = TRAINERS[framework](config, data)
        print(report(result), flush=True)
        results.append(result)
    return results


if __name__ == "__main__":
    main()
