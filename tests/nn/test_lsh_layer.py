"""The LSH layer: computation on the chosen set, tables, schedules, edge cases, quality."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import naive.layers as ref
from test_layers import TOL, check_csr, csr_from_mask, nodes_of
from lshprof import MLP, ActiveSet, ConfigError, make_layer, train
from lshprof import kernels as K
from lshprof.nn.lsh import FAMILIES, POLICIES, TRANSFORMS, HashFunctions

CONFIGS = [dict(family=f, transform=t) for f in FAMILIES for t in TRANSFORMS]


def _lsh(n_in=24, n_out=60, **params):
    params.setdefault("fraction", 0.2)
    params.setdefault("K", 3)
    params.setdefault("L", 8)
    if params.get("family") in ("wta", "dwta"):
        params.setdefault("K", 2)
        params.setdefault("bin_size", 4)
    return make_layer("lsh", n_in, n_out, **params)


def _x(kind: str, B: int, n_in: int, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, n_in)).astype(dtype)
    if kind == "dense":
        return x
    mask = rng.random((B, n_in)) < 0.4
    mask[0] = False  # a sample with no active input
    return csr_from_mask(mask, x)


# -- the computation on the chosen set equals the reference -----------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['family']}-{c['transform']}")
def test_forward_backward_match_reference_on_chosen_set(cfg, kind, dtype):
    layer = _lsh(activation="tanh", seed=3, dtype=dtype, pool=2, **cfg)
    layer.b[:] = np.linspace(-0.3, 0.3, layer.n_out)
    x = _x(kind, 5, layer.n_in, dtype, seed=1)
    out = layer.forward(x, train=True)
    check_csr(out, 5, layer.n_out, dtype)
    nodes = nodes_of(out)
    assert all(len(n) <= layer.budget for n in nodes)
    z, vals, scale = ref.forward_at("topk", {}, "tanh", layer.W, layer.b, x, nodes, train=True)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(out.values, vals, **tol)
    W = layer.W.copy()
    g = np.random.default_rng(2).standard_normal(out.nnz).astype(dtype)
    gx = layer.backward(out.with_values(g))
    gW, gb, touched, gx_ref = ref.backward_at("tanh", W, x, nodes, z, scale, g)
    np.testing.assert_allclose(layer.grad_W, gW, **tol)
    np.testing.assert_allclose(layer.grad_b, gb, **tol)
    np.testing.assert_array_equal(layer.touched, touched)
    if kind == "dense":
        np.testing.assert_allclose(gx, gx_ref, **tol)
    else:
        np.testing.assert_allclose(gx.values, gx_ref, **tol)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_fraction_one_is_exactly_dense(kind):
    x = _x(kind, 6, 24, "float32", seed=4)
    lsh = make_layer("lsh", 24, 30, fraction=1.0, seed=9)
    dense = make_layer("dense", 24, 30, seed=9)
    np.testing.assert_array_equal(lsh.W, dense.W)
    a, b = lsh.forward(x, train=True), dense.forward(x, train=True)
    assert a.is_full and b.is_full
    np.testing.assert_array_equal(a.to_dense(), b.to_dense())
    g = np.ones((6, 30), dtype=np.float32)
    ga = lsh.backward(ActiveSet.full(g))
    gb = dense.backward(ActiveSet.full(g))
    np.testing.assert_array_equal(lsh.grad_W, dense.grad_W)
    np.testing.assert_array_equal(ga.to_dense() if isinstance(ga, ActiveSet) else ga,
                                  gb.to_dense() if isinstance(gb, ActiveSet) else gb)
    assert lsh.macs.counts() == dense.macs.counts()
    lsh.after_step()
    assert lsh.tables is None and lsh.memory_bytes()["tables"] == 0


def test_same_seed_same_selection_and_quality_flag_changes_nothing():
    x = _x("dense", 16, 32, "float32", seed=5)
    runs = []
    for quality in (False, True, False):
        layer = _lsh(32, 200, fraction=0.1, seed=11, quality=quality, policy="multiprobe",
                     shortfall="pad")
        outs = [layer.forward(x, train=True) for _ in range(2)]
        runs.append([(o.indptr.copy(), o.indices.copy()) for o in outs])
    for other in runs[1:]:
        for (ip0, ix0), (ip1, ix1) in zip(runs[0], other):
            np.testing.assert_array_equal(ip0, ip1)
            np.testing.assert_array_equal(ix0, ix1)


# -- policies, shortfall, edge cases ------------------------------------------------------------
@pytest.mark.parametrize("policy", POLICIES)
def test_policies_choose_from_the_query_buckets(policy):
    layer = _lsh(16, 80, fraction=0.1, K=2, L=3, seed=2, policy=policy, probes=2)
    x = _x("dense", 7, 16, "float32", seed=6)
    out = layer.forward(x, train=False)
    digits, alts, margins, _ = layer.hashes.digits(np.ascontiguousarray(x))
    codes = layer.hashes.codes(digits)
    probes = layer.hashes.probes(codes, digits, alts, margins, 2)
    for s, chosen in enumerate(nodes_of(out)):
        exact = [set(layer.tables.bucket(t, codes[s, t]).tolist()) for t in range(3)]
        near = [set(layer.tables.bucket(t, c).tolist()) for t in range(3) for c in probes[s, t] if c >= 0]
        pool = set().union(*exact) | (set().union(*near) if policy == "multiprobe" else set())
        assert set(chosen.tolist()) <= pool
        assert len(chosen) == min(layer.budget, len(pool))
        if policy == "histogram" and len(pool) > layer.budget:
            hits = {n: sum(n in e for e in exact) for n in pool}
            worst_in = min(hits[n] for n in chosen)
            best_out = max(hits[n] for n in pool - set(chosen.tolist()))
            assert worst_in >= best_out


@pytest.mark.parametrize("shortfall", ["keep", "pad"])
def test_k_larger_than_sensible_gives_short_sets(shortfall):
    layer = _lsh(32, 300, fraction=0.1, K=40, L=2, seed=1, shortfall=shortfall)
    out = layer.forward(_x("dense", 9, 32, "float32"), train=True)
    counts = out.counts()
    stats = layer.selection_stats()
    assert stats.queries == 9 and stats.short_queries == 9  # 40-bit buckets are (nearly) singletons
    assert stats.chosen < 9 * layer.budget
    if shortfall == "keep":
        assert stats.padded == 0 and counts.sum() == stats.chosen
    else:
        assert np.all(counts == layer.budget)
        assert stats.padded == 9 * layer.budget - stats.chosen
    s = stats.summary()
    assert s["short_fraction"] == 1.0 and s["empty_bucket_fraction"] > 0.5


def test_one_node_layer():
    layer = make_layer("lsh", 5, 1, fraction=0.5, seed=0)
    assert layer.budget == 1 and layer.dense_mode
    out = layer.forward(_x("dense", 3, 5, "float32"), train=True)
    assert out.is_full and out.to_dense().shape == (3, 1)


def test_empty_buckets_are_counted_and_return_nothing():
    layer = _lsh(8, 20, fraction=0.5, K=12, L=1, seed=0)
    x = _x("dense", 4, 8, "float32", seed=8)
    layer.forward(x, train=False)
    st = layer.selection_stats()
    assert st.buckets == 4
    assert st.empty_buckets == sum(
        layer.tables.bucket(0, c).size == 0
        for c in layer.hashes.codes(layer.hashes.digits(x)[0])[:, 0])


def test_sparse_output_layer_with_labels_keeps_the_label():
    layer = make_layer("lsh", 16, 500, activation="identity", fraction=0.02, K=8, L=4, seed=0)
    x = _x("dense", 12, 16, "float32")
    labels = np.arange(12) * 41
    out = layer.forward(x, train=True, include=labels)
    for s, chosen in enumerate(nodes_of(out)):
        assert labels[s] in chosen


# -- tables stay consistent through training and re-hashing --------------------------------------
@pytest.mark.parametrize("cfg", [dict(family="srp", transform="none"),
                                 dict(family="srp_sparse", transform="norm_augment"),
                                 dict(family="dwta", transform="sign_alsh", K=2, bin_size=4)])
@pytest.mark.parametrize("rehash_rows", ["updated", "all"])
def test_tables_match_current_weights_after_rehash(cfg, rehash_rows):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 20)).astype(np.float32)
    y = rng.integers(0, 4, 64)
    model = MLP.build(20, [120], 4, method="lsh",
                      params=dict(fraction=0.1, L=6, capacity=None, rehash="every",
                                  rehash_every=1, rehash_rows=rehash_rows, K=cfg.pop("K", 4),
                                  **cfg),
                      seed=1)
    train(model, X, y, epochs=2, batch_size=16, optimizer="sgd")
    layer = model.layers[0]
    assert layer.rehash_count == 1 + 8  # the initial build, then one per batch
    # the stored codes are what hashing the current weights (with the tables' M) gives
    from lshprof.nn.lsh import HashCost
    idx, V, full = layer._row_vectors(np.arange(layer.n_out), HashCost())
    assert not full
    digits, _, margins, _ = layer.hashes.digits(np.ascontiguousarray(V))
    fresh = layer.hashes.codes(digits)
    stored = layer.tables.codes.T
    if layer.params["family"] == "srp":
        # srp projections come from BLAS products of row blocks, whose float32 rounding
        # may depend on the block: a projection within rounding of 0 may take either sign
        K_, L = layer.params["K"], layer.params["L"]
        near = (margins.reshape(-1, L, K_) < 1e-5).any(axis=2)
        assert near.mean() < 0.01
        stored, fresh = stored[~near], fresh[~near]
    np.testing.assert_array_equal(stored, fresh)
    # unlimited buckets: every node is in exactly L buckets
    np.testing.assert_array_equal(layer.tables.membership().sum(axis=0), layer.params["L"])


def test_capacity_limits_buckets_and_fifo_keeps_the_newest():
    layer = _lsh(8, 200, fraction=0.1, K=1, L=2, capacity=5, seed=0)
    # replay the layer's hash generator: it draws the hash functions, then the order in
    # which the first build inserts the rows (FIFO tables keep no insertion times)
    rng = copy.deepcopy(layer._hash_rng)
    HashFunctions("srp", 1, 2, layer.hash_dim, rng, dtype=layer.dtype)
    inserted_at = np.empty(200, dtype=np.int64)
    inserted_at[rng.permutation(200)] = np.arange(200)
    layer.forward(_x("dense", 2, 8, "float32"), train=False)
    t = layer.tables
    member = t.membership()
    assert member.sum(axis=1).tolist() == [10, 10]  # 2 buckets x 5 per table
    for tab in range(2):
        for code in (0, 1):
            b = t.bucket(tab, code)
            assert b.size == 5
            holders = np.flatnonzero(t.codes[tab] == code)
            newest = holders[np.argsort(-inserted_at[holders])]
            assert b.tolist() == newest[:5].tolist()  # newest first
            assert t.ranked(tab, code).tolist() == newest.tolist()


# -- schedules -------------------------------------------------------------------------------------
def _count_rehashes(n_steps, epochs_batches=None, **params):
    layer = _lsh(8, 30, seed=0, **params)
    layer.forward(_x("dense", 2, 8, "float32"), train=False)  # builds the tables
    at = []
    if epochs_batches is None:
        for step in range(1, n_steps + 1):
            before = layer.rehash_count
            layer.after_step()
            if layer.rehash_count > before:
                at.append(step)
        return at
    epochs, nb = epochs_batches
    for e in range(epochs):
        layer.start_epoch(e, nb)
        for i in range(1, nb + 1):
            before = layer.rehash_count
            layer.after_step()
            if layer.rehash_count > before:
                at.append((e, i))
    return at


def test_rehash_every_n_batches():
    assert _count_rehashes(20, rehash="every", rehash_every=6, rehash_rows="all") == [6, 12, 18]


def test_rehash_updated_rows_skips_when_nothing_changed():
    assert _count_rehashes(20, rehash="every", rehash_every=6) == []


def test_exponential_schedule_intervals_grow():
    at = _count_rehashes(400, rehash="exponential", rehash_every=10, rehash_growth=0.5,
                         rehash_rows="all")
    gaps = np.diff([0] + at)
    expected = [10] + [max(1, round(10 * math.exp(0.5 * t))) for t in range(1, len(gaps))]
    assert gaps.tolist() == expected


def test_paper_schedule():
    at = _count_rehashes(0, epochs_batches=(23, 20), rehash="paper", rehash_rows="all")
    epochs = sorted({e for e, _ in at})
    assert epochs == list(range(10)) + [10, 12, 14, 16, 18]  # 20 % (20 // 10 + 1) != 0
    assert [i for e, i in at if e == 0] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]


def test_never_and_new_projections():
    assert _count_rehashes(30, rehash="never", rehash_rows="all") == []
    layer = _lsh(8, 30, seed=0, new_projections_every=4)
    layer.forward(_x("dense", 2, 8, "float32"), train=False)
    P0 = layer.hashes.P.copy()
    for _ in range(4):
        layer.after_step()
    assert not np.array_equal(P0, layer.hashes.P)
    assert layer.rehash_count == 2


# -- selection quality -------------------------------------------------------------------------------
def test_quality_kernel_scores_exact_topk_as_perfect():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((6, 40))
    k = 7
    idx = np.sort(np.argsort(-z, axis=1)[:, :k], axis=1).astype(np.int32).ravel()
    indptr = np.arange(7, dtype=np.int64) * k
    out = np.empty((6, 6))
    K.selection_quality(z, indptr, idx, rng.random((6, 40)), out)
    np.testing.assert_allclose(out[:, 0], 1.0)
    np.testing.assert_allclose(out[:, 1], out[:, 4])
    pos = np.maximum(z, 0)
    top_mass = np.sort(pos, axis=1)[:, -k:].sum(axis=1) / pos.sum(axis=1)
    np.testing.assert_allclose(out[:, 4], top_mass)


def test_random_set_recall_is_about_k_over_n():
    layer = _lsh(16, 400, fraction=0.05, seed=0, quality=True)
    layer.forward(_x("dense", 400, 16, "float32"), train=False)
    s = layer.selection_stats().summary()
    assert s["quality_queries"] == 400
    # mean of 400 hypergeometric recalls: sd of the mean ~0.003 around 0.05
    assert abs(s["random_recall"] - 0.05) < 0.015
    assert layer.macs.counts().quality == 400 * 16 * 400


def _clustered_layer(L, policy, seed=0, **extra):
    """A layer whose 1000 rows form 20 tight groups of 50; queries sit near a group."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, 64))
    W = np.repeat(centres, 50, axis=0) + 0.35 * rng.standard_normal((1000, 64))
    layer = make_layer("lsh", 64, 1000, fraction=0.05, K=6, L=L, policy=policy,
                       quality=True, seed=seed, **extra)
    layer.W[:] = W
    q = centres[rng.integers(0, 20, 200)] + 0.35 * rng.standard_normal((200, 64))
    layer.forward(q.astype(np.float32), train=False)
    return layer.selection_stats().summary()


def test_recall_rises_with_L_and_multiprobe_and_beats_random():
    recalls = {L: _clustered_layer(L, "histogram")["recall"] for L in (1, 4, 16)}
    assert recalls[1] < recalls[4] < recalls[16]
    hist = _clustered_layer(2, "histogram")
    multi = _clustered_layer(2, "multiprobe", probes=6)
    assert multi["recall"] > hist["recall"]
    best = _clustered_layer(16, "histogram")
    assert best["recall"] > 5 * best["random_recall"]
    assert best["mass"] > 3 * best["random_mass"]
    print({"recall_by_L": recalls, "histogram_L2": hist["recall"],
           "multiprobe_L2": multi["recall"], "random": best["random_recall"]})


# -- training and bad parameters -----------------------------------------------------------------------
def test_training_reports_selection_per_epoch():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 12)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = MLP.build(12, [80], 3, method="lsh", params=dict(fraction=0.1, quality=True), seed=0)
    hist = train(model, X, y, epochs=2, batch_size=32, optimizer="adam")
    for h in hist:
        sel, out = h.layer_selection
        assert out is None
        assert sel["queries"] == 96 and sel["quality_queries"] == 96
        assert 0 <= sel["recall"] <= 1 and 0 <= sel["random_recall"] <= 1
        assert h.train_macs.hash > 0 and h.train_macs.quality > 0
        assert h.as_dict()["layer_selection"][0]["queries"] == 96


@pytest.mark.parametrize("bad, msg", [
    (dict(family="md5"), "unknown family 'md5'; valid: srp, srp_sparse, wta, dwta"),
    (dict(policy="all"), "unknown policy 'all'; valid: union, histogram, multiprobe"),
    (dict(transform="x"), "unknown transform 'x'"),
    (dict(K=0), "K must be >= 1"),
    (dict(K=63), "63-bit codes"),
    (dict(family="wta", K=21, bin_size=8), "63-bit codes"),
    (dict(bin_size=6), "power of 2"),
    (dict(capacity=0), "capacity must be >= 1"),
    (dict(pool=100), "pool must be in [1, 24]"),
    (dict(quality="yes"), "quality must be true or false"),
    (dict(rehash="sometimes"), "unknown rehash 'sometimes'"),
    (dict(rehash_growth=-1.0), "rehash_growth must be >= 0"),
])
def test_bad_parameters_name_the_problem(bad, msg):
    with pytest.raises(ConfigError, match=None) as e:
        make_layer("lsh", 24, 10, **bad)
    assert msg in str(e.value)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_macs_follow_the_table(kind):
    """forward/backward count S = sum a_b k_b; the build and re-hash count K*L*D per row."""
    layer = _lsh(24, 60, fraction=0.2, K=3, L=8, seed=0, rehash="every", rehash_every=1)
    x = _x(kind, 5, 24, "float32", seed=3)
    a = np.full(5, 24) if kind == "dense" else np.diff(x.indptr)
    out = layer.forward(x, train=True)
    S = int(np.dot(a, out.counts()))
    F = 3 * 8  # hash functions
    nnz = 5 * 24 if kind == "dense" else x.nnz
    m = layer.macs.counts()
    assert (m.select, m.forward, m.hash, m.rehash) == (0, S, F * nnz, 60 * F * 24)
    layer.backward(out.with_values(np.ones(out.nnz, dtype=np.float32)))
    m = layer.macs.counts()
    assert (m.backward_weight, m.backward_input) == (S, S)
    assert m.dense_equivalent == 3 * 5 * 24 * 60
    layer.after_step()  # re-hashes exactly the rows the batch touched
    touched = np.unique(out.indices).size
    assert layer.macs.counts().rehash == (60 + touched) * F * 24


def test_rows_updated_before_the_first_build_are_not_rehashed_again():
    """The build hashes every row's current weights, so the rows updated before it (by
    forward passes given ``active=``, which build nothing) are not pending afterwards:
    the next scheduled re-hash hashes the rows updated since the build, K*L*n_in MACs
    each (srp), as ``naive.layers.rehashed_rows`` has it. (It hashed the earlier rows
    again: 4,560 MACs at step 4 where the rule gives 1,800.)"""
    from lshprof.nn.optim import make_optimizer

    K_, L_, n_in, n_out = 2, 5, 12, 40
    layer = _lsh(n_in, n_out, K=K_, L=L_, fraction=0.1, seed=2, rehash="every", rehash_every=2)
    opt = make_optimizer("sgd", [layer], lr=0.5)
    x = _x("dense", 6, n_in, "float32", seed=4)
    fixed = np.zeros((6, n_out), dtype=bool)
    fixed[:, 5:33] = True  # rows 5..32, updated before any table exists
    steps, rehash = [], []
    for step in range(1, 7):
        active = ActiveSet.from_mask(fixed) if step <= 2 else None
        out = layer.forward(x, active=active)
        layer.backward(out.with_values(np.ones(out.nnz, dtype=np.float32)))
        updated = np.flatnonzero(layer.touched)
        before = layer.macs.counts().rehash
        opt.step()
        layer.after_step()
        steps.append((layer.tables is not None, updated, step % 2 == 0))
        rehash.append(layer.macs.counts().rehash - before)
    per_row = K_ * L_ * n_in
    rows = ref.rehashed_rows(n_out, steps)
    assert rows[0] == n_out and layer.rehash_count == len(rows)
    assert layer.macs.counts().rehash == sum(rows) * per_row
    # the build is counted in step 3's forward pass, then each due step's re-hash alone
    assert rehash == [0, 0, 0, rows[1] * per_row, 0, rows[2] * per_row]
    assert rows == [40, 15, 14] and rehash[3] == 1800


# -- why the tables return too few nodes ------------------------------------------------------------
def test_the_selection_summary_carries_the_facts_that_explain_it():
    """dwta with K = 6 digits of 3 bits: 18-bit codes for 1000 nodes, 0.0038 nodes per
    bucket, so nearly every probed bucket is empty and a query gets well under 1 node of
    its budget of 50. The row says so, with the one-line cause and fix."""
    from lshprof.nn.lsh import selection_diagnosis

    rng = np.random.default_rng(7)
    X = (rng.random((96, 64)) < 0.3).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = MLP.build(64, [1000], 3, method="lsh", params=dict(family="dwta", fraction=0.05),
                      seed=0)
    (st,) = train(model, X, y, epochs=1, batch_size=16)
    s = st.layer_selection[0]
    assert {k: s[k] for k in ("family", "transform", "K", "L", "digit_bits", "code_bits",
                              "digit_values", "code_space", "nodes", "budget", "policy",
                              "probes", "capacity", "shortfall")} == dict(
        family="dwta", transform="none", K=6, L=50, digit_bits=3, code_bits=18, digit_values=8,
        code_space=8**6, nodes=1000, budget=50, policy="histogram", probes=0, capacity=128,
        shortfall="keep")
    assert s["nodes_per_bucket"] == 1000 / 8**6
    assert s["expected_candidates"] == pytest.approx(1000 * (1 - (1 - 8.0**-6) ** 50), rel=1e-12)
    assert (s["queries"], s["chosen_per_query"], s["empty_bucket_fraction"]) == (
        96, 62 / 96, 0.988125)
    assert selection_diagnosis(s) == (
        "codes of 18 bits for 1000 nodes leave buckets empty (0.00381 nodes per bucket, 98.8% "
        'of the probed buckets empty): lower K (K = 3 gives 1.95 nodes per bucket), or set '
        'shortfall = "pad"')
    assert st.layer_selection[1] is None  # the dense output layer selects nothing


def _facts(**over):
    """A layer_selection entry: srp, K = 6, L = 50 over 1000 nodes, budget 50."""
    s = dict(queries=100, chosen_per_query=10.0, short_fraction=1.0, padded_per_query=0.0,
             visited_per_query=400.0, empty_bucket_fraction=0.1, family="srp",
             transform="none", K=6, L=50, digit_bits=1, code_bits=6, digit_values=2,
             code_space=64, nodes=1000, nodes_per_bucket=1000 / 64, budget=50,
             policy="histogram", probes=0, capacity=128, shortfall="keep")
    s.update(over)
    return s


def test_the_diagnosis_names_the_cause_and_the_parameter_to_change():
    from lshprof.nn.lsh import expected_candidates, selection_diagnosis

    assert expected_candidates(1000, 64, 50) == pytest.approx(1000 * (1 - (63 / 64) ** 50))
    assert expected_candidates(1000, 64, 50, capacity=2) == 100
    assert expected_candidates(1000, 1, 3) == 1000
    # enough chosen: nothing to say; a row of before the facts: nothing to say
    assert selection_diagnosis(_facts(chosen_per_query=25.0)) is None
    assert selection_diagnosis({"chosen_per_query": 0.1, "empty_bucket_fraction": 1.0}) is None
    assert selection_diagnosis("oops") is None
    # buckets too small for the budget
    assert selection_diagnosis(_facts(capacity=4, L=10)) == (
        "buckets of capacity = 4 in L = 10 tables hold at most 40 nodes per query: raise "
        'capacity or L, or set shortfall = "pad"')
    # codes too long: the largest K that fills the budget (srp: 2**K codes)
    assert selection_diagnosis(_facts(K=16, code_bits=16, code_space=2**16,
                                      nodes_per_bucket=1000 / 2**16, L=4,
                                      empty_bucket_fraction=0.95)) == (
        "codes of 16 bits for 1000 nodes leave buckets empty (0.0153 nodes per bucket, 95.0% "
        'of the probed buckets empty): lower K (K = 6 gives 15.6 nodes per bucket), or set '
        'shortfall = "pad"')
    # no K fills it: fewer digits and more tables
    assert selection_diagnosis(_facts(K=12, code_bits=12, code_space=4096, L=1, nodes=200,
                                      capacity=None, budget=150,
                                      chosen_per_query=0.1)).endswith(
        'lower K and raise L, or set shortfall = "pad"')
    # buckets that should hold nodes are empty: the inputs hash elsewhere
    assert selection_diagnosis(_facts(empty_bucket_fraction=0.9, shortfall="pad")) == (
        "90.0% of the probed buckets were empty though 6-bit codes give 15.6 nodes per bucket: "
        "the inputs hash where few weight rows do (family = 'srp', transform = 'none'); try "
        'policy = "multiprobe", another family or transform; shortfall = "pad" fills the rest '
        "with random nodes")
    # buckets full of the same few nodes
    assert selection_diagnosis(_facts()) == (
        "the probed buckets held few distinct nodes (400 entries read per query): the weight "
        'rows\' codes crowd into few buckets; raise L or lower K, or set shortfall = "pad"')
    # the budget from a fraction, for an entry without one
    s = _facts(capacity=4, L=10)
    del s["budget"]
    assert selection_diagnosis(s, 0.05) == selection_diagnosis(_facts(capacity=4, L=10))
    assert selection_diagnosis(s) is None


def test_a_wta_digit_takes_at_most_as_many_values_as_coordinates():
    layer = _lsh(6, 40, family="wta", K=2, bin_size=8)
    f = layer.selection_facts()
    assert (f["digit_bits"], f["digit_values"], f["code_bits"], f["code_space"]) == (3, 6, 6, 36)
