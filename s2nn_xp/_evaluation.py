"""How the array-API path computes: whole, by NumPy blocks, or by Dask chunks.

:func:`evaluate` computes one of ``_math``'s functions (or the pullback's
product) of prepared input, for the libraries without an adapter
(:mod:`s2nn_xp._dispatch` chose the array-API path): contiguous NumPy input
block by block through :mod:`s2nn_xp._numpy_kernels`, with temporaries that
stay in cache; Dask arrays of NumPy chunks one task a chunk, each running
the NumPy path; anything else by ``_math`` on the whole array.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from . import _compat, _math
from ._math import Array
from ._temporaries import Kept
from ._validation import (
    Prepared,
    finish,
    has_masked_chunks,
    known,
    masked_parameter,
    masked_result,
    unmasked,
    with_cotangent_mask,
)

__all__ = ["evaluate"]

# Bytes of one block of a large NumPy input: the three temporaries of the
# NumPy kernels for a block of this size stay in a core's own (L2) cache, so
# a whole computation costs about one pass over main memory and one output
# array of memory. Measured on the project's machine (gradient at 2^24
# float32 values, time / copy floor): 4.2-4.3x with 512 KiB blocks (spilled
# to the shared cache), 3.6-3.9x with 256 KiB, 3.9-4.1x with 128 KiB (more
# per-operation overhead); 64 KiB and 1 MiB were worse still.
_BLOCK_BYTES = 1 << 18


def evaluate(p: Prepared, name: str, *inputs: Array, **params: Any) -> Array:
    """The function ``name`` of ``x`` (or of ``inputs``), finished.

    ``name`` is one of ``_math``'s functions or ``"pullback"``; ``params``
    its parameters. The libraries that reach the array-API path have no
    autodiff system (those that do have adapters), so temporaries may be
    updated in place. Contiguous NumPy inputs with number parameters are
    computed block by block by the NumPy kernel of the same name (bit for
    bit ``_math``'s), whose temporaries, kept by the thread from call to
    call, stay in cache from block to block, and whose last operation writes
    into the result.
    """
    xp = p.xp
    inputs = inputs or (p.x,)
    chunked = _in_numpy_chunks(p, inputs, params)
    if chunked is not None:  # its tasks broadcast a cotangent, masks kept
        return finish(_on_numpy_chunks(p, name, *chunked, params), p)
    # A cotangent of another shape than x's is broadcast by the product
    # that takes it, except on Dask, where it is broadcast to x first, in
    # x's chunks (an operation with x would rechunk it in x's dimensions,
    # which Dask refuses beyond 32). Broadcast first elsewhere, a number's
    # strided view took NumPy's general path (3 times the time, 4 times
    # the memory) and pydata/sparse stored every coordinate of x's shape.
    # Where x has sizes not known yet (Dask's NaN, which equals nothing,
    # not even itself), it was checked to broadcast along them: the
    # product broadcasts it, lazily.
    if _compat.is_dask_namespace(xp) and known(p.x.shape):
        inputs = tuple(
            a
            if tuple(a.shape) == tuple(p.x.shape)
            else _compat.broadcast_to_x(xp, a, p.x)
            for a in inputs
        )
    params = _one_values_as_numbers(p, params)
    block = _block_size(p, inputs, params)
    with _compat.quiet_floating_point(xp):
        if not block:
            function = _pullback if name == "pullback" else getattr(_math, name)
            if p.x.ndim == 0 and _compat.is_numpy_namespace(xp):
                # NumPy 1.x computes a 0-d array with Python-number operands
                # in float64 (value-based casting): as one value of a 1-d one.
                inputs = tuple(xp.reshape(a, (1,)) for a in inputs)
                result = function(xp, *inputs, **params, in_place=True)
                return finish(xp.reshape(result, ()), p)
            return finish(function(xp, *inputs, **params, in_place=True), p)
        import numpy as np

        from . import _numpy_kernels

        kernel = getattr(_numpy_kernels, name)
        # np.asarray: a subclass may reshape otherwise (np.matrix stays 2-d,
        # where an older array-api-compat, 1.11, leaves it one)
        arrays = [np.asarray(a) for a in inputs]
        whole = [a for a in arrays if a.shape == p.x.shape]
        # Elementwise, in the order of x's memory, and the result in it, as
        # NumPy's ufuncs give (a transposed x took the math on the whole
        # array, at 2-10 times the time, as reversed and strided views did).
        out = np.empty_like(arrays[0], dtype=p.dtype, order="K")
        make = functools.partial(_numpy_kernels.workspace, dtype=p.x.dtype)
        elements = min(block, p.x.size)
        with _KEPT.lend(p.x.dtype, elements, make) as scratch:
            for *parts, out_part in _pieces(whole, out, block):
                taken = iter(parts)
                blocks = [
                    next(taken) if a.shape == p.x.shape else a.reshape(())
                    for a in arrays
                ]
                kernel(*blocks, **params, out=out_part, scratch=scratch)
        return finish(out, p)


def _pieces(whole: list[Array], out: Array, size: int) -> Iterator[list[Array]]:
    """Pieces of ``size`` elements of the arrays `whole` and `out`, alike in shape.

    Contiguous arrays of one order are sliced flat in it (views); any other
    layout (a reversed or strided view, a slice of a batch's neurons, orders
    that differ) through ``np.nditer``, which copies each piece where the
    memory is not contiguous and writes `out`'s back (about 1.5 us a call
    more, which the contiguous case does not pay). Pieces of `whole` are
    read only.
    """
    arrays = (*whole, out)
    for order in ("C", "F"):
        if all(a.flags[f"{order}_CONTIGUOUS"] for a in arrays):
            flat = [a.reshape(-1, order=order) for a in arrays]
            for start in range(0, out.size, size):
                yield [a[start : start + size] for a in flat]
            return
    options: dict[str, Any] = {  # a dict: NumPy's stubs want literal types
        "flags": ["external_loop", "buffered", "zerosize_ok"],
        "op_flags": [["readonly"]] * len(whole) + [["writeonly"]],
        "order": "K",
        "buffersize": max(1, min(size, out.size)),  # a C int; 0 is refused
    }
    pieces = np.nditer(list(arrays), **options)
    with pieces:
        yield from (list(piece) for piece in pieces)


# This thread's kept temporaries of the NumPy kernels (s2nn_xp._temporaries).
_KEPT = Kept()


def _in_numpy_chunks(
    p: Prepared, inputs: tuple[Array, ...], params: dict[str, Any]
) -> tuple[tuple[Array, ...], dict[str, Array]] | None:
    """``inputs`` and the array ``params`` in ``x``'s chunks, for one task a chunk.

    None where the function cannot be computed so on Dask: it can be for
    Dask arrays of NumPy chunks, each chunk running the NumPy path (its
    kernels, block by block, where the parameters are numbers) in NumPy's
    quiet floating-point state as NumPy input does, one task where the
    math's operations were a task each (about twenty a chunk, each a pass
    over it). ``params`` are those the function takes (no other parameter's
    graph joins the result's). A cotangent or an array parameter that
    broadcasts to ``x`` goes to the tasks as it is (Dask gives each the
    block of it that meets ``x``'s); one chunked otherwise than ``x`` is
    rechunked as ``x`` is, where an operation with ``x`` would have
    rechunked them all to a common refinement.
    """
    if not _compat.is_dask_namespace(p.xp) or p.mask is not None:
        return None
    x = p.x
    others = inputs[1:]
    arrays = {n: v for n, v in params.items() if not isinstance(v, float)}
    chunked = [_chunked_as(a, x) for a in (*others, *arrays.values())]
    if not all(a is not None and _numpy_chunked(a) for a in (x, *chunked)):
        return None
    return (x, *chunked[: len(others)]), dict(
        zip(arrays, chunked[len(others) :], strict=True)
    )


def _chunked_as(a: Array, x: Array) -> Array | None:
    """``a``, which broadcasts to Dask ``x``, chunked as ``x`` where it has its sizes.

    None where that takes a rechunk Dask cannot do: of sizes it does not
    know yet, or of more than 32 dimensions.
    """
    if a.chunks == x.chunks:
        return a
    if not known(a.shape):
        return None
    return _compat.chunked_like(a, x)


def _numpy_chunked(a: Array) -> bool:
    """Whether ``a`` is a Dask array whose chunks are NumPy arrays, masked or not.

    Masked ones (``da.ma``) too: their tasks take masks as NumPy input does
    (:func:`_evaluate_chunk`), where the math's operations on masked chunks
    computed float32 in float64 (NumPy's masked arithmetic with a number)
    and masked a NaN result.
    """
    return type(getattr(a, "_meta", None)) in (np.ndarray, np.ma.MaskedArray)


def _one_values_as_numbers(p: Prepared, params: dict[str, Any]) -> dict[str, Any]:
    """``params``, each NumPy array of one value as its number.

    The NumPy kernels take Python numbers; such an array (``np.array(4.0)``,
    ``[4.0]``) took the math on the whole array instead, at four times the
    memory. Each was cast to the compute dtype (``prepare``), and a Python
    number computes in it as the array did: the same bits. Its shape
    broadcasts to x's (checked), so the result's shape is x's either way.
    """
    if not _compat.is_numpy_namespace(p.xp) or p.mask is not None or p.x.ndim == 0:
        return params
    return {
        name: (
            float(value.reshape(()))
            if type(value) is np.ndarray and value.size == 1
            else value
        )
        for name, value in params.items()
    }


def _on_numpy_chunks(
    p: Prepared,
    name: str,
    inputs: tuple[Array, ...],
    arrays: dict[str, Array],
    params: dict[str, Any],
) -> Array:
    """:func:`evaluate` of each chunk of ``inputs``, as a lazy Dask array.

    ``params`` are the function's parameters; ``arrays`` those of them that
    are arrays, in ``x``'s chunks (the tasks get their chunks); the numbers
    go into every task as they are.
    """
    import dask.array as da

    numbers = {n: v for n, v in params.items() if n not in arrays}
    # A masked x or cotangent (da.ma): masked results, every chunk's
    masked = any(has_masked_chunks(a) for a in inputs)
    layout = _ChunkLayout(
        name, p.dtype, tuple(params), len(inputs), tuple(arrays), masked
    )
    chunk = functools.partial(_evaluate_chunk, layout, numbers)
    meta = np.empty((0,) * p.x.ndim, dtype=p.dtype)
    if masked:
        meta = np.ma.MaskedArray(meta)
    return da.map_blocks(chunk, *inputs, *arrays.values(), dtype=p.dtype, meta=meta)


@dataclasses.dataclass(frozen=True)
class _ChunkLayout:
    """What the blocks a task of :func:`_on_numpy_chunks` gets are.

    Attributes
    ----------
    name
        The function (one of ``_math``'s, or ``"pullback"``).
    dtype
        The dtype of the result.
    parameters
        The names of the parameters the function takes, in their order.
    inputs
        How many blocks are inputs (``x`` and a cotangent); the others are
        the array parameters named by ``arrays``, in that order.
    arrays
        The names of the array parameters.
    masked
        Whether the result is a masked array (its meta says so): a chunk's
        is one even where no element of its inputs is masked.
    """

    name: str
    dtype: Any
    parameters: tuple[str, ...]
    inputs: int
    arrays: tuple[str, ...]
    masked: bool


def _evaluate_chunk(
    layout: _ChunkLayout, numbers: dict[str, float], *blocks: Any
) -> Any:
    """The function of NumPy ``blocks``, as ``layout`` says: one Dask task.

    A function of the module, which a worker process can unpickle. A chunk
    may be a masked array whatever the Dask array's meta says (one made by
    ``from_delayed``): its mask comes through as NumPy input's does (``x``'s
    and a cotangent's, whether or not they mask an element), and a parameter's is
    refused as NumPy input's is.
    """
    given = dict(zip(layout.arrays, blocks[layout.inputs :], strict=True))
    for name, block in given.items():
        if unmasked(block)[1] is not None:
            raise masked_parameter(name)
    params = {n: given[n] if n in given else numbers[n] for n in layout.parameters}
    x, mask = unmasked(blocks[0])
    xp = _compat.array_namespace(x)
    chunk = Prepared(xp=xp, x=x, dtype=layout.dtype, params=params, mask=mask)
    others = []
    for other in blocks[1 : layout.inputs]:  # a cotangent
        chunk = with_cotangent_mask(chunk, other)
        others.append(unmasked(other)[0])
    result = evaluate(chunk, layout.name, x, *others, **params)
    if layout.masked and chunk.mask is None:  # computed unmasked (the kernels)
        import numpy as np

        return masked_result(result, np.ma.nomask)
    return result


def _block_size(p: Prepared, inputs: tuple[Array, ...], params: dict[str, Any]) -> int:
    """Elements per block where the NumPy kernels apply, else 0.

    Unmasked NumPy arrays of any size and memory layout but 0-d (which
    NumPy 1.x computes in float64 with Python numbers), with Python-number
    parameters (`params`, the function's) and every input of ``x``'s
    shape, or of one element (a cotangent that broadcasts: each block
    takes it whole). The kernels are faster than
    ``_math`` at every size: fewer passes, and kept temporaries instead of
    fresh ones.
    """
    if not _compat.is_numpy_namespace(p.xp) or p.mask is not None:
        return 0
    block = _BLOCK_BYTES // p.x.dtype.itemsize
    usable = (
        p.x.ndim > 0
        and all(isinstance(v, float) for v in params.values())
        and all(a.shape == p.x.shape or a.size == 1 for a in inputs)
    )
    return block if usable else 0


def _pullback(
    xp: ModuleType,
    x: Array,
    cotangent: Array,
    alpha: Any,
    beta: Any,
    *,
    in_place: bool,
) -> Array:
    """``cotangent * gradient(x)``; the gradient is a fresh array."""
    grad = _math.gradient(xp, x, alpha, beta, in_place=in_place)
    grad *= cotangent
    return grad
