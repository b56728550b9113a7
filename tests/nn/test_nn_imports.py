"""The model package (lshprof.nn) imports without cycles.

Every module under ``lshprof/nn`` is parsed with ``ast`` and every import it makes, at
module level or inside a function, is an edge of a graph among the nn modules; that graph
must have no cycle. Each module also imports on its own in a fresh interpreter, whichever
nn module comes first (a package whose ``__init__`` imports a module that imports the
package back fails only in one order).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NN = ROOT / "lshprof" / "nn"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    p = ROOT / name.replace(".", "/")
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def nn_imports(path: Path) -> set[str]:
    """The nn modules ``path`` imports (``from pkg import sub`` imports ``pkg.sub`` when
    that is a module, else ``pkg``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found = [s for s in subs if is_module(s)]
            out.update(found if len(found) == len(subs) else found + [node.module])
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "lshprof.nn" or m.startswith("lshprof.nn.")}


MODULES = sorted(NN.rglob("*.py"))
GRAPH = {module_name(p): nn_imports(p) - {module_name(p)} for p in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                got = visit(t)
                if got:
                    return got
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            got = visit(m)
            if got:
                return got
    return None


def test_the_graph_is_read():
    assert "lshprof.nn.lsh.layer" in GRAPH and "lshprof.nn.training" in GRAPH
    assert "lshprof.nn.layers.base" in GRAPH["lshprof.nn.lsh.layer"]
    assert "lshprof.nn.lsh.layer" in GRAPH["lshprof.nn.layers"]  # the registry, in a function
    assert "lshprof.nn.step" in GRAPH["lshprof.nn.hogwild"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_nn_modules():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle in lshprof.nn: " + " -> ".join(cycle)


def test_hogwild_and_training_do_not_import_the_model_module():
    for m in ("lshprof.nn.hogwild", "lshprof.nn.training", "lshprof.nn.step"):
        assert "lshprof.nn.mlp" not in GRAPH[m], m


def test_every_nn_module_imports_first():
    names = sorted(GRAPH)
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'lshprof.nn' or m.startswith('lshprof.nn.')]:\n"
        "        del sys.modules[m]\n"
        "    importlib.import_module(name)\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
