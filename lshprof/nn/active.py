"""The active set: which nodes of a layer took part for each sample, and their values.

A layer's forward pass returns an :class:`ActiveSet` in CSR layout:

* ``indptr``  -- int64[B + 1]; sample ``b`` owns entries ``indptr[b]:indptr[b+1]``;
* ``indices`` -- int32[nnz], the active node numbers of each sample, ascending;
* ``values``  -- float[nnz], the layer's output (after activation) at those nodes.

Nodes that are not listed were never computed; :meth:`ActiveSet.to_dense`
shows them as ``0``. A *full* set (every node active, as a dense layer makes) keeps
its values as a dense ``[B, n_nodes]`` array and builds ``indptr``/``indices`` only
when asked, so a dense network pays nothing for the sparse layout.

Gradients travel backwards in the same layout: ``active.with_values(grad)``.
"""

from __future__ import annotations

import numpy as np

from lshprof.errors import ConfigError, InputTypeError

__all__ = ["ActiveSet"]


class ActiveSet:
    """Active nodes per sample (CSR) with one value per active node."""

    __slots__ = ("n_nodes", "values", "_indptr", "_indices", "_dense")

    def __init__(self, indptr, indices, values, n_nodes: int, *, check: bool = True):
        self.n_nodes = int(n_nodes)
        self._dense = None
        self._indptr = indptr
        self._indices = indices
        self.values = values
        if check:
            self._check()

    @classmethod
    def full(cls, dense: np.ndarray) -> "ActiveSet":
        """Every node active; ``dense`` is ``[B, n_nodes]`` and is kept, not copied."""
        if not isinstance(dense, np.ndarray) or dense.ndim != 2:
            raise InputTypeError("ActiveSet.full needs a 2-D numpy array [batch, nodes]")
        dense = np.ascontiguousarray(dense)
        obj = cls.__new__(cls)
        obj.n_nodes = dense.shape[1]
        obj._dense = dense
        obj._indptr = None
        obj._indices = None
        obj.values = dense.reshape(-1)
        return obj

    @classmethod
    def from_mask(cls, mask: np.ndarray, values2d: np.ndarray | None = None) -> "ActiveSet":
        """Active set of a boolean ``[B, n]`` mask; values taken from ``values2d`` (or 0)."""
        rows, cols = np.nonzero(mask)
        indptr = np.zeros(mask.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.count_nonzero(mask, axis=1), out=indptr[1:])
        if values2d is None:
            values = np.zeros(rows.size, dtype=np.float32)
        else:
            values = values2d[rows, cols]
        return cls(indptr, cols.astype(np.int32), values, mask.shape[1], check=False)

    # -- layout -------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """True when every node of every sample is active and values are held densely."""
        return self._dense is not None

    @property
    def batch_size(self) -> int:
        if self._dense is not None:
            return self._dense.shape[0]
        return self._indptr.shape[0] - 1

    @property
    def indptr(self) -> np.ndarray:
        if self._indptr is None:
            b, n = self._dense.shape
            self._indptr = np.arange(b + 1, dtype=np.int64) * n
        return self._indptr

    @property
    def indices(self) -> np.ndarray:
        if self._indices is None:
            b, n = self._dense.shape
            self._indices = np.tile(np.arange(n, dtype=np.int32), b)
        return self._indices

    @property
    def nnz(self) -> int:
        return int(self.values.shape[0])

    def counts(self) -> np.ndarray:
        """Number of active nodes of each sample, int64[B]."""
        if self._dense is not None:
            return np.full(self._dense.shape[0], self._dense.shape[1], dtype=np.int64)
        return np.diff(self._indptr)

    def dense_view(self) -> np.ndarray | None:
        """The dense ``[B, n]`` values of a full set (shared, not copied), else ``None``."""
        return self._dense

    def to_dense(self, fill: float = 0.0) -> np.ndarray:
        """A new ``[B, n_nodes]`` array: values at active nodes, ``fill`` elsewhere."""
        if self._dense is not None:
            return self._dense.copy()
        out = np.full((self.batch_size, self.n_nodes), fill, dtype=self.values.dtype)
        rows = np.repeat(np.arange(self.batch_size), self.counts())
        out[rows, self._indices] = self.values
        return out

    def mask(self) -> np.ndarray:
        """Boolean ``[B, n_nodes]``: True where a node is active."""
        if self._dense is not None:
            return np.ones(self._dense.shape, dtype=bool)
        out = np.zeros((self.batch_size, self.n_nodes), dtype=bool)
        rows = np.repeat(np.arange(self.batch_size), self.counts())
        out[rows, self._indices] = True
        return out

    def with_values(self, values: np.ndarray) -> "ActiveSet":
        """The same active nodes with other values (e.g. gradients)."""
        values = np.asarray(values)
        if self._dense is not None:
            if values.shape == self._dense.shape:
                return ActiveSet.full(values)
            if values.shape == (self.nnz,):
                return ActiveSet.full(values.reshape(self._dense.shape))
        elif values.shape == (self.nnz,):
            return ActiveSet(self._indptr, self._indices, values, self.n_nodes, check=False)
        raise ConfigError(
            f"values of shape {values.shape} do not fit this active set "
            f"({self.nnz} active entries); pass one value per active entry"
        )

    def same_pattern(self, other: "ActiveSet") -> bool:
        """True when ``other`` has exactly the same active nodes per sample."""
        if self is other:
            return True
        if self.n_nodes != other.n_nodes or self.batch_size != other.batch_size:
            return False
        if self.is_full and other.is_full:
            return True
        if self._indptr is other._indptr and self._indices is other._indices:
            return True
        return np.array_equal(self.indptr, other.indptr) and np.array_equal(
            self.indices, other.indices
        )

    def __repr__(self) -> str:
        kind = "full" if self.is_full else "sparse"
        return (
            f"ActiveSet({kind}, batch={self.batch_size}, nodes={self.n_nodes}, "
            f"nnz={self.nnz}, dtype={self.values.dtype})"
        )

    # -- validation ---------------------------------------------------------------
    def _check(self) -> None:
        ip, ix, v = self._indptr, self._indices, self.values
        for name, arr, dt in (("indptr", ip, np.int64), ("indices", ix, np.int32)):
            if not isinstance(arr, np.ndarray) or arr.dtype != dt or arr.ndim != 1:
                raise InputTypeError(f"ActiveSet {name} must be a 1-D {np.dtype(dt).name} array")
        if not isinstance(v, np.ndarray) or v.ndim != 1 or v.dtype.kind != "f":
            raise InputTypeError("ActiveSet values must be a 1-D float array")
        if ip.shape[0] < 1 or ip[0] != 0 or ip[-1] != ix.shape[0] or ix.shape != v.shape:
            raise ConfigError(
                "ActiveSet indptr must start at 0 and end at len(indices) == len(values)"
            )
        if np.any(np.diff(ip) < 0):
            raise ConfigError("ActiveSet indptr must be non-decreasing")
        if ix.size:
            if ix.min() < 0 or ix.max() >= self.n_nodes:
                raise ConfigError(f"ActiveSet indices must lie in [0, {self.n_nodes})")
            steps = np.diff(ix.astype(np.int64))
            row_starts = ip[1:-1]
            ok = steps > 0
            # a step may go down only where a new sample begins
            starts = row_starts[(row_starts > 0) & (row_starts < ix.size)] - 1
            ok[starts] = True
            if not ok.all():
                raise ConfigError("ActiveSet indices must be strictly ascending within each sample")
