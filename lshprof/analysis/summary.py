"""One line per method and active fraction from a run's measurements: what ``lshprof run``
prints at the end, and what reports and checks start from.

Per cell (method x fraction x seed x threads) the training epochs are summed:
MACs, wall time, energy. Then, across seeds, means (and deviations where there
are several). Shares are relative to dense:

* ``mac_share``: the cell's training MACs over what dense layers of the same shapes
  perform on the same batches (``macs_dense_equivalent``), so it needs no dense run;
* ``time_share`` / ``energy_share``: the cell's training time (energy) over the
  ``dense`` cell's at the same seed and thread count (missing without a dense cell);
* ``accuracy_gap``: the cell's final test accuracy minus dense's.

Throughput, for thread sweeps and Hogwild (:mod:`lshprof.nn.hogwild`): ``samples_per_s`` is
the cell's training samples over ``train_s``; ``speedup`` is a summary row's
``samples_per_s`` over that of the same label and fraction at the sweep's fewest threads
(1 in a sweep that starts at 1), so a label's speedup at its fewest threads is 1.
``mode`` is the cell's training mode (``sync`` for runs made before modes existed).

``train_s`` is the wall time of the training passes less the time of the optional
selection-quality measurement (``[measure] quality``), which, like its MACs, is not the
method's work. Energy cannot be split that way: with quality on, a sparse cell's
energy includes that measurement.

``kind`` is the layer method a label stands for (a scenario may label an ``lsh``
layer ``lsh-dwta``): the method of the layers the sweep replaced, hidden or output.
The dense reference is the cell of kind ``dense`` (the one labelled ``dense`` first).
"""

from __future__ import annotations

import math

from lshprof.analysis.flags import cell_flags, epoch_train_s, join_flags, numbers, split_flags
from lshprof.errors import ResultsError
from lshprof.experiment.sweep import CELL_KEYS, DIMENSIONS, REFERENCE_KEYS, SUMMARY_KEYS

__all__ = ["cell_table", "cell_kind", "summarize", "finite", "at_fewest_threads", "sweep_keys",
           "total"]


def sweep_keys(df, keys) -> list[str]:
    """The sweep keys (:mod:`lshprof.experiment.sweep`) among ``keys`` that ``df`` has, with the
    run first when it has a ``run`` column; a key's missing values become its default
    (rows of runs made before a dimension existed) in place."""
    out = ["run"] if "run" in df.columns else []
    for d in DIMENSIONS:
        if d.name not in keys:
            continue
        if d.name not in df.columns:
            if d.default is None:
                continue
            df[d.name] = d.default
        elif d.default is not None:
            df[d.name] = df[d.name].where(df[d.name].notna(), d.default)
        out.append(d.name)
    return out


def finite(x) -> bool:
    """Whether ``x`` is a number that is neither missing, NaN nor infinite."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def at_fewest_threads(df):
    """The rows of ``df`` at its smallest thread count (all of them when none is recorded)."""
    if "threads" not in df.columns or not df["threads"].notna().any():
        return df
    return df[df["threads"] == df["threads"].min()]


def cell_kind(row) -> str:
    """The layer method behind a row's label: the output layer's for methods applied to the
    output layer, else the hidden layers'."""
    applied = row.get("applied_to")
    col = "output_method" if applied == "output" else "layer_method"
    value = row.get(col)
    return str(value) if isinstance(value, str) and value else str(row["method"])


def total(values) -> float:
    """The sum of ``values``, or NaN when there are none or any is missing, NaN or infinite:
    a missing value is never summed as 0."""
    import numpy as np
    import pandas as pd

    v = pd.to_numeric(pd.Series(values), errors="coerce")
    if len(v) == 0 or not np.isfinite(v.to_numpy(dtype=float)).all():
        return math.nan
    return float(v.sum())


def _check_epochs(g, key) -> None:
    """A cell's rows hold each epoch once (a duplicated row would double its time)."""
    if "epoch" not in g.columns:
        return
    dup = g["epoch"][g["epoch"].duplicated()]
    if len(dup):
        where = ", ".join(f"{v}" for v in (key if isinstance(key, tuple) else (key,)))
        raise ResultsError(f"the cell ({where}) has epoch {dup.iloc[0]} more than once: the "
                           "table holds duplicated rows (a run loaded twice, or a copied "
                           "cell file); drop the duplicates (DataFrame.drop_duplicates) or load "
                           "each run once")


def cell_table(df):
    """One row per finished cell: final accuracy and summed training work, time, energy,
    and the cell's flags (:mod:`lshprof.analysis.flags`). A value missing in any epoch makes
    the cell's sum missing (NaN), never a smaller number."""
    import pandas as pd

    if df.empty:
        return pd.DataFrame()
    df = df.copy()
    df["fraction"] = numbers(df, "fraction")
    keys = sweep_keys(df, CELL_KEYS)
    rows = []
    for key, g in df.groupby(keys, dropna=False, sort=False):
        _check_epochs(g, key)
        g = g.sort_values("epoch")
        last = g.iloc[-1]
        flags = cell_flags(g)
        names = {f.name for f in flags}
        energy = numbers(g, "energy_j")
        source = str(last.get("energy_source", "none") or "none")
        energy_j = total(energy) if len(energy) and energy.notna().all() else math.nan
        if "compiled" in names and source != "estimated":
            energy_j = math.nan  # a measured energy that includes numba compilation
        row = dict(zip(keys, key))
        row.update(
            kind=cell_kind(last),
            epochs=int(len(g)),
            accuracy=float(pd.to_numeric(pd.Series([last["eval_accuracy"]]),
                                         errors="coerce").iloc[0]),
            loss=float(pd.to_numeric(pd.Series([last["loss"]]), errors="coerce").iloc[0]),
            macs=total(numbers(g, "macs_total")),
            macs_dense_equivalent=total(numbers(g, "macs_dense_equivalent")),
            # the optional selection-quality measurement is lshprof's, not the method's (its
            # MACs are outside macs_total), and so is numba compilation: both are taken out
            train_s=total(epoch_train_s(g)),
            samples=total(numbers(g, "n_train")),
            energy_j=energy_j,
            energy_source=source,
            flags=join_flags(names),
            flag_notes=" | ".join(f"{f.name}: {f.message}" for f in flags),
        )
        row["mac_share"] = (row["macs"] / row["macs_dense_equivalent"]
                            if finite(row["macs_dense_equivalent"])
                            and row["macs_dense_equivalent"] > 0 else math.nan)
        row["samples_per_s"] = (row["samples"] / row["train_s"]
                                if finite(row["train_s"]) and row["train_s"] > 0 else math.nan)
        rows.append(row)
    cells = pd.DataFrame(rows)
    # relative to the dense cell at the same seed and threads (and run): the keys a method's
    # table does not set
    ref_keys = [k for k in keys if k == "run" or k in REFERENCE_KEYS]
    dense = cells.loc[cells["kind"] == "dense"]
    dense = dense.iloc[(dense["method"] != "dense").argsort(kind="stable")]  # label dense first
    dense = dense[ref_keys + ["train_s", "energy_j", "accuracy"]]
    ref = cells[ref_keys].merge(dense.drop_duplicates(ref_keys), on=ref_keys, how="left")
    refv = ref[["train_s", "energy_j"]].apply(pd.to_numeric, errors="coerce")
    nonzero = refv.where((refv > 0) & refv.map(finite))  # a 0, inf or missing reference: no ratio
    cells["time_share"] = cells["train_s"] / nonzero["train_s"]
    cells["energy_share"] = cells["energy_j"] / nonzero["energy_j"]
    cells["accuracy_gap"] = cells["accuracy"] - ref["accuracy"]
    return cells


def summarize(df, cells=None):
    """One row per (run, method, fraction, threads): means over seeds (``*_sd``: their
    deviations when there are several seeds), in the order the methods first appear.
    ``run`` is a key only when ``df`` has the column (``load_results`` adds it);
    ``cells`` reuses a :func:`cell_table` already made from ``df``."""
    import pandas as pd

    cells = cell_table(df) if cells is None else cells
    if cells.empty:
        return cells
    cells = cells.copy()
    keys = sweep_keys(cells, SUMMARY_KEYS)
    order = {m: i for i, m in enumerate(dict.fromkeys(cells["method"]))}
    runs = {r: i for i, r in enumerate(dict.fromkeys(cells["run"]))} if "run" in keys else {}
    cells = cells.assign(time_per_sample_s=cells["train_s"] / cells["samples"].where(
                             cells["samples"] > 0),
                         energy_per_sample_j=cells["energy_j"] / cells["samples"].where(
                             cells["samples"] > 0))
    rows = []
    for key, g in cells.groupby(keys, dropna=False, sort=False):
        row = dict(zip(keys, key))
        row["kind"] = str(g["kind"].iloc[0])
        row["seeds"] = int(g["seed"].nunique())
        for col in ("accuracy", "accuracy_gap", "mac_share", "time_share", "energy_share",
                    "train_s", "energy_j", "macs", "samples", "time_per_sample_s",
                    "energy_per_sample_j", "samples_per_s"):
            # a seed whose value is missing makes the mean missing, not the mean of the rest
            v = pd.to_numeric(g[col], errors="coerce")
            row[col] = float(v.mean(skipna=False))
            if col not in ("macs", "samples"):  # deterministic at a fixed data set
                row[f"{col}_sd"] = float(v.std(skipna=False)) if len(g) > 1 else math.nan
        row["energy_source"] = ", ".join(sorted(set(g["energy_source"])))
        names = set()
        for f in g["flags"]:
            names.update(split_flags(f))
        row["flags"] = join_flags(names)
        row["flag_notes"] = " | ".join(dict.fromkeys(
            n for t in g["flag_notes"] if isinstance(t, str) and t for n in t.split(" | ")))
        row["macs_per_sample"] = row["macs"] / row["samples"] if row["samples"] else math.nan
        rows.append(row)
    out = pd.DataFrame(rows)
    out["speedup"] = _speedup(out, [k for k in keys if k != "threads"])
    out["_order"] = out["method"].map(order)
    sort = ["threads", "_order", "fraction"]
    if runs:
        out["_run"] = out["run"].map(runs)
        sort = ["_run"] + sort
    out = out.sort_values(sort, na_position="first")
    return out.drop(columns=[c for c in ("_order", "_run") if c in out]).reset_index(drop=True)


def _speedup(out, keys):
    """``samples_per_s`` over that of the row with the same ``keys`` (run, label, fraction)
    at the fewest threads (nan without a thread count or a throughput there)."""
    import pandas as pd

    speedup = pd.Series(math.nan, index=out.index, dtype=float)
    if "threads" not in out.columns:
        return speedup
    threads = pd.to_numeric(out["threads"], errors="coerce")
    for _, g in out.assign(_t=threads).groupby(keys, dropna=False, sort=False):
        g = g[g["_t"].notna()]
        if g.empty:
            continue
        base = g.loc[g["_t"].idxmin(), "samples_per_s"]
        if finite(base) and base > 0:
            speedup.loc[g.index] = g["samples_per_s"] / base
    return speedup
