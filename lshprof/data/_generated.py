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

from lshprof.errors import ConfigError

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


#: White-pixel counts of ``convex`` images are balanced in bins of this many pixels.
_CONVEX_BIN = 8
#: How :data:`_CONVEX_COUNT_HIST` was made: ``_convex_candidate_histograms(draws, seed)``.
_CONVEX_HIST_DRAWS, _CONVEX_HIST_SEED = 2_000_000, 2007
#: Number of candidate images of class 0 (first row) and class 1 (second row), out of
#: ``_CONVEX_HIST_DRAWS`` each, whose white-pixel count s has ``s // _CONVEX_BIN == b``,
#: for b = 0 .. 98. Regenerate it whenever the candidates' drawing rule changes.
_CONVEX_COUNT_HIST = (
    (0, 4, 523, 2793, 4499, 5820, 7007, 7878, 8780, 9662, 10091, 10924, 11611, 12033, 12788,
     13250, 13687, 13880, 14535, 14899, 15290, 15504, 16093, 16351, 16557, 16937, 17362,
     17535, 17690, 18004, 18553, 18475, 18832, 19188, 19118, 19907, 19787, 19904, 20099,
     20436, 20574, 20809, 21035, 21122, 21172, 21571, 21671, 21783, 21907, 22307, 22480,
     22356, 22803, 22752, 22796, 22999, 23005, 23010, 23327, 23482, 23829, 23559, 23559,
     23929, 23781, 24143, 24366, 24419, 24455, 24612, 24867, 24498, 24979, 25087, 25268,
     25130, 25211, 25666, 25768, 25755, 25753, 26234, 26518, 26500, 26938, 26877, 27335,
     27103, 27690, 27834, 27888, 28514, 28884, 29996, 30365, 31544, 34531, 47368, 0),
    (0, 0, 48280, 72828, 63875, 59377, 55185, 52851, 48816, 46219, 44408, 41900, 40217,
     38707, 37347, 36156, 34318, 33621, 31686, 31463, 29602, 30413, 28200, 27326, 27410,
     25685, 25335, 24210, 25444, 23450, 22733, 23239, 21240, 21734, 20627, 21346, 20021,
     19479, 19787, 18447, 18969, 17467, 18792, 17886, 16665, 17333, 16122, 16777, 15402,
     16983, 16071, 14690, 15443, 14178, 14819, 13820, 14864, 14247, 13366, 13702, 13203,
     12932, 12221, 13865, 12450, 11819, 12818, 11504, 11549, 11350, 12245, 11690, 10762,
     11524, 10885, 10499, 10609, 10921, 10482, 9725, 10404, 9973, 9508, 9404, 10319, 9119,
     9128, 9585, 8651, 9105, 8207, 9355, 8292, 8184, 8292, 7041, 7067, 4735, 0),
)


def _convex_candidate_histograms(draws: int, seed: int) -> tuple:
    """Histograms of the white-pixel counts (bins of ``_CONVEX_BIN`` pixels) of ``draws``
    unbalanced candidates of class 0, then of class 1, from ``default_rng(seed)``."""
    from lshprof.kernels import convex_candidate_counts

    rng = np.random.default_rng(seed)
    n_bins = IMAGE_SIDE * IMAGE_SIDE // _CONVEX_BIN + 1
    return tuple(tuple(int(v) for v in np.bincount(
        convex_candidate_counts(rng, label, draws, IMAGE_SIDE) // _CONVEX_BIN, minlength=n_bins))
        for label in (0, 1))


def _convex_keep_probabilities() -> np.ndarray:
    """float64 [2, bins]: a candidate of class c whose count falls in bin b is kept with
    probability min(p_0(b), p_1(b)) / p_c(b) (0 where p_c(b) = 0), p_c from the table."""
    hist = np.asarray(_CONVEX_COUNT_HIST, dtype=np.float64)
    both = hist.min(axis=0)
    return np.where(hist > 0, both / np.maximum(hist, 1.0), 0.0)


def convex(n_train: int = 8000, n_test: int = 50000, *, seed: int = 0) -> Split:
    """One white region; label 1 when it is convex, 0 when it is not.

    Each image's label is drawn first, 0 or 1 with equal probability; then a
    *candidate* of that class is drawn. A class-1 candidate is the intersection of a
    Geometric(0.195) number of random half-planes (each edge passes through a point
    uniform in [0, 27]^2 at an angle uniform in [0, 2 pi); pixel centres on the edge
    are inside), redrawn until it has at least 19 pixels. A class-0 candidate is the
    union of 2 to 4 such regions (Geometric(0.07) half-planes, at least 10 pixels
    each), redrawn until the union fails the digital convexity test
    (:func:`lshprof.kernels.is_digitally_convex`: some pixel outside the set
    lies in the convex hull of its pixel centres).

    White-pixel counts are balanced, as in the original set, and not only in the mean:
    left alone, class-0 candidates average about 470 white pixels and class-1 ones
    about 270, so counting pixels alone would name the class about 69% of the time.
    So each candidate is kept or rejected by its number s of white pixels: a
    candidate of class c is kept with probability ``min(p_0(b), p_1(b)) / p_c(b)``
    (0 where ``p_c(b) = 0``), ``b = s // 8``, where ``p_0`` and ``p_1`` are the
    classes' candidate count distributions over these 8-pixel bins; it is kept when
    the next ``rng.random()`` falls below that probability, and otherwise a new
    candidate of the same class is drawn from scratch. The kept images of both
    classes then follow one and the same distribution of binned counts, proportional
    to ``min(p_0, p_1)`` (mean about 380 white pixels); only the place of a count
    inside its bin can differ. Each class keeps about 62% of its candidates, and no
    target shared by the two classes could keep more of both. ``p_0`` and ``p_1`` are
    the fixed table ``_CONVEX_COUNT_HIST``, estimated from 2,000,000 candidates per
    class by ``_convex_candidate_histograms(2_000_000, seed=2007)``, so the two
    classes' binned distributions agree up to that estimate's error (about 1% in
    most bins, a few % in the sparse bins at the ends).

    Everything is drawn in order from ``numpy.random.default_rng(seed)``: the
    ``n_train + n_test`` labels, then the images one after another.

    Published split: 6,000 training + 2,000 validation images (``n_train=8000``) and
    50,000 test images.
    """
    from lshprof.kernels import draw_convex_images

    _check_sizes("convex", n_train, n_test)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    images = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    labels = rng.integers(0, 2, size=n).astype(np.int64)
    draw_convex_images(rng, labels, _convex_keep_probabilities(), _CONVEX_BIN, images)
    return _split(images, labels, n_train)
