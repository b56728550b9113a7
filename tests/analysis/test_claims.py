"""Claim verdicts computed from hand-made result tables: one where every claim holds, one where
none does, and the cases where a claim cannot be judged."""

import pandas as pd
import pytest

from lshprof.analysis import claims as C
from lshprof.analysis.summary import summarize


def table(spec, *, source="measured"):
    """Measurement rows, one epoch per cell, from
    ``(label, layer method, fraction, seed, threads, accuracy, MACs, train s, energy J)``;
    dense layers of the same shapes perform 1000 MACs."""
    rows = []
    for label, kind, frac, seed, threads, acc, macs, secs, joules in spec:
        rows.append(dict(method=label, layer_method=kind, fraction=frac, seed=seed,
                         threads=threads, epoch=1, eval_accuracy=acc, loss=0.5,
                         macs_total=macs, macs_dense_equivalent=1000, wall_elapsed_s=secs,
                         n_train=100, energy_j=joules,
                         energy_source=source if joules is not None else "none"))
    return pd.DataFrame(rows)


def verdicts(df):
    return {c.key: c.verdict for c in C.check_claims(summarize(df))}


def by_key(df):
    return {c.key: c for c in C.check_claims(summarize(df))}


N = None
HOLDS = [
    ("dense", "dense", N, 0, 1, 0.950, 1000, 10.0, 100.0),
    ("dense", "dense", N, 1, 1, 0.952, 1000, 10.2, 102.0),
    ("lsh", "lsh", 0.05, 0, 1, 0.944, 50, 0.80, 9.0),
    ("lsh", "lsh", 0.05, 1, 1, 0.948, 50, 0.82, 9.2),
    ("lsh", "lsh", 0.10, 0, 1, 0.950, 100, 1.50, 15.0),
    ("lsh", "lsh", 0.10, 1, 1, 0.951, 100, 1.50, 15.0),
    ("dropout", "dropout", 0.05, 0, 1, 0.900, 50, 0.7, 8.0),
    ("dropout", "dropout", 0.05, 1, 1, 0.902, 50, 0.7, 8.0),
    ("adaptive", "adaptive_dropout", 0.05, 0, 1, 0.930, 500, 6.0, 60.0),
    ("adaptive", "adaptive_dropout", 0.05, 1, 1, 0.931, 500, 6.0, 60.0),
    ("wta", "wta", 0.05, 0, 1, 0.940, 520, 6.2, 61.0),
    ("wta", "wta", 0.05, 1, 1, 0.941, 520, 6.2, 61.0),
    ("wta", "wta", 0.10, 0, 1, 0.945, 550, 6.5, 62.0),
    ("wta", "wta", 0.10, 1, 1, 0.946, 550, 6.5, 62.0),
    # a thread sweep: 4 threads
    ("dense", "dense", N, 0, 4, 0.950, 1000, 3.0, 110.0),
    ("lsh", "lsh", 0.05, 0, 4, 0.944, 50, 0.22, 9.5),
]


def test_every_claim_holds():
    got = by_key(table(HOLDS))
    assert {k: c.verdict for k, c in got.items()} == {
        "macs": C.HOLDS, "accuracy": C.HOLDS, "baselines": C.HOLDS, "time": C.HOLDS,
        "energy": C.HOLDS, "scaling": C.HOLDS}
    assert got["macs"].values == [{"fraction": 0.05, "mac_share": 0.05},
                                  {"fraction": 0.1, "mac_share": 0.1}]
    assert got["accuracy"].values[0]["accuracy_gap"] == pytest.approx(0.946 - 0.951)
    assert "smallest fraction within 1 point: 0.05" in got["accuracy"].measured
    # lsh vs dropout, adaptive and wta at 0.05, and wta at 0.1
    assert len(got["baselines"].values) == 4
    assert "at least as accurate in 4 of 4" in got["baselines"].measured
    # shares are per seed (against that seed's dense cell), then averaged
    time_share = (0.80 / 10.0 + 0.82 / 10.2) / 2
    assert got["time"].values[0]["realized_saving"] == pytest.approx(0.05 / time_share)
    energy_share = (9.0 / 100.0 + 9.2 / 102.0) / 2
    assert got["energy"].values[0]["realized_saving"] == pytest.approx(0.05 / energy_share)
    assert got["scaling"].values == [{"fraction": 0.05, "threads": [1, 4],
                                      "speedup": pytest.approx(0.81 / 0.22),   # seed mean
                                      "efficiency": pytest.approx(0.81 / 0.22 / 4)}]


FAILS = [
    ("dense", "dense", N, 0, 1, 0.950, 1000, 10.0, 100.0),
    ("lsh", "lsh", 0.05, 0, 1, 0.920, 120, 4.0, 50.0),
    ("lsh", "lsh", 0.10, 0, 1, 0.945, 170, 5.0, 60.0),
    ("dropout", "dropout", 0.05, 0, 1, 0.900, 50, 0.7, 8.0),
    ("wta", "wta", 0.05, 0, 1, 0.940, 520, 6.2, 61.0),
    ("lsh", "lsh", 0.05, 0, 2, 0.920, 120, 2.9, 50.0),
]


def test_no_claim_holds():
    got = by_key(table(FAILS))
    assert {k: c.verdict for k, c in got.items()} == {
        "macs": C.FAILS, "accuracy": C.FAILS, "baselines": C.FAILS, "time": C.FAILS,
        "energy": C.FAILS, "scaling": C.FAILS}
    assert "12.0% at fraction 0.05" in got["macs"].measured
    assert "-3.00 points at fraction 0.05" in got["accuracy"].measured
    assert "smallest fraction within 1 point: 0.1" in got["accuracy"].measured
    assert "behind wta at 0.05 (0.920 vs 0.940)" in got["baselines"].measured
    assert "not run: adaptive_dropout" in got["baselines"].measured
    assert got["time"].values[0]["realized_saving"] == pytest.approx(0.12 / 0.4)
    assert got["scaling"].values[0]["efficiency"] == pytest.approx(4.0 / 2.9 / 2)


def test_thresholds_are_inclusive():
    spec = [("dense", "dense", N, 0, 1, 0.95, 1000, 10.0, N),
            ("lsh", "lsh", 0.05, 0, 1, 0.94, 75, 1.5, N)]     # 7.5%, -1 point, saving 0.5
    v = verdicts(table(spec))
    assert (v["macs"], v["accuracy"], v["time"]) == (C.HOLDS, C.HOLDS, C.HOLDS)
    spec[1] = ("lsh", "lsh", 0.05, 0, 1, 0.9399, 76, 1.53, N)
    v = verdicts(table(spec))
    assert (v["macs"], v["accuracy"], v["time"]) == (C.FAILS, C.FAILS, C.FAILS)


def test_estimated_energy_is_not_judged():
    got = by_key(table(HOLDS, source="estimated"))
    assert got["energy"].verdict == C.NOT_MEASURED
    assert "ESTIMATED" in got["energy"].measured and got["energy"].values  # shown, not judged


def test_no_energy_no_sweep_no_baselines():
    spec = [r for r in HOLDS if r[4] == 1 and r[1] in ("dense", "lsh")]
    spec = [r[:-1] + (None,) for r in spec]
    got = by_key(table(spec))
    assert got["energy"].verdict == C.NOT_MEASURED
    assert "not measured in this run" in got["energy"].measured
    assert got["scaling"].verdict == C.NOT_MEASURED and "thread sweep" in got["scaling"].measured
    assert got["baselines"].verdict == C.NOT_MEASURED
    assert got["macs"].verdict == C.HOLDS


def test_without_lsh_or_dense_nothing_is_judged():
    only_dense = table([r for r in HOLDS if r[1] == "dense"])
    assert set(verdicts(only_dense).values()) == {C.NOT_MEASURED}
    no_dense = table([r for r in HOLDS if r[1] != "dense"])
    v = verdicts(no_dense)
    assert v["macs"] == C.HOLDS                      # the MAC share needs no dense run
    assert v["accuracy"] == v["time"] == v["energy"] == C.NOT_MEASURED
    assert v["baselines"] == C.HOLDS


def test_lsh_is_found_by_its_layer_method_not_its_label():
    spec = [("full", "dense", N, 0, 1, 0.95, 1000, 10.0, N),
            ("lsh-dwta", "lsh", 0.05, 0, 1, 0.949, 50, 0.8, N)]
    got = by_key(table(spec))
    assert got["macs"].verdict == C.HOLDS and got["accuracy"].verdict == C.HOLDS
    assert got["time"].verdict == C.HOLDS      # "full" is the dense reference


def test_quality_measurement_time_is_not_the_methods():
    df = table([("dense", "dense", N, 0, 1, 0.95, 1000, 10.0, N),
                ("lsh", "lsh", 0.05, 0, 1, 0.95, 50, 3.0, N)])
    df["wall_quality_s"] = [0.0, 2.0]
    s = summarize(df).set_index("method")
    assert s.loc["lsh", "train_s"] == pytest.approx(1.0)
    assert s.loc["lsh", "time_share"] == pytest.approx(0.1)
    assert s.loc["dense", "train_s"] == pytest.approx(10.0)


def test_scaling_is_judged_on_hogwild_rows_when_the_run_has_them():
    spec = [("dense", "dense", N, 0, 1, 0.95, 1000, 10.0, N),
            ("lsh", "lsh", 0.05, 0, 1, 0.949, 50, 1.0, N),
            ("lsh", "lsh", 0.05, 0, 2, 0.949, 50, 1.0, N),        # sync: no speedup
            ("lsh-hogwild", "lsh", 0.05, 0, 1, 0.949, 50, 1.0, N),
            ("lsh-hogwild", "lsh", 0.05, 0, 2, 0.949, 50, 0.55, N)]  # hogwild: 1.82x
    df = table(spec)
    df["mode"] = ["sync", "sync", "sync", "hogwild", "hogwild"]
    got = by_key(df)["scaling"]
    assert got.values[0]["speedup"] == pytest.approx(1.0 / 0.55)
    assert got.verdict == C.HOLDS and "Hogwild" in got.rule
    got = by_key(df[df["mode"] == "sync"])["scaling"]  # without Hogwild rows: sync's
    assert got.values[0]["speedup"] == pytest.approx(1.0) and got.verdict == C.FAILS


def test_every_claim_says_which_lsh_label_it_judged():
    """Two LSH settings (a scenario's variants or a grid): the claims are judged on the first,
    each says so, and the other's verdicts are noted, not mixed into the figures."""
    spec = [("dense", "dense", N, 0, 1, 0.950, 1000, 10.0, 100.0),
            ("lsh(K=4)", "lsh", 0.05, 0, 1, 0.948, 50, 0.8, 9.0),
            ("lsh(K=8)", "lsh", 0.05, 0, 1, 0.700, 20, 0.5, 5.0)]
    got = by_key(table(spec))
    assert got["macs"].measured == "lsh(K=4): MAC share of dense: 5.0% at fraction 0.05"
    assert got["macs"].values == [{"fraction": 0.05, "mac_share": 0.05}]   # not K=8's 2%
    assert got["accuracy"].verdict == C.HOLDS                          # K=8 is 25 points off
    assert got["accuracy"].notes == ["judged on lsh(K=4), the first of 2 LSH settings; the "
                                     "others: lsh(K=8): does not hold"]
    assert C.lsh_labels(summarize(table(spec))) == ["lsh(K=4)", "lsh(K=8)"]
    # one LSH label: no note, but the label still leads the figures
    one = by_key(table(spec[:2]))
    assert one["accuracy"].notes == [] and one["accuracy"].measured.startswith("lsh(K=4): ")
