/*
 * Service readiness on the local site (docs/local-site.md, "Readiness"):
 * start_workload of a service and start of a node call back only once the
 * service is ready. A wait (struct local_ready) belongs to one op and one
 * workload. It checks on host timers, 20 ms first, doubling up to 100 ms:
 *   - a service with a port (its request's, or the node's for the service
 *     that owns it: the workload "main", else the node's first service): a
 *     uv_tcp connect to 127.0.0.1:PORT, never blocking; ready when it
 *     succeeds while the workload runs, and, when the request named a
 *     ready_path, once GET ready_path then answers 2xx (HTTP/1.0, one
 *     request per connection, 2 s per attempt);
 *   - any other service (no port, or a port another workload of the node
 *     answers on): ready once its process has stayed up ready_settle_ms;
 *   - the process ends first: the wait fails with its status and the tail
 *     of its log (ORC_EDRIVER);
 *   - ready_timeout_ms passes: the wait fails naming the port and the time
 *     waited (UV_ETIMEDOUT);
 *   - the workload is stopped or deleted meanwhile: ORC_ECONFLICT; cancel
 *     and site close: ORC_ECANCELED.
 * A wait's memory lives until its TCP handle has closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local.h"

#define READY_FIRST_MS 20u
#define READY_MAX_MS 100u
#define READY_ATTEMPT_MS 2000 /* one connect + GET at most */

/* struct local_ready.last: what the last attempt got (> 0: an HTTP status) */
#define LAST_NONE 0
#define LAST_REFUSED (-1)
#define LAST_NO_ANSWER (-2)

struct local_ready {
    struct local *s;
    struct lop *lo;            /* NULL once ended */
    struct local_wl *w;        /* NULL once ended */
    struct local_ready *lnext; /* lo's waits (lo->work) */
    struct local_ready *wnext; /* w->waiters */
    uint64_t timer;            /* host timer: the next check */
    uint64_t delay_ms;
    int64_t since_ms;
    uint16_t port; /* 0: settle time */
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wreq;
    int64_t attempt_ms; /* when the current attempt began */
    int last;           /* LAST_*, or the last HTTP status */
    bool tcp_open;      /* initialised, its close callback has not run */
    bool done;          /* ended: freed once tcp is closed */
    size_t rlen;
    char resp[128]; /* the start of an HTTP answer */
    char req[1200]; /* GET ready_path */
};

/* ---- the log's tail --------------------------------------------------------------- */

void local_log_tail(struct local *s, const struct local_wl *w, char *buf, size_t max)
{
    char *path = local_printf(s, "%s/%s/%s.log", s->work_dir, w->node->name, w->id);
    struct stat st;
    ssize_t n = 0;
    int fd;

    buf[0] = '\0';
    if (path == NULL || max < 2)
        goto out;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) == 0) {
        off_t from = st.st_size > (off_t)(max - 1) ? st.st_size - (off_t)(max - 1) : 0;
        n = pread(fd, buf, max - 1, from);
    }
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    while (n > 0 && buf[n - 1] == ' ')
        buf[--n] = '\0';
out:
    s->host->free(path);
}

/* ---- a wait's life ------------------------------------------------------------------ */

static void ready_closed(uv_handle_t *h)
{
    struct local_ready *rd = h->data;
    struct local *s = rd->s;

    s->handles--;
    rd->tcp_open = false;
    if (rd->done) {
        s->host->free(rd);
        local_close_check(s); /* last */
    }
}

static void tcp_close(struct local_ready *rd)
{
    if (rd->tcp_open && !uv_is_closing((uv_handle_t *)&rd->tcp))
        uv_close((uv_handle_t *)&rd->tcp, ready_closed);
}

static void unlink_wl(struct local_ready *rd)
{
    struct local_ready **pp;

    if (rd->w == NULL)
        return;
    for (pp = &rd->w->waiters; *pp != NULL && *pp != rd; pp = &(*pp)->wnext)
        ;
    if (*pp == rd)
        *pp = rd->wnext;
    rd->w = NULL;
    rd->wnext = NULL;
}

static void unlink_lo(struct local_ready *rd)
{
    struct local_ready **pp;

    if (rd->lo == NULL)
        return;
    for (pp = (struct local_ready **)&rd->lo->work; *pp != NULL && *pp != rd; pp = &(*pp)->lnext)
        ;
    if (*pp == rd)
        *pp = rd->lnext;
    if (rd->lo->waiting > 0)
        rd->lo->waiting--;
    rd->lo = NULL;
    rd->lnext = NULL;
}

/* Ends a wait: no callback of its own; freed now or after its TCP close. */
static void ready_end(struct local_ready *rd)
{
    struct local *s = rd->s;

    if (rd->timer != 0)
        s->host->timer_stop(s->host, rd->timer);
    rd->timer = 0;
    unlink_wl(rd);
    unlink_lo(rd);
    rd->done = true;
    if (rd->tcp_open)
        tcp_close(rd); /* a pending connect is called back with UV_ECANCELED first */
    else
        s->host->free(rd);
}

/* Ends every wait of lo (lo->work). */
static void end_all(struct lop *lo)
{
    while (lo->work != NULL)
        ready_end(lo->work);
    lo->waiting = 0;
}

/* rd failed: op->error is written; every wait of its op ends, the op fails. */
static void ready_fail(struct local_ready *rd, int status)
{
    struct lop *lo = rd->lo;

    end_all(lo);
    lop_finish(lo, status);
}

static void ready_ok(struct local_ready *rd)
{
    struct lop *lo = rd->lo;
    struct local_wl *w = rd->w;

    ready_end(rd);
    if (lo->waiting == 0)
        local_ready_done(lo, w);
}

/* ---- checks ---------------------------------------------------------------------------- */

static void ready_tick(void *arg);

static int arm(struct local_ready *rd, uint64_t delay_ms)
{
    struct local *s = rd->s;

    rd->timer = s->host->timer_start(s->host, delay_ms, ready_tick, rd);
    return rd->timer != 0 ? 0 : ORC_ENOMEM;
}

/* ---- a probe: connect, then GET ready_path when there is one ---------------------------- */

/* "HTTP/1.1 200 OK" -> 200; 0 when it is no status line. */
static int status_code(const char *line)
{
    int major, minor, code;

    if (sscanf(line, "HTTP/%d.%d %3d", &major, &minor, &code) != 3 || code < 100 || code > 999)
        return 0;
    return code;
}

static void http_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct local_ready *rd = h->data;

    (void)hint;
    *buf = uv_buf_init(rd->resp + rd->rlen, (unsigned)(sizeof(rd->resp) - 1 - rd->rlen));
}

static void http_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct local_ready *rd = st->data;
    int code;

    (void)buf;
    if (rd->done || nread == 0)
        return;
    if (nread > 0) {
        rd->rlen += (size_t)nread;
        rd->resp[rd->rlen] = '\0';
        if (memchr(rd->resp, '\n', rd->rlen) == NULL && rd->rlen < sizeof(rd->resp) - 1)
            return; /* the status line is not complete yet */
    }
    code = status_code(rd->resp);
    if (code != 0)
        rd->last = code;
    if (code >= 200 && code < 300 && local_wl_live(rd->w)) {
        ready_ok(rd);
        return;
    }
    tcp_close(rd); /* not yet: the next tick asks again */
}

static void http_written(uv_write_t *req, int status)
{
    struct local_ready *rd = req->data;

    if (!rd->done && status < 0)
        tcp_close(rd);
}

static void http_send(struct local_ready *rd)
{
    int n = snprintf(rd->req, sizeof(rd->req),
                     "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\nUser-Agent: orchestrator-local\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     rd->w->ready_path, rd->port);
    uv_buf_t b = uv_buf_init(rd->req, n > 0 && (size_t)n < sizeof(rd->req) ? (unsigned)n : 0);
    int rc = b.len > 0 ? 0 : UV_EINVAL;

    rd->rlen = 0;
    rd->resp[0] = '\0';
    rd->last = LAST_NO_ANSWER;
    rd->wreq.data = rd;
    if (rc == 0)
        rc = uv_write(&rd->wreq, (uv_stream_t *)&rd->tcp, &b, 1, http_written);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&rd->tcp, http_alloc, http_read);
    if (rc < 0)
        tcp_close(rd);
}

static void ready_connected(uv_connect_t *req, int status)
{
    struct local_ready *rd = req->data;

    if (rd->done)
        return; /* ended meanwhile: the handle is closing */
    if (status < 0 || !local_wl_live(rd->w)) {
        if (rd->last <= 0)
            rd->last = LAST_REFUSED;
        tcp_close(rd); /* the next tick tries again on a fresh handle */
        return;
    }
    if (rd->w->ready_path == NULL)
        ready_ok(rd);
    else
        http_send(rd);
}

static void connect_start(struct local_ready *rd, int64_t now)
{
    struct local *s = rd->s;
    struct sockaddr_in a;
    int rc;

    if (rd->tcp_open) { /* the previous attempt is still going or closing */
        if (now - rd->attempt_ms > READY_ATTEMPT_MS)
            tcp_close(rd);
        return;
    }
    rc = uv_tcp_init(s->host->loop, &rd->tcp);
    if (rc < 0)
        return; /* tried again at the next tick */
    rd->tcp.data = rd;
    rd->conn.data = rd;
    rd->tcp_open = true;
    rd->attempt_ms = now;
    s->handles++;
    uv_ip4_addr("127.0.0.1", rd->port, &a);
    rc = uv_tcp_connect(&rd->conn, &rd->tcp, (const struct sockaddr *)&a, ready_connected);
    if (rc < 0)
        tcp_close(rd);
}

static void timed_out(struct local_ready *rd, int64_t waited)
{
    struct local_wl *w = rd->w;
    orc_op_t *op = rd->lo->op;
    unsigned long long limit = (unsigned long long)rd->s->ready_timeout_ms;
    char why[160], msg[512];

    if (rd->port == 0)
        snprintf(why, sizeof(why), "it did not stay up for %llu ms",
                 (unsigned long long)rd->s->ready_settle_ms);
    else if (w->ready_path != NULL && rd->last > 0)
        snprintf(why, sizeof(why), "GET %.80s on 127.0.0.1:%u answered HTTP %d", w->ready_path,
                 rd->port, rd->last);
    else if (w->ready_path != NULL && rd->last == LAST_NO_ANSWER)
        snprintf(why, sizeof(why), "GET %.80s on 127.0.0.1:%u got no HTTP answer", w->ready_path,
                 rd->port);
    else
        snprintf(why, sizeof(why), "nothing accepts connections on 127.0.0.1:%u", rd->port);
    snprintf(msg, sizeof(msg),
             "local: service %s of node %s not ready after %.1f s: %s (ready_timeout_ms %llu)",
             w->id, w->node->name, (double)waited / 1000.0, why, limit);
    snprintf(op->error, sizeof(op->error), "%.255s", msg);
    ready_fail(rd, UV_ETIMEDOUT);
}

/* The next check: the backoff, never past the deadline. */
static void rearm(struct local_ready *rd, int64_t left_ms)
{
    uint64_t d = rd->delay_ms;

    rd->delay_ms = d * 2 > READY_MAX_MS ? READY_MAX_MS : d * 2;
    if ((int64_t)d > left_ms)
        d = left_ms > 0 ? (uint64_t)left_ms : 1;
    if (arm(rd, d) < 0) {
        snprintf(rd->lo->op->error, sizeof(rd->lo->op->error), "local: out of memory");
        ready_fail(rd, ORC_ENOMEM);
    }
}

static void ready_tick(void *arg)
{
    struct local_ready *rd = arg;
    struct local_wl *w = rd->w;
    struct local *s = rd->s;
    int64_t now = local_now_ms(), waited = now - rd->since_ms;
    int64_t left = (int64_t)s->ready_timeout_ms - waited;

    rd->timer = 0;
    if (w->st == LOCAL_WL_FAILED) {
        snprintf(rd->lo->op->error, sizeof(rd->lo->op->error), "local: service %s of node %s: %s",
                 w->id, w->node->name, w->node->failed ? w->node->failed : "gave up");
        ready_fail(rd, ORC_EDRIVER);
        return;
    }
    if (left <= 0) {
        timed_out(rd, waited);
        return;
    }
    if (local_wl_live(w) && rd->port != 0) {
        connect_start(rd, now);
    } else if (local_wl_live(w)) {
        int64_t up = w->started_ms > 0 ? now - w->started_ms : INT64_MAX;
        if (up >= (int64_t)s->ready_settle_ms) {
            ready_ok(rd);
            return;
        }
        if ((int64_t)s->ready_settle_ms - up < (int64_t)rd->delay_ms)
            rd->delay_ms = (uint64_t)((int64_t)s->ready_settle_ms - up);
    } /* else waiting for its restart */
    rearm(rd, left);
}

/* ---- the interface -------------------------------------------------------------------------- */

uint16_t local_wl_port(const struct local_wl *w)
{
    const struct local_node *n = w->node;
    const struct local_wl *owner = NULL;

    if (w->port != 0)
        return w->port;
    for (const struct local_wl *o = n->wls; o != NULL; o = o->next) {
        if (!o->service)
            continue;
        if (strcmp(o->id, "main") == 0) {
            owner = o;
            break;
        }
        owner = o; /* the list is newest first: the last one is the first started */
    }
    return owner == w ? n->port : 0;
}

int local_ready_wait(struct lop *lo, struct local_wl *w)
{
    struct local *s = lo->s;
    struct local_ready *rd = s->host->calloc(1, sizeof(*rd));

    if (rd == NULL)
        return ORC_ENOMEM;
    rd->s = s;
    rd->since_ms = local_now_ms();
    rd->port = local_wl_port(w);
    rd->delay_ms = READY_FIRST_MS;
    if (arm(rd, 0) < 0) {
        s->host->free(rd);
        return ORC_ENOMEM;
    }
    rd->lo = lo;
    rd->w = w;
    rd->lnext = lo->work;
    lo->work = rd;
    lo->waiting++;
    rd->wnext = w->waiters;
    w->waiters = rd;
    return 0;
}

void local_ready_exited(struct local_wl *w, const char *what)
{
    struct local *s = w->node->s;
    char tail[LOCAL_TAIL_MAX];

    if (w->waiters == NULL)
        return;
    local_log_tail(s, w, tail, sizeof(tail));
    while (w->waiters != NULL) {
        struct local_ready *rd = w->waiters;
        orc_op_t *op = rd->lo->op;
        int n = snprintf(op->error, sizeof(op->error),
                         "local: service %s of node %s %s before it was ready; log: ", w->id,
                         w->node->name, what);
        size_t room =
            n > 0 && (size_t)n < sizeof(op->error) ? sizeof(op->error) - (size_t)n - 1 : 0;
        size_t len = strlen(tail);

        if (room > 0) { /* the end of the log says most */
            size_t k = len > room ? room : len;
            memcpy(op->error + n, tail + len - k, k);
            op->error[(size_t)n + k] = '\0';
        }
        if (tail[0] != '\0')
            s->host->op_attr_set(op, "log_tail", tail); /* best effort */
        ready_fail(rd, ORC_EDRIVER);
    }
}

void local_ready_fail_all(struct local_wl *w, int status, const char *why)
{
    while (w->waiters != NULL) {
        struct local_ready *rd = w->waiters;
        orc_op_t *op = rd->lo->op;

        snprintf(op->error, sizeof(op->error), "local: service %s of node %s: %s", w->id,
                 w->node->name, why);
        ready_fail(rd, status);
    }
}

void local_ready_abort(struct lop *lo, int status, const char *why)
{
    snprintf(lo->op->error, sizeof(lo->op->error), "%s", why);
    end_all(lo);
    lop_finish(lo, status);
}

void local_ready_drop(struct lop *lo)
{
    end_all(lo);
}
