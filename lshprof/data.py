"""Generated data sets that need no download.

``gaussian_clusters`` is the demo problem: each class is a mixture of a few
Gaussian clusters in ``n_features`` dimensions, so it is learnable by a small MLP
but not by one straight cut. Everything is drawn from ``seed``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import ConfigError

__all__ = ["Split", "gaussian_clusters"]


class Split(NamedTuple):
    X_train: np.ndarray  # float32 [n_train, n_features]
    y_train: np.ndarray  # int64 [n_train]
    X_test: np.ndarray
    y_test: np.ndarray


def gaussian_clusters(n_train: int = 5000, n_test: int = 1000, *, n_features: int = 128,
                      n_classes: int = 10, clusters_per_class: int = 3, spread: float = 1.0,
                      noise: float = 2.5, seed: int = 0) -> Split:
    """Samples around ``n_classes * clusters_per_class`` centres.

    Centres are ``N(0, spread^2)`` per coordinate, samples add ``N(0, noise^2)`` per
    coordinate; a cluster's label is its class.
    Features are standardised with the training split's mean and deviation.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test), ("n_features", n_features),
                    ("n_classes", n_classes), ("clusters_per_class", clusters_per_class)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"gaussian_clusters: {name} must be a positive integer, got {v!r}")
    if n_classes < 2:
        raise ConfigError("gaussian_clusters: n_classes must be at least 2")
    rng = np.random.default_rng(seed)
    n_clusters = n_classes * clusters_per_class
    centres = rng.normal(0.0, spread, size=(n_clusters, n_features))

    def draw(n):
        c = rng.integers(0, n_clusters, size=n)
        x = centres[c] + rng.normal(0.0, noise, size=(n, n_features))
        return x, (c % n_classes).astype(np.int64)

    Xtr, ytr = draw(n_train)
    Xte, yte = draw(n_test)
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0) + 1e-8
    return Split(((Xtr - mu) / sd).astype(np.float32), ytr,
                 ((Xte - mu) / sd).astype(np.float32), yte)
