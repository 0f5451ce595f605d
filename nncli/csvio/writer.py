"""CSV out: how nncli quotes a field and writes a number, for every CSV it writes (predictions,
loss logs, descent paths), so they all read back the same way through :mod:`nncli.csvio`."""

from __future__ import annotations


def quote(field: str) -> str:
    """A field as CSV: quoted (quotes doubled) when it holds a comma, a quote or a newline."""
    if any(ch in field for ch in ',"\n\r'):
        return '"' + field.replace('"', '""') + '"'
    return field


def number(value, spec: str | None = None) -> str:
    """A number as text: the shortest text that reads back to the same float (``repr``), or
    ``format(value, spec)`` (``'.7g'``: 7 significant digits). NaN is ``nan``."""
    value = float(value)
    return repr(value) if spec is None else format(value, spec)


def row(fields) -> str:
    """One record from fields that are already text (quote text that may need it)."""
    return ",".join(fields) + "\n"


def header(names) -> str:
    """The header record: the names, quoted where needed."""
    return row(quote(str(n)) for n in names)


def records(columns) -> str:
    """Records from columns of text fields (all the same length)."""
    return "".join(row(r) for r in zip(*columns))
