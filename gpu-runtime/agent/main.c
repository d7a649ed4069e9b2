/*
 * gpu-agent's command line: one binary, one-shot commands for operators and
 * tests, and `run`, which the orchestrator starts on every node:
 *   gpu-agent info                       what this node has (JSON)
 *   gpu-agent check [--level L] [--gpus LIST]   GPU health check (JSON)
 *   gpu-agent run [options] -- PROGRAM ARGS...  launch and supervise a workload
 *   gpu-agent version
 * Exit status: 0; 3 when a checked GPU failed; 2 on bad usage; 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../orchestrator/base.h"
#include "agent.h"

static const char usage_text[] =
    "usage: gpu-agent COMMAND [options]\n"
    "  info                                what this node has, as JSON\n"
    "  check [--level quick|standard] [--gpus 0,1]\n"
    "                                      health-check the GPUs, JSON; exit 3 if one failed\n"
    "  run [options] -- PROGRAM [ARGS...]  launch and supervise a workload (gpu-agent run --help)\n"
    "  version                             the agent's version\n";

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "gpu-agent: %s\n", why);
    fputs(usage_text, why ? stderr : stdout);
    return why ? 2 : 0;
}

static int print_json(json_t *j)
{
    if (j == NULL) {
        fprintf(stderr, "gpu-agent: out of memory\n");
        return 1;
    }
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL) {
        fprintf(stderr, "gpu-agent: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* "0,1,3" -> indices; false (with why) on anything else. */
static bool parse_gpu_list(const char *s, int *out, size_t cap, size_t *n, char *why, size_t len)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);

        if (end == s || v < 0 || v > 1023 || (*end && *end != ',') || *n == cap) {
            snprintf(why, len, "--gpus: '%s' is not a list of GPU indices like 0,1", s);
            return false;
        }
        out[(*n)++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return true;
}

static int cmd_info(int argc, char **argv)
{
    const char *disk = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--disk") == 0 && i + 1 < argc)
            disk = argv[++i];
        else
            return usage("info: unknown option (info [--disk PATH])");
    }
    return print_json(agent_discover(disk));
}

static int cmd_check(int argc, char **argv)
{
    enum agent_level level = AGENT_CHECK_QUICK;
    int gpus[1024];
    size_t ngpus = 0;
    bool some = false;
    char why[256];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) {
            if (!agent_level_parse(argv[++i], &level)) {
                snprintf(why, sizeof(why), "--level: '%s' is not quick or standard", argv[i]);
                return usage(why);
            }
        } else if (strcmp(argv[i], "--gpus") == 0 && i + 1 < argc) {
            if (!parse_gpu_list(argv[++i], gpus, 1024, &ngpus, why, sizeof(why)))
                return usage(why);
            some = true;
        } else {
            snprintf(why, sizeof(why), "check: unknown option '%s'", argv[i]);
            return usage(why);
        }
    }
    json_t *report = agent_health_check(level, some ? gpus : NULL, ngpus);
    const char *verdict = json_string_value(json_object_get(report, "verdict"));
    bool failed = verdict && strcmp(verdict, "failed") == 0;
    int rc = print_json(report);

    return rc ? rc : failed ? 3 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage("no command");
    const char *cmd = argv[1];

    if (strcmp(cmd, "info") == 0)
        return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "run") == 0)
        return agent_run_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("gpu-agent %s\n", GPU_AGENT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return usage(NULL);
    char why[128];
    snprintf(why, sizeof(why), "unknown command '%.64s'", cmd);
    return usage(why);
}
