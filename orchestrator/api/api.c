/*
 * The orc_api_t object: creation with the built-in endpoints, route and
 * schema registration for other subsystems, readiness checks, and freeing.
 * The server part (listen, connections, shutdown) is in http.c.
 */
#include <string.h>

#include "internal.h"

static bool auth_ready(void *data, const char **reason)
{
    return orc_auth_keys_ready(data, reason);
}

static int auth_new(orc_api_t *api)
{
    char err[512];
    int rc = orc_auth_new(api->loop, &api->cfg->auth, &api->auth, err, sizeof(err));

    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "api", "%s", err);
        return rc;
    }
    return orc_api_add_ready_check(api, "auth", auth_ready, api->auth);
}

int orc_api_new(uv_loop_t *loop, const orc_config_t *cfg, orc_api_t **out)
{
    orc_api_t *api = orc_calloc(1, sizeof(*api));
    int rc;

    *out = NULL;
    if (api == NULL)
        return ORC_ENOMEM;
    api->loop = loop;
    api->cfg = cfg;
    api->start_ms = orc_now_ms();
    orc_router_init(&api->router);
    orc_metrics_init(&api->metrics);
    api->schemas = json_object();
    api->no_groups = json_array();
    rc = api->schemas && api->no_groups ? orc_httpd_new(api, &api->http) : ORC_ENOMEM;
    if (rc == 0 && cfg->auth_enabled)
        rc = auth_new(api);
    if (rc == 0 && cfg->auth_enabled && cfg->limits.user_rate > 0 &&
        (api->ratelimit = orc_ratelimit_new(cfg->limits.user_rate, cfg->limits.user_burst)) == NULL)
        rc = ORC_ENOMEM;
    if (rc == 0)
        rc = orc_api_register_builtin(api);
    if (rc < 0) {
        orc_api_free(api);
        return rc;
    }
    *out = api;
    return 0;
}

void orc_api_free(orc_api_t *api)
{
    if (api == NULL)
        return;
    orc_httpd_free(api->http);
    orc_auth_free(api->auth);
    orc_ratelimit_free(api->ratelimit);
    orc_router_fini(&api->router);
    orc_metrics_fini(&api->metrics);
    for (size_t i = 0; i < api->nchecks; i++)
        orc_free(api->checks[i].name);
    orc_free(api->checks);
    orc_free(api->sources);
    orc_api_openapi_cache_free(api);
    json_decref(api->schemas);
    json_decref(api->no_groups);
    orc_free(api);
}

int orc_api_register(orc_api_t *api, const orc_api_route_t *def)
{
    struct orc_route *route;
    char why[256] = "";
    int rc;

    if (api == NULL || def == NULL)
        return ORC_EINVAL;
    rc = orc_router_add(&api->router, def, &route, why, sizeof(why));
    if (rc < 0)
        orc_log(ORC_LOG_ERROR, "api", "cannot register %s %s: %s", def->method ? def->method : "?",
                def->pattern ? def->pattern : "?", rc == ORC_ENOMEM ? "out of memory" : why);
    return rc;
}

int orc_api_register_all(orc_api_t *api, const orc_api_route_t *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = orc_api_register(api, &routes[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int orc_api_add_ready_check(orc_api_t *api, const char *name, orc_api_ready_fn fn, void *data)
{
    struct orc_ready_check *grown;
    char *copy;

    if (name == NULL || fn == NULL)
        return ORC_EINVAL;
    for (size_t i = 0; i < api->nchecks; i++)
        if (strcmp(api->checks[i].name, name) == 0)
            return ORC_ECONFLICT;
    copy = orc_strdup(name);
    grown = copy ? orc_realloc(api->checks, (api->nchecks + 1) * sizeof(*grown)) : NULL;
    if (grown == NULL) {
        orc_free(copy);
        return ORC_ENOMEM;
    }
    api->checks = grown;
    api->checks[api->nchecks++] = (struct orc_ready_check){copy, fn, data};
    return 0;
}

void orc_api_set_ready(orc_api_t *api, bool ready)
{
    api->ready = ready;
}
