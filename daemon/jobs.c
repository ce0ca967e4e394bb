/*
 * jobs.c — the job queue and its worker threads. Two FIFO queues,
 * interactive (ask, complete) before background (indexing, log ingestion);
 * one worker is always kept free of background work so an ask never waits
 * behind a long sync. Cancellation is a flag the job polls between units of
 * work (tokens, files, batches); a queued job that is canceled ends at once.
 *
 * Invariants: the queue, the running list and the counters are guarded by
 * one mutex; a job is owned by the queue until a worker pops it, then by that
 * worker until it has posted its response and freed it. Responses go through
 * dmn_post() by connection id, so a canceled connection's replies vanish.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "daemon/internal.h"

/* Workers (and the engine's compute threads they start, which inherit it)
 * run this much nicer than the loop thread, so a request arriving while a
 * generation holds every core preempts it at once instead of waiting for
 * the end of a scheduler slice: the protocol's latency does not depend on
 * how busy the engine is. Linux sets nice per thread. */
#define DMN_WORKER_NICE 5

static void worker_lower_priority(void) {
#ifdef __linux__
  id_t tid = (id_t)syscall(SYS_gettid);
  errno = 0;
  int cur = getpriority(PRIO_PROCESS, tid);
  if (errno == 0) (void)setpriority(PRIO_PROCESS, tid, cur + DMN_WORKER_NICE > 19 ? 19 : cur + DMN_WORKER_NICE);
#endif
}

#define QUEUE_MAX 4096

struct dmn_jobs {
  dmn_server *srv;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  dmn_job *q[2], *q_tail[2]; /* per priority */
  dmn_job *running;          /* singly linked through ->next while running */
  int n_queued[2], n_running[2];
  int n_workers, stopping;
  uint64_t done, canceled;
  pthread_t *threads;
};

dmn_job *dmn_job_new(dmn_server *s, uint64_t conn_id, uint32_t req_id, const char *method, int prio,
                     cJSON *params, dmn_job_fn fn) {
  dmn_job *j = calloc(1, sizeof *j);
  if (!j) {
    cJSON_Delete(params);
    return NULL;
  }
  j->srv = s;
  j->conn_id = conn_id;
  j->req_id = req_id;
  j->prio = prio == DMN_PRIO_BACKGROUND ? DMN_PRIO_BACKGROUND : DMN_PRIO_INTERACTIVE;
  snprintf(j->method, sizeof j->method, "%s", method);
  j->params = params;
  j->fn = fn;
  j->t_queued = kv_now();
  return j;
}

static void job_free(dmn_job *j) {
  cJSON_Delete(j->params);
  free(j);
}

void dmn_job_notify(dmn_job *j, const char *method, cJSON *params) {
  uint64_t conn = __atomic_load_n(&j->conn_id, __ATOMIC_ACQUIRE);
  if (conn && !dmn_job_canceled(j)) {
    uint8_t *b;
    size_t n;
    kv_err e;
    if (ipc_encode_notify(method, params, &b, &n, &e) == 0) dmn_post(j->srv, conn, b, n);
  }
  cJSON_Delete(params);
}

/* Posts the response for a job that ended (rc, err) or never ran. */
static void job_finish(dmn_job *j, int rc, const kv_err *err, cJSON *result) {
  if (dmn_job_canceled(j) && rc == 0 && !result) rc = KV_ECANCELED;
  const char *msg = rc ? (err && err->msg[0] ? err->msg : kv_err_name(rc)) : NULL;
  dmn_post_response(j->srv, __atomic_load_n(&j->conn_id, __ATOMIC_ACQUIRE), j->req_id, rc, msg, result);
  cJSON_Delete(result);
}

/* Whether a job on the same repository is running: the indexer has one
 * writer per index, so two syncs of one repo never run at once. */
static int repo_busy(const dmn_jobs *q, const dmn_job *j) {
  if (!j->repo[0]) return 0;
  for (const dmn_job *r = q->running; r; r = r->next)
    if (!strcmp(r->repo, j->repo)) return 1;
  return 0;
}

/* The link to the first queued job of prio that may start now, or NULL.
 * Background jobs leave one worker free for interactive ones. (Locked.) */
static dmn_job **next_startable(dmn_jobs *q, int prio) {
  if (prio == DMN_PRIO_BACKGROUND && q->n_workers > 1 && q->n_running[DMN_PRIO_BACKGROUND] >= q->n_workers - 1)
    return NULL;
  for (dmn_job **pp = &q->q[prio]; *pp; pp = &(*pp)->next)
    if (!repo_busy(q, *pp)) return pp;
  return NULL;
}

static void *worker(void *arg) {
  dmn_jobs *q = arg;
  worker_lower_priority();
  pthread_mutex_lock(&q->mu);
  for (;;) {
    dmn_job **pp;
    while (!(pp = next_startable(q, DMN_PRIO_INTERACTIVE)) && !(pp = next_startable(q, DMN_PRIO_BACKGROUND))) {
      if (q->stopping && !q->q[0] && !q->q[1]) goto out;
      pthread_cond_wait(&q->cv, &q->mu);
    }
    dmn_job *j = *pp;
    int prio = j->prio;
    *pp = j->next;
    if (q->q_tail[prio] == j) { /* removed the tail: find the new one */
      q->q_tail[prio] = NULL;
      for (dmn_job *t = q->q[prio]; t; t = t->next) q->q_tail[prio] = t;
    }
    q->n_queued[prio]--;
    q->n_running[prio]++;
    j->running = 1;
    j->next = q->running;
    q->running = j;
    pthread_mutex_unlock(&q->mu);

    cJSON *result = NULL;
    kv_err err = {0};
    int rc = dmn_job_canceled(j) ? KV_ECANCELED : j->fn(j, &result, &err);
    if (rc == 0 && dmn_job_canceled(j) && !result) rc = kv_err_set(&err, KV_ECANCELED, "%s: canceled", j->method);
    if (rc) {
      cJSON_Delete(result);
      result = NULL;
    }
    job_finish(j, rc, &err, result);

    pthread_mutex_lock(&q->mu);
    for (dmn_job **pp = &q->running; *pp; pp = &(*pp)->next)
      if (*pp == j) {
        *pp = j->next;
        break;
      }
    q->n_running[j->prio]--;
    if (rc == KV_ECANCELED) q->canceled++;
    else q->done++;
    job_free(j);
    pthread_cond_broadcast(&q->cv); /* a background slot or a repo may have freed up */
  }
out:
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

int dmn_jobs_new(dmn_jobs **out, dmn_server *s, int workers, kv_err *err) {
  dmn_jobs *q = calloc(1, sizeof *q);
  if (!q) return kv_err_set(err, KV_ENOMEM, "jobs: out of memory");
  q->srv = s;
  q->n_workers = workers;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  q->threads = calloc((size_t)workers, sizeof *q->threads);
  if (!q->threads) {
    free(q);
    return kv_err_set(err, KV_ENOMEM, "jobs: out of memory");
  }
  for (int i = 0; i < workers; i++)
    if (pthread_create(&q->threads[i], NULL, worker, q) != 0) {
      q->n_workers = i;
      dmn_jobs_free(q);
      return kv_err_set(err, KV_EIO, "jobs: cannot start worker thread %d", i);
    }
  *out = q;
  return 0;
}

void dmn_jobs_free(dmn_jobs *q) {
  if (!q) return;
  dmn_jobs_cancel_all(q, 0);
  pthread_mutex_lock(&q->mu);
  q->stopping = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  for (int i = 0; i < q->n_workers; i++) pthread_join(q->threads[i], NULL);
  free(q->threads);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->cv);
  free(q);
}

int dmn_jobs_submit(dmn_jobs *q, dmn_job *j, kv_err *err) {
  pthread_mutex_lock(&q->mu);
  if (q->stopping || q->n_queued[0] + q->n_queued[1] >= QUEUE_MAX) {
    int stopping = q->stopping;
    pthread_mutex_unlock(&q->mu);
    job_free(j);
    return kv_err_set(err, KV_EBUSY, stopping ? "the daemon is stopping" : "job queue full (%d jobs)", QUEUE_MAX);
  }
  int p = j->prio;
  j->next = NULL;
  if (q->q_tail[p]) q->q_tail[p]->next = j;
  else q->q[p] = j;
  q->q_tail[p] = j;
  q->n_queued[p]++;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return 0;
}

/* Removes queued jobs matching pred from both queues into *out (locked). */
typedef int (*match_fn)(const dmn_job *j, uint64_t conn, uint32_t req, int flag);
static int cancel_matching(dmn_jobs *q, match_fn pred, uint64_t conn, uint32_t req, int flag, int drop_reply) {
  int n = 0;
  dmn_job *ended = NULL;
  if (!q) return 0; /* after shutdown joined the workers */
  pthread_mutex_lock(&q->mu);
  for (dmn_job *j = q->running; j; j = j->next)
    if (pred(j, conn, req, flag)) {
      __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
      if (drop_reply) __atomic_store_n(&j->conn_id, 0, __ATOMIC_RELEASE);
      n++;
    }
  for (int p = 0; p < 2; p++) {
    dmn_job **pp = &q->q[p];
    q->q_tail[p] = NULL;
    while (*pp) {
      dmn_job *j = *pp;
      if (pred(j, conn, req, flag)) {
        *pp = j->next;
        q->n_queued[p]--;
        q->canceled++;
        j->next = ended;
        ended = j;
        n++;
      } else {
        q->q_tail[p] = j;
        pp = &j->next;
      }
    }
  }
  pthread_mutex_unlock(&q->mu);
  while (ended) {
    dmn_job *j = ended;
    ended = j->next;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELEASE);
    if (drop_reply) j->conn_id = 0;
    kv_err e;
    kv_err_set(&e, KV_ECANCELED, "%s: canceled before it started", j->method);
    job_finish(j, KV_ECANCELED, &e, NULL);
    job_free(j);
  }
  return n;
}

static int m_req(const dmn_job *j, uint64_t conn, uint32_t req, int flag) {
  return j->conn_id == conn && j->req_id == req;
}
static int m_conn(const dmn_job *j, uint64_t conn, uint32_t req, int flag) { return j->conn_id == conn; }
static int m_all(const dmn_job *j, uint64_t conn, uint32_t req, int flag) {
  return !flag || j->prio == DMN_PRIO_BACKGROUND;
}

int dmn_jobs_cancel(dmn_jobs *q, uint64_t conn_id, uint32_t req_id) {
  return cancel_matching(q, m_req, conn_id, req_id, 0, 0) > 0;
}
int dmn_jobs_cancel_conn(dmn_jobs *q, uint64_t conn_id) { return cancel_matching(q, m_conn, conn_id, 0, 0, 1); }
void dmn_jobs_cancel_all(dmn_jobs *q, int only_background) { cancel_matching(q, m_all, 0, 0, only_background, 0); }

void dmn_jobs_counts(dmn_jobs *q, dmn_job_counts *c) {
  memset(c, 0, sizeof *c);
  if (!q) return;
  pthread_mutex_lock(&q->mu);
  c->queued_interactive = q->n_queued[0];
  c->queued_background = q->n_queued[1];
  c->running_interactive = q->n_running[0];
  c->running_background = q->n_running[1];
  c->done = q->done;
  c->canceled = q->canceled;
  pthread_mutex_unlock(&q->mu);
}

int dmn_jobs_has_repo(dmn_jobs *q, const char *method, const char *repo) {
  int found = 0;
  if (!q) return 0;
  pthread_mutex_lock(&q->mu);
  for (dmn_job *j = q->q[DMN_PRIO_BACKGROUND]; j && !found; j = j->next)
    found = !strcmp(j->method, method) && !strcmp(j->repo, repo);
  pthread_mutex_unlock(&q->mu);
  return found;
}
