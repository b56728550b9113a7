"""``lshprof quality``: how well LSH tables pick a layer's most active nodes.

One ``n_in -> n_out`` ReLU layer is first trained as a dense layer (one hidden
layer MLP, ``--train-epochs`` epochs on generated Gaussian clusters in ``n_in``
dimensions), so its weights have the structure training gives; with
``--train-epochs 0`` the weights stay at their random initialisation. Then, for
every hash family, policy and fraction asked for, an LSH layer with those same
weights chooses nodes for the held-out samples, and each choice is scored against
the exact top-k of the same size and a random set of the same size.
"""

from __future__ import annotations

import argparse
import sys


from lshprof.cli.app import output_target, plain, write_results
from lshprof.errors import ConfigError

__all__ = ["run_quality"]


def _family_params(family: str, args) -> dict:
    if family in ("wta", "dwta"):
        return {"K": args.wta_K, "bin_size": args.bin_size}
    return {"K": args.K}


def run_quality(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lshprof.measure.threads import limit_threads
    from lshprof.data import gaussian_clusters
    from lshprof.nn.layers import make_layer
    from lshprof.nn.lsh import FAMILIES, POLICIES, TRANSFORMS
    from lshprof.nn.mlp import MLP, train

    for name, chosen, valid in (("family", args.families, FAMILIES),
                                ("policy", args.policies, POLICIES),
                                ("transform", [args.transform], TRANSFORMS)):
        bad = [c for c in chosen if c not in valid]
        if bad:
            raise ConfigError(f"unknown {name} {bad[0]!r}; valid: {', '.join(valid)}")
    if args.json:
        output_target(args.json, "--json")
    console = Console(stderr=True)
    data = gaussian_clusters(args.n_train, args.n_queries, n_features=args.n_in, seed=args.seed)
    with limit_threads(args.threads):
        model = MLP.build(args.n_in, [args.n_out], int(data.y_train.max()) + 1, seed=args.seed)
        if args.train_epochs:
            train(model, data.X_train, data.y_train, epochs=args.train_epochs, batch_size=32,
                  seed=args.seed)
        W, b = model.layers[0].W, model.layers[0].b
        weights = (f"after {args.train_epochs} dense epoch(s)" if args.train_epochs
                   else "at initialisation")
        console.print(plain(f"quality: {args.n_in} -> {args.n_out} ReLU layer, weights "
                            f"{weights}, {args.n_queries} held-out queries, L={args.L}, "
                            f"transform {args.transform}"))
        rows = []
        for family in args.families:
            for policy in args.policies:
                for fraction in args.fractions:
                    layer = make_layer("lsh", args.n_in, args.n_out, fraction=fraction,
                                       family=family, policy=policy, L=args.L,
                                       probes=args.probes, transform=args.transform,
                                       pool=args.pool, quality=True, seed=args.seed,
                                       **_family_params(family, args))
                    layer.W[:] = W
                    layer.b[:] = b
                    layer.forward(data.X_test, train=False)
                    s = layer.selection_summary(layer.selection_stats())
                    m = layer.macs.counts()
                    rows.append({
                        "family": family, "policy": policy, "fraction": fraction,
                        "params": {k: v for k, v in layer.params.items() if k != "quality"},
                        **s,
                        "hash_macs_per_query": m.hash / args.n_queries,
                        "hash_adds_per_query": m.hash_adds / args.n_queries,
                        "hash_compares_per_query": m.hash_compares / args.n_queries,
                        "table_bytes": layer.memory_bytes()["tables"],
                    })
    table = Table(title=f"LSH selection quality, {args.n_in} -> {args.n_out} "
                        f"(recall of the exact top-k; share of positive pre-activation mass)")
    for col in ("family", "policy", "fraction", "chosen/query", "recall", "mass",
                "random recall", "random mass", "top-k mass", "AUC top-k", "AP top-k",
                "AUC active", "Spearman", "hash MACs/query", "hash adds/query"):
        table.add_column(col, justify="left" if col in ("family", "policy") else "right",
                         no_wrap=True)
    for r in rows:
        table.add_row(r["family"], r["policy"], f"{r['fraction']:g}",
                      f"{r['chosen_per_query']:.1f}", f"{r['recall']:.3f}", f"{r['mass']:.3f}",
                      f"{r['random_recall']:.3f}", f"{r['random_mass']:.3f}",
                      f"{r['topk_mass']:.3f}", f"{r['auc_topk']:.3f}", f"{r['ap_topk']:.3f}",
                      f"{r['auc_active']:.3f}", f"{r['spearman']:.3f}",
                      f"{r['hash_macs_per_query']:,.0f}",
                      f"{r['hash_adds_per_query']:,.0f}")
    out = Console(width=None if sys.stdout.isatty() else 220)
    out.print(table)
    out.print("recall: share of the exact top-k (same size as the chosen set) that the tables "
              "chose; mass: share of sum(max(z, 0)) over all nodes that the chosen set holds; "
              "random: a random set of the same size; top-k mass: the best any set of that size "
              "can hold. With shortfall=keep a query may get fewer nodes than the budget "
              "(chosen/query). AUC/AP: ROC AUC and average precision of the tables' collision "
              "counts (how many tables' probed buckets hold the node) against the exact top-k "
              "and against the active nodes (z > 0); AUC 0.5 is chance. Spearman: rank "
              "correlation of the collision count with the pre-activation.")
    if args.json:
        write_results(args, rows)
    return 0
