"""CSV bytes in, column arrays out: the reading half of ``nncli.data``.

How a file is read, and why:

* Bytes are read in blocks of about 2 MiB into one reused buffer and cut at the
  last newline that is outside quotes (an even number of ``"`` before it), so
  each *piece* holds whole records. Memory is bounded by the piece, not the
  file. Every byte is hashed (``Table.sha256``).
* Records of plain numbers are parsed straight from the bytes into one float64
  matrix of shape (columns, rows), each column contiguous, by the Cython kernel
  ``nncli._kernels.csvparse``, without the GIL. Its capacity is estimated from
  the bytes left over the bytes per line seen, grown in place and trimmed at
  the end, so the peak stays close to the final size.
* The kernel stops at the first record it cannot read as plain numbers (a
  quote, a missing-value token, text, a wrong field count, bytes that are not
  ASCII); that record and a few after it (more while the kernel keeps failing)
  are decoded (NUL bytes and decoding errors are reported with their line) and
  re-read by the ``csv`` module, cell by cell, which gives exact line numbers,
  missing-value tokens, text columns and precise errors. Both paths parse
  numbers to the same correctly rounded float64 (``float()``'s, bit for bit).
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
import re
import stat
import sys
from dataclasses import dataclass, field

import numpy as np

from nncli.errors import ConfigError, DataError

try:
    from nncli._kernels import csvparse as _kernel
except ImportError:  # kernels not built: every record goes through the csv module
    _kernel = None

#: Cells (after stripping spaces, compared case-insensitively) that mean "missing".
MISSING_TOKENS = frozenset({"", "na", "nan", "null"})
#: Separators that are detected automatically.
SEPARATORS = (",", ";", "\t")

_BLOCK_BYTES = 1 << 21
_BOM = b"\xef\xbb\xbf"
#: Separators the number kernel cannot tell from a number's own characters.
_NOT_KERNEL_SEPS = "0123456789+-.eE"
_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


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
    """Opens a source, yields pieces of whole records as bytes and hashes every byte."""

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
        self.bytes_read = 0
        self.size = _bytes_ahead(self.stream)  # None when unknown (a pipe, a stream)
        self._have = 0  # bytes in the buffer of the piece being read

    def remaining(self, pos: int) -> int | None:
        """Bytes from ``data[pos]`` (in the piece being read) to the end of the source."""
        if self.size is None:
            return None
        return max(0, self.size - (self.bytes_read - self._have) - pos)

    def _read_into(self, buf: bytearray, at: int) -> int:
        """Read the next block into ``buf[at:]`` (grown if needed), hash it; 0 at the end."""
        need = at + _BLOCK_BYTES
        if len(buf) < need:
            buf.extend(bytes(need - len(buf)))
        readinto = getattr(self.stream, "readinto", None)
        try:
            if readinto is not None:
                with memoryview(buf) as mv, mv[at:need] as part:
                    got = readinto(part) or 0
            else:
                block = self.stream.read(_BLOCK_BYTES)
                if isinstance(block, str):  # a text stream: take what it decoded
                    block = block.encode(self.encoding)
                block = block or b""
                got = len(block)
                if len(buf) < at + got:
                    buf.extend(bytes(at + got - len(buf)))
                buf[at:at + got] = block
                del block
        except OSError as e:
            raise DataError(f"{self.name}: cannot read: {e.strerror or e}") from None
        if got:
            with memoryview(buf) as mv, mv[at:at + got] as part:
                self.hash.update(part)
        self.bytes_read += got
        return got

    def pieces(self):
        """Yield ``(data, start, end, first_line)``: ``data[start:end]`` holds whole records.

        ``data`` is one buffer reused for every piece: use a piece before asking for the next.
        """
        try:
            yield from self._pieces()
        finally:
            if self._close:
                self.stream.close()

    def _pieces(self):
        buf = bytearray(_BLOCK_BYTES)
        have = 0  # bytes of buf in use: a carried incomplete record, then the new block
        line = 1
        first = True
        while True:
            got = self._read_into(buf, have)
            eof = not got
            have += got
            if eof:
                end = have
            else:
                end = buf.rfind(b"\n", 0, have) + 1
                # Cut only outside quotes; otherwise wait for more (a quoted
                # field with newlines, or a stray quote: then up to the end).
                if end == 0 or _count(buf, 0, end, b'"') % 2:
                    continue
            start = 0
            if first:
                first = False
                if self.utf8 and have >= 3 and buf[:3] == _BOM:
                    start = 3
            if start < end:
                self._have = have
                yield buf, start, end, line
                line += _count(buf, start, end, b"\n")
            if eof:
                self.sha256 = self.hash.hexdigest()
                return
            carry = have - end
            buf[:carry] = buf[end:have]
            have = carry

    def decode(self, data: bytes, start: int, end: int, line: int) -> str:
        """``data[start:end]`` as text with CRLF made LF; DataError naming the line for a NUL
        byte (a binary file) or bytes that are not valid in the encoding."""
        piece = data[start:end]
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
        return text


def _bytes_ahead(stream) -> int | None:
    """Bytes left in a regular file from its current position, else None."""
    try:
        st = os.fstat(stream.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        return max(0, st.st_size - stream.tell())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None



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
        self.check_text()

    def check_text(self):
        if self.text is None and len(self.bad) > self.n_numbers:  # most cells are text
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


def _count(data: bytes, start: int, end: int, byte: bytes) -> int:
    """``data.count(byte, start, end)``, faster."""
    if _kernel is not None:
        return _kernel.count_byte(data, start, end, byte[0])
    if byte == b'"' and data.find(byte, start, end) < 0:
        return 0
    return data.count(byte, start, end)


def _skip_records(data: bytes, pos: int, end: int, k: int) -> int:
    """Position after the k-th LF outside quotes from ``pos``, or ``end``."""
    if _kernel is not None:
        return _kernel.skip_records(data, pos, end, k)
    cut, odd = pos, 0
    while k > 0:
        nl = data.find(b"\n", cut, end)
        if nl < 0:
            return end
        odd ^= data.count(b'"', cut, nl) & 1
        cut = nl + 1
        k -= not odd
    return cut


def _restride(M: np.ndarray, old: int, new: int, n: int):
    """Move each row's first n values of the flat (rows, old) buffer to stride ``new``."""
    flat = M.reshape(-1)
    if _kernel is not None:
        _kernel.restride(flat, M.shape[0], old, new, n)
        return
    order = range(M.shape[0] - 1, 0, -1) if new > old else range(1, M.shape[0])
    for j in order:
        flat[j * new:j * new + n] = flat[j * old:j * old + n].copy()


class _Sink:
    """The records of one Table in the making.

    While every cell is a number (the usual case) they go into one float64 matrix of shape
    (columns, capacity), each column contiguous: the kernel parses runs of plain-number
    records straight into it, and the csv module reads the records it stops at (missing
    tokens, quotes, odd cells, errors), ``step`` records at a time (doubling while the kernel
    keeps failing at once). The capacity comes from the bytes left to read over the bytes per
    record seen (grown in place, trimmed at the end), so the matrix is about the final size.
    Once a column is mostly text (checked after every piece, and at the end) the rows move
    to per-column builders (``_ColumnBuilder``) and the rest goes through the csv module.
    """

    def __init__(self, names, keep, sep, reader, limit, cap):
        self.names, self.ncols = names, len(names)
        self.sep, self.sepcode, self.reader = sep, ord(sep), reader
        self.limit = limit  # records per Table (iter_csv_chunks), None for the whole file
        self.n = 0
        self.fast = _kernel is not None and sep not in _NOT_KERNEL_SEPS and self.sepcode < 128
        self.step = 1
        self.bytes_seen = 0
        self.builders = None
        if keep:
            self._builders_from_nothing(keep)
            return
        self.cap = max(1, cap)
        self.M = np.empty((self.ncols, self.cap), np.float64)
        self.lines = np.empty(self.cap, np.int64)
        self.bad = [[] for _ in names]
        self.numbers = [0] * self.ncols  # numbers read by the csv path, per column
        self.kernel_rows = 0  # rows read by the kernel (all cells numbers)

    def _builders_from_nothing(self, keep):
        self.builders = [_ColumnBuilder(n, j, j in keep) for j, n in enumerate(self.names)]
        self.line_parts = []

    def full(self) -> bool:
        return self.limit is not None and self.n >= self.limit

    def feed(self, data: bytes, pos: int, end: int, line: int):
        """Take records from ``data[pos:end]`` until it is used up or the sink is full.
        Returns the ``(pos, line)`` reached."""
        while pos < end and not self.full():
            if self.builders is None and self.fast:
                top = self.cap if self.limit is None else min(self.cap, self.limit)
                if self.n >= top:
                    self._grow(data, pos, self.n + 1)
                    continue
                n0, pos0 = self.n, pos
                pos, self.n, line, status = _kernel.parse_numeric(
                    data, pos, end, self.sepcode, self.M, self.lines, self.n, top, line)
                self.bytes_seen += pos - pos0
                self.kernel_rows += self.n - n0
                if status == _kernel.FAIL:
                    self.step = 1 if self.n > n0 else min(2 * self.step, 1 << 20)
                    pos, line = self._exact(data, pos, end, line, self.step)
            else:
                k = (1 << 20) if self.limit is None else self.limit - self.n
                pos, line = self._exact(data, pos, end, line, k)
        return pos, line

    def _exact(self, data, pos, end, line, k):
        """Records of the next k lines (outside quotes) through the csv module."""
        if self.limit is not None:
            k = max(1, min(k, self.limit - self.n))
        cut = _skip_records(data, pos, end, k)
        text = self.reader.decode(data, pos, cut, line)
        rows, starts, _ = _slow_rows(text, line, self.sep, self.reader.name, self.ncols)
        del text
        if rows:
            self._add_rows(rows, starts, data, cut)
        self.bytes_seen += cut - pos
        return cut, line + _count(data, pos, cut, b"\n")

    def _add_rows(self, rows, starts, data, pos):
        k, n = len(rows), self.n
        if self.builders is not None:
            for b, cells in zip(self.builders, zip(*rows)):
                b.add_cells(list(cells))
            self.line_parts.append(np.asarray(starts, dtype=np.int64))
            self.n += k
            return
        if n + k > self.cap:
            self._grow(data, pos, n + k)
        for j, cells in enumerate(zip(*rows)):
            values, bad = parse_cells(cells)
            self.M[j, n:n + k] = values
            if bad:
                self.bad[j].extend((n + r, s) for r, s in bad)
            self.numbers[j] += k - int(np.isnan(values).sum())
        self.lines[n:n + k] = starts
        self.n += k

    def _grow(self, data, pos, need):
        """Enlarge the matrix in place to at least ``need`` rows (estimating what is left)."""
        rem = self.reader.remaining(pos)
        if rem is None or not self.n:
            new = self.cap + max(self.cap // 2, 1024)
        else:
            per_row = max(self.bytes_seen / self.n, 1.0)
            new = self.n + int(rem / per_row * 1.02) + 1024
        if self.limit is not None:
            new = min(new, self.limit)
        new = max(new, need)
        self.M.resize((self.ncols, new), refcheck=False)  # realloc; flat data kept
        _restride(self.M, self.cap, new, self.n)
        self.lines.resize(new, refcheck=False)
        self.cap = new

    def end_piece(self):
        """Columns that are mostly text so far become text (rows move to builders)."""
        if self.builders is not None:
            return
        if not any(len(b) > self.kernel_rows + m for b, m in zip(self.bad, self.numbers)):
            return
        n = self.n
        self.builders = []
        for j, name in enumerate(self.names):
            b = _ColumnBuilder(name, j, False)
            b.chunks = [self.M[j, :n].copy()] if n else []
            b.bad, b.n_numbers, b.n_rows = self.bad[j], self.kernel_rows + self.numbers[j], n
            b.check_text()
            self.builders.append(b)
        self.line_parts = [self.lines[:n].copy()] if n else []
        self.M = self.lines = self.bad = None

    def finish(self):
        """``(columns, line_numbers)``."""
        self.end_piece()
        if self.builders is None:
            n = self.n
            if self.cap != n:
                _restride(self.M, self.cap, n, n)
                self.M.resize((self.ncols, n), refcheck=False)
                self.lines.resize(n, refcheck=False)
                self.cap = n
            cols = [Column(name, j, values=self.M[j], bad=self.bad[j])
                    for j, name in enumerate(self.names)]
            return cols, self.lines
        cols = [b.finish() for b in self.builders]
        parts = self.line_parts
        lines = parts[0] if len(parts) == 1 else (
            np.concatenate(parts) if parts else np.empty(0, np.int64))
        return cols, lines


def _estimate_rows(reader, data, pos, end) -> int:
    """Records left from ``data[pos]``: bytes left over bytes per line in this piece."""
    lines = _count(data, pos, end, b"\n") + 1
    rem = reader.remaining(pos)
    if rem is None or end - pos < 1:
        return lines + 16
    return int(rem * (lines / (end - pos)) * 1.01) + 16


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
    """Generator: first yields the header info, then ``(columns, line_numbers)`` per Table.

    Yields ``("header", names, sep, named, reader)`` then ``("table", columns, lines)``:
    once for the whole source (``max_rows`` None), else per ``max_rows`` records (a Table
    may hold more when a line held several records, e.g. a lone CR; the caller cuts it).
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
        while first is not None and not _NOT_SPACE.search(first[0], first[1], first[2]):
            first = next(pieces, None)  # a file of blank lines is empty too
        if first is None:
            raise DataError(f"{name}: the file is empty")
        data, start, end, line0 = first
        nul = data.find(b"\x00", start, end)
        # the header and the records the separator is guessed from (the rest is decoded
        # only where the kernel cannot read it)
        head = _skip_records(data, start, end, 64) if nul < 0 else end
        text = reader.decode(data, start, head, line0)
        if sep is None:
            sep = detect_separator(text)
        rows, starts, consumed = _slow_rows(text, line0, sep, name, None, limit=1)
        del text
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
            # skip the header's lines
            for _ in range(consumed):
                nl = data.find(b"\n", start, end)
                start = end if nl < 0 else nl + 1
            line0 += consumed
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

        piece = (data, start, end, line0)
        del first, data
        sink = None
        while piece is not None:
            data, pos, end, line = piece
            piece = None
            while pos < end:
                if sink is None:
                    cap = _estimate_rows(reader, data, pos, end)
                    sink = _Sink(names, keep, sep, reader, max_rows,
                                 cap if max_rows is None else min(cap, max_rows))
                pos, line = sink.feed(data, pos, end, line)
                if sink.full():
                    yield ("table", *sink.finish())
                    sink = None
            if sink is not None:
                sink.end_piece()
            del data
            piece = next(pieces, None)
        if sink is not None and sink.n:
            yield ("table", *sink.finish())
    finally:
        pieces.close()



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
    got = next(scan, None)
    if got is None:
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    _, cols, lines = got
    for _ in scan:  # runs the generator to its end (closes the file, sets the digest)
        pass
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
    for _, cols, lines in scan:
        table = Table(list(names), cols, lines, reader.name, sep, bool(header), named, None)
        del cols, lines
        # a line holding several records (a lone CR) can make a Table longer than asked
        for lo in range(0, table.n_rows, chunk_rows):
            part = table if table.n_rows <= chunk_rows else table.rows(slice(lo, lo + chunk_rows))
            if pending is not None:
                yield pending
            pending = part
        del table, part
    if pending is None:
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    pending.sha256 = reader.sha256
    yield pending
