/*
 * The driver registry: loads provider driver plugins (plugins/include/orc/
 * driver.h), opens sites on them and calls their slots through static
 * inline wrappers that enforce the callback contract.
 *
 * Loading is paranoid: dlopen(RTLD_NOW|RTLD_LOCAL), one entry symbol, ABI
 * number, build signature, vtable size, name, state size, mandatory slots
 * and duplicate names are all checked; a driver that fails any check is
 * unloaded, logged and recorded in the registry's error list (for the API),
 * and the daemon goes on. NULL optional slots get core defaults that return
 * ORC_ENOTSUP.
 *
 * The contract checks (always on; cheap): an op whose slot returned 0 is in
 * flight until its callback; a callback made from inside the slot call is
 * held and delivered on a later loop iteration; a second callback, or one
 * after the slot returned < 0, is dropped. Each of these is a violation:
 * logged at error level and counted (orc_drv_violations); with
 * orc_drv_set_strict(reg, true) (or ORC_DRV_STRICT=1 in the environment) a
 * violation aborts, for tests and CI.
 *
 * Everything here runs on the registry's loop thread only.
 */
#ifndef ORC_ENGINE_DRIVERS_H
#define ORC_ENGINE_DRIVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "orc/driver.h"
#include "orc/errno.h"

struct orc_drv_registry;
struct orc_drv_timer;

/* One loaded driver. Read-only for callers; owned by the registry. */
struct orc_drv {
    struct orc_driver vt;         /* the plugin's vtable, copied; defaults filled in */
    const struct orc_driver *orig; /* the plugin's own vtable */
    char *path;                   /* the shared object it came from */
    void *dl;                     /* dlopen handle; NULL for built-in drivers */
    struct orc_drv_registry *reg;
};

/* One failed load, for the log and the API. Owned by the registry. */
struct orc_drv_load_error {
    char *path;
    int code;      /* ORC_EABI, ORC_EDRIVER, ORC_ECONFLICT, ORC_ENOMEM, ... */
    char *message; /* "path: reason" */
};

enum orc_drv_site_state {
    ORC_DRV_SITE_NEW = 0, /* created, not opened */
    ORC_DRV_SITE_OPENING,
    ORC_DRV_SITE_OPEN,
    ORC_DRV_SITE_FAILED, /* open failed: nothing to close */
    ORC_DRV_SITE_CLOSING,
    ORC_DRV_SITE_CLOSED,
};

/* A site opened on a driver: the driver's state plus the host table lent to
 * it. Fields are read-only for callers; the wrappers below use them. */
struct orc_drv_site {
    const struct orc_drv *drv;
    void *state;                /* drv->vt.state_size bytes, zeroed */
    struct orc_host_api host;   /* this site's host table */
    struct orc_site_conf conf;  /* copies, owned by the site */
    enum orc_drv_site_state st;
    unsigned inflight;          /* ops returned 0 and not called back yet */
    orc_op_t *ops;              /* ops in flight (list through op->core_) */
    struct orc_drv_timer *timers; /* host timers not fired yet */
    uint64_t next_timer_id;
    struct orc_drv_registry *reg;
    struct orc_ssh_stats ssh_stats; /* this site's SSH requests (host->ssh->stats) */
    struct orc_drv_site *prev, *next;
};

/* ---- operation statistics (metrics) ---------------------------------------- */

/* How an operation ended: 0, ORC_ECANCELED (a deadline, a close), anything else. */
enum orc_op_outcome { ORC_OP_OK, ORC_OP_ERROR, ORC_OP_CANCELED, ORC_OP__OUTCOMES };
extern const char *const orc_op_outcome_names[ORC_OP__OUTCOMES];

#define ORC_OP_BUCKETS 12
/* Upper bounds of the latency buckets, in seconds (0.01 s to 30 min), and as text. */
extern const double orc_op_bucket_bounds[ORC_OP_BUCKETS];
extern const char *const orc_op_bucket_labels[ORC_OP_BUCKETS];

/* The operations of one driver slot ("provision") that ended, since the start. */
struct orc_op_stats {
    const char *driver; /* the driver's name (lives as long as the registry) */
    const char *slot;
    uint64_t count[ORC_OP__OUTCOMES];
    uint64_t buckets[ORC_OP_BUCKETS]; /* per bucket (not cumulative); above the last: none */
    uint64_t observations;
    double sum_seconds;
    struct orc_op_stats *next;
};

/* The list of every driver and slot that ended an operation (NULL: none yet). */
const struct orc_op_stats *orc_drv_op_stats(const struct orc_drv_registry *reg);
/* The sites of the registry (a list through ->next; NULL: none). */
const struct orc_drv_site *orc_drv_sites(const struct orc_drv_registry *reg);

/* ---- registry ------------------------------------------------------------ */

typedef int (*orc_drv_secret_fn)(void *ctx, const char *name, char **value);

/* Creates a registry on loop. Returns 0 and *out, or ORC_ENOMEM. */
int orc_drv_registry_new(uv_loop_t *loop, struct orc_drv_registry **out);

/* Starts closing: every site must have been freed (orc_drv_site_free) first,
 * else ORC_ECONFLICT and nothing happens. May be called from a driver
 * callback (e.g. the last site's close callback). The registry's handles
 * close, callbacks still held are delivered, and the drivers are unloaded
 * (dlclose) from the last close callback: run the loop until then. reg is
 * invalid after this call returns 0. */
int orc_drv_registry_close(struct orc_drv_registry *reg);

/* Loads every regular file named *.so in dir, in name order. Failures are
 * recorded (orc_drv_error_at) and do not stop the others. Returns how many
 * drivers were loaded (>= 0), or < 0 when dir cannot be read. */
int orc_drv_load_dir(struct orc_drv_registry *reg, const char *dir);

/* Loads each of n paths as orc_drv_load_file; returns how many loaded. */
int orc_drv_load_paths(struct orc_drv_registry *reg, const char *const *paths, size_t n);

/* Loads one plugin. Returns 0, or < 0 with the failure recorded and logged:
 * ORC_EDRIVER (dlopen, missing symbol, bad vtable, NULL mandatory slot),
 * ORC_EABI (ABI number or build signature), ORC_ECONFLICT (name taken),
 * ORC_ENOMEM. */
int orc_drv_load_file(struct orc_drv_registry *reg, const char *path);

/* As orc_drv_load_file with another entry symbol name (test fixtures). */
int orc_drv_load_file_entry(struct orc_drv_registry *reg, const char *path,
                            const char *entry_symbol);

/* Registers a vtable compiled into the daemon (same checks, no dlopen). */
int orc_drv_register_builtin(struct orc_drv_registry *reg, const struct orc_driver *vt);

size_t orc_drv_count(const struct orc_drv_registry *reg);
const struct orc_drv *orc_drv_at(const struct orc_drv_registry *reg, size_t i);
const struct orc_drv *orc_drv_find(const struct orc_drv_registry *reg, const char *name);

size_t orc_drv_error_count(const struct orc_drv_registry *reg);
const struct orc_drv_load_error *orc_drv_error_at(const struct orc_drv_registry *reg, size_t i);

/* Where host->secret_get looks first (the secrets file); a name fn does not know
 * (ORC_ENOTFOUND) is then read from the environment variable ORC_SECRET_<NAME> (upper
 * case, other characters as '_'), which is all there is without fn. */
void orc_drv_set_secret_lookup(struct orc_drv_registry *reg, orc_drv_secret_fn fn, void *ctx);

/* Where host->agent_state reads (the engine's agent reports). Default: none
 * (ORC_ENOTSUP). */
typedef int (*orc_drv_agent_fn)(void *ctx, const char *deployment, const char *resource,
                                char **json);
void orc_drv_set_agent_source(struct orc_drv_registry *reg, orc_drv_agent_fn fn, void *ctx);

/* The node instance ("vm[0]") of a deployment that a provider-side name is, for
 * host->log_resource (whose deployment the name itself says: orc_drv_resource_deployment):
 * 0 and node written, or ORC_ENOTFOUND. Default: none (lines name the deployment only). */
typedef int (*orc_drv_resource_fn)(void *ctx, const char *deployment, const char *resource,
                                   char *node, size_t node_len);
void orc_drv_set_resource_source(struct orc_drv_registry *reg, orc_drv_resource_fn fn, void *ctx);

/* Contract violations seen so far (all sites). */
uint64_t orc_drv_violations(const struct orc_drv_registry *reg);
void orc_drv_set_strict(struct orc_drv_registry *reg, bool abort_on_violation);

uv_loop_t *orc_drv_loop(const struct orc_drv_registry *reg);

/* ---- resource names -------------------------------------------------------- */

#define ORC_DRV_NAME_LEN 64 /* 63 characters and the NUL */

/* The provider-side name of a node instance, deterministic in (deployment,
 * node, index): "orc-<uuid as 32 hex>-<node, sanitized and cut>-<10 hex of
 * the node name's hash>-<index>", lower case [a-z0-9-], at most 63
 * characters. Returns 0, or ORC_EINVAL when deployment is not a UUID or node
 * is empty. */
int orc_drv_resource_name(const char *deployment, const char *node, uint32_t index,
                          char out[ORC_DRV_NAME_LEN]);
/* The deployment a provider-side name of orc_drv_resource_name belongs to: true and its
 * uuid in out, or false when name is not such a name. */
bool orc_drv_resource_deployment(const char *name, char out[37]);

/* ---- sites -------------------------------------------------------------------- */

/* Creates a site on the driver named driver: allocates its state and host
 * table and copies conf. Returns 0 and *out, ORC_ENOTFOUND (no such driver)
 * or ORC_ENOMEM. Open it with orc_drv_site_open. */
int orc_drv_site_new(struct orc_drv_registry *reg, const char *driver,
                     const struct orc_site_conf *conf, struct orc_drv_site **out);

/* Frees a site that is NEW, FAILED or CLOSED (else ORC_ECONFLICT). NULL-safe. */
int orc_drv_site_free(struct orc_drv_site *site);

/* ---- operations ------------------------------------------------------------- */

/* Zeroes an op before its first use. */
void orc_drv_op_init(orc_op_t *op);
/* Frees an op's result storage (attributes, pools, output); the op can be
 * reused. Not while it is in flight. */
void orc_drv_op_reset(orc_op_t *op);
/* An attribute of op's results, or NULL. */
const char *orc_drv_op_attr(const orc_op_t *op, const char *key);
/* True while a slot returned 0 for op and its callback has not run. */
bool orc_drv_op_inflight(const orc_op_t *op);

/* internal: used by the wrappers below */
int orc__drv_op_begin(struct orc_drv_site *site, orc_op_t *op, orc_op_cb cb, const char *slot,
                      enum orc_drv_site_state need);
int orc__drv_op_end(struct orc_drv_site *site, orc_op_t *op, int rc);

/* Every wrapper: op was initialised (orc_drv_op_init) and is not in flight;
 * cb runs exactly once, never inside the call, when the wrapper returns 0;
 * never when it returns < 0 (op->error may say why). ORC_ECONFLICT: the site
 * is not in the state the slot needs (open, except for site_open) or op is
 * already in flight. Results are in op (see orc/driver.h, per slot). */

static inline int orc_drv_site_open(struct orc_drv_site *s, orc_op_t *op, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "site_open", ORC_DRV_SITE_NEW);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.site_open(s->state, &s->host, &s->conf, op);
    return orc__drv_op_end(s, op, rc);
}

/* Closes an open site. Operations still in flight complete first with
 * ORC_ECANCELED. After cb, free the site with orc_drv_site_free. */
static inline int orc_drv_site_close(struct orc_drv_site *s, orc_op_t *op, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "site_close", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.site_close(s->state, op);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_inventory(struct orc_drv_site *s, orc_op_t *op, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "inventory", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.inventory(s->state, op);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_provision(struct orc_drv_site *s, orc_op_t *op,
                                    const struct orc_node_req *req, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "provision", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.provision(s->state, op, req);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_deprovision(struct orc_drv_site *s, orc_op_t *op, const char *name,
                                      orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "deprovision", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.deprovision(s->state, op, name);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_status(struct orc_drv_site *s, orc_op_t *op, const char *name,
                                 orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "status", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.status(s->state, op, name);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_adopt(struct orc_drv_site *s, orc_op_t *op, const char *name,
                                orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "adopt", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.adopt(s->state, op, name);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_start_workload(struct orc_drv_site *s, orc_op_t *op,
                                         const struct orc_exec_req *req, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "start_workload", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.start_workload(s->state, op, req);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_exec(struct orc_drv_site *s, orc_op_t *op,
                               const struct orc_exec_req *req, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "exec", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.exec(s->state, op, req);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_logs(struct orc_drv_site *s, orc_op_t *op,
                               const struct orc_logs_req *req, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "logs", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.logs(s->state, op, req);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_stop_workload(struct orc_drv_site *s, orc_op_t *op, const char *name,
                                        const char *workload, orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "stop_workload", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.stop_workload(s->state, op, name, workload);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_stop(struct orc_drv_site *s, orc_op_t *op, const char *name,
                               orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "stop", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.stop(s->state, op, name);
    return orc__drv_op_end(s, op, rc);
}

static inline int orc_drv_start(struct orc_drv_site *s, orc_op_t *op, const char *name,
                                orc_op_cb cb)
{
    int rc = orc__drv_op_begin(s, op, cb, "start", ORC_DRV_SITE_OPEN);

    if (rc < 0)
        return rc;
    rc = s->drv->vt.start(s->state, op, name);
    return orc__drv_op_end(s, op, rc);
}

/* Cancels an op in flight on this site: 0 (its cb runs later with
 * ORC_ECANCELED, or with its own status if it was already completing),
 * ORC_ENOTFOUND (not in flight here), ORC_ENOTSUP (the driver cannot). */
int orc_drv_cancel(struct orc_drv_site *s, orc_op_t *target);

#endif
