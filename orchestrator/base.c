/*
 * The daemon's base services (base.h): allocator, logging, clocks, the API
 * time format and UUIDv7. The allocator aborts on exhaustion only through
 * orc_malloc's callers at the top level: here it returns NULL like malloc.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base.h"

static orc_log_level_t log_level = ORC_LOG_INFO;
static orc_log_format_t log_format = ORC_LOG_TEXT;

void *orc_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *orc_calloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size ? size : 1);
}

void *orc_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void orc_free(void *p)
{
    free(p);
}

int orc_reserve_one(void **items, size_t *cap, size_t count, size_t size)
{
    size_t want;
    void *grown;

    if (count < *cap)
        return 0;
    want = *cap ? *cap * 2 : 8;
    if (want < *cap || want > SIZE_MAX / size)
        return ORC_ENOMEM;
    grown = orc_realloc(*items, want * size);
    if (grown == NULL)
        return ORC_ENOMEM;
    *items = grown;
    *cap = want;
    return 0;
}

char *orc_strndup(const char *s, size_t n)
{
    char *d = orc_malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *orc_strdup(const char *s)
{
    return s ? orc_strndup(s, strlen(s)) : NULL;
}

int orc_failf(char *buf, size_t len, int rc, const char *fmt, ...)
{
    va_list ap;

    if (buf != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

char *orc_asprintf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || (s = orc_malloc((size_t)n + 1)) == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void orc_log_set_level(orc_log_level_t level)
{
    log_level = level;
}

bool orc_log_enabled(orc_log_level_t level)
{
    return level >= log_level;
}

void orc_log_set_format(orc_log_format_t format)
{
    log_format = format;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
                               : (s[0] & 0xf8) == 0xf0 ? 4 : 0;

    if (n == 2 && s[0] < 0xc2)
        return 0; /* overlong */
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A line being built: written with one write, so that lines never interleave. */
struct line_buf {
    char text[16384];
    size_t len;
};

/* The last bytes are kept for what closes the line ("}\n" after a field's quote). */
#define LINE_CLOSE_ROOM 8

static void buf_put(struct line_buf *b, const char *s, size_t n)
{
    if (b->len + n > sizeof(b->text) - LINE_CLOSE_ROOM)
        return; /* an over-long value is cut off here, at a character boundary */
    memcpy(b->text + b->len, s, n);
    b->len += n;
}

static void buf_close(struct line_buf *b, const char *s)
{
    size_t n = strlen(s);

    memcpy(b->text + b->len, s, n);
    b->len += n;
}

/* ,"key":"value" with JSON escapes; bytes that are not UTF-8 become '?'. */
static void json_field(struct line_buf *b, const char *key, const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    char esc[8];

    buf_put(b, ",\"", 2);
    buf_put(b, key, strlen(key));
    buf_put(b, "\":\"", 3);
    while (*p) {
        size_t n = utf8_len(p);
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            buf_put(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", *p);
            buf_put(b, esc, 6);
        } else {
            buf_put(b, n ? (const char *)p : "?", n ? n : 1);
        }
        p += n ? n : 1;
    }
    buf_close(b, "\"");
}

static void log_line(orc_log_level_t level, const char *subsystem, const orc_log_ctx_t *ctx,
                     const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct line_buf b;
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (log_format == ORC_LOG_TEXT) {
        const char *what = ctx && ctx->deployment ? "deployment " : ctx && ctx->site ? "site " : "";
        const char *name = ctx && ctx->deployment ? ctx->deployment : ctx && ctx->site ? ctx->site : "";
        fprintf(stderr, "%s.%03ldZ %s %s: %s%s%s%s\n", when, ts.tv_nsec / 1000000, names[level],
                subsystem, what, name, *what ? ": " : "", msg);
        return;
    }
    b.len = (size_t)snprintf(b.text, sizeof(b.text), "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\"",
                             when, ts.tv_nsec / 1000000, names[level]);
    json_field(&b, "subsystem", subsystem);
    if (ctx && ctx->deployment)
        json_field(&b, "deployment", ctx->deployment);
    if (ctx && ctx->site)
        json_field(&b, "site", ctx->site);
    if (ctx && ctx->node)
        json_field(&b, "node", ctx->node);
    json_field(&b, "message", msg);
    buf_close(&b, "}\n");
    fwrite(b.text, 1, b.len, stderr);
}

static void log_v(orc_log_level_t level, const char *subsystem, const orc_log_ctx_t *ctx,
                  const char *fmt, va_list ap)
{
    char line[2048];

    if (level < log_level)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    log_line(level, subsystem, ctx, line);
}

void orc_log(orc_log_level_t level, const char *subsystem, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(level, subsystem, NULL, fmt, ap);
    va_end(ap);
}

void orc_log_ctx(orc_log_level_t level, const char *subsystem, const orc_log_ctx_t *ctx,
                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_v(level, subsystem, ctx, fmt, ap);
    va_end(ap);
}

int64_t orc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *orc_time_format(int64_t ms, char *buf)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    strftime(buf, ORC_TIME_LEN, "%Y-%m-%dT%H:%M+0000", &tm);
    return buf;
}

int orc_uuid7(char out[ORC_UUID_LEN])
{
    unsigned char b[16];
    uint64_t ms = (uint64_t)orc_now_ms();

    if (getrandom(b + 6, 10, 0) != 10)
        return -errno;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0F)); /* version 7 */
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3F)); /* RFC 9562 variant */
    orc_uuid_format(b, out);
    return 0;
}

void orc_uuid_format(const unsigned char b[16], char out[ORC_UUID_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

bool orc_uuid_valid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return s[36] == '\0';
}
