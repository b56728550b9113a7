"""numba kernels. Arithmetic only: callers validate shapes and dtypes first.

Importing this package imports numba; the rest of lshprof imports it lazily.
"""

from ._sparse import (
    backward_dense_in,
    backward_sparse_in,
    forward_dense_in,
    forward_sparse_in,
)
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
from ._optim import adagrad_momentum_rows, adam_rows, sgd_momentum_rows

__all__ = [
    "forward_dense_in",
    "forward_sparse_in",
    "backward_dense_in",
    "backward_sparse_in",
    "topk_rows",
    "csr_softmax_xent",
    "csr_argmax",
    "sgd_momentum_rows",
    "adagrad_momentum_rows",
    "adam_rows",
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
