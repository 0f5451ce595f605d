"""The Kolmogorov–Arnold (KAN) layer kind: a learnable function of one variable on every edge.

Output j of a layer with n_in inputs and n_out outputs (arXiv 2404.19756 eq. 2.10–2.12):

    y_j = Σ_i φ_ji(x_i),   φ_ji(x) = wb_ji·silu(x) + ws_ji·Σ_c c_jic·B_c(x_i)

B_c (c = 0..G+k−1) are the B-splines of order k on input i's knots t_0 < … < t_{G+2k}: G
intervals over the grid range [t_k, t_{G+k}] plus k knots on each side. The layer's slice of
φ holds, in this order: wb (n_out×n_in), ws (n_out×n_in), c (n_out×n_in×(G+k)), row-major.
The knots are not trained: they come with the layer (Layer.data), not in φ.

Forward, as efficient-kan does it, is ONE product: with A = [silu(X) | Bflat(X)] (B × n_in(G+k+1),
Bflat's column n_in + i(G+k) + c holding B_c(x_i)) and W = [wb | ws⊙c] (n_out × n_in(G+k+1)),
    Y = A·Wᵀ                                                           (gemm A·Bᵀ)
Backward, with δ = ∂L/∂Y:
    ∂L/∂W = δᵀ·A                                                       (gemm Aᵀ·B)
    ∂L/∂wb_ji = ∂L/∂W_j,i;  ∂L/∂c_jic = ∂L/∂W_j,(i,c)·ws_ji;  ∂L/∂ws_ji = Σ_c ∂L/∂W_j,(i,c)·c_jic
    M = δ·W                                                            (gemm A·B)
    ∂L/∂x_i = M_i·silu′(x_i) + Σ_c M_(i,c)·B′_c(x_i)
Only k+1 bases are non-zero at any x, so the bases (and, in the backward pass, their
derivatives) come from the triangular Cox–de Boor recursion on the knot span of x
(The NURBS Book, A2.2), k(k+1) operations instead of a dense recursion over all G+2k.

Outside the grid range the spline is extended as a constant: x is clamped to [t_k, t_{G+k}]
for the spline term (so the edge keeps its boundary value and B′ = 0 there), while the silu
term goes on; no input, however far, makes a NaN. (pykan and efficient-kan instead let the
spline fade to 0 across the k outer intervals, which makes the function of a far input
depend on the arbitrary outer knots.) Zero-length knot intervals give 0, not 0/0.

Sparsity penalty (paper eq. 2.17–2.20), when l1 or entropy > 0: with the edge's L1 norm over
the batch a_ji = mean_r |φ_ji(x_ri)|, T = Σ a and p = a/T,
    R = l1·Σ a_ji + entropy·S,   S = −Σ p_ji ln p_ji
is added to the batch's loss: ∂R/∂a_ji = l1 + entropy·(−ln p_ji − S)/T, and
∂a_ji/∂θ = mean_r sign(φ_ji(x_ri))·∂φ_ji(x_ri)/∂θ, for W's entries of the edge and for x_ri
(so δ to the layer below carries it too). It costs two passes of n_in·n_out·(k+2) per row.
(pykan's default 'edge_forward_spline_n' normalises a by the inputs' spread; this is the
paper's formula. The loss the engine reports is the prediction loss, without R.)

Scratch (Layer.work, kan_work_size values): W and ∂L/∂W (n_out × n_in(G+k+1) each), a (then
∂R/∂a over B, in place; n_out × n_in), then A (capacity × n_in(G+k+1)), kept from the forward
pass for the backward one, where M = δ·W then takes its place.
"""
import numpy as np
from cython cimport floating
from libc.math cimport log, fabs
from nncli._kernels.gemm cimport gemm
from nncli._kernels.activations cimport activation_forward, stable_sigmoid, IDENTITY


def kan_work_size(Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity, int G, int k):
    """Scratch values a KAN layer needs for batches of up to `capacity` rows."""
    cdef Py_ssize_t width = n_in * (G + k + 1)
    return 2 * n_out * width + n_out * n_in + capacity * width


cdef inline Py_ssize_t find_span(floating x, const floating *t, int G, int k) noexcept nogil:
    """s in k..G+k−1 with t_s ≤ x < t_{s+1} (x already in [t_k, t_{G+k}]; the last
    interval is closed on the right)."""
    cdef Py_ssize_t lo = k, hi = G + k - 1, mid
    while lo < hi:           # the largest s with t_s ≤ x
        mid = (lo + hi + 1) // 2
        if t[mid] <= x:
            lo = mid
        else:
            hi = mid - 1
    return lo


cdef Py_ssize_t spline_bases(floating x, const floating *t, int G, int k,
                             floating *N, floating *dN) noexcept nogil:
    """B_{s−k+r,k}(x) into N[r], r = 0..k, and (if dN) their derivatives; returns s.

    Cox–de Boor, triangular: order j from order j−1 on the span's j+1 non-zero bases.
    The derivative of order k from order k−1:
        B′_{i,k} = k/(t_{i+k} − t_i)·B_{i,k−1} − k/(t_{i+k+1} − t_{i+1})·B_{i+1,k−1}."""
    cdef floating left[KAN_MAX_ORDER + 1]
    cdef floating right[KAN_MAX_ORDER + 1]
    cdef floating prev[KAN_MAX_ORDER + 1]
    cdef floating lo = t[k], hi = t[G + k], saved, temp, den, a, b
    cdef bint outside = x < lo or x > hi or x != x
    cdef Py_ssize_t s, i
    cdef int j, r
    if x != x:
        x = lo               # NaN in, a defined value out (the loss will show the NaN)
    elif x < lo:
        x = lo
    elif x > hi:
        x = hi
    s = find_span(x, t, G, k)
    N[0] = 1
    for j in range(1, k + 1):
        left[j] = x - t[s + 1 - j]
        right[j] = t[s + j] - x
        if j == k and dN != NULL:
            for r in range(k):
                prev[r] = N[r]
        saved = 0
        for r in range(j):
            den = right[r + 1] + left[j - r]
            temp = N[r] / den if den != 0 else 0
            N[r] = saved + right[r + 1] * temp
            saved = left[j - r] * temp
        N[j] = saved
    if dN != NULL:
        for r in range(k + 1):
            if outside or k == 0:
                dN[r] = 0
                continue
            i = s - k + r
            a = 0
            b = 0
            if r >= 1 and t[i + k] != t[i]:
                a = prev[r - 1] / (t[i + k] - t[i])
            if r < k and t[i + k + 1] != t[i + 1]:
                b = prev[r] / (t[i + k + 1] - t[i + 1])
            dN[r] = k * (a - b)
    return s


cdef inline floating silu(floating x) noexcept nogil:
    cdef floating s = stable_sigmoid(x)
    return x * s if s != 0 else 0        # −inf·0 would be NaN; the limit is 0


cdef inline floating silu_prime(floating x) noexcept nogil:
    cdef floating s = stable_sigmoid(x)
    return s * (1 + x * (1 - s)) if s != 0 else 0


cdef void kan_forward(floating *f, floating *h_out, const floating *h_in, const floating *phi,
                      const floating *knots, floating *work,
                      Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity,
                      int G, int k, int activation, int n_threads) noexcept nogil:
    cdef Py_ssize_t nb = G + k, nk = G + 2 * k + 1, width = n_in * (nb + 1)
    cdef Py_ssize_t r, i, j, c, s
    cdef const floating *wb = phi
    cdef const floating *ws = phi + n_out * n_in
    cdef const floating *coef = phi + 2 * n_out * n_in
    cdef floating *W = work
    cdef floating *A = work + 2 * n_out * width + n_out * n_in
    cdef floating *row
    cdef floating *wrow
    cdef floating N[KAN_MAX_ORDER + 1]
    cdef floating scale, x
    # W = [wb | ws⊙c], rebuilt from φ each step (n_out·n_in·(G+k+1) values: cheap).
    for j in range(n_out):
        wrow = W + j * width
        for i in range(n_in):
            wrow[i] = wb[j * n_in + i]
            scale = ws[j * n_in + i]
            for c in range(nb):
                wrow[n_in + i * nb + c] = scale * coef[(j * n_in + i) * nb + c]
    # A = [silu(X) | Bflat(X)]: k+1 non-zero bases per input.
    for r in range(B):
        row = A + r * width
        for c in range(width):
            row[c] = 0
        for i in range(n_in):
            x = h_in[r * n_in + i]
            row[i] = silu(x)
            s = spline_bases(x, knots + i * nk, G, k, N, <floating *>NULL)
            for c in range(k + 1):
                row[n_in + i * nb + s - k + c] = N[c]
    gemm(False, True, B, n_out, width, A, width, W, width, <floating>0, f, n_out, n_threads)
    if activation != IDENTITY or h_out != f:
        activation_forward(h_out, f, B * n_out, activation)


cdef void kan_backward(floating *dh_in, floating *grad, const floating *d, const floating *h_in,
                       const floating *phi, const floating *knots, floating *work,
                       Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity,
                       int G, int k, double l1, double entropy, int n_threads) noexcept nogil:
    cdef Py_ssize_t nb = G + k, width = n_in * (nb + 1)
    cdef Py_ssize_t i, j, c, e
    cdef const floating *ws = phi + n_out * n_in
    cdef const floating *coef = phi + 2 * n_out * n_in
    cdef floating *gwb = grad
    cdef floating *gws = grad + n_out * n_in
    cdef floating *gc = grad + 2 * n_out * n_in
    cdef floating *W = work
    cdef floating *dW = work + n_out * width
    cdef floating *A = work + 2 * n_out * width + n_out * n_in
    cdef floating *drow
    cdef floating acc, scale, g
    cdef bint penalty = l1 > 0 or entropy > 0
    cdef Py_ssize_t r
    # ∂L/∂W = δᵀ·A; the penalty's share of ∂L/∂W and of δ for the layer below (it reads A);
    # then the rest of δ below, whose product M = δ·W overwrites A (A is spent by then:
    # the next forward pass rebuilds it); last, ∂L/∂W is split into the three parts of φ.
    gemm(True, False, n_out, width, B, d, n_out, A, width, <floating>0, dW, width, n_threads)
    if penalty:
        if dh_in != NULL:
            for r in range(B * n_in):
                dh_in[r] = 0
        kan_penalty_backward(dh_in, dW, h_in, knots, W, A, work + 2 * n_out * width,
                             B, n_in, n_out, G, k, l1, entropy)
    if dh_in != NULL:
        kan_input_delta(dh_in, d, h_in, knots, W, A, B, n_in, n_out, G, k, penalty, n_threads)
    for j in range(n_out):
        drow = dW + j * width
        for i in range(n_in):
            e = j * n_in + i
            gwb[e] = drow[i]
            scale = ws[e]
            acc = 0
            for c in range(nb):
                g = drow[n_in + i * nb + c]
                acc = acc + g * coef[e * nb + c]
                gc[e * nb + c] = g * scale
            gws[e] = acc


cdef void kan_input_delta(floating *dh_in, const floating *d, const floating *h_in,
                          const floating *knots, const floating *W, floating *M,
                          Py_ssize_t B, Py_ssize_t n_in, Py_ssize_t n_out, int G, int k,
                          bint accumulate, int n_threads) noexcept nogil:
    """∂L/∂x (added to dh_in when `accumulate`): M = δ·W, then each input takes its silu′
    column and its k+1 live basis columns."""
    cdef Py_ssize_t nb = G + k, nk = G + 2 * k + 1, width = n_in * (nb + 1)
    cdef Py_ssize_t r, i, c, s
    cdef floating *mrow
    cdef floating N[KAN_MAX_ORDER + 1]
    cdef floating dN[KAN_MAX_ORDER + 1]
    cdef floating acc, x
    gemm(False, False, B, width, n_out, d, n_out, W, width, <floating>0, M, width, n_threads)
    for r in range(B):
        mrow = M + r * width
        for i in range(n_in):
            x = h_in[r * n_in + i]
            acc = mrow[i] * silu_prime(x)
            s = spline_bases(x, knots + i * nk, G, k, N, dN)
            for c in range(k + 1):
                acc = acc + mrow[n_in + i * nb + s - k + c] * dN[c]
            if accumulate:
                dh_in[r * n_in + i] += acc
            else:
                dh_in[r * n_in + i] = acc


cdef void kan_penalty_backward(floating *dh_in, floating *dW, const floating *h_in,
                               const floating *knots, const floating *W, const floating *A,
                               floating *scratch, Py_ssize_t B, Py_ssize_t n_in,
                               Py_ssize_t n_out, int G, int k, double l1,
                               double entropy) noexcept nogil:
    """Adds ∂R/∂W to dW and ∂R/∂x to dh_in (if not NULL) for the sparsity penalty R."""
    cdef Py_ssize_t nb = G + k, nk = G + 2 * k + 1, width = n_in * (nb + 1)
    cdef Py_ssize_t r, i, j, c, s, col
    cdef floating *a = scratch              # n_out × n_in: a_ji, then ∂R/∂a_ji / B
    cdef const floating *row
    cdef const floating *w
    cdef floating *dw
    cdef floating N[KAN_MAX_ORDER + 1]
    cdef floating dN[KAN_MAX_ORDER + 1]
    cdef floating x, v, dv, g, sil
    cdef double total = 0, S = 0, p
    for j in range(n_out * n_in):
        a[j] = 0
    # a_ji = mean_r |φ_ji(x_ri)|, from A's live columns and W.
    for r in range(B):
        row = A + r * width
        for i in range(n_in):
            s = spline_bases(h_in[r * n_in + i], knots + i * nk, G, k, N, <floating *>NULL)
            col = n_in + i * nb + s - k
            for j in range(n_out):
                w = W + j * width
                v = w[i] * row[i]
                for c in range(k + 1):
                    v = v + w[col + c] * row[col + c]
                a[j * n_in + i] += fabs(v)
    for j in range(n_out * n_in):
        a[j] = a[j] / B
        total += a[j]
    if total <= 0:
        return
    for j in range(n_out * n_in):
        p = a[j] / total
        if p > 0:
            S -= p * log(p)
    # ∂R/∂a_ji, over B for the mean (p = 0 would give ln 0: held at 1e-300).
    for j in range(n_out * n_in):
        p = a[j] / total
        a[j] = <floating>((l1 + entropy * (-log(p if p > 1e-300 else 1e-300) - S) / total) / B)
    for r in range(B):
        row = A + r * width
        for i in range(n_in):
            x = h_in[r * n_in + i]
            s = spline_bases(x, knots + i * nk, G, k, N, dN)
            col = n_in + i * nb + s - k
            sil = silu_prime(x)
            for j in range(n_out):
                w = W + j * width
                v = w[i] * row[i]
                dv = w[i] * sil
                for c in range(k + 1):
                    v = v + w[col + c] * row[col + c]
                    dv = dv + w[col + c] * dN[c]
                if v == 0:
                    continue
                g = a[j * n_in + i] if v > 0 else -a[j * n_in + i]
                dw = dW + j * width
                dw[i] += g * row[i]
                for c in range(k + 1):
                    dw[col + c] += g * row[col + c]
                if dh_in != NULL:
                    dh_in[r * n_in + i] += g * dv


# -- Python access (tests, initialisation, grid refits, plots) ----------------------------
def _check_knots(t, int G, int k):
    if k < 0 or k > KAN_MAX_ORDER:
        raise ValueError(f"spline order must lie in 0..{KAN_MAX_ORDER}, got {k}")
    if G < 1:
        raise ValueError(f"a grid needs at least one interval, got {G}")
    if t.shape[t.ndim - 1] != G + 2 * k + 1:
        raise ValueError(f"{G} intervals of order {k} need {G + 2 * k + 1} knots, got {t.shape[t.ndim - 1]}")


def bases(floating[::1] x, floating[::1] knots, int G, int k, bint derivative=False):
    """Dense (len(x), G+k) matrix of B_c(x) (or B′_c(x)) on these knots."""
    _check_knots(np.asarray(knots), G, k)
    cdef Py_ssize_t n = x.shape[0], r, c, s, nb = G + k
    dt = np.float32 if floating is float else np.float64
    out_arr = np.zeros((n, nb), dtype=dt)
    cdef floating[:, ::1] out = out_arr
    cdef floating N[KAN_MAX_ORDER + 1]
    cdef floating dN[KAN_MAX_ORDER + 1]
    with nogil:
        for r in range(n):
            s = spline_bases(x[r], &knots[0], G, k, N, dN)
            for c in range(k + 1):
                out[r, s - k + c] = dN[c] if derivative else N[c]
    return out_arr


def forward(floating[:, ::1] h_in, floating[::1] phi, floating[:, ::1] knots, int G, int k):
    """(y, work) of one KAN layer with identity activation (testing)."""
    cdef Py_ssize_t B = h_in.shape[0], n_in = h_in.shape[1]
    _check_knots(np.asarray(knots), G, k)
    if knots.shape[0] != n_in or B < 1:
        raise ValueError("need rows, and one row of knots per input")
    cdef Py_ssize_t n_out = phi.shape[0] // (n_in * (G + k + 2))
    if n_out * n_in * (G + k + 2) != phi.shape[0] or n_out < 1:
        raise ValueError("phi's length is not n_out·n_in·(G+k+2)")
    dt = np.float32 if floating is float else np.float64
    y_arr = np.empty((B, n_out), dtype=dt)
    work_arr = np.zeros(kan_work_size(n_in, n_out, B, G, k), dtype=dt)
    cdef floating[:, ::1] y = y_arr
    cdef floating[::1] work = work_arr
    with nogil:
        kan_forward(&y[0, 0], &y[0, 0], &h_in[0, 0], &phi[0], &knots[0, 0], &work[0],
                    B, n_in, n_out, B, G, k, IDENTITY, 1)
    return y_arr, work_arr


def backward(floating[:, ::1] d, floating[:, ::1] h_in, floating[::1] phi,
             floating[:, ::1] knots, floating[::1] work, int G, int k, double l1=0,
             double entropy=0):
    """(∂L/∂h_in, ∂L/∂φ) of one KAN layer given δ and the work of its forward, with the
    sparsity penalty's gradient added when l1 or entropy > 0 (testing)."""
    cdef Py_ssize_t B = h_in.shape[0], n_in = h_in.shape[1], n_out = d.shape[1]
    if d.shape[0] != B or phi.shape[0] != n_out * n_in * (G + k + 2) \
            or work.shape[0] != kan_work_size(n_in, n_out, B, G, k):
        raise ValueError("shapes of d, h_in, phi and work do not fit")
    dt = np.float32 if floating is float else np.float64
    dh_arr = np.empty((B, n_in), dtype=dt)
    g_arr = np.empty(phi.shape[0], dtype=dt)
    cdef floating[:, ::1] dh = dh_arr
    cdef floating[::1] g = g_arr
    with nogil:
        kan_backward(&dh[0, 0], &g[0], &d[0, 0], &h_in[0, 0], &phi[0], &knots[0, 0], &work[0],
                     B, n_in, n_out, B, G, k, l1, entropy, 1)
    return dh_arr, g_arr
