"""The baseline methods: every node (:class:`Dense`), random masks (:class:`Dropout`,
:class:`AdaptiveDropout`) and the largest activations (:class:`WTA`, :class:`TopK`).

Each is a :class:`~lshprof.nn.layers.base.Layer` that implements ``_choose``; the hash-
selected layer is :class:`lshprof.nn.lsh.layer.LSH`.
"""

from __future__ import annotations

import numpy as np

from lshprof import kernels as kern
from lshprof.errors import ConfigError
from lshprof.nn.active import ActiveSet
from lshprof.nn.checks import check_fraction, check_real
from lshprof.nn.layers.base import ACTIVATIONS, Layer, _sigmoid, active_budget

__all__ = ["Dense", "Dropout", "AdaptiveDropout", "WTA", "TopK"]


def _pattern_from_topk(z2d: np.ndarray, k: int) -> ActiveSet:
    b = z2d.shape[0]
    indices = np.empty(b * k, dtype=np.int32)
    kern.topk_rows(z2d, k, indices)
    indptr = np.arange(b + 1, dtype=np.int64) * k
    return ActiveSet(indptr, indices, np.zeros(b * k, dtype=z2d.dtype), z2d.shape[1], check=False)


# -- the methods -------------------------------------------------------------------------
class Dense(Layer):
    """Every node, every sample: ``act(x @ W.T + b)`` by BLAS products (the baseline).

    No parameters. Training and inference are the same computation.
    """

    method = "dense"

    def _choose(self, x, train):
        return None, None


class Dropout(Layer):
    """Vanilla dropout: each node of each sample is kept with probability ``p``.

    ``p`` (0, 1], default 0.5: the keep probability, so the expected active
    fraction is ``p``. The mask is drawn *before* computing: dropped nodes are
    never computed. Training output is ``act(z) / p`` at kept nodes (inverted
    dropout), so inference computes every node with no scaling.
    """

    method = "dropout"
    PARAMS = {"p": 0.5}

    def _check_params(self):
        self.params["p"] = check_fraction("p", self.params["p"], self.method)

    def _choose(self, x, train):
        if not train:
            return None, None
        mask = self.rng.random((x.batch, self.n_out), dtype=np.float32) < self.params["p"]
        return ActiveSet.from_mask(mask), None

    def _scale(self, train, z):
        return 1.0 / self.params["p"] if train else 1.0


class AdaptiveDropout(Layer):
    """Adaptive dropout, "standout" (Ba & Frey 2013), with weights shared with the layer.

    Each node is kept with probability ``sigmoid(alpha * z + beta)`` where ``z`` is its
    own pre-activation, so every pre-activation is computed first (phase ``select``).
    ``alpha`` default 1.0, ``beta`` default 0.0 (the active fraction follows from them
    and from the data). Training output is ``act(z)`` at kept nodes; inference
    computes every node and outputs the expectation ``act(z) * sigmoid(alpha*z + beta)``.
    """

    method = "adaptive_dropout"
    PARAMS = {"alpha": 1.0, "beta": 0.0}

    def _check_params(self):
        for k in ("alpha", "beta"):
            self.params[k] = check_real(k, self.params[k], self.method)

    def _keep_prob(self, z):
        return _sigmoid(self.params["alpha"] * z + self.params["beta"])

    def _choose(self, x, train):
        if not train:
            return None, None
        z2d = self._preact_full(x, "select")
        keep = self._keep_prob(z2d)
        mask = self.rng.random(z2d.shape, dtype=np.float32) < keep
        return ActiveSet.from_mask(mask), z2d

    def _scale(self, train, z):
        return 1.0 if train else self._keep_prob(z)

    def _scale_needs_z(self, train):
        return not train


class WTA(Layer):
    """Winner-take-all (Makhzani & Frey 2015): keep the largest activations.

    ``fraction`` (0, 1], default 0.05. ``mode``:

    * ``"sample"`` (default): per sample, the ``active_budget(fraction, n_out)``
      nodes with the largest activation (ties to the lowest node number). Every
      pre-activation is computed first (phase ``select``). Inference does the same.
    * ``"lifetime"``: per node, the ``active_budget(fraction, B)`` samples of the
      mini-batch with its largest activations, so a sample's active count varies.
      With a batch of 1 every node is kept. Inference computes every node (as the
      paper's fully-connected WTA does at test time).
    """

    method = "wta"
    PARAMS = {"fraction": 0.05, "mode": "sample"}
    MODES = ("sample", "lifetime")

    def _check_params(self):
        self.params["fraction"] = check_fraction("fraction", self.params["fraction"], self.method)
        if self.params["mode"] not in self.MODES:
            raise ConfigError(
                f"wta: unknown mode {self.params['mode']!r}; valid: {', '.join(self.MODES)}"
            )

    def _choose(self, x, train):
        lifetime = self.params["mode"] == "lifetime"
        if lifetime and not train:
            return None, None
        z2d = self._preact_full(x, "select")
        a2d = ACTIVATIONS[self.activation][0](z2d)
        if not lifetime:
            return _pattern_from_topk(a2d, active_budget(self.params["fraction"], self.n_out)), z2d
        kb = active_budget(self.params["fraction"], x.batch)
        per_node = _pattern_from_topk(np.ascontiguousarray(a2d.T), kb)
        return ActiveSet.from_mask(per_node.mask().T), z2d


class TopK(Layer):
    """The exact oracle: per sample, the ``active_budget(fraction, n_out)`` nodes with the
    largest *pre-activation* (ties to the lowest node number).

    ``fraction`` (0, 1], default 0.05. Every pre-activation is computed (phase
    ``select``). Inference selects the same way. This is what an ideal hash-based
    selection would return; it is the yardstick for the LSH layer.
    """

    method = "topk"
    PARAMS = {"fraction": 0.05}

    def _check_params(self):
        self.params["fraction"] = check_fraction("fraction", self.params["fraction"], self.method)

    def _choose(self, x, train):
        z2d = self._preact_full(x, "select")
        return _pattern_from_topk(z2d, active_budget(self.params["fraction"], self.n_out)), z2d
