/*
 * The nodes and instances of a run (engine_int.h, orc__run_build): what the
 * engine works on, from the deployment's plan and the resource rows the
 * store holds for it.
 *
 * A create takes the plan's instances: `count` of each compute (top-level)
 * node, and one instance of a hosted node (service, job, software) per
 * instance of the compute at the bottom of its host chain, with the same
 * index, so that instance i of a workload runs on instance i of its compute.
 * A delete or a resource action takes every stored row, whatever the plan
 * says now. An update compares both: per compute node it keeps the rows the
 * new count leaves room for, removes the others (the ones the node's
 * removal_list names first, then the newest), and adds instances with the
 * lowest free indices; a hosted node follows its compute; a node gone from
 * the template is removed. A kept instance whose node specification (the
 * plan node without its instance count) hashes differently from the one it
 * was deployed with is restarted (a workload) or replaced (a compute node,
 * and then its workloads restart on the new one). Instances left half-done
 * by a failure or a crash are re-driven: provision and start are
 * idempotent by name. Every choice is a function of the plan and the rows,
 * so a run re-driven after a restart makes the same ones.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_int.h"

#define MAX_INSTANCES 100000

/* ---- specifications ---- */

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= FNV_PRIME;
    }
    return h;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t hash_value(uint64_t h, const json_t *v, int depth);

/* An object's members in key order, so that the hash does not depend on the
 * order a plan was built or parsed in. skip: a key left out ("" none). */
static uint64_t hash_object(uint64_t h, const json_t *o, int depth, const char *const *skip)
{
    const char *keys[64], **all = keys, *k;
    size_t n = 0, size = json_object_size(o);
    json_t *v;

    if (size > 64 && (all = orc_malloc(size * sizeof(*all))) == NULL)
        return h ^ 0xdead; /* out of memory: any hash will do, it only costs a restart */
    json_object_foreach((json_t *)o, k, v)
    {
        bool skipped = false;
        for (size_t i = 0; skip && skip[i]; i++)
            skipped = skipped || strcmp(k, skip[i]) == 0;
        if (!skipped)
            all[n++] = k;
    }
    qsort(all, n, sizeof(*all), cmp_key);
    h = fnv_bytes(h, "{", 1);
    for (size_t i = 0; i < n; i++) {
        h = fnv_bytes(h, all[i], strlen(all[i]) + 1);
        h = hash_value(h, json_object_get(o, all[i]), depth + 1);
    }
    if (all != keys)
        orc_free(all);
    return fnv_bytes(h, "}", 1);
}

static uint64_t hash_value(uint64_t h, const json_t *v, int depth)
{
    char num[40];
    size_t i;
    const json_t *e;

    if (depth > 64)
        return h;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return hash_object(h, v, depth, NULL);
    case JSON_ARRAY:
        h = fnv_bytes(h, "[", 1);
        json_array_foreach(v, i, e) h = hash_value(h, e, depth + 1);
        return fnv_bytes(h, "]", 1);
    case JSON_STRING:
        h = fnv_bytes(h, "s", 1);
        return fnv_bytes(h, json_string_value(v), json_string_length(v) + 1);
    case JSON_INTEGER:
        return fnv_bytes(
            h, num,
            (size_t)snprintf(num, sizeof(num), "i%lld", (long long)json_integer_value(v)) + 1);
    case JSON_REAL:
        return fnv_bytes(h, num,
                         (size_t)snprintf(num, sizeof(num), "r%.17g", json_real_value(v)) + 1);
    case JSON_TRUE:
        return fnv_bytes(h, "t", 1);
    case JSON_FALSE:
        return fnv_bytes(h, "f", 1);
    default:
        return fnv_bytes(h, "n", 1);
    }
}

/* The hash of a plan node without what scaling changes: its instance count
 * and list, and the scalable capability they come from. */
static int node_spec(const json_t *pn, char out[SPEC_LEN])
{
    static const char *const node_skip[] = {"count", "instances", "removal_list", "capabilities",
                                            NULL};
    static const char *const caps_skip[] = {"scalable", NULL};
    uint64_t h = hash_object(FNV_OFFSET, pn, 0, node_skip);

    h = hash_object(h, json_object_get(pn, "capabilities"), 0, caps_skip);
    snprintf(out, SPEC_LEN, "%016llx", (unsigned long long)h);
    return 0;
}

/* ---- nodes ---- */

struct nrun *orc__run_node(struct run *r, const char *name)
{
    for (size_t i = 0; name && i < r->nnodes; i++)
        if (strcmp(r->nodes[i].name, name) == 0)
            return &r->nodes[i];
    return NULL;
}

const struct inst *orc__node_first(const struct nrun *n)
{
    for (size_t i = 0; n && i < n->ninst; i++)
        if (n->inst[i].act != ACT_REMOVE)
            return &n->inst[i];
    return NULL;
}

void orc__inst_physical_id(const struct inst *in, char *out, size_t size)
{
    if (in->node->hosted)
        snprintf(out, size, "%s/%s", in->host_name, in->workload);
    else
        snprintf(out, size, "%s", in->name);
}

int orc__resource_node(void *ctx, const char *deployment, const char *resource, char *node,
                       size_t node_len)
{
    const struct run *r = orc__engine_find_run(ctx, deployment);

    for (size_t i = 0; r != NULL && i < r->nnodes; i++) {
        const struct nrun *n = &r->nodes[i];
        for (size_t k = 0; !n->hosted && k < n->ninst; k++) {
            if (strcmp(n->inst[k].name, resource) == 0) {
                snprintf(node, node_len, "%s[%u]", n->name, n->inst[k].index);
                return 0;
            }
        }
    }
    return ORC_ENOTFOUND;
}

/* ---- the fields a run keeps of a plan node ---- */

static uint64_t jint(const json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k));
    return v > 0 ? (uint64_t)v : 0;
}

/* Copies s into the arena at *at; NULL and "" stay NULL. */
static const char *arena_put(char **at, const char *s)
{
    char *p = *at;
    size_t n;

    if (s == NULL || *s == '\0')
        return NULL;
    n = strlen(s) + 1;
    memcpy(p, s, n);
    *at += n;
    return p;
}

static size_t text_len(const json_t *v)
{
    return json_is_string(v) ? json_string_length(v) + 1 : 0;
}

/* A workload's environment values as text (numbers and the rest as JSON). */
static char *env_text(const json_t *v)
{
    return json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static size_t fields_size(const json_t *pn, const json_t *c, const json_t *props)
{
    const json_t *env = json_object_get(props, "environment"), *v;
    size_t size = strlen(json_string_value(json_object_get(pn, "name"))) + 1 +
                  strlen(json_string_value(json_object_get(pn, "type"))) + 1;
    const char *k;

    size += text_len(json_object_get(c, "gpu_model")) + text_len(json_object_get(c, "gpu_vendor"));
    size +=
        text_len(json_object_get(c, "instance_type")) + text_len(json_object_get(props, "image"));
    size += text_len(json_object_get(props, "command"));
    size += text_len(json_object_get(props, "readiness_path"));
    json_object_foreach((json_t *)env, k, v)
    {
        char *t = env_text(v);
        size += strlen(k) + 1 + (t ? strlen(t) : json_string_length(v)) + 1 + sizeof(struct orc_kv);
        free(t);
    }
    return size + sizeof(struct orc_kv);
}

static void fill_env(struct node_fields *f, const json_t *props, char **at)
{
    const json_t *env = json_object_get(props, "environment"), *v;
    const char *k;

    json_object_foreach((json_t *)env, k, v)
    {
        char *t = env_text(v);
        f->env[f->nenv].key = arena_put(at, k);
        f->env[f->nenv].value = arena_put(at, t ? t : json_string_value(v));
        if (f->env[f->nenv].value == NULL)
            f->env[f->nenv].value = "";
        f->nenv++;
        free(t);
    }
}

/* true when v (an output's value, TOSCA functions as objects) reads node's public_address */
static bool reads_public_address(const json_t *v, const char *node, int depth)
{
    const char *k;
    const json_t *m;
    size_t i;

    if (depth > 32)
        return false;
    if (json_is_array(v)) {
        if (json_array_size(v) >= 2 &&
            json_string_value(json_array_get(v, 0)) &&
            strcmp(json_string_value(json_array_get(v, 0)), node) == 0 &&
            json_string_value(json_array_get(v, 1)) &&
            strcmp(json_string_value(json_array_get(v, 1)), "public_address") == 0)
            return true;
        json_array_foreach(v, i, m)
            if (reads_public_address(m, node, depth + 1))
                return true;
    }
    json_object_foreach((json_t *)v, k, m)
        if (reads_public_address(m, node, depth + 1))
            return true;
    return false;
}

/* A compute node's endpoint capability: network_name PUBLIC, and its ports (INDIGO's
 * PortSpec maps: {"http": {"protocol": "tcp", "source": 8080}}). */
static void endpoint_fields(struct node_fields *f, const json_t *pn)
{
    const json_t *ep = json_object_get(json_object_get(json_object_get(pn, "capabilities"),
                                                       "endpoint"), "properties");
    const char *net = json_string_value(json_object_get(ep, "network_name")), *k;
    const json_t *ports = json_object_get(ep, "ports"), *p;

    f->public_ip = net && strcasecmp(net, "PUBLIC") == 0;
    f->nports = 0;
    json_object_foreach((json_t *)ports, k, p)
    {
        json_int_t port = json_integer_value(json_object_get(p, "source"));
        if (port > 0 && port <= 65535 && f->nports < 16)
            f->ports[f->nports++] = (uint16_t)port;
    }
}

/* Copies what the run needs of a plan node (struct node_fields), and the
 * node's name and type; the node JSON text only when a driver wants it. */
static int node_fields(struct nrun *n, const json_t *pn, bool want_json)
{
    const json_t *c = json_object_get(pn, "compute"), *props = json_object_get(pn, "properties");
    json_int_t port = json_integer_value(json_object_get(props, "port"));
    size_t nenv = json_object_size(json_object_get(props, "environment"));
    struct node_fields *f = &n->f;
    char *at;

    f->arena = orc_malloc(fields_size(pn, c, props) + nenv * sizeof(struct orc_kv) + 16);
    if (f->arena == NULL)
        return ORC_ENOMEM;
    f->env = (struct orc_kv *)(void *)f->arena;
    at = f->arena + (nenv + 1) * sizeof(struct orc_kv);
    n->name = arena_put(&at, json_string_value(json_object_get(pn, "name")));
    n->type = arena_put(&at, json_string_value(json_object_get(pn, "type")));
    f->num_cpus = (uint32_t)jint(c, "num_cpus");
    f->num_gpus = (uint32_t)jint(c, "num_gpus");
    f->mem_size = jint(c, "mem_size");
    f->disk_size = jint(c, "disk_size");
    f->gpu_model = arena_put(&at, json_string_value(json_object_get(c, "gpu_model")));
    f->gpu_vendor = arena_put(&at, json_string_value(json_object_get(c, "gpu_vendor")));
    f->instance_type = arena_put(&at, json_string_value(json_object_get(c, "instance_type")));
    f->image = arena_put(&at, json_string_value(json_object_get(props, "image")));
    f->command = arena_put(&at, json_string_value(json_object_get(props, "command")));
    f->ready_path = arena_put(&at, json_string_value(json_object_get(props, "readiness_path")));
    f->port = port > 0 && port <= 65535 ? (uint16_t)port : 0;
    endpoint_fields(f, pn);
    fill_env(f, props, &at);
    if (want_json) {
        f->node_json = json_dumps(pn, JSON_COMPACT);
        if (f->node_json == NULL)
            return ORC_ENOMEM;
    }
    return 0;
}

static int node_from_plan(struct run *r, struct nrun *n, const json_t *pn, bool want_json)
{
    json_int_t count = json_integer_value(json_object_get(pn, "count"));

    n->run = r;
    n->plan_node = pn;
    n->kind = orc_rank_kind(json_string_value(json_object_get(pn, "kind")));
    if (!json_is_string(json_object_get(pn, "name")) ||
        !json_is_string(json_object_get(pn, "type")) || n->kind < 0 || count < 0 ||
        count > MAX_INSTANCES)
        return ORC_EFORMAT;
    if (node_fields(n, pn, want_json) < 0)
        return ORC_ENOMEM;
    return node_spec(pn, n->spec);
}

static int link_nodes(struct run *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        const json_t *deps = json_object_get(n->plan_node, "depends_on"), *d;
        size_t k;
        if (n->orphan)
            continue;
        n->host = orc__run_node(r, json_string_value(json_object_get(n->plan_node, "host")));
        n->hosted = n->host != NULL;
        n->deps = orc_calloc(json_array_size(deps) + 1, sizeof(*n->deps));
        if (n->deps == NULL)
            return ORC_ENOMEM;
        json_array_foreach(deps, k, d)
        {
            struct nrun *t = orc__run_node(r, json_string_value(d));
            if (t)
                n->deps[n->ndeps++] = t;
        }
    }
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *t = r->nodes[i].host;
        for (size_t guard = 0; t && t->host && guard < r->nnodes; guard++)
            t = t->host;
        if (t && t->host) /* a host cycle: not a plan of ours */
            return ORC_EFORMAT;
        r->nodes[i].top = t;
    }
    return 0;
}

static bool plan_has(const json_t *nodes, const char *name)
{
    for (size_t i = 0; i < json_array_size(nodes); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(nodes, i), "name"));
        if (n && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* Nodes of the rows that the plan does not have (update, delete, action). */
static size_t count_orphans(const struct run *r, const orc_resource_list_t *l)
{
    const json_t *nodes = json_object_get(r->plan, "nodes");
    size_t n = 0;

    for (size_t k = 0; k < l->count; k++) {
        bool seen = false;
        if (plan_has(nodes, l->items[k].node_name))
            continue;
        for (size_t j = 0; j < k && !seen; j++)
            seen = strcmp(l->items[j].node_name, l->items[k].node_name) == 0;
        n += !seen;
    }
    return n;
}

static int add_orphan(struct run *r, const orc_resource_t *row)
{
    struct nrun *n = &r->nodes[r->nnodes];
    size_t ln = strlen(row->node_name), lt = strlen(row->node_type);

    n->owned = orc_malloc(ln + lt + 2);
    if (n->owned == NULL)
        return ORC_ENOMEM;
    memcpy(n->owned, row->node_name, ln + 1);
    memcpy(n->owned + ln + 1, row->node_type, lt + 1);
    n->run = r;
    n->name = n->owned;
    n->type = n->owned + ln + 1;
    n->orphan = true;
    n->hosted = row->physical_id && strchr(row->physical_id, '/') != NULL;
    n->kind = n->hosted ? ORC_KIND_SERVICE : ORC_KIND_COMPUTE;
    n->deps = orc_calloc(1, sizeof(*n->deps));
    r->nnodes++;
    return n->deps ? 0 : ORC_ENOMEM;
}

/* ---- instance sets ---- */

/* The rows of one node, by index. */
struct rows {
    const orc_resource_t **items;
    size_t count;
};

static int by_index(const void *a, const void *b)
{
    const orc_resource_t *x = *(const orc_resource_t *const *)a;
    const orc_resource_t *y = *(const orc_resource_t *const *)b;
    return (x->instance_index > y->instance_index) - (x->instance_index < y->instance_index);
}

static int rows_of(const orc_resource_list_t *l, const char *node, struct rows *out)
{
    out->count = 0;
    out->items = orc_calloc(l->count + 1, sizeof(*out->items));
    if (out->items == NULL)
        return ORC_ENOMEM;
    for (size_t k = 0; k < l->count; k++)
        if (strcmp(l->items[k].node_name, node) == 0 && l->items[k].instance_index >= 0 &&
            l->items[k].instance_index <= MAX_INSTANCES)
            out->items[out->count++] = &l->items[k];
    qsort(out->items, out->count, sizeof(*out->items), by_index);
    return 0;
}

static const orc_resource_t *row_at(const struct rows *rows, uint32_t index)
{
    for (size_t i = 0; i < rows->count; i++)
        if ((uint32_t)rows->items[i]->instance_index == index)
            return rows->items[i];
    return NULL;
}

static bool in_removal_list(const json_t *pn, const char *uuid)
{
    const json_t *rl = json_object_get(pn, "removal_list"), *v;
    size_t i;

    json_array_foreach(rl, i, v) if (json_is_string(v) &&
                                     strcmp(json_string_value(v), uuid) == 0) return true;
    return false;
}

/* Marks the rows a scale-in to `want` removes: removal_list first, then the
 * newest. victim[i] is about rows->items[i]. */
static void choose_victims(const struct nrun *n, const struct rows *rows, size_t want, bool *victim)
{
    size_t excess = rows->count > want ? rows->count - want : 0;

    for (size_t i = 0; i < rows->count && excess > 0; i++)
        if (in_removal_list(n->plan_node, rows->items[i]->uuid)) {
            victim[i] = true;
            excess--;
        }
    while (excess > 0) {
        size_t pick = rows->count;
        for (size_t i = 0; i < rows->count; i++) {
            const orc_resource_t *a = rows->items[i], *b;
            if (victim[i])
                continue;
            b = pick < rows->count ? rows->items[pick] : NULL;
            if (b == NULL || a->created_ms > b->created_ms ||
                (a->created_ms == b->created_ms && a->instance_index > b->instance_index))
                pick = i;
        }
        victim[pick] = true;
        excess--;
    }
}

static bool done_state(orc_res_state_t st)
{
    return st == ORC_RES_CREATED || st == ORC_RES_CONFIGURED || st == ORC_RES_STARTED ||
           st == ORC_RES_STOPPED;
}

static void fill_from_row(struct inst *in, const orc_resource_t *row)
{
    memcpy(in->res_uuid, row->uuid, ORC_UUID_LEN);
    in->res_state = row->state;
    in->on_site = row->site_name != NULL;
    snprintf(in->site, sizeof(in->site), "%s", row->site_name ? row->site_name : "");
    snprintf(in->spec, sizeof(in->spec), "%s", row->spec ? row->spec : "");
    in->created_ms = row->created_ms;
    if (row->attributes)
        in->attrs = json_deep_copy(row->attributes);
}

/* Names of an instance: its own, and for a hosted one the compute it runs on. */
static int name_inst(struct run *r, struct nrun *n, struct inst *in, const orc_resource_t *row)
{
    const char *slash;

    if (orc_drv_resource_name(r->uuid, n->name, in->index, in->name) < 0)
        return ORC_EFORMAT;
    if (!n->hosted)
        return 0;
    if (n->top) {
        if (orc_drv_resource_name(r->uuid, n->top->name, in->index, in->host_name) < 0)
            return ORC_EFORMAT;
        snprintf(in->workload, sizeof(in->workload), "%s-%u", n->name, in->index);
        return 0;
    }
    /* an orphan workload: its row says where it ran */
    slash = row && row->physical_id ? strchr(row->physical_id, '/') : NULL;
    if (slash == NULL || (size_t)(slash - row->physical_id) >= sizeof(in->host_name))
        return ORC_EFORMAT;
    snprintf(in->host_name, sizeof(in->host_name), "%.*s", (int)(slash - row->physical_id),
             row->physical_id);
    snprintf(in->workload, sizeof(in->workload), "%s", slash + 1);
    return 0;
}

static int add_inst(struct run *r, struct nrun *n, uint32_t index, const orc_resource_t *row,
                    enum inst_act act)
{
    struct inst *in = &n->inst[n->ninst++];

    in->node = n;
    in->index = index;
    in->act = act;
    orc_drv_op_init(&in->op);
    in->op.data = in;
    if (row)
        fill_from_row(in, row);
    return name_inst(r, n, in, row);
}

static bool top_has(const struct nrun *top, uint32_t index)
{
    for (size_t i = 0; i < top->ninst; i++)
        if (top->inst[i].index == index && top->inst[i].act != ACT_REMOVE)
            return true;
    return false;
}

static enum inst_act kept_act(const struct nrun *n, const orc_resource_t *row)
{
    if (row->spec && *row->spec && strcmp(row->spec, n->spec) != 0)
        return n->kind == ORC_KIND_SERVICE || n->kind == ORC_KIND_JOB
                   ? (n->hosted ? ACT_RESTART : ACT_REPLACE)
                   : (n->hosted ? ACT_CREATE : ACT_REPLACE);
    return done_state(row->state) ? ACT_KEEP : ACT_CREATE;
}

/* Update of a compute node: keep, remove, add (module comment). */
static int update_top(struct run *r, struct nrun *n, const struct rows *rows)
{
    size_t want = (size_t)json_integer_value(json_object_get(n->plan_node, "count"));
    bool *victim = orc_calloc(rows->count + 1, sizeof(*victim));
    size_t kept = 0;
    int rc = 0;

    if (victim == NULL)
        return ORC_ENOMEM;
    if (!n->orphan)
        choose_victims(n, rows, want, victim);
    for (size_t i = 0; i < rows->count && rc == 0; i++) {
        bool gone = n->orphan || victim[i];
        rc = add_inst(r, n, (uint32_t)rows->items[i]->instance_index, rows->items[i],
                      gone ? ACT_REMOVE : kept_act(n, rows->items[i]));
        kept += !gone;
    }
    for (uint32_t idx = 0; !n->orphan && kept < want && rc == 0; idx++)
        if (row_at(rows, idx) == NULL) {
            rc = add_inst(r, n, idx, NULL, ACT_CREATE);
            kept++;
        }
    orc_free(victim);
    return rc;
}

/* Update of a hosted node: it follows the compute it runs on. */
static int update_hosted(struct run *r, struct nrun *n, const struct rows *rows)
{
    const struct nrun *top = n->top;
    int rc = 0;

    for (size_t i = 0; i < rows->count && rc == 0; i++) {
        const orc_resource_t *row = rows->items[i];
        bool stays = !n->orphan && top && top_has(top, (uint32_t)row->instance_index);
        rc = add_inst(r, n, (uint32_t)row->instance_index, row,
                      stays ? kept_act(n, row) : ACT_REMOVE);
    }
    for (size_t k = 0; top && !n->orphan && k < top->ninst && rc == 0; k++) {
        const struct inst *t = &top->inst[k];
        if (t->act != ACT_REMOVE && row_at(rows, t->index) == NULL)
            rc = add_inst(r, n, t->index, NULL, ACT_CREATE);
    }
    /* a workload whose compute is made again starts again on it */
    for (size_t i = 0; top && i < n->ninst; i++) {
        struct inst *in = &n->inst[i];
        const struct inst *t = NULL;
        for (size_t k = 0; k < top->ninst && t == NULL; k++)
            if (top->inst[k].index == in->index)
                t = &top->inst[k];
        if (t == NULL || in->act == ACT_REMOVE || t->act == ACT_KEEP)
            continue;
        if (t->act == ACT_REPLACE && (n->kind == ORC_KIND_SERVICE || n->kind == ORC_KIND_JOB)) {
            in->act = ACT_RESTART;
            in->prepared = true; /* it went with its compute */
        } else if (in->act == ACT_KEEP) {
            in->act = ACT_CREATE;
        }
    }
    return rc;
}

static bool workloads_change(const struct run *r, const struct nrun *top, uint32_t index)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        const struct nrun *h = &r->nodes[i];
        if (!h->hosted || h->top != top)
            continue;
        for (size_t k = 0; k < h->ninst; k++)
            if (h->inst[k].index == index &&
                (h->inst[k].act == ACT_RESTART || h->inst[k].act == ACT_CREATE ||
                 h->inst[k].act == ACT_REMOVE))
                return true;
    }
    return false;
}

static void replace_with_workloads(struct run *r, struct nrun *top, struct inst *t)
{
    t->act = ACT_REPLACE;
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *h = &r->nodes[i];
        if (!h->hosted || h->top != top)
            continue;
        for (size_t k = 0; k < h->ninst; k++) {
            struct inst *in = &h->inst[k];
            if (in->index != t->index || in->act == ACT_REMOVE || in->act == ACT_CREATE)
                continue;
            if (h->kind == ORC_KIND_SERVICE || h->kind == ORC_KIND_JOB) {
                in->act = ACT_RESTART;
                in->prepared = true; /* it goes with its compute */
            } else {
                in->act = ACT_CREATE;
            }
        }
    }
}

void orc__boot_replace(struct run *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        if (n->hosted || n->orphan || n->kind != ORC_KIND_COMPUTE)
            continue;
        for (size_t k = 0; k < n->ninst; k++)
            if (n->inst[k].act == ACT_KEEP && workloads_change(r, n, n->inst[k].index))
                replace_with_workloads(r, n, &n->inst[k]);
    }
}

static int create_instances(struct run *r, struct nrun *n, const struct rows *rows)
{
    int rc = 0;

    if (n->top == NULL && !n->hosted) {
        size_t count = (size_t)json_integer_value(json_object_get(n->plan_node, "count"));
        for (size_t i = 0; i < count && rc == 0; i++)
            rc = add_inst(r, n, (uint32_t)i, row_at(rows, (uint32_t)i), ACT_CREATE);
        return rc;
    }
    for (size_t k = 0; n->top && k < n->top->ninst && rc == 0; k++)
        rc = add_inst(r, n, n->top->inst[k].index, row_at(rows, n->top->inst[k].index), ACT_CREATE);
    return rc;
}

static int stored_instances(struct run *r, struct nrun *n, const struct rows *rows)
{
    int rc = 0;

    for (size_t i = 0; i < rows->count && rc == 0; i++)
        rc = add_inst(r, n, (uint32_t)rows->items[i]->instance_index, rows->items[i], ACT_KEEP);
    return rc;
}

static size_t room_for(const struct nrun *n, const struct rows *rows)
{
    size_t count =
        n->plan_node ? (size_t)json_integer_value(json_object_get(n->plan_node, "count")) : 0;
    size_t top = n->top ? n->top->ninst : 0;

    return rows->count + (count > top ? count : top) + 1;
}

static int node_instances(struct run *r, struct nrun *n, const orc_resource_list_t *l)
{
    struct rows rows;
    int rc = rows_of(l, n->name, &rows);

    if (rc < 0)
        return rc;
    n->inst = orc_calloc(room_for(n, &rows), sizeof(*n->inst));
    if (n->inst == NULL)
        rc = ORC_ENOMEM;
    else if (r->what == RUN_CREATE)
        rc = create_instances(r, n, &rows);
    else if (r->what != RUN_UPDATE)
        rc = stored_instances(r, n, &rows);
    else if (n->hosted)
        rc = update_hosted(r, n, &rows);
    else
        rc = update_top(r, n, &rows);
    orc_free(rows.items);
    return rc;
}

/* The nodes that need n: hosted on it or depending on it (API.md requiredBy). */
static json_t *required_by(const struct run *r, const struct nrun *n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < r->nnodes; i++) {
        const struct nrun *m = &r->nodes[i];
        bool needs = m->host == n;
        for (size_t d = 0; d < m->ndeps && !needs; d++)
            needs = m->deps[d] == n;
        if (needs)
            json_array_append_new(a, json_string(m->name));
    }
    return a;
}

/* Rows for the instances that have none yet. One insert each: a few small
 * writes keep the group commit's transactions moderate (one insert of every
 * row of thousands of deployments measured slower). */
static int insert_missing(struct run *r)
{
    int rc = 0;

    for (size_t i = 0; i < r->nnodes && rc == 0; i++) {
        json_t *req_by = NULL;
        for (size_t k = 0; k < r->nodes[i].ninst && rc == 0; k++) {
            struct inst *in = &r->nodes[i].inst[k];
            char pid[ORC_DRV_NAME_LEN + WORKLOAD_LEN + 2];
            orc_resource_t res = {.instance_index = (int)in->index, .state = ORC_RES_INITIAL};
            if (in->res_uuid[0] || in->act == ACT_REMOVE)
                continue;
            if (req_by == NULL && (req_by = required_by(r, &r->nodes[i])) == NULL) {
                rc = ORC_ENOMEM;
                break;
            }
            orc__inst_physical_id(in, pid, sizeof(pid));
            memcpy(res.deployment_uuid, r->uuid, ORC_UUID_LEN);
            res.node_name = (char *)r->nodes[i].name;
            res.node_type = (char *)r->nodes[i].type;
            res.physical_id = pid;
            res.required_by = req_by;
            rc = orc_store_resource_insert(r->eng->store, &res);
            memcpy(in->res_uuid, res.uuid, ORC_UUID_LEN);
            in->res_state = ORC_RES_INITIAL;
            in->created_ms = res.created_ms;
        }
        json_decref(req_by);
    }
    return rc;
}

/* Whether an open site's driver reads the plan node's JSON text. */
static bool wants_node_json(const struct orc_engine *eng)
{
    for (size_t i = 0; i < eng->nsites; i++)
        if (eng->esites[i]->open && (eng->esites[i]->site->drv->vt.caps & ORC_DRV_CAP_NODE_JSON))
            return true;
    return false;
}

static int build_nodes(struct run *r, const orc_resource_list_t *l)
{
    const json_t *nodes = json_object_get(r->plan, "nodes");
    size_t nplan = json_array_size(nodes);
    size_t norphan = r->what == RUN_CREATE ? 0 : count_orphans(r, l);
    int rc = 0;

    r->nodes = orc_calloc(nplan + norphan + 1, sizeof(*r->nodes));
    if (r->nodes == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < nplan && rc == 0; i++, r->nnodes++)
        rc = node_from_plan(r, &r->nodes[i], json_array_get(nodes, i), wants_node_json(r->eng));
    for (size_t k = 0; k < l->count && rc == 0 && r->nnodes < nplan + norphan; k++)
        if (orc__run_node(r, l->items[k].node_name) == NULL)
            rc = add_orphan(r, &l->items[k]);
    return rc == 0 ? link_nodes(r) : rc;
}

int orc__run_build(struct run *r)
{
    orc_res_query_t q = {.deployment_uuid = r->uuid, .oldest_first = true};
    orc_resource_list_t l = {0};
    int rc = orc_store_resource_list(r->eng->store, &q, &l);

    if (rc == 0)
        rc = build_nodes(r, &l);
    /* computes first: hosted nodes follow their instances */
    for (size_t i = 0; i < r->nnodes && rc == 0; i++)
        if (!r->nodes[i].hosted)
            rc = node_instances(r, &r->nodes[i], &l);
    for (size_t i = 0; i < r->nnodes && rc == 0; i++)
        if (r->nodes[i].hosted)
            rc = node_instances(r, &r->nodes[i], &l);
    orc_resource_list_clear(&l);
    if (rc == 0 && (r->what == RUN_CREATE || r->what == RUN_UPDATE))
        rc = insert_missing(r);
    if (rc == 0)
        orc_rank_need_from_plan(r->plan, &r->need);
    r->has_outputs = json_object_size(json_object_get(r->plan, "outputs")) > 0;
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        if (n->kind == ORC_KIND_COMPUTE && !n->orphan && !n->f.public_ip)
            n->f.public_ip = reads_public_address(json_object_get(r->plan, "outputs"), n->name, 0);
        n->plan_node = NULL; /* the plan goes: what is needed was copied */
    }
    return rc;
}

void orc__run_nodes_free(struct run *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        for (size_t k = 0; k < r->nodes[i].ninst; k++) {
            orc_drv_op_reset(&r->nodes[i].inst[k].op);
            json_decref(r->nodes[i].inst[k].attrs);
        }
        orc_free(r->nodes[i].inst);
        orc_free(r->nodes[i].deps);
        orc_free(r->nodes[i].owned);
        orc_free(r->nodes[i].f.arena);
        free(r->nodes[i].f.node_json); /* jansson's allocator */
    }
    orc_free(r->nodes);
    r->nodes = NULL;
    r->nnodes = 0;
}
