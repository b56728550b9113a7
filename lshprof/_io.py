"""Writing result files: check the folder first, then write atomically."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .errors import ConfigError

__all__ = ["check_json_target", "write_json_atomic", "write_results_json"]


def check_json_target(path: str | None, option: str = "--json") -> None:
    """Fail before any work when ``path``'s folder does not exist."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ConfigError(f"{option}: folder of {path!r} does not exist; create it first")


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON beside ``path`` and rename it: a reader never sees half a file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, default=_jsonable)
    os.replace(tmp, path)


def write_results_json(args, results: Any) -> None:
    """A command's ``--json`` file: its arguments and its results."""
    write_json_atomic(args.json, {"args": {k: v for k, v in vars(args).items() if k != "func"},
                                  "results": results})


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot write {type(o).__name__} as JSON")
