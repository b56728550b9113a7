"""The synthetic extreme-classification data set."""

import numpy as np
import pytest

from lshprof.data.xc import nearest_prototype, planted_structure, synthetic_xc
from lshprof.errors import ConfigError

SMALL = {"n_features": 32, "n_classes": 2000, "n_clusters": 40}


def test_shapes_dtypes_and_label_range():
    s = synthetic_xc(n_train=3000, n_test=500, **SMALL, seed=1)
    assert s.X_train.shape == (3000, 32) and s.X_test.shape == (500, 32)
    assert s.X_train.dtype == np.float32 and s.X_test.dtype == np.float32
    assert s.y_train.dtype == np.int64 and s.y_test.dtype == np.int64
    for y in (s.y_train, s.y_test):
        assert y.min() >= 0 and y.max() < 2000
    assert np.all(np.isfinite(s.X_train))


def test_deterministic_by_seed():
    a = synthetic_xc(n_train=1000, n_test=200, **SMALL, seed=4)
    b = synthetic_xc(n_train=1000, n_test=200, **SMALL, seed=4)
    c = synthetic_xc(n_train=1000, n_test=200, **SMALL, seed=5)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert not np.array_equal(a.X_train, c.X_train)
    assert not np.array_equal(a.y_train, c.y_train)
    # the test split does not depend on the training size
    d = synthetic_xc(n_train=50, n_test=200, **SMALL, seed=4)
    assert np.array_equal(d.X_test, a.X_test) and np.array_equal(d.y_test, a.y_test)


def test_structure_matches_the_samples():
    st = planted_structure(**SMALL, seed=2)
    assert st.prototypes.shape == (2000, 32) and st.prototypes.dtype == np.float32
    assert np.allclose(np.linalg.norm(st.prototypes, axis=1), 1, atol=1e-5)
    assert np.array_equal(np.bincount(st.cluster), np.full(40, 50))  # dealt evenly
    assert np.isclose(st.probability.sum(), 1)
    s = synthetic_xc(n_train=2000, n_test=10, **SMALL, noise=0.0, seed=2)
    assert np.array_equal(s.X_train, st.prototypes[s.y_train])
    # classes of one cluster are related: much closer than classes of different clusters
    P, c = st.prototypes.astype(np.float64), st.cluster
    same = P[c == 0] @ P[c == 0].T
    other = P[c == 0] @ P[c == 1].T
    assert same[~np.eye(len(same), dtype=bool)].mean() > 0.9
    assert abs(other.mean()) < 0.5


def test_zipf_frequencies():
    s = synthetic_xc(n_train=100000, n_test=10, n_features=8, n_classes=1000, n_clusters=10,
                     zipf=1.0, seed=0)
    counts = np.sort(np.bincount(s.y_train, minlength=1000))[::-1]
    assert counts[0] > 50 * np.median(counts)
    # rank r is about r ** -1 as common as rank 1
    assert 0.35 < counts[1] / counts[0] < 0.65
    assert 0.05 < counts[9] / counts[0] < 0.15
    st = planted_structure(n_features=8, n_classes=1000, n_clusters=10, zipf=1.0, seed=0)
    assert np.argmax(np.bincount(s.y_train, minlength=1000)) == np.argmax(st.probability)
    u = synthetic_xc(n_train=100000, n_test=10, n_features=8, n_classes=1000, n_clusters=10,
                     zipf=0.0, seed=0)
    counts = np.bincount(u.y_train, minlength=1000)
    assert counts.min() > 50 and counts.max() < 160  # mean 100


def test_nearest_prototype_accuracy_falls_with_noise():
    st = planted_structure(**SMALL, seed=3)
    acc = {}
    for noise in (0.05, 0.3, 2.0):
        s = synthetic_xc(n_train=1, n_test=2000, **SMALL, noise=noise, seed=3)
        pred = nearest_prototype(s.X_test, st.prototypes)
        acc[noise] = np.mean(pred == s.y_test)
        if noise == 0.3:  # the errors stay mostly inside the true class's cluster
            wrong = pred != s.y_test
            assert np.mean(st.cluster[pred[wrong]] == st.cluster[s.y_test[wrong]]) > 0.8
    assert acc[0.05] > 0.99
    assert 0.2 < acc[0.3] < 0.99
    assert acc[2.0] < 0.3


@pytest.mark.parametrize("kwargs, text", [
    ({"n_clusters": 3000}, "n_clusters"), ({"n_classes": 1}, "n_classes"),
    ({"n_train": 0}, "n_train"), ({"n_features": True}, "n_features"),
    ({"zipf": -1.0}, "zipf"), ({"noise": float("nan")}, "noise"),
    ({"spread": 0.0}, "spread"), ({"n_test": 2.5}, "n_test")])
def test_bad_options(kwargs, text):
    args = {"n_train": 10, "n_test": 10, **SMALL, **kwargs}
    with pytest.raises(ConfigError, match=text):
        synthetic_xc(**args)
