"""Bad input gets a clear error that names the problem."""

import numpy as np
import pytest

from lshprof import MLP, evaluate, limit_threads, make_layer, make_optimizer, train
from lshprof.errors import ConfigError
from lshprof.nn.layers import LAYERS

X = np.ones((3, 4), np.float32)


def test_unknown_method_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown method 'lsh2'; valid methods: " + ", ".join(LAYERS)):
        make_layer("lsh2", 4, 5)


@pytest.mark.parametrize("method", list(LAYERS))
def test_unknown_parameter_lists_valid_ones(method):
    valid = ", ".join(LAYERS[method].PARAMS) or "none"
    with pytest.raises(ValueError, match=f"unknown parameter 'bogus' for method '{method}'; valid: {valid}"):
        make_layer(method, 4, 5, bogus=1)


@pytest.mark.parametrize("method, key", [("dropout", "p"), ("wta", "fraction"), ("topk", "fraction")])
@pytest.mark.parametrize("value", [0, 0.0, -0.1, 1.0001, 2, float("nan")])
def test_fraction_outside_unit_interval(method, key, value):
    with pytest.raises(ValueError, match=rf"{key} must be in \(0, 1\]"):
        make_layer(method, 4, 5, **{key: value})


@pytest.mark.parametrize("value", ["0.5", True, None])
def test_fraction_of_wrong_type(value):
    with pytest.raises(ValueError, match="fraction must be a number"):
        make_layer("topk", 4, 5, fraction=value)


def test_fraction_one_is_allowed():
    assert make_layer("topk", 4, 5, fraction=1.0).forward(X).nnz == 15


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "gelu"}, "unknown activation 'gelu'; valid: relu, identity, tanh, sigmoid"),
    ({"dtype": "float16"}, "dtype must be float32 or float64"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"seed": 1.5}, "seed must be a non-negative integer"),
])
def test_bad_common_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_layer("dense", 4, 5, **kwargs)


@pytest.mark.parametrize("n_in, n_out", [(0, 5), (4, 0), (4.0, 5), (-1, 3)])
def test_bad_widths(n_in, n_out):
    with pytest.raises(ValueError, match="must be a positive integer"):
        make_layer("dense", n_in, n_out)


def test_bad_wta_mode():
    with pytest.raises(ValueError, match="unknown mode 'global'; valid: sample, lifetime"):
        make_layer("wta", 4, 5, mode="global")


@pytest.mark.parametrize("method", list(LAYERS))
def test_input_errors(method):
    layer = make_layer(method, 4, 5)
    with pytest.raises(TypeError, match="float array, got dtype int64"):
        layer.forward(np.ones((3, 4), np.int64))
    with pytest.raises(TypeError, match="x must be a numpy array, got list"):
        layer.forward([[1.0] * 4])
    with pytest.raises(ValueError, match=r"shape \[batch, 4\], got \(3, 5\)"):
        layer.forward(np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"for one sample use x\[None, :\]"):
        layer.forward(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="empty batch"):
        layer.forward(np.ones((0, 4), np.float32))
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        layer.forward(bad)
    with pytest.raises(ValueError, match="backward needs a forward pass with train=True"):
        layer.backward(np.ones(3, np.float32))


def test_backward_checks_gradient_layout():
    layer = make_layer("topk", 4, 10, fraction=0.3)
    out = layer.forward(X)
    other = make_layer("topk", 4, 10, fraction=0.2).forward(X)
    with pytest.raises(ValueError, match="gradient's active set differs"):
        layer.backward(other.with_values(np.ones(other.nnz, np.float32)))
    layer.forward(X)
    with pytest.raises(ValueError, match="do not fit this active set"):
        layer.backward(np.ones(out.nnz + 1, np.float32))


def test_inference_forward_cannot_be_backpropagated():
    layer = make_layer("dense", 4, 5)
    layer.forward(X, train=False)
    with pytest.raises(ValueError, match="train=True"):
        layer.backward(np.ones((3, 5), np.float32))


def test_active_and_include_are_checked():
    layer = make_layer("dropout", 4, 5)
    other = make_layer("dense", 4, 6).forward(X)
    with pytest.raises(ValueError, match=r"active set is \[3 x 6\] but the batch needs \[3 x 5\]"):
        layer.forward(X, active=other)
    with pytest.raises(TypeError, match="active must be an ActiveSet"):
        layer.forward(X, active=np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"include must be an int array of shape \(3,\)"):
        layer.forward(X, include=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"include nodes must lie in \[0, 5\)"):
        layer.forward(X, include=np.array([0, 1, 5]))


def test_mlp_errors():
    with pytest.raises(ValueError, match="layer widths do not chain"):
        MLP([make_layer("dense", 4, 5), make_layer("dense", 6, 2, activation="identity")])
    with pytest.raises(ValueError, match="output layer's activation must be 'identity'"):
        MLP([make_layer("dense", 4, 5)])
    with pytest.raises(ValueError, match="2 hidden layers need as many methods"):
        MLP.build(4, [5, 5], 2, method=["dense"])
    model = MLP.build(4, [5], 2)
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        train(model, X, y)
    with pytest.raises(ValueError, match=r"y must be an int array of shape \(3,\)"):
        train(model, X, np.array([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        train(model, X, np.array([0, 1, 0]), batch_size=0)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; valid: sgd, adagrad, adam"):
        make_optimizer("rmsprop", model.layers)
    with pytest.raises(ValueError, match="unknown parameter 'betas' for optimizer 'adam'"):
        make_optimizer("adam", model.layers, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        make_optimizer("sgd", model.layers, lr=0)
    with pytest.raises(ValueError, match=r"beta2 must be below 1"):
        make_optimizer("adam", model.layers, beta2=1.0)
    with pytest.raises(ValueError, match=r"momentum must be below 1"):
        make_optimizer("adagrad", model.layers, momentum=1.5)


def test_sparse_output_without_labels_is_explained():
    model = MLP.build(4, [5], 6, output_method="topk", output_params={"fraction": 0.2})
    logits = model.forward(X)
    with pytest.raises(ValueError, match="true class is not in the output active set; pass labels="):
        model.loss(logits, _absent(logits))


def _absent(logits):
    # one class per sample that top-k did not choose
    return np.array([np.setdiff1d(np.arange(6), logits.indices[logits.indptr[b]:logits.indptr[b + 1]])[0]
                     for b in range(logits.batch_size)])


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_bad_thread_count(n):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        with limit_threads(n):
            pass


@pytest.mark.parametrize("method", list(LAYERS))
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_backward_refuses_a_nan_gradient_as_forward_refuses_a_nan_input(method, bad):
    """(It returned NaN input gradients and NaN weight gradients, which the optimizer then
    wrote into the weights.)"""
    layer = make_layer(method, 4, 5, fraction=1.0) if method in ("wta", "topk", "lsh") else \
        make_layer(method, 4, 5)
    out = layer.forward(X)
    g = np.ones(out.nnz, np.float32)
    g[1] = bad
    with pytest.raises(ConfigError, match=f"^{method}: the gradient contains NaN or inf "
                       r"\(a diverging loss: lower the learning rate\)$"):
        layer.backward(out.with_values(g))
    assert not layer.touched.any() and not layer.grad_W.any()  # nothing accumulated


def test_training_on_no_samples_is_refused():
    """(A ZeroDivisionError for no training samples, numpy's "need at least one array to
    concatenate" for no evaluation samples.)"""
    model = MLP.build(4, [5], 2)
    none = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    with pytest.raises(ConfigError, match=r"^train: X has no samples \(shape \(0, 4\)\); give "
                       "at least one$"):
        train(model, *none)
    with pytest.raises(ConfigError, match=r"^eval: X has no samples"):
        train(model, X, np.array([0, 1, 0]), X_eval=none[0], y_eval=none[1])
    with pytest.raises(ConfigError, match=r"^evaluate: X has no samples"):
        evaluate(model, *none)


def test_a_hidden_method_without_hidden_layers_is_refused():
    """(``MLP.build(..., hidden=[], method="lsh")`` built a dense network without a word.)"""
    with pytest.raises(ConfigError, match=(
            r"^MLP.build: method='lsh' is for the hidden layers but hidden=\[\] has none; give "
            r"their widths \(hidden=\[...\]\) or make the output layer lsh "
            r"\(output_method='lsh'; in a scenario: \[network\] apply_to = \"output\"\)$")):
        MLP.build(4, [], 2, method="lsh")
    with pytest.raises(ConfigError, match="params are for the hidden layers but hidden=.. has none"):
        MLP.build(4, [], 2, params={"fraction": 0.1})
    assert [layer.method for layer in MLP.build(4, [], 2).layers] == ["dense"]
    assert [layer.method for layer in MLP.build(4, [], 2, output_method="lsh").layers] == ["lsh"]
