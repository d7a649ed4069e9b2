/*
 * `gpu-agent run` (agent.h, docs/agent.md): launches a workload, one process
 * per local rank, on a libuv loop, and supervises it:
 *   - the allocation (--gpus, else CUDA_VISIBLE_DEVICES, else every GPU) is
 *     health-checked on the threadpool; GPUs that failed are left out, the
 *     rest split between the ranks and pinned in CUDA_VISIBLE_DEVICES;
 *   - each process runs in a session of its own; its output goes through
 *     pipes into NAME.log (rotated, run_log.c) and, in chunks, to the
 *     reporter; when its leader exits what is left of its group is killed;
 *   - a job's exit status is the agent's; a service is restarted with a
 *     doubling backoff and given up (exit 70) after restart-max exits within
 *     the window; its readiness is probed over TCP or HTTP;
 *   - SIGTERM/SIGINT stop every process group: SIGTERM, SIGKILL after the
 *     grace period;
 *   - inventory, health, every state change, log chunks and heartbeats go to
 *     the orchestrator (report.h) when the environment says where.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "../../orchestrator/base.h"
#include "agent.h"
#include "report.h"
#include "run.h"

#define LOG "run"
#define PROBE_EVERY_MS 100
#define FLUSH_EVERY_MS 250
#define CHUNK_MAX 65536

enum pst { P_STARTING, P_RUNNING, P_READY, P_UNREADY, P_BACKOFF, P_EXITED, P_FAILED,
           P_STOPPING, P_STOPPED };
static const char *const pst_names[] = {"starting", "running", "ready", "unready", "backoff",
                                        "exited", "failed", "stopping", "stopped"};

struct agent_run;

struct proc {
    struct agent_run *run;
    unsigned local_rank, rank;
    char name[LAUNCH_NAME_MAX + 16]; /* main, main.rank1 */
    int gpus[LAUNCH_MAX_GPUS];
    size_t ngpus;
    uv_process_t proc;
    uv_pipe_t pipes[2];
    bool alive;         /* the process runs */
    unsigned pipes_open;
    pid_t pid;
    unsigned restarts, nfails;
    int64_t started_ms, fails[LAUNCH_MAX_FAILS];
    uint64_t backoff_ms;
    enum pst st;
    int exit_status, term_signal; /* exit_status -1: none yet */
    struct launch_log log;
    uv_timer_t timer; /* restart backoff, or SIGKILL after the grace */
    char *pend;       /* output not reported yet */
    size_t pend_len;
    uint64_t out_offset; /* bytes of output so far */
};

struct probe {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    bool busy, tcp_open;
    char req[1200];
    char buf[64];
    size_t got;
    uint64_t deadline;
};

struct agent_run {
    struct launch_opts o;
    uv_loop_t loop;
    struct proc procs[LAUNCH_MAX_PROCS];
    unsigned nproc;
    char **base_env; /* the children's environment before the per-process part */
    size_t nbase;
    const char *log_dir;
    struct agent_reporter *rep;
    uv_signal_t sigterm, sigint;
    uv_timer_t flush_timer, probe_timer;
    uv_work_t check_work;
    json_t *health; /* the check's report (threadpool -> loop) */
    int alloc[LAUNCH_MAX_GPUS];
    size_t nalloc;
    struct probe probe;
    bool probing;
    bool stopping, finishing;
    int exit_code;
};

/* ---- state, reports, status file ---- */

static json_t *proc_json(const struct proc *p)
{
    json_t *gpus = json_array();

    for (size_t i = 0; i < p->ngpus; i++)
        json_array_append_new(gpus, json_integer(p->gpus[i]));
    json_t *o = json_pack("{ss ss sI sI so sI}", "name", p->name, "state", pst_names[p->st], "pid",
                          (json_int_t)p->pid, "restarts", (json_int_t)p->restarts, "gpus", gpus,
                          "rank", (json_int_t)p->rank);
    if (o && p->exit_status >= 0) {
        json_object_set_new(o, "exit_status", json_integer(p->exit_status));
        json_object_set_new(o, "signal", json_integer(p->term_signal));
    }
    return o;
}

static json_t *summary(const struct agent_run *r)
{
    json_t *all = json_array();

    for (unsigned i = 0; i < r->nproc; i++)
        json_array_append_new(all, proc_json(&r->procs[i]));
    return json_pack("{so sI}", "workloads", all, "agent_pid", (json_int_t)getpid());
}

static void write_status_file(const struct agent_run *r)
{
    char tmp[4096];
    json_t *s;

    if (r->o.status_file == NULL)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", r->o.status_file);
    s = summary(r);
    if (s && json_dump_file(s, tmp, JSON_COMPACT) == 0 && rename(tmp, r->o.status_file) != 0)
        orc_log(ORC_LOG_WARN, LOG, "cannot write %s: %s", r->o.status_file, strerror(errno));
    json_decref(s);
}

static void set_state(struct proc *p, enum pst st)
{
    struct agent_run *r = p->run;

    p->st = st;
    if (r->rep) {
        agent_report(r->rep, "workload", proc_json(p));
        agent_report_set_status(r->rep, summary(r));
    }
    write_status_file(r);
}

/* ---- output ---- */

static void flush_output(struct proc *p)
{
    struct agent_run *r = p->run;

    if (p->pend_len == 0 || r->rep == NULL)
        return;
    char *clean = orc_malloc(p->pend_len * 3 + 1);
    if (clean) {
        launch_utf8_clean(p->pend, p->pend_len, clean);
        agent_report(r->rep, "log",
                     json_pack("{ss sI ss}", "name", p->name, "offset",
                               (json_int_t)(p->out_offset - p->pend_len), "data", clean));
        orc_free(clean);
    }
    p->pend_len = 0;
}

static void on_flush_timer(uv_timer_t *t)
{
    struct agent_run *r = t->data;

    for (unsigned i = 0; i < r->nproc; i++)
        flush_output(&r->procs[i]);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char chunk[65536]; /* one loop thread: read callbacks never overlap */

    (void)h;
    (void)hint;
    *buf = uv_buf_init(chunk, sizeof(chunk));
}

static void pipe_closed(uv_handle_t *h)
{
    struct proc *p = h->data;

    p->pipes_open--;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct proc *p = s->data;

    if (n < 0) {
        uv_close((uv_handle_t *)s, pipe_closed);
        return;
    }
    launch_log_write(&p->log, buf->base, (size_t)n);
    p->out_offset += (uint64_t)n;
    if (p->run->rep == NULL)
        return;
    for (size_t done = 0; done < (size_t)n;) {
        size_t k = (size_t)n - done;
        if (k > CHUNK_MAX - p->pend_len)
            k = CHUNK_MAX - p->pend_len;
        memcpy(p->pend + p->pend_len, buf->base + done, k);
        p->pend_len += k;
        done += k;
        if (p->pend_len == CHUNK_MAX)
            flush_output(p);
    }
}

/* ---- processes ---- */

static void finish(struct agent_run *r);
static void schedule_restart(struct proc *p);
static void probe_start(struct agent_run *r);

static bool all_ended(const struct agent_run *r)
{
    for (unsigned i = 0; i < r->nproc; i++)
        if (r->procs[i].alive || r->procs[i].st == P_BACKOFF)
            return false;
    return true;
}

static void group_signal(struct proc *p, int sig)
{
    if (p->alive && p->pid > 0)
        kill(-p->pid, sig);
}

static void on_grace_over(uv_timer_t *t)
{
    struct proc *p = t->data;

    if (p->alive) {
        launch_log_note(&p->log, "%s did not stop within %llu ms: SIGKILL", p->name,
                        (unsigned long long)p->run->o.stop_grace_ms);
        group_signal(p, SIGKILL);
    }
}

static void stop_proc(struct proc *p)
{
    if (p->st == P_BACKOFF) {
        uv_timer_stop(&p->timer);
        set_state(p, P_STOPPED);
        return;
    }
    if (!p->alive)
        return;
    launch_log_note(&p->log, "stopping %s (SIGTERM to its process group)", p->name);
    set_state(p, P_STOPPING);
    group_signal(p, SIGTERM);
    uv_timer_start(&p->timer, on_grace_over, p->run->o.stop_grace_ms, 0);
}

/* Stops everything (a signal, a give-up, a failed rank); the agent exits
 * with code once all has ended. */
static void stop_all(struct agent_run *r, int code)
{
    if (!r->stopping)
        r->exit_code = code;
    r->stopping = true;
    for (unsigned i = 0; i < r->nproc; i++)
        stop_proc(&r->procs[i]);
    if (all_ended(r))
        finish(r);
}

static void proc_closed(uv_handle_t *h)
{
    (void)h;
}

static char *gpu_text(const int *g, size_t n, char *buf, size_t len)
{
    size_t o = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 8 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%d", i ? "," : "", g[i]);
    return buf;
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig);

/* The per-process environment after the base: pinning, ranks. */
static char **proc_env(struct proc *p, char ***owned, size_t *nowned)
{
    const struct launch_opts *o = &p->run->o;
    size_t n = p->run->nbase;
    char **env = orc_calloc(n + 16, sizeof(*env));
    char **mine = orc_calloc(16, sizeof(*mine));
    char gpus[LAUNCH_MAX_GPUS * 6];
    size_t k = 0;

    if (env == NULL || mine == NULL) {
        orc_free(env);
        orc_free(mine);
        return NULL;
    }
    memcpy(env, p->run->base_env, n * sizeof(*env));
    mine[k++] = orc_asprintf("CUDA_VISIBLE_DEVICES=%s", gpu_text(p->gpus, p->ngpus, gpus,
                                                                 sizeof(gpus)));
    mine[k++] = orc_strdup("CUDA_DEVICE_ORDER=PCI_BUS_ID");
    mine[k++] = orc_asprintf("GPU_AGENT_WORKLOAD=%s", o->name);
    if (o->distributed) {
        mine[k++] = orc_asprintf("MASTER_ADDR=%s", o->master_addr);
        mine[k++] = orc_asprintf("MASTER_PORT=%u", o->master_port);
        mine[k++] = orc_asprintf("WORLD_SIZE=%u", o->nnodes * o->nproc);
        mine[k++] = orc_asprintf("RANK=%u", p->rank);
        mine[k++] = orc_asprintf("LOCAL_RANK=%u", p->local_rank);
        mine[k++] = orc_asprintf("LOCAL_WORLD_SIZE=%u", o->nproc);
        mine[k++] = orc_asprintf("NODE_RANK=%u", o->node_rank);
    }
    for (size_t i = 0; i < k; i++)
        env[n++] = mine[i];
    *owned = mine;
    *nowned = k;
    return env;
}

static int spawn(struct proc *p)
{
    struct agent_run *r = p->run;
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    char **owned = NULL, **env;
    size_t nowned = 0;
    int rc;

    env = proc_env(p, &owned, &nowned);
    if (env == NULL)
        return ORC_ENOMEM;
    uv_pipe_init(&r->loop, &p->pipes[0], 0);
    uv_pipe_init(&r->loop, &p->pipes[1], 0);
    p->pipes[0].data = p->pipes[1].data = p;
    p->pipes_open = 2;
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    for (int i = 0; i < 2; i++) {
        stdio[i + 1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[i + 1].data.stream = (uv_stream_t *)&p->pipes[i];
    }
    memset(&po, 0, sizeof(po));
    po.file = r->o.argv[0];
    po.args = (char **)r->o.argv;
    po.env = env;
    po.cwd = r->o.workdir;
    po.flags = UV_PROCESS_DETACHED; /* a session and process group of its own */
    po.stdio_count = 3;
    po.stdio = stdio;
    po.exit_cb = on_proc_exit;
    p->proc.data = p;
    rc = uv_spawn(&r->loop, &p->proc, &po);
    for (size_t i = 0; i < nowned; i++)
        orc_free(owned[i]);
    orc_free(owned);
    orc_free(env);
    if (rc < 0) {
        uv_close((uv_handle_t *)&p->proc, proc_closed);
        for (int i = 0; i < 2; i++)
            uv_close((uv_handle_t *)&p->pipes[i], pipe_closed);
        launch_log_note(&p->log, "cannot start %s: '%s': %s", p->name, r->o.argv[0],
                        uv_strerror(rc));
        return rc;
    }
    for (int i = 0; i < 2; i++)
        uv_read_start((uv_stream_t *)&p->pipes[i], on_alloc, on_read);
    p->alive = true;
    p->pid = p->proc.pid;
    p->started_ms = orc_now_ms();
    p->exit_status = -1;
    p->term_signal = 0;
    set_state(p, P_RUNNING);
    if (r->o.kind == LAUNCH_SERVICE && r->o.ready_port && p->local_rank == 0)
        probe_start(r);
    return 0;
}

/* A service's exit: restart after the backoff, or give up. */
static void service_exited(struct proc *p, const char *what)
{
    struct agent_run *r = p->run;
    const struct launch_opts *o = &r->o;
    int64_t now = orc_now_ms();

    if (p->started_ms && now - p->started_ms >= (int64_t)o->window_ms)
        p->backoff_ms = o->backoff_ms; /* it ran well for a while: start over */
    p->fails[p->nfails % LAUNCH_MAX_FAILS] = now;
    p->nfails++;
    if (p->nfails >= o->restart_max &&
        now - p->fails[(p->nfails - o->restart_max) % LAUNCH_MAX_FAILS] <= (int64_t)o->window_ms) {
        launch_log_note(&p->log, "%s %s; it stopped %u times within %llu s: giving up", p->name,
                        what, o->restart_max, (unsigned long long)(o->window_ms / 1000));
        orc_log(ORC_LOG_ERROR, LOG, "%s stopped %u times within %llu s (last: %s): giving up",
                p->name, o->restart_max, (unsigned long long)(o->window_ms / 1000), what);
        set_state(p, P_FAILED);
        stop_all(r, LAUNCH_GAVE_UP);
        return;
    }
    launch_log_note(&p->log, "restarting %s in %llu ms (%s)", p->name,
                    (unsigned long long)p->backoff_ms, what);
    set_state(p, P_BACKOFF);
    schedule_restart(p);
}

static void on_proc_exit(uv_process_t *h, int64_t status, int sig)
{
    struct proc *p = h->data;
    struct agent_run *r = p->run;
    char what[64];

    kill(-p->pid, SIGKILL); /* what it left in its group */
    uv_close((uv_handle_t *)h, proc_closed);
    uv_timer_stop(&p->timer);
    p->alive = false;
    p->exit_status = sig ? 128 + sig : (int)status;
    p->term_signal = sig;
    if (sig)
        snprintf(what, sizeof(what), "killed by signal %d", sig);
    else
        snprintf(what, sizeof(what), "exited with status %d", (int)status);
    flush_output(p);
    if (r->stopping || p->st == P_STOPPING) {
        launch_log_note(&p->log, "%s stopped (%s)", p->name, what);
        set_state(p, p->st == P_FAILED ? P_FAILED : P_STOPPED);
    } else if (r->o.kind == LAUNCH_SERVICE) {
        service_exited(p, what);
    } else {
        launch_log_note(&p->log, "%s %s", p->name, what);
        set_state(p, P_EXITED);
        if (p->exit_status != 0 && r->nproc > 1)
            stop_all(r, p->exit_status); /* one rank failed: the job did */
    }
    if (all_ended(r))
        finish(r);
}

static void on_restart(uv_timer_t *t)
{
    struct proc *p = t->data;
    const struct launch_opts *o = &p->run->o;

    if (p->st != P_BACKOFF || p->run->stopping)
        return;
    p->restarts++;
    p->backoff_ms = p->backoff_ms * 2 > o->backoff_max_ms ? o->backoff_max_ms : p->backoff_ms * 2;
    if (spawn(p) < 0)
        service_exited(p, "could not be started");
}

static void schedule_restart(struct proc *p)
{
    uv_timer_start(&p->timer, on_restart, p->backoff_ms, 0);
}

/* ---- readiness (rank 0 of a service) ---- */

static void probe_closed(uv_handle_t *h)
{
    struct agent_run *r = h->data;

    r->probe.busy = false;
    r->probe.tcp_open = false;
}

static void probe_end(struct agent_run *r, bool ready)
{
    struct proc *p = &r->procs[0];

    if (r->probe.tcp_open && !uv_is_closing((uv_handle_t *)&r->probe.tcp))
        uv_close((uv_handle_t *)&r->probe.tcp, probe_closed);
    if (!ready)
        return;
    r->probing = false;
    uv_timer_stop(&r->probe_timer);
    if (p->alive && p->st == P_RUNNING) {
        launch_log_note(&p->log, "%s is ready", p->name);
        set_state(p, P_READY);
    }
}

static void probe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct agent_run *r = h->data;

    (void)hint;
    *buf = uv_buf_init(r->probe.buf + r->probe.got, sizeof(r->probe.buf) - 1 - r->probe.got);
}

static void probe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct agent_run *r = s->data;
    int code = 0;

    (void)buf;
    if (n > 0)
        r->probe.got += (size_t)n;
    r->probe.buf[r->probe.got] = '\0';
    if (n < 0 || strchr(r->probe.buf, '\n') || r->probe.got + 1 >= sizeof(r->probe.buf)) {
        uv_read_stop(s);
        bool ok = sscanf(r->probe.buf, "HTTP/%*d.%*d %d", &code) == 1 && code >= 200 && code < 300;
        probe_end(r, ok);
    }
}

static void probe_written(uv_write_t *w, int status)
{
    struct agent_run *r = w->data;

    if (status < 0 || uv_read_start((uv_stream_t *)&r->probe.tcp, probe_alloc, probe_read) < 0)
        probe_end(r, false);
}

static void probe_connected(uv_connect_t *c, int status)
{
    struct agent_run *r = c->data;

    if (status < 0) {
        probe_end(r, false);
        return;
    }
    if (r->o.ready_path == NULL) {
        probe_end(r, true);
        return;
    }
    snprintf(r->probe.req, sizeof(r->probe.req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1:%u\r\n\r\n",
             r->o.ready_path, r->o.ready_port);
    uv_buf_t b = uv_buf_init(r->probe.req, (unsigned)strlen(r->probe.req));
    r->probe.wr.data = r;
    if (uv_write(&r->probe.wr, (uv_stream_t *)&r->probe.tcp, &b, 1, probe_written) < 0)
        probe_end(r, false);
}

static void on_probe_timer(uv_timer_t *t)
{
    struct agent_run *r = t->data;
    struct proc *p = &r->procs[0];
    struct sockaddr_in a;

    if (!r->probing || r->probe.busy || !p->alive)
        return;
    if (uv_now(&r->loop) >= r->probe.deadline) {
        r->probing = false;
        uv_timer_stop(t);
        launch_log_note(&p->log, "%s is not ready after %llu ms (nothing answers on port %u%s%s)",
                        p->name, (unsigned long long)r->o.ready_timeout_ms, r->o.ready_port,
                        r->o.ready_path ? " at " : "", r->o.ready_path ? r->o.ready_path : "");
        set_state(p, P_UNREADY);
        return;
    }
    uv_ip4_addr("127.0.0.1", (int)r->o.ready_port, &a);
    r->probe.busy = true;
    r->probe.got = 0;
    uv_tcp_init(&r->loop, &r->probe.tcp);
    r->probe.tcp.data = r;
    r->probe.tcp_open = true;
    r->probe.conn.data = r;
    if (uv_tcp_connect(&r->probe.conn, &r->probe.tcp, (struct sockaddr *)&a, probe_connected) < 0)
        probe_end(r, false);
}

static void probe_start(struct agent_run *r)
{
    r->probing = true;
    r->probe.deadline = uv_now(&r->loop) + r->o.ready_timeout_ms;
    uv_timer_start(&r->probe_timer, on_probe_timer, PROBE_EVERY_MS, PROBE_EVERY_MS);
}

/* ---- start: allocation, check, launch ---- */

/* The GPUs given: --gpus, else the environment's CUDA_VISIBLE_DEVICES (a
 * list of indices), else every GPU the inventory lists. */
static void allocation(struct agent_run *r, const char *cvd, const json_t *inventory)
{
    const struct launch_opts *o = &r->o;

    r->nalloc = 0;
    if (o->gpus_given) {
        memcpy(r->alloc, o->gpus, o->ngpus * sizeof(int));
        r->nalloc = o->ngpus;
        return;
    }
    if (cvd != NULL) {
        for (const char *s = cvd; *s && r->nalloc < LAUNCH_MAX_GPUS;) {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s || v < 0)
                break; /* UUIDs or MIG names: not indices; take all */
            r->alloc[r->nalloc++] = (int)v;
            s = *end == ',' ? end + 1 : end;
        }
        if (r->nalloc > 0 || cvd[0] == '\0')
            return;
    }
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(inventory, "gpus"), i, g)
        if (r->nalloc < LAUNCH_MAX_GPUS)
            r->alloc[r->nalloc++] = (int)json_integer_value(json_object_get(g, "index"));
}

static void check_work(uv_work_t *w)
{
    struct agent_run *r = w->data;

    r->health = agent_health_check(r->o.level, r->alloc, r->nalloc);
}

/* Leaves out the GPUs the check failed; a check that found no GPU at all
 * (no driver) cannot judge: the allocation stays as given. */
static void apply_check(struct agent_run *r, struct launch_log *log)
{
    json_t *gpus = json_object_get(r->health, "gpus"), *g;
    size_t i, kept = 0;

    if (json_array_size(gpus) == 0) {
        if (r->nalloc)
            launch_log_note(log, "no GPU answered the health check (%s): the allocation is kept "
                                 "as given",
                            json_string_value(json_object_get(r->health, "error"))
                                ? json_string_value(json_object_get(r->health, "error"))
                                : "no driver");
        return;
    }
    for (size_t k = 0; k < r->nalloc; k++) {
        bool failed = false;
        json_array_foreach(gpus, i, g) {
            const char *v = json_string_value(json_object_get(g, "verdict"));
            if (json_integer_value(json_object_get(g, "index")) == r->alloc[k] && v &&
                strcmp(v, "failed") == 0)
                failed = true;
        }
        if (failed)
            launch_log_note(log, "GPU %d failed its health check: left out", r->alloc[k]);
        else
            r->alloc[kept++] = r->alloc[k];
    }
    r->nalloc = kept;
}

static void launch_all(struct agent_run *r)
{
    const struct launch_opts *o = &r->o;
    size_t per = r->nalloc / o->nproc;
    unsigned started = 0;

    if (r->nalloc % o->nproc != 0)
        per = r->nalloc / o->nproc; /* the rest stays unused */
    for (unsigned i = 0; i < r->nproc; i++) {
        struct proc *p = &r->procs[i];
        p->ngpus = per;
        memcpy(p->gpus, r->alloc + i * per, per * sizeof(int));
        if (spawn(p) == 0)
            started++;
        else
            p->exit_status = 127;
    }
    if (started < r->nproc) {
        orc_log(ORC_LOG_ERROR, LOG, "cannot start '%s'", o->argv[0]);
        stop_all(r, o->kind == LAUNCH_SERVICE ? LAUNCH_GAVE_UP : 127);
    }
}

static void check_done(uv_work_t *w, int status)
{
    struct agent_run *r = w->data;
    struct launch_log *log = &r->procs[0].log;

    (void)status;
    if (r->finishing) /* stopped during the check: the reporter is closing */
        return;
    if (r->health) {
        if (r->rep)
            agent_report(r->rep, "health", json_incref(r->health));
        apply_check(r, log);
    }
    if (r->nalloc < r->o.min_gpus) {
        launch_log_note(log, "%zu usable GPUs, fewer than --min-gpus %u: not starting", r->nalloc,
                        r->o.min_gpus);
        fprintf(stderr, "gpu-agent: %zu usable GPUs, fewer than --min-gpus %u\n", r->nalloc,
                r->o.min_gpus);
        r->exit_code = 3;
        finish(r);
        return;
    }
    if (r->stopping) {
        finish(r);
        return;
    }
    launch_all(r);
}

/* ---- the end ---- */

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void reporter_closed(void *ud)
{
    struct agent_run *r = ud;

    r->rep = NULL;
    uv_walk(&r->loop, close_any, NULL);
}

static void finish(struct agent_run *r)
{
    if (r->finishing)
        return;
    r->finishing = true;
    if (r->o.kind == LAUNCH_JOB && r->exit_code == 0)
        for (unsigned i = 0; i < r->nproc; i++)
            if (r->procs[i].exit_status > 0 && r->exit_code == 0)
                r->exit_code = r->procs[i].exit_status;
    uv_timer_stop(&r->flush_timer);
    for (unsigned i = 0; i < r->nproc; i++)
        flush_output(&r->procs[i]);
    if (r->rep)
        agent_reporter_close(r->rep, 2000, reporter_closed, r);
    else
        reporter_closed(r);
}

static void on_signal(uv_signal_t *s, int sig)
{
    struct agent_run *r = s->data;

    orc_log(ORC_LOG_INFO, LOG, "signal %d: stopping", sig);
    if (r->stopping)
        return;
    stop_all(r, 0);
}

/* ---- set-up ---- */

static int base_env(struct agent_run *r)
{
    extern char **environ;
    size_t n = 0;

    while (environ[n])
        n++;
    r->base_env = orc_calloc(n + r->o.nenv + 1, sizeof(char *));
    if (r->base_env == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!agent_report_env_name(environ[i]) &&
            strncmp(environ[i], "CUDA_VISIBLE_DEVICES=", 21) != 0)
            r->base_env[r->nbase++] = environ[i];
    for (size_t i = 0; i < r->o.nenv; i++)
        r->base_env[r->nbase++] = (char *)r->o.env[i];
    return 0;
}

static int procs_init(struct agent_run *r)
{
    const struct launch_opts *o = &r->o;

    r->nproc = o->nproc;
    for (unsigned i = 0; i < r->nproc; i++) {
        struct proc *p = &r->procs[i];
        char base[LAUNCH_NAME_MAX + 16];
        p->run = r;
        p->local_rank = i;
        p->rank = o->node_rank * o->nproc + i;
        p->backoff_ms = o->backoff_ms;
        p->exit_status = -1;
        snprintf(p->name, sizeof(p->name), i ? "%s.rank%u" : "%s", o->name, i);
        snprintf(base, sizeof(base), "%s", p->name);
        uv_timer_init(&r->loop, &p->timer);
        p->timer.data = p;
        p->pend = orc_malloc(CHUNK_MAX);
        if (p->pend == NULL)
            return ORC_ENOMEM;
        int rc = launch_log_open(&p->log, r->log_dir, base, o->log_max_bytes, o->log_keep);
        if (rc < 0) {
            fprintf(stderr, "gpu-agent: cannot open %s/%s.log: %s\n", r->log_dir, base,
                    strerror(-rc));
            return rc;
        }
    }
    return 0;
}

static void cleanup(struct agent_run *r)
{
    for (unsigned i = 0; i < r->nproc; i++) {
        launch_log_close(&r->procs[i].log);
        orc_free(r->procs[i].pend);
    }
    orc_free(r->base_env);
    json_decref(r->health);
}

static const char run_usage[] =
    "usage: gpu-agent run [options] -- PROGRAM [ARGS...]\n"
    "  --name NAME  --kind job|service  --gpus LIST|none  --check none|quick|standard\n"
    "  --min-gpus N  --env K=V  --workdir DIR  --log-dir DIR  --log-max-bytes N  --log-keep K\n"
    "  --nproc-per-node N  --nnodes N  --node-rank R  --master-addr A  --master-port P\n"
    "  --restart-backoff-ms MS  --restart-backoff-max-ms MS  --restart-window-ms MS\n"
    "  --restart-max K  --ready-tcp PORT | --ready-http PORT:/PATH  --ready-timeout-ms MS\n"
    "  --stop-grace-ms MS  --status-file PATH\n"
    "(docs/agent.md)\n";

static int run_loop(struct agent_run *r)
{
    struct agent_report_conf conf;
    const char *cvd = getenv("CUDA_VISIBLE_DEVICES");
    char *cvd_copy = cvd ? orc_strdup(cvd) : NULL;
    json_t *inventory = NULL;
    int rc;

    /* the agent sees every GPU, numbered as the machine numbers them */
    setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
    unsetenv("CUDA_VISIBLE_DEVICES");
    r->log_dir = r->o.log_dir ? r->o.log_dir : r->o.workdir ? r->o.workdir : ".";
    rc = uv_loop_init(&r->loop);
    if (rc == 0)
        rc = base_env(r);
    if (rc == 0)
        rc = procs_init(r);
    if (rc < 0) {
        orc_free(cvd_copy);
        return 1;
    }
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sigint);
    r->sigterm.data = r->sigint.data = r;
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_timer_init(&r->loop, &r->flush_timer);
    uv_timer_init(&r->loop, &r->probe_timer);
    r->flush_timer.data = r->probe_timer.data = r;
    if (agent_report_conf_from_env(&conf) && agent_reporter_new(&r->loop, &conf, &r->rep) < 0)
        orc_log(ORC_LOG_WARN, LOG, "reporting is configured but cannot start: going on without");
    if (r->rep || !r->o.gpus_given)
        inventory = agent_discover(r->o.workdir);
    if (r->rep) {
        agent_report(r->rep, "inventory", json_incref(inventory)); /* first: a fast first report */
        uv_timer_start(&r->flush_timer, on_flush_timer, FLUSH_EVERY_MS, FLUSH_EVERY_MS);
    }
    allocation(r, cvd_copy, inventory);
    json_decref(inventory);
    orc_free(cvd_copy);
    for (unsigned i = 0; i < r->nproc; i++)
        set_state(&r->procs[i], P_STARTING);
    if (r->nalloc && r->o.nproc > 1 && r->nalloc % r->o.nproc != 0)
        launch_log_note(&r->procs[0].log, "%zu GPUs do not split evenly in %u processes",
                        r->nalloc, r->o.nproc);
    r->check_work.data = r;
    if (r->o.check && r->nalloc > 0) {
        uv_queue_work(&r->loop, &r->check_work, check_work, check_done);
    } else {
        if (r->o.check) /* nothing to check: a normal answer */
            r->health = json_pack("{ss ss s[] ss}", "level",
                                  r->o.level == AGENT_CHECK_STANDARD ? "standard" : "quick",
                                  "verdict", "none", "gpus", "note", "no GPU in the allocation");
        check_done(&r->check_work, 0);
    }
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    cleanup(r);
    return r->exit_code;
}

int agent_run_main(int argc, char **argv)
{
    struct agent_run *r = orc_calloc(1, sizeof(*r));
    char why[256];
    int rc, code;

    if (r == NULL)
        return 1;
    rc = launch_opts_parse(argc, argv, &r->o, why, sizeof(why));
    if (rc < 0) {
        bool help = strcmp(why, "help") == 0;
        if (!help)
            fprintf(stderr, "gpu-agent: %s\n", why);
        fputs(run_usage, help ? stdout : stderr);
        orc_free(r);
        return help ? 0 : 2;
    }
    code = run_loop(r);
    orc_free(r);
    return code;
}
