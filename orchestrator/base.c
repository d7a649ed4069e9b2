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

void orc_log(orc_log_level_t level, const char *subsystem, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    struct tm tm;
    char when[32], line[2048];
    va_list ap;

    if (level < log_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, names[level], subsystem,
            line);
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
