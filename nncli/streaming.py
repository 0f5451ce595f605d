"""Training from the cache in bounded memory: whether to stream, and the streaming trainer.

An epoch visits the cache in blocks of ``--shuffle-block`` rows (contiguous rows of the
file, read one at a time into a buffer allocated once), in a shuffled order, and the
training rows of each block in a shuffled order, each block one call of the same fused kernel
(``Engine.train_epoch``). The block order is drawn only when there is more than one block,
so data that fits in one block is trained exactly as in memory: the same generator draws
the same permutation of the same rows, and the model is the same bit for bit. Same seed
and block size give the same model.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from nncli.errors import ConfigError
from nncli.training import Trainer, accuracy

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
#: Bytes in-memory training may hold per byte of CSV: loading peaks at about 2× the float64
#: array (benchmarks/bench_load.py), itself about the CSV's size for numbers of 6–7 digits;
#: the float32 copies and the split come on top, hence 4 for "comfortably".
MEMORY_PER_CSV_BYTE = 4
#: The same for a compressed or Parquet file, whose rows take more room than its bytes.
MEMORY_PER_PACKED_BYTE = 20


def parse_memory(text) -> int:
    """'2G', '512M', '300000K', '1.5G' or a number of bytes → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--memory takes a size such as 512M or 2G, not {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def human(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def available_memory() -> int:
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@dataclass
class Decision:
    stream: bool
    budget: int | None
    why: str


def decide(data_path, config, *, cache_dir=None, no_cache=False):
    """Stream or not, with which budget, and why (the first progress line says it)."""
    memory = config.get("memory")
    budget = parse_memory(memory) if memory else None
    if no_cache or data_path == "-":
        if budget is not None or cache_dir:
            why = "--no-cache" if no_cache else "standard input"
            raise ConfigError(f"streaming (--memory, --cache) reads a cache built from a file; "
                              f"with {why} the data is read in memory: save it to a file first")
        return Decision(False, None, "in memory")
    from nncli.csvio.compressed import format_of_name
    from nncli.csvio.parquet import is_parquet
    if not os.path.isfile(data_path):   # a device or a FIFO, or missing: the reader says so
        if (budget is not None or cache_dir) and os.path.exists(data_path):
            raise ConfigError(f"{data_path}: streaming (--memory, --cache) needs a regular file")
        return Decision(False, None, "in memory")
    size = os.path.getsize(data_path)
    packed = format_of_name(data_path) or is_parquet(data_path)
    need = size * (MEMORY_PER_PACKED_BYTE if packed else MEMORY_PER_CSV_BYTE)
    asked = "--cache" if cache_dir else "--shuffle-block" if config.get("shuffle_block") else None
    if budget is not None:
        stream = need > budget or bool(asked)
        why = (f"streaming: the data ({human(size)}) would need about {human(need)} in memory, "
               f"more than --memory {memory}" if need > budget else
               f"streaming ({asked}), within --memory {memory}" if stream else
               f"in memory: the data ({human(size)}, about {human(need)} loaded) fits --memory {memory}")
    else:
        free = available_memory()
        stream = bool(asked) or need > free // 2
        budget = max(64 << 20, free // 4)
        why = (f"streaming ({asked})" if asked else
               f"streaming: the data ({human(size)}) would need about {human(need)} in memory, "
               f"more than half of the {human(free)} available") if stream else "in memory"
        if stream:
            why += f", within {human(budget)}"
    if config.get("streamed") and not stream:   # resuming a streamed run: stream it again
        stream, why = True, f"streaming, as the run being resumed, within {human(budget)}"
    return Decision(stream, budget, why)


def block_rows(config, cache, budget) -> int:
    """Rows per block: --shuffle-block, else what a quarter of the budget holds."""
    rows = config.get("shuffle_block")
    if rows:
        return max(1, int(rows))
    row_bytes = (cache.n_features + (0 if cache.same_xy else cache.n_outputs)) * cache.dtype.itemsize
    return int(max(1024, budget // 4 // max(row_bytes, 1)))


class StreamingTrainer(Trainer):
    """A `Trainer` whose rows stay in the cache (see the module docstring)."""

    def __init__(self, network, cache, *, block_rows, validation=None, optimizer="adam", lr=None,
                 batch_size=32, epochs=100, seed=0, early_stopping=None, schedule="constant",
                 schedule_options=None, n_threads=None, dropout=None, every_row=False):
        """`validation`: (Xv, Yv) arrays (a validation file), else the cache's held-out rows;
        with `every_row`, the held-out rows are trained on too and nothing is validated (the
        refit of a run whose validation picked the epochs)."""
        if cache.dtype != network.dtype:
            raise ValueError(f"the cache holds {cache.dtype} rows, the network is {network.dtype}")
        train, val = cache.train_rows, cache.val_rows
        if every_row:
            train, val = np.sort(np.concatenate([train, val])), val[:0]
        if len(train) == 0:
            raise ValueError("no training rows")
        self.cache = cache
        self._val_arrays = validation is not None
        if validation is not None:
            Xv = network.as_input(validation[0])
            self.validation = (Xv, network.as_target(validation[1], len(Xv)))
        else:
            self.validation = (val, None) if len(val) else None
        if early_stopping is not None and self.validation is None:
            raise ValueError("early_stopping watches the validation loss: give a validation split")
        self.block_rows = int(block_rows)
        # Blocks: windows [lo, hi) of the cache's rows with the training and validation rows
        # in each (sorted, as block-local indices).
        self.blocks = []
        for lo in range(0, cache.n_rows, self.block_rows):
            hi = min(lo + self.block_rows, cache.n_rows)
            tr = train[np.searchsorted(train, lo):np.searchsorted(train, hi)] - lo
            va = val[np.searchsorted(val, lo):np.searchsorted(val, hi)] - lo
            self.blocks.append((lo, hi, tr.astype(np.int64), va.astype(np.int64)))
        # One buffer per array, a block long, reused by every block (see CacheFile.read_rows).
        rows = min(self.block_rows, cache.n_rows)
        self._X = np.empty((rows, cache.n_features), cache.dtype)
        self._Y = None if cache.same_xy else np.empty((rows, cache.n_outputs), cache.dtype)
        self._loaded = None   # the block the buffers hold
        self.reader = self    # whose buffers blocks are read into (see share_blocks)
        n_val = len(self.validation[0]) if self.validation is not None else 0
        self._configure(network, len(train), n_val, optimizer=optimizer, lr=lr,
                        batch_size=batch_size, epochs=epochs,
                        shuffle_seed=np.random.SeedSequence(seed).spawn(2)[1],
                        early_stopping=early_stopping, schedule=schedule,
                        schedule_options=schedule_options, n_threads=n_threads,
                        dropout=dropout, seed=seed)

    def _train_epoch(self, engine, lr):
        # (engine and lr are self.engine and this epoch's rate, which train_block uses.)
        # One block: no block order to draw, so the generator's next draw is the row order
        # in-memory training draws.
        order = self.rng.permutation(len(self.blocks)) if len(self.blocks) > 1 else (0,)
        parts = []
        for b in order:
            if len(self.blocks[b][2]):
                parts.append(self.train_block(b, *self._block(b)))
                if not math.isfinite(parts[-1][0]):
                    break
        return epoch_mean(parts)

    def train_block(self, b, X, Y):
        """Train on block b's training rows (X, Y: the block as read) in a new shuffled
        order, at this epoch's learning rate; returns (mean loss, rows)."""
        tr = self.blocks[b][2]
        idx = tr[self.rng.permutation(len(tr))]
        loss, self.opt.step_count = self.engine.train_epoch(
            X, Y, idx, self.batch_size, self.opt.s1, self.opt.s2, *self.opt.kernel_args(self._lr))
        return loss, len(tr)

    def _block(self, b):
        """(X, Y) of block b in the reused buffers (read unless they hold it already: a
        single block is read once for the whole run)."""
        lo, hi = self._rows_read(b)
        n, r = hi - lo, self.reader
        if r._loaded != b:
            self.cache.read_rows(lo, hi, r._X, r._Y)
            r._loaded = b
        X = r._X[:n]
        return X, (X if r._Y is None else r._Y[:n])

    def _rows_read(self, b):
        """The cache rows [lo, hi) read for block b: all of them (a rank reads its slice)."""
        return self.blocks[b][:2]

    def share_blocks(self, other):
        """Read blocks through `other` (another member of an ensemble on the same cache and
        blocks): one buffer for all, and a block read once serves every member."""
        self.reader, self._X, self._Y = other, None, None

    def val_blocks(self):
        """(block, its validation rows in the block's buffer, their slice of the cache's
        val_targets) of each block holding validation rows."""
        at = 0
        for b, (_, _, _, va) in enumerate(self.blocks):
            if len(va):
                yield b, va, slice(at, at + len(va))
                at += len(va)

    def _validate(self, engine, classifier):
        if self._val_arrays:   # a validation file, in memory
            return super()._validate(engine, classifier)
        parts = [self.validate_block(b, *self._block(b))
                 for b, block in enumerate(self.blocks) if len(block[3])]
        return self.validation_mean(parts)

    def validate_block(self, b, X, Y):
        """(loss, accuracy or None, rows) of block b's validation rows."""
        va = self.blocks[b][3]
        Xv, Yv = X[va], Y[va]   # copies (fancy indexing), contiguous
        loss, out = self.engine.evaluate(Xv, Yv, outputs=self.classifier)
        return loss, (accuracy(out, Yv, self.net.loss) if self.classifier else None), len(va)

    def validation_mean(self, parts):
        """(loss, metrics) over the blocks' validation parts: with one block, exactly the
        in-memory numbers."""
        classifier = parts[0][1] is not None
        if len(parts) == 1:
            loss, acc, _ = parts[0]
        else:
            rows = sum(n for _, _, n in parts)
            loss = sum(v * n for v, _, n in parts) / rows
            acc = sum(a * n for _, a, n in parts) / rows if classifier else None
        return loss, ({"val_accuracy": acc} if classifier else {})


def epoch_mean(parts):
    """An epoch's loss from its blocks' (mean loss, rows): the one block's loss as it is (the
    in-memory number), a non-finite one as it is, else the mean weighted by rows."""
    if len(parts) == 1 or not math.isfinite(parts[-1][0]):
        return parts[-1][0]
    return sum(v * n for v, n in parts) / sum(n for _, n in parts)


def validation_sums(trainer, cache, schema, network=None):
    """The `predicting.Evaluation` of `network` (default: the trainer's; an Ensemble too)
    over the trainer's validation rows of the cache (an MPI rank's: its slice of each block),
    block by block: a regression's outputs back in the target's units against the targets
    as read (`val_targets`), a classification's against the block's one-hot targets."""
    from nncli.predicting import Evaluation, score_outputs
    network = trainer.net if network is None else network
    ev = Evaluation(schema.task)
    for b, va, targets in trainer.val_blocks():
        if not len(va):
            continue
        X, Y = trainer._block(b)
        out = network.predict(X[va], n_threads=trainer.n_threads)
        Y = cache.val_targets[targets] if schema.task == "regression" else Y[va]
        score_outputs(ev, schema, out, Y, X[va])
    return ev
