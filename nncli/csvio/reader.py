"""Bytes to pieces of whole records, decoded where the number kernel cannot read them;
separator detection; and the csv module's exact (slow) reading of records."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import stat
import sys

from nncli._kernels import csvparse
from nncli.csvio import compressed
from nncli.errors import ConfigError, DataError

#: Separators that are detected automatically.
SEPARATORS = (",", ";", "\t")

_BLOCK_BYTES = 1 << 21
_BOM = b"\xef\xbb\xbf"


class UndecodableBytes(DataError):
    """Bytes that are not text in the encoding: ``place`` (file:line) and ``detail`` (which
    byte, where, which encoding) for a caller with other advice than --encoding."""

    def __init__(self, place: str, detail: str):
        super().__init__(f"{place}: {detail}; give the file's encoding (e.g. --encoding "
                         "latin-1) or save it as UTF-8")
        self.place, self.detail = place, detail


class Reader:
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
        # What progress is measured in: the bytes of the source as stored (compressed or not).
        self.raw, self.raw_size = self.stream, self.size
        self.compression = (compressed.format_of_name(self.name) if self._close else None) \
            or compressed.format_of_bytes(compressed.peek(self.stream))
        if not self.compression and compressed.peek(self.stream, 4) == compressed.PARQUET_MAGIC:
            raise DataError(f"{self.name}: this is a Parquet file, which is read from its end: "
                            "give its file name rather than piping it")
        if self.compression:
            # The decompressed size is unknown: the row estimates fall back to growing.
            self.stream = compressed.open_decompressed(self.raw, self.compression, self.name)
            self.size = None
            self._errors = compressed.decompression_errors()
        else:
            self._errors = ()
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
        except self._errors as e:
            raise compressed.damaged(self.name, self.compression, e) from None
        except OSError as e:
            if self.compression:
                raise compressed.damaged(self.name, self.compression, e) from None
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
            if self.compression:
                self.stream.close()   # the decompressor (never the stdin under it)
            if self._close:
                self.raw.close()

    def raw_position(self) -> int:
        """Bytes of the source as stored that were read so far (for progress)."""
        if self.raw is self.stream:
            return self.bytes_read
        try:
            return self.raw.tell()
        except (OSError, ValueError, AttributeError):
            return 0

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
                if end == 0 or count_byte(buf, 0, end, b'"') % 2:
                    continue
            start = 0
            if first:
                first = False
                if self.utf8 and have >= 3 and buf[:3] == _BOM:
                    start = 3
            if start < end:
                self._have = have
                yield buf, start, end, line
                line += count_byte(buf, start, end, b"\n")
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
            raise self._decode_error(piece, e, line, start) from None
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        return text


    def _decode_error(self, piece: bytes, e: UnicodeDecodeError, line: int, start: int):
        """Where the first undecodable byte is (line, byte position in the line, 0-based offset
        in the source), what it is, and the option that reads it."""
        at = line + piece.count(b"\n", 0, e.start)
        column = e.start - (piece.rfind(b"\n", 0, e.start) + 1) + 1
        offset = self.bytes_read - self._have + start + e.start  # of piece[e.start] in the source
        return UndecodableBytes(
            f"{self.name}:{at}", f"the byte 0x{piece[e.start]:02X} at position {column} of the "
            f"line (offset {offset} in the file) is not valid {self.encoding.upper()}")


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


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


def slow_rows(text: str, line0: int, sep: str, name: str, ncols: int | None, limit=None):
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


def count_byte(data: bytes, start: int, end: int, byte: bytes) -> int:
    """``data.count(byte, start, end)``, faster."""
    return csvparse.count_byte(data, start, end, byte[0])


def skip_records(data: bytes, pos: int, end: int, k: int) -> int:
    """Position after the k-th LF outside quotes from ``pos``, or ``end``."""
    return csvparse.skip_records(data, pos, end, k)
