/*
 * Base services of the daemon shared by every subsystem (api, store, engine,
 * sched): the allocator, logging, clocks, the API's time format and
 * time-ordered UUIDs. Errors are the project's ORC_E* codes (orc/errno.h).
 */
#ifndef ORC_BASE_H
#define ORC_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orc/errno.h"

/* ---- allocator (base.c): every heap allocation of the daemon goes here ---- */
void *orc_malloc(size_t n);
void *orc_calloc(size_t n, size_t size);
void *orc_realloc(void *p, size_t n);
void orc_free(void *p);
char *orc_strdup(const char *s);
/* Room for one more item in an array of *cap items of size bytes holding count: grows
 * *items (doubling, from 8) when it is full. 0, or ORC_ENOMEM (the array unchanged). */
int orc_reserve_one(void **items, size_t *cap, size_t count, size_t size);
char *orc_strndup(const char *s, size_t n);
/* printf into a new string; NULL on OOM. */
char *orc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The error convention's helper: formats the message into buf (len bytes; nothing when
 * buf is NULL or len 0) and returns rc, so that `return orc_failf(err, n, ORC_EINVAL,
 * "...")` reads well. */
int orc_failf(char *buf, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- logging ---- */
typedef enum { ORC_LOG_DEBUG, ORC_LOG_INFO, ORC_LOG_WARN, ORC_LOG_ERROR } orc_log_level_t;

typedef enum { ORC_LOG_TEXT, ORC_LOG_JSON } orc_log_format_t;

/* What a line is about; each field may be NULL. */
typedef struct {
    const char *deployment; /* its uuid */
    const char *site;
    const char *node; /* a node instance: "vm[0]" */
} orc_log_ctx_t;

/* Lines go to stderr, one per call. Text: "2026-11-26T15:24:07.123Z level subsystem:
 * message", with "deployment UUID: " (else "site NAME: ") before the message when the
 * context names one.
 * JSON (orc_log_set_format): one object per line, {"time", "level", "subsystem",
 * "deployment", "site", "node" (those the context has), "message"}. */
void orc_log_set_level(orc_log_level_t level);
void orc_log_set_format(orc_log_format_t format);
/* Whether a line at level would be written (what to skip preparing when not). */
bool orc_log_enabled(orc_log_level_t level);
void orc_log(orc_log_level_t level, const char *subsystem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void orc_log_ctx(orc_log_level_t level, const char *subsystem, const orc_log_ctx_t *ctx,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- time ---- */
/* Wall clock, milliseconds since the epoch (UTC). */
int64_t orc_now_ms(void);
/* The REST API's time format: "yyyy-MM-dd'T'HH:mmZ" in UTC, e.g.
 * "2026-11-26T15:24+0000" (minute precision, +0000 without colon). buf must
 * hold ORC_TIME_LEN bytes. Returns buf. */
#define ORC_TIME_LEN 24
const char *orc_time_format(int64_t ms, char *buf);

/* ---- identifiers ---- */
/* A time-ordered UUID (version 7, RFC 9562) as 36 characters plus NUL:
 * sorts by creation time, random in its low bits. Returns 0 or a negative
 * errno-style code when the system's random source fails. */
#define ORC_UUID_LEN 37
int orc_uuid7(char out[ORC_UUID_LEN]);
/* 16 bytes as "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (lower case). */
void orc_uuid_format(const unsigned char b[16], char out[ORC_UUID_LEN]);
/* True if s is a UUID in canonical text form (any version). */
bool orc_uuid_valid(const char *s);

#endif
