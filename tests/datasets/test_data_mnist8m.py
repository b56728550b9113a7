"""The MNIST8M-style stream, on drawn images (no MNIST files needed)."""

import sys
import types

import numpy as np
import pytest

from lshprof.data import mnist8m as m8
from lshprof.data.mnist8m import DeformedStream, gaussian_matrix
from lshprof.errors import ConfigError


def _images(n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 28x28 images: a box, a bar, ... each of its own size and place, well
    inside the frame; label = image number % 3."""
    imgs = np.zeros((n, 28, 28), dtype=np.uint8)
    for k in range(n):
        top, left = 7 + k % 3, 8 + k % 4
        imgs[k, top:top + 10 + k % 4, left:left + 3 + 2 * k] = 255
        imgs[k, top + 2:top + 5, left + 1:left + 2] = 128
    return imgs, np.arange(n, dtype=np.int64) % 3


def test_gaussian_matrix_rows_sum_to_one_and_smooth():
    g = gaussian_matrix(28, 4.0)
    assert np.allclose(g.sum(axis=1), 1.0)
    assert np.allclose(g @ np.full(28, 0.3), 0.3)  # constants stay constant
    g_small = gaussian_matrix(28, 0.01)
    assert np.allclose(g_small, np.eye(28))
    big = gaussian_matrix(5, 10.0)  # kernel wider than the signal: mirrored repeatedly
    assert np.allclose(big.sum(axis=1), 1.0) and np.all(big > 0)


def test_shapes_range_and_labels_follow_base_image():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, seed=3)
    X, y = s.sample(0, 40)
    assert X.shape == (40, 784) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() >= 0.0 and X.max() <= 1.0
    idx = s.base_index(0, 40)
    assert np.array_equal(y, labels[idx])
    # each pass visits every image once
    for p in range(40 // 6):
        assert sorted(idx[6 * p:6 * p + 6]) == list(range(6))
    plain = DeformedStream(imgs, labels, seed=3, shuffle=False)
    assert np.array_equal(plain.base_index(4, 5), [4, 5, 0, 1, 2])


def test_determinism_and_seeds():
    imgs, labels = _images()
    a = DeformedStream(imgs, labels, seed=1).sample(10, 8)[0]
    b = DeformedStream(imgs, labels, seed=1).sample(10, 8)[0]
    c = DeformedStream(imgs, labels, seed=2).sample(10, 8)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_slice_independence():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, seed=7)
    X, y = s.sample(0, 10)
    X5, y5 = DeformedStream(imgs, labels, seed=7).sample(5, 3)
    assert np.array_equal(X5, X[5:8]) and np.array_equal(y5, y[5:8])
    # across a chunk boundary too
    big, _ = s.sample(0, m8._CHUNK + 5)
    part, _ = s.sample(m8._CHUNK - 2, 6)
    assert np.array_equal(part, big[m8._CHUNK - 2:m8._CHUNK + 4])


def test_no_deformation_gives_back_the_base_image():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, alpha=0.0, max_shift=0, seed=5)
    X, y = s.sample(3, 20)
    idx = s.base_index(3, 20)
    expected = imgs[idx].reshape(20, -1).astype(np.float32) / np.float32(255)
    assert np.array_equal(X, expected)
    floats = imgs.astype(np.float64) / 255
    Xf, _ = DeformedStream(floats, labels, alpha=0, max_shift=0, seed=5).sample(3, 20)
    assert np.array_equal(Xf, floats[idx].reshape(20, -1).astype(np.float32))


def test_pure_translation_moves_pixels_exactly():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, alpha=0.0, max_shift=3, seed=11, shuffle=False)
    X, _ = s.sample(0, 60)
    seen = set()
    for i in range(60):
        img = imgs[i % 6].astype(np.float32) / np.float32(255)
        out = X[i].reshape(28, 28)
        found = None
        for ty in range(-3, 4):
            for tx in range(-3, 4):
                moved = np.zeros_like(img)
                moved[max(ty, 0):28 + min(ty, 0), max(tx, 0):28 + min(tx, 0)] = \
                    img[max(-ty, 0):28 - max(ty, 0), max(-tx, 0):28 - max(tx, 0)]
                if np.array_equal(out, moved):
                    found = (ty, tx)
        assert found is not None, f"sample {i} is not a whole-pixel shift of its image"
        seen.add(found)
    assert len(seen) > 10  # the shifts vary


def test_deformation_changes_the_image_but_keeps_its_ink():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, seed=0)
    X, _ = s.sample(0, 60)
    base = imgs[s.base_index(0, 60)].reshape(60, -1).astype(np.float32) / 255
    assert np.all(X >= 0) and np.all(X <= 1)
    # alpha=34, sigma=4 stretches and squeezes strokes (ink varies by about 20%), but
    # neither loses nor makes much ink on average
    ratio = X.sum(axis=1) / base.sum(axis=1)
    assert np.all((ratio > 0.5) & (ratio < 1.8))
    assert abs(ratio.mean() - 1) < 0.1
    moved = np.abs(X - base).sum(axis=1) / base.sum(axis=1)
    assert np.all(moved > 0.05)  # every sample is visibly deformed
    # a smoother, stronger field moves more ink than a weak one
    weak = DeformedStream(imgs, labels, alpha=5.0, max_shift=0, seed=0).sample(0, 60)[0]
    assert np.all(np.abs(weak.sum(axis=1) / base.sum(axis=1) - 1) < 0.15)
    assert np.abs(weak - base).sum() < np.abs(X - base).sum()


def test_huge_index():
    imgs, labels = _images()
    s = DeformedStream(imgs, labels, seed=4)
    X, y = s.sample(10**9, 3)
    assert X.shape == (3, 784) and np.all(np.isfinite(X))
    assert np.array_equal(X[1:], s.sample(10**9 + 1, 2)[0])
    assert np.array_equal(y, labels[s.base_index(10**9, 3)])
    assert s.sample(10**15, 0)[0].shape == (0, 784)


@pytest.mark.parametrize("kwargs, text", [
    ({"alpha": -1.0}, "alpha"), ({"sigma": 0.0}, "sigma"), ({"max_shift": -1}, "max_shift"),
    ({"max_shift": 1.5}, "max_shift"), ({"seed": -3}, "seed")])
def test_bad_parameters(kwargs, text):
    imgs, labels = _images()
    with pytest.raises(ConfigError, match=text):
        DeformedStream(imgs, labels, **kwargs)


def test_bad_inputs():
    imgs, labels = _images()
    with pytest.raises(ConfigError, match="images"):
        DeformedStream(imgs[0], labels)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        DeformedStream(imgs.astype(np.float32), labels)
    with pytest.raises(ConfigError, match="labels"):
        DeformedStream(imgs, labels[:3])
    with pytest.raises(ConfigError, match="start"):
        DeformedStream(imgs, labels).sample(-1, 3)


def _fake_mnist(monkeypatch):
    imgs, _ = _images(12)
    train = np.concatenate([imgs] * 5)  # 60 training images
    y_train = np.arange(60, dtype=np.int64) % 10
    test = imgs[::-1].copy()
    y_test = np.arange(12, dtype=np.int64) % 10
    calls = []

    def read_mnist(root=None):
        calls.append(root)
        return train, y_train, test, y_test

    try:
        import lshprof.data.mnist as real
        monkeypatch.setattr(real, "read_mnist", read_mnist)
    except ImportError:  # the MNIST reader is not written yet: stand in for it
        stub = types.ModuleType("lshprof.data.mnist")
        stub.read_mnist = read_mnist
        monkeypatch.setitem(sys.modules, "lshprof.data.mnist", stub)
    return train, y_train, test, y_test, calls


def test_mnist8m_from_fake_mnist(monkeypatch):
    train, y_train, test, y_test, calls = _fake_mnist(monkeypatch)
    split = m8.mnist8m(n_train=150, n_test=7, root="somewhere", seed=2)
    assert calls == ["somewhere"]
    assert split.X_train.shape == (150, 784) and split.X_train.dtype == np.float32
    assert split.y_train.dtype == np.int64 and split.y_test.dtype == np.int64
    stream = DeformedStream(train, y_train, seed=2)
    X, y = stream.sample(0, 150)
    assert np.array_equal(split.X_train, X) and np.array_equal(split.y_train, y)
    assert np.array_equal(split.X_test, test[:7].reshape(7, -1).astype(np.float32) / 255)
    assert np.array_equal(split.y_test, y_test[:7])
    again = m8.mnist8m(n_train=150, n_test=7, seed=2)
    assert np.array_equal(again.X_train, split.X_train)
    other = m8.mnist8m(n_train=150, n_test=7, seed=3)
    assert not np.array_equal(other.X_train, split.X_train)
    plain = m8.mnist8m(n_train=20, n_test=1, alpha=0.0, max_shift=0, seed=2)
    idx = DeformedStream(train, y_train, seed=2).base_index(0, 20)
    assert np.array_equal(plain.X_train, train[idx].reshape(20, -1).astype(np.float32) / 255)


def test_mnist8m_sizes(monkeypatch):
    _fake_mnist(monkeypatch)
    with pytest.raises(ConfigError, match="n_test is at most 10,000"):
        m8.mnist8m(n_train=10, n_test=10001)
    with pytest.raises(ConfigError, match="n_train"):
        m8.mnist8m(n_train=0, n_test=5)
    with pytest.raises(ConfigError, match="n_test is at most 10,000"):
        m8.preflight(n_train=10, n_test=20000)
