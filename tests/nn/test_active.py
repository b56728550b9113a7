"""The ActiveSet container: layout, conversions and validation."""

import numpy as np
import pytest

from lshprof import ActiveSet, ConfigError, InputTypeError


def small():
    indptr = np.array([0, 2, 2, 5], dtype=np.int64)
    indices = np.array([1, 3, 0, 2, 4], dtype=np.int32)
    values = np.arange(1, 6, dtype=np.float32)
    return ActiveSet(indptr, indices, values, 5)


def test_to_dense_and_mask():
    a = small()
    dense = a.to_dense()
    expected = np.zeros((3, 5), np.float32)
    expected[0, [1, 3]] = [1, 2]
    expected[2, [0, 2, 4]] = [3, 4, 5]
    np.testing.assert_array_equal(dense, expected)
    np.testing.assert_array_equal(a.mask(), expected != 0)
    np.testing.assert_array_equal(a.counts(), [2, 0, 3])
    assert a.batch_size == 3 and a.nnz == 5 and not a.is_full


def test_from_mask_round_trip():
    a = small()
    b = ActiveSet.from_mask(a.mask(), a.to_dense())
    assert b.same_pattern(a)
    np.testing.assert_array_equal(b.values, a.values)


def test_full_set_builds_layout_lazily_and_copies_on_to_dense():
    d = np.arange(6, dtype=np.float32).reshape(2, 3)
    a = ActiveSet.full(d)
    assert a.is_full and a.nnz == 6
    np.testing.assert_array_equal(a.indptr, [0, 3, 6])
    np.testing.assert_array_equal(a.indices, [0, 1, 2, 0, 1, 2])
    out = a.to_dense()
    out[0, 0] = 99
    assert d[0, 0] == 0
    assert a.same_pattern(ActiveSet.from_mask(np.ones((2, 3), bool)))


def test_with_values_keeps_pattern_and_checks_length():
    a = small()
    g = a.with_values(np.ones(5, np.float32))
    assert g.same_pattern(a)
    with pytest.raises(ConfigError, match="5 active entries"):
        a.with_values(np.ones(4, np.float32))


@pytest.mark.parametrize(
    "indptr, indices, error, match",
    [
        ([0, 2, 1, 5], [1, 3, 0, 2, 4], ConfigError, "non-decreasing"),
        ([1, 2, 2, 5], [1, 3, 0, 2, 4], ConfigError, "start at 0"),
        ([0, 2, 2, 5], [3, 1, 0, 2, 4], ConfigError, "strictly ascending"),
        ([0, 2, 2, 5], [1, 3, 0, 2, 2], ConfigError, "strictly ascending"),
        ([0, 2, 2, 5], [1, 3, 0, 2, 5], ConfigError, r"\[0, 5\)"),
        ([0, 2, 2, 5], [1, 3, 0, 2, -1], ConfigError, r"\[0, 5\)"),
    ],
)
def test_bad_layouts_are_rejected(indptr, indices, error, match):
    with pytest.raises(error, match=match):
        ActiveSet(np.array(indptr, np.int64), np.array(indices, np.int32),
                  np.zeros(5, np.float32), 5)


def test_wrong_dtypes_are_rejected():
    with pytest.raises(InputTypeError, match="indices must be a 1-D int32"):
        ActiveSet(np.array([0, 1], np.int64), np.array([0], np.int64), np.zeros(1, np.float32), 2)
    with pytest.raises(InputTypeError, match="values must be a 1-D float"):
        ActiveSet(np.array([0, 1], np.int64), np.array([0], np.int32), np.zeros(1, np.int32), 2)
