"""Columns and tables: what reading a CSV produces (see :mod:`nncli.csvio`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nncli.errors import ConfigError, DataError

#: Cells (after stripping spaces, compared case-insensitively) that mean "missing".
MISSING_TOKENS = frozenset({"", "na", "nan", "null"})


def format_number(v: float) -> str:
    """Canonical text for a number read from a cell: ``7`` for 7.0, ``repr`` otherwise."""
    if v != v:  # NaN: a missing cell
        return ""
    if v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return repr(float(v))


def parse_cells(cells) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Parse text cells as float64. Missing tokens and non-numbers become NaN.

    Returns ``(values, bad)`` where ``bad`` lists ``(row, text)`` of the cells
    that are neither numbers nor missing tokens.
    """
    n = len(cells)
    try:
        return np.fromiter(map(float, cells), np.float64, n), []
    except ValueError:
        pass
    values = np.empty(n, np.float64)
    bad = []
    for i, s in enumerate(cells):
        try:
            values[i] = float(s)
        except ValueError:
            values[i] = np.nan
            if s.strip().lower() not in MISSING_TOKENS:
                bad.append((i, s))
    return values, bad


@dataclass
class Column:
    """One column of a :class:`Table`.

    Exactly one of ``values`` (float64, NaN where missing or not a number) and
    ``text`` (the cells as read) is set. ``bad`` lists ``(row, text)`` for the
    cells of a numeric column that are not numbers.
    """

    name: str
    index: int  # 0-based position in the file
    values: np.ndarray | None = None
    text: list[str] | None = None
    bad: list[tuple[int, str]] = field(default_factory=list)

    @property
    def is_text(self) -> bool:
        return self.text is not None

    def __len__(self) -> int:
        return len(self.text) if self.text is not None else len(self.values)

    def as_text(self) -> list[str]:
        """The cells as strings (numbers of a numeric column in canonical form)."""
        if self.text is not None:
            return self.text
        out = [format_number(v) for v in self.values.tolist()]
        for row, s in self.bad:
            out[row] = s
        return out

    def as_numbers(self) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """``(values, bad)``: the cells parsed as numbers (see :func:`parse_cells`)."""
        if self.text is None:
            return self.values, self.bad
        return parse_cells(self.text)

    def take(self, rows) -> Column:
        """The cells in ``rows``: a slice (step 1), or an array of row indices."""
        if isinstance(rows, slice):
            if self.text is not None:
                return Column(self.name, self.index, text=self.text[rows])
            start, stop, _ = rows.indices(len(self.values))
            bad = [(r - start, s) for r, s in self.bad if start <= r < stop]
            return Column(self.name, self.index, values=self.values[rows], bad=bad)
        rows = np.asarray(rows, dtype=np.int64)
        if self.text is not None:
            return Column(self.name, self.index, text=[self.text[r] for r in rows.tolist()])
        at = {r: k for k, r in enumerate(rows.tolist())}
        bad = [(at[r], s) for r, s in self.bad if r in at]
        return Column(self.name, self.index, values=self.values[rows], bad=bad)


@dataclass
class Table:
    """Columns read from one CSV source.

    ``named`` is true when the names came from a header or from ``columns=``
    (columns can then be matched by name), false for the default ``c1..cn``.
    ``sha256`` is the digest of every byte read (None for chunks of a stream).
    """

    names: list[str]
    columns: list[Column]
    line_numbers: np.ndarray  # int64 (n_rows,): physical line where each record starts
    source: str  # the file name as given, or '<stdin>'
    sep: str
    has_header: bool
    named: bool
    sha256: str | None = None

    @property
    def n_rows(self) -> int:
        return len(self.line_numbers)

    def __len__(self) -> int:
        return self.n_rows

    def column(self, key) -> Column:
        """A column by name or by (possibly negative) integer index."""
        return self.columns[self.index_of(key)]

    def index_of(self, key) -> int:
        """0-based index of a column given by name or int; DataError if unknown."""
        n = len(self.names)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            if -n <= key < n:
                return int(key) % n
            raise DataError(
                f"{self.source}: there is no column {key} (the file has {n} columns: "
                f"{_listing(self.names)})"
            )
        if isinstance(key, str):
            try:
                return self.names.index(key)
            except ValueError:
                pass
            raise DataError(
                f"{self.source}: no column named {key!r}; available columns: {_listing(self.names)}"
            )
        raise ConfigError(f"a column is chosen by name or number, not by {key!r}")

    def where(self, row: int, col: int) -> str:
        """``file:line: column 'name' (k)`` for messages about one cell."""
        return (
            f"{self.source}:{int(self.line_numbers[row])}: "
            f"column {self.names[col]!r} ({col + 1})"
        )

    def rows(self, rows) -> Table:
        """The rows in ``rows`` (a slice, or an array of row indices) as a new Table sharing
        nothing mutable."""
        return Table(
            list(self.names),
            [c.take(rows) for c in self.columns],
            self.line_numbers[rows],
            self.source,
            self.sep,
            self.has_header,
            self.named,
            None,
        )


def _listing(names, limit=30) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
