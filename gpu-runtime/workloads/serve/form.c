/*
 * Form bodies (serve.h): DEEPaaS clients send their arguments as form
 * fields, so predict also takes "inputs=<JSON>", urlencoded (fields split on
 * '&', names and values percent-decoded, '+' a space) or multipart/form-data
 * (the part whose Content-Disposition names the field).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "../../../orchestrator/base.h"
#include "serve.h"

static int hex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (which holds n + 1 bytes): its length, or -1. */
static long decode(const char *s, size_t n, char *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= n)
                return -1; /* "%" or "%x" at the end */
            hi = hex((unsigned char)s[i + 1]);
            lo = hex((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return (long)o;
}

int gs_form_field(const char *body, size_t len, const char *name, char **out, size_t *out_len)
{
    const char *p = body, *end = body + len;
    const size_t want = strlen(name);

    *out = NULL;
    *out_len = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(fe - p));
        const char *ne = eq ? eq : fe;
        char *key = orc_malloc((size_t)(ne - p) + 1);
        long kn;

        if (key == NULL)
            return ORC_ENOMEM;
        kn = decode(p, (size_t)(ne - p), key);
        if (kn < 0) {
            orc_free(key);
            return ORC_EFORMAT;
        }
        bool match = (size_t)kn == want && memcmp(key, name, want) == 0;
        orc_free(key);
        if (match) {
            const char *v = eq ? eq + 1 : fe;
            char *val = orc_malloc((size_t)(fe - v) + 1);
            long vn;

            if (val == NULL)
                return ORC_ENOMEM;
            vn = decode(v, (size_t)(fe - v), val);
            if (vn < 0) {
                orc_free(val);
                return ORC_EFORMAT;
            }
            *out = val;
            *out_len = (size_t)vn;
            return 0;
        }
        p = amp ? amp + 1 : end;
    }
    return ORC_ENOTFOUND;
}

/* The first n-byte needle in hay[0..len), or NULL. */
static const char *find(const char *hay, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; n <= len && i <= len - n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* The boundary parameter of a multipart Content-Type into out. */
static bool boundary_of(const char *ct, char *out, size_t cap)
{
    const char *b = ct;
    size_t n;

    while ((b = strchr(b, '=')) != NULL) {
        const char *k = b;

        while (k > ct && k[-1] != ';' && k[-1] != ' ')
            k--;
        if ((size_t)(b - k) == 8 && strncasecmp(k, "boundary", 8) == 0)
            break;
        b++;
    }
    if (b == NULL)
        return false;
    b++;
    if (*b == '"') {
        const char *e = strchr(++b, '"');

        n = e ? (size_t)(e - b) : 0;
    } else {
        n = strcspn(b, "; \t");
    }
    if (n == 0 || n + 3 > cap)
        return false;
    out[0] = out[1] = '-';
    memcpy(out + 2, b, n);
    out[n + 2] = '\0';
    return true;
}

/* Does the part head (its header lines) name the form field name? */
static bool part_names(const char *head, size_t len, const char *name)
{
    const char *p = head, *end = head + len;
    char want[80];
    int wn = snprintf(want, sizeof(want), "name=\"%s\"", name);

    while (p < end) {
        const char *eol = find(p, (size_t)(end - p), "\r\n", 2);
        size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

        if (n > 20 && strncasecmp(p, "Content-Disposition:", 20) == 0) {
            for (const char *q = p + 20; q + wn <= p + n; q++)
                if (memcmp(q, want, (size_t)wn) == 0 && (q[-1] == ' ' || q[-1] == ';'))
                    return true;
        }
        p = eol ? eol + 2 : end;
    }
    return false;
}

int gs_multipart_field(const char *body, size_t len, const char *content_type, const char *name,
                       char **out, size_t *out_len)
{
    char delim[80];
    const char *p, *end = body + len;
    size_t dn;

    *out = NULL;
    *out_len = 0;
    if (!boundary_of(content_type, delim, sizeof(delim)))
        return ORC_EFORMAT;
    dn = strlen(delim);
    p = find(body, len, delim, dn);
    while (p != NULL) {
        const char *head, *head_end, *next;

        p += dn;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return ORC_ENOTFOUND; /* the closing delimiter */
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return ORC_EFORMAT;
        head = p + 2;
        head_end = find(head, (size_t)(end - head), "\r\n\r\n", 4);
        if (head_end == NULL)
            return ORC_EFORMAT;
        next = find(head_end + 4, (size_t)(end - head_end - 4), delim, dn);
        if (next == NULL || next - (head_end + 4) < 2)
            return ORC_EFORMAT;
        if (part_names(head, (size_t)(head_end - head) + 2, name)) {
            size_t n = (size_t)(next - 2 - (head_end + 4)); /* without the CRLF before delim */
            char *v = orc_malloc(n + 1);

            if (v == NULL)
                return ORC_ENOMEM;
            memcpy(v, head_end + 4, n);
            v[n] = '\0';
            *out = v;
            *out_len = n;
            return 0;
        }
        p = next;
    }
    return ORC_EFORMAT;
}
