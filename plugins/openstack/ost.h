/*
 * The openstack driver's internals (docs/openstack-site.md), shared by its files:
 *   ost.c         the vtable, site open and close, operations in flight and their
 *                 steps (an API call or a wait, then the next step), cancel
 *   ost_conf.c    the site config and its credentials
 *   ost_auth.c    Keystone v3: the token (password or application credential),
 *                 the catalog's endpoints, renewal, the authenticated call
 *   ost_cloud.c   what the cloud has (flavors and their GPUs, networks), read at
 *                 open and refreshed; the flavor a request gets; quotas
 *   ost_server.c  provision (security group, server, floating IP), deprovision,
 *                 status and adopt, inventory
 *   ost_wl.c      workloads: the user data starts them (ORC_DRV_CAP_AGENT_BOOT), start_workload
 *                 and exec follow them through their agent's reports and the server
 *   ost_userdata.c the cloud-init script that installs and checks gpu-agent and starts
 *                 the node's workloads
 * A compute node is one Nova server named after the resource, with a Neutron
 * security group of the same name and, when a public address is wanted, a
 * floating IP whose description is the name. Everything runs on the daemon's
 * loop thread; the APIs are reached through host->http (plugins/cloud).
 */
#ifndef OST_H
#define OST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"
#include "../cloud/cloud.h"

#define OST_NAME_MAX 63
#define OST_ID_LEN 80
#define OST_MODEL_LEN 48
#define OST_MAX_PORTS 32
#define OST_IMAGE_CACHE 8
#define OST_SYNC_MAX_AGE_MS (10 * 60 * 1000) /* flavors and networks are read again after this */
#define OST_RENEW_MARGIN_MS (5 * 60 * 1000)  /* a token is renewed this long before it expires */
#define OST_UNBOUNDED 1000                   /* nodes counted when a quota has no limit */

enum ost_svc { OST_COMPUTE = 0, OST_NETWORK, OST_IMAGE, OST_NSVC };
enum ost_auth_type { OST_AUTH_PASSWORD = 0, OST_AUTH_APPCRED };
enum ost_fip { OST_FIP_ON_REQUEST = 0, OST_FIP_ALWAYS, OST_FIP_NEVER };

/* ---- config (ost_conf.c) ---------------------------------------------------------- */

struct ost_flavor_map {
    char *flavor;
    char *model; /* NULL: CPU only */
    uint32_t gpus;
};

struct ost_alias {
    char *alias; /* a PCI alias or resource class suffix, as the flavor says it */
    char *model; /* the orchestrator's model name */
};

struct ost_conf {
    char *auth_url; /* .../v3, no trailing slash */
    int auth_type;  /* enum ost_auth_type */
    char *username, *user_id, *user_domain_name, *user_domain_id;
    char *project_name, *project_id, *project_domain_name, *project_domain_id;
    char *appcred_id, *appcred_name;
    char *region, *interface;
    char *endpoint[OST_NSVC]; /* overrides; NULL: the catalog's */
    char *ca_file;
    char *network, *floating_network;
    int floating_ip; /* enum ost_fip */
    char *image, *key_name, *public_key;
    struct ost_flavor_map *fmap;
    size_t nfmap;
    struct ost_alias *aliases;
    size_t naliases;
    uint32_t build_timeout_ms, delete_timeout_ms, poll_ms, poll_max_ms;
    uint32_t timeout_ms, retries;
    uint32_t agent_timeout_ms; /* a workload's agent: first report after ACTIVE, then silence */
    char *agent_install, *agent_path, *agent_check;
    char *state_dir; /* on the server: node.env, the check's JSON, the script's log */
};

/* Parses conf->config_json and fetches the secret (*secret, host->malloc'd).
 * 0, or < 0 with err ("openstack: config: ..."); c is then freed. */
int ost_conf_parse(const struct orc_host_api *host, const struct orc_site_conf *conf,
                   struct ost_conf *c, char **secret, char *err, size_t errlen);
void ost_conf_free(const struct orc_host_api *host, struct ost_conf *c);

/* ---- the site's state ---------------------------------------------------------------- */

struct ost_flavor {
    char *id, *name;
    uint32_t vcpus;
    uint64_t ram_mb, disk_gb;
    uint32_t gpus;              /* 0: CPU only */
    char model[OST_MODEL_LEN];  /* "" when gpus is 0 */
    bool have_specs;            /* extra_specs were read */
};

struct ost_image {
    char key[256]; /* the template's or the config's image: a name or an id */
    char id[OST_ID_LEN];
    int64_t at_ms;
};

struct oop;

struct ost {
    const struct orc_host_api *host;
    const struct orc_site_conf *conf;
    struct ost_conf c;
    char *secret; /* the password or application credential secret: never logged */
    struct cld_tls tls;
    /* Keystone (ost_auth.c) */
    char *auth_header;           /* "X-Auth-Token: ..." or NULL */
    uint64_t token_gen;          /* counts the tokens obtained */
    int64_t token_renew_ms;      /* monotonic: renew from then on */
    int64_t token_expire_ms;     /* monotonic: useless from then on */
    char *url[OST_NSVC];         /* the endpoints in use */
    char project_id[OST_ID_LEN]; /* the token's project */
    struct cld_call auth;
    bool auth_busy;
    struct oop *auth_waiters;
    /* what the cloud has (ost_cloud.c) */
    struct ost_flavor *flavors;
    size_t nflavors;
    char net_id[OST_ID_LEN], net_name[256];
    char fnet_id[OST_ID_LEN];
    char fnet_why[200]; /* why there is no floating network ("" when there is) */
    bool synced;
    int64_t synced_ms;
    struct oop *sync_op, *sync_waiters;
    bool keypair_ok;
    struct ost_image images[OST_IMAGE_CACHE];
    /* ops */
    struct oop *ops, *close_op;
    bool closing;
    uint64_t rng;
};

/* ---- operations and their steps (ost.c) ----------------------------------------------- */

enum oop_kind { OOP_OPEN, OOP_CLOSE, OOP_SYNC, OOP_PROVISION, OOP_DEPROVISION, OOP_STATUS,
                OOP_INVENTORY, OOP_WORKLOAD };

/* call flags */
#define OST_CREATE 1u       /* a POST that creates: sent once, the step looks up before again */
#define OST_QUICK 2u        /* two attempts in all (site open: a cloud that is down must not
                               hold the daemon's start) */
#define OST_MICROVERSION 4u /* compute 2.61: flavors with their extra_specs */

typedef void (*oop_step)(struct oop *o, int status);

struct oop {
    struct ost *s;
    orc_op_t *op; /* NULL: the driver's own (sync), or the close op after it answered */
    enum oop_kind kind;
    struct oop *prev, *next; /* s->ops */
    struct oop *wnext;       /* s->auth_waiters or s->sync_waiters */
    bool auth_wait, sync_wait;
    struct cld_call call;
    bool call_busy, canceled;
    oop_step next_step; /* what runs when the call or the wait ends */
    oop_step then;      /* what runs after a sequence of steps (delete_all, sync) */
    oop_step retry_step;
    uint64_t timer;
    int status; /* for a deferred answer */
    char err[ORC_OP_ERROR_LEN]; /* why, once it fails: copied to op->error */
    /* the call in flight, kept to send it again (a new token) */
    int svc;
    char method[8];
    char *path, *body;
    unsigned flags;
    unsigned xflags; /* added to every call of the op (OST_QUICK) */
    bool auth_retried;
    uint64_t token_gen_used;
    /* what the op is about */
    char name[OST_NAME_MAX + 1];
    char deployment[64];
    uint32_t cpus, gpus;
    uint64_t mem, disk;
    char model[OST_MODEL_LEN];
    char instance_type[128];
    char image[256];
    bool want_fip;
    uint16_t ports[OST_MAX_PORTS];
    size_t nports;
    /* what it found or made */
    char flavor_id[OST_ID_LEN], flavor_name[128], gpu_model[OST_MODEL_LEN];
    uint32_t flavor_gpus;
    char image_id[OST_ID_LEN];
    char server_id[OST_ID_LEN], sg_id[OST_ID_LEN], fip_id[OST_ID_LEN], port_id[OST_ID_LEN];
    char fixed_ip[64], floating_ip[64];
    json_t *server; /* the server as last read */
    json_t *list;   /* what a step works through */
    size_t idx;
    int64_t started_ms, deadline_ms, build_deadline_ms, phase_deadline_ms;
    uint32_t wait_ms; /* the poll interval now */
    uint32_t tries;   /* transient failures so far (backoff) */
    uint32_t creates; /* POSTs sent for the object being made */
    uint32_t rounds;
    uint32_t verifies; /* deletion: listings that still showed something */
    bool existed;
    bool made;   /* provision created or adopted something: a failure cleans it up */
    bool resent; /* this op posted the server: duplicates are looked for at the end */
    json_t *boot; /* provision: the workloads the user data starts (req->boot_json) */
    /* start_workload and exec (ost_wl.c) */
    char workload[64], resource[64];
    bool job;
    int64_t active_ms;    /* when the server was first seen ACTIVE (0: not yet) */
    int64_t report_ms;    /* the last agent report seen (the daemon's clock), 0: none */
    int64_t heard_ms;     /* when that report was first seen here (monotonic) */
    int fail_code;
    char fail_msg[ORC_OP_ERROR_LEN];
};

struct oop *oop_new(struct ost *s, orc_op_t *op, enum oop_kind kind);
/* Answers the op (status; o->err is its error) and frees o. */
void oop_done(struct oop *o, int status);
/* Answers on a later loop iteration: for `return oop_defer(o, rc)` from a slot. */
int oop_defer(struct oop *o, int status);
/* The first step's result: rc < 0 frees o (its op never answers) and returns rc. */
int oop_started(struct oop *o, int rc);
/* Fails the op ("openstack: " prefixed): oop_done(o, code). */
void oop_fail(struct oop *o, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes o->err ("openstack: " prefixed) and returns code. */
int oop_errf(struct oop *o, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A call to a service (path below its endpoint: "/servers/detail"; body JSON text or
 * NULL) with the site's token (obtained or renewed first when needed; a 401 renews it
 * once); then next(o, status) with o->call holding the answer. status < 0: no answer
 * (o->call.error says why; ORC_EDENIED: Keystone refused the credentials). 0 or < 0. */
int oop_call(struct oop *o, int svc, const char *method, const char *path, const char *body,
             unsigned flags, oop_step next);
/* The same with body a JSON value (stolen). */
int oop_call_json(struct oop *o, int svc, const char *method, const char *path, json_t *body,
                  unsigned flags, oop_step next);
/* A timer's callback (arg: the op): o->next_step(o, o->status), or the op ends canceled. */
void oop_on_timer(void *arg);
/* next(o, 0) after ms. 0 or ORC_ENOMEM. */
int oop_wait(struct oop *o, uint32_t ms, oop_step next);
/* The API's message of o->call's answer. */
const char *oop_api_msg(struct oop *o, char *buf, size_t cap);
/* A call's answer that a step cannot use: fails the op, saying what and where. */
void oop_fail_call(struct oop *o, int status, const char *what);
/* true when a call's outcome is worth another try (no answer, 429, 5xx) */
bool oop_transient(const struct oop *o, int status);
/* After a transient failure: step runs again after a backoff with jitter, unless the
 * op's deadline would pass first; then the op fails (oop_fail_call). */
void oop_retry_later(struct oop *o, int status, const char *what, oop_step step);
/* The HTTP codes a step accepts, for oop_answer: OST_CODES(200, 404). */
#define OST_CODES(...) ((const long[]){__VA_ARGS__, 0})
/* true when o->call answered one of ok (0-terminated); otherwise a transient failure runs
 * again later (oop_retry_later: step again) or the op fails saying what, and false. */
bool oop_answer(struct oop *o, int status, const char *what, oop_step again, const long *ok);
/* A step's failure as a code and o->err (for sequences that decide later). */
int oop_call_error(struct oop *o, int status, const char *what);
/* Steps that run when the op fails or its sequence ends; see o->then. */
void oop_then(struct oop *o, int status);

/* ---- Keystone (ost_auth.c) ---- */

/* 1: a usable token is there; 0: o waits for one (o's pending call is sent, or its
 * next_step called with the failure, once it came); < 0: cannot start. */
int ost_auth_need(struct oop *o);
void ost_auth_leave(struct oop *o);
void ost_auth_cancel(struct ost *s);
void ost_auth_free(struct ost *s);
/* the token's header line is stale: the next call fetches a new one */
void ost_auth_invalidate(struct ost *s, uint64_t gen);
/* sends o's pending call (o->svc, method, path, body) now */
int oop_send(struct oop *o);
/* the site may be done closing (the token request ended) */
void ost_close_check(struct ost *s);

/* ---- the cloud's catalog of flavors and networks (ost_cloud.c) ---- */

/* Runs next(o, status) once the site knows its flavors and networks (read now when
 * they are not, or older than OST_SYNC_MAX_AGE_MS: one read at a time, the others
 * wait for it; a failed refresh keeps what was read before). 0 or < 0. */
int ost_sync_need(struct oop *o, oop_step next);
void ost_sync_leave(struct oop *o);
/* the sync op ended (oop_done): its waiters go on */
void ost_sync_ended(struct oop *o, int status);
void ost_cloud_free(struct ost *s);
/* Reads a flavor's GPUs from its extra_specs and the config's maps. */
void ost_flavor_gpus(const struct ost_conf *c, struct ost_flavor *f, const json_t *specs);
/* The flavor a request gets: o->instance_type by name, else the smallest that fits
 * o->cpus, mem, disk, gpus and model. NULL with o->err (ENOCAPACITY) when none fits. */
const struct ost_flavor *ost_flavor_pick(struct oop *o, int *code);
const struct ost_flavor *ost_flavor_find(const struct ost *s, const char *id_or_name);
/* A GPU model name as the driver reports it: the config's gpu_aliases, else the name
 * upper-cased without a leading "CUSTOM_", "GPU_", "NVIDIA_" or "TESLA_". */
void ost_model_of(const struct ost_conf *c, const char *alias, char *out, size_t cap);
/* Adds the site's pools to op from the flavors and the answer of GET /limits (NULL:
 * unknown, counts unbounded). 0 or ORC_ENOMEM. */
int ost_pools(struct ost *s, orc_op_t *op, const json_t *limits);

/* ---- servers (ost_server.c: provision; ost_delete.c: the rest) ---- */

int ost_provision(void *state, orc_op_t *op, const struct orc_node_req *req);
int ost_deprovision(void *state, orc_op_t *op, const char *name);
int ost_status(void *state, orc_op_t *op, const char *name);
int ost_inventory(void *state, orc_op_t *op);
/* The enum orc_drv_res_state of a Nova server. */
int ost_res_state(const json_t *server);
/* GET /servers/detail?name=^NAME$, then next. 0 or < 0. */
int ost_list_servers(struct oop *o, oop_step next);
/* GET of Neutron's objects (what: "floatingips") whose field ("description") is o->name,
 * then next. 0 or < 0. */
int ost_list_by(struct oop *o, const char *what, const char *field, oop_step next);
/* The servers of that answer that are ours (name and metadata orc_name), best first
 * (ACTIVE, BUILD, ..., then the oldest): a new array (NULL on OOM). */
json_t *ost_our_servers(const struct oop *o);
/* The objects of a Neutron list answer (key: "floatingips", "security_groups") whose
 * field (description, name) is o->name: a new array. */
json_t *ost_our_objects(const struct oop *o, const char *key, const char *field);
/* Deletes o->name's servers (and waits until they are gone), floating IPs and
 * security group, then verifies by listing; then oop_then(o, 0), with o->existed
 * saying whether there was anything. Failures end through oop_then too. */
void ost_delete_all(struct oop *o);
/* The first IPv4 address of o->server of type ("fixed", "floating"); "" when none. */
const char *ost_address(const struct oop *o, const char *type);
/* The resource's attributes from o->server and what o found. 0 or ORC_ENOMEM. */
int ost_report(struct oop *o);

/* ---- workloads started by the user data (ost_wl.c) ---- */

int ost_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req);
int ost_exec(void *state, orc_op_t *op, const struct orc_exec_req *req);

/* ---- user data (ost_userdata.c) ---- */

/* The cloud-init script of o's server, base64 (host->malloc'd), or NULL (OOM). */
char *ost_user_data(const struct ost *s, const struct oop *o);
/* The script itself (host->malloc'd), or NULL. */
char *ost_user_script(const struct ost *s, const struct oop *o);
/* base64 of n bytes (host->malloc'd, NUL-terminated), or NULL. */
char *ost_base64(const struct orc_host_api *host, const char *in, size_t n);

/* ---- small things ---- */

/* JSON text of v (host->malloc'd, compact), or NULL. */
char *ost_json_text(const struct orc_host_api *host, const json_t *v);
/* a resource name the driver accepts: [a-z0-9-], 1-63 */
bool ost_name_ok(const char *name);
/* true when text holds word, letter case aside */
bool ost_has(const char *text, const char *word);
/* writes src into dst (cap bytes), "" when src is NULL */
void ost_copy(char *dst, size_t cap, const char *src);

#endif
