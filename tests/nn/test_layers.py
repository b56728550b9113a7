"""Every layer method against the slow float64 reference in ``reference.py``."""

from __future__ import annotations

import math

import numpy as np
import pytest

import naive.layers as ref
from lshprof import ActiveSet, ConfigError, make_layer

#: The one tolerance for comparing a layer with the reference, per dtype. It also sets
#: how close two scores must be for a selection to count as a (float) near-tie.
TOL = {
    np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5),
    np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11),
}

DTYPES = ["float32", "float64"]
SHAPES = [(1, 1), (7, 13), (33, 64)]
BATCHES = [1, 6]
SEED_ACTS = [(0, "relu"), (5, "sigmoid"), (12, "tanh")]
FRACTIONS = {"one": 1e-6, "some": 0.3, "all": 1.0}
ACTIVATIONS = ["relu", "identity", "tanh", "sigmoid"]


def _logit(f: float) -> float:
    if f >= 1.0:
        return 30.0
    return math.log(f / (1.0 - f))


#: (case name, method, parameters as a function of the fraction)
METHODS = {
    "dense": ("dense", lambda f: {}),
    "dropout": ("dropout", lambda f: {"p": f}),
    "adaptive_dropout": ("adaptive_dropout", lambda f: {"alpha": 1.5, "beta": _logit(f)}),
    "wta_sample": ("wta", lambda f: {"fraction": f, "mode": "sample"}),
    "wta_lifetime": ("wta", lambda f: {"fraction": f, "mode": "lifetime"}),
    "topk": ("topk", lambda f: {"fraction": f}),
}
CASES = [("dense", "all")] + [(m, f) for m in METHODS if m != "dense" for f in FRACTIONS]


def _case(name: str, frac: str):
    method, pf = METHODS[name]
    return method, pf(FRACTIONS[frac])


def _tol(dtype):
    return TOL[np.dtype(dtype)]


# -- helpers -------------------------------------------------------------------------------
def csr_from_mask(mask: np.ndarray, dense: np.ndarray) -> ActiveSet:
    """A sparse ActiveSet built by hand (not by lshprof) from a mask and dense values."""
    B, n = mask.shape
    indptr = np.zeros(B + 1, dtype=np.int64)
    idx, vals = [], []
    for s in range(B):
        cols = [j for j in range(n) if mask[s, j]]
        idx.extend(cols)
        vals.extend(dense[s, j] for j in cols)
        indptr[s + 1] = len(idx)
    return ActiveSet(indptr, np.array(idx, dtype=np.int32),
                     np.array(vals, dtype=dense.dtype), n)


def make_input(kind: str, B: int, n_in: int, dtype, rng) -> np.ndarray | ActiveSet:
    x = rng.standard_normal((B, n_in)).astype(dtype)
    if kind == "dense":
        return x
    mask = rng.random((B, n_in)) < 0.5
    if B > 1:
        mask[B // 2] = False  # a sample with no active input
    return csr_from_mask(mask, x)


def check_csr(out: ActiveSet, B: int, n: int, dtype) -> None:
    """CSR invariants: int64 indptr [B+1] from 0 to nnz, int32 indices ascending per row."""
    assert isinstance(out, ActiveSet)
    assert out.batch_size == B and out.n_nodes == n
    ip, ix, v = out.indptr, out.indices, out.values
    assert ip.dtype == np.int64 and ip.shape == (B + 1,)
    assert ip[0] == 0 and ip[-1] == ix.shape[0] == v.shape[0] == out.nnz
    assert np.all(np.diff(ip) >= 0)
    assert ix.dtype == np.int32 and ix.ndim == 1
    assert v.dtype == np.dtype(dtype) and v.ndim == 1
    for s in range(B):
        row = ix[ip[s]:ip[s + 1]].astype(np.int64)
        assert np.all(np.diff(row) > 0), f"row {s} not strictly ascending: {row}"
        assert row.size == 0 or (row[0] >= 0 and row[-1] < n)


def mask_of(out: ActiveSet) -> np.ndarray:
    m = np.zeros((out.batch_size, out.n_nodes), dtype=bool)
    ip, ix = out.indptr, out.indices
    for s in range(out.batch_size):
        m[s, ix[ip[s]:ip[s + 1]]] = True
    return m


def nodes_of(out: ActiveSet) -> list[np.ndarray]:
    ip, ix = out.indptr, out.indices
    return [ix[ip[s]:ip[s + 1]].astype(np.int64) for s in range(out.batch_size)]


def assert_selection(got: np.ndarray, sel: ref.RefResult) -> None:
    bad = (got != sel.mask) & ~sel.ambiguous
    if bad.any():
        s, o = np.argwhere(bad)[0]
        raise AssertionError(
            f"active set differs from the reference at {bad.sum()} entries, first at sample "
            f"{s} node {o} (layer {'has' if got[s, o] else 'lacks'} it)\n"
            f"layer row: {np.flatnonzero(got[s])}\nref row:   {np.flatnonzero(sel.mask[s])}"
        )


def set_bias(layer, rng) -> None:
    layer.b[:] = (0.3 * rng.standard_normal(layer.n_out)).astype(layer.dtype)


def run_and_compare(layer, method, params, x, *, train, rng, active=None, include=None,
                    stream=None, check_backward=True, input_grad=True):
    """One forward (and backward when training) of ``layer`` against the reference."""
    dtype = layer.dtype
    tol = _tol(dtype)
    W = layer.W.astype(np.float64)
    b = layer.b.astype(np.float64)
    B = x.shape[0] if isinstance(x, np.ndarray) else x.batch_size
    if stream is None:
        stream = ref.SelectStream(layer.seed)
    sel = ref.select(method, params, layer.activation, W, b, x, train=train, stream=stream,
                     active_mask=None if active is None else mask_of(active),
                     include=include, **tol)
    out = layer.forward(x, train=train, active=active, include=include)
    check_csr(out, B, layer.n_out, dtype)
    got = mask_of(out)
    assert_selection(got, sel)
    nodes = nodes_of(out)
    z, vals, scale = ref.forward_at(method, params, layer.activation, W, b, x, nodes,
                                    train=train)
    np.testing.assert_allclose(out.values, vals, **tol)
    if not (train and check_backward):
        return out, sel
    layer.zero_grad()
    g = rng.standard_normal(out.nnz).astype(dtype)
    gx = layer.backward(out.with_values(g), input_grad=input_grad)
    gW, gb, touched, gx_ref = ref.backward_at(layer.activation, W, x, nodes, z, scale, g)
    np.testing.assert_allclose(layer.grad_W, gW, **tol)
    np.testing.assert_allclose(layer.grad_b, gb, **tol)
    np.testing.assert_array_equal(layer.touched, touched)
    assert layer.grad_W.dtype == dtype and layer.grad_b.dtype == dtype
    if not input_grad:
        assert gx is None
    elif isinstance(x, np.ndarray):
        assert isinstance(gx, np.ndarray) and gx.shape == x.shape and gx.dtype == dtype
        np.testing.assert_allclose(gx, gx_ref, **tol)
    else:
        assert isinstance(gx, ActiveSet)
        np.testing.assert_array_equal(gx.indptr, x.indptr)
        np.testing.assert_array_equal(gx.indices, x.indices)
        assert gx.values.dtype == dtype
        np.testing.assert_allclose(gx.values, gx_ref, **tol)
    return out, sel


def _check_budget(name, params, got, B, n_out, include=None):
    """Per-method sizes that follow from the rule alone."""
    if name in ("wta_sample", "topk"):
        k = ref.budget(params["fraction"], n_out)
        extra = 0 if include is None else 1
        assert np.all((got.sum(1) >= k) & (got.sum(1) <= k + extra))
        if include is None:
            assert np.all(got.sum(1) == k)
    if name == "wta_lifetime" and include is None:
        assert np.all(got.sum(0) == ref.budget(params["fraction"], B))


# -- the main comparisons ---------------------------------------------------------------------
def grid(test):
    """Parametrize ``test`` over the whole comparison grid (applied innermost first)."""
    for mark in reversed([
        pytest.mark.parametrize("dtype", DTYPES),
        pytest.mark.parametrize("inp", ["dense", "sparse"]),
        pytest.mark.parametrize("seed,activation", SEED_ACTS,
                                ids=[f"s{s}-{a}" for s, a in SEED_ACTS]),
        pytest.mark.parametrize("batch", BATCHES, ids=[f"B{b}" for b in BATCHES]),
        pytest.mark.parametrize("shape", SHAPES, ids=[f"{i}x{o}" for i, o in SHAPES]),
        pytest.mark.parametrize("case", CASES, ids=[f"{m}-{f}" for m, f in CASES]),
    ]):
        test = mark(test)
    return test


@grid
def test_train_matches_reference(case, shape, batch, seed, activation, inp, dtype):
    name, frac = case
    method, params = _case(name, frac)
    n_in, n_out = shape
    rng = np.random.default_rng([seed, n_in, n_out, batch])
    layer = make_layer(method, n_in, n_out, activation=activation, seed=seed, dtype=dtype,
                       **params)
    set_bias(layer, rng)
    x = make_input(inp, batch, n_in, dtype, rng)
    stream = ref.SelectStream(seed)
    out, _ = run_and_compare(layer, method, params, x, train=True, rng=rng, stream=stream)
    _check_budget(name, params, mask_of(out), batch, n_out)
    # a second batch continues the same random stream (dropout masks differ per batch)
    x2 = make_input(inp, batch, n_in, dtype, rng)
    run_and_compare(layer, method, params, x2, train=True, rng=rng, stream=stream,
                    input_grad=False)


@grid
def test_inference_matches_reference(case, shape, batch, seed, activation, inp, dtype):
    name, frac = case
    method, params = _case(name, frac)
    n_in, n_out = shape
    rng = np.random.default_rng([seed, n_in, n_out, batch, 1])
    layer = make_layer(method, n_in, n_out, activation=activation, seed=seed, dtype=dtype,
                       **params)
    set_bias(layer, rng)
    x = make_input(inp, batch, n_in, dtype, rng)
    out, _ = run_and_compare(layer, method, params, x, train=False, rng=rng)
    got = mask_of(out)
    # the documented inference conventions
    if name in ("dense", "dropout", "adaptive_dropout", "wta_lifetime"):
        assert got.all()
    else:
        assert np.all(got.sum(1) == ref.budget(params["fraction"], n_out))
    # inference prepares no backward pass
    with pytest.raises(ConfigError):
        layer.backward(out.with_values(np.ones(out.nnz, dtype=layer.dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name", list(METHODS))
def test_every_activation(name, activation, inp, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng([11, len(activation), len(name)])
    layer = make_layer(method, 9, 17, activation=activation, seed=3, dtype=dtype, **params)
    set_bias(layer, rng)
    x = make_input(inp, 5, 9, dtype, rng)
    run_and_compare(layer, method, params, x, train=True, rng=rng)
    run_and_compare(layer, method, params, x, train=False, rng=rng)


# -- seeds -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(METHODS))
def test_same_seed_same_weights_and_sets(name, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng(21)
    xs = [rng.standard_normal((6, 33)).astype(dtype) for _ in range(3)]
    a = make_layer(method, 33, 64, seed=7, dtype=dtype, **params)
    b = make_layer(method, 33, 64, seed=7, dtype=dtype, **params)
    c = make_layer(method, 33, 64, seed=8, dtype=dtype, **params)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.W, ref.init_weights(7, 33, 64, dtype))
    assert a.W.dtype == np.dtype(dtype)
    assert np.all(np.abs(a.W) <= math.sqrt(6.0 / (33 + 64)))
    np.testing.assert_array_equal(a.b, np.zeros(64))
    assert not np.array_equal(a.W, c.W)
    sets_differ = False
    for x in xs:
        oa, ob, oc = (layer.forward(x, train=True) for layer in (a, b, c))
        np.testing.assert_array_equal(oa.indptr, ob.indptr)
        np.testing.assert_array_equal(oa.indices, ob.indices)
        np.testing.assert_array_equal(oa.values, ob.values)
        sets_differ |= not np.array_equal(mask_of(oa), mask_of(oc))
    if name in ("dropout", "adaptive_dropout", "wta_sample", "topk"):
        assert sets_differ


@pytest.mark.parametrize("name", ["dropout", "adaptive_dropout"])
def test_random_masks_differ_between_batches(name):
    method, params = _case(name, "some")
    layer = make_layer(method, 13, 64, seed=2, **params)
    x = np.random.default_rng(0).standard_normal((6, 13)).astype(np.float32)
    m1 = mask_of(layer.forward(x))
    m2 = mask_of(layer.forward(x))
    assert not np.array_equal(m1, m2)


# -- fixed active sets and forced nodes --------------------------------------------------------
def _random_active(rng, B, n) -> ActiveSet:
    mask = rng.random((B, n)) < 0.4
    mask[0] = False  # a sample with no active node
    if B > 2:
        mask[2] = True  # a sample with every node
    return csr_from_mask(mask, np.zeros((B, n), dtype=np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("name", list(METHODS))
def test_fixed_active_set(name, train, inp, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng([31, len(name), train])
    layer = make_layer(method, 7, 13, activation="tanh", seed=4, dtype=dtype, **params)
    set_bias(layer, rng)
    x = make_input(inp, 5, 7, dtype, rng)
    active = _random_active(rng, 5, 13)
    out, _ = run_and_compare(layer, method, params, x, train=train, rng=rng, active=active)
    np.testing.assert_array_equal(mask_of(out), mask_of(active))
    # a full fixed set computes every node
    full = ActiveSet.full(np.zeros((5, 13), dtype=dtype))
    out, _ = run_and_compare(layer, method, params, x, train=train, rng=rng, active=full)
    assert mask_of(out).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("name", list(METHODS))
def test_include_forces_nodes(name, train, inp, dtype):
    method, params = _case(name, "one")
    rng = np.random.default_rng([41, len(name), train])
    layer = make_layer(method, 7, 13, seed=9, dtype=dtype, **params)
    set_bias(layer, rng)
    B = 6
    x = make_input(inp, B, 7, dtype, rng)
    include = rng.integers(0, 13, size=B)
    out, _ = run_and_compare(layer, method, params, x, train=train, rng=rng, include=include)
    got = mask_of(out)
    assert got[np.arange(B), include].all()
    if train or name in ("wta_sample", "topk"):
        _check_budget(name, params, got, B, 13, include=include)
    # with a fixed active set as well: that set plus the forced node
    active = _random_active(rng, B, 13)
    out, _ = run_and_compare(layer, method, params, x, train=train, rng=rng,
                             active=active, include=include)
    expect = mask_of(active)
    expect[np.arange(B), include] = True
    np.testing.assert_array_equal(mask_of(out), expect)


# -- exact ties go to the lowest node --------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_topk_ties_to_lowest_index(dtype):
    layer = make_layer("topk", 4, 8, fraction=3 / 8, seed=0, dtype=dtype, activation="identity")
    layer.b[:] = np.array([0.5, 1, 1, 0.2, 1, 1, 0.9, 1], dtype=dtype)
    x = np.zeros((2, 4), dtype=dtype)  # every pre-activation is exactly its bias
    out = layer.forward(x)
    assert [list(r) for r in nodes_of(out)] == [[1, 2, 4], [1, 2, 4]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_wta_ties_at_zero_to_lowest_index(dtype):
    layer = make_layer("wta", 4, 8, fraction=3 / 8, seed=0, dtype=dtype)  # relu
    layer.b[:] = np.array([-1, -2, 0.5, -1, -3, -1, -1, -1], dtype=dtype)
    out = layer.forward(np.zeros((3, 4), dtype=dtype))
    assert [list(r) for r in nodes_of(out)] == [[0, 1, 2]] * 3


@pytest.mark.parametrize("dtype", DTYPES)
def test_wta_lifetime_ties_to_lowest_sample(dtype):
    layer = make_layer("wta", 4, 5, fraction=0.5, mode="lifetime", seed=0, dtype=dtype)
    layer.b[:] = np.array([1, -1, 2, 0, 3], dtype=dtype)
    out = layer.forward(np.zeros((4, 4), dtype=dtype))  # all samples tie on every node
    m = mask_of(out)
    np.testing.assert_array_equal(m, np.array([[1] * 5, [1] * 5, [0] * 5, [0] * 5], dtype=bool))


# -- chains, accumulation, edge cases -----------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(METHODS))
def test_sparse_input_from_dropout_layer(name, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng(51)
    first = make_layer("dropout", 9, 11, p=0.4, seed=1, dtype=dtype)
    h = first.forward(rng.standard_normal((5, 9)).astype(dtype), train=True)
    assert not h.is_full
    layer = make_layer(method, 11, 10, activation="tanh", seed=2, dtype=dtype, **params)
    set_bias(layer, rng)
    run_and_compare(layer, method, params, h, train=True, rng=rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(METHODS))
def test_full_activeset_input_from_dense_layer(name, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng(52)
    first = make_layer("dense", 9, 11, seed=1, dtype=dtype, activation="tanh")
    h = first.forward(rng.standard_normal((5, 9)).astype(dtype), train=True)
    layer = make_layer(method, 11, 10, activation="tanh", seed=2, dtype=dtype, **params)
    sel_out, _ = run_and_compare(layer, method, params, h, train=True, rng=rng,
                                 check_backward=False)
    layer.zero_grad()
    gx = layer.backward(sel_out.with_values(np.ones(sel_out.nnz, dtype=dtype)))
    assert isinstance(gx, ActiveSet) and gx.batch_size == 5 and gx.n_nodes == 11
    assert mask_of(gx).all()


@pytest.mark.parametrize("name", list(METHODS))
def test_backward_accumulates_until_zero_grad(name):
    method, params = _case(name, "some")
    rng = np.random.default_rng(61)
    layer = make_layer(method, 7, 13, seed=3, dtype="float64", **params)
    x = rng.standard_normal((4, 7))
    stream = ref.SelectStream(3)
    total_W = np.zeros_like(layer.W)
    total_b = np.zeros_like(layer.b)
    for _ in range(2):
        sel = ref.select(method, params, "relu", layer.W, layer.b, x, train=True, stream=stream,
                         **TOL[np.dtype(np.float64)])
        out = layer.forward(x)
        assert_selection(mask_of(out), sel)
        g = rng.standard_normal(out.nnz)
        nodes = nodes_of(out)
        z, _, sc = ref.forward_at(method, params, "relu", layer.W, layer.b, x, nodes, train=True)
        gW, gb, _, _ = ref.backward_at("relu", layer.W, x, nodes, z, sc, g)
        total_W += gW
        total_b += gb
        layer.backward(g)  # plain array of values is accepted too
    np.testing.assert_allclose(layer.grad_W, total_W, **TOL[np.dtype(np.float64)])
    np.testing.assert_allclose(layer.grad_b, total_b, **TOL[np.dtype(np.float64)])
    layer.zero_grad()
    assert not layer.grad_W.any() and not layer.grad_b.any() and not layer.touched.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(METHODS))
def test_sparse_input_with_empty_rows(name, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng(71)
    B, n_in, n_out = 4, 6, 9
    dense = rng.standard_normal((B, n_in)).astype(dtype)
    mask = rng.random((B, n_in)) < 0.6
    mask[0] = False
    mask[3] = False
    mask[1, 0] = True
    x = csr_from_mask(mask, dense)
    layer = make_layer(method, n_in, n_out, activation="tanh", seed=5, dtype=dtype, **params)
    set_bias(layer, rng)
    out, _ = run_and_compare(layer, method, params, x, train=True, rng=rng)
    # an empty sample's pre-activation is its bias alone
    scale = 1 / params["p"] if method == "dropout" else 1.0
    for s in (0, 3):
        ip = out.indptr
        o = out.indices[ip[s]:ip[s + 1]]
        np.testing.assert_allclose(out.values[ip[s]:ip[s + 1]],
                                   np.tanh(layer.b[o].astype(np.float64)) * scale,
                                   **_tol(dtype))
    # every sample empty
    empty = ActiveSet(np.zeros(B + 1, dtype=np.int64), np.zeros(0, dtype=np.int32),
                      np.zeros(0, dtype=dtype), n_in)
    layer2 = make_layer(method, n_in, n_out, activation="tanh", seed=5, dtype=dtype, **params)
    set_bias(layer2, rng)
    out2, _ = run_and_compare(layer2, method, params, empty, train=True, rng=rng)
    assert not layer2.grad_W.any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_one_node_layer(name, inp, dtype):
    method, params = _case(name, "some")
    rng = np.random.default_rng(81)
    layer = make_layer(method, 5, 1, seed=6, dtype=dtype, **params)
    set_bias(layer, rng)
    x = make_input(inp, 4, 5, dtype, rng)
    out, _ = run_and_compare(layer, method, params, x, train=True, rng=rng)
    got = mask_of(out)
    if name in ("dense", "wta_sample", "topk"):
        assert got.all()
    run_and_compare(layer, method, params, x, train=False, rng=rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_input_of_other_dtype_is_converted(name, inp, dtype):
    method, params = _case(name, "some")
    other = np.float64 if dtype == "float32" else np.float32
    rng = np.random.default_rng(85)
    layer = make_layer(method, 7, 13, activation="tanh", seed=8, dtype=dtype, **params)
    set_bias(layer, rng)
    x = make_input(inp, 5, 7, other, rng)
    out, _ = run_and_compare(layer, method, params, x, train=True, rng=rng)
    assert out.values.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", list(METHODS))
def test_second_backward_without_forward_raises(name):
    method, params = _case(name, "some")
    layer = make_layer(method, 4, 6, seed=1, **params)
    out = layer.forward(np.ones((2, 4), dtype=np.float32))
    layer.backward(np.ones(out.nnz, dtype=np.float32))
    with pytest.raises(ConfigError):
        layer.backward(np.ones(out.nnz, dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_nonfinite_input_raises(name, inp, bad):
    method, params = _case(name, "some")
    rng = np.random.default_rng(91)
    layer = make_layer(method, 5, 7, seed=0, **params)
    x = make_input(inp, 3, 5, np.float32, rng)
    if isinstance(x, np.ndarray):
        x[1, 2] = bad
    else:
        x.values[-1] = bad
    with pytest.raises(ConfigError):
        layer.forward(x, train=True)
    with pytest.raises(ValueError):
        layer.forward(x, train=False)
