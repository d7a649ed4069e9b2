/*
 * The slurm site's config (docs/slurm-site.md): the sites file's `config:`
 * mapping as JSON text, read with key tables (unknown keys are refused and
 * named, types are checked before values), into struct sl_conf: the login
 * node and how to reach it, the remote work directory, the partitions map
 * (GPU model -> partition and gres type), the queue timeout, polling, the
 * variables every remote command exports, account/qos/time limit, and
 * where the runtime (gpu-agent) is found locally.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "slurm.h"

struct cfg {
    const struct orc_host_api *host;
    struct sl_conf *c;
    char *err;
    size_t errlen;
};

static int cfg_fail(struct cfg *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfg_fail(struct cfg *g, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(g->err, g->errlen, "slurm: config: ");

    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < g->errlen)
        vsnprintf(g->err + n, g->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return ORC_EINVAL;
}

/* ---- typed values --------------------------------------------------------------------- */

static int get_str(struct cfg *g, const char *where, json_t *v, char **dst)
{
    if (!json_is_string(v) || json_string_length(v) == 0)
        return cfg_fail(g, "%s: expected a non-empty string", where);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cfg_fail(g, "%s: holds a NUL character", where);
    g->host->free(*dst);
    *dst = sl_strdup(g->host, json_string_value(v));
    return *dst ? 0 : ORC_ENOMEM;
}

static int get_u64(struct cfg *g, const char *where, json_t *v, uint64_t lo, uint64_t hi,
                   uint64_t *dst)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < lo ||
        (uint64_t)json_integer_value(v) > hi)
        return cfg_fail(g, "%s: expected an integer from %" PRIu64 " to %" PRIu64, where, lo, hi);
    *dst = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_u32(struct cfg *g, const char *where, json_t *v, uint32_t lo, uint32_t hi,
                   uint32_t *dst)
{
    uint64_t x = 0;
    int rc = get_u64(g, where, v, lo, hi, &x);

    *dst = (uint32_t)x;
    return rc;
}

/* Slurm names (partitions, gres types, accounts): [A-Za-z0-9_.-], 1-63. */
static bool slurm_word_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > SL_FIELD_LEN - 1)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

static int get_word(struct cfg *g, const char *where, json_t *v, char **dst)
{
    int rc = get_str(g, where, v, dst);

    if (rc == 0 && !slurm_word_ok(*dst))
        return cfg_fail(g, "%s: '%s' is not a Slurm name ([A-Za-z0-9_.-], 1-63 characters)", where,
                        *dst);
    return rc;
}

/* ---- the login node -------------------------------------------------------------------- */

static const char *const login_keys = "address, port, user, identity, known_hosts, host_key, "
                                      "connect_timeout_ms";

static int login_key(struct cfg *g, const char *k, json_t *v)
{
    struct sl_conf *c = g->c;
    uint32_t port = 0;
    char *mode = NULL;
    int rc;

    if (strcmp(k, "address") == 0)
        return get_str(g, "login.address", v, &c->address);
    if (strcmp(k, "user") == 0)
        return get_str(g, "login.user", v, &c->user);
    if (strcmp(k, "identity") == 0)
        return get_str(g, "login.identity", v, &c->identity);
    if (strcmp(k, "known_hosts") == 0)
        return get_str(g, "login.known_hosts", v, &c->known_hosts);
    if (strcmp(k, "connect_timeout_ms") == 0)
        return get_u32(g, "login.connect_timeout_ms", v, 100, 600000, &c->connect_timeout_ms);
    if (strcmp(k, "port") == 0) {
        rc = get_u32(g, "login.port", v, 1, 65535, &port);
        c->port = (uint16_t)port;
        return rc;
    }
    if (strcmp(k, "host_key") != 0)
        return cfg_fail(g, "login: unknown key '%s' (known: %s)", k, login_keys);
    rc = get_str(g, "login.host_key", v, &mode);
    if (rc == 0 && strcmp(mode, "strict") == 0)
        c->hostkey = ORC_SSH_HOSTKEY_STRICT;
    else if (rc == 0 && strcmp(mode, "tofu") == 0)
        c->hostkey = ORC_SSH_HOSTKEY_TOFU;
    else if (rc == 0)
        rc = cfg_fail(g, "login.host_key: '%s' is not strict or tofu", mode);
    g->host->free(mode);
    return rc;
}

static int parse_login(struct cfg *g, json_t *v)
{
    const char *k;
    json_t *x;
    int rc = 0;

    if (!json_is_object(v))
        return cfg_fail(g, "login: expected a mapping (%s)", login_keys);
    json_object_foreach(v, k, x)
    {
        rc = login_key(g, k, x);
        if (rc < 0)
            return rc;
    }
    if (g->c->address == NULL)
        return cfg_fail(g, "login.address is required (the login node's host name or address)");
    if (g->c->user == NULL)
        return cfg_fail(g, "login.user is required");
    if (g->c->identity == NULL)
        return cfg_fail(g, "login.identity is required (a private key file, or \"agent\")");
    if (g->c->known_hosts == NULL)
        return cfg_fail(g, "login.known_hosts is required (an OpenSSH known_hosts file)");
    return 0;
}

/* ---- partitions and env ----------------------------------------------------------------- */

static int parse_part(struct cfg *g, const char *model, json_t *v, struct sl_part *p)
{
    char where[128];
    const char *k;
    json_t *x;
    int rc = 0;

    if (strlen(model) == 0 || strlen(model) > SL_FIELD_LEN - 1)
        return cfg_fail(g, "partitions: a GPU model must have 1-%d characters", SL_FIELD_LEN - 1);
    p->model = sl_strdup(g->host, model);
    if (p->model == NULL)
        return ORC_ENOMEM;
    if (!json_is_object(v))
        return cfg_fail(g, "partitions.%s: expected a mapping {partition, gres}", model);
    json_object_foreach(v, k, x)
    {
        snprintf(where, sizeof(where), "partitions.%s.%s", model, k);
        if (strcmp(k, "partition") == 0)
            rc = get_word(g, where, x, &p->partition);
        else if (strcmp(k, "gres") == 0)
            rc = get_word(g, where, x, &p->gres);
        else
            rc = cfg_fail(g, "partitions.%s: unknown key '%s' (known: partition, gres)", model, k);
        if (rc < 0)
            return rc;
    }
    if (p->partition == NULL)
        return cfg_fail(g, "partitions.%s.partition is required", model);
    return 0;
}

static int parse_partitions(struct cfg *g, json_t *v)
{
    struct sl_conf *c = g->c;
    const char *k;
    json_t *x;
    int rc;

    if (!json_is_object(v))
        return cfg_fail(g, "partitions: expected a mapping GPU model -> {partition, gres}");
    c->parts = g->host->calloc(json_object_size(v) + 1, sizeof(*c->parts));
    if (c->parts == NULL)
        return ORC_ENOMEM;
    json_object_foreach(v, k, x)
    {
        for (size_t i = 0; i < c->nparts; i++)
            if (strcasecmp(c->parts[i].model, k) == 0)
                return cfg_fail(g, "partitions: model '%s' is there twice (case does not count)",
                                k);
        rc = parse_part(g, k, x, &c->parts[c->nparts++]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_env(struct cfg *g, json_t *v)
{
    struct sl_conf *c = g->c;
    char where[160];
    const char *k;
    json_t *x;
    int rc;

    if (!json_is_object(v))
        return cfg_fail(g, "env: expected a mapping NAME -> value");
    c->env = g->host->calloc(json_object_size(v) + 1, sizeof(*c->env));
    if (c->env == NULL)
        return ORC_ENOMEM;
    json_object_foreach(v, k, x)
    {
        char *val = NULL;
        if (!rmt_env_name_ok(k))
            return cfg_fail(g, "env: '%s' is not a variable name ([A-Za-z_][A-Za-z0-9_]*)", k);
        snprintf(where, sizeof(where), "env.%s", k);
        if (json_is_string(x) && json_string_length(x) == 0) {
            val = sl_strdup(g->host, ""); /* set to empty */
        } else {
            rc = get_str(g, where, x, &val);
            if (rc < 0)
                return rc;
        }
        c->env[c->nenv].key = sl_strdup(g->host, k);
        c->env[c->nenv++].value = val;
        if (val == NULL || c->env[c->nenv - 1].key == NULL)
            return ORC_ENOMEM;
    }
    return 0;
}

/* ---- the top level --------------------------------------------------------------------------- */

static const char *const top_keys = "login, work_dir, partitions, default_partition, "
                                    "queue_timeout_ms, poll_ms, env, account, qos, "
                                    "time_limit_min, runtime_dir, agent_check, command_timeout_ms, "
                                    "cancel_timeout_ms, install_timeout_ms";

static int agent_check(struct cfg *g, json_t *v)
{
    int rc = get_str(g, "agent_check", v, &g->c->agent_check);

    if (rc == 0 && strcmp(g->c->agent_check, "none") != 0 &&
        strcmp(g->c->agent_check, "quick") != 0 && strcmp(g->c->agent_check, "standard") != 0)
        return cfg_fail(g, "agent_check: '%s' is not none, quick or standard", g->c->agent_check);
    return rc;
}

static int top_key(struct cfg *g, const char *k, json_t *v)
{
    struct sl_conf *c = g->c;

    if (strcmp(k, "login") == 0)
        return parse_login(g, v);
    if (strcmp(k, "work_dir") == 0)
        return get_str(g, "work_dir", v, &c->work_dir);
    if (strcmp(k, "partitions") == 0)
        return parse_partitions(g, v);
    if (strcmp(k, "default_partition") == 0)
        return get_word(g, "default_partition", v, &c->default_partition);
    if (strcmp(k, "queue_timeout_ms") == 0)
        return get_u64(g, k, v, 0, UINT64_C(1) << 40, &c->queue_timeout_ms);
    if (strcmp(k, "poll_ms") == 0)
        return get_u64(g, k, v, 10, 3600000, &c->poll_ms);
    if (strcmp(k, "env") == 0)
        return parse_env(g, v);
    if (strcmp(k, "account") == 0)
        return get_word(g, k, v, &c->account);
    if (strcmp(k, "qos") == 0)
        return get_word(g, k, v, &c->qos);
    if (strcmp(k, "time_limit_min") == 0)
        return get_u32(g, k, v, 1, 525600, &c->time_limit_min);
    if (strcmp(k, "runtime_dir") == 0)
        return get_str(g, k, v, &c->runtime_dir);
    if (strcmp(k, "agent_check") == 0)
        return agent_check(g, v);
    if (strcmp(k, "command_timeout_ms") == 0)
        return get_u32(g, k, v, 100, 3600000, &c->cmd_timeout_ms);
    if (strcmp(k, "cancel_timeout_ms") == 0)
        return get_u64(g, k, v, 100, 86400000, &c->cancel_timeout_ms);
    if (strcmp(k, "install_timeout_ms") == 0)
        return get_u32(g, k, v, 100, 3600000, &c->install_timeout_ms);
    return cfg_fail(g, "unknown key '%s' (known: %s)", k, top_keys);
}

static int check_whole(struct cfg *g)
{
    struct sl_conf *c = g->c;

    if (c->address == NULL)
        return cfg_fail(g, "login is required ({address, port, user, identity, known_hosts})");
    if (c->work_dir == NULL)
        return cfg_fail(g, "work_dir is required (a directory on the cluster's shared "
                           "filesystem, seen by the login node and every compute node)");
    if (strlen(c->work_dir) > SL_PATH_LEN - 200)
        return cfg_fail(g, "work_dir: longer than %d characters", SL_PATH_LEN - 200);
    return 0;
}

static void defaults(struct sl_conf *c)
{
    c->port = 22;
    c->hostkey = ORC_SSH_HOSTKEY_STRICT;
    c->poll_ms = 2000;
    c->cmd_timeout_ms = 60000;
    c->cancel_timeout_ms = 120000;
    c->install_timeout_ms = 300000;
}

int sl_conf_parse(const struct orc_host_api *host, const char *json, struct sl_conf *c, char *err,
                  size_t errlen)
{
    struct cfg g = {host, c, err, errlen};
    json_error_t jerr;
    json_t *doc = json_loads(json ? json : "{}", JSON_REJECT_DUPLICATES, &jerr), *v;
    const char *k;
    int rc = 0;

    defaults(c);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return cfg_fail(&g, "not a JSON object (%s)", doc ? "another JSON value" : jerr.text);
    }
    json_object_foreach(doc, k, v)
    {
        rc = top_key(&g, k, v);
        if (rc < 0)
            break;
    }
    json_decref(doc);
    if (rc == 0)
        rc = check_whole(&g);
    if (rc == ORC_ENOMEM)
        snprintf(err, errlen, "slurm: config: out of memory");
    if (rc < 0)
        sl_conf_free(host, c);
    return rc;
}

void sl_conf_free(const struct orc_host_api *host, struct sl_conf *c)
{
    char **strs[] = {&c->address,           &c->user,        &c->identity,   &c->known_hosts,
                     &c->passphrase,        &c->work_dir,    &c->account,    &c->qos,
                     &c->default_partition, &c->runtime_dir, &c->agent_check};

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        host->free(*strs[i]);
        *strs[i] = NULL;
    }
    for (size_t i = 0; c->parts && i < c->nparts + 1; i++) {
        host->free(c->parts[i].model);
        host->free(c->parts[i].partition);
        host->free(c->parts[i].gres);
    }
    for (size_t i = 0; c->env && i < c->nenv + 1; i++) {
        host->free((char *)c->env[i].key);
        host->free((char *)c->env[i].value);
    }
    host->free(c->parts);
    host->free(c->env);
    c->parts = NULL;
    c->env = NULL;
    c->nparts = c->nenv = 0;
}

const struct sl_part *sl_conf_part(const struct sl_conf *c, const char *model)
{
    for (size_t i = 0; model && i < c->nparts; i++)
        if (strcasecmp(c->parts[i].model, model) == 0)
            return &c->parts[i];
    return NULL;
}

void sl_conf_target(const struct sl_conf *c, struct orc_ssh_target *t)
{
    memset(t, 0, sizeof(*t));
    t->address = c->address;
    t->port = c->port;
    t->user = c->user;
    t->identity = c->identity;
    t->passphrase = c->passphrase;
    t->known_hosts = c->known_hosts;
    t->hostkey = c->hostkey;
    t->connect_timeout_ms = c->connect_timeout_ms;
    t->retries = 2;
}
