"""The binary cache file of encoded training rows: its layout, writing it atomically, and
opening it only when it is whole and still describes its source.

Layout (little-endian)::

    b"NNCACHE1" | uint64 header length | header (UTF-8 JSON) | zero padding to 4096
    X   float32/float64 (n_rows, n_features), C order      ─┐ the payload, whose
    Y   float32/float64 (n_rows, n_outputs) (absent when     │ CRC-32 the header
        the targets are the inputs: reconstruct)             │ records
    train_rows int64 (n_train) · val_rows int64 (n_val)    ─┘

The header holds the schema, the source's path/size/mtime/sha256, the options the rows
depend on (its ``key``), the per-column statistics and the offset of each array. A file
that is short, has another version, a header that does not parse, a payload whose CRC
differs, or a source whose size or mtime changed is not used: the caller rebuilds it.
Rows are read through memory maps of a window of rows at a time (`CacheFile.window`), so
the pages of one window, not of the file, count in the process's memory.
"""

from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

MAGIC = b"NNCACHE1"
VERSION = 1
ALIGN = 4096
_CRC_BLOCK = 1 << 22


def source_identity(path) -> dict:
    """What says the source file is unchanged: its absolute path, size and mtime."""
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class CacheWriter:
    """Writes a cache: header space first, then the arrays in order; `commit` fills in the
    header and moves the file into place (``os.replace``), `abort` removes it."""

    def __init__(self, path):
        self.path = path
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.tmp = f"{path}.{os.getpid()}.tmp"
        self.f = open(self.tmp, "w+b")  # noqa: SIM115 (closed in commit/abort)
        self.f.write(b"\0" * ALIGN)  # grown in commit if the header needs more
        self.crc = 0
        self.offsets = {}
        self._current = None

    def begin(self, name):
        self._current = name
        self.offsets[name] = self.f.tell() - ALIGN

    def write(self, array: np.ndarray):
        data = memoryview(np.ascontiguousarray(array)).cast("B")
        self.crc = zlib.crc32(data, self.crc)
        self.f.write(data)

    def commit(self, header: dict):
        header = dict(header, version=VERSION, offsets=self.offsets, crc32=self.crc,
                      payload_bytes=self.f.tell() - ALIGN)
        text = json.dumps(header, allow_nan=False).encode()
        start = ALIGN
        if len(text) + 16 > ALIGN:  # a long header (many categories): move the payload
            start = (len(text) + 16 + ALIGN - 1) // ALIGN * ALIGN
            self._shift_payload(start - ALIGN)
        header_bytes = MAGIC + struct.pack("<Q", len(text)) + text
        self.f.seek(0)
        self.f.write(header_bytes.ljust(start, b"\0"))
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)

    def _shift_payload(self, by):
        """Move the payload `by` bytes further (from the end, a block at a time)."""
        end = self.f.seek(0, os.SEEK_END)
        pos = end
        while pos > ALIGN:
            size = min(_CRC_BLOCK, pos - ALIGN)
            pos -= size
            self.f.seek(pos)
            block = self.f.read(size)
            self.f.seek(pos + by)
            self.f.write(block)

    def abort(self):
        try:
            self.f.close()
        finally:
            try:
                os.remove(self.tmp)
            except OSError:
                pass


class CacheFile:
    """An opened, checked cache: the header (``meta``) and windows of its rows."""

    def __init__(self, path, meta, start):
        self.path, self.meta, self.start = path, meta, start
        self.dtype = np.dtype(meta["dtype"])
        self.n_rows = meta["n_rows"]
        self.n_features, self.n_outputs = meta["n_features"], meta["n_outputs"]
        self.same_xy = meta["same_xy"]
        self.train_rows = self._array("train_rows", np.int64, (meta["n_train"],))
        self.val_rows = self._array("val_rows", np.int64, (meta["n_val"],))

    def _array(self, name, dtype, shape):
        with open(self.path, "rb") as f:
            f.seek(self.start + self.meta["offsets"][name])
            return np.fromfile(f, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def window(self, lo, hi):
        """(X, Y) of rows lo..hi as read-only memory maps (Y is X for reconstruct). Drop them
        after use: the mapping, and the pages it touched, go with them."""
        X = np.memmap(self.path, self.dtype, "r", self.start + self.meta["offsets"]["X"]
                      + lo * self.n_features * self.dtype.itemsize, (hi - lo, self.n_features))
        if self.same_xy:
            return X, X
        Y = np.memmap(self.path, self.dtype, "r", self.start + self.meta["offsets"]["Y"]
                      + lo * self.n_outputs * self.dtype.itemsize, (hi - lo, self.n_outputs))
        return X, Y


def open_cache(path, key: str, source: dict | None):
    """The cache at `path` when it is whole and matches `key` and `source` (its identity,
    None to skip that check); otherwise ``(None, why)``. Returns ``(CacheFile, None)``."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            if len(head) < 16 or head[:8] != MAGIC:
                return None, "not an nncli cache"
            (length,) = struct.unpack("<Q", head[8:])
            text = f.read(length)
            if len(text) != length:
                return None, "truncated"
            meta = json.loads(text)
            start = (length + 16 + ALIGN - 1) // ALIGN * ALIGN
            if meta.get("version") != VERSION:
                return None, "another version"
            if meta.get("key") != key:
                return None, "made with other options"
            if source is not None and meta.get("source", {}).get("identity") != source:
                return None, "the data changed"
            size = os.fstat(f.fileno()).st_size
            if size != start + meta["payload_bytes"]:
                return None, "truncated"
            f.seek(start)
            crc = 0
            while block := f.read(_CRC_BLOCK):
                crc = zlib.crc32(block, crc)
            if crc != meta["crc32"]:
                return None, "damaged (checksum)"
            return CacheFile(path, meta, start), None
    except FileNotFoundError:
        return None, "none yet"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return None, f"unreadable ({type(e).__name__})"
