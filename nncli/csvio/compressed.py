"""Compressed CSV input: ``.csv.gz``, ``.csv.bz2``, ``.csv.xz`` and ``.csv.zst``, recognised by
the file's extension or, on stdin and for a file whose name says nothing, by its magic bytes.

The decompressor is a stream of plain CSV bytes, so the reader above it does not change: it
hashes the decompressed bytes (a model's ``data_sha256`` is that of the CSV, however stored).
gzip, bz2 and xz come with Python; zstd needs the optional ``zstandard`` package (the extra
``nncli[zstd]``), and its absence is one line that says so.
"""

from __future__ import annotations

import bz2
import gzip
import lzma

from nncli.errors import ConfigError, DataError

#: magic bytes → format name
MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
         (b"\x28\xb5\x2f\xfd", "zstd"))
#: file name suffix → format name
SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd",
            ".zstd": "zstd"}
#: The signature of a Parquet file (first and last 4 bytes).
PARQUET_MAGIC = b"PAR1"


def format_of_name(name: str) -> str | None:
    """The compression a file's name announces, or None."""
    lower = name.lower()
    for suffix, fmt in SUFFIXES.items():
        if lower.endswith(suffix):
            return fmt
    return None


def format_of_bytes(head: bytes) -> str | None:
    """The compression the first bytes of a stream announce, or None."""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def peek(stream, n: int = 8) -> bytes:
    """The first bytes of ``stream`` without consuming them (b'' when it cannot tell)."""
    if hasattr(stream, "peek"):
        try:
            return bytes(stream.peek(n)[:n])
        except (OSError, ValueError):
            return b""
    try:
        pos = stream.tell()
        head = stream.read(n)
        stream.seek(pos)
        return head if isinstance(head, bytes) else b""
    except (AttributeError, OSError, ValueError):
        return b""


def open_decompressed(stream, fmt: str, name: str):
    """A binary stream of the decompressed bytes of ``stream``."""
    if fmt == "gzip":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if fmt == "bz2":
        return bz2.BZ2File(stream, mode="rb")
    if fmt == "xz":
        return lzma.LZMAFile(stream, mode="rb")
    if fmt == "zstd":
        try:
            import zstandard
        except ImportError:
            raise ConfigError(f"{name}: reading .zst files needs the zstandard package: "
                              "pip install 'nncli[zstd]'") from None
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True, closefd=False)
    raise ValueError(fmt)


def decompression_errors():
    """Exception types a damaged compressed stream raises while being read."""
    errors = [EOFError, gzip.BadGzipFile, lzma.LZMAError]
    try:
        import zstandard
        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


def damaged(name: str, fmt: str, e: Exception) -> DataError:
    return DataError(f"{name}: the {fmt} data is damaged or truncated ({e or type(e).__name__})")
