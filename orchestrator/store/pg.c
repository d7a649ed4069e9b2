/*
 * The PostgreSQL backend's connection (libpq): open ("postgresql://..." or
 * "postgres://...", any libpq connection URI), the schema migrations
 * versioned in the orc_schema table and applied in one transaction under an
 * advisory lock (several daemons may start at once), the cache of prepared
 * statements, the single function that maps SQLSTATEs to ORC_E* codes,
 * transactions (and the savepoint of each write inside a group), parameter
 * and column helpers, and the key/value metadata slots. Record slots live in
 * pg_deployments.c, pg_resources.c and pg_events.c; the schema in
 * pg_schema.c.
 *
 * Every value reaches the server as a parameter ($n) of a prepared
 * statement; no SQL is ever formatted with data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

/* "ORCH": the advisory lock migrations hold, and orc_schema.application. */
#define PG_APPLICATION_ID 0x4F524348
#define PG_APPLICATION "orchestrator"

/* ---- the error boundary ---------------------------------------------------- */

static int map_sqlstate(const char *state)
{
    if (state == NULL)
        return ORC_EIO; /* no answer: the connection is gone */
    if (strcmp(state, "23505") == 0) /* unique_violation */
        return ORC_ECONFLICT;
    if (strcmp(state, "23503") == 0) /* foreign_key_violation: the parent is missing */
        return ORC_ENOTFOUND;
    if (strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0 || /* check, not null */
        strncmp(state, "22", 2) == 0) /* data exception: bad text, out of range */
        return ORC_EINVAL;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || /* serialization, deadlock */
        strcmp(state, "55P03") == 0)                                   /* lock not available */
        return ORC_EAGAIN;
    if (strcmp(state, "53200") == 0) /* out_of_memory */
        return ORC_ENOMEM;
    if (strncmp(state, "23", 2) == 0) /* another integrity constraint (a trigger's) */
        return ORC_ECONFLICT;
    if (strncmp(state, "54", 2) == 0) /* program limit exceeded */
        return ORC_ELIMIT;
    if (strcmp(state, "57014") == 0) /* query_canceled */
        return ORC_ECANCELED;
    return ORC_EIO;
}

/* The first line of libpq's message (they end in newlines, with details after). */
static int fail_with(struct pg_store *q, int rc, const char *what, const char *msg)
{
    size_t n = msg ? strcspn(msg, "\n") : 0;

    return orc__store_failf(&q->base, rc, "%s: %.*s", what, (int)n, msg ? msg : "");
}

static int result_error(struct pg_store *q, const PGresult *r, const char *what)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (msg == NULL)
        msg = PQerrorMessage(q->conn);
    /* the server cannot be reached: a condition that passes (restart, failover) */
    if (PQstatus(q->conn) == CONNECTION_BAD)
        return fail_with(q, ORC_EAGAIN, what, msg);
    return fail_with(q, map_sqlstate(state), what, msg);
}

/* ---- parameters ---------------------------------------------------------------- */

/* JSON texts come from jansson's allocator. */
static void json_free(char *text)
{
    json_malloc_t malloc_fn;
    json_free_t free_fn;

    if (text == NULL)
        return;
    json_get_alloc_funcs(&malloc_fn, &free_fn);
    free_fn(text);
}

static bool param_slot(struct pg_params *p, int idx)
{
    if (p->rc != 0)
        return false;
    if (idx < 1 || idx > PG_MAX_PARAMS) {
        p->rc = ORC_EINVAL;
        return false;
    }
    if (idx > p->n)
        p->n = idx;
    return true;
}

void orc__pg_p_text(struct pg_params *p, int idx, const char *v)
{
    if (param_slot(p, idx))
        p->values[idx - 1] = v;
}

void orc__pg_p_int(struct pg_params *p, int idx, int64_t v)
{
    if (!param_slot(p, idx))
        return;
    snprintf(p->nums[idx - 1], sizeof(p->nums[0]), "%lld", (long long)v);
    p->values[idx - 1] = p->nums[idx - 1];
}

void orc__pg_p_opt_int(struct pg_params *p, int idx, int64_t v)
{
    if (v != 0)
        orc__pg_p_int(p, idx, v);
    else
        orc__pg_p_text(p, idx, NULL);
}

void orc__pg_p_bool(struct pg_params *p, int idx, bool v)
{
    orc__pg_p_text(p, idx, v ? "t" : "f");
}

void orc__pg_p_json(struct pg_params *p, int idx, const json_t *v)
{
    char *text;

    if (!param_slot(p, idx))
        return;
    if (v == NULL) {
        p->values[idx - 1] = NULL;
        return;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        p->rc = ORC_ENOMEM;
        return;
    }
    json_free(p->owned[idx - 1]);
    p->owned[idx - 1] = text;
    p->values[idx - 1] = text;
}

void orc__pg_p_status_set(struct pg_params *p, int idx, uint32_t mask)
{
    size_t used = 0, len = sizeof(p->status_set);

    if (!param_slot(p, idx))
        return;
    p->status_set[used++] = '{';
    for (int st = 0; st < ORC_DEP__COUNT; st++)
        if (mask & ORC_DEP_MASK(st))
            used += (size_t)snprintf(p->status_set + used, len - used, "%s%s",
                                     used > 1 ? "," : "",
                                     orc_dep_status_name((orc_dep_status_t)st));
    snprintf(p->status_set + used, len - used, "}");
    p->values[idx - 1] = p->status_set;
}

static void params_clear(struct pg_params *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < PG_MAX_PARAMS; i++) {
        json_free(p->owned[i]);
        p->owned[i] = NULL;
    }
}

/* ---- interrupting, from another thread ---------------------------------------------- */

/* The cancel key of the session now (after a connection or a reconnection). */
static void refresh_cancel(struct pg_store *q)
{
    PGcancel *fresh = PQgetCancel(q->conn);

    pthread_mutex_lock(&q->cancel_mu);
    PQfreeCancel(q->cancel);
    q->cancel = fresh;
    pthread_mutex_unlock(&q->cancel_mu);
}

static void pg_interrupt(orc_store_t *s)
{
    struct pg_store *q = pg_of(s);
    char why[256];

    pthread_mutex_lock(&q->cancel_mu);
    if (q->cancel != NULL && !PQcancel(q->cancel, why, sizeof(why)))
        orc_log(ORC_LOG_WARN, "store", "cannot interrupt a statement: %s", why);
    pthread_mutex_unlock(&q->cancel_mu);
}

/* ---- statements ------------------------------------------------------------------- */

/* The server went away (a restart, a failover) while no transaction of ours
 * was open: reconnect once, so that the statement can be sent again. Inside a
 * transaction the failure is the caller's (its writes are gone with it). */
static bool reconnect(struct pg_store *q)
{
    if (q->in_tx || PQstatus(q->conn) != CONNECTION_BAD)
        return false;
    PQreset(q->conn);
    q->nprepared = 0; /* prepared statements belong to the old session */
    q->base.connection_id++;
    refresh_cancel(q);
    if (PQstatus(q->conn) != CONNECTION_OK)
        return false;
    if (q->listening) { /* so does LISTEN */
        PGresult *r = PQexec(q->conn, "LISTEN " PG_CHANNEL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            orc_log(ORC_LOG_WARN, "store", "LISTEN again: %s", PQerrorMessage(q->conn));
        PQclear(r);
    }
    orc_log(ORC_LOG_WARN, "store", "the PostgreSQL connection was lost; connected again");
    return true;
}

/* The name sql is prepared under on this connection, preparing it on first use. */
static int statement_name(struct pg_store *q, const char *sql, int nparams, char name[16],
                          const char *what)
{
    PGresult *r;
    int i;

    for (i = 0; i < q->nprepared; i++)
        if (q->prepared[i] == sql)
            break;
    snprintf(name, 16, "orc%d", i);
    if (i < q->nprepared)
        return 0;
    if (i == PG_MAX_STATEMENTS)
        return orc__store_failf(&q->base, ORC_ELIMIT, "%s: too many statements", what);
    r = PQprepare(q->conn, name, sql, nparams, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && reconnect(q)) {
        PQclear(r);
        r = PQprepare(q->conn, name, sql, nparams, NULL);
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = result_error(q, r, what);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    q->prepared[q->nprepared++] = sql;
    return 0;
}

static PGresult *exec_prepared(struct pg_store *q, const char *sql, const struct pg_params *p,
                               const char *what, int *rc)
{
    char name[16];

    *rc = statement_name(q, sql, 0, name, what);
    if (*rc < 0)
        return NULL;
    return PQexecPrepared(q->conn, name, p ? p->n : 0, p ? p->values : NULL, NULL, NULL, 0);
}

static bool result_ok(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
}

int orc__pg_exec(struct pg_store *q, const char *sql, struct pg_params *p, const char *what,
                 PGresult **res)
{
    PGresult *r = NULL;
    int rc = p ? p->rc : 0;

    if (res)
        *res = NULL;
    if (rc < 0)
        rc = orc__store_failf(&q->base, rc, "%s: %s", what,
                              rc == ORC_ENOMEM ? "out of memory" : "bad parameter");
    if (rc == 0)
        r = exec_prepared(q, sql, p, what, &rc);
    if (rc == 0 && !result_ok(r) && reconnect(q)) {
        PQclear(r);
        r = exec_prepared(q, sql, p, what, &rc);
    }
    params_clear(p);
    if (rc == 0 && !result_ok(r))
        rc = result_error(q, r, what);
    if (rc < 0 || res == NULL)
        PQclear(r);
    else
        *res = r;
    return rc;
}

int orc__pg_run(struct pg_store *q, const char *sql, struct pg_params *p, const char *what,
                int64_t *affected)
{
    PGresult *r;
    int rc = orc__pg_exec(q, sql, p, what, &r);

    if (rc == 0 && affected)
        *affected = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return rc;
}

int orc__pg_simple(struct pg_store *q, const char *sql, const char *what)
{
    PGresult *r = PQexec(q->conn, sql);
    int rc = 0;

    if (!result_ok(r) && reconnect(q)) {
        PQclear(r);
        r = PQexec(q->conn, sql);
    }
    if (!result_ok(r))
        rc = result_error(q, r, what);
    PQclear(r);
    return rc;
}

/* ---- transactions ------------------------------------------------------------------- */

static int tx_begin(struct pg_store *q, const char *sql)
{
    int rc = orc__pg_simple(q, sql, "begin transaction");

    q->in_tx = rc == 0;
    q->release_pending = false;
    return rc;
}

void orc__pg_rollback(struct pg_store *q)
{
    char saved[ORC_STORE_ERRMSG_LEN];

    if (!q->in_tx)
        return;
    q->in_tx = false;
    q->release_pending = false;
    if (PQtransactionStatus(q->conn) == PQTRANS_IDLE)
        return;
    memcpy(saved, q->base.errmsg, sizeof(saved));
    if (orc__pg_simple(q, "ROLLBACK", "rollback") < 0)
        orc_log(ORC_LOG_ERROR, "store", "%s", q->base.errmsg);
    memcpy(q->base.errmsg, saved, sizeof(saved));
}

static int tx_commit(struct pg_store *q)
{
    int rc;

    /* a COMMIT of a failed transaction answers OK but rolls back */
    if (PQtransactionStatus(q->conn) == PQTRANS_INERROR) {
        orc__pg_rollback(q);
        return orc__store_failf(&q->base, ORC_EIO, "commit: the transaction had failed");
    }
    rc = orc__pg_simple(q, "COMMIT", "commit");
    if (rc < 0)
        orc__pg_rollback(q);
    q->in_tx = false;
    q->release_pending = false;
    return rc;
}

/* Our transaction still stands (not aborted by a failed statement, not ended
 * with the connection). */
static bool tx_usable(struct pg_store *q)
{
    return PQtransactionStatus(q->conn) == PQTRANS_INTRANS;
}

static int group_lost(struct pg_store *q, int rc)
{
    orc__pg_rollback(q);
    return orc__store_group_break(&q->base, rc);
}

static int group_refused(struct pg_store *q)
{
    return orc__store_failf(&q->base, q->base.group.failed,
                            "the group of writes was rolled back: %s", q->base.group.why);
}

int orc__pg_begin(struct pg_store *q)
{
    int rc;

    if (!q->base.group.open)
        return tx_begin(q, "BEGIN");
    if (q->base.group.failed < 0)
        return group_refused(q);
    /* one round trip: the savepoint of the write before (which succeeded) goes with it */
    rc = orc__pg_simple(q,
                        q->release_pending ? "RELEASE SAVEPOINT orc_write; SAVEPOINT orc_write"
                                           : "SAVEPOINT orc_write",
                        "savepoint");
    q->release_pending = false;
    return rc < 0 ? group_lost(q, rc) : 0;
}

static int undo_write(struct pg_store *q, int rc)
{
    char saved[ORC_STORE_ERRMSG_LEN];
    int urc;

    memcpy(saved, q->base.errmsg, sizeof(saved));
    urc = orc__pg_simple(q, "ROLLBACK TO SAVEPOINT orc_write; RELEASE SAVEPOINT orc_write",
                         "rollback to savepoint");
    if (urc < 0)
        return group_lost(q, urc);
    memcpy(q->base.errmsg, saved, sizeof(saved));
    return rc;
}

int orc__pg_end(struct pg_store *q, int rc)
{
    if (!q->base.group.open) {
        if (rc == 0)
            return tx_commit(q);
        orc__pg_rollback(q);
        return rc;
    }
    if (q->base.group.failed < 0)
        return rc < 0 ? rc : q->base.group.failed;
    if (PQtransactionStatus(q->conn) != PQTRANS_INTRANS &&
        PQtransactionStatus(q->conn) != PQTRANS_INERROR)
        return group_lost(
            q, rc < 0 ? rc : orc__store_failf(&q->base, ORC_EIO, "the group's transaction ended"));
    if (rc < 0)
        return undo_write(q, rc);
    q->release_pending = true; /* released by the next savepoint, or by the commit */
    return 0;
}

int orc__pg_begin_lite(struct pg_store *q)
{
    if (!q->base.group.open)
        return tx_begin(q, "BEGIN");
    if (q->base.group.failed < 0)
        return group_refused(q);
    return 0;
}

int orc__pg_end_lite(struct pg_store *q, int rc)
{
    if (!q->base.group.open || q->base.group.failed < 0)
        return orc__pg_end(q, rc);
    if (!tx_usable(q)) /* a statement failed: the server aborted the whole group */
        return group_lost(
            q, rc < 0 ? rc : orc__store_failf(&q->base, ORC_EIO, "the group's transaction ended"));
    return rc;
}

int orc__pg_read_begin(struct pg_store *q)
{
    if (q->base.group.open)
        return 0;
    return tx_begin(q, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

int orc__pg_read_end(struct pg_store *q, int rc)
{
    if (q->base.group.open)
        return rc;
    if (rc == 0)
        return tx_commit(q);
    orc__pg_rollback(q);
    return rc;
}

static int pg_group_begin(orc_store_t *s)
{
    return tx_begin(pg_of(s), "BEGIN");
}

static int pg_group_commit(orc_store_t *s)
{
    struct pg_store *q = pg_of(s);

    if (s->group.failed < 0) {
        orc__pg_rollback(q);
        return s->group.failed;
    }
    if (!tx_usable(q)) {
        orc__pg_rollback(q);
        return orc__store_failf(s, ORC_EIO, "the group's transaction ended before its commit");
    }
    return tx_commit(q);
}

/* Sends the group's COMMIT and returns; pg_commit_answer reads the reply. The
 * transaction is ours no more from here: no ROLLBACK follows a failed answer. */
static int pg_group_commit_send(orc_store_t *s)
{
    struct pg_store *q = pg_of(s);
    int rc;

    if (!tx_usable(q)) {
        orc__pg_rollback(q);
        return orc__store_failf(s, ORC_EIO, "the group's transaction ended before its commit");
    }
    if (!PQsendQuery(q->conn, "COMMIT")) {
        rc = fail_with(q, ORC_EAGAIN, "commit", PQerrorMessage(q->conn));
        orc__pg_rollback(q);
        return rc;
    }
    q->in_tx = false;
    q->release_pending = false;
    q->committing = true;
    q->commit_rc = 1;
    return 0;
}

/* Takes one result of the COMMIT sent: its outcome is the first one's. */
static void commit_result_take(struct pg_store *q, PGresult *r)
{
    if (q->commit_rc == 1) {
        q->commit_rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : result_error(q, r, "commit");
        if (q->commit_rc < 0)
            memcpy(q->commit_why, q->base.errmsg, sizeof(q->commit_why));
    }
    PQclear(r);
}

static int pg_commit_answer(orc_store_t *s, bool block)
{
    struct pg_store *q = pg_of(s);
    PGresult *r;
    int rc;

    if (!q->committing)
        return orc__store_failf(s, ORC_EINVAL, "no commit was sent");
    if (!block && PQconsumeInput(q->conn) == 0)
        block = true; /* the connection broke: libpq answers at once with its error */
    while (block || !PQisBusy(q->conn)) {
        r = PQgetResult(q->conn);
        if (r != NULL) {
            commit_result_take(q, r);
            continue;
        }
        q->committing = false; /* the reply is whole: the connection is free */
        rc = q->commit_rc;
        if (rc == 1)
            return fail_with(q, ORC_EIO, "commit", "no answer from the server");
        if (rc < 0)
            return orc__store_failf(s, rc, "%s", q->commit_why);
        return 0;
    }
    return 1;
}

static int pg_commit_fd(const orc_store_t *s)
{
    return PQsocket(((const struct pg_store *)s)->conn);
}

/* ---- columns ------------------------------------------------------------------------- */

bool orc__pg_col_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

int64_t orc__pg_col_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool orc__pg_col_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

int orc__pg_col_text(struct pg_store *q, const PGresult *r, int row, int col, char **out)
{
    *out = NULL;
    if (PQgetisnull(r, row, col))
        return 0;
    *out = orc_strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
    return *out ? 0 : orc__store_failf(&q->base, ORC_ENOMEM, "read column: out of memory");
}

int orc__pg_col_json(struct pg_store *q, const PGresult *r, int row, int col, json_t **out)
{
    json_error_t jerr;

    *out = NULL;
    if (PQgetisnull(r, row, col))
        return 0;
    *out = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col), JSON_DECODE_ANY,
                      &jerr);
    if (*out != NULL)
        return 0;
    if (json_error_code(&jerr) == json_error_out_of_memory)
        return orc__store_failf(&q->base, ORC_ENOMEM, "read JSON column: out of memory");
    return orc__store_failf(&q->base, ORC_EFORMAT, "stored JSON (column %s) is malformed: %s",
                            PQfname(r, col), jerr.text);
}

int orc__pg_col_uuid(struct pg_store *q, const PGresult *r, int row, int col,
                     char out[ORC_UUID_LEN])
{
    const char *text = PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);

    out[0] = '\0';
    if (text == NULL || PQgetlength(r, row, col) != ORC_UUID_LEN - 1 || !orc_uuid_valid(text))
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored uuid is malformed");
    memcpy(out, text, ORC_UUID_LEN);
    return 0;
}

/* ---- shared reads and writes -------------------------------------------------------------- */

int orc__pg_no_deployment(struct pg_store *q, const char *uuid)
{
    return orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
}

int orc__pg_child_rows(struct pg_store *q, const PGresult *r, int col, const char *uuid,
                       int *rows)
{
    *rows = 0;
    if (PQntuples(r) == 0)
        return orc__pg_no_deployment(q, uuid);
    if (!PQgetisnull(r, 0, col))
        *rows = PQntuples(r);
    return 0;
}

/* the insert and its notification (delivered to the listeners at the commit); nothing
 * when the deployment does not exist, so that a missing one fails no statement */
static const char event_insert_sql[] =
    "WITH e AS (INSERT INTO events (deployment_uuid, time_ms, type, message, data)"
    " SELECT $1::text, $2::bigint, $3::text, $4::text, $5::text"
    " WHERE EXISTS (SELECT 1 FROM deployments WHERE uuid = $1::text) RETURNING id)"
    " SELECT id, pg_notify('" PG_CHANNEL "', $1::text) FROM e";

int orc__pg_event_insert(struct pg_store *q, const char *deployment_uuid, int64_t time_ms,
                         const char *type, const char *message, const char *data_text,
                         const json_t *data, int64_t *id)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, deployment_uuid);
    orc__pg_p_int(&p, 2, time_ms ? time_ms : orc_now_ms());
    orc__pg_p_text(&p, 3, type);
    orc__pg_p_text(&p, 4, message ? message : "");
    if (data_text)
        orc__pg_p_text(&p, 5, data_text);
    else
        orc__pg_p_json(&p, 5, data);
    rc = orc__pg_exec(q, event_insert_sql, &p, "insert event", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__pg_no_deployment(q, deployment_uuid);
    if (rc == 0 && id != NULL)
        *id = orc__pg_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

int orc__pg_event_write(struct pg_store *q, const char *deployment_uuid, int64_t time_ms,
                        struct orc__store_event *ev)
{
    int rc = orc__pg_event_insert(q, deployment_uuid, time_ms, ev->type, ev->message,
                                  ev->data_text[0] ? ev->data_text : NULL, ev->data, NULL);

    orc__store_event_clear(ev);
    return rc;
}

/* ---- migrations ------------------------------------------------------------------------ */

static int check_version(struct pg_store *q, int64_t version)
{
    if (version >= 0 && version <= orc__pg_migration_count)
        return 0;
    if (version < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "schema version %lld is not ours",
                                (long long)version);
    return orc__store_failf(&q->base, ORC_ENOTSUP,
                            "database schema version %lld is newer than this orchestrator "
                            "(which knows up to %d): upgrade the orchestrator or use another "
                            "database",
                            (long long)version, orc__pg_migration_count);
}

static const char schema_version_sql[] = "SELECT application, version FROM orc_schema";
static const char other_tables_sql[] =
    "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()";

/* The stored version: 0 for an empty database; EFORMAT for a database with
 * tables of some other program. Inside the migration's transaction. */
static int stored_version(struct pg_store *q, int64_t *version)
{
    PGresult *r = NULL;
    int rc;

    *version = 0;
    rc = orc__pg_simple(q, "SAVEPOINT orc_probe", "schema version");
    if (rc == 0 && orc__pg_exec(q, schema_version_sql, NULL, "schema version", &r) == 0) {
        if (PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), PG_APPLICATION) != 0)
            rc = orc__store_failf(&q->base, ORC_EFORMAT, "not an orchestrator database "
                                                         "(orc_schema has another owner)");
        else
            *version = orc__pg_col_int(r, 0, 1);
        PQclear(r);
        return rc < 0 ? rc : orc__pg_simple(q, "RELEASE SAVEPOINT orc_probe", "schema version");
    }
    if (rc < 0)
        return rc;
    /* no orc_schema table: a new database, unless it holds other tables */
    rc = orc__pg_simple(q, "ROLLBACK TO SAVEPOINT orc_probe", "schema version");
    if (rc == 0)
        rc = orc__pg_exec(q, other_tables_sql, NULL, "schema version", &r);
    if (rc == 0 && orc__pg_col_int(r, 0, 0) != 0)
        rc = orc__store_failf(&q->base, ORC_EFORMAT,
                              "not an orchestrator database (%lld tables, no orc_schema)",
                              (long long)orc__pg_col_int(r, 0, 0));
    PQclear(r);
    return rc;
}

static const char schema_create_sql[] =
    "CREATE TABLE orc_schema (application TEXT NOT NULL, version INTEGER NOT NULL)";
static const char schema_insert_sql[] =
    "INSERT INTO orc_schema (application, version) VALUES ($1::text, 0)";
static const char schema_set_sql[] = "UPDATE orc_schema SET version = $1::integer";

static int apply_steps(struct pg_store *q, int from)
{
    struct pg_params p = {0};
    int rc = 0;

    if (from == 0) {
        rc = orc__pg_simple(q, schema_create_sql, "schema version");
        orc__pg_p_text(&p, 1, PG_APPLICATION);
        if (rc == 0)
            rc = orc__pg_exec(q, schema_insert_sql, &p, "schema version", NULL);
    }
    for (int v = from + 1; v <= orc__pg_migration_count && rc == 0; v++) {
        orc_log(ORC_LOG_INFO, "store", "schema migration %d: %s", v,
                orc__pg_migrations[v - 1].what);
        rc = orc__pg_simple(q, orc__pg_migrations[v - 1].sql, "schema migration");
        q->base.migrations_applied += rc == 0;
    }
    orc__pg_p_int(&p, 1, orc__pg_migration_count);
    if (rc == 0)
        rc = orc__pg_exec(q, schema_set_sql, &p, "schema version", NULL);
    return rc;
}

static int migrate(struct pg_store *q)
{
    char lock[64];
    int64_t version = 0;
    int rc = tx_begin(q, "BEGIN");

    /* one daemon migrates at a time; the others find the work done */
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", PG_APPLICATION_ID);
    if (rc == 0)
        rc = orc__pg_simple(q, lock, "schema lock");
    if (rc == 0)
        rc = stored_version(q, &version);
    if (rc == 0)
        rc = check_version(q, version);
    if (rc == 0 && version < orc__pg_migration_count)
        rc = apply_steps(q, (int)version);
    rc = orc__pg_end(q, rc);
    if (rc < 0)
        q->base.migrations_applied = 0;
    else
        q->base.schema_version = orc__pg_migration_count;
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void pg_close(orc_store_t *s)
{
    struct pg_store *q = pg_of(s);

    if (q->conn != NULL)
        PQfinish(q->conn);
    PQfreeCancel(q->cancel);
    pthread_mutex_destroy(&q->cancel_mu);
    orc_free(q);
}

/* Notices (NOTICE, WARNING from the server) go to the daemon's log, not stderr. */
static void on_notice(void *arg, const char *message)
{
    size_t n = strcspn(message, "\n");

    (void)arg;
    orc_log(ORC_LOG_DEBUG, "store", "postgresql: %.*s", (int)n, message);
}

/* The target without its password, for messages. */
static void redacted_target(const char *target, char *out, size_t len)
{
    const char *scheme_end = strstr(target, "://");
    const char *at = scheme_end ? strchr(scheme_end + 3, '@') : NULL;
    const char *colon = scheme_end ? strchr(scheme_end + 3, ':') : NULL;

    if (at != NULL && colon != NULL && colon < at)
        snprintf(out, len, "%.*s:******%s", (int)(colon - target), target, at);
    else
        snprintf(out, len, "%s", target);
    if (strchr(out, '?') && strstr(out, "password="))
        snprintf(strchr(out, '?'), len - (size_t)(strchr(out, '?') - out), "?******");
}

static int pg_connect(struct pg_store *q, const char *target, char *err, size_t errlen)
{
    char shown[512];

    /* our settings, then the URL's, which win; a reconnection keeps them all */
    const char *const keys[] = {"client_encoding", "options", "application_name",
                                "connect_timeout", "keepalives_idle", "dbname", NULL};
    const char *const values[] = {"UTF8", "-c TimeZone=UTC", "orchestratord", "10", "30", target,
                                  NULL};

    redacted_target(target, shown, sizeof(shown));
    q->conn = PQconnectdbParams(keys, values, 1);
    if (q->conn == NULL) {
        snprintf(err, errlen, "store: %s: out of memory", shown);
        return ORC_ENOMEM;
    }
    if (PQstatus(q->conn) != CONNECTION_OK) {
        const char *msg = PQerrorMessage(q->conn);
        snprintf(err, errlen, "store: %s: cannot connect: %.*s", shown, (int)strcspn(msg, "\n"),
                 msg);
        return ORC_EIO;
    }
    PQsetNoticeProcessor(q->conn, on_notice, NULL);
    q->base.connection_id++;
    refresh_cancel(q);
    if (PQserverVersion(q->conn) < 110000) {
        snprintf(err, errlen, "store: %s: PostgreSQL %d is too old (11 or newer needed)", shown,
                 PQserverVersion(q->conn) / 10000);
        return ORC_ENOTSUP;
    }
    return 0;
}

static int pg_open(const char *target, orc_store_t **out, char *err, size_t errlen)
{
    char scratch[16], shown[512];
    struct pg_store *q;
    int rc;

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    q = orc_calloc(1, sizeof(*q));
    if (q == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return ORC_ENOMEM;
    }
    q->base.ops = &orc__store_pg_ops;
    pthread_mutex_init(&q->cancel_mu, NULL);
    rc = pg_connect(q, target, err, errlen);
    if (rc == 0)
        rc = migrate(q);
    if (rc < 0) {
        if (err[0] == '\0') {
            redacted_target(target, shown, sizeof(shown));
            snprintf(err, errlen, "store: %s: %s", shown, q->base.errmsg);
        }
        pg_close(&q->base);
        return rc;
    }
    q->base.errmsg[0] = '\0';
    *out = &q->base;
    return 0;
}

/* ---- metadata --------------------------------------------------------------------------- */

static const char meta_set_sql[] =
    "INSERT INTO meta (key, value, updated_ms) VALUES ($1::text, $2::text, $3::bigint)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms";
static const char meta_get_sql[] = "SELECT value FROM meta WHERE key = $1::text";
static const char meta_delete_sql[] = "DELETE FROM meta WHERE key = $1::text";
static const char meta_list_sql[] = "SELECT key, value FROM meta"
                                    " WHERE left(key, length($1::text)) = $1::text"
                                    " ORDER BY key COLLATE \"C\"";

static int pg_meta_set(orc_store_t *s, const char *key, const char *value)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    int rc = orc__pg_begin(q);

    orc__pg_p_text(&p, 1, key);
    orc__pg_p_text(&p, 2, value);
    orc__pg_p_int(&p, 3, orc_now_ms());
    if (rc == 0)
        rc = orc__pg_exec(q, meta_set_sql, &p, "set meta", NULL);
    return orc__pg_end(q, rc);
}

static int pg_meta_get(orc_store_t *s, const char *key, char **value)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, key);
    rc = orc__pg_exec(q, meta_get_sql, &p, "get meta", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "no meta key '%.64s'", key);
    else if (rc == 0)
        rc = orc__pg_col_text(q, r, 0, 0, value);
    PQclear(r);
    return rc;
}

static int pg_meta_delete(orc_store_t *s, const char *key)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    int64_t n = 0;
    int rc = orc__pg_begin(q);

    orc__pg_p_text(&p, 1, key);
    if (rc == 0)
        rc = orc__pg_run(q, meta_delete_sql, &p, "delete meta", &n);
    if (rc == 0 && n == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "no meta key '%.64s'", key);
    return orc__pg_end(q, rc);
}

static int pg_meta_list(orc_store_t *s, const char *prefix, orc_meta_list_t *out)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, prefix);
    rc = orc__pg_exec(q, meta_list_sql, &p, "list meta", &r);
    if (rc == 0 && PQntuples(r) > 0) {
        out->items = orc_calloc((size_t)PQntuples(r), sizeof(*out->items));
        if (out->items == NULL)
            rc = orc__store_failf(s, ORC_ENOMEM, "list meta: out of memory");
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        orc_meta_t *m = &out->items[out->count++];
        rc = orc__pg_col_text(q, r, i, 0, &m->key);
        if (rc == 0)
            rc = orc__pg_col_text(q, r, i, 1, &m->value);
    }
    PQclear(r);
    if (rc < 0)
        orc_meta_list_clear(out);
    return rc;
}

/* ---- notifications ------------------------------------------------------------------ */

static int pg_listen(orc_store_t *s)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_simple(q, "LISTEN " PG_CHANNEL, "listen");

    q->listening = rc == 0;
    return rc;
}

static int pg_changes_fd(orc_store_t *s)
{
    return PQsocket(pg_of(s)->conn);
}

static int pg_changes_read(orc_store_t *s, void (*fn)(void *ud, const char *uuid), void *ud)
{
    struct pg_store *q = pg_of(s);
    PGnotify *n;

    if (!q->in_tx && PQconsumeInput(q->conn) == 0) /* the connection broke: reconnects later */
        return fail_with(q, ORC_EAGAIN, "notifications", PQerrorMessage(q->conn));
    while ((n = PQnotifies(q->conn)) != NULL) {
        if (strcmp(n->relname, PG_CHANNEL) == 0 && orc_uuid_valid(n->extra))
            fn(ud, n->extra);
        PQfreemem(n);
    }
    return 0;
}

const struct orc_store_ops orc__store_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .close = pg_close,
    .deployment_insert = orc__pg_deployment_insert,
    .deployment_get = orc__pg_deployment_get,
    .deployment_list = orc__pg_deployment_list,
    .deployment_list_in_status = orc__pg_deployment_list_in_status,
    .deployment_counts = orc__pg_deployment_counts,
    .deployment_update = orc__pg_deployment_update,
    .deployment_delete = orc__pg_deployment_delete,
    .resources_insert = orc__pg_resources_insert,
    .resource_get = orc__pg_resource_get,
    .resource_list = orc__pg_resource_list,
    .resource_update = orc__pg_resource_update,
    .resource_delete = orc__pg_resource_delete,
    .site_resource_count = orc__pg_site_resource_count,
    .interrupt = pg_interrupt,
    .event_append = orc__pg_event_append,
    .event_list = orc__pg_event_list,
    .attempt_start = orc__pg_attempt_start,
    .attempt_end = orc__pg_attempt_end,
    .attempt_list = orc__pg_attempt_list,
    .lease_acquire = orc__pg_lease_acquire,
    .lease_renew = orc__pg_lease_renew,
    .lease_claim_expired = orc__pg_lease_claim_expired,
    .lease_release = orc__pg_lease_release,
    .listen = pg_listen,
    .changes_fd = pg_changes_fd,
    .changes_read = pg_changes_read,
    .meta_set = pg_meta_set,
    .meta_get = pg_meta_get,
    .meta_delete = pg_meta_delete,
    .meta_list = pg_meta_list,
    .group_begin = pg_group_begin,
    .group_commit = pg_group_commit,
    .group_commit_send = pg_group_commit_send,
    .commit_answer = pg_commit_answer,
    .commit_fd = pg_commit_fd,
};
