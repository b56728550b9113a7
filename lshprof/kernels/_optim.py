"""Optimizer steps applied to chosen rows only (sparse updates).

Each kernel updates parameter rows ``rows`` of ``P`` from gradient rows of ``G``
(weight decay ``l2`` added to the gradient) and then zeroes those gradient rows,
so the accumulators are clean for the next batch. Rows not listed keep their
parameters and optimizer state unchanged ("lazy" state, as sparse optimizers do).
"""

import math

import numba as nb

from .._config import NJIT_SERIAL


@nb.njit(**NJIT_SERIAL)
def sgd_momentum_rows(P, G, V, rows, lr, mu, l2):
    """``v = mu*v + g``; ``p -= lr*v``."""
    for r in rows:
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            v = mu * V[r, j] + g
            V[r, j] = v
            P[r, j] -= lr * v
            G[r, j] = 0.0


@nb.njit(**NJIT_SERIAL)
def adagrad_momentum_rows(P, G, H, V, rows, lr, mu, l2, eps):
    """``h += g^2``; ``v = mu*v + lr*g/(sqrt(h)+eps)``; ``p -= v``."""
    for r in rows:
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            h = H[r, j] + g * g
            H[r, j] = h
            v = mu * V[r, j] + lr * g / (math.sqrt(h) + eps)
            V[r, j] = v
            P[r, j] -= v
            G[r, j] = 0.0


@nb.njit(**NJIT_SERIAL)
def adam_rows(P, G, M, S, rows, lr, beta1, beta2, eps, l2, step):
    """Adam (Kingma & Ba 2015) with bias correction by the global step number."""
    c1 = 1.0 - beta1**step
    c2 = 1.0 - beta2**step
    for r in rows:
        for j in range(P.shape[1]):
            g = G[r, j] + l2 * P[r, j]
            m = beta1 * M[r, j] + (1.0 - beta1) * g
            s = beta2 * S[r, j] + (1.0 - beta2) * g * g
            M[r, j] = m
            S[r, j] = s
            P[r, j] -= lr * (m / c1) / (math.sqrt(s / c2) + eps)
            G[r, j] = 0.0
