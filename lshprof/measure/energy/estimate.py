"""The ``estimate`` backend: energy from a per-operation model. Never a measurement.

::

    energy_j = 1e-12 * (pj_per_mac * macs + pj_per_add * adds
                        + pj_per_compare * compares + pj_per_byte * bytes_moved)
               + static_w * wall_s

Default coefficients are published per-operation figures for a 45 nm process
(M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014):

* ``pj_per_mac = 4.6``: a float32 multiply (3.7 pJ) plus a float32 add (0.9 pJ);
* ``pj_per_add = 0.9``: a float32 add (the +-1 projections of sparse hashing);
* ``pj_per_compare = 0.1``: an int32 add, the cost of one comparison;
* ``pj_per_byte = 162.5``: a 64-bit DRAM read of 1.3 nJ (the low end of the
  1.3-2.6 nJ range) over 8 bytes. ``bytes_moved`` counts every operand once per
  kernel call (see :mod:`lshprof.measure.macs`), so data that stays in cache is charged
  as if it came from DRAM: an upper bound on traffic cost;
* ``static_w = 0``: per-operation figures leave out static and idle power, so the
  default estimate is the *dynamic* energy of the arithmetic and the traffic.

A modern CPU differs from these figures in both directions; ``lshprof
calibrate`` fits ``pj_per_mac``, ``pj_per_byte`` and ``static_w`` to ``powercap``
measurements on a machine with RAPL and saves them to a model file, which
``--energy-model FILE`` (or ``LSHPROF_ENERGY_MODEL``) loads. Either way every
figure is labelled ``estimated``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lshprof.errors import ConfigError, ResultsError
from lshprof.measure.energy.base import EnergyMeter, EnergyReading, Mark, Work, now_ns

__all__ = ["EnergyModel", "EstimateMeter", "fit_model", "ENV_MODEL", "MODEL_FORMAT"]

#: Environment variable naming a calibrated model file.
ENV_MODEL = "LSHPROF_ENERGY_MODEL"
#: ``format`` key of a model file, and its version.
MODEL_FORMAT = "lshprof-energy-model"
MODEL_VERSION = 1

_COEFS = ("pj_per_mac", "pj_per_add", "pj_per_compare", "pj_per_byte", "static_w")


@dataclass(frozen=True)
class EnergyModel:
    """Coefficients of the per-operation energy model, and where they came from."""

    pj_per_mac: float = 4.6
    pj_per_add: float = 0.9
    pj_per_compare: float = 0.1
    pj_per_byte: float = 162.5
    static_w: float = 0.0
    origin: str = "published per-operation figures (Horowitz, ISSCC 2014, 45 nm)"
    #: calibration details (machine, fit quality), empty for the defaults
    calibration: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in _COEFS:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"energy model: {name} must be a finite number >= 0, got {v!r}")

    def terms(self, work: Work, wall_s: float) -> dict[str, float]:
        """Joules of each term of the formula for ``work`` done in ``wall_s`` seconds."""
        return {
            "macs": self.pj_per_mac * work.macs * 1e-12,
            "adds": self.pj_per_add * work.adds * 1e-12,
            "compares": self.pj_per_compare * work.compares * 1e-12,
            "memory": self.pj_per_byte * work.bytes_moved * 1e-12,
            "static": self.static_w * wall_s,
        }

    def energy_j(self, work: Work, wall_s: float = 0.0) -> float:
        return sum(self.terms(work, wall_s).values())

    def coefficients(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in _COEFS}

    # -- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": MODEL_FORMAT, "version": MODEL_VERSION, "origin": self.origin,
                "coefficients": self.coefficients(), "calibration": self.calibration}

    def save(self, path: str) -> None:
        """Write the model as JSON, atomically."""
        from lshprof.files import write_json_atomic

        write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str) -> "EnergyModel":
        """Read a model file; a missing, corrupt or foreign file raises ResultsError."""
        try:
            with open(path, encoding="utf-8") as fh:
                d = json.load(fh)
        except FileNotFoundError:
            raise ResultsError(f"energy model file {path!r} not found; create one with "
                               "'lshprof calibrate -o FILE' on a machine with RAPL") from None
        except (OSError, ValueError) as exc:
            raise ResultsError(f"energy model file {path!r} is unreadable or not JSON ({exc}); "
                               "re-run 'lshprof calibrate'") from None
        if not isinstance(d, dict) or d.get("format") != MODEL_FORMAT:
            raise ResultsError(f"{path!r} is not an lshprof energy model file "
                               f"(no \"format\": \"{MODEL_FORMAT}\")")
        if d.get("version") != MODEL_VERSION:
            raise ResultsError(f"energy model file {path!r} has format version {d.get('version')!r}; "
                               f"this lshprof reads version {MODEL_VERSION}; re-run 'lshprof calibrate'")
        coefs = d.get("coefficients")
        if not isinstance(coefs, dict) or set(coefs) != set(_COEFS):
            raise ResultsError(f"energy model file {path!r}: 'coefficients' must hold exactly "
                               f"{', '.join(_COEFS)}")
        try:
            return cls(**coefs, origin=str(d.get("origin", path)),
                       calibration=dict(d.get("calibration") or {}))
        except ConfigError as exc:
            raise ResultsError(f"energy model file {path!r}: {exc}") from None

    @classmethod
    def resolve(cls, model: "EnergyModel | str | None") -> "EnergyModel":
        """A model, a model file path, or None (``LSHPROF_ENERGY_MODEL`` or the defaults)."""
        if isinstance(model, EnergyModel):
            return model
        if model is None:
            model = os.environ.get(ENV_MODEL) or None
        return cls() if model is None else cls.load(os.fspath(model))


class EstimateMeter(EnergyMeter):
    """Energy from :class:`EnergyModel` and the work done; every reading is ``estimated``."""

    name = "estimate"
    source = "estimated"

    def __init__(self, model: EnergyModel | str | None = None):
        self.model = EnergyModel.resolve(model)

    def mark(self) -> Mark:
        return Mark(now_ns())

    def interval(self, start: Mark, end: Mark, work: Work | None = None) -> EnergyReading:
        if work is None:
            raise ConfigError("the estimate energy backend needs the work done in the interval "
                              "(MACs and bytes); pass work=")
        wall_s = (end.t_ns - start.t_ns) / 1e9
        terms = self.model.terms(work, wall_s)
        return EnergyReading("estimate", "estimated", wall_s, sum(terms.values()), domains=terms,
                             note="estimated from a per-operation model, not measured")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "source": self.source, "origin": self.model.origin,
                "coefficients": self.model.coefficients(), "calibration": self.model.calibration,
                "summary": f"estimated, never measured: {self.model.origin}"}


# -- calibration ----------------------------------------------------------------------------
#: the coefficients a calibration fits; adds and compares keep their published values
FITTED = ("pj_per_mac", "pj_per_byte", "static_w")


def fit_model(samples: Sequence[tuple[Work, float, float]], *, base: EnergyModel | None = None,
              origin: str = "calibrated") -> EnergyModel:
    """Fit ``pj_per_mac``, ``pj_per_byte`` and ``static_w`` (all >= 0) to measured
    intervals ``(work, wall_s, energy_j)`` by non-negative least squares.

    The share of adds and compares is taken at ``base``'s values and removed first.
    With three unknowns the exact NNLS solution is found by trying every subset of
    free coefficients (the others at 0) and keeping the best feasible fit.
    """
    base = base or EnergyModel()
    if len(samples) < len(FITTED):
        raise ConfigError(f"calibration needs at least {len(FITTED)} measured intervals, "
                          f"got {len(samples)}")
    A = np.array([[w.macs * 1e-12, w.bytes_moved * 1e-12, t] for w, t, _ in samples])
    y = np.array([e - 1e-12 * (base.pj_per_add * w.adds + base.pj_per_compare * w.compares)
                  for w, _, e in samples])
    # scale columns so the solve is well conditioned
    scale = np.where(np.abs(A).max(axis=0) > 0, np.abs(A).max(axis=0), 1.0)
    As = A / scale
    best, best_res = np.zeros(3), float(np.sum(y ** 2))
    for r in range(1, 4):
        for cols in itertools.combinations(range(3), r):
            sub = As[:, cols]
            if np.linalg.matrix_rank(sub) < r:
                continue
            coef, *_ = np.linalg.lstsq(sub, y, rcond=None)
            if np.any(coef < 0):
                continue
            x = np.zeros(3)
            x[list(cols)] = coef
            res = float(np.sum((As @ x - y) ** 2))
            if res < best_res - 1e-18 * max(1.0, best_res):
                best, best_res = x, res
    x = best / scale
    pred = A @ x
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - best_res / ss_tot if ss_tot > 0 else float("nan")
    rel = [float(abs(p - t) / t) if t > 0 else float("nan") for p, t in zip(pred, y)]
    fitted = dict(zip(FITTED, (float(v) for v in x)))
    return dataclasses.replace(base, **fitted, origin=origin,
                               calibration={"intervals": len(samples), "r2": r2,
                                            "max_relative_error": max(rel)})
