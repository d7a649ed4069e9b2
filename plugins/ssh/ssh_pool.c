/*
 * The host pool of an ssh site (ssh.h). At site open one command per host
 * reads its node markers: nodes of an earlier run are known again by name.
 * A host that cannot be reached is marked down (new nodes go elsewhere) and
 * scanned again every SH_RESCAN_MS. The first node on a host installs the
 * runtime there (once, verified; other provisions wait for it), then
 * `gpu-agent info` holds the declared GPUs against what it discovers.
 * Allocation picks the host with the most free GPUs of the model that fits.
 * Ops waiting on workloads share one status poll per host (a single command
 * reads every status file they need).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ssh.h"

#define SH_RESCAN_MS 30000

static void scan_host(struct sh_host *h);

/* ---- nodes ------------------------------------------------------------------------------ */

struct sh_node *sh_node_find(struct sh *s, const char *name)
{
    for (struct sh_node *n = s->nodes; n; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

void sh_node_free(struct sh_node *n)
{
    if (n == NULL)
        return;
    n->s->host->free(n->dir);
    n->s->host->free(n);
}

char *sh_node_json(struct sh_node *n)
{
    json_t *gpus = json_array(), *j;
    char *text, *out;

    for (uint32_t i = 0; i < n->ngpus; i++)
        json_array_append_new(gpus, json_integer(n->gpus[i]));
    j = json_pack("{ss si si sI so ss ss}", "name", n->name, "kind", (int)n->kind, "cpus",
                  (int)n->cpus, "mem", (json_int_t)n->mem, "gpus", gpus, "model", n->model, "host",
                  n->s->hosts[n->host].name);
    text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    out = text ? sh_strdup(n->s, text) : NULL;
    free(text);
    return out;
}

static void reserve(struct sh_node *n)
{
    struct sh_host *h = &n->s->hosts[n->host];

    for (uint32_t i = 0; i < n->ngpus; i++)
        if (n->gpus[i] < SH_MAX_GPUS)
            h->gpu_used[n->gpus[i]] = true;
    h->cpus_used += n->cpus;
    h->mem_used += n->mem;
}

void sh_release(struct sh_node *n)
{
    struct sh_host *h = &n->s->hosts[n->host];

    for (uint32_t i = 0; i < n->ngpus; i++)
        if (n->gpus[i] < SH_MAX_GPUS)
            h->gpu_used[n->gpus[i]] = false;
    h->cpus_used -= n->cpus < h->cpus_used ? n->cpus : h->cpus_used;
    h->mem_used -= n->mem < h->mem_used ? n->mem : h->mem_used;
    n->ngpus = n->cpus = 0;
    n->mem = 0;
}

struct sh_node *sh_node_from_json(struct sh *s, struct sh_host *h, const char *name, json_t *j)
{
    struct sh_node *n;
    json_t *gpus = json_object_get(j, "gpus"), *g;
    size_t i;

    if (!json_is_object(j) || strlen(name) > SH_NAME_MAX)
        return NULL;
    n = s->host->calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->s = s;
    n->host = h->index;
    snprintf(n->name, sizeof(n->name), "%s", name);
    n->kind = (enum orc_node_kind)json_integer_value(json_object_get(j, "kind"));
    n->cpus = (uint32_t)json_integer_value(json_object_get(j, "cpus"));
    n->mem = (uint64_t)json_integer_value(json_object_get(j, "mem"));
    snprintf(n->model, sizeof(n->model), "%s",
             json_string_value(json_object_get(j, "model")) ?: "");
    json_array_foreach(gpus, i, g)
    {
        if (n->ngpus < SH_MAX_GPUS && json_integer_value(g) >= 0 &&
            json_integer_value(g) < (json_int_t)h->ngpus)
            n->gpus[n->ngpus++] = (uint32_t)json_integer_value(g);
    }
    n->dir = sh_printf(s, "%s/%s", s->work_dir, n->name);
    if (n->dir == NULL) {
        sh_node_free(n);
        return NULL;
    }
    return n;
}

/* ---- the scan ------------------------------------------------------------------------------ */

static const char scan_script[] =
    "for f in \"$B\"/*/node.json; do [ -f \"$f\" ] || continue; d=${f%/node.json}; "
    "printf '==> node %s\\n' \"${d##*/}\"; tr -d '\\n' < \"$f\"; printf '\\n'; done; "
    "true";

/* A GPU name the agent found ("NVIDIA A100-SXM4-80GB") is of model ("A100"). */
static bool name_is_model(const char *name, const char *model)
{
    size_t ml = strlen(model);

    for (const char *p = name; *p; p++)
        if (strncasecmp(p, model, ml) == 0)
            return true;
    return false;
}

static void confirm_gpus(struct sh_host *h, json_t *info)
{
    struct sh *s = h->s;
    json_t *gpus = json_object_get(info, "gpus"), *g;
    size_t i;

    for (uint32_t m = 0; m < h->nmodels; m++) {
        uint32_t found = 0;
        json_array_foreach(gpus, i, g)
        {
            const char *name = json_string_value(json_object_get(g, "name"));
            found += name && name_is_model(name, h->models[m].model);
        }
        if (found >= h->models[m].count)
            continue;
        if (s->trust_declared_gpus) {
            s->host->log(s->host, ORC_DRV_LOG_WARN,
                         "host %s: %u %s declared, gpu-agent found %u; trusting the declaration "
                         "(trust_declared_gpus)",
                         h->name, h->models[m].count, h->models[m].model, found);
            continue;
        }
        s->host->log(s->host, ORC_DRV_LOG_WARN,
                     "host %s: %u %s declared, gpu-agent found %u: offering %u", h->name,
                     h->models[m].count, h->models[m].model, found, found);
        h->ngpus -= h->models[m].count - found;
        h->models[m].count = found;
    }
}

static void adopt_marker(struct sh_host *h, const char *name, const char *text)
{
    struct sh *s = h->s;
    json_t *j = json_loads(text, 0, NULL);
    struct sh_node *n = sh_node_find(s, name);

    const char *owner = json_string_value(json_object_get(j, "host"));

    /* hosts may share a filesystem: a marker names the host that holds it */
    if (owner == NULL || strcmp(owner, h->name) != 0) {
        json_decref(j);
        return;
    }
    if (n == NULL && j != NULL && (n = sh_node_from_json(s, h, name, j)) != NULL) {
        n->next = s->nodes;
        s->nodes = n;
        reserve(n);
    }
    json_decref(j);
}

static void scan_parse(struct sh_host *h, char *out)
{
    char *line = out, *next;
    const char *node = NULL;
    bool info = false;

    for (; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strncmp(line, "==> node ", 9) == 0) {
            node = line + 9;
            info = false;
        } else if (strcmp(line, "==> info") == 0) {
            info = true;
            node = NULL;
        } else if (node) {
            adopt_marker(h, node, line);
            node = NULL;
        } else if (info) {
            json_t *j = json_loads(line, 0, NULL);
            if (j)
                confirm_gpus(h, j);
            json_decref(j);
            info = false;
        }
    }
}

static void open_step(struct sh *s)
{
    struct sop *o = s->open_op;

    if (o == NULL || s->scans_left > 0)
        return;
    s->open_op = NULL;
    for (int i = 0; i < s->nhosts; i++)
        if (!s->hosts[i].down)
            return (void)sop_defer(o, 0);
    /* no host answered: the site still opens (hosts come back), and says so */
    s->host->log(s->host, ORC_DRV_LOG_WARN, "no host of the pool answered; first: %s",
                 s->hosts[0].why);
    sop_defer(o, 0);
}

static void rescan_tick(void *arg)
{
    struct sh_host *h = arg;

    h->rescan_timer = 0;
    if (!h->s->closing && h->down)
        scan_host(h);
}

static void host_down(struct sh_host *h, const char *why)
{
    struct sh *s = h->s;

    h->down = true;
    snprintf(h->why, sizeof(h->why), "%s", why);
    s->host->log(s->host, ORC_DRV_LOG_WARN, "host %s is down: %s", h->name, why);
    if (!s->closing && h->rescan_timer == 0)
        h->rescan_timer = s->host->timer_start(s->host, SH_RESCAN_MS, rescan_tick, h);
}

static void scan_end(struct sh_host *h)
{
    struct sh *s = h->s;

    if (s->scans_left > 0) {
        s->scans_left--;
        open_step(s);
    }
    sh_close_check(s);
}

static void on_scan(orc_ssh_req_t *req, int status)
{
    struct sh_host *h = req->data;
    struct sh *s = h->s;

    h->scan_busy = false;
    if (status < 0 || req->exit_status != 0) {
        char why[ORC_OP_ERROR_LEN];
        snprintf(why, sizeof(why), "%s", status < 0 ? req->error : "the node scan failed");
        s->host->ssh->release(s->host, req);
        host_down(h, why);
    } else {
        h->down = false;
        h->scanned = true;
        scan_parse(h, req->out ? req->out : (char *)"");
        s->host->ssh->release(s->host, req);
    }
    scan_end(h);
}

static void scan_read(struct sh_host *h)
{
    struct sh *s = h->s;
    struct rmt_cmd c;
    const char *text;
    struct orc_ssh_exec x = {.max_out = 8 << 20, .timeout_ms = s->command_timeout_ms};
    int rc;

    rmt_cmd_init(&c, s->host);
    rmt_cmd_var(&c, "B", s->work_dir);
    rmt_cmd_raw(&c, scan_script);
    rc = rmt_cmd_done(&c, &text);
    memset(&h->scan_req, 0, sizeof(h->scan_req));
    h->scan_req.data = h;
    h->scan_req.cb = on_scan;
    x.command = text;
    if (rc == 0)
        rc = s->host->ssh->exec(s->host, &h->t, &h->scan_req, &x);
    rmt_cmd_free(&c);
    if (rc < 0) {
        host_down(h, "cannot start the node scan");
        scan_end(h);
        return;
    }
    h->scan_busy = true;
}

static void install_end(struct sh_host *h, int status, const char *error)
{
    h->install = status == 0 ? 2 : 0;
    while (h->install_waiters) {
        struct sop *o = h->install_waiters;
        h->install_waiters = o->wnext;
        o->wnext = NULL;
        if (status < 0 && o->op)
            snprintf(o->op->error, sizeof(o->op->error), "host %s: %s", h->name, error);
        o->cb(o, status);
    }
    sh_close_check(h->s);
}

static void on_info(orc_ssh_req_t *req, int status)
{
    struct sh_host *h = req->data;
    struct sh *s = h->s;
    json_t *j =
        status == 0 && req->exit_status == 0 && req->out ? json_loads(req->out, 0, NULL) : NULL;
    char why[ORC_OP_ERROR_LEN];

    h->info_busy = false;
    snprintf(why, sizeof(why), "%s", status < 0 ? req->error : "gpu-agent info failed");
    s->host->ssh->release(s->host, req);
    if (j == NULL) {
        install_end(h, status < 0 ? status : ORC_EDRIVER, why);
        return;
    }
    confirm_gpus(h, j);
    json_decref(j);
    install_end(h, 0, NULL);
}

static void run_info(struct sh_host *h)
{
    struct sh *s = h->s;
    struct rmt_cmd c;
    const char *text;
    struct orc_ssh_exec x = {.max_out = 1 << 20, .timeout_ms = s->command_timeout_ms};
    int rc;

    rmt_cmd_init(&c, s->host);
    rmt_cmd_var(&c, "RT", h->rt_dir);
    rmt_cmd_raw(&c, "\"$RT\"/gpu-agent info");
    rc = rmt_cmd_done(&c, &text);
    memset(&h->info_req, 0, sizeof(h->info_req));
    h->info_req.data = h;
    h->info_req.cb = on_info;
    x.command = text;
    if (rc == 0)
        rc = s->host->ssh->exec(s->host, &h->t, &h->info_req, &x);
    rmt_cmd_free(&c);
    if (rc < 0) {
        install_end(h, rc, "cannot run gpu-agent info");
        return;
    }
    h->info_busy = true;
}

static void on_installed(void *arg, int status, const char *error)
{
    struct sh_host *h = arg;

    h->installing = NULL;
    if (status < 0 || h->s->closing) {
        install_end(h, status < 0 ? status : ORC_ECANCELED, error);
        return;
    }
    run_info(h);
}

static int install_start(struct sh_host *h)
{
    struct sh *s = h->s;

    if (h->rt_dir == NULL && (h->rt_dir = rmt_runtime_dir(s->host, &s->rt, s->work_dir)) == NULL)
        return ORC_ENOMEM;
    h->install = 1;
    return rmt_runtime_install(s->host, &h->t, &s->rt, s->work_dir, s->command_timeout_ms,
                               on_installed, h, &h->installing);
}

static void scan_host(struct sh_host *h)
{
    scan_read(h);
}

int sh_scan_all(struct sh *s)
{
    s->scans_left = (unsigned)s->nhosts;
    for (int i = 0; i < s->nhosts; i++)
        scan_host(&s->hosts[i]);
    return 0;
}

int sh_runtime_ready(struct sop *o, struct sh_host *h, sop_cb cb)
{
    int rc;

    if (h->install == 2)
        return 1;
    o->cb = cb;
    o->wnext = h->install_waiters;
    h->install_waiters = o;
    o->install_wait = true;
    if (h->install == 0) {
        rc = install_start(h);
        if (rc < 0) {
            h->install = 0;
            h->install_waiters = o->wnext;
            o->wnext = NULL;
            o->install_wait = false;
            return rc;
        }
    }
    return 0;
}

/* ---- allocation ------------------------------------------------------------------------------ */

static uint32_t free_of_model(const struct sh_host *h, const char *model, uint32_t *first)
{
    uint32_t base = 0, n = 0;

    for (uint32_t m = 0; m < h->nmodels; m++) {
        bool match = model == NULL || strcasecmp(h->models[m].model, model) == 0 ||
                     name_is_model(h->models[m].model, model);
        if (match) {
            for (uint32_t g = base; g < base + h->models[m].count; g++)
                n += !h->gpu_used[g];
            if (first)
                *first = m;
            if (model != NULL)
                return n;
        }
        base += h->models[m].count;
    }
    return n;
}

static bool fits(const struct sh_host *h, const struct orc_node_req *req)
{
    return !h->down && h->cpus_used + (req->num_cpus ? req->num_cpus : 1) <= h->cpus &&
           (h->mem == 0 || h->mem_used + req->mem_size <= h->mem) &&
           (req->num_gpus == 0 || free_of_model(h, req->gpu_model, NULL) >= req->num_gpus);
}

static void pick_gpus(const struct sh_host *h, const struct orc_node_req *req, struct sh_node *n)
{
    uint32_t base = 0;

    for (uint32_t m = 0; m < h->nmodels && n->ngpus < req->num_gpus; m++) {
        bool match = req->gpu_model == NULL ||
                     strcasecmp(h->models[m].model, req->gpu_model) == 0 ||
                     name_is_model(h->models[m].model, req->gpu_model);
        for (uint32_t g = base; match && g < base + h->models[m].count && n->ngpus < req->num_gpus;
             g++)
            if (!h->gpu_used[g]) {
                n->gpus[n->ngpus++] = g;
                snprintf(n->model, sizeof(n->model), "%s", h->models[m].model);
            }
        base += h->models[m].count;
    }
}

int sh_allocate(struct sh *s, orc_op_t *op, const struct orc_node_req *req, struct sh_node *n)
{
    int best = -1;
    uint32_t best_free = 0, free_now;

    for (int i = 0; i < s->nhosts; i++) {
        const struct sh_host *h = &s->hosts[i];
        if (!fits(h, req))
            continue;
        free_now = req->num_gpus ? free_of_model(h, req->gpu_model, NULL) : h->cpus - h->cpus_used;
        if (best < 0 || free_now > best_free) {
            best = i;
            best_free = free_now;
        }
    }
    if (best < 0) {
        uint32_t total = 0, down = 0;
        const char *why = NULL;
        for (int i = 0; i < s->nhosts; i++) {
            total += free_of_model(&s->hosts[i], req->gpu_model, NULL);
            down += s->hosts[i].down;
            if (s->hosts[i].down && why == NULL)
                why = s->hosts[i].why;
        }
        return orc_op_failf(
            op, ORC_DRV_ENOCAPACITY,
            "ssh: no host has %u free %s GPU(s), %u CPU(s) and %llu MiB "
            "(%u free GPU(s) of that model in the pool, %u of %d hosts down%s%.120s)",
            req->num_gpus, req->gpu_model ? req->gpu_model : "(any)",
            req->num_cpus ? req->num_cpus : 1, (unsigned long long)(req->mem_size >> 20), total,
            down, s->nhosts, why ? ": " : "", why ? why : "");
    }
    n->host = best;
    n->cpus = req->num_cpus ? req->num_cpus : 1;
    n->mem = req->mem_size;
    pick_gpus(&s->hosts[best], req, n);
    reserve(n);
    return 0;
}

/* ---- status polling -------------------------------------------------------------------------- */

static void poll_run(void *arg);

static const char poll_script[] =
    "printf '%s\\n' \"$L\" | while IFS= read -r p; do [ -n \"$p\" ] || continue; "
    "printf '==> %s\\n' \"$p\"; tr -d '\\n' < \"$p.status.json\" 2>/dev/null; printf '\\n'; "
    "if [ -f \"$p.pid\" ] && kill -0 \"$(cat \"$p.pid\")\" 2>/dev/null; then echo alive; "
    "else echo dead; fi; done";

static char *poll_path(struct sop *o)
{
    return sh_printf(o->s, "%s/%s", o->node->dir, o->wl);
}

static void poll_deliver(struct sh_host *h, struct sop *list, int status, char *out)
{
    struct sh *s = h->s;

    while (list) {
        struct sop *o = list;
        char *path = poll_path(o), *at = NULL, head[600];
        list = o->wnext;
        o->wnext = NULL;
        o->polling = false;
        json_decref(o->poll_json);
        o->poll_json = NULL;
        o->poll_alive = false;
        if (status == 0 && path && out) {
            snprintf(head, sizeof(head), "==> %s\n", path);
            at = strstr(out, head);
        }
        if (at) {
            char *js = at + strlen(head), *nl = strchr(js, '\n');
            if (nl) {
                *nl = '\0';
                o->poll_json = json_loads(js, 0, NULL);
                o->poll_alive = strncmp(nl + 1, "alive", 5) == 0;
                *nl = '\n';
            }
        }
        s->host->free(path);
        o->cb(o, status);
    }
}

static void on_poll(orc_ssh_req_t *req, int status)
{
    struct sh_host *h = req->data;
    struct sh *s = h->s;
    struct sop *list = h->inpoll;

    h->polling = false;
    h->inpoll = NULL;
    if (status == 0 && req->exit_status != 0)
        status = ORC_EDRIVER;
    poll_deliver(h, list, status, req->out);
    s->host->ssh->release(s->host, req);
    if (h->pollers && h->poll_timer == 0 && !s->closing)
        h->poll_timer = s->host->timer_start(s->host, s->poll_ms, poll_run, h);
    sh_close_check(s);
}

static void poll_run(void *arg)
{
    struct sh_host *h = arg;
    struct sh *s = h->s;
    struct rmt_cmd c, l;
    const char *text, *list;
    struct orc_ssh_exec x = {.max_out = 4 << 20, .timeout_ms = s->command_timeout_ms};
    int rc;

    h->poll_timer = 0;
    if (h->pollers == NULL || h->polling || s->closing)
        return;
    rmt_cmd_init(&l, s->host);
    for (struct sop *o = h->pollers; o; o = o->wnext) {
        char *p = poll_path(o);
        if (p)
            rmt_cmd_raw(&l, p);
        rmt_cmd_raw(&l, "\n");
        s->host->free(p);
    }
    rmt_cmd_init(&c, s->host);
    rc = rmt_cmd_done(&l, &list);
    if (rc == 0) {
        rmt_cmd_var(&c, "L", list);
        rmt_cmd_raw(&c, poll_script);
        rc = rmt_cmd_done(&c, &text);
    }
    h->inpoll = h->pollers;
    h->pollers = NULL;
    if (rc == 0) {
        memset(&h->poll_req, 0, sizeof(h->poll_req));
        h->poll_req.data = h;
        h->poll_req.cb = on_poll;
        x.command = text;
        rc = s->host->ssh->exec(s->host, &h->t, &h->poll_req, &x);
    }
    rmt_cmd_free(&l);
    rmt_cmd_free(&c);
    if (rc < 0) {
        struct sop *lst = h->inpoll;
        h->inpoll = NULL;
        poll_deliver(h, lst, rc, NULL);
        return;
    }
    h->polling = true;
}

int sh_poll_join(struct sop *o, sop_cb cb)
{
    struct sh *s = o->s;
    struct sh_host *h = &s->hosts[o->node->host];

    o->cb = cb;
    o->polling = true;
    o->wnext = h->pollers;
    h->pollers = o;
    if (!h->polling && h->poll_timer == 0) {
        h->poll_timer = s->host->timer_start(s->host, s->poll_ms, poll_run, h);
        if (h->poll_timer == 0) {
            h->pollers = o->wnext;
            o->polling = false;
            return ORC_ENOMEM;
        }
    }
    return 0;
}

static bool unlink_from(struct sop **list, struct sop *o)
{
    for (struct sop **pp = list; *pp; pp = &(*pp)->wnext)
        if (*pp == o) {
            *pp = o->wnext;
            o->wnext = NULL;
            return true;
        }
    return false;
}

void sh_poll_leave(struct sop *o)
{
    struct sh_host *h = &o->s->hosts[o->node->host];

    if (!unlink_from(&h->pollers, o))
        unlink_from(&h->inpoll, o);
    o->polling = false;
}

void sh_host_close(struct sh_host *h)
{
    struct sh *s = h->s;

    if (h->poll_timer) {
        s->host->timer_stop(s->host, h->poll_timer);
        h->poll_timer = 0;
    }
}

void sh_install_leave(struct sop *o)
{
    if (o->install_wait && o->h)
        unlink_from(&o->h->install_waiters, o);
    o->install_wait = false;
}
