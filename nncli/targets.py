"""Class weights and label smoothing, as changes to the classification targets.

The softmax cross-entropy kernel (``_kernels/losses.pyx``) computes, per row with logits z
and target y, ℓ = Σ_j y_j · (log Σ_k e^{z_k}) − Σ_j y_j z_j and ∂ℓ/∂z = (Σ_j y_j)·softmax(z) − y.
So the target row is the whole story, and no kernel changes:

* class weight w_c: y = w_c · e_c gives ℓ = w_c · (−log p_c) and ∂ℓ/∂z = w_c · (p − e_c),
  the weighted cross-entropy exactly;
* label smoothing ε over K classes: y = (1 − ε) · e_c + ε / K, the usual smoothed target.

Both apply to the rows trained on; the class weights also to the validation rows, so early
stopping watches the loss being minimised. Predictions are unchanged in form (the outputs
stay a softmax); accuracy reads the argmax of y, which neither change moves.
"""
from __future__ import annotations

import numpy as np

from nncli.errors import ConfigError
from nncli.params import check


def parse_class_weight(spec, classes: list[str]) -> dict | str | None:
    """'balanced', or 'A=2,B=0.5' (classes not named weigh 1), as the config stores it:
    'balanced' or {class: weight}. None: no weights."""
    if spec is None or spec == "none":
        return None
    if spec == "balanced":
        return spec
    if isinstance(spec, dict):
        pairs = list(spec.items())
    else:
        pairs = []
        for item in str(spec).split(","):
            name, eq, w = item.rpartition("=")
            if not eq or not name.strip():
                raise ConfigError(f"--class-weight takes 'balanced' or CLASS=WEIGHT,…, not {spec!r}")
            pairs.append((name.strip(), w))
    out = {}
    for name, w in pairs:
        if name not in classes:
            raise ConfigError(f"--class-weight names {name!r}, which is not a class "
                              f"({', '.join(map(repr, classes))})")
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise ConfigError(f"--class-weight: the weight of {name!r} must be a number, not {w!r}") from None
        if not w > 0 or w == float("inf"):
            raise ConfigError(f"--class-weight: the weight of {name!r} must be positive, not {w!r}")
        out[name] = w
    return out


def class_weights(spec, classes: list[str], labels: np.ndarray) -> np.ndarray | None:
    """float64 (K,): the weight of each class. 'balanced': n / (K · n_c) over ``labels`` (the
    training rows' class indices), as scikit-learn computes it; a class absent from them
    weighs 1."""
    spec = parse_class_weight(spec, classes)
    if spec is None:
        return None
    k = len(classes)
    if spec == "balanced":
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        w = np.ones(k)
        present = counts > 0
        w[present] = len(labels) / (k * counts[present])
        return w
    return np.array([spec.get(c, 1.0) for c in classes], np.float64)


def shape_targets(Y: np.ndarray, weights=None, smoothing=0.0) -> np.ndarray:
    """One-hot rows Y (n, K) → smoothed, then weighted by their class: a new array."""
    check("label_smoothing", smoothing)
    out = np.array(Y, dtype=np.float64, copy=True)
    if smoothing:
        out = (1.0 - smoothing) * out + smoothing / out.shape[1]
    if weights is not None:
        out *= weights[np.argmax(Y, axis=1)][:, None]
    return out
