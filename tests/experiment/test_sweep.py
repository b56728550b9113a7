"""The cell: its keys defined once, its id stable, and a description that ships."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from lshprof.experiment import sweep
from lshprof.experiment.scenario import load_scenario
from lshprof.experiment.sweep import (CELL_KEYS, DIMENSIONS, REFERENCE_KEYS, SUMMARY_KEYS, Cell,
                                      DataSpec, cell_id)


def test_keys_come_from_the_dimensions():
    assert CELL_KEYS == ("method", "fraction", "seed", "threads", "mode")
    assert SUMMARY_KEYS == ("method", "fraction", "threads", "mode")  # the seed is averaged
    assert REFERENCE_KEYS == ("seed", "threads")  # dense at the same seed and threads
    assert [d.name for d in DIMENSIONS] == list(CELL_KEYS)


@pytest.mark.parametrize("key, text", [
    ({"method": "lsh", "fraction": 0.05, "seed": 0, "threads": 1},
     "lsh|fraction=0.05|seed=0|threads=1"),
    ({"method": "dense", "fraction": None, "seed": 2, "threads": 4, "mode": "sync"},
     "dense|fraction=-|seed=2|threads=4"),
    ({"method": "lsh", "fraction": 0.125, "seed": 1, "threads": 2, "mode": "hogwild"},
     "lsh|fraction=0.125|seed=1|threads=2|mode=hogwild"),
    ({"method": "wta", "fraction": 1, "seed": 0, "threads": 1}, "wta|fraction=1.0|seed=0|threads=1"),
])
def test_cell_ids_keep_their_old_spelling(key, text):
    assert cell_id(key) == text


def test_a_new_dimension_is_one_entry(monkeypatch):
    """Adding a dimension to DIMENSIONS is what a new sweep key takes: ids carry it when it
    is off its default, and the key lists follow."""
    dims = (*DIMENSIONS, sweep.Dimension("K", per_method=True, default=6))
    monkeypatch.setattr(sweep, "DIMENSIONS", dims)
    assert sweep.cell_id({"method": "lsh", "fraction": 0.05, "seed": 0, "threads": 1, "K": 8}) \
        == "lsh|fraction=0.05|seed=0|threads=1|K=8"
    assert sweep.cell_id({"method": "lsh", "fraction": 0.05, "seed": 0, "threads": 1}) \
        == "lsh|fraction=0.05|seed=0|threads=1"


def test_scenario_cells_are_self_contained_and_pickle():
    scen = load_scenario("ci")
    cells = scen.cells()
    assert len({c.id for c in cells}) == len(cells) == 18
    for c in cells:
        assert c.data == DataSpec(scen.model.data.dataset, scen.data_options, scen.model.data.seed)
        assert c.network.hidden == tuple(scen.model.network.hidden)
        assert c.training.epochs == scen.model.training.epochs
        assert c.scenario == "ci"
        back = pickle.loads(pickle.dumps(c))
        assert back == c and back.id == c.id
        assert c.key == {k: getattr(c, "label" if k == "method" else k) for k in CELL_KEYS}


def test_data_spec_rebuilds_the_same_arrays():
    scen = load_scenario("ci")
    spec = scen.cells()[0].data
    a, b = spec.load(), pickle.loads(pickle.dumps(spec)).load()
    assert (a.X_train == b.X_train).all() and (a.y_test == b.y_test).all()


def test_layers_follow_apply_to():
    c = Cell("lsh", "lsh", {"fraction": 0.1}, 0.1)
    assert c.layers["method"] == "lsh" and c.layers["output_method"] == "dense"
    out = dataclasses.replace(c, network=sweep.NetworkSpec((64,), apply_to="output"))
    assert out.layers == {"method": "dense", "params": {}, "output_method": "lsh",
                          "output_params": {"fraction": 0.1}}
    assert out.id == c.id and out.description == "lsh @ 0.1, seed 0, 1 thr"
