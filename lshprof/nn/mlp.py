"""A small multi-layer perceptron of lshprof layers.

Any method per hidden layer; the output layer is dense by default (softmax over
every class). A sparse output layer (e.g. top-k or, later, LSH over 100,000
classes) is trained with the true class forced into its active set and the
softmax taken over the active classes only.

The trainer is :mod:`lshprof.nn.training`; :func:`train`, :func:`evaluate`,
:class:`EpochStats` and :data:`MODES` are re-exported here for the callers that import
them from this module (the trainer never imports this one, so there is no cycle).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lshprof import kernels as kern
from lshprof.errors import ConfigError
from lshprof.measure.macs import MacCounts
from lshprof.nn.active import ActiveSet
from lshprof.nn.layers import Layer, make_layer
from lshprof.nn.training import MODES, EpochStats, evaluate, train  # re-exported

__all__ = ["MLP", "EpochStats", "train", "evaluate", "MODES"]


class MLP:
    """Layers applied in order; ``layers[-1]`` gives the class scores (logits)."""

    def __init__(self, layers: Sequence[Layer]):
        layers = list(layers)
        if not layers:
            raise ConfigError("an MLP needs at least one layer")
        for a, b in zip(layers, layers[1:]):
            if a.n_out != b.n_in:
                raise ConfigError(
                    f"layer widths do not chain: {a!r} gives {a.n_out} but {b!r} takes {b.n_in}"
                )
        if layers[-1].activation != "identity":
            raise ConfigError("the output layer's activation must be 'identity' (softmax is in the loss)")
        self.layers = layers

    @classmethod
    def build(cls, n_in: int, hidden: Sequence[int], n_classes: int, *,
              method: str | Sequence[str] = "dense",
              params: dict | Sequence[dict] | None = None,
              output_method: str = "dense", output_params: dict | None = None,
              activation: str = "relu", seed: int = 0, dtype="float32") -> "MLP":
        """Hidden layers of widths ``hidden`` (one method for all, or one per layer)."""
        hidden = list(hidden)
        if not hidden and isinstance(method, str) and (method != "dense" or params):
            # a method (or parameters) for the hidden layers and none to apply them to:
            # say so, rather than build a dense network silently
            if method != "dense":
                raise ConfigError(
                    f"MLP.build: method={method!r} is for the hidden layers but hidden=[] has "
                    f"none; give their widths (hidden=[...]) or make the output layer "
                    f"{method} (output_method={method!r}; in a scenario: [network] "
                    f'apply_to = "output")')
            raise ConfigError("MLP.build: params are for the hidden layers but hidden=[] has "
                              "none; give their widths (hidden=[...]) or pass them as "
                              "output_params")
        methods = [method] * len(hidden) if isinstance(method, str) else list(method)
        if params is None or isinstance(params, dict):
            params = [dict(params or {}) for _ in hidden]
        params = list(params)
        if len(methods) != len(hidden) or len(params) != len(hidden):
            raise ConfigError(
                f"{len(hidden)} hidden layers need as many methods and parameter sets, got "
                f"{len(methods)} and {len(params)}"
            )
        seeds = [int(s.generate_state(1)[0]) for s in
                 np.random.SeedSequence(seed).spawn(len(hidden) + 1)]
        widths = [n_in] + hidden
        layers = [make_layer(m, widths[i], widths[i + 1], activation=activation, seed=seeds[i],
                             dtype=dtype, **p) for i, (m, p) in enumerate(zip(methods, params))]
        layers.append(make_layer(output_method, widths[-1], n_classes, activation="identity",
                                 seed=seeds[-1], dtype=dtype, **(output_params or {})))
        return cls(layers)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_classes(self) -> int:
        return self.layers[-1].n_out

    def forward(self, x, *, train: bool = True, labels=None,
                active: Sequence[ActiveSet | None] | None = None) -> ActiveSet:
        """Logits of the batch ``x`` as an ActiveSet. ``labels`` (training with a sparse
        output layer) are forced into the output's active set; ``active`` holds one
        fixed active set (or None) per layer."""
        if active is not None and len(active) != len(self.layers):
            raise ConfigError(f"active needs one entry per layer ({len(self.layers)})")
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            include = labels if (i == last and labels is not None and layer.method != "dense") else None
            h = layer.forward(h, train=train, active=None if active is None else active[i],
                              include=include)
        return h

    def backward(self, grad: ActiveSet) -> None:
        """Back-propagate the loss gradient through every layer (not into the input)."""
        for i in range(len(self.layers) - 1, -1, -1):
            grad = self.layers[i].backward(grad, input_grad=i > 0)

    def loss(self, logits: ActiveSet, y: np.ndarray):
        """Mean softmax cross-entropy; returns ``(loss, grad ActiveSet, n_correct)``."""
        B = logits.batch_size
        full = logits.dense_view()
        if full is not None:
            # in the layer's dtype and in place (a 128 x 100,000 output stays cheap); the
            # row sums and the loss accumulate in float64
            rows = np.arange(B)
            z = full - full.max(axis=1, keepdims=True)
            z_y = z[rows, y].astype(np.float64)
            np.exp(z, out=z)
            s = z.sum(axis=1, dtype=np.float64)
            loss = float((np.log(s) - z_y).mean())
            correct = int((full.argmax(axis=1) == y).sum())
            z *= (1.0 / (s * B)).astype(z.dtype)[:, None]
            z[rows, y] -= z.dtype.type(1.0 / B)
            return loss, ActiveSet.full(z), correct
        g = np.empty(logits.nnz, dtype=np.float64)
        losses, ok, missing = kern.csr_softmax_xent(logits.indptr, logits.indices,
                                                    logits.values.astype(np.float64), y, g)
        if missing:
            raise ConfigError(
                f"{missing} samples' true class is not in the output active set; pass labels= "
                "to forward when training a sparse output layer"
            )
        return float(losses.mean()), logits.with_values((g / B).astype(logits.values.dtype)), int(ok.sum())

    def predict(self, x: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Class with the largest logit (inference mode); -1 where no class was active."""
        out = []
        for s in range(0, x.shape[0], batch_size):
            logits = self.forward(x[s:s + batch_size], train=False)
            full = logits.dense_view()
            if full is not None:
                out.append(full.argmax(axis=1))
            else:
                out.append(kern.csr_argmax(logits.indptr, logits.indices, logits.values))
        return np.concatenate(out)

    def macs(self) -> list[MacCounts]:
        """MACs counted so far, one entry per layer."""
        return [layer.macs.counts() for layer in self.layers]

    def total_macs(self) -> MacCounts:
        return sum(self.macs(), MacCounts())

    def __repr__(self) -> str:
        return "MLP(" + ", ".join(repr(layer) for layer in self.layers) + ")"
