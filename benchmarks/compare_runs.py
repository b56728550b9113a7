"""Do two runs of one scenario measure the same things? Exact comparison of what is deterministic.

    python benchmarks/compare_runs.py RUN_A RUN_B

For every cell of either run: the cell ids must match, and per epoch the MAC counts of
every phase (and the other work counts), the layers' active fractions, the loss, the
training and test accuracy must be equal. Times and energy are not compared (they are
measurements, not results). Prints one line per compared quantity and exits 1 on the
first kind of difference it finds, 0 when everything is identical. Either run may be in
any results format version lshprof reads (a run made before a change against one made
after it is the point).
"""

from __future__ import annotations

import json
import math
import sys

from lshprof.experiment.execute import MAC_COLUMNS
from lshprof.experiment.results import load_results

EXACT = [*MAC_COLUMNS.values(), "macs_total", "eval_macs_total", "eval_macs_dense_equivalent",
         "eval_bytes_moved", "n_train", "n_eval", "layer_method", "output_method", "params",
         "hidden", "batch_size", "optimizer"]
VALUES = ["loss", "train_accuracy", "eval_accuracy", "mac_share"]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def compare(a_path: str, b_path: str) -> int:
    a, b = load_results(a_path), load_results(b_path)
    failures = 0
    ids_a, ids_b = list(dict.fromkeys(a["cell"])), list(dict.fromkeys(b["cell"]))
    same_ids = sorted(ids_a) == sorted(ids_b)
    print(f"cell ids: {len(ids_a)} vs {len(ids_b)}, "
          f"{'identical' if same_ids else 'DIFFERENT'}")
    failures += not same_ids
    common = [c for c in ids_a if c in set(ids_b)]
    for col in EXACT + VALUES + ["layer_active_fraction"]:
        if col not in a.columns and col not in b.columns:
            continue
        diff = []
        for cid in common:
            ga = a[a["cell"] == cid].sort_values("epoch")
            gb = b[b["cell"] == cid].sort_values("epoch")
            if len(ga) != len(gb):
                diff.append(f"{cid}: {len(ga)} vs {len(gb)} epochs")
                continue
            va = list(ga[col]) if col in ga.columns else [None] * len(ga)
            vb = list(gb[col]) if col in gb.columns else [None] * len(gb)
            if col == "layer_active_fraction":
                va = [json.loads(v) for v in va]
                vb = [json.loads(v) for v in vb]
            for e, (x, y) in enumerate(zip(va, vb), 1):
                if not _same(x, y):
                    diff.append(f"{cid} epoch {e}: {x!r} vs {y!r}")
        failures += bool(diff)
        print(f"{col}: {'identical' if not diff else f'{len(diff)} DIFFERENCES, first ' + diff[0]}"
              f" ({len(common)} cells)")
    print("RESULT:", "identical" if not failures else f"{failures} quantities differ")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(compare(sys.argv[1], sys.argv[2]))
