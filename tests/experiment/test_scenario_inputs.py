"""Scenario inputs that used to pass `lshprof scenarios --check` and then fail in `run`, or
end in a traceback (issue 18). Each is now refused by the scenario check that both
commands use (:func:`load_scenario` and :meth:`Scenario.check_data`) with one line naming
the file and the key, and `run` exits 2 having written nothing.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import numpy as np
import pytest

from lshprof.errors import ConfigError, DataError, LshprofError
from lshprof.experiment import scenario as scenario_mod
from lshprof.experiment.scenario import (MAX_THREADS, MemoryEstimate, MemoryPart, load_scenario,
                                         max_threads, thread_note)

BASE = """\
[scenario]
name = "t"

[data]
dataset = "gaussian"
n_train = 200
n_test = 50
n_features = 16
{data}
[network]
hidden = {hidden}

[training]
epochs = 1
batch_size = {batch}
optimizer = "{optimizer}"
{training}
{tables}
"""


def scenario_file(tmp_path: Path, tables: str = "[methods.dense]\n", *, data: str = "",
                  hidden: str = "[32]", batch: int = 8, optimizer: str = "adam",
                  training: str = "", name: str = "s.toml") -> Path:
    path = tmp_path / name
    path.write_text(BASE.format(data=data, hidden=hidden, batch=batch, optimizer=optimizer,
                                training=training, tables=tables))
    return path


def refused(path: Path, *, check_data: bool = False, exc=LshprofError, **kwargs) -> str:
    """The one-line message with which the scenario check refuses ``path``."""
    with pytest.raises(exc) as err:
        s = load_scenario(path)
        if check_data:
            s.check_data(**kwargs)
    text = str(err.value)
    assert "\n" not in text and str(path) in text, text
    return text


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize("optimizer, key, value, allowed", [
    ("adam", "beta1", "5", ">= 0 and < 1"),
    ("adam", "beta2", "1.0", ">= 0 and < 1"),
    ("adam", "lr", "0", "> 0"),
    ("adam", "eps", "0", "> 0"),
    ("sgd", "momentum", "1", ">= 0 and < 1"),
    ("adagrad", "lr", "0.0", "> 0"),
    ("adagrad", "eps", "0.0", "> 0"),
])
def test_optimizer_parameter_ranges(tmp_path, optimizer, key, value, allowed):
    f = scenario_file(tmp_path, optimizer=optimizer,
                      training=f"[training.optimizer_params]\n{key} = {value}\n")
    text = refused(f, exc=ConfigError)
    assert f"[training] optimizer_params {key}: must be a finite number {allowed} " \
           f"(optimizer '{optimizer}'), got {float(value)}" in text


def test_a_method_table_optimizer_parameter_is_checked_too(tmp_path):
    f = scenario_file(tmp_path, "[methods.dense]\noptimizer_params = { beta1 = 1.5 }\n")
    assert "[methods.dense] optimizer_params beta1: must be a finite number >= 0 and < 1" \
        in refused(f, exc=ConfigError)


def test_edge_values_in_range_load(tmp_path):
    f = scenario_file(tmp_path, training="[training.optimizer_params]\nbeta1 = 0\n"
                                         "beta2 = 0.9999\nlr = 1e-6\nl2 = 0\n")
    assert load_scenario(f).model.training.optimizer_params["beta1"] == 0.0
    f = scenario_file(tmp_path, optimizer="sgd", training="[training.optimizer_params]\n"
                                                          "momentum = 0\n")
    load_scenario(f)


# --------------------------------------------------------------------------- [quick]


@pytest.mark.parametrize("quick, words", [
    ("data = { bogus = 3 }", "[quick] data: unknown key 'bogus' for dataset 'gaussian'"),
    ("data = { n_train = -5 }", "[quick] data.n_train: must be a positive integer, got -5"),
    ("data = { n_features = \"many\" }", "[quick] data.n_features: expected int, got 'many'"),
    ("data = { noise = inf }", "[quick] data.noise: must be a finite number >= 0, got inf"),
])
def test_quick_data_options_are_checked_like_data(tmp_path, quick, words):
    f = scenario_file(tmp_path, f"[methods.dense]\n\n[quick]\n{quick}\n")
    assert words in refused(f, exc=ConfigError)


def test_what_quick_runs_is_checked_with_the_scenario(tmp_path):
    # the quick batch is larger than the quick training set: the --quick run would fail
    f = scenario_file(tmp_path, "[methods.dense]\n\n[quick]\nhidden = []\n")
    assert "[quick] hidden" in refused(f, exc=ConfigError)
    f = scenario_file(tmp_path, "[methods.lsh]\n\n[quick]\nfractions = [0.5, 0.5]\n")
    assert "[quick] fractions: fractions repeat" in refused(f, exc=ConfigError)
    good = scenario_file(tmp_path, "[methods.dense]\n\n[quick]\ndata = { n_train = 100 }\n")
    assert load_scenario(good).with_overrides(quick=True).data_options["n_train"] == 100


# --------------------------------------------------------------------------- idle baseline


@pytest.mark.parametrize("value, shown", [("inf", "inf"), ("nan", "nan"), ("-inf", "-inf")])
def test_idle_baseline_must_be_finite(tmp_path, value, shown):
    f = scenario_file(tmp_path, f"[measure]\nidle_baseline = {value}\n\n[methods.dense]\n")
    assert f"[measure] idle_baseline: input should be a finite number (got {shown})" \
        in refused(f, exc=ConfigError)


def test_idle_baseline_negative_is_still_refused(tmp_path):
    f = scenario_file(tmp_path, "[measure]\nidle_baseline = -1.0\n\n[methods.dense]\n")
    assert "greater than or equal to 0" in refused(f, exc=ConfigError)


# --------------------------------------------------------------------------- memory


def test_huge_hidden_layer_is_refused_with_the_figure(tmp_path):
    f = scenario_file(tmp_path, hidden="[1000000000]")
    text = refused(f, check_data=True, exc=ConfigError)
    assert "[network] hidden = [1000000000] needs about" in text
    assert "the weights, gradients and adam state of layer 1 (16 x 1,000,000,000)" in text
    assert "available: lower it" in text and "cell dense" in text


def test_huge_training_set_is_refused_naming_it(tmp_path):
    f = scenario_file(tmp_path).read_text().replace("n_train = 200", "n_train = 1000000000")
    (tmp_path / "n.toml").write_text(f)
    text = refused(tmp_path / "n.toml", check_data=True, exc=ConfigError)
    assert "[data] n_train = 1000000000, n_test = 50, n_features = 16 needs about 456 GB in all" \
        in text and "for the data (1,000,000,050 samples of 16 features, as built)" in text


def test_huge_lsh_tables_are_refused_naming_the_method(tmp_path):
    f = scenario_file(tmp_path, "[methods.lsh]\nL = 1000000000\n")
    text = refused(f, check_data=True, exc=ConfigError)
    assert "[methods.lsh] L = 1000000000, K = 6 needs about" in text
    assert "the hash functions and 1,000,000,000 tables (6 digits each) over the 32 nodes of " \
           "layer 1; cell lsh" in text


def test_memory_estimate_is_exact_for_its_parts(tmp_path):
    f = scenario_file(tmp_path, "[methods.dense]\n[methods.lsh]\nK = 4\nL = 10\n",
                      data="n_classes = 3", hidden="[32]")
    s = load_scenario(f)
    est = s.memory_estimate()
    assert isinstance(est, MemoryEstimate) and est.cell == "lsh"  # the heavier cell
    lsh = {p.key: p for p in est.parts}["[methods.lsh] L = 10, K = 4"]
    # 40 functions over 16 inputs (drawn in float64, kept in float32), 10 tables over 32
    # nodes (22 bytes an entry), the digits and codes of the 50 evaluation queries
    assert lsh.nbytes == 40 * 16 * 12 + 10 * 32 * 22 + 50 * (40 * 8 + 10 * 8)
    # at 5% of 32 nodes, 2 are computed: float32 values and an int32 index each
    lsh_acts = {p.what: p for p in est.parts}["the activations of 50 samples at once in "
                                              "evaluation"]
    assert lsh_acts.nbytes == 4 * 50 * 16 + 50 * 2 * 12 + 50 * 3 * 8
    est = s.with_overrides(methods=["dense"]).memory_estimate()
    assert est.cell == "dense"
    by_what = {p.what: p for p in est.parts}
    # float32 weights and biases, their gradients and Adam's two moments
    layer1 = by_what["the weights, gradients and adam state of layer 1 (16 x 32)"]
    assert layer1 == MemoryPart(4 * 32 * 17 * 4, layer1.what, "[network] hidden = [32]")
    assert by_what["the weights, gradients and adam state of layer 2 (32 x 3)"].nbytes == \
        4 * 3 * 33 * 4
    # data: float64 drawing and float32 split of 250 samples, float64 temporaries, labels
    assert by_what["the data (250 samples of 16 features, as built)"].nbytes == \
        250 * (16 * 12 + 8) + 16 * 200 * 16
    # evaluation predicts the 50 test samples at once: inputs, then 2 float32 arrays a layer
    acts = by_what["the activations of 50 samples at once in evaluation"]
    assert acts.nbytes == 4 * 50 * 16 + 50 * (32 + 3) * 8
    assert est.total == sum(p.nbytes for p in est.parts)
    assert est.largest == by_what["the data (250 samples of 16 features, as built)"]
    assert est.total == 101200 + 8704 + 1584 + 17200
    assert est.text().splitlines()[0] == "about 129 kB (cell dense)"


def test_check_memory_uses_the_available_figure(tmp_path):
    s = load_scenario(scenario_file(tmp_path))
    need = s.memory_estimate().total
    s.check_memory(available=need)  # exactly enough
    with pytest.raises(ConfigError, match=r"needs about .* this machine has 1.0 kB available: "
                                          r"lower it"):
        s.check_memory(available=1000)
    with pytest.raises(ConfigError, match="1.0 kB available"):
        s.check_data(available=1000)


def test_hogwild_workers_gradients_are_counted(tmp_path):
    f = scenario_file(tmp_path, "[sweep]\nthreads = [1, 2]\n\n[methods.dense]\nmode = "
                                "\"hogwild\"\n")
    est = load_scenario(f).memory_estimate()
    extra = [p for p in est.parts if "more hogwild workers" in p.what]
    assert [p.nbytes for p in extra] == [4 * 32 * 17, 4 * 10 * 33]
    assert {p.key for p in extra} == {"[sweep] threads"}


# --------------------------------------------------------------------------- batch, sizes


def test_batch_larger_than_the_training_set(tmp_path):
    f = scenario_file(tmp_path, batch=500)
    assert refused(f, check_data=True, exc=ConfigError).endswith(
        "[training] batch_size = 500 is more than the 200 training samples of the data; lower "
        "batch_size to at most 200 (or give more training data)")
    s = load_scenario(scenario_file(tmp_path, batch=64))
    s.check_widths(16, 10, n_train=64)
    with pytest.raises(ConfigError, match="batch_size = 64 is more than the 63 training"):
        s.check_widths(16, 10, n_train=63)


@pytest.mark.parametrize("key", ["n_train", "n_test"])
def test_empty_splits_are_refused(tmp_path, key):
    text = scenario_file(tmp_path).read_text().replace(f"{key} = ", f"{key} = 0 #")
    (tmp_path / "z.toml").write_text(text)
    assert f"[data].{key}: must be a positive integer, got 0" in \
        refused(tmp_path / "z.toml", exc=ConfigError)


# --------------------------------------------------------------------------- threads


def test_absurd_thread_counts_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(scenario_mod, "available_cores", lambda: 2)
    assert max_threads() == 128 and max_threads(64) == MAX_THREADS
    f = scenario_file(tmp_path, "[measure]\nthreads = 100000\n\n[methods.dense]\n")
    assert "[measure] threads: input should be less than or equal to 1024 (got 100000)" in \
        refused(f, exc=ConfigError)
    f = scenario_file(tmp_path, "[sweep]\nthreads = [1, 200]\n\n[methods.dense]\n")
    assert "[sweep] threads: 200 threads is not a sensible count for the 2 cores available " \
           "here (at most 128: 64 per core, 1024 in all); lower it" in refused(f, exc=ConfigError)
    f = scenario_file(tmp_path, "[sweep]\nthreads = [1, 100000]\n\n[methods.dense]\n")
    assert "100000 threads is more than any machine here runs well" in refused(f, exc=ConfigError)
    good = load_scenario(scenario_file(tmp_path))
    with pytest.raises(ConfigError, match="\\[measure\\] threads: 129 threads is not a sensible"):
        good.with_overrides(threads=129)


def test_thread_counts_above_the_cores_get_the_note(tmp_path, monkeypatch):
    monkeypatch.setattr(scenario_mod, "available_cores", lambda: 2)
    s = load_scenario(scenario_file(tmp_path, "[sweep]\nthreads = [1, 4, 8]\n\n[methods.dense]\n"))
    note = ("Note: 4, 8 thread(s) exceed the 2 cores available here; those cells share cores, "
            "so their speedup is not a measure of scaling.")
    assert s.thread_note() == note == thread_note([1, 4, 8, 8])
    assert s.thread_note(cores=8) is None and thread_note([1, 2]) is None
    assert load_scenario(scenario_file(tmp_path)).thread_note() is None


# --------------------------------------------------------------------------- the file itself


def test_binary_scenario_is_one_line(tmp_path):
    f = tmp_path / "x.toml"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    assert refused(f, exc=ConfigError) == \
        f"scenario {f} is not UTF-8 text (byte 0x89 at offset 0): is it a TOML file?"
    f.write_bytes(b'[scenario]\nname = "\xff"\n')
    assert "(byte 0xff at offset 19)" in refused(f, exc=ConfigError)


def test_a_byte_order_mark_is_accepted(tmp_path):
    f = scenario_file(tmp_path)
    f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    assert load_scenario(f).name == "t"


def test_scenario_symlink_loop_says_loop(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.symlink_to(b)
    b.symlink_to(a)
    text = refused(a, exc=ConfigError)
    assert "is a symlink loop" in text and "not found" not in text


# --------------------------------------------------------------------------- data contents


def csv_scenario(tmp_path: Path, rows: str) -> Path:
    (tmp_path / "d.csv").write_text("a,b,label\n" + rows)
    f = tmp_path / "c.toml"
    f.write_text('[scenario]\nname = "c"\n[data]\ndataset = "csv"\ntrain = "d.csv"\n'
                 "[network]\nhidden = [8]\n[training]\nbatch_size = 2\n[methods.dense]\n")
    return f


def test_check_data_reads_the_users_csv(tmp_path):
    f = csv_scenario(tmp_path, "1,2,x\n3,oops,y\n5,6,x\n7,8,y\n")
    assert refused(f, check_data=True, exc=DataError).endswith(
        "d.csv: data row 2, column 'b': 'oops' is not a number; every column but the label "
        "must be numeric")
    f = csv_scenario(tmp_path, "1,2,x\n3,4,x\n5,6,x\n7,8,x\n")
    assert "every training label is 'x' (one class in 4 samples)" in \
        refused(f, check_data=True, exc=DataError)
    load_scenario(csv_scenario(tmp_path, "1,2,x\n3,4,y\n5,6,x\n7,8,y\n")).check_data()


def test_check_data_refuses_a_single_class_npz(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((10, 2)), y=np.full(10, 3))
    f = tmp_path / "n.toml"
    f.write_text('[scenario]\nname = "n"\n[data]\ndataset = "npz"\npath = "d.npz"\n'
                 "[network]\nhidden = [8]\n[training]\nbatch_size = 2\n[methods.dense]\n")
    assert "d.npz: y: every training label is 3 (one class in 10 samples)" in \
        refused(f, check_data=True, exc=DataError)


# --------------------------------------------------------------------------- the command line


CLI_CASES = {
    "beta1": ("[methods.dense]\n", {"training": "[training.optimizer_params]\nbeta1 = 5\n"},
              "optimizer_params beta1"),
    "memory": ("[methods.dense]\n", {"hidden": "[1000000000]"}, "needs about"),
    "threads": ("[measure]\nthreads = 100000\n[methods.dense]\n", {}, "[measure] threads"),
    "batch": ("[methods.dense]\n", {"batch": 1000}, "batch_size = 1,000 is more than"),
    "binary": (None, {}, "is not UTF-8 text"),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory, lshprof_run_session):
    base = tmp_path_factory.mktemp("cli")

    def one(name, tables, kwargs):
        folder = base / name
        folder.mkdir()
        if tables is None:
            f = folder / "s.toml"
            f.write_bytes(b"\x89PNG\r\n\x1a\n")
        else:
            f = scenario_file(folder, tables, **kwargs)
        out = folder / "out"
        return (f, out, lshprof_run_session("scenarios", "--check", f),
                lshprof_run_session("run", f, "-o", out, "--no-report", "-q"))

    with concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        futures = {k: pool.submit(one, k, t, kw) for k, (t, kw, _) in CLI_CASES.items()}
        yield {k: fut.result() for k, fut in futures.items()}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_refuses_with_exit_2_no_traceback_nothing_written(cli_results, name):
    f, out, check, run = cli_results[name]
    words = CLI_CASES[name][2]
    for r in (check, run):
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and str(f) in lines[0], r.stderr
    assert not out.exists()
