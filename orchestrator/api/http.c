/*
 * The HTTP server: libh2o 2.2 (HTTP/1.1, keep-alive) on the daemon's libuv
 * loop. We own every TCP handle: listeners, and one orc_httpd_conn per client
 * connection whose uv_tcp_t h2o wraps with h2o_uv_socket_create(); h2o
 * closes it, and our close callback frees the record. That ownership gives
 * the limits h2o 2.2 lacks:
 *  - max_connections: a connection over the limit gets a canned 503;
 *  - stalled writes: a sweep timer closes connections whose response has
 *    made no progress for request_timeout (h2o's own request timeout covers
 *    receiving requests and idle keep-alive);
 *  - graceful shutdown: listeners close, h2o is told (new requests are not
 *    kept alive), idle connections are closed by shutdown(2) (h2o reads EOF
 *    and closes them itself, so nothing is freed under its feet), busy ones
 *    finish; at the deadline deferred requests get 503 and every remaining
 *    socket is shut down.
 *  - streams (stream.c): a kick timer runs what streams leave for a loop
 *    callback; the sweep notices a client that closed its end of a
 *    connection carrying a stream (h2o does not read while it responds), and
 *    draining ends every stream.
 * Errors h2o answers by itself before routing (400 bad framing, 413, 417)
 * pass a filter that rewrites them into the API's error JSON.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define HTTP_BACKLOG 511
#define SWEEP_MS 1000
#define DRAIN_SWEEP_MS 50

struct orc_httpd_listener {
    uv_tcp_t tcp;
    struct orc_httpd *http;
    char url[96];
    uint16_t port;
};

struct orc_httpd_conn {
    uv_tcp_t tcp;
    struct orc_httpd *http;
    h2o_socket_t *sock; /* NULL once h2o has let go of it */
    struct orc_httpd_conn *next;
    struct orc_httpd_conn **prev;
    unsigned inflight; /* requests routed and not yet disposed */
    bool linked;       /* counted in http->conns (rejected ones are not) */
    bool shut;         /* shutdown(2) done */
    bool spare;        /* the record kept for accepting when memory runs out */
    size_t last_queue; /* write queue size at the last sweep */
    uint64_t last_progress;
    orc_api_stream_t *stream; /* the streaming response it carries, if any */
};

struct api_handler {
    h2o_handler_t super;
    struct orc_httpd *http;
};

struct error_filter {
    h2o_filter_t super;
    struct orc_httpd *http;
};

struct error_ostream {
    h2o_ostream_t super;
    struct orc_httpd *http;
    h2o_iovec_t original; /* h2o's plain-text body */
};

enum http_state { HTTP_IDLE, HTTP_RUNNING, HTTP_DRAINING, HTTP_FORCING, HTTP_CLOSED };

struct orc_httpd {
    orc_api_t *api;
    uv_loop_t *loop;
    h2o_globalconf_t gconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    bool ctx_ready;
    struct orc_httpd_listener listeners[ORC_CONFIG_MAX_LISTEN];
    size_t nlisteners;
    size_t listeners_open; /* not yet through their close callback */
    struct orc_httpd_conn *conns;
    struct orc_httpd_conn *spare; /* lets accept() go on (and refuse) without memory */
    size_t nconns;
    uv_timer_t sweep;
    uv_timer_t deadline;
    uv_timer_t kick; /* runs orc_api_streams_kick() */
    enum http_state state;
    uint64_t last_reject_log;
    orc_api_closed_fn closed_cb;
    void *closed_data;
};

static void maybe_finish(struct orc_httpd *http);

/* ---- requests ------------------------------------------------------------------------ */

static struct orc_httpd_conn *conn_of(h2o_req_t *hreq)
{
    h2o_socket_t *sock = NULL;

    if (hreq->conn->callbacks->get_socket != NULL)
        sock = hreq->conn->callbacks->get_socket(hreq->conn);
    return sock ? sock->on_close.data : NULL;
}

static int on_req(h2o_handler_t *self, h2o_req_t *hreq)
{
    struct orc_httpd *http = ((struct api_handler *)self)->http;
    struct orc_httpd_conn *conn = conn_of(hreq);

    if (conn != NULL)
        conn->inflight++;
    return orc_api_dispatch(http->api, hreq, conn);
}

void orc_httpd_request_done(struct orc_httpd *http, struct orc_httpd_conn *conn)
{
    if (conn != NULL && conn->inflight > 0)
        conn->inflight--;
}

size_t orc_httpd_open_connections(const struct orc_httpd *http)
{
    return http->nconns;
}

const char *orc_httpd_local_authority(h2o_req_t *hreq, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    char host[INET6_ADDRSTRLEN];
    socklen_t n = hreq->conn->callbacks->get_sockname(hreq->conn, (struct sockaddr *)&ss);

    if (n == 0)
        return NULL;
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in4->sin_port));
    }
    return buf;
}

/* ---- errors h2o answers by itself --------------------------------------------------------- */

static h2o_iovec_t error_message(struct error_ostream *o, h2o_req_t *hreq)
{
    const orc_limits_t *lim = &o->http->api->cfg->limits;
    char msg[256];

    switch (hreq->res.status) {
    case 413:
        snprintf(msg, sizeof(msg),
                 "the request body exceeds the limit of %zu bytes (limits.max_body_bytes)",
                 lim->max_body_bytes);
        break;
    case 404:
        snprintf(msg, sizeof(msg), "no resource at %.*s", (int)hreq->input.path.len,
                 hreq->input.path.base);
        break;
    default:
        snprintf(msg, sizeof(msg), "%s: %.*s",
                 hreq->res.status == 400 ? "malformed request" : "refused", (int)o->original.len,
                 o->original.base);
        break;
    }
    json_t *body = orc_api_error_json(hreq->res.status, msg);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    h2o_iovec_t out = h2o_strdup(&hreq->pool, text ? text : "{}", SIZE_MAX);
    free(text);
    json_decref(body);
    return out;
}

static void error_ostream_send(h2o_ostream_t *self, h2o_req_t *hreq, h2o_iovec_t *bufs,
                               size_t bufcnt, h2o_send_state_t state)
{
    struct error_ostream *o = (struct error_ostream *)self;
    h2o_iovec_t body;

    for (size_t i = 0; i < bufcnt; i++)
        o->original = h2o_concat(&hreq->pool, o->original, bufs[i]);
    if (state == H2O_SEND_STATE_IN_PROGRESS) { /* never with h2o_send_inline */
        h2o_ostream_send_next(self, hreq, bufs, bufcnt, state);
        return;
    }
    body = error_message(o, hreq);
    hreq->res.content_length = body.len;
    if (h2o_memis(hreq->input.method.base, hreq->input.method.len, H2O_STRLIT("HEAD")))
        h2o_ostream_send_next(self, hreq, NULL, 0, state);
    else
        h2o_ostream_send_next(self, hreq, &body, 1, state);
}

static void error_filter_setup(h2o_filter_t *self, h2o_req_t *hreq, h2o_ostream_t **slot)
{
    struct orc_httpd *http = ((struct error_filter *)self)->http;
    struct error_ostream *o;
    ssize_t ct;

    if (hreq->res.status >= 400 && hreq->res.content_length != SIZE_MAX) {
        o = (struct error_ostream *)h2o_add_ostream(hreq, sizeof(*o), slot);
        o->super.do_send = error_ostream_send;
        o->http = http;
        o->original = h2o_iovec_init(NULL, 0);
        hreq->res.reason = orc_http_reason(hreq->res.status);
        ct = h2o_find_header(&hreq->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
        if (ct >= 0)
            hreq->res.headers.entries[ct].value = h2o_iovec_init(H2O_STRLIT("application/json"));
        else
            h2o_add_header(&hreq->pool, &hreq->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           H2O_STRLIT("application/json"));
        orc_api_count_unrouted(http->api, hreq, hreq->res.status);
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(hreq, slot);
}

/* ---- setup -------------------------------------------------------------------------------- */

int orc_httpd_new(orc_api_t *api, struct orc_httpd **out)
{
    struct orc_httpd *http = orc_calloc(1, sizeof(*http));
    const orc_limits_t *lim = &api->cfg->limits;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    struct api_handler *handler;
    struct error_filter *filter;

    if (http == NULL)
        return ORC_ENOMEM;
    http->api = api;
    http->loop = api->loop;
    http->spare = orc_calloc(1, sizeof(*http->spare));
    if (http->spare == NULL) {
        orc_free(http);
        return ORC_ENOMEM;
    }
    http->spare->spare = true;
    h2o_config_init(&http->gconf);
    http->gconf.server_name = h2o_iovec_init(H2O_STRLIT("orchestratord"));
    /* h2o refuses chunked bodies that reach its limit and declared ones that
     * pass it; one byte more makes both "over max_body_bytes", and the
     * router refuses a declared body of exactly limit + 1 itself. */
    http->gconf.max_request_entity_size = lim->max_body_bytes + 1;
    http->gconf.http1.req_timeout = lim->request_timeout_ms;
    http->gconf.http1.upgrade_to_http2 = 0; /* HTTP/2 comes with TLS (ALPN) */
    http->gconf.http2.idle_timeout = lim->request_timeout_ms;
    host = h2o_config_register_host(&http->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (struct api_handler *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->http = http;
    filter = (struct error_filter *)h2o_create_filter(&host->fallback_path, sizeof(*filter));
    filter->super.on_setup_ostream = error_filter_setup;
    filter->http = http;
    if (orc_api_add_metrics(api, orc_api_streams_metrics, api) < 0) {
        orc_httpd_free(http);
        return ORC_ENOMEM;
    }
    *out = http;
    return 0;
}

void orc_httpd_free(struct orc_httpd *http)
{
    if (http == NULL)
        return;
    if (http->ctx_ready) /* started and never shut down: a caller's mistake, but no leak */
        h2o_context_dispose(&http->ctx);
    h2o_config_dispose(&http->gconf);
    if (http->accept_ctx.ssl_ctx)
        SSL_CTX_free(http->accept_ctx.ssl_ctx);
    orc_free(http->spare);
    orc_free(http);
}

/* ---- connections --------------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *handle)
{
    struct orc_httpd_conn *conn = (struct orc_httpd_conn *)handle;
    struct orc_httpd *http = conn->http;

    if (conn->linked) {
        *conn->prev = conn->next;
        if (conn->next != NULL)
            conn->next->prev = conn->prev;
        http->nconns--;
    }
    if (conn->spare) {
        memset(conn, 0, sizeof(*conn));
        conn->spare = true;
        http->spare = conn;
    } else {
        orc_free(conn);
    }
    maybe_finish(http);
}

static void sock_disposed(void *data)
{
    struct orc_httpd_conn *conn = data;

    conn->sock = NULL;
}

/* Half-closes both ways: h2o then reads EOF (or fails its write) and closes
 * the connection itself. */
static void conn_shutdown(struct orc_httpd_conn *conn)
{
    uv_os_fd_t fd;

    if (conn->shut || conn->sock == NULL)
        return;
    conn->shut = true;
    if (uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0)
        shutdown(fd, SHUT_RDWR);
}

void orc_httpd_conn_abort(struct orc_httpd_conn *conn)
{
    conn_shutdown(conn);
}

void orc_httpd_conn_set_stream(struct orc_httpd_conn *conn, orc_api_stream_t *s)
{
    int sndbuf = ORC_API_STREAM_SNDBUF;
    uv_os_fd_t fd;

    conn->stream = s;
    /* the kernel's share of what a client has not read stays bounded too */
    if (s != NULL && conn->sock != NULL && uv_fileno((uv_handle_t *)&conn->tcp, &fd) == 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

/* True when the client closed (or reset) its end: h2o does not read while a
 * response is in progress, so a stream would not notice before its next
 * write. Data waiting (a pipelined request) means it is still there. */
static bool conn_peer_closed(struct orc_httpd_conn *conn)
{
    uv_os_fd_t fd;
    char c;
    ssize_t n;

    if (conn->shut || conn->sock == NULL || uv_fileno((uv_handle_t *)&conn->tcp, &fd) != 0)
        return false;
    n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void conn_reject(struct orc_httpd *http, struct orc_httpd_conn *conn)
{
#define REJECT_BODY                                                                                \
    "{\"code\":503,\"title\":\"Service Unavailable\",\"message\":\"too many open connections\"}"
    static char response[] = "HTTP/1.1 503 Service Unavailable\r\n"
                             "Content-Type: application/json\r\n"
                             "Connection: close\r\n"
                             "Content-Length: 80\r\n\r\n" REJECT_BODY;
    _Static_assert(sizeof(REJECT_BODY) - 1 == 80, "Content-Length of the 503 body");
    uv_buf_t buf = uv_buf_init(response, sizeof(response) - 1);
    uint64_t now = uv_now(http->loop);

    http->api->metrics.connections_rejected++;
    if (now - http->last_reject_log >= 1000 || http->last_reject_log == 0) {
        orc_log(ORC_LOG_WARN, "http", "refusing connections: %zu open (limits.max_connections %u)",
                http->nconns, http->api->cfg->limits.max_connections);
        http->last_reject_log = now;
    }
    if (http->accept_ctx.ssl_ctx == NULL) /* over TLS the client could not read it */
        uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
    uv_close((uv_handle_t *)&conn->tcp, conn_closed);
#undef REJECT_BODY
}

static void conn_start(struct orc_httpd *http, struct orc_httpd_conn *conn)
{
    conn->linked = true;
    conn->next = http->conns;
    conn->prev = &http->conns;
    if (http->conns != NULL)
        http->conns->prev = &conn->next;
    http->conns = conn;
    http->nconns++;
    conn->last_progress = uv_now(http->loop);
    uv_tcp_nodelay(&conn->tcp, 1);
    conn->sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, conn_closed);
    conn->sock->on_close.cb = sock_disposed;
    conn->sock->on_close.data = conn;
    h2o_accept(&http->accept_ctx, conn->sock);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct orc_httpd *http = ((struct orc_httpd_listener *)server)->http;
    struct orc_httpd_conn *conn;

    if (status < 0) {
        orc_log(ORC_LOG_WARN, "http", "accept: %s", uv_strerror(status));
        return;
    }
    conn = orc_calloc(1, sizeof(*conn));
    if (conn == NULL && http->spare != NULL) { /* accept it anyway, to refuse it */
        conn = http->spare;
        http->spare = NULL;
    }
    if (conn == NULL) { /* the listener pauses until an accept succeeds */
        orc_log(ORC_LOG_ERROR, "http", "accept: out of memory");
        return;
    }
    conn->http = http;
    uv_tcp_init(http->loop, &conn->tcp);
    if (uv_accept(server, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, conn_closed);
        return;
    }
    http->api->metrics.connections_total++;
    if (conn->spare || http->state != HTTP_RUNNING ||
        http->nconns >= http->api->cfg->limits.max_connections)
        conn_reject(http, conn);
    else
        conn_start(http, conn);
}

/* ---- the sweep: stalled writes, and idle connections while draining ---------------------- */

static bool conn_is_idle(const struct orc_httpd_conn *conn)
{
    return conn->sock != NULL && conn->inflight == 0 && conn->sock->input->size == 0;
}

static void sweep_conn(struct orc_httpd *http, struct orc_httpd_conn *conn, uint64_t now)
{
    size_t queued = conn->tcp.write_queue_size;

    if (queued == 0 || queued != conn->last_queue) {
        conn->last_queue = queued;
        conn->last_progress = now;
    } else if (now - conn->last_progress >= http->api->cfg->limits.request_timeout_ms) {
        orc_log(ORC_LOG_WARN, "http",
                "closing a connection: its response made no progress for "
                "%llu ms (%zu bytes queued)",
                (unsigned long long)(now - conn->last_progress), queued);
        if (conn->stream != NULL)
            orc_api_stream_stalled(conn->stream); /* counts it as cut off */
        conn_shutdown(conn);
    }
    if (http->state == HTTP_DRAINING && conn_is_idle(conn))
        conn_shutdown(conn);
    if (conn->stream != NULL && conn_peer_closed(conn))
        orc_api_stream_lost(conn->stream);
}

static void on_sweep(uv_timer_t *timer)
{
    struct orc_httpd *http = timer->data;
    uint64_t now = uv_now(http->loop);

    for (struct orc_httpd_conn *c = http->conns; c != NULL; c = c->next)
        sweep_conn(http, c, now);
    maybe_finish(http);
}

/* ---- listening ---------------------------------------------------------------------------- */

static void listener_closed(uv_handle_t *handle)
{
    struct orc_httpd *http = ((struct orc_httpd_listener *)handle)->http;

    http->listeners_open--;
    maybe_finish(http);
}

static void close_listeners(struct orc_httpd *http)
{
    for (size_t i = 0; i < http->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&http->listeners[i].tcp))
            uv_close((uv_handle_t *)&http->listeners[i].tcp, listener_closed);
}

static void listener_describe(struct orc_httpd_listener *l, const orc_listen_addr_t *addr)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    l->port = addr->port;
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) == 0)
        l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    snprintf(l->url, sizeof(l->url), addr->family == AF_INET6 ? "%s://[%s]:%u" : "%s://%s:%u",
             l->http->accept_ctx.ssl_ctx ? "https" : "http", addr->host, (unsigned)l->port);
}

static int listen_one(struct orc_httpd *http, const orc_listen_addr_t *addr)
{
    struct orc_httpd_listener *l = &http->listeners[http->nlisteners];
    int rc;

    l->http = http;
    rc = uv_tcp_init(http->loop, &l->tcp);
    if (rc < 0)
        return rc;
    http->nlisteners++;
    http->listeners_open++;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&addr->addr,
                     addr->family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, HTTP_BACKLOG, on_connection);
    if (rc < 0)
        return rc;
    listener_describe(l, addr);
    return 0;
}

static void on_kick(uv_timer_t *timer)
{
    struct orc_httpd *http = timer->data;

    orc_api_streams_kick(http->api);
}

void orc_httpd_kick(struct orc_httpd *http)
{
    if (http->state != HTTP_IDLE && http->state != HTTP_CLOSED &&
        !uv_is_active((uv_handle_t *)&http->kick))
        uv_timer_start(&http->kick, on_kick, 0, 0);
}

static void timers_start(struct orc_httpd *http)
{
    uv_timer_init(http->loop, &http->sweep);
    uv_timer_init(http->loop, &http->deadline);
    uv_timer_init(http->loop, &http->kick);
    http->sweep.data = http;
    http->deadline.data = http;
    http->kick.data = http;
    uv_timer_start(&http->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_unref((uv_handle_t *)&http->sweep);
}

int orc_api_reload_tls(orc_api_t *api, char *err, size_t errlen)
{
    struct orc_httpd *http = api->http;
    SSL_CTX *fresh;
    int rc;

    if (api->cfg->tls.cert_file == NULL || http->accept_ctx.ssl_ctx == NULL)
        return orc_failf(err, errlen, ORC_ENOTSUP, "the API is not on TLS (tls.cert_file)");
    rc = orc_config_check_tls(api->cfg, err, errlen);
    if (rc < 0)
        return rc;
    fresh = orc_tls_server_ctx(api->cfg->tls.cert_file, api->cfg->tls.key_file, err, errlen);
    if (fresh == NULL)
        return ORC_EINVAL;
    /* each open connection's SSL holds a reference to the context it was accepted with */
    SSL_CTX_free(http->accept_ctx.ssl_ctx);
    http->accept_ctx.ssl_ctx = fresh;
    return 0;
}

int orc_api_start(orc_api_t *api)
{
    struct orc_httpd *http = api->http;
    const orc_config_t *cfg = api->cfg;
    int rc;

    if (http->state != HTTP_IDLE)
        return ORC_EINVAL;
    if (cfg->tls.cert_file && http->accept_ctx.ssl_ctx == NULL) {
        char err[600];
        http->accept_ctx.ssl_ctx =
            orc_tls_server_ctx(cfg->tls.cert_file, cfg->tls.key_file, err, sizeof(err));
        if (http->accept_ctx.ssl_ctx == NULL) {
            orc_log(ORC_LOG_ERROR, "http", "%s", err);
            http->state = HTTP_CLOSED;
            return ORC_EINVAL;
        }
    }
    for (size_t i = 0; i < cfg->listen_count; i++) {
        rc = listen_one(http, &cfg->listen[i]);
        if (rc < 0) {
            orc_log(ORC_LOG_ERROR, "http", "cannot listen on %s: %s", cfg->listen[i].text,
                    uv_strerror(rc));
            close_listeners(http);
            http->state = HTTP_CLOSED;
            return rc;
        }
    }
    h2o_context_init(&http->ctx, http->loop, &http->gconf);
    http->ctx_ready = true;
    http->accept_ctx.ctx = &http->ctx;
    http->accept_ctx.hosts = http->gconf.hosts;
    timers_start(http);
    http->state = HTTP_RUNNING;
    for (size_t i = 0; i < http->nlisteners; i++)
        orc_log(ORC_LOG_INFO, "http", "listening on %s", http->listeners[i].url);
    if (api->auth && (rc = orc_auth_start(api->auth)) < 0)
        orc_log(ORC_LOG_ERROR, "auth", "cannot fetch the issuers' keys: %s", orc_strerror(rc));
    return 0;
}

size_t orc_api_listener_count(const orc_api_t *api)
{
    return api->http->state == HTTP_RUNNING ? api->http->nlisteners : 0;
}

uint16_t orc_api_listener_port(const orc_api_t *api, size_t i)
{
    return i < api->http->nlisteners ? api->http->listeners[i].port : 0;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void finish(struct orc_httpd *http)
{
    http->state = HTTP_CLOSED;
    uv_close((uv_handle_t *)&http->sweep, NULL);
    uv_close((uv_handle_t *)&http->deadline, NULL);
    uv_close((uv_handle_t *)&http->kick, NULL);
    h2o_context_dispose(&http->ctx); /* its timers close on the loop */
    http->ctx_ready = false;
    orc_log(ORC_LOG_INFO, "http", "server closed");
    if (http->closed_cb != NULL)
        http->closed_cb(http->api, http->closed_data);
}

static void maybe_finish(struct orc_httpd *http)
{
    if ((http->state == HTTP_DRAINING || http->state == HTTP_FORCING) && http->nconns == 0 &&
        http->listeners_open == 0)
        finish(http);
}

static void on_deadline(uv_timer_t *timer)
{
    struct orc_httpd *http = timer->data;
    size_t busy = 0;

    if (http->state != HTTP_DRAINING)
        return;
    http->state = HTTP_FORCING;
    for (struct orc_httpd_conn *c = http->conns; c != NULL; c = c->next)
        busy += !conn_is_idle(c);
    if (busy > 0)
        orc_log(ORC_LOG_WARN, "http", "shutdown deadline: closing %zu busy connection(s)", busy);
    orc_api_cancel_deferred(http->api);
    for (struct orc_httpd_conn *c = http->conns; c != NULL; c = c->next)
        conn_shutdown(c);
    maybe_finish(http);
}

void orc_api_shutdown(orc_api_t *api, orc_api_closed_fn closed_cb, void *data)
{
    struct orc_httpd *http = api->http;

    api->draining = true;
    orc_auth_close(api->auth); /* requests waiting for keys get 503 */
    if (http->state != HTTP_RUNNING)
        return;
    http->state = HTTP_DRAINING;
    http->closed_cb = closed_cb;
    http->closed_data = data;
    orc_log(ORC_LOG_INFO, "http", "shutting down: %zu connection(s) open, deadline %llu ms",
            http->nconns, (unsigned long long)api->cfg->limits.shutdown_timeout_ms);
    close_listeners(http);
    /* Requests parsed from now on are not kept alive. Only the flag: with
     * HTTP/2 off, h2o_context_request_shutdown() would merely arm an HTTP/2
     * GOAWAY timer that h2o_context_dispose() then asserts on. */
    http->ctx.shutdown_requested = 1;
    orc_api_streams_drain(api); /* each ends after what it has written */
    uv_timer_start(&http->deadline, on_deadline, api->cfg->limits.shutdown_timeout_ms, 0);
    uv_timer_start(&http->sweep, on_sweep, DRAIN_SWEEP_MS, DRAIN_SWEEP_MS);
    uv_ref((uv_handle_t *)&http->sweep);
    on_sweep(&http->sweep);
}

void orc_api_shutdown_now(orc_api_t *api)
{
    struct orc_httpd *http = api->http;

    if (http->state != HTTP_DRAINING)
        return;
    uv_timer_stop(&http->deadline);
    on_deadline(&http->deadline);
}
