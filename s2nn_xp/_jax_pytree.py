"""``s2nn_xp.S2NN`` as a JAX pytree, registered as soon as JAX is imported.

``import s2nn_xp`` must not import JAX, and the registration must hold
whether JAX is imported before or after ``s2nn_xp``:
:func:`register_when_jax_is_imported` registers at once where JAX is
imported, else right after it is (:mod:`s2nn_xp._after_import`).

The leaves are ``alpha`` and ``beta`` (numbers or arrays, differentiable, or
the brainstate states that hold them, where brainstate finds its states:
such an object goes through brainstate's transforms, not as an argument of a
plain ``jax.jit``, as any brainstate module does); ``epsilon`` and
``origin`` are the static part, ``epsilon`` compared by its value (a copy
of an object has its tree structure), and serialised for ``jax.export``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from . import _after_import

__all__ = ["register", "register_when_jax_is_imported"]

_registered = False


def register() -> None:
    """Register :class:`s2nn_xp.S2NN` with ``jax.tree_util`` (once)."""
    global _registered
    if _registered:
        return
    from jax import tree_util

    from ._api import S2NN

    def flatten_with_keys(obj: S2NN) -> tuple[list[tuple[Any, Any]], Any]:
        leaves, aux = obj._tree_flatten()
        return [(tree_util.GetAttrKey(name), leaf) for name, leaf in leaves], aux

    def flatten(obj: S2NN) -> tuple[list[Any], Any]:
        leaves, aux = obj._tree_flatten()
        return [leaf for _, leaf in leaves], aux

    tree_util.register_pytree_with_keys(
        S2NN, flatten_with_keys, S2NN._tree_unflatten, flatten
    )
    _register_serialization(S2NN)
    _registered = True


def _register_serialization(node_type: type) -> None:
    """Let ``jax.export`` serialise functions whose arguments hold an S2NN.

    The static part, ``(epsilon, origin)``, is written as JSON: a float
    (its repr round-trips exactly), or an array's dtype, shape and bytes in
    native byte order (read back as a NumPy array, equal to the original
    as static parts compare). A brainstate state as ``epsilon`` has no
    value to write.
    """
    import jax

    register = getattr(jax.export, "register_pytree_node_serialization", None)
    if register is None:  # pragma: no cover - a JAX without it
        return
    import numpy as np

    from ._api import _Static

    def serialize(static: tuple[_Static, bool]) -> bytes:
        """The static part's key, the one it compares by, as JSON."""
        key, origin = static[0].key(), static[1]
        fields: dict[str, Any] = {"origin": origin}
        if isinstance(key, float):
            fields["epsilon"] = key
            return json.dumps(fields).encode()
        if key[0] is None:  # compared by identity: no values
            msg = (
                "jax.export cannot serialise an s2nn_xp.S2NN whose epsilon has "
                f"no values to write ({type(static[0].value).__name__}); pass a "
                "number or an array"
            )
            raise TypeError(msg)
        dtype, shape, raw = key
        # Its bytes, exactly (any dtype: longdouble, ml_dtypes'), and the
        # dtype's name: ml_dtypes' dtype.str is a raw-bytes code ('<V2').
        fields["bytes"] = base64.b64encode(raw).decode()
        fields["dtype"] = dtype.name
        fields["shape"] = list(shape)
        return json.dumps(fields).encode()

    def deserialize(data: bytes) -> tuple[Any, bool]:
        fields = json.loads(data)
        epsilon: Any
        if "bytes" in fields:
            raw = base64.b64decode(fields["bytes"])
            values = np.frombuffer(raw, dtype=np.dtype(fields["dtype"]))
            epsilon = values.reshape(fields["shape"]).copy()
        else:
            epsilon = float(fields["epsilon"])
        return (_Static(epsilon), bool(fields["origin"]))

    register(
        node_type,
        serialized_name="s2nn_xp.S2NN",
        serialize_auxdata=serialize,
        deserialize_auxdata=deserialize,
    )


def register_when_jax_is_imported() -> None:
    """Register now if JAX is imported, else right after it is."""
    # register is looked up at the call: the tests replace it.
    _after_import.when_imported(
        "jax",
        lambda: register(),
        "register s2nn_xp.S2NN as a JAX pytree (it still works as a function "
        "of arrays)",
    )
