/*
 * Streaming responses (api.h, "streaming responses"): one h2o generator per
 * stream whose proceed callback hands the next buffered piece to the socket.
 * Two buffers: pending (what the owner wrote since) and inflight (handed to
 * h2o and kept until proceed says the write is done, since libuv writes from
 * that memory). Calls into h2o that may finish the request on the spot (the
 * final piece, an error) are never made from inside an owner's call: they
 * wait for proceed or for the server's kick timer, so that closed() always
 * runs from a loop callback. The request's dispose hook (dispatch.c) ends a
 * stream's life: it tells the owner and frees the stream.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SHRINK_ABOVE (64 * 1024) /* an idle stream keeps at most this much buffer */

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
};

struct orc_api_stream_s {
    h2o_generator_t gen; /* first: h2o hands it back to proceed and stop */
    orc_api_t *api;
    orc_api_req_t *req;
    const orc_api_stream_cbs_t *cbs;
    void *data;
    struct sbuf pending;  /* written, not handed to h2o yet (only while sending) */
    struct sbuf inflight; /* handed to h2o, until proceed */
    uint64_t bytes;       /* written in all */
    bool sending;         /* an h2o_send waits for proceed */
    bool ending;          /* the final piece follows what is written */
    bool cut;             /* cut off: the body ends in an error, the connection closes */
    bool client_gone;     /* ... because the client closed its end */
    bool done;            /* the last h2o_send (final or error) is made */
    bool lost;            /* h2o stopped the response: the connection went away */
    bool kicked;          /* waits for the kick timer */
    orc_api_stream_t *next;
    orc_api_stream_t **prev;
};

/* ---- buffers ---------------------------------------------------------------------------- */

static int sbuf_append(struct sbuf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *grown;
        while (cap < b->len + n)
            cap *= 2;
        grown = orc_realloc(b->p, cap);
        if (grown == NULL)
            return ORC_ENOMEM;
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void sbuf_free(struct sbuf *b)
{
    orc_free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Empties a buffer, keeping a small one for the next piece. */
static void sbuf_reset(struct sbuf *b)
{
    if (b->cap > SHRINK_ABOVE)
        sbuf_free(b);
    b->len = 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

static bool takes_writes(const orc_api_stream_t *s)
{
    return !s->ending && !s->cut && !s->done && !s->lost;
}

/* Hands what is pending to h2o with state. Not while sending. With a final or
 * error state h2o may finish the request inside this call, freeing s: the
 * caller must not touch s afterwards. */
static void send_pending(orc_api_stream_t *s, h2o_send_state_t state)
{
    struct sbuf spare = s->inflight; /* empty: nothing is in flight */
    h2o_iovec_t iov;

    s->inflight = s->pending;
    s->pending = spare;
    s->pending.len = 0;
    iov = h2o_iovec_init(s->inflight.p, s->inflight.len);
    if (state == H2O_SEND_STATE_IN_PROGRESS)
        s->sending = true;
    else
        s->done = true;
    h2o_send(s->req->h2o, iov.len ? &iov : NULL, iov.len ? 1 : 0, state);
}

static void kick(orc_api_stream_t *s)
{
    s->kicked = true;
    orc_httpd_kick(s->api->http);
}

/* Stops taking writes and closes the connection; the body ends in an error. */
static void cut_off(orc_api_stream_t *s)
{
    if (s->cut || s->done || s->lost)
        return;
    s->cut = true;
    s->pending.len = 0;
    s->req->h2o->http1_is_persistent = 0;
    if (s->req->conn != NULL)
        orc_httpd_conn_abort(s->req->conn); /* a write in flight fails */
    if (!s->sending)
        kick(s);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *h)
{
    orc_api_stream_t *s = (orc_api_stream_t *)gen;

    (void)h;
    s->sending = false;
    sbuf_reset(&s->inflight);
    if (s->done || s->lost)
        return;
    if (s->cut) {
        send_pending(s, H2O_SEND_STATE_ERROR); /* pending was emptied */
        return;
    }
    if (s->pending.len > 0 || s->ending) {
        send_pending(s, s->ending ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
        return;
    }
    if (s->cbs->drained != NULL)
        s->cbs->drained(s, s->data);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *h)
{
    orc_api_stream_t *s = (orc_api_stream_t *)gen;

    (void)h;
    s->lost = true; /* the request's dispose hook follows at once */
}

void orc_api_streams_kick(orc_api_t *api)
{
    orc_api_stream_t *s = api->streams.list;

    while (s != NULL) {
        if (!s->kicked || s->sending || s->done || s->lost) {
            s->kicked = false;
            s = s->next;
            continue;
        }
        s->kicked = false;
        /* may free s, and its owner may end other streams: start over */
        send_pending(s, s->cut ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL);
        s = api->streams.list;
    }
}

/* ---- the owner's side ---------------------------------------------------------------------- */

static int refuse(orc_api_req_t *req, const char *why)
{
    orc_api_t *api = req->api;

    api->streams.rejected++;
    return orc_api_req_fail(req, 503, "%s", why);
}

static int check_start(orc_api_req_t *req, int status, const char *content_type,
                       const orc_api_stream_cbs_t *cbs)
{
    orc_api_t *api = req->api;
    char why[128];

    if (req->gone)
        return ORC_ECANCELED;
    if (req->status != 0 || status < 200 || status > 599 || status == 204 || status == 304 ||
        content_type == NULL || cbs == NULL || cbs->closed == NULL)
        return ORC_EINVAL;
    if (api->draining)
        return refuse(req, "the server is shutting down");
    if (api->streams.open >= api->cfg->limits.max_streams) {
        snprintf(why, sizeof(why), "too many open streams: %zu, the limit (retry later)",
                 api->streams.open);
        orc_log(ORC_LOG_WARN, "http", "%s %s: refused: %s", req->method_name, req->path, why);
        return refuse(req, why);
    }
    return 0;
}

static void link_stream(orc_api_stream_t *s)
{
    struct orc_api_streams *all = &s->api->streams;

    s->next = all->list;
    s->prev = &all->list;
    if (all->list != NULL)
        all->list->prev = &s->next;
    all->list = s;
    all->open++;
    all->total++;
    if (s->req->conn != NULL)
        orc_httpd_conn_set_stream(s->req->conn, s);
}

static void set_response_head(orc_api_req_t *req, int status, const char *content_type)
{
    h2o_req_t *h = req->h2o;
    h2o_iovec_t type = h2o_strdup(&h->pool, content_type, strlen(content_type));

    h->res.status = status;
    h->res.reason = orc_http_reason(status);
    h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type.base, type.len);
    h2o_add_header_by_str(&h->pool, &h->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, req->id,
                          strlen(req->id));
    h->res.content_length = SIZE_MAX; /* chunked on HTTP/1.1 */
    if (h->version < 0x101)
        h->http1_is_persistent = 0; /* HTTP/1.0: the body ends when the connection does */
}

int orc_api_stream_start(orc_api_req_t *req, int status, const char *content_type,
                         const orc_api_stream_cbs_t *cbs, void *data, orc_api_stream_t **out)
{
    orc_api_stream_t *s;
    int rc = check_start(req, status, content_type, cbs);

    *out = NULL;
    if (rc < 0)
        return rc;
    s = orc_calloc(1, sizeof(*s));
    if (s == NULL)
        return ORC_ENOMEM;
    s->gen.proceed = on_proceed;
    s->gen.stop = on_stop;
    s->api = req->api;
    s->req = req;
    s->cbs = cbs;
    s->data = data;
    if (req->deferred)
        orc_api_req_undefer(req);
    req->status = status;
    req->stream = s;
    set_response_head(req, status, content_type);
    link_stream(s);
    orc_log(ORC_LOG_DEBUG, "http", "%s %s -> %d stream (%s) id=%s", req->method_name, req->path,
            status, req->route ? req->route->pattern : "unmatched", req->id);
    h2o_start_response(req->h2o, &s->gen);
    s->sending = true; /* the status line and headers go out now */
    h2o_send(req->h2o, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
    if (req->method == ORC_HTTP_HEAD)
        s->ending = true; /* headers only */
    *out = s;
    return 0;
}

int orc_api_stream_write(orc_api_stream_t *s, const void *data, size_t len)
{
    size_t buffered = s->pending.len + s->inflight.len;

    if (!takes_writes(s))
        return ORC_ECANCELED;
    if (len == 0)
        return 0;
    if (buffered + len > ORC_API_STREAM_MAX_BUFFER) {
        orc_log(ORC_LOG_WARN, "http",
                "%s: cutting a stream off: its client is %zu bytes behind (the limit is %d) id=%s",
                s->req->path, buffered + len, ORC_API_STREAM_MAX_BUFFER, s->req->id);
        cut_off(s);
        return ORC_ELIMIT;
    }
    if (sbuf_append(&s->pending, data, len) < 0) {
        orc_log(ORC_LOG_ERROR, "http", "%s: cutting a stream off: out of memory id=%s",
                s->req->path, s->req->id);
        cut_off(s);
        return ORC_ENOMEM;
    }
    s->bytes += len;
    if (!s->sending)
        send_pending(s, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

int orc_api_stream_printf(orc_api_stream_t *s, const char *fmt, ...)
{
    char small[1024], *text = small;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return ORC_EINVAL;
    if ((size_t)n >= sizeof(small)) {
        text = orc_malloc((size_t)n + 1);
        if (text == NULL)
            return ORC_ENOMEM;
        va_start(ap, fmt);
        vsnprintf(text, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    rc = orc_api_stream_write(s, text, (size_t)n);
    if (text != small)
        orc_free(text);
    return rc;
}

int orc_api_stream_end(orc_api_stream_t *s)
{
    if (!takes_writes(s))
        return ORC_ECANCELED;
    s->ending = true;
    if (!s->sending)
        kick(s); /* the final piece from a loop callback, never from here */
    return 0;
}

bool orc_api_stream_open(const orc_api_stream_t *s)
{
    return takes_writes(s);
}

size_t orc_api_stream_buffered(const orc_api_stream_t *s)
{
    return s->pending.len + s->inflight.len;
}

const char *orc_api_stream_id(const orc_api_stream_t *s)
{
    return s->req->id;
}

/* ---- the server's side ------------------------------------------------------------------------ */

void orc_api_stream_gone(orc_api_stream_t *s)
{
    struct orc_api_streams *all = &s->api->streams;
    int status = s->done && !s->cut && !s->lost ? 0 : ORC_ECANCELED;

    *s->prev = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    all->open--;
    if (status < 0 && s->cut && !s->client_gone)
        all->cut++;
    else if (status < 0)
        all->lost++;
    if (s->req->conn != NULL)
        orc_httpd_conn_set_stream(s->req->conn, NULL);
    s->req->stream = NULL;
    orc_log(ORC_LOG_DEBUG, "http", "%s: stream %s after %llu bytes id=%s", s->req->path,
            status == 0 ? "ended" : s->cut && !s->client_gone ? "cut off" : "lost",
            (unsigned long long)s->bytes, s->req->id);
    s->cbs->closed(s, status, s->data);
    sbuf_free(&s->pending);
    sbuf_free(&s->inflight);
    orc_free(s);
}

void orc_api_stream_lost(orc_api_stream_t *s)
{
    if (s->done || s->cut || s->lost)
        return;
    orc_log(ORC_LOG_DEBUG, "http", "%s: the client of a stream went away id=%s", s->req->path,
            s->req->id);
    s->client_gone = true;
    cut_off(s);
}

void orc_api_stream_stalled(orc_api_stream_t *s)
{
    if (s->done && !s->lost)
        s->cut = true; /* its end is stuck in the socket: cut off all the same */
    cut_off(s);
}

void orc_api_streams_drain(orc_api_t *api)
{
    for (orc_api_stream_t *s = api->streams.list; s != NULL; s = s->next) {
        s->req->h2o->http1_is_persistent = 0;
        if (takes_writes(s))
            orc_api_stream_end(s);
    }
    if (api->streams.open > 0)
        orc_log(ORC_LOG_INFO, "http", "shutting down: ending %zu stream(s)", api->streams.open);
}

void orc_api_streams_metrics(void *data, orc_api_text_t *out)
{
    const orc_api_t *api = data;
    const struct orc_api_streams *st = &api->streams;

    orc_api_metrics_printf(
        out,
        "# HELP orchestrator_http_streams_open Streaming responses open now.\n"
        "# TYPE orchestrator_http_streams_open gauge\n"
        "orchestrator_http_streams_open %zu\n"
        "# HELP orchestrator_http_streams_total Streaming responses started.\n"
        "# TYPE orchestrator_http_streams_total counter\n"
        "orchestrator_http_streams_total %llu\n"
        "# HELP orchestrator_http_streams_rejected_total Streams refused with 503: at the "
        "limit or while shutting down.\n"
        "# TYPE orchestrator_http_streams_rejected_total counter\n"
        "orchestrator_http_streams_rejected_total %llu\n"
        "# HELP orchestrator_http_streams_cut_total Streams the server cut off: their client "
        "did not read.\n"
        "# TYPE orchestrator_http_streams_cut_total counter\n"
        "orchestrator_http_streams_cut_total %llu\n"
        "# HELP orchestrator_http_streams_lost_total Streams whose client went away before "
        "the end.\n"
        "# TYPE orchestrator_http_streams_lost_total counter\n"
        "orchestrator_http_streams_lost_total %llu\n"
        "# HELP orchestrator_http_streams_limit The most streams open at once.\n"
        "# TYPE orchestrator_http_streams_limit gauge\n"
        "orchestrator_http_streams_limit %u\n",
        st->open, (unsigned long long)st->total, (unsigned long long)st->rejected,
        (unsigned long long)st->cut, (unsigned long long)st->lost, api->cfg->limits.max_streams);
}
