/*
 * The deployments endpoints of API.md: create (template validated and
 * planned by libtosca, stored durably before the 201), list, show, delete,
 * reset, and the sub-resources (template, log, outputs, resources, events,
 * extrainfo). They read and write the store and hand work to the engine.
 * The events (a JSON list, or a live stream of server-sent events) are
 * events.c's.
 */
#ifndef ORC_API_DEPLOYMENTS_H
#define ORC_API_DEPLOYMENTS_H

#include "api.h"
#include "../engine/engine.h"
#include "../store/store.h"
#include "tosca/tosca.h"

struct orc_deployments_api {
    orc_store_t *store;
    struct orc_engine *engine;
    struct orc_planner *planner; /* loads and plans templates off the loop */
    struct orc_catalog *catalog; /* templateName: a template of the catalog; NULL: none */
    unsigned user_deployments; /* quota of an authenticated user (0: none) */
    bool callback_public_only; /* a callback to a literal private address is a 400 */
    /* group commit of the store: answers that acknowledge a write wait for it */
    struct orc_commit_s *commit;
    /* the GETs' reads off the loop, each on a reader's own handle; NULL: on the loop */
    struct orc_readers_s *readers;
};

/* True when the caller may see d (API.md "Auth"): they created it, it belongs to a
 * group they are in, or they are an admin. Others get 404, as if it did not exist. */
bool orc_deployment_visible(const orc_identity_t *id, const orc_deployment_t *d);

/* Registers the routes; ctx must outlive the api. 0 or an ORC_E* code. */
int orc_api_deployments_register(orc_api_t *api, struct orc_deployments_api *ctx);

/* Shared by the API's collections. The 400 of an invalid template: each error with its
 * file:line:col. */
int orc_api_template_error(orc_api_req_t *req, const tosca_diags_t *d);
/* The failure of a template the planner would not take (rc < 0 of orc_planner_submit or
 * orc_planner_describe): 503 with Retry-After when too many wait, 503 when closing, else
 * 500. */
struct orc_planner;
int orc_api_planner_refused(orc_api_req_t *req, int rc, const struct orc_planner *p);
/* The planner's answer rc as the request's failure (a 400 naming file:line:col for each
 * error of the template), or 0 when it loaded. */
int orc_api_plan_failed(orc_api_req_t *req, int rc, const tosca_diags_t *d);
/* A query parameter that is a number (absent or empty: dflt; above max: max); a 400
 * otherwise. */
int orc_api_uint_query(orc_api_req_t *req, const char *name, uint32_t dflt, uint32_t max,
                       uint32_t *out);
/* A page of content (stolen) as API.md pages: links first, self, next, last (keeping the
 * other query parameters), content, page {size, totalElements, totalPages, number}. */
json_t *orc_api_paged(orc_api_req_t *req, const char *path, json_t *content, uint32_t page,
                      uint32_t size, int64_t total);

/* Answers status (with body, stolen; NULL: none) once what the handler
 * stored is durable (group commit), or 503 if the commit failed. */
int orc_api_reply_when_durable(orc_api_req_t *req, struct orc_commit_s *commit, int status,
                               json_t *body);

/* ---- agent endpoint (agent.c) ---- */

struct orc_agent_api {
    struct orc_engine *engine;  /* checks tokens, applies reports */
    struct orc_commit_s *commit; /* answers wait until the reports are durable */
};
/* Registers POST /agent/v1/deployments/{id}/reports; ctx must outlive the
 * api. 0 or an ORC_E* code. */
int orc_api_agent_register(orc_api_t *api, struct orc_agent_api *ctx);

/* ---- events (events.c) ---- */

/* The event streams of GET /deployments/{id}/events, fed by the engine's
 * notify hook. Loop thread only. */
struct orc_events;

/* Creates them over an open store and its group committer (NULL: writes are
 * durable on return), which must outlive them: a stream sends an event once
 * it is durable. A comment heartbeat goes on every stream each heartbeat_ms
 * (0: 15 s). Returns 0 and *out, or ORC_ENOMEM. */
int orc_events_new(uv_loop_t *loop, orc_store_t *store, struct orc_commit_s *commit,
                   uint64_t heartbeat_ms, struct orc_events **out);
/* Registers GET /deployments/{id}/events: the JSON list (?after=ID), or with
 * Accept: text/event-stream the live stream (docs/api.md). 0 or ORC_E*. */
int orc_api_events_register(orc_api_t *api, struct orc_events *ev);
/* The engine's notify hook (an orc_engine_notify_fn, ud the orc_events):
 * the streams of that deployment read what is new on the next loop turn. */
void orc_events_notify(void *ud, const char *deployment_uuid);
/* Closes the timers and frees ev once they are closed (the loop must run).
 * Call it after the api closed (no stream is open) and after the engine
 * stopped (no notify comes), before the committer closes (a closed stream
 * whose events wait for a commit is freed when the wait returns). NULL-safe. */
void orc_events_close(struct orc_events *ev);

#endif
