/*
 * The daemon's own metrics, beside the HTTP ones of api/metrics.c (docs/api.md,
 * Metrics): deployments by status (counted in the store at each scrape), the
 * work in the daemon (runs, templates waiting for the planner, callbacks
 * waiting to be retried, driver operations in flight per site), leases held and
 * take-overs (several daemons on PostgreSQL), driver
 * operations ended by driver, slot and outcome with their latency, and the
 * store's group commits (how many, their writes, their duration) and its readers
 * (threads, reads running and waiting, done and refused).
 */
#include <string.h>

#include "api/planner.h"
#include "engine/drivers.h"
#include "engine/engine.h"
#include "observe.h"
#include "store/commit.h"
#include "store/readers.h"

#define LOG "metrics"

static void deployments_by_status(const struct orc_observe *o, orc_api_text_t *t)
{
    int64_t counts[ORC_DEP__COUNT];

    orc_api_metrics_printf(t, "# HELP orchestrator_deployments Deployments (not deleted) by "
                              "status.\n# TYPE orchestrator_deployments gauge\n");
    if (orc_store_deployment_counts(o->store, counts) < 0) {
        orc_log(ORC_LOG_WARN, LOG, "deployments by status: %s", orc_store_errmsg(o->store));
        return; /* the series are left out rather than shown as zeros */
    }
    for (int st = 0; st < ORC_DEP__COUNT; st++)
        orc_api_metrics_printf(t, "orchestrator_deployments{status=\"%s\"} %lld\n",
                               orc_dep_status_name((orc_dep_status_t)st), (long long)counts[st]);
}

static void work_in_progress(const struct orc_observe *o, orc_api_text_t *t)
{
    orc_api_metrics_printf(
        t,
        "# HELP orchestrator_engine_runs Deployments the engine is working on now.\n"
        "# TYPE orchestrator_engine_runs gauge\norchestrator_engine_runs %zu\n"
        "# HELP orchestrator_planner_queue Templates waiting to be read and planned.\n"
        "# TYPE orchestrator_planner_queue gauge\norchestrator_planner_queue %u\n"
        "# HELP orchestrator_callbacks_pending Callback deliveries waiting for a retry.\n"
        "# TYPE orchestrator_callbacks_pending gauge\norchestrator_callbacks_pending %zu\n"
        "# HELP orchestrator_driver_operations_in_flight Driver operations started and not "
        "ended, by site.\n# TYPE orchestrator_driver_operations_in_flight gauge\n",
        o->engine ? orc_engine_active(o->engine) : 0,
        o->planner ? orc_planner_pending(o->planner) : 0,
        o->engine ? orc_engine_callbacks_pending(o->engine) : 0);
    for (const struct orc_drv_site *s = orc_drv_sites(o->reg); s != NULL; s = s->next)
        orc_api_metrics_printf(t,
                               "orchestrator_driver_operations_in_flight{site=\"%s\","
                               "driver=\"%s\"} %u\n",
                               s->conf.name, s->drv->vt.name, s->inflight);
}

static void leases(const struct orc_observe *o, orc_api_text_t *t)
{
    uint64_t takeovers;
    size_t held;
    bool on;

    if (o->engine == NULL)
        return;
    orc_engine_lease_stats(o->engine, &on, &held, &takeovers);
    if (!on)
        return; /* one daemon: no leases */
    orc_api_metrics_printf(t,
                           "# HELP orchestrator_leases_held Deployments this daemon held a lease "
                           "on at its last renewal.\n# TYPE orchestrator_leases_held gauge\n"
                           "orchestrator_leases_held %zu\n"
                           "# HELP orchestrator_takeovers_total Deployments taken over from a "
                           "daemon that stopped renewing.\n"
                           "# TYPE orchestrator_takeovers_total counter\n"
                           "orchestrator_takeovers_total %llu\n",
                           held, (unsigned long long)takeovers);
}

static void operation_counts(const struct orc_observe *o, orc_api_text_t *t)
{
    orc_api_metrics_printf(t, "# HELP orchestrator_driver_operations_total Driver operations "
                              "ended, by driver, slot and outcome (ok, error, canceled).\n"
                              "# TYPE orchestrator_driver_operations_total counter\n");
    for (const struct orc_op_stats *st = orc_drv_op_stats(o->reg); st != NULL; st = st->next)
        for (int i = 0; i < ORC_OP__OUTCOMES; i++)
            orc_api_metrics_printf(t,
                                   "orchestrator_driver_operations_total{driver=\"%s\","
                                   "slot=\"%s\",outcome=\"%s\"} %llu\n",
                                   st->driver, st->slot, orc_op_outcome_names[i],
                                   (unsigned long long)st->count[i]);
}

static void operation_latency(const struct orc_observe *o, orc_api_text_t *t)
{
    const char *name = "orchestrator_driver_operation_duration_seconds";

    orc_api_metrics_printf(t,
                           "# HELP %s Time from a driver call to its callback, by driver and "
                           "slot.\n# TYPE %s histogram\n",
                           name, name);
    for (const struct orc_op_stats *st = orc_drv_op_stats(o->reg); st != NULL; st = st->next) {
        uint64_t cumulative = 0;
        for (size_t i = 0; i < ORC_OP_BUCKETS; i++) {
            cumulative += st->buckets[i];
            orc_api_metrics_printf(t, "%s_bucket{driver=\"%s\",slot=\"%s\",le=\"%s\"} %llu\n",
                                   name, st->driver, st->slot, orc_op_bucket_labels[i],
                                   (unsigned long long)cumulative);
        }
        orc_api_metrics_printf(t,
                               "%s_bucket{driver=\"%s\",slot=\"%s\",le=\"+Inf\"} %llu\n"
                               "%s_sum{driver=\"%s\",slot=\"%s\"} %.6f\n"
                               "%s_count{driver=\"%s\",slot=\"%s\"} %llu\n",
                               name, st->driver, st->slot, (unsigned long long)st->observations,
                               name, st->driver, st->slot, st->sum_seconds, name, st->driver,
                               st->slot, (unsigned long long)st->observations);
    }
}

static void store_commits(const struct orc_observe *o, orc_api_text_t *t)
{
    const char *name = "orchestrator_store_commit_duration_seconds";
    struct orc_commit_stats cs;
    uint64_t cumulative = 0;

    if (o->commit == NULL)
        return;
    orc_commit_stats(o->commit, &cs);
    orc_api_metrics_printf(
        t,
        "# HELP orchestrator_store_writes_total Store writes, made durable in groups.\n"
        "# TYPE orchestrator_store_writes_total counter\norchestrator_store_writes_total %llu\n"
        "# HELP orchestrator_store_commits_failed_total Groups whose commit failed.\n"
        "# TYPE orchestrator_store_commits_failed_total counter\n"
        "orchestrator_store_commits_failed_total %llu\n"
        "# HELP orchestrator_store_commits_sent_total Groups committed without the loop waiting "
        "for the answer (PostgreSQL).\n"
        "# TYPE orchestrator_store_commits_sent_total counter\n"
        "orchestrator_store_commits_sent_total %llu\n"
        "# HELP %s Time to make one group of writes durable (one transaction).\n"
        "# TYPE %s histogram\n",
        (unsigned long long)cs.writes, (unsigned long long)cs.failed_groups,
        (unsigned long long)cs.sent_groups, name, name);
    for (size_t i = 0; i < ORC_COMMIT_BUCKETS; i++) {
        cumulative += cs.commit_buckets[i];
        orc_api_metrics_printf(t, "%s_bucket{le=\"%s\"} %llu\n", name,
                               orc_commit_bucket_labels[i], (unsigned long long)cumulative);
    }
    orc_api_metrics_printf(t, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                           (unsigned long long)cs.groups, name, cs.commit_seconds_total, name,
                           (unsigned long long)cs.groups);
}

static void store_readers(const struct orc_observe *o, orc_api_text_t *t)
{
    struct orc_readers_stats rs;

    if (o->readers == NULL)
        return;
    orc_readers_stats(o->readers, &rs);
    orc_api_metrics_printf(
        t,
        "# HELP orchestrator_store_readers Threads reading the store off the loop.\n"
        "# TYPE orchestrator_store_readers gauge\norchestrator_store_readers %u\n"
        "# HELP orchestrator_store_reads_running Reads a reader thread runs now.\n"
        "# TYPE orchestrator_store_reads_running gauge\norchestrator_store_reads_running %u\n"
        "# HELP orchestrator_store_reads_waiting Reads queued for a reader thread.\n"
        "# TYPE orchestrator_store_reads_waiting gauge\norchestrator_store_reads_waiting %u\n"
        "# HELP orchestrator_store_reads_total Reads the reader threads finished.\n"
        "# TYPE orchestrator_store_reads_total counter\norchestrator_store_reads_total %llu\n"
        "# HELP orchestrator_store_reads_refused_total Reads refused (503): the queue was "
        "full.\n"
        "# TYPE orchestrator_store_reads_refused_total counter\n"
        "orchestrator_store_reads_refused_total %llu\n",
        rs.threads, rs.running, rs.waiting, (unsigned long long)rs.done,
        (unsigned long long)rs.refused);
}

void orc_observe_metrics(void *data, orc_api_text_t *out)
{
    const struct orc_observe *o = data;

    if (o->store != NULL)
        deployments_by_status(o, out);
    work_in_progress(o, out);
    leases(o, out);
    operation_counts(o, out);
    operation_latency(o, out);
    store_commits(o, out);
    store_readers(o, out);
}
