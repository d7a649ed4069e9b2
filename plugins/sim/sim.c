/*
 * sim: a simulated cloud for tests and benchmarks (docs/drivers.md, "The sim
 * driver"). Every slot is asynchronous through host timers, with a latency
 * per operation (fixed + uniform jitter; 0 still calls back on a later loop
 * iteration), failure injection from a seeded generator (failure rates,
 * hangs that never call back until canceled), capacity per GPU model with
 * clear capacity errors, idempotent provisioning by the core's resource
 * name, adoption by name, stop/start of resources and workloads (ABI 2),
 * and an inventory file that is the cloud's state (sim_cloud.c). Not a
 * stand-in for real drivers in their own tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct sim_pending {
    struct sim *sim;
    orc_op_t *op;
    enum sim_opk kind;
    char *name;        /* resource name */
    char *text;        /* provision: injected failure message; start/exec: the command */
    char *workload;    /* start: workload id */
    uint64_t timer;    /* host timer; 0: none (hung, or not armed) */
    int status;        /* < 0: fail with this (op->error already written) */
    int result;        /* the final status, once completed */
    bool origin;       /* provision: this op created the record */
    bool fail;         /* injected failure */
    bool canceled;
    bool existed;      /* deprovision */
    bool argv_false;   /* exec: argv[0] is "false" */
    uint16_t port;     /* start: the workload's port (endpoint), 0: none */
    uint64_t offset;   /* logs */
    uint32_t max_bytes;
    struct sim_pending *prev, *next;
};

/* ---- pending operations ------------------------------------------------------- */

static char *sim_strdup(struct sim *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = s->host->malloc(n);

    if (d != NULL)
        memcpy(d, str, n);
    return d;
}

static struct sim_pending *pending_new(struct sim *s, orc_op_t *op, enum sim_opk kind,
                                       const char *name)
{
    struct sim_pending *p = s->host->calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->name = name ? sim_strdup(s, name) : NULL;
    if (name != NULL && p->name == NULL) {
        s->host->free(p);
        return NULL;
    }
    p->sim = s;
    p->op = op;
    p->kind = kind;
    p->next = s->pending;
    if (s->pending)
        s->pending->prev = p;
    s->pending = p;
    op->drv = p;
    return p;
}

static void pending_free(struct sim_pending *p)
{
    struct sim *s = p->sim;

    if (p->timer != 0)
        s->host->timer_stop(s->host, p->timer);
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    s->host->free(p->name);
    s->host->free(p->text);
    s->host->free(p->workload);
    s->host->free(p);
}

/* Callbacks are delivered in batches, once per loop iteration, after the
 * inventory file holds every change: a callback never reports a state the
 * file does not have, and a burst of completions costs one write. */
static void deliver_all(struct sim *s)
{
    struct sim_pending *p = s->done_head;

    s->done_head = s->done_tail = NULL;
    if (s->dirty)
        sim_persist(s);
    while (p != NULL) {
        struct sim_pending *next = p->next;
        orc_op_t *op = p->op;
        int result = p->result;

        s->host->free(p->name);
        s->host->free(p->text);
        s->host->free(p->workload);
        s->host->free(p);
        orc_op_done(op, result);
        p = next;
    }
}

static void deliver_fired(void *arg)
{
    struct sim *s = arg;

    s->deliver_timer = 0;
    deliver_all(s);
}

static void complete(struct sim_pending *p, int status)
{
    struct sim *s = p->sim;

    if (status == ORC_ECANCELED && p->op->error[0] == '\0')
        snprintf(p->op->error, sizeof(p->op->error), "sim: %s canceled",
                 p->name ? p->name : "operation");
    if (p->timer != 0)
        s->host->timer_stop(s->host, p->timer);
    p->timer = 0;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->result = status;
    p->prev = p->next = NULL;
    if (s->done_tail)
        s->done_tail->next = p;
    else
        s->done_head = p;
    s->done_tail = p;
    if (s->deliver_timer == 0)
        s->deliver_timer = s->host->timer_start(s->host, 0, deliver_fired, s);
    /* out of memory for the timer: the next completion or close delivers */
}

static void on_timer(void *arg);

static int arm(struct sim_pending *p, uint64_t delay_ms)
{
    struct sim *s = p->sim;

    p->timer = s->host->timer_start(s->host, delay_ms, on_timer, p);
    return p->timer ? 0 : ORC_ENOMEM;
}

static uint64_t delay_for(struct sim *s, enum sim_opk k)
{
    uint64_t r = sim_rand(s);

    return s->lat[k].fixed_ms + (s->lat[k].jitter_ms ? r % ((uint64_t)s->lat[k].jitter_ms + 1) : 0);
}

/* Draws (always, so that the sequence depends on the seed and the calls
 * only): whether this op hangs, fails, and its latency. */
static void draw(struct sim *s, enum sim_opk k, bool *hang, bool *fail, uint64_t *delay)
{
    double h = sim_rand01(s), f = sim_rand01(s);

    *hang = h < s->hang[k];
    *fail = f < s->fail[k];
    *delay = delay_for(s, k);
}

/* The common start of a slot that touches no resource state: draws, then
 * arms the timer unless the op hangs. */
static int start_simple(struct sim *s, orc_op_t *op, enum sim_opk k, const char *name,
                        struct sim_pending **out)
{
    struct sim_pending *p;
    bool hang, fail;
    uint64_t delay;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "sim: site %s is closing", s->conf->name);
    p = pending_new(s, op, k, name);
    if (p == NULL)
        return ORC_ENOMEM;
    draw(s, k, &hang, &fail, &delay);
    p->fail = fail;
    if (!hang && arm(p, delay) < 0) {
        pending_free(p);
        return ORC_ENOMEM;
    }
    if (out)
        *out = p;
    return 0;
}

static bool name_ok(orc_op_t *op, const char *name)
{
    if (name == NULL || *name == '\0' || strlen(name) > 255) {
        orc_op_failf(op, ORC_EINVAL, "sim: a resource name is required");
        return false;
    }
    return true;
}

/* ---- site open / close ------------------------------------------------------------ */

static int check_credentials(struct sim *s, orc_op_t *op)
{
    char *secret = NULL;
    int rc;

    if (s->conf->credentials == NULL)
        return 0;
    rc = s->host->secret_get(s->host, s->conf->credentials, &secret);
    s->host->free(secret);
    if (rc == ORC_ENOTFOUND)
        return orc_op_failf(op, ORC_EDENIED, "sim: credentials secret '%s' not found",
                            s->conf->credentials);
    return rc < 0 ? orc_op_failf(op, rc, "sim: credentials: %s", orc_strerror(rc)) : 0;
}

static int sim_site_open(void *state, const struct orc_host_api *host,
                         const struct orc_site_conf *conf, orc_op_t *op)
{
    struct sim *s = state;
    int rc;

    s->host = host;
    s->conf = conf;
    rc = sim_config(s, op);
    if (rc == 0)
        rc = check_credentials(s, op);
    if (rc == 0)
        rc = sim_load(s, op);
    if (rc == 0) {
        sim_settle(s, sim_now_ms());
        rc = sim_persist(s);
        if (rc < 0)
            orc_op_failf(op, rc, "sim: cannot write the inventory %s: %s", s->path,
                         orc_strerror(rc));
    }
    if (rc == 0)
        rc = start_simple(s, op, SIM_OPEN, NULL, NULL);
    if (rc < 0) {
        if (s->flush_timer != 0)
            host->timer_stop(host, s->flush_timer);
        s->flush_timer = 0;
        sim_config_free(s);
        return rc;
    }
    host->log(host, ORC_DRV_LOG_INFO, "sim: %zu resources in %s", json_object_size(s->resources),
              s->path ? s->path : "memory");
    return 0;
}

static int sim_site_close(void *state, orc_op_t *op)
{
    struct sim *s = state;
    struct sim_pending *p;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "sim: already closing");
    /* everything in flight completes with ORC_ECANCELED first (timers of
     * equal delay fire in the order they were started) */
    for (p = s->pending; p != NULL; p = p->next) {
        if (p->timer != 0)
            s->host->timer_stop(s->host, p->timer);
        p->timer = 0;
        p->canceled = true;
        arm(p, 0); /* on failure close completes it */
    }
    s->closing = true;
    p = pending_new(s, op, SIM_CLOSE, NULL);
    if (p == NULL || arm(p, s->lat[SIM_CLOSE].fixed_ms) < 0) {
        if (p)
            pending_free(p);
        s->closing = false;
        return ORC_ENOMEM;
    }
    return 0;
}

static void fire_close(struct sim_pending *p)
{
    struct sim *s = p->sim;
    orc_op_t *op = p->op;
    struct sim_pending *q;

    /* ops whose cancel timer could not be armed in sim_site_close */
    for (;;) {
        q = s->pending == p ? p->next : s->pending;
        if (q == NULL)
            break;
        complete(q, ORC_ECANCELED);
    }
    pending_free(p);
    if (s->deliver_timer != 0)
        s->host->timer_stop(s->host, s->deliver_timer);
    s->deliver_timer = 0;
    deliver_all(s); /* writes the file if it is behind */
    if (s->flush_timer != 0)
        s->host->timer_stop(s->host, s->flush_timer);
    s->flush_timer = 0;
    sim_config_free(s);
    orc_op_done(op, 0); /* the core may free state and unload now */
}

/* ---- provision ------------------------------------------------------------------------ */

static int provision_new(struct sim *s, orc_op_t *op, const struct orc_node_req *req,
                         struct sim_pending *p, bool hang, uint64_t delay, int64_t now)
{
    char model[SIM_MODEL_LEN], msg[160];
    json_t *rec;
    int rc;

    rc = sim_fit(s, op, req, model);
    if (rc < 0) {
        p->status = rc; /* a capacity answer also takes the API's latency */
        return arm(p, delay);
    }
    if (!hang && (rc = arm(p, delay)) < 0)
        return rc;
    rec = sim_record_new(s, req, model, now, hang ? -1 : now + (int64_t)delay);
    if (rec == NULL)
        return ORC_ENOMEM;
    if (p->fail) {
        snprintf(msg, sizeof(msg), "injected provision failure for %s", req->name);
        p->text = sim_strdup(s, msg);
        if (p->text == NULL || json_object_set_new(rec, "fail", json_string(msg)) != 0) {
            sim_record_del(s, req->name);
            return ORC_ENOMEM;
        }
    }
    p->origin = true;
    s->provisioned++;
    orc_host_log_resource(s->host, req->name, ORC_DRV_LOG_DEBUG, "sim: %s created (%s%s%s)",
                          req->name, model[0] ? model : "no GPU", p->fail ? ", to fail" : "",
                          hang ? ", to hang" : "");
    return 0;
}

static int sim_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct sim *s = state;
    struct sim_pending *p;
    int64_t now = sim_now_ms();
    bool hang, fail;
    uint64_t delay;
    json_t *rec;
    int rc;

    if (req == NULL || !name_ok(op, req->name))
        return ORC_EINVAL;
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "sim: site %s is closing", s->conf->name);
    sim_settle(s, now);
    p = pending_new(s, op, SIM_PROVISION, req->name);
    if (p == NULL)
        return ORC_ENOMEM;
    draw(s, SIM_PROVISION, &hang, &fail, &delay);
    rec = json_object_get(s->resources, req->name);
    if (rec != NULL) {
        /* idempotent: the same resource, once it is ready */
        int64_t ready = json_integer_value(json_object_get(rec, "ready_ms"));
        bool creating = sim_record_state(rec) == ORC_DRV_RES_CREATING;
        if (creating && ready > now + (int64_t)delay)
            delay = (uint64_t)(ready - now);
        rc = creating && ready < 0 ? 0 : arm(p, delay);
    } else {
        p->fail = fail;
        rc = provision_new(s, op, req, p, hang, delay, now);
    }
    if (rc < 0) {
        pending_free(p);
        return rc;
    }
    return 0;
}

static void fire_provision(struct sim_pending *p)
{
    struct sim *s = p->sim;
    int64_t now = sim_now_ms();
    json_t *rec = json_object_get(s->resources, p->name);
    int rc;

    if (p->status < 0) {
        complete(p, p->status);
        return;
    }
    if (p->origin && rec != NULL && sim_record_state(rec) == ORC_DRV_RES_CREATING) {
        json_object_set_new(rec, "ready_ms", json_integer(now)); /* this op's latency is up */
        sim_due(s, p->name, now);
    }
    sim_settle(s, now);
    rec = json_object_get(s->resources, p->name);
    if (rec == NULL) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: %s",
                     p->text ? p->text : "the resource was deleted or failed while being created");
        complete(p, ORC_EDRIVER);
        return;
    }
    switch (sim_record_state(rec)) {
    case ORC_DRV_RES_CREATING: { /* someone else's creation, not done yet */
        int64_t ready = json_integer_value(json_object_get(rec, "ready_ms"));
        if (ready >= 0 && arm(p, (uint64_t)(ready > now ? ready - now : 0)) == 0)
            return;
        if (ready < 0)
            return; /* hung: until cancel */
        complete(p, ORC_ENOMEM);
        return;
    }
    case ORC_DRV_RES_READY:
    case ORC_DRV_RES_STOPPED: /* the same resource, as it is: start it to use it */
        rc = sim_record_report(s, p->op, rec);
        complete(p, rc);
        return;
    case ORC_DRV_RES_DELETING:
        sim_record_report(s, p->op, rec);
        orc_op_failf(p->op, ORC_ECONFLICT, "sim: %s is being deleted", p->name);
        complete(p, ORC_ECONFLICT);
        return;
    default:
        sim_record_report(s, p->op, rec);
        orc_op_failf(p->op, ORC_EDRIVER, "sim: %s is in state FAILED: %s", p->name,
                     json_object_get(rec, "fail") ? json_string_value(json_object_get(rec, "fail"))
                                                  : "failed");
        complete(p, ORC_EDRIVER);
        return;
    }
}

/* ---- deprovision ------------------------------------------------------------------------ */

static int sim_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct sim *s = state;
    struct sim_pending *p;
    int64_t now = sim_now_ms();
    bool hang, fail;
    uint64_t delay;
    json_t *rec;
    int rc = 0;

    if (!name_ok(op, name))
        return ORC_EINVAL;
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "sim: site %s is closing", s->conf->name);
    sim_settle(s, now);
    p = pending_new(s, op, SIM_DEPROVISION, name);
    if (p == NULL)
        return ORC_ENOMEM;
    draw(s, SIM_DEPROVISION, &hang, &fail, &delay);
    p->fail = fail;
    rec = json_object_get(s->resources, name);
    p->existed = rec != NULL;
    if (!hang)
        rc = arm(p, delay);
    if (rc == 0 && rec != NULL && !fail) {
        /* the cloud deletes it from now on, even if the daemon goes away */
        int64_t gone = json_integer_value(json_object_get(rec, "gone_ms"));
        bool deleting = sim_record_state(rec) == ORC_DRV_RES_DELETING;
        if (!deleting || gone < 0 || (!hang && gone > now + (int64_t)delay))
            gone = hang ? (deleting ? gone : -1) : now + (int64_t)delay;
        sim_record_set_state(rec, ORC_DRV_RES_DELETING);
        json_object_set_new(rec, "gone_ms", json_integer(gone));
        sim_due(s, name, gone);
        sim_dirty(s);
    }
    if (rc < 0) {
        pending_free(p);
        return rc;
    }
    return 0;
}

static void fire_deprovision(struct sim_pending *p)
{
    struct sim *s = p->sim;
    p->op->exists = p->existed;
    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected deprovision failure for %s", p->name);
        complete(p, ORC_EDRIVER);
        return;
    }
    sim_settle(s, sim_now_ms());
    if (json_object_get(s->resources, p->name) != NULL) {
        sim_record_del(s, p->name);
        s->deprovisioned++;
        orc_host_log_resource(s->host, p->name, ORC_DRV_LOG_DEBUG, "sim: %s deleted", p->name);
    }
    complete(p, 0);
}

/* ---- status, adopt, inventory -------------------------------------------------------------- */

static int sim_status(void *state, orc_op_t *op, const char *name)
{
    if (!name_ok(op, name))
        return ORC_EINVAL;
    return start_simple(state, op, SIM_STATUS, name, NULL);
}

static int sim_adopt(void *state, orc_op_t *op, const char *name)
{
    if (!name_ok(op, name))
        return ORC_EINVAL;
    return start_simple(state, op, SIM_ADOPT, name, NULL);
}

static int sim_inventory(void *state, orc_op_t *op)
{
    return start_simple(state, op, SIM_INVENTORY, NULL, NULL);
}

static void fire_status(struct sim_pending *p)
{
    struct sim *s = p->sim;
    json_t *rec;

    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected %s failure",
                     p->kind == SIM_ADOPT ? "adopt" : "status");
        complete(p, ORC_EDRIVER);
        return;
    }
    sim_settle(s, sim_now_ms());
    rec = json_object_get(s->resources, p->name);
    if (rec != NULL && p->kind == SIM_ADOPT)
        sim_record_log(s, rec, "adopted");
    complete(p, sim_record_report(s, p->op, rec));
}

static void fire_inventory(struct sim_pending *p)
{
    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected inventory failure");
        complete(p, ORC_EDRIVER);
        return;
    }
    sim_settle(p->sim, sim_now_ms());
    complete(p, sim_inventory_report(p->sim, p->op));
}

/* ---- workloads, exec, logs ------------------------------------------------------------------ */

static char *join_argv(struct sim *s, const char *const *argv)
{
    size_t n = 1;
    char *out;

    for (size_t i = 0; argv && argv[i]; i++)
        n += strlen(argv[i]) + 1;
    out = s->host->malloc(n);
    if (out == NULL)
        return NULL;
    out[0] = '\0';
    for (size_t i = 0; argv && argv[i]; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, argv[i]);
    }
    return out;
}

static int start_exec(struct sim *s, orc_op_t *op, const struct orc_exec_req *req,
                      enum sim_opk k)
{
    struct sim_pending *p = NULL;
    int rc;

    if (req == NULL || !name_ok(op, req->name))
        return ORC_EINVAL;
    if (req->argv == NULL || req->argv[0] == NULL)
        return orc_op_failf(op, ORC_EINVAL, "sim: a command is required");
    rc = start_simple(s, op, k, req->name, &p);
    if (rc < 0)
        return rc;
    p->text = join_argv(s, req->argv);
    p->workload = sim_strdup(s, req->workload ? req->workload : "main");
    p->argv_false = strcmp(req->argv[0], "false") == 0;
    p->port = req->port;
    if (p->text == NULL || p->workload == NULL) {
        pending_free(p);
        return ORC_ENOMEM;
    }
    return 0;
}

static int sim_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return start_exec(state, op, req, SIM_START);
}

static int sim_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return start_exec(state, op, req, SIM_EXEC);
}

static int sim_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct sim_pending *p = NULL;
    int rc;

    if (req == NULL || !name_ok(op, req->name))
        return ORC_EINVAL;
    rc = start_simple(state, op, SIM_LOGS, req->name, &p);
    if (rc == 0) {
        p->offset = req->offset;
        p->max_bytes = req->max_bytes ? req->max_bytes : 65536;
    }
    return rc;
}

static const char *rec_state_name(const json_t *rec)
{
    const char *st = json_string_value(json_object_get(rec, "state"));

    return st ? st : "UNKNOWN";
}

/* The resource of a workload/exec/logs op, READY (or any state for logs). */
static json_t *ready_record(struct sim_pending *p, bool any_state)
{
    struct sim *s = p->sim;
    json_t *rec;

    sim_settle(s, sim_now_ms());
    rec = json_object_get(s->resources, p->name);
    if (rec == NULL) {
        orc_op_failf(p->op, ORC_ENOTFOUND, "sim: no resource %s", p->name);
        complete(p, ORC_ENOTFOUND);
        return NULL;
    }
    if (!any_state && sim_record_state(rec) != ORC_DRV_RES_READY) {
        orc_op_failf(p->op, ORC_ECONFLICT, "sim: %s is %s, not READY", p->name,
                     rec_state_name(rec));
        complete(p, ORC_ECONFLICT);
        return NULL;
    }
    return rec;
}

/* Records workload id of rec as running: a new one (command) or one that
 * was stopped (command NULL). */
static int workload_run(struct sim *s, json_t *rec, const char *id, const char *command,
                        uint16_t port)
{
    json_t *wls = json_object_get(rec, "workloads");
    json_t *wl = json_object_get(wls, id);

    if (command != NULL || !json_is_object(wl)) {
        const char *old = json_string_value(wl); /* an older file: the command */
        wl = json_pack("{s:s, s:s}", "command",
                       command ? command
                       : old   ? old
                               : "",
                       "state", "running");
        if (wl == NULL || json_object_set_new(wls, id, wl) != 0)
            return ORC_ENOMEM;
    } else if (json_object_set_new(wl, "state", json_string("running")) != 0) {
        return ORC_ENOMEM;
    }
    json_object_del(wl, "resume");
    if (port != 0 && json_object_set_new(wl, "port", json_integer(port)) != 0)
        return ORC_ENOMEM;
    sim_dirty(s);
    if (command != NULL)
        return sim_record_log(s, rec, "workload %s started: %s", id, command);
    return sim_record_log(s, rec, "workload %s started again", id);
}

/* start_workload's endpoint: where a workload with a port answers. */
static int workload_endpoint(struct sim *s, orc_op_t *op, const json_t *rec, const char *id)
{
    const json_t *wl = json_object_get(json_object_get(rec, "workloads"), id);
    json_int_t port = json_integer_value(json_object_get(wl, "port"));
    const char *addr = json_string_value(json_object_get(rec, "public_address"));
    char url[96];

    if (port <= 0)
        return 0;
    if (addr == NULL)
        addr = json_string_value(json_object_get(rec, "private_address"));
    snprintf(url, sizeof(url), "http://%s:%lld", addr ? addr : "0.0.0.0", (long long)port);
    return s->host->op_attr_set(op, ORC_ATTR_ENDPOINT, url);
}

static void fire_exec(struct sim_pending *p)
{
    struct sim *s = p->sim;
    json_t *rec, *wl;
    char out[512];
    int rc;

    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected %s failure",
                     p->kind == SIM_START ? "start" : "exec");
        complete(p, ORC_EDRIVER);
        return;
    }
    rec = ready_record(p, false);
    if (rec == NULL)
        return;
    if (p->kind == SIM_START) {
        p->op->exit_status = -1;
        wl = json_object_get(json_object_get(rec, "workloads"), p->workload);
        if (wl == NULL || !sim_workload_running(wl)) /* idempotent per workload */
            rc = workload_run(s, rec, p->workload, p->text, p->port);
        else
            rc = 0;
        if (rc == 0)
            rc = workload_endpoint(s, p->op, rec, p->workload);
        complete(p, rc);
        return;
    }
    p->op->exit_status = p->argv_false ? 1 : 0;
    snprintf(out, sizeof(out), "sim exec on %s: %s\n", p->name, p->text);
    sim_record_log(s, rec, "exec: %s (exit %d)", p->text, p->op->exit_status);
    rc = s->host->op_output_set(p->op, out, strlen(out));
    complete(p, rc);
}

static void fire_logs(struct sim_pending *p)
{
    json_t *rec;
    const char *log;
    uint64_t total, start, len;
    int rc;

    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected logs failure");
        complete(p, ORC_EDRIVER);
        return;
    }
    rec = ready_record(p, true);
    if (rec == NULL)
        return;
    log = json_string_value(json_object_get(rec, "log"));
    log = log ? log : "";
    total = strlen(log);
    if (p->offset == ORC_LOGS_TAIL)
        start = total > p->max_bytes ? total - p->max_bytes : 0;
    else
        start = p->offset < total ? p->offset : total;
    len = total - start < p->max_bytes ? total - start : p->max_bytes;
    p->op->out_offset = start;
    p->op->out_total = total;
    rc = p->sim->host->op_output_set(p->op, log + start, (size_t)len);
    complete(p, rc);
}

/* ---- ABI 2: stop_workload, stop, start ---------------------------------------------------- */

static int sim_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    struct sim_pending *p = NULL;
    int rc;

    if (!name_ok(op, name))
        return ORC_EINVAL;
    if (workload != NULL && (*workload == '\0' || strlen(workload) > 255))
        return orc_op_failf(op, ORC_EINVAL, "sim: bad workload id");
    rc = start_simple(state, op, SIM_STOP_WL, name, &p);
    if (rc < 0)
        return rc;
    p->workload = sim_strdup(state, workload ? workload : "main");
    if (p->workload == NULL) {
        pending_free(p);
        return ORC_ENOMEM;
    }
    return 0;
}

static int sim_stop(void *state, orc_op_t *op, const char *name)
{
    if (!name_ok(op, name))
        return ORC_EINVAL;
    return start_simple(state, op, SIM_STOP, name, NULL);
}

static int sim_start(void *state, orc_op_t *op, const char *name)
{
    if (!name_ok(op, name))
        return ORC_EINVAL;
    return start_simple(state, op, SIM_START_RES, name, NULL);
}

/* Marks a running workload stopped; resume: node start runs it again. */
static int workload_stop(struct sim *s, json_t *rec, const char *id, json_t *wl, bool resume)
{
    json_t *obj = wl;

    if (!json_is_object(wl)) { /* an older file: the command */
        obj = json_pack("{s:s}", "command", json_string_value(wl) ? json_string_value(wl) : "");
        if (obj == NULL || json_object_set_new(json_object_get(rec, "workloads"), id, obj) != 0)
            return ORC_ENOMEM;
    }
    if (json_object_set_new(obj, "state", json_string("stopped")) != 0 ||
        (resume && json_object_set_new(obj, "resume", json_true()) != 0))
        return ORC_ENOMEM;
    sim_dirty(s);
    return sim_record_log(s, rec, "workload %s stopped%s", id, resume ? " (with the node)" : "");
}

static void fire_stop_workload(struct sim_pending *p)
{
    struct sim *s = p->sim;
    json_t *rec, *wl;
    int rc = 0;

    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected stop_workload failure for %s/%s", p->name,
                     p->workload);
        complete(p, ORC_EDRIVER);
        return;
    }
    rec = ready_record(p, true);
    if (rec == NULL)
        return;
    wl = json_object_get(json_object_get(rec, "workloads"), p->workload);
    p->op->exists = wl != NULL && sim_workload_running(wl);
    if (p->op->exists)
        rc = workload_stop(s, rec, p->workload, wl, false);
    complete(p, rc);
}

/* A stop or start that cannot apply to rec's state: < 0 with op->error, or
 * 0 when it can. */
static int power_check(struct sim_pending *p, const json_t *rec)
{
    const char *what = p->kind == SIM_STOP ? "stop" : "start";

    switch (sim_record_state(rec)) {
    case ORC_DRV_RES_READY:
    case ORC_DRV_RES_STOPPED:
        return 0;
    case ORC_DRV_RES_FAILED:
        return orc_op_failf(p->op, ORC_EDRIVER, "sim: cannot %s %s: it is FAILED: %s", what,
                            p->name,
                            json_string_value(json_object_get(rec, "fail"))
                                ? json_string_value(json_object_get(rec, "fail"))
                                : "failed");
    default:
        return orc_op_failf(p->op, ORC_ECONFLICT, "sim: cannot %s %s: it is %s", what, p->name,
                            rec_state_name(rec));
    }
}

/* Stops (stop) or starts rec and the workloads it ran. */
static int power_apply(struct sim *s, json_t *rec, bool stop)
{
    json_t *wls = json_object_get(rec, "workloads"), *wl;
    const char *id;
    void *tmp;
    int rc = 0;

    sim_record_set_state(rec, stop ? ORC_DRV_RES_STOPPED : ORC_DRV_RES_READY);
    sim_dirty(s);
    json_object_foreach_safe(wls, tmp, id, wl)
    {
        if (rc == 0 && stop && sim_workload_running(wl))
            rc = workload_stop(s, rec, id, wl, true);
        else if (rc == 0 && !stop && json_is_true(json_object_get(wl, "resume")))
            rc = workload_run(s, rec, id, NULL, 0);
    }
    if (rc == 0)
        rc = sim_record_log(s, rec, stop ? "stopped" : "started");
    return rc;
}

static void fire_power(struct sim_pending *p)
{
    struct sim *s = p->sim;
    bool stop = p->kind == SIM_STOP;
    json_t *rec;
    int rc;

    if (p->fail) {
        orc_op_failf(p->op, ORC_EDRIVER, "sim: injected %s failure for %s", stop ? "stop" : "start",
                     p->name);
        complete(p, ORC_EDRIVER);
        return;
    }
    sim_settle(s, sim_now_ms());
    rec = json_object_get(s->resources, p->name);
    if (rec == NULL && stop) { /* nothing runs: stopped, as far as it goes */
        complete(p, sim_record_report(s, p->op, NULL));
        return;
    }
    if (rec == NULL) {
        orc_op_failf(p->op, ORC_ENOTFOUND, "sim: no resource %s", p->name);
        complete(p, ORC_ENOTFOUND);
        return;
    }
    rc = power_check(p, rec);
    if (rc == 0 && sim_record_state(rec) != (stop ? ORC_DRV_RES_STOPPED : ORC_DRV_RES_READY))
        rc = power_apply(s, rec, stop); /* else idempotent: as it is */
    if (rc == 0 || rc == ORC_EDRIVER || rc == ORC_ECONFLICT) {
        int rep = sim_record_report(s, p->op, rec);
        rc = rc == 0 ? rep : rc;
    }
    complete(p, rc);
}

/* ---- dispatch and cancel -------------------------------------------------------------------- */

static void on_timer(void *arg)
{
    struct sim_pending *p = arg;

    p->timer = 0;
    sim_share_begin(p->sim); /* shared: the file's state first */
    if (p->canceled && p->kind != SIM_CLOSE) {
        complete(p, ORC_ECANCELED);
        return;
    }
    switch (p->kind) {
    case SIM_OPEN:
        complete(p, 0);
        break;
    case SIM_CLOSE:
        fire_close(p);
        break;
    case SIM_INVENTORY:
        fire_inventory(p);
        break;
    case SIM_PROVISION:
        fire_provision(p);
        break;
    case SIM_DEPROVISION:
        fire_deprovision(p);
        break;
    case SIM_STATUS:
    case SIM_ADOPT:
        fire_status(p);
        break;
    case SIM_START:
    case SIM_EXEC:
        fire_exec(p);
        break;
    case SIM_LOGS:
        fire_logs(p);
        break;
    case SIM_STOP_WL:
        fire_stop_workload(p);
        break;
    case SIM_STOP:
    case SIM_START_RES:
        fire_power(p);
        break;
    default:
        complete(p, ORC_EINVAL);
        break;
    }
}

static int sim_cancel(void *state, orc_op_t *target)
{
    struct sim *s = state;
    struct sim_pending *p;
    uint64_t old;

    for (p = s->done_head; p != NULL; p = p->next)
        if (p->op == target)
            return 0; /* completed, callback on its way: it keeps its status */
    for (p = s->pending; p != NULL && p->op != target; p = p->next)
        ;
    if (p == NULL || p->kind == SIM_CLOSE || p->kind == SIM_OPEN)
        return ORC_ENOTFOUND;
    if (p->canceled)
        return 0;
    old = p->timer;
    if (arm(p, 0) < 0) {
        p->timer = old;
        return ORC_ENOMEM;
    }
    if (old != 0)
        s->host->timer_stop(s->host, old);
    p->canceled = true;
    return 0;
}

/* ---- the vtable ------------------------------------------------------------------------------ */

static const struct orc_driver sim_driver = {
    ORC_DRIVER_HEADER,
    .name = "sim",
    .version = "1.0",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_PUBLIC_IP | ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_MULTI_NODE,
    .state_size = sizeof(struct sim),
    .site_open = sim_site_open,
    .site_close = sim_site_close,
    .inventory = sim_inventory,
    .provision = sim_provision,
    .deprovision = sim_deprovision,
    .status = sim_status,
    .adopt = sim_adopt,
    .start_workload = sim_start_workload,
    .exec = sim_exec,
    .logs = sim_logs,
    .cancel = sim_cancel,
    .stop_workload = sim_stop_workload,
    .stop = sim_stop,
    .start = sim_start,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &sim_driver;
}
