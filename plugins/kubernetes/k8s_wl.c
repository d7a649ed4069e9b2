/*
 * Workloads on a kubernetes site (k8s.h): a service is a Deployment (one
 * replica per node instance) and, when it has a port, a Service; a job is
 * a Job with backoffLimit 0. Both run gpu-agent as the supervisor with the
 * node's resources. The driver follows the pods until a service is ready
 * (its endpoint) or a job has ended (its exit code and the end of its log),
 * and fails fast with the reason when a pod cannot pull its image, cannot
 * start, crash-loops before it was ever ready, or stays Unschedulable past
 * the site's pending_timeout_ms. A 409 on create is our own object of an
 * earlier try (deterministic names): it is adopted and followed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "k8s.h"

#define K8S_TAIL_BYTES 65536u

/* ---- the request, copied ---- */

static int copy_exec(struct kop *o, const struct orc_exec_req *req)
{
    const struct orc_host_api *host = o->k->host;
    size_t n = 0;

    while (req->argv && req->argv[n])
        n++;
    o->argv = host->calloc(n + 1, sizeof(*o->argv));
    o->env = host->calloc(req->nenv + 1, sizeof(*o->env));
    if (o->argv == NULL || o->env == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((o->argv[i] = cld_strdup(host, req->argv[i])) == NULL)
            return ORC_ENOMEM;
    for (size_t i = 0; i < req->nenv; i++) {
        o->env[i].key = cld_strdup(host, req->env[i].key);
        o->env[i].value = cld_strdup(host, req->env[i].value ? req->env[i].value : "");
        o->nenv = i + 1;
        if (o->env[i].key == NULL || o->env[i].value == NULL)
            return ORC_ENOMEM;
    }
    o->port = req->port;
    if (req->ready_path && (o->ready_path = cld_strdup(host, req->ready_path)) == NULL)
        return ORC_ENOMEM;
    return 0;
}

static void name_op(struct kop *o, const char *host, const char *workload)
{
    char dep[40];

    snprintf(o->name, sizeof(o->name), "%s", host);
    snprintf(o->wl, sizeof(o->wl), "%s", workload ? workload : "main");
    k8s_obj_name(host, o->wl, o->obj);
    k8s_deployment_of_name(host, dep);
    k8s_ns_of(o->k, dep, o->ns);
}

static char *pods_path(struct kop *o)
{
    char sel[200], enc[400];

    snprintf(sel, sizeof(sel), "%s=%s,%s=%s", K8S_LABEL_HOST, o->name, K8S_LABEL_WORKLOAD, o->wl);
    if (!cld_urlencode(sel, enc, sizeof(enc)))
        return NULL;
    return cld_printf(o->k->host, "/api/v1/namespaces/%s/pods?labelSelector=%s", o->ns, enc);
}

static void fail_oom(struct kop *o, int rc)
{
    kop_fail(o, rc, "%s", rc == ORC_ENOMEM ? "out of memory" : "cannot send a request");
}

/* ---- create, or adopt on 409 ---- */

struct create {
    const char *what, *prefix, *plural;
};
static const struct create c_job = {"job", "/apis/batch/v1", "jobs"};
static const struct create c_deploy = {"deployment", "/apis/apps/v1", "deployments"};
static const struct create c_service = {"service", "/api/v1", "services"};

static void created(struct kop *o, int status);

static int create(struct kop *o, const struct create *c, json_t *obj, kop_step then)
{
    char *path = cld_printf(o->k->host, "%s/namespaces/%s/%s", c->prefix, o->ns, c->plural);
    int rc;

    if (path == NULL || obj == NULL) {
        o->k->host->free(path);
        json_decref(obj);
        return ORC_ENOMEM;
    }
    o->then = then;
    o->keep = json_incref(json_object_get(obj, "kind")); /* what is being created */
    o->doc = json_pack("{ss ss ss}", "what", c->what, "prefix", c->prefix, "plural", c->plural);
    rc = kop_call_json(o, "POST", path, obj, created);
    o->k->host->free(path);
    return rc;
}

static void adopted(struct kop *o, int status)
{
    const char *what = cld_jstr(o->doc, "what", "object");

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "read the existing object");
        return;
    }
    if (!k8s_is_ours(o->call.json, o->name)) {
        kop_fail(o, ORC_ECONFLICT, "%s %s/%s exists and is not this node's", what, o->ns, o->obj);
        return;
    }
    if (cld_jpath(o->call.json, "metadata.deletionTimestamp")) {
        kop_fail(o, ORC_ECONFLICT, "%s %s/%s is being deleted; try again once it is gone", what,
                 o->ns, o->obj);
        return;
    }
    o->then(o, 0);
}

static void created(struct kop *o, int status)
{
    char *path;
    int rc;

    if (status == 0 && o->call.code == 201) {
        o->then(o, 0);
        return;
    }
    if (status == 0 && o->call.code == 409) {
        path = cld_printf(o->k->host, "%s/namespaces/%s/%s/%s", cld_jstr(o->doc, "prefix", ""),
                          o->ns, cld_jstr(o->doc, "plural", ""), o->obj);
        rc = path ? kop_call(o, "GET", path, NULL, adopted) : ORC_ENOMEM;
        o->k->host->free(path);
        if (rc < 0)
            fail_oom(o, rc);
        return;
    }
    kop_fail_call(o, status, cld_jstr(o->doc, "what", "create"));
}

/* ---- following pods ---- */

static int poll_later(struct kop *o, kop_step step)
{
    return kop_wait(o, o->k->c.poll_ms, step);
}

/* true when the op ended (failed) because of what the pods say */
static bool pods_broken(struct kop *o, const struct k8s_pods_view *v)
{
    int64_t waited = cld_now_ms() - o->started_ms;

    if (v->fatal[0]) {
        kop_fail(o, ORC_EDRIVER, "%s", v->fatal);
        return true;
    }
    if (v->pending[0] && waited > (int64_t)o->k->c.pending_timeout_ms) {
        kop_fail(o, ORC_DRV_ENOCAPACITY, "%s (pending for %" PRId64 " s)", v->pending,
                 waited / 1000);
        return true;
    }
    return false;
}

/* ---- start_workload: a Deployment and a Service ---- */

static void svc_watch(struct kop *o, int status);

static void svc_endpoint(struct kop *o, int status)
{
    const struct k8s *k = o->k;
    const json_t *svc = o->call.json;
    const char *pod_ip = cld_jstr(o->keep, "pod_ip", NULL);
    const char *host_ip = cld_jstr(o->keep, "host_ip", NULL);
    char url[320];
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET service");
        return;
    }
    url[0] = '\0';
    if (k->c.service_type == K8S_SVC_LOAD_BALANCER) {
        const json_t *ing = json_array_get(cld_jpath(svc, "status.loadBalancer.ingress"), 0);
        const char *a = cld_jstr(ing, "ip", cld_jstr(ing, "hostname", NULL));
        if (a == NULL) { /* the load balancer has no address yet */
            rc = poll_later(o, svc_watch);
            if (rc < 0)
                fail_oom(o, rc);
            return;
        }
        snprintf(url, sizeof(url), "http://%s:%u", a, o->port);
        k->host->op_attr_set(o->op, ORC_ATTR_PUBLIC_ADDRESS, a);
    } else if (k->c.service_type == K8S_SVC_NODE_PORT) {
        json_int_t np = json_integer_value(
            json_object_get(json_array_get(cld_jpath(svc, "spec.ports"), 0), "nodePort"));
        snprintf(url, sizeof(url), "http://%s:%lld", host_ip ? host_ip : "", (long long)np);
    } else {
        snprintf(url, sizeof(url), "http://%s:%u", cld_jstr(cld_jpath(svc, "spec"), "clusterIP", ""),
                 o->port);
    }
    if (k->c.endpoint == K8S_EP_POD && pod_ip)
        snprintf(url, sizeof(url), "http://%s:%u", pod_ip, o->port);
    k->host->op_attr_set(o->op, ORC_ATTR_ENDPOINT, url);
    o->op->exit_status = -1;
    kop_done(o, 0);
}

static void svc_pods(struct kop *o, int status)
{
    struct k8s_pods_view v;
    char *path;
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list pods");
        return;
    }
    k8s_pods_view(o->call.json, true, &v);
    if (v.ready == NULL) {
        if (!pods_broken(o, &v) && (rc = poll_later(o, svc_watch)) < 0)
            fail_oom(o, rc);
        return;
    }
    json_decref(o->keep);
    o->keep = json_pack("{ss? ss? ss}", "pod_ip", k8s_pod_ip(v.ready), "host_ip",
                        k8s_host_ip(v.ready), "pod", k8s_pod_name(v.ready));
    if (k8s_pod_ip(v.ready))
        o->k->host->op_attr_set(o->op, ORC_ATTR_PRIVATE_ADDRESS, k8s_pod_ip(v.ready));
    o->k->host->op_attr_set(o->op, ORC_ATTR_PROVIDER_ID, k8s_pod_name(v.ready));
    if (o->port == 0) {
        o->op->exit_status = -1;
        kop_done(o, 0);
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/services/%s", o->ns, o->obj);
    rc = path ? kop_call(o, "GET", path, NULL, svc_endpoint) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        fail_oom(o, rc);
}

static void svc_watch(struct kop *o, int status)
{
    char *path = pods_path(o);
    int rc;

    (void)status;
    rc = path ? kop_call(o, "GET", path, NULL, svc_pods) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        fail_oom(o, rc);
}

static void svc_created(struct kop *o, int status)
{
    (void)status;
    json_decref(o->doc);
    json_decref(o->keep);
    o->doc = o->keep = NULL;
    svc_watch(o, 0);
}

static void deploy_created(struct kop *o, int status)
{
    int rc;

    (void)status;
    json_decref(o->doc);
    json_decref(o->keep);
    o->doc = o->keep = NULL;
    if (o->port == 0) {
        svc_watch(o, 0);
        return;
    }
    rc = create(o, &c_service, k8s_service_obj(o->k, o), svc_created);
    if (rc < 0)
        fail_oom(o, rc);
}

static void start_node_loaded(struct kop *o, int status)
{
    int rc;

    (void)status;
    o->started_ms = cld_now_ms();
    rc = create(o, &c_deploy, k8s_deployment_obj(o->k, o), deploy_created);
    if (rc < 0)
        fail_oom(o, rc);
}

static int begin_workload(void *state, orc_op_t *op, const struct orc_exec_req *req,
                          enum kop_kind kind, kop_step loaded)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, kind);
    int rc;

    if (o == NULL)
        return ORC_ENOMEM;
    name_op(o, req->name, req->workload);
    rc = copy_exec(o, req);
    if (rc == 0)
        rc = k8s_load_node(o, loaded);
    return kop_started(o, rc);
}

int k8s_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return begin_workload(state, op, req, KOP_START, start_node_loaded);
}

/* ---- exec: a Job ---- */

static void job_poll(struct kop *o, int status);

static void job_log(struct kop *o, int status)
{
    /* the end of its log is the job's output; a log that cannot be read is no failure */
    if (status == 0 && o->call.code == 200 && o->call.body) {
        size_t n = o->call.body_len, from = n > K8S_TAIL_BYTES ? n - K8S_TAIL_BYTES : 0;
        o->k->host->op_output_set(o->op, o->call.body + from, n - from);
    }
    kop_done(o, 0);
}

static void job_finish(struct kop *o, int exit_code)
{
    const char *pod = cld_jstr(o->keep, "pod", NULL);
    char *path;
    int rc;

    o->op->exit_status = exit_code;
    if (pod == NULL) {
        kop_done(o, 0);
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/pods/%s/log?container=main", o->ns, pod);
    rc = path ? kop_call(o, "GET", path, NULL, job_log) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_done(o, 0);
}

static void job_pods(struct kop *o, int status)
{
    struct k8s_pods_view v;
    const char *ended = cld_jstr(o->keep, "ended", NULL);
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list pods");
        return;
    }
    k8s_pods_view(o->call.json, false, &v);
    if (v.newest)
        json_object_set_new(o->keep, "pod", json_string(k8s_pod_name(v.newest)));
    if (ended && strcmp(ended, "Complete") == 0) {
        job_finish(o, 0);
        return;
    }
    if (ended) { /* Failed: the container's exit code, else the Job's reason */
        if (v.exit_code >= 0) {
            job_finish(o, v.exit_code);
            return;
        }
        kop_fail(o, ORC_EDRIVER, "job %s/%s failed: %s: %s", o->ns, o->obj,
                 cld_jstr(o->keep, "reason", "Failed"), cld_jstr(o->keep, "message", ""));
        return;
    }
    if (!pods_broken(o, &v) && (rc = poll_later(o, job_poll)) < 0)
        fail_oom(o, rc);
}

static void job_read(struct kop *o, int status)
{
    const json_t *conds, *c;
    char *path;
    size_t i;
    int rc;

    if (status == 0 && o->call.code == 404) {
        kop_fail(o, ORC_EDRIVER, "job %s/%s was deleted while it ran", o->ns, o->obj);
        return;
    }
    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET job");
        return;
    }
    json_decref(o->keep);
    o->keep = json_object();
    conds = cld_jpath(o->call.json, "status.conditions");
    json_array_foreach(conds, i, c) {
        const char *type = cld_jstr(c, "type", "");
        if (strcmp(cld_jstr(c, "status", ""), "True") == 0 &&
            (strcmp(type, "Complete") == 0 || strcmp(type, "Failed") == 0)) {
            json_object_set_new(o->keep, "ended", json_string(type));
            json_object_set_new(o->keep, "reason", json_string(cld_jstr(c, "reason", type)));
            json_object_set_new(o->keep, "message", json_string(cld_jstr(c, "message", "")));
            break;
        }
    }
    path = pods_path(o);
    rc = path ? kop_call(o, "GET", path, NULL, job_pods) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        fail_oom(o, rc);
}

static void job_poll(struct kop *o, int status)
{
    char *path = cld_printf(o->k->host, "/apis/batch/v1/namespaces/%s/jobs/%s", o->ns, o->obj);
    int rc;

    (void)status;
    rc = path ? kop_call(o, "GET", path, NULL, job_read) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        fail_oom(o, rc);
}

static void job_created(struct kop *o, int status)
{
    (void)status;
    json_decref(o->doc);
    json_decref(o->keep);
    o->doc = o->keep = NULL;
    job_poll(o, 0);
}

static void exec_node_loaded(struct kop *o, int status)
{
    int rc;

    (void)status;
    o->started_ms = cld_now_ms();
    rc = create(o, &c_job, k8s_job_obj(o->k, o), job_created);
    if (rc < 0)
        fail_oom(o, rc);
}

int k8s_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return begin_workload(state, op, req, KOP_EXEC, exec_node_loaded);
}

/* ---- stop_workload ---- */

static void stopped(struct kop *o, int status)
{
    (void)status;
    o->op->exists = o->existed;
    kop_done(o, 0);
}

int k8s_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_STOP_WL);
    char sel[200];

    if (o == NULL)
        return ORC_ENOMEM;
    name_op(o, name, workload);
    snprintf(sel, sizeof(sel), "%s=%s,%s=%s", K8S_LABEL_HOST, o->name, K8S_LABEL_WORKLOAD, o->wl);
    return kop_started(o, k8s_delete_selected(o, sel, stopped));
}

/* ---- logs ---- */

static void logs_read(struct kop *o, int status)
{
    uint64_t total, from, n;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "read the pod's log");
        return;
    }
    total = o->call.body_len;
    if (o->log_offset == ORC_LOGS_TAIL)
        from = total > o->log_max ? total - o->log_max : 0;
    else
        from = o->log_offset < total ? o->log_offset : total;
    n = total - from < o->log_max ? total - from : o->log_max;
    o->op->out_offset = from;
    o->op->out_total = total;
    o->k->host->op_output_set(o->op, o->call.body ? o->call.body + from : "", (size_t)n);
    kop_done(o, 0);
}

static void logs_pods(struct kop *o, int status)
{
    struct k8s_pods_view v;
    char *path;
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list pods");
        return;
    }
    k8s_pods_view(o->call.json, false, &v);
    if (v.newest == NULL) {
        kop_fail(o, ORC_ENOTFOUND, "workload %s of %s has no pod", o->wl, o->name);
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/pods/%s/log?container=main", o->ns,
                      k8s_pod_name(v.newest));
    rc = path ? kop_call(o, "GET", path, NULL, logs_read) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        fail_oom(o, rc);
}

int k8s_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_LOGS);
    char *path;
    int rc;

    if (o == NULL)
        return ORC_ENOMEM;
    name_op(o, req->name, req->workload);
    o->log_offset = req->offset;
    o->log_max = req->max_bytes ? req->max_bytes : 65536;
    path = pods_path(o);
    rc = path ? kop_call(o, "GET", path, NULL, logs_pods) : ORC_ENOMEM;
    k->host->free(path);
    return kop_started(o, rc);
}
