"""Optimiser update rules: one function per rule, its formula in the comment above it.

Every rule reads g = c·∂L/∂φ + λφ: c ≤ 1 scales the gradient to the clipping norm and λ is
L2 weight decay (AdamW decays φ directly instead), both folded into the one pass over the P
numbers of φ; ∂L/∂φ itself is never written. Clipping needs ‖∂L/∂φ‖ first, so it costs one
extra read.

Per-element arithmetic runs in φ's own precision (as PyTorch does), so that the loops
vectorise. The per-step scalars are computed in double and rounded once: 1−β1, 1−β2 and 1−ρ
(in float32, 1 − float32(0.999) is 1.3e-5 short of 0.001, which made every Adam step 6.5e-6
too long), and Adam's bias corrections α/(1−β1ᵗ) and 1/√(1−β2ᵗ), once per step rather than
per element.

Adding a rule: its code in optim.pxd, one function here, one branch in optim_step, and one
entry in nncli.optim.OPTIMIZERS.
"""
from cython cimport floating
from libc.math cimport sqrt, sqrtf, pow
from nncli._kernels.gemm cimport run_chunks

cdef extern from "adam_impl.h" nogil:
    void nn_adam_f32(float *phi, const float *grad, float *m, float *v, long P, float scale,
                     float wd, float b1, float one_minus_b1, float b2, float one_minus_b2,
                     float step, float bc2, float eps)
    void nn_adam_f64(double *phi, const double *grad, double *m, double *v, long P,
                     double scale, double wd, double b1, double one_minus_b1, double b2,
                     double one_minus_b2, double step, double bc2, double eps)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


# φ −= α·g
cdef inline void sgd_update(floating *phi, const floating *grad, Py_ssize_t P,
                            OptimConfig *cfg, floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lr = <floating>cfg.lr, wd = <floating>cfg.weight_decay
    if wd == 0 and scale == 1:
        # Plain SGD, the common case of small networks: one multiply-add.
        for i in range(P):
            phi[i] -= lr * grad[i]
        return
    for i in range(P):
        phi[i] -= lr * (grad[i] * scale + wd * phi[i])


# v = μv + g;  φ −= α·v  (heavy ball), or φ −= α·(g + μv)  (Nesterov)
cdef inline void momentum_update(floating *phi, const floating *grad, floating *vel,
                                 Py_ssize_t P, OptimConfig *cfg, floating scale,
                                 bint nesterov) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lr = <floating>cfg.lr, wd = <floating>cfg.weight_decay
    cdef floating mu = <floating>cfg.momentum, g, v
    if nesterov:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = mu * vel[i] + g
            vel[i] = v
            phi[i] -= lr * (g + mu * v)
    else:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = mu * vel[i] + g
            vel[i] = v
            phi[i] -= lr * v


# s = ρs + (1−ρ)g²;  φ −= α·g/(√s + ε)
cdef inline void rmsprop_update(floating *phi, const floating *grad, floating *sq,
                                Py_ssize_t P, OptimConfig *cfg, floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lr = <floating>cfg.lr, wd = <floating>cfg.weight_decay
    cdef floating eps = <floating>cfg.eps, rho = <floating>cfg.beta2
    cdef floating one_minus_rho = <floating>(1.0 - cfg.beta2), g, s
    for i in range(P):
        g = grad[i] * scale + wd * phi[i]
        s = rho * sq[i] + one_minus_rho * g * g
        sq[i] = s
        phi[i] -= lr * g / (_sqrt(s) + eps)


# s += g²;  φ −= α·g/(√s + ε)
cdef inline void adagrad_update(floating *phi, const floating *grad, floating *sq,
                                Py_ssize_t P, OptimConfig *cfg, floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating lr = <floating>cfg.lr, wd = <floating>cfg.weight_decay
    cdef floating eps = <floating>cfg.eps, g, s
    for i in range(P):
        g = grad[i] * scale + wd * phi[i]
        s = sq[i] + g * g
        sq[i] = s
        phi[i] -= lr * g / (_sqrt(s) + eps)


# m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;  m̂ = m/(1−β1ᵗ);  v̂ = v/(1−β2ᵗ)
# φ −= α·m̂/(√v̂ + ε)          (AdamW, decoupled: first φ −= αλφ, and g carries no λφ)
# computed as φ −= [α/(1−β1ᵗ)]·m / (√v·[1/√(1−β2ᵗ)] + ε), the brackets once per step.
# The element loop is C (adam_impl.h), compiled for baseline x86-64 and AVX2.
cdef inline void adam_update(floating *phi, const floating *grad, floating *m, floating *v,
                             Py_ssize_t P, OptimConfig *cfg, floating scale,
                             bint decoupled) noexcept nogil:
    cdef Py_ssize_t i
    cdef double t = <double>cfg.step
    cdef floating wd = <floating>cfg.weight_decay
    cdef floating shrink = <floating>(cfg.lr * cfg.weight_decay)
    cdef floating b1 = <floating>cfg.momentum, b2 = <floating>cfg.beta2
    cdef floating one_minus_b1 = <floating>(1.0 - cfg.momentum)
    cdef floating one_minus_b2 = <floating>(1.0 - cfg.beta2)
    cdef floating step_size = <floating>(cfg.lr / (1.0 - pow(cfg.momentum, t)))
    cdef floating bc2 = <floating>(1.0 / sqrt(1.0 - pow(cfg.beta2, t)))
    cdef floating eps = <floating>cfg.eps
    if decoupled:
        for i in range(P):
            phi[i] -= shrink * phi[i]
        wd = 0
    if floating is float:
        nn_adam_f32(phi, grad, m, v, P, scale, wd, b1, one_minus_b1, b2, one_minus_b2,
                    step_size, bc2, eps)
    else:
        nn_adam_f64(phi, grad, m, v, P, scale, wd, b1, one_minus_b1, b2, one_minus_b2,
                    step_size, bc2, eps)


# iRprop− (Igel & Hüsken 2000; FANN's default trainer), per parameter with step size Δ:
#   g·g_last > 0: Δ = min(η⁺Δ, Δmax);   g·g_last < 0: Δ = max(η⁻Δ, Δmin), g = 0
#   φ −= sign(g)·Δ;   g_last = g
# η⁺ = 1.2, η⁻ = 0.5, Δmin = 0, Δmax = 50 (FANN's); Δ starts at α (the learning rate). Only
# the gradient's sign moves φ, so it needs full batches.
cdef double RPROP_UP = 1.2, RPROP_DOWN = 0.5, RPROP_MAX = 50.0

cdef inline void irprop_update(floating *phi, const floating *grad, floating *last,
                               floating *delta, Py_ssize_t P, OptimConfig *cfg,
                               floating scale) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating wd = <floating>cfg.weight_decay, g, d, up = <floating>RPROP_UP
    cdef floating down = <floating>RPROP_DOWN, dmax = <floating>RPROP_MAX
    if cfg.step == 1:
        for i in range(P):
            delta[i] = <floating>cfg.lr
            last[i] = 0
    for i in range(P):
        g = grad[i] * scale + wd * phi[i]
        d = delta[i]
        if g * last[i] > 0:
            d = d * up
            if d > dmax:
                d = dmax
        elif g * last[i] < 0:
            d = d * down
            g = 0
        delta[i] = d
        if g > 0:
            phi[i] -= d
        elif g < 0:
            phi[i] += d
        last[i] = g


cdef inline void apply_rule(floating *phi, const floating *grad, floating *s1, floating *s2,
                            Py_ssize_t P, OptimConfig *cfg, floating scale) noexcept nogil:
    """The rule over P parameters (dispatch only; every rule is element-wise)."""
    cdef int code = cfg.code
    if code == SGD:
        sgd_update(phi, grad, P, cfg, scale)
    elif code == MOMENTUM or code == NESTEROV:
        momentum_update(phi, grad, s1, P, cfg, scale, code == NESTEROV)
    elif code == RMSPROP:
        rmsprop_update(phi, grad, s1, P, cfg, scale)
    elif code == ADAGRAD:
        adagrad_update(phi, grad, s1, P, cfg, scale)
    elif code == ADAM or code == ADAMW:
        adam_update(phi, grad, s1, s2, P, cfg, scale, code == ADAMW)
    elif code == IRPROP:
        irprop_update(phi, grad, s1, s2, P, cfg, scale)


# The update runs in parts of this many parameters (64-byte aligned), claimed by the
# threads one at a time: on a busy machine a thread that loses its core leaves the rest to
# the other. Below two parts one thread does it all. Adam costs ~0.5 ns a parameter on one
# thread (a square root and a division each, and 28 bytes of traffic), so the mnist benchmark
# net's 235 k parameters are 15 parts of ~8 µs each against ~1 µs to hand them out.
cdef Py_ssize_t PART = 1 << 14


cdef struct OptimJob:
    void *phi
    const void *grad
    void *s1
    void *s2
    Py_ssize_t P
    OptimConfig *cfg
    double scale


cdef inline void optim_part(const OptimJob *job, long c, floating *phi) noexcept nogil:
    cdef Py_ssize_t start = c * PART
    apply_rule(phi + start, <const floating *>job.grad + start, <floating *>job.s1 + start,
               <floating *>job.s2 + start, min(PART, job.P - start), job.cfg,
               <floating>job.scale)


cdef void optim_part_f32(void *job, long c) noexcept nogil:
    optim_part(<const OptimJob *>job, c, <float *>(<const OptimJob *>job).phi)


cdef void optim_part_f64(void *job, long c) noexcept nogil:
    optim_part(<const OptimJob *>job, c, <double *>(<const OptimJob *>job).phi)


cdef void optim_step(floating *phi, const floating *grad, floating *s1, floating *s2,
                     Py_ssize_t P, OptimConfig *cfg) noexcept nogil:
    """The clipping factor, the step count, then the rule, in parts of φ on up to
    cfg.n_threads threads. The rules are element-wise, so the result does not depend on the
    thread count; the clipping norm (a sum) is taken by one thread, in one order."""
    cdef Py_ssize_t i
    cdef double norm2 = 0.0, dscale = 1.0
    cdef OptimJob job
    if cfg.clip_norm > 0:
        for i in range(P):
            norm2 += <double>grad[i] * grad[i]
        if norm2 > cfg.clip_norm * cfg.clip_norm:
            dscale = cfg.clip_norm / sqrt(norm2)
    cfg.step += 1
    if cfg.n_threads <= 1 or P < 2 * PART:
        apply_rule(phi, grad, s1, s2, P, cfg, <floating>dscale)
        return
    job.phi = phi
    job.grad = grad
    job.s1 = s1
    job.s2 = s2
    job.P = P
    job.cfg = cfg
    job.scale = dscale
    if floating is float:
        run_chunks(cfg.n_threads, (P + PART - 1) // PART, optim_part_f32, &job)
    else:
        run_chunks(cfg.n_threads, (P + PART - 1) // PART, optim_part_f64, &job)


cdef OptimConfig optim_config(int code, double lr, double momentum, double beta2, double eps,
                              double weight_decay, double clip_norm, long step) noexcept nogil:
    cdef OptimConfig cfg
    cfg.code = code
    cfg.lr = lr
    cfg.momentum = momentum
    cfg.beta2 = beta2
    cfg.eps = eps
    cfg.weight_decay = weight_decay
    cfg.clip_norm = clip_norm
    cfg.step = step
    cfg.n_threads = 1
    return cfg


def step(floating[::1] phi, const floating[::1] grad, floating[::1] s1, floating[::1] s2,
         int code, double lr, double momentum=0.0, double beta2=0.0, double eps=0.0,
         double weight_decay=0.0, double clip_norm=0.0, long step=0):
    """One update of phi in place (grad is not modified); returns the new step count.
    Used by nncli.optim.Optimizer.step (descend, single updates) and the tests."""
    cdef Py_ssize_t P = phi.shape[0]
    if grad.shape[0] != P or s1.shape[0] != P or s2.shape[0] != P:
        raise ValueError("phi, grad and the optimiser states must have the same length")
    cdef OptimConfig cfg = optim_config(code, lr, momentum, beta2, eps, weight_decay, clip_norm, step)
    if P:
        with nogil:
            optim_step(&phi[0], &grad[0], &s1[0], &s2[0], P, &cfg)
    else:
        cfg.step += 1
    return cfg.step
