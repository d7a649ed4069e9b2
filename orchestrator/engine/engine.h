/*
 * The deployment engine: drives deployments from the store through the
 * sites' drivers, on the daemon's loop. For a create it ranks the sites
 * (sched/), then tries them in order: on each it walks the plan's node DAG
 * with bounded concurrency (provision compute, start services, run jobs),
 * persisting every transition before and after each driver call; a failure
 * cleans up what the attempt created (unless keepLastAttempt on the last
 * site) and moves on to the next site; statusReason lists every site's
 * error. On success the outputs are evaluated from the resources'
 * attributes. A delete deprovisions every resource. After a restart,
 * orc_engine_start() re-drives every deployment left in progress: driver
 * operations are idempotent by resource name, so nothing is duplicated.
 */
#ifndef ORC_ENGINE_H
#define ORC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "drivers.h"
#include "sites.h"
#include "../store/store.h"

struct orc_engine;

/* Called after the engine stored something about a deployment (status,
 * resource, event): the API wakes its event streams. */
typedef void (*orc_engine_notify_fn)(void *ud, const char *deployment_uuid);
typedef void (*orc_engine_done_fn)(struct orc_engine *eng, void *ud);

struct orc_engine_opts {
    unsigned max_parallel_ops; /* per deployment; 0: 8 */
    /* callbacks: POST of the deployment JSON when it completes or fails,
     * retried with exponential backoff */
    unsigned callback_attempts;   /* 0: 8 */
    unsigned callback_backoff_ms; /* first retry delay, doubled each time; 0: 1000 */
    uint64_t deadline_minute_ms;  /* the minute of timeoutMins/providerTimeoutMins; 0: 60000 */
    /* Group commit (store/commit.h) of the daemon's store: the engine makes a
     * driver call only once the transitions stored before it are durable.
     * NULL: the engine makes its own over the store (which then must have
     * no write hook). */
    struct orc_commit_s *commit;
    orc_engine_notify_fn notify;
    void *notify_ud;
    /* gpu-agent (agent.c): the base URL agents report to and the key of
     * their tokens; a workload's environment says both (ORC_AGENT_*). NULL:
     * workloads are started without reporting. Must outlive the engine. */
    const char *agent_url;
    const char *agent_ca_file; /* ORC_AGENT_CA_FILE of the agents; NULL: none */
    bool callback_public_only; /* callbacks reach public addresses only (docs/security.md) */
    const unsigned char *agent_key;
    size_t agent_key_len;
    /* Several daemons on one database (leases.c): this daemon's instance name and how
     * long a lease lasts without renewal. lease_ms 0 or instance NULL: no leases (one
     * daemon works on everything). */
    const char *instance;
    uint64_t lease_ms;
};

/* Creates an engine over an open store and a driver registry. sites is
 * copied by reference: it must outlive the engine. Nothing runs until
 * orc_engine_start. Returns 0 and *out, or ORC_ENOMEM. */
int orc_engine_new(uv_loop_t *loop, orc_store_t *store, struct orc_drv_registry *reg,
                   const struct orc_sites *sites, const struct orc_engine_opts *opts,
                   struct orc_engine **out);

/* Opens every enabled site (a site that fails to open is logged and left
 * out of ranking), then re-drives the deployments left in progress, then
 * calls ready (once, later). */
int orc_engine_start(struct orc_engine *eng, orc_engine_done_fn ready, void *ud);

/* Starts the create of a stored deployment (CREATE_IN_PROGRESS, with its
 * plan). Returns 0, ORC_ENOTFOUND, ORC_ECONFLICT (already running or not in
 * CREATE_IN_PROGRESS) or ORC_ENOMEM. */
int orc_engine_create(struct orc_engine *eng, const char *uuid);
/* The same with the plan the caller has just stored for it (not read back). */
int orc_engine_create_plan(struct orc_engine *eng, const char *uuid, json_t *plan);

/* Starts the delete of a deployment the API put in DELETE_IN_PROGRESS: a
 * running create or update is stopped first. Same codes. */
int orc_engine_delete(struct orc_engine *eng, const char *uuid);
/* The same; with force, provider failures do not stop it: the deployment is
 * DELETE_COMPLETE anyway (DELETE ?force=true) and the log says what failed. */
int orc_engine_delete_opts(struct orc_engine *eng, const char *uuid, bool force);

/* Lets go of a deployment the engine works on (PATCH reset of a deletion
 * stuck on a provider that does not answer): its driver operations are
 * cancelled, nothing more about it is stored, and it is not busy any more.
 * Nothing happens when the engine does not work on it. */
void orc_engine_abandon(struct orc_engine *eng, const char *uuid);

/* Starts the update of a deployment the API put in UPDATE_IN_PROGRESS with
 * its new template, parameters and plan: on the site it runs on, compute
 * nodes are scaled in (removal_list first, then the newest) or out to the
 * plan's counts, workloads whose specification changed restart, compute
 * nodes whose specification changed are replaced; UPDATE_COMPLETE with the
 * outputs evaluated again, or UPDATE_FAILED naming what failed (what was
 * done stays done: a later update or delete takes it from there). Same
 * codes as create. */
int orc_engine_update(struct orc_engine *eng, const char *uuid);

/* Starts a user action on a resource of a deployment nobody works on:
 * start (from STOPPED) or stop (from STARTED); a compute node's hosted
 * workloads follow it. The resource's state says how it went (back to its
 * former state and an event with the reason when the driver failed).
 * Returns 0; ORC_ENOTFOUND (no such deployment or resource); ORC_ECONFLICT
 * (the engine works on the deployment); ORC_EINVAL (not allowed from the
 * resource's state, or it is on no open site: why says so); ORC_ENOMEM. */
int orc_engine_resource_action(struct orc_engine *eng, const char *uuid, const char *res_uuid,
                               bool start, char *why, size_t whylen);

/* True while the engine works on the deployment. */
bool orc_engine_busy(const struct orc_engine *eng, const char *uuid);
size_t orc_engine_active(const struct orc_engine *eng);
/* Leases (several daemons on one store): whether they are used, how many this daemon held
 * at its last renewal, and how many deployments it took over from other daemons. */
void orc_engine_lease_stats(const struct orc_engine *eng, bool *on, size_t *held,
                            uint64_t *takeovers);
/* Callback deliveries waiting for their next try. */
size_t orc_engine_callbacks_pending(const struct orc_engine *eng);

/* ---- gpu-agent (agent.c) ---- */

/* "orc-agent-v1." and 64 hex digits */
#define ORC_AGENT_TOKEN_LEN 78

/* The token the agents of a deployment report with. ORC_ENOTSUP without a
 * key. */
int orc_engine_agent_token(const struct orc_engine *eng, const char *deployment,
                           char out[ORC_AGENT_TOKEN_LEN]);
/* True if token is the deployment's (compared in constant time). */
bool orc_engine_agent_token_ok(const struct orc_engine *eng, const char *deployment,
                               const char *token);

/* Applies a batch of an agent's reports (the body of POST
 * /agent/v1/deployments/{id}/reports, docs/agent.md) to the attributes of
 * its resource and of that resource's compute node: "agent" (inventory,
 * health, workloads, status, identity), gpu_health, gpu_count, gpu_models,
 * workload_state, restarts. A change of health or workload state is an
 * event; heartbeats are not. *accepted: the highest seq applied. Returns 0;
 * ORC_EFORMAT (a malformed body) or ORC_ENOTFOUND (a resource not in the
 * deployment), why saying which; a store error. */
int orc_engine_agent_reports(struct orc_engine *eng, const char *deployment, const json_t *body,
                             uint64_t *accepted, char *why, size_t whylen);

/* The sites as they are now (site_view.c): a JSON array, one object per site of the
 * sites file, in its order: name, driver, description, priority, state (active, disabled,
 * unavailable), credentials (the secret's name, or null), inventory ("ok", the driver's
 * error, or null when not asked: the site is not open) and, when "ok", pools, gpus
 * ([{model, total, free}]), cpus and memory ({total, free}). Every open site is asked
 * its inventory at once; fn(ud, sites) runs once all answered (sites borrowed; NULL when
 * out of memory), from this call when no site was asked. 0 and *out (NULL once
 * answered), ORC_ECANCELED while closing, or ORC_ENOMEM. */
struct orc_sites_query;
typedef void (*orc_engine_sites_fn)(void *ud, json_t *sites);
int orc_engine_sites(struct orc_engine *eng, orc_engine_sites_fn fn, void *ud,
                     struct orc_sites_query **out);
/* fn will not run (its caller went away); the query ends when the sites answer. */
void orc_engine_sites_cancel(struct orc_sites_query *q);

/* Draining sites take no new deployments; those on them stay (and update, and delete).
 * The state is the store's (meta key "site/NAME" = "draining"), so every daemon on a
 * shared store sees it at its next ranking. orc_engine_site_drain sets it (ORC_ENOTFOUND:
 * no such site in the sites file); orc_engine_site_draining reads it. */
int orc_engine_site_drain(struct orc_engine *eng, const char *name, bool draining);
/* Forgets the stored state (draining) of a site, there or not (a removed one). */
int orc_engine_site_forget_state(struct orc_engine *eng, const char *name);

/* Sites registered at run time (the API's POST, PUT and DELETE /sites, docs/api.md
 * "Sites"). orc_engine_site_add takes one: a one-site list (orc_sites_load_buffer's),
 * which the engine owns from then on (freed even on failure), and opens it when it is
 * enabled; ORC_ECONFLICT when a site of that name exists, ORC_ECANCELED while closing.
 * orc_engine_site_remove takes a site out (any site): ORC_ENOTFOUND, or ORC_ECONFLICT
 * while a run works on it (its current attempt, or an instance placed there); it closes
 * and is never ranked again. Whether deployments that are done still hold resources
 * there is the caller's to check. orc_engine_site_source: 0 no such site, 1 from the
 * sites file, 2 registered at run time. */
int orc_engine_site_add(struct orc_engine *eng, struct orc_sites *one);
int orc_engine_site_remove(struct orc_engine *eng, const char *name);
int orc_engine_site_source(const struct orc_engine *eng, const char *name);
bool orc_engine_site_draining(struct orc_engine *eng, const char *name);

/* Names of the sites that opened, for /sites and ranking. */
size_t orc_engine_site_count(const struct orc_engine *eng);
const char *orc_engine_site_name(const struct orc_engine *eng, size_t i);

/* Stops: in-flight driver operations are cancelled, deployments keep their
 * in-progress status in the store (the next start re-drives them), sites
 * close. done runs once, later; then free the engine with orc_engine_free. */
int orc_engine_close(struct orc_engine *eng, orc_engine_done_fn done, void *ud);
void orc_engine_free(struct orc_engine *eng);

/* v (a new value, stolen) with the values of the plan's secret inputs (its secret_inputs)
 * masked in every string as "******"; returns the masked value (docs/security.md). */
json_t *orc_engine_mask_secrets(const json_t *plan, json_t *v);

/* The values of the plan's secret inputs worth masking (NULL-terminated; NULL: none),
 * for a run that keeps no plan; freed with orc_engine_secret_values_free. */
char **orc_engine_secret_values(const json_t *plan);
void orc_engine_secret_values_free(char **secrets);

/* text with every secret in it as "******" (a new string, free(3)), or NULL when it has
 * none (or secrets is NULL). */
char *orc_engine_mask_text(char *const *secrets, const char *text);

#endif
