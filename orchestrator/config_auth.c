/*
 * The `auth` map of the configuration file (config.h, docs/security.md): the OIDC
 * issuers whose tokens are accepted and where each one's keys come from, the audience,
 * the groups claim and the groups that make a caller a user, an operator or an admin.
 * Every value is checked here, so that a daemon that starts has a usable setting; a
 * bad one names its place ("file:3:1: auth: issuers[1]: jwks_uri: ...").
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

#define AUTH_MAX_ISSUERS 16

void orc_config_auth_fini(orc_auth_conf_t *a)
{
    for (size_t i = 0; i < a->nissuers; i++) {
        orc_free(a->issuers[i].issuer);
        orc_free(a->issuers[i].jwks_file);
        orc_free(a->issuers[i].jwks_uri);
    }
    orc_free(a->issuers);
    orc_free(a->audience);
    orc_free(a->groups_claim);
    orc_free(a->ca_file);
    json_decref(a->user_groups);
    json_decref(a->operator_groups);
    json_decref(a->admin_groups);
    a->issuers = NULL;
    a->nissuers = 0;
    a->audience = a->groups_claim = a->ca_file = NULL;
    a->user_groups = a->operator_groups = a->admin_groups = NULL;
}

/* True for http(s)://host... where plain http is only for loopback hosts: keys fetched
 * over the network must come over TLS. */
static bool url_ok(const char *url, const char **why)
{
    const char *host;

    if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        host = url + 7;
        if (strncmp(host, "127.", 4) != 0 && strncmp(host, "localhost", 9) != 0 &&
            strncmp(host, "[::1]", 5) != 0) {
            *why = "must be https (plain http only to a loopback address)";
            return false;
        }
    } else {
        *why = "must be an https URL";
        return false;
    }
    if (*host == '\0' || *host == '/' || strpbrk(url, " \t\r\n\"'\\") != NULL) {
        *why = "is not a usable URL";
        return false;
    }
    return true;
}

/* A string field of a map: 0 (absent: *out stays NULL), or an error. */
static int take_string(const json_t *map, const char *name, char **out, const char *where,
                       char *err, size_t errlen)
{
    const json_t *v = json_object_get(map, name);

    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 1024)
        return orc_failf(err, errlen, ORC_EINVAL, "%s: %s must be a non-empty string", where,
                         name);
    *out = orc_strdup(json_string_value(v));
    return *out ? 0 : orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
}

static int take_issuer(const json_t *v, orc_auth_issuer_conf_t *is, const char *where, char *err,
                       size_t errlen)
{
    static const char *const known[] = {"issuer", "jwks_file", "jwks_uri", NULL};
    const char *name, *why = NULL;
    json_t *item;
    int rc;

    if (json_is_string(v)) { /* just the issuer: its keys by OIDC discovery */
        is->issuer = orc_strdup(json_string_value(v));
        if (is->issuer == NULL)
            return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    } else if (!json_is_object(v)) {
        return orc_failf(err, errlen, ORC_EINVAL,
                         "%s: an issuer URL or a map {issuer, jwks_file | jwks_uri} is expected",
                         where);
    } else {
        json_object_foreach((json_t *)v, name, item) {
            size_t k = 0;
            while (known[k] && strcmp(known[k], name) != 0)
                k++;
            if (known[k] == NULL)
                return orc_failf(err, errlen, ORC_EINVAL,
                                 "%s: unknown key '%s' (known: issuer, jwks_file, jwks_uri)",
                                 where, name);
        }
        rc = take_string(v, "issuer", &is->issuer, where, err, errlen);
        if (rc == 0)
            rc = take_string(v, "jwks_file", &is->jwks_file, where, err, errlen);
        if (rc == 0)
            rc = take_string(v, "jwks_uri", &is->jwks_uri, where, err, errlen);
        if (rc < 0)
            return rc;
    }
    if (is->issuer == NULL)
        return orc_failf(err, errlen, ORC_EINVAL, "%s: issuer is required", where);
    if (is->jwks_file && is->jwks_uri)
        return orc_failf(err, errlen, ORC_EINVAL, "%s: give jwks_file or jwks_uri, not both",
                         where);
    if (is->jwks_uri && !url_ok(is->jwks_uri, &why))
        return orc_failf(err, errlen, ORC_EINVAL, "%s: jwks_uri %s", where, why);
    if (!is->jwks_file && !is->jwks_uri && !url_ok(is->issuer, &why))
        return orc_failf(err, errlen, ORC_EINVAL,
                         "%s: issuer %s (its keys are found by OIDC discovery; or give "
                         "jwks_file)", where, why);
    return 0;
}

static int take_issuers(orc_auth_conf_t *a, const json_t *v, const char *where, char *err,
                        size_t errlen)
{
    char at[600];
    size_t i;
    json_t *item;

    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > AUTH_MAX_ISSUERS)
        return orc_failf(err, errlen, ORC_EINVAL, "%s: issuers must be a list of 1 to %d issuers",
                         where, AUTH_MAX_ISSUERS);
    a->issuers = orc_calloc(json_array_size(v), sizeof(*a->issuers));
    if (a->issuers == NULL)
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    json_array_foreach(v, i, item) {
        int rc;
        snprintf(at, sizeof(at), "%s: issuers[%zu]", where, i);
        a->nissuers = i + 1;
        rc = take_issuer(item, &a->issuers[i], at, err, errlen);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->issuers[j].issuer, a->issuers[i].issuer) == 0)
                return orc_failf(err, errlen, ORC_EINVAL, "%s: issuer %s is listed twice", at,
                                 a->issuers[i].issuer);
    }
    return 0;
}

/* A list of group names (a single string is a list of one). */
static int take_groups(const json_t *v, json_t **out, const char *name, const char *where,
                       char *err, size_t errlen)
{
    json_t *list = json_array(), *item;
    size_t i;

    if (list == NULL)
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    if (json_is_string(v))
        json_array_append(list, (json_t *)v);
    else if (json_is_array(v))
        json_array_foreach(v, i, item) {
            if (!json_is_string(item) || json_string_length(item) == 0) {
                json_decref(list);
                return orc_failf(err, errlen, ORC_EINVAL, "%s: %s[%zu] must be a group name",
                                 where, name, i);
            }
            json_array_append(list, item);
        }
    else if (!json_is_null(v)) {
        json_decref(list);
        return orc_failf(err, errlen, ORC_EINVAL, "%s: %s must be a list of group names", where,
                         name);
    }
    json_decref(*out);
    *out = list;
    return 0;
}

static int take_number(const json_t *v, const char *name, uint64_t max, uint64_t *out,
                       const char *where, char *err, size_t errlen)
{
    char why[128];
    uint64_t ms;

    if (json_is_integer(v) && json_integer_value(v) >= 0) { /* seconds */
        ms = (uint64_t)json_integer_value(v) * 1000;
    } else if (!json_is_string(v) ||
               orc_config_parse_duration(json_string_value(v), &ms, why, sizeof(why)) < 0) {
        return orc_failf(err, errlen, ORC_EINVAL, "%s: %s must be a duration (\"60s\", \"1h\")",
                         where, name);
    }
    if (ms > max)
        return orc_failf(err, errlen, ORC_EINVAL, "%s: %s is longer than %llu s", where, name,
                         (unsigned long long)(max / 1000));
    *out = ms;
    return 0;
}

/* The key name of the auth map, whose value is v. */
static int take_key(orc_auth_conf_t *a, const json_t *map, const char *name, const json_t *v,
                    const char *where, char *err, size_t errlen)
{
    uint64_t ms;
    int rc;

    if (strcmp(name, "issuers") == 0)
        return take_issuers(a, v, where, err, errlen);
    if (strcmp(name, "audience") == 0 || strcmp(name, "groups_claim") == 0 ||
        strcmp(name, "ca_file") == 0) {
        char **slot = name[0] == 'a' ? &a->audience : name[0] == 'g' ? &a->groups_claim
                                                                      : &a->ca_file;
        orc_free(*slot);
        *slot = NULL;
        return take_string(map, name, slot, where, err, errlen);
    }
    if (strcmp(name, "user_groups") == 0)
        return take_groups(v, &a->user_groups, name, where, err, errlen);
    if (strcmp(name, "operator_groups") == 0)
        return take_groups(v, &a->operator_groups, name, where, err, errlen);
    if (strcmp(name, "admin_groups") == 0)
        return take_groups(v, &a->admin_groups, name, where, err, errlen);
    if (strcmp(name, "clock_skew") == 0) {
        rc = take_number(v, name, 600 * 1000, &ms, where, err, errlen);
        if (rc == 0)
            a->clock_skew_s = (uint32_t)(ms / 1000);
        return rc;
    }
    if (strcmp(name, "jwks_refresh") == 0) {
        rc = take_number(v, name, 7 * 24 * 3600 * 1000ull, &ms, where, err, errlen);
        if (rc == 0 && ms < 60 * 1000)
            rc = orc_failf(err, errlen, ORC_EINVAL, "%s: jwks_refresh must be at least 60s",
                           where);
        if (rc == 0)
            a->jwks_refresh_ms = ms;
        return rc;
    }
    return orc_failf(err, errlen, ORC_EINVAL,
                     "%s: unknown key '%s' (known: issuers, audience, groups_claim, user_groups, "
                     "operator_groups, admin_groups, clock_skew, jwks_refresh, ca_file)",
                     where, name);
}

int orc_config_apply_auth(orc_config_t *cfg, const json_t *v, const char *where, char *err,
                          size_t errlen)
{
    orc_auth_conf_t a = {.clock_skew_s = 60, .jwks_refresh_ms = 3600 * 1000};
    const char *name;
    json_t *item;
    int rc = 0;

    if (!json_is_object(v))
        return orc_failf(err, errlen, ORC_EINVAL, "%s: a map is expected (issuers, audience, ...)",
                         where);
    json_object_foreach((json_t *)v, name, item) {
        rc = take_key(&a, v, name, item, where, err, errlen);
        if (rc < 0)
            break;
    }
    if (rc == 0 && a.nissuers == 0)
        rc = orc_failf(err, errlen, ORC_EINVAL, "%s: issuers is required (at least one issuer)",
                       where);
    if (rc == 0 && a.groups_claim == NULL && (a.groups_claim = orc_strdup("groups")) == NULL)
        rc = orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    if (rc < 0) {
        orc_config_auth_fini(&a);
        return rc;
    }
    orc_config_auth_fini(&cfg->auth);
    cfg->auth = a;
    cfg->auth_enabled = true;
    return 0;
}
