/*
 * What the cloud has (ost.h): its flavors with their GPUs and its networks, read
 * by one internal op (the "sync") at site open and again when older than
 * OST_SYNC_MAX_AGE_MS; ops that need them wait for it. A flavor's GPUs come from
 * the config's flavors map, else its extra_specs: a PCI passthrough alias
 * ("pci_passthrough:alias": "a100:2"), a custom resource class
 * ("resources:CUSTOM_GPU_A100": "2") or vGPUs ("resources:VGPU": "1"). The
 * smallest fitting flavor serves a request; quotas (GET /limits) bound the free
 * counts of the inventory.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ost.h"

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

/* ---- GPU models ---- */

static const char *skip_prefix(const char *s, const char *p)
{
    size_t n = strlen(p);

    if (strncasecmp(s, p, n) == 0 && (s[n] == '_' || s[n] == '-') && s[n + 1])
        return s + n + 1;
    return s;
}

void ost_model_of(const struct ost_conf *c, const char *alias, char *out, size_t cap)
{
    const char *s = alias;
    size_t n = 0;

    for (size_t i = 0; i < c->naliases; i++)
        if (strcasecmp(c->aliases[i].alias, alias) == 0) {
            snprintf(out, cap, "%s", c->aliases[i].model);
            return;
        }
    s = skip_prefix(s, "CUSTOM");
    s = skip_prefix(s, "GPU");
    s = skip_prefix(s, "NVIDIA");
    s = skip_prefix(s, "TESLA");
    for (size_t i = 0; i < c->naliases; i++) /* CUSTOM_GPU_X: the map may name X */
        if (s != alias && strcasecmp(c->aliases[i].alias, s) == 0) {
            snprintf(out, cap, "%s", c->aliases[i].model);
            return;
        }
    for (; *s && n + 1 < cap; s++)
        out[n++] = (char)toupper((unsigned char)*s);
    out[n] = '\0';
}

static uint32_t count_of(const json_t *v)
{
    long n = 0;

    if (json_is_integer(v))
        n = (long)json_integer_value(v);
    else if (json_is_string(v))
        n = strtol(json_string_value(v), NULL, 10);
    return n > 0 && n < 1024 ? (uint32_t)n : 0;
}

/* "a100:2,t4:1": the first alias's model and count (more of the same model add up) */
static void from_alias(const struct ost_conf *c, struct ost_flavor *f, const char *spec)
{
    char item[128], model[OST_MODEL_LEN];

    while (*spec) {
        size_t n = strcspn(spec, ",");
        char *colon;
        long cnt = 1;
        snprintf(item, sizeof(item), "%.*s", (int)(n < sizeof(item) ? n : sizeof(item) - 1),
                 spec);
        spec += n + (spec[n] == ',');
        colon = strchr(item, ':');
        if (colon) {
            *colon = '\0';
            cnt = strtol(colon + 1, NULL, 10);
        }
        for (char *p = item; *p == ' '; p++)
            memmove(item, item + 1, strlen(item));
        if (item[0] == '\0' || cnt <= 0 || cnt >= 1024)
            continue;
        ost_model_of(c, item, model, sizeof(model));
        if (f->gpus == 0)
            snprintf(f->model, sizeof(f->model), "%s", model);
        if (strcasecmp(f->model, model) == 0)
            f->gpus += (uint32_t)cnt;
    }
}

void ost_flavor_gpus(const struct ost_conf *c, struct ost_flavor *f, const json_t *specs)
{
    const char *key, *trait = NULL;
    json_t *v;
    uint32_t vgpus = 0;

    f->gpus = 0;
    f->model[0] = '\0';
    for (size_t i = 0; i < c->nfmap; i++)
        if (strcmp(c->fmap[i].flavor, f->name) == 0) {
            f->gpus = c->fmap[i].model ? c->fmap[i].gpus : 0;
            ost_copy(f->model, sizeof(f->model), f->gpus ? c->fmap[i].model : NULL);
            return;
        }
    if (!json_is_object(specs))
        return;
    v = json_object_get(specs, "pci_passthrough:alias");
    if (json_is_string(v))
        from_alias(c, f, json_string_value(v));
    json_object_foreach((json_t *)specs, key, v) {
        if (f->gpus == 0 && strncasecmp(key, "resources:CUSTOM_GPU_", 21) == 0 && count_of(v)) {
            ost_model_of(c, key + strlen("resources:"), f->model, sizeof(f->model));
            f->gpus = count_of(v);
        } else if (strcasecmp(key, "resources:VGPU") == 0) {
            vgpus = count_of(v);
        } else if (strncasecmp(key, "trait:CUSTOM_GPU_", 17) == 0 && json_is_string(v) &&
                   strcmp(json_string_value(v), "required") == 0) {
            trait = key + strlen("trait:");
        }
    }
    if (f->gpus == 0 && vgpus) {
        ost_model_of(c, trait ? trait : "VGPU", f->model, sizeof(f->model));
        f->gpus = vgpus;
    }
}

const struct ost_flavor *ost_flavor_find(const struct ost *s, const char *id_or_name)
{
    for (size_t i = 0; id_or_name && i < s->nflavors; i++)
        if (strcmp(s->flavors[i].name, id_or_name) == 0)
            return &s->flavors[i];
    for (size_t i = 0; id_or_name && i < s->nflavors; i++)
        if (strcmp(s->flavors[i].id, id_or_name) == 0)
            return &s->flavors[i];
    return NULL;
}

/* ---- the flavor of a request ---- */

static void size_text(uint64_t bytes, char *buf, size_t cap)
{
    if (bytes % GIB == 0)
        snprintf(buf, cap, "%llu GiB", (unsigned long long)(bytes / GIB));
    else if (bytes >= GIB)
        snprintf(buf, cap, "%.1f GiB", (double)bytes / (double)GIB);
    else
        snprintf(buf, cap, "%llu MiB", (unsigned long long)((bytes + MIB - 1) / MIB));
}

static bool fits(const struct oop *o, const struct ost_flavor *f)
{
    if (f->vcpus < o->cpus || f->ram_mb * MIB < o->mem)
        return false;
    if (o->disk > 0 && f->disk_gb * GIB < o->disk)
        return false;
    if (o->gpus == 0)
        return f->gpus == 0;
    return f->gpus >= o->gpus && (o->model[0] == '\0' || strcasecmp(f->model, o->model) == 0);
}

static bool smaller(const struct ost_flavor *a, const struct ost_flavor *b)
{
    if (a->gpus != b->gpus)
        return a->gpus < b->gpus;
    if (a->vcpus != b->vcpus)
        return a->vcpus < b->vcpus;
    if (a->ram_mb != b->ram_mb)
        return a->ram_mb < b->ram_mb;
    if (a->disk_gb != b->disk_gb)
        return a->disk_gb < b->disk_gb;
    return strcmp(a->name, b->name) < 0;
}

/* "4 cpus, 16 GiB memory, 1 x A100" */
static void asked(const struct oop *o, char *buf, size_t cap)
{
    char mem[32], disk[32];
    size_t n = 0;

    size_text(o->mem, mem, sizeof(mem));
    size_text(o->disk, disk, sizeof(disk));
    n += (size_t)snprintf(buf + n, cap - n, "%u cpu%s", o->cpus ? o->cpus : 1,
                          o->cpus > 1 ? "s" : "");
    if (o->mem && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, ", %s memory", mem);
    if (o->disk && n < cap)
        n += (size_t)snprintf(buf + n, cap - n, ", %s disk", disk);
    if (o->gpus && n < cap)
        snprintf(buf + n, cap - n, ", %u x %s", o->gpus, o->model[0] ? o->model : "GPU");
}

static void gpu_flavors(const struct ost *s, char *buf, size_t cap)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < s->nflavors && n + 1 < cap; i++) {
        const struct ost_flavor *f = &s->flavors[i];
        if (f->gpus)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s (%u x %s)", n ? ", " : "", f->name,
                                  f->gpus, f->model);
    }
}

const struct ost_flavor *ost_flavor_pick(struct oop *o, int *code)
{
    const struct ost *s = o->s;
    const struct ost_flavor *best = NULL, *f;
    char want[96], gpu[150];

    if (o->instance_type[0]) {
        f = ost_flavor_find(s, o->instance_type);
        if (f == NULL)
            *code = oop_errf(o, ORC_DRV_ENOCAPACITY, "no flavor '%s' here (%zu flavors%s%.120s)",
                             o->instance_type, s->nflavors, s->nflavors ? ", e.g. " : "",
                             s->nflavors ? s->flavors[0].name : "");
        return f;
    }
    for (size_t i = 0; i < s->nflavors; i++) {
        f = &s->flavors[i];
        if (fits(o, f) && (best == NULL || smaller(f, best)))
            best = f;
    }
    if (best)
        return best;
    asked(o, want, sizeof(want));
    gpu_flavors(s, gpu, sizeof(gpu));
    *code = oop_errf(o, ORC_DRV_ENOCAPACITY, "no flavor fits %s (GPU flavors here: %s)", want,
                     gpu[0] ? gpu : "none");
    return NULL;
}

/* ---- pools ---- */

static int64_t left_of(const json_t *abs, const char *max, const char *used, bool minus_used)
{
    json_t *m = json_object_get(abs, max);
    int64_t v, u;

    if (!json_is_integer(m) || json_integer_value(m) < 0)
        return -1; /* no limit */
    v = (int64_t)json_integer_value(m);
    u = minus_used ? (int64_t)json_integer_value(json_object_get(abs, used)) : 0;
    return v > u ? v - u : 0;
}

/* nodes of flavor f the quota leaves room for; OST_UNBOUNDED when nothing bounds it */
static uint32_t nodes_for(const struct ost_flavor *f, int64_t cores, int64_t inst, int64_t ram)
{
    int64_t n = OST_UNBOUNDED;

    if (cores >= 0 && f->vcpus)
        n = cores / f->vcpus < n ? cores / f->vcpus : n;
    if (inst >= 0)
        n = inst < n ? inst : n;
    if (ram >= 0 && f->ram_mb)
        n = ram / (int64_t)f->ram_mb < n ? ram / (int64_t)f->ram_mb : n;
    return (uint32_t)n;
}

static int model_pool(struct ost *s, orc_op_t *op, const char *model, const json_t *abs)
{
    struct orc_pool p = {.name = model, .gpu_model = model, .price_hour = -1};
    int64_t lim[2][3];

    for (int k = 0; k < 2; k++) {
        lim[k][0] = left_of(abs, "maxTotalCores", "totalCoresUsed", k == 1);
        lim[k][1] = left_of(abs, "maxTotalInstances", "totalInstancesUsed", k == 1);
        lim[k][2] = left_of(abs, "maxTotalRAMSize", "totalRAMUsed", k == 1);
    }
    for (size_t i = 0; i < s->nflavors; i++) {
        const struct ost_flavor *f = &s->flavors[i];
        uint64_t tot, fr;
        if (f->gpus == 0 || strcasecmp(f->model, model) != 0)
            continue;
        tot = (uint64_t)nodes_for(f, lim[0][0], lim[0][1], lim[0][2]) * f->gpus;
        fr = (uint64_t)nodes_for(f, lim[1][0], lim[1][1], lim[1][2]) * f->gpus;
        if (tot > p.gpus_total)
            p.gpus_total = tot > UINT32_MAX ? UINT32_MAX : (uint32_t)tot;
        if (fr > p.gpus_free)
            p.gpus_free = fr > UINT32_MAX ? UINT32_MAX : (uint32_t)fr;
        if (f->gpus > p.max_gpus_per_node)
            p.max_gpus_per_node = f->gpus;
        if (f->vcpus > p.cpus_total)
            p.cpus_total = p.cpus_free = f->vcpus; /* of its largest node */
        if (f->ram_mb * MIB > p.mem_total)
            p.mem_total = p.mem_free = f->ram_mb * MIB;
    }
    return s->host->op_pool_add(op, &p);
}

int ost_pools(struct ost *s, orc_op_t *op, const json_t *limits)
{
    const json_t *abs = json_object_get(json_object_get(limits, "limits"), "absolute");
    struct orc_pool cpu = {.name = "cpu", .price_hour = -1};
    int64_t v;
    int rc = 0;

    for (size_t i = 0; i < s->nflavors && rc == 0; i++) {
        bool seen = false;
        if (s->flavors[i].gpus == 0)
            continue;
        for (size_t k = 0; k < i && !seen; k++)
            seen = s->flavors[k].gpus && strcasecmp(s->flavors[k].model, s->flavors[i].model) == 0;
        if (!seen)
            rc = model_pool(s, op, s->flavors[i].model, abs);
    }
    if (rc < 0)
        return rc;
    v = left_of(abs, "maxTotalCores", NULL, false);
    cpu.cpus_total = v < 0 ? 1000000 : (uint32_t)v;
    v = left_of(abs, "maxTotalCores", "totalCoresUsed", true);
    cpu.cpus_free = v < 0 ? 1000000 : (uint32_t)v;
    v = left_of(abs, "maxTotalRAMSize", NULL, false);
    cpu.mem_total = v < 0 ? 1024 * 1024 * GIB : (uint64_t)v * MIB;
    v = left_of(abs, "maxTotalRAMSize", "totalRAMUsed", true);
    cpu.mem_free = v < 0 ? 1024 * 1024 * GIB : (uint64_t)v * MIB;
    return s->host->op_pool_add(op, &cpu);
}

/* ---- the sync: flavors, their extra_specs, networks ---- */

void ost_cloud_free(struct ost *s)
{
    for (size_t i = 0; i < s->nflavors; i++) {
        s->host->free(s->flavors[i].id);
        s->host->free(s->flavors[i].name);
    }
    s->host->free(s->flavors);
    s->flavors = NULL;
    s->nflavors = 0;
}

void ost_sync_leave(struct oop *o)
{
    struct ost *s = o->s;

    if (!o->sync_wait)
        return;
    for (struct oop **pp = &s->sync_waiters; *pp; pp = &(*pp)->wnext)
        if (*pp == o) {
            *pp = o->wnext;
            break;
        }
    o->wnext = NULL;
    o->sync_wait = false;
}

static void resume(struct oop *w, int status, const char *err)
{
    w->status = status;
    if (status < 0) {
        const char *plain = strncmp(err, "openstack: ", 11) == 0 ? err + 11 : err;
        cld_call_release(&w->call);
        w->call.code = 0;
        snprintf(w->call.error, sizeof(w->call.error), "%s", plain);
        snprintf(w->err, sizeof(w->err), "%s", err);
    }
    w->timer = w->s->host->timer_start(w->s->host, 0, oop_on_timer, w);
    if (w->timer == 0)
        w->next_step(w, status < 0 ? status : ORC_ENOMEM);
}

void ost_sync_ended(struct oop *o, int status)
{
    struct ost *s = o->s;
    struct oop *w = s->sync_waiters;

    if (s->sync_op != o)
        return;
    s->sync_op = NULL;
    s->sync_waiters = NULL;
    if (status < 0 && status != ORC_ECANCELED && s->synced) {
        /* a refresh failed: what was read before still serves */
        s->host->log(s->host, ORC_DRV_LOG_WARN, "%s (the flavors read before stay)", o->err);
        s->synced_ms = cld_now_ms() - OST_SYNC_MAX_AGE_MS + 60000; /* again in a minute */
        status = 0;
    }
    while (w) {
        struct oop *next = w->wnext;
        w->wnext = NULL;
        w->sync_wait = false;
        resume(w, status, o->err);
        w = next;
    }
}

static void sync_fail(struct oop *o, int status, const char *what)
{
    oop_fail_call(o, status, what);
}

/* The network whose id is key, else the one network named key; NULL when none (or,
 * with *many set, several have that name). */
static const json_t *find_net(const json_t *nets, const char *key, bool *many)
{
    const json_t *n, *named = NULL;
    size_t i, count = 0;

    *many = false;
    json_array_foreach(nets, i, n) {
        if (strcmp(cld_jstr(n, "id", ""), key) == 0)
            return n;
        if (strcmp(cld_jstr(n, "name", ""), key) == 0) {
            named = n;
            count++;
        }
    }
    *many = count > 1;
    return count == 1 ? named : NULL;
}

static void list_append(char *buf, size_t cap, size_t *len, const char *name)
{
    if (*len < cap)
        *len += (size_t)snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", name);
}

/* The private network: the config's, else the only non-external one (the only one
 * of the project when several are shared with it). 0 or < 0 with o->err. */
static int pick_private(struct oop *o, const json_t *nets, const json_t **out)
{
    struct ost *s = o->s;
    const json_t *n, *only = NULL, *own = NULL;
    char names[160] = "";
    size_t i, len = 0, count = 0, nown = 0;
    bool many;

    if (s->c.network) {
        *out = find_net(nets, s->c.network, &many);
        if (*out)
            return 0;
    }
    json_array_foreach(nets, i, n) {
        if (json_is_true(json_object_get(n, "router:external")))
            continue;
        list_append(names, sizeof(names), &len, cld_jstr(n, "name", "?"));
        only = n;
        count++;
        if (s->project_id[0] &&
            strcmp(cld_jstr(n, "project_id", cld_jstr(n, "tenant_id", "")), s->project_id) == 0) {
            own = n;
            nown++;
        }
    }
    if (s->c.network && many)
        return oop_errf(o, ORC_EINVAL, "network '%s': several networks have this name: use its id",
                        s->c.network);
    if (s->c.network)
        return oop_errf(o, ORC_EINVAL, "network '%s' not found (private networks: %s)",
                        s->c.network, count ? names : "none");
    *out = count == 1 ? only : nown == 1 ? own : NULL;
    if (*out == NULL)
        return oop_errf(o, ORC_EINVAL, "the project sees %zu private networks%s%s%s: set network",
                        count, count ? " (" : "", names, count ? ")" : "");
    return 0;
}

/* The external network of floating IPs, or why there is none (s->fnet_why). */
static void pick_floating(struct ost *s, const json_t *nets)
{
    const json_t *n, *pub = NULL;
    char names[120] = "";
    size_t i, len = 0, count = 0;
    bool many;

    s->fnet_id[0] = s->fnet_why[0] = '\0';
    if (s->c.floating_network) {
        pub = find_net(nets, s->c.floating_network, &many);
        if (pub == NULL)
            snprintf(s->fnet_why, sizeof(s->fnet_why), "floating_network '%s' %s",
                     s->c.floating_network,
                     many ? "names several networks: use its id" : "not found");
    } else {
        json_array_foreach(nets, i, n) {
            if (!json_is_true(json_object_get(n, "router:external")))
                continue;
            list_append(names, sizeof(names), &len, cld_jstr(n, "name", "?"));
            pub = n;
            count++;
        }
        if (count != 1)
            pub = NULL;
        if (count == 0)
            snprintf(s->fnet_why, sizeof(s->fnet_why), "the cloud has no external network");
        else if (count > 1)
            snprintf(s->fnet_why, sizeof(s->fnet_why),
                     "%zu external networks (%s): set floating_network", count, names);
    }
    if (pub)
        ost_copy(s->fnet_id, sizeof(s->fnet_id), cld_jstr(pub, "id", ""));
}

static int pick_networks(struct oop *o, const json_t *nets)
{
    struct ost *s = o->s;
    const json_t *priv = NULL;
    int rc = pick_private(o, nets, &priv);

    if (rc < 0)
        return rc;
    ost_copy(s->net_id, sizeof(s->net_id), cld_jstr(priv, "id", ""));
    ost_copy(s->net_name, sizeof(s->net_name), cld_jstr(priv, "name", ""));
    pick_floating(s, nets);
    if (s->fnet_why[0] && s->c.floating_ip == OST_FIP_ALWAYS)
        return oop_errf(o, ORC_EINVAL, "floating_ip is always, but %s", s->fnet_why);
    return 0;
}

static void sy_commit(struct oop *o)
{
    struct ost *s = o->s;
    size_t n = json_array_size(o->list), k = 0, i;
    struct ost_flavor *fl = s->host->calloc(n ? n : 1, sizeof(*fl));
    json_t *f;

    if (fl == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    json_array_foreach(o->list, i, f) {
        struct ost_flavor *x = &fl[k];
        if (json_is_true(json_object_get(f, "OS-FLV-DISABLED:disabled")))
            continue;
        x->id = cld_strdup(s->host, cld_jstr(f, "id", ""));
        x->name = cld_strdup(s->host, cld_jstr(f, "name", ""));
        if (x->id == NULL || x->name == NULL) {
            s->host->free(x->id);
            s->host->free(x->name);
            continue;
        }
        x->vcpus = (uint32_t)json_integer_value(json_object_get(f, "vcpus"));
        x->ram_mb = (uint64_t)json_integer_value(json_object_get(f, "ram"));
        x->disk_gb = (uint64_t)json_integer_value(json_object_get(f, "disk"));
        x->have_specs = json_is_object(json_object_get(f, "extra_specs"));
        ost_flavor_gpus(&s->c, x, json_object_get(f, "extra_specs"));
        k++;
    }
    ost_cloud_free(s);
    s->flavors = fl;
    s->nflavors = k;
    s->synced = true;
    s->synced_ms = cld_now_ms();
    oop_done(o, 0);
}

static void sy_networks_answer(struct oop *o, int status)
{
    int rc;

    if (status < 0 || o->call.code != 200) {
        sync_fail(o, status, "GET /v2.0/networks");
        return;
    }
    rc = pick_networks(o, json_object_get(o->call.json, "networks"));
    if (rc < 0) {
        oop_done(o, rc);
        return;
    }
    sy_commit(o);
}

static void sy_networks(struct oop *o)
{
    int rc = oop_call(o, OST_NETWORK, "GET", "/networks", NULL, 0, sy_networks_answer);

    if (rc < 0)
        sync_fail(o, rc, "GET /v2.0/networks");
}

static void sy_specs(struct oop *o, int status);

static void sy_next_specs(struct oop *o)
{
    char path[OST_ID_LEN * 3 + 64], id[OST_ID_LEN * 3];
    json_t *f = NULL;
    int rc;

    for (; o->idx < json_array_size(o->list); o->idx++) {
        f = json_array_get(o->list, o->idx);
        if (!json_is_object(json_object_get(f, "extra_specs")))
            break;
    }
    if (o->idx >= json_array_size(o->list)) {
        sy_networks(o);
        return;
    }
    if (!cld_urlencode(cld_jstr(f, "id", ""), id, sizeof(id))) {
        json_object_set_new(f, "extra_specs", json_object());
        o->idx++;
        sy_next_specs(o);
        return;
    }
    snprintf(path, sizeof(path), "/flavors/%s/os-extra_specs", id);
    rc = oop_call(o, OST_COMPUTE, "GET", path, NULL, 0, sy_specs);
    if (rc < 0)
        sync_fail(o, rc, "GET /flavors/ID/os-extra_specs");
}

static void sy_specs(struct oop *o, int status)
{
    json_t *f = json_array_get(o->list, o->idx);
    json_t *specs = json_object_get(o->call.json, "extra_specs");

    if (status < 0 || (o->call.code != 200 && o->call.code != 404)) {
        sync_fail(o, status, "GET /flavors/ID/os-extra_specs");
        return;
    }
    json_object_set_new(f, "extra_specs", json_is_object(specs) ? json_incref(specs) : json_object());
    o->idx++;
    sy_next_specs(o);
}

static void sy_flavors_answer(struct oop *o, int status);

static void sy_flavors(struct oop *o, unsigned flags)
{
    int rc = oop_call(o, OST_COMPUTE, "GET", "/flavors/detail", NULL, flags, sy_flavors_answer);

    if (rc < 0)
        sync_fail(o, rc, "GET /flavors/detail");
}

static void sy_flavors_answer(struct oop *o, int status)
{
    json_t *fl = json_object_get(o->call.json, "flavors");

    if (status == 0 && (o->flags & OST_MICROVERSION) &&
        (o->call.code == 400 || o->call.code == 404 || o->call.code == 406)) {
        sy_flavors(o, 0); /* an older Nova: extra_specs one flavor at a time */
        return;
    }
    if (status < 0 || o->call.code != 200 || !json_is_array(fl)) {
        sync_fail(o, status, "GET /flavors/detail");
        return;
    }
    json_decref(o->list);
    o->list = json_incref(fl);
    o->idx = 0;
    sy_next_specs(o);
}

static void sy_start(void *arg)
{
    struct oop *o = arg;

    o->timer = 0;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    sy_flavors(o, OST_MICROVERSION);
}

int ost_sync_need(struct oop *o, oop_step next)
{
    struct ost *s = o->s;
    struct oop *sy;

    o->next_step = next;
    if (s->synced && cld_now_ms() - s->synced_ms < OST_SYNC_MAX_AGE_MS) {
        o->status = 0;
        o->timer = s->host->timer_start(s->host, 0, oop_on_timer, o);
        return o->timer ? 0 : oop_errf(o, ORC_ENOMEM, "out of memory");
    }
    if (s->sync_op == NULL) {
        sy = oop_new(s, NULL, OOP_SYNC);
        if (sy == NULL)
            return oop_errf(o, ORC_ENOMEM, "out of memory");
        sy->xflags = o->kind == OOP_OPEN ? OST_QUICK : 0;
        ost_copy(sy->name, sizeof(sy->name), "sync");
        sy->timer = s->host->timer_start(s->host, 0, sy_start, sy);
        if (sy->timer == 0) {
            oop_done(sy, ORC_ENOMEM);
            return oop_errf(o, ORC_ENOMEM, "out of memory");
        }
        s->sync_op = sy;
    }
    o->wnext = s->sync_waiters;
    s->sync_waiters = o;
    o->sync_wait = true;
    return 0;
}
