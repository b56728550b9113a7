"""``lshprof report``: one self-contained, interactive HTML page of one or more runs.

The page holds a header (scenario, date, version, machine, threads, energy source),
the paper's claims with verdicts computed from the data (:mod:`lshprof.analysis.claims`),
eight plotly figures, the raw numbers in sortable tables, and each run's metadata.
It works offline: plotly.js is embedded once (or written beside the page once, with
``plotlyjs="beside"``), and nothing is fetched from any host. Every text that comes
from a scenario file, a folder name or a run's metadata is escaped, in the page and
in the figures. A figure whose measurements are missing (no energy backend, no LSH
quality, one run) is replaced by a "not measured" box that says why, never by an
empty plot. Energy that is estimated is labelled so next to every figure it is in.

Figures, by number (section ids ``fig-1`` ... ``fig-8``):

1. test accuracy vs active fraction, one line per method, dense as reference;
2. training MACs per sample by method and phase (stacked, linear or log scale);
3. training wall time by method and phase (stacked), and time per sample;
4. energy per sample by method, and energy vs MACs;
5. realized saving: time and energy share vs MAC share, with the ideal diagonal;
6. LSH selection quality: recall of the true top-k and activation mass captured,
   with a random set of the same size as baseline;
7. training curves: loss and test accuracy per epoch;
8. several runs side by side (accuracy, MAC share, time share, energy share).

With several runs, figures 1-7 show one run at a time, with a menu to switch.
"""

from __future__ import annotations

import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from lshprof.experiment.sweep import AXIS_KEY, CELL_KEYS, SERIES_KEYS, SUMMARY_KEYS, series_name
from lshprof.names import PLOTLYJS_MODES
from lshprof.errors import ConfigError
from lshprof.analysis.summary import at_fewest_threads, finite
from lshprof.measure.timing import TIME_PHASES

__all__ = ["build_report", "write_report", "FIGURES", "PLOTLYJS_MODES", "default_report_path"]

REPORTS_DIR = "reports"

FIGURES = {
    1: "Accuracy vs active fraction",
    2: "Multiply-accumulates per training sample, by phase",
    3: "Training wall time, by phase, and time per sample",
    4: "Energy per training sample, and energy vs MACs",
    5: "Realized saving: time and energy share vs MAC share",
    6: "LSH selection quality vs active fraction",
    7: "Training curves",
    8: "Runs compared",
    9: "Hash study: accuracy gap against selection quality",
    10: "Hash study: MAC share against accuracy (the settings worth their multiplications)",
    11: "Hash study: selection quality over the epochs, per hash family",
}

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")
PHASE_COLORS = dict(zip(TIME_PHASES + ("backward_input", "backward_weight"),
                        ("#9467bd", "#e377c2", "#8c564b", "#1f77b4", "#ff7f0e", "#2ca02c",
                         "#bcbd22", "#7f7f7f", "#ff7f0e", "#ffbb78")))
ESTIMATED_NOTE = ("Energy here is ESTIMATED from a per-operation model (lshprof.measure.energy.estimate), "
                  "not measured: no readable RAPL counters were available to the run.")


def esc(text: Any) -> str:
    """``text`` safe to put in the page or in a plotly label (plotly reads entities back
    as characters and shows them as text)."""
    return html.escape(str(text), quote=True)


def _num(x) -> float | None:
    return float(x) if finite(x) else None


# -- the data behind the page -----------------------------------------------------------------
@dataclass
class Run:
    """One run's tables and metadata."""

    key: str
    meta: dict
    rows: Any            # its measurement rows
    cells: Any           # summary.cell_table
    summary: Any         # summary.summarize
    claims: list = field(default_factory=list)
    #: the hash study's relation of accuracy to selection quality, in words (figure 9)
    study_sentence: str = ""
    #: the hash study's settings, or why there are none (``_study``, once per run)
    study: tuple | None = None

    @property
    def scenario(self) -> dict:
        return self.meta.get("scenario") or {}

    @property
    def name(self) -> str:
        return str(self.scenario.get("name") or self.key)

    @property
    def energy_source(self) -> str:
        return str((self.meta.get("energy") or {}).get("source") or "none")


def _load(paths) -> list[Run]:
    from lshprof.analysis.claims import check_claims
    from lshprof.analysis.flags import smoke_note
    from lshprof.experiment.results import load_results
    from lshprof.analysis.summary import cell_table, summarize

    df = load_results(paths)
    runs = []
    for key, meta in df.attrs["runs"].items():
        rows = df[df["run"] == key] if "run" in df.columns else df.iloc[0:0]
        if rows.empty:
            runs.append(Run(key, meta, rows, rows, rows))
            continue
        cells = cell_table(rows)
        summary = summarize(rows, cells=cells)
        runs.append(Run(key, meta, rows, cells, summary,
                        check_claims(summary, smoke=smoke_note(meta, rows))))
    if not any(len(r.rows) for r in runs):
        where = ", ".join(str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike))
                                           else paths))
        raise ConfigError(f"{where}: no finished measurements to report yet; let the run finish "
                          "at least one epoch (or resume it with lshprof run ... -o DIR)")
    return runs


def _series(df, *, extra: tuple[str, ...] = ()):
    """``(name, label, rows)`` per line of a figure: the rows of ``df`` grouped by the sweep's
    series keys (:data:`lshprof.experiment.sweep.SERIES_KEYS`) and ``extra``, in order of
    appearance; ``label`` is the method's label (it picks the line's colour)."""
    keys = [k for k in SERIES_KEYS + extra if k in df.columns]
    for values, g in df.groupby(keys, dropna=False, sort=False):
        key = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        yield series_name(key), key["method"], g


def _label(r) -> str:
    """``method`` or ``method f=0.05`` (and ``@2t`` in a thread sweep) for a summary row."""
    text = str(r["method"])
    if finite(r.get("fraction")):
        text += f" f={float(r['fraction']):g}"
    return text


def _with_threads(summary) -> bool:
    return "threads" in summary.columns and summary["threads"].nunique() > 1


def _row_label(r, threads: bool) -> str:
    text = _label(r)
    if threads and finite(r.get("threads")):
        text += f" @{int(r['threads'])}t"
    return esc(text)


def _method_colors(runs: list[Run]) -> dict[str, str]:
    names: list[str] = []
    for run in runs:
        for m in run.summary.get("method", []):
            if m not in names:
                names.append(m)
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(names)}


# -- figures ----------------------------------------------------------------------------------
@dataclass
class Missing:
    """A figure that cannot be drawn, and why."""

    why: str


def _go():
    import plotly.graph_objects as go

    return go


def _sd(values) -> list | None:
    vals = [_num(v) for v in values]
    return vals if any(v is not None for v in vals) else None


def _fig1_accuracy(run: Run, colors) -> list | Missing:
    go = _go()
    s = run.summary
    if s.empty or not s["accuracy"].map(finite).any():
        return Missing("no test accuracy was recorded")
    s = at_fewest_threads(s)
    swept = s[s["fraction"].notna()]
    traces = []
    # the reference spans the swept fractions up to 1 (every node active, as dense)
    fmin = float(swept["fraction"].min()) if len(swept) else 0.01
    fmax = 1.0
    for series, method, g in _series(s):
        g = g.sort_values("fraction")
        name = esc(series)
        if g["fraction"].isna().all():  # dense (or a method with its own setting): a reference
            acc, sd = float(g["accuracy"].iloc[0]), _num(g["accuracy_sd"].iloc[0])
            traces.append(go.Scatter(
                x=[fmin, fmax], y=[acc, acc], mode="lines", name=f"{name} (reference)",
                line=dict(color=colors[method], dash="dash"),
                hovertemplate=f"{name}: accuracy %{{y:.4f}}" + (f" ± {sd:.4f}" if sd else "")
                + "<extra></extra>"))
            continue
        traces.append(go.Scatter(
            x=list(g["fraction"]), y=list(g["accuracy"]), mode="lines+markers", name=name,
            line=dict(color=colors[method]),
            error_y=dict(type="data", array=_sd(g["accuracy_sd"]), visible=True),
            customdata=list(zip(g["seeds"], g["accuracy_gap"].fillna(float("nan")))),
            hovertemplate=f"{name}<br>active fraction %{{x:g}}<br>test accuracy %{{y:.4f}}"
                          "<br>vs dense %{customdata[1]:+.4f}<br>seeds %{customdata[0]}"
                          "<extra></extra>"))
    return traces


def _fig1_layout():
    return dict(xaxis=dict(title="active fraction (share of nodes computed)", type="log"),
                yaxis=dict(title="test accuracy (after the last epoch)"),
                updatemenus=[_axis_menu("xaxis", "x scale", x=0.0)])


def _axis_menu(axis: str, label: str, *, x: float, y: float = 1.18) -> dict:
    return dict(type="buttons", direction="right", x=x, y=y, xanchor="left", yanchor="top",
                showactive=True, buttons=[
                    dict(label=f"{label}: log", method="relayout", args=[{f"{axis}.type": "log"}]),
                    dict(label="linear", method="relayout", args=[{f"{axis}.type": "linear"}])])


def _phase_bars(run: Run, phases, column: str, *, per_sample: bool, name, hover: str):
    """``(labels, stacked bars)``: one bar per summary row, one trace per phase that is ever
    non-zero; ``column`` names a phase's column (``"macs_{}"``), ``name`` a phase's label."""
    go = _go()
    s = run.summary
    keys = [k for k in SUMMARY_KEYS if k in s.columns and k in run.rows.columns]
    phase = _phase_means(run.rows, keys, [column.format(p) for p in phases],
                         per_sample=per_sample)
    threads = _with_threads(s)
    labels = [_row_label(r, threads) for _, r in s.iterrows()]
    traces = []
    for p in phases:
        ys = [phase.get(_key(r, keys), {}).get(column.format(p)) for _, r in s.iterrows()]
        if any(y for y in ys):
            traces.append(go.Bar(x=labels, y=ys, name=name(p), marker_color=PHASE_COLORS.get(p),
                                 hovertemplate="%{x}<br>" + name(p) + hover))
    return labels, traces


def _fig2_macs(run: Run, colors) -> list | Missing:
    from lshprof.measure.macs import PHASES as MAC_PHASES

    go = _go()
    s = run.summary
    if s.empty or not s["macs"].map(finite).any() or not (s["macs"] > 0).any():
        return Missing("no MAC counts were recorded")
    labels, traces = _phase_bars(run, MAC_PHASES, "macs_{}", per_sample=True,
                                 name=lambda p: p.replace("_", " "),
                                 hover=": %{y:,.0f} MACs per sample<extra></extra>")
    dense_eq = [_safe_div(r["macs_per_sample"], r["mac_share"]) for _, r in s.iterrows()]
    traces.append(go.Scatter(x=labels, y=dense_eq, mode="markers", name="dense layers of the "
                             "same shapes", marker=dict(symbol="line-ew-open", size=28,
                                                        color="black", line=dict(width=2)),
                             hovertemplate="%{x}<br>dense equivalent: %{y:,.0f} MACs per "
                                           "sample<extra></extra>"))
    return traces


def _safe_div(a, b) -> float:
    return float(a) / float(b) if finite(a) and finite(b) and float(b) != 0 else math.nan


def _key(r, keys) -> tuple:
    return tuple(None if (isinstance(r[k], float) and math.isnan(r[k])) else r[k] for k in keys)


def _phase_means(rows, keys, cols, *, per_sample: bool) -> dict:
    """``{(method, fraction, threads): {col: mean over seeds of the cell's sum over epochs}}``
    (divided by the cell's training samples when ``per_sample``)."""
    import pandas as pd

    cols = [c for c in cols if c in rows.columns]
    if rows.empty or not cols:
        return {}
    df = rows.copy()
    for c in cols + ["n_train"]:
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else math.nan
    cell = df.groupby(keys + ["seed"], dropna=False)[cols + ["n_train"]].sum(min_count=1)
    if per_sample:
        cell[cols] = cell[cols].div(cell["n_train"].where(cell["n_train"] > 0), axis=0)
    mean = cell.groupby(level=list(range(len(keys))), dropna=False)[cols].mean()
    out = {}
    for idx, row in mean.iterrows():
        idx = idx if isinstance(idx, tuple) else (idx,)
        idx = tuple(None if (isinstance(v, float) and math.isnan(v)) else v for v in idx)
        out[idx] = {c: _num(row[c]) for c in cols}
    return out


def _fig3_time(run: Run, colors) -> list | Missing:
    go = _go()
    s = run.summary
    if s.empty or not s["train_s"].map(finite).any():
        return Missing("no wall times were recorded")
    labels, traces = _phase_bars(
        run, TIME_PHASES, "wall_{}_s", per_sample=False,
        name=lambda p: p if p != "quality" else "quality (lshprof's measurement, left out of "
                                                "shares)",
        hover=": %{y:.4g} s<extra></extra>")
    us = [v * 1e6 if finite(v) else None for v in s["time_per_sample_s"]]
    sd = [v * 1e6 if finite(v) else None for v in s["time_per_sample_s_sd"]]
    traces.append(go.Bar(x=labels, y=us, name="time per sample", xaxis="x2", yaxis="y2",
                         marker_color=[colors[m] for m in s["method"]], showlegend=False,
                         error_y=dict(type="data", array=sd if any(sd) else None, visible=True),
                         hovertemplate="%{x}<br>%{y:.4g} µs per training sample"
                                       "<extra></extra>"))
    return traces


def _two_panels(left: str, right: str, **extra) -> dict:
    layout = dict(xaxis=dict(domain=[0, 0.55]), xaxis2=dict(domain=[0.65, 1], anchor="y2"),
                  yaxis=dict(title=left), yaxis2=dict(title=right, anchor="x2"))
    return {**layout, **extra}


def _fig4_energy(run: Run, colors) -> list | Missing:
    go = _go()
    s = run.summary
    if s.empty or not s["energy_j"].map(finite).any():
        return Missing(f"energy was not measured in this run (energy source: {run.energy_source}"
                       "); run with --energy auto, powercap, pyrapl or estimate")
    est = " (estimated)" if run.energy_source == "estimated" else ""
    threads = _with_threads(s)
    labels = [_row_label(r, threads) for _, r in s.iterrows()]
    uj = [v * 1e6 if finite(v) else None for v in s["energy_per_sample_j"]]
    sd = [v * 1e6 if finite(v) else None for v in s["energy_per_sample_j_sd"]]
    traces = [go.Bar(x=labels, y=uj, name=f"energy per sample{est}", showlegend=False,
                     marker_color=[colors[m] for m in s["method"]],
                     marker_pattern_shape="/" if est else "",
                     error_y=dict(type="data", array=sd if any(sd) else None, visible=True),
                     hovertemplate="%{x}<br>%{y:.4g} µJ per training sample" + esc(est)
                                   + "<extra></extra>")]
    for series, method, g in _series(s):
        traces.append(go.Scatter(
            x=list(g["macs_per_sample"]), y=[v * 1e6 if finite(v) else None
                                             for v in g["energy_per_sample_j"]],
            mode="markers", name=esc(series), xaxis="x2", yaxis="y2",
            marker=dict(color=colors[method], size=10),
            text=[_row_label(r, threads) for _, r in g.iterrows()],
            hovertemplate="%{text}<br>%{x:,.0f} MACs per sample<br>%{y:.4g} µJ per sample"
                          + esc(est) + "<extra></extra>"))
    return traces


def _fig5_realized(run: Run, colors) -> list | Missing:
    go = _go()
    s = run.summary
    s = s[s["kind"] != "dense"] if "kind" in s else s
    have_time = s["time_share"].map(finite) & s["mac_share"].map(finite)
    if not have_time.any():
        return Missing("needs a dense cell to compare with and at least one sparse method")
    est = run.energy_source == "estimated"
    threads = _with_threads(s)
    traces = []
    top = 1.0
    for series, method, g in _series(s[have_time]):
        name = esc(series)
        labels = [_row_label(r, threads) for _, r in g.iterrows()]
        realized = [_safe_div(a, b) for a, b in zip(g["mac_share"], g["time_share"])]
        top = max(top, float(g["time_share"].max()), float(g["mac_share"].max()))
        traces.append(go.Scatter(
            x=list(g["mac_share"]), y=list(g["time_share"]), mode="markers",
            name=f"{name}: time", marker=dict(color=colors[method], size=11, symbol="circle"),
            error_y=dict(type="data", array=_sd(g["time_share_sd"]), visible=True),
            customdata=realized, text=labels,
            hovertemplate="%{text}<br>MAC share %{x:.3f}<br>time share %{y:.3f}<br>realized "
                          "saving %{customdata:.2f}<extra></extra>"))
        e = g[g["energy_share"].map(finite)]
        if len(e):
            top = max(top, float(e["energy_share"].max()))
            traces.append(go.Scatter(
                x=list(e["mac_share"]), y=list(e["energy_share"]), mode="markers",
                name=f"{name}: energy" + (" (estimated)" if est else ""),
                marker=dict(color=colors[method], size=11, symbol="diamond-open",
                            line=dict(width=2)),
                customdata=[_safe_div(a, b) for a, b in zip(e["mac_share"], e["energy_share"])],
                text=[_row_label(r, threads) for _, r in e.iterrows()],
                hovertemplate="%{text}<br>MAC share %{x:.3f}<br>energy share %{y:.3f}"
                              + (" (estimated)" if est else "")
                              + "<br>realized saving %{customdata:.2f}<extra></extra>"))
    top *= 1.05
    traces.insert(0, go.Scatter(x=[0, top], y=[0, top], mode="lines", name="ideal: in "
                                "proportion to MACs", line=dict(color="grey", dash="dot"),
                                hoverinfo="skip"))
    return traces


def _selection(lsh):
    """Per LSH cell's last epoch (``lsh``: the rows of LSH cells): the first layer's
    selection-quality dict."""
    out = []
    if "layer_selection" not in lsh.columns:
        return out
    for _, g in lsh.groupby([k for k in CELL_KEYS if k in lsh.columns], dropna=False,
                            sort=False):
        last = g.sort_values("epoch").iloc[-1]
        try:
            layers = json.loads(str(last["layer_selection"]))
        except ValueError:
            continue
        q = next((x for x in layers or [] if isinstance(x, dict)), None)
        if q and finite(q.get("recall")):
            out.append({"method": last["method"], "fraction": float(last["fraction"]),
                        "seed": last["seed"], "threads": last["threads"], **q})
    return out


def _fig6_quality(run: Run, colors) -> list | Missing:
    import pandas as pd

    go = _go()
    labels = set(run.cells.loc[run.cells["kind"] == "lsh", "method"]) if len(run.cells) else set()
    sel = _selection(run.rows[run.rows["method"].isin(labels)])
    if not sel:
        return Missing("LSH selection quality was not measured: turn on [measure] quality = true "
                       "in the scenario" if labels else "no LSH method in this run")
    q = at_fewest_threads(pd.DataFrame(sel))
    traces = []
    series = (("recall", "recall of the true top-k", "solid"),
              ("random_recall", "recall of a random set", "dot"),
              ("mass", "activation mass captured", "solid"),
              ("random_mass", "mass of a random set", "dot"),
              ("topk_mass", "mass of the true top-k (ceiling)", "dash"))
    for line, method, g in _series(q):
        cols = [c for c, _, _ in series if c in g]
        agg = g[["fraction"] + cols].apply(pd.to_numeric, errors="coerce") \
            .groupby("fraction").agg(["mean", "std"])
        for col, what, dash in series:
            if col not in agg:
                continue
            traces.append(go.Scatter(
                x=list(agg.index), y=list(agg[(col, "mean")]), mode="lines+markers",
                name=f"{esc(line)}: {what}", xaxis="x" if "recall" in col else "x2",
                yaxis="y" if "recall" in col else "y2",
                line=dict(color=colors[method] if not col.startswith("random") else "grey",
                          dash=dash),
                error_y=dict(type="data", array=_sd(agg[(col, "std")]), visible=True),
                hovertemplate=f"{esc(line)}<br>active fraction %{{x:g}}<br>{what}: "
                              "%{y:.3f}<extra></extra>"))
    return traces


def _fig7_curves(run: Run, colors) -> list | Missing:
    import pandas as pd

    go = _go()
    rows = run.rows
    if rows.empty or "epoch" not in rows:
        return Missing("no epochs were recorded")
    df = rows.copy()
    for c in ("loss", "eval_accuracy", "epoch"):
        df[c] = pd.to_numeric(df[c], errors="coerce") if c in df else math.nan
    df = at_fewest_threads(df)
    traces = []
    for series, method, g in _series(df, extra=(AXIS_KEY,)):
        frac = g[AXIS_KEY].iloc[0] if AXIS_KEY in g else math.nan
        agg = g.groupby("epoch")[["loss", "eval_accuracy"]].agg(["mean", "std"])
        name = esc(series) + (f" f={frac:g}" if finite(frac) else "")
        for col, ax, what in (("loss", "", "training loss"), ("eval_accuracy", "2",
                                                                "test accuracy")):
            traces.append(go.Scatter(
                x=list(agg.index), y=list(agg[(col, "mean")]), mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == "loss",
                xaxis=f"x{ax}", yaxis=f"y{ax}", line=dict(color=colors[method]),
                error_y=dict(type="data", array=_sd(agg[(col, "std")]), visible=True),
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{what} %{{y:.4f}}<extra></extra>"))
    return traces


def _study(run: Run):
    """``(settings, why)``: the run's LSH settings (:func:`~lshprof.analysis.hashstudy.
    settings_table`) when it has two or more of them with measured quality, else a reason.
    Computed once per run: figures 9-11 all draw from it."""
    if run.study is None:
        run.study = _study_of(run)
    return run.study


def _study_of(run: Run):
    from lshprof.analysis.hashstudy import selection_table, settings_table

    if not len(run.rows) or not len(run.cells):
        return None, "no finished measurements"
    sel = selection_table(run.rows, run.cells)
    if sel.empty:
        return None, "no LSH method in this run"
    sel = at_fewest_threads(sel)
    settings = settings_table(sel)
    if len(settings) < 2:
        return None, ("one LSH setting in this run: a hash study compares several (a "
                      "parameter grid, e.g. [methods.lsh.grid] K = [4, 6, 8], or the built-in "
                      "hash-study scenario)")
    if not settings["recall"].map(finite).any():
        return None, ("LSH selection quality was not measured: turn on [measure] quality = "
                      "true in the scenario")
    return settings, ""


_FAMILY_COLORS = {"srp": "#1f77b4", "srp_sparse": "#17becf", "wta": "#d62728",
                  "dwta": "#ff7f0e"}


def _setting_text(r) -> str:
    return (f"{r['method']} f={float(r['fraction']):g}<br>family {r['family']}, K {r['K']}, "
            f"L {r['L']}, {r['policy']}, {r['transform']}"
            + ("<br><b>the paper's setting</b>" if r["paper"] else ""))


def _fig9_study(run: Run, colors) -> list | Missing:
    from lshprof.analysis.hashstudy import relation

    go = _go()
    settings, why = _study(run)
    if settings is None:
        return Missing(why)
    ok = settings[settings["recall"].map(finite) & settings["accuracy_gap"].map(finite)]
    if ok.empty:
        return Missing("no LSH setting has both its recall and a dense cell to compare with")
    traces = []
    shares = ok["mac_share"].where(ok["mac_share"].map(finite), 0.0)
    for family, g in ok.groupby("family", sort=False):
        size = 8 + 30 * shares.loc[g.index].clip(0, 1)
        traces.append(go.Scatter(
            x=list(g["recall"]), y=list(g["accuracy_gap"]), mode="markers", name=esc(family),
            marker=dict(color=_FAMILY_COLORS.get(str(family), "#7f7f7f"), size=list(size),
                        symbol=["star" if p else "circle" for p in g["paper"]],
                        line=dict(width=1, color="#333")),
            error_x=dict(type="data", array=_sd(g["recall_sd"]), visible=True),
            error_y=dict(type="data", array=_sd(g["accuracy_gap_sd"]), visible=True),
            text=[_setting_text(r) for _, r in g.iterrows()],
            customdata=list(g["mac_share"]),
            hovertemplate="%{text}<br>recall %{x:.3f}<br>gap to dense %{y:+.3f}<br>MAC share "
                          "%{customdata:.1%}<extra></extra>"))
    rel = relation(settings)
    if finite(rel.slope):
        xs = [float(ok["recall"].min()), float(ok["recall"].max())]
        traces.append(go.Scatter(x=xs, y=[rel.slope * x + rel.intercept for x in xs],
                                 mode="lines", name=f"fit, R² {rel.r2:.2f}",
                                 line=dict(color="#444", dash="dash")))
    paper = ("the paper's own setting (srp, K = 6, L = 100) is the star" if ok["paper"].any()
             else "the paper's own setting (srp, K = 6, L = 100) was not run")
    run.study_sentence = f"{rel.sentence}; {paper}"
    return traces


def _fig10_pareto(run: Run, colors) -> list | Missing:
    from lshprof.analysis.hashstudy import pareto

    go = _go()
    settings, why = _study(run)
    if settings is None:
        return Missing(why)
    ok = settings[settings["mac_share"].map(finite) & settings["accuracy"].map(finite)]
    if ok.empty:
        return Missing("no LSH setting has both its MAC share and its accuracy")
    front = pareto(ok)
    traces = []
    for family, g in ok.groupby("family", sort=False):
        traces.append(go.Scatter(
            x=list(g["mac_share"]), y=list(g["accuracy"]), mode="markers", name=esc(family),
            marker=dict(color=_FAMILY_COLORS.get(str(family), "#7f7f7f"), size=10,
                        symbol=["star" if p else "circle" for p in g["paper"]],
                        line=dict(width=[2 if f else 0 for f in front.loc[g.index]],
                                  color="#000")),
            error_y=dict(type="data", array=_sd(g["accuracy_sd"]), visible=True),
            text=[_setting_text(r) + ("<br>on the front" if front[i] else "")
                  for i, r in g.iterrows()],
            hovertemplate="%{text}<br>MAC share %{x:.1%}<br>accuracy %{y:.3f}<extra></extra>"))
    f = ok[front].sort_values("mac_share")
    traces.append(go.Scatter(x=list(f["mac_share"]), y=list(f["accuracy"]), mode="lines",
                             name="Pareto front", line=dict(color="#000", dash="dot")))
    dense = run.summary[run.summary["kind"] == "dense"] if "kind" in run.summary else []
    if len(dense) and finite(dense["accuracy"].iloc[0]):
        traces.append(go.Scatter(x=[0, 1], y=[float(dense["accuracy"].iloc[0])] * 2,
                                 mode="lines", name="dense", line=dict(color="#999", dash="dash")))
    return traces


def _fig11_epochs(run: Run, colors) -> list | Missing:
    import pandas as pd

    from lshprof.analysis.flags import json_value
    from lshprof.analysis.hashstudy import setting_defaults

    go = _go()
    settings, why = _study(run)
    if settings is None:
        return Missing(why)
    labels = set(settings["method"])
    defaults = setting_defaults()
    recs = []
    for _, r in at_fewest_threads(run.rows[run.rows["method"].isin(labels)]).iterrows():
        layers = json_value(r.get("layer_selection"), list) or []
        params = json_value(r.get("params"), dict) or {}
        q = next((x for x in layers if isinstance(x, dict)), None)
        if not q:
            continue
        recs.append({"family": params.get("family", defaults["family"]),
                     "fraction": r["fraction"], "epoch": r["epoch"], "recall": q.get("recall"),
                     "auc_topk": q.get("auc_topk")})
    if not recs:
        return Missing("no epoch of an LSH setting has its selection quality")
    df = pd.DataFrame(recs)
    for c in ("epoch", "recall", "auc_topk"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    traces = []
    for (family, fraction), g in df.groupby(["family", "fraction"], sort=False):
        agg = g.groupby("epoch")[["recall", "auc_topk"]].agg(["mean", "std"])
        name = f"{esc(family)} f={float(fraction):g}"
        dash = ("solid", "dash", "dot", "dashdot")[
            sorted(set(df["fraction"])).index(fraction) % 4]
        for col, ax, what in (("recall", "", "recall of the exact top-k"),
                              ("auc_topk", "2", "ROC AUC of the hash's ranking")):
            if not agg[(col, "mean")].map(finite).any():
                continue
            traces.append(go.Scatter(
                x=list(agg.index), y=list(agg[(col, "mean")]), mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == "recall",
                xaxis=f"x{ax}", yaxis=f"y{ax}",
                line=dict(color=_FAMILY_COLORS.get(str(family), "#7f7f7f"), dash=dash),
                error_y=dict(type="data", array=_sd(agg[(col, "std")]), visible=True),
                hovertemplate=f"{name}<br>epoch %{{x}}<br>{what} %{{y:.3f}}<extra></extra>"))
    return traces


def _fig8_compare(runs: list[Run], colors) -> list | Missing:
    go = _go()
    runs = [r for r in runs if len(r.summary)]
    if len(runs) < 2:
        return Missing("one run given; pass several runs to lshprof report (two machines, two "
                       "commits, ...) to compare them side by side")
    panels = (("accuracy", "test accuracy", "x", "y"), ("mac_share", "MAC share of dense",
                                                          "x2", "y2"),
              ("time_share", "time share of dense", "x3", "y3"),
              ("energy_share", "energy share of dense", "x4", "y4"))
    traces = []
    for i, run in enumerate(runs):
        s = run.summary
        threads = _with_threads(s)
        labels = [_row_label(r, threads) for _, r in s.iterrows()]
        est = " (estimated)" if run.energy_source == "estimated" else ""
        for col, what, xa, ya in panels:
            sd = f"{col}_sd"
            traces.append(go.Bar(
                x=labels, y=[_num(v) for v in s[col]], name=esc(run.key),
                legendgroup=esc(run.key), showlegend=col == "accuracy", xaxis=xa, yaxis=ya,
                marker_color=PALETTE[i % len(PALETTE)],
                error_y=dict(type="data", array=_sd(s[sd]) if sd in s else None, visible=True),
                hovertemplate=f"{esc(run.key)}<br>%{{x}}<br>{what}"
                              + (esc(est) if col == "energy_share" else "")
                              + ": %{y:.4f}<extra></extra>"))
    return traces


def _four_panels() -> dict:
    ax = {}
    for i, (title, dom) in enumerate((("test accuracy", [0.53, 1]),
                                      ("MAC share of dense", [0.53, 1]),
                                      ("time share of dense", [0, 0.42]),
                                      ("energy share of dense", [0, 0.42])), start=1):
        n = "" if i == 1 else str(i)
        ax[f"xaxis{n}"] = dict(domain=[0, 0.45] if i % 2 else [0.55, 1], anchor=f"y{n}")
        ax[f"yaxis{n}"] = dict(domain=dom, title=title, anchor=f"x{n}")
    return ax


# -- the page ---------------------------------------------------------------------------------
def _figure(num: int, per_run: list[tuple[Run, list | Missing]], layout: dict, *,
            note: str = "", caption: str = "") -> dict:
    """One section: a plotly figure, or a "not measured" box, plus its caption and note."""
    go = _go()
    drawn = [(run, t) for run, t in per_run if not isinstance(t, Missing)]
    missing = [(run, t) for run, t in per_run if isinstance(t, Missing)]
    section = {"num": num, "title": FIGURES[num], "note": note, "caption": caption,
               "missing": [(run.key, m.why) for run, m in missing], "figure": None}
    if not drawn:
        return section
    fig = go.Figure()
    owner = []
    for i, (run, traces) in enumerate(drawn):
        for t in traces:
            t.visible = i == 0
            fig.add_trace(t)
            owner.append(i)
    menus = list(layout.pop("updatemenus", []))
    if len(drawn) > 1:
        menus.append(dict(type="dropdown", x=0.3 if menus else 0, y=1.18, xanchor="left",
                          yanchor="top", active=0,
                          buttons=[dict(label=esc(run.key), method="update",
                                        args=[{"visible": [o == i for o in owner]},
                                              {"title.text": esc(run.key)}])
                                   for i, (run, _) in enumerate(drawn)]))
        layout.setdefault("title", dict(text=esc(drawn[0][0].key), x=0.98, xanchor="right"))
    fig.update_layout({**dict(template="plotly_white", height=480,
                              margin=dict(t=80, r=20, b=60, l=70), hovermode="closest"),
                       **layout, "updatemenus": menus})
    section["figure"] = fig
    return section


def _sections(runs: list[Run]) -> list[dict]:
    colors = _method_colors(runs)
    est = any(r.energy_source == "estimated" for r in runs)
    energy_note = ESTIMATED_NOTE if est else ""
    one = lambda fn: [(r, fn(r, colors)) for r in runs]  # noqa: E731
    out = [
        _figure(1, one(_fig1_accuracy), _fig1_layout(),
                caption="Test accuracy after the last epoch, mean over seeds with their standard "
                        "deviation as error bars; dashed: methods without a fraction (dense) as "
                        "reference. The paper's main plot."),
        _figure(2, one(_fig2_macs), dict(barmode="stack", xaxis=dict(title="method and active "
                                                                            "fraction"),
                                          yaxis=dict(title="MACs per training sample"),
                                          updatemenus=[_axis_menu("yaxis", "y scale", x=0.0)]),
                caption="Exact multiply-accumulates of training (forward, choosing, hashing, "
                        "re-hashing, backward) per training sample, stacked by phase; the black "
                        "tick is what dense layers of the same shapes perform. The MACs of the "
                        "selection-quality measurement are not the method's and are left out."),
        _figure(3, one(_fig3_time), _two_panels("training seconds (summed over epochs)",
                                                "µs per training sample", barmode="stack"),
                caption="Left: wall time of the training passes by phase (warm-up and "
                        "compilation excluded), mean over seeds. 'quality' is lshprof's own "
                        "measurement of LSH's choices ([measure] quality), not the method's "
                        "work: it is left out of time per sample, time shares and the claims. "
                        "Right: time per training sample with its deviation over seeds."),
        _figure(4, one(_fig4_energy), _two_panels(
            "µJ per training sample" + (" (estimated)" if est else ""),
            "µJ per training sample" + (" (estimated)" if est else ""),
            xaxis2=dict(domain=[0.65, 1], anchor="y2", title="MACs per training sample")),
                note=energy_note,
                caption="Left: training energy per sample by method and fraction. Right: the "
                        "same energy against the MACs per sample. With [measure] quality on, "
                        "LSH's energy includes lshprof's measurement of its choices: energy "
                        "cannot be split by phase the way time is."),
        _figure(5, one(_fig5_realized), dict(
            xaxis=dict(title="MAC share of dense", rangemode="tozero"),
            yaxis=dict(title="time (energy) share of dense", rangemode="tozero")),
                note=energy_note,
                caption="Each point is a sparse method at one fraction. On the dotted diagonal, "
                        "time (energy) falls exactly in proportion to multiplications; above it, "
                        "less. Realized saving = MAC share / time share (in the hover)."),
        _figure(6, one(_fig6_quality), _two_panels(
            "recall of the true top-k", "activation mass captured",
            xaxis=dict(domain=[0, 0.45], title="active fraction", type="log"),
            xaxis2=dict(domain=[0.55, 1], anchor="y2", title="active fraction", type="log")),
                caption="How well the LSH tables chose each layer's most active nodes, on the "
                        "training batches of the last epoch: the share of the exact top-k they "
                        "found, and the share of the positive activation mass they captured, "
                        "against a random set of the same size (grey, dotted)."),
        _figure(7, one(_fig7_curves), _two_panels(
            "training loss", "test accuracy",
            xaxis=dict(domain=[0, 0.45], title="epoch", dtick=1),
            xaxis2=dict(domain=[0.55, 1], anchor="y2", title="epoch", dtick=1)),
                caption="Mean training loss and test accuracy after each epoch, mean over seeds "
                        "with their deviations."),
    ]
    out.append(_figure(8, [(runs[0], _fig8_compare(runs, colors))],
                       dict(barmode="group", height=640, **_four_panels()), note=energy_note,
                       caption="Every run side by side, per method and fraction. Shares are "
                               "relative to each run's own dense cell, so machines of different "
                               "speed compare fairly."))
    study = one(_fig9_study)
    if all(isinstance(t, Missing) for _, t in study):
        return out  # no run is a hash study: no three boxes saying so
    sentences = [run.study_sentence for run in runs]
    out.append(_figure(9, study, dict(xaxis=dict(title="recall of the exact top-k (last epoch)"),
                                      yaxis=dict(title="test accuracy minus dense's")),
                       note="; ".join(f"{run.key}: {t}" if len(runs) > 1 else t
                                      for run, t in zip(runs, sentences) if t),
                       caption="One point per LSH setting (label and active fraction), mean over "
                               "seeds with their deviations; colour: hash family; size: MAC "
                               "share of dense (hashing included); star: the paper's own "
                               "setting (signed random projections, K = 6, L = 100); dashed: "
                               "the least-squares line."))
    out.append(_figure(10, one(_fig10_pareto), dict(
        xaxis=dict(title="MAC share of dense (hashing included)", tickformat=".0%"),
        yaxis=dict(title="test accuracy")),
        caption="Every LSH setting's cost against its accuracy, mean over seeds; outlined and "
                "joined: the Pareto front, the settings no other beats on both (a setting flagged "
                "below_budget or chance saves nothing and is never on it); star: the "
                "paper's setting; dashed: dense."))
    out.append(_figure(11, one(_fig11_epochs), _two_panels(
        "recall of the exact top-k", "ROC AUC of the hash's ranking",
        xaxis=dict(domain=[0, 0.45], title="epoch", dtick=1),
        xaxis2=dict(domain=[0.55, 1], anchor="y2", title="epoch", dtick=1)),
        caption="Selection quality after each epoch, per hash family and active fraction (mean "
                "over its settings and seeds; dash: the fraction): does training adapt the weights to the hash, or drift away from "
                "it? AUC appears where the layer measures it."))
    return out


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:0 16px 48px;color:#222;line-height:1.45}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}table.sortable th:after{content:' \\2195';color:#aaa}
.holds{background:#dff3df}.does-not-hold{background:#f8dcdc}.not-measured{background:#eee;color:#555}
.verdict{font-weight:600;white-space:nowrap}.rule{color:#666;font-size:12px}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:8px 0}
.warnings{background:#fde8e8;border-left:4px solid #c0392b;padding:6px 10px;margin:8px 0}
.smoke{border-left-color:#c0392b;background:#fde8e8}
.claimnote{font-size:85%;color:#8a2a1f;margin-top:4px}
.missing{background:#f3f3f3;border:1px dashed #999;padding:18px;margin:8px 0;color:#444}
.caption{color:#555;font-size:13px}.plot{min-height:480px}
pre{background:#f7f7f7;padding:8px;overflow:auto;font-size:12px;max-height:480px}
.scroll{overflow-x:auto}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.dataset.asc!=='1';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.asc;});
      th.dataset.asc=asc?'1':'0';
      rows.sort(function(r1,r2){
        var a=r1.cells[i].dataset.v,c=r2.cells[i].dataset.v,x=parseFloat(a),y=parseFloat(c);
        var k=(isNaN(x)||isNaN(y))?String(a).localeCompare(String(c)):x-y;return asc?k:-k;});
      rows.forEach(function(r){b.appendChild(r);});});});});
"""


def _fmt(v, spec: str = ".4g") -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    return format(float(v), spec)


def _table(df, columns: list[tuple[str, str]], *, sortable: bool = True) -> str:
    head = "".join(f"<th>{esc(title)}</th>" for _, title in columns)
    body = []
    for _, r in df.iterrows():
        tds = []
        for col, _ in columns:
            v = r.get(col)
            num = finite(v) and not isinstance(v, (str, bool))
            key = float(v) if num else ("" if v is None else str(v))
            tds.append(f"<td{' class=n' if num else ''} data-v=\"{esc(key)}\">{esc(_fmt(v))}"
                       "</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cls = ' class="sortable"' if sortable else ""
    return (f"<div class=scroll><table{cls}><thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + "</tbody></table></div>")


def _header(runs: list[Run]) -> str:
    from lshprof.analysis.flags import is_smoke

    def machine(m):
        mach = m.get("machine") or {}
        mem = mach.get("memory_total_bytes")
        parts = [mach.get("cpu_model"), f"{mach.get('cpu_logical')} logical cores"
                 if mach.get("cpu_logical") else None,
                 f"{mem / 2**30:.1f} GiB" if finite(mem) else None,
                 mach.get("os_name") or mach.get("os"),
                 f"Python {mach.get('python_version')}" if mach.get("python_version") else None]
        return ", ".join(str(p) for p in parts if p) or "not recorded"

    def threads(m, run):
        th = m.get("threads") or {}
        start = th.get("at_start") or {}
        used = sorted(set(int(t) for t in run.rows["threads"].dropna())) \
            if "threads" in run.rows and len(run.rows) else []
        blas = ", ".join(f"{b.get('internal_api')} {b.get('num_threads')}"
                         for b in start.get("blas") or [])
        return (f"{', '.join(map(str, used)) or th.get('requested', '-')} "
                f"(numba {start.get('numba_threads', '-')}, {blas or 'no BLAS pool seen'})")

    def energy(m):
        e = m.get("energy") or {}
        return e.get("summary") or f"{e.get('source', 'none')} ({e.get('backend', '-')})"

    fields = (
        ("scenario", lambda m, r: f"{r.name}: {r.scenario.get('description') or ''}".rstrip(": ")
         + (" [SMOKE RUN (--quick): the sizes above were reduced; see 'sizes used']"
            if is_smoke(m) else "")),
        ("run", lambda m, r: f"{r.key} ({m.get('status')}, {m.get('rows', 0)} rows)"),
        ("date", lambda m, r: f"{m.get('started_at', '-')} to {m.get('ended_at', '-')}"),
        ("lshprof", lambda m, r: f"{m.get('lshprof_version', '-')}" + (
            f", commit {str((m.get('machine') or {}).get('git_commit'))[:12]}"
            + (" (uncommitted changes)" if (m.get("machine") or {}).get("git_dirty") else "")
            if (m.get("machine") or {}).get("git_commit") else "")),
        ("machine", lambda m, r: machine(m)),
        ("threads", threads),
        ("energy", lambda m, r: energy(m)),
        ("data", lambda m, r: ", ".join(f"{k} {v}" for k, v in
                                        ((r.scenario.get("data_shape") or {}).items())) or "-"),
        ("sizes used", lambda m, r: _sizes_used(r)),
    )
    rows = []
    for label, fn in fields:
        cells = "".join(f"<td>{esc(fn(r.meta, r))}</td>" for r in runs)
        rows.append(f"<tr><th>{esc(label)}</th>{cells}</tr>")
    return "<table class=meta>" + "".join(rows) + "</table>"


def _sizes_used(run: Run) -> str:
    """What the run's rows were measured with (not what the description promises)."""
    from lshprof.analysis.flags import is_smoke, numbers, sizes_used

    rows = run.rows
    if not len(rows):
        return "-"
    parts = sizes_used(rows)
    if "n_train" in rows.columns:
        parts.append(f"{int(numbers(rows, 'n_train').max())} training samples per epoch")
    if "batch_size" in rows.columns:
        parts.append("batch " + ", ".join(str(int(b)) for b in sorted(set(
            numbers(rows, "batch_size").dropna()))))
    if is_smoke(run.meta):
        parts.append("SMOKE RUN (--quick)")
    return ", ".join(parts)


def _warnings_html(runs: list[Run]) -> str:
    """The smoke-run banner and one line per flagged cell (what, cause, fix): shown before
    the claims, so nobody reads a verdict without them."""
    from lshprof.analysis.flags import smoke_note

    parts = []
    for run in runs:
        note = smoke_note(run.meta, run.rows)
        who = f"{run.key}: " if len(runs) > 1 else ""
        if note:
            parts.append(f"<p class=\"note smoke\"><b>{esc(who)}{esc(note)}</b></p>")
        cells = run.cells
        if not len(cells) or "flags" not in cells.columns:
            continue
        flagged = cells[cells["flags"].astype(str) != ""]
        if flagged.empty:
            continue
        items = []
        for _, r in flagged.iterrows():
            where = ", ".join([f"{k} {r[k]:g}" for k in ("fraction", "seed", "threads")
                               if finite(r.get(k))]
                              + ([f"mode {r['mode']}"] if r.get("mode") not in (None, "sync")
                                 and isinstance(r.get("mode"), str) else []))
            lines = "".join(f"<li>{esc(n)}</li>" for n in str(r["flag_notes"]).split(" | ") if n)
            items.append(f"<li data-flags=\"{esc(r['flags'])}\"><b>{esc(r['method'])}</b> "
                         f"({esc(where)}): {esc(r['flags'].replace(';', ', '))}<ul>{lines}</ul></li>")
        parts.append(f"<div class=warnings><b>{esc(who)}{len(flagged)} of {len(cells)} cells are "
                     "flagged; their figures must be read with these notes:</b><ul>"
                     + "".join(items) + "</ul></div>")
    return "".join(parts)


def _claims_html(runs: list[Run]) -> str:
    from lshprof.analysis.claims import (ACCURACY_TOLERANCE, MAC_SHARE_LIMIT, REALIZED_MIN,
                         SCALING_EFFICIENCY_MIN)

    multi = len(runs) > 1
    head = ("<tr><th>claim (Spring &amp; Shrivastava, KDD 2017)</th>" + ("<th>run</th>" if multi
                                                                           else "")
            + "<th>measured</th><th>verdict</th></tr>")
    body = []
    judged = [run for run in runs if run.claims]       # runs with finished rows
    for i in range(len(judged[0].claims) if judged else 0):
        for j, run in enumerate(judged):
            c = run.claims[i]
            cls = c.verdict.replace(" ", "-")
            claim_td = (f"<td rowspan={len(judged)}><b>{esc(c.claim)}</b>"
                        f"<div class=rule>rule: {esc(c.rule)}</div></td>") if j == 0 else ""
            body.append(f"<tr data-claim=\"{esc(c.key)}\">{claim_td}"
                        + (f"<td>{esc(run.key)}</td>" if multi else "")
                        + f"<td>{esc(c.measured)}"
                        + "".join(f"<div class=claimnote>{esc(n)}</div>" for n in c.notes)
                        + "</td>"
                        f"<td class=\"verdict {cls}\">{esc(c.verdict)}</td></tr>")
    return (f"<table class=claims>{head}{''.join(body)}</table><p class=rule>Verdicts are "
            f"computed from the measurements by the rules shown (lshprof.analysis.claims): 'about 5%' "
            f"is at most {MAC_SHARE_LIMIT:.1%}; 'within 1%' is at most "
            f"{ACCURACY_TOLERANCE * 100:g} accuracy point; 'in proportion' is a realized saving "
            f"of at least {REALIZED_MIN:g}; 'near-linear' is a parallel efficiency of at least "
            f"{SCALING_EFFICIENCY_MIN:g}. The paper's operating point is LSH's smallest active "
            "fraction at the fewest threads. Energy that is estimated is never judged.</p>")


SUMMARY_COLUMNS = [
    ("method", "method"), ("kind", "layer method"), ("fraction", "fraction"),
    ("threads", "threads"), ("seeds", "seeds"), ("accuracy", "test accuracy"),
    ("accuracy_sd", "± sd"), ("accuracy_gap", "vs dense"), ("macs_per_sample", "MACs/sample"),
    ("mac_share", "MAC share"), ("train_s", "train s"), ("train_s_sd", "± sd"),
    ("time_share", "time share"), ("time_per_sample_s", "s/sample"),
    ("energy_j", "energy J"), ("energy_share", "energy share"),
    ("energy_source", "energy source"), ("flags", "flags")]
CELL_COLUMNS = [
    ("method", "method"), ("kind", "layer method"), ("fraction", "fraction"), ("seed", "seed"),
    ("threads", "threads"), ("epochs", "epochs"), ("accuracy", "test accuracy"),
    ("accuracy_gap", "vs dense"), ("loss", "loss"), ("macs", "MACs"),
    ("macs_dense_equivalent", "dense-equivalent MACs"), ("mac_share", "MAC share"),
    ("train_s", "train s"), ("time_share", "time share"), ("samples", "samples"),
    ("energy_j", "energy J"), ("energy_share", "energy share"), ("energy_source", "energy source"),
    ("flags", "flags")]


def _energy_titles(columns, run: Run) -> list[tuple[str, str]]:
    """Energy column titles marked ``(est.)`` when the run's energy is estimated."""
    if run.energy_source != "estimated":
        return columns
    return [(c, t + " (est.)" if c.startswith("energy_") and c != "energy_source" else t)
            for c, t in columns]


def _plot_html(section: dict, config: dict) -> str:
    import plotly.io as pio

    div_id = f"plot-{section['num']}"
    return pio.to_html(section["figure"], full_html=False, include_plotlyjs=False,
                       div_id=div_id, config=config, default_height="480px")


def build_report(paths, *, plotly_src: str | None = None) -> str:
    """The page for the runs at ``paths`` (as :func:`lshprof.load_results` takes them).

    ``plotly_src``: a relative path to load plotly.js from instead of embedding it."""
    import plotly
    import plotly.offline

    from lshprof import __version__

    runs = _load(paths)
    sections = _sections(runs)
    config = {"displaylogo": False, "responsive": True,
              "toImageButtonOptions": {"format": "svg"}}
    title = " vs ".join(dict.fromkeys(r.name for r in runs))
    est = any(r.energy_source == "estimated" for r in runs)
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content=\"width=device-width, initial-scale=1\">",
        f"<title>lshprof report: {esc(title)}</title><style>{CSS}</style>",
        (f"<script src=\"{esc(plotly_src)}\"></script>" if plotly_src else
         f"<script>{plotly.offline.get_plotlyjs()}</script>"),
        "</head><body>",
        f"<h1>lshprof report: {esc(title)}</h1>",
        f"<p>Written by lshprof {esc(__version__)} with plotly {esc(plotly.__version__)}. "
        "Every figure is interactive: hover for values, drag to zoom, double-click to reset, "
        "click a legend entry to hide it.</p>",
        _header(runs),
    ]
    if est:
        parts.append(f"<p class=note>{esc(ESTIMATED_NOTE)}</p>")
    parts.append(_warnings_html(runs))
    parts += ["<h2 id=claims>The paper's claims against this run</h2>", _claims_html(runs),
              "<h2 id=figures>Figures</h2>"]
    for sec in sections:
        parts.append(f"<section class=figure id=fig-{sec['num']}>"
                     f"<h3>{sec['num']}. {esc(sec['title'])}</h3>")
        if sec["note"]:
            parts.append(f"<p class=note>{esc(sec['note'])}</p>")
        for key, why in sec["missing"]:
            who = f"{key}: " if len(runs) > 1 and sec["num"] != 8 else ""
            parts.append(f"<div class=missing><b>not measured</b>: {esc(who + why)}</div>")
        if sec["figure"] is not None:
            parts.append(f"<div class=plot>{_plot_html(sec, config)}</div>")
        parts.append(f"<p class=caption>{esc(sec['caption'])}</p></section>")
    parts.append("<h2 id=numbers>The numbers</h2>")
    for run in runs:
        if not len(run.summary):
            parts.append(f"<p>{esc(run.key)}: no finished measurements.</p>")
            continue
        e = " Energy is ESTIMATED, not measured." if run.energy_source == "estimated" else ""
        parts.append(f"<h3>{esc(run.key)}: per method and fraction (mean over seeds)</h3>"
                     f"<p class=caption>Click a column to sort.{esc(e)}</p>"
                     + _table(run.summary, _energy_titles(SUMMARY_COLUMNS, run)))
        parts.append(f"<details><summary>{esc(run.key)}: every cell ({len(run.cells)} rows, "
                     "training summed over epochs)</summary>"
                     + _table(run.cells, _energy_titles(CELL_COLUMNS, run)) + "</details>")
    parts.append("<h2 id=metadata>Run metadata</h2>")
    for run in runs:
        parts.append(f"<details><summary>{esc(run.key)}: run.json</summary><pre>"
                     f"{esc(json.dumps(run.meta, indent=1, default=str))}</pre></details>")
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(parts)


def default_report_path(paths: Sequence[str | os.PathLike]) -> Path:
    """``reports/NAME.html``: NAME is the run folder's name (the names, joined, for several)."""
    from lshprof.experiment.results import run_folder

    names = [run_folder(Path(p).resolve()).name for p in paths]
    return Path(REPORTS_DIR) / ("_vs_".join(names)[:120] + ".html")


def write_report(paths, out: str | os.PathLike, *, plotlyjs: str = "embed") -> Path:
    """Write the page for ``paths`` to ``out`` (atomically: a temp file renamed into place).

    ``plotlyjs="beside"`` writes ``plotly-VERSION.min.js`` next to the page, once, and
    loads it from there, so many reports share one copy."""
    import plotly
    import plotly.offline

    if plotlyjs not in PLOTLYJS_MODES:
        raise ConfigError(f"unknown plotly.js mode {plotlyjs!r}; use one of "
                          f"{', '.join(PLOTLYJS_MODES)}")
    out = Path(out)
    if out.exists() and out.is_dir():
        raise ConfigError(f"report target {out} is a folder; give a file name such as "
                          f"{out / 'report.html'}")
    src = None
    if plotlyjs == "beside":
        src = f"plotly-{plotly.__version__}.min.js"
    text = build_report(paths, plotly_src=src)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the folder for report {out}: "
                          f"{exc.strerror or exc}; choose another place with -o") from None
    if src and not (out.parent / src).exists():
        _write(out.parent / src, plotly.offline.get_plotlyjs())
    _write(out, text)
    return out


def _write(path: Path, text: str) -> None:
    from lshprof.files import write_text_atomic

    try:
        write_text_atomic(path, text)
    except OSError as exc:
        raise ConfigError(f"cannot write report {path}: {exc.strerror or exc}; choose another "
                          "place with -o") from None
