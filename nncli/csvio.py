"""CSV bytes in, column arrays out: the reading half of ``nncli.data``.

How a file is read, and why:

* Bytes are read in blocks of about 2 MiB and cut at the last newline that is
  outside quotes (an even number of ``"`` before it), so each *piece* holds
  whole records. Memory is bounded by the piece, not the file. Each block is
  hashed (``Table.sha256``), checked for NUL bytes (a binary file) and decoded;
  a decoding error is reported with the line it is on.
* A piece is first handed to ``numpy.loadtxt`` (C speed). That fast path is
  kept only if it read exactly one record per line and every cell was a
  number. Otherwise the piece is re-read by the ``csv`` module, cell by cell,
  which gives exact line numbers, missing-value tokens, text columns and
  precise errors. Both paths parse numbers to the same correctly rounded
  float64.
* A column holds floats (NaN where a cell is missing or not a number; the
  non-numbers are kept with their row) while most of its cells are numbers,
  and its original text once most of them are not (then it is a text column:
  categories, booleans, labels, ids). Whether a column is *used* as numbers or
  categories, and what is an error, is decided later by ``nncli.data``.
* A column that turns from numbers to text after its first piece has the
  earlier numbers written back as canonical text (``7`` not ``7.0``, ``repr``
  otherwise); ``keep_text`` names columns whose exact text must be kept
  (an id column with leading zeros, say).

Line numbers are physical, 1-based, and point at the line where a record
starts (a quoted field may span several lines). Blank lines are skipped.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from nncli.errors import ConfigError, DataError

#: Cells (after stripping spaces, compared case-insensitively) that mean "missing".
MISSING_TOKENS = frozenset({"", "na", "nan", "null"})
#: Separators that are detected automatically.
SEPARATORS = (",", ";", "\t")

_BLOCK_BYTES = 1 << 21
_BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------- #
# Columns and tables
# --------------------------------------------------------------------------- #


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

    def take(self, rows: slice) -> Column:
        if self.text is not None:
            return Column(self.name, self.index, text=self.text[rows])
        start, stop, _ = rows.indices(len(self.values))
        bad = [(r - start, s) for r, s in self.bad if start <= r < stop]
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

    def rows(self, rows: slice) -> Table:
        """The rows in ``rows`` (a slice) as a new Table sharing nothing mutable."""
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


# --------------------------------------------------------------------------- #
# Bytes to decoded pieces of whole records
# --------------------------------------------------------------------------- #


class _Reader:
    """Opens a source, yields decoded pieces of whole lines and hashes every byte."""

    def __init__(self, source, encoding: str):
        try:
            info = codecs.lookup(encoding)
        except LookupError:
            raise ConfigError(f"unknown encoding {encoding!r}") from None
        if "\n".encode(info.name) != b"\n" or '"'.encode(info.name) != b'"':
            raise ConfigError(f"encoding {encoding!r} is not supported (it is not ASCII-compatible)")
        self.encoding = info.name
        self.utf8 = info.name in ("utf-8", "utf-8-sig")
        self._close = False
        if isinstance(source, str) and source == "-":
            self.name, self.stream = "<stdin>", sys.stdin.buffer
        elif isinstance(source, (str, os.PathLike)):
            self.name = os.fspath(source)
            try:
                self.stream = open(self.name, "rb")  # noqa: SIM115 (closed in pieces())
            except IsADirectoryError:
                raise DataError(f"{self.name}: is a directory, not a CSV file") from None
            except OSError as e:
                raise DataError(f"{self.name}: cannot open: {e.strerror or e}") from None
            self._close = True
        elif hasattr(source, "read"):
            name = getattr(source, "name", None)
            self.name = name if isinstance(name, str) and name else "<stream>"
            self.stream = source
        else:
            raise TypeError(f"read_csv: source must be a path, '-' or a binary file, not {source!r}")
        self.hash = hashlib.sha256()
        self.sha256: str | None = None

    def _read_block(self) -> bytes:
        try:
            block = self.stream.read(_BLOCK_BYTES)
        except OSError as e:
            raise DataError(f"{self.name}: cannot read: {e.strerror or e}") from None
        if isinstance(block, str):  # a text stream: take what it decoded
            block = block.encode(self.encoding)
        return block or b""

    def pieces(self):
        """Yield ``(text, first_line)``: decoded text of whole records, CRLF made LF."""
        try:
            yield from self._pieces()
        finally:
            if self._close:
                self.stream.close()

    def _pieces(self):
        carry = b""
        line = 1
        first = True
        while True:
            block = self._read_block()
            self.hash.update(block)
            eof = not block
            data = carry + block if carry else block
            if eof:
                piece, carry = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                # Cut only outside quotes; otherwise wait for more (a quoted
                # field with newlines, or a stray quote: then up to the end).
                if cut == 0 or data.count(b'"', 0, cut) % 2:
                    carry = data
                    continue
                piece, carry = data[:cut], data[cut:]
            if first:
                first = False
                if self.utf8 and piece.startswith(_BOM):
                    piece = piece[3:]
            if b"\x00" in piece:
                at = line + piece.count(b"\n", 0, piece.index(b"\x00"))
                raise DataError(
                    f"{self.name}:{at}: looks like a binary file, not CSV (it contains NUL bytes)"
                )
            try:
                text = piece.decode(self.encoding)
            except UnicodeDecodeError as e:
                at = line + piece.count(b"\n", 0, e.start)
                raise DataError(
                    f"{self.name}:{at}: bytes {piece[e.start:e.start + 4]!r} are not valid "
                    f"{self.encoding.upper()}; save the file as UTF-8 (or pass its encoding)"
                ) from None
            if "\r\n" in text:
                text = text.replace("\r\n", "\n")
            if text:
                yield text, line
            line += text.count("\n")
            if eof:
                self.sha256 = self.hash.hexdigest()
                return


def detect_separator(text: str) -> str:
    """Choose ``,``, ``;`` or tab from the first records of ``text``.

    Separators are counted outside quotes in up to 6 records. A candidate seen
    the same non-zero number of times in every record wins (the most frequent
    of those); failing that, the most frequent in the first record; ``,`` if
    none appears.
    """
    counts = []
    cur = dict.fromkeys(SEPARATORS, 0)
    in_quote = False
    for ch in text[:1 << 16]:
        if ch == '"':
            in_quote = not in_quote
        elif in_quote:
            continue
        elif ch == "\n":
            if any(cur.values()) or counts:
                counts.append(cur)
            cur = dict.fromkeys(SEPARATORS, 0)
            if len(counts) >= 6:
                break
        elif ch in cur:
            cur[ch] += 1
    else:
        if any(cur.values()):
            counts.append(cur)
    if not counts:
        return ","
    steady = [s for s in SEPARATORS if counts[0][s] > 0 and all(c[s] == counts[0][s] for c in counts)]
    pool = steady or [s for s in SEPARATORS if counts[0][s] > 0]
    if not pool:
        return ","
    return max(pool, key=lambda s: counts[0][s])  # max keeps the first on ties


# --------------------------------------------------------------------------- #
# Pieces to column data
# --------------------------------------------------------------------------- #


def _fast_piece(text: str, sep: str, ncols: int):
    """All-numeric piece, one record per line, through numpy.loadtxt; else None."""
    if text.count('"') % 2:  # an unclosed quote: let the csv module report it
        return None
    nlines = text.count("\n") + (not text.endswith("\n"))
    try:
        arr = np.loadtxt(
            io.StringIO(text), delimiter=sep, comments=None, quotechar='"',
            dtype=np.float64, ndmin=2,
        )
    except Exception:  # noqa: BLE001 (anything odd: the exact path below decides)
        return None
    if arr.shape != (nlines, ncols):
        return None
    return arr


def _slow_rows(text: str, line0: int, sep: str, name: str, ncols: int | None, limit=None):
    """Records of ``text`` via the csv module: ``(rows, start_lines, consumed_lines)``.

    Stops after ``limit`` records (for the header). ``ncols=None`` skips the
    field-count check.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar='"',
                        doublequote=True, strict=True)
    rows, starts = [], []
    prev = 0
    try:
        for row in reader:
            start = line0 + prev
            prev = reader.line_num
            if not row:  # a blank line
                continue
            if ncols is not None and len(row) != ncols:
                raise DataError(
                    f"{name}:{start}: expected {ncols} fields (as in the first row), "
                    f"found {len(row)}"
                    + (f" (is the separator {sep!r} right?)" if len(row) == 1 else "")
                )
            rows.append(row)
            starts.append(start)
            if limit is not None and len(rows) >= limit:
                break
    except csv.Error as e:
        hint = " (a quoted field is never closed)" if "end of data" in str(e) else ""
        raise DataError(f"{name}:{line0 + prev}: malformed CSV: {e}{hint}") from None
    return rows, starts, prev


class _ColumnBuilder:
    """Accumulates one column over pieces (numbers while most cells are numbers)."""

    def __init__(self, name: str, index: int, text: bool):
        self.name, self.index = name, index
        self.chunks: list[np.ndarray] = []
        self.bad: list[tuple[int, str]] = []
        self.n_numbers = 0
        self.n_rows = 0
        self.text: list[str] | None = [] if text else None

    def add_values(self, values: np.ndarray):
        if self.text is not None:
            self.text.extend(format_number(v) for v in values.tolist())
        else:
            self.chunks.append(values)
            self.n_numbers += len(values) - int(np.isnan(values).sum())
        self.n_rows += len(values)

    def add_cells(self, cells):
        if self.text is not None:
            self.text.extend(cells)
            self.n_rows += len(cells)
            return
        values, bad = parse_cells(cells)
        self.chunks.append(values)
        self.n_numbers += len(values) - int(np.isnan(values).sum())
        self.bad.extend((self.n_rows + r, s) for r, s in bad)
        self.n_rows += len(cells)
        if len(self.bad) > self.n_numbers:  # most cells are text: a text column
            self.text = self.finish().as_text()
            self.chunks, self.bad = [], []

    def finish(self) -> Column:
        if self.text is not None:
            return Column(self.name, self.index, text=self.text)
        if len(self.chunks) == 1:
            values = np.ascontiguousarray(self.chunks[0])
        else:
            values = np.concatenate(self.chunks) if self.chunks else np.empty(0)
        self.chunks = []
        return Column(self.name, self.index, values=values, bad=self.bad)


def _check_names(names, name, line):
    seen = {}
    for j, col in enumerate(names):
        if not col:
            raise DataError(f"{name}:{line}: column {j + 1} has an empty name")
        if col in seen:
            raise DataError(
                f"{name}:{line}: duplicate column name {col!r} (columns {seen[col] + 1} and {j + 1})"
            )
        seen[col] = j


def _resolve_keep(keep_text, names) -> set[int]:
    keep = set()
    for k in keep_text or ():
        if isinstance(k, str):
            if k in names:
                keep.add(names.index(k))
        elif isinstance(k, (int, np.integer)) and -len(names) <= k < len(names):
            keep.add(int(k) % len(names))
    return keep


def _scan(source, *, sep, header, columns, encoding, keep_text, max_rows):
    """Generator: first yields the header info, then one list of builders' worth per piece.

    Yields ``("header", names, sep, reader)`` then ``("piece", builders, starts)``
    for every piece (fresh builders each time when ``max_rows`` is set, shared otherwise).
    """
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n'):
        raise ConfigError(f"the separator must be one character other than a quote or newline, not {sep!r}")
    if columns is not None:
        columns = [str(c) for c in columns]
        if len(set(columns)) != len(columns) or not all(columns):
            raise ConfigError("column names given with --columns must be distinct and non-empty")
    reader = _Reader(source, encoding)
    name = reader.name
    pieces = reader.pieces()
    try:
        first = next(pieces, None)
        while first is not None and not first[0].strip():
            first = next(pieces, None)  # a file of blank lines is empty too
        if first is None:
            raise DataError(f"{name}: the file is empty")
        text, line0 = first
        if sep is None:
            sep = detect_separator(text)
        rows, starts, consumed = _slow_rows(text, line0, sep, name, None, limit=1)
        if not rows:
            raise DataError(f"{name}: the file is empty")
        ncols = len(rows[0])
        if header:
            names = [c.strip() for c in rows[0]]
            _check_names(names, name, starts[0])
            if columns is not None:
                if len(columns) != ncols:
                    raise DataError(
                        f"{name}: {len(columns)} column names were given but the file has {ncols} columns"
                    )
                names = columns
            # drop the header's lines from the first piece
            pos = 0
            for _ in range(consumed):
                pos = text.index("\n", pos) + 1 if "\n" in text[pos:] else len(text)
            text, line0 = text[pos:], line0 + consumed
        elif columns is not None:
            if len(columns) != ncols:
                raise DataError(
                    f"{name}:{starts[0]}: {len(columns)} column names were given but the first row has "
                    f"{ncols} fields"
                )
            names = columns
        else:
            names = [f"c{j + 1}" for j in range(ncols)]
        named = header or columns is not None
        keep = _resolve_keep(keep_text, names)
        yield ("header", names, sep, named, reader)

        def new_builders():
            return [_ColumnBuilder(n, j, j in keep) for j, n in enumerate(names)]

        builders = new_builders()
        piece_iter = _split_rows(_chain_first((text, line0), pieces), max_rows)
        for text, line0 in piece_iter:
            if max_rows is not None:
                builders = new_builders()
            starts = _parse_piece(text, line0, sep, name, ncols, builders, keep)
            yield ("piece", builders, starts)
    finally:
        pieces.close()


def _chain_first(first, rest):
    yield first
    yield from rest


def _split_rows(pieces, max_lines):
    """Cut pieces to at most ``max_lines`` lines (outside quotes) each."""
    for text, line0 in pieces:
        if max_lines is None or text.count("\n") <= max_lines:
            if text.strip():
                yield text, line0
            continue
        pos, n = 0, len(text)
        while pos < n:
            cut, count, odd = pos, 0, 0
            while count < max_lines:
                nl = text.find("\n", cut)
                if nl < 0:
                    cut = n
                    break
                odd ^= text.count('"', cut, nl) & 1
                cut = nl + 1
                count += not odd
            part = text[pos:cut]
            if part.strip():
                yield part, line0
            line0 += part.count("\n")
            pos = cut


def _parse_piece(text, line0, sep, name, ncols, builders, keep) -> np.ndarray:
    """Add one piece's cells to ``builders``; return the record start lines."""
    all_numbers = not keep and all(b.text is None for b in builders)
    if all_numbers:
        arr = _fast_piece(text, sep, ncols)
        if arr is not None:
            for j, b in enumerate(builders):
                b.add_values(arr[:, j].copy())  # contiguous, and frees arr once all are taken
            return np.arange(line0, line0 + len(arr), dtype=np.int64)
    rows, starts, _ = _slow_rows(text, line0, sep, name, ncols)
    if rows:
        for b, cells in zip(builders, zip(*rows)):
            b.add_cells(list(cells))
    return np.asarray(starts, dtype=np.int64)


# --------------------------------------------------------------------------- #
# Public entry points
# --------------------------------------------------------------------------- #


def read_csv(source, *, sep=None, header=True, columns=None, encoding="utf-8",
             keep_text=None) -> Table:
    """Read a whole CSV source into a :class:`Table`.

    ``source`` is a path, ``'-'`` (standard input) or a binary file object.
    ``sep`` is detected among ``,`` ``;`` and tab unless given. With
    ``header=False`` the columns are named by ``columns`` or ``c1..cn``.
    ``keep_text`` lists columns (names or indices) whose exact text is kept
    even when they hold numbers. Raises DataError for anything wrong with the
    data, naming file and line.
    """
    scan = _scan(source, sep=sep, header=header, columns=columns, encoding=encoding,
                 keep_text=keep_text, max_rows=None)
    _, names, sep, named, reader = next(scan)
    builders, all_starts = None, []
    for _, builders, starts in scan:
        all_starts.append(starts)
    if not all_starts or sum(len(s) for s in all_starts) == 0:
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    lines = np.concatenate(all_starts) if len(all_starts) > 1 else all_starts[0]
    cols = [b.finish() for b in builders]
    return Table(names, cols, lines, reader.name, sep, bool(header), named, reader.sha256)


def iter_csv_chunks(source, *, sep=None, header=True, columns=None, chunk_rows=65536,
                    encoding="utf-8", keep_text=None):
    """Yield Tables of at most ``chunk_rows`` rows, reading incrementally.

    Memory stays bounded by the chunk whatever the size of the input. Every
    chunk has the same names and separator; whether a column holds numbers or
    text is decided per chunk (``keep_text`` forces text). The last Table's
    ``sha256`` is set to the digest of the whole input. Header-only input
    raises DataError, as in :func:`read_csv`.
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    scan = _scan(source, sep=sep, header=header, columns=columns, encoding=encoding,
                 keep_text=keep_text, max_rows=chunk_rows)
    _, names, sep, named, reader = next(scan)
    pending = None
    any_rows = False
    for _, builders, starts in scan:
        if not len(starts):
            continue
        any_rows = True
        table = Table(list(names), [b.finish() for b in builders], starts, reader.name, sep,
                      bool(header), named, None)
        # a quoted field spanning lines can leave more records than lines were cut for
        for lo in range(0, table.n_rows, chunk_rows):
            part = table if table.n_rows <= chunk_rows else table.rows(slice(lo, lo + chunk_rows))
            if pending is not None:
                yield pending
            pending = part
    if not any_rows:
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    pending.sha256 = reader.sha256
    yield pending
