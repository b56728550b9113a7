"""Layers chosen by name, all behind one interface.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from lshprof import kernels as K
from lshprof.nn import lsh as L_
from lshprof.nn.active import ActiveSet
from lshprof.errors import ConfigError, InputTypeError
from lshprof.measure.macs import MacCounter, pair_macs
from lshprof.measure.timing import NULL_CLOCK

__all__ = ["Layer", "LAYERS", "ACTIVATIONS", "LSH", "make_layer", "active_budget"]


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


def active_budget(fraction: float, n: int) -> int:
    """Number of nodes a ``fraction`` of ``n`` stands for: nearest integer, at least 1."""
    return max(1, min(n, int(math.floor(fraction * n + 0.5))))


def _check_fraction(name: str, value, method: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{method}: {name} must be a number in (0, 1], got {value!r}")
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ConfigError(f"{method}: {name} must be in (0, 1], got {value}")
    return value


def _check_real(name: str, value, method: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigError(f"{method}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{method}: {name} must be finite, got {value}")
    return value


# -- the interface -------------------------------------------------------------------
@dataclass
class _Input:
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
    """An active set regrouped by node for the node-major kernels (:func:`K.by_node`)."""

    colptr: np.ndarray  # int64[n_out + 1]
    ent: np.ndarray  # int64[nnz]: each entry's position in the CSR arrays
    samp: np.ndarray  # int32[nnz]: each entry's sample
    n_nodes: int  # distinct active nodes
    _chunks: dict = None  # (parts, row_cost) -> node ranges for the parallel kernels

    @classmethod
    def of(cls, pattern: ActiveSet) -> "_Nodes":
        colptr, ent, samp = K.by_node(pattern.indptr, pattern.indices, pattern.n_nodes)
        return cls(colptr, ent, samp, int(np.count_nonzero(np.diff(colptr))), {})

    def chunks(self, row_cost: int) -> np.ndarray:
        """Node ranges of about equal work, one per numba thread of the calling thread."""
        import numba

        key = (numba.get_num_threads(), row_cost)
        got = self._chunks.get(key)
        if got is None:
            got = self._chunks[key] = K.node_chunks(self.colptr, key[0], row_cost)
        return got


@dataclass
class _Cache:
    x: _Input
    out: ActiveSet
    z: np.ndarray  # pre-activation at the active entries (1-D, nnz)
    scale: Any  # float or array like z: output = act(z) * scale
    weights_touched: int  # weight entries a sparse kernel reads for this pattern
    nodes: _Nodes | None  # the active set by node (None for a full set)


class Layer:
    """Base class: weights, gradient accumulators, MAC counter and the forward/backward frame.

    Subclasses set ``method`` and ``PARAMS`` (parameter name -> default) and implement
    :meth:`_choose` (pick nodes and compute their pre-activations).
    """

    method: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}

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
        self.grad_W = np.zeros_like(self.W)
        self.grad_b = np.zeros_like(self.b)
        self.touched = np.zeros(self.n_out, dtype=bool)
        self.macs = MacCounter()
        #: where phases are timed (a PhaseClock while a runner times, else a no-op)
        self.clock = NULL_CLOCK
        #: samples passed forward and active nodes they used (measured activity)
        self.samples_seen = 0
        self.active_seen = 0
        self._cache: _Cache | None = None

    # -- hooks for subclasses --------------------------------------------------------
    def _check_params(self) -> None:
        """Validate and normalise ``self.params``."""

    def _choose(self, x: _Input, train: bool):
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
                K.run(K.act, K.act_par, z, self._act_code, scale, values.reshape(-1),
                      work=z.size)
            else:  # one sweep: z += b, values = act(z) * scale
                K.run(K.bias_act, K.bias_act_par, z2d, self.b, self._act_code, scale, values,
                      work=z2d.size)
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
        if np.isscalar(c.scale):  # one sweep: dz = g * act'(z) * scale
            dz = np.empty_like(g)
            K.run(K.act_grad, K.act_grad_par, g, c.z, self._act_code, c.scale, dz, work=g.size)
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
        par = K.parallel(S)
        if x.sparse is not None:
            xs = x.sparse
            gxv = np.zeros(xs.nnz if input_grad else 0, dtype=self.dtype)
            args = (xs.indptr, xs.indices, xs.values, self.W, nd.colptr, nd.ent, nd.samp, dz,
                    self.grad_W, self.grad_b, self.touched, gxv, input_grad)
            if par:
                K.backward_sparse_par(*args, nd.chunks(_ROW_COST))
            else:
                K.backward_sparse(*args)
            return xs.with_values(gxv) if input_grad else None
        gx = np.zeros((x.batch, self.n_in) if input_grad else (x.batch, 0), dtype=self.dtype)
        args = (x.dense, self.W, nd.colptr, nd.ent, nd.samp, dz, self.grad_W, self.grad_b,
                self.touched, gx, input_grad)
        if par:
            K.backward_dense_par(*args, nd.chunks(_ROW_COST))
        else:
            K.backward_dense(*args)
        if not input_grad:
            return None
        return gx if x.was_array else ActiveSet.full(gx)

    def after_step(self) -> None:
        """Called by the trainer after every optimizer step (e.g. to re-hash updated rows).

        The base layers keep no state that depends on the weights, so this does nothing.
        """

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        """Called by the trainer before epoch ``epoch`` (from 0) of ``n_batches`` batches."""

    def selection_stats(self):
        """What a hash-selected layer's tables returned; None for other methods."""
        return None

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
        return K.ACT_CODES[self.activation]

    def _activate(self, z: np.ndarray, scale) -> np.ndarray:
        """``act(z) * scale`` in the layer's dtype (one sweep when ``scale`` is a number)."""
        if not np.isscalar(scale):
            return (ACTIVATIONS[self.activation][0](z) * scale).astype(self.dtype, copy=False)
        out = np.empty(z.shape, dtype=self.dtype)
        K.run(K.act, K.act_par, z, self._act_code, scale, out, work=z.size)
        return out

    def _preact_full(self, x: _Input, phase: str, *, bias: bool = True) -> np.ndarray:
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

    def _input_entries(self, x: _Input) -> int:
        """Input values a kernel reads: every entry of a dense input, the stored ones of a sparse one."""
        return x.batch * self.n_in if x.sparse is None else x.sparse.nnz

    def _weights_touched(self, x: _Input, pattern: ActiveSet, nodes: "_Nodes | None" = None) -> int:
        """Weight entries a sparse kernel reads for ``pattern``: each (active node, active
        input) pair of the batch once, ``min(S, U*V)`` with ``U`` distinct active nodes
        and ``V`` distinct active inputs (the memory-traffic model of :mod:`lshprof.measure.macs`)."""
        S = pair_macs(x.counts, pattern.counts())
        U = nodes.n_nodes if nodes is not None else int(
            np.count_nonzero(np.bincount(pattern.indices, minlength=self.n_out)))
        V = self.n_in if x.sparse is None else int(
            np.count_nonzero(np.bincount(x.sparse.indices, minlength=self.n_in)))
        return min(S, U * V)

    def _preact_pattern(self, x: _Input, pattern: ActiveSet, phase: str,
                        touched: int | None = None, nodes: "_Nodes | None" = None) -> np.ndarray:
        """Pre-activations of the active entries only (numba, node by node); counts
        ``sum a_b k_b``."""
        z = np.empty(pattern.nnz, dtype=self.dtype)
        nd = nodes if nodes is not None else _Nodes.of(pattern)
        S = pair_macs(x.counts, pattern.counts())
        par = K.parallel(S)
        if x.sparse is not None:
            xs = x.sparse
            args = (xs.indptr, xs.indices, xs.values, self.W, self.b, nd.colptr, nd.ent,
                    nd.samp)
            if par:
                K.forward_sparse_par(*args, nd.chunks(_ROW_COST), z)
            else:
                K.forward_sparse(*args, z)
        else:
            args = (x.dense, self.W, self.b, nd.colptr, nd.ent, nd.samp)
            if par:
                K.forward_dense_par(*args, nd.chunks(_ROW_COST), z)
            else:
                K.forward_dense(*args, z)
        self.macs.add(phase, S)
        if touched is None:
            touched = self._weights_touched(x, pattern, nd)
        self.macs.add("bytes_moved", self.dtype.itemsize * (
            touched + self._input_entries(x) + pattern.nnz))
        return z

    # -- validation ------------------------------------------------------------------------
    def _check_input(self, x) -> _Input:
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
                return _Input(x.dense_view(), None, x.batch_size, self.n_in, False)
            return _Input(None, x, x.batch_size, x.counts(), False)
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
        return _Input(arr, None, arr.shape[0], self.n_in, True)

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


def _pattern_from_topk(z2d: np.ndarray, k: int) -> ActiveSet:
    b = z2d.shape[0]
    indices = np.empty(b * k, dtype=np.int32)
    K.topk_rows(z2d, k, indices)
    indptr = np.arange(b + 1, dtype=np.int64) * k
    return ActiveSet(indptr, indices, np.zeros(b * k, dtype=z2d.dtype), z2d.shape[1], check=False)


# -- the methods -------------------------------------------------------------------------
class Dense(Layer):
    """Every node, every sample: ``act(x @ W.T + b)`` by BLAS products (the baseline).

    No parameters. Training and inference are the same computation.
    """

    method = "dense"

    def _choose(self, x, train):
        return None, None


class Dropout(Layer):
    """Vanilla dropout: each node of each sample is kept with probability ``p``.

    ``p`` (0, 1], default 0.5: the keep probability, so the expected active
    fraction is ``p``. The mask is drawn *before* computing: dropped nodes are
    never computed. Training output is ``act(z) / p`` at kept nodes (inverted
    dropout), so inference computes every node with no scaling.
    """

    method = "dropout"
    PARAMS = {"p": 0.5}

    def _check_params(self):
        self.params["p"] = _check_fraction("p", self.params["p"], self.method)

    def _choose(self, x, train):
        if not train:
            return None, None
        mask = self.rng.random((x.batch, self.n_out), dtype=np.float32) < self.params["p"]
        return ActiveSet.from_mask(mask), None

    def _scale(self, train, z):
        return 1.0 / self.params["p"] if train else 1.0


class AdaptiveDropout(Layer):
    """Adaptive dropout, "standout" (Ba & Frey 2013), with weights shared with the layer.

    Each node is kept with probability ``sigmoid(alpha * z + beta)`` where ``z`` is its
    own pre-activation, so every pre-activation is computed first (phase ``select``).
    ``alpha`` default 1.0, ``beta`` default 0.0 (the active fraction follows from them
    and from the data). Training output is ``act(z)`` at kept nodes; inference
    computes every node and outputs the expectation ``act(z) * sigmoid(alpha*z + beta)``.
    """

    method = "adaptive_dropout"
    PARAMS = {"alpha": 1.0, "beta": 0.0}

    def _check_params(self):
        for k in ("alpha", "beta"):
            self.params[k] = _check_real(k, self.params[k], self.method)

    def _keep_prob(self, z):
        return _sigmoid(self.params["alpha"] * z + self.params["beta"])

    def _choose(self, x, train):
        if not train:
            return None, None
        z2d = self._preact_full(x, "select")
        keep = self._keep_prob(z2d)
        mask = self.rng.random(z2d.shape, dtype=np.float32) < keep
        return ActiveSet.from_mask(mask), z2d

    def _scale(self, train, z):
        return 1.0 if train else self._keep_prob(z)

    def _scale_needs_z(self, train):
        return not train


class WTA(Layer):
    """Winner-take-all (Makhzani & Frey 2015): keep the largest activations.

    ``fraction`` (0, 1], default 0.05. ``mode``:

    * ``"sample"`` (default): per sample, the ``active_budget(fraction, n_out)``
      nodes with the largest activation (ties to the lowest node number). Every
      pre-activation is computed first (phase ``select``). Inference does the same.
    * ``"lifetime"``: per node, the ``active_budget(fraction, B)`` samples of the
      mini-batch with its largest activations, so a sample's active count varies.
      With a batch of 1 every node is kept. Inference computes every node (as the
      paper's fully-connected WTA does at test time).
    """

    method = "wta"
    PARAMS = {"fraction": 0.05, "mode": "sample"}
    MODES = ("sample", "lifetime")

    def _check_params(self):
        self.params["fraction"] = _check_fraction("fraction", self.params["fraction"], self.method)
        if self.params["mode"] not in self.MODES:
            raise ConfigError(
                f"wta: unknown mode {self.params['mode']!r}; valid: {', '.join(self.MODES)}"
            )

    def _choose(self, x, train):
        lifetime = self.params["mode"] == "lifetime"
        if lifetime and not train:
            return None, None
        z2d = self._preact_full(x, "select")
        a2d = ACTIVATIONS[self.activation][0](z2d)
        if not lifetime:
            return _pattern_from_topk(a2d, active_budget(self.params["fraction"], self.n_out)), z2d
        kb = active_budget(self.params["fraction"], x.batch)
        per_node = _pattern_from_topk(np.ascontiguousarray(a2d.T), kb)
        return ActiveSet.from_mask(per_node.mask().T), z2d


class TopK(Layer):
    """The exact oracle: per sample, the ``active_budget(fraction, n_out)`` nodes with the
    largest *pre-activation* (ties to the lowest node number).

    ``fraction`` (0, 1], default 0.05. Every pre-activation is computed (phase
    ``select``). Inference selects the same way. This is what an ideal hash-based
    selection would return; it is the yardstick for the LSH layer.
    """

    method = "topk"
    PARAMS = {"fraction": 0.05}

    def _check_params(self):
        self.params["fraction"] = _check_fraction("fraction", self.params["fraction"], self.method)

    def _choose(self, x, train):
        z2d = self._preact_full(x, "select")
        return _pattern_from_topk(z2d, active_budget(self.params["fraction"], self.n_out)), z2d


def _check_choice(name: str, value, valid, method: str) -> str:
    if value not in valid:
        raise ConfigError(f"{method}: unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def _check_int(name: str, value, method: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{method}: {name} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng_txt = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{method}: {name} must be {rng_txt}, got {value}")
    return int(value)


class LSH(Layer):
    """Hash-selected sparse layer (Spring & Shrivastava 2017): the active nodes come from
    ``L`` hash tables over the weight rows, queried with the hashed input, so choosing
    needs no pre-activation at all. Hash families, transforms, table layout and MAC
    formulas are described in :mod:`lshprof.nn.lsh`.

    Parameters (defaults in ``LSH.PARAMS``):

    * ``fraction`` (0, 1]: budget ``active_budget(fraction, n_out)`` nodes per sample.
      At 1.0 the layer hashes nothing and computes exactly what ``dense`` does.
    * ``family``: ``srp`` | ``srp_sparse`` | ``wta`` | ``dwta``; ``K`` digits per table
      (bits for srp, ``log2(bin_size)`` bits each for wta), ``L`` tables,
      ``bin_size`` (wta, a power of 2), ``density`` (srp_sparse).
    * ``transform``: ``none`` (cosine, as the paper's code) | ``norm_augment`` |
      ``sign_alsh``; ``pool``: mean-pool blocks of this many coordinates first.
    * ``policy``: ``union`` | ``histogram`` (paper's code) | ``multiprobe`` with
      ``probes`` extra buckets per table.
    * ``capacity`` (int or None for unlimited) and ``replacement`` (``fifo`` |
      ``reservoir``) of each bucket.
    * ``shortfall``: when the tables return fewer nodes than the budget, ``keep``
      fewer or ``pad`` with random nodes; counts of both are in :meth:`selection_stats`.
    * ``rehash``: ``every`` | ``paper`` | ``exponential`` | ``never`` (see
      :class:`lshprof.nn.lsh.RehashSchedule`), with ``rehash_every`` batches and
      ``rehash_growth``; ``rehash_rows``: ``updated`` (rows changed since the last
      re-hash) or ``all`` (clear and refill every table, as the paper's code);
      ``new_projections_every``: draw new hash functions every so many batches (0:
      never; also :meth:`new_projections`).
    * ``quality``: also compute the full product on every selection and score the
      chosen set against the exact top-k of the same size and a random set
      (:meth:`selection_stats`); its MACs go to ``quality``, not to the method.
    * ``inference``: ``lsh`` (select in inference mode too) or ``dense``.

    The tables are built on the first forward pass (counted as ``rehash``).
    """

    method = "lsh"
    PARAMS = {
        "fraction": 0.05, "family": "srp", "K": 6, "L": 50, "bin_size": 8,
        "density": 1 / 3, "transform": "none", "pool": 1, "policy": "histogram",
        "probes": 4, "capacity": 128, "replacement": "fifo", "shortfall": "keep",
        "rehash": "every", "rehash_every": 50, "rehash_growth": 0.1,
        "rehash_rows": "updated", "new_projections_every": 0, "quality": False,
        "inference": "lsh",
    }

    def __init__(self, n_in: int, n_out: int, **kwargs):
        super().__init__(n_in, n_out, **kwargs)
        p = self.params
        # streams 0 and 1 are the base class's (weights, choices); 2 hashes, 3 quality
        hash_ss, quality_ss = np.random.SeedSequence(self.seed).spawn(4)[2:]
        self._hash_rng = np.random.default_rng(hash_ss)
        self._quality_rng = np.random.default_rng(quality_ss)
        self.budget = active_budget(p["fraction"], self.n_out)
        self.pooled_dim = L_.pooled_dims(self.n_in, p["pool"])
        self.hash_dim = self.pooled_dim + L_.extra_dims(p["transform"])
        self.hashes: L_.HashFunctions | None = None
        self.tables: L_.HashTables | None = None
        self.schedule = L_.RehashSchedule(p["rehash"], p["rehash_every"], p["rehash_growth"])
        self._dirty = np.zeros(self.n_out, dtype=bool)
        self._M = 1.0
        self._stats = L_.SelectionStats()
        #: re-hash events and (row, table) insertions made so far
        self.rehash_count = 0
        self.rows_rehashed = 0

    def _check_params(self):
        p, m = self.params, self.method
        p["fraction"] = _check_fraction("fraction", p["fraction"], m)
        _check_choice("family", p["family"], L_.FAMILIES, m)
        _check_choice("transform", p["transform"], L_.TRANSFORMS, m)
        _check_choice("policy", p["policy"], L_.POLICIES, m)
        _check_choice("replacement", p["replacement"], L_.REPLACEMENTS, m)
        _check_choice("shortfall", p["shortfall"], ("keep", "pad"), m)
        _check_choice("rehash", p["rehash"], L_.SCHEDULES, m)
        _check_choice("rehash_rows", p["rehash_rows"], ("updated", "all"), m)
        _check_choice("inference", p["inference"], ("lsh", "dense"), m)
        p["K"] = _check_int("K", p["K"], m, 1)
        p["L"] = _check_int("L", p["L"], m, 1)
        p["bin_size"] = _check_int("bin_size", p["bin_size"], m, 2, 1 << 16)
        if p["bin_size"] & (p["bin_size"] - 1):
            raise ConfigError(f"{m}: bin_size must be a power of 2, got {p['bin_size']}")
        p["pool"] = _check_int("pool", p["pool"], m, 1, self.n_in)
        p["probes"] = _check_int("probes", p["probes"], m, 0)
        p["rehash_every"] = _check_int("rehash_every", p["rehash_every"], m, 1)
        p["new_projections_every"] = _check_int("new_projections_every",
                                                p["new_projections_every"], m, 0)
        if p["capacity"] is not None:
            p["capacity"] = _check_int("capacity", p["capacity"], m, 1)
        p["density"] = _check_fraction("density", p["density"], m)
        p["rehash_growth"] = _check_real("rehash_growth", p["rehash_growth"], m)
        if p["rehash_growth"] < 0:
            raise ConfigError(f"{m}: rehash_growth must be >= 0, got {p['rehash_growth']}")
        if not isinstance(p["quality"], bool):
            raise ConfigError(f"{m}: quality must be true or false, got {p['quality']!r}")
        bits = p["K"] * (int(math.log2(p["bin_size"])) if p["family"] in ("wta", "dwta") else 1)
        if bits > L_.MAX_CODE_BITS:
            raise ConfigError(
                f"{m}: K={p['K']} gives {bits}-bit codes for family {p['family']!r}; at most "
                f"{L_.MAX_CODE_BITS} bits fit, lower K"
            )

    # -- the tables ----------------------------------------------------------------------------
    @property
    def dense_mode(self) -> bool:
        """True when the budget is every node: the layer computes exactly like dense."""
        return self.budget == self.n_out

    def _new_hashes(self) -> None:
        p = self.params
        self.hashes = L_.HashFunctions(p["family"], p["K"], p["L"], self.hash_dim, self._hash_rng,
                                       bin_size=p["bin_size"], density=p["density"],
                                       dtype=self.dtype)

    def _ensure_tables(self) -> None:
        if self.tables is None:
            self._new_hashes()
            self.tables = L_.HashTables(self.params["L"], self.n_out, self.params["capacity"],
                                        self.params["replacement"], self._hash_rng)
            self._rehash(None)

    def _pooled_rows(self, rows: np.ndarray, cost: "L_.HashCost") -> np.ndarray:
        W = self.W[rows]
        pool = self.params["pool"]
        if pool == 1:
            return W
        out = np.empty((rows.size, self.pooled_dim), dtype=self.dtype)
        K.pool_dense(W, pool, out)
        cost.adds += rows.size * self.n_in
        cost.macs += rows.size * self.pooled_dim
        return out

    def _row_vectors(self, rows: np.ndarray | None, cost: "L_.HashCost"):
        """``(rows, vectors, full)``: what the tables store for ``rows`` (None: every row,
        with a new ``M``; ``full`` says every row was done, e.g. because one outgrew ``M``)."""
        full = rows is None
        idx = np.arange(self.n_out) if full else rows
        pooled = self._pooled_rows(idx, cost)
        tr = self.params["transform"]
        if tr == "none":
            return idx, pooled, full
        u = np.hstack([pooled, self.b[idx, None]]).astype(np.float64)
        sq = np.einsum("ij,ij->i", u, u)
        cost.macs += u.size
        if full:
            top = math.sqrt(float(sq.max())) if sq.size else 0.0
            self._M = top * L_.MIPS_HEADROOM if top > 0 else 1.0
        elif sq.size and float(sq.max()) > self._M ** 2:
            return self._row_vectors(None, cost)  # a row outgrew M: every row again
        inv = 1.0 / self._M
        if tr == "norm_augment":
            aug = np.sqrt(np.maximum(0.0, 1.0 - sq * inv * inv))
            V = np.hstack([u * inv, aug[:, None]])
            cost.macs += u.size + idx.size
        else:  # sign_alsh
            s = L_.ALSH_U * inv
            n2 = sq * s * s
            n4 = n2 * n2
            V = np.hstack([u * s, (0.5 - n2)[:, None], (0.5 - n4)[:, None]])
            cost.macs += u.size + 2 * idx.size
        return idx, np.ascontiguousarray(V, dtype=self.dtype), full

    def _rehash(self, rows: np.ndarray | None) -> None:
        """Hash ``rows`` (None: all, clearing the tables) and update the tables."""
        cost = L_.HashCost()
        idx, V, full = self._row_vectors(rows, cost)
        codes, c2 = self.hashes.hash_codes(dense=np.ascontiguousarray(V))
        cost += c2
        self.rows_rehashed += self.tables.set_codes(idx, codes, clear=full)
        self.rehash_count += 1
        # traffic: row vectors and hash functions read; codes written, then every table's
        # arrays rewritten (their bytes as stored)
        cost.bytes_moved += V.nbytes + self.hashes.nbytes + 8 * codes.size + self.tables.nbytes
        self._count("rehash", cost)

    def _count(self, phase: str, cost: "L_.HashCost") -> None:
        """Add a hashing cost to ``phase`` (``hash`` or ``rehash``) and its adds/compares."""
        self.macs.add(phase, cost.macs)
        self.macs.add("bytes_moved", cost.bytes_moved)
        self.macs.add(f"{phase}_adds", cost.adds)
        self.macs.add(f"{phase}_compares", cost.compares)

    def new_projections(self) -> None:
        """Draw new hash functions and rebuild every table (counted as ``rehash``)."""
        if self.tables is not None:  # else the first build draws them
            self._new_hashes()
        self.rebuild()

    def rebuild(self) -> None:
        """Re-hash every row now and refill every table (counted as ``rehash``)."""
        if self.dense_mode:
            return
        if self.tables is None:
            self._ensure_tables()
            return
        self._rehash(None)
        self._dirty[:] = False

    # -- selection --------------------------------------------------------------------------------
    def _query_vectors(self, x: _Input, cost: "L_.HashCost"):
        p = self.params
        dense, csr = x.dense, None
        if x.sparse is not None:
            s = x.sparse
            csr = (s.indptr, s.indices, s.values)
        if p["pool"] > 1:
            out = np.empty((x.batch, self.pooled_dim), dtype=self.dtype)
            if csr is not None:
                K.pool_csr(*csr, self.n_in, p["pool"], out)
                cost.adds += int(csr[1].shape[0])
            else:
                K.pool_dense(dense, p["pool"], out)
                cost.adds += x.batch * self.n_in
            cost.macs += x.batch * self.pooled_dim
            dense, csr = out, None
        extra = L_.extra_dims(p["transform"])
        if extra:
            if csr is not None:
                ip, ix, vals = csr
                new_ip = ip + np.arange(ip.size, dtype=np.int64)
                pos = new_ip[1:] - 1  # the last slot of each row holds the bias entry
                new_ix = np.empty(ix.size + x.batch, dtype=np.int32)
                new_v = np.empty(ix.size + x.batch, dtype=self.dtype)
                keep = np.ones(new_ix.size, dtype=bool)
                keep[pos] = False
                new_ix[keep] = ix
                new_v[keep] = vals
                new_ix[pos] = self.pooled_dim
                new_v[pos] = 1.0
                csr = (new_ip, new_ix, new_v)
            else:
                pad = np.zeros((x.batch, extra), dtype=self.dtype)
                pad[:, 0] = 1.0
                dense = np.hstack([dense, pad])
        return (np.ascontiguousarray(dense) if dense is not None else None), csr

    def _choose(self, x, train):
        p = self.params
        if self.dense_mode or (not train and p["inference"] == "dense"):
            return None, None
        if self.tables is None:
            self.clock.push("rehash")
            try:
                self._ensure_tables()
            finally:
                self.clock.pop()
        self.clock.push("hash")
        try:
            cost = L_.HashCost()
            dense, csr = self._query_vectors(x, cost)
            digits, alts, margins, c2 = self.hashes.digits(dense, csr)
            cost += c2
            codes = self.hashes.codes(digits)
            n_probes = p["probes"] if p["policy"] == "multiprobe" else 0
            probes = self.hashes.probes(codes, digits, alts, margins, n_probes)
        finally:
            self.clock.pop()
        # traffic: query vectors and hash functions read, codes written
        nq = dense.size if dense is not None else 2 * csr[1].size
        cost.bytes_moved += self.dtype.itemsize * nq + self.hashes.nbytes + 8 * codes.size
        self._count("hash", cost)
        cnt, idx, qstats = self.tables.query(codes, probes, p["policy"], self.budget)
        # traffic: every table entry visited (a node id) and the chosen ids written
        self.macs.add("bytes_moved", 4 * (int(qstats[0]) + int(cnt.sum())))
        B, k = x.batch, self.budget
        chosen = int(cnt.sum())
        short = cnt < k
        padded = 0
        rows = idx.reshape(B, k)
        if p["shortfall"] == "pad" and short.any():
            rows = rows.copy()
            for q in np.flatnonzero(short):
                have = rows[q, :cnt[q]]
                free = np.setdiff1d(np.arange(self.n_out), have, assume_unique=True)
                extra = self.rng.choice(free, size=k - cnt[q], replace=False)
                rows[q] = np.sort(np.concatenate([have, extra]))
                padded += k - int(cnt[q])
            cnt = np.full(B, k, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
        if indptr[-1] == B * k:  # every query filled its budget: the rows are the CSR
            indices = rows.reshape(-1).astype(np.int32, copy=False)
        else:
            indices = rows[np.arange(k)[None, :] < cnt[:, None]].astype(np.int32)
        pattern = ActiveSet(indptr, indices, np.zeros(indices.size, dtype=self.dtype),
                            self.n_out, check=False)
        add = L_.SelectionStats(queries=B, chosen=chosen, short_queries=int(short.sum()),
                                padded=padded, visited=int(qstats[0]), buckets=int(qstats[1]),
                                empty_buckets=int(qstats[2]))
        if p["quality"]:
            self.clock.push("quality")
            try:
                add = add + self._measure_quality(x, pattern)
            finally:
                self.clock.pop()
        self._stats = self._stats + add
        return pattern, None

    def _measure_quality(self, x: _Input, pattern: ActiveSet) -> "L_.SelectionStats":
        z2d = self._preact_full(x, "quality")
        keys = self._quality_rng.random((x.batch, self.n_out))
        out = np.empty((x.batch, 6), dtype=np.float64)
        K.selection_quality(np.ascontiguousarray(z2d), pattern.indptr, pattern.indices, keys, out)
        has_mass = out[:, 5] > 0
        return L_.SelectionStats(
            quality_queries=x.batch, mass_queries=int(has_mass.sum()),
            recall=float(out[:, 0].sum()), mass=float(out[has_mass, 1].sum()),
            random_recall=float(out[:, 2].sum()), random_mass=float(out[has_mass, 3].sum()),
            topk_mass=float(out[has_mass, 4].sum()))

    def selection_stats(self) -> "L_.SelectionStats":
        """Running sums of what the tables returned (and, with ``quality``, how good it was)."""
        return self._stats

    # -- training hooks -----------------------------------------------------------------------------
    def _backward(self, grad, input_grad: bool):
        gx = super()._backward(grad, input_grad)
        self._dirty |= self.touched
        return gx

    def start_epoch(self, epoch: int, n_batches: int) -> None:
        self.schedule.start_epoch(epoch, n_batches)

    def after_step(self) -> None:
        """Re-hash on schedule (rows updated since the last re-hash, or all)."""
        due = self.schedule.step()
        if self.dense_mode or self.tables is None:
            return
        self.clock.push("rehash")
        try:
            self._after_step(due)
        finally:
            self.clock.pop()

    def _after_step(self, due: bool) -> None:
        npe = self.params["new_projections_every"]
        if npe and self.schedule.steps % npe == 0:
            self.new_projections()
        elif due:
            if self.params["rehash_rows"] == "all":
                self._rehash(None)
            else:
                rows = np.flatnonzero(self._dirty)
                if rows.size:
                    self._rehash(rows)
            self._dirty[:] = False

    def memory_bytes(self) -> dict[str, int]:
        out = super().memory_bytes()
        out["hash_functions"] = self.hashes.nbytes if self.hashes is not None else 0
        out["tables"] = self.tables.nbytes if self.tables is not None else 0
        return out


#: method name -> layer class
LAYERS: dict[str, type[Layer]] = {
    cls.method: cls for cls in (Dense, Dropout, AdaptiveDropout, WTA, TopK, LSH)
}


def make_layer(method: str, n_in: int, n_out: int, *, activation: str = "relu",
               seed: int = 0, dtype="float32", **params) -> Layer:
    """Build a layer by method name; see each class's docstring for its parameters.

    Raises :class:`~lshprof.errors.ConfigError` (a ``ValueError``) listing the valid
    methods or parameters when one is unknown.
    """
    cls = LAYERS.get(method)
    if cls is None:
        raise ConfigError(f"unknown method {method!r}; valid methods: {', '.join(LAYERS)}")
    return cls(n_in, n_out, activation=activation, seed=seed, dtype=dtype, **params)
