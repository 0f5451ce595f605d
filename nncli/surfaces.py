"""Two-parameter loss surfaces and an optimiser walking down them (``nncli descend``).

A `Surface` pairs the loss L(φ1, φ2) with its gradient, written side by side so one can be
checked against the other, plus a default start, a plot range and a known minimum. Both
functions are vectorised over numpy arrays (the plot evaluates L on a grid).

`descend` drives the same optimiser kernels as training (``Optimizer.step`` on a float64
array of 2 numbers), one step at a time, and stops a path that diverges.

`from_expression` turns a user's formula in phi1, phi2 into a Surface with its exact
gradient from sympy. The text is never handed to Python's eval unchecked: its token stream
must hold only numbers, the two variable names, arithmetic operators, parentheses and
whitelisted function names before sympy parses it.
"""
import io
import math
import tokenize
from dataclasses import dataclass, field

import numpy as np

from nncli.errors import ConfigError, NncliError


class ExpressionError(ConfigError):
    """--expr is refused (not arithmetic, unparsable, undefined): a usage error, exit 2."""

DIVERGENCE_LIMIT = 1e6   # |φ_i| or |L| beyond this (or non-finite) ends a path


@dataclass(frozen=True)
class Surface:
    name: str
    formula: str                 # for help texts and plot titles
    loss: callable               # L(p1, p2) -> array, vectorised
    grad: callable               # (∂L/∂φ1, ∂L/∂φ2)(p1, p2) -> (array, array)
    start: tuple                 # default starting point
    xrange: tuple                # plot range of φ1
    yrange: tuple                # plot range of φ2
    minimum: tuple = None        # a global minimiser, if known


# -- the built-in surfaces: each loss beside its gradient ---------------------------------

def _bowl(p1, p2):
    return (p1 - 3.0) ** 2 + (p2 - 2.0) ** 2


def _bowl_grad(p1, p2):
    return 2.0 * (p1 - 3.0), 2.0 * (p2 - 2.0)


def _ravine(p1, p2):
    return 50.0 * p1 ** 2 + p2 ** 2


def _ravine_grad(p1, p2):
    return 100.0 * p1, 2.0 * p2


def _sincos(p1, p2):
    return (np.sin(p1) * np.cos(p2) + np.sin(p2) * np.cos(p1) + 2.0) / 4.0


def _sincos_grad(p1, p2):
    # sin φ1 cos φ2 + sin φ2 cos φ1 = sin(φ1 + φ2): both partials are cos(φ1 + φ2) / 4
    g = (np.cos(p1) * np.cos(p2) - np.sin(p2) * np.sin(p1)) / 4.0
    return g, g


def _rosenbrock(p1, p2):
    return (1.0 - p1) ** 2 + 100.0 * (p2 - p1 ** 2) ** 2


def _rosenbrock_grad(p1, p2):
    return -2.0 * (1.0 - p1) - 400.0 * p1 * (p2 - p1 ** 2), 200.0 * (p2 - p1 ** 2)


SURFACES = {s.name: s for s in [
    Surface("bowl", "(φ1 − 3)² + (φ2 − 2)²", _bowl, _bowl_grad,
            start=(0.0, 0.0), xrange=(-1.0, 5.0), yrange=(-1.0, 4.0), minimum=(3.0, 2.0)),
    Surface("ravine", "50·φ1² + φ2²", _ravine, _ravine_grad,
            start=(1.0, 2.0), xrange=(-1.5, 1.5), yrange=(-1.0, 2.5), minimum=(0.0, 0.0)),
    Surface("sincos", "(sin φ1·cos φ2 + sin φ2·cos φ1 + 2) / 4", _sincos, _sincos_grad,
            start=(1.0, 0.5), xrange=(-3.0, 3.0), yrange=(-3.0, 3.0),
            minimum=(-math.pi / 4, -math.pi / 4)),
    Surface("rosenbrock", "(1 − φ1)² + 100·(φ2 − φ1²)²", _rosenbrock, _rosenbrock_grad,
            start=(-1.2, 1.0), xrange=(-2.0, 2.0), yrange=(-1.0, 3.0), minimum=(1.0, 1.0)),
]}


# -- user expressions ----------------------------------------------------------------------

VARIABLES = {"phi1": "phi1", "phi2": "phi2", "φ1": "phi1", "φ2": "phi2", "x": "phi1", "y": "phi2"}
# name a user types → sympy attribute
FUNCTIONS = {"sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos",
             "atan": "atan", "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "exp": "exp",
             "log": "log", "sqrt": "sqrt", "abs": "Abs", "min": "Min", "max": "Max",
             "atan2": "atan2"}
CONSTANTS = {"pi": "pi", "e": "E"}
OPERATORS = {"+", "-", "*", "/", "**", "^", "(", ")", ","}
_SKIP = {tokenize.ENCODING, tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
         tokenize.DEDENT}


def _allowed_text():
    return ("numbers, phi1 and phi2 (or φ1 φ2, x y), + - * / ** ^ ( ), the constants pi and e, "
            "and the functions " + " ".join(FUNCTIONS))


def check_expression(text):
    """The expression's tokens as (kind, text), or ExpressionError naming the first one refused.

    Only numbers, the variable names, whitelisted functions and constants, and arithmetic
    operators pass: no attributes, strings, brackets, keywords or other names, so nothing
    reaches sympy's parser (which evaluates Python) that could do more than arithmetic.
    """
    if not text.strip():
        raise ExpressionError("--expr is empty")
    if len(text) > 2000:
        raise ExpressionError("--expr is too long (at most 2000 characters)")
    out = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as e:
        raise ExpressionError(f"cannot read --expr {text!r}: {e}") from None
    for tok in tokens:
        if tok.type in _SKIP:
            continue
        s = tok.string
        if tok.type == tokenize.NUMBER:
            if not all(c in "0123456789.eE+-_" for c in s) or s.lower().startswith("0x"):
                raise ExpressionError(f"--expr: {s!r} is not a plain decimal number")
            out.append(("number", s))
        elif tok.type == tokenize.NAME and (s in VARIABLES or s in FUNCTIONS or s in CONSTANTS):
            out.append(("name", s))
        elif tok.type == tokenize.OP and s in OPERATORS:
            out.append(("op", s))
        else:
            raise ExpressionError(f"--expr: {s!r} is not allowed; use only {_allowed_text()}")
    # A function name must be called, a variable or constant must not be.
    for (kind, s), nxt in zip(out, out[1:] + [("end", "")]):
        if kind == "name" and s in FUNCTIONS and nxt != ("op", "("):
            raise ExpressionError(f"--expr: the function {s} needs its argument in parentheses: {s}(…)")
        if kind == "name" and s not in FUNCTIONS and nxt == ("op", "("):
            raise ExpressionError(f"--expr: {s} is not a function (write {s}*(…) to multiply)")
    return out


def from_expression(text, start=None):
    """A Surface for the user's expression in phi1, phi2, with its gradient from sympy."""
    tokens = check_expression(text)
    try:
        import sympy
        from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations
    except ImportError:
        raise NncliError("--expr needs sympy, which is not installed: "
                         "pip install 'nncli[symbolic]' (or pip install sympy)") from None
    phi1, phi2 = sympy.Symbol("phi1", real=True), sympy.Symbol("phi2", real=True)
    symbols = {"phi1": phi1, "phi2": phi2}
    names = {name: symbols[v] for name, v in VARIABLES.items() if name.isascii()}
    names.update({name: getattr(sympy, attr) for name, attr in FUNCTIONS.items()})
    names.update({name: getattr(sympy, attr) for name, attr in CONSTANTS.items()})
    # φ1/φ2 are valid Python names, but rewrite them so sympy sees plain ASCII.
    source = " ".join(VARIABLES[s] if k == "name" and s in ("φ1", "φ2") else s for k, s in tokens)
    # Only sympy's number, symbol and arithmetic constructors are reachable, no builtins.
    global_dict = {"__builtins__": {}, "Integer": sympy.Integer, "Float": sympy.Float,
                   "Rational": sympy.Rational, "Symbol": sympy.Symbol, "Add": sympy.Add,
                   "Mul": sympy.Mul, "Pow": sympy.Pow}
    try:
        # Unevaluated, so that 9**9**9 is not computed as an exact integer (which would hang).
        expr = parse_expr(source, local_dict=names, global_dict=global_dict,
                          transformations=standard_transformations + (convert_xor,), evaluate=False)
    except Exception as e:   # SyntaxError, TypeError from a bad call, sympy's own errors…
        raise ExpressionError(f"cannot parse --expr {text!r}: {e.__class__.__name__}: {e}") from None
    if not isinstance(expr, sympy.Expr):
        raise ExpressionError(f"--expr {text!r} is not a numeric expression")
    try:
        expr = _fold_constants(expr, sympy, text)
    except ExpressionError:
        raise
    except Exception as e:
        raise ExpressionError(f"cannot evaluate --expr {text!r}: {e.__class__.__name__}: {e}") from None
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise ExpressionError(f"--expr {text!r} is infinite or undefined ({expr})")
    extra = expr.free_symbols - {phi1, phi2}
    if extra:
        raise ExpressionError(f"--expr: unknown variable(s) {', '.join(sorted(map(str, extra)))}; "
                         "use phi1 and phi2 (or x and y)")
    try:
        g1, g2 = sympy.diff(expr, phi1), sympy.diff(expr, phi2)
        f_loss, f_g1, f_g2 = (sympy.lambdify((phi1, phi2), f, modules="numpy") for f in (expr, g1, g2))
    except Exception as e:     # sympy has many ways to fail on odd input; none is a crash
        raise ExpressionError(f"cannot differentiate --expr {text!r}: {e.__class__.__name__}: {e}") from None

    def loss(p1, p2):
        with np.errstate(all="ignore"):
            return _real(f_loss(p1, p2), p1, p2)

    def grad(p1, p2):
        with np.errstate(all="ignore"):
            return _real(f_g1(p1, p2), p1, p2), _real(f_g2(p1, p2), p1, p2)

    start = tuple(start) if start is not None else (1.0, 1.0)
    return Surface("expr", str(expr).replace("phi1", "φ1").replace("phi2", "φ2"), loss, grad,
                   start=start, xrange=(start[0] - 3.0, start[0] + 3.0),
                   yrange=(start[1] - 3.0, start[1] + 3.0), minimum=None)


_MATH = {"sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
         "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh,
         "exp": math.exp, "log": math.log, "Abs": abs, "Max": max, "Min": min,
         "atan2": math.atan2}


def _fold_constants(expr, sympy, text):
    """`expr` with each number-only part computed in float64 (small exact ones kept), then
    evaluated: a constant that overflows or is undefined is an error, not a hang."""
    def value(node):
        if node.is_Number:
            return float(node)        # OverflowError for an integer beyond float64
        if node == sympy.pi:
            return math.pi
        if node == sympy.E:
            return math.e
        args = [value(a) for a in node.args]
        if node.is_Add:
            return math.fsum(args)
        if node.is_Mul:
            return math.prod(args)
        if node.is_Pow:
            return math.pow(*args)
        return _MATH[node.func.__name__](*args)

    def fold(node):
        if node.free_symbols:
            return node.func(*[fold(a) for a in node.args]) if node.args else node
        try:
            v = value(node)
        except (OverflowError, ValueError, ZeroDivisionError, KeyError, TypeError):
            v = math.nan
        if not math.isfinite(v):
            shown = str(node) if len(str(node)) <= 40 else str(node)[:37] + "..."
            raise ExpressionError(f"--expr {text!r}: the constant {shown} is too large for float64 "
                             "or undefined")
        if node.is_Rational and abs(v) < 2 ** 53 or node in (sympy.pi, sympy.E):
            return node
        return sympy.Integer(int(v)) if v == int(v) and abs(v) < 2 ** 53 else sympy.Float(v)

    return fold(expr)


def _real(value, p1, p2):
    """A lambdified value as float64 shaped like the inputs (constants broadcast)."""
    value = np.asarray(value)
    if np.iscomplexobj(value):
        value = np.where(np.abs(value.imag) > 0, np.nan, value.real)
    return np.broadcast_to(value.astype(np.float64), np.broadcast(p1, p2).shape).copy()


def get_surface(name=None, expr=None, start=None):
    """The named surface or the one given by an expression (exactly one of them)."""
    if expr is not None:
        return from_expression(expr, start)
    if name not in SURFACES:
        raise NncliError(f"unknown surface {name!r}; choose from {', '.join(SURFACES)} or give --expr")
    return SURFACES[name]


# -- descent -------------------------------------------------------------------------------

@dataclass
class Path:
    label: str                         # e.g. "adam" (or "adam lr=0.1" when names repeat)
    phi: list = field(default_factory=list)     # [(φ1, φ2)] for steps 0..n
    loss: list = field(default_factory=list)
    grad: list = field(default_factory=list)    # exact ∇L at φ_t (before any noise)
    diverged: str = None               # why the path stopped early, else None
    diverged_step: int = None

    @property
    def steps(self):
        return len(self.phi) - 1


def _evaluate(surface, phi):
    with np.errstate(all="ignore"):
        loss = float(np.asarray(surface.loss(phi[0], phi[1])))
        g1, g2 = surface.grad(phi[0], phi[1])
    return loss, np.array([float(np.asarray(g1)), float(np.asarray(g2))])


def _divergence(phi, loss, grad, limit):
    if not np.all(np.isfinite(phi)):
        return "φ is not finite"
    if not math.isfinite(loss):
        return f"the loss is not finite at φ = ({phi[0]:.4g}, {phi[1]:.4g})"
    if not np.all(np.isfinite(grad)):
        return f"the gradient is not finite at φ = ({phi[0]:.4g}, {phi[1]:.4g})"
    if np.max(np.abs(phi)) > limit:
        return f"|φ| reached {np.max(np.abs(phi)):.3g} (beyond {limit:g})"
    if abs(loss) > limit:
        return f"the loss reached {loss:.3g} (beyond {limit:g})"
    return None


def descend(surface, optimizer, start, steps, noise=0.0, rng=None, label=None,
            limit=DIVERGENCE_LIMIT):
    """Walk `optimizer` (an nncli.optim.Optimizer) down `surface` for `steps` steps from `start`.

    Each step hands the kernel ∇L(φ_t) plus N(0, noise²) per component. A path stops at the
    first point where φ, the loss or the gradient is non-finite or beyond `limit`; that point is
    kept when it is finite (so a plot shows where it went), and `Path.diverged` says why.
    """
    if noise and rng is None:
        raise ValueError("noise needs a random generator")
    path = Path(label or optimizer.name)
    phi = np.array(start, dtype=np.float64)
    loss, grad = _evaluate(surface, phi)
    reason = _divergence(phi, loss, grad, limit)
    if reason is not None:
        path.diverged, path.diverged_step = f"the start is unusable: {reason}", 0
        if np.all(np.isfinite(phi)) and math.isfinite(loss):
            _record(path, phi, loss, grad)
        return path
    _record(path, phi, loss, grad)
    for t in range(1, steps + 1):
        g = grad.copy()
        if noise:
            g += rng.normal(0.0, noise, 2)
        optimizer.step(phi, g)
        loss, grad = _evaluate(surface, phi)
        reason = _divergence(phi, loss, grad, limit)
        if reason is not None:
            if np.all(np.isfinite(phi)) and math.isfinite(loss):
                _record(path, phi, loss, grad)
            path.diverged, path.diverged_step = reason, t
            break
        _record(path, phi, loss, grad)
    return path


def _record(path, phi, loss, grad):
    path.phi.append((float(phi[0]), float(phi[1])))
    path.loss.append(float(loss))
    path.grad.append((float(grad[0]), float(grad[1])))


def plot_descent(surface, paths, out, *, title=None):
    """Contours of `surface` with every path overlaid; written atomically to `out`."""
    from nncli.plot import image_format, pyplot, save_figure
    fmt = image_format(out)
    plt = pyplot()
    xr, yr = _plot_range(surface, paths)
    gx, gy = np.meshgrid(np.linspace(*xr, 200), np.linspace(*yr, 200))
    with np.errstate(all="ignore"):
        z = np.asarray(surface.loss(gx, gy), dtype=np.float64)
    z = np.where(np.isfinite(z), z, np.nan)
    fig, ax = plt.subplots(figsize=(7, 5.6), dpi=100)
    levels, log = _levels(z)
    if levels is not None:
        from matplotlib import colors
        norm = colors.LogNorm(levels[0], levels[-1]) if log else None
        # Filled bands only: contour lines on top would triple the PNG's size for little gain.
        cf = ax.contourf(gx, gy, z if not log else np.maximum(z, levels[0]), levels=levels,
                         cmap="viridis", alpha=0.45, norm=norm)
        cb = fig.colorbar(cf, ax=ax, shrink=0.9)
        cb.set_label("loss" + (" (log scale)" if log else ""))
        from matplotlib.ticker import LogLocator, MaxNLocator
        cb.locator = LogLocator() if log else MaxNLocator(6)
        cb.update_ticks()
    if surface.minimum is not None:
        ax.plot(*surface.minimum, marker="*", color="gold", markeredgecolor="black",
                markersize=12, linestyle="none", label="minimum", zorder=8)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, p in enumerate(paths):
        if not p.phi:
            continue
        c = colours[i % len(colours)]
        xy = np.array(p.phi)
        status = f"diverged at step {p.diverged_step}" if p.diverged else f"{p.steps} steps, L = {p.loss[-1]:.3g}"
        ax.plot(xy[:, 0], xy[:, 1], "-", color=c, linewidth=1.6, marker=".", markersize=4,
                label=f"{p.label} ({status})", zorder=6)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=c, markeredgecolor="black", markersize=8, zorder=7)
        ax.plot(xy[-1, 0], xy[-1, 1], "X" if p.diverged else "s", color=c,
                markeredgecolor="black", markersize=11, zorder=7)
        if p.diverged and not _inside(xy[-1], xr, yr):
            # The path left the picture: say so where it was last seen.
            seen = [q for q in xy if _inside(q, xr, yr)]
            if seen:
                right = seen[-1][0] > (xr[0] + xr[1]) / 2     # keep the text inside the axes
                ax.annotate(f"{p.label} diverged (step {p.diverged_step})", xy=seen[-1],
                            xytext=(-8 if right else 8, -16), textcoords="offset points",
                            ha="right" if right else "left", color=c, fontsize=9,
                            fontweight="bold", zorder=8)
    ax.plot([], [], "o", color="white", markeredgecolor="black", label="start")
    ax.plot([], [], "s", color="white", markeredgecolor="black", label="end")
    if any(p.diverged for p in paths):
        ax.plot([], [], "X", color="white", markeredgecolor="black", label="diverged")
    ax.set_xlim(*xr)
    ax.set_ylim(*yr)
    ax.set_xlabel("φ1")
    ax.set_ylabel("φ2")
    ax.set_title(title or f"{surface.name}: L = {surface.formula}")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.grid(True, alpha=0.25)
    fig.tight_layout()
    save_figure(fig, out, fmt)


def _inside(point, xr, yr):
    return xr[0] <= point[0] <= xr[1] and yr[0] <= point[1] <= yr[1]


def _plot_range(surface, paths):
    """The surface's range, grown to hold every path point that stayed reasonably close."""
    xs, ys = list(surface.xrange), list(surface.yrange)
    w, h = xs[1] - xs[0], ys[1] - ys[0]
    for p in paths:
        for a, b in p.phi:
            # Points far outside (a diverging path) leave the picture rather than shrink it.
            if xs[0] - 2 * w <= a <= xs[1] + 2 * w and ys[0] - 2 * h <= b <= ys[1] + 2 * h:
                xs = [min(xs[0], a), max(xs[1], a)]
                ys = [min(ys[0], b), max(ys[1], b)]
    mx, my = 0.04 * (xs[1] - xs[0]), 0.04 * (ys[1] - ys[0])
    return (xs[0] - mx, xs[1] + mx), (ys[0] - my, ys[1] + my)


def _levels(z):
    """Contour levels: log-spaced when the loss spans several decades, else linear."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return None, False
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return None, False
    if lo >= 0:
        floor = max(lo, hi * 1e-6)     # a minimum of exactly 0 has no logarithm
        if hi / floor > 100:
            return np.geomspace(floor, hi, 20), True
    return np.linspace(lo, hi, 13), False
