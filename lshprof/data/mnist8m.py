"""MNIST8M style: an endless, seeded stream of elastically deformed and shifted digits.

Loosli, Canu & Bottou ("Training invariant support vector machines using selective
sampling", 2007) grew MNIST's 60,000 training digits into 8.1 million by random
elastic deformations and small translations. This module draws such a stream on the
fly, so no 8-million-image file is needed and any stretch of it can be rebuilt alone.

The deformation follows Simard, Steinkraus & Platt ("Best practices for convolutional
neural networks applied to visual document analysis", 2003): each pixel gets a random
displacement, uniform in [-1, 1] along each axis; both displacement fields are smoothed
by a Gaussian of deviation ``sigma`` pixels and multiplied by ``alpha``; the output
pixel at (r, c) then takes the base image's value at (r + dy, c + dx), read by
bilinear interpolation (0 outside the image). The fields are not normalised after
smoothing, as in the usual implementations, so with ``sigma = 4`` and ``alpha = 34``
a pixel moves by about 1.4 pixels (deviation) along each axis in the middle of the image
(a little more near the edges, where the mirrored field averages less), smoothly.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
from numba import njit

from lshprof._config import NJIT_SERIAL
from lshprof.errors import ConfigError, DataError
from lshprof.data._generated import Split, _check_sizes

__all__ = ["DeformedStream", "gaussian_matrix", "mnist8m", "preflight", "N_TEST"]

#: Images in the standard MNIST test file.
N_TEST = 10000

#: The Gaussian kernel is cut off at this many deviations (as scipy's default).
_TRUNCATE = 4.0
#: Images deformed at once: bounds the working memory (about 120 KB per image).
_CHUNK = 1024
#: Tags that keep the random streams of deformations and of pass orders apart.
_TAG_DEFORM, _TAG_ORDER = 0x8E1A, 0x0D3E


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """float64 [size, size] ``G`` such that ``G @ v`` is ``v`` smoothed by a Gaussian of
    deviation ``sigma`` (cut at 4 deviations, weights summing to 1), with the signal
    mirrored at both ends (``d c b a | a b c d | d c b a``). A 2-D field ``F`` is then
    smoothed, separably, as ``G @ F @ G.T``."""
    radius = max(1, int(math.ceil(_TRUNCATE * sigma)))
    k = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (k / sigma) ** 2)
    w /= w.sum()
    g = np.zeros((size, size))
    rows = np.repeat(np.arange(size), k.size)
    src = (np.arange(size)[:, None] + k[None, :]) % (2 * size)
    src = np.where(src >= size, 2 * size - 1 - src, src).ravel()
    np.add.at(g, (rows, src), np.tile(w, size))
    return g


@njit(**NJIT_SERIAL)
def _warp(base, index, disp, shift, h, w, out):
    """``out[s, (r, c)]`` = bilinear read of image ``base[index[s]]`` (flattened
    ``h x w``) at row ``r - shift[s, 0] + disp[s, 0, p]``, column ``c - shift[s, 1] +
    disp[s, 1, p]`` (``p = r * w + c``); pixels outside the image count as 0; clipped
    to [0, 1]."""
    for s in range(index.shape[0]):
        img = base[index[s]]
        ty = shift[s, 0]
        tx = shift[s, 1]
        for r in range(h):
            for c in range(w):
                p = r * w + c
                sr = (r - ty) + disp[s, 0, p]
                sc = (c - tx) + disp[s, 1, p]
                fr = np.floor(sr)
                fc = np.floor(sc)
                ar = sr - fr
                ac = sc - fc
                r0 = int(fr)
                c0 = int(fc)
                v = 0.0
                if 0 <= r0 < h:
                    if 0 <= c0 < w:
                        v += (1.0 - ar) * (1.0 - ac) * img[r0 * w + c0]
                    if 0 <= c0 + 1 < w:
                        v += (1.0 - ar) * ac * img[r0 * w + c0 + 1]
                if 0 <= r0 + 1 < h:
                    if 0 <= c0 < w:
                        v += ar * (1.0 - ac) * img[(r0 + 1) * w + c0]
                    if 0 <= c0 + 1 < w:
                        v += ar * ac * img[(r0 + 1) * w + c0 + 1]
                out[s, p] = min(1.0, max(0.0, v))


def _check_count(name: str, v, lowest: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lowest:
        kind = "a positive integer" if lowest >= 1 else "an integer >= 0"
        raise ConfigError(f"DeformedStream: {name} must be {kind}, got {v!r}")
    return int(v)


class DeformedStream:
    """An endless sequence of deformed copies of ``images``.

    ``images``: uint8 (0-255) or float (0-1) [n, height, width]; ``labels``: [n] integers.
    Sample ``i`` (any integer >= 0) is base image ``order(i // n)[i % n]``, where
    ``order(p)`` is a permutation of the n images drawn from ``(seed, p)`` when
    ``shuffle`` is true (each pass visits every image once, in its own order) and the
    identity otherwise, deformed by an elastic field (``alpha``, ``sigma``; see the module
    text) and then translated by ``(ty, tx)`` pixels, each uniform over
    ``-max_shift .. max_shift``: content moves down by ``ty`` and right by ``tx``.

    All of sample ``i``'s random numbers come from block ``i`` of one counter-based
    Philox stream keyed by ``seed``: ``2 * height * width`` uniforms for the two fields,
    then two for the shift. A sample is therefore the same whichever slice it is drawn
    in, and never depends on the samples before it.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, alpha: float = 34.0,
                 sigma: float = 4.0, max_shift: int = 2, seed: int = 0,
                 shuffle: bool = True):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3 or images.shape[0] == 0 or min(images.shape[1:]) == 0:
            raise ConfigError(f"DeformedStream: images must be [n, height, width] with n >= 1, "
                              f"got shape {images.shape}")
        if images.dtype == np.uint8:
            base = images.astype(np.float32) / np.float32(255)
        elif images.dtype.kind in "fiub":
            base = images.astype(np.float32)
            if not np.all(np.isfinite(base)) or base.min() < 0 or base.max() > 1:
                raise ConfigError("DeformedStream: float images must hold values in [0, 1] "
                                  "(uint8 images are scaled by 1/255)")
        else:
            raise ConfigError(f"DeformedStream: images must be numeric, got {images.dtype}")
        if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
            raise ConfigError(f"DeformedStream: labels must be integers [{images.shape[0]}], "
                              f"got {labels.dtype} {labels.shape}")
        for name, v in (("alpha", alpha), ("sigma", sigma)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"DeformedStream: {name} must be a finite number, got {v!r}")
        if alpha < 0:
            raise ConfigError(f"DeformedStream: alpha must be >= 0, got {alpha!r}")
        if sigma <= 0:
            raise ConfigError(f"DeformedStream: sigma must be > 0, got {sigma!r}")
        self.max_shift = _check_count("max_shift", max_shift, 0)
        self.seed = _check_count("seed", seed, 0)
        self.alpha, self.sigma, self.shuffle = float(alpha), float(sigma), bool(shuffle)
        self.n, self.height, self.width = images.shape
        self._base = base.reshape(self.n, -1)
        self._labels = labels.astype(np.int64)
        self._gy = gaussian_matrix(self.height, self.sigma)
        self._gx_t = gaussian_matrix(self.width, self.sigma).T.copy()
        pixels = self.height * self.width
        # uniforms per sample, rounded up to whole Philox blocks of four 64-bit outputs
        self._per_sample = -(-(2 * pixels + 2) // 4) * 4
        self._key = np.random.SeedSequence([self.seed, _TAG_DEFORM]).generate_state(2, np.uint64)
        self._orders: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def features(self) -> int:
        """Pixels per sample (the length of each row :meth:`sample` returns)."""
        return self.height * self.width

    def _order(self, p: int) -> np.ndarray:
        """The base-image order of pass ``p`` (a few recent passes are kept)."""
        order = self._orders.get(p)
        if order is None:
            rng = np.random.default_rng([self.seed, _TAG_ORDER, p])
            order = rng.permutation(self.n)
            self._orders[p] = order
            if len(self._orders) > 8:
                self._orders.popitem(last=False)
        else:
            self._orders.move_to_end(p)
        return order

    def base_index(self, start: int, count: int) -> np.ndarray:
        """int64 [count]: the base image of samples ``start .. start + count - 1``."""
        start = _check_count("start", start, 0)
        count = _check_count("count", count, 0)
        if not self.shuffle:
            first = start % self.n
            return ((first + np.arange(count, dtype=np.int64)) % self.n).astype(np.int64)
        out = np.empty(count, dtype=np.int64)
        done = 0
        while done < count:
            i = start + done
            p, j = divmod(i, self.n)
            take = min(count - done, self.n - j)
            out[done:done + take] = self._order(p)[j:j + take]
            done += take
        return out

    def sample(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``start .. start + count - 1``: float32 [count, height * width] in [0, 1]
        and their int64 labels (the labels of their base images)."""
        index = self.base_index(start, count)
        X = np.empty((count, self.features), dtype=np.float32)
        for lo in range(0, count, _CHUNK):
            hi = min(count, lo + _CHUNK)
            X[lo:hi] = self._deform(start + lo, index[lo:hi])
        return X, self._labels[index]

    def _deform(self, first: int, index: np.ndarray) -> np.ndarray:
        m, h, w = index.size, self.height, self.width
        pixels = h * w
        rng = np.random.Generator(np.random.Philox(key=self._key,
                                                   counter=first * (self._per_sample // 4)))
        u = rng.random((m, self._per_sample))
        fields = (u[:, :2 * pixels] * 2.0 - 1.0).reshape(m * 2, h, w)
        shift = np.floor(u[:, 2 * pixels:2 * pixels + 2] * (2 * self.max_shift + 1))
        shift = np.minimum(shift, 2 * self.max_shift) - self.max_shift  # [m, 2]: ty, tx
        if self.alpha > 0:
            disp = (self._gy @ fields @ self._gx_t).reshape(m, 2, pixels)
            disp *= self.alpha
        else:
            disp = np.zeros((m, 2, pixels))
        out = np.empty((m, pixels), dtype=np.float32)
        _warp(self._base, index, disp, shift.astype(np.int64), h, w, out)
        return out


def _check(n_train, n_test) -> None:
    _check_sizes("mnist8m", n_train, n_test)
    if n_test > N_TEST:
        raise ConfigError(f"mnist8m: n_test is at most {N_TEST:,} (the MNIST test set), "
                          f"got {n_test:,}")


def mnist8m(n_train: int = 600000, n_test: int = N_TEST, alpha: float = 34.0,
            sigma: float = 4.0, max_shift: int = 2, root: str | os.PathLike | None = None, *,
            seed: int = 0) -> Split:
    """The first ``n_train`` samples of a :class:`DeformedStream` over MNIST's 60,000
    training digits (``seed`` picks the deformations and the order of each pass), and
    the first ``n_test`` MNIST test digits, not deformed. Pixels are float32 in [0, 1],
    784 per image; labels are the digits (int64).

    The training images are drawn in memory: 600,000 of them take 1.9 GB.
    """
    _check(n_train, n_test)
    from lshprof.data.mnist import read_mnist

    x_train, y_train, x_test, y_test = read_mnist(root)
    if n_test > len(x_test):
        raise DataError(f"mnist8m: n_test is {n_test:,} but the MNIST test file holds "
                        f"{len(x_test):,} images")
    stream = DeformedStream(x_train, y_train, alpha=alpha, sigma=sigma, max_shift=max_shift,
                            seed=seed)
    X_train, y_tr = stream.sample(0, n_train)
    X_test = x_test[:n_test].reshape(n_test, -1).astype(np.float32)
    if x_test.dtype == np.uint8:
        X_test /= np.float32(255)
    return Split(X_train, y_tr, X_test, np.asarray(y_test[:n_test], dtype=np.int64))


def preflight(n_train: int = 600000, n_test: int = N_TEST, alpha: float = 34.0,
              sigma: float = 4.0, max_shift: int = 2, root: str | os.PathLike | None = None,
              **_) -> None:
    """Raise before any work when a size is out of range, an MNIST file is missing or a
    file's header is damaged (only the headers are read)."""
    _check(n_train, n_test)
    from lshprof.data import fetch as _fetch
    from lshprof.data.mnist import check_headers

    check_headers(_fetch.require("mnist", root), 1, n_test)
