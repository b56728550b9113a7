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

import math

import numpy as np

from lshprof import kernels as kern
from lshprof.errors import ConfigError
from lshprof.names import OPTIMIZERS as OPTIMIZER_NAMES
from lshprof.nn.layers.base import Layer

__all__ = ["Optimizer", "OPTIMIZERS", "make_optimizer"]


class Optimizer:
    """Base: holds per-parameter state for a fixed list of layers."""

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, float]] = {}
    n_state: ClassVar[int] = 0

    # What Hogwild workers (:mod:`lshprof.nn.hogwild`) share of an optimizer; every
    # instance attribute is in one of these (as for :class:`~lshprof.nn.layers.base.Layer`).
    #: shared as the same objects: the parameters and the state arrays (updated in place)
    HOGWILD_SHARED: ClassVar[tuple[str, ...]] = ("params", "_state")
    HOGWILD_THROUGH: ClassVar[tuple[str, ...]] = ()
    #: shared counts that every view increments with no other lock: a view's write adds
    #: its increment to the optimizer's under a lock (Adam's bias correction follows
    #: the global step count)
    HOGWILD_COUNTERS: ClassVar[tuple[str, ...]] = ("steps",)
    #: each view's own (:meth:`fresh_private_state`): the worker's views of the layers
    HOGWILD_PRIVATE: ClassVar[tuple[str, ...]] = ("layers",)
    HOGWILD_PRIVATE_RNGS: ClassVar[tuple[str, ...]] = ()

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
        if not math.isfinite(self.params["lr"]) or self.params["lr"] <= 0:
            raise ConfigError(f"optimizer {self.name}: lr must be a finite number > 0, got "
                              f"{self.params['lr']!r}")
        # eps keeps adagrad's and adam's division defined: at 0 an untouched row's zero
        # squared gradients give 0/0 = NaN
        if "eps" in self.params and not self.params["eps"] > 0:
            raise ConfigError(f"optimizer {self.name}: eps must be > 0, got {self.params['eps']!r}")
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

    def fresh_private_state(self, layers: Sequence[Layer]) -> dict[str, Any]:
        """What a Hogwild worker's view has of its own (:attr:`HOGWILD_PRIVATE`): the
        worker's ``layers`` (its views of :attr:`layers`, in the same order)."""
        layers = list(layers)
        if len(layers) != len(self.layers):
            raise ValueError(f"the optimizer has {len(self.layers)} layers, got {len(layers)} "
                             "views")
        return {"layers": layers}

    @property
    def state_bytes(self) -> int:
        """Bytes of the optimizer's state arrays (moments, momenta), all layers."""
        return int(sum(a.nbytes for st in self._state for t in st for a in t))


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
        kern.run(kern.sgd_momentum_rows, kern.sgd_momentum_rows_par, P, G, state[0], rows,
                 p["lr"], p["momentum"], p["l2"], work=rows.size * P.shape[1])


class AdaGrad(Optimizer):
    name = "adagrad"
    PARAMS = {"lr": 0.01, "momentum": 0.5, "eps": 1e-8, "l2": 0.0}
    n_state = 2

    def _update(self, P, G, state, rows):
        p = self.params
        kern.run(kern.adagrad_momentum_rows, kern.adagrad_momentum_rows_par, P, G, state[0],
                 state[1], rows, p["lr"], p["momentum"], p["l2"], p["eps"],
                 work=rows.size * P.shape[1])


class Adam(Optimizer):
    name = "adam"
    PARAMS = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "l2": 0.0}
    n_state = 2

    def _update(self, P, G, state, rows):
        p = self.params
        kern.run(kern.adam_rows, kern.adam_rows_par, P, G, state[0], state[1], rows, p["lr"],
                 p["beta1"], p["beta2"], p["eps"], p["l2"], self.steps,
                 work=rows.size * P.shape[1])


#: optimizer name -> class
OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (SGD, AdaGrad, Adam)}
if tuple(OPTIMIZERS) != OPTIMIZER_NAMES:
    raise ImportError(f"the optimizer registry {tuple(OPTIMIZERS)} is not "
                      f"lshprof.names.OPTIMIZERS {OPTIMIZER_NAMES}: add or remove the optimizer "
                      "in both places")


def make_optimizer(name: str, layers: Sequence[Layer], **params: Any) -> Optimizer:
    """Build an optimizer by name for ``layers``; unknown names list the valid ones."""
    cls = OPTIMIZERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return cls(layers, **params)
