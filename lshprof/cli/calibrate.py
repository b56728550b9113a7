"""``lshprof calibrate``: fit the estimate backend's coefficients to RAPL measurements.

Runs workloads whose work is known exactly, each for a few seconds and several
times, under a measuring backend (``powercap`` or ``pyrapl``):

``idle``       sleeping: static power only
``matmul``     float32 BLAS products: MAC-bound
``stream``     copying a large array: memory-bound
``training``   a dense and an LSH layer training on generated data, counted by
               the layers themselves (the work lshprof estimates in practice)

then fits ``pj_per_mac``, ``pj_per_byte`` and ``static_w`` by non-negative least
squares (:func:`lshprof.measure.energy.estimate.fit_model`) and saves the model.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

from lshprof.measure.threads import limit_threads
from lshprof.measure.energy import EnergyMeter, Work
from lshprof.errors import ConfigError

__all__ = ["WORKLOADS", "run_calibration", "run_calibrate"]


def _idle(seconds: float) -> Work:
    time.sleep(seconds)
    return Work()


def _matmul(seconds: float, n: int = 512) -> Work:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    reps, t_end = 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        np.matmul(a, b, out=out)
        reps += 1
    return Work(macs=reps * n ** 3, bytes_moved=reps * 3 * a.nbytes)


def _stream(seconds: float, n_bytes: int = 64 << 20) -> Work:
    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    reps, t_end = 0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        np.copyto(dst, src)
        reps += 1
    return Work(bytes_moved=reps * 2 * src.nbytes)


def _training(seconds: float) -> Work:
    from lshprof.data import gaussian_clusters
    from lshprof.measure.macs import MacCounts
    from lshprof.nn.mlp import MLP, train

    data = gaussian_clusters(2000, 10, seed=0)
    models = [MLP.build(data.X_train.shape[1], [1000], 10, method=m, params=p)
              for m, p in (("dense", {}), ("lsh", {"fraction": 0.05}))]
    total, i = MacCounts(), 0
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:  # alternate dense and LSH epochs
        (stats,) = train(models[i % 2], data.X_train, data.y_train, epochs=1, batch_size=32)
        total = total + stats.train_macs
        i += 1
    return Work.from_counts(total)


#: name -> function(seconds) -> Work done
WORKLOADS: dict[str, Callable[[float], Work]] = {
    "idle": _idle, "matmul": _matmul, "stream": _stream, "training": _training,
}


def run_calibration(meter: EnergyMeter, *, seconds: float = 2.0, repeats: int = 3,
                    workloads=tuple(WORKLOADS), on_sample: Callable[[dict], None] | None = None):
    """Measure every workload ``repeats`` times under ``meter`` and fit the model.

    Returns ``(model, samples)``: the fitted :class:`~lshprof.measure.energy.estimate.EnergyModel`
    and one dict per measured interval (workload, wall_s, energy_j, predicted_j).
    """
    from lshprof.measure.energy.estimate import fit_model
    from lshprof.measure.system import machine_info

    if meter.source != "measured":
        raise ConfigError(f"calibration needs a measuring energy backend; {meter.name!r} gives "
                          f"{meter.source} figures")
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ConfigError(f"unknown calibration workload {unknown[0]!r}; valid: {', '.join(WORKLOADS)}")
    for w in workloads:  # warm up (JIT, page faults) outside the measured intervals
        if w != "idle":
            WORKLOADS[w](min(0.2, seconds))
    samples, fit_in = [], []
    for _ in range(repeats):
        for w in workloads:
            m0 = meter.mark()
            work = WORKLOADS[w](seconds)
            r = meter.interval(m0, meter.mark(), work)
            if r.energy_j is None:
                raise ConfigError(f"the {meter.name} backend returned no figure for {w}: {r.note}")
            fit_in.append((work, r.wall_s, r.energy_j))
            s = {"workload": w, "wall_s": r.wall_s, "energy_j": r.energy_j, "macs": work.macs,
                 "bytes_moved": work.bytes_moved, "note": r.note}
            samples.append(s)
            if on_sample:
                on_sample(s)
    info = machine_info()
    model = fit_model(fit_in, origin=f"calibrated with {meter.name} on {info.get('cpu_model')} "
                                     f"({time.strftime('%Y-%m-%d')})")
    model.calibration.update(backend=meter.name, seconds=seconds, repeats=repeats,
                             workloads=list(workloads), cpu_model=info.get("cpu_model"))
    for s, (work, wall_s, _) in zip(samples, fit_in):
        s["predicted_j"] = model.energy_j(work, wall_s)
    return model, samples


def run_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lshprof.cli.app import output_target, plain, write_error
    from lshprof.measure.energy import open_meter

    console = Console(stderr=True)
    output_target(args.output, "-o")
    if args.energy not in ("powercap", "pyrapl"):
        raise ConfigError(f"calibrate measures with powercap or pyrapl, not {args.energy!r}")
    meter, _ = open_meter(args.energy, powercap_root=args.powercap_root)
    with meter, limit_threads(args.threads):
        console.print(plain(f"calibrate: {', '.join(args.workloads)}, {args.seconds} s each, "
                            f"{args.repeats} repeats, {args.threads} thread(s), {meter.name}"))
        model, samples = run_calibration(
            meter, seconds=args.seconds, repeats=args.repeats, workloads=args.workloads,
            on_sample=lambda s: console.print(plain(f"  {s['workload']}: {s['energy_j']:.2f} J "
                                                    f"in {s['wall_s']:.2f} s")))
    table = Table(title="energy model fit (measured vs predicted)")
    for col in ("workload", "wall s", "measured J", "predicted J", "error"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    for s in samples:
        err = (s["predicted_j"] - s["energy_j"]) / s["energy_j"] if s["energy_j"] else float("nan")
        table.add_row(s["workload"], f"{s['wall_s']:.2f}", f"{s['energy_j']:.3f}",
                      f"{s['predicted_j']:.3f}", f"{err:+.1%}")
    out = Console()
    out.print(table)
    coefs: dict[str, Any] = model.coefficients()
    out.print("coefficients: " + ", ".join(f"{k}={v:.4g}" for k, v in coefs.items())
              + f"; R^2 {model.calibration.get('r2', float('nan')):.3f}")
    try:
        model.save(args.output)
    except OSError as exc:
        raise write_error(args.output, exc, "-o") from None
    out.print(plain(f"saved to {args.output}; use it with --energy estimate --energy-model "
                    f"{args.output} (or LSHPROF_ENERGY_MODEL)"))
    return 0
