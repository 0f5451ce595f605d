"""The fused training loop: one call per epoch, no Python and no allocation inside it.

Shapes, with B the batch size (≤ the buffer capacity), L layers, n_k the width of layer k
(n_0 inputs, n_L outputs):
    xb  B×n_0    the gathered input rows          yb  B×n_L   the gathered targets
    F_k B×n_k+1  pre-activations of layer k       H_k B×n_k+1 a_k(F_k) (H_k is F_k for identity)
    D0, D1       B×max(n) ping-pong buffers for δ = ∂L/∂f and ∂L/∂h
    M_k, O_k     B×n_k+1  with dropout on layer k's outputs: its mask and H_k ⊙ M_k, which
                          the next layer reads (O_k is H_k where layer k has no dropout)
φ and ∂L/∂φ are flat arrays of P numbers, one slice per layer; layers.layout says where.

Each step walks: gather → forward (layer_forward per layer) → loss and ∂L/∂z → backward
(layer_backward per layer, from the last: δ through a′, then ∂L/∂φ_k and ∂L/∂h_{k−1})
→ optim_step over φ. Dropout (set_dropout) masks hidden outputs in training calls only:
train_epoch, and batch_gradient/loss_and_gradient when told the step the masks are for. The loop knows layers only through their Layer descriptors, so a new
layer kind does not touch it. The Engine owns the buffers (allocated once per batch
capacity) and hands raw pointers to fused-type kernels; dtype is chosen once per call.
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint64_t

from nncli._kernels.activations cimport IDENTITY
from nncli._kernels.dropout cimport DropoutCall, dropout_forward, dropout_backward
from nncli._kernels.losses cimport loss_forward_backward, loss_output_transform
from nncli._kernels.layers cimport Layer, layer_forward, layer_backward, DENSE
from nncli._kernels.layers import data_shape, layout, work_size
from nncli._kernels.optim cimport optim_step, optim_config, OptimConfig
from nncli._kernels.gemm cimport run_chunks

cnp.import_array()


cdef struct Net:
    int L                   # number of layers
    int loss                # LossCode
    int n_threads
    Py_ssize_t P            # number of parameters
    Py_ssize_t n_in         # n_0
    Py_ssize_t n_out        # n_L
    Layer *layers           # L descriptors: kind, activation, widths, slice of φ
    void *phi
    void *grad
    void *xb
    void *yb
    void **F                # L buffers
    void **H                # L buffers (H[k] == F[k] for identity activations)
    void *d0
    void *d1
    double *rate            # L dropout rates of the layers' outputs, or NULL: no dropout
    void **M                # L masks (set_dropout; NULL where the rate is 0)
    void **O                # L inputs of the next layer: H[k] ⊙ M[k], or H[k] (rate 0)
    uint64_t drop_seed


cdef struct Gather:           # rows idx[r] of src to row r of dst, in chunks of rows
    char *dst
    const char *src
    const int64_t *idx
    Py_ssize_t rows, row_bytes, per_chunk


cdef void gather_chunk(void *ctx, long c) noexcept nogil:
    cdef const Gather *g = <const Gather *>ctx
    cdef Py_ssize_t r, r1 = min(g.rows, (c + 1) * g.per_chunk)
    for r in range(c * g.per_chunk, r1):
        memcpy(g.dst + r * g.row_bytes, g.src + g.idx[r] * g.row_bytes, g.row_bytes)


# Batches of at least this many bytes are gathered on the engine's threads (the mnist
# benchmark's 128 rows of 784 numbers: 3 % of a two-thread epoch on one thread).
cdef Py_ssize_t GATHER_PAR_BYTES = 1 << 17


cdef inline void gather_rows(floating *dst, const floating *src, const int64_t *idx,
                             Py_ssize_t B, Py_ssize_t width, int n_threads) noexcept nogil:
    cdef Gather g
    g.dst = <char *>dst
    g.src = <const char *>src
    g.idx = idx
    g.rows = B
    g.row_bytes = width * sizeof(floating)
    if n_threads <= 1 or B < 2 or B * g.row_bytes < GATHER_PAR_BYTES:
        g.per_chunk = B
        gather_chunk(&g, 0)
        return
    g.per_chunk = (B + n_threads - 1) // n_threads
    run_chunks(n_threads, (B + g.per_chunk - 1) // g.per_chunk, gather_chunk, &g)


cdef inline void *layer_input(Net *net, int k, bint dropped) noexcept nogil:
    """What layer k read in the forward pass: the batch, or the layer below's outputs
    (after its dropout, in a pass with dropout)."""
    if k == 0:
        return net.xb
    return net.O[k - 1] if dropped else net.H[k - 1]


cdef void net_forward(Net *net, floating *phi, Py_ssize_t B,
                      const DropoutCall *drop) noexcept nogil:
    """Forward pass over the B rows in net.xb; keeps every F_k and H_k (and with `drop`,
    not NULL in training calls only, the dropout masks M_k and dropped outputs O_k)."""
    cdef int k
    cdef const Layer *layer
    cdef const floating *h_in = <floating *>net.xb
    for k in range(net.L):
        layer = &net.layers[k]
        layer_forward(layer, <floating *>net.F[k], <floating *>net.H[k], h_in,
                      phi + layer.offset, B, net.n_threads)
        h_in = <floating *>net.H[k]
        if drop != NULL and net.rate[k] > 0:
            dropout_forward(<floating *>net.O[k], <floating *>net.M[k], h_in, B, layer.n_out,
                            net.rate[k], k, drop)
            h_in = <floating *>net.O[k]


cdef double net_backward(Net *net, floating *phi, Py_ssize_t B,
                         const DropoutCall *drop) noexcept nogil:
    """Loss of the batch (sum over rows) and ∂(mean loss)/∂φ into net.grad (through the
    forward pass's dropout masks when it had `drop`)."""
    cdef int k, L = net.L
    cdef const Layer *layer
    cdef floating *grad = <floating *>net.grad
    cdef floating *delta = <floating *>net.d0
    cdef floating *other = <floating *>net.d1
    cdef floating *tmp
    cdef double total
    # ∂L/∂h_L from the loss, then each layer turns its ∂L/∂h into ∂L/∂φ_k and ∂L/∂h_{k−1}.
    total = loss_forward_backward(delta, <floating *>net.H[L - 1], <floating *>net.yb,
                                  B, net.n_out, net.loss)
    for k in range(L - 1, -1, -1):
        layer = &net.layers[k]
        if drop != NULL and net.rate[k] > 0:   # ∂L/∂O_k → ∂L/∂H_k
            dropout_backward(delta, <floating *>net.M[k], B * layer.n_out)
        layer_backward(layer, other if k > 0 else NULL, grad + layer.offset, delta,
                       <floating *>net.F[k], <floating *>net.H[k],
                       <floating *>layer_input(net, k, drop != NULL),
                       phi + layer.offset, B, net.n_threads)
        tmp = delta
        delta = other
        other = tmp
    return total


cdef double run_epoch(Net *net, floating *phi, const floating *X, const floating *Y,
                      const int64_t *idx, Py_ssize_t N, Py_ssize_t batch,
                      floating *s1, floating *s2, OptimConfig *cfg,
                      DropoutCall *drop) noexcept nogil:
    """One pass over idx in batches; returns the mean training loss (NaN/inf stops early).
    With `drop`, each batch's masks are those of the update it makes."""
    cdef Py_ssize_t start, B, n_in = net.n_in, m = net.n_out
    cdef double total = 0.0
    start = 0
    while start < N:
        B = batch if start + batch <= N else N - start
        gather_rows(<floating *>net.xb, X, idx + start, B, n_in, net.n_threads)
        gather_rows(<floating *>net.yb, Y, idx + start, B, m, net.n_threads)
        if drop != NULL:
            drop.step = cfg.step
        net_forward(net, phi, B, drop)
        total += net_backward(net, phi, B, drop)
        if not isfinite(total):
            return total
        optim_step(phi, <floating *>net.grad, s1, s2, net.P, cfg)
        start += B
    return total / N


cdef double batch_gradient(Net *net, floating *phi, const floating *X, const floating *Y,
                           const int64_t *idx, Py_ssize_t B, double scale,
                           DropoutCall *drop) noexcept nogil:
    """Data-parallel training's part of one global batch: the summed loss of the B rows idx,
    and scale·∂(their mean loss)/∂φ in net.grad (all zero for B = 0). The caller sums the
    ranks' gradients (one Allreduce) and applies the update: the hook between backward and
    optim_step that run_epoch, kept free of it, does not have."""
    cdef floating *grad = <floating *>net.grad
    cdef floating f = <floating>scale
    cdef Py_ssize_t i
    cdef double total = 0.0
    if B == 0:
        memset(grad, 0, net.P * sizeof(floating))
        return 0.0
    gather_rows(<floating *>net.xb, X, idx, B, net.n_in, net.n_threads)
    gather_rows(<floating *>net.yb, Y, idx, B, net.n_out, net.n_threads)
    net_forward(net, phi, B, drop)
    total = net_backward(net, phi, B, drop)
    if scale != 1.0:
        for i in range(net.P):
            grad[i] *= f
    return total


cdef double run_eval(Net *net, floating *phi, const floating *X, const floating *Y,
                     floating *out, Py_ssize_t N, Py_ssize_t cap, bint transform) noexcept nogil:
    """Forward over X in chunks; copies outputs to `out` (if not NULL) and returns the
    summed loss against Y (if not NULL)."""
    cdef Py_ssize_t start = 0, B, n_in = net.n_in, m = net.n_out
    cdef double total = 0.0
    cdef floating *z
    while start < N:
        B = cap if start + cap <= N else N - start
        memcpy(net.xb, X + start * n_in, B * n_in * sizeof(floating))
        net_forward(net, phi, B, NULL)
        z = <floating *>net.H[net.L - 1]
        if Y != NULL:
            total += loss_forward_backward(<floating *>NULL, z, Y + start * m, B, m, net.loss)
        if out != NULL:
            memcpy(out + start * m, z, B * m * sizeof(floating))
            if transform:
                loss_output_transform(out + start * m, B, m, net.loss)
        start += B
    return total


cdef inline void *data_of(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


cdef class Engine:
    """Owns the per-batch buffers of one network and runs its kernels.

    Engine(sizes, activations, loss, phi, grad, capacity, n_threads=1, kinds=None): `phi` and
    `grad` are the network's flat arrays (float32 or float64, length P), used in place;
    `kinds` holds one LayerKind code per layer (all dense when None), `options` each layer's
    kind options (up to 4 ints, None for dense) and `data` each layer's untrained data (a KAN
    layer's knots, an array of layers.data_shape in phi's dtype, used in place; None for dense),
    `reals` each layer's real parameters (up to 2 floats: a KAN layer's penalties; or None).
    Dropout is off until set_dropout.
    """
    cdef Net net
    cdef readonly object dtype
    cdef readonly Py_ssize_t capacity
    cdef bint is_double
    cdef object _keep          # Python references that keep the buffers alive
    cdef object _drop_keep     # and the dropout buffers (set_dropout)

    def __cinit__(self):
        self.net.layers = NULL
        self.net.F = NULL
        self.net.H = NULL
        self.net.rate = NULL
        self.net.M = NULL
        self.net.O = NULL

    def __init__(self, sizes, activations, int loss, cnp.ndarray phi, cnp.ndarray grad,
                 Py_ssize_t capacity, int n_threads=1, kinds=None, options=None, data=None,
                 reals=None):
        cdef int L = len(sizes) - 1, k
        cdef Layer *layer
        if L < 1 or len(activations) != L:
            raise ValueError("need at least two sizes and one activation per layer")
        if phi.dtype != grad.dtype or phi.dtype not in (np.float32, np.float64):
            raise ValueError("phi and grad must share a float32 or float64 dtype")
        if not (phi.flags.c_contiguous and grad.flags.c_contiguous and phi.ndim == 1):
            raise ValueError("phi and grad must be contiguous 1-D arrays")
        kinds = [DENSE] * L if kinds is None else list(kinds)
        options = [None] * L if options is None else list(options)
        data = [None] * L if data is None else list(data)
        slices = layout(sizes, kinds, options)
        P = sum(count for _, count in slices)
        if phi.shape[0] != P or grad.shape[0] != P:
            raise ValueError(f"phi has {phi.shape[0]} values, the layers need {P}")
        self.dtype = phi.dtype
        self.is_double = phi.dtype == np.float64
        self.capacity = max(1, capacity)
        cap = self.capacity
        keep = [phi, grad]
        def buf(n):
            a = np.zeros(max(1, n), dtype=self.dtype)
            keep.append(a)
            return a
        self.net.L = L
        self.net.loss = loss
        self.net.n_threads = max(1, n_threads)
        self.net.P = P
        self.net.n_in = sizes[0]
        self.net.n_out = sizes[L]
        self.net.layers = <Layer *>calloc(L, sizeof(Layer))
        self.net.F = <void **>calloc(L, sizeof(void *))
        self.net.H = <void **>calloc(L, sizeof(void *))
        self.net.M = <void **>calloc(L, sizeof(void *))
        self.net.O = <void **>calloc(L, sizeof(void *))
        if (self.net.layers == NULL or self.net.F == NULL or self.net.H == NULL
                or self.net.M == NULL or self.net.O == NULL):
            raise MemoryError()
        for k in range(L):
            layer = &self.net.layers[k]
            layer.kind = kinds[k]
            layer.activation = activations[k]
            layer.n_in = sizes[k]
            layer.n_out = sizes[k + 1]
            layer.offset = slices[k][0]
            layer.n_params = slices[k][1]
            for i, v in enumerate((options[k] or ())[:4]):
                layer.options[i] = v
            for i, v in enumerate(((reals or [None] * L)[k] or ())[:2]):
                layer.reals[i] = v
            scratch = work_size(kinds[k], sizes[k], sizes[k + 1], cap, options[k])
            layer.work = data_of(buf(scratch)) if scratch else NULL
            layer.capacity = cap
            layer.data = self._layer_data(data[k], data_shape(kinds[k], sizes[k], sizes[k + 1],
                                                              options[k]), k, keep)
            self.net.F[k] = data_of(buf(cap * sizes[k + 1]))
            if activations[k] == IDENTITY:
                self.net.H[k] = self.net.F[k]
            else:
                self.net.H[k] = data_of(buf(cap * sizes[k + 1]))
            self.net.O[k] = self.net.H[k]
        self.net.phi = data_of(phi)
        self.net.grad = data_of(grad)
        self.net.xb = data_of(buf(cap * sizes[0]))
        self.net.yb = data_of(buf(cap * sizes[L]))
        self.net.d0 = data_of(buf(cap * max(sizes)))
        self.net.d1 = data_of(buf(cap * max(sizes)))
        self._keep = keep

    cdef void *_layer_data(self, a, shape, int k, list keep) except? NULL:
        if shape is None:
            return NULL
        if not (isinstance(a, np.ndarray) and a.dtype == self.dtype and a.shape == tuple(shape)
                and a.flags.c_contiguous):
            raise ValueError(f"layer {k + 1} needs its data as a C-contiguous {self.dtype} "
                             f"array of shape {tuple(shape)}")
        keep.append(a)
        return data_of(a)

    def __dealloc__(self):
        free(self.net.layers)
        free(self.net.F)
        free(self.net.H)
        free(self.net.rate)
        free(self.net.M)
        free(self.net.O)

    def set_dropout(self, rates=None, seed=0):
        """Inverted dropout on the layers' outputs in training calls (nncli._kernels.dropout):
        rates[k] in [0, 1) for layer k (the output layer's must be 0), masks keyed by
        `seed` (an unsigned 64-bit integer); None or all zero: off. The masks and the
        dropped outputs get their buffers here, once, for batches up to the capacity."""
        cdef Net *net = &self.net
        cdef int k
        rates = None if rates is None or not any(rates) else [float(p) for p in rates]
        if rates is not None:
            if len(rates) != net.L or rates[net.L - 1] != 0:
                raise ValueError(f"dropout needs {net.L} rates, the output layer's 0")
            if not all(0 <= p < 1 for p in rates):
                raise ValueError("dropout rates must lie in [0, 1)")
        if rates == self.dropout and (rates is None or net.drop_seed == <uint64_t>int(seed)):
            return   # as set (a caller training one epoch per call allocates nothing)
        free(net.rate)
        net.rate = NULL
        self._drop_keep = []
        for k in range(net.L):
            net.M[k] = NULL
            net.O[k] = net.H[k]
        if rates is None:
            return
        net.rate = <double *>calloc(net.L, sizeof(double))
        if net.rate == NULL:
            raise MemoryError()
        net.drop_seed = <uint64_t>int(seed)
        for k in range(net.L):
            net.rate[k] = rates[k]
            if rates[k] > 0:
                m = np.zeros(self.capacity * net.layers[k].n_out, dtype=self.dtype)
                o = np.zeros_like(m)
                self._drop_keep += [m, o]
                net.M[k] = data_of(m)
                net.O[k] = data_of(o)

    @property
    def dropout(self):
        """Each layer's dropout rate, or None (off)."""
        if self.net.rate == NULL:
            return None
        return [self.net.rate[k] for k in range(self.net.L)]

    cdef DropoutCall *_dropout_call(self, DropoutCall *call, step):
        """`call` filled for masks at update `step` (rows in batch order), or NULL: no
        dropout set, or no step (the loss itself, not a training step's)."""
        if self.net.rate == NULL or step is None:
            return NULL
        call.seed = self.net.drop_seed
        call.step = step
        call.rows = NULL
        return call

    @property
    def n_threads(self):
        return self.net.n_threads

    @n_threads.setter
    def n_threads(self, int n):
        self.net.n_threads = max(1, n)

    cdef void _check(self, cnp.ndarray a, Py_ssize_t width, str name) except *:
        if a.dtype != self.dtype:
            raise ValueError(f"{name} must be {self.dtype}, got {a.dtype}")
        if a.ndim != 2 or not a.flags.c_contiguous or a.shape[1] != width:
            raise ValueError(f"{name} must be a C-contiguous (N, {width}) array")

    cdef void _check_rows(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray idx) except *:
        """X and Y fit the network and each other; idx is a contiguous int64 array (its
        values are checked against X by the caller, once it knows there are any)."""
        self._check(X, self.net.n_in, "X")
        self._check(Y, self.net.n_out, "Y")
        if X.shape[0] != Y.shape[0]:
            raise ValueError("X and Y have different numbers of rows")
        if idx.dtype != np.int64 or idx.ndim != 1 or not idx.flags.c_contiguous:
            raise ValueError("idx must be a contiguous int64 array")

    def train_epoch(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray idx, Py_ssize_t batch_size,
                    cnp.ndarray s1, cnp.ndarray s2, int code, double lr, double momentum,
                    double beta2, double eps, double weight_decay, double clip_norm, long step):
        """Train one epoch over the rows idx (in that order). Returns (mean loss, step)."""
        cdef Net *net = &self.net
        self._check_rows(X, Y, idx)
        if batch_size < 1 or batch_size > self.capacity:
            raise ValueError(f"batch size must be in 1..{self.capacity}")
        for s in (s1, s2):
            if s.dtype != self.dtype or s.ndim != 1 or s.shape[0] != net.P or not s.flags.c_contiguous:
                raise ValueError("optimiser states must be contiguous arrays like phi")
        cdef Py_ssize_t N = idx.shape[0]
        if N and (idx.min() < 0 or idx.max() >= X.shape[0]):
            raise ValueError("idx holds a row number outside X")
        cdef OptimConfig cfg = optim_config(code, lr, momentum, beta2, eps, weight_decay,
                                            clip_norm, step)
        cfg.n_threads = net.n_threads
        cdef void *px = data_of(X)
        cdef void *py = data_of(Y)
        cdef const int64_t *pidx = <int64_t *>data_of(idx)
        cdef void *p1 = data_of(s1)
        cdef void *p2 = data_of(s2)
        cdef double loss = 0.0
        cdef DropoutCall call
        cdef DropoutCall *drop = self._dropout_call(&call, step)
        if N == 0:
            return float("nan"), step
        with nogil:
            if self.is_double:
                loss = run_epoch(net, <double *>net.phi, <double *>px, <double *>py, pidx, N,
                                 batch_size, <double *>p1, <double *>p2, &cfg, drop)
            else:
                loss = run_epoch(net, <float *>net.phi, <float *>px, <float *>py, pidx, N,
                                 batch_size, <float *>p1, <float *>p2, &cfg, drop)
        return loss, cfg.step

    def batch_gradient(self, cnp.ndarray X, cnp.ndarray Y, cnp.ndarray idx, double scale=1.0,
                       dropout_step=None, cnp.ndarray dropout_rows=None):
        """Summed loss of the rows idx of X, Y; scale·∂(their mean loss)/∂φ into the grad
        array (zeros when idx is empty). One part of a global batch (nncli.distributed).
        With dropout set and `dropout_step` given: the masks of update dropout_step, for
        rows at the places `dropout_rows` (int64, one per row of idx) of the global batch."""
        cdef Net *net = &self.net
        self._check_rows(X, Y, idx)
        cdef Py_ssize_t B = idx.shape[0]
        if B > self.capacity:
            raise ValueError(f"at most {self.capacity} rows per call")
        if B and (idx.min() < 0 or idx.max() >= X.shape[0]):
            raise ValueError("idx holds a row number outside X")
        cdef void *px = data_of(X)
        cdef void *py = data_of(Y)
        cdef const int64_t *pidx = <int64_t *>data_of(idx)
        cdef double total
        cdef DropoutCall call
        cdef DropoutCall *drop = self._dropout_call(&call, dropout_step)
        if drop != NULL:
            if not (dropout_rows is not None and dropout_rows.dtype == np.int64
                    and dropout_rows.ndim == 1 and dropout_rows.flags.c_contiguous
                    and dropout_rows.shape[0] == B):
                raise ValueError("dropout_rows: a contiguous int64 array, one place per row")
            drop.rows = <int64_t *>data_of(dropout_rows) if B else NULL
        with nogil:
            if self.is_double:
                total = batch_gradient(net, <double *>net.phi, <double *>px, <double *>py, pidx,
                                       B, scale, drop)
            else:
                total = batch_gradient(net, <float *>net.phi, <float *>px, <float *>py, pidx,
                                       B, scale, drop)
        return total

    def evaluate(self, cnp.ndarray X, cnp.ndarray Y=None, bint outputs=False, bint transform=True):
        """(mean loss or None, outputs or None) of the network on X (and Y), in chunks."""
        cdef Net *net = &self.net
        self._check(X, net.n_in, "X")
        if Y is not None:
            self._check(Y, net.n_out, "Y")
            if Y.shape[0] != X.shape[0]:
                raise ValueError("X and Y have different numbers of rows")
        cdef Py_ssize_t N = X.shape[0]
        out = np.empty((N, net.n_out), dtype=self.dtype) if outputs else None
        cdef void *px = data_of(X)
        cdef void *py = data_of(Y) if Y is not None else NULL
        cdef void *po = data_of(out) if out is not None else NULL
        cdef double total = 0.0
        if N:
            with nogil:
                if self.is_double:
                    total = run_eval(net, <double *>net.phi, <double *>px, <double *>py,
                                     <double *>po, N, self.capacity, transform)
                else:
                    total = run_eval(net, <float *>net.phi, <float *>px, <float *>py,
                                     <float *>po, N, self.capacity, transform)
        loss = (total / N if N else float("nan")) if Y is not None else None
        return loss, out

    def loss_and_gradient(self, cnp.ndarray X, cnp.ndarray Y, dropout_step=None):
        """Mean loss over all rows of X; ∂L/∂φ is written into the grad array. One batch:
        the capacity must be at least the number of rows. With dropout set and
        `dropout_step` given: through the masks of that update for rows 0..N−1 (a fixed
        mask: what a gradient check of dropout needs)."""
        cdef Net *net = &self.net
        self._check(X, net.n_in, "X")
        self._check(Y, net.n_out, "Y")
        cdef Py_ssize_t N = X.shape[0]
        if N != Y.shape[0] or N < 1 or N > self.capacity:
            raise ValueError(f"need 1..{self.capacity} rows in X and Y alike")
        cdef void *px = data_of(X)
        cdef void *py = data_of(Y)
        cdef size_t itemsize = self.dtype.itemsize
        cdef double total
        cdef DropoutCall call
        cdef DropoutCall *drop = self._dropout_call(&call, dropout_step)
        with nogil:
            memcpy(net.xb, px, N * net.n_in * itemsize)
            memcpy(net.yb, py, N * net.n_out * itemsize)
            if self.is_double:
                net_forward(net, <double *>net.phi, N, drop)
                total = net_backward(net, <double *>net.phi, N, drop)
            else:
                net_forward(net, <float *>net.phi, N, drop)
                total = net_backward(net, <float *>net.phi, N, drop)
        return total / N
