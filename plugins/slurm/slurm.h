/*
 * The slurm driver's internals (docs/slurm-site.md), shared by its files:
 *   slurm.c         the vtable, site open and close, operations in flight, cancel
 *   slurm_conf.c    the site config: keys, types, the partitions map, the login target
 *   slurm_cmd.c     remote commands: the prefix every one gets, running one over
 *                   host->ssh, the sections of their output
 *   slurm_script.c  the batch script, the env file and the sbatch command line
 *   slurm_parse.c   parsers: scontrol show job, squeue, sacct, sinfo, sbatch, the
 *                   agent's status file, the node marker; job states
 *   slurm_node.c    provision, deprovision, status and adopt, inventory, logs
 *   slurm_job.c     exec, start_workload and stop_workload: submit, follow the job,
 *                   queue timeout, scancel
 * An HPC site reached by SSH to its login node: a node is a directory
 * WORK_DIR/<name> on the cluster's shared filesystem plus a marker file; the
 * allocation happens when a workload is submitted (sbatch), and the job runs
 * gpu-agent on every node of it (srun). Not part of the ABI. Everything runs
 * on the daemon's loop thread.
 */
#ifndef SLURM_H
#define SLURM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orc/driver.h"
#include "../remote/remote.h"

#define SL_NAME_MAX 63   /* node names and workload ids */
#define SL_FIELD_LEN 64  /* partition, gres type, model, job state */
#define SL_PATH_LEN 1024 /* remote paths */
#define SL_JOBID_LEN 24
#define SL_REASON_LEN 192
#define SL_LOGS_DEFAULT 65536u
#define SL_LOGS_MAX (1u << 20)
#define SL_TAIL_BYTES 65536u /* exec output: the end of the workload's log */

struct slurm;
struct sop;

/* ---- config (slurm_conf.c) ------------------------------------------------------ */

/* One entry of the partitions map: GPU model -> partition and gres type. */
struct sl_part {
    char *model;     /* the map's key, as written: "A100" */
    char *partition; /* "gpu" */
    char *gres;      /* gres type name ("a100"), or NULL: --gres=gpu:N (any type) */
};

struct sl_conf {
    /* login */
    char *address, *user, *identity, *known_hosts;
    uint16_t port;
    int hostkey; /* enum orc_ssh_hostkey */
    uint32_t connect_timeout_ms;
    char *passphrase; /* of the key: the site's credentials secret, or NULL */
    /* the cluster */
    char *work_dir; /* as configured; struct slurm.work is its absolute form */
    struct sl_part *parts;
    size_t nparts;
    char *default_partition;   /* NULL: the cluster's default */
    uint64_t queue_timeout_ms; /* 0: wait as long as it takes */
    uint64_t poll_ms;
    struct orc_kv *env; /* exported before every remote command; strings owned */
    size_t nenv;
    char *account, *qos;
    uint32_t time_limit_min;    /* 0: the partition's default */
    char *runtime_dir;          /* local; NULL: beside the daemon */
    char *agent_check;          /* gpu-agent --check */
    uint32_t cmd_timeout_ms;    /* one remote command */
    uint64_t cancel_timeout_ms; /* deprovision: the jobs leave squeue within this */
    uint32_t install_timeout_ms;
};

/* Parses conf->config_json into c (zeroed by the caller). 0, or < 0 with
 * err ("slurm: config: ..."); c is then freed. */
int sl_conf_parse(const struct orc_host_api *host, const char *json, struct sl_conf *c, char *err,
                  size_t errlen);
void sl_conf_free(const struct orc_host_api *host, struct sl_conf *c);
/* The partitions map entry of model (case-insensitive), or NULL. */
const struct sl_part *sl_conf_part(const struct sl_conf *c, const char *model);
/* The SSH target of the login node (strings borrowed from c). */
void sl_conf_target(const struct sl_conf *c, struct orc_ssh_target *t);

/* ---- parsers and job states (slurm_parse.c) ----------------------------------------- */

enum sl_jstate {
    SJ_UNKNOWN = 0,
    SJ_PENDING,  /* PENDING, REQUEUED, REQUEUE_HOLD, REQUEUE_FED */
    SJ_STARTING, /* CONFIGURING: allocated, nodes booting */
    SJ_RUNNING,  /* RUNNING, SUSPENDED, RESIZING, SIGNALING, STOPPED */
    SJ_ENDING,   /* COMPLETING, STAGE_OUT */
    SJ_COMPLETED,
    SJ_FAILED, /* FAILED: the batch script exited non-zero */
    SJ_TIMEOUT,
    SJ_PREEMPTED,
    SJ_NODE_FAIL,
    SJ_CANCELLED,
    SJ_OTHER_END, /* BOOT_FAIL, DEADLINE, OUT_OF_MEMORY, REVOKED, SPECIAL_EXIT */
};

enum sl_jstate sl_jstate_parse(const char *name);
bool sl_jstate_ended(enum sl_jstate st);
/* ended in a way that is an operation failure, not an exit status */
bool sl_jstate_broken(enum sl_jstate st);

/* What Slurm says about one job. */
struct sl_jobinfo {
    bool found;
    enum sl_jstate st;
    char state[SL_FIELD_LEN];   /* as Slurm wrote it */
    char reason[SL_REASON_LEN]; /* '_' as spaces; "" for None */
    bool has_exit;
    int exit_code, exit_signal; /* ExitCode=CODE:SIGNAL */
    char nodelist[128];
    char batch_host[SL_FIELD_LEN];
};

/* The value of key in a `scontrol show ... -o` line (key=value pairs
 * separated by spaces): true and val (NUL-terminated, cut to len), or false. */
bool sl_kv_get(const char *line, size_t linelen, const char *key, char *val, size_t len);
/* `scontrol show job -o ID`: true when it described the job. */
bool sl_parse_scontrol_job(const char *text, size_t len, struct sl_jobinfo *ji);
/* `sacct -n -P -X -j ID -o JobID,State,ExitCode`: true on a row. */
bool sl_parse_sacct(const char *text, size_t len, struct sl_jobinfo *ji);
/* `sbatch --parsable`: "ID" or "ID;cluster". 0, or ORC_EFORMAT. */
int sl_parse_sbatch(const char *text, size_t len, char id[SL_JOBID_LEN]);
/* `squeue -h -t all -o '%i|%T'` rows: how many jobs are not ended yet. */
unsigned sl_parse_squeue_active(const char *text, size_t len);
/* true when the state of job id among those rows is not ended yet (false:
 * not listed or ended) */
bool sl_squeue_job_active(const char *text, size_t len, const char *id);
/* `scontrol show node -o HOST`: its NodeAddr, else its NodeName. */
bool sl_parse_node_addr(const char *text, size_t len, char *addr, size_t addrlen);

/* The agent's status file ({"workloads": [{"name", "state", "exit_status"}]}). */
struct sl_agent_status {
    bool found;
    char state[24];  /* starting, running, ready, unready, backoff, exited, failed, ... */
    int exit_status; /* -1: none */
};
void sl_parse_agent_status(const char *text, size_t len, const char *wl, struct sl_agent_status *a);

/* The largest per-node figures of a partition, from
 * `sinfo -h -p P -o '%G|%c|%m'` (gres, CPUs, memory in MB). */
struct sl_part_max {
    uint32_t gpus; /* of the wanted gres type (any type when gres is NULL) */
    uint32_t cpus;
    uint64_t mem_mb;
    unsigned rows;
};
void sl_parse_part_max(const char *text, size_t len, const char *gres, struct sl_part_max *m);
/* GPUs of gres type (NULL: any) in a gres string "gpu:a100:2(S:0),gpu:t4:1". */
uint32_t sl_gres_count(const char *gres, const char *type);

/* Capacity from `sinfo -h -N -O NodeList:|,Partition:|,Gres:|,GresUsed:|,CPUsState:|,
 * Memory:|,AllocMem:|,StateCompact:|` (SL_SINFO_FORMAT). */
#define SL_SINFO_FORMAT                                                                            \
    "NodeList:|,Partition:|,Gres:|,GresUsed:|,CPUsState:|,Memory:|,AllocMem:|,StateCompact:|"
struct sl_sinfo_row {
    char node[SL_FIELD_LEN];
    char partition[SL_FIELD_LEN];
    char gres[256], gres_used[256];
    uint32_t cpus_alloc, cpus_total;
    uint64_t mem_mb, mem_alloc_mb;
    char state[SL_FIELD_LEN];
    bool usable;       /* up and taking jobs */
    bool default_part; /* sinfo marked the partition the cluster's default ("gpu*") */
};
/* Calls fn for each row; returns how many rows were read. */
size_t sl_parse_sinfo(const char *text, size_t len,
                      void (*fn)(void *arg, const struct sl_sinfo_row *row), void *arg);

/* The node marker: what provision was asked, kept in WORK/NAME/node.json. */
struct sl_node {
    char name[SL_NAME_MAX + 1];
    uint32_t nodes, gpus, cpus;
    uint64_t mem;                 /* bytes; 0: the partition's default */
    char model[SL_FIELD_LEN];     /* the partitions map's key; "" none */
    char partition[SL_FIELD_LEN]; /* "" the cluster's default */
    char gres[SL_FIELD_LEN];      /* gres type; "" any */
    char runtime[SL_PATH_LEN];    /* where gpu-agent is */
    int64_t created_ms;
};
/* JSON text (host->malloc'd), or NULL. */
char *sl_node_json(const struct orc_host_api *host, const struct sl_node *n);
/* 0, or ORC_EFORMAT. */
int sl_node_parse(const char *text, size_t len, struct sl_node *n);

/* ---- remote commands (slurm_cmd.c) ---------------------------------------------------- */

/* Starts a command line: the site's env exported, umask 077. */
void sl_cmd_begin(struct slurm *s, struct rmt_cmd *c);
/* " cd 'WORK/name'" */
void sl_cmd_cd(struct slurm *s, struct rmt_cmd *c, const char *name);
/* sl_cmd_begin, then " cd 'WORK'" (the site's work dir itself) */
void sl_cmd_begin_work(struct slurm *s, struct rmt_cmd *c);
/* One section of a command's output: the text between a line "@@tag" and
 * the next line starting "@@" (or the end). true when the tag was there. */
bool sl_section(const char *out, size_t len, const char *tag, const char **at, size_t *n);
/* Runs cmd (host->malloc'd; the op owns it from now on) on the login node
 * with input on its stdin (NULL: none; owned likewise); fn runs with the
 * request's status once it ends (not when the op was canceled). 0, or < 0
 * with op->error (cmd and input freed). */
typedef void (*sop_fn)(struct sop *so, int status);
int sop_run(struct sop *so, char *cmd, char *input, size_t input_len, sop_fn fn);
/* sop_run of a finished rmt_cmd (freed): the same returns. */
int sop_run_cmd(struct sop *so, struct rmt_cmd *c, char *input, size_t input_len, sop_fn fn);
/* In a slot call: sop_run_cmd without input, dropping so (sop_drop) when
 * the command cannot start. The same returns. */
int sop_start_cmd(struct sop *so, struct rmt_cmd *c, sop_fn fn);
/* In a callback: sop_run_cmd, completing so with the error when the
 * command cannot start. */
void sop_run_or_fail(struct sop *so, struct rmt_cmd *c, char *input, size_t input_len, sop_fn fn);
/* In an fn: false after completing so when the request failed (transport)
 * or the command exited non-zero (ORC_EDRIVER with its stderr; what names
 * the step: "sbatch"). */
bool sop_reply_ok(struct sop *so, int status, const char *what);
/* Calls fn after ms on a host timer. 0, or ORC_ENOMEM. */
int sop_wait(struct sop *so, uint64_t ms, sop_fn fn);
/* In a callback: sop_wait for the site's poll_ms, completing so with
 * ORC_ENOMEM (sop_oom) when no timer could be had. */
void sop_wait_poll(struct sop *so, sop_fn fn);
/* stdout of the last request ("" when none) */
const char *sop_out(const struct sop *so, size_t *len);

/* ---- operations in flight (slurm.c) ------------------------------------------------- */

enum sop_kind {
    SOP_OPEN = 0,
    SOP_CLOSE,
    SOP_INVENTORY,
    SOP_PROVISION,
    SOP_DEPROVISION,
    SOP_STATUS,
    SOP_ADOPT,
    SOP_START,
    SOP_EXEC,
    SOP_LOGS,
    SOP_STOP_WL,
};

/* A workload being submitted and followed (exec, start_workload). */
struct sl_wl {
    bool service;
    uint16_t port;
    char *envfile; /* the env file (host->malloc'd) until sent */
    char **argv;   /* the request's, copied (NULL-terminated) */
    char *workdir, *ready_path;
    char jobid[SL_JOBID_LEN];
    bool reused;       /* following a job an earlier start submitted */
    int64_t since_ms;  /* submitted (or taken over) at */
    uint32_t time_min; /* --time */
    struct sl_jobinfo ji;
    struct sl_agent_status as;
    char addr[SL_FIELD_LEN]; /* the first node's address */
};

struct sop {
    struct slurm *s;
    orc_op_t *op;
    enum sop_kind kind;
    orc_ssh_req_t req;
    bool req_busy;
    bool req_out; /* req holds output to release */
    char *cmd, *input;
    sop_fn on_reply;
    sop_fn on_timer;
    uint64_t timer;
    bool deferring; /* the timer delivers status */
    int status;
    struct rmt_install *inst;
    bool canceled;
    bool existed;
    int64_t t0_ms;
    char name[SL_NAME_MAX + 1];
    char wl_id[SL_NAME_MAX + 1];
    struct sl_node node;
    struct sl_wl *w;
    uint64_t log_offset;
    uint32_t log_max;
    struct sop *prev, *next;
};

/* Per-site state (state_size): allocated and zeroed by the core. */
struct slurm {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    struct sl_conf c;
    struct orc_ssh_target target;
    struct rmt_runtime rt;
    bool rt_found;
    char *work;   /* the absolute remote work dir (pwd -P at open) */
    char *rt_dir; /* work/.orc-runtime/ID */
    struct sop *ops;
    struct sop *close_so;
    bool opened;
    bool closing;
};

struct sop *sop_new(struct slurm *s, orc_op_t *op, enum sop_kind kind);
/* The start of a slot on workload wl of node name (logs, stop_workload):
 * the site takes operations, both are names (else ORC_EINVAL), then an op
 * of kind with name and wl_id set. 0 and *out, or < 0 (op->error set when
 * a check failed) and *out NULL. */
int sop_begin_wl(struct slurm *s, orc_op_t *op, enum sop_kind kind, const char *name,
                 const char *wl, struct sop **out);
/* Frees an op that never ran anything (inside its slot call). */
void sop_drop(struct sop *so);
/* Completes so (from a callback only: never inside a slot call). */
void sop_complete(struct sop *so, int status);
/* Completes so on a later loop iteration (slot calls). 0, or ORC_ENOMEM. */
int sop_defer(struct sop *so, int status);
/* sop_complete with op->error from fmt. */
void sop_failf(struct sop *so, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* sop_failf with ORC_ENOMEM: "slurm site SITE: out of memory". */
void sop_oom(struct sop *so);
/* 0 when the site takes operations, else ORC_ECONFLICT with op->error. */
int sl_ready(struct slurm *s, orc_op_t *op);
int64_t sl_now_ms(void);  /* wall clock */
int64_t sl_mono_ms(void); /* for timeouts */
char *sl_strdup(const struct orc_host_api *host, const char *str);
char *sl_printf(const struct orc_host_api *host, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
bool sl_name_ok(const char *name);
bool sl_wl_ok(const char *id);
/* WORK/name[/leaf] (host->malloc'd) or NULL. */
char *sl_path(struct slurm *s, const char *name, const char *leaf);

/* ---- the slots (slurm_node.c, slurm_job.c) ------------------------------------------ */

int sl_provision(void *state, orc_op_t *op, const struct orc_node_req *req);
int sl_deprovision(void *state, orc_op_t *op, const char *name);
int sl_status(void *state, orc_op_t *op, const char *name);
int sl_adopt(void *state, orc_op_t *op, const char *name);
int sl_inventory(void *state, orc_op_t *op);
int sl_logs(void *state, orc_op_t *op, const struct orc_logs_req *req);
int sl_exec(void *state, orc_op_t *op, const struct orc_exec_req *req);
int sl_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req);
int sl_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload);
/* Frees what an op of slurm_job.c holds (sop_complete calls it). */
void sl_wl_free(struct slurm *s, struct sl_wl *w);

/* ---- scripts (slurm_script.c) ------------------------------------------------------ */

struct sl_script_in {
    const char *dir;     /* WORK/NAME, absolute */
    const char *runtime; /* where gpu-agent is, absolute */
    const char *wl;      /* the workload id */
    bool service;
    const char *check; /* gpu-agent --check level */
    uint32_t gpus;     /* 0: --gpus none (Slurm's CUDA_VISIBLE_DEVICES otherwise) */
    uint16_t port;     /* service readiness: --ready-tcp/--ready-http; 0: none */
    const char *ready_path;
    const char *workdir; /* relative to dir, or NULL */
    const char *const *argv;
};
/* The batch script: its batch part (on the first node) starts the node
 * part of the same file on every node with srun; the node part sources the
 * env file and runs gpu-agent. Every value is a single-quoted word. 0 and
 * *out (host->malloc'd), or ORC_ENOMEM / ORC_ELIMIT. */
int sl_script_build(const struct orc_host_api *host, const struct sl_script_in *in, char **out);
/* The env file: one `export 'KEY=VALUE'` line per variable. 0, or
 * ORC_EINVAL with err naming a bad variable name, or ORC_ENOMEM. */
int sl_envfile_build(const struct orc_host_api *host, const struct orc_kv *env, size_t n,
                     char **out, char *err, size_t errlen);
/* Appends the sbatch command line for workload wl of node n to c. */
void sl_sbatch_args(struct slurm *s, struct rmt_cmd *c, const struct sl_node *n, const char *wl,
                    uint32_t time_min);
/* A relative path inside a node: no "..", not absolute, not empty. */
bool sl_relpath_ok(const char *path);

#endif
