/*
 * Reporting to the orchestrator's agent endpoint (report.c): reports are
 * queued, sent in batches over libcurl on the agent's loop, and retried with
 * backoff while the orchestrator is unreachable (offline tolerant: nothing is
 * lost but log chunks beyond the queue's bound, oldest first). A heartbeat
 * carries the latest status summary.
 *
 * Wire format (docs/agent.md): POST URL/agent/v1/deployments/ID/reports
 *   Authorization: Bearer TOKEN
 *   {"agent": {"version", "hostname", "pid", "boot": start time ms},
 *    "resource": RID, "host_resource": HID,
 *    "reports": [{"seq": 1, "type": "inventory"|"health"|"workload"|"log"|"heartbeat",
 *                 "time_ms", "data": {...}}, ...]}
 * -> 200 {"accepted": last seq}
 */
#ifndef GR_REPORT_H
#define GR_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

struct agent_report_conf {
    const char *url;           /* the orchestrator's base URL, e.g. http://127.0.0.1:8080 */
    const char *token;         /* the deployment's agent token */
    const char *deployment;    /* deployment uuid */
    const char *resource;      /* the uuid of the resource whose workload this agent runs */
    const char *host_resource; /* its compute node's resource uuid (NULL: resource) */
    const char *ca_file;       /* CA bundle for an https URL (NULL: the system's) */
    uint32_t heartbeat_ms;     /* 0: 15000 */
    uint32_t max_queue;        /* reports kept while offline; 0: 4096 */
};

struct agent_reporter;

/* The configuration from the environment: ORC_AGENT_URL, ORC_AGENT_TOKEN,
 * ORC_AGENT_DEPLOYMENT, ORC_AGENT_RESOURCE, ORC_AGENT_HOST_RESOURCE,
 * ORC_AGENT_CA_FILE, ORC_AGENT_HEARTBEAT_MS. False when ORC_AGENT_URL is unset (no reporting). */
bool agent_report_conf_from_env(struct agent_report_conf *conf);

/* The environment variables above, which the launcher keeps from workloads. */
bool agent_report_env_name(const char *name_eq_value);

int agent_reporter_new(uv_loop_t *loop, const struct agent_report_conf *conf,
                       struct agent_reporter **out);

/* Queues one report (data is stolen; NULL is {}); sent soon. */
void agent_report(struct agent_reporter *r, const char *type, json_t *data);

/* The summary that heartbeats carry from now on (stolen). */
void agent_report_set_status(struct agent_reporter *r, json_t *status);

/* Stops heartbeats, tries to send what is queued for at most timeout_ms,
 * then frees r and runs done (once, later, on the loop). */
void agent_reporter_close(struct agent_reporter *r, uint32_t timeout_ms, void (*done)(void *ud),
                          void *ud);

/* Counters for tests and the info line: sent and acknowledged batches,
 * failed attempts, reports queued now, dropped log chunks. */
struct agent_report_stats {
    uint64_t batches_ok, attempts_failed, dropped;
    uint32_t queued;
};
void agent_report_stats(const struct agent_reporter *r, struct agent_report_stats *out);

#endif
