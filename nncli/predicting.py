"""Predictions and evaluation over a CSV stream, chunk by chunk, in constant memory.

Used by `nncli predict` and `nncli evaluate`: a chunk of rows is encoded with the model's
schema, passed through the network, and turned back into labels or values in the
target's units.
"""
from dataclasses import dataclass

import numpy as np

from nncli import data as D
from nncli.errors import ModelFileError

CHUNK_ROWS = 16384


def model_schema(model, path):
    schema = model.schema
    if schema is None:
        raise ModelFileError(f"{path} was made through the Python API without a data schema; "
                             "predict on arrays with Network.predict instead")
    return schema


def output_header(schema, proba, id_column=None):
    """Column names of predict's CSV output."""
    cols = [id_column] if id_column else []
    if schema.task == "classification":
        cols.append(schema.target_names[0])
        if proba:
            cols += [f"proba_{c}" for c in schema.classes]
    elif schema.task == "regression":
        cols += list(schema.target_names)
    else:
        cols += list(schema.feature_names) + ["reconstruction_error"]
    return cols


def unscale_features(Z, schema):
    """Encoded features back to input units (numeric and boolean columns; one-hot stays)."""
    out = np.array(Z, dtype=np.float64)
    at = 0
    for c in schema.inputs:
        if c.kind != "categorical":
            out[:, at] = out[:, at] * c.std + c.mean
        at += c.width
    return out


def predict_chunk(network, schema, table, proba=False, threads=None):
    """(list of output columns as arrays, in output_header order minus the id)."""
    X = D.encode_features(table, schema)
    out = network.predict(X, n_threads=threads)
    if schema.task == "classification":
        cols = [D.labels_from_proba(out, schema)]
        if proba:
            cols += [out[:, j] for j in range(out.shape[1])]
        return cols
    if schema.task == "regression":
        values = D.decode_outputs(out, schema)
        return [values[:, j] for j in range(values.shape[1])]
    error = np.mean((out.astype(np.float64) - X) ** 2, axis=1)
    values = unscale_features(out, schema)
    return [values[:, j] for j in range(values.shape[1])] + [error]


def format_rows(columns, ids=None, precision=7):
    """CSV text of the given columns (labels as text, numbers with `precision` digits)."""
    text_cols = []
    for c in columns:
        if c.dtype.kind in "fc":
            text_cols.append([format(float(v), f".{precision}g") for v in c])
        else:
            text_cols.append([quote(str(v)) for v in c])
    if ids is not None:
        text_cols.insert(0, [quote(s) for s in ids])
    return "".join(",".join(row) + "\n" for row in zip(*text_cols))


def quote(s):
    """A CSV field, quoted when it holds a separator, a quote or a newline."""
    if any(ch in s for ch in ',"\n\r'):
        return '"' + s.replace('"', '""') + '"'
    return s


@dataclass
class Evaluation:
    """Running sums for metrics over a stream of chunks."""
    task: str
    n: int = 0
    sums: dict = None

    def __post_init__(self):
        self.sums = {}


def _add(sums, key, value):
    sums[key] = sums.get(key, 0) + value


def evaluate_chunk(ev, network, schema, table, threads=None):
    X = D.encode_features(table, schema)
    out = network.predict(X, n_threads=threads).astype(np.float64)
    n = len(X)
    ev.n += n
    s = ev.sums
    if schema.task == "classification":
        Y = D.encode_targets(table, schema)
        k = len(schema.classes)
        p = out   # one output per class, always (schema.n_outputs)
        truth, pred = Y.argmax(1), p.argmax(1)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (truth, pred), 1)
        _add(s, "confusion", cm)
        _add(s, "logloss", float(-np.sum(np.log(np.clip(p[np.arange(n), truth], 1e-15, 1.0)))))
    elif schema.task == "regression":
        Y = D.encode_targets(table, schema, scaled=False)
        P = D.decode_outputs(out, schema)
        d = P - Y
        _add(s, "sse", np.sum(d * d, axis=0))
        _add(s, "sae", np.sum(np.abs(d), axis=0))
        _add(s, "sy", np.sum(Y, axis=0))
        _add(s, "syy", np.sum(Y * Y, axis=0))
    else:
        _add(s, "err", float(np.sum(np.mean((out - X) ** 2, axis=1))))


def metrics(ev, schema):
    """The final metrics as a JSON-ready dict."""
    s, n = ev.sums, ev.n
    if schema.task == "classification":
        cm = s["confusion"]
        per_class = {}
        for i, c in enumerate(schema.classes):
            tp = int(cm[i, i])
            predicted, actual = int(cm[:, i].sum()), int(cm[i, :].sum())
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[c] = {"precision": precision, "recall": recall, "f1": f1, "support": actual}
        return {"task": "classification", "rows": n, "accuracy": float(np.trace(cm) / n),
                "log_loss": s["logloss"] / n, "classes": list(schema.classes),
                "per_class": per_class, "confusion_matrix": cm.tolist()}
    if schema.task == "regression":
        mse = s["sse"] / n
        var = s["syy"] / n - (s["sy"] / n) ** 2
        r2 = np.where(var > 0, 1 - mse / np.where(var > 0, var, 1), np.nan)
        per_target = {t: {"mse": float(mse[j]), "rmse": float(np.sqrt(mse[j])),
                          "mae": float(s["sae"][j] / n),
                          "r2": None if np.isnan(r2[j]) else float(r2[j])}
                      for j, t in enumerate(schema.target_names)}
        overall = {"mse": float(mse.mean()), "rmse": float(np.sqrt(mse.mean())),
                   "mae": float((s["sae"] / n).mean()),
                   "r2": None if np.isnan(r2).any() else float(r2.mean())}
        return {"task": "regression", "rows": n, **overall, "per_target": per_target}
    return {"task": "reconstruct", "rows": n, "reconstruction_error": s["err"] / n}
