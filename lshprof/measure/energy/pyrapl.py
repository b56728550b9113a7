"""The ``pyrapl`` backend: the RAPL counters read through pyRAPL, for users who rely on it.

``powercap`` reads the same Linux powercap counters without pyRAPL and handles
more (any zone, another sysfs root, wraparound). This backend exists so results
can be compared with pyRAPL's own figures. What pyRAPL 0.2.3.1 does, and what
that means here:

* It reads only ``/sys/class/powercap/intel-rapl`` (hard-coded), and only the
  ``package`` zones and their ``dram`` subzones, one of each per socket. A
  missing RAPL interface, or one under another root, is ``not present``.
* Its counters are raw microjoules that wrap at the zone's
  ``max_energy_range_uj``, and it keeps no history to correct a wrap. A reading
  whose end is below its start is therefore refused
  (:class:`~lshprof.errors.EnergyUnavailable`, reason ``failed``) rather than
  guessed; a counter that wrapped *and* passed its start value cannot be seen at
  all, so long intervals carry a note saying so. Use ``--energy powercap`` when
  that matters.
* Importing it logs a pymongo (and possibly pandas) warning through the root
  logger, and that call installs a handler on the root logger as a side effect
  (``logging.basicConfig``). The import here silences the message and removes
  any handler it added.

The sensor is kept on the meter, not in pyRAPL's module-level global, so two
meters do not share state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from typing import Any

from lshprof.errors import ConfigError, EnergyUnavailable
from lshprof.measure.energy.base import EnergyMeter, EnergyReading, Mark, Work, now_ns

__all__ = ["PyRAPLMeter", "RAPL_PATH", "LONG_INTERVAL_S"]

#: The only place pyRAPL 0.2.3.1 looks for RAPL zones.
RAPL_PATH = "/sys/class/powercap/intel-rapl"

#: Intervals at least this long get a note: a counter may wrap past its start value
#: unseen (a 2**32 uJ package counter wraps in about 43 s at 100 W).
LONG_INTERVAL_S = 30.0

#: pyRAPL's reading layout: (pkg socket 0, dram socket 0, pkg socket 1, dram socket 1, ...).
_KINDS = ("package", "dram")

_INSTALL_HINT = "pip install 'lshprof[pyrapl]' (or pip install pyRAPL), or use --energy powercap"


def _import_pyrapl():
    """Import pyRAPL with its import-time noise silenced; the module, or EnergyUnavailable.

    pyRAPL's ``outputs`` package calls ``logging.warning`` when pymongo (or pandas)
    is missing. That message is suppressed with :func:`logging.disable`, and the
    handler that ``logging.warning`` installs on an unconfigured root logger is
    removed again, so the caller's logging setup is exactly as before. Anything
    printed or warned during the import is discarded too. (Swapping ``sys.stdout``
    is process-wide: import it from the main thread, before other threads print.)
    """
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    disable_before = logging.root.manager.disable
    sink = io.StringIO()
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            import pyRAPL
    except ImportError as exc:
        if exc.name == "pyRAPL":
            raise EnergyUnavailable(f"pyRAPL is not installed; {_INSTALL_HINT}",
                                    "not installed") from None
        raise EnergyUnavailable(f"pyRAPL is installed but its import failed "
                                f"({type(exc).__name__}: {exc})", "failed") from exc
    except Exception as exc:
        raise EnergyUnavailable(f"pyRAPL is installed but its import failed "
                                f"({type(exc).__name__}: {exc})", "failed") from exc
    finally:
        logging.disable(disable_before)
        for handler in list(root.handlers):
            if handler not in handlers_before:
                root.removeHandler(handler)
    return pyRAPL


def _version(module) -> str | None:
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib.metadata import version as dist_version

        return dist_version("pyRAPL")
    except Exception:
        return None


def _not_present_message() -> str:
    if os.path.isdir(RAPL_PATH):
        where = f"pyRAPL found no usable package zone under {RAPL_PATH}"
    else:
        where = (f"no RAPL zones at {RAPL_PATH} (virtual machines, containers and CI "
                 f"runners usually have none)")
    return (f"{where}; pyRAPL reads only that hard-coded path and cannot be pointed at "
            f"another root: use --energy powercap (with --powercap-root for another location)")


def _translate(module, exc: BaseException) -> EnergyUnavailable:
    """pyRAPL's (and the OS's) failures as one clear EnergyUnavailable."""
    absent = tuple(cls for cls in (getattr(module, "PyRAPLCantRecordEnergyConsumption", None),
                                   getattr(module, "PyRAPLCantInitDeviceAPI", None))
                   if isinstance(cls, type))
    if absent and isinstance(exc, absent):
        return EnergyUnavailable(_not_present_message(), "not present")
    if isinstance(exc, PermissionError):
        where = exc.filename or f"{RAPL_PATH}/intel-rapl:*/energy_uj"
        return EnergyUnavailable(
            f"cannot read {where}: RAPL energy is root-only since the CVE-2020-8694 fix; "
            f"run as root, or: sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj",
            "permission denied")
    detail = str(exc)
    return EnergyUnavailable(f"pyRAPL failed: {type(exc).__name__}" + (f": {detail}" if detail else ""),
                             "failed")


def _label(index: int) -> str:
    return f"{_KINDS[index % 2]}-{index // 2}"


class PyRAPLMeter(EnergyMeter):
    """Package and DRAM energy per socket through pyRAPL (``--energy pyrapl``).

    Raises :class:`~lshprof.errors.EnergyUnavailable` on construction when pyRAPL
    is missing (``not installed``), finds no RAPL zones (``not present``), may not
    read them (``permission denied``) or fails otherwise (``failed``).
    """

    name = "pyrapl"
    source = "measured"

    def __init__(self) -> None:
        module = _import_pyrapl()
        self._version = _version(module)
        self._module = module
        try:
            self._sensor = module.Sensor()
            first = tuple(self._sensor.energy())
        except Exception as exc:
            raise _translate(module, exc) from exc
        self._width = len(first)
        #: zone labels pyRAPL found, in its order ("package-0", "dram-0", ...)
        self.devices = [_label(i) for i, value in enumerate(first) if value >= 0]
        if not self.devices:
            raise EnergyUnavailable("pyRAPL reports no readable zone (every counter is -1)",
                                    "no zones")
        self._closed = False

    def mark(self) -> Mark:
        if self._closed:
            raise EnergyUnavailable("this pyRAPL meter is closed; marks taken before stay valid",
                                    "failed")
        try:
            return Mark(now_ns(), tuple(self._sensor.energy()))
        except OSError as exc:
            raise _translate(self._module, exc) from exc

    def interval(self, start: Mark, end: Mark, work: Work | None = None) -> EnergyReading:
        a, b = start.state, end.state
        if not isinstance(a, tuple) or not isinstance(b, tuple) or len(a) != len(b):
            raise ConfigError("pyrapl: both marks must come from the same pyRAPL meter")
        wall_s = (end.t_ns - start.t_ns) / 1e9
        zones: dict[str, float] = {}
        wrapped: list[str] = []
        for i, (x, y) in enumerate(zip(a, b)):
            if x < 0 or y < 0:          # -1: pyRAPL has no such zone (e.g. no dram counter)
                continue
            if y < x:
                wrapped.append(_label(i))
                continue
            zones[_label(i)] = (y - x) / 1e6
        if wrapped:
            plural = "s" if len(wrapped) > 1 else ""
            raise EnergyUnavailable(
                f"pyRAPL counter{plural} for {', '.join(wrapped)} wrapped during the interval; "
                f"pyRAPL cannot correct wraparound, use --energy powercap", "failed")
        if not zones:
            raise EnergyUnavailable("pyRAPL reports no readable zone in these marks", "no zones")
        domains: dict[str, float] = {}
        for label, joules in zones.items():
            kind = label.rsplit("-", 1)[0]
            domains[kind] = domains.get(kind, 0.0) + joules
        note = ""
        if wall_s >= LONG_INTERVAL_S:
            note = (f"{wall_s:.0f} s interval: pyRAPL keeps no wrap history, so a counter that "
                    f"wrapped past its start value would go unseen; --energy powercap tracks wraps")
        return EnergyReading(self.name, self.source, wall_s, sum(zones.values()),
                             domains=domains, zones=zones, note=note)

    def close(self) -> None:
        """Release the sysfs files pyRAPL holds open (best effort)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        for api in getattr(self._sensor, "_device_api", {}).values():
            for handle in getattr(api, "_sys_files", ()):
                with contextlib.suppress(Exception):
                    handle.close()

    def describe(self) -> dict[str, Any]:
        version = self._version or "(unknown version)"
        return {
            "backend": self.name,
            "source": self.source,
            "pyrapl_version": self._version,
            "devices": list(self.devices),
            "summary": (f"pyRAPL {version}: {', '.join(self.devices)} from {RAPL_PATH} "
                        f"(no wraparound correction)"),
        }
