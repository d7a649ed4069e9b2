/* Growable NUL-terminated strings with a sticky out-of-memory flag, and small
 * string helpers. */
#include <stdio.h>
#include <string.h>

#include "base.h"

void tosca_strbuf_init(tosca_strbuf_t *b)
{
    b->s = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void tosca_strbuf_fini(tosca_strbuf_t *b)
{
    tosca_free(b->s);
    tosca_strbuf_init(b);
}

static bool strbuf_reserve(tosca_strbuf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra > SIZE_MAX - b->len - 1 || tosca_grow(&b->s, &b->cap, b->len + extra + 1, 1) < 0) {
        b->oom = true;
        return false;
    }
    return true;
}

void tosca_strbuf_append(tosca_strbuf_t *b, const char *s, size_t n)
{
    if (!strbuf_reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void tosca_strbuf_puts(tosca_strbuf_t *b, const char *s)
{
    tosca_strbuf_append(b, s, strlen(s));
}

void tosca_strbuf_printf(tosca_strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !strbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *tosca_strbuf_take(tosca_strbuf_t *b)
{
    char *s = b->s;

    if (b->oom) {
        tosca_strbuf_fini(b);
        return NULL;
    }
    if (s == NULL)
        s = tosca_strdup("");
    tosca_strbuf_init(b);
    return s;
}

bool tosca_str_in(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}
