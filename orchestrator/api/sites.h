/*
 * /sites (docs/api.md "Sites"): the federated sites the daemon deploys on, for everyone
 * to read: driver, state, and what each open site's inventory says now (GPUs by model,
 * CPUs, memory: total and free). Operators also see each site's pools and the name of its
 * credentials. Answers are shared for two seconds: requests that come together ask the
 * drivers once.
 */
#ifndef ORC_API_SITES_H
#define ORC_API_SITES_H

#include <uv.h>

#include "api.h"
#include "../engine/engine.h"

struct orc_sites_api;

/* Over engine, which must outlive it; writes are answered once commit made them durable.
 * 0 and *out, or ORC_ENOMEM. */
struct orc_commit_s;
int orc_sites_api_new(uv_loop_t *loop, struct orc_engine *engine, orc_store_t *store,
                      struct orc_commit_s *commit, struct orc_sites_api **out);
/* Frees it (once its timer closed: run the loop): the requests still waiting were
 * cancelled with the api's close. NULL-safe. */
void orc_sites_api_free(struct orc_sites_api *s);
/* Registers GET /sites, GET /sites/{name}, PATCH /sites/{name} (operators: draining or
 * active), and POST /sites, PUT and DELETE /sites/{name} (operators: sites registered at
 * run time, sites_admin.c); s must outlive the api. */
int orc_api_sites_register(orc_api_t *api, struct orc_sites_api *s);

#endif
