"""The instrumented runner: rows per method x epoch, phase times, energy backends, run.json."""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

import lshprof.experiment.runner as runner_mod
from lshprof.data import gaussian_clusters
from lshprof.measure.energy import BACKENDS, EnergyMeter, EnergyReading, Mark, Work, now_ns
from lshprof.measure.energy.estimate import EnergyModel
from lshprof.errors import ConfigError, ResultsError
from lshprof.measure.macs import MacCounts
from lshprof.experiment.results import load_results, read_run
from lshprof.experiment.runner import Runner
from lshprof.experiment.sweep import Cell, NetworkSpec, TrainingSpec

HIDDEN = [32]
FRACTION = 0.25  # active_budget(0.25, 32) = 8 < 32: LSH really selects
CELLS = [("dense", "dense", {}, None),
         ("lsh", "lsh", {"fraction": FRACTION}, FRACTION),
         ("topk", "topk", {"fraction": FRACTION}, FRACTION)]
PHASE_COLS = [f"wall_{p}_s" for p in ("select", "hash", "rehash", "forward", "backward", "update",
                                      "quality", "other")]
COUNT_COLS = ["macs_select", "macs_hash", "macs_rehash", "macs_forward", "macs_backward_input",
              "macs_backward_weight", "macs_total", "macs_dense_equivalent", "macs_quality",
              "hash_adds", "rehash_adds", "hash_compares", "rehash_compares", "bytes_moved",
              "eval_macs_total", "eval_macs_dense_equivalent", "eval_bytes_moved"]


@pytest.fixture(scope="module")
def data():
    return gaussian_clusters(200, 50, n_features=16, seed=3)


def cell(label, method, params=None, fraction=None, *, epochs=2, seed=0, hidden=HIDDEN,
         batch_size=32, **kw):
    """A cell of the runner's tests: ``hidden`` widths, ``epochs`` of batch ``batch_size``."""
    return Cell(label, method, dict(params or {}), fraction, seed=seed,
                network=NetworkSpec(tuple(hidden)),
                training=TrainingSpec(epochs, batch_size), **kw)


def run_all(folder, data, *, seed=7, epochs=2, cells=CELLS, **kw):
    kw.setdefault("energy", "estimate")
    with Runner(folder, scenario={"name": "t"}, **kw) as runner:
        for label, method, params, fraction in cells:
            runner.run(cell(label, method, params, fraction, epochs=epochs, seed=seed,
                            threads=runner.threads), data=data)
    return runner


@pytest.fixture(scope="module")
def estimate_run(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("est") / "run"
    runner = run_all(folder, data)
    return folder, runner


@pytest.fixture(scope="module")
def estimate_df(estimate_run):
    return load_results(estimate_run[0])


# -- rows and run.json -------------------------------------------------------------------------
def test_active_budget_is_sparse():
    from lshprof.nn.layers import active_budget

    assert active_budget(FRACTION, HIDDEN[0]) == 8


def test_one_row_per_method_and_epoch(estimate_run, estimate_df):
    folder, runner = estimate_run
    df = estimate_df
    assert list(zip(df["method"], df["epoch"])) == [(m, e) for m, *_ in CELLS for e in (1, 2)]
    assert list(df["layer_method"]) == [m for _, m, *_ in CELLS for _ in (1, 2)]
    assert set(df["seed"]) == {7}
    assert df["fraction"][:2].isna().all() and (df["fraction"][2:] == FRACTION).all()
    assert [json.loads(p) for p in df["params"][::2]] == [p for *_, p, _ in CELLS]
    assert set(df["hidden"]) == {json.dumps(HIDDEN)}
    assert set(df["n_train"]) == {200} and set(df["n_eval"]) == {50}
    assert set(df["batch_size"]) == {32} and set(df["threads"]) == {1}
    assert len(runner.rows) == 6
    assert [r["method"] for r in runner.rows] == list(df["method"])


def test_run_json_describes_the_run(estimate_run):
    folder, runner = estimate_run
    run = read_run(folder)
    assert run["status"] == "complete" and run["complete"] is True and run["rows"] == 6
    assert run["scenario"] == {"name": "t"}
    assert run["machine"] and "python_version" in run["machine"]
    assert run["threads"]["requested"] == 1
    assert run["threads"]["at_start"] and run["threads"]["at_end"]
    e = run["energy"]
    assert e["backend"] == "estimate" and e["source"] == "estimated"
    assert e["requested"] == "estimate" and e["fallback_reasons"] == []
    assert e["coefficients"] == EnergyModel().coefficients()
    assert "idle" not in e
    assert run["clock_cost_ns"] > 0

    totals = run["totals"]
    assert totals["energy_source"] == "estimated"
    macs = totals["macs"]
    counts = MacCounts(**{k: v for k, v in macs.items() if k != "total"})
    assert macs["total"] == counts.total
    assert totals["energy_j"] == pytest.approx(
        EnergyModel().energy_j(Work.from_counts(counts), totals["wall_s"]), rel=1e-12)
    # the run total holds every measured epoch (train and eval) and the warm-ups too
    measured = sum(r["macs_total"] + r["eval_macs_total"] for r in runner.rows)
    assert macs["total"] > measured
    assert totals["wall_s"] > sum(r["wall_elapsed_s"] for r in runner.rows)
    assert runner.totals == totals


def test_estimated_energy_follows_the_model(estimate_df):
    model = EnergyModel()
    assert model.static_w == 0
    for r in estimate_df.to_dict("records"):
        work = Work(macs=r["macs_total"] + r["macs_quality"],
                    adds=r["hash_adds"] + r["rehash_adds"],
                    compares=r["hash_compares"] + r["rehash_compares"],
                    bytes_moved=r["bytes_moved"])
        assert r["energy_j"] == pytest.approx(model.energy_j(work, r["wall_elapsed_s"]), rel=1e-12)
        assert r["energy_j"] > 0
        assert r["energy_source"] == "estimated" and r["energy_backend"] == "estimate"
        terms = [r[f"energy_{t}_j"] for t in ("macs", "adds", "compares", "memory", "static")]
        assert sum(terms) == pytest.approx(r["energy_j"], rel=1e-12)
        assert r["energy_static_j"] == 0
        if r["layer_method"] != "lsh":  # no hashing: the eval pass is MACs and bytes only
            ev = Work(macs=r["eval_macs_total"], bytes_moved=r["eval_bytes_moved"])
            assert r["eval_energy_j"] == pytest.approx(model.energy_j(ev), rel=1e-12)
        else:
            assert r["macs_hash"] + r["hash_adds"] + r["hash_compares"] > 0
    assert "energy_dynamic_j" not in estimate_df.columns


def test_counts_are_deterministic(tmp_path, data, estimate_df):
    again = load_results(run_all(tmp_path / "again", data).writer.folder)
    for c in COUNT_COLS + ["eval_accuracy", "loss", "train_accuracy"]:
        assert list(again[c]) == list(estimate_df[c]), c
    assert (estimate_df["macs_total"] > 0).all()


# -- phase times -------------------------------------------------------------------------------
def test_phase_times_add_up(estimate_df):
    for r in estimate_df.to_dict("records"):
        assert sum(r[c] for c in PHASE_COLS) == pytest.approx(r["wall_total_s"], abs=1e-9)
        assert all(r[c] >= 0 for c in PHASE_COLS)
        outer = r["wall_elapsed_s"]
        # (1 ms of slack: a busy machine can hold the thread between the outer clock and
        # the phase clock's first push; compilation here takes seconds)
        assert abs(r["wall_total_s"] + r["jit_s"] - outer) <= max(0.01 * outer, 1e-3), r
        assert sum(r[f"eval_{c}"] for c in PHASE_COLS) == pytest.approx(r["eval_wall_total_s"],
                                                                        abs=1e-9)


def test_phases_by_method(estimate_df):
    df = estimate_df
    dense, lsh, topk = (df[df["method"] == m] for m in ("dense", "lsh", "topk"))
    assert (dense["wall_hash_s"] == 0).all() and (dense["wall_rehash_s"] == 0).all()
    assert (dense["macs_select"] == 0).all()
    assert (lsh["wall_hash_s"] > 0).all()
    assert lsh[lsh["epoch"] == 1]["wall_rehash_s"].iloc[0] > 0
    assert (lsh["macs_select"] == 0).all()
    assert (topk["wall_select_s"] > 0).all() and (topk["macs_select"] > 0).all()
    assert (topk["wall_hash_s"] == 0).all()
    for part in (dense, lsh, topk):
        assert (part["wall_forward_s"] + part["wall_backward_s"] > 0).all()
        assert (part["wall_update_s"] > 0).all()


def test_jit_is_kept_out_of_measured_epochs(estimate_df):
    assert "warmup_jit_s" in estimate_df.columns and "warmup_s" in estimate_df.columns
    assert (estimate_df["jit_s"] == 0).all()
    assert (estimate_df["eval_jit_s"] == 0).all()
    assert (estimate_df["warmup_s"] > 0).all()


def test_jit_without_warmup_lands_in_jit_not_phases(tmp_path, root):
    """In a fresh process, nothing is compiled (or loaded from numba's cache) yet."""
    script = textwrap.dedent("""
        import json, sys
        from lshprof.data import gaussian_clusters
        from lshprof.experiment.runner import Runner
        from lshprof.experiment.sweep import Cell, MeasureSpec, NetworkSpec, TrainingSpec
        d = gaussian_clusters(200, 50, n_features=16, seed=3)
        out = {}
        net, tr = NetworkSpec((32,)), TrainingSpec(2, 32)
        with Runner(None, energy="none") as r:
            out["dense"] = r.run(Cell("dense", "dense", network=net, training=tr), data=d).rows
            out["lsh"] = r.run(Cell("lsh", "lsh", {"fraction": 0.25}, network=net, training=tr,
                                    measure=MeasureSpec(warmup=False)), data=d).rows
        json.dump(out, sys.stdout)
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    dense, lsh = out["dense"], out["lsh"]
    assert dense[0]["warmup_jit_s"] > 0  # the warm-up paid for compilation ...
    assert [r["jit_s"] for r in dense] == [0, 0]  # ... so the measured epochs did not
    assert lsh[0]["warmup_s"] == 0 and lsh[0]["warmup_jit_s"] == 0
    assert lsh[0]["jit_s"] > 0 and lsh[1]["jit_s"] == 0
    for r in dense + lsh:
        outer = r["wall_elapsed_s"]
        # (1 ms of slack: a busy machine can hold the thread between the outer clock and
        # the phase clock's first push; compilation here takes seconds)
        assert abs(r["wall_total_s"] + r["jit_s"] - outer) <= max(0.01 * outer, 1e-3)
    # the JIT time is in no phase: epoch 1's phases add up to its elapsed time less the JIT
    assert lsh[0]["wall_total_s"] < lsh[0]["wall_elapsed_s"] - 0.5 * lsh[0]["jit_s"]


# -- instrumentation ----------------------------------------------------------------------------
def test_instrumentation_overhead(estimate_run, estimate_df):
    cost = read_run(estimate_run[0])["clock_cost_ns"]
    for r in estimate_df.to_dict("records"):
        assert r["clock_calls"] > 0
        assert r["instrumentation_s"] == pytest.approx(r["clock_calls"] * cost / 1e9, rel=1e-12)
        assert r["instrumentation_share"] == pytest.approx(
            r["instrumentation_s"] / r["wall_elapsed_s"], rel=1e-12)
        assert 0 < r["instrumentation_share"] < 1


# -- energy backends ------------------------------------------------------------------------------
def test_auto_falls_back_to_estimate_and_says_why(tmp_path, data, monkeypatch):
    pytest.importorskip("lshprof.measure.energy.powercap")
    monkeypatch.setenv("LSHPROF_POWERCAP_ROOT", str(tmp_path / "no-powercap-here"))
    msgs = []
    run_all(tmp_path / "run", data, epochs=1, cells=CELLS[:1], energy="auto",
            notify=msgs.append)
    run = read_run(tmp_path / "run")
    reasons = run["energy"]["fallback_reasons"]
    assert len(reasons) == 1 and "not present" in reasons[0]
    assert run["energy"]["requested"] == "auto"
    assert run["energy"]["backend"] == "estimate" and run["energy"]["source"] == "estimated"
    assert len(msgs) == 1 and reasons[0] in msgs[0] and "estimated" in msgs[0]
    df = load_results(tmp_path / "run")
    assert set(df["energy_source"]) == {"estimated"}


def test_auto_fallback_with_powercap_stubbed(tmp_path, data, monkeypatch):
    """The runner's side of the fallback, whatever the real powercap reader does."""
    import types

    from lshprof.errors import EnergyUnavailable

    class Unavailable:
        def __init__(self, root=None):
            raise EnergyUnavailable(f"no powercap folder at {tmp_path / 'x'}",
                                    reason="not present")

    from lshprof.measure.energy.powercap import resolve_root

    stub = types.ModuleType("lshprof.measure.energy.powercap")
    stub.PowercapMeter = Unavailable
    stub.resolve_root = resolve_root   # the run records the folder it was asked to read
    monkeypatch.setitem(sys.modules, "lshprof.measure.energy.powercap", stub)
    msgs = []
    run_all(tmp_path / "run", data, epochs=1, cells=CELLS[:1], energy="auto",
            notify=msgs.append)
    reasons = read_run(tmp_path / "run")["energy"]["fallback_reasons"]
    assert reasons == [f"powercap unavailable (not present): no powercap folder at {tmp_path / 'x'}"]
    assert len(msgs) == 1 and reasons[0] in msgs[0]
    assert set(load_results(tmp_path / "run")["energy_source"]) == {"estimated"}


class FakeMeter(EnergyMeter):
    """Measures 10 W, always: joules = 10 x the seconds between two marks."""

    name = "fake"
    source = "measured"
    POWER_W = 10.0

    def __init__(self):
        self.readings = []
        self.closed = False

    def mark(self):
        return Mark(now_ns(), None)

    def interval(self, start, end, work=None):
        wall_s = (end.t_ns - start.t_ns) / 1e9
        r = EnergyReading(self.name, self.source, wall_s, self.POWER_W * wall_s,
                          domains={"package": self.POWER_W * wall_s})
        self.readings.append(r)
        return r

    def close(self):
        self.closed = True


@pytest.fixture
def fake_meter(monkeypatch):
    meter = FakeMeter()
    calls = []

    def fake_open(name, **kw):
        calls.append(name)
        return meter, []

    monkeypatch.setattr(runner_mod, "open_meter", fake_open)
    meter.calls = calls
    return meter


def test_measuring_meter(tmp_path, data, fake_meter):
    msgs = []
    runner = run_all(tmp_path / "run", data, cells=CELLS[:2], energy="powercap",
                     notify=msgs.append)
    assert fake_meter.calls == ["powercap"] and fake_meter.closed and msgs == []
    # per epoch: train then eval; then the run total
    assert len(fake_meter.readings) == 2 * 4 + 1
    train = fake_meter.readings[0:8:2]
    evals = fake_meter.readings[1:8:2]
    df = load_results(tmp_path / "run")
    assert list(df["energy_j"]) == [r.energy_j for r in train]
    assert list(df["energy_j"]) == [10.0 * r.wall_s for r in train]
    assert list(df["eval_energy_j"]) == [r.energy_j for r in evals]
    assert list(df["energy_package_j"]) == [r.energy_j for r in train]
    assert set(df["energy_source"]) == {"measured"} and set(df["energy_backend"]) == {"fake"}
    for r, reading in zip(df.to_dict("records"), train):  # the marks sit around the epoch
        assert reading.wall_s >= r["wall_elapsed_s"] - 1e-6
    assert "energy_dynamic_j" not in df.columns and "idle_power_w" not in df.columns
    run = read_run(tmp_path / "run")
    assert run["energy"]["backend"] == "fake" and run["energy"]["source"] == "measured"
    assert run["totals"]["energy_source"] == "measured"
    assert run["totals"]["energy_j"] == fake_meter.readings[-1].energy_j
    assert run["totals"]["energy_j"] == runner.totals["energy_j"]


def test_idle_baseline_with_a_measuring_meter(tmp_path, data, fake_meter):
    run_all(tmp_path / "run", data, epochs=1, cells=CELLS[:2], idle_s=0.05)
    idle_reading = fake_meter.readings[0]
    assert idle_reading.wall_s >= 0.05
    run = read_run(tmp_path / "run")
    idle = run["energy"]["idle"]
    assert idle["power_w"] == pytest.approx(10.0, rel=1e-9)
    assert idle["seconds"] == idle_reading.wall_s and idle["energy_j"] == idle_reading.energy_j
    df = load_results(tmp_path / "run")
    assert df["idle_power_w"].tolist() == pytest.approx([10.0] * len(df), rel=1e-9)
    assert df["energy_dynamic_j"].tolist() == pytest.approx([0.0] * len(df), abs=1e-6)
    assert run["totals"]["energy_dynamic_j"] == pytest.approx(0.0, abs=1e-6)


def test_idle_baseline_with_the_estimate_backend(tmp_path, data):
    msgs = []
    run_all(tmp_path / "run", data, epochs=1, cells=CELLS[:1], idle_s=0.05, notify=msgs.append)
    assert len(msgs) == 1 and "not measured" in msgs[0]
    idle = read_run(tmp_path / "run")["energy"]["idle"]
    assert idle["power_w"] is None and "not measured" in idle["note"]
    df = load_results(tmp_path / "run")
    assert "energy_dynamic_j" not in df.columns and "idle_power_w" not in df.columns
    assert "energy_dynamic_j" not in read_run(tmp_path / "run")["totals"]


def test_energy_none(tmp_path, data):
    run_all(tmp_path / "run", data, epochs=1, cells=CELLS[:2], energy="none")
    df = load_results(tmp_path / "run")
    assert df["energy_j"].isna().all() and df["eval_energy_j"].isna().all()
    assert set(df["energy_source"]) == {"none"}
    run = read_run(tmp_path / "run")
    assert run["energy"]["backend"] == "none" and run["energy"]["source"] == "none"
    assert run["totals"]["energy_j"] is None and run["totals"]["energy_source"] == "none"


# -- interruption and bad input ------------------------------------------------------------------------
def test_ctrl_c_after_one_cell(tmp_path, data):
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        with Runner(folder, scenario={"name": "t"}, energy="estimate") as runner:
            runner.run(cell("dense", "dense"), data=data)
            raise KeyboardInterrupt
    run = read_run(folder)
    assert run["status"] == "interrupted" and run["complete"] is False and run["rows"] == 2
    assert run["totals"]["energy_source"] == "estimated"
    df = load_results(folder)
    assert list(df["epoch"]) == [1, 2] and set(df["run_status"]) == {"interrupted"}
    assert load_results(folder, complete_only=True).empty


def test_error_in_a_cell_marks_the_run_failed(tmp_path, data):
    folder = tmp_path / "run"
    with pytest.raises(ConfigError):
        with Runner(folder, energy="estimate") as runner:
            runner.run(cell("dense", "dense", epochs=1), data=data)
            runner.run(cell("bad", "nosuchmethod", epochs=1), data=data)
    run = read_run(folder)
    assert run["status"] == "failed" and "nosuchmethod" in run["error"]
    assert len(load_results(folder)) == 1


def test_existing_run_folder_is_refused(tmp_path, data, estimate_run):
    with pytest.raises(ResultsError) as ei:
        with Runner(estimate_run[0], energy="estimate"):
            pass
    assert "already holds a run" in str(ei.value)
    assert read_run(estimate_run[0])["status"] == "complete"


def test_unknown_energy_backend(tmp_path):
    with pytest.raises(ConfigError) as ei:
        with Runner(tmp_path / "run", energy="bogus"):
            pass
    msg = str(ei.value)
    assert "bogus" in msg and all(b in msg for b in BACKENDS)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("idle_s", [
    -1, -0.5, "1", True, None,
    math.nan, math.inf,
])
def test_bad_idle_seconds(tmp_path, idle_s):
    with pytest.raises(ConfigError, match="idle"):
        Runner(tmp_path / "run", energy="estimate", idle_s=idle_s)
    assert not (tmp_path / "run").exists()


def test_no_output_folder_measures_without_writing(tmp_path, data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Runner(None, energy="estimate") as runner:
        rows = runner.run(cell("topk", "topk", {"fraction": FRACTION}, FRACTION, epochs=1),
                          data=data).rows
    assert runner.writer is None and len(rows) == 1 and rows[0]["energy_j"] > 0
    assert list(tmp_path.iterdir()) == []


# -- a resume measures as the run it adds to (issue 18) ------------------------------------------------
def _interrupted_run(folder, data, **kw):
    """One finished cell in ``folder``, then Ctrl-C: a run to resume."""
    kw.setdefault("energy", "estimate")
    with pytest.raises(KeyboardInterrupt):
        with Runner(folder, scenario={"name": "t"}, **kw) as runner:
            runner.run(cell("dense", "dense", epochs=1), data=data)
            raise KeyboardInterrupt
    return {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_run_json_records_the_measurement_and_the_data(tmp_path, data, monkeypatch):
    from lshprof.data.digest import split_digest
    from lshprof.experiment.runner import measurement_settings

    monkeypatch.delenv("LSHPROF_POWERCAP_ROOT", raising=False)
    monkeypatch.delenv("LSHPROF_ENERGY_MODEL", raising=False)
    _interrupted_run(tmp_path / "r", data, energy="auto", idle_s=0.0,
                     data_digest=split_digest(data))
    run = read_run(tmp_path / "r")
    assert run["data_digest"] == split_digest(data) and len(run["data_digest"]) == 64
    assert run["measurement"] == {"energy": "auto", "powercap_root": "/sys/class/powercap",
                                  "energy_model": None, "idle_baseline_s": 0.0}
    # a setting that the backend requested does not use is not part of it
    assert measurement_settings("none", powercap_root="/a", energy_model="m.json") == \
        {"energy": "none", "powercap_root": None, "energy_model": None, "idle_baseline_s": 0.0}
    assert measurement_settings("estimate", energy_model="m.json")["energy_model"] == \
        os.path.abspath("m.json")
    monkeypatch.setenv("LSHPROF_POWERCAP_ROOT", "/elsewhere")
    assert measurement_settings("powercap")["powercap_root"] == "/elsewhere"


@pytest.mark.parametrize("change, words", [
    ({"idle_s": 0.05}, "an idle baseline of 0 s, now an idle baseline of 0.05 s"),
    ({"energy_model": "/models/m.json"},
     "the published energy figures (no model file), now energy model /models/m.json"),
    ({"energy": "none"}, "energy backend estimate, now energy backend none"),
    ({"data_digest": "f" * 64}, "whose data differ (data digest "),
])
def test_resume_that_would_measure_otherwise_is_refused(tmp_path, data, change, words):
    from lshprof.data.digest import split_digest

    folder = tmp_path / "r"
    digest = split_digest(data)
    before = _interrupted_run(folder, data, data_digest=digest)
    kw = {"energy": "estimate", "data_digest": digest, **change}
    with pytest.raises(ConfigError) as ei:
        with Runner(folder, scenario={"name": "t"}, resume=True, **kw):
            pass
    msg = str(ei.value)
    assert str(folder) in msg and words in msg and "choose another folder with -o" in msg
    assert "\n" not in msg
    if "data_digest" in change:
        assert f"{digest[:12]} then, {'f' * 12} now" in msg
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    # the same settings resume
    with Runner(folder, scenario={"name": "t"}, resume=True, energy="estimate",
                data_digest=digest) as runner:
        runner.run(cell("topk", "topk", {"fraction": FRACTION}, FRACTION, epochs=1), data=data)
    assert read_run(folder)["status"] == "complete" and read_run(folder)["cells"] == 2


def test_resume_refused_when_auto_would_fall_back(tmp_path, data, fake_meter, monkeypatch):
    """The first cells measured (a powercap meter), the resume would estimate: refused
    before anything is written, naming both backends and why."""
    folder = tmp_path / "r"
    before = _interrupted_run(folder, data, energy="auto")
    monkeypatch.undo()                   # the real auto now: powercap where readable, else
    with pytest.raises(ConfigError) as ei:          # the estimate, with the reason
        with Runner(folder, scenario={"name": "t"}, resume=True, energy="auto"):
            pass
    msg = str(ei.value)
    assert "holds a run whose energy the fake backend gave (measured), but the " in msg
    assert "resume where fake works" in msg and "\n" not in msg
    if "the estimate backend would give it now" in msg:
        assert "powercap unavailable" in msg
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before


def test_older_run_resumes_with_a_notice(tmp_path):
    from lshprof.experiment.runner import check_resume, measurement_settings

    old = {"energy": {"backend": "estimate", "source": "estimated"}}
    notes = check_resume("runs/x", old, measurement=measurement_settings("estimate"),
                         data_digest="a" * 64, backend="estimate")
    assert len(notes) == 2
    assert "before lshprof recorded its measurement settings" in notes[0]
    assert "cannot be checked" in notes[1] and "digest" in notes[1]


def test_full_disk_on_exit_keeps_the_cells_and_says_so(tmp_path, data, monkeypatch):
    """run.json cannot take the totals (the disk filled up during the last cell): one
    ResultsError naming run.json, the cells written stay, the folder is released."""
    from lshprof.experiment.results import lock_holder

    folder = tmp_path / "r"
    with pytest.raises(ResultsError) as ei:
        with Runner(folder, scenario={"name": "t"}, energy="estimate") as runner:
            runner.run(cell("dense", "dense", epochs=1), data=data)

            def full(src, dst):
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(os, "replace", full)
    monkeypatch.undo()
    assert str(ei.value) == (f"cannot write {folder / 'run.json'}: No space left on device; "
                             "free space or choose another folder with -o")
    assert lock_holder(folder) is None and len(load_results(folder)) == 1
