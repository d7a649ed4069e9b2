/*
 * What the two halves of /sites share: the reading half (sites.c: lists, drain) and the
 * registering half (sites_admin.c: sites operators add, change and remove at run time).
 */
#ifndef ORC_API_SITES_INT_H
#define ORC_API_SITES_INT_H

#include <stdint.h>

#include "sites.h"

struct site_wait;

/* A site registered through the API, as this daemon last applied it from the store. */
struct registered_site {
    char name[64];
    int64_t updated_ms; /* the stored definition's stamp */
};

struct orc_sites_api {
    uv_loop_t *loop;
    struct orc_engine *engine;
    struct orc_commit_s *commit;
    orc_store_t *store;
    json_t *cached; /* the last answer */
    uint64_t cached_at;
    struct orc_sites_query *query; /* in flight */
    struct site_wait *waiting;
    struct registered_site *registered; /* applied to the engine */
    size_t nregistered, cap_registered;
    uv_timer_t sync_timer; /* every SITES_SYNC_MS: what other daemons stored */
    bool sync_on;
};

/* sites.c */
bool orc__sites_operator(orc_api_req_t *req);
void orc__sites_forget_cache(struct orc_sites_api *s);

/* sites_admin.c: POST /sites, PUT and DELETE /sites/{name}; start applies the sites
 * registered in the store (before the engine starts) and then, every few seconds, what
 * other daemons stored; stop closes its timer (closed runs once it is closed). */
int orc__sites_admin_register(orc_api_t *api, struct orc_sites_api *s);
int orc__sites_admin_start(struct orc_sites_api *s);
void orc__sites_admin_stop(struct orc_sites_api *s, uv_close_cb closed);

#endif
