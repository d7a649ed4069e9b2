/*
 * The route table: patterns of literal and {param} segments, each with one
 * method and a handler. Matching splits the request path on '/', ignores one
 * trailing slash, percent-decodes each segment on its own (so %2F stays
 * inside a parameter), and among the routes of the right shape prefers
 * literal segments over parameters, leftmost first. A path that matches some
 * route but not for this method gives the Allow set for a 405.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const struct {
    unsigned bit;
    const char *name;
} methods[] = {
    {ORC_HTTP_GET, "GET"},         {ORC_HTTP_HEAD, "HEAD"},   {ORC_HTTP_POST, "POST"},
    {ORC_HTTP_PUT, "PUT"},         {ORC_HTTP_PATCH, "PATCH"}, {ORC_HTTP_DELETE, "DELETE"},
    {ORC_HTTP_OPTIONS, "OPTIONS"},
};

#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

unsigned orc_http_method_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strlen(methods[i].name) == len && memcmp(methods[i].name, name, len) == 0)
            return methods[i].bit;
    return 0;
}

const char *orc_http_method_name(unsigned bit)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (methods[i].bit == bit)
            return methods[i].name;
    return "OTHER";
}

const char *orc_api_allow_text(unsigned allow, char *buf, size_t len)
{
    size_t used = 0;

    if (allow & ORC_HTTP_GET)
        allow |= ORC_HTTP_HEAD;
    if (allow != 0)
        allow |= ORC_HTTP_OPTIONS;
    buf[0] = '\0';
    for (size_t i = 0; i < NMETHODS && used < len; i++)
        if (allow & methods[i].bit)
            used +=
                (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", methods[i].name);
    return buf;
}

/* ---- decoding -------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int orc_pct_decode(const char *s, size_t len, bool plus_space, char *out, size_t *outlen)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi | lo) == 0) /* truncated, not hex, or %00 */
                return ORC_EFORMAT;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '\0') {
            return ORC_EFORMAT;
        } else {
            out[o++] = plus_space && c == '+' ? ' ' : c;
        }
    }
    *outlen = o;
    return 0;
}

/* Formats a reason into why and returns rc. */
static int whyf(char *why, size_t whylen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int whyf(char *why, size_t whylen, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- patterns ---------------------------------------------------------------------------- */

static bool valid_param_name(const char *s, size_t len)
{
    if (len == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool valid_literal(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("{}%?#", c) != NULL)
            return false;
    }
    return len > 0;
}

/* Fills route->segs from pattern. */
static int parse_pattern(struct orc_route *route, const char *pattern, char *why, size_t whylen)
{
    const char *p = pattern + 1;

    if (pattern[0] != '/')
        return whyf(why, whylen, ORC_EINVAL, "pattern must start with '/'");
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        bool param = n >= 2 && p[0] == '{' && p[n - 1] == '}';
        if (route->nseg == ORC_API_MAX_SEGMENTS)
            return whyf(why, whylen, ORC_EINVAL, "more than %d segments", ORC_API_MAX_SEGMENTS);
        if (param ? !valid_param_name(p + 1, n - 2) : !valid_literal(p, n))
            return whyf(why, whylen, ORC_EINVAL, "bad segment '%.*s'", (int)n, p);
        for (size_t i = 0; param && i < route->nseg; i++)
            if ((route->param_mask >> i & 1) && strlen(route->segs[i]) == n - 2 &&
                memcmp(route->segs[i], p + 1, n - 2) == 0)
                return whyf(why, whylen, ORC_EINVAL, "parameter {%.*s} twice", (int)n - 2, p + 1);
        route->segs[route->nseg] = param ? orc_strndup(p + 1, n - 2) : orc_strndup(p, n);
        if (route->segs[route->nseg] == NULL)
            return ORC_ENOMEM;
        if (param)
            route->param_mask |= 1u << route->nseg;
        route->nseg++;
        p += n;
        if (*p == '/' && p[1] == '\0')
            break; /* "/a/b/" is "/a/b" */
        if (*p == '/')
            p++;
    }
    return 0;
}

static void route_free(struct orc_route *route)
{
    if (route == NULL)
        return;
    for (size_t i = 0; i < route->nseg; i++)
        orc_free(route->segs[i]);
    orc_free(route->pattern);
    json_decref(route->op);
    orc_free(route);
}

/* Two routes have the same shape: same segment count, parameters in the same
 * places and equal literals. */
static bool same_shape(const struct orc_route *a, const struct orc_route *b)
{
    if (a->nseg != b->nseg || a->param_mask != b->param_mask)
        return false;
    for (size_t i = 0; i < a->nseg; i++)
        if (!(a->param_mask >> i & 1) && strcmp(a->segs[i], b->segs[i]) != 0)
            return false;
    return true;
}

static int router_append(struct orc_router *r, struct orc_route *route)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct orc_route **grown = orc_realloc(r->routes, cap * sizeof(*grown));
        if (grown == NULL)
            return ORC_ENOMEM;
        r->routes = grown;
        r->cap = cap;
    }
    r->routes[r->count++] = route;
    return 0;
}

static int route_check(const struct orc_router *r, const orc_api_route_t *def,
                       const struct orc_route *route, char *why, size_t whylen)
{
    if (def->handler == NULL)
        return whyf(why, whylen, ORC_EINVAL, "no handler");
    for (size_t i = 0; i < r->count; i++)
        if (r->routes[i]->method == route->method && same_shape(r->routes[i], route))
            return whyf(why, whylen, ORC_ECONFLICT, "conflicts with %s %s", route->method_name,
                        r->routes[i]->pattern);
    return 0;
}

int orc_router_add(struct orc_router *r, const orc_api_route_t *def, struct orc_route **out,
                   char *why, size_t whylen)
{
    struct orc_route *route = orc_calloc(1, sizeof(*route));
    int rc;

    if (route == NULL)
        return ORC_ENOMEM;
    route->method = def->method ? orc_http_method_bit(def->method, strlen(def->method)) : 0;
    rc = ORC_EINVAL;
    if (route->method == 0 || route->method == ORC_HTTP_HEAD) {
        snprintf(why, whylen, "method '%s' cannot be routed", def->method ? def->method : "");
        goto fail;
    }
    route->method_name = orc_http_method_name(route->method);
    route->pattern = def->pattern ? orc_strdup(def->pattern) : NULL;
    if (route->pattern == NULL) {
        snprintf(why, whylen, "no pattern");
        goto fail;
    }
    rc = parse_pattern(route, def->pattern, why, whylen);
    if (rc == 0)
        rc = route_check(r, def, route, why, whylen);
    if (rc == 0) {
        route->op = orc_openapi_operation(def, route, why, whylen);
        rc = route->op ? 0 : ORC_EINVAL;
    }
    if (rc == 0)
        rc = router_append(r, route);
    if (rc < 0)
        goto fail;
    route->handler = def->handler;
    route->data = def->data;
    route->access = def->access;
    *out = route;
    return 0;
fail:
    route_free(route);
    return rc;
}

void orc_router_init(struct orc_router *r)
{
    memset(r, 0, sizeof(*r));
}

void orc_router_fini(struct orc_router *r)
{
    for (size_t i = 0; i < r->count; i++)
        route_free(r->routes[i]);
    orc_free(r->routes);
    memset(r, 0, sizeof(*r));
}

/* ---- matching ----------------------------------------------------------------------------- */

struct split_path {
    const char *seg[ORC_API_MAX_SEGMENTS]; /* decoded, NUL-terminated, in the buffer */
    size_t n;
};

/* Splits and decodes path into sp (strings in buf). Returns 0, ORC_ENOTFOUND
 * (cannot match any route) or ORC_EFORMAT. */
static int split_decode(const char *path, size_t len, struct split_path *sp, char *buf,
                        size_t buflen)
{
    size_t i = 1, used = 0;

    if (len == 0 || path[0] != '/')
        return ORC_ENOTFOUND;
    if (len > 1 && path[len - 1] == '/') {
        len--; /* one trailing slash */
        if (path[len - 1] == '/')
            return ORC_ENOTFOUND; /* not two */
    }
    sp->n = 0;
    while (i < len) {
        const char *seg = path + i;
        size_t n = 0, out;
        while (i + n < len && seg[n] != '/')
            n++;
        if (n == 0 || sp->n == ORC_API_MAX_SEGMENTS || used + n + 1 > buflen)
            return ORC_ENOTFOUND; /* "//" or too deep */
        if (orc_pct_decode(seg, n, false, buf + used, &out) < 0)
            return ORC_EFORMAT;
        buf[used + out] = '\0';
        sp->seg[sp->n++] = buf + used;
        used += out + 1;
        i += n + 1;
    }
    return 0;
}

static bool route_matches(const struct orc_route *route, const struct split_path *sp)
{
    if (route->nseg != sp->n)
        return false;
    for (size_t i = 0; i < sp->n; i++)
        if (!(route->param_mask >> i & 1) && strcmp(route->segs[i], sp->seg[i]) != 0)
            return false;
    return true;
}

/* Higher is more specific: literal segments count, leftmost weighs most. */
static uint32_t specificity(const struct orc_route *route)
{
    uint32_t score = 0;

    for (size_t i = 0; i < route->nseg; i++)
        if (!(route->param_mask >> i & 1))
            score |= 1u << (ORC_API_MAX_SEGMENTS - 1 - i);
    return score;
}

static void fill_params(const struct orc_route *route, const struct split_path *sp,
                        orc_route_match_t *m)
{
    m->nparams = 0;
    for (size_t i = 0; i < route->nseg && m->nparams < ORC_API_MAX_PARAMS; i++) {
        if (!(route->param_mask >> i & 1))
            continue;
        m->names[m->nparams] = route->segs[i];
        m->values[m->nparams] = (char *)sp->seg[i];
        m->nparams++;
    }
}

int orc_router_match(const struct orc_router *r, unsigned method, const char *path, size_t len,
                     orc_route_match_t *m, char *buf, size_t buflen)
{
    struct split_path sp;
    const struct orc_route *best = NULL, *best_get = NULL;
    int rc;

    memset(m, 0, sizeof(*m));
    rc = split_decode(path, len, &sp, buf, buflen);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < r->count; i++) {
        const struct orc_route *route = r->routes[i];
        if (!route_matches(route, &sp))
            continue;
        m->allow |= route->method;
        if (route->method == method && (best == NULL || specificity(route) > specificity(best)))
            best = route;
        if (route->method == ORC_HTTP_GET &&
            (best_get == NULL || specificity(route) > specificity(best_get)))
            best_get = route;
    }
    if (best == NULL && method == ORC_HTTP_HEAD)
        best = best_get;
    if (m->allow == 0)
        return ORC_ENOTFOUND;
    if (best == NULL)
        return ORC_ENOTSUP;
    m->route = best;
    fill_params(best, &sp, m);
    return 0;
}
