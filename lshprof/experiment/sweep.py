"""The cell: one training run of a sweep, described completely, and the keys that name it.

A :class:`Cell` is one method (a scenario's label, its layer method and parameters) x
active fraction x seed x thread count x training mode, together with everything needed
to run it anywhere: the data set's spec (name, options, seed), the network, the
training settings and the measurement settings. It is a small frozen dataclass of
plain values, so it pickles and can be shipped to another process or machine;
:func:`lshprof.experiment.execute.run_cell` runs it.

The sweep's dimensions are defined once, in :data:`DIMENSIONS`. Everything that groups
results reads them from here: the cell id stored in every row (``cell`` column), the
columns that identify a cell (:data:`CELL_KEYS`), the summary's rows (:data:`SUMMARY_KEYS`:
every key but the replicates, which are averaged), and the keys on which a method is
set against the dense cell (:data:`REFERENCE_KEYS`: the keys a method's table does not
set). A new sweep dimension is one more :class:`Dimension` here (and its place in the
scenario schema).

A method table's parameter grid (``[methods.lsh.grid]``) is not a dimension: each of its
combinations is a method of its own, labelled with its settings (:func:`grid_label`:
``lsh(family=srp,K=4)``), so everything that groups by the label tells the settings
apart; the cell also keeps the settings (``Cell.grid``), which its rows carry as
columns of their own (``grid_family``, ``grid_K``: :attr:`Cell.grid_columns`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from lshprof.names import FRACTION_PARAM

__all__ = ["Dimension", "DIMENSIONS", "CELL_KEYS", "SUMMARY_KEYS", "REFERENCE_KEYS", "AXIS_KEY",
           "SERIES_KEYS", "series_name",
           "cell_id", "DataSpec", "NetworkSpec", "TrainingSpec", "MeasureSpec",
           "Cell", "sweep_params", "GRID_PREFIX", "grid_value_text", "grid_label"]


def _fraction_text(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))


@dataclass(frozen=True)
class Dimension:
    """One key of the sweep.

    ``name``: the column of every measurement row and the key in the cell id.
    ``per_method``: set by a method's table (label, fraction, mode), so the dense cell a
    method is compared with does not share it. ``replicate``: a repeat of the same
    setting (the seed), averaged over in summaries. ``default``: the value of rows made
    before the dimension existed, left out of the cell id (so their ids do not change);
    None: none, always in the id. ``text``: how a value is spelled in the id.
    """

    name: str
    per_method: bool = False
    replicate: bool = False
    default: Any = None
    text: Callable[[Any], str] = str


#: the sweep's dimensions, in the order of the cell id. The first is the method's label.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("method", per_method=True),
    Dimension("fraction", per_method=True, text=_fraction_text),
    Dimension("seed", replicate=True),
    Dimension("threads"),
    Dimension("mode", per_method=True, default="sync"),
)

#: the columns that identify a cell
CELL_KEYS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS)
#: one summary row per value of these (means over the replicates)
SUMMARY_KEYS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if not d.replicate)
#: a cell is set against the dense cell with the same values of these
REFERENCE_KEYS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS if not d.per_method)
#: the key figures put on their x axis (accuracy, quality and cost against the active fraction)
AXIS_KEY = "fraction"
#: one line of a figure per value of these: a method's own settings but the axis
SERIES_KEYS: tuple[str, ...] = tuple(d.name for d in DIMENSIONS
                                     if d.per_method and d.name != AXIS_KEY)


def series_name(key: dict[str, Any]) -> str:
    """A figure line's name: the label, and ``name=value`` for every other series key
    that is off its default (``lsh``, ``lsh mode=hogwild``)."""
    parts = [str(key["method"])]
    for d in DIMENSIONS:
        if d.name in SERIES_KEYS and d.name != "method":
            v = key.get(d.name, d.default)
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            if not missing and v != d.default:
                parts.append(f"{d.name}={d.text(v)}")
    return " ".join(parts)


def cell_id(key: dict[str, Any]) -> str:
    """The stable text id of the cell whose dimension values are ``key``:
    ``LABEL|fraction=F|seed=S|threads=T``, and ``|NAME=VALUE`` for every other dimension
    whose value is not its default."""
    parts = [str(key["method"])]
    for d in DIMENSIONS[1:]:
        v = key.get(d.name, d.default)
        if d.default is not None and v == d.default:
            continue
        parts.append(f"{d.name}={d.text(v)}")
    return "|".join(parts)


#: a grid setting's column in the measurement rows: ``grid_`` and the parameter's name
GRID_PREFIX = "grid_"


def grid_value_text(v: Any) -> str:
    """A grid value as a label spells it: strings bare, booleans as TOML writes them
    (``true``), numbers as written (``4``, ``0.25``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def grid_label(label: str, grid: tuple[tuple[str, Any], ...]) -> str:
    """The label of a grid combination: the table's label and its settings in the grid's
    order, ``lsh(family=srp,K=4,L=5)``; the label itself when there is no grid."""
    if not grid:
        return label
    return f"{label}({','.join(f'{k}={grid_value_text(v)}' for k, v in grid)})"


def sweep_params(method: str, fraction: float) -> dict[str, Any]:
    """The parameter that gives ``method`` the active ``fraction`` (empty for dense).

    Adaptive dropout has no fraction: ``beta = logit(fraction)`` keeps about
    ``fraction`` of the nodes whose pre-activation is near zero (``beta = 10`` at 1.0).
    """
    if method == "adaptive_dropout":
        beta = math.log(fraction / (1 - fraction)) if fraction < 1 else 10.0
        return {"beta": round(beta, 4)}
    name = FRACTION_PARAM.get(method)
    return {} if name is None else {name: fraction}


# -- what a cell needs besides its keys -------------------------------------------------------------
@dataclass(frozen=True)
class DataSpec:
    """A data set by name (``lshprof data list``), its resolved options and its seed:
    enough to build the same arrays in any process (:func:`lshprof.data.load`)."""

    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def load(self):
        from lshprof.data import load

        return load(self.dataset, dict(self.options), seed=self.seed)


@dataclass(frozen=True)
class NetworkSpec:
    """The network: hidden widths, activation, and which layers the method replaces."""

    hidden: tuple[int, ...] = (1000,)
    activation: str = "relu"
    apply_to: str = "hidden"


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int = 1
    batch_size: int = 32
    optimizer: str = "adam"


@dataclass(frozen=True)
class MeasureSpec:
    """How a cell is measured when it opens its own energy meter (a cell run on its own,
    or on another machine): the backend and its options, and whether it warms up."""

    energy: str = "auto"
    powercap_root: str | None = None
    energy_model: str | None = None
    warmup: bool = True


@dataclass(frozen=True)
class Cell:
    """One training run: its keys (label, fraction, seed, threads, mode), its method and
    parameters, and the specs of its data, network, training and measurement.

    ``params`` are the layer parameters with the fraction's already applied
    (:func:`sweep_params`); ``optimizer_params`` the optimizer's. ``data`` may be None
    when the caller hands the arrays to :func:`~lshprof.experiment.execute.run_cell`.
    ``scenario`` is the scenario's name (a column of every row). ``grid``: the settings
    of the table's parameter grid this cell's method is a combination of, as
    ``(name, value)`` pairs in the grid's order (already in ``params`` and in the label;
    empty without a grid).
    """

    label: str
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    fraction: float | None = None
    seed: int = 0
    threads: int = 1
    optimizer_params: dict[str, float] = field(default_factory=dict)
    mode: str = "sync"
    data: DataSpec | None = None
    network: NetworkSpec = field(default_factory=NetworkSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    scenario: str | None = None
    grid: tuple[tuple[str, Any], ...] = ()

    @property
    def grid_columns(self) -> dict[str, Any]:
        """The grid's settings as row columns, ``{"grid_family": "srp", "grid_K": 4}``
        (empty without a grid)."""
        return {f"{GRID_PREFIX}{k}": v for k, v in self.grid}

    @property
    def key(self) -> dict[str, Any]:
        """The cell's value of every sweep dimension (:data:`CELL_KEYS`)."""
        return {"method": self.label, "fraction": self.fraction, "seed": self.seed,
                "threads": self.threads, "mode": self.mode}

    @property
    def id(self) -> str:
        """Stable text key of the cell, stored in every row (``cell`` column); a hogwild
        cell's ends in ``|mode=hogwild`` (sync cells keep the key they always had)."""
        return cell_id(self.key)

    @property
    def description(self) -> str:
        """A short line for progress displays: ``lsh @ 0.05, seed 0, 1 thr``."""
        what = self.label + ("" if self.fraction is None else f" @ {self.fraction:g}")
        return f"{what}, seed {self.seed}, {self.threads} thr"

    @property
    def layers(self) -> dict[str, Any]:
        """The methods of the hidden layers and of the output layer: the cell's method
        replaces one or the other (``network.apply_to``), the rest stay dense."""
        if self.network.apply_to == "output":
            return {"method": "dense", "params": {}, "output_method": self.method,
                    "output_params": self.params}
        return {"method": self.method, "params": self.params, "output_method": "dense",
                "output_params": None}
