"""Optimiser updates: one pass over the P numbers of φ per step.

Weight decay and gradient clipping are folded into the same pass where they can be:
clipping needs ‖g‖ first, so it costs one extra read of g. Adam's bias corrections are
computed once per step, not per element (α_t = α/(1−β1ᵗ), denominator √v/√(1−β2ᵗ) + ε).
"""
from cython cimport floating
from libc.math cimport sqrt, sqrtf, pow

cdef extern from "adam_impl.h" nogil:
    void nn_adam_f32(float *phi, const float *grad, float *m, float *v, long P, float scale,
                     float wd, float b1, float b2, float step, float bc2, float eps)
    void nn_adam_f64(double *phi, const double *grad, double *m, double *v, long P, double scale,
                     double wd, double b1, double b2, double step, double bc2, double eps)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void optim_step(floating *phi, floating *grad, floating *s1, floating *s2,
                     Py_ssize_t P, OptimConfig *cfg) noexcept nogil:
    cdef Py_ssize_t i
    cdef double norm2 = 0.0, dscale = 1.0, t
    cdef int code = cfg.code
    # Per-element arithmetic in φ's own precision (as PyTorch does), so that the loops
    # vectorise; only the norm and the bias corrections are computed in double.
    cdef floating lr = <floating>cfg.lr, mu = <floating>cfg.momentum, b2 = <floating>cfg.beta2
    cdef floating eps = <floating>cfg.eps, wd = <floating>cfg.weight_decay, scale
    cdef floating g, m, v, step_size, bc2
    if cfg.clip_norm > 0:
        for i in range(P):
            norm2 += <double>grad[i] * grad[i]
        if norm2 > cfg.clip_norm * cfg.clip_norm:
            dscale = cfg.clip_norm / sqrt(norm2)
    scale = <floating>dscale
    cfg.step += 1
    if code == ADAMW:
        # Decoupled decay shrinks φ directly, not through the moments.
        for i in range(P):
            phi[i] -= lr * wd * phi[i]
        wd = 0
    if code == SGD and wd == 0 and dscale == 1.0:
        # Plain SGD, the common case of small networks: one multiply-add.
        for i in range(P):
            phi[i] -= lr * grad[i]
    elif code == SGD:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            phi[i] -= lr * g
    elif code == MOMENTUM:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = mu * s1[i] + g
            s1[i] = v
            phi[i] -= lr * v
    elif code == NESTEROV:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = mu * s1[i] + g
            s1[i] = v
            phi[i] -= lr * (g + mu * v)
    elif code == RMSPROP:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = b2 * s1[i] + (1 - b2) * g * g
            s1[i] = v
            phi[i] -= lr * g / (_sqrt(v) + eps)
    elif code == ADAGRAD:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            v = s1[i] + g * g
            s1[i] = v
            phi[i] -= lr * g / (_sqrt(v) + eps)
    elif code == ADAM or code == ADAMW:
        t = <double>cfg.step
        step_size = <floating>(cfg.lr / (1.0 - pow(cfg.momentum, t)))
        bc2 = <floating>(1.0 / sqrt(1.0 - pow(cfg.beta2, t)))
        if floating is float:
            nn_adam_f32(phi, grad, s1, s2, P, scale, wd, mu, b2, step_size, bc2, eps)
        else:
            nn_adam_f64(phi, grad, s1, s2, P, scale, wd, mu, b2, step_size, bc2, eps)


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
    return cfg


def step(floating[::1] phi, floating[::1] grad, floating[::1] s1, floating[::1] s2,
         int code, double lr, double momentum=0.0, double beta2=0.0, double eps=0.0,
         double weight_decay=0.0, double clip_norm=0.0, long step=0):
    """One update in place; returns the new step count (Python API, descend, tests)."""
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
