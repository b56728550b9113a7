"""numba kernels. Arithmetic only: callers validate shapes and dtypes first.

Importing this package imports numba; the rest of lshprof imports it lazily.
"""

import numba

from ._sparse import (
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
from ._dense import ACT_CODES, act, act_grad, act_grad_par, act_par, bias_act, bias_act_par
from ._select import topk_rows, csr_softmax_xent, csr_argmax
from ._hash import (
    pack_codes,
    pm1_csr,
    pm1_dense,
    pool_csr,
    pool_dense,
    probe_codes,
    srp_csr,
    srp_dense,
    wta_csr,
    wta_dense,
)
from ._tables import HISTOGRAM, MULTIPROBE, UNION, query_tables, selection_quality
from ._optim import (
    adagrad_momentum_rows,
    adagrad_momentum_rows_par,
    adam_rows,
    adam_rows_par,
    sgd_momentum_rows,
    sgd_momentum_rows_par,
)


def parallel() -> bool:
    """Whether this thread runs kernels on more than one numba thread (the ``*_par`` forms)."""
    return numba.get_num_threads() > 1


def run(serial, par, *args):
    """``serial(*args)`` at one numba thread, else ``par(*args, threads)``."""
    n = numba.get_num_threads()
    return serial(*args) if n == 1 else par(*args, n)


__all__ = [
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
    "selection_quality",
    "UNION",
    "HISTOGRAM",
    "MULTIPROBE",
]
