"""Data sets: generated ones, standard files fetched once into a cache, and the user's own.

Every data set is named in :data:`DATASETS` with its options (and their defaults),
the reduced options ``--quick`` uses, and, for data that lives in files, the name
``lshprof data fetch NAME`` downloads. :func:`load` builds a :class:`Split` from a
name and options; :func:`check` validates options and looks for missing files
without loading anything, so a scenario fails before any work starts;
:func:`data_shape` tells the sizes a data set will have and about how much memory
building it takes (from its options, or a file's headers), so a run that cannot fit
is refused first; :func:`check_contents` reads the user's own files (CSV, ``.npz``)
and checks every value and label, keeping what it read for the :func:`load` that
follows.

Loaders (and numpy) are imported on first use, so listing data sets stays light.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from lshprof.errors import ConfigError

if TYPE_CHECKING:
    from lshprof.data._generated import Split

_GENERATED = ("Split", "gaussian_clusters", "rectangles", "convex", "IMAGE_SIDE")


def __getattr__(name: str):
    # the generators need numpy; the registry does not (``lshprof --help`` stays light)
    if name in _GENERATED:
        from lshprof.data import _generated

        return getattr(_generated, name)
    raise AttributeError(f"module 'lshprof.data' has no attribute {name!r}")

__all__ = ["Split", "gaussian_clusters", "rectangles", "convex", "IMAGE_SIDE", "Option",
           "Dataset", "DATASETS", "REQUIRED", "load", "check", "resolve_options", "DataShape",
           "data_shape", "check_contents", "check_classes"]

#: Marks an option with no default: the scenario must give it.
REQUIRED = object()


@dataclass(frozen=True)
class Option:
    """One option of a data set: its default, the type(s) a value may have, a check of the
    value (returns an error text, or None when the value is fine) and a line of help."""

    default: Any
    types: tuple[type, ...]
    help: str
    valid: Callable[[Any], str | None] | None = None


def _positive(v) -> str | None:
    return None if v >= 1 else "must be a positive integer"


def _nonneg(v) -> str | None:
    return None if 0 <= v < math.inf else "must be a finite number >= 0"


def _finite_positive(v) -> str | None:
    return None if 0 < v < math.inf else "must be a finite number > 0"


def _open_fraction(v) -> str | None:
    return None if 0 < v < 1 else "must be in (0, 1)"


def _count(default: int, help: str) -> Option:
    return Option(default, (int,), help, _positive)


def _real(default: float, help: str, valid=_nonneg) -> Option:
    return Option(default, (int, float), help, valid)


def _path(help: str, default: Any = REQUIRED) -> Option:
    return Option(default, (str, type(None)), help)


class DataShape(NamedTuple):
    """What a data set will be, known before it is built: samples, features and classes
    (None where only loading tells, e.g. a CSV file's classes), and ``nbytes``, about how
    much memory building the split takes at its peak (the arrays in the end, the loader's
    temporaries, a file's raw contents). ``exact``: the sample counts are exact (a CSV
    file's rows are counted as lines, so they are not)."""

    n_train: int | None
    n_test: int | None
    n_features: int | None
    n_classes: int | None
    nbytes: int
    exact: bool = True


def _split_bytes(n_train: int, n_test: int, n_features: int, per_value: float = 4.0) -> int:
    """float32 features (or ``per_value`` bytes per value at the peak) and int64 labels."""
    return int((n_train + n_test) * (n_features * per_value + 8))


def _gaussian_shape(o: dict) -> DataShape:
    # drawn in float64 (samples, noise and their sum), then standardised into float32
    d = o["n_features"]
    return DataShape(o["n_train"], o["n_test"], d, o["n_classes"],
                     _split_bytes(o["n_train"], o["n_test"], d, 8 + 4)
                     + 16 * max(o["n_train"], o["n_test"]) * d)


def _image_shape(n_features: int, n_classes: int, per_value: float = 5.0,
                 fixed: int = 0) -> Callable[[dict], DataShape]:
    """Images of ``n_features`` pixels: ``per_value`` bytes per pixel at the peak (bool or
    uint8 images and the float32 split), plus ``fixed`` bytes (a file's raw contents)."""
    def shape(o: dict) -> DataShape:
        return DataShape(o["n_train"], o["n_test"], n_features, n_classes,
                         _split_bytes(o["n_train"], o["n_test"], n_features, per_value) + fixed)
    return shape


def _norb_shape(o: dict) -> DataShape:
    d = 2 * o["side"] ** 2
    # one part's raw pairs (uint8, 2 x 96 x 96 each, 24,300 of them) next to the pooled split
    return DataShape(o["n_train"], o["n_test"], d, 5,
                     _split_bytes(o["n_train"], o["n_test"], d) + 24300 * 2 * 96 * 96)


def _xc_shape(o: dict) -> DataShape:
    d, c = o["n_features"], o["n_classes"]
    # the class prototypes (float32 [n_classes, n_features]) and the split
    return DataShape(o["n_train"], o["n_test"], d, c,
                     _split_bytes(o["n_train"], o["n_test"], d) + 4 * c * d + 16 * c)


def _digits_shape(o: dict) -> DataShape:
    from lshprof.data.arrays import DIGITS_SIZE

    return DataShape(DIGITS_SIZE - o["n_test"], o["n_test"], 64, 10,
                     _split_bytes(DIGITS_SIZE, 0, 64, 16))


def _file_shape(which: str) -> Callable[[dict], DataShape]:
    def shape(o: dict) -> DataShape:
        from lshprof.data import arrays

        return getattr(arrays, which)(**o)
    return shape


@dataclass(frozen=True)
class Dataset:
    """A named data set. ``loader`` is ``"module:function"`` under ``lshprof.data``, called as
    ``function(**options, seed=seed)`` and returning a :class:`Split`; ``preflight``
    (optional, same form) is called as ``function(**options)`` before any work and raises
    :class:`~lshprof.errors.DataError` when files or packages are missing. ``shape``
    (optional) gives the :class:`DataShape` of the resolved options (it reads at most a
    file's headers and raises nothing for a missing file); ``contents`` (optional, as
    ``preflight``) reads the user's files and checks every value."""

    name: str
    summary: str
    loader: str
    options: dict[str, Option]
    quick: dict[str, Any] = field(default_factory=dict)
    fetch: str | None = None
    preflight: str | None = None
    origin: str = "generated"  # generated | file | user | package
    shape: Callable[[dict], DataShape] | None = None
    contents: str | None = None

    def function(self, which: str = "loader") -> Callable:
        module, _, name = getattr(self, which).partition(":")
        return getattr(importlib.import_module(f"lshprof.data.{module}"), name)


_ROOT_HELP = ("folder holding the data sets' subfolders (default: $LSHPROF_DATA, else the "
              "user cache folder)")

DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(
        "gaussian", "Gaussian clusters in n_features dimensions (the demo problem)",
        "_generated:gaussian_clusters",
        {"n_train": _count(5000, "training samples"), "n_test": _count(1000, "test samples"),
         "n_features": _count(128, "features"), "n_classes": _count(10, "classes"),
         "clusters_per_class": _count(3, "clusters per class"),
         "spread": _real(1.0, "deviation of the cluster centres"),
         "noise": _real(2.5, "deviation of the samples around their centre")},
        quick={"n_train": 1000, "n_test": 500}, shape=_gaussian_shape),
    Dataset(
        "rectangles", "Larochelle et al. (2007) rectangles: 28x28 outlines, tall vs wide",
        "_generated:rectangles",
        {"n_train": _count(1200, "training images (published: 1,000 + 200 validation)"),
         "n_test": _count(50000, "test images (published: 50,000)")},
        quick={"n_train": 1200, "n_test": 2000}, shape=_image_shape(784, 2)),
    Dataset(
        "convex", "Larochelle et al. (2007) convex: 28x28 white regions, convex or not",
        "_generated:convex",
        {"n_train": _count(8000, "training images (published: 6,000 + 2,000 validation)"),
         "n_test": _count(50000, "test images (published: 50,000)")},
        quick={"n_train": 1000, "n_test": 1000}, shape=_image_shape(784, 2)),
    Dataset(
        "mnist", "MNIST handwritten digits from the standard IDX files (fetch once)",
        "mnist:mnist",
        {"n_train": _count(60000, "training images (at most 60,000)"),
         "n_test": _count(10000, "test images (at most 10,000)"),
         "root": _path(_ROOT_HELP, None)},
        quick={"n_train": 5000, "n_test": 1000}, fetch="mnist", preflight="mnist:preflight",
        origin="file", shape=_image_shape(784, 10, 4, 70000 * (784 + 9))),
    Dataset(
        "mnist8m", "MNIST training digits elastically deformed and shifted, an endless seeded "
                   "stream (MNIST8M style); tested on the MNIST test set",
        "mnist8m:mnist8m",
        {"n_train": _count(600000, "deformed training images drawn from the stream"),
         "n_test": _count(10000, "test images (MNIST test set, not deformed)"),
         "alpha": _real(34.0, "elastic displacement scale in pixels"),
         "sigma": _real(4.0, "smoothing of the displacement field in pixels",
                        _finite_positive),
         "max_shift": Option(2, (int,), "largest translation in pixels", _nonneg),
         "root": _path(_ROOT_HELP, None)},
        quick={"n_train": 5000, "n_test": 1000}, fetch="mnist", preflight="mnist8m:preflight",
        origin="file", shape=_image_shape(784, 10, 4, 70000 * (784 + 9) + 1024 * 120_000)),
    Dataset(
        "norb-small", "small NORB: 5 toy categories, two 96x96 stereo images pooled to 2x32x32 "
                      "(fetch once)",
        "norb:norb_small",
        {"n_train": _count(20000, "training pairs (at most 24,300; the paper used 20,000)"),
         "n_test": _count(24300, "test pairs (at most 24,300)"),
         "side": _count(32, "image side after mean-pooling (a divisor of 96)"),
         "root": _path(_ROOT_HELP, None)},
        quick={"n_train": 2000, "n_test": 1000}, fetch="norb-small",
        preflight="norb:preflight", origin="file", shape=_norb_shape),
    Dataset(
        "digits", "scikit-learn's bundled 8x8 handwritten digits (1,797 images; needs the "
                  "'digits' extra)",
        "arrays:digits",
        {"n_test": _count(450, "images held out for testing (of 1,797)")},
        preflight="arrays:digits_preflight", origin="package", shape=_digits_shape),
    Dataset(
        "npz", "your own arrays in a .npz file (X_train, y_train, X_test, y_test; or X, y)",
        "arrays:npz",
        {"path": _path("the .npz file"),
         "test_fraction": _real(0.2, "share held out when the file has only X and y",
                                _open_fraction)},
        preflight="arrays:npz_preflight", origin="user", shape=_file_shape("npz_shape"),
        contents="arrays:npz_contents"),
    Dataset(
        "csv", "your own table in CSV files: one label column, the rest numeric features",
        "arrays:csv",
        {"train": _path("the training CSV file"),
         "test": _path("the test CSV file (default: hold out test_fraction of train)", None),
         "label": Option("label", (str, int), "label column: a header name or a 0-based index"),
         "test_fraction": _real(0.2, "share held out when there is no test file",
                                _open_fraction)},
        preflight="arrays:csv_preflight", origin="user", shape=_file_shape("csv_shape"),
        contents="arrays:csv_contents"),
    Dataset(
        "synthetic-xc", "extreme classification with planted structure: many classes with "
                        "Zipf-distributed frequencies, clustered class prototypes",
        "xc:synthetic_xc",
        {"n_train": _count(200000, "training samples"), "n_test": _count(10000, "test samples"),
         "n_features": _count(128, "features"), "n_classes": _count(100000, "classes"),
         "n_clusters": _count(1000, "clusters of related classes"),
         "zipf": _real(1.0, "exponent of the class-frequency power law (0: uniform)"),
         "noise": _real(0.5, "deviation of the samples around their class prototype"),
         "spread": _real(0.2, "how far apart the classes of one cluster lie")},
        quick={"n_train": 20000, "n_test": 2000, "n_classes": 10000, "n_clusters": 100},
        shape=_xc_shape),
)}


def resolve_options(name: str, options: dict[str, Any] | None = None, *,
                    quick: bool = False, keep: tuple[str, ...] = (),
                    where: str = "data") -> dict[str, Any]:
    """The full options of data set ``name``: defaults, then ``--quick`` sizes, then
    ``options``; each checked. ``--quick`` only shrinks sizes, and leaves the keys in
    ``keep`` as ``options`` gives them. Errors name ``where`` (e.g.
    ``"quickstart.toml: [data]"``), the key, and what is allowed."""
    ds = DATASETS.get(name)
    if ds is None:
        raise ConfigError(f"{where}: unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    options = dict(options or {})
    unknown = sorted(set(options) - set(ds.options))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} for dataset {name!r}; valid: "
                          f"{', '.join(ds.options) or 'none'}")
    out = {k: o.default for k, o in ds.options.items()}
    if quick:
        # --quick shrinks sizes but never grows what the scenario asked for
        for k, v in ds.quick.items():
            if k in keep:
                continue
            given = options.get(k, out[k])
            out[k] = min(v, given) if isinstance(given, int) else v
            options.pop(k, None)
    out.update(options)
    for k, o in ds.options.items():
        v = out[k]
        if v is REQUIRED:
            raise ConfigError(f"{where}: dataset {name!r} needs key {k!r} ({o.help})")
        if isinstance(v, bool) and bool not in o.types or not isinstance(v, o.types):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in o.types)
            raise ConfigError(f"{where}.{k}: expected {allowed}, got {v!r}")
        problem = o.valid(v) if (o.valid is not None and v is not None) else None
        if problem:
            raise ConfigError(f"{where}.{k}: {problem}, got {v!r}")
    return out


def check(name: str, options: dict[str, Any]) -> None:
    """Raise :class:`~lshprof.errors.DataError` if data set ``name`` cannot be loaded with
    ``options`` (already resolved): missing files (naming the fetch command), missing
    packages. Loads nothing."""
    ds = DATASETS[name]
    if ds.preflight:
        ds.function("preflight")(**options)


def data_shape(name: str, options: dict[str, Any]) -> DataShape | None:
    """The :class:`DataShape` of data set ``name`` with resolved ``options``: its sizes and
    about how much memory building it takes, before anything is built (from the options,
    or a file's headers). None where the data set cannot tell."""
    ds = DATASETS[name]
    return None if ds.shape is None else ds.shape(dict(options))


def check_contents(name: str, options: dict[str, Any]) -> None:
    """Raise :class:`~lshprof.errors.DataError` naming the file, row and column when the
    user's own files (CSV, ``.npz``) hold a value that is not a finite number or a label
    that cannot be used (every training sample of one class). Reads the files; what it
    read is kept for the next :func:`load` of the same files. Nothing for other data
    sets (their contents are checked as they are built)."""
    ds = DATASETS[name]
    if ds.contents:
        ds.function("contents")(**options)


def check_classes(y_train, where: str) -> None:
    """Raise :class:`~lshprof.errors.DataError` when the training labels ``y_train`` hold a
    single class (no classifier learns anything from them); ``where`` names the data."""
    import numpy as np

    from lshprof.errors import DataError

    y = np.asarray(y_train)
    if y.size == 0:
        raise DataError(f"{where}: no training samples")
    first = y.flat[0]
    if bool(np.all(y == first)):
        value = first.item() if hasattr(first, "item") else first
        raise DataError(f"{where}: every training label is {value!r} (one class in "
                        f"{y.size:,} samples), so there is nothing to classify; give data of "
                        "at least two classes")


def load(name: str, options: dict[str, Any], *, seed: int = 0) -> "Split":
    """Build data set ``name`` with resolved ``options``; everything random is drawn from
    ``seed``. Raises :class:`~lshprof.errors.DataError` when the training labels are of a
    single class (:func:`check_classes`)."""
    split = DATASETS[name].function()(**options, seed=seed)
    sizes = ", ".join(f"{k} = {options[k]:,}" for k in ("n_train", "n_test") if k in options)
    check_classes(split.y_train, f"data set {name!r}" + (f" ({sizes})" if sizes else ""))
    return split
