"""Layer kinds and the layout of φ: the one place that knows where each parameter lives.

φ (and ∂L/∂φ, and every optimiser state) is one flat array of P numbers: layer after layer,
each layer's slice holding its named parts in order. A dense layer's parts are Ω (n_out × n_in,
row-major) then β (n_out); the 3→3→3→1 network has P = 9+3 + 9+3 + 3+1 = 28. A KAN layer's
are wb (n_out × n_in), ws (n_out × n_in) and c (n_out × n_in × (G+k)); its knots
(n_in × (G+2k+1), `data_shape`) are not trained, so they are not in φ.

`parts` describes a kind's slice; `layout` and `n_params` derive everything else from it.
The Engine fills its Layer descriptors from `layout`, and `Network` makes its numpy views
from `layout` and `parts`, so the two cannot disagree.

A layer kind is: a code in layers.pxd, its parts, scratch and fixed data here (each a
function of the kind's `options`, the 4 ints of Layer.options: a KAN layer's are [G, k]), and
a forward/backward pair (dense.pyx, kan.pyx) that layer_forward / layer_backward (layers.pxd,
inline in the engine) dispatch to with one integer switch per layer per batch. The epoch
loop, the optimisers and the model format (beyond its per-layer kind tag, options and data)
do not change when a kind is added.
"""
from nncli._kernels.kan import kan_work_size


def _kan_options(options):
    if options is None or len(options) < 2:
        raise ValueError("a KAN layer needs its options [grid intervals G, spline order k]")
    return int(options[0]), int(options[1])


def parts(int kind, Py_ssize_t n_in, Py_ssize_t n_out, options=None):
    """[(name, shape)] of one layer's slice of φ, in storage order (row-major each)."""
    if kind == DENSE:
        return [("Ω", (n_out, n_in)), ("β", (n_out,))]
    if kind == KAN:
        G, k = _kan_options(options)
        return [("wb", (n_out, n_in)), ("ws", (n_out, n_in)), ("c", (n_out, n_in, G + k))]
    raise ValueError(f"unknown layer kind {kind}")


def work_per_row(int kind, Py_ssize_t n_in, Py_ssize_t n_out, options=None):
    """Scratch values a layer needs per batch row, beyond its f and h (dense: none)."""
    if kind == DENSE:
        return 0
    if kind == KAN:
        G, k = _kan_options(options)
        return kan_work_size(n_in, n_out, 1, G, k) - kan_work_size(n_in, n_out, 0, G, k)
    raise ValueError(f"unknown layer kind {kind}")


def work_size(int kind, Py_ssize_t n_in, Py_ssize_t n_out, Py_ssize_t capacity, options=None):
    """All the scratch a layer needs for batches of up to `capacity` rows: per row, plus
    what does not grow with the batch (a KAN layer's assembled weights and their gradient)."""
    if kind == KAN:
        G, k = _kan_options(options)
        return kan_work_size(n_in, n_out, capacity, G, k)
    return capacity * work_per_row(kind, n_in, n_out, options)


def data_shape(int kind, Py_ssize_t n_in, Py_ssize_t n_out, options=None):
    """Shape of the layer's fixed, untrained data (a KAN layer's knots, one row per input),
    or None."""
    if kind == DENSE:
        return None
    if kind == KAN:
        G, k = _kan_options(options)
        return (n_in, G + 2 * k + 1)
    raise ValueError(f"unknown layer kind {kind}")


def layout(sizes, kinds=None, options=None):
    """[(offset, length)] of each layer's slice of φ, for widths `sizes`, layer `kinds`
    (LayerKind codes; all dense when None) and each layer's `options` (None for dense)."""
    sizes = [int(n) for n in sizes]
    n_layers = len(sizes) - 1
    kinds = [DENSE] * n_layers if kinds is None else list(kinds)
    options = [None] * n_layers if options is None else list(options)
    if len(kinds) != n_layers or len(options) != n_layers:
        raise ValueError(f"{n_layers} layers need {n_layers} kinds and options, got "
                         f"{len(kinds)} and {len(options)}")
    out, off = [], 0
    for kind, opt, n_in, n_out in zip(kinds, options, sizes, sizes[1:]):
        count = 0
        for _, shape in parts(kind, n_in, n_out, opt):
            size = 1
            for n in shape:
                size *= n
            count += size
        out.append((off, count))
        off += count
    return out


def n_params(sizes, kinds=None, options=None):
    """P, the length of φ, for widths `sizes`, layer `kinds` and options."""
    return sum(count for _, count in layout(sizes, kinds, options))
