/*
 * /deployments (deployments.h): the REST contract of API.md on top of the
 * store, the engine and libtosca.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deployments.h"
#include "../base.h"
#include "../store/json.h"

#define DEFAULT_PAGE_SIZE 10
#define MAX_PAGE_SIZE 100

/* ---- request body of create ---- */

struct create_req {
    const char *template_text;
    json_t *parameters;
    const char *callback;
    int timeout_mins, provider_timeout_mins, max_providers_retry;
    bool keep_last_attempt;
    const char *user_group;
};

static int int_field(orc_api_req_t *req, const json_t *body, const char *name, int *out)
{
    const json_t *v = json_object_get(body, name);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100000000)
        return orc_api_req_fail(req, 400, "%s must be an integer >= 1", name);
    *out = (int)json_integer_value(v);
    return 0;
}

/* keepLastAttempt: a boolean, or the strings "true"/"false" clients send. */
static int bool_field(orc_api_req_t *req, const json_t *body, const char *name, bool *out)
{
    const json_t *v = json_object_get(body, name);
    const char *s = json_string_value(v);

    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    if (s && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        *out = s[0] == 't';
        return 0;
    }
    return orc_api_req_fail(req, 400, "%s must be true or false", name);
}

static int parse_create(orc_api_req_t *req, const json_t *body, struct create_req *c)
{
    const json_t *t = json_object_get(body, "template"), *p = json_object_get(body, "parameters");
    const json_t *cb = json_object_get(body, "callback"), *g = json_object_get(body, "userGroup");
    int rc;

    memset(c, 0, sizeof(*c));
    if (!json_is_object(body))
        return orc_api_req_fail(req, 400, "the body must be a JSON object");
    if (!json_is_string(t) || json_string_length(t) == 0)
        return orc_api_req_fail(req, 400, "A TOSCA template must be provided");
    c->template_text = json_string_value(t);
    if (p && !json_is_null(p) && !json_is_object(p))
        return orc_api_req_fail(req, 400, "parameters must be a JSON object");
    c->parameters = p && json_is_object(p) ? (json_t *)p : NULL;
    if (cb && !json_is_null(cb)) {
        const char *u = json_string_value(cb);
        if (u == NULL || (strncmp(u, "http:", 5) != 0 && strncmp(u, "https:", 6) != 0))
            return orc_api_req_fail(req, 400, "callback must be an http: or https: URL");
        c->callback = u;
    }
    if (g && !json_is_null(g) && (c->user_group = json_string_value(g)) == NULL)
        return orc_api_req_fail(req, 400, "userGroup must be a string");
    if ((rc = int_field(req, body, "timeoutMins", &c->timeout_mins)) < 0 ||
        (rc = int_field(req, body, "providerTimeoutMins", &c->provider_timeout_mins)) < 0 ||
        (rc = int_field(req, body, "maxProvidersRetry", &c->max_providers_retry)) < 0 ||
        (rc = bool_field(req, body, "keepLastAttempt", &c->keep_last_attempt)) < 0)
        return rc;
    if (c->timeout_mins && c->provider_timeout_mins > c->timeout_mins)
        return orc_api_req_fail(req, 400, "providerTimeoutMins (%d) must not exceed "
                                "timeoutMins (%d)", c->provider_timeout_mins, c->timeout_mins);
    return 0;
}

/* Template problems as one 400 message: every error with file:line:col. */
static int template_error(orc_api_req_t *req, const tosca_diags_t *d)
{
    char line[1024], msg[8192];
    size_t n = 0;

    n += (size_t)snprintf(msg, sizeof(msg), "the template is invalid:");
    for (size_t i = 0; i < d->count && n < sizeof(msg) - 2; i++)
        if (d->items[i].severity == TOSCA_SEV_ERROR)
            n += (size_t)snprintf(msg + n, sizeof(msg) - n, " %s;",
                                  tosca_diag_format(&d->items[i], line, sizeof(line)));
    return orc_api_req_fail(req, 400, "%s", msg);
}

static int plan_template(orc_api_req_t *req, struct orc_deployments_api *ctx,
                         const struct create_req *c, json_t **plan)
{
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    int rc;

    tosca_diags_init(&d, false);
    rc = tosca_load_buffer(ctx->tosca, "template.yaml", c->template_text,
                           strlen(c->template_text), &t, &d);
    if (rc == 0)
        rc = tosca_plan(t, c->parameters, plan, &d);
    if (rc == ORC_ETOSCA || rc == ORC_ELIMIT)
        rc = template_error(req, &d);
    else if (rc < 0)
        rc = orc_api_req_fail(req, 500, "cannot read the template: %s", orc_strerror(rc));
    tosca_template_free(t);
    tosca_diags_fini(&d);
    return rc;
}

static int send_deployment(orc_api_req_t *req, int status, const orc_deployment_t *d)
{
    json_t *j = NULL;
    int rc = orc_deployment_to_json(d, orc_api_req_base_url(req), &j);

    if (rc < 0)
        return orc_api_req_fail(req, 500, "cannot render the deployment");
    return orc_api_send_json_new(req, status, j);
}

static int store_fail(orc_api_req_t *req, struct orc_deployments_api *ctx, int rc,
                      const char *uuid)
{
    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", uuid);
    if (rc == ORC_ECONFLICT)
        return orc_api_req_fail(req, 409, "%s", orc_store_errmsg(ctx->store));
    return orc_api_req_fail(req, 500, "store: %s", orc_store_errmsg(ctx->store));
}

static int create(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_deployment_t d = {0};
    struct create_req c;
    json_t *body = NULL, *plan = NULL;
    int rc = orc_api_req_json(req, &body);

    if (rc == 0)
        rc = parse_create(req, body, &c);
    if (rc == 0)
        rc = plan_template(req, ctx, &c, &plan);
    if (rc < 0)
        goto out;
    d.created_by.issuer = (char *)ctx->anonymous_issuer;
    d.created_by.subject = (char *)ctx->anonymous_subject;
    d.user_group = (char *)c.user_group;
    d.callback = (char *)c.callback;
    d.template_text = (char *)c.template_text;
    d.parameters = c.parameters;
    d.plan = plan;
    d.timeout_mins = c.timeout_mins;
    d.provider_timeout_mins = c.provider_timeout_mins;
    d.max_providers_retry = c.max_providers_retry;
    d.keep_last_attempt = c.keep_last_attempt;
    d.task = ORC_TASK_DEPLOYER;
    rc = orc_store_deployment_insert(ctx->store, &d); /* durable before the 201 */
    if (rc < 0) {
        rc = store_fail(req, ctx, rc, "");
        goto out;
    }
    rc = send_deployment(req, 201, &d);
    if (orc_engine_create(ctx->engine, d.uuid) < 0)
        orc_log(ORC_LOG_ERROR, "api", "deployment %s stored but not started", d.uuid);
out:
    json_decref(plan);
    json_decref(body);
    return rc;
}

/* ---- lists ---- */

static int uint_query(orc_api_req_t *req, const char *name, uint32_t dflt, uint32_t max,
                      uint32_t *out)
{
    const char *v = orc_api_req_query(req, name);
    char *end;
    unsigned long n;

    *out = dflt;
    if (v == NULL || *v == '\0')
        return 0;
    n = strtoul(v, &end, 10);
    if (*end || v[0] == '-')
        return orc_api_req_fail(req, 400, "%s must be a number, not '%s'", name, v);
    *out = n > max ? max : (uint32_t)n;
    return 0;
}

/* {"links":[first, self, next, last], "content":[...], "page":{...}} (API.md). */
static json_t *paged(orc_api_req_t *req, const char *path, json_t *content, uint32_t page,
                     uint32_t size, int64_t total)
{
    int64_t pages = size ? (total + size - 1) / size : 1;
    json_t *links = json_array();
    const char *rel[] = {"first", "self", "next", "last"};
    int64_t at[] = {0, page, (int64_t)page + 1, pages > 0 ? pages - 1 : 0};

    for (int i = 0; i < 4; i++) {
        if (i == 2 && at[2] >= pages)
            continue;
        json_array_append_new(
            links, json_pack("{s:s,s:s}", "rel", rel[i], "href",
                             orc_api_req_url(req, "%s?page=%lld&size=%u", path,
                                             (long long)at[i], size)));
    }
    return json_pack("{s:o,s:o,s:{s:i,s:I,s:I,s:i}}", "links", links, "content", content,
                     "page", "size", (int)size, "totalElements", (json_int_t)total,
                     "totalPages", (json_int_t)pages, "number", (int)page);
}

static int list(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_dep_query_t q = {0};
    orc_deployment_list_t l = {0};
    const char *by = orc_api_req_query(req, "createdBy");
    const char *ex = orc_api_req_query(req, "excludedStatus");
    json_t *content;
    int rc;

    if ((rc = uint_query(req, "page", 0, 1000000, &q.page)) < 0 ||
        (rc = uint_query(req, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &q.size)) < 0)
        return rc;
    if (q.size == 0)
        q.size = DEFAULT_PAGE_SIZE;
    if (orc_dep_sort_parse(orc_api_req_query(req, "sort"), &q.sort) < 0)
        return orc_api_req_fail(req, 400, "sort: unknown property or direction");
    if (ex && orc_dep_status_mask_parse(ex, &q.excluded_statuses) < 0)
        return orc_api_req_fail(req, 400, "excludedStatus: '%s' is not a list of statuses", ex);
    if (by && strcmp(by, "me") == 0) {
        q.created_by_issuer = ctx->anonymous_issuer;
        q.created_by_subject = ctx->anonymous_subject;
    } else if (by && *by) {
        const char *at = strrchr(by, '@');
        if (at == NULL)
            return orc_api_req_fail(req, 400, "createdBy must be 'me' or subject@issuer");
        q.created_by_subject = orc_api_req_strdup(req, by);
        ((char *)q.created_by_subject)[at - by] = '\0';
        q.created_by_issuer = at + 1;
    }
    q.user_group = orc_api_req_query(req, "userGroup");
    rc = orc_store_deployment_list(ctx->store, &q, &l);
    if (rc < 0)
        return store_fail(req, ctx, rc, "");
    content = json_array();
    for (size_t i = 0; i < l.count; i++) {
        json_t *j = NULL;
        if (orc_deployment_to_json(&l.items[i], orc_api_req_base_url(req), &j) == 0)
            json_array_append_new(content, j);
    }
    rc = orc_api_send_json_new(req, 200,
                               paged(req, "/deployments", content, q.page, q.size, l.total));
    orc_deployment_list_clear(&l);
    return rc;
}

/* ---- one deployment ---- */

static int load(orc_api_req_t *req, struct orc_deployments_api *ctx, orc_deployment_t **d)
{
    const char *id = orc_api_req_param(req, "id");
    int rc;

    *d = NULL;
    if (id == NULL || !orc_uuid_valid(id))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    rc = orc_store_deployment_get(ctx->store, id, d);
    if (rc == 0 && (*d)->deleted) {
        orc_deployment_free(*d);
        *d = NULL;
        rc = ORC_ENOTFOUND;
    }
    return rc < 0 ? store_fail(req, ctx, rc, id) : 0;
}

static int show(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d;
    int rc = load(req, data, &d);

    if (rc == 0)
        rc = send_deployment(req, 200, d);
    orc_deployment_free(d);
    return rc;
}

static int remove_deployment(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_deployment_t *d;
    int rc = load(req, ctx, &d);

    if (rc < 0)
        return rc;
    if (d->status == ORC_DEP_DELETE_IN_PROGRESS || d->status == ORC_DEP_DELETE_COMPLETE)
        rc = orc_api_req_fail(req, 409, "The deployment %s is already being deleted", d->uuid);
    else
        rc = orc_store_deployment_set_status(ctx->store, d->uuid, d->version,
                                             ORC_DEP_DELETE_IN_PROGRESS, NULL, NULL);
    if (rc == 0) {
        rc = orc_engine_delete(ctx->engine, d->uuid);
        if (rc == 0 || rc == ORC_ECONFLICT)
            rc = orc_api_send_status(req, 204);
        else
            rc = orc_api_req_fail(req, 500, "cannot start the delete: %s", orc_strerror(rc));
    } else if (rc == ORC_ECONFLICT) {
        rc = orc_api_req_fail(req, 409, "The deployment %s changed meanwhile; retry", d->uuid);
    }
    orc_deployment_free(d);
    return rc;
}

static int reset(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_deployment_t *d = NULL;
    json_t *body = NULL;
    const char *st;
    int rc = orc_api_req_json(req, &body);

    if (rc == 0)
        rc = load(req, ctx, &d);
    if (rc < 0)
        goto out;
    st = json_string_value(json_object_get(body, "status"));
    if (st == NULL || strcmp(st, "DELETE_FAILED") != 0)
        rc = orc_api_req_fail(req, 400, "only {\"status\":\"DELETE_FAILED\"} is accepted");
    else if (d->status != ORC_DEP_DELETE_IN_PROGRESS || orc_engine_busy(ctx->engine, d->uuid))
        rc = orc_api_req_fail(req, 409, "The deployment %s is %s, not a stuck deletion",
                              d->uuid, orc_dep_status_name(d->status));
    else if ((rc = orc_store_deployment_set_status(ctx->store, d->uuid, d->version,
                                                   ORC_DEP_DELETE_FAILED, "reset by the user",
                                                   NULL)) == 0)
        rc = orc_api_send_status(req, 204);
    else
        rc = store_fail(req, ctx, rc, d->uuid);
out:
    orc_deployment_free(d);
    json_decref(body);
    return rc;
}

static int show_template(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d;
    int rc = load(req, data, &d);

    if (rc == 0)
        rc = orc_api_send_text(req, 200, d->template_text ? d->template_text : "",
                               d->template_text ? strlen(d->template_text) : 0);
    orc_deployment_free(d);
    return rc;
}

static int show_outputs(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d;
    int rc = load(req, data, &d);

    if (rc == 0)
        rc = d->outputs ? orc_api_send_json(req, 200, d->outputs)
                        : orc_api_send_json_new(req, 200, json_object());
    orc_deployment_free(d);
    return rc;
}

/* ---- resources ---- */

static int list_resources(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_deployment_t *d;
    orc_res_query_t q = {0};
    orc_resource_list_t l = {0};
    json_t *content;
    int rc = load(req, ctx, &d);

    if (rc == 0 && ((rc = uint_query(req, "page", 0, 1000000, &q.page)) < 0 ||
                    (rc = uint_query(req, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &q.size)) < 0))
        goto out;
    if (rc < 0)
        goto out;
    q.deployment_uuid = d->uuid;
    q.node_type = orc_api_req_query(req, "type");
    q.size = q.size ? q.size : DEFAULT_PAGE_SIZE;
    rc = orc_store_resource_list(ctx->store, &q, &l);
    if (rc < 0) {
        rc = store_fail(req, ctx, rc, d->uuid);
        goto out;
    }
    content = json_array();
    for (size_t i = 0; i < l.count; i++) {
        json_t *j = NULL;
        if (orc_resource_to_json(&l.items[i], orc_api_req_base_url(req), &j) == 0)
            json_array_append_new(content, j);
    }
    rc = orc_api_send_json_new(
        req, 200,
        paged(req, orc_api_req_url(req, "/deployments/%s/resources", d->uuid) +
                       strlen(orc_api_req_base_url(req)),
              content, q.page, q.size, l.total));
    orc_resource_list_clear(&l);
out:
    orc_deployment_free(d);
    return rc;
}

static int show_resource(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    const char *rid = orc_api_req_param(req, "rid");
    orc_deployment_t *d;
    orc_resource_t *r = NULL;
    json_t *j = NULL;
    int rc = load(req, ctx, &d);

    if (rc < 0)
        return rc;
    if (rid == NULL || !orc_uuid_valid(rid) ||
        orc_store_resource_get(ctx->store, d->uuid, rid, &r) < 0)
        rc = orc_api_req_fail(req, 404, "The resource %s doesn't exist in deployment %s",
                              rid ? rid : "", d->uuid);
    else if (orc_resource_to_json(r, orc_api_req_base_url(req), &j) < 0)
        rc = orc_api_req_fail(req, 500, "cannot render the resource");
    else
        rc = orc_api_send_json_new(req, 200, j);
    orc_resource_free(r);
    orc_deployment_free(d);
    return rc;
}

/* ---- events, log, extrainfo ---- */

static int events_of(orc_api_req_t *req, struct orc_deployments_api *ctx,
                     orc_deployment_t **d, orc_event_list_t *l)
{
    const char *after = orc_api_req_query(req, "after");
    int rc = load(req, ctx, d);

    if (rc < 0)
        return rc;
    rc = orc_store_event_list(ctx->store, (*d)->uuid, after ? atoll(after) : 0, 10000, l);
    return rc < 0 ? store_fail(req, ctx, rc, (*d)->uuid) : 0;
}

static int list_events(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d = NULL;
    orc_event_list_t l = {0};
    json_t *arr;
    int rc = events_of(req, data, &d, &l);

    if (rc == 0) {
        arr = json_array();
        for (size_t i = 0; i < l.count; i++) {
            json_t *j = NULL;
            if (orc_event_to_json(&l.items[i], &j) == 0)
                json_array_append_new(arr, j);
        }
        rc = orc_api_send_json_new(req, 200, arr);
    }
    orc_event_list_clear(&l);
    orc_deployment_free(d);
    return rc;
}

/* The human log: one line per event. */
static int show_log(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d = NULL;
    orc_event_list_t l = {0};
    char *text = NULL;
    size_t len = 0;
    int rc = events_of(req, data, &d, &l);

    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        char when[ORC_TIME_LEN];
        char *line = orc_asprintf("%s %s %s\n", orc_time_format(l.items[i].time_ms, when),
                                  l.items[i].type, l.items[i].message ? l.items[i].message : "");
        char *nt = line ? orc_realloc(text, len + strlen(line) + 1) : NULL;
        if (nt) {
            memcpy(nt + len, line, strlen(line) + 1);
            len += strlen(line);
            text = nt;
        }
        orc_free(line);
    }
    if (rc == 0)
        rc = orc_api_send_text(req, 200, text ? text : "", len);
    orc_free(text);
    orc_event_list_clear(&l);
    orc_deployment_free(d);
    return rc;
}

/* Per-node details: kind, instances and their state and attributes. */
static int show_extrainfo(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_res_query_t q = {0};
    orc_resource_list_t l = {0};
    orc_deployment_t *d;
    json_t *arr;
    int rc = load(req, ctx, &d);

    if (rc < 0)
        return rc;
    q.deployment_uuid = d->uuid;
    q.oldest_first = true;
    rc = orc_store_resource_list(ctx->store, &q, &l);
    arr = json_array();
    for (size_t i = 0; rc == 0 && i < l.count; i++)
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:i,s:s,s:s?,s:O?}", "node", l.items[i].node_name, "type",
                           l.items[i].node_type, "index", l.items[i].instance_index, "state",
                           orc_res_state_name(l.items[i].state), "site", l.items[i].site_name,
                           "attributes", l.items[i].attributes));
    rc = rc < 0 ? store_fail(req, ctx, rc, d->uuid) : orc_api_send_json_new(req, 200, arr);
    if (rc < 0)
        json_decref(arr);
    orc_resource_list_clear(&l);
    orc_deployment_free(d);
    return rc;
}

/* ---- registration ---- */

int orc_api_deployments_register(orc_api_t *api, struct orc_deployments_api *ctx)
{
    static const orc_api_response_doc_t created[] = {
        {201, "The deployment, stored; the engine works on it", "application/json",
         "{\"$ref\":\"#/components/schemas/Deployment\"}"},
        {400, "Bad body or an invalid template (each error with file:line:col)",
         "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t one[] = {
        {200, "The deployment", "application/json",
         "{\"$ref\":\"#/components/schemas/Deployment\"}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t none[] = {
        {204, "Accepted", NULL, NULL},
        {404, "No such deployment", "application/json", NULL},
        {409, "Not allowed in the deployment's status", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t text[] = {
        {200, "Text", "text/plain", NULL}, {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"POST", "/deployments", create, ctx, "Create a deployment", NULL, "Deployments",
         "{\"type\":\"object\",\"required\":[\"template\"]}", NULL, created},
        {"GET", "/deployments", list, ctx, "List deployments (paged, newest first)", NULL,
         "Deployments", NULL, NULL, NULL},
        {"GET", "/deployments/{id}", show, ctx, "Show a deployment", NULL, "Deployments", NULL,
         NULL, one},
        {"DELETE", "/deployments/{id}", remove_deployment, ctx, "Delete a deployment", NULL,
         "Deployments", NULL, NULL, none},
        {"PATCH", "/deployments/{id}", reset, ctx, "Reset a stuck deletion to DELETE_FAILED",
         NULL, "Deployments", "{\"type\":\"object\"}", NULL, none},
        {"GET", "/deployments/{id}/template", show_template, ctx, "The stored template", NULL,
         "Deployments", NULL, NULL, text},
        {"GET", "/deployments/{id}/log", show_log, ctx, "Human log of the deployment", NULL,
         "Deployments", NULL, NULL, text},
        {"GET", "/deployments/{id}/outputs", show_outputs, ctx, "Outputs", NULL, "Deployments",
         NULL, NULL, NULL},
        {"GET", "/deployments/{id}/extrainfo", show_extrainfo, ctx, "Per-node details", NULL,
         "Deployments", NULL, NULL, NULL},
        {"GET", "/deployments/{id}/events", list_events, ctx, "Events (after=ID to resume)",
         NULL, "Deployments", NULL, NULL, NULL},
        {"GET", "/deployments/{id}/resources", list_resources, ctx, "Resources (paged)", NULL,
         "Resources", NULL, NULL, NULL},
        {"GET", "/deployments/{id}/resources/{rid}", show_resource, ctx, "One resource", NULL,
         "Resources", NULL, NULL, NULL},
    };
    int rc = orc_api_register_schema(api, "Deployment",
                                     "{\"type\":\"object\",\"required\":[\"uuid\",\"status\","
                                     "\"creationTime\",\"updateTime\",\"outputs\",\"task\","
                                     "\"createdBy\",\"links\"]}");

    if (rc < 0 && rc != ORC_ECONFLICT)
        return rc;
    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
