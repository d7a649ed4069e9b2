/*
 * Event and site-attempt slots of the PostgreSQL backend, with the SQLite
 * backend's semantics (sqlite_events.c): events read back after a given id
 * (SSE resume), site attempts started and ended once, each with its event.
 */
#include <string.h>

#include "pg_internal.h"

/* the deployment's row with its events after an id (one row of NULLs when there is none;
 * no row when it does not exist): one statement, one snapshot */
static const char event_list_sql[] =
    "SELECT e.id, e.deployment_uuid, e.time_ms, e.type, e.message, e.data FROM deployments d"
    " LEFT JOIN LATERAL (SELECT id, deployment_uuid, time_ms, type, message, data FROM events"
    " WHERE deployment_uuid = d.uuid AND id > $2::bigint ORDER BY id LIMIT $3::bigint) e ON true"
    " WHERE d.uuid = $1::text ORDER BY e.id";
/* One statement starts the attempt and appends its event ($5 type, $6 message, $7 data,
 * built by orc__store_attempt_event), or does nothing when the deployment is missing or the
 * attempt exists (check_new_attempt then says which): a refusal fails no statement. */
static const char attempt_insert_sql[] =
    "WITH a AS (INSERT INTO site_attempts (deployment_uuid, attempt, site_name, started_ms)"
    " SELECT $1::text, $2::integer, $3::text, $4::bigint"
    " WHERE EXISTS (SELECT 1 FROM deployments WHERE uuid = $1::text)"
    " ON CONFLICT (deployment_uuid, attempt) DO NOTHING RETURNING deployment_uuid),"
    " e AS (INSERT INTO events (deployment_uuid, time_ms, type, message, data)"
    " SELECT deployment_uuid, $4::bigint, $5::text, $6::text, $7::text FROM a"
    " RETURNING deployment_uuid)"
    " SELECT (SELECT pg_notify('" PG_CHANNEL "', e.deployment_uuid) FROM e) FROM a";
static const char attempt_head_sql[] = "SELECT site_name, ended_ms FROM site_attempts"
                                       " WHERE deployment_uuid = $1::text AND attempt = $2::integer";
static const char attempt_end_sql[] =
    "UPDATE site_attempts SET ended_ms = $3::bigint, ok = $4::boolean, error = $5::text"
    " WHERE deployment_uuid = $1::text AND attempt = $2::integer AND ended_ms IS NULL";
/* the deployment's row with its attempts (one row of NULLs when it has none; no row when
 * it does not exist): one statement, one snapshot */
static const char attempt_list_sql[] =
    "SELECT a.deployment_uuid, a.attempt, a.site_name, a.started_ms, a.ended_ms, a.ok, a.error"
    " FROM deployments d LEFT JOIN site_attempts a ON a.deployment_uuid = d.uuid"
    " WHERE d.uuid = $1::text ORDER BY a.attempt";
/* whether the deployment exists, and whether the attempt does */
static const char attempt_new_sql[] =
    "SELECT EXISTS (SELECT 1 FROM deployments WHERE uuid = $1::text),"
    " EXISTS (SELECT 1 FROM site_attempts WHERE deployment_uuid = $1::text"
    " AND attempt = $2::integer)";

/* ---- events ------------------------------------------------------------------ */

int orc__pg_event_append(orc_store_t *s, orc_event_t *ev)
{
    struct pg_store *q = pg_of(s);
    int64_t when = ev->time_ms ? ev->time_ms : orc_now_ms();
    int64_t id = 0;
    /* one statement, which inserts nothing without the deployment: no savepoint */
    int rc = orc__pg_begin_lite(q);

    if (rc == 0)
        rc = orc__pg_event_insert(q, ev->deployment_uuid, when, ev->type, ev->message, NULL,
                                  ev->data, &id);
    rc = orc__pg_end_lite(q, rc);
    if (rc < 0)
        return rc;
    ev->id = id;
    ev->time_ms = when;
    return 0;
}

static int read_event(struct pg_store *q, const PGresult *r, int i, orc_event_t *e)
{
    int rc = orc__pg_col_uuid(q, r, i, 1, e->deployment_uuid);

    e->id = orc__pg_col_int(r, i, 0);
    e->time_ms = orc__pg_col_int(r, i, 2);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 3, &e->type);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 4, &e->message);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 5, &e->data);
    return rc;
}

static int list_events(struct pg_store *q, const char *uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc, rows = 0;

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_int(&p, 2, after_id);
    orc__pg_p_opt_int(&p, 3, limit && limit < INT64_MAX ? (int64_t)limit : 0);
    rc = orc__pg_exec(q, event_list_sql, &p, "list events", &r);
    if (rc == 0)
        rc = orc__pg_child_rows(q, r, 0, uuid, &rows);
    if (rows > 0) {
        out->items = orc_calloc((size_t)rows, sizeof(*out->items));
        if (out->items == NULL)
            rc = orc__store_failf(&q->base, ORC_ENOMEM, "list events: out of memory");
    }
    for (int i = 0; rc == 0 && i < rows; i++)
        rc = read_event(q, r, i, &out->items[out->count++]);
    PQclear(r);
    return rc;
}

int orc__pg_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out)
{
    /* one statement: no transaction */
    int rc = list_events(pg_of(s), deployment_uuid, after_id, limit, out);

    if (rc < 0)
        orc_event_list_clear(out);
    return rc;
}

/* ---- site attempts ----------------------------------------------------------------- */

static int attempt_event(struct pg_store *q, const char *uuid, int attempt, const char *site,
                         const char *error, bool ended, bool ok, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_attempt_event(attempt, site, error, ended, ok, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__pg_event_write(q, uuid, now, &ev);
}

/* The deployment must exist and the attempt must be new: both are checked
 * before the insert, so that a refused start fails no statement (and so
 * leaves an open group intact). */
static int check_new_attempt(struct pg_store *q, const char *uuid, int attempt)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_int(&p, 2, attempt);
    rc = orc__pg_exec(q, attempt_new_sql, &p, "read attempt", &r);
    if (rc < 0)
        return rc;
    if (!orc__pg_col_bool(r, 0, 0))
        rc = orc__pg_no_deployment(q, uuid);
    else if (orc__pg_col_bool(r, 0, 1))
        rc = orc__store_failf(&q->base, ORC_ECONFLICT, "attempt %d of deployment %s exists already",
                              attempt, uuid);
    PQclear(r);
    return rc;
}

static int start_body(struct pg_store *q, const char *uuid, int attempt, const char *site,
                      int64_t now)
{
    struct orc__store_event ev;
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    if (orc__store_attempt_event(attempt, site, NULL, false, false, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_int(&p, 2, attempt);
    orc__pg_p_text(&p, 3, site);
    orc__pg_p_int(&p, 4, now);
    orc__pg_p_text(&p, 5, ev.type);
    orc__pg_p_text(&p, 6, ev.message);
    orc__pg_p_json(&p, 7, ev.data);
    rc = orc__pg_exec(q, attempt_insert_sql, &p, "start attempt", &r);
    if (rc == 0 && PQntuples(r) == 0) { /* refused: say why */
        rc = check_new_attempt(q, uuid, attempt);
        if (rc == 0)
            rc = orc__store_failf(&q->base, ORC_ECONFLICT,
                                  "attempt %d of deployment %s was not "
                                  "started",
                                  attempt, uuid);
    }
    PQclear(r);
    orc__store_event_clear(&ev);
    return rc;
}

int orc__pg_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                          const char *site_name)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_begin_lite(q);

    if (rc == 0)
        rc = start_body(q, deployment_uuid, attempt, site_name, orc_now_ms());
    return orc__pg_end_lite(q, rc);
}

/* The attempt's site (new string) if it exists and is still running. */
static int running_site(struct pg_store *q, const char *uuid, int attempt, char **site)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_int(&p, 2, attempt);
    rc = orc__pg_exec(q, attempt_head_sql, &p, "read attempt", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND,
                              "attempt %d of deployment %s was never started", attempt, uuid);
    else if (rc == 0 && !orc__pg_col_null(r, 0, 1))
        rc = orc__store_failf(&q->base, ORC_ECONFLICT, "attempt %d of deployment %s has ended",
                              attempt, uuid);
    else if (rc == 0)
        rc = orc__pg_col_text(q, r, 0, 0, site);
    PQclear(r);
    return rc;
}

static int end_body(struct pg_store *q, const char *uuid, int attempt, bool ok, const char *error,
                    int64_t now)
{
    struct pg_params p = {0};
    char *site = NULL;
    int rc = running_site(q, uuid, attempt, &site);

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_int(&p, 2, attempt);
    orc__pg_p_int(&p, 3, now);
    orc__pg_p_bool(&p, 4, ok);
    orc__pg_p_text(&p, 5, ok ? NULL : (error ? error : "unknown error"));
    if (rc == 0)
        rc = orc__pg_exec(q, attempt_end_sql, &p, "end attempt", NULL);
    if (rc == 0)
        rc = attempt_event(q, uuid, attempt, site, error, true, ok, now);
    orc_free(site);
    return rc;
}

int orc__pg_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                        const char *error)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_begin_lite(q);

    if (rc == 0)
        rc = end_body(q, deployment_uuid, attempt, ok, error, orc_now_ms());
    return orc__pg_end_lite(q, rc);
}

static int read_attempt(struct pg_store *q, const PGresult *r, int i, orc_attempt_t *a)
{
    int rc = orc__pg_col_uuid(q, r, i, 0, a->deployment_uuid);

    a->attempt = (int)orc__pg_col_int(r, i, 1);
    a->started_ms = orc__pg_col_int(r, i, 3);
    a->ended_ms = orc__pg_col_int(r, i, 4);
    if (orc__pg_col_null(r, i, 5))
        a->result = ORC_ATTEMPT_RUNNING;
    else
        a->result = orc__pg_col_bool(r, i, 5) ? ORC_ATTEMPT_OK : ORC_ATTEMPT_FAILED;
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 2, &a->site_name);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 6, &a->error);
    return rc;
}

static int list_attempts(struct pg_store *q, const char *uuid, orc_attempt_list_t *out)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc, rows = 0;

    orc__pg_p_text(&p, 1, uuid);
    rc = orc__pg_exec(q, attempt_list_sql, &p, "list attempts", &r);
    if (rc == 0)
        rc = orc__pg_child_rows(q, r, 1, uuid, &rows);
    if (rows > 0) {
        out->items = orc_calloc((size_t)rows, sizeof(*out->items));
        if (out->items == NULL)
            rc = orc__store_failf(&q->base, ORC_ENOMEM, "list attempts: out of memory");
    }
    for (int i = 0; rc == 0 && i < rows; i++)
        rc = read_attempt(q, r, i, &out->items[out->count++]);
    PQclear(r);
    return rc;
}

int orc__pg_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out)
{
    int rc = list_attempts(pg_of(s), deployment_uuid, out); /* one statement: no transaction */

    if (rc < 0)
        orc_attempt_list_clear(out);
    return rc;
}
