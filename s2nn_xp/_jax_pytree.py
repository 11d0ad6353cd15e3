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
A subclass is registered at its first object (:func:`register_subclass`),
or with ``S2NN`` where it was made before JAX was imported; its own
attributes are children after ``beta`` (``S2NN._tree_flatten``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import threading
import warnings
from typing import Any

from . import _after_import, _compat, _fused

__all__ = [
    "register",
    "register_subclass",
    "register_when_jax_is_imported",
    "register_with_flax",
]

_registered = False
# The classes registered (S2NN and its subclasses), or found registered by
# their own code; under the lock, as two threads may make a subclass's first
# objects at once.
_classes: set[type] = set()
_LOCK = threading.Lock()


def _new_lock() -> None:
    global _LOCK
    _LOCK = threading.Lock()


_compat.in_forked_child(_new_lock)


def register() -> None:
    """Register :class:`s2nn_xp.S2NN` and its subclasses with ``jax.tree_util``."""
    global _registered
    from ._object import S2NN

    with _LOCK:
        if _registered:
            return
        _register_class(S2NN)
        _registered = True
        # Subclasses made before JAX was imported (their objects too).
        pending = list(S2NN.__subclasses__())
        while pending:
            subclass = pending.pop()
            pending.extend(subclass.__subclasses__())
            _register_class(subclass)


def register_subclass(cls: type) -> None:
    """Register :class:`s2nn_xp.S2NN` or a subclass if JAX is imported (once).

    Else :func:`register` does, when JAX is. ``S2NN`` itself comes here too:
    a module that defines it again (``importlib.reload``) makes another
    class, which :func:`register` had not seen.
    """
    if cls in _classes or not _registered:  # every object but its first; no JAX
        # (Read without the lock, which torch.compile cannot trace: register()
        # sets _registered before it walks the subclasses that exist, this
        # one among them.)
        return
    with _LOCK:
        _register_class(cls)


def _register_class(cls: type) -> None:
    """Register ``cls`` (S2NN or a subclass) unless it is, or registered itself."""
    if cls in _classes:
        return
    from jax import tree_util

    def flatten_with_keys(obj: Any) -> tuple[list[tuple[Any, Any]], Any]:
        leaves, aux = obj._tree_flatten()
        return [(tree_util.GetAttrKey(name), leaf) for name, leaf in leaves], aux

    def flatten(obj: Any) -> tuple[list[Any], Any]:
        leaves, aux = obj._tree_flatten()
        return [leaf for _, leaf in leaves], aux

    try:
        tree_util.register_pytree_with_keys(
            cls,
            flatten_with_keys,
            cls._tree_unflatten,  # type: ignore[attr-defined]
            flatten,
        )
    except ValueError as error:
        if "Duplicate" not in str(error):
            raise
        # A subclass that registered itself (a decorator): its rules stand.
        refusal = None
    else:
        refusal = _register_serialization(cls)
    _classes.add(cls)
    serialization = _flax_serialization()
    if serialization is not None:
        _register_flax_state(cls, serialization)
    if refusal is not None:  # last: the class is registered, even if it raises
        level = _fused.stacklevel_of_the_user()
        warnings.warn(refusal, RuntimeWarning, stacklevel=level)


def _flax_serialization() -> Any:
    """``flax.serialization`` where it is imported, and finished, else None.

    Read, never imported, under the lock: while another thread imports
    flax, an import here would wait for that thread, which waits for the
    lock to run :func:`register_with_flax` (a deadlock). Where it is not
    finished, that hook has yet to run, and registers the class then.
    """
    return _compat.finished("flax.serialization")


def register_with_flax() -> None:
    """Register every class registered with JAX with ``flax.serialization`` too.

    Run right after flax is imported, in the importing thread; subclasses
    registered later are at their registration (flax looks its handlers up
    by the exact type).
    """
    import importlib

    serialization = importlib.import_module("flax.serialization")  # before the lock
    with _LOCK:
        for cls in list(_classes):
            _register_flax_state(cls, serialization)


def _register_flax_state(cls: type, serialization: Any) -> None:
    """Let flax's ``to_state_dict``, ``to_bytes`` and ``from_bytes`` take ``cls``.

    Its state dict is its pytree children by name (``alpha``, ``beta``, a
    subclass's own attributes), each as flax writes it; the static part
    comes from the target that ``from_state_dict`` restores into, as for
    the pytree. A handler of the user's own for the class stands. Restored
    values are not checked, as JAX's rebuilds of the pytree and copies are
    not: a tree of this structure may hold an optimizer's moments.
    """

    def to_state_dict(obj: Any) -> dict[str, Any]:
        leaves, _ = obj._tree_flatten()
        return {name: serialization.to_state_dict(leaf) for name, leaf in leaves}

    def from_state_dict(target: Any, state: dict[str, Any]) -> Any:
        leaves, static = target._tree_flatten()
        names = [name for name, _ in leaves]
        if sorted(state) != sorted(names):
            msg = (
                f"the state dict of a {type(target).__name__} holds "
                f"{sorted(state)}, not its fields {names}"
            )
            raise ValueError(msg)
        restored = [
            serialization.from_state_dict(leaf, state[name], name=name)
            for name, leaf in leaves
        ]
        return type(target)._tree_unflatten(static, restored)

    with contextlib.suppress(ValueError):  # "already registered": theirs
        serialization.register_serialization_state(cls, to_state_dict, from_state_dict)


def _register_serialization(node_type: type) -> str | None:
    """Let ``jax.export`` serialise functions whose arguments hold an S2NN.

    The static part, ``epsilon`` and ``origin`` (and the names of a
    subclass's own attributes), is written as JSON: a float (its repr
    round-trips exactly), or an array's dtype, shape and bytes in native
    byte order (read back as a NumPy array, equal to the original as static
    parts compare). A brainstate state as ``epsilon`` has no value to write.
    A subclass is written under its module and name; a class defined again
    takes the name from its earlier definition. Returns why the class
    cannot be written where JAX refuses it the name, else None.
    """
    try:
        # Imported, not read as jax's attribute: older JAX (0.4.35, the
        # oldest the package takes) does not import jax.export with jax.
        from jax import export
    except ImportError:  # pragma: no cover - a JAX without it
        return None
    register = getattr(export, "register_pytree_node_serialization", None)
    if register is None:  # pragma: no cover - a JAX without it
        return None
    import numpy as np

    from ._object import S2NN, _Static

    def serialize(static: tuple[Any, ...]) -> bytes:
        """The static part's key, the one it compares by, as JSON."""
        epsilon, origin, *own = static
        key = epsilon.key()
        fields: dict[str, Any] = {"origin": origin}
        if own:  # a subclass's
            fields["own"] = list(own[0])
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

    def deserialize(data: bytes) -> tuple[Any, ...]:
        fields = json.loads(data)
        own = (tuple(fields["own"]),) if "own" in fields else ()
        epsilon: Any
        if "bytes" in fields:
            raw = base64.b64decode(fields["bytes"])
            values = np.frombuffer(raw, dtype=np.dtype(fields["dtype"]))
            epsilon = values.reshape(fields["shape"]).copy()
        else:
            epsilon = float(fields["epsilon"])
        return (_Static(epsilon), bool(fields["origin"]), *own)

    if node_type is S2NN:
        name = "s2nn_xp.S2NN"
    else:
        name = f"{node_type.__module__}.{node_type.__qualname__}"
    _take_name_from_a_replaced_definition(node_type, name)
    try:
        register(
            node_type,
            serialized_name=name,
            serialize_auxdata=serialize,
            deserialize_auxdata=deserialize,
        )
    except ValueError:  # the name another class's: still a pytree
        return (
            f"jax.export cannot serialise objects of this {name}: another "
            "class holds the name it is written under (of classes made in a "
            "function, the first one made; else an earlier definition, in "
            "this Python process); define the class once, at a module's top "
            "level, to export its objects"
        )
    return None


def _take_name_from_a_replaced_definition(node_type: type, name: str) -> None:
    """Let ``node_type`` have ``name`` where a definition it replaced holds it.

    A class defined again (a notebook cell run again; ``importlib.reload``
    of s2nn_xp, or a notebook's hard reload) has the name of its earlier
    definition, which JAX refuses to give a second class: the new class's
    objects could not be serialised. The earlier one is replaced where its
    module now holds ``node_type`` under its name; it keeps writing its
    objects under the name, which reads back as ``node_type``. Classes
    made in a function (``<locals>``) may live side by side, differing
    (a closure's values): there the first keeps the name, and its blobs
    stay readable. JAX offers no way to drop a registration; its private
    registry is read where it is the one that
    ``register_pytree_node_serialization`` keeps (JAX 0.4.35 to 0.10).
    """
    registry = _private_deserialization_registry()
    if registry is None or name not in registry:
        return
    earlier = registry[name][0]
    if (
        isinstance(earlier, type)
        and earlier is not node_type
        and (earlier.__module__, earlier.__qualname__)
        == (node_type.__module__, node_type.__qualname__)
        and _defined_at_top(node_type) is node_type
    ):
        del registry[name]


def _defined_at_top(cls: type) -> Any:
    """What ``cls``'s module holds under its qualified name now (None if nothing)."""
    module = sys.modules.get(cls.__module__)
    value: Any = module
    for part in cls.__qualname__.split("."):
        value = getattr(value, part, None)  # '<locals>' finds nothing
    return value


def _private_deserialization_registry() -> dict[str, Any] | None:
    """JAX's private registry of serialised names, or None where it differs."""
    try:
        from jax._src.export import _export
    except ImportError:  # pragma: no cover - a JAX that moved it
        return None
    registry = getattr(_export, "deserialization_registry", None)
    return registry if isinstance(registry, dict) else None


def register_when_jax_is_imported() -> None:
    """Register now if JAX is imported, else right after it is; with flax too."""
    # register is looked up at the call: the tests replace it.
    _after_import.when_imported(
        "jax",
        lambda: register(),
        "register s2nn_xp.S2NN as a JAX pytree (it still works as a function "
        "of arrays)",
    )
    _after_import.when_imported(
        "flax",
        lambda: register_with_flax(),
        "register s2nn_xp.S2NN with flax.serialization (flax's to_bytes cannot "
        "write it)",
    )
