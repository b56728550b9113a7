"""Extreme classification with planted structure: very many classes, few samples each.

This is the shape of problem SLIDE-style hashed output layers are built for: the output
layer is wide (tens of thousands of classes or more), class frequencies have a long
tail, and classes come in groups of related ones. Everything is drawn from ``seed``:

1. ``n_clusters`` cluster centres: random unit vectors in ``n_features`` dimensions.
2. Classes are dealt to clusters evenly (a seeded permutation of the classes, class
   at position k going to cluster ``k % n_clusters``), so every cluster gets
   ``n_classes // n_clusters`` or one more.
3. Class prototype = its cluster's centre + an offset of ``N(0, spread^2 / n_features)``
   per coordinate, scaled to unit length. With the default ``spread = 0.2`` two classes
   of one cluster lie about 0.28 apart (cosine about 0.96); classes of different
   clusters about 1.4 (cosine about 0).
4. Frequencies follow a Zipf law: a seeded permutation of the classes gives each class
   a rank r = 1 .. n_classes, and a sample's class is r with probability proportional
   to ``r ** -zipf`` (``zipf = 0``: uniform).
5. A sample = its class prototype + ``N(0, noise^2 / n_features)`` per coordinate, so the
   noise vector has length about ``noise`` against prototypes of length 1.

Training and test samples are drawn alike, from separate streams. The nearest prototype
(the largest dot product with the unit prototypes) is the natural ceiling for a
classifier; it mostly errs between classes of one cluster. At the defaults
(128 features, noise 0.5, spread 0.2, seed 0) it names 94.7% of the 10,000 test samples
correctly (see :func:`nearest_prototype`; 64% at noise 0.75, 38% at noise 1), while with
Zipf 1 only 38% of the 100,000 classes appear among the 200,000 training samples, and
12% of test samples belong to a class never seen in training. A learner has to find
prototypes from a handful of samples in the tail, so it stays well below the ceiling.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from lshprof.errors import ConfigError
from lshprof.data._generated import Split

__all__ = ["synthetic_xc", "planted_structure", "nearest_prototype", "Structure",
           "SPREAD"]

#: Default deviation (whole-vector length) of a class's offset from its cluster centre.
SPREAD = 0.2
#: Samples drawn at once: bounds the working memory.
_CHUNK = 32768


class Structure(NamedTuple):
    prototypes: np.ndarray  # float32 [n_classes, n_features], unit rows
    cluster: np.ndarray  # int64 [n_classes]: the cluster of each class
    probability: np.ndarray  # float64 [n_classes]: how likely a sample is of each class


def _check_int(name: str, v, lowest: int = 1) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lowest:
        raise ConfigError(f"synthetic_xc: {name} must be an integer >= {lowest}, got {v!r}")


def _check_real(name: str, v, positive: bool = False) -> None:
    bad = isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) \
        or not math.isfinite(v) or v < 0 or (positive and v == 0)
    if bad:
        raise ConfigError(f"synthetic_xc: {name} must be a finite number "
                          f"{'> 0' if positive else '>= 0'}, got {v!r}")


def _check_structure(n_features, n_classes, n_clusters, zipf, spread) -> None:
    _check_int("n_features", n_features)
    _check_int("n_classes", n_classes, 2)
    _check_int("n_clusters", n_clusters)
    if n_clusters > n_classes:
        raise ConfigError(f"synthetic_xc: n_clusters ({n_clusters:,}) must not exceed "
                          f"n_classes ({n_classes:,})")
    _check_real("zipf", zipf)
    _check_real("spread", spread, positive=True)


def _unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _structure(rng: np.random.Generator, n_features: int, n_classes: int, n_clusters: int,
               zipf: float, spread: float) -> tuple[Structure, np.ndarray, np.ndarray]:
    """The structure, plus the classes in rank order and the cumulative probability by
    rank (what sampling needs)."""
    centres = _unit_rows(rng, n_clusters, n_features)
    cluster = np.empty(n_classes, dtype=np.int64)
    cluster[rng.permutation(n_classes)] = np.arange(n_classes, dtype=np.int64) % n_clusters
    protos = np.empty((n_classes, n_features), dtype=np.float32)
    scale = np.float32(spread / math.sqrt(n_features))
    for lo in range(0, n_classes, _CHUNK):
        hi = min(n_classes, lo + _CHUNK)
        p = rng.standard_normal((hi - lo, n_features), dtype=np.float32)
        p *= scale
        p += centres[cluster[lo:hi]]
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        protos[lo:hi] = p
    by_rank = rng.permutation(n_classes).astype(np.int64)
    weight = np.arange(1, n_classes + 1, dtype=np.float64) ** -float(zipf)
    cdf = np.cumsum(weight)
    cdf /= cdf[-1]
    probability = np.empty(n_classes)
    probability[by_rank] = weight / weight.sum()
    return Structure(protos, cluster, probability), by_rank, cdf


def planted_structure(n_features: int = 128, n_classes: int = 100000, n_clusters: int = 1000,
                      zipf: float = 1.0, *, spread: float = SPREAD, seed: int = 0) -> Structure:
    """The prototypes, clusters and class probabilities :func:`synthetic_xc` draws its
    samples from with the same arguments (for measuring a ceiling, or plotting)."""
    _check_structure(n_features, n_classes, n_clusters, zipf, spread)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    return _structure(rng, n_features, n_classes, n_clusters, zipf, spread)[0]


def _draw(rng: np.random.Generator, n: int, structure: Structure, by_rank: np.ndarray,
          cdf: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    protos = structure.prototypes
    d = protos.shape[1]
    X = np.empty((n, d), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    scale = np.float32(noise / math.sqrt(d))
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        rank = np.searchsorted(cdf, rng.random(hi - lo), side="right")
        labels = by_rank[np.minimum(rank, len(cdf) - 1)]
        x = rng.standard_normal((hi - lo, d), dtype=np.float32)
        x *= scale
        x += protos[labels]
        X[lo:hi] = x
        y[lo:hi] = labels
    return X, y


def synthetic_xc(n_train: int = 200000, n_test: int = 10000, n_features: int = 128,
                 n_classes: int = 100000, n_clusters: int = 1000, zipf: float = 1.0,
                 noise: float = 0.5, *, spread: float = SPREAD, seed: int = 0) -> Split:
    """``n_train`` training and ``n_test`` test samples (float32 [n, n_features], int64
    labels in 0 .. n_classes - 1) drawn by the rules in the module text.

    The structure comes from ``seed``'s first child stream, training samples from the
    second, test samples from the third: the prototypes do not depend on the sizes, and
    the test set does not depend on ``n_train``. Memory: the prototypes
    (``n_classes * n_features`` float32, 51 MB at the defaults) and the two splits.
    """
    _check_int("n_train", n_train)
    _check_int("n_test", n_test)
    _check_structure(n_features, n_classes, n_clusters, zipf, spread)
    _check_real("noise", noise)
    ss_structure, ss_train, ss_test = np.random.SeedSequence(seed).spawn(3)
    structure, by_rank, cdf = _structure(np.random.default_rng(ss_structure), n_features,
                                         n_classes, n_clusters, zipf, spread)
    X_train, y_train = _draw(np.random.default_rng(ss_train), n_train, structure, by_rank,
                             cdf, noise)
    X_test, y_test = _draw(np.random.default_rng(ss_test), n_test, structure, by_rank, cdf,
                           noise)
    return Split(X_train, y_train, X_test, y_test)


def nearest_prototype(X: np.ndarray, prototypes: np.ndarray, *, chunk: int = 2048
                      ) -> np.ndarray:
    """int64 [n]: for each row of ``X``, the class whose (unit) prototype has the largest
    dot product with it, i.e. the nearest prototype."""
    X = np.asarray(X, dtype=np.float32)
    P = np.asarray(prototypes, dtype=np.float32)
    out = np.empty(X.shape[0], dtype=np.int64)
    for lo in range(0, X.shape[0], chunk):
        out[lo:lo + chunk] = np.argmax(X[lo:lo + chunk] @ P.T, axis=1)
    return out
