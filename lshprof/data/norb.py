"""small NORB from its standard files (``lshprof data fetch norb-small`` downloads them).

The files use NORB's own binary matrix format (not Matlab's, despite the ``.mat``
name): a little-endian int32 magic number giving the element type (0x1E3D4C55
uint8, 0x1E3D4C54 int32, 0x1E3D4C56 int16, 0x1E3D4C51 float32, 0x1E3D4C53 float64),
an int32 number of dimensions, then ``max(3, ndim)`` int32 dimensions (the unused
ones are 1), then the elements in little-endian order, last dimension fastest.
Files may be gzip-compressed.

The ``-dat`` files hold N stereo pairs of 96x96 grey images (uint8 N x 2 x 96 x 96),
the ``-cat`` files the category 0-4 of each pair (int32 N); the ``-info`` files
(instance, elevation, azimuth, lighting) are fetched but not needed here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lshprof.errors import ConfigError, DataError
from lshprof.data import fetch as _fetch
from lshprof.data._generated import Split, _check_sizes

__all__ = ["read_norb_file", "norb_shape", "read_norb_small", "norb_small", "pool", "preflight", "N_PAIRS",
           "IMAGE_SIDE", "FILES"]

#: Stereo pairs in each of the training and test files.
N_PAIRS = 24300
#: Side of each small NORB image in pixels.
IMAGE_SIDE = 96

_TRAIN = "smallnorb-5x46789x9x18x6x2x96x96-training"
_TEST = "smallnorb-5x01235x9x18x6x2x96x96-testing"
#: The files by part and role (the ones needed to load; the info files are not).
FILES = {"train": (f"{_TRAIN}-dat.mat.gz", f"{_TRAIN}-cat.mat.gz"),
         "test": (f"{_TEST}-dat.mat.gz", f"{_TEST}-cat.mat.gz")}

_MAGIC = {0x1E3D4C55: np.dtype("<u1"), 0x1E3D4C54: np.dtype("<i4"), 0x1E3D4C56: np.dtype("<i2"),
          0x1E3D4C51: np.dtype("<f4"), 0x1E3D4C53: np.dtype("<f8")}
_MAX_NDIM = 32


def read_norb_file(path: str | os.PathLike) -> np.ndarray:
    """The array stored in NORB matrix file ``path`` (plain or gzip), in native byte order.

    Raises :class:`DataError` naming the file when it is missing, not a NORB matrix,
    truncated, or longer than its header says.
    """
    with _fetch.open_data_file(path) as fh:
        try:
            shape, dtype = _read_header(fh, path)
            data = _fetch.read_body(fh, path, shape, dtype, "NORB")
        except _fetch.GZIP_ERRORS as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from None
    return data


def _read_header(fh, path) -> tuple[tuple[int, ...], np.dtype]:
    head = fh.read(8)
    if len(head) < 8:
        raise DataError(f"{path}: too short for a NORB matrix header ({len(head)} bytes)")
    magic, ndim = (int(v) for v in np.frombuffer(head, dtype="<i4"))
    dtype = _MAGIC.get(magic & 0xFFFFFFFF)
    if dtype is None:
        raise DataError(f"{path}: not a NORB matrix file (magic number "
                        f"0x{magic & 0xFFFFFFFF:08X})")
    if not 1 <= ndim <= _MAX_NDIM:
        raise DataError(f"{path}: corrupt NORB header: {ndim} dimensions")
    n_dims = max(3, ndim)
    raw_dims = fh.read(4 * n_dims)
    if len(raw_dims) < 4 * n_dims:
        raise DataError(f"{path}: truncated: header announces {ndim} dimensions, "
                        f"file ends after {len(raw_dims) // 4}")
    return tuple(int(d) for d in np.frombuffer(raw_dims, dtype="<i4")[:ndim]), dtype


def norb_shape(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and element type NORB matrix file ``path`` announces, from its header only
    (checked against the file's size, as :func:`read_norb_file` does before reading)."""
    return _fetch.announced_shape(path, _read_header, "NORB")


def _read_part(where: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The images and int64 categories of ``part`` (``"train"`` or ``"test"``), checked."""
    dat_file, cat_file = FILES[part]
    dat_path = _fetch.local_file(where, dat_file)
    cat_path = _fetch.local_file(where, cat_file)
    dat = read_norb_file(dat_path)
    if dat.dtype != np.uint8 or dat.ndim != 4 or dat.shape[1:] != (2, IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{dat_path}: expected uint8 stereo pairs N x 2 x 96 x 96, got "
                        f"{dat.dtype} {_fetch.shape_text(dat.shape)}")
    cat = read_norb_file(cat_path)
    if cat.dtype != np.int32 or cat.ndim != 1:
        raise DataError(f"{cat_path}: expected int32 categories of one dimension, got "
                        f"{cat.dtype} {_fetch.shape_text(cat.shape)}")
    if dat.shape[0] != cat.shape[0]:
        raise DataError(f"{where}: {dat_path.name} holds {dat.shape[0]} pairs but {cat_path.name} holds "
                        f"{cat.shape[0]} categories")
    if cat.size and (cat.min() < 0 or cat.max() > 4):
        bad = int(cat.min()) if cat.min() < 0 else int(cat.max())
        raise DataError(f"{cat_path}: category {bad} is not one of 0-4")
    return dat, cat.astype(np.int64)


def read_norb_small(root: str | os.PathLike | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training pairs (uint8 [24300, 2, 96, 96]), training categories (int64), test pairs
    and test categories, from the folder of the ``norb-small`` source under ``root``."""
    where = _require(root)
    return (*_read_part(where, "train"), *_read_part(where, "test"))


def pool(pairs: np.ndarray, side: int, *, chunk: int = 1024) -> np.ndarray:
    """Mean-pool uint8 pairs [n, 2, 96, 96] to ``side`` x ``side`` and flatten both images
    into one row of ``2 * side * side`` float32 features in [0, 1] (left image first)."""
    n, k = pairs.shape[0], pairs.shape[2] // side
    out = np.empty((n, 2 * side * side), dtype=np.float32)
    scale = np.float32(1.0 / (k * k * 255))
    for i in range(0, n, chunk):
        block = pairs[i:i + chunk]
        sums = block.reshape(len(block), 2, side, k, side, k).sum(axis=(3, 5), dtype=np.float32)
        out[i:i + len(block)] = sums.reshape(len(block), -1) * scale
    np.minimum(out, 1.0, out=out)  # rounding of the scale may overshoot 1 by an ulp
    return out


def _check(n_train, n_test, side) -> None:
    _check_sizes("norb_small", n_train, n_test)
    if n_train > N_PAIRS:
        raise ConfigError(f"norb_small: n_train is at most {N_PAIRS:,}, got {n_train:,}")
    if n_test > N_PAIRS:
        raise ConfigError(f"norb_small: n_test is at most {N_PAIRS:,}, got {n_test:,}")
    if isinstance(side, bool) or not isinstance(side, int) or side < 1 or IMAGE_SIDE % side:
        divisors = ", ".join(str(d) for d in range(1, IMAGE_SIDE + 1) if IMAGE_SIDE % d == 0)
        raise ConfigError(f"norb_small: side must divide 96 ({divisors}), got {side!r}")


def _require(root) -> Path:
    return _fetch.require("norb-small", root, only=[*FILES["train"], *FILES["test"]])


def norb_small(n_train: int = 20000, n_test: int = N_PAIRS, side: int = 32,
               root: str | os.PathLike | None = None, *, seed: int = 0) -> Split:
    """The first ``n_train`` training and ``n_test`` test pairs, each image mean-pooled to
    ``side`` x ``side`` and the two concatenated (2048 features at side 32), scaled to
    [0, 1] (float32), with categories 0-4. ``seed`` is accepted for a uniform loader
    signature; nothing is random."""
    _check(n_train, n_test, side)
    where = _require(root)
    parts = []
    for part, n in (("train", n_train), ("test", n_test)):
        dat, cat = _read_part(where, part)  # one part at a time: each is 448 MB unpooled
        if n > dat.shape[0]:
            raise ConfigError(f"norb_small: n_{part} is {n:,} but the files hold "
                              f"{dat.shape[0]:,} pairs")
        parts += [pool(dat[:n], side), cat[:n]]
        del dat
    return Split(*parts)


def preflight(n_train: int = 20000, n_test: int = N_PAIRS, side: int = 32,
              root: str | os.PathLike | None = None, **_) -> None:
    """Raise before any work when an option is out of range, a needed file is missing, or a
    file's header is damaged or announces fewer pairs than asked (only headers are read)."""
    _check(n_train, n_test, side)
    where = _require(root)
    for part, n in (("train", n_train), ("test", n_test)):
        dat_path, cat_path = (_fetch.local_file(where, f) for f in FILES[part])
        (dat, _), (cat, _) = norb_shape(dat_path), norb_shape(cat_path)
        if dat[1:] != (2, IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f"{dat_path}: expected stereo pairs N x 2 x 96 x 96, got "
                            f"{_fetch.shape_text(dat)}")
        if len(cat) != 1 or cat[0] != dat[0]:
            raise DataError(f"{where}: {dat_path.name} holds {dat[0]} pairs but "
                            f"{cat_path.name} holds {_fetch.shape_text(cat)} categories")
        if n > dat[0]:
            raise ConfigError(f"norb_small: n_{part} is {n:,} but the files hold "
                              f"{dat[0]:,} pairs")
