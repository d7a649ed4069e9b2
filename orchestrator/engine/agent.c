/*
 * The engine's side of gpu-agent (engine.h, "agents"): the per-deployment
 * token an agent reports with, the environment a workload's agent is started
 * with, and the reports it sends, which become resource attributes.
 *
 * Token: "orc-agent-v1." + hex(HMAC-SHA256(key, "agent:" + deployment uuid)).
 * Nothing is stored per deployment; the key is the daemon's (a random one in
 * the store's metadata, or the configuration's, shared by every daemon of one
 * store). Reports land on two resources of the deployment: the one whose
 * workload the agent runs and its compute node (inventory and health).
 */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../base.h"
#include "engine_int.h"

#define LOG "engine"
#define TOKEN_PREFIX "orc-agent-v1."
#define MAX_REPORTS 4096

int orc_engine_agent_token(const struct orc_engine *eng, const char *deployment,
                           char out[ORC_AGENT_TOKEN_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    char msg[6 + ORC_UUID_LEN];
    static const char hex[] = "0123456789abcdef";
    size_t p = sizeof(TOKEN_PREFIX) - 1;

    out[0] = '\0';
    if (eng->opts.agent_key == NULL || eng->opts.agent_key_len == 0)
        return ORC_ENOTSUP;
    snprintf(msg, sizeof(msg), "agent:%s", deployment);
    if (HMAC(EVP_sha256(), eng->opts.agent_key, (int)eng->opts.agent_key_len,
             (const unsigned char *)msg, strlen(msg), mac, &len) == NULL ||
        len != 32)
        return ORC_EIO;
    memcpy(out, TOKEN_PREFIX, p);
    for (unsigned i = 0; i < len; i++) {
        out[p++] = hex[mac[i] >> 4];
        out[p++] = hex[mac[i] & 15];
    }
    out[p] = '\0';
    return 0;
}

bool orc_engine_agent_token_ok(const struct orc_engine *eng, const char *deployment,
                               const char *token)
{
    char want[ORC_AGENT_TOKEN_LEN];

    if (token == NULL || !orc_uuid_valid(deployment) ||
        orc_engine_agent_token(eng, deployment, want) < 0 || strlen(token) != strlen(want))
        return false;
    return CRYPTO_memcmp(token, want, strlen(want)) == 0;
}

size_t orc__agent_env(struct run *r, struct inst *in, struct orc_kv *env, size_t room,
                      char token[ORC_AGENT_TOKEN_LEN])
{
    const struct orc_engine *eng = r->eng;
    struct nrun *top = in->node->top;
    const char *host = top && in->index < top->ninst ? top->inst[in->index].res_uuid : NULL;
    size_t n = 0;

    if (eng->opts.agent_url == NULL || room < 6 ||
        orc_engine_agent_token(eng, r->uuid, token) < 0)
        return 0;
    env[n++] = (struct orc_kv){"ORC_AGENT_URL", eng->opts.agent_url};
    env[n++] = (struct orc_kv){"ORC_AGENT_TOKEN", token};
    env[n++] = (struct orc_kv){"ORC_AGENT_DEPLOYMENT", r->uuid};
    env[n++] = (struct orc_kv){"ORC_AGENT_RESOURCE", in->res_uuid};
    env[n++] = (struct orc_kv){"ORC_AGENT_HOST_RESOURCE", host && host[0] ? host : in->res_uuid};
    if (eng->opts.agent_ca_file)
        env[n++] = (struct orc_kv){"ORC_AGENT_CA_FILE", eng->opts.agent_ca_file};
    return n;
}

/* ---- attributes kept across the driver's answers ---- */

/* The attributes the agent's reports own: a driver's answer replaces a
 * resource's attributes, these stay, and win over the driver's own (the
 * local driver says workload_state too: the agent, beside the process,
 * knows better, and later). */
static const char *const agent_keys[] = {"agent",       "gpu_health", "gpu_count",
                                         "gpu_models",  "workload_state", "restarts"};

void orc__agent_keep_attrs(const json_t *old, json_t *fresh)
{
    if (!json_is_object(old) || !json_is_object(fresh))
        return;
    for (size_t i = 0; i < sizeof(agent_keys) / sizeof(agent_keys[0]); i++) {
        json_t *v = json_object_get(old, agent_keys[i]);
        if (v)
            json_object_set(fresh, agent_keys[i], v);
    }
}

/* ---- reports ---- */

struct target {
    orc_resource_t *row;
    json_t *attrs; /* the new attributes */
    json_t *agent; /* attrs.agent */
    bool changed, noteworthy;
    char note[256];
};

static int target_load(struct orc_engine *eng, const char *dep, const char *id, struct target *t,
                       char *why, size_t whylen)
{
    int rc;

    if (id == NULL || !orc_uuid_valid(id)) {
        snprintf(why, whylen, "\"resource\" and \"host_resource\" must be resource uuids");
        return ORC_EFORMAT;
    }
    rc = orc_store_resource_get(eng->store, dep, id, &t->row);
    if (rc == ORC_ENOTFOUND)
        snprintf(why, whylen, "the resource %s is not in deployment %s", id, dep);
    else if (rc < 0)
        snprintf(why, whylen, "store: %s", orc_store_errmsg(eng->store));
    if (rc < 0)
        return rc;
    t->attrs = t->row->attributes ? json_deep_copy(t->row->attributes) : json_object();
    if (t->attrs == NULL || !json_is_object(t->attrs))
        return ORC_ENOMEM;
    t->agent = json_object_get(t->attrs, "agent");
    if (!json_is_object(t->agent)) {
        t->agent = json_object();
        if (t->agent == NULL || json_object_set_new(t->attrs, "agent", t->agent) < 0)
            return ORC_ENOMEM;
    }
    return 0;
}

static void set_attr(struct target *t, const char *key, json_t *v)
{
    json_t *old = json_object_get(t->attrs, key);

    if (v == NULL)
        return;
    if (old == NULL || !json_equal(old, v))
        t->noteworthy = true;
    json_object_set_new(t->attrs, key, v);
    t->changed = true;
}

static void set_agent(struct target *t, const char *key, json_t *v)
{
    if (v == NULL)
        return;
    json_object_set_new(t->agent, key, v);
    t->changed = true;
}

/* The models of an inventory's GPUs, "H100,H100" -> ["H100"], in order. */
static json_t *gpu_models(const json_t *gpus)
{
    json_t *models = json_array();
    size_t i, j;
    json_t *g, *m;

    json_array_foreach(gpus, i, g) {
        const char *name = json_string_value(json_object_get(g, "name"));
        bool seen = false;
        if (name == NULL)
            continue;
        json_array_foreach(models, j, m)
            seen |= strcmp(json_string_value(m), name) == 0;
        if (!seen)
            json_array_append_new(models, json_string(name));
    }
    return models;
}

static void apply_inventory(struct target *host, json_t *data)
{
    json_t *gpus = json_object_get(data, "gpus");

    set_agent(host, "inventory", json_incref(data));
    if (json_is_array(gpus)) {
        set_attr(host, "gpu_count", json_integer((json_int_t)json_array_size(gpus)));
        set_attr(host, "gpu_models", gpu_models(gpus));
    }
}

static void apply_health(struct target *host, json_t *data)
{
    const char *verdict = json_string_value(json_object_get(data, "verdict"));
    json_t *old = json_object_get(host->attrs, "gpu_health");

    set_agent(host, "health", json_incref(data));
    if (verdict == NULL)
        return;
    if (old == NULL || strcmp(json_string_value(old) ? json_string_value(old) : "", verdict) != 0)
        snprintf(host->note, sizeof(host->note), "gpu-agent: GPU health %s", verdict);
    set_attr(host, "gpu_health", json_string(verdict));
}

static void apply_workload(struct target *res, json_t *data)
{
    const char *name = json_string_value(json_object_get(data, "name"));
    const char *state = json_string_value(json_object_get(data, "state"));
    json_t *wls = json_object_get(res->agent, "workloads");
    json_t *restarts = json_object_get(data, "restarts");

    if (name == NULL || state == NULL)
        return;
    if (!json_is_object(wls)) {
        wls = json_object();
        set_agent(res, "workloads", wls);
    }
    json_object_set(wls, name, data);
    res->changed = true;
    json_t *old = json_object_get(res->attrs, "workload_state");
    if (old == NULL || strcmp(json_string_value(old) ? json_string_value(old) : "", state) != 0)
        snprintf(res->note, sizeof(res->note), "gpu-agent: workload %s %s", name, state);
    set_attr(res, "workload_state", json_string(state));
    if (json_is_integer(restarts))
        set_attr(res, "restarts", json_incref(restarts));
}

/* A heartbeat: the agent's status, whose workloads' states are the newest word on them
 * (a workload report lost, or one of another agent of the same resource, such as a
 * duplicate VM's, is overtaken by the next heartbeat). */
static void apply_heartbeat(struct target *res, json_t *data)
{
    json_t *w;
    size_t i;

    set_agent(res, "status", json_incref(data));
    json_array_foreach(json_object_get(data, "workloads"), i, w)
        if (json_is_object(w))
            apply_workload(res, w);
}

/* A chunk of a workload's output: the tail of each workload's output is
 * kept, at most ORC_AGENT_LOG_TAIL bytes (cut at a character boundary), in
 * agent.log.NAME, with agent.log_end.NAME the output offset it ends at, so
 * that a batch sent again adds nothing twice. GET /deployments/{id}/log
 * shows it. */
#define ORC_AGENT_LOG_TAIL 65536

static json_t *agent_obj(struct target *res, const char *key)
{
    json_t *o = json_object_get(res->agent, key);

    if (!json_is_object(o)) {
        o = json_object();
        set_agent(res, key, o);
    }
    return o;
}

static void apply_log(struct target *res, json_t *data)
{
    const char *name = json_string_value(json_object_get(data, "name"));
    json_t *text = json_object_get(data, "data"), *logs, *ends;
    json_int_t off = json_integer_value(json_object_get(data, "offset")), end;
    const char *chunk = json_string_value(text), *old;
    size_t clen = json_string_length(text), olen, skip = 0, keep;
    char *buf;

    set_agent(res, "log_bytes",
              json_integer(json_integer_value(json_object_get(res->agent, "log_bytes")) +
                           (json_int_t)clen));
    if (name == NULL || chunk == NULL || off < 0)
        return;
    logs = agent_obj(res, "log");
    ends = agent_obj(res, "log_end");
    if (logs == NULL || ends == NULL)
        return;
    end = json_integer_value(json_object_get(ends, name));
    if (off + (json_int_t)clen <= end)
        return; /* seen already */
    if (off < end)
        skip = (size_t)(end - off);
    while (skip < clen && ((unsigned char)chunk[skip] & 0xC0) == 0x80)
        skip++;
    old = json_string_value(json_object_get(logs, name));
    olen = old ? strlen(old) : 0;
    buf = orc_malloc(olen + clen - skip + 1);
    if (buf == NULL)
        return;
    memcpy(buf, old ? old : "", olen);
    memcpy(buf + olen, chunk + skip, clen - skip);
    olen += clen - skip;
    buf[olen] = '\0';
    keep = olen > ORC_AGENT_LOG_TAIL ? olen - ORC_AGENT_LOG_TAIL : 0;
    while (keep < olen && ((unsigned char)buf[keep] & 0xC0) == 0x80)
        keep++;
    json_object_set_new(logs, name, json_string(buf + keep));
    json_object_set_new(ends, name, json_integer(off + (json_int_t)clen));
    orc_free(buf);
    res->changed = true;
}

/* One report; unknown types are skipped (newer agents). */
static int apply_one(struct target *res, struct target *host, json_t *rep, size_t i, char *why,
                     size_t whylen)
{
    const char *type = json_string_value(json_object_get(rep, "type"));
    json_t *data = json_object_get(rep, "data");
    json_t *when = json_object_get(rep, "time_ms");

    if (type == NULL || !json_is_object(data)) {
        snprintf(why, whylen, "reports[%zu]: needs a string \"type\" and an object \"data\"", i);
        return ORC_EFORMAT;
    }
    if (json_is_integer(when))
        set_agent(res, "last_report_ms", json_incref(when));
    if (strcmp(type, "inventory") == 0)
        apply_inventory(host, data);
    else if (strcmp(type, "health") == 0)
        apply_health(host, data);
    else if (strcmp(type, "workload") == 0)
        apply_workload(res, data);
    else if (strcmp(type, "heartbeat") == 0)
        apply_heartbeat(res, data);
    else if (strcmp(type, "log") == 0)
        apply_log(res, data);
    return 0;
}

/* The run working on the deployment keeps the attributes it will store
 * next in memory: it gets the agent's too. */
static void tell_run(struct orc_engine *eng, const char *dep, const struct target *t)
{
    struct run *r = orc__engine_find_run(eng, dep);

    for (size_t i = 0; r && i < r->nnodes; i++)
        for (size_t k = 0; k < r->nodes[i].ninst; k++) {
            struct inst *in = &r->nodes[i].inst[k];
            if (strcmp(in->res_uuid, t->row->uuid) != 0)
                continue;
            if (in->attrs == NULL)
                in->attrs = json_object();
            for (size_t j = 0; j < sizeof(agent_keys) / sizeof(agent_keys[0]); j++) {
                json_t *v = json_object_get(t->attrs, agent_keys[j]);
                if (v && in->attrs)
                    json_object_set(in->attrs, agent_keys[j], v);
            }
            return;
        }
}

static int target_store(struct orc_engine *eng, struct target *t)
{
    orc_resource_t v = {.attributes = t->attrs};
    orc_res_update_t u = {.uuid = t->row->uuid,
                          .set = ORC_RES_F_ATTRIBUTES,
                          .values = &v,
                          .event_message = t->note[0] ? t->note : NULL,
                          .no_event = t->note[0] == '\0'};
    int rc;

    if (!t->changed)
        return 0;
    rc = orc_store_resource_update(eng->store, &u, NULL);
    if (rc == 0) {
        tell_run(eng, t->row->deployment_uuid, t);
        if (eng->opts.notify && t->note[0])
            eng->opts.notify(eng->opts.notify_ud, t->row->deployment_uuid);
    }
    return rc;
}

static void target_fini(struct target *t)
{
    orc_resource_free(t->row);
    json_decref(t->attrs);
}

int orc__agent_forget(struct orc_engine *eng, const char *deployment, struct inst *in)
{
    struct target t = {0};
    char why[160];
    int rc;

    for (size_t i = 0; in->attrs && i < sizeof(agent_keys) / sizeof(agent_keys[0]); i++)
        json_object_del(in->attrs, agent_keys[i]);
    if (in->res_uuid[0] == '\0')
        return 0;
    rc = target_load(eng, deployment, in->res_uuid, &t, why, sizeof(why));
    if (rc == 0) {
        for (size_t i = 0; i < sizeof(agent_keys) / sizeof(agent_keys[0]); i++)
            t.changed |= json_object_del(t.attrs, agent_keys[i]) == 0;
        rc = target_store(eng, &t);
    }
    target_fini(&t);
    return rc == ORC_ENOTFOUND ? 0 : rc;
}

int orc_engine_agent_reports(struct orc_engine *eng, const char *deployment, const json_t *body,
                             uint64_t *accepted, char *why, size_t whylen)
{
    const char *rid = json_string_value(json_object_get(body, "resource"));
    const char *hid = json_string_value(json_object_get(body, "host_resource"));
    json_t *reports = json_object_get(body, "reports");
    json_t *agent = json_object_get(body, "agent");
    struct target res = {0}, host = {0};
    struct target *h = &host;
    size_t i;
    json_t *rep;
    int rc;

    *accepted = 0;
    why[0] = '\0';
    if (!json_is_array(reports) || json_array_size(reports) > MAX_REPORTS) {
        snprintf(why, whylen, "\"reports\" must be an array of at most %d reports", MAX_REPORTS);
        return ORC_EFORMAT;
    }
    rc = target_load(eng, deployment, rid, &res, why, whylen);
    if (rc == 0 && hid && strcmp(hid, rid) != 0)
        rc = target_load(eng, deployment, hid, &host, why, whylen);
    else
        h = &res;
    if (rc < 0)
        goto out;
    if (json_is_object(agent))
        set_agent(&res, "identity", json_incref(agent));
    json_array_foreach(reports, i, rep) {
        rc = apply_one(&res, h, rep, i, why, whylen);
        if (rc < 0)
            goto out;
        json_t *seq = json_object_get(rep, "seq");
        if (json_is_integer(seq) && (uint64_t)json_integer_value(seq) > *accepted)
            *accepted = (uint64_t)json_integer_value(seq);
    }
    rc = target_store(eng, &res);
    if (rc == 0 && h != &res)
        rc = target_store(eng, h);
    if (rc < 0)
        snprintf(why, whylen, "store: %s", orc_store_errmsg(eng->store));
out:
    target_fini(&res);
    target_fini(&host);
    return rc;
}

/* ---- what the agent said, for drivers (host->agent_state) ---- */

int orc__agent_state(void *ctx, const char *deployment, const char *resource, char **json)
{
    struct orc_engine *eng = ctx;
    orc_resource_t *row = NULL;
    const json_t *attrs, *agent;
    json_t *out;
    char *text;
    int rc;

    *json = NULL;
    if (!orc_uuid_valid(deployment) || !orc_uuid_valid(resource))
        return ORC_ENOTFOUND;
    rc = orc_store_resource_get(eng->store, deployment, resource, &row);
    if (rc < 0)
        return rc;
    attrs = row->attributes;
    agent = json_object_get(attrs, "agent");
    out = json_object();
    if (out == NULL) {
        orc_resource_free(row);
        return ORC_ENOMEM;
    }
    json_object_set(out, "workload_state", json_object_get(attrs, "workload_state"));
    json_object_set(out, "restarts", json_object_get(attrs, "restarts"));
    json_object_set(out, "gpu_health", json_object_get(attrs, "gpu_health"));
    json_object_set(out, "workloads", json_object_get(agent, "workloads"));
    json_object_set(out, "last_report_ms", json_object_get(agent, "last_report_ms"));
    orc_resource_free(row);
    text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    *json = text ? orc_strdup(text) : NULL;
    free(text); /* jansson's allocator */
    return *json ? 0 : ORC_ENOMEM;
}
