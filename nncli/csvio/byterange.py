"""One part of a CSV file by bytes: what a rank of a data-parallel run reads (nncli.shards).

Part r of R takes the lines whose first byte falls in [H + r·D/R, H + (r+1)·D/R), where H is
where the data starts (after the header line) and D the bytes after it: each bound moves to
the next line start, so the parts are whole lines, disjoint, and together the file in order.

That is only right when a newline always ends a record. A quoted field may hold a newline,
and a bound inside one would split a record. Such a field leaves the line it starts on with an
odd number of quote characters (inside quotes they come in pairs, "" for one), so a part (or
the header) with a line holding an odd number of quotes is not read by bytes — `scan_part`
says so and the caller falls back to reading the whole file (nncli.shards). (A stray quote
inside an unquoted field, which RFC 4180 does not allow, also makes its line odd: a fallback
too, never a wrong cut — unless two stray quotes sit on the lines a multi-line field starts
and ends on.) So do a file whose lines end in a lone CR (old Mac
files: the csv module ends records there, we would not), a compressed or Parquet file and
standard input, which cannot be cut by offset, and an encoding in which a newline or a quote
byte can be part of another character.
"""
from __future__ import annotations

import codecs
import io
import os

import numpy as np

from nncli.csvio import compressed

_BLOCK = 1 << 20
# Encodings in which the bytes 0x0A (\n), 0x0D (\r) and 0x22 (") are always those characters.
BYTE_SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "ascii", "iso8859-1", "cp1252"})


def why_not_by_bytes(path, encoding: str) -> str | None:
    """None when `path` can be cut by byte offsets, else why not (for the run's note)."""
    if not isinstance(path, (str, os.PathLike)) or path == "-":
        return "standard input cannot be read by parts"
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return f"unknown encoding {encoding!r}"
    if name not in BYTE_SAFE_ENCODINGS:
        return f"the encoding {encoding} is not cut by bytes"
    if compressed.format_of_name(os.fspath(path)) or str(path).lower().endswith(".parquet"):
        return "a compressed or Parquet file cannot be cut by byte offsets"
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError:
        return "the file cannot be opened"   # reading it whole says why, as usual
    if compressed.format_of_bytes(magic) or magic[:4] == compressed.PARQUET_MAGIC:
        return "a compressed or Parquet file cannot be cut by byte offsets"
    return None


def data_start(path, header: bool) -> int | None:
    """Byte offset of the first data line: after the header line (with header), else 0.
    None when the header cannot be told apart by bytes: blank lines before it (the reader
    skips them), a quote in it (a quoted name may hold a newline), or no newline at all."""
    if not header:
        return 0
    with open(path, "rb") as f:
        head = b""
        while b"\n" not in head:
            block = f.read(1 << 16)
            if not block:
                return None
            head += block
    end = head.index(b"\n") + 1
    line = head[:end]
    if line.count(b'"') % 2 or not line.strip(b" \t\r\n\xef\xbb\xbf"):
        return None
    return end


def part_bounds(path, start: int, size: int, part: int, parts: int) -> tuple[int, int]:
    """``(first byte, end)`` of part ``part`` of ``parts`` of the bytes from ``start`` to
    ``size``: the lines that start in its nominal range (see the module docstring)."""
    def line_start_at_or_after(p):
        if p <= start:
            return start
        if p >= size:
            return size
        with open(path, "rb") as f:
            f.seek(p - 1)
            while True:
                block = f.read(_BLOCK)
                if not block:
                    return size
                nl = block.find(b"\n")
                if nl >= 0:
                    return p - 1 + nl + 1
                p += len(block)
    span = size - start
    return (line_start_at_or_after(start + span * part // parts),
            line_start_at_or_after(start + span * (part + 1) // parts))


def scan_part(path, lo: int, hi: int) -> tuple[int, str | None]:
    """``(newlines, problem)`` of bytes lo..hi: how many lines they hold, and why they cannot
    be read as whole records on their own (a quote, a lone CR), or None."""
    newlines, quotes = 0, 0   # quotes: how many since the part's start, mod 2
    with open(path, "rb") as f:
        pos = lo
        while pos < hi:
            n = min(_BLOCK, hi - pos)
            f.seek(pos)
            block = f.read(n + 1)   # one byte more: what follows a CR at the end
            chunk = block[:n]
            if not chunk:
                break
            if quotes or b'"' in chunk:
                # Every line must hold an even number of quotes: the count up to each
                # newline is even. (A quoted field holds its quotes in pairs, "" for one,
                # plus the two around it; one that goes on past a newline leaves its first
                # line odd.)
                a = np.frombuffer(chunk, np.uint8)
                counts = quotes + np.cumsum(a == ord('"'))
                if np.any(counts[a == ord("\n")] % 2) or (pos + n == hi and counts[-1] % 2):
                    return newlines, "a quoted field holds a newline"
                quotes = int(counts[-1]) % 2
            crs = chunk.count(b"\r")
            if crs and crs != chunk.count(b"\r\n") + (chunk.endswith(b"\r") and block[n:] == b"\n"):
                return newlines, "lines ending in a lone CR"
            newlines += chunk.count(b"\n")
            pos += len(chunk)
    return newlines, None


class _PartStream(io.RawIOBase):
    """The bytes `head` then bytes lo..hi of the file at `path`: a CSV of its own."""

    def __init__(self, path, head: bytes, lo: int, hi: int):
        self.name = os.fspath(path)
        self._head, self._file, self._left = head, open(path, "rb"), hi - lo  # noqa: SIM115
        self._file.seek(lo)

    def readable(self):
        return True

    def readinto(self, b):
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        n = min(len(b), self._left)
        if n <= 0:
            return 0
        got = self._file.readinto(memoryview(b)[:n])
        self._left -= got
        return got

    def close(self):
        self._file.close()
        super().close()


def open_part(path, header_end: int, lo: int, hi: int):
    """A binary stream of the header line (the bytes before `header_end`) and bytes lo..hi,
    named as the file (for messages); close it after reading."""
    with open(path, "rb") as f:
        head = f.read(header_end)
    return io.BufferedReader(_PartStream(path, head, lo, hi), buffer_size=_BLOCK)
