"""Layer kinds and the layout of φ: the one place that knows where each parameter lives.

φ (and ∂L/∂φ, and every optimiser state) is one flat array of P numbers: layer after layer,
each layer's slice holding its named parts in order. A dense layer's parts are Ω (n_out × n_in,
row-major) then β (n_out); the 3→3→3→1 network has P = 9+3 + 9+3 + 3+1 = 28.

`parts` describes a kind's slice; `layout` and `n_params` derive everything else from it.
The Engine fills its Layer descriptors from `layout`, and `Network` makes its numpy views
from `layout` and `parts`, so the two cannot disagree.

A layer kind is: a code in layers.pxd, its parts (and scratch per row, if any) here, and a
forward/backward pair (dense.pyx) that layer_forward / layer_backward (layers.pxd, inline in
the engine) dispatch to with one integer switch per layer per batch. The epoch loop, the optimisers and the model format
(beyond its per-layer kind tag) do not change when a kind is added.
"""


def parts(int kind, Py_ssize_t n_in, Py_ssize_t n_out):
    """[(name, shape)] of one layer's slice of φ, in storage order (row-major each)."""
    if kind == DENSE:
        return [("Ω", (n_out, n_in)), ("β", (n_out,))]
    raise ValueError(f"unknown layer kind {kind}")


def work_per_row(int kind, Py_ssize_t n_in, Py_ssize_t n_out):
    """Scratch values a layer needs per batch row, beyond its f and h (dense: none)."""
    if kind == DENSE:
        return 0
    raise ValueError(f"unknown layer kind {kind}")


def layout(sizes, kinds=None):
    """[(offset, length)] of each layer's slice of φ, for widths `sizes` and layer `kinds`
    (LayerKind codes; all dense when None)."""
    sizes = [int(n) for n in sizes]
    n_layers = len(sizes) - 1
    kinds = [DENSE] * n_layers if kinds is None else list(kinds)
    if len(kinds) != n_layers:
        raise ValueError(f"{n_layers} layers need {n_layers} kinds, got {len(kinds)}")
    out, off = [], 0
    for kind, n_in, n_out in zip(kinds, sizes, sizes[1:]):
        count = 0
        for _, shape in parts(kind, n_in, n_out):
            size = 1
            for n in shape:
                size *= n
            count += size
        out.append((off, count))
        off += count
    return out


def n_params(sizes, kinds=None):
    """P, the length of φ, for widths `sizes` and layer `kinds` (all dense when None)."""
    return sum(count for _, count in layout(sizes, kinds))
