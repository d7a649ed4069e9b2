/*
 * orchestratord's entry point: loads the configuration (defaults, file,
 * environment, command line), answers --help and --version, and hands over
 * to the daemon. Exit status: 0 clean shutdown, 1 runtime failure, 2 bad
 * configuration or usage.
 */
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"

extern char **environ;

static int config_exit_status(int rc)
{
    return rc == ORC_ENOMEM ? ORC_EXIT_FAILURE : ORC_EXIT_CONFIG;
}

int main(int argc, char **argv)
{
    orc_config_t cfg;
    char err[1024];
    int rc, code;

#ifdef M_MXFAST
    /* glibc's fastbins make freeing large plans (thousands of nodes) grow
     * faster than linearly (malloc_consolidate): docs/performance.md */
    mallopt(M_MXFAST, 0);
#endif
    if (orc_config_init(&cfg) < 0) {
        fprintf(stderr, "%s: out of memory\n", ORC_NAME);
        return ORC_EXIT_FAILURE;
    }
    rc = orc_config_load(&cfg, argc, argv, environ, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", ORC_NAME, err);
        if (rc == ORC_EUSAGE)
            fprintf(stderr, "Try '%s --help'.\n", ORC_NAME);
        orc_config_fini(&cfg);
        return config_exit_status(rc);
    }
    switch (cfg.action) {
    case ORC_CONFIG_HELP:
        orc_config_usage(stdout, ORC_NAME);
        code = ORC_EXIT_OK;
        break;
    case ORC_CONFIG_VERSION:
        printf("%s %s (commit %s, branch %s, built %s)\n", ORC_NAME, ORC_VERSION, ORC_GIT_COMMIT,
               ORC_GIT_BRANCH, orc_build_time());
        code = ORC_EXIT_OK;
        break;
    default:
        code = orc_daemon_run(&cfg);
        break;
    }
    orc_config_fini(&cfg);
    return code;
}
