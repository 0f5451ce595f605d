"""Optimisers, in order of increasing complexity, over the flat parameter vector.

Each is a spec in OPTIMIZERS (the kernel rule, the hyper-parameters it takes and their defaults);
an `Optimizer` holds the hyper-parameters, the state arrays (each one flat array of P numbers)
and the step count. The update itself is the kernel ``optim_step``: inside the fused epoch loop
during training, or through `Optimizer.step` for a single update (descend, tests).
"""
from dataclasses import KW_ONLY, dataclass, field

import numpy as np

from nncli._kernels import optim as _k
from nncli._kernels.optim import OptimizerCode
from nncli.functions import lookup
from nncli.params import check, refuse_inapplicable


# What every update rule takes: the learning rate, L2 weight decay (decoupled for adamw)
# and clipping by the global norm.
COMMON = ("lr", "weight_decay", "clip_norm")


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    code: int
    lr: float                 # default learning rate
    # Its own hyper-parameters with their defaults: momentum μ, beta1 β1, beta2 (β2, or ρ for
    # rmsprop), eps ε. Every rule also takes COMMON; nothing else applies to it.
    defaults: dict = field(default_factory=dict)
    doc: str = ""
    full_batch: bool = False  # the rule needs the whole training set per step (training uses it)
    # A solver that runs its own iteration in Python over full-batch kernel calls instead of
    # a kernel update rule (nncli.lbfgs); it has no single step for `Optimizer.step`.
    solver: str = None
    common: tuple = COMMON

    @property
    def hyperparameters(self):
        return (*self.common, *self.defaults)
# The hyper-parameters an Optimizer has, in the order of its fields.
HYPERPARAMETERS = ("lr", "momentum", "beta1", "beta2", "eps", "weight_decay", "clip_norm")

OPTIMIZERS = {o.name: o for o in [
    OptimizerSpec("gd", OptimizerCode.SGD, 0.1, doc="gradient descent (use --batch-size full)"),
    OptimizerSpec("sgd", OptimizerCode.SGD, 0.01, doc="stochastic gradient descent"),
    OptimizerSpec("momentum", OptimizerCode.MOMENTUM, 0.01, {"momentum": 0.9}, doc="heavy-ball momentum"),
    OptimizerSpec("nesterov", OptimizerCode.NESTEROV, 0.01, {"momentum": 0.9}, doc="Nesterov momentum"),
    OptimizerSpec("rmsprop", OptimizerCode.RMSPROP, 0.001, {"beta2": 0.99, "eps": 1e-8}, doc="RMSProp"),
    OptimizerSpec("adagrad", OptimizerCode.ADAGRAD, 0.01, {"eps": 1e-10}, doc="AdaGrad"),
    OptimizerSpec("adam", OptimizerCode.ADAM, 0.001, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  doc="Adam"),
    OptimizerSpec("adamw", OptimizerCode.ADAMW, 0.001, {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
                  doc="Adam with decoupled weight decay"),
    # lr is iRprop's initial step size Δ0 (FANN's 0.1); the rule reads only the gradient's sign.
    OptimizerSpec("irprop", OptimizerCode.IRPROP, 0.1, doc="iRprop− (full batch, FANN's default)",
                  full_batch=True),
    # lr is the first step length tried along each quasi-Newton direction.
    OptimizerSpec("lbfgs", -1, 1.0, doc="L-BFGS (full batch, line search)", full_batch=True,
                  solver="lbfgs", common=("lr", "weight_decay")),
]}
#: The optimisers with a single update rule (descend steps them one update at a time).
STEP_RULES = {n: o for n, o in OPTIMIZERS.items() if o.solver is None}


def check_hyperparameters(name, given, spell=str):
    """ValueError unless optimiser `name` takes every hyper-parameter in `given` and each lies
    in its range (nncli.params); `spell` writes a name as the user typed it."""
    spec = lookup(OPTIMIZERS, name, "optimizer")
    refuse_inapplicable(given, name, "optimizer",
                        {o.name: o.hyperparameters for o in OPTIMIZERS.values()}, spell)
    for attr, value in given.items():
        check(attr, value)
    return spec


def as_optimizer(optimizer, **hyperparameters):
    """`optimizer` as an Optimizer: a name with its hyper-parameters (None: the default), or an
    Optimizer as it is (its hyper-parameters are its own: giving others too is an error)."""
    given = {k: v for k, v in hyperparameters.items() if v is not None}
    if isinstance(optimizer, str):
        return Optimizer(optimizer, **given)
    if given:
        raise ValueError(f"{', '.join(given)}: set the hyper-parameters of an Optimizer when "
                         "creating it, or pass the optimizer by name")
    return optimizer


@dataclass
class Optimizer:
    """Hyper-parameters and state of one optimiser for a parameter vector of P numbers.

    Unset hyper-parameters (None) take the spec's defaults; setting one the optimiser does not
    use (momentum for sgd, beta1 for momentum) is a ValueError naming it. `beta2` is ρ for
    rmsprop. Hyper-parameters after `lr` are keyword-only.
    """
    name: str = "adam"
    lr: float = None
    _: KW_ONLY
    momentum: float = None
    beta1: float = None
    beta2: float = None
    eps: float = None
    weight_decay: float = None
    clip_norm: float = None
    step_count: int = 0
    s1: np.ndarray = field(default=None, repr=False)
    s2: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        given = {attr: getattr(self, attr) for attr in HYPERPARAMETERS
                 if getattr(self, attr) is not None}
        spec = check_hyperparameters(self.name, given)
        defaults = {"lr": spec.lr, "weight_decay": 0.0, "clip_norm": 0.0, **spec.defaults}
        for attr, value in defaults.items():
            if getattr(self, attr) is None:
                setattr(self, attr, value)
        self.code = spec.code

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
        # The kernel has one slot for μ and β1: no rule uses both.
        mu = self.beta1 if self.beta1 is not None else self.momentum or 0.0
        return (self.code, self.lr if lr is None else lr, mu, self.beta2 or 0.0, self.eps or 0.0,
                self.weight_decay, self.clip_norm, self.step_count)

    def step(self, phi, grad, lr=None):
        """One update of phi in place from grad (grad is read, not changed)."""
        if OPTIMIZERS[self.name].solver is not None:
            raise ValueError(f"{self.name} is a full-batch solver with a line search: it trains "
                             "through Trainer and has no single update")
        self.bind(len(phi), phi.dtype)
        self.step_count = _k.step(phi, grad, self.s1, self.s2, *self.kernel_args(lr))

    def state_dict(self):
        return {"name": self.name, **{attr: getattr(self, attr) for attr in HYPERPARAMETERS},
                "step_count": self.step_count}
