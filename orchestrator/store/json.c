/*
 * The store records' JSON codec (json.h): deployment, resource and event
 * objects as the REST API renders them. Objects are built with a small
 * builder that remembers the first allocation failure, so each renderer is a
 * flat list of fields with one check at the end.
 */
#include <string.h>

#include "json.h"

struct jb {
    json_t *obj;
    int rc;
};

static void jb_init(struct jb *b)
{
    b->obj = json_object();
    b->rc = b->obj ? 0 : ORC_ENOMEM;
}

/* Sets key to v, taking v's reference; v NULL means an allocation failed. */
static void jb_set(struct jb *b, const char *key, json_t *v)
{
    if (b->rc < 0 || v == NULL || json_object_set_new(b->obj, key, v) != 0) {
        json_decref(v);
        b->rc = ORC_ENOMEM;
    }
}

/* A JSON string of s. Text that is not UTF-8 (a driver's raw error output,
 * say) is sent with each non-ASCII byte as '?' rather than not at all. */
static json_t *str(const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *copy;

    if (j != NULL || s == NULL)
        return j;
    copy = orc_strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    orc_free(copy);
    return j;
}

static void jb_str(struct jb *b, const char *key, const char *s)
{
    jb_set(b, key, str(s));
}

/* A string field, skipped when s is NULL (optional fields). */
static void jb_opt_str(struct jb *b, const char *key, const char *s)
{
    if (s != NULL)
        jb_set(b, key, str(s));
}

static void jb_time(struct jb *b, const char *key, int64_t ms)
{
    char buf[ORC_TIME_LEN];

    jb_set(b, key, json_string(orc_time_format(ms, buf)));
}

/* A copy of a JSON value, skipped when v is NULL. */
static void jb_opt_copy(struct jb *b, const char *key, const json_t *v)
{
    if (v != NULL)
        jb_set(b, key, json_deep_copy(v));
}

static int jb_finish(struct jb *b, json_t **out)
{
    if (b->rc < 0) {
        json_decref(b->obj);
        return b->rc;
    }
    *out = b->obj;
    return 0;
}

/* Length of base_url without trailing slashes. */
static int base_len(const char *base_url)
{
    size_t n = base_url ? strlen(base_url) : 0;

    while (n > 0 && base_url[n - 1] == '/')
        n--;
    return (int)n;
}

/* {"rel": rel, "href": base/deployments/uuid[suffix]} */
static json_t *make_link(const char *rel, const char *base_url, const char *uuid,
                         const char *suffix, const char *id)
{
    char *href = orc_asprintf("%.*s/deployments/%s%s%s", base_len(base_url),
                              base_url ? base_url : "", uuid, suffix, id ? id : "");
    json_t *l = href ? json_pack("{s:s, s:s}", "rel", rel, "href", href) : NULL;

    orc_free(href);
    return l;
}

/* An array of n links; a NULL among them (OOM) fails the array. Takes the
 * references of the items. */
static json_t *links(json_t *const *items, int n)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;

    for (int i = 0; i < n; i++) {
        if (items[i] == NULL || (ok && json_array_append(arr, items[i]) != 0))
            ok = false;
        json_decref(items[i]);
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* {"issuer": ..., "subject": ...} */
static json_t *created_by(const orc_deployment_t *d)
{
    struct jb b;

    jb_init(&b);
    jb_str(&b, "issuer", d->created_by.issuer);
    jb_str(&b, "subject", d->created_by.subject);
    if (b.rc < 0) {
        json_decref(b.obj);
        return NULL;
    }
    return b.obj;
}

int orc_deployment_to_json(const orc_deployment_t *d, const char *base_url, json_t **out)
{
    struct jb b;

    if (d == NULL || out == NULL || orc_dep_status_name(d->status) == NULL ||
        orc_task_name(d->task) == NULL)
        return ORC_EINVAL;
    *out = NULL;
    jb_init(&b);
    jb_str(&b, "uuid", d->uuid);
    jb_time(&b, "creationTime", d->created_ms);
    jb_time(&b, "updateTime", d->updated_ms);
    jb_str(&b, "status", orc_dep_status_name(d->status));
    jb_opt_str(&b, "statusReason", d->status_reason);
    jb_str(&b, "task", orc_task_name(d->task));
    jb_set(&b, "outputs", d->outputs ? json_deep_copy(d->outputs) : json_object());
    jb_opt_str(&b, "physicalId", d->physical_id);
    jb_opt_str(&b, "callback", d->callback);
    jb_opt_str(&b, "userGroup", d->user_group);
    jb_opt_str(&b, "cloudProviderName", d->cloud_provider_name);
    jb_opt_copy(&b, "cloudProviderEndpoint", d->cloud_provider_endpoint);
    jb_set(&b, "createdBy", created_by(d));
    json_t *l[] = {make_link("self", base_url, d->uuid, "", NULL),
                   make_link("resources", base_url, d->uuid, "/resources", NULL),
                   make_link("template", base_url, d->uuid, "/template", NULL)};
    jb_set(&b, "links", links(l, 3));
    return jb_finish(&b, out);
}

int orc_resource_to_json(const orc_resource_t *r, const char *base_url, json_t **out)
{
    struct jb b;

    if (r == NULL || out == NULL || orc_res_state_name(r->state) == NULL)
        return ORC_EINVAL;
    *out = NULL;
    jb_init(&b);
    jb_str(&b, "uuid", r->uuid);
    jb_time(&b, "creationTime", r->created_ms);
    jb_time(&b, "updateTime", r->updated_ms);
    jb_opt_str(&b, "physicalId", r->physical_id);
    jb_str(&b, "state", orc_res_state_name(r->state));
    jb_str(&b, "toscaNodeType", r->node_type);
    jb_str(&b, "toscaNodeName", r->node_name);
    jb_set(&b, "requiredBy", r->required_by ? json_deep_copy(r->required_by) : json_array());
    jb_opt_copy(&b, "metadata", r->metadata);
    json_t *l[] = {make_link("deployment", base_url, r->deployment_uuid, "", NULL),
                   make_link("self", base_url, r->deployment_uuid, "/resources/", r->uuid)};
    jb_set(&b, "links", links(l, 2));
    return jb_finish(&b, out);
}

int orc_event_to_json(const orc_event_t *e, json_t **out)
{
    struct jb b;

    if (e == NULL || out == NULL)
        return ORC_EINVAL;
    *out = NULL;
    jb_init(&b);
    jb_set(&b, "id", json_integer((json_int_t)e->id));
    jb_time(&b, "time", e->time_ms);
    jb_set(&b, "timeMs", json_integer((json_int_t)e->time_ms));
    jb_str(&b, "type", e->type);
    jb_str(&b, "message", e->message);
    jb_opt_copy(&b, "data", e->data);
    return jb_finish(&b, out);
}
