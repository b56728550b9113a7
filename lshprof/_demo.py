"""``lshprof demo``: every method on the same generated problem, one table.

Each method trains an MLP with the same initial weights (same seed), the same
data order and the same thread count. Before timing, each method runs one tiny
batch so that numba compilation (or loading it from the cache) is timed apart and
never counted in the training time.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np

from ._io import check_json_target, write_results_json
from .errors import ConfigError

__all__ = ["demo_methods", "run_demo"]


def demo_methods(fraction: float) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, method, params) for every method at one active fraction.

    Adaptive dropout has no fraction parameter: ``beta = logit(fraction)`` makes its
    keep probability about ``fraction`` for nodes near zero pre-activation; the
    table reports the fraction it really used.
    """
    beta = math.log(fraction / (1 - fraction)) if fraction < 1 else 10.0
    return [
        ("dense", "dense", {}),
        ("dropout", "dropout", {"p": fraction}),
        ("adaptive_dropout", "adaptive_dropout", {"alpha": 1.0, "beta": round(beta, 4)}),
        ("wta", "wta", {"fraction": fraction}),
        ("wta-lifetime", "wta", {"fraction": fraction, "mode": "lifetime"}),
        ("topk", "topk", {"fraction": fraction}),
        ("lsh", "lsh", {"fraction": fraction}),
    ]


def _train_one(method: str, params: dict, data, args, opt_params):
    from .mlp import MLP, train

    model = MLP.build(data.X_train.shape[1], args.hidden, int(data.y_train.max()) + 1,
                      method=method, params=params, seed=args.seed)
    history = train(model, data.X_train, data.y_train, epochs=args.epochs,
                    batch_size=args.batch_size, optimizer=args.optimizer,
                    optimizer_params=opt_params, X_eval=data.X_test, y_eval=data.y_test,
                    seed=args.seed, threads=args.threads)
    return model, history


def run_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .data import gaussian_clusters
    from .macs import MacCounts

    console = Console(stderr=True)
    check_json_target(args.json)
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

    # warm-up: one epoch on 8 samples compiles (or loads from cache) a method's kernels
    warm = argparse.Namespace(**{**vars(args), "epochs": 1})
    tiny = type(data)(data.X_train[:8], data.y_train[:8], data.X_test[:8], data.y_test[:8])
    results = []
    for label, method, params in methods:
        t0 = time.perf_counter()
        _train_one(method, params, tiny, warm, opt_params)
        warmup_s = time.perf_counter() - t0

        model, history = _train_one(method, params, data, args, opt_params)
        train_macs = sum((h.train_macs for h in history), MacCounts())
        n_seen = args.n_train * args.epochs
        n_hidden = len(model.layers) - 1
        active = [float(np.mean([h.layer_active_fraction[i] for h in history]))
                  for i in range(n_hidden)]
        quality = _selection_quality(model, data.X_test)
        row = {
            "method": label,
            "params": params,
            "test_accuracy": history[-1].eval_accuracy,
            "final_loss": history[-1].loss,
            "hidden_active_fraction_measured": active,
            "train_macs": train_macs.as_dict(),
            "train_macs_per_sample": train_macs.total / n_seen,
            "mac_share_of_dense": train_macs.share,
            "train_wall_s": sum(h.train_wall_s for h in history),
            "warmup_wall_s": warmup_s,
            "selection_quality": quality,
        }
        results.append(row)
        console.print(f"  {label}: test accuracy {row['test_accuracy']:.3f}, "
                      f"{row['train_wall_s']:.2f} s")

    table = Table(title=f"lshprof demo: every method at fraction {args.fraction} "
                        f"({args.threads} thread(s))")
    for col in ("method", "params", "hidden active", "test acc", "train MACs/sample",
                "MACs vs dense", "choosing share", "recall", "mass", "random recall", "train s",
                "warm-up s"):
        table.add_column(col, justify="left" if col in ("method", "params") else "right",
                         no_wrap=col != "params")
    for r in results:
        m = r["train_macs"]
        table.add_row(
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
        )
    out = Console(width=None if sys.stdout.isatty() else 170)
    out.print(table)
    out.print(
        "MACs are exact counts of the multiply-accumulates performed in training "
        "(forward, select, hash, re-hash, backward); 'MACs vs dense' divides by what dense "
        "layers of the same shapes would perform on the same batches; 'choosing share' is the "
        "part spent choosing nodes (select, hash, re-hash). For LSH layers, 'recall' of the exact "
        "top-k and the share of positive pre-activation 'mass' captured are measured after "
        "training on the test set (random recall: a random set of the same size). Times are "
        "wall-clock on this machine, one run, warm-up excluded.")
    if args.json:
        write_results_json(args, results)
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
    out = [(layer.selection_stats() - b).summary() for layer, b in zip(lsh, before)]
    for layer in lsh:
        layer.params["quality"] = False
    return out


def _quality_cells(quality: list) -> list[str]:
    if not quality:
        return ["-", "-", "-"]
    return [" / ".join(f"{q[k]:.0%}" for q in quality) for k in ("recall", "mass", "random_recall")]

