"""``lshprof check`` and ``lshprof baseline``: catch a change that makes the kernels do more
work, lose accuracy, or run slower, on noisy shared CI runners without RAPL.

A run folder (or a baseline file made from one with ``lshprof baseline``) is reduced to
a *profile*: for every cell (method x fraction x seed x threads) its work counts summed
over the epochs, the mean active fraction of each layer, the final test accuracy, and
each epoch's training time and energy. Two profiles are compared metric by metric:

``work``
    MACs per phase, hash adds and compares, inference MACs and the modelled bytes, per
    cell. Deterministic at a fixed seed, so compared exactly: any increase (beyond
    ``macs_tolerance``, 0 by default) fails; a decrease is reported as an improvement.
``active set``
    each layer's mean active fraction, per cell, the same way.
``accuracy``
    final test accuracy, the mean over the seeds both runs have; a drop of more than
    ``accuracy_tolerance`` (absolute) fails.
``time``
    never absolute seconds, which depend on the runner: each epoch's training time (at
    one thread process CPU time, which other jobs on the machine do not change; at
    more threads wall time, which is what parallel kernels save; ``time_clock``) is
    divided by the median epoch time of the run's own dense cells (same run, same
    thread count), so a slower machine with the same ratios passes. Every epoch of
    every seed is one repeat. A method fails only when its median ratio grew by more
    than ``time_factor`` *and* a one-sided Mann-Whitney U test says the current
    ratios are larger than the baseline's at level ``alpha``: noise that moves a few
    epochs is not a regression, and neither is a tiny but consistent drift. Dense,
    the reference of the others, is divided by the BLAS yardstick its cell timed just
    before training (``reference_blas_s``: one 256-square float32 product), so a dense
    layer that drifts away from plain BLAS fails too.
``energy``
    like time, with ``energy_factor``, when both runs measured energy (RAPL); when
    either one is an estimate (a model of the counts, already compared under work) it
    is skipped, and the output says so.

Timing that cannot be trusted is not judged: when a cell of either run, or a dense cell
its ratios are taken against, carries a flag of :data:`lshprof.names.TIMING_FLAGS` (timed
while other processes kept the machine busy, or numba compiled inside a measured epoch:
:func:`row_flags` reads them from the rows), its time and energy comparisons are skipped
as "unstable timing" with the reason, never passed or failed. One exception: a busy
machine adds nothing to the process CPU time compared at one thread, so that comparison
is still made, and says the machine was busy. Work and accuracy are compared as usual.

Cells that the baseline has and the current run lacks fail (``missing``); new cells
are listed. Runs of different data, network or training settings are not comparable:
that is an input error, as are unreadable or malformed files.

Thresholds come from the command line, else the current run's scenario (its
``[check]`` table), else :data:`DEFAULTS`.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (BaseModel, ConfigDict, Field, NonNegativeInt,
                      PositiveInt, ValidationError, field_validator)

from lshprof.errors import ConfigError, ResultsError
from lshprof.experiment.results import utc_now
from lshprof.experiment.scenario import CheckTable
from lshprof.experiment.sweep import DIMENSIONS, SUMMARY_KEYS

#: the sweep dimensions a cell profile has a field of its own for (the rest are in ``keys``)
PROFILE_NAMED = ("method", "fraction", "seed", "threads")

__all__ = ["FORMAT", "FORMAT_VERSION", "DEFAULTS", "Finding", "CheckResult", "load_profile",
           "make_baseline", "write_baseline", "baseline_text", "compare", "render_markdown",
           "render_junit", "print_result", "FAILING", "row_flags", "unstable_timing",
           "markdown_text"]

FORMAT = "lshprof-baseline"
FORMAT_VERSION = 1

#: threshold -> default: the scenario's ``[check]`` table defines them (and checks a
#: file's values); the command line overrides them
DEFAULTS = CheckTable().model_dump()

#: ``time_clock`` values: process CPU time at one thread and wall time at more (auto),
#: or one of the two everywhere
TIME_CLOCKS = get_args(CheckTable.model_fields["time_clock"].annotation)

#: statuses that make ``lshprof check`` exit 1
FAILING = ("regression", "missing")

#: settings that decide what a cell computes: runs that differ here cannot be compared
COMPARABLE = ("data", "network", "training")


def _count_columns() -> list[str]:
    from lshprof.measure.macs import PHASES

    return ([f"macs_{p}" for p in PHASES] + ["macs_total", "hash_adds", "hash_compares",
                                             "rehash_adds", "rehash_compares", "bytes_moved",
                                             "eval_macs_total", "eval_bytes_moved"])


# -- the baseline file --------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CellProfile(_Strict):
    """One cell of a run, as the check compares it."""

    label: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    fraction: float | None
    seed: NonNegativeInt
    threads: PositiveInt
    #: the cell's values of the sweep's other dimensions (:data:`lshprof.experiment.sweep.DIMENSIONS`
    #: beyond label, fraction, seed and threads; a missing one is at its default)
    keys: dict[str, Any] = Field(default_factory=dict)
    epochs: PositiveInt
    accuracy: float = Field(ge=0.0, le=1.0)
    counts: dict[str, NonNegativeInt]
    active_fraction: list[float | None]
    time_s: list[float] = Field(min_length=1)
    energy_j: list[float] | None = None
    energy_source: str
    reference_s: float | None = Field(None, gt=0.0)
    cpu_s: list[float] | None = None
    reference_cpu_s: float | None = Field(None, gt=0.0)
    #: what makes the cell's figures doubtful (:func:`row_flags`); a baseline file leaves it
    #: out when there are none
    flags: list[str] = Field(default_factory=list)

    @property
    def key(self) -> dict[str, Any]:
        """The cell's value of every sweep dimension (:data:`lshprof.experiment.sweep.CELL_KEYS`)."""
        named = {"method": self.label, "fraction": self.fraction, "seed": self.seed,
                 "threads": self.threads}
        return {d.name: named[d.name] if d.name in named else self.keys.get(d.name, d.default)
                for d in DIMENSIONS}

    def series(self, metric: str, clock: str) -> list[float] | None:
        """Per-epoch values of ``metric`` (time on ``clock``, or energy)."""
        if metric == "energy":
            return self.energy_j
        return self.cpu_s if clock == "cpu" else self.time_s

    def yardstick(self, clock: str) -> float | None:
        return self.reference_cpu_s if clock == "cpu" else self.reference_s

    @field_validator("time_s", "cpu_s")
    @classmethod
    def _positive(cls, v):
        for t in v or []:
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"epoch times must be finite and > 0, got {t}")
        return v

    @field_validator("energy_j")
    @classmethod
    def _energy(cls, v):
        for j in v or []:
            if not (math.isfinite(j) and j >= 0):
                raise ValueError(f"epoch energies must be finite and >= 0, got {j}")
        return v


class ProfileModel(_Strict):
    """A baseline file: what ``lshprof baseline`` writes and ``lshprof check`` reads."""

    format: Literal["lshprof-baseline"]
    version: Literal[1]
    created_at: str
    source_run: str
    scenario: str
    settings: dict[str, Any]
    check: dict[str, float | str] = Field(default_factory=dict)
    lshprof_version: str
    git_commit: str | None = None
    git_dirty: bool | None = None
    machine: str
    energy_source: str
    cells: dict[str, CellProfile] = Field(min_length=1)

    @field_validator("check")
    @classmethod
    def _known(cls, v):
        unknown = sorted(set(v) - set(DEFAULTS))
        if unknown:
            raise ValueError(f"unknown threshold {unknown[0]!r}; known: {', '.join(DEFAULTS)}")
        return v


@dataclass
class Profile:
    """A run or a baseline file, ready to compare; ``where`` names it in messages."""

    where: str
    model: ProfileModel


def _pydantic_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "top level"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return f"{loc} is missing"
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc}"
    return f"{loc}: {msg}"


def _read_baseline(path: Path) -> Profile:
    fix = "make it again with lshprof baseline RUN -o FILE"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ResultsError(f"{path} is not a text file; {fix}") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ResultsError(f"{path} is corrupt (not valid JSON: {exc}); {fix}") from None
    except RecursionError:
        raise ResultsError(f"{path} is corrupt (JSON nested too deeply to read); {fix}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ResultsError(f"{path} is not an lshprof baseline file (no \"format\": "
                           f"\"{FORMAT}\"); give a baseline file or a run folder")
    if raw.get("version") != FORMAT_VERSION:
        raise ResultsError(f"{path} has baseline format version {raw.get('version')!r}; this "
                           f"lshprof reads version {FORMAT_VERSION}; {fix}")
    try:
        model = ProfileModel.model_validate(raw)
    except ValidationError as exc:
        raise ResultsError(f"{path} is malformed: {_pydantic_line(exc)}; {fix}") from None
    return Profile(str(path), model)


def _epoch_lists(g, col: str) -> list[float] | None:
    import pandas as pd

    if col not in g.columns:
        return None
    v = pd.to_numeric(g[col], errors="coerce")
    return None if v.isna().any() else [float(x) for x in v]


def _training_times(g, elapsed: str, quality: str, jit: str | None = None
                    ) -> list[float] | None:
    """Seconds of each epoch's training pass (column ``elapsed``) less lshprof's own
    selection-quality measurement (``quality``) and, on the wall clock, numba compilation
    (``jit``: ``jit_s``, itself a wall time), neither of which is the method's work. A cell
    that compiled is flagged ``compiled`` and its time is not judged; an epoch that taking
    the compilation out would leave with nothing keeps it."""
    total = _epoch_lists(g, elapsed)
    if total is None:
        return None
    less = _epoch_lists(g, quality) or [0.0] * len(total)
    compiled = [0.0] * len(total)
    if jit and jit in g.columns:  # missing in an epoch: none there
        import pandas as pd

        compiled = [float(x) for x in pd.to_numeric(g[jit], errors="coerce").fillna(0.0)]
    out = [t - q - (j if math.isfinite(j) and 0 < j < t - q else 0.0)
           for t, q, j in zip(total, less, compiled)]
    return out if all(math.isfinite(v) and v > 0 for v in out) else None


def _first_positive(g, col: str) -> float | None:
    import pandas as pd

    if col not in g.columns:
        return None
    v = pd.to_numeric(g[col], errors="coerce")
    v = v[v > 0]
    return float(v.iloc[0]) if len(v) else None


def row_flags(g) -> list[str]:
    """The flag names of one cell's rows ``g`` (a DataFrame of its epochs), by the rules of
    :func:`lshprof.analysis.flags.cell_flags`, in :data:`lshprof.names.CELL_FLAGS` order."""
    from lshprof.analysis.flags import cell_flags

    return [f.name for f in cell_flags(g)]


class _Bad(Exception):
    """A value of a run's rows that cannot be checked (the message says which)."""


def _cell_int(last, col: str, default: int | None = None) -> int:
    """Column ``col`` of a cell's last row as a whole number (``default`` when missing)."""
    import pandas as pd

    v = last.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        if default is None:
            raise _Bad(f"its {col} is missing")
        return default
    x = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
    if pd.isna(x) or not math.isfinite(float(x)) or not float(x).is_integer():
        raise _Bad(f"its {col} is {getattr(v, 'item', lambda: v)()!r}, not a whole number")
    return int(x)


def _cell_profile(g, count_cols: list[str]) -> dict[str, Any]:
    """The profile of one cell's rows ``g`` (sorted by epoch), as :class:`CellProfile`'s
    fields; raises :class:`_Bad` on a value that is missing or not a number."""
    import pandas as pd

    from lshprof.analysis.summary import cell_kind

    last = g.iloc[-1]
    for col in ("method", "eval_accuracy"):
        if col not in g.columns or pd.isna(last[col]):
            raise _Bad(f"its {col} is missing")
    layers = []
    for v in g.get("layer_active_fraction", pd.Series(dtype=object)):
        try:
            layers.append(json.loads(v) if isinstance(v, str) and v else None)
        except (ValueError, RecursionError):
            raise _Bad(f"layer_active_fraction {v[:40]!r} is not a JSON list") from None
    active: list[float | None] = []
    if layers and all(isinstance(x, list) for x in layers):
        for per_layer in zip(*layers):
            vals = [v for v in per_layer if v is not None]
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                raise _Bad(f"layer_active_fraction holds {per_layer!r}, not numbers")
            active.append(sum(vals) / len(vals) if vals else None)
    counts = {}
    for c in count_cols:
        v = pd.to_numeric(g[c], errors="coerce")
        if v.isna().all() and g[c].isna().all():
            continue  # not recorded for this cell: listed by the comparison, not judged
        bad = v.isna() | ~v.map(math.isfinite)
        if bad.any():
            epoch = g["epoch"][bad].iloc[0] if "epoch" in g.columns else "?"
            raise _Bad(f"{c} is missing or not a finite number in epoch {epoch} (a count that "
                       "is missing is never summed as 0)")
        counts[c] = int(round(float(v.sum())))
    acc = pd.to_numeric(pd.Series([last["eval_accuracy"]]), errors="coerce").iloc[0]
    if pd.isna(acc):
        raise _Bad(f"eval_accuracy is {last['eval_accuracy']!r}, not a number")
    sources = set(g.get("energy_source", pd.Series(["none"])).fillna("none").astype(str))
    fraction = pd.to_numeric(pd.Series([last.get("fraction")]), errors="coerce").iloc[0]
    return {
        "label": str(last["method"]), "kind": cell_kind(last),
        "fraction": None if pd.isna(fraction) else float(fraction),
        "seed": _cell_int(last, "seed"), "threads": _cell_int(last, "threads", 1),
        "keys": {d.name: last[d.name] for d in DIMENSIONS if d.name not in PROFILE_NAMED
                 and isinstance(last.get(d.name), (str, int, float))
                 and not pd.isna(last[d.name]) and last[d.name] != d.default},
        "epochs": int(len(g)), "accuracy": float(acc),
        "counts": counts,
        "active_fraction": active,
        "time_s": _training_times(g, "wall_elapsed_s", "wall_quality_s", "jit_s"),
        "energy_j": _epoch_lists(g, "energy_j") if sources == {"measured"} else None,
        "energy_source": ", ".join(sorted(sources)),
        "reference_s": _first_positive(g, "reference_blas_s"),
        "cpu_s": _training_times(g, "cpu_elapsed_s", "cpu_quality_s"),
        "reference_cpu_s": _first_positive(g, "reference_blas_cpu_s"),
        "flags": row_flags(g),
    }


def _run_profile(folder: Path) -> Profile:
    from lshprof.experiment.results import load_results, read_run

    meta = read_run(folder)  # checks the type of every key it holds
    if not meta.get("complete"):
        raise ResultsError(f"{folder} holds a run that is not complete (status "
                           f"{meta.get('status')}, {meta.get('rows', 0)} rows); finish it (lshprof run SCENARIO -o FOLDER resumes it) before "
                           "checking it or making a baseline of it")
    df = load_results(folder)
    if df.empty or "cell" not in df.columns:
        raise ResultsError(f"{folder} holds no measurements to check")
    scen = meta.get("scenario") or {}
    settings = scen.get("settings") or {}
    machine = meta.get("machine") or {}
    cells: dict[str, Any] = {}
    count_cols = [c for c in _count_columns() if c in df.columns]
    for cell_id, g in df.groupby("cell", sort=False):
        if "epoch" in g.columns and g["epoch"].duplicated().any():
            raise ResultsError(f"{folder}: cell {cell_id} holds epoch "
                               f"{g['epoch'][g['epoch'].duplicated()].iloc[0]} twice (a copied "
                               "cell file?); delete the duplicate and resume the run")
        try:
            cells[str(cell_id)] = _cell_profile(g.sort_values("epoch"), count_cols)
        except (_Bad, TypeError) as exc:
            raise ResultsError(f"{folder}: cell {cell_id} cannot be checked: {exc}; the run is "
                               "damaged: run it again") from None
    check = settings.get("check") or {}
    sources = {c["energy_source"] for c in cells.values()}
    raw = {
        "format": FORMAT, "version": FORMAT_VERSION,
        "created_at": str(meta.get("ended_at") or meta.get("started_at") or ""),
        "source_run": folder.name, "scenario": str(scen.get("name") or "?"),
        "settings": {k: settings.get(k) for k in COMPARABLE if k in settings},
        "check": {k: v for k, v in (check.items() if isinstance(check, dict) else ())
                  if k in DEFAULTS},
        "lshprof_version": str(meta.get("lshprof_version") or "?"),
        "git_commit": machine.get("git_commit"), "git_dirty": machine.get("git_dirty"),
        "machine": str(machine.get("cpu_model") or "unknown CPU"),
        "energy_source": ", ".join(sorted(sources)), "cells": cells,
    }
    try:
        model = ProfileModel.model_validate(raw)
    except ValidationError as exc:
        raise ResultsError(f"{folder}: its measurements cannot be checked: "
                           f"{_pydantic_line(exc)}") from None
    return Profile(str(folder), model)


def load_profile(path: str | os.PathLike) -> Profile:
    """A run folder (or its ``run.json``) or a baseline file, as a :class:`Profile`.
    Raises :class:`~lshprof.errors.ResultsError` with one line on anything unreadable."""
    import errno
    import stat

    from lshprof.experiment.results import RUN_FILE

    p = Path(path)
    give = "give a run folder or a baseline file"
    try:
        st = os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ResultsError(f"{p} is a loop of symbolic links; {give}") from None
        if os.path.islink(p):
            raise ResultsError(f"{p} is a symbolic link to {os.readlink(p)}, which does not "
                               f"exist; {give}") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise ResultsError(f"{p}: no such file or folder; {give}") from None
        raise ResultsError(f"cannot read {p}: {exc.strerror}; {give}") from None
    if stat.S_ISDIR(st.st_mode):
        return _run_profile(p)
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read forever
        raise ResultsError(f"{p} is not a regular file (a FIFO, socket or device); {give}")
    if p.name == RUN_FILE:
        return _run_profile(p.parent)
    return _read_baseline(p)


def make_baseline(run: str | os.PathLike) -> dict[str, Any]:
    """The baseline file's content for a complete run folder (what ``lshprof baseline``
    writes), with per-epoch times and energies rounded to 6 significant digits."""
    prof = load_profile(run)
    d = prof.model.model_dump(mode="json")
    d["created_at"] = utc_now()
    for c in d["cells"].values():
        if not c.get("flags"):
            c.pop("flags", None)  # files of runs with nothing flagged stay as they were
        for key in ("time_s", "cpu_s", "energy_j"):
            if c.get(key):
                c[key] = [float(f"{t:.6g}") for t in c[key]]
    return d


def _compact_json(obj: Any) -> str:
    """Indented JSON with every list of numbers on one line: short diffs when committed."""
    text = json.dumps(obj, indent=1, sort_keys=False)
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]",
                  lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def baseline_text(d: dict[str, Any]) -> str:
    """The text of a baseline file of content ``d`` (:func:`make_baseline`)."""
    return _compact_json(d)


def write_baseline(run: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """Write the baseline of ``run`` to ``out`` atomically; returns its content."""
    from lshprof.files import check_output_target, write_text_atomic

    target = check_output_target(out, "-o")
    d = make_baseline(run)
    write_text_atomic(target, baseline_text(d))
    return d


# -- comparing ----------------------------------------------------------------------------------
@dataclass
class Finding:
    """One comparison: a metric of one cell (work, active set) or one method (accuracy,
    time, energy), with the value on each side and what it means."""

    metric: str
    label: str
    fraction: float | None
    threads: int | None
    seed: int | None
    status: str  # ok, improved, regression, missing, new, skipped
    baseline: str = ""
    current: str = ""
    change: str = ""
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``lsh @0.125, seed 0, 1 thread``."""
        parts = [self.label + ("" if self.fraction is None else f" @{self.fraction:g}")]
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        if self.threads is not None:
            parts.append(f"{self.threads} thread{'s' if self.threads != 1 else ''}")
        return ", ".join(parts)

    @property
    def failed(self) -> bool:
        return self.status in FAILING


@dataclass
class CheckResult:
    current: Profile
    baseline: Profile
    thresholds: dict[str, float]
    sources: dict[str, str]  # threshold -> "command line" | "scenario" | "default"
    findings: list[Finding]
    notes: list[str]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.failed]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.status] = out.get(f.status, 0) + 1
        return out

    def headline(self) -> str:
        c = self.counts()
        order = ("regression", "missing", "improved", "ok", "skipped", "new")
        parts = ", ".join(f"{c[s]} {s}{'s' if s == 'regression' and c[s] > 1 else ''}"
                          for s in order if c.get(s))
        return f"{'FAIL' if self.failed else 'PASS'}: {parts}"


def resolve_thresholds(current: Profile, overrides: dict[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, str]]:
    """Command line, else the current run's scenario, else :data:`DEFAULTS`."""
    values, sources = {}, {}
    for k, default in DEFAULTS.items():
        if overrides.get(k) is not None:
            values[k], sources[k] = overrides[k], "command line"
        elif k in current.model.check:
            values[k], sources[k] = current.model.check[k], "scenario"
        else:
            values[k], sources[k] = default, "default"
        if k == "time_clock":
            if values[k] not in TIME_CLOCKS:
                raise ConfigError(f"time_clock must be one of {', '.join(TIME_CLOCKS)}, got "
                                  f"{values[k]!r}")
        else:
            try:
                values[k] = float(values[k])
            except (TypeError, ValueError):
                raise ConfigError(f"threshold {k} must be a number, got {values[k]!r}") from None
            if not math.isfinite(values[k]):
                raise ConfigError(f"threshold {k} must be a finite number, got {values[k]!r} "
                                  f"(from the {sources[k]}); fix it or give --"
                                  f"{k.replace('_', '-')}")
    if values["time_factor"] < 1 or values["energy_factor"] < 1:
        raise ConfigError("time and energy factors must be >= 1 (1.25: 25% slower fails)")
    if not 0 < values["alpha"] < 0.5:
        raise ConfigError(f"alpha must be in (0, 0.5), got {values['alpha']}")
    if values["macs_tolerance"] < 0 or values["accuracy_tolerance"] < 0:
        raise ConfigError("tolerances must be >= 0")
    return values, sources


def _settings_difference(a: Profile, b: Profile) -> str | None:
    from lshprof.experiment.scenario import first_difference

    return first_difference(a.model.settings, b.model.settings)


def _num(v: float) -> str:
    if float(v).is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:.4g}"


def _rel(b: float, c: float) -> str:
    if b == c:
        return "="
    if b == 0:
        return "new work"
    return f"{(c - b) / b:+.1%}"


def _compare_counts(names: list[str], b: list, c: list, tol: float,
                    what: str) -> tuple[str, str]:
    """(status, detail) for two aligned lists of counts: any increase beyond ``tol``
    (relative) is a regression, a decrease with none is an improvement. A count one side
    did not record is listed, not judged."""
    changed = [(n, x, y) for n, x, y in zip(names, b, c) if x != y]
    judged = [(n, x, y) for n, x, y in changed if x is not None and y is not None]
    if any(y > x * (1 + tol) for _, x, y in judged):
        status = "regression"
    elif judged and all(y <= x for _, x, y in judged):
        status = "improved" if any(y < x for _, x, y in judged) else "ok"
    else:
        status = "ok"
    if not changed:
        return status, f"{len(names)} {what} equal"
    parts = []
    for n, x, y in changed:
        if x is None or y is None:
            parts.append(f"{n} not recorded in the {'baseline' if x is None else 'current run'}")
        else:
            parts.append(f"{n} {_num(x)} -> {_num(y)} ({_rel(x, y)})")
    detail = "; ".join(parts)
    if status == "ok" and any(y > x for _, x, y in judged):
        detail += f" (within macs_tolerance {tol:g})"
    return status, detail


def _work_findings(bc: CellProfile, cc: CellProfile, tol: float) -> list[Finding]:
    base = dict(label=cc.label, fraction=cc.fraction, threads=cc.threads, seed=cc.seed)
    out = []
    names = sorted(set(bc.counts) | set(cc.counts), key=lambda n: (n != "macs_total", n))
    b = [bc.counts.get(n) for n in names]
    c = [cc.counts.get(n) for n in names]
    status, detail = _compare_counts(names, b, c, tol, "counts")
    bt, ct = bc.counts.get("macs_total"), cc.counts.get("macs_total")
    out.append(Finding("work", status=status, detail=detail,
                       baseline=f"{bt:,} MACs" if bt is not None else "-",
                       current=f"{ct:,} MACs" if ct is not None else "-",
                       change=_rel(bt, ct) if bt is not None and ct is not None else "",
                       values={"baseline": bc.counts, "current": cc.counts}, **base))
    n = max(len(bc.active_fraction), len(cc.active_fraction))
    names = [f"layer {i + 1}" for i in range(n)]
    b = list(bc.active_fraction) + [None] * (n - len(bc.active_fraction))
    c = list(cc.active_fraction) + [None] * (n - len(cc.active_fraction))
    status, detail = _compare_counts(names, b, c, tol, "layers' active fractions")
    show = lambda v: ", ".join("-" if x is None else f"{x:.4g}" for x in v)  # noqa: E731
    out.append(Finding("active set", status=status, detail=detail, baseline=show(b),
                       current=show(c), change="=" if b == c else "",
                       values={"baseline": b, "current": c}, **base))
    return out


def _min_p(n1: int, n2: int) -> float:
    """The smallest one-sided p-value an exact Mann-Whitney U test can give n1 vs n2."""
    return 1.0 / math.comb(n1 + n2, n1)


def _ratio_test(unit: str, b: list[float], c: list[float], factor: float,
                alpha: float, against: str = "dense") -> tuple[str, str, dict]:
    """(status, detail, values) for two samples of per-repeat ratios to dense.

    The size of the change is judged on the fastest repeat of each side: interference
    from other work on a shared machine only ever adds time, so the fastest repeat is
    the steadiest estimate of what the code costs. Whether the change is more than noise
    is judged on all repeats, by a one-sided Mann-Whitney U test."""
    from scipy.stats import mannwhitneyu

    fb, fc = min(b), min(c)
    change = fc / fb
    values = {"baseline_fastest": fb, "current_fastest": fc, "change": change,
              "n_baseline": len(b), "n_current": len(c)}
    if _min_p(len(b), len(c)) >= alpha:
        return "skipped", (f"too few repeats ({len(b)} vs {len(c)}) for a significance test at "
                           f"alpha {alpha:g}; run more epochs or seeds"), values
    p_up = float(mannwhitneyu(c, b, alternative="greater").pvalue)
    p_down = float(mannwhitneyu(c, b, alternative="less").pvalue)
    values.update(p_greater=p_up, p_less=p_down)
    test = f"Mann-Whitney U over {len(b)} vs {len(c)} repeats"
    if change > factor and p_up < alpha:
        return "regression", (f"{unit} vs {against} grew x{change:.3f} > x{factor:g} and "
                              f"p={p_up:.2g} < {alpha:g} ({test})"), values
    if change < 1 / factor and p_down < alpha:
        return "improved", (f"{unit} vs {against} fell to x{change:.3f}, p={p_down:.2g} "
                            f"({test})"), values
    if change > factor:
        why = (f"{unit} vs {against} x{change:.3f} > x{factor:g} but p={p_up:.2g} >= "
               f"{alpha:g}: not significant")
    elif change < 1 / factor:
        why = f"{unit} vs {against} x{change:.3f} but p={p_down:.2g} >= {alpha:g}: not significant"
    else:
        why = f"{unit} vs {against} within x{factor:g} (p={min(p_up, p_down):.2g})"
    return "ok", f"{why}; {test}", values


def _reference_cells(cells: dict[str, CellProfile], threads: int) -> list[CellProfile]:
    """The run's dense cells at ``threads`` that other methods are measured against (the
    cells labelled ``dense`` when there are several of kind dense, as the summary takes it)."""
    dense = [c for c in cells.values() if c.kind == "dense" and c.threads == threads]
    named = [c for c in dense if c.label == "dense"]
    return named or [c for c in dense if c.label == (dense[0].label if dense else None)]


def _reference(cells: dict[str, CellProfile], threads: int, metric: str,
               clock: str) -> float | None:
    """The fastest per-epoch value of the run's dense cells at ``threads``
    (:func:`_reference_cells`)."""
    pick = _reference_cells(cells, threads)
    vals = [v for c in pick for v in (c.series(metric, clock) or [])]
    ref = min(vals) if vals else 0.0
    return ref if ref > 0 else None


def _clock(setting: str, cells: list[CellProfile], threads: int) -> str:
    """The clock time is compared on: process CPU time (every thread of the process; a
    job that shares the machine slows wall time, not this) or wall time. ``auto``: CPU
    time at one thread, wall time at more, where what parallel kernels save is wall
    time. CPU time needs both runs to have recorded it."""
    has_cpu = all(c.cpu_s for c in cells)
    if setting == "wall" or not has_cpu:
        return "wall"
    return "cpu" if setting == "cpu" or threads == 1 else "wall"


CLOCK_NAMES = {"cpu": "CPU time", "wall": "wall time"}


def _dense_time(metric: str, clock: str, keys: list[str], bcells, ccells, th,
                base, machines: tuple[str, str]) -> Finding:
    """Dense's own time: each epoch over the BLAS yardstick its cell timed just before
    training (:func:`lshprof.measure.timing.blas_reference_s`), on one CPU model only:
    how much slower a network's epoch is than one BLAS product depends on the processor
    (the ci scenario's dense cells: 28x on an AMD EPYC, 46x on an Intel Xeon, same code)."""
    if metric == "energy":
        return Finding(metric, status="skipped", detail=(
            "dense is the reference of the energy ratios (the yardstick's energy is not "
            "measured)"), **base)
    if machines[0] != machines[1]:
        return Finding(metric, status="skipped", detail=(
            f"the baseline ran on {machines[0]}, this run on {machines[1]}: dense's time over "
            "the BLAS yardstick is a property of the processor, so it is judged on the same CPU "
            "model only (the other methods are judged as ratios to dense); make a baseline on "
            "this machine to judge dense's own speed"), **base)
    if any(bcells[k].yardstick(clock) is None or ccells[k].yardstick(clock) is None
           for k in keys):
        return Finding(metric, status="skipped", detail=(
            "no BLAS yardstick (reference_blas_s) in one of the runs, which were made by an "
            "older lshprof: dense's own speed is not judged; make a new baseline, or compare "
            "with lshprof bench on one machine"), **base)
    b = [t / bcells[k].yardstick(clock) for k in keys for t in bcells[k].series(metric, clock)]
    c = [t / ccells[k].yardstick(clock) for k in keys for t in ccells[k].series(metric, clock)]
    status, detail, values = _ratio_test(CLOCK_NAMES[clock], b, c, th["time_factor"],
                                         th["alpha"], against="the BLAS yardstick")
    return Finding(metric, status=status, baseline=f"{values['baseline_fastest']:.1f}x BLAS",
                   current=f"{values['current_fastest']:.1f}x BLAS",
                   change=f"x{values['change']:.3f}", detail=detail, values=values, **base)


def unstable_timing(keys: list[str], baseline: Profile, current: Profile,
                    threads: int, *, reference: bool = True) -> list[str]:
    """Why the time (and measured energy) of cells ``keys`` cannot be judged: for every cell
    of either side, and (``reference``) every dense cell the ratios are taken against, whose
    flags include one of :data:`lshprof.names.TIMING_FLAGS` (timed while the machine was
    busy, or numba compiled inside a measured epoch), ``"busy: current run, lsh @0.1 seed 1"``.
    Empty when the timing is stable."""
    from lshprof.names import TIMING_FLAGS

    out: dict[str, list[str]] = {}
    for side, prof in (("baseline", baseline), ("current run", current)):
        cells = [prof.model.cells[k] for k in keys if k in prof.model.cells]
        if reference:
            cells += [c for c in _reference_cells(prof.model.cells, threads)
                      if all(c is not x for x in cells)]
        for c in cells:
            for name in c.flags:
                if name in TIMING_FLAGS:
                    where = c.label + ("" if c.fraction is None else f" @{c.fraction:g}")
                    out.setdefault(name, []).append(f"{side}, {where} seed {c.seed}")
    return [f"{name}: {'; '.join(dict.fromkeys(w))}" for name, w in out.items()]


_UNSTABLE_FIX = {"busy": "run again on a quiet machine",
                 "compiled": "numba compiled inside a measured epoch; please report it with "
                             "the scenario"}


def _unstable_finding(metric: str, why: list[str], base: dict) -> Finding:
    names = [w.split(":")[0] for w in why]
    fixes = "; ".join(_UNSTABLE_FIX.get(n, "run again") for n in names)
    return Finding(metric, status="skipped", detail=(
        f"unstable timing ({' | '.join(why)}): {metric} is not judged; {fixes}"),
        values={"unstable": names}, **base)


def _judge(metric: str, th: dict, factor_key: str, clock: str, keys: list[str], kind: str,
           threads: int, baseline: Profile, current: Profile, base: dict) -> Finding:
    """The time or energy finding of the cells ``keys`` (one method, fraction and thread
    count): dense against the BLAS yardstick, the others as ratios to dense."""
    bcells, ccells = baseline.model.cells, current.model.cells
    unit = CLOCK_NAMES[clock] if metric == "time" else "energy"
    if kind == "dense":
        return _dense_time(metric, clock, keys, bcells, ccells, th, base,
                           (baseline.model.machine, current.model.machine))
    refs = [_reference(p.model.cells, threads, metric, clock) for p in (baseline, current)]
    if None in refs:
        return Finding(metric, status="skipped", detail=(
            f"no dense cell at {threads} thread(s) in "
            f"{'the baseline' if refs[0] is None else 'the current run'} to measure "
            f"{unit} against"), **base)
    b = [v / refs[0] for k in keys for v in (bcells[k].series(metric, clock) or [])]
    c = [v / refs[1] for k in keys for v in (ccells[k].series(metric, clock) or [])]
    if not b or not c:
        return Finding(metric, status="skipped", detail=f"no per-epoch {unit} recorded", **base)
    status, detail, values = _ratio_test(unit, b, c, th[factor_key], th["alpha"])
    return Finding(metric, status=status, baseline=f"{values['baseline_fastest']:.3f}x dense",
                   current=f"{values['current_fastest']:.3f}x dense",
                   change=f"x{values['change']:.3f}", detail=detail, values=values, **base)


def compare(current: Profile, baseline: Profile,
            overrides: dict[str, float | None] | None = None) -> CheckResult:
    """Compare ``current`` with ``baseline`` (see the module docstring)."""
    th, sources = resolve_thresholds(current, overrides or {})
    diff = _settings_difference(current, baseline)
    if diff:
        raise ConfigError(f"{current.where} (scenario {current.model.scenario}) and "
                          f"{baseline.where} (scenario {baseline.model.scenario}) ran different "
                          f"settings ({diff}, current vs baseline); compare runs of one "
                          "scenario, or update the baseline (lshprof baseline RUN -o FILE)")
    bcells, ccells = baseline.model.cells, current.model.cells
    findings: list[Finding] = []
    notes: list[str] = []
    groups: dict[tuple, list[str]] = {}
    for key in list(bcells) + [k for k in ccells if k not in bcells]:
        bc, cc = bcells.get(key), ccells.get(key)
        any_c = cc or bc
        if bc is None or cc is None:
            findings.append(Finding(
                "cell", any_c.label, any_c.fraction, any_c.threads, any_c.seed,
                "missing" if cc is None else "new",
                detail="in the baseline, not in the current run" if cc is None else
                "not in the baseline (update the baseline to check it)"))
            continue
        if bc.epochs != cc.epochs:
            raise ConfigError(f"cell {key}: {bc.epochs} epochs in the baseline, {cc.epochs} in "
                              "the current run; compare runs of the same settings")
        findings += _work_findings(bc, cc, th["macs_tolerance"])
        groups.setdefault(tuple(cc.key[k] for k in SUMMARY_KEYS), []).append(key)

    measured = (baseline.model.energy_source == "measured"
                and current.model.energy_source == "measured")
    for group, keys in groups.items():
        first = ccells[keys[0]]
        label, fraction, threads = first.label, first.fraction, first.threads
        base = dict(label=label, fraction=fraction, threads=threads, seed=None)
        kind = ccells[keys[0]].kind
        acc_b = sum(bcells[k].accuracy for k in keys) / len(keys)
        acc_c = sum(ccells[k].accuracy for k in keys) / len(keys)
        drop = acc_b - acc_c
        tol = th["accuracy_tolerance"]
        status = ("regression" if drop > tol + 1e-12 else
                  "improved" if -drop > tol + 1e-12 else "ok")
        seeds = f"mean of {len(keys)} seeds" if len(keys) > 1 else f"seed {bcells[keys[0]].seed}"
        findings.append(Finding(
            "accuracy", status=status, baseline=f"{acc_b:.4f}", current=f"{acc_c:.4f}",
            change=f"{-drop:+.4f}",
            detail=(f"dropped {drop:.4f} > tolerance {tol:g} ({seeds})" if status == "regression"
                    else f"tolerance {tol:g} ({seeds})"),
            values={"baseline": acc_b, "current": acc_c}, **base))
        at_threads = [c for p in (baseline, current) for c in p.model.cells.values()
                      if c.threads == threads]
        clock = _clock(str(th["time_clock"]), at_threads, threads)
        unstable = unstable_timing(keys, baseline, current, threads,
                                   reference=kind != "dense")
        for metric, factor_key in (("time", "time_factor"), ("energy", "energy_factor")):
            if metric == "energy" and not measured:
                continue
            # other processes take a busy machine's cores (wall time) and share its energy
            # counters, but add nothing to this process's CPU time: that is still judged
            why = [w for w in unstable
                   if not (metric == "time" and clock == "cpu" and w.startswith("busy:"))]
            if why:
                findings.append(_unstable_finding(metric, why, base))
                continue
            f = _judge(metric, th, factor_key, clock, keys, kind, threads, baseline, current,
                       base)
            if unstable:
                f.detail += (f"; timed while the machine was busy ({'; '.join(unstable)}): CPU "
                             "time, which other processes do not add to, is compared")
            findings.append(f)
    if not measured:
        which = [name for name, p in (("the baseline", baseline), ("the current run", current))
                 if p.model.energy_source != "measured"]
        srcs = {p.model.energy_source for p in (baseline, current)}
        findings.append(Finding(
            "energy", "*", None, None, None, "skipped",
            detail=(f"energy is not compared: {' and '.join(which)} did not measure it "
                    f"(source: {', '.join(sorted(srcs))}); an estimate is a model of the work "
                    "counts, which are compared exactly above; measured (RAPL) energy on both "
                    "sides is compared like time")))
    if baseline.model.machine != current.model.machine:
        notes.append(f"different machines ({baseline.model.machine} vs "
                     f"{current.model.machine}): time is compared as ratios to dense within "
                     "each run, never in seconds")
    shaky = [f for f in findings if f.values.get("unstable")]
    if shaky:
        names = sorted({n for f in shaky for n in f.values["unstable"]})
        notes.append(f"unstable timing: {len(shaky)} time/energy comparison(s) not judged, "
                     f"because cells were flagged {' and '.join(names)} (" + "; ".join(
                         {"busy": "timed while other processes kept the machine busy",
                          "compiled": "numba compiled inside a measured epoch"}.get(n, n)
                         for n in names) + "): a pass there is not evidence either")
    if any(f.status == "missing" for f in findings):
        notes.append("cells of the baseline are missing from the current run: run the same "
                     "scenario and options, or update the baseline")
    return CheckResult(current, baseline, th, sources, findings, notes)


# -- output ---------------------------------------------------------------------------------------
def _show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe(p: Profile) -> str:
    m = p.model
    commit = f", commit {m.git_commit[:12]}" + (" (dirty)" if m.git_dirty else "") \
        if m.git_commit else ""
    return (f"{p.where}: scenario {m.scenario}, lshprof {m.lshprof_version}{commit}, "
            f"{m.machine}, energy {m.energy_source}, {m.created_at}")


COLUMNS = ("method", "metric", "baseline", "current", "change", "status", "detail")


def _row(f: Finding) -> list[str]:
    return [f.where, f.metric, f.baseline, f.current, f.change, f.status, f.detail]


def markdown_text(text: Any) -> str:
    """``text`` as one line of Markdown that shows it as written: HTML (``<script>``, ``&``)
    is escaped as entities, and the characters of Markdown syntax (``|``, which would split
    a table cell, ``*``, ``_``, the backquote, ``[``, ``]``, ``~``, ``#`` and the backslash)
    with a backslash, so a label can neither inject HTML nor break or restyle the table."""
    t = " ".join(str(text).splitlines())
    t = t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|~#])", r"\\\1", t)


def render_markdown(r: CheckResult) -> str:
    """A pull-request comment: verdict, table (failures first), thresholds and notes. Every
    label, path and detail is escaped (:func:`markdown_text`)."""
    cell = markdown_text
    order = {"regression": 0, "missing": 1, "improved": 2, "new": 3, "ok": 4, "skipped": 5}
    lines = [f"## lshprof check: {'❌ ' if r.failed else '✅ '}{cell(r.headline())}", "",
             f"- current: {cell(describe(r.current))}",
             f"- baseline: {cell(describe(r.baseline))}",
             "- thresholds: " + cell(", ".join(f"{k} {_show(v)} ({r.sources[k]})"
                                               for k, v in r.thresholds.items())), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for f in sorted(r.findings, key=lambda f: order.get(f.status, 9)):
        row = [cell(x) for x in _row(f)]
        if f.failed:
            row[5] = f"**{row[5]}**"
        lines.append("| " + " | ".join(row) + " |")
    if r.notes:
        lines += [""] + [f"- {cell(n)}" for n in r.notes]
    return "\n".join(lines) + "\n"


#: characters XML 1.0 cannot hold, not even escaped (control characters, lone surrogates)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(text: Any) -> str:
    """``text`` as XML can hold it: ElementTree escapes ``<``, ``&`` and quotes; a control
    character (say the ANSI escape of a coloured label) is written as ``\\x1b``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", str(text))


def render_junit(r: CheckResult) -> str:
    """JUnit XML: one test case per finding; regressions and missing cells are failures,
    skipped comparisons are skipped. Labels and details are text (:func:`_xml_text`)."""
    import xml.etree.ElementTree as ET

    c = r.counts()
    suites = ET.Element("testsuites", name="lshprof check", tests=str(len(r.findings)),
                        failures=str(len(r.failed)), errors="0",
                        skipped=str(c.get("skipped", 0)))
    suite = ET.SubElement(suites, "testsuite",
                          name=_xml_text(f"lshprof check {r.current.model.scenario}"),
                          tests=str(len(r.findings)), failures=str(len(r.failed)), errors="0",
                          skipped=str(c.get("skipped", 0)), timestamp=utc_now())
    props = ET.SubElement(suite, "properties")
    for k, v in (("current", describe(r.current)), ("baseline", describe(r.baseline)),
                 *((f"threshold.{k}", f"{_show(v)} ({r.sources[k]})")
                   for k, v in r.thresholds.items())):
        ET.SubElement(props, "property", name=k, value=_xml_text(v))
    for f in r.findings:
        case = ET.SubElement(suite, "testcase",
                             classname=_xml_text(f"lshprof.analysis.check.{f.label}"),
                             name=_xml_text(f"{f.metric}: {f.where}"), time="0")
        text = _xml_text(f"baseline {f.baseline}, current {f.current}, change {f.change}: "
                         f"{f.detail}" if f.baseline or f.current else f.detail)
        if f.failed:
            ET.SubElement(case, "failure", message=_xml_text(f"{f.status}: {f.detail}"),
                          type=f.status).text = text
        elif f.status == "skipped":
            ET.SubElement(case, "skipped", message=_xml_text(f.detail))
        else:
            ET.SubElement(case, "system-out").text = f"{f.status}: {text}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def print_result(r: CheckResult, *, quiet: bool = False) -> None:
    """The terminal table (stdout): every finding, or with ``quiet`` only what is not ok."""
    import sys

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    style = {"regression": "bold red", "missing": "bold red", "improved": "green",
             "skipped": "yellow", "new": "cyan", "ok": ""}
    console.print(f"current:  {describe(r.current)}", markup=False)
    console.print(f"baseline: {describe(r.baseline)}", markup=False)
    console.print("thresholds: " + ", ".join(f"{k} {_show(v)} ({r.sources[k]})"
                                             for k, v in r.thresholds.items()), markup=False)
    shown = [f for f in r.findings if not quiet or f.status not in ("ok",)]
    if shown:
        table = Table(title="lshprof check")
        for col in COLUMNS:
            table.add_column(col, overflow="fold",
                             justify="right" if col in ("baseline", "current", "change")
                             else "left")
        for f in shown:
            row = _row(f)  # labels and details are text, never markup: Text, not str
            table.add_row(*[Text(t) for t in row[:5]],
                          Text(f.status, style=style.get(f.status, "")), Text(row[6]))
        console.print(table)
    for n in r.notes:
        console.print(f"note: {n}", markup=False)
    console.print(Text(r.headline(), style="bold red" if r.failed else "bold green"))
