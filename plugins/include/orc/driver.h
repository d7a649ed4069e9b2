/*
 * The provider driver ABI: the only header a driver includes. A driver is a
 * shared object (plugins/NAME/ -> NAME.so) that exports one function,
 * orc_driver_entry(), returning a const vtable (struct orc_driver). The core
 * (orchestrator/engine/drivers.c) loads it with dlopen(RTLD_NOW|RTLD_LOCAL),
 * checks the ABI number and build signature, allocates and zeroes the
 * driver's per-site state (state_size bytes), and calls the slots below on
 * the daemon's libuv loop. Drivers never link against daemon symbols: what
 * they need from the core comes through the host services table
 * (struct orc_host_api) given to site_open.
 *
 * The contract every asynchronous slot obeys (docs/drivers.md):
 *   - it runs on the loop thread, is never called from another thread, and
 *     never blocks the loop (no sleeping, no blocking network or disk I/O
 *     beyond small local files);
 *   - it returns < 0 (an ORC_E* code or a libuv code) and then NEVER calls
 *     op->cb; it may have written op->error to say why;
 *   - or it returns 0 and then calls op->cb EXACTLY ONCE, LATER: never from
 *     inside the slot call (defer with a host timer, uv_idle, uv_timer...);
 *   - a canceled operation completes through the same op->cb with
 *     ORC_ECANCELED (see the cancel slot);
 *   - before calling back with status < 0, the driver writes op->error;
 *     before calling back with 0, it writes the results the slot documents.
 * The core's call wrappers check this contract and report violations.
 *
 * Return codes (the same for a < 0 return and a callback status):
 *   ORC_EINVAL           a bad request (missing name, empty argv, bad config)
 *   ORC_ENOMEM           out of memory
 *   ORC_ENOTSUP          the driver or site cannot do this (core default slots)
 *   ORC_ECONFLICT        the site or resource is in the wrong state (closing,
 *                        being deleted)
 *   ORC_ENOTFOUND        no such resource (start_workload, exec, logs only:
 *                        status/adopt/deprovision answer exists = false)
 *   ORC_DRV_ENOCAPACITY  not enough capacity; op->error names model and counts
 *   ORC_EDENIED          credentials missing or refused
 *   ORC_EDRIVER          the provider failed (op->error says how)
 *   ORC_EIO, ORC_EFORMAT, ORC_ESSH, ORC_EHTTP, libuv codes: transport and data
 *   ORC_ECANCELED        canceled (cancel slot, site_close)
 *
 * Versioning: struct orc_driver, struct orc_host_api and the request
 * structs are append-only. ORC_DRIVER_ABI changes whenever any of them
 * changes; the core refuses drivers built for another ABI or another build
 * signature (ORC_DRIVER_SIGNATURE). Error codes: orc/errno.h.
 */
#ifndef ORC_DRIVER_H
#define ORC_DRIVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "orc/errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- versions and the entry point ---------------------------------------- */

#define ORC_DRIVER_ABI 3

#define ORC__DRV_STR2(x) #x
#define ORC__DRV_STR(x) ORC__DRV_STR2(x)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ORC__DRV_ENDIAN "be"
#else
#define ORC__DRV_ENDIAN "le"
#endif
/* What a driver and the core must agree on beyond the ABI number: pointer
 * size, byte order and the libuv major version (drivers share the daemon's
 * uv_loop_t). Compared as a string by the loader. */
#define ORC_DRIVER_SIGNATURE                                                   \
    "orc-driver/" ORC__DRV_STR(ORC_DRIVER_ABI) " ptr/" ORC__DRV_STR(          \
        __SIZEOF_POINTER__) " " ORC__DRV_ENDIAN " uv/" ORC__DRV_STR(UV_VERSION_MAJOR)

/* The one symbol a driver exports. */
#define ORC_DRIVER_ENTRY_SYMBOL "orc_driver_entry"
#define ORC_DRIVER_EXPORT __attribute__((visibility("default")))

struct orc_driver;
typedef const struct orc_driver *(*orc_driver_entry_fn)(void);

/* Fills the header fields of a vtable in a designated initializer:
 *   static const struct orc_driver my_driver = {
 *       ORC_DRIVER_HEADER, .name = "mine", ... };                         */
#define ORC_DRIVER_HEADER                                                      \
    .abi = ORC_DRIVER_ABI, .size = (uint32_t)sizeof(struct orc_driver),        \
    .signature = ORC_DRIVER_SIGNATURE

/* ---- plain data crossing the ABI ----------------------------------------- */

/* TOSCA node kinds (docs/tosca.md, "node kinds"); the plan's "kind". */
enum orc_node_kind {
    ORC_KIND_COMPUTE = 0,
    ORC_KIND_SERVICE = 1,
    ORC_KIND_JOB = 2,
    ORC_KIND_SOFTWARE = 3,
    ORC_KIND_NETWORK = 4,
    ORC_KIND_STORAGE = 5,
};

/* Capability bits (struct orc_driver.caps). The low bits are the node kinds
 * a driver can provision: ORC_DRV_CAP_KIND(kind) == 1 << kind. */
#define ORC_DRV_CAP_KIND(kind) (UINT64_C(1) << (kind))
#define ORC_DRV_CAP_COMPUTE ORC_DRV_CAP_KIND(ORC_KIND_COMPUTE)
#define ORC_DRV_CAP_SERVICE ORC_DRV_CAP_KIND(ORC_KIND_SERVICE)
#define ORC_DRV_CAP_JOB ORC_DRV_CAP_KIND(ORC_KIND_JOB)
#define ORC_DRV_CAP_SOFTWARE ORC_DRV_CAP_KIND(ORC_KIND_SOFTWARE)
#define ORC_DRV_CAP_NETWORK ORC_DRV_CAP_KIND(ORC_KIND_NETWORK)
#define ORC_DRV_CAP_STORAGE ORC_DRV_CAP_KIND(ORC_KIND_STORAGE)
#define ORC_DRV_CAP_GPU (UINT64_C(1) << 16)       /* nodes with GPUs */
#define ORC_DRV_CAP_PUBLIC_IP (UINT64_C(1) << 17) /* public addresses on request */
#define ORC_DRV_CAP_ADOPT (UINT64_C(1) << 18)     /* adopt slot: take over by name */
#define ORC_DRV_CAP_MULTI_NODE (UINT64_C(1) << 19) /* several nodes of one deployment */
#define ORC_DRV_CAP_NODE_JSON (UINT64_C(1) << 20)  /* provision reads req->node_json */
/* The node's gpu-agent starts its workloads at boot (a VM's user data): provision of a
 * compute node reads req->boot_json (host API 4), and start_workload and exec follow
 * the workload through host->agent_state instead of starting it. */
#define ORC_DRV_CAP_AGENT_BOOT (UINT64_C(1) << 21)

/* Resource states reported by provision/status/adopt (op->res_state). */
enum orc_drv_res_state {
    ORC_DRV_RES_UNKNOWN = 0,  /* the provider cannot tell */
    ORC_DRV_RES_CREATING = 1, /* being created, not usable yet */
    ORC_DRV_RES_READY = 2,    /* exists and usable (running) */
    ORC_DRV_RES_STOPPED = 3,  /* exists, not running */
    ORC_DRV_RES_FAILED = 4,   /* exists in an error state: deprovision it */
    ORC_DRV_RES_DELETING = 5, /* being deleted */
};

/* Capacity errors are reported with this code until orc/errno.h gains a
 * dedicated one; op->error names the model and the counts. */
#define ORC_DRV_ENOCAPACITY ORC_ELIMIT

/* A key/value pair of strings. In requests the strings belong to the core
 * and are valid during the call only; in results they belong to the core's
 * op storage (written through host->op_attr_set). */
struct orc_kv {
    const char *key;
    const char *value;
};

/* Well-known attribute keys of a resource (values are strings; "ports" is a
 * JSON array of numbers as text, e.g. "[8080,8443]"). Drivers may add more. */
#define ORC_ATTR_PRIVATE_ADDRESS "private_address"
#define ORC_ATTR_PUBLIC_ADDRESS "public_address"
#define ORC_ATTR_PORTS "ports"
#define ORC_ATTR_ENDPOINT "endpoint"
#define ORC_ATTR_PROVIDER_ID "provider_id"
#define ORC_ATTR_GPU_MODEL "gpu_model"
#define ORC_ATTR_FLAVOR "flavor"

/* Where a site is opened from: the sites file (orchestrator/engine/sites.h).
 * Owned by the core, valid from site_open until site_close has called back. */
struct orc_site_conf {
    const char *name;        /* the site's name, unique in the daemon */
    const char *config_json; /* the site's `config:` mapping as JSON object text ("{}") */
    const char *credentials; /* a secret name for host->secret_get, or NULL */
};

/* One provision request: a node instance of a deployment's plan. Owned by
 * the core and valid during the provision call only: copy what you keep. */
struct orc_node_req {
    const char *deployment; /* deployment uuid */
    const char *node;       /* node template name */
    uint32_t index;         /* instance index */
    /* The provider-side name, derived by the core from (deployment, node,
     * index): lower case [a-z0-9-], at most 63 characters. It is the
     * idempotency key: provisioning a name that exists returns that
     * resource, never a second one. Use it as the resource's name or tag. */
    const char *name;
    enum orc_node_kind kind;
    const char *type; /* TOSCA type name, informative */
    /* compute requirements; 0 or NULL when the template does not say */
    uint32_t num_cpus;
    uint64_t mem_size;  /* bytes */
    uint64_t disk_size; /* bytes */
    uint32_t num_gpus;
    const char *gpu_model;     /* e.g. "A100"; NULL: any model */
    const char *gpu_vendor;    /* e.g. "NVIDIA"; NULL: any */
    const char *instance_type; /* flavor hint; NULL */
    const char *image;         /* OS or container image; NULL: driver default */
    bool public_ip;            /* a public address is wanted (COMPUTE: its endpoint
                                  capability says PUBLIC, or an output reads its
                                  public_address) */
    const uint16_t *ports;     /* ports to expose, nports of them (SERVICE: its own;
                                  COMPUTE: its endpoint capability's and those of the
                                  services it hosts) */
    size_t nports;
    const struct orc_kv *tags; /* labels to attach at the provider, ntags of them */
    size_t ntags;
    const char *node_json; /* the plan's node object as JSON text; NULL unless the driver's
                              caps have ORC_DRV_CAP_NODE_JSON (it costs to make) */
    /* host API 4 (read it only when host->version >= 4): for a compute node of a driver
     * with ORC_DRV_CAP_AGENT_BOOT, the workloads it hosts as JSON text, NULL otherwise:
     * {"workloads": [{"id", "kind": "service"|"job", "resource" (its uuid: the agent's
     * ORC_AGENT_RESOURCE), "argv": [...], "env": {"K": "V"} (the agent's reporting
     * variables included), "port" (0: none), "ready_path" (or null)}]} */
    const char *boot_json;
};

/* start_workload and exec. Owned by the core, valid during the call only. */
struct orc_exec_req {
    const char *name;          /* resource name (as provisioned) */
    const char *workload;      /* workload id, unique per resource; NULL: "main" */
    const char *const *argv;   /* NULL-terminated; argv[0] is the program */
    const struct orc_kv *env;  /* environment additions, nenv of them */
    size_t nenv;
    const uint32_t *gpus; /* GPU indices to pin (CUDA_VISIBLE_DEVICES); NULL: all of the node's */
    size_t ngpus;
    const char *workdir; /* NULL: driver default */
    /* ABI 2: a service's TCP port (also in env as PORT): start_workload calls
     * back once it accepts connections there, and its endpoint says so; 0:
     * none (the node's own port, if it has one, is used) */
    uint16_t port;
    const char *ready_path; /* HTTP path that answers once it is ready; NULL: TCP only */
};

#define ORC_LOGS_TAIL UINT64_MAX
/* logs. Owned by the core, valid during the call only. */
struct orc_logs_req {
    const char *name;     /* resource name */
    const char *workload; /* NULL: "main" */
    uint64_t offset;      /* first byte wanted; ORC_LOGS_TAIL: the last max_bytes */
    uint32_t max_bytes;   /* 0: 65536 */
};

/* One capacity pool of a site (inventory): a GPU model, a flavor, or the
 * CPU pool (gpu_model NULL). Counts are what the site reports now. */
struct orc_pool {
    const char *name;      /* "A100", "cpu", a flavor name */
    const char *gpu_model; /* NULL for CPU-only pools */
    uint32_t gpus_total, gpus_free;
    uint32_t cpus_total, cpus_free;
    uint64_t mem_total, mem_free; /* bytes */
    uint32_t max_gpus_per_node;   /* 0: unknown */
    double price_hour;            /* per GPU (GPU pools) or per cpu, per hour; < 0: unknown */
};

/* ---- operations ------------------------------------------------------------ */

typedef struct orc_op_s orc_op_t;
typedef void (*orc_op_cb)(orc_op_t *op, int status);

#define ORC_OP_ERROR_LEN 256

/* One in-flight driver operation. Memory belongs to the caller (the core)
 * and stays valid until op->cb has returned. The driver reads cb and
 * timeout_ms, writes the "results" fields, and may keep a pointer of its own
 * in drv while the op is in flight. */
struct orc_op_s {
    void *data; /* public: the caller's; drivers do not touch it */

    /* in, set by the core */
    orc_op_cb cb;        /* call exactly once (orc_op_done) unless the slot returned < 0 */
    uint32_t timeout_ms; /* the core cancels after this long; 0: no deadline. A hint. */

    /* results, written by the driver before calling back */
    bool exists;         /* provision/status/adopt: the resource exists;
                            deprovision: it existed when the call came */
    int32_t res_state;   /* enum orc_drv_res_state */
    int32_t exit_status; /* exec: the command's exit status */
    uint64_t out_offset; /* logs: byte offset of op->output in the log */
    uint64_t out_total;  /* logs: bytes the log holds now */
    char error[ORC_OP_ERROR_LEN]; /* why, when the status is < 0 */

    /* results in core-owned storage: written only through host->op_attr_set,
     * host->op_pool_add and host->op_output_set; the core frees them */
    struct orc_kv *attrs; /* resource attributes (ORC_ATTR_*) */
    uint32_t nattrs, attrs_cap;
    struct orc_pool *pools; /* inventory */
    uint32_t npools, pools_cap;
    char *output; /* logs / exec output, NUL-terminated, output_len bytes */
    size_t output_len;

    void *drv; /* driver-private while in flight */

    struct { /* core-private */
        orc_op_cb user_cb;
        void *site;
        orc_op_t *prev, *next; /* the site's ops in flight */
        orc_op_t *dnext;       /* deferred deliveries */
        const char *slot;
        uint32_t flags;
        int32_t status;
        uint64_t started_ns; /* when the slot was called (metrics) */
    } core_;
};

/* Completes an operation: the one way a driver calls back. */
static inline void orc_op_done(orc_op_t *op, int status)
{
    op->cb(op, status);
}

/* Writes op->error ("printf") and returns code, for `return orc_op_failf(...)`. */
static inline int orc_op_failf(orc_op_t *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int orc_op_failf(orc_op_t *op, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(op->error, sizeof(op->error), fmt, ap);
    va_end(ap);
    return code;
}

/* ---- host services ---------------------------------------------------------- */

#define ORC_HOST_API_VERSION 5

enum orc_log_level_drv { ORC_DRV_LOG_DEBUG = 0, ORC_DRV_LOG_INFO, ORC_DRV_LOG_WARN, ORC_DRV_LOG_ERROR };

typedef void (*orc_host_timer_cb)(void *arg);
struct orc_http_api; /* an HTTP client on the loop (host API 3, below) */
struct orc_ssh_api;  /* an SSH client on the loop (host API 2, below) */

/* What the core lends a driver, one table per site, valid from site_open
 * until site_close has called back. Every function runs on the loop thread
 * only. Fields are append-only; size says how many the core provides. */
struct orc_host_api {
    uint32_t version;  /* ORC_HOST_API_VERSION */
    uint32_t size;     /* sizeof(struct orc_host_api) as the core built it */
    uv_loop_t *loop;   /* the daemon's loop: a driver's own handles live here */
    const char *site;  /* this site's name */

    /* A log line "driver NAME site SITE: message" at level (enum orc_log_level_drv).
     * Never log secrets. */
    void (*log)(const struct orc_host_api *host, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* The daemon's allocator. Everything the core frees for a driver, and
     * everything the core hands over (secret_get), uses these. */
    void *(*malloc)(size_t n);
    void *(*calloc)(size_t n, size_t size);
    void *(*realloc)(void *p, size_t n);
    void (*free)(void *p);

    /* One-shot timer: cb(arg) runs once on the loop after delay_ms (0: on a
     * later loop iteration, never inside this call). Returns an id > 0, or 0
     * when out of memory. The core owns the uv handle and closes it. */
    uint64_t (*timer_start)(const struct orc_host_api *host, uint64_t delay_ms,
                            orc_host_timer_cb cb, void *arg);
    /* Stops a timer that has not fired: cb will not run. Returns 0, or
     * ORC_ENOTFOUND when id is unknown or has already fired. Timers still
     * pending when site_close calls back are stopped and reported as leaks. */
    int (*timer_stop)(const struct orc_host_api *host, uint64_t id);

    /* Looks a secret up by name (a site's credentials). Returns 0 and
     * *value (NUL-terminated, free with host->free), or ORC_ENOTFOUND. */
    int (*secret_get)(const struct orc_host_api *host, const char *name, char **value);

    /* Result storage of an op (copies the strings). Return 0 or ORC_ENOMEM. */
    int (*op_attr_set)(orc_op_t *op, const char *key, const char *value); /* replaces key */
    int (*op_pool_add)(orc_op_t *op, const struct orc_pool *pool);
    int (*op_output_set)(orc_op_t *op, const char *data, size_t len); /* replaces */

    const struct orc_http_api *http; /* version 3: the HTTP client (below); NULL before */
    const struct orc_ssh_api *ssh;   /* version 2: the SSH client (below); never NULL */

    /* version 4: what the gpu-agent of a resource last reported (the orchestrator's
     * agent endpoint, docs/agent.md), as JSON text (free with host->free):
     * {"workload_state": "ready" | ..., "restarts": N, "workloads": {NAME: the last
     * workload report}, "last_report_ms": N, "gpu_health": ...}; the members the agent
     * has not reported yet are absent. resource is the agent's ORC_AGENT_RESOURCE (a
     * uuid of deployment). 0, ORC_ENOTFOUND (no such resource), ORC_ENOMEM, or
     * ORC_ENOTSUP (this daemon keeps no agent reports). */
    int (*agent_state)(const struct orc_host_api *host, const char *deployment,
                       const char *resource, char **json);

    /* version 5: log, for a line about one resource (resource: a name the core gave in
     * orc_node_req.name): the line also names the deployment and the node instance
     * ("vm[0]") that resource is, as the daemon's JSON log's "deployment" and "node"
     * fields. Use orc_host_log_resource(), which falls back to log in older daemons. */
    void (*log_resource)(const struct orc_host_api *host, const char *resource, int level,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
};

/* host->log_resource where the daemon has it (host API 5), else host->log. */
#define orc_host_log_resource(host, resource, level, ...)                                          \
    ((host)->version >= 5 && (host)->log_resource != NULL                                          \
         ? (host)->log_resource((host), (resource), (level), __VA_ARGS__)                          \
         : (host)->log((host), (level), __VA_ARGS__))

/* ---- the SSH client (host API 2) ----------------------------------------------- */

/* Where a command goes: one SSH server and how to log in. The core keeps
 * one session per distinct target (address, port, user, identity,
 * known_hosts) and reuses it for every request, for every site, until it
 * has been idle for idle_ms or fails. Strings are copied by the call. */
enum orc_ssh_hostkey {
    ORC_SSH_HOSTKEY_STRICT = 0, /* the key must be in known_hosts already */
    ORC_SSH_HOSTKEY_TOFU = 1,   /* an unknown host's key is added (a changed one still refused) */
};
struct orc_ssh_target {
    const char *address; /* host name or IP address */
    uint16_t port;       /* 0: 22 */
    const char *user;
    const char *identity;    /* private key file (OpenSSH or PEM), or "agent": ssh-agent */
    const char *passphrase;  /* of the key; NULL: none */
    const char *known_hosts; /* OpenSSH known_hosts file; required */
    int hostkey;             /* enum orc_ssh_hostkey */
    uint32_t connect_timeout_ms; /* TCP connect + handshake + auth; 0: 10000 */
    uint32_t keepalive_s;        /* 0: 15 */
    uint32_t retries;            /* extra connection attempts after a transport failure, with
                                    doubling backoff from 250 ms; host-key and auth failures
                                    are never retried */
    uint32_t idle_ms;            /* an unused session closes after this; 0: 60000 */
};

typedef struct orc_ssh_req_s orc_ssh_req_t;
typedef void (*orc_ssh_cb)(orc_ssh_req_t *req, int status);

/* One request in flight (exec or put): caller-allocated and zeroed; memory
 * stays valid until cb has returned. status in cb: 0 (the command ran: see
 * exit_status), ORC_ESSH (transport: connection refused or lost, timeout),
 * ORC_EDENIED (host key unknown or changed, authentication refused),
 * ORC_ECANCELED, ORC_EIO (put: the local file), ORC_ENOMEM; error says
 * what and where ("ssh 10.0.0.5:22: host key changed ..."). The outputs
 * are the core's: release them with ssh->release once read (cb may). */
struct orc_ssh_req_s {
    void *data;    /* the caller's */
    orc_ssh_cb cb; /* in: set before the call */
    /* results */
    int exit_status; /* exec: the command's; 128 + N when killed by signal N; -1 unknown */
    char *out;       /* exec: stdout, NUL-terminated, out_len bytes (NULL: none) */
    size_t out_len;
    char *err; /* exec: stderr, the same */
    size_t err_len;
    bool truncated;  /* exec: more output than max_out was dropped */
    bool connected;  /* a session had been established when it ended */
    uint64_t bytes;  /* put: bytes sent */
    char error[ORC_OP_ERROR_LEN];
    void *core_; /* core-private */
};

struct orc_ssh_exec {
    const char *command; /* the remote shell's command line: quote every value in it
                            (orc_ssh_quote below) */
    const char *input;   /* written to the command's stdin, then EOF; NULL: nothing */
    size_t input_len;
    size_t max_out;      /* bytes kept of stdout and of stderr each; 0: 1 MiB */
    uint32_t timeout_ms; /* the whole request, connection included; 0: none */
};

struct orc_ssh_put {
    const char *local_path;  /* a regular file here */
    const char *remote_path; /* written over SFTP (created or truncated) */
    int mode;                /* its permissions, e.g. 0755 */
    uint32_t timeout_ms;     /* 0: none */
};

struct orc_ssh_stats {
    uint64_t connects;   /* sessions established (handshake and auth done) */
    uint64_t attempts;   /* connection attempts, failed ones included */
    uint64_t requests;   /* exec and put requests started */
    uint32_t open;       /* sessions open now */
};

/* Every function runs on the loop thread. exec and put return < 0 (and cb
 * never runs) or 0 (cb runs exactly once, later). */
struct orc_ssh_api {
    uint32_t size; /* sizeof(struct orc_ssh_api) as the core built it */
    int (*exec)(const struct orc_host_api *host, const struct orc_ssh_target *t,
                orc_ssh_req_t *req, const struct orc_ssh_exec *x);
    int (*put)(const struct orc_host_api *host, const struct orc_ssh_target *t,
               orc_ssh_req_t *req, const struct orc_ssh_put *p);
    /* req completes through its cb with ORC_ECANCELED (later); what ran on
     * the remote side may have run. 0, or ORC_ENOTFOUND: not in flight. */
    int (*cancel)(const struct orc_host_api *host, orc_ssh_req_t *req);
    /* Frees req->out and req->err (NULL-safe; sets them NULL). */
    void (*release)(const struct orc_host_api *host, orc_ssh_req_t *req);
    /* Counters of this site's requests (connects: sessions opened for them). */
    void (*stats)(const struct orc_host_api *host, struct orc_ssh_stats *out);
};

/* ---- the HTTP client (host API 3) ---------------------------------------------- */

/* One request: libcurl on the daemon's loop (never blocks it), with
 * connection reuse across requests and sites (POST and PATCH always open a
 * new connection: a request that is not idempotent is sent once, never
 * replayed by libcurl on a kept-alive connection found dead). TLS peers are always
 * verified (against ca_file, else the system's CA bundle). Strings are
 * copied by the call. */
struct orc_http_request {
    const char *method;          /* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"... */
    const char *url;             /* http:// or https:// only */
    const char *const *headers;  /* "Name: value" lines, NULL-terminated; NULL: none */
    const char *body;            /* NULL: none */
    size_t body_len;
    const char *ca_file;         /* PEM bundle that verifies the server; NULL: the system's */
    const char *cert_file;       /* PEM client certificate (mutual TLS); NULL: none */
    const char *key_file;        /* its private key; NULL: in cert_file */
    uint32_t timeout_ms;         /* the whole request; 0: 30000 */
    uint32_t connect_timeout_ms; /* 0: 10000 */
    size_t max_body;             /* response bytes kept; 0: 8 MiB (more: truncated) */
};

typedef struct orc_http_req_s orc_http_req_t;
typedef void (*orc_http_cb)(orc_http_req_t *req, int status);

/* In flight: caller-allocated and zeroed, valid until cb has returned.
 * status in cb: 0 (an answer came: see code, whatever it is), ORC_EHTTP
 * (no answer: connection refused or reset, TLS failure, timeout; error says
 * which and where), ORC_ECANCELED, ORC_ENOMEM. The response is the core's:
 * release it with http->release once read (cb may). */
struct orc_http_req_s {
    void *data;     /* the caller's */
    orc_http_cb cb; /* in: set before the call */
    /* results */
    long code;       /* the HTTP status; 0: none */
    char *body;      /* NUL-terminated, body_len bytes; NULL: empty */
    size_t body_len;
    bool truncated;  /* more than max_body bytes came: the rest was dropped */
    char *headers;   /* the response's header lines ("Name: value\r\n"...); NULL: none */
    char error[ORC_OP_ERROR_LEN];
    void *core_; /* core-private */
};

/* Every function runs on the loop thread. request returns < 0 (and cb
 * never runs: ORC_EINVAL for a missing method or url, ORC_ENOMEM) or 0
 * (cb runs exactly once, later). */
struct orc_http_api {
    uint32_t size; /* sizeof(struct orc_http_api) as the core built it */
    int (*request)(const struct orc_host_api *host, orc_http_req_t *req,
                   const struct orc_http_request *r);
    /* req completes through its cb with ORC_ECANCELED (later); the server
     * may have acted on it. 0, or ORC_ENOTFOUND: not in flight. */
    int (*cancel)(const struct orc_host_api *host, orc_http_req_t *req);
    /* The value of the response header name (case-insensitive), copied into
     * buf (cap bytes, cut to fit); buf, or NULL when absent. */
    const char *(*header)(const orc_http_req_t *req, const char *name, char *buf, size_t cap);
    /* Frees body and headers (NULL-safe; sets them NULL). */
    void (*release)(const struct orc_host_api *host, orc_http_req_t *req);
};

/* Appends s to the buffer dst (cap bytes, NUL-terminated, length *len) as
 * one POSIX shell word in single quotes ('it'\''s'): nothing in it is
 * expanded or run by sh. Returns 0, or ORC_ELIMIT when it does not fit
 * (dst then ends where it was). A C string holds no NUL, so none can reach
 * the shell; callers holding counted data refuse it before. */
static inline int orc_ssh_quote(char *dst, size_t cap, size_t *len, const char *s)
{
    size_t n = *len, need;

    if (n >= cap || cap - n < 3)
        return ORC_ELIMIT;
    dst[n++] = '\'';
    for (; *s; s++) {
        need = *s == '\'' ? 4 : 1;
        if (cap - n < need + 2) /* room for this, the closing quote, NUL */
            goto full;
        if (need == 4)
            memcpy(dst + n, "'\\''", 4);
        else
            dst[n] = *s;
        n += need;
    }
    dst[n++] = '\'';
    dst[n] = '\0';
    *len = n;
    return 0;
full:
    dst[*len] = '\0';
    return ORC_ELIMIT;
}

/* ---- the vtable -------------------------------------------------------------- */

/* One driver. Const, static in the plugin, returned by orc_driver_entry().
 * Slots marked (mandatory) must be set; the core installs defaults that
 * return ORC_ENOTSUP for NULL optional slots. In every slot, state is the
 * driver's per-site state (state_size bytes, zeroed, owned by the core), and
 * pointer arguments other than op are valid during the call only. */
struct orc_driver {
    uint32_t abi;          /* ORC_DRIVER_ABI: first, always */
    uint32_t size;         /* sizeof(struct orc_driver) as built (ORC_DRIVER_HEADER) */
    const char *signature; /* ORC_DRIVER_SIGNATURE (ORC_DRIVER_HEADER) */
    const char *name;      /* unique, [a-z0-9_-], 1-32 chars: the sites file's `driver:` */
    const char *version;   /* the driver's own version, informative; may be NULL */
    uint64_t caps;         /* ORC_DRV_CAP_* */
    size_t state_size;     /* per-site state the core allocates and zeroes (<= 1 MiB) */

    /* (mandatory) Opens a site: parse conf->config_json (reject unknown
     * keys with a clear op->error), fetch credentials through
     * host->secret_get, connect. Keep host and conf: both stay valid until
     * site_close calls back. Results: none. On a < 0 return or a failing
     * callback the driver has released everything: the core frees state
     * without calling site_close. Idempotency: n/a (called once). */
    int (*site_open)(void *state, const struct orc_host_api *host,
                     const struct orc_site_conf *conf, orc_op_t *op);

    /* (mandatory) Closes an open site: completes every operation still in
     * flight with ORC_ECANCELED, closes every handle, releases everything
     * it allocated, then calls op->cb (0) after the last of those callbacks.
     * The core frees state afterwards and may unload the driver. Called
     * exactly once per successful open. Never fails once started. */
    int (*site_close)(void *state, orc_op_t *op);

    /* Capacity: adds one struct orc_pool per GPU model, flavor or CPU pool
     * with host->op_pool_add. Read-only at the provider; safe to repeat. */
    int (*inventory)(void *state, orc_op_t *op);

    /* (mandatory) Creates req->name unless it exists. Calls back 0 once the
     * resource is usable, with op->exists, op->res_state (READY) and its
     * attributes (ORC_ATTR_*). Idempotent: if req->name already exists (a
     * retry, or a re-drive after a crash) it returns that resource and never
     * creates a second one. Capacity shortage: ORC_DRV_ENOCAPACITY with
     * op->error naming the model and the counts. */
    int (*provision)(void *state, orc_op_t *op, const struct orc_node_req *req);

    /* (mandatory) Deletes a resource by name and frees its capacity. Calls
     * back 0 when it is gone; op->exists says whether it existed.
     * Idempotent: a name that does not exist is a success. */
    int (*deprovision)(void *state, orc_op_t *op, const char *name);

    /* (mandatory) Looks a resource up by name: calls back 0 with
     * op->exists, op->res_state and the attributes (nothing when it does not
     * exist: that is not an error). Read-only. */
    int (*status)(void *state, orc_op_t *op, const char *name);

    /* Takes over a resource that exists under name (after a daemon
     * restart): re-attaches whatever the driver tracks per resource and
     * answers as status. Idempotent. Required when caps has ORC_DRV_CAP_ADOPT. */
    int (*adopt)(void *state, orc_op_t *op, const char *name);

    /* Starts a long-running workload (a service, a job, gpu-agent) on a
     * resource and calls back 0 once it started (op->exit_status -1).
     * Idempotent per (req->name, req->workload): a started workload is not
     * started twice. */
    int (*start_workload)(void *state, orc_op_t *op, const struct orc_exec_req *req);

    /* Runs a command on a resource to completion: calls back 0 with
     * op->exit_status and its output (host->op_output_set). Not idempotent. */
    int (*exec)(void *state, orc_op_t *op, const struct orc_exec_req *req);

    /* Reads a workload's log: calls back 0 with op->output (at most
     * req->max_bytes from req->offset), op->out_offset (where output starts)
     * and op->out_total (log size now). Read-only. */
    int (*logs)(void *state, orc_op_t *op, const struct orc_logs_req *req);

    /* Cancels target, an operation of this site still in flight. Not an
     * asynchronous slot: returns 0 when target will complete through its own
     * op->cb with ORC_ECANCELED (later, never inside this call; an op that
     * was already completing may finish with its own status instead),
     * ORC_ENOTFOUND when target is not in flight here. Whatever the
     * provider already did stays done: cancel of a provision does not
     * delete; deprovision the name. */
    int (*cancel)(void *state, orc_op_t *target);

    /* ---- ABI 2 ---- */

    /* Stops a workload that start_workload started on resource name
     * (workload NULL: "main"): a service is stopped and its supervision
     * (restarts) ends, a running job is killed. Calls back 0 once it no
     * longer runs, with op->exists saying whether it was running. Idempotent:
     * stopping a workload that is not running, or is unknown, is a success
     * with op->exists false. start_workload starts it again afterwards. */
    int (*stop_workload)(void *state, orc_op_t *op, const char *name, const char *workload);

    /* Powers a resource off without deleting it (a VM stopped, a local
     * node's workloads stopped, a pod scaled to zero): its capacity may stay
     * reserved, its name and data stay. Calls back 0 once it is stopped, with
     * op->exists and op->res_state (STOPPED). Idempotent. */
    int (*stop)(void *state, orc_op_t *op, const char *name);

    /* Powers a stopped resource on again (and restarts the services it ran
     * before stop); calls back 0 once it is usable, with op->exists,
     * op->res_state (READY) and its attributes, as provision. Idempotent:
     * a running resource answers at once. */
    int (*start)(void *state, orc_op_t *op, const char *name);

    /* ABI 2 ends here. New slots go below and bump ORC_DRIVER_ABI. */
};

#ifdef __cplusplus
}
#endif
#endif
