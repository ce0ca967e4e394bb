/*
 * pool.c — a fixed set of worker threads with low-latency fork/join.
 *
 * Decode runs a couple of hundred small matvecs per token, so waking
 * workers must cost microseconds, not a condvar round trip each time.
 * Workers spin on a sequence word for a short while after each job and only
 * then sleep on it with a futex; spinning threads call sched_yield every few
 * hundred pauses so that on an oversubscribed machine they hand the core to
 * whoever can use it (a preempted worker holding a task, the main thread); the caller wakes sleepers only when some
 * worker announced it is sleeping (seq_cst store/load pairs on both sides,
 * so either the caller sees the sleeper or the sleeper sees the new job).
 *
 * Invariants: one job at a time; a krn_pool_run issued while a job is open
 * (from inside a task, or from another thread) runs its tasks inline. Task indices are claimed with a CAS on
 * one 64-bit word `claim` = (job id | n_tasks | next index), so a claim
 * succeeds only while that job is open, and the claimer reads fn/ctx after
 * it; a worker that is late for job g can never run an index of job g+1 with
 * g's function. The caller returns once `done` reaches n_tasks, i.e. every
 * task of this job ran and no worker touches the job's context any more.
 */
#include "kernels/cpu/krn_internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/cpu/krn_pool_internal.h"

#define SPIN_ITERS 20000 /* roughly 0.1-2 ms of pause loops before sleeping */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static void futex_wait(_Atomic uint32_t *addr, uint32_t val) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}
static void futex_wake_all(_Atomic uint32_t *addr) {
  syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* claim word: job id (24 bits) | n_tasks (20 bits) | next index (20 bits). */
#define CLAIM_BITS 20
#define CLAIM_MASK ((1u << CLAIM_BITS) - 1)
#define MAX_TASKS ((int)CLAIM_MASK)

/* Claim and run tasks of whatever job is open until none are left. fn and
 * ctx are read only after a successful claim: the acquire CAS synchronizes
 * with the release store that opened the job, and the caller does not
 * rewrite them before every claimed task reported done. */
static void run_tasks(krn_pool *p) {
  for (;;) {
    uint64_t v = atomic_load_explicit(&p->claim, memory_order_acquire);
    const uint32_t next = (uint32_t)v & CLAIM_MASK, n = (uint32_t)(v >> CLAIM_BITS) & CLAIM_MASK;
    if (next >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&p->claim, &v, v + 1, memory_order_acq_rel, memory_order_relaxed))
      continue;
    p->fn(p->ctx, (int)next);
    atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel);
  }
}

static void *worker_main(void *arg) {
  krn_pool *p = arg;
  uint32_t seen = 0;
  for (;;) {
    uint32_t s = atomic_load_explicit(&p->seq, memory_order_acquire);
    for (int i = 0; s == seen && i < SPIN_ITERS; i++) {
      cpu_relax();
      if ((i & 127) == 127) sched_yield(); /* let runnable threads have this core */
      s = atomic_load_explicit(&p->seq, memory_order_acquire);
    }
    while (s == seen) {
      atomic_fetch_add(&p->sleepers, 1);
      if (atomic_load(&p->seq) == seen) futex_wait(&p->seq, seen);
      atomic_fetch_sub(&p->sleepers, 1);
      s = atomic_load_explicit(&p->seq, memory_order_acquire);
    }
    seen = s;
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
    run_tasks(p); /* the seq word only says "look"; claim says what */
  }
}

int krn_pool_create(krn_pool **out, int n_threads) {
  *out = NULL;
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
  }
  if (n_threads > 256) n_threads = 256;
  krn_pool *p = calloc(1, sizeof *p);
  if (!p) return KV_ENOMEM;
  p->n = n_threads;
  p->isa = krn__isa_level();
  if (n_threads > 1) {
    p->th = calloc((size_t)n_threads - 1, sizeof *p->th);
    if (!p->th) { free(p); return KV_ENOMEM; }
  }
  for (int i = 0; i < n_threads - 1; i++) {
    if (pthread_create(&p->th[i], NULL, worker_main, p) != 0) {
      p->n = i + 1; /* the caller plus the workers that did start */
      krn_pool_free(p);
      return KV_EIO;
    }
  }
  *out = p;
  return 0;
}

void krn_pool_free(krn_pool *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  atomic_fetch_add(&p->seq, 1);
  futex_wake_all(&p->seq);
  for (int i = 0; i < p->n - 1; i++) pthread_join(p->th[i], NULL);
  free(p->th);
  free(p->scratch);
  free(p);
}

int krn_pool_threads(const krn_pool *p) { return p ? p->n : 1; }

typedef struct {
  void (*fn)(void *, int);
  void *ctx;
  int base;
} offset_job;
static void offset_run(void *ctx, int i) {
  offset_job *oj = ctx;
  oj->fn(oj->ctx, oj->base + i);
}

void krn_pool_run(krn_pool *p, void (*fn)(void *ctx, int i), void *ctx, int n_tasks) {
  if (n_tasks <= 0) return;
  /* Inline when there is nothing to share, and when a job is already open:
   * a task calling back into its own pool, or a second thread using it at
   * the same time, gets correct (serial) execution instead of corruption. */
  if (!p || p->n == 1 || n_tasks == 1 || atomic_exchange_explicit(&p->running, 1, memory_order_acquire)) {
    for (int i = 0; i < n_tasks; i++) fn(ctx, i);
    return;
  }
  if (n_tasks > MAX_TASKS) { /* the claim word holds 20-bit counts */
    atomic_store_explicit(&p->running, 0, memory_order_release);
    for (int base = 0; base < n_tasks; base += MAX_TASKS) {
      offset_job oj = {fn, ctx, base};
      krn_pool_run(p, offset_run, &oj, n_tasks - base < MAX_TASKS ? n_tasks - base : MAX_TASKS);
    }
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  atomic_store_explicit(&p->done, 0, memory_order_relaxed);
  p->gen = (p->gen + 1) & 0xFFFFFFu;
  const uint64_t open = ((uint64_t)p->gen << (2 * CLAIM_BITS)) | ((uint64_t)n_tasks << CLAIM_BITS);
  atomic_store_explicit(&p->claim, open, memory_order_release);
  atomic_fetch_add(&p->seq, 1); /* seq_cst: pairs with the sleepers check */
  if (atomic_load(&p->sleepers) > 0) futex_wake_all(&p->seq);
  run_tasks(p);
  /* Wait for tasks other threads claimed. Yield often: on a busy machine the
   * thread holding the last task may be waiting for a core, maybe this one. */
  for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
    cpu_relax();
    if ((i & 31) == 31) sched_yield();
  }
  atomic_store_explicit(&p->running, 0, memory_order_release);
}

/* Scratch memory owned by the pool (activations quantized for a matmul).
 * Grows, never shrinks; NULL on allocation failure. The caller must hold
 * scratch_busy (krn__pool_scratch_acquire). */
int krn__pool_scratch_acquire(krn_pool *p) { return !atomic_exchange_explicit(&p->scratch_busy, 1, memory_order_acquire); }
void krn__pool_scratch_release(krn_pool *p) { atomic_store_explicit(&p->scratch_busy, 0, memory_order_release); }

void *krn__pool_scratch(krn_pool *p, size_t bytes) {
  if (p->scratch_cap < bytes) {
    void *s = NULL;
    if (posix_memalign(&s, 64, bytes ? bytes : 64) != 0) return NULL;
    free(p->scratch);
    p->scratch = s;
    p->scratch_cap = bytes;
  }
  return p->scratch;
}
