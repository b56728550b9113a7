"""`lshprof run` and `lshprof scenarios` as a user runs them: subprocesses, exit codes, output,
and what lands (or does not land) on disk. Where only the stored results are checked, the run
is in process (`lshprof.cli.main`)."""

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from lshprof.cli import main
from lshprof.experiment.results import load_results, read_run
from lshprof.experiment.scenario import builtin_scenarios, load_scenario

BUILTIN = ["quickstart", "paper-rectangles", "paper-convex", "paper-mnist", "paper-norb",
           "wide-output", "ci"]


def cells_of(df):
    return df.groupby("cell").size().to_dict()


# -- lshprof run ci, end to end ------------------------------------------------------------------------
def test_run_ci_end_to_end(ci_run_default):
    out, r = ci_run_default  # lshprof run ci -o DIR
    assert r.returncode == 0, r.stderr
    meta = read_run(out)
    assert meta["status"] == "complete" and meta["complete"]
    assert meta["scenario"]["name"] == "ci"
    assert meta["energy"]["source"] == "estimated"
    df = load_results(out)
    scen = load_scenario("ci")
    cells = scen.cells()
    epochs = scen.model.training.epochs
    assert len(df) == len(cells) * epochs == meta["rows"]
    assert cells_of(df) == {c.id: epochs for c in cells}
    assert set(df["method"]) == {"dense", "dropout", "adaptive_dropout", "wta", "topk", "lsh"}
    # the table names every method, labels the estimate, and says where the results are
    for m in ("dense", "dropout", "wta", "topk", "lsh"):
        assert m in r.stdout
    assert "(est.)" in r.stdout and "ESTIMATED" in r.stdout
    assert f"results: {out}" in r.stdout
    # deterministic work: dense trains every node, topk at 1/8 of 64 hidden nodes keeps 8
    dense = df[df["method"] == "dense"]
    assert (dense["macs_total"] == dense["macs_dense_equivalent"]).all()
    topk = df[df["method"] == "topk"]
    assert topk["layer_active_fraction"].map(lambda s: json.loads(s)[0]).eq(8 / 64).all()
    # the LSH cells measured selection quality, kept apart from the method's work
    lsh = df[df["method"] == "lsh"]
    assert (lsh["macs_quality"] > 0).all() and (dense["macs_quality"] == 0).all()


def test_run_ci_counts_are_reproducible(ci_run, ci_run_default):
    """MACs and active sets at a fixed seed are exact: two runs (``lshprof run ci -q`` and
    ``lshprof run ci``, each in its own process) agree to the unit."""
    out, r = ci_run_default
    assert r.returncode == 0, r.stderr
    a, b = (load_results(o).sort_values(["cell", "epoch"]).reset_index(drop=True)
            for o in (ci_run, out))
    for col in ("macs_total", "macs_forward", "macs_backward_input", "macs_backward_weight",
                "macs_select", "macs_hash", "macs_rehash",
                "bytes_moved", "layer_active_fraction", "eval_accuracy", "loss"):
        assert a[col].tolist() == b[col].tolist(), col


def test_quiet_prints_only_the_table(ci_run_output):
    r = ci_run_output  # lshprof run ci -q -o DIR
    assert r.returncode == 0
    assert r.stderr == ""
    assert "lshprof run ci" in r.stdout and "results:" in r.stdout


def test_overrides_replace_the_scenario(tmp_path):
    out = tmp_path / "o"
    assert main(["run", "ci", "-q", "-o", str(out), "--epochs", "1", "--seeds", "3", "4",
                 "--energy", "none", "--methods", "dense", "lsh", "--fractions", "0.25"]) == 0
    df = load_results(out)
    assert set(df["seed"]) == {3, 4} and set(df["epoch"]) == {1}
    assert set(df["method"]) == {"dense", "lsh"}
    assert set(df.loc[df["method"] == "lsh", "fraction"]) == {0.25}
    assert df["energy_j"].isna().all()
    settings = read_run(out)["scenario"]["settings"]
    assert settings["training"]["epochs"] == 1 and settings["measure"]["energy"] == "none"


def test_quick_shrinks_the_run(tmp_path):
    out = tmp_path / "quick"
    assert main(["run", "quickstart", "--quick", "-q", "-o", str(out),
                 "--methods", "dense", "lsh"]) == 0
    df = load_results(out)
    q = tomllib.loads(builtin_scenarios()["quickstart"].read_text())["quick"]
    assert set(df["epoch"]) == set(range(1, q["epochs"] + 1))
    assert set(df["n_eval"]) == {q["data"]["n_test"]}
    assert set(df["fraction"].dropna()) == set(q["fractions"])
    assert read_run(out)["scenario"]["settings"]["quick_applied"] is True


def test_default_output_folder_is_under_runs(lshprof_run, tmp_path):
    r = lshprof_run("run", "ci", "-q", "--methods", "dense", "--epochs", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("ci-")
    assert f"results: {os.path.join('runs', folder.name)}" in r.stdout
    assert read_run(folder)["complete"]


# -- broken scenarios: one line, exit 2, nothing written ---------------------------------------------
GOOD = """
[scenario]
name = "t"
[data]
dataset = "gaussian"
n_train = 100
n_test = 50
n_features = 8
[network]
hidden = [16]
[training]
epochs = 1
[sweep]
fractions = [0.25]
[methods.dense]
[methods.lsh]
K = 4
L = 4
"""

BROKEN = [
    # (what, replace this, with this, words the error must contain)
    ("unknown key", "[training]\nepochs = 1", "[training]\nepochs = 1\nepoch = 2",
     ["unknown key 'epoch'", "[training]", "allowed:", "epochs"]),
    ("unknown table", "[sweep]", "[sweeps]", ["unknown key 'sweeps'", "allowed:"]),
    ("wrong type", "epochs = 1", 'epochs = "1"', ["[training] epochs", "integer"]),
    ("zero epochs", "epochs = 1", "epochs = 0", ["[training] epochs", "greater than 0"]),
    ("fraction out of range", "fractions = [0.25]", "fractions = [1.5]",
     ["[sweep] fractions", "out of range", "0 < fraction <= 1"]),
    ("unknown dataset", 'dataset = "gaussian"', 'dataset = "imagenet"',
     ["unknown dataset 'imagenet'", "valid:", "rectangles", "mnist"]),
    ("unknown data option", "n_features = 8", "n_features = 8\ncolour = true",
     ["unknown key 'colour'", "gaussian", "valid:"]),
    ("bad data option", "n_train = 100", "n_train = -5", ["[data].n_train", "positive"]),
    ("unknown method", "[methods.lsh]\nK = 4\nL = 4", "[methods.hashy]",
     ["[methods.hashy]", "unknown method 'hashy'", "allowed:", "lsh"]),
    ("unknown layer parameter", "K = 4", "K = 4\nbuckets = 3",
     ["unknown key 'buckets'", "[methods.lsh]", "allowed:", "capacity"]),
    ("bad layer value", "K = 4", "K = 0", ["[methods.lsh]", "K"]),
    ("bad layer choice", "K = 4", 'K = 4\nfamily = "md5"', ["[methods.lsh]", "family", "srp"]),
    ("unknown optimizer", "[training]\nepochs = 1", '[training]\nepochs = 1\noptimizer = "lion"',
     ["[training] optimizer", "'lion'", "adam"]),
    ("unknown optimizer parameter", "[training]\nepochs = 1",
     "[training]\nepochs = 1\noptimizer_params = { rho = 0.9 }",
     ["unknown key 'rho'", "optimizer_params", "lr"]),
    ("unknown energy backend", "[methods.dense]", '[measure]\nenergy = "wattmeter"\n[methods.dense]',
     ["[measure] energy", "'wattmeter'", "powercap"]),
    ("bad apply_to", "hidden = [16]", 'hidden = [16]\napply_to = "middle"',
     ["[network] apply_to", "hidden", "output"]),
    ("no methods", "[methods.dense]\n[methods.lsh]\nK = 4\nL = 4", "", ["[methods]"]),
    ("missing data file", 'dataset = "gaussian"\nn_train = 100\nn_test = 50\nn_features = 8',
     'dataset = "mnist"\nroot = "{tmp}/empty"', ["not found", "lshprof data fetch mnist"]),
    ("not TOML", "[network]", "[network", ["not valid TOML"]),
]


@pytest.fixture(scope="module")
def broken_runs(tmp_path_factory, lshprof_run_session):
    """Every BROKEN file through ``lshprof run`` and ``lshprof scenarios --check``, one
    subprocess each, the cases started together on every CPU (each is mostly start-up):
    ``{what: future of (file, output folder, run's CompletedProcess, check's)}``."""
    base = tmp_path_factory.mktemp("broken")

    def one(i, old, new):
        folder = base / f"case-{i}"
        folder.mkdir()
        f = folder / "broken.toml"
        f.write_text(GOOD.replace(old, new.replace("{tmp}", str(folder))))
        out = folder / "out"
        return (f, out, lshprof_run_session("run", f, "-o", out),
                lshprof_run_session("scenarios", "--check", f))

    with concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        yield {what: pool.submit(one, i, old, new) for i, (what, old, new, _) in enumerate(BROKEN)}


@pytest.mark.parametrize("what,old,new,words", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_scenario_is_one_clear_line(broken_runs, what, old, new, words):
    assert old in GOOD
    f, out, r, c = broken_runs[what].result()
    assert r.returncode == 2, (what, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(f) in lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert not out.exists()
    # the same file through `lshprof scenarios --check`
    assert c.returncode == 2 and words[0] in c.stderr


def test_good_scenario_file_runs(tmp_path):
    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    assert main(["run", str(f), "-q", "-o", str(tmp_path / "out")]) == 0
    assert len(load_results(tmp_path / "out")) == 2


def test_missing_scenario_and_bad_option(lshprof_run, tmp_path):
    r = lshprof_run("run", "no-such-scenario")
    assert r.returncode == 2 and "no built-in scenario 'no-such-scenario'" in r.stderr
    assert "quickstart" in r.stderr
    r = lshprof_run("run", str(tmp_path / "x.toml"))
    assert r.returncode == 2 and "not found" in r.stderr
    r = lshprof_run("run", "ci", "--methods", "dense", "sparse")
    assert r.returncode == 2 and "no method 'sparse'" in r.stderr
    r = lshprof_run("run", "ci", "--fractions", "0")
    assert r.returncode == 2 and "(0, 1]" in r.stderr


def test_pool_larger_than_input_fails_before_writing(lshprof_run, tmp_path):
    f = tmp_path / "pool.toml"
    f.write_text(GOOD.replace("K = 4", "K = 4\npool = 16"))  # the data has 8 features
    out = tmp_path / "out"
    r = lshprof_run("run", str(f), "-o", str(out))
    assert r.returncode == 2 and "pool" in r.stderr and "8 inputs" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_output_folder_that_is_not_a_run_is_refused(lshprof_run, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = lshprof_run("run", "ci", "-o", str(out))
    assert r.returncode == 2 and "not empty" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# -- resuming ----------------------------------------------------------------------------------------
def test_resume_skips_finished_cells_and_redoes_a_cut_one(lshprof_run, tmp_path, monkeypatch):
    """Ctrl-C in the middle of the third cell's second epoch (in process, so it lands at an
    exact point), then the resume command in a subprocess. A cell is stored whole or not at
    all: the cut one leaves nothing behind and runs again."""
    import lshprof.experiment.execute as execute

    out = tmp_path / "r"
    original = execute.run_cell
    started = []

    def cut(cell, *, on_batch=None, **k):
        started.append(cell.id)
        epochs_done = [0]

        def hook(done, total):
            if len(started) == 3 and epochs_done[0] == 1 and done >= total // 2:
                raise KeyboardInterrupt
            epochs_done[0] += done >= total
            on_batch(done, total)
        return original(cell, on_batch=hook, **k)

    monkeypatch.setattr(execute, "run_cell", cut)
    rc = main(["run", "ci", "-o", str(out), "--seeds", "0", "--epochs", "2"])
    monkeypatch.undo()
    assert rc == 130 and len(started) == 3
    meta = read_run(out)
    assert meta["status"] == "interrupted"
    df = load_results(out)
    cells = [c for c in load_scenario("ci").cells() if c.seed == 0]  # the run has --seeds 0
    assert cells_of(df) == {cells[0].id: 2, cells[1].id: 2}

    r = lshprof_run("run", "ci", "-o", str(out), "--seeds", "0", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert "2 of 6 cells already finished" in r.stderr
    meta = read_run(out)
    assert meta["status"] == "complete" and meta["cells"] == 6
    df2 = load_results(out)
    assert cells_of(df2) == {c.id: 2 for c in cells}
    assert list(dict.fromkeys(df2["cell"])) == [c.id for c in cells]  # the sweep's order
    # the finished cells' rows are the very rows written before the interruption
    first = df[df["cell"] == cells[0].id].reset_index(drop=True)
    again = df2[df2["cell"] == cells[0].id].reset_index(drop=True)
    assert first["wall_elapsed_s"].tolist() == again["wall_elapsed_s"].tolist()
    assert meta["resumes"][-1] == {"skipped_cells": 2}
    assert len(meta["resumed_at"]) == 1

    # a third time: nothing to do
    r = lshprof_run("run", "ci", "-o", str(out), "--seeds", "0", "--epochs", "2")
    assert r.returncode == 0 and "nothing to run" in r.stderr
    assert read_run(out)["cells"] == 6


def _default_sigint():
    # a shell that starts jobs in the background ignores SIGINT in them, and Python then
    # leaves it ignored: the child gets the default back, as a terminal's process has it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig, status, said", [
    (signal.SIGINT, 130, "interrupted: "),
    (signal.SIGTERM, 143, "terminated (SIGTERM): "),   # kill, a batch system's time limit
], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_keeps_rows_and_prints_the_resume_command(lshprof_cmd, cli_env, lshprof_run,
                                                         tmp_path, sig, status, said):
    """A real SIGINT (or SIGTERM) to a running sweep: exit 130 (143), status interrupted,
    finished rows kept, and the printed command completes the run."""
    f = tmp_path / "slow.toml"
    f.write_text(GOOD.replace("n_train = 100", "n_train = 4000").replace("epochs = 1", "epochs = 3")
                 .replace("hidden = [16]", "hidden = [256]")
                 .replace("fractions = [0.25]", "fractions = [0.25]\nseeds = [0, 1, 2]"))
    out = tmp_path / "slow"
    proc = subprocess.Popen([*lshprof_cmd, "run", str(f), "-o", str(out)], env=cli_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    meta_file = out / "run.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if meta_file.exists() and read_run(out)["rows"] >= 2:  # a finished cell: 3 rows
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the sweep finished before the signal arrived")
    assert proc.returncode == status, stderr
    assert said in stderr and "resume with: lshprof run" in stderr
    meta = read_run(out)
    assert meta["status"] == "interrupted"
    kept = load_results(out)
    assert len(kept) >= 2
    command = stderr.split("resume with: ")[1].splitlines()[0].split()  # its own line
    assert command[:2] == ["lshprof", "run"]
    r = lshprof_run(*command[1:])
    assert r.returncode == 0, r.stderr
    assert read_run(out)["rows"] == 3 * 2 * 3


def test_resume_with_other_settings_is_refused(lshprof_run, ci_dense_run, tmp_path):
    out = tmp_path / "r"
    shutil.copytree(ci_dense_run, out)  # lshprof run ci -q --methods dense --energy none
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    r = lshprof_run("run", "ci", "-o", str(out), "--methods", "dense", "--energy", "none",
                    "--epochs", "3")
    assert r.returncode == 2
    assert "other settings" in r.stderr and "training.epochs: 6 vs 3" in r.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# -- lshprof scenarios -------------------------------------------------------------------------------
def test_every_builtin_scenario_is_valid_and_listed(lshprof_run):
    assert set(BUILTIN) <= set(builtin_scenarios())
    r = lshprof_run("scenarios")
    assert r.returncode == 0, r.stderr
    for name in BUILTIN:
        s = load_scenario(name)
        assert s.cells() and s.description
        assert name in r.stdout
    assert "(default)" in r.stdout


def test_builtin_scenarios_match_the_issue():
    q = load_scenario("quickstart")
    labels = {c.method for c in q.cells()}
    assert {"dense", "dropout", "adaptive_dropout", "wta", "lsh", "topk"} <= labels
    for name in ("paper-rectangles", "paper-convex", "paper-mnist", "paper-norb"):
        s = load_scenario(name).model
        assert s.network.hidden == [1000]
        assert s.sweep.fractions == [0.05, 0.1, 0.25, 0.5, 0.75, 1.0]
        assert s.methods["lsh"].model_extra["L"] == 100
    assert load_scenario("paper-rectangles").data_options["n_test"] == 50000
    assert load_scenario("paper-convex").data_options["n_train"] == 8000
    w = load_scenario("wide-output")
    assert w.model.network.apply_to == "output" and w.data_options["n_classes"] >= 100000
    assert w.model.network.hidden == [128]


def test_scenarios_prints_a_file_and_the_schema(lshprof_run, tmp_path):
    r = lshprof_run("scenarios", "ci")
    assert r.returncode == 0
    assert tomllib.loads(r.stdout)["scenario"]["name"] == "ci"
    # a printed scenario, saved and edited, is a valid scenario file
    f = tmp_path / "mine.toml"
    f.write_text(r.stdout.replace('name = "ci"', 'name = "mine"'))
    assert load_scenario(str(f)).name == "mine"
    r = lshprof_run("scenarios", "--schema")
    schema = json.loads(r.stdout)
    assert {"scenario", "data", "methods"} <= set(schema["properties"])
    r = lshprof_run("scenarios", "nope")
    assert r.returncode == 2 and "no built-in scenario" in r.stderr


def test_builtin_scenarios_work_outside_the_repository(lshprof_run, tmp_path):
    r = lshprof_run("scenarios", "--check", "ci", "quickstart", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ci: ok" in r.stdout


def test_the_wheel_holds_every_subpackage_and_the_scenarios(root, tmp_path):
    """pyproject finds the packages itself: a wheel built from the tree holds every folder
    of lshprof/ that has an __init__.py, and the built-in scenarios."""
    import zipfile

    # a copy of the tree, so the build leaves nothing in the checkout
    src = tmp_path / "src"
    shutil.copytree(root, src, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "runs", "__pycache__",
                                                  "*.egg-info", "build", "reports"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("lshprof-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(root)) for p in (root / "lshprof").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    assert len(packages) >= 11
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"subpackages missing from the wheel: {missing}"
    scenarios = {p.name for p in (root / "lshprof" / "scenarios").glob("*.toml")}
    assert scenarios and all(f"lshprof/scenarios/{s}" in names for s in scenarios)


def test_user_data_paths_are_relative_to_the_scenario_file(lshprof_run, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    np.savez(folder / "data" / "mine.npz", X=X, y=y)
    f = folder / "mine.toml"
    f.write_text(GOOD.replace('dataset = "gaussian"\nn_train = 100\nn_test = 50\nn_features = 8',
                              'dataset = "npz"\npath = "data/mine.npz"'))
    out = tmp_path / "out"
    r = lshprof_run("run", str(f), "-q", "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    settings = read_run(out)["scenario"]["settings"]
    assert settings["data"]["path"] == str(folder / "data" / "mine.npz")
    assert set(load_results(out)["n_train"]) == {96}
    # a wrong path names the file option and the scenario
    f.write_text(f.read_text().replace("data/mine.npz", "data/other.npz"))
    r = lshprof_run("run", str(f), "-o", str(tmp_path / "out2"), cwd=tmp_path)
    assert r.returncode == 2 and "other.npz" in r.stderr and "'path'" in r.stderr
    assert not (tmp_path / "out2").exists()


# -- issue 18: what a resume, a second writer, a full disk and scenario text cannot do ----------
NPZ = GOOD.replace('dataset = "gaussian"\nn_train = 100\nn_test = 50\nn_features = 8',
                   'dataset = "npz"\npath = "data.npz"')


def _save_npz(path, seed, label_scale=1):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    np.savez(path, X=X, y=(X[:, 0] > 0).astype(np.int64) * label_scale)


def _cut_last_cell(out):
    """The run as a kill would leave it: its last cell gone, run.json not complete."""
    cells = sorted((out / "cells").glob("*.json"),
                   key=lambda p: json.loads(p.read_text())["seq"])
    cells[-1].unlink()
    meta = json.loads((out / "run.json").read_text())
    meta.update(status="interrupted", complete=False, cells=len(cells) - 1, rows=len(cells) - 1)
    (out / "run.json").write_text(json.dumps(meta))


def files_of(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_resume_refused_when_the_data_or_the_measurement_changed(tmp_path, capsys):
    """Resuming with an npz whose contents changed, or another powercap root, energy model
    or idle baseline, is refused naming the difference, and writes nothing; the same
    inputs resume."""
    f = tmp_path / "npz.toml"
    f.write_text(NPZ)
    _save_npz(tmp_path / "data.npz", seed=0)
    out = tmp_path / "r"
    run = ["run", str(f), "-q", "--no-report", "-o", str(out)]
    assert main(run) == 0
    assert len(read_run(out)["data_digest"]) == 64 and read_run(out)["measurement"]
    _cut_last_cell(out)
    capsys.readouterr()
    before = files_of(out)
    _save_npz(tmp_path / "data.npz", seed=1, label_scale=3)    # other contents, same name
    assert main(run) == 2
    err = capsys.readouterr().err.strip()
    assert f"{out} holds a run whose data differ (data digest " in err
    assert f"the file {tmp_path / 'data.npz'} changed" in err
    assert "resume with the same data or choose another folder with -o" in err
    assert files_of(out) == before
    _save_npz(tmp_path / "data.npz", seed=0)
    for option, words in ((["--powercap-root", str(tmp_path / "rapl")],
                           f"powercap root {tmp_path / 'rapl'}"),
                          (["--energy-model", str(tmp_path / "m.json")],
                           f"now energy model {tmp_path / 'm.json'}"),
                          (["--idle-baseline", "0.5"], "now an idle baseline of 0.5 s")):
        assert main(run + option) == 2, option
        err = capsys.readouterr().err.strip()
        assert f"{out} holds a run measured with " in err and words in err, err
        assert len(err.splitlines()) == 1 and files_of(out) == before
    assert main(run) == 0                                 # the same inputs resume
    assert read_run(out)["status"] == "complete" and read_run(out)["cells"] == 2


def test_second_run_into_a_live_folder_is_refused(lshprof_run, tmp_path):
    """A live writer (this test process, through RunWriter) holds the folder: lshprof run
    into it is one line naming that process, exit 2, and writes nothing."""
    from lshprof.experiment.results import RunWriter

    f = tmp_path / "good.toml"
    f.write_text(GOOD)
    out = tmp_path / "live"
    w = RunWriter(out, {"scenario": {"name": "t"}})
    before = files_of(out)
    r = lshprof_run("run", f, "-o", out)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert f"{out} is being written by another lshprof run (pid {os.getpid()}, started " in lines[0]
    assert "wait for it to end, or choose another folder with -o" in lines[0]
    assert files_of(out) == before
    w.finish("interrupted")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 128 KiB tmpfs (the tests run as root); skipped where mounting is not allowed."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): a full "
                    "disk needs root")
    yield d
    subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_write_errors_are_one_line_and_keep_what_finished(lshprof_run, tmp_path, tiny_disk,
                                                         capsys):
    f = tmp_path / "good.toml"
    f.write_text(GOOD.replace("fractions = [0.25]", "fractions = [0.25]\nseeds = [0, 1, 2]"))

    def refused(out):
        assert main(["run", str(f), "--no-report", "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not out.exists(), err
        return err

    # a file where a folder of the path belongs: refused before any work
    (tmp_path / "afile").write_text("x")
    assert f"{tmp_path / 'afile'} is a file, not a folder" in refused(tmp_path / "afile" / "run")
    # a disk that fills up after the first cells (a subprocess: its exit status and all it
    # prints): one line, the cells kept, the resume command; with space again, that
    # command completes the run
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * (88 << 10))               # 40 KiB left: 1 to 5 cells fit
    out = tiny_disk / "run"
    r = lshprof_run("run", f, "--no-report", "-o", out)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and err.startswith("lshprof run: error: cannot write ")
    assert "No space left on device; free space or choose another folder with -o" in err
    kept = load_results(out)
    assert 1 <= kept["cell"].nunique() < 6 and f"{kept['cell'].nunique()} of 6 cells" in err
    assert read_run(out)["status"] in ("failed", "running")
    command = err.split("resume with: ")[1].split()
    assert command[:2] == ["lshprof", "run"]
    filler.unlink()
    assert main(command[1:] + ["-q"]) == 0
    df = load_results(out)
    assert df["cell"].nunique() == 6 and len(df) == 6 and read_run(out)["complete"]
    assert not df.duplicated(["cell", "epoch"]).any()
    kept = kept.set_index("cell")["wall_elapsed_s"]         # the kept cells were not re-run
    assert df.set_index("cell")["wall_elapsed_s"][kept.index].tolist() == kept.tolist()
    # a full disk before anything is written
    with open(filler, "wb", buffering=0) as fh, pytest.raises(OSError, match="No space"):
        while True:
            fh.write(b"\0" * 4096)
    assert "no space left on the device" in refused(tiny_disk / "none")
    # a read-only file system
    filler.unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    assert "read-only file system" in refused(tiny_disk / "ro")


MARKUP = GOOD.replace('name = "t"', 'name = "t"\ndescription = "a [/bold] test of [red]text"') \
    .replace("[methods.dense]", '[methods."[blink red]dense"]\nmethod = "dense"') \
    .replace("[methods.lsh]", '[methods."lsh[/]"]\nmethod = "lsh"')


def test_scenario_text_is_printed_as_text(tmp_path, capsys, monkeypatch):
    """Markup in a description or a method label is shown as written, on a terminal
    (FORCE_COLOR: the live progress bar) and in a log (one line per cell)."""
    f = tmp_path / "markup.toml"
    f.write_text(MARKUP)
    for terminal in (True, False):
        if terminal:
            monkeypatch.setenv("FORCE_COLOR", "1")
            monkeypatch.setenv("COLUMNS", "200")
        else:
            monkeypatch.delenv("FORCE_COLOR", raising=False)
        out = tmp_path / f"out-{terminal}"
        assert main(["run", str(f), "--no-report", "-o", str(out)]) == 0
        r = capsys.readouterr()
        assert "a [/bold] test of [red]text" in r.err
        assert "[blink red]dense" in r.out and "lsh[/]" in r.out
        assert set(load_results(out)["method"]) == {"[blink red]dense", "lsh[/]"}
    assert "lsh[/] @ 0.25" in r.err                          # the log's cell lines
