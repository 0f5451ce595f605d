"""The records of one Table in the making: the number kernel's matrix, or per-column
builders once a column turns out to be text."""

from __future__ import annotations

import numpy as np

from nncli._kernels import csvparse
from nncli.csvio.reader import count_byte, skip_records, slow_rows
from nncli.csvio.table import Column, parse_cells

#: Separators the number kernel cannot tell from a number's own characters.
_NOT_KERNEL_SEPS = "0123456789+-.eE"


class ColumnBuilder:
    """Accumulates one column over pieces (numbers while most cells are numbers)."""

    def __init__(self, name: str, index: int, text: bool, skip: bool = False):
        self.name, self.index, self.skip = name, index, skip
        self.chunks: list[np.ndarray] = []
        self.bad: list[tuple[int, str]] = []
        self.n_numbers = 0
        self.n_rows = 0
        self.text: list[str] | None = [] if text else None

    def add_cells(self, cells):
        if self.skip:   # an unused column: not parsed, missing
            self.chunks.append(np.full(len(cells), np.nan))
            self.n_rows += len(cells)
            return
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


def _restride(M: np.ndarray, old: int, new: int, n: int):
    """Move each row's first n values of the flat (rows, old) buffer to stride ``new``."""
    csvparse.restride(M.reshape(-1), M.shape[0], old, new, n)


class Sink:
    """The records of one Table in the making.

    While every cell is a number (the usual case) they go into one float64 matrix of shape
    (columns, capacity), each column contiguous: the kernel parses runs of plain-number
    records straight into it, and the csv module reads the records it stops at (missing
    tokens, quotes, odd cells, errors), ``step`` records at a time (doubling while the kernel
    keeps failing at once). The capacity comes from the bytes left to read over the bytes per
    record seen (grown in place, trimmed at the end), so the matrix is about the final size.
    Once a column is mostly text (checked after every piece, and at the end) the rows move
    to per-column builders (``ColumnBuilder``) and the rest goes through the csv module.
    """

    def __init__(self, names, keep, sep, reader, limit, cap, skip=frozenset()):
        self.names, self.ncols = names, len(names)
        # Unused columns (`skip`): the kernel steps over their fields and they read as
        # missing, so text nobody needs is neither decoded nor parsed.
        self.skip = frozenset(skip)
        self.skip_mask = None
        if self.skip:
            self.skip_mask = np.zeros(self.ncols, np.uint8)
            self.skip_mask[list(self.skip)] = 1
        self.sep, self.sepcode, self.reader = sep, ord(sep), reader
        self.limit = limit  # records per Table (iter_csv_chunks), None for the whole file
        self.n = 0
        self.fast = sep not in _NOT_KERNEL_SEPS and self.sepcode < 128
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
        self.builders = [ColumnBuilder(n, j, j in keep, j in self.skip)
                         for j, n in enumerate(self.names)]
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
                pos, self.n, line, status = csvparse.parse_numeric(
                    data, pos, end, self.sepcode, self.M, self.lines, self.n, top, line,
                    self.skip_mask)
                self.bytes_seen += pos - pos0
                self.kernel_rows += self.n - n0
                if status == csvparse.FAIL:
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
        cut = skip_records(data, pos, end, k)
        text = self.reader.decode(data, pos, cut, line)
        rows, starts, _ = slow_rows(text, line, self.sep, self.reader.name, self.ncols)
        del text
        if rows:
            self._add_rows(rows, starts, data, cut)
        self.bytes_seen += cut - pos
        return cut, line + count_byte(data, pos, cut, b"\n")

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
            if j in self.skip:
                self.M[j, n:n + k] = np.nan
                continue
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
            b = ColumnBuilder(name, j, False, j in self.skip)
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


def estimate_rows(reader, data, pos, end) -> int:
    """Records left from ``data[pos]``: bytes left over bytes per line in this piece."""
    lines = count_byte(data, pos, end, b"\n") + 1
    rem = reader.remaining(pos)
    if rem is None or end - pos < 1:
        return lines + 16
    return int(rem * (lines / (end - pos)) * 1.01) + 16
