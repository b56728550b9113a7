"""How much accuracy depends on choosing the right nodes, and what the hash function changes:
the numbers behind the report's hash-study figures, computed from a run's rows.

An LSH *setting* is one LSH label (a scenario's variant or a parameter-grid combination,
``lsh(family=srp,K=4,L=10)``) at one active fraction. For each setting, over its seeds:

* selection quality of its first sparse layer at the last epoch, as the layer measured it
  with ``[measure] quality = true`` (``layer_selection``): recall of the exact top-k, the
  same for a random set of the same size, and, where the layer reports them, the ROC AUC
  and average precision of the hash's ranking and its rank correlation with the true
  pre-activations;
* its cost and its result: MAC share of dense (hashing included) and accuracy gap to dense.

:func:`relation` fits the accuracy gap on recall across settings (least squares) and says
how much of the gap recall explains (R²) and how well they rank together (Spearman's rho).
:func:`pareto` marks the settings no other setting beats on both MAC share and accuracy.
The paper's own setting (the authors' code: signed random projections, K = 6, L = 100,
:data:`PAPER_SETTING`) is marked wherever it was run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lshprof.analysis.flags import join_flags, json_value, split_flags
from lshprof.analysis.summary import finite

__all__ = ["selection_table", "settings_table", "relation", "pareto", "Relation",
           "PAPER_SETTING", "QUALITY_KEYS", "SETTING_KEYS", "is_paper_setting",
           "setting_defaults", "DEGENERATE"]

#: the authors' code's hash setting (RUSH-LAB/LSH_DeepLearning): signed random projections
#: with K = 6 bits per table and L = 100 tables
PAPER_SETTING = {"family": "srp", "K": 6, "L": 100}
#: flags that keep a setting off the Pareto front (a degenerate selection saves nothing)
DEGENERATE = ("below_budget", "chance")
#: the selection-quality figures a setting carries, where the layer measured them
QUALITY_KEYS = ("recall", "random_recall", "mass", "random_mass", "auc_topk", "ap_topk",
                "auc_active", "ap_active", "spearman")
#: the LSH parameters a setting is described by (from its rows' ``params``, else the layer's
#: defaults)
SETTING_KEYS = ("family", "K", "L", "policy", "transform")


def setting_defaults() -> dict:
    """The LSH layer's own values of :data:`SETTING_KEYS` (what a setting that leaves them out
    uses)."""
    from lshprof.nn.lsh.layer import LSH

    return {k: LSH.PARAMS[k] for k in SETTING_KEYS}


def is_paper_setting(row) -> bool:
    """Whether a setting's parameters are the paper's (:data:`PAPER_SETTING`)."""
    return all(row.get(k) == v for k, v in PAPER_SETTING.items())


def selection_table(rows, cells):
    """One row per LSH cell (label x fraction x seed ...): its setting's parameters, its
    first sparse layer's selection quality at the last epoch, its MAC share and accuracy gap
    (from ``cells``, :func:`~lshprof.analysis.summary.cell_table`). Cells whose quality was
    not measured have NaN quality figures."""
    import pandas as pd

    if not len(cells) or "kind" not in cells.columns:
        return pd.DataFrame()
    lsh_cells = cells[cells["kind"] == "lsh"]
    if lsh_cells.empty or "cell" not in rows.columns:
        return pd.DataFrame()
    defaults = setting_defaults()
    out = []
    labels = set(lsh_cells["method"])
    for _, g in rows[rows["method"].isin(labels)].groupby("cell", sort=False):
        g = g.sort_values("epoch")
        last = g.iloc[-1]
        params = json_value(last.get("params"), dict) or {}
        layers = json_value(last.get("layer_selection"), list) or []
        q = next((x for x in layers if isinstance(x, dict)), {}) or {}
        rec = {"method": str(last["method"]), "fraction": float(last["fraction"]),
               "seed": last.get("seed"), "threads": last.get("threads")}
        for k in SETTING_KEYS:
            rec[k] = params.get(k, q.get(k, defaults[k]))
        for k in QUALITY_KEYS:
            v = q.get(k)
            rec[k] = float(v) if finite(v) else math.nan
        match = lsh_cells[(lsh_cells["method"] == rec["method"])
                          & ((lsh_cells["fraction"] - rec["fraction"]).abs() < 1e-12)
                          & (lsh_cells["seed"] == rec["seed"])]
        if "threads" in lsh_cells.columns and finite(rec["threads"]):
            match = match[match["threads"] == rec["threads"]]
        c = match.iloc[0] if len(match) else {}
        for k in ("mac_share", "accuracy", "accuracy_gap"):
            rec[k] = float(c[k]) if len(match) and finite(c[k]) else math.nan
        rec["flags"] = str(c["flags"]) if len(match) and "flags" in match.columns else ""
        rec["paper"] = is_paper_setting(rec)
        out.append(rec)
    return pd.DataFrame(out)


def settings_table(sel):
    """One row per setting (label x fraction): means over seeds of :func:`selection_table`'s
    figures, their deviations (``*_sd``) and the number of seeds."""
    import pandas as pd

    if sel is None or sel.empty:
        return pd.DataFrame()
    figures = [*QUALITY_KEYS, "mac_share", "accuracy", "accuracy_gap"]
    rows = []
    for (method, fraction), g in sel.groupby(["method", "fraction"], sort=False):
        r = {"method": method, "fraction": fraction, "seeds": int(g["seed"].nunique())}
        for k in SETTING_KEYS:
            r[k] = g[k].iloc[0]
        r["paper"] = bool(g["paper"].iloc[0])
        names = set()
        for f in g.get("flags", pd.Series([], dtype=object)):
            names.update(split_flags(f))
        r["flags"] = join_flags(names)
        for k in figures:
            v = pd.to_numeric(g[k], errors="coerce")
            r[k] = float(v.mean(skipna=False))
            r[f"{k}_sd"] = float(v.std(skipna=False)) if len(v) > 1 else math.nan
        rows.append(r)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Relation:
    """The accuracy gap against a selection-quality figure across settings."""

    x: str                  #: the figure (``recall``)
    n: int                  #: settings with both figures
    slope: float
    intercept: float
    r2: float
    spearman: float

    @property
    def sentence(self) -> str:
        if self.n < 3:
            return (f"{self.n} setting(s) with both {self.x} and accuracy measured: too few "
                    "to relate them (3 or more are needed)")
        return (f"across {self.n} settings, {self.x} explains R² = {self.r2:.2f} of the accuracy "
                f"gap to dense (least squares: gap = {self.slope:+.3f} x {self.x} "
                f"{self.intercept:+.3f}; Spearman's rho = {self.spearman:+.2f})")


def relation(settings, x: str = "recall") -> Relation:
    """Least squares of the accuracy gap on ``x`` across ``settings`` (means over seeds),
    with R² and Spearman's rank correlation; NaN figures where fewer than 3 settings (or no
    spread) allow none."""
    import numpy as np

    nan = math.nan
    if settings is None or settings.empty or x not in settings.columns:
        return Relation(x, 0, nan, nan, nan, nan)
    ok = settings[settings[x].map(finite) & settings["accuracy_gap"].map(finite)]
    n = len(ok)
    if n < 3:
        return Relation(x, n, nan, nan, nan, nan)
    xs = ok[x].to_numpy(dtype=float)
    ys = ok["accuracy_gap"].to_numpy(dtype=float)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return Relation(x, n, nan, nan, nan, nan)
    slope, intercept = np.polyfit(xs, ys, 1)
    fit = slope * xs + intercept
    r2 = 1.0 - float(((ys - fit) ** 2).sum()) / float(((ys - ys.mean()) ** 2).sum())
    from scipy.stats import spearmanr

    rho = float(spearmanr(xs, ys).statistic)
    return Relation(x, n, float(slope), float(intercept), r2, rho)


def pareto(settings):
    """A boolean Series over ``settings``: True where no other setting has a MAC share at
    most its own and an accuracy at least its own, one of them strictly (the settings worth
    their multiplications). Settings missing either figure, and degenerate ones (flagged
    ``below_budget`` or ``chance``: their savings are not the method's), are never on the
    front."""
    import pandas as pd

    front = pd.Series(False, index=settings.index)
    if settings.empty:
        return front
    ok = settings[settings["mac_share"].map(finite) & settings["accuracy"].map(finite)]
    if "flags" in ok.columns:
        ok = ok[~ok["flags"].map(lambda f: bool(set(split_flags(f)) & set(DEGENERATE)))]
    for i, r in ok.iterrows():
        beaten = ((ok["mac_share"] <= r["mac_share"]) & (ok["accuracy"] >= r["accuracy"])
                  & ((ok["mac_share"] < r["mac_share"]) | (ok["accuracy"] > r["accuracy"])))
        front[i] = not beaten.any()
    return front
