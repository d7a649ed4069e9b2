/*
 * The agent endpoint (deployments.h, "agent endpoint"): gpu-agent posts its
 * reports (inventory, health, workload states, log chunks, heartbeats) to
 * POST /agent/v1/deployments/{id}/reports with the deployment's agent token
 * as a bearer token. The engine turns them into resource attributes; the 200
 * is sent once they are durable, so an agent drops from its queue only what
 * is stored. docs/agent.md describes the wire format.
 */
#include <strings.h>

#include "../base.h"
#include "deployments.h"

/* The token of "Authorization: Bearer TOKEN" (scheme case-insensitive). */
static const char *bearer(orc_api_req_t *req)
{
    const char *h = orc_api_req_header(req, "authorization");

    if (h == NULL || strncasecmp(h, "bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

static int unauthorized(orc_api_req_t *req, const char *why)
{
    orc_api_set_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return orc_api_send_json_new(
        req, 401, json_pack("{ss ss}", "error", "invalid_token", "error_description", why));
}

static int post_reports(orc_api_req_t *req, void *data)
{
    struct orc_agent_api *ctx = data;
    const char *dep = orc_api_req_param(req, "id");
    const char *token = bearer(req);
    json_t *body = NULL;
    uint64_t accepted = 0;
    char why[320];
    int rc;

    if (token == NULL)
        return unauthorized(req, "an agent token (Authorization: Bearer ...) is required");
    if (dep == NULL || !orc_engine_agent_token_ok(ctx->engine, dep, token))
        return unauthorized(req, "the token is not this deployment's agent token");
    rc = orc_api_req_json(req, &body);
    if (rc < 0)
        return rc; /* answered */
    rc = orc_engine_agent_reports(ctx->engine, dep, body, &accepted, why, sizeof(why));
    json_decref(body);
    if (rc == ORC_EFORMAT)
        return orc_api_req_fail(req, 400, "%s", why);
    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "%s", why);
    if (rc < 0)
        return orc_api_req_fail(req, 500, "cannot store the reports: %s", why);
    return orc_api_reply_when_durable(req, ctx->commit, 200,
                                      json_pack("{sI}", "accepted", (json_int_t)accepted));
}

int orc_api_agent_register(orc_api_t *api, struct orc_agent_api *ctx)
{
    static const orc_api_response_doc_t posted[] = {
        {200, "Stored (durable): the agent may drop these reports", "application/json",
         "{\"type\":\"object\",\"required\":[\"accepted\"],\"properties\":{\"accepted\":"
         "{\"type\":\"integer\",\"description\":\"the highest seq stored\"}}}"},
        {400, "A malformed batch", "application/json", NULL},
        {401, "No token, or not this deployment's", "application/json", NULL},
        {404, "The deployment or a resource is not there (any more)", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"POST", "/agent/v1/deployments/{id}/reports", post_reports, ctx,
         "gpu-agent reports",
         "A batch of reports of one agent: inventory, health, workload, log, heartbeat. "
         "Authorization: Bearer <the deployment's agent token>, which the engine puts in the "
         "agent's environment (ORC_AGENT_TOKEN).",
         "Agents",
         "{\"type\":\"object\",\"required\":[\"resource\",\"reports\"],\"properties\":{"
         "\"resource\":{\"type\":\"string\"},\"host_resource\":{\"type\":\"string\"},"
         "\"agent\":{\"type\":\"object\"},\"reports\":{\"type\":\"array\","
         "\"items\":{\"type\":\"object\",\"required\":[\"type\",\"data\"],\"properties\":{"
         "\"seq\":{\"type\":\"integer\"},\"type\":{\"type\":\"string\",\"enum\":[\"inventory\","
         "\"health\",\"workload\",\"log\",\"heartbeat\"]},\"time_ms\":{\"type\":\"integer\"},"
         "\"data\":{\"type\":\"object\"}}}}}}",
         NULL, posted, ORC_API_ACCESS_PUBLIC}, /* its own per-deployment token */
    };

    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
