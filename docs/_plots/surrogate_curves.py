"""The home page's figure: S2NN's surrogate gradient and smooth function."""

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import s2nn_xp

x = jnp.linspace(-3.0, 3.0, 601)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
for alpha, beta in [(4.0, 1.0), (8.0, 2.0), (2.0, 0.5)]:
    label = rf"$\alpha = {alpha:g},\ \beta = {beta:g}$"
    spike = s2nn_xp.S2NN(alpha, beta)
    # The derivative of the spike is the surrogate gradient, at every x.
    left.plot(x, jax.vmap(jax.grad(spike))(x), label=label)
    smooth = s2nn_xp.S2NN(alpha, beta, origin=True)
    right.plot(x, smooth(x), label=label)
right.plot(x, spike(x), color="0.5", linestyle="--", label="the spike")
left.set(title="surrogate gradient: jax.grad(S2NN(alpha, beta))", xlabel="x")
right.set(title="smooth function: S2NN(alpha, beta, origin=True)", xlabel="x")
for ax in (left, right):
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
plt.show()
