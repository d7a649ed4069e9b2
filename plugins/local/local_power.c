/*
 * The local site's ABI 2 slots (docs/local-site.md, "Stop and start"):
 *   stop_workload  holds one workload: its supervision ends (no restart),
 *                  its process group gets SIGTERM, then SIGKILL after
 *                  stop_timeout_ms; calls back once it no longer runs;
 *   stop           holds every workload of a node (remembering the
 *                  services that ran, to resume them) and marks the node
 *                  STOPPED; calls back once none runs;
 *   start          spawns the resumed services again and calls back once
 *                  each is ready (local_ready.c), res_state READY.
 * Held workloads and stopped nodes are persisted in state.json, so a
 * daemon restart (adopt) never starts them again. A node keeps its
 * capacity (CPUs, memory, GPUs) while it is stopped. The ops that wait
 * hang on the workload's or the node's stop_ops list and are completed
 * from node_step (local.c) through local_stop_ops_step.
 */
#include <stdio.h>
#include <string.h>

#include "local.h"

/* ---- stop ops waiting ------------------------------------------------------------------ */

static void finish_list(struct lop **head, int status, const char *why)
{
    while (*head != NULL) {
        struct lop *lo = *head;
        *head = lo->wnext;
        lo->wnext = NULL;
        if (why != NULL)
            snprintf(lo->op->error, sizeof(lo->op->error), "%s", why);
        lop_finish(lo, status); /* deferred: a callback never runs inside a slot call */
    }
}

void local_stop_ops_step(struct local_node *n)
{
    struct local *s = n->s;
    bool live = false, draining = false;

    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        if (local_wl_live(w))
            live = true; /* its end kicks again */
        else if ((w->stop_ops != NULL || n->stop_ops != NULL) && local_wl_draining(w))
            draining = true; /* the rest of its group is exiting: look again soon */
        else
            finish_list(&w->stop_ops, 0, NULL);
    }
    if (draining)
        local_node_kick_in(n, 10);
    if (live || draining)
        return;
    for (struct lop *lo = n->stop_ops; lo != NULL; lo = lo->wnext)
        lo->status = local_report(s, lo->op, n);
    while (n->stop_ops != NULL) {
        struct lop *lo = n->stop_ops;
        n->stop_ops = lo->wnext;
        lo->wnext = NULL;
        lop_finish(lo, lo->status);
    }
}

void local_stop_ops_abort(struct local_node *n, int status, const char *why)
{
    char msg[ORC_OP_ERROR_LEN];

    snprintf(msg, sizeof(msg), "local: %s %s", n->name, why);
    for (struct local_wl *w = n->wls; w != NULL; w = w->next)
        finish_list(&w->stop_ops, status, msg);
    finish_list(&n->stop_ops, status, msg);
}

int local_stop_cancel(struct lop *lo)
{
    struct lop **pp;
    const char *what;
    int rc;

    if (lo->kind == LOP_STOP_WL) {
        struct local_wl *w = lo->work;
        pp = &w->stop_ops;
        what = w->id;
    } else {
        struct local_node *n = lo->work;
        pp = &n->stop_ops;
        what = n->name;
    }
    for (; *pp != NULL && *pp != lo; pp = &(*pp)->wnext)
        ;
    if (*pp == NULL)
        return ORC_ENOTFOUND;
    snprintf(lo->op->error, sizeof(lo->op->error), "local: stop of %s canceled (the stop goes on)",
             what);
    rc = lop_defer(lo, ORC_ECANCELED);
    if (rc < 0)
        return rc;
    *pp = lo->wnext;
    lo->wnext = NULL;
    lo->work = NULL;
    lo->canceled = true;
    return 0;
}

/* lo waits on *head until what it stopped no longer runs. */
static void wait_on(struct lop *lo, struct lop **head, void *work)
{
    lo->work = work;
    lo->wnext = *head;
    *head = lo;
}

/* ---- stop_workload ------------------------------------------------------------------------ */

int local_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    struct local *s = state;
    struct local_node *n;
    struct local_wl *w;
    struct lop *lo;
    bool live;
    int rc = local_node_for(s, op, name, workload, &n);

    if (rc < 0)
        return rc;
    lo = lop_new(s, op, LOP_STOP_WL);
    if (lo == NULL)
        return ORC_ENOMEM;
    w = local_wl_find(n, workload ? workload : "main");
    op->exists = w != NULL && local_wl_running(w);
    if (op->exists) {
        live = local_wl_hold(w, false);
        local_persist(s);
    } else {
        live = w != NULL && w->held && local_wl_live(w); /* a stop under way: wait for it too */
    }
    if (live || (w != NULL && local_wl_draining(w))) {
        wait_on(lo, &w->stop_ops, w);
        local_node_kick(n); /* a group still emptying: node_step looks again */
        return 0;
    }
    rc = lop_defer(lo, 0);
    if (rc < 0)
        lop_free(lo);
    return rc;
}

/* ---- stop and start of a node --------------------------------------------------------------- */

/* The node of a stop/start, or < 0; *n NULL: no such node. */
static int power_node(struct local *s, orc_op_t *op, const char *name, struct local_node **n)
{
    if (!local_node_name_ok(name))
        return local_bad_name(op, "resource name", name);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    *n = local_node_find(s, name);
    if (*n != NULL && (*n)->deleting)
        return orc_op_failf(op, ORC_ECONFLICT, "local: %s is being deleted", name);
    return 0;
}

/* Holds every workload of n that runs; true while one of them (or one
 * stopped before) is still running. */
static bool hold_all(struct local_node *n)
{
    bool live = false;

    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        if (local_wl_running(w))
            live |= local_wl_hold(w, w->service); /* jobs are not run again by start */
        else
            live |= w->held && local_wl_live(w);
        live |= local_wl_draining(w);
    }
    return live;
}

int local_stop(void *state, orc_op_t *op, const char *name)
{
    struct local *s = state;
    struct local_node *n = NULL;
    struct lop *lo;
    bool live;
    int rc = power_node(s, op, name, &n);

    if (rc < 0)
        return rc;
    lo = lop_new(s, op, LOP_STOP);
    if (lo == NULL)
        return ORC_ENOMEM;
    if (n == NULL) { /* nothing runs under that name: stopped as far as it goes */
        rc = local_report(s, op, NULL);
        goto out_defer;
    }
    if (!n->stopped)
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO, "local: node %s stopping",
                              n->name);
    n->stopped = true;
    live = hold_all(n);
    local_persist(s);
    if (live) {
        wait_on(lo, &n->stop_ops, n);
        local_node_kick(n); /* a group still emptying: node_step looks again */
        return 0;
    }
    rc = local_report(s, op, n);
out_defer:
    if (rc == 0)
        rc = lop_defer(lo, 0);
    if (rc < 0)
        lop_free(lo);
    return rc;
}

/* Checks of a start: < 0 with op->error, else 0 and *todo (something to
 * start again). */
static int node_start_check(struct local *s, orc_op_t *op, const char *name, struct local_node *n,
                            bool *todo)
{
    *todo = n != NULL && n->stopped;
    if (n == NULL)
        return orc_op_failf(op, ORC_ENOTFOUND, "local: no node %s", name);
    if (n->failed != NULL)
        return orc_op_failf(op, ORC_EDRIVER, "local: %s is FAILED (%s): deprovision it", name,
                            n->failed);
    if (n->stop_ops != NULL)
        return orc_op_failf(op, ORC_ECONFLICT, "local: %s is still stopping", name);
    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        if (!(w->held && w->resume))
            continue;
        if (local_wl_live(w))
            return orc_op_failf(op, ORC_ECONFLICT, "local: %s is still stopping (workload %s)",
                                name, w->id);
        *todo = true;
    }
    return 0;
}

/* Spawns n's resumed workloads again; services get a readiness wait of lo. */
static int resume_all(struct local *s, struct lop *lo, struct local_node *n)
{
    char err[300];
    int rc = 0, first = 0;

    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        if (!(w->held && w->resume))
            continue;
        rc = local_wl_release(w, err, sizeof(err));
        if (rc < 0 && first == 0) {
            first = orc_op_failf(lo->op, rc == ORC_ENOMEM ? rc : ORC_EDRIVER,
                                 "local: cannot start workload %s of %s again: %s", w->id, n->name,
                                 err);
        } else if (rc == 0 && w->service) {
            rc = local_ready_wait(lo, w);
            if (rc < 0 && first == 0)
                first = rc;
        }
    }
    return first;
}

int local_start(void *state, orc_op_t *op, const char *name)
{
    struct local *s = state;
    struct local_node *n = NULL;
    struct lop *lo;
    bool todo = false;
    int rc = power_node(s, op, name, &n);

    if (rc == 0)
        rc = node_start_check(s, op, name, n, &todo);
    if (rc < 0)
        return rc;
    lo = lop_new(s, op, LOP_START_RES);
    if (lo == NULL)
        return ORC_ENOMEM;
    if (todo) {
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO, "local: node %s starting",
                              n->name);
        n->stopped = false;
        rc = resume_all(s, lo, n);
        local_persist(s);
    }
    if (rc == 0 && lo->waiting > 0)
        return 0; /* local_ready_done answers once every service is ready */
    if (rc == 0)
        rc = local_report(s, op, n);
    if (rc == 0)
        rc = lop_defer(lo, 0);
    if (rc < 0) {
        local_ready_drop(lo); /* what started goes on, supervised */
        lop_free(lo);
    }
    return rc;
}
