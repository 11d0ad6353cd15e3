"""The ``S2NN`` object: the spike function as a callable with its parameters.

Its calls are the public functions of :mod:`s2nn_xp._api`; the rest is what
makes it a value: equality and hashing by its parameters, the copies it
keeps of arrays its owner may change, and the static part JAX compiles
(:class:`_Static`; its pytree registration is in :mod:`s2nn_xp._jax_pytree`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from . import _backends, _compat, _jax_pytree
from ._api import (
    ALPHA,
    BETA,
    EPSILON,
    Array,
    ArrayLike,
    Flag,
    Parameter,
    Pullback,
    gradient,
    origin,
    s2nn,
    vjp,
)
from ._validation import (
    check_real_dtype,
    may_be_zero,
    ml_dtypes_kind,
    tell_epsilon_is_constant,
    validate_flag,
    validate_parameter,
)

__all__ = ["S2NN"]

# S2NN or a subclass: what S2NN.__new__ makes (typing.Self is Python 3.11's).
_S2NNType = TypeVar("_S2NNType", bound="S2NN")

if TYPE_CHECKING:

    class _FlagAttribute:
        """A flag attribute as type checkers see it: a bool, set as validated."""

        def __get__(self, obj: object, owner: type | None = None) -> bool: ...
        def __set__(self, obj: object, value: Flag) -> None: ...


class S2NN:
    """The S2NN spike function as a callable object with its parameters.

    Calling it is :func:`s2nn` with its parameters; it also carries the
    smooth function and the surrogate gradient as methods, as
    ``braintools.surrogate.S2NN`` does.

    Once JAX is imported (before or after ``s2nn_xp``), an ``S2NN`` is a JAX
    pytree: `alpha` and `beta` are its leaves, `epsilon` and `origin` are
    static. So ``jax.grad`` of a loss in the object, optax updates of it,
    ``jax.jit`` and ``jax.vmap`` over it, and models (equinox modules, flax
    parameter trees) that hold one as a field train its parameters. A
    subclass is a pytree too (unless it registers itself): its own
    attributes are children after ``beta``, as an equinox module's fields
    are.

    An object equals one of its class with the same values (array
    parameters: the same arrays) and hashes by them, so that equal
    objects share what JAX compiles for them (static fields of equinox
    modules, ``jax.tree_util.Partial``, static arguments). JAX's caches keep
    a function or static argument as it is, the object itself, so an object
    changed after JAX has used it (``jax.jit(fn)``,
    ``jax.jit(fn.surrogate_grad)``, a branch of ``lax.cond``, a static
    argument) may or may not be traced again: a call of ``jax.jit(fn)``
    gives what was compiled for the old values, as a changed closure does,
    while a transform of that compiled function (``jax.grad``,
    ``jax.jvp``) traces it again and gets the new ones, so that a training
    step can run its forward pass with the old values and its backward
    pass with the new. As a static argument it also matches equal objects
    made later, which then get the old values too. So never change an
    object that a compiled or transformed function holds: pass the object
    as an argument (a pytree: its values are traced, its static part
    compared as it was), or make a new object and leave the old one as it
    is.

    Parameters
    ----------
    alpha, beta, epsilon : float, array or brainstate.State
        As for :func:`origin`; settable attributes, checked at construction
        and on assignment (``fn.alpha = 2.0``) alike. A ``brainstate`` state
        (such as a ``ParamState``) is read at every call, so that
        ``brainstate.transform.grad`` over the state trains it; the value it
        holds when it is passed is checked as an array parameter is (its
        dtype and shape; its values where they sit in host memory, which a
        JAX array's do not). An array `alpha` or `beta` is held as given,
        not copied, for its framework to train it there (a tensor, a flax
        variable) and for a NumPy loop to update it in place: such an
        update changes the object, which a function JAX compiled with the
        object may not see (above). A NumPy `epsilon` (or a list) is kept as a
        read-only copy (made writeable and changed, it is not seen by a
        function JAX compiled with it, and the object keeps comparing as
        made: assign a new `epsilon` instead): it
        is static where JAX compiles the object, so an
        object made inside a transformed function from a traced `epsilon`
        (``jax.vmap`` over it) serves there but cannot be returned from it
        (JAX's "leaked tracer" at its next call); make it from a concrete
        one, or return the results, not the object. A JAX `epsilon` is
        static too: ``jax.device_put`` and ``jax.device_get`` of the object
        leave it where it is, and a call on `x` elsewhere (or on host data)
        uses its values, as a compiled call does. Copies
        (``copy``, ``pickle``) keep `alpha` and `beta` unchecked, as JAX's
        rebuilds of the pytree do: a tree of this structure may hold
        gradients or optax's labels there; a call checks them.
    origin : bool, default False
        Return the smooth function instead of the spike; a settable attribute.

    Raises
    ------
    ValueError, TypeError
        A parameter or flag that :func:`s2nn` would reject, at construction
        or assignment.

    Examples
    --------
    >>> import numpy as np
    >>> import s2nn_xp
    >>> fn = s2nn_xp.S2NN(alpha=4.0, beta=1.0)
    >>> fn
    S2NN(alpha=4.0, beta=1.0, epsilon=1e-08)
    >>> fn(np.array([-0.5, 0.5]))
    array([0., 1.])
    >>> fn.origin = True
    >>> fn(np.array([0.0]))
    array([0.50000001])
    >>> fn.surrogate_grad(np.array([0.0, 1.0]))
    array([1. , 0.5])
    >>> fn.alpha = -1.0
    Traceback (most recent call last):
    ...
    ValueError: alpha must be finite and > 0.0
    """

    # __weakref__: jax.jit and jax.checkpoint of the object itself keep weak
    # references to the function they compile.
    if TYPE_CHECKING:  # origin read as a bool, assigned as validate_flag takes it
        __slots__ = ("__weakref__", "alpha", "beta", "epsilon")
        origin: _FlagAttribute = _FlagAttribute()
    else:
        __slots__ = ("__weakref__", "alpha", "beta", "epsilon", "origin")

    def __new__(cls: type[_S2NNType], *args: Any, **kwargs: Any) -> _S2NNType:
        """A new object; a class's first one makes the class a pytree.

        JAX's pytree registry holds classes, not their subclasses: a subclass
        was one opaque leaf, whose parameters equinox and brainstate then
        left untrained, silently. Registered here, at its first object,
        after any registration of its own (a decorator) has run, which
        stands.
        """
        _jax_pytree.register_subclass(cls)
        # object's takes no arguments; a mixin's own __new__ (the next in
        # the class's method order) gets them. Found by the class that
        # defines it, at every object (a class may change): comparing the
        # method with object.__new__ instead, torch.compile's tracing found
        # them different and gave object.__new__ the keyword arguments (an
        # AssertionError inside the compiler, no graph break).
        order = cls.__mro__
        after = order[order.index(S2NN) + 1 :]
        if next(k for k in after if "__new__" in k.__dict__) is object:
            return super().__new__(cls)
        return super().__new__(cls, *args, **kwargs)

    def __init__(
        self,
        alpha: Parameter = ALPHA,
        beta: Parameter = BETA,
        epsilon: Parameter = EPSILON,
        origin: Flag = False,
    ) -> None:
        """Check and set the parameters (see the class's docstring)."""
        self.alpha = alpha
        self.beta = beta
        self.epsilon = epsilon
        self.origin = origin

    if not TYPE_CHECKING:  # which would then take any name (``fn.orgin = True``)

        def __setattr__(self, name: str, value: Any) -> None:
            """Every assignment is checked as the constructor checks its argument.

            A subclass's own attributes are not checked.
            """
            if name == "origin":
                value = validate_flag(name, value)
            elif name in _PARAMETER_NAMES:
                value = _checked_parameter(name, value)
            object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        """Refused: an object without a parameter would fail at every call.

        A subclass's own attributes may go (and leave the pytree).
        """
        if name in _NOT_OWN:
            msg = f"cannot delete {name!r} of S2NN; assign a new value instead"
            raise AttributeError(msg)
        object.__delattr__(self, name)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Protocol 2's reduction for every protocol (a subclass's state too).

        Pickle's protocols 0 and 1 refuse a class with ``__slots__`` and no
        ``__getstate__``; protocol 2's reduction holds the slots and any
        ``__dict__``, which :meth:`__setstate__` sets back.
        """
        return super().__reduce_ex__(max(protocol, 2))

    def __setstate__(self, state: Any) -> None:
        """The state of pickle's and copy's reduction set back.

        ``alpha`` and ``beta`` as they were, unchecked, as JAX rebuilds the
        pytree (:meth:`_tree_unflatten`): a tree of this structure may hold
        gradients, optimizer moments or optax's labels there, which are no
        parameter values (a call checks its parameters anyway); the static
        rest, and a subclass's own state, by ``__setattr__``.
        """
        own, slots = state if isinstance(state, tuple) else (state, None)
        for values in (own, slots):
            for name, value in (values or {}).items():
                if name in _LEAVES:
                    object.__setattr__(self, name, value)
                else:
                    setattr(self, name, value)

    def _values(self, x: Any) -> tuple[Any, Any, Any]:
        """(alpha, beta, epsilon) as they are now for a call on ``x``.

        States are read; ``epsilon`` as :func:`_static_for` gives it.
        """
        alpha, beta, epsilon = (
            _read_for(n, getattr(self, n), x) for n in _PARAMETER_NAMES
        )
        return alpha, beta, _static_for(epsilon, x)

    def __call__(self, x: ArrayLike) -> Array:
        """``s2nn(x, alpha, beta, epsilon, origin=self.origin)``."""
        return s2nn(x, *self._values(x), origin=self.origin)

    def surrogate_fun(self, x: ArrayLike) -> Array:
        """The smooth original function, :func:`origin`, with these parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from s2nn_xp import S2NN
        >>> S2NN(alpha=2.0).surrogate_fun(np.array([-1.0, 0.0, 1.0]))
        array([0.11920292, 0.50000001, 1.19314719])
        """
        return origin(x, *self._values(x))

    def surrogate_grad(self, x: ArrayLike) -> Array:
        """The surrogate gradient, :func:`gradient`, with these parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from s2nn_xp import S2NN
        >>> S2NN(alpha=2.0).surrogate_grad(np.array([-1.0, 0.0, 1.0]))
        array([0.20998717, 1.        , 0.5       ])
        """
        alpha, beta, _ = self._values(x)
        return gradient(x, alpha, beta)

    def vjp(self, x: ArrayLike) -> tuple[Array, Pullback[Array]]:
        """:func:`vjp` with this object's parameters (and its ``origin``).

        Examples
        --------
        >>> import numpy as np
        >>> from s2nn_xp import S2NN
        >>> spikes, pullback = S2NN(alpha=2.0).vjp(np.array([-1.0, 0.0, 1.0]))
        >>> spikes
        array([0., 1., 1.])
        >>> pullback(np.array([1.0, 1.0, 2.0]))
        array([0.20998717, 1.        , 1.        ])
        """
        return vjp(x, *self._values(x), origin=self.origin)

    # --- JAX pytree: see s2nn_xp._jax_pytree, which registers these ----------

    def _tree_flatten(self) -> tuple[tuple[tuple[str, Any], ...], tuple[Any, ...]]:
        """((name, leaf), ...) for alpha and beta, and the static rest.

        A parameter held in a brainstate state is a leaf too (the state
        itself), so that brainstate finds the state in a module that holds
        this object, as it finds the states of its own modules. A subclass's
        own attributes (:func:`_own_state`) are children after ``beta``, and
        their names a third item of the static part.
        """
        leaves = tuple((name, getattr(self, name)) for name in _LEAVES)
        static: tuple[Any, ...] = (_Static(self.epsilon), self.origin)
        if type(self) is S2NN:
            return leaves, static
        own = _own_state(self)
        return leaves + own, (*static, tuple(name for name, _ in own))

    @classmethod
    def _tree_unflatten(cls, static: tuple[Any, ...], leaves: Iterable[Any]) -> S2NN:
        """The object back from ``_tree_flatten``'s parts, unchecked.

        JAX rebuilds pytrees with tracers, ``None`` and other placeholders as
        leaves; they are not parameter values to check.
        """
        epsilon, flag, *own = static
        obj = object.__new__(cls)
        names = _LEAVES + (own[0] if own else ())
        for name, leaf in zip(names, leaves, strict=True):
            object.__setattr__(obj, name, leaf)
        object.__setattr__(obj, "epsilon", epsilon.value)
        object.__setattr__(obj, "origin", flag)
        return obj

    def __repr__(self) -> str:
        # A subclass's own attributes too: equality compares them, and two
        # unequal objects printed alike (a puzzle where a JAX cache missed).
        own = (
            ""
            if type(self) is S2NN
            else "".join(f", {name}={value!r}" for name, value in _own_state(self))
        )
        flag = ", origin=True" if self.origin else ""
        return (
            f"{type(self).__name__}(alpha={self.alpha!r}, beta={self.beta!r}, "
            f"epsilon={self.epsilon!r}{flag}{own})"
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self) or not isinstance(other, S2NN):
            return NotImplemented
        try:
            mine, theirs = self._tree_flatten(), other._tree_flatten()
        except AttributeError:  # one not built yet: itself only (see __hash__)
            return NotImplemented
        # The leaves as alpha and beta compare (a subclass's attributes too);
        # the static part (epsilon, origin, a subclass's attribute names) as
        # JAX compares it: epsilon by value.
        same = len(mine[0]) == len(theirs[0]) and all(
            _same(a, b) for (_, a), (_, b) in zip(mine[0], theirs[0], strict=False)
        )
        return same and mine[1] == theirs[1]

    def __hash__(self) -> int:
        # Every value that equality compares (origin too): JAX's caches keep
        # the object itself, changed or not, under the hash of its first
        # use, and find that entry again only by an equal hash.
        try:
            leaves, static = self._tree_flatten()
        except AttributeError:
            # Not built yet, so equal to itself only (torch.compile hashes
            # it while it traces __init__, and crashed where this raised).
            return object.__hash__(self)
        keys = (_hash_key(leaf) for _, leaf in leaves)
        return hash((type(self), *keys, static))


# inspect (help(), Sphinx, IDEs) takes a class's signature from a __new__ of
# its own before its __init__: S2NN's (and a subclass's without an __init__)
# is __init__'s.
S2NN.__new__.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    S2NN.__init__
).replace(return_annotation=inspect.Signature.empty)

_PARAMETER_NAMES = ("alpha", "beta", "epsilon")
_LEAVES = ("alpha", "beta")
"""The parameters that are pytree leaves (differentiable); epsilon is a constant."""


def _own_state(obj: S2NN) -> tuple[tuple[str, Any], ...]:
    """A subclass's own attributes, ``((name, value), ...)`` in name order.

    Its instance ``__dict__`` and the slots of its classes below
    :class:`S2NN` (read through the slots themselves: a ``__getattr__`` of
    its own would answer for one unset). Every one is a pytree child, as an
    equinox module's fields are, whatever its value: arrays (in lists,
    tuples, dicts, other pytrees too) train; anything else is a leaf that
    JAX's transforms refuse, as in any pytree. Deciding by the value
    instead left arrays in hashable containers, or set without
    ``__setattr__``, static and untrained, silently; and JAX rebuilds trees
    with placeholders in the leaves, whose structure must not change.
    """
    try:  # not getattr: a __getattr__ of its own would answer where none is
        state = dict(object.__getattribute__(obj, "__dict__"))
    except AttributeError:  # slots only
        state = {}
    for klass in type(obj).__mro__:
        if klass is S2NN:
            break
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"  # mangled
            if name in ("__dict__", "__weakref__"):
                continue
            with contextlib.suppress(AttributeError):  # unset
                state[name] = klass.__dict__[name].__get__(obj, klass)
    return tuple(
        (name, state[name]) for name in sorted(state) if name not in _NOT_CHILDREN
    )


# S2NN's own attributes: a subclass's are all others.
_NOT_OWN = frozenset(("alpha", "beta", "epsilon", "origin"))
# Names in a subclass's state that are no children of its own: S2NN's (a class
# attribute of one puts the value in __dict__), and typing.Generic's
# bookkeeping of a parametrised class.
_NOT_CHILDREN = _NOT_OWN | {"__orig_class__"}


def _same(a: Any, b: Any) -> bool:
    """Floats compare by value, array parameters by identity (alpha, beta).

    Both must be floats to compare by value: a float against an array would
    compare elementwise (an array, whose truth NumPy refuses for more than
    one element, and a 0-d array equal to a float that hashes otherwise).
    A subclass's own Python scalars and strings compare by value too, of
    one type (``1`` and ``True`` are no equal settings).
    """
    if a is b or (isinstance(a, float) and isinstance(b, float) and a == b):
        return True
    return type(a) is type(b) and type(a) in _BY_VALUE and a == b


# Types of a subclass's own attributes that compare and hash by value.
_BY_VALUE = frozenset((int, bool, complex, str, bytes))


def _hash_key(value: Any) -> Any:
    """Floats by value; arrays by a token of the array object (as they compare).

    Not by ``id``: CPython gives a new array the id of a freed one, and JAX's
    caches, which keep the object itself under the hash of its first use,
    then found an entry traced with the old array's values. Not by value:
    that read every array at every hash (a device's wait and copy, a Dask
    graph's computation) and changed with an update in place (a set lost
    the object).
    """
    if isinstance(value, float) or type(value) in _BY_VALUE:
        return value
    return _identity_token(value)


def _identity_token(value: Any) -> int:
    """A number for ``value`` that no other object alive now or before had.

    Kept while the object lives (:func:`_per_object`); objects that take no
    weak reference get their ``id``.
    """
    token = _per_object(_TOKENS, value, lambda _: next(_COUNTER))
    return id(value) if token is None else token


def _per_object(table: dict[int, Any], value: Any, make: Callable[[Any], Any]) -> Any:
    """``make(value)``, made once for each object while it lives; or None.

    Kept in ``table`` by the object's ``id`` beside a weak reference to it,
    which takes the entry out when the object goes (CPython gives a new
    object the id of a freed one); None for an object that takes no weak
    reference. ``make`` runs without the lock: reading an array may wait
    for another thread (its import of brainstate, a device), whose garbage
    collection may take an entry out meanwhile; where two threads make one
    for the same object, the first kept is the one both return.
    """
    key = id(value)
    held = table.get(key)
    if held is not None and held[0]() is value:
        return held[1]
    try:
        reference = weakref.ref(value, functools.partial(_forget, table, key))
    except TypeError:  # no weak references to it
        return None
    made = make(value)
    with _TOKENS_LOCK:  # between the look and the keeping: one for both threads
        held = table.get(key)
        if held is not None and held[0]() is value:
            return held[1]
        table[key] = (reference, made)
    return made


def _forget(table: dict[int, Any], key: int, _: Any = None) -> None:
    """Take out the entry of an object that goes (its weak reference's callback).

    Without the lock: a callback runs in whichever thread frees the object,
    where it may hold what the lock's holder waits for. No new object has
    the id until the callback has returned (the memory is freed after), so
    an entry whose reference is dead is the one to take out.
    """
    held = table.get(key)
    if held is not None and held[0]() is None:  # not a newer object's entry
        table.pop(key, None)


# id of an array parameter -> (weak reference to it, its token)
_TOKENS: dict[int, tuple[weakref.ref[Any], int]] = {}
_COUNTER = itertools.count(1)
# Held for the dictionaries' look and keeping alone (_per_object); never
# while anything waits.
_TOKENS_LOCK = threading.RLock()


def _new_lock() -> None:
    global _TOKENS_LOCK
    _TOKENS_LOCK = threading.RLock()


_compat.in_forked_child(_new_lock)


def _static_for(epsilon: Any, x: Any) -> Any:
    """An object's ``epsilon`` for a call on ``x``: a JAX array's values if elsewhere.

    ``epsilon`` is static in the pytree: ``jax.device_put`` and
    ``jax.device_get`` of the object move ``alpha`` and ``beta``, not it, and
    a compiled call takes it as a constant wherever ``x`` is. So does every
    other call, where a concrete JAX ``epsilon`` is committed to other
    devices than a JAX ``x``'s (or to any, where ``x`` is a tracer, which
    shows none), or ``x`` is host data (the object brought to the host):
    its values, which go where ``x`` is. (They were refused:
    "move epsilon to x's", which the object's own move had not done.) With
    another library's ``x``, it is refused as any JAX array is.
    """
    # Not array-api-compat's is_jax_array, whose cache torch.compile warns
    # about where it traces a call of the object.
    jax = _compat.imported("jax")
    if jax is None or not isinstance(epsilon, jax.Array):
        return epsilon
    if _compat.is_jax_tracer(epsilon):
        return epsilon
    x = _compat.stood_for(x)
    if isinstance(x, jax.Array):
        committed = _compat.committed_devices(epsilon)
        if committed is None:  # JAX moves it where x is
            return epsilon
        # A tracer (grad, vmap outside jit) shows no device to compare.
        if not _compat.is_jax_tracer(x) and committed == _compat.committed_devices(x):
            return epsilon
    elif _compat.is_array_api_obj(x) and not _compat.is_numpy_array(x):
        return epsilon
    import numpy as np

    return np.asarray(epsilon)


class _Static:
    """A parameter in a pytree's static part (``epsilon``), compared by value.

    By value where it has concrete values (a float, an array), so that a
    copy (``copy.deepcopy``, a checkpoint read back, a ``jax.export``
    deserialised) has the same tree structure as the original, and equal
    objects share one compiled function; a brainstate state, anything whose
    values cannot be read (a tracer), or a lazy array (a Dask array, whose
    values a hash would compute, at every hash), by identity, or by the
    graph that a lazy array names (:func:`_graph_token`).
    """

    __slots__ = ("_key", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._key: Any = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static) and (
            self.value is other.value or self.key() == other.key()
        )

    def __hash__(self) -> int:
        return hash(self.key())

    def key(self) -> Any:
        """A float itself; an array's ``(dtype, shape, bytes)``; else ``(None, token)``.

        The bytes in native byte order, the dtype itself, not its ``str``:
        ml_dtypes' share codes (``'<V1'`` for most float8 formats), so equal
        bytes of two of them would compare equal. Computed once for each
        array whose values cannot change (:func:`_key_of_value`: an epsilon
        may be large, and a jitted function flattens its arguments at every
        call, which read a device's array and hashed it at every training
        step); ``jax.export`` writes it (``_jax_pytree``).
        """
        if self._key is None:
            if isinstance(self.value, float):
                self._key = self.value
            else:
                self._key = _key_of_value(self.value)
        return self._key

    def __repr__(self) -> str:
        return repr(self.value)


def _key_of_value(value: Any) -> Any:
    """:meth:`_Static.key` of an array; kept while it lives where it cannot change.

    An array of a library whose arrays are immutable (JAX's, a tracer), or
    a read-only NumPy array (an object's own copy). Others, which can be
    changed in place (a tensor's ``fill_``, a Dask array's assignment, which
    gives it another graph), are keyed again at each flattening, as
    ``jax.jit`` finds their objects then.
    """
    # One keyed once keeps its key (a NumPy copy made writeable and changed
    # would otherwise equal new objects of its new values, which then took
    # the function JAX compiled with its old ones); asked first, so that a
    # kept key costs no registry lookup at each flattening.
    kept = id(value) in _KEYS or _unchanging(value)
    key = _per_object(_KEYS, value, _values_key) if kept else None
    return _values_key(value) if key is None else key


def _unchanging(value: Any) -> bool:
    """Whether `value`'s values cannot change: see :func:`_key_of_value`."""
    if isinstance(value, np.ndarray):
        return not value.flags.writeable
    backend = _backends.of_array(value)
    return backend is not None and not backend.mutable_arrays and not backend.lazy


def _values_key(value: Any) -> Any:
    """``value``'s ``(dtype, shape, bytes)``, or ``(None, token)`` unread."""
    values = None if _unread(value) else _concrete(value)
    if values is None:
        return (None, _graph_token(value))
    return (values.dtype, values.shape, values.tobytes())


# id of an epsilon array -> (weak reference to it, its key)
_KEYS: dict[int, tuple[weakref.ref[Any], Any]] = {}


def _graph_token(value: Any) -> Any:
    """What names the values of `value`, which cannot be read: its identity.

    A lazy array that names its graph (Dask's ``__dask_tokenize__``, which
    reads nothing) is named by it: the copy an object keeps of a Dask array
    (:func:`_checked_parameter`) has its graph, so that two objects made
    from one array are equal, and an assignment to the array gives it
    another graph.
    """
    tokenize = getattr(value, "__dask_tokenize__", None)
    if tokenize is not None and _backends.is_lazy(value):
        return (type(value), tokenize())
    return id(value)


def _unread(value: Any) -> bool:
    """Whether `value`, with values or not, is compared without reading them.

    A brainstate state (by identity), and a lazy array (its record's
    ``lazy``: Dask's), whose values a hash would compute (by the graph it
    names, :func:`_graph_token`). A JAX array is read where it is concrete;
    a tracer cannot be (:func:`_concrete`).
    """
    return _is_state(value) or _backends.is_lazy(value)


def _concrete(value: Any) -> Any:
    """``value``'s values as a NumPy array in native byte order, or None.

    None where they cannot be read. Native byte order, as pickling gives
    back and a ``jax.export`` round trip writes: one value, one key. Read
    as its backend record reads values on the host (``to_numpy``: a
    library NumPy cannot read, as pydata/sparse, compared by identity
    before), else by NumPy.
    """
    import numpy as np

    backend = _backends.of_array(value)
    read = (
        backend.to_numpy
        if backend is not None and backend.values_on_host and not backend.lazy
        else np.asarray
    )
    try:
        values = read(value)
    except Exception:  # a tracer, a CuPy array or CUDA tensor: no host values
        return None
    if not values.dtype.isnative:
        values = values.astype(values.dtype.newbyteorder("="))
    return values


def _is_state(value: Any) -> bool:
    """Whether `value` is a brainstate state (brainstate is never imported here)."""
    brainstate = _compat.imported("brainstate")
    return brainstate is not None and isinstance(value, brainstate.State)


def _read(value: Any) -> Any:
    """A parameter's value now: a state's current value, anything else itself."""
    return value.value if _is_state(value) else value


def _read_for(name: str, value: Any, x: Any) -> Any:
    """:func:`_read` of parameter ``name`` for a call on ``x``.

    brainstate's ``vmap`` over states runs the function once with NumPy
    zeros in place of each batched state's values (its probe of the states
    the function touches), which a check of host values refused as an
    ``alpha`` or ``beta`` of 0, so that a per-lane ``alpha`` never ran. A
    state's NumPy zeros for those, with a JAX ``x``, are taken as the JAX
    array they stand for (whose values the adapter makes NaN, as any out of
    range); any other NumPy value of a state is checked as host values are.
    """
    held = _read(value)
    if held is value or may_be_zero(name):
        return held
    if (
        isinstance(held, np.ndarray)
        and _compat.is_jax_array(_compat.stood_for(x))
        # of the state's dtype: integers, ml_dtypes' bfloat16 too
        and (held.dtype.kind in "iuf" or ml_dtypes_kind(held.dtype) is not None)
        and not held.any()
    ):
        import jax.numpy as jnp

        return jnp.asarray(held)
    return held


def _is_array_like_variable(value: Any) -> bool:
    """Whether `value`, a wrapper of a JAX array, is a framework's variable.

    One that says it is an array (``__array_namespace__``) and that JAX
    flattens into its array (a pytree node), as flax's ``nnx.Param``: kept,
    flax trains it; ``jax.jit`` of the object sees its array. Other
    wrappers (brainpy's ``Array``; one that is no pytree node, which
    ``jax.jit`` would refuse as an argument) are kept as their array.
    """
    jax = _compat.imported("jax")
    if jax is None or not _compat.is_array_api_obj(value):
        return False
    structure = jax.tree_util.tree_structure(value)
    return not jax.tree_util.treedef_is_leaf(structure)


def _checked_parameter(name: str, value: Any) -> Any:
    """``validate_parameter`` of `value`, or of the value a state holds.

    An array's dtype is checked too (the calls check it, but it is known
    now): a complex or bool array is refused here, not at the first call.
    """
    read = _read(value)
    checked = validate_parameter(name, read)
    if isinstance(checked, float):
        # A number: nothing for array-api-compat to tell (torch.compile warns
        # about its cached helpers while it traces a constructor).
        return value if _is_state(value) else checked
    if _compat.is_array_api_obj(checked):
        check_real_dtype(name, _compat.array_namespace(checked), checked.dtype)
    made_here = getattr(read, "dtype", None) is None and _compat.is_numpy_array(checked)
    integral = made_here and (
        checked.dtype.kind in "iu" or ml_dtypes_kind(checked.dtype) == "integral"
    )
    if integral:
        # Host data (a list of ints) made into an array here: of floats, as
        # an int becomes one (an int64 leaf, which jax.grad of the object
        # refused; the PyTorch module makes such a list its default float).
        checked = checked.astype(float)
    if name != "epsilon" and checked is not read and _is_array_like_variable(read):
        # Kept as given, as a state is, for its framework to find it there
        # and train it (the calls unwrap it, checking its value); epsilon, a
        # constant (static where JAX compiles the object), is its array.
        return value
    if name == "epsilon" and _mutable_array(checked):
        # A copy (read-only for NumPy): epsilon is static where JAX compiles
        # the object (its values are in the compiled code, found again by
        # value) and the object is hashed by it, so a change to the caller's
        # array must not reach it unseen (a tensor's did: its hash changed).
        if _compat.is_torch_array(checked):
            tell_epsilon_is_constant(checked)  # as the PyTorch functions do
            checked = checked.detach()
        checked = _compat.array_namespace(checked).asarray(checked, copy=True)
        if _compat.is_numpy_array(checked):
            checked.setflags(write=False)
    return value if _is_state(value) else checked


def _mutable_array(value: Any) -> bool:
    """Whether ``value`` is an array whose values its owner may change in place.

    Its record's ``mutable_arrays`` says (JAX's cannot be changed); an array
    of no record may be.
    """
    if not _compat.is_array_api_obj(value):
        return False
    backend = _backends.of_array(value)
    return backend is None or backend.mutable_arrays
