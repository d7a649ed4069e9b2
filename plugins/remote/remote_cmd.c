/*
 * Remote shell command lines (remote.h): text that is ours is appended as
 * is, every value is appended as one single-quoted word, so that names,
 * paths, environment values and commands reach sh as data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "remote.h"

#define RMT_CMD_MAX ((size_t)4 << 20)

void rmt_cmd_init(struct rmt_cmd *c, const struct orc_host_api *host)
{
    memset(c, 0, sizeof(*c));
    c->host = host;
}

static int grow(struct rmt_cmd *c, size_t need)
{
    size_t cap = c->cap ? c->cap : 256;
    char *p;

    if (c->rc < 0)
        return c->rc;
    if (need > RMT_CMD_MAX)
        return c->rc = ORC_ELIMIT;
    if (need <= c->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = c->host->realloc(c->buf, cap);
    if (p == NULL)
        return c->rc = ORC_ENOMEM;
    c->buf = p;
    c->cap = cap;
    return 0;
}

void rmt_cmd_raw(struct rmt_cmd *c, const char *text)
{
    size_t n = strlen(text);

    if (grow(c, c->len + n + 1) < 0)
        return;
    memcpy(c->buf + c->len, text, n + 1);
    c->len += n;
}

void rmt_cmd_rawf(struct rmt_cmd *c, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(small)) {
        if (c->rc == 0)
            c->rc = ORC_ELIMIT;
        return;
    }
    rmt_cmd_raw(c, small);
}

void rmt_cmd_quoted(struct rmt_cmd *c, const char *value)
{
    /* worst case: every byte a quote (4 bytes each), the quotes, NUL */
    if (grow(c, c->len + 4 * strlen(value) + 3) < 0)
        return;
    if (orc_ssh_quote(c->buf, c->cap, &c->len, value) < 0)
        c->rc = ORC_ELIMIT;
}

void rmt_cmd_word(struct rmt_cmd *c, const char *value)
{
    rmt_cmd_raw(c, " ");
    rmt_cmd_quoted(c, value);
}

bool rmt_env_name_ok(const char *s)
{
    if (s == NULL || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

void rmt_cmd_assign(struct rmt_cmd *c, const char *key, const char *value)
{
    size_t kl, vl;
    char *kv;

    if (c->rc < 0)
        return;
    if (!rmt_env_name_ok(key)) {
        c->rc = ORC_EINVAL;
        return;
    }
    kl = strlen(key);
    vl = strlen(value);
    kv = c->host->malloc(kl + vl + 2);
    if (kv == NULL) {
        c->rc = ORC_ENOMEM;
        return;
    }
    memcpy(kv, key, kl);
    kv[kl] = '=';
    memcpy(kv + kl + 1, value, vl + 1);
    rmt_cmd_word(c, kv);
    c->host->free(kv);
}

void rmt_cmd_var(struct rmt_cmd *c, const char *name, const char *value)
{
    if (c->rc < 0)
        return;
    if (!rmt_env_name_ok(name)) {
        c->rc = ORC_EINVAL;
        return;
    }
    rmt_cmd_raw(c, name);
    rmt_cmd_raw(c, "=");
    rmt_cmd_quoted(c, value);
    rmt_cmd_raw(c, "; ");
}

int rmt_cmd_done(struct rmt_cmd *c, const char **text)
{
    if (c->rc == 0 && c->buf == NULL)
        rmt_cmd_raw(c, "");
    if (c->rc < 0)
        return c->rc;
    *text = c->buf;
    return 0;
}

void rmt_cmd_free(struct rmt_cmd *c)
{
    if (c->host && c->buf)
        c->host->free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}
