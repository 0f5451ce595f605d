# The Kolmogorov–Arnold layer kind: B-spline bases by Cox–de Boor, forward as one GEMM,
# backward (see kan.pyx for the maths and the φ layout).
from cython cimport floating

# Highest spline order the fixed-size basis buffers hold.
cdef enum:
    KAN_MAX_ORDER = 7

cdef Py_ssize_t spline_bases(floating x,
                             const floating *t,      # IN   G+2k+1 knots, increasing
                             int G, int k,
                             floating *N,            # OUT  k+1 values B_{s−k..s,k}(x)
                             floating *dN            # OUT  their derivatives d/dx, or NULL
                             ) noexcept nogil

cdef void kan_forward(floating *f,            # OUT  B×n_out outputs y (before the activation)
                      floating *h_out,        # OUT  B×n_out a(y) (may be f for identity)
                      const floating *h_in,   # IN   B×n_in
                      const floating *phi,    # IN   the layer's slice of φ: wb, ws, c
                      const floating *knots,  # IN   n_in×(G+2k+1)
                      floating *work,         # OUT  kan_work_size(...) scratch; kept for backward
                      Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity,
                      int G, int k, int activation, int n_threads) noexcept nogil

cdef void kan_backward(floating *dh_in,       # OUT  B×n_in ∂L/∂h_in, or NULL (first layer)
                       floating *grad,        # OUT  the layer's slice of ∂L/∂φ (overwritten)
                       const floating *d,     # IN   B×n_out δ = ∂L/∂y
                       const floating *h_in,  # IN   B×n_in
                       const floating *phi,   # IN   the layer's slice of φ
                       const floating *knots, # IN   n_in×(G+2k+1)
                       floating *work,        # INOUT the scratch the forward pass filled
                       Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity,
                       int G, int k, double l1, double entropy, int n_threads) noexcept nogil
