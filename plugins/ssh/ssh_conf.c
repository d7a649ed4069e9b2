/*
 * The ssh site's config (docs/ssh-site.md, "Config"): the hosts of the pool
 * with their declared GPUs, CPUs and memory, how to log in (user, key,
 * known_hosts, host-key policy), where nodes live on the hosts, and the
 * timing knobs. Unknown keys and bad values are errors that name the key.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ssh.h"

#define FAIL(...) orc_op_failf(op, ORC_EINVAL, "ssh: " __VA_ARGS__)

static int str_key(struct sh *s, orc_op_t *op, json_t *v, const char *where, char **out)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return FAIL("%s: expected a non-empty string", where);
    s->host->free(*out);
    *out = sh_strdup(s, json_string_value(v));
    return *out ? 0 : ORC_ENOMEM;
}

static bool name_ok(const char *n)
{
    size_t len = strlen(n);

    if (len == 0 || len > 63)
        return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '-' || *n == '_' || *n == '.'))
            return false;
    return true;
}

static int host_gpus(struct sh_host *h, orc_op_t *op, json_t *v, const char *where)
{
    const char *model;
    json_t *count;

    if (!json_is_object(v))
        return FAIL("%s.gpus: expected a mapping of GPU model to count", where);
    json_object_foreach(v, model, count)
    {
        uint32_t n;
        if (h->nmodels == SH_MAX_MODELS)
            return FAIL("%s.gpus: at most %d models", where, SH_MAX_MODELS);
        if (*model == '\0' || strlen(model) >= SH_MODEL_LEN)
            return FAIL("%s.gpus: '%s' is not a GPU model name", where, model);
        if (rmt_parse_u32(count, 0, SH_MAX_GPUS, &n) < 0 || h->ngpus + n > SH_MAX_GPUS)
            return FAIL("%s.gpus.%s: expected a count from 0 to %d in all", where, model,
                        SH_MAX_GPUS);
        snprintf(h->models[h->nmodels].model, SH_MODEL_LEN, "%s", model);
        h->models[h->nmodels++].count = n;
        h->ngpus += n;
    }
    return 0;
}

static int host_entry(struct sh *s, orc_op_t *op, json_t *j, int i)
{
    struct sh_host *h = &s->hosts[i];
    char where[32];
    const char *k;
    json_t *v;
    int rc = 0;

    snprintf(where, sizeof(where), "hosts[%d]", i);
    if (!json_is_object(j))
        return FAIL("%s: expected a mapping (address, port, user, name, gpus, cpus, mem)", where);
    h->s = s;
    h->index = i;
    h->port = 22;
    h->cpus = 1;
    json_object_foreach(j, k, v)
    {
        uint32_t port;
        if (strcmp(k, "address") == 0)
            rc = str_key(s, op, v, "hosts[].address", &h->address);
        else if (strcmp(k, "user") == 0)
            rc = str_key(s, op, v, "hosts[].user", &h->user);
        else if (strcmp(k, "name") == 0) {
            if (!json_is_string(v) || !name_ok(json_string_value(v)))
                return FAIL("%s.name: expected 1-63 of [A-Za-z0-9._-]", where);
            snprintf(h->name, sizeof(h->name), "%s", json_string_value(v));
        } else if (strcmp(k, "port") == 0) {
            if (rmt_parse_u32(v, 1, 65535, &port) < 0)
                return FAIL("%s.port: expected a port number", where);
            h->port = (uint16_t)port;
        } else if (strcmp(k, "gpus") == 0)
            rc = host_gpus(h, op, v, where);
        else if (strcmp(k, "cpus") == 0) {
            if (rmt_parse_u32(v, 1, 65536, &h->cpus) < 0)
                return FAIL("%s.cpus: expected a count from 1", where);
        } else if (strcmp(k, "mem") == 0) {
            if (orc_size_json(v, &h->mem) < 0)
                return FAIL("%s.mem: expected a size (\"64 GiB\")", where);
        } else
            return FAIL("%s: unknown key '%s' (known: address, port, user, name, gpus, cpus, mem)",
                        where, k);
        if (rc < 0)
            return rc;
    }
    if (h->address == NULL)
        return FAIL("%s: address is required", where);
    if (h->name[0] == '\0')
        snprintf(h->name, sizeof(h->name), "host%d", i + 1);
    for (int o = 0; o < i; o++)
        if (strcmp(s->hosts[o].name, h->name) == 0)
            return FAIL("%s.name: '%s' is used twice", where, h->name);
    return 0;
}

static int hosts_key(struct sh *s, orc_op_t *op, json_t *v)
{
    size_t i;
    json_t *j;
    int rc;

    if (!json_is_array(v) || json_array_size(v) == 0)
        return FAIL("hosts: expected a non-empty list of hosts");
    if (json_array_size(v) > SH_MAX_HOSTS)
        return FAIL("hosts: at most %d hosts", SH_MAX_HOSTS);
    json_array_foreach(v, i, j)
    {
        s->nhosts = (int)i + 1;
        if ((rc = host_entry(s, op, j, (int)i)) < 0)
            return rc;
    }
    return 0;
}

struct u32_key {
    const char *name;
    size_t off;
    uint32_t min, max, dflt;
};

#define U32(name, min, max, dflt)                                                                  \
    {                                                                                              \
#name, offsetof(struct sh, name), min, max, dflt                                           \
    }
static const struct u32_key u32_keys[] = {
    U32(connect_timeout_ms, 100, 600000, 10000),
    U32(keepalive_s, 1, 3600, 15),
    U32(retries, 0, 20, 2),
    U32(idle_ms, 100, 86400000, 60000),
    U32(poll_ms, 50, 600000, 1000),
    U32(command_timeout_ms, 1000, 86400000, 120000),
    U32(ready_timeout_ms, 100, 86400000, 120000),
    U32(stop_timeout_ms, 100, 3600000, 10000),
};
#define NU32 (sizeof(u32_keys) / sizeof(u32_keys[0]))

static int config_key(struct sh *s, orc_op_t *op, const char *k, json_t *v, int *hostkey,
                      char **user)
{
    for (size_t i = 0; i < NU32; i++)
        if (strcmp(k, u32_keys[i].name) == 0) {
            if (rmt_parse_u32(v, u32_keys[i].min, u32_keys[i].max,
                              (uint32_t *)((char *)s + u32_keys[i].off)) < 0)
                return FAIL("%s: expected an integer from %u to %u", k, u32_keys[i].min,
                            u32_keys[i].max);
            return 0;
        }
    if (strcmp(k, "hosts") == 0)
        return hosts_key(s, op, v);
    if (strcmp(k, "user") == 0)
        return str_key(s, op, v, k, user);
    if (strcmp(k, "identity") == 0)
        return str_key(s, op, v, k, &s->identity);
    if (strcmp(k, "known_hosts") == 0)
        return str_key(s, op, v, k, &s->known_hosts);
    if (strcmp(k, "work_dir") == 0) {
        if (!json_is_string(v) || json_string_value(v)[0] != '/' ||
            strstr(json_string_value(v), "/..") || strlen(json_string_value(v)) < 2)
            return FAIL("work_dir: expected an absolute path (not /)");
        return str_key(s, op, v, k, &s->work_dir);
    }
    if (strcmp(k, "runtime_dir") == 0)
        return 0; /* read by sh_config */
    if (strcmp(k, "agent_check") == 0) {
        const char *c = json_string_value(v);
        if (!c || (strcmp(c, "none") && strcmp(c, "quick") && strcmp(c, "standard")))
            return FAIL("agent_check: expected none, quick or standard");
        return str_key(s, op, v, k, &s->agent_check);
    }
    if (strcmp(k, "host_key") == 0) {
        const char *c = json_string_value(v);
        if (c && strcmp(c, "strict") == 0)
            *hostkey = ORC_SSH_HOSTKEY_STRICT;
        else if (c && strcmp(c, "tofu") == 0)
            *hostkey = ORC_SSH_HOSTKEY_TOFU;
        else
            return FAIL("host_key: expected strict or tofu (trust on first use)");
        return 0;
    }
    if (strcmp(k, "trust_declared_gpus") == 0) {
        if (!json_is_boolean(v))
            return FAIL("trust_declared_gpus: expected true or false");
        s->trust_declared_gpus = json_is_true(v);
        return 0;
    }
    return FAIL("unknown config key '%s' (known: hosts, user, identity, known_hosts, host_key, "
                "work_dir, runtime_dir, agent_check, trust_declared_gpus, connect_timeout_ms, "
                "keepalive_s, retries, idle_ms, poll_ms, command_timeout_ms, ready_timeout_ms, "
                "stop_timeout_ms)",
                k);
}

static void targets_fill(struct sh *s, int hostkey, const char *user)
{
    for (int i = 0; i < s->nhosts; i++) {
        struct sh_host *h = &s->hosts[i];
        if (h->user == NULL)
            h->user = sh_strdup(s, user);
        h->t = (struct orc_ssh_target){.address = h->address,
                                       .port = h->port,
                                       .user = h->user,
                                       .identity = s->identity,
                                       .passphrase = s->passphrase,
                                       .known_hosts = s->known_hosts,
                                       .hostkey = hostkey,
                                       .connect_timeout_ms = s->connect_timeout_ms,
                                       .keepalive_s = s->keepalive_s,
                                       .retries = s->retries,
                                       .idle_ms = s->idle_ms};
    }
}

int sh_config(struct sh *s, orc_op_t *op)
{
    json_error_t jerr;
    json_t *cfg = json_loads(s->conf->config_json ? s->conf->config_json : "{}", 0, &jerr), *v;
    const char *k, *rtdir = NULL;
    char *user = NULL, err[200];
    int hostkey = ORC_SSH_HOSTKEY_STRICT, rc = 0;

    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return FAIL("config: expected a mapping");
    }
    for (size_t i = 0; i < NU32; i++)
        *(uint32_t *)((char *)s + u32_keys[i].off) = u32_keys[i].dflt;
    json_object_foreach(cfg, k, v)
    {
        if ((rc = config_key(s, op, k, v, &hostkey, &user)) < 0)
            goto out;
    }
    v = json_object_get(cfg, "runtime_dir");
    if (v && !json_is_string(v)) {
        rc = FAIL("runtime_dir: expected a path");
        goto out;
    }
    rtdir = v ? json_string_value(v) : NULL;
    if (s->nhosts == 0 || s->known_hosts == NULL || s->identity == NULL) {
        rc = FAIL("%s is required", s->nhosts == 0           ? "hosts"
                                    : s->known_hosts == NULL ? "known_hosts"
                                                             : "identity (a key file, or agent)");
        goto out;
    }
    for (int i = 0; i < s->nhosts && !user; i++)
        if (s->hosts[i].user == NULL) {
            rc = FAIL("hosts[%d]: no user (set user for the site or the host)", i);
            goto out;
        }
    if (s->work_dir == NULL && (s->work_dir = sh_strdup(s, "/var/tmp/orchestrator")) == NULL) {
        rc = ORC_ENOMEM;
        goto out;
    }
    if (s->conf->credentials &&
        s->host->secret_get(s->host, s->conf->credentials, &s->passphrase) < 0) {
        rc = orc_op_failf(op, ORC_EDENIED, "ssh: credentials: no secret named '%s'",
                          s->conf->credentials);
        goto out;
    }
    rc = rmt_runtime_find(s->host, rtdir, &s->rt, err, sizeof(err));
    if (rc < 0) {
        rc = orc_op_failf(op, rc, "ssh: %s", err);
        goto out;
    }
    targets_fill(s, hostkey, user);
out:
    s->host->free(user);
    json_decref(cfg);
    if (rc < 0)
        sh_config_free(s);
    return rc;
}

void sh_config_free(struct sh *s)
{
    for (int i = 0; i < s->nhosts; i++) {
        s->host->free(s->hosts[i].address);
        s->host->free(s->hosts[i].user);
        s->host->free(s->hosts[i].rt_dir);
        memset(&s->hosts[i], 0, sizeof(s->hosts[i]));
    }
    s->nhosts = 0;
    s->host->free(s->work_dir);
    s->host->free(s->identity);
    s->host->free(s->known_hosts);
    s->host->free(s->agent_check);
    if (s->passphrase) {
        memset(s->passphrase, 0, strlen(s->passphrase));
        s->host->free(s->passphrase);
    }
    s->work_dir = s->identity = s->known_hosts = s->agent_check = s->passphrase = NULL;
    rmt_runtime_free(s->host, &s->rt);
}
