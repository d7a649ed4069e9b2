/*
 * The deployment engine (engine.h): its sites (opened at start, closed at
 * the end), the re-drive of what the store holds in progress, and the close
 * that stops every run where it stands. The runs themselves are in run.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "http_client.h"

#define LOG "engine"
#define maybe_done orc__engine_maybe_done

/* ---- the engine: sites, start, resume, close ---- */

int orc_engine_new(uv_loop_t *loop, orc_store_t *store, struct orc_drv_registry *reg,
                   const struct orc_sites *sites, const struct orc_engine_opts *opts,
                   struct orc_engine **out)
{
    struct orc_engine *eng = orc_calloc(1, sizeof(*eng));

    *out = NULL;
    if (eng == NULL)
        return ORC_ENOMEM;
    eng->loop = loop;
    eng->store = store;
    eng->reg = reg;
    eng->sites = sites;
    if (opts)
        eng->opts = *opts;
    eng->commit = eng->opts.commit;
    eng->cap_sites = sites->count ? sites->count : 1;
    eng->esites = orc_calloc(eng->cap_sites, sizeof(*eng->esites));
    if (eng->esites == NULL)
        goto out_free;
    if (eng->commit == NULL) { /* no committer given: the engine's own */
        if (orc_commit_new(loop, store, NULL, &eng->commit) < 0)
            goto out_free;
        eng->own_commit = true;
    }
    if (orc_http_new(loop, &eng->http) < 0)
        goto out_commit;
    orc_drv_set_agent_source(reg, orc__agent_state, eng);
    orc_drv_set_resource_source(reg, orc__resource_node, eng);
    *out = eng;
    return 0;
out_commit:
    if (eng->own_commit) { /* nothing was queued: its handles close on this loop */
        orc_commit_close(eng->commit, NULL, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        orc_commit_free(eng->commit);
    }
out_free:
    orc_free(eng->esites);
    orc_free(eng);
    return ORC_ENOMEM;
}

void orc__engine_resume(struct orc_engine *eng, const char *uuid, orc_dep_status_t status)
{
    int rc;

    if (orc_engine_busy(eng, uuid))
        return; /* already running */
    if (status == ORC_DEP_DELETE_IN_PROGRESS)
        rc = orc_engine_delete(eng, uuid);
    else if (status == ORC_DEP_UPDATE_IN_PROGRESS)
        rc = orc_engine_update(eng, uuid);
    else
        rc = orc_engine_create(eng, uuid);
    orc_log_ctx(rc < 0 ? ORC_LOG_ERROR : ORC_LOG_INFO, LOG, &(orc_log_ctx_t){.deployment = uuid},
                "resuming (%s): %s", orc_dep_status_name(status),
                rc < 0 ? orc_strerror(rc) : "ok");
    if (rc == ORC_ENOTFOUND && status != ORC_DEP_DELETE_IN_PROGRESS)
        orc__engine_fail_unrunnable(eng, uuid, status == ORC_DEP_UPDATE_IN_PROGRESS);
}

void orc__engine_fail_unrunnable(struct orc_engine *eng, const char *uuid, bool update)
{
    int rc = orc_store_deployment_set_status(eng->store, uuid, 0,
                                             update ? ORC_DEP_UPDATE_FAILED : ORC_DEP_CREATE_FAILED,
                                             "its stored plan cannot be run", NULL);

    orc_log_ctx(rc < 0 ? ORC_LOG_ERROR : ORC_LOG_WARN, LOG, &(orc_log_ctx_t){.deployment = uuid},
                "its plan cannot be run: %s%s", update ? "UPDATE_FAILED" : "CREATE_FAILED",
                rc < 0 ? " not stored" : "");
}

static void resume_all(struct orc_engine *eng)
{
    orc_deployment_list_t l = {0};

    eng->started = true;
    if (orc__leases_on(eng)) { /* what it holds and what is free: through the leases */
        orc__leases_start(eng);
        return;
    }
    if (orc_store_deployment_list_in_status(eng->store, ORC_DEP_MASK_IN_PROGRESS, &l) < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "cannot list deployments to resume: %s",
                orc_store_errmsg(eng->store));
        return;
    }
    for (size_t i = 0; i < l.count; i++)
        orc__engine_resume(eng, l.items[i].uuid, l.items[i].status);
    orc_deployment_list_clear(&l);
}

static void on_site_closed(orc_op_t *op, int status);
static void open_site(struct orc_engine *eng, struct engine_site *s);

/* Closes a site taken out at run time (counted in closing_sites, so that the engine's
 * close waits for it), or frees it when it is not open. */
static void close_removed(struct orc_engine *eng, struct engine_site *s)
{
    if (s->open) {
        orc_drv_op_init(&s->op);
        s->op.data = s;
        if (orc_drv_site_close(s->site, &s->op, on_site_closed) == 0) {
            s->closing = true;
            eng->closing_sites++;
            return;
        }
    }
    orc_drv_site_free(s->site);
    s->site = NULL;
    s->open = false;
}

/* A new site of the engine, at the end of esites (def from the file's list, or from
 * owned, a one-site list the site then owns). */
static struct engine_site *site_new(struct orc_engine *eng, const struct orc_site_def *def,
                                    struct orc_sites *owned)
{
    struct engine_site *s;

    if (eng->nsites == eng->cap_sites) {
        size_t cap = eng->cap_sites * 2;
        struct engine_site **grown = orc_realloc(eng->esites, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        eng->esites = grown;
        eng->cap_sites = cap;
    }
    s = orc_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->def = def;
    s->owned = owned;
    s->eng = eng;
    s->index = eng->nsites;
    eng->esites[eng->nsites++] = s;
    return s;
}

struct engine_site *orc__engine_site(const struct orc_engine *eng, const char *name)
{
    for (size_t i = 0; i < eng->nsites; i++)
        if (!eng->esites[i]->removed && strcmp(eng->esites[i]->def->name, name) == 0)
            return eng->esites[i];
    return NULL;
}

/* A site whose open completes while the engine is closing: close it now. */
static void close_late_site(struct orc_engine *eng, struct engine_site *s)
{
    if (s->open) {
        orc_drv_op_init(&s->op);
        s->op.data = s;
        if (orc_drv_site_close(s->site, &s->op, on_site_closed) == 0)
            return; /* closing_sites counted it already */
    }
    orc_drv_site_free(s->site);
    s->site = NULL;
    s->open = false;
    eng->closing_sites--;
    maybe_done(eng);
}

static void on_site_open(orc_op_t *op, int status)
{
    struct engine_site *s = op->data;
    struct orc_engine *eng = s->eng;

    s->opening = false;
    if (s->removed && !eng->closing) { /* removed while it opened */
        s->open = status == 0;
        orc_drv_op_reset(op);
        eng->opening--;
        close_removed(eng, s);
        return;
    }
    if (eng->closing) {
        s->open = status == 0;
        orc_drv_op_reset(op);
        eng->opening--;
        close_late_site(eng, s);
        return;
    }

    s->open = status == 0;
    if (status < 0)
        orc_log(ORC_LOG_ERROR, LOG, "site %s (driver %s) did not open: %s", s->def->name,
                s->def->driver, op->error[0] ? op->error : orc_strerror(status));
    else
        orc_log(ORC_LOG_INFO, LOG, "site %s open (driver %s)", s->def->name, s->def->driver);
    orc_drv_op_reset(op);
    if (--eng->opening == 0 && !eng->started) { /* the start's last site */
        resume_all(eng);
        if (eng->ready)
            eng->ready(eng, eng->ready_ud);
    }
}

static void open_site(struct orc_engine *eng, struct engine_site *s)
{
    struct orc_site_conf conf = orc_site_def_conf(s->def);
    int rc = orc_drv_site_new(eng->reg, s->def->driver, &conf, &s->site);

    if (rc == 0) {
        orc_drv_op_init(&s->op);
        s->op.data = s;
        rc = orc_drv_site_open(s->site, &s->op, on_site_open);
    }
    if (rc == 0) {
        s->opening = true;
        eng->opening++;
        return;
    }
    orc_log(ORC_LOG_ERROR, LOG, "site %s (driver %s) cannot open: %s", s->def->name, s->def->driver,
            s->op.error[0] ? s->op.error : orc_strerror(rc));
}

static void idle_closed(uv_handle_t *h)
{
    struct orc_engine *eng = h->data;

    orc_free(h);
    eng->closing_timers--;
    maybe_done(eng);
}

static void close_ready_idle(struct orc_engine *eng)
{
    if (eng->ready_idle == NULL)
        return;
    uv_idle_stop(eng->ready_idle);
    eng->closing_timers++;
    uv_close((uv_handle_t *)eng->ready_idle, idle_closed);
    eng->ready_idle = NULL;
}

static void on_ready_idle(uv_idle_t *h)
{
    struct orc_engine *eng = h->data;

    close_ready_idle(eng);
    resume_all(eng);
    if (eng->ready)
        eng->ready(eng, eng->ready_ud);
}

int orc_engine_start(struct orc_engine *eng, orc_engine_done_fn ready, void *ud)
{
    eng->ready = ready;
    eng->ready_ud = ud;
    for (size_t i = 0; i < eng->sites->count; i++) {
        struct engine_site *s = site_new(eng, &eng->sites->items[i], NULL);
        if (s == NULL)
            return ORC_ENOMEM;
        if (s->def->enabled)
            open_site(eng, s);
    }
    if (eng->opening == 0) { /* nothing to wait for: still answer later */
        uv_idle_t *idle = orc_calloc(1, sizeof(*idle));
        if (idle == NULL)
            return ORC_ENOMEM;
        uv_idle_init(eng->loop, idle);
        idle->data = eng;
        uv_idle_start(idle, on_ready_idle);
        eng->ready_idle = idle;
    }
    return 0;
}

/* Whether a run works on the site: its current attempt, or an instance placed there. */
static bool site_in_use(const struct orc_engine *eng, const struct engine_site *s)
{
    for (const struct run *r = eng->runs; r; r = r->next) {
        if (r->site == s)
            return true;
        for (size_t i = 0; i < r->nnodes; i++)
            for (size_t k = 0; k < r->nodes[i].ninst; k++)
                if (r->nodes[i].inst[k].on_site &&
                    strcmp(r->nodes[i].inst[k].site, s->def->name) == 0)
                    return true;
    }
    return false;
}

int orc_engine_site_add(struct orc_engine *eng, struct orc_sites *one)
{
    struct engine_site *s = NULL;
    int rc = 0;

    if (one == NULL || one->count != 1)
        rc = ORC_EINVAL;
    else if (eng->closing)
        rc = ORC_ECANCELED;
    else if (orc_engine_site_source(eng, one->items[0].name) != 0)
        rc = ORC_ECONFLICT;
    else if ((s = site_new(eng, &one->items[0], one)) == NULL)
        rc = ORC_ENOMEM;
    if (rc < 0) {
        orc_sites_free(one);
        orc_free(one);
        return rc;
    }
    orc_log(ORC_LOG_INFO, LOG, "site %s (driver %s) registered%s", s->def->name, s->def->driver,
            s->def->enabled ? ": opening it" : ", disabled");
    if (s->def->enabled)
        open_site(eng, s);
    return 0;
}

int orc_engine_site_remove(struct orc_engine *eng, const char *name)
{
    struct engine_site *s = orc__engine_site(eng, name);

    if (s == NULL)
        return ORC_ENOTFOUND;
    if (site_in_use(eng, s))
        return ORC_ECONFLICT;
    s->removed = true;
    orc_log(ORC_LOG_INFO, LOG, "site %s taken out", name);
    if (!s->opening) /* else closed when its open completes */
        close_removed(eng, s);
    return 0;
}

int orc_engine_site_source(const struct orc_engine *eng, const char *name)
{
    const struct engine_site *s = orc__engine_site(eng, name);

    if (s == NULL) /* before the start, the file's sites are not opened yet */
        return orc_sites_find(eng->sites, name) != NULL;
    return s->owned ? 2 : 1;
}

#define SITE_KEY "site/"

int orc_engine_site_drain(struct orc_engine *eng, const char *name, bool draining)
{
    char key[sizeof(SITE_KEY) + 64];
    bool known = false;
    int rc;

    known = orc__engine_site(eng, name) != NULL;
    if (!known)
        return ORC_ENOTFOUND;
    snprintf(key, sizeof(key), SITE_KEY "%s", name);
    rc = draining ? orc_store_meta_set(eng->store, key, "draining")
                  : orc_store_meta_delete(eng->store, key);
    return rc == ORC_ENOTFOUND && !draining ? 0 : rc;
}

int orc_engine_site_forget_state(struct orc_engine *eng, const char *name)
{
    char key[sizeof(SITE_KEY) + 64];
    int rc;

    snprintf(key, sizeof(key), SITE_KEY "%s", name);
    rc = orc_store_meta_delete(eng->store, key);
    return rc == ORC_ENOTFOUND ? 0 : rc;
}

bool orc_engine_site_draining(struct orc_engine *eng, const char *name)
{
    char key[sizeof(SITE_KEY) + 64], *value = NULL;
    bool draining;

    snprintf(key, sizeof(key), SITE_KEY "%s", name);
    draining = orc_store_meta_get(eng->store, key, &value) == 0 && strcmp(value, "draining") == 0;
    orc_free(value);
    return draining;
}

size_t orc_engine_site_count(const struct orc_engine *eng)
{
    size_t n = 0;

    for (size_t i = 0; i < eng->nsites; i++)
        n += eng->esites[i]->open && !eng->esites[i]->removed;
    return n;
}

const char *orc_engine_site_name(const struct orc_engine *eng, size_t i)
{
    for (size_t k = 0; k < eng->nsites; k++)
        if (eng->esites[k]->open && !eng->esites[k]->removed && i-- == 0)
            return eng->esites[k]->def->name;
    return NULL;
}

void orc__engine_store_lost(struct orc_engine *eng, int status)
{
    orc_log(ORC_LOG_ERROR, LOG,
            "the store could not make its last writes durable (%s: %s): stopping now; a "
            "restart resumes every deployment from what is on disk",
            orc_strerror(status), orc_store_errmsg(eng->store));
    abort();
}

static void on_commit_closed(void *ud)
{
    struct orc_engine *eng = ud;

    orc_commit_free(eng->commit);
    eng->commit = NULL;
    eng->closing_timers--;
    orc__engine_maybe_done(eng);
}

/* Closed when the sites, the runs, the callbacks and the http client are
 * (then the engine's own committer, if it has one). */
void orc__engine_maybe_done(struct orc_engine *eng)
{
    if (eng->closing && eng->closing_sites == 0 && eng->closing_timers == 0 && eng->runs == NULL &&
        eng->abandoned == 0 && eng->callbacks == NULL && eng->http == NULL && eng->own_commit &&
        eng->commit) {
        eng->own_commit = false;
        eng->closing_timers++;
        orc_commit_close(eng->commit, on_commit_closed, eng);
        return;
    }
    if (eng->closing && eng->closing_sites == 0 && eng->closing_timers == 0 && eng->runs == NULL &&
        eng->abandoned == 0 && eng->callbacks == NULL && eng->http == NULL && eng->done &&
        (eng->commit == NULL || eng->commit == eng->opts.commit)) {
        orc_engine_done_fn done = eng->done;
        eng->done = NULL;
        done(eng, eng->done_ud);
    }
}

static void on_site_closed(orc_op_t *op, int status)
{
    struct engine_site *s = op->data;
    struct orc_engine *eng = s->eng;

    (void)status;
    s->open = false;
    s->closing = false;
    orc_drv_op_reset(op);
    orc_drv_site_free(s->site);
    s->site = NULL;
    eng->closing_sites--;
    maybe_done(eng);
}

static void close_sites(struct orc_engine *eng)
{
    for (size_t i = 0; i < eng->nsites; i++) {
        struct engine_site *s = eng->esites[i];
        if (s->site == NULL || s->closing) /* a removal's close: counted already */
            continue;
        if (s->opening) { /* closed when its open completes */
            eng->closing_sites++;
            continue;
        }
        if (!s->open) {
            orc_drv_site_free(s->site);
            s->site = NULL;
            continue;
        }
        orc_drv_op_init(&s->op);
        s->op.data = s;
        if (orc_drv_site_close(s->site, &s->op, on_site_closed) == 0)
            eng->closing_sites++;
    }
    maybe_done(eng);
}

static void on_http_closed(void *ud)
{
    struct orc_engine *eng = ud;

    eng->http = NULL;
    eng->closing_timers--;
    maybe_done(eng);
}

int orc_engine_close(struct orc_engine *eng, orc_engine_done_fn done, void *ud)
{
    eng->closing = true;
    eng->done = done;
    eng->done_ud = ud;
    /* runs stop where they are: the store keeps them in progress for the
     * next start; site_close cancels their operations in flight */
    for (struct run *r = eng->runs; r; r = r->next) {
        r->stopping = true;
        if (r->timer_on) {
            uv_timer_stop(&r->timer);
            r->timer_on = false;
        }
    }
    for (struct run *r = eng->runs, *next; r; r = next) {
        next = r->next;
        if (r->inflight == 0 && r->probes_pending == 0)
            orc__run_free(r);
    }
    close_ready_idle(eng);
    orc__leases_close(eng);
    orc_engine_callbacks_close(eng);
    eng->closing_timers++;
    orc_http_close(eng->http, on_http_closed, eng);
    close_sites(eng); /* cancels what is in flight: those runs free themselves */
    return 0;
}

void orc_engine_free(struct orc_engine *eng)
{
    if (eng == NULL)
        return;
    orc_drv_set_agent_source(eng->reg, NULL, NULL); /* the registry may outlive the engine */
    orc_drv_set_resource_source(eng->reg, NULL, NULL);
    for (size_t i = 0; i < eng->nsites; i++) {
        if (eng->esites[i]->owned) {
            orc_sites_free(eng->esites[i]->owned);
            orc_free(eng->esites[i]->owned);
        }
        orc_free(eng->esites[i]);
    }
    orc_free(eng->esites);
    orc_free(eng->rindex);
    orc_free(eng);
}
