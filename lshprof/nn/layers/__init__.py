"""Layers chosen by name, all behind one interface (:class:`~lshprof.nn.layers.base.Layer`).

>>> layer = make_layer("topk", 784, 1000, fraction=0.05, seed=1)   # doctest: +SKIP
>>> out = layer.forward(x)            # ActiveSet: 50 active nodes per sample
>>> gx = layer.backward(out.with_values(grad_at_active_nodes))

The interface and its conventions are in :mod:`lshprof.nn.layers.base`, the baseline
methods in :mod:`lshprof.nn.layers.baselines`, the hash-selected layer in
:mod:`lshprof.nn.lsh.layer`. :data:`LAYERS` maps each name of
:data:`lshprof.names.METHODS` to its class.

``LSH`` and ``LAYERS`` are loaded on first use: :mod:`lshprof.nn.lsh.layer` imports
:mod:`lshprof.nn.layers.base` (and so this package), so this package must not import it
while it is being imported itself.
"""

from __future__ import annotations

from typing import Any

from lshprof.errors import ConfigError
from lshprof.names import METHODS
from lshprof.nn.layers.base import ACTIVATIONS, Layer, LayerInput, active_budget
from lshprof.nn.layers.baselines import WTA, AdaptiveDropout, Dense, Dropout, TopK

__all__ = ["Layer", "LayerInput", "LAYERS", "ACTIVATIONS", "LSH", "make_layer",
           "active_budget", "Dense", "Dropout", "AdaptiveDropout", "WTA", "TopK"]


def _registry() -> dict[str, type[Layer]]:
    """:data:`LAYERS`, built (and checked against :data:`lshprof.names.METHODS`) once."""
    got = globals().get("LAYERS")
    if got is None:
        from lshprof.nn.lsh.layer import LSH

        got = {cls.method: cls for cls in (Dense, Dropout, AdaptiveDropout, WTA, TopK, LSH)}
        if tuple(got) != METHODS:
            raise ImportError(f"the layer registry {tuple(got)} is not lshprof.names.METHODS "
                              f"{METHODS}: add or remove the method in both places")
        globals().update(LAYERS=got, LSH=LSH)
    return got


def __getattr__(name: str):
    if name in ("LAYERS", "LSH"):
        _registry()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"LAYERS", "LSH"})


def make_layer(method: str, n_in: int, n_out: int, *, activation: str = "relu",
               seed: int = 0, dtype="float32", **params: Any) -> Layer:
    """Build a layer by method name; see each class's docstring for its parameters.

    Raises :class:`~lshprof.errors.ConfigError` (a ``ValueError``) listing the valid
    methods or parameters when one is unknown.
    """
    layers = _registry()
    cls = layers.get(method)
    if cls is None:
        raise ConfigError(f"unknown method {method!r}; valid methods: {', '.join(layers)}")
    return cls(n_in, n_out, activation=activation, seed=seed, dtype=dtype, **params)
