"""The user's own data (a ``.npz`` file or CSV tables) and scikit-learn's bundled digits.

Labels. Whatever the labels are in the files (any integers, whole-number floats, or
strings), the :class:`Split` holds them as int64 class numbers 0 .. C-1: class k is the
k-th smallest distinct label of the *training* data (numbers in numeric order, strings
in code-point order), and the test data is numbered by the same table. A test label
that never occurs in the training data is an error, since no classifier could learn it.
:func:`label_table` gives the table for given training labels.

Held-out test sets. When a source has no separate test data, a seeded *stratified*
split holds out ``test_fraction`` of the samples (rounded, at least one): each class
gives about its share, by largest remainders, and keeps at least one sample in
training, so classes with a single sample stay wholly in training. Train and test rows
are each in a seeded random order.
"""

from __future__ import annotations

import importlib
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from lshprof.errors import ConfigError, DataError
from lshprof.data._generated import Split
from lshprof.data import check_classes
from lshprof.data.fetch import is_symlink_loop

__all__ = ["npz", "npz_preflight", "npz_shape", "npz_contents", "csv", "csv_preflight",
           "csv_shape", "csv_contents", "digits", "digits_preflight", "label_table",
           "stratified_split", "DIGITS_SIZE"]

#: Images in scikit-learn's digits data set.
DIGITS_SIZE = 1797

_SPLIT_KEYS = ("X_train", "y_train", "X_test", "y_test")
_WHOLE_KEYS = ("X", "y")
_DIGITS_MISSING = "the digits data set needs scikit-learn: pip install 'lshprof[digits]'"


# --------------------------------------------------------------------------- shared


def _check_fraction(where: str, test_fraction) -> float:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) \
            or not 0 < test_fraction < 1:
        raise ConfigError(f"{where}: test_fraction must be in (0, 1), got {test_fraction!r}")
    return float(test_fraction)


def _check_path(where: str, key: str, path) -> Path:
    if path is None or (isinstance(path, str) and not path.strip()):
        raise ConfigError(f"{where}: give the file's path in option {key!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{where}: {key} must be a path, got {path!r}")
    p = Path(path).expanduser()
    if not p.is_file():
        what = "is a folder, not a file" if p.is_dir() else \
            "is a symlink loop (the symbolic links on the way to it point at each other), " \
            "not a file" if is_symlink_loop(p) else "file not found"
        raise DataError(f"{p}: {what}; check the {where} option {key!r}")
    return p


#: What :func:`npz_contents` and :func:`csv_contents` read, by file (path, size and
#: modification time), for the next load of the same unchanged file: a check that reads
#: the user's files then costs no second reading. Taken out by the load.
_READ: dict[tuple, Any] = {}


def _file_key(kind: str, *paths: Path | None, extra: tuple = ()) -> tuple:
    parts: list[Any] = [kind, *extra]
    for p in paths:
        if p is None:
            parts.append(None)
            continue
        st = p.stat()
        parts.append((str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(parts)


def _remember(key: tuple, value) -> None:
    _READ.clear()  # one data set at a time: never hold two files' contents
    _READ[key] = value


def label_table(y_train: np.ndarray) -> np.ndarray:
    """The distinct training labels in class order: class k is ``label_table(y)[k]``."""
    return np.unique(np.asarray(y_train))


def _encode(y_train: np.ndarray, y_test: np.ndarray, test_name: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Class numbers of ``y_train`` and ``y_test`` by the training labels' table; raise
    when a test label is not in it."""
    table = label_table(y_train)
    ytr = np.searchsorted(table, y_train).astype(np.int64)
    yte = np.searchsorted(table, y_test).astype(np.int64)
    unseen = (yte >= len(table)) | (table[np.minimum(yte, len(table) - 1)] != y_test)
    if unseen.any():
        i = int(np.argmax(unseen))
        value = y_test[i].item() if hasattr(y_test[i], "item") else y_test[i]
        raise DataError(f"{test_name}: test label {value!r} (at {i}) never occurs in the "
                        f"training data, so no classifier can learn it "
                        f"({int(unseen.sum())} test sample(s) affected)")
    return ytr, yte


def stratified_split(y: np.ndarray, n_test: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers (training, test) of a stratified split of labels ``y`` holding out
    ``n_test`` rows, fewer only when classes run out of spare samples (each class keeps
    at least one in training). Class c gives ``floor(n_test * n_c / n)`` rows, and the
    rows still missing go one each to the classes with the largest remainders (ties
    broken at random)."""
    y = np.asarray(y)
    n = y.size
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    spare = counts - 1
    if spare.sum() == 0:
        raise DataError("every class has a single sample, so none can be held out for "
                        "testing; give a separate test set")
    target = n_test * counts / n
    take = np.minimum(np.floor(target).astype(np.int64), spare)
    left = n_test - int(take.sum())
    while left > 0 and (take < spare).any():
        open_ = np.flatnonzero(take < spare)
        rema = (target - take)[open_]
        order = open_[np.lexsort((rng.random(open_.size), -rema))]
        step = order[:left]
        take[step] += 1
        left -= step.size
    test_mask = np.zeros(n, dtype=bool)
    by_class = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for c in np.flatnonzero(take):
        rows = by_class[starts[c]:starts[c] + counts[c]]
        test_mask[rng.choice(rows, size=int(take[c]), replace=False)] = True
    train_idx = rng.permutation(np.flatnonzero(~test_mask))
    test_idx = rng.permutation(np.flatnonzero(test_mask))
    return train_idx, test_idx


def _check_holdout(y: np.ndarray, where: str) -> None:
    """Raise unless some sample of ``y`` can be held out for testing (a class with two)."""
    if np.unique(y, return_counts=True)[1].max() < 2:
        raise DataError(f"{where}: every class has a single sample, so none can be held out "
                        f"for testing; give a separate test set")


def _fraction_count(n: int, test_fraction: float) -> int:
    return min(n - 1, max(1, int(round(test_fraction * n))))


def _labels_kind(name: str, where: str, y: np.ndarray) -> np.ndarray:
    """``y`` as int64 (numbers) or str (strings); raise when not whole numbers."""
    if y.dtype.kind in "US":
        return y.astype(str)
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind in "iu":
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{where}: {name} holds {y[i].item()!r} at {i}; labels must be "
                            f"whole numbers or strings")
        return y.astype(np.int64)
    raise DataError(f"{where}: {name} must hold integer labels (or strings), got {y.dtype}")


def _features(name: str, where: str, X: np.ndarray) -> np.ndarray:
    """``X`` as float32; raise naming the first value that is not finite there."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = X.astype(np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        value = X[r, c].item()
        why = "too large for float32" if math.isfinite(value) else "not finite"
        raise DataError(f"{where}: {name} holds {value!r} at row {r}, column {c} ({why}, "
                        f"{int(bad.sum())} such value(s)); remove or replace them")
    return out


# --------------------------------------------------------------------------- .npz


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype] | None]:
    """Array name -> (shape, dtype) from the ``.npy`` headers in the zip, without reading
    the data (None where the header is of a version this reader does not know)."""
    fmt = np.lib.format
    out: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with zf.open(info) as fh:
                    version = fmt.read_magic(fh)
                    if version == (1, 0):
                        shape, _, dtype = fmt.read_array_header_1_0(fh)
                    elif version == (2, 0):
                        shape, _, dtype = fmt.read_array_header_2_0(fh)
                    else:
                        out[name] = None
                        continue
                out[name] = (tuple(shape), np.dtype(dtype))
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a .npz file (not a zip archive); save your arrays with "
                        f"numpy.savez(path, X_train=..., y_train=..., X_test=..., "
                        f"y_test=...)") from None
    except (OSError, ValueError, EOFError, zipfile.LargeZipFile) as exc:
        raise DataError(f"{path}: cannot read the .npz file: {exc}") from None
    return out


def _npz_layout(path: Path, keys) -> tuple[str, ...]:
    if all(k in keys for k in _SPLIT_KEYS):
        return _SPLIT_KEYS
    if all(k in keys for k in _WHOLE_KEYS):
        return _WHOLE_KEYS
    want = _SPLIT_KEYS if any(k in keys for k in _SPLIT_KEYS) else _WHOLE_KEYS
    missing = [k for k in want if k not in keys]
    have = ", ".join(sorted(keys)) or "no arrays"
    raise DataError(f"{path}: missing key(s) {', '.join(missing)} (the file has {have}); "
                    f"it needs X_train, y_train, X_test, y_test, or X and y")


def _check_meta(path: Path, meta: dict[str, tuple[tuple[int, ...], np.dtype] | None],
                layout: tuple[str, ...]) -> None:
    """Shapes and element types of the arrays, from headers or loaded arrays."""
    pairs = [("X_train", "y_train"), ("X_test", "y_test")] if layout == _SPLIT_KEYS \
        else [("X", "y")]
    for xk, yk in pairs:
        xm, ym = meta.get(xk), meta.get(yk)
        if xm is not None:
            shape, dtype = xm
            if len(shape) != 2 or dtype.kind not in "biuf" or 0 in shape:
                raise DataError(f"{path}: {xk} must be a 2-D numeric array [samples, "
                                f"features], got {dtype} of shape {shape}")
        if ym is not None:
            shape, dtype = ym
            if len(shape) != 1 or dtype.kind not in "biufUS":
                raise DataError(f"{path}: {yk} must be a 1-D array of integer (or string) "
                                f"labels, got {dtype} of shape {shape}")
        if xm is not None and ym is not None and xm[0][0] != ym[0][0]:
            raise DataError(f"{path}: {xk} has {xm[0][0]:,} rows but {yk} has "
                            f"{ym[0][0]:,} labels")
    if layout == _SPLIT_KEYS:
        a, b = meta.get("X_train"), meta.get("X_test")
        if a is not None and b is not None and a[0][1] != b[0][1]:
            raise DataError(f"{path}: X_train has {a[0][1]:,} features but X_test has "
                            f"{b[0][1]:,}")
    else:
        xm = meta.get("X")
        if xm is not None and xm[0][0] < 2:
            raise DataError(f"{path}: X has {xm[0][0]} row(s); at least 2 are needed to hold "
                            f"some out for testing")


def npz_preflight(path: str | os.PathLike | None = None, test_fraction: float = 0.2,
                  **_) -> None:
    """Check, reading only the array headers, that ``path`` is a ``.npz`` file with the
    needed arrays of fitting shapes and types."""
    _check_fraction("npz", test_fraction)
    p = _check_path("npz", "path", path)
    meta = _npz_headers(p)
    _check_meta(p, meta, _npz_layout(p, meta))


def _nbytes(meta: tuple[tuple[int, ...], np.dtype] | None) -> int:
    return 0 if meta is None else math.prod(meta[0]) * meta[1].itemsize


def npz_shape(path: str | os.PathLike | None = None, test_fraction: float = 0.2,
              **_) -> Any:
    """The :class:`~lshprof.data.DataShape` of a ``.npz`` file, from its array headers
    (None when the file cannot be read); the classes are not known before loading."""
    from lshprof.data import DataShape

    try:
        p = _check_path("npz", "path", path)
        meta = _npz_headers(p)
        layout = _npz_layout(p, meta)
        _check_meta(p, meta, layout)
    except (ConfigError, DataError, OSError):
        return None
    if any(meta.get(k) is None for k in layout):
        return None
    raw = sum(_nbytes(meta[k]) for k in layout)
    if layout == _WHOLE_KEYS:
        (n, d) = meta["X"][0]
        n_test = _fraction_count(n, float(test_fraction))
        # the file's arrays, float32 features and their two halves, int64 class numbers
        return DataShape(n - n_test, n_test, d, None, raw + 8 * n * d + 16 * n, exact=False)
    (n_train, d), (n_test, _) = meta["X_train"][0], meta["X_test"][0]
    return DataShape(n_train, n_test, d, None, raw + 4 * (n_train + n_test) * d
                     + 16 * (n_train + n_test))


def _npz_read(p: Path, layout: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The checked arrays of ``p``: float32 features and int64 class numbers."""
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in layout}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{p}: holds object arrays; save plain numeric (or string) "
                            f"arrays with numpy.savez") from None
        raise DataError(f"{p}: cannot read the .npz file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{p}: cannot read the .npz file: {exc}") from None
    _check_meta(p, {k: (a.shape, a.dtype) for k, a in arrays.items()}, layout)
    if layout == _WHOLE_KEYS:
        X = _features("X", str(p), arrays["X"])
        y = _labels_kind("y", str(p), arrays["y"])
        ycls = np.searchsorted(label_table(y), y).astype(np.int64)
        check_classes(y, f"{p}: y")
        _check_holdout(ycls, str(p))
        return {"X": X, "y": ycls}
    X_train = _features("X_train", str(p), arrays["X_train"])
    X_test = _features("X_test", str(p), arrays["X_test"])
    y_train = _labels_kind("y_train", str(p), arrays["y_train"])
    y_test = _labels_kind("y_test", str(p), arrays["y_test"])
    if (y_train.dtype.kind == "U") != (y_test.dtype.kind == "U"):
        raise DataError(f"{p}: y_train and y_test must both hold numbers or both strings, "
                        f"got {arrays['y_train'].dtype} and {arrays['y_test'].dtype}")
    check_classes(y_train, f"{p}: y_train")
    ytr, yte = _encode(y_train, y_test, f"{p}: y_test")
    return {"X_train": X_train, "y_train": ytr, "X_test": X_test, "y_test": yte}


def npz_contents(path: str | os.PathLike | None = None, test_fraction: float = 0.2,
                 **_) -> None:
    """Check every value of the ``.npz`` file as :func:`npz` would (finite features,
    usable labels, at least two classes), keeping the arrays for the next :func:`npz` of
    the same unchanged file."""
    npz_preflight(path, test_fraction)
    p = _check_path("npz", "path", path)
    layout = _npz_layout(p, _npz_headers(p))
    _remember(_file_key("npz", p), _npz_read(p, layout))


def npz(path: str | os.PathLike | None = None, test_fraction: float = 0.2, *,
        seed: int = 0) -> Split:
    """Arrays from a ``.npz`` file: ``X_train, y_train, X_test, y_test``, or ``X, y`` (then
    a seeded stratified split holds out ``test_fraction``; see the module text).

    ``X``: 2-D numbers (float32 in the split), every value finite; ``y``: 1-D integers,
    whole-number floats or strings, renumbered 0 .. C-1 by the module's label rule; the
    training labels must hold at least two classes.
    """
    test_fraction = _check_fraction("npz", test_fraction)
    p = _check_path("npz", "path", path)
    meta = _npz_headers(p)
    layout = _npz_layout(p, meta)
    _check_meta(p, meta, layout)
    arrays = _READ.pop(_file_key("npz", p), None) or _npz_read(p, layout)
    if layout == _WHOLE_KEYS:
        X, ycls = arrays["X"], arrays["y"]
        rng = np.random.default_rng(seed)
        tr, te = stratified_split(ycls, _fraction_count(len(ycls), test_fraction), rng)
        return Split(X[tr], ycls[tr], X[te], ycls[te])
    return Split(arrays["X_train"], arrays["y_train"], arrays["X_test"], arrays["y_test"])


# --------------------------------------------------------------------------- CSV


def _read_csv(path: Path, **kwargs):
    import pandas as pd

    try:
        return pd.read_csv(path, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; a CSV file needs a header row naming "
                        f"the columns") from None
    except pd.errors.ParserError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else "parse error"
        raise DataError(f"{path}: not a well-formed CSV file: {why}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file (cannot decode it as UTF-8)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _csv_columns(path: Path) -> list[str]:
    return [str(c) for c in _read_csv(path, nrows=0).columns]


def _label_name(path: Path, columns: list[str], label) -> str:
    if isinstance(label, bool) or not isinstance(label, (str, int)):
        raise ConfigError(f"csv: label must be a column name or a 0-based column index, "
                          f"got {label!r}")
    if isinstance(label, int):
        if label < 0:
            raise ConfigError(f"csv: label index must be >= 0, got {label}")
        if label >= len(columns):
            raise DataError(f"{path}: label column index {label} is out of range; the file "
                            f"has {len(columns)} column(s), numbered from 0")
        return columns[label]
    if label not in columns:
        shown = ", ".join(repr(c) for c in columns[:10]) + (", ..." if len(columns) > 10 else "")
        raise DataError(f"{path}: no column named {label!r}; the columns are {shown} (set "
                        f"label to a column name or a 0-based index)")
    return label


def _csv_plan(train, test, label) -> tuple[Path, Path | None, str, list[str]]:
    """The files, the label column's name and the feature columns' names, from headers."""
    train_p = _check_path("csv", "train", train)
    test_p = None if test is None else _check_path("csv", "test", test)
    columns = _csv_columns(train_p)
    name = _label_name(train_p, columns, label)
    features = [c for c in columns if c != name]
    if not features:
        raise DataError(f"{train_p}: the only column is the label {name!r}; there are no "
                        f"feature columns")
    if test_p is not None:
        other = _csv_columns(test_p)
        missing = [c for c in columns if c not in other]
        extra = [c for c in other if c not in columns]
        if missing or extra:
            parts = ([f"missing {', '.join(map(repr, missing[:5]))}"] if missing else []) + \
                    ([f"extra {', '.join(map(repr, extra[:5]))}"] if extra else [])
            raise DataError(f"{test_p}: columns differ from those of {train_p}: "
                            f"{'; '.join(parts)}")
    return train_p, test_p, name, features


def _csv_table(path: Path, name: str, features: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32) and raw labels (str) of one CSV file."""
    import pandas as pd

    # only an empty cell is missing: text such as "nan" or "NA" is named as not a number
    df = _read_csv(path, dtype={name: str}, keep_default_na=False, na_values=[""],
                   low_memory=False)
    if len(df) == 0:
        raise DataError(f"{path}: no data rows below the header")
    X = np.empty((len(df), len(features)), dtype=np.float32)
    for j, col in enumerate(features):
        s = df[col]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            num = pd.to_numeric(s, errors="coerce") if not pd.api.types.is_bool_dtype(s) \
                else pd.Series(np.nan, index=s.index)
            bad = (num.isna() & s.notna()).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(f"{path}: data row {i + 1}, column {col!r}: "
                                f"{str(s.iloc[i])!r} is not a number; every column but the "
                                f"label must be numeric")
            s = num
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(over="ignore", invalid="ignore"):
            bad = ~np.isfinite(values.astype(np.float32))
        if bad.any():
            i = int(np.argmax(bad))
            v = float(values[i])
            what = "empty cell" if math.isnan(v) else \
                f"{v!r} is {'too large for float32' if math.isfinite(v) else 'not finite'}"
            raise DataError(f"{path}: data row {i + 1}, column {col!r}: {what}; every feature "
                            f"needs a finite number")
        X[:, j] = values
    labels = df[name]
    empty = labels.isna().to_numpy()
    if empty.any():
        i = int(np.argmax(empty))
        raise DataError(f"{path}: data row {i + 1}: the label column {name!r} is empty")
    return X, np.array([str(v).strip() for v in labels], dtype=str)


def _label_values(*raw: np.ndarray) -> list[np.ndarray]:
    """CSV labels as int64 when every one (in all files) is a whole number, else as the
    strings themselves."""
    try:
        nums = [r.astype(np.float64) for r in raw]
    except ValueError:
        return list(raw)
    if all(np.all(np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2.0 ** 62)) for v in nums):
        return [v.astype(np.int64) for v in nums]
    return list(raw)


def csv_preflight(train: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
                  label: str | int = "label", test_fraction: float = 0.2, **_) -> None:
    """Check, reading only the header rows, that the files exist and hold the label
    column, at least one feature column, and (for ``test``) the same columns."""
    _check_fraction("csv", test_fraction)
    _csv_plan(train, test, label)


def _count_rows(path: Path) -> int:
    """Data rows of a CSV file, counted as non-empty lines below the header (a cell that
    holds a line break makes this an over-count)."""
    rows, last = 0, b"\n"
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            rows += chunk.count(b"\n") - chunk.count(b"\n\n")
            last = chunk[-1:]
    return max(0, rows + (last != b"\n") - 1)


def csv_shape(train: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
              label: str | int = "label", test_fraction: float = 0.2, **_) -> Any:
    """The :class:`~lshprof.data.DataShape` of CSV files from their headers and line counts
    (so not ``exact``; None when a file cannot be read); classes are not known before
    loading."""
    from lshprof.data import DataShape

    try:
        train_p, test_p, _, features = _csv_plan(train, test, label)
        rows = _count_rows(train_p)
        n_test = _count_rows(test_p) if test_p is not None else \
            _fraction_count(max(rows, 2), float(test_fraction))
    except (ConfigError, DataError, OSError, ValueError):
        return None
    n_train = rows if test_p is not None else max(0, rows - n_test)
    d = len(features)
    # pandas' table (float64 cells and the label as text), the float32 features, a copy
    # of them when a test share is held out, and the labels
    per_row = 12 * d + 80 + (4 * d if test_p is None else 0)
    return DataShape(n_train, n_test, d, None, (n_train + n_test) * per_row, exact=False)


def _csv_read(train_p: Path, test_p: Path | None, name: str, features: list[str]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Checked features and label values of the training file (and the test file)."""
    X_train, raw_train = _csv_table(train_p, name, features)
    if test_p is None:
        (y,) = _label_values(raw_train)
        if len(y) < 2:
            raise DataError(f"{train_p}: only one data row; at least 2 are needed to hold "
                            f"some out for testing")
        check_classes(y, f"{train_p}: label column {name!r}")
        _check_holdout(y, str(train_p))
        return X_train, y, None, None
    X_test, raw_test = _csv_table(test_p, name, features)
    y_train, y_test = _label_values(raw_train, raw_test)
    check_classes(y_train, f"{train_p}: label column {name!r}")
    return X_train, y_train, X_test, y_test


def csv_contents(train: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
                 label: str | int = "label", test_fraction: float = 0.2, **_) -> None:
    """Check every cell of the CSV files as :func:`csv` would (numeric, finite features;
    labels present, of at least two classes), keeping what was read for the next
    :func:`csv` of the same unchanged files."""
    _check_fraction("csv", test_fraction)
    train_p, test_p, name, features = _csv_plan(train, test, label)
    _remember(_file_key("csv", train_p, test_p, extra=(name,)),
              _csv_read(train_p, test_p, name, features))


def csv(train: str | os.PathLike | None = None, test: str | os.PathLike | None = None,
        label: str | int = "label", test_fraction: float = 0.2, *, seed: int = 0) -> Split:
    """Samples from CSV files with a header row: ``label`` names the label column (a
    header name, or a 0-based index); every other column is a numeric feature (float32 in
    the split). ``test`` must have the same columns (in any order); without it a seeded
    stratified split holds out ``test_fraction`` of ``train`` (see the module text).

    Labels are read as text: when every label in both files is a whole number they are
    ordered as numbers, otherwise as strings; either way they become 0 .. C-1 by the
    module's label rule. Empty or non-numeric feature cells (text such as ``nan`` too),
    empty labels and training labels of a single class are errors naming the file, the
    data row (1 = first row below the header) and the column.
    """
    test_fraction = _check_fraction("csv", test_fraction)
    train_p, test_p, name, features = _csv_plan(train, test, label)
    key = _file_key("csv", train_p, test_p, extra=(name,))
    X_train, y_train, X_test, y_test = _READ.pop(key, None) or \
        _csv_read(train_p, test_p, name, features)
    if test_p is None:
        ycls = np.searchsorted(label_table(y_train), y_train).astype(np.int64)
        rng = np.random.default_rng(seed)
        tr, te = stratified_split(ycls, _fraction_count(len(ycls), test_fraction), rng)
        return Split(X_train[tr], ycls[tr], X_train[te], ycls[te])
    ytr, yte = _encode(y_train, y_test, f"{test_p}: column {name!r}")
    return Split(X_train, ytr, X_test, yte)


# --------------------------------------------------------------------------- digits


def _check_digits(n_test) -> None:
    if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 1:
        raise ConfigError(f"digits: n_test must be a positive integer, got {n_test!r}")
    if n_test >= DIGITS_SIZE:
        raise ConfigError(f"digits: n_test must be below {DIGITS_SIZE:,} (the whole data set), "
                          f"got {n_test:,}")


def digits_preflight(n_test: int = 450, **_) -> None:
    """Raise when ``n_test`` is out of range or scikit-learn is not installed."""
    _check_digits(n_test)
    try:
        importlib.import_module("sklearn.datasets")
    except ImportError:
        raise DataError(_DIGITS_MISSING) from None


def digits(n_test: int = 450, *, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download): 64
    pixels scaled from 0..16 to [0, 1] (float32), and a seeded stratified split holding
    out ``n_test`` images."""
    digits_preflight(n_test)
    from sklearn.datasets import load_digits

    data = load_digits()
    X = (np.asarray(data.data, dtype=np.float32) / np.float32(16))
    y = np.asarray(data.target, dtype=np.int64)
    tr, te = stratified_split(y, n_test, np.random.default_rng(seed))
    return Split(X[tr], y[tr], X[te], y[te])
