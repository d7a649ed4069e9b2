/*
 * The orchestration services (services.h): wiring of store, drivers, sites,
 * engine, libtosca, the deployments API and its event streams (fed by the
 * engine's notify hook) for the daemon.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "api/deployments.h"
#include "api/planner.h"
#include "api/quotas.h"
#include "api/server.h"
#include "api/sites.h"
#include "api/templates.h"
#include "base.h"
#include "engine/drivers.h"
#include "engine/engine.h"
#include "engine/sites.h"
#include "secrets.h"
#include "changes.h"
#include "observe.h"
#include "services.h"
#include "store/commit.h"
#include "store/readers.h"

#define LOG "daemon"

struct orc_services {
    uv_loop_t *loop;
    orc_store_t *store;
    struct orc_drv_registry *reg;
    struct orc_sites sites;
    struct orc_engine *engine;
    struct orc_planner *planner; /* owns the libtosca context */
    struct orc_catalog *catalog; /* of ready templates */
    struct orc_sites_api *sites_api; /* /sites */
    struct orc_quotas_api quotas;    /* /quotas */
    struct orc_deployments_api deployments;
    struct orc_events *events; /* live event streams */
    struct orc_agent_api agent_api;
    char agent_url[128];            /* where gpu-agents report */
    char instance[PATH_MAX + 80];   /* this daemon's name in leases */
    unsigned char agent_key[32];    /* of their tokens */
    orc_commit_t *commit;      /* group commit of the store's writes */
    orc_readers_t *readers;    /* the API's reads off the loop; NULL: none */
    struct orc_secrets *secrets; /* the secrets file; NULL: none */
    orc_api_t *api;
    struct orc_observe observe; /* what /metrics reads of the services */
    struct orc_changes *changes; /* other daemons' events (PostgreSQL); NULL: none */
    bool engine_ready;
    orc_services_done_fn done;
    void *done_data;
};

/* Drivers: $ORCHESTRATOR_PLUGIN_DIR, else ../plugins beside the binary
 * (build/release/bin -> build/release/plugins), else ../lib/orchestrator/plugins
 * beside it (an install: PREFIX/bin -> PREFIX/lib/orchestrator/plugins), else
 * /usr/local/lib/orchestrator/plugins. */
static void plugin_dir(char *out, size_t size)
{
    const char *env = getenv("ORCHESTRATOR_PLUGIN_DIR");
    char exe[PATH_MAX - 32];
    ssize_t n;

    if (env && *env) {
        snprintf(out, size, "%s", env);
        return;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, size, "%s/../plugins", exe);
            if (access(out, R_OK | X_OK) == 0)
                return;
            snprintf(out, size, "%s/../lib/orchestrator/plugins", exe);
            if (access(out, R_OK | X_OK) == 0)
                return;
        }
    }
    snprintf(out, size, "/usr/local/lib/orchestrator/plugins");
}

/* The local site works under the data directory unless its config says. */
static int local_defaults(struct orc_sites *sites, const char *data_dir)
{
    for (size_t i = 0; i < sites->count; i++) {
        struct orc_site_def *s = &sites->items[i];
        json_error_t err;
        json_t *cfg;
        char *text, dir[PATH_MAX];
        if (strcmp(s->driver, "local") != 0)
            continue;
        cfg = json_loads(s->config_json ? s->config_json : "{}", 0, &err);
        if (cfg == NULL)
            return ORC_EINVAL;
        if (json_object_get(cfg, "work_dir") == NULL) {
            snprintf(dir, sizeof(dir), "%s/sites/%s", data_dir, s->name);
            json_object_set_new(cfg, "work_dir", json_string(dir));
        }
        text = json_dumps(cfg, JSON_COMPACT);
        json_decref(cfg);
        if (text == NULL)
            return ORC_ENOMEM;
        orc_free(s->config_json);
        s->config_json = orc_strdup(text);
        free(text);
        if (s->config_json == NULL)
            return ORC_ENOMEM;
    }
    return 0;
}

static int load_sites(struct orc_services *svc, const orc_config_t *cfg)
{
    struct orc_sites_errors errs = {0};
    int rc = cfg->sites_file ? orc_sites_load_file(cfg->sites_file, &svc->sites, &errs)
                             : orc_sites_default(&svc->sites);

    for (size_t i = 0; i < errs.count; i++)
        orc_log(ORC_LOG_ERROR, LOG, "%s", errs.lines[i]);
    orc_sites_errors_free(&errs);
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "cannot use the sites file %s: %s",
                cfg->sites_file ? cfg->sites_file : "(default)", orc_strerror(rc));
        return rc;
    }
    return local_defaults(&svc->sites, cfg->data_dir);
}

static bool engine_ready(void *data, const char **reason)
{
    struct orc_services *svc = data;

    *reason = "the engine is opening sites and resuming deployments";
    return svc->engine_ready;
}

static void on_engine_ready(struct orc_engine *eng, void *data)
{
    struct orc_services *svc = data;

    svc->engine_ready = true;
    orc_log(ORC_LOG_INFO, LOG, "engine ready: %zu site(s) open", orc_engine_site_count(eng));
}

/* The key of the agents' tokens: kept in the store's metadata, so that the
 * tokens of running agents survive a restart; made at the first start. */
static int agent_key(struct orc_services *svc)
{
    static const char hex[] = "0123456789abcdef";
    char *text = NULL, fresh[2 * sizeof(svc->agent_key) + 1];
    int rc = orc_store_meta_get(svc->store, "agent_key", &text);

    if (rc == 0 && text && strlen(text) == 2 * sizeof(svc->agent_key)) {
        for (size_t i = 0; i < sizeof(svc->agent_key); i++) {
            unsigned v;
            sscanf(text + 2 * i, "%2x", &v);
            svc->agent_key[i] = (unsigned char)v;
        }
        orc_free(text);
        return 0;
    }
    orc_free(text);
    if (getrandom(svc->agent_key, sizeof(svc->agent_key), 0) != (ssize_t)sizeof(svc->agent_key))
        return ORC_EIO;
    for (size_t i = 0; i < sizeof(svc->agent_key); i++) {
        fresh[2 * i] = hex[svc->agent_key[i] >> 4];
        fresh[2 * i + 1] = hex[svc->agent_key[i] & 15];
    }
    fresh[sizeof(fresh) - 1] = '\0';
    return orc_store_meta_set(svc->store, "agent_key", fresh);
}

/* Where agents report: the public URL, else the first listener (a wildcard
 * address as loopback, which is what the local site's agents reach). */
static void agent_url(struct orc_services *svc, const orc_config_t *cfg, const orc_api_t *api)
{
    const orc_listen_addr_t *l = &cfg->listen[0];
    bool v6 = l->family == AF_INET6;
    const char *host = l->host;

    if (cfg->public_url) {
        snprintf(svc->agent_url, sizeof(svc->agent_url), "%s", cfg->public_url);
        return;
    }
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    snprintf(svc->agent_url, sizeof(svc->agent_url), v6 ? "%s://[%s]:%u" : "%s://%s:%u",
             cfg->tls.cert_file ? "https" : "http", host,
             (unsigned)(orc_api_listener_count(api) ? orc_api_listener_port(api, 0) : l->port));
}

static bool store_is_pg(const orc_config_t *cfg)
{
    return cfg->store && strncmp(cfg->store, "postgres", 8) == 0;
}

/* store_readers threads (-1: 4 on PostgreSQL, none on SQLite), each on a handle of
 * its own on the store at path. */
static int open_readers(struct orc_services *svc, const orc_config_t *cfg, const char *path)
{
    int n = cfg->store_readers >= 0 ? cfg->store_readers : store_is_pg(cfg) ? 4 : 0;
    struct orc_readers_opts opts = {.threads = (unsigned)n};
    char err[256];
    int rc;

    if (n == 0)
        return 0;
    rc = orc_readers_new(svc->loop, path, &opts, &svc->readers, err, sizeof(err));
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "store_readers: %s", err);
        return rc;
    }
    orc_log(ORC_LOG_INFO, LOG, "%d store readers: the API reads deployments off the loop", n);
    return 0;
}

static int open_parts(struct orc_services *svc, const orc_config_t *cfg)
{
    char path[PATH_MAX], err[256], plugins[PATH_MAX], cache_dir[PATH_MAX];
    tosca_options_t topts;
    tosca_ctx_t *tosca = NULL;
    tosca_diags_t d;
    int rc;

    if (cfg->store)
        snprintf(path, sizeof(path), "%s", cfg->store);
    else
        snprintf(path, sizeof(path), "%s/orchestrator.db", cfg->data_dir);
    rc = orc_store_open(path, &svc->store, err, sizeof(err));
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "%s", err);
        return rc;
    }
    if ((rc = open_readers(svc, cfg, path)) < 0)
        return rc;
    rc = agent_key(svc);
    if (rc < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "cannot make the agents' token key: %s", orc_strerror(rc));
        return rc;
    }
    if (cfg->secrets_file) {
        rc = orc_secrets_load(cfg->secrets_file, &svc->secrets, err, sizeof(err));
        if (rc < 0) {
            orc_log(ORC_LOG_ERROR, LOG, "%s", err);
            return rc;
        }
        orc_log(ORC_LOG_INFO, LOG, "secrets file %s: %zu secrets", cfg->secrets_file,
                orc_secrets_count(svc->secrets));
    }
    rc = orc_drv_registry_new(svc->loop, &svc->reg);
    if (rc < 0)
        return rc;
    if (svc->secrets)
        orc_drv_set_secret_lookup(svc->reg, orc_secrets_lookup, svc->secrets);
    plugin_dir(plugins, sizeof(plugins));
    if (orc_drv_load_dir(svc->reg, plugins) <= 0)
        orc_log(ORC_LOG_WARN, LOG, "no driver loaded from %s", plugins);
    rc = load_sites(svc, cfg);
    if (rc < 0)
        return rc;
    tosca_diags_init(&d, false);
    tosca_options_init(&topts);
    topts.allowed_roots = (const char *const *)cfg->import_roots;
    topts.url_allowlist = (const char *const *)cfg->import_urls;
    topts.fetch_timeout_s = (unsigned)((cfg->import_fetch_timeout_ms + 999) / 1000);
    topts.cache_ttl_s = (unsigned)(cfg->import_cache_ttl_ms / 1000);
    snprintf(cache_dir, sizeof(cache_dir), "%s/import-cache", cfg->data_dir);
    for (size_t i = 0; cfg->import_urls && cfg->import_urls[i]; i++)
        orc_log(ORC_LOG_INFO, LOG, "templates may import URLs under %s", cfg->import_urls[i]);
    topts.cache_dir = cache_dir;
    rc = tosca_ctx_new(&topts, &tosca, &d);
    if (rc < 0 && d.count > 0)
        orc_log(ORC_LOG_ERROR, LOG, "imports: %s", d.items[0].message);
    tosca_diags_fini(&d);
    if (rc == 0 && (rc = orc_planner_new(svc->loop, tosca, &svc->planner)) < 0)
        tosca_ctx_free(tosca);
    return rc;
}

/* engine.instance, else HOST:DATA_DIR (absolute): unique among the daemons of a store
 * (two daemons never share a data directory), and the same after a restart, which then
 * takes its deployments back at once. */
static void instance_name(struct orc_services *svc, const orc_config_t *cfg)
{
    char host[64] = "localhost", dir[PATH_MAX];

    if (cfg->engine.instance) {
        snprintf(svc->instance, sizeof(svc->instance), "%s", cfg->engine.instance);
    } else {
        gethostname(host, sizeof(host) - 1);
        if (realpath(cfg->data_dir, dir) == NULL)
            snprintf(dir, sizeof(dir), "%s", cfg->data_dir);
        snprintf(svc->instance, sizeof(svc->instance), "%s:%s", host, dir);
    }
    orc_log(ORC_LOG_INFO, LOG, "instance %s: leases of %llu ms on the shared store", svc->instance,
            (unsigned long long)cfg->engine.lease_ms);
}

/* The template catalog: its routes, and its directory read (the daemon is ready once it
 * is). The default directory may be missing; a configured one must be there. */
static int start_catalog(struct orc_services *svc, const orc_config_t *cfg, orc_api_t *api)
{
    bool optional = orc_config_source(cfg, "catalog_dir") == ORC_CFG_DEFAULT;
    char err[PATH_MAX + 128];
    int rc = orc_catalog_new(svc->store, svc->planner, svc->commit, &svc->catalog);

    if (rc == 0)
        rc = orc_api_templates_register(api, svc->catalog);
    if (rc == 0)
        rc = orc_api_add_ready_check(api, "catalog", orc_catalog_ready, svc->catalog);
    if (rc == 0 && cfg->catalog_dir &&
        (rc = orc_catalog_seed(svc->catalog, cfg->catalog_dir, optional, err, sizeof(err))) < 0)
        orc_log(ORC_LOG_ERROR, LOG, "%s", err);
    return rc;
}

int orc_services_start(uv_loop_t *loop, const orc_config_t *cfg, orc_api_t *api,
                       struct orc_services **out)
{
    struct orc_services *svc = orc_calloc(1, sizeof(*svc));
    struct orc_engine_opts opts = {
        .max_parallel_ops = cfg->engine.max_parallel_ops,
        .callback_attempts = cfg->engine.callback_attempts,
        .callback_backoff_ms = (unsigned)cfg->engine.callback_backoff_ms,
        .deadline_minute_ms = cfg->engine.deadline_minute_ms,
    };
    int rc;

    *out = NULL;
    if (svc == NULL)
        return ORC_ENOMEM;
    svc->loop = loop;
    rc = open_parts(svc, cfg);
    if (rc == 0)
        rc =
            orc_commit_new(loop, svc->store,
                           &(struct orc_commit_opts){.wait = cfg->store_commit_wait}, &svc->commit);
    opts.commit = svc->commit;
    if (rc == 0)
        rc = orc_events_new(loop, svc->store, svc->commit, 0, &svc->events);
    opts.notify = orc_events_notify;
    opts.notify_ud = svc->events;
    agent_url(svc, cfg, api);
    opts.agent_url = svc->agent_url;
    opts.agent_ca_file = cfg->tls.ca_file;
    opts.callback_public_only = orc_config_callbacks_public_only(cfg);
    opts.agent_key = svc->agent_key;
    opts.agent_key_len = sizeof(svc->agent_key);
    if (store_is_pg(cfg)) { /* several daemons may share it */
        instance_name(svc, cfg);
        opts.instance = svc->instance;
        opts.lease_ms = cfg->engine.lease_ms;
    }
    if (rc == 0)
        rc = orc_engine_new(loop, svc->store, svc->reg, &svc->sites, &opts, &svc->engine);
    if (rc < 0)
        goto out_fail;
    rc = start_catalog(svc, cfg, api);
    if (rc < 0)
        goto out_fail;
    svc->deployments = (struct orc_deployments_api){
        .store = svc->store,
        .engine = svc->engine,
        .planner = svc->planner,
        .catalog = svc->catalog,
        .user_deployments = cfg->auth_enabled ? cfg->limits.user_deployments : 0,
        .callback_public_only = orc_config_callbacks_public_only(cfg),
        .commit = svc->commit,
        .readers = svc->readers,
    };
    rc = orc_api_deployments_register(api, &svc->deployments);
    if (rc == 0 &&
        (rc = orc_sites_api_new(loop, svc->engine, svc->store, svc->commit, &svc->sites_api)) == 0)
        rc = orc_api_sites_register(api, svc->sites_api);
    if (rc == 0)
        rc = orc_api_ui_register(api);
    svc->quotas = (struct orc_quotas_api){.store = svc->store, .commit = svc->commit};
    if (rc == 0)
        rc = orc_api_quotas_register(api, &svc->quotas);
    if (rc == 0)
        rc = orc_api_events_register(api, svc->events);
    svc->agent_api = (struct orc_agent_api){.engine = svc->engine, .commit = svc->commit};
    if (rc == 0)
        rc = orc_api_agent_register(api, &svc->agent_api);
    if (rc == 0)
        rc = orc_api_add_ready_check(api, "engine", engine_ready, svc);
    svc->observe = (struct orc_observe){.store = svc->store,
                                        .commit = svc->commit,
                                        .readers = svc->readers,
                                        .reg = svc->reg,
                                        .engine = svc->engine,
                                        .planner = svc->planner};
    if (rc == 0 && (rc = orc_api_add_metrics(api, orc_observe_metrics, &svc->observe)) == 0)
        svc->api = api;
    if (rc == 0 && opts.lease_ms > 0) { /* other daemons' events reach the streams here */
        int crc = orc_changes_start(loop, svc->store, orc_events_notify, svc->events,
                                    &svc->changes);
        if (crc < 0)
            orc_log(ORC_LOG_WARN, LOG, "no notifications from the store (%s): streams show "
                                       "other daemons' events only as this one reads them",
                    orc_store_errmsg(svc->store));
    }
    if (rc == 0)
        rc = orc_engine_start(svc->engine, on_engine_ready, svc);
    if (rc < 0)
        goto out_fail;
    *out = svc;
    return 0;
out_fail:
    orc_log(ORC_LOG_ERROR, LOG, "cannot start the orchestration services: %s", orc_strerror(rc));
    if (svc->api)
        orc_api_remove_metrics(svc->api, orc_observe_metrics, &svc->observe);
    orc_changes_close(svc->changes);
    orc_sites_api_free(svc->sites_api);
    orc_engine_free(svc->engine);
    orc_events_close(svc->events); /* freed once its timers closed */
    if (svc->commit) {             /* nothing waits on it yet */
        orc_commit_close(svc->commit, NULL, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        orc_commit_free(svc->commit);
    }
    if (svc->reg && orc_drv_registry_close(svc->reg) == 0)
        uv_run(loop, UV_RUN_NOWAIT);
    orc_catalog_free(svc->catalog);  /* abandons the files it reads */
    orc_planner_close(svc->planner); /* nothing waits on it now: frees it */
    orc_readers_close(svc->readers); /* nothing reads yet: freed at the next turn */
    orc_sites_free(&svc->sites);
    orc_store_close(svc->store);
    orc_secrets_free(svc->secrets);
    orc_free(svc);
    return rc < 0 ? rc : ORC_EIO;
}

/* The last writes are durable: the store closes. */
static void on_commit_closed(void *data)
{
    struct orc_services *svc = data;

    orc_commit_free(svc->commit);
    orc_store_close(svc->store);
    if (svc->done)
        svc->done(svc->done_data);
    orc_secrets_free(svc->secrets);
    orc_free(svc);
}

static void on_engine_closed(struct orc_engine *eng, void *data)
{
    struct orc_services *svc = data;

    orc_sites_api_free(svc->sites_api); /* its queries ended with the sites' operations */
    svc->sites_api = NULL;
    orc_engine_free(eng);
    svc->engine = NULL;
    orc_events_close(svc->events); /* no stream is open and no notify comes any more */
    if (orc_drv_registry_close(svc->reg) < 0)
        orc_log(ORC_LOG_ERROR, LOG, "drivers: sites still open at shutdown");
    orc_catalog_free(svc->catalog);  /* abandons the files it still reads */
    orc_planner_close(svc->planner); /* freed once a plan still running finishes */
    orc_readers_close(svc->readers); /* freed once the reads still running end */
    orc_sites_free(&svc->sites);
    orc_commit_close(svc->commit, on_commit_closed, svc);
}

void orc_services_stop(struct orc_services *svc, orc_services_done_fn done, void *data)
{
    if (svc->api) /* what it reads closes from here on */
        orc_api_remove_metrics(svc->api, orc_observe_metrics, &svc->observe);
    svc->api = NULL;
    orc_changes_close(svc->changes);
    svc->changes = NULL;
    svc->done = done;
    svc->done_data = data;
    orc_engine_close(svc->engine, on_engine_closed, svc);
}
