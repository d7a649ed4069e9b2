/*
 * Authentication of API callers (docs/security.md): the key set of each configured OIDC
 * issuer (from a file, from its jwks_uri, or found by OIDC discovery), kept fresh on the
 * loop (fetched again every auth.jwks_refresh, and at once when a token names a key the
 * set lacks: the issuer rotated its keys), and the check of one Authorization header
 * against them, down to the caller's roles. A request whose issuer's keys are being
 * fetched waits for them (orc_auth_wait) instead of failing. Loop thread only.
 */
#ifndef ORC_API_AUTH_H
#define ORC_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "../config.h"
#include "jwt_auth.h"

struct orc_auth;

/* A request waiting for an issuer's keys: ready runs once they came (or could not). */
struct orc_auth_wait {
    struct orc_auth_wait *next, **prev;
    void (*ready)(struct orc_auth_wait *w);
};

/* What orc_auth_check decided. */
struct orc_auth_result {
    int status;        /* 0: let in; 401, 403 or 503 */
    const char *error; /* RFC 6750 code: "invalid_token", "insufficient_scope"; NULL: none */
    char why[320];     /* for the response and the log; never the token */
    struct orc_jwt_identity id; /* status 0: who (orc_jwt_identity_clear it) */
    unsigned roles;             /* ORC_ROLE_* */
};

/* Reads the key files of conf (which must outlive it). 0 and *out; ORC_EINVAL with err
 * (which issuer, which file, why); ORC_ENOMEM. */
int orc_auth_new(uv_loop_t *loop, const orc_auth_conf_t *conf, struct orc_auth **out, char *err,
                 size_t errlen);
/* Starts fetching the key sets that come over HTTP and the refresh timer. 0 or ORC_E*. */
int orc_auth_start(struct orc_auth *a);
/* Stops fetching; waiting requests hear ready (and then get 503). The loop must run
 * before orc_auth_free. NULL-safe. */
void orc_auth_close(struct orc_auth *a);
void orc_auth_free(struct orc_auth *a);

/* Checks an Authorization header value (NULL: none). Returns 0 with *res filled, or
 * ORC_EAGAIN when w (not NULL) was queued until the issuer's keys are fetched again:
 * check again when w->ready runs (with w NULL then, so that it cannot wait twice). */
int orc_auth_check(struct orc_auth *a, const char *authorization, struct orc_auth_wait *w,
                   struct orc_auth_result *res);
/* Takes w off its queue (its request went away). NULL-safe, idempotent. */
void orc_auth_wait_cancel(struct orc_auth_wait *w);
/* True when every issuer's keys are loaded; else *reason says which is missing. */
bool orc_auth_keys_ready(struct orc_auth *a, const char **reason);

#endif
