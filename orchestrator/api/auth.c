/*
 * Authentication of API callers (auth.h): per issuer, its key set and where it comes
 * from, the fetches that keep it fresh on the loop, the requests waiting for them, and
 * the check of a bearer token down to the caller's roles.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "../engine/http_client.h"
#include "api.h"
#include "auth.h"

#define LOG "auth"
#define AUTH_REFETCH_MS 5000      /* a token with an unknown key fetches again at most this often */
#define AUTH_RETRY_MS 30000       /* a failed fetch is tried again after this */
#define AUTH_TICK_MS 5000         /* the timer that looks for fetches due */
#define AUTH_FETCH_TIMEOUT_MS 10000
#define AUTH_MAX_DOC (1u << 20)

struct auth_issuer {
    struct orc_auth *auth;
    const orc_auth_issuer_conf_t *conf;
    const char *names[2]; /* {issuer, NULL}: the allowlist of its tokens */
    orc_jwks_t *keys;     /* NULL: none loaded yet */
    char *jwks_uri;       /* configured or discovered; NULL: discovery first */
    orc_http_req_t http;
    bool fetching;
    bool failed; /* the last fetch failed (error says why) */
    uint64_t fetched_ms, tried_ms;
    char error[256];
    struct orc_auth_wait *waiters;
};

struct orc_auth {
    uv_loop_t *loop;
    const orc_auth_conf_t *conf;
    struct orc_http *http; /* made on start when an issuer's keys come over HTTP */
    uv_timer_t tick;
    bool started, closing;
    struct auth_issuer *issuers;
    size_t n;
};

/* ---- key sets ---- */

static bool fetched_over_http(const struct auth_issuer *is)
{
    return is->conf->jwks_file == NULL;
}

static void replace_keys(struct auth_issuer *is, orc_jwks_t *keys)
{
    size_t before = is->keys ? orc_jwks_count(is->keys) : 0;

    orc_jwks_free(is->keys);
    is->keys = keys;
    is->fetched_ms = uv_now(is->auth->loop);
    is->failed = false;
    is->error[0] = '\0';
    orc_log(before == orc_jwks_count(keys) ? ORC_LOG_DEBUG : ORC_LOG_INFO, LOG,
            "issuer %s: %zu signing keys", is->conf->issuer, orc_jwks_count(keys));
}

static void fetch_failed(struct auth_issuer *is, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fetch_failed(struct auth_issuer *is, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(is->error, sizeof(is->error), fmt, ap);
    va_end(ap);
    is->failed = true;
    orc_log(ORC_LOG_WARN, LOG, "issuer %s: %s%s", is->conf->issuer, is->error,
            is->keys ? " (the keys read before stay in use)" : "");
}

/* Wakes every request waiting for is's keys. */
static void wake_waiters(struct auth_issuer *is)
{
    while (is->waiters) {
        struct orc_auth_wait *w = is->waiters;
        orc_auth_wait_cancel(w);
        w->ready(w);
    }
}

static int load_file(struct auth_issuer *is, char *err, size_t errlen)
{
    char why[256];
    orc_jwks_t *keys = orc_jwks_load(is->conf->jwks_file, why, sizeof(why));

    is->tried_ms = uv_now(is->auth->loop);
    if (keys == NULL) {
        fetch_failed(is, "key file %s: %s", is->conf->jwks_file, why);
        return orc_failf(err, errlen, ORC_EINVAL, "auth: issuer %s: jwks_file %s: %s",
                     is->conf->issuer, is->conf->jwks_file, why);
    }
    replace_keys(is, keys);
    return 0;
}

static void start_fetch(struct auth_issuer *is);

/* The discovery document gave the jwks_uri: fetch the keys from there. */
static void take_discovery(struct auth_issuer *is, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    const char *uri = json_string_value(json_object_get(doc, "jwks_uri"));
    const char *iss = json_string_value(json_object_get(doc, "issuer"));

    if (uri == NULL) {
        fetch_failed(is, "its OpenID configuration has no jwks_uri");
    } else if (iss && strcmp(iss, is->conf->issuer) != 0) { /* OIDC Discovery 4.3 */
        fetch_failed(is, "its OpenID configuration names another issuer (%.200s)", iss);
    } else if (strncmp(uri, "https://", 8) != 0 && strncmp(is->conf->issuer, "http://", 7) != 0) {
        fetch_failed(is, "its jwks_uri %.200s is not https", uri);
    } else if ((is->jwks_uri = orc_strdup(uri)) == NULL) {
        fetch_failed(is, "out of memory");
    }
    json_decref(doc);
}

static void take_jwks(struct auth_issuer *is, const char *body, size_t len)
{
    char why[256];
    orc_jwks_t *keys = orc_jwks_parse(body, len, why, sizeof(why));

    if (keys == NULL)
        fetch_failed(is, "key set from %s: %s", is->jwks_uri, why);
    else
        replace_keys(is, keys);
}

static void on_fetched(orc_http_req_t *req, int status)
{
    struct auth_issuer *is = req->data;
    bool discovery = is->jwks_uri == NULL;

    is->fetching = false;
    if (status == ORC_ECANCELED) {
        orc_http_release(req);
        wake_waiters(is);
        return;
    }
    if (status < 0 || req->code != 200 || req->truncated)
        fetch_failed(is, "GET %s: %s", discovery ? "its OpenID configuration" : is->jwks_uri,
                     status < 0 ? req->error
                     : req->truncated ? "the answer is larger than 1 MiB"
                                      : "the answer is not 200 OK");
    else if (discovery)
        take_discovery(is, req->body ? req->body : "", req->body_len);
    else
        take_jwks(is, req->body ? req->body : "", req->body_len);
    orc_http_release(req);
    if (discovery && is->jwks_uri && !is->failed) {
        start_fetch(is); /* on to the keys */
        return;
    }
    wake_waiters(is);
}

static void start_fetch(struct auth_issuer *is)
{
    struct orc_auth *a = is->auth;
    char url[1200];
    struct orc_http_request r = {
        .method = "GET",
        .url = url,
        .ca_file = a->conf->ca_file,
        .timeout_ms = AUTH_FETCH_TIMEOUT_MS,
        .max_body = AUTH_MAX_DOC,
    };
    static const char *const headers[] = {"Accept: application/json", NULL};
    int rc;

    if (is->fetching || a->closing)
        return;
    is->tried_ms = uv_now(a->loop);
    if (!fetched_over_http(is)) {
        load_file(is, NULL, 0);
        wake_waiters(is);
        return;
    }
    if (is->jwks_uri)
        snprintf(url, sizeof(url), "%s", is->jwks_uri);
    else /* OIDC Discovery 4: the issuer, without a trailing slash, + the well-known path */
        snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration",
                 (int)(strlen(is->conf->issuer) -
                       (is->conf->issuer[strlen(is->conf->issuer) - 1] == '/')),
                 is->conf->issuer);
    r.headers = headers;
    memset(&is->http, 0, sizeof(is->http));
    is->http.data = is;
    is->http.cb = on_fetched;
    rc = orc_http_request(a->http, a, &is->http, &r);
    if (rc < 0) {
        fetch_failed(is, "GET %s: %s", url, orc_strerror(rc));
        wake_waiters(is);
        return;
    }
    is->fetching = true;
}

/* Every AUTH_TICK_MS: fetches that are due (a refresh, or a retry after a failure). */
static void on_tick(uv_timer_t *t)
{
    struct orc_auth *a = t->data;
    uint64_t now = uv_now(a->loop);

    for (size_t i = 0; i < a->n; i++) {
        struct auth_issuer *is = &a->issuers[i];
        bool retry = (is->failed || is->keys == NULL) && now - is->tried_ms >= AUTH_RETRY_MS;
        if (retry || now - is->fetched_ms >= a->conf->jwks_refresh_ms)
            start_fetch(is);
    }
}

/* ---- lifecycle ---- */

int orc_auth_new(uv_loop_t *loop, const orc_auth_conf_t *conf, struct orc_auth **out, char *err,
                 size_t errlen)
{
    struct orc_auth *a = orc_calloc(1, sizeof(*a));
    int rc = 0;

    *out = NULL;
    if (a == NULL || (a->issuers = orc_calloc(conf->nissuers + 1, sizeof(*a->issuers))) == NULL) {
        orc_free(a);
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    }
    a->loop = loop;
    a->conf = conf;
    a->n = conf->nissuers;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        struct auth_issuer *is = &a->issuers[i];
        is->auth = a;
        is->conf = &conf->issuers[i];
        is->names[0] = is->conf->issuer;
        if (is->conf->jwks_uri && (is->jwks_uri = orc_strdup(is->conf->jwks_uri)) == NULL)
            rc = orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
        else if (!fetched_over_http(is))
            rc = load_file(is, err, errlen);
    }
    if (rc < 0) {
        orc_auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int orc_auth_start(struct orc_auth *a)
{
    bool http = false;
    int rc;

    for (size_t i = 0; i < a->n; i++)
        http = http || fetched_over_http(&a->issuers[i]);
    if (http && (rc = orc_http_new(a->loop, &a->http)) < 0)
        return rc;
    uv_timer_init(a->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, on_tick, AUTH_TICK_MS, AUTH_TICK_MS);
    a->started = true;
    for (size_t i = 0; i < a->n; i++)
        if (fetched_over_http(&a->issuers[i]))
            start_fetch(&a->issuers[i]);
    return 0;
}

void orc_auth_close(struct orc_auth *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    if (!a->started)
        return;
    uv_close((uv_handle_t *)&a->tick, NULL);
    if (a->http)
        orc_http_close(a->http, NULL, NULL); /* fetches end with ECANCELED: waiters wake */
    a->http = NULL;
    for (size_t i = 0; i < a->n; i++)
        wake_waiters(&a->issuers[i]);
}

void orc_auth_free(struct orc_auth *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        orc_jwks_free(a->issuers[i].keys);
        orc_free(a->issuers[i].jwks_uri);
    }
    orc_free(a->issuers);
    orc_free(a);
}

bool orc_auth_keys_ready(struct orc_auth *a, const char **reason)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->issuers[i].keys == NULL) {
            *reason = "the keys of an issuer are not loaded (see the log)";
            return false;
        }
    return true;
}

void orc_auth_wait_cancel(struct orc_auth_wait *w)
{
    if (w == NULL || w->prev == NULL)
        return;
    *w->prev = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = NULL;
    w->prev = NULL;
}

/* ---- a request ---- */

static int outcome(struct orc_auth_result *res, int status, const char *error, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
static int outcome(struct orc_auth_result *res, int status, const char *error, const char *fmt,
                   ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(res->why, sizeof(res->why), fmt, ap);
    va_end(ap);
    res->status = status;
    res->error = error;
    return 0;
}

static bool in_any(const json_t *groups, const json_t *wanted)
{
    const json_t *g, *w;
    size_t i, j;

    json_array_foreach(groups, i, g)
        json_array_foreach(wanted, j, w)
            if (json_equal(g, w))
                return true;
    return false;
}

static unsigned roles_of(const orc_auth_conf_t *conf, const json_t *groups)
{
    unsigned roles = 0;

    if (conf->admin_groups && in_any(groups, conf->admin_groups))
        roles |= ORC_ROLE_ADMIN | ORC_ROLE_OPERATOR | ORC_ROLE_USER;
    if (conf->operator_groups && in_any(groups, conf->operator_groups))
        roles |= ORC_ROLE_OPERATOR | ORC_ROLE_USER;
    if (json_array_size(conf->user_groups) == 0 || in_any(groups, conf->user_groups))
        roles |= ORC_ROLE_USER;
    return roles;
}

static struct auth_issuer *issuer_named(struct orc_auth *a, const char *iss)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->issuers[i].conf->issuer, iss) == 0)
            return &a->issuers[i];
    return NULL;
}

static bool may_refetch(const struct auth_issuer *is)
{
    return is->tried_ms == 0 || uv_now(is->auth->loop) - is->tried_ms >= AUTH_REFETCH_MS;
}

/* A token names a key that is has not got, or is has no keys yet: queue w until the
 * fetch under way, or one started now, ends. False when none is or may be made. */
static bool wait_for_keys(struct auth_issuer *is, struct orc_auth_wait *w)
{
    if (w == NULL || is->auth->closing || !is->auth->started || !fetched_over_http(is))
        return false;
    if (!is->fetching) {
        if (!may_refetch(is))
            return false;
        start_fetch(is);
        if (!is->fetching) /* it failed at once */
            return false;
    }
    w->next = is->waiters;
    w->prev = &is->waiters;
    if (is->waiters)
        is->waiters->prev = &w->next;
    is->waiters = w;
    return true;
}

int orc_auth_check(struct orc_auth *a, const char *authorization, struct orc_auth_wait *w,
                   struct orc_auth_result *res)
{
    struct orc_jwt_rules rules = {
        .audience = a->conf->audience,
        .groups_claim = a->conf->groups_claim,
        .skew_s = a->conf->clock_skew_s,
    };
    const char *token = orc_jwt_bearer(authorization);
    struct auth_issuer *is;
    char iss[ORC_JWT_ISSUER_LEN];
    int rc;

    memset(res, 0, sizeof(*res));
    if (authorization == NULL)
        return outcome(res, 401, NULL, "a bearer token is required (Authorization: Bearer <token>)");
    if (token == NULL)
        return outcome(res, 401, "invalid_request",
                       "the Authorization header is not 'Bearer <token>'");
    if (orc_jwt_peek_issuer(token, iss, sizeof(iss)) < 0)
        return outcome(res, 401, "invalid_token", "the token is not a JWT with an issuer (iss)");
    is = issuer_named(a, iss);
    if (is == NULL)
        return outcome(res, 401, "invalid_token", "issuer %.200s is not accepted", iss);
    rules.issuers = is->names;
    rc = orc_jwt_verify(is->keys, &rules, token, &res->id, res->why, sizeof(res->why));
    if (rc == ORC_ENOTFOUND && !fetched_over_http(is) && may_refetch(is) &&
        load_file(is, NULL, 0) == 0) /* the file may have new keys */
        rc = orc_jwt_verify(is->keys, &rules, token, &res->id, res->why, sizeof(res->why));
    if (rc == ORC_ENOTFOUND && wait_for_keys(is, w))
        return ORC_EAGAIN;
    if (rc == ORC_ENOTFOUND && is->keys == NULL)
        return outcome(res, 503, NULL, "the keys of issuer %.200s are not available: %s", iss,
                       is->error[0] ? is->error : "not fetched yet");
    if (rc == ORC_ENOMEM)
        return outcome(res, 503, NULL, "out of memory");
    if (rc < 0) { /* why says it already */
        res->status = 401;
        res->error = "invalid_token";
        return 0;
    }
    res->roles = roles_of(a->conf, res->id.groups);
    if (res->roles == 0) {
        orc_jwt_identity_clear(&res->id);
        return outcome(res, 403, "insufficient_scope",
                       "the caller is in none of the groups allowed to use this service");
    }
    return 0;
}
