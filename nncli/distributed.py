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
        MPI = import_mpi()
        N, B = self.n_train, self.batch_size
        order = self.rng.permutation(N)       # the order one process would train in
        mine = (order >= self.first) & (order < self.first + len(self.X))
        local = np.ascontiguousarray(order[mine] - self.first, dtype=np.int64)
        # bounds[k]:bounds[k+1] is this rank's part of global batch k, in local rows.
        starts = np.arange(0, N, B)
        bounds = np.concatenate([[0], np.cumsum(np.add.reduceat(mine, starts))])
        net, opt = self.net, self.opt
        total = 0.0
        for k, start in enumerate(starts.tolist()):
            part = local[bounds[k]:bounds[k + 1]]
            total += engine.batch_gradient(self.X, self.Y, part, len(part) / min(B, N - start))
            self.comm.Allreduce(MPI.IN_PLACE, net.grad, op=MPI.SUM)
            opt.step(net.phi, net.grad, lr)
        self._sum[:] = total, 0.0
        self.comm.Allreduce(MPI.IN_PLACE, self._sum, op=MPI.SUM)
        return float(self._sum[0]) / N

    def _validate(self, engine, classifier):
        """Every rank scores its part of the validation rows; the sums are combined, so every
        rank sees the same validation loss (early stopping and schedules decide alike)."""
        MPI = import_mpi()
        Xv, Yv = self.validation
        self._sum[:] = 0.0
        if len(Xv):
            val_loss, out = engine.evaluate(Xv, Yv, outputs=classifier)
            self._sum[0] = val_loss * len(Xv)
            if classifier:
                self._sum[1] = round(accuracy(out, Yv, self.net.loss) * len(Xv))
        self.comm.Allreduce(MPI.IN_PLACE, self._sum, op=MPI.SUM)
        metrics = {"val_accuracy": float(self._sum[1]) / self.n_val} if classifier else {}
        return float(self._sum[0]) / self.n_val, metrics


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
