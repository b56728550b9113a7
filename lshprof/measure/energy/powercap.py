"""The ``powercap`` backend: lshprof's own reader of the Linux powercap RAPL counters.

Zones
-----
The kernel's powercap class (``/sys/class/powercap``, or another root given with
``--powercap-root`` / ``LSHPROF_POWERCAP_ROOT``) lists one entry per RAPL *zone*:
``intel-rapl:N`` for a top-level zone and ``intel-rapl:N:M`` for a subzone of
``intel-rapl:N`` (the subzone's directory is also found nested inside its
parent's). Zones read through the processor's MMIO interface are called
``intel-rapl-mmio:N``; ``amd-rapl:N`` is accepted too. The entries ``intel-rapl``
and ``intel-rapl-mmio`` without a number are control types (they hold
``enabled``), not zones. Each zone has a ``name`` file, which says what it
measures:

=================== ======== ==========================================================
name                domain   what it covers
=================== ======== ==========================================================
``package-N``       package  the whole socket N (cores, caches, uncore, memory controller)
``package-N-die-M`` package  one die of socket N, on parts that report per die
``core``            core     the cores of the parent package (part of it)
``uncore``          uncore   the integrated GPU / uncore of the parent package (part of it)
``dram``            dram     the memory attached to a socket (outside the package)
``psys``            psys     the whole platform (contains everything above)
anything else       other
=================== ======== ==========================================================

What is added
-------------
A reading reports every zone (``zones``, by label such as ``package-0`` or
``package-0/core``) and the sum per domain (``domains``). Its total
``energy_j`` is the sum of the *package* zones (whole packages or their dies)
and the *dram* zones only: ``core`` and ``uncore`` are already inside their
package, and ``psys`` contains everything, so adding them would count the same
joules twice. A machine with no package or dram zone but a ``psys`` zone
reports ``psys`` as the total, and the reading's note says so.

A subzone whose parent has no counter (``intel-rapl:0:0`` readable, but no
``intel-rapl:0/energy_uj``) leaves that package unmeasured: its ``core`` and
``uncore`` are parts of the package, not all of it (caches, memory controller
and the rest are outside them), and adding ``dram`` alone would leave the
package out. So the subzones are reported in ``zones`` and ``domains``, but the
total is not made from them: it is ``psys`` when there is one, else None (no
figure, never 0 J), and every reading's note says which package has no counter
(``package-0 has no energy counter (only its subzones core, dram have one): the
total cannot be measured, ...``).

An ``intel-rapl-mmio`` zone with the same label as an ``intel-rapl`` zone (both
``package-0``, say) reads the same counter a second way: it is dropped and
:meth:`PowercapMeter.describe` lists it under ``skipped``. An MMIO zone with no
such twin is kept. A zone with no ``energy_uj`` file at all (some ``psys``
zones) is skipped the same way; an ``energy_uj`` that exists but cannot be read
is an error, because silently leaving a zone out would make totals low. That
includes a second package whose ``energy_uj`` (or whose zone folder in the
root) is a dangling symlink, or a file that cannot be read: the meter is not
built, and the reason names the file (``--energy auto`` then falls back to
``estimate`` and says why), rather than measuring package-0 alone under the
name of the machine's total. Only regular files are read: a FIFO, device or
folder in place of a sysfs file is refused ("not a regular file (a FIFO)")
instead of blocking the read forever.

The wrap rule
-------------
``energy_uj`` counts microjoules from 0 up to the zone's
``max_energy_range_uj`` and then starts again from 0. The energy between two
reads ``e0`` and ``e1`` is taken as ``(e1 - e0) mod max_energy_range_uj``: exact
when the counter wrapped at most once in between, and treating the range as
the counter's modulus (the kernel reports the range rounded to whole
microjoules, so a wrap may be off by at most the hardware's energy unit, well
under a millijoule). A missing or zero ``max_energy_range_uj`` is an error.

Counters that step back
-----------------------
A counter that *decreases* by a little (a reset, a firmware glitch) would be
read by that rule as a wrap of almost the whole range: 262 kJ in a 12 ms epoch.
So every difference between two polls, wrap-corrected or not, is checked
against the most the zone can draw: a difference above ``ceiling_w * (dt +``
:data:`COUNTER_GRACE_S` ``)`` joules is not a figure. ``ceiling_w`` is the
meter's explicit ``max_power_w`` if given, else the zone's advertised maximum
times :data:`ADVERTISED_HEADROOM` (power limits may be exceeded for short
bursts), else :data:`DEFAULT_MAX_POWER_W`. Such a difference is not added to the
zone's total; the zone has no figure (None) for any interval that spans it, nor
has its domain, nor ``energy_j`` when the zone counts toward it, and the
reading's note says what happened (``counter reset or stepped back on
package-0 (energy_uj fell from A to B, ...): no measurement for this interval``,
or ``counter jumped on ...`` for a leap forward). Intervals before and after it
measure as usual, from the counter's new value. A genuine wrap implies a
plausible power and stays a wrap. While polls come on schedule (a quarter of
the time to wrap, below), a step back implies at least four times the assumed
peak, so none passes for a wrap. A reading outside ``[0, max_energy_range_uj]`` is
no counter value at all, and is treated the same way (``counter out of range``).
The grace of 2 ms covers the counters' update step (about 1 ms) and the time a poll
takes to read the zones; more would let a short interval pass several times the
ceiling.

Polling
-------
One modular difference cannot see two wraps, and a package counter can wrap
within a minute under load. So the meter keeps, per zone, a running
wrap-corrected total (an exact integer of microjoules): :meth:`PowercapMeter.poll`
reads every zone and adds the modular difference since the previous poll. A
mark (:meth:`~PowercapMeter.mark`) polls and records those totals, so a
reading is exact over any number of wraps as long as polls come more often
than the counter wraps. A daemon thread, started by :meth:`~PowercapMeter.start`
(or ``with meter:``), polls every ``poll_interval_s``: by default a quarter of
the shortest zone's *time to wrap*, ``max_energy_range_uj / (max_power_w *
1e6)`` seconds, clamped to [0.05 s, 60 s]. A zone's ``max_power_w`` is the
largest non-zero ``constraint_*_max_power_uw`` it advertises, else
:data:`DEFAULT_MAX_POWER_W` (1000 W): a deliberately pessimistic figure, since
polling too often costs little and polling too rarely loses joules; the factor
four leaves room for a zone that draws more than its advertised limit.

When two consecutive polls are further apart than a zone's time to wrap (the
thread was starved, or not running and marks are far apart), a wrap may have
gone unseen. The meter records that gap, and every reading that spans it
carries a note saying its figures may be low.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import stat
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from lshprof.errors import ConfigError, EnergyUnavailable
from lshprof.measure.energy.base import EnergyMeter, EnergyReading, Mark, Work, now_ns

__all__ = ["DEFAULT_ROOT", "ENV_ROOT", "DEFAULT_MAX_POWER_W", "ADVERTISED_HEADROOM",
           "COUNTER_GRACE_S", "MIN_POLL_S", "MAX_POLL_S", "Zone", "resolve_root",
           "discover_zones", "PowercapMeter"]

#: Where Linux exposes the powercap class.
DEFAULT_ROOT = "/sys/class/powercap"
#: Environment variable naming another powercap root (e.g. a tree mounted elsewhere).
ENV_ROOT = "LSHPROF_POWERCAP_ROOT"
#: Assumed peak power of a zone that advertises no ``constraint_*_max_power_uw``.
DEFAULT_MAX_POWER_W = 1000.0
#: How far above its advertised ``constraint_*_max_power_uw`` a zone's power may be
#: before a delta is taken for a counter fault (power limits can be exceeded briefly).
ADVERTISED_HEADROOM = 2.0
#: Seconds added to the time between two polls when checking a delta against a zone's
#: maximum: the counters update about once a millisecond and a poll reads them one by one.
COUNTER_GRACE_S = 0.002
#: Bounds of the default poll interval, in seconds.
MIN_POLL_S = 0.05
MAX_POLL_S = 60.0

#: Zone directory names: ``intel-rapl:0``, ``intel-rapl:0:1``, ``intel-rapl-mmio:0``, ``amd-rapl:0``.
_ZONE_RE = re.compile(r"^(intel-rapl-mmio|intel-rapl|amd-rapl):(\d+(?::\d+)*)$")
_PACKAGE_RE = re.compile(r"^package-(\d+)(?:-die-(\d+))?$")
_PLAIN_DOMAINS = ("core", "uncore", "dram", "psys")
#: Domains whose joules make up ``energy_j``.
_COUNTED = ("package", "dram")
_UDEV_RULE = 'ACTION=="add", SUBSYSTEM=="powercap", RUN+="/bin/chmod o+r /sys%p/energy_uj"'


_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def _not_regular(path: str, mode: int) -> OSError:
    kind = next((what for test, what in _FILE_KINDS if test(mode)), "an unknown kind of file")
    return OSError(errno.EINVAL, f"not a regular file ({kind})", path)


def _read_text(path: str) -> str:
    """The content of one sysfs file. Every read of this module goes through here.

    Only a regular file is read (sysfs attributes are regular files): a FIFO would
    block the read until some writer came, and a device could do anything, so
    anything else raises :class:`OSError` ("not a regular file (a FIFO)"). The file
    is checked before it is opened and again once open (``O_NONBLOCK``, so even a
    FIFO swapped in between cannot make the open wait)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise _not_regular(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path, mode)
        f = os.fdopen(fd, encoding="ascii", errors="replace")
    except BaseException:
        os.close(fd)
        raise
    with f:
        return f.read()


def resolve_root(root: str | None) -> str:
    """The powercap root to use: ``root``, else ``$LSHPROF_POWERCAP_ROOT``, else the default."""
    if root:
        return str(root)
    return os.environ.get(ENV_ROOT) or DEFAULT_ROOT


@dataclass(frozen=True)
class Zone:
    """One RAPL zone with an energy counter.

    ``id`` is its directory name (``intel-rapl:0:1``), ``parent`` the parent's id
    for a subzone (else None), ``socket`` the package number it belongs to (None
    for ``psys`` and unknown names), ``label`` a name unique on this machine
    (``package-0``, ``package-0/core``, ``package-1-die-0``, ``psys``), ``mmio``
    whether it is read through MMIO, ``max_power_uw`` the largest non-zero
    ``constraint_*_max_power_uw`` it advertises (None when it advertises none).
    ``orphan``: a subzone whose parent zone has no energy counter (the parent's
    folder has no ``energy_uj``, or there is no parent folder at all), so the
    whole of that package is not measured.
    """

    name: str
    path: str
    id: str
    domain: str
    socket: int | None
    parent: str | None
    max_energy_range_uj: int
    label: str
    mmio: bool
    max_power_uw: int | None = None
    orphan: bool = False


def _domain(name: str) -> str:
    if _PACKAGE_RE.match(name):
        return "package"
    return name if name in _PLAIN_DOMAINS else "other"


def _socket(name: str) -> int | None:
    m = _PACKAGE_RE.match(name)
    return int(m.group(1)) if m else None


def _sort_key(zone_id: str) -> tuple:
    m = _ZONE_RE.match(zone_id)
    kind, numbers = m.group(1), m.group(2)
    return (kind == "intel-rapl-mmio", kind, tuple(int(n) for n in numbers.split(":")))


def _parent_id(zone_id: str) -> str | None:
    head, _, _ = zone_id.rpartition(":")
    return head if _ZONE_RE.match(head) else None


def _permission_error(path: str, root: str) -> EnergyUnavailable:
    return EnergyUnavailable(
        f"cannot read {path} (permission denied): since the CVE-2020-8694 fix RAPL energy_uj is readable by root "
        f"only; run as root, or make it readable: sudo chmod o+r {root}/intel-rapl:*/energy_uj "
        f"(lost on reboot), or add the udev rule {_UDEV_RULE}", "permission denied")


def _read(path: str, root: str) -> str:
    """:func:`_read_text` with OS errors turned into EnergyUnavailable naming the file."""
    try:
        return _read_text(path)
    except PermissionError:
        raise _permission_error(path, root) from None
    except OSError as exc:
        detail = exc.strerror or type(exc).__name__
        raise EnergyUnavailable(f"cannot read {path}: {detail}", "failed") from None


def _read_int(path: str, root: str) -> int:
    text = _read(path, root)
    try:
        return int(text.strip())
    except ValueError:
        shown = text.strip()
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise EnergyUnavailable(f"cannot parse {path}: expected an integer, got {shown!r}",
                                "failed") from None


def _max_power_uw(zone_dir: str) -> int | None:
    """The largest non-zero ``constraint_*_max_power_uw`` of a zone, or None.

    These files are optional and some kernels fail to read them (ENODATA), so any
    problem just means "not advertised"."""
    best = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(zone_dir), "constraint_*_max_power_uw"))):
        try:
            best = max(best, int(_read_text(path).strip()))
        except (OSError, ValueError):
            continue
    return best or None


def _scan(root: str) -> dict[str, str]:
    """Zone id -> directory, from the root's entries and the subzones nested in them."""
    found: dict[str, str] = {}
    dangling: dict[str, str] = {}

    def visit(folder: str, top: bool) -> None:
        try:
            entries = sorted(os.listdir(folder))
        except PermissionError:
            raise EnergyUnavailable(f"cannot list {folder}: permission denied",
                                    "permission denied") from None
        except OSError as exc:
            if top:
                raise EnergyUnavailable(f"cannot list {folder}: {exc.strerror or exc}",
                                        "failed") from None
            return
        for entry in entries:
            path = os.path.join(folder, entry)
            if not _ZONE_RE.match(entry) or entry in found:
                continue
            if not os.path.isdir(path):
                if os.path.islink(path) and not os.path.exists(path):
                    dangling.setdefault(entry, path)
                continue
            found[entry] = path
            visit(path, False)

    visit(root, True)
    for entry, path in dangling.items():
        if entry not in found:  # a zone seen only through a broken link: its joules would be lost
            raise EnergyUnavailable(
                f"{path} is a dangling symlink (to {os.readlink(path)}): zone {entry} cannot be "
                f"read, and leaving it out would make every total low; fix or remove the link",
                "failed")
    return found


def discover_zones(root: str) -> tuple[list[Zone], list[str]]:
    """The RAPL zones with energy counters under ``root``, and what was skipped and why.

    Each zone is counted once, whether it is seen as an entry of the root (a
    symlink, in real sysfs), nested in its parent, or both. Raises
    :class:`~lshprof.errors.EnergyUnavailable` for a file that exists but cannot
    be read or parsed (reason ``permission denied`` or ``failed``) and for a
    missing or zero ``max_energy_range_uj`` (``failed``).
    """
    dirs = _scan(root)
    names: dict[str, str] = {}
    skipped: list[str] = []
    for zone_id in sorted(dirs, key=_sort_key):
        name_path = os.path.join(dirs[zone_id], "name")
        if not os.path.exists(name_path):
            skipped.append(f"{zone_id}: no name file, skipped")
            continue
        names[zone_id] = _read(name_path, root).strip()

    def base_label(zone_id: str) -> str:
        parent = _parent_id(zone_id)
        if parent is None:
            return names[zone_id]
        return f"{names.get(parent, parent)}/{names[zone_id]}"

    candidates = []
    for zone_id in names:
        energy_path = os.path.join(dirs[zone_id], "energy_uj")
        if os.path.islink(energy_path) and not os.path.exists(energy_path):
            raise EnergyUnavailable(
                f"{energy_path} is a dangling symlink (to {os.readlink(energy_path)}): "
                f"{base_label(zone_id)} cannot be read, and leaving it out would make every "
                f"total low; fix or remove the link", "failed")
        if not os.path.exists(energy_path):
            skipped.append(f"{zone_id} ({names[zone_id]}): no energy_uj file, skipped")
            continue
        candidates.append(zone_id)
    msr_labels = {base_label(z): z for z in candidates if not z.startswith("intel-rapl-mmio:")}
    kept = []
    for zone_id in candidates:
        label = base_label(zone_id)
        twin = msr_labels.get(label)
        if zone_id.startswith("intel-rapl-mmio:") and twin is not None:
            skipped.append(f"{zone_id} ({label}): the same counter as {twin} read through MMIO, "
                           f"counted once")
            continue
        kept.append(zone_id)

    labels = {z: base_label(z) for z in kept}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    zones = []
    for zone_id in kept:
        path = dirs[zone_id]
        name = names[zone_id]
        parent = _parent_id(zone_id)
        label = labels[zone_id]
        if counts[label] > 1:
            label = f"{label}@{zone_id}"
        range_path = os.path.join(path, "max_energy_range_uj")
        if not os.path.exists(range_path):
            raise EnergyUnavailable(f"{range_path} is missing: without the counter's range a "
                                    f"wrap cannot be corrected", "failed")
        max_range = _read_int(range_path, root)
        if max_range <= 0:
            raise EnergyUnavailable(f"{range_path} is {max_range}: without the counter's range a "
                                    f"wrap cannot be corrected", "failed")
        socket = _socket(name)
        if socket is None and parent is not None:
            socket = _socket(names.get(parent, ""))
        zones.append(Zone(name=name, path=path, id=zone_id, domain=_domain(name), socket=socket,
                          parent=parent, max_energy_range_uj=max_range, label=label,
                          mmio=zone_id.startswith("intel-rapl-mmio:"),
                          max_power_uw=_max_power_uw(path),
                          orphan=parent is not None and parent not in candidates))
    return zones, skipped


class _State(NamedTuple):
    """What a mark of this meter holds: per zone (in the order of ``zones``), the
    wrap-corrected total in µJ and how many counter faults were seen so far."""

    totals: tuple[int, ...]
    faults: tuple[int, ...]


class _Fault(NamedTuple):
    """A delta between two polls that no zone could have drawn: a reset or a glitch."""

    before: int
    after: int
    delta_uj: int
    dt_s: float
    ceiling_w: float


class _Gap(NamedTuple):
    """Two consecutive polls far enough apart for a counter to wrap unseen."""

    t0_ns: int
    t1_ns: int
    labels: tuple[str, ...]


class PowercapMeter(EnergyMeter):
    """Measured energy from the powercap RAPL counters, corrected for wraparound.

    ``root``: the powercap folder (see :func:`resolve_root`). ``max_power_w``: the
    peak power assumed for every zone (default: per zone, its advertised maximum
    or :data:`DEFAULT_MAX_POWER_W`). ``poll_interval_s``: seconds between
    background polls (default: a quarter of the shortest time to wrap, clamped to
    [:data:`MIN_POLL_S`, :data:`MAX_POLL_S`]). ``background=False``: :meth:`start`
    runs no thread, and the caller polls.

    The constructor reads every counter once and raises
    :class:`~lshprof.errors.EnergyUnavailable` when it cannot measure (reason
    ``not present``, ``no zones``, ``permission denied`` or ``failed``).
    """

    name = "powercap"
    source = "measured"

    def __init__(self, root: str | None = None, *, max_power_w: float | None = None,
                 poll_interval_s: float | None = None, background: bool = True):
        self.root = resolve_root(root)
        if max_power_w is not None and not max_power_w > 0:
            raise ConfigError(f"max_power_w must be > 0, got {max_power_w}")
        if poll_interval_s is not None and not poll_interval_s > 0:
            raise ConfigError(f"poll_interval_s must be > 0, got {poll_interval_s}")
        if not os.path.isdir(self.root):
            raise EnergyUnavailable(
                f"no powercap tree at {self.root}: RAPL energy counters are not present (virtual "
                f"machines, containers and CI runners usually have none); set --powercap-root or "
                f"{ENV_ROOT} if it is mounted elsewhere",
                "not present")
        zones, skipped = discover_zones(self.root)
        if not zones:
            why = f" (skipped: {'; '.join(skipped)})" if skipped else ""
            raise EnergyUnavailable(
                f"no zones: the powercap tree at {self.root} has no RAPL zone with an energy "
                f"counter{why}; is the intel_rapl driver loaded (sudo modprobe intel_rapl_msr)?",
                "no zones")
        self.zones: tuple[Zone, ...] = tuple(zones)
        self.skipped: tuple[str, ...] = tuple(skipped)
        #: peak power assumed per zone label, in watts
        self.max_power_w: dict[str, float] = {
            z.label: float(max_power_w) if max_power_w is not None
            else (z.max_power_uw / 1e6 if z.max_power_uw else DEFAULT_MAX_POWER_W)
            for z in self.zones}
        #: the most power (W) a zone's delta may imply before it is a counter fault: an explicit
        #: ``max_power_w`` or the default as they are, an advertised limit times the headroom
        self.ceiling_w: dict[str, float] = {
            z.label: float(max_power_w) if max_power_w is not None
            else (z.max_power_uw / 1e6 * ADVERTISED_HEADROOM if z.max_power_uw
                  else DEFAULT_MAX_POWER_W)
            for z in self.zones}
        #: seconds each zone's counter takes to wrap at its peak power
        self.wrap_s: dict[str, float] = {
            z.label: z.max_energy_range_uj / (self.max_power_w[z.label] * 1e6) for z in self.zones}
        shortest = min(self.wrap_s.values())
        #: seconds between background polls
        self.poll_interval_s: float = (float(poll_interval_s) if poll_interval_s is not None
                                       else min(max(shortest / 4, MIN_POLL_S), MAX_POLL_S))
        self.background = bool(background)
        #: number of :meth:`poll` calls so far (the constructor's first read not included)
        self.polls = 0
        #: the exception that stopped the background thread, if any
        self.error: Exception | None = None
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._gaps: list[_Gap] = []
        self._faults: list[list[_Fault]] = [[] for _ in self.zones]
        self._total, self._total_note = self._total_rule()
        self._last_raw = self._read_all()
        self._t0_ns = self._last_t_ns = now_ns()
        self._totals = [0] * len(self.zones)

    # -- counters -------------------------------------------------------------------------------
    def _read_all(self) -> list[int]:
        return [_read_int(os.path.join(z.path, "energy_uj"), self.root) for z in self.zones]

    def poll(self) -> tuple[int, tuple[int, ...]]:
        """Read every zone and add what it counted since the last poll (modulo its range).

        A difference that implies more power than the zone's :attr:`ceiling_w` (a
        counter that stepped back, read as a wrap, or one that leapt) is not added:
        it is recorded as a fault of that zone, and every interval that spans it has
        no figure for the zone. Returns the time (monotonic ns) and the
        wrap-corrected totals in µJ, in the order of :attr:`zones`. Thread-safe."""
        with self._lock:
            raw = self._read_all()
            t = now_ns()
            dt_s = (t - self._last_t_ns) / 1e9
            for i, zone in enumerate(self.zones):
                before, after = self._last_raw[i], raw[i]
                delta = (after - before) % zone.max_energy_range_uj
                ceiling_w = self.ceiling_w[zone.label]
                # a reading outside [0, range] is no counter value at all
                outside = not (0 <= before <= zone.max_energy_range_uj
                               and 0 <= after <= zone.max_energy_range_uj)
                if outside or delta > ceiling_w * 1e6 * (dt_s + COUNTER_GRACE_S):
                    self._faults[i].append(_Fault(before, after, delta, dt_s, ceiling_w))
                else:
                    self._totals[i] += delta
            at_risk = tuple(z.label for z in self.zones if dt_s > self.wrap_s[z.label])
            if at_risk:
                self._gaps.append(_Gap(self._last_t_ns, t, at_risk))
            self._last_raw = raw
            self._last_t_ns = t
            self.polls += 1
            return t, tuple(self._totals)

    def mark(self) -> Mark:
        with self._lock:  # the totals and the fault counts of the same poll
            t, totals = self.poll()
            faults = tuple(len(f) for f in self._faults)
        return Mark(t, _State(totals, faults))

    def interval(self, start: Mark, end: Mark, work: Work | None = None) -> EnergyReading:
        n = len(self.zones)
        for m in (start, end):
            if not isinstance(m.state, _State) or len(m.state.totals) != n:
                raise ConfigError("a mark that is not from this powercap meter")
        if end.t_ns < start.t_ns:
            raise ConfigError("the interval's end mark was taken before its start mark")
        wall_s = (end.t_ns - start.t_ns) / 1e9
        with self._lock:
            faults = [self._faults[i][a:b]
                      for i, (a, b) in enumerate(zip(start.state.faults, end.state.faults))]
        # a zone with a fault in the interval has no figure for it (None), nor has its domain
        deltas = [None if f else b - a
                  for f, a, b in zip(faults, start.state.totals, end.state.totals)]
        zones = {z.label: None if d is None else d / 1e6 for z, d in zip(self.zones, deltas)}
        by_domain: dict[str, int | None] = {}
        for z, d in zip(self.zones, deltas):
            so_far = by_domain.get(z.domain, 0)
            by_domain[z.domain] = None if d is None or so_far is None else so_far + d
        domains = {k: None if v is None else v / 1e6 for k, v in by_domain.items()}
        if self._total is None or any(deltas[i] is None for i in self._total):
            energy_j = None
        else:
            energy_j = sum(deltas[i] for i in self._total) / 1e6
        notes = [self._fault_note(i, f) for i, f in enumerate(faults) if f]
        for z, d in zip(self.zones, deltas):
            # within the grace of one counter update, but above the ceiling: a figure, said so
            if d is not None and wall_s > 0 and d / 1e6 / wall_s > self.ceiling_w[z.label]:
                notes.append(f"{z.label} read {d / 1e6:.4g} J in {wall_s:.3g} s "
                             f"({d / 1e6 / wall_s:.4g} W), above the zone's "
                             f"{self.ceiling_w[z.label]:g} W maximum: within one counter update "
                             "step of it, but check the figure")
        if self._total_note:
            notes.append(self._total_note)
        with self._lock:
            gaps = [g for g in self._gaps if g.t0_ns < end.t_ns and g.t1_ns > start.t_ns]
        if gaps:
            g = gaps[0]
            a, b = (g.t0_ns - self._t0_ns) / 1e9, (g.t1_ns - self._t0_ns) / 1e9
            fastest = min(g.labels, key=self.wrap_s.__getitem__)
            more = f" and {len(gaps) - 1} more time(s)" if len(gaps) > 1 else ""
            notes.append(f"counter may have wrapped unseen between polls at {a:.3f} s and "
                         f"{b:.3f} s{more} (meter time; {', '.join(g.labels)}: {fastest} can wrap "
                         f"in {self.wrap_s[fastest]:.3g} s at {self.max_power_w[fastest]:g} W); "
                         f"figures may be low")
        return EnergyReading("powercap", "measured", wall_s, energy_j, domains=domains,
                             zones=zones, note="; ".join(notes))

    def _fault_note(self, i: int, faults: list[_Fault]) -> str:
        zone, f = self.zones[i], faults[0]
        top = zone.max_energy_range_uj
        if not (0 <= f.before <= top and 0 <= f.after <= top):
            bad = f.after if not 0 <= f.after <= top else f.before
            what = (f"counter out of range on {zone.label} (energy_uj reads {bad}, outside its "
                    f"range 0-{top} of max_energy_range_uj)")
        elif f.after < f.before:
            what = (f"counter reset or stepped back on {zone.label} (energy_uj fell from {f.before} "
                    f"to {f.after}, which read as a wrap would be {f.delta_uj / 1e6:.6g} J in "
                    f"{f.dt_s:.3g} s, over the zone's {f.ceiling_w:g} W maximum)")
        else:
            what = (f"counter jumped on {zone.label} (energy_uj rose from {f.before} to {f.after}, "
                    f"{f.delta_uj / 1e6:.6g} J in {f.dt_s:.3g} s, over the zone's "
                    f"{f.ceiling_w:g} W maximum)")
        if len(faults) > 1:
            what += f" and {len(faults) - 1} more time(s)"
        if self._total is not None and i in self._total:
            return what + ": no measurement for this interval"
        return what + f": no {zone.label} figure for this interval (the total does not use it)"

    def _total_rule(self) -> tuple[tuple[int, ...] | None, str]:
        """Which zones make up ``energy_j`` (their indices, or None: no total can be measured),
        and the note every reading carries about it (empty for the usual packages + dram)."""
        zones = self.zones
        psys = tuple(i for i, z in enumerate(zones) if z.domain == "psys")
        orphaned: dict[str, list[str]] = {}
        for z in zones:
            if z.orphan:
                orphaned.setdefault(z.label.rpartition("/")[0] or str(z.parent), []).append(z.name)
        if orphaned:
            what = ", ".join(f"{parent} has no energy counter (only its subzone"
                             f"{'s' if len(subs) > 1 else ''} {', '.join(subs)} "
                             f"{'have' if len(subs) > 1 else 'has'} one)"
                             for parent, subs in orphaned.items())
            if psys:
                return psys, f"{what}: the total is psys, the whole platform"
            return None, (f"{what}: the total cannot be measured, since core and uncore are only "
                          f"parts of a package and dram lies outside it")
        counted = tuple(i for i, z in enumerate(zones) if z.domain in _COUNTED)
        if counted:
            return counted, ""
        if psys:
            return psys, "no package or dram zone: the total is psys, the whole platform"
        top = tuple(i for i, z in enumerate(zones) if z.parent is None)
        if top:
            return top, ("no package, dram or psys zone: the total is the sum of the top-level "
                         "zones (" + ", ".join(zones[i].label for i in top) + ")")
        return None, "no top-level zone has an energy counter: the total cannot be measured"

    # -- background polling ---------------------------------------------------------------------
    def start(self) -> "PowercapMeter":
        """Start the polling thread (unless ``background=False`` or it already runs)."""
        if self.background and (self._thread is None or not self._thread.is_alive()):
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="lshprof-powercap-poll", daemon=True)
            self._thread.start()
        return self

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except Exception as exc:  # the next mark() polls again and raises it to the caller
                self.error = exc
                return

    def close(self) -> None:
        """Stop the polling thread and wait for it; marks stay valid."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()

    # -- description ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        labels = ", ".join(z.label for z in self.zones)
        summary = (f"{len(self.zones)} zone{'s' if len(self.zones) != 1 else ''}: {labels}; "
                   f"polled every {self.poll_interval_s:.3g} s")
        if self.skipped:
            summary += f"; {len(self.skipped)} skipped"
        return {
            "backend": self.name,
            "source": self.source,
            "root": self.root,
            "zones": [{"label": z.label, "id": z.id, "name": z.name, "domain": z.domain,
                       "max_energy_range_uj": z.max_energy_range_uj, "mmio": z.mmio}
                      for z in self.zones],
            "skipped": list(self.skipped),
            "poll_interval_s": self.poll_interval_s,
            "max_power_w": dict(self.max_power_w),
            "summary": summary,
        }
