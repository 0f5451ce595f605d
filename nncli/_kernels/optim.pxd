# Optimiser update rules over the flat parameter vector φ and its gradient (see optim.pyx).
from cython cimport floating

# One code per rule; the rule itself is one function in optim.pyx, its formula beside it.
cpdef enum OptimizerCode:
    SGD = 0          # φ −= α·g  (gd, sgd and mini-batch: only the batch size differs)
    MOMENTUM = 1     # v = μv + g;  φ −= α·v
    NESTEROV = 2     # v = μv + g;  φ −= α·(g + μv)
    RMSPROP = 3      # s = ρs + (1−ρ)g²;  φ −= α·g/(√s + ε)
    ADAGRAD = 4      # s += g²;  φ −= α·g/(√s + ε)
    ADAM = 5         # m, v moments with bias correction
    ADAMW = 6        # Adam with decoupled weight decay
    IRPROP = 7       # iRprop−: a step size per parameter, grown or shrunk by the gradient's sign

cdef struct OptimConfig:
    int code
    double lr
    double momentum      # μ (momentum, nesterov) or β1 (adam, adamw)
    double beta2         # β2 (adam, adamw) or ρ (rmsprop)
    double eps
    double weight_decay  # L2: g += λφ (adamw: φ −= αλφ instead)
    double clip_norm     # 0: no clipping; else scale g so that ‖g‖₂ ≤ clip_norm
    long step            # updates done so far (Adam's t − 1); incremented by optim_step
    int n_threads        # threads for the element-wise rule (optim_config: 1)

cdef void optim_step(floating *phi,        # INOUT P parameters
                     const floating *grad, # IN    P gradient ∂L/∂φ (read only: decay and
                                           #       clipping are applied on the fly)
                     floating *s1,         # INOUT P first state (velocity, m, Σg², or iRprop's last g)
                     floating *s2,         # INOUT P second state (Adam's v, iRprop's step sizes)
                     Py_ssize_t P, OptimConfig *cfg) noexcept nogil

cdef OptimConfig optim_config(int code, double lr, double momentum, double beta2, double eps,
                              double weight_decay, double clip_norm, long step) noexcept nogil
