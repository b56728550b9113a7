"""The LSH layer's selection-quality measures of the hash's own ranking: ROC AUC and average
precision of the collision counts against the exact top-k and the active nodes, and the rank
correlation with the pre-activations (:mod:`lshprof.nn.lsh.stats`), checked against
scikit-learn and SciPy, on settings whose answer is known, and for determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

from lshprof import MLP, make_layer, train
from lshprof import kernels as K
from lshprof.nn.lsh import SelectionStats
from lshprof.nn.lsh.stats import (RANK_ENTRIES, average_ranks, rank_correlation, rank_queries,
                                  ranking_quality, roc_auc_ap, topk_truth)

RANK_KEYS = ("rank_queries", "active_fraction", "auc_topk", "ap_topk", "auc_topk_queries",
             "auc_active", "ap_active", "auc_active_queries", "spearman", "spearman_queries")


def _tied_arrays(seed, B=60, n=37, levels=4):
    """Integer scores with many ties, a truth with some single-class and all-tied rows."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (B, n))
    truth = rng.random((B, n)) < rng.uniform(0.05, 0.6, (B, 1))
    truth[0] = False  # no positive
    truth[1] = True  # no negative
    scores[2] = 3  # every score tied
    truth[3] = False
    truth[3, 5] = True  # one positive
    return scores, truth


# -- the measures against the references ---------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_and_average_precision_match_sklearn_with_ties(seed):
    scores, truth = _tied_arrays(seed)
    auc, ap = roc_auc_ap(scores, truth)
    for q in range(scores.shape[0]):
        if truth[q].all() or not truth[q].any():
            assert math.isnan(auc[q]) and math.isnan(ap[q])
            continue
        assert abs(auc[q] - roc_auc_score(truth[q], scores[q])) < 1e-12
        assert abs(ap[q] - average_precision_score(truth[q], scores[q])) < 1e-12
    assert auc[2] == 0.5  # all tied: every pair counted half
    assert ap[2] == truth[2].mean()  # all tied: one threshold, precision = prevalence


def test_auc_and_average_precision_match_sklearn_on_float_and_unsigned_scores():
    rng = np.random.default_rng(5)
    truth = rng.random((20, 300)) < 0.2
    for scores in (rng.standard_normal((20, 300)),
                   np.round(rng.standard_normal((20, 300)), 1).astype(np.float32),
                   rng.integers(0, 9, (20, 300)).astype(np.uint8),
                   rng.integers(0, 300, (20, 300)).astype(np.uint16)):
        auc, ap = roc_auc_ap(scores, truth)
        np.testing.assert_allclose(auc, [roc_auc_score(t, s) for t, s in zip(truth, scores)],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(ap, [average_precision_score(t, s)
                                        for t, s in zip(truth, scores)], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_ranks_and_rank_correlation_match_scipy_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 5, (40, 50))
    b = np.round(rng.standard_normal((40, 50)), 1)  # ties too
    a[0] = 2  # constant: undefined
    np.testing.assert_array_equal(average_ranks(a), np.array([rankdata(r) for r in a]))
    np.testing.assert_array_equal(average_ranks(b), np.array([rankdata(r) for r in b]))
    rho = rank_correlation(a, b)
    assert math.isnan(rho[0])
    ref = np.array([spearmanr(a[q], b[q]).statistic for q in range(1, 40)])
    np.testing.assert_allclose(rho[1:], ref, rtol=0, atol=1e-12)


def test_topk_truth_breaks_ties_to_the_lowest_node_as_the_topk_kernel():
    rng = np.random.default_rng(3)
    z = np.round(rng.standard_normal((30, 40)), 1)  # many ties at the threshold
    for k in (1, 7, 40):
        idx = np.empty(30 * k, dtype=np.int64)
        K.topk_rows(z, k, idx)
        want = np.zeros(z.shape, dtype=bool)
        want[np.repeat(np.arange(30), k), idx] = True
        np.testing.assert_array_equal(topk_truth(z, k), want)


def test_ranking_quality_matches_the_references_per_query():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((25, 80)) - 0.3
    scores = rng.integers(0, 6, (25, 80)).astype(np.uint8)
    k = 8
    m = ranking_quality(scores, z, k)
    top = np.zeros(z.shape, dtype=bool)
    top[np.arange(25)[:, None], np.argsort(-z, axis=1, kind="stable")[:, :k]] = True
    for q in range(25):
        s, act = scores[q], z[q] > 0
        assert abs(m["auc_topk"][q] - roc_auc_score(top[q], s)) < 1e-12
        assert abs(m["ap_topk"][q] - average_precision_score(top[q], s)) < 1e-12
        assert abs(m["auc_active"][q] - roc_auc_score(act, s)) < 1e-12
        assert abs(m["ap_active"][q] - average_precision_score(act, s)) < 1e-12
        assert abs(m["spearman"][q] - spearmanr(s, z[q]).statistic) < 1e-12
        assert m["active_fraction"][q] == act.mean()


def test_an_exact_ranking_scores_one_and_its_choice_recalls_everything():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((12, 200))
    k = 10
    m = ranking_quality(z, z, k)  # the score is the pre-activation itself
    for key in ("auc_topk", "ap_topk", "auc_active", "ap_active", "spearman"):
        np.testing.assert_array_equal(m[key], 1.0)
    # a score that only marks the exact top-k still ranks it perfectly
    marks = topk_truth(z, k).astype(np.uint8)
    m2 = ranking_quality(marks, z, k)
    np.testing.assert_array_equal(m2["auc_topk"], 1.0)
    np.testing.assert_array_equal(m2["ap_topk"], 1.0)
    # and choosing those nodes recalls all of the top-k
    idx = np.flatnonzero(marks.reshape(-1)) % 200
    out = np.empty((12, 6))
    K.selection_quality(z, np.arange(13, dtype=np.int64) * k, idx.astype(np.int32),
                        rng.random(z.shape), out)
    np.testing.assert_array_equal(out[:, 0], 1.0)


def test_non_finite_rows_and_empty_stats_are_unmeasured():
    z = np.ones((2, 5))
    z[1, 2] = np.nan
    z[0] = [1, -1, 2, -2, 0.5]
    m = ranking_quality(np.arange(10).reshape(2, 5), z, 2)
    assert all(math.isnan(v[1]) for v in m.values())
    st = SelectionStats.of_ranking(m)
    assert st.rank_queries == 1 and st.auc_topk_queries == 1 and st.spearman_queries == 1
    s = SelectionStats().summary()
    for key in RANK_KEYS:
        assert (s[key] == 0) if key.endswith("queries") else math.isnan(s[key])


# -- the tables' scores ---------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["union", "histogram", "multiprobe"])
@pytest.mark.parametrize("K_bits,capacity", [(3, 6), (12, None)])  # bucket offsets / sorted codes
def test_collision_counts_are_the_tables_that_hold_the_node(policy, K_bits, capacity):
    rng = np.random.default_rng(4)
    layer = make_layer("lsh", 16, 300, fraction=0.05, K=K_bits, L=7, policy=policy, probes=3,
                       capacity=capacity, seed=2)
    x = rng.standard_normal((9, 16)).astype(np.float32)
    layer.build()
    digits, alts, margins, _ = layer.hashes.digits(x, None)
    codes = layer.hashes.codes(digits)
    probes = layer.hashes.probes(codes, digits, alts, margins, 3)
    got = layer.tables.collisions(codes, probes, policy)
    found = layer.tables.membership()  # [L, n]: the node is within its bucket's capacity
    node_codes = layer.tables.codes  # [L, n]
    want = (found[None] & (node_codes[None] == codes[:, :, None])).sum(axis=1)
    if policy == "multiprobe":
        for r in range(3):
            want += (found[None] & (node_codes[None] == probes[:, :, r, None])).sum(axis=1)
    np.testing.assert_array_equal(got, want)
    assert got.max() <= layer.params["L"]


# -- settings whose answer is known ---------------------------------------------------------------
def test_a_hash_that_puts_every_node_in_one_bucket_ranks_at_chance():
    """Every weight row hashes to one code, so every node shares every bucket: all scores
    tie, the AUC is 0.5 and the average precision the prevalence, and the chosen set is as
    good as a random one."""
    rng = np.random.default_rng(0)
    n, d, B = 1000, 16, 400
    layer = make_layer("lsh", d, n, fraction=0.05, K=1, L=16, capacity=None,
                       rehash="never", quality=True, seed=3)
    layer.W[:] = rng.standard_normal(d)  # one direction: one code per table
    layer.build()
    assert (layer.tables.codes == layer.tables.codes[:, :1]).all()
    W = rng.standard_normal((n, d))
    layer.W[:] = W / np.linalg.norm(W, axis=1, keepdims=True)  # no node favoured
    layer.forward(rng.standard_normal((B, d)).astype(np.float32), train=False)
    s = layer.selection_stats().summary()
    k = layer.budget
    assert s["chosen_per_query"] == k
    assert s["rank_queries"] == s["auc_topk_queries"] == s["auc_active_queries"] == B
    assert s["auc_topk"] == 0.5 and s["auc_active"] == 0.5
    assert abs(s["ap_topk"] - k / n) < 1e-12
    assert abs(s["ap_active"] - s["active_fraction"]) < 1e-12
    assert s["spearman_queries"] == 0 and math.isnan(s["spearman"])
    assert abs(s["recall"] - k / n) < 0.01 and abs(s["random_recall"] - k / n) < 0.01


def test_a_real_hash_ranks_better_than_chance():
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 32))
    layer = make_layer("lsh", 32, 1000, fraction=0.05, K=6, L=16, quality=True, seed=1)
    layer.W[:] = np.repeat(centres, 50, axis=0) + 0.35 * rng.standard_normal((1000, 32))
    q = centres[rng.integers(0, 20, 100)] + 0.35 * rng.standard_normal((100, 32))
    layer.forward(q.astype(np.float32), train=False)
    s = layer.selection_stats().summary()
    assert s["auc_topk"] > 0.8 and s["auc_active"] > 0.6 and s["spearman"] > 0.3
    assert s["ap_topk"] > 3 * layer.budget / 1000


def test_wide_layers_score_a_bounded_share_of_each_batch():
    np.testing.assert_array_equal(rank_queries(128, 1000), np.arange(128))
    sub = rank_queries(128, 100_000)
    assert sub.size == RANK_ENTRIES // 100_000 == 10 and sub[0] == 0 and sub[-1] < 128
    assert np.unique(sub).size == sub.size
    assert rank_queries(4, 10**7).tolist() == [0]
    n = 40_000
    layer = make_layer("lsh", 8, n, fraction=0.01, K=8, L=4, quality=True, seed=0)
    x = np.random.default_rng(0).standard_normal((64, 8)).astype(np.float32)
    layer.forward(x, train=False)
    layer.forward(x, train=False)
    s = layer.selection_stats().summary()
    assert s["quality_queries"] == 128 and s["rank_queries"] == 2 * (RANK_ENTRIES // n)


# -- through training -----------------------------------------------------------------------------
def _train_summaries():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((96, 12)).astype(np.float32)
    y = rng.integers(0, 3, 96)
    model = MLP.build(12, [80], 3, method="lsh",
                      params=dict(fraction=0.1, quality=True, policy="multiprobe"), seed=0)
    hist = train(model, X, y, epochs=2, batch_size=32, optimizer="adam", seed=0)
    return [h.as_dict()["layer_selection"][0] for h in hist]


def test_epoch_rows_carry_the_ranking_measures_and_repeat_exactly():
    first, again = _train_summaries(), _train_summaries()
    for row in first:
        assert row["rank_queries"] == 96
        assert row["auc_topk_queries"] == 96 and 0 < row["auc_active_queries"] <= 96
        for key in ("auc_topk", "ap_topk", "auc_active", "ap_active"):
            assert 0.0 <= row[key] <= 1.0
        assert -1.0 <= row["spearman"] <= 1.0
    assert first[0]["auc_topk"] != first[1]["auc_topk"]  # measured per epoch
    for a, b in zip(first, again):
        assert a.keys() == b.keys()
        for key in a:
            same = a[key] == b[key] or (isinstance(a[key], float) and math.isnan(a[key])
                                        and math.isnan(b[key]))
            assert same, key
