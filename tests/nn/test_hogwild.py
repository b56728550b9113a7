"""Hogwild (lock-free asynchronous) training: the option in scenarios and in train(), one
worker against sync training exactly, several workers learning with every count merged
back, the thread sweep's core-count rule, and the built-in scenario through the CLI."""

import json
import math
import subprocess

import numpy as np
import pytest

from lshprof import MLP, train
from lshprof.data import gaussian_clusters
from lshprof.errors import ConfigError
from lshprof.nn.hogwild import layer_view, optimizer_view
from lshprof.nn.optim import make_optimizer
from lshprof.experiment.scenario import _build, load_scenario, power_thread_counts

BASE = {
    "scenario": {"name": "t"},
    "data": {"dataset": "gaussian", "n_train": 100, "n_test": 50, "n_features": 8},
    "network": {"hidden": [16]},
    "sweep": {"fractions": [0.25]},
    "methods": {"dense": {}, "lsh-hw": {"method": "lsh", "mode": "hogwild", "K": 4, "L": 4}},
}


def scenario(**tables):
    d = json.loads(json.dumps(BASE))
    for table, values in tables.items():
        d.setdefault(table, {}).update(values)
    return _build(d, "t.toml")


@pytest.fixture(scope="module")
def data():
    # easy: about 0.96 after two epochs of sync training, 0.25 by chance
    return gaussian_clusters(600, 200, n_features=16, n_classes=4, noise=0.5, seed=0)


def fit(data, method, params, *, mode, threads, epochs=2, batch_size=8, optimizer="adam",
        hidden=(64,)):
    model = MLP.build(data.X_train.shape[1], list(hidden), 4, method=method, params=params,
                      seed=3)
    hist = train(model, data.X_train, data.y_train, epochs=epochs, batch_size=batch_size,
                 optimizer=optimizer, X_eval=data.X_test, y_eval=data.y_test, seed=5,
                 threads=threads, mode=mode)
    return model, hist


LSH = {"fraction": 0.25, "K": 3, "L": 6, "rehash_every": 5}


# -- the scenario option ---------------------------------------------------------------------------
def test_mode_is_checked_with_the_key_and_the_valid_values():
    with pytest.raises(ConfigError) as e:
        scenario(training={"mode": "async"})
    msg = str(e.value)
    assert "t.toml" in msg and "[training] mode" in msg and "'sync'" in msg and "'hogwild'" in msg
    d = json.loads(json.dumps(BASE))
    d["methods"]["lsh-hw"]["mode"] = "locked"
    with pytest.raises(ConfigError, match=r"\[methods\.lsh-hw\] mode: .*'sync' or 'hogwild'"):
        _build(d, "t.toml")
    with pytest.raises(ConfigError, match=r"\[sweep\] threads: unknown keyword 'all'.*powers"):
        scenario(sweep={"threads": "all"})
    with pytest.raises(ConfigError, match="positive integers"):
        scenario(sweep={"threads": [0, 1]})
    with pytest.raises(ConfigError, match="unknown training mode 'x'"):
        fit(gaussian_clusters(20, 10, n_features=16, n_classes=4, seed=0), "dense", {},
            mode="x", threads=1)


def test_cells_carry_the_mode_and_the_fingerprint_includes_it():
    s = scenario()
    cells = {c.label: c for c in s.cells()}
    assert cells["dense"].mode == "sync" and cells["lsh-hw"].mode == "hogwild"
    assert cells["dense"].id == "dense|fraction=-|seed=0|threads=1"  # sync ids as before
    assert cells["lsh-hw"].id.endswith("|threads=1|mode=hogwild")
    # the default mode is not written out: older runs and baselines keep their fingerprint
    assert "mode" not in s.as_dict()["training"]
    assert "mode" not in s.as_dict()["methods"]["dense"]
    assert scenario(training={"mode": "hogwild"}).fingerprint() != s.fingerprint()
    assert {c.mode for c in scenario(training={"mode": "hogwild"}).cells()} == {"hogwild"}
    d = json.loads(json.dumps(BASE))
    d["methods"]["lsh-hw"].pop("mode")
    assert _build(d, "t.toml").fingerprint() != s.fingerprint()


def test_cli_rejects_a_bad_mode_in_one_line(lshprof_cmd, cli_env, tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[scenario]\nname = "t"\n[data]\ndataset = "gaussian"\n[training]\n'
                 'mode = "async"\n[methods.dense]\n')
    out = tmp_path / "out"
    r = subprocess.run([*lshprof_cmd, "run", str(f), "-o", str(out)], capture_output=True,
                       text=True, env=cli_env, timeout=120)
    assert r.returncode == 2
    (line,) = r.stderr.strip().splitlines()
    assert "[training] mode" in line and "hogwild" in line and str(f) in line
    assert not out.exists()


def test_power_thread_counts_never_exceed_the_cores(monkeypatch):
    assert power_thread_counts(1) == [1]
    assert power_thread_counts(2) == [1, 2]
    assert power_thread_counts(6) == [1, 2, 4, 6]
    assert power_thread_counts(16) == [1, 2, 4, 8, 16]
    s = scenario(sweep={"threads": "powers"})
    assert sorted({c.threads for c in s.cells(cores=3)}) == [1, 2, 3]
    import lshprof.experiment.scenario as S

    monkeypatch.setattr(S, "available_cores", lambda: 4)
    assert s.thread_counts() == [1, 2, 4]
    assert len(s.cells()) == 3 * 2  # two labels, one fraction
    assert s.as_dict()["sweep"]["thread_counts"] == [1, 2, 4]
    # an explicit list runs as written; --threads replaces the sweep
    assert scenario(sweep={"threads": [3, 1]}).thread_counts() == [3, 1]
    assert s.with_overrides(threads=2).thread_counts() == [2]


# -- one worker is sync training ------------------------------------------------------------------
@pytest.mark.parametrize("method,params", [("dense", {}), ("dropout", {"p": 0.5}),
                                           ("lsh", LSH)])
def test_one_worker_reproduces_sync_training_exactly(data, method, params):
    m1, h1 = fit(data, method, params, mode="sync", threads=1)
    m2, h2 = fit(data, method, params, mode="hogwild", threads=1)
    assert [e.loss for e in h1] == [e.loss for e in h2]
    assert [e.eval_accuracy for e in h1] == [e.eval_accuracy for e in h2]
    assert [e.train_macs for e in h1] == [e.train_macs for e in h2]
    assert [e.layer_train_macs for e in h1] == [e.layer_train_macs for e in h2]
    assert [e.eval_macs for e in h1] == [e.eval_macs for e in h2]
    assert [e.layer_active_fraction for e in h1] == [e.layer_active_fraction for e in h2]
    assert json.dumps([e.layer_selection for e in h1]) == \
        json.dumps([e.layer_selection for e in h2])  # (nan where quality is not measured)
    for a, b in zip(m1.layers, m2.layers):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
        assert (a.samples_seen, a.active_seen) == (b.samples_seen, b.active_seen)
    if method == "lsh":
        assert m1.layers[0].rehash_count == m2.layers[0].rehash_count > 1
        assert np.array_equal(m1.layers[0].tables.codes, m2.layers[0].tables.codes)
    assert h2[0].mode == "hogwild" and h2[0].worker_samples == (data.X_train.shape[0],)
    assert h2[0].train_phase_s == {}  # no per-phase wall split in hogwild mode
    assert h1[0].train_thread_phase_s == {} and h2[0].train_thread_phase_s["forward"] > 0


# -- several workers -------------------------------------------------------------------------------
def test_two_workers_learn_and_every_count_is_merged(data):
    n, epochs = data.X_train.shape[0], 3
    model, hist = fit(data, "lsh", LSH, mode="hogwild", threads=2, epochs=epochs)
    assert hist[-1].eval_accuracy > 0.8  # four classes: 0.25 by chance
    for e in hist:
        assert sum(e.worker_samples) == e.train_samples == n and len(e.worker_samples) == 2
        assert e.samples_per_s > 0 and math.isfinite(e.samples_per_s)
        assert sum(e.layer_train_macs, type(e.train_macs)()) == e.train_macs
        sel = e.layer_selection[0]
        assert sel["queries"] == n  # every worker's queries reached the layer
        assert e.worker_private_bytes > 0
    hidden, out = model.layers
    sync_model, sync = fit(data, "lsh", LSH, mode="sync", threads=1, epochs=epochs)
    # samples seen (training and evaluation passes) add up over the workers
    assert hidden.samples_seen == out.samples_seen == sync_model.layers[0].samples_seen
    for e in hist:  # one active pattern forward and in the weight gradient, over all workers
        c = e.layer_train_macs[0]
        assert c.forward == c.backward_weight > 0 and c.hash > 0
    assert hist[0].layer_train_macs[0].rehash > 0 and hidden.rehash_count > 1
    # dense-equivalent work does not depend on how the samples were split
    assert [e.train_macs.dense_equivalent for e in hist] == \
        [e.train_macs.dense_equivalent for e in sync]
    # every worker's views were emptied into the layers
    assert not hidden.touched.any() and not hidden.grad_W.any()


def test_two_workers_dense_macs_are_exact(data):
    sync_model, sync = fit(data, "dense", {}, mode="sync", threads=1)
    model, hw = fit(data, "dense", {}, mode="hogwild", threads=2)

    def macs(m):  # bytes_moved is left out: the optimizer's traffic model counts batches,
        # and two workers' slices make one batch more here (38 + 38 against 75)
        return {k: v for k, v in m.as_dict().items() if k != "bytes_moved"}

    assert [macs(e.train_macs) for e in hw] == [macs(e.train_macs) for e in sync]
    assert [[macs(m) for m in e.layer_train_macs] for e in hw] == \
        [[macs(m) for m in e.layer_train_macs] for e in sync]
    assert hw[-1].eval_accuracy > 0.8
    assert [layer.samples_seen for layer in model.layers] == \
        [layer.samples_seen for layer in sync_model.layers]


def test_workers_run_kernels_and_blas_on_one_thread(data, monkeypatch):
    import numba
    from threadpoolctl import threadpool_info

    from lshprof.nn.layers import Dense

    seen = []
    choose = Dense._choose

    def spy(self, x, train):
        if train:
            seen.append((numba.get_num_threads(),  # numba's own count, and every BLAS's
                         max(i["num_threads"] for i in threadpool_info()
                             if i["user_api"] == "blas")))
        return choose(self, x, train)

    monkeypatch.setattr(Dense, "_choose", spy)
    fit(data, "dense", {}, mode="hogwild", threads=2, epochs=1, batch_size=64)
    assert seen and set(seen) == {(1, 1)}


def test_a_worker_error_reaches_the_caller(data):
    X = data.X_train.copy()
    X[-1, 0] = np.nan  # the layer refuses it, inside the last worker
    model = MLP.build(16, [8], 4, seed=0)
    with pytest.raises(ConfigError, match="NaN"):
        train(model, X, data.y_train, epochs=1, batch_size=16, mode="hogwild", threads=2)


def test_views_share_weights_and_state_but_not_gradients(data):
    import threading

    model = MLP.build(16, [8], 4, method="lsh", params=LSH, seed=0)
    layer = model.layers[0]
    layer.rebuild()
    v = layer_view(layer, lock=threading.Lock(), seed=np.random.SeedSequence(1))
    assert v.W is layer.W and v.b is layer.b and v.tables is layer.tables
    assert v.grad_W is not layer.grad_W and v._dirty is not layer._dirty
    assert v.rng is not layer.rng and layer_view(layer).rng is layer.rng
    v.rehash_count += 2  # counters and tables are the layer's
    assert layer.rehash_count == v.rehash_count
    opt = make_optimizer("adam", model.layers)
    ov = optimizer_view(opt, [v, model.layers[1]], lock=threading.Lock())
    assert ov._state is opt._state and ov.layers[0] is v
    ov.steps += 1
    ov.steps += 1
    assert opt.steps == 2 == ov.steps

# -- what views share and own: the classes' declarations ---------------------------------------------
DECLARED_PARAMS = {"dense": {}, "dropout": {"p": 0.5}, "adaptive_dropout": {},
                   "wta": {"fraction": 0.25}, "topk": {"fraction": 0.25},
                   "lsh": {**LSH, "quality": True, "shortfall": "pad", "rehash_every": 1}}


def declared(cls):
    names = (cls.HOGWILD_SHARED + cls.HOGWILD_THROUGH + cls.HOGWILD_COUNTERS
             + cls.HOGWILD_PRIVATE + cls.HOGWILD_PRIVATE_RNGS)
    assert len(set(names)) == len(names), f"{cls.__name__} declares a name twice"
    return set(names)


@pytest.mark.parametrize("mode", ["sync", "hogwild"])
@pytest.mark.parametrize("method", list(DECLARED_PARAMS))
def test_every_attribute_is_declared_shared_or_private(data, method, mode):
    """After training steps, a layer's (and the optimizer's) attributes are exactly the
    names its class declares shared or private: a new attribute must be declared."""
    from lshprof.measure.timing import NULL_CLOCK
    from lshprof.nn.hogwild import check_declared
    from lshprof.nn.step import train_step

    p = DECLARED_PARAMS[method]
    model = MLP.build(16, [12], 4, method=method, params=p, output_method=method,
                      output_params=p, seed=0)
    X, y = data.X_train[:48], data.y_train[:48]
    train(model, X, y, epochs=1, batch_size=8, optimizer="adam", mode=mode, threads=2,
          X_eval=data.X_test[:16], y_eval=data.y_test[:16])
    opt = make_optimizer("adam", model.layers)
    train_step(model, opt, NULL_CLOCK, X[:8], y[:8], sparse_out=True)  # on the layers too
    for layer in model.layers:
        cls = type(layer)
        assert set(vars(layer)) == declared(cls), cls.__name__
        assert set(layer.fresh_private_state()) == set(cls.HOGWILD_PRIVATE)
        assert set(cls.HOGWILD_MARKS) <= set(cls.HOGWILD_PRIVATE)
        check_declared(layer)
    assert set(vars(opt)) == declared(type(opt))
    check_declared(opt)


@pytest.mark.parametrize("method", list(DECLARED_PARAMS))
def test_views_never_reassign_what_they_share_as_the_same_objects(data, method):
    """HOGWILD_SHARED attributes are copied into a view as references: after an epoch of
    two workers each view still holds the layer's own objects (a re-assigned one would
    have to be HOGWILD_THROUGH), and THROUGH ones are the layer's."""
    from lshprof.nn.hogwild import HogwildTrainer

    p = DECLARED_PARAMS[method]
    model = MLP.build(16, [12], 4, method=method, params=p, output_method=method,
                      output_params=p, seed=0)
    opt = make_optimizer("adagrad", model.layers)
    trainer = HogwildTrainer(model, opt, 2, batch_size=4)
    trainer.run_epoch(np.arange(64), data.X_train, data.y_train, sparse_out=method != "dense")
    for net, vopt in zip(trainer.nets, trainer.opts):
        for layer, view in zip(model.layers, net.layers):
            for n in type(layer).HOGWILD_SHARED:
                assert view.__dict__[n] is vars(layer)[n], (method, n)
            for n in type(layer).HOGWILD_THROUGH:
                assert n not in view.__dict__ and getattr(view, n) is getattr(layer, n)
        for n in type(opt).HOGWILD_SHARED:
            assert vopt.__dict__[n] is vars(opt)[n], n
    assert opt.steps == 2 * (32 // 4)


def test_an_undeclared_attribute_is_refused(data):
    model = MLP.build(16, [8], 4, method="lsh", params=LSH, seed=0)
    layer = model.layers[0]
    layer.extra_state = np.zeros(3)
    with pytest.raises(TypeError, match="extra_state.*HOGWILD_SHARED"):
        layer_view(layer)
    opt = make_optimizer("sgd", model.layers)
    opt.extra = 1
    with pytest.raises(TypeError, match="'extra'"):
        optimizer_view(opt, model.layers, lock=__import__("threading").Lock())


def test_hogwild_names_no_layer_internals():
    """hogwild.py reads the declarations only: no attribute of a particular method in its
    code (docstrings aside)."""
    import ast
    import inspect

    import lshprof.nn.hogwild as hw

    tree = ast.parse(inspect.getsource(hw))
    words = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)) and node.body and \
                isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:]  # drop the docstring
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words.update(node.value.replace(".", " ").replace("`", " ").split())
    lsh_only = {"tables", "hashes", "_dirty", "_stats", "_M", "rehash_count", "rows_rehashed",
                "_quality_rng", "rebuild", "LSH", "SHARED_ATTRS", "PRIVATE_RNGS", "MLP"}
    assert not words & lsh_only, sorted(words & lsh_only)



# -- runner rows and the scenario through the CLI -------------------------------------------------
def test_rows_have_samples_per_s_in_both_modes(data):
    from lshprof.experiment.runner import Runner
    from lshprof.experiment.sweep import Cell, NetworkSpec, TrainingSpec

    net, tr = NetworkSpec((16,)), TrainingSpec(1, 32)
    with Runner(None, energy="none") as runner:
        sync = runner.run(Cell("dense", "dense", threads=1, network=net, training=tr),
                          data=data).rows
        hw = runner.run(Cell("dense", "dense", threads=2, mode="hogwild", network=net,
                             training=tr), data=data).rows
    for row in sync + hw:
        assert row["samples_per_s"] > 0
        assert row["samples_per_s"] == pytest.approx(row["n_train"] / row["wall_elapsed_s"])
    assert sync[0]["mode"] == "sync" and "wall_forward_s" in sync[0]
    assert hw[0]["mode"] == "hogwild" and "wall_forward_s" not in hw[0]
    assert hw[0]["worker_forward_s"] > 0 and hw[0]["worker_samples"] == [300, 300]


def test_hogwild_scenario_quick_run(lshprof_cmd, cli_env, tmp_path):
    from lshprof.experiment.results import load_results
    from lshprof.analysis.summary import summarize

    s = load_scenario("hogwild")
    assert {c.mode for c in s.cells()} == {"sync", "hogwild"}
    assert {c.method for c in s.cells()} == {"dense", "lsh"}
    assert s.model.sweep.threads == "powers"
    out = tmp_path / "hw"
    r = subprocess.run([*lshprof_cmd, "run", "hogwild", "--quick", "-o", str(out),
                        "--no-report", "--energy", "none"],
                       capture_output=True, text=True, env=cli_env, timeout=300)
    assert r.returncode == 0, r.stderr
    df = load_results(out)
    cells = s.with_overrides(quick=True).cells()
    assert set(df["cell"]) == {c.id for c in cells}
    assert df["samples_per_s"].gt(0).all()
    hw = df[df["mode"] == "hogwild"]
    assert len(hw) and hw["wall_forward_s"].isna().all() and hw["worker_forward_s"].gt(0).all()
    summary = summarize(df)
    assert summary.loc[summary["threads"] == 1, "speedup"].eq(1.0).all()
    assert "speedup" in summary.columns and "samples_per_s" in summary.columns
    if len(set(df["threads"])) > 1:
        assert "samples/s" in r.stdout and "speedup" in r.stdout
    assert "hogwild" in r.stdout
