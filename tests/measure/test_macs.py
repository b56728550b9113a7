"""MAC counts equal the closed-form formulas of ``reference.py`` exactly (integers)."""

from __future__ import annotations

import numpy as np
import pytest

import naive.layers as ref
from lshprof import MLP, ActiveSet, make_layer

METHODS = {
    "dense": ("dense", {}),
    "dropout": ("dropout", {"p": 0.4}),
    "adaptive_dropout": ("adaptive_dropout", {"alpha": 1.0, "beta": -0.5}),
    "wta_sample": ("wta", {"fraction": 0.3, "mode": "sample"}),
    "wta_lifetime": ("wta", {"fraction": 0.3, "mode": "lifetime"}),
    "topk": ("topk", {"fraction": 0.3}),
}


def _csr(mask: np.ndarray, dense: np.ndarray) -> ActiveSet:
    B, n = mask.shape
    indptr = np.concatenate([[0], np.cumsum(mask.sum(1))]).astype(np.int64)
    rows, cols = np.nonzero(mask)
    return ActiveSet(indptr, cols.astype(np.int32), dense[rows, cols].astype(dense.dtype), n)


def _input(kind, B, n_in, rng, dtype=np.float32):
    """The input and its active counts ``a_b`` (computed here, not by lshprof)."""
    x = rng.standard_normal((B, n_in)).astype(dtype)
    if kind == "dense":
        return x, np.full(B, n_in)
    mask = rng.random((B, n_in)) < 0.5
    mask[0] = False
    return _csr(mask, x), mask.sum(1)


def _counts(out: ActiveSet) -> np.ndarray:
    ip = out.indptr
    return np.array([ip[s + 1] - ip[s] for s in range(out.batch_size)])


def _as_dict(counts) -> dict:
    return {k: getattr(counts, k) for k in ref.PHASE_KEYS}


def _assert_macs(layer, expected: dict) -> None:
    got = layer.macs.counts()
    d = _as_dict(got)
    for k, v in d.items():
        assert type(v) is int, f"{k} is {type(v).__name__}, not an exact int"
    assert d == expected
    assert got.total == sum(expected[p] for p in ("select", "hash", "rehash", "forward",
                                                  "backward_input", "backward_weight"))


def _fixed_set(kind, B, n_out, rng):
    if kind is None:
        return None
    if kind == "full":
        return ActiveSet.full(np.zeros((B, n_out), dtype=np.float32))
    mask = rng.random((B, n_out)) < 0.35
    mask[-1] = False
    return _csr(mask, np.zeros((B, n_out), dtype=np.float32))


@pytest.mark.parametrize("fixed", [None, "sparse", "full"], ids=["chosen", "fixed", "fixedfull"])
@pytest.mark.parametrize("input_grad", [True, False], ids=["gx", "nogx"])
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_training_macs_exact(name, inp, input_grad, fixed):
    method, params = METHODS[name]
    mode = params.get("mode", "sample")
    n_in, n_out = 11, 17
    rng = np.random.default_rng([len(name), input_grad, inp == "dense"])
    layer = make_layer(method, n_in, n_out, seed=3, **params)
    expected = ref.zero_macs()
    _assert_macs(layer, expected)
    for B in (1, 5, 8):
        x, a = _input(inp, B, n_in, rng)
        out = layer.forward(x, train=True, active=_fixed_set(fixed, B, n_out, rng))
        k = _counts(out)
        expected = ref.add_macs(expected, ref.forward_macs(
            method, B=B, n_in=n_in, n_out=n_out, a=a, k=k, train=True, mode=mode, fixed=fixed))
        _assert_macs(layer, expected)
        layer.backward(out.with_values(np.ones(out.nnz, dtype=np.float32)), input_grad=input_grad)
        expected = ref.add_macs(expected, ref.backward_macs(
            method, B=B, n_in=n_in, n_out=n_out, a=a, k=k, input_grad=input_grad, fixed=fixed))
        _assert_macs(layer, expected)


@pytest.mark.parametrize("fixed", [None, "sparse", "full"], ids=["chosen", "fixed", "fixedfull"])
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_inference_macs_exact(name, inp, fixed):
    method, params = METHODS[name]
    mode = params.get("mode", "sample")
    n_in, n_out = 9, 14
    rng = np.random.default_rng([len(name), 7, inp == "dense"])
    layer = make_layer(method, n_in, n_out, seed=4, dtype="float64", **params)
    expected = ref.zero_macs()
    for B in (1, 6):
        x, a = _input(inp, B, n_in, rng, np.float64)
        out = layer.forward(x, train=False, active=_fixed_set(fixed, B, n_out, rng))
        k = _counts(out)
        expected = ref.add_macs(expected, ref.forward_macs(
            method, B=B, n_in=n_in, n_out=n_out, a=a, k=k, train=False, mode=mode, fixed=fixed))
        _assert_macs(layer, expected)


@pytest.mark.parametrize("train", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("inp", ["dense", "sparse"])
@pytest.mark.parametrize("name", list(METHODS))
def test_include_macs_exact(name, inp, train):
    method, params = METHODS[name]
    mode = params.get("mode", "sample")
    n_in, n_out, B = 8, 12, 6
    rng = np.random.default_rng([len(name), 9, train])
    layer = make_layer(method, n_in, n_out, seed=5, **params)
    x, a = _input(inp, B, n_in, rng)
    include = rng.integers(0, n_out, size=B)
    out = layer.forward(x, train=train, include=include)
    k = _counts(out)
    expected = ref.forward_macs(method, B=B, n_in=n_in, n_out=n_out, a=a, k=k, train=train,
                                mode=mode)
    if train:
        layer.backward(np.ones(out.nnz, dtype=np.float32), input_grad=True)
        expected = ref.add_macs(expected, ref.backward_macs(
            method, B=B, n_in=n_in, n_out=n_out, a=a, k=k, input_grad=True))
    _assert_macs(layer, expected)


def test_sparse_counts_use_real_sizes_not_fraction():
    """Hand-computed numbers for one small case (no reference involved)."""
    layer = make_layer("topk", 4, 10, fraction=0.2, seed=0)  # 2 nodes per sample
    mask = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    x = _csr(mask, np.ones((3, 4), dtype=np.float32))
    out = layer.forward(x, train=True)
    layer.backward(np.ones(out.nnz, dtype=np.float32), input_grad=True)
    c = layer.macs.counts()
    S = 2 * 2 + 0 * 2 + 4 * 2  # sum_b a_b k_b
    assert (c.select, c.forward, c.backward_weight, c.backward_input) == (120, 0, S, S)
    assert c.dense_equivalent == 3 * 120
    assert c.total == 120 + 2 * S


# -- whole model ---------------------------------------------------------------------------
def _record(model):
    """Wrap each layer's forward to record (input, output, train, fixed)."""
    logs = [[] for _ in model.layers]
    for i, layer in enumerate(model.layers):
        orig = layer.forward

        def wrapped(x, *, train=True, active=None, include=None, _orig=orig, _log=logs[i]):
            out = _orig(x, train=train, active=active, include=include)
            _log.append((x, out, train))
            return out

        layer.forward = wrapped
    return logs


def _a_of(x, n_in):
    if isinstance(x, np.ndarray) or x.is_full:
        return np.full(x.shape[0] if isinstance(x, np.ndarray) else x.batch_size, n_in)
    return _counts(x)


@pytest.mark.parametrize("output", ["dense", "topk"])
@pytest.mark.parametrize("methods", [
    ("dense", "dense"), ("dropout", "topk"), ("adaptive_dropout", "wta_sample"),
    ("wta_lifetime", "dropout"), ("topk", "adaptive_dropout"),
], ids=lambda m: "+".join(m))
def test_mlp_total_macs(methods, output):
    hidden = [16, 12]
    mlist = [METHODS[m][0] for m in methods]
    plist = [METHODS[m][1] for m in methods]
    model = MLP.build(10, hidden, 5, method=mlist, params=plist, output_method=output,
                      output_params={"fraction": 0.4} if output == "topk" else None, seed=2)
    logs = _record(model)
    rng = np.random.default_rng(99)
    widths = [10] + hidden + [5]
    expected = [ref.zero_macs() for _ in model.layers]
    for B in (1, 7, 4):
        x = rng.standard_normal((B, 10)).astype(np.float32)
        y = rng.integers(0, 5, size=B)
        logits = model.forward(x, train=True, labels=y)
        _, grad, _ = model.loss(logits, y)
        model.backward(grad)
        for i, layer in enumerate(model.layers):
            xin, out, _ = logs[i][-1]
            a, k = _a_of(xin, widths[i]), _counts(out)
            mode = layer.params.get("mode", "sample")
            kw = dict(B=B, n_in=widths[i], n_out=widths[i + 1], a=a, k=k)
            expected[i] = ref.add_macs(
                expected[i],
                ref.forward_macs(layer.method, train=True, mode=mode, **kw),
                ref.backward_macs(layer.method, input_grad=i > 0, **kw))
    # an inference pass
    x = rng.standard_normal((3, 10)).astype(np.float32)
    model.predict(x)
    for i, layer in enumerate(model.layers):
        xin, out, train = logs[i][-1]
        assert train is False
        kw = dict(B=3, n_in=widths[i], n_out=widths[i + 1], a=_a_of(xin, widths[i]),
                  k=_counts(out))
        expected[i] = ref.add_macs(expected[i], ref.forward_macs(
            layer.method, train=False, mode=layer.params.get("mode", "sample"), **kw))
    for i, layer in enumerate(model.layers):
        assert _as_dict(model.macs()[i]) == expected[i], f"layer {i} ({layer.method})"
    total = ref.add_macs(*expected)
    assert _as_dict(model.total_macs()) == total
    assert model.total_macs().dense_equivalent == total["dense_equivalent"]
    F = [widths[i] * widths[i + 1] for i in range(3)]
    # dense equivalent: 12 training samples (2F forward+weight, +F input grad above layer 0)
    # and 3 inference samples
    assert total["dense_equivalent"] == sum(
        12 * (2 * f + (f if i > 0 else 0)) + 3 * f for i, f in enumerate(F))
