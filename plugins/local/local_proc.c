/*
 * Processes of the local site, all on the loop, none waited for:
 *   - helper commands (struct local_child): nvidia-smi -L, rm -rf, exec; run
 *     in their own process group with bounded output capture;
 *   - workloads (struct local_wl): argv started with uv_spawn in the node's
 *     directory, in a new session (so a process group of its own), stdout
 *     and stderr appended to <node>/<workload>.log, a clean environment.
 *     Services restart with exponential backoff and give up (the node turns
 *     FAILED) after restart_max_failures exits within restart_window_ms;
 *     jobs record their exit status in <node>/<workload>.status. A workload
 *     that survived a daemon restart is not our child any more: it is
 *     re-attached by pid plus its /proc start time (no pid reuse) and
 *     watched by polling. A workload stopped on request (stop_workload,
 *     node stop) is "held": SIGTERM to its group, SIGKILL after
 *     stop_timeout_ms, no restart, and it stays stopped across daemon
 *     restarts until start_workload or start spawns it again;
 *   - logs: read with uv_fs on the threadpool, bounded.
 * Nothing here blocks: kill() and small /proc reads and log lines only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STOP_POLL_MS 100
#define MAX_ARGS 4096
#define MAX_ENV 4096

/* ---- /proc --------------------------------------------------------------------------- */

/* State letter and start time (clock ticks since boot, field 22) of pid. */
static int proc_stat(pid_t pid, char *state, uint64_t *start)
{
    char path[64], buf[2048], *p;
    unsigned long long t;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -ENOENT;
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (p == NULL || p[1] != ' ')
        return -EINVAL;
    *state = p[2];
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -EINVAL;
        p++;
    }
    if (sscanf(p, "%llu", &t) != 1)
        return -EINVAL;
    *start = t;
    return 0;
}

uint64_t local_pid_start_time(pid_t pid)
{
    uint64_t t = 0;
    char st;

    return proc_stat(pid, &st, &t) == 0 ? t : 0;
}

int local_pid_alive(pid_t pid, uint64_t start_time, int *status, bool *reaped)
{
    uint64_t t = 0;
    char st = '?';
    int rc, wst = 0;

    *reaped = false;
    *status = 0;
    if (pid <= 0)
        return 0;
    rc = proc_stat(pid, &st, &t);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) /* no procfs: the pid alone */
        return kill(pid, 0) == 0 || errno == EPERM;
    if (start_time != 0 && t != start_time)
        return 0; /* the pid was reused */
    if (st == 'Z' || st == 'X') {
        if (waitpid(pid, &wst, WNOHANG) == pid) { /* our zombie (closed uv handle) */
            *reaped = true;
            *status = wst;
        }
        return 0;
    }
    return 1;
}

static bool pid_exists(pid_t pid)
{
    char st;
    uint64_t t;

    return proc_stat(pid, &st, &t) != -ENOENT;
}

/* ---- helper commands ---------------------------------------------------------------- */

struct local_child {
    struct local *s;
    uv_process_t proc;
    uv_pipe_t pipes[2];
    bool pipe_open[2];
    unsigned open; /* handles not closed yet */
    bool linked, exited, abandoned, keep_on_close, kill_group, free_arg;
    pid_t pid;
    size_t capture;
    size_t cap;
    struct local_child_result r;
    uint64_t grace_timer, timeout_timer;
    local_child_cb cb;
    void *arg;
    struct local_child *prev, *next;
    char rbuf[16384];
};

static void child_stop_timers(struct local_child *c)
{
    struct local *s = c->s;

    if (c->grace_timer != 0)
        s->host->timer_stop(s->host, c->grace_timer);
    if (c->timeout_timer != 0)
        s->host->timer_stop(s->host, c->timeout_timer);
    c->grace_timer = c->timeout_timer = 0;
}

static void child_finish(struct local_child *c)
{
    struct local *s = c->s;
    struct local_child_result r = c->r;
    local_child_cb cb = c->cb;
    void *arg = c->arg;
    bool abandoned = c->abandoned, free_arg = c->free_arg;

    if (c->linked) {
        if (c->prev)
            c->prev->next = c->next;
        else
            s->children = c->next;
        if (c->next)
            c->next->prev = c->prev;
    }
    child_stop_timers(c);
    s->host->free(c);
    if (abandoned) {
        s->host->free(r.out);
        if (free_arg)
            s->host->free(arg);
        local_close_check(s); /* last */
        return;
    }
    cb(s, arg, &r); /* owns r.out; may complete an op: touch nothing after */
}

static void child_closed(uv_handle_t *h)
{
    struct local_child *c = h->data;

    c->s->handles--;
    if (--c->open == 0)
        child_finish(c);
}

static void child_close_pipe(struct local_child *c, int i)
{
    if (!c->pipe_open[i])
        return;
    c->pipe_open[i] = false;
    uv_close((uv_handle_t *)&c->pipes[i], child_closed);
}

static void child_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct local_child *c = h->data;

    (void)hint;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void child_keep(struct local_child *c, const char *data, size_t n)
{
    struct local *s = c->s;
    size_t room = c->capture - c->r.len;

    if (n > room) {
        c->r.truncated = true;
        n = room;
    }
    if (n == 0)
        return;
    if (c->r.len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        char *p;
        while (cap < c->r.len + n + 1)
            cap *= 2;
        p = s->host->realloc(c->r.out, cap);
        if (p == NULL) {
            c->r.truncated = true;
            return;
        }
        c->r.out = p;
        c->cap = cap;
    }
    memcpy(c->r.out + c->r.len, data, n);
    c->r.len += n;
    c->r.out[c->r.len] = '\0';
}

static void child_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct local_child *c = st->data;
    int i = st == (uv_stream_t *)&c->pipes[0] ? 0 : 1;

    if (nread > 0)
        child_keep(c, buf->base, (size_t)nread);
    else if (nread < 0)
        child_close_pipe(c, i);
}

static void child_grace(void *arg)
{
    struct local_child *c = arg;

    c->grace_timer = 0; /* something of the group still holds the pipes */
    child_close_pipe(c, 0);
    child_close_pipe(c, 1);
}

static void child_timeout(void *arg)
{
    struct local_child *c = arg;

    c->timeout_timer = 0;
    c->r.timed_out = true;
    local_child_kill(c, SIGKILL);
}

static void child_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct local_child *c = p->data;
    struct local *s = c->s;

    c->exited = true;
    c->r.exit_status = term_signal ? 128 + term_signal : exit_status;
    c->r.term_signal = term_signal;
    if (c->kill_group)
        kill(-c->pid, SIGKILL); /* what the command left behind in its group */
    if (c->timeout_timer != 0)
        s->host->timer_stop(s->host, c->timeout_timer);
    c->timeout_timer = 0;
    if (c->pipe_open[0] || c->pipe_open[1])
        c->grace_timer = s->host->timer_start(s->host, LOCAL_GRACE_MS, child_grace, c);
    if ((c->pipe_open[0] || c->pipe_open[1]) && c->grace_timer == 0)
        child_grace(c);
    uv_close((uv_handle_t *)p, child_closed);
}

void local_child_kill(struct local_child *c, int sig)
{
    if (!c->exited && c->pid > 0)
        kill(-c->pid, sig);
}

static int child_pipes(struct local_child *c, uv_stdio_container_t stdio[3])
{
    struct local *s = c->s;

    stdio[0].flags = UV_IGNORE;
    if (c->capture == 0) {
        stdio[1].flags = UV_IGNORE;
        stdio[2].flags = UV_IGNORE;
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        int rc = uv_pipe_init(s->host->loop, &c->pipes[i], 0);
        if (rc < 0)
            return rc;
        c->pipes[i].data = c;
        c->pipe_open[i] = true;
        c->open++;
        s->handles++;
        stdio[1 + i].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[1 + i].data.stream = (uv_stream_t *)&c->pipes[i];
    }
    return 0;
}

int local_child_run(struct local *s, const struct local_child_opts *o, local_child_cb cb, void *arg,
                    struct local_child **out)
{
    struct local_child *c = s->host->calloc(1, sizeof(*c));
    uv_stdio_container_t stdio[3];
    uv_process_options_t po;
    int rc;

    if (c == NULL)
        return ORC_ENOMEM;
    c->s = s;
    c->cb = cb;
    c->arg = arg;
    c->capture = o->capture;
    c->kill_group = o->kill_group;
    c->keep_on_close = o->keep_on_close;
    c->free_arg = o->free_arg;
    memset(stdio, 0, sizeof(stdio));
    rc = child_pipes(c, stdio);
    if (rc == 0) {
        memset(&po, 0, sizeof(po));
        po.file = o->argv[0];
        po.args = (char **)o->argv;
        po.env = (char **)o->env;
        po.cwd = o->cwd;
        po.flags = UV_PROCESS_DETACHED; /* setsid: its own process group */
        po.stdio_count = 3;
        po.stdio = stdio;
        po.exit_cb = child_exit;
        c->proc.data = c;
        rc = uv_spawn(s->host->loop, &c->proc, &po);
        c->open++; /* the handle is initialised even when the spawn failed */
        s->handles++;
        if (rc < 0)
            uv_close((uv_handle_t *)&c->proc, child_closed);
    }
    if (rc < 0) {
        c->abandoned = true;
        c->free_arg = false; /* the caller keeps arg when the spawn fails */
        c->exited = true;
        child_close_pipe(c, 0);
        child_close_pipe(c, 1);
        if (c->open == 0)
            s->host->free(c);
        return rc;
    }
    c->pid = c->proc.pid;
    c->linked = true;
    c->next = s->children;
    if (s->children)
        s->children->prev = c;
    s->children = c;
    for (int i = 0; i < 2; i++)
        if (c->pipe_open[i] &&
            uv_read_start((uv_stream_t *)&c->pipes[i], child_alloc, child_read) < 0)
            child_close_pipe(c, i);
    if (o->timeout_ms > 0)
        c->timeout_timer = s->host->timer_start(s->host, o->timeout_ms, child_timeout, c);
    if (out)
        *out = c;
    return 0;
}

void local_children_abandon(struct local *s)
{
    for (struct local_child *c = s->children; c != NULL; c = c->next) {
        c->abandoned = true;
        child_stop_timers(c);
        if (!c->keep_on_close)
            local_child_kill(c, SIGKILL);
        child_close_pipe(c, 0);
        child_close_pipe(c, 1);
        if (!uv_is_closing((uv_handle_t *)&c->proc))
            uv_close((uv_handle_t *)&c->proc, child_closed);
    }
}

/* ---- workload timers and runs ---------------------------------------------------------- */

typedef void (*tick_fn)(struct local_wl *w);

struct local_tick {
    struct local *s;
    struct local_wl *wl;
    tick_fn fn;
    uv_timer_t t;
};

struct local_run {
    struct local *s;
    struct local_wl *wl;
    uv_process_t proc;
};

static void tick_closed(uv_handle_t *h)
{
    struct local_tick *tk = h->data;
    struct local *s = tk->s;

    s->handles--;
    s->host->free(tk);
    local_close_check(s);
}

static void tick_fire(uv_timer_t *t)
{
    struct local_tick *tk = t->data;

    if (tk->wl != NULL)
        tk->fn(tk->wl);
}

static int tick_start(struct local_wl *w, uint64_t ms, tick_fn fn)
{
    struct local *s = w->node->s;

    if (w->tick == NULL) {
        struct local_tick *tk = s->host->calloc(1, sizeof(*tk));
        if (tk == NULL)
            return ORC_ENOMEM;
        uv_timer_init(s->host->loop, &tk->t);
        tk->t.data = tk;
        tk->s = s;
        tk->wl = w;
        s->handles++;
        w->tick = tk;
    }
    w->tick->fn = fn;
    return uv_timer_start(&w->tick->t, tick_fire, ms, 0);
}

static void tick_stop(struct local_wl *w)
{
    if (w->tick != NULL)
        uv_timer_stop(&w->tick->t);
}

static void tick_close(struct local_wl *w)
{
    if (w->tick == NULL)
        return;
    w->tick->wl = NULL;
    uv_close((uv_handle_t *)&w->tick->t, tick_closed);
    w->tick = NULL;
}

static void run_closed(uv_handle_t *h)
{
    struct local_run *r = h->data;
    struct local *s = r->s;

    s->handles--;
    s->host->free(r);
    local_close_check(s);
}

/* ---- names ------------------------------------------------------------------------------- */

static const char *const wl_state_names[] = {"running", "backoff", "stopping", "stopped",
                                             "exited",  "lost",    "failed"};

const char *local_wl_state_name(enum local_wl_state st)
{
    return (unsigned)st < sizeof(wl_state_names) / sizeof(wl_state_names[0]) ? wl_state_names[st]
                                                                             : "unknown";
}

int local_wl_state_parse(const char *name, enum local_wl_state *out)
{
    for (size_t i = 0; name && i < sizeof(wl_state_names) / sizeof(wl_state_names[0]); i++) {
        if (strcmp(name, wl_state_names[i]) == 0) {
            *out = (enum local_wl_state)i;
            return 0;
        }
    }
    return ORC_EINVAL;
}

bool local_wl_live(const struct local_wl *w)
{
    return w->run != NULL || (w->polled && w->pid > 0);
}

/* ---- argument and environment vectors ------------------------------------------------------- */

struct vec {
    struct local *s;
    char **v;
    size_t n, cap;
    bool oom;
};

static void vec_push(struct vec *v, char *str) /* takes str */
{
    if (str == NULL || v->oom) {
        v->oom = true;
        v->s->host->free(str);
        return;
    }
    if (v->n + 2 > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        char **p = v->s->host->realloc(v->v, cap * sizeof(*p));
        if (p == NULL) {
            v->oom = true;
            v->s->host->free(str);
            return;
        }
        v->v = p;
        v->cap = cap;
    }
    v->v[v->n++] = str;
    v->v[v->n] = NULL;
}

static void vec_add(struct vec *v, const char *str)
{
    vec_push(v, local_strdup(v->s, str));
}

/* Sets KEY=VALUE (given as "KEY=VALUE"), replacing an earlier KEY. */
static void env_put(struct vec *v, char *kv)
{
    size_t klen;

    if (kv == NULL) {
        v->oom = true;
        return;
    }
    klen = strcspn(kv, "=") + 1;
    for (size_t i = 0; i < v->n; i++) {
        if (strncmp(v->v[i], kv, klen) == 0) {
            v->s->host->free(v->v[i]);
            v->v[i] = kv;
            return;
        }
    }
    vec_push(v, kv);
}

static void vec_free(struct vec *v)
{
    for (size_t i = 0; i < v->n; i++)
        v->s->host->free(v->v[i]);
    v->s->host->free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

/* The GPUs of a workload: its pins, else the node's. */
static const uint32_t *gpus_of(const struct local_node *n, const uint32_t *pins, uint32_t npins,
                               uint32_t *count)
{
    *count = pins ? npins : n->ngpus;
    return pins ? pins : n->gpus;
}

/* "0,1" or "" */
static void gpu_list(const uint32_t *g, uint32_t ng, char *buf, size_t len)
{
    size_t k = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < ng && k + 12 < len; i++)
        k += (size_t)snprintf(buf + k, len - k, "%s%u", i ? "," : "", g[i]);
}

struct spec { /* what runs: a workload or an exec */
    struct local_node *node;
    const char *id; /* container name part */
    char *const *argv;
    char *const *env; /* "K=V" additions */
    const uint32_t *pins;
    uint32_t npins;
    const char *workdir;
    bool named;    /* a container name (workloads), not for exec */
    uint16_t port; /* $PORT: the request's, else the node's; 0: none */
    /* for gpu-agent: */
    const char *name;       /* the workload's name (its log is NAME.log) */
    bool service;           /* restarted by the agent; else a job */
    const char *ready_path; /* readiness over HTTP; NULL: TCP on port (if any) */
};

static void base_env(struct local *s, struct vec *e, const char *home, bool client)
{
    static const char *const client_pass[] = {"DOCKER_HOST",      "DOCKER_CONFIG",
                                              "CONTAINER_HOST",   "XDG_RUNTIME_DIR",
                                              "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"};
    const char *path = getenv("PATH"), *lang = getenv("LANG");

    env_put(e, local_printf(s, "PATH=%s", path && *path ? path : DEFAULT_PATH));
    env_put(e, local_printf(s, "HOME=%s", home));
    env_put(e, local_printf(s, "LANG=%s", lang && *lang ? lang : "C.UTF-8"));
    for (size_t i = 0; client && i < sizeof(client_pass) / sizeof(client_pass[0]); i++)
        if (getenv(client_pass[i]) != NULL)
            env_put(e, local_printf(s, "%s=%s", client_pass[i], getenv(client_pass[i])));
}

/* argv/env for a process on the host: the clean base, the request's
 * variables, then what the driver owns (GPU pinning, PORT). */
static int host_cmd(struct local *s, const struct spec *sp, const char *dir, struct vec *argv,
                    struct vec *env)
{
    char gpus[LOCAL_MAX_GPUS * 4 + 8];
    uint32_t ng;
    const uint32_t *g = gpus_of(sp->node, sp->pins, sp->npins, &ng);

    base_env(s, env, dir, false);
    for (size_t i = 0; sp->env && sp->env[i]; i++)
        env_put(env, local_strdup(s, sp->env[i]));
    gpu_list(g, ng, gpus, sizeof(gpus));
    env_put(env, local_printf(s, "CUDA_VISIBLE_DEVICES=%s", gpus));
    env_put(env, local_strdup(s, "CUDA_DEVICE_ORDER=PCI_BUS_ID"));
    if (sp->port != 0)
        env_put(env, local_printf(s, "PORT=%u", sp->port));
    for (size_t i = 0; sp->argv[i]; i++)
        vec_add(argv, sp->argv[i]);
    return argv->oom || env->oom ? ORC_ENOMEM : 0;
}

/* The same through gpu-agent: `gpu-agent run [options] -- argv` with the
 * node's GPUs as the allocation (the agent checks them, pins the healthy
 * ones in CUDA_VISIBLE_DEVICES, writes NAME.log with rotation, restarts a
 * service with this site's policy and reports to the orchestrator when the
 * request's environment says where). The agent itself sees every GPU in PCI
 * order, so that its indices are the machine's. */
static int agent_cmd(struct local *s, const struct spec *sp, const char *dir, struct vec *argv,
                     struct vec *env)
{
    char gpus[LOCAL_MAX_GPUS * 4 + 8];
    uint32_t ng;
    const uint32_t *g = gpus_of(sp->node, sp->pins, sp->npins, &ng);

    const char *path = getenv("PATH"), *slash = strrchr(s->agent_path, '/');

    base_env(s, env, dir, false);
    /* the runtime's programs (gpu-train, gpu-serve) are where the agent is */
    env_put(env, local_printf(s, "PATH=%.*s:%s", (int)(slash - s->agent_path), s->agent_path,
                              path && *path ? path : DEFAULT_PATH));
    for (size_t i = 0; sp->env && sp->env[i]; i++)
        env_put(env, local_strdup(s, sp->env[i]));
    env_put(env, local_strdup(s, "CUDA_DEVICE_ORDER=PCI_BUS_ID"));
    if (sp->port != 0)
        env_put(env, local_printf(s, "PORT=%u", sp->port));
    gpu_list(g, ng, gpus, sizeof(gpus));
    vec_add(argv, s->agent_path);
    vec_add(argv, "run");
    vec_add(argv, "--name");
    vec_add(argv, sp->name);
    vec_add(argv, "--kind");
    vec_add(argv, sp->service ? "service" : "job");
    vec_add(argv, "--gpus");
    vec_add(argv, ng ? gpus : "none");
    vec_add(argv, "--check");
    vec_add(argv, s->agent_check ? s->agent_check : "quick");
    vec_add(argv, "--log-dir");
    vec_add(argv, dir);
    vec_push(argv, local_printf(s, "--stop-grace-ms=%" PRIu64, s->stop_timeout_ms * 3 / 4));
    if (sp->service) {
        vec_push(argv, local_printf(s, "--restart-backoff-ms=%" PRIu64, s->backoff_ms));
        vec_push(argv, local_printf(s, "--restart-backoff-max-ms=%" PRIu64, s->backoff_max_ms));
        vec_push(argv, local_printf(s, "--restart-window-ms=%" PRIu64, s->window_ms));
        vec_push(argv, local_printf(s, "--restart-max=%u", s->max_failures));
        vec_push(argv, local_printf(s, "--ready-timeout-ms=%" PRIu64, s->ready_timeout_ms));
        if (sp->port != 0 && sp->ready_path != NULL)
            vec_push(argv, local_printf(s, "--ready-http=%u:%s", sp->port, sp->ready_path));
        else if (sp->port != 0)
            vec_push(argv, local_printf(s, "--ready-tcp=%u", sp->port));
    }
    vec_add(argv, "--");
    for (size_t i = 0; sp->argv[i]; i++)
        vec_add(argv, sp->argv[i]);
    return argv->oom || env->oom ? ORC_ENOMEM : 0;
}

/* `docker|podman run` of the node's image with the sandbox mounted at /work. */
static int container_cmd(struct local *s, const struct spec *sp, const char *dir, struct vec *argv,
                         struct vec *env)
{
    const struct local_node *n = sp->node;
    const char *home = getenv("HOME");
    char gpus[LOCAL_MAX_GPUS * 4 + 8];
    uint32_t ng;
    const uint32_t *g = gpus_of(n, sp->pins, sp->npins, &ng);

    base_env(s, env, home && *home ? home : dir, true);
    vec_add(argv, s->rt_path);
    vec_add(argv, "run");
    vec_add(argv, "--rm");
    vec_add(argv, "--init");
    if (sp->named) {
        vec_add(argv, "--name");
        vec_push(argv, local_printf(s, "orc-%s-%s", n->name, sp->id));
    }
    vec_add(argv, "--network=host");
    vec_push(argv, local_printf(s, "--volume=%s:/work", dir));
    vec_push(argv, local_printf(s, "--workdir=/work%s%s", sp->workdir ? "/" : "",
                                sp->workdir ? sp->workdir : ""));
    if (n->cpus > 0)
        vec_push(argv, local_printf(s, "--cpus=%u", n->cpus));
    if (n->mem > 0)
        vec_push(argv, local_printf(s, "--memory=%" PRIu64 "b", n->mem));
    for (size_t i = 0; sp->env && sp->env[i]; i++) {
        vec_add(argv, "--env");
        vec_add(argv, sp->env[i]);
    }
    if (sp->port != 0)
        vec_push(argv, local_printf(s, "--env=PORT=%u", sp->port));
    gpu_list(g, ng, gpus, sizeof(gpus));
    if (ng > 0 && s->rt == LOCAL_RT_PODMAN) {
        for (uint32_t i = 0; i < ng; i++) /* CDI names */
            vec_push(argv, local_printf(s, "--device=nvidia.com/gpu=%u", g[i]));
    } else if (ng > 0) {
        vec_push(argv, local_printf(s, "--gpus=\"device=%s\"", gpus));
    }
    vec_add(argv, n->image);
    for (size_t i = 0; sp->argv[i]; i++)
        vec_add(argv, sp->argv[i]);
    return argv->oom || env->oom ? ORC_ENOMEM : 0;
}

static int build_cmd(struct local *s, const struct spec *sp, char **cwd, struct vec *argv,
                     struct vec *env)
{
    char *dir = local_node_path(s, sp->node->name, NULL);
    int rc;

    *cwd = NULL;
    argv->s = env->s = s;
    if (dir == NULL)
        return ORC_ENOMEM;
    rc = sp->node->image ? container_cmd(s, sp, dir, argv, env)
         : s->agent_path ? agent_cmd(s, sp, dir, argv, env)
                         : host_cmd(s, sp, dir, argv, env);
    if (rc == 0 && sp->workdir != NULL && sp->node->image == NULL) {
        *cwd = local_printf(s, "%s/%s", dir, sp->workdir);
        rc = *cwd ? local_mkdir_p(*cwd, 0700) : ORC_ENOMEM;
        s->host->free(dir);
    } else {
        *cwd = dir;
    }
    if (rc < 0) {
        vec_free(argv);
        vec_free(env);
        s->host->free(*cwd);
        *cwd = NULL;
    }
    return rc;
}

/* ---- workload files ------------------------------------------------------------------------- */

/* The workload's log, or (agent: true) the file gpu-agent's own output goes
 * to when it launches the workload, since the agent writes and rotates the
 * workload's log itself. */
static int open_log_of(struct local *s, const struct local_wl *w, bool agent)
{
    char *path = local_printf(s, "%s/%s/%s%s.log", s->work_dir, w->node->name, w->id,
                              agent ? ".agent" : "");
    int fd;

    if (path == NULL)
        return -ENOMEM;
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    s->host->free(path);
    return fd < 0 ? -errno : fd;
}

static int open_log(struct local *s, const struct local_wl *w)
{
    return open_log_of(s, w, false);
}

/* A line of the driver's own in the workload's log: restarts, giving up. */
static void wl_note(struct local_wl *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wl_note(struct local_wl *w, const char *fmt, ...)
{
    struct local *s = w->node->s;
    char line[512];
    struct tm tm;
    time_t now = time(NULL);
    va_list ap;
    size_t n;
    int fd = open_log(s, w);

    if (fd < 0)
        return;
    gmtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "[orc-local %Y-%m-%dT%H:%M:%SZ] ", &tm);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(line);
    line[n++] = '\n';
    if (write(fd, line, n) < 0)
        orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_DEBUG,
                              "local: cannot write to %s's log", w->id);
    close(fd);
}

static void wl_status_file(struct local_wl *w)
{
    struct local *s = w->node->s;
    char *path = local_printf(s, "%s/%s/%s.status", s->work_dir, w->node->name, w->id);
    char text[256];

    if (path == NULL)
        return;
    if (w->st == LOCAL_WL_EXITED || w->st == LOCAL_WL_STOPPED)
        snprintf(text, sizeof(text),
                 "{\"state\": \"%s\", \"exit_status\": %d, \"signal\": %d, \"ended_ms\": "
                 "%" PRId64 "}\n",
                 local_wl_state_name(w->st), w->exit_status, w->term_signal, local_now_ms());
    else
        snprintf(text, sizeof(text),
                 "{\"state\": \"lost\", \"exit_status\": null, \"ended_ms\": %" PRId64 "}\n",
                 local_now_ms());
    if (local_write_atomic(path, text, strlen(text)) < 0)
        s->host->log(s->host, ORC_DRV_LOG_ERROR, "local: cannot write %s", path);
    s->host->free(path);
}

/* ---- spawning and supervision -----------------------------------------------------------------
 */

static void wl_ended(struct local_wl *w, int64_t code, int sig, bool known, bool sweep);

static void run_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    struct local_run *r = p->data;
    struct local_wl *w = r->wl;

    uv_close((uv_handle_t *)p, run_closed);
    if (w == NULL)
        return;
    w->run = NULL;
    wl_ended(w, exit_status, term_signal, true, true);
}

static int wl_spawn(struct local_wl *w, char *err, size_t errlen)
{
    struct local_node *n = w->node;
    struct local *s = n->s;
    struct spec sp = {n,          w->id,   w->argv,
                      w->env,     w->gpus, w->npins,
                      w->workdir, true,    w->port ? w->port : n->port,
                      w->id,      w->service, w->ready_path};
    struct vec argv = {0}, env = {0};
    uv_stdio_container_t stdio[3];
    uv_process_options_t po;
    struct local_run *r;
    char *cwd;
    int fd, rc;

    rc = build_cmd(s, &sp, &cwd, &argv, &env);
    if (rc < 0) {
        snprintf(err, errlen, "%s", rc == ORC_ENOMEM ? "out of memory" : strerror(-rc));
        return rc;
    }
    fd = open_log_of(s, w, s->agent_path != NULL && n->image == NULL);
    r = fd >= 0 ? s->host->calloc(1, sizeof(*r)) : NULL;
    if (r == NULL) {
        rc = fd < 0 ? fd : ORC_ENOMEM;
        snprintf(err, errlen, "cannot open its log: %s", fd < 0 ? strerror(-fd) : "out of memory");
        goto out;
    }
    r->s = s;
    r->wl = w;
    r->proc.data = r;
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = stdio[2].flags = UV_INHERIT_FD;
    stdio[1].data.fd = stdio[2].data.fd = fd;
    memset(&po, 0, sizeof(po));
    po.file = argv.v[0];
    po.args = argv.v;
    po.env = env.v;
    po.cwd = cwd;
    po.flags = UV_PROCESS_DETACHED; /* a new session: its own process group */
    po.stdio_count = 3;
    po.stdio = stdio;
    po.exit_cb = run_exit;
    rc = uv_spawn(s->host->loop, &r->proc, &po);
    s->handles++;
    if (rc < 0) {
        snprintf(err, errlen, "'%s': %s", argv.v[0], uv_strerror(rc));
        r->wl = NULL;
        uv_close((uv_handle_t *)&r->proc, run_closed);
        goto out;
    }
    w->run = r;
    w->polled = false;
    w->pid = r->proc.pid;
    w->start_time = local_pid_start_time(w->pid);
    w->started_ms = local_now_ms();
    w->st = LOCAL_WL_RUNNING;
    w->exit_status = -1;
    w->term_signal = 0;
out:
    if (fd >= 0)
        close(fd);
    vec_free(&argv);
    vec_free(&env);
    s->host->free(cwd);
    return rc;
}

static void wl_restart(struct local_wl *w);
static void wl_poll(struct local_wl *w);

/* gpu-agent's exit status when it gave up on a service (it restarts the
 * service itself, with this site's policy) */
#define AGENT_GAVE_UP 70

/* A service stopped: restart it later, or give up and fail the node
 * (agent_gave_up: its gpu-agent did already). */
static void service_down(struct local_wl *w, const char *what, bool agent_gave_up)
{
    struct local_node *n = w->node;
    struct local *s = n->s;
    int64_t now = local_now_ms();
    uint64_t delay;

    if (w->started_ms != 0 && now - w->started_ms >= (int64_t)s->window_ms)
        w->backoff_ms = s->backoff_ms; /* it ran well for a while: start over */
    w->fails[w->nfails % LOCAL_MAX_FAILS] = now;
    w->nfails++;
    if (agent_gave_up ||
        (w->nfails >= s->max_failures &&
         now - w->fails[(w->nfails - s->max_failures) % LOCAL_MAX_FAILS] <= (int64_t)s->window_ms)) {
        w->st = LOCAL_WL_FAILED;
        s->host->free(n->failed);
        n->failed = agent_gave_up
                        ? local_printf(s,
                                       "service %s stopped %u times within %" PRIu64
                                       " s (gpu-agent gave up; its log says why)",
                                       w->id, s->max_failures, s->window_ms / 1000)
                        : local_printf(s,
                                       "service %s stopped %u times within %" PRIu64
                                       " s (last: %s)",
                                       w->id, s->max_failures, s->window_ms / 1000, what);
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_ERROR,
                              "local: node %s: %s: node FAILED", n->name,
                              n->failed ? n->failed : what);
        wl_note(w, "%s; giving up", what);
        local_persist(s);
        return;
    }
    w->st = LOCAL_WL_BACKOFF;
    delay = w->backoff_ms;
    w->backoff_ms = w->backoff_ms * 2 > s->backoff_max_ms ? s->backoff_max_ms : w->backoff_ms * 2;
    orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_WARN,
                          "local: node %s: service %s %s; restart in %" PRIu64 " ms", n->name,
                          w->id, what, delay);
    wl_note(w, "%s; restarting in %" PRIu64 " ms", what, delay);
    if (tick_start(w, delay, wl_restart) < 0)
        orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_ERROR,
                              "local: cannot arm the restart of %s", w->id);
    local_persist(s);
}

/* A workload stopped by deprovision or on request: nothing restarts it. */
static void wl_stopped(struct local_wl *w)
{
    struct local_node *n = w->node;
    struct local *s = n->s;

    w->st = LOCAL_WL_STOPPED;
    if (w->kill_timer != 0)
        s->host->timer_stop(s->host, w->kill_timer);
    w->kill_timer = 0;
    if (w->held && !n->deleting) {
        if (!w->service)
            wl_status_file(w);
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO, "local: node %s: %s %s stopped",
                              n->name, w->service ? "service" : "job", w->id);
        local_persist(s);
    }
    local_node_kick(n);
}

static void ended_what(char *what, size_t len, int64_t code, int sig, bool known)
{
    if (!known)
        snprintf(what, len, "ended while the daemon was away");
    else if (sig)
        snprintf(what, len, "killed by signal %d", sig);
    else
        snprintf(what, len, "exited with status %lld", (long long)code);
}

/* The workload's process (leader) is gone. sweep: its process group may be
 * signalled safely (the pid was not reused), to kill what it left behind. */
static void wl_ended(struct local_wl *w, int64_t code, int sig, bool known, bool sweep)
{
    struct local_node *n = w->node;
    struct local *s = n->s;
    char what[96];

    if (sweep && w->pid > 0) {
        kill(-w->pid, SIGKILL);
        w->drain_pgid = w->pid; /* a stop answers once the group is empty */
        w->drain_until_ms = local_now_ms() + LOCAL_DRAIN_MS;
    }
    w->pid = 0;
    w->start_time = 0;
    w->polled = false;
    tick_stop(w);
    w->exit_status = known ? (int)(sig ? 128 + sig : code) : -1;
    w->term_signal = known ? sig : 0;
    if (n->deleting || w->st == LOCAL_WL_STOPPING || w->held) {
        wl_stopped(w);
        return;
    }
    ended_what(what, sizeof(what), code, sig, known);
    local_ready_exited(w, what); /* first: its log's tail is the process's own */
    if (w->service) {
        service_down(w, what,
                     known && sig == 0 && code == AGENT_GAVE_UP && s->agent_path != NULL &&
                         n->image == NULL);
        return;
    }
    w->st = known ? LOCAL_WL_EXITED : LOCAL_WL_LOST;
    orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO, "local: node %s: job %s %s", n->name,
                          w->id, what);
    wl_status_file(w);
    local_persist(s);
}

static void wl_restart(struct local_wl *w)
{
    struct local *s = w->node->s;
    char err[256];

    if (w->st != LOCAL_WL_BACKOFF)
        return;
    w->restarts++;
    if (wl_spawn(w, err, sizeof(err)) < 0) {
        char what[300];
        snprintf(what, sizeof(what), "cannot start: %s", err);
        w->started_ms = 0;
        service_down(w, what, false);
        return;
    }
    orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_INFO,
                          "local: node %s: service %s restarted (pid %ld)", w->node->name, w->id,
                          (long)w->pid);
    local_persist(s);
}

/* A workload that is not our child: is its process still there? */
static void wl_poll(struct local_wl *w)
{
    struct local *s = w->node->s;
    int status;
    bool reaped;

    if (local_pid_alive(w->pid, w->start_time, &status, &reaped)) {
        tick_start(w, w->st == LOCAL_WL_STOPPING ? STOP_POLL_MS : s->poll_ms, wl_poll);
        return;
    }
    if (reaped)
        wl_ended(w, WIFEXITED(status) ? WEXITSTATUS(status) : 0,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0, true, true);
    else
        wl_ended(w, 0, 0, false, !pid_exists(w->pid));
}

/* A held workload loaded from state.json: still running (its stop was cut
 * short by a site close or a crash): stopped now; else it stays stopped. */
static void wl_attach_held(struct local_wl *w)
{
    int status = 0;
    bool reaped = false;

    if (w->pid > 0 && (w->st == LOCAL_WL_RUNNING || w->st == LOCAL_WL_STOPPING) &&
        local_pid_alive(w->pid, w->start_time, &status, &reaped)) {
        w->polled = true;
        w->st = LOCAL_WL_RUNNING;
        local_wl_hold(w, w->resume);
        return;
    }
    w->pid = 0;
    w->start_time = 0;
    if (w->st == LOCAL_WL_RUNNING || w->st == LOCAL_WL_STOPPING || w->st == LOCAL_WL_BACKOFF)
        w->st = LOCAL_WL_STOPPED;
}

void local_wl_attach(struct local_wl *w)
{
    struct local *s = w->node->s;

    if (w->run != NULL || w->polled)
        return;
    if (w->held) {
        wl_attach_held(w);
        return;
    }
    switch (w->st) {
    case LOCAL_WL_RUNNING:
    case LOCAL_WL_STOPPING:
        w->st = LOCAL_WL_RUNNING;
        w->polled = w->pid > 0;
        if (w->polled) {
            wl_poll(w); /* alive: polled from now on; gone: restarted or recorded */
            if (w->polled)
                orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_INFO,
                                      "local: node %s: workload %s (pid %ld) re-attached",
                                      w->node->name, w->id, (long)w->pid);
        } else {
            wl_ended(w, 0, 0, false, false);
        }
        break;
    case LOCAL_WL_BACKOFF:
        if (w->tick != NULL && uv_is_active((uv_handle_t *)&w->tick->t))
            break; /* its restart is armed already */
        if (tick_start(w, w->backoff_ms, wl_restart) < 0)
            orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_ERROR,
                                  "local: cannot arm the restart of %s", w->id);
        break;
    default:
        break;
    }
}

/* ---- starting, stopping, freeing
 * ----------------------------------------------------------------- */

static int copy_req(struct local *s, struct local_wl *w, const struct orc_exec_req *req)
{
    size_t n = 0;

    while (req->argv[n] != NULL)
        n++;
    w->argv = s->host->calloc(n + 1, sizeof(char *));
    w->env = s->host->calloc(req->nenv + 1, sizeof(char *));
    if (w->argv == NULL || w->env == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if ((w->argv[i] = local_strdup(s, req->argv[i])) == NULL)
            return ORC_ENOMEM;
    for (size_t i = 0; i < req->nenv; i++)
        if ((w->env[i] = local_printf(s, "%s=%s", req->env[i].key, req->env[i].value)) == NULL)
            return ORC_ENOMEM;
    if (req->gpus != NULL) {
        w->gpus = s->host->calloc(req->ngpus + 1, sizeof(*w->gpus));
        if (w->gpus == NULL)
            return ORC_ENOMEM;
        memcpy(w->gpus, req->gpus, req->ngpus * sizeof(*w->gpus));
        w->npins = (uint32_t)req->ngpus;
    }
    if (req->workdir != NULL && (w->workdir = local_strdup(s, req->workdir)) == NULL)
        return ORC_ENOMEM;
    w->port = req->port;
    if (req->ready_path != NULL && (w->ready_path = local_strdup(s, req->ready_path)) == NULL)
        return ORC_ENOMEM;
    return 0;
}

/* What a workload runs, freed (the workload stays). */
static void wl_def_free(struct local_wl *w)
{
    struct local *s = w->node->s;

    local_strv_free(s, w->argv);
    local_strv_free(s, w->env);
    s->host->free(w->gpus);
    s->host->free(w->workdir);
    s->host->free(w->ready_path);
    w->argv = w->env = NULL;
    w->gpus = NULL;
    w->npins = 0;
    w->workdir = w->ready_path = NULL;
    w->port = 0;
}

int local_wl_redefine(struct local_wl *w, const struct orc_exec_req *req)
{
    struct local_wl old = *w;
    int rc;

    w->argv = w->env = NULL; /* old keeps them until the copy succeeded */
    w->gpus = NULL;
    w->npins = 0;
    w->workdir = w->ready_path = NULL;
    w->port = 0;
    rc = copy_req(w->node->s, w, req);
    if (rc < 0) {
        wl_def_free(w);
        w->argv = old.argv;
        w->env = old.env;
        w->gpus = old.gpus;
        w->npins = old.npins;
        w->workdir = old.workdir;
        w->ready_path = old.ready_path;
        w->port = old.port;
        return rc;
    }
    wl_def_free(&old);
    return 0;
}

int local_wl_start(struct local *s, orc_op_t *op, struct local_node *n,
                   const struct orc_exec_req *req, struct local_wl **out)
{
    const char *id = req->workload ? req->workload : "main";
    struct local_wl *w = local_wl_find(n, id);
    char err[300];
    int rc;

    *out = w;
    if (w != NULL)
        return 0; /* idempotent: started once, never twice */
    w = s->host->calloc(1, sizeof(*w));
    if (w == NULL)
        return ORC_ENOMEM;
    w->node = n;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->service = n->kind != ORC_KIND_JOB;
    w->backoff_ms = s->backoff_ms;
    w->exit_status = -1;
    rc = copy_req(s, w, req);
    if (rc == 0 && wl_spawn(w, err, sizeof(err)) < 0) {
        rc = orc_op_failf(op, ORC_EINVAL, "local: cannot start workload %s on %s: %s", id, n->name,
                          err);
    }
    if (rc < 0) {
        local_wl_free(w);
        return rc;
    }
    w->next = n->wls;
    n->wls = w;
    orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO,
                          "local: node %s: %s %s started (pid %ld)", n->name,
                          w->service ? "service" : "job", id, (long)w->pid);
    local_persist(s);
    *out = w;
    return 0;
}

/* Signals the workload's process group, after checking that pid is still
 * the process we started (polled workloads). false: it is gone. */
static bool wl_signal(struct local_wl *w, int sig)
{
    int status;
    bool reaped;

    if (w->run != NULL) {
        kill(-w->pid, sig);
        return true;
    }
    if (!w->polled || w->pid <= 0)
        return false;
    if (!local_pid_alive(w->pid, w->start_time, &status, &reaped)) {
        wl_poll(w); /* records the end */
        return false;
    }
    kill(-w->pid, sig);
    return true;
}

bool local_wl_stop(struct local_wl *w)
{
    tick_stop(w);
    if (!local_wl_live(w)) {
        if (w->st == LOCAL_WL_RUNNING || w->st == LOCAL_WL_BACKOFF)
            w->st = LOCAL_WL_STOPPED;
        return false;
    }
    w->st = LOCAL_WL_STOPPING;
    if (!wl_signal(w, SIGTERM))
        return false;
    wl_note(w, "stopping (SIGTERM to process group %ld)", (long)w->pid);
    if (w->polled)
        tick_start(w, STOP_POLL_MS, wl_poll);
    return true;
}

void local_wl_kill(struct local_wl *w)
{
    if (local_wl_live(w) && wl_signal(w, SIGKILL))
        wl_note(w, "still running: SIGKILL to process group %ld", (long)w->pid);
}

bool local_wl_draining(struct local_wl *w)
{
    if (w->drain_pgid <= 0)
        return false;
    if ((kill(-w->drain_pgid, 0) == 0 || errno == EPERM) && local_now_ms() < w->drain_until_ms)
        return true;
    w->drain_pgid = 0;
    return false;
}

bool local_wl_running(const struct local_wl *w)
{
    return !w->held && (local_wl_live(w) || w->st == LOCAL_WL_BACKOFF);
}

static void wl_kill_fire(void *arg)
{
    struct local_wl *w = arg;
    struct local *s = w->node->s;

    w->kill_timer = 0;
    orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_WARN,
                          "local: node %s: workload %s still running %" PRIu64
                          " ms after SIGTERM: SIGKILL",
                          w->node->name, w->id, s->stop_timeout_ms);
    local_wl_kill(w);
}

bool local_wl_hold(struct local_wl *w, bool resume)
{
    struct local *s = w->node->s;

    w->held = true;
    w->resume = resume;
    local_ready_fail_all(w, ORC_ECONFLICT, "stopped before it was ready");
    if (!local_wl_stop(w))
        return false; /* not running (or its end was just recorded) */
    if (w->kill_timer == 0)
        w->kill_timer = s->host->timer_start(s->host, s->stop_timeout_ms, wl_kill_fire, w);
    orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_INFO,
                          "local: node %s: %s %s stopping (process group %ld)", w->node->name,
                          w->service ? "service" : "job", w->id, (long)w->pid);
    return true;
}

int local_wl_release(struct local_wl *w, char *err, size_t errlen)
{
    struct local *s = w->node->s;
    int rc;

    if (local_wl_live(w)) {
        snprintf(err, errlen, "it is still stopping");
        return ORC_ECONFLICT;
    }
    if (w->kill_timer != 0)
        s->host->timer_stop(s->host, w->kill_timer);
    w->kill_timer = 0;
    w->nfails = 0;
    w->backoff_ms = s->backoff_ms;
    wl_note(w, "starting again");
    rc = wl_spawn(w, err, errlen);
    if (rc < 0)
        return rc;
    w->held = false;
    w->resume = false;
    orc_host_log_resource(s->host, w->node->name, ORC_DRV_LOG_INFO,
                          "local: node %s: %s %s started again (pid %ld)", w->node->name,
                          w->service ? "service" : "job", w->id, (long)w->pid);
    return 0;
}

void local_wl_detach(struct local_wl *w)
{
    struct local *s = w->node->s;

    if (w->kill_timer != 0)
        s->host->timer_stop(s->host, w->kill_timer); /* the next open resumes the stop */
    w->kill_timer = 0;
    w->stop_ops = NULL;
    tick_close(w);
    if (w->run != NULL) {
        w->run->wl = NULL;
        uv_close((uv_handle_t *)&w->run->proc, run_closed); /* the process keeps running */
        w->run = NULL;
    }
    w->polled = false;
}

void local_wl_free(struct local_wl *w)
{
    struct local *s;

    if (w == NULL)
        return;
    s = w->node->s;
    local_ready_fail_all(w, ORC_ECANCELED, "its node is gone");
    if (w->kill_timer != 0)
        s->host->timer_stop(s->host, w->kill_timer);
    tick_close(w);
    if (w->run != NULL)
        w->run->wl = NULL; /* its exit closes the handle */
    wl_def_free(w);
    s->host->free(w);
}

/* ---- exec
 * ----------------------------------------------------------------------------------------- */

static void exec_done(struct local *s, void *arg, struct local_child_result *r)
{
    struct lop *lo = arg;
    orc_op_t *op = lo->op;
    int rc;

    lo->work = NULL;
    if (lo->canceled) {
        s->host->free(r->out);
        snprintf(op->error, sizeof(op->error), "local: exec canceled");
        lop_complete(lo, ORC_ECANCELED);
        return;
    }
    op->exit_status = (int32_t)r->exit_status;
    rc = s->host->op_output_set(op, r->out ? r->out : "", r->len);
    if (rc == 0 && r->truncated)
        rc = s->host->op_attr_set(op, "output_truncated", "true");
    s->host->free(r->out);
    lop_complete(lo, rc);
}

static bool ready_path_ok(const char *path)
{
    size_t n = 0;

    if (path[0] != '/')
        return false;
    for (; path[n] != '\0'; n++)
        if ((unsigned char)path[n] <= 0x20 || (unsigned char)path[n] >= 0x7f)
            return false;
    return n <= 1024;
}

static int check_req(struct local *s, orc_op_t *op, const struct local_node *n,
                     const struct orc_exec_req *req)
{
    size_t nargs = 0;

    if (req->argv == NULL || req->argv[0] == NULL || req->argv[0][0] == '\0')
        return orc_op_failf(op, ORC_EINVAL, "local: a command (argv) is required");
    while (req->argv[nargs] != NULL && nargs <= MAX_ARGS)
        nargs++;
    if (nargs > MAX_ARGS || req->nenv > MAX_ENV)
        return orc_op_failf(op, ORC_EINVAL, "local: more than %d arguments or variables", MAX_ARGS);
    for (size_t i = 0; i < req->nenv; i++) {
        const char *k = req->env[i].key;
        if (k == NULL || *k == '\0' || strchr(k, '=') != NULL || req->env[i].value == NULL)
            return orc_op_failf(op, ORC_EINVAL, "local: bad environment variable name '%s'",
                                k ? k : "(null)");
    }
    if (req->ready_path != NULL && !ready_path_ok(req->ready_path))
        return orc_op_failf(op, ORC_EINVAL,
                            "local: ready_path '%.64s' must be an HTTP path: '/' then at most "
                            "1023 printable characters, no spaces",
                            req->ready_path);
    if (req->workdir != NULL && !local_relpath_ok(req->workdir))
        return orc_op_failf(op, ORC_EINVAL,
                            "local: workdir '%s' must be a relative path inside the node",
                            req->workdir);
    for (size_t i = 0; req->gpus != NULL && i < req->ngpus; i++) {
        bool mine = false;
        for (uint32_t j = 0; j < n->ngpus; j++)
            mine |= n->gpus[j] == req->gpus[i];
        if (!mine || req->ngpus > LOCAL_MAX_GPUS)
            return orc_op_failf(op, ORC_EINVAL, "local: GPU %u is not one of node %s's",
                                req->gpus[i], n->name);
    }
    if (n->image != NULL && s->rt == LOCAL_RT_NONE)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "local: node %s runs image %s, but this site has no container runtime "
                            "(docker or podman not found on PATH)",
                            n->name, n->image);
    return 0;
}

int local_req_check(struct local *s, orc_op_t *op, const struct local_node *n,
                    const struct orc_exec_req *req)
{
    return check_req(s, op, n, req);
}

int local_exec(struct local *s, struct lop *lo, struct local_node *n,
               const struct orc_exec_req *req)
{
    struct vec argv = {0}, env = {0}, extra = {.s = s};
    struct local_child_opts o = {.capture = LOCAL_OUTPUT_MAX, .kill_group = true};
    struct local_child *c = NULL;
    struct spec sp;
    char *cwd = NULL;
    int rc;

    for (size_t i = 0; i < req->nenv; i++)
        vec_push(&extra, local_printf(s, "%s=%s", req->env[i].key, req->env[i].value));
    if (extra.oom) {
        vec_free(&extra);
        return ORC_ENOMEM;
    }
    sp = (struct spec){n,
                       "exec",
                       (char *const *)req->argv,
                       extra.v,
                       req->gpus,
                       (uint32_t)req->ngpus,
                       req->workdir,
                       false,
                       req->port ? req->port : n->port,
                       req->workload ? req->workload : "main",
                       false,
                       NULL};
    rc = build_cmd(s, &sp, &cwd, &argv, &env);
    vec_free(&extra);
    if (rc < 0)
        return orc_op_failf(lo->op, rc == ORC_ENOMEM ? rc : ORC_EIO, "local: exec on %s: %s",
                            n->name, rc == ORC_ENOMEM ? "out of memory" : strerror(-rc));
    o.argv = (const char *const *)argv.v;
    o.env = env.v;
    o.cwd = cwd;
    rc = local_child_run(s, &o, exec_done, lo, &c);
    if (rc < 0)
        rc = orc_op_failf(lo->op, rc == UV_ENOENT || rc == UV_EACCES ? ORC_EINVAL : ORC_EDRIVER,
                          "local: exec on %s: '%s': %s", n->name, argv.v[0], uv_strerror(rc));
    else
        lo->work = c;
    vec_free(&argv);
    vec_free(&env);
    s->host->free(cwd);
    return rc;
}

/* ---- logs
 * ------------------------------------------------------------------------------------------ */

struct local_read {
    struct local *s;
    struct lop *lo;
    uv_fs_t req;
    uv_file fd;
    uint64_t offset, total, start;
    uint32_t max;
    char *buf;
    size_t len;
    int err;
};

static void read_finish(struct local_read *rd)
{
    struct local *s = rd->s;
    struct lop *lo = rd->lo;
    orc_op_t *op = lo->op;
    int rc = 0;

    s->fs_reqs--;
    lo->work = NULL;
    if (lo->canceled) {
        snprintf(op->error, sizeof(op->error), "local: logs canceled");
        rc = ORC_ECANCELED;
    } else if (rd->err < 0) {
        rc = orc_op_failf(op, ORC_EIO, "local: reading the log: %s", uv_strerror(rd->err));
    } else {
        op->out_offset = rd->start;
        op->out_total = rd->total;
        rc = s->host->op_output_set(op, rd->buf ? rd->buf : "", rd->len);
    }
    s->host->free(rd->buf);
    s->host->free(rd);
    lop_complete(lo, rc);
}

static void read_closed(uv_fs_t *req)
{
    struct local_read *rd = req->data;

    uv_fs_req_cleanup(req);
    read_finish(rd);
}

static void read_close(struct local_read *rd)
{
    if (uv_fs_close(rd->s->host->loop, &rd->req, rd->fd, read_closed) < 0)
        read_finish(rd);
}

static void read_done(uv_fs_t *req)
{
    struct local_read *rd = req->data;

    if (req->result < 0)
        rd->err = (int)req->result;
    else
        rd->len = (size_t)req->result;
    uv_fs_req_cleanup(req);
    read_close(rd);
}

static void read_stat(uv_fs_t *req)
{
    struct local_read *rd = req->data;
    struct local *s = rd->s;
    uint64_t len;
    uv_buf_t b;
    int rc;

    if (req->result < 0) {
        rd->err = (int)req->result;
        uv_fs_req_cleanup(req);
        read_close(rd);
        return;
    }
    rd->total = req->statbuf.st_size;
    uv_fs_req_cleanup(req);
    if (rd->offset == ORC_LOGS_TAIL)
        rd->start = rd->total > rd->max ? rd->total - rd->max : 0;
    else
        rd->start = rd->offset < rd->total ? rd->offset : rd->total;
    len = rd->total - rd->start < rd->max ? rd->total - rd->start : rd->max;
    if (len == 0) {
        read_close(rd);
        return;
    }
    rd->buf = s->host->malloc((size_t)len + 1);
    if (rd->buf == NULL) {
        rd->err = UV_ENOMEM;
        read_close(rd);
        return;
    }
    b = uv_buf_init(rd->buf, (unsigned)len);
    rc = uv_fs_read(s->host->loop, &rd->req, rd->fd, &b, 1, (int64_t)rd->start, read_done);
    if (rc < 0) {
        rd->err = rc;
        read_close(rd);
    }
}

static void read_opened(uv_fs_t *req)
{
    struct local_read *rd = req->data;
    int rc;

    if (req->result < 0) {
        rd->err = req->result == UV_ENOENT ? 0 : (int)req->result; /* no log yet: empty */
        uv_fs_req_cleanup(req);
        read_finish(rd);
        return;
    }
    rd->fd = (uv_file)req->result;
    uv_fs_req_cleanup(req);
    rc = uv_fs_fstat(rd->s->host->loop, &rd->req, rd->fd, read_stat);
    if (rc < 0) {
        rd->err = rc;
        read_close(rd);
    }
}

int local_logs(struct local *s, struct lop *lo, struct local_node *n,
               const struct orc_logs_req *req)
{
    const char *id = req->workload ? req->workload : "main";
    struct local_read *rd;
    char *path;
    int rc;

    if (local_wl_find(n, id) == NULL)
        return orc_op_failf(lo->op, ORC_ENOTFOUND, "local: node %s has no workload %s", n->name,
                            id);
    rd = s->host->calloc(1, sizeof(*rd));
    path = local_printf(s, "%s/%s/%s.log", s->work_dir, n->name, id);
    if (rd == NULL || path == NULL) {
        s->host->free(rd);
        s->host->free(path);
        return ORC_ENOMEM;
    }
    rd->s = s;
    rd->lo = lo;
    rd->fd = -1;
    rd->req.data = rd;
    rd->offset = req->offset;
    rd->max = req->max_bytes == 0 ? LOCAL_LOGS_DEFAULT : req->max_bytes;
    if (rd->max > LOCAL_OUTPUT_MAX)
        rd->max = (uint32_t)LOCAL_OUTPUT_MAX;
    rc = uv_fs_open(s->host->loop, &rd->req, path, O_RDONLY | O_CLOEXEC, 0, read_opened);
    s->host->free(path);
    if (rc < 0) {
        s->host->free(rd);
        return orc_op_failf(lo->op, ORC_EIO, "local: cannot read the log: %s", uv_strerror(rc));
    }
    s->fs_reqs++;
    lo->work = rd;
    return 0;
}
