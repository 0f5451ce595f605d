# Losses over a batch of network outputs z (B×m) and targets y (B×m), with dL/dz.
from cython cimport floating

cpdef enum LossCode:
    MSE = 0
    MAE = 1
    HUBER = 2
    CROSS_ENTROPY = 3     # softmax fused with cross-entropy; y one-hot (or a distribution)
    BCE = 4               # sigmoid fused with binary cross-entropy; y in [0, 1]

# Returns Σ over rows of the per-row loss ℓ_r (in double); the batch loss is that / B.
# When dz is not NULL, writes dz = ∂(Σ ℓ_r / B)/∂z, the gradient of the batch mean.
# ℓ_r averages over the m outputs for mse/mae/huber/bce and sums over classes for
# cross-entropy (it is one distribution).
cdef double loss_forward_backward(floating *dz,          # OUT  B×m, or NULL
                                  const floating *z,     # IN   B×m network outputs (logits)
                                  const floating *y,     # IN   B×m targets
                                  Py_ssize_t B, Py_ssize_t m, int code) noexcept nogil

# Turns raw outputs into predictions in place: softmax rows (cross-entropy), sigmoid (bce).
cdef void loss_output_transform(floating *z, Py_ssize_t B, Py_ssize_t m, int code) noexcept nogil
