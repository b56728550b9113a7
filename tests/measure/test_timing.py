"""The phase clock: exclusive accounting, JIT kept apart, and phases of a real training epoch."""

import time

import numpy as np
import pytest

from lshprof.data import gaussian_clusters
from lshprof.nn.mlp import MLP, train
from lshprof.measure.timing import NULL_CLOCK, TIME_PHASES, PhaseClock, attached, clock_overhead_ns


def _spin(seconds):
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        pass


def test_nested_phases_are_exclusive_and_add_up():
    c = PhaseClock()
    t0 = time.perf_counter_ns()
    c.push("other")
    _spin(0.01)
    c.push("forward")
    _spin(0.02)
    c.push("select")
    _spin(0.03)
    c.pop()
    _spin(0.01)
    c.pop()
    c.pop()
    t1 = time.perf_counter_ns()
    assert c.depth == 0
    assert c.calls == 6
    assert c.ns["select"] == pytest.approx(30e6, rel=0.3)
    assert c.ns["forward"] == pytest.approx(30e6, rel=0.3)  # 20 ms before, 10 ms after select
    assert c.ns["other"] == pytest.approx(10e6, rel=0.5)
    # the phases cover the interval, short only of the clock's own calls
    assert 0 <= (t1 - t0) - c.total_ns() < 1e6


def test_phase_context_manager_pops_on_error():
    c = PhaseClock()
    c.push("other")
    with pytest.raises(RuntimeError):
        with c.phase("hash"):
            raise RuntimeError("boom")
    assert c.depth == 1


def test_null_clock_does_nothing():
    NULL_CLOCK.push("forward")
    NULL_CLOCK.pop()
    with NULL_CLOCK.phase("select"):
        pass


def test_numba_compilation_is_charged_to_jit_not_the_phase():
    import numba

    # a fresh function (new source each run, no cache) must compile inside the phase
    ns = {}
    exec(f"def f(x):\n    return x * {time.perf_counter_ns()} + 1\n", ns)
    f = numba.njit(ns["f"])

    class Owner:
        clock = NULL_CLOCK

    o = Owner()
    c = PhaseClock()
    with attached(c, [o]):
        assert o.clock is c
        c.push("forward")
        f(np.float64(2.0))  # compiles
        c.pop()
        jit_after_first = c.ns["jit"]
        c.push("forward")
        f(np.float64(3.0))  # compiled already
        c.pop()
    assert o.clock is NULL_CLOCK
    assert jit_after_first > 5e6  # compiling takes milliseconds
    assert c.ns["jit"] == jit_after_first
    assert c.ns["forward"] < jit_after_first / 5


def test_clock_overhead_is_measured():
    cost = clock_overhead_ns(2000)
    assert 0 < cost < 1e5


@pytest.fixture(scope="module")
def data():
    return gaussian_clusters(256, 64, n_features=24, seed=3)


@pytest.mark.parametrize("method,params", [("dense", {}), ("topk", {"fraction": 0.25}),
                                           ("lsh", {"fraction": 0.25, "L": 8, "quality": True})])
def test_training_phases_cover_the_epoch(data, method, params):
    model = MLP.build(24, [64], 10, method=method, params=params, seed=1)
    hist = train(model, data.X_train, data.y_train, epochs=2, batch_size=16,
                 X_eval=data.X_test, y_eval=data.y_test)
    for h in hist:
        assert set(h.train_phase_s) == set(TIME_PHASES)
        total = sum(h.train_phase_s.values())
        # an independent outer clock: the phases and JIT cover it, short only of clock calls
        gap = h.train_wall_s - (total + h.train_jit_s)
        assert 0 <= gap < max(0.01 * h.train_wall_s, 2e-4)
        assert sum(h.eval_phase_s.values()) + h.eval_jit_s <= h.eval_wall_s + 1e-9
        assert h.train_phase_s["forward"] > 0 and h.train_phase_s["backward"] > 0
        assert h.train_phase_s["update"] > 0
        assert h.eval_phase_s["backward"] == 0 and h.eval_phase_s["update"] == 0
        assert h.clock_calls > 0
    first = hist[0].train_phase_s
    if method == "dense":
        assert first["hash"] == first["rehash"] == first["quality"] == 0
    elif method == "topk":
        assert first["select"] > 0 and first["hash"] == 0
    else:
        assert first["hash"] > 0 and first["rehash"] > 0 and first["quality"] > 0
        assert hist[1].eval_phase_s["hash"] > 0  # inference hashes too


def test_timing_off_detaches_the_clock(data):
    model = MLP.build(24, [64], 10, seed=1)
    (h,) = train(model, data.X_train, data.y_train, epochs=1, batch_size=16, timing=False)
    assert h.train_phase_s == {} and h.clock_calls == 0
    assert all(layer.clock is NULL_CLOCK for layer in model.layers)
