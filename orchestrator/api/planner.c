/*
 * Template loads and plans on the planner's own thread (planner.h). Jobs wait
 * in a FIFO; the waiting ones go to the thread together, as one batch,
 * whenever no batch runs, so a busy loop hands over many per turn rather than
 * one (a plan takes microseconds; a turn of a loaded loop, a millisecond). The
 * thread is the planner's alone, not libuv's pool: there getaddrinfo calls
 * stuck on a dead DNS server could hold every worker and stall the answers of
 * templates that fetch nothing. The loop thread owns the queue and the job
 * records; the planner thread owns the libtosca context, and the batch from
 * the hand-over to the async wake-up (both under the mutex).
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
    size_t text_len;
    json_t *inputs;
    bool describe; /* tosca_template_describe instead of the plan */
    orc_plan_done_fn done;
    void *data;
    bool in_batch;  /* handed to the thread */
    bool abandoned; /* in_batch, and no one wants the result: the loop thread's only */
    /* the thread's results */
    int rc;
    json_t *plan;
    tosca_diags_t diags;
};

struct orc_planner {
    uv_loop_t *loop;
    tosca_ctx_t *tosca;
    orc_plan_job_t *head, **tail; /* waiting */
    unsigned waiting, in_batch;
    size_t waiting_bytes; /* of the waiting jobs' template texts */
    bool batch_running; /* handed over, its answers not given yet (loop thread) */
    bool closing;
    uv_thread_t thread;
    uv_async_t ran; /* the thread finished the batch */
    /* under mu: what the two threads hand each other */
    uv_mutex_t mu;
    uv_cond_t cond;
    orc_plan_job_t *batch; /* to run (set by the loop), run (cleared by the loop) */
    bool batch_ready;      /* set by the loop, cleared by the thread when done */
    bool quit;
};

/* Most jobs in one batch: the first of a batch waits for the last before it answers. */
#define BATCH_MAX 64

static void job_free(orc_plan_job_t *job)
{
    orc_free(job->name);
    orc_free(job->text);
    json_decref(job->inputs);
    json_decref(job->plan);
    tosca_diags_fini(&job->diags);
    orc_free(job);
}

static void run_batch(struct orc_planner *p, orc_plan_job_t *batch)
{
    for (orc_plan_job_t *job = batch; job; job = job->next) {
        tosca_template_t *t = NULL;
        job->rc = tosca_load_buffer(p->tosca, job->name, job->text, strlen(job->text), &t,
                                    &job->diags);
        if (job->rc == 0 && job->describe)
            job->rc = tosca_template_describe(t, &job->plan);
        else if (job->rc == 0)
            job->rc = tosca_plan(t, job->inputs, &job->plan, &job->diags);
        tosca_template_free(t);
    }
}

/* The planner thread: the only code that touches the context. */
static void planner_thread(void *arg)
{
    struct orc_planner *p = arg;

    uv_mutex_lock(&p->mu);
    for (;;) {
        while (!p->batch_ready && !p->quit)
            uv_cond_wait(&p->cond, &p->mu);
        if (p->quit)
            break;
        uv_mutex_unlock(&p->mu);
        run_batch(p, p->batch);
        uv_mutex_lock(&p->mu);
        p->batch_ready = false;
        uv_async_send(&p->ran);
    }
    uv_mutex_unlock(&p->mu);
}

static void planner_closed(uv_handle_t *h)
{
    struct orc_planner *p = h->data;

    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->mu);
    tosca_ctx_free(p->tosca);
    orc_free(p);
    curl_global_cleanup();
}

/* A job leaves the waiting queue (for the thread, or for good). */
static void waiting_left(struct orc_planner *p, const orc_plan_job_t *job)
{
    p->waiting--;
    p->waiting_bytes -= job->text_len;
}

/* Stops the idle thread and frees p once its handle closed. */
static void planner_free(struct orc_planner *p)
{
    uv_mutex_lock(&p->mu);
    p->quit = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
    uv_thread_join(&p->thread);
    uv_close((uv_handle_t *)&p->ran, planner_closed);
}

static void start_batch(struct orc_planner *p);

/* Answers each job of the batch that someone still wants, in order. A done may
 * abandon a later job of the batch, or submit: that waits for the next batch. */
static void batch_ran(uv_async_t *a)
{
    struct orc_planner *p = a->data;
    orc_plan_job_t *job, *next;

    uv_mutex_lock(&p->mu);
    if (p->batch_ready || !p->batch_running) { /* a wake-up of no finished batch */
        uv_mutex_unlock(&p->mu);
        return;
    }
    job = p->batch;
    p->batch = NULL;
    uv_mutex_unlock(&p->mu);
    for (; job; job = next) {
        next = job->next;
        if (!job->abandoned) {
            json_t *plan = job->plan;
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
    orc_plan_job_t *batch = NULL, **end = &batch;

    if (p->batch_running || p->head == NULL)
        return;
    for (unsigned n = 0; n < BATCH_MAX && p->head; n++) {
        orc_plan_job_t *job = p->head;
        p->head = job->next;
        job->next = NULL;
        job->in_batch = true;
        *end = job;
        end = &job->next;
        waiting_left(p, job);
        p->in_batch++;
    }
    if (p->head == NULL)
        p->tail = &p->head;
    p->batch_running = true;
    uv_mutex_lock(&p->mu);
    p->batch = batch;
    p->batch_ready = true;
    uv_cond_signal(&p->cond);
    uv_mutex_unlock(&p->mu);
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
    p->ran.data = p;
    if (uv_mutex_init(&p->mu) < 0) {
        orc_free(p);
        curl_global_cleanup();
        return ORC_ENOMEM;
    }
    if (uv_cond_init(&p->cond) < 0 || uv_async_init(loop, &p->ran, batch_ran) < 0) {
        uv_mutex_destroy(&p->mu);
        orc_free(p);
        curl_global_cleanup();
        return ORC_ENOMEM;
    }
    if (uv_thread_create(&p->thread, planner_thread, p) < 0) {
        p->tosca = NULL; /* the caller keeps it on failure */
        uv_close((uv_handle_t *)&p->ran, planner_closed);
        return ORC_ENOMEM;
    }
    *out = p;
    return 0;
}

static int submit_job(struct orc_planner *p, const char *name, const char *template_text,
                      const json_t *inputs, bool describe, orc_plan_done_fn done, void *data,
                      orc_plan_job_t **out)
{
    size_t len = strlen(template_text);
    orc_plan_job_t *job;

    if (out)
        *out = NULL;
    if (p->closing)
        return ORC_ECANCELED;
    if (p->waiting >= ORC_PLANNER_MAX_WAITING ||
        (p->waiting > 0 && p->waiting_bytes + len > ORC_PLANNER_MAX_WAITING_BYTES))
        return ORC_ELIMIT;
    job = orc_calloc(1, sizeof(*job));
    if (job == NULL)
        return ORC_ENOMEM;
    tosca_diags_init(&job->diags, false);
    job->planner = p;
    job->name = orc_strdup(name);
    job->text = orc_strdup(template_text);
    job->text_len = len;
    job->inputs = inputs ? json_deep_copy(inputs) : NULL;
    if (job->name == NULL || job->text == NULL || (inputs && job->inputs == NULL)) {
        job_free(job);
        return ORC_ENOMEM;
    }
    job->describe = describe;
    job->done = done;
    job->data = data;
    *p->tail = job;
    p->tail = &job->next;
    p->waiting++;
    p->waiting_bytes += len;
    if (out)
        *out = job;
    start_batch(p);
    return 0;
}

int orc_planner_submit(struct orc_planner *p, const char *name, const char *template_text,
                       const json_t *inputs, orc_plan_done_fn done, void *data,
                       orc_plan_job_t **out)
{
    return submit_job(p, name, template_text, inputs, false, done, data, out);
}

int orc_planner_describe(struct orc_planner *p, const char *name, const char *template_text,
                         orc_plan_done_fn done, void *data, orc_plan_job_t **out)
{
    return submit_job(p, name, template_text, NULL, true, done, data, out);
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
            waiting_left(p, job);
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
        waiting_left(p, job);
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
