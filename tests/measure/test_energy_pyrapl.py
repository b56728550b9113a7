"""The pyrapl energy backend: the real pyRAPL where it is installed, a fake one elsewhere."""

import importlib.util
import logging
import os
import sys
import types
import warnings

import pytest

from lshprof.measure.energy import Mark
from lshprof.measure.energy.pyrapl import RAPL_PATH, PyRAPLMeter, _import_pyrapl
from lshprof.errors import ConfigError, EnergyUnavailable


# ---- helpers -------------------------------------------------------------------------

def _fake_pyrapl(readings=(), init_error=None, version="0.0-fake"):
    """A module object standing in for pyRAPL: Sensor().energy() returns ``readings`` in turn."""
    module = types.ModuleType("pyRAPL")
    module.__version__ = version

    class PyRAPLException(Exception):
        pass

    class PyRAPLCantRecordEnergyConsumption(PyRAPLException):
        pass

    class PyRAPLCantInitDeviceAPI(PyRAPLException):
        pass

    script = [list(r) for r in readings]

    class Sensor:
        def __init__(self):
            if init_error is not None:
                raise init_error(module) if callable(init_error) else init_error
            self.calls = 0

        def energy(self):
            value = script[min(self.calls, len(script) - 1)]
            self.calls += 1
            return value

    module.PyRAPLException = PyRAPLException
    module.PyRAPLCantRecordEnergyConsumption = PyRAPLCantRecordEnergyConsumption
    module.PyRAPLCantInitDeviceAPI = PyRAPLCantInitDeviceAPI
    module.Sensor = Sensor
    return module


@pytest.fixture
def use_fake(monkeypatch):
    def install(**kwargs):
        module = _fake_pyrapl(**kwargs)
        monkeypatch.setitem(sys.modules, "pyRAPL", module)
        return module
    return install


@pytest.fixture
def fresh_import():
    """Drop pyRAPL (and its submodules) from sys.modules so the next import really runs;
    put the originals back afterwards."""
    saved = {k: v for k, v in sys.modules.items() if k == "pyRAPL" or k.startswith("pyRAPL.")}
    for key in saved:
        del sys.modules[key]
    try:
        yield
    finally:
        for key in [k for k in sys.modules if k == "pyRAPL" or k.startswith("pyRAPL.")]:
            del sys.modules[key]
        sys.modules.update(saved)


class _no_warnings:
    """Fails if any warning reaches the caller inside the block."""

    def __enter__(self):
        self._cm = warnings.catch_warnings(record=True)
        self.caught = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        assert not self.caught, [str(w.message) for w in self.caught]


def _marks(meter, n=2):
    return [meter.mark() for _ in range(n)]


# ---- the real pyRAPL on this machine -------------------------------------------------

needs_pyrapl = pytest.mark.skipif(importlib.util.find_spec("pyRAPL") is None,
                                  reason="pyRAPL is not installed")


@needs_pyrapl
def test_real_pyrapl_without_rapl_is_not_present_and_silent(fresh_import, capfd, caplog):
    root = logging.getLogger()
    handlers_before = list(root.handlers)
    if os.path.isdir(RAPL_PATH):
        # a machine with RAPL: the meter works, or the counters are root-only
        try:
            meter = PyRAPLMeter()
        except EnergyUnavailable as exc:
            assert exc.reason == "permission denied", exc
        else:
            meter.close()
    else:
        with pytest.raises(EnergyUnavailable) as info:
            PyRAPLMeter()
        assert info.value.reason == "not present"
        message = str(info.value)
        assert RAPL_PATH in message and "--energy powercap" in message and "--powercap-root" in message
        assert "\n" not in message
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert "pymongo" not in caplog.text
    assert root.handlers == handlers_before
    assert "pyRAPL" in sys.modules           # the import did happen


@needs_pyrapl
def test_real_import_leaves_unconfigured_root_logger_alone(fresh_import, monkeypatch, capfd):
    # pyRAPL's import-time logging.warning would call basicConfig() on a bare root logger
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    disabled = logging.root.manager.disable
    _import_pyrapl()
    assert root.handlers == []
    assert logging.root.manager.disable == disabled
    assert capfd.readouterr() == ("", "")


# ---- not installed, import noise -----------------------------------------------------

def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyRAPL", None)
    with pytest.raises(EnergyUnavailable, match="pyRAPL is not installed; pip install 'lshprof\\[pyrapl\\]'") as info:
        PyRAPLMeter()
    assert info.value.reason == "not installed"


def test_import_noise_of_a_fake_module_is_silenced(tmp_path, monkeypatch, capfd, caplog):
    package = tmp_path / "pyRAPL"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import logging, sys, warnings\n"
        "logging.warning('imports error \\n You need to install pymongo>=3.9.0 in order to use MongoOutput ')\n"
        "print('noise on stdout')\n"
        "sys.stderr.write('noise on stderr\\n')\n"
        "warnings.warn('noise as a warning')\n"
        "__version__ = '9.9'\n"
        "class Sensor:\n"
        "    def energy(self):\n"
        "        return [1.0, -1]\n")
    monkeypatch.setitem(sys.modules, "pyRAPL", None)   # remembers the original entry ...
    monkeypatch.delitem(sys.modules, "pyRAPL")         # ... then frees the name for the import
    monkeypatch.syspath_prepend(str(tmp_path))
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])          # the basicConfig() trap, as for a script
    caplog.set_level(logging.DEBUG)
    with _no_warnings():
        meter = PyRAPLMeter()
    assert meter.describe()["pyrapl_version"] == "9.9"
    assert capfd.readouterr() == ("", "")
    assert "pymongo" not in caplog.text
    assert root.handlers == []
    assert logging.root.manager.disable == logging.NOTSET



# ---- readings from a fake sensor -----------------------------------------------------

def test_two_sockets_joules(use_fake):
    # uJ: pkg0, dram0, pkg1, dram1
    use_fake(readings=[(0, 0, 0, 0),
                       (1_000_000, 500_000, 2_000_000, 250_000),
                       (3_500_000, 700_000, 2_500_000, 1_250_000)])
    meter = PyRAPLMeter()        # the constructor reads once to find the zones
    assert meter.devices == ["package-0", "dram-0", "package-1", "dram-1"]
    m0, m1 = _marks(meter)
    r = meter.interval(m0, m1)
    assert r.backend == "pyrapl" and r.source == "measured"
    assert r.zones == pytest.approx({"package-0": 2.5, "dram-0": 0.2, "package-1": 0.5, "dram-1": 1.0})
    assert r.domains == pytest.approx({"package": 3.0, "dram": 1.2})
    assert r.energy_j == pytest.approx(4.2)
    assert r.wall_s >= 0 and r.note == ""


def test_absent_dram_is_left_out(use_fake):
    use_fake(readings=[(10, -1), (10, -1), (2_000_010, -1)])
    meter = PyRAPLMeter()
    assert meter.devices == ["package-0"]
    m0, m1 = _marks(meter)
    r = meter.interval(m0, m1)
    assert r.zones == pytest.approx({"package-0": 2.0})
    assert r.domains == pytest.approx({"package": 2.0})       # no made-up dram: 0.0
    assert r.energy_j == pytest.approx(2.0)


def test_wraparound_is_refused(use_fake):
    use_fake(readings=[(0, 0), (4_000_000_000, 100), (5_000, 200)])
    meter = PyRAPLMeter()
    m0, m1 = _marks(meter)
    with pytest.raises(EnergyUnavailable, match="pyRAPL counter for package-0 wrapped during the interval; "
                       "pyRAPL cannot correct wraparound, use --energy powercap") as info:
        meter.interval(m0, m1)
    assert info.value.reason == "failed"


def test_long_interval_is_noted(use_fake):
    use_fake(readings=[(0, 0), (0, 0), (60_000_000, 0)])
    meter = PyRAPLMeter()
    m0, m1 = _marks(meter)
    r = meter.interval(m0, Mark(m0.t_ns + 45 * 10**9, m1.state))
    assert r.energy_j == pytest.approx(60.0) and r.power_w == pytest.approx(60.0 / 45)
    assert "wrap" in r.note


def test_marks_of_another_meter_are_refused(use_fake):
    use_fake(readings=[(0, 0)])
    meter = PyRAPLMeter()
    with pytest.raises(ConfigError):
        meter.interval(meter.mark(), Mark(0, None))


def test_describe(use_fake):
    use_fake(readings=[(1, 2)], version="0.2.3.1")
    info = PyRAPLMeter().describe()
    assert info["backend"] == "pyrapl" and info["source"] == "measured"
    assert info["pyrapl_version"] == "0.2.3.1"
    assert info["devices"] == ["package-0", "dram-0"]
    assert "pyRAPL 0.2.3.1" in info["summary"] and "\n" not in info["summary"]


def test_close_keeps_old_marks_valid(use_fake):
    use_fake(readings=[(0, 0), (0, 0), (1_000_000, 0)])
    meter = PyRAPLMeter()
    m0, m1 = _marks(meter)
    meter.close()
    meter.close()
    assert meter.interval(m0, m1).energy_j == pytest.approx(1.0)
    with pytest.raises(EnergyUnavailable):
        meter.mark()


# ---- sensor failures -----------------------------------------------------------------

def test_cant_record_is_not_present(use_fake):
    use_fake(init_error=lambda m: m.PyRAPLCantRecordEnergyConsumption(None))
    with pytest.raises(EnergyUnavailable, match="--energy powercap") as info:
        PyRAPLMeter()
    assert info.value.reason == "not present"


def test_cant_init_device_api_is_not_present(use_fake):
    use_fake(init_error=lambda m: m.PyRAPLCantInitDeviceAPI())
    with pytest.raises(EnergyUnavailable) as info:
        PyRAPLMeter()
    assert info.value.reason == "not present"


def test_permission_error(use_fake):
    path = "/sys/class/powercap/intel-rapl/intel-rapl:0/energy_uj"
    use_fake(init_error=PermissionError(13, "Permission denied", path))
    with pytest.raises(EnergyUnavailable) as info:
        PyRAPLMeter()
    assert info.value.reason == "permission denied"
    message = str(info.value)
    assert path in message and "CVE-2020-8694" in message
    assert "sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in message
    assert "\n" not in message


def test_other_error_is_failed_and_named(use_fake):
    use_fake(init_error=RuntimeError("socket topology unreadable"))
    with pytest.raises(EnergyUnavailable, match="RuntimeError: socket topology unreadable") as info:
        PyRAPLMeter()
    assert info.value.reason == "failed"


def test_all_counters_absent_is_no_zones(use_fake):
    use_fake(readings=[(-1, -1)])
    with pytest.raises(EnergyUnavailable) as info:
        PyRAPLMeter()
    assert info.value.reason == "no zones"


def test_factory_uses_it(use_fake):
    from lshprof.measure.energy import open_meter

    use_fake(readings=[(0, -1)])
    meter, passed_over = open_meter("pyrapl")
    assert isinstance(meter, PyRAPLMeter) and passed_over == []
