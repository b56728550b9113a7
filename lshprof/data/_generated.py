"""Generated data sets that need no download. Everything is drawn from ``seed``.

``gaussian_clusters`` is the demo problem: each class is a mixture of a few
Gaussian clusters in ``n_features`` dimensions, so it is learnable by a small MLP
but not by one straight cut.

``rectangles`` and ``convex`` are the two generated benchmarks of Larochelle et
al., "An empirical evaluation of deep architectures on problems with many factors
of variation" (ICML 2007), that the hashing paper trains on: 28 x 28 binary
images (784 features in {0, 1}), two classes, drawn by the rules the paper
describes (see each function).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import ConfigError

__all__ = ["Split", "gaussian_clusters", "rectangles", "convex", "IMAGE_SIDE"]

#: Side of the Larochelle et al. images, in pixels.
IMAGE_SIDE = 28


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


def _check_sizes(name: str, n_train, n_test) -> None:
    for arg, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{name}: {arg} must be a positive integer, got {v!r}")


def _split(images: np.ndarray, labels: np.ndarray, n_train: int) -> Split:
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    return Split(X[:n_train], labels[:n_train], X[n_train:], labels[n_train:])


def rectangles(n_train: int = 1200, n_test: int = 50000, *, seed: int = 0) -> Split:
    """One white rectangle outline on black; label 1 when it is taller than wide, else 0.

    Height and width are drawn uniformly from 2..28 pixels and redrawn while they
    differ by fewer than 3; the top-left corner is uniform over the positions where
    the whole rectangle fits. Published split: 1,000 training + 200 validation
    images (``n_train=1200``) and 50,000 test images.
    """
    _check_sizes("rectangles", n_train, n_test)
    rng = np.random.default_rng(seed)
    n, side = n_train + n_test, IMAGE_SIDE
    images = np.zeros((n, side, side), dtype=bool)
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        while True:
            h, w = (int(v) for v in rng.integers(2, side + 1, size=2))
            if abs(h - w) >= 3:
                break
        top = int(rng.integers(0, side - h + 1))
        left = int(rng.integers(0, side - w + 1))
        img = images[i]
        img[top, left:left + w] = img[top + h - 1, left:left + w] = True
        img[top:top + h, left] = img[top:top + h, left + w - 1] = True
        labels[i] = int(h > w)
    return _split(images, labels, n_train)


_GRID = np.stack(np.meshgrid(np.arange(IMAGE_SIDE), np.arange(IMAGE_SIDE), indexing="xy"), -1)


def _convex_region(rng, p: float, min_pixels: int) -> np.ndarray:
    """Pixels inside the intersection of Geometric(p) random half-planes (at least
    ``min_pixels`` of them), as a bool [28, 28]; each half-plane's edge passes
    through a uniform point of the image at a uniform angle."""
    while True:
        k = int(rng.geometric(p))
        pts = rng.uniform(0, IMAGE_SIDE - 1, size=(k, 2))
        theta = rng.uniform(0, 2 * np.pi, size=k)
        normal = np.stack([np.cos(theta), np.sin(theta)], -1)
        # pixel (x, y) is kept when (pixel - point) . normal <= 0 for every half-plane
        d = np.einsum("yxc,kc->yxk", _GRID, normal) - np.einsum("kc,kc->k", pts, normal)
        region = (d <= 0).all(axis=-1)
        if region.sum() >= min_pixels:
            return region


def convex(n_train: int = 8000, n_test: int = 50000, *, seed: int = 0) -> Split:
    """One white region; label 1 when it is convex, 0 when it is not.

    A convex image is the intersection of a Geometric(0.195) number of random
    half-planes, redrawn until it has at least 19 pixels. A non-convex image is the
    union of 2 to 4 such regions (Geometric(0.07) half-planes, at least 10 pixels
    each), redrawn until the union fails the digital convexity test
    (:func:`lshprof.kernels._images.is_digitally_convex`: some pixel outside the set
    lies in the convex hull of its pixel centres). Classes are drawn with equal
    probability. Published split: 6,000 training + 2,000 validation images
    (``n_train=8000``) and 50,000 test images. (The original set also balanced the
    two classes' mean number of white pixels; this generator does not.)
    """
    from .kernels._images import is_digitally_convex

    _check_sizes("convex", n_train, n_test)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    images = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    labels = rng.integers(0, 2, size=n).astype(np.int64)
    for i in range(n):
        if labels[i]:
            images[i] = _convex_region(rng, 0.195, 19)
            continue
        while True:
            parts = int(rng.integers(2, 5))
            img = np.zeros((IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
            for _ in range(parts):
                img |= _convex_region(rng, 0.07, 10)
            if not is_digitally_convex(img):
                images[i] = img
                break
    return _split(images, labels, n_train)
