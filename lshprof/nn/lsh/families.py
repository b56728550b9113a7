"""Hash families of the LSH layer, one registry entry each, and :class:`HashFunctions`.

A family (:class:`Family`) is everything the layer and the hash functions need to know
about one kind of hash: its parameters (defaults and checks), how many bits a digit
takes, how to draw its random state and which arrays that state is, how to compute
digits of dense rows and of CSR rows (by the kernels of :mod:`lshprof.kernels`), and
what that costs (:class:`~lshprof.nn.lsh.stats.HashCost`). :data:`FAMILY_REGISTRY`
maps each name of :data:`lshprof.names.FAMILIES` to its family; adding a family is
adding one subclass here (and its name there). The families and their costs are
described in :mod:`lshprof.nn.lsh`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from lshprof import kernels as kern
from lshprof.names import FAMILIES
from lshprof.nn.checks import check_fraction, check_int, check_power_of_two
from lshprof.nn.lsh.stats import HashCost

__all__ = ["Family", "FAMILY_REGISTRY", "FAMILY_PARAMS", "HashFunctions", "DWTA_ATTEMPTS",
           "PROJECT_CHUNK"]

#: densified WTA: tries to find a non-empty bin to borrow from
DWTA_ATTEMPTS = 100
#: rows projected per BLAS call when hashing many vectors (bounds the temporary product)
PROJECT_CHUNK = 4096


class Family:
    """One hash family (an entry of :data:`FAMILY_REGISTRY`); subclasses fill in the hooks.

    ``hf`` below is the :class:`HashFunctions` whose state :meth:`draw` made (its
    arrays are attributes of it, named by :attr:`ARRAYS`); ``dense`` is ``[n, dim]``
    rows or None, ``csr`` then ``(indptr, indices, values)``.
    """

    #: the family's name, as in :data:`lshprof.names.FAMILIES`
    name: ClassVar[str] = ""
    #: the family's own layer parameters -> default (the LSH layer takes every family's)
    PARAMS: ClassVar[dict[str, Any]] = {}
    #: the arrays :meth:`draw` makes: :attr:`HashFunctions.nbytes` counts their bytes
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    def check_params(self, params: dict[str, Any], method: str) -> None:
        """Check and normalise this family's own parameters in ``params`` (in place)."""

    def digit_bits(self, params: dict[str, Any]) -> int:
        """Bits of one digit (one hash function's value)."""
        return 1

    def digit_values(self, params: dict[str, Any], dim: int) -> int:
        """How many values one digit can take over vectors of ``dim`` coordinates (at most
        ``2**digit_bits``): a table has this to the ``K`` distinct codes."""
        return 1 << self.digit_bits(params)

    def draw(self, n_fn: int, dim: int, rng: np.random.Generator, params: dict[str, Any],
             dtype) -> dict[str, Any]:
        """The random state of ``n_fn`` functions over ``dim`` coordinates, by attribute."""
        raise NotImplementedError

    def fill(self, hf: "HashFunctions", dense, csr, digits, alts, margins) -> int:
        """Write digits, alternatives and margins of the vectors; returns comparisons."""
        raise NotImplementedError

    def cost(self, hf: "HashFunctions", n_vectors: int, dense, csr, compares: int) -> HashCost:
        """What hashing the vectors costs (the formulas of :mod:`lshprof.nn.lsh`)."""
        raise NotImplementedError

    def dense_codes(self, hf: "HashFunctions", dense: np.ndarray, out: np.ndarray) -> bool:
        """Write the table codes of dense vectors into ``out`` by a way faster than
        packing digits, if the family has one; False when it has not."""
        return False


class SRP(Family):
    """Signed random projections: Gaussian directions ``P``, one bit per function."""

    name = "srp"
    ARRAYS = ("P",)

    def draw(self, n_fn, dim, rng, params, dtype):
        return {"P": rng.standard_normal((n_fn, dim)).astype(dtype)}

    def fill(self, hf, dense, csr, digits, alts, margins):
        if dense is not None:
            for lo in range(0, dense.shape[0], PROJECT_CHUNK):
                hi = min(lo + PROJECT_CHUNK, dense.shape[0])
                kern.sign_digits(dense[lo:hi] @ hf.P.T, digits[lo:hi], alts[lo:hi],
                                 margins[lo:hi])
        else:
            kern.srp_csr(*csr, hf.P, digits, alts, margins)
        return 0

    def cost(self, hf, n_vectors, dense, csr, compares):
        return HashCost(macs=n_vectors * hf.n_fn * dense.shape[1] if dense is not None
                        else hf.n_fn * int(csr[1].shape[0]))

    def dense_codes(self, hf, dense, out):
        nv = dense.shape[0]
        for lo in range(0, nv, PROJECT_CHUNK):
            hi = min(lo + PROJECT_CHUNK, nv)
            kern.sign_codes(dense[lo:hi] @ hf.P.T, hf.K, out[lo:hi])
        return True


class SparseSRP(Family):
    """Sparse +-1 projections: each function adds or subtracts a random ``density`` share
    of the coordinates, stored by coordinate (``col_ptr``, ``col_fn``, ``col_sign``)."""

    name = "srp_sparse"
    PARAMS = {"density": 1 / 3}
    ARRAYS = ("col_fn", "col_sign", "col_count", "col_ptr")

    def check_params(self, params, method):
        params["density"] = check_fraction("density", params["density"], method)

    def draw(self, n_fn, dim, rng, params, dtype):
        per_fn = max(1, int(round(params["density"] * dim)))
        fn_ids, coords, signs = [], [], []
        for f in range(n_fn):
            c = rng.choice(dim, size=per_fn, replace=False)
            fn_ids.append(np.full(per_fn, f))
            coords.append(c)
            signs.append(rng.integers(0, 2, size=per_fn) * 2 - 1)
        fn_ids, coords, signs = (np.concatenate(a) for a in (fn_ids, coords, signs))
        o = np.lexsort((fn_ids, coords))
        col_count = np.bincount(coords, minlength=dim).astype(np.int64)
        return {"col_fn": fn_ids[o].astype(np.int64), "col_sign": signs[o].astype(np.int8),
                "col_count": col_count,
                "col_ptr": np.concatenate([[0], np.cumsum(col_count)]).astype(np.int64)}

    def fill(self, hf, dense, csr, digits, alts, margins):
        if dense is not None:
            kern.pm1_dense(dense, hf.col_ptr, hf.col_fn, hf.col_sign, hf.n_fn,
                           digits, alts, margins)
        else:
            kern.pm1_csr(*csr, hf.col_ptr, hf.col_fn, hf.col_sign, hf.n_fn,
                         digits, alts, margins)
        return 0

    def cost(self, hf, n_vectors, dense, csr, compares):
        return HashCost(adds=n_vectors * int(hf.col_count.sum()) if dense is not None
                        else int(hf.col_count[csr[1]].sum()))


class WTA(Family):
    """Winner-take-all: each function samples ``bin_size`` coordinates (``perm``) and
    returns the position of the largest, ``log2(bin_size)`` bits."""

    name = "wta"
    PARAMS = {"bin_size": 8}
    ARRAYS = ("perm",)
    #: densified: empty bins borrow another function's value (:class:`DWTA`)
    densify: ClassVar[bool] = False

    def check_params(self, params, method):
        params["bin_size"] = check_power_of_two(
            "bin_size", check_int("bin_size", params["bin_size"], method, 2, 1 << 16), method)

    def digit_bits(self, params):
        return int(math.log2(params["bin_size"]))

    def digit_values(self, params, dim):
        return min(params["bin_size"], dim)  # a function samples at most dim coordinates

    def draw(self, n_fn, dim, rng, params, dtype):
        m = min(params["bin_size"], dim)
        perm = np.stack([rng.permutation(dim)[:m] for _ in range(n_fn)]).astype(np.int64)
        return {"perm": perm, "salt": int(rng.integers(0, 2**31))}

    def fill(self, hf, dense, csr, digits, alts, margins):
        if dense is not None:
            return int(kern.wta_dense(dense, hf.perm, self.densify, hf.salt, DWTA_ATTEMPTS,
                                      digits, alts, margins))
        return int(kern.wta_csr(*csr, hf.dim, hf.perm, self.densify, hf.salt, DWTA_ATTEMPTS,
                                digits, alts, margins))

    def cost(self, hf, n_vectors, dense, csr, compares):
        return HashCost(compares=int(compares))


class DWTA(WTA):
    """Densified WTA: WTA over the nonzero coordinates only."""

    name = "dwta"
    densify = True


#: family name -> its registry entry, in :data:`lshprof.names.FAMILIES` order
FAMILY_REGISTRY: dict[str, Family] = {f.name: f for f in (SRP(), SparseSRP(), WTA(), DWTA())}
if tuple(FAMILY_REGISTRY) != FAMILIES:
    raise ImportError(f"the hash family registry {tuple(FAMILY_REGISTRY)} is not "
                      f"lshprof.names.FAMILIES {FAMILIES}: add or remove the family in both places")

#: every family's own parameters -> default, in name order (the LSH layer takes them all)
FAMILY_PARAMS: dict[str, Any] = dict(sorted(
    {k: v for f in FAMILY_REGISTRY.values() for k, v in f.PARAMS.items()}.items()))


class HashFunctions:
    """``K*L`` hash functions of one family over vectors of ``dim`` coordinates.

    State is plain arrays drawn from ``rng`` by the family (:attr:`Family.ARRAYS`):
    Gaussian directions ``P`` (srp), +-1 directions by coordinate
    ``col_ptr/col_fn/col_sign`` (srp_sparse), or coordinate samples ``perm`` (wta,
    dwta). ``params`` are family parameters (:data:`FAMILY_PARAMS`, e.g. ``bin_size``,
    ``density``); a family reads its own and ignores the others.

    Dense ``srp`` projections are one BLAS product ``X @ P.T`` in the layer's dtype
    (a projection within rounding of 0 may take either sign); the counted MACs are
    the same ``F*D`` per vector whatever computes them.
    """

    def __init__(self, family: str, K_: int, L: int, dim: int, rng: np.random.Generator, *,
                 dtype=np.float32, **params):
        spec = FAMILY_REGISTRY.get(family)
        if spec is None:  # validated by the layer
            raise ValueError(family)
        unknown = sorted(set(params) - set(FAMILY_PARAMS))
        if unknown:
            raise TypeError(f"unknown hash family parameters {unknown}; valid: "
                            f"{', '.join(FAMILY_PARAMS)}")
        params = {**FAMILY_PARAMS, **params}
        self.family, self.K, self.L, self.dim = family, K_, L, dim
        self.spec = spec
        self.n_fn = K_ * L
        self.digit_bits = spec.digit_bits(params)
        for name, value in spec.draw(self.n_fn, dim, rng, params, dtype).items():
            setattr(self, name, value)

    @property
    def code_bits(self) -> int:
        return self.K * self.digit_bits

    @property
    def digit_dtype(self) -> np.dtype:
        """dtype of digits and alternatives: the smallest unsigned one that holds a digit."""
        return np.dtype(np.uint8 if self.digit_bits <= 8 else np.uint16)

    @property
    def nbytes(self) -> int:
        return int(sum(getattr(self, a).nbytes for a in self.spec.ARRAYS))

    @staticmethod
    def _n_vectors(dense, csr) -> int:
        return dense.shape[0] if dense is not None else csr[0].shape[0] - 1

    def digits(self, dense: np.ndarray | None = None, csr=None):
        """Digits, alternatives and margins of the vectors (dense rows or ``(indptr,
        indices, values)``), and the :class:`HashCost` of computing them.

        Digits and alternatives are ``[n_vectors, K*L]`` of :attr:`digit_dtype`, margins
        float32 (``inf`` where a digit cannot flip)."""
        nv = self._n_vectors(dense, csr)
        digits = np.empty((nv, self.n_fn), dtype=self.digit_dtype)
        alts = np.empty_like(digits)
        margins = np.empty((nv, self.n_fn), dtype=np.float32)
        compares = self.spec.fill(self, dense, csr, digits, alts, margins)
        return digits, alts, margins, self.spec.cost(self, nv, dense, csr, compares)

    def hash_codes(self, dense: np.ndarray | None = None, csr=None):
        """``(codes, cost)``: :meth:`codes` of :meth:`digits` and the same cost, computed
        a block of vectors at a time, so hashing every weight row needs no
        ``[n, K*L]`` digit arrays (no alternatives or margins: for tables, not probes)."""
        nv = self._n_vectors(dense, csr)
        out = np.empty((nv, self.L), dtype=np.int64)
        if dense is not None and self.spec.dense_codes(self, dense, out):
            return out, self.spec.cost(self, nv, dense, csr, 0)
        if dense is None:  # CSR rows are few (queries): one block
            d, _, _, cost = self.digits(csr=csr)
            kern.pack_codes(d, self.K, self.digit_bits, out)
            return out, cost
        compares = 0
        step = min(nv, PROJECT_CHUNK) or 1
        digits = np.empty((step, self.n_fn), dtype=self.digit_dtype)
        alts = np.empty_like(digits)
        margins = np.empty((step, self.n_fn), dtype=np.float32)
        for lo in range(0, nv, step):
            hi = min(lo + step, nv)
            n = hi - lo
            compares += self.spec.fill(self, dense[lo:hi], None, digits[:n], alts[:n],
                                       margins[:n])
            kern.pack_codes(digits[:n], self.K, self.digit_bits, out[lo:hi])
        return out, self.spec.cost(self, nv, dense, csr, compares)

    def codes(self, digits: np.ndarray) -> np.ndarray:
        """Pack digits into one code per table: ``[n_vectors, L]`` int64."""
        out = np.empty((digits.shape[0], self.L), dtype=np.int64)
        kern.pack_codes(digits, self.K, self.digit_bits, out)
        return out

    def probes(self, codes, digits, alts, margins, n_probes: int) -> np.ndarray:
        """Multi-probe codes ``[n_vectors, L, n_probes]`` (-1 where none)."""
        out = np.empty((codes.shape[0], self.L, n_probes), dtype=np.int64)
        kern.probe_codes(codes, digits, alts, margins, self.K, self.digit_bits, n_probes, out)
        return out
