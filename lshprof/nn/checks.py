"""Checks of layer and hash-family parameters, shared by :mod:`lshprof.nn.layers` and
:mod:`lshprof.nn.lsh`: each returns the value normalised (a float, an int) or raises a
:class:`~lshprof.errors.ConfigError` that names the method and the parameter."""

from __future__ import annotations

import math

import numpy as np

from lshprof.errors import ConfigError

__all__ = ["check_fraction", "check_real", "check_int", "check_choice", "check_power_of_two"]


def check_fraction(name: str, value, method: str) -> float:
    """A number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{method}: {name} must be a number in (0, 1], got {value!r}")
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ConfigError(f"{method}: {name} must be in (0, 1], got {value}")
    return value


def check_real(name: str, value, method: str) -> float:
    """A finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{method}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{method}: {name} must be finite, got {value}")
    return value


def check_choice(name: str, value, valid, method: str) -> str:
    """One of the names ``valid``."""
    if value not in valid:
        raise ConfigError(f"{method}: unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def check_int(name: str, value, method: str, lo: int, hi: int | None = None) -> int:
    """An integer in ``[lo, hi]`` (no upper bound when ``hi`` is None)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{method}: {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng_txt = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{method}: {name} must be {rng_txt}, got {value}")
    return int(value)


def check_power_of_two(name: str, value: int, method: str) -> int:
    """An integer (already checked) that is a power of 2."""
    if value & (value - 1):
        raise ConfigError(f"{method}: {name} must be a power of 2, got {value}")
    return value
