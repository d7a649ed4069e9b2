/*
 * The local driver (plugins/local, docs/local-site.md) on a real libuv loop:
 * loaded from $PLUGIN_DIR/local.so through the driver registry
 * (orchestrator/engine/drivers.h) in strict mode, so that any breach of the
 * callback contract aborts. Each test gets a fresh loop and a temporary
 * work_dir, and ends with no site, no handle (uv_loop_close succeeds) and
 * no process left: process groups are checked in /proc. Services that must
 * listen run this program itself as a small TCP server ("--listen PORT
 * DELAY_MS"), so no other tool is needed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "engine/drivers.h"
#include "testutil.h"

#define BASE_CONFIG                                                                                \
    "\"cpus\": 4, \"memory\": \"8 GiB\", \"gpus\": [{\"model\": \"T4\", \"count\": 2}], "          \
    "\"restart_backoff_ms\": 100, \"restart_backoff_max_ms\": 400, \"stop_timeout_ms\": "          \
    "1000, \"poll_ms\": 50, \"container_runtime\": \"none\", \"ready_settle_ms\": 100"

struct t {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run(UV_RUN_ONCE) regularly */
    struct orc_drv_registry *reg;
    struct orc_drv_site *site;
    char dir[64];  /* temporary root */
    char work[80]; /* work_dir */
    char err[ORC_OP_ERROR_LEN];
};

struct call {
    orc_op_t op;
    bool done;
    int status;
};

/* ---- harness ------------------------------------------------------------------------- */

static char cur_dir[64]; /* the running test's temporary root, for its teardown */

static void tick_cb(uv_timer_t *h)
{
    (void)h;
}

static void t_init(struct t *t)
{
    const char *pd = getenv("PLUGIN_DIR");
    char so[PATH_MAX];

    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_local.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->work, sizeof(t->work), "%s/work", t->dir);
    snprintf(cur_dir, sizeof(cur_dir), "%s", t->dir);
    assert_int_equal(0, uv_loop_init(&t->loop));
    assert_int_equal(0, uv_timer_init(&t->loop, &t->tick));
    assert_int_equal(0, uv_timer_start(&t->tick, tick_cb, 10, 10));
    assert_int_equal(0, orc_drv_registry_new(&t->loop, &t->reg));
    orc_drv_set_strict(t->reg, true);
    snprintf(so, sizeof(so), "%s/local.so", pd && *pd ? pd : "build/release/plugins");
    assert_int_equal(0, orc_drv_load_file(t->reg, so));
}

static void call_cb(orc_op_t *op, int status)
{
    struct call *c = op->data;

    c->done = true;
    c->status = status;
}

static void call_init(struct call *c)
{
    memset(c, 0, sizeof(*c));
    orc_drv_op_init(&c->op);
    c->op.data = c;
}

static double now_s(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Runs the loop until the call completes; returns its status (or rc < 0). */
static int wait_call(struct t *t, struct call *c, int rc)
{
    double end = now_s() + 30;

    if (rc < 0) {
        assert_false(c->done);
        return rc;
    }
    assert_false(c->done); /* never called back from inside the slot */
    while (!c->done && now_s() < end)
        uv_run(&t->loop, UV_RUN_ONCE);
    assert_true(c->done);
    return c->status;
}

static void spin(struct t *t, int ms)
{
    double end = now_s() + ms / 1000.0;

    while (now_s() < end)
        uv_run(&t->loop, UV_RUN_ONCE);
}

static int t_open(struct t *t, const char *config)
{
    struct orc_site_conf conf = {.name = "local-test", .config_json = config};
    struct call c;
    int rc;

    if (t->site == NULL)
        assert_int_equal(0, orc_drv_site_new(t->reg, "local", &conf, &t->site));
    call_init(&c);
    rc = wait_call(t, &c, orc_drv_site_open(t->site, &c.op, call_cb));
    snprintf(t->err, sizeof(t->err), "%s", c.op.error);
    orc_drv_op_reset(&c.op);
    if (rc < 0) {
        assert_int_equal(0, orc_drv_site_free(t->site));
        t->site = NULL;
    }
    return rc;
}

/* Opens with {"work_dir": ..., <extra>}. */
static int t_open_with(struct t *t, const char *extra)
{
    char config[8192];

    snprintf(config, sizeof(config), "{\"work_dir\": \"%s\"%s%s}", t->work, extra ? ", " : "",
             extra ? extra : "");
    return t_open(t, config);
}

static void t_close(struct t *t)
{
    struct call c;

    call_init(&c);
    assert_int_equal(0, wait_call(t, &c, orc_drv_site_close(t->site, &c.op, call_cb)));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, orc_drv_site_free(t->site));
    t->site = NULL;
}

static void t_fini(struct t *t)
{
    char cmd[128];

    if (t->site != NULL)
        t_close(t);
    assert_int_equal(0, (int)orc_drv_violations(t->reg));
    assert_int_equal(0, orc_drv_registry_close(t->reg));
    uv_close((uv_handle_t *)&t->tick, NULL);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    assert_int_equal(0, uv_loop_close(&t->loop)); /* no handle left behind */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(0, system(cmd));
    cur_dir[0] = '\0';
}

/* Field 22 of /proc/PID/stat (start time), 0 when unknown. */
static unsigned long long proc_start_time(long pid)
{
    char path[64], buf[1024], *p;
    unsigned long long t = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    p = strrchr(buf, ')');
    for (int field = 2; p != NULL && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &t) != 1)
        return 0;
    return t;
}

/* Kills the process groups of the workloads a state.json records, when the
 * pid is still the process the driver started (same start time). */
static void kill_recorded(const char *state_json)
{
    json_t *doc = json_load_file(state_json, 0, NULL), *node, *wl;
    const char *name, *id;

    json_object_foreach(json_object_get(doc, "nodes"), name, node)
    {
        json_object_foreach(json_object_get(node, "workloads"), id, wl)
        {
            long pid = (long)json_integer_value(json_object_get(wl, "pid"));
            unsigned long long st =
                (unsigned long long)json_integer_value(json_object_get(wl, "start_time"));
            if (pid > 1 && st != 0 && proc_start_time(pid) == st)
                kill(-(pid_t)pid, SIGKILL);
        }
    }
    json_decref(doc);
}

/* A test that failed an assertion left its site open: what it started
 * still runs. Kill it and remove the test's directory. */
static int teardown_leftovers(void **state)
{
    static const char *const dirs[] = {"work", "var/local"};
    char path[PATH_MAX], cmd[128];

    (void)state;
    if (cur_dir[0] == '\0')
        return 0;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s/state.json", cur_dir, dirs[i]);
        kill_recorded(path);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", cur_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", cur_dir);
    cur_dir[0] = '\0';
    return 0;
}

static struct orc_node_req node_req(const char *name, enum orc_node_kind kind, uint32_t cpus,
                                    uint32_t gpus, const char *model, const char *node_json)
{
    struct orc_node_req r = {
        .deployment = "0190c3a0-0000-7000-8000-000000000001",
        .node = name,
        .name = name,
        .kind = kind,
        .num_cpus = cpus,
        .mem_size = (uint64_t)1 << 30,
        .num_gpus = gpus,
        .gpu_model = model,
        .node_json = node_json,
    };
    return r;
}

static int provision(struct t *t, struct call *c, const struct orc_node_req *req)
{
    call_init(c);
    return wait_call(t, c, orc_drv_provision(t->site, &c->op, req, call_cb));
}

static int provision_ok(struct t *t, const char *name, enum orc_node_kind kind, uint32_t gpus,
                        const char *node_json)
{
    struct orc_node_req req = node_req(name, kind, 1, gpus, gpus ? "T4" : NULL, node_json);
    struct call c;
    int rc = provision(t, &c, &req);

    if (rc != 0)
        fprintf(stderr, "provision %s: %d %s\n", name, rc, c.op.error);
    orc_drv_op_reset(&c.op);
    return rc;
}

static int deprovision(struct t *t, const char *name, bool *existed)
{
    struct call c;
    int rc;

    call_init(&c);
    rc = wait_call(t, &c, orc_drv_deprovision(t->site, &c.op, name, call_cb));
    if (existed)
        *existed = c.op.exists;
    orc_drv_op_reset(&c.op);
    return rc;
}

static int start(struct t *t, struct call *c, const char *name, const char *workload,
                 const char *const *argv, const struct orc_kv *env, size_t nenv)
{
    struct orc_exec_req req = {
        .name = name, .workload = workload, .argv = argv, .env = env, .nenv = nenv};

    call_init(c);
    return wait_call(t, c, orc_drv_start_workload(t->site, &c->op, &req, call_cb));
}

static int start_ok(struct t *t, const char *name, const char *const *argv)
{
    struct call c;
    int rc = start(t, &c, name, NULL, argv, NULL, 0);

    if (rc != 0)
        fprintf(stderr, "start on %s: %d %s\n", name, rc, c.op.error);
    orc_drv_op_reset(&c.op);
    return rc;
}

/* status of name: res_state, and the workload's entry of the "workloads"
 * attribute (a new reference, or NULL). */
static json_t *status_of(struct t *t, const char *name, const char *wl, int *res_state,
                         bool *exists)
{
    struct call c;
    const char *text;
    json_t *doc, *e = NULL;

    call_init(&c);
    assert_int_equal(0, wait_call(t, &c, orc_drv_status(t->site, &c.op, name, call_cb)));
    if (res_state)
        *res_state = c.op.res_state;
    if (exists)
        *exists = c.op.exists;
    text = orc_drv_op_attr(&c.op, "workloads");
    doc = text ? json_loads(text, 0, NULL) : NULL;
    if (doc != NULL && wl != NULL) {
        e = json_object_get(doc, wl);
        json_incref(e);
    }
    json_decref(doc);
    orc_drv_op_reset(&c.op);
    return e;
}

static const char *wl_state(json_t *e)
{
    return json_string_value(json_object_get(e, "state"));
}

static long wl_pid(json_t *e)
{
    return (long)json_integer_value(json_object_get(e, "pid"));
}

/* Polls status until the workload is in state want (or 20 s). */
static json_t *wait_state(struct t *t, const char *name, const char *wl, const char *want)
{
    double end = now_s() + 20;

    while (now_s() < end) {
        json_t *e = status_of(t, name, wl, NULL, NULL);
        if (e != NULL && wl_state(e) != NULL && strcmp(wl_state(e), want) == 0)
            return e;
        json_decref(e);
        spin(t, 30);
    }
    fail_msg("%s/%s never reached state %s", name, wl, want);
    return NULL;
}

static int logs(struct t *t, const char *name, const char *wl, uint64_t offset, uint32_t max,
                char *out, size_t outlen, uint64_t *out_offset, uint64_t *total)
{
    struct orc_logs_req req = {.name = name, .workload = wl, .offset = offset, .max_bytes = max};
    struct call c;
    int rc;

    call_init(&c);
    rc = wait_call(t, &c, orc_drv_logs(t->site, &c.op, &req, call_cb));
    snprintf(out, outlen, "%s", rc == 0 && c.op.output ? c.op.output : "");
    if (out_offset)
        *out_offset = c.op.out_offset;
    if (total)
        *total = c.op.out_total;
    snprintf(t->err, sizeof(t->err), "%s", c.op.error);
    orc_drv_op_reset(&c.op);
    return rc;
}

static bool file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static char *slurp(const char *path)
{
    return test_read_file(path, NULL);
}

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(0, chmod(path, (mode_t)mode));
}

/* Processes of process group pgid that are not zombies. */
static int group_members(long pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[1024], *p, state;
        long pgrp;
        int fd;
        ssize_t r;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        r = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (r <= 0)
            continue;
        buf[r] = '\0';
        p = strrchr(buf, ')');
        if (p == NULL || sscanf(p + 2, "%c %*d %ld", &state, &pgrp) != 2)
            continue;
        if (pgrp == pgid && state != 'Z' && state != 'X')
            n++;
    }
    closedir(d);
    return n;
}

static bool wait_group_gone(struct t *t, long pgid)
{
    double end = now_s() + 10;

    while (group_members(pgid) > 0 && now_s() < end)
        spin(t, 20);
    return group_members(pgid) == 0;
}

static char self_exe[PATH_MAX]; /* this program, for --listen */

/* The workload "--listen PORT DELAY_MS": prints "up on PORT", waits
 * DELAY_MS, then accepts connections on 127.0.0.1:PORT until killed. */
static int listen_main(int port, int delay_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
    int one = 1, fd;

    printf("up on %d\n", port);
    fflush(stdout);
    nanosleep(&ts, NULL);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
        perror("listen helper");
        return 3;
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c >= 0)
            close(c);
    }
}

/* The workload "--http PORT READY_AFTER_MS": an HTTP/1.0 server on
 * 127.0.0.1:PORT at once; GET /ready answers 503 for READY_AFTER_MS, then
 * 200; any other path 404. */
static int http_main(int port, int after_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    double ready_at = now_s() + after_ms / 1000.0;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 16) != 0) {
        perror("http helper");
        return 3;
    }
    printf("serving on %d\n", port);
    fflush(stdout);
    for (;;) {
        char req[1024] = "";
        const char *answer;
        int c = accept(fd, NULL, NULL);
        ssize_t n;
        if (c < 0)
            continue;
        n = read(c, req, sizeof(req) - 1);
        if (n > 0 && strncmp(req, "GET /ready ", 11) != 0)
            answer = "HTTP/1.0 404 Not Found\r\n\r\n";
        else if (n > 0 && now_s() < ready_at)
            answer = "HTTP/1.0 503 Loading\r\n\r\n";
        else
            answer = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        if (n > 0 && write(c, answer, strlen(answer)) < 0)
            perror("http helper");
        close(c);
    }
}

/* A connect to 127.0.0.1:port succeeds now. */
static bool port_accepts(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* ---- site open and config ------------------------------------------------------------------- */

static void test_config_errors(void **state)
{
    struct t t;
    char config[1024];

    (void)state;
    t_init(&t);
    assert_int_equal(ORC_EINVAL, t_open(&t, "{\"cpus\": 2}"));
    assert_non_null(strstr(t.err, "work_dir is required"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"bogus\": 1"));
    assert_non_null(strstr(t.err, "unknown config key 'bogus'"));
    assert_non_null(strstr(t.err, "work_dir")); /* the known keys are listed */
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"cpus\": 0"));
    assert_non_null(strstr(t.err, "cpus"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"memory\": \"lots\""));
    assert_non_null(strstr(t.err, "memory"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"gpus\": [{\"count\": 2}]"));
    assert_non_null(strstr(t.err, "gpus[0] needs a model"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"gpus\": [{\"model\": \"T4\", \"mem\": 1}]"));
    assert_non_null(strstr(t.err, "unknown key 'mem'"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"container_runtime\": \"rkt\""));
    assert_non_null(strstr(t.err, "container_runtime"));
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"container_runtime\": \"/nonexistent/docker\""));
    assert_int_equal(
        ORC_EINVAL,
        t_open_with(&t, "\"restart_backoff_ms\": 5000, \"restart_backoff_max_ms\": 10"));
    assert_int_equal(ORC_EINVAL, t_open(&t, "[]"));
    /* a relative work_dir (the daemon's data_dir defaults to ./var) is made absolute */
    {
        char cwd[PATH_MAX], want[PATH_MAX];
        struct call c;
        struct orc_node_req req = node_req("rel", ORC_KIND_COMPUTE, 0, 0, NULL, NULL);
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        assert_int_equal(0, chdir(t.dir));
        assert_int_equal(0, t_open(&t, "{\"work_dir\": \"./var/local/\"}"));
        assert_int_equal(0, chdir(cwd));
        assert_int_equal(0, provision(&t, &c, &req));
        snprintf(want, sizeof(want), "%s/var/local/rel", t.dir);
        assert_string_equal(want, orc_drv_op_attr(&c.op, ORC_ATTR_PROVIDER_ID));
        orc_drv_op_reset(&c.op);
        assert_int_equal(0, deprovision(&t, "rel", NULL));
        t_close(&t);
    }
    /* a config that opens; the work_dir is created with mode 0700 */
    snprintf(config, sizeof(config), "{\"work_dir\": \"%s/\", \"memory\": 1073741824}", t.work);
    assert_int_equal(0, t_open(&t, config));
    {
        struct stat st;
        assert_int_equal(0, stat(t.work, &st));
        assert_int_equal(0700, st.st_mode & 0777);
    }
    t_fini(&t);
}

static void test_work_dir_guard(void **state)
{
    struct orc_site_conf conf = {.name = "second"};
    struct orc_drv_site *second = NULL;
    char config[1024], path[PATH_MAX];
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    /* a directory with things of someone else's is not taken over */
    assert_int_equal(0, mkdir(t.work, 0700));
    snprintf(path, sizeof(path), "%s/notes.txt", t.work);
    write_file(path, "mine\n", 0600);
    assert_int_equal(ORC_EDENIED, t_open_with(&t, NULL));
    assert_non_null(strstr(t.err, "not a local site's directory"));
    assert_true(file_exists(path));
    unlink(path);
    /* one site per work_dir */
    assert_int_equal(0, t_open_with(&t, NULL));
    snprintf(config, sizeof(config), "{\"work_dir\": \"%s\"}", t.work);
    conf.config_json = config;
    assert_int_equal(0, orc_drv_site_new(t.reg, "local", &conf, &second));
    call_init(&c);
    assert_int_equal(ORC_ECONFLICT, wait_call(&t, &c, orc_drv_site_open(second, &c.op, call_cb)));
    assert_non_null(strstr(c.op.error, "in use"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, orc_drv_site_free(second));
    t_fini(&t);
}

static void test_machine_defaults_and_probe(void **state)
{
    struct t t;
    struct call c;
    char fake[PATH_MAX], path[PATH_MAX * 2], *old;
    bool procfs = file_exists("/proc/driver/nvidia/gpus");

    (void)state;
    t_init(&t);
    /* a fake nvidia-smi on PATH: only consulted without /proc/driver/nvidia */
    snprintf(fake, sizeof(fake), "%s/bin", t.dir);
    assert_int_equal(0, mkdir(fake, 0700));
    snprintf(path, sizeof(path), "%s/nvidia-smi", fake);
    write_file(path,
               "#!/bin/sh\n[ \"$1\" = -L ] || exit 2\n"
               "echo 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaa)'\n"
               "echo '  MIG 1g.10gb     Device  0: (UUID: MIG-bbbb)'\n"
               "echo 'GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-cccc)'\n"
               "echo 'GPU 2: Tesla T4 (UUID: GPU-dddd)'\n",
               0700);
    old = strdup(getenv("PATH"));
    snprintf(path, sizeof(path), "%s:%s", fake, old);
    setenv("PATH", path, 1);
    assert_int_equal(0, t_open_with(&t, NULL));
    setenv("PATH", old, 1);
    free(old);
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    {
        const struct orc_pool *cpu = &c.op.pools[c.op.npools - 1];
        uint64_t total = uv_get_total_memory();
        assert_string_equal("cpu", cpu->name);
        assert_int_equal(uv_available_parallelism(), cpu->cpus_total);
        assert_true(cpu->mem_total > 0 && cpu->mem_total <= total / 10 * 8);
        assert_true(cpu->mem_total >= total / 10 * 7 || uv_get_constrained_memory() > 0);
    }
    if (!procfs) {
        assert_int_equal(3, c.op.npools); /* A100 x2, T4 x1, cpu */
        assert_string_equal("A100", c.op.pools[0].gpu_model);
        assert_int_equal(2, c.op.pools[0].gpus_total);
        assert_int_equal(2, c.op.pools[0].gpus_free);
        assert_string_equal("T4", c.op.pools[1].gpu_model);
        assert_int_equal(1, c.op.pools[1].gpus_total);
    } else {
        assert_true(c.op.npools >= 2); /* the real GPUs of this machine */
        fprintf(stderr, "GPUs found through /proc/driver/nvidia: %u pool(s), first %s x%u\n",
                c.op.npools - 1, c.op.pools[0].name, c.op.pools[0].gpus_total);
    }
    orc_drv_op_reset(&c.op);
    if (!procfs) { /* an A100 node: the short model name matches the full one */
        struct orc_node_req req = node_req("a100", ORC_KIND_COMPUTE, 0, 2, "a100-sxm4-80gb", NULL);
        assert_int_equal(0, provision(&t, &c, &req));
        assert_string_equal("A100", orc_drv_op_attr(&c.op, ORC_ATTR_GPU_MODEL));
        assert_string_equal("[0,1]", orc_drv_op_attr(&c.op, "gpus"));
        orc_drv_op_reset(&c.op);
        assert_int_equal(0, deprovision(&t, "a100", NULL));
    }
    t_fini(&t);
}

/* ---- provision, capacity, inventory
 * -------------------------------------------------------------------- */

static void test_provision_and_capacity(void **state)
{
    struct orc_node_req req;
    char path[PATH_MAX], *text;
    struct call c;
    struct stat st;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(2, c.op.npools);
    assert_string_equal("T4", c.op.pools[0].name);
    assert_int_equal(2, c.op.pools[0].gpus_total);
    assert_int_equal(2, c.op.pools[0].gpus_free);
    assert_int_equal(2, c.op.pools[0].max_gpus_per_node);
    assert_string_equal("cpu", c.op.pools[1].name);
    assert_null(c.op.pools[1].gpu_model);
    assert_int_equal(4, c.op.pools[1].cpus_total);
    assert_true(c.op.pools[1].mem_total == (uint64_t)8 << 30);
    orc_drv_op_reset(&c.op);

    /* no fit: the message names what is missing */
    req = node_req("n-a100", ORC_KIND_COMPUTE, 1, 1, "A100", NULL);
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "asks 1 GPU A100"));
    assert_non_null(strstr(c.op.error, "2 T4"));
    orc_drv_op_reset(&c.op);
    req = node_req("n-big", ORC_KIND_COMPUTE, 1, 3, "T4", NULL);
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "asks 3 GPUs T4; this site has 2"));
    orc_drv_op_reset(&c.op);
    req = node_req("n-cpu", ORC_KIND_COMPUTE, 8, 0, NULL, NULL);
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "asks 8 CPUs, 4 free"));
    orc_drv_op_reset(&c.op);
    req = node_req("n-mem", ORC_KIND_COMPUTE, 1, 0, NULL, NULL);
    req.mem_size = (uint64_t)9 << 30;
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "memory"));
    orc_drv_op_reset(&c.op);
    req = node_req("n-net", ORC_KIND_NETWORK, 0, 0, NULL, NULL);
    assert_int_equal(ORC_ENOTSUP, provision(&t, &c, &req));
    orc_drv_op_reset(&c.op);

    /* fit: a node with one T4 */
    req = node_req("n1", ORC_KIND_COMPUTE, 2, 1, "t4", NULL);
    assert_int_equal(0, provision(&t, &c, &req));
    assert_true(c.op.exists);
    assert_int_equal(ORC_DRV_RES_READY, c.op.res_state);
    assert_string_equal("127.0.0.1", orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    assert_string_equal("127.0.0.1", orc_drv_op_attr(&c.op, ORC_ATTR_PUBLIC_ADDRESS));
    assert_string_equal("T4", orc_drv_op_attr(&c.op, ORC_ATTR_GPU_MODEL));
    assert_string_equal("[0]", orc_drv_op_attr(&c.op, "gpus"));
    snprintf(path, sizeof(path), "%s/n1", t.work);
    assert_string_equal(path, orc_drv_op_attr(&c.op, ORC_ATTR_PROVIDER_ID));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, stat(path, &st));
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(0700, st.st_mode & 0777);
    snprintf(path, sizeof(path), "%s/n1/node.json", t.work);
    assert_true(file_exists(path));
    snprintf(path, sizeof(path), "%s/state.json", t.work);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"n1\""));
    free(text);

    /* idempotent: the same name is the same node, never a second one */
    assert_int_equal(0, provision(&t, &c, &req));
    assert_string_equal("[0]", orc_drv_op_attr(&c.op, "gpus"));
    orc_drv_op_reset(&c.op);
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(1, c.op.pools[0].gpus_free);
    assert_int_equal(2, c.op.pools[1].cpus_free);
    orc_drv_op_reset(&c.op);

    req = node_req("n2", ORC_KIND_COMPUTE, 1, 2, "T4", NULL);
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "asks 2 GPUs T4, 1 free"));
    orc_drv_op_reset(&c.op);
    req = node_req("n2", ORC_KIND_COMPUTE, 1, 1, NULL, NULL);
    assert_int_equal(0, provision(&t, &c, &req));
    assert_string_equal("[1]", orc_drv_op_attr(&c.op, "gpus"));
    orc_drv_op_reset(&c.op);

    /* status of an unknown name is no error */
    {
        bool exists = true;
        json_decref(status_of(&t, "nobody", NULL, NULL, &exists));
        assert_false(exists);
    }
    assert_int_equal(0, deprovision(&t, "n1", NULL));
    assert_int_equal(0, deprovision(&t, "n2", NULL));
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(2, c.op.pools[0].gpus_free);
    assert_int_equal(4, c.op.pools[1].cpus_free);
    orc_drv_op_reset(&c.op);
    t_fini(&t);
}

static void test_no_gpus(void **state)
{
    struct orc_node_req req = node_req("g", ORC_KIND_COMPUTE, 1, 1, "A100", NULL);
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, "\"gpus\": [], \"max_nodes\": 1"));
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "asks 1 GPU A100; this site has 0 GPUs"));
    orc_drv_op_reset(&c.op);
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(1, c.op.npools); /* the CPU pool only */
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, provision_ok(&t, "c1", ORC_KIND_COMPUTE, 0, NULL));
    req = node_req("c2", ORC_KIND_COMPUTE, 0, 0, NULL, NULL);
    assert_int_equal(ORC_DRV_ENOCAPACITY, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "max_nodes"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, deprovision(&t, "c1", NULL));
    t_fini(&t);
}

static void test_bad_names(void **state)
{
    static const char *const argv[] = {"true", NULL};
    struct orc_node_req req = node_req("../x", ORC_KIND_COMPUTE, 0, 0, NULL, NULL);
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(ORC_EINVAL, provision(&t, &c, &req));
    orc_drv_op_reset(&c.op);
    req.name = "a/b";
    assert_int_equal(ORC_EINVAL, provision(&t, &c, &req));
    orc_drv_op_reset(&c.op);
    req.name = "state.json";
    assert_int_equal(ORC_EINVAL, provision(&t, &c, &req));
    orc_drv_op_reset(&c.op);
    assert_int_equal(ORC_EINVAL, deprovision(&t, "..", NULL));
    assert_int_equal(0, provision_ok(&t, "ok", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(ORC_EINVAL, start(&t, &c, "ok", "../evil", argv, NULL, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(ORC_ENOTFOUND, start(&t, &c, "missing", NULL, argv, NULL, 0));
    assert_non_null(strstr(c.op.error, "no node missing"));
    orc_drv_op_reset(&c.op);
    {
        struct orc_exec_req r = {.name = "ok", .argv = argv, .workdir = "../.."};
        call_init(&c);
        assert_int_equal(ORC_EINVAL, wait_call(&t, &c, orc_drv_exec(t.site, &c.op, &r, call_cb)));
        orc_drv_op_reset(&c.op);
    }
    assert_int_equal(0, deprovision(&t, "ok", NULL));
    t_fini(&t);
}

/* ---- workloads
 * ------------------------------------------------------------------------------------------- */

static void test_job(void **state)
{
    static const char *const argv[] = {
        "sh", "-c",
        "echo hi; echo \"cvd=$CUDA_VISIBLE_DEVICES port=$PORT home=$HOME greet=$GREETING "
        "pwd=$(pwd)\"; exit 3",
        NULL};
    const struct orc_kv env[] = {{"GREETING", "hello world"}, {"CUDA_VISIBLE_DEVICES", "7"}};
    char path[PATH_MAX], want[PATH_MAX * 3], out[4096], *text;
    struct orc_node_req req =
        node_req("job1", ORC_KIND_JOB, 1, 1, "T4", "{\"properties\": {\"port\": 8123}}");
    json_t *e;
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision(&t, &c, &req));
    assert_string_equal("[8123]", orc_drv_op_attr(&c.op, ORC_ATTR_PORTS));
    assert_null(orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT)); /* a job has no endpoint */
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, start(&t, &c, "job1", NULL, argv, env, 2));
    assert_int_equal(-1, c.op.exit_status);
    orc_drv_op_reset(&c.op);
    e = wait_state(&t, "job1", "main", "exited");
    assert_int_equal(3, json_integer_value(json_object_get(e, "exit_status")));
    assert_int_equal(0, wl_pid(e));
    json_decref(e);
    snprintf(path, sizeof(path), "%s/job1/main.status", t.work);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"exit_status\": 3"));
    free(text);
    assert_int_equal(0, logs(&t, "job1", NULL, 0, 0, out, sizeof(out), NULL, NULL));
    assert_non_null(strstr(out, "hi\n"));
    /* the driver's variables win over the request's; HOME and cwd are the node */
    snprintf(want, sizeof(want), "cvd=0 port=8123 home=%s/job1 greet=hello world pwd=%s/job1",
             t.work, t.work);
    assert_non_null(strstr(out, want));
    /* started once, never twice */
    assert_int_equal(0, start(&t, &c, "job1", NULL, argv, NULL, 0));
    assert_string_equal("exited", orc_drv_op_attr(&c.op, "workload_state"));
    orc_drv_op_reset(&c.op);
    spin(&t, 200);
    assert_int_equal(0, logs(&t, "job1", "main", 0, 0, out, sizeof(out), NULL, NULL));
    assert_null(strstr(strstr(out, "hi\n") + 3, "hi\n"));
    /* a program that does not exist: a clear error, nothing recorded */
    {
        static const char *const bad[] = {"/nonexistent/program", NULL};
        assert_int_equal(ORC_EINVAL, start(&t, &c, "job1", "bad", bad, NULL, 0));
        assert_non_null(strstr(c.op.error, "/nonexistent/program"));
        orc_drv_op_reset(&c.op);
        assert_null(status_of(&t, "job1", "bad", NULL, NULL));
    }
    assert_int_equal(0, deprovision(&t, "job1", NULL));
    t_fini(&t);
}

static void test_logs(void **state)
{
    static const char *const argv[] = {"sh", "-c", "printf abcdefghij; printf KLM >&2", NULL};
    uint64_t off, total;
    char out[256];
    json_t *e;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "lg", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(0, start_ok(&t, "lg", argv));
    e = wait_state(&t, "lg", "main", "exited");
    json_decref(e);
    assert_int_equal(0, logs(&t, "lg", NULL, 0, 0, out, sizeof(out), &off, &total));
    assert_string_equal("abcdefghijKLM", out); /* stdout and stderr, one log */
    assert_int_equal(0, off);
    assert_int_equal(13, total);
    assert_int_equal(0, logs(&t, "lg", NULL, 3, 4, out, sizeof(out), &off, &total));
    assert_string_equal("defg", out);
    assert_int_equal(3, off);
    assert_int_equal(0, logs(&t, "lg", NULL, ORC_LOGS_TAIL, 3, out, sizeof(out), &off, &total));
    assert_string_equal("KLM", out);
    assert_int_equal(10, off);
    assert_int_equal(0, logs(&t, "lg", NULL, 1000, 10, out, sizeof(out), &off, &total));
    assert_string_equal("", out);
    assert_int_equal(13, off);
    assert_int_equal(ORC_ENOTFOUND, logs(&t, "lg", "other", 0, 0, out, sizeof(out), NULL, NULL));
    assert_non_null(strstr(t.err, "no workload other"));
    assert_int_equal(ORC_ENOTFOUND, logs(&t, "nope", NULL, 0, 0, out, sizeof(out), NULL, NULL));
    assert_int_equal(0, deprovision(&t, "lg", NULL));
    t_fini(&t);
}

static void test_exec(void **state)
{
    static const char *const argv[] = {
        "sh", "-c",
        "echo out; echo err >&2; echo \"$GPU_VAR:$CUDA_VISIBLE_DEVICES\"; "
        "exit 7",
        NULL};
    static const char *const big[] = {"head", "-c", "3000000", "/dev/zero", NULL};
    static const char *const slow[] = {"sleep", "100", NULL};
    static const char *const missing[] = {"no-such-program-here", NULL};
    const struct orc_kv env[] = {{"GPU_VAR", "x"}};
    struct orc_exec_req req = {.name = "ex", .argv = argv, .env = env, .nenv = 1};
    struct call c;
    struct t t;
    double t0;
    int rc;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "ex", ORC_KIND_COMPUTE, 2, NULL));
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_exec(t.site, &c.op, &req, call_cb)));
    assert_int_equal(7, c.op.exit_status);
    assert_non_null(strstr(c.op.output, "out\n"));
    assert_non_null(strstr(c.op.output, "err\n"));
    assert_non_null(strstr(c.op.output, "x:0,1\n"));
    orc_drv_op_reset(&c.op);
    /* output is bounded */
    req.argv = big;
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_exec(t.site, &c.op, &req, call_cb)));
    assert_int_equal(0, c.op.exit_status);
    assert_int_equal(1 << 20, (int)c.op.output_len);
    assert_string_equal("true", orc_drv_op_attr(&c.op, "output_truncated"));
    orc_drv_op_reset(&c.op);
    /* a program that does not exist */
    req.argv = missing;
    call_init(&c);
    assert_int_equal(ORC_EINVAL, wait_call(&t, &c, orc_drv_exec(t.site, &c.op, &req, call_cb)));
    assert_non_null(strstr(c.op.error, "no-such-program-here"));
    orc_drv_op_reset(&c.op);
    /* cancel kills it */
    req.argv = slow;
    call_init(&c);
    t0 = now_s();
    rc = orc_drv_exec(t.site, &c.op, &req, call_cb);
    assert_int_equal(0, rc);
    spin(&t, 50);
    assert_int_equal(0, orc_drv_cancel(t.site, &c.op));
    assert_int_equal(ORC_ECANCELED, wait_call(&t, &c, 0));
    assert_true(now_s() - t0 < 5);
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, deprovision(&t, "ex", NULL));
    t_fini(&t);
}

static void test_service_restart(void **state)
{
    char nj[128], endpoint[64], out[4096], portstr[16];
    int port = test_free_port();
    const char *const argv[] = {self_exe, "--listen", portstr, "0", NULL};
    long pid1, pid2 = 0;
    json_t *e;
    struct call c;
    struct t t;

    (void)state;
    snprintf(portstr, sizeof(portstr), "%d", port);
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    snprintf(nj, sizeof(nj), "{\"kind\": \"SERVICE\", \"properties\": {\"port\": %d}}", port);
    assert_int_equal(0, provision_ok(&t, "svc", ORC_KIND_SERVICE, 0, nj));
    assert_int_equal(0, start(&t, &c, "svc", NULL, argv, NULL, 0));
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", port);
    assert_string_equal(endpoint, orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    pid1 = atol(orc_drv_op_attr(&c.op, "pid"));
    assert_true(pid1 > 0);
    orc_drv_op_reset(&c.op);
    /* started once */
    assert_int_equal(0, start(&t, &c, "svc", NULL, argv, NULL, 0));
    assert_int_equal(pid1, atol(orc_drv_op_attr(&c.op, "pid")));
    orc_drv_op_reset(&c.op);
    /* killed: restarted after the backoff, in a new process group */
    assert_int_equal(0, kill((pid_t)pid1, SIGKILL));
    e = wait_state(&t, "svc", "main", "backoff");
    json_decref(e);
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        e = status_of(&t, "svc", "main", NULL, NULL);
        pid2 = wl_pid(e);
        if (pid2 > 0 && pid2 != pid1 && strcmp(wl_state(e), "running") == 0)
            break;
        json_decref(e);
        e = NULL;
    }
    assert_non_null(e);
    assert_int_equal(1, json_integer_value(json_object_get(e, "restarts")));
    json_decref(e);
    assert_true(wait_group_gone(&t, pid1));
    spin(&t, 100);
    assert_int_equal(0, logs(&t, "svc", NULL, 0, 0, out, sizeof(out), NULL, NULL));
    assert_non_null(strstr(out, "restarting in 100 ms"));
    assert_non_null(strstr(out, "killed by signal 9"));
    assert_non_null(strstr(strstr(out, "restarting"), "up on"));
    assert_int_equal(0, deprovision(&t, "svc", NULL));
    assert_true(wait_group_gone(&t, pid2));
    t_fini(&t);
}

/* A real server: python3 -m http.server $PORT answers on the endpoint. */
static void test_service_http(void **state)
{
    static const char *const argv[] = {"sh", "-c", "exec python3 -m http.server $PORT", NULL};
    int port = test_free_port(), got = 0;
    char nj[128];
    long pid;
    json_t *e;
    struct t t;

    (void)state;
    if (system("python3 -c 1 2>/dev/null") != 0) {
        skip();
        return;
    }
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port);
    assert_int_equal(0, provision_ok(&t, "web", ORC_KIND_SERVICE, 0, nj));
    assert_int_equal(0, start_ok(&t, "web", argv));
    for (double end = now_s() + 15; now_s() < end && !got; spin(&t, 50)) {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char buf[64] = "";
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            write(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 18 && read(fd, buf, sizeof(buf) - 1) > 0)
            got = strncmp(buf, "HTTP/1.0 200", 12) == 0;
        close(fd);
    }
    assert_true(got);
    e = status_of(&t, "web", "main", NULL, NULL);
    pid = wl_pid(e);
    json_decref(e);
    assert_int_equal(0, deprovision(&t, "web", NULL));
    assert_true(wait_group_gone(&t, pid));
    t_fini(&t);
}

static void test_service_gives_up(void **state)
{
    static const char *const argv[] = {"sh", "-c", "echo failing; exit 1", NULL};
    char out[8192];
    int res_state;
    json_t *e;
    struct orc_node_req req = node_req("bad", ORC_KIND_SERVICE, 0, 0, NULL, NULL);
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"restart_backoff_ms\": 20, "
                                                    "\"restart_backoff_max_ms\": 40, "
                                                    "\"restart_max_failures\": 3"));
    assert_int_equal(0, provision_ok(&t, "bad", ORC_KIND_SERVICE, 0, NULL));
    /* it exits before it is ready: the start fails, supervision goes on */
    assert_int_equal(ORC_EDRIVER, start(&t, &c, "bad", NULL, argv, NULL, 0));
    assert_non_null(strstr(c.op.error, "exited with status 1 before it was ready"));
    assert_non_null(strstr(c.op.error, "failing"));
    orc_drv_op_reset(&c.op);
    e = wait_state(&t, "bad", "main", "failed");
    assert_int_equal(2, json_integer_value(json_object_get(e, "restarts")));
    json_decref(e);
    json_decref(status_of(&t, "bad", NULL, &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_FAILED, res_state);
    assert_int_equal(ORC_EDRIVER, provision(&t, &c, &req));
    assert_non_null(strstr(c.op.error, "stopped 3 times"));
    assert_int_equal(ORC_DRV_RES_FAILED, c.op.res_state);
    assert_non_null(strstr(orc_drv_op_attr(&c.op, "status_reason"), "exited with status 1"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, logs(&t, "bad", NULL, 0, 0, out, sizeof(out), NULL, NULL));
    assert_non_null(strstr(out, "giving up"));
    /* a service that gave up does not start */
    assert_int_equal(ORC_EDRIVER, start(&t, &c, "bad", NULL, argv, NULL, 0));
    assert_non_null(strstr(c.op.error, "gave up"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, deprovision(&t, "bad", NULL));
    t_fini(&t);
}

/* Through gpu-agent (the site's `agent`: the build's, from $GPU_AGENT): the
 * agent pins the node's GPU (no driver here: kept as given), puts its own
 * folder first on PATH, keeps the reporting variables from the workload,
 * writes main.log itself (its own output in main.agent.log); a service the
 * agent gives up on fails the node at once. */
static void test_workloads_through_agent(void **state)
{
    static const char *const argv[] = {
        "sh", "-c", "echo \"cvd=[$CUDA_VISIBLE_DEVICES] tok=[$ORC_AGENT_TOKEN] path=$PATH\"; sleep 30",
        NULL};
    static const char *const failing[] = {"sh", "-c", "echo failing; exit 1", NULL};
    const struct orc_kv env[] = {{"ORC_AGENT_TOKEN", "secret"}};
    const char *agent = getenv("GPU_AGENT");
    char config[PATH_MAX + 1024], path[PATH_MAX], want[PATH_MAX + 16], *text = NULL;
    int res_state;
    struct call c;
    struct t t;

    (void)state;
    assert_non_null(agent);
    assert_non_null(realpath(agent, path));
    t_init(&t);
    snprintf(config, sizeof(config),
             BASE_CONFIG ", \"agent\": \"%s\", \"agent_check\": \"quick\", "
                         "\"restart_backoff_ms\": 20, \"restart_backoff_max_ms\": 40, "
                         "\"restart_max_failures\": 2",
             path);
    assert_int_equal(0, t_open_with(&t, config));
    assert_int_equal(0, provision_ok(&t, "ag", ORC_KIND_SERVICE, 1, NULL));
    assert_int_equal(0, start(&t, &c, "ag", NULL, argv, env, 1));
    orc_drv_op_reset(&c.op);
    snprintf(want, sizeof(want), "path=%.*s:", (int)(strrchr(path, '/') - path), path);
    snprintf(path, sizeof(path), "%s/ag/main.log", t.work);
    for (int i = 0; i < 100 && (text == NULL || strstr(text, "cvd=") == NULL); i++) {
        free(text);
        spin(&t, 50);
        text = slurp(path);
    }
    assert_non_null(text);
    assert_non_null(strstr(text, "cvd=[0] tok=[] "));
    assert_non_null(strstr(text, want));
    free(text);
    snprintf(path, sizeof(path), "%s/ag/main.agent.log", t.work);
    assert_true(file_exists(path));
    assert_int_equal(0, deprovision(&t, "ag", NULL));

    assert_int_equal(0, provision_ok(&t, "bad", ORC_KIND_SERVICE, 0, NULL));
    start(&t, &c, "bad", NULL, failing, NULL, 0); /* ready or not: the agent's to judge */
    orc_drv_op_reset(&c.op);
    json_decref(wait_state(&t, "bad", "main", "failed"));
    json_decref(status_of(&t, "bad", NULL, &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_FAILED, res_state);
    assert_int_equal(0, deprovision(&t, "bad", NULL));
    t_fini(&t);
}

static void test_adopt_after_reopen(void **state)
{
    static const char *const argv[] = {"sh", "-c", "while :; do sleep 0.2; done", NULL};
    static const char *const job[] = {"sh", "-c", "sleep 0.5; exit 4", NULL};
    long pid, pid2 = 0;
    int res_state;
    json_t *e;
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "keep", ORC_KIND_SERVICE, 1, NULL));
    assert_int_equal(0, start_ok(&t, "keep", argv));
    assert_int_equal(0, provision_ok(&t, "jb", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(0, start_ok(&t, "jb", job));
    e = status_of(&t, "keep", "main", NULL, NULL);
    pid = wl_pid(e);
    json_decref(e);
    assert_true(pid > 0);
    /* closing the site leaves the workloads running */
    t_close(&t);
    spin(&t, 100);
    assert_int_equal(0, kill((pid_t)pid, 0));
    assert_true(group_members(pid) > 0);
    /* a new open finds them: adopt reports the same process */
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_adopt(t.site, &c.op, "keep", call_cb)));
    assert_true(c.op.exists);
    assert_int_equal(ORC_DRV_RES_READY, c.op.res_state);
    assert_string_equal("[0]", orc_drv_op_attr(&c.op, "gpus"));
    orc_drv_op_reset(&c.op);
    e = status_of(&t, "keep", "main", &res_state, NULL);
    assert_string_equal("running", wl_state(e));
    assert_int_equal(pid, wl_pid(e));
    json_decref(e);
    /* the capacity it holds survived too */
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(1, c.op.pools[0].gpus_free);
    orc_drv_op_reset(&c.op);
    /* the job ended while nobody watched it as a child: polled, status from the zombie */
    e = wait_state(&t, "jb", "main", "exited");
    assert_int_equal(4, json_integer_value(json_object_get(e, "exit_status")));
    json_decref(e);
    /* still supervised: killed, it restarts */
    assert_int_equal(0, kill((pid_t)pid, SIGKILL));
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        e = status_of(&t, "keep", "main", NULL, NULL);
        pid2 = wl_pid(e);
        json_decref(e);
        if (pid2 > 0 && pid2 != pid)
            break;
    }
    assert_true(pid2 > 0 && pid2 != pid);
    assert_true(wait_group_gone(&t, pid));
    /* died while nobody watched: the next open restarts it */
    t_close(&t);
    assert_int_equal(0, kill((pid_t)pid2, SIGKILL));
    assert_true(wait_group_gone(&t, pid2));
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        e = status_of(&t, "keep", "main", NULL, NULL);
        pid = wl_pid(e);
        json_decref(e);
        if (pid > 0 && pid != pid2)
            break;
    }
    assert_true(pid > 0 && pid != pid2);
    /* an adopted process (not our child) is stopped by deprovision */
    t_close(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, deprovision(&t, "keep", NULL));
    assert_true(wait_group_gone(&t, pid));
    assert_int_equal(0, deprovision(&t, "jb", NULL));
    t_fini(&t);
}

/* Workloads recorded as running whose process is gone (another pid, or
 * reused): a job is recorded as lost, a service is started again. */
static void test_vanished_workloads(void **state)
{
    char path[PATH_MAX], *text;
    json_t *doc, *e;
    long pid;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "vj", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(0, provision_ok(&t, "vs", ORC_KIND_SERVICE, 0, NULL));
    t_close(&t);
    snprintf(path, sizeof(path), "%s/state.json", t.work);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    json_object_set_new(json_object_get(json_object_get(doc, "nodes"), "vj"), "workloads",
                        json_pack("{s:{s:[s,s], s:{}, s:b, s:s, s:i, s:i}}", "main", "argv",
                                  "sleep", "1000", "env", "service", 0, "state", "running", "pid",
                                  (int)getpid(), "start_time", 1));
    json_object_set_new(json_object_get(json_object_get(doc, "nodes"), "vs"), "workloads",
                        json_pack("{s:{s:[s,s], s:{}, s:b, s:s, s:i, s:i}}", "main", "argv",
                                  "sleep", "1000", "env", "service", 1, "state", "running", "pid",
                                  (int)getpid(), "start_time", 1));
    assert_int_equal(0, json_dump_file(doc, path, 0));
    json_decref(doc);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    e = wait_state(&t, "vj", "main", "lost");
    json_decref(e);
    snprintf(path, sizeof(path), "%s/vj/main.status", t.work);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"lost\""));
    free(text);
    e = wait_state(&t, "vs", "main", "running");
    pid = wl_pid(e);
    assert_true(pid > 0 && pid != (long)getpid()); /* not us: the start time differs */
    json_decref(e);
    assert_int_equal(0, deprovision(&t, "vs", NULL));
    assert_true(wait_group_gone(&t, pid));
    assert_int_equal(0, deprovision(&t, "vj", NULL));
    t_fini(&t);
}

struct order {
    int n;
    int seq[4];
};

static void order_cb(orc_op_t *op, int status)
{
    struct call *c = op->data;
    struct order *o = *(struct order **)(c + 1);

    c->done = true;
    c->status = status;
    o->seq[o->n++] = status;
}

/* Closing with operations in flight: they complete first (ECANCELED), the
 * deletion is resumed by the next open; cancel of a deprovision too. */
static void test_close_and_cancel_in_flight(void **state)
{
    static const char *const stubborn[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.1; done",
                                           NULL};
    static const char *const slow[] = {"sleep", "100", NULL};
    struct orc_exec_req xr = {.name = "other", .argv = slow};
    struct {
        struct call c;
        struct order *o;
    } ex, dp, cl;
    struct order o = {0};
    bool exists;
    long pid;
    json_t *e;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 600000"));
    assert_int_equal(0, provision_ok(&t, "st", ORC_KIND_SERVICE, 0, NULL));
    assert_int_equal(0, provision_ok(&t, "other", ORC_KIND_COMPUTE, 0, NULL));
    assert_int_equal(0, start_ok(&t, "st", stubborn));
    spin(&t, 100);
    e = status_of(&t, "st", "main", NULL, NULL);
    pid = wl_pid(e);
    json_decref(e);
    /* a deprovision that waits (SIGTERM ignored, SIGKILL far away), canceled */
    call_init(&dp.c);
    assert_int_equal(0, orc_drv_deprovision(t.site, &dp.c.op, "st", call_cb));
    spin(&t, 50);
    assert_int_equal(0, orc_drv_cancel(t.site, &dp.c.op));
    assert_int_equal(ORC_ECANCELED, wait_call(&t, &dp.c, 0));
    assert_non_null(strstr(dp.c.op.error, "canceled"));
    orc_drv_op_reset(&dp.c.op);
    json_decref(status_of(&t, "st", NULL, NULL, &exists));
    assert_true(exists); /* still being deleted */
    call_init(&ex.c);
    xr.name = "st";
    assert_int_equal(ORC_ECONFLICT, orc_drv_exec(t.site, &ex.c.op, &xr, call_cb));
    assert_non_null(strstr(ex.c.op.error, "being deleted"));
    xr.name = "other";
    /* close with an exec and a deprovision in flight */
    ex.o = dp.o = cl.o = &o;
    call_init(&ex.c);
    call_init(&dp.c);
    call_init(&cl.c);
    assert_int_equal(0, orc_drv_exec(t.site, &ex.c.op, &xr, order_cb));
    assert_int_equal(0, orc_drv_deprovision(t.site, &dp.c.op, "st", order_cb));
    spin(&t, 50);
    assert_int_equal(0, orc_drv_site_close(t.site, &cl.c.op, order_cb));
    wait_call(&t, &cl.c, 0);
    assert_int_equal(3, o.n);
    assert_int_equal(ORC_ECANCELED, o.seq[0]);
    assert_int_equal(ORC_ECANCELED, o.seq[1]);
    assert_int_equal(0, o.seq[2]); /* close last */
    orc_drv_op_reset(&ex.c.op);
    orc_drv_op_reset(&dp.c.op);
    orc_drv_op_reset(&cl.c.op);
    assert_int_equal(0, orc_drv_site_free(t.site));
    t.site = NULL;
    assert_true(group_members(pid) > 0); /* close stops no workload */
    /* the next open finishes the deletion by itself */
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 200"));
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        json_decref(status_of(&t, "st", NULL, NULL, &exists));
        if (!exists)
            break;
    }
    assert_false(exists);
    assert_true(wait_group_gone(&t, pid));
    assert_int_equal(0, deprovision(&t, "other", NULL));
    t_fini(&t);
}

/* Canceling a site open while `nvidia-smi -L` runs. */
static void test_open_cancel(void **state)
{
    char fake[128], path[PATH_MAX], *old;
    struct orc_site_conf conf = {.name = "local-test"};
    char config[256];
    struct call c;
    struct t t;

    (void)state;
    if (file_exists("/proc/driver/nvidia/gpus")) {
        skip(); /* GPUs come from procfs: no probe to cancel */
        return;
    }
    t_init(&t);
    snprintf(fake, sizeof(fake), "%s/bin", t.dir);
    assert_int_equal(0, mkdir(fake, 0700));
    snprintf(path, sizeof(path), "%s/nvidia-smi", fake);
    write_file(path, "#!/bin/sh\nexec sleep 30\n", 0700);
    old = strdup(getenv("PATH"));
    snprintf(path, sizeof(path), "%s:%s", fake, old);
    setenv("PATH", path, 1);
    snprintf(config, sizeof(config), "{\"work_dir\": \"%s\"}", t.work);
    conf.config_json = config;
    assert_int_equal(0, orc_drv_site_new(t.reg, "local", &conf, &t.site));
    call_init(&c);
    assert_int_equal(0, orc_drv_site_open(t.site, &c.op, call_cb));
    setenv("PATH", old, 1);
    free(old);
    spin(&t, 100);
    assert_false(c.done);
    assert_int_equal(0, orc_drv_cancel(t.site, &c.op));
    assert_int_equal(ORC_ECANCELED, wait_call(&t, &c, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, orc_drv_site_free(t.site));
    t.site = NULL;
    /* the work_dir is free again */
    assert_int_equal(0, t_open_with(&t, "\"gpus\": []"));
    t_fini(&t);
}

static void test_deprovision(void **state)
{
    static const char *const kids[] = {"sh", "-c", "sleep 1000 & sleep 1000 & wait", NULL};
    static const char *const stubborn[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.1; done",
                                           NULL};
    char path[PATH_MAX];
    bool existed = true;
    long pid, pid2;
    json_t *e;
    struct t t;
    double t0;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 300"));
    assert_int_equal(0, provision_ok(&t, "d1", ORC_KIND_SERVICE, 1, NULL));
    assert_int_equal(0, start_ok(&t, "d1", kids));
    spin(&t, 100);
    e = status_of(&t, "d1", "main", NULL, NULL);
    pid = wl_pid(e);
    json_decref(e);
    assert_int_equal(3, group_members(pid)); /* sh and two sleeps */
    assert_int_equal(0, deprovision(&t, "d1", &existed));
    assert_true(existed);
    assert_true(wait_group_gone(&t, pid));
    snprintf(path, sizeof(path), "%s/d1", t.work);
    assert_false(file_exists(path));
    /* idempotent: gone is gone */
    assert_int_equal(0, deprovision(&t, "d1", &existed));
    assert_false(existed);
    assert_int_equal(0, deprovision(&t, "never-was", &existed));
    assert_false(existed);
    /* SIGTERM ignored: SIGKILL after stop_timeout_ms */
    assert_int_equal(0, provision_ok(&t, "d2", ORC_KIND_SERVICE, 0, NULL));
    assert_int_equal(0, start_ok(&t, "d2", stubborn));
    spin(&t, 100);
    e = status_of(&t, "d2", "main", NULL, NULL);
    pid2 = wl_pid(e);
    json_decref(e);
    t0 = now_s();
    assert_int_equal(0, deprovision(&t, "d2", NULL));
    assert_true(now_s() - t0 >= 0.25);
    assert_true(wait_group_gone(&t, pid2));
    /* the name can be provisioned again at once */
    assert_int_equal(0, provision_ok(&t, "d1", ORC_KIND_COMPUTE, 2, NULL));
    assert_int_equal(0, deprovision(&t, "d1", NULL));
    /* the trash is emptied in the background */
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        DIR *d = opendir(t.work);
        struct dirent *de;
        int trash = 0;
        while ((de = readdir(d)) != NULL)
            trash += strncmp(de->d_name, ".trash-", 7) == 0;
        closedir(d);
        if (trash == 0)
            break;
    }
    t_fini(&t);
}

static void test_images(void **state)
{
    static const char *const argv[] = {"echo", "hi there", NULL};
    char fake[128], cfg[1024], path[PATH_MAX], want[PATH_MAX * 2], *text;
    const struct orc_kv env[] = {{"MODEL", "m1"}};
    const char *nj = "{\"properties\": {\"image\": \"ghcr.io/acme/serve:1.0\", \"port\": 9000}}";
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    /* no runtime: the workload fails with a clear error */
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "img", ORC_KIND_JOB, 1, nj));
    assert_int_equal(ORC_ENOTSUP, start(&t, &c, "img", NULL, argv, NULL, 0));
    assert_non_null(strstr(c.op.error, "no container runtime"));
    assert_non_null(strstr(c.op.error, "docker or podman"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, deprovision(&t, "img", NULL));
    t_close(&t);
    /* a runtime (a fake docker): the command it gets */
    snprintf(fake, sizeof(fake), "%s/docker", t.dir);
    write_file(fake, "#!/bin/sh\nprintf '%s\\n' \"$@\" > args.txt\necho ran\n", 0700);
    snprintf(cfg, sizeof(cfg), BASE_CONFIG ", \"container_runtime\": \"%s\"", fake);
    assert_int_equal(0, t_open_with(&t, cfg));
    assert_int_equal(0, provision_ok(&t, "img", ORC_KIND_JOB, 1, nj));
    assert_int_equal(0, start(&t, &c, "img", NULL, argv, env, 1));
    orc_drv_op_reset(&c.op);
    json_decref(wait_state(&t, "img", "main", "exited"));
    snprintf(path, sizeof(path), "%s/img/args.txt", t.work);
    text = slurp(path);
    assert_non_null(text);
    snprintf(want, sizeof(want),
             "run\n--rm\n--init\n--name\norc-img-main\n--network=host\n--volume=%s/img:/work\n"
             "--workdir=/work\n--cpus=1\n--memory=1073741824b\n--env\nMODEL=m1\n--env=PORT=9000\n"
             "--gpus=\"device=0\"\nghcr.io/acme/serve:1.0\necho\nhi there\n",
             t.work);
    assert_string_equal(want, text);
    free(text);
    assert_int_equal(0, deprovision(&t, "img", NULL));
    t_fini(&t);
}

/* state.json and the directories disagree (a crash between two writes). */
static void test_reconcile(void **state)
{
    char path[PATH_MAX], *text;
    bool exists;
    int res_state;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "kept", ORC_KIND_COMPUTE, 1, NULL));
    assert_int_equal(0, provision_ok(&t, "orphan", ORC_KIND_COMPUTE, 1, NULL));
    t_close(&t);
    /* "orphan" is missing from state.json, "ghost" has no directory, "junk" no marker */
    snprintf(path, sizeof(path), "%s/state.json", t.work);
    text = slurp(path);
    assert_non_null(text);
    {
        json_t *doc = json_loads(text, 0, NULL), *nodes = json_object_get(doc, "nodes");
        json_t *ghost = json_deep_copy(json_object_get(nodes, "kept"));
        json_object_del(nodes, "orphan");
        json_object_set_new(ghost, "name", json_string("ghost"));
        json_object_set_new(nodes, "ghost", ghost);
        assert_int_equal(0, json_dump_file(doc, path, 0));
        json_decref(doc);
    }
    free(text);
    snprintf(path, sizeof(path), "%s/junk", t.work);
    assert_int_equal(0, mkdir(path, 0700));
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    json_decref(status_of(&t, "kept", NULL, &res_state, &exists));
    assert_true(exists);
    assert_int_equal(ORC_DRV_RES_READY, res_state);
    json_decref(status_of(&t, "orphan", NULL, &res_state, &exists));
    assert_true(exists);
    json_decref(status_of(&t, "ghost", NULL, NULL, &exists));
    assert_false(exists);
    assert_false(file_exists(path)); /* junk went to the trash */
    assert_int_equal(0, deprovision(&t, "kept", NULL));
    assert_int_equal(0, deprovision(&t, "orphan", NULL));
    /* a damaged state.json is not silently dropped */
    t_close(&t);
    snprintf(path, sizeof(path), "%s/state.json", t.work);
    write_file(path, "{\"version\": 1, \"nodes\": ", 0600);
    assert_int_equal(ORC_EFORMAT, t_open_with(&t, BASE_CONFIG));
    assert_non_null(strstr(t.err, "damaged"));
    t_fini(&t);
}

/* ---- ABI 2: stop_workload, stop, start
 * ----------------------------------------------------------------------- */

static int stop_wl(struct t *t, const char *name, const char *wl, bool *existed)
{
    struct call c;
    int rc;

    call_init(&c);
    rc = wait_call(t, &c, orc_drv_stop_workload(t->site, &c.op, name, wl, call_cb));
    if (existed)
        *existed = c.op.exists;
    snprintf(t->err, sizeof(t->err), "%s", c.op.error);
    orc_drv_op_reset(&c.op);
    return rc;
}

/* stop or start of a node; *res_state and *existed from the answer */
static int power(struct t *t, bool stop, const char *name, int *res_state, bool *existed)
{
    struct call c;
    int rc;

    call_init(&c);
    rc = wait_call(t, &c,
                   stop ? orc_drv_stop(t->site, &c.op, name, call_cb)
                        : orc_drv_start(t->site, &c.op, name, call_cb));
    if (res_state)
        *res_state = c.op.res_state;
    if (existed)
        *existed = c.op.exists;
    snprintf(t->err, sizeof(t->err), "%s", c.op.error);
    orc_drv_op_reset(&c.op);
    return rc;
}

static long pid_of(struct t *t, const char *name, const char *wl)
{
    json_t *e = status_of(t, name, wl, NULL, NULL);
    long pid = wl_pid(e);

    json_decref(e);
    return pid;
}

/* The workload's state now (a static copy). */
static const char *state_of(struct t *t, const char *name, const char *wl)
{
    static char buf[32];
    json_t *e = status_of(t, name, wl, NULL, NULL);

    snprintf(buf, sizeof(buf), "%s", e && wl_state(e) ? wl_state(e) : "(none)");
    json_decref(e);
    return buf;
}

/* A workload's record in state.json (a new reference). */
static json_t *state_record(struct t *t, const char *name, const char *wl)
{
    char path[PATH_MAX];
    json_t *doc, *e;

    snprintf(path, sizeof(path), "%s/state.json", t->work);
    doc = json_load_file(path, 0, NULL);
    assert_non_null(doc);
    e = json_object_get(
        json_object_get(json_object_get(json_object_get(doc, "nodes"), name), "workloads"), wl);
    json_incref(e);
    json_decref(doc);
    return e;
}

static void test_stop_workload_service(void **state)
{
    static const char *const stubborn[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.1; done",
                                           NULL};
    char nj[128], portstr[16];
    int port = test_free_port();
    const char *const argv[] = {self_exe, "--listen", portstr, "0", NULL};
    bool existed;
    long pid, pid2, pid3 = 0;
    json_t *rec;
    double t0;
    struct t t;

    (void)state;
    snprintf(portstr, sizeof(portstr), "%d", port);
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 300"));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port);
    assert_int_equal(0, provision_ok(&t, "sw", ORC_KIND_SERVICE, 0, nj));
    assert_int_equal(0, start_ok(&t, "sw", argv));
    assert_true(port_accepts(port));
    pid = pid_of(&t, "sw", "main");
    assert_true(pid > 0);

    /* stopped: the process group is gone, nothing restarts it */
    assert_int_equal(0, stop_wl(&t, "sw", NULL, &existed));
    assert_true(existed);
    assert_int_equal(0, group_members(pid)); /* it no longer runs when stop answers */
    assert_false(port_accepts(port));
    spin(&t, 400); /* well past restart_backoff_ms */
    assert_string_equal("stopped", state_of(&t, "sw", "main"));
    assert_int_equal(0, pid_of(&t, "sw", "main"));
    rec = state_record(&t, "sw", "main");
    assert_true(json_is_true(json_object_get(rec, "held")));
    assert_string_equal("stopped", json_string_value(json_object_get(rec, "state")));
    json_decref(rec);
    /* a second stop: nothing was running */
    assert_int_equal(0, stop_wl(&t, "sw", NULL, &existed));
    assert_false(existed);
    assert_int_equal(0, stop_wl(&t, "sw", "other", &existed)); /* unknown workload */
    assert_false(existed);
    assert_int_equal(ORC_ENOTFOUND, stop_wl(&t, "nobody", NULL, NULL));
    assert_non_null(strstr(t.err, "no node nobody"));
    assert_int_equal(ORC_EINVAL, stop_wl(&t, "sw", "../x", NULL));

    /* start_workload afterwards runs it again, and answers once it listens */
    assert_int_equal(0, start_ok(&t, "sw", argv));
    assert_true(port_accepts(port));
    pid2 = pid_of(&t, "sw", "main");
    assert_true(pid2 > 0 && pid2 != pid);
    assert_string_equal("running", state_of(&t, "sw", "main"));
    rec = state_record(&t, "sw", "main");
    assert_false(json_is_true(json_object_get(rec, "held")));
    json_decref(rec);
    /* supervised again: killed, it restarts */
    assert_int_equal(0, kill((pid_t)pid2, SIGKILL));
    for (double end = now_s() + 10; now_s() < end; spin(&t, 30)) {
        pid3 = pid_of(&t, "sw", "main");
        if (pid3 > 0 && pid3 != pid2)
            break;
    }
    assert_true(pid3 > 0 && pid3 != pid2);

    /* SIGTERM ignored: SIGKILL after stop_timeout_ms */
    {
        struct call c;
        assert_int_equal(0, start(&t, &c, "sw", "stub", stubborn, NULL, 0));
        orc_drv_op_reset(&c.op);
    }
    pid = pid_of(&t, "sw", "stub");
    t0 = now_s();
    assert_int_equal(0, stop_wl(&t, "sw", "stub", &existed));
    assert_true(existed);
    assert_true(now_s() - t0 >= 0.25);
    assert_true(wait_group_gone(&t, pid));
    assert_string_equal("stopped", state_of(&t, "sw", "stub"));
    assert_string_equal("running", state_of(&t, "sw", "main")); /* the other one runs on */
    pid = pid_of(&t, "sw", "main");
    assert_int_equal(0, deprovision(&t, "sw", NULL));
    assert_true(wait_group_gone(&t, pid));
    t_fini(&t);
}

/* A node with two services and a job: stop holds them all, start runs
 * again the services that ran before the stop (not the job, not one
 * stopped on its own before). */
static void test_stop_start_node(void **state)
{
    static const char *const svc[] = {"sh", "-c", "while :; do sleep 0.1; done", NULL};
    static const char *const job[] = {"sleep", "100", NULL};
    struct orc_exec_req xr = {.name = "nd", .argv = svc};
    long pa, pb, pc, pj, pa2, pb2;
    int res_state;
    bool existed;
    struct call c;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "nd", ORC_KIND_COMPUTE, 1, NULL));
    assert_int_equal(0, provision_ok(&t, "nj", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(0, start(&t, &c, "nd", "a", svc, NULL, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, start(&t, &c, "nd", "b", svc, NULL, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, start(&t, &c, "nd", "c", svc, NULL, 0));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, start(&t, &c, "nj", NULL, job, NULL, 0));
    orc_drv_op_reset(&c.op);
    pa = pid_of(&t, "nd", "a");
    pb = pid_of(&t, "nd", "b");
    pc = pid_of(&t, "nd", "c");
    pj = pid_of(&t, "nj", "main");
    assert_true(pa > 0 && pb > 0 && pc > 0 && pj > 0);
    assert_int_equal(0, stop_wl(&t, "nd", "c", &existed));
    assert_true(existed);

    /* stop: every workload stopped, the node STOPPED, its GPU still held */
    assert_int_equal(0, power(&t, true, "nd", &res_state, &existed));
    assert_true(existed);
    assert_int_equal(ORC_DRV_RES_STOPPED, res_state);
    assert_int_equal(0, group_members(pa));
    assert_int_equal(0, group_members(pb));
    assert_true(wait_group_gone(&t, pc));
    json_decref(status_of(&t, "nd", NULL, &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_STOPPED, res_state);
    assert_string_equal("stopped", state_of(&t, "nd", "a"));
    assert_string_equal("stopped", state_of(&t, "nd", "b"));
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_inventory(t.site, &c.op, call_cb)));
    assert_int_equal(1, c.op.pools[0].gpus_free); /* 2 T4, one held by the stopped node */
    orc_drv_op_reset(&c.op);
    spin(&t, 300);
    assert_int_equal(0, pid_of(&t, "nd", "a")); /* not restarted */
    /* a stopped node runs nothing new */
    assert_int_equal(ORC_ECONFLICT, start(&t, &c, "nd", "a", svc, NULL, 0));
    assert_non_null(strstr(c.op.error, "STOPPED"));
    orc_drv_op_reset(&c.op);
    call_init(&c);
    assert_int_equal(ORC_ECONFLICT, orc_drv_exec(t.site, &c.op, &xr, call_cb));
    assert_int_equal(0, stop_wl(&t, "nd", "a", &existed));
    assert_false(existed);
    /* idempotent: a second stop answers at once */
    assert_int_equal(0, power(&t, true, "nd", &res_state, &existed));
    assert_int_equal(ORC_DRV_RES_STOPPED, res_state);
    /* a stopped node's name provisions to the same node, as it is */
    {
        struct orc_node_req req = node_req("nd", ORC_KIND_COMPUTE, 1, 1, "T4", NULL);
        assert_int_equal(0, provision(&t, &c, &req));
        assert_int_equal(ORC_DRV_RES_STOPPED, c.op.res_state);
        orc_drv_op_reset(&c.op);
    }

    /* stop of a node with a running job: killed, and start does not run it again */
    assert_int_equal(0, power(&t, true, "nj", &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_STOPPED, res_state);
    assert_true(wait_group_gone(&t, pj));
    assert_string_equal("stopped", state_of(&t, "nj", "main"));
    assert_int_equal(0, power(&t, false, "nj", &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_READY, res_state);
    spin(&t, 200);
    assert_string_equal("stopped", state_of(&t, "nj", "main"));

    /* start: READY; a and b run again (new processes), c stays stopped */
    assert_int_equal(0, power(&t, false, "nd", &res_state, &existed));
    assert_true(existed);
    assert_int_equal(ORC_DRV_RES_READY, res_state);
    pa2 = pid_of(&t, "nd", "a");
    pb2 = pid_of(&t, "nd", "b");
    assert_true(pa2 > 0 && pa2 != pa && group_members(pa2) > 0);
    assert_true(pb2 > 0 && pb2 != pb && group_members(pb2) > 0);
    assert_string_equal("stopped", state_of(&t, "nd", "c"));
    assert_int_equal(0, power(&t, false, "nd", &res_state, NULL)); /* running: at once */
    assert_int_equal(ORC_DRV_RES_READY, res_state);
    /* c can be started on its own again */
    assert_int_equal(0, start(&t, &c, "nd", "c", svc, NULL, 0));
    orc_drv_op_reset(&c.op);
    assert_string_equal("running", state_of(&t, "nd", "c"));

    /* names that do not exist */
    assert_int_equal(0, power(&t, true, "nobody", &res_state, &existed));
    assert_false(existed);
    assert_int_equal(ORC_ENOTFOUND, power(&t, false, "nobody", NULL, NULL));
    assert_non_null(strstr(t.err, "no node nobody"));
    assert_int_equal(ORC_EINVAL, power(&t, true, "../x", NULL, NULL));

    pc = pid_of(&t, "nd", "c");
    assert_int_equal(0, deprovision(&t, "nd", NULL));
    assert_true(wait_group_gone(&t, pa2));
    assert_true(wait_group_gone(&t, pb2));
    assert_true(wait_group_gone(&t, pc));
    assert_int_equal(0, deprovision(&t, "nj", NULL));
    t_fini(&t);
}

static void test_stop_running_job(void **state)
{
    static const char *const job[] = {"sh", "-c", "sleep 1000 & sleep 1000; exit 0", NULL};
    char path[PATH_MAX], *text;
    bool existed;
    long pid;
    json_t *e;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, provision_ok(&t, "sj", ORC_KIND_JOB, 0, NULL));
    assert_int_equal(0, start_ok(&t, "sj", job));
    spin(&t, 100);
    pid = pid_of(&t, "sj", "main");
    assert_int_equal(3, group_members(pid));
    assert_int_equal(0, stop_wl(&t, "sj", NULL, &existed));
    assert_true(existed);
    assert_true(wait_group_gone(&t, pid)); /* the whole process group */
    e = status_of(&t, "sj", "main", NULL, NULL);
    assert_string_equal("stopped", wl_state(e));
    assert_int_equal(128 + SIGTERM, json_integer_value(json_object_get(e, "exit_status")));
    assert_int_equal(SIGTERM, json_integer_value(json_object_get(e, "signal")));
    json_decref(e);
    snprintf(path, sizeof(path), "%s/sj/main.status", t.work);
    text = slurp(path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"stopped\""));
    free(text);
    assert_int_equal(0, stop_wl(&t, "sj", NULL, &existed));
    assert_false(existed);
    /* a job that finished by itself is not "running": stop does nothing */
    {
        static const char *const quick[] = {"true", NULL};
        struct call c;
        assert_int_equal(0, start(&t, &c, "sj", "quick", quick, NULL, 0));
        orc_drv_op_reset(&c.op);
        json_decref(wait_state(&t, "sj", "quick", "exited"));
        assert_int_equal(0, stop_wl(&t, "sj", "quick", &existed));
        assert_false(existed);
        assert_string_equal("exited", state_of(&t, "sj", "quick"));
    }
    /* start_workload runs the stopped job again */
    assert_int_equal(0, start_ok(&t, "sj", job));
    assert_string_equal("running", state_of(&t, "sj", "main"));
    pid = pid_of(&t, "sj", "main");
    assert_int_equal(0, deprovision(&t, "sj", NULL));
    assert_true(wait_group_gone(&t, pid));
    t_fini(&t);
}

/* What was stopped stays stopped across a site close and a reopen, and a
 * stop cut short by the close is finished by the next open. */
static void test_stop_survives_reopen(void **state)
{
    static const char *const svc[] = {"sh", "-c", "while :; do sleep 0.1; done", NULL};
    static const char *const stubborn[] = {"sh", "-c", "trap '' TERM; while :; do sleep 0.1; done",
                                           NULL};
    long pa, pn, ps, pn2;
    int res_state;
    bool existed;
    struct call c, cl;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 600000"));
    assert_int_equal(0, provision_ok(&t, "ra", ORC_KIND_SERVICE, 0, NULL));
    assert_int_equal(0, provision_ok(&t, "rn", ORC_KIND_SERVICE, 1, NULL));
    assert_int_equal(0, provision_ok(&t, "rs", ORC_KIND_SERVICE, 0, NULL));
    assert_int_equal(0, start_ok(&t, "ra", svc));
    assert_int_equal(0, start_ok(&t, "rn", svc));
    assert_int_equal(0, start_ok(&t, "rs", stubborn));
    pa = pid_of(&t, "ra", "main");
    pn = pid_of(&t, "rn", "main");
    ps = pid_of(&t, "rs", "main");
    assert_int_equal(0, stop_wl(&t, "ra", NULL, &existed));
    assert_true(wait_group_gone(&t, pa));
    assert_int_equal(0, power(&t, true, "rn", &res_state, NULL));
    assert_true(wait_group_gone(&t, pn));
    /* a stop that waits (SIGTERM ignored, SIGKILL far away) when the site closes */
    call_init(&c);
    assert_int_equal(0, orc_drv_stop_workload(t.site, &c.op, "rs", NULL, call_cb));
    spin(&t, 100);
    assert_false(c.done);
    call_init(&cl);
    assert_int_equal(0, orc_drv_site_close(t.site, &cl.op, call_cb));
    assert_int_equal(0, wait_call(&t, &cl, 0));
    assert_true(c.done);
    assert_int_equal(ORC_ECANCELED, c.status);
    orc_drv_op_reset(&c.op);
    orc_drv_op_reset(&cl.op);
    assert_int_equal(0, orc_drv_site_free(t.site));
    t.site = NULL;
    assert_true(group_members(ps) > 0); /* still running: close stops nothing */

    /* the next open: nothing stopped comes back, the cut-short stop ends */
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"stop_timeout_ms\": 200"));
    assert_true(wait_group_gone(&t, ps));
    spin(&t, 300);
    assert_string_equal("stopped", state_of(&t, "ra", "main"));
    assert_int_equal(0, pid_of(&t, "ra", "main"));
    assert_string_equal("stopped", state_of(&t, "rs", "main"));
    assert_int_equal(0, pid_of(&t, "rs", "main"));
    json_decref(status_of(&t, "rn", NULL, &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_STOPPED, res_state);
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_adopt(t.site, &c.op, "rn", call_cb)));
    assert_int_equal(ORC_DRV_RES_STOPPED, c.op.res_state);
    assert_string_equal("[0]", orc_drv_op_attr(&c.op, "gpus")); /* its GPU is still its own */
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, pid_of(&t, "rn", "main"));
    /* and start still knows what to run again */
    assert_int_equal(0, power(&t, false, "rn", &res_state, NULL));
    assert_int_equal(ORC_DRV_RES_READY, res_state);
    pn2 = pid_of(&t, "rn", "main");
    assert_true(pn2 > 0 && group_members(pn2) > 0);
    assert_int_equal(0, deprovision(&t, "ra", NULL));
    assert_int_equal(0, deprovision(&t, "rn", NULL));
    assert_true(wait_group_gone(&t, pn2));
    assert_int_equal(0, deprovision(&t, "rs", NULL));
    t_fini(&t);
}

/* ---- readiness
 * ------------------------------------------------------------------------------------------- */

static void test_readiness(void **state)
{
    static const char *const boom[] = {"sh", "-c", "echo boom-output; echo last words; exit 7",
                                       NULL};
    static const char *const mute[] = {"sleep", "100", NULL};
    static const char *const brief[] = {"sh", "-c", "sleep 0.1; exit 2", NULL};
    char nj[128], portstr[16], want[64];
    int port = test_free_port(), port2 = test_free_port(), port3 = test_free_port();
    const char *const late[] = {self_exe, "--listen", portstr, "300", NULL};
    struct call c;
    double t0, dt;
    long pid;
    struct t t;

    (void)state;
    snprintf(portstr, sizeof(portstr), "%d", port);
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"ready_timeout_ms\": 600, "
                                                    "\"ready_settle_ms\": 300"));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port);
    assert_int_equal(0, provision_ok(&t, "rd", ORC_KIND_SERVICE, 0, nj));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port2);
    assert_int_equal(0, provision_ok(&t, "rt", ORC_KIND_SERVICE, 0, nj));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port3);
    assert_int_equal(0, provision_ok(&t, "rb", ORC_KIND_SERVICE, 0, nj));
    assert_int_equal(0, provision_ok(&t, "rq", ORC_KIND_SERVICE, 0, NULL));

    /* listens after ~300 ms: reported only once it listens */
    assert_false(port_accepts(port));
    t0 = now_s();
    assert_int_equal(0, start(&t, &c, "rd", NULL, late, NULL, 0));
    dt = now_s() - t0;
    assert_true(port_accepts(port));
    assert_true(dt >= 0.29);
    assert_true(dt < 1.5); /* a generous bound: the machine may be busy */
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", port);
    assert_string_equal(want, orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    assert_string_equal("running", orc_drv_op_attr(&c.op, "workload_state"));
    assert_true(atol(orc_drv_op_attr(&c.op, "pid")) > 0);
    orc_drv_op_reset(&c.op);
    /* ready already: a second start answers at once */
    t0 = now_s();
    assert_int_equal(0, start(&t, &c, "rd", NULL, late, NULL, 0));
    assert_true(now_s() - t0 < 0.5);
    orc_drv_op_reset(&c.op);
    /* a second service of the node: the port is main's, so the settle time */
    assert_int_equal(ORC_EDRIVER, start(&t, &c, "rd", "brief", brief, NULL, 0));
    assert_non_null(strstr(c.op.error, "service brief of node rd exited with status 2 before"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, stop_wl(&t, "rd", "brief", NULL)); /* supervised: stop it */

    /* exits at once: its status and the end of its log */
    assert_int_equal(ORC_EDRIVER, start(&t, &c, "rb", NULL, boom, NULL, 0));
    assert_non_null(strstr(c.op.error, "service main of node rb exited with status 7 before"));
    assert_non_null(strstr(c.op.error, "boom-output last words"));
    assert_non_null(strstr(orc_drv_op_attr(&c.op, "log_tail"), "last words"));
    orc_drv_op_reset(&c.op);

    /* never listens: fails after ready_timeout_ms, naming the port and the wait */
    t0 = now_s();
    assert_int_equal(UV_ETIMEDOUT, start(&t, &c, "rt", NULL, mute, NULL, 0));
    dt = now_s() - t0;
    assert_true(dt >= 0.59 && dt < 3.0);
    snprintf(want, sizeof(want), "on 127.0.0.1:%d", port2);
    assert_non_null(strstr(c.op.error, want));
    assert_non_null(strstr(c.op.error, "service main of node rt not ready after 0.6 s"));
    orc_drv_op_reset(&c.op);
    pid = pid_of(&t, "rt", "main");
    assert_string_equal("running", state_of(&t, "rt", "main")); /* it goes on, supervised */

    /* no port: ready once it stayed up ready_settle_ms */
    t0 = now_s();
    assert_int_equal(0, start(&t, &c, "rq", NULL, mute, NULL, 0));
    dt = now_s() - t0;
    assert_true(dt >= 0.29 && dt < 1.5);
    orc_drv_op_reset(&c.op);

    assert_int_equal(0, deprovision(&t, "rt", NULL));
    assert_true(wait_group_gone(&t, pid));
    /* a job does not wait, even on a node with a port: it answers once started */
    assert_int_equal(0, provision_ok(&t, "rj", ORC_KIND_JOB, 0, nj));
    t0 = now_s();
    assert_int_equal(0, start(&t, &c, "rj", NULL, mute, NULL, 0));
    assert_true(now_s() - t0 < 0.5);
    orc_drv_op_reset(&c.op);

    pid = pid_of(&t, "rq", "main");
    assert_int_equal(0, deprovision(&t, "rd", NULL));
    assert_int_equal(0, deprovision(&t, "rb", NULL));
    assert_int_equal(0, deprovision(&t, "rq", NULL));
    assert_int_equal(0, deprovision(&t, "rj", NULL));
    assert_true(wait_group_gone(&t, pid));
    assert_false(port_accepts(port));
    /* ready_settle_ms must be below ready_timeout_ms */
    t_close(&t);
    assert_int_equal(ORC_EINVAL, t_open_with(&t, "\"ready_settle_ms\": 5000, "
                                                 "\"ready_timeout_ms\": 5000"));
    assert_non_null(strstr(t.err, "ready_settle_ms (5000) must be below ready_timeout_ms"));
    t_fini(&t);
}

/* start_workload with a port and a ready_path of its own (a service hosted
 * on a COMPUTE node), and a restart with a new request after a stop. */
static void test_readiness_request_port_and_http(void **state)
{
    char p1[16], p2[16], p3[16], want[96], out[4096];
    int port1 = test_free_port(), port2 = test_free_port(), port3 = test_free_port();
    const char *const http1[] = {self_exe, "--http", p1, "400", NULL};
    const char *const http2[] = {self_exe, "--http", p2, "0", NULL};
    const char *const mute[] = {self_exe, "--listen", p3, "0", NULL};
    const char *const show[] = {"sh", "-c", "echo PORT=$PORT; exec sleep 100", NULL};
    const char *const sleeper[] = {"sleep", "100", NULL};
    struct orc_kv env1[] = {{"PORT", p1}}, env2[] = {{"PORT", p2}};
    struct orc_exec_req req = {
        .name = "host", .workload = "api", .argv = http1, .env = env1, .nenv = 1};
    struct call c;
    double t0, dt;
    long pid;
    struct t t;

    (void)state;
    snprintf(p1, sizeof(p1), "%d", port1);
    snprintf(p2, sizeof(p2), "%d", port2);
    snprintf(p3, sizeof(p3), "%d", port3);
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG ", \"ready_timeout_ms\": 1500"));
    assert_int_equal(0, provision_ok(&t, "host", ORC_KIND_COMPUTE, 0, NULL));

    /* GET /ready answers 503 for 400 ms, then 200: ready then, on the request's port */
    req.port = (uint16_t)port1;
    req.ready_path = "/ready";
    call_init(&c);
    t0 = now_s();
    assert_int_equal(0, wait_call(&t, &c, orc_drv_start_workload(t.site, &c.op, &req, call_cb)));
    dt = now_s() - t0;
    assert_true(dt >= 0.39 && dt < 1.4);
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", port1);
    assert_string_equal(want, orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    orc_drv_op_reset(&c.op);
    assert_true(port_accepts(port1));
    {
        json_t *e = status_of(&t, "host", "api", NULL, NULL);
        assert_int_equal(port1, json_integer_value(json_object_get(e, "port")));
        json_decref(e);
    }

    /* restart: stop, then start with a new request (another port, another $PORT) */
    pid = pid_of(&t, "host", "api");
    assert_int_equal(0, stop_wl(&t, "host", "api", NULL));
    assert_true(wait_group_gone(&t, pid));
    req.argv = http2;
    req.env = env2;
    req.port = (uint16_t)port2;
    call_init(&c);
    assert_int_equal(0, wait_call(&t, &c, orc_drv_start_workload(t.site, &c.op, &req, call_cb)));
    snprintf(want, sizeof(want), "http://127.0.0.1:%d", port2);
    assert_string_equal(want, orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT));
    orc_drv_op_reset(&c.op);
    assert_true(port_accepts(port2));
    assert_false(port_accepts(port1));
    assert_int_equal(0, logs(&t, "host", "api", 0, 0, out, sizeof(out), NULL, NULL));
    snprintf(want, sizeof(want), "serving on %d", port2);
    assert_non_null(strstr(out, want));

    /* a path that never answers 2xx (the api's server answers 404 there): the
     * timeout names it and the last answer */
    req.workload = "wrong";
    req.argv = sleeper;
    req.ready_path = "/nope";
    call_init(&c);
    assert_int_equal(UV_ETIMEDOUT,
                     wait_call(&t, &c, orc_drv_start_workload(t.site, &c.op, &req, call_cb)));
    snprintf(want, sizeof(want), "GET /nope on 127.0.0.1:%d answered HTTP 404", port2);
    assert_non_null(strstr(c.op.error, want));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, stop_wl(&t, "host", "wrong", NULL));
    /* a server that accepts and closes without answering */
    req.workload = "mute";
    req.argv = mute;
    req.port = (uint16_t)port3;
    req.ready_path = "/";
    call_init(&c);
    assert_int_equal(UV_ETIMEDOUT,
                     wait_call(&t, &c, orc_drv_start_workload(t.site, &c.op, &req, call_cb)));
    snprintf(want, sizeof(want), "GET / on 127.0.0.1:%d got no HTTP answer", port3);
    assert_non_null(strstr(c.op.error, want));
    orc_drv_op_reset(&c.op);
    /* $PORT is the request's port */
    req.workload = "show";
    req.argv = show;
    req.env = NULL;
    req.nenv = 0;
    req.port = 4242;
    req.ready_path = NULL;
    call_init(&c);
    assert_int_equal(UV_ETIMEDOUT,
                     wait_call(&t, &c, orc_drv_start_workload(t.site, &c.op, &req, call_cb)));
    assert_non_null(strstr(c.op.error, "nothing accepts connections on 127.0.0.1:4242"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(0, logs(&t, "host", "show", 0, 0, out, sizeof(out), NULL, NULL));
    assert_non_null(strstr(out, "PORT=4242"));
    /* a bad ready_path is refused at once */
    req.workload = "bad";
    req.ready_path = "no-slash";
    call_init(&c);
    assert_int_equal(ORC_EINVAL, orc_drv_start_workload(t.site, &c.op, &req, call_cb));
    assert_non_null(strstr(c.op.error, "ready_path 'no-slash' must be an HTTP path"));
    orc_drv_op_reset(&c.op);

    pid = pid_of(&t, "host", "api");
    assert_int_equal(0, deprovision(&t, "host", NULL));
    assert_true(wait_group_gone(&t, pid));
    assert_false(port_accepts(port2));
    t_fini(&t);
}

/* Cancel, stop, deletion and site close during a readiness wait. */
static void test_readiness_interrupted(void **state)
{
    static const char *const mute[] = {"sleep", "100", NULL};
    struct orc_exec_req xr = {.name = "ri", .argv = mute};
    char nj[128];
    int port = test_free_port();
    struct call c, d, cl;
    long pid;
    struct t t;

    (void)state;
    t_init(&t);
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    snprintf(nj, sizeof(nj), "{\"properties\": {\"port\": %d}}", port);
    assert_int_equal(0, provision_ok(&t, "ri", ORC_KIND_SERVICE, 0, nj));

    /* cancel: ECANCELED, what started runs on */
    call_init(&c);
    assert_int_equal(0, orc_drv_start_workload(t.site, &c.op, &xr, call_cb));
    spin(&t, 150);
    assert_false(c.done);
    assert_int_equal(0, orc_drv_cancel(t.site, &c.op));
    assert_int_equal(ORC_ECANCELED, wait_call(&t, &c, 0));
    assert_non_null(strstr(c.op.error, "canceled"));
    assert_int_equal(ORC_ENOTFOUND, orc_drv_cancel(t.site, &c.op));
    orc_drv_op_reset(&c.op);
    assert_string_equal("running", state_of(&t, "ri", "main"));
    pid = pid_of(&t, "ri", "main");

    /* stop_workload during a wait (a retry of the start): the wait fails */
    call_init(&c);
    assert_int_equal(0, orc_drv_start_workload(t.site, &c.op, &xr, call_cb));
    spin(&t, 50);
    assert_int_equal(0, stop_wl(&t, "ri", NULL, NULL));
    assert_true(c.done);
    assert_int_equal(ORC_ECONFLICT, c.status);
    assert_non_null(strstr(c.op.error, "stopped before it was ready"));
    orc_drv_op_reset(&c.op);
    assert_true(wait_group_gone(&t, pid));

    /* deprovision during a wait: the wait fails, the node goes */
    call_init(&c);
    assert_int_equal(0, orc_drv_start_workload(t.site, &c.op, &xr, call_cb));
    spin(&t, 50);
    pid = pid_of(&t, "ri", "main");
    call_init(&d);
    assert_int_equal(0, orc_drv_deprovision(t.site, &d.op, "ri", call_cb));
    assert_int_equal(ORC_ECONFLICT, wait_call(&t, &c, 0));
    assert_non_null(strstr(c.op.error, "being deleted"));
    for (double end = now_s() + 10; !d.done && now_s() < end;)
        spin(&t, 10);
    assert_true(d.done);
    assert_int_equal(0, d.status);
    orc_drv_op_reset(&c.op);
    orc_drv_op_reset(&d.op);
    assert_true(wait_group_gone(&t, pid));

    /* site close during a wait: ECANCELED before the close, no handle left */
    assert_int_equal(0, provision_ok(&t, "ri", ORC_KIND_SERVICE, 0, nj));
    call_init(&c);
    assert_int_equal(0, orc_drv_start_workload(t.site, &c.op, &xr, call_cb));
    spin(&t, 120);
    pid = pid_of(&t, "ri", "main");
    call_init(&cl);
    assert_int_equal(0, orc_drv_site_close(t.site, &cl.op, call_cb));
    assert_int_equal(0, wait_call(&t, &cl, 0));
    assert_true(c.done);
    assert_int_equal(ORC_ECANCELED, c.status);
    orc_drv_op_reset(&c.op);
    orc_drv_op_reset(&cl.op);
    assert_int_equal(0, orc_drv_site_free(t.site));
    t.site = NULL;
    /* the service was started and is left running by the close: a new open
     * adopts it, deprovision ends it */
    assert_int_equal(0, t_open_with(&t, BASE_CONFIG));
    assert_int_equal(0, deprovision(&t, "ri", NULL));
    assert_true(wait_group_gone(&t, pid));
    t_fini(&t);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_config_errors, teardown_leftovers),
        cmocka_unit_test_teardown(test_work_dir_guard, teardown_leftovers),
        cmocka_unit_test_teardown(test_machine_defaults_and_probe, teardown_leftovers),
        cmocka_unit_test_teardown(test_provision_and_capacity, teardown_leftovers),
        cmocka_unit_test_teardown(test_no_gpus, teardown_leftovers),
        cmocka_unit_test_teardown(test_bad_names, teardown_leftovers),
        cmocka_unit_test_teardown(test_job, teardown_leftovers),
        cmocka_unit_test_teardown(test_logs, teardown_leftovers),
        cmocka_unit_test_teardown(test_exec, teardown_leftovers),
        cmocka_unit_test_teardown(test_service_restart, teardown_leftovers),
        cmocka_unit_test_teardown(test_service_http, teardown_leftovers),
        cmocka_unit_test_teardown(test_service_gives_up, teardown_leftovers),
        cmocka_unit_test_teardown(test_adopt_after_reopen, teardown_leftovers),
        cmocka_unit_test_teardown(test_vanished_workloads, teardown_leftovers),
        cmocka_unit_test_teardown(test_close_and_cancel_in_flight, teardown_leftovers),
        cmocka_unit_test_teardown(test_open_cancel, teardown_leftovers),
        cmocka_unit_test_teardown(test_deprovision, teardown_leftovers),
        cmocka_unit_test_teardown(test_images, teardown_leftovers),
        cmocka_unit_test_teardown(test_reconcile, teardown_leftovers),
        cmocka_unit_test_teardown(test_stop_workload_service, teardown_leftovers),
        cmocka_unit_test_teardown(test_stop_start_node, teardown_leftovers),
        cmocka_unit_test_teardown(test_stop_running_job, teardown_leftovers),
        cmocka_unit_test_teardown(test_stop_survives_reopen, teardown_leftovers),
        cmocka_unit_test_teardown(test_readiness, teardown_leftovers),
        cmocka_unit_test_teardown(test_readiness_request_port_and_http, teardown_leftovers),
        cmocka_unit_test_teardown(test_readiness_interrupted, teardown_leftovers),
        cmocka_unit_test_teardown(test_workloads_through_agent, teardown_leftovers),
    };

    if (argc == 4 && strcmp(argv[1], "--listen") == 0)
        return listen_main(atoi(argv[2]), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--http") == 0)
        return http_main(atoi(argv[2]), atoi(argv[3]));
    if (realpath("/proc/self/exe", self_exe) == NULL)
        snprintf(self_exe, sizeof(self_exe), "%s", argv[0]);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
