/*
 * What the engine can say of its sites now (engine.h, orc_engine_sites): each site of
 * the sites file, its state (active: open; draining: open, taking no new deployments;
 * disabled: `enabled: false`; unavailable: it did not open), and for the open ones what their
 * drivers' inventories report this moment, asked of every site at once: the pools and, summed over
 * them, GPUs by model, CPUs and memory, total and free. GET /sites serves it.
 */
#include <stdio.h>
#include <string.h>

#include "engine_int.h"

struct site_probe {
    struct orc_sites_query *q;
    struct engine_site *site;
    orc_op_t op;
    bool asked;
    int status;
};

struct orc_sites_query {
    struct orc_engine *eng;
    orc_engine_sites_fn fn;
    void *ud;
    bool canceled;
    size_t pending;
    struct site_probe *probes; /* one per site of the engine */
    size_t nprobes;
};

static const char *site_state(struct engine_site *s)
{
    if (!s->def->enabled)
        return "disabled";
    if (!s->open)
        return "unavailable";
    return orc_engine_site_draining(s->eng, s->def->name) ? "draining" : "active";
}

/* GPUs by model, summed over the pools: [{"model", "total", "free"}]. */
static json_t *gpus_by_model(const orc_op_t *op)
{
    json_t *by = json_object(), *out = json_array(), *v;
    const char *model;

    for (uint32_t i = 0; by && i < op->npools; i++) {
        const struct orc_pool *p = &op->pools[i];
        json_t *m;
        if (p->gpu_model == NULL || p->gpus_total == 0)
            continue;
        m = json_object_get(by, p->gpu_model);
        if (m == NULL) {
            m = json_pack("{ss sI sI}", "model", p->gpu_model, "total", (json_int_t)0, "free",
                          (json_int_t)0);
            json_object_set_new(by, p->gpu_model, m);
        }
        json_object_set_new(
            m, "total",
            json_integer(json_integer_value(json_object_get(m, "total")) + p->gpus_total));
        json_object_set_new(
            m, "free", json_integer(json_integer_value(json_object_get(m, "free")) + p->gpus_free));
    }
    json_object_foreach(by, model, v)
    {
        json_array_append(out, v);
    }
    json_decref(by);
    return out;
}

static json_t *pool_json(const struct orc_pool *p)
{
    json_t *j =
        json_pack("{ss so sI sI sI sI sI sI}", "name", p->name ? p->name : "", "gpu_model",
                  p->gpu_model ? json_string(p->gpu_model) : json_null(), "gpus_total",
                  (json_int_t)p->gpus_total, "gpus_free", (json_int_t)p->gpus_free, "cpus_total",
                  (json_int_t)p->cpus_total, "cpus_free", (json_int_t)p->cpus_free, "mem_total",
                  (json_int_t)p->mem_total, "mem_free", (json_int_t)p->mem_free);

    if (j && p->max_gpus_per_node)
        json_object_set_new(j, "max_gpus_per_node", json_integer(p->max_gpus_per_node));
    if (j && p->price_hour >= 0)
        json_object_set_new(j, "price_hour", json_real(p->price_hour));
    return j;
}

/* The inventory's part of a site: pools, gpus, cpus and memory summed. */
static void add_inventory(json_t *site, const struct site_probe *p)
{
    json_t *pools = json_array();
    uint64_t cpus_total = 0, cpus_free = 0, mem_total = 0, mem_free = 0;

    for (uint32_t i = 0; pools && i < p->op.npools; i++) {
        const struct orc_pool *pl = &p->op.pools[i];
        json_array_append_new(pools, pool_json(pl));
        cpus_total += pl->cpus_total;
        cpus_free += pl->cpus_free;
        mem_total += pl->mem_total;
        mem_free += pl->mem_free;
    }
    json_object_set_new(site, "pools", pools);
    json_object_set_new(site, "gpus", gpus_by_model(&p->op));
    json_object_set_new(
        site, "cpus",
        json_pack("{sI sI}", "total", (json_int_t)cpus_total, "free", (json_int_t)cpus_free));
    json_object_set_new(
        site, "memory",
        json_pack("{sI sI}", "total", (json_int_t)mem_total, "free", (json_int_t)mem_free));
}

static json_t *site_json(const struct site_probe *p)
{
    const struct orc_site_def *def = p->site->def;
    json_t *s =
        json_pack("{ss ss so si ss so}", "name", def->name, "driver", def->driver, "description",
                  def->description ? json_string(def->description) : json_null(), "priority",
                  def->priority, "state", site_state(p->site), "credentials",
                  def->credentials ? json_string(def->credentials) : json_null());

    if (s == NULL)
        return NULL;
    json_object_set_new(s, "source", json_string(p->site->owned ? "api" : "file"));
    if (p->asked && p->status == 0) {
        add_inventory(s, p);
        json_object_set_new(s, "inventory", json_string("ok"));
    } else if (p->asked) {
        char why[ORC_OP_ERROR_LEN + 64];
        snprintf(why, sizeof(why), "%s", p->op.error[0] ? p->op.error : orc_strerror(p->status));
        json_object_set_new(s, "inventory", json_string(why));
    } else {
        json_object_set_new(s, "inventory", json_null());
    }
    return s;
}

static void query_free(struct orc_sites_query *q)
{
    for (size_t i = 0; i < q->nprobes; i++)
        if (q->probes[i].asked)
            orc_drv_op_reset(&q->probes[i].op);
    orc_free(q->probes);
    orc_free(q);
}

static void query_answer(struct orc_sites_query *q)
{
    json_t *sites = json_array();

    for (size_t i = 0; sites && i < q->nprobes; i++)
        if (!q->probes[i].site->removed &&
            json_array_append_new(sites, site_json(&q->probes[i])) < 0) {
            json_decref(sites);
            sites = NULL;
        }
    if (!q->canceled)
        q->fn(q->ud, sites);
    json_decref(sites);
    query_free(q);
}

static void on_site_inventory(orc_op_t *op, int status)
{
    struct site_probe *p = op->data;
    struct orc_sites_query *q = p->q;

    p->status = status;
    if (--q->pending == 0)
        query_answer(q);
}

int orc_engine_sites(struct orc_engine *eng, orc_engine_sites_fn fn, void *ud,
                     struct orc_sites_query **out)
{
    struct orc_sites_query *q = orc_calloc(1, sizeof(*q));

    *out = NULL;
    if (q == NULL ||
        (q->probes = orc_calloc(eng->nsites ? eng->nsites : 1, sizeof(*q->probes))) == NULL) {
        orc_free(q);
        return ORC_ENOMEM;
    }
    if (eng->closing) {
        query_free(q);
        return ORC_ECANCELED;
    }
    q->eng = eng;
    q->fn = fn;
    q->ud = ud;
    q->nprobes = eng->nsites;
    q->pending = 1; /* held until every probe is asked */
    for (size_t i = 0; i < eng->nsites; i++) {
        struct site_probe *p = &q->probes[i];
        p->q = q;
        p->site = eng->esites[i];
        if (!p->site->open || p->site->removed)
            continue;
        orc_drv_op_init(&p->op);
        p->op.data = p;
        p->asked = true;
        p->status = orc_drv_inventory(p->site->site, &p->op, on_site_inventory);
        if (p->status == 0)
            q->pending++;
    }
    *out = q;
    if (--q->pending == 0) { /* nothing asked, or every answer came already */
        *out = NULL;
        query_answer(q);
    }
    return 0;
}

void orc_engine_sites_cancel(struct orc_sites_query *q)
{
    if (q)
        q->canceled = true;
}
