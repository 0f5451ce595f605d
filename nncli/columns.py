"""Column kinds a user does not have to spell out: dates and times, numbers written with
units, thousands separators, percent signs or decimal commas, and identifier-like text.

Each detector looks at one column's text cells and either returns what it found (a date
format, a number format) or None; `nncli.data` decides the column's kind from that, stores
the finding in the Schema, and applies the same parser to new data at predict/evaluate time.
Detection is strict on purpose: a format is taken only when every non-missing cell fits it,
so a look-alike (a year code 2019, a product code "A-12") is left as it was.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import numpy as np

from nncli.csvio import MISSING_TOKENS

# -------------------------------------------------------------------------------- dates ---
# Date forms tried, in order; each is combined with the time forms below. "iso" is ISO 8601
# as datetime.fromisoformat reads it (date, 'T' or space, time, fraction, offset or Z).
_DATE_FORMS = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y",
               "%d-%m-%Y", "%m-%d-%Y", "%d/%m/%y", "%m/%d/%y", "%d %b %Y", "%d %B %Y",
               "%b %d %Y", "%b %d, %Y", "%B %d, %Y", "%d-%b-%Y", "%d-%b-%y", "%Y-%m", "%b %Y",
               "%B %Y"]
_NO_TIME = {"%Y-%m", "%b %Y", "%B %Y"}
_TIME_FORMS = ["", " %H:%M", " %H:%M:%S", " %I:%M %p", " %I:%M:%S %p", "T%H:%M:%S"]
# Day-first before month-first: when every day is at most 12 both fit, and the note says which.
DATE_FORMATS = ["iso"] + [d + t for d in _DATE_FORMS for t in _TIME_FORMS
                          if not (t and d in _NO_TIME)]
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
_DATEISH = re.compile(r"^[0-9A-Za-z][0-9A-Za-z ,./:+-]*$")
SAMPLE = 200

#: The numeric inputs a date expands into, in this order (those that vary in training are kept).
DATE_PARTS = ("year", "month_sin", "month_cos", "doy_sin", "doy_cos", "weekday_sin",
              "weekday_cos", "hour_sin", "hour_cos", "elapsed")


def _parse_one(s: str, fmt: str):
    """Seconds since 1970-01-01 (UTC for an offset; naive times as written), or None."""
    try:
        if fmt == "iso":
            if not _ISO.match(s):
                return None
            d = datetime.fromisoformat(s.replace("Z", "+00:00"))
        else:
            d = datetime.strptime(s, fmt)
    except ValueError:
        return None
    if d.tzinfo is not None:
        d = d.astimezone(timezone.utc).replace(tzinfo=None)
    return (d - datetime(1970, 1, 1)).total_seconds()


def _month_first(fmt: str) -> bool:
    return fmt.startswith(("%m/%d", "%m-%d", "%m.%d"))


def detect_date_format(cells: list[str], month_first=False) -> str | None:
    """The first format every non-missing cell fits (checked on a sample, then on all), or
    None. Cells that are plain numbers never make a date: a year code 2019 stays a number.
    Where every day is at most 12, day-first and month-first both fit: day-first is taken
    unless ``month_first``."""
    present = [s for s in dict.fromkeys(cells) if s.lower() not in MISSING_TOKENS]
    if not present or not all(_DATEISH.match(s) for s in present[:SAMPLE]):
        return None
    if all(_is_number(s) for s in present[:SAMPLE]):
        return None
    sample = present[:SAMPLE]
    order = (sorted(DATE_FORMATS, key=lambda f: not _month_first(f)) if month_first
             else DATE_FORMATS)
    for fmt in order:
        if all(_parse_one(s, fmt) is not None for s in sample):
            if len(present) <= SAMPLE or all(_parse_one(s, fmt) is not None for s in present):
                return fmt
    return None


def parse_dates(cells: list[str], fmt: str):
    """``(seconds, bad)``: float64 seconds since 1970 (NaN where missing), and ``(row, text)``
    of the cells that do not fit ``fmt``."""
    out = np.empty(len(cells), np.float64)
    bad = []
    seen = {}
    for r, s in enumerate(cells):
        if s.lower() in MISSING_TOKENS:
            out[r] = np.nan
            continue
        v = seen.get(s, False)
        if v is False:
            v = seen[s] = _parse_one(s, fmt)
        if v is None:
            out[r] = np.nan
            bad.append((r, s))
        else:
            out[r] = v
    return out, bad


def date_parts(seconds: np.ndarray) -> dict:
    """Every part of DATE_PARTS, float64 arrays, from seconds since 1970 (no NaN)."""
    t = seconds.astype("datetime64[s]")
    days = t.astype("datetime64[D]")
    years = days.astype("datetime64[Y]")
    month = (days.astype("datetime64[M]") - years.astype("datetime64[M]")).astype(np.float64)
    doy = (days - years.astype("datetime64[D]")).astype(np.float64)
    weekday = ((days.astype(np.int64) + 3) % 7).astype(np.float64)  # 1970-01-01: a Thursday
    hour = (t - days.astype("datetime64[s]")).astype(np.float64) / 3600.0
    tau = 2 * math.pi
    return {"year": years.astype(np.int64).astype(np.float64) + 1970.0,
            "month_sin": np.sin(tau * month / 12), "month_cos": np.cos(tau * month / 12),
            "doy_sin": np.sin(tau * doy / 365.25), "doy_cos": np.cos(tau * doy / 365.25),
            "weekday_sin": np.sin(tau * weekday / 7), "weekday_cos": np.cos(tau * weekday / 7),
            "hour_sin": np.sin(tau * hour / 24), "hour_cos": np.cos(tau * hour / 24),
            "elapsed": seconds / 86400.0}


def describe_format(fmt: str) -> str:
    """A date format as a user writes it: '%d/%m/%Y' → 'DD/MM/YYYY'."""
    if fmt == "iso":
        return "ISO 8601"
    for code, word in (("%Y", "YYYY"), ("%y", "YY"), ("%m", "MM"), ("%d", "DD"), ("%H", "hh"),
                       ("%I", "hh"), ("%M", "mm"), ("%S", "ss"), ("%p", "AM/PM"), ("%b", "Mon"),
                       ("%B", "Month")):
        fmt = fmt.replace(code, word)
    return fmt


# ------------------------------------------------------------------------------ numbers ---
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
# A number with at most a currency-like symbol or a word and a space before it ('$1,200',
# 'USD 12') and a unit after it ('12.5 %', '3,5 kg'); 'A-12' (a code) does not fit.
_SPLIT = re.compile(r"^(?P<pre>[^\w\s+\-.,]{1,3}|[A-Za-z]{1,4}\s+)?\s*"
                    r"(?P<num>[-+]?(?:\d[\d.,' \u00a0]*|[.,]\d+))\s*(?P<post>[^\d]*)$")


def _is_number(s: str) -> bool:
    return bool(_NUMBER.match(s))


def _number_body(body: str, decimal: str):
    """float of a number's digits with thousands separators and the given decimal mark,
    or None when the grouping is not one of thousands (so '1,2,3' is not a number)."""
    body = body.replace("\u00a0", " ").strip()
    sign = body[0] if body[:1] in "+-" else ""
    body = body[len(sign):]
    if body.count(decimal) > 1:
        return None
    whole, _, frac = body.partition(decimal)
    if (frac and not frac.isdigit()) or not (whole or frac):
        return None
    if whole and not whole.isdigit():
        seps = {ch for ch in whole if not ch.isdigit()}
        if len(seps) != 1:
            return None
        groups = whole.split(seps.pop())
        if not (groups[0].isdigit() and len(groups[0]) <= 3
                and all(len(g) == 3 and g.isdigit() for g in groups[1:])):
            return None
        whole = "".join(groups)
    return float(f"{sign}{whole or '0'}.{frac or '0'}")


def _read_formatted(s: str, decimal: str):
    """(value, prefix, suffix) of one stripped, non-missing cell, or None."""
    m = _SPLIT.match(s)
    v = None if m is None else _number_body(m["num"].strip(), decimal)
    return None if v is None else (v, (m["pre"] or "").strip(), m["post"].strip())


def parse_formatted(cells, decimal="."):
    """``(values, bad, (prefixes, suffixes))``: cells read as numbers written with units,
    thousands separators, percent signs or ``decimal`` marks; NaN where missing; ``bad`` the
    cells that are not such a number; the units seen before and after ('$', '%', 'kg').
    Each distinct cell is read once."""
    out = np.empty(len(cells), np.float64)
    bad, pre, post = [], set(), set()
    seen = {}
    for r, raw in enumerate(cells):
        got = seen.get(raw, False)
        if got is False:
            s = raw.strip()
            got = seen[raw] = np.nan if s.lower() in MISSING_TOKENS else _read_formatted(s, decimal)
            if got is not None and got is not np.nan:
                if got[1]:
                    pre.add(got[1])
                if got[2]:
                    post.add(got[2])
        if got is None:
            out[r] = np.nan
            bad.append((r, raw))
        else:
            out[r] = np.nan if got is np.nan else got[0]
    return out, bad, (pre, post)


def detect_number_format(cells, decimal=".") -> tuple[dict, np.ndarray] | None:
    """``({"decimal": ".", "units": [...]}, values)`` when every non-missing cell is a number
    written with at most one unit before and one after, thousands separators, percent signs
    or ``decimal`` marks; None otherwise. A sample of distinct cells is read first, so a
    text column is turned down without reading all of it."""
    sample = list(dict.fromkeys(cells[:SAMPLE * 20]))[:SAMPLE]
    for probe in (sample, cells):
        values, bad, (pre, post) = parse_formatted(probe, decimal)
        # One unit at most on each side: '3 kg' beside '300 g' would be read on two scales.
        if bad or len(pre) > 1 or len(post) > 1:
            return None
    if not np.isfinite(values).any():
        return None
    return {"decimal": decimal, "units": sorted(pre | post)}, values


# ---------------------------------------------------------------------------- identifiers ---
# Distinct values per present cell from which a text column is an identifier: at 0.5 a value
# is seen twice on average, too few for its one-hot input to learn anything that generalises.
ID_SHARE = 0.5
ID_MIN_ROWS = 20  # below this, a table is too small to tell


def looks_like_identifier(text, missing) -> tuple[int, int] | None:
    """``(distinct, present)`` when a text column has nearly one value per row (names, ids,
    free text: nothing a network can generalise from), else None."""
    present = [s for s, m in zip(text, missing) if not m]
    return identifier_counts(len(set(present)), len(present))


def identifier_counts(distinct: int, present: int) -> tuple[int, int] | None:
    """`looks_like_identifier` from the counts alone (a streamed run has no column to hand):
    ``distinct`` values among ``present`` cells."""
    if present < ID_MIN_ROWS:
        return None
    return (distinct, present) if distinct >= ID_SHARE * present else None
