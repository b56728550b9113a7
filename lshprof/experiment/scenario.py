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
    [quick]      what --quick changes: epochs, seeds, fractions, data options
    [check]      thresholds of ``lshprof check`` for runs of this scenario (see
                 :mod:`lshprof.analysis.check`); they do not change what runs

The structure is a pydantic model (types, ranges, unknown keys); data-set options,
layer parameters and optimizer parameters are then checked against lshprof's own
registries. Every mistake becomes one :class:`~lshprof.errors.ConfigError` line
naming the file, the key and what is allowed, before anything runs.

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
import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt,
                      PositiveInt, ValidationError, field_validator)

from lshprof.errors import ConfigError
from lshprof.measure.system import available_cores
from lshprof.names import APPLY_TO, FRACTION_PARAM, MODES, THREAD_KEYWORDS, TIME_CLOCKS
from lshprof.experiment.sweep import (Cell, DataSpec, MeasureSpec, NetworkSpec, TrainingSpec,
                                     sweep_params)

__all__ = ["first_difference", "Scenario", "Cell", "load_scenario", "builtin_scenarios", "sweep_params",
           "DEFAULT_SCENARIO", "scenario_schema", "MODES", "THREAD_KEYWORDS",
           "available_cores", "power_thread_counts"]

#: what ``lshprof run`` runs without an argument
DEFAULT_SCENARIO = "quickstart"

Mode = Literal[MODES]


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
        elif v is not None:
            raise ValueError(f"must be a list of thread counts or a keyword; {allowed}")
        return v

    @field_validator("threads")
    @classmethod
    def _threads(cls, v):
        return v if isinstance(v, str) else _check_unique(v, "thread count")


class Measure(_Table):
    threads: PositiveInt = 1
    energy: str = "auto"
    idle_baseline: NonNegativeFloat = Field(0.0, description="seconds of idle power measured "
                                                             "first (0: none)")
    quality: bool = Field(False, description="score LSH selection against the exact top-k "
                                             "during training (its MACs are kept apart)")
    powercap_root: str | None = None
    energy_model: str | None = None


class MethodTable(BaseModel):
    """``method`` (default: the table's label) and its layer parameters."""

    model_config = ConfigDict(extra="allow", strict=True)
    method: str | None = None
    fractions: list[float] | None = None
    optimizer_params: dict[str, float] | None = None
    mode: Mode | None = Field(None, description="this method's training mode (default: "
                                                "[training] mode)")

    _fractions = field_validator("fractions")(_check_fractions)


class Quick(_Table):
    epochs: PositiveInt | None = None
    seeds: list[NonNegativeInt] | None = None
    fractions: list[float] | None = None
    batch_size: PositiveInt | None = None
    hidden: list[PositiveInt] | None = None
    data: dict[str, Any] = Field(default_factory=dict)

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
    shown = json.dumps(got) if isinstance(got, (str, int, float, bool, list)) else repr(got)
    return f"{where}: {msg[0].lower() + msg[1:]} (got {shown})"


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
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    # -- checking ------------------------------------------------------------------------------------
    def _check(self) -> None:
        from lshprof.data import resolve_options
        from lshprof.names import ENERGY_BACKENDS, HIDDEN_ACTIVATIONS, OPTIMIZERS
        from lshprof.nn.layers import LAYERS

        m, src = self.model, self.source
        opts = dict(m.data.model_extra or {})
        if self.path is not None:  # file options are relative to the scenario file's folder
            for key in ("path", "train", "test", "root"):
                v = opts.get(key)
                if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                    opts[key] = str(self.path.parent / v)
                elif isinstance(v, str) and v:
                    opts[key] = str(Path(v).expanduser())
        self._data_options = resolve_options(m.data.dataset, opts, quick=self.quick,
                                             keep=tuple(m.quick.data) if self.quick else (),
                                             where=f"{src}: [data]")
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
                                  f"{method!r}); allowed: method, fractions, optimizer_params, mode, "
                                  f"{', '.join(LAYERS[method].PARAMS) or '(no parameters)'}")
            if t.fractions is not None and method not in FRACTION_PARAM:
                raise ConfigError(f"{src}: {where} fractions: method {method!r} has no active "
                                  "fraction; remove the key")
            if t.optimizer_params is not None:
                self._check_optimizer_params(t.optimizer_params, f"{where} optimizer_params")
            for fraction in self._fractions(method, t) or [None]:
                self._check_layer(method, params, fraction, where)

    def _check_optimizer_params(self, params: dict, where: str) -> None:
        from lshprof.nn.optim import OPTIMIZERS

        allowed = OPTIMIZERS[self.model.training.optimizer].PARAMS
        for k, v in params.items():
            if k not in allowed:
                raise ConfigError(f"{self.source}: unknown key {k!r} in {where} (optimizer "
                                  f"{self.model.training.optimizer!r}); allowed: "
                                  f"{', '.join(allowed)}")
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{self.source}: {where} {k}: must be a finite number >= 0, "
                                  f"got {v}")

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

    def check_data(self) -> None:
        """Raise a one-line :class:`~lshprof.errors.DataError` when the data set's files or
        packages are missing (naming the command that fetches them). Loads nothing."""
        from lshprof.data import check
        from lshprof.errors import DataError

        try:
            check(self.model.data.dataset, self._data_options)
        except DataError as exc:
            raise DataError(f"{self.source}: [data] {exc}") from None

    def check_widths(self, n_features: int, n_classes: int) -> None:
        """With the data's real sizes: every method's first layer can be built (e.g. a
        ``pool`` larger than the input). Called after loading, before anything is written."""
        from lshprof.nn.layers import make_layer

        n_in = n_features if self.model.network.apply_to == "hidden" else \
            self.model.network.hidden[-1]
        n_out = self.model.network.hidden[0] if self.model.network.apply_to == "hidden" else \
            n_classes
        for cell in {c.label: c for c in self.cells()}.values():
            try:
                make_layer(cell.method, n_in, min(n_out, 64), seed=0, **cell.params)
            except ConfigError as exc:
                raise ConfigError(f"{self.source}: [methods.{cell.label}] with "
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
        return _build(d, self.source, quick=self.quick or quick, path=self.path)

    def _fractions(self, method: str, t: MethodTable) -> list[float]:
        if method not in FRACTION_PARAM:
            return []
        params = t.model_extra or {}
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
        """Every cell of the sweep, in run order: thread count, seed, method, fraction
        (``cores``: what ``threads = "powers"`` expands for; default this machine's)."""
        m = self.model
        specs = self.specs()
        out = []
        for threads in self.thread_counts(cores):
            for seed in m.sweep.seeds:
                for label, t in m.methods.items():
                    method = t.method or label
                    params = dict(t.model_extra or {})
                    if m.measure.quality and method == "lsh":
                        params.setdefault("quality", True)
                    opt = {**m.training.optimizer_params, **(t.optimizer_params or {})}
                    mode = t.mode or m.training.mode
                    fractions = self._fractions(method, t)
                    if not fractions:
                        fixed = params.get(FRACTION_PARAM.get(method, ""), None)
                        frac = fixed if method != "adaptive_dropout" else None
                        out.append(Cell(label, method, params, frac, seed, threads, opt, mode,
                                        **specs))
                    for f in fractions:
                        out.append(Cell(label, method, {**params, **sweep_params(method, f)},
                                        f, seed, threads, opt, mode, **specs))
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
    elif not path.suffix:
        raise ConfigError(f"no built-in scenario {text_name!r} and no such file; built-in: "
                          f"{', '.join(builtins)} (see lshprof scenarios)")
    else:
        raise ConfigError(f"scenario file {text_name} not found; give a path to a .toml file "
                          f"or a built-in name ({', '.join(builtins)})")
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    return _build(copy.deepcopy(raw), source, path=user_file)
