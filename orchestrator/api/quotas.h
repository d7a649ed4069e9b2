/*
 * Quotas per user group (docs/api.md "Quotas"): the most deployments a group may have
 * at once, and the most GPUs its deployments may ask for, by model and in all. A
 * deployment belongs to a group through its userGroup. Admins read and set them with
 * GET /quotas and PUT /quotas/{group}; they are kept in the store (its meta table, key
 * "quota/GROUP"), so every daemon on a shared store applies the same. A create or an
 * update that would go past its group's quota is refused with a 403 that says which
 * limit and by how much.
 */
#ifndef ORC_API_QUOTAS_H
#define ORC_API_QUOTAS_H

#include <jansson.h>

#include "api.h"
#include "../store/store.h"

/* Whether a deployment of group with plan may be made (or updated: except_uuid is the
 * deployment being updated, whose present plan does not count). 0 when it may, or the
 * failure already recorded on req (403 past the quota; a store error). */
int orc_quota_check(orc_api_req_t *req, orc_store_t *store, const char *group, const json_t *plan,
                    const char *except_uuid);

struct orc_commit_s;
struct orc_quotas_api {
    orc_store_t *store;
    struct orc_commit_s *commit; /* writes are answered once durable */
};

/* Registers GET /quotas, GET, PUT and DELETE /quotas/{group}; ctx must outlive the api. */
int orc_api_quotas_register(orc_api_t *api, struct orc_quotas_api *ctx);

#endif
