"""Element-wise passes fused into one sweep: bias + activation (+ scale) going forward,
activation derivative times the incoming gradient (times the scale) going back.

A dense layer's output of ``B x n_out`` values is large (51 MB at 128 x 100,000), so
each separate numpy pass over it (add the bias, apply the activation, scale, cast)
costs a memory sweep; these kernels make one. Activations by code: :data:`ACT_CODES`.
Each has a serial and a parallel (``*_par``, rows or blocks split across threads) form.

The flat parallel forms hand each thread a slice for the serial form: an index loop
from ``lo`` to ``hi`` over the whole array inside a parallel region was not vectorised
by numba 0.68 and ran 4x slower per thread than the serial form (12.8 M elements: 19 ms
against 4.6 ms), so 2 threads were slower than 1 (``lshprof bench --suite speed``).
"""

import math

import numba as nb

from lshprof._config import NJIT_PARALLEL, NJIT_SERIAL

#: activation name -> code understood by these kernels
ACT_CODES = {"relu": 0, "identity": 1, "tanh": 2, "sigmoid": 3}


@nb.njit(**NJIT_SERIAL)
def _act(z, code):
    if code == 0:
        return z if z > 0 else z * 0
    if code == 1:
        return z
    if code == 2:
        return math.tanh(z)
    return 0.5 * (math.tanh(0.5 * z) + 1)


@nb.njit(**NJIT_SERIAL)
def _dact(z, code):
    if code == 0:
        return 1.0 if z > 0 else 0.0
    if code == 1:
        return 1.0
    if code == 2:
        t = math.tanh(z)
        return 1 - t * t
    s = 0.5 * (math.tanh(0.5 * z) + 1)
    return s * (1 - s)


@nb.njit(**NJIT_SERIAL)
def _bias_act_rows(z, b, code, scale, out, lo, hi):
    n = z.shape[1]
    for i in range(lo, hi):
        for j in range(n):
            v = z[i, j] + b[j]
            z[i, j] = v
            out[i, j] = _act(v, code) * scale


@nb.njit(**NJIT_SERIAL)
def bias_act(z, b, code, scale, out):
    """``z += b`` (row-wise, in place); ``out = act(z) * scale``."""
    _bias_act_rows(z, b, code, scale, out, 0, z.shape[0])


@nb.njit(**NJIT_PARALLEL)
def bias_act_par(z, b, code, scale, out, parts):
    B = z.shape[0]
    parts = min(B, parts)
    for p in nb.prange(parts):
        _bias_act_rows(z, b, code, scale, out, B * p // parts, B * (p + 1) // parts)


@nb.njit(**NJIT_SERIAL)
def act(z, code, scale, out):
    """``out = act(z) * scale`` over flat arrays."""
    for i in range(z.shape[0]):
        out[i] = _act(z[i], code) * scale


@nb.njit(**NJIT_PARALLEL)
def act_par(z, code, scale, out, parts):
    n = z.shape[0]
    for p in nb.prange(parts):
        lo, hi = n * p // parts, n * (p + 1) // parts
        act(z[lo:hi], code, scale, out[lo:hi])  # a slice per thread: see the docstring


@nb.njit(**NJIT_SERIAL)
def act_grad(g, z, code, scale, out):
    """``out = g * act'(z) * scale`` over flat arrays."""
    for i in range(z.shape[0]):
        out[i] = g[i] * _dact(z[i], code) * scale


@nb.njit(**NJIT_PARALLEL)
def act_grad_par(g, z, code, scale, out, parts):
    n = z.shape[0]
    for p in nb.prange(parts):
        lo, hi = n * p // parts, n * (p + 1) // parts
        act_grad(g[lo:hi], z[lo:hi], code, scale, out[lo:hi])
