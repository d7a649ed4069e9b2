/*
 * Deployment callbacks: when a deployment completes or fails, its callback
 * URL gets a POST of the deployment JSON (API.md). Unlike the original
 * orchestrator (one try, errors swallowed), a failed delivery (no answer,
 * or a status that is not 2xx) is retried with exponential backoff a
 * bounded number of times; every outcome is an event of the deployment.
 */
#include <stdio.h>
#include <string.h>

#include "../store/json.h"
#include "engine_int.h"
#include "http_client.h"

#define LOG "callback"
#define TIMEOUT_MS 10000

static void event(struct callback *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event(struct callback *c, const char *type, const char *fmt, ...)
{
    orc_event_t ev = {.type = (char *)type};
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(ev.deployment_uuid, c->uuid, ORC_UUID_LEN);
    ev.message = msg;
    orc_store_event_append(c->eng->store, &ev); /* borrows type and message */
    orc_log_ctx(strcmp(type, "callback.delivered") == 0 ? ORC_LOG_INFO : ORC_LOG_WARN, LOG,
                &(orc_log_ctx_t){.deployment = c->uuid}, "%s", msg);
    if (c->eng->opts.notify)
        c->eng->opts.notify(c->eng->opts.notify_ud, c->uuid);
}

static void closed(uv_handle_t *h)
{
    struct callback *c = h->data;
    struct orc_engine *eng = c->eng;

    orc_free(c->url);
    orc_free(c->body);
    orc_free(c);
    eng->closing_timers--;
    orc__engine_maybe_done(eng);
}

static void finish(struct callback *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->eng->callbacks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->eng->closing_timers++;
    uv_close((uv_handle_t *)&c->timer, closed);
}

static void send_now(struct callback *c);

static void on_retry(uv_timer_t *t)
{
    send_now(t->data);
}

static unsigned attempts(const struct orc_engine *eng)
{
    return eng->opts.callback_attempts ? eng->opts.callback_attempts : 8;
}

static void on_answer(void *ud, int rc, long status, const char *error)
{
    struct callback *c = ud;
    uint64_t delay;

    if (rc == ORC_ECANCELED)
        return; /* shutting down: orc_engine_callbacks_close frees it */
    if (rc == 0 && status >= 200 && status < 300) {
        event(c, "callback.delivered", "callback to %s answered %ld (try %u)", c->url, status,
              c->attempt);
        finish(c);
        return;
    }
    if (c->attempt >= attempts(c->eng)) {
        event(c, "callback.failed", "callback to %s failed %u times, last: %s; giving up", c->url,
              c->attempt, rc < 0 ? error : "a non-2xx status");
        finish(c);
        return;
    }
    delay = (uint64_t)(c->eng->opts.callback_backoff_ms ? c->eng->opts.callback_backoff_ms : 1000)
            << (c->attempt - 1);
    if (rc < 0)
        event(c, "callback.retry", "callback to %s failed (%s); retry in %llu ms", c->url, error,
              (unsigned long long)delay);
    else
        event(c, "callback.retry", "callback to %s answered %ld; retry in %llu ms", c->url, status,
              (unsigned long long)delay);
    uv_timer_start(&c->timer, on_retry, delay, 0);
}

static void send_now(struct callback *c)
{
    int rc;

    c->attempt++;
    {
        struct orc_http_post p = {.url = c->url, .body = c->body, .timeout_ms = TIMEOUT_MS,
                                  .public_only = c->eng->opts.callback_public_only};
        rc = orc_http_post(c->eng->http, &p, on_answer, c);
    }
    if (rc < 0)
        on_answer(c, rc, 0, orc_strerror(rc));
}

void orc_engine_callback(struct orc_engine *eng, const char *uuid)
{
    orc_deployment_t *d = NULL;
    struct callback *c;
    json_t *j = NULL;

    if (eng->http == NULL || eng->closing ||
        orc_store_deployment_get_head(eng->store, uuid, &d) < 0 || d->callback == NULL ||
        orc_deployment_to_json(d, NULL, &j) < 0 || (c = orc_calloc(1, sizeof(*c))) == NULL) {
        json_decref(j);
        orc_deployment_free(d);
        return;
    }
    c->eng = eng;
    memcpy(c->uuid, uuid, ORC_UUID_LEN);
    c->url = orc_strdup(d->callback);
    c->body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    orc_deployment_free(d);
    uv_timer_init(eng->loop, &c->timer);
    c->timer.data = c;
    c->next = eng->callbacks;
    if (c->next)
        c->next->prev = c;
    eng->callbacks = c;
    if (c->url == NULL || c->body == NULL) {
        finish(c);
        return;
    }
    /* on the next loop iteration: after the group commit that makes the
     * status it announces durable */
    c->attempt = 0;
    uv_timer_start(&c->timer, on_retry, 0, 0);
}

void orc_engine_callbacks_close(struct orc_engine *eng)
{
    while (eng->callbacks) {
        struct callback *c = eng->callbacks;
        uv_timer_stop(&c->timer);
        finish(c); /* a delivery still in flight is dropped with the http client */
    }
}

size_t orc_engine_callbacks_pending(const struct orc_engine *eng)
{
    size_t n = 0;

    for (const struct callback *c = eng->callbacks; c != NULL; c = c->next)
        n++;
    return n;
}
