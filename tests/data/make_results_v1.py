"""Makes tests/data/results-v1/ with lshprof's results format 1 (commit 1d951ac, before
format 2): ``run/`` is a run folder of a tiny two-cell, two-epoch run (``run.json`` and
``measurements.csv``), ``rows.pickle`` the same rows as the runner made them (plain
Python values), and ``expected.json`` the DataFrame that version's ``load_results`` read
from the folder (columns, dtypes, values; floats as their repr).

Run it with the version-1 code first on the path::

    git archive 1d951ac lshprof | tar -x -C /tmp/v1src
    PYTHONPATH=/tmp/v1src python tests/data/make_results_v1.py tests/data/results-v1
"""
import json, math, pickle, shutil, sys
from pathlib import Path
import numpy as np

out = Path(sys.argv[1])
from lshprof.data import gaussian_clusters
from lshprof.experiment.runner import Runner
from lshprof.experiment import results
from lshprof.experiment.results import load_results
assert results.FORMAT_VERSION == 1

folder = out / "run"
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
data = gaussian_clusters(120, 40, n_features=8, seed=1)
with Runner(folder, scenario={"name": "v1-fixture"}, energy="estimate") as runner:
    for label, method, params, fraction in (("dense", "dense", {}, None),
                                            ("lsh", "lsh", {"fraction": 0.25}, 0.25)):
        cid = f"{label}|fraction={'-' if fraction is None else repr(fraction)}|seed=0|threads=1"
        kw = {} if fraction is None else {"fraction": fraction}
        runner.run_cell(label, method, params, data, hidden=[16], epochs=2, batch_size=32,
                        extra={"cell": cid}, **kw)
    rows = runner.rows

def plain(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v

(out / "rows.pickle").write_bytes(pickle.dumps([plain(r) for r in rows], protocol=4))
df = load_results(folder)
def cell(v):
    if isinstance(v, float):
        return None if math.isnan(v) else repr(v)   # exact, as text
    if isinstance(v, np.generic):
        return cell(v.item())
    return v
expected = {"columns": list(df.columns), "dtypes": {c: str(t) for c, t in df.dtypes.items()},
            "values": {c: [cell(v) for v in df[c]] for c in df.columns if c != "run_path"}}
(out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
