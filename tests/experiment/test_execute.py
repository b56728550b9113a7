"""The execution seam: one cell anywhere, many through any executor, one writer."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle

import pytest

from lshprof.data import gaussian_clusters
from lshprof.errors import ConfigError
from lshprof.experiment import execute
from lshprof.experiment.execute import Progress, run_cell, run_cells, serial
from lshprof.experiment.results import RunWriter, load_results
from lshprof.experiment.sweep import Cell, DataSpec, MeasureSpec, NetworkSpec, TrainingSpec

SPEC = DataSpec("gaussian", {"n_train": 96, "n_test": 32, "n_features": 8, "n_classes": 3}, 5)
COMMON = dict(data=SPEC, network=NetworkSpec((16,)), training=TrainingSpec(2, 32),
              measure=MeasureSpec(energy="none"), scenario="t")
CELLS = [Cell("dense", "dense", seed=1, **COMMON),
         Cell("topk", "topk", {"fraction": 0.25}, 0.25, seed=1, **COMMON),
         Cell("lsh", "lsh", {"fraction": 0.25}, 0.25, seed=1, **COMMON)]
DETERMINISTIC = ("macs_total", "macs_forward", "macs_select", "loss", "eval_accuracy",
                 "layer_active_fraction")


def _strip(rows):
    return [{k: r[k] for k in DETERMINISTIC} for r in rows]


def test_run_cell_is_self_contained_and_quiet(capsys):
    r = run_cell(CELLS[2])
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert [row["epoch"] for row in r.rows] == [1, 2]
    assert all(row["cell"] == CELLS[2].id and row["scenario"] == "t" for row in r.rows)
    assert r.machine["cpu_model"] and r.work.total > sum(row["macs_total"] for row in r.rows)
    assert r.model is None
    pickle.dumps(r)  # a result can travel back from a worker


def test_given_data_and_spec_data_agree():
    data = SPEC.load()
    a = run_cell(CELLS[1], data=data)
    b = run_cell(CELLS[1])
    assert _strip(a.rows) == _strip(b.rows)


def test_a_cell_without_data_says_so():
    with pytest.raises(ConfigError, match="no data spec"):
        run_cell(Cell("dense", "dense"))


def _in_a_process(cell):
    return execute.run_cell(cell)


def process_pool(cells, on_progress):
    """An executor that is not lshprof's: cells in worker processes, results as they come."""
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futures = [pool.submit(_in_a_process, c) for c in cells]
        for f in concurrent.futures.as_completed(futures):
            yield f.result()


def test_any_executor_gives_the_serial_results(tmp_path):
    """The same cells in this process and in two spawned worker processes: identical
    deterministic columns; the store, written only here, holds each cell once."""
    events = []
    here = run_cells(CELLS, executor=serial, on_progress=events.append)
    with RunWriter(tmp_path / "run", {"scenario": {"name": "t"}}) as w:
        w.update(plan=[c.id for c in CELLS])
        there = run_cells(CELLS, w, executor=process_pool)
    assert {r.cell.id: _strip(r.rows) for r in here} == {r.cell.id: _strip(r.rows) for r in there}
    df = load_results(tmp_path / "run")
    assert list(dict.fromkeys(df["cell"])) == [c.id for c in CELLS]  # the plan's order
    kinds = [e.event for e in events]
    assert kinds[0] == "start" and kinds.count("cell") == 3 and kinds.count("done") == 3
    assert "batch" in kinds and events[-1].done == events[-1].total == 3


def test_run_cells_skips_what_the_store_holds(tmp_path):
    with RunWriter(tmp_path / "run", {}) as w:
        run_cells(CELLS[:1], w)
    with RunWriter(tmp_path / "run", {}, resume=True) as w:
        seen = []
        run_cells(CELLS, w, on_progress=seen.append)
    assert seen[0] == Progress("start", done=1, total=3)
    assert sorted(set(load_results(tmp_path / "run")["cell"])) == sorted(c.id for c in CELLS)


def test_two_cells_with_one_id_are_refused():
    with pytest.raises(ConfigError, match="two cells"):
        run_cells([CELLS[0], CELLS[0]])


def test_keep_model_returns_the_trained_model():
    data = gaussian_clusters(64, 16, n_features=8, seed=0)
    r = run_cell(Cell("dense", "dense", network=NetworkSpec((8,)), training=TrainingSpec(1, 16),
                      measure=MeasureSpec(energy="none", warmup=False)), data=data,
                 keep_model=True)
    assert r.model is not None and r.model.n_in == 8
    # a cell of no scenario still says which layers its method replaced (a row's kind)
    assert [row["applied_to"] for row in r.rows] == ["hidden"]
