/*
 * The ssh driver's internals (docs/ssh-site.md): a site is a pool of hosts
 * reached over SSH (the core's client, host->ssh), each with its declared
 * GPUs, CPUs and memory. A node is a work directory BASE/<name> on one
 * host, holding node.json (its allocation: the deployment survives a
 * daemon restart by name alone), and per workload WL.env (its environment,
 * mode 0600), WL.pid (its gpu-agent), WL.status.json (the agent's status)
 * and WL.log. Workloads run under `gpu-agent run`, detached from the SSH
 * session, from the runtime installed once per host (plugins/remote).
 *   ssh.c        the vtable: site open/close, ops in flight, cancel
 *   ssh_conf.c   site config
 *   ssh_pool.c   hosts: scan at open, allocation, runtime install, status polling
 *   ssh_node.c   provision, deprovision, status, adopt, inventory
 *   ssh_wl.c     start_workload, exec, stop_workload, logs
 * Everything runs on the daemon's loop thread.
 */
#ifndef SSH_DRV_H
#define SSH_DRV_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../remote/remote.h"
#include "orc/driver.h"

#define SH_NAME_MAX 63
#define SH_MODEL_LEN 48
#define SH_MAX_HOSTS 256
#define SH_MAX_MODELS 8
#define SH_MAX_GPUS 64

struct sh;
struct sop;
typedef void (*sop_cb)(struct sop *o, int status);

struct sh_model {
    char model[SH_MODEL_LEN];
    uint32_t count;
};

struct sh_host {
    struct sh *s;
    int index;
    char name[64];
    char *address, *user;
    uint16_t port;
    struct orc_ssh_target t;
    struct sh_model models[SH_MAX_MODELS]; /* declared; GPU indices run on in this order */
    uint32_t nmodels, ngpus;
    uint32_t cpus;
    uint64_t mem;
    /* state */
    bool gpu_used[SH_MAX_GPUS];
    uint32_t cpus_used;
    uint64_t mem_used;
    bool scanned;               /* node.json markers read */
    bool down;                  /* the last scan failed: not used for new nodes */
    char why[ORC_OP_ERROR_LEN]; /* why it is down */
    int install;                /* 0 not yet, 1 running, 2 done */
    struct sop *install_waiters;
    struct rmt_install *installing;
    char *rt_dir; /* the runtime's folder on the host */
    /* status polling (one command for every op waiting on this host) */
    struct sop *pollers;
    struct sop *inpoll; /* the ops of the poll in flight */
    uint64_t poll_timer;
    uint64_t rescan_timer;
    bool polling;
    orc_ssh_req_t poll_req;
    orc_ssh_req_t scan_req;
    bool scan_busy;
    orc_ssh_req_t info_req; /* gpu-agent info after the install */
    bool info_busy;
};

struct sh_node {
    struct sh *s;
    char name[SH_NAME_MAX + 1];
    int host;
    enum orc_node_kind kind;
    uint32_t cpus;
    uint64_t mem;
    uint32_t gpus[SH_MAX_GPUS];
    uint32_t ngpus;
    char model[SH_MODEL_LEN];
    char *dir; /* BASE/name on the host */
    bool deleting;
    bool failed; /* its provision failed: only deprovision is left to do */
    bool doomed; /* a deprovision could not reach its host: retried later */
    struct sh_node *next;
};

/* Per-site state (state_size). */
struct sh {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    /* config */
    struct sh_host hosts[SH_MAX_HOSTS];
    int nhosts;
    char *work_dir; /* BASE on every host */
    char *identity, *passphrase, *known_hosts;
    char *agent_check;
    bool trust_declared_gpus;
    uint32_t connect_timeout_ms, keepalive_s, retries, idle_ms;
    uint32_t poll_ms, command_timeout_ms, ready_timeout_ms, stop_timeout_ms;
    struct rmt_runtime rt;
    /* state */
    struct sh_node *nodes;
    struct sop *ops;
    unsigned scans_left; /* site open: hosts still being scanned */
    struct sop *open_op;
    bool closing;
    struct sop *close_op;
    uint64_t doom_timer; /* retries the deletion of doomed nodes */
};

enum sop_kind {
    SOP_OPEN,
    SOP_CLOSE,
    SOP_INVENTORY,
    SOP_PROVISION,
    SOP_DEPROVISION,
    SOP_STATUS,
    SOP_START,
    SOP_EXEC,
    SOP_STOP_WL,
    SOP_LOGS,
};

/* One operation in flight: at most one SSH request at a time (req). */
struct sop {
    struct sh *s;
    orc_op_t *op;
    enum sop_kind kind;
    int step;
    struct sh_node *node;
    struct sh_host *h;
    char wl[SH_NAME_MAX + 1];
    orc_ssh_req_t req;
    sop_cb cb; /* of the request in flight */
    bool req_busy;
    bool canceled;
    bool polling;      /* in h->pollers or h->inpoll */
    json_t *poll_json; /* the workload's status file, from the last poll (or NULL) */
    bool poll_alive;   /* its gpu-agent was alive then */
    bool install_wait; /* in h->install_waiters */
    bool service;
    uint16_t port;
    int64_t deadline_ms; /* readiness or stop deadline; 0: none */
    uint64_t timer;      /* host timer: deferred completion */
    int status;          /* to deliver */
    uint64_t log_offset; /* logs */
    uint32_t log_max;
    char *payload;           /* a file's content written through stdin */
    struct sop *prev, *next; /* s->ops */
    struct sop *wnext;       /* h->install_waiters or h->pollers */
};

/* ---- ssh.c ---- */
struct sop *sop_new(struct sh *s, orc_op_t *op, enum sop_kind kind);
/* Completes op with status (never inside the slot call: callers are
 * callbacks, or use sop_defer). Frees the sop. */
void sop_done(struct sop *o, int status);
int sop_defer(struct sop *o, int status);
/* A slot's answer once it made o: rc (>= 0: o is on its way); when rc < 0,
 * o ends without calling the op back (the slot returns the error). */
int sop_started(struct sop *o, int rc);
/* Runs script on host h with the variables (pairs name, value; NULL-ended)
 * set first as quoted assignments, input on stdin; cb(o, status) later,
 * with o->req holding exit_status and the outputs. */
int sop_run(struct sop *o, struct sh_host *h, const char *const *vars, const char *script,
            const char *input, sop_cb cb);
void sh_close_check(struct sh *s);
int64_t sh_now_ms(void);
char *sh_strdup(struct sh *s, const char *str);
char *sh_printf(struct sh *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- ssh_conf.c ---- */
int sh_config(struct sh *s, orc_op_t *op);
void sh_config_free(struct sh *s);

/* ---- ssh_pool.c ---- */
/* Reads the node.json markers of every host (site open). 0 or < 0. */
int sh_scan_all(struct sh *s);
/* Picks a host for req and reserves its share. 0, or ENOCAPACITY with op->error. */
int sh_allocate(struct sh *s, orc_op_t *op, const struct orc_node_req *req, struct sh_node *n);
void sh_release(struct sh_node *n);
/* Makes sure the runtime is on the host: 1 it is (go on now), 0 cb(o,
 * status) runs once it is (or failed), < 0 it cannot start. */
int sh_runtime_ready(struct sop *o, struct sh_host *h, sop_cb cb);
/* o waits for the host's next status poll: cb runs with the poll's output
 * for o in o->req.out (status < 0: the poll failed). */
int sh_poll_join(struct sop *o, sop_cb cb);
void sh_poll_leave(struct sop *o);
/* A canceled op stops waiting for its host's runtime install. */
void sh_install_leave(struct sop *o);
void sh_host_close(struct sh_host *h);
struct sh_node *sh_node_find(struct sh *s, const char *name);
void sh_node_free(struct sh_node *n);
/* Parses a node.json marker back into a node (scan, adopt). */
struct sh_node *sh_node_from_json(struct sh *s, struct sh_host *h, const char *name, json_t *j);
char *sh_node_json(struct sh_node *n);

/* ---- ssh_node.c ---- */
int sh_provision(void *state, orc_op_t *op, const struct orc_node_req *req);
int sh_deprovision(void *state, orc_op_t *op, const char *name);
int sh_status(void *state, orc_op_t *op, const char *name);
int sh_inventory(void *state, orc_op_t *op);
int sh_report(struct sh *s, orc_op_t *op, const struct sh_node *n);

/* ---- ssh_wl.c ---- */
int sh_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req);
int sh_exec(void *state, orc_op_t *op, const struct orc_exec_req *req);
int sh_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload);
int sh_logs(void *state, orc_op_t *op, const struct orc_logs_req *req);

#endif
