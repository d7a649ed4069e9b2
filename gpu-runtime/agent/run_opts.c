/*
 * `gpu-agent run` options (launch.h): getopt_long, "--opt value" and
 * "--opt=value", up to "--"; every error names the option.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../orchestrator/base.h"
#include "run.h"

enum {
    O_NAME = 1000, O_KIND, O_GPUS, O_CHECK, O_MIN_GPUS, O_ENV, O_WORKDIR, O_LOG_DIR,
    O_LOG_MAX, O_LOG_KEEP, O_NPROC, O_NNODES, O_NODE_RANK, O_MASTER_ADDR, O_MASTER_PORT,
    O_BACKOFF, O_BACKOFF_MAX, O_WINDOW, O_RESTART_MAX, O_READY_TCP, O_READY_HTTP,
    O_READY_TIMEOUT, O_STOP_GRACE, O_STATUS_FILE, O_HELP
};

static const struct option long_opts[] = {
    {"name", required_argument, NULL, O_NAME},
    {"kind", required_argument, NULL, O_KIND},
    {"gpus", required_argument, NULL, O_GPUS},
    {"check", required_argument, NULL, O_CHECK},
    {"min-gpus", required_argument, NULL, O_MIN_GPUS},
    {"env", required_argument, NULL, O_ENV},
    {"workdir", required_argument, NULL, O_WORKDIR},
    {"log-dir", required_argument, NULL, O_LOG_DIR},
    {"log-max-bytes", required_argument, NULL, O_LOG_MAX},
    {"log-keep", required_argument, NULL, O_LOG_KEEP},
    {"nproc-per-node", required_argument, NULL, O_NPROC},
    {"nnodes", required_argument, NULL, O_NNODES},
    {"node-rank", required_argument, NULL, O_NODE_RANK},
    {"master-addr", required_argument, NULL, O_MASTER_ADDR},
    {"master-port", required_argument, NULL, O_MASTER_PORT},
    {"restart-backoff-ms", required_argument, NULL, O_BACKOFF},
    {"restart-backoff-max-ms", required_argument, NULL, O_BACKOFF_MAX},
    {"restart-window-ms", required_argument, NULL, O_WINDOW},
    {"restart-max", required_argument, NULL, O_RESTART_MAX},
    {"ready-tcp", required_argument, NULL, O_READY_TCP},
    {"ready-http", required_argument, NULL, O_READY_HTTP},
    {"ready-timeout-ms", required_argument, NULL, O_READY_TIMEOUT},
    {"stop-grace-ms", required_argument, NULL, O_STOP_GRACE},
    {"status-file", required_argument, NULL, O_STATUS_FILE},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

static int failf(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return ORC_EUSAGE;
}

static int num(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
               size_t len)
{
    char *end;
    unsigned long long v;

    if (s[0] == '-' || s[0] == '\0')
        return failf(why, len, "--%s: '%s' is not a number", opt, s);
    v = strtoull(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return failf(why, len, "--%s: '%s' is not a number from %llu to %llu", opt, s,
                     (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > LAUNCH_NAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

static int gpu_list(const char *s, struct launch_opts *o, char *why, size_t len)
{
    o->gpus_given = true;
    o->ngpus = 0;
    if (s[0] == '\0' || strcmp(s, "none") == 0)
        return 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 1023 || (*end && *end != ',') ||
            o->ngpus == LAUNCH_MAX_GPUS)
            return failf(why, len, "--gpus: '%s' is not a list of GPU indices like 0,1 (or none)",
                         s);
        o->gpus[o->ngpus++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return 0;
}

static int ready_http(const char *s, struct launch_opts *o, char *why, size_t len)
{
    const char *colon = strchr(s, ':');
    char port[16];
    uint64_t v;
    int rc;

    if (colon == NULL || colon[1] != '/' || (size_t)(colon - s) >= sizeof(port))
        return failf(why, len, "--ready-http: '%s' is not PORT:/PATH", s);
    memcpy(port, s, (size_t)(colon - s));
    port[colon - s] = '\0';
    rc = num("ready-http", port, 1, 65535, &v, why, len);
    for (const char *p = colon + 1; rc == 0 && *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            rc = failf(why, len, "--ready-http: the path must be printable, without spaces");
    o->ready_port = (unsigned)v;
    o->ready_path = colon + 1;
    return rc;
}

static void defaults(struct launch_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "main");
    o->check = true;
    o->level = AGENT_CHECK_QUICK;
    o->log_max_bytes = 64ull << 20;
    o->log_keep = 3;
    o->nproc = o->nnodes = 1;
    o->master_port = 29500;
    o->backoff_ms = 1000;
    o->backoff_max_ms = 30000;
    o->window_ms = 60000;
    o->restart_max = 5;
    o->ready_timeout_ms = 60000;
    o->stop_grace_ms = 10000;
}

/* One option; 0 or ORC_EUSAGE. */
static int one(int c, const char *arg, struct launch_opts *o, char *why, size_t len)
{
    const char *opt = NULL;
    uint64_t v = 0;
    int rc = 0;

    for (const struct option *lo = long_opts; lo->name; lo++)
        if (lo->val == c)
            opt = lo->name;
    switch (c) {
    case O_NAME:
        if (!name_ok(arg))
            return failf(why, len, "--name: '%s' must be 1-%d of [A-Za-z0-9_.-]", arg,
                         LAUNCH_NAME_MAX);
        snprintf(o->name, sizeof(o->name), "%s", arg);
        return 0;
    case O_KIND:
        if (strcmp(arg, "job") != 0 && strcmp(arg, "service") != 0)
            return failf(why, len, "--kind: '%s' is not job or service", arg);
        o->kind = strcmp(arg, "job") == 0 ? LAUNCH_JOB : LAUNCH_SERVICE;
        return 0;
    case O_GPUS:
        return gpu_list(arg, o, why, len);
    case O_CHECK:
        o->check = strcmp(arg, "none") != 0;
        if (o->check && !agent_level_parse(arg, &o->level))
            return failf(why, len, "--check: '%s' is not none, quick or standard", arg);
        return 0;
    case O_ENV:
        if (strchr(arg, '=') == NULL || arg[0] == '=' || o->nenv == LAUNCH_MAX_ENV)
            return failf(why, len, "--env: '%s' is not NAME=VALUE", arg);
        o->env[o->nenv++] = arg;
        return 0;
    case O_WORKDIR:
        o->workdir = arg;
        return 0;
    case O_LOG_DIR:
        o->log_dir = arg;
        return 0;
    case O_STATUS_FILE:
        o->status_file = arg;
        return 0;
    case O_MASTER_ADDR:
        o->master_addr = arg;
        o->distributed = true;
        return 0;
    case O_READY_HTTP:
        return ready_http(arg, o, why, len);
    case O_LOG_MAX:
        rc = num(opt, arg, 4096, UINT64_MAX / 2, &o->log_max_bytes, why, len);
        return rc;
    case O_BACKOFF:
        return num(opt, arg, 1, 3600000, &o->backoff_ms, why, len);
    case O_BACKOFF_MAX:
        return num(opt, arg, 1, 3600000, &o->backoff_max_ms, why, len);
    case O_WINDOW:
        return num(opt, arg, 1, 86400000, &o->window_ms, why, len);
    case O_READY_TIMEOUT:
        return num(opt, arg, 1, 86400000, &o->ready_timeout_ms, why, len);
    case O_STOP_GRACE:
        return num(opt, arg, 0, 3600000, &o->stop_grace_ms, why, len);
    default:
        break;
    }
    /* the small unsigned ones */
    static const struct {
        int c;
        uint64_t min, max;
        size_t off;
    } u[] = {
        {O_MIN_GPUS, 0, LAUNCH_MAX_GPUS, offsetof(struct launch_opts, min_gpus)},
        {O_LOG_KEEP, 0, 100, offsetof(struct launch_opts, log_keep)},
        {O_NPROC, 1, LAUNCH_MAX_PROCS, offsetof(struct launch_opts, nproc)},
        {O_NNODES, 1, 100000, offsetof(struct launch_opts, nnodes)},
        {O_NODE_RANK, 0, 99999, offsetof(struct launch_opts, node_rank)},
        {O_MASTER_PORT, 1, 65535, offsetof(struct launch_opts, master_port)},
        {O_RESTART_MAX, 1, LAUNCH_MAX_FAILS, offsetof(struct launch_opts, restart_max)},
        {O_READY_TCP, 1, 65535, offsetof(struct launch_opts, ready_port)},
    };
    for (size_t i = 0; i < sizeof(u) / sizeof(u[0]); i++)
        if (u[i].c == c) {
            rc = num(opt, arg, u[i].min, u[i].max, &v, why, len);
            if (rc == 0)
                *(unsigned *)((char *)o + u[i].off) = (unsigned)v;
            return rc;
        }
    return failf(why, len, "run: unknown option");
}

int launch_opts_parse(int argc, char **argv, struct launch_opts *o, char *why, size_t len)
{
    int c, rc;

    defaults(o);
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            return failf(why, len, "run: %s '%s'",
                         c == ':' || (bad && strchr(bad, '=') == NULL && optopt)
                             ? "missing value or unknown option"
                             : "unknown option",
                         bad ? bad : "?");
        }
        if (c == O_HELP || c == 'h')
            return failf(why, len, "help");
        rc = one(c, optarg, o, why, len);
        if (rc < 0)
            return rc;
    }
    if (optind >= argc)
        return failf(why, len, "run: no program: gpu-agent run [options] -- PROGRAM [ARGS...]");
    o->argv = argv + optind;
    if (o->nnodes > 1 || o->nproc > 1)
        o->distributed = true;
    if (o->node_rank >= o->nnodes)
        return failf(why, len, "--node-rank: %u is not below --nnodes %u", o->node_rank,
                     o->nnodes);
    if (o->backoff_max_ms < o->backoff_ms)
        return failf(why, len, "--restart-backoff-max-ms: below --restart-backoff-ms");
    if (o->gpus_given && o->ngpus && o->ngpus % o->nproc != 0)
        return failf(why, len, "--nproc-per-node: %u does not divide the %zu GPUs of --gpus",
                     o->nproc, o->ngpus);
    if (!o->master_addr)
        o->master_addr = "127.0.0.1";
    return 0;
}
