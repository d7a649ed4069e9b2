/*
 * SSH sessions on the loop (ssh_client.h). A session moves through
 * resolve -> TCP connect -> handshake -> host key check -> auth -> ready as
 * an explicit state machine; every libssh2 call is non-blocking and an
 * EAGAIN waits for the direction libssh2 asks for (uv_poll). The pump runs
 * on every socket event, timer and new request: it advances the session,
 * then each request on it (ssh_req.c), then delivers what finished.
 * Sessions are keyed by target and reused; an idle one closes after idle_ms;
 * a lost one fails the requests that already reached the server and retries
 * the others, with doubling backoff, up to the target's retries.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "../base.h"
#include "ssh_int.h"

#define LOG_SUB "ssh"
#define BACKOFF_START_MS 250
#define BACKOFF_MAX_MS 8000

static int libssh2_users;

static void pump(struct sconn *c);
static void on_kick(uv_timer_t *t)
{
    pump(t->data);
}
static void conn_fail(struct sconn *c, int status, bool retry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- libssh2 glue: our allocator, a recv that notes liveness --------------------- */

static LIBSSH2_ALLOC_FUNC(ssh_alloc)
{
    (void)abstract;
    return orc_malloc(count);
}

static LIBSSH2_REALLOC_FUNC(ssh_realloc)
{
    (void)abstract;
    return orc_realloc(ptr, count);
}

static LIBSSH2_FREE_FUNC(ssh_dealloc)
{
    (void)abstract;
    orc_free(ptr);
}

static LIBSSH2_RECV_FUNC(ssh_recv)
{
    struct sconn *c = *abstract;
    ssize_t n = recv(socket, buffer, length, flags);

    if (n < 0)
        return -errno;
    c->last_rx_ms = orc_now_ms();
    return n;
}

/* ---- small helpers ------------------------------------------------------------------ */

static char *dup_or_null(const char *s)
{
    return s ? orc_strdup(s) : NULL;
}

static bool has_waiting(const struct sconn *c)
{
    for (const struct sreq *r = c->reqs; r; r = r->next)
        if (!r->done)
            return true;
    return false;
}

static void client_maybe_closed(struct orc_sshc *cl)
{
    if (!cl->closing || cl->live > 0)
        return;
    if (cl->closed)
        cl->closed(cl->closed_ud);
    orc_free(cl);
    if (--libssh2_users == 0)
        libssh2_exit();
}

static void conn_free_now(struct sconn *c)
{
    struct orc_sshc *cl = c->cl;

    if (c->prev)
        c->prev->next = c->next;
    else
        cl->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    orc_free(c->key);
    orc_free(c->address);
    orc_free(c->user);
    orc_free(c->identity);
    if (c->passphrase) {
        memset(c->passphrase, 0, strlen(c->passphrase));
        orc_free(c->passphrase);
    }
    orc_free(c->known_hosts);
    orc_free(c);
    cl->live--;
    client_maybe_closed(cl);
}

static void conn_handle_closed_of(struct sconn *c)
{
    if (--c->handles == 0 && c->closing && !c->gai_busy)
        conn_free_now(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
    conn_handle_closed_of(h->data);
}

/* A socket's poll handle: freed once closed; the conn waits for it. */
static void poll_closed(uv_handle_t *h)
{
    struct sconn *c = h->data;

    orc_free(h);
    conn_handle_closed_of(c);
}

void sconn_kick(struct sconn *c)
{
    if (!c->closing)
        uv_timer_start(&c->kick, on_kick, 0, 0);
}

void sreq_finish(struct sreq *r, int status, const char *fmt, ...)
{
    va_list ap;

    if (r->done)
        return;
    r->done = true;
    r->status = status;
    if (status < 0 && fmt != NULL) {
        int n = snprintf(r->pub->error, sizeof(r->pub->error), "%s: ", r->c->where);
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof(r->pub->error))
            vsnprintf(r->pub->error + n, sizeof(r->pub->error) - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

/* ---- the session's socket ------------------------------------------------------------- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sconn *c = p->data;

    (void)events;
    if (status < 0 && c->st != SC_CONNECTING) {
        conn_fail(c, ORC_ESSH, true, "socket: %s", uv_strerror(status));
        return;
    }
    pump(c); /* a connect's own error is read from SO_ERROR */
}

static void poll_set(struct sconn *c, int events)
{
    if (!c->poll_open || events == c->poll_events)
        return;
    c->poll_events = events;
    if (events == 0)
        uv_poll_stop(c->poll);
    else
        uv_poll_start(c->poll, events, on_poll);
}

/* Tears the session down (socket, libssh2), keeping the conn and its queue. */
static void session_drop(struct sconn *c)
{
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    for (struct sreq *r = c->reqs; r; r = r->next)
        sreq_detach(r);
    if (c->agent) {
        libssh2_agent_disconnect(c->agent);
        libssh2_agent_free(c->agent);
        c->agent = NULL;
        c->agent_id = NULL;
    }
    if (c->sess) {
        libssh2_session_free(c->sess);
        c->sess = NULL;
    }
    if (c->poll_open) {
        c->poll_open = false;
        c->poll_events = 0;
        uv_close((uv_handle_t *)c->poll, poll_closed);
        c->poll = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    if (c->gai_busy)
        uv_cancel((uv_req_t *)&c->gai);
    uv_timer_stop(&c->deadline);
    uv_timer_stop(&c->keep);
    c->st = SC_DOWN;
}

/* Every request not done yet ends with status and msg. */
static void fail_all(struct sconn *c, int status, bool only_started, const char *msg)
{
    for (struct sreq *r = c->reqs; r; r = r->next)
        if (!r->done && (!only_started || r->remote_started))
            sreq_finish(r, status, "%s", msg);
}

static void on_backoff(uv_timer_t *t);

static void conn_fail(struct sconn *c, int status, bool retry, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    bool was_ready = c->st == SC_READY;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    orc_log(ORC_LOG_WARN, LOG_SUB, "%s: %s", c->where, msg);
    /* what the server already started cannot be sent again */
    fail_all(c, status, true, msg);
    session_drop(c);
    if (retry && has_waiting(c) && (was_ready || c->attempt <= c->retries)) {
        if (was_ready)
            c->attempt = 0;
        c->st = SC_BACKOFF;
        c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_START_MS;
        if (c->backoff_ms > BACKOFF_MAX_MS)
            c->backoff_ms = BACKOFF_MAX_MS;
        uv_timer_start(&c->deadline, on_backoff, was_ready ? 0 : c->backoff_ms, 0);
    } else {
        char all[240];
        snprintf(all, sizeof(all), "%s%s", msg, retry && c->attempt > 1 ? " (after retries)" : "");
        fail_all(c, status, false, all);
        c->backoff_ms = 0;
        c->attempt = 0;
    }
    sconn_kick(c); /* delivers */
}

static void on_backoff(uv_timer_t *t)
{
    struct sconn *c = t->data;

    c->st = SC_DOWN;
    pump(c);
}

static void on_deadline(uv_timer_t *t)
{
    struct sconn *c = t->data;

    conn_fail(c, ORC_ESSH, true, "connection not established within %" PRIu32 " ms",
              c->connect_timeout_ms);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res);

static void conn_start(struct sconn *c)
{
    char port[8];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc;

    c->attempt++;
    for (struct sreq *r = c->reqs; r; r = r->next)
        if (!r->done) {
            c->attempt_stats = r->stats;
            break;
        }
    if (c->attempt_stats)
        c->attempt_stats->attempts++;
    snprintf(port, sizeof(port), "%u", c->port);
    c->st = SC_RESOLVING;
    uv_timer_start(&c->deadline, on_deadline, c->connect_timeout_ms, 0);
    rc = uv_getaddrinfo(c->cl->loop, &c->gai, on_resolved, c->address, port, &hints);
    if (rc < 0) {
        conn_fail(c, ORC_ESSH, true, "resolve %s: %s", c->address, uv_strerror(rc));
        return;
    }
    c->gai_busy = true;
}

static int socket_connect(struct sconn *c, const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc;

    if (fd < 0)
        return -errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        rc = -errno;
        close(fd);
        return rc;
    }
    c->poll = orc_calloc(1, sizeof(*c->poll));
    rc = c->poll ? uv_poll_init_socket(c->cl->loop, c->poll, fd) : ORC_ENOMEM;
    if (rc < 0) {
        orc_free(c->poll);
        c->poll = NULL;
        close(fd);
        return rc;
    }
    c->fd = fd;
    c->poll->data = c;
    c->poll_open = true;
    c->handles++;
    c->poll_events = 0;
    poll_set(c, UV_WRITABLE);
    return 0;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct sconn *c = g->data;
    int rc;

    c->gai_busy = false;
    if (status == UV_ECANCELED || c->closing || c->st != SC_RESOLVING) {
        uv_freeaddrinfo(res);
        if (c->closing && c->handles == 0)
            conn_free_now(c);
        else if (!c->closing)
            sconn_kick(c); /* a request may wait for a new attempt */
        return;
    }
    if (status < 0) {
        uv_freeaddrinfo(res);
        conn_fail(c, ORC_ESSH, true, "resolve %s: %s", c->address, uv_strerror(status));
        return;
    }
    rc = socket_connect(c, res);
    uv_freeaddrinfo(res);
    if (rc < 0) {
        conn_fail(c, ORC_ESSH, true, "connect: %s", uv_strerror(rc));
        return;
    }
    c->st = SC_CONNECTING;
}

/* ---- handshake, host key, auth -------------------------------------------------------- */

static int connect_done(struct sconn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    void **abstract;

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS)
        return 0;
    if (err != 0) {
        conn_fail(c, ORC_ESSH, true, "connect: %s", strerror(err));
        return -1;
    }
    c->sess = libssh2_session_init_ex(ssh_alloc, ssh_dealloc, ssh_realloc, c);
    if (c->sess == NULL) {
        conn_fail(c, ORC_ENOMEM, false, "out of memory");
        return -1;
    }
    abstract = libssh2_session_abstract(c->sess);
    *abstract = c;
    libssh2_session_callback_set(c->sess, LIBSSH2_CALLBACK_RECV, (void *)ssh_recv);
    libssh2_session_set_blocking(c->sess, 0);
    c->last_rx_ms = orc_now_ms();
    c->st = SC_HANDSHAKE;
    return 1;
}

static int knownhost_keytype(int hostkey_type)
{
    switch (hostkey_type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
#ifdef LIBSSH2_HOSTKEY_TYPE_ECDSA_256
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
#endif
#ifdef LIBSSH2_HOSTKEY_TYPE_ED25519
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
#endif
    default:
        return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

/* "SHA256:base64" of the server's key, as ssh prints it. */
static void key_fingerprint(struct sconn *c, char *out, size_t len)
{
    const unsigned char *h =
        (const unsigned char *)libssh2_hostkey_hash(c->sess, LIBSSH2_HOSTKEY_HASH_SHA256);
    unsigned char b64[64];
    int n;

    if (h == NULL) {
        snprintf(out, len, "?");
        return;
    }
    n = EVP_EncodeBlock(b64, h, 32);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    snprintf(out, len, "SHA256:%.*s", n, b64);
}

static int trust_new_key(struct sconn *c, LIBSSH2_KNOWNHOSTS *kh, const char *key, size_t klen,
                         int type, const char *fp, char *msg, size_t msglen)
{
    char name[300];
    int rc;

    if (c->port == 22)
        snprintf(name, sizeof(name), "%s", c->address);
    else
        snprintf(name, sizeof(name), "[%s]:%u", c->address, c->port);
    rc = libssh2_knownhost_addc(kh, name, NULL, key, klen, NULL, 0,
                                LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                    knownhost_keytype(type),
                                NULL);
    if (rc == 0)
        rc = libssh2_knownhost_writefile(kh, c->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
    if (rc < 0) {
        snprintf(msg, msglen, "cannot add the host key to %s", c->known_hosts);
        return -1;
    }
    orc_log(ORC_LOG_WARN, LOG_SUB, "%s: unknown host key %s trusted on first use, added to %s",
            c->where, fp, c->known_hosts);
    return 0;
}

/* 0: the key is known (or trusted now); -1: refused (conn failed). The
 * known-hosts handle belongs to the session: it is freed before any
 * conn_fail, which frees the session. */
static int hostkey_check(struct sconn *c)
{
    size_t klen = 0;
    int type = 0, check = LIBSSH2_KNOWNHOST_CHECK_FAILURE, status = 0;
    const char *key = libssh2_session_hostkey(c->sess, &klen, &type);
    LIBSSH2_KNOWNHOSTS *kh;
    struct libssh2_knownhost *found = NULL;
    char fp[80], msg[200] = "";

    if (key == NULL) {
        conn_fail(c, ORC_ESSH, true, "the server sent no host key");
        return -1;
    }
    key_fingerprint(c, fp, sizeof(fp));
    kh = libssh2_knownhost_init(c->sess);
    if (kh == NULL) {
        conn_fail(c, ORC_ENOMEM, false, "out of memory");
        return -1;
    }
    if (libssh2_knownhost_readfile(kh, c->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0 &&
        (c->hostkey != ORC_SSH_HOSTKEY_TOFU || access(c->known_hosts, F_OK) == 0)) {
        snprintf(msg, sizeof(msg), "cannot read known_hosts file %s", c->known_hosts);
    } else {
        check = libssh2_knownhost_checkp(
            kh, c->address, c->port, key, klen,
            LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW, &found);
        if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
            snprintf(msg, sizeof(msg),
                     "host key changed: the server's key %s does not match %s; refusing the "
                     "host",
                     fp, c->known_hosts);
        else if (check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && c->hostkey == ORC_SSH_HOSTKEY_TOFU)
            status = trust_new_key(c, kh, key, klen, type, fp, msg, sizeof(msg));
        else if (check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND)
            snprintf(msg, sizeof(msg),
                     "unknown host key %s: not in %s (add it, or set host_key: tofu)", fp,
                     c->known_hosts);
        else if (check != LIBSSH2_KNOWNHOST_CHECK_MATCH)
            snprintf(msg, sizeof(msg), "cannot check the host key against %s", c->known_hosts);
    }
    libssh2_knownhost_free(kh);
    if (msg[0] == '\0' && status == 0)
        return 0;
    conn_fail(c, ORC_EDENIED, false, "%s", msg);
    return -1;
}

static const char *ssh_errmsg(LIBSSH2_SESSION *s)
{
    char *msg = NULL;

    libssh2_session_last_error(s, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown error";
}

/* 1 done, 0 again, -1 failed (conn failed). */
static int auth_agent(struct sconn *c)
{
    int rc;

    if (c->agent == NULL) {
        c->agent = libssh2_agent_init(c->sess);
        if (c->agent == NULL || libssh2_agent_connect(c->agent) != 0 ||
            libssh2_agent_list_identities(c->agent) != 0) {
            conn_fail(c, ORC_EDENIED, false, "ssh-agent: cannot reach it (SSH_AUTH_SOCK)");
            return -1;
        }
        c->auth_step = 1;
    }
    for (;;) {
        if (c->auth_step == 1) {
            struct libssh2_agent_publickey *prev = c->agent_id;
            rc = libssh2_agent_get_identity(c->agent, &c->agent_id, prev);
            if (rc != 0) {
                conn_fail(c, ORC_EDENIED, false,
                          "authentication refused for user %s: no ssh-agent key accepted", c->user);
                return -1;
            }
            c->auth_step = 2;
        }
        rc = libssh2_agent_userauth(c->agent, c->user, c->agent_id);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return 0;
        if (rc == 0)
            return 1;
        c->auth_step = 1;
    }
}

static int auth_step(struct sconn *c)
{
    int rc;

    if (strcmp(c->identity, "agent") == 0)
        return auth_agent(c);
    rc = libssh2_userauth_publickey_fromfile_ex(c->sess, c->user, (unsigned)strlen(c->user), NULL,
                                                c->identity, c->passphrase);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return 0;
    if (rc == 0)
        return 1;
    if (rc == LIBSSH2_ERROR_FILE)
        conn_fail(c, ORC_EDENIED, false, "cannot use the key %s: %s", c->identity,
                  ssh_errmsg(c->sess));
    else if (rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
             rc == LIBSSH2_ERROR_SOCKET_DISCONNECT)
        conn_fail(c, ORC_ESSH, true, "connection lost during authentication");
    else
        conn_fail(c, ORC_EDENIED, false, "authentication refused for user %s with key %s: %s",
                  c->user, c->identity, ssh_errmsg(c->sess));
    return -1;
}

static void on_keep(uv_timer_t *t);

static void became_ready(struct sconn *c)
{
    c->st = SC_READY;
    c->ever_ready = true;
    c->attempt = 0;
    c->backoff_ms = 0;
    uv_timer_stop(&c->deadline);
    if (c->attempt_stats)
        c->attempt_stats->connects++;
    c->last_used_ms = orc_now_ms();
    libssh2_keepalive_config(c->sess, 1, c->keepalive_s);
    uv_timer_start(&c->keep, on_keep, (uint64_t)c->keepalive_s * 1000,
                   (uint64_t)c->keepalive_s * 1000);
    orc_log(ORC_LOG_DEBUG, LOG_SUB, "%s: session established", c->where);
}

/* Advances the session. true when it is ready for requests. */
static bool session_step(struct sconn *c)
{
    int rc;

    switch (c->st) {
    case SC_DOWN:
        if (has_waiting(c) && !c->gai_busy)
            conn_start(c);
        return false;
    case SC_RESOLVING:
    case SC_BACKOFF:
        return false;
    case SC_CONNECTING:
        if (connect_done(c) <= 0)
            return false;
        /* fall through */
    case SC_HANDSHAKE:
        rc = libssh2_session_handshake(c->sess, c->fd);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return false;
        if (rc != 0) {
            conn_fail(c, ORC_ESSH, true, "handshake failed: %s", ssh_errmsg(c->sess));
            return false;
        }
        if (hostkey_check(c) < 0)
            return false;
        c->st = SC_AUTH;
        c->auth_step = 0;
        /* fall through */
    case SC_AUTH:
        rc = auth_step(c);
        if (rc <= 0)
            return false;
        became_ready(c);
        /* fall through */
    case SC_READY:
        return true;
    }
    return false;
}

/* ---- the pump ---------------------------------------------------------------------------- */

static void deliver(struct sconn *c)
{
    struct sreq *done = NULL, **tail = &done, **pp = &c->reqs;

    while (*pp) {
        struct sreq *r = *pp;
        if (r->done && !sreq_active(r)) {
            *pp = r->next;
            r->next = NULL;
            *tail = r;
            tail = &r->next;
        } else {
            pp = &r->next;
        }
    }
    while (done) {
        struct sreq *r = done;
        orc_ssh_req_t *pub = r->pub;
        done = r->next;
        pub->core_ = NULL;
        pub->out = r->out;
        pub->out_len = r->out_len;
        pub->err = r->err;
        pub->err_len = r->err_len;
        pub->truncated = r->truncated;
        pub->bytes = r->sent;
        pub->connected = c->ever_ready;
        r->out = r->err = NULL;
        if (r->abandoned)
            orc_sshc_release(pub); /* pub is r->own */
        else if (pub->cb)
            pub->cb(pub, r->status);
        sreq_free(r);
    }
}

static void update_poll(struct sconn *c)
{
    int dirs, events = 0;
    bool active = false;

    if (c->st == SC_CONNECTING) {
        poll_set(c, UV_WRITABLE);
        return;
    }
    if (c->sess == NULL || (c->st != SC_HANDSHAKE && c->st != SC_AUTH && c->st != SC_READY))
        return;
    for (struct sreq *r = c->reqs; r; r = r->next)
        active = active || !r->done || sreq_active(r);
    if (c->st == SC_READY && !active) {
        poll_set(c, 0);
        return;
    }
    dirs = libssh2_session_block_directions(c->sess);
    if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND)
        events |= UV_READABLE;
    if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        events |= UV_WRITABLE;
    poll_set(c, events ? events : UV_READABLE);
}

/* Requests canceled or timed out before they reached the session. */
static void end_idle_aborts(struct sconn *c)
{
    for (struct sreq *r = c->reqs; r; r = r->next)
        if (!r->done && r->abort_status < 0 && !sreq_active(r))
            sreq_finish(r, r->abort_status, NULL);
}

static void pump(struct sconn *c)
{
    if (c->pumping || c->closing)
        return;
    c->pumping = true;
    end_idle_aborts(c);
    if (session_step(c)) {
        for (struct sreq *r = c->reqs; r && c->st == SC_READY; r = r->next) {
            if (r->done && !sreq_active(r))
                continue;
            if (sreq_step(r) < 0) {
                conn_fail(c, ORC_ESSH, true, "connection lost: %s",
                          c->sess ? ssh_errmsg(c->sess) : "closed");
                break;
            }
            c->last_used_ms = orc_now_ms();
        }
    }
    c->pumping = false;
    deliver(c);
    if (!c->closing)
        update_poll(c);
}

static void on_keep(uv_timer_t *t)
{
    struct sconn *c = t->data;
    int64_t now = orc_now_ms();
    int next = 0;

    if (c->st != SC_READY)
        return;
    if (has_waiting(c)) {
        libssh2_keepalive_send(c->sess, &next);
        if (now - c->last_rx_ms > (int64_t)SSHC_DEAD_KEEPALIVES * c->keepalive_s * 1000) {
            conn_fail(c, ORC_ESSH, true, "no answer from the server for %" PRId64 " s",
                      (now - c->last_rx_ms) / 1000);
            return;
        }
        pump(c);
    } else if (now - c->last_used_ms >= (int64_t)c->idle_ms) {
        orc_log(ORC_LOG_DEBUG, LOG_SUB, "%s: idle, closing the session", c->where);
        session_drop(c);
    }
}

/* ---- conns ---------------------------------------------------------------------------------- */

static char *target_key(const struct orc_ssh_target *t)
{
    return orc_asprintf("%s\n%u\n%s\n%s\n%s\n%d", t->address, t->port ? t->port : 22, t->user,
                        t->identity, t->known_hosts, t->hostkey);
}

static int conn_timers_init(struct sconn *c)
{
    uv_timer_t *timers[] = {&c->deadline, &c->keep, &c->kick};

    for (size_t i = 0; i < 3; i++) {
        uv_timer_init(c->cl->loop, timers[i]);
        timers[i]->data = c;
        c->handles++;
    }
    c->kick.data = c;
    return 0;
}

static struct sconn *conn_get(struct orc_sshc *cl, const struct orc_ssh_target *t)
{
    char *key = target_key(t);
    struct sconn *c;

    if (key == NULL)
        return NULL;
    for (c = cl->conns; c; c = c->next)
        if (!c->closing && strcmp(c->key, key) == 0) {
            orc_free(key);
            /* the passphrase may have changed; the rest is the key */
            return c;
        }
    c = orc_calloc(1, sizeof(*c));
    if (c == NULL) {
        orc_free(key);
        return NULL;
    }
    c->cl = cl;
    c->key = key;
    c->fd = -1;
    c->address = orc_strdup(t->address);
    c->user = orc_strdup(t->user);
    c->identity = orc_strdup(t->identity);
    c->passphrase = dup_or_null(t->passphrase);
    c->known_hosts = orc_strdup(t->known_hosts);
    c->port = t->port ? t->port : 22;
    c->hostkey = t->hostkey;
    c->connect_timeout_ms = t->connect_timeout_ms ? t->connect_timeout_ms : 10000;
    c->keepalive_s = t->keepalive_s ? t->keepalive_s : 15;
    c->retries = t->retries;
    c->idle_ms = t->idle_ms ? t->idle_ms : 60000;
    c->gai.data = c;
    snprintf(c->where, sizeof(c->where), "ssh %s@%s:%u", t->user, t->address, c->port);
    if (!c->address || !c->user || !c->identity || !c->known_hosts ||
        (t->passphrase && !c->passphrase)) {
        orc_free(c->address);
        orc_free(c->user);
        orc_free(c->identity);
        orc_free(c->passphrase);
        orc_free(c->known_hosts);
        orc_free(c->key);
        orc_free(c);
        return NULL;
    }
    conn_timers_init(c);
    c->next = cl->conns;
    if (cl->conns)
        cl->conns->prev = c;
    cl->conns = c;
    cl->live++;
    return c;
}

static void conn_close(struct sconn *c)
{
    uv_timer_t *timers[] = {&c->deadline, &c->keep, &c->kick};

    fail_all(c, ORC_ECANCELED, false, "the SSH client is closing");
    deliver(c);
    session_drop(c);
    c->closing = true;
    for (size_t i = 0; i < 3; i++)
        uv_close((uv_handle_t *)timers[i], conn_handle_closed);
}

/* ---- the API ----------------------------------------------------------------------------------
 */

int orc_sshc_new(uv_loop_t *loop, struct orc_sshc **out)
{
    struct orc_sshc *cl;

    *out = NULL;
    if (libssh2_users == 0 && libssh2_init(0) != 0)
        return ORC_ESSH;
    libssh2_users++;
    cl = orc_calloc(1, sizeof(*cl));
    if (cl == NULL) {
        if (--libssh2_users == 0)
            libssh2_exit();
        return ORC_ENOMEM;
    }
    cl->loop = loop;
    *out = cl;
    return 0;
}

void orc_sshc_close(struct orc_sshc *cl, void (*closed)(void *ud), void *ud)
{
    if (cl == NULL) {
        if (closed)
            closed(ud);
        return;
    }
    cl->closing = true;
    cl->closed = closed;
    cl->closed_ud = ud;
    cl->live++; /* held while the conns close */
    for (struct sconn *c = cl->conns, *next; c; c = next) {
        next = c->next;
        if (!c->closing)
            conn_close(c);
    }
    cl->live--;
    client_maybe_closed(cl);
}

static int target_check(const struct orc_ssh_target *t, orc_ssh_req_t *req)
{
    const char *missing = !t                                    ? "target"
                          : !t->address || !*t->address         ? "address"
                          : !t->user || !*t->user               ? "user"
                          : !t->identity || !*t->identity       ? "identity"
                          : !t->known_hosts || !*t->known_hosts ? "known_hosts"
                                                                : NULL;
    if (missing) {
        snprintf(req->error, sizeof(req->error), "ssh: the target has no %s", missing);
        return ORC_EINVAL;
    }
    if (t->hostkey != ORC_SSH_HOSTKEY_STRICT && t->hostkey != ORC_SSH_HOSTKEY_TOFU) {
        snprintf(req->error, sizeof(req->error), "ssh: unknown host key policy %d", t->hostkey);
        return ORC_EINVAL;
    }
    return 0;
}

static void on_req_timeout(uv_timer_t *t)
{
    struct sreq *r = t->data;

    if (r->done || r->abort_status < 0)
        return;
    r->abort_status = ORC_ESSH;
    snprintf(r->pub->error, sizeof(r->pub->error), "%s: no result within %" PRIu32 " ms",
             r->c->where, r->timeout_ms);
    sconn_kick(r->c);
}

static struct sreq *req_new(struct orc_sshc *cl, const void *owner, struct orc_ssh_stats *stats,
                            const struct orc_ssh_target *t, orc_ssh_req_t *req, int *rc)
{
    struct sreq *r;
    struct sconn *c;

    req->error[0] = '\0';
    req->out = req->err = NULL;
    req->out_len = req->err_len = 0;
    req->exit_status = -1;
    req->truncated = req->connected = false;
    req->bytes = 0;
    req->core_ = NULL;
    if (cl == NULL || cl->closing) {
        snprintf(req->error, sizeof(req->error), "ssh: the client is closing");
        *rc = ORC_ECONFLICT;
        return NULL;
    }
    if ((*rc = target_check(t, req)) < 0)
        return NULL;
    r = orc_calloc(1, sizeof(*r));
    c = r ? conn_get(cl, t) : NULL;
    if (c == NULL) {
        orc_free(r);
        *rc = ORC_ENOMEM;
        return NULL;
    }
    r->c = c;
    r->cl = cl;
    r->pub = req;
    r->owner = owner;
    r->stats = stats;
    r->lfd = -1;
    return r;
}

static void req_enqueue(struct sreq *r, uint32_t timeout_ms)
{
    struct sconn *c = r->c;
    struct sreq **pp = &c->reqs;

    uv_timer_init(c->cl->loop, &r->timer);
    r->timer.data = r;
    r->timer_open = true;
    c->cl->live++;
    r->timeout_ms = timeout_ms;
    if (timeout_ms)
        uv_timer_start(&r->timer, on_req_timeout, timeout_ms, 0);
    while (*pp)
        pp = &(*pp)->next;
    *pp = r;
    r->pub->core_ = r;
    if (r->stats)
        r->stats->requests++;
    sconn_kick(c);
}

int orc_sshc_exec(struct orc_sshc *cl, const void *owner, struct orc_ssh_stats *stats,
                  const struct orc_ssh_target *t, orc_ssh_req_t *req, const struct orc_ssh_exec *x)
{
    int rc;
    struct sreq *r;

    if (req == NULL || x == NULL)
        return ORC_EINVAL;
    if (x->command == NULL || *x->command == '\0') {
        snprintf(req->error, sizeof(req->error), "ssh: empty command");
        return ORC_EINVAL;
    }
    r = req_new(cl, owner, stats, t, req, &rc);
    if (r == NULL)
        return rc;
    r->kind = SR_EXEC;
    r->command = orc_strdup(x->command);
    r->input_len = x->input ? x->input_len : 0;
    r->input = r->input_len ? orc_malloc(r->input_len) : NULL;
    r->max_out = x->max_out ? x->max_out : SSHC_DEFAULT_MAX_OUT;
    if (r->command == NULL || (r->input_len && r->input == NULL)) {
        orc_free(r->command);
        orc_free(r->input);
        orc_free(r);
        return ORC_ENOMEM;
    }
    if (r->input_len)
        memcpy(r->input, x->input, r->input_len);
    req_enqueue(r, x->timeout_ms);
    return 0;
}

int orc_sshc_put(struct orc_sshc *cl, const void *owner, struct orc_ssh_stats *stats,
                 const struct orc_ssh_target *t, orc_ssh_req_t *req, const struct orc_ssh_put *p)
{
    int rc, fd;
    struct sreq *r;

    if (req == NULL || p == NULL)
        return ORC_EINVAL;
    if (!p->local_path || !p->remote_path || !*p->remote_path) {
        snprintf(req->error, sizeof(req->error), "ssh: put needs a local and a remote path");
        return ORC_EINVAL;
    }
    fd = open(p->local_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(req->error, sizeof(req->error), "ssh: cannot read %s: %s", p->local_path,
                 strerror(errno));
        return ORC_EIO;
    }
    r = req_new(cl, owner, stats, t, req, &rc);
    if (r == NULL) {
        close(fd);
        return rc;
    }
    r->kind = SR_PUT;
    r->lfd = fd;
    r->mode = p->mode ? p->mode : 0644;
    r->local_path = orc_strdup(p->local_path);
    r->remote_path = orc_strdup(p->remote_path);
    r->buf = orc_malloc(SSHC_PUT_CHUNK);
    if (!r->local_path || !r->remote_path || !r->buf) {
        close(fd);
        orc_free(r->local_path);
        orc_free(r->remote_path);
        orc_free(r->buf);
        orc_free(r);
        return ORC_ENOMEM;
    }
    req_enqueue(r, p->timeout_ms);
    return 0;
}

int orc_sshc_cancel(struct orc_sshc *cl, orc_ssh_req_t *req)
{
    struct sreq *r = req ? req->core_ : NULL;

    (void)cl;
    if (r == NULL || r->done)
        return ORC_ENOTFOUND;
    if (r->abort_status == 0) {
        r->abort_status = ORC_ECANCELED;
        snprintf(req->error, sizeof(req->error), "%s: canceled", r->c->where);
    }
    sconn_kick(r->c);
    return 0;
}

void orc_sshc_release(orc_ssh_req_t *req)
{
    if (req == NULL)
        return;
    orc_free(req->out);
    orc_free(req->err);
    req->out = req->err = NULL;
    req->out_len = req->err_len = 0;
}

unsigned orc_sshc_abandon(struct orc_sshc *cl, const void *owner)
{
    unsigned n = 0;

    if (cl == NULL)
        return 0;
    for (struct sconn *c = cl->conns; c; c = c->next)
        for (struct sreq *r = c->reqs; r; r = r->next)
            if (r->owner == owner && !r->abandoned) {
                /* the caller's request memory goes with the owner */
                r->own = *r->pub;
                r->own.core_ = NULL;
                r->pub = &r->own;
                r->abandoned = true;
                if (r->abort_status == 0)
                    r->abort_status = ORC_ECANCELED;
                n++;
                sconn_kick(c);
            }
    return n;
}

static void req_closed(uv_handle_t *h)
{
    struct sreq *r = h->data;
    struct orc_sshc *cl = r->cl;

    orc_free(r);
    cl->live--;
    client_maybe_closed(cl);
}

void sreq_free(struct sreq *r)
{
    if (r->lfd >= 0)
        close(r->lfd);
    orc_free(r->command);
    orc_free(r->input);
    orc_free(r->out);
    orc_free(r->err);
    orc_free(r->local_path);
    orc_free(r->remote_path);
    orc_free(r->buf);
    r->timer_open = false;
    uv_close((uv_handle_t *)&r->timer, req_closed);
}

unsigned orc_sshc_open_sessions(const struct orc_sshc *cl)
{
    unsigned n = 0;

    for (const struct sconn *c = cl ? cl->conns : NULL; c; c = c->next)
        n += c->st == SC_READY;
    return n;
}
