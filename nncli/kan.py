"""KAN layers on the Python side: their options, knots, initialisation and grid refits.

The arithmetic of a KAN layer (bases, forward, backward) is in ``nncli._kernels.kan``; this
module does what happens once per run or once per grid change, with numpy:

- `layer_options`: a layer's {"grid": G, "order": k}, checked.
- `uniform_knots`: G intervals on [lo, hi] per input, extended by k knots each side at the
  same step (efficient-kan's and pykan's grid).
- `initialize`: pykan's init (KANLayer, noise_scale 0.3 as in MultKAN): wb ~ U(−1, 1)/√n_in,
  ws = 1/√n_in, c the least-squares (minimum-norm) spline through uniform noise
  ±0.15/G at the G+1 grid points.
- `fit_coefficients`: c of a new grid (finer, or moved to the data's quantiles) fitted by least
  squares to the old edge splines at sample points, so the function barely moves.
- `edge_values`: φ_ji(x) of every edge, for plots and the L1 importance of the paper.
"""
import numpy as np

from nncli._kernels import kan as _kan

DEFAULT_GRID = 5
DEFAULT_ORDER = 3
MAX_GRID = 1000
MAX_ORDER = 7
NOISE_SCALE = 0.3


def layer_options(opt=None):
    """{"grid": G, "order": k} from a dict (missing keys take the defaults), checked."""
    opt = dict(opt or {})
    unknown = set(opt) - {"grid", "order"}
    if unknown:
        raise ValueError(f"a KAN layer takes the options grid and order, not {', '.join(sorted(unknown))}")
    G = opt.get("grid", DEFAULT_GRID)
    k = opt.get("order", DEFAULT_ORDER)
    for name, v, lo, hi in (("grid", G, 1, MAX_GRID), ("order", k, 1, MAX_ORDER)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ValueError(f"a KAN layer's {name} must be a whole number in {lo}..{hi}, got {v!r}")
    return {"grid": int(G), "order": int(k)}


def uniform_knots(lo, hi, G, k, dtype=np.float64):
    """(n_in, G+2k+1) knots: G equal intervals on [lo_i, hi_i], k more each side."""
    lo = np.atleast_1d(np.asarray(lo, dtype=np.float64))
    hi = np.atleast_1d(np.asarray(hi, dtype=np.float64))
    # A constant input would give zero-length intervals: give it a unit range instead.
    flat = ~(hi - lo > 1e-6)
    mid = (lo + hi) / 2
    lo = np.where(flat, mid - 1, lo)
    hi = np.where(flat, mid + 1, hi)
    h = (hi - lo) / G
    steps = np.arange(-k, G + k + 1, dtype=np.float64)
    return np.ascontiguousarray(lo[:, None] + steps[None, :] * h[:, None], dtype=dtype)


def check_knots(knots, G, k):
    """A ValueError unless every row of `knots` is G+2k+1 finite, strictly increasing values."""
    knots = np.asarray(knots)
    if knots.ndim != 2 or knots.shape[1] != G + 2 * k + 1:
        raise ValueError(f"knots must have G+2k+1 = {G + 2 * k + 1} columns, got shape {knots.shape}")
    if not np.all(np.isfinite(knots)) or not np.all(np.diff(knots, axis=1) > 0):
        raise ValueError("knots must be finite and strictly increasing along each input")


def bases(x, knots_row, G, k, derivative=False):
    """(len(x), G+k) matrix of B_c(x) (or B′_c) on one input's knots, in float64."""
    return _kan.bases(np.ascontiguousarray(x, dtype=np.float64),
                      np.ascontiguousarray(knots_row, dtype=np.float64), G, k, derivative)


def initialize(wb, ws, c, knots, G, k, rng):
    """pykan's init, in place (see the module's docstring)."""
    n_out, n_in = wb.shape
    wb[:] = rng.uniform(-1.0, 1.0, wb.shape) / np.sqrt(n_in)
    ws[:] = 1.0 / np.sqrt(n_in)
    noise = (rng.uniform(size=(n_in, G + 1, n_out)) - 0.5) * NOISE_SCALE / G
    for i in range(n_in):
        A = bases(knots[i, k:G + k + 1], knots[i], G, k)
        c[:, i, :] = np.linalg.lstsq(A, noise[i], rcond=None)[0].T


def spline_values(c_i, knots_row, G, k, x):
    """Σ_c c_jc B_c(x) for every output j: (len(x), n_out)."""
    return bases(x, knots_row, G, k) @ np.asarray(c_i, dtype=np.float64).T


def fit_coefficients(c_old, knots_old, G_old, knots_new, G_new, k, samples):
    """c on knots_new (n_out, n_in, G_new+k) fitted by least squares to the splines
    c_old on knots_old at `samples` (N × n_in, plus the new grid's points, so that every
    new basis is seen)."""
    n_out, n_in, _ = c_old.shape
    c_new = np.empty((n_out, n_in, G_new + k))
    for i in range(n_in):
        lo, hi = knots_new[i, k], knots_new[i, G_new + k]
        pts = np.linspace(lo, hi, 2 * (G_new + k) + 1)
        x = np.concatenate([np.asarray(samples[:, i], dtype=np.float64), pts])
        target = spline_values(c_old[:, i, :], knots_old[i], G_old, k, x)
        A = bases(x, knots_new[i], G_new, k)
        c_new[:, i, :] = np.linalg.lstsq(A, target, rcond=None)[0].T
    return c_new


def edge_values(wb, ws, c, knots, G, k, x):
    """φ_ji(x_i) for samples x (N × n_in): an (N, n_out, n_in) array."""
    x = np.asarray(x, dtype=np.float64)
    silu = x / (1 + np.exp(-x))
    out = np.empty((len(x), wb.shape[0], wb.shape[1]))
    for i in range(wb.shape[1]):
        out[:, :, i] = (wb[:, i][None, :] * silu[:, i:i + 1]
                        + ws[:, i][None, :] * spline_values(c[:, i, :], knots[i], G, k, x[:, i]))
    return out
