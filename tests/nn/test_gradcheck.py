"""Finite-difference check of the whole MLP's gradients, active sets held fixed."""

from __future__ import annotations

import numpy as np
import pytest

from lshprof import MLP, ActiveSet

RTOL = 1e-6  # relative to the largest gradient entry of the parameter
ATOL = 1e-9
H = 1e-6  # central-difference step (float64)

N_IN, HIDDEN, N_CLASSES, BATCH = 6, [9, 7], 4, 5

CASES = {
    "dense": dict(method="dense"),
    "dropout": dict(method="dropout", params={"p": 0.6}),
    "adaptive_dropout": dict(method="adaptive_dropout", params={"alpha": 1.0, "beta": 0.5}),
    "wta_sample": dict(method="wta", params={"fraction": 0.4, "mode": "sample"}),
    "wta_lifetime": dict(method="wta", params={"fraction": 0.5, "mode": "lifetime"}),
    "topk": dict(method="topk", params={"fraction": 0.5}),
    "mixed": dict(method=["dropout", "topk"], params=[{"p": 0.7}, {"fraction": 0.6}]),
    "topk_output": dict(method="wta", params={"fraction": 0.5},
                        output_method="topk", output_params={"fraction": 0.5}),
}


def _record_sets(model):
    """Wrap each layer's forward so the sets it returns are kept."""
    sets = [None] * len(model.layers)
    for i, layer in enumerate(model.layers):
        orig = layer.forward

        def wrapped(x, *, _orig=orig, _i=i, **kw):
            out = _orig(x, **kw)
            sets[_i] = out
            return out

        layer.forward = wrapped
    return sets


def _pattern(out: ActiveSet) -> ActiveSet:
    if out.is_full:
        return ActiveSet.full(np.zeros((out.batch_size, out.n_nodes)))
    return ActiveSet(out.indptr.copy(), out.indices.copy(), np.zeros(out.nnz), out.n_nodes)


@pytest.mark.parametrize("case", list(CASES))
def test_mlp_gradients_match_central_differences(case):
    model = MLP.build(N_IN, HIDDEN, N_CLASSES, activation="tanh", dtype="float64", seed=13,
                      **CASES[case])
    rng = np.random.default_rng(2024)
    for layer in model.layers:  # non-zero biases so their gradient matters
        layer.b[:] = 0.2 * rng.standard_normal(layer.n_out)
    x = rng.standard_normal((BATCH, N_IN))
    y = rng.integers(0, N_CLASSES, size=BATCH)
    sparse_out = model.layers[-1].method != "dense"
    labels = y if sparse_out else None

    recorded = _record_sets(model)
    logits0 = model.forward(x, train=True, labels=labels)
    fixed = [_pattern(s) for s in recorded]
    if case not in ("dense",):
        assert any(not s.is_full for s in fixed), "expected a sparse active set somewhere"

    def loss_at_fixed():
        logits = model.forward(x, train=True, active=fixed, labels=labels)
        return model.loss(logits, y)

    for layer in model.layers:
        layer.zero_grad()
    # holding the chosen sets fixed reproduces the chosen forward pass exactly
    logits_fixed = model.forward(x, train=True, active=fixed, labels=labels)
    np.testing.assert_array_equal(logits_fixed.indptr, logits0.indptr)
    np.testing.assert_array_equal(logits_fixed.indices, logits0.indices)
    np.testing.assert_allclose(logits_fixed.values, logits0.values, rtol=1e-13, atol=1e-13)
    loss, grad, _ = loss_at_fixed()
    model.backward(grad)

    for li, layer in enumerate(model.layers):
        for P, G in ((layer.W, layer.grad_W), (layer.b, layer.grad_b)):
            num = np.zeros_like(P)
            flat_p, flat_n = P.reshape(-1), num.reshape(-1)
            for i in range(flat_p.size):
                old = flat_p[i]
                flat_p[i] = old + H
                lp = loss_at_fixed()[0]
                flat_p[i] = old - H
                lm = loss_at_fixed()[0]
                flat_p[i] = old
                flat_n[i] = (lp - lm) / (2 * H)
            scale = max(np.abs(num).max(), ATOL)
            err = np.abs(G - num).max()
            assert err <= RTOL * scale + ATOL, (
                f"layer {li} ({layer.method}) {'W' if P.ndim == 2 else 'b'}: max error {err:.3g} "
                f"vs scale {scale:.3g}"
            )
        # rows of nodes never active get no gradient, and are not marked touched
        untouched = ~layer.touched
        assert not layer.grad_W[untouched].any() and not layer.grad_b[untouched].any()
