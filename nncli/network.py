"""The network: layer sizes and kinds, activations, a loss, and one flat parameter vector φ.

φ holds one slice per layer, laid out by ``nncli._kernels.layers.layout`` (the engine reads
the same layout): for a dense layer Ω_k (n_{k+1} × n_k, row-major) then β_k (n_{k+1}).
``weights`` and ``biases`` are views into it, so an optimiser step, a checkpoint or a gradient
check works on one array. The 3→3→3→1 network has P = 9+3 + 9+3 + 3+1 = 28 parameters.

A KAN layer (kind "kan", nncli.kan) holds wb, ws and c in φ; its knots, which are not
trained, are `grids[k]` (n_in × (G+2k+1), φ's dtype), stored beside φ in model files.
"""
import numpy as np

from nncli._kernels import layers as _layers
from nncli._kernels.engine import Engine
from nncli import kan as _kan
from nncli.functions import ACTIVATIONS, INITS, LAYER_KINDS, LOSSES, lookup

DTYPES = {"float32": np.float32, "float64": np.float64}


def n_params(layers, kinds=None, options=None):
    """P, the number of parameters of a network with widths `layers`, layer kinds (names;
    all dense when None) and their options (see `layer_options`). The one count: model
    files, gradcheck and info use it."""
    n = len(layers) - 1
    kinds = ["dense"] * n if kinds is None else list(kinds)
    return _layers.n_params(layers, _kind_codes(kinds, n),
                            _option_ints(kinds, layer_options(kinds, options)))


def layer_options(kinds, options=None):
    """Each layer's options: a dict per KAN layer ({"grid": G, "order": k}), None per dense
    layer. `options` is one dict for every KAN layer, or a list with one entry per layer."""
    if options is None or isinstance(options, dict):
        options = [options if kind == "kan" else None for kind in kinds]
    options = list(options)
    if len(options) != len(kinds):
        raise ValueError(f"{len(kinds)} layers need {len(kinds)} options, got {len(options)}")
    out = []
    for kind, opt in zip(kinds, options):
        if kind == "kan":
            out.append(_kan.layer_options(opt))
        elif opt:
            raise ValueError(f"a {kind} layer takes no options, got {opt}")
        else:
            out.append(None)
    return out


def _option_ints(kinds, options):
    """Layer options as the kernels' Layer.options ints."""
    return [(o["grid"], o["order"]) if kind == "kan" else None for kind, o in zip(kinds, options)]


def _kind_codes(kinds, n_layers):
    kinds = ["dense"] * n_layers if kinds is None else kinds
    return [lookup(LAYER_KINDS, k, "layer kind").code for k in kinds]


def class_indicators(labels, n_out):
    """Integer class labels as targets: one-hot rows for n_out outputs (softmax, or bce over
    classes); one 0/1 column for a single sigmoid output."""
    low, high = (0, 1) if n_out == 1 else (0, n_out - 1)
    bad = labels[(labels < low) | (labels > high)]
    if len(bad):
        raise ValueError(f"class labels must lie in {low}..{high} for a network with {n_out} "
                         f"output{'s' if n_out > 1 else ''}; got {bad[0]}")
    return labels.reshape(-1, 1) if n_out == 1 else np.eye(n_out)[labels]


def default_threads():
    """All cores this process may use (respects OMP_NUM_THREADS and CPU affinity)."""
    import os
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        n = min(n, int(env))
    return max(1, n)


class Network:
    """A multi-layer perceptron with its parameters in one contiguous array.

    layers: widths [n_inputs, hidden..., n_outputs].
    activations: one name for every hidden layer, or a list with one per hidden layer, or one
        per layer (hidden layers then the output layer). The output activation defaults to
        identity: cross-entropy and bce include their softmax/sigmoid in the loss.
    kinds: one layer kind (a name in LAYER_KINDS) per layer; all dense when None.
    options: the KAN layers' {"grid": G, "order": k} (one dict for all, or one per layer;
        default grid 5, order 3). grids: each KAN layer's knots (None: uniform on [−1, 1];
        `fit_grids` sets them from data).
    """

    def __init__(self, layers, activations="relu", loss="mse", dtype="float32",
                 init="auto", seed=None, phi=None, kinds=None, options=None, grids=None):
        layers = [int(n) for n in layers]
        if len(layers) < 2 or min(layers) < 1:
            raise ValueError("layers needs at least an input and an output width, all ≥ 1")
        self.layers = layers
        self.kinds = ["dense"] * (len(layers) - 1) if kinds is None else list(kinds)
        if len(self.kinds) != len(layers) - 1:
            raise ValueError(f"{len(layers) - 1} layers need {len(layers) - 1} kinds, "
                             f"got {len(self.kinds)}")
        self._kind_codes = _kind_codes(self.kinds, len(layers) - 1)
        self.options = layer_options(self.kinds, options)
        self._option_ints = _option_ints(self.kinds, self.options)
        self.loss = lookup(LOSSES, loss, "loss").name
        self.activations = self._resolve_activations(activations)
        if dtype not in DTYPES and np.dtype(dtype).name not in DTYPES:
            raise ValueError(f"dtype must be float32 or float64, not {dtype}")
        self.dtype = np.dtype(dtype)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
        self.init = init
        self.grids = self._make_grids(grids)
        self.kan_penalty = (0.0, 0.0)
        self.phi = np.zeros(self.n_params, dtype=self.dtype)
        self.grad = np.zeros(self.n_params, dtype=self.dtype)
        self._engine = None
        self._views()
        if phi is not None:
            phi = np.asarray(phi)
            if phi.shape != (self.n_params,):
                raise ValueError(f"phi has shape {phi.shape}, the layers need ({self.n_params},)")
            self.phi[:] = phi
        else:
            self.initialize(np.random.default_rng(seed))

    def _make_grids(self, grids):
        """Each layer's knots (a KAN layer's, checked; None for dense)."""
        n = len(self.layers) - 1
        grids = [None] * n if grids is None else list(grids)
        if len(grids) != n:
            raise ValueError(f"{n} layers need {n} grids (None for a dense layer), got {len(grids)}")
        out = []
        for k, (kind, opt, g) in enumerate(zip(self.kinds, self.options, grids)):
            if kind != "kan":
                out.append(None)
                continue
            G, order = opt["grid"], opt["order"]
            if g is None:
                g = _kan.uniform_knots(-np.ones(self.layers[k]), np.ones(self.layers[k]), G, order)
            g = np.array(g, dtype=self.dtype, order="C")
            _kan.check_knots(g, G, order)
            if g.shape[0] != self.layers[k]:
                raise ValueError(f"layer {k + 1}'s knots have {g.shape[0]} rows for {self.layers[k]} inputs")
            out.append(g)
        return out

    def _resolve_activations(self, activations):
        n_layers = len(self.layers) - 1
        names = [activations] * (n_layers - 1) if isinstance(activations, str) else list(activations)
        if len(names) == n_layers - 1:
            names = names + ["identity"]
        if len(names) != n_layers:
            raise ValueError(f"{n_layers} layers need {n_layers - 1} hidden activations "
                             f"(or {n_layers} with the output's), got {len(names)}")
        for name in names:
            lookup(ACTIVATIONS, name, "activation")
        if LOSSES[self.loss].output != "value" and names[-1] != "identity":
            raise ValueError(f"the {self.loss} loss applies its own output function; "
                             f"the output activation must be identity, not {names[-1]}")
        return names

    # -- the flat parameter vector -------------------------------------------------------
    @property
    def n_params(self):
        return _layers.n_params(self.layers, self._kind_codes, self._option_ints)

    def layer_ranges(self):
        """[slice of φ] of each layer, in order."""
        return [slice(off, off + n) for off, n in
                _layers.layout(self.layers, self._kind_codes, self._option_ints)]

    def param_parts(self):
        """[(name, slice of φ, shape)] for every part of every layer, in φ order; names
        carry the layer number, as in Ω1, β1, Ω2... (wb1, ws1, c1 for a KAN layer)"""
        out = []
        slices = _layers.layout(self.layers, self._kind_codes, self._option_ints)
        for k, ((off, _), code) in enumerate(zip(slices, self._kind_codes)):
            for name, shape in _layers.parts(code, self.layers[k], self.layers[k + 1],
                                             self._option_ints[k]):
                size = int(np.prod(shape))
                out.append((f"{name}{k + 1}", slice(off, off + size), shape))
                off += size
        return out

    def _views(self):
        """Per-part numpy views into φ and ∂L/∂φ: `parts[k]` / `grad_parts[k]` map each part's
        name to its view for layer k; the dense layers' Ω_k and β_k are also in weights and
        biases (in layer order)."""
        n = len(self.layers) - 1
        self.parts = [{} for _ in range(n)]
        self.grad_parts = [{} for _ in range(n)]
        self.weights, self.biases, self.grad_weights, self.grad_biases = [], [], [], []
        for name, s, shape in self.param_parts():
            base, k = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")):]) - 1
            self.parts[k][base] = self.phi[s].reshape(shape)
            self.grad_parts[k][base] = self.grad[s].reshape(shape)
            if base in ("Ω", "β"):
                values, grads = (self.weights, self.grad_weights) if base == "Ω" else (self.biases, self.grad_biases)
                values.append(self.parts[k][base])
                grads.append(self.grad_parts[k][base])

    def initialize(self, rng, init=None):
        """Random Ω, zero β. 'auto' picks He for relu-like layers and Glorot otherwise.
        A KAN layer is initialised as pykan does it (nncli.kan.initialize)."""
        init = init or self.init
        for k, act in enumerate(self.activations):
            if self.kinds[k] == "kan":
                p, opt = self.parts[k], self.options[k]
                _kan.initialize(p["wb"], p["ws"], p["c"], self.grids[k].astype(np.float64),
                                opt["grid"], opt["order"], rng)
                continue
            W, b = self.parts[k]["Ω"], self.parts[k]["β"]
            n_out, n_in = W.shape
            kind = ACTIVATIONS[act].init if init == "auto" else init
            if kind == "he":
                W[:] = rng.normal(0.0, np.sqrt(2.0 / n_in), W.shape)
            elif kind == "glorot":
                lim = np.sqrt(6.0 / (n_in + n_out))
                W[:] = rng.uniform(-lim, lim, W.shape)
            elif kind == "normal":
                W[:] = rng.normal(0.0, 0.01, W.shape)
            else:  # uniform, as PyTorch's default Linear init
                lim = 1.0 / np.sqrt(n_in)
                W[:] = rng.uniform(-lim, lim, W.shape)
            b[:] = 0

    # -- kernels -------------------------------------------------------------------------
    def engine(self, capacity, n_threads=None):
        """The kernel engine with buffers for batches of up to `capacity` rows (cached)."""
        n_threads = n_threads or default_threads()
        e = self._engine
        if e is None or e.capacity < capacity:
            e = Engine(self.layers, [ACTIVATIONS[a].code for a in self.activations],
                       LOSSES[self.loss].code, self.phi, self.grad, capacity, n_threads,
                       self._kind_codes, self._option_ints, self.grids,
                       [self.kan_penalty if kind == "kan" else None for kind in self.kinds])
            self._engine = e
        e.n_threads = n_threads
        return e

    def as_input(self, X):
        X = np.ascontiguousarray(X, dtype=self.dtype)
        if X.ndim == 1:
            X = X.reshape(-1, 1) if self.layers[0] == 1 else X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.layers[0]:
            raise ValueError(f"X must have {self.layers[0]} columns, got shape {X.shape}")
        return X

    def as_target(self, Y, n_rows):
        """Y as the kernels read it, (n_rows, n_out) in φ's dtype. For a classification loss,
        n_rows integer class labels (a 1-D array) are accepted too and one-hot encoded."""
        Y = np.asarray(Y)
        n_out = self.layers[-1]
        classes = LOSSES[self.loss].output != "value"
        if classes and Y.ndim == 1 and len(Y) == n_rows and np.issubdtype(Y.dtype, np.integer):
            Y = class_indicators(Y, n_out)
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if Y.ndim == 1:
            Y = Y.reshape(-1, 1) if n_out == 1 else Y.reshape(1, -1)
        if Y.shape != (n_rows, n_out):
            labels = f" or {n_rows} integer class labels" if classes else ""
            raise ValueError(f"Y must have shape ({n_rows}, {n_out}){labels}, got {Y.shape}")
        return Y

    # Rows evaluated per kernel call when only predicting: buffers stay small for big inputs.
    EVAL_CHUNK = 4096

    def _eval_engine(self, n_rows, n_threads):
        return self.engine(min(n_rows, self.EVAL_CHUNK) or 1, n_threads)

    def forward(self, X, n_threads=None):
        """Raw outputs f_K (logits for cross-entropy/bce)."""
        X = self.as_input(X)
        return self._eval_engine(len(X), n_threads).evaluate(X, outputs=True, transform=False)[1]

    def predict(self, X, n_threads=None):
        """Outputs as the loss reads them: probabilities for cross-entropy/bce, else values."""
        X = self.as_input(X)
        return self._eval_engine(len(X), n_threads).evaluate(X, outputs=True, transform=True)[1]

    def loss_value(self, X, Y, n_threads=None):
        """Mean loss over the rows of X, Y."""
        X = self.as_input(X)
        Y = self.as_target(Y, len(X))
        return self._eval_engine(len(X), n_threads).evaluate(X, Y)[0]

    def loss_and_gradient(self, X, Y, n_threads=None):
        """(mean loss, ∂L/∂φ as a new flat array of length P) over all rows at once."""
        X = self.as_input(X)
        Y = self.as_target(Y, len(X))
        loss = self.engine(len(X), n_threads).loss_and_gradient(X, Y)
        return loss, self.grad.copy()

    def copy(self, dtype=None):
        """An independent copy (in `dtype`, if given)."""
        return Network(self.layers, self.activations, self.loss, dtype or self.dtype.name,
                       self.init, phi=self.phi, kinds=self.kinds, options=self.options,
                       grids=self.grids)

    def layer_specs(self):
        """Each layer as a plain description, for exporters and tools: kind, widths,
        activation, options ({"grid", "order"} for KAN, None for dense), knots (a KAN
        layer's, n_in × (G+2k+1); None for dense) and its parts of φ by name (numpy views,
        row-major: dense Ω (n_out × n_in), β; KAN wb, ws (n_out × n_in), c (n_out × n_in ×
        (G+k))). A KAN layer computes y_j = Σ_i wb_ji·silu(x_i) + ws_ji·Σ_m c_jim·B_m(x_i)
        with B_m the order-k B-splines on input i's knots, x clamped to
        [knots[i, k], knots[i, G+k]] inside the spline term (nncli._kernels.kan)."""
        return [{"kind": kind, "inputs": self.layers[k], "outputs": self.layers[k + 1],
                 "activation": self.activations[k], "options": self.options[k],
                 "knots": self.grids[k], "parts": dict(self.parts[k])}
                for k, kind in enumerate(self.kinds)]

    def regularize(self, l1=0.0, entropy=0.0):
        """The KAN layers' sparsity penalty in training (paper eq. 2.17–2.20): l1·Σ|φ_ji|₁ +
        entropy·S per KAN layer, added to each batch's loss (nncli._kernels.kan). The loss the
        engine reports stays the prediction loss."""
        if l1 < 0 or entropy < 0:
            raise ValueError("the KAN penalties must not be negative")
        self.kan_penalty = (float(l1), float(entropy))
        self._engine = None
        return self

    def regrid(self, options, grids, new_part):
        """Replace the KAN layers' options and knots (a grid refinement), in place: φ is
        rebuilt for the new layout from new_part(k, name, old values) for each part of
        layer k (dense layers keep theirs). P changes, so φ, ∂L/∂φ and the engine are new."""
        old_parts = self.parts
        self.options = layer_options(self.kinds, options)
        self._option_ints = _option_ints(self.kinds, self.options)
        self.grids = self._make_grids(grids)
        self.phi = np.zeros(self.n_params, dtype=self.dtype)
        self.grad = np.zeros(self.n_params, dtype=self.dtype)
        self._engine = None
        self._views()
        for k, parts in enumerate(self.parts):
            for name, view in parts.items():
                old = old_parts[k][name]
                view[...] = new_part(k, name, old) if self.kinds[k] == "kan" else old
        return self

    def prefix(self, n_layers):
        """The first `n_layers` layers as a network of their own (a copy; mse loss): its
        outputs are the inputs of layer n_layers + 1."""
        end = self.layer_ranges()[n_layers - 1].stop
        return Network(self.layers[:n_layers + 1], self.activations[:n_layers], "mse",
                       self.dtype.name, self.init, phi=self.phi[:end], kinds=self.kinds[:n_layers],
                       options=self.options[:n_layers], grids=self.grids[:n_layers])

    def layer_inputs(self, X):
        """[h_0 = X, h_1, …]: the input of every layer for the rows of X, in float64."""
        X = self.as_input(X)
        out = [X.astype(np.float64)]
        for k in range(1, len(self.layers) - 1):
            out.append(self.prefix(k).forward(X).astype(np.float64))
        return out

    def fit_grids(self, X, extremes=None):
        """Set every KAN layer's grid range to the range of its inputs over the rows of X (for
        hidden layers, at least [−1, 1]), plus 1% each side, layer by layer (each range
        depends on the grids before it). The spline values on the grid points are kept (c is
        the same, only the range moves). ``extremes(lo, hi)`` → the range over all rows, when
        X is one part of them."""
        for k, kind in enumerate(self.kinds):
            if kind != "kan":
                continue
            h = self.prefix(k).forward(X).astype(np.float64) if k else self.as_input(X).astype(np.float64)
            opt = self.options[k]
            lo, hi = h.min(0), h.max(0)
            if extremes is not None:   # data-parallel: over every rank's rows
                lo, hi = extremes(lo, hi)
            if k:
                # Hidden values grow from their small initial range as training goes on;
                # [−1, 1] at least (pykan's range) leaves them room (test RMSE 0.011 → 0.0067
                # on the hello-world benchmark).
                lo, hi = np.minimum(lo, -1.0), np.maximum(hi, 1.0)
            # 1% margin each side (as efficient-kan): the extreme rows lie inside the grid,
            # not on the edge where the constant extension starts.
            margin = 0.01 * (hi - lo)
            self.grids[k][:] = _kan.uniform_knots(lo - margin, hi + margin, opt["grid"], opt["order"])
        return self

    def __repr__(self):
        arch = "→".join(map(str, self.layers))
        if "kan" in self.kinds:
            arch += " (" + ",".join(self.kinds) + ")"
        return f"Network({arch}, activations={self.activations}, loss={self.loss!r}, P={self.n_params}, {self.dtype.name})"
