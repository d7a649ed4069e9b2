/*
 * The openstack site's config (docs/openstack-site.md, "Config"): keys, types and
 * defaults, every unknown key refused by name, then the combinations each auth
 * type needs; the password or application credential secret from the site's
 * credentials (host->secret_get). Errors say "openstack: config: KEY: what".
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ost.h"

static const char *const known_keys[] = {
    "auth_url",        "auth_type",           "username",
    "user_id",         "user_domain_name",    "user_domain_id",
    "project_name",    "project_id",          "project_domain_name",
    "project_domain_id", "application_credential_id", "application_credential_name",
    "region",          "interface",           "endpoints",
    "ca_file",         "network",             "floating_network",
    "floating_ip",     "image",               "key_name",
    "public_key",      "flavors",             "gpu_aliases",
    "build_timeout_ms", "delete_timeout_ms",  "poll_ms",
    "poll_max_ms",     "timeout_ms",          "retries",
    "agent_install",   "agent_path",          "agent_check",
    "state_dir",       "agent_timeout_ms",    NULL};

static bool url_ok(const char *u)
{
    return u && (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) &&
           strlen(u) > 8 && strpbrk(u, " \t\r\n") == NULL;
}

/* auth_url without trailing slashes, with /v3 when it names no version */
static void auth_url(struct cld_conf *p, struct ost_conf *c)
{
    char *u = cld_conf_text(p, "auth_url", NULL);
    size_t n;

    if (u == NULL) {
        if (p->rc == 0)
            cld_conf_fail(p, "auth_url", "required (Keystone, e.g. https://cloud.example/identity/v3)");
        return;
    }
    if (!url_ok(u)) {
        cld_conf_fail(p, "auth_url", "expected an http:// or https:// URL");
        p->host->free(u);
        return;
    }
    n = strlen(u);
    while (n > 8 && u[n - 1] == '/')
        u[--n] = '\0';
    if (n >= 3 && strcmp(u + n - 3, "/v3") == 0) {
        c->auth_url = u;
        return;
    }
    c->auth_url = cld_printf(p->host, "%s/v3", u);
    p->host->free(u);
    if (c->auth_url == NULL)
        cld_conf_oom(p);
}

static void endpoints(struct cld_conf *p, struct ost_conf *c)
{
    static const char *const names[OST_NSVC] = {"compute", "network", "image"};
    json_t *m = json_object_get(p->o, "endpoints"), *v;
    const char *key;

    if (m == NULL)
        return;
    if (!json_is_object(m)) {
        cld_conf_fail(p, "endpoints", "expected a mapping of compute, network, image to URLs");
        return;
    }
    json_object_foreach(m, key, v) {
        int i = 0;
        while (i < OST_NSVC && strcmp(names[i], key) != 0)
            i++;
        if (i == OST_NSVC) {
            cld_conf_fail(p, "endpoints", "unknown service '%s' (known: compute, network, image)", key);
            return;
        }
        if (!json_is_string(v) || !url_ok(json_string_value(v))) {
            cld_conf_fail(p, "endpoints", "%s: expected an http:// or https:// URL", key);
            return;
        }
        c->endpoint[i] = cld_conf_dup(p, json_string_value(v));
    }
}

static void flavors(struct cld_conf *p, struct ost_conf *c)
{
    json_t *m = json_object_get(p->o, "flavors"), *v, *x;
    const char *name, *k;

    if (m == NULL)
        return;
    if (!json_is_object(m)) {
        cld_conf_fail(p, "flavors", "expected a mapping of flavor name to {gpu_model, gpus}");
        return;
    }
    c->fmap = p->host->calloc(json_object_size(m) + 1, sizeof(*c->fmap));
    if (c->fmap == NULL) {
        cld_conf_oom(p);
        return;
    }
    json_object_foreach(m, name, v) {
        struct ost_flavor_map *f = &c->fmap[c->nfmap++];
        json_t *gm = json_object_get(v, "gpu_model"), *g = json_object_get(v, "gpus");
        f->flavor = cld_conf_dup(p, name);
        if (!json_is_object(v)) {
            cld_conf_fail(p, "flavors", "%s: expected {gpu_model: MODEL, gpus: COUNT}", name);
            return;
        }
        json_object_foreach(v, k, x) {
            if (strcmp(k, "gpu_model") != 0 && strcmp(k, "gpus") != 0) {
                cld_conf_fail(p, "flavors", "%s: unknown key '%s' (known: gpu_model, gpus)", name, k);
                return;
            }
        }
        if (g && (!json_is_integer(g) || json_integer_value(g) < 0 ||
                  json_integer_value(g) > 1024)) {
            cld_conf_fail(p, "flavors", "%s.gpus: expected a count from 0 to 1024", name);
            return;
        }
        f->gpus = g ? (uint32_t)json_integer_value(g) : (gm ? 1 : 0);
        if (gm && (!json_is_string(gm) || json_string_length(gm) == 0 ||
                   json_string_length(gm) >= OST_MODEL_LEN)) {
            cld_conf_fail(p, "flavors", "%s.gpu_model: expected a GPU model name", name);
            return;
        }
        if (f->gpus > 0 && gm == NULL) {
            cld_conf_fail(p, "flavors", "%s: gpus without gpu_model", name);
            return;
        }
        f->model = f->gpus ? cld_conf_dup(p, json_string_value(gm)) : NULL;
    }
}

static void aliases(struct cld_conf *p, struct ost_conf *c)
{
    json_t *m = json_object_get(p->o, "gpu_aliases"), *v;
    const char *alias;

    if (m == NULL)
        return;
    if (!json_is_object(m)) {
        cld_conf_fail(p, "gpu_aliases", "expected a mapping of PCI alias to GPU model ({a100: A100})");
        return;
    }
    c->aliases = p->host->calloc(json_object_size(m) + 1, sizeof(*c->aliases));
    if (c->aliases == NULL) {
        cld_conf_oom(p);
        return;
    }
    json_object_foreach(m, alias, v) {
        struct ost_alias *a = &c->aliases[c->naliases++];
        a->alias = cld_conf_dup(p, alias);
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) >= OST_MODEL_LEN) {
            cld_conf_fail(p, "gpu_aliases", "%s: expected a GPU model name", alias);
            return;
        }
        a->model = cld_conf_dup(p, json_string_value(v));
    }
}

static void identity(struct cld_conf *p, struct ost_conf *c, const struct orc_site_conf *conf)
{
    static const char *const types[] = {"password", "application_credential", "v3password",
                                        "v3applicationcredential", NULL};
    int t = cld_conf_pick(p, "auth_type", types, 0);

    c->auth_type = t == 1 || t == 3 ? OST_AUTH_APPCRED : OST_AUTH_PASSWORD;
    c->username = cld_conf_text(p, "username", NULL);
    c->user_id = cld_conf_text(p, "user_id", NULL);
    c->user_domain_id = cld_conf_text(p, "user_domain_id", NULL);
    c->user_domain_name = cld_conf_text(p, "user_domain_name", c->user_domain_id ? NULL : "Default");
    c->project_name = cld_conf_text(p, "project_name", NULL);
    c->project_id = cld_conf_text(p, "project_id", NULL);
    c->project_domain_id = cld_conf_text(p, "project_domain_id", NULL);
    c->project_domain_name =
        cld_conf_text(p, "project_domain_name", c->project_domain_id ? NULL : "Default");
    c->appcred_id = cld_conf_text(p, "application_credential_id", NULL);
    c->appcred_name = cld_conf_text(p, "application_credential_name", NULL);
    if (p->rc)
        return;
    if (c->auth_type == OST_AUTH_PASSWORD) {
        if (c->username == NULL && c->user_id == NULL)
            cld_conf_fail(p, "username", "required with auth_type password (or user_id)");
        else if (c->project_name == NULL && c->project_id == NULL)
            cld_conf_fail(p, "project_name", "required with auth_type password (or project_id): the "
                                     "token is scoped to a project");
        else if (c->appcred_id || c->appcred_name)
            cld_conf_fail(p, "auth_type", "application_credential_* keys need auth_type "
                                  "application_credential");
        return;
    }
    if (c->appcred_id == NULL && c->appcred_name == NULL)
        cld_conf_fail(p, "application_credential_id",
              "required with auth_type application_credential (or application_credential_name "
              "with username)");
    else if (c->appcred_id == NULL && c->username == NULL && c->user_id == NULL)
        cld_conf_fail(p, "username", "required with application_credential_name (or user_id)");
    (void)conf;
}

static void agent(struct cld_conf *p, struct ost_conf *c)
{
    static const char *const checks[] = {"none", "quick", "standard", NULL};

    c->agent_install = cld_conf_text(p, "agent_install", NULL);
    c->agent_path = cld_conf_text(p, "agent_path", "/usr/local/bin/gpu-agent");
    c->agent_check = cld_conf_dup(p, checks[cld_conf_pick(p, "agent_check", checks, 1)]);
    c->state_dir = cld_conf_text(p, "state_dir", "/var/lib/orchestrator");
    if (c->agent_path && c->agent_path[0] != '/')
        cld_conf_fail(p, "agent_path", "expected an absolute path");
}

static void unknown_keys(struct cld_conf *p)
{
    const char *key;
    json_t *v;

    json_object_foreach(p->o, key, v) {
        size_t i = 0;
        while (known_keys[i] && strcmp(known_keys[i], key) != 0)
            i++;
        if (known_keys[i] == NULL) {
            if (p->rc == 0)
                snprintf(p->err, p->errlen,
                         "openstack: config: unknown key '%s' (known: auth_url, auth_type, "
                         "username, user_domain_name, project_name, project_domain_name, "
                         "project_id, application_credential_id/_name, region, interface, "
                         "endpoints, ca_file, network, floating_network, floating_ip, image, "
                         "key_name, public_key, flavors, gpu_aliases, build_timeout_ms, ...; "
                         "docs/openstack-site.md)",
                         key);
            p->rc = ORC_EINVAL;
            return;
        }
    }
}

static void values(struct cld_conf *p, struct ost_conf *c, const struct orc_site_conf *conf)
{
    static const char *const ifaces[] = {"public", "internal", "admin", NULL};
    static const char *const fips[] = {"on_request", "always", "never", NULL};

    auth_url(p, c);
    identity(p, c, conf);
    c->region = cld_conf_text(p, "region", "RegionOne");
    c->interface = cld_conf_dup(p, ifaces[cld_conf_pick(p, "interface", ifaces, 0)]);
    endpoints(p, c);
    c->ca_file = cld_conf_text(p, "ca_file", NULL);
    if (c->ca_file && access(c->ca_file, R_OK) != 0)
        cld_conf_fail(p, "ca_file", "cannot read %s", c->ca_file);
    c->network = cld_conf_text(p, "network", NULL);
    c->floating_network = cld_conf_text(p, "floating_network", NULL);
    c->floating_ip = cld_conf_pick(p, "floating_ip", fips, OST_FIP_ON_REQUEST);
    c->image = cld_conf_text(p, "image", NULL);
    c->key_name = cld_conf_text(p, "key_name", NULL);
    c->public_key = cld_conf_text(p, "public_key", NULL);
    if (c->public_key && c->key_name == NULL)
        if ((c->key_name = cld_printf(p->host, "orc-%s", conf->name ? conf->name : "site")) ==
            NULL)
            cld_conf_oom(p);
    flavors(p, c);
    aliases(p, c);
    c->build_timeout_ms = cld_conf_u32(p, "build_timeout_ms", 1000, 86400000, 600000);
    c->delete_timeout_ms = cld_conf_u32(p, "delete_timeout_ms", 1000, 86400000, 300000);
    c->poll_ms = cld_conf_u32(p, "poll_ms", 10, 600000, 1000);
    c->poll_max_ms = cld_conf_u32(p, "poll_max_ms", c->poll_ms, 3600000, c->poll_ms > 10000 ? c->poll_ms
                                                                                 : 10000);
    c->timeout_ms = cld_conf_u32(p, "timeout_ms", 100, 600000, 30000);
    c->retries = cld_conf_u32(p, "retries", 0, 20, 4);
    c->agent_timeout_ms = cld_conf_u32(p, "agent_timeout_ms", 1000, 86400000, 900000);
    agent(p, c);
}

int ost_conf_parse(const struct orc_host_api *host, const struct orc_site_conf *conf,
                   struct ost_conf *c, char **secret, char *err, size_t errlen)
{
    json_error_t jerr;
    struct cld_conf p = {.host = host, .driver = "openstack", .err = err, .errlen = errlen};

    *secret = NULL;
    p.o = json_loads(conf->config_json ? conf->config_json : "{}", 0, &jerr);
    if (!json_is_object(p.o)) {
        snprintf(err, errlen, "openstack: config: expected a mapping");
        json_decref(p.o);
        return ORC_EINVAL;
    }
    unknown_keys(&p);
    if (p.rc == 0)
        values(&p, c, conf);
    json_decref(p.o);
    if (p.rc == 0 && (conf->credentials == NULL || conf->credentials[0] == '\0')) {
        snprintf(err, errlen,
                 "openstack: credentials: the site names no secret (credentials: NAME in the "
                 "sites file; the secret is the %s)",
                 c->auth_type == OST_AUTH_APPCRED ? "application credential's secret"
                                                  : "user's password");
        p.rc = ORC_EDENIED;
    } else if (p.rc == 0 && (host->secret_get(host, conf->credentials, secret) < 0 ||
                             *secret == NULL || **secret == '\0')) {
        if (*secret)
            host->free(*secret);
        *secret = NULL;
        snprintf(err, errlen, "openstack: credentials: no secret named '%s' (or it is empty)",
                 conf->credentials);
        p.rc = ORC_EDENIED;
    }
    if (p.rc == 0 && c->auth_type == OST_AUTH_APPCRED &&
        (c->project_name || c->project_id))
        host->log(host, ORC_DRV_LOG_WARN,
                  "openstack: project_name/project_id are not used with an application "
                  "credential (it is scoped to its project already)");
    if (p.rc < 0)
        ost_conf_free(host, c);
    return p.rc;
}

void ost_conf_free(const struct orc_host_api *host, struct ost_conf *c)
{
    char **strs[] = {&c->auth_url,        &c->username,      &c->user_id,
                     &c->user_domain_name, &c->user_domain_id, &c->project_name,
                     &c->project_id,      &c->project_domain_name, &c->project_domain_id,
                     &c->appcred_id,      &c->appcred_name,  &c->region,
                     &c->interface,       &c->ca_file,       &c->network,
                     &c->floating_network, &c->image,        &c->key_name,
                     &c->public_key,      &c->agent_install, &c->agent_path,
                     &c->agent_check,     &c->state_dir};

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        host->free(*strs[i]);
        *strs[i] = NULL;
    }
    for (int i = 0; i < OST_NSVC; i++) {
        host->free(c->endpoint[i]);
        c->endpoint[i] = NULL;
    }
    for (size_t i = 0; i < c->nfmap; i++) {
        host->free(c->fmap[i].flavor);
        host->free(c->fmap[i].model);
    }
    host->free(c->fmap);
    for (size_t i = 0; i < c->naliases; i++) {
        host->free(c->aliases[i].alias);
        host->free(c->aliases[i].model);
    }
    host->free(c->aliases);
    memset(c, 0, sizeof(*c));
}
