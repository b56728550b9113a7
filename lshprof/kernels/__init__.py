"""numba kernels. Arithmetic only: callers validate shapes and dtypes first.

Importing this package imports numba; the rest of lshprof imports it lazily.
"""

import numba

from lshprof.kernels._sparse import (
    backward_dense,
    backward_dense_par,
    backward_sparse,
    backward_sparse_par,
    by_node,
    forward_dense,
    forward_dense_par,
    forward_sparse,
    forward_sparse_par,
    node_chunks,
)
from lshprof.kernels._images import convex_candidate_counts, draw_convex_images, is_digitally_convex
from lshprof.kernels._dense import ACT_CODES, act, act_grad, act_grad_par, act_par, bias_act, bias_act_par
from lshprof.kernels._select import topk_rows, csr_softmax_xent, csr_argmax
from lshprof.kernels._hash import (
    pack_codes,
    pm1_csr,
    pm1_dense,
    pool_csr,
    pool_dense,
    probe_codes,
    sign_codes,
    sign_digits,
    srp_csr,
    srp_dense,
    wta_csr,
    wta_dense,
)
from lshprof.kernels._tables import (
    HISTOGRAM,
    MULTIPROBE,
    UNION,
    changed_counts,
    new_scratch,
    pack_rows,
    query_tables,
    query_tables_par,
    score_dtype,
    selection_quality,
    transpose_codes,
    update_tables,
    update_tables_par,
)
from lshprof.kernels._optim import (
    adagrad_momentum_rows,
    adagrad_momentum_rows_par,
    adam_rows,
    adam_rows_par,
    sgd_momentum_rows,
    sgd_momentum_rows_par,
)


#: least work (element operations) worth a parallel region: below it, starting the
#: threads costs more than they save, and on a busy machine threads that wait for work
#: spin against BLAS's own (measured: batch-8 training 25x slower at 2 threads without it)
PAR_MIN_WORK = 1 << 22


def parallel(work: int | None = None) -> bool:
    """Whether to run the ``*_par`` form: more than one numba thread in this thread, and
    ``work`` (element operations, None: unknown) worth a parallel region."""
    return numba.get_num_threads() > 1 and (work is None or work >= PAR_MIN_WORK)


def run(serial, par, *args, work: int | None = None):
    """``serial(*args)`` at one numba thread or for little ``work``, else
    ``par(*args, threads)``."""
    n = numba.get_num_threads()
    if n == 1 or (work is not None and work < PAR_MIN_WORK):
        return serial(*args)
    return par(*args, n)


__all__ = [
    "convex_candidate_counts", "draw_convex_images", "is_digitally_convex",
    "parallel",
    "run",
    "by_node",
    "node_chunks",
    "forward_dense",
    "forward_dense_par",
    "forward_sparse",
    "forward_sparse_par",
    "backward_dense",
    "backward_dense_par",
    "backward_sparse",
    "backward_sparse_par",
    "ACT_CODES",
    "act",
    "act_par",
    "act_grad",
    "act_grad_par",
    "bias_act",
    "bias_act_par",
    "topk_rows",
    "csr_softmax_xent",
    "csr_argmax",
    "sgd_momentum_rows",
    "sgd_momentum_rows_par",
    "adagrad_momentum_rows",
    "adagrad_momentum_rows_par",
    "adam_rows",
    "adam_rows_par",
    "srp_dense",
    "sign_digits",
    "sign_codes",
    "srp_csr",
    "pm1_dense",
    "pm1_csr",
    "wta_dense",
    "wta_csr",
    "pool_dense",
    "pool_csr",
    "pack_codes",
    "probe_codes",
    "query_tables",
    "query_tables_par",
    "new_scratch",
    "pack_rows",
    "score_dtype",
    "changed_counts",
    "transpose_codes",
    "update_tables",
    "update_tables_par",
    "selection_quality",
    "UNION",
    "HISTOGRAM",
    "MULTIPROBE",
]
