/*
 * The objects the kubernetes driver creates (k8s.h), as the API reference
 * writes them: a namespace, the node's ConfigMap, and a workload's Job, or
 * Deployment and Service, with a pod template that runs gpu-agent as the
 * workload's supervisor (nvidia.com/gpu limits, the GPU model by node
 * selector, the readiness probe of the template). Names derive from the
 * core's resource name; every object carries the labels it is found by.
 * Also: resource quantities ("500m", "16Gi") as numbers.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s.h"

/* ---- quantities ---- */

static bool number(const char *q, double *v, const char **suffix)
{
    char *end;

    if (q == NULL || !*q)
        return false;
    *v = strtod(q, &end);
    if (end == q || *v < 0)
        return false;
    *suffix = end;
    return true;
}

bool k8s_cpu_milli(const char *q, uint64_t *out)
{
    double v;
    const char *s;

    if (!number(q, &v, &s))
        return false;
    if (strcmp(s, "m") == 0)
        *out = (uint64_t)v;
    else if (*s == '\0')
        *out = (uint64_t)(v * 1000.0 + 0.5);
    else
        return false;
    return true;
}

bool k8s_bytes(const char *q, uint64_t *out)
{
    static const struct { const char *sfx; double mul; } units[] = {
        {"Ki", 1024.0}, {"Mi", 1048576.0}, {"Gi", 1073741824.0}, {"Ti", 1099511627776.0},
        {"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"", 1.0}};
    double v;
    const char *s;

    if (!number(q, &v, &s))
        return false;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(s, units[i].sfx) == 0) {
            *out = (uint64_t)(v * units[i].mul);
            return true;
        }
    return false;
}

uint64_t k8s_jcpu_milli(const json_t *v)
{
    uint64_t m = 0;

    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v) * 1000;
    return json_is_string(v) && k8s_cpu_milli(json_string_value(v), &m) ? m : 0;
}

uint64_t k8s_jbytes(const json_t *v)
{
    uint64_t b = 0;

    if (json_is_integer(v))
        return (uint64_t)json_integer_value(v);
    return json_is_string(v) && k8s_bytes(json_string_value(v), &b) ? b : 0;
}

uint64_t k8s_jcount(const json_t *v)
{
    if (json_is_integer(v))
        return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    return json_is_string(v) ? strtoull(json_string_value(v), NULL, 10) : 0;
}

/* ---- names and labels ---- */

void k8s_deployment_of_name(const char *name, char out[40])
{
    out[0] = '\0';
    if (strncmp(name, "orc-", 4) != 0 || strlen(name) < 36)
        return;
    for (int i = 4; i < 36; i++)
        if (!isxdigit((unsigned char)name[i]))
            return;
    /* the uuid's canonical form, as the core and the labels say it */
    snprintf(out, 40, "%.8s-%.4s-%.4s-%.4s-%.12s", name + 4, name + 12, name + 16, name + 20,
             name + 24);
}

void k8s_ns_of(const struct k8s *k, const char *deployment, char out[K8S_NAME_MAX + 1])
{
    size_t n = 4;

    if (!k->c.per_deployment || deployment == NULL || !*deployment) {
        snprintf(out, K8S_NAME_MAX + 1, "%s", k->c.namespace_);
        return;
    }
    memcpy(out, "orc-", 4);
    for (const char *p = deployment; *p && n < K8S_NAME_MAX; p++)
        if (isxdigit((unsigned char)*p))
            out[n++] = (char)tolower((unsigned char)*p);
    out[n] = '\0';
}

void k8s_obj_name(const char *host, const char *workload, char out[K8S_NAME_MAX + 1])
{
    uint64_t h = UINT64_C(1469598103934665603);

    if (workload == NULL || strcmp(workload, "main") == 0) {
        snprintf(out, K8S_NAME_MAX + 1, "%s", host);
        return;
    }
    for (const char *p = workload; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    snprintf(out, K8S_NAME_MAX + 1, "%.52s-%010" PRIx64, host, h & UINT64_C(0xffffffffff));
}

json_t *k8s_labels(const char *deployment, const char *host, const char *workload)
{
    json_t *l = json_pack("{ss}", K8S_LABEL_MANAGED, K8S_MANAGED_BY);

    if (l && deployment && *deployment)
        json_object_set_new(l, K8S_LABEL_DEPLOYMENT, json_string(deployment));
    if (l && host)
        json_object_set_new(l, K8S_LABEL_HOST, json_string(host));
    if (l && workload)
        json_object_set_new(l, K8S_LABEL_WORKLOAD, json_string(workload));
    return l;
}

bool k8s_is_ours(const json_t *obj, const char *host)
{
    const json_t *labels = cld_jpath(obj, "metadata.labels");
    const char *h = cld_jstr(labels, K8S_LABEL_HOST, NULL);

    return h && strcmp(h, host) == 0 &&
           strcmp(cld_jstr(labels, K8S_LABEL_MANAGED, ""), K8S_MANAGED_BY) == 0;
}

/* ---- objects ---- */

json_t *k8s_namespace_obj(const char *ns, const char *deployment)
{
    return json_pack("{ss ss s{ss so}}", "apiVersion", "v1", "kind", "Namespace", "metadata",
                     "name", ns, "labels", k8s_labels(deployment, NULL, NULL));
}

char *k8s_node_json(const struct k8s *k, const struct k8s_node *n)
{
    json_t *o = json_pack("{ss ss sI sI sI ss ss ss}", "name", n->name, "deployment",
                          n->deployment, "cpus", (json_int_t)n->cpus, "gpus",
                          (json_int_t)n->gpus, "mem", (json_int_t)n->mem, "gpu_model", n->model,
                          "gpu_label", n->gpu_label, "image", n->image);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL, *copy;

    (void)k;
    json_decref(o);
    if (text == NULL)
        return NULL;
    copy = cld_strdup(k->host, text);
    free(text);
    return copy;
}

int k8s_node_parse(const char *text, struct k8s_node *n)
{
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;

    memset(n, 0, sizeof(*n));
    if (!json_is_object(o)) {
        json_decref(o);
        return ORC_EFORMAT;
    }
    snprintf(n->name, sizeof(n->name), "%s", cld_jstr(o, "name", ""));
    snprintf(n->deployment, sizeof(n->deployment), "%s", cld_jstr(o, "deployment", ""));
    n->cpus = (uint32_t)k8s_jcount(json_object_get(o, "cpus"));
    n->gpus = (uint32_t)k8s_jcount(json_object_get(o, "gpus"));
    n->mem = k8s_jcount(json_object_get(o, "mem"));
    snprintf(n->model, sizeof(n->model), "%s", cld_jstr(o, "gpu_model", ""));
    snprintf(n->gpu_label, sizeof(n->gpu_label), "%s", cld_jstr(o, "gpu_label", ""));
    snprintf(n->image, sizeof(n->image), "%s", cld_jstr(o, "image", ""));
    json_decref(o);
    return n->name[0] ? 0 : ORC_EFORMAT;
}

json_t *k8s_configmap_obj(const struct k8s *k, const struct k8s_node *n)
{
    char *node = k8s_node_json(k, n);
    json_t *o;

    if (node == NULL)
        return NULL;
    o = json_pack("{ss ss s{ss so} s{ss}}", "apiVersion", "v1", "kind", "ConfigMap", "metadata",
                  "name", n->name, "labels", k8s_labels(n->deployment, n->name, NULL), "data",
                  "node", node);
    k->host->free(node);
    return o;
}

static json_t *resources(const struct k8s *k, const struct k8s_node *n)
{
    json_t *lim = json_object();
    char buf[32];

    if (n->cpus) {
        snprintf(buf, sizeof(buf), "%u", n->cpus);
        json_object_set_new(lim, "cpu", json_string(buf));
    }
    if (n->mem) {
        snprintf(buf, sizeof(buf), "%" PRIu64 "Mi", (n->mem + 1048575) / 1048576);
        json_object_set_new(lim, "memory", json_string(buf));
    }
    if (n->gpus) {
        snprintf(buf, sizeof(buf), "%u", n->gpus);
        json_object_set_new(lim, k->c.gpu_resource, json_string(buf));
    }
    /* requests default to the limits: the pod gets what the node asked, no more */
    return json_pack("{sO so}", "requests", lim, "limits", lim);
}

static json_t *command(const struct k8s *k, const struct kop *o, bool job)
{
    json_t *cmd = json_array();
    char opt[96];

    if (k->c.agent) {
        json_array_append_new(cmd, json_string(k->c.agent));
        json_array_append_new(cmd, json_string("run"));
        json_array_append_new(cmd, json_string("--name"));
        json_array_append_new(cmd, json_string(o->wl));
        json_array_append_new(cmd, json_string("--kind"));
        json_array_append_new(cmd, json_string(job ? "job" : "service"));
        json_array_append_new(cmd, json_string("--check"));
        json_array_append_new(cmd, json_string(k->c.agent_check));
        json_array_append_new(cmd, json_string("--log-dir=-"));
        if (!job && o->port) {
            if (o->ready_path)
                snprintf(opt, sizeof(opt), "--ready-http=%u:%.64s", o->port, o->ready_path);
            else
                snprintf(opt, sizeof(opt), "--ready-tcp=%u", o->port);
            json_array_append_new(cmd, json_string(opt));
        }
        json_array_append_new(cmd, json_string("--"));
    }
    for (size_t i = 0; o->argv && o->argv[i]; i++)
        json_array_append_new(cmd, json_string(o->argv[i]));
    return cmd;
}

static json_t *env_list(const struct kop *o)
{
    json_t *env = json_array();

    for (size_t i = 0; i < o->nenv; i++)
        json_array_append_new(env, json_pack("{ss ss}", "name", o->env[i].key, "value",
                                             o->env[i].value));
    return env;
}

static json_t *probe(const struct kop *o)
{
    json_t *p;

    if (o->ready_path)
        p = json_pack("{s{ss si}}", "httpGet", "path", o->ready_path, "port", (int)o->port);
    else
        p = json_pack("{s{si}}", "tcpSocket", "port", (int)o->port);
    json_object_set_new(p, "periodSeconds", json_integer(2));
    json_object_set_new(p, "failureThreshold", json_integer(3));
    return p;
}

json_t *k8s_pod_template(const struct k8s *k, const struct kop *o, bool job)
{
    const struct k8s_node *n = &o->node;
    json_t *c = json_pack("{ss ss so so so}", "name", "main", "image",
                          n->image[0] ? n->image : k->c.image, "command", command(k, o, job), "env",
                          env_list(o), "resources", resources(k, n));
    json_t *spec, *labels = k8s_labels(n->deployment, o->name, o->wl);

    if (c == NULL || labels == NULL)
        goto oom;
    if (k->c.image_pull_policy)
        json_object_set_new(c, "imagePullPolicy", json_string(k->c.image_pull_policy));
    if (o->port) {
        json_object_set_new(c, "ports", json_pack("[{si ss}]", "containerPort", (int)o->port,
                                                  "protocol", "TCP"));
        if (!job)
            json_object_set_new(c, "readinessProbe", probe(o));
    }
    spec = json_pack("{s[o] ss}", "containers", c, "restartPolicy", job ? "Never" : "Always");
    c = NULL;
    if (spec == NULL)
        goto oom;
    if (n->gpu_label[0])
        json_object_set_new(spec, "nodeSelector", json_pack("{ss}", k->c.gpu_label, n->gpu_label));
    if (n->gpus) /* GPU nodes are commonly tainted with the device plugin's resource name */
        json_object_set_new(spec, "tolerations",
                            json_pack("[{ss ss ss}]", "key", k->c.gpu_resource, "operator",
                                      "Exists", "effect", "NoSchedule"));
    return json_pack("{s{so} so}", "metadata", "labels", labels, "spec", spec);
oom:
    json_decref(c);
    json_decref(labels);
    return NULL;
}

json_t *k8s_job_obj(const struct k8s *k, const struct kop *o)
{
    json_t *tmpl = k8s_pod_template(k, o, true);

    if (tmpl == NULL)
        return NULL;
    /* one pod, no retry: the engine's failover decides what a failure means */
    return json_pack("{ss ss s{ss so} s{si so}}", "apiVersion", "batch/v1", "kind", "Job",
                     "metadata", "name", o->obj, "labels",
                     k8s_labels(o->node.deployment, o->name, o->wl), "spec", "backoffLimit", 0,
                     "template", tmpl);
}

json_t *k8s_deployment_obj(const struct k8s *k, const struct kop *o)
{
    json_t *tmpl = k8s_pod_template(k, o, false);

    if (tmpl == NULL)
        return NULL;
    return json_pack("{ss ss s{ss so} s{si s{so} so}}", "apiVersion", "apps/v1", "kind",
                     "Deployment", "metadata", "name", o->obj, "labels",
                     k8s_labels(o->node.deployment, o->name, o->wl), "spec", "replicas", 1,
                     "selector", "matchLabels", k8s_labels(NULL, o->name, o->wl), "template",
                     tmpl);
}

json_t *k8s_service_obj(const struct k8s *k, const struct kop *o)
{
    static const char *const types[] = {"ClusterIP", "NodePort", "LoadBalancer"};

    return json_pack("{ss ss s{ss so} s{ss so s[{ss si si ss}]}}", "apiVersion", "v1", "kind",
                     "Service", "metadata", "name", o->obj, "labels",
                     k8s_labels(o->node.deployment, o->name, o->wl), "spec", "type",
                     types[k->c.service_type], "selector", k8s_labels(NULL, o->name, o->wl),
                     "ports", "name", "main", "port", (int)o->port, "targetPort", (int)o->port,
                     "protocol", "TCP");
}
