/*
 * Resource slots of the PostgreSQL backend, with the SQLite backend's
 * semantics (sqlite_resources.c): insert (all-or-nothing, one event per
 * resource), get, paged list by deployment with a TOSCA type filter,
 * compare-and-set updates and delete (scale-in), whose events go to the
 * resource's deployment in the same transaction.
 */
#include <string.h>

#include "pg_internal.h"

/* column order read by read_resource() */
#define RES_COLS                                                                                   \
    "r.uuid, r.deployment_uuid, r.node_name, r.node_type, r.instance_index, "                      \
    "r.state, r.site_name, r.provider_name, r.physical_id, r.attributes, "                         \
    "r.metadata, r.required_by, r.version, r.created_ms, r.updated_ms, r.spec"

#define RES_LIST(order)                                                                            \
    "SELECT " RES_COLS " FROM resources r WHERE r.deployment_uuid = $1::text"                      \
    " AND ($2::text IS NULL OR r.node_type = $2::text) ORDER BY " order                            \
    " LIMIT $3::bigint OFFSET $4::bigint"

/* One statement inserts the row and its "resource.created" event (as resource_event
 * writes it), or nothing when the deployment is missing or the node instance exists
 * (check_new_resource then says which): a refusal fails no statement. */
static const char insert_sql[] =
    "WITH r AS (INSERT INTO resources (uuid, deployment_uuid, node_name, node_type,"
    " instance_index, state, site_name, provider_name, physical_id, attributes, metadata,"
    " required_by, version, created_ms, updated_ms, spec)"
    " SELECT $1::text, $2::text, $3::text, $4::text, $5::integer, $6::text, $7::text, $8::text,"
    " $9::text, $10::text, $11::text, $12::text, 1, $13::bigint, $13::bigint, $14::text"
    " WHERE EXISTS (SELECT 1 FROM deployments WHERE uuid = $2::text)"
    " ON CONFLICT (deployment_uuid, node_name, instance_index) DO NOTHING"
    " RETURNING deployment_uuid),"
    " e AS (INSERT INTO events (deployment_uuid, time_ms, type, message, data)"
    " SELECT deployment_uuid, $13::bigint, 'resource.created',"
    " $3::text || '[' || $5::integer || ']: ' || $6::text,"
    " json_build_object('resource', $1::text, 'node', $3::text, 'index', $5::integer,"
    " 'state', $6::text)::text FROM r RETURNING deployment_uuid)"
    " SELECT (SELECT pg_notify('" PG_CHANNEL "', e.deployment_uuid) FROM e) FROM r";
static const char get_sql[] = "SELECT " RES_COLS " FROM resources r WHERE r.uuid = $1::text"
                              " AND ($2::text IS NULL OR r.deployment_uuid = $2::text)";
static const char head_sql[] = "SELECT deployment_uuid, node_name, instance_index, version, state"
                               " FROM resources WHERE uuid = $1::text";
/* $1 uuid, $2 current version (0: any), $3 now; then (flag, value) pairs; $20 the event's
 * type (NULL: none), $21 its message (NULL: "node[index]: STATE"). One statement updates the
 * row, appends its event (as resource_event writes it) and answers what the caller needs. */
static const char update_sql[] =
    "WITH u AS (UPDATE resources SET"
    " state = CASE WHEN $4::boolean THEN $5::text ELSE state END,"
    " site_name = CASE WHEN $6::boolean THEN $7::text ELSE site_name END,"
    " provider_name = CASE WHEN $8::boolean THEN $9::text ELSE provider_name END,"
    " physical_id = CASE WHEN $10::boolean THEN $11::text ELSE physical_id END,"
    " attributes = CASE WHEN $12::boolean THEN $13::text ELSE attributes END,"
    " metadata = CASE WHEN $14::boolean THEN $15::text ELSE metadata END,"
    " required_by = CASE WHEN $16::boolean THEN $17::text ELSE required_by END,"
    " spec = CASE WHEN $18::boolean THEN $19::text ELSE spec END,"
    " version = version + 1, updated_ms = $3::bigint"
    " WHERE uuid = $1::text AND ($2::bigint = 0 OR version = $2::bigint)"
    " RETURNING deployment_uuid, node_name, instance_index, version, state),"
    " e AS (INSERT INTO events (deployment_uuid, time_ms, type, message, data)"
    " SELECT deployment_uuid, $3::bigint, $20::text,"
    " coalesce($21::text, node_name || '[' || instance_index || ']: ' || state),"
    " json_build_object('resource', $1::text, 'node', node_name, 'index', instance_index,"
    " 'state', state)::text FROM u WHERE $20::text IS NOT NULL RETURNING deployment_uuid)"
    " SELECT u.deployment_uuid, u.node_name, u.instance_index, u.version, u.state,"
    " (SELECT pg_notify('" PG_CHANNEL "', e.deployment_uuid) FROM e) FROM u";
static const char delete_sql[] = "DELETE FROM resources WHERE uuid = $1::text";
/* the count, and whether the deployment exists (no row when it does not) */
static const char count_sql[] =
    "SELECT (SELECT count(*) FROM resources r WHERE r.deployment_uuid = d.uuid"
    " AND ($2::text IS NULL OR r.node_type = $2::text)) FROM deployments d WHERE d.uuid = $1::text";
/* whether the deployment exists, and whether the node instance does */
static const char new_resource_sql[] =
    "SELECT EXISTS (SELECT 1 FROM deployments WHERE uuid = $1::text),"
    " EXISTS (SELECT 1 FROM resources WHERE deployment_uuid = $1::text AND node_name = $2::text"
    " AND instance_index = $3::integer)";
static const char list_newest_sql[] = RES_LIST("r.uuid DESC");
static const char list_oldest_sql[] = RES_LIST("r.uuid ASC");

static int col_state(struct pg_store *q, const PGresult *r, int row, int col,
                     orc_res_state_t *out)
{
    const char *t = PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);

    if (orc_res_state_parse(t, out) < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored state '%.40s' is unknown",
                                t ? t : "(null)");
    return 0;
}

static int read_resource(struct pg_store *q, const PGresult *r, int i, orc_resource_t *res)
{
    int rc = orc__pg_col_uuid(q, r, i, 0, res->uuid);

    if (rc == 0)
        rc = orc__pg_col_uuid(q, r, i, 1, res->deployment_uuid);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 2, &res->node_name);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 3, &res->node_type);
    res->instance_index = (int)orc__pg_col_int(r, i, 4);
    if (rc == 0)
        rc = col_state(q, r, i, 5, &res->state);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 6, &res->site_name);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 7, &res->provider_name);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 8, &res->physical_id);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 9, &res->attributes);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 10, &res->metadata);
    if (rc == 0)
        rc = orc__pg_col_json(q, r, i, 11, &res->required_by);
    res->version = orc__pg_col_int(r, i, 12);
    res->created_ms = orc__pg_col_int(r, i, 13);
    res->updated_ms = orc__pg_col_int(r, i, 14);
    if (rc == 0)
        rc = orc__pg_col_text(q, r, i, 15, &res->spec);
    return rc;
}

static int resource_event(struct pg_store *q, const char *deployment_uuid, const char *type,
                          const char *uuid, const char *node, int index, orc_res_state_t st,
                          const char *message, int64_t now)
{
    struct orc__store_event ev;

    if (orc__store_resource_event(type, uuid, node, index, st, message, &ev) < 0)
        return orc__store_failf(&q->base, ORC_ENOMEM, "event: out of memory");
    return orc__pg_event_write(q, deployment_uuid, now, &ev);
}

/* ---- insert -------------------------------------------------------------------------- */

/* The refusals a single insert can meet are checked before it, so that they
 * fail no statement (and so leave an open group intact). */
static int check_new_resource(struct pg_store *q, const orc_resource_t *res)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, res->deployment_uuid);
    orc__pg_p_text(&p, 2, res->node_name);
    orc__pg_p_int(&p, 3, res->instance_index);
    rc = orc__pg_exec(q, new_resource_sql, &p, "insert resource", &r);
    if (rc == 0 && !orc__pg_col_bool(r, 0, 0))
        rc = orc__pg_no_deployment(q, res->deployment_uuid);
    else if (rc == 0 && orc__pg_col_bool(r, 0, 1))
        rc = orc__store_failf(&q->base, ORC_ECONFLICT,
                              "resource %s[%d] of deployment %s exists already", res->node_name,
                              res->instance_index, res->deployment_uuid);
    PQclear(r);
    return rc;
}

static int insert_one(struct pg_store *q, orc_resource_t *res, int64_t now)
{
    char uuid[ORC_UUID_LEN];
    struct pg_params p = {0};
    PGresult *r;
    int rc = orc__store_new_uuid(&q->base, uuid);

    if (rc < 0)
        return rc;
    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, res->deployment_uuid);
    orc__pg_p_text(&p, 3, res->node_name);
    orc__pg_p_text(&p, 4, res->node_type);
    orc__pg_p_int(&p, 5, res->instance_index);
    orc__pg_p_text(&p, 6, orc_res_state_name(res->state));
    orc__pg_p_text(&p, 7, res->site_name);
    orc__pg_p_text(&p, 8, res->provider_name);
    orc__pg_p_text(&p, 9, res->physical_id);
    orc__pg_p_json(&p, 10, res->attributes);
    orc__pg_p_json(&p, 11, res->metadata);
    if (res->required_by)
        orc__pg_p_json(&p, 12, res->required_by);
    else
        orc__pg_p_text(&p, 12, "[]");
    orc__pg_p_int(&p, 13, now);
    orc__pg_p_text(&p, 14, res->spec);
    rc = orc__pg_exec(q, insert_sql, &p, "insert resource", &r);
    if (rc == 0 && PQntuples(r) == 0) { /* refused: say why */
        rc = check_new_resource(q, res);
        if (rc == 0)
            rc = orc__store_failf(&q->base, ORC_ECONFLICT, "resource %s[%d] was not inserted",
                                  res->node_name, res->instance_index);
    } else if (rc == ORC_ECONFLICT) {
        orc__store_failf(&q->base, rc, "resource %s[%d] of deployment %s exists already",
                         res->node_name, res->instance_index, res->deployment_uuid);
    } else if (rc == ORC_ENOTFOUND) {
        orc__pg_no_deployment(q, res->deployment_uuid);
    }
    PQclear(r);
    if (rc == 0)
        memcpy(res->uuid, uuid, sizeof(uuid));
    return rc;
}

int orc__pg_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n)
{
    struct pg_store *q = pg_of(s);
    int64_t now = orc_now_ms();
    /* one row: its refusals are checked before anything is written */
    int rc = n == 1 ? orc__pg_begin_lite(q) : orc__pg_begin(q);

    for (size_t i = 0; i < n && rc == 0; i++)
        rc = insert_one(q, &rs[i], now);
    rc = n == 1 ? orc__pg_end_lite(q, rc) : orc__pg_end(q, rc);
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

int orc__pg_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                         orc_resource_t **out)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    orc_resource_t *res = NULL;
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, deployment_uuid);
    rc = orc__pg_exec(q, get_sql, &p, "get resource", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
    if (rc == 0) {
        res = orc_calloc(1, sizeof(*res));
        rc = res ? read_resource(q, r, 0, res)
                 : orc__store_failf(s, ORC_ENOMEM, "get resource: out of memory");
    }
    PQclear(r);
    if (rc < 0) {
        orc_resource_free(res);
        return rc;
    }
    *out = res;
    return 0;
}

static int count_resources(struct pg_store *q, const orc_res_query_t *f, int64_t *total)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, f->deployment_uuid);
    orc__pg_p_text(&p, 2, f->node_type);
    rc = orc__pg_exec(q, count_sql, &p, "count resources", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__pg_no_deployment(q, f->deployment_uuid);
    if (rc == 0)
        *total = orc__pg_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}

static int page_resources(struct pg_store *q, const orc_res_query_t *f, orc_resource_list_t *out)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, f->deployment_uuid);
    orc__pg_p_text(&p, 2, f->node_type);
    orc__pg_p_opt_int(&p, 3, f->size);
    orc__pg_p_int(&p, 4, orc__store_page_offset(f->page, f->size));
    rc = orc__pg_exec(q, f->oldest_first ? list_oldest_sql : list_newest_sql, &p,
                      "list resources", &r);
    if (rc == 0 && PQntuples(r) > 0) {
        out->items = orc_calloc((size_t)PQntuples(r), sizeof(*out->items));
        if (out->items == NULL)
            rc = orc__store_failf(&q->base, ORC_ENOMEM, "list resources: out of memory");
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = read_resource(q, r, i, &out->items[out->count++]);
    PQclear(r);
    return rc;
}

int orc__pg_resource_list(orc_store_t *s, const orc_res_query_t *f, orc_resource_list_t *out)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_read_begin(q);

    if (rc == 0)
        rc = count_resources(q, f, &out->total); /* ORC_ENOTFOUND without the deployment */
    if (rc == 0 && (f->size == 0 || orc__store_page_offset(f->page, f->size) < out->total))
        rc = page_resources(q, f, out);
    rc = orc__pg_read_end(q, rc);
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

/* Reads deployment_uuid, node_name, instance_index, version, state (row 0). */
static int head_of(struct pg_store *q, const PGresult *r, struct res_head *h)
{
    int rc = orc__pg_col_uuid(q, r, 0, 0, h->deployment_uuid);

    if (rc == 0)
        rc = orc__pg_col_text(q, r, 0, 1, &h->node_name);
    h->index = (int)orc__pg_col_int(r, 0, 2);
    h->version = orc__pg_col_int(r, 0, 3);
    if (rc == 0)
        rc = col_state(q, r, 0, 4, &h->state);
    return rc;
}

static int read_head(struct pg_store *q, const char *uuid, struct res_head *h)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    rc = orc__pg_exec(q, head_sql, &p, "read resource", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
    if (rc == 0)
        rc = head_of(q, r, h);
    PQclear(r);
    return rc;
}

static void update_params(struct pg_params *p, const orc_res_update_t *u)
{
    const orc_resource_t *v = u->values;
    unsigned f = u->set;

    orc__pg_p_bool(p, 4, f & ORC_RES_F_STATE);
    orc__pg_p_text(p, 5, (f & ORC_RES_F_STATE) ? orc_res_state_name(v->state) : NULL);
    orc__pg_p_bool(p, 6, f & ORC_RES_F_SITE);
    orc__pg_p_text(p, 7, v->site_name);
    orc__pg_p_bool(p, 8, f & ORC_RES_F_PROVIDER);
    orc__pg_p_text(p, 9, v->provider_name);
    orc__pg_p_bool(p, 10, f & ORC_RES_F_PHYSICAL_ID);
    orc__pg_p_text(p, 11, v->physical_id);
    orc__pg_p_bool(p, 12, f & ORC_RES_F_ATTRIBUTES);
    orc__pg_p_json(p, 13, (f & ORC_RES_F_ATTRIBUTES) ? v->attributes : NULL);
    orc__pg_p_bool(p, 14, f & ORC_RES_F_METADATA);
    orc__pg_p_json(p, 15, (f & ORC_RES_F_METADATA) ? v->metadata : NULL);
    orc__pg_p_bool(p, 16, f & ORC_RES_F_REQUIRED_BY);
    if ((f & ORC_RES_F_REQUIRED_BY) && v->required_by)
        orc__pg_p_json(p, 17, v->required_by);
    else
        orc__pg_p_text(p, 17, "[]");
    orc__pg_p_bool(p, 18, f & ORC_RES_F_SPEC);
    orc__pg_p_text(p, 19, (f & ORC_RES_F_SPEC) ? v->spec : NULL);
}

/* One statement updates the row and answers what the event needs; only when
 * it matched nothing is the row read, to say why. */
static int update_row(struct pg_store *q, const orc_res_update_t *u, int64_t now,
                      struct res_head *h)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, u->uuid);
    orc__pg_p_int(&p, 2, u->expect_version);
    orc__pg_p_int(&p, 3, now);
    update_params(&p, u);
    orc__pg_p_text(&p, 20,
                   u->no_event                  ? NULL
                   : (u->set & ORC_RES_F_STATE) ? "resource.state"
                                                : "resource.updated");
    orc__pg_p_text(&p, 21, u->event_message);
    rc = orc__pg_exec(q, update_sql, &p, "update resource", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = ORC_ENOTFOUND; /* nothing matched: the caller says which */
    else if (rc == 0)
        rc = head_of(q, r, h);
    PQclear(r);
    return rc;
}

static int update_body(struct pg_store *q, const orc_res_update_t *u, int64_t *new_version)
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
        *new_version = h.version; /* the event went with the update */
    orc_free(h.node_name);
    return rc;
}

int orc__pg_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version)
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

/* ---- delete (scale-in) ------------------------------------------------------------------------ */

static int delete_body(struct pg_store *q, const char *uuid, const char *message)
{
    struct pg_params p = {0};
    struct res_head h = {0};
    char *line = NULL;
    int64_t n = 0;
    int rc = read_head(q, uuid, &h);

    orc__pg_p_text(&p, 1, uuid);
    if (rc == 0)
        rc = orc__pg_run(q, delete_sql, &p, "delete resource", &n);
    if (rc == 0 && n != 1)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the resource %s doesn't exist", uuid);
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

int orc__pg_resource_delete(orc_store_t *s, const char *uuid, const char *event_message)
{
    struct pg_store *q = pg_of(s);
    int rc = orc__pg_begin(q);

    if (rc == 0)
        rc = delete_body(q, uuid, event_message);
    return orc__pg_end(q, rc);
}

static const char site_count_sql[] = "SELECT count(*) FROM resources r JOIN deployments d"
                                     " ON d.uuid = r.deployment_uuid"
                                     " WHERE r.site_name = $1::text AND NOT d.deleted";

int orc__pg_site_resource_count(orc_store_t *s, const char *site, int64_t *count)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, site);
    rc = orc__pg_exec(q, site_count_sql, &p, "count a site's resources", &r);
    if (rc == 0 && PQntuples(r) == 1)
        *count = orc__pg_col_int(r, 0, 0);
    PQclear(r);
    return rc;
}
