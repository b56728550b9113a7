"""Hash families, MIPS transforms, hashing costs and hash tables of the LSH layer.

Every kernel is compared with a slow, obvious NumPy reference written here from the
documented rule (``lshprof.nn.lsh`` and ``lshprof.kernels._hash`` docstrings); hashing
costs are compared with the closed-form formulas of ``lshprof.nn.lsh`` as exact integers;
collision probabilities are compared with SimHash theory within a binomial bound.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lshprof import ActiveSet, make_layer
from lshprof import kernels as K
from lshprof.nn.lsh import HashCost, HashFunctions, HashTables
from test_tables import RefTables

#: The one tolerance for float32 kernels against float64 references.
TOL = dict(rtol=1e-5, atol=1e-5)
#: Projections closer to 0 than this may take either sign (float32, summation order).
NEAR_TIE = 1e-4
#: Statistical checks allow this many binomial standard errors.
N_SE = 5.0

ANGLES = [np.pi / 8, np.pi / 4, np.pi / 2, 3 * np.pi / 4]


# -- slow references -----------------------------------------------------------------------
def csr_of(mask: np.ndarray, X: np.ndarray):
    """``(indptr int64, indices int32, values)`` of the entries of ``X`` where ``mask``."""
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
    idx, vals = [], []
    for v in range(X.shape[0]):
        cols = [j for j in range(X.shape[1]) if mask[v, j]]
        idx += cols
        vals += [X[v, j] for j in cols]
        indptr[v + 1] = len(idx)
    return indptr, np.array(idx, dtype=np.int32), np.array(vals, dtype=X.dtype)


def pm1_matrix(hf: HashFunctions) -> np.ndarray:
    """Dense ``[F, dim]`` +-1/0 matrix of a ``srp_sparse`` family, from its column storage."""
    P = np.zeros((hf.n_fn, hf.dim))
    for j in range(hf.dim):
        for e in range(hf.col_ptr[j], hf.col_ptr[j + 1]):
            assert P[hf.col_fn[e], j] == 0, "a function uses a coordinate twice"
            P[hf.col_fn[e], j] = hf.col_sign[e]
    return P


def ref_sign_hash(P: np.ndarray, X: np.ndarray):
    """Digits (``P x >= 0``), alternatives, margins (``|P x|``) and near-tie flags."""
    z = X.astype(np.float64) @ P.astype(np.float64).T
    digits = (z >= 0).astype(np.int64)
    return digits, 1 - digits, np.abs(z), np.abs(z) < NEAR_TIE


def ref_wta(x: np.ndarray, present: np.ndarray, perm: np.ndarray, densify: bool):
    """Winner-take-all of one vector: per function the first position of the largest
    value among ``x[perm[f]]`` (dwta: present nonzero coordinates only), the runner-up
    position, their gap, and whether the function saw no coordinate (dwta)."""
    nf = perm.shape[0]
    digits, alts = np.zeros(nf, dtype=np.int64), np.zeros(nf, dtype=np.int64)
    margins, empty = np.full(nf, np.inf), np.zeros(nf, dtype=bool)
    for f in range(nf):
        pos = [p for p, j in enumerate(perm[f])
               if not densify or (present[j] and x[j] != 0)]
        if not pos:
            empty[f] = True
            continue
        vals = [float(x[perm[f, p]]) for p in pos]
        best = pos[int(np.argmax(vals))]  # np.argmax: first of equal maxima
        rest = [p for p in pos if p != best]
        digits[f] = alts[f] = best
        if rest:
            alts[f] = rest[int(np.argmax([x[perm[f, p]] for p in rest]))]
            margins[f] = float(x[perm[f, best]]) - float(x[perm[f, alts[f]]])
    return digits, alts, margins, empty


def ref_pool(X: np.ndarray, p: int) -> np.ndarray:
    return np.stack([X[:, lo:lo + p].astype(np.float64).mean(axis=1)
                     for lo in range(0, X.shape[1], p)], axis=1)


def ref_pack(digits: np.ndarray, K_: int, bits: int) -> np.ndarray:
    nv, F = digits.shape
    codes = np.zeros((nv, F // K_), dtype=np.int64)
    for v in range(nv):
        for t in range(F // K_):
            codes[v, t] = sum(int(digits[v, t * K_ + i]) << (i * bits) for i in range(K_))
    return codes


def replace_digits(code: int, digits_alt, which, bits: int) -> int:
    """``code`` with digit ``i`` set to ``digits_alt[i]`` for every ``i`` in ``which``."""
    mask = (1 << bits) - 1
    for i in which:
        code = (code & ~(mask << (i * bits))) | (int(digits_alt[i]) << (i * bits))
    return code


def ref_probes(code: int, d, a, m, bits: int, n_probes: int):
    """Brute force: every non-empty set of flippable digits, by sum of squared margins."""
    usable = [i for i in range(len(d)) if a[i] != d[i]]
    sets = [s for r in range(1, len(usable) + 1) for s in itertools.combinations(usable, r)]
    sets.sort(key=lambda s: sum(m[i] ** 2 for i in s))
    out = [replace_digits(code, a, s, bits) for s in sets[:n_probes]]
    return out + [-1] * (n_probes - len(out))


def at_angle(u: np.ndarray, theta: float, rng) -> np.ndarray:
    """A unit vector at angle ``theta`` from ``u`` (Gram-Schmidt on a Gaussian draw)."""
    u = u / np.linalg.norm(u)
    w = rng.standard_normal(u.size)
    w -= (w @ u) * u
    return math.cos(theta) * u + math.sin(theta) * w / np.linalg.norm(w)


def pairs_at_angle(theta: float, n: int, dim: int, rng):
    """``n`` random pairs of unit vectors at angle ``theta``."""
    U = rng.standard_normal((n, dim))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    V = np.array([at_angle(u, theta, rng) for u in U])
    return U.astype(np.float32), V.astype(np.float32)


def collision_rate(hf: HashFunctions, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Share of the functions on which ``X[i]`` and ``Y[i]`` (or ``Y[0]``) agree, per row."""
    dx = hf.digits(dense=np.ascontiguousarray(X))[0]
    dy = hf.digits(dense=np.ascontiguousarray(Y))[0]
    return (dx == dy).mean(axis=1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


# -- 1. SimHash collision probability -----------------------------------------------------------
def test_srp_collision_rate_is_one_minus_angle_over_pi():
    rng = np.random.default_rng(1)
    n_pairs, dim, L = 20, 64, 2000
    hf = HashFunctions("srp", 1, L, dim, np.random.default_rng(2))
    # Gaussian directions have no preferred axis: the rule holds for every single pair,
    # including pairs along the all-ones direction and along a coordinate axis
    special = np.stack([np.ones(dim), np.eye(dim)[0]])
    for theta in ANGLES:
        U, V = pairs_at_angle(theta, n_pairs, dim, rng)
        U2 = (special / np.linalg.norm(special, axis=1, keepdims=True)).astype(np.float32)
        V2 = np.array([at_angle(u, theta, rng) for u in U2], dtype=np.float32)
        rate = collision_rate(hf, np.vstack([U, U2]), np.vstack([V, V2]))
        p = 1 - theta / np.pi
        se = math.sqrt(p * (1 - p) / L)  # one pair: a binomial over the L functions
        assert np.all(np.abs(rate - p) < N_SE * se), f"theta={theta:.3f}: {rate}, theory {p:.4f}"
        pooled_se = se / math.sqrt(rate.size)
        assert abs(rate.mean() - p) < N_SE * pooled_se, f"theta={theta:.3f}: {rate.mean():.4f}"


def test_srp_sparse_collision_rate_falls_with_angle():
    rng = np.random.default_rng(3)
    hf = HashFunctions("srp_sparse", 1, 2000, 64, np.random.default_rng(4))
    rates = [collision_rate(hf, *pairs_at_angle(t, 20, 64, rng)).mean() for t in ANGLES]
    assert np.all(np.diff(rates) < -0.05), rates
    # sparse +-1 directions only approximate Gaussian ones: a loose band around theory
    np.testing.assert_allclose(rates, [1 - t / np.pi for t in ANGLES], atol=0.05)


# -- 2. MIPS transforms ----------------------------------------------------------------------------
N_IN, N_DIRS = 12, 6
NORMS = 2.0 ** np.arange(-2, 4)  # powers of 2: scaling is exact in float32


def mips_layer(transform: str):
    """An LSH layer whose rows are ``N_DIRS`` directions times every norm in ``NORMS``,
    with a query ``x`` and the inner products ``W x + b``."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, N_IN)).astype(np.float32)
    # directions at angles 0.15pi .. 0.85pi from x, so inner products take both signs
    dirs = np.array([at_angle(x[0].astype(np.float64), phi, rng)
                     for phi in np.linspace(0.15, 0.85, N_DIRS) * np.pi])
    W = (NORMS[None, :, None] * dirs[:, None, :]).reshape(-1, N_IN).astype(np.float32)
    layer = make_layer("lsh", N_IN, W.shape[0], fraction=0.1, transform=transform, seed=6)
    layer.W[:] = W
    b = rng.uniform(-0.3, 0.3, W.shape[0])
    layer.b[:] = 0.0 if transform == "none" else b  # "none" ignores the bias anyway
    ip = W.astype(np.float64) @ x[0] + layer.b
    return layer, x, ip


def hand_rows(W: np.ndarray, b: np.ndarray, transform: str) -> np.ndarray:
    """Row vectors from the formulas of the ``lshprof.nn.lsh`` docstring."""
    u = np.hstack([W, b[:, None]]).astype(np.float64)
    M = np.linalg.norm(u, axis=1).max() * 1.1
    if transform == "norm_augment":
        return np.hstack([u / M, np.sqrt(1 - (u * u).sum(1, keepdims=True) / M**2)])
    v = 0.75 * u / M
    n2 = (v * v).sum(1, keepdims=True)
    return np.hstack([v, 0.5 - n2, 0.5 - n2**2])


def hand_query(x: np.ndarray, transform: str) -> np.ndarray:
    pad = {"norm_augment": [1.0, 0.0], "sign_alsh": [1.0, 0.0, 0.0]}[transform]
    return np.hstack([x, np.tile(pad, (x.shape[0], 1))])


@pytest.mark.parametrize("transform", ["norm_augment", "sign_alsh"])
def test_mips_transform_vectors_match_the_formulas(transform):
    layer, x, _ = mips_layer(transform)
    _, rows, full = layer._row_vectors(None, HashCost())
    assert full and rows.shape == (layer.n_out, layer.hash_dim)
    np.testing.assert_allclose(rows, hand_rows(layer.W, layer.b, transform), **TOL)
    q, csr = layer._query_vectors(layer._check_input(x), HashCost())
    assert csr is None
    np.testing.assert_allclose(q, hand_query(x, transform), **TOL)
    if transform == "norm_augment":  # every row on the unit sphere
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, **TOL)


@pytest.mark.parametrize("transform", ["norm_augment", "sign_alsh"])
def test_mips_transform_collisions_grow_with_inner_product(transform):
    layer, x, ip = mips_layer(transform)
    rows = layer._row_vectors(None, HashCost())[1]
    q = layer._query_vectors(layer._check_input(x), HashCost())[0]
    L = 20000
    hf = HashFunctions("srp", 1, L, layer.hash_dim, np.random.default_rng(7))
    rate = collision_rate(hf, rows, q)
    # each row matches SimHash theory for its transformed cosine ...
    cos = rows.astype(np.float64) @ q[0] / np.linalg.norm(rows, axis=1) / np.linalg.norm(q[0])
    p = 1 - np.arccos(np.clip(cos, -1, 1)) / np.pi
    se = np.sqrt(p * (1 - p) / L)
    assert np.all(np.abs(rate - p) < N_SE * se)
    # ... and that cosine orders rows by inner product: binned rates strictly increase
    bins = np.array_split(np.argsort(ip), 6)
    binned = [rate[b].mean() for b in bins]
    assert np.all(np.diff(binned) > 0), binned
    assert spearman(ip, rate) > 0.9


def test_no_transform_ignores_row_norms():
    layer, x, ip = mips_layer("none")
    rows = layer._row_vectors(None, HashCost())[1]
    np.testing.assert_array_equal(rows, layer.W)
    q = layer._query_vectors(layer._check_input(x), HashCost())[0]
    np.testing.assert_array_equal(q, x)
    hf = HashFunctions("srp", 1, 4000, layer.hash_dim, np.random.default_rng(8))
    rate = collision_rate(hf, rows, q).reshape(N_DIRS, NORMS.size)
    # same direction, different norm (and inner product): exactly the same collisions
    np.testing.assert_array_equal(rate, np.repeat(rate[:, :1], NORMS.size, axis=1))
    assert np.ptp(ip.reshape(N_DIRS, NORMS.size), axis=1).min() > 0.1


# -- 3. kernels against slow references -------------------------------------------------------
def random_csr(X: np.ndarray, rng, keep: float = 0.5):
    mask = rng.random(X.shape) < keep
    mask[0] = False  # a vector with no stored entry
    return mask, csr_of(mask, X)


def sign_kernel_outputs(hf: HashFunctions, X: np.ndarray, csr):
    return hf.digits(dense=X)[:3], hf.digits(csr=csr)[:3]


@pytest.mark.parametrize("family", ["srp", "srp_sparse"])
def test_sign_kernels_match_dense_projection(family):
    rng = np.random.default_rng(10)
    hf = HashFunctions(family, 3, 7, 20, np.random.default_rng(11))
    P = hf.P if family == "srp" else pm1_matrix(hf)
    if family == "srp_sparse":  # each function adds or subtracts round(dim/3) coordinates
        np.testing.assert_array_equal(np.abs(P).sum(1), round(20 / 3))
        n_used = np.count_nonzero(P)  # random signs: about as many + as -
        assert abs(np.sum(P > 0) / n_used - 0.5) < N_SE * math.sqrt(0.25 / n_used)
    X = rng.standard_normal((9, 20)).astype(np.float32)
    mask, csr = random_csr(X, rng)
    for got, Xref in zip(sign_kernel_outputs(hf, X, csr), (X, np.where(mask, X, 0))):
        digits, alts, margins, near = ref_sign_hash(P, Xref)
        np.testing.assert_array_equal(got[0][~near], digits[~near])
        np.testing.assert_array_equal(got[1], 1 - got[0])
        np.testing.assert_allclose(got[2], margins, **TOL)
    assert np.all(hf.digits(csr=csr)[0][0] == 1)  # empty vector: projection 0 -> bit 1


def wta_kernel(X: np.ndarray, perm, densify: bool, csr=None, salt: int = 12345):
    shape = (X.shape[0], perm.shape[0])
    digits, alts, margins = np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape)
    if csr is None:
        c = K.wta_dense(X, perm, densify, salt, 100, digits, alts, margins)
    else:
        c = K.wta_csr(*csr, X.shape[1], perm, densify, salt, 100, digits, alts, margins)
    return digits, alts, margins, int(c)


@pytest.mark.parametrize("ties", [False, True])
def test_wta_is_first_argmax_with_runner_up(ties):
    rng = np.random.default_rng(12)
    perm = np.stack([rng.permutation(16)[:8] for _ in range(40)]).astype(np.int64)
    X = (rng.integers(-2, 3, (6, 16)) if ties else rng.standard_normal((6, 16))).astype(np.float32)
    digits, alts, margins, compares = wta_kernel(X, perm, densify=False)
    for v in range(X.shape[0]):
        d, a, m, _ = ref_wta(X[v], np.ones(16, bool), perm, densify=False)
        np.testing.assert_array_equal(digits[v], d)
        np.testing.assert_array_equal(alts[v], a)
        np.testing.assert_allclose(margins[v], m, **TOL)
    # a running best and runner-up: one or two comparisons per value after the first
    n_after_first = X.shape[0] * perm.shape[0] * (perm.shape[1] - 1)
    assert n_after_first <= compares < 2 * n_after_first
    # absent CSR entries count as zeros without densification
    mask, csr = random_csr(X, rng)
    sparse_digits = wta_kernel(X, perm, False, csr)[0]
    np.testing.assert_array_equal(sparse_digits, wta_kernel(np.where(mask, X, 0), perm, False)[0])


def test_dwta_uses_nonzeros_and_empty_bins_borrow():
    rng = np.random.default_rng(13)
    dim, nf = 64, 60
    perm = np.stack([rng.permutation(dim)[:4] for _ in range(nf)]).astype(np.int64)
    X = rng.standard_normal((5, dim)).astype(np.float32)
    mask, csr = random_csr(X, rng, keep=0.15)  # ~half of the 4-coordinate bins see nothing
    dense_in = np.where(mask, X, 0).astype(np.float32)
    got_csr = wta_kernel(dense_in, perm, True, csr)
    got_dense = wta_kernel(dense_in, perm, True)  # zeros of a dense row are skipped too
    for a, b in zip(got_csr[:3], got_dense[:3]):
        np.testing.assert_array_equal(a, b)
    n_empty = 0
    for v in range(X.shape[0]):
        d, a, m, empty = ref_wta(dense_in[v], mask[v], perm, densify=True)
        full = ~empty
        np.testing.assert_array_equal(got_csr[0][v, full], d[full])
        np.testing.assert_array_equal(got_csr[1][v, full], a[full])
        np.testing.assert_allclose(got_csr[2][v, full], m[full], **TOL)
        if v == 0:  # no entries at all: nothing to borrow, digit 0 that cannot flip
            assert empty.all() and np.all(got_csr[0][v] == 0) and np.all(np.isinf(got_csr[2][v]))
            continue
        n_empty += empty.sum()
        # a borrowed bin is an exact copy of a non-empty bin (checked above) of this vector
        row = lambda f: tuple(float(out[v, f]) for out in got_csr[:3])  # noqa: E731
        donors = {row(g) for g in np.flatnonzero(full)}
        assert all(row(f) in donors for f in np.flatnonzero(empty))
    assert n_empty > 20  # the borrowing path really ran
    # borrowing is seeded: another salt borrows differently, the same salt identically
    again = wta_kernel(dense_in, perm, True, csr)
    other = wta_kernel(dense_in, perm, True, csr, salt=999)
    np.testing.assert_array_equal(again[0], got_csr[0])
    assert not np.array_equal(other[0], got_csr[0])


@pytest.mark.parametrize("block", [1, 4, 10, 11])
def test_pool_kernels_are_block_means(block):
    rng = np.random.default_rng(14)
    X = rng.standard_normal((5, 10)).astype(np.float32)
    mask, csr = random_csr(X, rng)
    nb = -(-10 // block)
    for out_of, Xref in ((lambda o: K.pool_dense(X, block, o), X),
                         (lambda o: K.pool_csr(*csr, 10, block, o), np.where(mask, X, 0))):
        out = np.full((5, nb), np.nan, dtype=np.float32)
        out_of(out)
        np.testing.assert_allclose(out, ref_pool(Xref, block), **TOL)


@pytest.mark.parametrize("K_, bits", [(1, 1), (6, 1), (4, 3), (20, 3)])
def test_pack_codes(K_, bits):
    rng = np.random.default_rng(15)
    digits = rng.integers(0, 2**bits, (4, 5 * K_)).astype(np.int64)
    codes = np.empty((4, 5), dtype=np.int64)
    K.pack_codes(digits, K_, bits, codes)
    np.testing.assert_array_equal(codes, ref_pack(digits, K_, bits))


def probe_case(K_: int, bits: int, L: int, rng, pow2_margins: bool):
    """Digits, alternatives (some equal to the digit: unflippable) and margins."""
    digits = rng.integers(0, 2**bits, (2, K_ * L)).astype(np.int64)
    if bits == 1:
        alts = digits ^ 1
    else:
        alts = rng.integers(0, 2**bits, digits.shape).astype(np.int64)
        alts[-1, -K_:] = digits[-1, -K_:]  # a table with no digit to flip: no probes at all
    if pow2_margins:  # distinct powers of 2: every subset sum distinct and exact
        margins = np.stack([2.0 ** rng.permutation(K_ * L) for _ in range(2)])
    else:
        margins = rng.random(digits.shape)
    codes = ref_pack(digits, K_, bits)
    return codes, digits, alts, margins


def run_probes(codes, digits, alts, margins, K_, bits, n_probes):
    out = np.empty(codes.shape + (n_probes,), dtype=np.int64)
    K.probe_codes(codes, digits, alts, margins, K_, bits, n_probes, out)
    return out


@pytest.mark.parametrize("K_, bits, n_probes", [(2, 1, 4), (5, 1, 12), (4, 3, 20), (6, 1, 63)])
def test_probe_codes_match_brute_force(K_, bits, n_probes):
    rng = np.random.default_rng(16)
    L = 3
    codes, digits, alts, margins = probe_case(K_, bits, L, rng, pow2_margins=True)
    probes = run_probes(codes, digits, alts, margins, K_, bits, n_probes)
    for v, t in itertools.product(range(2), range(L)):
        sl = slice(t * K_, (t + 1) * K_)
        want = ref_probes(int(codes[v, t]), digits[v, sl], alts[v, sl], margins[v, sl],
                          bits, n_probes)
        assert probes[v, t].tolist() == want, (v, t)
    if bits > 1:
        assert np.all(probes[-1, -1] == -1)
    if (K_, n_probes) == (2, 4):  # two bits: only 3 perturbation sets exist
        assert np.all(probes[:, :, :3] >= 0) and np.all(probes[:, :, 3] == -1)


def test_probe_codes_properties():
    rng = np.random.default_rng(17)
    K_, L, n_probes = 8, 4, 30
    codes, digits, alts, margins = probe_case(K_, 1, L, rng, pow2_margins=False)
    probes = run_probes(codes, digits, alts, margins, K_, 1, n_probes)
    for v, t in itertools.product(range(2), range(L)):
        p, sl = probes[v, t], slice(t * K_, (t + 1) * K_)
        least = int(np.argmin(margins[v, sl]))
        assert p[0] == codes[v, t] ^ (1 << least)  # flip the least confident bit first
        assert len(set(p.tolist()) | {int(codes[v, t])}) == n_probes + 1
        flipped = (p[:, None] ^ codes[v, t]) >> np.arange(K_) & 1
        scores = (flipped * margins[v, sl] ** 2).sum(1)
        assert np.all(np.diff(scores) >= -1e-12)



@pytest.mark.parametrize("family", ["srp", "srp_sparse", "wta", "dwta"])
def test_hash_codes_equal_codes_of_digits_with_the_same_cost(family, monkeypatch):
    """The block-wise path for tables (no alternatives or margins) gives the same codes
    and costs, also across block boundaries."""
    import lshprof.nn.lsh.families as lsh_mod
    monkeypatch.setattr(lsh_mod, "PROJECT_CHUNK", 7)
    rng = np.random.default_rng(18)
    hf = HashFunctions(family, 3, 5, 24, np.random.default_rng(19), bin_size=4)
    X = np.maximum(rng.standard_normal((30, 24)), 0).astype(np.float32)
    d, _, _, cost = hf.digits(dense=X)
    codes, cost2 = hf.hash_codes(dense=X)
    np.testing.assert_array_equal(codes, hf.codes(d))
    assert cost == cost2
    mask, csr = random_csr(X, rng)
    d, _, _, cost = hf.digits(csr=csr)
    codes, cost2 = hf.hash_codes(csr=csr)
    np.testing.assert_array_equal(codes, hf.codes(d))
    assert cost == cost2
    assert d.dtype == hf.digit_dtype == np.uint8


def test_srp_blas_projection_matches_the_scalar_kernel():
    """Digits from one BLAS product equal the scalar kernel's except within rounding of 0."""
    rng = np.random.default_rng(20)
    hf = HashFunctions("srp", 6, 50, 128, np.random.default_rng(21))
    X = np.maximum(rng.standard_normal((64, 128)), 0).astype(np.float32)
    d, a, m, _ = hf.digits(dense=X)
    shape = (64, hf.n_fn)
    d0, a0, m0 = np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape)
    K.srp_dense(X, hf.P, d0, a0, m0)
    near = m0 < NEAR_TIE * 10
    np.testing.assert_array_equal(d[~near], d0[~near])
    np.testing.assert_allclose(m, m0, rtol=1e-4, atol=1e-4)

# -- 4. exact hashing cost counts ---------------------------------------------------------------
B, N_IN_C, N_OUT_C, K_C, L_C = 4, 30, 40, 3, 5
F_C = K_C * L_C
COST_CASES = [
    ("srp", "none", 1), ("srp", "norm_augment", 1), ("srp", "sign_alsh", 4),
    ("srp_sparse", "none", 4), ("srp_sparse", "norm_augment", 1), ("srp_sparse", "sign_alsh", 3),
    ("wta", "none", 1), ("wta", "none", 4), ("dwta", "sign_alsh", 3),
]
EXTRA = {"none": 0, "norm_augment": 2, "sign_alsh": 3}
ROW_TRANSFORM_MACS = {"none": lambda d: 0, "norm_augment": lambda d: 2 * (d + 1) + 1,
                      "sign_alsh": lambda d: 2 * (d + 1) + 2}


def pool_cost(n_vectors: int, pool: int):
    """``(macs, adds)`` of mean-pooling dense vectors: one scaling per block, every entry summed."""
    if pool == 1:
        return 0, 0
    return n_vectors * -(-N_IN_C // pool), n_vectors * N_IN_C


def cost_layer(family, transform, pool):
    layer = make_layer("lsh", N_IN_C, N_OUT_C, fraction=0.25, family=family,
                       transform=transform, pool=pool, K=K_C, L=L_C, bin_size=4, seed=20)
    layer.b[:] = np.random.default_rng(21).uniform(-0.2, 0.2, N_OUT_C)
    return layer


def hashed_vectors(layer, X: np.ndarray, transform: str, pool: int, query: bool):
    """What gets hashed, built by hand: pooled, then transformed."""
    V = ref_pool(X, pool) if pool > 1 else X.astype(np.float64)
    if transform == "none":
        return V.astype(np.float32)
    if query:
        return hand_query(V, transform).astype(np.float32)
    return hand_rows(V, layer.b, transform).astype(np.float32)


def projection_cost(layer, family, V: np.ndarray):
    """``(macs, adds, compares)`` of hashing the dense vectors ``V`` (documented rules)."""
    D = V.shape[1]
    if family == "srp":
        return V.shape[0] * F_C * D, 0, 0
    if family == "srp_sparse":
        per_fn = max(1, round(D / 3))
        assert np.count_nonzero(pm1_matrix(layer.hashes)) == F_C * per_fn
        return 0, V.shape[0] * F_C * per_fn, 0
    return 0, 0, wta_kernel(V, layer.hashes.perm, family == "dwta", salt=layer.hashes.salt)[3]


def delta(layer, before):
    c = layer.macs.counts() - before
    return {k: getattr(c, k) for k in ("hash", "hash_adds", "hash_compares",
                                       "rehash", "rehash_adds", "rehash_compares")}


@pytest.mark.parametrize("family, transform, pool", COST_CASES)
def test_hash_cost_of_dense_forward(family, transform, pool):
    layer = cost_layer(family, transform, pool)
    X = np.random.default_rng(22).standard_normal((B, N_IN_C)).astype(np.float32)
    d = -(-N_IN_C // pool)
    before = layer.macs.counts()
    layer.forward(X, train=True)
    got = delta(layer, before)
    assert layer.hash_dim == d + EXTRA[transform]

    rows = hashed_vectors(layer, layer.W, transform, pool, query=False)
    r_macs, r_adds, r_cmp = projection_cost(layer, family, rows)
    q_macs, q_adds, q_cmp = projection_cost(layer, family,
                                            hashed_vectors(layer, X, transform, pool, True))
    (rp_macs, rp_adds), (qp_macs, qp_adds) = pool_cost(N_OUT_C, pool), pool_cost(B, pool)
    want = {
        "rehash": rp_macs + N_OUT_C * ROW_TRANSFORM_MACS[transform](d) + r_macs,
        "rehash_adds": rp_adds + r_adds, "rehash_compares": r_cmp,
        "hash": qp_macs + q_macs, "hash_adds": qp_adds + q_adds, "hash_compares": q_cmp,
    }
    assert got == want
    assert all(type(v) is int for v in got.values())

    # a second pass hashes the input again and leaves the tables alone
    before = layer.macs.counts()
    layer.forward(X, train=True)
    assert delta(layer, before) == {**want, "rehash": 0, "rehash_adds": 0, "rehash_compares": 0}


def sparse_input(rng):
    X = rng.standard_normal((B, N_IN_C)).astype(np.float32)
    mask = rng.random(X.shape) < 0.3
    mask[1] = False
    ip, ix, v = csr_of(mask, X)
    return ActiveSet(ip, ix, v, N_IN_C), mask


@pytest.mark.parametrize("family, transform, pool", [
    ("srp", "none", 1), ("srp", "norm_augment", 1), ("srp_sparse", "none", 1),
    ("srp_sparse", "sign_alsh", 1), ("srp", "none", 4), ("srp_sparse", "none", 3),
])
def test_hash_cost_of_sparse_forward(family, transform, pool):
    layer = cost_layer(family, transform, pool)
    x, mask = sparse_input(np.random.default_rng(23))
    layer.forward(x, train=True)  # builds the tables
    before = layer.macs.counts()
    layer.forward(x, train=True)
    got = delta(layer, before)
    nnz = int(mask.sum())
    if pool > 1:  # pooled to a dense vector: the dense rules after the pooling itself
        d = -(-N_IN_C // pool)
        q_macs, q_adds, _ = projection_cost(layer, family, np.zeros((B, d + EXTRA[transform])))
        want_hash, want_adds = B * d + q_macs, nnz + q_adds
    else:
        # stored entries of each hashed row: the input's plus the bias slot (transforms)
        cols = [np.flatnonzero(mask[s]).tolist() + ([N_IN_C] if transform != "none" else [])
                for s in range(B)]
        if family == "srp":
            want_hash, want_adds = F_C * sum(map(len, cols)), 0
        else:
            uses = np.count_nonzero(pm1_matrix(layer.hashes), axis=0)  # functions per coordinate
            want_hash, want_adds = 0, int(sum(uses[c].sum() for c in cols))
    assert got == {"hash": want_hash, "hash_adds": want_adds, "hash_compares": 0,
                   "rehash": 0, "rehash_adds": 0, "rehash_compares": 0}
    if (family, transform, pool) == ("srp", "none", 1):
        assert got["hash"] == K_C * L_C * nnz


# -- 5. hash tables --------------------------------------------------------------------------------
# FIFO tables store no priorities (a node's place in its bucket is its priority), so the
# documented rule is replayed by ``RefTables`` (the original implementation, which keeps
# explicit insertion times and random keys) from a generator in the same state.
def twin_tables(L: int, n: int, capacity, replacement: str, seed: int):
    return (HashTables(L, n, capacity, replacement, np.random.default_rng(seed)),
            RefTables(L, n, capacity, replacement, np.random.default_rng(seed)))


def ref_buckets(tables: HashTables, prio: np.ndarray):
    """``{(t, code): nodes by falling priority, cut to capacity}`` from codes and ``prio``."""
    out = {}
    codes = tables.codes
    for t in range(tables.L):
        for node in range(tables.n):
            if codes[t, node] >= 0:
                out.setdefault((t, int(codes[t, node])), []).append(node)
    for key, nodes in out.items():
        nodes.sort(key=lambda n: -prio[key[0], n])
        out[key] = nodes[:tables.capacity] if tables.capacity is not None else nodes
    return out


def assert_tables_consistent(tables: HashTables, prio: np.ndarray) -> dict:
    ref = ref_buckets(tables, prio)
    member = np.zeros((tables.L, tables.n), dtype=bool)
    for (t, code), nodes in ref.items():
        assert tables.bucket(t, code).tolist() == nodes, (t, code)
        member[t, nodes] = True
    np.testing.assert_array_equal(tables.membership(), member)
    for t in range(tables.L):  # codes nobody has give empty buckets
        assert tables.bucket(t, int(tables.codes[t].max()) + 1).size == 0
    return ref


def small_codes(n: int, L: int, n_codes: int, rng) -> np.ndarray:
    return rng.integers(0, n_codes, (n, L)).astype(np.int64)


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
def test_unlimited_tables_hold_every_node_in_every_table(replacement):
    rng = np.random.default_rng(30)
    tables, shadow = twin_tables(4, 50, None, replacement, 31)
    codes = small_codes(50, 4, 8, rng)
    assert tables.set_codes(np.arange(50), codes) == 200
    shadow.set_codes(np.arange(50), codes)
    assert_tables_consistent(tables, shadow.prio)
    assert np.all(tables.membership().sum(axis=0) == 4)
    for t in range(4):  # the buckets of a table partition the nodes
        seen = np.concatenate([tables.bucket(t, c) for c in range(8)])
        assert sorted(seen.tolist()) == list(range(50))


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
def test_capacity_keeps_min_of_count_and_capacity(replacement):
    rng = np.random.default_rng(32)
    cap, n, L = 4, 60, 3
    tables, shadow = twin_tables(L, n, cap, replacement, 33)
    codes = small_codes(n, L, 10, rng)
    tables.set_codes(np.arange(n), codes)
    shadow.set_codes(np.arange(n), codes)
    ref = assert_tables_consistent(tables, shadow.prio)
    for t in range(L):
        for c in range(10):
            count = int(np.sum(codes[:, t] == c))
            got = tables.bucket(t, c)
            assert got.size == min(count, cap)
            assert np.all(codes[got, t] == c)
            assert ref.get((t, c), []) == got.tolist()
            assert tables.ranked(t, c).size == count  # evicted nodes stay ranked
    assert (tables.membership().sum(axis=0) < L).any()  # some nodes were evicted


def test_fifo_keeps_the_newest_and_only_changed_codes_are_reinserted():
    rng = np.random.default_rng(34)
    cap, n, L = 5, 40, 2
    tables, shadow = twin_tables(L, n, cap, "fifo", 35)
    assert tables.keys is None  # fifo stores no priorities
    codes = small_codes(n, L, 3, rng)  # codes 0..2: every bucket overflows
    tables.set_codes(np.arange(n), codes)
    shadow.set_codes(np.arange(n), codes)
    for t in range(L):  # one insertion time per node, in a random order, not by node number
        assert np.unique(shadow.prio[t]).size == n
        assert not np.all(np.diff(shadow.prio[t]) > 0)
        ranked = [tables.ranked(t, c) for c in range(3)]
        assert any(np.any(np.diff(r) > 0) and np.any(np.diff(r) < 0) for r in ranked)
    # move 7 nodes to code 3 in table 0, then 3 more
    first, second = np.arange(0, 7), np.arange(7, 10)
    for rows in (first, second):
        new = codes[rows].copy()
        new[:, 0] = 3
        assert tables.set_codes(rows, new) == rows.size  # table 1 unchanged: not reinserted
        shadow.set_codes(rows, new)
        codes[rows] = new
        assert_tables_consistent(tables, shadow.prio)
    kept = set(tables.bucket(0, 3).tolist())
    assert set(second) <= kept and len(kept) == cap  # all 3 newest plus 2 of the first 7
    assert set(tables.ranked(0, 3)[:3].tolist()) == set(second)  # ahead of the first 7
    # re-setting a node with its own codes does not refresh it
    before = tables.state
    assert tables.set_codes(first, codes[first]) == 0
    shadow.set_codes(first, codes[first])
    np.testing.assert_array_equal(tables.state.order, before.order)
    np.testing.assert_array_equal(tables.state.index, before.index)
    assert set(tables.bucket(0, 3).tolist()) == kept
    assert_tables_consistent(tables, shadow.prio)
    # insertion times: the re-inserted entries are newer than everything else in the table
    assert shadow.prio[0, :10].min() > shadow.prio[0, 10:].max()
    for c in range(3):  # so table 0's other buckets kept their order
        assert tables.ranked(0, c).tolist() == sorted(
            np.flatnonzero(codes[:, 0] == c), key=lambda v: -shadow.prio[0, v])


def test_reservoir_keeps_a_uniform_subset():
    cap, n_old, n_new, trials = 4, 12, 6, 300
    share_new = []
    for trial in range(trials):
        tables = HashTables(1, n_old + n_new, cap, "reservoir", np.random.default_rng(trial))
        codes = np.zeros((n_old + n_new, 1), dtype=np.int64)
        codes[n_old:] = 1
        tables.set_codes(np.arange(n_old + n_new), codes)
        tables.set_codes(np.arange(n_old, n_old + n_new), np.zeros((n_new, 1), np.int64))
        kept = tables.bucket(0, 0)
        assert kept.size == cap
        share_new.append(np.mean(kept >= n_old))
    p = n_new / (n_old + n_new)  # fifo would keep only new nodes (share 1)
    se = math.sqrt(p * (1 - p) / (trials * cap))
    # (drawing without replacement only narrows the spread: the binomial bound is loose)
    assert abs(np.mean(share_new) - p) < N_SE * se


# -- 5. the registries: one entry per family and per transform ----------------------------------
def test_family_and_transform_registries_follow_the_shared_names():
    from lshprof.names import FAMILIES, TRANSFORMS
    from lshprof.nn.lsh import FAMILY_PARAMS, FAMILY_REGISTRY, TRANSFORM_REGISTRY, extra_dims
    from lshprof.nn.lsh.layer import LSH

    assert tuple(FAMILY_REGISTRY) == FAMILIES and tuple(TRANSFORM_REGISTRY) == TRANSFORMS
    for name, fam in FAMILY_REGISTRY.items():
        assert fam.name == name and set(fam.PARAMS) <= set(FAMILY_PARAMS)
        hf = HashFunctions(name, 3, 4, 10, np.random.default_rng(0))
        assert fam.ARRAYS and all(isinstance(getattr(hf, a), np.ndarray) for a in fam.ARRAYS)
        assert hf.nbytes == sum(getattr(hf, a).nbytes for a in fam.ARRAYS)
        assert hf.digit_bits == fam.digit_bits(FAMILY_PARAMS)
    assert {k: LSH.PARAMS[k] for k in FAMILY_PARAMS} == FAMILY_PARAMS  # the layer takes them
    for name, tr in TRANSFORM_REGISTRY.items():
        assert tr.name == name and extra_dims(name) == tr.EXTRA
    assert [extra_dims(t) for t in TRANSFORMS] == [0, 2, 3]


@pytest.mark.parametrize("module, names", [("lshprof.nn.lsh.families", "FAMILIES"),
                                           ("lshprof.nn.lsh.transforms", "TRANSFORMS"),
                                           ("lshprof.nn.lsh.tables", "POLICIES"),
                                           ("lshprof.nn.optim", "OPTIMIZERS"),
                                           ("lshprof.nn.layers.base", "ACTIVATIONS")])
def test_a_registry_that_differs_from_the_names_refuses_to_load(module, names, monkeypatch):
    """Each registry is checked against lshprof.names when its module loads."""
    import importlib
    import importlib.util

    import lshprof.names

    monkeypatch.setattr(lshprof.names, names, getattr(lshprof.names, names) + ("new",))
    spec = importlib.util.find_spec(module)
    copy = importlib.util.module_from_spec(spec)  # a copy, not put in sys.modules
    with pytest.raises(ImportError, match=f"lshprof.names.{names}"):
        spec.loader.exec_module(copy)


def test_a_family_is_one_registry_entry(monkeypatch):
    """A new family is one Family subclass in the registry: HashFunctions draws it, hashes
    dense and CSR rows with it, packs its codes and counts its cost, with no other change."""
    from lshprof.nn.lsh import FAMILY_REGISTRY, Family

    class FirstSigns(Family):  # digit f: the sign of coordinate f mod dim
        name = "first_signs"
        ARRAYS = ("coords",)

        def draw(self, n_fn, dim, rng, params, dtype):
            return {"coords": np.arange(n_fn) % dim}

        def fill(self, hf, dense, csr, digits, alts, margins):
            X = dense if dense is not None else csr_dense(csr, hf.dim)
            v = X[:, hf.coords]
            digits[:] = v > 0
            alts[:] = 1 - digits
            margins[:] = np.abs(v)
            return 0

        def cost(self, hf, n_vectors, dense, csr, compares):
            return HashCost(compares=n_vectors * hf.n_fn)

    def csr_dense(csr, dim):
        ip, ix, vals = csr
        out = np.zeros((ip.size - 1, dim), dtype=vals.dtype)
        for r in range(ip.size - 1):
            out[r, ix[ip[r]:ip[r + 1]]] = vals[ip[r]:ip[r + 1]]
        return out

    monkeypatch.setitem(FAMILY_REGISTRY, "first_signs", FirstSigns())
    hf = HashFunctions("first_signs", 2, 3, 5, np.random.default_rng(0))
    X = np.array([[1, -1, 1, -1, 1], [-1, -1, -1, 1, 1]], dtype=np.float32)
    d, _, _, cost = hf.digits(dense=X)
    assert d.tolist() == [[1, 0, 1, 0, 1, 1], [0, 0, 0, 1, 1, 0]] and cost.compares == 12
    codes, cost2 = hf.hash_codes(dense=X)
    np.testing.assert_array_equal(codes, hf.codes(d))
    assert cost2 == cost and hf.nbytes == hf.coords.nbytes
    mask = X != 0
    csr = (np.array([0, 5, 10]), np.tile(np.arange(5, dtype=np.int32), 2), X[mask])
    np.testing.assert_array_equal(hf.hash_codes(csr=csr)[0], codes)
