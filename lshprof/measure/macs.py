"""Exact multiply-accumulate (MAC) accounting, by phase.

Every layer owns a :class:`MacCounter` and adds to it the MACs its kernels
actually perform, computed from the real active-set sizes of each batch, never
from the nominal fraction. One MAC is one ``a += w * x``.

Phases
------
``select``           work spent choosing the active nodes (e.g. the full
                     pre-activation that adaptive dropout, WTA and top-k need).
``hash``             hashing the layer input (LSH layers).
``rehash``           re-hashing updated weight rows (LSH layers).
``forward``          computing the pre-activation of the active nodes.
``backward_input``   gradient of the layer input (skipped for the first layer).
``backward_weight``  gradient of the weights of the active nodes.

``dense_equivalent`` counts, for the same calls, what a dense layer of the same
shape would perform: ``B*n_in*n_out`` per forward pass, the same per backward
weight pass and again per backward input pass. The *share* a method uses is
``total / dense_equivalent``.

Additions that are not multiplications (bias adds, sparse +-1 projections) are
not MACs; hash phases that only add are counted in ``hash_adds`` / ``rehash_adds``,
and winner-take-all hashes, which only compare, in ``hash_compares`` /
``rehash_compares``. None of these enter ``total``.

``quality`` counts the MACs of the optional selection-quality measurement of an
LSH layer (a full product to find the true top-k). It is a cost of measuring,
not of the method, so it is reported apart and never enters ``total``.

``bytes_moved`` is a *model* of memory traffic, the input of the ``estimate``
energy backend (never a measurement): every kernel call is taken to read its
operands and write its results exactly once (perfect reuse inside a call, none
across calls), in bytes of the layer's dtype (4 for float32, 4 per node id):

* a BLAS product: the whole weight matrix, its input and its output;
* a sparse product: ``min(S, U*V)`` weight entries (``U`` distinct active nodes
  and ``V`` distinct active inputs in the batch), the stored input entries and
  the active outputs; the weight-gradient pass reads and writes the gradient
  entries (twice the weight entries), the input-gradient pass reads the weights;
* an optimizer step: each updated row's weights, gradients and state, read and
  written;
* LSH hashing: query vectors, hash functions and codes; a table query reads each
  bucket entry it visits; a re-hash reads the rows and rewrites the tables.

Notation and rules
------------------
``B`` samples; ``n_in``, ``n_out`` layer widths; ``k_b`` active outputs of
sample ``b``; ``a_b`` active inputs of sample ``b``: the stored entries of the
input row when the input is a sparse :class:`~lshprof.ActiveSet`, otherwise
``n_in``. ``S = sum_b a_b * k_b``.

Two kinds of kernel do the work, and each counts what it does:

* a BLAS product over the whole layer (``x @ W.T`` or its transposes) performs
  ``B*n_in*n_out`` MACs; a sparse input is given to it with zeros filled in,
  because that is what the product multiplies;
* a sparse kernel visits only active inputs of active outputs: ``S`` MACs.

Per method, for one training batch (``F = B*n_in*n_out``)::

    method             select   forward   backward_weight   backward_input
    dense              0        F         F                 F
    dropout            0        S         S                 S
    adaptive_dropout   F        0         S                 S
    wta                F        0         S                 S
    topk               F        0         S                 S
    lsh                0        S         S                 S   (+ hash, rehash)

For LSH the ``hash`` and ``rehash`` formulas (per hash family, transform and
pooling) are in :mod:`lshprof.nn.lsh`; the initial table build is counted as
``rehash`` on the first forward pass. An LSH layer with ``fraction=1`` (or
``inference="dense"`` in inference mode) hashes nothing and counts like dense.

Adaptive dropout, WTA and top-k compute every pre-activation to decide which
nodes to keep; the kept values are read from that product, so their
``forward`` phase adds nothing. ``backward_input`` is counted only when the
input gradient is requested (an MLP does not request it for its first layer).

In inference mode (``train=False``) dense, dropout, adaptive dropout and
lifetime WTA compute every node (``forward = F``); per-sample WTA and top-k
still select (``select = F``, ``forward = 0``). A forward pass given a fixed
active set (``active=``) computes exactly those nodes: ``forward = S``, or ``F``
when the set is full and the BLAS product is used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from lshprof.names import MAC_PHASES

__all__ = ["PHASES", "MacCounts", "MacCounter", "pair_macs"]

#: Phases that perform multiply-accumulates, in pipeline order.
PHASES = MAC_PHASES

_FIELDS = PHASES + ("dense_equivalent", "hash_adds", "rehash_adds", "hash_compares",
                    "rehash_compares", "quality", "bytes_moved")


@dataclass(frozen=True)
class MacCounts:
    """MACs by phase (exact integers), the dense equivalent and non-MAC additions."""

    select: int = 0
    hash: int = 0
    rehash: int = 0
    forward: int = 0
    backward_input: int = 0
    backward_weight: int = 0
    dense_equivalent: int = 0
    hash_adds: int = 0
    rehash_adds: int = 0
    hash_compares: int = 0
    rehash_compares: int = 0
    quality: int = 0
    bytes_moved: int = 0

    @property
    def total(self) -> int:
        """All MACs of every phase."""
        return sum(getattr(self, p) for p in PHASES)

    @property
    def share(self) -> float:
        """``total / dense_equivalent`` (nan when nothing was counted)."""
        return self.total / self.dense_equivalent if self.dense_equivalent else float("nan")

    def __add__(self, other: "MacCounts") -> "MacCounts":
        return MacCounts(**{f: getattr(self, f) + getattr(other, f) for f in _FIELDS})

    def __sub__(self, other: "MacCounts") -> "MacCounts":
        return MacCounts(**{f: getattr(self, f) - getattr(other, f) for f in _FIELDS})

    def as_dict(self) -> dict[str, int]:
        d = dataclasses.asdict(self)
        d["total"] = self.total
        return d


class MacCounter:
    """Running MAC totals of one layer; :meth:`counts` gives a frozen snapshot."""

    __slots__ = ("_c",)

    def __init__(self) -> None:
        self._c = dict.fromkeys(_FIELDS, 0)

    def add(self, phase: str, n) -> None:
        self._c[phase] += int(n)

    def counts(self) -> MacCounts:
        return MacCounts(**self._c)

    def reset(self) -> None:
        for k in self._c:
            self._c[k] = 0


def pair_macs(in_counts: np.ndarray | int, out_counts: np.ndarray) -> int:
    """``sum_b a_b * k_b`` as an exact Python int (``a_b`` may be one int for all rows)."""
    out_counts = np.asarray(out_counts, dtype=np.int64)
    if np.isscalar(in_counts) or np.ndim(in_counts) == 0:
        return int(in_counts) * int(out_counts.sum())
    return int(np.dot(np.asarray(in_counts, dtype=np.int64), out_counts))
