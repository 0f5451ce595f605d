"""Predictions and evaluation over a CSV stream, chunk by chunk, in constant memory.

Used by `nncli predict` and `nncli evaluate`: a chunk of rows is encoded with the model's
schema, passed through the network, and turned back into labels or values in the
target's units.

Missing values: a model trained with --impute mean|median fills a missing input with the
training statistic it stored. A model trained without imputation, or with --impute drop
(training left such rows out and learnt no fill value), has nothing to fill in: a missing
input stops with an error naming the cell, unless the user asks to skip such rows
(`skip_missing`): predict then writes the row with empty prediction fields (one output row
per input row, the --id kept), evaluate leaves it out of the metrics. A missing target in
evaluate is the same error, or a skipped row.
"""
from dataclasses import dataclass

import numpy as np

from nncli import data as D
from nncli.csvio.writer import number, quote, records
from nncli.errors import DataError, ModelFileError

CHUNK_ROWS = 16384


def model_schema(model, path):
    schema = model.schema
    if schema is None:
        raise ModelFileError(f"{path} was made through the Python API without a data schema; "
                             "predict on arrays with Network.predict instead")
    return schema


def used_columns(schema, *, targets=False, extra=()):
    """The columns predict (and with `targets`, evaluate) reads; the others are skipped
    unread (`iter_csv_chunks(use_columns=...)`)."""
    cols = [c.name for c in schema.inputs] + [c for c in extra if c]
    if targets and schema.task != "reconstruct":
        cols += list(schema.target_names)
    return set(cols)


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


def complete_rows(table, schema, skip_missing, *, targets=False):
    """``(table of the rows to use, bool mask of the rows skipped or None)``: see the module's
    docstring. Without `skip_missing`, a missing cell the model cannot fill is a DataError."""
    mask, first = D.rows_missing(table, schema, targets=targets)
    if mask is None:
        return table, None
    if not skip_missing:
        row, j, what = first
        why = ""
        if what == "value":
            how = "with --impute drop" if schema.impute == "drop" else "without --impute mean|median"
            why = f" and the model has no value to fill in (it was trained {how})"
        effect = ("leave such rows out" if targets
                  else "write an empty prediction for such rows")
        raise DataError(f"{table.where(row, j)}: missing {what}{why}; fill it in, or use "
                        f"--skip-missing to {effect}")
    return table.rows(np.flatnonzero(~mask)), mask


def predict_chunk(network, schema, table, proba=False, threads=None):
    """(list of output columns as arrays, in output_header order minus the id)."""
    if table.n_rows == 0:
        width = len(output_header(schema, proba))
        return [np.empty(0) for _ in range(width)]
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


def format_rows(columns, ids=None, precision=7, skipped=None):
    """CSV text of the given columns (labels as text, numbers with `precision` digits).

    With `skipped` (bool per output row), the columns hold the other rows only, and the
    skipped rows are written with empty prediction fields (and their id)."""
    spec = f".{precision}g"
    text_cols = []
    for c in columns:
        if c.dtype.kind in "fc":
            text = [number(v, spec) for v in c]
        else:
            text = [quote(str(v)) for v in c]
        if skipped is not None:
            full = [""] * len(skipped)
            for i, s in zip(np.flatnonzero(~skipped).tolist(), text):
                full[i] = s
            text = full
        text_cols.append(text)
    if ids is not None:
        text_cols.insert(0, [quote(s) for s in ids])
    return records(text_cols)


@dataclass
class Evaluation:
    """Running sums for metrics over a stream of chunks."""
    task: str
    n: int = 0
    sums: dict = None
    skipped: int = 0   # rows left out for a missing value (skip_missing)

    def __post_init__(self):
        self.sums = {}


def _add(sums, key, value):
    sums[key] = sums.get(key, 0) + value


def evaluate_chunk(ev, network, schema, table, threads=None, skip_missing=False):
    table, skipped = complete_rows(table, schema, skip_missing, targets=True)
    if skipped is not None:
        ev.skipped += int(skipped.sum())
    if table.n_rows == 0:
        return
    X = D.encode_features(table, schema)
    out = network.predict(X, n_threads=threads)
    Y = (None if schema.task == "reconstruct" else
         D.encode_targets(table, schema, scaled=schema.task != "regression"))
    score_outputs(ev, schema, out, Y, X)


def score_outputs(ev, schema, out, Y, X):
    """Add a chunk's outputs `out` (as predict gives them) to the sums: against Y, the
    encoded targets (a classification's one-hot rows; a regression's values in the target's
    units), or X for a reconstruction."""
    out = out.astype(np.float64)
    n = len(out)
    ev.n += n
    s = ev.sums
    if schema.task == "classification":
        k = len(schema.classes)
        p = out   # one output per class, always (schema.n_outputs)
        truth, pred = Y.argmax(1), p.argmax(1)
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (truth, pred), 1)
        _add(s, "confusion", cm)
        _add(s, "logloss", float(-np.sum(np.log(np.clip(p[np.arange(n), truth], 1e-15, 1.0)))))
    elif schema.task == "regression":
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
