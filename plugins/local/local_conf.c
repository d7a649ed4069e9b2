/*
 * The local site's config (docs/local-site.md, "Config"), the machine's
 * capacity (CPUs, memory), GPU detection (/proc/driver/nvidia, or the
 * output of `nvidia-smi -L` that local.c runs asynchronously), container
 * runtime detection on PATH, GPU model matching, the capacity check of a
 * provision request and the inventory pools.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "local.h"
#include "orc/size.h"

/* ---- config keys ------------------------------------------------------------- */

enum ck_type { CK_STR, CK_U32, CK_U64, CK_SIZE, CK_GPUS };

struct ck {
    const char *name;
    enum ck_type type;
    uint64_t min, max;
    size_t off; /* into struct local */
};

#define CK_OFF(f) offsetof(struct local, f)
#define MS_HOUR UINT64_C(3600000)

static const struct ck config_keys[] = {
    {"work_dir", CK_STR, 0, 0, CK_OFF(work_dir)},
    {"max_nodes", CK_U32, 1, 100000, CK_OFF(max_nodes)},
    {"cpus", CK_U32, 1, 1u << 20, CK_OFF(cpus)},
    {"memory", CK_SIZE, 1, UINT64_MAX, CK_OFF(mem)},
    {"gpus", CK_GPUS, 0, 0, 0},
    {"container_runtime", CK_STR, 0, 0, CK_OFF(rt_conf)},
    {"agent", CK_STR, 0, 0, CK_OFF(agent_conf)},
    {"agent_check", CK_STR, 0, 0, CK_OFF(agent_check)},
    {"restart_backoff_ms", CK_U64, 1, MS_HOUR, CK_OFF(backoff_ms)},
    {"restart_backoff_max_ms", CK_U64, 1, MS_HOUR, CK_OFF(backoff_max_ms)},
    {"restart_max_failures", CK_U32, 1, LOCAL_MAX_FAILS, CK_OFF(max_failures)},
    {"restart_window_ms", CK_U64, 1, 24 * MS_HOUR, CK_OFF(window_ms)},
    {"stop_timeout_ms", CK_U64, 0, 600000, CK_OFF(stop_timeout_ms)},
    {"poll_ms", CK_U64, 10, 60000, CK_OFF(poll_ms)},
    {"ready_timeout_ms", CK_U64, 1, 24 * MS_HOUR, CK_OFF(ready_timeout_ms)},
    {"ready_settle_ms", CK_U64, 0, MS_HOUR, CK_OFF(ready_settle_ms)},
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static int unknown_key(orc_op_t *op, const char *k)
{
    char known[512];
    size_t n = 0;

    known[0] = '\0';
    for (size_t i = 0; i < NKEYS && n < sizeof(known); i++)
        n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "",
                              config_keys[i].name);
    return orc_op_failf(op, ORC_EINVAL, "local: unknown config key '%s' (known: %s)", k, known);
}

static int gpu_entry(struct local *s, orc_op_t *op, size_t i, json_t *g)
{
    const char *k, *model = NULL, *name = NULL, *uuid = NULL, *vendor = "NVIDIA";
    json_int_t count = 1;
    json_t *v;

    if (!json_is_object(g))
        return orc_op_failf(op, ORC_EINVAL, "local: gpus[%zu] is not an object", i);
    json_object_foreach(g, k, v)
    {
        const char **dst = strcmp(k, "model") == 0    ? &model
                           : strcmp(k, "name") == 0   ? &name
                           : strcmp(k, "uuid") == 0   ? &uuid
                           : strcmp(k, "vendor") == 0 ? &vendor
                                                      : NULL;
        if (strcmp(k, "count") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > LOCAL_MAX_GPUS)
                return orc_op_failf(op, ORC_EINVAL, "local: gpus[%zu].count must be 1-%d", i,
                                    LOCAL_MAX_GPUS);
            count = json_integer_value(v);
            continue;
        }
        if (dst == NULL)
            return orc_op_failf(op, ORC_EINVAL,
                                "local: gpus[%zu]: unknown key '%s' (model, count, name, uuid, "
                                "vendor)",
                                i, k);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= 48)
            return orc_op_failf(op, ORC_EINVAL, "local: gpus[%zu].%s must be a short string", i, k);
        *dst = json_string_value(v);
    }
    if (model == NULL)
        return orc_op_failf(op, ORC_EINVAL, "local: gpus[%zu] needs a model", i);
    if (uuid != NULL && count != 1)
        return orc_op_failf(op, ORC_EINVAL, "local: gpus[%zu]: uuid with count %lld", i,
                            (long long)count);
    for (json_int_t c = 0; c < count; c++) {
        struct local_gpu *gpu;
        if (s->ngpus >= LOCAL_MAX_GPUS)
            return orc_op_failf(op, ORC_EINVAL, "local: more than %d gpus", LOCAL_MAX_GPUS);
        gpu = &s->gpus[s->ngpus];
        memset(gpu, 0, sizeof(*gpu));
        gpu->index = s->ngpus++;
        snprintf(gpu->model, sizeof(gpu->model), "%s", model);
        snprintf(gpu->name, sizeof(gpu->name), "%s", name ? name : model);
        snprintf(gpu->uuid, sizeof(gpu->uuid), "%s", uuid ? uuid : "");
        snprintf(gpu->vendor, sizeof(gpu->vendor), "%s", vendor);
    }
    return 0;
}

static int parse_gpus(struct local *s, orc_op_t *op, json_t *v)
{
    size_t i;
    json_t *g;
    int rc;

    if (!json_is_array(v))
        return orc_op_failf(op, ORC_EINVAL,
                            "local: gpus must be a list of {\"model\": ...} (or [] for none)");
    s->ngpus = 0;
    s->gpus_configured = true;
    s->gpu_source = "config";
    json_array_foreach(v, i, g)
    {
        rc = gpu_entry(s, op, i, g);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int config_key(struct local *s, orc_op_t *op, const char *k, json_t *v)
{
    const struct ck *c = NULL;
    char *base = (char *)s;
    uint64_t n = 0;

    for (size_t i = 0; i < NKEYS && c == NULL; i++)
        if (strcmp(config_keys[i].name, k) == 0)
            c = &config_keys[i];
    if (c == NULL)
        return unknown_key(op, k);
    switch (c->type) {
    case CK_GPUS:
        return parse_gpus(s, op, v);
    case CK_STR: {
        char **dst = (char **)(void *)(base + c->off);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 4000)
            return orc_op_failf(op, ORC_EINVAL, "local: %s must be a non-empty string", k);
        s->host->free(*dst);
        *dst = local_strdup(s, json_string_value(v));
        return *dst ? 0 : ORC_ENOMEM;
    }
    case CK_SIZE:
        if (json_is_string(v) && orc_size_text(json_string_value(v), &n) == 0 && n >= c->min)
            break;
        if (json_is_integer(v) && json_integer_value(v) >= (json_int_t)c->min) {
            n = (uint64_t)json_integer_value(v);
            break;
        }
        return orc_op_failf(op, ORC_EINVAL, "local: %s must be bytes or a size such as \"16 GiB\"",
                            k);
    default:
        if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)c->min ||
            (uint64_t)json_integer_value(v) > c->max)
            return orc_op_failf(op, ORC_EINVAL,
                                "local: %s must be an integer in %" PRIu64 "..%" PRIu64, k, c->min,
                                c->max);
        n = (uint64_t)json_integer_value(v);
        break;
    }
    if (c->type == CK_U32)
        *(uint32_t *)(void *)(base + c->off) = (uint32_t)n;
    else
        *(uint64_t *)(void *)(base + c->off) = n;
    return 0;
}

/* ---- the machine ---------------------------------------------------------------- */

/* MemTotal of /proc/meminfo in bytes, or libuv's answer elsewhere. */
static uint64_t mem_total(void)
{
    uint64_t total = uv_get_total_memory(), cg = uv_get_constrained_memory();
    unsigned long long kb;
    char line[256];
    FILE *f = fopen("/proc/meminfo", "re");

    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL)
            if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
                total = (uint64_t)kb * 1024;
        fclose(f);
    }
    if (cg > 0 && cg < total) /* a cgroup limit below the machine's memory */
        total = cg;
    return total;
}

char *local_which(struct local *s, const char *prog)
{
    const char *path = getenv("PATH");
    const char *p, *end;
    char buf[4096];

    if (strchr(prog, '/') != NULL)
        return access(prog, X_OK) == 0 ? local_strdup(s, prog) : NULL;
    for (p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p != '\0'; p = *end ? end + 1 : end) {
        size_t n;
        end = strchr(p, ':');
        if (end == NULL)
            end = p + strlen(p);
        n = (size_t)(end - p);
        if (n == 0 || n + strlen(prog) + 2 > sizeof(buf))
            continue;
        memcpy(buf, p, n);
        snprintf(buf + n, sizeof(buf) - n, "/%s", prog);
        if (access(buf, X_OK) == 0)
            return local_strdup(s, buf);
    }
    return NULL;
}

static int detect_runtime(struct local *s, orc_op_t *op)
{
    const char *want = s->rt_conf ? s->rt_conf : "auto";
    const char *base;

    s->rt = LOCAL_RT_NONE;
    if (strcmp(want, "none") == 0)
        return 0;
    if (strcmp(want, "auto") == 0) {
        s->rt_path = local_which(s, "docker");
        if (s->rt_path == NULL)
            s->rt_path = local_which(s, "podman");
    } else if (strcmp(want, "docker") == 0 || strcmp(want, "podman") == 0 || want[0] == '/') {
        s->rt_path = local_which(s, want);
        if (s->rt_path == NULL)
            return orc_op_failf(op, ORC_EINVAL, "local: container_runtime '%s' not found%s", want,
                                want[0] == '/' ? "" : " on PATH");
    } else {
        return orc_op_failf(op, ORC_EINVAL,
                            "local: container_runtime must be auto, none, docker, podman or an "
                            "absolute path (got '%s')",
                            want);
    }
    if (s->rt_path == NULL)
        return 0;
    base = strrchr(s->rt_path, '/');
    base = base ? base + 1 : s->rt_path;
    s->rt = strstr(base, "podman") != NULL ? LOCAL_RT_PODMAN : LOCAL_RT_DOCKER;
    return 0;
}

/* gpu-agent beside the daemon's executable (build/release/bin, /usr/local/bin) */
static char *agent_beside_daemon(struct local *s)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 16);
    char *slash;

    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if (slash == NULL)
        return NULL;
    snprintf(slash, sizeof(exe) - (size_t)(slash - exe), "/gpu-agent");
    return access(exe, X_OK) == 0 ? local_strdup(s, exe) : NULL;
}

/* Host workloads start through gpu-agent (docs/local-site.md) when it is
 * found: `agent: auto` (the default) looks beside the daemon, then on PATH;
 * `off` starts them directly; a path must be the agent. */
static int detect_agent(struct local *s, orc_op_t *op)
{
    const char *want = s->agent_conf ? s->agent_conf : "auto";
    const char *check = s->agent_check ? s->agent_check : "quick";

    if (strcmp(check, "none") != 0 && strcmp(check, "quick") != 0 &&
        strcmp(check, "standard") != 0)
        return orc_op_failf(op, ORC_EINVAL,
                            "local: agent_check must be none, quick or standard (got '%s')",
                            check);
    if (strcmp(want, "off") == 0)
        return 0;
    if (strcmp(want, "auto") == 0) {
        s->agent_path = agent_beside_daemon(s);
        if (s->agent_path == NULL)
            s->agent_path = local_which(s, "gpu-agent");
        if (s->agent_path == NULL)
            s->host->log(s->host, ORC_DRV_LOG_INFO,
                         "local: gpu-agent not found beside the daemon nor on PATH: workloads "
                         "start without it (no GPU check, no agent reports)");
        return 0;
    }
    if (want[0] != '/' || access(want, X_OK) != 0)
        return orc_op_failf(op, ORC_EINVAL,
                            "local: agent must be auto, off or the absolute path of gpu-agent "
                            "('%s' is not an executable file)",
                            want);
    s->agent_path = local_strdup(s, want);
    return s->agent_path ? 0 : ORC_ENOMEM;
}

/* A relative work_dir (the daemon's data_dir defaults to ./var) is made
 * absolute against the daemon's cwd: workloads get it as HOME and cwd. */
static int absolute_work_dir(struct local *s, orc_op_t *op)
{
    char cwd[4096];
    size_t n = sizeof(cwd);
    const char *rel = s->work_dir;
    char *abs;

    while (strlen(s->work_dir) > 1 && s->work_dir[strlen(s->work_dir) - 1] == '/')
        s->work_dir[strlen(s->work_dir) - 1] = '\0';
    if (s->work_dir[0] == '/')
        return 0;
    if (uv_cwd(cwd, &n) < 0)
        return orc_op_failf(op, ORC_EIO,
                            "local: work_dir '%s' is relative and the current "
                            "directory is unknown",
                            s->work_dir);
    while (strncmp(rel, "./", 2) == 0)
        rel += 2;
    abs = strcmp(rel, ".") == 0 ? local_strdup(s, cwd)
                                : local_printf(s, "%s%s%s", cwd, strcmp(cwd, "/") ? "/" : "", rel);
    if (abs == NULL)
        return ORC_ENOMEM;
    s->host->free(s->work_dir);
    s->work_dir = abs;
    return 0;
}

int local_config(struct local *s, orc_op_t *op)
{
    json_error_t jerr;
    json_t *cfg = json_loads(s->conf->config_json ? s->conf->config_json : "{}", 0, &jerr);
    const char *k;
    json_t *v;
    int rc = 0;

    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return orc_op_failf(op, ORC_EINVAL, "local: config is not a JSON object");
    }
    s->max_nodes = 64;
    s->cpus = uv_available_parallelism();
    s->mem = mem_total() / 10 * 8;
    s->backoff_ms = 1000;
    s->backoff_max_ms = 30000;
    s->max_failures = 5;
    s->window_ms = 60000;
    s->stop_timeout_ms = 5000;
    s->poll_ms = 1000;
    s->ready_timeout_ms = 60000;
    s->ready_settle_ms = 1000;
    s->gpu_source = "none";
    json_object_foreach(cfg, k, v)
    {
        rc = config_key(s, op, k, v);
        if (rc < 0)
            break;
    }
    json_decref(cfg);
    if (rc < 0)
        return rc;
    if (s->work_dir == NULL)
        return orc_op_failf(
            op, ORC_EINVAL,
            "local: work_dir is required (the daemon passes <data-dir>/sites/<site name>)");
    rc = absolute_work_dir(s, op);
    if (rc < 0)
        return rc;
    if (s->backoff_max_ms < s->backoff_ms)
        return orc_op_failf(op, ORC_EINVAL,
                            "local: restart_backoff_max_ms (%" PRIu64
                            ") is below restart_backoff_ms (%" PRIu64 ")",
                            s->backoff_max_ms, s->backoff_ms);
    if (s->ready_settle_ms >= s->ready_timeout_ms)
        return orc_op_failf(op, ORC_EINVAL,
                            "local: ready_settle_ms (%" PRIu64
                            ") must be below ready_timeout_ms (%" PRIu64 ")",
                            s->ready_settle_ms, s->ready_timeout_ms);
    s->rm_path = local_which(s, "rm");
    if (s->rm_path == NULL)
        return orc_op_failf(op, ORC_EINVAL, "local: no rm on PATH");
    rc = detect_agent(s, op);
    return rc < 0 ? rc : detect_runtime(s, op);
}

void local_config_free(struct local *s)
{
    s->host->free(s->work_dir);
    s->host->free(s->rt_path);
    s->host->free(s->rt_conf);
    s->host->free(s->rm_path);
    s->host->free(s->agent_path);
    s->host->free(s->agent_conf);
    s->host->free(s->agent_check);
    s->work_dir = s->rt_path = s->rt_conf = s->rm_path = NULL;
    s->agent_path = s->agent_conf = s->agent_check = NULL;
}

/* ---- GPU names and models ----------------------------------------------------------- */

static const char *const brand_words[] = {"NVIDIA", "Tesla", "GeForce", "Quadro"};

/* "NVIDIA A100-SXM4-80GB" -> "A100"; "NVIDIA H100 80GB HBM3" -> "H100";
 * "NVIDIA GeForce RTX 4090" -> "RTX 4090"; "Tesla T4" -> "T4". */
static void short_model(const char *name, char *out, size_t outlen)
{
    const char *p = name;
    size_t n;
    bool again = true;

    while (again) {
        again = false;
        while (*p == ' ')
            p++;
        for (size_t i = 0; i < sizeof(brand_words) / sizeof(brand_words[0]); i++) {
            size_t w = strlen(brand_words[i]);
            if (strncasecmp(p, brand_words[i], w) == 0 && p[w] == ' ') {
                p += w;
                again = true;
            }
        }
    }
    n = strcspn(p, " -");
    if ((strncasecmp(p, "RTX", 3) == 0 || strncasecmp(p, "GTX", 3) == 0 ||
         strncasecmp(p, "TITAN", 5) == 0) &&
        p[n] == ' ' && p[n + 1] != '\0')
        n += 1 + strcspn(p + n + 1, " -");
    if (n == 0) {
        p = name;
        n = strlen(name);
    }
    snprintf(out, outlen, "%.*s", (int)n, p);
}

/* Lower case, letters and digits only: "RTX 4090" and "rtx4090" compare equal. */
static void norm(const char *in, char *out, size_t outlen)
{
    size_t n = 0;

    for (; *in != '\0' && n + 1 < outlen; in++)
        if (isalnum((unsigned char)*in))
            out[n++] = (char)tolower((unsigned char)*in);
    out[n] = '\0';
}

bool local_gpu_matches(const struct local_gpu *g, const char *model, const char *vendor)
{
    char want[LOCAL_GPU_NAME_LEN], have[LOCAL_GPU_NAME_LEN];
    const char *stripped = g->name;

    if (vendor != NULL && *vendor != '\0' && strcasecmp(vendor, g->vendor) != 0)
        return false;
    if (model == NULL || *model == '\0')
        return true;
    norm(model, want, sizeof(want));
    norm(g->model, have, sizeof(have));
    if (strcmp(want, have) == 0)
        return true;
    norm(g->name, have, sizeof(have));
    if (strcmp(want, have) == 0)
        return true;
    for (size_t i = 0; i < sizeof(brand_words) / sizeof(brand_words[0]); i++) {
        size_t w = strlen(brand_words[i]);
        if (strncasecmp(stripped, brand_words[i], w) == 0 && stripped[w] == ' ')
            stripped += w + 1;
    }
    norm(stripped, have, sizeof(have));
    return strcmp(want, have) == 0;
}

static void gpu_add(struct local *s, const char *name, const char *uuid)
{
    struct local_gpu *g;

    if (s->ngpus >= LOCAL_MAX_GPUS)
        return;
    g = &s->gpus[s->ngpus];
    memset(g, 0, sizeof(*g));
    g->index = s->ngpus++;
    snprintf(g->name, sizeof(g->name), "%s", name);
    snprintf(g->uuid, sizeof(g->uuid), "%s", uuid ? uuid : "");
    snprintf(g->vendor, sizeof(g->vendor), "NVIDIA");
    short_model(name, g->model, sizeof(g->model));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One /proc/driver/nvidia/gpus/<pci>/information file. */
static void procfs_gpu(struct local *s, const char *dir)
{
    char path[512], line[256], model[LOCAL_GPU_NAME_LEN] = "", uuid[64] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/driver/nvidia/gpus/%s/information", dir);
    f = fopen(path, "re");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *v = strchr(line, ':');
        if (v == NULL)
            continue;
        *v++ = '\0';
        v += strspn(v, " \t");
        v[strcspn(v, "\r\n")] = '\0';
        if (strcmp(line, "Model") == 0)
            snprintf(model, sizeof(model), "%s", v);
        else if (strcmp(line, "GPU UUID") == 0)
            snprintf(uuid, sizeof(uuid), "%s", v);
    }
    fclose(f);
    if (model[0] != '\0')
        gpu_add(s, model, uuid);
}

uint32_t local_gpus_from_procfs(struct local *s)
{
    char *names[LOCAL_MAX_GPUS];
    size_t n = 0;
    struct dirent *de;
    DIR *d = opendir("/proc/driver/nvidia/gpus");

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL && n < LOCAL_MAX_GPUS) {
        if (de->d_name[0] == '.')
            continue;
        names[n] = local_strdup(s, de->d_name);
        if (names[n] != NULL)
            n++;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_names); /* PCI bus order = nvidia-smi order */
    s->ngpus = 0;
    for (size_t i = 0; i < n; i++) {
        procfs_gpu(s, names[i]);
        s->host->free(names[i]);
    }
    if (s->ngpus > 0)
        s->gpu_source = "procfs";
    return s->ngpus;
}

/* "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-5fa...)"; MIG lines are skipped. */
uint32_t local_gpus_from_smi(struct local *s, const char *out, size_t len)
{
    const char *p = out, *end = out + len;

    s->ngpus = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[512], *name, *uuid, *paren;
        size_t n = (size_t)((nl ? nl : end) - p);

        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), p);
        p = nl ? nl + 1 : end;
        if (strncmp(line, "GPU ", 4) != 0 || (name = strstr(line, ": ")) == NULL)
            continue;
        name += 2;
        uuid = strstr(name, "(UUID: ");
        paren = uuid;
        if (uuid != NULL) {
            uuid += 7;
            uuid[strcspn(uuid, ")")] = '\0';
            while (paren > name && paren[-1] == ' ')
                paren--;
            *paren = '\0';
        }
        gpu_add(s, name, uuid);
    }
    if (s->ngpus > 0)
        s->gpu_source = "nvidia-smi";
    return s->ngpus;
}

/* ---- capacity ---------------------------------------------------------------------- */

struct usage {
    uint64_t cpus, mem;
};

static struct usage usage_get(struct local *s)
{
    struct usage u = {0, 0};

    for (struct local_node *n = s->nodes; n != NULL; n = n->next) {
        u.cpus += n->cpus;
        u.mem += n->mem;
    }
    return u;
}

static uint64_t free_of(uint64_t total, uint64_t used)
{
    return used >= total ? 0 : total - used;
}

/* "2 T4, 1 A100" */
static void gpu_summary(const struct local *s, char *buf, size_t len)
{
    bool done[LOCAL_MAX_GPUS] = {false};
    size_t n = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < s->ngpus && n < len; i++) {
        uint32_t c = 0;
        if (done[i])
            continue;
        for (uint32_t j = i; j < s->ngpus; j++)
            if (strcmp(s->gpus[j].model, s->gpus[i].model) == 0) {
                done[j] = true;
                c++;
            }
        n += (size_t)snprintf(buf + n, len - n, "%s%u %s", n ? ", " : "", c, s->gpus[i].model);
    }
}

static int fit_gpus(struct local *s, orc_op_t *op, const struct orc_node_req *req,
                    uint32_t pick[LOCAL_MAX_GPUS])
{
    const char *model = req->gpu_model && *req->gpu_model ? req->gpu_model : NULL;
    const char *vendor = req->gpu_vendor && *req->gpu_vendor ? req->gpu_vendor : NULL;
    const char *plural = req->num_gpus == 1 ? "" : "s";
    uint32_t total = 0, nfree = 0, best_free = 0;
    const struct local_gpu *best = NULL;

    if (s->ngpus == 0)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "local: asks %u GPU%s%s%s; this site has 0 GPUs", req->num_gpus, plural,
                            model ? " " : "", model ? model : "");
    /* GPUs of one node are of one model: the model with the most free GPUs */
    for (uint32_t i = 0; i < s->ngpus; i++) {
        const struct local_gpu *g = &s->gpus[i];
        uint32_t f = 0;
        if (!local_gpu_matches(g, model, vendor))
            continue;
        total++;
        if (g->owner == NULL)
            nfree++;
        for (uint32_t j = 0; j < s->ngpus; j++)
            if (strcmp(s->gpus[j].model, g->model) == 0 && s->gpus[j].owner == NULL &&
                local_gpu_matches(&s->gpus[j], model, vendor))
                f++;
        if (best == NULL || f > best_free) {
            best = g;
            best_free = f;
        }
    }
    if (total == 0) {
        char have[160];
        gpu_summary(s, have, sizeof(have));
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "local: asks %u GPU%s %s%s%s; this site has none of that model (it "
                            "has %s)",
                            req->num_gpus, plural, vendor ? vendor : "", vendor && model ? " " : "",
                            model ? model : "", have);
    }
    if (req->num_gpus > total)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY, "local: asks %u GPU%s%s%s; this site has %u",
                            req->num_gpus, plural, model ? " " : "", model ? model : "", total);
    if (req->num_gpus > best_free)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY, "local: asks %u GPU%s%s%s, %u free (of %u)",
                            req->num_gpus, plural, model ? " " : "", model ? model : "", nfree,
                            total);
    for (uint32_t i = 0, k = 0; i < s->ngpus && k < req->num_gpus; i++)
        if (s->gpus[i].owner == NULL && strcmp(s->gpus[i].model, best->model) == 0 &&
            local_gpu_matches(&s->gpus[i], model, vendor))
            pick[k++] = i;
    return 0;
}

int local_fit(struct local *s, orc_op_t *op, const struct orc_node_req *req,
              uint32_t pick[LOCAL_MAX_GPUS])
{
    struct usage u = usage_get(s);
    int rc;

    if (s->nnodes >= s->max_nodes)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY, "local: this site holds max_nodes %u nodes",
                            s->max_nodes);
    if (req->num_gpus > LOCAL_MAX_GPUS)
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY, "local: asks %u GPUs; this site has %u",
                            req->num_gpus, s->ngpus);
    if (req->num_gpus > 0) {
        rc = fit_gpus(s, op, req, pick);
        if (rc < 0)
            return rc;
    }
    if (req->num_cpus > free_of(s->cpus, u.cpus))
        return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                            "local: asks %u CPUs, %" PRIu64 " free (of %u)", req->num_cpus,
                            free_of(s->cpus, u.cpus), s->cpus);
    if (req->mem_size > free_of(s->mem, u.mem))
        return orc_op_failf(
            op, ORC_DRV_ENOCAPACITY, "local: asks %.2f GiB memory, %.2f GiB free (of %.2f GiB)",
            (double)req->mem_size / 1073741824.0, (double)free_of(s->mem, u.mem) / 1073741824.0,
            (double)s->mem / 1073741824.0);
    return 0;
}

int local_inventory_report(struct local *s, orc_op_t *op)
{
    struct usage u = usage_get(s);
    bool done[LOCAL_MAX_GPUS] = {false};
    int rc;

    for (uint32_t i = 0; i < s->ngpus; i++) {
        struct orc_pool p = {
            .name = s->gpus[i].model,
            .gpu_model = s->gpus[i].model,
            .price_hour = 0,
        };
        if (done[i])
            continue;
        for (uint32_t j = i; j < s->ngpus; j++) {
            if (strcmp(s->gpus[j].model, s->gpus[i].model) != 0)
                continue;
            done[j] = true;
            p.gpus_total++;
            if (s->gpus[j].owner == NULL)
                p.gpus_free++;
        }
        p.max_gpus_per_node = p.gpus_total;
        rc = s->host->op_pool_add(op, &p);
        if (rc < 0)
            return rc;
    }
    {
        struct orc_pool p = {
            .name = "cpu",
            .cpus_total = s->cpus,
            .cpus_free = (uint32_t)free_of(s->cpus, u.cpus),
            .mem_total = s->mem,
            .mem_free = free_of(s->mem, u.mem),
            .price_hour = 0,
        };
        return s->host->op_pool_add(op, &p);
    }
}
