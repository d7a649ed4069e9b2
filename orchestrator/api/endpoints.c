/*
 * The endpoints the daemon always has: GET / (server name), /info (build and
 * git, as the original's Spring actuator shape), /configuration (companion
 * service endpoints from the configuration), /healthz (liveness), /readyz
 * (every readiness check), /metrics (Prometheus) and /openapi.json (the
 * document generated from the route table). Each is registered like any
 * other subsystem's route, with its documentation.
 */
#include <string.h>

#include "../daemon.h"
#include "internal.h"

static const char info_schema[] =
    "{\"type\":\"object\",\"required\":[\"build\",\"git\"],\"properties\":{"
    "\"build\":{\"type\":\"object\",\"required\":[\"version\",\"name\",\"time\"],"
    "\"properties\":{\"version\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
    "\"time\":{\"type\":\"string\"},\"artifact\":{\"type\":\"string\"}}},"
    "\"git\":{\"type\":\"object\",\"required\":[\"branch\",\"commit\"],"
    "\"properties\":{\"branch\":{\"type\":\"string\"},\"commit\":{\"type\":\"object\","
    "\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"}}}}}}}";

static const char string_map_schema[] =
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}";

static const char health_schema[] =
    "{\"type\":\"object\",\"required\":[\"status\"],\"additionalProperties\":false,"
    "\"properties\":{\"status\":{\"type\":\"string\",\"enum\":[\"ok\"]}}}";

static const char ready_schema[] =
    "{\"type\":\"object\",\"required\":[\"status\",\"checks\"],"
    "\"additionalProperties\":false,\"properties\":{"
    "\"status\":{\"type\":\"string\",\"enum\":[\"ready\"]},"
    "\"checks\":{\"type\":\"object\",\"description\":\"check name -> ok or why not\","
    "\"additionalProperties\":{\"type\":\"string\"}}}}";

/* the error JSON with the state of each check */
static const char not_ready_schema[] =
    "{\"allOf\":[{\"$ref\":\"#/components/schemas/Error\"},{\"type\":\"object\","
    "\"required\":[\"checks\"],\"properties\":{\"checks\":{\"type\":\"object\","
    "\"additionalProperties\":{\"type\":\"string\"}}}}]}";

static const char openapi_schema[] =
    "{\"type\":\"object\",\"required\":[\"openapi\",\"info\",\"paths\",\"components\"],"
    "\"properties\":{\"openapi\":{\"type\":\"string\",\"pattern\":\"^3\\\\.0\\\\.\"},"
    "\"info\":{\"type\":\"object\",\"required\":[\"title\",\"version\"]},"
    "\"servers\":{\"type\":\"array\"},\"tags\":{\"type\":\"array\"},"
    "\"paths\":{\"type\":\"object\"},\"components\":{\"type\":\"object\"}}}";

static int get_root(orc_api_req_t *req, void *data)
{
    return orc_api_send_text(req, 200, ORC_NAME, strlen(ORC_NAME));
}

static int get_info(orc_api_req_t *req, void *data)
{
    return orc_api_send_json_new(req, 200,
                                 json_pack("{s:{s:s, s:s, s:s, s:s}, s:{s:s, s:{s:s}}}", "build",
                                           "version", ORC_VERSION, "name", ORC_NAME, "artifact",
                                           ORC_NAME, "time", orc_build_time(), "git", "branch",
                                           ORC_GIT_BRANCH, "commit", "id", ORC_GIT_COMMIT));
}

static int get_configuration(orc_api_req_t *req, void *data)
{
    const json_t *map = req->api->cfg->configuration;

    if (map == NULL)
        return orc_api_send_body(req, 200, "application/json", "{}", 2);
    return orc_api_send_json(req, 200, map);
}

static int get_healthz(orc_api_req_t *req, void *data)
{
    static const char body[] = "{\"status\":\"ok\"}";

    return orc_api_send_body(req, 200, "application/json", body, sizeof(body) - 1);
}

static bool daemon_ready(void *data, const char **reason)
{
    orc_api_t *api = data;

    *reason = api->draining ? "shutting down" : "starting";
    return api->ready && !api->draining;
}

static int get_readyz(orc_api_req_t *req, void *data)
{
    orc_api_t *api = req->api;
    json_t *checks = json_object();
    const char *first = NULL, *first_name = NULL;

    for (size_t i = 0; checks != NULL && i < api->nchecks; i++) {
        const char *reason = "not ready";
        bool ok = api->checks[i].fn(api->checks[i].data, &reason);
        json_object_set_new(checks, api->checks[i].name, json_string(ok ? "ok" : reason));
        if (!ok && first == NULL) {
            first = reason;
            first_name = api->checks[i].name;
        }
    }
    if (checks == NULL)
        return ORC_ENOMEM;
    if (first == NULL)
        return orc_api_send_json_new(req, 200,
                                     json_pack("{s:s, s:o}", "status", "ready", "checks", checks));
    return orc_api_send_json_new(
        req, 503,
        json_pack("{s:i, s:s, s:s+++, s:o}", "code", 503, "title", orc_http_reason(503), "message",
                  "not ready: ", first_name, ": ", first, "checks", checks));
}

static int get_metrics(orc_api_req_t *req, void *data)
{
    size_t len = 0;
    char *text = orc_api_metrics_text(req->api, &len);
    int rc;

    if (text == NULL)
        return ORC_ENOMEM;
    rc = orc_api_send_body(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    orc_free(text);
    return rc;
}

static int get_openapi(orc_api_req_t *req, void *data)
{
    size_t len = 0;
    char *text = orc_api_openapi_text(req->api, orc_api_req_base_url(req), &len);
    int rc;

    if (text == NULL)
        return ORC_ENOMEM;
    rc = orc_api_send_body(req, 200, "application/json", text, len);
    orc_free(text);
    return rc;
}

static const orc_api_response_doc_t root_responses[] = {
    {200, "The server's name", "text/plain", "{\"type\":\"string\",\"minLength\":1}"},
    {0, 0, 0, 0}};
static const orc_api_response_doc_t info_responses[] = {
    {200, "Build and source of the running daemon", "application/json", info_schema}, {0, 0, 0, 0}};
static const orc_api_response_doc_t configuration_responses[] = {
    {200, "Endpoints of companion services (may be empty strings)", "application/json",
     string_map_schema},
    {0, 0, 0, 0}};
static const orc_api_response_doc_t healthz_responses[] = {
    {200, "The daemon is alive", "application/json", health_schema}, {0, 0, 0, 0}};
static const orc_api_response_doc_t readyz_responses[] = {
    {200, "Every readiness check passes", "application/json", ready_schema},
    {503, "Some check fails; message and checks say which", "application/json", not_ready_schema},
    {0, 0, 0, 0}};
static const orc_api_response_doc_t metrics_responses[] = {
    {200, "Prometheus text format 0.0.4", "text/plain", "{\"type\":\"string\"}"}, {0, 0, 0, 0}};
static const orc_api_response_doc_t openapi_responses[] = {
    {200, "This document", "application/json", openapi_schema}, {0, 0, 0, 0}};

static const orc_api_route_t builtin_routes[] = {
    {.method = "GET",
     .pattern = "/",
     .handler = get_root,
     .tag = "Server",
     .summary = "Server name",
     .responses = root_responses,
     .access = ORC_API_ACCESS_PUBLIC},
    {.method = "GET",
     .pattern = "/info",
     .handler = get_info,
     .tag = "Server",
     .summary = "Build information",
     .responses = info_responses,
     .access = ORC_API_ACCESS_PUBLIC},
    {.method = "GET",
     .pattern = "/configuration",
     .handler = get_configuration,
     .tag = "Server",
     .summary = "Configuration for clients",
     .responses = configuration_responses,
     .access = ORC_API_ACCESS_PUBLIC},
    {.method = "GET",
     .pattern = "/healthz",
     .handler = get_healthz,
     .tag = "Operations",
     .summary = "Liveness",
     .responses = healthz_responses,
     .access = ORC_API_ACCESS_PUBLIC},
    {.method = "GET",
     .pattern = "/readyz",
     .handler = get_readyz,
     .tag = "Operations",
     .summary = "Readiness",
     .description = "200 when every readiness check passes, else 503.",
     .responses = readyz_responses,
     .access = ORC_API_ACCESS_PUBLIC},
    {.method = "GET",
     .pattern = "/metrics",
     .handler = get_metrics,
     .tag = "Operations",
     .summary = "Prometheus metrics",
     .responses = metrics_responses,
     .access = ORC_API_ACCESS_OPERATOR},
    {.method = "GET",
     .pattern = "/openapi.json",
     .handler = get_openapi,
     .tag = "Operations",
     .summary = "This API's OpenAPI 3 document",
     .responses = openapi_responses,
     .access = ORC_API_ACCESS_PUBLIC},
};

int orc_api_register_builtin(orc_api_t *api)
{
    int rc = orc_api_register_all(api, builtin_routes,
                                  sizeof(builtin_routes) / sizeof(builtin_routes[0]));

    if (rc == 0)
        rc = orc_api_add_ready_check(api, "daemon", daemon_ready, api);
    return rc;
}
