"""The user's own arrays (.npz, CSV) and scikit-learn's digits."""

import sys

import numpy as np
import pytest

from lshprof.data import arrays
from lshprof.data.arrays import (csv, csv_preflight, digits, digits_preflight, npz,
                                 npz_preflight, stratified_split)
from lshprof.errors import ConfigError, DataError


def _blobs(n=60, f=5, classes=(0, 1, 2), seed=0):
    rng = np.random.default_rng(seed)
    y = np.array(classes)[np.arange(n) % len(classes)]
    X = rng.normal(size=(n, f)) + np.arange(n)[:, None] % len(classes)
    return X, y


# --------------------------------------------------------------------------- split rule


def test_stratified_split_keeps_class_shares():
    y = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    tr, te = stratified_split(y, 20, np.random.default_rng(0))
    assert len(te) == 20 and len(tr) == 80
    assert sorted(np.concatenate([tr, te])) == list(range(100))
    assert np.array_equal(np.bincount(y[te], minlength=4), [10, 6, 3, 1])
    # a single-sample class stays in training; the rest is still held out
    y = np.array([0] * 9 + [1])
    tr, te = stratified_split(y, 3, np.random.default_rng(0))
    assert len(te) == 3 and 9 in tr
    with pytest.raises(DataError, match="single sample"):
        stratified_split(np.arange(5), 2, np.random.default_rng(0))


# --------------------------------------------------------------------------- npz


def test_npz_with_a_split(tmp_path):
    X, y = _blobs()
    path = tmp_path / "d.npz"
    np.savez(path, X_train=X[:40], y_train=y[:40] * 10 + 7, X_test=X[40:],
             y_test=(y[40:] * 10 + 7).astype(np.float64))
    npz_preflight(str(path))
    s = npz(str(path))
    assert s.X_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert np.array_equal(s.X_train, X[:40].astype(np.float32))
    assert np.array_equal(s.X_test, X[40:].astype(np.float32))
    # labels 7, 17, 27 become classes 0, 1, 2, the same way in both parts
    assert np.array_equal(s.y_train, y[:40]) and np.array_equal(s.y_test, y[40:])


def test_npz_with_x_and_y(tmp_path):
    X, y = _blobs(n=100)
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    npz_preflight(path, test_fraction=0.3)
    s = npz(path, test_fraction=0.3, seed=1)
    assert s.X_train.shape == (70, 5) and s.X_test.shape == (30, 5)
    assert np.array_equal(np.bincount(s.y_test), [10, 10, 10])
    rows = {tuple(r) for r in np.concatenate([s.X_train, s.X_test])}
    assert rows == {tuple(r) for r in X.astype(np.float32)}
    again = npz(path, test_fraction=0.3, seed=1)
    other = npz(path, test_fraction=0.3, seed=2)
    assert np.array_equal(again.X_test, s.X_test)
    assert not np.array_equal(other.X_test, s.X_test)
    # every sample keeps its label
    lookup = {tuple(r): int(c) for r, c in zip(X.astype(np.float32), y)}
    assert all(lookup[tuple(r)] == c for r, c in zip(s.X_test, s.y_test))


def test_npz_string_labels(tmp_path):
    X, _ = _blobs(n=6)
    path = tmp_path / "s.npz"
    np.savez(path, X_train=X, y_train=np.array(["dog", "cat", "emu", "cat", "dog", "emu"]),
             X_test=X[:2], y_test=np.array(["emu", "cat"]))
    s = npz(path)
    assert list(s.y_train) == [1, 0, 2, 0, 1, 2] and list(s.y_test) == [2, 0]


def _write(path, text):
    path.write_text(text)
    return path


def _save(tmp_path, name="bad.npz", **arrays_):
    path = tmp_path / name
    np.savez(path, **arrays_)
    return path


@pytest.mark.parametrize("make, text", [
    (lambda t: t / "nope.npz", "file not found"),
    (lambda t: _write(t / "x.npz", "hello"), "not a .npz file"),
    (lambda t: _save(t, X_train=np.ones((3, 2)), y_train=np.zeros(3)),
     r"missing key\(s\) X_test, y_test \(the file has X_train, y_train\)"),
    (lambda t: _save(t, A=np.ones(3)), r"missing key\(s\) X, y \(the file has A\)"),
    (lambda t: _save(t, X=np.ones(4), y=np.zeros(4)), "X must be a 2-D numeric"),
    (lambda t: _save(t, X=np.ones((4, 2)) + 1j, y=np.zeros(4)), "X must be a 2-D numeric"),
    (lambda t: _save(t, X=np.ones((4, 2)), y=np.zeros((4, 1))), "y must be a 1-D"),
    (lambda t: _save(t, X=np.ones((4, 2)), y=np.zeros(3)), "X has 4 rows but y has 3"),
    (lambda t: _save(t, X_train=np.ones((4, 2)), y_train=np.zeros(4), X_test=np.ones((2, 3)),
                     y_test=np.zeros(2)), "X_train has 2 features but X_test has 3"),
])
def test_npz_bad_files(tmp_path, make, text):
    path = make(tmp_path)
    with pytest.raises(DataError, match=text) as e:
        npz_preflight(path)
    assert str(path) in str(e.value)
    with pytest.raises(DataError, match=text):
        npz(path)


@pytest.mark.parametrize("arrays_, text", [
    ({"X": np.array([[1.0, np.nan], [2, 3], [4, 5]]), "y": np.array([0, 1, 1])},
     r"X holds nan at row 0, column 1"),
    ({"X": np.array([[1.0, 2], [2, 3], [4, np.inf]]), "y": np.array([0, 1, 1])},
     r"X holds inf at row 2, column 1"),
    ({"X": np.array([[1.0, 2], [2, 3], [4, 1e300]]), "y": np.array([0, 1, 1])},
     "too large for float32"),
    ({"X": np.ones((3, 2)), "y": np.array([0, 1.5, 1])}, r"y holds 1.5 at 1; labels must be whole"),
    ({"X_train": np.ones((3, 2)), "y_train": np.array([0, 1, 1]), "X_test": np.ones((1, 2)),
      "y_test": np.array([4])}, "test label 4 .* never occurs in the training data"),
    ({"X_train": np.ones((2, 2)), "y_train": np.array([0, 1]), "X_test": np.ones((1, 2)),
      "y_test": np.array(["a"])}, "both hold numbers or both strings"),
    ({"X": np.ones((3, 2)), "y": np.array([0, 1, 2])}, "single sample"),
])
def test_npz_bad_contents(tmp_path, arrays_, text):
    path = _save(tmp_path, **arrays_)
    npz_preflight(path)  # headers are fine
    with pytest.raises(DataError, match=text):
        npz(path)


def test_npz_object_arrays_and_options(tmp_path):
    path = tmp_path / "o.npz"
    np.savez(path, X=np.array([[1, "a"]], dtype=object), y=np.array([0]))
    with pytest.raises(DataError, match="X must be a 2-D numeric"):
        npz(path)
    with pytest.raises(ConfigError, match="test_fraction"):
        npz(path, test_fraction=1.0)
    with pytest.raises(ConfigError, match="path"):
        npz(None)
    with pytest.raises(DataError, match="folder"):
        npz_preflight(tmp_path)


# --------------------------------------------------------------------------- CSV


def test_csv_with_test_file_by_name_and_index(tmp_path):
    train = _write(tmp_path / "tr.csv", "a,label,b\n1,5,2.5\n3,7,4\n5,5,6\n7,9,8\n")
    test = _write(tmp_path / "te.csv", "b,label,a\n10,9,11\n12,5,13\n")
    csv_preflight(train, test)
    s = csv(str(train), str(test))
    assert s.X_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert np.array_equal(s.X_train, [[1, 2.5], [3, 4], [5, 6], [7, 8]])
    assert np.array_equal(s.X_test, [[11, 10], [13, 12]])  # test columns matched by name
    assert list(s.y_train) == [0, 1, 0, 2] and list(s.y_test) == [2, 0]
    by_index = csv(train, test, label=1)
    for x, y in zip(s, by_index):
        assert np.array_equal(x, y)


def test_csv_numeric_labels_order_as_numbers(tmp_path):
    train = _write(tmp_path / "tr.csv", "x,y\n0,10\n1,9\n2,10.0\n3,-1\n")
    s = csv(train, label="y", test_fraction=0.25)
    assert sorted(set(s.y_train) | set(s.y_test)) == [0, 1, 2]
    full = dict(zip(np.concatenate([s.X_train[:, 0], s.X_test[:, 0]]),
                    np.concatenate([s.y_train, s.y_test])))
    assert full == {0: 2, 1: 1, 2: 2, 3: 0}  # -1 < 9 < 10 (and 10.0 is 10)


def test_csv_string_labels_and_split(tmp_path):
    rows = "\n".join(f"{['cat', 'dog', 'ant'][i % 3]},{i},{i * 2}" for i in range(30))
    train = _write(tmp_path / "tr.csv", "kind,f1,f2\n" + rows + "\n")
    s = csv(train, label="kind", test_fraction=0.2, seed=3)
    assert s.X_train.shape == (24, 2) and s.X_test.shape == (6, 2)
    assert np.array_equal(np.bincount(s.y_test), [2, 2, 2])
    # ant < cat < dog; f1 = i names the row
    for X, y in ((s.X_train, s.y_train), (s.X_test, s.y_test)):
        assert all(["cat", "dog", "ant"][int(r[0]) % 3] == ["ant", "cat", "dog"][c]
                   for r, c in zip(X, y))
    assert np.array_equal(csv(train, label=0, seed=3).X_test, s.X_test)


@pytest.mark.parametrize("train_text, test_text, kwargs, error, text", [
    ("a,label\n1,0\nx,1\n", None, {}, DataError,
     r"data row 2, column 'a': 'x' is not a number"),
    ("a,b,label\n1,2,0\n3,,1\n", None, {}, DataError, r"data row 2, column 'b': empty cell"),
    ("a,label\n1,0\n2,\n", None, {}, DataError, r"data row 2: the label column 'label' is empty"),
    ("a,label\n1,0\n2,1\n", None, {"label": "cls"}, DataError,
     r"no column named 'cls'; the columns are 'a', 'label'"),
    ("a,label\n1,0\n2,1\n", None, {"label": 5}, DataError, "index 5 is out of range"),
    ("a,label\n1,0\n2,1\n", None, {"label": -1}, ConfigError, "label index must be >= 0"),
    ("label\n1\n2\n", None, {}, DataError, "no feature columns"),
    ("a,label\n", None, {}, DataError, "no data rows"),
    ("", None, {}, DataError, "the file is empty"),
    ("a,label\n1,0\n2,1\n", "a,label\n1,2\n", {}, DataError,
     "test label 2 .* never occurs in the training data"),
    ("a,label\n1,x\n2,y\n", "a,label\n1,z\n", {}, DataError, "test label 'z'"),
    ("a,label\n1,0\n2,1\n", "a,c,label\n1,2,0\n", {}, DataError,
     r"columns differ from those of .*extra 'c'"),
    ("a,b,label\n1,2,0\n2,3,1\n", "a,label\n1,0\n", {}, DataError, r"missing 'b'"),
    ("a,label\n1,0\n2,1\n3,0\n", None, {"test_fraction": 0}, ConfigError, "test_fraction"),
])
def test_csv_bad_inputs(tmp_path, train_text, test_text, kwargs, error, text):
    train = _write(tmp_path / "train.csv", train_text)
    test = None if test_text is None else _write(tmp_path / "test.csv", test_text)
    with pytest.raises(error, match=text):
        csv(train, test, **kwargs)


def test_csv_missing_files_and_preflight(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        csv_preflight(tmp_path / "nope.csv")
    train = _write(tmp_path / "t.csv", "a,label\n1,0\n")
    with pytest.raises(DataError, match="other.csv: file not found"):
        csv_preflight(train, tmp_path / "other.csv")
    with pytest.raises(ConfigError, match="'train'"):
        csv(None)
    with pytest.raises(DataError, match="no column named 'y'"):
        csv_preflight(train, label="y")
    csv_preflight(train)


# --------------------------------------------------------------------------- digits


def test_digits():
    pytest.importorskip("sklearn")
    digits_preflight()
    s = digits(seed=0)
    assert s.X_train.shape == (1797 - 450, 64) and s.X_test.shape == (450, 64)
    assert s.X_train.dtype == np.float32 and s.y_test.dtype == np.int64
    assert s.X_train.min() >= 0 and s.X_train.max() <= 1 and s.X_test.max() == 1
    assert set(s.y_test) == set(range(10))
    assert np.array_equal(digits(seed=0).X_test, s.X_test)
    assert not np.array_equal(digits(seed=1).X_test, s.X_test)
    assert digits(n_test=100).X_test.shape == (100, 64)


def test_digits_sizes():
    with pytest.raises(ConfigError, match="below 1,797"):
        digits_preflight(n_test=1797)
    with pytest.raises(ConfigError, match="n_test"):
        digits(n_test=0)


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(DataError, match=r"pip install 'lshprof\[digits\]'"):
        digits_preflight()
    with pytest.raises(DataError, match="needs scikit-learn"):
        arrays.digits()
