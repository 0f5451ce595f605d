"""Pictures: loss curves from training logs, model fits, and text plots for a terminal.

matplotlib is imported only inside the functions that draw (``pyplot()``), with the Agg
backend, so importing this module (and ``nncli --help``) stays fast and `terminal_plot`
works where matplotlib is not installed at all. Images are written atomically: to a temporary
file beside the target, then moved into place.
"""
import io
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

from nncli.errors import ConfigError, DataError, NncliError

IMAGE_FORMATS = ("png", "svg", "pdf")
REQUIRED_LOG_COLUMNS = ("epoch", "train_loss", "val_loss")


# -- matplotlib plumbing ---------------------------------------------------------------------

def pyplot():
    """matplotlib.pyplot on the Agg backend, or NncliError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise NncliError("drawing images needs matplotlib, which is not installed: "
                         "pip install matplotlib (or use --terminal where offered)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def image_format(path):
    """'png', 'svg' or 'pdf' from the file's extension; a usage error for anything else."""
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if ext not in IMAGE_FORMATS:
        raise ConfigError(f"cannot tell the image format of {os.fspath(path)!r}: "
                         f"use a .png, .svg or .pdf file name")
    return ext


def save_figure(fig, path, fmt=None):
    """fig.savefig atomically to `path`, then close it."""
    from nncli.model_io import atomic_path
    fmt = fmt or image_format(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=fig.dpi)
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


# -- loss logs --------------------------------------------------------------------------------

@dataclass
class LossCurve:
    """A loss log as read back: its columns by name, as float arrays (NaN where empty)."""
    path: str
    columns: dict          # name → np.ndarray, in the file's order

    @property
    def label(self):
        """The file name without folder and ``.csv`` / ``.loss.csv``: "iris" for iris.loss.csv."""
        if self.path == "-":
            return "stdin"
        name = os.path.basename(self.path)
        for suffix in (".loss.csv", ".csv", ".loss"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
        return name

    @property
    def epochs(self):
        return self.columns["epoch"]

    def has_values(self, name):
        return name in self.columns and bool(np.any(np.isfinite(self.columns[name])))

    @property
    def loss_name(self):
        """The loss the model beside this log was trained with ("mse"), or None."""
        if self.path == "-":
            return None
        base = os.path.join(os.path.dirname(self.path), self.label + ".npz")
        if not os.path.isfile(base):
            return None
        try:
            from nncli.model_io import load_model
            return load_model(base).network.loss
        except (NncliError, OSError, ValueError):
            return None


def read_loss_log(path):
    """Read a loss log (``epoch,train_loss,val_loss,<metrics…>,lr,seconds``) with the project's
    CSV reader (:mod:`nncli.csvio`).

    Empty cells and ``nan`` read as NaN. A row with the wrong number of cells or a cell that is
    not a number raises DataError naming file and line, except a last line without its newline
    (a log being written right now), which is skipped.
    """
    source = path
    if path == "-":   # read once: a log being written may need a second parse without its end
        source = io.BytesIO(sys.stdin.buffer.read())
        source.name = "<stdin>"
    try:
        return _parse_loss_log(source, path)
    except DataError:
        finished = _finished_lines(source)
        if finished is None:
            raise
        return _parse_loss_log(finished, path)


def _parse_loss_log(source, path):
    from nncli.csvio import UndecodableBytes, read_csv
    try:
        table = read_csv(source, sep=",", header_only_ok=True)
    except UndecodableBytes as e:   # nncli writes loss logs in UTF-8: no encoding to choose
        raise DataError(f"{e.place}: {e.detail}: not a loss log written by nncli") from None
    missing = [c for c in REQUIRED_LOG_COLUMNS if c not in table.names]
    if missing:
        raise DataError(f"{table.source}:1: not a loss log: no column {', '.join(map(repr, missing))} "
                        f"(the header is {','.join(table.names)!s})")
    columns = {}
    for j, col in enumerate(table.columns):
        values, bad = col.as_numbers()
        if bad:
            row, text = bad[0]
            raise DataError(f"{table.where(row, j)}: {text!r} is not a number")
        columns[col.name] = values
    epochs = columns["epoch"]
    if len(epochs) and not np.all(np.isfinite(epochs)):
        bad = int(np.argmin(np.isfinite(epochs)))
        raise DataError(f"{table.source}:{int(table.line_numbers[bad])}: the epoch is missing")
    return LossCurve(os.fspath(path) if path != "-" else "-", columns)


def _finished_lines(source):
    """The log without its last line when that line has no newline yet (being written), as a
    named binary stream; None when every line is finished or the source cannot be re-read."""
    try:
        if isinstance(source, io.BytesIO):
            data, name = source.getvalue(), source.name
        else:
            name = os.fspath(source)
            with open(name, "rb") as f:
                data = f.read()
    except (OSError, TypeError):
        return None
    if not data or data.endswith((b"\n", b"\r")) or b"\n" not in data:
        return None
    out = io.BytesIO(data[:data.rfind(b"\n") + 1])
    out.name = name
    return out


def curves(logs, metric=None):
    """[(label, log index, kind, x, y)] to draw: kind 'train' (solid) or 'val' (dashed).

    Without `metric`: train_loss and, where it has values, val_loss. With a metric: that column,
    or train_<metric> and val_<metric> when those are what the log has.
    """
    out = []
    several = len(logs) > 1
    names = [log.label for log in logs]
    if len(set(names)) < len(names):     # run1/x.loss.csv and run2/x.loss.csv: show the folders
        names = [os.path.join(os.path.dirname(log.path), log.label) for log in logs]
    for i, log in enumerate(logs):
        prefix = f"{names[i]} " if several else ""
        if metric is None:
            pairs = [("train", "train_loss"), ("val", "val_loss")]
        elif metric in log.columns:
            pairs = [("val" if metric.startswith("val_") else "train", metric)]
        elif f"train_{metric}" in log.columns or f"val_{metric}" in log.columns:
            pairs = [("train", f"train_{metric}"), ("val", f"val_{metric}")]
        else:
            extra = [c for c in log.columns if c not in ("epoch", "lr", "seconds")]
            # --metric does not fit the log: a usage error
            raise ConfigError(f"--metric {metric}: {log.path} has no column {metric!r}; it logs "
                              f"{', '.join(extra)}")
        if len(log.epochs) == 0:
            raise NncliError(f"{log.path}: no epochs logged yet")
        drawn = [(kind, col) for kind, col in pairs if log.has_values(col)]
        if not drawn:
            raise NncliError(f"{log.path}: the column {pairs[0][1]!r} has no values")
        for kind, col in drawn:
            word = {"train_loss": "train", "val_loss": "validation"}.get(col) or _words(col)
            # dashed tells validation from training: a lone curve is drawn solid
            out.append((prefix + word, i, kind if len(drawn) > 1 else "train",
                        log.epochs, log.columns[col]))
    return out


def _words(column):
    """'val_accuracy' → 'validation accuracy', 'train_f1' → 'train f1'."""
    for prefix, word in (("val_", "validation "), ("train_", "train ")):
        if column.startswith(prefix):
            return word + column[len(prefix):].replace("_", " ")
    return column.replace("_", " ")


def y_label(logs, metric):
    if metric is not None:
        return metric.removeprefix("val_").removeprefix("train_").replace("_", " ")
    names = {log.loss_name for log in logs} - {None}
    return f"loss ({names.pop()})" if len(names) == 1 else "loss"


def plot_loss(logs, path, *, metric=None, log_scale=False, title=None):
    """Train (solid) and validation (dashed, same colour) curves of every log in one image.

    logs: LossCurve objects or paths. The image format comes from the extension of `path`.
    """
    logs = [log if isinstance(log, LossCurve) else read_loss_log(log) for log in logs]
    fmt = image_format(path)
    lines = curves(logs, metric)
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    for label, i, kind, x, y in lines:
        ok = np.isfinite(y)
        many = ok.sum() > 60
        # Over many noisy epochs a dash pattern dissolves; a thinner, lighter line still reads.
        train_line = kind == "train"
        ax.plot(x[ok], y[ok], linestyle="-" if train_line else (0, (5, 2)),
                linewidth=1.8 if train_line else 1.3, alpha=1.0 if train_line else 0.75,
                color=colours[i % len(colours)], label=label,
                marker=None if many else "o", markersize=3)
    if log_scale:
        if any(np.any(y[np.isfinite(y)] <= 0) for *_, y in lines):
            ax.set_yscale("symlog", linthresh=1e-3)
        else:
            ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(y_label(logs, metric))
    ax.set_title(title or (f"{_words(metric)} per epoch" if metric else "training loss"))
    ax.grid(True, which="major", alpha=0.35)
    if log_scale:
        ax.grid(True, which="minor", alpha=0.12)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    save_figure(fig, path, fmt)
    return lines


# -- terminal plots -------------------------------------------------------------------------

# Braille cells hold 2×4 dots; bit of the dot at (column, row) inside a cell.
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_ANSI = ["\033[34m", "\033[33m", "\033[32m", "\033[31m", "\033[35m", "\033[36m"]
_RESET = "\033[0m"


@dataclass
class Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    colour: int = 0        # index into the palette; curves of one run share it
    dashed: bool = False   # drawn dotted, for validation curves


def _fmt(v):
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    a = abs(v)
    return f"{v:.3g}" if 1e-3 <= a < 1e5 else f"{v:.2e}"


def terminal_plot(series, width=80, height=20, *, log_scale=False, x_label="epoch",
                  y_label="", title=None, color=False):
    """Curves drawn with braille characters, as text: title, y ticks, x ticks, labels, legend.

    series: Series objects or (label, x, y) tuples. `width` and `height` are the whole plot's
    size in characters (lines). Non-finite points break a curve; with `log_scale` so do
    values ≤ 0. Validation (dashed) curves are drawn dotted; with `color` each run gets an
    ANSI colour, without it several runs are told apart only by the legend's order.
    """
    series = [s if isinstance(s, Series) else Series(s[0], np.asarray(s[1], float),
                                                      np.asarray(s[2], float), i)
              for i, s in enumerate(series)]
    tr = (lambda v: np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan)) if log_scale else (lambda v: v)
    pts = []
    for s in series:
        x, y = np.asarray(s.x, float), np.asarray(tr(np.asarray(s.y, float)), float)
        pts.append((x, y))
    allx = np.concatenate([x[np.isfinite(x) & np.isfinite(y)] for x, y in pts]) if pts else np.array([])
    ally = np.concatenate([y[np.isfinite(x) & np.isfinite(y)] for x, y in pts]) if pts else np.array([])
    if allx.size == 0:
        return (title + "\n" if title else "") + "(nothing to plot: no finite values)\n"
    x0, x1 = float(allx.min()), float(allx.max())
    y0, y1 = float(ally.min()), float(ally.max())
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    untr = (lambda v: 10 ** v) if log_scale else (lambda v: v)
    ticks_y = [y1, (y0 + y1) / 2, y0]
    labels_y = [_fmt(untr(v)) for v in ticks_y]
    lw = max(len(s) for s in labels_y)
    rows = max(3, height - 4 - bool(title) - bool(y_label))  # plot area in lines
    cols = max(10, width - lw - 2)                           # plot area in characters
    W, H = cols * 2, rows * 4                                # in dots
    cells = np.zeros((rows, cols), dtype=np.int32)
    owner = np.full((rows, cols), -1, dtype=np.int32)

    def dot(px, py, k):
        if 0 <= px < W and 0 <= py < H:
            r, c = py // 4, px // 2
            cells[r, c] |= _BRAILLE_BITS[px % 2][py % 4]
            owner[r, c] = k

    for k, (s, (x, y)) in enumerate(zip(series, pts)):
        px = np.round((x - x0) / (x1 - x0) * (W - 1))
        py = np.round((y1 - y) / (y1 - y0) * (H - 1))
        ok = np.isfinite(px) & np.isfinite(py)
        drawn = 0
        for i in range(len(px)):
            if not ok[i]:
                continue
            if i > 0 and ok[i - 1]:
                a, b = (px[i - 1], py[i - 1]), (px[i], py[i])
                n = int(max(abs(b[0] - a[0]), abs(b[1] - a[1]))) or 1
                for t in range(1, n + 1):
                    drawn += 1
                    if s.dashed and (drawn // 2) % 2:
                        continue
                    dot(int(round(a[0] + (b[0] - a[0]) * t / n)),
                        int(round(a[1] + (b[1] - a[1]) * t / n)), k)
            else:
                dot(int(px[i]), int(py[i]), k)

    def paint(text, k):
        return f"{_ANSI[series[k].colour % len(_ANSI)]}{text}{_RESET}" if color and k >= 0 else text

    out = []
    if title:
        out.append(title.center(lw + 2 + cols).rstrip())
    tick_rows = {0: labels_y[0], (rows - 1) // 2: labels_y[1], rows - 1: labels_y[2]}
    if y_label:
        out.append(f"{'':>{lw}}  {y_label}" if len(y_label) > lw else f"{y_label:>{lw}}")
    for r in range(rows):
        label = tick_rows.get(r, "")
        axis = "┤" if r in tick_rows else "│"
        line = "".join(paint(chr(0x2800 + int(cells[r, c])), int(owner[r, c])) if cells[r, c]
                       else " " for c in range(cols))
        out.append(f"{label:>{lw}} {axis}{line.rstrip()}")
    # x axis: ticks at both ends and the middle
    integer_x = bool(np.all(allx == np.round(allx)))
    xt = [x0, round((x0 + x1) / 2) if integer_x else (x0 + x1) / 2, x1]
    xl = [str(int(v)) if integer_x else _fmt(v) for v in xt]
    mid = int(round((xt[1] - x0) / (x1 - x0) * (cols - 1)))
    axis = ["─"] * cols
    for p in (0, mid, cols - 1):
        axis[p] = "┬"
    out.append(" " * lw + " └" + "".join(axis))
    ticks = [" "] * (cols + len(xl[-1]))
    for p, s in ((0, xl[0]), (mid - len(xl[1]) // 2, xl[1]), (cols - len(xl[2]), xl[2])):
        p = max(0, p)
        ticks[p:p + len(s)] = list(s)
    out.append(" " * (lw + 2) + "".join(ticks).rstrip())
    out.append(" " * (lw + 2) + x_label.center(cols).rstrip())
    legend = "  ".join(paint(("┄┄ " if s.dashed else "── ") + s.label, k) for k, s in enumerate(series))
    out.append(" " * (lw + 2) + legend + ("  (log scale)" if log_scale else ""))
    return "\n".join(out) + "\n"


def loss_series(logs, metric=None):
    """Series for terminal_plot from loss logs (train solid, validation dotted)."""
    logs = [log if isinstance(log, LossCurve) else read_loss_log(log) for log in logs]
    return logs, [Series(label, x, y, colour=i, dashed=kind == "val")
                  for label, i, kind, x, y in curves(logs, metric)]


# -- model fits -------------------------------------------------------------------------------

def architecture(network):
    """"1→3→1 relu" for a network (hidden activations named once when they agree)."""
    arch = "→".join(map(str, network.layers))
    if "kan" in network.kinds:
        o = next(o for o in network.options if o)
        return f"{arch} KAN G={o['grid']} k={o['order']}" if set(network.kinds) == {"kan"} \
            else f"{arch} {'/'.join(network.kinds)}"
    hidden = network.activations[:-1]
    acts = sorted(set(hidden), key=hidden.index)
    text = f"{arch} {'/'.join(acts)}" if acts else arch
    if network.activations[-1] != "identity":
        text += f", {network.activations[-1]} out"
    return text


def fit_curve(model, x_grid):
    """The model's output at each x of `x_grid`, in the data's units (schema applied)."""
    X = np.asarray(x_grid, dtype=np.float64).reshape(-1, 1)
    schema = model.schema
    if schema is not None:
        from nncli.data import Column, Table, decode_outputs, encode_features
        name = schema.inputs[0].name
        grid = Table([name], [Column(name, 0, values=X[:, 0].copy())], np.arange(len(X)) + 2,
                     "<grid>", ",", True, True)
        X = encode_features(grid, schema)
    out = model.network.predict(X)
    if schema is not None:
        out = decode_outputs(out, schema)
    return np.asarray(out, dtype=np.float64).reshape(-1)


def plot_fit(models, x, y, path, *, x_name="x", y_name="y", title=None, points=1000):
    """The data (x, y) as points and every model's curve over the range, in one image.

    models: [(label, Model)], each with one numeric input and one output.
    """
    fmt = image_format(path)
    x, y = np.asarray(x, float), np.asarray(y, float)
    lo, hi = float(np.min(x)), float(np.max(x))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    grid = np.linspace(lo - pad, hi + pad, points)
    fitted = [(label, fit_curve(model, grid)) for label, model in models]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    ax.scatter(x, y, s=12, color="0.55", alpha=0.7, label="data", zorder=2, edgecolors="none")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, curve) in enumerate(fitted):
        ax.plot(grid, curve, color=colours[i % len(colours)], linewidth=2.0, label=label, zorder=3)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(title or "model fit")
    ax.grid(True, alpha=0.35)
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    fig.tight_layout()
    save_figure(fig, path, fmt)
    return grid, fitted


def plot_sweep(rows, importances, path, *, title=None):
    """A sweep as an image: each trial's score and the best so far (left), and the share of
    the score's variation each searched option explains (right; empty with fewer than two
    completed trials). `rows` are nncli.sweep.trial_row dicts; `importances` name → share."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100,
                                 gridspec_kw={"width_ratios": [3, 2]})
    done = [r for r in rows if r["state"] == "complete" and r["score"] is not None]
    ax.scatter([r["trial"] for r in done], [r["score"] for r in done], s=18, label="trial")
    best, xs, ys = float("inf"), [], []
    for r in sorted(done, key=lambda r: r["trial"]):
        best = min(best, r["score"])
        xs.append(r["trial"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="C3", label="best so far")
    other = [r for r in rows if r["state"] in ("pruned", "failed")]
    if other:
        ax.scatter([r["trial"] for r in other], [min(ys or [0])] * len(other), marker="x",
                   color="0.6", s=14, label="pruned / failed")
    ax.set_xlabel("trial")
    ax.set_ylabel("score (validation loss)")
    ax.set_title("optimisation history")
    ax.legend(frameon=False)
    names = list(importances)[::-1]
    bx.barh(names, [importances[n] for n in names], color="C0")
    bx.set_xlabel("importance (fANOVA)")
    bx.set_title("parameter importance" if names else "importance: needs 2 completed trials")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)
# -- KAN edge functions ---------------------------------------------------------------------

def kan_edges(network, X, points=200):
    """Per KAN layer k: (x grid (points × n_in), φ_ji on it (points × n_out × n_in), the
    edges' importance a_ji = mean over the rows of X of |φ_ji(h_i)|, the paper's L1 norm)."""
    from nncli import kan
    out = []
    inputs = network.layer_inputs(X)
    for k, kind in enumerate(network.kinds):
        if kind != "kan":
            out.append(None)
            continue
        p, opt = network.parts[k], network.options[k]
        args = (p["wb"].astype(float), p["ws"].astype(float), p["c"].astype(float),
                network.grids[k].astype(float), opt["grid"], opt["order"])
        h = inputs[k]
        importance = np.abs(kan.edge_values(*args, h)).mean(0)          # (n_out, n_in)
        lo, hi = h.min(0), h.max(0)
        grid = lo[None, :] + np.linspace(0, 1, points)[:, None] * (hi - lo)[None, :]
        out.append((grid, kan.edge_values(*args, grid), importance))
    return out


def plot_kan(network, X, path, *, input_names=None, output_names=None, title=None):
    """Every edge function of a KAN, layer by layer: layer k is a block of n_out rows ×
    n_in columns of small plots, φ_ji drawn with alpha by its importance (relative to the
    layer's largest). Returns the importances per layer."""
    fmt = image_format(path)
    edges = kan_edges(network, X)
    blocks = [(k, e) for k, e in enumerate(edges) if e is not None]
    n_rows = sum(network.layers[k + 1] for k, _ in blocks)
    n_cols = max(network.layers[k] for k, _ in blocks)
    plt = pyplot()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.6 * n_cols + 0.6, 1.25 * n_rows + 0.8),
                             dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    row = 0
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (grid, values, importance) in blocks:
        n_in, n_out = network.layers[k], network.layers[k + 1]
        top = importance.max() or 1.0
        for j in range(n_out):
            for i in range(n_in):
                ax = axes[row + j, i]
                ax.set_visible(True)
                # sqrt: a tenth of the top importance still shows (alpha 0.36).
                alpha = float(min(1.0, 0.08 + 0.92 * np.sqrt(importance[j, i] / top)))
                ax.plot(grid[:, i], values[:, j, i], color=colours[k % len(colours)], alpha=alpha,
                        linewidth=1.8)
                ax.set_xticks([])
                ax.set_yticks([])
                for side in ax.spines.values():
                    side.set_alpha(max(alpha, 0.25))
                src = (input_names[i] if k == 0 and input_names else f"h{k}.{i + 1}")
                dst = (output_names[j] if k == len(edges) - 1 and output_names else f"h{k + 1}.{j + 1}")
                ax.set_title(f"{src}→{dst}  {importance[j, i]:.2g}", fontsize=7, alpha=max(alpha, 0.4))
        axes[row, 0].set_ylabel(f"layer {k + 1}", fontsize=8)
        axes[row, 0].yaxis.label.set_visible(True)
        row += n_out
    fig.suptitle(title or f"KAN {'→'.join(map(str, network.layers))}: edge functions "
                 "(alpha by importance, mean |φ| over the data)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, fmt)
    return [e[2] if e is not None else None for e in edges]
