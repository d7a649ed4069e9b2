/*
 * Template loads and plans on a libuv worker thread (planner.h). Jobs wait in
 * a FIFO; the waiting ones go to the worker together, as one batch, whenever
 * no batch runs, so a busy loop hands over many per turn rather than one (a
 * plan takes microseconds; a turn of a loaded loop, a millisecond). The loop
 * thread owns the queue and the job records; the worker owns the libtosca
 * context, and the batch, from uv_queue_work to the after-work callback.
 */
#include <curl/curl.h>
#include <string.h>

#include "../base.h"
#include "planner.h"

struct orc_plan_job {
    struct orc_planner *planner;
    orc_plan_job_t *next; /* in the waiting queue, or the batch */
    char *name;
    char *text;
    json_t *inputs;
    orc_plan_done_fn done;
    void *data;
    bool in_batch;  /* handed to the worker */
    bool abandoned; /* in_batch, and no one wants the result: the loop thread's only */
    /* the worker's results */
    int rc;
    json_t *plan;
    tosca_diags_t diags;
};

struct orc_planner {
    uv_loop_t *loop;
    tosca_ctx_t *tosca;
    orc_plan_job_t *head, **tail; /* waiting */
    uv_work_t work;
    orc_plan_job_t *batch; /* running: a list through next */
    bool batch_running;     /* from uv_queue_work until its after-work callback ends */
    unsigned waiting, in_batch;
    bool closing;
};

static void job_free(orc_plan_job_t *job)
{
    orc_free(job->name);
    orc_free(job->text);
    json_decref(job->inputs);
    json_decref(job->plan);
    tosca_diags_fini(&job->diags);
    orc_free(job);
}

static void planner_free(struct orc_planner *p)
{
    tosca_ctx_free(p->tosca);
    orc_free(p);
    curl_global_cleanup();
}

int orc_planner_new(uv_loop_t *loop, tosca_ctx_t *tosca, struct orc_planner **out)
{
    struct orc_planner *p = orc_calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        orc_free(p);
        return ORC_ENOMEM;
    }
    p->loop = loop;
    p->tosca = tosca;
    p->tail = &p->head;
    *out = p;
    return 0;
}

/* Most jobs in one batch: the first of a batch waits for the last before it answers. */
#define BATCH_MAX 64

/* On the worker: the only code that touches the context. */
static void run_batch(uv_work_t *w)
{
    struct orc_planner *p = w->data;

    for (orc_plan_job_t *job = p->batch; job; job = job->next) {
        tosca_template_t *t = NULL;
        job->rc = tosca_load_buffer(p->tosca, job->name, job->text, strlen(job->text), &t,
                                    &job->diags);
        if (job->rc == 0)
            job->rc = tosca_plan(t, job->inputs, &job->plan, &job->diags);
        tosca_template_free(t);
    }
}

static void start_batch(struct orc_planner *p);

/* Answers each job of the batch that someone still wants, in order. A done may
 * abandon a later job of the batch, or submit: that waits for the next batch. */
static void batch_ran(uv_work_t *w, int status)
{
    struct orc_planner *p = w->data;
    orc_plan_job_t *job = p->batch, *next;

    p->batch = NULL;
    for (; job; job = next) {
        next = job->next;
        if (!job->abandoned) {
            json_t *plan = job->plan;
            if (status < 0 && job->rc == 0)
                job->rc = ORC_ECANCELED;
            job->plan = NULL; /* the callee's now */
            job->done(job->data, job->rc, job->rc == 0 ? plan : NULL, &job->diags);
            if (job->rc != 0)
                json_decref(plan);
        }
        p->in_batch--;
        job_free(job);
    }
    p->batch_running = false;
    if (p->closing) /* nothing waits: close ended the waiting jobs */
        planner_free(p);
    else
        start_batch(p);
}

static void start_batch(struct orc_planner *p)
{
    orc_plan_job_t **end = &p->batch;

    if (p->batch_running || p->head == NULL)
        return;
    for (unsigned n = 0; n < BATCH_MAX && p->head; n++) {
        orc_plan_job_t *job = p->head;
        p->head = job->next;
        job->next = NULL;
        job->in_batch = true;
        *end = job;
        end = &job->next;
        p->waiting--;
        p->in_batch++;
    }
    if (p->head == NULL)
        p->tail = &p->head;
    p->batch_running = true;
    p->work.data = p;
    if (uv_queue_work(p->loop, &p->work, run_batch, batch_ran) < 0) { /* only without a callback */
        for (orc_plan_job_t *job = p->batch; job; job = job->next)
            job->rc = ORC_ENOMEM;
        batch_ran(&p->work, 0);
    }
}

int orc_planner_submit(struct orc_planner *p, const char *name, const char *template_text,
                       const json_t *inputs, orc_plan_done_fn done, void *data,
                       orc_plan_job_t **out)
{
    orc_plan_job_t *job;

    if (out)
        *out = NULL;
    if (p->closing)
        return ORC_ECANCELED;
    if (p->waiting >= ORC_PLANNER_MAX_WAITING)
        return ORC_ELIMIT;
    job = orc_calloc(1, sizeof(*job));
    if (job == NULL)
        return ORC_ENOMEM;
    tosca_diags_init(&job->diags, false);
    job->planner = p;
    job->name = orc_strdup(name);
    job->text = orc_strdup(template_text);
    job->inputs = inputs ? json_deep_copy(inputs) : NULL;
    if (job->name == NULL || job->text == NULL || (inputs && job->inputs == NULL)) {
        job_free(job);
        return ORC_ENOMEM;
    }
    job->done = done;
    job->data = data;
    *p->tail = job;
    p->tail = &job->next;
    p->waiting++;
    if (out)
        *out = job;
    start_batch(p);
    return 0;
}

void orc_planner_abandon(orc_plan_job_t *job)
{
    struct orc_planner *p = job->planner;

    if (job->in_batch) {
        job->abandoned = true; /* batch_ran frees it */
        return;
    }
    for (orc_plan_job_t **at = &p->head; *at; at = &(*at)->next)
        if (*at == job) {
            *at = job->next;
            if (p->tail == &job->next)
                p->tail = at;
            p->waiting--;
            job_free(job);
            return;
        }
}

void orc_planner_close(struct orc_planner *p)
{
    if (p == NULL)
        return;
    p->closing = true;
    while (p->head != NULL) {
        orc_plan_job_t *job = p->head;
        p->head = job->next;
        p->waiting--;
        job->done(job->data, ORC_ECANCELED, NULL, &job->diags);
        job_free(job);
    }
    p->tail = &p->head;
    if (!p->batch_running)
        planner_free(p);
}

unsigned orc_planner_pending(const struct orc_planner *p)
{
    return p->waiting + p->in_batch;
}
