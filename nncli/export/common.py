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
COLUMN_KINDS = ("numeric", "boolean", "categorical")   # the Schema's kinds the exporters encode
# Missing-value tokens (nncli.csvio.MISSING_TOKENS, matched case-insensitively) and boolean
# words: the exporters enumerate their spellings, since ONNX has no locale-free lower-casing.
BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}


@dataclass
class Layer:
    """One dense layer: h = a(h_prev · Wᵀ + b)."""
    W: np.ndarray        # (n_out, n_in), the model's dtype
    b: np.ndarray        # (n_out,)
    activation: str


def dense_layers(network):
    """The network's layers as (W, b, activation); a clear error for any other layer kind."""
    other = [k for k in network.kinds if k != "dense"]
    if other:
        raise ModelFileError(f"export of {other[0]} layers is not supported yet "
                             "(only dense layers can be exported)")
    return [Layer(np.array(W), np.array(b), a)
            for W, b, a in zip(network.weights, network.biases, network.activations)]


def output_transform(network):
    """'softmax', 'sigmoid' or 'value': what Network.predict applies to the last layer."""
    return LOSSES[network.loss].output


# InputColumn fields the exporters reproduce; any other field set away from its default (an
# encoding added to the Schema later: an "other" bucket, a missing indicator...) is refused.
KNOWN_FIELDS = {"name", "kind", "mean", "std", "vocabulary", "impute"}


def check_schema(schema):
    """Refuse a schema the exporters cannot reproduce exactly (one line, naming the column):
    a column kind they do not encode, or an encoding option they do not know."""
    for c in schema.inputs:
        if c.kind not in COLUMN_KINDS:
            raise ModelFileError(f"cannot export input column {c.name!r} of kind {c.kind!r}: "
                                 f"the exporters encode {', '.join(COLUMN_KINDS)} columns only")
        for f in dataclasses.fields(c):
            if f.name in KNOWN_FIELDS:
                continue
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if getattr(c, f.name) != default:
                raise ModelFileError(f"cannot export input column {c.name!r}: its encoding uses "
                                     f"{f.name!r}, which the exporters do not reproduce yet")
        width = len(c.vocabulary) if c.kind == "categorical" else 1
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
