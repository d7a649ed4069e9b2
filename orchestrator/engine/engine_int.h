/* Internals of the engine shared by engine.c (runs, DAG) and outputs.c. */
#ifndef ORC_ENGINE_INT_H
#define ORC_ENGINE_INT_H

#include "engine.h"
#include "../sched/rank.h"

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

/* One node instance and the driver operation working on it. */
struct inst {
    struct nrun *node;
    uint32_t index;
    enum inst_state st;
    char res_uuid[ORC_UUID_LEN];
    char name[ORC_DRV_NAME_LEN]; /* provider-side name */
    orc_res_state_t res_state;   /* as stored */
    bool on_site;                /* something may exist at site */
    char site[64];               /* the site it was placed on */
    json_t *attrs;               /* attributes from the driver (object) */
    orc_op_t op;
};

struct nrun {
    struct run *run;
    const json_t *plan_node;
    const char *name;
    const char *type;
    int kind;
    struct nrun *host;   /* the node it is hosted on, or NULL */
    struct nrun **deps;  /* nodes it waits for */
    size_t ndeps;
    struct inst *inst;
    size_t ninst;
};

struct engine_site {
    const struct orc_site_def *def;
    struct orc_drv_site *site;
    bool open;
    bool opening; /* site_open in flight */
    orc_op_t op; /* open / close / inventory */
    struct orc_engine *eng;
};

enum run_what { RUN_CREATE, RUN_DELETE };
enum run_phase { PH_RANK, PH_DEPLOY, PH_CLEANUP, PH_DELETE, PH_DONE };

struct run {
    struct orc_engine *eng;
    char uuid[ORC_UUID_LEN];
    enum run_what what;
    enum run_phase phase;
    orc_deployment_t *dep;
    json_t *plan;
    struct nrun *nodes;
    size_t nnodes;
    size_t order[64]; /* ranked site indices */
    size_t norder, pos;
    int attempt;
    bool resumed; /* re-driven after a restart: only the running attempt's site is known */
    bool attempt_ended; /* the current attempt's end is stored already */
    struct engine_site *site;
    unsigned inflight;
    bool failed;     /* the current attempt failed: finish in-flight ops, clean up */
    bool stopping;   /* engine closing */
    char error[512];
    struct rank_probe *probes; /* inventory questions while ranking */
    size_t nprobes, probes_pending;
    uv_timer_t timer; /* provider deadline */
    bool timer_on;
    struct run *next;
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
    struct engine_site *esites;
    size_t nsites;
    size_t opening;
    struct run *runs;
    orc_engine_done_fn ready, done;
    void *ready_ud, *done_ud;
    bool started; /* sites opened: creates run now, earlier ones wait for resume_all */
    bool closing;
    size_t closing_sites;
    unsigned closing_timers; /* uv handle closes pending (runs, callbacks, http) */
    struct orc_http *http;
    struct callback *callbacks;
    uv_idle_t *ready_idle; /* start without sites: answers on a later iteration */
};

/* engine.c: calls the close callback once everything is closed */
void orc__engine_maybe_done(struct orc_engine *eng);

/* callback.c */
void orc_engine_callback(struct orc_engine *eng, const char *uuid);
void orc_engine_callbacks_close(struct orc_engine *eng);

/* outputs.c: evaluates the plan's outputs with the resources' attributes. */
json_t *orc_engine_outputs(const struct run *r);

#endif
