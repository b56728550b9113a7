"""Scenarios: what ``lshprof run`` trains and measures, read from TOML and checked first.

A scenario file has these tables (every key but ``[scenario] name``, ``[data]
dataset`` and at least one method has a default; ``lshprof scenarios --schema``
prints the full JSON Schema)::

    [scenario]   name, description
    [data]       dataset = "rectangles", seed = 0, and the data set's own options
    [network]    hidden = [1000], activation = "relu",
                 apply_to = "hidden" | "output"   (which layers the methods replace)
    [training]   epochs, batch_size, optimizer, [training.optimizer_params],
                 mode = "sync" | "hogwild"   (lock-free asynchronous workers, lshprof.nn.hogwild)
    [sweep]      fractions = [0.05, ...], seeds = [0], threads = [1, 2] or "powers"
                 (optional; "powers" is 1, 2, 4, ... up to this machine's cores)
    [measure]    threads, energy, idle_baseline, quality, powercap_root, energy_model
    [methods.LABEL]  method = "lsh" (default: LABEL), the layer's parameters,
                 optional fractions / optimizer_params / mode overriding the sweep's
    [methods.LABEL.grid]  parameter = [values, ...]: one method per combination
                 (cartesian product, in the order written), labelled
                 ``LABEL(name=value,...)``; at most :data:`MAX_METHODS` in all
    [quick]      what --quick changes: epochs, seeds, fractions, data options, and
                 grid = { LABEL = { name = [values] } } (lists that replace a grid's)
    [check]      thresholds of ``lshprof check`` for runs of this scenario (see
                 :mod:`lshprof.analysis.check`); they do not change what runs

The structure is a pydantic model (types, ranges, unknown keys); data-set options,
layer parameters and optimizer parameters are then checked against lshprof's own
registries, optimizer parameters against their ranges, thread counts against the
machine (:func:`max_threads`), and what ``--quick`` would run as the scenario itself.
Every mistake becomes one :class:`~lshprof.errors.ConfigError` line naming the file, the
key and what is allowed, before anything runs. :meth:`Scenario.check_data` then checks
what needs the data set: its files (their headers too), the memory the most demanding
cell needs against what the machine has available (:meth:`Scenario.memory_estimate`),
the batch against the training set, and the contents of the user's own files.
``lshprof scenarios --check`` and ``lshprof run`` both call these, so a scenario that
passes the check does not fail at the start of the run.

The active fraction is swept for every method that has one: ``dropout`` keeps
nodes with probability ``p = fraction``, ``adaptive_dropout`` gets
``beta = logit(fraction)`` (keep probability about ``fraction`` near zero
pre-activation), ``wta``, ``topk`` and ``lsh`` take ``fraction``. A method whose
table sets that parameter itself is not swept. ``dense`` runs once per seed.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.resources
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt,
                      PositiveInt, ValidationError, WithJsonSchema, field_validator)

from lshprof.data.fetch import is_symlink_loop
from lshprof.errors import ConfigError
from lshprof.measure.system import available_cores
from lshprof.names import APPLY_TO, FRACTION_PARAM, MODES, THREAD_KEYWORDS, TIME_CLOCKS
from lshprof.experiment.sweep import (Cell, DataSpec, MeasureSpec, NetworkSpec, TrainingSpec,
                                     grid_label, sweep_params)

__all__ = ["first_difference", "Scenario", "Cell", "load_scenario", "builtin_scenarios", "sweep_params",
           "DEFAULT_SCENARIO", "scenario_schema", "MODES", "THREAD_KEYWORDS",
           "available_cores", "power_thread_counts", "MAX_THREADS", "THREADS_PER_CORE",
           "max_threads", "thread_note", "MemoryPart", "MemoryEstimate", "available_memory",
           "MAX_METHODS"]

#: what ``lshprof run`` runs without an argument
DEFAULT_SCENARIO = "quickstart"

Mode = Literal[MODES]

#: no cell runs more threads than this, whatever the machine
MAX_THREADS = 1024
#: nor more than this many threads per core this process may use
THREADS_PER_CORE = 64
#: the most methods a scenario may have once its parameter grids are expanded
MAX_METHODS = 512


def max_threads(cores: int | None = None) -> int:
    """The most threads a cell may ask for on a machine of ``cores`` cores (default: the
    cores this process may use): :data:`THREADS_PER_CORE` per core, at most
    :data:`MAX_THREADS`. More is refused as a mistake (``threads = 100000``)."""
    cores = available_cores() if cores is None else cores
    return max(1, min(MAX_THREADS, THREADS_PER_CORE * cores))


def thread_note(counts, cores: int | None = None) -> str | None:
    """The note for thread counts above the cores available (default: this process's):
    those cells share cores, so their times do not measure scaling. None when every
    count fits."""
    cores = available_cores() if cores is None else cores
    over = sorted({int(t) for t in counts if int(t) > cores})
    if not over:
        return None
    return (f"Note: {', '.join(map(str, over))} thread(s) exceed the {cores} cores available "
            "here; those cells share cores, so their speedup is not a measure of scaling.")


def power_thread_counts(cores: int) -> list[int]:
    """``threads = "powers"``: 1, 2, 4, ... up to ``cores``, and ``cores`` itself when it is
    not a power of two (6 cores: 1, 2, 4, 6); never more threads than cores."""
    out, t = [], 1
    while t <= cores:
        out.append(t)
        t *= 2
    if out[-1] != cores:
        out.append(cores)
    return out


def _check_fractions(v: list[float] | None) -> list[float] | None:
    if v is None:
        return v
    if not v:
        raise ValueError("needs at least one fraction")
    for f in v:
        if not (0.0 < f <= 1.0):
            raise ValueError(f"fraction {f} is out of range; allowed: 0 < fraction <= 1")
    if len(set(v)) != len(v):
        raise ValueError("fractions repeat")
    return v


def _check_unique(v: list | None, what: str) -> list | None:
    if v is not None:
        if not v:
            raise ValueError(f"needs at least one {what}")
        if len(set(v)) != len(v):
            raise ValueError(f"{what}s repeat")
    return v


#: optimizer parameter -> (lowest, lowest excluded, above every allowed value): a step
#: needs a positive rate, decay factors below 1, a positive eps (the step stays finite
#: where a row's squared gradients are 0); other parameters (l2) are finite and >= 0
_OPTIMIZER_RANGES: dict[str, tuple[float, bool, float]] = {
    "lr": (0.0, True, math.inf), "momentum": (0.0, False, 1.0), "beta1": (0.0, False, 1.0),
    "beta2": (0.0, False, 1.0), "eps": (0.0, True, math.inf)}


class _Table(BaseModel):
    # strict: a TOML string "5" is not an epoch count, 1 is not true; floats accept ints
    model_config = ConfigDict(extra="forbid", strict=True)


class ScenarioInfo(_Table):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="short name; the default output folder is runs/NAME-TIME")
    description: str = ""


class DataTable(BaseModel):
    """``dataset`` and ``seed``; every other key is an option of the data set."""

    model_config = ConfigDict(extra="allow", strict=True)
    dataset: str = Field(description="a name from `lshprof data list`")
    seed: NonNegativeInt = Field(0, description="seed of generated data and splits (fixed "
                                                "across the sweep's seeds)")


class Network(_Table):
    hidden: list[PositiveInt] = Field([1000], min_length=1, description="hidden layer widths")
    activation: str = "relu"
    apply_to: Literal[APPLY_TO] = Field(
        "hidden", description="the methods replace every hidden layer, or only the output layer "
                              "(the hidden layers then stay dense)")


class Training(_Table):
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 32
    optimizer: str = "adam"
    optimizer_params: dict[str, float] = Field(default_factory=dict)
    mode: Mode = Field(
        "sync", description="sync: mini-batches one after another, the cell's threads inside "
                            "the kernels; hogwild: the cell's threads are lock-free workers "
                            "sharing the weights, each kernel on one thread")


class Sweep(_Table):
    fractions: list[float] = Field([0.05], description="active fractions, 0 < f <= 1")
    seeds: list[NonNegativeInt] = Field([0], description="model seeds (weights, order, masks)")
    threads: list[PositiveInt] | Literal["powers"] | None = Field(
        None, description="a thread sweep (threads per cell: inside the kernels, or hogwild "
                          "workers); \"powers\": 1, 2, 4, ... up to this machine's cores; "
                          "default: [measure] threads only")

    _fractions = field_validator("fractions")(_check_fractions)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v):
        return _check_unique(v, "seed")

    @field_validator("threads", mode="before")
    @classmethod
    def _threads_keyword(cls, v):
        # checked here, so that a mistake gives one message rather than one per union member
        allowed = (f"allowed: a list of thread counts (threads = [1, 2]) or "
                   f"{' or '.join(map(repr, THREAD_KEYWORDS))} (1, 2, 4, ... up to the "
                   "machine's cores)")
        if isinstance(v, str):
            if v not in THREAD_KEYWORDS:
                raise ValueError(f"unknown keyword {v!r}; {allowed}")
        elif isinstance(v, list):
            for t in v:
                if isinstance(t, bool) or not isinstance(t, int) or t < 1:
                    raise ValueError(f"thread counts must be positive integers, got {t!r}")
                if t > MAX_THREADS:
                    raise ValueError(f"{t} threads is more than any machine here runs well; "
                                     f"at most {MAX_THREADS}")
        elif v is not None:
            raise ValueError(f"must be a list of thread counts or a keyword; {allowed}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v):
        return v if isinstance(v, str) else _check_unique(v, "thread count")


class Measure(_Table):
    threads: PositiveInt = Field(1, le=MAX_THREADS, description="threads per cell (inside the "
                                 "kernels, or hogwild workers) when [sweep] has no threads")
    energy: str = "auto"
    idle_baseline: float = Field(0.0, ge=0.0, allow_inf_nan=False,
                                 description="seconds of idle power measured first (0: none)")
    quality: bool = Field(False, description="score LSH selection against the exact top-k "
                                             "during training (its MACs are kept apart)")
    powercap_root: str | None = None
    energy_model: str | None = None


#: a parameter grid: layer parameter -> the values it takes (checked by Scenario._check_grid,
#: so that each mistake is one line naming the key; the schema says what is allowed)
GridTable = Annotated[dict[str, Any], WithJsonSchema({
    "type": "object",
    "additionalProperties": {"type": "array", "minItems": 1, "uniqueItems": True,
                             "items": {"type": ["string", "number", "boolean"]}}})]


class MethodTable(BaseModel):
    """``method`` (default: the table's label) and its layer parameters."""

    model_config = ConfigDict(extra="allow", strict=True)
    method: str | None = None
    fractions: list[float] | None = None
    optimizer_params: dict[str, float] | None = None
    mode: Mode | None = Field(None, description="this method's training mode (default: "
                                                "[training] mode)")
    grid: GridTable | None = Field(
        None, description="a parameter grid, parameter = [values, ...]: one method per "
                          "combination (cartesian product, in the order written), labelled "
                          "LABEL(name=value,...)")

    _fractions = field_validator("fractions")(_check_fractions)


class Quick(_Table):
    epochs: PositiveInt | None = None
    seeds: list[NonNegativeInt] | None = None
    fractions: list[float] | None = None
    batch_size: PositiveInt | None = None
    hidden: list[PositiveInt] | None = Field(None, min_length=1)
    data: dict[str, Any] = Field(default_factory=dict, description="data-set options, checked "
                                 "as those of [data]")
    grid: dict[str, GridTable] = Field(
        default_factory=dict, description="method label -> { parameter = [values] }: lists that "
                                          "replace those of the method's grid")

    _fractions = field_validator("fractions")(_check_fractions)


class CheckTable(_Table):
    """Thresholds of ``lshprof check`` (:mod:`lshprof.analysis.check` explains each comparison)."""

    macs_tolerance: NonNegativeFloat = Field(
        0.0, description="relative increase allowed in MACs, other work counts and active-set "
                         "sizes (0: exact; any increase fails)")
    accuracy_tolerance: NonNegativeFloat = Field(
        0.02, description="drop in test accuracy (absolute, 0.02 = 2 points) that still passes")
    time_factor: float = Field(
        1.25, ge=1.0, description="a method's time relative to dense (in the same run) must grow "
                                  "by more than this factor, and significantly, to fail")
    energy_factor: float = Field(
        1.25, ge=1.0, description="as time_factor, for measured energy relative to dense")
    alpha: float = Field(
        0.01, gt=0.0, lt=0.5, description="significance level of the one-sided Mann-Whitney U "
                                          "test over repeats (epochs x seeds)")
    time_clock: Literal[TIME_CLOCKS] = Field(
        "auto", description="time compared as process CPU time (other jobs on the machine do "
                            "not slow it), wall time, or auto: CPU time at 1 thread, wall time "
                            "at more")


class ScenarioModel(_Table):
    scenario: ScenarioInfo
    data: DataTable
    network: Network = Field(default_factory=Network)
    training: Training = Field(default_factory=Training)
    sweep: Sweep = Field(default_factory=Sweep)
    measure: Measure = Field(default_factory=Measure)
    methods: dict[str, MethodTable] = Field(min_length=1)
    quick: Quick = Field(default_factory=Quick)
    check: CheckTable = Field(default_factory=CheckTable)


def scenario_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (for editors and validators)."""
    return ScenarioModel.model_json_schema()


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first key path of two settings dicts where ``a`` and ``b`` differ, as ``training.epochs: 5 vs 3``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in ("source", "check"):  # where it came from; lshprof check's thresholds
                continue
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                return f"{sub}: {'missing' if k not in a else json.dumps(a[k])} vs " \
                       f"{'missing' if k not in b else json.dumps(b[k])}"
            d = first_difference(a[k], b[k], sub)
            if d:
                return d
        return None
    return None if a == b else f"{path}: {json.dumps(a)} vs {json.dumps(b)}"


# -- loading --------------------------------------------------------------------------------------
def builtin_scenarios() -> dict[str, Path]:
    """Name -> path of every scenario shipped with lshprof (the package lshprof.scenarios)."""
    root = Path(str(importlib.resources.files("lshprof.scenarios")))
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def _where(loc: tuple) -> str:
    """``('training', 'epochs')`` -> ``[training] epochs``; method tables keep their label."""
    parts = [str(p) for p in loc]
    if not parts:
        return "top level"
    if len(parts) == 1:
        return f"[{parts[0]}]" if parts[0] in ScenarioModel.model_fields else parts[0]
    if parts[0] == "methods" and len(parts) >= 2:
        table, rest = f"[methods.{parts[1]}]", parts[2:]
    else:
        table, rest = f"[{parts[0]}]", parts[1:]
    return f"{table} {'.'.join(rest)}".strip()


def _allowed(model: type[BaseModel] | None) -> str:
    return ", ".join(model.model_fields) if model is not None else ""


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The table model at key path ``loc`` (None where it is not a table of fixed keys)."""
    model: type[BaseModel] = ScenarioModel
    for part in loc:
        field = model.model_fields.get(part)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return model


def _pydantic_message(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    where = _where(loc)
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        return f"unknown key {loc[-1]!r} in {_where(loc[:-1])}; allowed: {_allowed(parent)}"
    if err["type"] == "missing":
        return f"{where} is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    if isinstance(got, float) and not math.isfinite(got):
        shown = repr(got)  # as TOML spells it: inf, nan
    else:
        shown = json.dumps(got) if isinstance(got, (str, int, float, bool, list)) else repr(got)
    return f"{where}: {msg[0].lower() + msg[1:]} (got {shown})"


def _spelled(v: Any) -> str:
    """A value as TOML spells it, for messages: ``"srp"``, ``4``, ``true``, ``[4, 6]``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(_spelled, v)) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_spelled(x)}" for k, x in v.items()) + " }"
    return str(v)


@dataclass(frozen=True)
class _Method:
    """One method of the scenario: a method table, or one combination of its grid."""

    label: str                      # the cells' label: the table's, with the grid's settings
    table: str                      # the table's label
    method: str
    params: dict[str, Any]          # the table's layer parameters and the combination's
    grid: tuple[tuple[str, Any], ...]
    settings: MethodTable

    @property
    def where(self) -> str:
        """How messages name it: ``[methods.lsh]``, ``[methods.lsh.grid] family = "srp", K = 4``."""
        if not self.grid:
            return f"[methods.{self.table}]"
        return f"[methods.{self.table}.grid] " + \
            ", ".join(f"{k} = {_spelled(v)}" for k, v in self.grid)


def _grid_combinations(t: MethodTable) -> list[tuple[tuple[str, Any], ...]]:
    """A table's grid combinations in order (the last key varies fastest); ``[()]``
    without a grid."""
    grid = t.grid or {}
    return [tuple(zip(grid, values)) for values in itertools.product(*grid.values())]


class Scenario:
    """A checked scenario: the parsed tables plus where they came from.

    Use :func:`load_scenario`; :meth:`with_overrides` gives the command line's
    version; :meth:`cells` lists the sweep; :meth:`as_dict` is what ``run.json``
    stores (and what resuming compares).
    """

    def __init__(self, model: ScenarioModel, source: str, path: Path | None = None):
        self.model = model
        self.source = source  # how errors name it: the path, or "NAME.toml (built-in)"
        self.path = path  # the user's scenario file (None: built-in or built in code)
        self.quick = False
        self._entries: list[_Method] | None = None

    # -- the tables -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.model.scenario.name

    @property
    def description(self) -> str:
        return self.model.scenario.description

    @property
    def data_options(self) -> dict[str, Any]:
        """The data set's resolved options (defaults, --quick sizes, the file's values)."""
        return self._data_options

    def as_dict(self) -> dict[str, Any]:
        d = self.model.model_dump(mode="json")
        # the default mode is left out, so runs and baselines made before modes existed keep
        # their fingerprint and stay comparable; a hogwild mode is part of the settings
        if d["training"].get("mode") == "sync":
            d["training"].pop("mode")
        for t in d["methods"].values():
            if t.get("mode") is None:
                t.pop("mode", None)
            if t.get("grid") is None:  # scenarios without grids keep their fingerprint
                t.pop("grid", None)
        if d["sweep"].get("threads") == "powers":  # what it stood for on this machine
            d["sweep"]["thread_counts"] = self.thread_counts()
        d["data"] = {"dataset": self.model.data.dataset, "seed": self.model.data.seed,
                     **self._data_options}
        d.pop("quick")
        d["source"] = self.source
        d["quick_applied"] = self.quick
        return d

    def fingerprint(self) -> str:
        """SHA-256 of what decides the cells' results (not where the file was)."""
        d = self.as_dict()
        d.pop("source")
        d.pop("check")  # thresholds of lshprof check do not change what runs
        for t in d["methods"].values():
            if "grid" in t:  # the order of its keys decides the labels: kept, unsorted
                t["grid"] = [[k, v] for k, v in t["grid"].items()]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # -- checking ------------------------------------------------------------------------------------
    def _check(self) -> None:
        from lshprof.data import resolve_options
        from lshprof.names import ENERGY_BACKENDS, HIDDEN_ACTIVATIONS, OPTIMIZERS
        from lshprof.nn.layers import LAYERS

        m, src = self.model, self.source
        opts = self._file_options(m.data.model_extra or {})
        self._data_options = resolve_options(m.data.dataset, opts, quick=self.quick,
                                             keep=tuple(m.quick.data) if self.quick else (),
                                             where=f"{src}: [data]")
        if not self.quick and m.quick.data:  # what --quick will use, checked as [data] is
            resolve_options(m.data.dataset, {**opts, **self._file_options(m.quick.data)},
                            quick=True, keep=tuple(m.quick.data), where=f"{src}: [quick] data")
        if m.network.activation not in HIDDEN_ACTIVATIONS:
            valid = ", ".join(HIDDEN_ACTIVATIONS)
            raise ConfigError(f"{src}: [network] activation: unknown {m.network.activation!r}; "
                              f"allowed: {valid}")
        if m.training.optimizer not in OPTIMIZERS:
            raise ConfigError(f"{src}: [training] optimizer: unknown {m.training.optimizer!r}; "
                              f"allowed: {', '.join(OPTIMIZERS)}")
        self._check_optimizer_params(m.training.optimizer_params, "[training] optimizer_params")
        if m.measure.energy not in ENERGY_BACKENDS:
            raise ConfigError(f"{src}: [measure] energy: unknown backend {m.measure.energy!r}; "
                              f"allowed: {', '.join(ENERGY_BACKENDS)}")
        n_methods = 0
        for label, t in m.methods.items():
            where = f"[methods.{label}]"
            method = t.method or label
            if method not in LAYERS:
                raise ConfigError(f"{src}: {where}: unknown method {method!r}; allowed: "
                                  f"{', '.join(LAYERS)} (set method = ... when the label is "
                                  "not a method name)")
            params = dict(t.model_extra or {})
            unknown = sorted(set(params) - set(LAYERS[method].PARAMS))
            if unknown:
                raise ConfigError(f"{src}: unknown key {unknown[0]!r} in {where} (method "
                                  f"{method!r}); allowed: method, fractions, optimizer_params, "
                                  f"mode, grid, "
                                  f"{', '.join(LAYERS[method].PARAMS) or '(no parameters)'}")
            if t.fractions is not None and method not in FRACTION_PARAM:
                raise ConfigError(f"{src}: {where} fractions: method {method!r} has no active "
                                  "fraction; remove the key")
            if t.optimizer_params is not None:
                self._check_optimizer_params(t.optimizer_params, f"{where} optimizer_params",
                                             base=m.training.optimizer_params)
            if t.grid is not None:
                self._check_grid(label, method, t, params)
            n = math.prod(len(v) for v in (t.grid or {}).values())
            n_methods += n
            if n_methods > MAX_METHODS:
                sizes = " x ".join(str(len(v)) for v in (t.grid or {}).values())
                what = f"{where}: {n_methods:,} tables" if not t.grid else \
                    f"[methods.{label}.grid]: {sizes} = {n:,} combinations" + \
                    (f", {n_methods:,} methods with the tables above it" if n_methods > n
                     else "")
                raise ConfigError(f"{src}: {what}; a scenario runs at most {MAX_METHODS} "
                                  "methods: shorten the grid's lists (or split it into "
                                  "several scenarios)")
            for e in self._table_methods(label, t):
                for fraction in self._fractions(method, t, e.params) or [None]:
                    self._check_layer(method, e.params, fraction, e.where)
        seen: dict[str, _Method] = {}
        for e in self._methods():
            if e.label in seen:
                raise ConfigError(f"{src}: {e.where}: its label {e.label!r} is already that "
                                  f"of {seen[e.label].where}; labels must be unique: rename "
                                  "one of the tables")
            seen[e.label] = e
        self._check_threads()
        if not self.quick:
            self._check_quick_grid()
            self._check_quick()

    def _check_grid_lists(self, grid: dict[str, Any], where: str) -> None:
        """Every key of a grid (or of a [quick] grid) holds a list of distinct scalar values."""
        if not grid:
            raise ConfigError(f"{self.source}: {where} is empty; give parameter = [values, "
                              "...], or remove it")
        for k, values in grid.items():
            if not isinstance(values, list):
                raise ConfigError(f"{self.source}: {where} {k}: must be a list of values "
                                  f"({k} = [{_spelled(values)}, ...]), got {_spelled(values)}")
            if not values:
                raise ConfigError(f"{self.source}: {where} {k}: the list is empty; give at "
                                  "least one value")
            seen = set()
            for v in values:
                if not isinstance(v, (str, int, float)):  # bool is an int
                    raise ConfigError(f"{self.source}: {where} {k}: values must be strings, "
                                      f"numbers or booleans, got {_spelled(v)}")
                key = json.dumps(v)  # 4 and 4.0, 1 and true are different settings
                if key in seen:
                    raise ConfigError(f"{self.source}: {where} {k}: {_spelled(v)} repeats; "
                                      "give each value once")
                seen.add(key)

    def _check_grid(self, label: str, method: str, t: MethodTable, params: dict) -> None:
        """A method table's grid: parameters of its layer, not also set in the table,
        each a list of distinct values (each combination is then checked as a table is)."""
        from lshprof.nn.layers import LAYERS

        src, where, grid = self.source, f"[methods.{label}.grid]", t.grid or {}
        allowed = LAYERS[method].PARAMS
        if not allowed:
            raise ConfigError(f"{src}: {where}: method {method!r} has no parameters to "
                              "sweep; remove the grid")
        if not grid:
            self._check_grid_lists(grid, where)
        unknown = [k for k in grid if k not in allowed]
        if unknown:
            raise ConfigError(f"{src}: unknown key {unknown[0]!r} in {where} (method "
                              f"{method!r}); a grid sweeps the layer's parameters: "
                              f"{', '.join(allowed)}")
        self._check_grid_lists(grid, where)
        for k in grid:
            if k in params:
                raise ConfigError(f"{src}: {where} {k}: also set in [methods.{label}] "
                                  f"({k} = {_spelled(params[k])}); set it in one place")
        if t.fractions is not None and FRACTION_PARAM.get(method) in grid:
            raise ConfigError(f"{src}: {where} {FRACTION_PARAM[method]}: the grid sets the "
                              f"active fraction, so [methods.{label}] fractions would not be "
                              "swept; remove one of them")

    def _check_quick_grid(self) -> None:
        """``[quick] grid``: each entry names a method table with a grid, and replaces lists
        of that grid with lists checked as the grid's are."""
        m = self.model
        for label, lists in m.quick.grid.items():
            where = f"[quick] grid.{label}"
            t = m.methods.get(label)
            if t is None:
                raise ConfigError(f"{self.source}: {where}: no method {label!r} in this "
                                  f"scenario; it has: {', '.join(m.methods)}")
            if not t.grid:
                raise ConfigError(f"{self.source}: {where}: [methods.{label}] has no grid to "
                                  f"shrink; add [methods.{label}.grid] or remove this key")
            unknown = [k for k in lists if k not in t.grid]
            if unknown:
                raise ConfigError(f"{self.source}: {where}: {unknown[0]!r} is not a key of "
                                  f"[methods.{label}.grid] (it has: {', '.join(t.grid)}); "
                                  "--quick only replaces a grid's lists")
            self._check_grid_lists(lists, where)

    def _table_methods(self, label: str, t: MethodTable) -> list[_Method]:
        method = t.method or label
        params = dict(t.model_extra or {})
        return [_Method(grid_label(label, combo), label, method, {**params, **dict(combo)},
                        combo, t) for combo in _grid_combinations(t)]

    def _methods(self) -> list[_Method]:
        """Every method of the scenario in order: each table, or each combination of its
        grid (labelled with its settings)."""
        if self._entries is None:
            self._entries = [e for label, t in self.model.methods.items()
                             for e in self._table_methods(label, t)]
        return self._entries

    def _file_options(self, opts: dict[str, Any]) -> dict[str, Any]:
        """Data options with their file paths relative to the scenario file's folder."""
        opts = dict(opts)
        if self.path is not None:
            for key in ("path", "train", "test", "root"):
                v = opts.get(key)
                if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                    opts[key] = str(self.path.parent / v)
                elif isinstance(v, str) and v:
                    opts[key] = str(Path(v).expanduser())
        return opts

    def _check_threads(self) -> None:
        """Thread counts this machine cannot sensibly run (:func:`max_threads`)."""
        limit = max_threads()
        where = "[sweep] threads" if isinstance(self.model.sweep.threads, list) else \
            "[measure] threads"
        for t in self.thread_counts():
            if t > limit:
                raise ConfigError(f"{self.source}: {where}: {t:,} threads is not a sensible "
                                  f"count for the {available_cores()} cores available here "
                                  f"(at most {limit}: {THREADS_PER_CORE} per core, "
                                  f"{MAX_THREADS} in all); lower it")

    def _check_quick(self) -> None:
        """What ``--quick`` runs must pass the same checks as the scenario itself, so that a
        scenario that passes ``lshprof scenarios --check`` also runs with ``--quick``."""
        try:
            self.with_overrides(quick=True)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (with --quick: the [quick] table applied)") from None

    def thread_note(self, cores: int | None = None) -> str | None:
        """The note to print when some of the sweep's thread counts exceed the cores
        available (default: this process's): those cells share cores. None when none do."""
        return thread_note(self.thread_counts(cores), cores)

    def _check_optimizer_params(self, params: dict, where: str, base: dict | None = None
                                ) -> None:
        """Every key known to the optimizer, every value in its range: ``lr > 0``,
        momentum and the Adam betas in [0, 1), ``eps > 0``, ``l2 >= 0``, all finite (the
        optimizer itself is built with them, as a cell will build it). ``base``: the
        [training] values a method's table adds to."""
        from lshprof.nn.optim import OPTIMIZERS, make_optimizer

        name = self.model.training.optimizer
        allowed = OPTIMIZERS[name].PARAMS
        for k, v in params.items():
            if k not in allowed:
                raise ConfigError(f"{self.source}: unknown key {k!r} in {where} (optimizer "
                                  f"{name!r}); allowed: {', '.join(allowed)}")
            low, low_open, high = _OPTIMIZER_RANGES.get(k, (0.0, False, math.inf))
            if not math.isfinite(v) or v < low or (low_open and v == low) or v >= high:
                allowed = f"{'>' if low_open else '>='} {low:g}" + \
                    (f" and < {high:g}" if math.isfinite(high) else "")
                raise ConfigError(f"{self.source}: {where} {k}: must be a finite number "
                                  f"{allowed} (optimizer {name!r}), got {v}")
        try:
            make_optimizer(name, [], **{**(base or {}), **params})
        except ConfigError as exc:
            text = str(exc)
            prefix = f"optimizer {name}: "
            text = text[len(prefix):] if text.startswith(prefix) else text
            raise ConfigError(f"{self.source}: {where}: {text} (optimizer {name!r})") from None

    def _check_layer(self, method: str, params: dict, fraction: float | None, where: str) -> None:
        """Build a tiny layer with these parameters, so bad values fail now, with the key."""
        from lshprof.nn.layers import make_layer

        full = {**params, **({} if fraction is None else sweep_params(method, fraction))}
        pool = full.get("pool", 1)
        n_in = pool if isinstance(pool, int) and not isinstance(pool, bool) and pool > 1 else 8
        try:
            make_layer(method, n_in, 16, seed=0, **full)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}: {where}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.source}: {where}: bad parameter value: {exc}") from None

    def check_data(self, *, available: int | None = None) -> None:
        """Everything about the data that can be known before the run, each mistake one
        line naming the file or key: the data set's files or packages are missing (naming
        the command that fetches them) or their headers are damaged; a cell needs more
        memory than ``available`` bytes (default :func:`available_memory`; see
        :meth:`memory_estimate`); the batch is larger than the training set; the user's own
        files (CSV, ``.npz``) hold a value that is not a number or labels of one class
        (they are read for this, and what was read is kept for the load that follows).
        ``lshprof scenarios --check`` and ``lshprof run`` both call it."""
        from lshprof.data import check, check_contents, data_shape
        from lshprof.errors import DataError, LshprofError

        dataset = self.model.data.dataset
        try:
            check(dataset, self._data_options)
        except DataError as exc:
            raise DataError(f"{self.source}: [data] {exc}") from None
        shape = data_shape(dataset, self._data_options)
        self.check_memory(available=available, shape=shape)
        if shape is not None and shape.exact and shape.n_train is not None:
            self._check_batch(shape.n_train)
        try:
            check_contents(dataset, self._data_options)
        except LshprofError as exc:
            raise type(exc)(f"{self.source}: [data] {exc}") from None

    def _check_batch(self, n_train: int) -> None:
        b = self.model.training.batch_size
        if b > n_train:
            raise ConfigError(f"{self.source}: [training] batch_size = {b:,} is more than the "
                              f"{n_train:,} training samples of the data; lower batch_size "
                              f"to at most {n_train:,} (or give more training data)")

    # -- memory ---------------------------------------------------------------------------------------
    def memory_estimate(self, shape=None) -> "MemoryEstimate":
        """About how much memory the run needs at once: the data (as built, with the
        loader's temporaries) and the most demanding cell's model: per layer the weights,
        their gradients and the optimizer's state (plus every other Hogwild worker's
        gradients), an LSH layer's hash functions and tables (``L`` x nodes, with the
        copies a rebuild holds), and the activations of a batch (training, or evaluation's
        1,024 samples). ``shape``: the data's :class:`lshprof.data.DataShape` (default: from
        the data set's options or file headers). A lower estimate: small buffers, Python
        objects and numba's code are not counted."""
        from lshprof.data import data_shape

        if shape is None:
            shape = data_shape(self.model.data.dataset, self._data_options)
        data_part = self._data_memory(shape)
        best: MemoryEstimate | None = None
        seen = set()
        for cell in self.cells():
            key = (cell.label, cell.threads, cell.mode)
            if key in seen:
                continue
            seen.add(key)
            est = MemoryEstimate((data_part, *self._cell_memory(cell, shape)), cell.label)
            if best is None or est.total > best.total:
                best = est
        return best if best is not None else MemoryEstimate((data_part,), None)

    def check_memory(self, *, available: int | None = None, shape=None) -> None:
        """Raise a one-line :class:`~lshprof.errors.ConfigError` when
        :meth:`memory_estimate` exceeds ``available`` bytes (default: what this machine has
        available now, :func:`available_memory`), naming the key that asks for most of it."""
        est = self.memory_estimate(shape)
        have = available_memory() if available is None else int(available)
        if est.total > have:
            from lshprof.data.fetch import size_text

            key, parts = est.heaviest_key()
            what = ", ".join(f"{size_text(q.nbytes)} for {q.what}" for q in parts[:2])
            more = ", ..." if len(parts) > 2 else ""
            cell = f"; cell {est.cell}" if est.cell and not key.startswith("[data]") else ""
            raise ConfigError(f"{self.source}: {key} needs about {size_text(est.total)} in "
                              f"all ({what}{more}{cell}); this machine has {size_text(have)} "
                              "available: lower it")

    def _data_memory(self, shape) -> "MemoryPart":
        opts = self._data_options
        sizes = [f"{k} = {opts[k]}" for k in ("n_train", "n_test", "n_features")
                 if isinstance(opts.get(k), int)]
        files = [str(opts[k]) for k in ("path", "train", "test") if opts.get(k)]
        key = "[data] " + (", ".join(sizes) if sizes else " and ".join(files) or
                           self.model.data.dataset)
        if shape is None:
            return MemoryPart(0, "the data (size unknown before loading)", key)
        n = (shape.n_train or 0) + (shape.n_test or 0)
        return MemoryPart(int(shape.nbytes), f"the data ({n:,} samples of "
                          f"{shape.n_features or 0:,} features, as built)", key)

    def _cell_memory(self, cell: Cell, shape) -> list["MemoryPart"]:
        from lshprof.nn.optim import OPTIMIZERS

        m = self.model
        opts = self._data_options
        d = max(1, (shape.n_features if shape is not None else None) or 1)
        c = max(2, (shape.n_classes if shape is not None else None) or 2)
        hidden = list(m.network.hidden)
        widths = [d, *hidden, c]
        n_state = OPTIMIZERS[m.training.optimizer].n_state
        n_train = shape.n_train if shape is not None and shape.n_train else None
        batch = m.training.batch_size if n_train is None else min(m.training.batch_size, n_train)
        n_test = shape.n_test if shape is not None and shape.n_test else 1024
        eval_rows = min(1024, n_test)  # evaluation predicts 1,024 samples at a time
        rows = max(batch, eval_rows)
        hidden_key = f"[network] hidden = {json.dumps(hidden)}"
        out: list[MemoryPart] = []
        train_acts, eval_acts = 4 * batch * d, 4 * eval_rows * d  # the input rows
        for i in range(len(widths) - 1):
            n_in, n_out = widths[i], widths[i + 1]
            output = i == len(widths) - 2
            key = hidden_key
            if i == 0 and n_in >= n_out and isinstance(opts.get("n_features"), int):
                key = f"[data] n_features = {n_in}"
            elif output and n_out >= n_in and isinstance(opts.get("n_classes"), int):
                key = f"[data] n_classes = {n_out}"
            per_copy = 4 * n_out * (n_in + 1)  # float32 weights and biases
            out.append(MemoryPart(per_copy * (2 + n_state),
                                  f"the weights, gradients and {m.training.optimizer} state of "
                                  f"layer {i + 1} ({n_in:,} x {n_out:,})", key))
            if cell.mode == "hogwild" and cell.threads > 1:
                out.append(MemoryPart(per_copy * (cell.threads - 1),
                                      f"the gradients of layer {i + 1} in {cell.threads - 1} "
                                      "more hogwild workers",
                                      "[sweep] threads" if m.sweep.threads else
                                      "[measure] threads"))
            method = cell.method if output == (m.network.apply_to == "output") else "dense"
            active = n_out
            if method == "lsh":
                out.append(self._lsh_memory(cell, i + 1, n_in, n_out, rows))
                if not cell.params.get("quality"):  # only the chosen nodes are computed
                    active = max(1, math.ceil((cell.fraction or 1.0) * n_out))
            # training: pre-activations, activations and their gradients (float32);
            # evaluation: no gradients; an index per chosen node where the set is sparse
            index = 4 if active < n_out else 0
            train_acts += batch * active * (12 + index)
            eval_acts += eval_rows * active * (8 + index)
        if train_acts >= eval_acts:
            # a batch of 1,024 or more is what to lower; below that, the widths are
            out.append(MemoryPart(train_acts, f"the activations and gradients of a batch of "
                                  f"{batch:,}", f"[training] batch_size = "
                                  f"{m.training.batch_size}" if batch >= 1024 else hidden_key))
        else:
            out.append(MemoryPart(eval_acts, f"the activations of {eval_rows:,} samples at "
                                  "once in evaluation", hidden_key))
        return out

    def _lsh_memory(self, cell: Cell, layer: int, n_in: int, n_out: int, rows: int
                    ) -> "MemoryPart":
        from lshprof.nn.layers import LAYERS

        p = {**LAYERS["lsh"].PARAMS, **cell.params}
        K, L = int(p["K"]), int(p["L"])
        n_fn = K * L
        dim = -(-n_in // max(1, int(p["pool"])))
        family = p["family"]
        if family == "srp":
            functions = n_fn * dim * (8 + 4)  # drawn in float64, kept in float32
        elif family == "srp_sparse":
            functions = n_fn * max(1, round(float(p["density"]) * dim)) * 40
        else:  # wta, dwta: bin_size coordinates per function
            functions = n_fn * min(int(p["bin_size"]), dim) * 8
        # per node and table: its int64 code while hashing, the code and its place in the
        # order (1 + 4 bytes) twice while a rebuild holds the old and new tables, offsets;
        # reservoir keeps an int64 key per entry (twice)
        per_entry = 8 + 2 * 5 + 4 + (16 if p["replacement"] == "reservoir" else 0)
        tables = L * n_out * per_entry
        queries = rows * (n_fn * 8 + L * 8)  # digits, alternatives, margins, codes
        table = next((e.table for e in self._methods() if e.label == cell.label), cell.label)
        in_grid = {"K", "L"} & {k for k, _ in cell.grid}
        return MemoryPart(functions + tables + queries,
                          f"the hash functions and {L:,} tables ({K} digits each) over the "
                          f"{n_out:,} nodes of layer {layer}",
                          f"[methods.{table}{'.grid' if in_grid else ''}] L = {L}, K = {K}")

    def check_widths(self, n_features: int, n_classes: int, n_train: int | None = None) -> None:
        """With the data's real sizes: every method's first layer can be built (e.g. a
        ``pool`` larger than the input), and (given ``n_train``) the batch is not larger
        than the training set. Called after loading, before anything is written."""
        from lshprof.nn.layers import make_layer

        if n_train is not None:
            self._check_batch(int(n_train))

        n_in = n_features if self.model.network.apply_to == "hidden" else \
            self.model.network.hidden[-1]
        n_out = self.model.network.hidden[0] if self.model.network.apply_to == "hidden" else \
            n_classes
        where = {e.label: e.where for e in self._methods()}
        for cell in {c.label: c for c in self.cells()}.values():
            try:
                make_layer(cell.method, n_in, min(n_out, 64), seed=0, **cell.params)
            except ConfigError as exc:
                raise ConfigError(f"{self.source}: {where.get(cell.label, cell.label)} with "
                                  f"{n_in} inputs: {exc}") from None

    # -- overrides and the sweep ----------------------------------------------------------------------
    def with_overrides(self, *, energy: str | None = None, threads: int | None = None,
                       seeds: list[int] | None = None, epochs: int | None = None,
                       fractions: list[float] | None = None, methods: list[str] | None = None,
                       quick: bool = False) -> "Scenario":
        """A copy with the command line's values in place of the file's. ``quick`` applies
        the file's ``[quick]`` table and the data set's reduced sizes; explicit options
        still win."""
        d = self.model.model_dump()
        if quick:
            q = self.model.quick
            for key, table in (("epochs", "training"), ("batch_size", "training"),
                               ("hidden", "network"), ("seeds", "sweep"), ("fractions", "sweep")):
                if getattr(q, key) is not None:
                    d[table][key] = getattr(q, key)
            if q.epochs is None:
                d["training"]["epochs"] = min(d["training"]["epochs"], 2)
            if q.seeds is None:
                d["sweep"]["seeds"] = d["sweep"]["seeds"][:1]
            d["data"].update(q.data)
            for label, lists in q.grid.items():  # in place: the grid keeps its keys' order
                grid = (d["methods"].get(label) or {}).get("grid")
                if grid:
                    grid.update({k: v for k, v in lists.items() if k in grid})
        for value, table, key in ((energy, "measure", "energy"), (threads, "measure", "threads"),
                                  (seeds, "sweep", "seeds"), (epochs, "training", "epochs"),
                                  (fractions, "sweep", "fractions")):
            if value is not None:
                d[table][key] = value
        if threads is not None:
            d["sweep"]["threads"] = None
        if methods is not None:
            unknown = [m for m in methods if m not in d["methods"]]
            if unknown:
                raise ConfigError(f"{self.source}: --methods: no method {unknown[0]!r} in this "
                                  f"scenario; it has: {', '.join(d['methods'])}")
            d["methods"] = {k: v for k, v in d["methods"].items() if k in methods}
            d["quick"]["grid"] = {k: v for k, v in d["quick"]["grid"].items() if k in methods}
        return _build(d, self.source, quick=self.quick or quick, path=self.path)

    def _fractions(self, method: str, t: MethodTable, params: dict[str, Any]) -> list[float]:
        """The fractions ``method`` is swept over; ``params``: the table's parameters with
        its grid combination's (either may fix the fraction, which is then not swept)."""
        if method not in FRACTION_PARAM:
            return []
        if FRACTION_PARAM[method] in params:
            return []  # the table fixes it: not swept
        return list(t.fractions if t.fractions is not None else self.model.sweep.fractions)

    def thread_counts(self, cores: int | None = None) -> list[int]:
        """The sweep's thread counts: ``[sweep] threads`` (``"powers"`` expanded for
        ``cores``, default :func:`available_cores`), else ``[measure] threads``."""
        m = self.model
        if m.sweep.threads == "powers":
            return power_thread_counts(available_cores() if cores is None else cores)
        return list(m.sweep.threads or [m.measure.threads])

    def cells(self, cores: int | None = None) -> list[Cell]:
        """Every cell of the sweep, in run order: thread count, seed, method (each grid
        combination a method of its own, in the grid's order), fraction (``cores``: what
        ``threads = "powers"`` expands for; default this machine's)."""
        m = self.model
        specs = self.specs()
        out = []
        for threads in self.thread_counts(cores):
            for seed in m.sweep.seeds:
                for e in self._methods():
                    method, t, label = e.method, e.settings, e.label
                    params = dict(e.params)
                    if m.measure.quality and method == "lsh":
                        params.setdefault("quality", True)
                    opt = {**m.training.optimizer_params, **(t.optimizer_params or {})}
                    mode = t.mode or m.training.mode
                    fractions = self._fractions(method, t, e.params)
                    if not fractions:
                        fixed = params.get(FRACTION_PARAM.get(method, ""), None)
                        frac = fixed if method != "adaptive_dropout" else None
                        out.append(Cell(label, method, params, frac, seed, threads, opt, mode,
                                        grid=e.grid, **specs))
                    for f in fractions:
                        out.append(Cell(label, method, {**params, **sweep_params(method, f)},
                                        f, seed, threads, opt, mode, grid=e.grid, **specs))
        return out

    def specs(self) -> dict[str, Any]:
        """What every cell of this scenario shares: the data, network, training and
        measurement specs (:mod:`lshprof.experiment.sweep`) and the scenario's name."""
        m = self.model
        return {
            "data": DataSpec(m.data.dataset, dict(self._data_options), m.data.seed),
            "network": NetworkSpec(tuple(m.network.hidden), m.network.activation,
                                   m.network.apply_to),
            "training": TrainingSpec(m.training.epochs, m.training.batch_size,
                                     m.training.optimizer),
            "measure": MeasureSpec(m.measure.energy, m.measure.powercap_root,
                                   m.measure.energy_model),
            "scenario": self.name,
        }


def available_memory() -> int:
    """Bytes of memory this machine has available now (``psutil.virtual_memory``)."""
    import psutil

    return int(psutil.virtual_memory().available)


@dataclass(frozen=True)
class MemoryPart:
    """One part of a :class:`MemoryEstimate`: its bytes, what it is (``the weights,
    gradients and adam state of layer 1 (784 x 1,000)``), and the scenario key that sets
    its size (``[network] hidden = [1000]``)."""

    nbytes: int
    what: str
    key: str


@dataclass(frozen=True)
class MemoryEstimate:
    """What :meth:`Scenario.memory_estimate` returns: the parts of the most demanding
    cell (``cell``: its label) and the data, and their ``total`` in bytes."""

    parts: tuple[MemoryPart, ...]
    cell: str | None = None

    @property
    def total(self) -> int:
        return int(sum(p.nbytes for p in self.parts))

    @property
    def largest(self) -> MemoryPart:
        return max(self.parts, key=lambda p: p.nbytes)

    def heaviest_key(self) -> tuple[str, list[MemoryPart]]:
        """The key whose parts add up to the most bytes, and those parts, largest first:
        what to lower first."""
        by_key: dict[str, list[MemoryPart]] = {}
        for part in self.parts:
            by_key.setdefault(part.key, []).append(part)
        key = max(by_key, key=lambda k: sum(q.nbytes for q in by_key[k]))
        return key, sorted(by_key[key], key=lambda q: -q.nbytes)

    def text(self) -> str:
        """The estimate, one part a line, largest first."""
        from lshprof.data.fetch import size_text

        lines = [f"about {size_text(self.total)}" + (f" (cell {self.cell})" if self.cell else "")]
        for part in sorted(self.parts, key=lambda p: -p.nbytes):
            lines.append(f"  {size_text(part.nbytes):>9}  {part.what}  ({part.key})")
        return "\n".join(lines)


def _build(d: dict[str, Any], source: str, *, quick: bool = False,
           path: Path | None = None) -> Scenario:
    try:
        model = ScenarioModel.model_validate(d)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_pydantic_message(exc)}") from None
    s = Scenario(model, source, path)
    s.quick = quick
    s._check()
    return s


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Read and check a scenario: a built-in name (``quickstart``) or a TOML file."""
    text_name = str(name_or_path)
    path = Path(text_name)
    builtins = builtin_scenarios()
    user_file = None
    if not path.suffix and text_name in builtins:
        path, source = builtins[text_name], f"{text_name}.toml (built-in)"
    elif path.exists():
        source, user_file = text_name, path.resolve()
    elif is_symlink_loop(path):
        raise ConfigError(f"scenario file {text_name} is a symlink loop (the symbolic links on "
                          "the way to it point at each other), not a file; make it point at "
                          "the real scenario file")
    elif not path.suffix:
        raise ConfigError(f"no built-in scenario {text_name!r} and no such file; built-in: "
                          f"{', '.join(builtins)} (see lshprof scenarios)")
    else:
        raise ConfigError(f"scenario file {text_name} not found; give a path to a .toml file "
                          f"or a built-in name ({', '.join(builtins)})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario {source} is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                          f"at offset {exc.start}): is it a TOML file?") from None
    try:
        raw = tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark is no mistake
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    return _build(copy.deepcopy(raw), source, path=user_file)
