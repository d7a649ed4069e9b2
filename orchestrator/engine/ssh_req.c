/*
 * The requests an SSH session carries (ssh_client.h): exec (a channel:
 * open, exec, stdin then EOF, stdout and stderr until EOF, close, exit
 * status or signal) and put (SFTP: init, open, write in chunks, close,
 * shutdown). Each is a state machine advanced by sreq_step whenever the
 * session's socket is ready; libssh2 calls never block. A canceled or timed
 * out request first releases its channel or SFTP handle, then ends.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../base.h"
#include "ssh_int.h"

enum {
    X_OPEN = 0,
    X_EXEC,
    X_IO,
    X_CLOSE,
    X_WAIT_CLOSED,
    X_FREE,
};

enum {
    P_INIT = 0,
    P_OPEN,
    P_WRITE,
    P_CLOSE_FILE,
    P_SHUTDOWN,
};

#define AGAIN(rc) ((rc) == LIBSSH2_ERROR_EAGAIN)

static bool transport_error(int rc)
{
    return rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_RECV ||
           rc == LIBSSH2_ERROR_SOCKET_DISCONNECT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
           rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_BAD_SOCKET;
}

bool sreq_active(const struct sreq *r)
{
    return r->ch != NULL || r->sftp != NULL;
}

void sreq_detach(struct sreq *r)
{
    /* libssh2_session_free frees channels but not an SFTP subsystem, its
     * handles nor the writes they queued: release them here. The caller
     * shut the socket down, so these fail at once instead of waiting. */
    if (r->fh != NULL)
        (void)libssh2_sftp_close_handle(r->fh);
    if (r->sftp != NULL)
        (void)libssh2_sftp_shutdown(r->sftp);
    r->ch = NULL;
    r->fh = NULL;
    r->sftp = NULL;
    if (!r->remote_started) {
        r->step = 0;
        r->input_off = 0;
        r->eof_sent = false;
        r->out_len = r->err_len = 0;
        r->truncated = false;
        if (r->kind == SR_PUT && r->lfd >= 0) {
            lseek(r->lfd, 0, SEEK_SET);
            r->buf_len = r->buf_off = 0;
            r->sent = 0;
        }
    }
}

/* ---- exec ------------------------------------------------------------------------------ */

static int keep(struct sreq *r, char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
    size_t room = r->max_out > *len ? r->max_out - *len : 0;

    if (n > room) {
        r->truncated = true;
        n = room;
    }
    if (n == 0)
        return 0;
    if (*len + n + 1 > *cap) {
        size_t ncap = *cap ? *cap : 4096;
        char *p;
        while (ncap < *len + n + 1)
            ncap *= 2;
        p = orc_realloc(*buf, ncap);
        if (p == NULL)
            return ORC_ENOMEM;
        *buf = p;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Reads what stream has: 1 at EOF, 0 on EAGAIN, < 0 a libssh2 error. */
static int drain(struct sreq *r, int stream)
{
    char chunk[SSHC_READ_CHUNK];

    for (;;) {
        ssize_t n = libssh2_channel_read_ex(r->ch, stream, chunk, sizeof(chunk));
        if (n == LIBSSH2_ERROR_EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        if (n == 0)
            return libssh2_channel_eof(r->ch) ? 1 : 0;
        if ((stream == 0 ? keep(r, &r->out, &r->out_len, &r->out_cap, chunk, (size_t)n)
                         : keep(r, &r->err, &r->err_len, &r->err_cap, chunk, (size_t)n)) < 0)
            return LIBSSH2_ERROR_ALLOC;
    }
}

static int write_input(struct sreq *r)
{
    while (r->input_off < r->input_len) {
        ssize_t n =
            libssh2_channel_write(r->ch, r->input + r->input_off, r->input_len - r->input_off);
        if (n == LIBSSH2_ERROR_EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        r->input_off += (size_t)n;
    }
    if (!r->eof_sent) {
        int rc = libssh2_channel_send_eof(r->ch);
        if (AGAIN(rc))
            return 0;
        if (rc < 0)
            return rc;
        r->eof_sent = true;
    }
    return 1;
}

static int signal_number(const char *name)
{
    static const struct {
        const char *name;
        int num;
    } sigs[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ILL", SIGILL},
                {"ABRT", SIGABRT}, {"FPE", SIGFPE},   {"KILL", SIGKILL}, {"SEGV", SIGSEGV},
                {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
                {"USR2", SIGUSR2}, {"BUS", SIGBUS}};

    for (size_t i = 0; name && i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (strcmp(name, sigs[i].name) == 0)
            return sigs[i].num;
    return 0;
}

static void read_exit(struct sreq *r)
{
    char *sig = NULL;
    size_t siglen = 0;

    r->pub->exit_status = libssh2_channel_get_exit_status(r->ch);
    if (libssh2_channel_get_exit_signal(r->ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
        sig != NULL) {
        int num = signal_number(sig);
        r->pub->exit_status = 128 + (num ? num : 0);
        libssh2_free(r->c->sess, sig);
    }
}

static int fail_rc(struct sreq *r, int rc, const char *what)
{
    if (transport_error(rc))
        return -1;
    if (rc == LIBSSH2_ERROR_ALLOC) {
        sreq_finish(r, ORC_ENOMEM, "out of memory during %s", what);
        return 1;
    }
    char *msg = NULL;
    libssh2_session_last_error(r->c->sess, &msg, NULL, 0);
    sreq_finish(r, ORC_ESSH, "%s failed: %s", what, msg && *msg ? msg : "unknown error");
    /* the channel is released by the abort path */
    r->abort_status = r->status;
    return 1;
}

/* Closing a channel (normal end or abort): close, wait, free. */
static int channel_end(struct sreq *r)
{
    int rc;

    if (r->step == X_CLOSE) {
        rc = libssh2_channel_close(r->ch);
        if (AGAIN(rc))
            return 0;
        if (transport_error(rc))
            return -1;
        r->step = X_WAIT_CLOSED;
    }
    if (r->step == X_WAIT_CLOSED) {
        rc = libssh2_channel_wait_closed(r->ch);
        if (AGAIN(rc))
            return 0;
        if (transport_error(rc))
            return -1;
        if (r->abort_status == 0)
            read_exit(r);
        r->step = X_FREE;
    }
    rc = libssh2_channel_free(r->ch);
    if (AGAIN(rc))
        return 0;
    r->ch = NULL;
    if (!r->done)
        sreq_finish(r, r->abort_status < 0 ? r->abort_status : 0, NULL);
    return 1;
}

static int exec_step(struct sreq *r)
{
    LIBSSH2_SESSION *s = r->c->sess;
    int rc;

    if (r->abort_status < 0 && r->ch != NULL && r->step < X_CLOSE)
        r->step = X_CLOSE;
    switch (r->step) {
    case X_OPEN:
        r->ch = libssh2_channel_open_session(s);
        if (r->ch == NULL) {
            rc = libssh2_session_last_errno(s);
            return AGAIN(rc) ? 0 : fail_rc(r, rc, "opening a channel");
        }
        r->step = X_EXEC;
        /* fall through */
    case X_EXEC:
        rc = libssh2_channel_exec(r->ch, r->command);
        if (AGAIN(rc))
            return 0;
        r->remote_started = true;
        if (rc < 0) {
            fail_rc(r, rc, "exec");
            if (transport_error(rc))
                return -1;
            r->step = X_CLOSE;
            return channel_end(r);
        }
        r->step = X_IO;
        /* fall through */
    case X_IO: {
        int in = write_input(r), o, e;
        if (in < 0 && transport_error(in))
            return -1;
        o = drain(r, 0);
        e = drain(r, SSH_EXTENDED_DATA_STDERR);
        if (o < 0 || e < 0) {
            rc = o < 0 ? o : e;
            if (transport_error(rc))
                return -1;
            fail_rc(r, rc, "reading the output");
            r->step = X_CLOSE;
            return channel_end(r);
        }
        if (o == 0 || e == 0 || !libssh2_channel_eof(r->ch))
            return 0;
        r->step = X_CLOSE;
    }
        /* fall through */
    default:
        return channel_end(r);
    }
}

/* ---- put ----------------------------------------------------------------------------------- */

static int sftp_fail(struct sreq *r, int rc, const char *what)
{
    if (transport_error(rc))
        return -1;
    if (rc == LIBSSH2_ERROR_SFTP_PROTOCOL && r->sftp) {
        unsigned long code = libssh2_sftp_last_error(r->sftp);
        sreq_finish(r, ORC_ESSH, "sftp %s %s: %s", what, r->remote_path,
                    code == LIBSSH2_FX_NO_SUCH_FILE        ? "no such file or directory"
                    : code == LIBSSH2_FX_PERMISSION_DENIED ? "permission denied"
                    : code == LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM || code == LIBSSH2_FX_QUOTA_EXCEEDED
                        ? "no space left"
                        : "refused by the server");
    } else {
        char *msg = NULL;
        libssh2_session_last_error(r->c->sess, &msg, NULL, 0);
        sreq_finish(r, ORC_ESSH, "sftp %s %s: %s", what, r->remote_path,
                    msg && *msg ? msg : "failed");
    }
    r->abort_status = r->status;
    return 0;
}

/* Releases the SFTP handle and subsystem (normal end or abort). */
static int put_end(struct sreq *r)
{
    int rc;

    if (r->fh != NULL) {
        rc = libssh2_sftp_close_handle(r->fh);
        if (AGAIN(rc))
            return 0;
        /* any other answer: libssh2 is done with the handle (once the close was sent it
         * frees it, failure or not), so it is never closed again */
        r->fh = NULL;
        if (transport_error(rc))
            return -1;
        if (rc < 0 && !r->done && r->abort_status == 0)
            sftp_fail(r, rc, "closing");
    }
    if (r->sftp != NULL) {
        rc = libssh2_sftp_shutdown(r->sftp);
        if (AGAIN(rc))
            return 0;
        r->sftp = NULL;
    }
    if (!r->done)
        sreq_finish(r, r->abort_status < 0 ? r->abort_status : 0, NULL);
    return 1;
}

static int put_write(struct sreq *r)
{
    for (;;) {
        ssize_t n;
        if (r->buf_off == r->buf_len) {
            n = read(r->lfd, r->buf, SSHC_PUT_CHUNK);
            if (n < 0) {
                sreq_finish(r, ORC_EIO, "reading %s: %s", r->local_path, strerror(errno));
                r->abort_status = ORC_EIO;
                return 0;
            }
            if (n == 0)
                return 1;
            r->buf_len = (size_t)n;
            r->buf_off = 0;
        }
        n = libssh2_sftp_write(r->fh, r->buf + r->buf_off, r->buf_len - r->buf_off);
        if (n == LIBSSH2_ERROR_EAGAIN)
            return 0;
        if (n < 0)
            return sftp_fail(r, (int)n, "writing") < 0 ? -1 : 0;
        r->buf_off += (size_t)n;
        r->sent += (uint64_t)n;
    }
}

static int put_step(struct sreq *r)
{
    LIBSSH2_SESSION *s = r->c->sess;
    int rc;

    if (r->abort_status < 0 || r->step >= P_CLOSE_FILE)
        return put_end(r);
    switch (r->step) {
    case P_INIT:
        r->sftp = libssh2_sftp_init(s);
        if (r->sftp == NULL) {
            rc = libssh2_session_last_errno(s);
            if (AGAIN(rc))
                return 0;
            return sftp_fail(r, rc, "starting SFTP for") < 0 ? -1 : put_end(r);
        }
        r->step = P_OPEN;
        /* fall through */
    case P_OPEN:
        r->fh = libssh2_sftp_open_ex(r->sftp, r->remote_path, (unsigned)strlen(r->remote_path),
                                     LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC,
                                     r->mode, LIBSSH2_SFTP_OPENFILE);
        if (r->fh == NULL) {
            rc = libssh2_session_last_errno(s);
            if (AGAIN(rc))
                return 0;
            return sftp_fail(r, rc, "opening") < 0 ? -1 : put_end(r);
        }
        r->remote_started = true;
        r->step = P_WRITE;
        /* fall through */
    case P_WRITE:
        rc = put_write(r);
        if (rc < 0)
            return -1;
        if (rc == 0 && r->abort_status == 0)
            return 0;
        r->step = P_CLOSE_FILE;
        /* fall through */
    default:
        return put_end(r);
    }
}

int sreq_step(struct sreq *r)
{
    int rc = r->kind == SR_EXEC ? exec_step(r) : put_step(r);

    return rc < 0 ? -1 : rc;
}
