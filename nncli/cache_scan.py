"""The pass over the source for the training cache (`nncli.cache`): what it learns about each
used column, and the raw store it writes the cells to."""

from __future__ import annotations

import os

import numpy as np

from nncli import data as D
from nncli.columns import (detect_date_format, detect_number_format, identifier_counts,
                           parse_dates, parse_formatted)

#: After this many text cells and no number, a column's later text chunks are not parsed
#: as numbers cell by cell (the slow part of text): it is a text column.
_TEXT_SURE = 1000


class ColumnScan:
    """What the pass learns about one used column."""

    def __init__(self, name, index, canonical=False):
        self.name, self.index = name, index
        self.canonical = canonical  # declared categorical: '7.0' and '7' one category
        self.numbers = self.bad = self.missing = self.rows = 0
        self.first_bad = None      # (line, text)
        self.first_big = None      # (line, value): beyond float32
        self.all_int = True
        self.distinct = set()      # integers seen, up to MAX_INTEGER_CLASSES + 1
        self.vocab = {}            # stripped text → code (text columns)
        self.text_mode = False
        self.text_cells = 0

    def code_of(self, s):
        c = self.vocab.get(s)
        if c is None:
            c = self.vocab[s] = len(self.vocab)
        return c

    def numbers_seen(self, values, lines):
        ok = np.isfinite(values)
        v = values[ok]
        self.numbers += len(v)
        if len(v):
            big = np.abs(v) > D.FLOAT32_MAX
            if big.any() and self.first_big is None:
                r = int(np.flatnonzero(ok)[np.argmax(big)])
                self.first_big = (int(lines[r]), float(values[r]))
            if self.all_int:
                if not np.all(v == np.round(v)):
                    self.all_int = False
                elif len(self.distinct) <= D.MAX_INTEGER_CLASSES:
                    self.distinct.update(np.unique(v).tolist())

    def codes_of_numbers(self, values):
        """Codes of number cells as text (canonical form), −1 where missing."""
        codes = np.full(len(values), -1, np.int32)
        ok = np.isfinite(values)
        if ok.any():
            uniq, inv = np.unique(values[ok], return_inverse=True)
            table = np.array([self.code_of(D.format_number(u)) for u in uniq.tolist()], np.int32)
            codes[ok] = table[inv]
        return codes

    def add(self, col, lines):
        """One chunk of the column: ``(values float64, codes int32)`` for the raw store."""
        n = len(col)
        self.rows += n
        if not col.is_text:
            values = col.values
            self.numbers_seen(values, lines)
            codes = self.codes_of_numbers(values) if self.text_mode else None
            if col.bad and codes is None:
                codes = np.full(n, -2, np.int32)
            for r, s in col.bad:
                self.bad += 1
                if self.first_bad is None:
                    self.first_bad = (int(lines[r]), s)
                codes[r] = self.code_of(s.strip())
            self.missing += n - int(np.isfinite(values).sum()) - len(col.bad)
            return values, codes
        self.text_mode = True
        text = [s.strip() for s in col.text]
        missing = np.fromiter((s.lower() in D.MISSING_TOKENS for s in text), bool, n)
        if self.canonical:
            text = [D._canonical(s) for s in text]
        codes = np.fromiter((-1 if m else self.code_of(s) for s, m in zip(text, missing)),
                            np.int32, n)
        self.missing += int(missing.sum())
        if self.numbers == 0 and self.text_cells >= _TEXT_SURE:
            values = np.full(n, np.nan)
            bad = [(r, s) for r, (s, m) in enumerate(zip(text, missing)) if not m][:1]
            self.bad += n - int(missing.sum())
        else:
            values, bad = D.parse_cells(col.text)
            self.numbers_seen(values, lines)
            self.bad += len(bad)
        self.text_cells += n - int(missing.sum())
        if bad and self.first_bad is None:
            self.first_bad = (int(lines[bad[0][0]]), bad[0][1])
        return values, codes

    def decide(self, decimal=".", dates="expand", declared=False):
        """The column's kind, by the rules `data._analyse` applies to a whole column, from what
        the pass saw: its counts and its distinct text cells, in the order first seen (the
        detectors of `nncli.columns` look at distinct cells only). Sets ``kind``, the
        ``number_format`` or ``date_format`` found, and ``lut``: each text code's number
        (formatted numbers, dates as seconds, booleans as 0/1; its last entry, NaN, for the
        missing code −1), or None where the values are the numbers as read."""
        self.number_format = self.date_format = self.lut = None
        every = list(self.vocab)   # code order: the order first seen
        words = [w for w in every if w.lower() not in D.MISSING_TOKENS]
        if declared:
            self.kind = "categorical"
        elif not self.text_mode:   # every chunk read as numbers by the CSV kernel
            self.kind = "numeric"
            if self.bad and decimal == ".":   # the non-numbers only: plain numbers fit any format
                self._formatted(words, every, decimal)
        elif decimal == "." and self.numbers and not self.bad:
            self.kind = "numeric"
        elif self._formatted(words, every, decimal):
            self.kind = "numeric"
        elif decimal == "." and self.bad <= self.numbers and (self.bad or self.numbers):
            self.kind = "numeric"   # with non-numbers: the error names the first
        elif words and {w.lower() for w in words} <= D.BOOLEAN_WORDS.keys():
            self.kind = "boolean"
            self.lut = np.array([D.BOOLEAN_WORDS.get(w.lower(), np.nan) for w in every] + [np.nan])
        else:
            # a cell the kernel read as a number fits no date form (a year code 2019)
            self.date_format = None if dates == "none" or self.numbers else detect_date_format(
                words, month_first=dates == "monthfirst")
            self.kind = "categorical" if self.date_format is None else "date"
            if self.date_format is not None:
                self.lut = np.append(parse_dates(every, self.date_format)[0], np.nan)
        return self.kind

    def _formatted(self, words, every, decimal):
        found = detect_number_format(words, decimal)
        if found is not None:
            self.number_format = found[0]
            self.lut = np.append(parse_formatted(every, decimal)[0], np.nan)
        return found is not None

    def as_numbers(self, values, codes):
        """The column's numbers in a window: `values` as read, or through ``lut`` for the
        cells the pass coded (codes −2, cells the kernel read as numbers, keep `values`)."""
        if self.lut is None or codes is None:
            return values
        out = values.copy()
        coded = codes >= 0
        out[coded] = self.lut[codes[coded]]
        out[codes == -1] = np.nan
        return out

    def identifier(self):
        """`columns.identifier_counts` for this (categorical) column: distinct present values."""
        return identifier_counts(len(self.vocab), self.rows - self.missing)


class RawStore:
    """The cells of the used columns, row-major: values float64 (n, U), line numbers int64
    (n), and codes int32 (n, U) from the first chunk that holds text on (rows before it are
    −2, deferred, and written then); read back by windows of memory maps."""

    def __init__(self, folder, stem, n_cols):
        self.n_cols, self.n = n_cols, 0
        self.paths = [os.path.join(folder, f"{stem}.{os.getpid()}.{k}.raw") for k in "vlc"]
        self.files = [open(p, "wb") for p in self.paths[:2]]  # noqa: SIM115 (closed in close)
        self.has_codes = False

    def append(self, values, codes, lines):
        if codes is not None and not self.has_codes:
            self.files.append(open(self.paths[2], "wb"))  # noqa: SIM115
            for lo in range(0, self.n, 1 << 16):
                np.full((min(1 << 16, self.n - lo), self.n_cols), -2, np.int32).tofile(self.files[2])
            self.has_codes = True
        if self.has_codes and codes is None:
            codes = np.full((len(lines), self.n_cols), -2, np.int32)
        for f, a in zip(self.files, (values, lines, codes)):
            np.ascontiguousarray(a).tofile(f)
        self.n += len(lines)

    def done_writing(self):
        for f in self.files:
            f.close()

    def window(self, lo, hi):
        """(values, codes or None, lines) of rows lo..hi, memory-mapped."""
        U = self.n_cols
        if hi <= lo:
            return np.empty((0, U)), (np.empty((0, U), np.int32) if self.has_codes else None), \
                np.empty(0, np.int64)
        values = np.memmap(self.paths[0], np.float64, "r", lo * U * 8, (hi - lo, U))
        lines = np.memmap(self.paths[1], np.int64, "r", lo * 8, (hi - lo,))
        codes = (np.memmap(self.paths[2], np.int32, "r", lo * U * 4, (hi - lo, U))
                 if self.has_codes else None)
        return values, codes, lines

    def close(self):
        for f in self.files:
            f.close()
        for p in self.paths:
            try:
                os.remove(p)
            except OSError:
                pass
