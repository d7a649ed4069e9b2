/*
 * Template loads and plans off the event loop. libtosca reads a template,
 * its imports (files, and URLs from imports.urls, fetched with a blocking
 * transfer) and builds the plan; that can take seconds, so the planner runs
 * it on a thread of its own and hands the result back on the loop. Jobs run
 * one at a time, in the order submitted (those waiting go to the thread as one
 * batch): the libtosca context (its cache of parsed type files) is touched by
 * one thread at a time, and a slow fetch delays templates only, never the
 * loop or libuv's pool.
 */
#ifndef ORC_API_PLANNER_H
#define ORC_API_PLANNER_H

#include <jansson.h>
#include <uv.h>

#include "tosca/tosca.h"

struct orc_planner;
typedef struct orc_plan_job orc_plan_job_t;

/* The outcome, on the loop thread: rc 0 and the plan (the callee owns it), or
 * rc < 0 with the problems in d (ORC_ETOSCA, ORC_ELIMIT) or another code
 * (ORC_ECANCELED: the planner closed before the job ran). d is valid during
 * the call only. */
typedef void (*orc_plan_done_fn)(void *data, int rc, json_t *plan, const tosca_diags_t *d);

/* Most jobs that may wait behind the running ones, and most bytes of template text they
 * may hold (one job always may); more are refused. Each waiting job is a request whose
 * client waits on its connection, so limits.max_connections bounds them too. */
#define ORC_PLANNER_MAX_WAITING 4096
#define ORC_PLANNER_MAX_WAITING_BYTES (64u << 20)

/* Creates a planner that owns tosca (freed with it). 0 and *out, or ORC_ENOMEM. */
int orc_planner_new(uv_loop_t *loop, tosca_ctx_t *tosca, struct orc_planner **out);

/* Closes p: the done of each waiting job runs with ORC_ECANCELED, from here; the
 * running one finishes and p frees itself and its context then (the loop must
 * run). NULL-safe. */
void orc_planner_close(struct orc_planner *p);

/* Queues the load of template_text (named name in messages) and its plan with
 * inputs (copied; NULL: none). done runs exactly once, on a later loop turn,
 * unless the job is abandoned. Returns 0 and *out (NULL-able), ORC_ELIMIT
 * when ORC_PLANNER_MAX_WAITING jobs wait already or their texts and this one would
 * exceed ORC_PLANNER_MAX_WAITING_BYTES, ORC_ECANCELED when p is
 * closing, or ORC_ENOMEM. */
int orc_planner_submit(struct orc_planner *p, const char *name, const char *template_text,
                       const json_t *inputs, orc_plan_done_fn done, void *data,
                       orc_plan_job_t **out);

/* The same for a load and its description (tosca_template_describe) in place of the
 * plan: done gets the description as plan. */
int orc_planner_describe(struct orc_planner *p, const char *name, const char *template_text,
                         orc_plan_done_fn done, void *data, orc_plan_job_t **out);

/* The caller no longer wants the result (its request went away): done will
 * not run; the job is dropped, or finishes unseen if it is running. */
void orc_planner_abandon(orc_plan_job_t *job);

/* Jobs waiting or running (for tests and /metrics). */
unsigned orc_planner_pending(const struct orc_planner *p);

#endif
