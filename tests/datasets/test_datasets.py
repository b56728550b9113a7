"""The generated Larochelle et al. benchmarks follow their label rules."""

import numpy as np
import pytest

from lshprof.data import IMAGE_SIDE, convex, rectangles
from lshprof.data._generated import (_CONVEX_BIN, _CONVEX_COUNT_HIST,
                                     _convex_candidate_histograms, _convex_keep_probabilities)
from lshprof.errors import ConfigError
from lshprof.kernels import is_digitally_convex


def reference_convex(img):
    """Slow reference: monotone-chain hull of the pixel centres in Python integers, then
    every pixel centre inside or on the hull must be in the set."""
    pts = sorted((x, y) for y, x in zip(*np.nonzero(img)))
    if len(pts) < 2:
        return True

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    hull = []
    for seq in (pts, pts[::-1]):
        part = []
        for p in seq:
            while len(part) >= 2 and cross(part[-2], part[-1], p) <= 0:
                part.pop()
            part.append(p)
        hull.extend(part[:-1])
    h, w = img.shape
    for y in range(h):
        for x in range(w):
            if img[y, x]:
                continue
            if len(hull) == 2:
                (ax, ay), (bx, by) = hull
                on = (cross(hull[0], hull[1], (x, y)) == 0 and min(ax, bx) <= x <= max(ax, bx)
                      and min(ay, by) <= y <= max(ay, by))
                if on:
                    return False
            elif all(cross(hull[j], hull[(j + 1) % len(hull)], (x, y)) >= 0
                     for j in range(len(hull))):
                return False
    return True


def test_convexity_kernel_matches_the_reference_on_random_shapes():
    rng = np.random.default_rng(0)
    seen = {True: 0, False: 0}
    for i in range(300):
        img = np.zeros((12, 12), dtype=bool)
        for _ in range(int(rng.integers(1, 4))):  # 1-3 random filled boxes or single pixels
            y, x = rng.integers(0, 12, size=2)
            hh, ww = rng.integers(1, 5, size=2)
            img[y:y + hh, x:x + ww] = True
        if i % 3 == 0:
            img &= rng.random(img.shape) < 0.9  # holes
        want = reference_convex(img)
        assert is_digitally_convex(img) == want, img.astype(int)
        seen[want] += 1
    assert min(seen.values()) > 30  # both outcomes exercised


@pytest.mark.parametrize("pixels,convex_", [
    ([], True), ([(3, 3)], True), ([(3, 3), (3, 4)], True), ([(3, 3), (3, 5)], False),
    ([(3, 3), (5, 5)], False), ([(3, 3), (4, 5)], True), ([(0, 0), (0, 1), (1, 0)], True),
])
def test_convexity_edge_cases(pixels, convex_):
    img = np.zeros((8, 8), dtype=bool)
    for y, x in pixels:
        img[y, x] = True
    assert is_digitally_convex(img) == convex_ == reference_convex(img)


def test_rectangles_follow_the_label_rule():
    d = rectangles(300, 200, seed=5)
    assert d.X_train.shape == (300, 784) and d.X_test.shape == (200, 784)
    assert d.X_train.dtype == np.float32 and set(np.unique(d.X_train)) <= {0.0, 1.0}
    X = np.concatenate([d.X_train, d.X_test]).reshape(-1, IMAGE_SIDE, IMAGE_SIDE) > 0
    y = np.concatenate([d.y_train, d.y_test])
    assert 0.35 < y.mean() < 0.65
    for img, label in zip(X, y):
        rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
        top, bottom, left, right = rows[0], rows[-1], cols[0], cols[-1]
        h, w = bottom - top + 1, right - left + 1
        assert abs(h - w) >= 3
        assert label == int(h > w)
        box = img[top:bottom + 1, left:right + 1]
        assert box[0].all() and box[-1].all() and box[:, 0].all() and box[:, -1].all()
        assert not box[1:-1, 1:-1].any()  # an outline: nothing inside
        assert img.sum() == box.sum()  # nothing outside


def test_convex_follows_the_label_rule():
    d = convex(120, 80, seed=2)
    X = np.concatenate([d.X_train, d.X_test]).reshape(-1, IMAGE_SIDE, IMAGE_SIDE) > 0
    y = np.concatenate([d.y_train, d.y_test])
    assert 0.3 < y.mean() < 0.7
    for img, label in zip(X, y):
        assert reference_convex(img) == bool(label)
        if label:
            assert img.sum() >= 19


@pytest.fixture(scope="module")
def convex_sample():
    """8,000 convex images (both splits, in order) and their labels."""
    d = convex(4000, 4000, seed=7)
    return np.concatenate([d.X_train, d.X_test]) > 0, np.concatenate([d.y_train, d.y_test])


def test_convex_labels_agree_with_the_convexity_test(convex_sample):
    X, y = convex_sample
    assert 0.47 < y.mean() < 0.53
    imgs = X.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    assert all(is_digitally_convex(img) == bool(label) for img, label in zip(imgs, y))
    counts = X.sum(axis=1)
    assert counts[y == 1].min() >= 19 and counts[y == 0].min() >= 10


def test_convex_classes_have_the_same_white_pixel_counts(convex_sample):
    X, y = convex_sample
    counts = X.sum(axis=1)
    m0, m1 = counts[y == 0].mean(), counts[y == 1].mean()
    assert abs(m0 - m1) < 0.03 * (m0 + m1) / 2, (m0, m1)
    # the whole distribution, not only the mean: histograms in 64-pixel bins nearly agree
    h0 = np.bincount(counts[y == 0] // 64, minlength=13) / (y == 0).sum()
    h1 = np.bincount(counts[y == 1] // 64, minlength=13) / (y == 1).sum()
    assert 0.5 * np.abs(h0 - h1).sum() < 0.07, (h0, h1)  # sampling noise alone: ~0.03


def best_threshold(counts, y):
    """(accuracy, threshold, sign) of the best rule 'label = sign-th side of count > t'."""
    order = np.argsort(counts, kind="stable")
    c, lab = counts[order], y[order]
    ts = np.unique(c)
    # positives and negatives at or below each threshold
    pos_le = np.cumsum(lab)[np.searchsorted(c, ts, side="right") - 1]
    neg_le = np.searchsorted(c, ts, side="right") - pos_le
    n, n_pos = len(y), lab.sum()
    above_is_1 = (neg_le + (n_pos - pos_le)) / n  # predict 1 when count > t
    i, j = np.argmax(above_is_1), np.argmin(above_is_1)
    if above_is_1[i] >= 1 - above_is_1[j]:
        return above_is_1[i], ts[i], 1
    return 1 - above_is_1[j], ts[j], 0


def test_pixel_counts_alone_do_not_tell_the_convex_classes_apart(convex_sample):
    X, y = convex_sample
    counts = X.sum(axis=1)
    half = len(y) // 2
    _, t, sign = best_threshold(counts[:half], y[:half])
    pred = (counts[half:] > t) == bool(sign)
    assert (pred == y[half:]).mean() < 0.6
    # the threshold rule itself: it finds the split when the counts do separate the classes
    assert best_threshold(counts, (counts > 300).astype(np.int64))[0] == 1.0
    assert best_threshold(counts, (counts <= 300).astype(np.int64))[0] == 1.0


def test_convex_keeps_both_classes_at_one_target_histogram():
    hist = np.asarray(_CONVEX_COUNT_HIST, dtype=np.float64)
    assert hist.shape == (2, IMAGE_SIDE * IMAGE_SIDE // _CONVEX_BIN + 1)
    keep = _convex_keep_probabilities()
    assert ((keep >= 0) & (keep <= 1)).all() and (keep.max(axis=1) == 1).all()
    assert np.allclose(hist[0] * keep[0], hist[1] * keep[1])  # min(p0, p1) for both


def test_convex_count_table_matches_the_candidates():
    """The table was made from the current drawing rule: a fresh small estimate agrees
    (64-pixel bins, proportions within 0.01)."""
    fresh = np.asarray(_convex_candidate_histograms(20000, seed=1), dtype=np.float64)
    table = np.asarray(_CONVEX_COUNT_HIST, dtype=np.float64)

    def coarse(h):
        c = np.add.reduceat(h, np.arange(0, h.shape[1], 64 // _CONVEX_BIN), axis=1)
        return c / c.sum(axis=1, keepdims=True)

    assert np.abs(coarse(fresh) - coarse(table)).max() < 0.01


def test_generators_are_seeded():
    a, b, c = rectangles(50, 10, seed=1), rectangles(50, 10, seed=1), rectangles(50, 10, seed=2)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    a, b, c = convex(200, 50, seed=3), convex(200, 50, seed=3), convex(200, 50, seed=4)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a.X_train, c.X_train)


@pytest.mark.parametrize("fn", [rectangles, convex])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_sizes(fn, bad):
    with pytest.raises(ConfigError, match="n_train"):
        fn(bad, 10)
