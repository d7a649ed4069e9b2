/*
 * Site ranking (rank.h): filters the sites whose driver supports every node
 * kind the plan provisions and whose inventory can hold its GPUs, CPUs and
 * memory, then orders them. Every excluded site gets a reason, so that an
 * empty list fails the deployment at once with a message naming what could
 * not fit where.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rank.h"

int orc_rank_kind(const char *name)
{
    static const char *const names[] = {"COMPUTE", "SERVICE", "JOB",
                                        "SOFTWARE", "NETWORK", "STORAGE"};

    for (int i = 0; name && i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

static void need_node(struct orc_rank_need *need, const json_t *node)
{
    const json_t *c = json_object_get(node, "compute");
    int kind = orc_rank_kind(json_string_value(json_object_get(node, "kind")));
    json_int_t count = json_integer_value(json_object_get(node, "count"));
    json_int_t gpus = json_integer_value(json_object_get(c, "num_gpus"));
    json_int_t cpus = json_integer_value(json_object_get(c, "num_cpus"));
    json_int_t mem = json_integer_value(json_object_get(c, "mem_size"));
    const char *model = json_string_value(json_object_get(c, "gpu_model"));
    bool hosted = json_is_string(json_object_get(node, "host"));

    need->instances += (uint32_t)(count > 0 ? count : 0);
    if (kind < 0 || kind == ORC_KIND_SOFTWARE || (hosted && kind != ORC_KIND_STORAGE))
        return; /* runs on its host */
    need->kinds |= ORC_DRV_CAP_KIND(kind);
    if (gpus > 0) {
        need->total_gpus += (uint32_t)(gpus * (count > 0 ? count : 0));
        if ((uint32_t)gpus > need->max_gpus_node)
            need->max_gpus_node = (uint32_t)gpus;
    }
    if (model && *model && !need->gpu_model[0])
        snprintf(need->gpu_model, sizeof(need->gpu_model), "%s", model);
    if (cpus > 0 && (uint32_t)cpus > need->max_cpus_node)
        need->max_cpus_node = (uint32_t)cpus;
    if (mem > 0 && (uint64_t)mem > need->max_mem_node)
        need->max_mem_node = (uint64_t)mem;
}

void orc_rank_need_from_plan(const json_t *plan, struct orc_rank_need *need)
{
    const json_t *nodes = json_object_get(plan, "nodes"), *n;
    size_t i;

    memset(need, 0, sizeof(*need));
    json_array_foreach(nodes, i, n) need_node(need, n);
}

static const char *kind_names(uint64_t kinds, char *buf, size_t size)
{
    static const char *const names[] = {"COMPUTE", "SERVICE", "JOB",
                                        "SOFTWARE", "NETWORK", "STORAGE"};
    size_t len = 0;

    buf[0] = '\0';
    for (int k = 0; k < 6; k++)
        if (kinds & ORC_DRV_CAP_KIND(k))
            len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s",
                                    len ? ", " : "", names[k]);
    return buf;
}

static bool model_matches(const struct orc_pool *p, const char *model)
{
    return p->gpu_model && (!model[0] || strcasecmp(p->gpu_model, model) == 0);
}

/* Free GPUs of the model the plan asks (any model when none is asked). */
static uint32_t free_gpus(const struct orc_rank_site *s, const char *model, uint32_t *per_node)
{
    uint32_t free = 0;

    *per_node = 0;
    for (size_t i = 0; i < s->npools; i++)
        if (model_matches(&s->pools[i], model)) {
            free += s->pools[i].gpus_free;
            if (s->pools[i].max_gpus_per_node == 0 || s->pools[i].max_gpus_per_node > *per_node)
                *per_node = s->pools[i].max_gpus_per_node ? s->pools[i].max_gpus_per_node
                                                          : UINT32_MAX;
        }
    return free;
}

/* Why site s cannot run need, or NULL when it can. */
static const char *misfit(const struct orc_rank_need *need, const struct orc_rank_site *s,
                          char *buf, size_t size)
{
    char kinds[96];
    uint32_t per_node;
    uint64_t missing = need->kinds & ~s->caps;

    if (missing)
        return snprintf(buf, size, "its driver cannot provision %s",
                        kind_names(missing, kinds, sizeof(kinds))), buf;
    if (need->total_gpus == 0)
        return NULL;
    if (!(s->caps & ORC_DRV_CAP_GPU))
        return snprintf(buf, size, "has no GPUs (needs %u%s%s)", need->total_gpus,
                        need->gpu_model[0] ? " x " : "", need->gpu_model), buf;
    if (s->pools == NULL)
        return NULL; /* no inventory: the site decides at provision time */
    if (free_gpus(s, need->gpu_model, &per_node) < need->total_gpus)
        return snprintf(buf, size, "%u GPU%s %s free, needs %u",
                        free_gpus(s, need->gpu_model, &per_node),
                        free_gpus(s, need->gpu_model, &per_node) == 1 ? "" : "s",
                        need->gpu_model[0] ? need->gpu_model : "of any model",
                        need->total_gpus), buf;
    if (per_node < need->max_gpus_node)
        return snprintf(buf, size, "at most %u GPUs per node, needs %u on one node", per_node,
                        need->max_gpus_node), buf;
    return NULL;
}

static double price_of(const struct orc_rank_site *s, const char *model)
{
    double best = -1;

    for (size_t i = 0; i < s->npools; i++)
        if (model_matches(&s->pools[i], model) && s->pools[i].price_hour >= 0 &&
            (best < 0 || s->pools[i].price_hour < best))
            best = s->pools[i].price_hour;
    return best;
}

/* <0 when a ranks before b. */
static int compare(const struct orc_rank_need *need, const struct orc_rank_site *a,
                   const struct orc_rank_site *b)
{
    uint32_t pn, fa, fb;
    double pa, pb;

    if (a->priority != b->priority)
        return a->priority > b->priority ? -1 : 1;
    fa = free_gpus(a, need->gpu_model, &pn);
    fb = free_gpus(b, need->gpu_model, &pn);
    if (need->total_gpus && fa != fb)
        return fa > fb ? -1 : 1;
    pa = price_of(a, need->gpu_model);
    pb = price_of(b, need->gpu_model);
    if (pa >= 0 && pb >= 0 && pa != pb)
        return pa < pb ? -1 : 1;
    return strcmp(a->name, b->name);
}

size_t orc_rank_sites(const struct orc_rank_need *need, const struct orc_rank_site *sites,
                      size_t n, size_t *order, char *reason, size_t reasonlen)
{
    size_t fit = 0, rlen = 0;
    char why[256];

    if (reasonlen)
        reason[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *m = misfit(need, &sites[i], why, sizeof(why));
        if (m == NULL) {
            size_t j = fit++;
            while (j > 0 && compare(need, &sites[i], &sites[order[j - 1]]) < 0) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = i;
        } else if (rlen < reasonlen) {
            rlen += (size_t)snprintf(reason + rlen, reasonlen - rlen, "%s%s: %s",
                                     rlen ? "; " : "", sites[i].name, m);
        }
    }
    if (n == 0 && reasonlen)
        snprintf(reason, reasonlen, "no site is enabled and open");
    return fit;
}
