/*
 * app.c — builds kvasird from its parts and wires them together: the
 * server (loop and connections, server.c), the job queue (jobs.c), the
 * state of each driven module (model.c, policy.c, log_jobs.c) and the repo
 * registry (repos.c, whose watchers queue index jobs). The server's hooks
 * lead here: requests go to the router (methods.c), cancellations and
 * departed connections to the job queue, the drain and SIGHUP to each part.
 *
 * Invariants: the top of the daemon, called by nothing in daemon/ but
 * cmdline.c; the parts are created bottom-up (the registry last: loading it
 * queues syncs, which need the queue) and freed top-down after the loop has
 * closed every handle.
 */
#include <string.h>
#include <unistd.h>

#include "daemon/internal.h"
#include "indexer/indexer.h"

static void h_request(dmn_server *s, const dmn_request *r) { dmn_route(s, r); }

static int h_cancel(dmn_server *s, uint64_t conn_id, uint32_t id) {
  return dmn_jobs_cancel(dmn_server_jobs(s), conn_id, id);
}

static int h_conn_gone(dmn_server *s, uint64_t conn_id) { return dmn_jobs_cancel_conn(dmn_server_jobs(s), conn_id); }

static int h_active(dmn_server *s) {
  dmn_job_counts c;
  dmn_jobs_counts(dmn_server_jobs(s), &c);
  return c.queued_interactive + c.running_interactive + c.running_background;
}

/* Background work (indexing, ingestion) stops now; interactive answers may finish. */
static void h_stopping(dmn_server *s) { dmn_jobs_cancel_all(dmn_server_jobs(s), 1); }

static void h_closing(dmn_server *s) {
  dmn_app *a = dmn_server_app(s);
  dmn_jobs_cancel_all(a->jobs, 0);
  dmn_jobs_free(a->jobs); /* joins the workers: their last replies are in the outbox */
  a->jobs = NULL;
  dmn_repos_close_watchers(a->repos);
}

static void h_reload(dmn_server *s) {
  dmn_app *a = dmn_server_app(s);
  kv_err e;
  if (dmn_repos_reload(a->repos, &e)) dmn_log(s, DMN_ERROR, "daemon.reload", "%s", e.msg);
  dmn_backend_reload(a->backend);
  dmn_gate_reload(a->gate); /* the policy files of every cached repo, read now */
}

static const dmn_hooks HOOKS = {h_request, h_cancel, h_conn_gone, h_active, h_stopping, h_closing, h_reload};

void dmn_config_default(dmn_config *c) {
  memset(c, 0, sizeof *c);
  c->watch = 1;
}

static void free_parts(dmn_app *a) {
  dmn_repos_free(a->repos);
  dmn_logstores_free(a->logstores);
  dmn_gate_free(a->gate);
  dmn_backend_free(a->backend);
  memset(a, 0, sizeof *a);
}

int dmn_server_new(dmn_server **out, const dmn_config *cfg, kv_err *err) {
  dmn_server *s;
  idx_global_init(); /* for the daemon's life: workers open indexes */
  int rc = dmn_server_open(&s, cfg, &HOOKS, err);
  if (rc) {
    idx_global_shutdown();
    return rc;
  }
  dmn_app *a = dmn_server_app(s);
  int workers = cfg->workers > 0 ? cfg->workers : 3;
  if (!rc) rc = dmn_jobs_new(&a->jobs, s, workers, err);
  if (!rc) rc = dmn_backend_new(&a->backend, s, err);
  if (!rc) rc = dmn_gate_new(&a->gate, s, err);
  if (!rc) rc = dmn_logstores_new(&a->logstores, err);
  if (!rc) rc = dmn_repos_new(&a->repos, s, dmn_server_config(s)->data_dir, dmn_index_changed, err);
  if (rc) {
    dmn_server_shutdown(s); /* hooks.closing: the queue, if any, is joined */
    free_parts(a);
    dmn_server_close(s);
    idx_global_shutdown();
    return rc;
  }
  dmn_log(s, DMN_INFO, "daemon.start", "pid=%d socket=%s workers=%d", (int)getpid(), dmn_server_socket(s), workers);
  *out = s;
  return 0;
}

void dmn_server_free(dmn_server *s) {
  if (!s) return;
  dmn_server_shutdown(s);
  free_parts(dmn_server_app(s));
  dmn_server_close(s);
  idx_global_shutdown(); /* after the workers were joined (h_closing) */
}
