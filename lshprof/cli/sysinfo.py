"""``lshprof sysinfo``: the machine, the thread settings, and what each energy backend can do."""

from __future__ import annotations

import argparse
import sys

from lshprof.cli.app import output_target, plain, write_results

__all__ = ["run_sysinfo"]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v)) or "-"
    return str(v)


def run_sysinfo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from lshprof.measure.threads import limit_threads
    from lshprof.measure.energy import backend_status
    from lshprof.measure.energy.powercap import resolve_root
    from lshprof.measure.system import machine_info, thread_info

    if args.json:
        output_target(args.json, "--json")
    machine = machine_info()
    with limit_threads(args.threads):
        threads = thread_info()
    backends = backend_status(powercap_root=args.powercap_root, model=args.energy_model)

    out = Console(width=None if sys.stdout.isatty() else 140)
    # what the machine, the environment and the backends say is text, never rich markup
    t = Table(title="machine", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for k, v in machine.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {b}" for a, b in v.items() if b is not None)
        t.add_row(plain(k), plain(_fmt(v)))
    out.print(t)

    t = Table(title=f"threads (as lshprof sets them for --threads {args.threads})")
    t.add_column("pool")
    t.add_column("threads", justify="right")
    t.add_column("details", overflow="fold")
    t.add_row("numba", _fmt(threads.get("numba_threads")),
              plain(f"threading layer {threads.get('numba_threading_layer')}, "
                    f"NUMBA_NUM_THREADS {threads.get('numba_max_threads')}"))
    for pool in threads.get("blas", []):
        t.add_row(plain(pool.get("internal_api") or pool.get("user_api")),
                  _fmt(pool.get("num_threads")),
                  plain(f"{pool.get('user_api')} {pool.get('version')} ({pool.get('library')})"))
    env = ", ".join(f"{k}={v}" for k, v in (threads.get("env") or {}).items() if v is not None)
    t.add_row("environment", "", plain(env or "no thread variables set"))
    out.print(t)

    t = Table(title=plain(f"energy backends (powercap root {resolve_root(args.powercap_root)})"))
    t.add_column("backend")
    t.add_column("usable")
    t.add_column("details", overflow="fold")
    for name, ok, detail in backends:
        t.add_row(name, "yes" if ok else "no", plain(detail))
    out.print(t)
    auto = next((n for n, ok, _ in backends if ok and n in ("powercap",)), "estimate")
    out.print(f"--energy auto would use: {auto}"
              + ("" if auto == "powercap" else " (figures labelled estimated, not measured)"))
    if args.json:
        write_results(args, {"machine": machine, "threads": threads,
                             "energy": [{"backend": n, "usable": ok, "detail": d}
                                        for n, ok, d in backends]})
    return 0
