"""Optimizer steps applied to chosen rows only (sparse updates).

Each kernel updates parameter rows ``rows`` of ``P`` from gradient rows of ``G``
(weight decay ``l2`` added to the gradient) and then zeroes those gradient rows,
so the accumulators are clean for the next batch. Rows not listed keep their
parameters and optimizer state unchanged ("lazy" state, as sparse optimizers do).

Every rule has a serial form and a parallel form (``*_par``: rows split across
threads; a row is updated by one thread only, so the threads share nothing).
"""

import math

import numba as nb

from lshprof._config import NJIT_PARALLEL, NJIT_SERIAL


@nb.njit(**NJIT_SERIAL)
def _sgd(P, G, V, rows, lr, mu, l2, lo, hi):
    f = P.dtype.type  # arithmetic in the parameters' precision (float32 vectors are twice as wide)
    lr, mu, l2 = f(lr), f(mu), f(l2)
    for i in range(lo, hi):
        r = rows[i]
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            v = mu * V[r, j] + g
            V[r, j] = v
            P[r, j] -= lr * v
            G[r, j] = 0


@nb.njit(**NJIT_SERIAL)
def sgd_momentum_rows(P, G, V, rows, lr, mu, l2):
    """``v = mu*v + g``; ``p -= lr*v``."""
    _sgd(P, G, V, rows, lr, mu, l2, 0, rows.shape[0])


@nb.njit(**NJIT_PARALLEL)
def sgd_momentum_rows_par(P, G, V, rows, lr, mu, l2, parts):
    n = rows.shape[0]
    for p in nb.prange(parts):
        _sgd(P, G, V, rows, lr, mu, l2, n * p // parts, n * (p + 1) // parts)


@nb.njit(**NJIT_SERIAL)
def _adagrad(P, G, H, V, rows, lr, mu, l2, eps, lo, hi):
    f = P.dtype.type
    lr, mu, l2, eps = f(lr), f(mu), f(l2), f(eps)
    for i in range(lo, hi):
        r = rows[i]
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            h = H[r, j] + g * g
            H[r, j] = h
            v = mu * V[r, j] + lr * g / (math.sqrt(h) + eps)
            V[r, j] = v
            P[r, j] -= v
            G[r, j] = 0


@nb.njit(**NJIT_SERIAL)
def adagrad_momentum_rows(P, G, H, V, rows, lr, mu, l2, eps):
    """``h += g^2``; ``v = mu*v + lr*g/(sqrt(h)+eps)``; ``p -= v``."""
    _adagrad(P, G, H, V, rows, lr, mu, l2, eps, 0, rows.shape[0])


@nb.njit(**NJIT_PARALLEL)
def adagrad_momentum_rows_par(P, G, H, V, rows, lr, mu, l2, eps, parts):
    n = rows.shape[0]
    for p in nb.prange(parts):
        _adagrad(P, G, H, V, rows, lr, mu, l2, eps, n * p // parts, n * (p + 1) // parts)


@nb.njit(**NJIT_SERIAL)
def _adam(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step, lo, hi):
    f = P.dtype.type
    c1 = 1.0 - beta1**step
    c2 = 1.0 - beta2**step
    a, ic2, l2, eps = f(lr / c1), f(1.0 / c2), f(l2), f(eps)
    b1, b2, nb1, nb2 = f(beta1), f(beta2), f(1.0 - beta1), f(1.0 - beta2)
    for i in range(lo, hi):
        r = rows[i]
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            m = b1 * M[r, j] + nb1 * g
            s = b2 * S[r, j] + nb2 * g * g
            M[r, j] = m
            S[r, j] = s
            P[r, j] -= a * m / (math.sqrt(s * ic2) + eps)
            G[r, j] = 0


@nb.njit(**NJIT_SERIAL)
def adam_rows(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step):
    """Adam (Kingma & Ba 2015) with bias correction by the global step number."""
    _adam(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step, 0, rows.shape[0])


@nb.njit(**NJIT_PARALLEL)
def adam_rows_par(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step, parts):
    n = rows.shape[0]
    for p in nb.prange(parts):
        _adam(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step, n * p // parts,
              n * (p + 1) // parts)
