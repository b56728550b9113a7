"""What can make a cell's figures wrong, read from its rows: every table, report and check
says it next to the figures.

A cell (one method, fraction, seed, thread count ...) is *flagged* by rules on its own
measurement rows, so old runs are judged the same way as new ones wherever their rows
hold the columns a rule needs (a rule whose columns are missing flags nothing). Each
:class:`Flag` has a name from :data:`lshprof.names.CELL_FLAGS` and one line that says what
was seen, the likely cause and the fix:

``compiled``
    numba compiled (or loaded from its cache) inside a measured epoch (``jit_s`` or
    ``eval_jit_s`` above 0). The warm-up should have compiled every code path; the time is
    left out of every time figure (:func:`epoch_train_s`), and a measured energy of such a
    cell, which includes it, is not a figure.
``below_budget``
    a sparse layer's measured active fraction is below :data:`BUDGET_SHORT` of the budget
    (the cell's fraction): the layer computed far fewer nodes than the method claims to
    (an LSH layer whose codes are too long leaves its buckets empty).
``random_recall``
    with ``quality = true``: the LSH layer's recall of the exact top-k is not above a random
    set's of the same size: the hash chooses no better than chance.
``chance``
    the final test accuracy is at most chance (the test set's majority-class share,
    ``chance_accuracy``) plus :func:`chance_margin`: nothing was learned.
``busy``
    other processes used more CPU while the cell was timed than the cores the cell left
    free (less :data:`BUSY_MARGIN_CORES`), as pyperf warns about a busy system: its timing
    is unstable.
``energy``
    a measured energy reading came with a caveat (its ``energy_note``: a counter that may
    have wrapped unseen, a reset, an unreadable zone).

The run itself may be a *smoke run* (``lshprof run --quick``): :func:`smoke_note` says so,
with the sizes it used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from lshprof.names import CELL_FLAGS, TIMING_FLAGS

__all__ = ["Flag", "cell_flags", "epoch_train_s", "smoke_note", "is_smoke",
           "sizes_used", "numbers",
           "chance_margin", "json_value", "join_flags", "split_flags", "timing_unstable", "BUDGET_SHORT",
           "BUSY_MARGIN_CORES", "SMOKE_NOTE"]

#: a sparse layer whose measured active fraction is below this share of its budget is flagged
BUDGET_SHORT = 0.5
#: the noise margin of "other processes' CPU use" (CPU-time counters tick every 10 ms, so
#: a short epoch's figure is uncertain by a few tenths of a core)
BUSY_MARGIN_CORES = 0.5
#: what a smoke run's every verdict carries
SMOKE_NOTE = "smoke run (--quick): sizes reduced; verdicts are not evidence"


@dataclass(frozen=True)
class Flag:
    """One thing wrong with a cell's figures: a name from :data:`~lshprof.names.CELL_FLAGS`
    and one line (what was seen, the likely cause, the fix)."""

    name: str
    message: str

    def __post_init__(self):
        if self.name not in CELL_FLAGS:
            raise ValueError(f"unknown flag {self.name!r}; known: {', '.join(CELL_FLAGS)}")


def join_flags(names) -> str:
    """Flag names as the ``flags`` column holds them: ``"compiled;busy"`` (in
    :data:`~lshprof.names.CELL_FLAGS` order; ``""`` for none)."""
    names = set(names)
    return ";".join(n for n in CELL_FLAGS if n in names)


def split_flags(text) -> list[str]:
    """The names in a ``flags`` column value (missing or empty: none)."""
    if not isinstance(text, str) or not text:
        return []
    return [n for n in text.split(";") if n]


def timing_unstable(flags_text) -> list[str]:
    """The flags of a ``flags`` value that make its timing unstable (``compiled``, ``busy``)."""
    return [n for n in split_flags(flags_text) if n in TIMING_FLAGS]


# -- numbers ------------------------------------------------------------------------------------------
def _float(v) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def numbers(g, name: str):
    """Column ``name`` of ``g`` as floats: text that is no number, and a column ``g`` does
    not have, are NaN (missing), never 0."""
    import pandas as pd

    if name not in g.columns:
        return pd.Series(math.nan, index=g.index, dtype=float)
    return pd.to_numeric(g[name], errors="coerce")


def json_value(v, kind=list):
    """A column value that holds JSON text of ``kind`` (as ``load_results`` gives lists and
    dicts), or the value itself when it already is one; None for anything else."""
    if isinstance(v, kind):
        return v
    if isinstance(v, str) and v:
        try:
            out = json.loads(v)
        except ValueError:
            return None
        return out if isinstance(out, kind) else None
    return None


def epoch_train_s(g):
    """Each epoch's training time of rows ``g`` (one cell), in seconds: the wall time of the
    training passes less lshprof's selection-quality measurement and less numba compilation
    (``jit_s``), neither of which is the method's work. A Hogwild epoch that compiled has no
    time (NaN): its workers' compile time overlaps their work and cannot be taken out.
    Missing or infinite inputs give NaN, never 0."""
    import numpy as np

    elapsed = numbers(g, "wall_elapsed_s")
    quality = numbers(g, "wall_quality_s").fillna(0.0)
    jit = numbers(g, "jit_s").fillna(0.0)
    out = elapsed - quality - jit
    if "mode" in g.columns:
        hog = (g["mode"] == "hogwild") & (jit > 0)
        out = out.where(~hog, math.nan)
    return out.where(np.isfinite(out) & (out > 0), math.nan)


def chance_margin(chance: float, n_eval: float) -> float:
    """How far above chance an accuracy must be to count as learned: two standard errors of
    a chance-level accuracy on ``n_eval`` test samples, and at least one point."""
    if not (math.isfinite(chance) and math.isfinite(n_eval) and n_eval > 0):
        return 0.01
    return max(0.01, 2.0 * math.sqrt(max(chance * (1 - chance), 0.0) / n_eval))


# -- the rules --------------------------------------------------------------------------------------------
def _compiled(g) -> Flag | None:
    jit = numbers(g, "jit_s").fillna(0.0) + numbers(g, "eval_jit_s").fillna(0.0)
    if not (jit > 0).any():
        return None
    epochs = [int(e) for e, j in zip(numbers(g, "epoch"), jit) if j > 0 and math.isfinite(e)]
    hog = "mode" in g.columns and (g["mode"] == "hogwild").any()
    left = ("this Hogwild cell's time and energy are not figures" if hog else
            "left out of every time figure, and a measured energy of those epochs is not a figure")
    return Flag("compiled", f"{float(jit.sum()):.3g} s of numba compilation inside measured "
                f"epoch(s) {', '.join(map(str, epochs))}: {left}; the warm-up missed a code path "
                "(please report it with the scenario)")


def _selection(g):
    """(budget, [(layer index, active fraction, selection summary or None)]) of the last row."""
    last = g.iloc[-1]
    budget = _float(last.get("fraction"))
    active = json_value(last.get("layer_active_fraction")) or []
    sel = json_value(last.get("layer_selection")) or [None] * len(active)
    return budget, [(i, _float(a), s if isinstance(s, dict) else None)
                    for i, (a, s) in enumerate(zip(active, sel + [None] * (len(active) - len(sel))))]


def _layer_cause(s: dict | None, last) -> str:
    """The likely cause and fix of a layer that chose too few nodes."""
    if s is None:
        return "check the method's parameters"
    try:  # the LSH layer's own diagnosis, where the nn package provides one
        from lshprof.nn.lsh import selection_diagnosis
    except ImportError:
        selection_diagnosis = None
    if selection_diagnosis is not None:
        try:
            text = selection_diagnosis(s, _float(last.get("fraction")))
        except Exception:  # a diagnosis must never hide the flag itself
            text = None
        if text:
            return text
    short, empty = _float(s.get("short_fraction")), _float(s.get("empty_bucket_fraction"))
    parts = []
    if math.isfinite(short):
        parts.append(f"the tables returned fewer nodes than the budget for {short:.0%} of queries")
    if math.isfinite(empty):
        parts.append(f"{empty:.0%} of the probed buckets were empty")
    why = "; ".join(parts) or "the tables returned too few nodes"
    return f"{why}: the codes are too long for the layer (lower K) or set shortfall = \"pad\""


def _below_budget(g) -> Flag | None:
    budget, layers = _selection(g)
    if not (math.isfinite(budget) and budget > 0):
        return None
    last = g.iloc[-1]
    low = [(i, a, s) for i, a, s in layers if math.isfinite(a) and a < 1.0
           and a < BUDGET_SHORT * budget]
    if not low:
        return None
    i, a, s = low[0]
    return Flag("below_budget", f"layer {i + 1} computed {a:.3%} of its nodes against a budget of "
                f"{budget:.3g}: {_layer_cause(s, last)}")


def _random_recall(g) -> Flag | None:
    _, layers = _selection(g)
    for i, _a, s in layers:
        if not s:
            continue
        r, rr = _float(s.get("recall")), _float(s.get("random_recall"))
        if math.isfinite(r) and math.isfinite(rr) and r <= rr:
            return Flag("random_recall", f"layer {i + 1}'s hash recalled {r:.3f} of the exact "
                        f"top-k, no more than a random set of the same size ({rr:.3f}): it "
                        "chooses no better than chance; try another family, K or L "
                        "(lshprof quality compares them)")
    return None


def _chance(g) -> Flag | None:
    last = g.iloc[-1]
    chance, acc = _float(last.get("chance_accuracy")), _float(last.get("eval_accuracy"))
    if not (math.isfinite(chance) and math.isfinite(acc)):
        return None
    margin = chance_margin(chance, _float(last.get("n_eval")))
    if acc > chance + margin:
        return None
    return Flag("chance", f"test accuracy {acc:.3f} is at chance (the majority class is "
                f"{chance:.3f} of the test set): nothing was learned; its accuracy and time "
                "figures say nothing about the method (check the learning rate, the data and "
                "the selection)")


def _busy(g) -> Flag | None:
    other, cores = numbers(g, "other_cpu_cores"), numbers(g, "machine_cores")
    threads = numbers(g, "threads").fillna(1.0)
    if not other.notna().any() or not cores.notna().any():
        return None
    free = (cores - threads).clip(lower=0.0)
    busy = other > (free - BUSY_MARGIN_CORES).clip(lower=BUSY_MARGIN_CORES)
    if not busy.any():
        return None
    worst = float(other[busy].max())
    epochs = [int(e) for e, b in zip(numbers(g, "epoch"), busy) if b and math.isfinite(e)]
    return Flag("busy", f"unstable timing: other processes used {worst:.2f} cores while epoch(s) "
                f"{', '.join(map(str, epochs))} ran with {int(threads.iloc[-1])} thread(s) on "
                f"{int(cores.dropna().iloc[-1])} core(s); run again on a quiet machine")


def _energy(g) -> Flag | None:
    src = g["energy_source"] if "energy_source" in g.columns else None
    notes = []
    for col, what in (("energy_note", ""), ("eval_energy_note", "evaluation: ")):
        if col not in g.columns:
            continue
        for i, note in enumerate(g[col]):
            if not isinstance(note, str) or not note:
                continue
            if src is not None and str(src.iloc[i]) == "estimated":
                continue  # the estimate's standing label, shown as such everywhere
            if what + note not in notes:
                notes.append(what + note)
    if not notes:
        return None
    return Flag("energy", "energy reading: " + "; ".join(notes))


_RULES = (_compiled, _below_budget, _random_recall, _chance, _busy, _energy)


def cell_flags(g) -> list[Flag]:
    """The flags of one cell's rows ``g`` (its epochs), in :data:`CELL_FLAGS` order."""
    if g is None or len(g) == 0:
        return []
    g = g.sort_values("epoch") if "epoch" in g.columns else g
    return [f for f in (rule(g) for rule in _RULES) if f is not None]


# -- the run ---------------------------------------------------------------------------------------------
def is_smoke(meta: dict | None) -> bool:
    """Whether run.json ``meta`` is of a smoke run (``lshprof run --quick``)."""
    settings = ((meta or {}).get("scenario") or {}).get("settings") or {}
    return bool(settings.get("quick_applied"))


def smoke_note(meta: dict | None, rows=None) -> str | None:
    """For a smoke run, the line every table, report and verdict carries, with the sizes the
    run used (from ``rows``, else run.json); None for a full run."""
    if not is_smoke(meta):
        return None
    scen = (meta or {}).get("scenario") or {}
    shape = scen.get("data_shape") or {}
    parts = []
    if shape.get("n_train") is not None:
        parts.append(f"{shape['n_train']} train / {shape.get('n_test', '?')} test samples")
    if rows is not None:
        parts += sizes_used(rows)
    return SMOKE_NOTE + (f" (used: {', '.join(parts)})" if parts else "")


def sizes_used(rows) -> list[str]:
    """What ``rows`` were measured with, in words: epochs, active fractions, seeds (what a
    smoke run's note and the report's header show, not what a description promises)."""
    parts = []
    if rows is None or not len(rows):
        return parts
    if "epoch" in rows.columns:
        parts.append(f"{int(numbers(rows, 'epoch').max())} epoch(s)")
    fr = sorted({float(x) for x in numbers(rows, "fraction").dropna()})
    if fr:
        parts.append("fractions " + ", ".join(f"{x:g}" for x in fr))
    if "seed" in rows.columns:
        parts.append(f"{rows['seed'].nunique()} seed(s)")
    return parts
