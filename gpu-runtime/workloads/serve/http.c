/*
 * gpu-serve's HTTP/1.1 server (serve.h): one thread, poll() over a
 * listening socket, a self-pipe (stop, from a signal handler) and the
 * connections, every socket non-blocking. A connection reads requests into
 * a bounded buffer, answers them in order (keep-alive, pipelining), sends
 * "100 Continue" when asked, and enforces the limits: head size (431), body
 * size (413), Content-Length bodies only (411), idle and request timeouts
 * (408), a connection cap (503). After an error that ends a connection the
 * rest of the input is read and dropped for a moment ("lingering close"),
 * so that the client sees the answer rather than a reset.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../../orchestrator/base.h"
#include "serve.h"

#define MAX_HEADERS 100
#define LINGER_MS 1000
#define DRAIN_MS 1000       /* responses in flight at stop */
#define OUT_HIGH (1u << 20) /* stop reading while this much is unsent */

enum conn_state { C_OPEN, C_CLOSING, C_LINGER, C_DEAD };

struct conn {
    int fd;
    enum conn_state state;
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    int64_t deadline;
    bool continued; /* "100 Continue" sent for the request being read */
    bool eof;       /* the peer will send nothing more */
};

struct gs_server {
    struct gs_app *app;
    struct gs_config c;
    int lfd;
    int wake[2];
    volatile sig_atomic_t stop;
    struct conn **conns;
    uint32_t n_conns;
    struct pollfd *pfd;
    uint16_t port;
};

/* What the head of one request says. */
struct head {
    char method[17];
    char path[2048];
    char query[2048];
    char content_type[128];
    int minor;       /* HTTP/1.minor */
    size_t head_len; /* bytes up to the end of the blank line */
    uint64_t body_len;
    bool has_length, keep_alive, expect_continue, is_head;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

/* ---- output ---- */

static bool out_append(struct conn *k, const char *data, size_t n)
{
    if (k->out_off > 0 && k->out_off == k->out_len)
        k->out_off = k->out_len = 0;
    if (k->out_len + n > k->out_cap) {
        size_t cap = k->out_cap ? k->out_cap : 4096;
        char *p;

        while (cap < k->out_len + n)
            cap *= 2;
        p = orc_realloc(k->out, cap);
        if (p == NULL)
            return false;
        k->out = p;
        k->out_cap = cap;
    }
    memcpy(k->out + k->out_len, data, n);
    k->out_len += n;
    return true;
}

/* Queues a response; close: "Connection: close" and no more requests. */
static void send_response(struct conn *k, int status, const char *body, const char *allow,
                          bool head_only, bool close)
{
    static const char oom[] = "{\"status\":\"error\",\"message\":\"out of memory\"}";
    char h[512];
    size_t blen;
    int n;

    if (body == NULL) {
        status = status == 200 ? 500 : status;
        body = oom;
    }
    blen = strlen(body);
    n = snprintf(h, sizeof(h),
                 "HTTP/1.1 %d %s\r\nServer: gpu-serve/" GPU_SERVE_VERSION "\r\n"
                 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n%s%s%sConnection: %s\r\n\r\n",
                 status, status_text(status), blen, allow ? "Allow: " : "", allow ? allow : "",
                 allow ? "\r\n" : "", close ? "close" : "keep-alive");
    if (!out_append(k, h, (size_t)n) || (!head_only && !out_append(k, body, blen)))
        k->state = C_DEAD;
    else if (close)
        k->state = C_CLOSING;
}

static void send_error(struct conn *k, int status, const char *msg)
{
    char *body = gs_error_body(msg);

    send_response(k, status, body, NULL, false, true);
    orc_free(body);
}

/* ---- parsing the head of a request ---- */

static bool is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Fills why and returns status, for `return bad(...)` in the parsers. */
static int bad(char *why, size_t wl, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(char *why, size_t wl, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, wl, fmt, ap);
    va_end(ap);
    return status;
}

/* True if the comma-separated list v has token t (case-insensitive). */
static bool has_token(const char *v, const char *t)
{
    const size_t tl = strlen(t);

    while (*v) {
        size_t n;

        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        n = strcspn(v, ", \t");
        if (n == tl && strncasecmp(v, t, tl) == 0)
            return true;
        v += n;
    }
    return false;
}

/* A header's value, without the spaces around it, into out. */
static void header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    n = n < cap - 1 ? n : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* 0, or the status to answer with (why filled). */
static int parse_header(struct head *h, const char *line, size_t n, char *why, size_t wl)
{
    const char *colon = memchr(line, ':', n);
    char v[256];
    size_t nl;

    if (n && (line[0] == ' ' || line[0] == '\t'))
        return bad(why, wl, 400, "folded header lines are not allowed");
    if (colon == NULL || colon == line)
        return bad(why, wl, 400, "malformed header line");
    nl = (size_t)(colon - line);
    for (size_t i = 0; i < nl; i++)
        if (!is_tchar((unsigned char)line[i]))
            return bad(why, wl, 400, "malformed header name");
    for (size_t i = nl + 1; i < n; i++)
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            return bad(why, wl, 400, "control character in a header value");
    header_value(colon + 1, n - nl - 1, v, sizeof(v));
    if (nl == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        char *end;
        unsigned long long len;

        if (v[0] < '0' || v[0] > '9' || strlen(v) > 19)
            return bad(why, wl, 400, "Content-Length is not a number");
        len = strtoull(v, &end, 10);
        if (*end || (h->has_length && len != h->body_len))
            return bad(why, wl, 400, "bad or conflicting Content-Length");
        h->body_len = len;
        h->has_length = true;
    } else if (nl == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        if (strcasecmp(v, "identity") != 0)
            return bad(why, wl, 411, "Transfer-Encoding %s is not supported: send Content-Length",
                       v);
    } else if (nl == 10 && strncasecmp(line, "Connection", 10) == 0) {
        if (has_token(v, "close"))
            h->keep_alive = false;
        else if (has_token(v, "keep-alive"))
            h->keep_alive = true;
    } else if (nl == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
        header_value(colon + 1, n - nl - 1, h->content_type, sizeof(h->content_type));
    } else if (nl == 6 && strncasecmp(line, "Expect", 6) == 0) {
        if (strcasecmp(v, "100-continue") != 0)
            return bad(why, wl, 417, "Expect: %s is not supported", v);
        h->expect_continue = true;
    }
    return 0;
}

/* The request line: METHOD SP TARGET SP HTTP/1.x */
static int parse_request_line(struct head *h, const char *line, size_t n, char *why, size_t wl)
{
    const char *sp1 = memchr(line, ' ', n), *sp2, *target;
    size_t tn, mn;

    if (sp1 == NULL || sp1 == line || (size_t)(sp1 - line) >= sizeof(h->method))
        return bad(why, wl, 400, "malformed request line");
    mn = (size_t)(sp1 - line);
    for (size_t i = 0; i < mn; i++)
        if (!is_tchar((unsigned char)line[i]))
            return bad(why, wl, 400, "malformed method");
    memcpy(h->method, line, mn);
    h->method[mn] = '\0';
    target = sp1 + 1;
    sp2 = memchr(target, ' ', n - mn - 1);
    if (sp2 == NULL || (size_t)(line + n - sp2) != 9 || strncmp(sp2 + 1, "HTTP/", 5) != 0)
        return bad(why, wl, 400, "malformed request line");
    if (sp2[6] != '1' || sp2[7] != '.' || (sp2[8] != '0' && sp2[8] != '1'))
        return bad(why, wl, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    h->minor = sp2[8] - '0';
    h->keep_alive = h->minor == 1;
    tn = (size_t)(sp2 - target);
    if (tn > 7 && strncasecmp(target, "http://", 7) == 0) { /* absolute form: drop the authority */
        const char *slash = memchr(target + 7, '/', tn - 7);

        tn = slash ? tn - (size_t)(slash - target) : 1;
        target = slash ? slash : "/";
    }
    if (tn == 0 || target[0] != '/' || tn >= sizeof(h->path))
        return bad(why, wl, 400, "%s",
                   tn >= sizeof(h->path) ? "request target too long" : "the target must be a path");
    for (size_t i = 0; i < tn; i++)
        if ((unsigned char)target[i] <= 0x20 || (unsigned char)target[i] >= 0x7f)
            return bad(why, wl, 400, "bad character in the request target");
    const char *q = memchr(target, '?', tn);
    if (q) {
        memcpy(h->query, q + 1, tn - (size_t)(q - target) - 1);
        h->query[tn - (size_t)(q - target) - 1] = '\0';
        tn = (size_t)(q - target);
    }
    memcpy(h->path, target, tn);
    h->path[tn] = '\0';
    h->is_head = strcmp(h->method, "HEAD") == 0;
    return 0;
}

/* Parses the head in buf: 0 done; ORC_EAGAIN needs more; > 0 a status. */
static int parse_head(struct head *h, const char *buf, size_t len, size_t max, char *why, size_t wl)
{
    const char *end = NULL, *p = buf;
    int status, count = 0;

    memset(h, 0, sizeof(*h));
    for (size_t i = 0; i + 3 < len && i < max; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i;
            break;
        }
    if (end == NULL) {
        if (len >= max)
            return bad(why, wl, 431, "request head over %zu bytes", max);
        return ORC_EAGAIN;
    }
    h->head_len = (size_t)(end - buf) + 4;
    while (p <= end) {
        const char *eol = p == end ? end : memchr(p, '\r', (size_t)(end - p) + 1);
        size_t n = (size_t)(eol - p);

        if (eol == NULL || eol[1] != '\n' || memchr(p, '\n', n))
            return bad(why, wl, 400, "lines must end with CRLF");
        status = p == buf ? parse_request_line(h, p, n, why, wl) : parse_header(h, p, n, why, wl);
        if (status)
            return status;
        if (p != buf && ++count > MAX_HEADERS)
            return bad(why, wl, 431, "more than %d headers", MAX_HEADERS);
        if (eol == end)
            break;
        p = eol + 2;
    }
    return 0;
}

/* ---- connections ---- */

static void conn_free(struct conn *k)
{
    if (k->fd >= 0)
        close(k->fd);
    orc_free(k->in);
    orc_free(k->out);
    orc_free(k);
}

static void consume(struct conn *k, size_t n)
{
    memmove(k->in, k->in + n, k->in_len - n);
    k->in_len -= n;
}

/* Answers the complete requests in k's buffer, in order. */
static void conn_process(struct gs_server *s, struct conn *k)
{
    char why[160];

    while (k->state == C_OPEN && k->out_len - k->out_off < OUT_HIGH && k->in_len > 0) {
        struct head h;
        int status = parse_head(&h, k->in, k->in_len, s->c.max_header, why, sizeof(why));

        if (status == ORC_EAGAIN)
            break;
        if (status > 0) {
            send_error(k, status, why);
            break;
        }
        if (h.body_len > s->c.max_body) {
            snprintf(why, sizeof(why), "body of %llu bytes; at most %zu",
                     (unsigned long long)h.body_len, s->c.max_body);
            send_error(k, 413, why);
            break;
        }
        if (k->in_len - h.head_len < h.body_len) {
            if (h.expect_continue && !k->continued && h.minor == 1) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

                k->state = out_append(k, cont, sizeof(cont) - 1) ? k->state : C_DEAD;
                k->continued = true;
            }
            break;
        }
        struct gs_request req = {h.method,
                                 h.path,
                                 h.query[0] ? h.query : NULL,
                                 h.content_type[0] ? h.content_type : NULL,
                                 k->in + h.head_len,
                                 (size_t)h.body_len};
        struct gs_response resp;

        gs_handle(s->app, &req, &resp);
        send_response(k, resp.status, resp.body, resp.allow, h.is_head, !h.keep_alive);
        orc_free(resp.body);
        consume(k, h.head_len + (size_t)h.body_len);
        k->continued = false;
        k->deadline = now_ms() + (k->in_len ? s->c.request_ms : s->c.idle_ms);
    }
}

static void conn_read(struct gs_server *s, struct conn *k)
{
    const size_t limit = s->c.max_header + s->c.max_body + 1;
    bool was_idle = k->in_len == 0;

    for (;;) {
        if (k->state == C_LINGER) {
            char sink[4096];
            ssize_t n = recv(k->fd, sink, sizeof(sink), 0);

            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                k->state = C_DEAD;
            if (n <= 0)
                return;
            continue;
        }
        if (k->in_len == k->in_cap) {
            size_t cap = k->in_cap ? k->in_cap * 2 : 8192;
            char *p;

            if (k->in_cap >= limit)
                return; /* full: the parser answers 413/431 */
            cap = cap > limit ? limit : cap;
            p = orc_realloc(k->in, cap);
            if (p == NULL) {
                k->state = C_DEAD;
                return;
            }
            k->in = p;
            k->in_cap = cap;
        }
        ssize_t n = recv(k->fd, k->in + k->in_len, k->in_cap - k->in_len, 0);

        if (n > 0) {
            k->in_len += (size_t)n;
            if (was_idle) {
                k->deadline = now_ms() + s->c.request_ms;
                was_idle = false;
            }
            continue;
        }
        if (n == 0)
            k->eof = true;
        else if (errno == EINTR)
            continue;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            k->state = C_DEAD;
        return;
    }
}

static void conn_write(struct conn *k)
{
    while (k->out_off < k->out_len) {
        ssize_t n = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);

        if (n > 0) {
            k->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        k->state = C_DEAD;
        return;
    }
    k->out_off = k->out_len = 0;
    if (k->state == C_CLOSING) { /* answered: drop what else comes for a moment */
        shutdown(k->fd, SHUT_WR);
        k->state = C_LINGER;
        k->deadline = now_ms() + LINGER_MS;
    }
}

/* After I/O: answer, flush, and decide whether the connection lives on. */
static void conn_step(struct gs_server *s, struct conn *k, int64_t now)
{
    if (k->state == C_OPEN)
        conn_process(s, k);
    if (k->state == C_OPEN && k->eof)
        k->state = k->out_len > k->out_off ? C_CLOSING : C_DEAD;
    if (k->state == C_OPEN && k->in_len >= s->c.max_header + s->c.max_body + 1 &&
        k->out_len == k->out_off)
        send_error(k, 413, "request too large");
    if (k->state == C_OPEN || k->state == C_CLOSING)
        conn_write(k);
    if (k->state != C_DEAD && now >= k->deadline) {
        if (k->state == C_OPEN && k->in_len > 0 && k->out_len == k->out_off) {
            send_error(k, 408, "the request did not arrive in time");
            conn_write(k);
            k->deadline = now + LINGER_MS;
        } else {
            k->state = C_DEAD;
        }
    }
}

/* ---- the server ---- */

static int bind_listen(struct gs_server *s, struct gm_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    char port[8];
    int rc, one = 1, why = 0;

    snprintf(port, sizeof(port), "%u", s->c.port);
    rc = getaddrinfo(s->c.host, port, &hints, &res);
    if (rc != 0)
        return gm_failf(err, ORC_EINVAL, "--host %s: %s", s->c.host, gai_strerror(rc));
    s->lfd = -1;
    for (struct addrinfo *a = res; a && s->lfd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            why = errno;
            continue;
        }
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 128) < 0) {
            why = errno;
            close(fd);
            continue;
        }
        s->lfd = fd;
    }
    freeaddrinfo(res);
    if (s->lfd < 0)
        return gm_failf(err, -why, "cannot listen on %s:%u: %s", s->c.host, s->c.port,
                        why == EADDRINUSE ? "the port is in use" : strerror(why));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    getsockname(s->lfd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    fcntl(s->lfd, F_SETFL, fcntl(s->lfd, F_GETFL) | O_NONBLOCK);
    return 0;
}

int gs_server_open(struct gs_server **out, struct gs_app *app, const struct gs_config *c,
                   struct gm_error *err)
{
    struct gs_server *s = orc_calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL)
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    s->app = app;
    s->c = *c;
    s->lfd = s->wake[0] = s->wake[1] = -1;
    app->max_rows = c->max_rows;
    s->conns = orc_calloc(c->max_conns ? c->max_conns : 1, sizeof(*s->conns));
    s->pfd = orc_calloc((size_t)c->max_conns + 2, sizeof(*s->pfd));
    if (s->conns == NULL || s->pfd == NULL) {
        gs_server_free(s);
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    }
    if (pipe(s->wake) < 0) {
        rc = gm_failf(err, -errno, "pipe: %s", strerror(errno));
        gs_server_free(s);
        return rc;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(s->wake[i], F_SETFL, fcntl(s->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(s->wake[i], F_SETFD, FD_CLOEXEC);
    }
    rc = bind_listen(s, err);
    if (rc < 0) {
        gs_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

uint16_t gs_server_port(const struct gs_server *s)
{
    return s->port;
}

void gs_server_stop(struct gs_server *s)
{
    int saved = errno;
    ssize_t n;

    s->stop = 1;
    n = write(s->wake[1], "x", 1);
    (void)n;
    errno = saved;
}

static void accept_all(struct gs_server *s)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept(s->lfd, NULL, NULL), one = 1;
        struct conn *k;

        if (fd < 0)
            return;
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        k = s->n_conns < s->c.max_conns ? orc_calloc(1, sizeof(*k)) : NULL;
        if (k == NULL) { /* full: say so, without waiting for the request */
            static const char busy[] =
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                "Content-Length: 61\r\nConnection: close\r\n\r\n"
                "{\"status\":\"error\",\"message\":\"too many connections, retry\"}\n";
            ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL);

            (void)n;
            close(fd);
            continue;
        }
        k->fd = fd;
        k->state = C_OPEN;
        k->deadline = now_ms() + s->c.idle_ms;
        s->conns[s->n_conns++] = k;
    }
}

/* Polls once (at most timeout ms) and handles what is ready. */
static int serve_once(struct gs_server *s, bool accepting, int timeout)
{
    int64_t now = now_ms(), next = now + timeout;
    nfds_t n = 0;
    int rc;

    s->pfd[n++] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
    s->pfd[n++] = (struct pollfd){.fd = accepting ? s->lfd : -1, .events = POLLIN};
    for (uint32_t i = 0; i < s->n_conns; i++) {
        struct conn *k = s->conns[i];
        short ev = 0;

        if (k->state == C_LINGER ||
            (k->state == C_OPEN && !k->eof && k->out_len - k->out_off < OUT_HIGH))
            ev |= POLLIN;
        if (k->out_len > k->out_off)
            ev |= POLLOUT;
        s->pfd[n++] = (struct pollfd){.fd = k->fd, .events = ev};
        next = k->deadline < next ? k->deadline : next;
    }
    rc = poll(s->pfd, n, next > now ? (int)(next - now) : 0);
    if (rc < 0)
        return errno == EINTR ? 0 : -errno;
    if (s->pfd[0].revents) {
        char buf[64];

        while (read(s->wake[0], buf, sizeof(buf)) > 0)
            ;
    }
    if (s->pfd[1].revents & POLLIN)
        accept_all(s);
    now = now_ms();
    for (uint32_t i = 0; i < s->n_conns; i++) {
        struct conn *k = s->conns[i];
        short re = i + 2 < n ? s->pfd[i + 2].revents : 0;

        if (re & (POLLIN | POLLHUP | POLLERR))
            conn_read(s, k);
        conn_step(s, k, now);
        if (k->state == C_DEAD) {
            conn_free(k);
            s->conns[i] = s->conns[--s->n_conns]; /* its pfd slot is stale: re-step next time */
            if (i < s->n_conns)
                s->pfd[i + 2] = (struct pollfd){.fd = -1};
            i--;
        }
    }
    return 0;
}

int gs_server_run(struct gs_server *s)
{
    int64_t until;
    int rc = 0;

    while (!s->stop && rc == 0)
        rc = serve_once(s, true, 1000);
    /* stopping: no new connections or requests; let answers in flight out */
    close(s->lfd);
    s->lfd = -1;
    for (uint32_t i = 0; i < s->n_conns; i++)
        if (s->conns[i]->state == C_OPEN)
            s->conns[i]->state = s->conns[i]->out_len > s->conns[i]->out_off ? C_CLOSING : C_DEAD;
    until = now_ms() + DRAIN_MS;
    while (s->n_conns > 0 && now_ms() < until && rc == 0) {
        for (uint32_t i = 0; i < s->n_conns; i++)
            if (s->conns[i]->state == C_LINGER)
                s->conns[i]->state = C_DEAD;
        rc = serve_once(s, false, 50);
    }
    return rc;
}

void gs_server_free(struct gs_server *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->n_conns; i++)
        conn_free(s->conns[i]);
    if (s->lfd >= 0)
        close(s->lfd);
    for (int i = 0; i < 2; i++)
        if (s->wake[i] >= 0)
            close(s->wake[i]);
    orc_free(s->conns);
    orc_free(s->pfd);
    orc_free(s);
}
