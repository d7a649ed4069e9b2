/*
 * What the openstack and kubernetes drivers share (linked into both shared
 * objects, not a driver of its own): one REST call over the host's HTTP
 * client (orc_host_api.http) with retries, backoff and jitter, its JSON
 * answer parsed, and the API's error message taken from the body; and small
 * string helpers. Everything runs on the daemon's loop thread.
 */
#ifndef ORC_CLOUD_H
#define ORC_CLOUD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/driver.h"

#define CLD_MAX_HEADERS 8
#define CLD_ERROR_LEN ORC_OP_ERROR_LEN

/* Where and how a site's API is reached (strings borrowed: they outlive
 * every call). */
struct cld_tls {
    const char *ca_file, *cert_file, *key_file;
    uint32_t timeout_ms, connect_timeout_ms;
};

/* The retry policy of one call. A call is retried when no answer came
 * (ORC_EHTTP: refused, reset, timed out), or the answer was 429, 500, 502,
 * 503 or 504, as long as attempts and the deadline allow; the wait before
 * attempt n is a random time in [0, min(cap, base * 2^n)] ("full jitter"),
 * or the answer's Retry-After when it says longer (capped by cap). A
 * request that is not idempotent (a POST whose effect a retry could
 * double) is retried only when the server said it did nothing (429, 503). */
struct cld_retry {
    uint32_t attempts;    /* in all; 0: 5 */
    uint32_t base_ms;     /* 0: 250 */
    uint32_t cap_ms;      /* 0: 8000 */
    uint32_t deadline_ms; /* the whole call, retries included; 0: 120000 */
    bool idempotent;      /* safe to send again after no answer or a 5xx */
};

struct cld_call;
typedef void (*cld_cb)(struct cld_call *c, int status);

/* One call in flight: caller-allocated, zeroed by cld_call_start. status in
 * cb: 0 (an answer came: code; json when the body was JSON), ORC_EHTTP (no
 * answer, retries spent: error says so), ORC_ECANCELED, ORC_ENOMEM. */
struct cld_call {
    void *data; /* the caller's */
    /* results */
    long code;
    json_t *json;   /* the body parsed, or NULL (not JSON, empty) */
    char *body;     /* the raw body (NUL-terminated), or NULL */
    size_t body_len;
    char location[512]; /* the Location header, or "" */
    char token[1024];   /* X-Subject-Token (Keystone), or "" */
    char error[CLD_ERROR_LEN];
    uint32_t attempts;
    /* private */
    const struct orc_host_api *host;
    cld_cb cb;
    struct cld_retry retry;
    struct cld_tls tls;
    char method[8];
    char *url, *req_body;
    size_t req_body_len;
    char *headers[CLD_MAX_HEADERS + 1];
    orc_http_req_t req;
    uint64_t timer;
    int64_t started_ms;
    uint64_t rng;
    bool busy, canceled;
};

/* Sends METHOD url with body (JSON text or NULL) and the header lines
 * (NULL-terminated, at most CLD_MAX_HEADERS; "Content-Type:
 * application/json" is added when there is a body and none says
 * otherwise). Everything is copied. 0 (cb runs once, later), or < 0 with
 * c->error (cb never runs). */
int cld_call_start(struct cld_call *c, const struct orc_host_api *host, const struct cld_tls *tls,
                   const struct cld_retry *retry, const char *method, const char *url,
                   const char *body, const char *const *headers, cld_cb cb);
/* The call ends with ORC_ECANCELED (later). NULL-safe; a call not in
 * flight is left alone. */
void cld_call_cancel(struct cld_call *c);
/* Frees the results and copies (NULL-safe, after cb or before a restart). */
void cld_call_release(struct cld_call *c);
/* true while the call is in flight (started, cb not run yet) */
bool cld_call_busy(const struct cld_call *c);

/* The API's own words about a failed answer: the first of message, detail,
 * title, reason found at the body's top level or one level down ({"error":
 * {"message"}}, {"itemNotFound": {"message"}}, {"NeutronError": {...}},
 * Kubernetes' Status {"message"}); else the body's first line; else the
 * status. Written into buf. */
const char *cld_api_message(const struct cld_call *c, char *buf, size_t cap);

/* A transient answer, worth another try later: 429 or 5xx. */
bool cld_transient(long code);

/* ---- a site's config (cloud_conf.c) ---- */

/* The site config being read: its JSON object and the first error ("DRIVER: config:
 * KEY: what"); rc 0, ORC_EINVAL or ORC_ENOMEM. */
struct cld_conf {
    const struct orc_host_api *host;
    const char *driver; /* "openstack": the errors' first word */
    json_t *o;
    char *err;
    size_t errlen;
    int rc;
};

/* Records the first error about key (later ones are dropped). */
void cld_conf_fail(struct cld_conf *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cld_conf_oom(struct cld_conf *p);
/* A host->malloc'd copy of s (NULL stays NULL; out of memory is recorded). */
char *cld_conf_dup(struct cld_conf *p, const char *s);
/* key as a string (a copy), dflt when absent; cld_conf_text wants it non-empty. */
char *cld_conf_str(struct cld_conf *p, const char *key, const char *dflt);
char *cld_conf_text(struct cld_conf *p, const char *key, const char *dflt);
/* key as an integer from min to max, dflt when absent. */
uint32_t cld_conf_u32(struct cld_conf *p, const char *key, uint32_t min, uint32_t max,
                      uint32_t dflt);
/* The index of key's value in names (NULL-terminated), dflt when absent. */
int cld_conf_pick(struct cld_conf *p, const char *key, const char *const *names, int dflt);

/* ---- strings ---- */

char *cld_strdup(const struct orc_host_api *host, const char *s);
char *cld_printf(const struct orc_host_api *host, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* s with every character outside [A-Za-z0-9-_.~] as %XX, into buf; false
 * when it does not fit */
bool cld_urlencode(const char *s, char *buf, size_t cap);
/* The monotonic clock in ms. */
int64_t cld_now_ms(void);
/* A uniform random number in [0, n) from a per-caller state *rng (seeded
 * when 0). */
uint64_t cld_rand(uint64_t *rng, uint64_t n);

/* JSON helpers: the string at key of o, or dflt (never NULL when dflt is not) */
const char *cld_jstr(const json_t *o, const char *key, const char *dflt);
/* the object at a dotted path ("status.loadBalancer"), or NULL */
json_t *cld_jpath(const json_t *o, const char *path);

#endif
