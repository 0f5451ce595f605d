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
/* Contention (pool.h): a job is contended when the caller ran every chunk of a job that took
   it over NN_POOL_MISS_NS though the workers were awake (spinning: one with a core claims a
   chunk within a microsecond), or waited for the workers' chunks more than twice its own work
   plus NN_POOL_LATE_NS (a worker preempted in the middle of a chunk; or the caller itself held
   up after announcing the job, so that the workers took every chunk). */
#define NN_POOL_MISS_NS 5000L
#define NN_POOL_LATE_NS 100000L
#define NN_POOL_CONTENDED 3             /* of the last 8 jobs offered to workers */
#define NN_POOL_CALM_JOBS 16            /* uncontended in a row: the next stretch starts short */
#define NN_POOL_NOSPIN_MIN_NS 20000000L  /* the first stretch without spinning */
#define NN_POOL_NOSPIN_MAX_NS 320000000L /* the longest (each recurrence doubles it) */

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
    atomic_int nospin;          /* contended: workers sleep right after a job */
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, ATOMIC_FLAG_INIT};

/* The contention record; read and written only by the thread holding P.busy. */
static struct {
    unsigned recent;            /* a bit per job offered to workers, newest lowest: contended */
    int clean;                  /* jobs in a row not contended, up to NN_POOL_CALM_JOBS */
    long stretch_ns;            /* the last stretch without spinning, 0: none lately */
    struct timespec until;      /* while P.nospin: when workers may spin again */
} S;

static _Thread_local int nn_pool_worker_thread;   /* set on the workers */

static pthread_once_t nn_pool_once = PTHREAD_ONCE_INIT;
static int nn_pool_nprocs = 0;

/* Claim and run chunks of job j until none is left; returns how many this thread ran. */
static long nn_pool_work(unsigned j)
{
    long ran = 0;
    for (;;) {
        unsigned long long t = atomic_load_explicit(&P.ticket, memory_order_acquire);
        if ((unsigned)(t >> 32) != j) return ran;
        const long c = (long)(t & 0xffffffffULL);
        const nn_pool_fn fn = atomic_load_explicit(&P.fn, memory_order_relaxed);
        void *const ctx = atomic_load_explicit(&P.ctx, memory_order_relaxed);
        if (c >= atomic_load_explicit(&P.n_chunks, memory_order_relaxed)) return ran;
        if (!atomic_compare_exchange_weak_explicit(&P.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(ctx, c);
        ran++;
        atomic_fetch_add_explicit(&P.done, 1, memory_order_release);
    }
}

static long nn_pool_ns_between(const struct timespec *t0, const struct timespec *t1)
{
    return (t1->tv_sec - t0->tv_sec) * 1000000000L + (t1->tv_nsec - t0->tv_nsec);
}

static long nn_pool_ns_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return nn_pool_ns_between(t0, &t);
}

/* The number of the next job after `seen`: spin a while (not when contended), then sleep
   until it is announced. */
static unsigned nn_pool_next_job(unsigned seen)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 1;; i++) {
        const unsigned j = atomic_load_explicit(&P.job, memory_order_acquire);
        if (j != seen) return j;
        NN_PAUSE();
        if ((i & 63) == 0 && (atomic_load_explicit(&P.nospin, memory_order_relaxed)
                              || nn_pool_ns_since(&t0) > NN_POOL_SPIN_NS)) break;
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
    nn_pool_worker_thread = 1;
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
    atomic_store(&P.nospin, 0);
    S.recent = 0;
    S.clean = 0;
    S.stretch_ns = 0;
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

/* After a job offered to workers: record whether it was contended, and stop the spinning
   for a stretch when 3 of the last 8 were (a stretch twice as long as the last one, unless
   NN_POOL_CALM_JOBS jobs in a row since were not contended). */
static void nn_pool_note_job(int contended)
{
    S.recent = (S.recent << 1) | (unsigned)contended;
    S.clean = contended ? 0 : S.clean < NN_POOL_CALM_JOBS ? S.clean + 1 : NN_POOL_CALM_JOBS;
    if (S.clean == NN_POOL_CALM_JOBS)
        S.stretch_ns = 0;   /* contention has passed */
    if (__builtin_popcount(S.recent & 0xffu) >= NN_POOL_CONTENDED) {
        S.stretch_ns = S.stretch_ns == 0 ? NN_POOL_NOSPIN_MIN_NS
                       : S.stretch_ns * 2 < NN_POOL_NOSPIN_MAX_NS ? S.stretch_ns * 2
                       : NN_POOL_NOSPIN_MAX_NS;
        clock_gettime(CLOCK_MONOTONIC, &S.until);
        const long ns = S.until.tv_nsec + S.stretch_ns;
        S.until.tv_sec += ns / 1000000000L;
        S.until.tv_nsec = ns % 1000000000L;
        S.recent = 0;   /* the next stretch needs 3 new contended jobs */
        atomic_store_explicit(&P.nospin, 1, memory_order_relaxed);
    }
}

int nn_pool_spinning(void)
{
    return !atomic_load_explicit(&P.nospin, memory_order_relaxed);
}

int nn_pool_in_worker(void) { return nn_pool_worker_thread; }

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
    if (atomic_load_explicit(&P.nospin, memory_order_relaxed) && nn_pool_ns_since(&S.until) >= 0)
        atomic_store_explicit(&P.nospin, 0, memory_order_relaxed);   /* is it still contended? */
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
    /* The caller's work is timed from before the announcement, so that nothing stands
       between it and the caller's first claim (a clock read there cost back-to-back
       two-thread products ~4 %). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const unsigned j = atomic_load_explicit(&P.job, memory_order_relaxed) + 1;
    atomic_store_explicit(&P.ticket, (unsigned long long)j << 32, memory_order_release);
    atomic_store(&P.job, j);
    const int awake = atomic_load(&P.sleepers) == 0;
    if (!awake) {
        pthread_mutex_lock(&P.lock);
        pthread_cond_broadcast(&P.wake);
        pthread_mutex_unlock(&P.lock);
    }
    const long mine = nn_pool_work(j);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Every chunk is claimed; wait for those a worker is still running. */
    for (long i = 1; atomic_load_explicit(&P.done, memory_order_acquire) < n_chunks; i++) {
        NN_PAUSE();
        if ((i & 1023) == 0) sched_yield();
    }
    const long work_ns = nn_pool_ns_between(&t0, &t1);
    const long wait_ns = nn_pool_ns_since(&t1);
    nn_pool_note_job((awake && mine == n_chunks && work_ns > NN_POOL_MISS_NS)
                     || wait_ns > 2 * work_ns + NN_POOL_LATE_NS);
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

int nn_pool_spinning(void) { return 1; }

int nn_pool_in_worker(void) { return 0; }

#endif
