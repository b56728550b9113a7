"""The hash study's numbers from hand-made rows: settings, the relation of the accuracy gap
to recall, the Pareto front, and the report's three figures."""

import html
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from lshprof.analysis.hashstudy import (PAPER_SETTING, pareto, relation, selection_table,
                                        settings_table)
from lshprof.analysis.summary import cell_table


def rows(settings, seeds=(0, 1)):
    """Rows of a dense cell and of LSH settings ``(label, params, fraction, recall, accuracy,
    macs)`` per seed (seed 1: recall and accuracy 0.01 higher), one epoch each."""
    out = []
    for seed in seeds:
        out.append(dict(method="dense", layer_method="dense", fraction=math.nan, seed=seed,
                        threads=1, epoch=1, eval_accuracy=0.95, loss=0.1, macs_total=1000,
                        macs_dense_equivalent=1000, wall_elapsed_s=1.0, n_train=100,
                        cell=f"dense-{seed}", params="{}"))
        for label, params, fraction, recall, acc, macs in settings:
            d = 0.01 * seed
            out.append(dict(
                method=label, layer_method="lsh", fraction=fraction, seed=seed, threads=1,
                epoch=1, eval_accuracy=acc + d, loss=0.2, macs_total=macs,
                macs_dense_equivalent=1000, wall_elapsed_s=0.5, n_train=100,
                cell=f"{label}-{fraction}-{seed}", params=json.dumps(params),
                layer_selection=json.dumps([{"recall": recall + d, "random_recall": fraction,
                                             "auc_topk": 0.5 + recall / 2}, None])))
    return pd.DataFrame(out)


SETTINGS = [("lsh(K=4)", {"family": "srp", "K": 4, "L": 10}, 0.05, 0.60, 0.90, 100),
            ("lsh(K=6)", {"family": "srp", "K": 6, "L": 100}, 0.05, 0.40, 0.80, 60),
            ("lsh(K=8)", {"family": "wta", "K": 8, "L": 10}, 0.05, 0.20, 0.70, 40),
            ("lsh(K=9)", {"family": "wta", "K": 9, "L": 10}, 0.05, 0.10, 0.60, 80)]


def test_settings_carry_their_parameters_quality_cost_and_gap():
    df = rows(SETTINGS)
    sel = selection_table(df, cell_table(df))
    assert len(sel) == 8                                   # 4 settings x 2 seeds
    s = settings_table(sel).set_index("method")
    k6 = s.loc["lsh(K=6)"]
    assert (k6["family"], k6["K"], k6["L"], k6["seeds"]) == ("srp", 6, 100, 2)
    assert k6["paper"] and PAPER_SETTING == {"family": "srp", "K": 6, "L": 100}
    assert not s.loc["lsh(K=4)", "paper"]
    assert k6["recall"] == pytest.approx(0.405) and k6["recall_sd"] == pytest.approx(
        np.std([0.40, 0.41], ddof=1))
    assert k6["accuracy_gap"] == pytest.approx(-0.145) and k6["mac_share"] == pytest.approx(0.06)
    assert k6["auc_topk"] == pytest.approx(0.7)
    # parameters a setting leaves out are the layer's defaults
    df2 = rows([("lsh", {}, 0.05, 0.5, 0.9, 50)])
    plain = settings_table(selection_table(df2, cell_table(df2))).iloc[0]
    assert (plain["family"], plain["K"], plain["policy"]) == ("srp", 6, "histogram")


def test_relation_of_the_gap_to_recall_is_least_squares_and_spearman():
    df = rows(SETTINGS)
    s = settings_table(selection_table(df, cell_table(df)))
    rel = relation(s)
    x, y = s["recall"].to_numpy(), s["accuracy_gap"].to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    r = np.corrcoef(x, y)[0, 1]
    assert (rel.n, rel.slope, rel.intercept) == (4, pytest.approx(slope), pytest.approx(intercept))
    assert rel.r2 == pytest.approx(r ** 2) and rel.spearman == pytest.approx(1.0)
    assert rel.sentence.startswith("across 4 settings, recall explains R² = ")
    few = relation(s.iloc[:2])
    assert few.n == 2 and math.isnan(few.r2) and "too few" in few.sentence


def test_pareto_front_is_the_settings_nothing_beats():
    s = pd.DataFrame({"mac_share": [0.10, 0.06, 0.04, 0.08, math.nan],
                      "accuracy": [0.90, 0.80, 0.70, 0.60, 0.99]})
    assert pareto(s).tolist() == [True, True, True, False, False]
    # a setting at chance accuracy or below its budget saves nothing: never on the front
    s["flags"] = ["", "", "chance", "", ""]
    assert pareto(s).tolist() == [True, True, False, False, False]


def test_the_report_draws_the_hash_study_only_for_several_settings(tmp_path):
    from lshprof.analysis.report import build_report
    from lshprof.experiment.results import RunWriter

    def write(folder, settings):
        df = rows(settings)
        with RunWriter(folder, {"scenario": {"name": "study"}}) as w:
            for cell_id, g in df.groupby("cell", sort=False):
                w.add_cell(cell_id, g.to_dict("records"))
        return build_report([folder], plotly_src="plotly.min.js")

    page = write(tmp_path / "study", SETTINGS)
    for n in (9, 10, 11):
        assert f'id="plot-{n}"' in page, n
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "across 4 settings, recall explains R² = 0.9" in text
    assert "the paper's own setting (srp, K = 6, L = 100) is the star" in text
    single = write(tmp_path / "one", SETTINGS[:1])     # not a study: no hash-study sections
    assert 'id="plot-9"' not in single and "id=fig-9" not in single
