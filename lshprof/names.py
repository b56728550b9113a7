"""The lists of names that the command line, the scenario schema and the code share.

Each list is written here once and imported wherever it is needed: the layer and
hash registries (:data:`lshprof.nn.layers.LAYERS`, :data:`lshprof.nn.lsh.FAMILY_REGISTRY`)
are checked against these names when they are built, the scenario schema's choices
and the command line's ``choices=`` read them, and a test holds them equal. This
module imports nothing but the standard library, so ``lshprof --help`` stays instant.
"""

from __future__ import annotations

__all__ = ["METHODS", "FRACTION_PARAM", "FAMILIES", "TRANSFORMS", "POLICIES", "REPLACEMENTS",
           "SCHEDULES", "MODES", "ACTIVATIONS", "HIDDEN_ACTIVATIONS", "OPTIMIZERS",
           "ENERGY_BACKENDS", "ENERGY_SOURCES", "TIME_CLOCKS", "THREAD_KEYWORDS", "MAC_PHASES",
           "TIME_PHASES", "APPLY_TO", "PLOTLYJS_MODES", "CELL_FLAGS", "TIMING_FLAGS"]

#: layer methods, in the order tables and reports list them
METHODS = ("dense", "dropout", "adaptive_dropout", "wta", "topk", "lsh")

#: method -> the layer parameter the sweep's active fraction sets (adaptive dropout: through
#: ``beta = logit(fraction)``); dense has none
FRACTION_PARAM = {"dropout": "p", "adaptive_dropout": "beta", "wta": "fraction",
                  "topk": "fraction", "lsh": "fraction"}

#: LSH hash families (:mod:`lshprof.nn.lsh.families`)
FAMILIES = ("srp", "srp_sparse", "wta", "dwta")
#: LSH transforms of rows and queries for inner-product search (:mod:`lshprof.nn.lsh.transforms`)
TRANSFORMS = ("none", "norm_augment", "sign_alsh")
#: how the LSH layer turns its buckets into an active set
POLICIES = ("union", "histogram", "multiprobe")
#: what a full bucket does with a new node
REPLACEMENTS = ("fifo", "reservoir")
#: when the LSH tables are re-hashed (:mod:`lshprof.nn.lsh.schedule`)
SCHEDULES = ("every", "paper", "exponential", "never")

#: training modes: synchronous mini-batches (threads inside the kernels), or lock-free
#: asynchronous workers sharing the weights (threads = workers; :mod:`lshprof.nn.hogwild`)
MODES = ("sync", "hogwild")

#: activations of a layer; ``identity`` is the output layer's (logits)
ACTIVATIONS = ("relu", "identity", "tanh", "sigmoid")
#: activations a scenario's hidden layers may use
HIDDEN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "identity")

#: optimizers (:mod:`lshprof.nn.optim`)
OPTIMIZERS = ("sgd", "adagrad", "adam")

#: energy backends (:mod:`lshprof.measure.energy`) and where a figure comes from
ENERGY_BACKENDS = ("auto", "powercap", "pyrapl", "estimate", "none")
ENERGY_SOURCES = ("measured", "estimated", "none")

#: the clock ``lshprof check`` compares time on
TIME_CLOCKS = ("auto", "cpu", "wall")

#: keywords ``[sweep] threads`` accepts in place of a list
THREAD_KEYWORDS = ("powers",)

#: which layers a scenario's methods replace
APPLY_TO = ("hidden", "output")

#: MAC-counted phases (:mod:`lshprof.measure.macs`) and timed phases
#: (:mod:`lshprof.measure.timing`)
MAC_PHASES = ("select", "hash", "rehash", "forward", "backward_input", "backward_weight")
TIME_PHASES = ("select", "hash", "rehash", "forward", "backward", "update", "quality", "other")

#: how a report carries plotly.js
PLOTLYJS_MODES = ("embed", "beside")

#: what can be wrong with a cell's figures (:mod:`lshprof.analysis.flags`): numba compiled
#: inside a measured epoch; a sparse layer chose far fewer nodes than its budget; a hash's
#: choice was no better than a random set of the same size; test accuracy at chance; the
#: machine was busy with other processes while the cell was timed; the energy reading came
#: with a caveat (a counter reset, a possible unseen wrap, an unreadable zone)
CELL_FLAGS = ("compiled", "below_budget", "random_recall", "chance", "busy", "energy")
#: the flags that make a cell's timing unstable: ``lshprof check`` does not judge its time
TIMING_FLAGS = ("compiled", "busy")
