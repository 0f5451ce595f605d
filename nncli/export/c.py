"""The model as one C99 header, no dependency beyond libm: weights, preprocessing, forward pass.

Generated code, in the header's order:
  NAME_N_INPUTS, NAME_N_FEATURES, NAME_N_OUTPUTS; names of the input columns, classes and
  each categorical column's vocabulary (NAME_vocab_<k>, k the input's position);
  NAME_category(k, text): a category's index (−1 when unseen), for callers holding text;
  NAME_encode(in, x): fill missing inputs, standardise, one-hot (a category comes in as its
    index; anything not in 0..V−1 is unseen and encodes as zeros, as nncli does);
  NAME_predict_encoded(x, out) and NAME_predict(in, out).
Arithmetic in the model's dtype (float or double), libm's float functions for float models, as
nncli's kernels do; softmax in double as nncli does. The network's layers are written out one
after another (sizes are constants), each a plain dot-product loop; a KAN layer's B-spline
bases come from the kernel's own triangular Cox–de Boor recursion (NAME_kan_bases). Missing
indicators and the capped one-hot's `other` input are encoded as nncli encodes them; date
columns are refused (a float input cannot hold seconds since 1970 to the hour). An ensemble's
members are written one after another (NAME_m<i>_w<k>) and their outputs averaged in double.

`fixed=B` writes the Q-format variant: int32 values with B fraction bits, int64 accumulators,
one rounding per dot product; NAME_predict_q(x_q, out_q) takes the encoded features in Q format
and gives the network's last layer in Q format (the logits for a classifier, whose most
probable class it returns; values in the target's units for regression), and NAME_predict
wraps it for callers with floats. Only piecewise-linear activations (relu, leaky_relu,
identity) are exact in integers; others are refused. The worst-case error bound for encoded
features within ±FIXED_INPUT_RANGE is computed here by interval arithmetic and written in
the header (and reported by the CLI).
"""
import numpy as np

from nncli._version import __version__
from nncli.errors import NncliError
from nncli.export.common import check_schema, network_layers, output_transform

FIXED_ACTIVATIONS = ("relu", "leaky_relu", "identity")
FIXED_INPUT_RANGE = 8.0   # the fixed-point bound holds for encoded features within ±8

_FLOAT_ACT = {   # C expression of a(v) for float (f) and double (d) models
    "identity": ("v", "v"),
    "relu": ("(v > 0 ? v : 0.0f)", "(v > 0 ? v : 0.0)"),
    "leaky_relu": ("(v > 0 ? v : v * 0.01f)", "(v > 0 ? v : v * 0.01)"),
    "elu": ("(v > 0 ? v : expm1f(v))", "(v > 0 ? v : expm1(v))"),
    "gelu": ("0.5f * v * (1.0f + erff(v * 0.70710678118654752440f))",
             "0.5 * v * (1.0 + erf(v * 0.70710678118654752440))"),
    "tanh": ("tanhf(v)", "tanh(v)"),
    "sigmoid": ("(v >= 0 ? 1.0f / (1.0f + expf(-v)) : expf(v) / (1.0f + expf(v)))",
                "(v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v)))"),
    "softplus": ("((v > 0 ? v : 0.0f) + log1pf(expf(-fabsf(v))))",
                 "((v > 0 ? v : 0.0) + log1p(exp(-fabs(v))))"),
    "sin": ("sinf(v)", "sin(v)"),
}


def _c_string(s):
    out = []
    for ch in s.encode("utf-8"):
        c = chr(ch)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= ch < 127 and c != "?":   # '?' escaped: no trigraphs
            out.append(c)
        else:
            out.append(f"\\{ch:03o}")
    return '"' + "".join(out) + '"'


def _comment(s):
    return s.replace("*/", "* /").replace("\n", " ")


def _floats(a, double):
    # The shortest decimal that reads back as the same float (or double): exact, and short.
    if double:
        return ", ".join(np.format_float_scientific(v, unique=True) for v in np.ravel(a))
    return ", ".join(np.format_float_scientific(v, unique=True) + "f"
                     for v in np.asarray(a, np.float32).ravel())


def _array(lines, ctype, name, values, per_line=6):
    values = list(values) or ["0"]   # C has no empty arrays
    lines.append(f"static const {ctype} {name}[{len(values)}] = {{")
    for i in range(0, len(values), per_line):
        lines.append("    " + ", ".join(values[i:i + per_line]) + ",")
    lines.append("};")


def _split(s):
    return [v.strip() for v in s.split(", ")] if s else []


class _Header:
    def __init__(self, model, name, fixed):
        self.model, self.name, self.fixed = model, name, fixed
        self.network = model.network
        # An Ensemble (--ensemble N): every member's layers, their outputs averaged.
        self.members = [network_layers(m) for m in getattr(self.network, "members", [self.network])]
        if fixed and len(self.members) > 1:
            raise NncliError("--fixed does not support ensembles (--ensemble); export them in "
                             "floating point")
        self.schema = model.schema
        self.layers = self.members[0]
        if self.schema is not None:
            check_schema(self.schema, why=" (a date needs seconds since 1970 in double "
                                          "precision, which the float inputs cannot hold; "
                                          "the ONNX export takes dates)")
        self.double = self.network.dtype == np.float64
        self.real = "double" if self.double else "float"
        self.transform = output_transform(self.network)
        self.lines = []

    # -- pieces ---------------------------------------------------------------------------
    def describe(self):
        n, net, s = self.name, self.network, self.schema
        task = s.task if s is not None else "network"
        L = self.lines
        L += [f"/* {n}.h: an nncli {'→'.join(map(str, net.layers))} {task} model "
              f"({net.loss}, {net.dtype.name}), exported by nncli {__version__}.",
              " * C99, no dependency beyond libm (link with -lm). Generated: do not edit.", " *"]
        if s is not None:
            L.append(f" * {n}_predict(in, out): in[{n}_N_INPUTS], one float per input column:")
            for k, c in enumerate(s.inputs):
                if c.kind == "categorical":
                    what = (f"categorical: the index of its category in {n}_vocab_{k} "
                            f"({len(c.vocabulary)} categories; see {n}_category); any other "
                            "value is an unseen category ("
                            + ("its 'other' input" if getattr(c, "other", False) else "all zeros")
                            + ")")
                elif c.kind == "boolean":
                    what = "boolean: 1 for true/yes, 0 for false/no"
                else:
                    what = "numeric"
                if getattr(c, "number_format", None):
                    what += " (the number itself, without the CSV's units or separators)"
                if getattr(c, "indicator", False):
                    what += ", with a missing indicator"
                fill = ("no fill value: a NaN makes the call return -1" if c.impute is None
                        else f"NaN is filled with {c.impute!r}")
                L.append(f" *   in[{k}] {_comment(c.name)}: {_comment(what)}; {_comment(fill)}")
            if s.task == "classification":
                L.append(f" * out[{n}_N_OUTPUTS]: the probability of each class ({n}_classes); "
                         "returns the most probable class's index.")
            elif s.task == "regression":
                L.append(f" * out[{n}_N_OUTPUTS]: the targets ({', '.join(map(_comment, s.target_names))}) "
                         "in their units; returns 0.")
            else:
                L.append(f" * out[{n}_N_OUTPUTS]: the reconstruction of the encoded features, "
                         "numeric ones in their units; returns 0.")
            L.append(" * Returns -1 (and NaN outputs) when an input without a fill value is NaN.")
        L.append(f" * {n}_predict_encoded(x, out): x[{n}_N_FEATURES], features encoded as nncli "
                 "encodes them (standardised, one-hot).")
        if self.fixed:
            L.append(f" * Fixed point Q{self.fixed}: {n}_predict_q(x_q, out_q) on int32 values "
                     f"with {self.fixed} fraction bits; out_q is the last layer before any "
                     "softmax/sigmoid.")
        L.append(" */")

    def preamble(self):
        n, N = self.name, self.name.upper()
        s, net = self.schema, self.network
        L = self.lines
        L += [f"#ifndef {N}_H", f"#define {N}_H", "", "#include <math.h>"]
        if self.fixed:
            L.append("#include <stdint.h>")
        L.append("")
        widths = net.layers
        L += [f"#define {N}_N_FEATURES {widths[0]}", f"#define {N}_N_OUTPUTS {widths[-1]}",
              f"#define {N}_MAX_WIDTH {max(widths)}"]
        if s is not None:
            L.append(f"#define {N}_N_INPUTS {len(s.inputs)}")
        L.append("")
        if s is not None:
            L.append(f"static const char *const {n}_input_names[{len(s.inputs)}] = "
                     f"{{{', '.join(_c_string(c.name) for c in s.inputs)}}};")
            if s.task == "classification":
                L.append(f"static const char *const {n}_classes[{len(s.classes)}] = "
                         f"{{{', '.join(map(_c_string, s.classes))}}};")
            for k, c in enumerate(s.inputs):
                if c.kind == "categorical":
                    L.append(f"static const char *const {n}_vocab_{k}[{len(c.vocabulary)}] = "
                             f"{{{', '.join(map(_c_string, c.vocabulary))}}};  "
                             f"/* {_comment(c.name)} */")
            L.append("")

    def array(self, kind, k, member=0):
        """The name of layer k's array `kind` (w, b, t): NAME_w1, or NAME_m2_w1 in an ensemble."""
        return (f"{self.name}_{kind}{k}" if len(self.members) == 1
                else f"{self.name}_m{member + 1}_{kind}{k}")

    def weights(self):
        for member, layers in enumerate(self.members):
            self.member_weights(member, layers)

    def member_weights(self, member, layers):
        n, L = self.name, self.lines
        if len(self.members) > 1:
            L.append(f"/* ensemble member {member + 1} of {len(self.members)} */")
        for k, layer in enumerate(layers, 1):
            n_out, n_in = layer.W.shape
            if layer.kind == "kan":
                L.append(f"/* layer {k}: KAN {layer.n_in} → {n_out} (grid {layer.grid}, order "
                         f"{layer.order}), {layer.activation}; W = [wb | ws⊙c] row-major, knots "
                         f"per input */")
                _array(L, self.real, self.array("w", k, member), _split(_floats(layer.W, self.double)))
                _array(L, self.real, self.array("t", k, member), _split(_floats(layer.knots, self.double)))
                continue
            L.append(f"/* layer {k}: {n_in} → {n_out}, {layer.activation}; W row-major (out × in) */")
            if self.fixed:
                _array(L, "int32_t", self.array("w", k, member), map(str, _quantise(layer.W, self.fixed)), 8)
                _array(L, "int32_t", self.array("b", k, member), map(str, _quantise(layer.b, self.fixed)), 8)
            else:
                _array(L, self.real, self.array("w", k, member), _split(_floats(layer.W, self.double)))
                _array(L, self.real, self.array("b", k, member), _split(_floats(layer.b, self.double)))
        L.append("")

    def category_lookup(self):
        s, n, L = self.schema, self.name, self.lines
        cats = [(k, c) for k, c in enumerate(s.inputs) if c.kind == "categorical"]
        L += ["/* The index of `text` among input column k's categories, or -1 (unseen, or k not",
              " * categorical). Text is compared exactly: trimmed, as in the CSV. */",
              f"static inline int {n}_category(int k, const char *text) {{",
              "    const char *const *vocab = 0;", "    int size = 0, i, j;",
              "    switch (k) {"]
        for k, c in cats:
            L.append(f"    case {k}: vocab = {n}_vocab_{k}; size = {len(c.vocabulary)}; break;")
        L += ["    default: return -1;", "    }",
              "    for (i = 0; i < size; i++) {",
              "        for (j = 0; vocab[i][j] && vocab[i][j] == text[j]; j++) {}",
              "        if (vocab[i][j] == text[j]) return i;", "    }", "    return -1;", "}", ""]

    def encoder(self):
        s, n, L = self.schema, self.name, self.lines
        r = self.real
        L += ["/* Inputs → encoded features: fill, standardise, one-hot. 0, or -1 when an input",
              " * without a fill value is NaN (x is then all NaN). */",
              f"static inline int {n}_encode(const float *in, {r} *x) {{",
              "    double v;", "    int i;", "    (void)i;"]
        at = 0
        for k, c in enumerate(s.inputs):
            L.append(f"    v = in[{k}];  /* {_comment(c.name)} */")
            if c.kind == "categorical":
                imp = -1 if c.impute is None else c.vocabulary.index(c.impute)
                miss = "goto missing;" if c.impute is None else f"v = {imp};"
                V = len(c.vocabulary)
                known = f"v >= 0 && v < {V} && v == (double)(int)v"
                L += [f"    if (isnan(v)) {{ {miss} }}",
                      f"    for (i = 0; i < {c.width}; i++) x[{at} + i] = 0;",
                      f"    if ({known}) x[{at} + (int)v] = 1;"]
                if getattr(c, "other", False):   # any other value: the 'other' input
                    L[-1] += f" else x[{at + V}] = 1;"
            else:
                miss = "goto missing;" if c.impute is None else f"v = {float(c.impute)!r};"
                if getattr(c, "indicator", False):   # 1 where the cell was missing
                    L.append(f"    x[{at + 1}] = (isnan(v) || isinf(v)) ? 1 : 0;")
                L += [f"    if (isnan(v) || isinf(v)) {{ {miss} }}",
                      f"    x[{at}] = ({r})((v - {float(c.mean)!r}) / {float(c.std)!r});"]
            at += c.width
        L += ["    return 0;"]
        if any(c.impute is None for c in s.inputs):
            L += ["missing:", f"    for (i = 0; i < {n.upper()}_N_FEATURES; i++) x[i] = ({r})NAN;",
                  "    return -1;"]
        L += ["}", ""]

    def kan_helpers(self):
        """The B-spline bases and silu exactly as nncli's KAN kernel computes them."""
        n, r, L = self.name, self.real, self.lines
        K = max(l.order for l in self.layers if l.kind == "kan")
        sig = _FLOAT_ACT["sigmoid"][1 if self.double else 0]
        L += ["/* KAN: the k+1 non-zero B-splines of order k at x on knots t (G+2k+1 of them) into",
              " * N, x clamped to [t_k, t_{G+k}] (a NaN to t_k), as nncli's kernel computes them:",
              " * Cox–de Boor on the span (The NURBS Book, A2.2). Returns the span s: N[r] is",
              " * B_{s-k+r}(x). */",
              f"static inline int {n}_kan_bases({r} x, const {r} *t, int G, int k, {r} *N) {{",
              f"    {r} left[{K + 1}], right[{K + 1}], saved, temp, den;",
              "    int lo = k, hi = G + k - 1, mid, j, q;",
              "    if (x != x || x < t[k]) x = t[k]; else if (x > t[G + k]) x = t[G + k];",
              "    while (lo < hi) { mid = (lo + hi + 1) / 2; if (t[mid] <= x) lo = mid; else hi = mid - 1; }",
              "    N[0] = 1;",
              "    for (j = 1; j <= k; j++) {",
              "        left[j] = x - t[lo + 1 - j];", "        right[j] = t[lo + j] - x;",
              "        saved = 0;",
              "        for (q = 0; q < j; q++) {",
              "            den = right[q + 1] + left[j - q];",
              "            temp = den != 0 ? N[q] / den : 0;",
              "            N[q] = saved + right[q + 1] * temp;",
              "            saved = left[j - q] * temp;", "        }",
              "        N[j] = saved;", "    }", "    return lo;", "}", "",
              f"static inline {r} {n}_silu({r} v) {{",
              f"    {r} s = {sig};", "    return s != 0 ? v * s : 0;   /* the limit at -inf */", "}", ""]

    def kan_layer(self, k, layer, fl, member=0):
        n, r, L = self.name, self.real, self.lines
        n_out, width = layer.W.shape
        n_in, G, K = layer.n_in, layer.grid, layer.order
        nb, nk = G + K, G + 2 * K + 1
        L += [f"    {{  /* layer {k}: KAN, A = [silu(a) | bases(a)], b = act(W·A) */",
              f"        {r} A[{width}], N[{K + 1}];", "        int s, q;",
              f"        for (i = 0; i < {width}; i++) A[i] = 0;",
              f"        for (i = 0; i < {n_in}; i++) {{",
              f"            A[i] = {n}_silu(a[i]);",
              f"            s = {n}_kan_bases(a[i], {self.array('t', k, member)} + i * {nk}, {G}, {K}, N);",
              f"            for (q = 0; q <= {K}; q++) A[{n_in} + i * {nb} + s - {K} + q] = N[q];",
              "        }",
              f"        for (j = 0; j < {n_out}; j++) {{",
              f"            const {r} *w = {self.array('w', k, member)} + j * {width};",
              "            v = 0;",
              f"            for (i = 0; i < {width}; i++) v += w[i] * A[i];",
              f"            b[j] = {_FLOAT_ACT[layer.activation][fl]};", "        }", "    }",
              f"    for (j = 0; j < {n_out}; j++) a[j] = b[j];"]

    def forward_float(self):
        n, N, L, r = self.name, self.name.upper(), self.lines, self.real
        fl = 0 if not self.double else 1
        L += ["/* The network on encoded features x: out = the outputs as nncli predict's network",
              " * gives them (probabilities for a classifier). Returns the most probable class",
              " * for a classifier, else 0. */",
              f"static inline int {n}_predict_encoded(const {r} *x, float *out) {{",
              f"    {r} a[{N}_MAX_WIDTH], b[{N}_MAX_WIDTH], v;",
              f"    double acc, sum[{N}_N_OUTPUTS];", "    int i, j, best = 0;",
              "    (void)acc;", "    (void)sum;"]
        m = self.network.layers[-1]
        M = len(self.members)
        for member, layers in enumerate(self.members):
            if M > 1:
                L.append(f"    /* ensemble member {member + 1} of {M} */")
            L.append(f"    for (i = 0; i < {N}_N_FEATURES; i++) a[i] = x[i];")
            for k, layer in enumerate(layers, 1):
                n_out, n_in = layer.W.shape
                if layer.kind == "kan":
                    self.kan_layer(k, layer, fl, member)
                    continue
                L += [f"    for (j = 0; j < {n_out}; j++) {{  /* layer {k} */",
                      f"        const {r} *w = {self.array('w', k, member)} + j * {n_in};",
                      f"        v = {self.array('b', k, member)}[j];",
                      f"        for (i = 0; i < {n_in}; i++) v += w[i] * a[i];",
                      f"        b[j] = {_FLOAT_ACT[layer.activation][fl]};", "    }",
                      f"    for (j = 0; j < {n_out}; j++) a[j] = b[j];"]
            if self.transform == "softmax":   # in double, max subtracted, as nncli's kernel
                L += ["    acc = a[0];", f"    for (j = 1; j < {m}; j++) if (a[j] > acc) acc = a[j];",
                      "    {", "        double s = 0.0, e[" + str(m) + "];",
                      f"        for (j = 0; j < {m}; j++) {{ e[j] = exp((double)a[j] - acc); s += e[j]; }}",
                      f"        for (j = 0; j < {m}; j++) a[j] = ({r})(e[j] / s);", "    }"]
            elif self.transform == "sigmoid":
                v = _FLOAT_ACT["sigmoid"][fl]
                L += [f"    for (j = 0; j < {m}; j++) {{ v = a[j]; a[j] = {v}; }}"]
            if M > 1:   # the members' mean, summed in double as nncli.ensemble does
                op = "=" if member == 0 else "+="
                L.append(f"    for (j = 0; j < {m}; j++) sum[j] {op} (double)a[j];")
        if M > 1:
            L.append(f"    for (j = 0; j < {m}; j++) a[j] = ({r})(sum[j] / {M});")
        L += [f"    for (j = 0; j < {m}; j++) {{ out[j] = (float)a[j]; if (a[j] > a[best]) best = j; }}"]
        L += ["    return " + ("best;" if self.transform != "value" else "0;"), "}", ""]

    def decode_lines(self, src):
        """C lines turning `src[j]` (double) network outputs into user units in out[j]."""
        s = self.schema
        if s.task == "regression":
            return [f"    out[{j}] = (float)({src}[{j}] * {float(sd)!r} + {float(mu)!r});"
                    for j, (mu, sd) in enumerate(zip(s.target_mean, s.target_std))]
        if s.task == "reconstruct":
            lines, at = [], 0
            for c in s.inputs:
                if c.kind != "categorical":
                    lines.append(f"    out[{at}] = (float)({src}[{at}] * {float(c.std)!r} + {float(c.mean)!r});")
                at += c.width
            return lines
        return []

    def predict_float(self):
        n, N, L, r = self.name, self.name.upper(), self.lines, self.real
        L += ["/* One row of input columns → what nncli predict gives (see the top). */",
              f"static inline int {n}_predict(const float *in, float *out) {{",
              f"    {r} x[{N}_N_FEATURES];", "    double y[" + N + "_N_OUTPUTS];",
              "    int i, ret;", "    (void)y;",
              f"    if ({n}_encode(in, x) != 0) {{",
              f"        for (i = 0; i < {N}_N_OUTPUTS; i++) out[i] = (float)NAN;",
              "        return -1;", "    }",
              f"    ret = {n}_predict_encoded(x, out);"]
        dec = self.decode_lines("y")
        if dec:
            L += [f"    for (i = 0; i < {N}_N_OUTPUTS; i++) y[i] = out[i];"] + dec
        L += ["    return ret;", "}", ""]

    # -- fixed point --------------------------------------------------------------------
    def forward_fixed(self):
        n, N, L, B = self.name, self.name.upper(), self.lines, self.fixed
        half = 1 << (B - 1)
        L += [f"#define {N}_Q {B}", f"#define {N}_ONE ((int32_t)1 << {B})",
              "/* Worst-case |error| of out_q in the last layer's units, for encoded features",
              f" * within ±{FIXED_INPUT_RANGE:g}: {self.bound_layer!r} */",
              f"#define {N}_ERROR_BOUND {self.bound_layer!r}", "",
              f"static inline int32_t {n}_sat(int64_t v) {{",
              "    return v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : (int32_t)v;", "}", "",
              f"/* A Q{2 * B} sum to Q{B}, rounded to nearest (halves away from zero), saturated.",
              " * Shifts only non-negative values: C99 leaves shifting negative ones to the compiler. */",
              f"static inline int32_t {n}_round(int64_t acc) {{",
              f"    return {n}_sat(acc >= 0 ? (acc + {half}) >> {B} : -((-acc + {half}) >> {B}));", "}", "",
              "/* x_q: encoded features in Q format; out_q: the last layer (before softmax/",
              " * sigmoid) in Q format. Integer arithmetic only. Returns the most probable class",
              " * for a classifier, else 0. */",
              f"static inline int {n}_predict_q(const int32_t *x_q, int32_t *out_q) {{",
              f"    int32_t a[{N}_MAX_WIDTH], b[{N}_MAX_WIDTH];", "    int64_t acc;",
              "    int i, j, best = 0;",
              f"    for (i = 0; i < {N}_N_FEATURES; i++) a[i] = x_q[i];"]
        for k, layer in enumerate(self.layers, 1):
            n_out, n_in = layer.W.shape
            act = {"identity": "", "relu": "if (b[j] < 0) b[j] = 0;",
                   # 0.01·v rounded to nearest: (v·655 + 2^15) >> 16 is 0.009995 — not exact;
                   # use an integer division, exact up to one rounding.
                   "leaky_relu": "if (b[j] < 0) b[j] = (int32_t)(((int64_t)b[j] - 50) / 100);"}[layer.activation]
            L += [f"    for (j = 0; j < {n_out}; j++) {{  /* layer {k} */",
                  f"        const int32_t *w = {self.array('w', k)} + j * {n_in};",
                  f"        acc = (int64_t){self.array('b', k)}[j] * ((int64_t)1 << {B});",
                  f"        for (i = 0; i < {n_in}; i++) acc += (int64_t)w[i] * a[i];",
                  f"        b[j] = {n}_round(acc);"] + ([f"        {act}"] if act else []) + [
                  "    }",
                  f"    for (j = 0; j < {n_out}; j++) a[j] = b[j];"]
        m = self.network.layers[-1]
        L += [f"    for (j = 0; j < {m}; j++) {{ out_q[j] = a[j]; if (a[j] > a[best]) best = j; }}",
              "    return " + ("best;" if self.transform != "value" else "0;"), "}", ""]
        if self.schema is None:
            return
        r = self.real
        L += ["/* For callers with floats: encode, quantise, run in Q format, decode. out: a",
              " * classifier's logits (returns its class), regression targets in their units,",
              " * or the reconstruction. */",
              f"static inline int {n}_predict(const float *in, float *out) {{",
              f"    {r} x[{N}_N_FEATURES];", f"    int32_t xq[{N}_N_FEATURES], yq[{N}_N_OUTPUTS];",
              f"    double y[{N}_N_OUTPUTS];", "    int i, ret;", "    (void)y;",
              f"    if ({n}_encode(in, x) != 0) {{",
              f"        for (i = 0; i < {N}_N_OUTPUTS; i++) out[i] = (float)NAN;",
              "        return -1;", "    }",
              f"    for (i = 0; i < {N}_N_FEATURES; i++) xq[i] = {n}_sat((int64_t)floor(x[i] * {N}_ONE + 0.5));",
              f"    ret = {n}_predict_q(xq, yq);",
              f"    for (i = 0; i < {N}_N_OUTPUTS; i++) {{ y[i] = (double)yq[i] / {N}_ONE; out[i] = (float)y[i]; }}"]
        L += self.decode_lines("y") + ["    return ret;", "}", ""]

    def fixed_bound(self):
        """Worst-case |error| of the last layer (before any output transform), by interval
        arithmetic, for encoded features within ±FIXED_INPUT_RANGE; refuses what overflows."""
        B = self.fixed
        q = 2.0 ** -B
        if any(l.kind == "kan" for l in self.layers):
            raise NncliError("--fixed does not support KAN layers (their splines are not "
                             "piecewise linear); export them in floating point")
        bad = [l.activation for l in self.layers if l.activation not in FIXED_ACTIVATIONS]
        if bad:
            raise NncliError(f"--fixed supports {', '.join(FIXED_ACTIVATIONS)} layers only; "
                             f"this model has {bad[0]}")
        size = np.full(self.network.layers[0], FIXED_INPUT_RANGE)   # |x| ≤ size
        err = np.full(self.network.layers[0], q / 2)               # input rounding
        limit = 2.0 ** (31 - B) - 1
        for layer in self.layers:
            W = layer.W.astype(np.float64)
            absW = np.abs(W)
            # f̂ − f = ΔW·x̂ + W·Δx + Δb + one rounding of the sum: |ΔW|, |Δb| ≤ q/2.
            err = (q / 2) * (size + err).sum() + absW @ err + q / 2 + q / 2
            size = absW @ size + np.abs(layer.b)
            if layer.activation == "leaky_relu":
                err = err + q   # the integer division's rounding
            if np.any(size + err > limit):
                raise NncliError(f"--fixed {B}: values of this network can reach "
                                 f"{float(np.max(size)):.3g}, beyond Q{B}'s range ±{limit:.0f} "
                                 "(use fewer fraction bits)")
        self.bound_layer = float(np.max(err))
        if self.schema is not None and self.schema.task == "regression":
            self.bound = self.bound_layer * max(self.schema.target_std)
        elif self.schema is not None and self.schema.task == "reconstruct":
            self.bound = self.bound_layer * max([c.std for c in self.schema.inputs
                                                 if c.kind != "categorical"] + [1.0])
        else:
            self.bound = self.bound_layer

    def build(self):
        if self.fixed:
            self.fixed_bound()
        self.describe()
        self.preamble()
        self.weights()
        if self.schema is not None:
            self.category_lookup()
            self.encoder()
        if self.fixed:
            self.forward_fixed()
        else:
            if any(l.kind == "kan" for l in self.layers):
                self.kan_helpers()
            self.forward_float()
            if self.schema is not None:
                self.predict_float()
        self.lines += [f"#endif /* {self.name.upper()}_H */", ""]
        return "\n".join(self.lines)


def _quantise(a, bits):
    return np.round(np.asarray(a, np.float64) * 2.0 ** bits).astype(np.int64).ravel()


def build_c(model, name, fixed=None):
    """(header text, summary dict) for a loaded nncli Model."""
    if not (name.isidentifier() and name.isascii()):
        raise NncliError(f"{name!r} is not a C identifier; give --name")
    h = _Header(model, name, fixed)
    text = h.build()
    summary = {"name": name, "functions": [f"{name}_predict"] if model.schema is not None else
               [f"{name}_predict_encoded" if not fixed else f"{name}_predict_q"]}
    if fixed:
        summary.update(fixed_bits=fixed, max_abs_error=h.bound, input_range=FIXED_INPUT_RANGE)
    return text, summary
