"""Build the training cache in one streaming pass over the data, without holding its rows.

The pass (`nncli.cache_scan`) reads the source in chunks and, for each column used, keeps counts
(numbers, non-numbers, missing cells, distinct integers for the task), the text
vocabulary seen so far, and writes the cells to a temporary *raw store* beside the cache:
the number of each cell (NaN when not a number) and the code of its text (its index in the
column's vocabulary; −1 missing; −2 not yet needed, for a column that has held only
numbers). When the pass ends, the kinds and the task follow from the counts, by the rules
of `nncli.data` for a whole table. Then (`nncli.cache_fit`), over the raw store a window of
rows at a time:

1. the missing cells give the rows kept (``impute='drop'``) or the error naming the line;
2. the kept rows' classes give each row its label, and `data.validation_split` chooses the
   held-out rows by row index, as in memory, from the labels alone;
3. statistics over the training rows only: mean and variance merged across windows by
   Chan's pairwise update (each window's by numpy), so a single window gives numpy's own
   numbers bit for bit; vocabularies over every kept row; class counts, missing counts;
4. the encoded rows (standardised numbers, one-hot categories, targets) in the trained
   dtype, written to the cache (`nncli.cachefile`), which is then moved into place.

Peak memory: one chunk of the source, one window of the raw store, and arrays of one
number per row (the labels, the kept rows and the split: 8–24 bytes a row).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from nncli import data as D
from nncli.cachefile import ALIGN, CacheFile, CacheWriter, open_cache, source_identity
from nncli.csvio import iter_csv_chunks, read_options
from nncli.cache_fit import Fit
from nncli.cache_scan import ColumnScan, RawStore

#: Options the cached rows depend on (besides the source): a change makes another cache.
KEY_OPTIONS = ("target", "features", "drop", "id", "task", "standardize", "impute",
               "val_split", "seed", "dtype", "sep", "no_header", "columns", "encoding",
               "dates", "decimal", "categorical", "max_categories")


def cache_key(config) -> str:
    opts = {k: config.get(k) for k in KEY_OPTIONS}
    return hashlib.sha256(json.dumps(opts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_path(data_path, config, cache_dir=None) -> str:
    """Where the cache of `data_path` with these options lives: DIR/NAME-KEY.nncache, DIR
    being --cache, else a `.nncli-cache` folder beside the data, else (a read-only folder)
    ~/.cache/nncli."""
    folder = cache_dir
    if folder is None:
        beside = os.path.dirname(os.path.abspath(data_path))
        if os.access(beside, os.W_OK):
            folder = os.path.join(beside, ".nncli-cache")
        else:   # read-only data: the user's cache folder
            folder = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                  "nncli")
    # the folder's hash too: two data files of one name share a --cache DIR without a clash
    where = hashlib.sha256(os.path.abspath(data_path).encode()).hexdigest()[:8]
    return os.path.join(folder, f"{os.path.basename(data_path)}-{where}-{cache_key(config)}.nncache")


def get_cache(data_path, config, *, cache_dir=None, budget=256 << 20, progress=None):
    """``(CacheFile, note)``: the valid cache of this data and these options, built when it is
    missing, stale or damaged. `note` says which ('reused', 'built (none yet)'...)."""
    path = cache_path(data_path, config, cache_dir)
    key = cache_key(config)
    identity = source_identity(data_path)
    cache, why = open_cache(path, key, identity)
    if cache is not None:
        return cache, "reused"
    return build_cache(data_path, config, path, key, identity, budget=budget,
                       progress=progress), f"built ({why})"


def _chunk_rows(budget, ncols):
    """Rows per chunk of the source: about a quarter of the budget at ~50 bytes a cell (a
    float64 and its share of the parser's buffers; text cells cost more, and are rarer)."""
    return int(min(1 << 16, max(256, budget // 4 // (50 * max(ncols, 1)))))


def _plan(first, config) -> D.ColumnPlan:
    """The columns' roles, from the first chunk's names; their kinds are decided after the
    pass (`cache_fit.Fit`), from the whole file, by the options kept in ``plan.options``."""
    from nncli.pipeline import column_options
    opts = column_options(config)
    decimal = D.check_column_options(first.sep, task=config.get("task"), dates=opts["dates"],
                                     decimal=opts["decimal"], max_categories=opts["max_categories"])
    features = config.get("features")
    target_idx, feat_idx, id_idx = D.column_roles(
        first, target=config.get("target"), features=features, drop=config.get("drop"),
        id_column=config.get("id"), task=config.get("task"))
    declared = D.declared_categorical(first, opts["categorical"], feat_idx)
    return D.ColumnPlan(list(first.names), target_idx, feat_idx, id_idx, {}, None, [], {
        "max_categories": opts["max_categories"], "dates": opts["dates"], "decimal": decimal,
        "declared": declared, "features_given": features is not None})


def build_cache(data_path, config, path, key, identity, *, budget, progress=None):
    """One pass over `data_path`, then the fit and the encoded rows into `path` (atomic)."""
    read = read_options(config)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    where = [0, None]   # bytes of the source read, and its size (progress)

    def on_bytes(done, total):
        where[:] = [done, total]

    chunks = iter_csv_chunks(data_path, chunk_rows=_chunk_rows(budget, 64), on_bytes=on_bytes,
                             **read)
    first = next(chunks)
    plan = _plan(first, config)
    used = plan.feat_idx + plan.target_idx
    declared = plan.options["declared"]
    scans = [ColumnScan(first.names[j], j, canonical=j in declared) for j in used]
    raw = RawStore(folder, os.path.basename(path), len(used))
    writer = None
    try:
        table, sha256, size = first, None, identity["size"]
        del first
        while table is not None:
            vals = np.empty((table.n_rows, len(used)), np.float64)
            codes = None
            for k, (j, s) in enumerate(zip(used, scans)):
                vals[:, k], c = s.add(table.columns[j], table.line_numbers)
                if c is not None:
                    if codes is None:
                        codes = np.full((table.n_rows, len(used)), -2, np.int32)
                    codes[:, k] = c
            raw.append(vals, codes, table.line_numbers)
            sha256 = table.sha256
            del vals, codes, table
            if progress is not None:
                progress(raw.n, time.perf_counter() - t0, *where)
            table = next(chunks, None)
        raw.done_writing()
        fit = Fit(plan, scans, raw, config, first_source=data_path, budget=budget)
        writer = CacheWriter(path)
        header = fit.write(writer)
        header.update(key=key, source={"identity": identity, "sha256": sha256, "bytes": size},
                      config={k: config.get(k) for k in KEY_OPTIONS}, build_seconds=time.perf_counter() - t0)
        meta = writer.commit(header)
        writer = None
        return CacheFile(path, meta, ALIGN)   # just written and synced: no second CRC pass
    finally:
        raw.close()
        if writer is not None:
            writer.abort()
