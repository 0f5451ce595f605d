# Layers as kinds: the descriptor the engine walks, and the dispatch to each kind's
# forward/backward pair (see layers.pyx for the φ layout).
from cython cimport floating
from nncli._kernels.activations cimport activation_backward
from nncli._kernels.dense cimport dense_forward, dense_backward
from nncli._kernels.kan cimport kan_forward, kan_backward

cpdef enum LayerKind:
    DENSE = 0            # f = h_in·Ωᵀ + β, h = a(f)   (dense.pyx)
    KAN = 1              # f_j = Σ_i φ_ji(h_in,i), a B-spline + silu per edge (kan.pyx);
                         # options: [grid intervals G, spline order k]

cdef struct Layer:
    int kind             # LayerKind
    int activation       # ActivationCode applied to the layer's output
    Py_ssize_t n_in      # width of h_in
    Py_ssize_t n_out     # width of f and h
    Py_ssize_t offset    # start of the layer's slice of φ (and of ∂L/∂φ)
    Py_ssize_t n_params  # length of that slice
    int options[4]       # kind-specific shape parameters (e.g. a spline's grid size and
                         # order); unused by dense
    void *work           # kind-specific scratch (layers.work_size values), or NULL
    void *data           # kind-specific data that is not trained (a KAN layer's knots), or NULL
    Py_ssize_t capacity  # rows the scratch holds
    double reals[2]      # kind-specific real parameters (a KAN layer's L1 and entropy penalties)

# The dispatch, inline so that the engine calls each kind's kernels directly.
cdef inline void layer_forward(const Layer *layer,
                               floating *f,            # OUT  B×n_out pre-activations f_k
                               floating *h,            # OUT  B×n_out a(f_k) (is f for identity)
                               const floating *h_in,   # IN   B×n_in
                               const floating *phi,    # IN   the layer's slice of φ
                               Py_ssize_t B, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_in = layer.n_in, n_out = layer.n_out
    if layer.kind == DENSE:
        dense_forward(f, h, h_in, phi, phi + n_out * n_in, B, n_in, n_out, layer.activation,
                      n_threads)
    elif layer.kind == KAN:
        kan_forward(f, h, h_in, phi, <const floating *>layer.data, <floating *>layer.work,
                    B, n_in, n_out, layer.capacity, layer.options[0], layer.options[1],
                    layer.activation, n_threads)


cdef inline void layer_backward(const Layer *layer,
                                floating *dh_in,       # OUT  B×n_in ∂L/∂h_in, or NULL (first)
                                floating *grad,        # OUT  the layer's slice of ∂L/∂φ
                                floating *d,           # INOUT B×n_out ∂L/∂h in, δ = ∂L/∂f out
                                const floating *f,     # IN   B×n_out f_k from the forward pass
                                const floating *h,     # IN   B×n_out a(f_k)
                                const floating *h_in,  # IN   B×n_in
                                const floating *phi,   # IN   the layer's slice of φ
                                Py_ssize_t B, int n_threads) noexcept nogil:
    cdef Py_ssize_t n_in = layer.n_in, n_out = layer.n_out
    # δ_k = ∂L/∂h_k ⊙ a′(f_k): the activation belongs to the layer, whatever its kind.
    activation_backward(d, f, h, B * n_out, layer.activation)
    if layer.kind == DENSE:
        dense_backward(dh_in, grad, grad + n_out * n_in, d, h_in, phi, B, n_in, n_out,
                       n_threads)
    elif layer.kind == KAN:
        kan_backward(dh_in, grad, d, h_in, phi, <const floating *>layer.data,
                     <floating *>layer.work, B, n_in, n_out, layer.capacity,
                     layer.options[0], layer.options[1], layer.reals[0], layer.reals[1],
                     n_threads)
