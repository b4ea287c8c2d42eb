/* parallel.c: the worker pool of the CPU kernels (see include/sattn/cpu.h).
 *
 * Workers are created on first use and live as long as the process. A job
 * is one function over a range of task numbers; threads take tasks from a
 * shared atomic counter, so a task is done once and the split adapts to
 * uneven tasks (a causal row tile costs more than another). One job runs
 * at a time; a concurrent or nested call runs serially in its caller.
 *
 * A kernel is often two jobs back to back (the flash path's pack, then its
 * tiles), and a model calls kernels back to back: a worker that has
 * finished waits SPIN_NS for the next job by polling before it sleeps on
 * the condition variable, and the caller polls as long for the workers to
 * finish, so that short jobs do not pay a futex wake-up each way. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "sattn/cpu.h"

#define MAX_THREADS 64
#define SPIN_NS 200000 /* 0.2 ms */

typedef struct {
  void (*fn)(void *, int64_t);
  void *ctx;
  int64_t n;
  atomic_llong next;
  int participants; /* workers that may take tasks (the caller excluded) */
} Job;

static struct {
  pthread_mutex_t lock;      /* guards generation, job, finished */
  pthread_cond_t start, done;
  pthread_mutex_t busy;      /* held by the caller of the running job */
  pthread_t threads[MAX_THREADS];
  int n_workers;
  atomic_long generation;
  Job job;
  atomic_int finished;
  atomic_int want; /* threads to use, 0 = default */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Polls until done() or SPIN_NS have passed; whether done() held. The
 * caller then checks again under the lock, so polling only saves sleeps. */
static bool spin_until(bool (*done)(long), long arg) {
  int64_t end = 0;
  for (int i = 0;; i++) {
    if (done(arg))
      return true;
    relax();
    if ((i & 63) == 63) {
      int64_t t = now_ns();
      if (!end)
        end = t + SPIN_NS;
      else if (t > end)
        return false;
    }
  }
}

static bool new_job(long seen) { return atomic_load(&pool.generation) != seen; }
static bool all_finished(long participants) { return atomic_load(&pool.finished) >= participants; }

static void run_tasks(Job *j) {
  for (;;) {
    int64_t i = atomic_fetch_add(&j->next, 1);
    if (i >= j->n)
      return;
    j->fn(j->ctx, i);
  }
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  long seen = 0;
  pthread_mutex_lock(&pool.lock);
  for (;;) {
    if (pool.generation == seen) {
      pthread_mutex_unlock(&pool.lock);
      spin_until(new_job, seen);
      pthread_mutex_lock(&pool.lock);
    }
    while (pool.generation == seen)
      pthread_cond_wait(&pool.start, &pool.lock);
    seen = pool.generation;
    bool take = id < pool.job.participants;
    pthread_mutex_unlock(&pool.lock);
    if (take)
      run_tasks(&pool.job);
    pthread_mutex_lock(&pool.lock);
    if (take && ++pool.finished == pool.job.participants)
      pthread_cond_signal(&pool.done);
  }
  return NULL;
}

static int default_threads(void) {
  const char *env = getenv("SATTN_NUM_THREADS");
  long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

static void make_pool(void) {
  /* enough workers for any later sattn_cpu_set_threads up to the CPU count */
  int n = default_threads();
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > n)
    n = cpus > MAX_THREADS ? MAX_THREADS : (int)cpus;
  for (int i = 0; i < n - 1; i++) {
    if (pthread_create(&pool.threads[i], NULL, worker, (void *)(intptr_t)i) != 0)
      break; /* fewer workers; the caller still runs everything */
    pthread_detach(pool.threads[i]);
    pool.n_workers++;
  }
}

void sattn_cpu_set_threads(int n) { atomic_store(&pool.want, n < 0 ? 0 : n > MAX_THREADS ? MAX_THREADS : n); }

int sattn_cpu_threads(void) {
  int w = atomic_load(&pool.want);
  return w > 0 ? w : default_threads();
}

int32_t sattn_cpu_parallel(void (*fn)(void *ctx, int64_t i), void *ctx, int64_t n) {
  if (n <= 0)
    return 0;
  int threads = sattn_cpu_threads();
  if (threads > 1)
    pthread_once(&pool_once, make_pool);
  if (threads <= 1 || n == 1 || pool.n_workers == 0 || pthread_mutex_trylock(&pool.busy) != 0) {
    for (int64_t i = 0; i < n; i++)
      fn(ctx, i);
    return 0;
  }
  int helpers = threads - 1 < pool.n_workers ? threads - 1 : pool.n_workers;
  if (helpers > n - 1)
    helpers = (int)(n - 1);
  pthread_mutex_lock(&pool.lock);
  pool.job.fn = fn;
  pool.job.ctx = ctx;
  pool.job.n = n;
  atomic_store(&pool.job.next, 0);
  pool.job.participants = helpers;
  pool.finished = 0;
  pool.generation++;
  pthread_cond_broadcast(&pool.start);
  pthread_mutex_unlock(&pool.lock);
  run_tasks(&pool.job);
  spin_until(all_finished, helpers);
  pthread_mutex_lock(&pool.lock);
  while (pool.finished < pool.job.participants)
    pthread_cond_wait(&pool.done, &pool.lock);
  pthread_mutex_unlock(&pool.lock);
  pthread_mutex_unlock(&pool.busy);
  return 0;
}
