"""The warm-up compiles every kernel a measured epoch calls.

numba compiles a kernel once per combination of argument types, and a test process
shares its compilations between tests, so "no compilation in the measured epoch" alone
proves little here (another test may have compiled it first). What is held instead is
the cause: every (kernel, argument types) that a measured run calls, the warm-up called
first. A recorder wraps each numba kernel of :mod:`lshprof.kernels` (the layers call
them through that module) and notes the ``numba.typeof`` of the arguments of each call.
"""

from __future__ import annotations

import copy

import numba
import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from lshprof import MLP
from lshprof import kernels as kern
from lshprof.experiment.execute import run_cell
from lshprof.experiment.sweep import Cell, DataSpec, MeasureSpec, NetworkSpec, TrainingSpec
from lshprof.nn import mlp as mlp_module
from lshprof.nn.training import train
from lshprof.nn.warmup import warm_up


class KernelCalls:
    """Every numba kernel of :mod:`lshprof.kernels`, wrapped: ``seen[phase]`` holds the
    ``(kernel, argument types)`` of each call made while ``phase`` was set."""

    def __init__(self, monkeypatch):
        self.phase = "before"
        self.seen: dict[str, set] = {}
        for name in kern.__all__:
            f = getattr(kern, name)
            if isinstance(f, CPUDispatcher):
                monkeypatch.setattr(kern, name, self._wrap(name, f))

    def _wrap(self, name, f):
        def call(*args):
            self.seen.setdefault(self.phase, set()).add(
                (name, tuple(str(numba.typeof(a)) for a in args)))
            return f(*args)
        return call

    def missed(self, measured="measured", warm="warm"):
        """What the measured phase called that the warm-up did not (sorted)."""
        return sorted(self.seen.get(measured, set()) - self.seen.get(warm, set()))


@pytest.fixture
def calls(monkeypatch):
    return KernelCalls(monkeypatch)


def _data(n=120, n_in=30, n_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    X[X < 0.3] = 0  # sparse-ish inputs, as images (dwta hashes the nonzero coordinates)
    return X, rng.integers(0, n_classes, n)


# Each config reaches, in a measured run, something a short pass does not: a scheduled
# re-hash (the tables' later updates), new hash functions, a rebuild of every row, the
# parallel kernel forms of large batches (threads > 1), Hogwild workers, a sparse output
# layer, the quality measurement, a batch of one.
CONFIGS = {
    "dwta-rehash": dict(params=dict(family="dwta", rehash_every=2)),
    "wta-multiprobe-reservoir": dict(params=dict(family="wta", K=4, policy="multiprobe",
                                                 replacement="reservoir", rehash_every=2)),
    "srp-all-newproj-quality": dict(params=dict(rehash_rows="all", rehash_every=2,
                                                new_projections_every=3, quality=True,
                                                shortfall="pad", transform="norm_augment")),
    "lsh-output": dict(method="dense", out="lsh", n_classes=300,
                       out_params=dict(family="dwta", K=3, rehash_every=2)),
    "topk-2-threads-large-batches": dict(method="topk", threads=2, batch_size=64,
                                         par_min_work=20_000),
    "lsh-2-threads-large-batches": dict(params=dict(family="dwta", rehash_every=2), threads=2,
                                        batch_size=64, par_min_work=20_000),
    "hogwild-dwta": dict(params=dict(family="dwta", rehash_every=2), mode="hogwild",
                         threads=2),
    "sgd-batch-1": dict(method="dropout", optimizer="sgd", batch_size=1, n=20),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_warm_up_calls_every_kernel_a_measured_run_calls(name, calls, monkeypatch):
    cfg = dict(CONFIGS[name])
    if "par_min_work" in cfg:  # large batches above the threshold, the warm-up's below it
        monkeypatch.setattr(kern, "PAR_MIN_WORK", cfg.pop("par_min_work"))
    n_classes = cfg.pop("n_classes", 5)
    X, y = _data(n=cfg.pop("n", 120), n_classes=n_classes)
    model = MLP.build(30, [64], n_classes, method=cfg.pop("method", "lsh"),
                      params=cfg.pop("params", {}), output_method=cfg.pop("out", "dense"),
                      output_params=cfg.pop("out_params", {}), seed=3)
    fit = dict(batch_size=cfg.pop("batch_size", 16), optimizer=cfg.pop("optimizer", "adam"),
               threads=cfg.pop("threads", 1), mode=cfg.pop("mode", "sync"), seed=1)
    assert not cfg
    calls.phase = "warm"
    w = warm_up(model, X, y, X_eval=X[:60], y_eval=y[:60], **fit)
    assert w.macs.total > 0 and w.wall_s > 0
    calls.phase = "measured"
    train(model, X, y, epochs=2, X_eval=X[:60], y_eval=y[:60], **fit)
    assert calls.missed() == []


def test_the_warm_up_leaves_the_model_as_it_was():
    X, y = _data()
    model = MLP.build(30, [64], 5, method="lsh", params=dict(rehash_every=2), seed=3)
    twin = copy.deepcopy(model)
    warm_up(model, X, y, batch_size=16)
    lsh = model.layers[0]
    assert lsh.tables is None and lsh.rehash_count == 0 and model.total_macs().total == 0
    for a, b in zip(model.layers, twin.layers):
        np.testing.assert_array_equal(a.W, b.W)
        assert a.rng.bit_generator.state == b.rng.bit_generator.state
    # and training after it is what training without it is
    (s1,) = train(model, X, y, epochs=1, batch_size=16)
    (s2,) = train(twin, X, y, epochs=1, batch_size=16)
    assert (s1.loss, s1.train_macs) == (s2.loss, s2.train_macs)


def test_the_warm_up_forces_both_kernel_forms_at_two_threads():
    X, y = _data()
    model = MLP.build(30, [64], 5, method="topk", seed=3)
    w = warm_up(model, X, y, batch_size=16, threads=2)
    want = ("serial", "parallel") if numba.config.NUMBA_NUM_THREADS > 1 else ("serial",)
    assert w.forms == want
    assert warm_up(model, X, y, batch_size=16, threads=2, mode="hogwild").forms == ("serial",)
    assert warm_up(model, X, y, batch_size=16, threads=1).forms == ("serial",)


def test_forced_kernel_forms():
    from lshprof.measure.threads import limit_threads

    with limit_threads(2):
        two = numba.get_num_threads() > 1
        assert kern.parallel(1) is False and kern.parallel(1 << 30) is two
        with kern.forced("parallel"):
            assert kern.parallel(1) is two
            with kern.forced("serial"):
                assert kern.parallel(1 << 30) is False
            assert kern.parallel(1) is two
        assert kern.parallel(1) is False
    with limit_threads(1), kern.forced("parallel"):
        assert kern.parallel(1 << 30) is False  # one thread: serial whatever is forced
    with pytest.raises(ValueError, match="form must be one of"):
        with kern.forced("fast"):
            pass


# -- a cell, end to end ------------------------------------------------------------------------------
def test_no_cell_compiles_in_its_measured_epochs(calls, monkeypatch):
    """A dwta cell whose tables are re-hashed every 2 batches (the re-hash of the first
    epoch met argument types the warm-up's build had not: 2.1 s of compilation in its
    measured epoch): the measured training calls nothing the warm-up did not, and
    every row's jit_s and eval_jit_s are exactly 0."""
    measured_train = mlp_module.train

    def train_marked(*args, **kwargs):  # run_cell's measured call is the one with on_epoch
        calls.phase = "measured" if kwargs.get("on_epoch") is not None else "warm"
        try:
            return measured_train(*args, **kwargs)
        finally:
            calls.phase = "warm"

    monkeypatch.setattr(mlp_module, "train", train_marked)
    calls.phase = "warm"
    spec = DataSpec("gaussian", {"n_train": 96, "n_test": 40, "n_features": 20,
                                 "n_classes": 3}, 5)
    cell = Cell("lsh_dwta", "lsh", {"fraction": 0.1, "family": "dwta", "rehash_every": 2},
                0.1, seed=1, data=spec, network=NetworkSpec((64,)),
                training=TrainingSpec(2, 16), measure=MeasureSpec(energy="none"),
                scenario="t")
    result = run_cell(cell)
    assert calls.seen.get("measured") and calls.missed() == []
    assert [(r["jit_s"], r["eval_jit_s"]) for r in result.rows] == [(0.0, 0.0)] * 2
    assert result.rows[0]["warmup_s"] > 0
