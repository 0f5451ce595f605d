# A fully connected layer: forward f = h·Ωᵀ + β, h' = a(f); backward through it.
from cython cimport floating

cdef void dense_forward(floating *f,          # OUT  B×n_out pre-activations
                        floating *h_out,      # OUT  B×n_out a(f) (may be f for identity)
                        const floating *h_in, # IN   B×n_in
                        const floating *W,    # IN   n_out×n_in (Ω, row-major)
                        const floating *b,    # IN   n_out (β)
                        Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out,
                        int activation, int n_threads) noexcept nogil

cdef void dense_backward(floating *dh_in,        # OUT  B×n_in: dL/dh_in, or NULL (first layer)
                         floating *dW,           # OUT  n_out×n_in: dL/dΩ (overwritten)
                         floating *db,           # OUT  n_out: dL/dβ (overwritten)
                         const floating *df,     # IN   B×n_out: dL/df of this layer
                         const floating *h_in,   # IN   B×n_in
                         const floating *W,      # IN   n_out×n_in
                         Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out,
                         int n_threads) noexcept nogil
