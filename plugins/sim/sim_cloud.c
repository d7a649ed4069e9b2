/*
 * The simulated cloud behind the sim driver: site config, resources with
 * time-driven states (a creation completes at ready_ms and a deletion at
 * gone_ms in wall-clock time, so the cloud goes on "running" while the
 * daemon is down), capacity accounting per GPU model, CPUs and memory, and
 * the inventory file: JSON written atomically (temp file + rename) on every
 * change and read back on site_open. Tests read that file to prove that
 * nothing leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "orc/size.h"
#include "sim.h"

/* Names of the operations in the config's latency, failures and hangs:
 * the slots' names. */
static const char *const op_names[SIM_NOPS] = {
    "open",           "close", "inventory", "provision",     "deprovision", "status", "adopt",
    "start_workload", "exec",  "logs",      "stop_workload", "stop",        "start",
};

static const char *const state_names[] = {"UNKNOWN", "CREATING", "READY",
                                          "STOPPED", "FAILED",   "DELETING"};

int64_t sim_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* splitmix64: small, fast, and the same sequence for the same seed */
uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

double sim_rand01(struct sim *s)
{
    return (double)(sim_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- config ---------------------------------------------------------------- */

static int op_index(const char *name)
{
    for (int i = 0; i < SIM_NOPS; i++)
        if (strcmp(op_names[i], name) == 0)
            return i;
    return -1;
}

static int parse_latency_one(orc_op_t *op, const char *key, const json_t *v,
                             struct sim_latency *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) <= 86400000) {
        out->fixed_ms = (uint32_t)json_integer_value(v);
        out->jitter_ms = 0;
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *n;
        json_object_foreach((json_t *)v, k, n) {
            if (!json_is_integer(n) || json_integer_value(n) < 0 ||
                json_integer_value(n) > 86400000)
                return orc_op_failf(op, ORC_EINVAL, "sim: latency.%s.%s: expected milliseconds",
                                    key, k);
            if (strcmp(k, "fixed_ms") == 0)
                out->fixed_ms = (uint32_t)json_integer_value(n);
            else if (strcmp(k, "jitter_ms") == 0)
                out->jitter_ms = (uint32_t)json_integer_value(n);
            else
                return orc_op_failf(op, ORC_EINVAL,
                                    "sim: latency.%s: unknown key '%s' (fixed_ms, jitter_ms)",
                                    key, k);
        }
        return 0;
    }
    return orc_op_failf(op, ORC_EINVAL,
                        "sim: latency.%s: expected milliseconds or {fixed_ms, jitter_ms}", key);
}

static int parse_latency(struct sim *s, orc_op_t *op, const json_t *v)
{
    const json_t *def = json_object_get(v, "default");
    const char *k;
    json_t *n;
    int rc;

    if (!json_is_object(v))
        return orc_op_failf(op, ORC_EINVAL, "sim: latency: expected a mapping");
    if (def != NULL) {
        struct sim_latency l = {0, 0};
        rc = parse_latency_one(op, "default", def, &l);
        if (rc < 0)
            return rc;
        for (int i = 0; i < SIM_NOPS; i++)
            s->lat[i] = l;
    }
    json_object_foreach((json_t *)v, k, n) {
        int i = op_index(k);
        if (strcmp(k, "default") == 0)
            continue;
        if (i < 0)
            return orc_op_failf(op, ORC_EINVAL,
                                "sim: latency: unknown operation '%s' (default, open, close, "
                                "inventory, provision, deprovision, status, adopt, "
                                "start_workload, exec, logs, stop_workload, stop, start)",
                                k);
        rc = parse_latency_one(op, k, n, &s->lat[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_rates(orc_op_t *op, const char *what, const json_t *v, double rates[SIM_NOPS])
{
    const char *k;
    json_t *n;

    if (!json_is_object(v))
        return orc_op_failf(op, ORC_EINVAL, "sim: %s: expected a mapping of operation to rate",
                            what);
    json_object_foreach((json_t *)v, k, n) {
        int i = op_index(k);
        if (i < 0 || i == SIM_OPEN || i == SIM_CLOSE)
            return orc_op_failf(op, ORC_EINVAL,
                                "sim: %s: unknown operation '%s' (inventory, provision, "
                                "deprovision, status, adopt, start_workload, exec, logs, "
                                "stop_workload, stop, start)",
                                what, k);
        if (!json_is_number(n) || json_number_value(n) < 0 || json_number_value(n) > 1)
            return orc_op_failf(op, ORC_EINVAL, "sim: %s.%s: expected a rate in [0, 1]", what,
                                k);
        rates[i] = json_number_value(n);
    }
    return 0;
}

static struct sim_gpu *gpu_find(struct sim *s, const char *model)
{
    for (size_t i = 0; i < s->ngpus; i++)
        if (strcasecmp(s->gpus[i].model, model) == 0)
            return &s->gpus[i];
    return NULL;
}

static int parse_capacity(struct sim *s, orc_op_t *op, const json_t *v)
{
    const char *k;
    json_t *n;

    if (!json_is_object(v))
        return orc_op_failf(op, ORC_EINVAL, "sim: capacity: expected a mapping");
    json_object_foreach((json_t *)v, k, n) {
        if (strcmp(k, "cpus") == 0) {
            if (!json_is_integer(n) || json_integer_value(n) < 0)
                return orc_op_failf(op, ORC_EINVAL, "sim: capacity.cpus: expected an integer");
            s->cpus = json_integer_value(n);
        } else if (strcmp(k, "mem") == 0) {
            uint64_t mem = 0;
            if (orc_size_json(n, &mem) < 0)
                return orc_op_failf(op, ORC_EINVAL,
                                    "sim: capacity.mem: expected bytes or a size (\"256 GB\")");
            s->mem = (int64_t)mem;
        } else if (strcmp(k, "gpus") == 0) {
            const char *model;
            json_t *c;
            if (!json_is_object(n))
                return orc_op_failf(op, ORC_EINVAL,
                                    "sim: capacity.gpus: expected {MODEL: count}");
            s->ngpus = 0;
            json_object_foreach(n, model, c) {
                if (!json_is_integer(c) || json_integer_value(c) < 0)
                    return orc_op_failf(op, ORC_EINVAL,
                                        "sim: capacity.gpus.%s: expected an integer", model);
                if (s->ngpus == SIM_MAX_MODELS || strlen(model) >= SIM_MODEL_LEN ||
                    *model == '\0')
                    return orc_op_failf(op, ORC_EINVAL,
                                        "sim: capacity.gpus: at most %d models, names under %d "
                                        "characters",
                                        SIM_MAX_MODELS, SIM_MODEL_LEN);
                snprintf(s->gpus[s->ngpus].model, SIM_MODEL_LEN, "%s", model);
                s->gpus[s->ngpus].price = -1;
                s->gpus[s->ngpus++].total = json_integer_value(c);
            }
        } else {
            return orc_op_failf(op, ORC_EINVAL,
                                "sim: capacity: unknown key '%s' (cpus, mem, gpus)", k);
        }
    }
    return 0;
}

static int parse_price(struct sim *s, orc_op_t *op, const json_t *v)
{
    const char *k;
    json_t *n;

    if (!json_is_object(v))
        return orc_op_failf(op, ORC_EINVAL, "sim: price: expected {cpu|MODEL: per hour}");
    json_object_foreach((json_t *)v, k, n) {
        struct sim_gpu *g = gpu_find(s, k);
        if (!json_is_number(n) || json_number_value(n) < 0)
            return orc_op_failf(op, ORC_EINVAL, "sim: price.%s: expected a number >= 0", k);
        if (strcmp(k, "cpu") == 0)
            s->price_cpu = json_number_value(n);
        else if (g != NULL)
            g->price = json_number_value(n);
        else
            return orc_op_failf(op, ORC_EINVAL, "sim: price.%s: no such GPU model in capacity",
                                k);
    }
    return 0;
}

static int want_bool(orc_op_t *op, const char *k, const json_t *n, bool *out)
{
    if (!json_is_boolean(n))
        return orc_op_failf(op, ORC_EINVAL, "sim: %s: expected true or false", k);
    *out = json_is_true(n);
    return 0;
}

static int config_key(struct sim *s, orc_op_t *op, const char *k, const json_t *n)
{
    if (strcmp(k, "inventory") == 0) {
        if (!json_is_string(n) || json_string_length(n) == 0)
            return orc_op_failf(op, ORC_EINVAL, "sim: inventory: expected a file path");
        s->path = s->host->malloc(json_string_length(n) + 1);
        if (s->path == NULL)
            return ORC_ENOMEM;
        memcpy(s->path, json_string_value(n), json_string_length(n) + 1);
        return 0;
    }
    if (strcmp(k, "seed") == 0) {
        if (!json_is_integer(n) || json_integer_value(n) < 0)
            return orc_op_failf(op, ORC_EINVAL, "sim: seed: expected an integer >= 0");
        s->rng = (uint64_t)json_integer_value(n);
        return 0;
    }
    if (strcmp(k, "max_gpus_per_node") == 0) {
        if (!json_is_integer(n) || json_integer_value(n) < 1)
            return orc_op_failf(op, ORC_EINVAL, "sim: max_gpus_per_node: expected >= 1");
        s->max_gpus_per_node = json_integer_value(n);
        return 0;
    }
    if (strcmp(k, "fsync") == 0)
        return want_bool(op, k, n, &s->fsync);
    if (strcmp(k, "leave_failed") == 0)
        return want_bool(op, k, n, &s->leave_failed);
    if (strcmp(k, "shared") == 0)
        return want_bool(op, k, n, &s->shared);
    if (strcmp(k, "public_ip") == 0)
        return want_bool(op, k, n, &s->public_ip);
    if (strcmp(k, "capacity") == 0)
        return parse_capacity(s, op, n);
    if (strcmp(k, "latency") == 0)
        return parse_latency(s, op, n);
    if (strcmp(k, "failures") == 0)
        return parse_rates(op, k, n, s->fail);
    if (strcmp(k, "hangs") == 0)
        return parse_rates(op, k, n, s->hang);
    if (strcmp(k, "price") == 0)
        return 0; /* after capacity: see sim_config */
    return orc_op_failf(op, ORC_EINVAL,
                        "sim: unknown config key '%s' (inventory, seed, capacity, price, latency, "
                        "failures, hangs, leave_failed, public_ip, max_gpus_per_node, fsync, "
                        "shared)",
                        k);
}

int sim_config(struct sim *s, orc_op_t *op)
{
    json_error_t jerr;
    json_t *cfg = json_loads(s->conf->config_json, 0, &jerr);
    const char *k;
    json_t *n;
    int rc = 0;

    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return orc_op_failf(op, ORC_EINVAL, "sim: config is not a JSON object");
    }
    /* defaults: the example site of docs/drivers.md */
    s->rng = 1;
    s->cpus = 64;
    s->mem = (int64_t)256 << 30;
    s->ngpus = 2;
    snprintf(s->gpus[0].model, SIM_MODEL_LEN, "A100");
    s->gpus[0].total = 8;
    s->gpus[0].price = -1;
    snprintf(s->gpus[1].model, SIM_MODEL_LEN, "T4");
    s->gpus[1].total = 4;
    s->gpus[1].price = -1;
    s->price_cpu = -1;
    s->max_gpus_per_node = 8;
    s->public_ip = true;
    json_object_foreach(cfg, k, n) {
        rc = config_key(s, op, k, n);
        if (rc < 0)
            break;
    }
    if (rc == 0 && json_object_get(cfg, "price") != NULL)
        rc = parse_price(s, op, json_object_get(cfg, "price"));
    json_decref(cfg);
    return rc;
}

void sim_config_free(struct sim *s)
{
    sim_share_end(s);
    s->host->free(s->path);
    s->path = NULL;
    json_decref(s->resources);
    json_decref(s->transit);
    s->resources = NULL;
    s->transit = NULL;
}

static void usage_apply(struct sim *s, const json_t *rec, int sign);

/* ---- records --------------------------------------------------------------------- */

static int64_t rec_int(const json_t *rec, const char *key)
{
    return json_integer_value(json_object_get(rec, key));
}

static const char *rec_str(const json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

enum orc_drv_res_state sim_record_state(const json_t *rec)
{
    const char *st = rec_str(rec, "state");

    for (size_t i = 0; st != NULL && i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(st, state_names[i]) == 0)
            return (enum orc_drv_res_state)i;
    return ORC_DRV_RES_UNKNOWN;
}

void sim_record_set_state(json_t *rec, enum orc_drv_res_state st)
{
    json_object_set_new(rec, "state", json_string(state_names[st]));
}

int sim_record_log(struct sim *s, json_t *rec, const char *fmt, ...)
{
    const char *old = rec_str(rec, "log");
    char line[512];
    char *buf;
    size_t n, m;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    n = old ? strlen(old) : 0;
    m = strlen(line);
    buf = s->host->malloc(n + m + 2);
    if (buf == NULL)
        return ORC_ENOMEM;
    memcpy(buf, old ? old : "", n);
    memcpy(buf + n, line, m);
    buf[n + m] = '\n';
    buf[n + m + 1] = '\0';
    rc = json_object_set_new(rec, "log", json_string(buf)) == 0 ? 0 : ORC_ENOMEM;
    s->host->free(buf);
    sim_dirty(s);
    return rc;
}

static uint64_t name_hash(const char *name)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);

    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

json_t *sim_record_new(struct sim *s, const struct orc_node_req *req, const char *model,
                       int64_t now, int64_t ready_ms)
{
    uint64_t h = name_hash(req->name);
    json_t *rec = json_object(), *ports = json_array();
    char addr[32], pid[32];
    int bad = rec == NULL || ports == NULL;
    uint32_t cpus = req->num_cpus ? req->num_cpus : 1;

    snprintf(addr, sizeof(addr), "10.%u.%u.%u", (unsigned)((h >> 8) & 0xff),
             (unsigned)((h >> 16) & 0xff), (unsigned)(1 + (h & 0xff) % 254));
    snprintf(pid, sizeof(pid), "sim-%016llx", (unsigned long long)h);
    for (size_t i = 0; !bad && i < req->nports; i++)
        bad |= json_array_append_new(ports, json_integer(req->ports[i]));
    bad = bad || json_object_set_new(rec, "state", json_string("CREATING")) ||
          json_object_set_new(rec, "created_ms", json_integer(now)) ||
          json_object_set_new(rec, "ready_ms", json_integer(ready_ms)) ||
          json_object_set_new(rec, "provider_id", json_string(pid)) ||
          json_object_set_new(rec, "deployment", json_string(req->deployment ? req->deployment : "")) ||
          json_object_set_new(rec, "node", json_string(req->node ? req->node : "")) ||
          json_object_set_new(rec, "index", json_integer(req->index)) ||
          json_object_set_new(rec, "kind", json_integer(req->kind)) ||
          json_object_set_new(rec, "cpus", json_integer(cpus)) ||
          json_object_set_new(rec, "mem", json_integer((json_int_t)req->mem_size)) ||
          json_object_set_new(rec, "gpus", json_integer(req->num_gpus)) ||
          json_object_set_new(rec, "gpu_model", json_string(model)) ||
          json_object_set_new(rec, "private_address", json_string(addr)) ||
          json_object_set(rec, "ports", ports) ||
          json_object_set_new(rec, "workloads", json_object());
    if (!bad && req->public_ip) {
        snprintf(addr, sizeof(addr), "203.0.113.%u", (unsigned)(1 + (h >> 24) % 254));
        bad = json_object_set_new(rec, "public_address", json_string(addr));
    }
    json_decref(ports);
    if (!bad && sim_record_log(s, rec, "created %s: %u cpus, %llu bytes, %u x %s", req->name, cpus,
                               (unsigned long long)req->mem_size, req->num_gpus,
                               *model ? model : "no GPU") < 0)
        bad = 1;
    if (bad || json_object_set(s->resources, req->name, rec) != 0) {
        json_decref(rec);
        return NULL;
    }
    json_decref(rec); /* s->resources holds it */
    usage_apply(s, rec, +1);
    sim_due(s, req->name, ready_ms);
    sim_dirty(s);
    return rec;
}

int sim_record_report(struct sim *s, orc_op_t *op, const json_t *rec)
{
    const struct orc_host_api *h = s->host;
    const json_t *ports = json_object_get(rec, "ports");
    const char *addr = rec_str(rec, "public_address");
    char buf[256];
    size_t len = 0;
    int rc = 0;

    op->exists = rec != NULL;
    op->res_state = rec ? (int32_t)sim_record_state(rec) : ORC_DRV_RES_UNKNOWN;
    if (rec == NULL)
        return 0;
    if (rec_str(rec, "private_address") == NULL || rec_str(rec, "provider_id") == NULL)
        return orc_op_failf(op, ORC_EFORMAT, "sim: damaged resource record");
    rc |= h->op_attr_set(op, ORC_ATTR_PRIVATE_ADDRESS, rec_str(rec, "private_address"));
    rc |= h->op_attr_set(op, ORC_ATTR_PROVIDER_ID, rec_str(rec, "provider_id"));
    if (addr != NULL)
        rc |= h->op_attr_set(op, ORC_ATTR_PUBLIC_ADDRESS, addr);
    if (rec_str(rec, "gpu_model") && *rec_str(rec, "gpu_model"))
        rc |= h->op_attr_set(op, ORC_ATTR_GPU_MODEL, rec_str(rec, "gpu_model"));
    if (json_array_size(ports) > 0) {
        len += (size_t)snprintf(buf, sizeof(buf), "[");
        for (size_t i = 0; i < json_array_size(ports) && len < sizeof(buf) - 8; i++)
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld", i ? "," : "",
                                    (long long)json_integer_value(json_array_get(ports, i)));
        snprintf(buf + len, sizeof(buf) - len, "]");
        rc |= h->op_attr_set(op, ORC_ATTR_PORTS, buf);
        snprintf(buf, sizeof(buf), "http://%s:%lld",
                 addr ? addr : rec_str(rec, "private_address"),
                 (long long)json_integer_value(json_array_get(ports, 0)));
        rc |= h->op_attr_set(op, ORC_ATTR_ENDPOINT, buf);
    }
    return rc ? ORC_ENOMEM : 0;
}

/* ---- capacity ---------------------------------------------------------------------- */

static void usage_apply(struct sim *s, const json_t *rec, int sign)
{
    const char *model = rec_str(rec, "gpu_model");
    const struct sim_gpu *g = model && *model ? gpu_find(s, model) : NULL;

    s->used.cpus += sign * rec_int(rec, "cpus");
    s->used.mem += sign * rec_int(rec, "mem");
    if (g != NULL)
        s->used.gpus[g - s->gpus] += sign * rec_int(rec, "gpus");
}

void sim_due(struct sim *s, const char *name, int64_t t)
{
    if (t < 0)
        return;
    json_object_set_new(s->transit, name, json_null()); /* OOM: applied at the next open */
    if (t < s->next_due)
        s->next_due = t;
}

void sim_record_del(struct sim *s, const char *name)
{
    json_t *rec = json_object_get(s->resources, name);

    if (rec == NULL)
        return;
    usage_apply(s, rec, -1);
    json_object_del(s->resources, name);
    json_object_del(s->transit, name); /* last: name may be this key's own storage */
    sim_dirty(s);
}

void sim_recount(struct sim *s)
{
    const char *name;
    json_t *rec;

    memset(&s->used, 0, sizeof(s->used));
    s->next_due = INT64_MAX;
    json_object_clear(s->transit);
    json_object_foreach(s->resources, name, rec) {
        enum orc_drv_res_state st = sim_record_state(rec);
        usage_apply(s, rec, +1);
        if (st == ORC_DRV_RES_CREATING)
            sim_due(s, name, rec_int(rec, "ready_ms"));
        else if (st == ORC_DRV_RES_DELETING)
            sim_due(s, name, rec_int(rec, "gone_ms"));
    }
}

static int64_t free_of(int64_t total, int64_t used)
{
    return total > used ? total - used : 0;
}

static int fit_any_model(struct sim *s, orc_op_t *op, const struct sim_usage *u, uint32_t want,
                         char model[SIM_MODEL_LEN])
{
    char list[256] = "";
    size_t len = 0;

    for (size_t i = 0; i < s->ngpus; i++) {
        if (free_of(s->gpus[i].total, u->gpus[i]) >= want && want <= s->max_gpus_per_node) {
            snprintf(model, SIM_MODEL_LEN, "%s", s->gpus[i].model);
            return 0;
        }
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s %lld of %lld free",
                                i ? ", " : "", s->gpus[i].model,
                                (long long)free_of(s->gpus[i].total, u->gpus[i]),
                                (long long)s->gpus[i].total);
        if (len >= sizeof(list))
            len = sizeof(list) - 1;
    }
    if (s->ngpus == 0)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: requested %u GPUs, the site has "
                            "no GPUs",
                            s->conf->name, want);
    return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                        "insufficient capacity at site %s: requested %u GPUs of any model: %s",
                        s->conf->name, want, list);
}

static int fit_model(struct sim *s, orc_op_t *op, const struct sim_usage *u, uint32_t want,
                     const char *wanted, char model[SIM_MODEL_LEN])
{
    const struct sim_gpu *g = gpu_find(s, wanted);
    char list[256] = "";
    size_t len = 0;
    int64_t fr;

    if (g == NULL) {
        for (size_t i = 0; i < s->ngpus && len < sizeof(list) - 1; i++)
            len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                    s->gpus[i].model);
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: no GPU model %s here (models: %s)",
                            s->conf->name, wanted, s->ngpus ? list : "none");
    }
    fr = free_of(g->total, u->gpus[g - s->gpus]);
    if (want > fr)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: requested %u x %s, %lld of %lld "
                            "free",
                            s->conf->name, want, g->model, (long long)fr, (long long)g->total);
    if (want > s->max_gpus_per_node)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: requested %u x %s on one node, at "
                            "most %lld per node",
                            s->conf->name, want, g->model, (long long)s->max_gpus_per_node);
    snprintf(model, SIM_MODEL_LEN, "%s", g->model);
    return 0;
}

int sim_fit(struct sim *s, orc_op_t *op, const struct orc_node_req *req,
            char model[SIM_MODEL_LEN])
{
    const struct sim_usage u = s->used;
    int64_t cpus = req->num_cpus ? req->num_cpus : 1;
    int rc;

    model[0] = '\0';
    if (req->public_ip && !s->public_ip)
        return orc_op_failf(op, ORC_ENOTSUP, "site %s gives no public addresses",
                            s->conf->name);
    if (req->num_gpus > 0) {
        rc = req->gpu_model && *req->gpu_model
                 ? fit_model(s, op, &u, req->num_gpus, req->gpu_model, model)
                 : fit_any_model(s, op, &u, req->num_gpus, model);
        if (rc < 0)
            return rc;
    }
    if (cpus > free_of(s->cpus, u.cpus))
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: requested %lld cpus, %lld of %lld "
                            "free",
                            s->conf->name, (long long)cpus, (long long)free_of(s->cpus, u.cpus),
                            (long long)s->cpus);
    if ((int64_t)req->mem_size > free_of(s->mem, u.mem))
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "insufficient capacity at site %s: requested %.1f GiB memory, %.1f "
                            "of %.1f GiB free",
                            s->conf->name, (double)req->mem_size / 1073741824.0,
                            (double)free_of(s->mem, u.mem) / 1073741824.0,
                            (double)s->mem / 1073741824.0);
    return 0;
}

int sim_inventory_report(struct sim *s, orc_op_t *op)
{
    const struct sim_usage u = s->used;
    int rc;

    for (size_t i = 0; i < s->ngpus; i++) {
        struct orc_pool p = {
            .name = s->gpus[i].model,
            .gpu_model = s->gpus[i].model,
            .gpus_total = (uint32_t)s->gpus[i].total,
            .gpus_free = (uint32_t)free_of(s->gpus[i].total, u.gpus[i]),
            .max_gpus_per_node = (uint32_t)s->max_gpus_per_node,
            .price_hour = s->gpus[i].price,
        };
        rc = s->host->op_pool_add(op, &p);
        if (rc < 0)
            return rc;
    }
    {
        struct orc_pool p = {
            .name = "cpu",
            .cpus_total = (uint32_t)s->cpus,
            .cpus_free = (uint32_t)free_of(s->cpus, u.cpus),
            .mem_total = (uint64_t)s->mem,
            .mem_free = (uint64_t)free_of(s->mem, u.mem),
            .price_hour = s->price_cpu,
        };
        return s->host->op_pool_add(op, &p);
    }
}

/* ---- persistence ------------------------------------------------------------------------ */

bool sim_workload_running(const json_t *wl)
{
    const char *st = rec_str(wl, "state");

    if (json_is_string(wl)) /* an older file: the command, running */
        return true;
    return st != NULL && strcmp(st, "running") == 0;
}

/* What the STOPPED resources hold (their capacity stays reserved). */
static json_t *stopped_json(struct sim *s)
{
    int64_t n = 0, cpus = 0, mem = 0, gpus[SIM_MAX_MODELS] = {0};
    json_t *o, *g = json_object();
    const char *name;
    json_t *rec;

    json_object_foreach(s->resources, name, rec)
    {
        const char *model = rec_str(rec, "gpu_model");
        const struct sim_gpu *gpu = model && *model ? gpu_find(s, model) : NULL;
        if (sim_record_state(rec) != ORC_DRV_RES_STOPPED)
            continue;
        n++;
        cpus += rec_int(rec, "cpus");
        mem += rec_int(rec, "mem");
        if (gpu != NULL)
            gpus[gpu - s->gpus] += rec_int(rec, "gpus");
    }
    for (size_t i = 0; g != NULL && i < s->ngpus; i++)
        if (json_object_set_new(g, s->gpus[i].model, json_integer(gpus[i])) != 0) {
            json_decref(g);
            g = NULL;
        }
    if (g == NULL)
        return NULL;
    o = json_pack("{s:I, s:I, s:I, s:o}", "resources", (json_int_t)n, "cpus", (json_int_t)cpus,
                  "mem", (json_int_t)mem, "gpus", g);
    return o;
}

static json_t *snapshot(struct sim *s)
{
    const struct sim_usage u = s->used;
    json_t *doc = json_object(), *cap = json_object(), *used = json_object();
    json_t *cg = json_object(), *ug = json_object(), *counters = json_object();
    int bad = !doc || !cap || !used || !cg || !ug || !counters;

    for (size_t i = 0; !bad && i < s->ngpus; i++) {
        bad |= json_object_set_new(cg, s->gpus[i].model, json_integer(s->gpus[i].total));
        bad |= json_object_set_new(ug, s->gpus[i].model, json_integer(u.gpus[i]));
    }
    bad = bad || json_object_set_new(cap, "cpus", json_integer(s->cpus)) ||
          json_object_set_new(cap, "mem", json_integer(s->mem)) ||
          json_object_set(cap, "gpus", cg) ||
          json_object_set_new(used, "cpus", json_integer(u.cpus)) ||
          json_object_set_new(used, "mem", json_integer(u.mem)) ||
          json_object_set(used, "gpus", ug) ||
          json_object_set_new(counters, "provisioned", json_integer(s->provisioned)) ||
          json_object_set_new(counters, "deprovisioned", json_integer(s->deprovisioned)) ||
          json_object_set_new(doc, "version", json_integer(1)) ||
          json_object_set_new(doc, "driver", json_string("sim")) ||
          json_object_set_new(doc, "site", json_string(s->conf->name)) ||
          json_object_set_new(doc, "updated_ms", json_integer(sim_now_ms())) ||
          json_object_set(doc, "capacity", cap) || json_object_set(doc, "used", used) ||
          json_object_set(doc, "counters", counters) ||
          json_object_set_new(doc, "stopped", stopped_json(s)) ||
          json_object_set(doc, "resources", s->resources);
    json_decref(cap);
    json_decref(used);
    json_decref(cg);
    json_decref(ug);
    json_decref(counters);
    if (bad) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* What the inventory file is now, to tell later whether another process wrote it. */
static void remember_file(struct sim *s)
{
    struct stat st;

    if (stat(s->path, &st) != 0) {
        memset(&s->seen, 0, sizeof(s->seen));
        return;
    }
    s->seen.ino = (long long)st.st_ino;
    s->seen.size = (long long)st.st_size;
    s->seen.mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

int sim_persist(struct sim *s)
{
    char *tmp = NULL, *text = NULL;
    json_t *doc;
    size_t len, plen;
    int fd, rc;

    if (s->path == NULL) {
        s->dirty = false;
        return 0;
    }
    doc = snapshot(s);
    if (doc == NULL)
        return ORC_ENOMEM;
    s->dirty = false;
    len = json_dumpb(doc, NULL, 0, JSON_INDENT(1));
    plen = strlen(s->path);
    text = s->host->malloc(len + 1);
    tmp = s->host->malloc(plen + 5);
    rc = text && tmp ? 0 : ORC_ENOMEM;
    if (rc < 0)
        goto out;
    json_dumpb(doc, text, len, JSON_INDENT(1));
    text[len++] = '\n';
    memcpy(tmp, s->path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = write_all(fd, text, len);
    if (rc == 0 && s->fsync && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, s->path) != 0)
        rc = -errno;
    if (rc == 0)
        remember_file(s);
    if (rc < 0)
        unlink(tmp);
out:
    if (rc < 0)
        s->dirty = true;
    if (rc < 0)
        s->host->log(s->host, ORC_DRV_LOG_ERROR, "sim: cannot write %s: %s", s->path,
                     orc_strerror(rc));
    s->host->free(tmp);
    s->host->free(text);
    json_decref(doc);
    return rc;
}

int sim_load(struct sim *s, orc_op_t *op)
{
    json_error_t jerr;
    json_t *doc, *res;

    s->resources = json_object();
    s->transit = json_object();
    if (s->resources == NULL || s->transit == NULL)
        return ORC_ENOMEM;
    if (s->path == NULL || access(s->path, F_OK) != 0)
        return 0; /* a new cloud */
    doc = json_load_file(s->path, 0, &jerr);
    if (doc == NULL)
        return orc_op_failf(op, ORC_EFORMAT, "sim: %s:%d:%d: %s", s->path, jerr.line,
                            jerr.column, jerr.text);
    res = json_object_get(doc, "resources");
    if (json_integer_value(json_object_get(doc, "version")) != 1 || !json_is_object(res)) {
        json_decref(doc);
        return orc_op_failf(op, ORC_EFORMAT, "sim: %s: not a sim inventory (version 1)",
                            s->path);
    }
    if (json_object_update(s->resources, res) != 0) {
        json_decref(doc);
        return ORC_ENOMEM;
    }
    s->provisioned = json_integer_value(
        json_object_get(json_object_get(doc, "counters"), "provisioned"));
    s->deprovisioned = json_integer_value(
        json_object_get(json_object_get(doc, "counters"), "deprovisioned"));
    json_decref(doc);
    sim_recount(s);
    return 0;
}

void sim_settle(struct sim *s, int64_t now)
{
    const char *name;
    json_t *unused;
    void *tmp;

    sim_share_begin(s); /* shared: the file's state first */
    if (now < s->next_due)
        return;
    s->next_due = INT64_MAX;
    json_object_foreach_safe(s->transit, tmp, name, unused) {
        json_t *rec = json_object_get(s->resources, name);
        enum orc_drv_res_state st = rec ? sim_record_state(rec) : ORC_DRV_RES_UNKNOWN;
        int64_t ready = rec_int(rec, "ready_ms"), gone = rec_int(rec, "gone_ms");

        /* name is the transit key: delete it from transit last */
        if (st == ORC_DRV_RES_CREATING && ready >= 0 && ready <= now) {
            sim_dirty(s);
            if (json_object_get(rec, "fail") == NULL) {
                sim_record_set_state(rec, ORC_DRV_RES_READY);
                sim_record_log(s, rec, "ready");
                json_object_del(s->transit, name);
            } else if (s->leave_failed) {
                sim_record_set_state(rec, ORC_DRV_RES_FAILED);
                sim_record_log(s, rec, "failed: %s", rec_str(rec, "fail"));
                json_object_del(s->transit, name);
            } else {
                sim_record_del(s, name);
            }
        } else if (st == ORC_DRV_RES_DELETING && gone >= 0 && gone <= now) {
            s->deprovisioned++;
            sim_record_del(s, name);
        } else if (st == ORC_DRV_RES_CREATING && ready >= 0) {
            if (ready < s->next_due)
                s->next_due = ready;
        } else if (st == ORC_DRV_RES_DELETING && gone >= 0) {
            if (gone < s->next_due)
                s->next_due = gone;
        } else {
            json_object_del(s->transit, name); /* nothing left to apply */
        }
    }
}

static void flush_fired(void *arg)
{
    struct sim *s = arg;

    s->flush_timer = 0;
    if (s->dirty)
        sim_persist(s);
}

void sim_dirty(struct sim *s)
{
    s->dirty = true;
    if (s->flush_timer == 0 && s->path != NULL)
        s->flush_timer = s->host->timer_start(s->host, 0, flush_fired, s);
}

/* ---- shared inventories ------------------------------------------------------------------ */

/* The resources and counters as the file has them now (another process wrote it). */
static void reload(struct sim *s)
{
    json_error_t jerr;
    json_t *doc = json_load_file(s->path, 0, &jerr), *res;

    res = doc ? json_object_get(doc, "resources") : NULL;
    if (json_is_object(res)) {
        json_object_clear(s->resources);
        if (json_object_update(s->resources, res) == 0) {
            json_t *counters = json_object_get(doc, "counters");
            s->provisioned = json_integer_value(json_object_get(counters, "provisioned"));
            s->deprovisioned = json_integer_value(json_object_get(counters, "deprovisioned"));
            sim_recount(s);
        }
    }
    json_decref(doc);
    remember_file(s);
}

/* The lock of shared inventories: one per directory and process, taken once however many
 * of this process's sim sites use it (flock conflicts between two descriptors of one
 * process, and two locks taken in different orders by two daemons would deadlock). */
struct share_lock {
    char *dir;
    int fd;
    int holders;
};
static struct share_lock share_locks[4];

static struct share_lock *share_lock_of(struct sim *s)
{
    const char *slash = strrchr(s->path, '/');
    size_t n = slash ? (size_t)(slash - s->path) : 1;
    struct share_lock *free_slot = NULL;
    char *path;

    for (size_t i = 0; i < sizeof(share_locks) / sizeof(share_locks[0]); i++) {
        struct share_lock *l = &share_locks[i];
        if (l->dir == NULL && free_slot == NULL)
            free_slot = l;
        if (l->dir != NULL && strlen(l->dir) == n && strncmp(l->dir, s->path, n) == 0)
            return l;
    }
    if (free_slot == NULL)
        return NULL;
    path = malloc(n + 32);
    free_slot->dir = malloc(n + 1);
    if (path == NULL || free_slot->dir == NULL) {
        free(path);
        free(free_slot->dir);
        free_slot->dir = NULL;
        return NULL;
    }
    memcpy(free_slot->dir, slash ? s->path : ".", n);
    free_slot->dir[n] = '\0';
    snprintf(path, n + 32, "%s/.sim-shared.lock", free_slot->dir);
    free_slot->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(path);
    if (free_slot->fd < 0) {
        free(free_slot->dir);
        free_slot->dir = NULL;
        return NULL;
    }
    return free_slot;
}

static void unlock_fired(void *arg)
{
    struct sim *s = arg;

    s->unlock_timer = 0;
    sim_share_end(s);
}

void sim_share_begin(struct sim *s)
{
    struct share_lock *l;
    struct stat st;

    if (!s->shared || s->path == NULL || s->locked)
        return;
    l = share_lock_of(s);
    if (l == NULL || (l->holders == 0 && flock(l->fd, LOCK_EX) != 0))
        return;
    l->holders++;
    s->locked = true;
    if (stat(s->path, &st) == 0 &&
        ((long long)st.st_ino != s->seen.ino || (long long)st.st_size != s->seen.size ||
         (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != s->seen.mtime_ns))
        reload(s);
    s->unlock_timer = s->host->timer_start(s->host, 0, unlock_fired, s);
}

void sim_share_end(struct sim *s)
{
    struct share_lock *l;

    if (!s->locked)
        return;
    if (s->unlock_timer != 0)
        s->host->timer_stop(s->host, s->unlock_timer);
    s->unlock_timer = 0;
    if (s->dirty)
        sim_persist(s);
    s->locked = false;
    l = share_lock_of(s);
    if (l != NULL && --l->holders == 0)
        flock(l->fd, LOCK_UN);
}
