"""Reading the standard data files: MNIST's IDX format and small NORB's matrix format.

The tests write tiny files in each format (plain and gzip) and check what the
readers and loaders make of them, including damaged files.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from lshprof.data import check, load, mnist as mnist_mod, norb as norb_mod, resolve_options
from lshprof.data.mnist import mnist, read_idx, read_mnist
from lshprof.data.norb import norb_small, read_norb_file, read_norb_small
from lshprof.errors import ConfigError, DataError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
NORB_MAGIC = {np.uint8: 0x1E3D4C55, np.int32: 0x1E3D4C54, np.int16: 0x1E3D4C56,
              np.float32: 0x1E3D4C51, np.float64: 0x1E3D4C53}


def idx_bytes(a: np.ndarray) -> bytes:
    head = bytes([0, 0, IDX_CODES[a.dtype.type], a.ndim]) + struct.pack(f">{a.ndim}i", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def norb_bytes(a: np.ndarray) -> bytes:
    dims = list(a.shape) + [1] * max(0, 3 - a.ndim)
    head = struct.pack(f"<ii{len(dims)}i", NORB_MAGIC[a.dtype.type], a.ndim, *dims)
    return head + a.astype(a.dtype.newbyteorder("<")).tobytes()


def write(path: Path, data: bytes, gz: bool | None = None) -> Path:
    """Write ``data`` to ``path``, gzip-compressed when ``gz`` (default: when the name ends
    in .gz)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("dtype", list(IDX_CODES))
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    a = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    got = read_idx(write(tmp_path / "a.idx", idx_bytes(a), gz))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert got.shape == a.shape
    np.testing.assert_array_equal(got, a)
    got[0, 0, 0] = 1  # a writable array


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    a = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "plain.gz", idx_bytes(a), False)), a)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "packed", idx_bytes(a), True)), a)


def test_idx_damage_is_one_line(tmp_path):
    a = np.zeros((60, 28, 28), dtype=np.uint8)
    data = idx_bytes(a)
    cases = {
        "truncated": (data[:1234 + 16], r"truncated: header says 60x28x28 \(47040 bytes = 47 kB\), (file has 1234 |more than its gzip data)"),
        "magic": (b"\x1f\x00" + data[2:], "not an IDX file"),
        "type": (data[:2] + b"\x07" + data[3:], "unknown IDX element type 0x07"),
        "dims": (data[:10], "header announces 3 dimensions"),
        "short": (data[:3], "too short"),
        "long": (data + b"\x00", "longer than its header says"),
    }
    for name, (content, match) in cases.items():
        for gz in (False, True):
            path = write(tmp_path / f"{name}-{gz}.idx", content, gz)
            with pytest.raises(DataError, match=match) as err:
                read_idx(path)
            assert "\n" not in str(err.value) and str(path) in str(err.value)
    packed = gzip.compress(data)
    with pytest.raises(DataError, match="corrupt gzip data"):
        read_idx(write(tmp_path / "cut.gz", packed[:len(packed) // 2], False))
    broken = bytearray(packed)
    broken[len(packed) // 2] ^= 0xFF
    with pytest.raises(DataError, match="corrupt gzip data"):
        read_idx(write(tmp_path / "flipped.gz", bytes(broken), False))
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "absent.idx")


# --------------------------------------------------------------------------- MNIST


def make_mnist(home: Path, n_train: int = 5, n_test: int = 3, *, gz: bool = True,
               labels_train: int | None = None) -> tuple[np.ndarray, ...]:
    """Tiny MNIST files under ``home/mnist``; returns the arrays written."""
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    xtr[0, 0, 0], xtr[0, 0, 1] = 0, 255
    ytr = rng.integers(0, 10, size=labels_train or n_train).astype(np.uint8)
    xte = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    yte = rng.integers(0, 10, size=n_test).astype(np.uint8)
    names = mnist_mod.FILES
    for key, arr in (("train_images", xtr), ("train_labels", ytr), ("test_images", xte),
                     ("test_labels", yte)):
        write(home / "mnist" / names[key], idx_bytes(arr), gz)
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("gz", [True, False])
def test_read_mnist(tmp_path, gz):
    xtr, ytr, xte, yte = make_mnist(tmp_path, gz=gz)
    got = read_mnist(tmp_path)
    for a, b in zip(got, (xtr, ytr, xte, yte)):
        np.testing.assert_array_equal(a, b)
    assert got[0].dtype == np.uint8 and got[1].dtype == np.int64 and got[3].dtype == np.int64


def test_mnist_split(tmp_path):
    xtr, ytr, xte, yte = make_mnist(tmp_path)
    s = mnist(4, 2, root=tmp_path)
    assert s.X_train.shape == (4, 784) and s.X_test.shape == (2, 784)
    assert s.X_train.dtype == np.float32 and s.y_train.dtype == np.int64
    np.testing.assert_allclose(s.X_train, xtr[:4].reshape(4, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(s.y_test, yte[:2])
    assert s.X_train.min() == 0.0 and s.X_train.max() == 1.0


def test_mnist_sizes(tmp_path, monkeypatch):
    make_mnist(tmp_path)
    with pytest.raises(ConfigError, match="at most 60,000"):
        mnist(60001, 10, root=tmp_path)
    with pytest.raises(ConfigError, match="at most 10,000"):
        mnist(10, 10001, root=tmp_path)
    with pytest.raises(ConfigError, match="files hold 5 images"):
        mnist(6, 1, root=tmp_path)
    with pytest.raises(ConfigError, match="positive integer"):
        mnist(0, 1, root=tmp_path)


def test_mnist_count_mismatch(tmp_path):
    make_mnist(tmp_path, labels_train=4)
    with pytest.raises(DataError, match="holds 5 images but .* holds 4 labels"):
        read_mnist(tmp_path)


def test_mnist_bad_label(tmp_path):
    make_mnist(tmp_path)
    write(tmp_path / "mnist" / mnist_mod.FILES["test_labels"],
          idx_bytes(np.array([1, 12, 3], dtype=np.uint8)))
    with pytest.raises(DataError, match="label 12 is not a digit"):
        read_mnist(tmp_path)


def test_mnist_missing_files_and_preflight(tmp_path, monkeypatch):
    monkeypatch.setenv("LSHPROF_DATA", str(tmp_path / "home"))
    with pytest.raises(DataError, match="lshprof data fetch mnist$"):
        mnist(5, 3)
    with pytest.raises(DataError, match=r"lshprof data fetch mnist --root .*elsewhere"):
        mnist_mod.preflight(5, 3, root=str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="at most"):
        mnist_mod.preflight(70000, 3)
    make_mnist(tmp_path / "home")
    opts = resolve_options("mnist", {"n_train": 5, "n_test": 3})
    check("mnist", opts)
    assert load("mnist", opts).X_train.shape == (5, 784)


def test_mnist_unpacked_files(tmp_path):
    xtr, ytr, xte, yte = make_mnist(tmp_path, gz=False)
    for path in (tmp_path / "mnist").iterdir():
        path.rename(path.with_name(path.name.removesuffix(".gz")))
    np.testing.assert_array_equal(read_mnist(tmp_path)[0], xtr)


def test_mnist_truncated_file(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "mnist" / mnist_mod.FILES["train_images"]
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"truncated: header says 5x28x28 \(3920 bytes = 3.9 kB\), file has 984"):
        read_mnist(tmp_path)


# --------------------------------------------------------------------------- small NORB


@pytest.mark.parametrize("dtype", list(NORB_MAGIC))
@pytest.mark.parametrize("gz", [False, True])
def test_read_norb_file_round_trips(tmp_path, dtype, gz):
    for shape in ((7,), (2, 3), (2, 3, 4), (2, 1, 3, 4)):
        a = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
        got = read_norb_file(write(tmp_path / f"{len(shape)}.mat", norb_bytes(a), gz))
        assert got.dtype == np.dtype(dtype) and got.shape == shape
        np.testing.assert_array_equal(got, a)


def test_norb_damage_is_one_line(tmp_path):
    data = norb_bytes(np.zeros((4, 2, 96, 96), dtype=np.uint8))
    cases = {
        "truncated": (data[:100], r"truncated: header says 4x2x96x96 \(73728 bytes = 74 kB\), (file has 76 |more than its gzip data)"),
        "magic": (struct.pack("<i", 0x12345678) + data[4:], "not a NORB matrix file .*0x12345678"),
        "ndim": (data[:4] + struct.pack("<i", 99) + data[8:], "99 dimensions"),
        "short": (data[:6], "too short"),
        "long": (data + b"\x00\x00", "longer than its header says"),
    }
    for name, (content, match) in cases.items():
        for gz in (False, True):
            path = write(tmp_path / f"{name}-{gz}.mat", content, gz)
            with pytest.raises(DataError, match=match) as err:
                read_norb_file(path)
            assert "\n" not in str(err.value) and str(path) in str(err.value)


def make_norb(home: Path, n_train: int = 4, n_test: int = 3, *, cat_train: int | None = None,
              gz: bool = True) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(2)
    out = []
    for part, n, ncat in (("train", n_train, cat_train or n_train), ("test", n_test, n_test)):
        dat = rng.integers(0, 256, size=(n, 2, 96, 96), dtype=np.uint8)
        dat[0] = 255  # one pair entirely white: pooled values must be exactly 1
        cat = rng.integers(0, 5, size=ncat).astype(np.int32)
        dat_file, cat_file = norb_mod.FILES[part]
        write(home / "norb-small" / dat_file, norb_bytes(dat), gz)
        write(home / "norb-small" / cat_file, norb_bytes(cat), gz)
        out += [dat, cat]
    return tuple(out)


def reference_pool(dat: np.ndarray, side: int) -> np.ndarray:
    k = 96 // side
    pooled = dat.astype(np.float64).reshape(len(dat), 2, side, k, side, k).mean(axis=(3, 5))
    return (pooled / 255.0).reshape(len(dat), -1)


def test_read_norb_small(tmp_path):
    dtr, ctr, dte, cte = make_norb(tmp_path)
    got = read_norb_small(tmp_path)
    for a, b in zip(got, (dtr, ctr, dte, cte)):
        np.testing.assert_array_equal(a, b)
    assert got[1].dtype == np.int64


@pytest.mark.parametrize("side", [32, 48, 96, 1])
def test_norb_small_pooling(tmp_path, side):
    dtr, ctr, dte, cte = make_norb(tmp_path)
    s = norb_small(3, 2, side=side, root=tmp_path)
    assert s.X_train.shape == (3, 2 * side * side) and s.X_train.dtype == np.float32
    assert s.X_test.shape == (2, 2 * side * side)
    np.testing.assert_allclose(s.X_train, reference_pool(dtr[:3], side), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(s.X_test, reference_pool(dte[:2], side), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(s.y_train, ctr[:3])
    assert s.X_train[0].min() == 1.0 and s.X_train.max() <= 1.0 and s.X_train.min() >= 0.0


def test_norb_small_options(tmp_path):
    make_norb(tmp_path)
    with pytest.raises(ConfigError, match="side must divide 96"):
        norb_small(2, 2, side=5, root=tmp_path)
    with pytest.raises(ConfigError, match="at most 24,300"):
        norb_small(24301, 2, root=tmp_path)
    with pytest.raises(ConfigError, match="at most 24,300"):
        norb_small(2, 24301, root=tmp_path)
    with pytest.raises(ConfigError, match="files hold 4 pairs"):
        norb_small(5, 2, root=tmp_path)
    with pytest.raises(ConfigError, match="side must divide 96"):
        norb_mod.preflight(2, 2, side=5, root=tmp_path)
    norb_mod.preflight(2, 2, side=32, root=tmp_path)


def test_norb_count_mismatch_and_bad_category(tmp_path):
    make_norb(tmp_path, cat_train=5)
    with pytest.raises(DataError, match="holds 4 pairs but .* holds 5 categories"):
        read_norb_small(tmp_path)
    make_norb(tmp_path)
    write(tmp_path / "norb-small" / norb_mod.FILES["test"][1],
          norb_bytes(np.array([0, 7, 1], dtype=np.int32)))
    with pytest.raises(DataError, match="category 7 is not one of 0-4"):
        read_norb_small(tmp_path)


def test_norb_wrong_image_shape(tmp_path):
    make_norb(tmp_path)
    write(tmp_path / "norb-small" / norb_mod.FILES["train"][0],
          norb_bytes(np.zeros((4, 2, 32, 32), dtype=np.uint8)))
    with pytest.raises(DataError, match="expected uint8 stereo pairs"):
        read_norb_small(tmp_path)


def test_norb_needs_only_dat_and_cat(tmp_path, monkeypatch):
    monkeypatch.setenv("LSHPROF_DATA", str(tmp_path / "home"))
    with pytest.raises(DataError, match="lshprof data fetch norb-small$"):
        norb_mod.preflight(2, 2)
    make_norb(tmp_path / "home")  # no info files written
    opts = resolve_options("norb-small", {"n_train": 2, "n_test": 3})
    check("norb-small", opts)
    assert load("norb-small", opts).X_train.shape == (2, 2048)
