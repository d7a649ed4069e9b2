/*
 * One REST call with retries (cloud.h): the host's HTTP client sends it;
 * no answer or a transient one (429, 5xx) is sent again after a backoff
 * with full jitter, or after the server's Retry-After, within the call's
 * attempts and deadline. The answer's body is parsed as JSON when it is.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cloud.h"

int64_t cld_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t cld_rand(uint64_t *rng, uint64_t n)
{
    uint64_t x = *rng;

    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)rng;
        x |= 1;
    }
    /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return n ? (x * UINT64_C(2685821657736338717)) % n : 0;
}

bool cld_transient(long code)
{
    return code == 429 || code == 500 || code == 502 || code == 503 || code == 504;
}

static void free_request(struct cld_call *c)
{
    const struct orc_host_api *host = c->host;

    if (host == NULL)
        return;
    host->free(c->url);
    if (c->req_body) /* it may hold credentials (a Keystone request): wiped first */
        memset(c->req_body, 0, c->req_body_len);
    host->free(c->req_body);
    c->url = c->req_body = NULL;
    for (int i = 0; i < CLD_MAX_HEADERS && c->headers[i]; i++) {
        memset(c->headers[i], 0, strlen(c->headers[i])); /* tokens */
        host->free(c->headers[i]);
        c->headers[i] = NULL;
    }
}

static void free_results(struct cld_call *c)
{
    json_decref(c->json);
    c->json = NULL;
    if (c->host)
        c->host->free(c->body);
    c->body = NULL;
    c->body_len = 0;
}

void cld_call_release(struct cld_call *c)
{
    if (c == NULL)
        return;
    free_results(c);
    free_request(c);
    if (c->host && c->host->http)
        c->host->http->release(c->host, &c->req);
}

bool cld_call_busy(const struct cld_call *c)
{
    return c && c->busy;
}

static void finish(struct cld_call *c, int status)
{
    c->busy = false;
    if (c->canceled && status == 0)
        status = ORC_ECANCELED;
    if (status == ORC_ECANCELED && c->error[0] == '\0')
        snprintf(c->error, sizeof(c->error), "%s %s: canceled", c->method, c->url);
    c->cb(c, status);
}

static int send_once(struct cld_call *c);

static void on_retry_timer(void *arg)
{
    struct cld_call *c = arg;
    int rc;

    c->timer = 0;
    if (c->canceled) {
        finish(c, ORC_ECANCELED);
        return;
    }
    rc = send_once(c);
    if (rc < 0)
        finish(c, rc);
}

/* The wait before the next attempt, or -1 when there is none. */
static int64_t next_wait(struct cld_call *c, int status)
{
    const struct cld_retry *p = &c->retry;
    uint64_t ceiling = (uint64_t)p->base_ms << (c->attempts < 16 ? c->attempts : 16);
    int64_t wait, left;
    char ra[32];

    if (c->attempts >= p->attempts)
        return -1;
    if (status == 0 && !cld_transient(c->code))
        return -1;
    if (!p->idempotent && !(status == 0 && (c->code == 429 || c->code == 503)))
        return -1;
    if (ceiling > p->cap_ms)
        ceiling = p->cap_ms;
    wait = (int64_t)cld_rand(&c->rng, ceiling + 1);
    if (status == 0 && c->host->http->header(&c->req, "Retry-After", ra, sizeof(ra))) {
        char *end;
        long s = strtol(ra, &end, 10);
        if (end != ra && s >= 0 && s * 1000 > wait)
            wait = s * 1000 > (int64_t)p->cap_ms ? (int64_t)p->cap_ms : s * 1000;
    }
    left = c->started_ms + (int64_t)p->deadline_ms - cld_now_ms();
    if (wait >= left)
        return -1;
    return wait;
}

static void take_answer(struct cld_call *c)
{
    c->code = c->req.code;
    c->body = c->req.body;
    c->body_len = c->req.body_len;
    c->req.body = NULL;
    c->req.body_len = 0;
    if (c->body && c->body_len)
        c->json = json_loadb(c->body, c->body_len, 0, NULL);
    c->location[0] = c->token[0] = '\0';
    if (c->host->http->header(&c->req, "Location", c->location, sizeof(c->location)) == NULL)
        c->location[0] = '\0';
    if (c->host->http->header(&c->req, "X-Subject-Token", c->token, sizeof(c->token)) == NULL)
        c->token[0] = '\0';
}

static void on_answer(orc_http_req_t *req, int status)
{
    struct cld_call *c = req->data;
    int64_t wait;

    free_results(c);
    c->code = req->code;
    if (c->canceled || status == ORC_ECANCELED || status == ORC_ENOMEM) {
        c->host->http->release(c->host, req);
        finish(c, c->canceled ? ORC_ECANCELED : status);
        return;
    }
    wait = next_wait(c, status);
    if (status < 0)
        snprintf(c->error, sizeof(c->error), "%s", req->error);
    else
        take_answer(c);
    if (wait >= 0) {
        c->host->http->release(c->host, req);
        c->timer = c->host->timer_start(c->host, (uint64_t)wait, on_retry_timer, c);
        if (c->timer)
            return;
        status = ORC_ENOMEM;
    }
    c->host->http->release(c->host, req);
    if (status < 0 && c->attempts > 1) {
        size_t n = strlen(c->error);
        snprintf(c->error + n, sizeof(c->error) - n, " (after %u attempts)", c->attempts);
    }
    finish(c, status);
}

static int send_once(struct cld_call *c)
{
    struct orc_http_request r = {
        .method = c->method,
        .url = c->url,
        .headers = (const char *const *)c->headers,
        .body = c->req_body,
        .body_len = c->req_body_len,
        .ca_file = c->tls.ca_file,
        .cert_file = c->tls.cert_file,
        .key_file = c->tls.key_file,
        .timeout_ms = c->tls.timeout_ms,
        .connect_timeout_ms = c->tls.connect_timeout_ms,
    };
    int rc;

    memset(&c->req, 0, sizeof(c->req));
    c->req.data = c;
    c->req.cb = on_answer;
    c->attempts++;
    rc = c->host->http->request(c->host, &c->req, &r);
    if (rc < 0) /* the client's message names the method and URL */
        snprintf(c->error, sizeof(c->error), "%s",
                 c->req.error[0] ? c->req.error : "cannot start the request");
    return rc;
}

static int copy_request(struct cld_call *c, const char *method, const char *url, const char *body,
                        const char *const *headers)
{
    const struct orc_host_api *host = c->host;
    size_t n = 0;
    bool has_ctype = false;

    snprintf(c->method, sizeof(c->method), "%s", method);
    c->url = cld_strdup(host, url);
    if (c->url == NULL)
        return ORC_ENOMEM;
    if (body) {
        c->req_body_len = strlen(body);
        c->req_body = cld_strdup(host, body);
        if (c->req_body == NULL)
            return ORC_ENOMEM;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (n >= CLD_MAX_HEADERS - 1)
            return ORC_ELIMIT;
        if (strncasecmp(headers[i], "Content-Type:", 13) == 0)
            has_ctype = true;
        if ((c->headers[n++] = cld_strdup(host, headers[i])) == NULL)
            return ORC_ENOMEM;
    }
    if (body && !has_ctype &&
        (c->headers[n++] = cld_strdup(host, "Content-Type: application/json")) == NULL)
        return ORC_ENOMEM;
    return 0;
}

int cld_call_start(struct cld_call *c, const struct orc_host_api *host, const struct cld_tls *tls,
                   const struct cld_retry *retry, const char *method, const char *url,
                   const char *body, const char *const *headers, cld_cb cb)
{
    void *data = c->data;
    int rc;

    memset(c, 0, sizeof(*c));
    c->data = data;
    c->host = host;
    c->cb = cb;
    if (tls)
        c->tls = *tls;
    if (retry)
        c->retry = *retry;
    if (c->retry.attempts == 0)
        c->retry.attempts = 5;
    if (c->retry.base_ms == 0)
        c->retry.base_ms = 250;
    if (c->retry.cap_ms == 0)
        c->retry.cap_ms = 8000;
    if (c->retry.deadline_ms == 0)
        c->retry.deadline_ms = 120000;
    if (host->http == NULL) {
        snprintf(c->error, sizeof(c->error), "the daemon lends no HTTP client (host API < 3)");
        return ORC_ENOTSUP;
    }
    rc = copy_request(c, method, url, body, headers);
    if (rc < 0) {
        snprintf(c->error, sizeof(c->error), "%s %s: %s", method, url,
                 rc == ORC_ELIMIT ? "too many header lines" : "out of memory");
        free_request(c);
        return rc;
    }
    c->started_ms = cld_now_ms();
    rc = send_once(c);
    if (rc < 0) {
        free_request(c);
        return rc;
    }
    c->busy = true;
    return 0;
}

void cld_call_cancel(struct cld_call *c)
{
    if (c == NULL || !c->busy || c->canceled)
        return;
    c->canceled = true;
    if (c->timer) {
        c->host->timer_stop(c->host, c->timer);
        /* end on a later iteration, as a canceled request would */
        c->timer = c->host->timer_start(c->host, 0, on_retry_timer, c);
        if (c->timer == 0) /* out of memory: nothing better than now */
            finish(c, ORC_ECANCELED);
        return;
    }
    c->host->http->cancel(c->host, &c->req);
}

/* ---- messages ---- */

static const char *msg_of(const json_t *o)
{
    static const char *const keys[] = {"message", "detail", "title", "reason", "faultstring"};

    if (!json_is_object(o))
        return NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *s = json_string_value(json_object_get(o, keys[i]));
        if (s && *s)
            return s;
    }
    return NULL;
}

const char *cld_api_message(const struct cld_call *c, char *buf, size_t cap)
{
    const char *m = msg_of(c->json);
    const char *key;
    json_t *v;

    if (m == NULL && json_is_object(c->json))
        json_object_foreach(c->json, key, v) {
            if ((m = msg_of(v)) != NULL)
                break;
        }
    if (m) {
        snprintf(buf, cap, "%s", m);
    } else if (c->body && c->body_len) {
        size_t n = strcspn(c->body, "\r\n");
        snprintf(buf, cap, "%.*s", (int)(n > 200 ? 200 : n), c->body);
    } else {
        snprintf(buf, cap, "HTTP %ld", c->code);
    }
    return buf;
}

/* ---- strings and JSON ---- */

char *cld_strdup(const struct orc_host_api *host, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = host->malloc(n);

    if (p)
        memcpy(p, s, n);
    return p;
}

char *cld_printf(const struct orc_host_api *host, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *p;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (p = host->malloc((size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

bool cld_urlencode(const char *s, char *buf, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || strchr("-_.~", ch);
        if (n + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            buf[n++] = (char)ch;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[ch >> 4];
            buf[n++] = hex[ch & 15];
        }
    }
    if (n >= cap)
        return false;
    buf[n] = '\0';
    return true;
}

const char *cld_jstr(const json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : dflt;
}

json_t *cld_jpath(const json_t *o, const char *path)
{
    char part[128];
    const char *p = path;

    while (o && *p) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(part))
            return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        o = json_object_get(o, part);
        p += n;
        if (*p == '.')
            p++;
    }
    return (json_t *)o;
}
