"""Data-parallel training on MPI (mpi4py): `mpiexec -n R nncli train DATA --distributed`.

Every rank builds the same network (same seed; rank 0's φ is broadcast to make sure) and
draws the same shuffled order of the N training rows each epoch, so every rank knows the
global batches of B rows that one process would train on. Training row g lives on rank
g mod R (round robin, so every global batch is spread evenly). For each global batch a rank
computes, in one kernel call (`Engine.batch_gradient`), the gradient of its b_r rows scaled
by b_r/B; one Allreduce (sum) over the flat ∂L/∂φ — one contiguous array — then gives every
rank ∂(mean loss over the B rows)/∂φ, and each applies the same optimiser step. So R ranks
compute what one process computes, up to the order of the summation; the same seed and
rank count give the same φ bit for bit (the Allreduce's order is fixed).

The single-process path keeps its fused epoch kernel; this one calls the kernels once per
global batch (Python between them, and the Allreduce) — see the README for its cost.

What is and is not sharded: every rank reads and encodes the whole CSV (so the
standardisation statistics, vocabularies, classes and the validation split are those of
the whole file on every rank, identical by construction), then keeps only its training
rows; the training work and the training arrays are split R ways. Every rank scores the
whole validation set, so early stopping and schedules decide alike everywhere.

Rank 0 alone writes the model, the loss log and checkpoints. An error every rank sees (bad
data, options) is agreed on before training and reported once by rank 0; any other
failure of one rank aborts all ranks (MPI_Abort) after that rank says what happened.
"""
import os
import sys

import numpy as np

from nncli.errors import NncliError
from nncli.training import Trainer


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


class DistributedTrainer(Trainer):
    """A Trainer whose epochs are split over the ranks of `comm` (see the module docstring).
    X, Y are all the training rows; the trainer keeps those of its rank."""

    def __init__(self, network, X, Y, *, comm, **options):
        super().__init__(network, X, Y, **options)
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # n_train stays every rank's rows together: the epoch's size, the meta's train_rows.
        self.X = np.ascontiguousarray(self.X[self.rank::self.size])
        self.Y = np.ascontiguousarray(self.Y[self.rank::self.size])
        comm.Bcast(network.phi, root=0)
        self._sum = np.zeros(1, np.float64)

    def _train_epoch(self, engine, lr):
        MPI = import_mpi()
        N, B, R = self.n_train, self.batch_size, self.size
        order = self.rng.permutation(N)       # the order one process would train in
        mine = order % R == self.rank
        local = np.ascontiguousarray(order[mine] // R, dtype=np.int64)
        # bounds[k]:bounds[k+1] is this rank's part of global batch k, in local rows.
        starts = np.arange(0, N, B)
        bounds = np.concatenate([[0], np.cumsum(np.add.reduceat(mine, starts))])
        places = np.ascontiguousarray((np.arange(N) % B)[mine], dtype=np.int64)
        net, opt = self.net, self.opt
        total = 0.0
        for k, start in enumerate(starts.tolist()):
            part = local[bounds[k]:bounds[k + 1]]
            # Dropout masks are keyed by a row's place in its batch: those one process draws.
            total += engine.batch_gradient(self.X, self.Y, part, len(part) / min(B, N - start),
                                           opt.step_count, places[bounds[k]:bounds[k + 1]])
            self.comm.Allreduce(MPI.IN_PLACE, net.grad, op=MPI.SUM)
            opt.step(net.phi, net.grad, lr)
        self._sum[0] = total
        self.comm.Allreduce(MPI.IN_PLACE, self._sum, op=MPI.SUM)
        return float(self._sum[0]) / N


def agree(comm, step):
    """Run step() on every rank; if it raised on any, raise on every rank: the first failing
    rank's error (its type and message), so that rank 0 can report it once."""
    error = None
    try:
        result = step()
    except (NncliError, OSError) as e:
        error = e
    errors = comm.allgather(None if error is None else (type(error), str(error)))
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if not failed:
        return result
    if error is not None and failed[0][0] == comm.Get_rank():
        raise error
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
    import_mpi().COMM_WORLD.Abort(exit_code)
    os._exit(exit_code)   # not reached: Abort ends the process
