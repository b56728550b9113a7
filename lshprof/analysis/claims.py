"""The paper's claims, each with what a run measured and a verdict computed from it.

"Scalable and Sustainable Deep Learning via Randomized Hashing" (Spring &
Shrivastava, KDD 2017) claims that LSH-selected layers use about 5% of the
multiplications, stay within about 1% of full accuracy, beat dropout, adaptive
dropout and winner-take-all, save time and energy in proportion, and scale almost
linearly with cores. :func:`check_claims` sets each claim against a run's
:func:`~lshprof.analysis.summary.summarize` table, by the rules below, and says ``holds``,
``does not hold`` or ``not measured`` (with the reason), never a verdict the data
cannot support.

Rules (the constants are module attributes, shown in every report):

* the *operating point* is LSH's smallest active fraction at the run's smallest
  thread count: the setting where the paper's savings are claimed;
* ``macs``: LSH's MAC share of dense (choosing, hashing and re-hashing included) at
  the operating point is at most :data:`MAC_SHARE_LIMIT` ("about" 5%);
* ``accuracy``: LSH's final test accuracy at the operating point is at most
  :data:`ACCURACY_TOLERANCE` (absolute) below dense's, mean over seeds; the smallest
  fraction that stays within it is reported too;
* ``baselines``: at every fraction measured for both, LSH's mean accuracy is at least
  that of dropout, adaptive dropout and WTA;
* ``time`` / ``energy``: the realized saving, MAC share / time (energy) share, is at
  least :data:`REALIZED_MIN` at the operating point (1 means time falls exactly in
  proportion to multiplications). Estimated energy follows the MAC and byte counts by
  construction, so it is shown but never judged;
* ``scaling``: with a thread sweep, LSH's parallel efficiency from the fewest to the
  most threads, (time at fewest / time at most) / (most / fewest), is at least
  :data:`SCALING_EFFICIENCY_MIN`. lshprof trains synchronously; the paper's claim is
  about asynchronous (Hogwild-style) training.

A verdict never rests on missing data: a figure missing at the operating point (a MAC
count, a time, a dense reference) makes the claim ``not measured`` rather than moving the
operating point to the next fraction. The cells' flags (:mod:`lshprof.analysis.flags`) go
with the verdicts: a degenerate selection at the operating point (``below_budget``,
``chance``) makes the MAC, time and energy claims ``not measured`` (those savings are not
the method's), and every claim whose figures come from a flagged cell, or from a smoke run
(``--quick``), carries a note saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lshprof.analysis.flags import split_flags
from lshprof.analysis.summary import at_fewest_threads, finite

__all__ = ["Claim", "check_claims", "lsh_labels", "HOLDS", "FAILS", "NOT_MEASURED", "MAC_SHARE_CLAIM",
           "MAC_SHARE_LIMIT", "ACCURACY_TOLERANCE", "REALIZED_MIN", "SCALING_EFFICIENCY_MIN"]

HOLDS, FAILS, NOT_MEASURED = "holds", "does not hold", "not measured"

#: the paper's figure for LSH's share of dense multiplications
MAC_SHARE_CLAIM = 0.05
#: "about 5%": the largest share that still counts as about 5%
MAC_SHARE_LIMIT = 0.075
#: "within 1% of full accuracy": absolute accuracy (1 percentage point)
ACCURACY_TOLERANCE = 0.01
#: the smallest realized saving (MAC share / time share) that counts as "in proportion"
REALIZED_MIN = 0.5
#: the smallest parallel efficiency that counts as "near-linear"
SCALING_EFFICIENCY_MIN = 0.8

BASELINE_KINDS = ("dropout", "adaptive_dropout", "wta")


@dataclass
class Claim:
    """One claim: the paper's words (paraphrased), the rule, what was measured, the verdict."""

    key: str
    claim: str
    rule: str
    verdict: str
    measured: str
    #: the figures behind ``measured``, one dict per fraction (or comparison)
    values: list[dict[str, Any]] = field(default_factory=list)
    #: what the verdict must be read with: a smoke run, flagged cells behind the figures
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "claim": self.claim, "rule": self.rule,
                "verdict": self.verdict, "measured": self.measured, "values": self.values,
                "notes": list(self.notes)}


#: limits are inclusive; this absorbs the rounding of figures such as 0.94 - 0.95
_EPS = 1e-9


def _at_least(x: float, limit: float) -> bool:
    return finite(x) and float(x) >= limit - _EPS


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _f(x: float) -> str:
    return f"{x:g}"


def _rows(summary, kind: str):
    """Rows of ``kind`` at the fewest threads, ordered by fraction (none for an empty table)."""
    if "kind" not in summary.columns:
        return summary
    s = at_fewest_threads(summary)
    return s[s["kind"] == kind].sort_values("fraction")


def _lsh_rows(summary):
    rows = _rows(summary, "lsh")
    return rows if rows.empty else rows[rows["fraction"].notna()]


def _not_measured(key, claim, rule, why) -> Claim:
    return Claim(key, claim, rule, NOT_MEASURED, why)


def _missing_at_op(lsh, col: str, what: str) -> str | None:
    """Why a claim cannot be judged when ``col`` is missing at the operating point (LSH's
    smallest fraction), or None: the operating point never moves to another fraction."""
    op = lsh.iloc[0]
    if finite(op[col]):
        return None
    return (f"the {what} is missing at the operating point (fraction {_f(op['fraction'])}, "
            f"{op['method']}): a missing value is not judged")


#: flags that make a cell's savings not the method's (its selection was degenerate)
_DEGENERATE = ("below_budget", "chance")
#: claim -> the flags whose presence at the operating point its reader must know of
_RELEVANT = {"macs": ("below_budget", "chance", "random_recall"),
             "accuracy": ("below_budget", "chance", "random_recall"),
             "baselines": ("below_budget", "chance", "random_recall"),
             "time": ("compiled", "busy", "below_budget", "chance"),
             "energy": ("compiled", "busy", "energy", "below_budget", "chance"),
             "scaling": ("compiled", "busy")}


def _flag_notes(claim: Claim, summary) -> Claim:
    """Mark ``claim`` with the flags of the LSH rows behind it; a degenerate selection at the
    operating point makes a saving claim not measured."""
    if "flags" not in summary.columns or (claim.verdict == NOT_MEASURED and not claim.values):
        return claim
    lsh = _lsh_rows(summary)
    if lsh.empty:
        return claim
    relevant = _RELEVANT.get(claim.key, ())
    fractions = {v.get("fraction") for v in claim.values} or {float(lsh.iloc[0]["fraction"])}
    op_fraction = float(lsh.iloc[0]["fraction"])
    for r in lsh.itertuples():
        names = [n for n in split_flags(getattr(r, "flags", "")) if n in relevant]
        if not names or float(r.fraction) not in fractions:
            continue
        notes = str(getattr(r, "flag_notes", "") or "").split(" | ")
        detail = "; ".join(n for n in notes if n.split(":", 1)[0] in names)
        claim.notes.append(f"{r.method} at fraction {_f(r.fraction)} is flagged "
                           f"({', '.join(names)}): {detail}")
        if (claim.key in ("macs", "time", "energy") and float(r.fraction) == op_fraction
                and any(n in _DEGENERATE for n in names)):
            claim.verdict = NOT_MEASURED
            claim.measured = (f"not judged: the selection was degenerate at the operating point "
                              f"(fraction {_f(r.fraction)}), so its savings are not the "
                              f"method's; measured {claim.measured}")
    return claim


def _claim_macs(summary) -> Claim:
    key, claim = "macs", "LSH uses about 5% of the dense multiplications"
    rule = (f"LSH's MAC share of dense, choosing, hashing and re-hashing included, is at most "
            f"{_pct(MAC_SHARE_LIMIT)} at its smallest active fraction")
    lsh = _lsh_rows(summary)
    if lsh.empty:
        return _not_measured(key, claim, rule, "no LSH method with MAC counts in this run")
    missing = _missing_at_op(lsh, "mac_share", "MAC count")
    if missing:
        return _not_measured(key, claim, rule, missing)
    lsh = lsh[lsh["mac_share"].map(finite)]
    values = [{"fraction": float(r.fraction), "mac_share": float(r.mac_share)}
              for r in lsh.itertuples()]
    op = values[0]
    verdict = HOLDS if _at_least(-op["mac_share"], -MAC_SHARE_LIMIT) else FAILS
    measured = "; ".join(f"{_pct(v['mac_share'])} at fraction {_f(v['fraction'])}"
                         for v in values)
    return Claim(key, claim, rule, verdict, f"MAC share of dense: {measured}", values)


def _claim_accuracy(summary) -> Claim:
    key, claim = "accuracy", "LSH stays within 1% of dense accuracy"
    rule = (f"LSH's mean test accuracy is at most {ACCURACY_TOLERANCE * 100:g} point below "
            "dense's at its smallest active fraction")
    lsh = _lsh_rows(summary)
    if lsh.empty:
        return _not_measured(key, claim, rule, "no LSH method in this run")
    if not lsh["accuracy_gap"].map(finite).any():
        return _not_measured(key, claim, rule, "no dense cell to compare with at the same "
                                               "seeds and threads")
    missing = _missing_at_op(lsh, "accuracy_gap", "accuracy or dense reference")
    if missing:
        return _not_measured(key, claim, rule, missing)
    lsh = lsh[lsh["accuracy_gap"].map(finite)]
    values = [{"fraction": float(r.fraction), "accuracy": float(r.accuracy),
               "accuracy_gap": float(r.accuracy_gap)} for r in lsh.itertuples()]
    within = [v["fraction"] for v in values if _at_least(v["accuracy_gap"], -ACCURACY_TOLERANCE)]
    verdict = HOLDS if _at_least(values[0]["accuracy_gap"], -ACCURACY_TOLERANCE) else FAILS
    gaps = "; ".join(f"{v['accuracy_gap'] * 100:+.2f} points at fraction {_f(v['fraction'])}"
                     for v in values)
    smallest = (f"smallest fraction within {ACCURACY_TOLERANCE * 100:g} point: "
                f"{_f(min(within))}" if within else
                f"no measured fraction is within {ACCURACY_TOLERANCE * 100:g} point")
    return Claim(key, claim, rule, verdict, f"gap to dense: {gaps}; {smallest}", values)


def _claim_baselines(summary) -> Claim:
    key, claim = "baselines", "LSH beats dropout, adaptive dropout and WTA at the same fraction"
    rule = ("at every fraction measured for both, LSH's mean test accuracy is at least that of "
            "each of dropout, adaptive dropout and WTA")
    lsh = _lsh_rows(summary)
    if lsh.empty:
        return _not_measured(key, claim, rule, "no LSH method in this run")
    values = []
    for kind in BASELINE_KINDS:
        other = _rows(summary, kind)
        for r in lsh.itertuples():
            o = other[(other["fraction"] - r.fraction).abs() < 1e-12]
            if o.empty or not finite(r.accuracy) or not finite(o["accuracy"].iloc[0]):
                continue
            values.append({"fraction": float(r.fraction), "baseline": kind,
                           "lsh_accuracy": float(r.accuracy),
                           "baseline_accuracy": float(o["accuracy"].iloc[0])})
    if not values:
        return _not_measured(key, claim, rule, "no dropout, adaptive dropout or WTA cell at a "
                                               "fraction LSH was run at")
    for v in values:
        v["lsh_ahead"] = v["lsh_accuracy"] >= v["baseline_accuracy"]
    behind = [v for v in values if not v["lsh_ahead"]]
    measured = f"LSH at least as accurate in {len(values) - len(behind)} of {len(values)} " \
               "comparisons"
    if behind:
        measured += "; behind " + "; ".join(
            f"{v['baseline']} at {_f(v['fraction'])} ({v['lsh_accuracy']:.3f} vs "
            f"{v['baseline_accuracy']:.3f})" for v in behind)
    missing = [k for k in BASELINE_KINDS if not any(v["baseline"] == k for v in values)]
    if missing:
        measured += f"; not run: {', '.join(missing)}"
    return Claim(key, claim, rule, FAILS if behind else HOLDS, measured, values)


def _claim_realized(summary, what: str) -> Claim:
    share = f"{what}_share"
    key = what
    claim = (f"{'Wall time' if what == 'time' else 'Energy'} falls in proportion to "
             "multiplications")
    rule = (f"realized saving = MAC share / {what} share (1 = in proportion) is at least "
            f"{REALIZED_MIN:g} at LSH's smallest active fraction")
    lsh = _lsh_rows(summary)
    if lsh.empty:
        return _not_measured(key, claim, rule, "no LSH method in this run")
    ok = lsh[share].map(finite) & lsh["mac_share"].map(finite)
    if not ok.any():
        why = ("no dense cell to compare with" if what == "time" else
               "energy was not measured in this run (no energy backend)")
        return _not_measured(key, claim, rule, why)
    missing = _missing_at_op(lsh, share, f"{what} share") or _missing_at_op(
        lsh, "mac_share", "MAC count")
    if missing:
        return _not_measured(key, claim, rule, missing)
    lsh = lsh[ok]
    values = [{"fraction": float(r.fraction), "mac_share": float(r.mac_share),
               share: float(getattr(r, share)),
               "realized_saving": float(r.mac_share) / float(getattr(r, share))
               if getattr(r, share) > 0 else math.nan}
              for r in lsh.itertuples()]
    text = "; ".join(f"at fraction {_f(v['fraction'])}: {what} share {v[share]:.2f} vs MAC share "
                     f"{v['mac_share']:.3f}, realized saving {v['realized_saving']:.2f}"
                     for v in values)
    if what == "energy":
        sources = set()
        for s in lsh["energy_source"]:
            sources.update(x.strip() for x in str(s).split(","))
        if sources != {"measured"}:
            return Claim(key, claim, rule, NOT_MEASURED,
                         "energy is ESTIMATED from a per-operation model, not measured, so it "
                         "follows the MAC and byte counts by construction; estimated " + text,
                         values)
    op = values[0]["realized_saving"]
    verdict = HOLDS if _at_least(op, REALIZED_MIN) else FAILS
    return Claim(key, claim, rule, verdict, text, values)


def _claim_scaling(summary) -> Claim:
    key, claim = "scaling", "Near-linear speedup with cores"
    rule = (f"LSH's parallel efficiency from the fewest to the most threads, speedup / thread "
            f"ratio, is at least {SCALING_EFFICIENCY_MIN:g} at its smallest active fraction, "
            "judged on Hogwild (asynchronous) training when the run has it, as the paper's "
            "claim is, else on synchronous training")
    if "threads" not in summary.columns or "kind" not in summary.columns:
        return _not_measured(key, claim, rule, "no thread sweep in this run")
    lsh = summary[(summary["kind"] == "lsh") & summary["threads"].notna()
                  & summary["train_s"].map(finite)]
    if "mode" in lsh.columns:
        hog = lsh[lsh["mode"] == "hogwild"]
        lsh = hog if len(hog) else lsh[lsh["mode"] != "hogwild"]
        if len(lsh) and lsh["method"].nunique() > 1:  # several LSH labels: the first
            lsh = lsh[lsh["method"] == lsh["method"].iloc[0]]
    threads = sorted(set(int(t) for t in lsh["threads"]))
    if len(threads) < 2:
        return _not_measured(key, claim, rule, "no thread sweep in this run (LSH was run at "
                             f"{'one thread count' if threads else 'no thread count'})")
    lo, hi = threads[0], threads[-1]
    values = []
    for frac, g in lsh.groupby("fraction", sort=True):
        t = {int(r.threads): float(r.train_s) for r in g.itertuples()}
        if lo in t and hi in t and t[hi] > 0:
            speedup = t[lo] / t[hi]
            values.append({"fraction": float(frac), "threads": [lo, hi], "speedup": speedup,
                           "efficiency": speedup / (hi / lo)})
    if not values:
        return _not_measured(key, claim, rule, f"no LSH fraction was run at both {lo} and {hi} "
                                               "threads")
    op = values[0]["efficiency"]
    text = f"{lsh['method'].iloc[0]}: " + "; ".join(f"at fraction {_f(v['fraction'])}: {v['speedup']:.2f}x from {lo} to {hi} "
                     f"threads (efficiency {v['efficiency']:.2f})" for v in values)
    return Claim(key, claim, rule, HOLDS if _at_least(op, SCALING_EFFICIENCY_MIN) else FAILS, text,
                 values)


def _judge(summary) -> list[Claim]:
    claims = [_claim_macs(summary), _claim_accuracy(summary), _claim_baselines(summary),
              _claim_realized(summary, "time"), _claim_realized(summary, "energy"),
              _claim_scaling(summary)]
    return [_flag_notes(c, summary) for c in claims]


def lsh_labels(summary) -> list[str]:
    """The labels of the run's LSH methods (kind ``lsh``), in the order they first appear."""
    if "kind" not in summary.columns or summary.empty:
        return []
    return list(dict.fromkeys(summary.loc[summary["kind"] == "lsh", "method"].astype(str)))


def check_claims(summary, *, smoke: str | None = None) -> list[Claim]:
    """Every claim, judged on one run's :func:`~lshprof.analysis.summary.summarize` table.
    ``smoke``: the run's smoke-run note (:func:`lshprof.analysis.flags.smoke_note`), which
    every claim then carries.

    The claims are judged on one LSH label, the first the run has, and each says which
    (``measured`` starts with it). A run with several LSH labels (a scenario's variants, a
    parameter grid) has each of the others judged the same way, and every claim notes
    their verdicts."""
    labels = lsh_labels(summary)
    if len(labels) <= 1:
        claims = _judge(summary)
        per_label = {labels[0]: claims} if labels else {}
    else:
        per_label = {lab: _judge(summary[(summary["kind"] != "lsh")
                                         | (summary["method"] == lab)])
                     for lab in labels}
        # scaling chooses its own label (Hogwild rows first), among all of them
        claims = [c if c.key != "scaling" else _flag_notes(_claim_scaling(summary), summary)
                  for c in per_label[labels[0]]]
    if labels:
        for i, c in enumerate(claims):
            if c.key == "scaling":  # its text names the label it was judged on
                continue
            if c.verdict != NOT_MEASURED or c.values:
                c.measured = f"{labels[0]}: {c.measured}"
            if len(labels) > 1:
                rest = "; ".join(f"{lab}: {per_label[lab][i].verdict}" for lab in labels[1:])
                c.notes.append(f"judged on {labels[0]}, the first of {len(labels)} LSH settings; "
                               f"the others: {rest}")
    if smoke:
        for c in claims:
            c.notes.insert(0, smoke)
    return claims
