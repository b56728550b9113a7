"""The estimate backend: its formula, model files, and calibration by non-negative least squares."""

import json

import pytest

from lshprof.measure.energy import Mark, NoEnergy, Work, open_meter
from lshprof.measure.energy.base import EnergyMeter, EnergyReading
from lshprof.measure.energy.estimate import ENV_MODEL, EnergyModel, EstimateMeter, fit_model
from lshprof.errors import ConfigError, ResultsError


def test_formula_is_exact_for_known_counts():
    m = EnergyModel()
    w = Work(macs=10**9, adds=2 * 10**8, compares=3 * 10**7, bytes_moved=4 * 10**8)
    # 4.6 pJ * 1e9 + 0.9 pJ * 2e8 + 0.1 pJ * 3e7 + 162.5 pJ * 4e8
    expected = 4.6e-3 + 0.9 * 2e-4 + 0.1 * 3e-5 + 162.5 * 4e-4
    assert m.energy_j(w) == pytest.approx(expected, rel=1e-15)
    custom = EnergyModel(pj_per_mac=1, pj_per_add=2, pj_per_compare=3, pj_per_byte=4, static_w=5)
    assert custom.energy_j(Work(1, 1, 1, 1), wall_s=2.0) == pytest.approx(10e-12 + 10.0)
    assert custom.terms(Work(macs=10**12), 0.0)["macs"] == pytest.approx(1.0)


def test_meter_labels_every_reading_estimated():
    meter = EstimateMeter()
    r = meter.interval(Mark(0), Mark(2_000_000_000), Work(macs=10**12))
    assert r.source == "estimated" and r.backend == "estimate"
    assert r.wall_s == 2.0
    assert r.energy_j == pytest.approx(4.6)
    assert "not measured" in r.note
    assert r.power_w == pytest.approx(2.3)
    with pytest.raises(ConfigError, match="work"):
        meter.interval(Mark(0), Mark(1))


def test_none_backend_has_no_figure():
    r = NoEnergy().interval(Mark(0), Mark(10**9))
    assert r.energy_j is None and r.source == "none" and r.power_w is None


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid: auto, powercap, pyrapl, estimate, none"):
        open_meter("rapl")


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "3", True])
def test_bad_coefficients_are_refused(bad):
    with pytest.raises(ConfigError, match="pj_per_mac"):
        EnergyModel(pj_per_mac=bad)


def test_model_file_round_trip_and_env(tmp_path, monkeypatch):
    m = EnergyModel(pj_per_mac=1.5, pj_per_byte=20.0, static_w=3.25, origin="calibrated here",
                    calibration={"r2": 0.99})
    path = tmp_path / "model.json"
    m.save(str(path))
    back = EnergyModel.load(str(path))
    assert back == m and back.calibration == {"r2": 0.99}
    monkeypatch.setenv(ENV_MODEL, str(path))
    assert EstimateMeter().model == m
    assert open_meter("estimate")[0].model == m
    monkeypatch.delenv(ENV_MODEL)
    assert EstimateMeter().model == EnergyModel()


@pytest.mark.parametrize("content,match", [
    (None, "not found"),
    ("{not json", "not JSON"),
    (json.dumps({"format": "other"}), "not an lshprof energy model"),
    (json.dumps({"format": "lshprof-energy-model", "version": 7, "coefficients": {}}), "version 7"),
    (json.dumps({"format": "lshprof-energy-model", "version": 1, "coefficients": {"pj_per_mac": 1}}),
     "exactly"),
])
def test_bad_model_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ResultsError, match=match):
        EnergyModel.load(str(path))


def test_negative_coefficient_in_file(tmp_path):
    d = EnergyModel().to_dict()
    d["coefficients"]["static_w"] = -2
    path = tmp_path / "m.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ResultsError, match="static_w"):
        EnergyModel.load(str(path))


def _samples(true: EnergyModel):
    works = [(Work(), 2.0), (Work(macs=4 * 10**10, bytes_moved=10**8), 1.0),
             (Work(bytes_moved=6 * 10**9), 1.5), (Work(macs=10**10, adds=10**9, compares=10**8,
                                                        bytes_moved=2 * 10**9), 2.5)]
    return [(w, t, true.energy_j(w, t)) for w, t in works]


def test_fit_recovers_the_coefficients():
    true = EnergyModel(pj_per_mac=30.0, pj_per_byte=50.0, static_w=12.0)
    fitted = fit_model(_samples(true), origin="test")
    assert fitted.pj_per_mac == pytest.approx(30.0, rel=1e-9)
    assert fitted.pj_per_byte == pytest.approx(50.0, rel=1e-9)
    assert fitted.static_w == pytest.approx(12.0, rel=1e-9)
    assert fitted.pj_per_add == EnergyModel().pj_per_add  # not fitted
    assert fitted.calibration["r2"] == pytest.approx(1.0)
    assert fitted.origin == "test"


def test_fit_never_goes_negative():
    # energy that falls with bytes cannot be fitted with a positive pj_per_byte: it is clamped at 0
    works = [(Work(), 1.0, 10.0), (Work(bytes_moved=10**9), 1.0, 9.0),
             (Work(macs=10**11), 1.0, 12.0), (Work(macs=10**11, bytes_moved=10**9), 1.0, 11.5)]
    fitted = fit_model(works)
    assert fitted.pj_per_byte == 0.0
    assert fitted.pj_per_mac > 0 and fitted.static_w > 0


def test_fit_needs_enough_intervals():
    with pytest.raises(ConfigError, match="at least 3"):
        fit_model([(Work(), 1.0, 1.0)])


class _FakeRapl(EnergyMeter):
    """Measures 'joules' that follow a known model of the work it is told about."""

    name = "fake"
    source = "measured"

    def __init__(self, model):
        self.model = model

    def mark(self):
        import time

        return Mark(time.monotonic_ns())

    def interval(self, start, end, work=None):
        wall = (end.t_ns - start.t_ns) / 1e9
        return EnergyReading("fake", "measured", wall, self.model.energy_j(work, wall))


def test_calibration_recovers_a_known_machine():
    from lshprof.cli.calibrate import run_calibration

    true = EnergyModel(pj_per_mac=25.0, pj_per_byte=80.0, static_w=7.0)
    model, samples = run_calibration(_FakeRapl(true), seconds=0.05, repeats=1)
    assert [s["workload"] for s in samples] == ["idle", "matmul", "stream", "training"]
    assert model.pj_per_mac == pytest.approx(25.0, rel=1e-6)
    assert model.pj_per_byte == pytest.approx(80.0, rel=1e-6)
    assert model.static_w == pytest.approx(7.0, rel=1e-6)
    assert model.calibration["backend"] == "fake"
    for s in samples:
        assert s["predicted_j"] == pytest.approx(s["energy_j"], rel=1e-6)


def test_calibration_refuses_an_estimate():
    from lshprof.cli.calibrate import run_calibration

    with pytest.raises(ConfigError, match="measuring"):
        run_calibration(EstimateMeter(), seconds=0.01, repeats=1)
