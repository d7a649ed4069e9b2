/*
 * The kubernetes site's config (docs/kubernetes-site.md): keys, types and
 * defaults, every unknown key refused by name; the bearer token from the
 * site's credentials; GPU model names <-> the node label's values.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "k8s.h"

static const char *const known_keys[] = {
    "api_url",      "ca_file",     "cert_file",         "key_file",     "namespace",
    "namespace_per_deployment", "image", "image_pull_policy", "agent", "agent_check",
    "gpu_resource", "gpu_label",   "gpu_models",        "service_type", "endpoint",
    "pending_timeout_ms", "poll_ms", "delete_timeout_ms", "timeout_ms", "retries", NULL};

static bool known(const char *key)
{
    for (size_t i = 0; known_keys[i]; i++)
        if (strcmp(known_keys[i], key) == 0)
            return true;
    return false;
}

static void parse_models(struct cld_conf *p, struct k8s_conf *c)
{
    json_t *m = json_object_get(p->o, "gpu_models"), *v;
    const char *key;
    size_t i = 0;

    if (m == NULL)
        return;
    if (!json_is_object(m)) {
        cld_conf_fail(p, "gpu_models", "expected a mapping of GPU model to node label value");
        return;
    }
    c->models = p->host->calloc(json_object_size(m) + 1, sizeof(*c->models));
    if (c->models == NULL) {
        cld_conf_fail(p, "gpu_models", "out of memory");
        return;
    }
    json_object_foreach(m, key, v) {
        if (!json_is_string(v) || !*json_string_value(v)) {
            cld_conf_fail(p, "gpu_models", "each value must be the label value of that model's nodes");
            return;
        }
        c->models[i].model = cld_strdup(p->host, key);
        c->models[i].label = cld_strdup(p->host, json_string_value(v));
        c->nmodels = ++i;
        if (c->models[i - 1].model == NULL || c->models[i - 1].label == NULL)
            cld_conf_fail(p, "gpu_models", "out of memory");
    }
}

static bool valid_ns(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > K8S_NAME_MAX || !islower((unsigned char)s[0]) || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
            return false;
    return true;
}

static void check_file(struct cld_conf *p, const char *key, const char *path)
{
    if (path && access(path, R_OK) != 0)
        cld_conf_fail(p, key, "cannot read this file");
}

static void parse_keys(struct cld_conf *p, struct k8s_conf *c)
{
    static const char *const svc_types[] = {"ClusterIP", "NodePort", "LoadBalancer", NULL};
    static const char *const endpoints[] = {"service", "pod", NULL};
    static const char *const checks[] = {"none", "quick", "standard", NULL};
    json_t *v;

    c->api_url = cld_conf_str(p, "api_url", NULL);
    if (p->rc == 0 && c->api_url == NULL)
        cld_conf_fail(p, "api_url", "required: the API server's URL (https://host:6443)");
    if (c->api_url && strncmp(c->api_url, "https://", 8) != 0 && strncmp(c->api_url, "http://", 7) != 0)
        cld_conf_fail(p, "api_url", "expected an http:// or https:// URL");
    for (size_t n = c->api_url ? strlen(c->api_url) : 0; n > 0 && c->api_url[n - 1] == '/'; n--)
        c->api_url[n - 1] = '\0';
    c->ca_file = cld_conf_str(p, "ca_file", NULL);
    c->cert_file = cld_conf_str(p, "cert_file", NULL);
    c->key_file = cld_conf_str(p, "key_file", NULL);
    check_file(p, "ca_file", c->ca_file);
    check_file(p, "cert_file", c->cert_file);
    check_file(p, "key_file", c->key_file);
    c->namespace_ = cld_conf_str(p, "namespace", "orchestrator");
    if (c->namespace_ && !valid_ns(c->namespace_))
        cld_conf_fail(p, "namespace", "expected a DNS label: [a-z0-9-], at most 63, starting with a letter");
    v = json_object_get(p->o, "namespace_per_deployment");
    if (v && !json_is_boolean(v))
        cld_conf_fail(p, "namespace_per_deployment", "expected true or false");
    c->per_deployment = json_is_true(v);
    c->image = cld_conf_str(p, "image", "ubuntu:22.04");
    c->image_pull_policy = cld_conf_str(p, "image_pull_policy", NULL);
    if (c->image_pull_policy && strcmp(c->image_pull_policy, "Always") != 0 &&
        strcmp(c->image_pull_policy, "IfNotPresent") != 0 && strcmp(c->image_pull_policy, "Never") != 0)
        cld_conf_fail(p, "image_pull_policy", "expected Always, IfNotPresent or Never");
    c->agent = cld_conf_str(p, "agent", "/usr/local/bin/gpu-agent");
    if (c->agent && strcmp(c->agent, "off") == 0) {
        p->host->free(c->agent);
        c->agent = NULL;
    } else if (c->agent && c->agent[0] != '/') {
        cld_conf_fail(p, "agent", "expected gpu-agent's absolute path in the image, or off");
    }
    c->agent_check = cld_strdup(p->host, checks[cld_conf_pick(p, "agent_check", checks, 1)]);
    c->gpu_resource = cld_conf_str(p, "gpu_resource", "nvidia.com/gpu");
    c->gpu_label = cld_conf_str(p, "gpu_label", "nvidia.com/gpu.product");
    parse_models(p, c);
    c->service_type = cld_conf_pick(p, "service_type", svc_types, K8S_SVC_CLUSTER_IP);
    c->endpoint = cld_conf_pick(p, "endpoint", endpoints, K8S_EP_SERVICE);
    c->pending_timeout_ms = cld_conf_u32(p, "pending_timeout_ms", 1000, 86400000, 300000);
    c->poll_ms = cld_conf_u32(p, "poll_ms", 50, 60000, 1000);
    c->delete_timeout_ms = cld_conf_u32(p, "delete_timeout_ms", 1000, 3600000, 120000);
    c->timeout_ms = cld_conf_u32(p, "timeout_ms", 100, 600000, 30000);
    c->retries = cld_conf_u32(p, "retries", 0, 20, 4);
}

int k8s_conf_parse(const struct orc_host_api *host, const struct orc_site_conf *conf,
                   struct k8s_conf *c, char *err, size_t errlen)
{
    json_error_t jerr;
    struct cld_conf p = {.host = host, .driver = "kubernetes", .err = err, .errlen = errlen};
    const char *key;
    json_t *v;

    p.o = json_loads(conf->config_json ? conf->config_json : "{}", 0, &jerr);
    if (!json_is_object(p.o)) {
        snprintf(err, errlen, "kubernetes: config: expected a mapping");
        json_decref(p.o);
        return ORC_EINVAL;
    }
    json_object_foreach(p.o, key, v) {
        if (!known(key)) {
            char what[96];
            snprintf(what, sizeof(what), "unknown key (see docs/kubernetes-site.md)");
            cld_conf_fail(&p, key, "%s", what);
        }
    }
    if (p.rc == 0)
        parse_keys(&p, c);
    if (p.rc == 0 && conf->credentials) {
        int rc = host->secret_get(host, conf->credentials, &c->token);
        if (rc < 0) {
            snprintf(err, errlen,
                     "kubernetes: credentials: no secret named %s (the bearer token)",
                     conf->credentials);
            p.rc = rc == ORC_ENOMEM ? rc : ORC_EINVAL;
        } else {
            c->token[strcspn(c->token, "\r\n")] = '\0';
        }
    }
    if (p.rc == 0 && c->token == NULL && c->cert_file == NULL)
        cld_conf_fail(&p, "credentials", "the site needs a bearer token (credentials) or a client certificate (cert_file)");
    json_decref(p.o);
    if (p.rc < 0)
        k8s_conf_free(host, c);
    return p.rc;
}

void k8s_conf_free(const struct orc_host_api *host, struct k8s_conf *c)
{
    char **strs[] = {&c->api_url, &c->ca_file, &c->cert_file, &c->key_file, &c->token,
                     &c->namespace_, &c->image, &c->image_pull_policy, &c->agent,
                     &c->agent_check, &c->gpu_resource, &c->gpu_label};

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (*strs[i] == c->token && c->token)
            memset(c->token, 0, strlen(c->token)); /* a secret does not linger */
        host->free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; i < c->nmodels; i++) {
        host->free(c->models[i].model);
        host->free(c->models[i].label);
    }
    host->free(c->models);
    c->models = NULL;
    c->nmodels = 0;
}

void k8s_model_of_label(const struct k8s_conf *c, const char *label, char *out, size_t cap)
{
    size_t n;

    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->models[i].label, label) == 0) {
            snprintf(out, cap, "%s", c->models[i].model);
            return;
        }
    if (strncasecmp(label, "NVIDIA-", 7) == 0)
        label += 7;
    else if (strncasecmp(label, "Tesla-", 6) == 0)
        label += 6;
    n = strcspn(label, "-");
    snprintf(out, cap, "%.*s", (int)n, label);
}

bool k8s_label_is_model(const struct k8s_conf *c, const char *label, const char *model)
{
    char m[64];

    for (size_t i = 0; i < c->nmodels; i++)
        if (strcasecmp(c->models[i].model, model) == 0)
            return strcmp(c->models[i].label, label) == 0;
    k8s_model_of_label(c, label, m, sizeof(m));
    return strcasecmp(m, model) == 0;
}
