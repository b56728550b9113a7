"""Optimizers with sparse (row-wise) updates, chosen by name.

A step updates only the weight rows and biases of nodes a layer marked in
``touched`` during the batch, then clears their gradients. Rows that were not
active keep their weights *and* their optimizer state as they were ("lazy"
state): momentum and moment estimates of a row advance only when the row is used.

* ``sgd``: SGD with momentum ``v = mu*v + g; w -= lr*v`` (default lr 0.05, momentum 0.9).
* ``adagrad``: AdaGrad with momentum, as the LSH paper's public code trains:
  ``h += g^2; v = mu*v + lr*g/(sqrt(h)+eps); w -= v`` (default lr 0.01, momentum 0.5).
* ``adam``: Adam (Kingma & Ba 2015), bias correction by the global step (default lr 1e-3).

``l2`` adds ``l2 * w`` to the gradient of every updated row.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from lshprof import kernels as K
from lshprof.errors import ConfigError
from lshprof.nn.layers import Layer

__all__ = ["Optimizer", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base: holds per-parameter state for a fixed list of layers."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, float]] = {}
    n_state: ClassVar[int] = 0

    def __init__(self, layers: Sequence[Layer], **params):
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            raise ConfigError(
                f"unknown parameter {', '.join(map(repr, unknown))} for optimizer {self.name!r}; "
                f"valid: {', '.join(self.PARAMS)}"
            )
        self.params = {**self.PARAMS, **params}
        for k, v in self.params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ConfigError(f"optimizer {self.name}: {k} must be a non-negative number, got {v!r}")
        if self.params["lr"] <= 0:
            raise ConfigError(f"optimizer {self.name}: lr must be > 0")
        for k in ("momentum", "beta1", "beta2"):
            if self.params.get(k, 0.0) >= 1:
                raise ConfigError(f"optimizer {self.name}: {k} must be below 1, got {self.params[k]}")
        self.layers = list(layers)
        self.steps = 0
        self._state = [
            [tuple(np.zeros_like(p) for _ in range(self.n_state)) for p in _params(layer)]
            for layer in self.layers
        ]

    def step(self) -> None:
        """Update the touched rows of every layer and clear their gradients."""
        self.steps += 1
        for layer, states in zip(self.layers, self._state):
            rows = np.flatnonzero(layer.touched)
            if rows.size:
                for (P, G), state in zip(zip(_params(layer), _grads(layer)), states):
                    self._update(P, G, state, rows)
                # traffic: each updated row's weights, gradients and state read and written
                layer.macs.add("bytes_moved", layer.dtype.itemsize * rows.size
                               * (layer.n_in + 1) * 2 * (2 + self.n_state))
            layer.touched.fill(False)

    def _update(self, P, G, state, rows) -> None:
        raise NotImplementedError


def _params(layer: Layer):
    return layer.W, layer.b.reshape(-1, 1)


def _grads(layer: Layer):
    return layer.grad_W, layer.grad_b.reshape(-1, 1)


class SGD(Optimizer):
    name = "sgd"
    PARAMS = {"lr": 0.05, "momentum": 0.9, "l2": 0.0}
    n_state = 1

    def _update(self, P, G, state, rows):
        p = self.params
        K.run(K.sgd_momentum_rows, K.sgd_momentum_rows_par, P, G, state[0], rows, p["lr"],
              p["momentum"], p["l2"], work=rows.size * P.shape[1])


class AdaGrad(Optimizer):
    name = "adagrad"
    PARAMS = {"lr": 0.01, "momentum": 0.5, "eps": 1e-8, "l2": 0.0}
    n_state = 2

    def _update(self, P, G, state, rows):
        p = self.params
        K.run(K.adagrad_momentum_rows, K.adagrad_momentum_rows_par, P, G, state[0], state[1],
              rows, p["lr"], p["momentum"], p["l2"], p["eps"], work=rows.size * P.shape[1])


class Adam(Optimizer):
    name = "adam"
    PARAMS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "l2": 0.0}
    n_state = 2

    def _update(self, P, G, state, rows):
        p = self.params
        K.run(K.adam_rows, K.adam_rows_par, P, G, state[0], state[1], rows, p["lr"],
              p["beta1"], p["beta2"], p["eps"], p["l2"], self.steps,
              work=rows.size * P.shape[1])


#: optimizer name -> class
OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (SGD, AdaGrad, Adam)}


def make_optimizer(name: str, layers: Sequence[Layer], **params: Any) -> Optimizer:
    """Build an optimizer by name for ``layers``; unknown names list the valid ones."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return cls(layers, **params)
