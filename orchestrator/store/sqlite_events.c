/*
 * Event and site-attempt slots of the SQLite backend. Events are the
 * deployment's journal (the engine's own lines plus the ones every state
 * change writes in its transaction), read back after a given id so that an
 * SSE client resumes where it stopped. Site attempts record where the engine
 * tried a deployment and why each site failed (its statusReason).
 */
#include <string.h>

#include "sqlite_internal.h"

/* ---- events ------------------------------------------------------------------ */

int orc__sq_event_append(orc_store_t *s, orc_event_t *ev)
{
    struct sq_store *q = sq_of(s);
    int64_t when = ev->time_ms ? ev->time_ms : orc_now_ms();
    int64_t id = 0;
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = orc__sq_event_insert(q, ev->deployment_uuid, when, ev->type, ev->message, ev->data,
                                  &id);
    if (rc == ORC_ENOTFOUND)
        orc__store_failf(s, rc, "the deployment %s doesn't exist", ev->deployment_uuid);
    rc = orc__sq_end(q, rc);
    if (rc < 0)
        return rc;
    ev->id = id;
    ev->time_ms = when;
    return 0;
}

static int read_event(struct sq_store *q, sqlite3_stmt *st, orc_event_t *e)
{
    int rc = orc__sq_col_uuid(q, st, 1, e->deployment_uuid);

    e->id = sqlite3_column_int64(st, 0);
    e->time_ms = sqlite3_column_int64(st, 2);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 3, &e->type);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 4, &e->message);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 5, &e->data);
    return rc;
}

static int list_events(struct sq_store *q, const char *uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out)
{
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_EVENT_LIST, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_int(&b, 2, after_id);
    orc__sq_b_int(&b, 3, limit && limit < INT64_MAX ? (int64_t)limit : -1);
    rc = orc__sq_b_done(&b, "list events");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "list events")) == 1) {
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc < 0)
            rc = orc__store_failf(&q->base, rc, "list events: out of memory");
        else
            rc = read_event(q, b.st, &out->items[out->count++]);
    }
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_read_begin(q);

    if (rc == 0)
        rc = orc__sq_deployment_exists(q, deployment_uuid);
    if (rc == 0)
        rc = list_events(q, deployment_uuid, after_id, limit, out);
    rc = orc__sq_read_end(q, rc);
    if (rc < 0)
        orc_event_list_clear(out);
    return rc;
}

/* ---- site attempts ----------------------------------------------------------------- */

static int attempt_event(struct sq_store *q, const char *uuid, int attempt, const char *site,
                         const char *error, bool ended, bool ok, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_attempt_event(attempt, site, error, ended, ok, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__sq_event_write(q, uuid, now, &ev);
}

static int start_body(struct sq_store *q, const char *uuid, int attempt, const char *site,
                      int64_t now)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_ATT_INSERT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_int(&b, 2, attempt);
    orc__sq_b_text(&b, 3, site);
    orc__sq_b_int(&b, 4, now);
    rc = orc__sq_b_done(&b, "start attempt");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "start attempt");
    orc__sq_release(b.st);
    if (rc == ORC_ECONFLICT)
        return orc__store_failf(&q->base, rc, "attempt %d of deployment %s exists already", attempt,
                                uuid);
    if (rc == ORC_ENOTFOUND)
        return orc__store_failf(&q->base, rc, "the deployment %s doesn't exist", uuid);
    if (rc < 0)
        return rc;
    return attempt_event(q, uuid, attempt, site, NULL, false, false, now);
}

int orc__sq_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                          const char *site_name)
{
    struct sq_store *q = sq_of(s);
    int64_t changes;
    int rc = orc__sq_begin_lite(q, &changes);

    if (rc == 0)
        rc = start_body(q, deployment_uuid, attempt, site_name, orc_now_ms());
    return orc__sq_end_lite(q, rc, changes);
}

/* The attempt's site (new string) if it exists and is still running. */
static int running_site(struct sq_store *q, const char *uuid, int attempt, char **site)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_ATT_HEAD, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_int(&b, 2, attempt);
    rc = orc__sq_b_done(&b, "read attempt");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "read attempt");
    if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND,
                              "attempt %d of deployment %s was never started", attempt, uuid);
    if (rc == 1 && sqlite3_column_type(b.st, 1) != SQLITE_NULL)
        rc = orc__store_failf(&q->base, ORC_ECONFLICT, "attempt %d of deployment %s has ended",
                              attempt, uuid);
    if (rc == 1)
        rc = orc__sq_col_text(q, b.st, 0, site);
    orc__sq_release(b.st);
    return rc;
}

static int end_body(struct sq_store *q, const char *uuid, int attempt, bool ok, const char *error,
                    int64_t now)
{
    struct sq_bind b = {.q = q};
    char *site = NULL;
    int rc = running_site(q, uuid, attempt, &site);

    if (rc == 0)
        rc = orc__sq_stmt(q, SQ_ATT_END, &b.st);
    if (rc == 0) {
        orc__sq_b_text(&b, 1, uuid);
        orc__sq_b_int(&b, 2, attempt);
        orc__sq_b_int(&b, 3, now);
        orc__sq_b_int(&b, 4, ok);
        orc__sq_b_text(&b, 5, ok ? NULL : (error ? error : "unknown error"));
        rc = orc__sq_b_done(&b, "end attempt");
        if (rc == 0)
            rc = orc__sq_step(q, b.st, "end attempt");
        orc__sq_release(b.st);
    }
    if (rc == 0)
        rc = attempt_event(q, uuid, attempt, site, error, true, ok, now);
    orc_free(site);
    return rc;
}

int orc__sq_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                        const char *error)
{
    struct sq_store *q = sq_of(s);
    int64_t changes;
    int rc = orc__sq_begin_lite(q, &changes);

    if (rc == 0)
        rc = end_body(q, deployment_uuid, attempt, ok, error, orc_now_ms());
    return orc__sq_end_lite(q, rc, changes);
}

static int read_attempt(struct sq_store *q, sqlite3_stmt *st, orc_attempt_t *a)
{
    int rc = orc__sq_col_uuid(q, st, 0, a->deployment_uuid);

    a->attempt = sqlite3_column_int(st, 1);
    a->started_ms = sqlite3_column_int64(st, 3);
    a->ended_ms = sqlite3_column_int64(st, 4);
    if (sqlite3_column_type(st, 5) == SQLITE_NULL)
        a->result = ORC_ATTEMPT_RUNNING;
    else
        a->result = sqlite3_column_int(st, 5) ? ORC_ATTEMPT_OK : ORC_ATTEMPT_FAILED;
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 2, &a->site_name);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 6, &a->error);
    return rc;
}

static int list_attempts(struct sq_store *q, const char *uuid, orc_attempt_list_t *out)
{
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_ATT_LIST, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "list attempts");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "list attempts")) == 1) {
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc < 0)
            rc = orc__store_failf(&q->base, rc, "list attempts: out of memory");
        else
            rc = read_attempt(q, b.st, &out->items[out->count++]);
    }
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_read_begin(q);

    if (rc == 0)
        rc = orc__sq_deployment_exists(q, deployment_uuid);
    if (rc == 0)
        rc = list_attempts(q, deployment_uuid, out);
    rc = orc__sq_read_end(q, rc);
    if (rc < 0)
        orc_attempt_list_clear(out);
    return rc;
}
