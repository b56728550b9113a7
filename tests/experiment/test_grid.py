"""Parameter grids in scenarios (issue 21): ``[methods.LABEL.grid]`` expands into one method
per combination, labelled with its settings; every invalid grid is refused by the scenario
check in one line naming the key and the combination; ``[quick] grid`` shrinks it; the
schema and the fingerprint include it, and scenarios without grids keep their fingerprint.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lshprof.errors import ConfigError
from lshprof.experiment.scenario import (MAX_METHODS, load_scenario, scenario_schema)
from lshprof.experiment.sweep import Cell, grid_label, grid_value_text

HEAD = """\
[scenario]
name = "g"

[data]
dataset = "gaussian"
n_train = 200
n_test = 50
n_features = 16

[network]
hidden = [32]

[training]
epochs = 1
batch_size = 8

[sweep]
fractions = [0.05, 0.1]

"""

GRID = """\
[methods.dense]
[methods.lsh]
policy = "histogram"
[methods.lsh.grid]
family = ["srp", "wta"]
K = [4, 6]
L = [5]
"""


def write(tmp_path: Path, tables: str, name: str = "g.toml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + tables)
    return path


def refused(path: Path) -> str:
    """The one-line message with which the scenario check refuses ``path``."""
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: "), text
    return text


# -- expansion -------------------------------------------------------------------------------------
def test_a_grid_expands_in_the_order_written_with_labelled_methods(tmp_path):
    s = load_scenario(write(tmp_path, GRID))
    cells = s.cells()
    labels = list(dict.fromkeys(c.label for c in cells))
    # the cartesian product, the last key fastest; a one-value list still shows its setting
    assert labels == ["dense", "lsh(family=srp,K=4,L=5)", "lsh(family=srp,K=6,L=5)",
                      "lsh(family=wta,K=4,L=5)", "lsh(family=wta,K=6,L=5)"]
    # every combination is an ordinary method: swept over the fractions
    assert len(cells) == 1 + 4 * 2
    assert [c.id for c in cells[:3]] == [
        "dense|fraction=-|seed=0|threads=1",
        "lsh(family=srp,K=4,L=5)|fraction=0.05|seed=0|threads=1",
        "lsh(family=srp,K=4,L=5)|fraction=0.1|seed=0|threads=1"]
    assert len({c.id for c in cells}) == len(cells)
    wta6 = [c for c in cells if c.label == "lsh(family=wta,K=6,L=5)"]
    assert [c.fraction for c in wta6] == [0.05, 0.1]
    for c in wta6:
        assert c.params == {"policy": "histogram", "family": "wta", "K": 6, "L": 5,
                            "fraction": c.fraction}
        assert c.grid == (("family", "wta"), ("K", 6), ("L", 5))
        assert c.grid_columns == {"grid_family": "wta", "grid_K": 6, "grid_L": 5}
        assert pickle.loads(pickle.dumps(c)) == c
    dense = cells[0]
    assert dense.grid == () and dense.grid_columns == {}
    assert Cell("dense", "dense").grid == ()  # the default: cells made in code have none


def test_more_seeds_and_threads_multiply_every_combination(tmp_path):
    s = load_scenario(write(tmp_path, GRID.replace("[methods.dense]\n", "").replace(
        "[methods.lsh]\n", "[methods.lsh]\nfractions = [0.2]\n")))
    s = s.with_overrides(seeds=[0, 1, 2])
    cells = s.cells()
    assert len(cells) == 4 * 1 * 3
    assert [c.seed for c in cells[:5]] == [0, 0, 0, 0, 1]
    assert cells[4].id == "lsh(family=srp,K=4,L=5)|fraction=0.2|seed=1|threads=1"


def test_a_grid_over_the_fraction_fixes_it_and_values_are_spelled_as_written(tmp_path):
    s = load_scenario(write(tmp_path, """\
[methods.topk.grid]
fraction = [0.25, 0.5]
[methods.lsh.grid]
density = [0.25]
quality = [true, false]
family = ["srp_sparse"]
"""))
    cells = s.cells()
    assert [(c.label, c.fraction) for c in cells] == [
        ("topk(fraction=0.25)", 0.25), ("topk(fraction=0.5)", 0.5),
        ("lsh(density=0.25,quality=true,family=srp_sparse)", 0.05),
        ("lsh(density=0.25,quality=true,family=srp_sparse)", 0.1),
        ("lsh(density=0.25,quality=false,family=srp_sparse)", 0.05),
        ("lsh(density=0.25,quality=false,family=srp_sparse)", 0.1)]
    assert cells[0].id == "topk(fraction=0.25)|fraction=0.25|seed=0|threads=1"
    assert grid_label("lsh", ()) == "lsh"
    assert [grid_value_text(v) for v in ("srp", 4, 0.5, True, 1e-05)] == \
        ["srp", "4", "0.5", "true", "1e-05"]


def test_measure_quality_does_not_override_a_grid_setting(tmp_path):
    text = GRID.replace("[methods.lsh.grid]\n", "[methods.lsh.grid]\nquality = [false]\n")
    path = write(tmp_path, text)
    path.write_text(path.read_text().replace("[sweep]", "[measure]\nquality = true\n\n[sweep]"))
    lsh = [c for c in load_scenario(path).cells() if c.method == "lsh"]
    assert lsh and all(c.params["quality"] is False for c in lsh)


# -- refusals --------------------------------------------------------------------------------------
REFUSALS = [
    ("unknown parameter", GRID.replace('L = [5]', 'X = [1]'),
     "unknown key 'X' in [methods.lsh.grid] (method 'lsh'); a grid sweeps the layer's "
     "parameters: fraction, family, K, L"),
    ("a table key is no layer parameter", GRID.replace('L = [5]', 'mode = ["sync"]'),
     "unknown key 'mode' in [methods.lsh.grid]"),
    ("empty list", GRID.replace("K = [4, 6]", "K = []"),
     "[methods.lsh.grid] K: the list is empty; give at least one value"),
    ("not a list", GRID.replace("K = [4, 6]", "K = 4"),
     "[methods.lsh.grid] K: must be a list of values (K = [4, ...]), got 4"),
    ("not a scalar", GRID.replace("K = [4, 6]", "K = [[4]]"),
     "[methods.lsh.grid] K: values must be strings, numbers or booleans, got [4]"),
    ("duplicate", GRID.replace('family = ["srp", "wta"]', 'family = ["srp", "wta", "srp"]'),
     '[methods.lsh.grid] family: "srp" repeats; give each value once'),
    ("both in the table and the grid", GRID.replace('policy = "histogram"', 'K = 6'),
     "[methods.lsh.grid] K: also set in [methods.lsh] (K = 6); set it in one place"),
    ("a method without parameters", "[methods.dense.grid]\np = [0.5]\n",
     "[methods.dense.grid]: method 'dense' has no parameters to sweep; remove the grid"),
    ("an empty grid", "[methods.lsh.grid]\n",
     "[methods.lsh.grid] is empty; give parameter = [values, ...], or remove it"),
    ("not a table", "[methods.lsh]\ngrid = 3\n", "[methods.lsh] grid: input should be a valid "
                                                 "dictionary"),
    ("a combination the layer refuses",
     GRID.replace('family = ["srp", "wta"]', 'family = ["srp", "dwta"]').replace(
         "K = [4, 6]", "K = [4, 40]"),
     '[methods.lsh.grid] family = "dwta", K = 40, L = 5: lsh: K=40 gives 120-bit codes for '
     "family 'dwta'"),
    ("a value the layer refuses", GRID.replace("L = [5]", 'L = [5, 0]'),
     '[methods.lsh.grid] family = "srp", K = 4, L = 0: '),
    ("the fraction in the grid and fractions in the table",
     "[methods.topk]\nfractions = [0.1]\n[methods.topk.grid]\nfraction = [0.2]\n",
     "[methods.topk.grid] fraction: the grid sets the active fraction, so [methods.topk] "
     "fractions would not be swept"),
    ("too many combinations",
     GRID.replace("K = [4, 6]", f"K = {list(range(1, 17))}").replace(
         "L = [5]", f"L = {list(range(1, 18))}"),
     f"[methods.lsh.grid]: 2 x 16 x 17 = 544 combinations, 545 methods with the tables above "
     f"it; a scenario runs at most {MAX_METHODS} methods"),
    ("a label another table has",
     GRID + '[methods."lsh(family=wta,K=4,L=5)"]\nmethod = "lsh"\n',
     "[methods.lsh(family=wta,K=4,L=5)]: its label 'lsh(family=wta,K=4,L=5)' is already that of "
     '[methods.lsh.grid] family = "wta", K = 4, L = 5; labels must be unique'),
    # [quick] grid: validated like the grid, and what it runs is checked as the scenario
    ("quick: no such method", GRID + "[quick]\ngrid = { wta = { K = [6] } }\n",
     "[quick] grid.wta: no method 'wta' in this scenario; it has: dense, lsh"),
    ("quick: a table without a grid", GRID + "[quick]\ngrid = { dense = { K = [6] } }\n",
     "[quick] grid.dense: [methods.dense] has no grid to shrink"),
    ("quick: a key the grid does not have", GRID + "[quick]\ngrid = { lsh = { probes = [2] } }\n",
     "[quick] grid.lsh: 'probes' is not a key of [methods.lsh.grid] (it has: family, K, L); "
     "--quick only replaces a grid's lists"),
    ("quick: an empty list", GRID + "[quick]\ngrid = { lsh = { K = [] } }\n",
     "[quick] grid.lsh K: the list is empty"),
    ("quick: a combination the layer refuses",
     GRID + "[quick]\ngrid = { lsh = { K = [40] } }\n",
     '[methods.lsh.grid] family = "wta", K = 40, L = 5: lsh: K=40 gives 120-bit codes for '
     "family 'wta'; at most 62 bits fit, lower K (with --quick: the [quick] table applied)"),
]


@pytest.mark.parametrize("what, tables, words", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_an_invalid_grid_is_refused_in_one_line_naming_it(tmp_path, what, tables, words):
    text = refused(write(tmp_path, tables))
    assert words in text, text


def test_the_real_widths_name_the_combination(tmp_path):
    s = load_scenario(write(tmp_path, "[methods.lsh.grid]\npool = [1, 32]\n"))
    with pytest.raises(ConfigError) as err:
        s.check_widths(16, 4)
    text = str(err.value)
    assert "\n" not in text and "[methods.lsh.grid] pool = 32 with 16 inputs: " in text, text


def test_the_memory_estimate_names_the_grid(tmp_path):
    s = load_scenario(write(tmp_path, GRID.replace("L = [5]", "L = [5, 500]")))
    est = s.memory_estimate()
    assert est.cell == "lsh(family=srp,K=6,L=500)"
    assert "[methods.lsh.grid] L = 500, K = 6" in {p.key for p in est.parts}


# -- --quick ---------------------------------------------------------------------------------------
def test_quick_replaces_the_named_lists(tmp_path):
    s = load_scenario(write(tmp_path, GRID.replace("L = [5]", "L = [5, 10]") +
                            "[quick]\ngrid = { lsh = { K = [6], family = [\"wta\"] } }\n"))
    assert len({c.label for c in s.cells()}) == 1 + 2 * 2 * 2
    q = s.with_overrides(quick=True)
    # the lists named are replaced; the grid keeps its keys' order; L is left as it is
    assert list(dict.fromkeys(c.label for c in q.cells())) == [
        "dense", "lsh(family=wta,K=6,L=5)", "lsh(family=wta,K=6,L=10)"]
    assert q.model.methods["lsh"].grid == {"family": ["wta"], "K": [6], "L": [5, 10]}
    # --methods without the grid's table drops its [quick] entry
    only = s.with_overrides(methods=["dense"])
    assert [c.label for c in only.with_overrides(quick=True).cells()] == ["dense"]


# -- schema and fingerprint ------------------------------------------------------------------------
def test_the_schema_includes_the_grid():
    schema = scenario_schema()
    method = schema["$defs"]["MethodTable"]["properties"]["grid"]
    table = next(a for a in method["anyOf"] if a.get("type") == "object")
    assert table["additionalProperties"]["type"] == "array"
    assert table["additionalProperties"]["minItems"] == 1
    assert table["additionalProperties"]["uniqueItems"] is True
    quick = schema["$defs"]["Quick"]["properties"]["grid"]
    assert quick["additionalProperties"]["additionalProperties"]["type"] == "array"


def test_scenarios_without_a_grid_keep_their_fingerprint():
    # the ci scenario's fingerprint as it was before grids existed (lshprof check baselines
    # and resumed runs compare it)
    s = load_scenario("ci")
    assert s.fingerprint() == "0e6f9c507decbc06"
    assert all("grid" not in t for t in s.as_dict()["methods"].values())


def test_the_grid_is_part_of_the_settings_and_the_fingerprint(tmp_path):
    base = load_scenario(write(tmp_path, GRID, "a.toml"))
    assert base.as_dict()["methods"]["lsh"]["grid"] == {"family": ["srp", "wta"], "K": [4, 6],
                                                        "L": [5]}

    def fp(tables: str) -> str:
        return load_scenario(write(tmp_path, tables, "b.toml")).fingerprint()

    assert fp(GRID) == base.fingerprint()
    assert fp(GRID.replace("K = [4, 6]", "K = [4, 8]")) != base.fingerprint()
    # the order of the keys decides the labels, so it is part of the fingerprint too
    reordered = GRID.replace('family = ["srp", "wta"]\nK = [4, 6]', 'K = [4, 6]\nfamily = ["srp", "wta"]')
    assert reordered != GRID and fp(reordered) != base.fingerprint()
    # the same method set once without a grid: other settings, other fingerprint
    assert fp(GRID.split("[methods.lsh.grid]")[0]) != base.fingerprint()
    # [quick] grid changes only what --quick runs
    quick = GRID + "[quick]\ngrid = { lsh = { K = [6] } }\n"
    assert fp(quick) == base.fingerprint()
    assert load_scenario(write(tmp_path, quick, "c.toml")).with_overrides(
        quick=True).fingerprint() != base.with_overrides(quick=True).fingerprint()


def test_scenarios_check_refuses_a_bad_combination_on_the_command_line(lshprof_run, tmp_path):
    path = write(tmp_path, GRID.replace("K = [4, 6]", "K = [4, 40]"))
    r = lshprof_run("scenarios", "--check", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert '[methods.lsh.grid] family = "wta", K = 40, L = 5: ' in r.stderr
    ok = write(tmp_path, GRID, "ok.toml")
    r = lshprof_run("scenarios", "--check", ok)
    assert r.returncode == 0 and "ok (9 cells)" in r.stdout, r.stdout + r.stderr


def test_the_built_in_hash_study_is_a_grid_with_the_papers_setting():
    """hash-study: 36 family x K x L settings and 9 policy x transform settings at two
    fractions and three seeds, plus dense; the paper's own setting is one of them; --quick
    shrinks it to 6 settings."""
    s = load_scenario("hash-study")
    s.check_data()
    cells = s.cells()
    labels = list(dict.fromkeys(c.label for c in cells))
    assert len(cells) == 3 + 45 * 2 * 3 and len(labels) == 46
    assert "lsh(family=srp,K=6,L=100)" in labels
    assert labels[-1] == "lsh-policy(policy=multiprobe,transform=sign_alsh)"
    assert all(c.layers["params"]["quality"] for c in cells if c.layers["method"] == "lsh")
    quick = s.with_overrides(quick=True).cells()
    assert list(dict.fromkeys(c.label for c in quick)) == [
        "dense", "lsh(family=srp,K=6,L=50)", "lsh(family=srp_sparse,K=6,L=50)",
        "lsh(family=wta,K=6,L=50)", "lsh(family=dwta,K=6,L=50)",
        "lsh-policy(policy=union,transform=none)", "lsh-policy(policy=histogram,transform=none)"]
