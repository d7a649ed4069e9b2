/*
 * gpu-serve, the reference serving workload: loads a gpu-train checkpoint
 * and answers the DEEPaaS v2 model API over HTTP/1.1 (routes in serve.h)
 * until SIGTERM or SIGINT. The orchestrator's readiness probe is
 * GET /v2/models/. Exit status: 0 after a clean stop; 1 when the checkpoint
 * cannot be loaded or the port bound; 2 on bad usage.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../../orchestrator/base.h"
#include "serve.h"

static const char usage_text[] =
    "usage: gpu-serve --model CHECKPOINT [options]\n"
    "  --model PATH      a checkpoint written by gpu-train (required)\n"
    "  --port P          TCP port (5000; 0 picks a free one, printed at start)\n"
    "  --host ADDR       address to listen on (127.0.0.1; 0.0.0.0 for every IPv4 one)\n"
    "  --name NAME       the model's name in the API (the checkpoint's: mlp-classifier)\n"
    "  --license TEXT    the license the metadata states (not specified)\n"
    "  --max-rows N      rows per predict request (1024)\n"
    "  --max-body BYTES  request body size (1048576)\n"
    "  --version, --help\n"
    "API (DEEPaaS v2): GET /v2/, GET /v2/models/, GET /v2/models/NAME/,\n"
    "POST /v2/models/NAME/predict/ with {\"inputs\": [[x1, ..., xD], ...]}\n";

static struct gs_server *running;

static void on_signal(int sig)
{
    (void)sig;
    if (running)
        gs_server_stop(running);
}

static int usage_error(const char *opt, const char *why)
{
    fprintf(stderr, "gpu-serve: %s: %s\n(gpu-serve --help lists the options)\n", opt, why);
    return 2;
}

static bool parse_num(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    char *end;

    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' && *out >= min && *out <= max;
}

struct cli {
    const char *model, *name, *license;
    struct gs_config c;
};

/* 0 to run, 2 on bad usage, -1 when --help / --version answered. */
static int parse_args(struct cli *cli, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *eq = strchr(a, '=');
        char opt[32];
        const char *v;
        unsigned long long n;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return -1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("gpu-serve %s\n", GPU_SERVE_VERSION);
            return -1;
        }
        snprintf(opt, sizeof(opt), "%.*s", (int)(eq ? (size_t)(eq - a) : strlen(a)), a);
        if (strcmp(opt, "--model") && strcmp(opt, "--port") && strcmp(opt, "--host") &&
            strcmp(opt, "--name") && strcmp(opt, "--license") && strcmp(opt, "--max-rows") &&
            strcmp(opt, "--max-body"))
            return usage_error(a, "unknown option");
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return usage_error(opt, "needs a value");
        if (strcmp(opt, "--model") == 0) {
            cli->model = v;
        } else if (strcmp(opt, "--host") == 0) {
            cli->c.host = v;
        } else if (strcmp(opt, "--name") == 0) {
            cli->name = v;
        } else if (strcmp(opt, "--license") == 0) {
            cli->license = v;
        } else if (strcmp(opt, "--port") == 0) {
            if (!parse_num(v, 0, 65535, &n))
                return usage_error(opt, "expected a port number 0..65535");
            cli->c.port = (uint16_t)n;
        } else if (strcmp(opt, "--max-rows") == 0) {
            if (!parse_num(v, 1, 1000000, &n))
                return usage_error(opt, "expected a number 1..1000000");
            cli->c.max_rows = (uint32_t)n;
        } else {
            if (!parse_num(v, 1024, 1ull << 30, &n))
                return usage_error(opt, "expected bytes 1024..1073741824");
            cli->c.max_body = (size_t)n;
        }
    }
    if (cli->model == NULL)
        return usage_error("--model", "required (a checkpoint written by gpu-train)");
    return 0;
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct gs_app app = {0};
    struct gm_error err = {0};
    struct sigaction sa;
    int rc;

    json_set_alloc_funcs(orc_malloc, orc_free);
    gs_config_default(&cli.c);
    rc = parse_args(&cli, argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (cli.license)
        snprintf(app.license, sizeof(app.license), "%s", cli.license);
    if (gs_app_load(&app, cli.model, cli.name, &err) < 0) {
        orc_log(ORC_LOG_ERROR, "gpu-serve", "cannot serve %s: %s", cli.model, err.msg);
        return 1;
    }
    rc = gs_server_open(&running, &app, &cli.c, &err);
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "gpu-serve", "%s", err.msg);
        gs_app_free(&app);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("gpu-serve: serving model '%s' (%u inputs, %u classes, %zu params) on "
           "http://%s:%u/v2/models/\n",
           app.name, app.model.inputs, app.model.classes, app.model.n_params, cli.c.host,
           gs_server_port(running));
    fflush(stdout);
    rc = gs_server_run(running);
    if (rc < 0)
        orc_log(ORC_LOG_ERROR, "gpu-serve", "poll: %s", strerror(-rc));
    else
        orc_log(ORC_LOG_INFO, "gpu-serve", "stopped");
    struct gs_server *s = running;

    running = NULL; /* a late signal finds no server */
    gs_server_free(s);
    gs_app_free(&app);
    return rc < 0 ? 1 : 0;
}
