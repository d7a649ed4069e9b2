/*
 * /deployments (deployments.h): the REST contract of API.md on top of the
 * store, the engine and libtosca.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../engine/http_client.h"
#include "deployments.h"
#include "planner.h"
#include "quotas.h"
#include "store_reads.h"
#include "usage.h"
#include "templates.h"
#include "../base.h"
#include "../store/commit.h"
#include "../store/json.h"

#define DEFAULT_PAGE_SIZE 10
#define MAX_PAGE_SIZE 100

/* ---- request body of create ---- */

struct create_req {
    const char *template_text;
    const char *template_name; /* create: a template of the catalog instead of the text */
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

/* The body of a create, or of an update (template optional: the stored one
 * is kept). Fields absent from the body keep what c holds. */
static int parse_body(orc_api_req_t *req, const json_t *body, bool need_template,
                      struct create_req *c)
{
    const json_t *t = json_object_get(body, "template"), *p = json_object_get(body, "parameters");
    const json_t *cb = json_object_get(body, "callback"), *g = json_object_get(body, "userGroup");
    const json_t *name = json_object_get(body, "templateName");
    int rc;

    if (!json_is_object(body))
        return orc_api_req_fail(req, 400, "the body must be a JSON object");
    if (need_template && name && !json_is_null(name)) {
        if (t && !json_is_null(t))
            return orc_api_req_fail(req, 400, "give template or templateName, not both");
        if (!json_is_string(name))
            return orc_api_req_fail(req, 400, "templateName must be a string");
        c->template_name = json_string_value(name);
        t = NULL;
    } else if ((need_template || (t && !json_is_null(t))) &&
               (!json_is_string(t) || json_string_length(t) == 0))
        return orc_api_req_fail(req, 400, "A TOSCA template must be provided");
    if (json_is_string(t))
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
        return orc_api_req_fail(req, 400,
                                "providerTimeoutMins (%d) must not exceed "
                                "timeoutMins (%d)",
                                c->provider_timeout_mins, c->timeout_mins);
    return 0;
}

/* engine.callback_private: a callback whose host is a literal loopback, private or
 * link-local address (or localhost) is refused here; names are checked when the engine
 * connects (the address they resolve to then). */
static int check_callback(orc_api_req_t *req, const struct orc_deployments_api *ctx,
                          const char *url)
{
    const char *h = url ? strstr(url, "://") : NULL, *end, *at, *kind = NULL;
    char host[256];
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    size_t n;

    if (!ctx->callback_public_only || h == NULL)
        return 0;
    h += 3;
    end = h + strcspn(h, "/?#");
    at = memchr(h, '@', (size_t)(end - h));
    while (at) { /* user info: the host is after the last @ */
        h = at + 1;
        at = memchr(h, '@', (size_t)(end - h));
    }
    if (*h == '[') {
        n = strcspn(++h, "]");
    } else {
        n = strcspn(h, ":/?#");
    }
    snprintf(host, sizeof(host), "%.*s", (int)(n < sizeof(host) ? n : sizeof(host) - 1), h);
    if (strcasecmp(host, "localhost") == 0 ||
        (strlen(host) > 10 && strcasecmp(host + strlen(host) - 10, ".localhost") == 0))
        kind = "a loopback address";
    else if (inet_pton(AF_INET, host, &v4.sin_addr) == 1)
        kind = orc_addr_private_kind((struct sockaddr *)&v4);
    else if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1)
        kind = orc_addr_private_kind((struct sockaddr *)&v6);
    if (kind == NULL)
        return 0;
    return orc_api_req_fail(req, 400,
                            "callback %.200s targets %s: callbacks may only reach public "
                            "addresses (engine.callback_private)",
                            url, kind);
}

/* Template problems as one 400 message: every error with file:line:col. */
int orc_api_template_error(orc_api_req_t *req, const tosca_diags_t *d)
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

/* ---- planning off the loop (planner.h) ---- */

/* A create or an update waiting for its plan: the request's body, which c points
 * into, and what the rest of the handler (finish) needs. Owned by the deferred
 * request until the planner answers; freed if the request goes first. */
struct plan_wait {
    struct orc_deployments_api *ctx;
    orc_api_req_t *req;
    orc_plan_job_t *job; /* NULL once it answered */
    orc_api_handler_fn finish;
    json_t *body;
    struct create_req c;
    orc_deployment_t *d; /* update: the deployment as loaded */
    json_t *merged;      /* update: the parameters merged into the stored ones */
    /* the planner's answer, during finish */
    int rc;
    json_t *plan;
    const tosca_diags_t *diags;
};

static void plan_wait_free(struct plan_wait *w)
{
    json_decref(w->body);
    json_decref(w->merged);
    json_decref(w->plan);
    orc_deployment_free(w->d);
    orc_free(w);
}

static struct plan_wait *plan_wait_new(orc_api_req_t *req, struct orc_deployments_api *ctx,
                                       orc_api_handler_fn finish)
{
    struct plan_wait *w = orc_calloc(1, sizeof(*w));

    if (w != NULL) {
        w->ctx = ctx;
        w->req = req;
        w->finish = finish;
    }
    return w;
}

static void plan_wait_gone(orc_api_req_t *req, void *data)
{
    struct plan_wait *w = data;

    (void)req;
    orc_planner_abandon(w->job);
    plan_wait_free(w);
}

static void on_planned(void *data, int rc, json_t *plan, const tosca_diags_t *d)
{
    struct plan_wait *w = data;

    w->job = NULL;
    w->rc = rc;
    w->plan = plan;
    w->diags = d;
    orc_api_req_continue(w->req, w->finish, w);
    plan_wait_free(w);
}

/* Hands w->c's template and parameters to the planner and defers the request;
 * w->finish continues it with the plan. On failure the caller still owns w. */
static int plan_then_finish(orc_api_req_t *req, struct plan_wait *w)
{
    int rc = orc_planner_submit(w->ctx->planner, "template.yaml", w->c.template_text,
                                w->c.parameters, on_planned, w, &w->job);

    if (rc < 0)
        return orc_api_planner_refused(req, rc, w->ctx->planner);
    rc = orc_api_req_defer(req, plan_wait_gone, w);
    if (rc < 0) { /* not for a request its handler holds */
        orc_planner_abandon(w->job);
        return orc_api_req_fail(req, 500, "cannot wait for the plan: %s", orc_strerror(rc));
    }
    return 0;
}

int orc_api_planner_refused(orc_api_req_t *req, int rc, const struct orc_planner *p)
{
    if (rc == ORC_ELIMIT) {
        orc_api_set_header(req, "retry-after", "1");
        return orc_api_req_fail(req, 503, "%u templates are waiting to be read; retry shortly",
                                orc_planner_pending(p));
    }
    if (rc == ORC_ECANCELED)
        return orc_api_req_fail(req, 503, "the server is shutting down");
    return orc_api_req_fail(req, 500, "cannot read the template: %s", orc_strerror(rc));
}

int orc_api_plan_failed(orc_api_req_t *req, int rc, const tosca_diags_t *d)
{
    if (rc == ORC_ETOSCA || rc == ORC_ELIMIT)
        return orc_api_template_error(req, d);
    if (rc == ORC_ECANCELED)
        return orc_api_req_fail(req, 503, "the server is shutting down");
    if (rc < 0)
        return orc_api_req_fail(req, 500, "cannot read the template: %s", orc_strerror(rc));
    return 0;
}

/* In finish: 0 when the template loaded and planned, else the failure. */
static int plan_outcome(orc_api_req_t *req, const struct plan_wait *w)
{
    return orc_api_plan_failed(req, w->rc, w->diags);
}

/* ---- answers that acknowledge a write: sent once it is durable ---- */

/* A reply waiting for the group commit of the writes it acknowledges. It
 * outlives its request if the client goes away first. */
struct durable_reply {
    orc_commit_wait_t wait;
    orc_api_req_t *req; /* NULL: the request is gone */
    int status;
    json_t *body; /* NULL: none */
};

static void reply_gone(orc_api_req_t *req, void *data)
{
    struct durable_reply *dr = data;

    (void)req;
    dr->req = NULL;
}

static void on_reply_durable(orc_commit_wait_t *w, int status)
{
    struct durable_reply *dr = w->data;

    if (dr->req && status < 0)
        orc_api_send_error(dr->req, 503, "the store could not save the change: %s",
                           orc_strerror(status));
    else if (dr->req && dr->body)
        orc_api_send_json_new(dr->req, dr->status, json_incref(dr->body));
    else if (dr->req)
        orc_api_send_status(dr->req, dr->status);
    json_decref(dr->body);
    orc_free(dr);
}

/* Answers status (with body, stolen; NULL: none) once what the handler
 * stored is on disk: "a 201 means the deployment is on disk". */
int orc_api_reply_when_durable(orc_api_req_t *req, struct orc_commit_s *commit, int status,
                               json_t *body)
{
    struct durable_reply *dr = orc_calloc(1, sizeof(*dr));

    if (dr == NULL || orc_api_req_defer(req, reply_gone, dr) < 0) {
        orc_free(dr);
        json_decref(body);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    dr->req = req;
    dr->status = status;
    dr->body = body;
    dr->wait.data = dr;
    orc_commit_after(commit, &dr->wait, on_reply_durable);
    return 0;
}

static int reply_when_durable(orc_api_req_t *req, struct orc_deployments_api *ctx, int status,
                              json_t *body)
{
    return orc_api_reply_when_durable(req, ctx->commit, status, body);
}

static int send_deployment(orc_api_req_t *req, int status, const orc_deployment_t *d)
{
    char *text = NULL;
    size_t len = 0;
    int rc = orc_deployment_json_text(d, orc_api_req_base_url(req), &text, &len);

    if (rc < 0)
        return orc_api_req_fail(req, 500, "cannot render the deployment");
    rc = orc_api_send_body(req, status, "application/json", text, len);
    orc_free(text);
    return rc;
}

/* The answer to a store failure rc, whose message is errmsg. */
static int read_fail(orc_api_req_t *req, int rc, const char *errmsg, const char *uuid)
{
    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", uuid);
    if (rc == ORC_ECONFLICT)
        return orc_api_req_fail(req, 409, "%s", errmsg);
    return orc_api_req_store_fail(req, rc, errmsg);
}

static int store_fail(orc_api_req_t *req, struct orc_deployments_api *ctx, int rc, const char *uuid)
{
    return read_fail(req, rc, orc_store_errmsg(ctx->store), uuid);
}

bool orc_deployment_visible(const orc_identity_t *id, const orc_deployment_t *d)
{
    return orc_identity_is(id, d->created_by.issuer, d->created_by.subject) ||
           (d->user_group && orc_identity_in_group(id, d->user_group));
}

/* A userGroup the caller names must be one of the groups of their token. */
static int check_user_group(orc_api_req_t *req, const char *group)
{
    const orc_identity_t *id = orc_api_req_identity(req);

    if (group == NULL || id->anonymous || (id->roles & ORC_ROLE_ADMIN) ||
        orc_identity_in_group(id, group))
        return 0;
    return orc_api_req_fail(req, 403, "userGroup %s is not one of your groups", group);
}

/* limits.user_deployments: a user (admins aside) has at most that many deployments
 * that are not deleted. */
static int check_quota(orc_api_req_t *req, struct orc_deployments_api *ctx)
{
    const orc_identity_t *id = orc_api_req_identity(req);
    orc_dep_query_t q = {.created_by_issuer = id->issuer, .created_by_subject = id->subject,
                         .size = 1};
    orc_deployment_list_t l = {0};
    int64_t total;
    int rc;

    if (ctx->user_deployments == 0 || id->anonymous || (id->roles & ORC_ROLE_ADMIN))
        return 0;
    rc = orc_store_deployment_list(ctx->store, &q, &l);
    if (rc < 0)
        return store_fail(req, ctx, rc, "");
    total = l.total;
    orc_deployment_list_clear(&l);
    if (total < (int64_t)ctx->user_deployments)
        return 0;
    return orc_api_req_fail(req, 403,
                            "quota: %s has %lld deployments, the most one user may have "
                            "(limits.user_deployments = %u); delete one first",
                            id->subject, (long long)total, ctx->user_deployments);
}

/* Only the owner (or an admin) may change a deployment; members of its group see it. */
static int owner_only(orc_api_req_t *req, const orc_deployment_t *d)
{
    if (orc_identity_is(orc_api_req_identity(req), d->created_by.issuer, d->created_by.subject))
        return 0;
    return orc_api_req_fail(req, 403,
                            "only the owner of deployment %s (or an admin) may change it",
                            d->uuid);
}

/* Logs why the engine did not start what was stored (rc < 0); a plan it cannot run
 * (ORC_EFORMAT) the engine has marked failed and logged itself. */
static void not_started(int rc, const char *uuid, const char *what)
{
    if (rc < 0 && rc != ORC_EFORMAT)
        orc_log_ctx(ORC_LOG_ERROR, "api", &(orc_log_ctx_t){.deployment = uuid},
                    "%sstored but not started: %s", what, orc_strerror(rc));
}

/* The rest of a create, with the plan: stored, answered 201 once durable, started. */
static int create_finish(orc_api_req_t *req, void *data)
{
    struct plan_wait *w = data;
    struct orc_deployments_api *ctx = w->ctx;
    const struct create_req *c = &w->c;
    orc_deployment_t d = {0};
    int rc = plan_outcome(req, w);

    if (rc == 0)
        rc = check_quota(req, ctx); /* again: others may have been created meanwhile */
    if (rc == 0)
        rc = orc_quota_check(req, ctx->store, c->user_group, w->plan, NULL);
    if (rc < 0)
        return rc;
    d.created_by.issuer = (char *)orc_api_req_identity(req)->issuer;
    d.created_by.subject = (char *)orc_api_req_identity(req)->subject;
    d.user_group = (char *)c->user_group;
    d.callback = (char *)c->callback;
    d.template_text = (char *)c->template_text;
    d.parameters = c->parameters;
    d.plan = w->plan;
    d.timeout_mins = c->timeout_mins;
    d.provider_timeout_mins = c->provider_timeout_mins;
    d.max_providers_retry = c->max_providers_retry;
    d.keep_last_attempt = c->keep_last_attempt;
    d.task = ORC_TASK_DEPLOYER;
    rc = orc_store_deployment_insert(ctx->store, &d); /* durable before the 201 */
    if (rc < 0)
        return store_fail(req, ctx, rc, "");
    {
        json_t *j = NULL;
        if (orc_deployment_to_json(&d, orc_api_req_base_url(req), &j) < 0)
            rc = orc_api_req_fail(req, 500, "cannot render the deployment");
        else
            rc = reply_when_durable(req, ctx, 201, j); /* durable before the 201 */
    }
    not_started(orc_engine_create_plan(ctx->engine, d.uuid, w->plan), d.uuid, "");
    return rc;
}

/* templateName: the text of that template of the catalog, for the request's time. */
static int catalog_template(orc_api_req_t *req, struct orc_deployments_api *ctx,
                            struct create_req *c)
{
    char why[256], *text = NULL;
    int rc;

    if (c->template_name == NULL)
        return 0;
    if (ctx->catalog == NULL)
        return orc_api_req_fail(req, 400, "this server has no template catalog");
    rc = orc_catalog_text(ctx->catalog, c->template_name, &text, why, sizeof(why));
    if (rc == ORC_ENOTFOUND || rc == ORC_ECONFLICT)
        return orc_api_req_fail(req, rc == ORC_ENOTFOUND ? 400 : 409, "templateName: %s", why);
    if (rc < 0)
        return orc_api_req_store_fail(req, rc, why);
    c->template_text = orc_api_req_strdup(req, text);
    orc_free(text);
    return 0;
}

/* Checks the request, then plans the template off the loop (create_finish). */
static int create(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    struct plan_wait *w = plan_wait_new(req, ctx, create_finish);
    int rc = w ? orc_api_req_json(req, &w->body) : orc_api_req_fail(req, 500, "out of memory");

    if (rc == 0)
        rc = parse_body(req, w->body, true, &w->c);
    if (rc == 0)
        rc = catalog_template(req, ctx, &w->c);
    if (rc == 0)
        rc = check_user_group(req, w->c.user_group);
    if (rc == 0)
        rc = check_callback(req, ctx, w->c.callback);
    if (rc == 0)
        rc = check_quota(req, ctx);
    if (rc == 0)
        rc = plan_then_finish(req, w);
    if (rc < 0 && w)
        plan_wait_free(w);
    return rc;
}

/* ---- lists ---- */

int orc_api_uint_query(orc_api_req_t *req, const char *name, uint32_t dflt, uint32_t max,
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

/* Appends s percent-encoded for a query value: RFC 3986 unreserved
 * characters and the harmless delimiters (",:@/") stay as they are. */
static size_t pct_encode(const char *s, char *out, size_t n, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~,:@/", c) != NULL) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

/* The request's query parameters but page and size, as "&k=v&...", so that
 * the paging links keep the filters and the sort. */
static char *other_params(orc_api_req_t *req)
{
    size_t count = orc_api_req_query_count(req), size = 1, n = 0;
    char *out;

    for (size_t i = 0; i < count; i++) {
        const char *k, *v;
        orc_api_req_query_at(req, i, &k, &v);
        size += 3 * (strlen(k) + strlen(v)) + 2;
    }
    out = orc_api_req_alloc(req, size + 4);
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        const char *k, *v;
        orc_api_req_query_at(req, i, &k, &v);
        if (strcmp(k, "page") == 0 || strcmp(k, "size") == 0)
            continue;
        out[n++] = '&';
        n = pct_encode(k, out, n, size + 4);
        out[n++] = '=';
        n = pct_encode(v, out, n, size + 4);
    }
    out[n] = '\0';
    return out;
}

/* {"links":[first, self, next, last], "content":[...], "page":{...}} (API.md). */
json_t *orc_api_paged(orc_api_req_t *req, const char *path, json_t *content, uint32_t page,
                      uint32_t size, int64_t total)
{
    int64_t pages = size ? (total + size - 1) / size : 1;
    json_t *links = json_array();
    const char *rel[] = {"first", "self", "next", "last"};
    int64_t at[] = {0, page, (int64_t)page + 1, pages > 0 ? pages - 1 : 0};
    const char *more = other_params(req);

    for (int i = 0; i < 4; i++) {
        if (i == 2 && at[2] >= pages)
            continue;
        json_array_append_new(links, json_pack("{s:s,s:s}", "rel", rel[i], "href",
                                               orc_api_req_url(req, "%s?page=%lld&size=%u%s", path,
                                                               (long long)at[i], size, more)));
    }
    return json_pack("{s:o,s:o,s:{s:i,s:I,s:I,s:i}}", "links", links, "content", content, "page",
                     "size", (int)size, "totalElements", (json_int_t)total, "totalPages",
                     (json_int_t)pages, "number", (int)page);
}

/* createdBy, userGroup, and what the caller may see (API.md "Auth"). */
static int list_filters(orc_api_req_t *req, orc_dep_query_t *q)
{
    const orc_identity_t *id = orc_api_req_identity(req);
    const char *by = orc_api_req_query(req, "createdBy");
    bool admin = (id->roles & ORC_ROLE_ADMIN) != 0;

    if (by && strcmp(by, "me") == 0) {
        q->created_by_issuer = id->issuer;
        q->created_by_subject = id->subject;
    } else if (by && *by) {
        const char *at = strrchr(by, '@');
        char *subject;
        if (at == NULL)
            return orc_api_req_fail(req, 400, "createdBy must be 'me' or subject@issuer");
        subject = orc_api_req_strdup(req, by);
        subject[at - by] = '\0';
        q->created_by_subject = subject;
        q->created_by_issuer = at + 1;
        if (!admin && (strcmp(subject, id->subject) != 0 || strcmp(at + 1, id->issuer) != 0))
            return orc_api_req_fail(req, 403, "createdBy: only admins may list another user's "
                                              "deployments");
    }
    q->user_group = orc_api_req_query(req, "userGroup");
    if (q->user_group && !admin && !orc_identity_in_group(id, q->user_group))
        return orc_api_req_fail(req, 403, "userGroup %s is not one of your groups",
                                q->user_group);
    if (!admin) {
        char *groups = json_dumps(id->groups, JSON_COMPACT);
        q->viewer_issuer = id->issuer;
        q->viewer_subject = id->subject;
        q->viewer_groups = groups ? orc_api_req_strdup(req, groups) : "[]";
        free(groups);
    }
    return 0;
}

/* A list read off the loop: the query, with copies of its strings (the request may be
 * gone while it runs), and the rows. */
struct list_read {
    struct orc_api_read base;
    orc_dep_query_t q;
    char *strings[6];
    orc_deployment_list_t l;
};

static void list_read_release(struct orc_api_read *r)
{
    struct list_read *lr = (struct list_read *)r;

    for (size_t i = 0; i < sizeof(lr->strings) / sizeof(lr->strings[0]); i++)
        orc_free(lr->strings[i]);
    orc_deployment_list_clear(&lr->l);
    orc_free(lr);
}

/* Points *field at a copy of itself that the read owns. */
static int own_string(struct list_read *lr, size_t slot, const char **field)
{
    if (*field == NULL)
        return 0;
    lr->strings[slot] = orc_strdup(*field);
    *field = lr->strings[slot];
    return *field ? 0 : ORC_ENOMEM;
}

static int own_query(struct list_read *lr)
{
    orc_dep_query_t *q = &lr->q;
    const char **fields[] = {&q->created_by_issuer, &q->created_by_subject, &q->user_group,
                             &q->viewer_issuer,     &q->viewer_subject,     &q->viewer_groups};
    int rc = 0;

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && rc == 0; i++)
        rc = own_string(lr, i, fields[i]);
    return rc;
}

static int list_read_run(orc_store_t *s, orc_read_t *r)
{
    struct list_read *lr = (struct list_read *)r;

    return orc_store_deployment_list(s, &lr->q, &lr->l);
}

static int list_read_finish(orc_api_req_t *req, struct orc_api_read *r)
{
    struct list_read *lr = (struct list_read *)r;
    json_t *content;

    if (r->read.rc < 0)
        return read_fail(req, r->read.rc, r->read.errmsg, "");
    content = json_array();
    for (size_t i = 0; i < lr->l.count; i++) {
        json_t *j = NULL;
        if (orc_deployment_to_json(&lr->l.items[i], orc_api_req_base_url(req), &j) == 0)
            json_array_append_new(content, j);
    }
    return orc_api_send_json_new(
        req, 200, orc_api_paged(req, "/deployments", content, lr->q.page, lr->q.size, lr->l.total));
}

static int list(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    orc_dep_query_t q = {0};
    const char *ex = orc_api_req_query(req, "excludedStatus");
    struct list_read *lr;
    int rc;

    if ((rc = orc_api_uint_query(req, "page", 0, 1000000, &q.page)) < 0 ||
        (rc = orc_api_uint_query(req, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &q.size)) < 0)
        return rc;
    if (q.size == 0)
        q.size = DEFAULT_PAGE_SIZE;
    if (orc_dep_sort_parse(orc_api_req_query(req, "sort"), &q.sort) < 0)
        return orc_api_req_fail(req, 400, "sort: unknown property or direction");
    if (ex && orc_dep_status_mask_parse(ex, &q.excluded_statuses) < 0)
        return orc_api_req_fail(req, 400, "excludedStatus: '%s' is not a list of statuses", ex);
    if ((rc = list_filters(req, &q)) < 0)
        return rc;
    lr = orc_calloc(1, sizeof(*lr));
    if (lr != NULL)
        lr->q = q;
    if (lr == NULL || own_query(lr) < 0) {
        if (lr != NULL)
            list_read_release(&lr->base);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    lr->base = (struct orc_api_read){
        .fn = list_read_run, .finish = list_read_finish, .release = list_read_release};
    return orc_api_store_read(req, ctx->readers, ctx->store, &lr->base);
}

/* ---- one deployment ---- */

/* The deployment of the path's {id}; with_spec: also its template,
 * parameters and plan (a read many times dearer). */
static int load_deployment(orc_api_req_t *req, struct orc_deployments_api *ctx, bool with_spec,
                           orc_deployment_t **d)
{
    const char *id = orc_api_req_param(req, "id");
    int rc;

    *d = NULL;
    if (id == NULL || !orc_uuid_valid(id))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    rc = with_spec ? orc_store_deployment_get(ctx->store, id, d)
                   : orc_store_deployment_get_head(ctx->store, id, d);
    if (rc == 0 && ((*d)->deleted || !orc_deployment_visible(orc_api_req_identity(req), *d))) {
        orc_deployment_free(*d);
        *d = NULL;
        rc = ORC_ENOTFOUND;
    }
    return rc < 0 ? store_fail(req, ctx, rc, id) : 0;
}

static int load(orc_api_req_t *req, struct orc_deployments_api *ctx, orc_deployment_t **d)
{
    return load_deployment(req, ctx, false, d);
}

/* A deployment's read off the loop (GET): its head, then the answer. */
struct show_read {
    struct orc_api_read base;
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;
};

static void show_read_release(struct orc_api_read *r)
{
    struct show_read *sr = (struct show_read *)r;

    orc_deployment_free(sr->d);
    orc_free(sr);
}

static int show_read_run(orc_store_t *s, orc_read_t *r)
{
    struct show_read *sr = (struct show_read *)r;

    return orc_store_deployment_get_head(s, sr->uuid, &sr->d);
}

static int show_read_finish(orc_api_req_t *req, struct orc_api_read *r)
{
    struct show_read *sr = (struct show_read *)r;

    if (r->read.rc == 0 &&
        (sr->d->deleted || !orc_deployment_visible(orc_api_req_identity(req), sr->d)))
        r->read.rc = ORC_ENOTFOUND;
    if (r->read.rc < 0)
        return read_fail(req, r->read.rc, r->read.errmsg, sr->uuid);
    return send_deployment(req, 200, sr->d);
}

static int show(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    const char *id = orc_api_req_param(req, "id");
    struct show_read *sr;

    if (id == NULL || !orc_uuid_valid(id))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    sr = orc_calloc(1, sizeof(*sr));
    if (sr == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    snprintf(sr->uuid, sizeof(sr->uuid), "%s", id);
    sr->base = (struct orc_api_read){
        .fn = show_read_run, .finish = show_read_finish, .release = show_read_release};
    return orc_api_store_read(req, ctx->readers, ctx->store, &sr->base);
}

static int remove_deployment(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    const char *force = orc_api_req_query(req, "force");
    orc_deployment_t *d;
    int rc = load(req, ctx, &d);

    if (rc == 0 && (rc = owner_only(req, d)) < 0)
        orc_deployment_free(d);
    if (rc < 0)
        return rc;
    if (force && strcmp(force, "true") != 0 && strcmp(force, "false") != 0) {
        orc_deployment_free(d);
        return orc_api_req_fail(req, 400, "force must be true or false, not '%s'", force);
    }
    if (d->status == ORC_DEP_DELETE_IN_PROGRESS || d->status == ORC_DEP_DELETE_COMPLETE) {
        rc = orc_api_req_fail(req, 409, "The deployment %s is already being deleted", d->uuid);
        goto out;
    }
    rc = orc_store_deployment_set_status(ctx->store, d->uuid, d->version,
                                         ORC_DEP_DELETE_IN_PROGRESS, NULL, NULL);
    if (rc == ORC_ECONFLICT) {
        rc = orc_api_req_fail(req, 409, "The deployment %s changed meanwhile; retry", d->uuid);
        goto out;
    }
    if (rc < 0) {
        rc = store_fail(req, ctx, rc, d->uuid);
        goto out;
    }
    rc = orc_engine_delete_opts(ctx->engine, d->uuid, force && strcmp(force, "true") == 0);
    if (rc == 0 || rc == ORC_ECONFLICT)
        rc = reply_when_durable(req, ctx, 204, NULL);
    else
        rc = orc_api_req_fail(req, 500, "cannot start the delete: %s", orc_strerror(rc));
out:
    orc_deployment_free(d);
    return rc;
}

/* A deletion the engine may still be stuck in (a provider that never
 * answers): the engine lets go of it, and it is DELETE_FAILED. */
static int reset_deletion(orc_api_req_t *req, struct orc_deployments_api *ctx,
                          const orc_deployment_t *d)
{
    int rc;

    orc_engine_abandon(ctx->engine, d->uuid);
    rc = orc_store_deployment_set_status(ctx->store, d->uuid, d->version, ORC_DEP_DELETE_FAILED,
                                         "reset by the user", NULL);
    return rc == 0 ? reply_when_durable(req, ctx, 204, NULL) : store_fail(req, ctx, rc, d->uuid);
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
    if (rc == 0)
        rc = owner_only(req, d);
    if (rc < 0)
        goto out;
    st = json_string_value(json_object_get(body, "status"));
    if (st == NULL || strcmp(st, "DELETE_FAILED") != 0)
        rc = orc_api_req_fail(req, 400, "only {\"status\":\"DELETE_FAILED\"} is accepted");
    else if (d->status != ORC_DEP_DELETE_IN_PROGRESS)
        rc = orc_api_req_fail(req, 409, "The deployment %s is %s, not a stuck deletion", d->uuid,
                              orc_dep_status_name(d->status));
    else
        rc = reset_deletion(req, ctx, d);
out:
    orc_deployment_free(d);
    json_decref(body);
    return rc;
}

static int show_template(orc_api_req_t *req, void *data)
{
    orc_deployment_t *d;
    int rc = load_deployment(req, data, true, &d);

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

/* A deployment's resources read off the loop: its head (who may see it), then one page
 * of its resources (list) or the one resource rid (show). */
struct resources_read {
    struct orc_api_read base;
    char uuid[ORC_UUID_LEN];
    char *rid;       /* NULL: the list */
    char *node_type; /* the list's type filter; NULL: any */
    orc_res_query_t q;
    orc_deployment_t *d;
    orc_resource_list_t l;
    orc_resource_t *r;
};

static void resources_read_release(struct orc_api_read *r)
{
    struct resources_read *rr = (struct resources_read *)r;

    orc_free(rr->node_type);
    orc_free(rr->rid);
    orc_deployment_free(rr->d);
    orc_resource_list_clear(&rr->l);
    orc_resource_free(rr->r);
    orc_free(rr);
}

static int resources_read_run(orc_store_t *s, orc_read_t *r)
{
    struct resources_read *rr = (struct resources_read *)r;
    int rc = orc_store_deployment_get_head(s, rr->uuid, &rr->d);

    if (rc < 0)
        return rc;
    if (rr->rid != NULL)
        return orc_uuid_valid(rr->rid) ? orc_store_resource_get(s, rr->uuid, rr->rid, &rr->r)
                                       : ORC_ENOTFOUND;
    rr->q.deployment_uuid = rr->uuid;
    rr->q.node_type = rr->node_type;
    return orc_store_resource_list(s, &rr->q, &rr->l);
}

static int resources_list_answer(orc_api_req_t *req, struct resources_read *rr)
{
    json_t *content = json_array();

    for (size_t i = 0; i < rr->l.count; i++) {
        json_t *j = NULL;
        if (orc_resource_to_json(&rr->l.items[i], orc_api_req_base_url(req), &j) == 0)
            json_array_append_new(content, j);
    }
    return orc_api_send_json_new(
        req, 200,
        orc_api_paged(req,
                      orc_api_req_url(req, "/deployments/%s/resources", rr->uuid) +
                          strlen(orc_api_req_base_url(req)),
                      content, rr->q.page, rr->q.size, rr->l.total));
}

static int resources_read_finish(orc_api_req_t *req, struct orc_api_read *r)
{
    struct resources_read *rr = (struct resources_read *)r;
    bool visible =
        rr->d && !rr->d->deleted && orc_deployment_visible(orc_api_req_identity(req), rr->d);
    json_t *j = NULL;

    if (rr->d == NULL || !visible)
        return read_fail(req, rr->d ? ORC_ENOTFOUND : r->read.rc, r->read.errmsg, rr->uuid);
    if (rr->rid == NULL)
        return r->read.rc < 0 ? read_fail(req, r->read.rc, r->read.errmsg, rr->uuid)
                              : resources_list_answer(req, rr);
    if (r->read.rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "The resource %s doesn't exist in deployment %s", rr->rid,
                                rr->uuid);
    if (r->read.rc < 0)
        return read_fail(req, r->read.rc, r->read.errmsg, rr->uuid);
    if (orc_resource_to_json(rr->r, orc_api_req_base_url(req), &j) < 0)
        return orc_api_req_fail(req, 500, "cannot render the resource");
    return orc_api_send_json_new(req, 200, j);
}

/* The read of the path's deployment {id} (and resource {rid}, when rid is not NULL). */
static int resources_read(orc_api_req_t *req, struct orc_deployments_api *ctx,
                          struct resources_read *rr, const char *rid)
{
    const char *id = orc_api_req_param(req, "id");

    if (id == NULL || !orc_uuid_valid(id)) {
        resources_read_release(&rr->base);
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    }
    snprintf(rr->uuid, sizeof(rr->uuid), "%s", id);
    if (rid != NULL && (rr->rid = orc_strdup(rid)) == NULL) {
        resources_read_release(&rr->base);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    rr->base = (struct orc_api_read){.fn = resources_read_run,
                                     .finish = resources_read_finish,
                                     .release = resources_read_release};
    return orc_api_store_read(req, ctx->readers, ctx->store, &rr->base);
}

static int list_resources(orc_api_req_t *req, void *data)
{
    const char *type = orc_api_req_query(req, "type");
    struct resources_read *rr = orc_calloc(1, sizeof(*rr));
    int rc;

    if (rr == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    if ((rc = orc_api_uint_query(req, "page", 0, 1000000, &rr->q.page)) < 0 ||
        (rc = orc_api_uint_query(req, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &rr->q.size)) < 0 ||
        (type != NULL && (rr->node_type = orc_strdup(type)) == NULL)) {
        resources_read_release(&rr->base);
        return rc < 0 ? rc : orc_api_req_fail(req, 500, "out of memory");
    }
    rr->q.size = rr->q.size ? rr->q.size : DEFAULT_PAGE_SIZE;
    return resources_read(req, data, rr, NULL);
}

static int show_resource(orc_api_req_t *req, void *data)
{
    const char *rid = orc_api_req_param(req, "rid");
    struct resources_read *rr = orc_calloc(1, sizeof(*rr));

    if (rr == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    return resources_read(req, data, rr, rid ? rid : "");
}

/* ---- events, log, extrainfo ---- */

static int events_of(orc_api_req_t *req, struct orc_deployments_api *ctx, orc_deployment_t **d,
                     orc_event_list_t *l)
{
    const char *after = orc_api_req_query(req, "after");
    int rc = load(req, ctx, d);

    if (rc < 0)
        return rc;
    rc = orc_store_event_list(ctx->store, (*d)->uuid, after ? atoll(after) : 0, 10000, l);
    return rc < 0 ? store_fail(req, ctx, rc, (*d)->uuid) : 0;
}

/* v (stolen) with the deployment's secret inputs masked (its plan is read for them). */
static json_t *masked(struct orc_deployments_api *ctx, const char *uuid, json_t *v)
{
    orc_deployment_t *full = NULL;

    if (orc_store_deployment_get(ctx->store, uuid, &full) == 0)
        v = orc_engine_mask_secrets(full->plan, v);
    orc_deployment_free(full);
    return v;
}

/* The human log: one line per event. */
static char *text_add(char *text, size_t *len, const char *add)
{
    size_t n = strlen(add);
    char *nt = orc_realloc(text, *len + n + 1);

    if (nt == NULL)
        return text;
    memcpy(nt + *len, add, n + 1);
    *len += n;
    return nt;
}

/* After the events: the tail of each workload's output that gpu-agent sent
 * (resource attribute agent.log, engine/agent.c), one section per
 * workload. */
static char *append_workload_logs(void *data, const orc_deployment_t *d, char *text, size_t *len)
{
    struct orc_deployments_api *ctx = data;
    orc_res_query_t q = {.deployment_uuid = d->uuid, .oldest_first = true};
    orc_resource_list_t l = {0};

    if (orc_store_resource_list(ctx->store, &q, &l) < 0)
        return text;
    for (size_t i = 0; i < l.count; i++) {
        json_t *logs = json_object_get(json_object_get(l.items[i].attributes, "agent"), "log");
        const char *wl;
        json_t *v;
        json_object_foreach(logs, wl, v)
        {
            char *head = orc_asprintf("\n==> %s[%d] workload %s output (last %zu bytes) <==\n",
                                      l.items[i].node_name, l.items[i].instance_index, wl,
                                      json_string_length(v));
            if (head)
                text = text_add(text, len, head);
            orc_free(head);
            text = text_add(text, len, json_string_value(v) ? json_string_value(v) : "");
        }
    }
    orc_resource_list_clear(&l);
    return text;
}

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
        text = append_workload_logs(data, d, text, &len);
    if (rc == 0) {
        json_t *shown = masked(data, d->uuid, json_stringn(text ? text : "", len));
        rc = orc_api_send_text(req, 200, json_string_value(shown) ? json_string_value(shown) : "",
                               json_string_length(shown));
        json_decref(shown);
    }
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
    rc = rc < 0 ? store_fail(req, ctx, rc, d->uuid)
                : orc_api_send_json_new(req, 200, masked(ctx, d->uuid, arr));
    if (rc < 0)
        json_decref(arr);
    orc_resource_list_clear(&l);
    orc_deployment_free(d);
    return rc;
}

/* ---- update ---- */

#define UPDATABLE                                                                                  \
    (ORC_DEP_MASK(ORC_DEP_CREATE_COMPLETE) | ORC_DEP_MASK(ORC_DEP_UPDATE_COMPLETE) |               \
     ORC_DEP_MASK(ORC_DEP_UPDATE_FAILED))

/* What an update stores: the new template and plan, the parameters merged
 * into the stored ones, the options the body gives, UPDATE_IN_PROGRESS. */
static int store_update(orc_api_req_t *req, struct orc_deployments_api *ctx,
                        const orc_deployment_t *d, const struct create_req *c, json_t *plan)
{
    orc_deployment_t v = {
        .status = ORC_DEP_UPDATE_IN_PROGRESS,
        .template_text = (char *)c->template_text,
        .parameters = c->parameters,
        .plan = plan,
        .callback = (char *)c->callback,
        .timeout_mins = c->timeout_mins,
        .provider_timeout_mins = c->provider_timeout_mins,
        .max_providers_retry = c->max_providers_retry,
        .keep_last_attempt = c->keep_last_attempt,
    };
    orc_dep_update_t u = {.uuid = d->uuid,
                          .expect_version = d->version,
                          .from_statuses = UPDATABLE,
                          .values = &v,
                          .set = ORC_DEP_F_STATUS | ORC_DEP_F_STATUS_REASON | ORC_DEP_F_TEMPLATE |
                                 ORC_DEP_F_PARAMETERS | ORC_DEP_F_PLAN | ORC_DEP_F_OPTIONS |
                                 ORC_DEP_F_CALLBACK};
    int rc = orc_store_deployment_update(ctx->store, &u, NULL);

    if (rc == ORC_ECONFLICT)
        return orc_api_req_fail(req, 409, "The deployment %s changed meanwhile; retry", d->uuid);
    return rc < 0 ? store_fail(req, ctx, rc, d->uuid) : 0;
}

/* The stored options and parameters, overridden by what the body says. */
static int merge_request(orc_api_req_t *req, const orc_deployment_t *d, const json_t *body,
                         struct create_req *c, json_t **merged)
{
    int rc;

    memset(c, 0, sizeof(*c));
    c->template_text = d->template_text;
    c->callback = d->callback;
    c->timeout_mins = d->timeout_mins;
    c->provider_timeout_mins = d->provider_timeout_mins;
    c->max_providers_retry = d->max_providers_retry;
    c->keep_last_attempt = d->keep_last_attempt;
    rc = parse_body(req, body, false, c);
    if (rc < 0)
        return rc;
    *merged = d->parameters ? json_deep_copy(d->parameters) : json_object();
    if (*merged == NULL || (c->parameters && json_object_update(*merged, c->parameters) < 0))
        return orc_api_req_fail(req, 500, "out of memory");
    c->parameters = *merged;
    return 0;
}

/* Whether d may be updated now: 0, or 409. */
static int check_updatable(orc_api_req_t *req, struct orc_deployments_api *ctx,
                           const orc_deployment_t *d)
{
    if ((UPDATABLE & ORC_DEP_MASK(d->status)) && !orc_engine_busy(ctx->engine, d->uuid))
        return 0;
    return orc_api_req_fail(req, 409,
                            "The deployment %s is %s: only CREATE_COMPLETE, UPDATE_COMPLETE "
                            "or UPDATE_FAILED deployments can be updated",
                            d->uuid, orc_dep_status_name(d->status));
}

/* The rest of an update, with the plan: stored (unless the deployment changed
 * meanwhile: 409), answered 202 once durable, started. */
static int update_finish(orc_api_req_t *req, void *data)
{
    struct plan_wait *w = data;
    struct orc_deployments_api *ctx = w->ctx;
    int rc = plan_outcome(req, w);

    if (rc == 0)
        rc = check_updatable(req, ctx, w->d);
    if (rc == 0) /* its group's quota, less what it holds now */
        rc = orc_quota_check(req, ctx->store, w->d->user_group, w->plan, w->d->uuid);
    if (rc == 0)
        rc = store_update(req, ctx, w->d, &w->c, w->plan);
    if (rc < 0)
        return rc;
    rc = reply_when_durable(req, ctx, 202, NULL);
    not_started(orc_engine_update(ctx->engine, w->d->uuid), w->d->uuid, "its update ");
    return rc;
}

/* Checks the request, then plans the new template off the loop (update_finish). */
static int update(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    struct plan_wait *w = plan_wait_new(req, ctx, update_finish);
    int rc = w ? orc_api_req_json(req, &w->body) : orc_api_req_fail(req, 500, "out of memory");

    if (rc == 0)
        rc = load_deployment(req, ctx, true, &w->d);
    if (rc == 0)
        rc = owner_only(req, w->d);
    if (rc == 0)
        rc = check_updatable(req, ctx, w->d);
    if (rc == 0)
        rc = merge_request(req, w->d, w->body, &w->c, &w->merged);
    if (rc == 0)
        rc = check_callback(req, ctx, w->c.callback);
    if (rc == 0)
        rc = plan_then_finish(req, w);
    if (rc < 0 && w)
        plan_wait_free(w);
    return rc;
}

/* ---- resource actions ---- */

static int resource_action(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    const char *rid = orc_api_req_param(req, "rid"), *type;
    orc_deployment_t *d = NULL;
    orc_resource_t *r = NULL;
    json_t *body = NULL;
    char why[320] = "";
    int rc = orc_api_req_json(req, &body);

    if (rc == 0)
        rc = load(req, ctx, &d);
    if (rc == 0)
        rc = owner_only(req, d);
    if (rc < 0)
        goto out;
    type = json_string_value(json_object_get(body, "type"));
    if (rid == NULL || !orc_uuid_valid(rid) ||
        orc_store_resource_get(ctx->store, d->uuid, rid, &r) < 0)
        rc = orc_api_req_fail(req, 404, "The resource %s doesn't exist in deployment %s",
                              rid ? rid : "", d->uuid);
    else if (type == NULL || (strcmp(type, "start") != 0 && strcmp(type, "stop") != 0))
        rc = orc_api_req_fail(req, 400, "type must be \"start\" or \"stop\"");
    else
        rc = orc_engine_resource_action(ctx->engine, d->uuid, rid, strcmp(type, "start") == 0, why,
                                        sizeof(why));
    if (rc == ORC_ECONFLICT)
        rc = orc_api_req_fail(req, 409, "The deployment %s is being worked on; retry later",
                              d->uuid);
    else if (rc == ORC_EINVAL && why[0])
        rc = orc_api_req_fail(req, 400, "%s", why);
    else if (rc == ORC_ENOTFOUND)
        rc = orc_api_req_fail(req, 404, "The resource %s doesn't exist in deployment %s", rid,
                              d->uuid);
    else if (rc == 0)
        rc = reply_when_durable(req, ctx, 202, NULL);
out:
    orc_resource_free(r);
    orc_deployment_free(d);
    json_decref(body);
    return rc;
}

/* ---- registration ---- */

/* The fields of a create or update body after "template" (OpenAPI schema text). */
#define BODY_FIELDS                                                                                \
    "\"description\":\"the TOSCA template (YAML)\"},\"parameters\":{\"type\":\"object\","          \
    "\"nullable\":true,\"description\":\"the template's inputs\"},"                                \
    "\"callback\":{\"type\":\"string\",\"nullable\":true,\"pattern\":\"^https?:\","                \
    "\"description\":\"gets the deployment JSON when it completes or fails\"},"                    \
    "\"timeoutMins\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000000,"                   \
    "\"nullable\":true,\"description\":\"overall deadline\"},"                                     \
    "\"providerTimeoutMins\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000000,"           \
    "\"nullable\":true,\"description\":\"deadline of each site; at most timeoutMins\"},"           \
    "\"maxProvidersRetry\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000000,"             \
    "\"nullable\":true,\"description\":\"how many ranked sites to try\"},"                         \
    "\"keepLastAttempt\":{\"nullable\":true,\"oneOf\":[{\"type\":\"boolean\"},"                    \
    "{\"type\":\"string\",\"enum\":[\"true\",\"false\"]}],"                                        \
    "\"description\":\"keep what the last site made when it fails\"},"                             \
    "\"userGroup\":{\"type\":\"string\",\"nullable\":true}},"

int orc_api_deployments_register(orc_api_t *api, struct orc_deployments_api *ctx)
{
    /* error statuses with a JSON body and no schema get the error JSON's (openapi.c) */
    static const orc_api_response_doc_t created[] = {
        {201, "The deployment, stored as CREATE_IN_PROGRESS; the engine works on it",
         "application/json", "{\"$ref\":\"#/components/schemas/Deployment\"}"},
        {400, "Bad body or an invalid template (each error with file:line:col)", "application/json",
         NULL},
        {403,
         "userGroup is not one of the caller's groups, or its group's quota would be "
         "passed (docs/api.md \"Quotas\")",
         "application/json", NULL},
        {409, "templateName names a retired template of the catalog", "application/json", NULL},
        {415, "The body is not JSON", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t listed[] = {
        {200, "A page of deployments", "application/json",
         "{\"$ref\":\"#/components/schemas/DeploymentPage\"}"},
        {400, "A bad query parameter", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t one[] = {
        {200, "The deployment", "application/json",
         "{\"$ref\":\"#/components/schemas/Deployment\"}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t none[] = {
        {204, "Accepted: DELETE_IN_PROGRESS until the engine is done", NULL, NULL},
        {404, "No such deployment", "application/json", NULL},
        {409, "Already DELETE_IN_PROGRESS", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t reset_docs[] = {
        {204, "Reset: the deployment is DELETE_FAILED", NULL, NULL},
        {400, "A body other than {\"status\":\"DELETE_FAILED\"}", "application/json", NULL},
        {404, "No such deployment", "application/json", NULL},
        {409, "Not a stuck deletion (only from DELETE_IN_PROGRESS)", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t updated[] = {
        {202, "Accepted: the engine applies the update", NULL, NULL},
        {400, "Bad body or an invalid template (each error with file:line:col)", "application/json",
         NULL},
        {403, "Not the owner, or its group's quota would be passed", "application/json", NULL},
        {404, "No such deployment", "application/json", NULL},
        {409, "Not allowed in the deployment's status", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t acted[] = {
        {202, "Accepted: the engine starts or stops the resource", NULL, NULL},
        {400, "Unknown type, or not allowed from the resource's state", "application/json", NULL},
        {404, "No such deployment or resource", "application/json", NULL},
        {409, "The deployment is being worked on", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t text[] = {
        {200, "Text", "text/plain", "{\"type\":\"string\"}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t outputs_docs[] = {
        {200, "The template's outputs, evaluated ({} while there are none)", "application/json",
         "{\"type\":\"object\"}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t extrainfo_docs[] = {
        {200, "One entry per node instance, oldest first", "application/json",
         "{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/NodeInfo\"}}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t resources_docs[] = {
        {200, "A page of the deployment's resources", "application/json",
         "{\"$ref\":\"#/components/schemas/ResourcePage\"}"},
        {400, "A bad query parameter", "application/json", NULL},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t resource_docs[] = {
        {200, "The resource", "application/json", "{\"$ref\":\"#/components/schemas/Resource\"}"},
        {404, "No such deployment, or no such resource in it", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_param_doc_t list_query[] = {
        {"createdBy", "me, or subject@issuer", NULL, false},
        {"userGroup", "only the deployments of this user group", NULL, false},
        {"excludedStatus", "statuses to leave out, comma-separated",
         "{\"type\":\"string\",\"pattern\":\"^[A-Z_]+(,[A-Z_]+)*$\"}", false},
        {"page", "0-based page number", "{\"type\":\"integer\",\"minimum\":0}", false},
        {"size", "page size: default 10 (also for 0), at most 100",
         "{\"type\":\"integer\",\"minimum\":0}", false},
        {"sort",
         "createdAt, creationTime, updatedAt, updateTime or status, then ,asc (the default) or "
         ",desc; without it newest first",
         "{\"type\":\"string\",\"pattern\":\"^(createdAt|creationTime|updatedAt|updateTime|"
         "status)(,([aA][sS][cC]|[dD][eE][sS][cC]))?$\"}",
         false},
        {NULL, NULL, NULL, false}};
    static const orc_api_param_doc_t resource_query[] = {
        {"type", "only the resources of this TOSCA node type", NULL, false},
        {"page", "0-based page number", "{\"type\":\"integer\",\"minimum\":0}", false},
        {"size", "page size: default 10 (also for 0), at most 100",
         "{\"type\":\"integer\",\"minimum\":0}", false},
        {NULL, NULL, NULL, false}};
    static const struct {
        const char *name, *schema;
    } schemas[] = {
        {"Uuid",
         "{\"type\":\"string\",\"description\":\"A time-ordered UUID (version 7)\","
         "\"pattern\":\"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$\"}"},
        {"Time", "{\"type\":\"string\",\"description\":\"UTC to the minute: yyyy-MM-dd'T'HH:mmZ\","
                 "\"pattern\":\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}\\\\+0000$\","
                 "\"example\":\"2026-11-26T15:24+0000\"}"},
        {"Link",
         "{\"type\":\"object\",\"required\":[\"rel\",\"href\"],\"additionalProperties\":false,"
         "\"properties\":{\"rel\":{\"type\":\"string\"},\"href\":{\"type\":\"string\","
         "\"description\":\"absolute URL\",\"pattern\":\"^https?://\"}}}"},
        {"DeploymentStatus",
         "{\"type\":\"string\",\"enum\":[\"CREATE_IN_PROGRESS\",\"CREATE_COMPLETE\","
         "\"CREATE_FAILED\",\"UPDATE_IN_PROGRESS\",\"UPDATE_COMPLETE\",\"UPDATE_FAILED\","
         "\"DELETE_IN_PROGRESS\",\"DELETE_COMPLETE\",\"DELETE_FAILED\",\"UNKNOWN\"]}"},
        {"ResourceState",
         "{\"type\":\"string\",\"enum\":[\"INITIAL\",\"CREATING\",\"CREATED\",\"CONFIGURING\","
         "\"CONFIGURED\",\"STARTING\",\"STARTED\",\"STOPPING\",\"STOPPED\",\"DELETING\","
         "\"ERROR\"]}"},
        {"Deployment",
         "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"uuid\","
         "\"creationTime\",\"updateTime\",\"status\",\"outputs\",\"task\",\"createdBy\","
         "\"links\"],\"properties\":{\"uuid\":{\"$ref\":\"#/components/schemas/Uuid\"},"
         "\"creationTime\":{\"$ref\":\"#/components/schemas/Time\"},"
         "\"updateTime\":{\"$ref\":\"#/components/schemas/Time\"},"
         "\"status\":{\"$ref\":\"#/components/schemas/DeploymentStatus\"},"
         "\"statusReason\":{\"type\":\"string\","
         "\"description\":\"why it failed; every site's error\"},\"task\":{\"type\":\"string\","
         "\"enum\":[\"NONE\",\"MONITORING\",\"QOS\",\"BROKERING\",\"DMS\",\"DEPLOYER\","
         "\"UNKNOWN\"]},\"outputs\":{\"type\":\"object\","
         "\"description\":\"the template's outputs ({} when none)\"},"
         "\"physicalId\":{\"type\":\"string\"},\"callback\":{\"type\":\"string\"},"
         "\"userGroup\":{\"type\":\"string\"},\"cloudProviderName\":{\"type\":\"string\","
         "\"description\":\"the site it runs on\"},\"cloudProviderEndpoint\":{\"type\":\"object\","
         "\"properties\":{\"cpEndpoint\":{\"type\":\"string\"},"
         "\"cpComputeServiceId\":{\"type\":\"string\"},\"deploymentType\":{\"type\":\"string\"},"
         "\"region\":{\"type\":\"string\"}}},\"createdBy\":{\"type\":\"object\","
         "\"required\":[\"issuer\",\"subject\"],\"additionalProperties\":false,"
         "\"properties\":{\"issuer\":{\"type\":\"string\"},\"subject\":{\"type\":\"string\"}}},"
         "\"links\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Link\"},"
         "\"description\":\"self, resources, template\"}}}"},
        {"Resource",
         "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"uuid\","
         "\"creationTime\",\"updateTime\",\"state\",\"toscaNodeType\",\"toscaNodeName\","
         "\"requiredBy\",\"links\"],"
         "\"properties\":{\"uuid\":{\"$ref\":\"#/components/schemas/Uuid\"},"
         "\"creationTime\":{\"$ref\":\"#/components/schemas/Time\"},"
         "\"updateTime\":{\"$ref\":\"#/components/schemas/Time\"},"
         "\"state\":{\"$ref\":\"#/components/schemas/ResourceState\"},"
         "\"toscaNodeType\":{\"type\":\"string\"},\"toscaNodeName\":{\"type\":\"string\"},"
         "\"requiredBy\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
         "\"description\":\"names of the nodes that need this one\"},"
         "\"physicalId\":{\"type\":\"string\",\"description\":\"its name at the provider\"},"
         "\"metadata\":{\"type\":\"object\"},\"links\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/components/schemas/Link\"},\"description\":\"deployment,"
         " self\"}}}"},
        {"PageInfo",
         "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"size\","
         "\"totalElements\",\"totalPages\",\"number\"],"
         "\"properties\":{\"size\":{\"type\":\"integer\",\"minimum\":1},"
         "\"totalElements\":{\"type\":\"integer\",\"minimum\":0},"
         "\"totalPages\":{\"type\":\"integer\",\"minimum\":0},\"number\":{\"type\":\"integer\","
         "\"minimum\":0,\"description\":\"0-based\"}}}"},
        {"DeploymentPage",
         "{\"type\":\"object\",\"additionalProperties\":false,"
         "\"description\":\"A page of deployments, newest first: links first, self,"
         " next (absent on the last page) and last\",\"required\":[\"links\",\"content\","
         "\"page\"],\"properties\":{\"links\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/components/schemas/Link\"}},\"content\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/components/schemas/Deployment\"}},"
         "\"page\":{\"$ref\":\"#/components/schemas/PageInfo\"}}}"},
        {"ResourcePage",
         "{\"type\":\"object\",\"additionalProperties\":false,"
         "\"description\":\"A page of resources: links first, self,"
         " next (absent on the last page) and last\",\"required\":[\"links\",\"content\","
         "\"page\"],\"properties\":{\"links\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/components/schemas/Link\"}},\"content\":{\"type\":\"array\","
         "\"items\":{\"$ref\":\"#/components/schemas/Resource\"}},"
         "\"page\":{\"$ref\":\"#/components/schemas/PageInfo\"}}}"},
        {"Event",
         "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"id\",\"time\","
         "\"timeMs\",\"type\",\"message\"],\"properties\":{\"id\":{\"type\":\"integer\","
         "\"minimum\":1,\"description\":\"increasing\"},"
         "\"time\":{\"$ref\":\"#/components/schemas/Time\"},\"timeMs\":{\"type\":\"integer\","
         "\"description\":\"milliseconds since the epoch\"},\"type\":{\"type\":\"string\","
         "\"example\":\"resource.state\"},\"message\":{\"type\":\"string\"},"
         "\"data\":{\"type\":\"object\"}}}"},
        {"NodeInfo",
         "{\"type\":\"object\",\"additionalProperties\":false,\"required\":[\"node\",\"type\","
         "\"index\",\"state\"],\"properties\":{\"node\":{\"type\":\"string\"},"
         "\"type\":{\"type\":\"string\"},\"index\":{\"type\":\"integer\",\"minimum\":0},"
         "\"state\":{\"$ref\":\"#/components/schemas/ResourceState\"},"
         "\"site\":{\"type\":\"string\"},\"attributes\":{\"type\":\"object\","
         "\"description\":\"what the driver reported (addresses, ...)\"}}}"},
        {"DeploymentRequest",
         "{\"type\":\"object\",\"oneOf\":[{\"required\":[\"template\"]},"
         "{\"required\":[\"templateName\"]}],"
         "\"properties\":{\"templateName\":{\"type\":\"string\",\"description\":\"instead of "
         "template: the template of that name in the catalog (GET /templates)\"},"
         "\"template\":{\"type\":\"string\",\"minLength\":1," BODY_FIELDS
         "\"description\":\"The body of a create: template, or templateName; unknown fields are "
         "ignored\"}"},
        {"DeploymentUpdate",
         "{\"type\":\"object\",\"properties\":{\"template\":{\"type\":\"string\",\"minLength\":"
         "1," BODY_FIELDS
         "\"description\":\"The body of an update: the template may be left out (the stored one is"
         " kept), parameters are merged into the stored ones; unknown fields are ignored\"}"},
        {"DeploymentReset",
         "{\"type\":\"object\",\"required\":[\"status\"],"
         "\"properties\":{\"status\":{\"type\":\"string\",\"enum\":[\"DELETE_FAILED\"]}}}"},
    };
    const orc_api_route_t routes[] = {
        {"POST", "/deployments", create, ctx, "Create a deployment",
         "Loads, validates and plans the template with the parameters (a bad template is a 400 "
         "naming file:line:col for each error), stores the deployment and answers 201; the "
         "engine then ranks the sites and tries them in order until one succeeds.",
         "Deployments", "{\"$ref\":\"#/components/schemas/DeploymentRequest\"}", NULL, created, ORC_API_ACCESS_USER},
        {"GET", "/deployments", list, ctx, "List deployments (paged, newest first)",
         "The filters are ANDed; clients page by following the links.", "Deployments", NULL,
         list_query, listed, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}", show, ctx, "Show a deployment", NULL, "Deployments", NULL,
         NULL, one, ORC_API_ACCESS_USER},
        {"DELETE", "/deployments/{id}", remove_deployment, ctx, "Delete a deployment",
         "The engine deprovisions every resource: then the deployment is DELETE_COMPLETE and "
         "gone (404), or DELETE_FAILED with the reason.",
         "Deployments", NULL, NULL, none, ORC_API_ACCESS_USER},
        {"PATCH", "/deployments/{id}", reset, ctx, "Reset a stuck deletion to DELETE_FAILED",
         "Only {\"status\":\"DELETE_FAILED\"}, only from DELETE_IN_PROGRESS.", "Deployments",
         "{\"$ref\":\"#/components/schemas/DeploymentReset\"}", NULL, reset_docs, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/template", show_template, ctx, "The stored template", NULL,
         "Deployments", NULL, NULL, text, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/log", show_log, ctx, "Human log of the deployment",
         "One line per event: time, type, message (empty when there are none).", "Deployments",
         NULL, NULL, text, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/outputs", show_outputs, ctx, "Outputs", NULL, "Deployments",
         NULL, NULL, outputs_docs, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/extrainfo", show_extrainfo, ctx, "Per-node details",
         "Kind, instance, state, site and the attributes the driver reported of each node "
         "instance.",
         "Deployments", NULL, NULL, extrainfo_docs, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/resources", list_resources, ctx, "Resources (paged)", NULL,
         "Resources", NULL, resource_query, resources_docs, ORC_API_ACCESS_USER},
        {"GET", "/deployments/{id}/resources/{rid}", show_resource, ctx, "One resource", NULL,
         "Resources", NULL, NULL, resource_docs, ORC_API_ACCESS_USER},
        {"PUT", "/deployments/{id}", update, ctx, "Update a deployment",
         "Re-plans the deployment with its new template (or the stored one when the body has "
         "none) and its parameters merged into the stored ones, then applies the difference on "
         "its site: scale out, scale in (removal_list first, then the newest), restarts of "
         "what changed. Only from CREATE_COMPLETE, UPDATE_COMPLETE or UPDATE_FAILED.",
         "Deployments", "{\"type\":\"object\"}", NULL, updated, ORC_API_ACCESS_USER},
        {"POST", "/deployments/{id}/resources/{rid}/actions", resource_action, ctx,
         "Start or stop a resource",
         "{\"type\":\"start\"} from STOPPED, {\"type\":\"stop\"} from STARTED; a compute "
         "node's workloads follow it.",
         "Resources",
         "{\"type\":\"object\",\"required\":[\"type\"],\"properties\":{\"type\":"
         "{\"type\":\"string\",\"enum\":[\"start\",\"stop\"]}}}",
         NULL, acted, ORC_API_ACCESS_USER},
    };
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < sizeof(schemas) / sizeof(schemas[0]); i++) {
        rc = orc_api_register_schema(api, schemas[i].name, schemas[i].schema);
        if (rc == ORC_ECONFLICT) /* registered already (a second registration) */
            rc = 0;
    }
    if (rc < 0 || (rc = orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]))) < 0)
        return rc;
    return orc_api_usage_register(api, ctx);
}
