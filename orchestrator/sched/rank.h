/*
 * Site ranking: which sites can run a plan, best first, and why the others
 * cannot. Pure functions over what the engine gathered (each site's driver
 * capabilities and inventory pools); no I/O.
 */
#ifndef ORC_SCHED_RANK_H
#define ORC_SCHED_RANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"

/* What a plan asks of a site. */
struct orc_rank_need {
    uint64_t kinds;          /* ORC_DRV_CAP_KIND bits of the node kinds to provision */
    uint32_t total_gpus;     /* over all instances */
    uint32_t max_gpus_node;  /* the largest single instance */
    char gpu_model[64];      /* "" when no model is asked */
    uint32_t max_cpus_node;
    uint64_t max_mem_node;   /* bytes */
    uint32_t instances;
};

/* What the engine knows of a site. */
struct orc_rank_site {
    const char *name;
    int priority;
    uint64_t caps;              /* the driver's ORC_DRV_CAP_* */
    const struct orc_pool *pools; /* inventory; NULL when the driver gave none */
    size_t npools;
};

/* Summarises a plan (tosca_plan's JSON) into a need. kind_of maps the plan's
 * "kind" strings. Nodes hosted on another node need that host, not a kind of
 * their own (a SERVICE on a COMPUTE node runs as a workload). */
void orc_rank_need_from_plan(const json_t *plan, struct orc_rank_need *need);

/* Fills order[] (n entries at most) with the indices of the sites that fit,
 * best first: priority, then free GPUs of the model, then price, then name.
 * Returns how many fit. When none does, reason (reasonlen bytes) names what
 * could not fit, site by site. */
size_t orc_rank_sites(const struct orc_rank_need *need, const struct orc_rank_site *sites,
                      size_t n, size_t *order, char *reason, size_t reasonlen);

/* Maps "COMPUTE", "SERVICE", ... to enum orc_node_kind; -1 when unknown. */
int orc_rank_kind(const char *name);

#endif
