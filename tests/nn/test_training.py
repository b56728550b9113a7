"""The MLP trainer: every method learns, runs are reproducible, updates are sparse."""

import numpy as np
import pytest

from lshprof import MLP, MacCounts, evaluate, make_optimizer, train
from lshprof.data import gaussian_clusters

METHODS = [
    ("dense", {}),
    ("dropout", {"p": 0.5}),
    ("adaptive_dropout", {"alpha": 1.0, "beta": 0.0}),
    ("wta", {"fraction": 0.2}),
    ("wta", {"fraction": 0.2, "mode": "lifetime"}),
    ("topk", {"fraction": 0.2}),
]


@pytest.fixture(scope="module")
def easy():
    # separable: tight clusters far apart
    return gaussian_clusters(600, 300, n_features=20, n_classes=4, clusters_per_class=2,
                             noise=0.3, seed=3)


@pytest.mark.parametrize("method, params", METHODS, ids=lambda v: str(v))
def test_every_method_learns_a_separable_problem(easy, method, params):
    model = MLP.build(20, [64], 4, method=method, params=params, seed=1)
    hist = train(model, easy.X_train, easy.y_train, epochs=4, batch_size=16,
                 optimizer="adam", optimizer_params={"lr": 3e-3},
                 X_eval=easy.X_test, y_eval=easy.y_test, seed=2, threads=1)
    assert hist[-1].eval_accuracy >= 0.95
    assert hist[-1].loss < hist[0].loss


@pytest.mark.parametrize("optimizer, params", [("sgd", {"lr": 0.05}), ("adagrad", {"lr": 0.05}),
                                               ("adam", {"lr": 3e-3})])
def test_every_optimizer_learns(easy, optimizer, params):
    model = MLP.build(20, [32], 4, method="topk", params={"fraction": 0.25}, seed=1)
    hist = train(model, easy.X_train, easy.y_train, epochs=3, batch_size=8, optimizer=optimizer,
                 optimizer_params=params, X_eval=easy.X_test, y_eval=easy.y_test, seed=0)
    assert hist[-1].eval_accuracy >= 0.95


def test_batch_size_one_with_adagrad_as_the_paper_code(easy):
    model = MLP.build(20, [32], 4, method="dropout", params={"p": 0.5}, seed=4)
    hist = train(model, easy.X_train[:200], easy.y_train[:200], epochs=1, batch_size=1,
                 optimizer="adagrad", optimizer_params={"lr": 0.01, "momentum": 0.5},
                 X_eval=easy.X_test, y_eval=easy.y_test)
    assert hist[0].eval_accuracy >= 0.9


def test_sparse_output_layer_trains_with_labels_forced_in(easy):
    model = MLP.build(20, [32], 4, method="dense", output_method="topk",
                      output_params={"fraction": 0.25}, seed=0)
    hist = train(model, easy.X_train, easy.y_train, epochs=3, batch_size=16,
                 optimizer_params={"lr": 3e-3}, X_eval=easy.X_test, y_eval=easy.y_test)
    # one class chosen by top-k plus the label where it was not chosen: 1 or 2 of 4
    assert 0.25 <= hist[-1].layer_active_fraction[-1] <= 0.5
    assert hist[-1].eval_accuracy >= 0.9


@pytest.mark.parametrize("method, params", METHODS, ids=lambda v: str(v))
def test_same_seed_same_weights_and_history(easy, method, params):
    def once():
        model = MLP.build(20, [24], 4, method=method, params=params, seed=7)
        hist = train(model, easy.X_train[:160], easy.y_train[:160], epochs=2, batch_size=16,
                     seed=5)
        return model, hist

    (m1, h1), (m2, h2) = once(), once()
    for a, b in zip(m1.layers, m2.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    assert [h.loss for h in h1] == [h.loss for h in h2]
    assert [h.train_macs for h in h1] == [h.train_macs for h in h2]


def test_updates_touch_only_active_rows():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 10)).astype(np.float32)
    y = np.array([0, 1, 2, 0])
    model = MLP.build(10, [50], 3, method="topk", params={"fraction": 0.04}, seed=0)
    W0 = model.layers[0].W.copy()
    out = model.layers[0].forward(X)
    active_rows = np.unique(out.indices)
    logits = model.forward(X)
    _, grad, _ = model.loss(logits, y)
    model.backward(grad)
    opt = make_optimizer("adam", model.layers)
    opt.step()
    changed = np.flatnonzero(np.any(model.layers[0].W != W0, axis=1))
    np.testing.assert_array_equal(changed, active_rows)
    assert not model.layers[0].touched.any()
    assert not model.layers[0].grad_W.any()


def test_epoch_stats_add_up(easy):
    model = MLP.build(20, [16, 12], 4, method=["dropout", "topk"],
                      params=[{"p": 0.5}, {"fraction": 0.25}], seed=0)
    hist = train(model, easy.X_train[:96], easy.y_train[:96], epochs=2, batch_size=32,
                 X_eval=easy.X_test[:50], y_eval=easy.y_test[:50])
    total = sum((h.train_macs + h.eval_macs for h in hist), MacCounts())
    assert total == model.total_macs()
    for h in hist:
        assert h.train_macs == sum(h.layer_train_macs, MacCounts())
        assert h.layer_active_fraction[1] == 3 / 12  # topk: budget 3 of 12
        assert h.layer_active_fraction[2] == 1.0  # dense output
        d = h.as_dict()
        assert d["train_macs"]["total"] == h.train_macs.total


def test_evaluate_matches_predict(easy):
    model = MLP.build(20, [16], 4, seed=0)
    acc = evaluate(model, easy.X_test, easy.y_test)
    assert acc == float((model.predict(easy.X_test) == easy.y_test).mean())
