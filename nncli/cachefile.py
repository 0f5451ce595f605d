"""The binary cache file of encoded training rows: its layout, writing it atomically, and
opening it only when it is whole and still describes its source.

Layout (little-endian)::

    b"NNCACHE1" | uint64 header offset | uint64 header length | zero padding to 4096
    X   float32/float64 (n_rows, n_features), C order         ─┐ the arrays, each with
    Y   float32/float64 (n_rows, n_outputs) (absent when        │ its CRC-32 in the
        the targets are the inputs: reconstruct)                │ header
    train_rows int64 (n_train) · val_rows int64 (n_val)       ─┘
    header (UTF-8 JSON), last, so the arrays can be written before it is known

The header holds the schema, the source's path/size/mtime/sha256, the options the rows
depend on (its ``key``), the per-column statistics and the offset of each array. A file
that is short, has another version, a header that does not parse, a payload whose CRC
differs, or a source whose size or mtime changed is not used: the caller rebuilds it.
Training reads a block of rows at a time into buffers allocated once (`CacheFile.read_rows`):
no page of the file stays mapped, so the process's memory is the block's, not the file's.
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
    """Writes a cache: `add` reserves each array's room, `write` appends rows to an array
    (in any order of arrays, in order within one), `commit` writes the header, syncs and
    moves the file into place (``os.replace``); `abort` removes it."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.tmp = f"{path}.{os.getpid()}.tmp"
        self.f = open(self.tmp, "w+b")  # noqa: SIM115 (closed in commit/abort)
        self.fd = self.f.fileno()
        self.offsets, self.sizes, self.pos, self.crcs = {}, {}, {}, {}
        self.end = 0

    def add(self, name, nbytes):
        self.offsets[name], self.sizes[name] = self.end, int(nbytes)
        self.pos[name], self.crcs[name] = self.end, 0
        self.end += int(nbytes)

    def write(self, name, array: np.ndarray):
        # bytes, flat (memoryview.cast refuses an empty array: no held-out rows, --val-data)
        data = memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
        if self.pos[name] + len(data) > self.offsets[name] + self.sizes[name]:
            raise ValueError(f"cache: more bytes for {name} than reserved")
        self.crcs[name] = zlib.crc32(data, self.crcs[name])
        while len(data):
            done = os.pwrite(self.fd, data, ALIGN + self.pos[name])
            self.pos[name] += done
            data = data[done:]

    def commit(self, header: dict):
        short = [n for n in self.offsets if self.pos[n] != self.offsets[n] + self.sizes[n]]
        if short:
            raise ValueError(f"cache: {', '.join(short)} not written in full")
        header = dict(header, version=VERSION, offsets=self.offsets, sizes=self.sizes,
                      crc32=self.crcs, payload_bytes=self.end)
        text = json.dumps(header, allow_nan=False).encode()
        os.pwrite(self.fd, text, ALIGN + self.end)
        os.pwrite(self.fd, MAGIC + struct.pack("<QQ", ALIGN + self.end, len(text)), 0)
        # No fsync: a cache that a crash left half on disk fails its CRCs and is rebuilt.
        self.f.close()
        os.replace(self.tmp, self.path)
        return json.loads(text)   # the header as a reader sees it

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
        self.val_targets = (self._array("val_targets", np.float64, (meta["n_val"], self.n_outputs))
                            if "val_targets" in meta["offsets"] else None)

    def _array(self, name, dtype, shape):
        with open(self.path, "rb") as f:
            f.seek(self.start + self.meta["offsets"][name])
            return np.fromfile(f, dtype=dtype, count=int(np.prod(shape))).reshape(shape)

    def read_rows(self, lo, hi, X, Y=None):
        """Copy rows lo..hi into the buffers X (and Y): (X[:n], Y[:n]) as views. One read
        per array into memory allocated once, so no page of the file stays mapped and each
        epoch costs a copy from the page cache rather than a page fault per 4 KiB."""
        n = hi - lo
        with open(self.path, "rb", buffering=0) as f:
            for name, buf, width in (("X", X, self.n_features), ("Y", Y, self.n_outputs)):
                if buf is None or (name == "Y" and self.same_xy):
                    continue
                f.seek(self.start + self.meta["offsets"][name] + lo * width * self.dtype.itemsize)
                view = memoryview(buf[:n]).cast("B")
                got = 0
                while got < len(view):
                    k = f.readinto(view[got:])
                    if not k:
                        raise OSError(f"{self.path}: the cache ends early")
                    got += k
        Xn = X[:n]
        return Xn, (Xn if self.same_xy else Y[:n])

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
    """``(CacheFile, None)`` for the cache at `path` when it is whole and matches `key` and
    `source` (its identity, None to skip that check); otherwise ``(None, why)``."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
            if len(head) < 24 or head[:8] != MAGIC:
                return None, "not an nncli cache"
            at, length = struct.unpack("<QQ", head[8:])
            size = os.fstat(f.fileno()).st_size
            if at + length != size or at < ALIGN:
                return None, "truncated"
            f.seek(at)
            meta = json.loads(f.read(length))
            if meta.get("version") != VERSION:
                return None, "another version"
            if meta.get("key") != key:
                return None, "made with other options"
            if source is not None and meta.get("source", {}).get("identity") != source:
                return None, "the data changed"
            if ALIGN + meta["payload_bytes"] != at:
                return None, "truncated"
            for name, offset in meta["offsets"].items():
                f.seek(ALIGN + offset)
                crc, left = 0, meta["sizes"][name]
                while left:
                    block = f.read(min(_CRC_BLOCK, left))
                    if not block:
                        return None, "truncated"
                    crc = zlib.crc32(block, crc)
                    left -= len(block)
                if crc != meta["crc32"][name]:
                    return None, "damaged (checksum)"
            return CacheFile(path, meta, ALIGN), None
    except FileNotFoundError:
        return None, "none yet"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        return None, f"unreadable ({type(e).__name__})"
