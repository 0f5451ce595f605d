"""Learning-rate schedules, applied between epochs (the lr is one number per epoch call).

Each schedule maps (epoch, base lr) to the epoch's lr; `plateau` also watches the
monitored loss and cuts the rate by `gamma` after `patience` epochs without improvement.
Each class lists the options it takes (`options`); giving it another is a ValueError naming
it, and every value is checked against nncli.params.CONSTRAINTS.
"""
import math

from nncli.params import check, refuse_inapplicable

SCHEDULES = {}
# The options of every schedule: the factor of a cut, epochs between cuts, epochs without
# improvement before a plateau cut, the floor of the rate.
OPTIONS = ("gamma", "step_size", "patience", "min_lr")
# Their keys in a training config, as on the command line (--lr-gamma …).
CONFIG_KEYS = {"gamma": "lr_gamma", "step_size": "lr_step_size", "patience": "lr_patience",
               "min_lr": "min_lr"}


def schedule_options(config):
    """The schedule's options set in a training config (its keys are CONFIG_KEYS')."""
    return {option: config[key] for option, key in CONFIG_KEYS.items() if config.get(key) is not None}


def register(cls):
    SCHEDULES[cls.name] = cls
    return cls


def check_options(name, given, spell=str):
    """ValueError unless schedule `name` takes every option in `given` (name → value) and each
    lies in its range; `spell` writes a name as the user typed it."""
    cls = SCHEDULES.get(name)
    if cls is None:
        raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
    refuse_inapplicable(given, name, "schedule", {s.name: s.options for s in SCHEDULES.values()}, spell)
    for option, value in given.items():
        check(option, value)
    return cls


class Schedule:
    name = "?"
    options = ()       # which of OPTIONS it takes

    def __init__(self, lr, epochs, gamma=None, step_size=None, patience=None, min_lr=None):
        given = {k: v for k, v in zip(OPTIONS, (gamma, step_size, patience, min_lr)) if v is not None}
        check_options(self.name, given)
        self.base = lr
        self.epochs = max(1, epochs)
        self.gamma = gamma
        self.step_size = step_size
        self.patience = patience
        self.min_lr = 0.0 if min_lr is None else min_lr

    def lr(self, epoch):
        """Learning rate for 0-based `epoch`."""
        return self.base

    def observe(self, loss):
        """Called after each epoch with the monitored loss (validation, else training)."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@register
class Constant(Schedule):
    name = "constant"


@register
class Step(Schedule):
    """× gamma (default 0.1) every step_size epochs (default a third of the run)."""
    name = "step"
    options = ("gamma", "step_size")

    def lr(self, epoch):
        size = self.step_size if self.step_size is not None else max(1, self.epochs // 3)
        return self.base * (self.gamma if self.gamma is not None else 0.1) ** (epoch // size)


@register
class Exponential(Schedule):
    """× gamma every epoch (default: down to 1% of the base rate at the last epoch)."""
    name = "exponential"
    options = ("gamma",)

    def lr(self, epoch):
        gamma = self.gamma if self.gamma is not None else 0.01 ** (1.0 / max(1, self.epochs - 1))
        return self.base * gamma ** epoch


@register
class Cosine(Schedule):
    """Half a cosine from the base rate to min_lr over the run."""
    name = "cosine"
    options = ("min_lr",)

    def lr(self, epoch):
        t = epoch / max(1, self.epochs - 1)
        return self.min_lr + 0.5 * (self.base - self.min_lr) * (1 + math.cos(math.pi * t))


@register
class Plateau(Schedule):
    """× gamma (default 0.5) when the loss has not improved for `patience` epochs (default 10)."""
    name = "plateau"
    options = ("gamma", "patience", "min_lr")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.current = self.base
        self.best = math.inf
        self.bad = 0

    def lr(self, epoch):
        return self.current

    def observe(self, loss):
        if loss < self.best * (1 - 1e-4):
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad > (self.patience if self.patience is not None else 10):
            self.current = max(self.min_lr, self.current * (self.gamma if self.gamma is not None else 0.5))
            self.bad = 0

    def state_dict(self):
        return {"current": self.current, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state):
        self.current, self.best, self.bad = state["current"], state["best"], state["bad"]
