"""``lshprof demo``: every method on the same generated problem, one table.

Each method trains an MLP with the same initial weights (same seed), the same
data order and the same thread count. Before timing, each method runs one tiny
batch so that numba compilation (or loading it from the cache) is timed apart and
never counted in the training time.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from lshprof.cli.app import output_folder, output_target, plain, write_results
from lshprof.errors import ConfigError

__all__ = ["demo_methods", "run_demo"]


def demo_methods(fraction: float) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, params) for every method at one active fraction (adaptive dropout
    through ``beta``: see :func:`lshprof.experiment.sweep.sweep_params`)."""
    from lshprof.experiment.sweep import sweep_params

    methods = [("dense", "dense"), ("dropout", "dropout"),
               ("adaptive_dropout", "adaptive_dropout"), ("wta", "wta"),
               ("wta-lifetime", "wta"), ("topk", "topk"), ("lsh", "lsh")]
    out = []
    for label, method in methods:
        params = sweep_params(method, fraction)
        if method == "adaptive_dropout":
            params = {"alpha": 1.0, **params}
        if label == "wta-lifetime":
            params["mode"] = "lifetime"
        out.append((label, method, params))
    return out


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lshprof.data import gaussian_clusters
    from lshprof.experiment.runner import Runner, rows_macs
    from lshprof.experiment.sweep import Cell, NetworkSpec, TrainingSpec

    console = Console(stderr=True)
    if args.json:
        output_target(args.json, "--json")
    if args.out is not None:
        output_folder(args.out, "-o")
    methods = demo_methods(args.fraction)
    if args.methods:
        valid = [label for label, _, _ in methods]
        unknown = [m for m in args.methods if m not in valid]
        if unknown:
            raise ConfigError(f"unknown demo method {unknown[0]!r}; valid: {', '.join(valid)}")
        methods = [m for m in methods if m[0] in args.methods]
    opt_params = {} if args.lr is None else {"lr": args.lr}

    data = gaussian_clusters(args.n_train, args.n_test, seed=args.seed)
    console.print(
        f"demo: {args.n_train} train / {args.n_test} test samples, {data.X_train.shape[1]} features, "
        f"hidden {args.hidden}, fraction {args.fraction}, {args.epochs} epochs, batch "
        f"{args.batch_size}, {args.optimizer}, {args.threads} thread(s)")

    scenario = {"name": "demo", "args": {k: v for k, v in vars(args).items() if k != "func"}}
    results = []
    with Runner(args.out, scenario=scenario, energy=args.energy, powercap_root=args.powercap_root,
                energy_model=args.energy_model, idle_s=args.idle_baseline, threads=args.threads,
                notify=lambda msg: console.print(plain(msg))) as runner:
        source = runner.meter.source
        for label, method, params in methods:
            cell = Cell(label, method, params, None if method == "dense" else args.fraction,
                        seed=args.seed, threads=args.threads, optimizer_params=opt_params,
                        network=NetworkSpec(tuple(args.hidden)),
                        training=TrainingSpec(args.epochs, args.batch_size, args.optimizer))
            result = runner.run(cell, data=data, keep_model=True)
            model, rows = result.model, result.rows
            train_macs = rows_macs(rows)
            n_seen = args.n_train * args.epochs
            n_hidden = len(model.layers) - 1
            active = [float(np.mean([r["layer_active_fraction"][i] for r in rows]))
                      for i in range(n_hidden)]
            energy = [r.get("energy_j") for r in rows]
            row = {
                "method": label,
                "params": params,
                "test_accuracy": rows[-1]["eval_accuracy"],
                "final_loss": rows[-1]["loss"],
                "hidden_active_fraction_measured": active,
                "train_macs": train_macs.as_dict(),
                "train_macs_per_sample": train_macs.total / n_seen,
                "mac_share_of_dense": train_macs.share,
                # numba compilation and the quality measurement are not the method's time
                "train_wall_s": _train_s(rows),
                "warmup_wall_s": rows[0]["warmup_s"],
                "train_energy_j": None if None in energy else sum(energy),
                "energy_source": source,
                "selection_quality": _selection_quality(model, data.X_test),
            }
            results.append(row)
            console.print(f"  {label}: test accuracy {row['test_accuracy']:.3f}, "
                          f"{row['train_wall_s']:.2f} s")

    energy_col = {"measured": "energy J", "estimated": "energy J (est.)"}.get(source)
    table = Table(title=f"lshprof demo: every method at fraction {args.fraction} "
                        f"({args.threads} thread(s))")
    cols = ["method", "params", "hidden active", "test acc", "train MACs/sample", "MACs vs dense",
            "choosing share", "recall", "mass", "random recall", "train s", "warm-up s"]
    if energy_col:
        cols.append(energy_col)
    for col in cols:
        table.add_column(col, justify="left" if col in ("method", "params") else "right",
                         no_wrap=col != "params")
    for r in results:
        m = r["train_macs"]
        cells = [
            r["method"],
            ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "-",
            " / ".join(f"{a:.1%}" for a in r["hidden_active_fraction_measured"]),
            f"{r['test_accuracy']:.3f}",
            f"{r['train_macs_per_sample']:,.0f}",
            f"{r['mac_share_of_dense']:.1%}",
            f"{(m['select'] + m['hash'] + m['rehash']) / m['total']:.0%}" if m["total"] else "-",
            *_quality_cells(r["selection_quality"]),
            f"{r['train_wall_s']:.2f}",
            f"{r['warmup_wall_s']:.2f}",
        ]
        if energy_col:
            cells.append(f"{r['train_energy_j']:.3g}")
        table.add_row(*cells)
    out = Console(width=None if sys.stdout.isatty() else 200)
    out.print(table)
    out.print(
        "MACs are exact counts of the multiply-accumulates performed in training "
        "(forward, select, hash, re-hash, backward); 'MACs vs dense' divides by what dense "
        "layers of the same shapes would perform on the same batches; 'choosing share' is the "
        "part spent choosing nodes (select, hash, re-hash). For LSH layers, 'recall' of the exact "
        "top-k and the share of positive pre-activation 'mass' captured are measured after "
        "training on the test set (random recall: a random set of the same size). Times are "
        "wall-clock on this machine, one run, warm-up excluded.")
    if source == "estimated":
        out.print("Energy is ESTIMATED from a per-operation model of the MACs and bytes moved "
                  "(lshprof.measure.energy.estimate), not measured.")
    elif source == "measured":
        out.print(f"Energy is measured with the {runner.meter.name} backend over each method's "
                  "training passes.")
    if args.out:
        out.print(plain(f"measurements written to {args.out}"))
    if args.json:
        write_results(args, results)
    return 0


def _selection_quality(model, X) -> list:
    """Per hidden LSH layer, selection quality on ``X`` in inference mode (after training,
    so measuring costs no training time); empty for other methods."""
    lsh = [layer for layer in model.layers[:-1] if layer.method == "lsh"]
    if not lsh:
        return []
    for layer in lsh:
        layer.params["quality"] = True
    before = [layer.selection_stats() for layer in lsh]
    model.predict(X)
    out = [layer.selection_summary(layer.selection_stats() - b) for layer, b in zip(lsh, before)]
    for layer in lsh:
        layer.params["quality"] = False
    return out


def _train_s(rows) -> float:
    """The training seconds of ``rows`` (epochs) as every table counts them
    (:func:`lshprof.analysis.flags.epoch_train_s`); NaN when an epoch has none."""
    import pandas as pd

    from lshprof.analysis.summary import total
    from lshprof.analysis.flags import epoch_train_s

    return total(epoch_train_s(pd.DataFrame(rows)))


def _quality_cells(quality: list) -> list[str]:
    if not quality:
        return ["-", "-", "-"]
    return [" / ".join(f"{q[k]:.0%}" for q in quality) for k in ("recall", "mass", "random_recall")]

