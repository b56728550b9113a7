"""LSH hash tables: the compact layout and the counting selection against the original code.

The reference is the first implementation (``naive.tables``): given generators in the
same state, both make the same random draws, so their buckets and their chosen nodes
must be *identical*.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import pytest

from lshprof import kernels as K
from lshprof import make_layer
from lshprof.measure.threads import limit_threads
from lshprof.nn.lsh import HashTables
from naive.tables import RefTables, ref_query


def twins(L, n, capacity, replacement, seed):
    return (HashTables(L, n, capacity, replacement, np.random.default_rng(seed)),
            RefTables(L, n, capacity, replacement, np.random.default_rng(seed)))


def assert_same_tables(tables: HashTables, ref: RefTables, n_codes: int):
    got_codes = tables.codes
    np.testing.assert_array_equal(got_codes, ref.codes)
    for t in range(tables.L):
        for code in range(n_codes + 2):  # and codes nobody has
            assert tables.ranked(t, code).tolist() == ref.ranked(t, code).tolist(), (t, code)
            assert tables.bucket(t, code).tolist() == ref.bucket(t, code).tolist(), (t, code)
    np.testing.assert_array_equal(tables.membership(), ref.membership())


def answers(tables: HashTables, codes, probes, policy, budget):
    cnt, idx, stats = tables.query(codes, probes, policy, budget)
    return [idx[q * budget:q * budget + cnt[q]].tolist() for q in range(codes.shape[0])], stats


def query_case(rng, nq, L, R, n_codes):
    codes = rng.integers(0, n_codes, (nq, L)).astype(np.int64)
    probes = rng.integers(0, n_codes, (nq, L, R)).astype(np.int64)
    probes[rng.random(probes.shape) < 0.2] = -1  # tables with fewer probes
    codes[rng.random(codes.shape) < 0.05] = -1  # (the layer never sends -1; the kernel skips it)
    return codes, probes


# -- layout against the reference ------------------------------------------------------------------
# (n, L, code space): offsets (S <= n), sorted codes (S > n), and codes wider than 8/16/32 bits
LAYOUTS = [(300, 4, 16), (300, 3, 1024), (40, 2, 2**20), (50, 2, 2**40)]


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
@pytest.mark.parametrize("capacity", [None, 3, 20])
@pytest.mark.parametrize("n, L, n_codes", LAYOUTS)
def test_updates_match_the_reference(n, L, n_codes, capacity, replacement):
    rng = np.random.default_rng(n + L + (capacity or 0))
    tables, ref = twins(L, n, capacity, replacement, seed=7)
    few = min(n_codes, 12)  # large code spaces: few distinct codes so buckets are shared
    pick = rng.choice(n_codes, size=few, replace=False)

    def draw(m):
        return pick[rng.integers(0, few, (m, L))].astype(np.int64)

    # a partial first insertion, updates of random rows (some unchanged), a full rebuild,
    # an update of every row, a rebuild of a subset (others drop out), an empty update
    steps = [(rng.choice(n, n // 2, replace=False), False), (np.arange(n), False),
             (rng.choice(n, n // 5, replace=False), False), (np.arange(n), True),
             (rng.choice(n, n // 3, replace=False), False), (rng.permutation(n), False),
             (rng.choice(n, n // 4, replace=False), True), (rng.choice(n, 7, replace=False), False),
             (np.zeros(0, dtype=np.int64), False)]
    for rows, clear in steps:
        new = draw(rows.size)
        if rows.size > 2:  # some rows keep their codes in some tables: not reinserted
            same = rng.random(new.shape) < 0.3
            old = ref.codes[:, rows].T
            new = np.where(same & (old >= 0), old, new)
        assert tables.set_codes(rows, new, clear=clear) == ref.set_codes(rows, new, clear=clear)
        assert_same_tables(tables, ref, 0)
        for t in range(L):
            for code in pick:
                assert tables.ranked(t, code).tolist() == ref.ranked(t, code).tolist()
        assert tables.state.count == int((ref.codes[0] >= 0).sum())
    # the generators are still in step
    assert tables.rng.integers(0, 2**62) == ref.rng.integers(0, 2**62)


@pytest.mark.parametrize("replacement", ["fifo", "reservoir"])
def test_incremental_fifo_update_equals_reference_and_rebuild_order(replacement):
    """An update of rows puts them at the head of their new buckets (fifo), newest first;
    a rebuild from scratch with the same codes gives the same *sets* per bucket."""
    rng = np.random.default_rng(3)
    n, L = 500, 5
    tables, ref = twins(L, n, None, replacement, seed=4)
    codes = rng.integers(0, 32, (n, L))
    tables.set_codes(np.arange(n), codes, clear=True)
    ref.set_codes(np.arange(n), codes, clear=True)
    rows = rng.choice(n, 60, replace=False)
    before = codes.copy()
    codes[rows] = rng.integers(0, 32, (60, L))
    tables.set_codes(rows, codes[rows])
    ref.set_codes(rows, codes[rows])
    assert_same_tables(tables, ref, 32)
    fresh = HashTables(L, n, None, replacement, np.random.default_rng(5))
    fresh.set_codes(np.arange(n), codes, clear=True)
    for t in range(L):
        for c in range(32):
            got = tables.ranked(t, c)
            assert sorted(got.tolist()) == sorted(fresh.ranked(t, c).tolist())
            if replacement == "fifo":  # the rows that moved here lead their bucket
                moved = np.isin(got, rows[(codes[rows, t] == c) & (before[rows, t] != c)])
                assert not np.any(moved[1:] & ~moved[:-1])


def test_fifo_stores_no_priorities_and_the_layout_is_compact():
    n, L = 1000, 8
    for bits, dtype, dense in [(6, np.uint8, True), (9, np.uint16, True), (12, np.uint16, False),
                               (20, np.uint32, False), (40, np.int64, False)]:
        t = HashTables(L, n, 128, "fifo", np.random.default_rng(0))
        codes = np.random.default_rng(1).integers(0, 2**bits, (n, L))
        codes[0] = 2**bits - 1
        t.set_codes(np.arange(n), codes, clear=True)
        st = t.state
        assert st.codes.dtype == dtype and st.dense == dense and st.keys is None
        assert st.order.dtype == np.int32
        S = 2**bits
        index_bytes = 4 * (S + 1) if dense else np.dtype(dtype).itemsize * n
        want = L * (n * (np.dtype(dtype).itemsize + 4) + index_bytes) + n
        assert t.nbytes == want
        assert t.bytes_per_node_per_table == pytest.approx(want / (n * L))
    r = HashTables(L, n, 128, "reservoir", np.random.default_rng(0))
    r.set_codes(np.arange(n), np.random.default_rng(1).integers(0, 64, (n, L)), clear=True)
    assert r.bytes_per_node_per_table == pytest.approx(1 + 4 + 8 + 4 * 65 / n + 1 / L)


@pytest.mark.parametrize("family, K_, bin_size, want", [("srp", 6, 8, 5.03), ("dwta", 4, 8, 6.2)])
def test_bytes_per_node_per_table_of_the_wide_layer(family, K_, bin_size, want):
    """The wide target: 100,000 nodes, L = 50; srp K=6 (6-bit codes) and dwta K=4 (12 bits)."""
    n, L = 100_000, 50
    t = HashTables(L, n, 128, "fifo", np.random.default_rng(0))
    bits = K_ * (1 if family == "srp" else 3)
    t.set_codes(np.arange(n), np.random.default_rng(1).integers(0, 2**bits, (n, L)), clear=True)
    assert t.bytes_per_node_per_table < want
    assert t.bytes_per_node_per_table < 20  # the memory budget (was 28)


def test_codes_out_of_range_are_refused():
    t = HashTables(2, 5, None, "fifo", np.random.default_rng(0))
    with pytest.raises(ValueError):
        t.set_codes(np.arange(5), np.full((5, 2), -3))


# -- selection against the reference ---------------------------------------------------------------
@pytest.mark.parametrize("policy", ["union", "histogram", "multiprobe"])
@pytest.mark.parametrize("capacity", [None, 4, 25])
@pytest.mark.parametrize("n, L, n_codes, budget", [
    (400, 6, 8, 30),  # offsets, every bucket shared
    (2000, 10, 64, 100),  # big candidate sets: the bitmap path
    (3000, 3, 64, 40),  # few tables: ties everywhere
    (300, 4, 2**20, 20),  # sorted codes, mostly empty buckets, short answers
    (8000, 3, 4, 40),  # candidates far above budget, radix output path (n/64 > 2 budget)
    (70, 5, 4, 70),  # budget = every node
])
def test_selection_equals_the_original_algorithm(n, L, n_codes, budget, capacity, policy):
    rng = np.random.default_rng(n + L + budget)
    tables, ref = twins(L, n, capacity, "fifo", seed=2)
    few = rng.choice(n_codes, size=min(n_codes, 16), replace=False)
    codes = few[rng.integers(0, few.size, (n, L))]
    tables.set_codes(np.arange(n), codes, clear=True)
    ref.set_codes(np.arange(n), codes, clear=True)
    qcodes, probes = query_case(rng, 12, L, 3, n_codes)
    hit = rng.random(qcodes.shape) < 0.7  # most query codes are codes some node has
    qcodes = np.where(hit & (qcodes >= 0), few[rng.integers(0, few.size, qcodes.shape)], qcodes)
    want, wstats = ref_query(ref, qcodes, probes, policy, budget)
    with limit_threads(1):
        got, gstats = answers(tables, qcodes, probes, policy, budget)
    assert got == want
    np.testing.assert_array_equal(gstats, wstats)


def test_selection_with_reservoir_and_updates_equals_the_original():
    rng = np.random.default_rng(11)
    n, L, budget = 800, 8, 60
    tables, ref = twins(L, n, 16, "reservoir", seed=12)
    codes = rng.integers(0, 16, (n, L))
    for rows, clear in [(np.arange(n), True), (rng.choice(n, 100, replace=False), False)]:
        tables.set_codes(rows, codes[rows], clear=clear)
        ref.set_codes(rows, codes[rows], clear=clear)
        codes[rng.choice(n, 200, replace=False)] = rng.integers(0, 16, (200, L))
        qcodes, probes = query_case(rng, 9, L, 2, 16)
        for policy in ("union", "histogram", "multiprobe"):
            assert answers(tables, qcodes, probes, policy, budget)[0] == \
                ref_query(ref, qcodes, probes, policy, budget)[0]


def test_serial_and_parallel_queries_and_updates_are_identical():
    rng = np.random.default_rng(21)
    n, L, budget = 3000, 12, 150
    codes = rng.integers(0, 64, (n, L))
    qcodes, probes = query_case(rng, 37, L, 4, 64)
    rows = rng.choice(n, 400, replace=False)
    new = rng.integers(0, 64, (400, L))
    results = []
    for threads in (1, 2):
        with limit_threads(threads):
            assert K.parallel() == (threads > 1 and numba.config.NUMBA_NUM_THREADS > 1)
            for repl in ("fifo", "reservoir"):
                t = HashTables(L, n, 40, repl, np.random.default_rng(3))
                t.set_codes(np.arange(n), codes, clear=True)
                t.set_codes(rows, new)
                st = t.state
                res = [st.order.copy(), st.index.copy(), st.codes.copy()]
                for policy in ("union", "histogram", "multiprobe"):
                    cnt, idx, stats = t.query(qcodes, probes, policy, budget)
                    res += [cnt, np.concatenate([idx[q * budget:q * budget + c]
                                                 for q, c in enumerate(cnt)]), stats]
                results.append(res)
    for a, b in zip(results[:2], results[2:]):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)



def test_query_csr_packs_the_answers():
    rng = np.random.default_rng(41)
    t = HashTables(5, 600, 10, "fifo", np.random.default_rng(0))
    t.set_codes(np.arange(600), rng.integers(0, 64, (600, 5)), clear=True)
    qcodes, probes = query_case(rng, 20, 5, 0, 64)
    for budget in (3, 45):  # every query full; some short
        cnt, idx, stats = t.query(qcodes, probes, "histogram", budget)
        indptr, indices, stats2 = t.query_csr(qcodes, probes, "histogram", budget)
        assert indptr.dtype == np.int64 and indices.dtype == np.int32
        np.testing.assert_array_equal(np.diff(indptr), cnt)
        want = np.concatenate([idx[q * budget:q * budget + c] for q, c in enumerate(cnt)])
        np.testing.assert_array_equal(indices, want)
        np.testing.assert_array_equal(stats, stats2)
        assert (cnt == budget).all() == (budget == 3)

# -- readers during updates ------------------------------------------------------------------------
def test_readers_see_a_consistent_version_while_one_thread_updates():
    """Hogwild: queries run while another thread rebuilds and updates the tables; every
    answer must come from one whole version. Unlimited buckets and a budget of every
    node make an answer the union of the query's buckets, which only the codes decide."""
    rng = np.random.default_rng(31)
    n, L = 4000, 10
    a, b = rng.integers(0, 32, (n, L)), rng.integers(0, 32, (n, L))
    t = HashTables(L, n, None, "fifo", np.random.default_rng(0))
    qcodes, probes = query_case(rng, 16, L, 0, 32)
    qcodes[qcodes < 0] = 0
    versions = []
    for codes in (a, b):
        t.set_codes(np.arange(n), codes, clear=True)
        versions.append(answers(t, qcodes, probes, "histogram", n)[0])
    assert versions[0] != versions[1]
    stop = threading.Event()
    errors, seen = [], set()

    def writer():
        i = 0
        while not stop.is_set():  # rebuilds and updates of every row, alternating codes
            t.set_codes(np.arange(n), (a, b)[i % 2], clear=i % 4 < 2)
            i += 1

    def reader():
        with limit_threads(1):
            for _ in range(40):
                got = answers(t, qcodes, probes, "histogram", n)[0]
                for q in range(qcodes.shape[0]):
                    which = [v for v in (0, 1) if got[q] == versions[v][q]]
                    if not which:
                        errors.append(q)
                    seen.update(which)

    w = threading.Thread(target=writer)
    rs = [threading.Thread(target=reader) for _ in range(2)]
    w.start()
    for r in rs:
        r.start()
    for r in rs:
        r.join()
    stop.set()
    w.join()
    assert not errors
    assert seen == {0, 1}  # the readers really ran across updates


def test_layout_changes_when_codes_grow_and_shrink():
    n, L = 100, 3
    tables, ref = twins(L, n, 5, "fifo", seed=9)
    rng = np.random.default_rng(10)
    small = rng.integers(0, 16, (n, L))
    for rows, codes, clear, dense in [
            (np.arange(n), small, True, True),  # 16 codes <= 100 nodes: offsets
            (np.arange(10), np.full((10, L), 300), False, False),  # code 300: sorted, uint16
            (np.arange(5, 40), small[5:40], False, False),  # still some code 300
            (np.arange(n), small, True, True)]:  # rebuilt: small codes again
        assert tables.set_codes(rows, codes, clear=clear) == ref.set_codes(rows, codes, clear=clear)
        assert tables.state.dense == dense
        assert_same_tables(tables, ref, 16)
        for t in range(L):
            assert tables.ranked(t, 300).tolist() == ref.ranked(t, 300).tolist()


# -- the layer end to end --------------------------------------------------------------------------
def test_layer_selection_matches_the_reference_tables():
    """The layer's chosen nodes are what the reference tables give for the same codes."""
    layer = make_layer("lsh", 32, 3000, fraction=0.05, seed=4)
    x = np.maximum(np.random.default_rng(5).standard_normal((16, 32), dtype=np.float32), 0)
    with limit_threads(1):
        pattern, _ = layer._choose(layer._check_input(x), True)
    ref = RefTables(layer.params["L"], layer.n_out, layer.params["capacity"], "fifo", None)
    # rebuild the reference from the layer's own bucket order: codes and rank as priority
    tab = layer.tables
    ref.codes[:] = tab.codes
    for t in range(ref.L):
        for c in range(64):
            run = tab.ranked(t, c)
            ref.prio[t, run] = np.arange(run.size)[::-1]
    tables = np.repeat(np.arange(ref.L), ref.n)
    o = np.lexsort((-ref.prio.ravel(), ref.codes.ravel(), tables))
    ref.order[:] = (o - tables * ref.n).reshape(ref.L, ref.n)
    ref.sorted_codes[:] = np.take_along_axis(ref.codes, ref.order, axis=1)
    d = layer.hashes.digits(x)[0]
    want, _ = ref_query(ref, layer.hashes.codes(d), np.zeros((16, ref.L, 0), np.int64),
                        "histogram", layer.budget)
    got = [pattern.indices[pattern.indptr[q]:pattern.indptr[q + 1]].tolist() for q in range(16)]
    assert got == want


@pytest.mark.parametrize("n, L, bits", [(300, 4, 4), (300, 3, 10), (40, 2, 20), (50, 2, 40)])
def test_a_fixed_code_width_keeps_one_layout_and_the_same_buckets(n, L, bits):
    """With ``code_bits`` (as the LSH layer gives it) the layout is that of the whole code
    space from the empty tables on, whatever codes come: the kernels meet the same argument
    types at the build and at every update (an update after a build had met new ones,
    and compiled inside a measured epoch). The buckets are the reference's all along."""
    rng = np.random.default_rng(bits)
    tables = HashTables(L, n, 5, "fifo", np.random.default_rng(1), code_bits=bits)
    ref = RefTables(L, n, 5, "fifo", np.random.default_rng(1))

    def layout():
        st = tables.state
        return st.codes.dtype, st.index.dtype, st.index.ndim, st.dense, st.keys is None

    want = layout()
    small = rng.integers(0, 4, (n, L))
    wide = rng.integers(0, 2**bits, (n, L))
    for rows, codes, clear in [(np.arange(7), small[:7], False),  # an update before a build
                               (np.arange(n), small, True),  # a build of small codes
                               (np.arange(3, 30), wide[3:30], False),  # wide codes arrive
                               (np.arange(n), small, True)]:  # rebuilt with small ones
        assert tables.set_codes(rows, codes, clear=clear) == ref.set_codes(rows, codes, clear=clear)
        assert layout() == want
        assert_same_tables(tables, ref, 4)
        for t in range(L):
            for code in np.unique(wide[3:30, t]):
                assert tables.ranked(t, code).tolist() == ref.ranked(t, code).tolist()
    assert want[3] == (2**bits <= n)  # offsets when the whole code space fits
    with pytest.raises(ValueError, match=rf"codes must be in \[0, 2\*\*{bits}\)"):
        tables.set_codes(np.arange(1), np.full((1, L), 2**bits))
    with pytest.raises(ValueError, match="code_bits must be in"):
        HashTables(L, n, 5, "fifo", np.random.default_rng(1), code_bits=63)


def test_the_layer_sizes_its_tables_for_its_codes():
    layer = make_layer("lsh", 8, 50, fraction=0.2, family="dwta", K=3, bin_size=8, L=4)
    layer.build()
    assert layer.tables.code_bits == 9
    st = layer.tables.state
    assert (st.codes.dtype, st.dense, st.index.dtype) == (np.uint16, False, np.uint16)
