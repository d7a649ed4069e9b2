/*
 * GET /deployments/{id}/usage (docs/api.md "Usage"): what a deployment held and for how
 * long, summed from its usage events (engine/usage.c): node-hours and GPU-hours in all,
 * per site (GPU-hours also per model), and each interval a node held a site. An
 * interval starts at "usage.started" (a second start of a node already started, from a
 * re-drive, is ignored), ends at "usage.ended", at the deployment's DELETE_COMPLETE (a
 * forced delete leaves what the provider would not delete), or runs on until now. It
 * stays readable once the deployment is deleted (the account of what it held). Read
 * off the loop when the daemon has store readers (store_reads.h).
 */
#include <stdio.h>
#include <string.h>

#include "deployments.h"
#include "store_reads.h"
#include "usage.h"
#include "../base.h"

struct interval {
    const char *resource, *node, *site, *model; /* in the events' data */
    json_int_t index, gpus;
    int64_t start_ms, end_ms; /* end 0: still held */
};

struct intervals {
    struct interval *items;
    size_t count, cap;
};

static const char *data_str(const json_t *data, const char *key)
{
    return json_string_value(json_object_get(data, key));
}

static struct interval *open_of(struct intervals *iv, const char *resource)
{
    for (size_t i = iv->count; i-- > 0;)
        if (iv->items[i].end_ms == 0 && strcmp(iv->items[i].resource, resource) == 0)
            return &iv->items[i];
    return NULL;
}

static int start_interval(struct intervals *iv, const orc_event_t *ev)
{
    const char *resource = data_str(ev->data, "resource"), *site = data_str(ev->data, "site");
    struct interval *open;

    if (resource == NULL || site == NULL)
        return 0; /* not ours */
    open = open_of(iv, resource);
    if (open != NULL && strcmp(open->site, site) == 0)
        return 0; /* started again by a re-drive */
    if (open != NULL)
        open->end_ms = ev->time_ms;
    if (orc_reserve_one((void **)&iv->items, &iv->cap, iv->count, sizeof(*iv->items)) < 0)
        return ORC_ENOMEM;
    iv->items[iv->count++] = (struct interval){
        .resource = resource,
        .node = data_str(ev->data, "node") ? data_str(ev->data, "node") : "",
        .site = site,
        .model = data_str(ev->data, "gpu_model"),
        .index = json_integer_value(json_object_get(ev->data, "index")),
        .gpus = json_integer_value(json_object_get(ev->data, "gpus")),
        .start_ms = ev->time_ms,
    };
    return 0;
}

static void end_interval(struct intervals *iv, const orc_event_t *ev)
{
    const char *resource = data_str(ev->data, "resource");
    struct interval *open = resource ? open_of(iv, resource) : NULL;

    if (open != NULL)
        open->end_ms = ev->time_ms > open->start_ms ? ev->time_ms : open->start_ms;
}

static void end_all(struct intervals *iv, int64_t at_ms)
{
    for (size_t i = 0; i < iv->count; i++)
        if (iv->items[i].end_ms == 0)
            iv->items[i].end_ms = at_ms > iv->items[i].start_ms ? at_ms : iv->items[i].start_ms;
}

static bool deleted_event(const orc_event_t *ev)
{
    const char *st = data_str(ev->data, "status");

    return strcmp(ev->type, "deployment.status") == 0 && st && strcmp(st, "DELETE_COMPLETE") == 0;
}

static int collect(const orc_event_t *events, size_t n, struct intervals *iv)
{
    for (size_t i = 0; i < n; i++) {
        const orc_event_t *ev = &events[i];
        if (strcmp(ev->type, "usage.started") == 0 && start_interval(iv, ev) < 0)
            return ORC_ENOMEM;
        if (strcmp(ev->type, "usage.ended") == 0)
            end_interval(iv, ev);
        else if (deleted_event(ev))
            end_all(iv, ev->time_ms);
    }
    return 0;
}

/* ---- the summary's JSON ---- */

static double hours(double seconds)
{
    return seconds / 3600.0;
}

static json_t *site_entry(json_t *sites, const char *site)
{
    size_t i;
    json_t *s;

    json_array_foreach(sites, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "site")), site) == 0)
            return s;
    }
    s = json_pack("{s:s, s:f, s:f, s:f, s:f, s:{}}", "site", site, "nodeSeconds", 0.0, "gpuSeconds",
                  0.0, "nodeHours", 0.0, "gpuHours", 0.0, "gpuHoursByModel");
    json_array_append_new(sites, s);
    return s;
}

static void add_real(json_t *obj, const char *key, double v)
{
    json_object_set_new(obj, key, json_real(json_real_value(json_object_get(obj, key)) + v));
}

static void add_to_site(json_t *sites, const struct interval *it, double seconds)
{
    json_t *s = site_entry(sites, it->site);
    double gpu_seconds = seconds * (double)it->gpus;

    add_real(s, "nodeSeconds", seconds);
    add_real(s, "gpuSeconds", gpu_seconds);
    add_real(s, "nodeHours", hours(seconds));
    add_real(s, "gpuHours", hours(gpu_seconds));
    if (it->gpus > 0)
        add_real(json_object_get(s, "gpuHoursByModel"), it->model ? it->model : "any",
                 hours(gpu_seconds));
}

static json_t *interval_json(const struct interval *it, int64_t now_ms, double seconds)
{
    char start[ORC_TIME_LEN], end[ORC_TIME_LEN];
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:I, s:s, s:I, s:f}", "node", it->node, "resource",
                          it->resource, "index", it->index, "site", it->site, "gpus", it->gpus,
                          "start", orc_time_format(it->start_ms, start), "startMs",
                          (json_int_t)it->start_ms, "hours", hours(seconds));

    if (j == NULL)
        return NULL;
    json_object_set_new(j, "gpuModel", it->model ? json_string(it->model) : json_null());
    json_object_set_new(j, "end",
                        it->end_ms ? json_string(orc_time_format(it->end_ms, end)) : json_null());
    json_object_set_new(j, "endMs", it->end_ms ? json_integer(it->end_ms) : json_null());
    json_object_set_new(j, "held", json_boolean(it->end_ms == 0 && now_ms >= it->start_ms));
    return j;
}

json_t *orc_usage_summary(const orc_event_t *events, size_t n, int64_t now_ms)
{
    struct intervals iv = {0};
    json_t *out = NULL, *sites = json_array(), *list = json_array();
    double node_seconds = 0, gpu_seconds = 0;
    char asof[ORC_TIME_LEN];

    if (sites == NULL || list == NULL || collect(events, n, &iv) < 0)
        goto done;
    for (size_t i = 0; i < iv.count; i++) {
        const struct interval *it = &iv.items[i];
        int64_t end = it->end_ms ? it->end_ms : now_ms;
        double seconds = end > it->start_ms ? (double)(end - it->start_ms) / 1000.0 : 0;
        node_seconds += seconds;
        gpu_seconds += seconds * (double)it->gpus;
        add_to_site(sites, it, seconds);
        json_array_append_new(list, interval_json(it, now_ms, seconds));
    }
    out = json_pack("{s:f, s:f, s:f, s:f, s:O, s:O, s:s, s:I}", "nodeSeconds", node_seconds,
                    "gpuSeconds", gpu_seconds, "nodeHours", hours(node_seconds), "gpuHours",
                    hours(gpu_seconds), "sites", sites, "intervals", list, "asOf",
                    orc_time_format(now_ms, asof), "asOfMs", (json_int_t)now_ms);
done:
    json_decref(sites);
    json_decref(list);
    orc_free(iv.items);
    return out;
}

/* ---- the route ---- */

struct usage_read {
    struct orc_api_read base;
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;
    orc_event_list_t events;
};

static void usage_read_release(struct orc_api_read *r)
{
    struct usage_read *ur = (struct usage_read *)r;

    orc_deployment_free(ur->d);
    orc_event_list_clear(&ur->events);
    orc_free(ur);
}

static int usage_read_run(orc_store_t *s, orc_read_t *r)
{
    struct usage_read *ur = (struct usage_read *)r;
    int rc = orc_store_deployment_get_head(s, ur->uuid, &ur->d);

    return rc < 0 ? rc : orc_store_event_list(s, ur->uuid, 0, 0, &ur->events);
}

static int usage_read_finish(orc_api_req_t *req, struct orc_api_read *r)
{
    struct usage_read *ur = (struct usage_read *)r;
    json_t *summary;

    /* a deleted deployment's usage stays readable: it is the account of what it held */
    if (r->read.rc == ORC_ENOTFOUND ||
        (ur->d && !orc_deployment_visible(orc_api_req_identity(req), ur->d)))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", ur->uuid);
    if (r->read.rc < 0)
        return orc_api_req_store_fail(req, r->read.rc, r->read.errmsg);
    summary = orc_usage_summary(ur->events.items, ur->events.count, orc_now_ms());
    if (summary == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    json_object_set_new(summary, "uuid", json_string(ur->uuid));
    return orc_api_send_json_new(req, 200, summary);
}

static int show_usage(orc_api_req_t *req, void *data)
{
    struct orc_deployments_api *ctx = data;
    const char *id = orc_api_req_param(req, "id");
    struct usage_read *ur;

    if (id == NULL || !orc_uuid_valid(id))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    ur = orc_calloc(1, sizeof(*ur));
    if (ur == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    snprintf(ur->uuid, sizeof(ur->uuid), "%s", id);
    ur->base = (struct orc_api_read){
        .fn = usage_read_run, .finish = usage_read_finish, .release = usage_read_release};
    return orc_api_store_read(req, ctx->readers, ctx->store, &ur->base);
}

#define USAGE_INTERVAL_SCHEMA                                                                      \
    "{\"type\":\"object\",\"required\":[\"node\",\"index\",\"resource\",\"site\",\"gpus\","        \
    "\"gpuModel\",\"start\",\"startMs\",\"end\",\"endMs\",\"held\",\"hours\"],\"properties\":{"    \
    "\"node\":{\"type\":\"string\"},\"index\":{\"type\":\"integer\"},"                             \
    "\"resource\":{\"type\":\"string\"},\"site\":{\"type\":\"string\"},"                           \
    "\"gpus\":{\"type\":\"integer\"},\"gpuModel\":{\"type\":\"string\",\"nullable\":true},"        \
    "\"start\":{\"type\":\"string\"},\"startMs\":{\"type\":\"integer\"},"                          \
    "\"end\":{\"type\":\"string\",\"nullable\":true},\"endMs\":{\"type\":\"integer\","             \
    "\"nullable\":true},"                                                                          \
    "\"held\":{\"type\":\"boolean\"},\"hours\":{\"type\":\"number\"}}}"

#define USAGE_SITE_SCHEMA                                                                          \
    "{\"type\":\"object\",\"required\":[\"site\",\"nodeSeconds\",\"gpuSeconds\",\"nodeHours\","    \
    "\"gpuHours\",\"gpuHoursByModel\"],\"properties\":{\"site\":{\"type\":\"string\"},"            \
    "\"nodeSeconds\":{\"type\":\"number\"},\"gpuSeconds\":{\"type\":\"number\"},"                  \
    "\"nodeHours\":{\"type\":\"number\"},\"gpuHours\":{\"type\":\"number\"},"                      \
    "\"gpuHoursByModel\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"number\"}}}}"

int orc_api_usage_register(orc_api_t *api, struct orc_deployments_api *ctx)
{
    static const orc_api_response_doc_t docs[] = {
        {200, "Node-hours and GPU-hours in all, per site, and each interval a node held a site",
         "application/json",
         "{\"type\":\"object\",\"required\":[\"uuid\",\"nodeSeconds\",\"gpuSeconds\","
         "\"nodeHours\",\"gpuHours\",\"sites\",\"intervals\",\"asOf\",\"asOfMs\"],"
         "\"properties\":{\"uuid\":{\"type\":\"string\"},\"nodeSeconds\":{\"type\":\"number\"},"
         "\"gpuSeconds\":{\"type\":\"number\"},\"nodeHours\":{\"type\":\"number\"},"
         "\"gpuHours\":{\"type\":\"number\"},\"sites\":{\"type\":\"array\","
         "\"items\":" USAGE_SITE_SCHEMA
         "},\"intervals\":{\"type\":\"array\",\"items\":" USAGE_INTERVAL_SCHEMA
         "},\"asOf\":{\"type\":\"string\"},\"asOfMs\":{\"type\":\"integer\"}}}"},
        {404, "No such deployment", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t route = {
        "GET",
        "/deployments/{id}/usage",
        show_usage,
        ctx,
        "Usage: node-hours and GPU-hours",
        "What the deployment's nodes held and for how long: from each node's provision to its "
        "deprovision (or the deployment's deletion, or now while it is held), in all, per site "
        "and per GPU model. Readable after the deployment is deleted.",
        "Deployments",
        NULL,
        NULL,
        docs,
        ORC_API_ACCESS_USER};

    return orc_api_register(api, &route);
}
