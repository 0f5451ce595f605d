/* pool.c -- the worker pool of pool.h (the why is there).
 *
 * The job in flight lives in one process-wide slot, announced by a 64-bit ticket:
 * (job number << 32) | next chunk.  A thread claims chunk c of job j by moving the ticket from
 * (j, c) to (j, c + 1) with a compare-and-swap, so a chunk is claimed once, and a worker still
 * holding job j-1's number (it woke late) cannot claim anything of job j.  The slot's fields
 * are read before the claim and trusted only when the claim succeeds: while chunks of job j
 * are unclaimed, job j cannot end, so the slot still holds job j.  `done` counts finished
 * chunks; the caller waits for done == n_chunks, i.e. only for chunks somebody has taken.
 * (Job numbers wrap after 2^32 jobs; a worker would have to sleep through exactly that many
 * jobs between two loads for the numbers to collide.)
 */
#define _GNU_SOURCE
#include "pool.h"

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NN_PAUSE() _mm_pause()
#else
#define NN_PAUSE() ((void)0)
#endif

#define NN_POOL_MAX 63              /* workers at most */
/* How long a worker spins for the next job before it sleeps: the products and updates of a
   training step follow each other within tens of microseconds; between epochs (Python) and
   between commands the worker sleeps. */
#define NN_POOL_SPIN_NS 300000L

static struct {
    pthread_mutex_t lock;       /* starting workers; sleeping and waking them */
    pthread_cond_t wake;
    int n_workers;              /* started (under lock) */
    unsigned born_at;           /* the last job announced when workers were started (under lock) */
    atomic_int sleepers;        /* workers waiting on `wake` */
    atomic_flag busy;           /* a job is in flight */
    atomic_uint job;            /* number of the last job announced */
    atomic_ullong ticket;       /* (job << 32) | next chunk */
    atomic_long done;           /* chunks of the job finished */
    /* the job's slot: written before the ticket and `job` announce it */
    _Atomic(nn_pool_fn) fn;
    _Atomic(void *) ctx;
    atomic_long n_chunks;
    atomic_int helpers;         /* workers 0 .. helpers-1 take part */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ATOMIC_FLAG_INIT};

static pthread_once_t nn_pool_once = PTHREAD_ONCE_INIT;
static int nn_pool_nprocs = 0;

/* Claim and run chunks of job j until none is left. */
static void nn_pool_work(unsigned j)
{
    for (;;) {
        unsigned long long t = atomic_load_explicit(&P.ticket, memory_order_acquire);
        if ((unsigned)(t >> 32) != j) return;
        const long c = (long)(t & 0xffffffffULL);
        const nn_pool_fn fn = atomic_load_explicit(&P.fn, memory_order_relaxed);
        void *const ctx = atomic_load_explicit(&P.ctx, memory_order_relaxed);
        if (c >= atomic_load_explicit(&P.n_chunks, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&P.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(ctx, c);
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
    }
}

static long nn_pool_ns_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* The number of the next job after `seen`: spin a while, then sleep until it is announced. */
static unsigned nn_pool_next_job(unsigned seen)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 1;; i++) {
        const unsigned j = atomic_load_explicit(&P.job, memory_order_acquire);
        if (j != seen) return j;
        NN_PAUSE();
        if ((i & 63) == 0 && nn_pool_ns_since(&t0) > NN_POOL_SPIN_NS) break;
    }
    unsigned j;
    pthread_mutex_lock(&P.lock);
    atomic_fetch_add(&P.sleepers, 1);   /* seq_cst, against the announcer's load of sleepers */
    while ((j = atomic_load(&P.job)) == seen) pthread_cond_wait(&P.wake, &P.lock);
    atomic_fetch_sub(&P.sleepers, 1);
    pthread_mutex_unlock(&P.lock);
    return j;
}

static void *nn_pool_main(void *arg)
{
    const int w = (int)(intptr_t)arg;
    pthread_mutex_lock(&P.lock);
    unsigned seen = P.born_at;   /* the job before the one its starter announces next */
    pthread_mutex_unlock(&P.lock);
    for (;;) {
        seen = nn_pool_next_job(seen);
        if (w < atomic_load_explicit(&P.helpers, memory_order_relaxed)) nn_pool_work(seen);
    }
    return NULL;
}

/* In a child of fork() only the forking thread exists: start again without workers. */
static void nn_pool_after_fork_child(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    P.lock = m;
    P.wake = c;
    P.n_workers = 0;
    atomic_store(&P.sleepers, 0);
    atomic_flag_clear(&P.busy);
}

static void nn_pool_init(void)
{
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) nn_pool_nprocs = CPU_COUNT(&set);
#endif
    if (nn_pool_nprocs <= 0) {
        const long n = sysconf(_SC_NPROCESSORS_ONLN);
        nn_pool_nprocs = n > 0 ? (int)n : 1;
    }
    pthread_atfork(NULL, NULL, nn_pool_after_fork_child);
}

int nn_pool_procs(void)
{
    pthread_once(&nn_pool_once, nn_pool_init);
    return nn_pool_nprocs;
}

/* Start workers until there are `want` (fewer if the system refuses); returns how many run.
   Workers block every signal: signals go to the threads Python runs (Ctrl-C included). */
static int nn_pool_start(int want)
{
    pthread_mutex_lock(&P.lock);
    if (P.n_workers < want) {
        P.born_at = atomic_load(&P.job);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (P.n_workers < want) {
            pthread_t t;
            if (pthread_create(&t, &attr, nn_pool_main, (void *)(intptr_t)P.n_workers) != 0) break;
            P.n_workers++;
        }
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    const int n = P.n_workers;
    pthread_mutex_unlock(&P.lock);
    return n;
}

static int nn_pool_alone(long n_chunks, nn_pool_fn fn, void *ctx)
{
    for (long c = 0; c < n_chunks; c++) fn(ctx, c);
    return 1;
}

int nn_pool_run(int n_threads, long n_chunks, nn_pool_fn fn, void *ctx)
{
    if (n_chunks <= 0) return 1;
    int nt = n_threads;
    if (nt > nn_pool_procs()) nt = nn_pool_procs();
    if (nt > NN_POOL_MAX + 1) nt = NN_POOL_MAX + 1;
    if (nt > n_chunks) nt = (int)n_chunks;
    if (nt <= 1 || n_chunks >= (1L << 31)) return nn_pool_alone(n_chunks, fn, ctx);
    if (atomic_flag_test_and_set_explicit(&P.busy, memory_order_acquire))
        return nn_pool_alone(n_chunks, fn, ctx);   /* another thread's job is in flight */
    const int helpers = nn_pool_start(nt - 1);
    if (helpers <= 0) {
        atomic_flag_clear_explicit(&P.busy, memory_order_release);
        return nn_pool_alone(n_chunks, fn, ctx);
    }
    /* Announce: the slot, then the ticket, then the job number (seq_cst: see next_job). */
    atomic_store_explicit(&P.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&P.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&P.n_chunks, n_chunks, memory_order_relaxed);
    if (helpers < nt - 1) nt = helpers + 1;
    atomic_store_explicit(&P.helpers, nt - 1, memory_order_relaxed);
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    const unsigned j = atomic_load_explicit(&P.job, memory_order_relaxed) + 1;
    atomic_store_explicit(&P.ticket, (unsigned long long)j << 32, memory_order_release);
    atomic_store(&P.job, j);
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.lock);
        pthread_cond_broadcast(&P.wake);
        pthread_mutex_unlock(&P.lock);
    }
    nn_pool_work(j);
    /* Every chunk is claimed; wait for those a worker is still running. */
    for (long i = 1; atomic_load_explicit(&P.done, memory_order_acquire) < n_chunks; i++) {
        NN_PAUSE();
        if ((i & 1023) == 0) sched_yield();
    }
    atomic_flag_clear_explicit(&P.busy, memory_order_release);
    return nt;
}

#else   /* no pthreads: everything on the calling thread */

int nn_pool_run(int n_threads, long n_chunks, nn_pool_fn fn, void *ctx)
{
    (void)n_threads;
    for (long c = 0; c < n_chunks; c++) fn(ctx, c);
    return 1;
}

int nn_pool_procs(void) { return 1; }

#endif
