/*
 * What the pods of one workload say (k8s.h): one that is ready, the newest,
 * a reason that will not fix itself (an image that cannot be pulled, a
 * container that cannot be created, or, for a service that was never ready,
 * CrashLoopBackOff), the scheduler's Unschedulable message, and a
 * terminated container's exit code. Shapes: core/v1 Pod status
 * (conditions, containerStatuses[].state.waiting|running|terminated).
 */
#include <stdio.h>
#include <string.h>

#include "k8s.h"

static const char *const fatal_reasons[] = {
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError", NULL};

const char *k8s_pod_name(const json_t *pod)
{
    return cld_jstr(cld_jpath(pod, "metadata"), "name", "");
}

const char *k8s_pod_ip(const json_t *pod)
{
    return cld_jstr(cld_jpath(pod, "status"), "podIP", NULL);
}

const char *k8s_host_ip(const json_t *pod)
{
    return cld_jstr(cld_jpath(pod, "status"), "hostIP", NULL);
}

static const json_t *condition(const json_t *pod, const char *type)
{
    const json_t *conds = cld_jpath(pod, "status.conditions"), *c;
    size_t i;

    json_array_foreach(conds, i, c) {
        if (strcmp(cld_jstr(c, "type", ""), type) == 0)
            return c;
    }
    return NULL;
}

static bool is_fatal(const char *reason, bool crashloop_fatal)
{
    for (size_t i = 0; fatal_reasons[i]; i++)
        if (strcmp(reason, fatal_reasons[i]) == 0)
            return true;
    return crashloop_fatal && strcmp(reason, "CrashLoopBackOff") == 0;
}

static void look_at_containers(const json_t *pod, bool crashloop_fatal, struct k8s_pods_view *v)
{
    const json_t *st = cld_jpath(pod, "status.containerStatuses"), *cs;
    size_t i;

    json_array_foreach(st, i, cs) {
        const json_t *waiting = cld_jpath(cs, "state.waiting");
        const json_t *term = cld_jpath(cs, "state.terminated");
        const char *reason = cld_jstr(waiting, "reason", "");

        if (v->fatal[0] == '\0' && waiting && is_fatal(reason, crashloop_fatal))
            snprintf(v->fatal, sizeof(v->fatal), "pod %s: %s: %s", k8s_pod_name(pod), reason,
                     cld_jstr(waiting, "message", "(no message)"));
        if (term == NULL && waiting && strcmp(reason, "CrashLoopBackOff") == 0)
            term = cld_jpath(cs, "lastState.terminated");
        if (term && json_is_integer(json_object_get(term, "exitCode")))
            v->exit_code = (int)json_integer_value(json_object_get(term, "exitCode"));
    }
}

void k8s_pods_view(const json_t *list, bool crashloop_fatal, struct k8s_pods_view *v)
{
    const json_t *items = json_object_get(list, "items"), *pod;
    const char *newest_ts = "";
    size_t i;

    memset(v, 0, sizeof(*v));
    v->exit_code = -1;
    json_array_foreach(items, i, pod) {
        const json_t *ready = condition(pod, "Ready");
        const json_t *sched = condition(pod, "PodScheduled");
        const char *ts = cld_jstr(cld_jpath(pod, "metadata"), "creationTimestamp", "");

        if (cld_jpath(pod, "metadata.deletionTimestamp"))
            continue; /* on its way out */
        v->n++;
        if (v->newest == NULL || strcmp(ts, newest_ts) > 0) {
            v->newest = pod;
            newest_ts = ts;
        }
        if (ready && strcmp(cld_jstr(ready, "status", ""), "True") == 0 && v->ready == NULL)
            v->ready = pod;
        if (sched && strcmp(cld_jstr(sched, "status", ""), "False") == 0 &&
            strcmp(cld_jstr(sched, "reason", ""), "Unschedulable") == 0 && v->pending[0] == '\0')
            snprintf(v->pending, sizeof(v->pending), "pod %s: Unschedulable: %s",
                     k8s_pod_name(pod), cld_jstr(sched, "message", "(no message)"));
        look_at_containers(pod, crashloop_fatal, v);
    }
}
