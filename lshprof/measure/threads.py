"""One switch for both thread pools (BLAS via threadpoolctl, numba).

Two pools that each take every core fight over them; on a 2-core machine an
OpenBLAS product slowed 15x when numba also ran 2 threads. Methods are compared
at one thread count, set here for both pools at once.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from lshprof.errors import ConfigError

__all__ = ["limit_threads"]


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` BLAS threads and ``n`` numba threads (None: unchanged)."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"threads must be a positive integer, got {n!r}")
    import numba
    from threadpoolctl import threadpool_limits

    n_numba = min(n, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    numba.set_num_threads(n_numba)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        numba.set_num_threads(old)
