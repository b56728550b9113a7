"""Figures that could be wrong without a word are flagged, left out or marked missing: numba
compilation inside a measured epoch, a degenerate selection, chance accuracy, a busy machine,
an energy caveat, missing values, duplicated rows and smoke runs. Hand-made rows, exact
expectations."""

import json
import math

import pandas as pd
import pytest

from lshprof.analysis import claims as C
from lshprof.analysis.flags import (BUSY_MARGIN_CORES, SMOKE_NOTE, cell_flags, epoch_train_s,
                                    join_flags, smoke_note, split_flags, timing_unstable)
from lshprof.analysis.summary import cell_table, summarize
from lshprof.errors import ResultsError
from lshprof.names import CELL_FLAGS


def row(method="lsh", kind=None, fraction=0.05, seed=0, **kw):
    r = dict(method=method, layer_method=kind or method, fraction=fraction, seed=seed,
             threads=1, epoch=1, eval_accuracy=0.9, loss=0.3, macs_total=50,
             macs_dense_equivalent=1000, wall_elapsed_s=1.0, n_train=100, n_eval=1000,
             energy_j=10.0, energy_source="measured", cell=f"{method}-{fraction}-{seed}")
    if method == "dense":
        r.update(fraction=math.nan, macs_total=1000, wall_elapsed_s=2.0, energy_j=20.0)
    r.update(kw)
    return r


def names(rows) -> list[str]:
    return [f.name for f in cell_flags(pd.DataFrame(rows))]


# -- compile time -----------------------------------------------------------------------------------
def test_compile_time_is_left_out_of_time_and_flagged():
    # the reported case: 2.4 s of compilation inside a 2.6 s measured epoch
    df = pd.DataFrame([row("dense"), row("lsh", wall_elapsed_s=2.6, jit_s=2.4)])
    cells = cell_table(df)
    lsh = cells[cells["method"] == "lsh"].iloc[0]
    assert lsh["train_s"] == pytest.approx(0.2)           # not 2.6
    assert lsh["time_share"] == pytest.approx(0.1)        # 0.2 / 2.0, not 1.3
    assert split_flags(lsh["flags"]) == ["compiled"]
    assert "2.4 s of numba compilation inside measured epoch(s) 1" in lsh["flag_notes"]
    # a measured energy of that epoch includes the compilation: not a figure
    assert math.isnan(lsh["energy_j"]) and math.isnan(lsh["energy_share"])
    # an estimate follows the counted work, so it stays (flagged)
    est = cell_table(pd.DataFrame([row("lsh", jit_s=0.5, energy_source="estimated")]))
    assert est["energy_j"].iloc[0] == 10.0 and est["flags"].iloc[0] == "compiled"


def test_compile_time_in_evaluation_is_flagged_too():
    assert names([row(eval_jit_s=0.01)]) == ["compiled"]
    assert names([row(jit_s=0.0, eval_jit_s=0.0)]) == []


def test_hogwild_epoch_that_compiled_has_no_time():
    g = pd.DataFrame([row(mode="hogwild", jit_s=0.3, wall_elapsed_s=1.0),
                      row(mode="hogwild", jit_s=0.0, wall_elapsed_s=1.0, epoch=2)])
    t = epoch_train_s(g)
    assert math.isnan(t.iloc[0]) and t.iloc[1] == 1.0
    assert math.isnan(cell_table(g)["train_s"].iloc[0])   # the cell's time is missing, not 1.0


def test_epoch_time_takes_out_quality_and_never_invents_a_number():
    g = pd.DataFrame([row(wall_elapsed_s=1.0, wall_quality_s=0.25, jit_s=0.25),
                      row(epoch=2, wall_elapsed_s=math.inf),
                      row(epoch=3, wall_elapsed_s=None)])
    t = epoch_train_s(g).tolist()
    assert t[0] == 0.5 and math.isnan(t[1]) and math.isnan(t[2])


# -- degenerate selections ----------------------------------------------------------------------------
DWTA_SELECTION = {"queries": 1200, "chosen_per_query": 0.21, "short_fraction": 1.0,
                  "empty_bucket_fraction": 0.9958, "recall": 0.0, "random_recall": 0.0,
                  "quality_queries": 1200}


def test_a_layer_far_below_its_budget_is_flagged_with_its_cause():
    r = row(layer_active_fraction=json.dumps([0.00021, 1.0]),
            layer_selection=json.dumps([DWTA_SELECTION, None]))
    fl = cell_flags(pd.DataFrame([r]))
    assert [f.name for f in fl] == ["below_budget", "random_recall"]
    msg = fl[0].message
    assert msg.startswith("layer 1 computed 0.021% of its nodes against a budget of 0.05: ")
    assert "lower K" in msg or "K=" in msg                  # the likely fix is named
    assert "recalled 0.000 of the exact top-k" in fl[1].message


@pytest.mark.parametrize("active, flagged", [(0.05, False), (0.026, False), (0.024, True),
                                             (1.0, False)])
def test_budget_rule_is_half_the_budget(active, flagged):
    r = row("topk", layer_active_fraction=json.dumps([active, 1.0]))
    assert names([r]) == (["below_budget"] if flagged else [])


def test_recall_above_random_is_not_flagged():
    sel = dict(DWTA_SELECTION, recall=0.4, random_recall=0.05, short_fraction=0.0)
    assert names([row(layer_active_fraction="[0.05, 1.0]",
                      layer_selection=json.dumps([sel, None]))]) == []


def test_chance_accuracy_is_flagged():
    # 0.498 on a test set whose majority class is 0.504: nothing learned
    assert names([row(eval_accuracy=0.498, chance_accuracy=0.504, n_eval=500)]) == ["chance"]
    # clearly above chance (two standard errors at 500 samples are 4.5 points)
    assert names([row(eval_accuracy=0.56, chance_accuracy=0.504, n_eval=500)]) == []
    assert names([row(eval_accuracy=0.54, chance_accuracy=0.504, n_eval=500)]) == ["chance"]
    # runs made before the column existed: no rule, no flag
    assert names([row(eval_accuracy=0.1)]) == []


def test_degenerate_operating_point_is_not_a_saving():
    df = pd.DataFrame([row("dense"), row("dense", seed=1),
                       row(layer_active_fraction="[0.0002, 1.0]", wall_elapsed_s=0.1),
                       row(seed=1, layer_active_fraction="[0.0002, 1.0]", wall_elapsed_s=0.1)])
    got = {c.key: c for c in C.check_claims(summarize(df))}
    assert got["macs"].verdict == C.NOT_MEASURED
    assert "degenerate at the operating point (fraction 0.05)" in got["macs"].measured
    assert got["time"].verdict == C.NOT_MEASURED
    assert any("below_budget" in n for n in got["accuracy"].notes)


# -- busy machines ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("other, cores, threads, busy", [
    (1.0, 2, 1, True),      # a neighbour took the one free core
    (0.3, 2, 1, False),     # background noise
    (0.6, 2, 2, True),      # every core was the cell's
    (8.0, 16, 1, False),    # plenty of free cores left
    (15.0, 16, 1, True),
])
def test_busy_machine_rule(other, cores, threads, busy):
    assert BUSY_MARGIN_CORES == 0.5
    r = row(threads=threads, other_cpu_cores=other, machine_cores=cores)
    assert names([r]) == (["busy"] if busy else [])
    if busy:
        (f,) = cell_flags(pd.DataFrame([r]))
        assert f.message.startswith(f"unstable timing: other processes used {other:.2f} cores")
        assert timing_unstable(f.name) == ["busy"]


# -- energy caveats ----------------------------------------------------------------------------------------
def test_a_measured_energy_caveat_is_flagged_an_estimates_label_is_not():
    note = "package-0 may have wrapped unseen"
    assert names([row(energy_note=note)]) == ["energy"]
    assert note in cell_flags(pd.DataFrame([row(energy_note=note)]))[0].message
    assert names([row(energy_note="estimated from a per-operation model, not measured",
                      energy_source="estimated")]) == []


# -- missing values ----------------------------------------------------------------------------------------
def test_a_missing_mac_count_is_missing_not_zero_and_judges_nothing():
    df = pd.DataFrame([row("dense"), row(macs_total=None), row(fraction=0.1, macs_total=100)])
    cells = cell_table(df)
    assert math.isnan(cells.loc[cells["fraction"] == 0.05, "macs"].iloc[0])
    macs = {c.key: c for c in C.check_claims(summarize(df))}["macs"]
    # the operating point stays at 0.05: its missing figure is not replaced by 0.1's
    assert macs.verdict == C.NOT_MEASURED
    assert "missing at the operating point (fraction 0.05" in macs.measured


def test_an_infinite_dense_time_gives_no_ratio():
    df = pd.DataFrame([row("dense", wall_elapsed_s=math.inf), row()])
    s = summarize(df)
    assert s["time_share"].isna().all()                   # not 0.00x
    assert {c.key: c.verdict for c in C.check_claims(s)}["time"] == C.NOT_MEASURED


def test_a_seed_with_a_missing_value_makes_the_mean_missing():
    df = pd.DataFrame([row("dense"), row("dense", seed=1), row(), row(seed=1, eval_accuracy=None)])
    s = summarize(df)
    assert math.isnan(s.loc[s["method"] == "lsh", "accuracy"].iloc[0])


def test_duplicated_rows_are_refused():
    df = pd.DataFrame([row("dense"), row(), row()])
    with pytest.raises(ResultsError, match="epoch 1 more than once"):
        summarize(df)


# -- smoke runs ------------------------------------------------------------------------------------------
def test_smoke_runs_are_marked_with_the_sizes_they_used():
    meta = {"scenario": {"settings": {"quick_applied": True},
                         "data_shape": {"n_train": 1200, "n_test": 500}}}
    rows = pd.DataFrame([row("dense"), row()])
    note = smoke_note(meta, rows)
    assert note == (SMOKE_NOTE + " (used: 1200 train / 500 test samples, 1 epoch(s), "
                    "fractions 0.05, 1 seed(s))")
    assert smoke_note({"scenario": {"settings": {"quick_applied": False}}}) is None
    for c in C.check_claims(summarize(rows), smoke=note):
        assert c.notes[0] == note
        assert c.as_dict()["notes"][0] == note


def test_flag_names_are_one_list():
    assert join_flags(["busy", "compiled"]) == "compiled;busy"
    assert split_flags("compiled;busy") == ["compiled", "busy"] and split_flags(None) == []
    assert set(CELL_FLAGS) >= {"compiled", "below_budget", "random_recall", "chance", "busy",
                               "energy"}


def test_a_measured_epoch_without_a_figure_leaves_the_cell_without_energy():
    # a counter that stepped back: the reading says so and has no joules (energy_j None)
    note = "counter reset or stepped back on package-0 (...): no measurement for this interval"
    df = pd.DataFrame([row("dense"), row(), row(epoch=2, energy_j=None, energy_note=note)])
    cells = cell_table(df)
    lsh = cells[cells["method"] == "lsh"].iloc[0]
    assert math.isnan(lsh["energy_j"]) and math.isnan(lsh["energy_share"])
    assert lsh["flags"] == "energy" and note in lsh["flag_notes"]
    assert {c.key: c.verdict for c in C.check_claims(summarize(df))}["energy"] == C.NOT_MEASURED


def test_the_report_says_smoke_run_and_lists_every_flagged_cell(tmp_path):
    """A smoke run's page says so in its header, above the claims and beside every verdict,
    shows the sizes its rows were measured with, and lists each flagged cell with its
    notes; the run table prints the same."""
    import re

    from lshprof.analysis.report import build_report
    from lshprof.cli.run import print_summary
    from lshprof.experiment.results import RunWriter

    meta = {"scenario": {"name": "tiny", "description": "at 5%, 10% and 25% active, two seeds",
                         "settings": {"quick_applied": True},
                         "data_shape": {"n_train": 100, "n_test": 1000}}}
    cells = {"dense": [row("dense", epoch=e) for e in (1, 2)],
             "lsh": [row(epoch=e, jit_s=0.5 * (e == 1), wall_elapsed_s=1.5,
                         layer_active_fraction="[0.0002, 1.0]") for e in (1, 2)]}
    with RunWriter(tmp_path / "run", meta) as w:
        for cell_id, rows in cells.items():
            for r in rows:
                r["cell"] = cell_id
            w.add_cell(cell_id, rows)
    page = build_report([tmp_path / "run"], plotly_src="plotly.min.js")
    text = re.sub(r"<[^>]+>", " ", page)
    assert "SMOKE RUN (--quick): the sizes above were reduced" in text
    assert "2 epoch(s), fractions 0.05, 1 seed(s), 100 training samples per epoch" in text
    assert text.count(SMOKE_NOTE) >= 1 + 6          # the banner and each of the six claims
    assert "1 of 2 cells are flagged" in text
    assert 'data-flags="compiled;below_budget"' in page
    assert "0.5 s of numba compilation inside measured epoch(s) 1" in text
    print_summary(tmp_path / "run")


def test_the_run_table_marks_smoke_runs_and_flags(tmp_path, capsys):
    test_the_report_says_smoke_run_and_lists_every_flagged_cell(tmp_path)
    out = capsys.readouterr().out
    assert "SMOKE RUN (--quick): sizes reduced; verdicts are not evidence" in out
    assert "compiled (lsh @ 0.05): 0.5 s of numba compilation" in out
    assert "below_budget (lsh @ 0.05): layer 1 computed 0.020% of its nodes" in out
    # the time of the flagged cell is without its compilation: (1.5 - 0.5) + 1.5
    assert " 2.50 " in out
