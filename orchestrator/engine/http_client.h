/*
 * An HTTP client on the daemon's loop: libcurl's multi-socket API driven by
 * uv_poll and uv_timer, so no transfer ever blocks the loop. Used for
 * deployment callbacks and gpu-agent's reports, and lent to drivers (host
 * services, orc_http_api in plugins/include/orc/driver.h).
 */
#ifndef ORC_ENGINE_HTTP_CLIENT_H
#define ORC_ENGINE_HTTP_CLIENT_H

#include <uv.h>

#include "orc/driver.h"

struct orc_http;

/* status: the HTTP status (0 when no answer); rc: 0, or ORC_EHTTP with
 * error naming what failed (connection, timeout...). */
typedef void (*orc_http_done_fn)(void *ud, int rc, long status, const char *error);

/* NULL when sa is a public unicast address; else what it is ("a loopback address",
 * "a private address", "a link-local address", ...): what callbacks may not reach. */
const char *orc_addr_private_kind(const struct sockaddr *sa);

/* Creates a client on loop. 0, or ORC_ENOMEM. */
int orc_http_new(uv_loop_t *loop, struct orc_http **out);

/* POSTs body (JSON text, copied) to url within timeout_ms. done runs once,
 * later, on the loop. Returns 0, or < 0 (done will not run). */
int orc_http_post_json(struct orc_http *h, const char *url, const char *body, long timeout_ms,
                       orc_http_done_fn done, void *ud);

/* A POST with more to say: a bearer token (Authorization header), the CA
 * bundle that verifies an https server (NULL: the system's). Strings are
 * copied or used during the call only. */
struct orc_http_post {
    const char *url;
    const char *body; /* JSON text */
    long timeout_ms;
    const char *bearer;  /* NULL: no Authorization header */
    const char *ca_file; /* NULL: the system's CA bundle */
    bool public_only;    /* refuse loopback, private and link-local addresses (the done
                          * callback then gets ORC_EDENIED saying which) */
};
int orc_http_post(struct orc_http *h, const struct orc_http_post *p, orc_http_done_fn done,
                  void *ud);

/* The requests of orc_http_api (driver.h says what each does). owner tags
 * them (a site) for orc_http_abandon. */
int orc_http_request(struct orc_http *h, const void *owner, orc_http_req_t *req,
                     const struct orc_http_request *r);
int orc_http_cancel(struct orc_http *h, orc_http_req_t *req);
const char *orc_http_header(const orc_http_req_t *req, const char *name, char *buf, size_t cap);
void orc_http_release(orc_http_req_t *req);

/* Requests of owner still in flight are dropped: their callbacks never run
 * (the owner is gone). Returns how many. */
unsigned orc_http_abandon(struct orc_http *h, const void *owner);

/* Aborts what is in flight (their done runs with ORC_ECANCELED), closes the
 * handles; closed runs once when everything is closed, then h is freed. */
void orc_http_close(struct orc_http *h, void (*closed)(void *ud), void *ud);

#endif
