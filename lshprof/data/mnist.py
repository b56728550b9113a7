"""MNIST from the four standard IDX files (``lshprof data fetch mnist`` downloads them).

The IDX format: two zero bytes, a byte giving the element type (0x08 unsigned byte,
0x09 signed byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a byte giving
the number of dimensions, then each dimension as a big-endian int32, then the
elements in big-endian order, last dimension fastest. Files may be gzip-compressed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lshprof.errors import ConfigError, DataError
from lshprof.data import fetch as _fetch
from lshprof.data._generated import Split, _check_sizes

__all__ = ["read_idx", "idx_shape", "check_headers", "read_mnist", "mnist", "preflight",
           "N_TRAIN", "N_TEST", "FILES"]

#: Images in the standard training and test files.
N_TRAIN, N_TEST = 60000, 10000

#: The files by role: training images and labels, test images and labels.
FILES = {"train_images": "train-images-idx3-ubyte.gz", "train_labels": "train-labels-idx1-ubyte.gz",
         "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}

_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_header(fh, path) -> tuple[tuple[int, ...], np.dtype]:
    head = fh.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    if head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (starts with bytes {head.hex(' ')})")
    dtype = _IDX_TYPES.get(head[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX element type 0x{head[2]:02X}")
    ndim = head[3]
    if ndim == 0:
        raise DataError(f"{path}: IDX header gives no dimensions")
    raw_dims = fh.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated: header announces {ndim} dimensions, "
                        f"file ends after {len(raw_dims) // 4}")
    return tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">i4")), dtype


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in IDX file ``path`` (plain or gzip), in native byte order.

    Raises :class:`DataError` naming the file when it is missing, not IDX, truncated,
    or longer than its header says; a header that announces more than the file can hold
    is refused before anything is allocated.
    """
    with _fetch.open_data_file(path) as fh:
        try:
            shape, dtype = _read_header(fh, path)
            data = _fetch.read_body(fh, path, shape, dtype, "IDX")
        except _fetch.GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from None
    return data


def idx_shape(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and element type IDX file ``path`` announces, read from its header only
    (and checked against the file's size, as :func:`read_idx` does before reading)."""
    return _fetch.announced_shape(path, _read_header, "IDX")


def _read_pair(where: Path, images_file: str, labels_file: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _fetch.local_file(where, images_file)
    labels_path = _fetch.local_file(where, labels_file)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path}: expected uint8 images N x rows x columns, got "
                        f"{images.dtype} {_fetch.shape_text(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels of one dimension, got "
                        f"{labels.dtype} {_fetch.shape_text(labels.shape)}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{where}: {images_path.name} holds {images.shape[0]} images but "
                        f"{labels_path.name} holds {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: label {int(labels.max())} is not a digit 0-9")
    return images, labels.astype(np.int64)


def read_mnist(root: str | os.PathLike | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training images (uint8 [60000, 28, 28]), training labels (int64), test images and
    test labels, from the folder of the ``mnist`` source under ``root`` (see
    :func:`lshprof.data.fetch.data_home`)."""
    where = _fetch.require("mnist", root)
    x_train, y_train = _read_pair(where, FILES["train_images"], FILES["train_labels"])
    x_test, y_test = _read_pair(where, FILES["test_images"], FILES["test_labels"])
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{where}: training images are {_fetch.shape_text(x_train.shape[1:])} but "
                        f"test images are {_fetch.shape_text(x_test.shape[1:])}")
    return x_train, y_train, x_test, y_test


def _check(n_train, n_test) -> None:
    _check_sizes("mnist", n_train, n_test)
    if n_train > N_TRAIN:
        raise ConfigError(f"mnist: n_train is at most {N_TRAIN:,}, got {n_train:,}")
    if n_test > N_TEST:
        raise ConfigError(f"mnist: n_test is at most {N_TEST:,}, got {n_test:,}")


def _scaled(images: np.ndarray, n: int) -> np.ndarray:
    x = images[:n].reshape(min(n, images.shape[0]), -1).astype(np.float32)
    x /= np.float32(255)
    return x


def mnist(n_train: int = N_TRAIN, n_test: int = N_TEST,
          root: str | os.PathLike | None = None, *, seed: int = 0) -> Split:
    """The first ``n_train`` training and ``n_test`` test images, flattened to 784 features
    scaled to [0, 1] (float32), with their digit labels. ``seed`` is accepted for a
    uniform loader signature; nothing is random."""
    _check(n_train, n_test)
    x_train, y_train, x_test, y_test = read_mnist(root)
    for what, n, have in (("n_train", n_train, len(x_train)), ("n_test", n_test, len(x_test))):
        if n > have:
            raise ConfigError(f"mnist: {what} is {n:,} but the files hold {have:,} images")
    return Split(_scaled(x_train, n_train), y_train[:n_train],
                 _scaled(x_test, n_test), y_test[:n_test])


def check_headers(where: Path, n_train: int, n_test: int) -> None:
    """Read the four files' headers (not their data) and raise :class:`DataError` when one
    is not IDX, announces more than the file holds, or holds fewer images than asked."""
    for role, n, what in (("train", n_train, "n_train"), ("test", n_test, "n_test")):
        images_path = _fetch.local_file(where, FILES[f"{role}_images"])
        labels_path = _fetch.local_file(where, FILES[f"{role}_labels"])
        (images, _), (labels, _) = idx_shape(images_path), idx_shape(labels_path)
        if len(images) != 3:
            raise DataError(f"{images_path}: expected images N x rows x columns, got "
                            f"{_fetch.shape_text(images)}")
        if len(labels) != 1:
            raise DataError(f"{labels_path}: expected labels of one dimension, got "
                            f"{_fetch.shape_text(labels)}")
        if images[0] != labels[0]:
            raise DataError(f"{where}: {images_path.name} holds {images[0]} images but "
                            f"{labels_path.name} holds {labels[0]} labels")
        if n > images[0]:
            raise ConfigError(f"mnist: {what} is {n:,} but the files hold {images[0]:,} images")


def preflight(n_train: int = N_TRAIN, n_test: int = N_TEST,
              root: str | os.PathLike | None = None, **_) -> None:
    """Raise before any work when the sizes are out of range, a file is missing, or a
    file's header is damaged (only the headers are read)."""
    _check(n_train, n_test)
    check_headers(_fetch.require("mnist", root), n_train, n_test)
