/*
 * Distributed training over TCP (protocol in dist.h). Sockets are
 * non-blocking and every read and write waits with poll() against a
 * deadline, so that a rank that died or hangs fails the others with a
 * message naming it instead of leaving them waiting forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../../orchestrator/base.h"
#include "dist.h"
#include "gm_bytes.h"

#define HELLO_WAIT_MS 5000 /* for a connection to say HELLO */
#define RETRY_MS 200       /* between connection attempts */
#define ABORT_WAIT_MS 1000 /* sending ERROR on the way out */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - now_ms();

    return left < 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static void set_socket_options(int fd)
{
    int one = 1, idle = 30, intvl = 10, cnt = 3;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* Waits until fd is ready for events or the deadline: 0, ORC_EAGAIN on timeout. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;

    do
        n = poll(&p, 1, remaining(deadline));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return n == 0 ? ORC_EAGAIN : 0;
}

/* Sends or receives exactly len bytes before the deadline. 0; ORC_EAGAIN on
 * timeout; ORC_EIO when the peer closed or reset; a negated errno. */
static int io_full(int fd, void *buf, size_t len, bool sending, int64_t deadline)
{
    unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = sending ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return ORC_EIO;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET || errno == EPIPE)
            return ORC_EIO; /* the peer is gone, like a close */
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        int rc = wait_fd(fd, sending ? POLLOUT : POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void gt_dist_header_encode(unsigned char *out, uint16_t type, uint32_t rank, uint32_t round,
                           uint64_t len)
{
    gm_put_u32(out, GT_DIST_MAGIC);
    gm_put_u16(out + 4, GT_DIST_PROTO);
    gm_put_u16(out + 6, type);
    gm_put_u32(out + 8, rank);
    gm_put_u32(out + 12, round);
    gm_put_u64(out + 16, len);
}

void gt_dist_hello_encode(const struct gt_config *c, size_t n_params, unsigned char *out)
{
    memset(out, 0, GT_DIST_HELLO_SIZE);
    gm_put_u32(out, c->world);
    gm_put_u32(out + 4, c->rank);
    gm_put_u64(out + 8, n_params);
    gm_put_u32(out + 16, c->inputs);
    gm_put_u32(out + 20, c->hidden);
    gm_put_u32(out + 24, c->classes);
    gm_put_u32(out + 28, c->layers);
    gm_put_u64(out + 32, c->seed);
    gm_put_u32(out + 40, c->samples);
    gm_put_u32(out + 44, c->batch);
    gm_put_u32(out + 48, c->epochs);
    gm_put_u32(out + 52, c->sync_steps);
    gm_put_f32(out + 56, c->lr);
    gm_put_u32(out + 60, (uint32_t)c->optimizer);
}

/* Sends one frame (header + payload). */
static int send_frame(int fd, uint16_t type, uint32_t rank, uint32_t round, const void *payload,
                      size_t len, int64_t deadline)
{
    unsigned char h[GT_DIST_HEADER];
    int rc;

    gt_dist_header_encode(h, type, rank, round, len);
    rc = io_full(fd, h, sizeof(h), true, deadline);
    if (rc == 0 && len > 0)
        rc = io_full(fd, (void *)payload, len, true, deadline);
    return rc;
}

struct frame {
    uint16_t type;
    uint32_t rank, round;
    uint64_t len;
};

/* Receives one frame of type want (or ERROR) with a payload of at most max
 * bytes into buf. ERROR frames become ORC_EIO with their text in err. who
 * names the peer in messages. */
static int recv_frame(int fd, uint16_t want, unsigned char *buf, size_t max, struct frame *f,
                      int64_t deadline, const char *who, struct gm_error *err)
{
    unsigned char h[GT_DIST_HEADER];
    int rc = io_full(fd, h, sizeof(h), false, deadline);

    if (rc == ORC_EAGAIN)
        return gm_failf(err, ORC_EIO, "%s sent nothing in time (timeout)", who);
    if (rc == ORC_EIO)
        return gm_failf(err, ORC_EIO, "%s closed the connection (did it fail?)", who);
    if (rc < 0)
        return gm_failf(err, ORC_EIO, "%s: %s", who, strerror(-rc));
    if (gm_get_u32(h) != GT_DIST_MAGIC || gm_get_u16(h + 4) != GT_DIST_PROTO)
        return gm_failf(err, ORC_EIO, "%s does not speak gpu-train protocol %d", who,
                        GT_DIST_PROTO);
    f->type = gm_get_u16(h + 6);
    f->rank = gm_get_u32(h + 8);
    f->round = gm_get_u32(h + 12);
    f->len = gm_get_u64(h + 16);
    if (f->type == GT_MSG_ERROR) {
        char text[GT_DIST_ERROR_MAX + 1];
        size_t n = f->len > GT_DIST_ERROR_MAX ? GT_DIST_ERROR_MAX : (size_t)f->len;

        if (io_full(fd, text, n, false, deadline) < 0)
            n = 0;
        text[n] = '\0';
        return gm_failf(err, ORC_EIO, "%s stopped the run: %s", who, n ? text : "(no reason)");
    }
    if (f->type != want)
        return gm_failf(err, ORC_EIO, "%s sent message type %u, expected %u", who, f->type, want);
    if (f->len > max)
        return gm_failf(err, ORC_EIO, "%s sent %llu bytes, expected at most %zu", who,
                        (unsigned long long)f->len, max);
    rc = io_full(fd, buf, (size_t)f->len, false, deadline);
    if (rc < 0)
        return gm_failf(err, ORC_EIO, "%s: %s", who,
                        rc == ORC_EAGAIN ? "timed out mid-message"
                        : rc == ORC_EIO  ? "closed the connection mid-message"
                                         : strerror(-rc));
    return 0;
}

static void send_error(int fd, uint32_t rank, const char *why)
{
    size_t n = strlen(why);

    if (fd >= 0)
        (void)send_frame(fd, GT_MSG_ERROR, rank, 0, why,
                         n > GT_DIST_ERROR_MAX ? GT_DIST_ERROR_MAX : n, now_ms() + ABORT_WAIT_MS);
}

/* ---- rank 0: listening and the handshake ---- */

/* A listening socket on addr, or -1 with *why = errno. */
static int bind_one(const struct sockaddr *addr, socklen_t len, int backlog, int *why)
{
    int one = 1, zero = 0, fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *why = errno;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, addr, len) < 0 || listen(fd, backlog) < 0) {
        *why = errno;
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static int listen_on(struct gt_dist *d, const struct gt_config *c, struct gm_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_port = htons(c->master_port)};
    struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_port = htons(c->master_port)};
    int fd = -1, why = EADDRNOTAVAIL, backlog = (int)c->world + 8;
    char port[8];

    snprintf(port, sizeof(port), "%u", c->master_port);
    if (getaddrinfo(c->master_addr, port, &hints, &res) == 0) {
        for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next)
            fd = bind_one(a->ai_addr, a->ai_addrlen, backlog, &why);
        freeaddrinfo(res);
    }
    /* MASTER_ADDR is not one of this host's addresses (NAT, a DNS name for
     * the outside): every address */
    if (fd < 0 && why != EADDRINUSE)
        fd = bind_one((struct sockaddr *)&any6, sizeof(any6), backlog, &why);
    if (fd < 0 && why != EADDRINUSE)
        fd = bind_one((struct sockaddr *)&any4, sizeof(any4), backlog, &why);
    if (fd < 0)
        return gm_failf(err, ORC_EIO, "rank 0 cannot listen on %s: %s", d->peer,
                        why == EADDRINUSE ? "the port is in use" : strerror(why));
    d->listen_fd = fd;
    return 0;
}

/* Compares a HELLO with ours: "" when it matches, else what differs. */
static void hello_diff(const unsigned char *mine, const unsigned char *theirs, char *out,
                       size_t len)
{
    static const struct {
        int off;
        const char *name;
    } fields[] = {{0, "WORLD_SIZE"},         {16, "--data-dim"}, {20, "--hidden"},
                  {24, "--classes"},         {28, "--layers"},   {32, "--seed"},
                  {40, "--samples"},         {44, "--batch"},    {48, "--epochs"},
                  {52, "--sync-steps"},      {56, "--lr"},       {60, "--optimizer"},
                  {8, "the parameter count"}};

    out[0] = '\0';
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        int o = fields[i].off, w = (o == 8 || o == 32) ? 8 : 4;

        if (memcmp(mine + o, theirs + o, (size_t)w) != 0) {
            snprintf(out, len, "%s differs from rank 0's", fields[i].name);
            return;
        }
    }
}

/* Reads the HELLO of a new connection: the rank it claims (>= 1), or < 0
 * after closing a connection that is not a fitting rank. */
static int accept_hello(struct gt_dist *d, int fd, const unsigned char *mine, int64_t deadline,
                        struct gm_error *err)
{
    unsigned char hello[GT_DIST_HELLO_SIZE];
    struct frame f = {0};
    struct gm_error e = {0};
    char diff[128];
    int64_t dl = now_ms() + HELLO_WAIT_MS < deadline ? now_ms() + HELLO_WAIT_MS : deadline;
    uint32_t r;

    if (recv_frame(fd, GT_MSG_HELLO, hello, sizeof(hello), &f, dl, "a new connection", &e) < 0 ||
        f.len != GT_DIST_HELLO_SIZE) {
        orc_log(ORC_LOG_WARN, "gpu-train", "dropped a connection that is no rank: %s",
                e.code ? e.msg : "a HELLO of the wrong size");
        close(fd);
        return ORC_EAGAIN;
    }
    r = gm_get_u32(hello + 4);
    hello_diff(mine, hello, diff, sizeof(diff));
    if (r == 0 || r >= d->world || d->fds[r] >= 0 || diff[0]) {
        if (!diff[0])
            snprintf(diff, sizeof(diff), "rank %u is %s", r,
                     r == 0 || r >= d->world ? "out of range" : "already connected");
        send_error(fd, 0, diff);
        close(fd);
        return gm_failf(err, ORC_EINVAL, "a rank claiming %u was refused: %s", r, diff);
    }
    d->fds[r] = fd;
    return (int)r;
}

static void missing_ranks(const struct gt_dist *d, char *out, size_t len)
{
    size_t o = 0;

    out[0] = '\0';
    for (uint32_t r = 1; r < d->world && o + 12 < len; r++)
        if (d->fds[r] < 0)
            o += (size_t)snprintf(out + o, len - o, "%s%u", o ? ", " : "", r);
}

static int rank0_gather(struct gt_dist *d, const struct gt_config *c, const unsigned char *mine,
                        struct gm_error *err)
{
    int64_t deadline = now_ms() + c->connect_timeout_ms;
    uint32_t joined = 0;
    char miss[256];

    while (joined + 1 < d->world) {
        int rc = wait_fd(d->listen_fd, POLLIN, deadline), fd;

        if (rc == ORC_EAGAIN) {
            missing_ranks(d, miss, sizeof(miss));
            return gm_failf(err, ORC_EIO,
                            "only %u of %u other ranks connected to %s within %u s (missing: "
                            "rank %s)",
                            joined, d->world - 1, d->peer, c->connect_timeout_ms / 1000, miss);
        }
        fd = accept(d->listen_fd, NULL, NULL);
        if (fd < 0)
            continue; /* EAGAIN, ECONNABORTED: try again */
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        set_socket_options(fd);
        rc = accept_hello(d, fd, mine, deadline, err);
        if (rc == ORC_EAGAIN)
            continue;
        if (rc < 0)
            return rc;
        joined++;
        orc_log(ORC_LOG_INFO, "gpu-train", "rank %d joined (%u of %u)", rc, joined + 1, d->world);
    }
    for (uint32_t r = 1; r < d->world; r++)
        if (send_frame(d->fds[r], GT_MSG_WELCOME, 0, 0, NULL, 0, now_ms() + HELLO_WAIT_MS) < 0)
            return gm_failf(err, ORC_EIO, "rank %u left before the start", r);
    close(d->listen_fd);
    d->listen_fd = -1;
    return 0;
}

/* ---- the other ranks: connecting ---- */

static int connect_once(const struct gt_config *c, int64_t deadline, int *out, int *why)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[8];
    int rc, fd = -1;

    snprintf(port, sizeof(port), "%u", c->master_port);
    rc = getaddrinfo(c->master_addr, port, &hints, &res);
    if (rc != 0) {
        *why = rc == EAI_SYSTEM ? errno : EHOSTUNREACH;
        return -1;
    }
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        set_socket_options(fd);
        rc = connect(fd, a->ai_addr, a->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
            socklen_t l = sizeof(rc);

            getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &l);
            errno = rc;
            rc = rc ? -1 : 0;
        } else if (rc < 0 && errno == EINPROGRESS) {
            errno = ETIMEDOUT;
        }
        if (rc < 0) {
            *why = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    *out = fd;
    return fd < 0 ? -1 : 0;
}

static int worker_join(struct gt_dist *d, const struct gt_config *c, const unsigned char *mine,
                       struct gm_error *err)
{
    int64_t start = now_ms(), deadline = start + c->connect_timeout_ms;
    struct frame f;
    int fd = -1, why = 0, rc;

    while (connect_once(c, deadline, &fd, &why) < 0) {
        if (remaining(deadline) == 0)
            return gm_failf(err, ORC_EIO, "cannot reach rank 0 at %s within %u s: %s", d->peer,
                            c->connect_timeout_ms / 1000, strerror(why));
        struct timespec ts = {.tv_sec = 0, .tv_nsec = RETRY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    d->fds[0] = fd;
    rc = send_frame(fd, GT_MSG_HELLO, c->rank, 0, mine, GT_DIST_HELLO_SIZE,
                    now_ms() + HELLO_WAIT_MS);
    if (rc < 0)
        return gm_failf(err, ORC_EIO, "rank 0 at %s dropped the connection", d->peer);
    orc_log(ORC_LOG_INFO, "gpu-train", "rank %u connected to rank 0 at %s", c->rank, d->peer);
    /* rank 0 answers once everyone joined: give it its own connect timeout */
    return recv_frame(fd, GT_MSG_WELCOME, d->buf, 0, &f,
                      now_ms() + 2 * (int64_t)c->connect_timeout_ms, "rank 0", err);
}

int gt_dist_open(struct gt_dist *d, const struct gt_config *c, size_t n_params,
                 struct gm_error *err)
{
    unsigned char mine[GT_DIST_HELLO_SIZE];
    int rc;

    memset(d, 0, sizeof(*d));
    d->listen_fd = -1;
    d->world = c->world;
    d->rank = c->rank;
    d->n_params = n_params;
    d->sync_timeout_ms = c->sync_timeout_ms;
    snprintf(d->peer, sizeof(d->peer), "%s:%u", c->master_addr, c->master_port);
    d->buf_cap = 16 + 4 * n_params;
    d->buf = orc_malloc(d->buf_cap);
    d->fds = orc_malloc(c->world * sizeof(int));
    if (c->rank == 0) {
        d->acc = orc_malloc(n_params * sizeof(double));
        d->pfd = orc_malloc(c->world * sizeof(struct pollfd));
        d->done = orc_malloc(c->world);
    }
    if (d->buf == NULL || d->fds == NULL ||
        (c->rank == 0 && (d->acc == NULL || d->pfd == NULL || d->done == NULL))) {
        gt_dist_close(d);
        return gm_failf(err, ORC_ENOMEM, "out of memory");
    }
    for (uint32_t r = 0; r < c->world; r++)
        d->fds[r] = -1;
    gt_dist_hello_encode(c, n_params, mine);
    if (c->rank == 0) {
        rc = listen_on(d, c, err);
        if (rc == 0) {
            orc_log(ORC_LOG_INFO, "gpu-train", "rank 0 of %u waiting for the others on %s",
                    c->world, d->peer);
            rc = rank0_gather(d, c, mine, err);
        }
        if (rc < 0 && err)
            gt_dist_abort(d, err->msg);
    } else {
        rc = worker_join(d, c, mine, err);
    }
    if (rc < 0)
        gt_dist_close(d);
    return rc;
}

/* ---- averaging ---- */

static void payload_encode(unsigned char *p, const float *params, size_t n, double loss,
                           uint64_t count)
{
    gm_put_f64(p, loss);
    gm_put_u64(p + 8, count);
    gm_put_f32s(p + 16, params, n);
}

static int worker_average(struct gt_dist *d, float *params, double *loss, uint64_t *count,
                          struct gm_error *err)
{
    size_t len = 16 + 4 * d->n_params;
    int64_t deadline = now_ms() + d->sync_timeout_ms;
    struct frame f;
    int rc;

    payload_encode(d->buf, params, d->n_params, *loss, *count);
    rc = send_frame(d->fds[0], GT_MSG_PARAMS, d->rank, d->round, d->buf, len, deadline);
    if (rc < 0)
        return gm_failf(err, ORC_EIO,
                        "lost the connection to rank 0 at %s in round %u (did rank 0 fail?)",
                        d->peer, d->round);
    rc = recv_frame(d->fds[0], GT_MSG_AVERAGE, d->buf, len, &f, deadline, "rank 0", err);
    if (rc < 0)
        return rc;
    if (f.len != len || f.round != d->round)
        return gm_failf(err, ORC_EIO, "rank 0 sent round %u of %llu bytes, expected round %u",
                        f.round, (unsigned long long)f.len, d->round);
    *loss = gm_get_f64(d->buf);
    *count = gm_get_u64(d->buf + 8);
    gm_get_f32s(params, d->buf + 16, d->n_params);
    return 0;
}

/* Adds the PARAMS of rank r, which has data waiting, to the sums. */
static int rank0_take(struct gt_dist *d, uint32_t r, int64_t deadline, double *loss,
                      uint64_t *count, struct gm_error *err)
{
    size_t len = 16 + 4 * d->n_params;
    struct frame f;
    char who[32];
    int rc;

    snprintf(who, sizeof(who), "rank %u", r);
    rc = recv_frame(d->fds[r], GT_MSG_PARAMS, d->buf, len, &f, deadline, who, err);
    if (rc < 0)
        return rc;
    if (f.len != len || f.round != d->round)
        return gm_failf(err, ORC_EIO, "rank %u sent round %u of %llu bytes, expected round %u", r,
                        f.round, (unsigned long long)f.len, d->round);
    *loss += gm_get_f64(d->buf);
    *count += gm_get_u64(d->buf + 8);
    for (size_t i = 0; i < d->n_params; i++)
        d->acc[i] += (double)gm_get_f32(d->buf + 16 + 4 * i);
    return 0;
}

static int rank0_average(struct gt_dist *d, float *params, double *loss, uint64_t *count,
                         struct gm_error *err)
{
    int64_t deadline = now_ms() + d->sync_timeout_ms;
    size_t len = 16 + 4 * d->n_params;
    uint32_t pending = d->world - 1;

    for (size_t i = 0; i < d->n_params; i++)
        d->acc[i] = params[i];
    memset(d->done, 0, d->world);
    while (pending > 0) { /* each rank as soon as it has sent */
        nfds_t n = 0;
        int rc;

        for (uint32_t r = 1; r < d->world; r++)
            if (!d->done[r])
                d->pfd[n++] = (struct pollfd){.fd = d->fds[r], .events = POLLIN};
        do
            rc = poll(d->pfd, n, remaining(deadline));
        while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            uint32_t r = 1;

            while (d->done[r])
                r++;
            return gm_failf(err, ORC_EIO, "rank %u sent no parameters within %u s (round %u)", r,
                            d->sync_timeout_ms / 1000, d->round);
        }
        for (uint32_t r = 1, i = 0; r < d->world; r++) {
            if (d->done[r])
                continue;
            if (d->pfd[i++].revents == 0)
                continue;
            if (rank0_take(d, r, deadline, loss, count, err) < 0)
                return ORC_EIO;
            d->done[r] = 1;
            pending--;
        }
    }
    for (size_t i = 0; i < d->n_params; i++)
        params[i] = (float)(d->acc[i] / d->world);
    payload_encode(d->buf, params, d->n_params, *loss, *count);
    for (uint32_t r = 1; r < d->world; r++)
        if (send_frame(d->fds[r], GT_MSG_AVERAGE, 0, d->round, d->buf, len, deadline) < 0)
            return gm_failf(err, ORC_EIO, "rank %u closed the connection (did it fail?)", r);
    return 0;
}

int gt_dist_average(struct gt_dist *d, float *params, double *loss_sum, uint64_t *loss_count,
                    struct gm_error *err)
{
    int rc;

    if (d->rank != 0) {
        rc = worker_average(d, params, loss_sum, loss_count, err);
    } else {
        rc = rank0_average(d, params, loss_sum, loss_count, err);
        if (rc < 0 && err)
            gt_dist_abort(d, err->msg);
    }
    d->round++;
    return rc;
}

void gt_dist_abort(struct gt_dist *d, const char *why)
{
    char msg[GT_DIST_ERROR_MAX];

    if (d == NULL || d->fds == NULL)
        return;
    snprintf(msg, sizeof(msg), "rank %u: %s", d->rank, why);
    for (uint32_t r = 0; r < d->world; r++)
        if (d->fds[r] >= 0)
            send_error(d->fds[r], d->rank, msg);
}

void gt_dist_close(struct gt_dist *d)
{
    if (d == NULL)
        return;
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    d->listen_fd = -1;
    for (uint32_t r = 0; d->fds && r < d->world; r++)
        if (d->fds[r] >= 0)
            close(d->fds[r]);
    orc_free(d->fds);
    orc_free(d->buf);
    orc_free(d->acc);
    orc_free(d->pfd);
    orc_free(d->done);
    d->fds = NULL;
    d->buf = NULL;
    d->acc = NULL;
    d->pfd = NULL;
    d->done = NULL;
}
