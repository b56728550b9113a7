"""Hash families, input transforms, hash tables and re-hash schedules for the LSH layer.

Everything here is explicit state (numpy arrays drawn from a given generator) plus
the numba kernels in :mod:`lshprof.kernels`. The modules:

* :mod:`~lshprof.nn.lsh.layer`: the layer itself, :class:`~lshprof.nn.lsh.layer.LSH`
  (also :class:`lshprof.nn.layers.LSH`);
* :mod:`~lshprof.nn.lsh.families`: the hash families, one registry entry each
  (:data:`FAMILY_REGISTRY`), and :class:`HashFunctions`;
* :mod:`~lshprof.nn.lsh.transforms`: pooling and the row/query transforms, one registry
  entry each (:data:`TRANSFORM_REGISTRY`);
* :mod:`~lshprof.nn.lsh.tables`: :class:`HashTables`;
* :mod:`~lshprof.nn.lsh.schedule`: :class:`RehashSchedule`;
* :mod:`~lshprof.nn.lsh.stats`: :class:`HashCost`, :class:`SelectionStats`,
  :func:`selection_diagnosis` (why the tables returned fewer nodes than the budget) and
  :func:`ranking_quality` (how well the tables' own scores rank the nodes).

Hash families (``family``)
--------------------------
``srp``         signed random projections (SimHash; Charikar 2002): Gaussian
                directions, one bit per function, collision probability
                ``1 - theta/pi`` for vectors at angle ``theta``. The paper's public
                code uses this family.
``srp_sparse``  the same with sparse +-1 directions: each function adds or subtracts
                a random ``density`` share (default 1/3) of the coordinates, as SLIDE
                (Chen et al. 2020) does. Additions only, no multiplications.
``wta``         winner-take-all hashing (Yagnik et al., ICCV 2011): each function
                looks at ``bin_size`` random coordinates and returns the position of
                the largest; ``log2(bin_size)`` bits per function. Comparisons only.
``dwta``        densified WTA (Chen & Shrivastava, UAI 2018; SLIDE's default): WTA
                over the nonzero coordinates only; a function whose coordinates are
                all zero borrows the value of another function chosen by a seeded
                probe sequence (up to 100 tries, else 0).

Transforms for inner-product search (``transform``)
--------------------------------------------------
``none``          hash the input and the weight rows as they are: the tables find
                  large *cosine*, not large inner product; the bias is ignored. This
                  is what the paper's public code does.
``norm_augment``  "simple-LSH" (Neyshabur & Srebro, ICML 2015): a row ``u = [w, b]``
                  becomes ``[u/M, sqrt(1 - |u|^2/M^2)]`` and a query ``[x, 1, 0]``,
                  so the cosine between them grows with ``w.x + b``.
``sign_alsh``     Sign-ALSH (Shrivastava & Li, UAI 2015) with ``m = 2``, ``U = 0.75``:
                  a row becomes ``[v, 1/2 - |v|^2, 1/2 - |v|^4]`` with ``v = U u / M``,
                  a query ``[x, 1, 0, 0]``.

``M`` is the largest row norm times :data:`MIPS_HEADROOM`, fixed at a full build;
when a re-hashed row outgrows it, every row is re-hashed with a new ``M``.
Queries are not normalised: sign and rank hashes do not change under positive
scaling, so normalising would only cost multiplications.

Pooling (``pool``)
------------------
``pool = p > 1`` averages contiguous blocks of ``p`` coordinates of both the input
and the weight rows before anything else (the paper's code pools 784 -> 8 with
``p = 98``). The bias is not pooled.

What hashing costs (counted exactly, per hashed vector)
-------------------------------------------------------
With ``F = K*L`` functions and ``D`` the length of the vector after pooling and
transform (``a`` its stored entries when it is a sparse row):

* pooling: ``hash_adds += entries summed``, MACs ``+= ceil(n_in/p)`` (one scaling each);
* ``srp``: ``F*D`` MACs (``F*a`` for a sparse row);
* ``srp_sparse``: one addition per (function, coordinate it uses) met in the vector;
* ``wta``/``dwta``: comparisons only (``hash_compares``), as the kernel counts them;
* row transforms (re-hash only): ``norm_augment`` ``2*(d+1) + 1`` MACs per row
  (squared norm, scaling, the augmented entry), ``sign_alsh`` ``2*(d+1) + 2``.

Tables
------
Every node sits in one bucket per table, the bucket of its current code. A bucket
holds at most ``capacity`` nodes; when more nodes share a code, the bucket keeps
the ``capacity`` with the highest priority and the rest are not found in that
table (so a node is then in fewer than ``L`` buckets). Replacement policies:

* ``fifo``: priority is the insertion time, so the newest nodes stay (as SLIDE's
  FIFO buckets). A node is (re)inserted when its code in that table changes;
  nodes inserted together are inserted in a random order.
* ``reservoir``: priority is a random key drawn at insertion, so the bucket keeps
  a uniform random subset of its nodes (reservoir sampling).

A node evicted from a full bucket comes back if the nodes above it leave the
bucket; membership is always a function of the current codes and priorities.
Storage (about 5 bytes per node per table for 6-bit codes), update costs and what
concurrent readers may rely on are described in :class:`HashTables`.

Selection quality (``quality = True``)
--------------------------------------
Measured on the layer's own queries, apart from the method's work (the full product's
MACs under ``quality``, its time in the ``quality`` phase), per batch:

* every query: recall of the exact top-k of the chosen set's size, the share of the
  positive pre-activation mass the chosen set holds, both for a random set of the same
  size, and the top-k's own mass share;
* the tables' own ranking, on :func:`rank_queries` of the batch (all of them up to
  :data:`RANK_ENTRIES` query-node pairs, so at most ``RANK_ENTRIES // n`` queries of a
  batch at ``n`` nodes): each node's *score* is its collision count
  (:meth:`HashTables.collisions`), the number of tables whose probed bucket holds it
  within the bucket's capacity. ``union`` and ``histogram`` probe one bucket per table,
  so the score is what ``histogram`` ranks by (``union`` instead takes the buckets'
  nodes table by table); ``multiprobe`` also probes ``probes`` buckets per table and
  the score counts a hit in any of them as one (``multiprobe`` itself puts exact hits
  first). Against two truths, the exact top-``budget`` by pre-activation (what
  ``topk`` chooses; ties to the lowest node) and the active nodes (pre-activation
  > 0): ROC AUC (ties counted half) and average precision (one threshold per distinct
  score, as scikit-learn's), each averaged over the queries whose truth has both
  classes; and Spearman's rank correlation (average ranks for ties) of the score with
  the pre-activation, over the queries where neither is constant
  (:func:`ranking_quality`). A ranking at chance scores AUC 0.5 and an average
  precision of about the positives' share: ``budget / n`` against the top-k, the active
  share (``active_fraction``) against the active nodes (exactly so when every score
  ties).

Cost: the collision counts visit the entries of the probed buckets (as the query does);
the ranking measures sort each scored query's ``n`` pre-activations once and make a few
passes over its nodes (integer scores are counted, not sorted).
"""


from __future__ import annotations

from lshprof.names import FAMILIES, POLICIES, REPLACEMENTS, SCHEDULES, TRANSFORMS
from lshprof.nn.lsh.families import (DWTA_ATTEMPTS, FAMILY_PARAMS, FAMILY_REGISTRY, Family,
                                     HashFunctions)
from lshprof.nn.lsh.schedule import RehashSchedule
from lshprof.nn.lsh.stats import (DIAGNOSE_BELOW, RANK_ENTRIES, HashCost, SelectionStats,
                                  expected_candidates, rank_queries, ranking_quality,
                                  selection_diagnosis)
from lshprof.nn.lsh.tables import MAX_CODE_BITS, HashTables
from lshprof.nn.lsh.transforms import (ALSH_M, ALSH_U, MIPS_HEADROOM, TRANSFORM_REGISTRY,
                                       Transform, extra_dims, pooled_dims)

__all__ = [
    "FAMILIES", "TRANSFORMS", "POLICIES", "REPLACEMENTS", "SCHEDULES", "MIPS_HEADROOM",
    "ALSH_M", "ALSH_U", "DWTA_ATTEMPTS", "MAX_CODE_BITS", "FAMILY_REGISTRY", "FAMILY_PARAMS",
    "TRANSFORM_REGISTRY", "Family", "Transform", "HashFunctions", "HashTables",
    "RehashSchedule", "SelectionStats", "HashCost", "extra_dims", "pooled_dims",
    "selection_diagnosis", "expected_candidates", "DIAGNOSE_BELOW", "RANK_ENTRIES",
    "rank_queries", "ranking_quality",
]
