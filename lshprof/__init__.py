"""lshprof: measure what hash-selected sparse layers really save.

The public API is what ``__all__`` lists. Names are imported on first use, so
``import lshprof`` (and ``lshprof --help``) does not load numba.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "ActiveSet": "lshprof.active",
    "MacCounts": "lshprof.macs",
    "PHASES": "lshprof.macs",
    "make_layer": "lshprof.layers",
    "active_budget": "lshprof.layers",
    "Layer": "lshprof.layers",
    "LAYERS": "lshprof.layers",
    "LSH": "lshprof.layers",
    "SelectionStats": "lshprof.lsh",
    "MLP": "lshprof.mlp",
    "train": "lshprof.mlp",
    "evaluate": "lshprof.mlp",
    "EpochStats": "lshprof.mlp",
    "make_optimizer": "lshprof.optim",
    "OPTIMIZERS": "lshprof.optim",
    "limit_threads": "lshprof._threads",
    "Runner": "lshprof.runner",
    "load_results": "lshprof.results",
    "RunWriter": "lshprof.results",
    "open_meter": "lshprof.energy",
    "EnergyReading": "lshprof.energy",
    "EnergyModel": "lshprof.energy.estimate",
    "PhaseClock": "lshprof.timing",
    "TIME_PHASES": "lshprof.timing",
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
