/*
 * Sites that operators register through the API (docs/api.md "Sites"): POST /sites adds
 * one (the same keys as an entry of the sites file, checked by the same parser; its
 * credentials by name only, the secret stays in the secrets file or the environment),
 * PUT /sites/{name} replaces its definition (enabled: false closes it, true opens it
 * again), DELETE /sites/{name} takes it out once no deployment holds anything there.
 * Only the operator who registered a site, or an admin, may change it; the sites of the
 * sites file are the file's. Each definition is kept in the store (meta key
 * site_def/NAME: the definition, its owner and a stamp), applied at start, and every
 * SITES_SYNC_MS each daemon applies what others stored, so every daemon on a shared store
 * ends up with the same sites.
 */
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "../engine/sites.h"
#include "deployments.h"
#include "sites_int.h"

#define KEY_PREFIX "site_def/"
#define SITES_SYNC_MS 5000

/* ---- definitions ---- */

/* The definition as a one-site list, through the sites file's parser (its errors in why). */
static int parse_definition(const json_t *def, struct orc_sites **out, char *why, size_t len)
{
    json_t *doc = json_pack("{s:[O]}", "sites", def);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    struct orc_sites *one = orc_calloc(1, sizeof(*one));
    struct orc_sites_errors errs = {0};
    int rc =
        text && one ? orc_sites_load_buffer("site", text, strlen(text), one, &errs) : ORC_ENOMEM;
    size_t n = 0;

    why[0] = '\0';
    for (size_t i = 0; i < errs.count && n + 2 < len; i++)
        n += (size_t)snprintf(why + n, len - n, "%s%s", i ? "; " : "", errs.lines[i]);
    if (rc == 0 && one->count != 1) {
        orc_sites_free(one);
        rc = ORC_EFORMAT;
        snprintf(why, len, "one site is expected");
    }
    orc_sites_errors_free(&errs);
    json_decref(doc);
    free(text);
    if (rc < 0) {
        orc_free(one);
        return rc;
    }
    *out = one;
    return 0;
}

static struct registered_site *registered(struct orc_sites_api *s, const char *name)
{
    for (size_t i = 0; i < s->nregistered; i++)
        if (strcmp(s->registered[i].name, name) == 0)
            return &s->registered[i];
    return NULL;
}

static void forget_registered(struct orc_sites_api *s, const char *name)
{
    struct registered_site *r = registered(s, name);

    if (r != NULL)
        *r = s->registered[--s->nregistered];
}

static int note_registered(struct orc_sites_api *s, const char *name, int64_t updated_ms)
{
    struct registered_site *r = registered(s, name);

    if (r == NULL) {
        if (orc_reserve_one((void **)&s->registered, &s->cap_registered, s->nregistered,
                            sizeof(*s->registered)) < 0)
            return ORC_ENOMEM;
        r = &s->registered[s->nregistered++];
        snprintf(r->name, sizeof(r->name), "%s", name);
    }
    r->updated_ms = updated_ms;
    return 0;
}

/* Puts the stored record (definition, stamp) into the engine: adds the site, or replaces
 * the one applied before. ORC_ECONFLICT while a run works on the old one (try again). */
static int apply(struct orc_sites_api *s, const char *name, const json_t *record)
{
    struct orc_sites *one = NULL;
    char why[512];
    int rc;

    if (parse_definition(json_object_get(record, "definition"), &one, why, sizeof(why)) < 0) {
        orc_log(ORC_LOG_ERROR, "sites", "site %s in the store is left out: %s", name, why);
        /* noted with its stamp: said once, not at every sync, until it changes */
        note_registered(s, name, json_integer_value(json_object_get(record, "updated_ms")));
        return ORC_EFORMAT;
    }
    if (registered(s, name) != NULL && (rc = orc_engine_site_remove(s->engine, name)) < 0 &&
        rc != ORC_ENOTFOUND) {
        orc_sites_free(one);
        orc_free(one);
        return rc;
    }
    rc = orc_engine_site_add(s->engine, one);
    if (rc == 0)
        rc = note_registered(s, name, json_integer_value(json_object_get(record, "updated_ms")));
    else
        forget_registered(s, name);
    orc__sites_forget_cache(s);
    return rc;
}

static json_t *stored_record(struct orc_sites_api *s, const char *name, int *rc)
{
    char key[sizeof(KEY_PREFIX) + 64], *text = NULL;
    json_t *record;

    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    *rc = orc_store_meta_get(s->store, key, &text);
    if (*rc < 0)
        return NULL;
    record = json_loads(text, 0, NULL);
    orc_free(text);
    if (!json_is_object(record)) {
        json_decref(record);
        *rc = ORC_EFORMAT;
        return NULL;
    }
    return record;
}

/* ---- what other daemons stored ---- */

static void sync_with_store(struct orc_sites_api *s)
{
    orc_meta_list_t l = {0};
    int rc = orc_store_meta_list(s->store, KEY_PREFIX, &l);

    if (rc < 0) {
        orc_log(ORC_LOG_WARN, "sites", "cannot read the registered sites: %s",
                orc_store_errmsg(s->store));
        return;
    }
    for (size_t i = 0; i < l.count; i++) {
        const char *name = l.items[i].key + strlen(KEY_PREFIX);
        json_t *record = json_loads(l.items[i].value, 0, NULL);
        const struct registered_site *r = registered(s, name);
        int64_t stamp = json_integer_value(json_object_get(record, "updated_ms"));
        if (json_is_object(record) && (r == NULL || r->updated_ms != stamp) &&
            (r != NULL || orc_engine_site_source(s->engine, name) == 0))
            apply(s, name, record);
        json_decref(record);
    }
    for (size_t i = s->nregistered; i-- > 0;) { /* removed by another daemon */
        bool stored = false;
        for (size_t k = 0; k < l.count && !stored; k++)
            stored = strcmp(l.items[k].key + strlen(KEY_PREFIX), s->registered[i].name) == 0;
        if (!stored && orc_engine_site_remove(s->engine, s->registered[i].name) != ORC_ECONFLICT) {
            forget_registered(s, s->registered[i].name);
            orc__sites_forget_cache(s);
        }
    }
    orc_meta_list_clear(&l);
}

static void on_sync(uv_timer_t *t)
{
    sync_with_store(t->data);
}

int orc__sites_admin_start(struct orc_sites_api *s)
{
    sync_with_store(s); /* before the engine starts: resumed deployments find their sites */
    if (uv_timer_init(s->loop, &s->sync_timer) != 0)
        return ORC_ENOMEM;
    s->sync_timer.data = s;
    uv_timer_start(&s->sync_timer, on_sync, SITES_SYNC_MS, SITES_SYNC_MS);
    uv_unref((uv_handle_t *)&s->sync_timer);
    s->sync_on = true;
    return 0;
}

void orc__sites_admin_stop(struct orc_sites_api *s, uv_close_cb closed)
{
    if (s->sync_on) {
        s->sync_on = false;
        uv_close((uv_handle_t *)&s->sync_timer, closed);
    } else if (closed) {
        closed((uv_handle_t *)&s->sync_timer);
    }
}

/* ---- the routes ---- */

static bool may_change(orc_api_req_t *req, const json_t *record)
{
    const orc_identity_t *id = orc_api_req_identity(req);
    const json_t *owner = json_object_get(record, "owner");

    return (id->roles & ORC_ROLE_ADMIN) ||
           orc_identity_is(id, json_string_value(json_object_get(owner, "issuer")),
                           json_string_value(json_object_get(owner, "subject")));
}

static int store_record(struct orc_sites_api *s, const char *name, const json_t *record)
{
    char key[sizeof(KEY_PREFIX) + 64], *text = json_dumps(record, JSON_COMPACT);
    int rc;

    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    rc = text ? orc_store_meta_set(s->store, key, text) : ORC_ENOMEM;
    free(text);
    return rc;
}

/* Checks the body as a definition of the site name (NULL: the body's) and stores it
 * with its owner (NULL: the caller). */
static int store_definition(orc_api_req_t *req, struct orc_sites_api *s, json_t *def,
                            const char *name, json_t *owner, json_t **record)
{
    const orc_identity_t *id = orc_api_req_identity(req);
    const char *body_name = json_string_value(json_object_get(def, "name"));
    struct orc_sites *one = NULL;
    char why[1024];
    int rc;

    if (!json_is_object(def))
        return orc_api_req_fail(req, 400,
                                "the body must be a site: an object with name, "
                                "driver and config");
    if (name != NULL && body_name == NULL)
        json_object_set_new(def, "name", json_string(name));
    else if (name != NULL && strcmp(body_name, name) != 0)
        return orc_api_req_fail(req, 400, "name: '%.64s' is not the site of the path ('%.64s')",
                                body_name, name);
    if (parse_definition(def, &one, why, sizeof(why)) < 0)
        return orc_api_req_fail(req, 400, "%s", why[0] ? why : "not a site definition");
    *record = owner ? json_pack("{s:O, s:O, s:I}", "definition", def, "owner", owner, "updated_ms",
                                (json_int_t)orc_now_ms())
                    : json_pack("{s:O, s:{s:s, s:s}, s:I}", "definition", def, "owner", "issuer",
                                id->issuer, "subject", id->subject, "updated_ms",
                                (json_int_t)orc_now_ms());
    rc = *record ? store_record(s, one->items[0].name, *record) : ORC_ENOMEM;
    orc_sites_free(one);
    orc_free(one);
    if (rc < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(s->store));
    return 0;
}

static int answer_applied(orc_api_req_t *req, struct orc_sites_api *s, int status, const char *name,
                          int rc)
{
    if (rc == ORC_ECONFLICT)
        return orc_api_req_fail(req, 409,
                                "a deployment is being worked on at site %.64s; retry "
                                "once it is done",
                                name);
    if (rc < 0)
        return orc_api_req_fail(req, 500, "site %.64s cannot be applied: %s", name,
                                orc_strerror(rc));
    orc_log(ORC_LOG_INFO, "sites", "site %s %s by %s", name,
            status == 201 ? "registered" : "changed", orc_api_req_identity(req)->subject);
    return orc_api_reply_when_durable(req, s->commit, status,
                                      json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "name", name,
                                                "source", "api", "links", "rel", "self", "href",
                                                orc_api_req_url(req, "/sites/%s", name)));
}

static int register_site(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;
    json_t *body = NULL, *record = NULL;
    const char *name;
    int rc = orc_api_req_json(req, &body);

    if (rc < 0)
        return rc;
    name = json_string_value(json_object_get(body, "name"));
    if (name && orc_engine_site_source(s->engine, name) != 0)
        rc = orc_api_req_fail(req, 409, "there is a site '%.64s' already", name);
    else if ((rc = store_definition(req, s, body, NULL, NULL, &record)) == 0)
        rc = answer_applied(req, s, 201, name, apply(s, name, record));
    json_decref(record);
    json_decref(body);
    return rc;
}

/* The record of an API site name the caller may change, or an answer (404, 409, 403). */
static json_t *changeable(orc_api_req_t *req, struct orc_sites_api *s, const char *name, int *rc)
{
    int source = orc_engine_site_source(s->engine, name);
    json_t *record = NULL;

    *rc = 0;
    if (source == 0)
        *rc = orc_api_req_fail(req, 404, "There is no site '%.64s'", name);
    else if (source == 1)
        *rc = orc_api_req_fail(req, 409,
                               "site %.64s is defined in the sites file: change it "
                               "there",
                               name);
    else if ((record = stored_record(s, name, rc)) == NULL)
        *rc = orc_api_req_store_fail(req, *rc, orc_store_errmsg(s->store));
    else if (!may_change(req, record))
        *rc = orc_api_req_fail(req, 403, "site %.64s was registered by another operator", name);
    if (*rc < 0) {
        json_decref(record);
        return NULL;
    }
    return record;
}

static int replace_site(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;
    const char *name = orc_api_req_param(req, "name");
    json_t *body = NULL, *record = NULL, *old;
    int rc = orc_api_req_json(req, &body);

    if (rc < 0)
        return rc;
    /* the owner stays the one who registered it */
    if ((old = changeable(req, s, name, &rc)) != NULL &&
        (rc = store_definition(req, s, body, name, json_object_get(old, "owner"), &record)) == 0) {
        rc = apply(s, name, record);
        if (rc == ORC_ECONFLICT && store_record(s, name, old) < 0) /* the old one stays */
            orc_log(ORC_LOG_ERROR, "sites", "site %s: the old definition is not restored: %s", name,
                    orc_store_errmsg(s->store));
        rc = answer_applied(req, s, 200, name, rc);
    }
    json_decref(old);
    json_decref(record);
    json_decref(body);
    return rc;
}

static int remove_site(orc_api_req_t *req, void *data)
{
    struct orc_sites_api *s = data;
    const char *name = orc_api_req_param(req, "name");
    char key[sizeof(KEY_PREFIX) + 64];
    int64_t held = 0;
    json_t *record;
    int rc;

    if ((record = changeable(req, s, name, &rc)) == NULL)
        return rc;
    json_decref(record);
    if ((rc = orc_store_site_resource_count(s->store, name, &held)) < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(s->store));
    if (held > 0)
        return orc_api_req_fail(req, 409,
                                "%lld resources of deployments are at site %.64s: "
                                "drain it and delete them first",
                                (long long)held, name);
    if ((rc = orc_engine_site_remove(s->engine, name)) == ORC_ECONFLICT)
        return orc_api_req_fail(req, 409,
                                "a deployment is being worked on at site %.64s; retry "
                                "once it is done",
                                name);
    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    if ((rc = orc_store_meta_delete(s->store, key)) < 0 && rc != ORC_ENOTFOUND)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(s->store));
    if (orc_engine_site_forget_state(s->engine, name) < 0) /* no draining left behind */
        orc_log(ORC_LOG_WARN, "sites", "site %s: its draining state stays: %s", name,
                orc_store_errmsg(s->store));
    forget_registered(s, name);
    orc__sites_forget_cache(s);
    orc_log(ORC_LOG_INFO, "sites", "site %s removed by %s", name,
            orc_api_req_identity(req)->subject);
    return orc_api_reply_when_durable(req, s->commit, 204, NULL);
}

int orc__sites_admin_register(orc_api_t *api, struct orc_sites_api *s)
{
    static const char definition[] =
        "{\"type\":\"object\",\"required\":[\"name\",\"driver\"],\"description\":\"the keys "
        "of an entry of the sites file (docs/drivers.md)\",\"properties\":{"
        "\"name\":{\"type\":\"string\"},\"driver\":{\"type\":\"string\"},"
        "\"description\":{\"type\":\"string\"},\"priority\":{\"type\":\"integer\"},"
        "\"enabled\":{\"type\":\"boolean\"},\"credentials\":{\"type\":\"string\","
        "\"description\":\"the name of the site's secret (secrets file or "
        "ORC_SECRET_NAME), never the secret\"},\"config\":{\"type\":\"object\"},"
        "\"pools\":{\"type\":\"array\"}}}";
    static const char applied[] =
        "{\"type\":\"object\",\"required\":[\"name\",\"source\",\"links\"],\"properties\":{"
        "\"name\":{\"type\":\"string\"},\"source\":{\"type\":\"string\"},"
        "\"links\":{\"type\":\"array\"}}}";
    static const orc_api_response_doc_t created_docs[] = {
        {201, "Registered: the site opens now (GET /sites/{name} says how it went)",
         "application/json", applied},
        {400, "Not a site definition (the sites file parser's errors)", "application/json", NULL},
        {403, "Not an operator", "application/json", NULL},
        {409, "A site of that name exists", "application/json", NULL},
        {415, "The body is not JSON", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t replaced_docs[] = {
        {200, "Changed: the site opens again with its new definition", "application/json", applied},
        {400, "Not a site definition, or another name", "application/json", NULL},
        {403, "Not an operator, or another operator's site", "application/json", NULL},
        {404, "No such site", "application/json", NULL},
        {409, "A sites-file site, or a deployment is being worked on there", "application/json",
         NULL},
        {415, "The body is not JSON", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t removed_docs[] = {
        {204, "Removed: the site closed, its definition is gone", NULL, NULL},
        {403, "Not an operator, or another operator's site", "application/json", NULL},
        {404, "No such site", "application/json", NULL},
        {409,
         "A sites-file site, deployments hold resources there, or a deployment is being "
         "worked on there",
         "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"POST", "/sites", register_site, s, "Register a site",
         "Adds a site with the keys of a sites-file entry; it opens at once, and is kept in "
         "the store for every daemon sharing it.",
         "Sites", definition, NULL, created_docs, ORC_API_ACCESS_OPERATOR},
        {"PUT", "/sites/{name}", replace_site, s, "Change a registered site",
         "Replaces its definition (enabled: false closes it); only its operator or an admin.",
         "Sites", definition, NULL, replaced_docs, ORC_API_ACCESS_OPERATOR},
        {"DELETE", "/sites/{name}", remove_site, s, "Remove a registered site",
         "Once no deployment holds resources there; only its operator or an admin.", "Sites", NULL,
         NULL, removed_docs, ORC_API_ACCESS_OPERATOR},
    };

    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
