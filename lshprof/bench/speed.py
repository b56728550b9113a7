"""``lshprof bench --suite speed``: do the sparse kernels turn saved MACs into saved time?

Every case times a dense layer and an LSH layer of the same shape side by side in one
process, alternating repeats (dense, lsh, dense, lsh, ...) so that a noisy machine
slows both alike, and reports the ratio of their median times against the ratio of
their multiply-accumulates:

* **step** = ``forward(x, train=True)`` (for lsh: hash, query, choose, compute the
  active nodes) + ``backward(grad, input_grad=True)`` + the optimizer step (Adam, the
  trainer's default; dense updates every row, lsh the rows its batch touched) + for
  lsh, the re-hash of updated rows that its schedule runs every ``rehash_every``
  batches, timed as a whole period of that many steps and divided by it.
* **MAC ratio** = dense MACs / lsh MACs of the same steps, by the layers' own counters
  (hashing and re-hashing included, :mod:`lshprof.measure.macs`).
* **realized saving** = speed ratio / MAC ratio: 1.0 means every saved multiplication
  became saved time.

The input of the wide output layer is what it sees in a network: the ReLU output of
a hidden layer (non-negative), drawn from a fixed seed; the hidden layers get the
same, since a hidden layer's input is an image or another ReLU layer. The gradient
at each active node is a fixed pseudo-random value (a loss would only add time that
both layers pay alike).

The goals come from lshprof's speed issue; each row prints PASS or MISS. Timings
vary from run to run, so no test asserts them: the suite is a report.
"""

from __future__ import annotations

import argparse
import json
import os
from statistics import median
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lshprof.errors import ConfigError

__all__ = ["run_speed", "build_parser", "CASES"]


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    n_in: int
    n_out: int
    threads: int
    goal: float | None  # least speed ratio (lsh vs dense step)
    saving_goal: float | None = None  # least realized saving


#: the goal cases: (name, batch, n_in, n_out, threads, least speedup, least realized saving)
CASES = (
    Case("wide b128 1t", 128, 128, 100_000, 1, 8.0, 0.5),
    Case("wide b128 2t", 128, 128, 100_000, 2, None, None),
    Case("hidden 784 b128", 128, 784, 1000, 1, 3.0),
    Case("hidden 1000 b128", 128, 1000, 1000, 1, 3.0),
    Case("hidden 784 b1", 1, 784, 1000, 1, 3.0),
    Case("hidden 1000 b1", 1, 1000, 1000, 1, 3.0),
)
FRACTION = 0.05
SELECT_GOAL = 0.20  # selection's share of the lsh step, wide case
DENSE_GOAL = 0.80  # dense layer's rate against plain numpy matmul
MEMORY_GOAL = 1.5  # lsh layer bytes against dense layer bytes, wide case
THREAD_SLACK = 1.05  # 2 threads may be at most this much slower than 1 (timer noise)


def _now() -> float:
    return time.perf_counter()


@dataclass
class _Side:
    """One layer (dense or lsh) with its optimizer, inputs and gradient pool."""

    layer: Any
    opt: Any
    xs: list
    pool: Any
    i: int = 0
    macs: int = 0
    steps: int = 0
    phase_s: dict = field(default_factory=dict)

    def step(self, timed: bool = False) -> None:
        x = self.xs[self.i % len(self.xs)]
        self.i += 1
        lay = self.layer
        t0 = _now()
        out = lay.forward(x, train=True)
        t1 = _now()
        lay.backward(out.with_values(self.pool[:out.nnz]), input_grad=True)
        t2 = _now()
        self.opt.step()
        t3 = _now()
        lay.after_step()
        t4 = _now()
        if timed:
            for k, v in (("forward", t1 - t0), ("backward", t2 - t1), ("update", t3 - t2),
                         ("rehash", t4 - t3)):
                self.phase_s[k] = self.phase_s.get(k, 0.0) + v
            self.steps += 1


def _mac_total(counts) -> int:
    from lshprof.measure.macs import PHASES

    return sum(getattr(counts, p) for p in PHASES)


def _side(method: str, c: Case, seed: int, n_batches: int = 4) -> _Side:
    import numpy as np

    from lshprof.nn.layers import make_layer
    from lshprof.nn.optim import make_optimizer

    params = {"fraction": FRACTION} if method == "lsh" else {}
    layer = make_layer(method, c.n_in, c.n_out, seed=seed, **params)
    opt = make_optimizer("adam", [layer], lr=1e-4)
    rng = np.random.default_rng(seed + 1)
    xs = [np.maximum(rng.standard_normal((c.batch, c.n_in), dtype=np.float32), 0)
          for _ in range(n_batches)]
    pool = rng.standard_normal(c.batch * c.n_out, dtype=np.float32) * 1e-2
    return _Side(layer, opt, xs, pool)


def _timed(side: _Side, steps: int) -> float:
    side.layer.macs.reset()
    t0 = _now()
    for _ in range(steps):
        side.step(timed=True)
    return (_now() - t0) / steps


def _period(side: _Side) -> int:
    """Steps in one re-hash period of an lsh layer (1 for dense)."""
    p = side.layer.params
    return int(p.get("rehash_every", 1)) if "rehash_every" in p else 1


def run_case(c: Case, seed: int, repeats: int, budget_s: float) -> dict:
    from lshprof.measure.threads import limit_threads

    with limit_threads(c.threads):
        dense, lsh = _side("dense", c, seed), _side("lsh", c, seed)
        for s in (dense, lsh):  # warm-up: compile, build the tables, fill caches
            for _ in range(2):
                s.step()
        period = _period(lsh)
        # one lsh period (with its re-hash) per repeat; dense steps for about as long
        t_l = _timed(lsh, period)
        dense_macs_step = None
        t_d = _timed(dense, 1)
        n_dense = max(1, min(period, int(round(t_l * period / max(t_d, 1e-9) / 2))))
        td, tl = [t_d], [t_l]
        lsh_macs = _mac_total(lsh.layer.macs.counts()) / period
        dense_macs_step = _mac_total(dense.layer.macs.counts())
        start = _now()
        for r in range(1, repeats):
            td.append(_timed(dense, n_dense))
            tl.append(_timed(lsh, period))
            if _now() - start > budget_s:
                break
        # selection alone (hash + query + choose), timed between steps on the same inputs
        xin = [lsh.layer.prepare_input(x) for x in lsh.xs]
        sel = []
        for x in xin:
            t0 = _now()
            lsh.layer.choose(x, True)
            sel.append(_now() - t0)
    d, s = median(td), median(tl)
    speed = d / s
    mac_ratio = dense_macs_step / lsh_macs
    phases = {k: v / lsh.steps for k, v in lsh.phase_s.items()}
    dphases = {k: v / dense.steps for k, v in dense.phase_s.items()}
    return {"case": c.name, "threads": c.threads, "batch": c.batch, "n_in": c.n_in,
            "n_out": c.n_out, "repeats": len(td), "dense_s": d, "lsh_s": s,
            "dense_macs": dense_macs_step, "lsh_macs": lsh_macs, "mac_ratio": mac_ratio,
            "speed_ratio": speed, "realized": speed / mac_ratio,
            "select_s": median(sel), "select_share": median(sel) / s,
            "lsh_phases_s": phases, "dense_phases_s": dphases,
            "active_fraction": lsh.layer.active_seen / (lsh.layer.samples_seen * c.n_out),
            "goal": c.goal, "saving_goal": c.saving_goal}


# -- dense layer against plain numpy -------------------------------------------------------
def dense_vs_numpy(shapes, seed: int, repeats: int) -> list[dict]:
    """The Dense layer's forward and backward against the bare numpy products."""
    import numpy as np

    from lshprof.measure.threads import limit_threads
    from lshprof.nn.layers import make_layer

    rows = []
    with limit_threads(1):
        for batch, n_in, n_out in shapes:
            layer = make_layer("dense", n_in, n_out, seed=seed)
            rng = np.random.default_rng(seed)
            x = np.maximum(rng.standard_normal((batch, n_in), dtype=np.float32), 0)
            g = rng.standard_normal((batch, n_out), dtype=np.float32)
            W = layer.W

            def layer_fb():
                out = layer.forward(x, train=True)
                layer.backward(out.with_values(g.reshape(-1)), input_grad=True)
                layer.zero_grad()

            gW = np.zeros_like(W)

            def numpy_fb():
                z = x @ W.T
                gW[...] = g.T @ x
                return z, g @ W

            layer_fb()
            numpy_fb()
            tl, tn = [], []
            for _ in range(repeats):
                t0 = _now()
                layer_fb()
                t1 = _now()
                numpy_fb()
                t2 = _now()
                tl.append(t1 - t0)
                tn.append(t2 - t1)
            lay, npy = median(tl), median(tn)
            rows.append({"shape": f"b{batch} {n_in}->{n_out}", "layer_s": lay, "numpy_s": npy,
                         "efficiency": npy / lay})
    return rows


# -- memory ----------------------------------------------------------------------------------
_MEM_CHILD = r"""
import json, resource, sys
import numpy as np
from lshprof.nn.layers import make_layer
from lshprof.nn.optim import make_optimizer

def peak_kib():
    # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak across fork+exec
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

method, n_in, n_out, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
base = peak_kib()
layer = make_layer(method, n_in, n_out, seed=0, **({"fraction": 0.05} if method == "lsh" else {}))
opt = make_optimizer("adam", [layer], lr=1e-4)
x = np.maximum(np.random.default_rng(1).standard_normal((batch, n_in), dtype=np.float32), 0)
out = layer.forward(x, train=True)
layer.backward(out.with_values(np.full(out.nnz, 1e-3, dtype=np.float32)))
opt.step(); layer.after_step()
parts = layer.memory_bytes()
parts["optimizer_state"] = opt.state_bytes
peak = peak_kib()
extra = {}
if method == "lsh":
    extra = {"bytes_per_node_per_table": layer.tables.nbytes / (layer.n_out * layer.params["L"]),
             "L": layer.params["L"]}
print(json.dumps({"parts": parts, "peak_rss_kib": peak, "import_rss_kib": base, **extra}))
"""


def memory(n_in: int, n_out: int, batch: int) -> dict:
    """Each layer built, stepped once, in a fresh process: its parts and peak RSS."""
    out = {}
    for method in ("dense", "lsh"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        res = subprocess.run([sys.executable, "-c", _MEM_CHILD, method, str(n_in), str(n_out),
                              str(batch)], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"memory measurement of {method} failed: "
                               f"{res.stderr.strip().splitlines()[-1:]}")
        out[method] = json.loads(res.stdout.strip().splitlines()[-1])
    return out


# -- threads ----------------------------------------------------------------------------------
def thread_kernels(seed: int, repeats: int) -> list[dict]:
    """Each kernel at 1 and at 2 threads, alternating, on the wide and hidden shapes; the
    fastest of ``repeats`` at each count."""
    from lshprof.measure.threads import limit_threads

    rows = []
    for c in (Case("wide", 128, 128, 100_000, 1, None), Case("hidden", 128, 784, 1000, 1, None)):
        for method in ("dense", "lsh"):
            side = _side(method, c, seed)
            lay = side.layer
            with limit_threads(1):
                side.step()
                side.step()
            x = side.xs[0]
            xin = lay.prepare_input(x)

            def k_forward():
                return lay.forward(x, train=True)

            def k_backward():
                out = lay.forward(x, train=True)
                t0 = _now()
                lay.backward(out.with_values(side.pool[:out.nnz]), input_grad=True)
                return _now() - t0

            def k_update():
                out = lay.forward(x, train=True)
                lay.backward(out.with_values(side.pool[:out.nnz]), input_grad=True)
                t0 = _now()
                side.opt.step()
                return _now() - t0

            kernels: dict[str, Callable] = {"forward": k_forward, "backward": k_backward,
                                            "update": k_update}
            if method == "lsh":
                kernels["select"] = lambda: lay.choose(xin, True)
                kernels["rebuild"] = lay.rebuild
            for name, fn in kernels.items():
                times = {1: [], 2: []}
                for _ in range(repeats):
                    for t in (1, 2):
                        with limit_threads(t):
                            t0 = _now()
                            r = fn()
                            dt = _now() - t0
                        times[t].append(r if isinstance(r, float) else dt)
                # judged on the fastest repeat: other work on the machine only adds time,
                # and a kernel below the parallel threshold runs the same serial code at
                # both counts, where medians of a few repeats differed by 30% in either way
                a, b = min(times[1]), min(times[2])
                rows.append({"kernel": f"{c.name} {method} {name}", "t1_s": a, "t2_s": b,
                             "ratio": a / b,
                             "median_ratio": median(times[1]) / median(times[2])})
    return rows


# -- the report ---------------------------------------------------------------------------------
def _pf(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "MISS")


def _ms(s: float) -> str:
    return f"{s * 1e3:9.3f}"


def report(res: dict, out=None) -> int:
    """Print the goal tables (to ``out``, default stdout); returns the goals missed."""
    missed = 0
    w = (out or sys.stdout).write
    w(f"lshprof speed suite  (lsh fraction {FRACTION}, Adam, {res['machine']})\n\n")
    w("Training step: dense BLAS layer vs LSH layer, same threads, medians of alternating "
      "repeats\n")
    hdr = (f"{'case':<18}{'thr':>4}{'dense ms':>10}{'lsh ms':>10}{'MAC ratio':>11}"
           f"{'speed':>8}{'realized':>10}{'active':>8}  goal\n")
    w(hdr)
    for r in res["cases"]:
        verdicts = []
        if r["goal"] is not None:
            ok = r["speed_ratio"] >= r["goal"]
            verdicts.append(f"speed >= {r['goal']:g}x {_pf(ok)}")
            missed += not ok
        if r["saving_goal"] is not None:
            ok = r["realized"] >= r["saving_goal"]
            verdicts.append(f"saving >= {r['saving_goal']:g} {_pf(ok)}")
            missed += not ok
        w(f"{r['case']:<18}{r['threads']:>4}{_ms(r['dense_s']):>10}{_ms(r['lsh_s']):>10}"
          f"{r['mac_ratio']:>10.1f}x{r['speed_ratio']:>7.2f}x{r['realized']:>10.2f}"
          f"{r['active_fraction']:>8.3f}  {'; '.join(verdicts) or 'report only'}\n")
    w("\nWhere the LSH step's time goes (ms per step; rehash = the schedule's re-hash "
      "averaged over its period)\n")
    for r in res["cases"]:
        p = r["lsh_phases_s"]
        w(f"  {r['case']:<18} select {_ms(r['select_s'])}  forward incl. select "
          f"{_ms(p['forward'])}  backward {_ms(p['backward'])}  update {_ms(p['update'])}  "
          f"rehash {_ms(p['rehash'])}\n")
    for r in res["cases"]:
        if r["n_out"] == 100_000 and r["threads"] == 1:
            ok = r["select_share"] < SELECT_GOAL
            missed += not ok
            w(f"\nSelection share of the LSH step ({r['case']}): {r['select_share']:.1%}  "
              f"goal < {SELECT_GOAL:.0%} {_pf(ok)}\n")
    w("\nDense layer (forward + backward) against bare numpy products, 1 thread\n")
    for r in res["dense"]:
        ok = r["efficiency"] >= DENSE_GOAL
        missed += not ok
        w(f"  {r['shape']:<22} layer {_ms(r['layer_s'])} ms  numpy {_ms(r['numpy_s'])} ms  "
          f"efficiency {r['efficiency']:.2f}  goal >= {DENSE_GOAL:g} {_pf(ok)}\n")
    m = res.get("memory")
    if m:
        d, l_ = m["dense"], m["lsh"]
        db, lb = sum(d["parts"].values()), sum(l_["parts"].values())
        ok = lb <= MEMORY_GOAL * db
        missed += not ok
        w("\nMemory, wide layer (bytes held after one step; peak RSS of a fresh process)\n")
        for name, v in (("dense", d), ("lsh", l_)):
            parts = ", ".join(f"{k} {b / 2**20:.1f}" for k, b in v["parts"].items())
            w(f"  {name:<6} {sum(v['parts'].values()) / 2**20:8.1f} MiB ({parts})  peak RSS "
              f"{v['peak_rss_kib'] / 1024:.0f} MiB ({v['import_rss_kib'] / 1024:.0f} MiB "
              f"after imports)\n")
        w(f"  table bytes per node per table: {l_['bytes_per_node_per_table']:.2f} "
          f"(L = {l_['L']})\n")
        w(f"  lsh / dense: {lb / db:.2f}x  goal <= {MEMORY_GOAL:g}x {_pf(ok)}\n")
    if res.get("threads"):
        w(f"\nThreads: each kernel at 1 and 2 threads, fastest of alternating repeats (goal: 2 "
          f"threads not slower, within {THREAD_SLACK - 1:.0%} for timer noise)\n")
        for r in res["threads"]:
            ok = r["t2_s"] <= r["t1_s"] * THREAD_SLACK
            missed += not ok
            w(f"  {r['kernel']:<26} 1t {_ms(r['t1_s'])}  2t {_ms(r['t2_s'])}  "
              f"speedup {r['ratio']:.2f}x (medians {r['median_ratio']:.2f}x)  {_pf(ok)}\n")
    w(f"\n{'all goals met' if not missed else f'{missed} goal(s) missed'}\n")
    return missed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lshprof bench --suite speed",
        description="Side-by-side timings of dense and LSH layers against the speed goals; "
                    "prints PASS/MISS per goal (exit 0 either way unless --strict).")
    parser.add_argument("--suite", choices=["speed"], required=True)
    parser.add_argument("--cases", nargs="+", default=None,
                        help="case names to run (default: all): "
                             + ", ".join(repr(c.name) for c in CASES))
    parser.add_argument("--repeats", type=int, default=7, help="alternating repeats per case")
    parser.add_argument("--budget", type=float, default=20.0,
                        help="seconds per case at most (repeats stop early)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["dense", "memory", "threads"], help="parts to leave out")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    return parser


def run_speed(argv: list[str], *, check_target: Callable[[str, str], Any] | None = None) -> int:
    """``lshprof bench --suite speed ARGS``; ``check_target(path, option)`` checks the
    ``--json`` file before any case runs."""
    args = build_parser().parse_args(argv)
    if args.repeats < 1:
        raise ConfigError(f"--repeats must be >= 1, got {args.repeats}")
    cases = CASES
    if args.cases:
        names = {c.name: c for c in CASES}
        unknown = [n for n in args.cases if n not in names]
        if unknown:
            raise ConfigError(f"unknown case {unknown[0]!r}; valid: "
                              + ", ".join(repr(n) for n in names))
        cases = tuple(names[n] for n in args.cases)
    if args.json:
        from lshprof.files import check_output_target

        (check_target or check_output_target)(args.json, "--json")
    from lshprof.measure.system import machine_info

    res: dict[str, Any] = {"machine": f"{machine_info()['cpu_model']}, "
                                      f"{os.cpu_count()} logical CPUs"}
    res["cases"] = [run_case(c, args.seed, args.repeats, args.budget) for c in cases]
    res["dense"] = [] if "dense" in args.skip else dense_vs_numpy(
        [(128, 128, 100_000), (128, 784, 1000), (128, 1000, 1000), (1, 784, 1000)],
        args.seed, args.repeats)
    res["memory"] = None if "memory" in args.skip else memory(128, 100_000, 128)
    res["threads"] = [] if "threads" in args.skip else thread_kernels(args.seed,
                                                                      args.repeats)
    missed = report(res)
    if args.json:
        from lshprof.files import write_error_message, write_json_atomic

        try:
            write_json_atomic(args.json, res)
        except OSError as exc:
            raise ConfigError(write_error_message(args.json, exc, kind="file",
                                                  option="--json")) from None
    return 1 if (missed and args.strict) else 0
