/*
 * Reading a cloud site's config (cloud.h, struct cld_conf): the JSON object of the
 * site's `config`, one key at a time, with the first error kept in the words an
 * operator reads in the daemon's log ("openstack: config: poll_ms: expected an
 * integer from 10 to 600000").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cloud.h"

void cld_conf_fail(struct cld_conf *p, const char *key, const char *fmt, ...)
{
    va_list ap;
    size_t n;

    if (p->rc != 0)
        return;
    n = (size_t)snprintf(p->err, p->errlen, "%s: config: %s: ", p->driver, key);
    va_start(ap, fmt);
    if (n < p->errlen)
        vsnprintf(p->err + n, p->errlen - n, fmt, ap);
    va_end(ap);
    p->rc = ORC_EINVAL;
}

void cld_conf_oom(struct cld_conf *p)
{
    if (p->rc == 0) {
        snprintf(p->err, p->errlen, "%s: out of memory", p->driver);
        p->rc = ORC_ENOMEM;
    }
}

char *cld_conf_dup(struct cld_conf *p, const char *s)
{
    char *out = s ? cld_strdup(p->host, s) : NULL;

    if (s && out == NULL)
        cld_conf_oom(p);
    return out;
}

char *cld_conf_str(struct cld_conf *p, const char *key, const char *dflt)
{
    json_t *v = json_object_get(p->o, key);

    if (v && !json_is_string(v)) {
        cld_conf_fail(p, key, "expected a string");
        return NULL;
    }
    return cld_conf_dup(p, v ? json_string_value(v) : dflt);
}

char *cld_conf_text(struct cld_conf *p, const char *key, const char *dflt)
{
    json_t *v = json_object_get(p->o, key);

    if (v && (!json_is_string(v) || json_string_length(v) == 0)) {
        cld_conf_fail(p, key, "expected a non-empty string");
        return NULL;
    }
    return cld_conf_dup(p, v ? json_string_value(v) : dflt);
}

uint32_t cld_conf_u32(struct cld_conf *p, const char *key, uint32_t min, uint32_t max,
                      uint32_t dflt)
{
    json_t *v = json_object_get(p->o, key);

    if (v == NULL)
        return dflt;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        cld_conf_fail(p, key, "expected an integer from %u to %u", min, max);
        return dflt;
    }
    return (uint32_t)json_integer_value(v);
}

int cld_conf_pick(struct cld_conf *p, const char *key, const char *const *names, int dflt)
{
    json_t *v = json_object_get(p->o, key);
    char what[160];
    size_t n;

    if (v == NULL)
        return dflt;
    for (int i = 0; names[i]; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0)
            return i;
    n = (size_t)snprintf(what, sizeof(what), "expected one of");
    for (int i = 0; names[i] && n < sizeof(what); i++)
        n += (size_t)snprintf(what + n, sizeof(what) - n, "%s %s", i ? "," : "", names[i]);
    cld_conf_fail(p, key, "%s", what);
    return dflt;
}
