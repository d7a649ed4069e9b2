/*
 * Keystone v3 (ost.h): one token per site, scoped to the project (password) or
 * to the application credential's project, with the catalog it comes with. The
 * token is fetched when the first call needs it and again once it is within five
 * minutes of its expiry (a fifth of its lifetime for short-lived ones) or after a
 * 401; one request at a time, every op that needs it meanwhile waits. The
 * endpoints are the catalog's (interface and region of the config) unless the
 * config overrides them. The secret goes into the request body only: it is never
 * logged, and op errors never quote the body sent.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ost.h"

static const char *const svc_type[OST_NSVC] = {"compute", "network", "image"};

static bool token_ok(const struct ost *s)
{
    return s->auth_header != NULL && cld_now_ms() < s->token_renew_ms;
}

void ost_auth_invalidate(struct ost *s, uint64_t gen)
{
    if (gen == s->token_gen)
        s->token_renew_ms = 0;
}

void ost_auth_leave(struct oop *o)
{
    struct ost *s = o->s;

    if (!o->auth_wait)
        return;
    for (struct oop **pp = &s->auth_waiters; *pp; pp = &(*pp)->wnext)
        if (*pp == o) {
            *pp = o->wnext;
            break;
        }
    o->wnext = NULL;
    o->auth_wait = false;
}

void ost_auth_cancel(struct ost *s)
{
    if (s->auth_busy)
        cld_call_cancel(&s->auth);
}

void ost_auth_free(struct ost *s)
{
    cld_call_release(&s->auth);
    s->host->free(s->auth_header);
    s->auth_header = NULL;
    for (int i = 0; i < OST_NSVC; i++) {
        s->host->free(s->url[i]);
        s->url[i] = NULL;
    }
}

/* ---- the request ---- */

static json_t *domain_of(const char *name, const char *id)
{
    if (id)
        return json_pack("{ss}", "id", id);
    return json_pack("{ss}", "name", name ? name : "Default");
}

static json_t *user_of(const struct ost_conf *c)
{
    if (c->user_id)
        return json_pack("{ss}", "id", c->user_id);
    return json_pack("{ss so}", "name", c->username,
                     "domain", domain_of(c->user_domain_name, c->user_domain_id));
}

static json_t *auth_body(const struct ost *s)
{
    const struct ost_conf *c = &s->c;
    json_t *identity, *scope = NULL, *user, *cred;

    if (c->auth_type == OST_AUTH_APPCRED) {
        if (c->appcred_id) {
            cred = json_pack("{ss ss}", "id", c->appcred_id, "secret", s->secret);
        } else {
            cred = json_pack("{ss ss}", "name", c->appcred_name, "secret", s->secret);
            if (cred && json_object_set_new(cred, "user", user_of(c)) < 0) {
                json_decref(cred);
                cred = NULL;
            }
        }
        identity = json_pack("{s[s] so*}", "methods", "application_credential",
                             "application_credential", cred);
    } else {
        user = user_of(c);
        if (user)
            json_object_set_new(user, "password", json_string(s->secret));
        identity = json_pack("{s[s] s{so*}}", "methods", "password", "password", "user", user);
        if (c->project_id)
            scope = json_pack("{s{ss}}", "project", "id", c->project_id);
        else
            scope = json_pack("{s{ss so}}", "project", "name", c->project_name, "domain",
                              domain_of(c->project_domain_name, c->project_domain_id));
    }
    return json_pack("{s{so* so*}}", "auth", "identity", identity, "scope", scope);
}

/* ---- the answer ---- */

/* seconds since the epoch of an ISO 8601 UTC time ("2024-05-01T12:00:00.000000Z"), or -1 */
static int64_t iso_time(const char *t)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec;

    if (t == NULL || sscanf(t, "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &sec) != 6)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

/* url without trailing slashes, with the API version the driver speaks appended
 * when it lacks one (network: /v2.0, image: /v2, compute: /v2.1) */
static char *normalize(struct ost *s, int svc, const char *url)
{
    size_t n = strlen(url);
    static const char *const suffix[OST_NSVC] = {"/v2.1", "/v2.0", "/v2"};
    bool has;

    while (n > 0 && url[n - 1] == '/')
        n--;
    if (svc == OST_COMPUTE)
        has = strstr(url, "/v2.1") || strstr(url, "/v2/") ||
              (n >= 3 && strncmp(url + n - 3, "/v2", 3) == 0);
    else
        has = n >= strlen(suffix[svc]) && strncmp(url + n - strlen(suffix[svc]), suffix[svc],
                                                  strlen(suffix[svc])) == 0;
    return cld_printf(s->host, "%.*s%s", (int)n, url, has ? "" : suffix[svc]);
}

static const char *catalog_url(const struct ost *s, const json_t *catalog, int svc)
{
    size_t i, j;
    json_t *e, *ep;

    json_array_foreach(catalog, i, e) {
        if (strcmp(cld_jstr(e, "type", ""), svc_type[svc]) != 0)
            continue;
        json_array_foreach(json_object_get(e, "endpoints"), j, ep) {
            const char *region = cld_jstr(ep, "region_id", cld_jstr(ep, "region", NULL));
            if (strcmp(cld_jstr(ep, "interface", ""), s->c.interface) == 0 &&
                (region == NULL || strcmp(region, s->c.region) == 0 ||
                 strcmp(cld_jstr(ep, "region", ""), s->c.region) == 0))
                return cld_jstr(ep, "url", NULL);
        }
    }
    return NULL;
}

/* The endpoints from the overrides and the catalog. 0, or < 0 with err. */
static int endpoints(struct ost *s, const json_t *catalog, char *err, size_t cap)
{
    char *url[OST_NSVC] = {NULL};

    for (int i = 0; i < OST_NSVC; i++) {
        const char *u = s->c.endpoint[i] ? s->c.endpoint[i] : catalog_url(s, catalog, i);
        if (u == NULL) {
            snprintf(err, cap,
                     "the catalog has no %s endpoint (interface %s, region %s): set endpoints.%s "
                     "in the site config",
                     svc_type[i], s->c.interface, s->c.region, svc_type[i]);
            for (int k = 0; k < i; k++)
                s->host->free(url[k]);
            return ORC_EINVAL;
        }
        url[i] = normalize(s, i, u);
        if (url[i] == NULL) {
            for (int k = 0; k < i; k++)
                s->host->free(url[k]);
            snprintf(err, cap, "out of memory");
            return ORC_ENOMEM;
        }
    }
    for (int i = 0; i < OST_NSVC; i++) {
        s->host->free(s->url[i]);
        s->url[i] = url[i];
    }
    return 0;
}

static int take_token(struct ost *s, char *err, size_t cap)
{
    const struct cld_call *c = &s->auth;
    json_t *tok = json_object_get(c->json, "token");
    int64_t exp = iso_time(cld_jstr(tok, "expires_at", NULL));
    int64_t iss = iso_time(cld_jstr(tok, "issued_at", NULL));
    int64_t life_ms, margin;
    char *header;
    int rc;

    if (c->token[0] == '\0' || !json_is_object(tok)) {
        snprintf(err, cap, "Keystone answered %ld without a token", c->code);
        return ORC_EDRIVER;
    }
    rc = endpoints(s, json_object_get(tok, "catalog"), err, cap);
    if (rc < 0)
        return rc;
    header = cld_printf(s->host, "X-Auth-Token: %s", c->token);
    if (header == NULL) {
        snprintf(err, cap, "out of memory");
        return ORC_ENOMEM;
    }
    s->host->free(s->auth_header);
    s->auth_header = header;
    s->token_gen++;
    ost_copy(s->project_id, sizeof(s->project_id),
             cld_jstr(json_object_get(tok, "project"), "id", NULL));
    /* the lifetime as Keystone counts it (clock skew does not matter) */
    life_ms = exp < 0 ? 3600000 : (iss >= 0 ? exp - iss : exp - (int64_t)time(NULL)) * 1000;
    if (life_ms < 1000)
        life_ms = 1000;
    margin = life_ms / 5 < OST_RENEW_MARGIN_MS ? life_ms / 5 : OST_RENEW_MARGIN_MS;
    s->token_expire_ms = cld_now_ms() + life_ms;
    s->token_renew_ms = s->token_expire_ms - margin;
    s->host->log(s->host, ORC_DRV_LOG_DEBUG,
                 "openstack: token %llu for project %s, renewed in %lld s",
                 (unsigned long long)s->token_gen, s->project_id,
                 (long long)((life_ms - margin) / 1000));
    return 0;
}

/* The waiters' next move: their pending call, or its failure. */
static void on_resume(void *arg)
{
    struct oop *o = arg;
    int rc = o->status;

    o->timer = 0;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    if (rc == 0)
        rc = oop_send(o);
    if (rc < 0)
        o->next_step(o, rc);
}

static void wake(struct ost *s, int status, const char *err)
{
    struct oop *w = s->auth_waiters;

    s->auth_waiters = NULL;
    while (w) {
        struct oop *next = w->wnext;
        w->wnext = NULL;
        w->auth_wait = false;
        w->status = status;
        if (status < 0) {
            cld_call_release(&w->call);
            w->call.code = 0;
            snprintf(w->call.error, sizeof(w->call.error), "%s", err);
        }
        w->timer = s->host->timer_start(s->host, 0, on_resume, w);
        if (w->timer == 0) { /* out of memory: now, as the failure it is */
            snprintf(w->call.error, sizeof(w->call.error), "out of memory");
            w->next_step(w, ORC_ENOMEM);
        }
        w = next;
    }
}

static void on_auth(struct cld_call *c, int status)
{
    struct ost *s = c->data;
    char err[ORC_OP_ERROR_LEN], msg[160];
    int rc = 0;

    s->auth_busy = false;
    if (status == ORC_ECANCELED || s->closing) {
        rc = ORC_ECANCELED;
        snprintf(err, sizeof(err), "Keystone: canceled");
    } else if (status < 0) {
        rc = status == ORC_ENOMEM ? ORC_ENOMEM : ORC_EHTTP;
        snprintf(err, sizeof(err), "Keystone: %.240s", c->error);
    } else if (c->code == 401 || c->code == 403) {
        rc = ORC_EDENIED;
        snprintf(err, sizeof(err), "Keystone refused the site's credentials (HTTP %ld: %s)",
                 c->code, cld_api_message(c, msg, sizeof(msg)));
    } else if (c->code == 404) {
        rc = ORC_EINVAL;
        snprintf(err, sizeof(err), "auth_url %s: no Keystone v3 there (POST /auth/tokens: 404)",
                 s->c.auth_url);
    } else if (cld_transient(c->code)) {
        rc = ORC_EHTTP; /* worth another try later */
        snprintf(err, sizeof(err), "Keystone: HTTP %ld: %s", c->code,
                 cld_api_message(c, msg, sizeof(msg)));
    } else if (c->code != 200 && c->code != 201) {
        rc = c->code >= 400 && c->code < 500 ? ORC_EINVAL : ORC_EDRIVER;
        snprintf(err, sizeof(err), "Keystone: HTTP %ld: %s", c->code,
                 cld_api_message(c, msg, sizeof(msg)));
    } else {
        rc = take_token(s, err, sizeof(err));
    }
    if (rc < 0 && rc != ORC_ECANCELED)
        s->host->log(s->host, ORC_DRV_LOG_WARN, "openstack: %s", err);
    cld_call_release(&s->auth);
    wake(s, rc, err);
    if (s->closing)
        ost_close_check(s);
}

static int auth_start(struct ost *s, bool quick, char *err, size_t cap)
{
    json_t *body = auth_body(s);
    char *text = body ? ost_json_text(s->host, body) : NULL;
    char *url = cld_printf(s->host, "%s/auth/tokens", s->c.auth_url);
    const char *headers[] = {"Accept: application/json", NULL};
    uint32_t attempts = quick ? 2 : s->c.retries + 1;
    struct cld_retry retry = {.attempts = attempts, .idempotent = true,
                              .deadline_ms = s->c.timeout_ms * attempts + 30000};
    int rc = ORC_ENOMEM;

    json_decref(body);
    if (text && url) {
        s->auth.data = s;
        rc = cld_call_start(&s->auth, s->host, &s->tls, &retry, "POST", url, text, headers,
                            on_auth);
        if (rc < 0)
            snprintf(err, cap, "Keystone: %.240s", s->auth.error);
    } else {
        snprintf(err, cap, "out of memory");
    }
    if (text) { /* it holds the secret */
        memset(text, 0, strlen(text));
        s->host->free(text);
    }
    s->host->free(url);
    if (rc == 0)
        s->auth_busy = true;
    return rc;
}

int ost_auth_need(struct oop *o)
{
    struct ost *s = o->s;
    int rc;

    if (token_ok(s))
        return 1;
    if (s->closing) {
        snprintf(o->call.error, sizeof(o->call.error), "the site is closing");
        return ORC_ECANCELED;
    }
    if (!s->auth_busy) {
        rc = auth_start(s, (o->flags & OST_QUICK) != 0, o->call.error, sizeof(o->call.error));
        if (rc < 0)
            return rc;
    }
    o->wnext = s->auth_waiters;
    s->auth_waiters = o;
    o->auth_wait = true;
    return 0;
}
