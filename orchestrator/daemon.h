/*
 * The daemon: one libuv loop that carries every subsystem. orc_daemon_run()
 * prepares the process (signals, open-files limit, data directory), starts
 * the HTTP API, runs the loop until SIGTERM or SIGINT, shuts down gracefully
 * and makes sure every handle is closed before it returns. Also the build's
 * identity (name, version, commit) that /info and --version report.
 */
#ifndef ORC_DAEMON_H
#define ORC_DAEMON_H

#include "config.h"

#define ORC_NAME "orchestratord"
#define ORC_VERSION "0.1.0"
/* The build may pass -DORC_GIT_COMMIT="..." -DORC_GIT_BRANCH="...". */
#ifndef ORC_GIT_COMMIT
#define ORC_GIT_COMMIT "unknown"
#endif
#ifndef ORC_GIT_BRANCH
#define ORC_GIT_BRANCH "unknown"
#endif

/* Exit statuses of orchestratord. */
enum {
    ORC_EXIT_OK = 0,      /* clean shutdown, --help, --version */
    ORC_EXIT_FAILURE = 1, /* a runtime failure (cannot bind, data dir, ...) */
    ORC_EXIT_CONFIG = 2,  /* bad configuration or usage */
};

/* The build time in the API's time format ("2026-11-26T15:24+0000"),
 * from the compiler's __DATE__ and __TIME__. */
const char *orc_build_time(void);

/* Runs the daemon with cfg until it is told to stop. Returns an exit status
 * (ORC_EXIT_*). Logs every failure. Call once per process. */
int orc_daemon_run(const orc_config_t *cfg);

#endif
