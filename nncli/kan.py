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


def extend_knots(interior, k):
    """(n_in, G+1) increasing grid points → (n_in, G+2k+1) knots, k more each side at the
    mean step (pykan's extend_grid)."""
    interior = np.asarray(interior, dtype=np.float64)
    G = interior.shape[1] - 1
    h = (interior[:, -1] - interior[:, 0]) / G
    steps = np.arange(1, k + 1, dtype=np.float64)
    left = interior[:, :1] - steps[::-1][None, :] * h[:, None]
    right = interior[:, -1:] + steps[None, :] * h[:, None]
    return np.concatenate([left, interior, right], axis=1)


def refine(net, grid, X):
    """Give every KAN layer of `net` `grid` intervals, in place, keeping its function.

    As pykan's refine: the new grid points interpolate the old ones linearly (same range,
    same adaptivity), wb and ws are kept, and c is the least-squares fit of the old splines
    at the layer's inputs for the rows of X (and at points spread over the range). When the
    new grid holds the old one (5 → 10 on a uniform grid) the fit is exact: the function
    does not change. φ's length changes, so `net` gets a new φ and engine (a Trainer
    notices and restarts its optimiser state)."""
    inputs = net.layer_inputs(X)
    options, grids, new_c = [], [], {}
    for k, kind in enumerate(net.kinds):
        if kind != "kan":
            options.append(None)
            grids.append(None)
            continue
        G, order = net.options[k]["grid"], net.options[k]["order"]
        old = net.grids[k].astype(np.float64)
        u = np.linspace(0, G, grid + 1)
        interior = np.array([np.interp(u, np.arange(G + 1), row) for row in old[:, order:G + order + 1]])
        knots = extend_knots(interior, order)
        new_c[k] = fit_coefficients(net.parts[k]["c"].astype(np.float64), old, G, knots, grid,
                                    order, inputs[k])
        options.append({"grid": grid, "order": order})
        grids.append(knots)
    net.regrid(options, grids, lambda k, name, old: new_c[k] if name == "c" else old)
    return net


def adapt(net, X, eps=0.02):
    """Move every KAN layer's grid points to the quantiles of its inputs over the rows of X,
    in place, as pykan's update_grid_from_samples: ε·uniform + (1 − ε)·quantiles, ε = 0.02,
    on the inputs' range plus 1% each side; c refitted by least squares to the old splines.
    Layer by layer, since each layer's inputs depend on the grids before it. G and φ's
    length do not change."""
    for k, kind in enumerate(net.kinds):
        if kind != "kan":
            continue
        h = net.layer_inputs(X)[k] if k else np.asarray(X, dtype=np.float64)
        G, order = net.options[k]["grid"], net.options[k]["order"]
        lo, hi = h.min(0), h.max(0)
        margin = 0.01 * (hi - lo)
        lo, hi = lo - margin, hi + margin
        srt = np.sort(h, axis=0)
        ranks = np.floor(np.arange(G) * len(h) / G).astype(int)
        quant = np.concatenate([srt[ranks], hi[None, :]], axis=0).T        # (n_in, G+1)
        quant[:, 0] = lo
        uniform = lo[:, None] + np.linspace(0, 1, G + 1)[None, :] * (hi - lo)[:, None]
        interior = eps * uniform + (1 - eps) * quant
        # Repeated samples (a discrete input) would repeat knots: keep a minimal gap.
        gap = 1e-3 * np.maximum(hi - lo, 1e-6) / G
        for j in range(1, G + 1):
            interior[:, j] = np.maximum(interior[:, j], interior[:, j - 1] + gap)
        knots = extend_knots(interior, order)
        old = net.grids[k].astype(np.float64)
        c = fit_coefficients(net.parts[k]["c"].astype(np.float64), old, G, knots, G, order, h)
        net.grids[k][:] = knots
        net.parts[k]["c"][:] = c
    return net


class GridSchedule:
    """An epoch callback (nncli.training) that refines the KAN layers' grids during training.

    grids: intervals, the first the network's own ([5, 10, 20]: refine to 10, then to 20).
    The refinements happen after evenly spaced epochs (epochs·i/len(grids)), or after every
    `every` epochs. With `adapt`, the grids also move to the data's quantiles at each of those
    epochs (and, with `every` and one grid size, every `every` epochs). The training rows
    (trainer.X) are the samples of the least-squares refits, so a run is deterministic and
    resumes bit for bit. The optimiser restarts (zero moments, step 0) when P changes.
    """

    def __init__(self, grids, epochs, every=None, adapt=False):
        self.grids = [int(g) for g in grids]
        self.adapt = adapt
        n = len(self.grids) - 1
        if every:
            events = range(every, epochs, every) if (adapt and n == 0) else \
                [every * i for i in range(1, n + 1)]
        else:
            # At least after epoch 1: a refinement "at epoch 0" would never happen.
            events = [max(1, round(epochs * i / (n + 1))) for i in range(1, n + 1)]
        self.events = {}
        for i, e in enumerate(events):
            self.events[e] = self.grids[i + 1] if i < n else None

    def __call__(self, record, trainer):
        if record.epoch not in self.events:
            return False
        grid = self.events[record.epoch]
        if grid is not None:
            refine(trainer.net, grid, trainer.X)
            trainer.restart_optimizer()
        if self.adapt:
            adapt(trainer.net, trainer.X)
        return False


def prune(net, X, threshold=1e-2):
    """A copy of the all-KAN `net` without the hidden nodes whose incoming and outgoing edges
    are all faint (the paper's §2.5.1): node j of hidden layer l stays when its largest
    incoming importance max_i a_ji and its largest outgoing one max_m a_mj both exceed
    `threshold`, with a the edges' L1 norm over the rows of X, mean |φ(x)|. Returns
    (network, [kept node indices per hidden layer])."""
    from nncli.network import Network
    from nncli.plot import kan_edges
    if set(net.kinds) != {"kan"}:
        raise ValueError("pruning needs a network of KAN layers only")
    edges = kan_edges(net, X, points=2)
    kept = []
    for l in range(1, len(net.layers) - 1):
        a_in, a_out = edges[l - 1][2], edges[l][2]          # (n_l, n_{l−1}), (n_{l+1}, n_l)
        keep = np.flatnonzero((a_in.max(1) > threshold) & (a_out.max(0) > threshold))
        if len(keep) == 0:     # keep the most important node rather than cut the network
            keep = np.array([int(np.argmax(a_in.max(1) * a_out.max(0)))])
        kept.append(keep)
    rows = [np.arange(net.layers[0]), *kept, np.arange(net.layers[-1])]
    layers = [len(r) for r in rows]
    grids = [net.grids[k][rows[k]] for k in range(len(layers) - 1)]
    new = Network(layers, net.activations, net.loss, net.dtype.name, net.init,
                  kinds=net.kinds, options=net.options, grids=grids, seed=0)
    for k, parts in enumerate(new.parts):
        for name, view in parts.items():
            view[...] = net.parts[k][name][np.ix_(rows[k + 1], rows[k])]
    new.kan_penalty = net.kan_penalty
    return new, [r.tolist() for r in kept]
