"""After the pass (`nncli.cache_scan`): kinds and task, kept rows, labels, the validation split,
statistics over the training rows, and the encoded rows written to the cache file."""

from __future__ import annotations

import numpy as np

from nncli import data as D
from nncli.columns import DATE_PARTS, date_parts
from nncli.errors import ConfigError, DataError


def _window_rows(budget, row_bytes):
    return int(max(64, budget // 8 // max(row_bytes, 1)))


def _sorted_counts(words, counts):
    """(sorted values, counts) of the codes seen (counts per code, words in code order), as
    `np.unique(..., return_counts=True)` gives them in memory."""
    seen = np.flatnonzero(counts)
    order = sorted(seen.tolist(), key=lambda c: words[c])
    return [words[c] for c in order], counts[order]


class _Moments:
    """Count, mean and M2 of a column's values seen a window at a time: each window's by
    numpy, merged by Chan et al.'s pairwise update on values less a shift (the first value),
    so a large offset costs no precision (1e6 + noise keeps its std to the last bits); a
    single window gives numpy's own numbers bit for bit."""

    def __init__(self):
        self.n, self.mean, self.m2, self.shift, self.windows, self.first = 0, 0.0, 0.0, 0.0, 0, None

    def add(self, v):
        if not len(v):
            return
        if self.n == 0:   # numpy's own numbers for this window: the answer when it is the only one
            self.shift = v[0]
            mb = float(np.mean(v))
            d = v - mb
            self.first = (len(v), mb, float(np.sum(d * d)))
        self.windows += 1
        b = v - self.shift
        nb, mb = len(b), float(np.mean(b))
        d = b - mb
        m2b = float(np.sum(d * d))
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
        else:
            tot = self.n + nb
            delta = mb - self.mean
            self.mean += delta * nb / tot
            self.m2 += m2b + delta * delta * self.n * nb / tot
            self.n = tot

    def result(self):
        """(count, mean, M2)."""
        if self.windows == 1:
            return self.first
        return (self.n, self.mean + self.shift, self.m2) if self.windows else (0, 0.0, 0.0)


class Fit:
    def __init__(self, plan, scans, raw, config, first_source, budget):
        self.plan, self.scans, self.raw, self.config = plan, scans, raw, config
        self.source = first_source
        self.n_feat = len(plan.feat_idx)
        self.impute = config.get("impute")
        if self.impute == "none":   # the CLI's word for no imputation
            self.impute = None
        if self.impute is not None and self.impute not in D.IMPUTE_CHOICES:
            raise ConfigError(f"impute must be one of {', '.join(D.IMPUTE_CHOICES)}, not {self.impute!r}")
        self.wrows = _window_rows(budget, len(scans) * 20 + 8)
        self._decide_kinds()
        self._check_cells()
        self.task = self._task()
        if raw.n == 0:
            raise DataError(f"{first_source}: has a header but no data rows")

    # -- kinds and the task ---------------------------------------------------------------
    def _decide_kinds(self):
        """Each column's kind as in memory (`ColumnScan.decide`); identifier-like text inputs
        left out (kind 'ignored') unless --features named them, as `data.choose_columns`."""
        opts = self.plan.options
        declared = opts.get("declared", set())
        self.kinds = [s.decide(opts.get("decimal", "."), opts.get("dates", "expand") if k < self.n_feat
                               else "none", s.index in declared)
                      for k, s in enumerate(self.scans)]
        self.ignored = []
        if not opts.get("features_given"):
            found = {k: self.scans[k].identifier() for k in range(self.n_feat)
                     if self.kinds[k] == "categorical" and self.scans[k].index not in declared}
            self.ignored = D.identifier_columns(found, self.n_feat)
            for k, _ in self.ignored:
                self.kinds[k] = "ignored"
        #: the scans that are inputs, in the schema's order
        self.input_scans = [k for k in range(self.n_feat) if self.kinds[k] != "ignored"]

    def _where(self, line, s):
        return f"{self.source}:{line}: column {s.name!r} ({s.index + 1})"

    def _check_cells(self):
        for s, kind in zip(self.scans, self.kinds):
            if kind == "numeric" and s.number_format is None:
                if s.bad:
                    line, text = s.first_bad
                    more = f" ({s.bad - 1} more non-numbers in this column)" if s.bad > 1 else ""
                    raise DataError(f"{self._where(line, s)}: cannot read {text!r} as a number{more}")
                if s.first_big is not None:
                    line, v = s.first_big
                    raise DataError(f"{self._where(line, s)}: {v!r} is too large "
                                    f"(at most {D.FLOAT32_MAX:.4g} in magnitude)")

    def _task(self):
        targets = self.scans[self.n_feat:]
        task = D.task_for_targets(self.config.get("task"), len(targets))
        if task == "reconstruct":
            return task
        for s, kind in zip(targets, self.kinds[self.n_feat:]):
            if kind != "numeric" and (task == "regression" or len(targets) > 1):
                raise DataError(f"{self.source}: column {s.name!r}: the target holds text; "
                                "a regression target must be numeric")
        if task is None:
            s, kind = targets[0], self.kinds[self.n_feat]
            non_missing, all_int, distinct = s.numbers, s.all_int, s.distinct
            if s.lut is not None:   # numbers written with units: the values of its text cells
                v = s.lut[np.isfinite(s.lut)]
                non_missing = s.rows - s.missing
                all_int = all_int and bool(np.all(v == np.round(v)))
                distinct = distinct | set(np.unique(v).tolist())
            task = "classification" if kind != "numeric" or (
                all_int and non_missing and len(distinct) <= D.MAX_INTEGER_CLASSES
                and len(distinct) <= non_missing / 2) else "regression"
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
        if self.kinds[k] == "categorical":
            return self._resolve_codes(k, values, codes) < 0
        return ~np.isfinite(self._numbers(k, values, codes))

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
                if self.kinds[k] == "ignored" or (complete[k] and self.scans[k].lut is None
                                                  and self.kinds[k] == "numeric"):
                    continue
                miss = self._missing(k, values, codes)
                s.missing_final += int(miss.sum())
                if not miss.any():
                    continue
                is_target = k >= n_feat
                if impute == "drop" or (is_target and impute is not None):
                    keep[lo:hi] &= ~miss   # as in memory: a row without a target is left out
                elif is_target or impute is None:
                    what = "target value" if is_target else "value"
                    fix = "use --impute drop to drop such rows" if is_target else "use --impute mean|median|drop"
                    raise DataError(f"{self._where(int(lines[np.argmax(miss)]), s)}: missing {what}; "
                                    f"fill it in, or {fix}")
            if classify:
                k = n_feat
                part = self._numbers(k, values, codes) if self.kinds[k] == "numeric" else \
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
        """Per used column: count/mean/M2 over the training rows (numbers; dates as seconds),
        code counts over kept and training rows (text); the median's values when asked for
        (always for dates, whose gaps take the median)."""
        U = len(self.scans)
        moments = [_Moments() for _ in range(U)]
        counts_kept = [np.zeros(len(s.vocab), np.int64) for s in self.scans]
        counts_fit = [np.zeros(len(s.vocab), np.int64) for s in self.scans]
        median_parts = [[] for _ in range(U)]
        plain = [k for k in range(U) if self.kinds[k] == "numeric" and self.scans[k].lut is None]
        for values, codes, train in self._fit_windows():
            every = bool(train.all())
            # each column's training values contiguous, as numpy reduces a column in memory
            cols = np.ascontiguousarray((values if every else values[train])[:, plain].T)
            for k in range(U):
                if self.kinds[k] == "ignored":
                    continue
                if self.kinds[k] == "categorical":
                    c = self._resolve_codes(k, values, codes)
                    counts_kept[k] += np.bincount(c[c >= 0], minlength=len(counts_kept[k]))
                    ct = c if every else c[train]
                    counts_fit[k] += np.bincount(ct[ct >= 0], minlength=len(counts_fit[k]))
                    continue
                if k in plain:
                    v = cols[plain.index(k)]
                else:
                    v = self._numbers(k, values, codes)
                    v = v if every else v[train]
                if not np.isfinite(v).all():
                    v = v[np.isfinite(v)]
                if self.impute == "median" or (self.kinds[k] == "date" and self.impute == "mean"):
                    median_parts[k].append(v.copy())
                moments[k].add(v)
        n, mean, m2 = (np.array(a, np.float64) for a in zip(*(m.result() for m in moments)))
        self.stats = {"n": n, "mean": mean, "m2": m2, "counts_kept": counts_kept,
                      "counts_fit": counts_fit, "median": median_parts}

    def _date_statistics(self, k, fill):
        """``(stats, has_time, monthly)`` of date column k for `data.date_input`: each part's
        (mean, std) over the training dates, gaps filled with ``fill``."""
        parts = {p: _Moments() for p in DATE_PARTS}
        has_time, days_of_month = False, set()
        for values, codes, train in self._fit_windows():
            v = self._numbers(k, values, codes)[train]
            if fill is not None:
                v = np.where(np.isfinite(v), v, fill)
            v = v[np.isfinite(v)]
            if not len(v):
                continue
            for p, x in date_parts(v).items():
                parts[p].add(x)
            has_time = has_time or bool(np.any(v % 86400))
            days = v.astype("datetime64[s]").astype("datetime64[D]")
            days_of_month.update(np.unique(days - days.astype("datetime64[M]").astype("datetime64[D]"))
                                 .astype(np.int64).tolist())
        stats = {}
        for p, m in parts.items():
            count, mean, m2 = m.result()
            stats[p] = (mean, float(np.sqrt(m2 / count)) if count else 0.0)
        return stats, has_time, len(days_of_month) == 1

    def _numbers(self, k, values, codes):
        """Column k of a window as numbers: as read, or through the scan's table of its text
        cells (numbers with units or separators, dates as seconds, booleans as 0/1)."""
        return self.scans[k].as_numbers(values[:, k], None if codes is None else codes[:, k])

    def schema(self) -> D.Schema:
        st, standardize = self.stats, self.config.get("standardize", True)
        names, impute = self.plan.names, self.impute
        inputs = []
        cap = self.plan.options.get("max_categories", D.DEFAULT_MAX_CATEGORIES)
        for k in self.input_scans:
            s = self.scans[k]
            if self.kinds[k] == "categorical":
                words = np.array(list(s.vocab), dtype=object)   # code order
                kept, fitted = (_sorted_counts(words, n)
                                for n in (st["counts_kept"][k], st["counts_fit"][k]))
                if not len(kept[0]):
                    raise DataError(f"{self.source}: column {s.name!r} ({s.index + 1}) has no values")
                inputs.append(D.categorical_input(s.name, kept, fitted, cap, impute))
                continue
            if st["n"][k] == 0:
                raise DataError(f"{self.source}: column {s.name!r} ({s.index + 1}) has no values"
                                + (" in the training rows" if len(self.val_rows) else ""))
            fill = None
            if impute == "median" or (impute == "mean" and self.kinds[k] == "date"):
                fill = float(np.median(np.concatenate(st["median"][k])))
            elif impute == "mean":
                fill = float(st["mean"][k])
            # The missing-value input, by data.fit_schema's rule over the training rows.
            n_fit = len(self.train_rows)
            n_missing = n_fit - int(st["n"][k])
            indicator = (fill is not None and n_missing >= D.INDICATOR_MIN
                         and n_missing >= D.INDICATOR_SHARE * n_fit)
            if self.kinds[k] == "date":
                stats, has_time, monthly = self._date_statistics(k, fill)
                inputs.append(D.date_input(s.name, s.date_format, stats, has_time=has_time,
                                           monthly=monthly, fill=fill, indicator=indicator,
                                           standardize=standardize))
                continue
            if not standardize:
                mean, std = 0.0, 1.0
            elif fill is not None:   # the std of the column with its gaps filled, as in memory
                mean, std = self._with_fill(k, fill)
            else:
                mean, std = self._mean_std(k)
            inputs.append(D.InputColumn(s.name, self.kinds[k], mean=mean, std=std, impute=fill,
                                        indicator=bool(indicator), number_format=s.number_format))
        plan = self.plan
        schema = D.Schema(self.task, list(names), inputs, [], has_header=not self.config.get("no_header"),
                          id_column=None if plan.id_idx is None else names[plan.id_idx],
                          impute=impute, standardize=bool(standardize),
                          ignored=[{"name": self.scans[k].name, "reason": why} for k, why in self.ignored])
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
            formats = [s.number_format for s in self.scans[self.n_feat:]]
            schema.target_format = formats if any(formats) else None   # as from_dict reads it
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
                writer.write("Y", self._encode_y(values, codes, at, schema).astype(dtype, copy=False))
            if regression:
                targets = np.column_stack([self._numbers(k, values, codes)
                                           for k in range(self.n_feat, len(self.scans))])
                writer.write("val_targets", np.ascontiguousarray(targets[is_val[at:at + len(values)]]))
            at += len(values)
        writer.write("train_rows", self.train_rows.astype(np.int64))
        writer.write("val_rows", self.val_rows.astype(np.int64))
        return {"dtype": dtype.name, "n_rows": self.n_kept, "n_features": F, "n_outputs": O,
                "same_xy": same_xy, "n_train": len(self.train_rows), "n_val": len(self.val_rows),
                "n_source_rows": self.raw.n, "schema": schema.to_dict(), "task": self.task,
                "stats": self._stats_doc(schema), "notes": self._notes()}

    def _notes(self):
        """The remarks `data.prepare_training` makes beside the schema (dates that fit both
        orders of day and month), from each date column's distinct cells."""
        notes = (D.ambiguous_date_note(self.scans[k].name, self.scans[k].date_format,
                                       lambda k=k: list(self.scans[k].vocab))
                 for k in self.input_scans if self.kinds[k] == "date")
        return [n for n in notes if n]

    def _encode_x(self, values, codes, schema):
        X = (np.empty((len(values), schema.n_features), np.float64) if any(
            ic.kind in ("categorical", "date") or ic.indicator for ic in schema.inputs) else None)
        at, num_cols, num_at = 0, [], []
        for k, ic in zip(self.input_scans, schema.inputs):
            if ic.kind == "categorical":
                s = self.scans[k]
                index = {w: i for i, w in enumerate(ic.vocabulary)}
                words = {c: w for w, c in s.vocab.items()}
                fill = -1 if ic.impute is None else index[ic.impute]
                rest = len(ic.vocabulary) if ic.other else -1   # values beyond the cap: 'other'
                lut = np.array([index.get(words[c], rest) for c in range(len(words))] + [fill], np.int64)
                col = lut[self._resolve_codes(k, values, codes)]
                block = X[:, at:at + ic.width]
                block[:] = 0.0
                hit = col >= 0
                block[np.flatnonzero(hit), col[hit]] = 1.0
            elif ic.kind == "date":
                seconds = self._numbers(k, values, codes)
                D._date_into(X[:, at:at + len(ic.parts)], seconds, ic)
                if ic.indicator:
                    X[:, at + len(ic.parts)] = ~np.isfinite(seconds)
            else:
                num_cols.append(self._numbers(k, values, codes) if self.scans[k].lut is not None
                                else None)
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
            for i, (_, a, ic) in enumerate(num_at):
                if ic.indicator:
                    X[:, a + 1] = ~ok[:, i]
            if not ok.all():
                fills = np.array([np.nan if ic.impute is None else ic.impute for _, _, ic in num_at])
                V = np.where(ok, V, fills)
            V -= np.array([ic.mean for _, _, ic in num_at])
            V /= np.array([ic.std for _, _, ic in num_at])
            if len(num_at) == schema.n_features:   # numbers only: V is X
                return V
            X[:, [a for _, a, _ in num_at]] = V
        return X

    def _encode_y(self, values, codes, at, schema):
        n = len(values)
        if self.task == "classification":
            Y = np.zeros((n, len(schema.classes)), np.float64)
            Y[np.arange(n), self.labels[at:at + n]] = 1.0
            return Y
        Y = np.empty((n, len(schema.target_names)), np.float64)
        for t in range(Y.shape[1]):
            v = self._numbers(self.n_feat + t, values, codes)
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
            if self.kinds[k] not in ("categorical", "ignored"):
                d["count"] = int(self.stats["n"][k])
                d["mean"], d["std"] = self._mean_std(k)
            cols.append(d)
        out = {"columns": cols}
        if self.labels is not None:
            out["class_counts"] = dict(zip(schema.classes, np.bincount(
                self.labels, minlength=len(schema.classes)).tolist()))
        return out
