"""What the LSH layer hashes: pooling, and the row and query transforms for inner-product
search, one registry entry each (:data:`TRANSFORM_REGISTRY`).

A transform (:class:`Transform`) says how many coordinates it appends to a pooled
input (:attr:`~Transform.EXTRA`), what a weight row becomes (with the MIPS scale ``M``)
and what a query becomes, and counts what the row transform costs. Adding a transform
is adding one subclass here (and its name to :data:`lshprof.names.TRANSFORMS`). The
formulas are in :mod:`lshprof.nn.lsh`.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from lshprof import kernels as kern
from lshprof.names import TRANSFORMS
from lshprof.nn.lsh.stats import HashCost

__all__ = ["Transform", "TRANSFORM_REGISTRY", "MIPS_HEADROOM", "ALSH_M", "ALSH_U",
           "extra_dims", "pooled_dims", "pool_rows", "pool_queries"]

#: ``M`` = largest row norm times this, so rows may grow a little before a full re-hash
MIPS_HEADROOM = 1.1
#: Sign-ALSH constants (Shrivastava & Li 2015 recommend m = 2, U = 0.75)
ALSH_M, ALSH_U = 2, 0.75


# -- pooling --------------------------------------------------------------------------------------
def pooled_dims(n_in: int, pool: int) -> int:
    return -(-n_in // pool)


def pool_rows(W: np.ndarray, pool: int, pooled_dim: int, dtype, cost: HashCost) -> np.ndarray:
    """Weight rows ``W`` mean-pooled in blocks of ``pool`` coordinates (``W`` itself when
    ``pool`` is 1); counts the additions and one scaling per pooled coordinate."""
    if pool == 1:
        return W
    out = np.empty((W.shape[0], pooled_dim), dtype=dtype)
    kern.pool_dense(W, pool, out)
    cost.adds += W.shape[0] * W.shape[1]
    cost.macs += W.shape[0] * pooled_dim
    return out


def pool_queries(dense, csr, batch: int, n_in: int, pool: int, pooled_dim: int, dtype,
                 cost: HashCost):
    """``(dense, csr)``: queries (dense rows or CSR ``(indptr, indices, values)``)
    mean-pooled in blocks of ``pool`` coordinates, as dense rows (unchanged when ``pool``
    is 1); counts the entries summed and one scaling per pooled coordinate."""
    if pool == 1:
        return dense, csr
    out = np.empty((batch, pooled_dim), dtype=dtype)
    if csr is not None:
        kern.pool_csr(*csr, n_in, pool, out)
        cost.adds += int(csr[1].shape[0])
    else:
        kern.pool_dense(dense, pool, out)
        cost.adds += batch * n_in
    cost.macs += batch * pooled_dim
    return out, None


# -- transforms -----------------------------------------------------------------------------------
class Transform:
    """One row/query transform (an entry of :data:`TRANSFORM_REGISTRY`).

    The base class is a MIPS transform: a row ``u = [w, b]`` is scaled by ``1/M`` and
    given :attr:`EXTRA` - 1 more coordinates by :meth:`map_rows`; a query ``x`` becomes
    ``[x, 1, 0, ...]`` (:attr:`EXTRA` coordinates appended). ``M`` is the largest row
    norm times :data:`MIPS_HEADROOM`, set when every row is transformed.
    """

    #: the transform's name, as in :data:`lshprof.names.TRANSFORMS`
    name: ClassVar[str] = ""
    #: coordinates appended to a (pooled) input: bias and padding
    EXTRA: ClassVar[int] = 0

    def map_rows(self, u: np.ndarray, sq: np.ndarray, inv: float, cost: HashCost) -> np.ndarray:
        """The stored vectors of rows ``u`` (float64, bias appended) with squared norms
        ``sq``, for ``inv = 1/M``; counts its MACs."""
        raise NotImplementedError

    def rows(self, pooled: np.ndarray, bias: np.ndarray, M: float, full: bool, dtype,
             cost: HashCost):
        """``(vectors, M)``: what the tables store for (pooled) weight rows with biases
        ``bias``, and the scale used. ``full``: these are every row, so ``M`` is set
        anew; else ``vectors`` is None when a row outgrew ``M`` (then every row must be
        transformed again, with a new ``M``)."""
        u = np.hstack([pooled, bias[:, None]]).astype(np.float64)
        sq = np.einsum("ij,ij->i", u, u)
        cost.macs += u.size
        if full:
            top = math.sqrt(float(sq.max())) if sq.size else 0.0
            M = top * MIPS_HEADROOM if top > 0 else 1.0
        elif sq.size and float(sq.max()) > M ** 2:
            return None, M
        V = self.map_rows(u, sq, 1.0 / M, cost)
        return np.ascontiguousarray(V, dtype=dtype), M

    def queries(self, dense, csr, batch: int, pooled_dim: int, dtype):
        """``(dense, csr)``: (pooled) queries with ``[1, 0, ...]`` appended (in CSR, one
        entry ``1`` at coordinate ``pooled_dim`` per row)."""
        if csr is not None:
            ip, ix, vals = csr
            new_ip = ip + np.arange(ip.size, dtype=np.int64)
            pos = new_ip[1:] - 1  # the last slot of each row holds the bias entry
            new_ix = np.empty(ix.size + batch, dtype=np.int32)
            new_v = np.empty(ix.size + batch, dtype=dtype)
            keep = np.ones(new_ix.size, dtype=bool)
            keep[pos] = False
            new_ix[keep] = ix
            new_v[keep] = vals
            new_ix[pos] = pooled_dim
            new_v[pos] = 1.0
            return dense, (new_ip, new_ix, new_v)
        pad = np.zeros((batch, self.EXTRA), dtype=dtype)
        pad[:, 0] = 1.0
        return np.hstack([dense, pad]), csr


class NoTransform(Transform):
    """Rows and queries as they are: the tables find large cosine; the bias is ignored."""

    name = "none"

    def rows(self, pooled, bias, M, full, dtype, cost):
        return pooled, M

    def queries(self, dense, csr, batch, pooled_dim, dtype):
        return dense, csr


class NormAugment(Transform):
    """Simple-LSH: a row becomes ``[u/M, sqrt(1 - |u|^2/M^2)]``, a query ``[x, 1, 0]``;
    ``2*(d+1) + 1`` MACs per row."""

    name = "norm_augment"
    EXTRA = 2

    def map_rows(self, u, sq, inv, cost):
        aug = np.sqrt(np.maximum(0.0, 1.0 - sq * inv * inv))
        cost.macs += u.size + u.shape[0]
        return np.hstack([u * inv, aug[:, None]])


class SignALSH(Transform):
    """Sign-ALSH (m = 2, U = 0.75): a row becomes ``[v, 1/2 - |v|^2, 1/2 - |v|^4]`` with
    ``v = U u / M``, a query ``[x, 1, 0, 0]``; ``2*(d+1) + 2`` MACs per row."""

    name = "sign_alsh"
    EXTRA = 1 + ALSH_M

    def map_rows(self, u, sq, inv, cost):
        s = ALSH_U * inv
        n2 = sq * s * s
        n4 = n2 * n2
        cost.macs += u.size + 2 * u.shape[0]
        return np.hstack([u * s, (0.5 - n2)[:, None], (0.5 - n4)[:, None]])


#: transform name -> its registry entry, in :data:`lshprof.names.TRANSFORMS` order
TRANSFORM_REGISTRY: dict[str, Transform] = {
    t.name: t for t in (NoTransform(), NormAugment(), SignALSH())}
if tuple(TRANSFORM_REGISTRY) != TRANSFORMS:
    raise ImportError(f"the transform registry {tuple(TRANSFORM_REGISTRY)} is not "
                      f"lshprof.names.TRANSFORMS {TRANSFORMS}: add or remove the transform in "
                      "both places")


def extra_dims(transform: str) -> int:
    """Coordinates a transform appends to a (pooled) input: bias and padding."""
    return TRANSFORM_REGISTRY[transform].EXTRA
