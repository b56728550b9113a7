"""Digital convexity of a binary image, exactly, in integer arithmetic.

A set of pixels S is *digitally convex* when it holds every pixel centre that lies
in the convex hull of its own centres. The pixels of a convex region (e.g. an
intersection of half-planes) always are; a union of separate convex regions is
not when its hull takes in a pixel none of them holds.

The kernels below it draw the images of the ``convex`` data set from a numpy
``Generator`` passed in (numba advances the same stream numpy would); the rule they
follow is documented in :func:`lshprof.data.convex`.
"""

import numpy as np
from numba import njit

from lshprof._config import NJIT_SERIAL


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


# --- drawing the images of the ``convex`` data set (lshprof.data.convex documents the rule) ---

@njit(**NJIT_SERIAL)
def _halfplane_region(rng, p, min_pixels, region):
    """Fills ``region`` (bool [side, side]) with the pixels inside the intersection of a
    Geometric(``p``) number of random half-planes, redrawn until it holds at least
    ``min_pixels`` pixels; returns that number. Each half-plane's edge passes through a
    point uniform in [0, side - 1]^2 at an angle uniform in [0, 2 pi); pixel (x, y) is
    inside when x cos(angle) + y sin(angle) <= the same for the point. Draws from ``rng``
    (a numpy Generator) in the order k, then x0, y0, x1, y1, ..., then the k angles."""
    side = region.shape[0]
    hi = float(side - 1)
    while True:
        k = rng.geometric(p)
        px = np.empty(k)
        py = np.empty(k)
        for j in range(k):
            px[j] = rng.uniform(0.0, hi)
            py[j] = rng.uniform(0.0, hi)
        nx = np.empty(k)
        ny = np.empty(k)
        off = np.empty(k)
        for j in range(k):
            theta = rng.uniform(0.0, 2.0 * np.pi)
            nx[j] = np.cos(theta)
            ny[j] = np.sin(theta)
            off[j] = px[j] * nx[j] + py[j] * ny[j]
        count = 0
        for y in range(side):
            for x in range(side):
                inside = True
                for j in range(k):
                    if x * nx[j] + y * ny[j] - off[j] > 0.0:
                        inside = False
                        break
                region[y, x] = inside
                count += inside
        if count >= min_pixels:
            return count


@njit(**NJIT_SERIAL)
def _draw_convex_candidate(rng, label, img, scratch):
    """One draw of class ``label`` before count balancing, into ``img``; returns its
    number of white pixels. 1: one region (Geometric(0.195) half-planes, >= 19 pixels).
    0: the union of 2-4 regions (Geometric(0.07), >= 10 pixels each), the number of
    regions and the regions redrawn together until the union is not digitally convex."""
    side = img.shape[0]
    if label == 1:
        return _halfplane_region(rng, 0.195, 19, img)
    while True:
        parts = rng.integers(2, 5)
        img[:, :] = False
        for _ in range(parts):
            _halfplane_region(rng, 0.07, 10, scratch)
            for y in range(side):
                for x in range(side):
                    if scratch[y, x]:
                        img[y, x] = True
        if not is_digitally_convex(img):
            count = 0
            for y in range(side):
                for x in range(side):
                    count += img[y, x]
            return count


@njit(**NJIT_SERIAL)
def draw_convex_images(rng, labels, keep, bin_width, images):
    """Fills ``images`` (bool [n, side, side]) with images of the classes ``labels``
    (int64 [n]): each one is drawn (:func:`_draw_convex_candidate`) and kept with
    probability ``keep[label, count // bin_width]`` (one ``rng.random()`` per draw,
    kept when below), else drawn again."""
    side = images.shape[1]
    scratch = np.empty((side, side), dtype=np.bool_)
    for i in range(images.shape[0]):
        c = labels[i]
        while True:
            count = _draw_convex_candidate(rng, c, images[i], scratch)
            if rng.random() < keep[c, count // bin_width]:
                break


@njit(**NJIT_SERIAL)
def convex_candidate_counts(rng, label, n, side):
    """White-pixel counts of ``n`` draws of class ``label`` before count balancing."""
    img = np.empty((side, side), dtype=np.bool_)
    scratch = np.empty((side, side), dtype=np.bool_)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        out[i] = _draw_convex_candidate(rng, label, img, scratch)
    return out
