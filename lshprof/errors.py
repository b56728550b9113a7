"""The package's error classes: one root and a few subclasses.

Every error a user can cause is an :class:`LshprofError`; the subclasses also
derive from the built-in class a Python user would expect (``ValueError`` for a
bad value, ``TypeError`` for a wrong type), so ``except ValueError`` works.
"""


class LshprofError(Exception):
    """Root of every error lshprof raises on purpose."""


class ConfigError(LshprofError, ValueError):
    """A bad value: unknown method or parameter, out-of-range fraction, wrong shape."""


class InputTypeError(LshprofError, TypeError):
    """An argument of the wrong type or dtype."""


class EnergyUnavailable(LshprofError):
    """An energy backend cannot measure here. ``reason`` is a short code
    (``not present``, ``permission denied``, ``no zones``, ``not installed``,
    ``failed``); the message says why and what fixes it."""

    def __init__(self, message: str, reason: str = "failed"):
        super().__init__(message)
        self.reason = reason


class ResultsError(LshprofError, ValueError):
    """A results folder or file that cannot be read: missing, corrupt, or of an
    unknown format version."""


class DataError(LshprofError, OSError):
    """A data set that cannot be used: files missing (the message names the command
    that fetches them), a download that failed or did not match its checksum, a
    corrupt file, or an optional package that is not installed."""
