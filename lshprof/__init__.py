"""lshprof: measure what hash-selected sparse layers really save.

The public API is what ``__all__`` lists. Names are imported on first use, so
``import lshprof`` (and ``lshprof --help``) does not load numba.
"""

from __future__ import annotations

import importlib
import os

__version__ = "0.1.0"

# OpenBLAS's idle worker threads spin for a while after each product before they sleep.
# Between two products numba's threads then fight them for the cores: on a 2-core machine
# a kernel at 2 threads ran up to 10x slower than at 1 (``lshprof bench --suite speed``).
# The shortest spin (2**4 cycles) removes the fight. OpenBLAS reads this when it loads,
# so it applies when lshprof is imported before numpy; a value already set is kept.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

_LAZY = {
    "ActiveSet": "lshprof.nn.active",
    "MacCounts": "lshprof.measure.macs",
    "PHASES": "lshprof.measure.macs",
    "make_layer": "lshprof.nn.layers",
    "active_budget": "lshprof.nn.layers",
    "Layer": "lshprof.nn.layers",
    "LAYERS": "lshprof.nn.layers",
    "LSH": "lshprof.nn.lsh.layer",
    "SelectionStats": "lshprof.nn.lsh.stats",
    "MLP": "lshprof.nn.mlp",
    "train": "lshprof.nn.training",
    "evaluate": "lshprof.nn.training",
    "EpochStats": "lshprof.nn.training",
    "make_optimizer": "lshprof.nn.optim",
    "OPTIMIZERS": "lshprof.nn.optim",
    "limit_threads": "lshprof.measure.threads",
    "Runner": "lshprof.experiment.runner",
    "Cell": "lshprof.experiment.sweep",
    "DataSpec": "lshprof.experiment.sweep",
    "NetworkSpec": "lshprof.experiment.sweep",
    "TrainingSpec": "lshprof.experiment.sweep",
    "MeasureSpec": "lshprof.experiment.sweep",
    "CellResult": "lshprof.experiment.execute",
    "run_cell": "lshprof.experiment.execute",
    "run_cells": "lshprof.experiment.execute",
    "load_scenario": "lshprof.experiment.scenario",
    "load_results": "lshprof.experiment.results",
    "RunWriter": "lshprof.experiment.results",
    "open_meter": "lshprof.measure.energy",
    "EnergyReading": "lshprof.measure.energy",
    "EnergyModel": "lshprof.measure.energy.estimate",
    "PhaseClock": "lshprof.measure.timing",
    "TIME_PHASES": "lshprof.measure.timing",
    "LshprofError": "lshprof.errors",
    "ConfigError": "lshprof.errors",
    "InputTypeError": "lshprof.errors",
    "EnergyUnavailable": "lshprof.errors",
    "ResultsError": "lshprof.errors",
    "DataError": "lshprof.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lshprof' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
