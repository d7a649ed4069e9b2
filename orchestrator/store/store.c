/*
 * The backend-independent half of the store (store.h): enum names, record
 * release, argument validation, and the small functions that callers use and
 * that dispatch to the backend's vtable (store_backend.h). Everything that a
 * backend could get wrong in the same way twice (a NULL, a malformed uuid, an
 * enum out of range, a JSON value of the wrong type) is refused here, once,
 * with ORC_EINVAL and a message, before any backend sees it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "store_backend.h"

/* ---- enum names ---------------------------------------------------------- */

#define ORC__NAME(name) #name,
static const char *const dep_status_names[] = {ORC_DEP_STATUS_MAP(ORC__NAME)};
static const char *const task_names[] = {ORC_TASK_MAP(ORC__NAME)};
static const char *const res_state_names[] = {ORC_RES_STATE_MAP(ORC__NAME)};
#undef ORC__NAME

_Static_assert(sizeof(dep_status_names) / sizeof(dep_status_names[0]) == ORC_DEP__COUNT,
               "status names");
_Static_assert(ORC_DEP__COUNT <= 32, "statuses fit a 32-bit mask");

static const char *name_of(const char *const *names, int count, int v)
{
    return v >= 0 && v < count ? names[v] : NULL;
}

static int parse_name(const char *const *names, int count, const char *s, int *out)
{
    if (s == NULL)
        return ORC_EINVAL;
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return ORC_EINVAL;
}

const char *orc_dep_status_name(orc_dep_status_t st)
{
    return name_of(dep_status_names, ORC_DEP__COUNT, (int)st);
}

const char *orc_task_name(orc_task_t task)
{
    return name_of(task_names, ORC_TASK__COUNT, (int)task);
}

const char *orc_res_state_name(orc_res_state_t st)
{
    return name_of(res_state_names, ORC_RES__COUNT, (int)st);
}

int orc_dep_status_parse(const char *s, orc_dep_status_t *out)
{
    int v = 0;
    int rc = parse_name(dep_status_names, ORC_DEP__COUNT, s, &v);

    if (rc == 0)
        *out = (orc_dep_status_t)v;
    return rc;
}

int orc_task_parse(const char *s, orc_task_t *out)
{
    int v = 0;
    int rc = parse_name(task_names, ORC_TASK__COUNT, s, &v);

    if (rc == 0)
        *out = (orc_task_t)v;
    return rc;
}

int orc_res_state_parse(const char *s, orc_res_state_t *out)
{
    int v = 0;
    int rc = parse_name(res_state_names, ORC_RES__COUNT, s, &v);

    if (rc == 0)
        *out = (orc_res_state_t)v;
    return rc;
}

int orc_dep_status_mask_parse(const char *list, uint32_t *mask)
{
    char item[32];
    uint32_t m = 0;

    if (list == NULL || mask == NULL)
        return ORC_EINVAL;
    while (*list) {
        size_t n = strcspn(list, ",");
        orc_dep_status_t st;

        if (n == 0 || n >= sizeof(item))
            return ORC_EINVAL;
        memcpy(item, list, n);
        item[n] = '\0';
        if (orc_dep_status_parse(item, &st) < 0)
            return ORC_EINVAL;
        m |= ORC_DEP_MASK(st);
        list += n;
        if (*list == ',' && *++list == '\0')
            return ORC_EINVAL; /* trailing comma */
    }
    *mask = m;
    return 0;
}

static const struct {
    const char *property;
    orc_dep_sort_t asc, desc;
} sort_keys[] = {
    {"createdAt", ORC_DEP_SORT_OLDEST, ORC_DEP_SORT_NEWEST},
    {"creationTime", ORC_DEP_SORT_OLDEST, ORC_DEP_SORT_NEWEST},
    {"updatedAt", ORC_DEP_SORT_UPDATED_ASC, ORC_DEP_SORT_UPDATED_DESC},
    {"updateTime", ORC_DEP_SORT_UPDATED_ASC, ORC_DEP_SORT_UPDATED_DESC},
    {"status", ORC_DEP_SORT_STATUS_ASC, ORC_DEP_SORT_STATUS_DESC},
};

int orc_dep_sort_parse(const char *spec, orc_dep_sort_t *out)
{
    const char *comma;
    size_t plen;
    bool desc = false;

    if (out == NULL)
        return ORC_EINVAL;
    if (spec == NULL || *spec == '\0') {
        *out = ORC_DEP_SORT_NEWEST;
        return 0;
    }
    comma = strchr(spec, ',');
    plen = comma ? (size_t)(comma - spec) : strlen(spec);
    if (comma) {
        if (strcasecmp(comma + 1, "desc") == 0)
            desc = true;
        else if (strcasecmp(comma + 1, "asc") != 0)
            return ORC_EINVAL;
    }
    for (size_t i = 0; i < sizeof(sort_keys) / sizeof(sort_keys[0]); i++) {
        if (strlen(sort_keys[i].property) == plen &&
            strncmp(sort_keys[i].property, spec, plen) == 0) {
            *out = desc ? sort_keys[i].desc : sort_keys[i].asc;
            return 0;
        }
    }
    return ORC_EINVAL;
}

/* ---- records --------------------------------------------------------------- */

void orc_deployment_clear(orc_deployment_t *d)
{
    if (d == NULL)
        return;
    orc_free(d->status_reason);
    orc_free(d->created_by.issuer);
    orc_free(d->created_by.subject);
    orc_free(d->user_group);
    orc_free(d->callback);
    orc_free(d->template_text);
    json_decref(d->parameters);
    json_decref(d->plan);
    json_decref(d->outputs);
    orc_free(d->physical_id);
    orc_free(d->cloud_provider_name);
    json_decref(d->cloud_provider_endpoint);
    memset(d, 0, sizeof(*d));
}

void orc_deployment_free(orc_deployment_t *d)
{
    orc_deployment_clear(d);
    orc_free(d);
}

void orc_resource_clear(orc_resource_t *r)
{
    if (r == NULL)
        return;
    orc_free(r->node_name);
    orc_free(r->node_type);
    orc_free(r->site_name);
    orc_free(r->provider_name);
    orc_free(r->physical_id);
    json_decref(r->attributes);
    json_decref(r->metadata);
    json_decref(r->required_by);
    orc_free(r->spec);
    memset(r, 0, sizeof(*r));
}

void orc_resource_free(orc_resource_t *r)
{
    orc_resource_clear(r);
    orc_free(r);
}

void orc_event_clear(orc_event_t *e)
{
    if (e == NULL)
        return;
    orc_free(e->type);
    orc_free(e->message);
    json_decref(e->data);
    memset(e, 0, sizeof(*e));
}

void orc_event_free(orc_event_t *e)
{
    orc_event_clear(e);
    orc_free(e);
}

void orc_attempt_clear(orc_attempt_t *a)
{
    if (a == NULL)
        return;
    orc_free(a->site_name);
    orc_free(a->error);
    memset(a, 0, sizeof(*a));
}

void orc_attempt_free(orc_attempt_t *a)
{
    orc_attempt_clear(a);
    orc_free(a);
}

void orc_deployment_list_clear(orc_deployment_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        orc_deployment_clear(&l->items[i]);
    orc_free(l->items);
    memset(l, 0, sizeof(*l));
}

void orc_resource_list_clear(orc_resource_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        orc_resource_clear(&l->items[i]);
    orc_free(l->items);
    memset(l, 0, sizeof(*l));
}

void orc_event_list_clear(orc_event_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        orc_event_clear(&l->items[i]);
    orc_free(l->items);
    memset(l, 0, sizeof(*l));
}

void orc_attempt_list_clear(orc_attempt_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        orc_attempt_clear(&l->items[i]);
    orc_free(l->items);
    memset(l, 0, sizeof(*l));
}

char *orc_attempt_list_reason(const orc_attempt_list_t *l)
{
    size_t len = 1;
    char *out, *p;

    for (size_t i = 0; l && i < l->count; i++) {
        const orc_attempt_t *a = &l->items[i];
        if (a->result == ORC_ATTEMPT_FAILED)
            len += strlen(a->site_name ? a->site_name : "") +
                   strlen(a->error ? a->error : "unknown error") + 4;
    }
    out = orc_malloc(len);
    if (out == NULL)
        return NULL;
    p = out;
    *p = '\0';
    for (size_t i = 0; l && i < l->count; i++) {
        const orc_attempt_t *a = &l->items[i];
        if (a->result != ORC_ATTEMPT_FAILED)
            continue;
        p += sprintf(p, "%s%s: %s", p == out ? "" : "; ", a->site_name ? a->site_name : "",
                     a->error ? a->error : "unknown error");
    }
    return out;
}

/* ---- helpers for backends ---------------------------------------------------- */

int orc__store_failf(orc_store_t *s, int rc, const char *fmt, ...)
{
    va_list ap;

    if (s == NULL)
        return rc;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
    return rc;
}

/* Adds one to the random tail of a UUIDv7 text (characters 21..35; the
 * version and variant characters are left alone). */
static void uuid_increment(char u[ORC_UUID_LEN])
{
    for (int i = 35; i >= 21; i--) {
        if (u[i] == '-')
            continue;
        if (u[i] == 'f') {
            u[i] = '0';
            continue;
        }
        u[i] = u[i] == '9' ? 'a' : (char)(u[i] + 1);
        return;
    }
}

int orc__store_new_uuid(orc_store_t *s, char out[ORC_UUID_LEN])
{
    int rc = orc_uuid7(out);

    if (rc < 0)
        return orc__store_failf(s, ORC_EIO, "cannot make a uuid: %s", orc_strerror(rc));
    if (s->last_uuid[0] && strcmp(out, s->last_uuid) <= 0) {
        memcpy(out, s->last_uuid, ORC_UUID_LEN);
        uuid_increment(out);
    }
    memcpy(s->last_uuid, out, ORC_UUID_LEN);
    return 0;
}

int orc__store_group_break(orc_store_t *s, int rc)
{
    if (s->group.open && s->group.failed == 0) {
        s->group.failed = rc;
        memcpy(s->group.why, s->errmsg, sizeof(s->group.why));
    }
    return rc;
}

/* ---- validation ------------------------------------------------------------ */

/* Reads the answer to a commit sent without waiting, if it has not come yet
 * (block: waits for it); 1 while it has not arrived. The answer stays in
 * s->commit until orc_store_commit_result takes it. */
static int commit_settle(orc_store_t *s, bool block)
{
    int rc;

    if (!s->commit.pending || s->commit.answered)
        return 0;
    rc = s->ops->commit_answer(s, block);
    if (rc == 1)
        return 1;
    s->commit.answered = true;
    s->commit.rc = rc;
    if (rc < 0)
        memcpy(s->commit.why, s->errmsg, sizeof(s->commit.why));
    return 0;
}

static int begin_call(orc_store_t *s)
{
    if (s == NULL)
        return ORC_EINVAL;
    commit_settle(s, true); /* the connection is free for this call's statements */
    s->errmsg[0] = '\0';
    return 0;
}

/* The start of every write call: the hook (which may open or commit a
 * group), then the call joins the open group. A write refused because the
 * commit before it failed (its owner has not learnt of it yet) joins nothing. */
static int begin_write(orc_store_t *s)
{
    if (s == NULL)
        return ORC_EINVAL;
    commit_settle(s, true);
    if (s->commit.answered && s->commit.rc < 0)
        return orc__store_failf(s, s->commit.rc,
                                "not written: the group of writes before it was rolled back "
                                "(%s)",
                                s->commit.why);
    if (s->write_hook != NULL)
        s->write_hook(s, s->write_hook_ud);
    s->group.writes += s->group.open;
    s->errmsg[0] = '\0';
    return 0;
}

static int check_uuid(orc_store_t *s, const char *uuid, const char *what)
{
    if (uuid == NULL)
        return orc__store_failf(s, ORC_EINVAL, "%s uuid is missing", what);
    if (!orc_uuid_valid(uuid))
        return orc__store_failf(s, ORC_EINVAL, "%s uuid '%.40s' is malformed", what, uuid);
    return 0;
}

static int check_text(orc_store_t *s, const char *v, const char *what)
{
    if (v == NULL || *v == '\0')
        return orc__store_failf(s, ORC_EINVAL, "%s is required", what);
    return 0;
}

static int check_json(orc_store_t *s, const json_t *j, json_type type, const char *what)
{
    static const char *const names[] = {"an object", "an array", "a string", "an integer",
                                        "a real",    "true",     "false",    "null"};

    if (j == NULL || json_typeof(j) == type)
        return 0;
    return orc__store_failf(s, ORC_EINVAL, "%s must be %s", what, names[type]);
}

static int check_options(orc_store_t *s, const orc_deployment_t *d)
{
    if (d->timeout_mins < 0 || d->provider_timeout_mins < 0 || d->max_providers_retry < 0)
        return orc__store_failf(s, ORC_EINVAL,
                                "timeoutMins, providerTimeoutMins and maxProvidersRetry must "
                                "be positive");
    return 0;
}

static int check_new_deployment(orc_store_t *s, const orc_deployment_t *d)
{
    int rc;

    if (d == NULL)
        return orc__store_failf(s, ORC_EINVAL, "deployment is missing");
    rc = check_text(s, d->created_by.issuer, "createdBy.issuer");
    if (rc == 0)
        rc = check_text(s, d->created_by.subject, "createdBy.subject");
    if (rc == 0 && d->template_text == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "a TOSCA template must be provided");
    if (rc == 0 && orc_task_name(d->task) == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "task %d is out of range", (int)d->task);
    if (rc == 0)
        rc = check_json(s, d->parameters, JSON_OBJECT, "parameters");
    if (rc == 0)
        rc = check_json(s, d->outputs, JSON_OBJECT, "outputs");
    if (rc == 0)
        rc = check_json(s, d->cloud_provider_endpoint, JSON_OBJECT, "cloudProviderEndpoint");
    if (rc == 0)
        rc = check_options(s, d);
    return rc;
}

static int check_dep_values(orc_store_t *s, unsigned set, const orc_deployment_t *v)
{
    int rc = 0;

    if ((set & ORC_DEP_F_STATUS) && orc_dep_status_name(v->status) == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "status %d is out of range", (int)v->status);
    if (rc == 0 && (set & ORC_DEP_F_TASK) && orc_task_name(v->task) == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "task %d is out of range", (int)v->task);
    if (rc == 0 && (set & ORC_DEP_F_OUTPUTS))
        rc = check_json(s, v->outputs, JSON_OBJECT, "outputs");
    if (rc == 0 && (set & ORC_DEP_F_PROVIDER_ENDPOINT))
        rc = check_json(s, v->cloud_provider_endpoint, JSON_OBJECT, "cloudProviderEndpoint");
    if (rc == 0 && (set & ORC_DEP_F_PARAMETERS))
        rc = check_json(s, v->parameters, JSON_OBJECT, "parameters");
    if (rc == 0 && (set & ORC_DEP_F_OPTIONS))
        rc = check_options(s, v);
    if (rc == 0 && (set & ORC_DEP_F_TEMPLATE) && v->template_text == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "a TOSCA template must be provided");
    return rc;
}

static int check_dep_update(orc_store_t *s, const orc_dep_update_t *u)
{
    int rc;

    if (u == NULL)
        return orc__store_failf(s, ORC_EINVAL, "update is missing");
    rc = check_uuid(s, u->uuid, "deployment");
    if (rc < 0)
        return rc;
    if (u->set == 0 || (u->set & ~(unsigned)ORC_DEP_F__ALL) || u->values == NULL)
        return orc__store_failf(s, ORC_EINVAL, "update names no field or no values");
    if (u->expect_version < 0)
        return orc__store_failf(s, ORC_EINVAL, "expected version is negative");
    if (u->from_statuses >> ORC_DEP__COUNT)
        return orc__store_failf(s, ORC_EINVAL, "status mask names unknown statuses");
    if (u->event_type != NULL && *u->event_type == '\0')
        return orc__store_failf(s, ORC_EINVAL, "event type is empty");
    return check_dep_values(s, u->set, u->values);
}

/* A resource's spec: NULL (none) or 1..ORC_RES_SPEC_MAX bytes. */
static int check_spec(orc_store_t *s, const char *spec)
{
    size_t n = spec ? strlen(spec) : 1;

    if (n == 0)
        return orc__store_failf(s, ORC_EINVAL, "resource spec is empty (NULL means none)");
    if (n > ORC_RES_SPEC_MAX)
        return orc__store_failf(s, ORC_EINVAL, "resource spec is %zu bytes long (at most %d)", n,
                                ORC_RES_SPEC_MAX);
    return 0;
}

static int check_resource(orc_store_t *s, const orc_resource_t *r)
{
    int rc;

    if (r == NULL)
        return orc__store_failf(s, ORC_EINVAL, "resource is missing");
    rc = check_uuid(s, r->deployment_uuid, "deployment");
    if (rc == 0)
        rc = check_text(s, r->node_name, "node name");
    if (rc == 0)
        rc = check_text(s, r->node_type, "node type");
    if (rc == 0 && r->instance_index < 0)
        rc = orc__store_failf(s, ORC_EINVAL, "instance index is negative");
    if (rc == 0 && orc_res_state_name(r->state) == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "resource state %d is out of range", (int)r->state);
    if (rc == 0)
        rc = check_json(s, r->attributes, JSON_OBJECT, "attributes");
    if (rc == 0)
        rc = check_json(s, r->metadata, JSON_OBJECT, "metadata");
    if (rc == 0)
        rc = check_json(s, r->required_by, JSON_ARRAY, "requiredBy");
    for (size_t i = 0; rc == 0 && r->required_by && i < json_array_size(r->required_by); i++)
        rc = check_json(s, json_array_get(r->required_by, i), JSON_STRING, "requiredBy items");
    if (rc == 0)
        rc = check_spec(s, r->spec);
    return rc;
}

static int check_res_update(orc_store_t *s, const orc_res_update_t *u)
{
    const orc_resource_t *v;
    int rc;

    if (u == NULL)
        return orc__store_failf(s, ORC_EINVAL, "update is missing");
    rc = check_uuid(s, u->uuid, "resource");
    if (rc < 0)
        return rc;
    v = u->values;
    if (u->set == 0 || (u->set & ~(unsigned)ORC_RES_F__ALL) || v == NULL)
        return orc__store_failf(s, ORC_EINVAL, "update names no field or no values");
    if (u->expect_version < 0)
        return orc__store_failf(s, ORC_EINVAL, "expected version is negative");
    if ((u->set & ORC_RES_F_STATE) && orc_res_state_name(v->state) == NULL)
        return orc__store_failf(s, ORC_EINVAL, "resource state %d is out of range", (int)v->state);
    if (u->set & ORC_RES_F_ATTRIBUTES)
        rc = check_json(s, v->attributes, JSON_OBJECT, "attributes");
    if (rc == 0 && (u->set & ORC_RES_F_METADATA))
        rc = check_json(s, v->metadata, JSON_OBJECT, "metadata");
    if (rc == 0 && (u->set & ORC_RES_F_REQUIRED_BY))
        rc = check_json(s, v->required_by, JSON_ARRAY, "requiredBy");
    if (rc == 0 && (u->set & ORC_RES_F_SPEC))
        rc = check_spec(s, v->spec);
    return rc;
}

static int check_out(orc_store_t *s, const void *out)
{
    return out ? 0 : orc__store_failf(s, ORC_EINVAL, "output argument is missing");
}

/* ---- opening ---------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

int orc_store_open(const char *target, orc_store_t **out, char *err, size_t errlen)
{
    const struct orc_store_ops *ops = &orc__store_sqlite_ops;

    if (out == NULL || target == NULL || *target == '\0') {
        set_err(err, errlen, "store: no database named");
        if (out)
            *out = NULL;
        return ORC_EINVAL;
    }
    *out = NULL;
    if (strncmp(target, "postgres://", 11) == 0 || strncmp(target, "postgresql://", 13) == 0)
        return orc__store_pg_ops.open(target, out, err, errlen);
    if (strncmp(target, "sqlite:", 7) == 0)
        target += 7;
    if (*target == '\0') {
        set_err(err, errlen, "store: no database named");
        return ORC_EINVAL;
    }
    return ops->open(target, out, err, errlen);
}

void orc_store_close(orc_store_t *s)
{
    if (s == NULL)
        return;
    s->write_hook = NULL;
    if (s->commit.pending && orc_store_commit_wait(s) < 0)
        orc_log(ORC_LOG_ERROR, "store", "close: %s", s->errmsg);
    if (s->group.open && orc_store_group_commit(s) < 0)
        orc_log(ORC_LOG_ERROR, "store", "close: %s", s->errmsg);
    s->ops->close(s);
}

const char *orc_store_errmsg(const orc_store_t *s)
{
    return s ? s->errmsg : "no store";
}

void orc_store_info(const orc_store_t *s, orc_store_info_t *info)
{
    if (info == NULL)
        return;
    memset(info, 0, sizeof(*info));
    if (s == NULL)
        return;
    info->backend = s->ops->name;
    info->schema_version = s->schema_version;
    info->migrations_applied = s->migrations_applied;
}

/* ---- groups ------------------------------------------------------------------- */

int orc_store_group_begin(orc_store_t *s)
{
    int rc = begin_call(s);

    if (rc < 0)
        return rc;
    if (s->group.open)
        return orc__store_failf(s, ORC_ECONFLICT, "a group of writes is open already");
    rc = s->ops->group_begin(s);
    if (rc < 0)
        return rc;
    memset(&s->group, 0, sizeof(s->group));
    s->group.open = true;
    return 0;
}

/* The failure of a group of writes lost with rc; why may be s->errmsg itself. */
static int group_rolled_back(orc_store_t *s, int rc, size_t writes, const char *why)
{
    char copy[ORC_STORE_ERRMSG_LEN];

    snprintf(copy, sizeof(copy), "%s", why);
    return orc__store_failf(s, rc, "the group of %zu writes was rolled back: %s", writes, copy);
}

int orc_store_group_commit(orc_store_t *s)
{
    struct orc__store_group g;
    int rc = begin_call(s);

    if (rc < 0)
        return rc;
    if (!s->group.open)
        return orc__store_failf(s, ORC_EINVAL, "no group of writes is open");
    /* the backend commits, or rolls back what is left of a broken group */
    rc = s->ops->group_commit(s);
    g = s->group;
    memset(&s->group, 0, sizeof(s->group));
    if (g.failed < 0)
        return group_rolled_back(s, g.failed, g.writes, g.why);
    if (rc < 0)
        return group_rolled_back(s, rc, g.writes, s->errmsg);
    return 0;
}

int orc_store_group_commit_send(orc_store_t *s)
{
    size_t writes;
    int rc = begin_call(s);

    if (rc < 0)
        return rc;
    if (!s->group.open)
        return orc__store_failf(s, ORC_EINVAL, "no group of writes is open");
    if (s->ops->group_commit_send == NULL)
        return orc__store_failf(s, ORC_ENOTSUP, "the %s store commits only by waiting",
                                s->ops->name);
    if (s->commit.pending)
        return orc__store_failf(s, ORC_ECONFLICT, "the answer to the last commit is not taken");
    if (s->group.failed < 0)
        return orc_store_group_commit(s); /* rolls back what is left, says why */
    writes = s->group.writes;
    rc = s->ops->group_commit_send(s);
    memset(&s->group, 0, sizeof(s->group));
    if (rc < 0)
        return group_rolled_back(s, rc, writes, s->errmsg);
    memset(&s->commit, 0, sizeof(s->commit));
    s->commit.pending = true;
    s->commit.writes = writes;
    return 0;
}

bool orc_store_commit_pending(const orc_store_t *s)
{
    return s != NULL && s->commit.pending;
}

/* Ends the pending commit, answered, with its outcome. */
static int commit_take(orc_store_t *s)
{
    struct orc__store_commit c = s->commit;

    memset(&s->commit, 0, sizeof(s->commit));
    if (c.rc < 0)
        return group_rolled_back(s, c.rc, c.writes, c.why);
    s->errmsg[0] = '\0';
    return 0;
}

static int commit_outcome(orc_store_t *s, bool block)
{
    if (s == NULL)
        return ORC_EINVAL;
    if (!s->commit.pending)
        return orc__store_failf(s, ORC_EINVAL, "no commit is pending");
    if (commit_settle(s, block) == 1)
        return 1;
    return commit_take(s);
}

int orc_store_commit_result(orc_store_t *s)
{
    return commit_outcome(s, false);
}

int orc_store_commit_wait(orc_store_t *s)
{
    return commit_outcome(s, true);
}

int orc_store_commit_fd(const orc_store_t *s)
{
    if (s == NULL || !s->commit.pending || s->commit.answered || s->ops->commit_fd == NULL)
        return -1;
    return s->ops->commit_fd(s);
}

uint64_t orc_store_connection_id(const orc_store_t *s)
{
    return s ? s->connection_id : 0;
}

bool orc_store_group_active(const orc_store_t *s)
{
    return s != NULL && s->group.open;
}

size_t orc_store_group_writes(const orc_store_t *s)
{
    return s != NULL && s->group.open ? s->group.writes : 0;
}

void orc_store_set_write_hook(orc_store_t *s, orc_store_write_hook_fn fn, void *ud)
{
    if (s == NULL)
        return;
    s->write_hook = fn;
    s->write_hook_ud = fn ? ud : NULL;
}

/* ---- deployments --------------------------------------------------------------- */

int orc_store_deployment_insert(orc_store_t *s, orc_deployment_t *d)
{
    int item_rc = 0;
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_new_deployment(s, d);
    if (rc == 0)
        rc = s->ops->deployment_insert(s, d, 1, &item_rc, false);
    return rc < 0 ? rc : item_rc;
}

int orc_store_insert_deployments_batch(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs)
{
    int rc = begin_write(s);
    size_t valid = 0;

    if (rc < 0)
        return rc;
    if ((ds == NULL || rcs == NULL) && n > 0)
        return orc__store_failf(s, ORC_EINVAL, "batch arrays are missing");
    for (size_t i = 0; i < n; i++) {
        rcs[i] = check_new_deployment(s, &ds[i]);
        ds[i].uuid[0] = '\0';
        valid += rcs[i] == 0;
    }
    if (valid == 0)
        return 0; /* nothing to write; rcs says why */
    rc = s->ops->deployment_insert(s, ds, n, rcs, true);
    if (rc < 0) {
        for (size_t i = 0; i < n; i++) {
            rcs[i] = rc;
            ds[i].uuid[0] = '\0';
        }
    }
    return rc;
}

static int deployment_get(orc_store_t *s, const char *uuid, bool with_spec,
                          orc_deployment_t **out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    *out = NULL;
    rc = check_uuid(s, uuid, "deployment");
    return rc < 0 ? rc : s->ops->deployment_get(s, uuid, with_spec, out);
}

int orc_store_deployment_get(orc_store_t *s, const char *uuid, orc_deployment_t **out)
{
    return deployment_get(s, uuid, true, out);
}

int orc_store_deployment_get_head(orc_store_t *s, const char *uuid, orc_deployment_t **out)
{
    return deployment_get(s, uuid, false, out);
}

int orc_store_deployment_list(orc_store_t *s, const orc_dep_query_t *q, orc_deployment_list_t *out)
{
    static const orc_dep_query_t all = {0};
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (q == NULL)
        q = &all;
    if ((unsigned)q->sort >= ORC_DEP_SORT__COUNT)
        return orc__store_failf(s, ORC_EINVAL, "sort %d is out of range", (int)q->sort);
    if (q->excluded_statuses >> ORC_DEP__COUNT)
        return orc__store_failf(s, ORC_EINVAL, "status mask names unknown statuses");
    return s->ops->deployment_list(s, q, out);
}

int orc_store_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT])
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, counts);
    if (rc < 0)
        return rc;
    memset(counts, 0, sizeof(int64_t) * ORC_DEP__COUNT);
    return s->ops->deployment_counts(s, counts);
}

int orc_store_deployment_list_in_status(orc_store_t *s, uint32_t statuses,
                                        orc_deployment_list_t *out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (statuses >> ORC_DEP__COUNT)
        return orc__store_failf(s, ORC_EINVAL, "status mask names unknown statuses");
    return s->ops->deployment_list_in_status(s, statuses, out);
}

int orc_store_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_dep_update(s, u);
    return rc < 0 ? rc : s->ops->deployment_update(s, u, new_version);
}

int orc_store_deployment_set_status(orc_store_t *s, const char *uuid, int64_t expect_version,
                                    orc_dep_status_t status, const char *reason,
                                    int64_t *new_version)
{
    orc_deployment_t v = {.status = status, .status_reason = (char *)reason};
    orc_dep_update_t u = {
        .uuid = uuid,
        .expect_version = expect_version,
        .set = ORC_DEP_F_STATUS | ORC_DEP_F_STATUS_REASON,
        .values = &v,
    };

    return orc_store_deployment_update(s, &u, new_version);
}

int orc_store_deployment_mark_deleted(orc_store_t *s, const char *uuid, int64_t expect_version)
{
    orc_deployment_t v = {.status = ORC_DEP_DELETE_COMPLETE, .deleted = true};
    orc_dep_update_t u = {
        .uuid = uuid,
        .expect_version = expect_version,
        .set = ORC_DEP_F_STATUS | ORC_DEP_F_DELETED,
        .values = &v,
        .event_type = "deployment.deleted",
        .event_message = "deployment deleted",
    };

    return orc_store_deployment_update(s, &u, NULL);
}

int orc_store_deployment_delete(orc_store_t *s, const char *uuid)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, uuid, "deployment");
    return rc < 0 ? rc : s->ops->deployment_delete(s, uuid);
}

/* ---- resources -------------------------------------------------------------- */

int orc_store_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n)
{
    int rc = begin_write(s);

    if (rc < 0)
        return rc;
    if (rs == NULL || n == 0)
        return orc__store_failf(s, ORC_EINVAL, "no resources to insert");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = check_resource(s, &rs[i]);
    return rc < 0 ? rc : s->ops->resources_insert(s, rs, n);
}

int orc_store_resource_insert(orc_store_t *s, orc_resource_t *r)
{
    return orc_store_resources_insert(s, r, r ? 1 : 0);
}

int orc_store_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                           orc_resource_t **out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    *out = NULL;
    if (deployment_uuid != NULL)
        rc = check_uuid(s, deployment_uuid, "deployment");
    if (rc == 0)
        rc = check_uuid(s, uuid, "resource");
    return rc < 0 ? rc : s->ops->resource_get(s, deployment_uuid, uuid, out);
}

int orc_store_resource_list(orc_store_t *s, const orc_res_query_t *q, orc_resource_list_t *out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    if (q == NULL)
        return orc__store_failf(s, ORC_EINVAL, "query is missing");
    rc = check_uuid(s, q->deployment_uuid, "deployment");
    return rc < 0 ? rc : s->ops->resource_list(s, q, out);
}

int orc_store_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_res_update(s, u);
    return rc < 0 ? rc : s->ops->resource_update(s, u, new_version);
}

int orc_store_resource_set_state(orc_store_t *s, const char *uuid, int64_t expect_version,
                                 orc_res_state_t state, int64_t *new_version)
{
    orc_resource_t v = {.state = state};
    orc_res_update_t u = {
        .uuid = uuid, .expect_version = expect_version, .set = ORC_RES_F_STATE, .values = &v};

    return orc_store_resource_update(s, &u, new_version);
}

int orc_store_resource_delete(orc_store_t *s, const char *uuid, const char *event_message)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, uuid, "resource");
    return rc < 0 ? rc : s->ops->resource_delete(s, uuid, event_message);
}

void orc_store_interrupt(orc_store_t *s)
{
    if (s != NULL && s->ops->interrupt != NULL)
        s->ops->interrupt(s);
}

int orc_store_site_resource_count(orc_store_t *s, const char *site, int64_t *count)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, count);
    if (rc == 0 && (site == NULL || *site == '\0'))
        rc = orc__store_failf(s, ORC_EINVAL, "a site name is required");
    if (rc < 0)
        return rc;
    *count = 0;
    return s->ops->site_resource_count(s, site, count);
}

/* ---- events ------------------------------------------------------------------ */

int orc_store_event_append(orc_store_t *s, orc_event_t *ev)
{
    int rc = begin_write(s);

    if (rc < 0)
        return rc;
    if (ev == NULL)
        return orc__store_failf(s, ORC_EINVAL, "event is missing");
    rc = check_uuid(s, ev->deployment_uuid, "deployment");
    if (rc == 0)
        rc = check_text(s, ev->type, "event type");
    if (rc == 0 && ev->time_ms < 0)
        rc = orc__store_failf(s, ORC_EINVAL, "event time is negative");
    return rc < 0 ? rc : s->ops->event_append(s, ev);
}

int orc_store_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id,
                         size_t limit, orc_event_list_t *out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    rc = check_uuid(s, deployment_uuid, "deployment");
    return rc < 0 ? rc : s->ops->event_list(s, deployment_uuid, after_id, limit, out);
}

/* ---- site attempts ----------------------------------------------------------- */

int orc_store_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                            const char *site_name)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, deployment_uuid, "deployment");
    if (rc == 0)
        rc = check_text(s, site_name, "site name");
    if (rc == 0 && attempt < 1)
        rc = orc__store_failf(s, ORC_EINVAL, "attempt numbers start at 1");
    return rc < 0 ? rc : s->ops->attempt_start(s, deployment_uuid, attempt, site_name);
}

int orc_store_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                          const char *error)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, deployment_uuid, "deployment");
    if (rc == 0 && attempt < 1)
        rc = orc__store_failf(s, ORC_EINVAL, "attempt numbers start at 1");
    return rc < 0 ? rc : s->ops->attempt_end(s, deployment_uuid, attempt, ok, error);
}

int orc_store_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    rc = check_uuid(s, deployment_uuid, "deployment");
    return rc < 0 ? rc : s->ops->attempt_list(s, deployment_uuid, out);
}

/* ---- metadata ----------------------------------------------------------------- */

int orc_store_meta_set(orc_store_t *s, const char *key, const char *value)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_text(s, key, "key");
    if (rc == 0 && value == NULL)
        rc = orc__store_failf(s, ORC_EINVAL, "value is missing");
    return rc < 0 ? rc : s->ops->meta_set(s, key, value);
}

int orc_store_meta_get(orc_store_t *s, const char *key, char **value)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, value);
    if (rc < 0)
        return rc;
    *value = NULL;
    rc = check_text(s, key, "key");
    return rc < 0 ? rc : s->ops->meta_get(s, key, value);
}

void orc_lease_list_clear(orc_lease_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        orc_free(l->items[i].previous_owner);
    orc_free(l->items);
    memset(l, 0, sizeof(*l));
}

static int check_lease(orc_store_t *s, const char *owner, int64_t ttl_ms)
{
    int rc = check_text(s, owner, "lease owner");

    if (rc == 0 && ttl_ms <= 0)
        rc = orc__store_failf(s, ORC_EINVAL, "a lease lasts a positive time");
    return rc;
}

int orc_store_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, uuid, "deployment");
    if (rc == 0)
        rc = check_lease(s, owner, ttl_ms);
    return rc < 0 ? rc : s->ops->lease_acquire(s, uuid, owner, ttl_ms);
}

int orc_store_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms,
                          orc_lease_list_t *held)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_out(s, held);
    if (rc == 0)
        rc = check_lease(s, owner, ttl_ms);
    if (rc < 0)
        return rc;
    memset(held, 0, sizeof(*held));
    rc = s->ops->lease_renew(s, owner, ttl_ms, held);
    if (rc < 0)
        orc_lease_list_clear(held);
    return rc;
}

int orc_store_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                  uint32_t statuses, size_t max, bool with_own, orc_lease_list_t *got)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_out(s, got);
    if (rc == 0)
        rc = check_lease(s, owner, ttl_ms);
    if (rc < 0)
        return rc;
    memset(got, 0, sizeof(*got));
    if (statuses >> ORC_DEP__COUNT)
        return orc__store_failf(s, ORC_EINVAL, "status mask names unknown statuses");
    if (statuses == 0 || max == 0)
        return 0;
    rc = s->ops->lease_claim_expired(s, owner, ttl_ms, statuses, max, with_own, got);
    if (rc < 0)
        orc_lease_list_clear(got);
    return rc;
}

int orc_store_lease_release(orc_store_t *s, const char *uuid, const char *owner)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_uuid(s, uuid, "deployment");
    if (rc == 0)
        rc = check_text(s, owner, "lease owner");
    return rc < 0 ? rc : s->ops->lease_release(s, uuid, owner);
}

int orc_store_listen(orc_store_t *s)
{
    if (s == NULL)
        return ORC_EINVAL;
    if (s->ops->listen == NULL)
        return orc__store_failf(s, ORC_ENOTSUP, "the %s store has no notifications", s->ops->name);
    commit_settle(s, true);
    return s->ops->listen(s);
}

int orc_store_changes_fd(orc_store_t *s)
{
    return s && s->ops->changes_fd ? s->ops->changes_fd(s) : -1;
}

int orc_store_changes_read(orc_store_t *s, void (*fn)(void *ud, const char *uuid), void *ud)
{
    if (s == NULL || fn == NULL)
        return ORC_EINVAL;
    commit_settle(s, false); /* what arrived may be a commit's answer too */
    return s->ops->changes_read ? s->ops->changes_read(s, fn, ud) : 0;
}

int orc_store_meta_delete(orc_store_t *s, const char *key)
{
    int rc = begin_write(s);

    if (rc == 0)
        rc = check_text(s, key, "key");
    return rc < 0 ? rc : s->ops->meta_delete(s, key);
}

void orc_meta_list_clear(orc_meta_list_t *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++) {
        orc_free(l->items[i].key);
        orc_free(l->items[i].value);
    }
    orc_free(l->items);
    l->items = NULL;
    l->count = 0;
}

int orc_store_meta_list(orc_store_t *s, const char *prefix, orc_meta_list_t *out)
{
    int rc = begin_call(s);

    if (rc == 0)
        rc = check_out(s, out);
    if (rc < 0)
        return rc;
    memset(out, 0, sizeof(*out));
    rc = check_text(s, prefix, "prefix");
    if (rc == 0 && prefix[0] == '\0')
        rc = orc__store_failf(s, ORC_EINVAL, "prefix is empty");
    return rc < 0 ? rc : s->ops->meta_list(s, prefix, out);
}
