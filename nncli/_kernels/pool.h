/* pool.h -- the threads of nncli's kernels: one process-wide pool of worker threads that run
 * the chunks of a parallel loop beside the calling thread.
 *
 * Why not OpenMP's parallel regions: a region ends in a barrier that waits for every thread of
 * the team, including one the OS has not yet scheduled.  On a machine whose other core is
 * busy (a shared 2-core VM: another process, a build), that wait is a whole time slice, once
 * per product, a dozen products per training step: two-thread mnist epochs ran at 12-50 k
 * samples/s against 107 k on one thread.  Here the chunks are claimed one at a time from a
 * shared counter, the caller claims too, and the caller waits only for chunks a worker has
 * actually taken: a worker that wakes late finds nothing left and the caller never waited for
 * it.  Who runs a chunk never changes what it computes, so results do not depend on the
 * thread count or the timing.
 *
 * One job at a time: a call made while another thread's job runs (members of an ensemble on
 * their own threads) runs its chunks on the calling thread alone.  Workers spin for a short
 * while after a job (the next product of a training step comes microseconds later), then
 * sleep on a condition variable -- except while the machine is contended: when another
 * process holds the other core, a spinning worker is one runnable thread too many, the
 * scheduler sets it beside the caller, and each gets part of a core (two-thread training ran
 * at ~0.75 of one thread's speed).  So the caller counts the jobs a worker missed although
 * awake, or finished late; after 3 of 8 such jobs the workers sleep right after each job
 * (woken for the next one, they still take chunks when they get a core) for 20 ms, twice as
 * long each time it recurs (up to 0.32 s), then spin again.  Only how workers wait changes;
 * results never depend on who runs a chunk.  After fork() the child starts without workers. */
#ifndef NNCLI_POOL_H
#define NNCLI_POOL_H

typedef void (*nn_pool_fn)(void *ctx, long chunk);

/* Runs fn(ctx, c) for every c in [0, n_chunks), each exactly once, on the calling thread and
 * up to n_threads - 1 workers; returns when all have finished.  Returns the number of threads
 * the job was offered to (1: it ran on the caller alone). */
int nn_pool_run(int n_threads, long n_chunks, nn_pool_fn fn, void *ctx);

/* 1 while workers spin between jobs, 0 during a stretch of contention (for tests). */
int nn_pool_spinning(void);

/* 1 on one of the pool's worker threads, 0 elsewhere (for tests). */
int nn_pool_in_worker(void);

/* The processors this process may run on (its CPU affinity), at least 1. */
int nn_pool_procs(void);

#endif
