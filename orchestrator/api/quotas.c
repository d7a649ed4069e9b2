/*
 * Quotas per user group (quotas.h). A quota: {"group", "max_deployments": N or null,
 * "max_gpus": {"A100": 8, "*": 16} or null}, "*" counting GPUs of any model. A group's
 * usage is what its deployments that are not deleted ask for: how many there are, and
 * the GPUs of their plans' compute nodes (num_gpus times the instances), by model
 * ("*" for a node that names none) and in all.
 */
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "deployments.h"
#include "quotas.h"

#define KEY_PREFIX "quota/"
#define GROUP_MAX 128
#define ANY_MODEL "*"

/* ---- usage ---- */

/* Adds a plan's GPUs to gpus (model -> count; "*" is the total). */
static void add_plan_gpus(json_t *gpus, const json_t *plan)
{
    size_t i;
    json_t *node;

    json_array_foreach(json_object_get(plan, "nodes"), i, node)
    {
        const json_t *c = json_object_get(node, "compute");
        json_int_t n = json_integer_value(json_object_get(c, "num_gpus"));
        const char *model = json_string_value(json_object_get(c, "gpu_model"));
        const char *keys[2] = {model && *model ? model : NULL, ANY_MODEL};

        const char *kind = json_string_value(json_object_get(node, "kind"));

        if (kind == NULL || strcmp(kind, "COMPUTE") != 0 || n <= 0)
            continue;
        n *= (json_int_t)json_array_size(json_object_get(node, "instances"));
        for (int k = 0; k < 2; k++)
            if (keys[k])
                json_object_set_new(
                    gpus, keys[k],
                    json_integer(json_integer_value(json_object_get(gpus, keys[k])) + n));
    }
}

/* The usage of group's deployments but except_uuid: {"deployments": N, "gpus": {...}}. */
static int group_usage(orc_store_t *store, const char *group, const char *except_uuid, json_t **out)
{
    orc_dep_query_t q = {.user_group = group,
                         .excluded_statuses = ORC_DEP_MASK(ORC_DEP_DELETE_COMPLETE)};
    orc_deployment_list_t l = {0};
    json_t *gpus = json_object();
    json_int_t count = 0;
    int rc = gpus ? orc_store_deployment_list(store, &q, &l) : ORC_ENOMEM;

    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        orc_deployment_t *d = NULL;
        if (except_uuid && strcmp(l.items[i].uuid, except_uuid) == 0)
            continue;
        count++;
        rc = orc_store_deployment_get(store, l.items[i].uuid, &d);
        if (rc == ORC_ENOTFOUND) { /* deleted meanwhile */
            count--;
            rc = 0;
            continue;
        }
        if (rc == 0)
            add_plan_gpus(gpus, d->plan);
        orc_deployment_free(d);
    }
    orc_deployment_list_clear(&l);
    if (rc < 0) {
        json_decref(gpus);
        return rc;
    }
    *out = json_pack("{sI so}", "deployments", count, "gpus", gpus);
    return *out ? 0 : ORC_ENOMEM;
}

/* ---- the stored quotas ---- */

static const char *group_problem(const char *g)
{
    size_t n = g ? strlen(g) : 0;

    if (n == 0)
        return "is empty";
    if (n > GROUP_MAX)
        return "is longer than 128 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)g[i] < 0x20 || g[i] == 0x7f)
            return "holds a control character";
    return NULL;
}

/* The quota of group (a new reference), ORC_ENOTFOUND when it has none, or a store error. */
static int quota_get(orc_store_t *store, const char *group, json_t **out)
{
    char key[sizeof(KEY_PREFIX) + GROUP_MAX], *value = NULL;
    int rc;

    *out = NULL;
    snprintf(key, sizeof(key), KEY_PREFIX "%s", group);
    rc = orc_store_meta_get(store, key, &value);
    if (rc == 0) {
        *out = json_loads(value, 0, NULL);
        orc_free(value);
        if (!json_is_object(*out)) {
            orc_log(ORC_LOG_WARN, "quotas", "the store's %s is not a quota: ignored", key);
            json_decref(*out);
            *out = NULL;
            rc = ORC_ENOTFOUND;
        }
    }
    return rc;
}

/* ---- the check ---- */

static int over(orc_api_req_t *req, const char *group, const char *what, json_int_t limit,
                json_int_t used, json_int_t asked)
{
    return orc_api_req_fail(req, 403,
                            "quota of group %s: %s: %lld in use and %lld asked, the most is %lld",
                            group, what, (long long)used, (long long)asked, (long long)limit);
}

int orc_quota_check(orc_api_req_t *req, orc_store_t *store, const char *group, const json_t *plan,
                    const char *except_uuid)
{
    json_t *quota = NULL, *usage = NULL, *asked = json_object(), *limit;
    const json_t *max_gpus, *used_gpus;
    const char *model;
    int rc;

    if (group == NULL || asked == NULL) {
        json_decref(asked);
        return group == NULL ? 0 : orc_api_req_fail(req, 500, "out of memory");
    }
    rc = quota_get(store, group, &quota);
    if (rc == ORC_ENOTFOUND) {
        json_decref(asked);
        return 0;
    }
    if (rc == 0)
        rc = group_usage(store, group, except_uuid, &usage);
    if (rc < 0) {
        json_decref(quota);
        json_decref(asked);
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(store));
    }
    add_plan_gpus(asked, plan);
    limit = json_object_get(quota, "max_deployments");
    if (json_is_integer(limit) &&
        json_integer_value(json_object_get(usage, "deployments")) + 1 > json_integer_value(limit))
        rc = over(req, group, "deployments", json_integer_value(limit),
                  json_integer_value(json_object_get(usage, "deployments")), 1);
    max_gpus = json_object_get(quota, "max_gpus");
    used_gpus = json_object_get(usage, "gpus");
    json_object_foreach((json_t *)max_gpus, model, limit)
    {
        json_int_t used = json_integer_value(json_object_get(used_gpus, model));
        json_int_t more = json_integer_value(json_object_get(asked, model));
        char what[160];
        if (rc < 0 || !json_is_integer(limit) || more == 0 ||
            used + more <= json_integer_value(limit))
            continue;
        snprintf(what, sizeof(what), strcmp(model, ANY_MODEL) == 0 ? "GPUs" : "%.64s GPUs", model);
        rc = over(req, group, what, json_integer_value(limit), used, more);
    }
    json_decref(quota);
    json_decref(usage);
    json_decref(asked);
    return rc;
}

/* ---- the routes (admins) ---- */

static json_t *field_or_null(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return v ? v : json_null();
}

/* A quota as the API shows it; usage is stolen (NULL: null). */
static json_t *quota_view(orc_api_req_t *req, const char *group, json_t *quota, json_t *usage)
{
    return json_pack("{ss sO sO so ss}", "group", group, "max_deployments",
                     field_or_null(quota, "max_deployments"), "max_gpus",
                     field_or_null(quota, "max_gpus"), "usage", usage ? usage : json_null(), "href",
                     orc_api_req_url(req, "/quotas/%s", group));
}

static int list(orc_api_req_t *req, void *data)
{
    struct orc_quotas_api *ctx = data;
    orc_meta_list_t l = {0};
    json_t *content = json_array();
    int rc = orc_store_meta_list(ctx->store, KEY_PREFIX, &l);

    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        const char *group = l.items[i].key + strlen(KEY_PREFIX);
        json_t *quota = json_loads(l.items[i].value, 0, NULL), *usage = NULL;
        if (!json_is_object(quota)) {
            json_decref(quota);
            continue;
        }
        rc = group_usage(ctx->store, group, NULL, &usage);
        if (rc == 0)
            json_array_append_new(content, quota_view(req, group, quota, usage));
        json_decref(quota);
    }
    orc_meta_list_clear(&l);
    if (rc < 0) {
        json_decref(content);
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(ctx->store));
    }
    return orc_api_send_json_new(req, 200, json_pack("{so}", "content", content));
}

static int show(orc_api_req_t *req, void *data)
{
    struct orc_quotas_api *ctx = data;
    const char *group = orc_api_req_param(req, "group");
    json_t *quota = NULL, *usage = NULL;
    int rc = group_problem(group) ? ORC_ENOTFOUND : quota_get(ctx->store, group, &quota);

    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "group %.128s has no quota", group);
    if (rc == 0)
        rc = group_usage(ctx->store, group, NULL, &usage);
    if (rc < 0) {
        json_decref(quota);
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(ctx->store));
    }
    rc = orc_api_send_json_new(req, 200, quota_view(req, group, quota, usage));
    json_decref(quota);
    return rc;
}

/* max_gpus: null, or an object of model (or "*") -> integer >= 0. */
static int check_max_gpus(orc_api_req_t *req, const json_t *v)
{
    const char *model;
    json_t *n;

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return orc_api_req_fail(req, 400,
                                "max_gpus must be an object of GPU model (or \"*\" for "
                                "any) to a number, or null");
    json_object_foreach((json_t *)v, model, n)
    {
        if (!json_is_integer(n) || json_integer_value(n) < 0)
            return orc_api_req_fail(req, 400, "max_gpus.%.64s must be an integer >= 0", model);
        if (*model == '\0' || strlen(model) > 64)
            return orc_api_req_fail(req, 400, "max_gpus: a GPU model is 1 to 64 bytes");
    }
    return 0;
}

static int set(orc_api_req_t *req, void *data)
{
    struct orc_quotas_api *ctx = data;
    const char *group = orc_api_req_param(req, "group"), *problem = group_problem(group);
    json_t *body = NULL, *quota;
    const json_t *md, *mg;
    char key[sizeof(KEY_PREFIX) + GROUP_MAX], *text;
    int rc;

    if (problem)
        return orc_api_req_fail(req, 400, "the group name %s", problem);
    if ((rc = orc_api_req_json(req, &body)) < 0)
        return rc;
    md = json_object_get(body, "max_deployments");
    mg = json_object_get(body, "max_gpus");
    if (!json_is_object(body))
        rc = orc_api_req_fail(req, 400, "the body must be a JSON object");
    else if (md && !json_is_null(md) && (!json_is_integer(md) || json_integer_value(md) < 0))
        rc = orc_api_req_fail(req, 400, "max_deployments must be an integer >= 0, or null");
    else
        rc = check_max_gpus(req, mg);
    if (rc < 0) {
        json_decref(body);
        return rc;
    }
    quota = json_pack("{sO sO}", "max_deployments", md ? md : json_null(), "max_gpus",
                      mg ? mg : json_null());
    text = quota ? json_dumps(quota, JSON_COMPACT) : NULL;
    snprintf(key, sizeof(key), KEY_PREFIX "%s", group);
    rc = text ? orc_store_meta_set(ctx->store, key, text) : ORC_ENOMEM;
    free(text);
    json_decref(body);
    if (rc < 0) {
        json_decref(quota);
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(ctx->store));
    }
    orc_log(ORC_LOG_INFO, "quotas", "quota of group %s set by %s", group,
            orc_api_req_identity(req)->subject);
    rc = orc_api_reply_when_durable(req, ctx->commit, 200, quota_view(req, group, quota, NULL));
    json_decref(quota);
    return rc;
}

static int remove_quota(orc_api_req_t *req, void *data)
{
    struct orc_quotas_api *ctx = data;
    const char *group = orc_api_req_param(req, "group");
    char key[sizeof(KEY_PREFIX) + GROUP_MAX];
    int rc;

    if (group_problem(group))
        return orc_api_req_fail(req, 404, "group %.128s has no quota", group);
    snprintf(key, sizeof(key), KEY_PREFIX "%s", group);
    rc = orc_store_meta_delete(ctx->store, key);
    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "group %.128s has no quota", group);
    if (rc < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(ctx->store));
    return orc_api_reply_when_durable(req, ctx->commit, 204, NULL);
}

int orc_api_quotas_register(orc_api_t *api, struct orc_quotas_api *ctx)
{
    static const char quota_schema[] =
        "{\"type\":\"object\",\"required\":[\"group\",\"max_deployments\",\"max_gpus\",\"usage\","
        "\"href\"],\"properties\":{\"group\":{\"type\":\"string\"},"
        "\"max_deployments\":{\"type\":\"integer\",\"nullable\":true},"
        "\"max_gpus\":{\"type\":\"object\",\"nullable\":true,\"description\":\"GPU model "
        "(\\\"*\\\": "
        "any) to the most GPUs\"},"
        "\"usage\":{\"type\":\"object\",\"nullable\":true,\"description\":\"deployments not "
        "deleted, and their GPUs by model (\\\"*\\\": all)\"},"
        "\"href\":{\"type\":\"string\"}}}";
    static const orc_api_response_doc_t listed[] = {
        {200, "Every group's quota, with its usage now", "application/json",
         "{\"type\":\"object\",\"required\":[\"content\"],\"properties\":{\"content\":{"
         "\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Quota\"}}}}"},
        {403, "Not an admin", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t one[] = {
        {200, "The quota and its usage now", "application/json",
         "{\"$ref\":\"#/components/schemas/Quota\"}"},
        {404, "The group has no quota", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t set_docs[] = {
        {200, "Set (usage null)", "application/json", "{\"$ref\":\"#/components/schemas/Quota\"}"},
        {400, "A bad body", "application/json", NULL},
        {415, "The body is not JSON", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t removed[] = {
        {204, "Removed: the group has no limits", NULL, NULL},
        {404, "The group has no quota", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"GET", "/quotas", list, ctx, "List the quotas", NULL, "Quotas", NULL, NULL, listed,
         ORC_API_ACCESS_ADMIN},
        {"GET", "/quotas/{group}", show, ctx, "One group's quota", NULL, "Quotas", NULL, NULL, one,
         ORC_API_ACCESS_ADMIN},
        {"PUT", "/quotas/{group}", set, ctx, "Set a group's quota",
         "max_deployments: the most deployments of the group (userGroup) not deleted; max_gpus: "
         "the most GPUs their plans ask for, by model, \"*\" for all; null: no limit. Creates "
         "and updates past it are 403.",
         "Quotas",
         "{\"type\":\"object\",\"properties\":{\"max_deployments\":{\"type\":\"integer\","
         "\"minimum\":0,\"nullable\":true},\"max_gpus\":{\"type\":\"object\",\"nullable\":true,"
         "\"additionalProperties\":{\"type\":\"integer\",\"minimum\":0}}}}",
         NULL, set_docs, ORC_API_ACCESS_ADMIN},
        {"DELETE", "/quotas/{group}", remove_quota, ctx, "Remove a group's quota", NULL, "Quotas",
         NULL, NULL, removed, ORC_API_ACCESS_ADMIN},
    };
    int rc = orc_api_register_schema(api, "Quota", quota_schema);

    if (rc < 0 && rc != ORC_ECONFLICT)
        return rc;
    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
