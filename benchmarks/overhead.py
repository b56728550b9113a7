"""What does lshprof's instrumentation cost? Epochs timed with and without it, side by side.

Each method trains the same model for ``--epochs`` epochs, alternating epochs with
the phase clock and energy meter attached ("on") and detached ("off"), so both
see the same machine state. Prints the median epoch time of each, their ratio,
and the clock's own estimate of its cost (calls x measured cost per call).

    python benchmarks/overhead.py [--epochs 10] [--threads 1] [--hidden 1000]
"""

from __future__ import annotations

import argparse
import statistics

from lshprof.data import gaussian_clusters
from lshprof.measure.energy import open_meter
from lshprof.nn.mlp import MLP, train
from lshprof.measure.timing import clock_overhead_ns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10, help="epochs per setting (default 10)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--n-train", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--energy", default="auto", help="energy backend for the 'on' epochs")
    args = ap.parse_args()

    data = gaussian_clusters(args.n_train, 10, seed=0)
    meter, reasons = open_meter(args.energy)
    for r in reasons:
        print(f"energy: {r}")
    cost_ns = clock_overhead_ns()
    print(f"clock: {cost_ns:.0f} ns per push or pop; energy backend {meter.name}; "
          f"{args.threads} thread(s); batch {args.batch_size}; {args.n_train} samples per epoch")
    print(f"{'method':<8} {'on s':>9} {'off s':>9} {'on/off':>8} {'calls':>7} {'clock est.':>10}")
    with meter:
        for method, params in (("dense", {}), ("topk", {"fraction": 0.05}),
                               ("lsh", {"fraction": 0.05})):
            model = MLP.build(data.X_train.shape[1], [args.hidden], 10, method=method,
                              params=params, seed=0)
            fit = dict(epochs=1, batch_size=args.batch_size, threads=args.threads)
            train(model, data.X_train[:64], data.y_train[:64], **fit)  # warm-up
            on, off, est = [], [], []
            for i in range(2 * args.epochs):
                if i % 2 == 0:
                    (h,) = train(model, data.X_train, data.y_train, meter=meter, seed=i, **fit)
                    on.append(h.train_wall_s)
                    calls = h.clock_calls
                    est.append(h.clock_calls * cost_ns / 1e9 / h.train_wall_s)
                else:
                    (h,) = train(model, data.X_train, data.y_train, timing=False, seed=i, **fit)
                    off.append(h.train_wall_s)
            m_on, m_off = statistics.median(on), statistics.median(off)
            print(f"{method:<8} {m_on:9.4f} {m_off:9.4f} {m_on / m_off:8.3f} {calls:7d} "
                  f"{statistics.median(est):10.2%}")
    print("on/off: median epoch with instrumentation over median epoch without (noise is "
          "a few percent either way); clock est.: clock calls x cost per call / epoch time.")


if __name__ == "__main__":
    main()
