"""Optimiser updates: one pass over the P numbers of φ per step.

Weight decay and gradient clipping are folded into the same pass where they can be:
clipping needs ‖g‖ first, so it costs one extra read of g. Adam's bias corrections are
computed once per step, not per element (α_t = α/(1−β1ᵗ), denominator √v/√(1−β2ᵗ) + ε).
"""
from cython cimport floating
from libc.math cimport sqrt, pow


cdef void optim_step(floating *phi, floating *grad, floating *s1, floating *s2,
                     Py_ssize_t P, OptimConfig *cfg) noexcept nogil:
    cdef Py_ssize_t i
    cdef double lr = cfg.lr, mu = cfg.momentum, b2 = cfg.beta2, eps = cfg.eps
    cdef double wd = cfg.weight_decay, norm2 = 0.0, scale = 1.0, g, t, step_size, bc2
    cdef int code = cfg.code
    if cfg.clip_norm > 0:
        for i in range(P):
            norm2 += <double>grad[i] * grad[i]
        if norm2 > cfg.clip_norm * cfg.clip_norm:
            scale = cfg.clip_norm / sqrt(norm2)
    cfg.step += 1
    if code == ADAMW:
        # Decoupled decay shrinks φ directly, not through the moments.
        for i in range(P):
            phi[i] -= <floating>(lr * wd * phi[i])
        wd = 0.0
    if code == SGD and wd == 0 and scale == 1.0:
        # Plain SGD, the common case of small networks: one multiply-add in φ's precision.
        for i in range(P):
            phi[i] -= <floating>lr * grad[i]
    elif code == SGD:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            phi[i] -= <floating>(lr * g)
    elif code == MOMENTUM or code == NESTEROV:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            s1[i] = <floating>(mu * s1[i] + g)
            if code == NESTEROV:
                phi[i] -= <floating>(lr * (g + mu * s1[i]))
            else:
                phi[i] -= <floating>(lr * s1[i])
    elif code == RMSPROP:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            s1[i] = <floating>(b2 * s1[i] + (1.0 - b2) * g * g)
            phi[i] -= <floating>(lr * g / (sqrt(<double>s1[i]) + eps))
    elif code == ADAGRAD:
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            s1[i] = <floating>(s1[i] + g * g)
            phi[i] -= <floating>(lr * g / (sqrt(<double>s1[i]) + eps))
    elif code == ADAM or code == ADAMW:
        t = <double>cfg.step
        step_size = lr / (1.0 - pow(mu, t))
        bc2 = 1.0 / sqrt(1.0 - pow(b2, t))
        for i in range(P):
            g = grad[i] * scale + wd * phi[i]
            s1[i] = <floating>(mu * s1[i] + (1.0 - mu) * g)
            s2[i] = <floating>(b2 * s2[i] + (1.0 - b2) * g * g)
            phi[i] -= <floating>(step_size * s1[i] / (sqrt(<double>s2[i]) * bc2 + eps))


def step(floating[::1] phi, floating[::1] grad, floating[::1] s1, floating[::1] s2,
         int code, double lr, double momentum=0.0, double beta2=0.0, double eps=0.0,
         double weight_decay=0.0, double clip_norm=0.0, long step=0):
    """One update in place; returns the new step count (Python API, descend, tests)."""
    cdef Py_ssize_t P = phi.shape[0]
    if grad.shape[0] != P or s1.shape[0] != P or s2.shape[0] != P:
        raise ValueError("phi, grad and the optimiser states must have the same length")
    cdef OptimConfig cfg
    cfg.code = code
    cfg.lr = lr
    cfg.momentum = momentum
    cfg.beta2 = beta2
    cfg.eps = eps
    cfg.weight_decay = weight_decay
    cfg.clip_norm = clip_norm
    cfg.step = step
    if P:
        with nogil:
            optim_step(&phi[0], &grad[0], &s1[0], &s2[0], P, &cfg)
    else:
        cfg.step += 1
    return cfg.step
