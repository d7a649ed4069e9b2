/*
 * Usage of a deployment (usage.c): the summary of its usage events, and the route
 * GET /deployments/{id}/usage.
 */
#ifndef ORC_API_USAGE_H
#define ORC_API_USAGE_H

#include <jansson.h>

#include "../store/store.h"
#include "api.h"

struct orc_deployments_api;

/* The summary of a deployment's events (oldest first) at now_ms: {nodeSeconds,
 * gpuSeconds, nodeHours, gpuHours, sites: [...], intervals: [...], asOf, asOfMs}
 * (docs/api.md "Usage"). NULL when out of memory. */
json_t *orc_usage_summary(const orc_event_t *events, size_t n, int64_t now_ms);

/* Registers GET /deployments/{id}/usage on ctx (deployments.h). */
int orc_api_usage_register(orc_api_t *api, struct orc_deployments_api *ctx);

#endif
