/* Internals of the engine shared by engine.c (runs, DAG) and outputs.c. */
#ifndef ORC_ENGINE_INT_H
#define ORC_ENGINE_INT_H

#include "engine.h"
#include "../sched/rank.h"
#include "../store/commit.h"

struct run;
struct nrun;

/* One site's inventory, asked while ranking. */
struct rank_probe {
    struct run *run;
    struct engine_site *site;
    orc_op_t op;
    bool answered; /* with pools */
};

enum inst_state { I_PENDING, I_RUNNING, I_DONE, I_FAILED };

/* What a run does with an instance. A create makes every instance; an
 * update (instances.c) keeps what matches the new plan, removes what the
 * plan no longer has room for, restarts workloads whose specification
 * changed and replaces compute nodes whose specification changed. */
enum inst_act {
    ACT_CREATE = 0, /* provision / start it (idempotent: also re-drives) */
    ACT_KEEP,       /* up to date: nothing to do */
    ACT_REMOVE,     /* scale-in or gone from the template: remove it and its row */
    ACT_RESTART,    /* workload: stop, then start with the new specification */
    ACT_REPLACE,    /* compute: deprovision, then provision with the new specification */
};

#define SPEC_LEN 17 /* 16 hex digits of a 64-bit hash and the NUL */
#define WORKLOAD_LEN 96

/* The driver call an instance waits to make until the transitions stored
 * before it are durable (group commit: run.c, call_after_commit). */
enum inst_call { CALL_NONE, CALL_ACTION, CALL_PREPARE, CALL_DEPROVISION, CALL_REMOVE, CALL_USER };

/* One node instance and the driver operation working on it. */
struct inst {
    struct nrun *node;
    uint32_t index;
    enum inst_state st;
    enum inst_act act;
    bool prepared; /* RESTART: stopped already; REPLACE: deprovisioned */
    char res_uuid[ORC_UUID_LEN];
    char name[ORC_DRV_NAME_LEN]; /* provider-side name (derived from deployment, node, index) */
    char host_name[ORC_DRV_NAME_LEN]; /* hosted: provider name of the compute it runs on */
    char workload[WORKLOAD_LEN];      /* hosted: its workload id on that compute */
    char spec[SPEC_LEN];              /* specification it was last deployed with; "": unknown */
    orc_res_state_t res_state;        /* as stored */
    bool on_site;                     /* something may exist at site */
    char site[64];                    /* the site it was placed on */
    json_t *attrs;                    /* attributes from the driver (object) */
    int64_t created_ms;               /* of its row: victims of a scale-in are the newest */
    enum inst_call call;              /* waiting for the commit to make this call */
    bool undeletable;                 /* its deprovision failed in this run: not tried again */
    orc_commit_wait_t wait;
    orc_op_t op;
};

/* What a run needs of a plan node once it is built: copied out of the plan,
 * which is not kept (a run's memory is a few kB; the outputs read the plan
 * again at the end). Strings live in `arena`. */
struct node_fields {
    uint32_t num_cpus, num_gpus;
    uint64_t mem_size, disk_size;                               /* bytes */
    const char *gpu_model, *gpu_vendor, *instance_type, *image; /* NULL: not asked */
    const char *command;                                        /* a workload's */
    const char *ready_path;                                     /* a service's readiness_path */
    uint16_t port;                                              /* a service's */
    bool public_ip;     /* a compute node's endpoint capability says network_name: PUBLIC */
    uint16_t ports[16]; /* a compute node's endpoint capability ports (their source) */
    size_t nports;
    struct orc_kv *env; /* a workload's environment, nenv pairs */
    size_t nenv;
    char *node_json; /* the plan node as JSON text, for drivers with ORC_DRV_CAP_NODE_JSON */
    char *arena;
};

struct nrun {
    struct run *run;
    const json_t *plan_node; /* while the run is built only; NULL for an orphan */
    struct node_fields f;
    const char *name;
    const char *type;
    int kind;
    bool hosted;        /* runs on a compute node (a workload, software) */
    bool orphan;        /* not in the plan any more: its instances are removed */
    char *owned;        /* orphan: name and type storage */
    struct nrun *host;  /* the node it is hosted on, or NULL */
    struct nrun *top;   /* the compute node at the bottom of its host chain, or NULL */
    struct nrun **deps; /* nodes it waits for */
    size_t ndeps;
    char spec[SPEC_LEN]; /* hash of its specification in the plan */
    struct inst *inst;
    size_t ninst;
};

struct engine_site {
    const struct orc_site_def *def;
    struct orc_sites *owned; /* registered at run time: its one-site list; NULL: the file's */
    size_t index;            /* in eng->esites: stable, a removed site keeps its slot */
    bool removed;            /* taken out at run time: closed (or closing), never placed on */
    bool closing;            /* a removal's close is in flight */
    struct orc_drv_site *site;
    bool open;
    bool opening; /* site_open in flight */
    orc_op_t op;  /* open / close / inventory */
    struct orc_engine *eng;
};

enum run_what { RUN_CREATE, RUN_DELETE, RUN_UPDATE, RUN_ACTION };
enum run_phase { PH_RANK, PH_SHRINK, PH_DEPLOY, PH_CLEANUP, PH_DELETE, PH_ACTION, PH_DONE };

struct run {
    struct orc_engine *eng;
    char uuid[ORC_UUID_LEN];
    enum run_what what;
    enum run_phase phase;
    orc_deployment_t *dep;
    json_t *plan;
    char **secrets; /* values of secret inputs, masked in events and reasons; NULL: none */
    struct nrun *nodes;
    size_t nnodes;
    size_t order[64]; /* ranked site indices */
    size_t norder, pos;
    int attempt;
    bool resumed;       /* re-driven after a restart: only the running attempt's site is known */
    bool attempt_ended; /* the current attempt's end is stored already */
    struct engine_site *site;
    unsigned inflight;
    bool failed;           /* the current attempt failed: finish in-flight ops, clean up */
    bool stopping;         /* engine closing, or the run abandoned: results are not stored */
    bool abandoned;        /* orc_engine_abandon: off the engine's list, freed once idle */
    bool force;            /* delete: done even if the provider fails */
    bool deadline_overall; /* the timer is timeoutMins' (else providerTimeoutMins') */
    char error[512];
    struct rank_probe *probes; /* inventory questions while ranking */
    char draining[160];        /* "; NAME: draining" for each site left out while ranking */
    size_t nprobes, probes_pending;
    uv_timer_t timer; /* provider deadline */
    bool timer_on;
    struct orc_rank_need need; /* what the plan asks of a site (ranking) */
    bool has_outputs;          /* the plan has outputs: they are evaluated at the end */
    bool planned;              /* the deployment had a plan when the run was built */
    struct inst *target;       /* RUN_ACTION: the resource acted on */
    bool action_start;         /* RUN_ACTION: start (else stop) */
    struct run *next, *prev;   /* the engine's runs */
    struct run *hnext;         /* the engine's index by uuid */
    bool listed;               /* on the list and in the index */
};

struct orc_http;

/* One callback delivery, retried until it succeeds or runs out of tries. */
struct callback {
    struct orc_engine *eng;
    char uuid[ORC_UUID_LEN];
    char *url;
    char *body;
    unsigned attempt;
    uv_timer_t timer;
    struct callback *prev, *next;
};

struct orc_engine {
    uv_loop_t *loop;
    orc_store_t *store;
    struct orc_drv_registry *reg;
    const struct orc_sites *sites;
    struct orc_engine_opts opts;
    struct engine_site **esites; /* every site, removed ones too (stable pointers) */
    size_t nsites, cap_sites;
    size_t opening;
    struct run *runs;
    struct run **rindex; /* runs by uuid: chains of rindex_size buckets */
    size_t rindex_size, nruns;
    size_t abandoned; /* abandoned runs not freed yet */
    orc_engine_done_fn ready, done;
    void *ready_ud, *done_ud;
    bool started; /* sites opened: creates run now, earlier ones wait for resume_all */
    bool closing;
    size_t closing_sites;
    unsigned closing_timers; /* uv handle closes pending (runs, callbacks, http) */
    struct orc_http *http;
    orc_commit_t *commit; /* opts.commit, or the engine's own */
    bool own_commit;
    struct callback *callbacks;
    uv_idle_t *ready_idle; /* start without sites: answers on a later iteration */
    uv_timer_t lease_timer; /* leases.c: renewal and take-over */
    bool lease_timer_on;
    size_t leases_held;      /* at the last renewal */
    uint64_t takeovers;      /* deployments taken over from another daemon */
};

/* engine.c: the site of that name (not removed), or NULL */
struct engine_site *orc__engine_site(const struct orc_engine *eng, const char *name);
/* run.c: the run working on a deployment, or NULL */
struct run *orc__engine_find_run(const struct orc_engine *eng, const char *uuid);
/* agent.c: the ORC_AGENT_* variables of a workload's agent into env (room
 * entries; token holds the token's text); how many, 0 when the engine has no
 * agent URL or key */
size_t orc__agent_env(struct run *r, struct inst *in, struct orc_kv *env, size_t room,
                      char token[ORC_AGENT_TOKEN_LEN]);
/* agent.c: the attributes of old that the agent's reports own go into fresh
 * (a driver's answer), over its own */
void orc__agent_keep_attrs(const json_t *old, json_t *fresh);
/* host->agent_state (drivers.h orc_drv_agent_fn; ctx is the engine): what the agent of
 * a resource reported, from the store. */
int orc__agent_state(void *ctx, const char *deployment, const char *resource, char **json);
/* Marks a deployment whose stored plan the engine cannot build a run of (ORC_EFORMAT)
 * CREATE_FAILED (update: UPDATE_FAILED) instead of leaving it in progress for ever. */
void orc__engine_fail_unrunnable(struct orc_engine *eng, const char *uuid, bool update);
/* The node instance ("vm[0]") of the run of deployment that the provider-side name
 * resource is (drivers.h orc_drv_resource_fn; ctx is the engine): 0, or ORC_ENOTFOUND
 * when no run in memory has it. */
int orc__resource_node(void *ctx, const char *deployment, const char *resource, char *node,
                       size_t node_len);
/* Drops what a workload's agent reported (agent keys of its attributes, in the run and the
 * store): its node was deprovisioned to be made again. 0 or < 0 (the store's error). */
int orc__agent_forget(struct orc_engine *eng, const char *deployment, struct inst *in);
/* An update on a site whose nodes start their workloads at boot (ORC_DRV_CAP_AGENT_BOOT):
 * nothing reaches into a running node, so a kept compute instance whose workloads change
 * (one restarts, is added or removed) is replaced, and boots the new set. */
void orc__boot_replace(struct run *r);
/* The boot spec of a compute instance for drivers with ORC_DRV_CAP_AGENT_BOOT (driver.h,
 * orc_node_req.boot_json): orc_malloc'd JSON text, or NULL (out of memory). */
char *orc__boot_spec(struct run *r, const struct inst *host);

/* engine.c: starts the run a stored deployment in progress needs (create, update or
 * delete), as after a restart. */
void orc__engine_resume(struct orc_engine *eng, const char *uuid, orc_dep_status_t status);

/* leases.c (several daemons on one database) */
bool orc__leases_on(const struct orc_engine *eng);
/* Takes the lease of uuid before the engine works on it: 0 (taken, or leases off), 1
 * (another daemon holds it: leave it to that one), < 0 (the store's error). */
int orc__lease_take(struct orc_engine *eng, const char *uuid);
void orc__lease_release(struct orc_engine *eng, const char *uuid);
/* After the start's resume: takes what this daemon held before and what is free, then
 * renews, reconciles and takes over every third of the lease time. */
void orc__leases_start(struct orc_engine *eng);
void orc__leases_close(struct orc_engine *eng);

/* engine.c: calls the close callback once everything is closed */
void orc__engine_maybe_done(struct orc_engine *eng);
/* engine.c: the store failed to make a group of writes durable: the
 * in-memory state is ahead of the disk, so the daemon stops at once (like a
 * database that cannot fsync) and a restart resumes from what is on disk. */
void orc__engine_store_lost(struct orc_engine *eng, int status) __attribute__((noreturn));
/* run.c: frees a run (its timer closes first) */
void orc__run_free(struct run *r);

/* callback.c */
void orc_engine_callback(struct orc_engine *eng, const char *uuid);
void orc_engine_callbacks_close(struct orc_engine *eng);

/* outputs.c: evaluates the plan's outputs with the resources' attributes;
 * plan is the deployment's (the run keeps none). */
json_t *orc_engine_outputs(const struct run *r, const json_t *plan);

/* instances.c: the nodes and instances of a run, from its plan and the
 * resources stored for the deployment. A create makes the plan's instances
 * (a hosted node has one instance per instance of the compute it runs on);
 * a delete or an action takes every stored resource; an update compares the
 * two and gives each instance its inst_act. Inserts the resource rows of
 * new instances. Returns 0, ORC_EFORMAT (a plan that is not ours), a store
 * code or ORC_ENOMEM. */
int orc__run_build(struct run *r);
void orc__run_nodes_free(struct run *r);
struct nrun *orc__run_node(struct run *r, const char *name);
/* The first instance of a node that stays (not being removed), or NULL. */
const struct inst *orc__node_first(const struct nrun *n);
/* "orc-...-0/model_api-0": what a hosted instance is at its provider. */
void orc__inst_physical_id(const struct inst *in, char *out, size_t size);

/* usage.c: an instance that holds capacity (not hosted) began holding it at in->site
 * (its provision succeeded), or stopped (deprovisioned): the usage events. */
void orc__usage_started(struct run *r, const struct inst *in);
void orc__usage_ended(struct run *r, const struct inst *in);

#endif
