"""Forward and backward passes restricted to an active set (CSR over output nodes).

``W`` is ``[n_out, n_in]`` (one row per node, as the hash tables will store them).
The input is either a dense ``[B, n_in]`` array (``*_dense_in``) or a CSR batch
(``*_sparse_in``: ``xp`` row pointers, ``xi`` columns, ``xv`` values).
"""

import numba as nb

from .._config import NJIT_SERIAL


@nb.njit(**NJIT_SERIAL)
def forward_dense_in(x, W, b, indptr, indices, out):
    """``out[e] = b[o] + W[o] . x[s]`` for each active entry ``e = (s, o)``."""
    n_in = x.shape[1]
    for s in range(indptr.shape[0] - 1):
        for e in range(indptr[s], indptr[s + 1]):
            o = indices[e]
            acc = W.dtype.type(0)
            for j in range(n_in):
                acc += W[o, j] * x[s, j]
            out[e] = acc + b[o]


@nb.njit(**NJIT_SERIAL)
def forward_sparse_in(xp, xi, xv, W, b, indptr, indices, out):
    """As :func:`forward_dense_in`, visiting only the stored inputs of each sample."""
    for s in range(indptr.shape[0] - 1):
        for e in range(indptr[s], indptr[s + 1]):
            o = indices[e]
            acc = W.dtype.type(0)
            for t in range(xp[s], xp[s + 1]):
                acc += W[o, xi[t]] * xv[t]
            out[e] = acc + b[o]


@nb.njit(**NJIT_SERIAL)
def backward_dense_in(x, W, indptr, indices, dz, gW, gb, touched, gx, need_gx):
    """Accumulate ``gW[o] += dz[e] x[s]``, ``gb[o] += dz[e]``; ``gx[s] += dz[e] W[o]``."""
    n_in = x.shape[1]
    for s in range(indptr.shape[0] - 1):
        for e in range(indptr[s], indptr[s + 1]):
            o = indices[e]
            d = dz[e]
            gb[o] += d
            touched[o] = True
            for j in range(n_in):
                gW[o, j] += d * x[s, j]
            if need_gx:
                for j in range(n_in):
                    gx[s, j] += d * W[o, j]


@nb.njit(**NJIT_SERIAL)
def backward_sparse_in(xp, xi, xv, W, indptr, indices, dz, gW, gb, touched, gxv, need_gx):
    """As :func:`backward_dense_in`; ``gxv`` holds the input gradient at stored inputs."""
    for s in range(indptr.shape[0] - 1):
        for e in range(indptr[s], indptr[s + 1]):
            o = indices[e]
            d = dz[e]
            gb[o] += d
            touched[o] = True
            for t in range(xp[s], xp[s + 1]):
                gW[o, xi[t]] += d * xv[t]
            if need_gx:
                for t in range(xp[s], xp[s + 1]):
                    gxv[t] += d * W[o, xi[t]]
