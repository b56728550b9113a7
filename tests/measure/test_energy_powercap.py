"""The powercap backend on fake sysfs trees: zones, totals, wraps, polling and every failure."""

import os
import threading
import time

import pytest

from lshprof.measure.energy import open_meter
from lshprof.measure.energy import powercap
from lshprof.measure.energy.powercap import (DEFAULT_ROOT, ENV_ROOT, PowercapMeter, discover_zones,
                                     resolve_root)
from lshprof.errors import ConfigError, EnergyUnavailable
from fake_sysfs import BIG, make_tree

INTEL_2S = [
    ("intel-rapl:0", "package-0", 10_000_000),
    ("intel-rapl:0:0", "core", 3_000_000),
    ("intel-rapl:0:1", "uncore", 400_000),
    ("intel-rapl:0:2", "dram", 2_000_000),
    ("intel-rapl:1", "package-1", 20_000_000),
    ("intel-rapl:1:0", "core", 5_000_000),
    ("intel-rapl:1:1", "dram", 7_000_000),
    ("intel-rapl:2", "psys", 90_000_000),
]


@pytest.fixture
def intel(tmp_path):
    return make_tree(tmp_path, INTEL_2S)


class Clock:
    """A monotonic clock the test moves by hand (ns)."""

    def __init__(self):
        self.t = 1_000_000_000

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += int(seconds * 1e9)


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(powercap, "now_ns", c)
    return c


def one_line(exc):
    return "\n" not in str(exc) and str(exc).strip() == str(exc)


# ---- zones and what is added -----------------------------------------------------------

def test_intel_two_sockets_adds_packages_and_dram_only(intel, clock):
    meter = PowercapMeter(str(intel.root), background=False)
    labels = [z.label for z in meter.zones]
    assert labels == ["package-0", "package-0/core", "package-0/uncore", "package-0/dram",
                      "package-1", "package-1/core", "package-1/dram", "psys"]
    by_label = {z.label: z for z in meter.zones}
    assert by_label["package-1/dram"].socket == 1 and by_label["package-1/dram"].domain == "dram"
    assert by_label["package-1/dram"].parent == "intel-rapl:1"
    assert by_label["package-0/core"].id == "intel-rapl:0:0"
    assert by_label["psys"].socket is None and by_label["psys"].parent is None
    assert not any(z.mmio for z in meter.zones)
    m0 = meter.mark()
    for zone_id, uj in (("intel-rapl:0", 30_000_000), ("intel-rapl:0:0", 12_000_000),
                        ("intel-rapl:0:1", 1_000_000), ("intel-rapl:0:2", 4_000_000),
                        ("intel-rapl:1", 25_000_000), ("intel-rapl:1:0", 9_000_000),
                        ("intel-rapl:1:1", 6_000_000), ("intel-rapl:2", 100_000_000)):
        intel.add(zone_id, uj)
    clock.advance(1)  # 100 J of psys in a second: within its 1000 W
    r = meter.interval(m0, meter.mark())
    assert (r.backend, r.source, r.note) == ("powercap", "measured", "")
    assert r.energy_j == 65.0  # 30 + 4 + 25 + 6: packages and drams, not core/uncore/psys
    assert r.zones == {"package-0": 30.0, "package-0/core": 12.0, "package-0/uncore": 1.0,
                       "package-0/dram": 4.0, "package-1": 25.0, "package-1/core": 9.0,
                       "package-1/dram": 6.0, "psys": 100.0}
    assert r.domains == {"package": 55.0, "core": 21.0, "uncore": 1.0, "dram": 10.0,
                         "psys": 100.0}
    assert r.wall_s == 1.0


def test_each_zone_counted_once_in_every_layout(tmp_path):
    for layout in ("sysfs", "plain", "nested"):
        tree = make_tree(tmp_path / layout, INTEL_2S, layout=layout)
        zones, skipped = discover_zones(str(tree.root))
        assert [z.id for z in zones] == [z[0] for z in INTEL_2S], layout
        assert skipped == []
        assert len({z.label for z in zones}) == len(zones)


def test_amd_per_die_zones_sum_the_dies(tmp_path, clock):
    spec = []
    for i, (pkg, die) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        spec.append((f"intel-rapl:{i}", f"package-{pkg}-die-{die}", 1_000))
        spec.append((f"intel-rapl:{i}:0", "core", 500))
    tree = make_tree(tmp_path, spec)
    meter = PowercapMeter(str(tree.root), background=False)
    assert [z.label for z in meter.zones] == [
        "package-0-die-0", "package-0-die-0/core", "package-0-die-1", "package-0-die-1/core",
        "package-1-die-0", "package-1-die-0/core", "package-1-die-1", "package-1-die-1/core"]
    assert [z.socket for z in meter.zones] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert {z.domain for z in meter.zones if z.parent is None} == {"package"}
    m0 = meter.mark()
    for i, uj in enumerate((1_000_000, 2_000_000, 3_000_000, 4_000_000)):
        tree.add(f"intel-rapl:{i}", uj)
        tree.add(f"intel-rapl:{i}:0", uj // 2)
    clock.advance(1)  # 10 J in a second: a power any package can draw
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 10.0
    assert r.domains == {"package": 10.0, "core": 5.0}
    assert r.zones["package-1-die-1"] == 4.0 and r.zones["package-0-die-1/core"] == 1.0


def test_mmio_duplicate_counted_once_and_reported(tmp_path, clock):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0), ("intel-rapl:0:0", "core", 0),
                                ("intel-rapl-mmio:0", "package-0", 0)])
    meter = PowercapMeter(str(tree.root), background=False)
    assert [z.id for z in meter.zones] == ["intel-rapl:0", "intel-rapl:0:0"]
    assert len(meter.skipped) == 1
    assert "intel-rapl-mmio:0" in meter.skipped[0] and "intel-rapl:0" in meter.skipped[0]
    assert meter.describe()["skipped"] == list(meter.skipped)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 7_000_000)
    tree.set("intel-rapl-mmio:0", 7_000_000)
    clock.advance(1)
    assert meter.interval(m0, meter.mark()).energy_j == 7.0


def test_mmio_only_tree_is_used(tmp_path, clock):
    tree = make_tree(tmp_path, [("intel-rapl-mmio:0", "package-0", 100)])
    meter = PowercapMeter(str(tree.root), background=False)
    (zone,) = meter.zones
    assert (zone.label, zone.mmio, zone.domain, zone.socket) == ("package-0", True, "package", 0)
    assert meter.skipped == ()
    m0 = meter.mark()
    tree.set("intel-rapl-mmio:0", 2_500_100)
    clock.advance(1)
    assert meter.interval(m0, meter.mark()).energy_j == 2.5


def test_psys_only_is_the_total_and_says_so(tmp_path, clock):
    tree = make_tree(tmp_path, [("intel-rapl:0", "psys", 0)])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 3_000_000)
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 3.0 and r.domains == {"psys": 3.0}
    assert "psys" in r.note


def test_zone_without_energy_file_is_skipped(tmp_path):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 5),
                                ("intel-rapl:1", "psys", 0, {"energy": False})])
    meter = PowercapMeter(str(tree.root), background=False)
    assert [z.label for z in meter.zones] == ["package-0"]
    assert meter.skipped == ("intel-rapl:1 (psys): no energy_uj file, skipped",)


# ---- wraparound ----------------------------------------------------------------------------

def test_one_wrap_between_two_marks(tmp_path, clock):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", BIG - 1_000_000)])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 2_500_000)
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 3.5 and r.note == ""


def test_three_wraps_with_polls_in_between(tmp_path, clock):
    # range 10 J; at the 8 W assumed here a counter wraps in 1.25 s, polls come every second
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 9_000_000,
                                 {"max_uj": 10_000_000})])
    meter = PowercapMeter(str(tree.root), max_power_w=8.0, background=False)
    assert meter.wrap_s == {"package-0": 1.25}
    clock.advance(1)
    m0 = meter.mark()
    for raw in (6_000_000, 3_000_000, 1_000_000):  # +7 J, +7 J, +8 J: three wraps
        tree.set("intel-rapl:0", raw)
        clock.advance(1)
        meter.poll()
    tree.set("intel-rapl:0", 4_000_000)  # +3 J
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 25.0 and r.zones == {"package-0": 25.0}
    assert r.wall_s == 4.0 and r.note == ""
    assert meter.polls == 5


def test_polls_too_far_apart_are_flagged(tmp_path, clock):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 9_000_000,
                                 {"max_uj": 10_000_000})])
    meter = PowercapMeter(str(tree.root), max_power_w=1.0, background=False)
    clock.advance(1)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 4_000_000)
    clock.advance(100)  # 100 s unpolled: a 10 s counter may have wrapped many times
    m1 = meter.mark()
    r = meter.interval(m0, m1)
    assert r.energy_j == 5.0  # all one modular difference can see
    assert "counter may have wrapped unseen between polls at 1.000 s and 101.000 s" in r.note
    assert "figures may be low" in r.note and "package-0" in r.note and "\n" not in r.note
    # a later reading that does not span the gap carries no note; one that spans it does
    tree.set("intel-rapl:0", 4_500_000)
    clock.advance(1)
    m2 = meter.mark()
    assert meter.interval(m1, m2).note == "" and meter.interval(m1, m2).energy_j == 0.5
    assert "figures may be low" in meter.interval(m0, m2).note


def test_nested_intervals_add_up(intel, clock):
    meter = PowercapMeter(str(intel.root), background=False)
    run0 = meter.mark()
    e0 = meter.mark()
    intel.add("intel-rapl:0", 1_234_567)
    intel.add("intel-rapl:1:1", 765_433)
    clock.advance(2)
    e1 = meter.mark()
    intel.add("intel-rapl:1", 3_000_001)
    intel.add("intel-rapl:0:2", 999_999)
    clock.advance(3)
    e2 = meter.mark()
    run = meter.interval(run0, e2)
    first, second = meter.interval(e0, e1), meter.interval(e1, e2)
    assert (first.energy_j, second.energy_j, run.energy_j) == (2.0, 4.0, 6.0)
    assert run.wall_s == first.wall_s + second.wall_s == 5.0
    for label in run.zones:
        assert run.zones[label] == pytest.approx(first.zones[label] + second.zones[label])


# ---- polling -------------------------------------------------------------------------------

def test_default_poll_interval_rule(tmp_path):
    # no advertised limit: 1000 W; 4e9 uJ wraps in 4 s; a quarter of that
    a = make_tree(tmp_path / "a", [("intel-rapl:0", "package-0", 0, {"max_uj": 4_000_000_000})])
    m = PowercapMeter(str(a.root), background=False)
    assert m.max_power_w == {"package-0": 1000.0} and m.poll_interval_s == 1.0
    # an advertised 200 W limit: 20 s to wrap, 5 s; the shortest zone decides
    b = make_tree(tmp_path / "b", [
        ("intel-rapl:0", "package-0", 0, {"max_uj": 4_000_000_000, "max_power_uw": 200_000_000}),
        ("intel-rapl:0:0", "dram", 0, {"max_uj": 8_000_000_000, "max_power_uw": 200_000_000})])
    m = PowercapMeter(str(b.root), background=False)
    assert m.wrap_s == {"package-0": 20.0, "package-0/dram": 40.0}
    assert m.poll_interval_s == 5.0
    # an explicit max_power_w applies to every zone
    assert PowercapMeter(str(b.root), max_power_w=400.0,
                         background=False).poll_interval_s == 2.5
    # clamped to [0.05 s, 60 s]
    c = make_tree(tmp_path / "c", [("intel-rapl:0", "package-0", 0, {"max_uj": 1000})])
    assert PowercapMeter(str(c.root), background=False).poll_interval_s == 0.05
    d = make_tree(tmp_path / "d", [("intel-rapl:0", "package-0", 0)])
    assert PowercapMeter(str(d.root), background=False).poll_interval_s == 60.0
    assert PowercapMeter(str(d.root), poll_interval_s=0.5, background=False).poll_interval_s == 0.5


def _poll_threads():
    return [t for t in threading.enumerate() if t.name == "lshprof-powercap-poll"]


def test_background_thread_polls_and_close_joins(tmp_path):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0)])
    before = len(_poll_threads())
    meter = PowercapMeter(str(tree.root), poll_interval_s=0.005)
    with meter:
        assert len(_poll_threads()) == before + 1
        deadline = time.monotonic() + 2.0
        while meter.polls < 3 and time.monotonic() < deadline:
            time.sleep(0.002)
        assert meter.polls >= 3
    assert len(_poll_threads()) == before and meter.error is None
    after = meter.polls
    time.sleep(0.02)
    assert meter.polls == after
    meter.close()  # twice is fine


def test_background_false_runs_no_thread(tmp_path):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0)])
    before = len(_poll_threads())
    meter = PowercapMeter(str(tree.root), poll_interval_s=0.005, background=False).start()
    time.sleep(0.02)
    assert len(_poll_threads()) == before and meter.polls == 0
    meter.close()


# ---- failures --------------------------------------------------------------------------

def _deny_energy(monkeypatch):
    real = powercap._read_text

    def read(path):
        if os.path.basename(path) == "energy_uj":
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(powercap, "_read_text", read)


def test_unreadable_energy_says_how_to_fix(intel, monkeypatch):
    _deny_energy(monkeypatch)
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(intel.root), background=False)
    exc = info.value
    assert exc.reason == "permission denied" and one_line(exc)
    message = str(exc)
    assert "energy_uj (permission denied)" in message and str(intel.root) in message
    assert "CVE-2020-8694" in message and "run as root" in message
    assert f"sudo chmod o+r {intel.root}/intel-rapl:*/energy_uj" in message
    assert 'SUBSYSTEM=="powercap"' in message and "/bin/chmod o+r /sys%p/energy_uj" in message


def test_default_root_fix_names_the_sysfs_path():
    exc = powercap._permission_error(f"{DEFAULT_ROOT}/intel-rapl:0/energy_uj", DEFAULT_ROOT)
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in str(exc)
    assert one_line(exc)


def test_permission_lost_later_raises_on_mark(intel, monkeypatch):
    meter = PowercapMeter(str(intel.root), background=False)
    _deny_energy(monkeypatch)
    with pytest.raises(EnergyUnavailable) as info:
        meter.mark()
    assert info.value.reason == "permission denied"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_energy_by_mode(tmp_path):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0)])
    path = tree.dirs["intel-rapl:0"] / "energy_uj"
    path.chmod(0)
    try:
        with pytest.raises(EnergyUnavailable) as info:
            PowercapMeter(str(tree.root), background=False)
    finally:
        path.chmod(0o644)
    assert info.value.reason == "permission denied" and "CVE-2020-8694" in str(info.value)


def test_missing_tree_is_not_present(tmp_path):
    missing = tmp_path / "no-powercap"
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(missing))
    assert info.value.reason == "not present" and one_line(info.value)
    message = str(info.value)
    assert "not present" in message  # the CLI prints the message alone
    assert str(missing) in message and ENV_ROOT in message and "--powercap-root" in message


def test_tree_without_zones(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    controls = tmp_path / "controls"
    for control in ("intel-rapl", "intel-rapl-mmio"):
        (controls / control).mkdir(parents=True)
        (controls / control / "enabled").write_text("1\n")
    no_counter = make_tree(tmp_path / "nc", [("intel-rapl:0", "psys", 0, {"energy": False})])
    for root in (empty, controls, no_counter.root):
        with pytest.raises(EnergyUnavailable) as info:
            PowercapMeter(str(root))
        assert info.value.reason == "no zones" and str(root) in str(info.value)
        assert "no zones" in str(info.value)
        assert one_line(info.value)
    assert "no energy_uj file" in str(info.value)


@pytest.mark.parametrize("content", ["garbage\n", "", "12.5\n"])
def test_garbage_energy_fails_naming_the_file(tmp_path, content):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0), ("intel-rapl:0:0", "core", 0)])
    (tree.dirs["intel-rapl:0:0"] / "energy_uj").write_text(content)
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(tree.root))
    assert info.value.reason == "failed" and one_line(info.value)
    assert "intel-rapl:0:0/energy_uj" in str(info.value)


@pytest.mark.parametrize("kw, words", [({"max_range": False}, "missing"),
                                       ({"max_uj": 0}, "is 0"),
                                       ({"max_uj": "x"}, "cannot parse")])
def test_bad_max_range_fails_naming_the_file(tmp_path, kw, words):
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0, kw)])
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(tree.root))
    assert info.value.reason == "failed" and one_line(info.value)
    assert "intel-rapl:0/max_energy_range_uj" in str(info.value) and words in str(info.value)


def test_other_read_error_fails(intel, monkeypatch):
    def read(path):
        raise OSError(5, "Input/output error", path)

    monkeypatch.setattr(powercap, "_read_text", read)
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(intel.root))
    assert info.value.reason == "failed" and "Input/output error" in str(info.value)
    assert "intel-rapl:0/name" in str(info.value)


def test_bad_arguments_and_foreign_marks(intel):
    with pytest.raises(ConfigError):
        PowercapMeter(str(intel.root), max_power_w=0)
    with pytest.raises(ConfigError):
        PowercapMeter(str(intel.root), poll_interval_s=-1)
    meter = PowercapMeter(str(intel.root), background=False)
    m0 = meter.mark()
    with pytest.raises(ConfigError, match="not from this powercap meter"):
        meter.interval(m0, m0._replace(state=None))
    with pytest.raises(ConfigError, match="before its start"):
        meter.interval(meter.mark(), m0)


# ---- root, factory, description ------------------------------------------------------------

def test_resolve_root(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_ROOT, raising=False)
    assert resolve_root(None) == DEFAULT_ROOT == "/sys/class/powercap"
    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "env"))
    assert resolve_root(None) == str(tmp_path / "env")
    assert resolve_root(str(tmp_path / "arg")) == str(tmp_path / "arg")


def test_env_root_is_used(intel, monkeypatch):
    monkeypatch.setenv(ENV_ROOT, str(intel.root))
    assert PowercapMeter(background=False).root == str(intel.root)


def test_factory_opens_powercap(intel):
    meter, reasons = open_meter("powercap", powercap_root=str(intel.root))
    try:
        assert isinstance(meter, PowercapMeter) and reasons == []
        assert meter.name == "powercap" and meter.source == "measured"
    finally:
        meter.close()
    meter, reasons = open_meter("auto", powercap_root=str(intel.root))
    meter.close()
    assert meter.name == "powercap" and reasons == []


def test_factory_auto_falls_back(tmp_path):
    pytest.importorskip("lshprof.measure.energy.estimate")
    meter, reasons = open_meter("auto", powercap_root=str(tmp_path / "missing"))
    meter.close()
    assert meter.name == "estimate"
    assert len(reasons) == 1 and "not present" in reasons[0]
    with pytest.raises(EnergyUnavailable):
        open_meter("powercap", powercap_root=str(tmp_path / "missing"))


def test_describe(intel):
    meter = PowercapMeter(str(intel.root), background=False)
    d = meter.describe()
    assert (d["backend"], d["source"], d["root"]) == ("powercap", "measured", str(intel.root))
    assert d["zones"][0] == {"label": "package-0", "id": "intel-rapl:0", "name": "package-0",
                             "domain": "package", "max_energy_range_uj": BIG, "mmio": False}
    assert [z["label"] for z in d["zones"]] == [z.label for z in meter.zones]
    assert d["skipped"] == [] and d["poll_interval_s"] == 60.0
    assert d["max_power_w"]["psys"] == 1000.0
    assert d["summary"] == ("8 zones: package-0, package-0/core, package-0/uncore, package-0/dram, "
                            "package-1, package-1/core, package-1/dram, psys; polled every 60 s")


# ---- counters that step back, subzones alone, files that are not files (issue 18, item 7) --------

ONE_SOCKET = [("intel-rapl:0", "package-0", 5_000_000), ("intel-rapl:0:0", "core", 1_000_000),
              ("intel-rapl:0:1", "dram", 2_000_000)]


def test_counter_that_steps_back_is_no_figure(tmp_path, clock):
    tree = make_tree(tmp_path, ONE_SOCKET)
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 4_999_000)  # 1 mJ back: read as a wrap, 262 kJ in 12 ms (22 MW)
    tree.add("intel-rapl:0:0", 100_000)
    tree.add("intel-rapl:0:1", 200_000)
    clock.advance(0.012)
    m1 = meter.mark()
    r = meter.interval(m0, m1)
    assert (r.source, r.energy_j, r.power_w) == ("measured", None, None)
    assert r.zones == {"package-0": None, "package-0/core": 0.1, "package-0/dram": 0.2}
    assert r.domains == {"package": None, "core": 0.1, "dram": 0.2}
    assert r.note == ("counter reset or stepped back on package-0 (energy_uj fell from 5000000 to "
                      "4999000, which read as a wrap would be 262143 J in 0.012 s, over the "
                      "zone's 1000 W maximum): no measurement for this interval")
    # the next interval measures again from the counter's new value; one spanning both cannot
    tree.add("intel-rapl:0", 30_000_000)
    clock.advance(1)
    m2 = meter.mark()
    after = meter.interval(m1, m2)
    assert (after.energy_j, after.note) == (30.0, "")
    spanning = meter.interval(m0, m2)
    assert spanning.energy_j is None and spanning.zones["package-0"] is None
    assert spanning.note.startswith("counter reset or stepped back on package-0 ")
    assert spanning.zones["package-0/dram"] == 0.2


def test_counter_that_leaps_forward_or_steps_back_twice(tmp_path, clock):
    tree = make_tree(tmp_path, ONE_SOCKET)
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.add("intel-rapl:0", 5_000_000_000)  # 5 kJ in 1 s
    clock.advance(1)
    meter.poll()
    tree.add("intel-rapl:0", -1)
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j is None
    assert r.note == ("counter jumped on package-0 (energy_uj rose from 5000000 to 5005000000, "
                      "5000 J in 1 s, over the zone's 1000 W maximum) and 1 more time(s): "
                      "no measurement for this interval")


def test_step_back_of_a_subzone_leaves_the_total(tmp_path, clock):
    tree = make_tree(tmp_path, ONE_SOCKET)
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.add("intel-rapl:0", 2_000_000)
    tree.set("intel-rapl:0:0", 0)  # core reset to 0
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 2.0 and r.zones["package-0/core"] is None and r.domains["core"] is None
    assert r.note == ("counter reset or stepped back on package-0/core (energy_uj fell from "
                      "1000000 to 0, which read as a wrap would be 262142 J in 1 s, over the "
                      "zone's 1000 W maximum): no package-0/core figure for this interval (the "
                      "total does not use it)")


def test_plausible_wraps_stay_wraps_against_the_zone_maximum(tmp_path, clock):
    # advertised 50 W, so 100 W with the headroom; range 200 J wraps in 2 s at 100 W
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 150_000_000,
                                 {"max_uj": 200_000_000, "max_power_uw": 50_000_000})])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 40_000_000)  # a wrap: 90 J in 1 s, 90 W
    clock.advance(1)
    m1 = meter.mark()
    assert (meter.interval(m0, m1).energy_j, meter.interval(m0, m1).note) == (90.0, "")
    tree.set("intel-rapl:0", 190_000_000)  # no wrap but 150 J in 1 s: 150 W
    clock.advance(1)
    r = meter.interval(m1, meter.mark())
    assert r.energy_j is None and r.note.startswith("counter jumped on package-0 (")
    assert "over the zone's 100 W maximum" in r.note
    assert meter.ceiling_w == {"package-0": 50.0 * powercap.ADVERTISED_HEADROOM} == {
        "package-0": 100.0}
    # no advertised limit: the 1000 W default, as it is
    d = make_tree(tmp_path / "d", [("intel-rapl:0", "package-0", 0)])
    meter = PowercapMeter(str(d.root), background=False)
    m0 = meter.mark()
    d.add("intel-rapl:0", 1_000_000_000)
    clock.advance(1)
    m1 = meter.mark()
    assert meter.interval(m0, m1).energy_j == 1000.0
    d.add("intel-rapl:0", 1_100_000_000)
    clock.advance(1)
    assert meter.interval(m1, meter.mark()).energy_j is None
    assert meter.ceiling_w == {"package-0": powercap.DEFAULT_MAX_POWER_W} == {"package-0": 1000.0}


def test_subzones_alone_are_not_a_total(tmp_path, clock):
    no_pkg = [("intel-rapl:0", "package-0", 0, {"energy": False}),
              ("intel-rapl:0:0", "core", 0), ("intel-rapl:0:1", "dram", 0)]
    for layout in ("sysfs", "plain"):
        tree = make_tree(tmp_path / layout, no_pkg, layout=layout)
        meter = PowercapMeter(str(tree.root), background=False)
        m0 = meter.mark()
        tree.add("intel-rapl:0:0", 3_000_000)
        tree.add("intel-rapl:0:1", 1_000_000)
        clock.advance(1)
        r = meter.interval(m0, meter.mark())
        assert (r.source, r.energy_j) == ("measured", None), layout
        assert r.zones == {"package-0/core": 3.0, "package-0/dram": 1.0}
        assert r.note == ("package-0 has no energy counter (only its subzones core, dram have "
                          "one): the total cannot be measured, since core and uncore are only "
                          "parts of a package and dram lies outside it")
        assert [z.orphan for z in meter.zones] == [True, True]
    # a core subzone with no parent folder at all
    tree = make_tree(tmp_path / "bare", [("intel-rapl:0:0", "core", 0)], layout="plain")
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.add("intel-rapl:0:0", 3_000_000)
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j is None and r.zones == {"intel-rapl:0/core": 3.0}
    assert r.note.startswith("intel-rapl:0 has no energy counter (only its subzone core has one)")
    # with psys, the whole platform is the total, and the note says why
    tree = make_tree(tmp_path / "psys", no_pkg + [("intel-rapl:1", "psys", 0)])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.add("intel-rapl:0:0", 3_000_000)
    tree.add("intel-rapl:1", 9_000_000)
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.energy_j == 9.0
    assert r.note == ("package-0 has no energy counter (only its subzones core, dram have one): "
                      "the total is psys, the whole platform")


def _without_hanging(fn, fifos, timeout_s=5.0):
    """``fn()``'s result or exception; a FIFO read that blocks is released and fails the test."""
    out = {}

    def target():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        for f in fifos:  # a writer that opens and closes gives the blocked reader end-of-file
            os.close(os.open(f, os.O_WRONLY | os.O_NONBLOCK))
        t.join(timeout_s)
        pytest.fail(f"reading the tree blocked on a FIFO for {timeout_s} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_fifo_or_folder_in_place_of_a_counter_is_refused(tmp_path):
    from lshprof.measure.energy import backend_status

    tree = make_tree(tmp_path / "fifo", INTEL_2S)
    fifo = tree.fifo("intel-rapl:1")
    with pytest.raises(EnergyUnavailable) as info:
        _without_hanging(lambda: PowercapMeter(str(tree.root), background=False), [fifo])
    assert info.value.reason == "failed" and one_line(info.value)
    assert str(info.value) == (f"cannot read {tree.root}/intel-rapl:1/energy_uj: not a regular file "
                               f"(a FIFO)")
    # what `lshprof sysinfo` shows, without waiting
    status = _without_hanging(lambda: backend_status(powercap_root=str(tree.root)), [fifo])
    assert status[0] == ("powercap", False, f"failed: {info.value}")
    # a folder, or a FIFO where the name is
    tree = make_tree(tmp_path / "dir", INTEL_2S)
    (tree.dirs["intel-rapl:1"] / "energy_uj").unlink()
    (tree.dirs["intel-rapl:1"] / "energy_uj").mkdir()
    with pytest.raises(EnergyUnavailable, match=r"energy_uj: not a regular file \(a directory\)$"):
        PowercapMeter(str(tree.root), background=False)
    tree = make_tree(tmp_path / "name", INTEL_2S)
    fifo = tree.fifo("intel-rapl:0", "name")
    with pytest.raises(EnergyUnavailable, match=r"intel-rapl:0/name: not a regular file \(a FIFO\)$"):
        _without_hanging(lambda: PowercapMeter(str(tree.root), background=False), [fifo])
    # an optional power-limit file that is a FIFO is only "not advertised"
    tree = make_tree(tmp_path / "limit", [("intel-rapl:0", "package-0", 0,
                                           {"max_power_uw": 50_000_000})])
    fifo = tree.fifo("intel-rapl:0", "constraint_0_max_power_uw")
    meter = _without_hanging(lambda: PowercapMeter(str(tree.root), background=False), [fifo])
    assert meter.max_power_w == {"package-0": 1000.0}


def test_dangling_counter_on_a_second_package_is_refused(tmp_path):
    tree = make_tree(tmp_path / "file", INTEL_2S)
    link = tree.dangle("intel-rapl:1")
    with pytest.raises(EnergyUnavailable) as info:
        PowercapMeter(str(tree.root), background=False)
    assert info.value.reason == "failed" and one_line(info.value)
    assert str(info.value) == (
        f"{tree.root}/intel-rapl:1/energy_uj is a dangling symlink (to {os.readlink(link)}): "
        f"package-1 cannot be read, and leaving it out would make every total low; fix or "
        f"remove the link")
    # --energy auto says so, and does not call package-0 alone the machine's measured total
    meter, reasons = open_meter("auto", powercap_root=str(tree.root))
    meter.close()
    assert meter.source == "estimated" and reasons == [f"powercap unavailable (failed): {info.value}"]
    # a zone folder that is only a broken link in the root
    tree = make_tree(tmp_path / "folder", INTEL_2S)
    for zone_id in ("intel-rapl:1:1", "intel-rapl:1:0", "intel-rapl:1"):
        for f in tree.dirs[zone_id].iterdir():
            if f.is_file():
                f.unlink()
        tree.dirs[zone_id].rmdir()
    with pytest.raises(EnergyUnavailable, match=r"intel-rapl:1 is a dangling symlink \(to .*\): "
                                                r"zone intel-rapl:1 cannot be read") as info:
        PowercapMeter(str(tree.root), background=False)
    assert info.value.reason == "failed" and one_line(info.value)


def test_counter_notes_reach_the_energy_note_column(tmp_path, clock):
    from lshprof.experiment.execute import epoch_row
    from lshprof.measure.macs import MacCounts
    from lshprof.nn.training import EpochStats

    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 9_000_000, {"max_uj": 10_000_000})])
    meter = PowercapMeter(str(tree.root), max_power_w=1.0, background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 4_000_000)
    clock.advance(100)  # unpolled for 100 s, ten times the time to wrap
    m1 = meter.mark()
    tree.set("intel-rapl:0", 3_000_000)  # then a step back
    clock.advance(1)
    m2 = meter.mark()

    def row(reading):
        stats = EpochStats(epoch=0, loss=0.0, train_accuracy=0.5, eval_accuracy=0.5,
                           train_macs=MacCounts(), eval_macs=MacCounts(), train_energy=reading)
        return epoch_row(stats, {})

    gap = row(meter.interval(m0, m1))
    assert gap["energy_j"] == 5.0 and gap["energy_source"] == "measured"
    assert gap["energy_note"].startswith("counter may have wrapped unseen between polls at ")
    assert gap["energy_note"].endswith("figures may be low")
    back = row(meter.interval(m1, m2))
    assert back["energy_j"] is None and back["energy_package_j"] is None
    assert back["energy_note"].startswith("counter reset or stepped back on package-0 (energy_uj "
                                          "fell from 4000000 to 3000000, ")
    assert back["energy_note"].endswith(": no measurement for this interval")


def test_a_reading_outside_the_counters_range_is_no_figure(tmp_path, clock):
    """energy_uj above max_energy_range_uj is no counter value (a broken driver, a fake
    tree): no figure, and the note says so, however plausible the modular difference."""
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 1_000)])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 1_000 + 5_000 + 3 * BIG)     # +5 mJ, three ranges too high
    clock.advance(1)
    r = meter.interval(m0, meter.mark())
    assert r.source == "measured" and r.energy_j is None
    assert r.note.startswith(f"counter out of range on package-0 (energy_uj reads "
                             f"{1_000 + 5_000 + 3 * BIG}, outside its range 0-{BIG}")


def test_a_short_interval_cannot_pass_several_times_the_ceiling(tmp_path, clock):
    """The grace for the counters' 1 ms update step is 2 ms of the ceiling: 3 J in 1 ms
    (3 kW, three times the 1000 W default) is no figure; 2.5 J in 1 ms can be one update
    step late, and passes."""
    assert powercap.COUNTER_GRACE_S == 0.002
    tree = make_tree(tmp_path, [("intel-rapl:0", "package-0", 0)])
    meter = PowercapMeter(str(tree.root), background=False)
    m0 = meter.mark()
    tree.set("intel-rapl:0", 3_100_000)
    clock.advance(0.001)
    assert meter.interval(m0, meter.mark()).energy_j is None
    m1 = meter.mark()
    tree.add("intel-rapl:0", 2_500_000)
    clock.advance(0.001)
    assert meter.interval(m1, meter.mark()).energy_j == 2.5
