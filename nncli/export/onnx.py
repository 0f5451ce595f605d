"""The whole model as one ONNX graph: the CSV's input columns in, what `nncli predict` prints out.

Inputs, one per input column, each a 1-D tensor of N cells (a batch of rows):
  numeric columns: the model's dtype (float for float32 models, double for float64), NaN or ±inf
    for a missing cell; boolean and categorical columns: strings, exactly as the CSV's cells
    after trimming spaces (true/false/yes/no in any case; an empty cell, NA, NaN or null in any
    case is missing); date columns: double seconds since 1970-01-01 (NaN when missing).
The graph fills missing cells with the stored statistic (mean/median, most frequent category),
standardises in double precision as nncli does, one-hot encodes over the training vocabulary
(an unseen category is all zeros, or its `other` input), adds missing indicators, makes the
date features, then casts to the model's dtype and runs the network: dense layers as Gemm, KAN
layers as their B-spline bases (a dense Cox–de Boor recursion) and one Gemm.

Outputs (the model's dtype unless said):
  classification: `label` (string, or double for a numeric target) and `probabilities` (N, K);
  regression: `prediction` (N, T) in the target's units;
  reconstruct: `reconstruction` (N, F) in the inputs' units (one-hot columns as they are) and
    `reconstruction_error` (N,), the mean squared error in the encoded space.
  (An output whose name an input column has takes the suffix `_out`: a column `label` → the
  output `label_out`.)
A row with a missing cell the model has no fill value for (trained with --impute drop, say)
gets NaN outputs and an empty label (a NaN label for a numeric target), as `nncli predict
--skip-missing` writes an empty prediction for it; an unknown boolean word is treated the same.

`--raw` (raw=True): one input `X` (N, F), the encoded features in the model's dtype, and the
same outputs. A model without a data schema (made through the Python API) exports only raw, with
one output `output`: what Network.predict returns.

Opset 19 (the first whose Equal compares strings), IR version 9: onnxruntime ≥ 1.16.
Where onnxruntime has no double kernel the graph says how it computes instead: leaky_relu and
elu are written out with Where (elu's e^f − 1 in double, as exact as expm1 once rounded), and a
float64 model's gelu takes erf from its series in elementary operators (`_erf_double`).
"""
import json

import numpy as np

from nncli._version import __version__
from nncli.errors import NncliError
from nncli.export.common import (COLUMN_KINDS, boolean_spellings, check_schema,
                                 missing_spellings, network_layers, output_transform)

OPSET = 19
IR_VERSION = 9
INSTALL_HINT = "ONNX export needs the onnx package: pip install 'nncli[onnx]'"

try:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
except ImportError:   # the optional extra is not installed
    onnx = None


def _require_onnx():
    if onnx is None:
        raise NncliError(INSTALL_HINT)


class _Graph:
    """Nodes and constants, with fresh internal names (prefixed so no column name collides)."""

    def __init__(self, taken=()):
        self.nodes, self.inits, self.n = [], [], 0
        self.taken = set(taken)   # the input columns' names

    def out(self, name):
        """An output's name: `name`, or `name_out` when an input column has that name."""
        return name if name not in self.taken else self.out(name + "_out")

    def name(self, hint):
        self.n += 1
        return f"nncli/{hint}_{self.n}"

    def const(self, value, dtype=None, hint="c"):
        a = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        out = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


_ONNX_DTYPE = {"float32": "FLOAT", "float64": "DOUBLE"}


def _tensor_type(dtype):
    return getattr(TensorProto, _ONNX_DTYPE[np.dtype(dtype).name])


def _any_match(g, t2, words):
    """bool (N,): whether each cell of t2 (N, 1 strings) is one of `words`."""
    hits = g.op("Cast", g.op("Equal", t2, g.const(np.array([words], dtype=object))), to=TensorProto.DOUBLE)
    return g.op("Greater", g.op("ReduceSum", hits, g.const([1], np.int64), keepdims=0),
                g.const(0.5))


def _numeric(g, x, ic, model_dtype):
    """(N, 1) double: a numeric cell filled and standardised."""
    x = g.op("Cast", x, to=TensorProto.DOUBLE)
    missing = g.op("Or", g.op("IsNaN", x), g.op("IsInf", x))
    fill = np.nan if ic.impute is None else float(ic.impute)
    x = g.op("Where", missing, g.const(fill, np.float64), x)
    return _with_indicator(g, g.op("Unsqueeze", _standardise(g, x, ic), g.const([1], np.int64)),
                           missing, ic)


def _with_indicator(g, x2, missing, ic):
    """(N, 1) x2, and with a missing indicator (issue 10's `indicator`) (N, 2): 1 where the
    cell was missing."""
    if not getattr(ic, "indicator", False):
        return x2
    flag = g.op("Unsqueeze", g.op("Cast", missing, to=TensorProto.DOUBLE), g.const([1], np.int64))
    return g.op("Concat", x2, flag, axis=1)


def _standardise(g, x, ic):
    if (ic.mean, ic.std) == (0.0, 1.0):
        return x
    return g.op("Div", g.op("Sub", x, g.const(ic.mean, np.float64)), g.const(ic.std, np.float64))


def _boolean(g, s, ic):
    """(N, 1) double: true/yes → 1, false/no → 0 (any case), missing filled, standardised."""
    t2 = g.op("Unsqueeze", s, g.const([1], np.int64))
    words = boolean_spellings()
    hits = g.op("Cast", g.op("Equal", t2, g.const(np.array([[w for w, _ in words]], dtype=object))),
                to=TensorProto.DOUBLE)
    value = g.op("MatMul", hits, g.const([v for _, v in words], np.float64))
    known = g.op("Greater", g.op("MatMul", hits, g.const(np.ones(len(words)))), g.const(0.5))
    x = g.op("Where", known, value, g.const(np.nan, np.float64))
    missing = _any_match(g, t2, missing_spellings())
    if ic.impute is not None:
        x = g.op("Where", missing, g.const(float(ic.impute)), x)
    return _with_indicator(g, g.op("Unsqueeze", _standardise(g, x, ic), g.const([1], np.int64)),
                           missing, ic)


def _date(g, seconds, ic):
    """(N, parts [+ 1]) double: a date given as seconds since 1970-01-01 (UTC for a time with
    an offset, else as written; NaN when missing) → the parts nncli.columns.date_parts makes
    (year; month, day of year, weekday and hour as sin/cos; elapsed days), standardised. The
    civil date of a day number is H. Hinnant's days → (year, month, day), in Floor arithmetic."""
    c = lambda v: g.const(float(v))   # noqa: E731
    fl = lambda a, b: g.op("Floor", g.op("Div", a, c(b)))   # noqa: E731  (floor(a / b))
    missing = g.op("Or", g.op("IsNaN", seconds), g.op("IsInf", seconds))
    fill = np.nan if ic.impute is None else float(ic.impute)
    # numpy's datetime64[s] keeps whole seconds, rounding toward zero
    s = g.op("Where", missing, c(fill), seconds)
    s = g.op("Mul", g.op("Sign", s), g.op("Floor", g.op("Abs", s)))
    days = fl(s, 86400)
    z = g.op("Add", days, c(719468))
    era = fl(z, 146097)
    doe = g.op("Sub", z, g.op("Mul", era, c(146097)))
    yoe = fl(g.op("Add", g.op("Sub", g.op("Sub", doe, fl(doe, 1460)), fl(doe, 146096)),
                  fl(doe, 36524)), 365)
    year = g.op("Add", yoe, g.op("Mul", era, c(400)))
    doy_mar = g.op("Sub", doe, g.op("Sub", g.op("Add", g.op("Mul", yoe, c(365)), fl(yoe, 4)),
                                    fl(yoe, 100)))
    mp = fl(g.op("Add", g.op("Mul", doy_mar, c(5)), c(2)), 153)          # 0 = March
    month0 = g.op("Where", g.op("Less", mp, c(10)), g.op("Add", mp, c(2)), g.op("Sub", mp, c(10)))
    year = g.op("Add", year, g.op("Cast", g.op("Less", month0, c(2)), to=TensorProto.DOUBLE))
    # day number of January 1st of that year (days_from_civil(year, 1, 1))
    y1 = g.op("Sub", year, c(1))
    era1 = fl(y1, 400)
    yoe1 = g.op("Sub", y1, g.op("Mul", era1, c(400)))
    jan1 = g.op("Add", g.op("Mul", era1, c(146097)),
                g.op("Sub", g.op("Add", g.op("Add", g.op("Mul", yoe1, c(365)), fl(yoe1, 4)),
                                 c(306 - 719468)), fl(yoe1, 100)))
    doy = g.op("Sub", days, jan1)
    wd = g.op("Add", days, c(3))
    weekday = g.op("Sub", wd, g.op("Mul", fl(wd, 7), c(7)))
    hour = g.op("Div", g.op("Sub", s, g.op("Mul", days, c(86400))), c(3600))
    tau = 2 * np.pi
    cyc = {"month": (month0, 12), "doy": (doy, 365.25), "weekday": (weekday, 7), "hour": (hour, 24)}
    cols = []
    for part, mean, std in zip(ic.parts, ic.part_mean, ic.part_std):
        if part == "year":
            v = year
        elif part == "elapsed":
            v = g.op("Div", s, c(86400))
        else:
            base, fn = part.rsplit("_", 1)
            value, period = cyc[base]
            v = g.op("Sin" if fn == "sin" else "Cos", g.op("Mul", value, c(tau / period)))
        v = g.op("Div", g.op("Sub", v, c(mean)), c(std))
        cols.append(g.op("Unsqueeze", v, g.const([1], np.int64)))
    x = cols[0] if len(cols) == 1 else g.op("Concat", *cols, axis=1)
    return _with_indicator(g, x, missing, ic)


def _categorical(g, s, ic):
    """(N, V) double: one-hot over the vocabulary; unseen → zeros (or the `other` input);
    missing → fill or NaN row."""
    t2 = g.op("Unsqueeze", s, g.const([1], np.int64))
    missing = _any_match(g, t2, missing_spellings())
    if ic.impute is not None:
        s = g.op("Where", missing, g.const(np.array(ic.impute, dtype=object)), s)
        t2 = g.op("Unsqueeze", s, g.const([1], np.int64))
    vocab = g.const(np.array([ic.vocabulary], dtype=object))
    onehot = g.op("Cast", g.op("Equal", t2, vocab), to=TensorProto.DOUBLE)
    if getattr(ic, "other", False):   # one more input: 1 for a value not in the vocabulary
        seen = g.op("ReduceSum", onehot, g.const([1], np.int64), keepdims=1)
        onehot = g.op("Concat", onehot, g.op("Sub", g.const(1.0), seen), axis=1)
    if ic.impute is None:
        onehot = g.op("Where", g.op("Unsqueeze", missing, g.const([1], np.int64)),
                      g.const(np.nan, np.float64), onehot)
    return onehot


def _activation(g, f, name, dtype):
    c = lambda v: g.const(v, dtype)   # noqa: E731  (a scalar in the layer's dtype)
    if name == "identity":
        return f
    if name == "relu":
        return g.op("Relu", f)
    positive = g.op("Greater", f, c(0.0)) if name in ("leaky_relu", "elu") else None
    if name == "leaky_relu":   # written out: onnxruntime's LeakyRelu has no double kernel
        return g.op("Where", positive, f, g.op("Mul", f, c(0.01)))
    if name == "elu":   # e^f − 1 in double, as accurate as the kernel's expm1 once rounded
        f64 = g.op("Cast", f, to=TensorProto.DOUBLE)
        em1 = g.op("Sub", g.op("Exp", f64), g.const(1.0, np.float64))
        return g.op("Where", positive, f, g.op("Cast", em1, to=_tensor_type(dtype)))
    if name == "gelu":   # exact form: f·Φ(f) = 0.5·f·(1 + erf(f/√2))
        u = g.op("Mul", f, c(0.70710678118654752440))
        erf = _erf_double(g, u) if np.dtype(dtype) == np.float64 else g.op("Erf", u)
        return g.op("Mul", g.op("Mul", f, c(0.5)), g.op("Add", erf, c(1.0)))
    if name == "tanh":
        return g.op("Tanh", f)
    if name == "sigmoid":
        return g.op("Sigmoid", f)
    if name == "softplus":   # max(f, 0) + log(1 + e^−|f|): never overflows, as nncli's kernel
        tail = g.op("Log", g.op("Add", g.op("Exp", g.op("Neg", g.op("Abs", f))), c(1.0)))
        return g.op("Add", g.op("Relu", f), tail)
    if name == "sin":
        return g.op("Sin", f)
    raise NncliError(f"export of the activation {name!r} is not supported")


# erf(u) = 2/√π · e^(−u²) · u · Σ_n v^n / (2n+1)!!, v = 2u²: a series of positive terms (no
# cancellation); for |u| ≤ 6 its first 100 terms give double precision, and beyond 6 erf is ±1
# to the last bit. Nested as 1 + v/3·(1 + v/5·(1 + …)): every constant a small integer, since
# onnxruntime's optimiser merges scalar constants that agree in float32 (1/(2n+1)!! underflows
# to 0 there, and the merged series is wrong).
_ERF_TERMS = 100


def _erf_double(g, u):
    """erf in double precision from elementary operators (onnxruntime has no double Erf)."""
    u = g.op("Clip", u, g.const(-6.0), g.const(6.0))
    u2 = g.op("Mul", u, u)
    v = g.op("Add", u2, u2)
    one = g.const(1.0)
    acc = one
    for n in range(_ERF_TERMS, 0, -1):
        acc = g.op("Add", g.op("Div", g.op("Mul", acc, v), g.const(2.0 * n + 1)), one)
    scale = g.op("Mul", g.op("Exp", g.op("Neg", u2)), g.const(2.0 / np.sqrt(np.pi)))
    return g.op("Mul", g.op("Mul", u, acc), scale)


def _kan_features(g, x, layer, dtype):
    """A = [silu(x) | B(x)] (N, n_in·(G+k+1)) of a KAN layer, the bases by the dense
    Cox–de Boor recursion over all G+2k intervals (standard operators only)."""
    G, k, t = layer.grid, layer.order, np.asarray(layer.knots, np.float64)
    M = G + 2 * k                                    # intervals
    silu = g.op("Mul", x, g.op("Sigmoid", x))
    # The kernel clamps x to the grid range for the spline term (NaN stays NaN here: the
    # silu term makes the output NaN in both).
    xc = g.op("Max", g.op("Min", x, g.const(t[:, G + k], dtype)), g.const(t[:, k], dtype))
    x3 = g.op("Unsqueeze", xc, g.const([2], np.int64))             # (N, n_in, 1)
    # Order 0: the indicator of the one span s in k..G+k−1 with t_s ≤ x < t_{s+1} (the last
    # one closed): lower knots of the other intervals at +∞, the last upper knot at +∞.
    lower, upper = t[:, :-1].copy(), t[:, 1:].copy()
    lower[:, :k] = lower[:, G + k:] = np.inf
    upper[:, G + k - 1] = np.inf
    B = g.op("Cast", g.op("And", g.op("GreaterOrEqual", x3, g.const(lower, dtype)),
                          g.op("Less", x3, g.const(upper, dtype))), to=_tensor_type(dtype))
    for p in range(1, k + 1):                        # B_{i,p}, i = 0..M−p−1
        n = M - p
        left = g.op("Slice", B, g.const([0], np.int64), g.const([n], np.int64), g.const([2], np.int64))
        right = g.op("Slice", B, g.const([1], np.int64), g.const([n + 1], np.int64), g.const([2], np.int64))
        a = g.op("Div", g.op("Sub", x3, g.const(t[:, :n], dtype)),
                 g.const(t[:, p:p + n] - t[:, :n], dtype))
        b = g.op("Div", g.op("Sub", g.const(t[:, p + 1:p + 1 + n], dtype), x3),
                 g.const(t[:, p + 1:p + 1 + n] - t[:, 1:n + 1], dtype))
        B = g.op("Add", g.op("Mul", a, left), g.op("Mul", b, right))
    flat = g.op("Reshape", B, g.const([0, layer.n_in * (G + k)], np.int64))
    return g.op("Concat", silu, flat, axis=1)


def _network(g, x, network):
    dtype = network.dtype
    h = x
    for k, layer in enumerate(network_layers(network), 1):
        if layer.kind == "kan":
            f = g.op("Gemm", _kan_features(g, h, layer, dtype), g.const(layer.W, dtype, f"W{k}"),
                     transB=1)
        else:
            f = g.op("Gemm", h, g.const(layer.W, dtype, f"W{k}"),
                     g.const(layer.b, dtype, f"b{k}"), transB=1)
        h = _activation(g, f, layer.activation, dtype)
    transform = output_transform(network)
    if transform == "softmax":
        h = g.op("Softmax", h, axis=1)
    elif transform == "sigmoid":
        h = g.op("Sigmoid", h)
    return h


def _ensemble(g, x, network):
    """The network's outputs; for an Ensemble (--ensemble N) the mean of its members' outputs,
    summed in double as nncli.ensemble does."""
    members = getattr(network, "members", [network])
    if len(members) == 1:
        return _network(g, x, members[0])
    outs = [g.op("Cast", _network(g, x, m), to=TensorProto.DOUBLE) for m in members]
    mean = g.op("Div", g.op("Sum", *outs), g.const(float(len(members))))
    return g.op("Cast", mean, to=_tensor_type(network.dtype))


def _label_output(g, proba, schema):
    """label: the most probable class, as trained (string, or double for a numeric target)."""
    idx = g.op("ArgMax", proba, axis=1, keepdims=0)
    undefined = g.op("IsNaN", g.op("ReduceSum", proba, g.const([1], np.int64), keepdims=0))
    if schema.target_kind == "numeric":
        classes, none, elem = np.array([float(c) for c in schema.classes]), np.nan, TensorProto.DOUBLE
    else:
        classes, none, elem = np.array(schema.classes, dtype=object), "", TensorProto.STRING
    label = g.op("Gather", g.const(classes), idx)
    g.op("Where", undefined, g.const(np.array(none, dtype=classes.dtype)), label, out=g.out("label"))
    return [helper.make_tensor_value_info(g.out("label"), elem, ["N"])]


def _outputs(g, out, X64, schema, network):
    """Network outputs → what predict prints, as graph outputs."""
    t = _tensor_type(network.dtype)
    if schema is None:
        g.op("Identity", out, out=g.out("output"))
        return [helper.make_tensor_value_info(g.out("output"), t, ["N", network.layers[-1]])]
    if schema.task == "classification":
        g.op("Identity", out, out=g.out("probabilities"))
        return _label_output(g, out, schema) + [
            helper.make_tensor_value_info(g.out("probabilities"), t, ["N", len(schema.classes)])]
    out64 = g.op("Cast", out, to=TensorProto.DOUBLE)
    if schema.task == "regression":
        y = g.op("Add", g.op("Mul", out64, g.const(schema.target_std, np.float64)),
                 g.const(schema.target_mean, np.float64))
        g.op("Cast", y, to=t, out=g.out("prediction"))
        return [helper.make_tensor_value_info(g.out("prediction"), t, ["N", len(schema.target_names)])]
    std, mean = [], []
    for c in schema.inputs:   # one-hot columns come back as they are (std 1, mean 0)
        std += [c.std if c.kind != "categorical" else 1.0] * c.width
        mean += [c.mean if c.kind != "categorical" else 0.0] * c.width
    rec = g.op("Add", g.op("Mul", out64, g.const(std, np.float64)), g.const(mean, np.float64))
    g.op("Cast", rec, to=t, out=g.out("reconstruction"))
    d = g.op("Sub", out64, X64)
    err = g.op("ReduceMean", g.op("Mul", d, d), g.const([1], np.int64), keepdims=0)
    g.op("Cast", err, to=t, out=g.out("reconstruction_error"))
    return [helper.make_tensor_value_info(g.out("reconstruction"), t, ["N", schema.n_features]),
            helper.make_tensor_value_info(g.out("reconstruction_error"), t, ["N"])]


def _encoded_inputs(g, schema, network):
    """Graph inputs, one per column, and X (N, F) double: the features as nncli encodes them."""
    inputs, parts = [], []
    for ic in schema.inputs:
        if ic.kind == "numeric":
            inputs.append(helper.make_tensor_value_info(ic.name, _tensor_type(network.dtype), ["N"]))
            parts.append(_numeric(g, ic.name, ic, network.dtype))
        elif ic.kind == "date":   # seconds since 1970, in double whatever the model's dtype
            inputs.append(helper.make_tensor_value_info(ic.name, TensorProto.DOUBLE, ["N"]))
            parts.append(_date(g, ic.name, ic))
        else:
            inputs.append(helper.make_tensor_value_info(ic.name, TensorProto.STRING, ["N"]))
            parts.append(_boolean(g, ic.name, ic) if ic.kind == "boolean"
                         else _categorical(g, ic.name, ic))
    X64 = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    return inputs, X64


def build_onnx(model, raw=False):
    """(onnx.ModelProto, summary dict) for a loaded nncli Model."""
    _require_onnx()
    network, meta = model.network, model.meta
    schema = model.schema
    network_layers(network)   # refuse other layer kinds before building anything
    if schema is None and not raw:
        raise NncliError("this model was made through the Python API without a data schema: "
                         "export it with --raw (the encoded feature matrix in, the network's "
                         "outputs out)")
    if schema is not None:
        check_schema(schema, COLUMN_KINDS + ("date",))
    g = _Graph([] if raw else [c.name for c in schema.inputs])
    t = _tensor_type(network.dtype)
    if raw:
        inputs = [helper.make_tensor_value_info("X", t, ["N", network.layers[0]])]
        X64 = g.op("Cast", "X", to=TensorProto.DOUBLE)
        x = "X"
    else:
        inputs, X64 = _encoded_inputs(g, schema, network)
        x = g.op("Cast", X64, to=t)
    out = _ensemble(g, x, network)
    outputs = _outputs(g, out, X64, schema, network)
    graph = helper.make_graph(g.nodes, "nncli", inputs, outputs, g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="nncli", producer_version=__version__,
                              ir_version=IR_VERSION,
                              doc_string=f"nncli {'→'.join(map(str, network.layers))} "
                                         f"{meta.get('task') or 'network'} model")
    props = {"nncli_version": __version__, "model_nncli_version": meta.get("nncli_version") or "",
             "data_sha256": meta.get("data_sha256") or "", "task": meta.get("task") or "",
             "layers": json.dumps(network.layers), "activations": json.dumps(network.activations),
             "loss": network.loss, "dtype": network.dtype.name, "raw": json.dumps(raw),
             "ensemble_members": str(len(getattr(network, "members", [network]))),
             "input_schema": json.dumps(schema.to_dict() if schema is not None else None),
             "feature_names": json.dumps(schema.feature_names if schema is not None else None)}
    if schema is not None and schema.task == "classification":
        props["classes"] = json.dumps(schema.classes)
    if schema is not None and schema.task != "reconstruct":
        props["target_names"] = json.dumps(schema.target_names)
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    summary = {"opset": OPSET, "inputs": [i.name for i in inputs],
               "outputs": [o.name for o in outputs], "nodes": len(g.nodes)}
    return proto, summary


def serialize(proto):
    return proto.SerializeToString()
