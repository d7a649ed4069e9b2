/*
 * Remote commands on the login node, over the core's SSH client
 * (host->ssh): every command line starts with the site's `env` exported and
 * umask 077, and quotes every value (rmt_cmd); one request at a time per
 * operation, its reply handed to the operation's next step; host timers
 * between polls. Commands that ask several things print each answer after
 * a line "@@tag", which sl_section finds again.
 */
#include <stdio.h>
#include <string.h>

#include "slurm.h"

void sl_cmd_begin(struct slurm *s, struct rmt_cmd *c)
{
    rmt_cmd_init(c, s->host);
    for (size_t i = 0; i < s->c.nenv; i++) {
        rmt_cmd_raw(c, "export");
        rmt_cmd_assign(c, s->c.env[i].key, s->c.env[i].value);
        rmt_cmd_raw(c, "; ");
    }
    rmt_cmd_raw(c, "umask 077;");
}

void sl_cmd_cd(struct slurm *s, struct rmt_cmd *c, const char *name)
{
    char *dir = sl_path(s, name, NULL);

    rmt_cmd_raw(c, " cd");
    rmt_cmd_word(c, dir ? dir : "");
    if (dir == NULL && c->rc == 0)
        c->rc = ORC_ENOMEM;
    s->host->free(dir);
}

void sl_cmd_begin_work(struct slurm *s, struct rmt_cmd *c)
{
    sl_cmd_begin(s, c);
    rmt_cmd_raw(c, " cd");
    rmt_cmd_word(c, s->work);
}

bool sl_section(const char *out, size_t len, const char *tag, const char **at, size_t *n)
{
    size_t tl = strlen(tag);
    const char *end = out + len;

    for (const char *p = out; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *next = nl ? nl + 1 : end;
        if ((size_t)(next - p) >= tl && strncmp(p, tag, tl) == 0 &&
            (p + tl == end || p[tl] == '\n')) {
            const char *q = next;
            while (q < end && !(end - q >= 2 && q[0] == '@' && q[1] == '@')) {
                const char *l = memchr(q, '\n', (size_t)(end - q));
                q = l ? l + 1 : end;
            }
            *at = next;
            *n = (size_t)(q - next);
            return true;
        }
        p = next;
    }
    *at = "";
    *n = 0;
    return false;
}

static void sop_ssh_cb(orc_ssh_req_t *req, int status)
{
    struct sop *so = req->data;

    so->req_busy = false;
    so->req_out = true;
    if (so->canceled) {
        sop_complete(so, ORC_ECANCELED);
        return;
    }
    so->on_reply(so, status);
}

int sop_run(struct sop *so, char *cmd, char *input, size_t input_len, sop_fn fn)
{
    struct slurm *s = so->s;
    struct orc_ssh_exec x = {
        .command = cmd, .input = input, .input_len = input_len, .timeout_ms = s->c.cmd_timeout_ms};
    int rc;

    if (so->req_out)
        s->host->ssh->release(s->host, &so->req);
    so->req_out = false;
    s->host->free(so->cmd);
    s->host->free(so->input);
    so->cmd = cmd;
    so->input = input;
    memset(&so->req, 0, sizeof(so->req));
    so->req.data = so;
    so->req.cb = sop_ssh_cb;
    so->on_reply = fn;
    rc = s->host->ssh->exec(s->host, &s->target, &so->req, &x);
    if (rc < 0)
        return orc_op_failf(so->op, rc, "slurm site %s: ssh %s@%s: %s", s->host->site, s->c.user,
                            s->c.address, so->req.error[0] ? so->req.error : orc_strerror(rc));
    so->req_busy = true;
    return 0;
}

int sop_run_cmd(struct sop *so, struct rmt_cmd *c, char *input, size_t input_len, sop_fn fn)
{
    const char *text = NULL;
    int rc = rmt_cmd_done(c, &text);
    char *cmd = rc == 0 ? sl_strdup(so->s->host, text) : NULL;

    rmt_cmd_free(c);
    if (rc == 0 && cmd == NULL)
        rc = ORC_ENOMEM;
    if (rc < 0) {
        so->s->host->free(input);
        return orc_op_failf(so->op, rc, "slurm site %s: building a remote command: %s",
                            so->s->host->site, orc_strerror(rc));
    }
    return sop_run(so, cmd, input, input_len, fn);
}

int sop_start_cmd(struct sop *so, struct rmt_cmd *c, sop_fn fn)
{
    int rc = sop_run_cmd(so, c, NULL, 0, fn);

    if (rc < 0)
        sop_drop(so);
    return rc;
}

void sop_run_or_fail(struct sop *so, struct rmt_cmd *c, char *input, size_t input_len, sop_fn fn)
{
    int rc = sop_run_cmd(so, c, input, input_len, fn);

    if (rc < 0)
        sop_complete(so, rc);
}

/* The first line of stderr (or stdout), control characters as spaces. */
static void first_line(const orc_ssh_req_t *req, char *buf, size_t len)
{
    const char *t = req->err_len > 0 ? req->err : req->out;
    size_t n = req->err_len > 0 ? req->err_len : req->out_len, k = 0;

    while (t && n > 0 && (*t == '\n' || *t == ' ')) {
        t++;
        n--;
    }
    for (; t && k < n && k + 1 < len && t[k] != '\n'; k++)
        buf[k] = (t[k] < 0x20 || t[k] == 0x7f) ? ' ' : t[k];
    buf[k] = '\0';
}

bool sop_reply_ok(struct sop *so, int status, const char *what)
{
    struct slurm *s = so->s;
    char line[200];

    if (status < 0) {
        sop_failf(so, status, "slurm site %s: %s: %s", s->host->site, what,
                  so->req.error[0] ? so->req.error : orc_strerror(status));
        return false;
    }
    if (so->req.exit_status != 0) {
        first_line(&so->req, line, sizeof(line));
        sop_failf(so, ORC_EDRIVER, "slurm site %s: %s on %s exited with status %d%s%s",
                  s->host->site, what, s->c.address, so->req.exit_status, line[0] ? ": " : "",
                  line);
        return false;
    }
    return true;
}

static void sop_timer_cb(void *arg)
{
    struct sop *so = arg;

    so->timer = 0;
    so->on_timer(so, 0);
}

int sop_wait(struct sop *so, uint64_t ms, sop_fn fn)
{
    so->on_timer = fn;
    so->timer = so->s->host->timer_start(so->s->host, ms, sop_timer_cb, so);
    return so->timer != 0 ? 0 : ORC_ENOMEM;
}

void sop_wait_poll(struct sop *so, sop_fn fn)
{
    if (sop_wait(so, so->s->c.poll_ms, fn) < 0)
        sop_oom(so);
}

const char *sop_out(const struct sop *so, size_t *len)
{
    *len = so->req.out ? so->req.out_len : 0;
    return so->req.out ? so->req.out : "";
}
