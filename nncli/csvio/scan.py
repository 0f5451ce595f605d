"""The entry points: read a whole CSV source, or stream it in chunks of rows."""

from __future__ import annotations

import re

import numpy as np

from nncli.csvio import parquet
from nncli.csvio.reader import Reader, detect_separator, skip_records, slow_rows
from nncli.csvio.sink import Sink, estimate_rows
from nncli.csvio.table import Column, Table
from nncli.errors import ConfigError, DataError

_NOT_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


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


def _scan(source, *, sep, header, columns, encoding, keep_text, max_rows, use_columns=None):
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
    reader = Reader(source, encoding)
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
        head = skip_records(data, start, end, 64) if nul < 0 else end
        text = reader.decode(data, start, head, line0)
        if sep is None:
            sep = detect_separator(text)
        rows, starts, consumed = slow_rows(text, line0, sep, name, None, limit=1)
        del text
        if not rows:
            raise DataError(f"{name}: the file is empty")
        ncols = len(rows[0])
        if header:
            names = [c.strip() for c in rows[0]]
            _check_names(names, name, starts[0])
            if columns is not None:
                if len(columns) != ncols:  # the names asked for do not fit the data: usage
                    raise ConfigError(
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
                raise ConfigError(
                    f"{name}:{starts[0]}: {len(columns)} column names were given but the first row has "
                    f"{ncols} fields"
                )
            names = columns
        else:
            names = [f"c{j + 1}" for j in range(ncols)]
        named = header or columns is not None
        keep = _resolve_keep(keep_text, names)
        skip = set()
        if use_columns is not None and named:   # by name only: positions are matched later
            skip = {j for j, n in enumerate(names) if n not in use_columns and j not in keep}
        yield ("header", names, sep, named, reader)

        piece = (data, start, end, line0)
        del first, data
        sink = None
        while piece is not None:
            data, pos, end, line = piece
            piece = None
            while pos < end:
                if sink is None:
                    cap = estimate_rows(reader, data, pos, end)
                    sink = Sink(names, keep, sep, reader, max_rows,
                                 cap if max_rows is None else min(cap, max_rows), skip)
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


def read_options(settings):
    """The keyword arguments of `read_csv` from stored CSV settings (a model's training
    config, or a command's options): sep ('tab' or '\\t' for a tab), no_header, columns,
    encoding. One reading of them for training, resuming and scoring the held-out rows."""
    sep = settings.get("sep")
    return {"sep": "\t" if sep in ("\\t", "tab") else sep, "header": not settings.get("no_header"),
            "columns": settings.get("columns") or None,
            "encoding": settings.get("encoding") or "utf-8"}


def read_csv(source, *, sep=None, header=True, columns=None, encoding="utf-8",
             keep_text=None, header_only_ok=False) -> Table:
    """Read a whole CSV source into a :class:`Table`.

    ``source`` is a path, ``'-'`` (standard input) or a binary file object.
    ``sep`` is detected among ``,`` ``;`` and tab unless given. With
    ``header=False`` the columns are named by ``columns`` or ``c1..cn``.
    ``keep_text`` lists columns (names or indices) whose exact text is kept
    even when they hold numbers. Raises DataError for anything wrong with the
    data, naming file and line; a header without rows too, unless ``header_only_ok``
    (then the Table has no rows: a loss log that has not logged an epoch yet).
    """
    if parquet.is_parquet(source):
        return parquet.read_table(source, keep_text=keep_text, columns=columns)
    scan = _scan(source, sep=sep, header=header, columns=columns, encoding=encoding,
                 keep_text=keep_text, max_rows=None)
    _, names, sep, named, reader = next(scan)
    got = next(scan, None)
    if got is None:
        if header and header_only_ok:
            for _ in scan:
                pass
            cols = [Column(n, j, values=np.empty(0)) for j, n in enumerate(names)]
            return Table(names, cols, np.empty(0, np.int64), reader.name, sep, True, named,
                         reader.sha256)
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    _, cols, lines = got
    for _ in scan:  # runs the generator to its end (closes the file, sets the digest)
        pass
    return Table(names, cols, lines, reader.name, sep, bool(header), named, reader.sha256)


def iter_csv_chunks(source, *, sep=None, header=True, columns=None, chunk_rows=65536,
                    encoding="utf-8", keep_text=None, on_bytes=None, use_columns=None):
    """Yield Tables of at most ``chunk_rows`` rows, reading incrementally.

    Memory stays bounded by the chunk whatever the size of the input. Every
    chunk has the same names and separator; whether a column holds numbers or
    text is decided per chunk (``keep_text`` forces text). The last Table's
    ``sha256`` is set to the digest of the whole input. Header-only input
    raises DataError, as in :func:`read_csv`. ``on_bytes(read, total)`` (total None when
    unknown) is told, per chunk, how many bytes of the source as stored were read. With
    ``use_columns`` (names), the other columns of a file with a header are not read: they
    hold NaN (predict and evaluate skip the text they do not use). A Parquet file (``.parquet``) is read by row
    groups (:mod:`nncli.csvio.parquet`); compressed CSV is decompressed as it is read.
    """
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, not {chunk_rows!r}")
    if parquet.is_parquet(source):
        yield from parquet.iter_tables(source, chunk_rows=chunk_rows, keep_text=keep_text,
                                       columns=columns, use_columns=use_columns)
        return
    scan = _scan(source, sep=sep, header=header, columns=columns, encoding=encoding,
                 keep_text=keep_text, max_rows=chunk_rows, use_columns=use_columns)
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
        if on_bytes is not None:
            on_bytes(reader.raw_position(), reader.raw_size)
    if pending is None:
        raise DataError(f"{reader.name}: has a header but no data rows" if header
                        else f"{reader.name}: the file is empty")
    pending.sha256 = reader.sha256
    yield pending
