"""The allowed values of every tunable number, declared once.

Like scikit-learn's ``_parameter_constraints``: CONSTRAINTS maps a parameter's name to the
`Interval` it must lie in. The Python API checks values with `check` (Optimizer, the
schedules); the CLI builds its Click types from the same entries
(``nncli.commands.options.click_type``), so no range is written twice. Choices among names
(optimizer, schedule, activation, loss) are the registries' keys: OPTIMIZERS, SCHEDULES,
ACTIVATIONS, LOSSES.

Which hyper-parameters an optimiser or a schedule takes is declared beside it (its spec or
class); `refuse_inapplicable` turns one given to the wrong one into an error naming it, in the
API's spelling (``momentum``) or the CLI's (``--momentum``).
"""
from dataclasses import dataclass
from numbers import Integral, Real


@dataclass(frozen=True)
class Interval:
    """Numbers of `kind` (Real or Integral) between low and high (None: unbounded); `closed`
    says which ends belong to it: "both", "left", "right" or "neither"."""
    kind: type
    low: float = None
    high: float = None
    closed: str = "both"

    def __contains__(self, value):
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        # Written so that NaN fails every comparison and is never inside.
        above = self.low is None or (value >= self.low if left else value > self.low)
        below = self.high is None or (value <= self.high if right else value < self.high)
        return bool(above and below)

    def __str__(self):
        whole = "a whole number " if self.kind is Integral else ""
        if self.high is None:
            return f"{whole}{'≥' if self.closed in ('both', 'left') else '>'} {self.low:g}"
        if self.low is None:
            return f"{whole}{'≤' if self.closed in ('both', 'right') else '<'} {self.high:g}"
        lb = "[" if self.closed in ("both", "left") else "("
        rb = "]" if self.closed in ("both", "right") else ")"
        return f"{whole}in {lb}{self.low:g}, {self.high:g}{rb}"


CONSTRAINTS = {
    # Optimiser hyper-parameters (nncli.optim): α, μ, β1, β2 (ρ for RMSProp), ε, λ, clip norm.
    "lr": Interval(Real, 0, None, closed="neither"),
    "momentum": Interval(Real, 0, 1, closed="left"),
    "beta1": Interval(Real, 0, 1, closed="left"),
    "beta2": Interval(Real, 0, 1, closed="left"),
    "eps": Interval(Real, 0, None),
    "weight_decay": Interval(Real, 0, None),
    "clip_norm": Interval(Real, 0, None),
    # Learning-rate schedules (nncli.schedules): the factor of a cut, epochs between cuts,
    # epochs without improvement before a plateau cut, the floor.
    "gamma": Interval(Real, 0, 1, closed="right"),
    "step_size": Interval(Integral, 1, None),
    "patience": Interval(Integral, 0, None),
    "min_lr": Interval(Real, 0, None),
    # Training: epochs without a better validation loss before stopping (0: never stop
    # early), kernel threads.
    "early_stopping": Interval(Integral, 0, None),
    "threads": Interval(Integral, 1, None),
    # Inverted dropout (nncli.training): the share of a hidden layer's outputs zeroed per step.
    "dropout": Interval(Real, 0, 1, closed="left"),
    # Classification targets (nncli.targets): the share of each target spread over all classes.
    "label_smoothing": Interval(Real, 0, 1, closed="left"),
    # Networks in an ensemble (nncli.ensemble).
    "ensemble": Interval(Integral, 1, None),
    # Seeds of numpy's SeedSequence, which refuses negative numbers.
    "seed": Interval(Integral, 0, None),
}


def check(name, value):
    """`value` if CONSTRAINTS[name] holds it, else a ValueError saying what is allowed."""
    interval = CONSTRAINTS[name]
    if value not in interval:
        raise ValueError(f"{name} must be {interval}, got {value!r}")
    return value


def refuse_inapplicable(given, owners, kind, takes, spell=str):
    """A ValueError naming each parameter in `given` that none of `owners` takes.

    owners: the chosen optimiser or schedule (a name, or a list of names: descend runs
    several); kind: 'optimizer' or 'schedule'; takes: every owner's name → the parameter
    names it takes, to say where a refused one applies; spell: how the user wrote a name
    (``--lr-gamma`` on the command line).
    """
    owners = [owners] if isinstance(owners, str) else list(dict.fromkeys(owners))
    wrong = [n for n in given if not any(n in takes[o] for o in owners)]
    if wrong:
        chosen = f"the {', '.join(owners)} {kind}" + ("s" if len(owners) > 1 else "")
        raise ValueError("; ".join(
            f"{spell(n)} does not apply to {chosen} (it applies to "
            f"{', '.join(o for o, names in takes.items() if n in names) or 'none'})"
            for n in wrong))
