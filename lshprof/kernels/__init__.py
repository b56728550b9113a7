"""numba kernels. Arithmetic only: callers validate shapes and dtypes first.

Importing this package imports numba; the rest of lshprof imports it lazily.
"""

import contextlib
import threading
from typing import Iterator

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
    collision_counts,
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


_LOCAL = threading.local()
#: the answers :func:`forced` can impose on :func:`parallel`
FORCED_FORMS = ("serial", "parallel")


@contextlib.contextmanager
def forced(form: str | None) -> Iterator[None]:
    """Within the block, in this thread, :func:`parallel` (and so :func:`run`) chooses the
    ``form`` (``"serial"`` or ``"parallel"``) whatever the work, the parallel one still
    only at more than one numba thread; None: by the work, as usual. Warm-ups use it to
    compile both forms of every kernel on a few samples (:func:`lshprof.nn.warmup.warm_up`);
    other threads (Hogwild workers) are not affected."""
    if form is not None and form not in FORCED_FORMS:
        raise ValueError(f"form must be one of {FORCED_FORMS} or None, got {form!r}")
    old = getattr(_LOCAL, "form", None)
    _LOCAL.form = form
    try:
        yield
    finally:
        _LOCAL.form = old


def parallel(work: int | None = None) -> bool:
    """Whether to run the ``*_par`` form: more than one numba thread in this thread, and
    ``work`` (element operations, None: unknown) worth a parallel region (or the form
    :func:`forced` imposes)."""
    if numba.get_num_threads() <= 1:
        return False
    form = getattr(_LOCAL, "form", None)
    if form is not None:
        return form == "parallel"
    return work is None or work >= PAR_MIN_WORK


def run(serial, par, *args, work: int | None = None):
    """``serial(*args)`` at one numba thread or for little ``work`` (:func:`parallel`),
    else ``par(*args, threads)``."""
    if parallel(work):
        return par(*args, numba.get_num_threads())
    return serial(*args)


__all__ = [
    "convex_candidate_counts", "draw_convex_images", "is_digitally_convex",
    "parallel",
    "forced",
    "FORCED_FORMS",
    "PAR_MIN_WORK",
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
    "collision_counts",
    "UNION",
    "HISTOGRAM",
    "MULTIPROBE",
]
