"""A fake powercap (RAPL) sysfs tree, for the energy backend's tests and the measuring
commands' (tests/measure/test_energy_powercap.py, tests/cli/test_cli_measure.py)."""

import os

#: a real Intel package counter range (about 262 kJ): no wrap can go unseen during a test
BIG = 262_143_328_850


class Tree:
    """A fake powercap tree; ``dirs`` maps zone id -> its real directory."""

    def __init__(self, root, dirs):
        self.root = root
        self.dirs = dirs

    def set(self, zone_id, uj):
        (self.dirs[zone_id] / "energy_uj").write_text(f"{uj}\n")

    def add(self, zone_id, uj):
        path = self.dirs[zone_id] / "energy_uj"
        self.set(zone_id, int(path.read_text()) + uj)

    def get(self, zone_id):
        return int((self.dirs[zone_id] / "energy_uj").read_text())

    def fifo(self, zone_id, file="energy_uj"):
        """Put a FIFO where a zone's ``file`` was; returns its path."""
        path = self.dirs[zone_id] / file
        path.unlink(missing_ok=True)
        os.mkfifo(path)
        return path

    def dangle(self, zone_id, file="energy_uj"):
        """Make a zone's ``file`` a symlink to nothing; returns its path."""
        path = self.dirs[zone_id] / file
        path.unlink(missing_ok=True)
        os.symlink(path.parent / f"{file}.gone", path)
        return path


def write_zone(d, name, uj=0, max_uj=BIG, max_power_uw=None, energy=True, max_range=True):
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    if energy:
        (d / "energy_uj").write_text(f"{uj}\n")
    if max_range:
        (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    if max_power_uw is not None:
        (d / "constraint_0_name").write_text("long_term\n")
        (d / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")


def _control(zone_id):
    return zone_id.split(":")[0]


def _nested(zone_id):
    """``intel-rapl:0:1`` -> ``intel-rapl:0/intel-rapl:0:1``."""
    control, *numbers = zone_id.split(":")
    return "/".join(f"{control}:" + ":".join(numbers[:i + 1]) for i in range(len(numbers)))


def make_tree(base, zones, layout="sysfs"):
    """Zones ``[(zone_id, name, uj, {write_zone kwargs}), ...]`` under ``base``.

    ``sysfs``: as the kernel does it: zone folders nested under
    ``devices/virtual/powercap/<control type>/`` and the class folder holding a
    symlink for every zone and control type. ``plain``: top-level zones are
    folders of the root, subzones nested inside them and linked from the root.
    ``nested``: like ``plain`` without the subzone links.
    """
    root = base / "class" / "powercap"
    root.mkdir(parents=True)
    home = base / "devices" / "virtual" / "powercap" if layout == "sysfs" else root
    dirs = {}
    controls = sorted({_control(z[0]) for z in zones})
    for control in controls:
        cdir = home / control if layout == "sysfs" else root / control
        cdir.mkdir(parents=True, exist_ok=True)
        (cdir / "enabled").write_text("1\n")
        if layout == "sysfs":
            os.symlink(cdir, root / control)
    for zone_id, name, uj, *kw in zones:
        d = (home / _control(zone_id) / _nested(zone_id)) if layout == "sysfs" \
            else root / _nested(zone_id)
        write_zone(d, name, uj, **(kw[0] if kw else {}))
        dirs[zone_id] = d
    for zone_id, d in dirs.items():
        top = zone_id.count(":") == 1
        if layout == "sysfs" or (layout == "plain" and not top):
            os.symlink(d, root / zone_id)
    return Tree(root, dirs)
