"""User code that type checkers must accept (and refuse) as the docs say.

Not a test module (pytest collects ``test_*.py``): the lint session runs
``mypy --strict`` on it with PyTorch and JAX installed, so that the
package's annotations (it ships ``py.typed``) are checked against the uses
the docs show. ``assert_type`` fails where a type is other than stated; a
``type: ignore`` marks what must be refused, and fails (an unused ignore)
where it is not. ``test_integrations.py`` runs the functions: what is
accepted runs, what is refused raises.
"""

from __future__ import annotations

import array
import collections
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import torch
from typing_extensions import assert_type

import s2nn_xp
import s2nn_xp.jax
import s2nn_xp.torch


def adapters_are_attributes_of_the_package() -> None:
    """``import s2nn_xp`` is enough."""
    assert_type(s2nn_xp.torch.S2NN(), s2nn_xp.torch.S2NN)
    assert_type(s2nn_xp.jax.s2nn(jnp.zeros(3)), jax.Array)


def torch_parameters_are_read_as_stored_and_set_as_given() -> None:
    spike = s2nn_xp.torch.S2NN(spiking=True)
    assert_type(spike.alpha, float | torch.Tensor)
    spike.alpha += 0.5  # as SpikeDHS does (docs: Integrations)
    learned = s2nn_xp.torch.S2NN(alpha=[4.0, 2.0], beta=[1.0, 1.0], learnable=True)
    learned.alpha = np.full(2, 3.0)  # copied into the parameter
    learned.beta = [1.0, 2.0]
    learned(torch.linspace(-1.0, 1.0, 2)).sum().backward()
    assert_type(learned.beta.grad, torch.Tensor | None)  # the README's use
    assert_type(learned.epsilon, float | torch.Tensor)  # a constant, learnable or not
    positional = s2nn_xp.torch.S2NN(4.0, 1.0, 1e-8, None, True)
    assert_type(positional.alpha, torch.Tensor)
    assert_type(s2nn_xp.torch.S2NN(learnable=False).alpha, float | torch.Tensor)
    flagged = s2nn_xp.torch.S2NN(learnable=np.bool_(True))  # not known to be True
    assert_type(flagged.alpha, float | torch.Tensor)
    takes_any_module(learned)
    takes_any_module(spike)
    assert_type(Learned().alpha, torch.Tensor)
    assert_type(Clamped().alpha, float | torch.Tensor)


def takes_any_module(spike: s2nn_xp.torch.S2NN) -> s2nn_xp.torch.S2NN:
    """An annotation without a type argument takes learnable modules too."""
    return spike


class Learned(s2nn_xp.torch.S2NN[torch.Tensor]):
    """A subclass that always learns: its parameters read as tensors."""

    def __init__(self) -> None:
        super().__init__(alpha=[4.0, 2.0], learnable=True)


def torch_functions_take_host_data() -> None:
    """Python numbers, lists and NumPy arrays are input, as the docs say."""
    assert_type(s2nn_xp.torch.s2nn([-1.0, 1.0], np.array([4.0])), torch.Tensor)
    assert_type(s2nn_xp.torch.gradient([0.5, 1.0], beta=[1.0, 2.0]), torch.Tensor)
    assert_type(s2nn_xp.torch.origin(0.5, np.float32(2.0)), torch.Tensor)
    assert_type(s2nn_xp.torch.forward(range(-2, 3)), torch.Tensor)
    assert_type(s2nn_xp.torch.gradient(Readings(), np.int64(2)), torch.Tensor)
    _spikes, pullback = s2nn_xp.torch.vjp(torch.zeros(3), alpha=2.0)
    assert_type(pullback(torch.ones(3)), torch.Tensor)
    s2nn_xp.torch.S2NN(alpha=np.full(2, 4.0), beta=[[1.0], [2.0]])


def torch_takes_any_sequence_and_real_number() -> None:
    """Any sequence of numbers and any real number, as the Definition says
    (they were refused). A call of the module is Any to the checkers, as
    every torch module's is (nn.Module's __call__): no-untyped-call on a
    ``.backward()`` of its result would follow from a Tensor there."""
    t = torch.zeros(2)
    doubles, queue = array.array("d", [4.0, 2.0]), collections.deque([4.0, 2.0])
    assert_type(s2nn_xp.torch.s2nn(t, alpha=doubles), torch.Tensor)
    assert_type(s2nn_xp.torch.gradient(t, beta=queue), torch.Tensor)
    assert_type(s2nn_xp.torch.gradient(Fraction(1, 2)), torch.Tensor)
    assert_type(s2nn_xp.torch.s2nn(t, alpha=Fraction(4)), torch.Tensor)
    learned = s2nn_xp.torch.S2NN(alpha=array.array("d", [4.0, 2.0]), learnable=True)
    assert_type(learned.forward(t), torch.Tensor)


def pullbacks_take_the_cotangent_by_name() -> None:
    """``pullback(cotangent)``, as the docs name it, on every library."""
    _spikes, pullback = s2nn_xp.vjp(np.zeros(3))
    pullback(cotangent=np.ones(3))
    assert_type(backward(s2nn_xp.torch.vjp(torch.zeros(3))[1]), torch.Tensor)
    _tensor_spikes, tensor_pullback = s2nn_xp.torch.vjp(torch.zeros(3))
    assert_type(tensor_pullback(cotangent=torch.ones(3)), torch.Tensor)
    _jax_spikes, jax_pullback = s2nn_xp.jax.vjp(jnp.zeros(3))
    assert_type(jax_pullback(cotangent=jnp.ones(3)), jax.Array)


def backward(pullback: s2nn_xp.Pullback[torch.Tensor]) -> torch.Tensor:
    """A pullback named in an annotation (``s2nn_xp.Pullback``)."""
    return pullback(cotangent=torch.ones(3))


def flags_may_be_numpy_bools() -> None:
    """``origin``, ``learnable`` and ``spiking`` take NumPy's bools too."""
    flagged = s2nn_xp.S2NN(origin=np.bool_(True))
    flagged.origin = np.bool_(False)
    assert_type(flagged.origin, bool)  # as stored
    s2nn_xp.s2nn(np.zeros(2), origin=np.bool_(True))
    module = s2nn_xp.torch.S2NN(learnable=np.bool_(True), origin=np.bool_(False))
    module.spiking = np.bool_(True)
    module.set_spiking_mode(np.bool_(False))
    s2nn_xp.jax.vjp(jnp.zeros(2), origin=np.bool_(True))


class Readings:
    """Host data of a library of the user's: NumPy reads it (``__array__``)."""

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return np.array([-0.5, 0.5])


class Scaled(s2nn_xp.S2NN):
    """A subclass (docs: Integrations, "A subclass is a pytree too")."""

    __slots__ = ("gain",)

    def __init__(self, gain: float) -> None:
        super().__init__(alpha=4.0)
        self.gain = gain


def subclasses_keep_their_type() -> None:
    scaled = Scaled(2.0)
    assert_type(scaled, Scaled)
    assert_type(scaled.gain, float)


class Clamped(s2nn_xp.torch.S2NN):
    """A module overriding forward as nn.Module subclasses do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.clamp(-10.0, 10.0))


def modules_can_be_subclassed() -> None:
    assert_type(Clamped().forward(torch.zeros(2)), torch.Tensor)


# Each of these must be refused by the checker and raise at run time.


def misspelt_adapter() -> None:
    s2nn_xp.torhc  # type: ignore[attr-defined]  # noqa: B018


def misspelt_keyword() -> None:
    s2nn_xp.S2NN(alpa=4.0)  # type: ignore[call-arg]


def misspelt_attribute_assigned() -> None:
    s2nn_xp.S2NN().orgin = True  # type: ignore[attr-defined]


def learnable_set_after_construction() -> None:
    s2nn_xp.torch.S2NN().learnable = True  # type: ignore[misc]


def parameter_as_text() -> None:
    s2nn_xp.torch.s2nn(torch.zeros(2), alpha="4.0")  # type: ignore[arg-type]


def parameter_as_text_in_a_module() -> None:
    s2nn_xp.torch.S2NN(alpha="4.0")  # type: ignore[arg-type]


def parameter_as_complex_number() -> None:
    s2nn_xp.torch.S2NN(beta=1 + 2j)  # type: ignore[call-overload]


def parameter_assigned_as_text() -> None:
    s2nn_xp.torch.S2NN().alpha = "4.0"  # type: ignore[assignment]


def fixed_module_read_as_tensor() -> None:
    """A module that does not learn may hold a number: no ``.grad``."""
    s2nn_xp.torch.S2NN().beta.grad  # type: ignore[union-attr]  # noqa: B018


ACCEPTED = [
    adapters_are_attributes_of_the_package,
    torch_parameters_are_read_as_stored_and_set_as_given,
    torch_functions_take_host_data,
    torch_takes_any_sequence_and_real_number,
    subclasses_keep_their_type,
    modules_can_be_subclassed,
    pullbacks_take_the_cotangent_by_name,
    flags_may_be_numpy_bools,
]
REFUSED = {
    misspelt_adapter: AttributeError,
    misspelt_keyword: TypeError,
    misspelt_attribute_assigned: AttributeError,
    learnable_set_after_construction: AttributeError,
    parameter_as_text: TypeError,
    parameter_as_text_in_a_module: TypeError,
    parameter_as_complex_number: TypeError,
    parameter_assigned_as_text: TypeError,
    fixed_module_read_as_tensor: AttributeError,
}
