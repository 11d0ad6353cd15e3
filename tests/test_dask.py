"""Dask: the math stays lazy, and runs chunk by chunk on a local cluster."""

from __future__ import annotations

import numpy as np
import pytest

import s2nn_xp
from tests._support import ref_gradient, ref_origin, require

da = require("dask")
import dask  # noqa: E402

FUNCTIONS = [
    ("forward", lambda x, **kw: s2nn_xp.forward(x)),
    ("origin", s2nn_xp.origin),
    ("gradient", s2nn_xp.gradient),
    ("s2nn", s2nn_xp.s2nn),
]


def _forbid_compute(*args, **kwargs):
    raise AssertionError("computed eagerly: the math must build a lazy graph")


@pytest.mark.parametrize(("name", "fn"), FUNCTIONS)
def test_no_compute_while_building(name, fn):
    x = da.linspace(-3, 3, 1000, chunks=100)
    alpha = da.full((1000,), 4.0, chunks=100)
    with dask.config.set(scheduler=_forbid_compute):
        y = fn(x, alpha=alpha) if name != "forward" else fn(x)
        _, pullback = s2nn_xp.vjp(x, alpha=alpha)
        ct = pullback(da.ones_like(x))
    assert isinstance(y, da.Array)
    assert isinstance(ct, da.Array)
    assert y.chunks == x.chunks


def test_an_object_with_a_dask_epsilon_hashes_and_compares_without_compute():
    """Its epsilon, compared by value, was computed at every hash and every
    comparison with an object holding another array: by its graph now (Dask's
    token, which reads nothing): one array's, or the same graph made again,
    is equal; another, or the array after an assignment, is not, and the
    object keeps the values it was made with."""
    computed = []

    class Counted(dask.callbacks.Callback):
        def _start(self, dsk):
            computed.append(dsk)

    epsilon = da.full((1000,), 1e-8, chunks=100)
    spike = s2nn_xp.S2NN(epsilon=epsilon)
    with Counted():
        assert hash(spike) == hash(s2nn_xp.S2NN(epsilon=epsilon))
        assert spike == s2nn_xp.S2NN(epsilon=epsilon)
        assert spike == s2nn_xp.S2NN(epsilon=da.full((1000,), 1e-8, chunks=100))
        assert spike != s2nn_xp.S2NN(epsilon=da.full((1000,), 2e-8, chunks=100))
        assert {spike: 1}[spike] == 1
        y = spike(da.linspace(-3, 3, 1000, chunks=100))
        epsilon[...] = 0.5
        assert spike != s2nn_xp.S2NN(epsilon=epsilon)
    assert not computed
    want = s2nn_xp.forward(np.linspace(-3, 3, 1000))
    np.testing.assert_array_equal(y.compute(), want)
    x = np.linspace(0.0, 1.0, 1000)
    np.testing.assert_array_equal(  # the values it was made with
        spike.surrogate_fun(da.from_array(x, chunks=100)).compute(),
        s2nn_xp.S2NN(epsilon=1e-8).surrogate_fun(x),
    )


def test_chunks_agree_with_numpy():
    x_np = np.linspace(-5, 5, 2001)
    x = da.from_array(x_np, chunks=250)
    np.testing.assert_allclose(
        s2nn_xp.gradient(x).compute(), s2nn_xp.gradient(x_np), rtol=0
    )


@pytest.mark.slow
def test_distributed_local_cluster_two_workers():
    distributed = pytest.importorskip("distributed")
    x_np = np.linspace(-6, 6, 40_000).reshape(200, 200)
    x = da.from_array(x_np, chunks=(50, 100))
    betas = da.from_array(np.linspace(0.5, 2.0, 200), chunks=100)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert len(client.scheduler_info()["workers"]) == 2
        grad, origin = client.compute(
            [s2nn_xp.gradient(x, beta=betas), s2nn_xp.origin(x, beta=betas)], sync=True
        )
        _, pullback = s2nn_xp.vjp(x)
        ct = pullback(da.ones_like(x)).compute()
    b = np.linspace(0.5, 2.0, 200)
    sample = (slice(None, None, 7), slice(None, None, 11))
    want_grad = np.vectorize(ref_gradient)(x_np, 4.0, b)[sample]
    want_origin = np.vectorize(ref_origin)(x_np, 4.0, b)[sample]
    # The workers run the same NumPy operations: the same bits as in-process.
    np.testing.assert_array_equal(grad, s2nn_xp.gradient(x_np, beta=b))
    np.testing.assert_array_equal(origin, s2nn_xp.origin(x_np, beta=b))
    np.testing.assert_allclose(grad[sample], want_grad, rtol=1e-15)
    np.testing.assert_allclose(origin[sample], want_origin, rtol=1e-15)
    np.testing.assert_array_equal(ct, s2nn_xp.gradient(x_np))


@pytest.mark.parametrize(("name", "fn"), FUNCTIONS)
def test_unknown_chunk_sizes(name, fn):
    """Boolean indexing leaves chunk sizes unknown; the math must not need them."""
    values = np.linspace(-3, 3, 101)
    x = da.from_array(values, chunks=25)
    kept = x[x > -1.0]
    assert any(np.isnan(size) for size in kept.chunks[0])
    np.testing.assert_array_equal(
        fn(kept).compute(), fn(values[values > -1.0]), err_msg=name
    )


@pytest.mark.parametrize("cotangent", ["number", "numpy row", "dask row"])
def test_pullback_of_x_with_unknown_sizes(cotangent):
    """Boolean indexing leaves NaN sizes, which equal nothing, not even themselves.

    The pullback broadcast every cotangent explicitly, which Dask cannot do:
    one that broadcasts along the unknown axes stays lazy now.
    """
    values = np.linspace(-3.0, 3.0, 24).reshape(12, 2)
    x = da.from_array(values, chunks=(4, 2))
    kept = x[x[:, 0] > -1.0]  # shape (nan, 2)
    _, pullback = s2nn_xp.vjp(kept)
    ones = {
        "number": 1.0,
        "numpy row": np.ones(2),
        "dask row": da.ones(2, chunks=2),
    }[cotangent]
    with dask.config.set(scheduler=_forbid_compute):
        result = pullback(ones)
    want = s2nn_xp.gradient(values[values[:, 0] > -1.0])
    np.testing.assert_array_equal(result.compute(), want)


def test_cotangents_of_unknown_size_are_refused_clearly():
    """Unknown sizes on both sides cannot be checked, and Dask would pair chunks.

    A chunk of 1 would broadcast silently against a chunk of 2: wrong numbers
    for a cotangent of the wrong size. Refused, with the way to know the sizes.
    """
    x = da.from_array(np.array([-1.0, 0.5, 2.0, -0.3]), chunks=2)
    c = da.from_array(np.array([10.0, 0.0, 20.0, 0.0]), chunks=2)
    kept, short = x[x > -10], c[c > 0]  # 4 values, 2 values: sizes unknown
    for pullback, cotangent in (
        (s2nn_xp.vjp(kept)[1], short),  # the wrong size
        (s2nn_xp.vjp(kept)[1], da.ones_like(kept)),  # the right one, unknown
        (s2nn_xp.vjp(x)[1], short),  # x known, the cotangent not
    ):
        with pytest.raises(ValueError, match="sizes not known yet"):
            pullback(cotangent)
    kept.compute_chunk_sizes()
    np.testing.assert_array_equal(
        s2nn_xp.vjp(kept)[1](da.ones_like(kept)).compute(),
        s2nn_xp.gradient(np.array([-1.0, 0.5, 2.0, -0.3])),
    )


@pytest.mark.parametrize("function", ["gradient", "origin", "s2nn", "vjp"])
def test_parameters_of_unknown_size_are_refused_clearly(function):
    """A parameter's size against x's, unknown on either side: refused too.

    Dask paired a parameter of 2 unknown values with an x of 6 chunk by chunk,
    one value per chunk: wrong numbers, silently.
    """
    x = da.from_array(np.full(6, -1.0), chunks=3)
    kept = x[x < 0]  # 6 values, size unknown
    values = da.from_array(np.arange(1.0, 9.0), chunks=4)
    two = values[(values == 1.0) | (values == 5.0)]  # 2 values, size unknown
    call = getattr(s2nn_xp, function)
    for argument, alpha in ((kept, two), (kept, np.array([1.0, 2.0])), (x, two)):
        with pytest.raises(ValueError, match=r"alpha of shape .* sizes not known yet"):
            call(argument, alpha)
    # Broadcast along the unknown axis (a number, size 1): fine, lazily.
    with dask.config.set(scheduler=_forbid_compute):
        result = call(kept, np.array([2.0]))
    want = call(np.full(6, -1.0), np.array([2.0]))
    if function == "vjp":
        result, want = result[0], want[0]
    np.testing.assert_array_equal(result.compute(), want)


def test_host_parameters_and_cotangents_of_more_than_32_dimensions():
    """Host data became one chunk, rechunked to x's chunks, which Dask refuses
    beyond 32 dimensions (a RuntimeError where NumPy, PyTorch and JAX compute)."""
    if np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("NumPy 1.x holds at most 32 dimensions")
    shape = (1,) * 32 + (6,)
    values = np.linspace(-2.0, 2.0, 6).reshape(shape)
    x = da.from_array(values, chunks=2)
    alpha = np.full(shape, 2.0)
    got = s2nn_xp.gradient(x, alpha=alpha).compute()
    np.testing.assert_array_equal(got, s2nn_xp.gradient(values, alpha=alpha))
    _, pullback = s2nn_xp.vjp(x, alpha=np.full(6, 2.0))
    cotangent = np.linspace(0.5, 1.0, 6).reshape(shape)
    np.testing.assert_array_equal(
        pullback(cotangent).compute(),
        s2nn_xp.gradient(values, alpha=alpha) * cotangent,
    )
    for broadcast in (1.0, np.array(0.5), np.full(6, 0.5), da.full((1, 6), 0.5)):
        np.testing.assert_array_equal(
            pullback(broadcast).compute(),
            s2nn_xp.gradient(values, alpha=alpha) * np.asarray(broadcast),
        )
    # Dask arguments in other chunks than x's: rechunked in their own (fewer)
    # dimensions; refused, naming them, where they have as many as x.
    finer = da.full(6, 2.0, chunks=1)
    np.testing.assert_array_equal(
        s2nn_xp.gradient(x, alpha=finer).compute(),
        s2nn_xp.gradient(values, alpha=alpha),
    )
    _, pullback = s2nn_xp.vjp(x, alpha=finer)
    np.testing.assert_array_equal(
        pullback(da.full(6, 0.5, chunks=3)).compute(),
        s2nn_xp.gradient(values, alpha=alpha) * 0.5,
    )
    with pytest.raises(ValueError, match=r"^cotangent is chunked otherwise than x"):
        pullback(da.ones(shape, chunks=3))
    with pytest.raises(ValueError, match=r"^alpha is chunked otherwise than x"):
        s2nn_xp.gradient(x, alpha=da.full(shape, 2.0, chunks=3))


@pytest.mark.parametrize(("name", "fn"), [*FUNCTIONS, ("pullback", None)])
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">f2", ">i4"])
def test_non_native_byte_order_gives_what_numpy_input_gives(name, fn, dtype):
    """Native-order results, as for the same NumPy array (the Definition's
    Dtypes); a big-endian Dask array gave big-endian ones."""
    values = np.array([-1.5, -0.0, 0.0, 2.0, 7.0]).astype(dtype)

    def call(x):
        if fn is None:
            return s2nn_xp.vjp(x)[1](np.ones(5))
        return fn(x)

    want = call(values)
    got = call(da.from_array(values, chunks=2))
    assert got.dtype == want.dtype and want.dtype.isnative
    np.testing.assert_array_equal(got.compute(), want)
    assert got.compute().dtype == want.dtype


def test_ml_dtypes_integers_become_the_default_float_as_on_numpy():
    """int4 and the other ml_dtypes integers: Dask refused them (its isdtype
    says False for a dtype it does not know, where others raise)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    kinds = [getattr(ml_dtypes, n, None) for n in ("int4", "uint4", "int2", "uint2")]
    for kind in [k for k in kinds if k is not None]:
        values = np.arange(-2, 2).astype(np.int64).astype(kind)
        want = s2nn_xp.gradient(values)
        got = s2nn_xp.gradient(da.from_array(values, chunks=2))
        assert got.dtype == want.dtype == np.float64
        np.testing.assert_array_equal(got.compute(), want)


@pytest.mark.parametrize(("name", "fn"), [*FUNCTIONS, ("pullback", None)])
def test_number_parameters_give_one_task_a_chunk_running_numpys_path(name, fn):
    """Each chunk was about twenty tasks, one an operation of the math, each a
    pass over it (1.3x to 3.7x the time of one task a chunk), and computed
    under the caller's floating-point state: the NumPy path in one task."""
    values = np.linspace(-300.0, 3.0, 64).astype(np.float32)  # underflows left
    x = da.from_array(values, chunks=8)
    cotangent = da.from_array(np.full(64, 2.0, dtype=np.float32), chunks=8)
    if fn is None:
        y = s2nn_xp.vjp(x, alpha=4.0)[1](cotangent)
        want = s2nn_xp.vjp(values, alpha=4.0)[1](cotangent.compute())
    else:
        params = {} if name == "forward" else {"alpha": 4.0, "beta": 0.5}
        y, want = fn(x, **params), fn(values, **params)
    inputs = set(dict(x.__dask_graph__())) | set(dict(cotangent.__dask_graph__()))
    assert len(set(dict(y.__dask_graph__())) - inputs) == x.npartitions
    with np.errstate(all="raise"):  # quiet, as for NumPy input
        np.testing.assert_array_equal(y.compute(), want)


def _per_neuron_case(name, fn, chunks, parameter_chunks, cotangent_chunks):
    """``(result, NumPy's)`` of ``name`` on a Dask 2-d ``x`` with Dask
    per-neuron (last axis) alpha and beta, beta broadcast along the batch."""
    values = np.linspace(-300.0, 3.0, 96).astype(np.float32).reshape(8, 12)
    alpha = np.linspace(1.0, 6.0, 12).astype(np.float32)
    beta = np.linspace(0.5, 2.0, 12).astype(np.float32).reshape(1, 12)
    cotangent = np.linspace(-2.0, 2.0, 96).astype(np.float32).reshape(8, 12)
    lazy = {
        "alpha": da.from_array(alpha, chunks=parameter_chunks[-1:]),
        "beta": da.from_array(beta, chunks=(1, *parameter_chunks[-1:])),
    }
    x = da.from_array(values, chunks=chunks)
    if fn is None:
        y = s2nn_xp.vjp(x, **lazy)[1](da.from_array(cotangent, chunks=cotangent_chunks))
        return y, s2nn_xp.vjp(values, alpha=alpha, beta=beta)[1](cotangent)
    if name == "forward":
        return fn(x), fn(values)
    return fn(x, **lazy), fn(values, alpha=alpha, beta=beta)


@pytest.mark.parametrize(("name", "fn"), [*FUNCTIONS, ("pullback", None)])
def test_array_parameters_give_one_task_a_chunk_running_numpys_path(name, fn):
    """With array parameters each chunk was the math's operations, a task
    each, computed under the caller's floating-point state (the underflow far
    left raised under np.errstate(all="raise")): the NumPy path in one task."""
    y, want = _per_neuron_case(name, fn, (4, 6), (4, 6), (4, 6))
    # Only the parameters' and the cotangent's own tasks besides one a chunk.
    assert len(y.dask.layers[y.name]) == y.npartitions == 4
    assert all(len(y.dask.layers[key]) <= 4 for key in y.dask.dependencies[y.name])
    with np.errstate(all="raise"):  # quiet, as for NumPy input
        np.testing.assert_array_equal(y.compute(), want)


@pytest.mark.parametrize(("name", "fn"), [*FUNCTIONS, ("pullback", None)])
def test_arguments_in_other_chunks_give_results_in_xs(name, fn):
    """Array parameters and a cotangent in chunks other than x's are
    rechunked as x is: an operation with x rechunked all of them to a common
    refinement, and the result was in neither x's chunks nor theirs."""
    y, want = _per_neuron_case(name, fn, (4, 6), (5, 7), (3, 5))
    x_chunks = ((4, 4), (6, 6))
    assert y.chunks == x_chunks
    assert len(y.dask.layers[y.name]) == 4
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(y.compute(), want)


@pytest.mark.parametrize("cotangent", [2.0, np.array([2.0]), "dask"])
def test_a_broadcast_cotangent_of_sizes_not_known_yet_takes_one_task_a_chunk(
    cotangent,
):
    """With x of sizes Dask does not know yet (after boolean indexing) a
    cotangent that broadcasts stays as it is, and the pullback took the graph
    of the math's operations: not quiet (the underflow far left raised under
    np.errstate(all="raise"), where gradient() of the same x did not)."""
    values = np.array([-300.0, -1.0, 0.5, 2.0])
    x = da.from_array(values, chunks=2)
    unknown = x[x < 10]
    if isinstance(cotangent, str):
        cotangent = da.from_array(np.array([2.0]), chunks=1)
    got = s2nn_xp.vjp(unknown)[1](cotangent)
    assert len(got.dask.layers[got.name]) == 2
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(got.compute(), 2 * s2nn_xp.gradient(values))


def test_a_cotangent_beyond_the_compute_dtype_is_cast_quietly():
    """A float64 Dask cotangent of 1e300 for float32 x: its cast, a task of
    its own, ran under the caller's state (overflow raised under
    np.errstate(all="raise")); NumPy input's becomes inf quietly."""
    values = np.array([-1.0, 0.5], dtype=np.float32)
    cotangent = np.array([1e300, 1.0])
    want = s2nn_xp.vjp(values)[1](cotangent)
    got = s2nn_xp.vjp(da.from_array(values))[1](da.from_array(cotangent))
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(got.compute(), want)
    assert got.dtype == want.dtype == np.float32


@pytest.mark.parametrize("name", ["alpha", "beta", "epsilon"])
def test_a_parameter_beyond_the_compute_dtype_is_cast_quietly(name):
    """A float64 Dask parameter of 1e-40 (it underflows in float32) for
    float32 x: its cast ran under the caller's state (underflow raised under
    np.errstate(all="raise")), where a NumPy parameter's is quiet."""
    values = np.array([-1.0, 0.5], dtype=np.float32)
    parameter = np.array([1e-40, 1e-40]) if name == "epsilon" else np.full(2, 3.0)
    parameter[0] = 1e-40  # alpha, beta: subnormal in float32, valid
    want = s2nn_xp.origin(values, **{name: parameter})
    got = s2nn_xp.origin(da.from_array(values), **{name: da.from_array(parameter)})
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(got.compute(), want)
    assert got.dtype == want.dtype == np.float32


@pytest.mark.parametrize(("name", "fn"), [*FUNCTIONS, ("pullback", None)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_masked_chunks_of_x_give_what_numpy_masked_input_gives(name, fn, dtype):
    """Dask masked arrays (da.ma) ran the math's operations on masked chunks:
    NumPy's masked arithmetic with a number computed float32 in float64
    (float16 rounded twice), a NaN came back masked, and parameters in other
    chunks gave results in other chunks than x's. One task a chunk of the
    NumPy path, with its masks, as for NumPy masked input."""
    values = np.linspace(-30.0, 3.0, 96).astype(dtype).reshape(8, 12)
    values[0, :3] = [np.nan, -np.inf, np.inf]
    mask = np.zeros(values.shape, dtype=bool)
    mask[1::3, 2::5] = True
    masked = np.ma.masked_array(values, mask=mask)
    alpha = np.linspace(1.0, 6.0, 12)
    cotangent = np.ma.masked_array(np.linspace(-2.0, 2.0, 96).reshape(8, 12))
    cotangent[3, 4] = np.ma.masked
    x = da.ma.masked_array(da.from_array(values, chunks=(4, 6)), mask=mask)
    if fn is None:
        lazy_cotangent = da.ma.masked_array(
            da.from_array(cotangent.data, chunks=(3, 5)), mask=cotangent.mask
        )
        got = s2nn_xp.vjp(x, alpha=da.from_array(alpha, chunks=5))[1](lazy_cotangent)
        want = s2nn_xp.vjp(masked, alpha=alpha)[1](cotangent)
    else:
        params = {} if name == "forward" else {"alpha": da.from_array(alpha, chunks=5)}
        got = fn(x, **params)
        want = fn(masked, **{k: alpha for k in params})
    assert got.chunks == x.chunks
    assert len(got.dask.layers[got.name]) == x.npartitions
    with np.errstate(all="raise"):
        computed = got.compute()
    assert isinstance(computed, np.ma.MaskedArray)
    assert computed.dtype == want.dtype == dtype
    kept = ~np.ma.getmaskarray(want)
    np.testing.assert_array_equal(np.ma.getmaskarray(computed), ~kept)
    np.testing.assert_array_equal(computed.data[kept], want.data[kept])


ML_FLOATS = ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float6_e2m3fn"]


@pytest.mark.parametrize("name", ML_FLOATS)
@pytest.mark.parametrize("masked", ["x", "cotangent"])
def test_masked_chunks_of_ml_dtypes_floats_can_be_computed(name, masked):
    """Their results kept NumPy's fill value for an unknown dtype, b"???",
    which Dask could not cast to the dtype where it joined the chunks (a
    TypeError at compute). The values and masks are NumPy masked input's."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    dtype = getattr(ml_dtypes, name, None)
    if dtype is None:
        pytest.skip(f"ml_dtypes {ml_dtypes.__version__} has no {name}")
    values = np.linspace(-2.0, 2.0, 6).astype(dtype)
    mask = np.array([0, 1, 0, 0, 0, 1], dtype=bool)
    lazy_mask = da.from_array(mask, chunks=4)
    if masked == "x":
        # times 1: Dask computes such an input, not a bare da.ma of the dtype
        x = da.ma.masked_array(da.from_array(values, chunks=4), mask=lazy_mask) * 1
        got = s2nn_xp.gradient(x)
        want = s2nn_xp.gradient(np.ma.masked_array(values, mask=mask))
    else:
        ones = np.ones(6, dtype=np.float32)
        cotangent = da.ma.masked_array(da.from_array(ones, chunks=3), mask=lazy_mask)
        got = s2nn_xp.vjp(da.from_array(values, chunks=4))[1](cotangent)
        want = s2nn_xp.vjp(values)[1](np.ma.masked_array(ones, mask=mask))
    with np.errstate(all="raise"):
        computed = got.compute()
    assert computed.dtype == want.dtype == dtype
    np.testing.assert_array_equal(np.ma.getmaskarray(computed), mask)
    np.testing.assert_array_equal(
        computed.data[~mask].astype(float), want.data[~mask].astype(float)
    )


@pytest.mark.parametrize("chunks", [2, 3, 6])
def test_a_masked_cotangent_that_broadcasts_keeps_its_mask(chunks):
    """A da.ma cotangent of shape (1, 6) for x of (4, 6) was broadcast by
    Dask, whose chunks lost their masks (np.broadcast_to): a plain result."""
    values = np.linspace(-3.0, 3.0, 24, dtype=np.float32).reshape(4, 6)
    mask = np.zeros((1, 6), dtype=bool)
    mask[0, 0] = True
    cotangent = np.ma.masked_array(np.linspace(-1.0, 1.0, 6).reshape(1, 6), mask=mask)
    want = s2nn_xp.vjp(values)[1](cotangent)
    lazy = da.ma.masked_array(da.from_array(cotangent.data, chunks=chunks), mask=mask)
    x = da.from_array(values, chunks=2)
    got = s2nn_xp.vjp(x)[1](lazy)
    assert got.chunks == x.chunks
    computed = got.compute()
    assert isinstance(computed, np.ma.MaskedArray)
    np.testing.assert_array_equal(
        np.ma.getmaskarray(computed), np.ma.getmaskarray(want)
    )
    np.testing.assert_array_equal(computed.compressed(), want.compressed())


def test_a_masked_result_is_masked_in_every_chunk():
    """With a da.ma cotangent that masks nothing the result's meta said
    masked and its chunks were plain arrays; chunks of both kinds where some
    chunks masked an element."""
    values = np.linspace(-3.0, 3.0, 24).reshape(4, 6)
    mask = np.zeros((4, 6), dtype=bool)
    for masked_elements in (mask, np.eye(4, 6, dtype=bool)):
        cotangent = da.ma.masked_array(
            da.from_array(np.ones((4, 6)), chunks=2), mask=masked_elements
        )
        got = s2nn_xp.vjp(da.from_array(values, chunks=2))[1](cotangent)
        assert isinstance(got._meta, np.ma.MaskedArray)
        blocks = [got.blocks[i, j].compute() for i in range(2) for j in range(3)]
        assert all(isinstance(b, np.ma.MaskedArray) for b in blocks)
        np.testing.assert_array_equal(
            np.ma.getmaskarray(got.compute()), masked_elements
        )


def test_a_function_computes_only_the_parameters_it_takes():
    """The one-task-a-chunk path took every array parameter: the spike's
    graph held alpha's (computed, and its failure the spike's), a pullback's
    epsilon's."""

    def failing():
        raise RuntimeError("alpha's graph was computed")

    alpha = da.from_delayed(dask.delayed(failing)(), shape=(4,), dtype=float)
    epsilon = da.from_delayed(dask.delayed(failing)(), shape=(4,), dtype=float)
    values = np.array([-1.0, 0.0, 0.5, 2.0])
    x = da.from_array(values, chunks=2)
    want = s2nn_xp.forward(values)
    np.testing.assert_array_equal(s2nn_xp.s2nn(x, alpha=alpha).compute(), want)
    spikes, pullback = s2nn_xp.vjp(x, alpha=2.0, epsilon=epsilon)
    np.testing.assert_array_equal(spikes.compute(), want)
    got = pullback(da.ones_like(x)).compute()
    np.testing.assert_array_equal(got, s2nn_xp.gradient(values, alpha=2.0))


def test_a_masked_parameter_chunk_is_refused_as_numpy_input_is():
    """A masked alpha chunk under a NumPy meta (from_delayed's) was used, its
    masked value too (a negative alpha: a negative gradient)."""
    masked = np.ma.masked_array([2.0, -7.0, 4.0, 4.0], mask=[0, 1, 0, 0])
    alpha = da.from_delayed(dask.delayed(lambda: masked)(), shape=(4,), dtype=float)
    x = da.from_array(np.array([-1.0, -0.5, 0.5, 1.0]), chunks=4)
    with pytest.raises(TypeError, match="alpha must not be a masked array"):
        s2nn_xp.gradient(x, alpha=alpha).compute()
    with pytest.raises(TypeError, match="alpha must not be a masked array"):
        s2nn_xp.gradient(masked.data, alpha=masked)
    # Dask's masked arrays, refused at the call (their results were masked
    # where the parameter was, with NumPy chunks or masked ones in x)
    lazy = da.ma.masked_array(da.from_array(masked.data), mask=masked.mask)
    for values in (x, da.ma.masked_array(x)):
        with pytest.raises(TypeError, match="alpha must not be a masked array"):
            s2nn_xp.gradient(values, alpha=lazy)
    with pytest.raises(TypeError, match="epsilon must not be a masked array"):
        s2nn_xp.S2NN(epsilon=da.ma.masked_array(da.from_array(masked.data) ** 2))


def test_masks_come_through_as_numpy_inputs_do():
    """A masked cotangent chunked as x, and masked chunks under a NumPy meta
    (from_delayed's), lost their masks to the one-task-a-chunk path: the
    masked values were used, silently."""
    values = np.array([-1.0, 0.0, 1.0, 2.0])
    cotangent = np.ma.masked_array([9.0, 1.0, 1.0, 9.0], mask=[1, 0, 0, 1])
    want = s2nn_xp.vjp(values)[1](cotangent)
    _, pullback = s2nn_xp.vjp(da.from_array(values, chunks=2))
    got = pullback(da.ma.masked_array(da.from_array(cotangent, chunks=2))).compute()
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
    np.testing.assert_array_equal(got.compressed(), want.compressed())

    masked = np.ma.masked_array(values, mask=[0, 1, 0, 0])
    lazy = da.from_delayed(dask.delayed(lambda: masked)(), shape=(4,), dtype=float)
    got = s2nn_xp.gradient(lazy).compute()
    want = s2nn_xp.gradient(masked)
    assert isinstance(got, np.ma.MaskedArray)
    np.testing.assert_array_equal(np.ma.getmaskarray(got), np.ma.getmaskarray(want))
    np.testing.assert_array_equal(got.compressed(), want.compressed())
