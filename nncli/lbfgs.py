"""L-BFGS: full-batch quasi-Newton steps with a backtracking line search.

scikit-learn's recommended solver for small tables. One training epoch is one iteration:
the loss and gradient over every row (one kernel call, `Engine.loss_and_gradient`), a
direction from the last M curvature pairs by the two-loop recursion (numpy over the P numbers
of φ; no per-row Python), and a step along it that the Armijo condition accepts. L2 weight
decay adds λ/2·‖φ‖² to the loss (λφ to the gradient), as for the other optimisers.

The curvature memory is not part of a checkpoint: a resumed run starts it afresh.
"""
from __future__ import annotations

import math

import numpy as np

MEMORY = 10  # curvature pairs kept (scikit-learn's and scipy's default)
ARMIJO = 1e-4  # sufficient decrease: f(φ + t·d) ≤ f(φ) + ARMIJO·t·gᵀd
BACKTRACK = 0.5  # t ← BACKTRACK·t until it holds
MAX_BACKTRACKS = 30


def two_loop(g, pairs):
    """−H·g, H the L-BFGS inverse-Hessian estimate from ``pairs`` [(s, y), …] (oldest first),
    scaled by γ = sᵀy / yᵀy of the newest pair (1 without pairs)."""
    q = np.array(g, dtype=np.float64, copy=True)
    alphas = []
    for s, y in reversed(pairs):
        rho = 1.0 / float(y @ s)
        a = rho * float(s @ q)
        q -= a * y
        alphas.append((rho, a))
    if pairs:
        s, y = pairs[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y), (rho, a) in zip(pairs, reversed(alphas)):
        b = rho * float(y @ q)
        q += (a - b) * s
    return -q


class LBFGS:
    """The curvature memory of one run and its iteration."""

    def __init__(self, memory=MEMORY):
        self.memory = memory
        self.pairs = []

    def _loss_grad(self, engine, net, X, Y, wd):
        loss = engine.loss_and_gradient(X, Y)
        g = net.grad.astype(np.float64)
        if wd:
            phi = net.phi.astype(np.float64)
            loss += 0.5 * wd * float(phi @ phi)
            g += wd * phi
        return loss, g

    def iterate(self, engine, net, X, Y, lr=1.0, weight_decay=0.0):
        """One iteration on φ (net.phi, in place); returns the loss before it. ``lr`` is the
        first step length tried along the direction."""
        f0, g0 = self._loss_grad(engine, net, X, Y, weight_decay)
        if not math.isfinite(f0):
            return f0
        d = two_loop(g0, self.pairs)
        slope = float(g0 @ d)
        if not slope < 0:   # not a descent direction (a stale memory): start afresh
            self.pairs.clear()
            d, slope = -g0, -float(g0 @ g0)
        if slope == 0:
            return f0   # a stationary point
        phi0 = net.phi.astype(np.float64)
        # The first iteration has no curvature: a step of lr / ‖g‖ along −g, as scipy does.
        t = lr if self.pairs else min(1.0, 1.0 / math.sqrt(-slope)) * lr
        for _ in range(MAX_BACKTRACKS):
            net.phi[:] = phi0 + t * d
            f, g = self._loss_grad(engine, net, X, Y, weight_decay)
            if math.isfinite(f) and f <= f0 + ARMIJO * t * slope:
                break
            t *= BACKTRACK
        else:
            net.phi[:] = phi0   # no step decreases the loss: stay
            self.pairs.clear()
            return f0
        s, y = t * d, g - g0
        if float(s @ y) > 1e-10 * float(y @ y):   # keep H positive definite
            self.pairs.append((s, y))
            del self.pairs[:-self.memory]
        return f0
