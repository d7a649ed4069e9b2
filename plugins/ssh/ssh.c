/*
 * The ssh driver's vtable (ssh.h): site open (config, runtime, a scan of
 * every host's markers), close (every op canceled, every SSH request ended),
 * operations in flight and their cancel, and sop_run, the one way the driver
 * runs a remote command: a fixed script preceded by quoted assignments of
 * the values it uses, so that no value is ever parsed as shell code.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ssh.h"

int64_t sh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *sh_strdup(struct sh *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = s->host->malloc(n);

    if (p)
        memcpy(p, str, n);
    return p;
}

char *sh_printf(struct sh *s, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    p = s->host->malloc((size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- ops ------------------------------------------------------------------------------ */

struct sop *sop_new(struct sh *s, orc_op_t *op, enum sop_kind kind)
{
    struct sop *o = s->host->calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->s = s;
    o->op = op;
    o->kind = kind;
    o->next = s->ops;
    if (s->ops)
        s->ops->prev = o;
    s->ops = o;
    if (op)
        op->drv = o;
    return o;
}

static void sop_free(struct sop *o)
{
    struct sh *s = o->s;

    if (o->prev)
        o->prev->next = o->next;
    else
        s->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    s->host->ssh->release(s->host, &o->req);
    json_decref(o->poll_json);
    s->host->free(o->payload);
    s->host->free(o);
}

void sop_done(struct sop *o, int status)
{
    struct sh *s = o->s;
    orc_op_t *op = o->op;

    if (o->polling)
        sh_poll_leave(o);
    sh_install_leave(o);
    if (o->timer)
        s->host->timer_stop(s->host, o->timer);
    bool closing_op = o->kind == SOP_CLOSE;

    if (o->canceled && status == 0)
        status = ORC_ECANCELED;
    if (status == ORC_ECANCELED && op && op->error[0] == '\0')
        snprintf(op->error, sizeof(op->error), "canceled");
    sop_free(o);
    /* after the close op's callback the core frees s: touch nothing then */
    if (!closing_op)
        sh_close_check(s);
    if (op) {
        op->drv = NULL;
        orc_op_done(op, status);
    }
}

static void on_defer(void *arg)
{
    struct sop *o = arg;

    o->timer = 0;
    sop_done(o, o->status);
}

int sop_defer(struct sop *o, int status)
{
    o->status = status;
    o->timer = o->s->host->timer_start(o->s->host, 0, on_defer, o);
    return o->timer ? 0 : ORC_ENOMEM;
}

int sop_started(struct sop *o, int rc)
{
    if (rc < 0) {
        if (o->op)
            o->op->drv = NULL;
        o->op = NULL;
        sop_done(o, rc);
    }
    return rc;
}

static void on_run(orc_ssh_req_t *req, int status)
{
    struct sop *o = req->data;
    sop_cb cb = o->cb;

    o->req_busy = false;
    if (o->canceled && status == 0)
        status = ORC_ECANCELED;
    if (status < 0 && o->op && o->op->error[0] == '\0')
        snprintf(o->op->error, sizeof(o->op->error), "%s", req->error);
    cb(o, status);
}

int sop_run(struct sop *o, struct sh_host *h, const char *const *vars, const char *script,
            const char *input, sop_cb cb)
{
    struct sh *s = o->s;
    struct rmt_cmd c;
    const char *text;
    struct orc_ssh_exec x = {.max_out = 1 << 20, .timeout_ms = s->command_timeout_ms};
    int rc;

    rmt_cmd_init(&c, s->host);
    for (size_t i = 0; vars && vars[i]; i += 2)
        rmt_cmd_var(&c, vars[i], vars[i + 1]);
    rmt_cmd_raw(&c, script);
    rc = rmt_cmd_done(&c, &text);
    if (rc < 0) {
        rmt_cmd_free(&c);
        return o->op ? orc_op_failf(o->op, rc, "ssh: command too long or out of memory") : rc;
    }
    x.command = text;
    x.input = input;
    x.input_len = input ? strlen(input) : 0;
    s->host->ssh->release(s->host, &o->req);
    memset(&o->req, 0, sizeof(o->req));
    o->req.data = o;
    o->req.cb = on_run;
    o->cb = cb;
    rc = s->host->ssh->exec(s->host, &h->t, &o->req, &x);
    rmt_cmd_free(&c);
    if (rc < 0) {
        if (o->op)
            snprintf(o->op->error, sizeof(o->op->error), "%s", o->req.error);
        return rc;
    }
    o->req_busy = true;
    return 0;
}

/* ---- site open and close ----------------------------------------------------------------- */

static int sh_site_open(void *state, const struct orc_host_api *host,
                        const struct orc_site_conf *conf, orc_op_t *op)
{
    struct sh *s = state;
    struct sop *o;
    int rc;

    s->host = host;
    s->conf = conf;
    if (host->ssh == NULL)
        return orc_op_failf(op, ORC_ENOTSUP, "ssh: the daemon lends no SSH client");
    rc = sh_config(s, op);
    if (rc < 0)
        return rc;
    o = sop_new(s, op, SOP_OPEN);
    if (o == NULL) {
        sh_config_free(s);
        return ORC_ENOMEM;
    }
    s->open_op = o;
    rc = sh_scan_all(s);
    if (rc < 0) {
        s->open_op = NULL;
        sop_free(o);
        op->drv = NULL;
        sh_config_free(s);
        return orc_op_failf(op, rc, "ssh: cannot start the host scan");
    }
    return 0;
}

void sh_close_check(struct sh *s)
{
    struct sop *o = s->close_op;

    if (!s->closing || o == NULL || o->timer != 0 || s->ops != o || o->next != NULL)
        return;
    for (int i = 0; i < s->nhosts; i++)
        if (s->hosts[i].polling || s->hosts[i].scan_busy || s->hosts[i].info_busy ||
            s->hosts[i].installing)
            return;
    s->close_op = NULL;
    while (s->nodes) {
        struct sh_node *n = s->nodes;
        s->nodes = n->next;
        sh_node_free(n);
    }
    for (int i = 0; i < s->nhosts; i++)
        sh_host_close(&s->hosts[i]);
    sh_config_free(s);
    sop_defer(o, 0);
}

static int sh_cancel(void *state, orc_op_t *target);

static void close_tick(void *arg)
{
    struct sop *o = arg;

    o->timer = 0;
    sh_close_check(o->s);
}

static int sh_site_close(void *state, orc_op_t *op)
{
    struct sh *s = state;
    struct sop *o = sop_new(s, op, SOP_CLOSE);

    if (o == NULL)
        return ORC_ENOMEM;
    s->closing = true;
    s->close_op = o;
    for (struct sop *x = s->ops; x; x = x->next)
        if (x != o && x->op)
            sh_cancel(s, x->op);
    if (s->doom_timer) {
        s->host->timer_stop(s->host, s->doom_timer);
        s->doom_timer = 0;
    }
    for (int i = 0; i < s->nhosts; i++) {
        struct sh_host *h = &s->hosts[i];
        if (h->polling)
            s->host->ssh->cancel(s->host, &h->poll_req);
        if (h->scan_busy)
            s->host->ssh->cancel(s->host, &h->scan_req);
        if (h->info_busy)
            s->host->ssh->cancel(s->host, &h->info_req);
        if (h->rescan_timer) {
            s->host->timer_stop(s->host, h->rescan_timer);
            h->rescan_timer = 0;
        }
        if (h->installing)
            rmt_install_cancel(h->installing);
        if (h->poll_timer) {
            s->host->timer_stop(s->host, h->poll_timer);
            h->poll_timer = 0;
        }
    }
    /* a close with nothing in flight still answers later */
    o->timer = s->host->timer_start(s->host, 0, close_tick, o);
    return 0;
}

static int sh_cancel(void *state, orc_op_t *target)
{
    struct sh *s = state;
    struct sop *o = target ? target->drv : NULL;

    for (struct sop *x = s->ops; x && o; x = x->next)
        if (x == o) {
            if (o->kind == SOP_CLOSE || o->canceled)
                return 0;
            o->canceled = true;
            if (o->req_busy)
                s->host->ssh->cancel(s->host, &o->req);
            else if (o->polling || o->install_wait) {
                sh_poll_leave(o);
                sh_install_leave(o);
                sop_defer(o, ORC_ECANCELED);
            } else if (o->timer == 0) {
                sop_defer(o, ORC_ECANCELED);
            }
            return 0;
        }
    return ORC_ENOTFOUND;
}

static const struct orc_driver ssh_driver = {
    ORC_DRIVER_HEADER,
    .name = "ssh",
    .version = "1.0",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_MULTI_NODE,
    .state_size = sizeof(struct sh),
    .site_open = sh_site_open,
    .site_close = sh_site_close,
    .inventory = sh_inventory,
    .provision = sh_provision,
    .deprovision = sh_deprovision,
    .status = sh_status,
    .adopt = sh_status,
    .start_workload = sh_start_workload,
    .exec = sh_exec,
    .logs = sh_logs,
    .cancel = sh_cancel,
    .stop_workload = sh_stop_workload,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);
ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &ssh_driver;
}
