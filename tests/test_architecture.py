"""The package's layers, held by reading every module's imports (function-level ones too).

Imports flow one way: command line -> analysis and benchmarks -> experiment -> model (nn)
-> measurement and data -> kernels -> config. Two packages on the same layer do not
import each other. No module imports another package's underscore names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "lshprof"

#: package -> layer; a module may import its own package and packages on lower layers only
LAYERS = {
    "lshprof.errors": 0, "lshprof.names": 0, "lshprof._config": 0, "lshprof.files": 0,
    "lshprof.kernels": 1,
    "lshprof.measure": 2, "lshprof.data": 2,
    "lshprof.nn": 3,
    "lshprof.experiment": 4,
    "lshprof.analysis": 5, "lshprof.bench": 5,
    "lshprof.cli": 6,
}
#: the public API and ``python -m lshprof`` stand above every layer
TOP = {"lshprof", "lshprof.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit(module: str) -> str | None:
    """The layered unit ``module`` belongs to (its package, or a top-level module)."""
    for name in sorted(LAYERS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every lshprof import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import; write it absolute"
            if node.module and node.module.split(".")[0] == "lshprof":
                out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "lshprof":
                    out.append((node.lineno, a.name, []))
    return out


MODULES = sorted(p for p in PKG.rglob("*.py") if "scenarios" not in p.parts)


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in MODULES
               if module_name(p) not in TOP and unit(module_name(p)) is None]
    assert not missing, f"modules outside every layer (add them to LAYERS): {missing}"


def upward_imports(me: str, found: list[tuple[int, str, list[str]]]) -> list[str]:
    """The imports among ``found`` (as :func:`imports` lists them) that module ``me`` may not
    make: one of a higher or the same layer's other package, or of the public API."""
    mine = unit(me)
    bad = []
    for line, target, names in found:
        # ``from lshprof.pkg import sub``: the module imported is lshprof.pkg.sub when it exists
        targets = [f"{target}.{n}" if (PKG.parent / f"{target}.{n}".replace(".", "/")).exists()
                   or (PKG.parent / (f"{target}.{n}".replace(".", "/") + ".py")).exists()
                   else target for n in names] or [target]
        for t in targets:
            if t == "lshprof":
                if set(names) - {"__version__"}:
                    bad.append(f"line {line}: imports {names} from the public API; import them "
                               "from their modules")
                continue
            theirs = unit(t)
            if theirs is None or theirs == mine or LAYERS[theirs] == LAYERS[mine] == 0:
                continue
            if LAYERS[theirs] >= LAYERS[mine]:
                bad.append(f"line {line}: {mine} (layer {LAYERS[mine]}) imports {t} "
                           f"(layer {LAYERS[theirs]})")
    return bad


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_flow_down(path):
    me = module_name(path)
    if me in TOP:
        return
    bad = upward_imports(me, imports(path))
    assert not bad, f"{me} imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("me, target, names", [
    ("lshprof.nn.mlp", "lshprof.experiment.scenario", ["available_cores"]),   # up
    ("lshprof.nn.training", "lshprof.cli", ["main"]),                       # up, far
    ("lshprof.data.mnist", "lshprof.measure.system", ["machine_info"]),     # sideways
    ("lshprof.kernels._dense", "lshprof.nn", ["layers"]),                  # a submodule, up
    ("lshprof.analysis.check", "lshprof", ["Runner"]),                     # the public API
])
def test_the_layering_check_catches_a_wrong_import(me, target, names):
    assert upward_imports(me, [(1, target, names)])


def test_the_layering_check_lets_right_imports_through():
    assert not upward_imports("lshprof.cli.run", [(1, "lshprof.experiment.runner", ["Runner"]),
                                                  (2, "lshprof", ["__version__"]),
                                                  (3, "lshprof.errors", ["ConfigError"])])
    assert not upward_imports("lshprof.files", [(1, "lshprof.errors", ["ConfigError"])])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_underscore_names_across_packages(path):
    """An underscore name (or module) is for its own module and its package's siblings."""
    me = module_name(path)
    my_pkg = me if path.name == "__init__.py" else me.rpartition(".")[0]
    bad = []
    for line, target, names in imports(path):
        pkg_of_target = target if (PKG.parent / target.replace(".", "/")).is_dir() \
            else target.rpartition(".")[0]
        private_module = any(part.startswith("_") and part != "__version__" and
                             part not in ("_config",) for part in target.split(".")[1:])
        private_names = [n for n in names if n.startswith("_") and n != "__version__"]
        if (private_module or private_names) and pkg_of_target != my_pkg \
                and not (private_module and target.rpartition(".")[0] == my_pkg):
            bad.append(f"line {line}: from {target} import {', '.join(names)}")
    assert not bad, f"{me} uses another package's private names:\n" + "\n".join(bad)


def test_light_modules_import_no_numerics():
    """names, errors and the command line's parser import neither numpy nor numba."""
    for rel in ("names.py", "errors.py"):
        tree = ast.parse((PKG / rel).read_text())
        mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
        mods |= {n.module.split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.module}
        assert not mods & {"numpy", "numba", "pandas", "scipy"}, rel
