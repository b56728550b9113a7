"""Hash functions for the LSH layer: one output *digit* per hash function.

A table's code is ``K`` digits packed together (``digit_bits`` bits each). Every
kernel writes, per vector and hash function ``f``:

* ``digits[v, f]``: the hash value (a bit for sign projections, a position in
  ``[0, bin_size)`` for winner-take-all hashes);
* ``alts[v, f]``: the value the digit would take if the hash were decided the
  other way (the flipped bit; the runner-up position), for multi-probing;
* ``margins[v, f]``: how far the decision was from going the other way
  (``|projection|``; best minus runner-up value), ``inf`` when it cannot flip.

Inputs come dense (``X[v, :]``) or as CSR rows (``indptr, indices, values``);
CSR kernels visit stored entries only. Callers count MACs, additions and
comparisons from the shapes (the formulas are in ``lshprof.nn.lsh``).
"""

import heapq

import numba as nb
import numpy as np

from lshprof._config import NJIT_SERIAL


# -- signed random projections (SimHash) ---------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def srp_dense(X, P, digits, alts, margins):
    """Dense Gaussian projections ``P[f, :]``: bit = ``P[f] . x >= 0`` (a scalar loop;
    ``lshprof.nn.lsh`` uses one BLAS product and :func:`sign_digits` instead)."""
    nf, d = P.shape
    for v in range(X.shape[0]):
        for f in range(nf):
            acc = 0.0
            for j in range(d):
                acc += P[f, j] * X[v, j]
            bit = 1 if acc >= 0 else 0
            digits[v, f] = bit
            alts[v, f] = 1 - bit
            margins[v, f] = abs(acc)


@nb.njit(**NJIT_SERIAL)
def sign_digits(proj, digits, alts, margins):
    """Digits of precomputed projections ``proj[v, f]`` (e.g. one BLAS product
    ``X @ P.T``): bit = ``proj >= 0``, the flipped bit, ``|proj|``."""
    for v in range(proj.shape[0]):
        for f in range(proj.shape[1]):
            a = proj[v, f]
            bit = 1 if a >= 0 else 0
            digits[v, f] = bit
            alts[v, f] = 1 - bit
            margins[v, f] = abs(a)


@nb.njit(**NJIT_SERIAL)
def sign_codes(proj, K, codes):
    """Codes straight from projections: ``codes[v, t]`` has bit ``i`` set when
    ``proj[v, t*K + i] >= 0`` (what :func:`sign_digits` then :func:`pack_codes` give)."""
    for v in range(proj.shape[0]):
        for t in range(codes.shape[1]):
            c = np.int64(0)
            for i in range(K):
                if proj[v, t * K + i] >= 0:
                    c |= np.int64(1) << i
            codes[v, t] = c


@nb.njit(**NJIT_SERIAL)
def srp_csr(indptr, indices, values, P, digits, alts, margins):
    """``srp_dense`` over the stored entries of CSR rows (absent entries are zero)."""
    nf = P.shape[0]
    for v in range(indptr.shape[0] - 1):
        a, b = indptr[v], indptr[v + 1]
        for f in range(nf):
            acc = 0.0
            for e in range(a, b):
                acc += P[f, indices[e]] * values[e]
            bit = 1 if acc >= 0 else 0
            digits[v, f] = bit
            alts[v, f] = 1 - bit
            margins[v, f] = abs(acc)


@nb.njit(**NJIT_SERIAL)
def _pm1_add(acc, j, x, col_ptr, col_fn, col_sign):
    """Add ``x`` (coordinate ``j``) to every function that uses ``j``, with its sign."""
    for e in range(col_ptr[j], col_ptr[j + 1]):
        if col_sign[e] > 0:
            acc[col_fn[e]] += x
        else:
            acc[col_fn[e]] -= x


@nb.njit(**NJIT_SERIAL)
def _sign_digits(acc, drow, arow, mrow):
    for f in range(acc.shape[0]):
        bit = 1 if acc[f] >= 0 else 0
        drow[f] = bit
        arow[f] = 1 - bit
        mrow[f] = abs(acc[f])


@nb.njit(**NJIT_SERIAL)
def pm1_dense(X, col_ptr, col_fn, col_sign, n_fn, digits, alts, margins):
    """Sparse +-1 projections stored by coordinate: coordinate ``j`` enters the
    functions ``col_fn[col_ptr[j]:col_ptr[j+1]]`` with signs ``col_sign``. Only
    additions and subtractions."""
    acc = np.zeros(n_fn, dtype=np.float64)
    for v in range(X.shape[0]):
        acc[:] = 0.0
        for j in range(col_ptr.shape[0] - 1):
            _pm1_add(acc, j, X[v, j], col_ptr, col_fn, col_sign)
        _sign_digits(acc, digits[v], alts[v], margins[v])


@nb.njit(**NJIT_SERIAL)
def pm1_csr(indptr, indices, values, col_ptr, col_fn, col_sign, n_fn, digits, alts, margins):
    """``pm1_dense`` over the stored entries of CSR rows."""
    acc = np.zeros(n_fn, dtype=np.float64)
    for v in range(indptr.shape[0] - 1):
        acc[:] = 0.0
        for e0 in range(indptr[v], indptr[v + 1]):
            _pm1_add(acc, indices[e0], values[e0], col_ptr, col_fn, col_sign)
        _sign_digits(acc, digits[v], alts[v], margins[v])


# -- winner-take-all hashing ---------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def _mix(f, attempt, salt):
    """A 32-bit integer mix of (function, attempt, salt) for densification probes."""
    h = (f * 0x9E3779B1 + attempt * 0x85EBCA77 + salt) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    h ^= h >> 16
    return h


#: below every key of a value that counts (a float's key is never this small)
_NO_KEY = np.iinfo(np.int64).min


@nb.njit(**NJIT_SERIAL)
def _wta_keys(x, present, densify, keys):
    """``keys[j]``: an int64 that orders like ``float(x[j])`` (its IEEE bits, the
    magnitude bits flipped for negatives; +0 and -0 both 0), or ``_NO_KEY`` where the
    coordinate does not count (densified: absent or zero)."""
    bits = keys.view(np.float64)  # the same memory, read as doubles
    for j in range(x.shape[0]):
        bits[j] = np.float64(x[j])
    for j in range(x.shape[0]):
        v = bits[j]
        k = keys[j]
        k ^= (k >> 63) & np.int64(0x7FFFFFFFFFFFFFFF)
        if v == 0:
            k = np.int64(0)
        if densify and not (present[j] and v != 0):
            k = _NO_KEY
        keys[j] = k


@nb.njit(**NJIT_SERIAL)
def _wta_one(x, present, perm, densify, salt, max_attempts, drow, arow, mrow, empty, keys):
    """Winner-take-all digits of one vector ``x`` (dense, with ``present`` flags).

    Function ``f`` looks at coordinates ``perm[f, :]``; its digit is the position of
    the largest value (the first on ties). Without densification every coordinate
    counts (absent ones as 0). With densification only present, nonzero coordinates
    count; a bin with none borrows the digit of another bin chosen by a seeded
    probe sequence. Returns the number of comparisons made: a running best and
    runner-up, one comparison with the best for every counted value after the first,
    and one with the runner-up when the value does not beat the best and a runner-up
    exists. ``empty`` (``len(perm)`` bools) and ``keys`` (``len(x)`` int64) are scratch.

    The scan compares integer keys that order like the values (:func:`_wta_keys`) with
    selects, not jumps: a value that does not count has a key below every other, so it
    never beats a best or runner-up, and the comparisons are counted from the same
    conditions.
    """
    nf, m = perm.shape
    compares = 0
    _wta_keys(x, present, densify, keys)
    for f in range(nf):
        best = -1
        second = -1
        bk = _NO_KEY
        sk = _NO_KEY
        seen = 0
        for p in range(m):
            k = keys[perm[f, p]]
            ok = k != _NO_KEY
            beats = k > bk
            runner = (not beats) & (k > sk)
            later = ok & (seen > 0)
            compares += later + (later & (not beats) & (second >= 0))
            seen += ok
            second = best if beats else (p if runner else second)
            sk = bk if beats else (k if runner else sk)
            best = p if beats else best
            bk = k if beats else bk
        empty[f] = best < 0
        if best < 0:
            drow[f] = 0
            arow[f] = 0
            mrow[f] = np.inf
        else:
            drow[f] = best
            arow[f] = second if second >= 0 else best
            if second >= 0:
                mrow[f] = np.float64(x[perm[f, best]]) - np.float64(x[perm[f, second]])
            else:
                mrow[f] = np.inf
    if densify:
        for f in range(nf):
            if not empty[f]:
                continue
            for attempt in range(max_attempts):
                g = _mix(f, attempt, salt) % nf
                if not empty[g]:
                    drow[f] = drow[g]
                    arow[f] = arow[g]
                    mrow[f] = mrow[g]
                    break
    return compares


@nb.njit(**NJIT_SERIAL)
def wta_dense(X, perm, densify, salt, max_attempts, digits, alts, margins):
    """Winner-take-all (or densified WTA) digits of dense rows; returns comparisons."""
    present = np.ones(X.shape[1], dtype=np.bool_)
    empty = np.zeros(perm.shape[0], dtype=np.bool_)
    keys = np.empty(X.shape[1], dtype=np.int64)
    total = 0
    for v in range(X.shape[0]):
        total += _wta_one(X[v], present, perm, densify, salt, max_attempts,
                          digits[v], alts[v], margins[v], empty, keys)
    return total


@nb.njit(**NJIT_SERIAL)
def wta_csr(indptr, indices, values, n_dim, perm, densify, salt, max_attempts,
            digits, alts, margins):
    """``wta_dense`` over CSR rows (absent entries are 0, and not present)."""
    x = np.zeros(n_dim, dtype=np.float64)
    present = np.zeros(n_dim, dtype=np.bool_)
    empty = np.zeros(perm.shape[0], dtype=np.bool_)
    keys = np.empty(n_dim, dtype=np.int64)
    total = 0
    for v in range(indptr.shape[0] - 1):
        a, b = indptr[v], indptr[v + 1]
        for e in range(a, b):
            x[indices[e]] = values[e]
            present[indices[e]] = True
        total += _wta_one(x, present, perm, densify, salt, max_attempts,
                          digits[v], alts[v], margins[v], empty, keys)
        for e in range(a, b):
            x[indices[e]] = 0.0
            present[indices[e]] = False
    return total


# -- pooling and packing ---------------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def pool_dense(X, block, out):
    """Mean of contiguous blocks of ``block`` coordinates (the last may be shorter)."""
    d = X.shape[1]
    nb_ = out.shape[1]
    for v in range(X.shape[0]):
        for q in range(nb_):
            lo = q * block
            hi = min(d, lo + block)
            acc = 0.0
            for j in range(lo, hi):
                acc += X[v, j]
            out[v, q] = acc * (1.0 / (hi - lo))


@nb.njit(**NJIT_SERIAL)
def pool_csr(indptr, indices, values, d, block, out):
    """``pool_dense`` of CSR rows (absent entries are zero)."""
    nb_ = out.shape[1]
    for v in range(indptr.shape[0] - 1):
        for q in range(nb_):
            out[v, q] = 0.0
        for e in range(indptr[v], indptr[v + 1]):
            out[v, indices[e] // block] += values[e]
        for q in range(nb_):
            lo = q * block
            hi = min(d, lo + block)
            out[v, q] *= 1.0 / (hi - lo)


@nb.njit(**NJIT_SERIAL)
def pack_codes(digits, K, bits, codes):
    """``codes[v, t]``: digits ``t*K .. t*K+K-1`` packed, digit ``i`` at bit ``i*bits``."""
    L = codes.shape[1]
    for v in range(digits.shape[0]):
        for t in range(L):
            c = 0
            for i in range(K):
                c |= np.int64(digits[v, t * K + i]) << (i * bits)
            codes[v, t] = c


@nb.njit(**NJIT_SERIAL)
def probe_codes(codes, digits, alts, margins, K, bits, n_probes, probes):
    """Multi-probe sequences (Lv et al., VLDB 2007, query-directed probing).

    For each vector and table, the ``n_probes`` codes nearest to the exact one: sets
    of digits replaced by their alternatives, in increasing order of the sum of
    squared margins of the replaced digits (a heap over "shift" and "expand"
    moves on the digits sorted by margin). ``probes[v, t, r]`` is the ``r``-th probe
    code, or -1 when fewer sets exist.
    """
    L = codes.shape[1]
    sq = np.empty(K, dtype=np.float64)
    for v in range(codes.shape[0]):
        for t in range(L):
            for r in range(n_probes):
                probes[v, t, r] = -1
            if n_probes == 0:
                continue
            base = t * K
            for i in range(K):
                m = margins[v, base + i]
                sq[i] = m * m if (alts[v, base + i] != digits[v, base + i]) else np.inf
            order = np.argsort(sq)
            usable = 0
            while usable < K and sq[order[usable]] < np.inf:
                usable += 1
            if usable == 0:
                continue
            # heap items: (score, bitmask over sorted positions, highest position)
            heap = [(sq[order[0]], np.int64(1), np.int64(0))]
            made = 0
            while made < n_probes and len(heap) > 0:
                score, mask, top = heapq.heappop(heap)
                c = codes[v, t]
                for p in range(usable):
                    if (mask >> p) & 1:
                        i = order[p]
                        flip = np.int64(digits[v, base + i] ^ alts[v, base + i])
                        c ^= flip << (i * bits)
                probes[v, t, made] = c
                made += 1
                if top + 1 < usable:
                    nxt = top + 1
                    # shift: replace the highest position by the next one
                    heapq.heappush(heap, (score - sq[order[top]] + sq[order[nxt]],
                                      (mask & ~(np.int64(1) << top)) | (np.int64(1) << nxt),
                                      np.int64(nxt)))
                    # expand: add the next position
                    heapq.heappush(heap, (score + sq[order[nxt]], mask | (np.int64(1) << nxt),
                                      np.int64(nxt)))
