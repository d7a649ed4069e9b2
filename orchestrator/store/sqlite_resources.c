/*
 * Resource slots of the SQLite backend: insert (all-or-nothing, one event per
 * resource), get, paged list by deployment with a TOSCA type filter,
 * compare-and-set updates and delete (scale-in), whose events go to the
 * resource's deployment in the same transaction.
 */
#include <string.h>

#include "sqlite_internal.h"

/* Reads the RES_COLS of the current row (sqlite_sql.c). */
static int read_resource(struct sq_store *q, sqlite3_stmt *st, orc_resource_t *r)
{
    const char *state = NULL;
    int rc = orc__sq_col_uuid(q, st, 0, r->uuid);

    if (rc == 0)
        rc = orc__sq_col_uuid(q, st, 1, r->deployment_uuid);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 2, &r->node_name);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 3, &r->node_type);
    r->instance_index = sqlite3_column_int(st, 4);
    if (rc == 0) {
        state = (const char *)sqlite3_column_text(st, 5);
        if (orc_res_state_parse(state, &r->state) < 0)
            rc = orc__store_failf(&q->base, ORC_EFORMAT, "stored state '%.40s' is unknown",
                                  state ? state : "(null)");
    }
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 6, &r->site_name);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 7, &r->provider_name);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 8, &r->physical_id);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 9, &r->attributes);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 10, &r->metadata);
    if (rc == 0)
        rc = orc__sq_col_json(q, st, 11, &r->required_by);
    r->version = sqlite3_column_int64(st, 12);
    r->created_ms = sqlite3_column_int64(st, 13);
    r->updated_ms = sqlite3_column_int64(st, 14);
    if (rc == 0)
        rc = orc__sq_col_text(q, st, 15, &r->spec);
    return rc;
}

static int resource_event(struct sq_store *q, const char *deployment_uuid, const char *type,
                          const char *uuid, const char *node, int index, orc_res_state_t st,
                          const char *message, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_resource_event(type, uuid, node, index, st, message, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__sq_event_write(q, deployment_uuid, now, &ev);
}

/* ---- insert -------------------------------------------------------------------------- */

static int insert_one(struct sq_store *q, orc_resource_t *r, int64_t now)
{
    static const char empty_array[] = "[]";
    char uuid[ORC_UUID_LEN];
    struct sq_bind b = {.q = q};
    int rc = orc__store_new_uuid(&q->base, uuid);

    if (rc == 0)
        rc = orc__sq_stmt(q, SQ_RES_INSERT, &b.st);
    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_text(&b, 2, r->deployment_uuid);
    orc__sq_b_text(&b, 3, r->node_name);
    orc__sq_b_text(&b, 4, r->node_type);
    orc__sq_b_int(&b, 5, r->instance_index);
    orc__sq_b_text(&b, 6, orc_res_state_name(r->state));
    orc__sq_b_text(&b, 7, r->site_name);
    orc__sq_b_text(&b, 8, r->provider_name);
    orc__sq_b_text(&b, 9, r->physical_id);
    orc__sq_b_json(&b, 10, r->attributes);
    orc__sq_b_json(&b, 11, r->metadata);
    if (r->required_by)
        orc__sq_b_json(&b, 12, r->required_by);
    else
        orc__sq_b_text(&b, 12, empty_array);
    orc__sq_b_int(&b, 13, now);
    orc__sq_b_text(&b, 14, r->spec);
    rc = orc__sq_b_done(&b, "insert resource");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "insert resource");
    orc__sq_release(b.st);
    if (rc == ORC_ECONFLICT)
        orc__store_failf(&q->base, rc, "resource %s[%d] of deployment %s exists already",
                         r->node_name, r->instance_index, r->deployment_uuid);
    else if (rc == ORC_ENOTFOUND)
        orc__store_failf(&q->base, rc, "the deployment %s doesn't exist", r->deployment_uuid);
    if (rc == 0)
        rc = resource_event(q, r->deployment_uuid, "resource.created", uuid, r->node_name,
                            r->instance_index, r->state, NULL, now);
    if (rc == 0)
        memcpy(r->uuid, uuid, sizeof(uuid));
    return rc;
}

int orc__sq_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n)
{
    struct sq_store *q = sq_of(s);
    int64_t now = orc_now_ms();
    int64_t changes = 0;
    /* one row: its insert is the only statement that can fail on its own */
    int rc = n == 1 ? orc__sq_begin_lite(q, &changes) : orc__sq_begin(q);

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = insert_one(q, &rs[i], now);
    if (n == 1)
        rc = orc__sq_end_lite(q, rc, changes);
    else
        rc = orc__sq_end(q, rc);
    for (size_t i = 0; i < n; i++) {
        if (rc < 0) {
            rs[i].uuid[0] = '\0';
            continue;
        }
        rs[i].version = 1;
        rs[i].created_ms = rs[i].updated_ms = now;
    }
    return rc;
}

/* ---- get and list ------------------------------------------------------------------------ */

int orc__sq_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                         orc_resource_t **out)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    orc_resource_t *r = NULL;
    int rc = orc__sq_stmt(q, SQ_RES_GET, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_text(&b, 2, deployment_uuid);
    rc = orc__sq_b_done(&b, "get resource");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "get resource");
    if (rc == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
    if (rc == 1) {
        r = orc_calloc(1, sizeof(*r));
        rc = r ? read_resource(q, b.st, r)
               : orc__store_failf(s, ORC_ENOMEM, "get resource: out of memory");
    }
    orc__sq_release(b.st);
    if (rc < 0) {
        orc_resource_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static int count_resources(struct sq_store *q, const orc_res_query_t *f, int64_t *total)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_RES_COUNT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, f->deployment_uuid);
    orc__sq_b_text(&b, 2, f->node_type);
    rc = orc__sq_b_done(&b, "count resources");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "count resources");
    if (rc == 1) {
        *total = sqlite3_column_int64(b.st, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = orc__store_failf(&q->base, ORC_EIO, "count resources: no result");
    }
    orc__sq_release(b.st);
    return rc;
}

static int page_resources(struct sq_store *q, const orc_res_query_t *f, orc_resource_list_t *out)
{
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, f->oldest_first ? SQ_RES_LIST_OLDEST : SQ_RES_LIST_NEWEST, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, f->deployment_uuid);
    orc__sq_b_text(&b, 2, f->node_type);
    orc__sq_b_int(&b, 3, f->size ? (int64_t)f->size : -1);
    orc__sq_b_int(&b, 4, orc__store_page_offset(f->page, f->size));
    rc = orc__sq_b_done(&b, "list resources");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "list resources")) == 1) {
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc < 0)
            rc = orc__store_failf(&q->base, rc, "list resources: out of memory");
        else
            rc = read_resource(q, b.st, &out->items[out->count++]);
    }
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_resource_list(orc_store_t *s, const orc_res_query_t *f, orc_resource_list_t *out)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_read_begin(q);

    if (rc == 0)
        rc = orc__sq_deployment_exists(q, f->deployment_uuid);
    if (rc == 0)
        rc = count_resources(q, f, &out->total);
    if (rc == 0 && (f->size == 0 || orc__store_page_offset(f->page, f->size) < out->total))
        rc = page_resources(q, f, out);
    rc = orc__sq_read_end(q, rc);
    if (rc < 0)
        orc_resource_list_clear(out);
    return rc;
}

/* ---- update ---------------------------------------------------------------------------------- */

struct res_head {
    char deployment_uuid[ORC_UUID_LEN];
    char *node_name;
    int index;
    int64_t version;
    orc_res_state_t state;
};

static int read_head(struct sq_store *q, const char *uuid, struct res_head *h)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_RES_HEAD, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "read resource");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "read resource");
    if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
    if (rc == 1)
        rc = orc__sq_col_uuid(q, b.st, 0, h->deployment_uuid);
    if (rc == 0)
        rc = orc__sq_col_text(q, b.st, 1, &h->node_name);
    if (rc == 0) {
        const char *state = (const char *)sqlite3_column_text(b.st, 4);
        h->index = sqlite3_column_int(b.st, 2);
        h->version = sqlite3_column_int64(b.st, 3);
        if (orc_res_state_parse(state, &h->state) < 0)
            rc = orc__store_failf(&q->base, ORC_EFORMAT, "stored state is unknown");
    }
    orc__sq_release(b.st);
    return rc;
}

static void bind_update(struct sq_bind *b, const orc_res_update_t *u)
{
    static const char empty_array[] = "[]";
    const orc_resource_t *v = u->values;
    unsigned f = u->set;

    orc__sq_b_int(b, 4, !!(f & ORC_RES_F_STATE));
    orc__sq_b_text(b, 5, (f & ORC_RES_F_STATE) ? orc_res_state_name(v->state) : NULL);
    orc__sq_b_int(b, 6, !!(f & ORC_RES_F_SITE));
    orc__sq_b_text(b, 7, v->site_name);
    orc__sq_b_int(b, 8, !!(f & ORC_RES_F_PROVIDER));
    orc__sq_b_text(b, 9, v->provider_name);
    orc__sq_b_int(b, 10, !!(f & ORC_RES_F_PHYSICAL_ID));
    orc__sq_b_text(b, 11, v->physical_id);
    orc__sq_b_int(b, 12, !!(f & ORC_RES_F_ATTRIBUTES));
    orc__sq_b_json(b, 13, (f & ORC_RES_F_ATTRIBUTES) ? v->attributes : NULL);
    orc__sq_b_int(b, 14, !!(f & ORC_RES_F_METADATA));
    orc__sq_b_json(b, 15, (f & ORC_RES_F_METADATA) ? v->metadata : NULL);
    orc__sq_b_int(b, 16, !!(f & ORC_RES_F_REQUIRED_BY));
    if ((f & ORC_RES_F_REQUIRED_BY) && v->required_by)
        orc__sq_b_json(b, 17, v->required_by);
    else
        orc__sq_b_text(b, 17, empty_array);
    orc__sq_b_int(b, 18, !!(f & ORC_RES_F_SPEC));
    orc__sq_b_text(b, 19, (f & ORC_RES_F_SPEC) ? v->spec : NULL);
}

/* Reads the head of the row an UPDATE ... RETURNING answered (columns
 * version, deployment_uuid, node_name, instance_index, state). */
static int returned_head(struct sq_store *q, sqlite3_stmt *st, struct res_head *h)
{
    const char *state = (const char *)sqlite3_column_text(st, 4);
    int rc = orc__sq_col_uuid(q, st, 1, h->deployment_uuid);

    if (rc == 0)
        rc = orc__sq_col_text(q, st, 2, &h->node_name);
    h->version = sqlite3_column_int64(st, 0);
    h->index = sqlite3_column_int(st, 3);
    if (rc == 0 && orc_res_state_parse(state, &h->state) < 0)
        rc = orc__store_failf(&q->base, ORC_EFORMAT, "stored state is unknown");
    return rc;
}

/* One statement updates the row and answers what the event needs; only
 * when it matched nothing is the row read, to say why. */
static int update_row(struct sq_store *q, const orc_res_update_t *u, int64_t now,
                      struct res_head *h)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_RES_UPDATE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, u->uuid);
    orc__sq_b_int(&b, 2, u->expect_version);
    orc__sq_b_int(&b, 3, now);
    bind_update(&b, u);
    rc = orc__sq_b_done(&b, "update resource");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "update resource");
    if (rc == 1) {
        rc = returned_head(q, b.st, h);
        if (rc == 0)
            rc = orc__sq_step(q, b.st, "update resource"); /* RETURNING to completion */
    } else if (rc == 0) {
        rc = ORC_ENOTFOUND; /* nothing matched: below says which */
    }
    orc__sq_release(b.st);
    return rc;
}

static int update_body(struct sq_store *q, const orc_res_update_t *u, int64_t *new_version)
{
    struct res_head h = {0};
    int64_t now = orc_now_ms();
    int rc = update_row(q, u, now, &h);

    if (rc == ORC_ENOTFOUND) {
        rc = read_head(q, u->uuid, &h); /* ORC_ENOTFOUND when it does not exist */
        if (rc == 0)
            rc = orc__store_failf(&q->base, ORC_ECONFLICT,
                                  "the resource %s changed (version %lld, expected %lld)", u->uuid,
                                  (long long)h.version, (long long)u->expect_version);
    }
    if (rc == 0)
        *new_version = h.version;
    if (rc == 0 && !u->no_event)
        rc = resource_event(q, h.deployment_uuid,
                            (u->set & ORC_RES_F_STATE) ? "resource.state" : "resource.updated",
                            u->uuid, h.node_name, h.index, h.state, u->event_message, now);
    orc_free(h.node_name);
    return rc;
}

int orc__sq_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version)
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

/* ---- delete (scale-in) ------------------------------------------------------------------------
 */

static int delete_row(struct sq_store *q, const char *uuid)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_RES_DELETE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "delete resource");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "delete resource");
    if (rc == 0 && sqlite3_changes(q->db) != 1)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
    orc__sq_release(b.st);
    return rc;
}

static int delete_body(struct sq_store *q, const char *uuid, const char *message)
{
    struct res_head h = {0};
    char *line = NULL;
    int rc = read_head(q, uuid, &h);

    if (rc == 0)
        rc = delete_row(q, uuid);
    if (rc == 0 && message == NULL) {
        line = orc_asprintf("node %s[%d] removed", h.node_name, h.index);
        rc = line ? 0 : orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    }
    if (rc == 0)
        rc = resource_event(q, h.deployment_uuid, "resource.deleted", uuid, h.node_name, h.index,
                            h.state, message ? message : line, orc_now_ms());
    orc_free(line);
    orc_free(h.node_name);
    return rc;
}

int orc__sq_resource_delete(orc_store_t *s, const char *uuid, const char *event_message)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = delete_body(q, uuid, event_message);
    return orc__sq_end(q, rc);
}

int orc__sq_site_resource_count(orc_store_t *s, const char *site, int64_t *count)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_RES_SITE_COUNT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, site);
    rc = orc__sq_b_done(&b, "count a site's resources");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "count a site's resources");
    if (rc == 1) {
        *count = sqlite3_column_int64(b.st, 0);
        rc = 0;
    }
    orc__sq_release(b.st);
    return rc;
}
