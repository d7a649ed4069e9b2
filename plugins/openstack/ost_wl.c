/*
 * Workloads on openstack nodes (ost.h). Nothing runs commands in a server once
 * it is created, so the server's user data starts its workloads under gpu-agent
 * (ORC_DRV_CAP_AGENT_BOOT, ost_userdata.c) and start_workload (a service) and exec
 * (a job) follow them. Each round reads what the workload's agent last reported
 * to the daemon (host->agent_state); every few rounds it also reads the server,
 * whose ERROR or disappearance ends the workload with what Nova says. A service
 * is up once its agent says `ready` (or `running` when it has no port); a job has
 * ended once it is `exited` or `failed`. An agent that never reports, or falls
 * silent, within agent_timeout_ms fails the workload, and so does a service that is
 * not ready that long after its server became ACTIVE.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ost.h"

static void wl_round(struct oop *o, int status);

static const char *env_of(const struct orc_exec_req *req, const char *key)
{
    for (size_t i = 0; i < req->nenv; i++)
        if (req->env[i].key && strcmp(req->env[i].key, key) == 0)
            return req->env[i].value;
    return NULL;
}

static void next_round(struct oop *o)
{
    if (oop_wait(o, o->s->c.poll_ms, wl_round) < 0)
        oop_fail(o, ORC_ENOMEM, "out of memory");
}

/* ---- the answer ---- */

static void wl_up(struct oop *o)
{
    struct ost *s = o->s;
    const char *pub = ost_address(o, "floating"), *fixed = ost_address(o, "fixed");
    const char *addr = pub[0] ? pub : fixed;
    char url[128];
    int rc = 0;

    if (o->nports && addr[0]) {
        snprintf(url, sizeof(url), strchr(addr, ':') ? "http://[%s]:%u" : "http://%s:%u", addr,
                 o->ports[0]);
        rc |= s->host->op_attr_set(o->op, ORC_ATTR_ENDPOINT, url);
    }
    if (fixed[0])
        rc |= s->host->op_attr_set(o->op, ORC_ATTR_PRIVATE_ADDRESS, fixed);
    if (pub[0])
        rc |= s->host->op_attr_set(o->op, ORC_ATTR_PUBLIC_ADDRESS, pub);
    rc |= s->host->op_attr_set(o->op, ORC_ATTR_PROVIDER_ID, cld_jstr(o->server, "id", ""));
    if (rc < 0) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    o->op->exit_status = -1;
    orc_host_log_resource(s->host, o->name, ORC_DRV_LOG_INFO,
                          "openstack: %s: workload %s is up%s%s", o->name, o->workload,
                          o->nports ? " at " : "", o->nports ? url : "");
    oop_done(o, 0);
}

static void wl_ended(struct oop *o, int exit_status)
{
    o->op->exit_status = exit_status;
    orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_INFO,
                          "openstack: %s: job %s ended with status %d", o->name, o->workload,
                          exit_status);
    oop_done(o, 0);
}

/* ---- what the agent said ---- */

/* true when the state ends the wait (answered or failed) */
static bool wl_state(struct oop *o, const char *state, const json_t *wl)
{
    const json_t *exit = json_object_get(wl, "exit_status");
    json_int_t restarts = json_integer_value(json_object_get(wl, "restarts"));

    if (o->job) {
        if (strcmp(state, "exited") == 0 || (strcmp(state, "failed") == 0 && json_is_integer(exit))) {
            wl_ended(o, (int)json_integer_value(exit));
            return true;
        }
        if (strcmp(state, "failed") == 0) {
            oop_fail(o, ORC_EDRIVER, "%s: job %s could not run (gpu-agent: failed; its log is in "
                     "the workload's logs)", o->name, o->workload);
            return true;
        }
        return false;
    }
    if (strcmp(state, "ready") == 0 || (strcmp(state, "running") == 0 && o->nports == 0)) {
        wl_up(o);
        return true;
    }
    if (strcmp(state, "failed") == 0 || strcmp(state, "exited") == 0 ||
        strcmp(state, "stopped") == 0) {
        oop_fail(o, ORC_EDRIVER, "%s: service %s %s after %lld restarts (gpu-agent; its log is in "
                 "the workload's logs)", o->name, o->workload, state, (long long)restarts);
        return true;
    }
    return false;
}

/* true when the agent's silence, or a service that never gets ready, ends the wait */
static bool wl_silent(struct oop *o, const char *state)
{
    int64_t now = cld_now_ms(), limit = o->s->c.agent_timeout_ms;

    if (!o->job && o->heard_ms && o->active_ms && now - o->active_ms > limit) {
        oop_fail(o, ORC_EDRIVER, "%s: service %s not ready within %" PRId64 " s of the server "
                 "being ACTIVE (agent_timeout_ms; gpu-agent says %s)", o->name, o->workload,
                 limit / 1000, state ? state : "nothing of it");
        return true;
    }

    if (o->heard_ms == 0 && o->active_ms && now - o->active_ms > limit) {
        oop_fail(o, ORC_EDRIVER, "%s: gpu-agent never reported within %" PRId64 " s of the server "
                 "being ACTIVE (agent_timeout_ms): see the server's console log", o->name,
                 limit / 1000);
        return true;
    }
    if (o->heard_ms && now - o->heard_ms > limit) {
        oop_fail(o, ORC_EDRIVER, "%s: gpu-agent of %s silent for %" PRId64 " s (agent_timeout_ms)",
                 o->name, o->workload, (now - o->heard_ms) / 1000);
        return true;
    }
    return false;
}

static void wl_agent(struct oop *o)
{
    struct ost *s = o->s;
    char *text = NULL;
    json_t *st = NULL;
    const json_t *wl = NULL;
    const char *state = NULL;
    int rc = s->host->agent_state(s->host, o->deployment, o->resource, &text);

    if (rc == 0 && text) {
        json_error_t jerr;
        st = json_loads(text, 0, &jerr);
        s->host->free(text);
        wl = json_object_get(json_object_get(st, "workloads"), o->workload);
        state = cld_jstr(wl, "state", NULL);
        json_int_t at = json_integer_value(json_object_get(st, "last_report_ms"));
        if (at && at != o->report_ms) {
            o->report_ms = at;
            o->heard_ms = cld_now_ms();
        }
    } else if (rc != ORC_ENOTFOUND) {
        orc_host_log_resource(s->host, o->name, ORC_DRV_LOG_WARN,
                              "openstack: %s: the agent's reports: %s", o->name, orc_strerror(rc));
    }
    if (state && wl_state(o, state, wl)) {
        json_decref(st);
        return;
    }
    if (!wl_silent(o, state))
        next_round(o);
    json_decref(st);
}

/* ---- the server ---- */

static void wl_listed(struct oop *o, int status)
{
    struct ost *s = o->s;
    json_t *ours;
    int st;

    if (status < 0 || o->call.code != 200) { /* the API is out of reach: the agent still says */
        char msg[160];
        orc_host_log_resource(s->host, o->name, ORC_DRV_LOG_DEBUG,
                              "openstack: %s: reading the server: %s", o->name,
                              status < 0 ? o->call.error : oop_api_msg(o, msg, sizeof(msg)));
        wl_agent(o);
        return;
    }
    ours = ost_our_servers(o);
    if (ours == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    if (json_array_size(ours) == 0) {
        json_decref(ours);
        oop_fail(o, ORC_EDRIVER, "server %s is gone: its workload %s cannot run", o->name,
                 o->workload);
        return;
    }
    json_decref(o->server);
    o->server = json_incref(json_array_get(ours, 0));
    json_decref(ours);
    st = ost_res_state(o->server);
    if (st == ORC_DRV_RES_FAILED) {
        const char *msg = cld_jstr(json_object_get(o->server, "fault"), "message", "no fault message");
        oop_fail(o, ORC_EDRIVER, "server %s: ERROR: %s (its workload %s ended)", o->name, msg,
                 o->workload);
        return;
    }
    if (st == ORC_DRV_RES_DELETING) {
        oop_fail(o, ORC_EDRIVER, "server %s is being deleted: its workload %s ended", o->name,
                 o->workload);
        return;
    }
    if (st == ORC_DRV_RES_READY && o->active_ms == 0)
        o->active_ms = cld_now_ms();
    wl_agent(o);
}

static void wl_round(struct oop *o, int status)
{
    int64_t now = cld_now_ms();
    int rc;

    (void)status;
    if (o->server != NULL && now < o->phase_deadline_ms) {
        wl_agent(o);
        return;
    }
    /* the server is read again after a wait that grows up to poll_max_ms */
    o->phase_deadline_ms = now + o->wait_ms;
    o->wait_ms = o->wait_ms * 2 > o->s->c.poll_max_ms ? o->s->c.poll_max_ms : o->wait_ms * 2;
    rc = ost_list_servers(o, wl_listed);
    if (rc < 0)
        wl_listed(o, rc);
}

/* ---- start_workload and exec ---- */

static int wl_start(struct ost *s, orc_op_t *op, const struct orc_exec_req *req, bool job)
{
    const char *res = env_of(req, "ORC_AGENT_RESOURCE");
    const char *dep = env_of(req, "ORC_AGENT_DEPLOYMENT");
    struct oop *o;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "openstack: the site is closing");
    if (!ost_name_ok(req->name))
        return orc_op_failf(op, ORC_EINVAL, "openstack: bad resource name '%.80s'",
                            req->name ? req->name : "(null)");
    if (s->host->version < 4 || s->host->agent_state == NULL)
        return orc_op_failf(op, ORC_ENOTSUP, "openstack: workloads need a daemon that keeps its "
                            "agents' reports (host API 4)");
    if (res == NULL || dep == NULL)
        return orc_op_failf(op, ORC_ENOTSUP, "openstack: workload %s on %s has no agent endpoint "
                            "(the daemon's agent_url): it cannot be followed",
                            req->workload ? req->workload : "main", req->name);
    o = oop_new(s, op, OOP_WORKLOAD);
    if (o == NULL)
        return ORC_ENOMEM;
    ost_copy(o->name, sizeof(o->name), req->name);
    ost_copy(o->workload, sizeof(o->workload), req->workload ? req->workload : "main");
    ost_copy(o->resource, sizeof(o->resource), res);
    ost_copy(o->deployment, sizeof(o->deployment), dep);
    o->job = job;
    if (req->port) {
        o->ports[0] = req->port;
        o->nports = 1;
    }
    o->wait_ms = s->c.poll_ms;
    return oop_started(o, oop_wait(o, 0, wl_round));
}

int ost_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return wl_start(state, op, req, false);
}

int ost_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return wl_start(state, op, req, true);
}
