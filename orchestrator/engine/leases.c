/*
 * Leases of the engine (docs/engine.md, Several daemons): with several daemons on
 * one database, each engine works only on the deployments whose lease it holds
 * (store.h). It takes a deployment's lease before it starts working on it; every
 * third of the lease time it renews them all, lets go of a run whose lease another
 * daemon took (this one was too slow to renew), starts what it holds and nobody
 * works on (a change another daemon's API stored), and takes over the deployments
 * in progress whose owner stopped renewing. A run that ends gives its lease back.
 * Without a lease time (one daemon) none of this happens.
 */
#include <string.h>

#include "engine_int.h"

#define LOG "engine"
#define CLAIM_BATCH 64

bool orc__leases_on(const struct orc_engine *eng)
{
    return eng->opts.lease_ms > 0 && eng->opts.instance != NULL;
}

int orc__lease_take(struct orc_engine *eng, const char *uuid)
{
    int rc;

    if (!orc__leases_on(eng))
        return 0;
    rc = orc_store_lease_acquire(eng->store, uuid, eng->opts.instance, (int64_t)eng->opts.lease_ms);
    if (rc == ORC_ECONFLICT) {
        orc_log_ctx(ORC_LOG_INFO, LOG, &(orc_log_ctx_t){.deployment = uuid},
                    "left to its owner: %s", orc_store_errmsg(eng->store));
        return 1;
    }
    if (rc < 0)
        orc_log_ctx(ORC_LOG_ERROR, LOG, &(orc_log_ctx_t){.deployment = uuid}, "lease: %s",
                    orc_store_errmsg(eng->store));
    return rc;
}

void orc__lease_release(struct orc_engine *eng, const char *uuid)
{
    if (orc__leases_on(eng) && orc_store_lease_release(eng->store, uuid, eng->opts.instance) < 0)
        orc_log_ctx(ORC_LOG_WARN, LOG, &(orc_log_ctx_t){.deployment = uuid},
                    "giving its lease back: %s", orc_store_errmsg(eng->store));
}

static bool held(const orc_lease_list_t *l, const char *uuid)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].uuid, uuid) == 0)
            return true;
    return false;
}

/* Runs whose deployment another daemon took: they stop here (their operations are
 * canceled; the new owner re-drives the deployment from the store). */
static void let_go_of_lost(struct orc_engine *eng, const orc_lease_list_t *l)
{
    struct run *r = eng->runs;

    while (r != NULL) {
        struct run *next = r->next;
        if (!held(l, r->uuid)) {
            orc_log_ctx(ORC_LOG_ERROR, LOG, &(orc_log_ctx_t){.deployment = r->uuid},
                        "its lease was taken by another daemon: stopping here");
            orc_engine_abandon(eng, r->uuid);
        }
        r = next;
    }
}

/* What this engine holds in progress with no run: changes stored through another
 * daemon (a delete, an update), or leases of a previous run of this daemon. A delete
 * stored while a create runs here turns that run into the delete. */
static void start_held(struct orc_engine *eng, const orc_lease_list_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        const orc_lease_t *it = &l->items[i];
        struct run *r = orc__engine_find_run(eng, it->uuid);
        if (!(ORC_DEP_MASK(it->status) & ORC_DEP_MASK_IN_PROGRESS))
            continue;
        if (r == NULL)
            orc__engine_resume(eng, it->uuid, it->status);
        else if (it->status == ORC_DEP_DELETE_IN_PROGRESS && r->what != RUN_DELETE)
            orc_engine_delete(eng, it->uuid);
    }
}

/* Deployments in progress whose owner stopped renewing: this engine goes on with them. */
static void take_over(struct orc_engine *eng, bool with_own)
{
    orc_lease_list_t got;

    if (orc_store_lease_claim_expired(eng->store, eng->opts.instance, (int64_t)eng->opts.lease_ms,
                                      ORC_DEP_MASK_IN_PROGRESS, with_own ? SIZE_MAX : CLAIM_BATCH,
                                      with_own, &got) < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "claiming deployments: %s", orc_store_errmsg(eng->store));
        return;
    }
    for (size_t i = 0; i < got.count; i++) {
        const orc_lease_t *it = &got.items[i];
        const char *before = it->previous_owner;
        if (before && strcmp(before, eng->opts.instance) != 0) {
            orc_event_t ev = {.type = "deployment.takeover"};
            char msg[256];
            snprintf(msg, sizeof(msg), "daemon %.100s goes on with it (%.100s stopped renewing "
                                       "its lease)",
                     eng->opts.instance, before);
            memcpy(ev.deployment_uuid, it->uuid, ORC_UUID_LEN);
            ev.message = msg;
            orc_store_event_append(eng->store, &ev);
            eng->takeovers++;
            orc_log_ctx(ORC_LOG_WARN, LOG, &(orc_log_ctx_t){.deployment = it->uuid}, "%s", msg);
        }
        if (orc__engine_find_run(eng, it->uuid) == NULL)
            orc__engine_resume(eng, it->uuid, it->status);
    }
    orc_lease_list_clear(&got);
}

static void on_lease_tick(uv_timer_t *t)
{
    struct orc_engine *eng = t->data;
    orc_lease_list_t l;

    if (eng->closing)
        return;
    if (orc_store_lease_renew(eng->store, eng->opts.instance, (int64_t)eng->opts.lease_ms, &l) <
        0) {
        orc_log(ORC_LOG_ERROR, LOG, "renewing leases: %s", orc_store_errmsg(eng->store));
        return; /* the next tick tries again; runs go on until another daemon takes them */
    }
    eng->leases_held = l.count;
    let_go_of_lost(eng, &l);
    start_held(eng, &l);
    orc_lease_list_clear(&l);
    take_over(eng, false);
}

void orc__leases_start(struct orc_engine *eng)
{
    uint64_t every = eng->opts.lease_ms / 3 ? eng->opts.lease_ms / 3 : 1;

    if (!orc__leases_on(eng))
        return;
    take_over(eng, true); /* what this daemon held before a restart, and what is free */
    uv_timer_init(eng->loop, &eng->lease_timer);
    eng->lease_timer.data = eng;
    uv_timer_start(&eng->lease_timer, on_lease_tick, every, every);
    eng->lease_timer_on = true;
}

static void lease_timer_closed(uv_handle_t *h)
{
    struct orc_engine *eng = h->data;

    eng->closing_timers--;
    orc__engine_maybe_done(eng);
}

void orc__leases_close(struct orc_engine *eng)
{
    if (!eng->lease_timer_on)
        return;
    eng->lease_timer_on = false;
    eng->closing_timers++;
    uv_close((uv_handle_t *)&eng->lease_timer, lease_timer_closed);
}

void orc_engine_lease_stats(const struct orc_engine *eng, bool *on, size_t *held,
                            uint64_t *takeovers)
{
    *on = orc__leases_on(eng);
    *held = eng->leases_held;
    *takeovers = eng->takeovers;
}
