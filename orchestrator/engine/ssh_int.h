/*
 * Inside the SSH client (ssh_client.h): sessions (ssh_client.c) and the
 * requests they carry (ssh_req.c). Not for other subsystems.
 */
#ifndef ORC_ENGINE_SSH_INT_H
#define ORC_ENGINE_SSH_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "ssh_client.h"

#define SSHC_READ_CHUNK 32768
#define SSHC_PUT_CHUNK (256 * 1024)
#define SSHC_DEFAULT_MAX_OUT ((size_t)1 << 20)
#define SSHC_DEAD_KEEPALIVES 3 /* intervals without a byte received: the peer is gone */

enum sconn_state {
    SC_DOWN = 0,   /* no session: the next request connects */
    SC_RESOLVING,  /* uv_getaddrinfo */
    SC_CONNECTING, /* TCP connect in progress */
    SC_HANDSHAKE,
    SC_AUTH,
    SC_READY,
    SC_BACKOFF, /* waiting to reconnect */
};

struct sreq;

/* One session to one target. */
struct sconn {
    struct orc_sshc *cl;
    struct sconn *prev, *next;
    /* the target (copies) */
    char *key; /* identity of the session: what makes two targets the same */
    char *address, *user, *identity, *passphrase, *known_hosts;
    uint16_t port;
    int hostkey;
    uint32_t connect_timeout_ms, keepalive_s, retries, idle_ms;
    char where[160]; /* "ssh root@10.0.0.5:22" for messages */
    /* the session */
    enum sconn_state st;
    uv_getaddrinfo_t gai;
    bool gai_busy;
    int fd;
    uv_poll_t *poll; /* on fd (its own allocation: a closing one may outlive the socket) */
    bool poll_open;  /* poll initialized on fd and not closed */
    int poll_events;
    LIBSSH2_SESSION *sess;
    LIBSSH2_AGENT *agent;
    struct libssh2_agent_publickey *agent_id;
    int auth_step;
    uv_timer_t deadline; /* connect timeout, reconnect backoff */
    uv_timer_t keep;     /* keepalive, liveness, idle close */
    uv_timer_t kick;     /* runs the pump on a later iteration */
    unsigned handles;    /* open uv handles of this conn */
    uint32_t attempt;    /* connection attempts since the last success */
    uint64_t backoff_ms;
    int64_t last_rx_ms, last_used_ms;
    bool ever_ready; /* this session was established (its requests may be retried) */
    bool closing;    /* being freed */
    bool pumping;
    struct sreq *reqs;                   /* queued and active, in order */
    struct orc_ssh_stats *attempt_stats; /* whose request made the current attempt */
};

enum sreq_kind { SR_EXEC, SR_PUT };

/* One request: exec or put. Freed once its timer handle closed. */
struct sreq {
    struct orc_sshc *cl;
    struct sconn *c;
    struct sreq *next; /* in c->reqs */
    orc_ssh_req_t *pub;
    const void *owner;
    struct orc_ssh_stats *stats;
    enum sreq_kind kind;
    int step;            /* ssh_req.c's state machine */
    bool remote_started; /* the command was sent or the file opened: not retried */
    bool done;           /* completed: waiting for delivery */
    bool abandoned;      /* the owner is gone: no callback */
    int status;          /* the final status once done */
    int abort_status;    /* canceled or timed out: end with this after cleanup */
    /* exec */
    char *command;
    char *input;
    size_t input_len, input_off;
    size_t max_out;
    char *out, *err;
    size_t out_len, out_cap, err_len, err_cap;
    bool truncated, eof_sent;
    LIBSSH2_CHANNEL *ch;
    /* put */
    char *local_path, *remote_path;
    int mode, lfd;
    char *buf;
    size_t buf_len, buf_off;
    uint64_t sent;
    LIBSSH2_SFTP *sftp;
    LIBSSH2_SFTP_HANDLE *fh;
    /* the request's deadline */
    uv_timer_t timer;
    bool timer_open;
    uint32_t timeout_ms;
    orc_ssh_req_t own; /* stands in for pub once the owner abandoned it */
};

struct orc_sshc {
    uv_loop_t *loop;
    struct sconn *conns;
    bool closing;
    unsigned live; /* conns and requests not freed yet */
    void (*closed)(void *ud);
    void *closed_ud;
};

/* ssh_req.c */
/* Moves r one step on; 0 when it needs the socket again (EAGAIN), 1 when it
 * finished (r->status set), < 0 when the session failed (transport). */
int sreq_step(struct sreq *r);
/* True when r holds a channel or SFTP handle of the session. */
bool sreq_active(const struct sreq *r);
/* The session died: forget its libssh2 objects (freed with the session). */
void sreq_detach(struct sreq *r);
void sreq_free(struct sreq *r); /* closes its timer; freed in the close callback */

/* ssh_client.c */
void sconn_kick(struct sconn *c);
void sreq_finish(struct sreq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
