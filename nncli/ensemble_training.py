"""The members of an ensemble (`--ensemble N`) trained together: one pass over the data per
epoch for all of them, their kernel calls on threads.

Each member is a `Trainer` of its own — its network from its own seed, its own shuffling,
optimiser, schedule and early stopping — so a member is the network it would be if trained
alone with its seed (bit for bit: the kernels give the same bits on any thread count). What they share is
the pass: epoch by epoch, every member still training runs its epoch (training steps and
validation, one GIL-free kernel call each) on a pool of min(N, threads) threads, each
member's GEMM on threads // min(members training, threads) threads; then, in the main thread
and in member order, each records its epoch, checks early stopping and calls its callbacks.
A streamed run (nncli.streaming) goes through the cache block by block: each block is read
once and every member trains on it (its rows in the member's own order) before the next;
the block order is the ensemble's, drawn from the seed's third generator.

Early stopping is per member: a member stops when its own validation loss has not improved
for the patience, and the others go on. A joint rule (stop all when the averaged prediction
stops improving) would stop every member at the epoch that suits the average, which is
usually later than each member's own best, and would need the averaged validation output
every epoch; per member keeps each member the network it is alone, and refit trains each
for its own number of epochs.

Results do not depend on which thread ran a member: each member's arithmetic is its own and
results are gathered in member order, so the same seed and --threads give the same model
file. A divergence is the first diverging member's in member order, raised once every member
has ended that epoch; Ctrl-C stops the run once the members' steps under way have ended.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from nncli.network import default_threads


class Members:
    """Trainers of an ensemble's members, run together (see the module docstring).

    trainers: one per member (Trainer, or StreamingTrainer sharing one reader). callbacks: a
    list of epoch callbacks per member. threads: --threads (None: all cores). seed: the run's
    seed, for the block order of a streamed run."""

    def __init__(self, trainers, callbacks=None, threads=None, seed=None):
        self.trainers = list(trainers)
        # A callback returning True is the caller's stop (a user's, a sweep's): it stops
        # every member, where a member's own early stopping stops that member alone.
        self.stopped = False
        self.callbacks = [[self._stopping(cb) for cb in cbs]
                          for cbs in (callbacks or [[] for _ in self.trainers])]
        self.threads = int(threads or default_threads())
        self.streamed = hasattr(self.trainers[0], "blocks")
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
        self.active = []   # the members training in the current epoch

    def run(self):
        """Train every member to its end (epochs or early stopping), each left with its best
        φ. A DivergenceError or KeyboardInterrupt leaves `active` the members that were
        training (see keep_last_finite)."""
        workers = min(len(self.trainers), self.threads)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="nncli-member") if workers > 1 else None
        interrupted = False
        try:
            for t in self.trainers:
                t.begin()
            self.active = [t for t in self.trainers if t.epoch < t.epochs]
            for t in self.trainers:
                if t not in self.active:
                    t.finish()
            while self.active:
                per = max(1, self.threads // min(len(self.active), self.threads))
                for t in self.active:
                    t.n_threads = t.engine.n_threads = per   # (an engine made anew takes it too)
                results = (self._stream_epoch(pool) if self.streamed else
                           self._map(pool, _epoch, self.active))
                going = []
                for t, (loss, val_loss, metrics) in zip(self.active, results):
                    stop = t.epoch_end(loss, val_loss, metrics, self.callbacks[self.trainers.index(t)])
                    if not stop and t.epoch < t.epochs:
                        going.append(t)
                for t in self.active:
                    if self.stopped or t not in going:
                        t.finish()
                self.active = [] if self.stopped else going
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            # After Ctrl-C the steps under way end and the others never start; after a
            # divergence every member ends the epoch (what keep_last_finite undoes is then
            # the same whichever thread was quicker).
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=interrupted)
        return [t.history for t in self.trainers]

    def _stopping(self, callback):
        def call(record, trainer):
            stop = bool(callback(record, trainer))
            self.stopped = self.stopped or stop
            return stop
        return call

    def keep_last_finite(self):
        """After a divergence: every member that was training back to its φ before that
        epoch (the others keep their best), as `--save-diverged` saves a single network."""
        for t in self.active:
            t.net.phi[:] = t.phi_before_epoch

    @staticmethod
    def _map(pool, fn, items):
        """[fn(x) for x in items], on the pool. Every item runs to its end, then the first
        item's exception in order, if any, is raised: the state a failure leaves does not
        depend on the number of threads."""
        if pool is None:
            outcomes = []
            for x in items:
                try:
                    outcomes.append((fn(x), None))
                except Exception as e:  # noqa: BLE001 - raised below, after the others ran
                    outcomes.append((None, e))
        else:
            futures = [pool.submit(fn, x) for x in items]
            wait(futures)
            outcomes = [(None, f.exception()) if f.exception() else (f.result(), None)
                        for f in futures]
        for _, error in outcomes:
            if error is not None:
                raise error
        return [result for result, _ in outcomes]

    def _stream_epoch(self, pool):
        """One epoch of streamed members: each block read once, every member trained on it."""
        active, first = self.active, self.trainers[0]
        for t in active:
            t.epoch_start()
        blocks = first.blocks
        parts = {id(t): [] for t in active}
        order = self.rng.permutation(len(blocks)) if len(blocks) > 1 else (0,)
        for b in order:
            if not len(blocks[b][2]):
                continue
            X, Y = first._block(b)
            # A member whose loss went non-finite trains no further (it has diverged).
            going = [t for t in active if not parts[id(t)] or math.isfinite(parts[id(t)][-1][0])]
            for t, part in zip(going, self._map(
                    pool, lambda t: t.train_block(b, X, Y), going)):
                parts[id(t)].append(part)
        from nncli.streaming import epoch_mean
        losses = [epoch_mean(parts[id(t)]) for t in active]
        for t, loss in zip(active, losses):
            t.epoch_check(loss)
        return [(loss, *v) for loss, v in zip(losses, self._stream_validation(pool))]

    def _stream_validation(self, pool):
        """Each active member's (val loss, metrics): the cache's held-out rows, block by block
        (each read once), or a validation file in memory."""
        active, first = self.active, self.trainers[0]
        if first.validation is None:
            return [(math.nan, {})] * len(active)
        if first._val_arrays:
            return self._map(pool, lambda t: t.epoch_validate(), active)
        parts = [[] for _ in active]
        for b, block in enumerate(first.blocks):
            if len(block[3]):
                X, Y = first._block(b)
                for p, part in zip(parts, self._map(
                        pool, lambda t: t.validate_block(b, X, Y), active)):
                    p.append(part)
        return [t.validation_mean(p) for t, p in zip(active, parts)]


def _epoch(t):
    """One in-memory epoch of member t: (loss, val loss, metrics)."""
    t.epoch_start()
    loss = t.epoch_train()
    t.epoch_check(loss)
    return (loss, *t.epoch_validate())
