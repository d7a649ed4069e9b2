/*
 * The openstack driver's vtable (ost.h): site open (config, credentials, a first
 * read of the cloud: token, catalog, flavors, networks), close (every op canceled,
 * no call left in flight), and the operations' machinery: each op is a chain of
 * steps, an API call or a wait followed by the next step. Transient failures of a
 * step are retried with backoff and jitter within the op's deadline.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ost.h"

/* ---- small things ---- */

void ost_copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

bool ost_has(const char *text, const char *word)
{
    size_t n = strlen(word);

    for (; text && *text; text++)
        if (strncasecmp(text, word, n) == 0)
            return true;
    return false;
}

bool ost_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > OST_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

char *ost_json_text(const struct orc_host_api *host, const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    char *p;

    if (n == 0)
        return NULL;
    p = host->malloc(n + 1);
    if (p == NULL)
        return NULL;
    json_dumpb(v, p, n, JSON_COMPACT);
    p[n] = '\0';
    return p;
}

/* ---- ops ---- */

struct oop *oop_new(struct ost *s, orc_op_t *op, enum oop_kind kind)
{
    struct oop *o = s->host->calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->s = s;
    o->op = op;
    o->kind = kind;
    o->call.data = o;
    o->started_ms = cld_now_ms();
    o->wait_ms = s->c.poll_ms;
    o->next = s->ops;
    if (s->ops)
        s->ops->prev = o;
    s->ops = o;
    if (op)
        op->drv = o;
    return o;
}

static void oop_free(struct oop *o)
{
    struct ost *s = o->s;

    if (o->prev)
        o->prev->next = o->next;
    else
        s->ops = o->next;
    if (o->next)
        o->next->prev = o->prev;
    cld_call_release(&o->call);
    json_decref(o->server);
    json_decref(o->list);
    json_decref(o->boot);
    s->host->free(o->path);
    s->host->free(o->body);
    s->host->free(o);
}

static void close_check(struct ost *s);

void oop_done(struct oop *o, int status)
{
    struct ost *s = o->s;
    orc_op_t *op = o->op;
    bool closing_op = o->kind == OOP_CLOSE;

    if (o->timer)
        s->host->timer_stop(s->host, o->timer);
    o->timer = 0;
    ost_auth_leave(o);
    ost_sync_leave(o);
    if (o->canceled && status == 0)
        status = ORC_ECANCELED;
    if (o->kind == OOP_SYNC)
        ost_sync_ended(o, status);
    if (op && status < 0) {
        if (o->err[0])
            snprintf(op->error, sizeof(op->error), "%s", o->err);
        else if (op->error[0] == '\0')
            snprintf(op->error, sizeof(op->error), "openstack: %s",
                     status == ORC_ECANCELED ? "canceled" : orc_strerror(status));
    }
    oop_free(o);
    if (!closing_op)
        close_check(s); /* after the close op's answer the core frees s */
    if (op) {
        op->drv = NULL;
        orc_op_done(op, status);
    }
}

static void on_defer(void *arg)
{
    struct oop *o = arg;

    o->timer = 0;
    oop_done(o, o->status);
}

int oop_defer(struct oop *o, int status)
{
    o->status = status;
    o->timer = o->s->host->timer_start(o->s->host, 0, on_defer, o);
    if (o->timer == 0)
        return oop_started(o, ORC_ENOMEM);
    return 0;
}

int oop_started(struct oop *o, int rc)
{
    if (rc < 0) {
        if (o->op) {
            if (o->err[0] && o->op->error[0] == '\0')
                snprintf(o->op->error, sizeof(o->op->error), "%s", o->err);
            o->op->drv = NULL;
        }
        o->op = NULL;
        oop_done(o, rc);
    }
    return rc;
}

static void verrf(struct oop *o, const char *fmt, va_list ap)
{
    size_t n = (size_t)snprintf(o->err, sizeof(o->err), "openstack: ");

    vsnprintf(o->err + n, sizeof(o->err) - n, fmt, ap);
}

int oop_errf(struct oop *o, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verrf(o, fmt, ap);
    va_end(ap);
    return code;
}

void oop_fail(struct oop *o, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    verrf(o, fmt, ap);
    va_end(ap);
    if (o->then) {
        oop_then(o, code);
        return;
    }
    oop_done(o, code);
}

/* A sequence's end: its continuation, else the op's answer. */
void oop_then(struct oop *o, int status)
{
    oop_step then = o->then;

    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    o->then = NULL;
    if (then)
        then(o, status);
    else
        oop_done(o, status);
}

const char *oop_api_msg(struct oop *o, char *buf, size_t cap)
{
    return cld_api_message(&o->call, buf, cap);
}

bool oop_transient(const struct oop *o, int status)
{
    if (status == ORC_EHTTP)
        return true;
    return status == 0 && cld_transient(o->call.code);
}

bool oop_answer(struct oop *o, int status, const char *what, oop_step again, const long *ok)
{
    if (oop_transient(o, status)) {
        oop_retry_later(o, status, what, again);
        return false;
    }
    for (; status == 0 && *ok; ok++)
        if (o->call.code == *ok)
            return true;
    oop_fail_call(o, status, what);
    return false;
}

int oop_call_error(struct oop *o, int status, const char *what)
{
    char msg[200];

    if (status == ORC_ECANCELED || o->canceled)
        return oop_errf(o, ORC_ECANCELED, "%s: canceled", what);
    if (status < 0) /* the message names the method and the URL, or Keystone's refusal */
        return oop_errf(o, status, "%s: %s", what, o->call.error);
    if (o->call.code == 401 || o->call.code == 403)
        return oop_errf(o, ORC_EDENIED, "%s: the cloud refused the site's credentials (HTTP %ld: %s)",
                        what, o->call.code, oop_api_msg(o, msg, sizeof(msg)));
    return oop_errf(o, ORC_EDRIVER, "%s: HTTP %ld: %s", what, o->call.code,
                    oop_api_msg(o, msg, sizeof(msg)));
}

void oop_fail_call(struct oop *o, int status, const char *what)
{
    int code = oop_call_error(o, status, what);

    if (code == ORC_ECANCELED) {
        oop_done(o, code);
        return;
    }
    if (o->then) {
        oop_then(o, code);
        return;
    }
    oop_done(o, code);
}

static void on_call(struct cld_call *c, int status)
{
    struct oop *o = c->data;
    struct ost *s = o->s;
    int rc;

    o->call_busy = false;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    if (status == 0 && o->call.code == 401 && !o->auth_retried) {
        /* the token expired early or was revoked: a new one, once */
        o->auth_retried = true;
        ost_auth_invalidate(s, o->token_gen_used);
        rc = oop_send(o);
        if (rc < 0)
            o->next_step(o, rc);
        return;
    }
    o->next_step(o, status);
}

int oop_send(struct oop *o)
{
    struct ost *s = o->s;
    const char *headers[6];
    size_t n = 0;
    char *url;
    uint32_t attempts = (o->flags & OST_CREATE)  ? 1
                        : (o->flags & OST_QUICK) ? 2
                                                 : s->c.retries + 1;
    struct cld_retry retry = {.attempts = attempts,
                              .idempotent = true,
                              .deadline_ms = s->c.timeout_ms * attempts + 30000};
    int rc = ost_auth_need(o);

    if (rc <= 0) /* waiting for a token (0), or it cannot come */
        return rc;
    url = cld_printf(s->host, "%s%s", s->url[o->svc], o->path);
    if (url == NULL) {
        snprintf(o->call.error, sizeof(o->call.error), "out of memory");
        return ORC_ENOMEM;
    }
    headers[n++] = "Accept: application/json";
    headers[n++] = s->auth_header;
    if (o->flags & OST_MICROVERSION) {
        headers[n++] = "OpenStack-API-Version: compute 2.61";
        headers[n++] = "X-OpenStack-Nova-API-Version: 2.61";
    }
    headers[n] = NULL;
    o->token_gen_used = s->token_gen;
    cld_call_release(&o->call);
    o->call.data = o;
    rc = cld_call_start(&o->call, s->host, &s->tls, &retry, o->method, url, o->body, headers,
                        on_call);
    s->host->free(url);
    if (rc < 0)
        return rc; /* o->call.error says why */
    o->call_busy = true;
    return 0;
}

int oop_call(struct oop *o, int svc, const char *method, const char *path, const char *body,
             unsigned flags, oop_step next)
{
    struct ost *s = o->s;

    s->host->free(o->path);
    s->host->free(o->body);
    o->body = NULL;
    o->path = cld_strdup(s->host, path);
    if (o->path == NULL || (body && (o->body = cld_strdup(s->host, body)) == NULL)) {
        snprintf(o->call.error, sizeof(o->call.error), "out of memory");
        return ORC_ENOMEM;
    }
    o->svc = svc;
    snprintf(o->method, sizeof(o->method), "%s", method);
    o->flags = flags | o->xflags;
    o->auth_retried = false;
    o->next_step = next;
    return oop_send(o);
}

int oop_call_json(struct oop *o, int svc, const char *method, const char *path, json_t *body,
                  unsigned flags, oop_step next)
{
    char *text = body ? ost_json_text(o->s->host, body) : NULL;
    int rc;

    json_decref(body);
    if (body && text == NULL) {
        snprintf(o->call.error, sizeof(o->call.error), "out of memory");
        return ORC_ENOMEM;
    }
    rc = oop_call(o, svc, method, path, text, flags, next);
    o->s->host->free(text);
    return rc;
}

void oop_on_timer(void *arg)
{
    struct oop *o = arg;

    o->timer = 0;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    o->next_step(o, o->status);
}

int oop_wait(struct oop *o, uint32_t ms, oop_step next)
{
    o->next_step = next;
    o->status = 0;
    o->timer = o->s->host->timer_start(o->s->host, ms, oop_on_timer, o);
    return o->timer ? 0 : oop_errf(o, ORC_ENOMEM, "out of memory");
}

static void retry_now(struct oop *o, int status)
{
    o->retry_step(o, 0);
}

void oop_retry_later(struct oop *o, int status, const char *what, oop_step step)
{
    uint64_t ceiling = 500ull << (o->tries < 4 ? o->tries : 4); /* up to 8 s */
    uint32_t wait = (uint32_t)(250 + cld_rand(&o->s->rng, ceiling));
    int rc;

    o->tries++;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    if (o->deadline_ms == 0 || cld_now_ms() + wait > o->deadline_ms) {
        oop_fail_call(o, status, what);
        return;
    }
    orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_DEBUG,
                          "openstack: %s: %s; again in %u ms", o->name, what, wait);
    o->retry_step = step;
    rc = oop_wait(o, wait, retry_now);
    if (rc < 0)
        oop_fail(o, rc, "out of memory");
}

/* ---- site open and close ---- */

static void free_site(struct ost *s);

static void open_synced(struct oop *o, int status)
{
    struct ost *s = o->s;

    if (status == ORC_EDENIED || status == ORC_EINVAL || status == ORC_ENOMEM ||
        status == ORC_ECANCELED) {
        free_site(s);        /* what it holds; the core frees the site itself */
        oop_done(o, status); /* o->err says why */
        return;
    }
    if (status < 0) /* the cloud may be back later: the site opens, its ops say what fails */
        s->host->log(s->host, ORC_DRV_LOG_WARN, "%s (the site opens; its operations try again)",
                     o->err);
    else
        s->host->log(s->host, ORC_DRV_LOG_INFO,
                     "openstack: %s, region %s: %zu flavors, network %s (%s)", s->c.auth_url,
                     s->c.region, s->nflavors, s->net_name, s->net_id);
    o->err[0] = '\0';
    oop_done(o, 0);
}

static void free_site(struct ost *s)
{
    ost_auth_free(s);
    ost_cloud_free(s);
    if (s->secret) {
        memset(s->secret, 0, strlen(s->secret));
        s->host->free(s->secret);
        s->secret = NULL;
    }
    ost_conf_free(s->host, &s->c);
}

static int ost_site_open(void *state, const struct orc_host_api *host,
                         const struct orc_site_conf *conf, orc_op_t *op)
{
    struct ost *s = state;
    struct oop *o;
    int rc;

    s->host = host;
    s->conf = conf;
    if (host->version < 3 || host->http == NULL)
        return orc_op_failf(op, ORC_ENOTSUP, "openstack: the daemon lends no HTTP client");
    rc = ost_conf_parse(host, conf, &s->c, &s->secret, op->error, sizeof(op->error));
    if (rc < 0)
        return rc;
    s->tls = (struct cld_tls){.ca_file = s->c.ca_file, .timeout_ms = s->c.timeout_ms};
    o = oop_new(s, op, OOP_OPEN);
    if (o == NULL) {
        free_site(s);
        return orc_op_failf(op, ORC_ENOMEM, "openstack: out of memory");
    }
    o->deadline_ms = cld_now_ms() + 20000;
    rc = ost_sync_need(o, open_synced);
    if (rc < 0) {
        snprintf(op->error, sizeof(op->error), "%s", o->err[0] ? o->err : "openstack: cannot start");
        oop_started(o, rc);
        free_site(s);
        return rc;
    }
    return 0;
}

static void close_check(struct ost *s)
{
    struct oop *o = s->close_op;

    if (!s->closing || o == NULL || o->timer != 0 || s->ops != o || o->next != NULL ||
        s->auth_busy)
        return;
    s->close_op = NULL;
    free_site(s);
    oop_defer(o, 0);
}

void ost_close_check(struct ost *s)
{
    close_check(s);
}

static void oop_cancel(struct oop *o)
{
    struct ost *s = o->s;

    if (o->kind == OOP_CLOSE || o->canceled)
        return;
    o->canceled = true;
    if (o->call_busy) {
        cld_call_cancel(&o->call);
    } else if (o->auth_wait || o->sync_wait) {
        ost_auth_leave(o);
        ost_sync_leave(o);
        oop_defer(o, ORC_ECANCELED);
    } else if (o->timer) {
        s->host->timer_stop(s->host, o->timer);
        o->timer = 0;
        oop_defer(o, ORC_ECANCELED);
    }
}

static void close_tick(void *arg)
{
    struct oop *o = arg;

    o->timer = 0;
    close_check(o->s);
}

static int ost_site_close(void *state, orc_op_t *op)
{
    struct ost *s = state;
    struct oop *o = oop_new(s, op, OOP_CLOSE);

    if (o == NULL)
        return ORC_ENOMEM;
    s->closing = true;
    s->close_op = o;
    for (struct oop *x = s->ops; x; x = x->next)
        if (x != o)
            oop_cancel(x);
    ost_auth_cancel(s);
    o->timer = s->host->timer_start(s->host, 0, close_tick, o);
    if (o->timer == 0) {
        s->close_op = NULL;
        o->op = NULL;
        op->drv = NULL;
        oop_done(o, 0);
        return ORC_ENOMEM;
    }
    return 0;
}

static int ost_cancel(void *state, orc_op_t *target)
{
    struct ost *s = state;
    struct oop *o = target ? target->drv : NULL;

    for (struct oop *x = s->ops; x && o; x = x->next)
        if (x == o) {
            oop_cancel(o);
            return 0;
        }
    return ORC_ENOTFOUND;
}

static const struct orc_driver ost_driver = {
    ORC_DRIVER_HEADER,
    .name = "openstack",
    .version = "1.0",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_PUBLIC_IP | ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_AGENT_BOOT,
    .state_size = sizeof(struct ost),
    .site_open = ost_site_open,
    .site_close = ost_site_close,
    .inventory = ost_inventory,
    .provision = ost_provision,
    .deprovision = ost_deprovision,
    .status = ost_status,
    .adopt = ost_status,
    .start_workload = ost_start_workload,
    .exec = ost_exec,
    .cancel = ost_cancel,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);
ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &ost_driver;
}
