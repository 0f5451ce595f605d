"""What every exporter reads from a model, checked once: dense layers and the columns it knows.

An exporter must reproduce nncli's arithmetic exactly, so anything it does not know (a layer
kind other than dense, a column kind added to the Schema later) is refused with one line
naming it, rather than exported approximately.
"""
import dataclasses
import os
from dataclasses import dataclass

import numpy as np

from nncli.errors import ConfigError, ModelFileError
from nncli.functions import LOSSES

FORMATS = ("onnx", "c")
COLUMN_KINDS = ("numeric", "boolean", "categorical")   # the Schema's kinds both exporters encode
# Missing-value tokens (nncli.csvio.MISSING_TOKENS, matched case-insensitively) and boolean
# words: the exporters enumerate their spellings, since ONNX has no locale-free lower-casing.
BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


@dataclass
class Layer:
    """One dense layer: h = a(h_prev · Wᵀ + b)."""
    W: np.ndarray        # (n_out, n_in), the model's dtype
    b: np.ndarray        # (n_out,)
    activation: str
    kind = "dense"


@dataclass
class KanLayer:
    """One KAN layer (nncli._kernels.kan): h = a(A · Wᵀ), A = [silu(x) | B(x)], where B(x)
    holds, for each input i, its G+k B-splines of order k on knots[i] at x_i clamped to
    [knots[i, k], knots[i, G+k]] (the last interval closed), and W = [wb | ws⊙c] — the
    product the kernel forms, in the model's dtype."""
    W: np.ndarray        # (n_out, n_in·(G+k+1))
    knots: np.ndarray    # (n_in, G+2k+1)
    grid: int
    order: int
    activation: str
    kind = "kan"

    @property
    def n_in(self):
        return self.knots.shape[0]


def network_layers(network):
    """The network's layers as Layer / KanLayer; a clear error for any other kind."""
    out = []
    for k, (kind, act) in enumerate(zip(network.kinds, network.activations)):
        if kind == "dense":
            if hasattr(network, "parts"):
                W, b = network.parts[k]["Ω"], network.parts[k]["β"]
            else:
                W, b = network.weights[k], network.biases[k]
            out.append(Layer(np.array(W), np.array(b), act))
        elif kind == "kan":
            p, opt = network.parts[k], network.options[k]
            wb, ws, c = p["wb"], p["ws"], p["c"]
            n_out = wb.shape[0]
            spline = (ws[:, :, None] * c).reshape(n_out, -1)   # ws⊙c in the model's dtype
            out.append(KanLayer(np.concatenate([wb, spline], axis=1), np.array(network.grids[k]),
                                opt["grid"], opt["order"], act))
        else:
            raise ModelFileError(f"export of {kind} layers is not supported yet "
                                 "(dense and kan layers can be exported)")
    return out


def output_transform(network):
    """'softmax', 'sigmoid' or 'value': what Network.predict applies to the last layer."""
    return LOSSES[network.loss].output


# InputColumn fields the exporters reproduce; any other field set away from its default (an
# encoding added to the Schema later: an "other" bucket, a missing indicator...) is refused.
# (number_format: how the CSV writes a numeric column's cells — the exported inputs take the
# numbers themselves, so it changes nothing here.)
KNOWN_FIELDS = {"name", "kind", "mean", "std", "vocabulary", "impute", "indicator", "other",
                "number_format", "date_format", "parts", "part_mean", "part_std"}


def check_schema(schema, kinds=COLUMN_KINDS, why=""):
    """Refuse a schema the exporter cannot reproduce exactly (one line, naming the column):
    a column kind outside `kinds`, or an encoding option the exporters do not know."""
    for c in schema.inputs:
        if c.kind not in kinds:
            raise ModelFileError(f"cannot export input column {c.name!r} of kind {c.kind!r}: "
                                 f"the exporter encodes {', '.join(kinds)} columns only{why}")
        for f in dataclasses.fields(c):
            if f.name in KNOWN_FIELDS:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if getattr(c, f.name) != default:
                raise ModelFileError(f"cannot export input column {c.name!r}: its encoding uses "
                                     f"{f.name!r}, which the exporters do not reproduce yet")
        if c.kind == "categorical":
            width = len(c.vocabulary) + bool(getattr(c, "other", False))
        else:
            width = (len(c.parts) if c.kind == "date" else 1) + bool(getattr(c, "indicator", False))
        if c.width != width:
            raise ModelFileError(f"cannot export input column {c.name!r}: it encodes as "
                                 f"{c.width} features where the exporters make {width}")
    return schema


def case_variants(word):
    """Every upper/lower-case spelling of `word` ('na' → na, nA, Na, NA)."""
    out = [""]
    for ch in word:
        out = [p + v for p in out for v in sorted({ch.lower(), ch.upper()})]
    return out


def missing_spellings():
    """The cells nncli reads as missing, spelt out (empty, NA, NaN, null in any case)."""
    from nncli.csvio import MISSING_TOKENS
    return sorted({v for t in MISSING_TOKENS for v in case_variants(t)})


def boolean_spellings():
    """(spelling, value) for every case spelling of true/false/yes/no."""
    return [(v, value) for w, value in BOOLEAN_WORDS.items() for v in case_variants(w)]


def default_name(path):
    """A C identifier from the output file's name: 'models/iris-v2.h' → 'iris_v2'."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in stem.lower()) or "model"
    return name if not name[0].isdigit() else "m_" + name


def export_model(model_path, output, fmt="onnx", raw=False, fixed=None, name=None):
    """Load MODEL and write it to `output` in format `fmt` (atomically). Returns a summary dict."""
    from nncli.model_io import atomic_path, load_model
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fixed is not None and fmt != "c":
        raise ConfigError("--fixed applies to --format c only")
    if raw and fmt != "onnx":
        raise ConfigError("--raw applies to --format onnx only (the C header takes encoded "
                          "inputs through <name>_predict_encoded)")
    model = load_model(model_path)
    if fmt == "onnx":
        from nncli.export.onnx import build_onnx, serialize   # imports onnx, or says which extra
        proto, summary = build_onnx(model, raw=raw)
        data = serialize(proto)
        mode = "wb"
    else:
        from nncli.export.c import build_c
        data, summary = build_c(model, name or default_name(output), fixed=fixed)
        mode = "w"
    with atomic_path(output) as tmp:
        with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
    summary.update(model=os.fspath(model_path), output=os.fspath(output), format=fmt)
    return summary
