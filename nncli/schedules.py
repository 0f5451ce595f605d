"""Learning-rate schedules, applied between epochs (the lr is one number per epoch call).

Each schedule maps (epoch, base lr) to the epoch's lr; `plateau` also watches the
monitored loss and cuts the rate by `factor` after `patience` epochs without improvement.
"""
import math

SCHEDULES = {}


def register(cls):
    SCHEDULES[cls.name] = cls
    return cls


class Schedule:
    name = "?"

    def __init__(self, lr, epochs, gamma=None, step_size=None, patience=None, min_lr=0.0):
        self.base = lr
        self.epochs = max(1, epochs)
        self.gamma = gamma
        self.step_size = step_size
        self.patience = patience
        self.min_lr = min_lr

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

    def lr(self, epoch):
        size = self.step_size or max(1, self.epochs // 3)
        return self.base * (self.gamma or 0.1) ** (epoch // size)


@register
class Exponential(Schedule):
    """× gamma every epoch (default: down to 1% of the base rate at the last epoch)."""
    name = "exponential"

    def lr(self, epoch):
        gamma = self.gamma or 0.01 ** (1.0 / max(1, self.epochs - 1))
        return self.base * gamma ** epoch


@register
class Cosine(Schedule):
    """Half a cosine from the base rate to min_lr over the run."""
    name = "cosine"

    def lr(self, epoch):
        t = epoch / max(1, self.epochs - 1)
        return self.min_lr + 0.5 * (self.base - self.min_lr) * (1 + math.cos(math.pi * t))


@register
class Plateau(Schedule):
    """× gamma (default 0.5) when the loss has not improved for `patience` epochs (default 10)."""
    name = "plateau"

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
        if self.bad > (self.patience or 10):
            self.current = max(self.min_lr, self.current * (self.gamma or 0.5))
            self.bad = 0

    def state_dict(self):
        return {"current": self.current, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state):
        self.current, self.best, self.bad = state["current"], state["best"], state["bad"]
