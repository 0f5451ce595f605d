"""Optimisers, in order of increasing complexity, over the flat parameter vector.

Each is a spec in OPTIMIZERS (the kernel rule, its defaults, how many state arrays it keeps);
an `Optimizer` holds the hyper-parameters, the state arrays (each one flat array of P numbers)
and the step count. The update itself is the kernel ``optim_step``: inside the fused epoch loop
during training, or through `Optimizer.step` for a single update (descend, tests).
"""
from dataclasses import dataclass, field

import numpy as np

from nncli._kernels import optim as _k
from nncli._kernels.optim import OptimizerCode
from nncli.functions import lookup


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    code: int
    lr: float                 # default learning rate
    momentum: float = 0.0     # μ, or β1 for adam/adamw
    beta2: float = 0.0        # β2, or ρ for rmsprop
    eps: float = 0.0
    doc: str = ""


OPTIMIZERS = {o.name: o for o in [
    OptimizerSpec("gd", OptimizerCode.SGD, 0.1, doc="gradient descent (use --batch-size full)"),
    OptimizerSpec("sgd", OptimizerCode.SGD, 0.01, doc="stochastic gradient descent"),
    OptimizerSpec("momentum", OptimizerCode.MOMENTUM, 0.01, momentum=0.9, doc="heavy-ball momentum"),
    OptimizerSpec("nesterov", OptimizerCode.NESTEROV, 0.01, momentum=0.9, doc="Nesterov momentum"),
    OptimizerSpec("rmsprop", OptimizerCode.RMSPROP, 0.001, beta2=0.99, eps=1e-8, doc="RMSProp"),
    OptimizerSpec("adagrad", OptimizerCode.ADAGRAD, 0.01, eps=1e-10, doc="AdaGrad"),
    OptimizerSpec("adam", OptimizerCode.ADAM, 0.001, momentum=0.9, beta2=0.999, eps=1e-8, doc="Adam"),
    OptimizerSpec("adamw", OptimizerCode.ADAMW, 0.001, momentum=0.9, beta2=0.999, eps=1e-8,
                  doc="Adam with decoupled weight decay"),
]}


@dataclass
class Optimizer:
    """Hyper-parameters and state of one optimiser for a parameter vector of P numbers.

    Unset hyper-parameters (None) take the spec's defaults. `momentum` is β1 for adam/adamw;
    `beta2` is ρ for rmsprop.
    """
    name: str = "adam"
    lr: float = None
    momentum: float = None
    beta2: float = None
    eps: float = None
    weight_decay: float = 0.0
    clip_norm: float = 0.0
    step_count: int = 0
    s1: np.ndarray = field(default=None, repr=False)
    s2: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        spec = lookup(OPTIMIZERS, self.name, "optimizer")
        for attr in ("lr", "momentum", "beta2", "eps"):
            if getattr(self, attr) is None:
                setattr(self, attr, getattr(spec, attr))
        self.code = spec.code
        if not self.lr > 0:
            raise ValueError(f"the learning rate must be positive, got {self.lr}")
        if not 0 <= self.momentum < 1 or not 0 <= self.beta2 < 1:
            raise ValueError("momentum/beta1 and beta2 must lie in [0, 1)")
        if self.eps < 0 or self.weight_decay < 0 or self.clip_norm < 0:
            raise ValueError("eps, weight decay and clip norm must not be negative")

    def bind(self, n_params, dtype):
        """Allocate (or check) the state arrays for a parameter vector of n_params numbers."""
        for attr in ("s1", "s2"):
            s = getattr(self, attr)
            if s is None:
                setattr(self, attr, np.zeros(n_params, dtype=dtype))
            elif s.shape != (n_params,) or s.dtype != dtype:
                raise ValueError(f"optimizer state {attr} does not fit {n_params} {np.dtype(dtype).name} parameters")
        return self

    def kernel_args(self, lr=None):
        """Arguments of the kernel update after the state arrays."""
        return (self.code, self.lr if lr is None else lr, self.momentum, self.beta2, self.eps,
                self.weight_decay, self.clip_norm, self.step_count)

    def step(self, phi, grad, lr=None):
        """One update of phi in place from grad (grad may be modified by decay/clipping)."""
        self.bind(len(phi), phi.dtype)
        self.step_count = _k.step(phi, grad, self.s1, self.s2, *self.kernel_args(lr))

    def state_dict(self):
        return {"name": self.name, "lr": self.lr, "momentum": self.momentum, "beta2": self.beta2,
                "eps": self.eps, "weight_decay": self.weight_decay, "clip_norm": self.clip_norm,
                "step_count": self.step_count}
