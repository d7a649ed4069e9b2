/*
 * /sites (sites.h): the engine's view of its sites (orc_engine_sites), shown to users
 * without what only operators see (credentials, pools). A request waits for the answer
 * of a query in flight, or starts one; an answer younger than CACHE_MS serves at once.
 */
#include <string.h>

#include "../base.h"
#include "deployments.h"
#include "sites.h"
#include "sites_int.h"

#define CACHE_MS 2000

struct site_wait {
    struct orc_sites_api *s;
    orc_api_req_t *req;
    struct site_wait *next;
};

bool orc__sites_operator(orc_api_req_t *req)
{
    return (orc_api_req_identity(req)->roles & (ORC_ROLE_OPERATOR | ORC_ROLE_ADMIN)) != 0;
}

void orc__sites_forget_cache(struct orc_sites_api *s)
{
    json_decref(s->cached);
    s->cached = NULL;
}

/* A site as the caller may see it, with its link. */
static json_t *site_view(orc_api_req_t *req, const json_t *site)
{
    json_t *v = json_copy((json_t *)site);

    if (v == NULL)
        return NULL;
    if (!orc__sites_operator(req)) {
        json_object_del(v, "credentials");
        json_object_del(v, "pools");
    }
    json_object_set_new(
        v, "links",
        json_pack(
            "[{ss ss}]", "rel", "self", "href",
            orc_api_req_url(req, "/sites/%s", json_string_value(json_object_get(site, "name")))));
    return v;
}

static int answer(orc_api_req_t *req, const json_t *sites)
{
    const char *name = orc_api_req_param(req, "name");
    json_t *content;
    size_t i;
    json_t *site;

    if (sites == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    if (name != NULL) {
        json_array_foreach(sites, i, site)
        {
            if (strcmp(json_string_value(json_object_get(site, "name")), name) == 0)
                return orc_api_send_json_new(req, 200, site_view(req, site));
        }
        return orc_api_req_fail(req, 404, "There is no site '%.64s'", name);
    }
    content = json_array();
    json_array_foreach(sites, i, site)
    {
        json_array_append_new(content, site_view(req, site));
    }
    return orc_api_send_json_new(req, 200, json_pack("{so}", "content", content));
}

static int answer_later(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;

    return answer(req, s->cached);
}

static void on_sites(void *ud, json_t *sites)
{
    struct orc_sites_api *s = ud;
    struct site_wait *w = s->waiting;

    s->query = NULL;
    json_decref(s->cached);
    s->cached = json_incref(sites);
    s->cached_at = uv_now(s->loop);
    s->waiting = NULL;
    while (w) {
        struct site_wait *next = w->next;
        orc_api_req_continue(w->req, answer_later, s);
        orc_free(w);
        w = next;
    }
}

static void wait_gone(orc_api_req_t *req, void *data)
{
    struct site_wait *w = data;
    struct orc_sites_api *s = w->s;

    (void)req;
    for (struct site_wait **p = &s->waiting; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    orc_free(w);
    if (s->waiting == NULL && s->query) { /* no one waits for it any more */
        orc_engine_sites_cancel(s->query);
        s->query = NULL;
    }
}

static int list(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;
    struct site_wait *w;
    int rc;

    if (s->cached && uv_now(s->loop) - s->cached_at < CACHE_MS)
        return answer(req, s->cached);
    if (s->query == NULL) {
        rc = orc_engine_sites(s->engine, on_sites, s, &s->query);
        if (rc < 0)
            return orc_api_req_fail(req, rc == ORC_ECANCELED ? 503 : 500,
                                    "cannot ask the sites: %s", orc_strerror(rc));
        if (s->query == NULL) /* answered at once: no site is open */
            return answer(req, s->cached);
    }
    w = orc_calloc(1, sizeof(*w));
    if (w == NULL || orc_api_req_defer(req, wait_gone, w) < 0) {
        orc_free(w);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    w->s = s;
    w->req = req;
    w->next = s->waiting;
    s->waiting = w;
    return 0;
}

/* PATCH {"state": "draining" | "active"}: operators drain a site (no new deployments
 * there) and take it back. */
static int set_state(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;
    const char *name = orc_api_req_param(req, "name"), *state;
    json_t *body = NULL;
    int rc = orc_api_req_json(req, &body);

    if (rc < 0)
        return rc;
    state = json_string_value(json_object_get(body, "state"));
    if (!json_is_object(body) || state == NULL ||
        (strcmp(state, "draining") != 0 && strcmp(state, "active") != 0))
        rc = orc_api_req_fail(req, 400,
                              "the body must be {\"state\": \"draining\"} or "
                              "{\"state\": \"active\"}");
    else if ((rc = orc_engine_site_drain(s->engine, name, state[0] == 'd')) == ORC_ENOTFOUND)
        rc = orc_api_req_fail(req, 404, "There is no site '%.64s'", name);
    else if (rc < 0)
        rc = orc_api_req_store_fail(req, rc, "the site's state cannot be stored");
    else {
        orc_log(ORC_LOG_INFO, "sites", "site %s %s by %s", name,
                state[0] == 'd' ? "draining: no new deployments" : "active again",
                orc_api_req_identity(req)->subject);
        orc__sites_forget_cache(s); /* the next answer says the new state */
        rc = orc_api_reply_when_durable(req, s->commit, 200,
                                        json_pack("{ss ss}", "name", name, "state", state));
    }
    json_decref(body);
    return rc;
}

int orc_sites_api_new(uv_loop_t *loop, struct orc_engine *engine, orc_store_t *store,
                      struct orc_commit_s *commit, struct orc_sites_api **out)
{
    struct orc_sites_api *s = orc_calloc(1, sizeof(*s));
    int rc;

    *out = s;
    if (s == NULL)
        return ORC_ENOMEM;
    s->loop = loop;
    s->engine = engine;
    s->store = store;
    s->commit = commit;
    rc = orc__sites_admin_start(s);
    if (rc < 0) {
        orc_free(s);
        *out = NULL;
    }
    return rc;
}

static void on_sync_closed(uv_handle_t *h)
{
    struct orc_sites_api *s = h->data;

    orc_free(s->registered);
    orc_free(s);
}

void orc_sites_api_free(struct orc_sites_api *s)
{
    if (s == NULL)
        return;
    orc_engine_sites_cancel(s->query);
    json_decref(s->cached);
    s->cached = NULL;
    s->sync_timer.data = s;
    orc__sites_admin_stop(s, on_sync_closed); /* frees s once its timer is closed */
}

int orc_api_sites_register(orc_api_t *api, struct orc_sites_api *s)
{
    static const char site_schema[] =
        "{\"type\":\"object\",\"required\":[\"name\",\"driver\",\"state\",\"priority\","
        "\"inventory\",\"links\"],\"properties\":{"
        "\"name\":{\"type\":\"string\"},\"driver\":{\"type\":\"string\"},"
        "\"description\":{\"type\":\"string\",\"nullable\":true},"
        "\"priority\":{\"type\":\"integer\"},"
        "\"state\":{\"type\":\"string\",\"enum\":[\"active\",\"draining\",\"disabled\","
        "\"unavailable\"]},"
        "\"inventory\":{\"type\":\"string\",\"nullable\":true,\"description\":\"ok, the driver's "
        "error, or null when the site is not open\"},"
        "\"gpus\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"model\","
        "\"total\",\"free\"],\"properties\":{\"model\":{\"type\":\"string\"},"
        "\"total\":{\"type\":\"integer\"},\"free\":{\"type\":\"integer\"}}}},"
        "\"cpus\":{\"type\":\"object\",\"properties\":{\"total\":{\"type\":\"integer\"},"
        "\"free\":{\"type\":\"integer\"}}},"
        "\"memory\":{\"type\":\"object\",\"description\":\"bytes\",\"properties\":{"
        "\"total\":{\"type\":\"integer\"},\"free\":{\"type\":\"integer\"}}},"
        "\"credentials\":{\"type\":\"string\",\"nullable\":true,\"description\":\"operators only: "
        "the name of the site's secret\"},"
        "\"pools\":{\"type\":\"array\",\"description\":\"operators only: the driver's capacity "
        "pools\",\"items\":{\"type\":\"object\"}},"
        "\"source\":{\"type\":\"string\",\"enum\":[\"file\",\"api\"],\"description\":\"the "
        "sites file, or registered through the API\"},"
        "\"links\":{\"type\":\"array\"}}}";
    static const orc_api_response_doc_t listed_docs[] = {
        {200, "Every site: the sites file's in its order, then those registered through the API",
         "application/json",
         "{\"type\":\"object\",\"required\":[\"content\"],\"properties\":{\"content\":{"
         "\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Site\"}}}}"},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t one_docs[] = {
        {200, "The site", "application/json", "{\"$ref\":\"#/components/schemas/Site\"}"},
        {404, "No such site", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t patched_docs[] = {
        {200, "The site's new state", "application/json",
         "{\"type\":\"object\",\"required\":[\"name\",\"state\"],\"properties\":{\"name\":{"
         "\"type\":\"string\"},\"state\":{\"type\":\"string\"}}}"},
        {400, "A bad body", "application/json", NULL},
        {403, "Not an operator", "application/json", NULL},
        {404, "No such site", "application/json", NULL},
        {415, "The body is not JSON", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"GET", "/sites", list, s, "List the federated sites",
         "State and, for the open sites, what their inventories say now (shared for 2 s).", "Sites",
         NULL, NULL, listed_docs, ORC_API_ACCESS_USER},
        {"GET", "/sites/{name}", list, s, "One site", NULL, "Sites", NULL, NULL, one_docs,
         ORC_API_ACCESS_USER},
        {"PATCH", "/sites/{name}", set_state, s, "Drain a site, or take it back",
         "draining: no new deployments are placed there (those on it stay, update and delete); "
         "active: it takes new ones again. Kept in the store: every daemon sharing it follows.",
         "Sites",
         "{\"type\":\"object\",\"required\":[\"state\"],\"properties\":{\"state\":{\"type\":"
         "\"string\",\"enum\":[\"draining\",\"active\"]}}}",
         NULL, patched_docs, ORC_API_ACCESS_OPERATOR},
    };
    int rc = orc_api_register_schema(api, "Site", site_schema);

    if (rc < 0 && rc != ORC_ECONFLICT)
        return rc;
    rc = orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
    return rc < 0 ? rc : orc__sites_admin_register(api, s);
}
