"""`--ensemble N`: N networks of one architecture from seeds seed, seed+1, …, whose
predictions are averaged (probabilities for a classifier, values for a regression).

An `Ensemble` is used wherever a Network is read — predict, evaluate, info, plot-fit — and
behaves as its first member for everything but `predict` (`layers`, `loss`, `n_params` are a
member's). In the model file the first member's φ is `phi` and the others' are the rows of
the array `ensemble` ((N − 1) × P), so a file without an ensemble is unchanged. Members with
KAN layers share their grid sizes and orders, not their knots (a hidden layer's grid follows
its inputs): the others' knots are the rows of `ensemble_knots`.
"""
from __future__ import annotations

import numpy as np


class Ensemble:
    """Members (Networks with one architecture) whose predictions are averaged."""

    def __init__(self, members):
        if not members:
            raise ValueError("an ensemble needs at least one network")
        first = members[0]
        for m in members[1:]:
            if (m.layers, m.activations, m.loss, m.dtype, m.kinds, m.options) != (
                    first.layers, first.activations, first.loss, first.dtype, first.kinds,
                    first.options):
                raise ValueError("the members of an ensemble must share one architecture")
        self.members = list(members)

    @classmethod
    def of(cls, networks, X):
        """The networks as one Ensemble. KAN members that stopped early (or were refit for
        fewer epochs) before a refinement of the grid schedule (--grid 5,10) are first refined
        to the finest grid among them, at the rows of X, as the schedule refines
        (kan.refine: the function is unchanged when the finer grid holds the coarser), so
        that all share one layout."""
        kan = [k for k, kind in enumerate(networks[0].kinds) if kind == "kan"]
        if kan:
            from nncli.kan import refine
            finest = max(net.options[kan[0]]["grid"] for net in networks)
            for net in networks:
                if net.options[kan[0]]["grid"] != finest:
                    refine(net, finest, X)
        return cls(networks)

    def __getattr__(self, name):   # everything but predict: the first member's
        return getattr(self.__dict__["members"][0], name)

    def __len__(self):
        return len(self.members)

    def predict(self, X, n_threads=None):
        """The mean of the members' predictions: probabilities for cross-entropy/bce, else values."""
        out = self.members[0].predict(X, n_threads).astype(np.float64)
        for m in self.members[1:]:
            out += m.predict(X, n_threads)
        return (out / len(self.members)).astype(self.members[0].dtype)

    def stacked_phi(self):
        """φ of the members after the first, one row each: the model file's `ensemble`."""
        return np.stack([m.phi for m in self.members[1:]])

    def __repr__(self):
        return f"Ensemble({len(self.members)} × {self.members[0]!r})"
