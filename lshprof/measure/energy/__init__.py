"""Energy backends behind one small interface, chosen by name.

======== ==================================================================
name     what it gives
======== ==================================================================
powercap measured: lshprof's own reader of Linux powercap RAPL zones
pyrapl   measured: the same counters read through pyRAPL (optional extra)
estimate estimated: a per-operation model of the work done (never measured)
none     no figure
auto     powercap when readable; otherwise the reason, and ``estimate``
======== ==================================================================
"""

from __future__ import annotations

from typing import Any

from lshprof.names import ENERGY_BACKENDS
from lshprof.errors import ConfigError, EnergyUnavailable
from lshprof.measure.energy.base import SOURCES, EnergyMeter, EnergyReading, Mark, Work, now_ns

__all__ = ["BACKENDS", "SOURCES", "EnergyMeter", "EnergyReading", "Mark", "Work", "NoEnergy",
           "open_meter", "backend_status", "measure_idle"]

#: Names accepted by :func:`open_meter` (and ``--energy``).
BACKENDS = ENERGY_BACKENDS


class NoEnergy(EnergyMeter):
    """No energy figure: every reading has ``energy_j=None``."""

    name = "none"
    source = "none"

    def mark(self) -> Mark:
        return Mark(now_ns())

    def interval(self, start: Mark, end: Mark, work: Work | None = None) -> EnergyReading:
        return EnergyReading("none", "none", (end.t_ns - start.t_ns) / 1e9, None,
                             note="energy not measured (backend 'none')")

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "source": self.source,
                "summary": "no energy figure (energy columns stay empty)"}


def _make(name: str, powercap_root: str | None, model: Any) -> EnergyMeter:
    if name == "powercap":
        from lshprof.measure.energy.powercap import PowercapMeter

        return PowercapMeter(powercap_root)
    if name == "pyrapl":
        from lshprof.measure.energy.pyrapl import PyRAPLMeter

        return PyRAPLMeter()
    if name == "estimate":
        from lshprof.measure.energy.estimate import EstimateMeter

        return EstimateMeter(model)
    return NoEnergy()


def open_meter(name: str = "auto", *, powercap_root: str | None = None,
               model: Any = None) -> tuple[EnergyMeter, list[str]]:
    """The meter called ``name`` and the reasons any better backend was passed over.

    ``auto`` tries ``powercap`` and falls back to ``estimate``, returning why
    powercap could not be used (the caller records it and prints it once). A named
    backend that cannot measure raises :class:`~lshprof.errors.EnergyUnavailable`.
    ``model``: an :class:`~lshprof.measure.energy.estimate.EnergyModel`, or a path to a
    calibrated model file, for ``estimate``.
    """
    if name not in BACKENDS:
        raise ConfigError(f"unknown energy backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name != "auto":
        return _make(name, powercap_root, model), []
    try:
        return _make("powercap", powercap_root, model), []
    except EnergyUnavailable as exc:
        return _make("estimate", powercap_root, model), [f"powercap unavailable ({exc.reason}): {exc}"]


def backend_status(*, powercap_root: str | None = None,
                   model: Any = None) -> list[tuple[str, bool, str]]:
    """``(backend, usable, detail)`` for every backend: what ``lshprof sysinfo`` prints."""
    out = []
    for name in ("powercap", "pyrapl", "estimate", "none"):
        try:
            meter = _make(name, powercap_root, model)
        except EnergyUnavailable as exc:
            out.append((name, False, f"{exc.reason}: {exc}"))
            continue
        try:
            info = meter.describe()
        finally:
            meter.close()
        out.append((name, True, info.get("summary", meter.source)))
    return out


def measure_idle(meter: EnergyMeter, seconds: float) -> EnergyReading:
    """Sleep ``seconds`` while ``meter`` measures: the machine's idle power.

    Only meaningful for a measuring backend; the caller decides what to do with
    an estimated or empty reading.
    """
    import time

    if seconds <= 0:
        raise ConfigError(f"idle baseline seconds must be > 0, got {seconds}")
    m0 = meter.mark()
    time.sleep(seconds)
    return meter.interval(m0, meter.mark(), Work())
