/*
 * The daemon's run: process set-up (SIGPIPE ignored, open-files limit raised
 * for max_connections), the data directory, the loop, the HTTP API, SIGTERM
 * and SIGINT. The first signal starts the graceful shutdown; a second one
 * ends its grace period at once. The run ends when the loop has no handle
 * left, and checks that the loop closes cleanly.
 *
 * Subsystems (store, drivers, engine) start in subsystems_start(), between
 * orc_api_new() and orc_api_start(), registering their routes and readiness
 * checks, and stop in subsystems_stop() once the API has drained.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "api/server.h"
#include "daemon.h"
#include "services.h"

struct orc_daemon {
    uv_loop_t loop;
    const orc_config_t *cfg;
    orc_api_t *api;
    struct orc_services *svc; /* store, drivers, sites, engine, deployments API */
    void (*svc_done)(struct orc_daemon *d);
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup; /* reloads the TLS certificate */
    bool stopping;
};

const char *orc_build_time(void)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static char buf[40];
    const char *date = __DATE__; /* "Nov 26 2026" */
    const char *hms = __TIME__;  /* "16:44:01" */
    const char *m = strstr(months, (char[]){date[0], date[1], date[2], '\0'});
    unsigned month = m ? (unsigned)(m - months) / 3 % 12 + 1 : 1;
    unsigned day = (unsigned)atoi(date + 4) % 32;

    snprintf(buf, sizeof(buf), "%.4s-%02u-%02uT%.5s+0000", date + 7, month, day, hms);
    return buf;
}

/* ---- process --------------------------------------------------------------------- */

static void ignore_sigpipe(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Raises the soft open-files limit so that max_connections fit. */
static void raise_nofile(const orc_config_t *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->limits.max_connections + 64;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < want)
        orc_log(ORC_LOG_WARN, "daemon",
                "open-files limit %llu is below limits.max_connections %u + 64: connections "
                "beyond it will fail",
                (unsigned long long)rl.rlim_cur, cfg->limits.max_connections);
}

/* mkdir -p with mode 0700 for the parts it creates. */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -errno;
        buf[i] = i == len ? '\0' : '/';
    }
    return 0;
}

static int prepare_data_dir(const char *dir)
{
    struct stat st;
    char real[PATH_MAX];
    int rc = make_dirs(dir);

    if (rc == 0 && stat(dir, &st) != 0)
        rc = -errno;
    else if (rc == 0 && !S_ISDIR(st.st_mode))
        rc = -ENOTDIR;
    if (rc == 0 && access(dir, R_OK | W_OK | X_OK) != 0)
        rc = -errno;
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "daemon", "data directory '%s': %s", dir, strerror(-rc));
        return rc;
    }
    orc_log(ORC_LOG_INFO, "daemon", "data directory %s", realpath(dir, real) ? real : dir);
    return 0;
}

/* ---- subsystems ----------------------------------------------------------------------- */

/* Starts what serves behind the API, before it listens: the store (in
 * cfg->data_dir), the drivers and sites (cfg->sites_file, or the one `local`
 * site), the engine; each registers its routes (orc_api_register), readiness
 * checks and metrics on d->api. Returns 0 or an ORC_E* code after logging. */
static int subsystems_start(struct orc_daemon *d)
{
    return orc_services_start(&d->loop, d->cfg, d->api, &d->svc);
}

static void on_services_stopped(void *data)
{
    struct orc_daemon *d = data;

    d->svc = NULL;
    d->svc_done(d);
}

/* Stops them, in reverse order, once the API has drained (no request can
 * reach them any more); done runs once, maybe later. */
static void subsystems_stop(struct orc_daemon *d, void (*done)(struct orc_daemon *d))
{
    if (d->svc == NULL) {
        done(d);
        return;
    }
    /* the engine stops; deployments keep their state for the next start */
    d->svc_done = done;
    orc_services_stop(d->svc, on_services_stopped, d);
}

/* ---- signals and shutdown ------------------------------------------------------------ */

static void on_subsystems_stopped(struct orc_daemon *d)
{
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
}

static void on_failed_start_closed(orc_api_t *api, void *data)
{
    (void)api; /* no signal handlers yet, subsystems cleaned up after themselves */
    (void)data;
}

static void on_api_closed(orc_api_t *api, void *data)
{
    subsystems_stop(data, on_subsystems_stopped);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    struct orc_daemon *d = handle->data;

    if (d->stopping) {
        orc_log(ORC_LOG_WARN, "daemon", "%s again: ending the grace period now",
                signum == SIGINT ? "SIGINT" : "SIGTERM");
        orc_api_shutdown_now(d->api);
        return;
    }
    d->stopping = true;
    orc_log(ORC_LOG_INFO, "daemon", "%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    orc_api_set_ready(d->api, false);
    orc_api_shutdown(d->api, on_api_closed, d);
}

/* SIGHUP: a renewed certificate is served from the next connection on, without a restart;
 * when the new files are refused the one in use stays. */
static void on_sighup(uv_signal_t *handle, int signum)
{
    struct orc_daemon *d = handle->data;
    char err[600];
    int rc;

    (void)signum;
    rc = orc_api_reload_tls(d->api, err, sizeof(err));
    if (rc == 0)
        orc_log(ORC_LOG_INFO, "daemon", "SIGHUP: TLS certificate %s and key %s read again",
                d->cfg->tls.cert_file, d->cfg->tls.key_file);
    else if (rc == ORC_ENOTSUP)
        orc_log(ORC_LOG_INFO, "daemon", "SIGHUP: nothing to reload: %s", err);
    else
        orc_log(ORC_LOG_ERROR, "daemon", "SIGHUP: %s; the certificate in use stays", err);
}

static int start_signals(struct orc_daemon *d)
{
    int rc;

    uv_signal_init(&d->loop, &d->sigterm);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sighup);
    d->sigterm.data = d;
    d->sigint.data = d;
    d->sighup.data = d;
    rc = uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    if (rc == 0)
        rc = uv_signal_start(&d->sigint, on_signal, SIGINT);
    if (rc == 0)
        rc = uv_signal_start(&d->sighup, on_sighup, SIGHUP);
    return rc;
}

static void close_any(uv_handle_t *handle, void *arg)
{
    (*(unsigned *)arg)++;
    orc_log(ORC_LOG_ERROR, "daemon", "handle left open at exit: %s",
            uv_handle_type_name(uv_handle_get_type(handle)));
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Closes the loop; a handle still open is a bug, logged and closed. */
static int close_loop(uv_loop_t *loop)
{
    unsigned leftover = 0;

    if (uv_loop_close(loop) == 0)
        return 0;
    uv_walk(loop, close_any, &leftover);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 && leftover == 0 ? 0 : -1;
}

/* ---- the run ---------------------------------------------------------------------------- */

static int serve(struct orc_daemon *d)
{
    int rc = orc_api_new(&d->loop, d->cfg, &d->api);

    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "daemon", "cannot set up the HTTP API: %s", orc_strerror(rc));
        return ORC_EXIT_FAILURE;
    }
    /* Listen first, so that a busy port fails the start before the store
     * opens or the engine resumes anything. Nothing is accepted before
     * uv_run(), and by then every route is registered. */
    rc = orc_api_start(d->api);
    if (rc < 0) {
        uv_run(&d->loop, UV_RUN_DEFAULT); /* let the listeners close */
        return ORC_EXIT_FAILURE;
    }
    rc = subsystems_start(d);
    if (rc < 0) {
        orc_api_shutdown(d->api, on_failed_start_closed, d);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        return ORC_EXIT_FAILURE;
    }
    if (!d->cfg->auth_enabled)
        orc_log(ORC_LOG_WARN, "daemon",
                "running without authentication: the API listens on loopback only, so only "
                "users of this machine can reach it");
    else
        orc_log(ORC_LOG_INFO, "daemon", "authentication: bearer tokens of %zu issuer(s)%s%s",
                d->cfg->auth.nissuers, d->cfg->auth.audience ? " for audience " : "",
                d->cfg->auth.audience ? d->cfg->auth.audience : "");
    rc = start_signals(d);
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, "daemon", "signals: %s", uv_strerror(rc));
        d->stopping = true;
        orc_api_shutdown(d->api, on_api_closed, d);
    } else {
        orc_api_set_ready(d->api, true);
        orc_log(ORC_LOG_INFO, "daemon", "ready");
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    return rc < 0 ? ORC_EXIT_FAILURE : ORC_EXIT_OK;
}

int orc_daemon_run(const orc_config_t *cfg)
{
    struct orc_daemon d;
    int code;

    memset(&d, 0, sizeof(d));
    d.cfg = cfg;
    orc_log_set_level(cfg->log_level);
    orc_log_set_format(cfg->log_format);
    orc_log(ORC_LOG_INFO, "daemon", "%s %s (commit %s) starting, pid %ld", ORC_NAME, ORC_VERSION,
            ORC_GIT_COMMIT, (long)getpid());
    orc_config_log(cfg);
    ignore_sigpipe();
    raise_nofile(cfg);
    if (prepare_data_dir(cfg->data_dir) < 0)
        return ORC_EXIT_FAILURE;
    if (uv_loop_init(&d.loop) != 0) {
        orc_log(ORC_LOG_ERROR, "daemon", "cannot create the event loop");
        return ORC_EXIT_FAILURE;
    }
    code = serve(&d);
    orc_api_free(d.api);
    if (close_loop(&d.loop) < 0)
        code = ORC_EXIT_FAILURE;
    orc_log(ORC_LOG_INFO, "daemon", "stopped (exit status %d)", code);
    return code;
}
