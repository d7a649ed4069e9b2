/*
 * The deployments endpoints of API.md: create (template validated and
 * planned by libtosca, stored durably before the 201), list, show, delete,
 * reset, and the sub-resources (template, log, outputs, resources, events,
 * extrainfo). They read and write the store and hand work to the engine.
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
    tosca_ctx_t *tosca;
    /* identity of requests while authentication is not configured */
    const char *anonymous_issuer;
    const char *anonymous_subject;
};

/* Registers the routes; ctx must outlive the api. 0 or an ORC_E* code. */
int orc_api_deployments_register(orc_api_t *api, struct orc_deployments_api *ctx);

#endif
