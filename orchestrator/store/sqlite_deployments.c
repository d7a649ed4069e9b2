/*
 * Deployment slots of the SQLite backend: insert (single, or a group-commit
 * batch with one savepoint per item), get, paged and filtered lists, the list
 * used by crash recovery, compare-and-set updates and hard delete. Every
 * write is one transaction (orc__sq_begin/orc__sq_end: its own, or a
 * savepoint of the open group) that also appends its event, so a status
 * change and its event are stored together or not at all.
 */
#include <string.h>

#include "sqlite_internal.h"

/* ---- reading rows ------------------------------------------------------------ */

static int col_enum_status(struct sq_store *q, sqlite3_stmt *st, int col, orc_dep_status_t *out)
{
    const char *t = (const char *)sqlite3_column_text(st, col);

    if (orc_dep_status_parse(t, out) < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored status '%.40s' is unknown",
                                t ? t : "(null)");
    return 0;
}

static int col_enum_task(struct sq_store *q, sqlite3_stmt *st, int col, orc_task_t *out)
{
    const char *t = (const char *)sqlite3_column_text(st, col);

    if (orc_task_parse(t, out) < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored task '%.40s' is unknown",
                                t ? t : "(null)");
    return 0;
}

/* Reads the DEP_COLS of the current row (sqlite_sql.c), then the template
 * columns when with_spec. On failure d holds what was read: clear it. */
static int read_deployment(struct sq_store *q, sqlite3_stmt *st, orc_deployment_t *d,
                           bool with_spec)
{
    int rc = orc__sq_col_uuid(q, st, 0, d->uuid);

    if (rc == 0)
        rc = col_enum_status(q, st, 1, &d->status);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 2, &d->status_reason);
    if (rc == 0)
        rc = col_enum_task(q, st, 3, &d->task);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 4, &d->created_by.issuer);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 5, &d->created_by.subject);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 6, &d->user_group);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 7, &d->callback);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 8, &d->outputs);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 9, &d->physical_id);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 10, &d->cloud_provider_name);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 11, &d->cloud_provider_endpoint);
    d->timeout_mins = sqlite3_column_int(st, 12);
    d->provider_timeout_mins = sqlite3_column_int(st, 13);
    d->max_providers_retry = sqlite3_column_int(st, 14);
    d->keep_last_attempt = sqlite3_column_int(st, 15) != 0;
    d->deleted = sqlite3_column_int(st, 16) != 0;
    d->version = sqlite3_column_int64(st, 17);
    d->created_ms = sqlite3_column_int64(st, 18);
    d->updated_ms = sqlite3_column_int64(st, 19);
    if (rc == 0 && with_spec)
        rc = orc__sq_col_text(q, st, 20, &d->template_text);
    if (rc == 0 && with_spec)
        rc = orc__sq_col_json(q, st, 21, &d->parameters);
    if (rc == 0 && with_spec)
        rc = orc__sq_col_json(q, st, 22, &d->plan);
    return rc;
}

/* Steps st to the end, appending each row to out. */
static int read_deployments(struct sq_store *q, sqlite3_stmt *st, orc_deployment_list_t *out)
{
    size_t cap = 0;
    int rc;

    while ((rc = orc__sq_step(q, st, "list deployments")) == 1) {
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc < 0)
            return orc__store_failf(&q->base, rc, "list deployments: out of memory");
        rc = read_deployment(q, st, &out->items[out->count++], false);
        if (rc < 0)
            return rc;
    }
    return rc;
}

/* ---- insert ---------------------------------------------------------------------- */

static int insert_row(struct sq_store *q, const char *uuid, const orc_deployment_t *d, int64_t now)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_DEP_INSERT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_text(&b, 2, orc_dep_status_name(ORC_DEP_CREATE_IN_PROGRESS));
    orc__sq_b_text(&b, 3, d->status_reason);
    orc__sq_b_text(&b, 4, orc_task_name(d->task));
    orc__sq_b_text(&b, 5, d->created_by.issuer);
    orc__sq_b_text(&b, 6, d->created_by.subject);
    orc__sq_b_text(&b, 7, d->user_group);
    orc__sq_b_text(&b, 8, d->callback);
    orc__sq_b_json(&b, 9, d->outputs);
    orc__sq_b_text(&b, 10, d->physical_id);
    orc__sq_b_text(&b, 11, d->cloud_provider_name);
    orc__sq_b_json(&b, 12, d->cloud_provider_endpoint);
    orc__sq_b_opt_int(&b, 13, d->timeout_mins);
    orc__sq_b_int(&b, 14,
                  d->provider_timeout_mins ? d->provider_timeout_mins
                                           : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS);
    orc__sq_b_opt_int(&b, 15, d->max_providers_retry);
    orc__sq_b_int(&b, 16, d->keep_last_attempt);
    orc__sq_b_int(&b, 17, now);
    rc = orc__sq_b_done(&b, "insert deployment");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "insert deployment");
    orc__sq_release(b.st);
    return rc;
}

static int insert_spec(struct sq_store *q, const char *uuid, const orc_deployment_t *d)
{
    static const char empty_object[] = "{}";
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_TPL_INSERT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_text(&b, 2, d->template_text);
    if (d->parameters)
        orc__sq_b_json(&b, 3, d->parameters);
    else
        orc__sq_b_text(&b, 3, empty_object);
    orc__sq_b_json(&b, 4, d->plan);
    rc = orc__sq_b_done(&b, "insert template");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "insert template");
    orc__sq_release(b.st);
    return rc;
}

static int insert_one(struct sq_store *q, orc_deployment_t *d, int64_t now)
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
        rc = orc__sq_event_insert(q, uuid, now, "deployment.created", "deployment created", data,
                                  NULL);
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
 * failure that ended the whole transaction (I/O, full disk) is returned as
 * the batch's failure; the item's own result goes to *item_rc. */
static int insert_item(struct sq_store *q, orc_deployment_t *d, int64_t now, int *item_rc)
{
    int rc = orc__sq_run(q, SQ_SAVEPOINT, "savepoint");

    if (rc < 0)
        return rc;
    *item_rc = insert_one(q, d, now);
    if (*item_rc == 0)
        return orc__sq_run(q, SQ_RELEASE, "release savepoint");
    if (sqlite3_get_autocommit(q->db))
        return *item_rc; /* SQLite rolled the transaction back */
    rc = orc__sq_run(q, SQ_ROLLBACK_TO, "rollback to savepoint");
    if (rc == 0)
        rc = orc__sq_run(q, SQ_RELEASE, "release savepoint");
    return rc;
}

/* One transaction over the items whose rcs[i] is 0. Without isolation the
 * first failing item fails the pass (*failed is its index); with isolation
 * each item runs in its own savepoint and fails alone. */
static int insert_pass(struct sq_store *q, orc_deployment_t *ds, size_t n, int *rcs, bool isolate,
                       int64_t now, size_t *failed)
{
    int rc = orc__sq_begin(q);

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
    rc = orc__sq_end(q, rc);
    for (size_t i = 0; rc < 0 && i < n; i++) {
        ds[i].uuid[0] = '\0';
        ds[i].version = 0;
    }
    return rc;
}

int orc__sq_deployment_insert(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs, bool batch)
{
    struct sq_store *q = sq_of(s);
    int64_t now = orc_now_ms();
    size_t failed = n;
    int rc = insert_pass(q, ds, n, rcs, false, now, &failed);

    /* Group commit is optimistic: all items in one go, no savepoints (each
     * savepoint journals every page it touches, which halves throughput).
     * If one item was refused, the batch is redone with a savepoint per item
     * so that the others still commit. */
    if (rc < 0 && batch && failed < n && rcs[failed] == rc && orc__store_item_error(rc))
        rc = insert_pass(q, ds, n, rcs, true, now, &failed);
    return rc;
}

/* ---- get and lists ------------------------------------------------------------------- */

int orc__sq_deployment_get(orc_store_t *s, const char *uuid, bool with_spec, orc_deployment_t **out)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    orc_deployment_t *d = NULL;
    int rc = orc__sq_stmt(q, with_spec ? SQ_DEP_GET : SQ_DEP_GET_HEAD, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "get deployment");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "get deployment");
    if (rc == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    if (rc == 1) {
        d = orc_calloc(1, sizeof(*d));
        rc = d ? read_deployment(q, b.st, d, with_spec)
               : orc__store_failf(s, ORC_ENOMEM, "get deployment: out of memory");
    }
    orc__sq_release(b.st);
    if (rc < 0) {
        orc_deployment_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* Binds the DEP_FILTER_LIVE and _ALL parameters ?1..?5 and ?8..?10 (sqlite_sql.c). */
static void bind_filter(struct sq_bind *b, const orc_dep_query_t *f, char *set, size_t len)
{
    orc__sq_status_set(f->excluded_statuses, set, len);
    orc__sq_b_int(b, 1, f->include_deleted);
    orc__sq_b_text(b, 2, f->created_by_issuer);
    orc__sq_b_text(b, 3, f->created_by_subject);
    orc__sq_b_text(b, 4, f->user_group);
    orc__sq_b_text(b, 5, set);
    if (f->viewer_issuer != NULL) {
        orc__sq_b_text(b, 8, f->viewer_issuer);
        orc__sq_b_text(b, 9, f->viewer_subject);
        orc__sq_b_text(b, 10, f->viewer_groups ? f->viewer_groups : "[]");
    }
}

static int count_deployments(struct sq_store *q, const orc_dep_query_t *f, int64_t *total)
{
    char set[256];
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, f->include_deleted ? SQ_DEP_COUNT_ALL : SQ_DEP_COUNT, &b.st);

    if (rc < 0)
        return rc;
    bind_filter(&b, f, set, sizeof(set));
    rc = orc__sq_b_done(&b, "count deployments");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "count deployments");
    if (rc == 1) {
        *total = sqlite3_column_int64(b.st, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = orc__store_failf(&q->base, ORC_EIO, "count deployments: no result");
    }
    orc__sq_release(b.st);
    return rc;
}

static int page_deployments(struct sq_store *q, const orc_dep_query_t *f,
                            orc_deployment_list_t *out)
{
    char set[256];
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(
        q, (enum sq_stmt)((f->include_deleted ? SQ_DEP_LIST_ALL : SQ_DEP_LIST) + f->sort), &b.st);

    if (rc < 0)
        return rc;
    bind_filter(&b, f, set, sizeof(set));
    orc__sq_b_int(&b, 6, f->size ? (int64_t)f->size : -1);
    orc__sq_b_int(&b, 7, orc__store_page_offset(f->page, f->size));
    rc = orc__sq_b_done(&b, "list deployments");
    if (rc == 0)
        rc = read_deployments(q, b.st, out);
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_deployment_list(orc_store_t *s, const orc_dep_query_t *f, orc_deployment_list_t *out)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_read_begin(q);

    /* one snapshot for the count and the page */
    if (rc == 0)
        rc = count_deployments(q, f, &out->total);
    if (rc == 0 && (f->size == 0 || orc__store_page_offset(f->page, f->size) < out->total))
        rc = page_deployments(q, f, out);
    rc = orc__sq_read_end(q, rc);
    if (rc < 0)
        orc_deployment_list_clear(out);
    return rc;
}

int orc__sq_deployment_list_in_status(orc_store_t *s, uint32_t statuses, orc_deployment_list_t *out)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    char set[256];
    int rc = orc__sq_stmt(q, SQ_DEP_IN_STATUS, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_status_set(statuses, set, sizeof(set));
    orc__sq_b_text(&b, 1, set);
    rc = orc__sq_b_done(&b, "list deployments");
    if (rc == 0)
        rc = read_deployments(q, b.st, out);
    orc__sq_release(b.st);
    if (rc < 0)
        orc_deployment_list_clear(out);
    out->total = (int64_t)out->count;
    return rc;
}

int orc__sq_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT])
{
    struct sq_store *q = sq_of(s);
    sqlite3_stmt *st;
    orc_dep_status_t status;
    int rc = orc__sq_stmt(q, SQ_DEP_STATUS_COUNTS, &st);

    while (rc == 0 && (rc = orc__sq_step(q, st, "count deployments")) == 1) {
        rc = col_enum_status(q, st, 0, &status);
        if (rc == 0)
            counts[status] = sqlite3_column_int64(st, 1);
    }
    orc__sq_release(st);
    return rc;
}

/* ---- update ------------------------------------------------------------------------------ */

/* Reads version and status of a deployment: the compare half of the CAS. */
static int read_head(struct sq_store *q, const char *uuid, int64_t *version,
                     orc_dep_status_t *status)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_DEP_HEAD, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "read deployment");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "read deployment");
    if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    if (rc == 1) {
        *version = sqlite3_column_int64(b.st, 0);
        rc = col_enum_status(q, b.st, 1, status);
    }
    orc__sq_release(b.st);
    return rc;
}

static void bind_update(struct sq_bind *b, const orc_dep_update_t *u)
{
    const orc_deployment_t *v = u->values;
    unsigned f = u->set;

    orc__sq_b_int(b, 4, !!(f & ORC_DEP_F_STATUS));
    orc__sq_b_text(b, 5, (f & ORC_DEP_F_STATUS) ? orc_dep_status_name(v->status) : NULL);
    orc__sq_b_int(b, 6, !!(f & ORC_DEP_F_STATUS_REASON));
    orc__sq_b_text(b, 7, v->status_reason);
    orc__sq_b_int(b, 8, !!(f & ORC_DEP_F_TASK));
    orc__sq_b_text(b, 9, (f & ORC_DEP_F_TASK) ? orc_task_name(v->task) : NULL);
    orc__sq_b_int(b, 10, !!(f & ORC_DEP_F_OUTPUTS));
    orc__sq_b_json(b, 11, (f & ORC_DEP_F_OUTPUTS) ? v->outputs : NULL);
    orc__sq_b_int(b, 12, !!(f & ORC_DEP_F_PHYSICAL_ID));
    orc__sq_b_text(b, 13, v->physical_id);
    orc__sq_b_int(b, 14, !!(f & ORC_DEP_F_PROVIDER_NAME));
    orc__sq_b_text(b, 15, v->cloud_provider_name);
    orc__sq_b_int(b, 16, !!(f & ORC_DEP_F_PROVIDER_ENDPOINT));
    orc__sq_b_json(b, 17, (f & ORC_DEP_F_PROVIDER_ENDPOINT) ? v->cloud_provider_endpoint : NULL);
    orc__sq_b_int(b, 18, !!(f & ORC_DEP_F_CALLBACK));
    orc__sq_b_text(b, 19, v->callback);
    orc__sq_b_int(b, 20, !!(f & ORC_DEP_F_OPTIONS));
    orc__sq_b_opt_int(b, 21, v->timeout_mins);
    orc__sq_b_int(b, 22,
                  v->provider_timeout_mins ? v->provider_timeout_mins
                                           : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS);
    orc__sq_b_opt_int(b, 23, v->max_providers_retry);
    orc__sq_b_int(b, 24, v->keep_last_attempt);
    orc__sq_b_int(b, 25, !!(f & ORC_DEP_F_DELETED));
    orc__sq_b_int(b, 26, v->deleted);
}

/* The set half of the CAS: UPDATE ... WHERE version = current. */
static int update_row(struct sq_store *q, const orc_dep_update_t *u, int64_t version, int64_t now,
                      int64_t *new_version)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_DEP_UPDATE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, u->uuid);
    orc__sq_b_int(&b, 2, version);
    orc__sq_b_int(&b, 3, now);
    bind_update(&b, u);
    return orc__sq_cas_finish(&b, "update deployment", "deployment", u->uuid, new_version);
}

static int update_spec(struct sq_store *q, const orc_dep_update_t *u)
{
    static const char empty_object[] = "{}";
    const orc_deployment_t *v = u->values;
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_TPL_UPDATE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, u->uuid);
    orc__sq_b_int(&b, 2, !!(u->set & ORC_DEP_F_TEMPLATE));
    orc__sq_b_text(&b, 3, v->template_text);
    orc__sq_b_int(&b, 4, !!(u->set & ORC_DEP_F_PARAMETERS));
    if (v->parameters && (u->set & ORC_DEP_F_PARAMETERS))
        orc__sq_b_json(&b, 5, v->parameters);
    else
        orc__sq_b_text(&b, 5, empty_object);
    orc__sq_b_int(&b, 6, !!(u->set & ORC_DEP_F_PLAN));
    orc__sq_b_json(&b, 7, (u->set & ORC_DEP_F_PLAN) ? v->plan : NULL);
    rc = orc__sq_b_done(&b, "update template");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "update template");
    if (rc == 0 && sqlite3_changes(q->db) != 1)
        rc = orc__store_failf(&q->base, ORC_EFORMAT, "the deployment %s has no template", u->uuid);
    orc__sq_release(b.st);
    return rc;
}

static int update_event(struct sq_store *q, const orc_dep_update_t *u, orc_dep_status_t status,
                        int64_t version, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_update_event(u, status, version, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__sq_event_write(q, u->uuid, now, &ev);
}

static int update_body(struct sq_store *q, const orc_dep_update_t *u, int64_t *new_version)
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

int orc__sq_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version)
{
    struct sq_store *q = sq_of(s);
    int64_t version = 0, changes;
    int rc = orc__sq_begin_lite(q, &changes);

    if (rc == 0)
        rc = update_body(q, u, &version);
    rc = orc__sq_end_lite(q, rc, changes);
    if (rc == 0 && new_version)
        *new_version = version;
    return rc;
}

static int delete_body(struct sq_store *q, const char *uuid)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_DEP_DELETE, &b.st);

    if (rc < 0)
        return rc;
    /* ON DELETE CASCADE removes the template, resources, events and attempts
     * with it */
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "delete deployment");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "delete deployment");
    if (rc == 0 && sqlite3_changes(q->db) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_deployment_delete(orc_store_t *s, const char *uuid)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = delete_body(q, uuid);
    return orc__sq_end(q, rc);
}
