/*
 * Compute nodes on a kubernetes site (k8s.h): provision checks that some node
 * of the cluster can ever hold the request (fail fast: no GPU node of that
 * model with enough allocatable GPUs, CPUs, memory), makes sure the namespace
 * exists, and creates the node's ConfigMap (a 409 is ours: adopted);
 * deprovision deletes every object of the node (foreground propagation) and
 * waits until the API lists none of them, nor their pods; status reads the
 * ConfigMap; inventory sums the nodes' allocatable GPUs per model minus what
 * running pods request.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "k8s.h"

/* ---- object kinds, as the API paths say them ---- */

struct kind {
    const char *what;   /* for messages */
    const char *prefix; /* "/apis/batch/v1" */
    const char *plural; /* "jobs" */
};

static const struct kind kinds[] = {
    {"job", "/apis/batch/v1", "jobs"},
    {"deployment", "/apis/apps/v1", "deployments"},
    {"service", "/api/v1", "services"},
    {"pod", "/api/v1", "pods"}, /* verify only: deleting their owners deletes them */
};
#define NKINDS_DELETE 3
#define NKINDS_VERIFY 4

static char *list_path(struct kop *o, const struct kind *kd)
{
    char sel[512];

    if (!cld_urlencode(o->selector, sel, sizeof(sel)))
        return NULL;
    return cld_printf(o->k->host, "%s/namespaces/%s/%s?labelSelector=%s", kd->prefix, o->ns,
                      kd->plural, sel);
}

/* ---- deleting what a selector matches, then verifying ---- */

static void del_step(struct kop *o, int status);
static void verify_step(struct kop *o, int status);

static void del_item_done(struct kop *o, int status)
{
    if (status < 0 || (o->call.code >= 300 && o->call.code != 404)) {
        kop_fail_call(o, status, "delete");
        return;
    }
    o->existed = true;
    o->idx++;
    del_step(o, 0);
}

static void del_listed(struct kop *o, int status)
{
    json_t *items;

    if (status < 0 || (o->call.code != 200 && o->call.code != 404)) {
        kop_fail_call(o, status, "list");
        return;
    }
    items = json_object_get(o->call.json, "items");
    json_decref(o->doc);
    o->doc = json_is_array(items) ? json_incref(items) : json_array();
    o->idx = 0;
    if (o->doc == NULL) {
        kop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    del_step(o, 0);
}

/* o->phase: the kind at hand; o->doc: its items (NULL: not listed yet); o->idx: the next */
static void del_step(struct kop *o, int status)
{
    const struct kind *kd;
    char *path;
    int rc;

    (void)status;
    while (o->phase < NKINDS_DELETE) {
        kd = &kinds[o->phase];
        if (o->doc == NULL) {
            path = list_path(o, kd);
            rc = path ? kop_call(o, "GET", path, NULL, del_listed) : ORC_ENOMEM;
            o->k->host->free(path);
            if (rc < 0)
                kop_fail(o, rc, "cannot list %ss", kd->what);
            return;
        }
        if (o->idx < json_array_size(o->doc)) {
            const json_t *item = json_array_get(o->doc, o->idx);
            const char *name = cld_jstr(cld_jpath(item, "metadata"), "name", "");
            if (cld_jpath(item, "metadata.deletionTimestamp")) { /* already going */
                o->idx++;
                continue;
            }
            path = cld_printf(o->k->host, "%s/namespaces/%s/%s/%s", kd->prefix, o->ns,
                              kd->plural, name);
            rc = path ? kop_call(o, "DELETE", path,
                                 "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\","
                                 "\"propagationPolicy\":\"Foreground\"}",
                                 del_item_done)
                      : ORC_ENOMEM;
            o->k->host->free(path);
            if (rc < 0)
                kop_fail(o, rc, "cannot delete %s %s", kd->what, name);
            return;
        }
        json_decref(o->doc);
        o->doc = NULL;
        o->phase++;
    }
    o->phase = 0;
    o->started_ms = cld_now_ms();
    verify_step(o, 0);
}

static void verify_listed(struct kop *o, int status)
{
    const json_t *items;
    int rc;

    if (status < 0 || (o->call.code != 200 && o->call.code != 404)) {
        kop_fail_call(o, status, "list");
        return;
    }
    items = json_object_get(o->call.json, "items");
    if (o->call.code == 200 && json_array_size(items) > 0) {
        if (cld_now_ms() - o->started_ms > (int64_t)o->k->c.delete_timeout_ms) {
            kop_fail(o, ORC_EDRIVER, "%zu %s(s) of %s still listed %u ms after the delete",
                     json_array_size(items), kinds[o->phase].what, o->selector,
                     o->k->c.delete_timeout_ms);
            return;
        }
        rc = kop_wait(o, o->k->c.poll_ms, verify_step); /* the same kind again */
        if (rc < 0)
            kop_fail(o, rc, "out of memory");
        return;
    }
    o->phase++;
    verify_step(o, 0);
}

static void verify_step(struct kop *o, int status)
{
    char *path;
    int rc;

    (void)status;
    if (o->phase >= NKINDS_VERIFY) {
        o->phase = 0;
        o->then(o, 0);
        return;
    }
    path = list_path(o, &kinds[o->phase]);
    rc = path ? kop_call(o, "GET", path, NULL, verify_listed) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot list %ss", kinds[o->phase].what);
}

int k8s_delete_selected(struct kop *o, const char *selector, kop_step next)
{
    snprintf(o->selector, sizeof(o->selector), "%s", selector);
    o->then = next;
    o->phase = 0;
    json_decref(o->doc);
    o->doc = NULL;
    return kop_wait(o, 0, del_step);
}

/* ---- the node's ConfigMap ---- */

static void on_node_loaded(struct kop *o, int status)
{
    const char *text;

    if (status == 0 && o->call.code == 404) {
        kop_fail(o, ORC_ENOTFOUND, "node %s is not provisioned on this site", o->name);
        return;
    }
    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET configmap");
        return;
    }
    text = cld_jstr(cld_jpath(o->call.json, "data"), "node", NULL);
    if (k8s_node_parse(text, &o->node) < 0) {
        kop_fail(o, ORC_EFORMAT, "configmap %s/%s does not describe a node", o->ns, o->name);
        return;
    }
    o->then(o, 0);
}

int k8s_load_node(struct kop *o, kop_step next)
{
    char *path = cld_printf(o->k->host, "/api/v1/namespaces/%s/configmaps/%s", o->ns, o->name);
    int rc;

    if (path == NULL)
        return ORC_ENOMEM;
    o->then = next;
    rc = kop_call(o, "GET", path, NULL, on_node_loaded);
    o->k->host->free(path);
    return rc;
}

/* ---- provision ---- */

static void set_node_attrs(struct kop *o, const json_t *cm)
{
    const struct orc_host_api *host = o->k->host;

    if (o->op == NULL)
        return;
    host->op_attr_set(o->op, ORC_ATTR_PROVIDER_ID, cld_jstr(cld_jpath(cm, "metadata"), "uid", ""));
    if (o->node.model[0])
        host->op_attr_set(o->op, ORC_ATTR_GPU_MODEL, o->node.model);
    host->op_attr_set(o->op, "namespace", o->ns);
}

static void prov_cm_adopted(struct kop *o, int status)
{
    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET configmap");
        return;
    }
    if (!k8s_is_ours(o->call.json, o->name)) {
        kop_fail(o, ORC_ECONFLICT, "configmap %s/%s exists and is not the orchestrator's", o->ns,
                 o->name);
        return;
    }
    o->op->exists = true;
    o->op->res_state = ORC_DRV_RES_READY;
    set_node_attrs(o, o->call.json);
    kop_done(o, 0);
}

static void prov_cm_created(struct kop *o, int status)
{
    char *path;
    int rc;

    if (status == 0 && o->call.code == 409) { /* ours from an earlier try, or someone's */
        path = cld_printf(o->k->host, "/api/v1/namespaces/%s/configmaps/%s", o->ns, o->name);
        rc = path ? kop_call(o, "GET", path, NULL, prov_cm_adopted) : ORC_ENOMEM;
        o->k->host->free(path);
        if (rc < 0)
            kop_fail(o, rc, "cannot read configmap %s", o->name);
        return;
    }
    if (status < 0 || o->call.code != 201) {
        kop_fail_call(o, status, "create configmap");
        return;
    }
    o->op->exists = true;
    o->op->res_state = ORC_DRV_RES_READY;
    set_node_attrs(o, o->call.json);
    kop_done(o, 0);
}

static void prov_ns_done(struct kop *o, int status)
{
    char *path;
    int rc;

    /* 201 made, 409 there already, 403 no right to create namespaces: the
     * configmap's create says whether it exists */
    if (status < 0 || (o->call.code != 201 && o->call.code != 409 && o->call.code != 403)) {
        kop_fail_call(o, status, "create namespace");
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/configmaps", o->ns);
    rc = path ? kop_call_json(o, "POST", path, k8s_configmap_obj(o->k, &o->node), prov_cm_created)
              : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot create configmap %s", o->name);
}

struct fit {
    uint32_t fitting, model_nodes;
    uint32_t max_gpus, max_cpus;
    uint64_t max_mem;
    char label[128];
};

static void fit_node(const struct k8s *k, const struct k8s_node *want, const json_t *node,
                     struct fit *f)
{
    const json_t *alloc = cld_jpath(node, "status.allocatable");
    const char *label = cld_jstr(cld_jpath(node, "metadata.labels"), k->c.gpu_label, "");
    uint64_t gpus = k8s_jcount(json_object_get(alloc, k->c.gpu_resource));
    uint64_t cpu = k8s_jcpu_milli(json_object_get(alloc, "cpu"));
    uint64_t mem = k8s_jbytes(json_object_get(alloc, "memory"));

    if (json_is_true(cld_jpath(node, "spec.unschedulable")))
        return;
    if (want->gpus && (gpus == 0 || (want->model[0] && !k8s_label_is_model(&k->c, label, want->model))))
        return;
    f->model_nodes++;
    if (gpus > f->max_gpus)
        f->max_gpus = (uint32_t)gpus;
    if (cpu / 1000 > f->max_cpus)
        f->max_cpus = (uint32_t)(cpu / 1000);
    if (mem > f->max_mem)
        f->max_mem = mem;
    if (gpus < want->gpus || cpu < (uint64_t)want->cpus * 1000 || mem < want->mem)
        return;
    if (f->fitting++ == 0 && want->gpus && want->model[0])
        snprintf(f->label, sizeof(f->label), "%s", label);
}

static void prov_nodes(struct kop *o, int status)
{
    struct k8s_node *n = &o->node;
    const json_t *items, *node;
    struct fit f = {0};
    size_t i;
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list nodes");
        return;
    }
    items = json_object_get(o->call.json, "items");
    json_array_foreach(items, i, node)
        fit_node(o->k, n, node, &f);
    if (f.fitting == 0) {
        if (n->gpus)
            kop_fail(o, ORC_DRV_ENOCAPACITY,
                     "no node of the cluster can ever hold %u x %s with %u CPUs and %" PRIu64
                     " MiB: %u node(s) of that model, at most %u allocatable %s, %u CPUs, %" PRIu64
                     " MiB per node",
                     n->gpus, n->model[0] ? n->model : "GPU of any model", n->cpus,
                     n->mem >> 20, f.model_nodes, f.max_gpus, o->k->c.gpu_resource, f.max_cpus,
                     f.max_mem >> 20);
        else
            kop_fail(o, ORC_DRV_ENOCAPACITY,
                     "no node of the cluster can ever hold %u CPUs and %" PRIu64
                     " MiB (largest: %u CPUs, %" PRIu64 " MiB)",
                     n->cpus, n->mem >> 20, f.max_cpus, f.max_mem >> 20);
        return;
    }
    snprintf(n->gpu_label, sizeof(n->gpu_label), "%s", f.label);
    rc = kop_call_json(o, "POST", "/api/v1/namespaces", k8s_namespace_obj(o->ns, n->deployment),
                       prov_ns_done);
    if (rc < 0)
        kop_fail(o, rc, "cannot create namespace %s", o->ns);
}

int k8s_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct k8s *k = state;
    struct kop *o;
    struct k8s_node *n;

    if (req->kind != ORC_KIND_COMPUTE)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "kubernetes: provisions compute nodes; services and jobs run on them");
    if (strlen(req->name) > K8S_NAME_MAX)
        return orc_op_failf(op, ORC_EINVAL, "kubernetes: name %s is longer than 63", req->name);
    o = kop_new(k, op, KOP_PROVISION);
    if (o == NULL)
        return ORC_ENOMEM;
    n = &o->node;
    snprintf(o->name, sizeof(o->name), "%s", req->name);
    snprintf(n->name, sizeof(n->name), "%s", req->name);
    snprintf(n->deployment, sizeof(n->deployment), "%s", req->deployment ? req->deployment : "");
    n->cpus = req->num_cpus;
    n->mem = req->mem_size;
    n->gpus = req->num_gpus;
    snprintf(n->model, sizeof(n->model), "%s", req->gpu_model ? req->gpu_model : "");
    snprintf(n->image, sizeof(n->image), "%s", req->image ? req->image : "");
    k8s_ns_of(k, n->deployment, o->ns);
    return kop_started(o, kop_call(o, "GET", "/api/v1/nodes", NULL, prov_nodes));
}

/* ---- status ---- */

static void status_loaded(struct kop *o, int status)
{
    if (status == 0 && o->call.code == 404) {
        o->op->exists = false;
        kop_done(o, 0);
        return;
    }
    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET configmap");
        return;
    }
    k8s_node_parse(cld_jstr(cld_jpath(o->call.json, "data"), "node", NULL), &o->node);
    o->op->exists = true;
    o->op->res_state = cld_jpath(o->call.json, "metadata.deletionTimestamp")
                           ? ORC_DRV_RES_DELETING
                           : ORC_DRV_RES_READY;
    set_node_attrs(o, o->call.json);
    kop_done(o, 0);
}

static void name_to_ns(struct k8s *k, struct kop *o, const char *name)
{
    char dep[40];

    snprintf(o->name, sizeof(o->name), "%s", name);
    k8s_deployment_of_name(name, dep);
    k8s_ns_of(k, dep, o->ns);
}

int k8s_status(void *state, orc_op_t *op, const char *name)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_STATUS);
    char *path;
    int rc;

    if (o == NULL)
        return ORC_ENOMEM;
    name_to_ns(k, o, name);
    path = cld_printf(k->host, "/api/v1/namespaces/%s/configmaps/%s", o->ns, o->name);
    rc = path ? kop_call(o, "GET", path, NULL, status_loaded) : ORC_ENOMEM;
    k->host->free(path);
    return kop_started(o, rc);
}

/* ---- deprovision ---- */

static void deprov_ns_gone(struct kop *o, int status);

static void deprov_ns_poll(struct kop *o, int status)
{
    char *path;
    int rc;

    (void)status;
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s", o->ns);
    rc = path ? kop_call(o, "GET", path, NULL, deprov_ns_gone) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot read namespace %s", o->ns);
}

static void deprov_ns_gone(struct kop *o, int status)
{
    int rc;

    if (status == 0 && (o->call.code == 404 || o->call.code == 403)) {
        o->op->exists = o->existed;
        kop_done(o, 0);
        return;
    }
    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "GET namespace");
        return;
    }
    if (cld_now_ms() - o->started_ms > (int64_t)o->k->c.delete_timeout_ms) {
        kop_fail(o, ORC_EDRIVER, "namespace %s still there %u ms after its delete", o->ns,
                 o->k->c.delete_timeout_ms);
        return;
    }
    rc = kop_wait(o, o->k->c.poll_ms, deprov_ns_poll);
    if (rc < 0)
        kop_fail(o, rc, "out of memory");
}

static void deprov_ns_deleted(struct kop *o, int status)
{
    if (status < 0 || (o->call.code >= 300 && o->call.code != 404 && o->call.code != 409)) {
        kop_fail_call(o, status, "delete namespace");
        return;
    }
    o->started_ms = cld_now_ms();
    deprov_ns_poll(o, 0);
}

static void deprov_ns_listed(struct kop *o, int status)
{
    char *path;
    int rc;

    if (status < 0 || (o->call.code != 200 && o->call.code != 404)) {
        kop_fail_call(o, status, "list configmaps");
        return;
    }
    if (o->call.code == 200 && json_array_size(json_object_get(o->call.json, "items")) > 0) {
        o->op->exists = o->existed; /* another node of the deployment still uses it */
        kop_done(o, 0);
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s", o->ns);
    rc = path ? kop_call(o, "DELETE", path, NULL, deprov_ns_deleted) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot delete namespace %s", o->ns);
}

static void deprov_cm_deleted(struct kop *o, int status)
{
    char sel[200], *path;
    int rc;

    if (status < 0 || (o->call.code >= 300 && o->call.code != 404)) {
        kop_fail_call(o, status, "delete configmap");
        return;
    }
    if (o->call.code < 300)
        o->existed = true;
    if (!o->k->c.per_deployment || !o->node.deployment[0]) {
        o->op->exists = o->existed;
        kop_done(o, 0);
        return;
    }
    /* the deployment's namespace goes with its last node */
    snprintf(sel, sizeof(sel), "%s=%s", K8S_LABEL_DEPLOYMENT, o->node.deployment);
    if (!cld_urlencode(sel, o->reason, sizeof(o->reason))) {
        kop_fail(o, ORC_ELIMIT, "selector too long");
        return;
    }
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/configmaps?labelSelector=%s", o->ns,
                      o->reason);
    rc = path ? kop_call(o, "GET", path, NULL, deprov_ns_listed) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot list configmaps");
}

static void deprov_objects_gone(struct kop *o, int status)
{
    char *path;
    int rc;

    (void)status;
    path = cld_printf(o->k->host, "/api/v1/namespaces/%s/configmaps/%s", o->ns, o->name);
    rc = path ? kop_call(o, "DELETE", path, NULL, deprov_cm_deleted) : ORC_ENOMEM;
    o->k->host->free(path);
    if (rc < 0)
        kop_fail(o, rc, "cannot delete configmap %s", o->name);
}

int k8s_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_DEPROVISION);
    char sel[160];

    if (o == NULL)
        return ORC_ENOMEM;
    name_to_ns(k, o, name);
    k8s_deployment_of_name(name, o->node.deployment);
    snprintf(sel, sizeof(sel), "%s=%s", K8S_LABEL_HOST, o->name);
    return kop_started(o, k8s_delete_selected(o, sel, deprov_objects_gone));
}

/* ---- inventory ---- */

struct pool_acc {
    char model[64];
    uint64_t total, used, max_per_node;
};

static void inv_count_pods(struct kop *o, json_t *nodes, const json_t *pods)
{
    const struct k8s *k = o->k;
    const json_t *pod, *c;
    size_t i, j;

    json_array_foreach(pods, i, pod) {
        const char *node = cld_jstr(cld_jpath(pod, "spec"), "nodeName", NULL);
        json_t *used;
        uint64_t gpus = 0, cpu = 0, mem = 0;

        if (node == NULL || (used = json_object_get(nodes, node)) == NULL)
            continue;
        json_array_foreach(cld_jpath(pod, "spec.containers"), j, c) {
            const json_t *req = cld_jpath(c, "resources.requests");
            const json_t *lim = cld_jpath(c, "resources.limits");
            const json_t *g = json_object_get(req, k->c.gpu_resource);
            gpus += k8s_jcount(g ? g : json_object_get(lim, k->c.gpu_resource));
            cpu += k8s_jcpu_milli(json_object_get(req ? req : lim, "cpu"));
            mem += k8s_jbytes(json_object_get(req ? req : lim, "memory"));
        }
        json_object_set_new(used, "gpus", json_integer(json_integer_value(json_object_get(used, "gpus")) + (json_int_t)gpus));
        json_object_set_new(used, "cpu", json_integer(json_integer_value(json_object_get(used, "cpu")) + (json_int_t)cpu));
        json_object_set_new(used, "mem", json_integer(json_integer_value(json_object_get(used, "mem")) + (json_int_t)mem));
    }
}

static void inv_report(struct kop *o, const json_t *node_list, json_t *used)
{
    const struct k8s *k = o->k;
    struct pool_acc acc[32];
    size_t nacc = 0, i;
    const json_t *node;
    struct orc_pool cpu = {.name = "cpu", .price_hour = -1};

    json_array_foreach(json_object_get(node_list, "items"), i, node) {
        const json_t *alloc = cld_jpath(node, "status.allocatable");
        const char *name = cld_jstr(cld_jpath(node, "metadata"), "name", "");
        const char *label = cld_jstr(cld_jpath(node, "metadata.labels"), k->c.gpu_label, "");
        const json_t *u = json_object_get(used, name);
        uint64_t gpus = k8s_jcount(json_object_get(alloc, k->c.gpu_resource));
        uint64_t ugpus = (uint64_t)json_integer_value(json_object_get(u, "gpus"));
        uint64_t c = k8s_jcpu_milli(json_object_get(alloc, "cpu")) / 1000;
        uint64_t uc = (uint64_t)json_integer_value(json_object_get(u, "cpu")) / 1000;
        uint64_t m = k8s_jbytes(json_object_get(alloc, "memory"));
        uint64_t um = (uint64_t)json_integer_value(json_object_get(u, "mem"));
        char model[64];
        size_t a;

        if (json_is_true(cld_jpath(node, "spec.unschedulable")))
            continue;
        cpu.cpus_total += (uint32_t)c;
        cpu.cpus_free += (uint32_t)(c > uc ? c - uc : 0);
        cpu.mem_total += m;
        cpu.mem_free += m > um ? m - um : 0;
        if (gpus == 0 || !label[0])
            continue;
        k8s_model_of_label(&k->c, label, model, sizeof(model));
        for (a = 0; a < nacc && strcasecmp(acc[a].model, model) != 0; a++)
            ;
        if (a == nacc) {
            if (nacc == sizeof(acc) / sizeof(acc[0]))
                continue;
            memset(&acc[a], 0, sizeof(acc[a]));
            snprintf(acc[a].model, sizeof(acc[a].model), "%s", model);
            nacc++;
        }
        acc[a].total += gpus;
        acc[a].used += ugpus < gpus ? ugpus : gpus;
        if (gpus > acc[a].max_per_node)
            acc[a].max_per_node = gpus;
    }
    for (size_t a = 0; a < nacc; a++) {
        struct orc_pool p = {.name = acc[a].model, .gpu_model = acc[a].model,
                             .gpus_total = (uint32_t)acc[a].total,
                             .gpus_free = (uint32_t)(acc[a].total - acc[a].used),
                             .max_gpus_per_node = (uint32_t)acc[a].max_per_node,
                             .price_hour = -1};
        k->host->op_pool_add(o->op, &p);
    }
    k->host->op_pool_add(o->op, &cpu);
}

static void inv_pods(struct kop *o, int status)
{
    json_t *used;
    const json_t *node;
    size_t i;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list pods");
        return;
    }
    used = json_object();
    json_array_foreach(json_object_get(o->doc, "items"), i, node)
        json_object_set_new(used, cld_jstr(cld_jpath(node, "metadata"), "name", ""),
                            json_object());
    inv_count_pods(o, used, json_object_get(o->call.json, "items"));
    inv_report(o, o->doc, used);
    json_decref(used);
    kop_done(o, 0);
}

static void inv_nodes(struct kop *o, int status)
{
    int rc;

    if (status < 0 || o->call.code != 200) {
        kop_fail_call(o, status, "list nodes");
        return;
    }
    json_decref(o->doc);
    o->doc = json_incref(o->call.json);
    rc = kop_call(o, "GET",
                  "/api/v1/pods?fieldSelector=status.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed",
                  NULL, inv_pods);
    if (rc < 0)
        kop_fail(o, rc, "cannot list pods");
}

int k8s_inventory(void *state, orc_op_t *op)
{
    struct k8s *k = state;
    struct kop *o = kop_new(k, op, KOP_INVENTORY);

    if (o == NULL)
        return ORC_ENOMEM;
    return kop_started(o, kop_call(o, "GET", "/api/v1/nodes", NULL, inv_nodes));
}
