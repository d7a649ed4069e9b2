/*
 * The kubernetes driver's internals (docs/kubernetes-site.md), shared by its files:
 *   k8s.c        the vtable, site open and close, operations in flight and their
 *                steps (a REST call or a wait, then the next step), cancel
 *   k8s_conf.c   the site config, the credentials, GPU model <-> node label
 *   k8s_spec.c   the objects the driver creates: namespace, the node's ConfigMap,
 *                Job, Deployment, Service; the names and labels it gives them
 *   k8s_pods.c   what the pods of a workload say: ready, failed and why, unschedulable
 *   k8s_node.c   provision, deprovision, status and adopt, inventory
 *   k8s_wl.c     start_workload (Deployment + Service), exec (Job), stop_workload, logs
 * A compute node is a reservation: a ConfigMap named after it that holds what it
 * asked for (CPUs, memory, GPUs of a model, image); its workloads are the pods
 * (a Job for a job, a Deployment and a Service for a service) that run gpu-agent
 * as their supervisor with those resources. Everything runs on the daemon's
 * loop thread; the API is reached through host->http (plugins/cloud).
 */
#ifndef K8S_H
#define K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"
#include "../cloud/cloud.h"

#define K8S_NAME_MAX 63
#define K8S_PATH_MAX 1024
#define K8S_LABEL_HOST "orc.io/host"
#define K8S_LABEL_WORKLOAD "orc.io/workload"
#define K8S_LABEL_DEPLOYMENT "orc.io/deployment"
#define K8S_LABEL_MANAGED "app.kubernetes.io/managed-by"
#define K8S_MANAGED_BY "orchestrator"

/* ---- config (k8s_conf.c) ---------------------------------------------------------- */

struct k8s_model {
    char *model; /* the orchestrator's name: "A100" */
    char *label; /* the node label's value: "NVIDIA-A100-SXM4-80GB" */
};

enum k8s_svc_type { K8S_SVC_CLUSTER_IP = 0, K8S_SVC_NODE_PORT, K8S_SVC_LOAD_BALANCER };
enum k8s_endpoint { K8S_EP_SERVICE = 0, K8S_EP_POD };

struct k8s_conf {
    char *api_url;   /* https://host:6443, no trailing slash */
    char *ca_file, *cert_file, *key_file;
    char *token;     /* the bearer token (the site's credentials), or NULL */
    char *namespace_; /* the namespace of every deployment, unless per_deployment */
    bool per_deployment; /* namespace "orc-<uuid hex>" per deployment */
    char *image;         /* a node's image when the template names none */
    char *image_pull_policy; /* NULL: the cluster's default */
    char *agent;             /* gpu-agent's path in the image; NULL: "off" (run directly) */
    char *agent_check;       /* none | quick | standard */
    char *gpu_resource;      /* "nvidia.com/gpu" */
    char *gpu_label;         /* "nvidia.com/gpu.product" */
    struct k8s_model *models;
    size_t nmodels;
    int service_type; /* enum k8s_svc_type */
    int endpoint;     /* enum k8s_endpoint */
    uint32_t pending_timeout_ms, poll_ms, delete_timeout_ms;
    uint32_t timeout_ms, retries;
};

/* Parses conf->config_json and the credentials into c (zeroed by the caller).
 * 0, or < 0 with err ("kubernetes: config: ..."); c is then freed. */
int k8s_conf_parse(const struct orc_host_api *host, const struct orc_site_conf *conf,
                   struct k8s_conf *c, char *err, size_t errlen);
void k8s_conf_free(const struct orc_host_api *host, struct k8s_conf *c);
/* The orchestrator's model name of a node label value: the config's map, else the
 * label without a leading "NVIDIA-" or "Tesla-", up to the next '-' ("A100"). */
void k8s_model_of_label(const struct k8s_conf *c, const char *label, char *out, size_t cap);
/* true when the label value is of model (case-insensitive) */
bool k8s_label_is_model(const struct k8s_conf *c, const char *label, const char *model);

/* ---- quantities (k8s_spec.c) ---- */

/* "500m", "2" -> millicores; "16Gi", "1G", "1024" -> bytes. false: not a quantity. */
bool k8s_cpu_milli(const char *q, uint64_t *out);
bool k8s_bytes(const char *q, uint64_t *out);
/* a JSON value (string or number) as a quantity; 0 when absent or malformed */
uint64_t k8s_jcpu_milli(const json_t *v);
uint64_t k8s_jbytes(const json_t *v);
uint64_t k8s_jcount(const json_t *v); /* "4" or 4 */

/* ---- the driver's state ------------------------------------------------------------- */

struct kop;

struct k8s {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    struct k8s_conf c;
    struct cld_tls tls;
    char *auth_header; /* "Authorization: Bearer ..." (host->malloc'd) or NULL */
    struct kop *ops;   /* in flight */
    struct kop *close_op;
    bool closing;
};

/* What a compute node asked for: its ConfigMap's "node" entry. */
struct k8s_node {
    char name[K8S_NAME_MAX + 1];
    char deployment[40];
    uint32_t cpus, gpus;
    uint64_t mem; /* bytes */
    char model[64];       /* the orchestrator's name; "" any */
    char gpu_label[128];  /* the node label value to select; "" any */
    char image[512];
};
char *k8s_node_json(const struct k8s *k, const struct k8s_node *n);
int k8s_node_parse(const char *text, struct k8s_node *n);

/* ---- operations and their steps (k8s.c) ------------------------------------------------- */

enum kop_kind { KOP_OPEN, KOP_CLOSE, KOP_PROVISION, KOP_DEPROVISION, KOP_STATUS, KOP_INVENTORY,
                KOP_START, KOP_EXEC, KOP_STOP_WL, KOP_LOGS };

typedef void (*kop_step)(struct kop *o, int status);

struct kop {
    struct k8s *k;
    orc_op_t *op; /* NULL for the close op after it answered */
    enum kop_kind kind;
    struct kop *prev, *next;
    struct cld_call call;
    kop_step next_step; /* what runs when the call or the wait ends */
    kop_step then;      /* what runs after a sequence of steps (delete, verify) */
    uint64_t timer;
    bool call_busy, canceled;
    bool once; /* calls are not retried (site open) */
    int status; /* for a deferred answer */
    /* what the op is about */
    char name[K8S_NAME_MAX + 1];  /* the node (host) */
    char wl[K8S_NAME_MAX + 1];    /* the workload id */
    char obj[K8S_NAME_MAX + 1];   /* the workload's object name */
    char ns[K8S_NAME_MAX + 1];
    struct k8s_node node;
    int64_t started_ms;
    uint32_t wait_ms;
    int phase;          /* the step's own counter */
    json_t *doc;        /* an object to create, or a list being worked through */
    json_t *keep;       /* results kept across steps */
    size_t idx;
    bool existed;
    char reason[ORC_OP_ERROR_LEN];
    char selector[160]; /* of k8s_delete_selected */
    /* exec/start/logs: the request, copied */
    int exec_kind; /* ORC_KIND_JOB or ORC_KIND_SERVICE */
    char **argv;
    struct orc_kv *env;
    size_t nenv;
    uint16_t port;
    char *ready_path;
    uint64_t log_offset;
    uint32_t log_max;
};

struct kop *kop_new(struct k8s *k, orc_op_t *op, enum kop_kind kind);
/* Answers the op (status) and frees o. */
void kop_done(struct kop *o, int status);
/* Answers on a later loop iteration: for `return kop_defer(o, rc)` from a slot. */
int kop_defer(struct kop *o, int status);
/* The first step's result: rc < 0 frees o (its op never answers) and returns rc. */
int kop_started(struct kop *o, int rc);
/* Fails the op with a message ("kubernetes: ..." is prefixed): kop_done(o, code). */
void kop_fail(struct kop *o, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A call to the API (path from the root: "/api/v1/nodes"; body JSON text or NULL);
 * then next(o, status) with o->call holding the answer. Creates (POST) are
 * retried too: names are deterministic, and a 409 means ours exists. 0 or < 0. */
int kop_call(struct kop *o, const char *method, const char *path, const char *body, kop_step next);
/* Same, with body a JSON value (stolen). */
int kop_call_json(struct kop *o, const char *method, const char *path, json_t *body, kop_step next);
/* next(o, 0) after ms. 0 or ORC_ENOMEM. */
int kop_wait(struct kop *o, uint32_t ms, kop_step next);
/* The API's message of o->call's answer ("pods \"x\" not found"). */
const char *kop_api_msg(struct kop *o, char *buf, size_t cap);
/* When a step's call failed (status < 0) or answered a code the step cannot use:
 * fails the op with what and where. */
void kop_fail_call(struct kop *o, int status, const char *what);

/* ---- objects (k8s_spec.c) ---------------------------------------------------------------- */

/* The namespace of a deployment (per_deployment: "orc-" + its uuid's 32 hex digits). */
void k8s_ns_of(const struct k8s *k, const char *deployment, char out[K8S_NAME_MAX + 1]);
/* The deployment uuid in a resource name "orc-<32 hex>-..." ("" when it has none). */
void k8s_deployment_of_name(const char *name, char out[40]);
/* A workload's object name: the host's name for "main", else the host's name cut
 * to 52 characters, "-", 10 hex digits of the workload id's hash. */
void k8s_obj_name(const char *host, const char *workload, char out[K8S_NAME_MAX + 1]);
json_t *k8s_labels(const char *deployment, const char *host, const char *workload);
json_t *k8s_namespace_obj(const char *ns, const char *deployment);
json_t *k8s_configmap_obj(const struct k8s *k, const struct k8s_node *n);
/* The pod template of a workload of o (its node, argv, env, port, ready path). */
json_t *k8s_pod_template(const struct k8s *k, const struct kop *o, bool job);
json_t *k8s_job_obj(const struct k8s *k, const struct kop *o);
json_t *k8s_deployment_obj(const struct k8s *k, const struct kop *o);
json_t *k8s_service_obj(const struct k8s *k, const struct kop *o);
/* true when obj carries our labels for this host (adopting a 409's object) */
bool k8s_is_ours(const json_t *obj, const char *host);

/* ---- pods (k8s_pods.c) ---- */

struct k8s_pods_view {
    size_t n;
    const json_t *ready;     /* a ready pod, or NULL */
    const json_t *newest;    /* the most recent pod, or NULL */
    char fatal[ORC_OP_ERROR_LEN];  /* a reason that will not fix itself ("" none) */
    char pending[ORC_OP_ERROR_LEN]; /* unschedulable: the scheduler's message ("" none) */
    int exit_code;           /* a terminated container's, -1 none */
};
/* Reads a PodList; restarts_fatal: CrashLoopBackOff counts as fatal (a service
 * that never got ready). */
void k8s_pods_view(const json_t *list, bool crashloop_fatal, struct k8s_pods_view *v);
const char *k8s_pod_name(const json_t *pod);
const char *k8s_pod_ip(const json_t *pod);
const char *k8s_host_ip(const json_t *pod);

/* ---- slots (k8s_node.c, k8s_wl.c) ---- */

int k8s_provision(void *state, orc_op_t *op, const struct orc_node_req *req);
int k8s_deprovision(void *state, orc_op_t *op, const char *name);
int k8s_status(void *state, orc_op_t *op, const char *name);
int k8s_inventory(void *state, orc_op_t *op);
int k8s_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req);
int k8s_exec(void *state, orc_op_t *op, const struct orc_exec_req *req);
int k8s_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload);
int k8s_logs(void *state, orc_op_t *op, const struct orc_logs_req *req);

/* The node of a workload: GET its ConfigMap into o->node, then next(o, 0), or the
 * op fails (ORC_ENOTFOUND: "node X is not provisioned on this site"). */
int k8s_load_node(struct kop *o, kop_step next);
/* Deletes every job, deployment and service of o->ns labelled with selector
 * (foreground propagation; o->existed when there was one), then waits until
 * none of them, nor a pod, is listed any more (within delete_timeout_ms), then
 * next(o, 0). The op fails on its own when a call does. 0 or < 0. */
int k8s_delete_selected(struct kop *o, const char *selector, kop_step next);

#endif
