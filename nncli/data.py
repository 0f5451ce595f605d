"""Data: CSV to float arrays for training, and a Schema that lets predict do it again.

``read_csv`` / ``iter_csv_chunks`` (in :mod:`nncli.csvio`) read a CSV into a
:class:`Table` of columns. ``prepare_training`` runs the named steps
``choose_columns`` (and the task), ``rows_to_keep``, ``class_labels``,
``validation_split`` and ``fit_schema`` (statistics over the training rows only),
then encodes, and returns :class:`TrainingData` whose ``schema`` records every
decision. ``encode_features`` / ``encode_targets`` / ``decode_outputs`` apply a
stored Schema to new data at predict and evaluate time; ``encode_features`` and
training share one encoder (``_encode_inputs``).

Encoding rules (documented for users in the README, "Columns"):

* A column is *numeric* when its cells are numbers, or numbers written with one unit,
  currency sign or percent sign, thousands separators or the ``decimal`` mark
  (:mod:`nncli.columns`); else *boolean* (true/false/yes/no), *date* (every cell fits one
  date format; ``dates='none'`` turns this off) or *categorical*. ``categorical=[…]``
  declares numeric codes categorical. Text with nearly one value per row is left out
  (``Schema.ignored``) unless ``features`` names it. A non-number in a numeric column is an
  error naming the cell.
* Missing cells: empty, ``NA``, ``NaN``, ``null`` (any case) and non-finite numbers. With
  ``impute`` None they are an error; 'mean'/'median' fill inputs with the training statistic
  (dates: the median; text: the most frequent value) and add a 0/1 indicator input for a
  column missing in at least INDICATOR_SHARE and INDICATOR_MIN of the training rows; 'drop'
  drops rows with a missing input. With any ``impute``, rows without a target are left out
  and counted (``rows_without_target``). The CLI's default is 'median'.
* Numbers beyond float32's range (|x| > 3.4e38) are an error: we may train in float32.
* Numeric, boolean and date inputs are standardised (mean 0, std 1 over the training rows;
  a constant column keeps std 1). Categorical inputs are one-hot over the sorted training
  vocabulary, capped at ``max_categories`` (the most frequent values; the rest, and unseen
  values, one "other" input); without a cap an unseen category encodes as all zeros.
* Task, when not given: a text or boolean target is classification; integers
  with at most 20 distinct values (and at most half as many as rows) are
  classification; anything else regression. Several targets: regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nncli.csvio import (  # noqa: F401  (re-exported: the public reading API)
    MISSING_TOKENS,
    Column,
    Table,
    format_number,
    iter_csv_chunks,
    parse_cells,
    read_csv,
)
from nncli._kernels import csvparse as _kernel
from nncli.columns import (DATE_FORMATS, DATE_PARTS, date_parts, describe_format,
                           detect_date_format, detect_number_format, looks_like_identifier,
                           parse_dates, parse_formatted)
from nncli.errors import ConfigError, DataError, ModelFileError

TASKS = ("classification", "regression", "reconstruct")
IMPUTE_CHOICES = ("mean", "median", "drop")
INPUT_KINDS = ("numeric", "boolean", "categorical", "date")
# expand: find dates (day-first where both orders fit); monthfirst: month-first there.
DATES_CHOICES = ("expand", "monthfirst", "none")
DECIMAL_MARKS = (".", ",")
DEFAULT_MAX_CATEGORIES = 100  # measured: benchmarks/quality (airports: 56 states)
# A column missing in at least this share of the training rows, and in at least INDICATOR_MIN
# of them, gets a 0/1 "missing" input: enough gaps for the network to learn what they mean.
INDICATOR_SHARE = 0.05
INDICATOR_MIN = 10
FLOAT32_MAX = float(np.finfo(np.float32).max)
BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}
MAX_INTEGER_CLASSES = 20
SCHEMA_VERSION = 2  # 2: dates, number formats, indicators, 'other', ignored columns


# --------------------------------------------------------------------------- #
# Schema
# --------------------------------------------------------------------------- #


@dataclass
class InputColumn:
    """One input column as training saw it and predict must encode it."""

    name: str
    kind: str  # 'numeric' | 'boolean' | 'categorical' | 'date'
    mean: float = 0.0  # numeric, boolean: subtracted (0 without standardisation)
    std: float = 1.0  # numeric, boolean: divided by (1 without standardisation)
    vocabulary: list[str] | None = None  # categorical: sorted training categories
    impute: float | str | None = None  # value for missing cells; None: missing is an error
    indicator: bool = False  # numeric, boolean, date: one more input, 1 where the cell was missing
    number_format: dict | None = None  # numeric written with units/separators: {decimal, units}
    other: bool = False  # categorical: one more input for every value not in the vocabulary
    date_format: str | None = None  # date: the format of its cells (columns.DATE_FORMATS)
    parts: list[str] | None = None  # date: the inputs it expands into (columns.DATE_PARTS)
    part_mean: list[float] | None = None  # date: per part, as mean/std
    part_std: list[float] | None = None

    @property
    def width(self) -> int:
        if self.kind == "categorical":
            return len(self.vocabulary) + self.other
        return (len(self.parts) if self.kind == "date" else 1) + self.indicator

    def feature_names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}={v}" for v in self.vocabulary] + (
                [f"{self.name}=(other)"] if self.other else [])
        names = [f"{self.name}.{p}" for p in self.parts] if self.kind == "date" else [self.name]
        return names + ([f"{self.name}.missing"] if self.indicator else [])


@dataclass
class Schema:
    """Everything predict needs to turn a CSV into network inputs and outputs back
    into labels or numbers. JSON-serialisable through :meth:`to_dict`."""

    task: str
    columns: list[str]  # the training file's columns, in order
    inputs: list[InputColumn]
    target_names: list[str]
    target_kind: str | None = None  # 'numeric' | 'categorical'; None for reconstruct
    classes: list[str] | None = None  # classification: class labels, in output order
    target_mean: list[float] | None = None  # regression: per target
    target_std: list[float] | None = None
    id_column: str | None = None
    impute: str | None = None
    standardize: bool = True
    has_header: bool = True
    ignored: list[dict] = field(default_factory=list)  # {name, reason}: columns not used as inputs
    target_format: list | None = None  # regression: per target, its number format or None

    @property
    def n_features(self) -> int:
        return sum(c.width for c in self.inputs)

    @property
    def n_outputs(self) -> int:
        if self.task == "classification":
            return len(self.classes)
        if self.task == "reconstruct":
            return self.n_features
        return len(self.target_names)

    @property
    def feature_names(self) -> list[str]:
        return [n for c in self.inputs for n in c.feature_names()]

    def to_dict(self) -> dict:
        inputs = []
        for c in self.inputs:
            d = {"name": c.name, "kind": c.kind}
            if c.kind == "categorical":
                d["vocabulary"] = list(c.vocabulary)
                d["other"] = bool(c.other)
            elif c.kind == "date":
                d["format"], d["parts"] = c.date_format, list(c.parts)
                d["mean"] = [float(v) for v in c.part_mean]
                d["std"] = [float(v) for v in c.part_std]
            else:
                d["mean"], d["std"] = float(c.mean), float(c.std)
                if c.number_format is not None:
                    d["number_format"] = {"decimal": c.number_format["decimal"],
                                          "units": list(c.number_format["units"])}
            if c.kind != "categorical":
                d["indicator"] = bool(c.indicator)
            d["impute"] = c.impute if c.impute is None or isinstance(c.impute, str) else float(c.impute)
            inputs.append(d)
        return {
            "version": SCHEMA_VERSION,
            "task": self.task,
            "columns": list(self.columns),
            "has_header": self.has_header,
            "id_column": self.id_column,
            "impute": self.impute,
            "standardize": self.standardize,
            "inputs": inputs,
            "ignored": [{"name": g["name"], "reason": g["reason"]} for g in self.ignored],
            "targets": {
                "names": list(self.target_names),
                "kind": self.target_kind,
                "classes": None if self.classes is None else list(self.classes),
                "mean": None if self.target_mean is None else [float(v) for v in self.target_mean],
                "std": None if self.target_std is None else [float(v) for v in self.target_std],
                **({"number_format": [None if f is None else {"decimal": f["decimal"],
                                                              "units": list(f["units"])}
                                      for f in self.target_format]}
                   if self.target_format and any(self.target_format) else {}),
            },
            "n_features": self.n_features,
            "n_outputs": self.n_outputs,
        }

    @classmethod
    def from_dict(cls, d) -> Schema:
        """Rebuild and validate a Schema; ModelFileError says what does not fit."""
        return _schema_from_dict(d)


def column_notes(schema: Schema) -> list[str]:
    """What training decided about the columns, one phrase each, for the first progress line
    and `info`: dates, numbers read from formatted text, capped one-hots, missing-value fills
    and indicators, columns left out."""
    notes = []
    for c in schema.inputs:
        if c.kind == "date":
            notes.append(f"{c.name}: date ({describe_format(c.date_format)}) → "
                         f"{', '.join(c.parts)}")
        elif c.number_format is not None:
            units = " ".join(c.number_format["units"])
            notes.append(f"{c.name}: numbers written with "
                         + (f"{units!r}" if units else "separators")
                         + (", decimal comma" if c.number_format["decimal"] == "," else ""))
        elif c.kind == "categorical" and c.other:
            notes.append(f"{c.name}: {len(c.vocabulary)} most frequent values one-hot, the rest "
                         f"as 'other' (--max-categories)")
        if c.impute is not None and schema.impute in ("mean", "median"):
            how = ("most frequent" if c.kind == "categorical" else
                   "median" if c.kind == "date" else schema.impute)
            if c.indicator:
                notes.append(f"{c.name}: missing → {how}, plus a missing indicator")
    if schema.id_column is not None:
        notes.append(f"{schema.id_column}: the id column (--id), not an input")
    for g in schema.ignored:
        notes.append(f"{g['name']}: not an input ({g['reason']}; name it in --features to use it)")
    return notes


def _bad(msg):
    return ModelFileError(f"model schema: {msg}")


def _keys(d, where, required, optional=()):
    if not isinstance(d, dict):
        raise _bad(f"{where} must be an object, not {type(d).__name__}")
    missing = [k for k in required if k not in d]
    if missing:
        raise _bad(f"{where} lacks {', '.join(missing)}")
    extra = [k for k in d if k not in required and k not in optional]
    if extra:
        raise _bad(f"{where} has unknown field(s) {', '.join(map(str, extra))}")


def _str(v, where, allow_none=False):
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v:
        raise _bad(f"{where} must be a non-empty string, not {v!r}")
    return v


def _strs(v, where, min_len=0, unique=True):
    if not isinstance(v, list) or len(v) < min_len:
        raise _bad(f"{where} must be a list of at least {min_len} strings")
    out = [_str(x, f"{where}[{i}]") for i, x in enumerate(v)]
    if unique and len(set(out)) != len(out):
        raise _bad(f"{where} has duplicates")
    return out


def _num(v, where, positive=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _bad(f"{where} must be a finite number, not {v!r}")
    if positive and not v > 0:
        raise _bad(f"{where} must be positive, not {v!r}")
    return float(v)


def _bool(v, where):
    if not isinstance(v, bool):
        raise _bad(f"{where} must be true or false, not {v!r}")
    return v


def _number_format(v, where, kind):
    """A numeric input's number format: null, or {decimal: '.' or ',', units: [≤ 2 strings]}."""
    if v is None:
        return None
    if kind != "numeric":
        raise _bad(f"{where}.number_format belongs to numeric inputs only")
    _keys(v, f"{where}.number_format", ("decimal", "units"))
    if v["decimal"] not in DECIMAL_MARKS:
        raise _bad(f"{where}.number_format.decimal must be '.' or ','")
    units = _strs(v["units"], f"{where}.number_format.units")
    if len(units) > 2:
        raise _bad(f"{where}.number_format.units has more than a prefix and a suffix")
    return {"decimal": v["decimal"], "units": units}


def _schema_from_dict(d) -> Schema:
    _keys(d, "schema", ("version", "task", "columns", "has_header", "id_column", "impute",
                        "standardize", "inputs", "targets", "n_features", "n_outputs"), ("ignored",))
    # Version 1 (before dates, number formats, indicators and ignored columns) reads as a
    # version 2 schema that uses none of them.
    if d["version"] not in (1, SCHEMA_VERSION) or isinstance(d["version"], bool):
        raise _bad(f"version {d['version']!r} is not supported (expected {SCHEMA_VERSION})")
    v1 = d["version"] == 1
    if v1 and "ignored" in d:
        raise _bad("a version 1 schema has no ignored columns")
    task = d["task"]
    if task not in TASKS:
        raise _bad(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    columns = _strs(d["columns"], "columns", min_len=1)
    for k in ("has_header", "standardize"):
        if not isinstance(d[k], bool):
            raise _bad(f"{k} must be true or false")
    id_column = _str(d["id_column"], "id_column", allow_none=True)
    if id_column is not None and id_column not in columns:
        raise _bad(f"id_column {id_column!r} is not one of the columns")
    if d["impute"] is not None and d["impute"] not in IMPUTE_CHOICES:
        raise _bad(f"impute must be null or one of {', '.join(IMPUTE_CHOICES)}")
    if not isinstance(d["inputs"], list) or not d["inputs"]:
        raise _bad("inputs must be a non-empty list")
    inputs = []
    for i, c in enumerate(d["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(c, dict):
            raise _bad(f"{where} must be an object")
        kind = c.get("kind")
        name = c.get("name")
        if kind == "categorical":
            _keys(c, where, ("name", "kind", "vocabulary", "impute"), () if v1 else ("other",))
            vocab = _strs(c["vocabulary"], f"{where}.vocabulary", min_len=1)
            imp = c["impute"]
            if imp is not None and imp not in vocab:
                raise _bad(f"{where}.impute must be null or one of its vocabulary")
            other = _bool(c.get("other", False), f"{where}.other")
            ic = InputColumn(_str(name, f"{where}.name"), kind, vocabulary=vocab, impute=imp,
                             other=other)
        elif kind in ("numeric", "boolean"):
            _keys(c, where, ("name", "kind", "mean", "std", "impute"),
                  () if v1 else ("indicator", "number_format"))
            imp = None if c["impute"] is None else _num(c["impute"], f"{where}.impute")
            ic = InputColumn(_str(name, f"{where}.name"), kind,
                             mean=_num(c["mean"], f"{where}.mean"),
                             std=_num(c["std"], f"{where}.std", positive=True), impute=imp,
                             indicator=_bool(c.get("indicator", False), f"{where}.indicator"),
                             number_format=_number_format(c.get("number_format"), where, kind))
        elif kind == "date" and not v1:
            _keys(c, where, ("name", "kind", "format", "parts", "mean", "std", "impute", "indicator"))
            if c["format"] not in DATE_FORMATS:
                raise _bad(f"{where}.format {c['format']!r} is not a date format nncli reads")
            parts = _strs(c["parts"], f"{where}.parts", min_len=1)
            if any(p not in DATE_PARTS for p in parts):
                raise _bad(f"{where}.parts must be among {', '.join(DATE_PARTS)}")
            for k in ("mean", "std"):
                if not isinstance(c[k], list) or len(c[k]) != len(parts):
                    raise _bad(f"{where}.{k} must be a list of {len(parts)} numbers")
            imp = None if c["impute"] is None else _num(c["impute"], f"{where}.impute")
            ic = InputColumn(_str(name, f"{where}.name"), kind, impute=imp,
                             indicator=_bool(c["indicator"], f"{where}.indicator"),
                             date_format=c["format"], parts=parts,
                             part_mean=[_num(v, f"{where}.mean") for v in c["mean"]],
                             part_std=[_num(v, f"{where}.std", positive=True) for v in c["std"]])
        else:
            kinds = INPUT_KINDS[:3] if v1 else INPUT_KINDS
            raise _bad(f"{where}.kind must be one of {', '.join(kinds)}, not {kind!r}")
        if ic.name not in columns:
            raise _bad(f"input {ic.name!r} is not one of the columns")
        if ic.name == id_column:
            raise _bad(f"input {ic.name!r} is the id column")
        inputs.append(ic)
    if len({c.name for c in inputs}) != len(inputs):
        raise _bad("inputs has duplicate names")
    ignored = []
    if not isinstance(d.get("ignored", []), list):
        raise _bad("ignored must be a list")
    for i, g in enumerate(d.get("ignored", [])):
        _keys(g, f"ignored[{i}]", ("name", "reason"))
        gname = _str(g["name"], f"ignored[{i}].name")
        if gname not in columns or gname in {c.name for c in inputs}:
            raise _bad(f"ignored column {gname!r} must be a column that is not an input")
        ignored.append({"name": gname, "reason": _str(g["reason"], f"ignored[{i}].reason")})
    t = d["targets"]
    _keys(t, "targets", ("names", "kind", "classes", "mean", "std"), () if v1 else ("number_format",))
    names = _strs(t["names"], "targets.names", min_len=0)
    kind, classes, mean, std, target_format = t["kind"], None, None, None, None
    if "number_format" in t and task != "regression":
        raise _bad("only regression targets have a number format")
    if task == "reconstruct":
        if names != [c.name for c in inputs] or kind is not None or any(
                t[k] is not None for k in ("classes", "mean", "std")):
            raise _bad("a reconstruct model's targets are its inputs, with no classes or scaling")
    else:
        if not names:
            raise _bad("targets.names must not be empty")
        for n in names:
            if n not in columns:
                raise _bad(f"target {n!r} is not one of the columns")
            if n in {c.name for c in inputs} or n == id_column:
                raise _bad(f"target {n!r} is also an input or the id column")
        if task == "classification":
            if len(names) != 1 or kind not in ("numeric", "categorical"):
                raise _bad("classification needs one target of kind numeric or categorical")
            classes = _strs(t["classes"], "targets.classes", min_len=2)
            if t["mean"] is not None or t["std"] is not None:
                raise _bad("classification targets have no mean/std")
        else:
            if kind != "numeric" or t["classes"] is not None:
                raise _bad("regression targets are numeric and have no classes")
            for k in ("mean", "std"):
                if not isinstance(t[k], list) or len(t[k]) != len(names):
                    raise _bad(f"targets.{k} must be a list of {len(names)} numbers")
            mean = [_num(v, f"targets.mean[{i}]") for i, v in enumerate(t["mean"])]
            std = [_num(v, f"targets.std[{i}]", positive=True) for i, v in enumerate(t["std"])]
            if "number_format" in t:
                if not isinstance(t["number_format"], list) or len(t["number_format"]) != len(names):
                    raise _bad(f"targets.number_format must be a list of {len(names)} entries")
                target_format = [_number_format(f, f"targets[{i}]", "numeric")
                                 for i, f in enumerate(t["number_format"])]
    schema = Schema(task, columns, inputs, names, kind, classes, mean, std, id_column,
                    d["impute"], d["standardize"], d["has_header"], ignored, target_format)
    for k in ("n_features", "n_outputs"):
        v = d[k]
        if isinstance(v, bool) or not isinstance(v, int) or v != getattr(schema, k):
            raise _bad(f"{k} is {v!r} but the inputs and targets make {getattr(schema, k)}")
    return schema


# --------------------------------------------------------------------------- #
# Column analysis
# --------------------------------------------------------------------------- #


@dataclass
class _Cells:
    """A column seen as numbers (numeric, boolean; a date as seconds since 1970) or stripped
    text (categorical)."""

    kind: str
    text_missing: np.ndarray | None = None  # categorical: bool (n,)
    values: np.ndarray | None = None  # float64, NaN where missing
    text: list[str] | None = None  # categorical: stripped cells ('' where missing)
    bad: list[tuple[int, str]] = field(default_factory=list)  # non-numbers in a numeric column
    number_format: dict | None = None  # numeric: how its cells are written, when not plainly
    date_format: str | None = None  # date: the format its cells fit

    @property
    def missing(self) -> np.ndarray:
        """bool (n,): computed on demand for numbers (not kept: it would cost memory)."""
        return self.text_missing if self.values is None else ~np.isfinite(self.values)


def _analyse(col: Column, decimal=".", dates="expand", categorical=False) -> _Cells:
    """The kind of a column and its cells: numbers (plain, or written with units, thousands
    separators, percent signs or ``decimal`` commas), booleans, dates (with ``dates='expand'``)
    or categories (all of them with ``categorical``)."""
    if categorical:
        text = [s.strip() for s in col.as_text()]
        missing = np.fromiter((s.lower() in MISSING_TOKENS for s in text), bool, len(text))
        if col.is_text:   # '7.0' and '7' are one category, as at predict time
            text = [_canonical(s) for s in text]
        return _Cells("categorical", missing, text=[("" if m else s) for s, m in zip(text, missing)])
    if not col.is_text:
        values = col.values
        if col.bad and decimal == ".":
            found = detect_number_format(col.as_text(), decimal)
            if found is not None:
                return _Cells("numeric", values=found[1], number_format=found[0])
        return _Cells("numeric", values=values, bad=col.bad)
    values, bad, n_numbers = None, [], 0
    if decimal == "." and not _mostly_text(col.text):
        values, bad = parse_cells(col.text)
        n_numbers = int(np.isfinite(values).sum())
        if not bad and n_numbers:
            return _Cells("numeric", values=values)
    found = detect_number_format(col.text, decimal)
    if found is not None:
        return _Cells("numeric", values=found[1], number_format=found[0])
    if decimal == "." and len(bad) <= n_numbers and (bad or n_numbers):
        return _Cells("numeric", values=values, bad=bad)
    text = [s.strip() for s in col.text]
    missing = np.fromiter((s.lower() in MISSING_TOKENS for s in text), bool, len(text))
    words = {s.lower() for s, m in zip(text, missing) if not m}
    if words and words <= BOOLEAN_WORDS.keys():
        values = np.array([BOOLEAN_WORDS.get(s.lower(), np.nan) for s in text], np.float64)
        return _Cells("boolean", values=values)
    if dates != "none":
        date_format = detect_date_format(text, month_first=dates == "monthfirst")
        if date_format is not None:
            return _Cells("date", values=parse_dates(text, date_format)[0], date_format=date_format)
    return _Cells("categorical", missing, text=[("" if m else s) for s, m in zip(text, missing)])


def _mostly_text(cells, k=1000) -> bool:
    """True when most of ``k`` cells spread over the column are neither numbers nor missing:
    a text column, which need not be parsed cell by cell as numbers first."""
    step = max(1, len(cells) // k)
    probe = cells[::step]
    words = 0
    for s in probe:
        try:
            float(s)
        except ValueError:
            words += s.strip().lower() not in MISSING_TOKENS
    return words > 0.75 * len(probe)


def _check_numbers(table: Table, j: int, cells: _Cells):
    """Raise for a non-number or a float32 overflow in a numeric column."""
    if cells.bad:
        row, s = cells.bad[0]
        more = f" ({len(cells.bad) - 1} more non-numbers in this column)" if len(cells.bad) > 1 else ""
        raise DataError(f"{table.where(row, j)}: cannot read {s!r} as a number{more}")
    v = cells.values
    with np.errstate(invalid="ignore"):
        big = np.abs(v) > FLOAT32_MAX
    big &= np.isfinite(v)
    if big.any():
        row = int(np.argmax(big))
        raise DataError(f"{table.where(row, j)}: {float(v[row])!r} is too large "
                        f"(at most {FLOAT32_MAX:.4g} in magnitude)")


def _missing_error(table: Table, j: int, row: int, what="value", fix=None) -> DataError:
    col = table.columns[j]
    s = col.text[row].strip() if col.is_text else None
    v = None if col.is_text else col.values[row]
    shown = f" ({s!r})" if s else (f" ({float(v)!r})" if v is not None and not np.isnan(v) else "")
    if fix is None:  # training's advice; evaluation has no --impute
        fix = ("train without --impute none to leave such rows out" if what == "target value"
               else "train without --impute none (median is the default), or with --impute mean|drop")
    return DataError(f"{table.where(row, j)}: missing {what}{shown}; fill it in, or {fix}")


def _as_list(keys):
    if keys is None:
        return []
    if isinstance(keys, (str, int, np.integer)):
        return [keys]
    return list(keys)


# --------------------------------------------------------------------------- #
# Training data
# --------------------------------------------------------------------------- #


@dataclass
class TrainingData:
    """Encoded training arrays and the schema that produced them."""

    X: np.ndarray  # float64 (N, n_features), C-contiguous: every kept row
    Y: np.ndarray  # float64 (N, n_outputs); for reconstruct, the same array as X
    schema: Schema
    task: str
    feature_names: list[str]
    ids: list[str] | None  # the id column's text per row
    line_numbers: np.ndarray  # int64 (N,): line in the file of each row
    labels: np.ndarray | None = None  # classification: int class index per row (for splits)
    val_rows: np.ndarray | None = None  # int64: rows of X held out for validation (None: no split)
    kept: np.ndarray | None = None  # int64: the table row of each row of X (None: every row)
    rows_without_target: int = 0  # rows left out because their target is missing
    rows_dropped: int = 0  # every row left out (missing target, or 'drop' and a missing input)
    notes: list = field(default_factory=list)  # training-time remarks beside column_notes

    @property
    def train_rows(self) -> np.ndarray | None:
        """int64: rows of X trained on (None: all of them)."""
        if self.val_rows is None:
            return None
        mask = np.ones(len(self.X), bool)
        mask[self.val_rows] = False
        return np.flatnonzero(mask)


@dataclass
class ColumnPlan:
    """Which columns a training run uses, each analysed once, and the task."""

    names: list[str]
    target_idx: list[int]
    feat_idx: list[int]
    id_idx: int | None
    cells: dict  # column index → _Cells
    task: str
    ignored: list = field(default_factory=list)  # (column index, reason): left out of the inputs
    options: dict = field(default_factory=dict)  # max_categories


def prepare_training(table: Table, *, target=None, features=None, drop=None, id_column=None,
                     task=None, standardize=True, impute=None, validation_fraction=0.0,
                     seed=None, **column_options) -> TrainingData:
    """Choose columns, infer the task, encode, standardise: see the module docstring.
    ``column_options`` go to :func:`choose_columns` (dates, decimal, categorical,
    max_categories).

    With a ``validation_fraction``, the rows held out (``val_rows``, chosen by
    :func:`validation_split` from ``seed``) take no part in the statistics: means,
    standard deviations and imputed values come from the training rows only.
    """
    if impute is not None and impute not in IMPUTE_CHOICES:
        raise ConfigError(f"impute must be one of {', '.join(IMPUTE_CHOICES)}, not {impute!r}")
    plan = choose_columns(table, target=target, features=features, drop=drop,
                          id_column=id_column, task=task, **column_options)
    kept, classes, labels, train_rows, val_rows = _split_rows(table, plan, impute,
                                                              validation_fraction, seed)
    n = table.n_rows if kept is None else len(kept)
    fit_rows = kept if val_rows is None else train_rows if kept is None else kept[train_rows]
    schema = fit_schema(table, plan, fit_rows, classes, standardize=standardize, impute=impute,
                        kept=kept)
    X = _encode_inputs(table, [(j, _rows_of(plan.cells[j], kept)) for j in plan.feat_idx],
                       schema, n)
    Y = X if plan.task == "reconstruct" else _encode_training_targets(table, plan, schema, kept, labels)
    ids = None
    if plan.id_idx is not None:
        ids = table.columns[plan.id_idx].as_text()
        ids = ids if kept is None else [ids[i] for i in kept]
    line_numbers = table.line_numbers if kept is None else table.line_numbers[kept]
    no_target = 0
    for j in plan.target_idx:
        no_target = max(no_target, int(plan.cells[j].missing.sum()))
    return TrainingData(X, Y, schema, plan.task, schema.feature_names, ids, line_numbers,
                        labels, val_rows, kept, no_target, table.n_rows - n,
                        _ambiguous_dates(table, plan))


def _ambiguous_dates(table: Table, plan: ColumnPlan) -> list[str]:
    """A note per date column whose cells fit day-first and month-first alike (every day at
    most 12): which one was taken and how to take the other."""
    notes = []
    for j in plan.feat_idx:
        fmt = plan.cells[j].date_format
        note = fmt and ambiguous_date_note(plan.names[j], fmt, lambda j=j: [
            s.strip() for s in table.columns[j].as_text()])
        if note:
            notes.append(note)
    return notes


def ambiguous_date_note(name, fmt, cells) -> str | None:
    """The note for a date column read as ``fmt`` when its ``cells()`` (the stripped text,
    or its distinct values) fit the other order of day and month too; else None."""
    if not fmt.startswith(("%d/%m", "%d-%m", "%d.%m", "%m/%d", "%m-%d", "%m.%d")):
        return None
    a, b = fmt[:2], fmt[3:5]
    other = b + fmt[2] + a + fmt[5:]   # '%d/%m/%Y' ↔ '%m/%d/%Y'
    if parse_dates(cells(), other)[1]:
        return None
    month_first = a == "%m"
    order = "month-first" if month_first else "day-first"
    fix = "--dates expand" if month_first else "--dates monthfirst"
    return f"{name}: read {order}, as {describe_format(fmt)} (the other order fits too: {fix})"


def _split_rows(table: Table, plan: ColumnPlan, impute, fraction, seed):
    """``(kept, classes, labels, train_rows, val_rows)``: the table rows trained on (None:
    all), the classes and each kept row's class, and the validation split of the kept rows
    (both None without a fraction). Training and :func:`held_out_rows` share it."""
    keep = rows_to_keep(table, plan, impute)
    kept = None if keep is None else np.flatnonzero(keep)
    classes, labels = class_labels(table, plan, kept)
    train_rows = val_rows = None
    if fraction:
        n = table.n_rows if kept is None else len(kept)
        train_rows, val_rows = validation_split(n, fraction, seed, labels)
    return kept, classes, labels, train_rows, val_rows


def held_out_rows(table: Table, *, target=None, features=None, drop=None, id_column=None,
                  task=None, impute=None, validation_fraction, seed, **column_options) -> np.ndarray:
    """int64: the table rows a training run with these options held out for validation —
    the same steps as :func:`prepare_training`, so the same rows for the same file and seed."""
    plan = choose_columns(table, target=target, features=features, drop=drop,
                          id_column=id_column, task=task, **column_options)
    kept, _, _, _, val_rows = _split_rows(table, plan, impute, validation_fraction, seed)
    return val_rows if kept is None else kept[val_rows]


def table_rows(table: Table, rows) -> Table:
    """The rows ``rows`` (int indices, in that order) of ``table`` as a new Table."""
    rows = np.asarray(rows, np.int64)
    columns = []
    for c in table.columns:
        if c.is_text:
            columns.append(Column(c.name, c.index, text=[c.text[i] for i in rows.tolist()]))
        else:
            at = {int(r): k for k, r in enumerate(rows)}
            bad = sorted((at[r], s) for r, s in c.bad if r in at)
            columns.append(Column(c.name, c.index, values=c.values[rows], bad=bad))
    return Table(list(table.names), columns, table.line_numbers[rows], table.source, table.sep,
                 table.has_header, table.named, None)


def choose_columns(table: Table, *, target=None, features=None, drop=None, id_column=None,
                   task=None, dates="expand", decimal=None, categorical=None,
                   max_categories=DEFAULT_MAX_CATEGORIES) -> ColumnPlan:
    """Step 1: the target, feature and id columns; each analysed (its kind decided: see
    :func:`_analyse`); identifier-like text left out unless ``features`` names it; the task
    inferred. ``decimal`` None: ',' for a ';'-separated file, else '.'."""
    decimal = check_column_options(table.sep, task=task, dates=dates, decimal=decimal,
                                   max_categories=max_categories)
    names = table.names
    target_idx, feat_idx, id_idx = column_roles(table, target=target, features=features, drop=drop,
                                                id_column=id_column, task=task)

    # -- look at every column used
    declared = declared_categorical(table, categorical, feat_idx)
    cells = {j: _analyse(table.columns[j], decimal, dates, j in declared) for j in feat_idx}
    cells.update({j: _analyse(table.columns[j], decimal, "none") for j in target_idx})
    for j in feat_idx:
        if cells[j].kind == "numeric":
            _check_numbers(table, j, cells[j])
    ignored = []
    if features is None:   # columns a user named are used whatever they hold
        ignored = identifier_columns({j: looks_like_identifier(cells[j].text, cells[j].missing)
                                      for j in feat_idx
                                      if cells[j].kind == "categorical" and j not in declared},
                                     len(feat_idx))
        feat_idx = [j for j in feat_idx if j not in {g for g, _ in ignored}]
    task = _infer_task(table, target_idx, cells, task)
    return ColumnPlan(list(names), target_idx, feat_idx, id_idx, cells, task, ignored,
                      {"max_categories": max_categories})


def check_column_options(sep, *, task=None, dates="expand", decimal=None,
                         max_categories=DEFAULT_MAX_CATEGORIES) -> str:
    """Refuse a column option out of range; the decimal mark to use (None: ',' for a
    ';'-separated file, else '.')."""
    if task is not None and task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if dates not in DATES_CHOICES:
        raise ConfigError(f"dates must be one of {', '.join(DATES_CHOICES)}, not {dates!r}")
    if decimal is None:
        decimal = "," if sep == ";" else "."
    if decimal not in DECIMAL_MARKS:
        raise ConfigError(f"the decimal mark must be '.' or ',', not {decimal!r}")
    if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 2:
        raise ConfigError(f"max_categories must be a whole number ≥ 2, not {max_categories!r}")
    return decimal


def column_roles(table: Table, *, target=None, features=None, drop=None, id_column=None,
                 task=None):
    """``(target_idx, feat_idx, id_idx)``: the columns a run learns, learns from, and
    identifies rows by, from the options and the column names alone (no cell is read; a
    streamed run decides them on its first chunk)."""
    names = table.names
    ncols = len(names)
    id_idx = None if id_column is None else table.index_of(id_column)
    drop_idx = {table.index_of(k) for k in _as_list(drop)}

    # -- targets
    if task == "reconstruct":
        if _as_list(target):
            raise ConfigError("task 'reconstruct' learns its inputs: give no target")
        target_idx = []
    elif target is None:
        target_idx = [max(j for j in range(ncols) if j != id_idx)] if ncols > 1 else [0]
    else:
        target_idx = [table.index_of(k) for k in _as_list(target)]
        if not target_idx:
            raise ConfigError("no target column given")
        if len(set(target_idx)) != len(target_idx):
            raise ConfigError("a target column is given twice")
    for j in target_idx:
        if j == id_idx:
            raise ConfigError(f"column {names[j]!r} cannot be both the id and a target")
        if j in drop_idx:
            raise ConfigError(f"column {names[j]!r} is the target; it cannot be dropped")

    # -- features
    if features is not None:
        feat_idx = []
        for k in _as_list(features):
            j = table.index_of(k)
            if j in target_idx:
                raise ConfigError(f"column {names[j]!r} is the target; it cannot also be a feature")
            if j == id_idx:
                raise ConfigError(f"column {names[j]!r} is the id column; it cannot be a feature")
            if j not in feat_idx and j not in drop_idx:
                feat_idx.append(j)
    else:
        feat_idx = [j for j in range(ncols)
                    if j not in target_idx and j != id_idx and j not in drop_idx]
    if not feat_idx:
        if ncols - (id_idx is not None) - len(target_idx) <= 0:
            raise DataError(f"{table.source}: no column is left to learn from "
                            f"(columns: {', '.join(map(repr, names))})")
        raise ConfigError("the options leave no feature column")

    return target_idx, feat_idx, id_idx


def declared_categorical(table: Table, categorical, feat_idx) -> set:
    """The column indices of ``categorical`` (--categorical), each an input."""
    declared = {table.index_of(k) for k in _as_list(categorical)}
    for j in declared:
        if j not in feat_idx:
            raise ConfigError(f"--categorical: column {table.names[j]!r} is not an input")
    return declared


def identifier_columns(found: dict, n_features: int) -> list:
    """``[(column, reason)]`` of the inputs left out as identifier-like, from ``found``
    (column → `columns.looks_like_identifier`'s answer, for the text inputs not declared
    categorical), unless that would leave no input: better a weak input than none."""
    ignored = [(j, f"identifier-like: {f[0]} distinct values in {f[1]} rows")
               for j, f in found.items() if f]
    return [] if len(ignored) == n_features else ignored


def task_for_targets(task, n_targets):
    """The task as far as the number of targets decides it: several targets mean
    multi-output regression (classification takes one); None is left to the data."""
    if task != "reconstruct" and n_targets > 1:
        if task == "classification":
            raise ConfigError("classification takes one target column; "
                              "several targets mean multi-output regression")
        return "regression"
    return task


def _infer_task(table: Table, target_idx, cells, task):
    """The task given, or the one the target suggests; a text regression target is an error."""
    task = task_for_targets(task, len(target_idx))
    if task == "reconstruct":
        return task
    tcells = [cells[j] for j in target_idx]
    for j, c in zip(target_idx, tcells):
        if c.kind == "numeric":
            _check_numbers(table, j, c)
        elif task == "regression" or len(target_idx) > 1:
            row = int(np.argmin(c.missing))
            raise DataError(f"{table.where(row, j)}: the target holds text "
                            f"({table.columns[j].as_text()[row].strip()!r}); "
                            f"a regression target must be numeric")
    if task is None:
        task = "classification" if _looks_categorical(tcells[0]) else "regression"
    return task


def rows_to_keep(table: Table, plan: ColumnPlan, impute) -> np.ndarray | None:
    """Step 2: bool (n,) of the rows to train on, None for all. A row without a target is
    dropped when impute is set (mean, median or drop) and an error without; a missing input
    is an error without impute, filled by mean/median, and its row dropped by 'drop'."""
    keep = None
    for j in plan.target_idx:
        miss = plan.cells[j].missing
        if miss.any():
            if impute is not None:
                keep = ~miss if keep is None else keep & ~miss
            else:
                raise _missing_error(table, j, int(np.argmax(miss)), "target value")
    for j in plan.feat_idx:
        miss = plan.cells[j].missing
        if miss.any():
            if impute is None:
                raise _missing_error(table, j, int(np.argmax(miss)))
            if impute == "drop":
                keep = ~miss if keep is None else keep & ~miss
    if keep is not None:
        if not keep.any():
            raise DataError(f"{table.source}: no row is left after dropping rows with missing values")
        if keep.all():
            keep = None
    return keep


def class_labels(table: Table, plan: ColumnPlan, rows=None):
    """Step 3 (classification): ``(classes, labels)``, the sorted class names and each kept
    row's class index; ``(None, None)`` for other tasks. Classes come from every kept row
    (so a class seen only in validation rows still has an output)."""
    if plan.task != "classification":
        return None, None
    j = plan.target_idx[0]
    c = plan.cells[j]
    if c.kind == "numeric":
        v = _take(c.values, rows)
        uniq = np.unique(v)
        classes = [format_number(x) for x in uniq.tolist()]
        labels = np.searchsorted(uniq, v).astype(np.int64)
    else:
        text = table.columns[j].as_text()
        text = [s.strip() for s in (text if rows is None else (text[i] for i in rows))]
        classes = sorted(set(text))
        index = {s: i for i, s in enumerate(classes)}
        labels = np.fromiter((index[s] for s in text), np.int64, len(text))
    if len(classes) < 2:
        raise DataError(f"{table.source}: the target column {plan.names[j]!r} has only one class "
                        f"({classes[0]!r}); classification needs at least two")
    return classes, labels


def fit_schema(table: Table, plan: ColumnPlan, fit_rows, classes, *, standardize=True,
               impute=None, kept=None) -> Schema:
    """Step 4: the encoder, fitted on ``fit_rows`` (int indices into the table; None: all).
    Means, standard deviations and imputed values come from those rows only; a categorical
    column's vocabulary from every ``kept`` row (None: all), so that the network's width
    does not depend on the split."""
    names = plan.names
    inputs = []
    cap = plan.options.get("max_categories", DEFAULT_MAX_CATEGORIES)
    for j in plan.feat_idx:
        c = plan.cells[j]
        if c.kind == "categorical":
            text = np.array(c.text, dtype=object)
            present = text[_fit_mask(c.missing, kept)].astype(str)
            if not len(present):
                raise DataError(f"{table.source}: column {names[j]!r} ({j + 1}) has no values")
            fitted = text[_fit_mask(c.missing, fit_rows)].astype(str)
            inputs.append(categorical_input(names[j], np.unique(present, return_counts=True),
                                            np.unique(fitted, return_counts=True), cap, impute))
            continue
        v = _take(c.values, fit_rows)
        ok = np.isfinite(v)
        if not ok.any():
            raise DataError(f"{table.source}: column {names[j]!r} ({j + 1}) has no values"
                            + (" in the training rows" if fit_rows is not None else ""))
        fill = None
        if impute in ("mean", "median"):
            fill = float(np.median(v[ok]) if impute == "median" or c.kind == "date"
                         else np.mean(v[ok]))
        # A missing-value input where the gaps are common enough to carry information.
        n_missing = len(ok) - int(ok.sum())
        indicator = (fill is not None and n_missing >= INDICATOR_MIN
                     and n_missing >= INDICATOR_SHARE * len(ok))
        filled = v if fill is None or ok.all() else np.where(ok, v, fill)
        if c.kind == "date":
            parts = date_parts(filled)
            days = filled.astype("datetime64[s]").astype("datetime64[D]")
            day_of_month = days - days.astype("datetime64[M]").astype("datetime64[D]")
            # Monthly (or yearly) data, every date on one day of the month: its weekday and
            # day of year only repeat the month, or are noise.
            monthly = len(np.unique(day_of_month)) == 1
            stats = {p: (float(np.mean(parts[p])), float(np.std(parts[p]))) for p in DATE_PARTS}
            inputs.append(date_input(names[j], c.date_format, stats, has_time=bool(
                np.any(filled % 86400)), monthly=monthly, fill=fill, indicator=indicator,
                standardize=standardize))
            continue
        mean, std = _mean_std(filled) if standardize else (0.0, 1.0)
        inputs.append(InputColumn(names[j], c.kind, mean=mean, std=std, impute=fill,
                                  indicator=bool(indicator), number_format=c.number_format))
    schema = Schema(plan.task, list(names), inputs, [], has_header=table.has_header,
                    id_column=None if plan.id_idx is None else names[plan.id_idx], impute=impute,
                    standardize=bool(standardize),
                    ignored=[{"name": names[j], "reason": why} for j, why in plan.ignored])
    if plan.task == "reconstruct":
        schema.target_names = [ic.name for ic in inputs]
    elif plan.task == "classification":
        j = plan.target_idx[0]
        schema.target_names = [names[j]]
        schema.target_kind = "numeric" if plan.cells[j].kind == "numeric" else "categorical"
        schema.classes = classes
    else:
        schema.target_names = [names[j] for j in plan.target_idx]
        schema.target_kind = "numeric"
        stats = [_mean_std(_take(plan.cells[j].values, fit_rows)) if standardize else (0.0, 1.0)
                 for j in plan.target_idx]
        schema.target_mean = [m for m, _ in stats]
        schema.target_std = [s for _, s in stats]
        formats = [plan.cells[j].number_format for j in plan.target_idx]
        schema.target_format = formats if any(formats) else None   # as from_dict reads it
    return schema


def categorical_input(name, kept, fitted, cap, impute) -> InputColumn:
    """A text input from its values' counts over the kept rows (the vocabulary: every kept
    row, so the width does not depend on the split) and over the training rows (the fill),
    each ``(sorted distinct values, their counts)`` as ``np.unique(…, return_counts=True)``
    gives them: at most ``cap`` inputs, the most frequent values (ties: alphabetical) and one
    'other' input for the rest; the fill is the most frequent training value (ties:
    alphabetical)."""
    kept_counts = dict(zip((str(w) for w in kept[0]), np.asarray(kept[1]).tolist()))
    fit_counts = dict(zip((str(w) for w in fitted[0]), np.asarray(fitted[1]).tolist()))
    vocab = sorted(kept_counts)
    other = len(vocab) > cap
    if other:
        top = sorted(range(len(vocab)), key=lambda i: -kept_counts[vocab[i]])[:cap - 1]
        vocab = sorted(vocab[i] for i in top)
    fill = None
    if impute in ("mean", "median"):   # a drop model has no fill: it never sees a gap
        chosen = set(vocab)
        fitted = {w: n for w, n in fit_counts.items() if n and w in chosen}
        fill = min(fitted.items(), key=lambda wn: (-wn[1], wn[0]))[0] if fitted else vocab[0]
    return InputColumn(name, "categorical", vocabulary=vocab, impute=fill, other=bool(other))


def date_input(name, date_format, stats: dict, *, has_time, monthly, fill, indicator,
               standardize=True) -> InputColumn:
    """A date input from each part's (mean, std) over the training dates (missing ones
    filled): the parts that vary, no hour without times, no day of year or weekday for
    monthly dates (they only repeat the month, or are noise)."""
    names_kept, means, stds = [], [], []
    for p in DATE_PARTS:
        if "hour" in p and not has_time:
            continue
        if monthly and p.startswith(("doy", "weekday")):
            continue
        mean, std = stats[p]
        if not std > 1e-12 or not math.isfinite(std):
            continue   # a part that never changes in training (the year of one year)
        names_kept.append(p)
        means.append(mean if standardize else 0.0)
        stds.append(std if standardize else 1.0)
    if not names_kept:
        names_kept, means, stds = ["elapsed"], [stats["elapsed"][0]], [1.0]
    return InputColumn(name, "date", impute=fill, indicator=bool(indicator),
                       date_format=date_format, parts=names_kept, part_mean=means, part_std=stds)


def _mean_std(v):
    """(mean, std) of v; a constant or degenerate column keeps std 1."""
    mean, std = float(np.mean(v)), float(np.std(v))
    return mean, (std if std > 0 and math.isfinite(std) else 1.0)


def _take(a, rows):
    return a if rows is None else a[rows]


def _fit_mask(missing, fit_rows):
    """bool mask of the present cells among fit_rows."""
    mask = ~missing
    if fit_rows is not None:
        chosen = np.zeros(len(missing), bool)
        chosen[fit_rows] = True
        mask &= chosen
    return mask


def _rows_of(c: _Cells, rows) -> _Cells:
    """The cells of ``rows`` (None: all)."""
    if rows is None:
        return c
    if c.values is not None:
        return _Cells(c.kind, values=c.values[rows])
    return _Cells(c.kind, c.text_missing[rows], text=[c.text[i] for i in rows])


def _encode_training_targets(table, plan, schema, rows, labels) -> np.ndarray:
    """Y of the kept rows: one-hot classes, or standardised regression targets."""
    if plan.task == "classification":
        Y = np.zeros((len(labels), len(schema.classes)), np.float64)
        Y[np.arange(len(labels)), labels] = 1.0
        return Y
    n = table.n_rows if rows is None else len(rows)
    Y = np.empty((n, len(plan.target_idx)), np.float64)
    for k, j in enumerate(plan.target_idx):
        v = _take(plan.cells[j].values, rows)
        mean, std = schema.target_mean[k], schema.target_std[k]
        if (mean, std) == (0.0, 1.0):
            Y[:, k] = v
        else:  # (v - mean) / std, written straight into Y (no temporary column)
            np.subtract(v, mean, out=Y[:, k])
            Y[:, k] /= std
    return Y


def _encode_inputs(table: Table, columns, schema: Schema, n: int) -> np.ndarray:
    """The one encoder of inputs, for training and for new data: X (n, n_features) float64
    from ``columns``, one ``(table column index, _Cells)`` per schema input. Runs of complete
    numeric columns are written row block by row block by the kernel."""
    X = np.empty((n, schema.n_features), np.float64)
    col_at = 0
    run = []  # consecutive complete numeric columns
    for (j, c), ic in zip(columns, schema.inputs):
        if ic.kind in ("numeric", "boolean") and not ic.indicator:
            v = c.values
            if v.dtype == np.float64 and v.flags.c_contiguous and np.isfinite(v).all():
                run.append((v, ic))
                col_at += 1
                continue
        _columns_into(X, col_at - len(run), run)
        run = []
        out = X[:, col_at:col_at + ic.width]
        if ic.kind == "categorical":
            _one_hot_into(out, c.text, c.missing, ic, table, j)
        elif ic.kind == "date":
            _date_into(out, c.values, ic, table, j)
        else:
            _numbers_into(out[:, 0], c.values, ic, table, j)
        if ic.indicator:
            out[:, -1] = ~np.isfinite(c.values)
        col_at += ic.width
    _columns_into(X, col_at - len(run), run)
    return X


def _cells_as_trained(table: Table, j: int, ic: InputColumn) -> _Cells:
    """Column j of new data read as the kind training saw (errors name the cell)."""
    col = table.columns[j]
    if ic.kind == "numeric":
        if ic.number_format is not None and (col.is_text or col.bad):
            values, bad, _ = parse_formatted(col.as_text(), ic.number_format["decimal"])
        else:
            values, bad = col.as_numbers()
        cells = _Cells("numeric", values=values, bad=bad)
        _check_numbers(table, j, cells)
        return cells
    text = [s.strip() for s in col.as_text()]
    if ic.kind == "date":
        values, bad = parse_dates(text, ic.date_format)
        if bad:
            row, s = bad[0]
            raise DataError(f"{table.where(row, j)}: cannot read {s!r} as a date in the form "
                            f"training saw ({describe_format(ic.date_format)})")
        return _Cells("date", values=values)
    missing = np.fromiter((s.lower() in MISSING_TOKENS for s in text), bool, len(text))
    if ic.kind == "categorical":
        return _Cells("categorical", missing, text=text)
    values = np.empty(len(text), np.float64)
    for r, (s, m) in enumerate(zip(text, missing)):
        if m:
            values[r] = np.nan
        elif s.lower() in BOOLEAN_WORDS:
            values[r] = BOOLEAN_WORDS[s.lower()]
        else:
            raise DataError(f"{table.where(r, j)}: expected true/false or yes/no, found {s!r}")
    return _Cells("boolean", values=values)


def _looks_categorical(c: _Cells) -> bool:
    if c.kind != "numeric":
        return True
    v = c.values[~c.missing]
    if not len(v) or not np.all(v == np.round(v)):
        return False
    distinct = len(np.unique(v))
    return distinct <= MAX_INTEGER_CLASSES and distinct <= len(v) / 2


def _numbers_into(out, v, ic: InputColumn, table=None, j=None):
    """out[:] = standardised v, missing cells filled with ic.impute (or an error)."""
    ok = np.isfinite(v)
    if not ok.all():
        if ic.impute is None:
            raise _missing_error(table, j, int(np.argmin(ok)))
        v = np.where(ok, v, ic.impute)
    if ic.mean == 0.0 and ic.std == 1.0:
        out[:] = v
    else:
        np.subtract(v, ic.mean, out=out)
        out /= ic.std


def _date_into(out, seconds, ic: InputColumn, table=None, j=None):
    """out (n, len(ic.parts)) = the standardised parts of each date (columns.date_parts),
    missing dates filled with ic.impute (or an error)."""
    ok = np.isfinite(seconds)
    if not ok.all():
        if ic.impute is None:
            raise _missing_error(table, j, int(np.argmin(ok)))
        seconds = np.where(ok, seconds, ic.impute)
    parts = date_parts(seconds)
    for k, (p, mean, std) in enumerate(zip(ic.parts, ic.part_mean, ic.part_std)):
        out[:, k] = (parts[p] - mean) / std


def _columns_into(X, col0, run):
    """X[:, col0:col0 + len(run)] = the standardised columns of ``run`` ((values, ic) pairs,
    complete, contiguous float64), in one pass over the rows of X."""
    if run:
        _kernel.columns_into(X, col0, [v for v, _ in run],
                             np.array([ic.mean for _, ic in run], np.float64),
                             np.array([ic.std for _, ic in run], np.float64))


def _one_hot_into(out, text, missing, ic: InputColumn, table=None, j=None):
    """out (n, width) = one-hot of text over ic.vocabulary; unseen → zeros."""
    out[:] = 0.0
    index = {s: i for i, s in enumerate(ic.vocabulary)}
    other = len(ic.vocabulary) if ic.other else None   # where the rest goes; else all zeros
    for r, (s, m) in enumerate(zip(text, missing)):
        if m:
            if ic.impute is None:
                raise _missing_error(table, j, r)
            s = ic.impute
        i = index.get(s)
        if i is None and s:
            i = index.get(_canonical(s), other)
        if i is not None:
            out[r, i] = 1.0


def _canonical(s: str) -> str:
    """Numeric-looking text in canonical number form ('7.0' → '7'), else unchanged."""
    try:
        return format_number(float(s))
    except ValueError:
        return s


# --------------------------------------------------------------------------- #
# Predict and evaluate
# --------------------------------------------------------------------------- #


def _match_columns(table: Table, schema: Schema, wanted: list[str]) -> list[int]:
    if table.named:
        absent = [n for n in wanted if n not in table.names]
        if absent:
            raise DataError(f"{table.source}: missing column(s) the model needs: "
                            f"{', '.join(map(repr, absent))} (the file has: "
                            f"{', '.join(map(repr, table.names))})")
        return [table.names.index(n) for n in wanted]
    width = len(table.names)
    if width == len(schema.columns):
        return [schema.columns.index(n) for n in wanted]
    inputs = [c.name for c in schema.inputs]
    if width == len(inputs) and all(n in inputs for n in wanted):
        return [inputs.index(n) for n in wanted]
    raise DataError(f"{table.source}: without a header the file must have the training file's "
                    f"{len(schema.columns)} columns ({', '.join(map(repr, schema.columns))}) or just "
                    f"the {len(inputs)} input columns, in that order; it has {width}")


def encode_features(table: Table, schema: Schema) -> np.ndarray:
    """Inputs of ``table`` encoded as training encoded them: float64 (N, n_features).

    Columns are matched by name when the table is named (header or ``columns=``;
    extra columns are ignored), by position otherwise. Missing values are
    filled per the schema (an error when training had no imputation).
    """
    idx = _match_columns(table, schema, [c.name for c in schema.inputs])
    columns = [(j, _cells_as_trained(table, j, ic)) for j, ic in zip(idx, schema.inputs)]
    return _encode_inputs(table, columns, schema, table.n_rows)


def encode_targets(table: Table, schema: Schema, *, scaled=True) -> np.ndarray:
    """Targets of ``table`` as training encoded them, for evaluation: float64 (N, n_outputs).

    Classification: one-hot over ``schema.classes`` (an unknown label is an error).
    Regression: standardised with the training statistics when ``scaled``
    (the space the network's loss is computed in), original units otherwise.
    Reconstruct: the encoded features.
    """
    if schema.task == "reconstruct":
        return encode_features(table, schema)
    idx = _match_columns(table, schema, schema.target_names)
    n = table.n_rows
    if schema.task == "classification":
        j = idx[0]
        col = table.columns[j]
        index = {s: i for i, s in enumerate(schema.classes)}
        Y = np.zeros((n, len(schema.classes)), np.float64)
        for r, s in enumerate(col.as_text()):
            s = s.strip()
            if s.lower() in MISSING_TOKENS:
                raise _missing_error(table, j, r, "target value", "remove the row")
            i = index.get(s)
            if i is None and schema.target_kind == "numeric":
                i = index.get(_canonical(s))
            if i is None:
                raise DataError(f"{table.where(r, j)}: unknown class {s!r}; the model knows "
                                f"{', '.join(map(repr, schema.classes))}")
            Y[r, i] = 1.0
        return Y
    Y = np.empty((n, len(idx)), np.float64)
    for k, j in enumerate(idx):
        col = table.columns[j]
        fmt = schema.target_format[k] if schema.target_format else None
        if fmt is not None and (col.is_text or col.bad):   # '$1,200' as training read it
            values, bad, _ = parse_formatted(col.as_text(), fmt["decimal"])
        else:
            values, bad = col.as_numbers()
        _check_numbers(table, j, _Cells("numeric", values=values, bad=bad))
        ok = np.isfinite(values)
        if not ok.all():
            raise _missing_error(table, j, int(np.argmin(ok)), "target value", "remove the row")
        Y[:, k] = (values - schema.target_mean[k]) / schema.target_std[k] if scaled else values
    return Y


def rows_missing(table: Table, schema: Schema, *, targets=False):
    """Rows with a missing cell the model has no value for, at predict and evaluate time:
    an input of a model trained without imputation or with ``impute='drop'`` (which dropped
    such rows rather than learn a fill value), and with ``targets`` a target.

    Returns ``(mask, first)``: bool (n_rows,) and ``(row, column index, 'value' or 'target
    value')`` of the first such cell, or ``(None, None)`` when there is none. Cells that are
    not numbers at all are not missing: encoding reports them.
    """
    fills = schema.impute in ("mean", "median")
    checks = [(c.name, "numeric" if c.kind == "numeric" else "text", "value")
              for c in schema.inputs if not (fills and c.impute is not None)]
    if targets and schema.task != "reconstruct":
        kind = "text" if schema.task == "classification" else "numeric"
        checks += [(n, kind, "target value") for n in schema.target_names]
    if not checks:
        return None, None
    idx = _match_columns(table, schema, [n for n, _, _ in checks])
    mask = np.zeros(table.n_rows, bool)
    first = None
    for j, (_, kind, what) in zip(idx, checks):
        col = table.columns[j]
        if kind == "numeric":
            values, bad = col.as_numbers()
            miss = ~np.isfinite(values)
            if bad:
                miss[[r for r, _ in bad]] = False
        else:
            miss = np.fromiter((s.strip().lower() in MISSING_TOKENS for s in col.as_text()),
                               bool, table.n_rows)
        if miss.any():
            row = int(np.argmax(miss))
            if first is None or row < first[0]:
                first = (row, j, what)
            mask |= miss
    return (mask, first) if first is not None else (None, None)


def labels_from_proba(proba, schema: Schema) -> np.ndarray:
    """Class label (str) per row: the most probable class.

    ``proba`` is (N, n_classes), or (N, 1) / (N,) holding P(second class) for a
    two-class model with a single sigmoid output.
    """
    p = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(schema.classes, dtype=object)
    if p.ndim == 1 or p.shape[1] == 1:
        if len(classes) != 2:
            raise ValueError("a single probability column needs a two-class model")
        return classes[(p.reshape(-1) >= 0.5).astype(np.int64)]
    if p.shape[1] != len(classes):
        raise ValueError(f"proba has {p.shape[1]} columns for {len(classes)} classes")
    return classes[np.argmax(p, axis=1)]


def decode_outputs(raw, schema: Schema):
    """Network outputs to user values: class labels (classification), numbers in the
    target's units (regression), or the raw encoded outputs (reconstruct)."""
    if schema.task == "classification":
        return labels_from_proba(raw, schema)
    raw = np.asarray(raw, dtype=np.float64)
    if schema.task == "regression":
        return raw * np.asarray(schema.target_std) + np.asarray(schema.target_mean)
    return raw


# --------------------------------------------------------------------------- #
# Splits
# --------------------------------------------------------------------------- #


def validation_split(n: int, fraction: float, seed, labels=None):
    """``(train_rows, val_rows)``: the one validation split of the CLI's ``--val-split`` and
    the API's ``validation_fraction``, so both hold out the same rows of the same data.

    Stratified by ``labels`` (classification) as :func:`stratified_split` says, random
    otherwise. The generator is child 2 of ``SeedSequence(seed)``; the Trainer shuffles with
    child 1, so the split and the shuffling are independent streams of one seed.
    """
    if n < 2:
        raise DataError("too few rows to hold out a validation set; use --val-split 0")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    return stratified_split(labels, n, fraction, rng)


def stratified_split(labels, n: int, fraction: float, rng: np.random.Generator):
    """``(train_idx, val_idx)``, sorted int64 arrays, for a validation ``fraction``.

    With ``labels`` (one per row), each class gives ``round(fraction * size)``
    rows to validation but keeps at least one for training; without, a random
    split that keeps at least one training row. Deterministic for a given rng.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ConfigError(f"the validation fraction must be in [0, 1), not {fraction!r}")
    if n < 1:
        raise DataError("no rows to split")
    if labels is None:
        perm = rng.permutation(n)
        k = min(int(round(fraction * n)), n - 1)
        return np.sort(perm[k:]).astype(np.int64), np.sort(perm[:k]).astype(np.int64)
    labels = np.asarray(labels)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} rows")
    _, inverse = np.unique(labels, return_inverse=True)
    val = []
    for c in range(int(inverse.max()) + 1):
        members = rng.permutation(np.flatnonzero(inverse == c))
        k = min(int(round(fraction * len(members))), len(members) - 1)
        val.append(members[:k])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    mask = np.ones(n, bool)
    mask[val_idx] = False
    return np.flatnonzero(mask).astype(np.int64), val_idx
