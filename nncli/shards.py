"""Each MPI rank's shard of the rows, and the statistics of all of them combined.

`read_shard`: rank r of R reads the lines of the CSV that start in its r-th byte range
(nncli.csvio.byterange); the shards are contiguous and in rank order, so rank r's rows are the
global rows offset_r … offset_r + n_r − 1 (offset_r the rows of the ranks before it). A Parquet
file is shared out by row groups. Where a file cannot be cut (a quoted field holding a
newline, a compressed file, fewer row groups than ranks…) every rank reads it whole and keeps
its contiguous block of rows — slower, the same result.

`ShardStats` is `nncli.data.LocalStats` over every rank's shard: `data.prepare_training` runs
unchanged on this rank's table and asks it for every statistic — counts, means and variances
(each rank's numpy moments merged by Chan's pairwise formula), exact medians (a search over
the float64 order by counts, no row sent), vocabularies (the sorted union of each rank's
counts), the validation split (every kept row's class label gathered, 4 bytes a row, so the
split is the one a single process draws over the global rows) and the column kinds (each rank
reads its shard's kinds; where they differ see `agree_kinds`). So R ranks fit the schema one
process fits, up to the rounding of the merged sums.

Every call is a collective: all ranks make the same calls in the same order (the decisions
between them depend on combined values only). They go through `distributed.exchange`, so a
rank that fails on its own shard (a bad cell) makes every rank raise its error, not wait.
"""
from __future__ import annotations

import math
import os

import numpy as np

from nncli import data as D
from nncli.csvio import byterange, parquet
from nncli.csvio.reader import file_sha256
from nncli.distributed import exchange
from nncli.errors import ConfigError, DataError


def read_shard(comm, path, read):
    """``(table, sha256, note)``: this rank's shard of the CSV at `path` (read with the
    `read_csv` arguments `read`), the whole file's sha256 (rank 0 hashes it: the model's
    data_sha256), and how the rows were shared out (for the run's first line)."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if parquet.is_parquet(path):
        return _parquet_shard(comm, path, read)
    why = byterange.why_not_by_bytes(path, read.get("encoding") or "utf-8")
    start = None if why else byterange.data_start(path, read.get("header", True))
    if why is None and start is None:
        why = ("its header is not one line of its own (blank lines before it, or a quoted "
               "name holding a newline)")
    lo = hi = newlines = 0
    sep = None
    if why is None:
        lo, hi = byterange.part_bounds(path, start, os.path.getsize(path), rank, size)
        newlines, why = byterange.scan_part(path, lo, hi) if hi > lo else (0, None)
        # The separator as the file's first lines show it (a part's own could differ).
        sep = read.get("sep") or (_separator(path, read) if rank == 0 else None)
    # One decision for all ranks: by bytes only if every rank can.
    parts = exchange(comm, (why, newlines, hi > lo, sep))
    why = next((w for w, _, _, _ in parts if w), None)
    if why is None and not all(nonempty for _, _, nonempty, _ in parts):
        why = "some byte ranges hold no line (fewer or longer lines than ranks)"
    if why is None:
        stream = byterange.open_part(path, start, lo, hi)
        try:
            table = D.read_csv(stream, **{**read, "sep": parts[0][3]})
        finally:
            stream.close()
        table.line_numbers += sum(n for _, n, _, _ in parts[:rank])   # the file's line numbers
        table.source = str(path)
        sha = exchange(comm, file_sha256(path) if rank == 0 else None)[0]
        return table, sha, f"each of {size} ranks read its byte range of {path}"
    return _whole_then_block(comm, path, read, why)


def _parquet_shard(comm, path, read):
    """A Parquet file's shard: rank r reads row groups G·r/R … G·(r+1)/R − 1 (Parquet's own
    unit of storage; their rows are contiguous in the file), if there are at least R groups."""
    rank, size = comm.Get_rank(), comm.Get_size()
    groups = len(parquet.row_groups(path))
    if groups < size:
        return _whole_then_block(comm, path, read, f"its {groups} row group"
                                 f"{'s are' if groups > 1 else ' is'} fewer than the ranks")
    table = parquet.read_table(path, columns=read.get("columns"),
                               groups=range(groups * rank // size, groups * (rank + 1) // size))
    sha = exchange(comm, file_sha256(path) if rank == 0 else None)[0]
    return table, sha, f"each of {size} ranks read its row groups of {path}"


def _whole_then_block(comm, path, read, why):
    """Every rank reads the whole file and keeps its contiguous block of rows."""
    rank, size = comm.Get_rank(), comm.Get_size()
    whole = D.read_csv(path, **read)
    n = whole.n_rows
    if n < size:
        raise ConfigError(f"{whole.source} has {n} rows, fewer than the {size} ranks")
    table = whole.rows(slice(n * rank // size, n * (rank + 1) // size))
    table.source = whole.source
    return table, whole.sha256, f"every rank read all of {path} ({why}) and kept 1/{size} of the rows"


def _separator(path, read):
    """The separator the whole file's reading would detect (from its first records)."""
    from nncli.csvio.reader import detect_separator
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if len(head) == 1 << 16 and b"\n" in head:
        head = head[:head.rindex(b"\n") + 1]
    return detect_separator(head.decode(read.get("encoding") or "utf-8", errors="replace"))


def shared_cache(comm, build):
    """``(CacheFile, note)``: the training cache, built (or checked, its CRCs read) by rank 0
    alone through `build()`; the other ranks open it from rank 0's header without reading
    it, then each reads only its slices of the blocks (distributed.DistributedStreamingTrainer).
    The cache must be on a file system every rank sees (by default it is beside the data)."""
    from nncli.cachefile import ALIGN, CacheFile
    mine = build() if comm.Get_rank() == 0 else None   # a failure here reaches the others below
    path, meta, note = exchange(comm, None if mine is None else (mine[0].path, mine[0].meta, mine[1]))[0]
    return (mine[0] if mine is not None else CacheFile(path, meta, ALIGN)), note


class ShardStats(D.LocalStats):
    """`data.LocalStats` combined over the ranks of `comm` (see the module docstring)."""

    def __init__(self, comm):
        self.comm = comm

    def _all(self, value):
        return exchange(self.comm, value)

    def total(self, n):
        return sum(self._all(n))

    def any(self, flag):
        return any(self._all(bool(flag)))

    def counts(self, text):
        vocab, counts = np.unique(text, return_counts=True)
        merged = {}
        for words, ks in self._all((vocab.tolist(), counts.tolist())):
            for w, k in zip(words, ks):
                merged[w] = merged.get(w, 0) + k
        keys = sorted(merged)   # code-point order, as np.unique sorts
        return np.array(keys, dtype=str), np.array([merged[k] for k in keys], np.int64)

    def distinct(self, v, cap=None):
        u = np.unique(v)
        if cap is not None:
            u = u[:cap + 1]   # more than cap values here: more than cap in all
        return np.unique(np.concatenate(self._all(u)))

    def union(self, words):
        return sorted(set().union(*self._all(sorted(set(words)))))

    def mean(self, v):
        parts = self._all((len(v), float(np.mean(v)) if len(v) else 0.0))
        n = sum(k for k, _ in parts)
        return sum(k * m for k, m in parts) / n if n else math.nan

    def moments(self, v):
        """Mean and standard deviation by Chan et al.'s merge of each rank's (n, mean, n·var)."""
        v = np.asarray(v, np.float64)
        local = (len(v), float(np.mean(v)), float(np.var(v)) * len(v)) if len(v) else (0, 0.0, 0.0)
        n, mean, m2 = 0, 0.0, 0.0
        for nb, mb, m2b in self._all(local):
            if not nb:
                continue
            delta, total = mb - mean, n + nb
            mean += delta * nb / total
            m2 += m2b + delta * delta * n * nb / total
            n = total
        return (mean, math.sqrt(m2 / n)) if n else (math.nan, math.nan)

    def median(self, v):
        """np.median over every rank's values, exactly: the middle order statistics found by
        bisecting the float64 order (64 rounds of one count per rank), averaged as numpy does."""
        keys = np.sort(_order_keys(np.asarray(v, np.float64)))
        n = self.total(len(keys))
        if not n:
            return math.nan
        wanted = [(n - 1) // 2, n // 2]
        lo, hi = [0, 0], [(1 << 64) - 1] * 2
        for _ in range(64):
            mid = [(a + b) // 2 for a, b in zip(lo, hi)]
            here = [int(np.searchsorted(keys, np.uint64(m), side="right")) for m in mid]
            counts = np.sum(self._all(here), axis=0)
            for i in range(2):
                if counts[i] >= wanted[i] + 1:
                    hi[i] = mid[i]
                else:
                    lo[i] = mid[i] + 1
        a, b = (float(_from_key(k)) for k in lo)
        return a if n % 2 else float(np.mean([a, b]))

    def split(self, n, fraction, seed, labels):
        """The global split of every rank's kept rows (in rank order), as this rank's rows."""
        parts = self._all((n, None if labels is None else labels.astype(np.int32)))
        total = sum(k for k, _ in parts)
        offset = sum(k for k, _ in parts[:self.comm.Get_rank()])
        every = None if labels is None else np.concatenate([lab for _, lab in parts])
        train, val = D.validation_split(total, fraction, seed, every)
        local = lambda rows: rows[(rows >= offset) & (rows < offset + n)] - offset  # noqa: E731
        return local(train), local(val)

    def gather(self, a):
        """Every rank's array a, concatenated in rank order."""
        return np.concatenate(self._all(a))

    def extremes(self, lo, hi):
        """Element-wise min of every rank's lo and max of every rank's hi."""
        parts = self._all((lo, hi))
        return np.min([p[0] for p in parts], axis=0), np.max([p[1] for p in parts], axis=0)

    def identifier(self, text, missing):
        """`columns.looks_like_identifier` over every rank's cells: the present cells counted,
        the distinct ones by the union of their 64-bit BLAKE2 digests (8 bytes a value)."""
        from hashlib import blake2b

        from nncli.columns import ID_MIN_ROWS, ID_SHARE
        present = {s for s, m in zip(text, missing) if not m}
        digests = np.fromiter((int.from_bytes(blake2b(s.encode(), digest_size=8).digest(), "little")
                               for s in present), np.uint64, len(present))
        parts = self._all((int(np.count_nonzero(~np.asarray(missing, bool))), digests))
        n = sum(k for k, _ in parts)
        if n < ID_MIN_ROWS:
            return None
        distinct = len(np.unique(np.concatenate([d for _, d in parts])))
        return (distinct, n) if distinct >= ID_SHARE * n else None

    def agree_kinds(self, table, cells, decimal):
        """One kind per column for all ranks. Each rank read its shard's kinds; a rank whose
        cells of a column are all missing has no say. Where the others agree, that is the
        kind. Where one read numbers and another text, the column is read as one process
        reads it from the counts of all ranks: numbers (the words then being errors) when
        words are no more than numbers, else categories; text against booleans or dates:
        categories. Any other difference (two number or date formats) is an error naming
        the column."""
        columns = sorted(cells)
        mine = {j: None if cells[j].missing.all() else _kind(cells[j]) for j in columns}
        formats = {j: cells[j].number_format for j in columns}
        everyone = self._all((mine, formats))
        mixed = []
        for j in columns:
            said = {k[j] for k, _ in everyone if k[j] is not None}
            if len(said) <= 1:
                agreed = next(iter(said), None)
                if agreed is not None and mine[j] is None:
                    fmt = next(f[j] for k, f in everyone if k[j] is not None)
                    cells[j] = _as_kind(table.columns[j], agreed, fmt)
                continue
            kinds = {k[0] for k in said}
            if "categorical" in kinds and (kinds == {"categorical", "numeric"} and decimal == "."
                                           and all(k[2] is None for k in said)):
                mixed.append(j)
            elif "categorical" in kinds:
                cells[j] = _analyse_text(table.columns[j])
            else:
                raise DataError(f"{table.source}: column {table.names[j]!r} ({j + 1}) is written "
                                "in different ways in different parts of the file ("
                                + ", ".join(sorted(_describe(k) for k in said)) + "); train it "
                                "without --distributed, or declare it with --categorical")
        # Numbers here, words there: counted over all ranks, as _analyse counts one column.
        counted = {j: D.parse_cells(table.columns[j].as_text()) for j in mixed}
        totals = self._all({j: (int(np.isfinite(v).sum()), len(bad)) for j, (v, bad) in counted.items()})
        for j in mixed:
            numbers, words = (sum(t[j][i] for t in totals) for i in (0, 1))
            if words <= numbers:
                cells[j] = D._Cells("numeric", values=counted[j][0], bad=counted[j][1])
            else:
                cells[j] = _analyse_text(table.columns[j])
        return cells


def _kind(c):
    """What decides how a column reads: its kind and its number or date format."""
    fmt = c.number_format
    return (c.kind, c.date_format, None if fmt is None else repr(sorted(fmt.items())))


def _describe(kind):
    what, date, number = kind
    return what + (f" {date}" if date else "") + (" with units or separators" if number else "")


def _analyse_text(col):
    """A column's cells as categories, as `data._analyse` reads text (not its `categorical`
    reading, which also writes numbers canonically)."""
    text = [s.strip() for s in col.as_text()]
    missing = np.fromiter((s.lower() in D.MISSING_TOKENS for s in text), bool, len(text))
    return D._Cells("categorical", missing, text=[("" if m else s) for s, m in zip(text, missing)])


def _as_kind(col, kind, number_format):
    """The cells of a column that are all missing here, as the kind the other ranks found."""
    what, date, _ = kind
    if what == "categorical":
        return _analyse_text(col)
    return D._Cells(what, values=np.full(len(col), np.nan), date_format=date,
                    number_format=number_format)


def _order_keys(v):
    """uint64 keys in the order of the float64 values (negative values: bits inverted)."""
    bits = v.view(np.uint64)
    return np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))


def _from_key(k):
    k = np.uint64(k)
    bits = k & ~np.uint64(1 << 63) if k >> np.uint64(63) else ~k
    return np.array([bits], np.uint64).view(np.float64)[0]
