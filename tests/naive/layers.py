"""Slow, obvious NumPy references for the lshprof layers.

Nothing here imports or calls the code under test: every rule (pre-activation,
activation, scaling, node selection, random masks, MAC counts) is rewritten from
its documented definition, with explicit Python loops and float64 arithmetic, so
a test that compares a layer against these functions can really fail.

Inputs are taken as a dense ``[B, n_in]`` array or as anything with CSR fields
``indptr``/``indices``/``values`` (an ``ActiveSet``): for a sparse input only the
stored entries count.

Selections are returned as a boolean ``[B, n_out]`` mask plus an *ambiguous*
mask: entries whose membership could legitimately flip because the layer's own
arithmetic (float32, another summation order) sees a near-tie that float64 does
not.  Exact ties are never ambiguous: they must go to the lowest index.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("dense", "dropout", "adaptive_dropout", "wta", "topk")


# -- small definitions -------------------------------------------------------------------
def budget(fraction: float, n: int) -> int:
    """Nodes a fraction of ``n`` stands for: nearest integer (halves up), within [1, n]."""
    k = int(math.floor(fraction * n + 0.5))
    if k < 1:
        k = 1
    if k > n:
        k = n
    return k


def _sig(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)


def sigmoid(t):
    """Logistic function, element by element, in float64."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty(t.shape, dtype=np.float64)
    flat_in, flat_out = t.reshape(-1), out.reshape(-1)
    for i in range(flat_in.size):
        flat_out[i] = _sig(float(flat_in[i]))
    return out


def act(name: str, z):
    z = np.asarray(z, dtype=np.float64)
    if name == "relu":
        return np.where(z > 0, z, 0.0)
    if name == "identity":
        return z.copy()
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return sigmoid(z)
    raise ValueError(name)


def act_grad(name: str, z):
    z = np.asarray(z, dtype=np.float64)
    if name == "relu":
        return np.where(z > 0, 1.0, 0.0)
    if name == "identity":
        return np.ones_like(z)
    if name == "tanh":
        t = np.tanh(z)
        return 1.0 - t * t
    if name == "sigmoid":
        s = sigmoid(z)
        return s * (1.0 - s)
    raise ValueError(name)


# -- inputs -------------------------------------------------------------------------------
class RefInput:
    """A layer input as per-sample lists of (column numbers, values), float64."""

    def __init__(self, x, n_in: int):
        self.n_in = n_in
        self.rows: list[tuple[np.ndarray, np.ndarray]] = []
        if isinstance(x, np.ndarray):
            self.sparse = False
            for s in range(x.shape[0]):
                self.rows.append((np.arange(n_in), np.asarray(x[s], dtype=np.float64)))
        else:
            ip = np.asarray(x.indptr)
            ix = np.asarray(x.indices)
            v = np.asarray(x.values)
            full = getattr(x, "is_full", False)
            self.sparse = not full
            for s in range(ip.shape[0] - 1):
                a, e = int(ip[s]), int(ip[s + 1])
                self.rows.append((ix[a:e].astype(np.int64), v[a:e].astype(np.float64)))
        self.batch = len(self.rows)

    def counts(self) -> np.ndarray:
        """``a_b``: stored inputs per sample (``n_in`` for a dense input)."""
        return np.array([len(c) for c, _ in self.rows], dtype=np.int64)

    def dense(self) -> np.ndarray:
        out = np.zeros((self.batch, self.n_in))
        for s, (c, v) in enumerate(self.rows):
            for j, val in zip(c, v):
                out[s, j] = val
        return out


def preact(W, b, inp: RefInput, s: int, o: int) -> float:
    """``b[o] + sum_j W[o, j] x[s, j]`` over the stored inputs of sample ``s``."""
    cols, vals = inp.rows[s]
    w = np.asarray(W[o], dtype=np.float64)[cols]
    return float(b[o]) + float(np.dot(w, vals))


def preact_full(W, b, inp: RefInput) -> np.ndarray:
    W = np.asarray(W, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    z = np.empty((inp.batch, W.shape[0]))
    for s in range(inp.batch):
        cols, vals = inp.rows[s]
        for o in range(W.shape[0]):
            z[s, o] = b[o] + float(np.dot(W[o, cols], vals)) if len(cols) else b[o]
    return z


# -- selections ------------------------------------------------------------------------------
def topk_row(scores, k: int, rtol: float, atol: float):
    """The ``k`` largest of one row, ties to the lowest index; plus the ambiguous entries."""
    n = len(scores)
    order = sorted(range(n), key=lambda j: (-float(scores[j]), j))
    chosen = np.zeros(n, dtype=bool)
    for j in order[:k]:
        chosen[j] = True
    thr = float(scores[order[k - 1]])
    near = np.array([abs(float(s) - thr) <= atol + rtol * abs(thr) for s in scores])
    exact = np.array([float(s) == thr for s in scores])
    if k < n and np.any(near & ~exact):
        ambiguous = near
    else:
        ambiguous = np.zeros(n, dtype=bool)
    return chosen, ambiguous


def topk_mask(scores2d, k: int, rtol: float = 0.0, atol: float = 0.0):
    B, n = scores2d.shape
    mask = np.zeros((B, n), dtype=bool)
    amb = np.zeros((B, n), dtype=bool)
    for r in range(B):
        mask[r], amb[r] = topk_row(scores2d[r], k, rtol, atol)
    return mask, amb


def lifetime_mask(a2d, fraction: float, rtol: float = 0.0, atol: float = 0.0):
    """Per node (column), the top ``budget(fraction, B)`` samples by activation."""
    B = a2d.shape[0]
    m, amb = topk_mask(np.asarray(a2d).T, budget(fraction, B), rtol, atol)
    return m.T.copy(), amb.T.copy()


class SelectStream:
    """The layer's selection random stream, rebuilt from the documented seeding:
    ``default_rng(SeedSequence(seed).spawn(2)[1])`` drawing float32 uniforms."""

    def __init__(self, seed: int):
        ss = np.random.SeedSequence(seed).spawn(2)[1]
        self.rng = np.random.default_rng(ss)

    def uniforms(self, shape) -> np.ndarray:
        return self.rng.random(shape, dtype=np.float32)


def init_weights(seed: int, n_in: int, n_out: int, dtype) -> np.ndarray:
    """Glorot-uniform weights from the first of the seed's two streams."""
    ss = np.random.SeedSequence(seed).spawn(2)[0]
    lim = math.sqrt(6.0 / (n_in + n_out))
    return np.random.default_rng(ss).uniform(-lim, lim, size=(n_out, n_in)).astype(dtype)


def dropout_mask(stream: SelectStream, B: int, n: int, p: float) -> np.ndarray:
    u = stream.uniforms((B, n))
    mask = np.zeros((B, n), dtype=bool)
    for s in range(B):
        for o in range(n):
            mask[s, o] = float(u[s, o]) < float(np.float32(p))
    return mask


def adaptive_mask(stream: SelectStream, z2d, alpha: float, beta: float,
                  rtol: float = 0.0, atol: float = 0.0):
    u = stream.uniforms(z2d.shape).astype(np.float64)
    keep = sigmoid(alpha * np.asarray(z2d, dtype=np.float64) + beta)
    mask = u < keep
    amb = np.abs(u - keep) <= atol + rtol * keep
    return mask, amb


# -- a whole layer ----------------------------------------------------------------------------
class RefResult:
    """What a reference forward pass found.

    ``mask``/``ambiguous``: [B, n_out] selection (``mask`` all True for "every node");
    ``z2d``: every pre-activation when the method needs them (else None).
    """

    def __init__(self, mask, ambiguous, z2d):
        self.mask = mask
        self.ambiguous = ambiguous
        self.z2d = z2d


def select(method: str, params: dict, activation: str, W, b, x, *, train: bool,
           stream: SelectStream | None, active_mask=None, include=None,
           rtol: float = 0.0, atol: float = 0.0) -> RefResult:
    """Which nodes the layer must compute for ``x`` (before computing their values).

    ``stream`` must be at the same position as the layer's stream; it is advanced
    exactly as the layer must advance its own.
    """
    n_out = W.shape[0]
    inp = RefInput(x, W.shape[1])
    B = inp.batch
    none = np.zeros((B, n_out), dtype=bool)
    all_nodes = np.ones((B, n_out), dtype=bool)
    if active_mask is not None:
        mask, amb, z2d = np.array(active_mask, dtype=bool), none, None
        if mask.all():
            return RefResult(mask, amb, None)
    elif method == "dense":
        return RefResult(all_nodes, none, None)
    elif method == "dropout":
        if not train:
            return RefResult(all_nodes, none, None)
        mask, amb, z2d = dropout_mask(stream, B, n_out, params.get("p", 0.5)), none, None
    elif method == "adaptive_dropout":
        if not train:
            return RefResult(all_nodes, none, None)
        z2d = preact_full(W, b, inp)
        mask, amb = adaptive_mask(stream, z2d, params.get("alpha", 1.0),
                                  params.get("beta", 0.0), rtol, atol)
    elif method == "wta":
        mode = params.get("mode", "sample")
        frac = params.get("fraction", 0.05)
        if mode == "lifetime" and not train:
            return RefResult(all_nodes, none, None)
        z2d = preact_full(W, b, inp)
        a2d = act(activation, z2d)
        if mode == "sample":
            mask, amb = topk_mask(a2d, budget(frac, n_out), rtol, atol)
        else:
            mask, amb = lifetime_mask(a2d, frac, rtol, atol)
    elif method == "topk":
        z2d = preact_full(W, b, inp)
        mask, amb = topk_mask(z2d, budget(params.get("fraction", 0.05), n_out), rtol, atol)
    else:
        raise ValueError(method)
    if include is not None:
        mask = mask.copy()
        amb = amb.copy()
        for s in range(B):
            mask[s, int(include[s])] = True
            amb[s, int(include[s])] = False
    return RefResult(mask, amb, z2d)


def scale_of(method: str, params: dict, train: bool, z: float) -> float:
    """Multiplier applied after the activation."""
    if method == "dropout" and train:
        return 1.0 / params.get("p", 0.5)
    if method == "adaptive_dropout" and not train:
        return _sig(params.get("alpha", 1.0) * z + params.get("beta", 0.0))
    return 1.0


def forward_at(method: str, params: dict, activation: str, W, b, x, nodes, *, train: bool):
    """Pre-activations, outputs and scales at the given nodes.

    ``nodes``: per sample, the list of active node numbers (ascending).
    Returns float64 arrays ``(z, values, scale)`` in CSR entry order.
    """
    inp = RefInput(x, W.shape[1])
    z, vals, sc = [], [], []
    for s in range(inp.batch):
        for o in nodes[s]:
            zz = preact(W, b, inp, s, int(o))
            c = scale_of(method, params, train, zz)
            z.append(zz)
            sc.append(c)
            vals.append(float(act(activation, np.array([zz]))[0]) * c)
    return np.array(z, dtype=np.float64), np.array(vals, dtype=np.float64), np.array(sc)


def backward_at(activation: str, W, x, nodes, z, scale, g):
    """Gradients for the active entries (CSR order): ``dz = g * act'(z) * scale``.

    Returns ``(grad_W, grad_b, touched, gx)``; ``gx`` is a dense ``[B, n_in]`` array
    for a dense input and the per-stored-entry values (CSR order) for a sparse one.
    """
    W = np.asarray(W, dtype=np.float64)
    n_out, n_in = W.shape
    inp = RefInput(x, n_in)
    gW = np.zeros((n_out, n_in))
    gb = np.zeros(n_out)
    touched = np.zeros(n_out, dtype=bool)
    gx_rows = [np.zeros(len(c)) for c, _ in inp.rows]
    e = 0
    for s in range(inp.batch):
        cols, vals = inp.rows[s]
        for o in nodes[s]:
            o = int(o)
            dz = float(g[e]) * float(act_grad(activation, np.array([z[e]]))[0]) * float(scale[e])
            e += 1
            touched[o] = True
            gb[o] += dz
            gW[o, cols] += dz * vals          # columns within a row are distinct
            gx_rows[s] += dz * W[o, cols]
    if inp.sparse:
        gx = np.concatenate(gx_rows) if gx_rows else np.zeros(0)
    else:
        gx = np.array([r for r in gx_rows]).reshape(inp.batch, n_in)
    return gW, gb, touched, gx


# -- MAC formulas ------------------------------------------------------------------------------
PHASE_KEYS = ("select", "hash", "rehash", "forward", "backward_input", "backward_weight",
              "dense_equivalent", "hash_adds", "rehash_adds")


def zero_macs() -> dict:
    return dict.fromkeys(PHASE_KEYS, 0)


def forward_macs(method: str, *, B: int, n_in: int, n_out: int, a, k, train: bool,
                 mode: str = "sample", fixed: str | None = None) -> dict:
    """MACs of one forward pass (the table in ``lshprof.measure.macs``).

    ``a``: active inputs per sample (``n_in`` each for a dense input); ``k``: active
    outputs per sample; ``fixed``: None, ``"sparse"`` or ``"full"`` for ``active=``.
    """
    F = B * n_in * n_out
    S = sum(int(ai) * int(ki) for ai, ki in zip(a, k))
    m = zero_macs()
    m["dense_equivalent"] = F
    if fixed == "full":
        m["forward"] = F
    elif fixed == "sparse":
        m["forward"] = S
    elif method == "dense":
        m["forward"] = F
    elif method == "dropout":
        m["forward"] = S if train else F
    elif method == "adaptive_dropout":
        if train:
            m["select"] = F
        else:
            m["forward"] = F
    elif method == "wta":
        if mode == "lifetime" and not train:
            m["forward"] = F
        else:
            m["select"] = F
    elif method == "topk":
        m["select"] = F
    else:
        raise ValueError(method)
    return m


def backward_macs(method: str, *, B: int, n_in: int, n_out: int, a, k, input_grad: bool,
                  fixed: str | None = None) -> dict:
    """MACs of one backward pass after a training forward pass."""
    F = B * n_in * n_out
    S = sum(int(ai) * int(ki) for ai, ki in zip(a, k))
    full_out = fixed == "full" or (method == "dense" and fixed is None)
    w = F if full_out else S
    m = zero_macs()
    m["backward_weight"] = w
    m["backward_input"] = w if input_grad else 0
    m["dense_equivalent"] = F * (2 if input_grad else 1)
    return m


def add_macs(*ms: dict) -> dict:
    out = zero_macs()
    for m in ms:
        for key in PHASE_KEYS:
            out[key] += m[key]
    return out


# -- re-hashing ------------------------------------------------------------------------------------
def rehashed_rows(n_out: int, steps) -> list[int]:
    """Rows each re-hash of an LSH layer hashes, by the documented rule
    (``lshprof.nn.lsh.layer.LSH``, ``rehash_rows="updated"``): the first build hashes every
    row; a scheduled re-hash hashes the rows updated since the last re-hash or build,
    and none when no table exists yet. ``steps``: per optimizer step, ``(built, updated,
    due)``: whether the tables exist after the step's forward pass, the rows the step
    updated, whether the schedule is due after it. Returns the row counts of the build
    and of every re-hash that hashed something, in order."""
    out, pending, have = [], set(), False
    for built, updated, due in steps:
        if built and not have:
            out.append(n_out)  # the build hashes the current weights of every row
            pending, have = set(), True
        pending |= set(int(r) for r in updated)
        if due and have:
            if pending:
                out.append(len(pending))
            pending = set()
    return out
