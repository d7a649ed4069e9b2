/*
 * The local driver's internals (docs/local-site.md), shared by its files:
 *   local.c        the vtable: site open/close, operations in flight, cancel,
 *                  provision, deprovision, status, adopt, inventory
 *   local_power.c  the ABI 2 slots: stop_workload, stop and start of a node
 *   local_ready.c  service readiness: a TCP connect to the node's port, or a
 *                  settle time, before start_workload / start call back
 *   local_conf.c   site config, machine capacity, GPU and container runtime
 *                  detection, GPU model matching
 *   local_store.c  names and paths, the work directory, state.json and the
 *                  node.json markers, reconciliation at open
 *   local_proc.c   child processes: supervised workloads (restart, polling of
 *                  adopted processes, stop, hold), exec, logs
 * Not part of the ABI. Everything runs on the daemon's loop thread.
 */
#ifndef LOCAL_H
#define LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "orc/driver.h"

#define LOCAL_NAME_MAX 63     /* node names and workload ids */
#define LOCAL_MODEL_LEN 48    /* short GPU model: "A100", "T4", "RTX 4090" */
#define LOCAL_GPU_NAME_LEN 96 /* full GPU name: "NVIDIA A100-SXM4-80GB" */
#define LOCAL_MAX_GPUS 64
#define LOCAL_MAX_FAILS 32                 /* restart_max_failures upper bound */
#define LOCAL_OUTPUT_MAX ((size_t)1 << 20) /* exec output, logs per call */
#define LOCAL_LOGS_DEFAULT 65536u
#define LOCAL_PROBE_TIMEOUT_MS 10000u /* nvidia-smi -L */
#define LOCAL_GRACE_MS 2000u          /* pipes kept open after a command exited */
#define LOCAL_TAIL_MAX 2048u          /* bytes of a workload's log kept in a failure */
#define LOCAL_DRAIN_MS 2000           /* a stop waits this long at most for its group to empty */

struct local;
struct local_node;
struct lop;

enum local_runtime {
    LOCAL_RT_NONE = 0,
    LOCAL_RT_DOCKER, /* docker, or anything that speaks its CLI */
    LOCAL_RT_PODMAN,
};

struct local_gpu {
    uint32_t index; /* the machine's index (nvidia-smi order, PCI bus order) */
    char model[LOCAL_MODEL_LEN];
    char name[LOCAL_GPU_NAME_LEN];
    char uuid[64];
    char vendor[16];
    struct local_node *owner; /* NULL: free */
};

enum local_wl_state {
    LOCAL_WL_RUNNING = 0,
    LOCAL_WL_BACKOFF,  /* a service waiting for its restart */
    LOCAL_WL_STOPPING, /* signalled by deprovision */
    LOCAL_WL_STOPPED,
    LOCAL_WL_EXITED, /* a job that finished: exit status recorded */
    LOCAL_WL_LOST,   /* a job that ended while nobody watched: status unknown */
    LOCAL_WL_FAILED, /* a service that kept failing: given up */
};

struct local_run;   /* one spawned process of a workload (local_proc.c) */
struct local_tick;  /* a workload's timer: restart backoff or polling */
struct local_ready; /* one readiness wait of an op on a workload (local_ready.c) */

/* A supervised process of a node: argv run in the node's directory. */
struct local_wl {
    struct local_node *node;
    char id[LOCAL_NAME_MAX + 1];
    char **argv;    /* as requested (before a container wrapper), NULL-terminated */
    char **env;     /* "KEY=VALUE" additions, NULL-terminated */
    uint32_t *gpus; /* pinned subset of the node's GPUs (npins), or NULL: all */
    uint32_t npins;
    char *workdir;    /* relative to the node's directory, or NULL */
    uint16_t port;    /* the request's port ($PORT, readiness, endpoint); 0: the node's */
    char *ready_path; /* HTTP path answering 2xx once it is ready, or NULL: TCP only */
    bool service;     /* restart on exit; else a job: record the exit status */
    enum local_wl_state st;
    pid_t pid;               /* leader of the workload's process group; 0: none */
    uint64_t start_time;     /* /proc/PID/stat starttime of pid; 0: unknown */
    struct local_run *run;   /* our child now, or NULL */
    bool polled;             /* pid is not our child: watched by polling */
    struct local_tick *tick; /* NULL until first needed */
    int exit_status;         /* -1: unknown */
    int term_signal;
    uint32_t restarts;
    uint64_t backoff_ms; /* the next restart's delay */
    int64_t started_ms;
    int64_t fails[LOCAL_MAX_FAILS]; /* ring of exit times (services) */
    uint32_t nfails;
    /* stopped on request (stop_workload, node stop): not supervised, never
     * restarted nor re-attached as running, until start_workload / start */
    bool held;
    bool resume;                 /* held by a node stop: the node's start runs it again */
    uint64_t kill_timer;         /* host timer: SIGKILL after stop_timeout_ms (held) */
    pid_t drain_pgid;            /* its ended process group, until it is empty */
    int64_t drain_until_ms;      /* ... or until then */
    struct lop *stop_ops;        /* stop_workload ops waiting for its end (lop->wnext) */
    struct local_ready *waiters; /* readiness waits on it */
    struct local_wl *next;
};

/* A node: the sandbox work_dir/<name>/ and the capacity it holds. */
struct local_node {
    struct local *s;
    char name[LOCAL_NAME_MAX + 1];
    enum orc_node_kind kind;
    uint32_t cpus;
    uint64_t mem;
    uint32_t gpus[LOCAL_MAX_GPUS]; /* machine GPU indices */
    uint32_t ngpus;
    char gpu_model[LOCAL_MODEL_LEN];
    uint16_t port; /* 0: none */
    char *image;   /* container image, or NULL */
    char *failed;  /* why the node is FAILED, or NULL */
    int64_t created_ms;
    struct local_wl *wls;
    bool deleting;
    bool stopped;         /* node stop: res_state STOPPED until start */
    struct lop *del_ops;  /* deprovision ops waiting (through lop->wnext) */
    struct lop *stop_ops; /* node stop ops waiting (through lop->wnext) */
    uint64_t kill_timer;  /* host timer: SIGKILL after stop_timeout_ms */
    uint64_t step_timer;  /* host timer: re-check a deletion */
    struct local_node *next;
};

/* Per-site state (state_size): allocated and zeroed by the core. */
struct local {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    /* config */
    char *work_dir;
    uint32_t max_nodes;
    uint32_t cpus;
    uint64_t mem;
    uint64_t backoff_ms, backoff_max_ms, window_ms, stop_timeout_ms, poll_ms;
    uint64_t ready_timeout_ms, ready_settle_ms;
    uint32_t max_failures;
    enum local_runtime rt;
    char *rt_path; /* the container runtime's executable, or NULL */
    char *rt_conf; /* the config's container_runtime, or NULL: auto */
    char *agent_path;  /* gpu-agent, which launches workloads on the host; NULL: none */
    char *agent_conf;  /* the config's agent: NULL/auto, off, or a path */
    char *agent_check; /* the config's agent_check: none, quick (default), standard */
    struct local_gpu gpus[LOCAL_MAX_GPUS];
    uint32_t ngpus;
    bool gpus_configured;   /* the config's gpus list replaces detection */
    const char *gpu_source; /* "config", "procfs", "nvidia-smi", "none" */
    char *rm_path;
    /* state */
    int lock_fd; /* flock on work_dir/.lock; -1 none */
    bool lock_held;
    struct local_node *nodes;
    uint32_t nnodes;
    struct lop *ops;              /* in flight */
    struct local_child *children; /* helper commands running */
    unsigned handles;             /* uv handles not closed yet */
    unsigned fs_reqs;             /* uv_fs chains (logs) not done yet */
    uint64_t trash_seq;
    bool opened;
    bool closing;
    bool close_kicking;
    struct lop *close_lo;
};

/* ---- operations in flight (local.c) ---------------------------------------- */

enum lop_kind {
    LOP_OPEN = 0,
    LOP_CLOSE,
    LOP_INVENTORY,
    LOP_PROVISION,
    LOP_DEPROVISION,
    LOP_STATUS,
    LOP_ADOPT,
    LOP_START,
    LOP_EXEC,
    LOP_LOGS,
    LOP_STOP_WL,   /* stop_workload */
    LOP_STOP,      /* stop (a node) */
    LOP_START_RES, /* start (a node) */
};

struct lop {
    struct local *s;
    orc_op_t *op;
    enum lop_kind kind;
    uint64_t timer; /* host timer delivering status; 0: none */
    int status;
    bool canceled;
    void *work;              /* what it waits for (child, read, node, workload, the
                                first struct local_ready), or NULL */
    unsigned waiting;        /* readiness waits not ended yet */
    struct lop *prev, *next; /* s->ops */
    struct lop *wnext;       /* node->del_ops, node->stop_ops or wl->stop_ops */
};

struct lop *lop_new(struct local *s, orc_op_t *op, enum lop_kind kind);
void lop_free(struct lop *lo);
/* Delivers status on a later loop iteration. 0, or ORC_ENOMEM (nothing armed). */
int lop_defer(struct lop *lo, int status);
/* Completes now: only from a callback, never inside a slot call. May free s
 * (site close): the caller touches nothing of the site afterwards. */
void lop_complete(struct lop *lo, int status);
/* lop_defer, and lop_complete when no timer can be armed: from callbacks
 * and from other ops' slot calls only, never from lo's own. */
void lop_finish(struct lop *lo, int status);
/* Finishes a site close once nothing is left; call last (s may be freed). */
void local_close_check(struct local *s);
/* The node of a workload request, or < 0 with op->error (ENOTFOUND, or
 * ECONFLICT while it is being deleted or the site closes). */
int local_node_for(struct local *s, orc_op_t *op, const char *name, const char *workload,
                   struct local_node **out);
int local_bad_name(orc_op_t *op, const char *what, const char *name);
/* Every readiness wait of lo ended well, the last on w: report and
 * complete (local.c). */
void local_ready_done(struct lop *lo, struct local_wl *w);
/* A workload or node stopped, or a workload ended: re-check the node's
 * deletion and its stop ops on a later loop iteration (after delay_ms). */
void local_node_kick(struct local_node *n);
void local_node_kick_in(struct local_node *n, uint64_t delay_ms);

/* ---- helpers (local_store.c) ------------------------------------------------- */

char *local_strdup(struct local *s, const char *str);
void local_strv_free(struct local *s, char **v);
char *local_printf(struct local *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t local_now_ms(void);
const char *local_kind_name(enum orc_node_kind k);
bool local_node_name_ok(const char *name);
bool local_wl_id_ok(const char *id);
/* A relative path inside a node: no "..", not absolute, no empty name. */
bool local_relpath_ok(const char *path);
/* work_dir/name[/leaf]: a new string, or NULL on OOM. */
char *local_node_path(struct local *s, const char *name, const char *leaf);
int local_write_atomic(const char *path, const char *data, size_t len);
int local_mkdir_p(const char *path, int mode);

struct local_node *local_node_find(struct local *s, const char *name);
struct local_wl *local_wl_find(struct local_node *n, const char *id);
void local_node_link(struct local *s, struct local_node *n);
void local_node_unlink(struct local *s, struct local_node *n);
/* Frees a node and its workloads; closes their timers, detaches their runs. */
void local_node_free(struct local_node *n);
void local_gpus_release(struct local_node *n);

/* state.json: writes the whole state atomically; 0 or < 0 (logged). */
int local_persist(struct local *s);
int local_marker_write(struct local_node *n);
/* At open: work_dir, lock, state.json, reconciliation. < 0 with op->error. */
int local_store_open(struct local *s, orc_op_t *op);
/* After GPU detection: binds the nodes' GPU indices to the machine's. */
void local_store_bind_gpus(struct local *s);
/* Moves work_dir/name out of the way (.trash-*) and, with remove_now,
 * deletes it in the background (else local_trash_sweep does). 0, or < 0
 * when it could not be moved. Missing: 0. */
int local_trash(struct local *s, const char *name, bool remove_now);
/* Deletes leftover .trash-* entries of work_dir in the background. */
void local_trash_sweep(struct local *s);
void local_store_close(struct local *s);
/* Fills op->exists, op->res_state and the node's attributes. */
int local_report(struct local *s, orc_op_t *op, const struct local_node *n);

/* ---- config and detection (local_conf.c) --------------------------------------- */

int local_config(struct local *s, orc_op_t *op);
void local_config_free(struct local *s);
/* Fills the GPU table from /proc/driver/nvidia. Returns how many, or 0. */
uint32_t local_gpus_from_procfs(struct local *s);
/* Parses `nvidia-smi -L` output into the GPU table; returns how many. */
uint32_t local_gpus_from_smi(struct local *s, const char *out, size_t len);
bool local_gpu_matches(const struct local_gpu *g, const char *model, const char *vendor);
char *local_which(struct local *s, const char *prog);
/* Capacity check; 0 and the GPUs chosen (indices into s->gpus), or
 * ORC_DRV_ENOCAPACITY / ORC_ENOTSUP with op->error. */
int local_fit(struct local *s, orc_op_t *op, const struct orc_node_req *req,
              uint32_t pick[LOCAL_MAX_GPUS]);
int local_inventory_report(struct local *s, orc_op_t *op);

/* ---- processes (local_proc.c) ----------------------------------------------------- */

struct local_child_result {
    int64_t exit_status; /* 128 + signal when killed */
    int term_signal;
    char *out; /* captured stdout+stderr (host->free), or NULL */
    size_t len;
    bool truncated;
    bool timed_out;
};
typedef void (*local_child_cb)(struct local *s, void *arg, struct local_child_result *r);

struct local_child_opts {
    const char *const *argv;
    char *const *env; /* NULL: the daemon's */
    const char *cwd;
    size_t capture;      /* bytes of output kept; 0: output to /dev/null */
    bool kill_group;     /* SIGKILL the process group when the leader exits */
    bool keep_on_close;  /* site close: leave it running (else SIGKILL) */
    bool free_arg;       /* arg is host memory, freed here when cb does not run */
    uint64_t timeout_ms; /* 0: none */
};

/* Runs a helper command (nvidia-smi, rm -rf, exec) in its own process group;
 * cb runs once, later, after every handle closed (never at site close).
 * Returns 0, or < 0 (spawn failed; cb will not run). */
int local_child_run(struct local *s, const struct local_child_opts *o, local_child_cb cb, void *arg,
                    struct local_child **out);
void local_child_kill(struct local_child *c, int sig);
/* Site close: every helper stops being watched; cb never runs. */
void local_children_abandon(struct local *s);

/* Starts a workload on a node. < 0 with op->error when it cannot start. */
int local_wl_start(struct local *s, orc_op_t *op, struct local_node *n,
                   const struct orc_exec_req *req, struct local_wl **out);
/* Re-attaches a workload loaded from state.json: poll it if alive, else
 * restart it (service) or record it as lost (job). */
void local_wl_attach(struct local_wl *w);
/* Deprovision: SIGTERM the workload's group. Returns true while it runs. */
bool local_wl_stop(struct local_wl *w);
/* stop_workload and node stop: supervision ends (no restart), the state is
 * held across daemon restarts, the process group gets SIGTERM, then SIGKILL
 * after stop_timeout_ms. resume: node start runs it again. Readiness waits
 * on it fail (ECONFLICT). Returns true while its process runs (its end
 * kicks the node). The caller persists. */
bool local_wl_hold(struct local_wl *w, bool resume);
/* start_workload after a stop, node start: spawns a held workload again,
 * supervised. < 0 with err when it cannot start (it stays held). */
int local_wl_release(struct local_wl *w, char *err, size_t errlen);
/* Replaces what a (held, not running) workload runs with req's argv, env,
 * GPUs, workdir, port and ready_path. 0, or ORC_ENOMEM (unchanged). */
int local_wl_redefine(struct local_wl *w, const struct orc_exec_req *req);
/* True while members of the process group of w's ended process are still
 * exiting (the SIGKILLed rest of it), at most LOCAL_DRAIN_MS. */
bool local_wl_draining(struct local_wl *w);
/* Running or waiting for its restart: what stop_workload stops. */
bool local_wl_running(const struct local_wl *w);
void local_wl_kill(struct local_wl *w); /* SIGKILL, during a deletion */
bool local_wl_live(const struct local_wl *w);
void local_wl_free(struct local_wl *w);
/* Site close: stops timers and watching; the processes keep running. */
void local_wl_detach(struct local_wl *w);
const char *local_wl_state_name(enum local_wl_state st);
int local_wl_state_parse(const char *name, enum local_wl_state *out);
/* Validates a start_workload/exec request against node n. < 0 with op->error. */
int local_req_check(struct local *s, orc_op_t *op, const struct local_node *n,
                    const struct orc_exec_req *req);
/* Runs req to completion on node n for lo (exec); lo->work is the child. */
int local_exec(struct local *s, struct lop *lo, struct local_node *n,
               const struct orc_exec_req *req);
/* Reads a workload's log for lo with uv_fs; lo->work is the read. */
int local_logs(struct local *s, struct lop *lo, struct local_node *n,
               const struct orc_logs_req *req);
/* Liveness of a process we may not have started: 1 alive, 0 gone. If it
 * was our zombie it is reaped and *status gets its wait status. */
int local_pid_alive(pid_t pid, uint64_t start_time, int *status, bool *reaped);
uint64_t local_pid_start_time(pid_t pid);
/* The last max bytes of a workload's log, control characters as spaces,
 * into buf (always NUL-terminated). */
void local_log_tail(struct local *s, const struct local_wl *w, char *buf, size_t max);

/* ---- the ABI 2 slots (local_power.c) --------------------------------------------------- */

int local_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload);
int local_stop(void *state, orc_op_t *op, const char *name);
int local_start(void *state, orc_op_t *op, const char *name);
/* Completes the stop ops of n whose workloads ended (from node_step). */
void local_stop_ops_step(struct local_node *n);
/* Deletion: the node's stop ops end with status (deferred). */
void local_stop_ops_abort(struct local_node *n, int status, const char *why);
/* Cancel of a stop_workload or stop op still waiting: it answers
 * ORC_ECANCELED, the stop goes on. */
int local_stop_cancel(struct lop *lo);

/* ---- readiness (local_ready.c) ------------------------------------------------------------ */

/* The port w answers on: its request's, else the node's when w owns it
 * (the workload "main", else the node's first service); 0: none. */
uint16_t local_wl_port(const struct local_wl *w);
/* lo waits until w is ready: a TCP connect to 127.0.0.1:<its port>
 * succeeds while w runs (and GET ready_path answers 2xx when it has one),
 * or w has run for ready_settle_ms (no port). The
 * first check is on a later loop iteration. lo->work holds the waits and
 * lo->waiting counts them; local_ready_done(lo) runs when all are ready, a
 * failure completes lo. 0, or ORC_ENOMEM. */
int local_ready_wait(struct lop *lo, struct local_wl *w);
/* w's process ended (what: "exited with status 3"): its waits fail with
 * its status and its log's tail. Before anything else writes to the log. */
void local_ready_exited(struct local_wl *w, const char *what);
/* w was stopped, deleted or freed: its waits fail with status and why. */
void local_ready_fail_all(struct local_wl *w, int status, const char *why);
/* Cancel and site close: every wait of lo ends, lo completes with status. */
void local_ready_abort(struct lop *lo, int status, const char *why);
/* Inside lo's own slot call, when it fails: its waits end, no callback. */
void local_ready_drop(struct lop *lo);
#endif
