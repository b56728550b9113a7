"""numba options, defined once and used by every kernel.

Serial kernels are compiled with ``cache=True`` so the second start of a process
loads machine code from ``__pycache__`` instead of compiling again.

``fastmath`` allows reassociation (so reductions vectorise) and contraction
into fused multiply-adds, but *not* ``nnan``/``ninf``: NaN and inf keep their
IEEE meaning, so a NaN that slips through is still visible in the results.
"""

FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

NJIT_SERIAL = {"cache": True, "nogil": True, "fastmath": FASTMATH, "error_model": "numpy"}

#: the parallel (``prange``) forms of kernels, used only at more than one numba thread
NJIT_PARALLEL = {**NJIT_SERIAL, "parallel": True}
