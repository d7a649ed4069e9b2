/*
 * The orchestration services the daemon runs beside its HTTP API: the store
 * (under the data directory), the driver plugins, the sites file, the
 * deployment engine, libtosca, and the /deployments routes. Started after
 * the API is created and before it listens; stopped after it closed.
 */
#ifndef ORC_SERVICES_H
#define ORC_SERVICES_H

#include <uv.h>

#include "api/api.h"
#include "config.h"

struct orc_services;

/* Opens the store, loads the drivers, reads the sites, registers the routes
 * and starts the engine (which opens the sites and resumes deployments left
 * in progress). Returns 0, or < 0 after logging why. */
int orc_services_start(uv_loop_t *loop, const orc_config_t *cfg, orc_api_t *api,
                       struct orc_services **out);

/* Stops the engine (deployments keep their state for the next start),
 * closes the sites, unloads the drivers, closes the store; done runs once,
 * later, after which svc is freed. */
typedef void (*orc_services_done_fn)(void *data);
void orc_services_stop(struct orc_services *svc, orc_services_done_fn done, void *data);

#endif
