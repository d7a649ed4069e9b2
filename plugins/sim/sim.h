/*
 * The sim driver's internals, shared by sim.c (the slots, ABI 2's stop,
 * start and stop_workload included, pending operations, latency, failure
 * injection, cancel) and sim_cloud.c (site config, the
 * "cloud": resources, capacity accounting and the inventory file persisted
 * atomically on every change). Not part of the ABI.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"

enum sim_opk {
    SIM_OPEN = 0,
    SIM_CLOSE,
    SIM_INVENTORY,
    SIM_PROVISION,
    SIM_DEPROVISION,
    SIM_STATUS,
    SIM_ADOPT,
    SIM_START,
    SIM_EXEC,
    SIM_LOGS,
    SIM_STOP_WL,   /* stop_workload (ABI 2) */
    SIM_STOP,      /* stop (ABI 2) */
    SIM_START_RES, /* start (ABI 2) */
    SIM_NOPS
};

struct sim_latency {
    uint32_t fixed_ms;
    uint32_t jitter_ms; /* uniform in [0, jitter_ms] added */
};

#define SIM_MAX_MODELS 16
#define SIM_MODEL_LEN 32

struct sim_gpu {
    char model[SIM_MODEL_LEN];
    int64_t total;
    double price; /* per GPU-hour; -1 unknown */
};

struct sim_pending;

/* What the resources hold, kept up to date on every add and delete. */
struct sim_usage {
    int64_t cpus, mem;
    int64_t gpus[SIM_MAX_MODELS]; /* by index in struct sim.gpus */
};

/* Per-site state (struct orc_driver.state_size): allocated and zeroed by the core. */
struct sim {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    /* config */
    char *path; /* inventory file; NULL: memory only */
    bool fsync;
    bool leave_failed; /* injected provision failures leave a FAILED resource */
    bool public_ip;    /* the site can give public addresses */
    uint64_t rng;
    struct sim_latency lat[SIM_NOPS];
    double fail[SIM_NOPS]; /* failure rates */
    double hang[SIM_NOPS]; /* rates of never calling back (until cancel) */
    int64_t cpus, mem;     /* capacity */
    struct sim_gpu gpus[SIM_MAX_MODELS];
    size_t ngpus;
    double price_cpu;
    int64_t max_gpus_per_node;
    /* the cloud */
    json_t *resources; /* name -> record */
    int64_t provisioned, deprovisioned;
    struct sim_usage used;
    json_t *transit;  /* names of the records with a ready_ms / gone_ms still to apply */
    int64_t next_due; /* the earliest of those times; INT64_MAX: none */
    bool dirty;       /* the file is behind memory */
    uint64_t flush_timer;
    /* shared: several daemons' sites on one inventory (sim_share_begin) */
    bool shared;
    bool locked;          /* holds the lock of its directory's shared inventories */
    uint64_t unlock_timer;
    struct { long long ino, size, mtime_ns; } seen; /* the file as last read or written */
    /* operations */
    struct sim_pending *pending;             /* in flight */
    struct sim_pending *done_head, *done_tail; /* completed, callbacks not delivered yet */
    uint64_t deliver_timer;
    bool closing;
};

/* Internal to the shared object whatever the compiler flags. */
#pragma GCC visibility push(hidden)

/* sim_cloud.c */
int64_t sim_now_ms(void);
uint64_t sim_rand(struct sim *s);
double sim_rand01(struct sim *s);
/* Parses conf->config_json into s; < 0 with op->error on a bad config. */
int sim_config(struct sim *s, orc_op_t *op);
void sim_config_free(struct sim *s);
/* Reads the inventory file (absent: an empty cloud). < 0 with op->error. */
int sim_load(struct sim *s, orc_op_t *op);
/* Writes the inventory file atomically (no-op without a path) and clears
 * s->dirty. 0 or < 0. */
int sim_persist(struct sim *s);
/* Shared inventories: from here to the end of this loop turn this process holds the
 * inventory's lock and works on the file as it is (read again if another process wrote
 * it); the changes of the turn are written before the lock is let go. No-op unless the
 * site's config says `shared: true`. */
void sim_share_begin(struct sim *s);
void sim_share_end(struct sim *s);
/* Marks the file behind memory: written on the next loop iteration, and in
 * any case before the next operation's callback (sim.c). */
void sim_dirty(struct sim *s);
/* Applies time-driven transitions (creation done, deletion done) that are
 * due at now. Cheap when nothing is due. */
void sim_settle(struct sim *s, int64_t now);
/* Notes that record name has a ready_ms / gone_ms to apply at time t (>= 0;
 * < 0: never, nothing to note). */
void sim_due(struct sim *s, const char *name, int64_t t);
/* Deletes a record, releasing its capacity. */
void sim_record_del(struct sim *s, const char *name);
/* Recomputes usage and next_due from the records (after loading). */
void sim_recount(struct sim *s);
/* Capacity check for a new resource; 0, or ORC_DRV_ENOCAPACITY / ORC_ENOTSUP
 * with op->error. *model gets the GPU model chosen (or ""). */
int sim_fit(struct sim *s, orc_op_t *op, const struct orc_node_req *req,
            char model[SIM_MODEL_LEN]);
/* Adds a resource record for req (state CREATING). NULL on OOM. */
json_t *sim_record_new(struct sim *s, const struct orc_node_req *req, const char *model,
                       int64_t now, int64_t ready_ms);
/* Fills op's results from a record (exists, state, attributes). */
int sim_record_report(struct sim *s, orc_op_t *op, const json_t *rec);
enum orc_drv_res_state sim_record_state(const json_t *rec);
void sim_record_set_state(json_t *rec, enum orc_drv_res_state st);
int sim_record_log(struct sim *s, json_t *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A workload entry of a record: "running" (or an older file's command
 * string) or "stopped". */
bool sim_workload_running(const json_t *wl);
/* Adds the inventory pools to op. */
int sim_inventory_report(struct sim *s, orc_op_t *op);

#pragma GCC visibility pop

#endif
