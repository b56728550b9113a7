"""The node-major sparse kernels, the fused element-wise passes and the parallel forms.

Every parallel form must give what the serial form gives: exactly where each output
is computed by one thread in the same order (forward values, weight and bias
gradients, optimizer rows), and to rounding where per-thread partial sums are added
(the input gradient). The parallel forms are called directly with several parts, so
these tests hold on a machine of any core count.
"""

import os
import sys

import numpy as np
import pytest
from background import result as background_result
from background import starts_early

from lshprof import kernels as K
from lshprof.measure.threads import limit_threads
from lshprof.nn.active import ActiveSet
from lshprof.nn.layers import make_layer
from lshprof.nn.layers.base import _gemm_accumulate
from lshprof.nn.optim import make_optimizer


def _pattern(rng, B, n, k):
    rows = [np.sort(rng.choice(n, size=rng.integers(0, k + 1), replace=False)) for _ in range(B)]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32) if indptr[-1] else np.zeros(0, np.int32)
    return indptr, indices


def test_by_node_groups_entries_by_node_with_samples_ascending():
    rng = np.random.default_rng(0)
    indptr, indices = _pattern(rng, 9, 20, 8)
    colptr, ent, samp = K.by_node(indptr, indices, 20)
    sample_of = np.repeat(np.arange(9), np.diff(indptr))
    order = np.lexsort((sample_of, indices))  # by node, then sample
    np.testing.assert_array_equal(ent, order)
    np.testing.assert_array_equal(samp, sample_of[order])
    np.testing.assert_array_equal(np.diff(colptr), np.bincount(indices, minlength=20))


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_node_chunks_cover_every_node_once(parts):
    colptr = np.concatenate([[0], np.cumsum(np.random.default_rng(1).integers(0, 9, 50))])
    ch = K.node_chunks(colptr.astype(np.int64), parts, 2)
    assert ch[0] == 0 and ch[-1] == 50 and ch.size == parts + 1
    assert np.all(np.diff(ch) >= 0)


@pytest.mark.parametrize("sparse_in", [False, True])
@pytest.mark.parametrize("parts", [2, 3])
def test_parallel_forward_backward_match_serial(sparse_in, parts):
    rng = np.random.default_rng(2)
    B, n_in, n_out = 7, 13, 40
    W = rng.standard_normal((n_out, n_in)).astype(np.float32)
    b = rng.standard_normal(n_out).astype(np.float32)
    indptr, indices = _pattern(rng, B, n_out, 12)
    colptr, ent, samp = K.by_node(indptr, indices, n_out)
    chunks = K.node_chunks(colptr, parts, 2)
    dz = rng.standard_normal(indices.size).astype(np.float32)
    if sparse_in:
        xp, xi = _pattern(rng, B, n_in, 6)
        xv = rng.standard_normal(xi.size).astype(np.float32)
        xs = (xp, xi, xv)
        fw, fwp, bw, bwp = K.forward_sparse, K.forward_sparse_par, K.backward_sparse, \
            K.backward_sparse_par
        gx_shape = (xi.size,)
        dense = ActiveSet(xp, xi, xv, n_in).to_dense()
    else:
        x = rng.standard_normal((B, n_in)).astype(np.float32)
        xs = (x,)
        fw, fwp, bw, bwp = K.forward_dense, K.forward_dense_par, K.backward_dense, \
            K.backward_dense_par
        gx_shape = (B, n_in)
        dense = x
    z1 = np.empty(indices.size, np.float32)
    z2 = np.empty_like(z1)
    fw(*xs, W, b, colptr, ent, samp, z1)
    fwp(*xs, W, b, colptr, ent, samp, chunks, z2)
    np.testing.assert_array_equal(z1, z2)
    rows = np.repeat(np.arange(B), np.diff(indptr))
    want = (dense.astype(np.float64) @ W.T.astype(np.float64) + b)[rows, indices]
    np.testing.assert_allclose(z1, want, rtol=1e-5, atol=1e-5)

    outs = []
    for f, extra in ((bw, ()), (bwp, (chunks,))):
        gW = np.zeros_like(W)
        gb = np.zeros_like(b)
        touched = np.zeros(n_out, bool)
        gx = np.zeros(gx_shape, np.float32)
        f(*xs, W, colptr, ent, samp, dz, gW, gb, touched, gx, True, *extra)
        outs.append((gW, gb, touched, gx))
    (gW1, gb1, t1, gx1), (gW2, gb2, t2, gx2) = outs
    np.testing.assert_array_equal(gW1, gW2)
    np.testing.assert_array_equal(gb1, gb2)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(gx1, gx2, rtol=1e-6, atol=1e-6)
    D = np.zeros((B, n_out))
    D[rows, indices] = dz
    np.testing.assert_allclose(gW1, D.T @ dense, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(t1, np.bincount(indices, minlength=n_out) > 0)
    want_gx = D @ W
    if sparse_in:
        want_gx = want_gx[np.repeat(np.arange(B), np.diff(xp)), xi]
    np.testing.assert_allclose(gx1, want_gx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["relu", "identity", "tanh", "sigmoid"])
def test_fused_passes_match_numpy(act):
    from lshprof.nn.layers import ACTIVATIONS

    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 11)).astype(np.float32)
    b = rng.standard_normal(11).astype(np.float32)
    g = rng.standard_normal(55).astype(np.float32)
    f, df = ACTIVATIONS[act]
    code = K.ACT_CODES[act]
    for serial, par, extra in ((K.bias_act, K.bias_act_par, (2,)), (K.bias_act, K.bias_act, ())):
        zz, out = z.copy(), np.empty_like(z)
        (par if extra else serial)(zz, b, code, 0.5, out, *extra)
        np.testing.assert_allclose(zz, z + b, rtol=1e-6)
        np.testing.assert_allclose(out, f(z + b) * 0.5, rtol=1e-5, atol=1e-6)
    for fn, extra in ((K.act, ()), (K.act_par, (3,))):
        out = np.empty(55, np.float32)
        fn(z.reshape(-1), code, 2.0, out, *extra)
        np.testing.assert_allclose(out, f(z.reshape(-1)) * 2.0, rtol=1e-5, atol=1e-6)
    for fn, extra in ((K.act_grad, ()), (K.act_grad_par, (3,))):
        out = np.empty(55, np.float32)
        fn(g, z.reshape(-1), code, 2.0, out, *extra)
        np.testing.assert_allclose(out, g * df(z.reshape(-1)) * 2.0, rtol=1e-5, atol=1e-6)


def test_fused_relu_keeps_nan_visible():
    z = np.array([[np.nan, -1.0, 2.0]], np.float32)
    out = np.empty_like(z)
    K.bias_act(z, np.zeros(3, np.float32), K.ACT_CODES["relu"], 1.0, out)
    assert np.isnan(out[0, 0]) and out[0, 1] == 0 and out[0, 2] == 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_accumulate_adds_in_place(dtype):
    rng = np.random.default_rng(4)
    C = rng.standard_normal((9, 5)).astype(dtype)
    start = C.copy()
    A = rng.standard_normal((4, 9)).astype(dtype)
    X = rng.standard_normal((4, 5)).astype(dtype)
    ptr = C.__array_interface__["data"][0]
    _gemm_accumulate(C, A, X)
    _gemm_accumulate(C, A, X[:, :])
    assert C.__array_interface__["data"][0] == ptr
    np.testing.assert_allclose(C, start + 2 * (A.T @ X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adagrad", "adam"])
def test_parallel_optimizer_rows_match_serial(name):
    rng = np.random.default_rng(5)
    results = []
    for parts in (1, 3):
        layer = make_layer("dense", 6, 20, seed=0)
        opt = make_optimizer(name, [layer])
        P, G = layer.W, layer.grad_W
        G[...] = rng.standard_normal(G.shape).astype(np.float32) if parts == 1 else results[0][1]
        g0 = G.copy()
        rows = np.array([1, 4, 5, 11, 19])
        state = opt._state[0][0]
        args = {"sgd": lambda: (P, G, state[0], rows, 0.1, 0.9, 0.01),
                "adagrad": lambda: (P, G, state[0], state[1], rows, 0.1, 0.5, 0.01, 1e-8),
                "adam": lambda: (P, G, state[0], state[1], rows, 0.01, 0.9, 0.999, 1e-8, 0.01,
                                 1)}[name]()
        kern = {"sgd": K.sgd_momentum_rows, "adagrad": K.adagrad_momentum_rows,
                "adam": K.adam_rows}[name]
        if parts == 1:
            kern(*args)
        else:
            getattr(K, kern.__name__ + "_par")(*args, parts)
        assert not G[rows].any()  # the updated rows' gradients are cleared
        results.append((P.copy(), g0))
    np.testing.assert_array_equal(results[0][0], results[1][0])


@pytest.mark.parametrize("method,params", [("lsh", {"fraction": 0.1, "L": 8, "K": 3}),
                                           ("topk", {"fraction": 0.1}),
                                           ("dropout", {}), ("dense", {})])
def test_layer_same_at_one_and_two_threads(method, params):
    """A layer's forward values and gradients do not depend on the thread count."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 24)).astype(np.float32)
    got = []
    for threads in (1, 2):
        layer = make_layer(method, 24, 60, seed=3, **params)
        with limit_threads(threads):
            out = layer.forward(x, train=True)
            gx = layer.backward(out.with_values(np.linspace(-1, 1, out.nnz, dtype=np.float32)))
        got.append((out.values.copy(), layer.grad_W.copy(), layer.grad_b.copy(), gx))
    (v1, w1, b1, x1), (v2, w2, b2, x2) = got
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b1, b2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(x1, x2, rtol=1e-5, atol=1e-6)


def test_importing_lshprof_shortens_openblas_spinning_unless_set(tmp_path):
    """OpenBLAS's idle threads must not spin against numba's (see lshprof/__init__.py)."""
    import os
    import subprocess
    import sys

    code = "import lshprof, os; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "4"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "OPENBLAS_THREAD_TIMEOUT": "10"})
    assert out.stdout.strip() == "10"


#: packed single-precision arithmetic: what a vectorised float32 loop compiles to (SSE,
#: AVX and AVX-512 spell these the same, the AVX forms with a leading v)
_PACKED = r"\bv?(?:add|sub|mul|div|max|min|sqrt|and|andn|blendv|cmp\w*|f[n]?m(?:add|sub)\d*)ps\b"

_VECTOR_PROBE = """
import importlib.util, json, re, sys
spec = importlib.util.spec_from_file_location("kf", sys.argv[1])
kf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kf)
K = kf.K
for sparse_in in (False, True):  # compile every pair on float32 arguments
    kf.test_parallel_forward_backward_match_serial(sparse_in, 2)
kf.test_fused_passes_match_numpy("relu")
for name in ("sgd", "adagrad", "adam"):
    kf.test_parallel_optimizer_rows_match_serial(name)
packed = re.compile(sys.argv[2])
count = lambda f: sum(len(packed.findall(a)) for a in f.inspect_asm().values())
print(json.dumps({s: [count(getattr(K, s)), count(getattr(K, s + "_par"))] for s in sys.argv[3:]}))
"""


_VECTOR_NAMES = ["act", "act_grad", "bias_act", "adam_rows", "sgd_momentum_rows",
                 "adagrad_momentum_rows", "forward_dense", "forward_sparse", "backward_dense",
                 "backward_sparse"]


def _vector_probe(folder):
    """The probe's process: a fresh interpreter with an empty numba cache of its own."""
    return ([sys.executable, "-c", _VECTOR_PROBE, __file__, _PACKED, *_VECTOR_NAMES],
            {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba-cache"),
             # this module imports tests/background.py
             "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(__file__)),
                                            os.environ.get("PYTHONPATH", "")])})


@starts_early(_vector_probe)
def test_parallel_forms_are_vectorised_like_the_serial_forms(request):
    """Machine code, not time: each parallel form's loops compile to packed float
    instructions as its serial form's do. A flat loop from ``lo`` to ``hi`` inside a
    parallel region once compiled to scalar code, 4x slower per thread, so 2 threads ran
    slower than 1 (see ``kernels/_dense.py``). In a fresh process with an empty numba
    cache, because code loaded from the cache cannot be inspected (it compiles everything,
    so it starts with the session: tests/background.py)."""
    import json

    names = _VECTOR_NAMES
    out = background_result(request.node.nodeid)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = json.loads(out.stdout.splitlines()[-1])
    for name, (serial, par) in counts.items():
        # the parallel form holds the serial loop body (and sometimes a reduction more)
        assert par >= serial / 2 and (par > 0 or serial == 0), (name, serial, par)
    # the simple element-wise and optimizer passes vectorise at all
    assert all(counts[n][0] > 0 for n in names[:6]), counts
