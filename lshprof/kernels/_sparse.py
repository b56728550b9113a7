"""Forward and backward passes restricted to an active set, node by node.

``W`` is ``[n_out, n_in]`` (one row per node, as the hash tables store them). The
active set arrives per sample (CSR: ``indptr``, ``indices``); :func:`by_node`
regroups it per node (``colptr``; for each entry ``t`` of node ``o``, ``ent[t]`` is
its position in the CSR arrays and ``samp[t]`` its sample). The kernels then walk
nodes: each active weight row (and its gradient row) is read once per batch and
applied to every sample that chose the node, while the batch's inputs stay in
cache -- instead of reading a row again for every sample that uses it.

The input is either a dense ``[B, n_in]`` array (``*_dense_*``) or a CSR batch
(``*_sparse_*``: ``xp`` row pointers, ``xi`` columns, ``xv`` values).

Each kernel has a serial form and a parallel form (``*_par``) that splits the nodes
into ``len(chunks) - 1`` ranges of about equal work (:func:`node_chunks`), one per
thread. Nodes of different ranges write different output entries and gradient
rows, so the threads share nothing but the input gradient, which each range
accumulates in a buffer of its own and which is summed at the end. Callers use the
serial form at one thread: Hogwild workers run one thread each, and a parallel
region must not be started from several threads at once.
"""

import numba as nb
import numpy as np

from lshprof._config import NJIT_PARALLEL, NJIT_SERIAL


@nb.njit(**NJIT_SERIAL)
def by_node(indptr, indices, n_out):
    """Regroup a CSR pattern by node: ``(colptr, ent, samp)``, samples ascending per node."""
    nnz = indices.shape[0]
    colptr = np.zeros(n_out + 1, dtype=np.int64)
    for e in range(nnz):
        colptr[indices[e] + 1] += 1
    for o in range(n_out):
        colptr[o + 1] += colptr[o]
    fill = colptr[:-1].copy()
    ent = np.empty(nnz, dtype=np.int64)
    samp = np.empty(nnz, dtype=np.int32)
    for s in range(indptr.shape[0] - 1):
        for e in range(indptr[s], indptr[s + 1]):
            o = indices[e]
            t = fill[o]
            ent[t] = e
            samp[t] = s
            fill[o] = t + 1
    return colptr, ent, samp


@nb.njit(**NJIT_SERIAL)
def node_chunks(colptr, parts, row_cost):
    """Split nodes into ``parts`` ranges of about equal work; ``row_cost`` is the work of
    reading a row, in entries (so ranges of many lightly used rows are not too long)."""
    n = colptr.shape[0] - 1
    total = colptr[n] + row_cost * n
    out = np.empty(parts + 1, dtype=np.int64)
    out[0] = 0
    o = 0
    for p in range(1, parts):
        target = total * p // parts
        while o < n and colptr[o] + row_cost * o < target:
            o += 1
        out[p] = o
    out[parts] = n
    return out


# -- forward ----------------------------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def _fwd_dense(x, W, b, colptr, ent, samp, lo, hi, out):
    n_in = x.shape[1]
    for o in range(lo, hi):
        a, c = colptr[o], colptr[o + 1]
        if a == c:
            continue
        bo = b[o]
        for t in range(a, c):
            s = samp[t]
            acc = W.dtype.type(0)
            for j in range(n_in):
                acc += W[o, j] * x[s, j]
            out[ent[t]] = acc + bo


@nb.njit(**NJIT_SERIAL)
def forward_dense(x, W, b, colptr, ent, samp, out):
    """``out[e] = b[o] + W[o] . x[s]`` for each active entry ``e = (s, o)``."""
    _fwd_dense(x, W, b, colptr, ent, samp, 0, colptr.shape[0] - 1, out)


@nb.njit(**NJIT_PARALLEL)
def forward_dense_par(x, W, b, colptr, ent, samp, chunks, out):
    for p in nb.prange(chunks.shape[0] - 1):
        _fwd_dense(x, W, b, colptr, ent, samp, chunks[p], chunks[p + 1], out)


@nb.njit(**NJIT_SERIAL)
def _fwd_sparse(xp, xi, xv, W, b, colptr, ent, samp, lo, hi, out):
    for o in range(lo, hi):
        a, c = colptr[o], colptr[o + 1]
        if a == c:
            continue
        bo = b[o]
        for t in range(a, c):
            s = samp[t]
            acc = W.dtype.type(0)
            for q in range(xp[s], xp[s + 1]):
                acc += W[o, xi[q]] * xv[q]
            out[ent[t]] = acc + bo


@nb.njit(**NJIT_SERIAL)
def forward_sparse(xp, xi, xv, W, b, colptr, ent, samp, out):
    """As :func:`forward_dense`, visiting only the stored inputs of each sample."""
    _fwd_sparse(xp, xi, xv, W, b, colptr, ent, samp, 0, colptr.shape[0] - 1, out)


@nb.njit(**NJIT_PARALLEL)
def forward_sparse_par(xp, xi, xv, W, b, colptr, ent, samp, chunks, out):
    for p in nb.prange(chunks.shape[0] - 1):
        _fwd_sparse(xp, xi, xv, W, b, colptr, ent, samp, chunks[p], chunks[p + 1], out)


# -- backward ---------------------------------------------------------------------------------
@nb.njit(**NJIT_SERIAL)
def _bwd_dense(x, W, colptr, ent, samp, dz, gW, gb, touched, gx, need_gx, lo, hi):
    n_in = x.shape[1]
    for o in range(lo, hi):
        a, c = colptr[o], colptr[o + 1]
        if a == c:
            continue
        touched[o] = True
        sb = gb.dtype.type(0)
        for t in range(a, c):
            s = samp[t]
            d = dz[ent[t]]
            sb += d
            for j in range(n_in):
                gW[o, j] += d * x[s, j]
            if need_gx:
                for j in range(n_in):
                    gx[s, j] += d * W[o, j]
        gb[o] += sb


@nb.njit(**NJIT_SERIAL)
def backward_dense(x, W, colptr, ent, samp, dz, gW, gb, touched, gx, need_gx):
    """Accumulate ``gW[o] += dz[e] x[s]``, ``gb[o] += dz[e]``; ``gx[s] += dz[e] W[o]``."""
    _bwd_dense(x, W, colptr, ent, samp, dz, gW, gb, touched, gx, need_gx, 0,
               colptr.shape[0] - 1)


@nb.njit(**NJIT_PARALLEL)
def backward_dense_par(x, W, colptr, ent, samp, dz, gW, gb, touched, gx, need_gx, chunks):
    parts = chunks.shape[0] - 1
    B, n_in = gx.shape
    bufs = np.zeros((parts, B, n_in) if need_gx else (parts, 0, n_in), dtype=gx.dtype)
    for p in nb.prange(parts):
        _bwd_dense(x, W, colptr, ent, samp, dz, gW, gb, touched, bufs[p], need_gx,
                   chunks[p], chunks[p + 1])
    if need_gx:
        for s in nb.prange(B):
            for p in range(parts):
                for j in range(n_in):
                    gx[s, j] += bufs[p, s, j]


@nb.njit(**NJIT_SERIAL)
def _bwd_sparse(xp, xi, xv, W, colptr, ent, samp, dz, gW, gb, touched, gxv, need_gx, lo, hi):
    for o in range(lo, hi):
        a, c = colptr[o], colptr[o + 1]
        if a == c:
            continue
        touched[o] = True
        sb = gb.dtype.type(0)
        for t in range(a, c):
            s = samp[t]
            d = dz[ent[t]]
            sb += d
            for q in range(xp[s], xp[s + 1]):
                gW[o, xi[q]] += d * xv[q]
            if need_gx:
                for q in range(xp[s], xp[s + 1]):
                    gxv[q] += d * W[o, xi[q]]
        gb[o] += sb


@nb.njit(**NJIT_SERIAL)
def backward_sparse(xp, xi, xv, W, colptr, ent, samp, dz, gW, gb, touched, gxv, need_gx):
    """As :func:`backward_dense`; ``gxv`` holds the input gradient at stored inputs."""
    _bwd_sparse(xp, xi, xv, W, colptr, ent, samp, dz, gW, gb, touched, gxv, need_gx, 0,
                colptr.shape[0] - 1)


@nb.njit(**NJIT_PARALLEL)
def backward_sparse_par(xp, xi, xv, W, colptr, ent, samp, dz, gW, gb, touched, gxv, need_gx,
                        chunks):
    parts = chunks.shape[0] - 1
    n = gxv.shape[0]
    bufs = np.zeros((parts, n), dtype=gxv.dtype)
    for p in nb.prange(parts):
        _bwd_sparse(xp, xi, xv, W, colptr, ent, samp, dz, gW, gb, touched, bufs[p], need_gx,
                    chunks[p], chunks[p + 1])
    if need_gx:
        for q in nb.prange(n):
            acc = gxv.dtype.type(0)
            for p in range(parts):
                acc += bufs[p, q]
            gxv[q] += acc
