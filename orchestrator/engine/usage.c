/*
 * Usage records of the engine (docs/api.md "Usage"): a node that holds capacity at a
 * site (a compute node, or a service or job the driver runs itself) appends
 * "usage.started" when its provision succeeded and "usage.ended" when it was
 * deprovisioned, both in the deployment's events, in the same group as the state
 * change beside them. The API sums the intervals (api/usage.c). A re-drive after a
 * crash may append a second start for a node already started: the sum ignores it.
 */
#include <stdio.h>

#include "engine_int.h"

/* Whether the instance holds capacity of its own at a site. */
static bool holds_capacity(const struct inst *in)
{
    const struct nrun *n = in->node;

    return !n->hosted &&
           (n->kind == ORC_KIND_COMPUTE || n->kind == ORC_KIND_SERVICE || n->kind == ORC_KIND_JOB);
}

static void append(struct run *r, const struct inst *in, bool started)
{
    const struct node_fields *f = &in->node->f;
    orc_event_t ev = {.type = started ? "usage.started" : "usage.ended"};
    char msg[256];

    if (!holds_capacity(in) || !in->on_site || in->site[0] == '\0')
        return;
    memcpy(ev.deployment_uuid, r->uuid, ORC_UUID_LEN);
    if (started && f->num_gpus > 0)
        snprintf(msg, sizeof(msg), "%s[%u] holds %u %s GPU%s at site %s", in->node->name, in->index,
                 f->num_gpus, f->gpu_model ? f->gpu_model : "(any model)",
                 f->num_gpus > 1 ? "s" : "", in->site);
    else
        snprintf(msg, sizeof(msg), "%s[%u] %s site %s", in->node->name, in->index,
                 started ? "holds a node at" : "released its node at", in->site);
    ev.message = msg;
    ev.data = json_pack("{s:s, s:s, s:i, s:s}", "resource", in->res_uuid, "node", in->node->name,
                        "index", (int)in->index, "site", in->site);
    if (ev.data != NULL && started) {
        json_object_set_new(ev.data, "gpus", json_integer(f->num_gpus));
        if (f->gpu_model)
            json_object_set_new(ev.data, "gpu_model", json_string(f->gpu_model));
    }
    if (ev.data == NULL || orc_store_event_append(r->eng->store, &ev) < 0)
        orc_log_ctx(ORC_LOG_ERROR, "engine", &(orc_log_ctx_t){.deployment = r->uuid},
                    "%s[%u]: its usage is not recorded: %s", in->node->name, in->index,
                    ev.data ? orc_store_errmsg(r->eng->store) : "out of memory");
    json_decref(ev.data);
}

void orc__usage_started(struct run *r, const struct inst *in)
{
    append(r, in, true);
}

void orc__usage_ended(struct run *r, const struct inst *in)
{
    append(r, in, false);
}
