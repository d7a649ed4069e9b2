/*
 * The kubernetes driver's vtable (k8s.h): site open (config, credentials,
 * one authenticated GET that says whether the API accepts them), close (every op
 * canceled, no call left in flight), and the operations' machinery: each op
 * is a chain of steps, a REST call or a wait followed by the next step.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "k8s.h"

/* ---- ops ---- */

struct kop *kop_new(struct k8s *k, orc_op_t *op, enum kop_kind kind)
{
    struct kop *o = k->host->calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->k = k;
    o->op = op;
    o->kind = kind;
    o->call.data = o;
    o->started_ms = cld_now_ms();
    o->next = k->ops;
    if (k->ops)
        k->ops->prev = o;
    k->ops = o;
    if (op)
        op->drv = o;
    return o;
}

static void kop_free(struct kop *o)
{
    struct k8s *k = o->k;

    if (o->prev)
        o->prev->next = o->next;
    else
        k->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    cld_call_release(&o->call);
    json_decref(o->doc);
    json_decref(o->keep);
    for (size_t i = 0; o->argv && o->argv[i]; i++)
        k->host->free(o->argv[i]);
    k->host->free(o->argv);
    for (size_t i = 0; i < o->nenv; i++) {
        k->host->free((char *)o->env[i].key);
        k->host->free((char *)o->env[i].value);
    }
    k->host->free(o->env);
    k->host->free(o->ready_path);
    k->host->free(o);
}

static void close_check(struct k8s *k);

void kop_done(struct kop *o, int status)
{
    struct k8s *k = o->k;
    orc_op_t *op = o->op;
    bool closing_op = o->kind == KOP_CLOSE;

    if (o->timer)
        k->host->timer_stop(k->host, o->timer);
    if (o->canceled && status == 0)
        status = ORC_ECANCELED;
    if (status == ORC_ECANCELED && op && op->error[0] == '\0')
        snprintf(op->error, sizeof(op->error), "canceled");
    kop_free(o);
    if (!closing_op)
        close_check(k); /* after the close op's answer the core frees k */
    if (op) {
        op->drv = NULL;
        orc_op_done(op, status);
    }
}

static void on_defer(void *arg)
{
    struct kop *o = arg;

    o->timer = 0;
    kop_done(o, o->status);
}

int kop_defer(struct kop *o, int status)
{
    o->status = status;
    o->timer = o->k->host->timer_start(o->k->host, 0, on_defer, o);
    if (o->timer == 0)
        return kop_started(o, ORC_ENOMEM);
    return 0;
}

int kop_started(struct kop *o, int rc)
{
    if (rc < 0) {
        if (o->op)
            o->op->drv = NULL;
        o->op = NULL;
        kop_done(o, rc);
    }
    return rc;
}

void kop_fail(struct kop *o, int code, const char *fmt, ...)
{
    va_list ap;

    if (o->op) {
        size_t n = (size_t)snprintf(o->op->error, sizeof(o->op->error), "kubernetes: ");
        va_start(ap, fmt);
        vsnprintf(o->op->error + n, sizeof(o->op->error) - n, fmt, ap);
        va_end(ap);
    }
    kop_done(o, code);
}

const char *kop_api_msg(struct kop *o, char *buf, size_t cap)
{
    return cld_api_message(&o->call, buf, cap);
}

void kop_fail_call(struct kop *o, int status, const char *what)
{
    char msg[200];

    if (status == ORC_ECANCELED || o->canceled) {
        kop_done(o, ORC_ECANCELED);
    } else if (status < 0) {
        kop_fail(o, status == ORC_ENOMEM ? ORC_ENOMEM : ORC_EHTTP, "%s: %s", what, o->call.error);
    } else if (o->call.code == 401 || o->call.code == 403) {
        kop_fail(o, ORC_EDENIED, "%s: the API refused the site's credentials (HTTP %ld: %s)", what,
                 o->call.code, kop_api_msg(o, msg, sizeof(msg)));
    } else {
        kop_fail(o, ORC_EDRIVER, "%s: HTTP %ld: %s", what, o->call.code,
                 kop_api_msg(o, msg, sizeof(msg)));
    }
}

static void on_call(struct cld_call *c, int status)
{
    struct kop *o = c->data;

    o->call_busy = false;
    if (o->canceled) {
        kop_done(o, ORC_ECANCELED);
        return;
    }
    o->next_step(o, status);
}

int kop_call(struct kop *o, const char *method, const char *path, const char *body, kop_step next)
{
    struct k8s *k = o->k;
    const char *headers[4];
    size_t n = 0;
    char *url = cld_printf(k->host, "%s%s", k->c.api_url, path);
    uint32_t attempts = o->once ? 1 : k->c.retries + 1;
    struct cld_retry retry = {.attempts = attempts, .idempotent = true,
                              .deadline_ms = k->c.timeout_ms * attempts + 30000};
    int rc;

    if (url == NULL)
        return ORC_ENOMEM;
    headers[n++] = "Accept: application/json";
    if (k->auth_header)
        headers[n++] = k->auth_header;
    if (body && strcmp(method, "PATCH") == 0)
        headers[n++] = "Content-Type: application/merge-patch+json";
    headers[n] = NULL;
    cld_call_release(&o->call);
    o->next_step = next;
    rc = cld_call_start(&o->call, k->host, &k->tls, &retry, method, url, body, headers, on_call);
    k->host->free(url);
    if (rc < 0) {
        if (o->op)
            orc_op_failf(o->op, rc, "kubernetes: %s", o->call.error);
        return rc;
    }
    o->call_busy = true;
    return 0;
}

int kop_call_json(struct kop *o, const char *method, const char *path, json_t *body, kop_step next)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc;

    json_decref(body);
    if (body && text == NULL)
        return ORC_ENOMEM;
    rc = kop_call(o, method, path, text, next);
    free(text); /* jansson's allocator */
    return rc;
}

static void on_wait(void *arg)
{
    struct kop *o = arg;

    o->timer = 0;
    if (o->canceled) {
        kop_done(o, ORC_ECANCELED);
        return;
    }
    o->next_step(o, 0);
}

int kop_wait(struct kop *o, uint32_t ms, kop_step next)
{
    o->next_step = next;
    o->timer = o->k->host->timer_start(o->k->host, ms, on_wait, o);
    return o->timer ? 0 : ORC_ENOMEM;
}

/* ---- site open and close ---- */

static void free_site(struct k8s *k);

static void open_checked(struct kop *o, int status)
{
    struct k8s *k = o->k;

    if (status == 0 && (o->call.code == 401 || o->call.code == 403)) {
        free_site(k); /* a failed open is not closed: the core frees k */
        kop_fail_call(o, status, "GET /api/v1/nodes");
        return;
    }
    if (status < 0 || o->call.code != 200)
        /* the cluster may be back later: the site opens, its ops say what fails */
        k->host->log(k->host, ORC_DRV_LOG_WARN, "kubernetes: %s is not answering yet: %s",
                     k->c.api_url, status < 0 ? o->call.error : "unexpected answer to GET /api/v1/nodes");
    else
        k->host->log(k->host, ORC_DRV_LOG_INFO, "kubernetes: %s answers, credentials accepted",
                     k->c.api_url);
    kop_done(o, 0);
}

static int k8s_site_open(void *state, const struct orc_host_api *host,
                         const struct orc_site_conf *conf, orc_op_t *op)
{
    struct k8s *k = state;
    struct kop *o;
    int rc;

    k->host = host;
    k->conf = conf;
    if (host->version < 3 || host->http == NULL)
        return orc_op_failf(op, ORC_ENOTSUP, "kubernetes: the daemon lends no HTTP client");
    rc = k8s_conf_parse(host, conf, &k->c, op->error, sizeof(op->error));
    if (rc < 0)
        return rc;
    k->tls = (struct cld_tls){.ca_file = k->c.ca_file, .cert_file = k->c.cert_file,
                              .key_file = k->c.key_file, .timeout_ms = k->c.timeout_ms};
    if (k->c.token && (k->auth_header = cld_printf(host, "Authorization: Bearer %s", k->c.token)) == NULL)
        goto oom;
    o = kop_new(k, op, KOP_OPEN);
    if (o == NULL)
        goto oom;
    o->once = true; /* a cluster that is down now must not hold the daemon's start */
    /* an authenticated read (many clusters answer /version to anyone) */
    rc = kop_call(o, "GET", "/api/v1/nodes?limit=1", NULL, open_checked);
    if (rc < 0) {
        kop_started(o, rc);
        goto fail;
    }
    return 0;
oom:
    rc = orc_op_failf(op, ORC_ENOMEM, "kubernetes: out of memory");
fail:
    host->free(k->auth_header);
    k->auth_header = NULL;
    k8s_conf_free(host, &k->c);
    return rc;
}

static void free_site(struct k8s *k)
{
    k->host->free(k->auth_header);
    k->auth_header = NULL;
    k8s_conf_free(k->host, &k->c);
}

static void close_check(struct k8s *k)
{
    struct kop *o = k->close_op;

    if (!k->closing || o == NULL || o->timer != 0 || k->ops != o || o->next != NULL)
        return;
    k->close_op = NULL;
    free_site(k);
    kop_defer(o, 0);
}

static int k8s_cancel(void *state, orc_op_t *target);

static void close_tick(void *arg)
{
    struct kop *o = arg;

    o->timer = 0;
    close_check(o->k);
}

static int k8s_site_close(void *state, orc_op_t *op)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_CLOSE);

    if (o == NULL)
        return ORC_ENOMEM;
    k->closing = true;
    k->close_op = o;
    for (struct kop *x = k->ops; x; x = x->next)
        if (x != o && x->op)
            k8s_cancel(k, x->op);
    o->timer = k->host->timer_start(k->host, 0, close_tick, o);
    return o->timer ? 0 : ORC_ENOMEM;
}

static int k8s_cancel(void *state, orc_op_t *target)
{
    struct k8s *k = state;
    struct kop *o = target ? target->drv : NULL;

    for (struct kop *x = k->ops; x && o; x = x->next)
        if (x == o) {
            if (o->kind == KOP_CLOSE || o->canceled)
                return 0;
            o->canceled = true;
            if (o->call_busy) {
                cld_call_cancel(&o->call);
            } else if (o->timer) {
                k->host->timer_stop(k->host, o->timer);
                o->timer = 0;
                kop_defer(o, ORC_ECANCELED);
            }
            return 0;
        }
    return ORC_ENOTFOUND;
}

static const struct orc_driver k8s_driver = {
    ORC_DRIVER_HEADER,
    .name = "kubernetes",
    .version = "1.0",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_MULTI_NODE,
    .state_size = sizeof(struct k8s),
    .site_open = k8s_site_open,
    .site_close = k8s_site_close,
    .inventory = k8s_inventory,
    .provision = k8s_provision,
    .deprovision = k8s_deprovision,
    .status = k8s_status,
    .adopt = k8s_status,
    .start_workload = k8s_start_workload,
    .exec = k8s_exec,
    .logs = k8s_logs,
    .cancel = k8s_cancel,
    .stop_workload = k8s_stop_workload,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);
ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &k8s_driver;
}
