"""Hostile data inputs (issue 18): each one is refused with one line naming the file, before
anything large is allocated and, where it can be known, before any work starts.

* an IDX or NORB header that claims more elements than the file can hold (0x7fffffff
  images) is refused from the file's size, before the reader allocates;
* symbolic links that loop are called a loop, not a missing file;
* text in numeric CSV columns names the file, the column, the first bad row and the text;
* training labels of a single class are refused, naming the file or the data set;
* :func:`lshprof.data.check_contents` reads the user's files once, and the load that
  follows uses what it read;
* :func:`lshprof.data.data_shape` tells the sizes and the memory of a data set before it
  is built.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from lshprof.data import (DataShape, arrays, check, check_classes, check_contents, data_shape,
                          load, resolve_options)
from lshprof.data import fetch
from lshprof.data.mnist import FILES as MNIST_FILES, idx_shape, read_idx
from lshprof.data.norb import norb_shape, read_norb_file
from lshprof.errors import ConfigError, DataError

HUGE = 0x7FFFFFFF


def idx_file(path: Path, n_claimed: int, n_real: int, *, gz: bool, label: bool = False,
             seed: int = 0) -> Path:
    """An IDX file of ``n_real`` random images (or labels) whose header claims
    ``n_claimed``; random bytes, so gzip cannot shrink them."""
    rng = np.random.default_rng(seed)
    if label:
        body = rng.integers(0, 10, size=n_real, dtype=np.uint8).tobytes()
        head = bytes([0, 0, 8, 1]) + struct.pack(">i", n_claimed)
    else:
        body = rng.integers(0, 256, size=(n_real, 28, 28), dtype=np.uint8).tobytes()
        head = bytes([0, 0, 8, 3]) + struct.pack(">3i", n_claimed, 28, 28)
    data = head + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claiming_too_many_images_is_refused_before_allocating(tmp_path, gz,
                                                                          monkeypatch):
    path = idx_file(tmp_path / "train-images-idx3-ubyte", HUGE, 60, gz=gz)
    allocated = []
    real_empty = np.empty
    monkeypatch.setattr(np, "empty", lambda *a, **k: allocated.append(a) or real_empty(*a, **k))
    for read in (read_idx, idx_shape):
        with pytest.raises(DataError) as exc:
            read(path)
        text = one_line(exc)
        assert str(path) in text
        assert "header says 2147483647x28x28 (1683627179248 bytes = 1.7 TB)" in text
        assert "the file is truncated or not IDX; delete it and fetch it again" in text
        assert ("file has 47040 (47 kB)" if not gz else "more than its gzip data can unpack") \
            in text
    assert allocated == []  # nothing was allocated for the body


def test_a_sane_header_still_reads(tmp_path):
    path = idx_file(tmp_path / "ok.idx", 5, 5, gz=True)
    assert read_idx(path).shape == (5, 28, 28)
    assert idx_shape(path) == ((5, 28, 28), np.dtype(">u1"))


def test_norb_header_claiming_too_much_is_refused(tmp_path):
    head = struct.pack("<ii4i", 0x1E3D4C55, 4, HUGE, 2, 96, 96)
    path = tmp_path / "x-dat.mat"
    path.write_bytes(head + bytes(1000))
    for read in (read_norb_file, norb_shape):
        with pytest.raises(DataError, match=r"truncated: header says 2147483647x2x96x96 .* file "
                                            r"has 1000 \(1.0 kB\): the file is truncated or not "
                                            r"NORB") as exc:
            read(path)
        one_line(exc)


def test_dimensions_whose_product_overflows_int64_are_refused(tmp_path):
    head = bytes([0, 0, 8, 4]) + struct.pack(">4i", HUGE, HUGE, HUGE, HUGE)
    path = tmp_path / "big.idx"
    path.write_bytes(head + bytes(16))
    with pytest.raises(DataError, match="truncated: header says "
                                        "2147483647x2147483647x2147483647x2147483647"):
        read_idx(path)


def make_mnist_root(home: Path, claimed_train: int, *, gz: bool = True) -> Path:
    where = home / "mnist"
    idx_file(where / MNIST_FILES["train_images"], claimed_train, 20, gz=gz)
    idx_file(where / MNIST_FILES["train_labels"], 20, 20, gz=gz, label=True)
    idx_file(where / MNIST_FILES["test_images"], 10, 10, gz=gz, seed=1)
    idx_file(where / MNIST_FILES["test_labels"], 10, 10, gz=gz, label=True, seed=1)
    return home


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_preflight_reads_the_headers(tmp_path, gz):
    """`lshprof scenarios --check` (the data set's preflight) sees the damaged header, so a
    check that passes means the load will not fail on it."""
    home = make_mnist_root(tmp_path, HUGE, gz=gz)
    opts = resolve_options("mnist", {"n_train": 10, "n_test": 5, "root": str(home)})
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: truncated: header says "
                                        "2147483647x28x28") as exc:
        check("mnist", opts)
    one_line(exc)
    with pytest.raises(DataError, match="2147483647x28x28"):
        load("mnist", opts)


def test_mnist_preflight_names_too_few_images_and_count_mismatch(tmp_path):
    home = make_mnist_root(tmp_path, 20)
    check("mnist", resolve_options("mnist", {"n_train": 20, "n_test": 10, "root": str(home)}))
    with pytest.raises(ConfigError, match="n_train is 30 but the files hold 20 images"):
        check("mnist", resolve_options("mnist", {"n_train": 30, "n_test": 5, "root": str(home)}))
    idx_file(home / "mnist" / MNIST_FILES["train_labels"], 19, 19, gz=True, label=True)
    with pytest.raises(DataError, match="holds 20 images but train-labels-idx1-ubyte.gz holds "
                                        "19 labels"):
        check("mnist", resolve_options("mnist", {"n_train": 5, "n_test": 5, "root": str(home)}))


# --------------------------------------------------------------------------- symlink loops


def loop(tmp_path: Path, name: str) -> Path:
    a, b = tmp_path / name, tmp_path / f"{name}.other"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def test_symlink_loops_are_called_loops(tmp_path):
    path = loop(tmp_path, "train.csv")
    assert fetch.is_symlink_loop(path) and not fetch.is_symlink_loop(tmp_path)
    assert not fetch.is_symlink_loop(tmp_path / "absent")
    for dataset, key in (("csv", "train"), ("npz", "path")):
        with pytest.raises(DataError) as exc:
            check(dataset, resolve_options(dataset, {key: str(path)}))
        text = one_line(exc)
        assert "symlink loop" in text and "not found" not in text and str(path) in text
    with pytest.raises(DataError, match="a symlink loop"):
        fetch.open_data_file(path)


def test_symlink_loop_in_a_data_folder_is_named(tmp_path):
    home = make_mnist_root(tmp_path, 20)
    target = home / "mnist" / MNIST_FILES["test_labels"]
    target.unlink()
    target.symlink_to(target.with_name("elsewhere"))
    target.with_name("elsewhere").symlink_to(target)
    with pytest.raises(DataError, match="is a symlink loop") as exc:
        check("mnist", resolve_options("mnist", {"n_train": 5, "n_test": 5, "root": str(home)}))
    assert "not found" not in one_line(exc)


# --------------------------------------------------------------------------- CSV cells


@pytest.mark.parametrize("cell, shown", [("nan", "'nan'"), ("NA", "'NA'"), ("True", "'True'"),
                                         ("abc", "'abc'"), ("1,5", None)])
def test_text_in_a_numeric_csv_column_names_file_row_column_and_text(tmp_path, cell, shown):
    path = tmp_path / "t.csv"
    value = f'"{cell}"' if "," in cell else cell
    path.write_text(f"a,b,label\n1,2,x\n3,4,y\n{value},6,x\n7,8,y\n")
    for read in (lambda: arrays.csv(path), lambda: check_contents(
            "csv", resolve_options("csv", {"train": str(path)}))):
        with pytest.raises(DataError) as exc:
            read()
        text = one_line(exc)
        assert f"{path}: data row 3, column 'a': {shown or repr(cell)} is not a number" in text


def test_an_empty_csv_cell_is_still_called_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n,4,y\n5,6,x\n")
    with pytest.raises(DataError, match="data row 2, column 'a': empty cell"):
        arrays.csv(path)


# --------------------------------------------------------------------------- one class


def test_single_class_csv_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i + 1},cat\n" for i in range(6)))
    opts = resolve_options("csv", {"train": str(path)})
    for read in (lambda: check_contents("csv", opts), lambda: load("csv", opts)):
        with pytest.raises(DataError) as exc:
            read()
        assert one_line(exc) == (f"{path}: label column 'label': every training label is 'cat' "
                                 "(one class in 6 samples), so there is nothing to classify; "
                                 "give data of at least two classes")
    test = tmp_path / "test.csv"
    test.write_text("a,b,label\n1,2,cat\n")
    with pytest.raises(DataError, match="every training label is 'cat'"):
        arrays.csv(path, test)


def test_single_class_npz_is_refused_naming_the_file(tmp_path):
    whole, split = tmp_path / "whole.npz", tmp_path / "split.npz"
    np.savez(whole, X=np.ones((8, 3)), y=np.full(8, 4))
    np.savez(split, X_train=np.ones((6, 3)), y_train=np.zeros(6, dtype=int),
             X_test=np.ones((2, 3)), y_test=np.array([0, 0]))
    for path, name in ((whole, "y"), (split, "y_train")):
        opts = resolve_options("npz", {"path": str(path)})
        for read in (lambda: check_contents("npz", opts), lambda: load("npz", opts)):
            with pytest.raises(DataError, match=f"{path}: {name}: every training label is "
                                                f"{4 if name == 'y' else 0} \\(one class in"):
                read()


def test_single_class_generated_data_is_refused_by_load():
    with pytest.raises(DataError, match=r"data set 'rectangles' \(n_train = 1, n_test = 5\): "
                                        r"every training label is \d \(one class in 1 samples\)"):
        load("rectangles", resolve_options("rectangles", {"n_train": 1, "n_test": 5}))
    check_classes(np.array([0, 1, 0]), "here")  # two classes: fine
    with pytest.raises(DataError, match="here: no training samples"):
        check_classes(np.array([], dtype=int), "here")


def test_one_sample_per_class_names_the_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,label\n1,a\n2,b\n3,c\n")
    with pytest.raises(DataError, match=f"{path}: every class has a single sample"):
        arrays.csv(path)


# --------------------------------------------------------------------------- read once


def test_check_contents_keeps_what_it_read_for_the_load(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(10)))
    opts = resolve_options("csv", {"train": str(path)})
    check_contents("csv", opts)
    reads = []
    real = arrays._csv_table
    monkeypatch.setattr(arrays, "_csv_table", lambda *a: reads.append(a) or real(*a))
    first = load("csv", opts, seed=3)
    assert reads == []  # the load used what the check read
    second = load("csv", opts, seed=3)
    assert len(reads) == 1  # taken out by the first load: read again
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # a file changed after the check is read again
    check_contents("csv", opts)
    path.write_text("a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(12)))
    assert load("csv", opts).X_train.shape[0] + load("csv", opts).X_test.shape[0] == 12


def test_npz_check_contents_is_used_by_the_load(tmp_path, monkeypatch):
    path = tmp_path / "a.npz"
    np.savez(path, X=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2)
    opts = resolve_options("npz", {"path": str(path)})
    check_contents("npz", opts)
    monkeypatch.setattr(arrays, "_npz_read", lambda *a: pytest.fail("read twice"))
    assert load("npz", opts).X_train.shape == (8, 2)


def test_contents_check_refuses_non_finite_npz_values(tmp_path):
    path = tmp_path / "a.npz"
    X = np.ones((6, 2))
    X[4, 1] = np.nan
    np.savez(path, X=X, y=np.arange(6) % 2)
    with pytest.raises(DataError, match="X holds nan at row 4, column 1"):
        check_contents("npz", resolve_options("npz", {"path": str(path)}))


# --------------------------------------------------------------------------- shapes


def test_data_shape_of_generated_sets_is_exact():
    g = data_shape("gaussian", resolve_options("gaussian", {"n_train": 100, "n_test": 20,
                                                            "n_features": 8}))
    # float64 drawing and float32 split of both parts, two float64 temporaries of the
    # larger, int64 labels
    assert g == DataShape(100, 20, 8, 10, 120 * (8 * 12 + 8) + 16 * 100 * 8, True)
    r = data_shape("rectangles", resolve_options("rectangles", {"n_train": 10, "n_test": 5}))
    assert r == DataShape(10, 5, 784, 2, 15 * (784 * 5 + 8), True)
    n = data_shape("norb-small", resolve_options("norb-small", {"n_train": 10, "n_test": 5,
                                                                "side": 16}))
    assert (n.n_features, n.n_classes) == (512, 5)


def test_data_shape_of_files_from_headers(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, X_train=np.zeros((30, 4), np.float32), y_train=np.zeros(30, np.int64),
             X_test=np.zeros((7, 4), np.float32), y_test=np.zeros(7, np.int64))
    s = data_shape("npz", resolve_options("npz", {"path": str(path)}))
    assert (s.n_train, s.n_test, s.n_features, s.n_classes, s.exact) == (30, 7, 4, None, True)
    assert s.nbytes == 37 * (4 * 4 + 8) + 37 * 4 * 4 + 16 * 37
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,c,label\n" + "1,2,3,x\n" * 10)
    s = data_shape("csv", resolve_options("csv", {"train": str(csv)}))
    assert (s.n_train, s.n_test, s.n_features, s.exact) == (8, 2, 3, False)
    assert data_shape("csv", resolve_options("csv", {"train": str(tmp_path / "no.csv")})) is None


def test_real_options_must_be_finite():
    for key in ("spread", "noise"):
        with pytest.raises(ConfigError, match=f"data.{key}: must be a finite number >= 0, got inf"):
            resolve_options("gaussian", {key: float("inf")})
    with pytest.raises(ConfigError, match="sigma: must be a finite number > 0, got inf"):
        resolve_options("mnist8m", {"sigma": float("inf")})


def test_size_text():
    assert [fetch.size_text(n) for n in (0, 999, 1000, 47040, 9_990_000, 999_600, 1.7e12,
                                         3e21)] == \
        ["0 bytes", "999 bytes", "1.0 kB", "47 kB", "10 MB", "1.0 MB", "1.7 TB", "3000 EB"]
