"""Digital convexity of a binary image, exactly, in integer arithmetic.

A set of pixels S is *digitally convex* when it holds every pixel centre that lies
in the convex hull of its own centres. The pixels of a convex region (e.g. an
intersection of half-planes) always are; a union of separate convex regions is
not when its hull takes in a pixel none of them holds.
"""

import numpy as np
from numba import njit

from .._config import NJIT_SERIAL


@njit(**NJIT_SERIAL)
def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(**NJIT_SERIAL)
def is_digitally_convex(img):
    """``img``: bool [h, w]. True when no pixel outside the set lies in (or on) the
    convex hull of the set's pixel centres. An empty set is convex."""
    h, w = img.shape
    n = 0
    xs = np.empty(h * w, dtype=np.int64)
    ys = np.empty(h * w, dtype=np.int64)
    for x in range(w):  # sorted by x, then y: the order the monotone chain needs
        for y in range(h):
            if img[y, x]:
                xs[n] = x
                ys[n] = y
                n += 1
    if n < 2:
        return True
    hx = np.empty(2 * n, dtype=np.int64)
    hy = np.empty(2 * n, dtype=np.int64)
    k = 0
    for i in range(n):  # lower hull
        while k >= 2 and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    lower = k + 1
    for i in range(n - 2, -1, -1):  # upper hull
        while k >= lower and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    m = k - 1  # the last point repeats the first
    if m < 3:  # collinear: the hull is a segment from (hx[0], hy[0]) to (hx[1], hy[1])
        for y in range(h):
            for x in range(w):
                if not img[y, x] and _cross(hx[0], hy[0], hx[1], hy[1], x, y) == 0 \
                        and min(hx[0], hx[1]) <= x <= max(hx[0], hx[1]) \
                        and min(hy[0], hy[1]) <= y <= max(hy[0], hy[1]):
                    return False
        return True
    for y in range(h):
        for x in range(w):
            if img[y, x]:
                continue
            inside = True
            for j in range(m):  # counter-clockwise hull: inside is left of (or on) every edge
                if _cross(hx[j], hy[j], hx[j + 1], hy[j + 1], x, y) < 0:
                    inside = False
                    break
            if inside:
                return False
    return True
