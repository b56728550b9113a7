"""The layer interface: :class:`Layer`, activations and the active-node budget.

>>> layer = make_layer("topk", 784, 1000, fraction=0.05, seed=1)   # doctest: +SKIP
>>> out = layer.forward(x)            # ActiveSet: 50 active nodes per sample
>>> gx = layer.backward(out.with_values(grad_at_active_nodes))

Every layer holds ``W`` (``[n_out, n_in]``, one row per node) and ``b``; a forward
pass chooses the active nodes (the method's rule), computes only what the method
must compute, and returns an :class:`~lshprof.ActiveSet`. ``backward`` takes
the gradient in the same layout, returns the input gradient in the layout of
the input (a dense array for a dense input, an ``ActiveSet`` with the input's
pattern for a sparse input), and accumulates ``grad_W``/``grad_b`` for the
active nodes only, marking them in ``touched`` so optimizers update those rows
alone. MACs are counted by phase in ``layer.macs`` (rules: :mod:`lshprof.measure.macs`).

Random state is explicit: ``seed`` makes two independent streams, one for the
initial weights and one for the method's random choices (dropout masks), so a
fixed seed gives identical weights and active sets on every run.

The number of active nodes for a fraction is
``active_budget(fraction, n) = clip(floor(fraction*n + 0.5), 1, n)``.

The methods are in :mod:`lshprof.nn.layers.baselines` and :mod:`lshprof.nn.lsh.layer`;
:mod:`lshprof.nn.layers` has the registry (:data:`~lshprof.nn.layers.LAYERS`,
:func:`~lshprof.nn.layers.make_layer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from lshprof import kernels as kern
from lshprof.errors import ConfigError, InputTypeError
from lshprof.measure.macs import MacCounter, MacCounts, pair_macs
from lshprof.measure.timing import NULL_CLOCK
from lshprof.names import ACTIVATIONS as ACTIVATION_NAMES
from lshprof.nn.active import ActiveSet

__all__ = ["Layer", "LayerInput", "ACTIVATIONS", "active_budget"]


# -- activations -----------------------------------------------------------------
def _relu(z):
    return np.maximum(z, 0)


def _relu_grad(z):
    return (z > 0).astype(z.dtype)


def _sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1)  # overflow-free logistic


def _sigmoid_grad(z):
    s = _sigmoid(z)
    return s * (1 - s)


def _tanh_grad(z):
    t = np.tanh(z)
    return 1 - t * t


#: activation name -> (function of the pre-activation, its derivative)
ACTIVATIONS = {
    "relu": (_relu, _relu_grad),
    "identity": (lambda z: z.copy(), lambda z: np.ones_like(z)),
    "tanh": (np.tanh, _tanh_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
}
if tuple(ACTIVATIONS) != ACTIVATION_NAMES:
    raise ImportError(f"the activations {tuple(ACTIVATIONS)} are not lshprof.names.ACTIVATIONS "
                      f"{ACTIVATION_NAMES}: add or remove them in both places")


def active_budget(fraction: float, n: int) -> int:
    """Number of nodes a ``fraction`` of ``n`` stands for: nearest integer, at least 1."""
    return max(1, min(n, int(math.floor(fraction * n + 0.5))))


# -- the interface -------------------------------------------------------------------
@dataclass
class LayerInput:
    """A validated layer input: a dense array or a sparse ActiveSet, never both."""

    dense: np.ndarray | None
    sparse: ActiveSet | None
    batch: int
    counts: Any  # int (n_in for every sample) or int64[B] (stored entries per sample)
    was_array: bool

    def densified(self) -> np.ndarray:
        return self.dense if self.dense is not None else self.sparse.to_dense()


@dataclass
class _Nodes:
    """An active set regrouped by node for the node-major kernels (:func:`kern.by_node`)."""

    colptr: np.ndarray  # int64[n_out + 1]
    ent: np.ndarray  # int64[nnz]: each entry's position in the CSR arrays
    samp: np.ndarray  # int32[nnz]: each entry's sample
    n_nodes: int  # distinct active nodes
    _chunks: dict = None  # (parts, row_cost) -> node ranges for the parallel kernels

    @classmethod
    def of(cls, pattern: ActiveSet) -> "_Nodes":
        colptr, ent, samp = kern.by_node(pattern.indptr, pattern.indices, pattern.n_nodes)
        return cls(colptr, ent, samp, int(np.count_nonzero(np.diff(colptr))), {})

    def chunks(self, row_cost: int) -> np.ndarray:
        """Node ranges of about equal work, one per numba thread of the calling thread."""
        import numba

        key = (numba.get_num_threads(), row_cost)
        got = self._chunks.get(key)
        if got is None:
            got = self._chunks[key] = kern.node_chunks(self.colptr, key[0], row_cost)
        return got


@dataclass
class _Cache:
    x: LayerInput
    out: ActiveSet
    z: np.ndarray  # pre-activation at the active entries (1-D, nnz)
    scale: Any  # float or array like z: output = act(z) * scale
    weights_touched: int  # weight entries a sparse kernel reads for this pattern
    nodes: _Nodes | None  # the active set by node (None for a full set)


class Layer:
    """Base class: weights, gradient accumulators, MAC counter and the forward/backward frame.

    Subclasses set ``method`` and ``PARAMS`` (parameter name -> default) and implement
    :meth:`_choose` (pick nodes and compute their pre-activations); they declare what
    Hogwild workers share of their state (``HOGWILD_*`` below) and extend
    :meth:`fresh_private_state` and :meth:`merge_worker` for private state of their own.
    Besides :meth:`forward` and :meth:`backward`, :meth:`prepare_input` and
    :meth:`choose` run the selection alone (for benchmarks), :meth:`build` builds what
    the first pass would, :meth:`after_step`/:meth:`start_epoch` are the trainer's
    hooks and :meth:`warm_up_paths` the warm-up's.
    """

    method: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}

    # What Hogwild workers (:mod:`lshprof.nn.hogwild`) share of a layer and what each has
    # of its own. Every instance attribute is in exactly one of SHARED, THROUGH, COUNTERS,
    # PRIVATE and PRIVATE_RNGS (a test holds this for every method); subclasses extend them.
    #: shared as the same objects (a view holds the layer's): the weights, the parameters
    #: and shapes; never re-assigned while training (arrays are updated in place)
    HOGWILD_SHARED: ClassVar[tuple[str, ...]] = (
        "n_in", "n_out", "activation", "seed", "dtype", "params", "W", "b")
    #: shared and re-assigned while training (e.g. LSH tables, re-hash counters): a view
    #: reads and writes them through to the layer (a property, so a little slower)
    HOGWILD_THROUGH: ClassVar[tuple[str, ...]] = ()
    #: shared counts that views increment with no other lock (none in a layer; see
    #: :class:`~lshprof.nn.optim.Optimizer`)
    HOGWILD_COUNTERS: ClassVar[tuple[str, ...]] = ()
    #: each view's own, fresh from :meth:`fresh_private_state`: the forward cache, the
    #: gradient accumulators, the MAC counter, the phase clock and the activity counts
    #: (added into the layer by :meth:`merge_worker` after every epoch)
    HOGWILD_PRIVATE: ClassVar[tuple[str, ...]] = (
        "grad_W", "grad_b", "touched", "macs", "clock", "samples_seen", "active_seen",
        "_cache")
    #: private bool arrays that mark rows for :meth:`after_step` (LSH: rows updated since
    #: the last re-hash): a view's marks are OR-ed into the layer's before each of its
    #: ``after_step`` calls, which then run on the layer's, and after every epoch
    HOGWILD_MARKS: ClassVar[tuple[str, ...]] = ()
    #: random generators: the first worker's view draws from the layer's, every other
    #: view from a stream of its own
    HOGWILD_PRIVATE_RNGS: ClassVar[tuple[str, ...]] = ("rng",)

    def __init__(self, n_in: int, n_out: int, *, activation: str = "relu", seed: int = 0,
                 dtype="float32", **params):
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{self.method}: {name} must be a positive integer, got {v!r}")
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"{self.method}: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}"
            )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"{self.method}: seed must be a non-negative integer, got {seed!r}")
        try:
            dt = np.dtype(dtype)
        except TypeError:
            dt = None
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ConfigError(f"{self.method}: dtype must be float32 or float64, got {dtype!r}")
        unknown = sorted(set(params) - set(self.PARAMS))
        if unknown:
            valid = ", ".join(self.PARAMS) or "none"
            raise ConfigError(
                f"unknown parameter {', '.join(map(repr, unknown))} for method {self.method!r}; "
                f"valid: {valid}"
            )
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.activation = activation
        self.seed = int(seed)
        self.dtype = dt
        self.params = {**self.PARAMS, **params}
        self._check_params()

        init_ss, select_ss = np.random.SeedSequence(self.seed).spawn(2)
        limit = math.sqrt(6.0 / (self.n_in + self.n_out))  # Glorot & Bengio (2010) uniform
        self.W = np.random.default_rng(init_ss).uniform(
            -limit, limit, size=(self.n_out, self.n_in)).astype(dt)
        self.b = np.zeros(self.n_out, dtype=dt)
        self.rng = np.random.default_rng(select_ss)
        self.__dict__.update(self.fresh_private_state())

    def fresh_private_state(self) -> dict[str, Any]:
        """Fresh values of the per-batch state (:attr:`HOGWILD_PRIVATE`): what a new layer
        starts with, and what each Hogwild worker's view of it gets of its own.

        ``grad_W``, ``grad_b``, ``touched``: zero gradient accumulators and row marks;
        ``macs``: a new MAC counter; ``clock``: where phases are timed (a PhaseClock
        while a runner times, else a no-op); ``samples_seen``, ``active_seen``: samples
        passed forward and the active nodes they used (measured activity); ``_cache``:
        the last training forward pass, for :meth:`backward`."""
        return {"grad_W": np.zeros_like(self.W), "grad_b": np.zeros_like(self.b),
                "touched": np.zeros(self.n_out, dtype=bool), "macs": MacCounter(),
                "clock": NULL_CLOCK, "samples_seen": 0, "active_seen": 0, "_cache": None}

    def merge_worker(self, view: "Layer") -> None:
        """Add what a Hogwild worker's ``view`` of this layer counted (MACs, samples and
        active nodes seen) into the layer, and zero the view's counts."""
        counts = view.macs.counts()
        for f in fields(MacCounts):
            n = getattr(counts, f.name)
            if n:
                self.macs.add(f.name, n)
        view.macs.reset()
        self.samples_seen += view.samples_seen
        self.active_seen += view.active_seen
        view.samples_seen = view.active_seen = 0

    # -- hooks for subclasses --------------------------------------------------------
    def _check_params(self) -> None:
        """Validate and normalise ``self.params``."""

    def _choose(self, x: LayerInput, train: bool):
        """Return ``(pattern, z2d)``: the chosen nodes (``None`` for every node) and the
        full ``[B, n_out]`` pre-activation if choosing computed it (else ``None``)."""
        raise NotImplementedError

    def _scale(self, train: bool, z: np.ndarray):
        """Multiplier applied after the activation (dropout's 1/p, standout's keep prob)."""
        return 1.0

    def _scale_needs_z(self, train: bool) -> bool:
        """Whether :meth:`_scale` depends on the pre-activation (then it is an array)."""
        return False

    # -- public API ----------------------------------------------------------------------
    def prepare_input(self, x) -> LayerInput:
        """``x`` checked and put in the form the layer computes on, as :meth:`forward` does
        first: a :class:`LayerInput` holding the dense rows in the layer's dtype or the
        sparse :class:`ActiveSet` (a full set as its dense view). Raises what
        :meth:`forward` raises for a bad input. Benchmarks prepare a batch once and time
        :meth:`choose` on it."""
        return self._check_input(x)

    def choose(self, x: LayerInput, train: bool = True):
        """The method's choice of active nodes alone, for a batch from :meth:`prepare_input`:
        ``(pattern, z2d)``, the chosen nodes as an :class:`ActiveSet` (``None``: every
        node) and the full ``[B, n_out]`` pre-activation when choosing computed it (else
        ``None``). It is what :meth:`forward` does in its ``select`` phase, with the same
        MAC counts and random draws, but it pushes no phase on the clock and computes no
        output."""
        return self._choose(x, train)

    def build(self) -> None:
        """Build now what the layer derives from its weights and would otherwise build on
        its first forward pass (the LSH tables), counted as that pass would count it.
        The base layers derive nothing: this does nothing."""

    def forward(self, x, *, train: bool = True, active: ActiveSet | None = None,
                include=None) -> ActiveSet:
        """Choose the active nodes for the batch ``x`` and compute their outputs.

        ``x``: ``[B, n_in]`` float array or an :class:`ActiveSet` from the layer below.
        ``train``: training mode (random masks, sparse selection) or inference mode
        (each method's convention, see the class docstring).
        ``active``: compute exactly these nodes instead of choosing (e.g. to hold
        the active set fixed for a gradient check, or to score another method's choice).
        ``include``: int[B], one node per sample that must be active (the true class
        when this is a sparse output layer).
        """
        self.clock.push("forward")
        try:
            return self._forward(x, train, active, include)
        finally:
            self.clock.pop()

    def _forward(self, x, train, active, include) -> ActiveSet:
        xin = self._check_input(x)
        include = self._check_include(include, xin.batch)
        F = xin.batch * self.n_in * self.n_out
        self.macs.add("dense_equivalent", F)
        if active is not None:
            pattern = self._check_active(active, xin.batch)
            if include is not None:
                pattern = _merge_include(pattern, include)
            z2d = None
        else:
            self.clock.push("select")
            try:
                pattern, z2d = self._choose(xin, train)
            finally:
                self.clock.pop()
            if include is not None and pattern is not None:
                pattern = _merge_include(pattern, include)

        nodes = None
        if pattern is None or pattern.is_full:
            biased = z2d is not None
            if not biased:
                biased = self._scale_needs_z(train)  # then the bias goes in first
                z2d = self._preact_full(xin, "forward", bias=biased)
            z = z2d.reshape(-1)
            scale = self._scale(train, z)
            values = np.empty_like(z2d)
            if not np.isscalar(scale):  # an array: adaptive dropout's inference expectation
                values[...] = ACTIVATIONS[self.activation][0](z2d) * scale.reshape(z2d.shape)
            elif biased:
                kern.run(kern.act, kern.act_par, z, self._act_code, scale, values.reshape(-1),
                         work=z.size)
            else:  # one sweep: z += b, values = act(z) * scale
                kern.run(kern.bias_act, kern.bias_act_par, z2d, self.b, self._act_code, scale,
                         values, work=z2d.size)
            out = ActiveSet.full(values)
            touched = self.n_in * self.n_out
        else:
            nodes = _Nodes.of(pattern)
            touched = self._weights_touched(xin, pattern, nodes)
            if z2d is not None:
                rows = np.repeat(np.arange(xin.batch), pattern.counts())
                z = z2d[rows, pattern.indices]
            else:
                z = self._preact_pattern(xin, pattern, "forward", touched, nodes)
            scale = self._scale(train, z)
            values = self._activate(z, scale)
            out = ActiveSet(pattern.indptr, pattern.indices, values, self.n_out, check=False)
        self._cache = _Cache(xin, out, z, scale, touched, nodes) if train else None
        self.samples_seen += xin.batch
        self.active_seen += out.nnz
        return out

    def backward(self, grad, *, input_grad: bool = True):
        """Back-propagate ``grad`` (dLoss/dOutput at the active nodes).

        ``grad``: an :class:`ActiveSet` with the pattern the last ``forward`` returned
        (or its values as an array). Accumulates ``grad_W``/``grad_b`` for active
        nodes and marks them in ``touched``. Returns the input gradient (dense array
        for a dense input, ``ActiveSet`` with the input's pattern for a sparse one),
        or ``None`` when ``input_grad`` is False.
        """
        self.clock.push("backward")
        try:
            return self._backward(grad, input_grad)
        finally:
            self.clock.pop()

    def _backward(self, grad, input_grad: bool):
        c = self._cache
        if c is None:
            raise ConfigError(
                f"{self.method}: backward needs a forward pass with train=True first"
            )
        if isinstance(grad, ActiveSet):
            if not grad.same_pattern(c.out):
                raise ConfigError(
                    f"{self.method}: the gradient's active set differs from the forward "
                    "output's; build it with out.with_values(g)"
                )
            g = grad.values
        else:
            g = c.out.with_values(_as_float_array(grad, "grad")).values
        self._cache = None
        g = np.ascontiguousarray(g, dtype=self.dtype)
        if not np.isfinite(g).all():  # as forward refuses a NaN input
            raise ConfigError(f"{self.method}: the gradient contains NaN or inf (a diverging "
                              "loss: lower the learning rate)")
        if np.isscalar(c.scale):  # one sweep: dz = g * act'(z) * scale
            dz = np.empty_like(g)
            kern.run(kern.act_grad, kern.act_grad_par, g, c.z, self._act_code, c.scale, dz,
                     work=g.size)
        else:
            dz = (g * ACTIVATIONS[self.activation][1](c.z) * c.scale).astype(self.dtype,
                                                                             copy=False)
        x = c.x
        F = x.batch * self.n_in * self.n_out
        self.macs.add("dense_equivalent", F * (2 if input_grad else 1))
        # traffic: dz and x read, gradient rows read and written; W, dz read and gx written
        T, n_z = c.weights_touched, c.out.nnz
        n_x = x.batch * self.n_in if c.out.is_full else self._input_entries(x)
        self.macs.add("bytes_moved", self.dtype.itemsize * (
            2 * T + n_x + n_z + ((T + n_z + n_x) if input_grad else 0)))

        if c.out.is_full:  # every node active: BLAS products
            dz2d = dz.reshape(x.batch, self.n_out)
            xd = np.ascontiguousarray(x.densified())
            if self.touched.any():  # accumulating onto an earlier batch's gradient
                _gemm_accumulate(self.grad_W, dz2d, xd)  # grad_W += dz2d.T @ xd, in place
            else:  # untouched rows hold zero gradients: write the product in place
                np.matmul(dz2d.T, xd, out=self.grad_W)
            self.grad_b += dz2d.sum(axis=0)
            self.touched[:] = True
            self.macs.add("backward_weight", F)
            if not input_grad:
                return None
            gx = dz2d @ self.W
            self.macs.add("backward_input", F)
            if x.sparse is not None:
                rows = np.repeat(np.arange(x.batch), x.counts)
                return x.sparse.with_values(gx[rows, x.sparse.indices])
            return gx if x.was_array else ActiveSet.full(gx)

        out = c.out
        S = pair_macs(x.counts, out.counts())
        self.macs.add("backward_weight", S)
        if input_grad:
            self.macs.add("backward_input", S)
        nd = c.nodes if c.nodes is not None else _Nodes.of(out)
        par = kern.parallel(S)
        if x.sparse is not None:
            xs = x.sparse
            gxv = np.zeros(xs.nnz if input_grad else 0, dtype=self.dtype)
            args = (xs.indptr, xs.indices, xs.values, self.W, nd.colptr, nd.ent, nd.samp, dz,
                    self.grad_W, self.grad_b, self.touched, gxv, input_grad)
            if par:
                kern.backward_sparse_par(*args, nd.chunks(_ROW_COST))
            else:
                kern.backward_sparse(*args)
            return xs.with_values(gxv) if input_grad else None
        gx = np.zeros((x.batch, self.n_in) if input_grad else (x.batch, 0), dtype=self.dtype)
        args = (x.dense, self.W, nd.colptr, nd.ent, nd.samp, dz, self.grad_W, self.grad_b,
                self.touched, gx, input_grad)
        if par:
            kern.backward_dense_par(*args, nd.chunks(_ROW_COST))
        else:
            kern.backward_dense(*args)
        if not input_grad:
            return None
        return gx if x.was_array else ActiveSet.full(gx)

    def after_step(self) -> None:
        """Called by the trainer after every optimizer step (e.g. to re-hash updated rows).

        The base layers keep no state that depends on the weights, so this does nothing.
        """

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        """Called by the trainer before epoch ``epoch`` (from 0) of ``n_batches`` batches."""

    def warm_up_paths(self) -> None:
        """Run once, on a throwaway copy after a short training pass, what later training
        steps may run that such a pass need not reach (an LSH layer: a scheduled re-hash
        of updated rows, a rebuild of every table), so that it is compiled before
        anything is measured (:func:`lshprof.nn.warmup.warm_up`). The base layers have
        no such paths: this does nothing."""

    def selection_stats(self):
        """What a hash-selected layer's tables returned; None for other methods."""
        return None

    def selection_summary(self, stats) -> dict | None:
        """A row's account of ``stats`` (a difference of :meth:`selection_stats`): its
        summary, with the facts that explain it for a hash-selected layer; None for
        other methods."""
        return None if stats is None else stats.summary()

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by this layer, by part (optimizer state is the optimizer's)."""
        return {"weights": int(self.W.nbytes + self.b.nbytes),
                "gradients": int(self.grad_W.nbytes + self.grad_b.nbytes + self.touched.nbytes)}

    def zero_grad(self) -> None:
        """Clear gradient accumulators and the touched-row marks."""
        self.grad_W.fill(0)
        self.grad_b.fill(0)
        self.touched.fill(False)

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this layer with :func:`make_layer`."""
        return {"method": self.method, "n_in": self.n_in, "n_out": self.n_out,
                "activation": self.activation, "seed": self.seed,
                "dtype": self.dtype.name, **self.params}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({self.n_in} -> {self.n_out}, {self.activation}{extra})"

    # -- shared computation -------------------------------------------------------------
    @property
    def _act_code(self) -> int:
        return kern.ACT_CODES[self.activation]

    def _activate(self, z: np.ndarray, scale) -> np.ndarray:
        """``act(z) * scale`` in the layer's dtype (one sweep when ``scale`` is a number)."""
        if not np.isscalar(scale):
            return (ACTIVATIONS[self.activation][0](z) * scale).astype(self.dtype, copy=False)
        out = np.empty(z.shape, dtype=self.dtype)
        kern.run(kern.act, kern.act_par, z, self._act_code, scale, out, work=z.size)
        return out

    def _preact_full(self, x: LayerInput, phase: str, *, bias: bool = True) -> np.ndarray:
        """Every pre-activation by one BLAS product; counts ``B*n_in*n_out`` in ``phase``.
        ``bias=False`` leaves the bias out (the caller adds it in a fused sweep)."""
        z2d = x.densified() @ self.W.T
        if bias:
            z2d += self.b
        F = x.batch * self.n_in * self.n_out
        self.macs.add(phase, F)
        self.macs.add("bytes_moved", self.dtype.itemsize * (
            self.n_in * self.n_out + x.batch * (self.n_in + self.n_out)))
        return z2d

    def _input_entries(self, x: LayerInput) -> int:
        """Input values a kernel reads: every entry of a dense input, the stored ones of a sparse one."""
        return x.batch * self.n_in if x.sparse is None else x.sparse.nnz

    def _weights_touched(self, x: LayerInput, pattern: ActiveSet,
                         nodes: "_Nodes | None" = None) -> int:
        """Weight entries a sparse kernel reads for ``pattern``: each (active node, active
        input) pair of the batch once, ``min(S, U*V)`` with ``U`` distinct active nodes
        and ``V`` distinct active inputs (the memory-traffic model of :mod:`lshprof.measure.macs`)."""
        S = pair_macs(x.counts, pattern.counts())
        U = nodes.n_nodes if nodes is not None else int(
            np.count_nonzero(np.bincount(pattern.indices, minlength=self.n_out)))
        V = self.n_in if x.sparse is None else int(
            np.count_nonzero(np.bincount(x.sparse.indices, minlength=self.n_in)))
        return min(S, U * V)

    def _preact_pattern(self, x: LayerInput, pattern: ActiveSet, phase: str,
                        touched: int | None = None, nodes: "_Nodes | None" = None) -> np.ndarray:
        """Pre-activations of the active entries only (numba, node by node); counts
        ``sum a_b k_b``."""
        z = np.empty(pattern.nnz, dtype=self.dtype)
        nd = nodes if nodes is not None else _Nodes.of(pattern)
        S = pair_macs(x.counts, pattern.counts())
        par = kern.parallel(S)
        if x.sparse is not None:
            xs = x.sparse
            args = (xs.indptr, xs.indices, xs.values, self.W, self.b, nd.colptr, nd.ent,
                    nd.samp)
            if par:
                kern.forward_sparse_par(*args, nd.chunks(_ROW_COST), z)
            else:
                kern.forward_sparse(*args, z)
        else:
            args = (x.dense, self.W, self.b, nd.colptr, nd.ent, nd.samp)
            if par:
                kern.forward_dense_par(*args, nd.chunks(_ROW_COST), z)
            else:
                kern.forward_dense(*args, z)
        self.macs.add(phase, S)
        if touched is None:
            touched = self._weights_touched(x, pattern, nd)
        self.macs.add("bytes_moved", self.dtype.itemsize * (
            touched + self._input_entries(x) + pattern.nnz))
        return z

    # -- validation ------------------------------------------------------------------------
    def _check_input(self, x) -> LayerInput:
        if isinstance(x, ActiveSet):
            if x.n_nodes != self.n_in:
                raise ConfigError(
                    f"{self.method}: input has {x.n_nodes} nodes but the layer expects n_in={self.n_in}"
                )
            if x.batch_size < 1:
                raise ConfigError(f"{self.method}: empty batch")
            if x.values.dtype != self.dtype:
                x = x.with_values(x.values.astype(self.dtype))
            if not np.isfinite(x.values).all():
                raise ConfigError(f"{self.method}: input contains NaN or inf")
            if x.is_full:
                return LayerInput(x.dense_view(), None, x.batch_size, self.n_in, False)
            return LayerInput(None, x, x.batch_size, x.counts(), False)
        arr = _as_float_array(x, "x")
        if arr.ndim != 2 or arr.shape[1] != self.n_in:
            raise ConfigError(
                f"{self.method}: x must have shape [batch, {self.n_in}], got {arr.shape}"
                + ("; for one sample use x[None, :]" if arr.ndim == 1 else "")
            )
        if arr.shape[0] < 1:
            raise ConfigError(f"{self.method}: empty batch")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        if not np.isfinite(arr).all():
            raise ConfigError(f"{self.method}: x contains NaN or inf")
        return LayerInput(arr, None, arr.shape[0], self.n_in, True)

    def _check_include(self, include, batch: int):
        if include is None:
            return None
        inc = np.asarray(include)
        if inc.dtype.kind not in "iu" or inc.shape != (batch,):
            raise ConfigError(f"{self.method}: include must be an int array of shape ({batch},)")
        if inc.size and (inc.min() < 0 or inc.max() >= self.n_out):
            raise ConfigError(f"{self.method}: include nodes must lie in [0, {self.n_out})")
        return inc.astype(np.int64)

    def _check_active(self, active, batch: int) -> ActiveSet:
        if not isinstance(active, ActiveSet):
            raise InputTypeError(f"{self.method}: active must be an ActiveSet")
        if active.n_nodes != self.n_out or active.batch_size != batch:
            raise ConfigError(
                f"{self.method}: active set is [{active.batch_size} x {active.n_nodes}] but the "
                f"batch needs [{batch} x {self.n_out}]"
            )
        return active


#: work of reading one weight row, in active entries, when splitting nodes across threads
_ROW_COST = 2


def _gemm_accumulate(C: np.ndarray, A: np.ndarray, X: np.ndarray) -> None:
    """``C += A.T @ X`` in place by one BLAS call (no ``[n_out, n_in]`` temporary).

    Used only when a gradient is accumulated over several batches: scipy's BLAS
    wrappers hold the GIL (numpy's products release it), which would serialise
    Hogwild workers.

    ``C`` is ``[n, m]`` C-ordered, ``A`` ``[B, n]`` and ``X`` ``[B, m]`` C-contiguous. In
    Fortran order ``C.T`` is ``[m, n]`` and ``C.T += X.T @ A``: a GEMM with ``beta = 1``.
    """
    from scipy.linalg import blas

    gemm = blas.sgemm if C.dtype == np.float32 else blas.dgemm
    A = np.ascontiguousarray(A, dtype=C.dtype)
    X = np.ascontiguousarray(X, dtype=C.dtype)
    out = gemm(1.0, X.T, A.T, beta=1.0, c=C.T, trans_b=True, overwrite_c=True)
    if not np.shares_memory(out, C):  # the wrapper copied: write the result back
        C[...] = out.T


def _as_float_array(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise InputTypeError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise InputTypeError(
            f"{name} must be a float array, got dtype {x.dtype}; convert with .astype(np.float32)"
        )
    return x


def _merge_include(pattern: ActiveSet, include: np.ndarray) -> ActiveSet:
    """``pattern`` with node ``include[b]`` added to sample ``b`` where it is missing."""
    if pattern.is_full:
        return pattern
    mask = pattern.mask()
    mask[np.arange(mask.shape[0]), include] = True
    return ActiveSet.from_mask(mask)
