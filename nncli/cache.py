"""Build the training cache in one streaming pass over the data, without holding its rows.

The pass (``_Scan``) reads the source in chunks and, for each column used, keeps counts
(numbers, non-numbers, missing cells, distinct integers for the task), the text
vocabulary seen so far, and writes the cells to a temporary *raw store* beside the cache:
the number of each cell (NaN when not a number) and the code of its text (its index in the
column's vocabulary; −1 missing; −2 not yet needed, for a column that has held only
numbers). When the pass ends, the kinds and the task follow from the counts, by the rules
of `nncli.data` for a whole table. Then, over the raw store a window of rows at a time:

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
from nncli.errors import ConfigError, DataError

#: Options the cached rows depend on (besides the source): a change makes another cache.
KEY_OPTIONS = ("target", "features", "drop", "id", "task", "standardize", "impute",
               "val_split", "seed", "dtype", "sep", "no_header", "columns", "encoding")
#: After this many text cells and no number, a column's later text chunks are not parsed
#: as numbers cell by cell (the slow part of text): it is a text column.
_TEXT_SURE = 1000


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


# --------------------------------------------------------------------------- #
# The pass over the source
# --------------------------------------------------------------------------- #


class _ColumnScan:
    """What the pass learns about one used column."""

    def __init__(self, name, index):
        self.name, self.index = name, index
        self.numbers = self.bad = self.missing = 0
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

    def kind(self) -> str:
        """numeric, boolean or categorical, as `data._analyse` decides for the whole column."""
        if not self.text_mode or (self.bad <= self.numbers and (self.bad or self.numbers)):
            return "numeric"
        words = {s.lower() for s in self.vocab if s.lower() not in D.MISSING_TOKENS}
        if words and words <= D.BOOLEAN_WORDS.keys():
            return "boolean"
        return "categorical"


class _RawStore:
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


def _chunk_rows(budget, ncols):
    """Rows per chunk of the source: about a quarter of the budget at ~50 bytes a cell (a
    float64 and its share of the parser's buffers; text cells cost more, and are rarer)."""
    return int(min(1 << 16, max(256, budget // 4 // (50 * max(ncols, 1)))))


def _window_rows(budget, row_bytes):
    return int(max(64, budget // 8 // max(row_bytes, 1)))


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
    plan = D.choose_columns(first, target=config.get("target"), features=config.get("features"),
                            drop=config.get("drop"), id_column=config.get("id"),
                            task=config.get("task"))
    used = plan.feat_idx + plan.target_idx
    scans = [_ColumnScan(first.names[j], j) for j in used]
    raw = _RawStore(folder, os.path.basename(path), len(used))
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
        fit = _Fit(plan, scans, raw, config, first_source=data_path, budget=budget)
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


# --------------------------------------------------------------------------- #
# After the pass: kinds, rows, split, statistics, encoded rows
# --------------------------------------------------------------------------- #


class _Fit:
    def __init__(self, plan, scans, raw, config, first_source, budget):
        self.plan, self.scans, self.raw, self.config = plan, scans, raw, config
        self.source = first_source
        self.n_feat = len(plan.feat_idx)
        self.impute = config.get("impute")
        if self.impute is not None and self.impute not in D.IMPUTE_CHOICES:
            raise ConfigError(f"impute must be one of {', '.join(D.IMPUTE_CHOICES)}, not {self.impute!r}")
        self.wrows = _window_rows(budget, len(scans) * 20 + 8)
        self.kinds = [s.kind() for s in scans]
        self._check_cells()
        self.task = self._task()
        if raw.n == 0:
            raise DataError(f"{first_source}: has a header but no data rows")

    # -- kinds and the task ---------------------------------------------------------------
    def _where(self, line, s):
        return f"{self.source}:{line}: column {s.name!r} ({s.index + 1})"

    def _check_cells(self):
        for s, kind in zip(self.scans, self.kinds):
            if kind == "numeric":
                if s.bad:
                    line, text = s.first_bad
                    more = f" ({s.bad - 1} more non-numbers in this column)" if s.bad > 1 else ""
                    raise DataError(f"{self._where(line, s)}: cannot read {text!r} as a number{more}")
                if s.first_big is not None:
                    line, v = s.first_big
                    raise DataError(f"{self._where(line, s)}: {v!r} is too large "
                                    f"(at most {D.FLOAT32_MAX:.4g} in magnitude)")

    def _task(self):
        task, targets = self.config.get("task"), self.scans[self.n_feat:]
        if task == "reconstruct":
            return task
        if len(targets) > 1:
            if task == "classification":
                raise ConfigError("classification takes one target column; "
                                  "several targets mean multi-output regression")
            task = "regression"
        for s, kind in zip(targets, self.kinds[self.n_feat:]):
            if kind != "numeric" and (task == "regression" or len(targets) > 1):
                raise DataError(f"{self.source}: column {s.name!r}: the target holds text; "
                                "a regression target must be numeric")
        if task is None:
            s, kind = targets[0], self.kinds[self.n_feat]
            non_missing = s.numbers
            task = "classification" if kind != "numeric" or (
                s.all_int and non_missing and len(s.distinct) <= D.MAX_INTEGER_CLASSES
                and len(s.distinct) <= non_missing / 2) else "regression"
        return task

    def _windows(self):
        for lo in range(0, self.raw.n, self.wrows):
            hi = min(lo + self.wrows, self.raw.n)
            yield lo, hi, *self.raw.window(lo, hi)

    def _resolve_codes(self, k, values, codes):
        """Codes of column k with the deferred ones (−2: numbers) filled in."""
        if codes is None:
            return self.scans[k].codes_of_numbers(values[:, k])
        c = codes[:, k]
        deferred = c == -2
        if deferred.any():
            c = c.copy()
            c[deferred] = self.scans[k].codes_of_numbers(values[deferred, k])
        return c

    def _missing(self, k, values, codes):
        if self.kinds[k] == "numeric":
            return ~np.isfinite(values[:, k])
        if self.kinds[k] == "boolean":
            return self._resolve_codes(k, values, codes) < 0
        return self._resolve_codes(k, values, codes) < 0

    # -- rows, labels, split -------------------------------------------------------------
    def rows(self):
        """keep (bool per raw row or None), raw label per kept row (float64 or code)."""
        n_feat, impute = self.n_feat, self.impute
        keep = np.ones(self.raw.n, bool)
        label_parts = []
        classify = self.task == "classification"
        for s in self.scans:
            s.missing_final = 0
        for lo, hi, values, codes, lines in self._windows():
            complete = np.isfinite(values).all(axis=0)
            for k, s in enumerate(self.scans):
                if self.kinds[k] == "numeric" and complete[k]:
                    continue
                miss = self._missing(k, values, codes)
                s.missing_final += int(miss.sum())
                if not miss.any():
                    continue
                is_target = k >= n_feat
                if impute == "drop":
                    keep[lo:hi] &= ~miss
                elif is_target or impute is None:
                    what = "target value" if is_target else "value"
                    fix = "use --impute drop to drop such rows" if is_target else "use --impute mean|median|drop"
                    raise DataError(f"{self._where(int(lines[np.argmax(miss)]), s)}: missing {what}; "
                                    f"fill it in, or {fix}")
            if classify:
                k = n_feat
                part = values[:, k] if self.kinds[k] == "numeric" else \
                    self._resolve_codes(k, values, codes).astype(np.float64)
                label_parts.append(part[keep[lo:hi]])
        if not keep.any():
            raise DataError(f"{self.source}: no row is left after dropping rows with missing values")
        self.keep = None if keep.all() else keep
        self.n_kept = int(keep.sum())
        self.classes = self.labels = None
        if classify:
            raw_labels = np.concatenate(label_parts)
            del label_parts
            uniq, labels = np.unique(raw_labels, return_inverse=True)
            del raw_labels
            s = self.scans[n_feat]
            if self.kinds[n_feat] == "numeric":
                classes = [D.format_number(x) for x in uniq.tolist()]
                order = np.arange(len(uniq))
            else:   # codes → their text, sorted as text
                words = {c: w for w, c in s.vocab.items()}
                text = [words[int(c)] for c in uniq.tolist()]
                order = np.argsort(np.array(text, dtype=object), kind="stable")
                classes = [text[i] for i in order]
                rank = np.empty(len(order), np.int64)
                rank[order] = np.arange(len(order))
                labels = rank[labels]
            if len(classes) < 2:
                raise DataError(f"{self.source}: the target column {s.name!r} has only one class "
                                f"({classes[0]!r}); classification needs at least two")
            self.classes, self.labels = classes, labels.astype(np.int64)
        fraction = self.config.get("val_split") or 0.0
        if fraction:
            self.train_rows, self.val_rows = D.validation_split(self.n_kept, fraction,
                                                                self.config.get("seed"), self.labels)
        else:
            self.train_rows, self.val_rows = np.arange(self.n_kept, dtype=np.int64), np.empty(0, np.int64)

    # -- statistics over the training rows ------------------------------------------------
    def _fit_windows(self):
        """(values, codes, training mask) of the kept rows, a window at a time."""
        is_train = np.zeros(self.n_kept, bool)
        is_train[self.train_rows] = True
        at = 0
        for lo, hi, values, codes, _ in self._windows():
            if self.keep is not None:
                kw = self.keep[lo:hi]
                values, codes = values[kw], (None if codes is None else codes[kw])
            m = len(values)
            yield values, codes, is_train[at:at + m]
            at += m

    def statistics(self):
        """Per used column: count/mean/M2 over the training rows (numbers), code counts over
        kept and training rows (text); the median's values when asked for."""
        U = len(self.scans)
        n = np.zeros(U)
        mean = np.zeros(U)
        m2 = np.zeros(U)
        counts_kept = [np.zeros(len(s.vocab), np.int64) for s in self.scans]
        counts_fit = [np.zeros(len(s.vocab), np.int64) for s in self.scans]
        median_parts = [[] for _ in range(U)]
        shift, windows, first = np.zeros(U), np.zeros(U, np.int64), [None] * U
        numeric = [k for k in range(U) if self.kinds[k] == "numeric"]
        for values, codes, train in self._fit_windows():
            every = bool(train.all())
            # each column's training values contiguous, as numpy reduces a column in memory
            cols = np.ascontiguousarray((values if every else values[train])[:, numeric].T)
            for k in range(U):
                if self.kinds[k] == "categorical":
                    c = self._resolve_codes(k, values, codes)
                    counts_kept[k] += np.bincount(c[c >= 0], minlength=len(counts_kept[k]))
                    ct = c if every else c[train]
                    counts_fit[k] += np.bincount(ct[ct >= 0], minlength=len(counts_fit[k]))
                    continue
                if self.kinds[k] == "numeric":
                    v = cols[numeric.index(k)]
                else:
                    v = self._numbers(k, values, codes)
                    v = v if every else v[train]
                if not np.isfinite(v).all():
                    v = v[np.isfinite(v)]
                if self.impute == "median":
                    median_parts[k].append(v.copy())
                if not len(v):
                    continue
                if n[k] == 0:
                    # numpy's own numbers for this window: the answer when it is the only one
                    shift[k] = v[0]
                    mb = float(np.mean(v))
                    d = v - mb
                    first[k] = (len(v), mb, float(np.sum(d * d)))
                windows[k] += 1
                # Chan et al.'s pairwise merge of (count, mean, M2), each window's by numpy,
                # on values less a shift (the column's first value): a large offset then
                # costs no precision (1e6 + noise keeps its std to the last bits).
                b = v - shift[k]
                nb, mb = len(b), float(np.mean(b))
                d = b - mb
                m2b = float(np.sum(d * d))
                if n[k] == 0:
                    n[k], mean[k], m2[k] = nb, mb, m2b
                else:
                    tot = n[k] + nb
                    delta = mb - mean[k]
                    mean[k] += delta * nb / tot
                    m2[k] += m2b + delta * delta * n[k] * nb / tot
                    n[k] = tot
        for k in range(U):
            if windows[k] == 1:
                n[k], mean[k], m2[k] = first[k]
            elif windows[k] > 1:
                mean[k] += shift[k]
        self.stats = {"n": n, "mean": mean, "m2": m2, "counts_kept": counts_kept,
                      "counts_fit": counts_fit, "median": median_parts}

    def _numbers(self, k, values, codes):
        """Column k of a window as numbers (booleans as 0/1)."""
        if self.kinds[k] != "boolean":
            return values[:, k]
        c = self._resolve_codes(k, values, codes)
        words = {code: D.BOOLEAN_WORDS.get(w.lower(), np.nan) for w, code in self.scans[k].vocab.items()}
        table = np.array([words[i] for i in range(len(words))] + [np.nan], np.float64)
        return table[c]   # −1 (missing) reads the last entry, NaN

    def schema(self) -> D.Schema:
        st, standardize = self.stats, self.config.get("standardize", True)
        names, impute = self.plan.names, self.impute
        inputs = []
        for k, s in enumerate(self.scans[:self.n_feat]):
            if self.kinds[k] == "categorical":
                words = {c: w for w, c in s.vocab.items()}
                present = [words[c] for c in np.flatnonzero(st["counts_kept"][k]).tolist()]
                if not present:
                    raise DataError(f"{self.source}: column {s.name!r} ({s.index + 1}) has no values")
                vocab = sorted(present)
                fill = None
                if impute in ("mean", "median"):
                    counts = st["counts_fit"][k] if st["counts_fit"][k].any() else st["counts_kept"][k]
                    best = {words[c]: int(counts[c]) for c in np.flatnonzero(counts).tolist()}
                    fill = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
                inputs.append(D.InputColumn(s.name, "categorical", vocabulary=vocab, impute=fill))
                continue
            if st["n"][k] == 0:
                raise DataError(f"{self.source}: column {s.name!r} ({s.index + 1}) has no values"
                                + (" in the training rows" if len(self.val_rows) else ""))
            fill = None
            if impute == "median":
                fill = float(np.median(np.concatenate(st["median"][k])))
            elif impute == "mean":
                fill = float(st["mean"][k])
            if not standardize:
                mean, std = 0.0, 1.0
            elif fill is not None:   # the std of the column with its gaps filled, as in memory
                mean, std = self._with_fill(k, fill)
            else:
                mean, std = self._mean_std(k)
            inputs.append(D.InputColumn(s.name, self.kinds[k], mean=mean, std=std, impute=fill))
        plan = self.plan
        schema = D.Schema(self.task, list(names), inputs, [], has_header=not self.config.get("no_header"),
                          id_column=None if plan.id_idx is None else names[plan.id_idx],
                          impute=impute, standardize=bool(standardize))
        if self.task == "reconstruct":
            schema.target_names = [ic.name for ic in inputs]
        elif self.task == "classification":
            schema.target_names = [names[plan.target_idx[0]]]
            schema.target_kind = "numeric" if self.kinds[self.n_feat] == "numeric" else "categorical"
            schema.classes = self.classes
        else:
            schema.target_names = [names[j] for j in plan.target_idx]
            schema.target_kind = "numeric"
            stats = [self._mean_std(k) if standardize else (0.0, 1.0)
                     for k in range(self.n_feat, len(self.scans))]
            schema.target_mean = [m for m, _ in stats]
            schema.target_std = [s for _, s in stats]
        return schema

    def _mean_std(self, k):
        n, mean, m2 = self.stats["n"][k], self.stats["mean"][k], self.stats["m2"][k]
        std = float(np.sqrt(m2 / n)) if n else 0.0
        return float(mean), (std if std > 0 and np.isfinite(std) else 1.0)

    def _with_fill(self, k, fill):
        """Mean and std once the missing training cells hold `fill` (the median)."""
        n, mean, m2 = self.stats["n"][k], self.stats["mean"][k], self.stats["m2"][k]
        n_fit = len(self.train_rows)
        extra = n_fit - n
        if extra <= 0:
            return self._mean_std(k)
        tot = n + extra
        delta = fill - mean
        mean2 = mean + delta * extra / tot
        m2b = m2 + delta * delta * n * extra / tot
        std = float(np.sqrt(m2b / tot))
        return float(mean2), (std if std > 0 and np.isfinite(std) else 1.0)

    # -- the encoded rows ----------------------------------------------------------------
    def write(self, writer) -> dict:
        self.rows()
        self.statistics()
        schema = self.schema()
        dtype = np.dtype(self.config.get("dtype") or "float32")
        same_xy = self.task == "reconstruct"
        F, O = schema.n_features, schema.n_outputs
        n, size = self.n_kept, dtype.itemsize
        writer.add("X", n * F * size)
        if not same_xy:
            writer.add("Y", n * O * size)
        writer.add("train_rows", len(self.train_rows) * 8)
        writer.add("val_rows", len(self.val_rows) * 8)
        # A regression's validation targets in their own units (float64, as read): the
        # run's RMSE/MAE/R² in the target's units come from them, as in memory.
        regression = self.task == "regression"
        if regression:
            writer.add("val_targets", len(self.val_rows) * (O * 8))
            is_val = np.zeros(self.n_kept, bool)
            is_val[self.val_rows] = True
        at = 0
        for values, codes, train in self._fit_windows():   # X and Y in one pass
            writer.write("X", self._encode_x(values, codes, schema).astype(dtype, copy=False))
            if not same_xy:
                writer.write("Y", self._encode_y(values, at, schema).astype(dtype, copy=False))
            if regression:
                writer.write("val_targets", np.ascontiguousarray(
                    values[is_val[at:at + len(values)], self.n_feat:]))
            at += len(values)
        writer.write("train_rows", self.train_rows.astype(np.int64))
        writer.write("val_rows", self.val_rows.astype(np.int64))
        return {"dtype": dtype.name, "n_rows": self.n_kept, "n_features": F, "n_outputs": O,
                "same_xy": same_xy, "n_train": len(self.train_rows), "n_val": len(self.val_rows),
                "n_source_rows": self.raw.n, "schema": schema.to_dict(), "task": self.task,
                "stats": self._stats_doc(schema)}

    def _encode_x(self, values, codes, schema):
        X = (np.empty((len(values), schema.n_features), np.float64) if any(
            ic.kind == "categorical" for ic in schema.inputs) else None)
        at, num_cols, num_at, means, stds = 0, [], [], [], []
        for k, ic in enumerate(schema.inputs):
            if ic.kind == "categorical":
                s = self.scans[k]
                index = {w: i for i, w in enumerate(ic.vocabulary)}
                words = {c: w for w, c in s.vocab.items()}
                fill = -1 if ic.impute is None else index[ic.impute]
                lut = np.array([index.get(words[c], -1) for c in range(len(words))] + [fill], np.int64)
                col = lut[self._resolve_codes(k, values, codes)]
                block = X[:, at:at + ic.width]
                block[:] = 0.0
                hit = col >= 0
                block[np.flatnonzero(hit), col[hit]] = 1.0
            else:
                num_cols.append(self._numbers(k, values, codes) if ic.kind == "boolean" else None)
                num_at.append((k, at, ic))
            at += ic.width
        if num_at:
            # all number columns at once: (v − mean) / std element by element, the same IEEE
            # operations as data._numbers_into, so the same bits
            V = values[:, [k for k, _, _ in num_at]]   # a row-major copy
            for i, b in enumerate(num_cols):
                if b is not None:
                    V[:, i] = b
            ok = np.isfinite(V)
            if not ok.all():
                fills = np.array([np.nan if ic.impute is None else ic.impute for _, _, ic in num_at])
                V = np.where(ok, V, fills)
            V -= np.array([ic.mean for _, _, ic in num_at])
            V /= np.array([ic.std for _, _, ic in num_at])
            if len(num_at) == schema.n_features:   # numbers only: V is X
                return V
            X[:, [a for _, a, _ in num_at]] = V
        return X

    def _encode_y(self, values, at, schema):
        n = len(values)
        if self.task == "classification":
            Y = np.zeros((n, len(schema.classes)), np.float64)
            Y[np.arange(n), self.labels[at:at + n]] = 1.0
            return Y
        Y = np.empty((n, len(schema.target_names)), np.float64)
        for t in range(Y.shape[1]):
            v = values[:, self.n_feat + t]
            mean, std = schema.target_mean[t], schema.target_std[t]
            if (mean, std) == (0.0, 1.0):
                Y[:, t] = v
            else:
                np.subtract(v, mean, out=Y[:, t])
                Y[:, t] /= std
        return Y

    def _stats_doc(self, schema):
        """The header's per-column statistics: kind, missing cells, mean/std, class counts."""
        cols = []
        for k, s in enumerate(self.scans):
            d = {"name": s.name, "kind": self.kinds[k], "missing": int(getattr(s, "missing_final", 0))}
            if self.kinds[k] != "categorical":
                d["count"] = int(self.stats["n"][k])
                d["mean"], d["std"] = self._mean_std(k)
            cols.append(d)
        out = {"columns": cols}
        if self.labels is not None:
            out["class_counts"] = dict(zip(schema.classes, np.bincount(
                self.labels, minlength=len(schema.classes)).tolist()))
        return out
