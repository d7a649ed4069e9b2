/*
 * The driver registry (drivers.h): paranoid loading of provider plugins,
 * core defaults for optional slots, sites with their host services tables,
 * host timers, op result storage, and the callback-contract checks behind
 * the static inline wrappers. Loop thread only.
 */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>

/* Under AddressSanitizer a driver stays mapped after dlclose, so that a leak report at
 * exit can name its functions. */
#if defined(__SANITIZE_ADDRESS__)
#define DLOPEN_KEEP RTLD_NODELETE
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DLOPEN_KEEP RTLD_NODELETE
#endif
#endif
#ifndef DLOPEN_KEEP
#define DLOPEN_KEEP 0
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../base.h"
#include "drivers.h"
#include "http_client.h"
#include "ssh_client.h"

#define LOG_SUB "drivers"
#define STATE_SIZE_MAX ((size_t)1 << 20)
#define NAME_MAX_LEN 32

/* op->core_.flags */
#define OPF_INFLIGHT 0x01u /* begun (and not failed); not delivered yet */
#define OPF_IN_CALL 0x02u  /* inside the slot (or cancel) call */
#define OPF_CALLED 0x04u   /* the driver called back */
#define OPF_HELD 0x08u     /* called back inside the call: status held for later */
#define OPF_FAILED 0x10u   /* the slot returned < 0 */
#define OPF_ORPHAN 0x20u   /* the core completed it: later driver callbacks are dropped */
#define OPF_QUEUED 0x40u   /* on the deferred delivery queue */

struct orc_drv_timer {
    uv_timer_t handle;
    uint64_t id;
    orc_host_timer_cb cb;
    void *arg;
    struct orc_drv_site *site;
    struct orc_drv_timer *prev, *next;
};

struct orc_drv_registry {
    uv_loop_t *loop;
    struct orc_drv **drvs;
    size_t ndrvs, drvs_cap;
    struct orc_drv_load_error *errs;
    size_t nerrs, errs_cap;
    struct orc_drv_site *sites;
    orc_drv_secret_fn secret_fn;
    void *secret_ctx;
    orc_drv_agent_fn agent_fn;
    void *agent_ctx;
    orc_drv_resource_fn resource_fn;
    void *resource_ctx;
    uint64_t violations;
    bool strict;
    uv_timer_t defer; /* delivers held callbacks on a later iteration */
    orc_op_t *defer_head, *defer_tail;
    struct orc_sshc *ssh; /* the SSH client lent to every site (host->ssh) */
    struct orc_http *http; /* the HTTP client lent to every site (host->http) */
    struct orc_op_stats *stats; /* by driver and slot, for the metrics */
};

/* ---- operation statistics ------------------------------------------------ */

const char *const orc_op_outcome_names[ORC_OP__OUTCOMES] = {"ok", "error", "canceled"};
const double orc_op_bucket_bounds[ORC_OP_BUCKETS] = {0.01, 0.05, 0.1, 0.5, 1,   5,
                                                     10,   30,   60,  300, 900, 1800};
const char *const orc_op_bucket_labels[ORC_OP_BUCKETS] = {"0.01", "0.05", "0.1", "0.5",
                                                          "1",    "5",    "10",  "30",
                                                          "60",   "300",  "900", "1800"};

static struct orc_op_stats *stats_of(struct orc_drv_registry *reg, const char *driver,
                                     const char *slot)
{
    struct orc_op_stats *st;

    for (st = reg->stats; st != NULL; st = st->next)
        if (st->slot == slot && strcmp(st->slot, slot) == 0 && strcmp(st->driver, driver) == 0)
            return st;
    st = orc_calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL; /* out of memory: this operation is not counted */
    st->driver = driver;
    st->slot = slot;
    st->next = reg->stats;
    reg->stats = st;
    return st;
}

/* Counts an operation of site that ended with status. */
static void op_count(struct orc_drv_site *s, const orc_op_t *op, int status)
{
    struct orc_op_stats *st = s && s->reg ? stats_of(s->reg, s->drv->vt.name, op->core_.slot)
                                          : NULL;
    double seconds = (double)(uv_hrtime() - op->core_.started_ns) / 1e9;

    if (st == NULL)
        return;
    st->count[status == 0 ? ORC_OP_OK : status == ORC_ECANCELED ? ORC_OP_CANCELED : ORC_OP_ERROR]++;
    st->observations++;
    st->sum_seconds += seconds;
    for (size_t i = 0; i < ORC_OP_BUCKETS; i++)
        if (seconds <= orc_op_bucket_bounds[i]) {
            st->buckets[i]++;
            break;
        }
}

const struct orc_op_stats *orc_drv_op_stats(const struct orc_drv_registry *reg)
{
    return reg->stats;
}

const struct orc_drv_site *orc_drv_sites(const struct orc_drv_registry *reg)
{
    return reg->sites;
}

/* ---- violations --------------------------------------------------------- */

static void violation(struct orc_drv_registry *reg, const struct orc_drv_site *site,
                      const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void violation(struct orc_drv_registry *reg, const struct orc_drv_site *site,
                      const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (reg)
        reg->violations++;
    orc_log(ORC_LOG_ERROR, LOG_SUB, "driver contract violation: driver %s site %s: %s",
            site ? site->drv->vt.name : "?", site ? site->conf.name : "?", msg);
    if (reg && reg->strict)
        abort();
}

/* ---- registry ------------------------------------------------------------- */

int orc_drv_registry_new(uv_loop_t *loop, struct orc_drv_registry **out)
{
    struct orc_drv_registry *reg;
    const char *strict = getenv("ORC_DRV_STRICT");
    int rc;

    *out = NULL;
    reg = orc_calloc(1, sizeof(*reg));
    if (reg == NULL)
        return ORC_ENOMEM;
    reg->loop = loop;
    reg->strict = strict != NULL && strcmp(strict, "1") == 0;
    rc = orc_sshc_new(loop, &reg->ssh);
    if (rc < 0) {
        orc_free(reg);
        return rc;
    }
    rc = orc_http_new(loop, &reg->http);
    if (rc < 0) {
        orc_sshc_close(reg->ssh, NULL, NULL);
        orc_free(reg);
        return rc;
    }
    rc = uv_timer_init(loop, &reg->defer);
    if (rc < 0) {
        orc_sshc_close(reg->ssh, NULL, NULL);
        orc_http_close(reg->http, NULL, NULL);
        orc_free(reg);
        return rc;
    }
    reg->defer.data = reg;
    *out = reg;
    return 0;
}

static void drv_free(struct orc_drv *d)
{
    if (d == NULL)
        return;
    if (d->dl != NULL)
        dlclose(d->dl);
    orc_free(d->path);
    orc_free(d);
}

static void defer_run(uv_timer_t *h);

static void registry_closed(uv_handle_t *h)
{
    struct orc_drv_registry *reg = h->data;

    /* held callbacks of ops the core completed at site close: deliver them
     * (the sites are gone, so none of them touches a site) */
    while (reg->defer_head != NULL)
        defer_run(&reg->defer);
    for (size_t i = 0; i < reg->ndrvs; i++)
        drv_free(reg->drvs[i]);
    for (size_t i = 0; i < reg->nerrs; i++) {
        orc_free(reg->errs[i].path);
        orc_free(reg->errs[i].message);
    }
    orc_free(reg->drvs);
    orc_free(reg->errs);
    while (reg->stats != NULL) {
        struct orc_op_stats *next = reg->stats->next;
        orc_free(reg->stats);
        reg->stats = next;
    }
    orc_free(reg);
}

int orc_drv_registry_close(struct orc_drv_registry *reg)
{
    if (reg == NULL)
        return 0;
    if (reg->sites != NULL) {
        orc_log(ORC_LOG_ERROR, LOG_SUB, "registry close refused: site '%s' still exists",
                reg->sites->conf.name);
        return ORC_ECONFLICT;
    }
    orc_sshc_close(reg->ssh, NULL, NULL);
    reg->ssh = NULL;
    orc_http_close(reg->http, NULL, NULL);
    reg->http = NULL;
    uv_close((uv_handle_t *)&reg->defer, registry_closed);
    return 0;
}

uv_loop_t *orc_drv_loop(const struct orc_drv_registry *reg)
{
    return reg->loop;
}

void orc_drv_set_secret_lookup(struct orc_drv_registry *reg, orc_drv_secret_fn fn, void *ctx)
{
    reg->secret_fn = fn;
    reg->secret_ctx = ctx;
}

void orc_drv_set_agent_source(struct orc_drv_registry *reg, orc_drv_agent_fn fn, void *ctx)
{
    reg->agent_fn = fn;
    reg->agent_ctx = ctx;
}

void orc_drv_set_resource_source(struct orc_drv_registry *reg, orc_drv_resource_fn fn, void *ctx)
{
    reg->resource_fn = fn;
    reg->resource_ctx = ctx;
}

uint64_t orc_drv_violations(const struct orc_drv_registry *reg)
{
    return reg->violations;
}

void orc_drv_set_strict(struct orc_drv_registry *reg, bool abort_on_violation)
{
    reg->strict = abort_on_violation;
}

size_t orc_drv_count(const struct orc_drv_registry *reg)
{
    return reg->ndrvs;
}

const struct orc_drv *orc_drv_at(const struct orc_drv_registry *reg, size_t i)
{
    return i < reg->ndrvs ? reg->drvs[i] : NULL;
}

const struct orc_drv *orc_drv_find(const struct orc_drv_registry *reg, const char *name)
{
    for (size_t i = 0; name != NULL && i < reg->ndrvs; i++)
        if (strcmp(reg->drvs[i]->vt.name, name) == 0)
            return reg->drvs[i];
    return NULL;
}

size_t orc_drv_error_count(const struct orc_drv_registry *reg)
{
    return reg->nerrs;
}

const struct orc_drv_load_error *orc_drv_error_at(const struct orc_drv_registry *reg, size_t i)
{
    return i < reg->nerrs ? &reg->errs[i] : NULL;
}

/* Records and logs a load failure; returns code. */
static int load_fail(struct orc_drv_registry *reg, const char *path, int code, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
static int load_fail(struct orc_drv_registry *reg, const char *path, int code, const char *fmt,
                     ...)
{
    char why[512];
    struct orc_drv_load_error *e;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    orc_log(ORC_LOG_ERROR, LOG_SUB, "%s: driver not loaded: %s", path, why);
    if (reg->nerrs == reg->errs_cap) {
        size_t cap = reg->errs_cap ? reg->errs_cap * 2 : 4;
        e = orc_realloc(reg->errs, cap * sizeof(*e));
        if (e == NULL)
            return code;
        reg->errs = e;
        reg->errs_cap = cap;
    }
    e = &reg->errs[reg->nerrs];
    e->path = orc_strdup(path);
    e->message = orc_asprintf("%s: %s", path, why);
    e->code = code;
    if (e->path == NULL || e->message == NULL) {
        orc_free(e->path);
        orc_free(e->message);
        return code;
    }
    reg->nerrs++;
    return code;
}

/* ---- core defaults for optional slots ---------------------------------------- */

static int def_inventory(void *state, orc_op_t *op)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver has no inventory");
}

static int def_adopt(void *state, orc_op_t *op, const char *name)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot adopt resources");
}

static int def_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot start workloads");
}

static int def_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot run commands");
}

static int def_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver has no logs");
}

static int def_cancel(void *state, orc_op_t *target)
{
    return ORC_ENOTSUP;
}

static int def_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot stop workloads");
}

static int def_stop(void *state, orc_op_t *op, const char *name)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot stop resources");
}

static int def_start(void *state, orc_op_t *op, const char *name)
{
    return orc_op_failf(op, ORC_ENOTSUP, "this driver cannot start stopped resources");
}

/* ---- checks --------------------------------------------------------------------- */

static bool driver_name_ok(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return false;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return n >= 1 && n <= NAME_MAX_LEN;
}

/* The bytes of a vtable of this daemon's ABI: everything up to and including
 * its last slot (ABI 2: start). A plugin that says ABI 2 with a smaller size
 * was built against a mismatched header: its vtable would end before the ABI
 * 2 slots and the core would read past it. */
#define VT_ABI_LAST start
#define VT_ABI_SIZE (offsetof(struct orc_driver, VT_ABI_LAST) + sizeof(void (*)(void)))

static int check_vtable(struct orc_drv_registry *reg, const char *path,
                        const struct orc_driver *vt)
{
    static const struct {
        const char *slot;
        size_t off;
    } mandatory[] = {
        {"site_open", offsetof(struct orc_driver, site_open)},
        {"site_close", offsetof(struct orc_driver, site_close)},
        {"provision", offsetof(struct orc_driver, provision)},
        {"deprovision", offsetof(struct orc_driver, deprovision)},
        {"status", offsetof(struct orc_driver, status)},
    };
    const struct orc_drv *other;

    if (vt == NULL)
        return load_fail(reg, path, ORC_EDRIVER, "%s returned no vtable",
                         ORC_DRIVER_ENTRY_SYMBOL);
    if (vt->abi != ORC_DRIVER_ABI)
        return load_fail(reg, path, ORC_EABI,
                         "built for driver ABI %u, this daemon speaks ABI %u (rebuild the driver "
                         "against this daemon's orc/driver.h)",
                         vt->abi, ORC_DRIVER_ABI);
    if (vt->signature == NULL || strcmp(vt->signature, ORC_DRIVER_SIGNATURE) != 0)
        return load_fail(reg, path, ORC_EABI, "build signature '%s' does not match '%s'",
                         vt->signature ? vt->signature : "(none)", ORC_DRIVER_SIGNATURE);
    if (vt->size < VT_ABI_SIZE)
        return load_fail(reg, path, ORC_EDRIVER, "vtable of %u bytes, ABI %u needs %zu", vt->size,
                         ORC_DRIVER_ABI, VT_ABI_SIZE);
    if (!driver_name_ok(vt->name))
        return load_fail(reg, path, ORC_EDRIVER,
                         "driver name missing or invalid (want [a-z0-9_-], 1-%d chars)",
                         NAME_MAX_LEN);
    if (vt->state_size > STATE_SIZE_MAX)
        return load_fail(reg, path, ORC_EDRIVER, "driver '%s': state_size %zu exceeds %zu",
                         vt->name, vt->state_size, STATE_SIZE_MAX);
    for (size_t i = 0; i < sizeof(mandatory) / sizeof(mandatory[0]); i++) {
        void *slot;
        memcpy(&slot, (const char *)vt + mandatory[i].off, sizeof(slot));
        if (slot == NULL)
            return load_fail(reg, path, ORC_EDRIVER, "driver '%s': mandatory slot %s is NULL",
                             vt->name, mandatory[i].slot);
    }
    if ((vt->caps & ORC_DRV_CAP_ADOPT) && vt->adopt == NULL)
        return load_fail(reg, path, ORC_EDRIVER,
                         "driver '%s': caps say ADOPT but the adopt slot is NULL", vt->name);
    other = orc_drv_find(reg, vt->name);
    if (other != NULL)
        return load_fail(reg, path, ORC_ECONFLICT, "driver '%s' is already loaded from %s",
                         vt->name, other->path);
    return 0;
}

/* Core defaults for the optional slots a driver left NULL. */
static void fill_defaults(struct orc_driver *vt)
{
    if (vt->inventory == NULL)
        vt->inventory = def_inventory;
    if (vt->adopt == NULL)
        vt->adopt = def_adopt;
    if (vt->start_workload == NULL)
        vt->start_workload = def_start_workload;
    if (vt->exec == NULL)
        vt->exec = def_exec;
    if (vt->logs == NULL)
        vt->logs = def_logs;
    if (vt->cancel == NULL)
        vt->cancel = def_cancel;
    if (vt->stop_workload == NULL)
        vt->stop_workload = def_stop_workload;
    if (vt->stop == NULL)
        vt->stop = def_stop;
    if (vt->start == NULL)
        vt->start = def_start;
}

static int registry_add(struct orc_drv_registry *reg, const struct orc_driver *vt,
                        const char *path, void *dl)
{
    struct orc_drv *d;
    size_t n = vt->size < sizeof(d->vt) ? vt->size : sizeof(d->vt);

    if (reg->ndrvs == reg->drvs_cap) {
        size_t cap = reg->drvs_cap ? reg->drvs_cap * 2 : 8;
        struct orc_drv **v = orc_realloc(reg->drvs, cap * sizeof(*v));
        if (v == NULL)
            return load_fail(reg, path, ORC_ENOMEM, "out of memory");
        reg->drvs = v;
        reg->drvs_cap = cap;
    }
    d = orc_calloc(1, sizeof(*d));
    if (d == NULL)
        return load_fail(reg, path, ORC_ENOMEM, "out of memory");
    d->path = orc_strdup(path);
    if (d->path == NULL) {
        orc_free(d);
        return load_fail(reg, path, ORC_ENOMEM, "out of memory");
    }
    memcpy(&d->vt, vt, n); /* slots the plugin does not know stay NULL */
    fill_defaults(&d->vt);
    d->orig = vt;
    d->dl = dl;
    d->reg = reg;
    reg->drvs[reg->ndrvs++] = d;
    orc_log(ORC_LOG_INFO, LOG_SUB, "driver %s %s loaded from %s", d->vt.name,
            d->vt.version ? d->vt.version : "", path);
    return 0;
}

int orc_drv_load_file_entry(struct orc_drv_registry *reg, const char *path,
                            const char *entry_symbol)
{
    orc_driver_entry_fn entry;
    const struct orc_driver *vt;
    void *dl, *sym;
    int rc;

    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | DLOPEN_KEEP);
    if (dl == NULL) {
        const char *why = dlerror();
        return load_fail(reg, path, ORC_EDRIVER, "cannot load: %s", why ? why : "?");
    }
    dlerror();
    sym = dlsym(dl, entry_symbol);
    if (sym == NULL) {
        rc = load_fail(reg, path, ORC_EDRIVER, "no %s symbol (is it a driver?)", entry_symbol);
        goto out_close;
    }
    entry = (orc_driver_entry_fn)sym;
    vt = entry();
    rc = check_vtable(reg, path, vt);
    if (rc < 0)
        goto out_close;
    rc = registry_add(reg, vt, path, dl);
    if (rc < 0)
        goto out_close;
    return 0; /* the registry owns dl now */

out_close:
    dlclose(dl);
    return rc;
}

int orc_drv_load_file(struct orc_drv_registry *reg, const char *path)
{
    return orc_drv_load_file_entry(reg, path, ORC_DRIVER_ENTRY_SYMBOL);
}

int orc_drv_register_builtin(struct orc_drv_registry *reg, const struct orc_driver *vt)
{
    const char *path = "(built-in)";
    int rc = check_vtable(reg, path, vt);

    return rc < 0 ? rc : registry_add(reg, vt, path, NULL);
}

int orc_drv_load_paths(struct orc_drv_registry *reg, const char *const *paths, size_t n)
{
    int loaded = 0;

    for (size_t i = 0; i < n; i++)
        if (orc_drv_load_file(reg, paths[i]) == 0)
            loaded++;
    return loaded;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int orc_drv_load_dir(struct orc_drv_registry *reg, const char *dir)
{
    char **paths = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    DIR *d = opendir(dir);

    if (d == NULL) {
        rc = load_fail(reg, dir, ORC_EIO, "cannot read the plugin directory");
        return rc;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        struct stat st;
        char *p;

        if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 || de->d_name[0] == '.')
            continue;
        p = orc_asprintf("%s/%s", dir, de->d_name);
        if (p == NULL) {
            rc = ORC_ENOMEM;
            break;
        }
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
            orc_free(p);
            continue;
        }
        if (n == cap) {
            char **v;
            cap = cap ? cap * 2 : 16;
            v = orc_realloc(paths, cap * sizeof(*v));
            if (v == NULL) {
                orc_free(p);
                rc = ORC_ENOMEM;
                break;
            }
            paths = v;
        }
        paths[n++] = p;
    }
    closedir(d);
    if (rc == 0) {
        if (n > 1) /* an empty directory has no array to sort (qsort(NULL) is undefined) */
            qsort(paths, n, sizeof(*paths), cmp_str);
        rc = orc_drv_load_paths(reg, (const char *const *)paths, n);
    }
    for (size_t i = 0; i < n; i++)
        orc_free(paths[i]);
    orc_free(paths);
    return rc;
}

/* ---- op results (also the host table's op_* functions) ------------------------ */

void orc_drv_op_init(orc_op_t *op)
{
    memset(op, 0, sizeof(*op));
}

void orc_drv_op_reset(orc_op_t *op)
{
    for (uint32_t i = 0; i < op->nattrs; i++) {
        orc_free((char *)op->attrs[i].key);
        orc_free((char *)op->attrs[i].value);
    }
    for (uint32_t i = 0; i < op->npools; i++) {
        orc_free((char *)op->pools[i].name);
        orc_free((char *)op->pools[i].gpu_model);
    }
    orc_free(op->attrs);
    orc_free(op->pools);
    orc_free(op->output);
    op->attrs = NULL;
    op->pools = NULL;
    op->output = NULL;
    op->nattrs = op->attrs_cap = op->npools = op->pools_cap = 0;
    op->output_len = 0;
    op->exists = false;
    op->res_state = ORC_DRV_RES_UNKNOWN;
    op->exit_status = 0;
    op->out_offset = op->out_total = 0;
    op->error[0] = '\0';
    op->drv = NULL;
}

const char *orc_drv_op_attr(const orc_op_t *op, const char *key)
{
    for (uint32_t i = 0; i < op->nattrs; i++)
        if (strcmp(op->attrs[i].key, key) == 0)
            return op->attrs[i].value;
    return NULL;
}

bool orc_drv_op_inflight(const orc_op_t *op)
{
    return (op->core_.flags & OPF_INFLIGHT) != 0;
}

static int host_op_attr_set(orc_op_t *op, const char *key, const char *value)
{
    char *v;

    if (op == NULL || key == NULL || value == NULL)
        return ORC_EINVAL;
    v = orc_strdup(value);
    if (v == NULL)
        return ORC_ENOMEM;
    for (uint32_t i = 0; i < op->nattrs; i++) {
        if (strcmp(op->attrs[i].key, key) == 0) {
            orc_free((char *)op->attrs[i].value);
            op->attrs[i].value = v;
            return 0;
        }
    }
    if (op->nattrs == op->attrs_cap) {
        uint32_t cap = op->attrs_cap ? op->attrs_cap * 2 : 8;
        struct orc_kv *a = orc_realloc(op->attrs, cap * sizeof(*a));
        if (a == NULL) {
            orc_free(v);
            return ORC_ENOMEM;
        }
        op->attrs = a;
        op->attrs_cap = cap;
    }
    op->attrs[op->nattrs].key = orc_strdup(key);
    if (op->attrs[op->nattrs].key == NULL) {
        orc_free(v);
        return ORC_ENOMEM;
    }
    op->attrs[op->nattrs++].value = v;
    return 0;
}

static int host_op_pool_add(orc_op_t *op, const struct orc_pool *pool)
{
    struct orc_pool *p;

    if (op == NULL || pool == NULL || pool->name == NULL)
        return ORC_EINVAL;
    if (op->npools == op->pools_cap) {
        uint32_t cap = op->pools_cap ? op->pools_cap * 2 : 4;
        p = orc_realloc(op->pools, cap * sizeof(*p));
        if (p == NULL)
            return ORC_ENOMEM;
        op->pools = p;
        op->pools_cap = cap;
    }
    p = &op->pools[op->npools];
    *p = *pool;
    p->name = orc_strdup(pool->name);
    p->gpu_model = pool->gpu_model ? orc_strdup(pool->gpu_model) : NULL;
    if (p->name == NULL || (pool->gpu_model != NULL && p->gpu_model == NULL)) {
        orc_free((char *)p->name);
        orc_free((char *)p->gpu_model);
        return ORC_ENOMEM;
    }
    op->npools++;
    return 0;
}

static int host_op_output_set(orc_op_t *op, const char *data, size_t len)
{
    char *o;

    if (op == NULL || (data == NULL && len > 0))
        return ORC_EINVAL;
    o = orc_malloc(len + 1);
    if (o == NULL)
        return ORC_ENOMEM;
    if (len > 0)
        memcpy(o, data, len);
    o[len] = '\0';
    orc_free(op->output);
    op->output = o;
    op->output_len = len;
    return 0;
}

/* ---- host services --------------------------------------------------------------- */

#define SITE_OF_HOST(h)                                                                     \
    ((struct orc_drv_site *)((char *)(h) - offsetof(struct orc_drv_site, host)))

static void host_vlog(const struct orc_host_api *host, const char *resource, int level,
                      const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void host_vlog(const struct orc_host_api *host, const char *resource, int level,
                      const char *fmt, va_list ap)
{
    const struct orc_drv_site *site = SITE_OF_HOST(host);
    const struct orc_drv_registry *reg = site->reg;
    orc_log_ctx_t ctx = {.site = site->conf.name};
    char msg[1024], sub[48], deployment[ORC_UUID_LEN], node[128];

    if (level < ORC_DRV_LOG_DEBUG)
        level = ORC_DRV_LOG_DEBUG;
    if (level > ORC_DRV_LOG_ERROR)
        level = ORC_DRV_LOG_ERROR;
    if (!orc_log_enabled((orc_log_level_t)level))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(sub, sizeof(sub), "driver %s", site->drv->vt.name);
    if (orc_drv_resource_deployment(resource, deployment)) {
        ctx.deployment = deployment;
        if (reg->resource_fn != NULL &&
            reg->resource_fn(reg->resource_ctx, deployment, resource, node, sizeof(node)) == 0)
            ctx.node = node;
    }
    orc_log_ctx((orc_log_level_t)level, sub, &ctx, "%s", msg);
}

static void host_log(const struct orc_host_api *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(const struct orc_host_api *host, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    host_vlog(host, NULL, level, fmt, ap);
    va_end(ap);
}

static void host_log_resource(const struct orc_host_api *host, const char *resource, int level,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void host_log_resource(const struct orc_host_api *host, const char *resource, int level,
                              const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    host_vlog(host, resource, level, fmt, ap);
    va_end(ap);
}

static void timer_closed(uv_handle_t *h)
{
    orc_free(h->data);
}

static void timer_unlink(struct orc_drv_timer *t)
{
    struct orc_drv_site *site = t->site;

    if (t->prev)
        t->prev->next = t->next;
    else
        site->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
}

static void timer_fired(uv_timer_t *h)
{
    struct orc_drv_timer *t = h->data;
    orc_host_timer_cb cb = t->cb;
    void *arg = t->arg;

    timer_unlink(t);
    uv_close((uv_handle_t *)h, timer_closed);
    cb(arg);
}

static uint64_t host_timer_start(const struct orc_host_api *host, uint64_t delay_ms,
                                 orc_host_timer_cb cb, void *arg)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);
    struct orc_drv_timer *t;

    if (cb == NULL)
        return 0;
    t = orc_calloc(1, sizeof(*t));
    if (t == NULL)
        return 0;
    if (uv_timer_init(site->reg->loop, &t->handle) < 0) {
        orc_free(t);
        return 0;
    }
    t->handle.data = t;
    t->id = ++site->next_timer_id;
    t->cb = cb;
    t->arg = arg;
    t->site = site;
    t->next = site->timers;
    if (site->timers)
        site->timers->prev = t;
    site->timers = t;
    uv_timer_start(&t->handle, timer_fired, delay_ms, 0);
    return t->id;
}

static void timer_cancel(struct orc_drv_timer *t)
{
    timer_unlink(t);
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static int host_timer_stop(const struct orc_host_api *host, uint64_t id)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);

    for (struct orc_drv_timer *t = site->timers; t != NULL; t = t->next) {
        if (t->id == id) {
            timer_cancel(t);
            return 0;
        }
    }
    return ORC_ENOTFOUND;
}

static int env_secret(const char *name, char **value)
{
    char var[160] = "ORC_SECRET_";
    size_t n = strlen(var);
    const char *v;

    for (const char *p = name; *p != '\0'; p++) {
        if (n + 1 >= sizeof(var))
            return ORC_ENOTFOUND;
        var[n++] = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    }
    var[n] = '\0';
    v = getenv(var);
    if (v == NULL)
        return ORC_ENOTFOUND;
    *value = orc_strdup(v);
    return *value ? 0 : ORC_ENOMEM;
}

static int host_secret_get(const struct orc_host_api *host, const char *name, char **value)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);
    struct orc_drv_registry *reg = site->reg;

    if (value == NULL)
        return ORC_EINVAL;
    *value = NULL;
    if (name == NULL || *name == '\0')
        return ORC_EINVAL;
    if (reg->secret_fn != NULL) {
        int rc = reg->secret_fn(reg->secret_ctx, name, value);
        if (rc != ORC_ENOTFOUND)
            return rc;
    }
    return env_secret(name, value);
}

/* ---- the SSH client (host->ssh) ----------------------------------------------------- */

static int host_ssh_exec(const struct orc_host_api *host, const struct orc_ssh_target *t,
                         orc_ssh_req_t *req, const struct orc_ssh_exec *x)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);

    return orc_sshc_exec(site->reg->ssh, site, &site->ssh_stats, t, req, x);
}

static int host_ssh_put(const struct orc_host_api *host, const struct orc_ssh_target *t,
                        orc_ssh_req_t *req, const struct orc_ssh_put *p)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);

    return orc_sshc_put(site->reg->ssh, site, &site->ssh_stats, t, req, p);
}

static int host_ssh_cancel(const struct orc_host_api *host, orc_ssh_req_t *req)
{
    return orc_sshc_cancel(SITE_OF_HOST(host)->reg->ssh, req);
}

static void host_ssh_release(const struct orc_host_api *host, orc_ssh_req_t *req)
{
    (void)host;
    orc_sshc_release(req);
}

static void host_ssh_stats(const struct orc_host_api *host, struct orc_ssh_stats *out)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);

    *out = site->ssh_stats;
    out->open = orc_sshc_open_sessions(site->reg->ssh);
}

static const struct orc_ssh_api host_ssh = {
    .size = sizeof(struct orc_ssh_api),
    .exec = host_ssh_exec,
    .put = host_ssh_put,
    .cancel = host_ssh_cancel,
    .release = host_ssh_release,
    .stats = host_ssh_stats,
};

/* ---- the agents' reports (host->agent_state) ------------------------------------------ */

static int host_agent_state(const struct orc_host_api *host, const char *deployment,
                            const char *resource, char **json)
{
    const struct orc_drv_registry *reg = SITE_OF_HOST(host)->reg;

    *json = NULL;
    if (deployment == NULL || resource == NULL)
        return ORC_EINVAL;
    if (reg->agent_fn == NULL)
        return ORC_ENOTSUP;
    return reg->agent_fn(reg->agent_ctx, deployment, resource, json);
}

/* ---- the HTTP client (host->http) ---------------------------------------------------- */

static int host_http_request(const struct orc_host_api *host, orc_http_req_t *req,
                             const struct orc_http_request *r)
{
    struct orc_drv_site *site = SITE_OF_HOST(host);

    return orc_http_request(site->reg->http, site, req, r);
}

static int host_http_cancel(const struct orc_host_api *host, orc_http_req_t *req)
{
    return orc_http_cancel(SITE_OF_HOST(host)->reg->http, req);
}

static void host_http_release(const struct orc_host_api *host, orc_http_req_t *req)
{
    (void)host;
    orc_http_release(req);
}

static const struct orc_http_api host_http = {
    .size = sizeof(struct orc_http_api),
    .request = host_http_request,
    .cancel = host_http_cancel,
    .header = orc_http_header,
    .release = host_http_release,
};

/* ---- sites ------------------------------------------------------------------------ */

static void site_conf_free(struct orc_site_conf *c)
{
    orc_free((char *)c->name);
    orc_free((char *)c->config_json);
    orc_free((char *)c->credentials);
}

int orc_drv_site_new(struct orc_drv_registry *reg, const char *driver,
                     const struct orc_site_conf *conf, struct orc_drv_site **out)
{
    const struct orc_drv *d = orc_drv_find(reg, driver);
    struct orc_drv_site *s;

    *out = NULL;
    if (d == NULL)
        return ORC_ENOTFOUND;
    if (conf == NULL || conf->name == NULL)
        return ORC_EINVAL;
    s = orc_calloc(1, sizeof(*s));
    if (s == NULL)
        return ORC_ENOMEM;
    s->state = orc_calloc(1, d->vt.state_size ? d->vt.state_size : 1);
    s->conf.name = orc_strdup(conf->name);
    s->conf.config_json = orc_strdup(conf->config_json ? conf->config_json : "{}");
    s->conf.credentials = conf->credentials ? orc_strdup(conf->credentials) : NULL;
    if (s->state == NULL || s->conf.name == NULL || s->conf.config_json == NULL ||
        (conf->credentials != NULL && s->conf.credentials == NULL)) {
        site_conf_free(&s->conf);
        orc_free(s->state);
        orc_free(s);
        return ORC_ENOMEM;
    }
    s->drv = d;
    s->reg = reg;
    s->host = (struct orc_host_api){
        .version = ORC_HOST_API_VERSION,
        .size = (uint32_t)sizeof(struct orc_host_api),
        .loop = reg->loop,
        .site = s->conf.name,
        .log = host_log,
        .malloc = orc_malloc,
        .calloc = orc_calloc,
        .realloc = orc_realloc,
        .free = orc_free,
        .timer_start = host_timer_start,
        .timer_stop = host_timer_stop,
        .secret_get = host_secret_get,
        .op_attr_set = host_op_attr_set,
        .op_pool_add = host_op_pool_add,
        .op_output_set = host_op_output_set,
        .http = &host_http,
        .ssh = &host_ssh,
        .agent_state = host_agent_state,
        .log_resource = host_log_resource,
    };
    s->next = reg->sites;
    if (reg->sites)
        reg->sites->prev = s;
    reg->sites = s;
    *out = s;
    return 0;
}

/* Stops host timers a driver left behind (a leak in the driver). */
static void site_reap_timers(struct orc_drv_site *s)
{
    unsigned n = 0;

    while (s->timers != NULL) {
        timer_cancel(s->timers);
        n++;
    }
    if (n > 0)
        violation(s->reg, s, "%u host timer(s) still pending after %s; stopped", n,
                  s->st == ORC_DRV_SITE_FAILED ? "a failed site_open" : "site_close");
}

int orc_drv_site_free(struct orc_drv_site *s)
{
    if (s == NULL)
        return 0;
    if (s->st != ORC_DRV_SITE_NEW && s->st != ORC_DRV_SITE_FAILED &&
        s->st != ORC_DRV_SITE_CLOSED) {
        orc_log(ORC_LOG_ERROR, LOG_SUB, "site %s: free refused: it is open or busy",
                s->conf.name);
        return ORC_ECONFLICT;
    }
    while (s->timers != NULL)
        timer_cancel(s->timers);
    if (orc_sshc_abandon(s->reg->ssh, s) > 0)
        violation(s->reg, s, "SSH request(s) still in flight when the site was freed; dropped");
    if (orc_http_abandon(s->reg->http, s) > 0)
        violation(s->reg, s, "HTTP request(s) still in flight when the site was freed; dropped");
    if (s->prev)
        s->prev->next = s->next;
    else
        s->reg->sites = s->next;
    if (s->next)
        s->next->prev = s->prev;
    site_conf_free(&s->conf);
    orc_free(s->state);
    orc_free(s);
    return 0;
}

/* ---- the callback contract ---------------------------------------------------------- */

static void op_link(struct orc_drv_site *s, orc_op_t *op)
{
    op->core_.prev = NULL;
    op->core_.next = s->ops;
    if (s->ops)
        s->ops->core_.prev = op;
    s->ops = op;
    s->inflight++;
}

static void op_unlink(struct orc_drv_site *s, orc_op_t *op)
{
    if (op->core_.prev)
        op->core_.prev->core_.next = op->core_.next;
    else
        s->ops = op->core_.next;
    if (op->core_.next)
        op->core_.next->core_.prev = op->core_.prev;
    op->core_.prev = op->core_.next = NULL;
    s->inflight--;
}

static void defer_push(struct orc_drv_registry *reg, orc_op_t *op)
{
    op->core_.flags |= OPF_QUEUED;
    op->core_.dnext = NULL;
    if (reg->defer_tail)
        reg->defer_tail->core_.dnext = op;
    else
        reg->defer_head = op;
    reg->defer_tail = op;
    if (!uv_is_active((uv_handle_t *)&reg->defer))
        uv_timer_start(&reg->defer, defer_run, 0, 0);
}

/* Site bookkeeping when an op completes, before the caller's callback. */
static void site_op_done(struct orc_drv_site *s, orc_op_t *op, int status)
{
    const char *slot = op->core_.slot;

    op_unlink(s, op);
    if (strcmp(slot, "site_open") == 0) {
        s->st = status == 0 ? ORC_DRV_SITE_OPEN : ORC_DRV_SITE_FAILED;
        if (status < 0)
            site_reap_timers(s);
    } else if (strcmp(slot, "site_close") == 0) {
        /* the driver says it is done: whatever it left in flight, the core
         * completes with ORC_ECANCELED (after this callback) */
        if (s->ops != NULL)
            violation(s->reg, s, "site_close called back with %u op(s) still in flight",
                      s->inflight);
        while (s->ops != NULL) {
            orc_op_t *o = s->ops;
            op_unlink(s, o);
            o->core_.site = NULL;
            o->core_.status = ORC_ECANCELED;
            o->core_.flags |= OPF_ORPHAN;
            snprintf(o->error, sizeof(o->error), "site closed");
            defer_push(s->reg, o);
        }
        s->st = ORC_DRV_SITE_CLOSED;
        site_reap_timers(s);
    }
}

static void deliver(orc_op_t *op, int status)
{
    struct orc_drv_site *s = op->core_.site;

    if (s != NULL) {
        op_count(s, op, status);
        site_op_done(s, op, status);
    }
    op->core_.flags &= ~(OPF_INFLIGHT | OPF_QUEUED);
    op->core_.user_cb(op, status);
}

static void defer_run(uv_timer_t *h)
{
    struct orc_drv_registry *reg = h->data;
    orc_op_t *op = reg->defer_head;

    reg->defer_head = reg->defer_tail = NULL;
    while (op != NULL) {
        orc_op_t *next = op->core_.dnext;
        op->core_.dnext = NULL;
        deliver(op, op->core_.status);
        op = next;
    }
}

/* What the driver calls as op->cb. */
static void trampoline(orc_op_t *op, int status)
{
    struct orc_drv_site *s = op->core_.site;
    uint32_t f = op->core_.flags;

    if (f & OPF_ORPHAN) {
        orc_log(ORC_LOG_WARN, LOG_SUB, "late callback of a %s already completed by the core",
                op->core_.slot);
        return;
    }
    if (f & OPF_FAILED) {
        violation(s ? s->reg : NULL, s, "%s called back after returning < 0 (dropped)",
                  op->core_.slot);
        return;
    }
    if ((f & OPF_CALLED) || !(f & OPF_INFLIGHT)) {
        violation(s ? s->reg : NULL, s, "%s called back twice (dropped)", op->core_.slot);
        return;
    }
    op->core_.flags |= OPF_CALLED;
    if (f & OPF_IN_CALL) {
        violation(s->reg, s, "%s called back from inside the call (delivered later)",
                  op->core_.slot);
        op->core_.flags |= OPF_HELD;
        op->core_.status = status;
        return;
    }
    deliver(op, status);
}

int orc__drv_op_begin(struct orc_drv_site *s, orc_op_t *op, orc_op_cb cb, const char *slot,
                      enum orc_drv_site_state need)
{
    static const char *const names[] = {"new", "opening", "open", "failed", "closing", "closed"};

    if (s == NULL || op == NULL || cb == NULL)
        return ORC_EINVAL;
    if (op->core_.flags & OPF_INFLIGHT)
        return orc_op_failf(op, ORC_ECONFLICT, "operation already in flight (%s)",
                            op->core_.slot);
    orc_drv_op_reset(op);
    if (s->st != need)
        return orc_op_failf(op, ORC_ECONFLICT, "site '%s' is %s: %s needs it %s", s->conf.name,
                            names[s->st], slot, names[need]);
    op->cb = trampoline;
    op->core_.user_cb = cb;
    op->core_.site = s;
    op->core_.slot = slot;
    op->core_.status = 0;
    op->core_.dnext = NULL;
    op->core_.flags = OPF_INFLIGHT | OPF_IN_CALL;
    op->core_.started_ns = uv_hrtime();
    op_link(s, op);
    if (need == ORC_DRV_SITE_NEW)
        s->st = ORC_DRV_SITE_OPENING;
    else if (strcmp(slot, "site_close") == 0)
        s->st = ORC_DRV_SITE_CLOSING;
    return 0;
}

int orc__drv_op_end(struct orc_drv_site *s, orc_op_t *op, int rc)
{
    op->core_.flags &= ~OPF_IN_CALL;
    if (rc > 0) {
        violation(s->reg, s, "%s returned %d (> 0): read as 0", op->core_.slot, rc);
        rc = 0;
    }
    if (rc < 0) {
        if (op->core_.flags & OPF_HELD)
            violation(s->reg, s, "%s called back, then returned %d: callback dropped",
                      op->core_.slot, rc);
        op_unlink(s, op);
        op_count(s, op, rc);
        op->core_.flags = OPF_FAILED;
        if (s->st == ORC_DRV_SITE_OPENING) {
            s->st = ORC_DRV_SITE_FAILED;
            site_reap_timers(s);
        } else if (s->st == ORC_DRV_SITE_CLOSING) {
            violation(s->reg, s, "site_close returned %d: the site stays open", rc);
            s->st = ORC_DRV_SITE_OPEN;
        }
        if (op->error[0] == '\0')
            snprintf(op->error, sizeof(op->error), "%s: %s", op->core_.slot, orc_strerror(rc));
        return rc;
    }
    if (op->core_.flags & OPF_HELD)
        defer_push(s->reg, op);
    return 0;
}

int orc_drv_cancel(struct orc_drv_site *s, orc_op_t *target)
{
    int rc;

    if (s == NULL || target == NULL)
        return ORC_EINVAL;
    if (!(target->core_.flags & OPF_INFLIGHT) || target->core_.site != s)
        return ORC_ENOTFOUND;
    if (target->core_.flags & (OPF_CALLED | OPF_QUEUED))
        return 0; /* already completing: it finishes with its own status */
    target->core_.flags |= OPF_IN_CALL;
    rc = s->drv->vt.cancel(s->state, target);
    target->core_.flags &= ~OPF_IN_CALL;
    if (target->core_.flags & OPF_HELD) {
        /* the driver completed it from inside cancel: deliver it later */
        defer_push(s->reg, target);
        return 0;
    }
    return rc > 0 ? 0 : rc;
}

/* ---- resource names ---------------------------------------------------------------- */

bool orc_drv_resource_deployment(const char *name, char out[ORC_UUID_LEN])
{
    size_t o = 0;

    if (name == NULL || strncmp(name, "orc-", 4) != 0)
        return false;
    for (size_t i = 0; i < 32; i++) {
        char c = name[4 + i];
        if (!isxdigit((unsigned char)c))
            return false;
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        out[o++] = c;
    }
    out[o] = '\0';
    return name[36] == '-';
}

int orc_drv_resource_name(const char *deployment, const char *node, uint32_t index,
                          char out[ORC_DRV_NAME_LEN])
{
    char hex[33], idx[11], part[ORC_DRV_NAME_LEN], full[128];
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a 64 */
    size_t n = 0, budget;
    int w;

    out[0] = '\0';
    if (deployment == NULL || node == NULL || *node == '\0' || !orc_uuid_valid(deployment))
        return ORC_EINVAL;
    for (const char *p = deployment; *p != '\0'; p++)
        if (*p != '-')
            hex[n++] = (char)tolower((unsigned char)*p);
    hex[n] = '\0';
    for (const unsigned char *p = (const unsigned char *)node; *p != '\0'; p++) {
        h ^= *p;
        h *= UINT64_C(0x100000001b3);
    }
    w = snprintf(idx, sizeof(idx), "%u", index);
    /* 63 = "orc-" 4 + 32 hex + "-" + node + "-" + 10 hex + "-" + idx */
    budget = 63 - (4 + 32 + 1 + 1 + 10 + 1) - (size_t)w;
    n = 0;
    for (const unsigned char *p = (const unsigned char *)node; *p != '\0' && n < budget; p++) {
        char c = (char)tolower(*p);
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            c = '-';
        if (c == '-' && (n == 0 || part[n - 1] == '-'))
            continue;
        part[n++] = c;
    }
    while (n > 0 && part[n - 1] == '-')
        n--;
    if (n == 0)
        part[n++] = 'x';
    part[n] = '\0';
    /* at most 63 characters by the budget above; the larger buffer keeps
     * compilers from warning about a truncation that cannot happen */
    snprintf(full, sizeof(full), "orc-%s-%s-%010llx-%s", hex, part,
             (unsigned long long)(h & UINT64_C(0xffffffffff)), idx);
    n = strlen(full);
    if (n >= ORC_DRV_NAME_LEN)
        return ORC_EINVAL;
    memcpy(out, full, n + 1);
    return 0;
}
