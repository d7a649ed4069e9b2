/*
 * Deployment slots of the PostgreSQL backend, with the SQLite backend's
 * semantics (sqlite_deployments.c): insert (single, or a group-commit batch
 * redone with one savepoint per item when an item is refused), get, paged and
 * filtered lists (count and page in one snapshot), the crash-recovery list,
 * compare-and-set updates and hard delete. Every write is one transaction (or
 * a savepoint of the open group) that also appends its event.
 */
#include <string.h>

#include "pg_internal.h"

/* column order read by read_deployment() */
#define DEP_COLS                                                                                   \
    "d.uuid, d.status, d.status_reason, d.task, d.created_by_issuer, "                             \
    "d.created_by_subject, d.user_group, d.callback, d.outputs, d.physical_id, "                   \
    "d.cloud_provider_name, d.cloud_provider_endpoint, d.timeout_mins, "                           \
    "d.provider_timeout_mins, d.max_providers_retry, d.keep_last_attempt, "                        \
    "d.deleted, d.version, d.created_ms, d.updated_ms"

/* $2 issuer, $3 subject, $4 group (NULL: any), $5 excluded statuses (text[]); $6 $7 $8 the
 * viewer's issuer, subject and groups (a JSON array): only their own deployments and their
 * groups' ($6 NULL: everything). Those not deleted are read through the partial index
 * deployments_live (the deleted ones stay in the store for good: a count must not scan
 * them); $1 (include deleted) is sent to both and read by DEP_FILTER_ALL only. */
#define DEP_FILTER_LIVE                                                                            \
    " FROM deployments d WHERE NOT d.deleted AND $1::boolean IS NOT NULL" DEP_FILTER_REST
#define DEP_FILTER_ALL " FROM deployments d WHERE $1::boolean" DEP_FILTER_REST
#define DEP_FILTER_REST                                                                            \
    " AND ($2::text IS NULL OR d.created_by_issuer = $2::text)"                                    \
    " AND ($3::text IS NULL OR d.created_by_subject = $3::text)"                                   \
    " AND ($4::text IS NULL OR d.user_group = $4::text)"                                           \
    " AND NOT (d.status = ANY ($5::text[]))"                                                       \
    " AND ($6::text IS NULL OR (d.created_by_issuer = $6::text"                                    \
    "      AND d.created_by_subject = $7::text)"                                                   \
    "      OR d.user_group IN (SELECT jsonb_array_elements_text($8::jsonb)))"

/* $9 limit (NULL: none), $10 offset */
#define DEP_LIST(filter, order)                                                                    \
    "SELECT " DEP_COLS filter " ORDER BY " order " LIMIT $9::bigint OFFSET $10::bigint"

/* [include deleted][sort] */
static const char *const list_sql[2][ORC_DEP_SORT__COUNT] = {
    {ORC_STORE_DEP_LISTS(DEP_LIST, 0, DEP_FILTER_LIVE)},
    {ORC_STORE_DEP_LISTS(DEP_LIST, 0, DEP_FILTER_ALL)}};

static const char *const count_sql[2] = {"SELECT count(*)" DEP_FILTER_LIVE,
                                         "SELECT count(*)" DEP_FILTER_ALL};

static const char insert_sql[] =
    "INSERT INTO deployments (uuid, status, status_reason, task, created_by_issuer,"
    " created_by_subject, user_group, callback, outputs, physical_id,"
    " cloud_provider_name, cloud_provider_endpoint, timeout_mins, provider_timeout_mins,"
    " max_providers_retry, keep_last_attempt, deleted, version, created_ms, updated_ms)"
    " VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text,"
    " $9::text, $10::text, $11::text, $12::text, $13::integer, $14::integer, $15::integer,"
    " $16::boolean, false, 1, $17::bigint, $17::bigint)";

static const char insert_spec_sql[] =
    "INSERT INTO deployment_templates (deployment_uuid, template, parameters, plan)"
    " VALUES ($1::text, $2::text, $3::text, $4::text)";

static const char get_sql[] = "SELECT " DEP_COLS ", t.template, t.parameters, t.plan"
                              " FROM deployments d"
                              " LEFT JOIN deployment_templates t ON t.deployment_uuid = d.uuid"
                              " WHERE d.uuid = $1::text";
static const char get_head_sql[] = "SELECT " DEP_COLS " FROM deployments d WHERE d.uuid = $1::text";
static const char head_sql[] = "SELECT version, status FROM deployments WHERE uuid = $1::text";
static const char status_counts_sql[] =
    "SELECT status, count(*) FROM deployments WHERE NOT deleted GROUP BY status";
static const char in_status_sql[] = "SELECT " DEP_COLS " FROM deployments d WHERE NOT d.deleted"
                                    " AND d.status = ANY ($1::text[]) ORDER BY d.uuid ASC";

/* $1 uuid, $2 current version, $3 now; then (flag, value) pairs */
static const char update_sql[] =
    "UPDATE deployments SET"
    " status = CASE WHEN $4::boolean THEN $5::text ELSE status END,"
    " status_reason = CASE WHEN $6::boolean THEN $7::text ELSE status_reason END,"
    " task = CASE WHEN $8::boolean THEN $9::text ELSE task END,"
    " outputs = CASE WHEN $10::boolean THEN $11::text ELSE outputs END,"
    " physical_id = CASE WHEN $12::boolean THEN $13::text ELSE physical_id END,"
    " cloud_provider_name = CASE WHEN $14::boolean THEN $15::text ELSE cloud_provider_name END,"
    " cloud_provider_endpoint = CASE WHEN $16::boolean THEN $17::text"
    "   ELSE cloud_provider_endpoint END,"
    " callback = CASE WHEN $18::boolean THEN $19::text ELSE callback END,"
    " timeout_mins = CASE WHEN $20::boolean THEN $21::integer ELSE timeout_mins END,"
    " provider_timeout_mins = CASE WHEN $20::boolean THEN $22::integer"
    "   ELSE provider_timeout_mins END,"
    " max_providers_retry = CASE WHEN $20::boolean THEN $23::integer ELSE max_providers_retry END,"
    " keep_last_attempt = CASE WHEN $20::boolean THEN $24::boolean ELSE keep_last_attempt END,"
    " deleted = CASE WHEN $25::boolean THEN $26::boolean ELSE deleted END,"
    " version = version + 1, updated_ms = $3::bigint"
    " WHERE uuid = $1::text AND version = $2::bigint RETURNING version";

/* $1 uuid; then (flag, value) pairs */
static const char update_spec_sql[] =
    "UPDATE deployment_templates SET"
    " template = CASE WHEN $2::boolean THEN $3::text ELSE template END,"
    " parameters = CASE WHEN $4::boolean THEN $5::text ELSE parameters END,"
    " plan = CASE WHEN $6::boolean THEN $7::text ELSE plan END"
    " WHERE deployment_uuid = $1::text";

static const char delete_sql[] = "DELETE FROM deployments WHERE uuid = $1::text";

/* ---- reading rows ------------------------------------------------------------ */

static int col_status(struct pg_store *q, const PGresult *r, int row, int col,
                      orc_dep_status_t *out)
{
    const char *t = PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);

    if (orc_dep_status_parse(t, out) < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored status '%.40s' is unknown",
                                t ? t : "(null)");
    return 0;
}

static int col_task(struct pg_store *q, const PGresult *r, int row, int col, orc_task_t *out)
{
    const char *t = PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);

    if (orc_task_parse(t, out) < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored task '%.40s' is unknown",
                                t ? t : "(null)");
    return 0;
}

/* Reads the DEP_COLS of a row, then the template columns when with_spec. On
 * failure d holds what was read: clear it. */
static int read_deployment(struct pg_store *q, const PGresult *r, int i, orc_deployment_t *d,
                           bool with_spec)
{
    int rc = orc__pg_col_uuid(q, r, i, 0, d->uuid);

    if (rc == 0)
        rc = col_status(q, r, i, 1, &d->status);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 2, &d->status_reason);
    if (rc == 0)
        rc = col_task(q, r, i, 3, &d->task);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 4, &d->created_by.issuer);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 5, &d->created_by.subject);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 6, &d->user_group);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 7, &d->callback);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 8, &d->outputs);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 9, &d->physical_id);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 10, &d->cloud_provider_name);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 11, &d->cloud_provider_endpoint);
    d->timeout_mins = (int)orc__pg_col_int(r, i, 12);
    d->provider_timeout_mins = (int)orc__pg_col_int(r, i, 13);
    d->max_providers_retry = (int)orc__pg_col_int(r, i, 14);
    d->keep_last_attempt = orc__pg_col_bool(r, i, 15);
    d->deleted = orc__pg_col_bool(r, i, 16);
    d->version = orc__pg_col_int(r, i, 17);
    d->created_ms = orc__pg_col_int(r, i, 18);
    d->updated_ms = orc__pg_col_int(r, i, 19);
    if (rc == 0 && with_spec)
        rc = orc__pg_col_text(q, r, i, 20, &d->template_text);
    if (rc == 0 && with_spec)
        rc = orc__pg_col_json(q, r, i, 21, &d->parameters);
    if (rc == 0 && with_spec)
        rc = orc__pg_col_json(q, r, i, 22, &d->plan);
    return rc;
}

/* Appends every row of r to out. */
static int read_deployments(struct pg_store *q, const PGresult *r, orc_deployment_list_t *out)
{
    int rows = PQntuples(r);

    if (rows == 0)
        return 0;
    out->items = orc_calloc((size_t)rows, sizeof(*out->items));
    if (out->items == NULL)
        return orc__store_failf(&q->base, ORC_ENOMEM, "list deployments: out of memory");
    for (int i = 0; i < rows; i++) {
        int rc = read_deployment(q, r, i, &out->items[out->count++], false);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- insert ---------------------------------------------------------------------- */

static int insert_row(struct pg_store *q, const char *uuid, const orc_deployment_t *d, int64_t now)
{
    struct pg_params p = {0};

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, orc_dep_status_name(ORC_DEP_CREATE_IN_PROGRESS));
    orc__pg_p_text(&p, 3, d->status_reason);
    orc__pg_p_text(&p, 4, orc_task_name(d->task));
    orc__pg_p_text(&p, 5, d->created_by.issuer);
    orc__pg_p_text(&p, 6, d->created_by.subject);
    orc__pg_p_text(&p, 7, d->user_group);
    orc__pg_p_text(&p, 8, d->callback);
    orc__pg_p_json(&p, 9, d->outputs);
    orc__pg_p_text(&p, 10, d->physical_id);
    orc__pg_p_text(&p, 11, d->cloud_provider_name);
    orc__pg_p_json(&p, 12, d->cloud_provider_endpoint);
    orc__pg_p_opt_int(&p, 13, d->timeout_mins);
    orc__pg_p_int(&p, 14,
                  d->provider_timeout_mins ? d->provider_timeout_mins
                                           : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS);
    orc__pg_p_opt_int(&p, 15, d->max_providers_retry);
    orc__pg_p_bool(&p, 16, d->keep_last_attempt);
    orc__pg_p_int(&p, 17, now);
    return orc__pg_exec(q, insert_sql, &p, "insert deployment", NULL);
}

static int insert_spec(struct pg_store *q, const char *uuid, const orc_deployment_t *d)
{
    struct pg_params p = {0};

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, d->template_text);
    if (d->parameters)
        orc__pg_p_json(&p, 3, d->parameters);
    else
        orc__pg_p_text(&p, 3, "{}");
    orc__pg_p_json(&p, 4, d->plan);
    return orc__pg_exec(q, insert_spec_sql, &p, "insert template", NULL);
}

static int insert_one(struct pg_store *q, orc_deployment_t *d, int64_t now)
{
    char uuid[ORC_UUID_LEN];
    json_t *data = NULL;
    int rc = orc__store_new_uuid(&q->base, uuid);

    if (rc == 0)
        rc = insert_row(q, uuid, d, now);
    if (rc == 0)
        rc = insert_spec(q, uuid, d);
    if (rc == 0) {
        data = orc__store_status_data(ORC_DEP_CREATE_IN_PROGRESS, 1);
        rc = data ? 0 : orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    }
    if (rc == 0)
        rc = orc__pg_event_insert(q, uuid, now, "deployment.created", "deployment created", NULL,
                                  data, NULL);
    json_decref(data);
    if (rc < 0)
        return rc;
    memcpy(d->uuid, uuid, sizeof(uuid));
    d->status = ORC_DEP_CREATE_IN_PROGRESS;
    d->deleted = false;
    d->version = 1;
    d->created_ms = d->updated_ms = now;
    if (d->provider_timeout_mins == 0)
        d->provider_timeout_mins = ORC_DEFAULT_PROVIDER_TIMEOUT_MINS;
    return 0;
}

/* One batch item inside its savepoint: a failing item is undone alone. A
 * failure that ended the whole transaction (the connection) is the batch's;
 * the item's own result goes to *item_rc. */
static int insert_item(struct pg_store *q, orc_deployment_t *d, int64_t now, int *item_rc)
{
    int rc = orc__pg_simple(q, "SAVEPOINT orc_item", "savepoint");

    if (rc < 0)
        return rc;
    *item_rc = insert_one(q, d, now);
    if (*item_rc == 0)
        return orc__pg_simple(q, "RELEASE SAVEPOINT orc_item", "release savepoint");
    if (PQtransactionStatus(q->conn) == PQTRANS_IDLE ||
        PQtransactionStatus(q->conn) == PQTRANS_UNKNOWN)
        return *item_rc;
    rc = orc__pg_simple(q, "ROLLBACK TO SAVEPOINT orc_item", "rollback to savepoint");
    if (rc == 0)
        rc = orc__pg_simple(q, "RELEASE SAVEPOINT orc_item", "release savepoint");
    return rc;
}

static int insert_pass(struct pg_store *q, orc_deployment_t *ds, size_t n, int *rcs, bool isolate,
                       int64_t now, size_t *failed)
{
    int rc = orc__pg_begin(q);

    for (size_t i = 0; i < n && rc == 0; i++) {
        if (rcs[i] != 0)
            continue; /* refused by validation */
        if (isolate) {
            rc = insert_item(q, &ds[i], now, &rcs[i]);
        } else {
            rc = rcs[i] = insert_one(q, &ds[i], now);
            *failed = i;
        }
    }
    rc = orc__pg_end(q, rc);
    for (size_t i = 0; rc < 0 && i < n; i++) {
        ds[i].uuid[0] = '\0';
        ds[i].version = 0;
    }
    return rc;
}

int orc__pg_deployment_insert(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs, bool batch)
{
    struct pg_store *q = pg_of(s);
    int64_t now = orc_now_ms();
    size_t failed = n;
    int rc = insert_pass(q, ds, n, rcs, false, now, &failed);

    /* optimistic, as in the SQLite backend: all items in one go, and only if
     * one was refused again with a savepoint per item */
    if (rc < 0 && batch && failed < n && rcs[failed] == rc && orc__store_item_error(rc))
        rc = insert_pass(q, ds, n, rcs, true, now, &failed);
    return rc;
}

/* ---- get and lists ------------------------------------------------------------------- */

int orc__pg_deployment_get(orc_store_t *s, const char *uuid, bool with_spec, orc_deployment_t **out)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    orc_deployment_t *d = NULL;
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    rc = orc__pg_exec(q, with_spec ? get_sql : get_head_sql, &p, "get deployment", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    if (rc == 0) {
        d = orc_calloc(1, sizeof(*d));
        rc = d ? read_deployment(q, r, 0, d, with_spec)
               : orc__store_failf(s, ORC_ENOMEM, "get deployment: out of memory");
    }
    PQclear(r);
    if (rc < 0) {
        orc_deployment_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* The DEP_FILTER_LIVE and _ALL parameters $1..$8. */
static void filter_params(struct pg_params *p, const orc_dep_query_t *f)
{
    orc__pg_p_bool(p, 1, f->include_deleted);
    orc__pg_p_text(p, 2, f->created_by_issuer);
    orc__pg_p_text(p, 3, f->created_by_subject);
    orc__pg_p_text(p, 4, f->user_group);
    orc__pg_p_status_set(p, 5, f->excluded_statuses);
    orc__pg_p_text(p, 6, f->viewer_issuer);
    orc__pg_p_text(p, 7, f->viewer_issuer ? f->viewer_subject : NULL);
    orc__pg_p_text(p, 8, f->viewer_issuer ? (f->viewer_groups ? f->viewer_groups : "[]") : "[]");
}

static int count_deployments(struct pg_store *q, const orc_dep_query_t *f, int64_t *total)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    filter_params(&p, f);
    rc = orc__pg_exec(q, count_sql[f->include_deleted], &p, "count deployments", &r);
    if (rc == 0)
        *total = orc__pg_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int page_deployments(struct pg_store *q, const orc_dep_query_t *f,
                            orc_deployment_list_t *out)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    filter_params(&p, f);
    orc__pg_p_opt_int(&p, 9, f->size);
    orc__pg_p_int(&p, 10, orc__store_page_offset(f->page, f->size));
    rc = orc__pg_exec(q, list_sql[f->include_deleted][f->sort], &p, "list deployments", &r);
    if (rc == 0)
        rc = read_deployments(q, r, out);
    PQclear(r);
    return rc;
}

int orc__pg_deployment_list(orc_store_t *s, const orc_dep_query_t *f, orc_deployment_list_t *out)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_read_begin(q);

    if (rc == 0)
        rc = count_deployments(q, f, &out->total);
    if (rc == 0 && (f->size == 0 || orc__store_page_offset(f->page, f->size) < out->total))
        rc = page_deployments(q, f, out);
    rc = orc__pg_read_end(q, rc);
    if (rc < 0)
        orc_deployment_list_clear(out);
    return rc;
}

int orc__pg_deployment_list_in_status(orc_store_t *s, uint32_t statuses, orc_deployment_list_t *out)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_status_set(&p, 1, statuses);
    rc = orc__pg_exec(q, in_status_sql, &p, "list deployments", &r);
    if (rc == 0)
        rc = read_deployments(q, r, out);
    PQclear(r);
    if (rc < 0)
        orc_deployment_list_clear(out);
    out->total = (int64_t)out->count;
    return rc;
}

int orc__pg_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT])
{
    struct pg_store *q = pg_of(s);
    orc_dep_status_t status;
    PGresult *r;
    int rc = orc__pg_exec(q, status_counts_sql, NULL, "count deployments", &r);

    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        rc = col_status(q, r, i, 0, &status);
        if (rc == 0)
            counts[status] = orc__pg_col_int(r, i, 1);
    }
    PQclear(r);
    return rc;
}

/* ---- update ------------------------------------------------------------------------------ */

/* Version and status of a deployment: the compare half of the CAS. */
static int read_head(struct pg_store *q, const char *uuid, int64_t *version,
                     orc_dep_status_t *status)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    rc = orc__pg_exec(q, head_sql, &p, "read deployment", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    if (rc == 0) {
        *version = orc__pg_col_int(r, 0, 0);
        rc = col_status(q, r, 0, 1, status);
    }
    PQclear(r);
    return rc;
}

static void update_params(struct pg_params *p, const orc_dep_update_t *u)
{
    const orc_deployment_t *v = u->values;
    unsigned f = u->set;

    orc__pg_p_bool(p, 4, f & ORC_DEP_F_STATUS);
    orc__pg_p_text(p, 5, (f & ORC_DEP_F_STATUS) ? orc_dep_status_name(v->status) : NULL);
    orc__pg_p_bool(p, 6, f & ORC_DEP_F_STATUS_REASON);
    orc__pg_p_text(p, 7, v->status_reason);
    orc__pg_p_bool(p, 8, f & ORC_DEP_F_TASK);
    orc__pg_p_text(p, 9, (f & ORC_DEP_F_TASK) ? orc_task_name(v->task) : NULL);
    orc__pg_p_bool(p, 10, f & ORC_DEP_F_OUTPUTS);
    orc__pg_p_json(p, 11, (f & ORC_DEP_F_OUTPUTS) ? v->outputs : NULL);
    orc__pg_p_bool(p, 12, f & ORC_DEP_F_PHYSICAL_ID);
    orc__pg_p_text(p, 13, v->physical_id);
    orc__pg_p_bool(p, 14, f & ORC_DEP_F_PROVIDER_NAME);
    orc__pg_p_text(p, 15, v->cloud_provider_name);
    orc__pg_p_bool(p, 16, f & ORC_DEP_F_PROVIDER_ENDPOINT);
    orc__pg_p_json(p, 17, (f & ORC_DEP_F_PROVIDER_ENDPOINT) ? v->cloud_provider_endpoint : NULL);
    orc__pg_p_bool(p, 18, f & ORC_DEP_F_CALLBACK);
    orc__pg_p_text(p, 19, v->callback);
    orc__pg_p_bool(p, 20, f & ORC_DEP_F_OPTIONS);
    orc__pg_p_opt_int(p, 21, v->timeout_mins);
    orc__pg_p_int(p, 22,
                  v->provider_timeout_mins ? v->provider_timeout_mins
                                           : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS);
    orc__pg_p_opt_int(p, 23, v->max_providers_retry);
    orc__pg_p_bool(p, 24, v->keep_last_attempt);
    orc__pg_p_bool(p, 25, f & ORC_DEP_F_DELETED);
    orc__pg_p_bool(p, 26, v->deleted);
}

/* The set half of the CAS: UPDATE ... WHERE version = current. */
static int update_row(struct pg_store *q, const orc_dep_update_t *u, int64_t version, int64_t now,
                      int64_t *new_version)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, u->uuid);
    orc__pg_p_int(&p, 2, version);
    orc__pg_p_int(&p, 3, now);
    update_params(&p, u);
    rc = orc__pg_exec(q, update_sql, &p, "update deployment", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(&q->base, ORC_ECONFLICT, "the deployment %s changed", u->uuid);
    if (rc == 0)
        *new_version = orc__pg_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int update_spec(struct pg_store *q, const orc_dep_update_t *u)
{
    const orc_deployment_t *v = u->values;
    struct pg_params p = {0};
    int64_t n = 0;
    int rc;

    orc__pg_p_text(&p, 1, u->uuid);
    orc__pg_p_bool(&p, 2, u->set & ORC_DEP_F_TEMPLATE);
    orc__pg_p_text(&p, 3, v->template_text);
    orc__pg_p_bool(&p, 4, u->set & ORC_DEP_F_PARAMETERS);
    if (v->parameters && (u->set & ORC_DEP_F_PARAMETERS))
        orc__pg_p_json(&p, 5, v->parameters);
    else
        orc__pg_p_text(&p, 5, "{}");
    orc__pg_p_bool(&p, 6, u->set & ORC_DEP_F_PLAN);
    orc__pg_p_json(&p, 7, (u->set & ORC_DEP_F_PLAN) ? v->plan : NULL);
    rc = orc__pg_run(q, update_spec_sql, &p, "update template", &n);
    if (rc == 0 && n != 1)
        rc = orc__store_failf(&q->base, ORC_EFORMAT, "the deployment %s has no template", u->uuid);
    return rc;
}

static int update_event(struct pg_store *q, const orc_dep_update_t *u, orc_dep_status_t status,
                        int64_t version, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_update_event(u, status, version, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__pg_event_write(q, u->uuid, now, &ev);
}

static int update_body(struct pg_store *q, const orc_dep_update_t *u, int64_t *new_version)
{
    orc_dep_status_t status = ORC_DEP_UNKNOWN;
    int64_t version = 0, now = orc_now_ms();
    int rc = read_head(q, u->uuid, &version, &status);

    if (rc == 0)
        rc = orc__store_check_cas(&q->base, u, version, status);
    if (rc == 0)
        rc = update_row(q, u, version, now, new_version);
    if (rc == 0 && (u->set & (ORC_DEP_F_TEMPLATE | ORC_DEP_F_PARAMETERS | ORC_DEP_F_PLAN)))
        rc = update_spec(q, u);
    if (rc == 0 && (u->set & ORC_DEP_F_STATUS))
        status = u->values->status;
    if (rc == 0)
        rc = update_event(q, u, status, *new_version, now);
    return rc;
}

int orc__pg_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version)
{
    struct pg_store *q = pg_of(s);
    int64_t version = 0;
    int rc = orc__pg_begin_lite(q);

    if (rc == 0)
        rc = update_body(q, u, &version);
    rc = orc__pg_end_lite(q, rc);
    if (rc == 0 && new_version)
        *new_version = version;
    return rc;
}

int orc__pg_deployment_delete(orc_store_t *s, const char *uuid)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    int64_t n = 0;
    int rc = orc__pg_begin(q);

    /* ON DELETE CASCADE removes the template, resources, events and attempts */
    orc__pg_p_text(&p, 1, uuid);
    if (rc == 0)
        rc = orc__pg_run(q, delete_sql, &p, "delete deployment", &n);
    if (rc == 0 && n == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    return orc__pg_end(q, rc);
}
