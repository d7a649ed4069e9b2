/*
 * Template loads and plans on a libuv worker thread (planner.h). Jobs wait in
 * a FIFO; one runs at a time. The loop thread owns the queue and the job
 * records; the worker owns the libtosca context, and the job it runs, from
 * uv_queue_work to the after-work callback.
 */
#include <curl/curl.h>
#include <string.h>

#include "../base.h"
#include "planner.h"

struct orc_plan_job {
    struct orc_planner *planner;
    uv_work_t work;
    orc_plan_job_t *next; /* in the waiting queue */
    char *name;
    char *text;
    json_t *inputs;
    orc_plan_done_fn done;
    void *data;
    bool abandoned;
    /* the worker's results */
    int rc;
    json_t *plan;
    tosca_diags_t diags;
};

struct orc_planner {
    uv_loop_t *loop;
    tosca_ctx_t *tosca;
    orc_plan_job_t *head, **tail; /* waiting */
    orc_plan_job_t *running;
    unsigned waiting;
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

/* On the worker: the only code that touches the context. */
static void run_job(uv_work_t *w)
{
    orc_plan_job_t *job = w->data;
    tosca_template_t *t = NULL;

    job->rc = tosca_load_buffer(job->planner->tosca, job->name, job->text, strlen(job->text), &t,
                                &job->diags);
    if (job->rc == 0)
        job->rc = tosca_plan(t, job->inputs, &job->plan, &job->diags);
    tosca_template_free(t);
}

static void start_next(struct orc_planner *p);

static void job_ran(uv_work_t *w, int status)
{
    orc_plan_job_t *job = w->data;
    struct orc_planner *p = job->planner;
    json_t *plan = job->plan;

    p->running = NULL;
    if (!job->abandoned) {
        if (status < 0 && job->rc == 0)
            job->rc = ORC_ECANCELED;
        job->plan = NULL; /* the callee's now */
        job->done(job->data, job->rc, job->rc == 0 ? plan : NULL, &job->diags);
        if (job->rc != 0)
            json_decref(plan);
    }
    job_free(job);
    if (p->closing) /* nothing waits: close ended the waiting jobs */
        planner_free(p);
    else
        start_next(p);
}

static void start_next(struct orc_planner *p)
{
    orc_plan_job_t *job = p->head;

    if (p->running != NULL || job == NULL)
        return;
    p->head = job->next;
    if (p->head == NULL)
        p->tail = &p->head;
    p->waiting--;
    p->running = job;
    job->work.data = job;
    if (uv_queue_work(p->loop, &job->work, run_job, job_ran) < 0) { /* only without a callback */
        job->rc = ORC_ENOMEM;
        job_ran(&job->work, 0);
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
    start_next(p);
    return 0;
}

void orc_planner_abandon(orc_plan_job_t *job)
{
    struct orc_planner *p = job->planner;

    if (job == p->running) {
        job->abandoned = true; /* job_ran frees it */
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
    if (p->running == NULL)
        planner_free(p);
}

unsigned orc_planner_pending(const struct orc_planner *p)
{
    return p->waiting + (p->running != NULL);
}
