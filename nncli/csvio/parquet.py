"""Parquet input (``.parquet``), read by row groups through pyarrow, the optional extra
``nncli[parquet]``: the same ``Table`` of columns a CSV gives, so everything after reading
(choosing columns, encoding, predicting) is shared.

Columns: integers and floats become numbers (a null is a missing cell, NaN); booleans
become the words true/false (a boolean column, as in a CSV); strings and everything else
(dates, decimals...) their text. Rows are numbered from 1 in messages (``file:row``).
The digest (``Table.sha256``) is that of the file's bytes.
"""

from __future__ import annotations

import os

import numpy as np

from nncli.csvio.compressed import PARQUET_MAGIC
from nncli.csvio.reader import file_sha256
from nncli.csvio.table import Column, Table, format_number
from nncli.errors import ConfigError, DataError

SUFFIXES = (".parquet", ".pq")


def is_parquet(source) -> bool:
    """True for a path that names a Parquet file (by its suffix or its first bytes)."""
    if not isinstance(source, (str, os.PathLike)) or source == "-":
        return False
    name = os.fspath(source)
    if name.lower().endswith(SUFFIXES):
        return True
    try:
        with open(name, "rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def _pyarrow(name):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{name}: reading Parquet needs pyarrow: pip install 'nncli[parquet]'") from None
    return pq


def _open(name):
    pq = _pyarrow(name)
    if os.path.isdir(name):
        raise DataError(f"{name}: is a directory, not a Parquet file")
    try:
        return pq.ParquetFile(name)
    except FileNotFoundError:
        raise DataError(f"{name}: cannot open: No such file or directory") from None
    except Exception as e:  # pyarrow's ArrowInvalid and friends: a damaged file
        raise DataError(f"{name}: not a readable Parquet file ({e})") from None


def _column(array, name, index, keep_text) -> Column:
    import pyarrow as pa
    import pyarrow.compute as pc
    t = array.type
    if pa.types.is_dictionary(t):
        array, t = array.cast(t.value_type), t.value_type
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and not keep_text:
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return Column(name, index, values=np.ascontiguousarray(values, np.float64))
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return Column(name, index, text=[format_number(v) for v in values.tolist()])
    if pa.types.is_boolean(t):
        return Column(name, index, text=["" if v is None else ("true" if v else "false")
                                         for v in array.to_pylist()])
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        array = pc.cast(array, pa.string())
    return Column(name, index, text=["" if v is None else v for v in array.to_pylist()])


def row_groups(source) -> list[int]:
    """The number of rows of each row group of a Parquet file."""
    md = _open(os.fspath(source)).metadata
    return [md.row_group(g).num_rows for g in range(md.num_row_groups)]


def iter_tables(source, *, chunk_rows=65536, keep_text=None, columns=None, use_columns=None,
                groups=None):
    """Tables of at most ``chunk_rows`` rows, one row group (or part of one) at a time;
    the last one carries the file's sha256. ``columns`` renames the file's columns.
    ``groups`` (a range of row-group numbers) reads those only, their rows numbered as in
    the whole file (one rank's shard, nncli.shards)."""
    name = os.fspath(source)
    pf = _open(name)
    groups = range(pf.num_row_groups) if groups is None else groups
    names = list(pf.schema_arrow.names)
    if columns is not None:
        if len(columns) != len(names):
            raise ConfigError(f"{name}: {len(columns)} column names were given but the file has "
                              f"{len(names)} columns")
        names = [str(c) for c in columns]
    if len(set(names)) != len(names):
        raise DataError(f"{name}: duplicate column names")
    keep = {k if isinstance(k, str) else names[k] for k in (keep_text or ())}
    # Parquet is stored by column: unused ones are not read at all (NaN in the Table)
    read = [j for j, n in enumerate(names)
            if use_columns is None or n in use_columns or n in keep]
    row = 1 + sum(pf.metadata.row_group(g).num_rows for g in range(groups[0] if groups else 0))
    pending = None
    try:
        # One row group in memory at a time (the unit Parquet is written and compressed in),
        # cut into chunks of at most chunk_rows.
        file_names = pf.schema_arrow.names
        batches = (b for g in groups
                   for b in pf.read_row_group(g, columns=[file_names[j] for j in read])
                   .to_batches(max_chunksize=chunk_rows))
        for batch in batches:
            if batch.num_rows == 0:
                continue
            at = {j: i for i, j in enumerate(read)}
            cols = [_column(batch.column(at[j]), n, j, n in keep) if j in at
                    else Column(n, j, values=np.full(batch.num_rows, np.nan))
                    for j, n in enumerate(names)]
            lines = np.arange(row, row + batch.num_rows, dtype=np.int64)
            row += batch.num_rows
            if pending is not None:
                yield pending
            pending = Table(list(names), cols, lines, name, ",", True, True, None)
    except (OSError, ValueError) as e:
        raise DataError(f"{name}: cannot read the Parquet data ({e})") from None
    if pending is None:
        raise DataError(f"{name}: has no rows")
    if groups is None or len(groups) == pf.num_row_groups:   # (a shard's caller hashes once)
        pending.sha256 = file_sha256(name)
    yield pending


def read_table(source, *, keep_text=None, columns=None, groups=None) -> Table:
    """The whole Parquet file (or its row ``groups``) as one Table."""
    parts = list(iter_tables(source, chunk_rows=1 << 20, keep_text=keep_text, columns=columns,
                             groups=groups))
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    cols = []
    for j, n in enumerate(first.names):
        pieces = [p.columns[j] for p in parts]
        if all(not c.is_text for c in pieces):
            cols.append(Column(n, j, values=np.concatenate([c.values for c in pieces])))
        else:
            cols.append(Column(n, j, text=[s for c in pieces for s in c.as_text()]))
    lines = np.concatenate([p.line_numbers for p in parts])
    return Table(first.names, cols, lines, first.source, ",", True, True, parts[-1].sha256)
