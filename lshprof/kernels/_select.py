"""Choosing nodes per row (exact top-k) and the softmax loss over a CSR batch."""

import math

import numba as nb
import numpy as np

from lshprof._config import NJIT_SERIAL


@nb.njit(**NJIT_SERIAL)
def topk_mark(row, k, tmp, mark):
    """Set ``mark[j]`` for the ``k`` largest entries of ``row`` (``1 <= k <= len``) and clear
    it elsewhere; ties at the threshold go to the lowest ``j``. ``tmp`` is scratch space
    as long as ``row``."""
    n = row.shape[0]
    for j in range(n):
        tmp[j] = row[j]
    thr = np.partition(tmp, n - k)[n - k]
    ties = k
    for j in range(n):
        if row[j] > thr:
            ties -= 1
    for j in range(n):
        v = row[j]
        take = v > thr or (v == thr and ties > 0)
        if take and v == thr:
            ties -= 1
        mark[j] = take


@nb.njit(**NJIT_SERIAL)
def topk_rows(z, k, indices):
    """The ``k`` largest entries of each row of ``z``, ascending node order.

    Ties at the threshold go to the lowest node numbers, so the result is fully
    determined by ``z``. Writes row ``r``'s nodes to ``indices[r*k:(r+1)*k]``.
    """
    n = z.shape[1]
    tmp = np.empty(n, dtype=z.dtype)
    mark = np.empty(n, dtype=np.bool_)
    for r in range(z.shape[0]):
        topk_mark(z[r], k, tmp, mark)
        pos = r * k
        for j in range(n):
            if mark[j]:
                indices[pos] = j
                pos += 1


@nb.njit(**NJIT_SERIAL)
def csr_softmax_xent(indptr, indices, values, labels, grad):
    """Softmax cross-entropy of each row over its stored logits.

    Returns (loss per row, whether the row's arg-max is the label, and the number of
    rows whose label is not among the stored nodes -- their loss is undefined and
    set to nan). ``grad`` receives ``softmax - onehot`` per stored entry.
    """
    nrow = indptr.shape[0] - 1
    loss = np.empty(nrow, dtype=np.float64)
    correct = np.zeros(nrow, dtype=np.bool_)
    missing = 0
    for r in range(nrow):
        a, b = indptr[r], indptr[r + 1]
        if a == b:
            loss[r] = np.nan
            missing += 1
            continue
        m = values[a]
        best = a
        for e in range(a + 1, b):
            if values[e] > m:
                m = values[e]
                best = e
        total = 0.0
        for e in range(a, b):
            total += math.exp(values[e] - m)
        lab_e = -1
        for e in range(a, b):
            p = math.exp(values[e] - m) / total
            grad[e] = p
            if indices[e] == labels[r]:
                lab_e = e
        if lab_e < 0:
            loss[r] = np.nan
            missing += 1
        else:
            grad[lab_e] -= 1.0
            loss[r] = math.log(total) - (values[lab_e] - m)
        correct[r] = indices[best] == labels[r]
    return loss, correct, missing


@nb.njit(**NJIT_SERIAL)
def csr_argmax(indptr, indices, values):
    """Node with the largest stored value of each row (-1 for an empty row)."""
    nrow = indptr.shape[0] - 1
    out = np.full(nrow, -1, dtype=np.int64)
    for r in range(nrow):
        a, b = indptr[r], indptr[r + 1]
        if a == b:
            continue
        best = a
        for e in range(a + 1, b):
            if values[e] > values[best]:
                best = e
        out[r] = indices[best]
    return out
