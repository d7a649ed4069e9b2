/*
 * The local site's persistent state. work_dir holds:
 *   .lock          flock()ed while a site is open on it (one owner at a time)
 *   state.json     every node: reservation (cpus, mem, GPU indices), whether
 *                  it is stopped, and its workloads (argv, env, pid, start
 *                  time, state, held by a stop); rewritten atomically
 *                  (write + rename) on every change
 *   <name>/        a node's sandbox (mode 0700); <name>/node.json is the
 *                  marker that the node was fully created
 *   .trash-*       directories being deleted in the background
 * At open the two are reconciled: a node in state.json without its marker
 * never finished provisioning and is dropped; a directory with a marker but
 * missing from state.json (a crash between the two writes) is taken back
 * from its marker; directories with neither are deleted. Small files are
 * written synchronously (allowed by the ABI); directory trees are removed
 * by a child `rm -rf` so that the loop never waits on the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "local.h"

#define STATE_FILE "state.json"
#define MARKER_FILE "node.json"
#define STATE_VERSION 1

/* ---- small helpers ----------------------------------------------------------------- */

char *local_strdup(struct local *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = s->host->malloc(n);

    if (d != NULL)
        memcpy(d, str, n);
    return d;
}

char *local_printf(struct local *s, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    out = s->host->malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

int64_t local_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const kind_names[] = {"COMPUTE",  "SERVICE", "JOB",
                                         "SOFTWARE", "NETWORK", "STORAGE"};

const char *local_kind_name(enum orc_node_kind k)
{
    return (unsigned)k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static int kind_parse(const char *name, enum orc_node_kind *out)
{
    for (size_t i = 0; name != NULL && i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
        if (strcmp(name, kind_names[i]) == 0) {
            *out = (enum orc_node_kind)i;
            return 0;
        }
    }
    return ORC_EINVAL;
}

static bool name_chars(const char *name, const char *extra)
{
    size_t n = 0;

    if (name == NULL)
        return false;
    for (; name[n] != '\0'; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c) != NULL))
            return false;
    }
    return n >= 1 && n <= LOCAL_NAME_MAX;
}

/* Node names become directory names in work_dir: no '/', no '.', so never
 * "..", "state.json" or a ".trash-" entry. */
bool local_node_name_ok(const char *name)
{
    return name_chars(name, "_-") && name[0] != '-';
}

/* Workload ids become <id>.log and <id>.status in the node's directory. */
bool local_wl_id_ok(const char *id)
{
    return name_chars(id, "_.-") && id[0] != '.' && id[0] != '-' && strstr(id, "..") == NULL;
}

bool local_relpath_ok(const char *path)
{
    const char *p = path;

    if (path == NULL || *path == '\0' || *path == '/' || strlen(path) > 1024)
        return false;
    while (*p != '\0') {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 2 && strncmp(p, "..", 2) == 0))
            return false;
        p += n;
        if (*p == '/')
            p++;
    }
    return true;
}

char *local_node_path(struct local *s, const char *name, const char *leaf)
{
    return leaf ? local_printf(s, "%s/%s/%s", s->work_dir, name, leaf)
                : local_printf(s, "%s/%s", s->work_dir, name);
}

int local_write_atomic(const char *path, const char *data, size_t len)
{
    char tmp[4200];
    int fd, rc = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        data += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

int local_mkdir_p(const char *path, int mode)
{
    char buf[4200];
    size_t n = strlen(path);
    struct stat st;

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return -errno;
    if (stat(buf, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* ---- nodes in memory ---------------------------------------------------------------- */

struct local_node *local_node_find(struct local *s, const char *name)
{
    for (struct local_node *n = s->nodes; n != NULL; n = n->next)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

struct local_wl *local_wl_find(struct local_node *n, const char *id)
{
    for (struct local_wl *w = n->wls; w != NULL; w = w->next)
        if (strcmp(w->id, id) == 0)
            return w;
    return NULL;
}

void local_node_link(struct local *s, struct local_node *n)
{
    struct local_node **pp = &s->nodes;

    while (*pp != NULL) /* keep creation order: state.json reads naturally */
        pp = &(*pp)->next;
    n->next = NULL;
    *pp = n;
    s->nnodes++;
}

void local_node_unlink(struct local *s, struct local_node *n)
{
    for (struct local_node **pp = &s->nodes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            n->next = NULL;
            s->nnodes--;
            return;
        }
    }
}

void local_gpus_release(struct local_node *n)
{
    struct local *s = n->s;

    for (uint32_t i = 0; i < s->ngpus; i++)
        if (s->gpus[i].owner == n)
            s->gpus[i].owner = NULL;
}

void local_node_free(struct local_node *n)
{
    struct local *s;

    if (n == NULL)
        return;
    s = n->s;
    local_gpus_release(n);
    while (n->wls != NULL) {
        struct local_wl *w = n->wls;
        n->wls = w->next;
        local_wl_free(w);
    }
    if (n->kill_timer != 0)
        s->host->timer_stop(s->host, n->kill_timer);
    if (n->step_timer != 0)
        s->host->timer_stop(s->host, n->step_timer);
    s->host->free(n->image);
    s->host->free(n->failed);
    s->host->free(n);
}

/* ---- JSON records ------------------------------------------------------------------------ */

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();

    for (size_t i = 0; a != NULL && v != NULL && v[i] != NULL; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *env_json(char *const *env)
{
    json_t *o = json_object();

    for (size_t i = 0; o != NULL && env != NULL && env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        char key[256];
        if (eq == NULL || (size_t)(eq - env[i]) >= sizeof(key))
            continue;
        snprintf(key, sizeof(key), "%.*s", (int)(eq - env[i]), env[i]);
        if (json_object_set_new(o, key, json_string(eq + 1)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *u32v_json(const uint32_t *v, uint32_t n)
{
    json_t *a = json_array();

    for (uint32_t i = 0; a != NULL && i < n; i++)
        if (json_array_append_new(a, json_integer(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *wl_json(const struct local_wl *w)
{
    json_t *o = json_pack(
        "{s:o?, s:o?, s:o?, s:s?, s:b, s:s, s:I, s:I, s:I, s:i, s:I, s:b, s:b}", "argv",
        strv_json(w->argv), "env", env_json(w->env), "gpus",
        w->gpus ? u32v_json(w->gpus, w->npins) : json_null(), "workdir", w->workdir, "service",
        w->service, "state", local_wl_state_name(w->st), "pid", (json_int_t)w->pid, "start_time",
        (json_int_t)w->start_time, "exit_status", (json_int_t)w->exit_status, "signal",
        w->term_signal, "restarts", (json_int_t)w->restarts, "held", w->held, "resume", w->resume);
    if (o != NULL && w->port != 0 && json_object_set_new(o, "port", json_integer(w->port)) != 0) {
        json_decref(o);
        return NULL;
    }
    if (o != NULL && w->ready_path != NULL &&
        json_object_set_new(o, "ready_path", json_string(w->ready_path)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *node_json(const struct local_node *n, bool with_workloads)
{
    json_t *o, *wls;

    o = json_pack("{s:s, s:s, s:I, s:I, s:o?, s:s, s:i, s:s?, s:s?, s:I}", "name", n->name, "kind",
                  local_kind_name(n->kind), "cpus", (json_int_t)n->cpus, "mem", (json_int_t)n->mem,
                  "gpus", u32v_json(n->gpus, n->ngpus), "gpu_model", n->gpu_model, "port", n->port,
                  "image", n->image, "failed", n->failed, "created_ms", (json_int_t)n->created_ms);
    if (o == NULL || !with_workloads)
        return o;
    if ((n->deleting && json_object_set_new(o, "deleting", json_true()) != 0) ||
        (n->stopped && json_object_set_new(o, "stopped", json_true()) != 0)) {
        json_decref(o);
        return NULL;
    }
    wls = json_object();
    if (wls == NULL || json_object_set_new(o, "workloads", wls) != 0) {
        json_decref(o);
        return NULL;
    }
    for (const struct local_wl *w = n->wls; w != NULL; w = w->next)
        if (json_object_set_new(wls, w->id, wl_json(w)) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

static int dump_to(struct local *s, json_t *doc, const char *path)
{
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    int rc;

    if (text == NULL)
        return ORC_ENOMEM;
    rc = local_write_atomic(path, text, strlen(text));
    free(text); /* jansson's allocator */
    if (rc < 0)
        s->host->log(s->host, ORC_DRV_LOG_ERROR, "local: cannot write %s: %s", path, strerror(-rc));
    return rc;
}

int local_persist(struct local *s)
{
    json_t *doc = json_pack("{s:i, s:{}}", "version", STATE_VERSION, "nodes");
    json_t *nodes = json_object_get(doc, "nodes");
    char *path;
    int rc = 0;

    if (doc == NULL)
        return ORC_ENOMEM;
    for (struct local_node *n = s->nodes; n != NULL && rc == 0; n = n->next)
        if (json_object_set_new(nodes, n->name, node_json(n, true)) != 0)
            rc = ORC_ENOMEM;
    path = local_printf(s, "%s/%s", s->work_dir, STATE_FILE);
    if (rc == 0)
        rc = path ? dump_to(s, doc, path) : ORC_ENOMEM;
    s->host->free(path);
    json_decref(doc);
    return rc;
}

int local_marker_write(struct local_node *n)
{
    struct local *s = n->s;
    json_t *doc = node_json(n, false);
    char *path = local_node_path(s, n->name, MARKER_FILE);
    int rc = doc && path ? dump_to(s, doc, path) : ORC_ENOMEM;

    json_decref(doc);
    s->host->free(path);
    return rc;
}

/* ---- loading ---------------------------------------------------------------------------- */

static char **strv_from(struct local *s, const json_t *a, bool env)
{
    size_t n = env ? json_object_size(a) : json_array_size(a), i = 0;
    char **v = s->host->calloc(n + 1, sizeof(*v));
    const char *k;
    json_t *e;

    if (v == NULL)
        return NULL;
    if (env) {
        json_object_foreach((json_t *)a, k,
                            e) if (json_is_string(e) &&
                                   (v[i] = local_printf(s, "%s=%s", k, json_string_value(e)))) i++;
    } else {
        json_array_foreach(a, n, e) if (json_is_string(e) &&
                                        (v[i] = local_strdup(s, json_string_value(e)))) i++;
    }
    return v;
}

void local_strv_free(struct local *s, char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        s->host->free(v[i]);
    s->host->free(v);
}

static int wl_from(struct local_node *n, const char *id, const json_t *o)
{
    struct local *s = n->s;
    struct local_wl *w;
    const json_t *gpus = json_object_get(o, "gpus");
    const char *workdir = json_string_value(json_object_get(o, "workdir"));
    const char *ready_path = json_string_value(json_object_get(o, "ready_path"));
    json_int_t port = json_integer_value(json_object_get(o, "port"));

    if (!local_wl_id_ok(id) || json_array_size(json_object_get(o, "argv")) == 0) {
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_WARN,
                              "local: %s: dropping bad workload record '%s'", n->name, id);
        return 0;
    }
    w = s->host->calloc(1, sizeof(*w));
    if (w == NULL)
        return ORC_ENOMEM;
    w->node = n;
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->argv = strv_from(s, json_object_get(o, "argv"), false);
    w->env = strv_from(s, json_object_get(o, "env"), true);
    w->workdir = workdir && local_relpath_ok(workdir) ? local_strdup(s, workdir) : NULL;
    if (json_is_array(gpus)) {
        w->gpus = s->host->calloc(json_array_size(gpus) + 1, sizeof(*w->gpus));
        for (size_t i = 0; w->gpus && i < json_array_size(gpus); i++)
            w->gpus[w->npins++] = (uint32_t)json_integer_value(json_array_get(gpus, i));
    }
    w->service = json_is_true(json_object_get(o, "service"));
    if (local_wl_state_parse(json_string_value(json_object_get(o, "state")), &w->st) < 0)
        w->st = LOCAL_WL_LOST;
    w->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    w->start_time = (uint64_t)json_integer_value(json_object_get(o, "start_time"));
    w->exit_status = (int)json_integer_value(json_object_get(o, "exit_status"));
    w->term_signal = (int)json_integer_value(json_object_get(o, "signal"));
    w->restarts = (uint32_t)json_integer_value(json_object_get(o, "restarts"));
    w->held = json_is_true(json_object_get(o, "held"));
    w->port = port > 0 && port <= 65535 ? (uint16_t)port : 0;
    w->ready_path = ready_path && ready_path[0] == '/' ? local_strdup(s, ready_path) : NULL;
    w->resume = json_is_true(json_object_get(o, "resume"));
    w->backoff_ms = s->backoff_ms;
    w->next = n->wls;
    n->wls = w;
    if (w->argv == NULL || w->env == NULL || (json_is_array(gpus) && w->gpus == NULL) ||
        (workdir && local_relpath_ok(workdir) && w->workdir == NULL) ||
        (ready_path && ready_path[0] == '/' && w->ready_path == NULL))
        return ORC_ENOMEM;
    return 0;
}

/* A node from its state.json record or its marker; NULL with a log line. */
static struct local_node *node_from(struct local *s, const char *name, const json_t *o, int *rc)
{
    struct local_node *n;
    const json_t *gpus = json_object_get(o, "gpus"), *wls = json_object_get(o, "workloads");
    const char *image = json_string_value(json_object_get(o, "image"));
    const char *failed = json_string_value(json_object_get(o, "failed"));
    const char *id;
    json_t *w;
    size_t i;

    *rc = 0;
    n = s->host->calloc(1, sizeof(*n));
    if (n == NULL) {
        *rc = ORC_ENOMEM;
        return NULL;
    }
    n->s = s;
    snprintf(n->name, sizeof(n->name), "%s", name);
    if (kind_parse(json_string_value(json_object_get(o, "kind")), &n->kind) < 0)
        n->kind = ORC_KIND_COMPUTE;
    n->cpus = (uint32_t)json_integer_value(json_object_get(o, "cpus"));
    n->mem = (uint64_t)json_integer_value(json_object_get(o, "mem"));
    for (i = 0; i < json_array_size(gpus) && i < LOCAL_MAX_GPUS; i++)
        n->gpus[n->ngpus++] = (uint32_t)json_integer_value(json_array_get(gpus, i));
    snprintf(n->gpu_model, sizeof(n->gpu_model), "%s",
             json_string_value(json_object_get(o, "gpu_model"))
                 ? json_string_value(json_object_get(o, "gpu_model"))
                 : "");
    n->port = (uint16_t)json_integer_value(json_object_get(o, "port"));
    n->created_ms = json_integer_value(json_object_get(o, "created_ms"));
    n->deleting = json_is_true(json_object_get(o, "deleting")); /* resumed at open */
    n->stopped = json_is_true(json_object_get(o, "stopped"));
    n->image = image ? local_strdup(s, image) : NULL;
    n->failed = failed ? local_strdup(s, failed) : NULL;
    if ((image && !n->image) || (failed && !n->failed))
        *rc = ORC_ENOMEM;
    json_object_foreach((json_t *)wls, id, w) if (*rc == 0) *rc = wl_from(n, id, w);
    if (*rc < 0) {
        local_node_free(n);
        return NULL;
    }
    return n;
}

static bool marker_exists(struct local *s, const char *name)
{
    char *path = local_node_path(s, name, MARKER_FILE);
    struct stat st;
    bool ok = path != NULL && lstat(path, &st) == 0 && S_ISREG(st.st_mode);

    s->host->free(path);
    return ok;
}

static int load_state(struct local *s, orc_op_t *op, json_t *doc)
{
    json_t *nodes = json_object_get(doc, "nodes"), *o;
    const char *name;
    int rc = 0;

    if (!json_is_object(nodes) ||
        json_integer_value(json_object_get(doc, "version")) != STATE_VERSION)
        return orc_op_failf(op, ORC_EFORMAT, "local: %s/%s: not a version %d state file",
                            s->work_dir, STATE_FILE, STATE_VERSION);
    json_object_foreach(nodes, name, o)
    {
        struct local_node *n;
        if (!local_node_name_ok(name) || !json_is_object(o)) {
            s->host->log(s->host, ORC_DRV_LOG_WARN, "local: state.json: skipping '%s'", name);
            continue;
        }
        if (!marker_exists(s, name)) {
            orc_host_log_resource(
                s->host, name, ORC_DRV_LOG_WARN,
                "local: node %s has no %s (its provisioning did not finish): dropped", name,
                MARKER_FILE);
            local_trash(s, name, false);
            continue;
        }
        n = node_from(s, name, o, &rc);
        if (n == NULL)
            return orc_op_failf(op, rc, "local: loading node %s: %s", name, orc_strerror(rc));
        local_node_link(s, n);
    }
    return 0;
}

/* Directories of work_dir that state.json does not know. */
static int scan_dir(struct local *s, orc_op_t *op, bool *foreign)
{
    DIR *d = opendir(s->work_dir);
    struct dirent *de;
    int rc = 0;

    if (d == NULL)
        return orc_op_failf(op, ORC_EIO, "local: cannot read %s: %s", s->work_dir, strerror(errno));
    while (rc == 0 && (de = readdir(d)) != NULL) {
        const char *e = de->d_name;
        json_t *m;
        char *path;
        struct local_node *n;

        if (strcmp(e, ".") == 0 || strcmp(e, "..") == 0 || strcmp(e, ".lock") == 0 ||
            strncmp(e, ".trash-", 7) == 0 || strcmp(e, STATE_FILE) == 0 ||
            strcmp(e, STATE_FILE ".tmp") == 0)
            continue;
        if (!local_node_name_ok(e)) {
            *foreign = true;
            continue;
        }
        if (local_node_find(s, e) != NULL)
            continue;
        *foreign = true;
        if (!marker_exists(s, e))
            continue; /* decided by the caller: not ours, or a remnant */
        path = local_node_path(s, e, MARKER_FILE);
        m = path ? json_load_file(path, 0, NULL) : NULL;
        s->host->free(path);
        n = json_is_object(m) ? node_from(s, e, m, &rc) : NULL;
        json_decref(m);
        if (n != NULL) {
            orc_host_log_resource(
                s->host, e, ORC_DRV_LOG_WARN,
                "local: node %s was missing from state.json: recovered from its %s", e,
                MARKER_FILE);
            local_node_link(s, n);
        }
    }
    closedir(d);
    return rc < 0 ? orc_op_failf(op, rc, "local: scanning %s: %s", s->work_dir, orc_strerror(rc))
                  : 0;
}

/* Remnant directories (no marker, not in state.json) of a directory that is ours. */
static void drop_remnants(struct local *s)
{
    DIR *d = opendir(s->work_dir);
    struct dirent *de;
    char *names[64];
    size_t n = 0;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL && n < 64)
        if (local_node_name_ok(de->d_name) && local_node_find(s, de->d_name) == NULL &&
            de->d_type != DT_REG && (names[n] = local_strdup(s, de->d_name)) != NULL)
            n++;
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        s->host->log(s->host, ORC_DRV_LOG_WARN, "local: %s/%s is no node (no %s): deleting it",
                     s->work_dir, names[i], MARKER_FILE);
        local_trash(s, names[i], false);
        s->host->free(names[i]);
    }
}

static int lock_work_dir(struct local *s, orc_op_t *op)
{
    char *path = local_printf(s, "%s/.lock", s->work_dir);
    char pid[32];
    int n;

    if (path == NULL)
        return ORC_ENOMEM;
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    s->host->free(path);
    if (s->lock_fd < 0)
        return orc_op_failf(op, ORC_EIO, "local: cannot open %s/.lock: %s", s->work_dir,
                            strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char other[32] = "";
        ssize_t r = pread(s->lock_fd, other, sizeof(other) - 1, 0);
        other[r > 0 ? r : 0] = '\0';
        other[strcspn(other, "\n")] = '\0';
        close(s->lock_fd);
        s->lock_fd = -1;
        return orc_op_failf(op, ORC_ECONFLICT,
                            "local: work_dir %s is in use by another site or process%s%s",
                            s->work_dir, other[0] ? " (pid " : "", other[0] ? other : "");
    }
    s->lock_held = true;
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) == 0 && pwrite(s->lock_fd, pid, (size_t)n, 0) < 0)
        s->host->log(s->host, ORC_DRV_LOG_DEBUG, "local: cannot write the lock's pid");
    return 0;
}

int local_store_open(struct local *s, orc_op_t *op)
{
    char *path;
    json_t *doc;
    json_error_t jerr;
    bool foreign = false, have_state;
    struct stat st;
    int rc;

    s->lock_fd = -1;
    rc = local_mkdir_p(s->work_dir, 0700);
    if (rc < 0)
        return orc_op_failf(op, ORC_EIO, "local: cannot create work_dir %s: %s", s->work_dir,
                            strerror(-rc));
    if (access(s->work_dir, R_OK | W_OK | X_OK) != 0)
        return orc_op_failf(op, ORC_EDENIED, "local: work_dir %s is not writable: %s", s->work_dir,
                            strerror(errno));
    rc = lock_work_dir(s, op);
    if (rc < 0)
        return rc;
    path = local_printf(s, "%s/%s", s->work_dir, STATE_FILE);
    if (path == NULL)
        return ORC_ENOMEM;
    have_state = stat(path, &st) == 0;
    doc = have_state ? json_load_file(path, 0, &jerr) : NULL;
    s->host->free(path);
    if (have_state && doc == NULL)
        return orc_op_failf(op, ORC_EFORMAT, "local: %s/%s is damaged: %d:%d: %s", s->work_dir,
                            STATE_FILE, jerr.line, jerr.column, jerr.text);
    rc = have_state ? load_state(s, op, doc) : 0;
    json_decref(doc);
    if (rc == 0)
        rc = scan_dir(s, op, &foreign);
    if (rc < 0)
        return rc;
    if (!have_state && foreign && s->nodes == NULL)
        return orc_op_failf(op, ORC_EDENIED,
                            "local: work_dir %s is not empty and holds no %s: not a local "
                            "site's directory (refusing to use it)",
                            s->work_dir, STATE_FILE);
    drop_remnants(s);
    return 0;
}

void local_store_bind_gpus(struct local *s)
{
    for (struct local_node *n = s->nodes; n != NULL; n = n->next) {
        for (uint32_t i = 0; i < n->ngpus; i++) {
            uint32_t g = n->gpus[i];
            const char *why = NULL;
            char msg[192];
            if (g >= s->ngpus)
                why = "is no longer present";
            else if (s->gpus[g].owner != NULL && s->gpus[g].owner != n)
                why = "is held by another node";
            if (why == NULL) {
                s->gpus[g].owner = n;
                continue;
            }
            snprintf(msg, sizeof(msg), "GPU %u %s", g, why);
            orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_ERROR,
                                  "local: node %s: %s: marked FAILED", n->name, msg);
            if (n->failed == NULL)
                n->failed = local_strdup(s, msg);
        }
    }
}

void local_store_close(struct local *s)
{
    while (s->nodes != NULL) {
        struct local_node *n = s->nodes;
        local_node_unlink(s, n);
        local_node_free(n);
    }
    if (s->lock_fd >= 0) {
        if (s->lock_held && ftruncate(s->lock_fd, 0) != 0)
            s->host->log(s->host, ORC_DRV_LOG_DEBUG, "local: cannot clear the lock file");
        close(s->lock_fd); /* releases the flock */
    }
    s->lock_fd = -1;
    s->lock_held = false;
}

/* ---- deleting directories ------------------------------------------------------------------ */

static void trash_done(struct local *s, void *arg, struct local_child_result *r)
{
    char *path = arg;

    if (r->exit_status != 0)
        s->host->log(s->host, ORC_DRV_LOG_WARN, "local: rm -rf %s: exit status %lld%s%.*s", path,
                     (long long)r->exit_status, r->len ? ": " : "",
                     (int)(r->len > 200 ? 200 : r->len), r->out ? r->out : "");
    s->host->free(path);
}

static void trash_remove(struct local *s, char *path)
{
    const char *argv[] = {s->rm_path, "-rf", "--", path, NULL};
    struct local_child_opts o = {
        .argv = argv, .cwd = s->work_dir, .capture = 4096, .keep_on_close = true, .free_arg = true};

    if (local_child_run(s, &o, trash_done, path, NULL) < 0) {
        s->host->log(s->host, ORC_DRV_LOG_WARN,
                     "local: cannot start rm for %s: left for the next open", path);
        s->host->free(path);
    }
}

int local_trash(struct local *s, const char *name, bool remove_now)
{
    char *from = local_printf(s, "%s/%s", s->work_dir, name);
    char *to = local_printf(s, "%s/.trash-%s-%" PRId64 "-%" PRIu64, s->work_dir, name,
                            local_now_ms(), ++s->trash_seq);
    int rc = 0;

    if (from == NULL || to == NULL) {
        rc = ORC_ENOMEM;
    } else if (rename(from, to) != 0) {
        rc = errno == ENOENT ? 0 : -errno;
        if (rc < 0)
            s->host->log(s->host, ORC_DRV_LOG_ERROR, "local: cannot move %s away: %s", from,
                         strerror(errno));
    } else if (remove_now) {
        trash_remove(s, to);
        to = NULL;
    }
    s->host->free(from);
    s->host->free(to);
    return rc;
}

void local_trash_sweep(struct local *s)
{
    DIR *d = opendir(s->work_dir);
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char *path;
        if (strncmp(de->d_name, ".trash-", 7) != 0)
            continue;
        path = local_printf(s, "%s/%s", s->work_dir, de->d_name);
        if (path != NULL)
            trash_remove(s, path);
    }
    closedir(d);
}

/* ---- reporting ----------------------------------------------------------------------------------
 */

static int workloads_attr(struct local *s, orc_op_t *op, const struct local_node *n)
{
    json_t *o = json_object();
    char *text;
    int rc = 0;

    if (o == NULL)
        return ORC_ENOMEM;
    for (const struct local_wl *w = n->wls; w != NULL && rc == 0; w = w->next) {
        json_t *e =
            json_pack("{s:s, s:b, s:I, s:I}", "state", local_wl_state_name(w->st), "service",
                      w->service, "pid", (json_int_t)(local_wl_live(w) ? w->pid : 0), "restarts",
                      (json_int_t)w->restarts);
        if (e != NULL &&
            (w->st == LOCAL_WL_EXITED || w->st == LOCAL_WL_FAILED || w->st == LOCAL_WL_STOPPED) &&
            w->exit_status >= 0)
            json_object_set_new(e, "exit_status", json_integer(w->exit_status));
        if (e != NULL && w->term_signal > 0)
            json_object_set_new(e, "signal", json_integer(w->term_signal));
        if (e != NULL && w->port != 0)
            json_object_set_new(e, "port", json_integer(w->port));
        if (json_object_set_new(o, w->id, e) != 0)
            rc = ORC_ENOMEM;
    }
    text = rc == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL)
        return ORC_ENOMEM;
    rc = s->host->op_attr_set(op, "workloads", text);
    free(text);
    return rc;
}

int local_report(struct local *s, orc_op_t *op, const struct local_node *n)
{
    const struct orc_host_api *h = s->host;
    char buf[512], *dir;
    size_t len = 0;
    int rc = 0;

    op->exists = n != NULL;
    op->res_state = n == NULL     ? ORC_DRV_RES_UNKNOWN
                    : n->deleting ? ORC_DRV_RES_DELETING
                    : n->failed   ? ORC_DRV_RES_FAILED
                    : n->stopped  ? ORC_DRV_RES_STOPPED
                                  : ORC_DRV_RES_READY;
    if (n == NULL)
        return 0;
    dir = local_node_path(s, n->name, NULL);
    if (dir == NULL)
        return ORC_ENOMEM;
    rc |= h->op_attr_set(op, ORC_ATTR_PRIVATE_ADDRESS, "127.0.0.1");
    rc |= h->op_attr_set(op, ORC_ATTR_PUBLIC_ADDRESS, "127.0.0.1");
    rc |= h->op_attr_set(op, ORC_ATTR_PROVIDER_ID, dir);
    rc |= h->op_attr_set(op, "work_dir", dir);
    s->host->free(dir);
    rc |= h->op_attr_set(op, "kind", local_kind_name(n->kind));
    if (n->ngpus > 0)
        rc |= h->op_attr_set(op, ORC_ATTR_GPU_MODEL, n->gpu_model);
    len += (size_t)snprintf(buf, sizeof(buf), "[");
    for (uint32_t i = 0; i < n->ngpus && len < sizeof(buf) - 16; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%u", i ? "," : "", n->gpus[i]);
    snprintf(buf + len, sizeof(buf) - len, "]");
    rc |= h->op_attr_set(op, "gpus", buf);
    if (n->port != 0) {
        snprintf(buf, sizeof(buf), "[%u]", n->port);
        rc |= h->op_attr_set(op, ORC_ATTR_PORTS, buf);
        if (n->kind == ORC_KIND_SERVICE) {
            snprintf(buf, sizeof(buf), "http://127.0.0.1:%u", n->port);
            rc |= h->op_attr_set(op, ORC_ATTR_ENDPOINT, buf);
        }
    }
    if (n->failed != NULL)
        rc |= h->op_attr_set(op, "status_reason", n->failed);
    if (rc == 0)
        rc = workloads_attr(s, op, n);
    return rc < 0 ? ORC_ENOMEM : 0;
}
