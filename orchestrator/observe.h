/*
 * The daemon's own metrics (observe.c): what a scrape reads, lent by the
 * services that own it. Registered with orc_api_add_metrics.
 */
#ifndef ORC_OBSERVE_H
#define ORC_OBSERVE_H

#include "api/api.h"
#include "store/store.h"

struct orc_engine;
struct orc_planner;
struct orc_drv_registry;
struct orc_commit_s;

struct orc_observe {
    orc_store_t *store;
    struct orc_commit_s *commit; /* NULL: no group commit */
    struct orc_readers_s *readers; /* NULL: the store is read on the loop */
    struct orc_drv_registry *reg;
    struct orc_engine *engine;   /* NULL until the engine exists */
    struct orc_planner *planner; /* NULL until the planner exists */
};

/* An orc_api_metrics_fn; data is a struct orc_observe. */
void orc_observe_metrics(void *data, orc_api_text_t *out);

#endif
