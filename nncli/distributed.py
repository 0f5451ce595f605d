"""Data-parallel training on MPI (mpi4py): `mpiexec -n R nncli train DATA --distributed`.

Each rank reads its own shard of the rows (nncli.shards: a byte range of the CSV, aligned to
line starts), and the schema — kinds, vocabularies, classes, standardisation statistics, fill
values, the validation split — is fitted over all shards together (`shards.ShardStats`), so
every rank holds the schema one process would fit and its own contiguous block of the global
rows: rank r's training rows are the global training rows first_r … first_r + n_r − 1.

Every rank builds the same network (same seed; rank 0's φ is sent to all to make sure) and
draws the same shuffled order of the N global training rows each epoch, so every rank knows
the global batches of B rows that one process would train on. For each global batch a rank
computes, in one kernel call (`Engine.batch_gradient`), the gradient of the b_r rows of the
batch it holds, scaled by b_r/B; one Allreduce (sum) over the flat ∂L/∂φ — one contiguous
array — then gives every rank ∂(mean loss over the B rows)/∂φ, and each applies the same
optimiser step. So R ranks compute what one process computes, up to the order of the
summation; the same seed and rank count give the same φ bit for bit (the Allreduce's order
is fixed). Each rank validates its shard's validation rows and the sums are combined, so
early stopping and schedules decide alike everywhere.

The single-process path keeps its fused epoch kernel; this one calls the kernels once per
global batch (Python between them, and the Allreduce) — see the README for its cost.

Rank 0 alone writes the model, the loss log and checkpoints. An error every rank sees (bad
data, options, a bad cell in one rank's shard) is agreed on before training (`agree`,
`exchange`) and reported once by rank 0; any other failure of one rank aborts all ranks
(MPI_Abort) after that rank says what happened.
"""
import os
import sys

import numpy as np

from nncli.errors import NncliError
from nncli.streaming import StreamingTrainer
from nncli.training import Trainer, accuracy


def import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        if e.name in ("mpi4py", "mpi4py.MPI"):
            raise NncliError("--distributed needs MPI: pip install 'nncli[mpi]' and run it "
                             "under mpiexec") from None
        raise NncliError(f"mpi4py is installed but cannot start MPI: {e}") from None
    return MPI


def ranks_on_this_machine(comm):
    MPI = import_mpi()
    return comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()


def default_threads(comm):
    """Kernel threads of one rank: this machine's cores shared among its ranks."""
    from nncli.network import default_threads as cores
    return max(1, cores() // ranks_on_this_machine(comm))


class PeerFailed(Exception):
    """Raised by `exchange` on every rank when some rank sent its error instead of a value."""

    def __init__(self, errors):
        super().__init__("a rank failed")
        self.errors = errors   # per rank: None or (exception type, message)


def exchange(comm, value):
    """Every rank's `value`, in rank order (an allgather): the one collective of the steps
    before training. A rank that fails there sends its error instead (see `agree`), and
    every rank then raises PeerFailed instead of waiting for a value that never comes."""
    got = comm.allgather((None, value))
    if any(error is not None for error, _ in got):
        raise PeerFailed([error for error, _ in got])
    return [v for _, v in got]


class DistributedTrainer(Trainer):
    """A Trainer whose epochs are split over the ranks of `comm` (see the module docstring).
    X, Y are this rank's training rows: a contiguous block of the global training rows, the
    blocks in rank order; `validation` is this rank's part of the validation rows (the parts
    disjoint, any of them possibly empty)."""

    def __init__(self, network, X, Y, *, comm, validation=None, **options):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        n_val = 0 if validation is None else len(validation[0])
        counts = exchange(comm, (len(X), n_val))
        empty = [r for r, (n, _) in enumerate(counts) if not n]
        if empty:
            raise ValueError(f"rank {empty[0]} holds no training rows (the data has "
                             f"{sum(n for n, _ in counts)}): use fewer ranks")
        super().__init__(network, X, Y, validation=validation, **options)
        self.first = sum(n for n, _ in counts[:self.rank])   # global index of this rank's first row
        # The epoch's size, the batches and the meta's train_rows/val_rows are global.
        self._configure_counts(sum(n for n, _ in counts), sum(v for _, v in counts),
                               options.get("batch_size", 32))
        network.phi[:] = exchange(comm, network.phi if self.rank == 0 else None)[0]
        self._sum = np.zeros(2, np.float64)

    def _configure_counts(self, n_train, n_val, batch_size):
        self.n_train, self.n_val = n_train, n_val
        if batch_size in (None, "full", 0):
            batch_size = n_train
        self.batch_size = min(int(batch_size), n_train)

    def _train_epoch(self, engine, lr):
        order = self.rng.permutation(self.n_train)       # the order one process would train in
        total = global_batches(self, engine, lr, order, self.first, self.first + len(self.X),
                               None, self.X, self.Y)
        return self._summed(total) / self.n_train

    def _validate(self, engine, classifier):
        return combined_validation(self, engine, classifier, [self.validation])

    def _summed(self, value):
        MPI = import_mpi()
        self._sum[:] = value, 0.0
        self.comm.Allreduce(MPI.IN_PLACE, self._sum, op=MPI.SUM)
        return float(self._sum[0])


def global_batches(trainer, engine, lr, order, lo, hi, rows, X, Y):
    """Train the global batches of B positions of `order` (a permutation of 0..N−1: one
    process's order of its N rows) with one Allreduce of ∂L/∂φ each; this rank holds the
    positions lo..hi−1, at the rows rows[p − lo] of X, Y (rows None: p − lo). Returns the
    summed loss of this rank's rows."""
    MPI = import_mpi()
    N, B = len(order), trainer.batch_size
    mine = (order >= lo) & (order < hi)
    local = order[mine] - lo
    local = np.ascontiguousarray(local if rows is None else rows[local], dtype=np.int64)
    # bounds[k]:bounds[k+1] is this rank's part of global batch k, in local rows.
    starts = np.arange(0, N, B)
    bounds = np.concatenate([[0], np.cumsum(np.add.reduceat(mine, starts))])
    # Dropout masks are keyed by a row's place in its batch: those one process draws.
    places = np.ascontiguousarray((np.arange(N) % B)[mine], dtype=np.int64)
    net, opt, comm = trainer.net, trainer.opt, trainer.comm
    total = 0.0
    for k, start in enumerate(starts.tolist()):
        part = local[bounds[k]:bounds[k + 1]]
        total += engine.batch_gradient(X, Y, part, len(part) / min(B, N - start),
                                       opt.step_count, places[bounds[k]:bounds[k + 1]])
        comm.Allreduce(MPI.IN_PLACE, net.grad, op=MPI.SUM)
        opt.step(net.phi, net.grad, lr)
    return total


def combined_validation(trainer, engine, classifier, parts):
    """(validation loss, metrics) over every rank's validation rows: this rank's `parts`
    ((Xv, Yv) pairs) scored here, the sums combined, so every rank sees the same numbers
    (early stopping and schedules decide alike)."""
    MPI = import_mpi()
    sums = np.zeros(2, np.float64)
    for Xv, Yv in parts:
        if len(Xv):
            val_loss, out = engine.evaluate(Xv, Yv, outputs=classifier)
            sums[0] += val_loss * len(Xv)
            if classifier:
                sums[1] += round(accuracy(out, Yv, trainer.net.loss) * len(Xv))
    trainer.comm.Allreduce(MPI.IN_PLACE, sums, op=MPI.SUM)
    metrics = {"val_accuracy": float(sums[1]) / trainer.n_val} if classifier else {}
    return float(sums[0]) / trainer.n_val, metrics


class DistributedStreamingTrainer(StreamingTrainer):
    """A StreamingTrainer over the ranks of `comm`: every rank visits the cache's blocks in
    the one order a single process draws, reads only its 1/R slice of each block's rows (a
    contiguous range), and trains the block's global batches — the single process's batches,
    which never span two blocks — as DistributedTrainer does, one Allreduce each. The cache
    is rank 0's (built or checked there: nncli.shards.shared_cache)."""

    def __init__(self, network, cache, *, comm, block_rows, validation=None, **options):
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        if validation is not None:   # a validation file every rank read: every size-th row
            validation = tuple(np.ascontiguousarray(a[self.rank::self.size]) for a in validation)
        super().__init__(network, cache, block_rows=block_rows, validation=validation, **options)
        # Per block: this rank's rows lo..hi of the cache, and the positions of the block's
        # training and validation rows that fall in them.
        self.slices = []
        for lo, hi, tr, va in self.blocks:
            a = lo + (hi - lo) * self.rank // self.size
            z = lo + (hi - lo) * (self.rank + 1) // self.size
            self.slices.append((a, z, *np.searchsorted(tr, [a - lo, z - lo]),
                                *np.searchsorted(va, [a - lo, z - lo])))
        rows = max(z - a for a, z, *_ in self.slices)
        self._X = np.empty((rows, cache.n_features), cache.dtype)
        self._Y = None if cache.same_xy else np.empty((rows, cache.n_outputs), cache.dtype)
        if self._val_arrays:
            self.n_val = sum(exchange(comm, len(self.validation[0])))
        network.phi[:] = exchange(comm, network.phi if self.rank == 0 else None)[0]
        self._sum = np.zeros(2, np.float64)

    def _rows_read(self, b):
        """This rank's slice of block b (StreamingTrainer._block reads it into the buffers)."""
        return self.slices[b][:2]

    def _train_epoch(self, engine, lr):
        blocks = self.blocks
        order = self.rng.permutation(len(blocks)) if len(blocks) > 1 else (0,)
        total = 0.0
        for b in order:
            lo, _, tr, _ = blocks[b]
            if not len(tr):
                continue
            perm = self.rng.permutation(len(tr))    # the block's order, as one process draws it
            a, _, t0, t1 = self.slices[b][:4]
            X, Y = self._block(b)
            total += global_batches(self, engine, lr, perm, t0, t1, tr[t0:t1] - (a - lo), X, Y)
        return DistributedTrainer._summed(self, total) / self.n_train

    def val_blocks(self):
        at = 0
        for b, (lo, _, _, va) in enumerate(self.blocks):
            a, _, _, _, v0, v1 = self.slices[b]
            if len(va):
                yield b, va[v0:v1] - (a - lo), slice(at + v0, at + v1)
                at += len(va)

    def _validate(self, engine, classifier):
        if self._val_arrays:
            return combined_validation(self, engine, classifier, [self.validation])
        parts = []
        for b, va, _ in self.val_blocks():
            X, Y = self._block(b)
            parts.append((X[va], Y[va]))
        return combined_validation(self, engine, classifier, parts)


def validation_part(comm, validation, n_in, n_out, whole):
    """This rank's part of the validation rows: its shard's held-out rows, or (`whole`: a
    --val-data file every rank read) every size-th row from its rank on; empty arrays when
    it has none but other ranks do, None when no rank has any."""
    rank, size = comm.Get_rank(), comm.Get_size()
    if validation is not None and whole:
        validation = tuple(np.ascontiguousarray(a[rank::size]) for a in validation)
    n = 0 if validation is None else len(validation[0])
    if not sum(exchange(comm, n)):
        return None
    if validation is None:
        validation = (np.empty((0, n_in)), np.empty((0, n_out)))
    return validation


def combine_evaluation(comm, ev):
    """The running sums of an `nncli.predicting.Evaluation` over every rank's rows."""
    parts = exchange(comm, (ev.n, ev.sums))
    ev.n = sum(n for n, _ in parts)
    ev.sums = {k: sum(sums[k] for _, sums in parts if k in sums) for k in parts[0][1]}
    return ev


def agree(comm, step):
    """Run step() on every rank; if it raised on any, raise on every rank: the first failing
    rank's error (its type and message), so that rank 0 can report it once. Steps that
    exchange values go through `exchange`, which a failing rank's error ends on every rank.
    Any other failure (a bug) aborts every rank."""
    errors = None
    try:
        result = step()
    except PeerFailed as e:
        errors = e.errors
    except (NncliError, OSError) as e:
        errors = [error for error, _ in comm.allgather(((type(e), str(e)), None))]
    except Exception as e:  # noqa: BLE001 - the other ranks would wait for this one
        abort_on_failure(comm, f"{type(e).__name__}: {e}", 1)
    else:
        errors = [error for error, _ in comm.allgather((None, None))]
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if not failed:
        return result
    rank, (kind, message) = failed[0]
    prefix = "" if all(e == errors[rank] for e in errors) else f"rank {rank}: "
    cls = kind if issubclass(kind, NncliError) else NncliError
    raise cls(prefix + message)


def abort_on_failure(comm, error, exit_code):
    """A failure of this rank alone (others would wait for it forever in the next
    Allreduce): say so on stderr and abort every rank."""
    rank, size = comm.Get_rank(), comm.Get_size()
    print(f"Error: rank {rank} of {size} failed: {error}; stopping all ranks", file=sys.__stderr__,
          flush=True)
    # mpiexec forwards each rank's stderr; Abort tears the job down at once, and a line not
    # yet forwarded is lost (seen under load): give the forwarder a moment.
    import time
    time.sleep(0.3)
    import_mpi().COMM_WORLD.Abort(exit_code)
    os._exit(exit_code)   # not reached: Abort ends the process
