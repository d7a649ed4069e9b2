/*
 * Helpers for tests that run the real orchestratord: start it on an
 * ephemeral loopback port with a data directory (and optionally a sites
 * file and extra environment), read the address it bound from its log, kill
 * whatever a failed assertion left running, and collect HTTP response bodies
 * with libcurl. The second half serves the REST integration tests
 * (test_rest*.c): one daemon per test in its own directory, HTTP calls that
 * are all recorded (so that openapi_check.h can hold every exchange against
 * the daemon's OpenAPI document), the error JSON and time format of API.md,
 * waiting for statuses, and the sim clouds' inventory files.
 * Header-only: each test program includes it once, after testutil.h.
 */
#ifndef DAEMON_FIXTURE_H
#define DAEMON_FIXTURE_H

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

/* The daemon a failed assertion may leave running: the teardown kills it. */
static pid_t live_pid;

static inline int kill_leftover(void **state)
{
    (void)state;
    if (live_pid > 0) {
        kill(live_pid, SIGKILL);
        waitpid(live_pid, NULL, 0);
        live_pid = 0;
    }
    return 0;
}

static inline const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* The environment of a daemon: this process's as is when extra is NULL;
 * else this process's without its ORCHESTRATOR_* variables (so that a
 * developer's own settings do not leak in), then the "K=V" items of extra.
 * The array and its strings live until the exec (the child's copy). */
static inline char **daemon_env(const char *const *extra)
{
    extern char **environ;
    size_t n = 0, m = 0, k = 0;
    char **env;

    if (extra == NULL)
        return environ;
    while (environ[n])
        n++;
    while (extra[m])
        m++;
    env = calloc(n + m + 1, sizeof(*env));
    assert_non_null(env);
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ORCHESTRATOR_", 13) != 0)
            env[k++] = environ[i];
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

/* The address daemon_spawn_env listens on; NULL: 127.0.0.1:0 (a test that
 * restarts a daemon on the same address sets it for that start). */
static const char *fx_listen;

/* With ORC_TEST_PG_URL (a PostgreSQL database URL, tests/run-pg.sh), every daemon
 * runs on PostgreSQL: on a database of its own, named after its directory (so a
 * daemon restarted in the same directory finds its store again), made here
 * when missing. Writes "ORCHESTRATOR_STORE=URL" to out; false without the
 * variable. */
static inline bool fx_pg_store(const char *dir, char *out, size_t len)
{
    const char *base = getenv("ORC_TEST_PG_URL");
    const char *slash, *name = strrchr(dir, '/');
    char db[96], sql[256];
    size_t n = 0;
    PGconn *c;
    PGresult *r;

    if (base == NULL || *base == '\0')
        return false;
    for (name = name ? name + 1 : dir; *name && n < sizeof(db) - 1; name++)
        db[n++] = isalnum((unsigned char)*name) ? (char)tolower((unsigned char)*name) : '_';
    db[n] = '\0';
    c = PQconnectdb(base);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_database WHERE datname = '%s'", db);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (PQntuples(r) == 0) {
        PQclear(r);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
        r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    }
    PQclear(r);
    PQfinish(c);
    slash = strrchr(strstr(base, "://") + 3, '/');
    assert_non_null(slash);
    snprintf(out, len, "ORCHESTRATOR_STORE=%.*s/%s", (int)(slash - base), base, db);
    return true;
}

/* Starts $ORCHESTRATORD on 127.0.0.1:0 (fx_listen) with dir/var as its data directory
 * (and sites, when not NULL), logging to log, with the environment of
 * daemon_env(env); waits until the log names the address it listens on and
 * writes it to url ("http://127.0.0.1:PORT"). Returns its pid. */
static inline pid_t daemon_spawn_env(const char *dir, const char *sites, const char *log, char *url,
                                     size_t urlsize, const char *const *env)
{
    char line[512], fmt[16], data[128], store[400];
    const char *bin = env_or("ORCHESTRATORD", "build/release/bin/orchestratord");
    const char *argv[] = {"orchestratord",          "--listen",
                          fx_listen ? fx_listen : "127.0.0.1:0",            "--data-dir", data,
                          sites ? "--sites" : NULL, sites,      NULL};
    const char *with_store[64];
    char **envp;
    pid_t pid;
    FILE *fp;

    if (fx_pg_store(dir, store, sizeof(store))) { /* last: a test's own setting wins */
        size_t n = 0;
        for (size_t i = 0; env && env[i] && n < 62; i++)
            with_store[n++] = env[i];
        with_store[n++] = store;
        with_store[n] = NULL;
        env = with_store;
    }
    envp = daemon_env(env); /* built before the fork: the child only execs */
    snprintf(data, sizeof(data), "%s/var", dir);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        dup2(fd, 1);
        execve(bin, (char *const *)argv, envp);
        _exit(127);
    }
    if (env != NULL)
        free(envp);
    live_pid = pid;
    snprintf(fmt, sizeof(fmt), "%%%zus", urlsize - 1);
    url[0] = '\0';
    for (int i = 0; i < 400 && !url[0]; i++) {
        usleep(25000);
        fp = fopen(log, "r");
        while (fp && fgets(line, sizeof(line), fp)) {
            char *at = strstr(line, "listening on http"); /* http:// or https:// */
            if (at) {
                sscanf(at + strlen("listening on "), fmt, url);
                url[strcspn(url, "\"")] = '\0'; /* a JSON log line: the message ends there */
            }
        }
        if (fp)
            fclose(fp);
    }
    assert_true(url[0] != '\0');
    return pid;
}

/* daemon_spawn_env with this process's environment. */
static inline pid_t daemon_spawn(const char *dir, const char *sites, const char *log, char *url,
                                 size_t urlsize)
{
    return daemon_spawn_env(dir, sites, log, url, urlsize, NULL);
}

/* A response body collected by libcurl (CURLOPT_WRITEFUNCTION on_body). */
struct body {
    char *data;
    size_t len;
};

static inline size_t on_body(char *p, size_t s, size_t n, void *ud);

/* One JSON request to base_url + path (a daemon that may be killed under it): the HTTP
 * status, 0 when nothing answered; the body parsed in *out when out is not NULL. */
static inline long fx_call(const char *base_url, const char *method, const char *path,
                           const char *json, json_t **out)
{
    char url[256];
    long code = 0;
    struct body b = {NULL, 0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    json_error_t err;

    snprintf(url, sizeof(url), "%s%s", base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (out)
        *out = b.data ? json_loads(b.data, 0, &err) : NULL;
    free(b.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

static inline size_t on_body(char *p, size_t s, size_t n, void *ud)
{
    struct body *b = ud;
    char *nd = realloc(b->data, b->len + s * n + 1);

    if (nd == NULL)
        return 0;
    memcpy(nd + b->len, p, s * n);
    b->len += s * n;
    nd[b->len] = '\0';
    b->data = nd;
    return s * n;
}

/* ==== REST integration tests ================================================================ */

/* Every HTTP exchange fx_http made: what openapi_check.h holds against the
 * daemon's OpenAPI document. */
struct fx_exchange {
    char method[8];
    char *path;      /* as sent, without the query string */
    char *query;     /* NULL: none */
    char *req_ctype; /* the request's Content-Type; NULL: none */
    char *req_body;  /* NULL: none */
    long status;
    char ctype[128]; /* "" when the response had none */
    char *body;
    size_t len;
};

static struct fx_exchange *fx_log;
static size_t fx_nlog, fx_caplog;

static inline char *fx_strdup(const char *s)
{
    char *d = s ? strdup(s) : NULL;

    assert_true(s == NULL || d != NULL);
    return d;
}

static inline void fx_log_clear(void)
{
    for (size_t i = 0; i < fx_nlog; i++) {
        free(fx_log[i].path);
        free(fx_log[i].query);
        free(fx_log[i].req_ctype);
        free(fx_log[i].req_body);
        free(fx_log[i].body);
    }
    free(fx_log);
    fx_log = NULL;
    fx_nlog = fx_caplog = 0;
}

/* A daemon of one test, in its own temporary directory. */
struct fx_daemon {
    pid_t pid;
    char dir[64];
    char url[64]; /* http://127.0.0.1:PORT */
    char log[128];
    CURL *curl; /* one handle: keep-alive across the test's requests */
};

static inline double fx_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void fx_sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* A whole file, NUL-terminated (caller frees); NULL when it cannot be read. */
static inline char *fx_read_file(const char *path)
{
    return test_read_file(path, NULL);
}

/* Writes dir/name with text, every "@DIR@" replaced by dir; path gets its path. */
static inline void fx_write_file(const char *dir, const char *name, const char *text, char *path,
                                 size_t size)
{
    FILE *f;

    snprintf(path, size, "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    for (const char *p = text; *p; p++) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            fputs(dir, f);
            p += 4;
        } else {
            fputc(*p, f);
        }
    }
    assert_int_equal(fclose(f), 0);
}

/* Prints the last lines of the daemon's log (when a test is about to fail). */
static inline void fx_dump_log(const struct fx_daemon *d)
{
    char *log = fx_read_file(d->log);
    size_t n = log ? strlen(log) : 0;

    fprintf(stderr, "---- %s (last 6000 bytes)\n%s\n----\n", d->log,
            log ? log + (n > 6000 ? n - 6000 : 0) : "(none)");
    free(log);
}

/* Waits until the daemon's log says that its engine is ready (its sites are
 * open), so that deadlines counted from a creation start with the daemon. */
static inline void fx_wait_engine(struct fx_daemon *d)
{
    for (int i = 0; i < 1000; i++) {
        char *log = fx_read_file(d->log);
        bool ready = log && strstr(log, "engine ready") != NULL;
        free(log);
        if (ready)
            return;
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            live_pid = 0;
            fx_dump_log(d);
            fail_msg("the daemon exited before its engine was ready");
        }
        fx_sleep_ms(10);
    }
    fx_dump_log(d);
    fail_msg("the daemon's engine did not get ready");
}

/* What fx_teardown cleans up when an assertion ended a test early. */
static CURL *fx_cur_curl;
static char fx_cur_dir[64];

/* A cmocka teardown for tests that use fx_start: kills the daemon a failed
 * assertion left running, frees its HTTP handle, removes its directory. */
static inline int fx_teardown(void **state)
{
    char cmd[128];

    kill_leftover(state);
    if (fx_cur_curl != NULL)
        curl_easy_cleanup(fx_cur_curl);
    fx_cur_curl = NULL;
    if (fx_cur_dir[0] != '\0' && getenv("FX_KEEP_DIRS") != NULL) /* to debug a failure */
        fprintf(stderr, "kept %s\n", fx_cur_dir);
    else if (fx_cur_dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx_cur_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", fx_cur_dir);
    }
    fx_cur_dir[0] = '\0';
    return 0;
}

/* Starts a daemon in a fresh /tmp/NAME-XXXXXX. sites_yaml (NULL: the
 * embedded default site) is written to DIR/sites.yaml with @DIR@ replaced by
 * the directory. env ("K=V", NULL-terminated, may be NULL) is added to the
 * daemon's environment after ORC_DRV_STRICT=1 (a driver contract violation
 * aborts it) and ORCHESTRATOR_PLUGIN_DIR=$PLUGIN_DIR. Waits until the engine
 * is ready. */
/* The environment fx_start and fx_restart give a daemon (all: 40 slots): strict drivers,
 * $PLUGIN_DIR as its plugin folder (written into plugins), then env (NULL: nothing). */
static inline void fx_daemon_env(const char *all[40], char *plugins, size_t size,
                                 const char *const *env)
{
    size_t n = 0;

    all[n++] = "ORC_DRV_STRICT=1";
    if (getenv("PLUGIN_DIR") && *getenv("PLUGIN_DIR")) {
        snprintf(plugins, size, "ORCHESTRATOR_PLUGIN_DIR=%s", getenv("PLUGIN_DIR"));
        all[n++] = plugins;
    }
    for (size_t i = 0; env && env[i] && n < 39; i++)
        all[n++] = env[i];
    all[n] = NULL;
}

static inline void fx_start(struct fx_daemon *d, const char *name, const char *sites_yaml,
                            const char *const *env)
{
    char sites[128], plugins[512];
    const char *all[40];

    memset(d, 0, sizeof(*d));
    snprintf(d->dir, sizeof(d->dir), "/tmp/%s-XXXXXX", name);
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    fx_daemon_env(all, plugins, sizeof(plugins), env);
    if (sites_yaml)
        fx_write_file(d->dir, "sites.yaml", sites_yaml, sites, sizeof(sites));
    d->pid =
        daemon_spawn_env(d->dir, sites_yaml ? sites : NULL, d->log, d->url, sizeof(d->url), all);
    snprintf(fx_cur_dir, sizeof(fx_cur_dir), "%s", d->dir);
    fx_wait_engine(d);
    d->curl = curl_easy_init();
    assert_non_null(d->curl);
    fx_cur_curl = d->curl;
}

/* SIGTERM (the daemon must exit 0), then a new daemon on the same directory, store and
 * sites file, with the extra environment env (NULL: none); waits for its engine. */
static inline void fx_restart(struct fx_daemon *d, const char *const *env)
{
    const char *all[40];
    char plugins[512], sites[128];
    int status;

    kill(d->pid, SIGTERM);
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fx_daemon_env(all, plugins, sizeof(plugins), env);
    snprintf(sites, sizeof(sites), "%s/sites.yaml", d->dir);
    d->pid = daemon_spawn_env(d->dir, access(sites, R_OK) == 0 ? sites : NULL, d->log, d->url,
                              sizeof(d->url), all);
    fx_wait_engine(d);
}

/* SIGTERM, then the daemon must exit 0 within 20 s (under the sanitizers a
 * leak or an error makes it exit otherwise); its directory is removed. */
static inline void fx_stop(struct fx_daemon *d)
{
    char cmd[128];
    int status = -1;
    pid_t r = 0;

    curl_easy_cleanup(d->curl);
    d->curl = fx_cur_curl = NULL;
    kill(d->pid, SIGTERM);
    for (int i = 0; i < 2000 && r != d->pid; i++) {
        r = waitpid(d->pid, &status, WNOHANG);
        if (r != d->pid)
            fx_sleep_ms(10);
    }
    if (r != d->pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fx_dump_log(d);
        fail_msg("the daemon did not exit 0 after SIGTERM (%s %d)",
                 r != d->pid         ? "still running"
                 : WIFEXITED(status) ? "status"
                                     : "signal",
                 r != d->pid         ? 0
                 : WIFEXITED(status) ? WEXITSTATUS(status)
                                     : WTERMSIG(status));
    }
    live_pid = 0;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
    fx_cur_dir[0] = '\0';
}

/* The CA that verifies a daemon serving HTTPS (tests/security/test_tls.c); NULL: none. */
static const char *fx_ca_file;

/* An HTTP response. */
struct fx_resp {
    long status;
    char ctype[128]; /* "" when none */
    char *body;      /* NUL-terminated; "" when none */
    size_t len;
    json_t *json; /* the body parsed, when it is JSON; else NULL */
};

static inline void fx_resp_free(struct fx_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

static inline void fx_record(const char *method, const char *path, const char *req_ctype,
                             const char *req_body, const struct fx_resp *r)
{
    struct fx_exchange *e;
    const char *q = strchr(path, '?');

    if (fx_nlog == fx_caplog) {
        fx_caplog = fx_caplog ? fx_caplog * 2 : 256;
        fx_log = realloc(fx_log, fx_caplog * sizeof(*fx_log));
        assert_non_null(fx_log);
    }
    e = &fx_log[fx_nlog++];
    memset(e, 0, sizeof(*e));
    snprintf(e->method, sizeof(e->method), "%s", method);
    e->path = q ? strndup(path, (size_t)(q - path)) : fx_strdup(path);
    e->query = q ? fx_strdup(q + 1) : NULL;
    e->req_ctype = fx_strdup(req_ctype);
    e->req_body = fx_strdup(req_body);
    e->status = r->status;
    snprintf(e->ctype, sizeof(e->ctype), "%s", r->ctype);
    e->body = malloc(r->len + 1);
    assert_non_null(e->body);
    memcpy(e->body, r->body, r->len + 1);
    e->len = r->len;
}

/* The Content-Type among headers ("Name: value" lines), or NULL. */
static inline const char *fx_header_value(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return headers[i] + n + 1 + strspn(headers[i] + n + 1, " ");
    return NULL;
}

/* One request to the daemon: method, path (with any query), extra headers
 * ("Name: value", NULL-terminated, may be NULL) and a body (NULL: none; sent
 * as application/json unless headers name another Content-Type). Fills r
 * (fx_resp_free it), records the exchange, and returns the status. */
static inline long fx_http(struct fx_daemon *d, const char *method, const char *path,
                           const char *const *headers, const char *body, struct fx_resp *r)
{
    char url[2048];
    struct body b = {NULL, 0};
    struct curl_slist *h = NULL;
    const char *ctype = fx_header_value(headers, "Content-Type");
    char *got = NULL;
    json_error_t je;
    CURLcode rc;

    memset(r, 0, sizeof(*r));
    snprintf(url, sizeof(url), "%s%s", d->url, path);
    if (body && ctype == NULL) {
        ctype = "application/json";
        h = curl_slist_append(h, "Content-Type: application/json");
    }
    h = curl_slist_append(h, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    curl_easy_reset(d->curl);
    curl_easy_setopt(d->curl, CURLOPT_URL, url);
    curl_easy_setopt(d->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(d->curl, CURLOPT_TIMEOUT, 10L);
    if (fx_ca_file)
        curl_easy_setopt(d->curl, CURLOPT_CAINFO, fx_ca_file);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(d->curl, CURLOPT_NOBODY, 1L);
    if (body)
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, body);
    rc = curl_easy_perform(d->curl);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        fx_dump_log(d);
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    }
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(d->curl, CURLINFO_CONTENT_TYPE, &got);
    snprintf(r->ctype, sizeof(r->ctype), "%s", got ? got : "");
    r->body = b.data ? b.data : fx_strdup("");
    r->len = b.len;
    if (strncmp(r->ctype, "application/json", 16) == 0)
        r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, &je);
    fx_record(method, path, ctype, body, r);
    return r->status;
}

static inline long fx_get(struct fx_daemon *d, const char *path, struct fx_resp *r)
{
    return fx_http(d, "GET", path, NULL, NULL, r);
}

/* A GET that must answer 200 with JSON; returns the JSON (caller decrefs). */
static inline json_t *fx_get_json(struct fx_daemon *d, const char *path)
{
    struct fx_resp r;
    json_t *j;

    if (fx_get(d, path, &r) != 200 || r.json == NULL)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    j = json_incref(r.json);
    fx_resp_free(&r);
    return j;
}

/* Waits up to timeout_ms for GET /sites/NAME to say state want ("" for gone: 404). */
static inline void fx_wait_site(struct fx_daemon *d, const char *name, const char *want,
                                int timeout_ms)
{
    char path[128], seen[64] = "";
    double end = fx_now_ms() + timeout_ms;

    snprintf(path, sizeof(path), "/sites/%s", name);
    do {
        struct fx_resp r;
        long status = fx_get(d, path, &r);
        snprintf(seen, sizeof(seen), "%s",
                 status == 404 ? "" : json_string_value(json_object_get(r.json, "state")));
        fx_resp_free(&r);
        if (strcmp(seen, want) == 0)
            return;
        fx_sleep_ms(20);
    } while (fx_now_ms() < end);
    fail_msg("%s: site %s is '%s', not '%s'", d->url, name, seen, want);
}

/* The reason phrases API.md's error JSON carries as its title. */
static inline const char *fx_reason(long status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    default:
        return "?";
    }
}

/* r must be the error JSON of API.md for status: exactly code, title (the
 * reason phrase) and message, which contains want (when not NULL). */
static inline void fx_assert_error(const struct fx_resp *r, long status, const char *want)
{
    const char *msg = json_string_value(json_object_get(r->json, "message"));

    if (r->status != status || r->json == NULL)
        fail_msg("expected the error JSON with %ld, got %ld %s: %s", status, r->status, r->ctype,
                 r->body);
    assert_int_equal(strncmp(r->ctype, "application/json", 16), 0);
    assert_int_equal(json_integer_value(json_object_get(r->json, "code")), status);
    assert_string_equal(json_string_value(json_object_get(r->json, "title")), fx_reason(status));
    assert_non_null(msg);
    assert_int_equal(json_object_size(r->json), 3);
    if (want && strstr(msg, want) == NULL)
        fail_msg("error message \"%s\" does not contain \"%s\"", msg, want);
}

/* A call that must fail with the error JSON of status naming want. */
static inline void fx_expect_error(struct fx_daemon *d, const char *method, const char *path,
                                   const char *body, long status, const char *want)
{
    struct fx_resp r;

    fx_http(d, method, path, NULL, body, &r);
    fx_assert_error(&r, status, want);
    fx_resp_free(&r);
}

/* t must be exactly yyyy-MM-dd'T'HH:mm+0000 (API.md), within two minutes of now. */
static inline void fx_assert_time(const char *t)
{
    struct tm tm = {0};
    time_t now = time(NULL), at;

    assert_non_null(t);
    if (strlen(t) != 21 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
        strcmp(t + 16, "+0000") != 0)
        fail_msg("time \"%s\" is not yyyy-MM-dd'T'HH:mm+0000", t);
    for (int i = 0; i < 16; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && (t[i] < '0' || t[i] > '9'))
            fail_msg("time \"%s\" is not yyyy-MM-dd'T'HH:mm+0000", t);
    assert_int_equal(sscanf(t, "%4d-%2d-%2dT%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min),
                     5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    at = timegm(&tm);
    if (at < now - 180 || at > now + 60)
        fail_msg("time \"%s\" is not now (UTC)", t);
}

/* POSTs a deployment: {"template": text} plus the fields of extra (a JSON
 * object text, may be NULL). Must answer 201; returns the deployment JSON
 * (caller decrefs) and its uuid. */
static inline json_t *fx_create(struct fx_daemon *d, const char *text, const char *extra,
                                char uuid[64])
{
    json_error_t je;
    json_t *body = json_loads(extra ? extra : "{}", 0, &je), *dep;
    char *payload;
    struct fx_resp r;

    assert_non_null(body);
    json_object_set_new(body, "template", json_string(text));
    payload = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (fx_http(d, "POST", "/deployments", NULL, payload, &r) != 201 || r.json == NULL)
        fail_msg("POST /deployments: %ld %s", r.status, r.body);
    free(payload);
    dep = json_incref(r.json);
    snprintf(uuid, 64, "%s", json_string_value(json_object_get(dep, "uuid")));
    fx_resp_free(&r);
    return dep;
}

/* The status of a deployment; "" when it is gone (404). */
static inline void fx_status(struct fx_daemon *d, const char *uuid, char *status, size_t size,
                             json_t **dep)
{
    char path[128];
    struct fx_resp r;

    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    fx_get(d, path, &r);
    if (r.status != 200 && r.status != 404)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    snprintf(status, size, "%s",
             r.status == 404 ? "" : json_string_value(json_object_get(r.json, "status")));
    if (dep)
        *dep = r.status == 200 ? json_incref(r.json) : NULL;
    fx_resp_free(&r);
}

/* Polls a deployment until its status is one of want ("A|B"; "" for gone)
 * or timeout_ms pass; returns the last JSON (NULL when gone; caller
 * decrefs). Fails the test on a timeout, naming the status seen. */
static inline json_t *fx_wait_status(struct fx_daemon *d, const char *uuid, const char *want,
                                     int timeout_ms)
{
    double end = fx_now_ms() + timeout_ms;
    char st[64], alts[256];
    json_t *dep = NULL;

    do {
        json_decref(dep);
        fx_status(d, uuid, st, sizeof(st), &dep);
        snprintf(alts, sizeof(alts), "|%s|", want);
        {
            char key[70];
            snprintf(key, sizeof(key), "|%s|", st);
            if (strstr(alts, key) != NULL)
                return dep;
        }
        fx_sleep_ms(15);
    } while (fx_now_ms() < end);
    fx_dump_log(d);
    fail_msg("deployment %s: still %s after %d ms, waiting for %s", uuid, st[0] ? st : "(gone)",
             timeout_ms, want);
    return NULL;
}

/* The inventory file of a sim site of the daemon (DIR/site.json), or NULL. */
static inline json_t *fx_sim_inventory(const struct fx_daemon *d, const char *site)
{
    char path[256];
    json_error_t je;

    snprintf(path, sizeof(path), "%s/%s.json", d->dir, site);
    return json_load_file(path, 0, &je);
}

/* Resources the sim cloud of site holds: all, or those of deployment uuid. */
static inline size_t fx_sim_count(const struct fx_daemon *d, const char *site, const char *uuid)
{
    json_t *inv = fx_sim_inventory(d, site), *rec;
    const char *name;
    size_t n = 0;

    json_object_foreach(json_object_get(inv, "resources"), name, rec)
    {
        const char *dep = json_string_value(json_object_get(rec, "deployment"));
        if (uuid == NULL || (dep && strcmp(dep, uuid) == 0))
            n++;
    }
    json_decref(inv);
    return n;
}

/* A sim site's counter ("provisioned", "deprovisioned"); 0 without a file. */
static inline long fx_sim_counter(const struct fx_daemon *d, const char *site, const char *name)
{
    json_t *inv = fx_sim_inventory(d, site);
    long v = (long)json_integer_value(json_object_get(json_object_get(inv, "counters"), name));

    json_decref(inv);
    return v;
}

/* The events of a deployment that have type (all when NULL), as a new
 * array (caller decrefs). */
static inline json_t *fx_events(struct fx_daemon *d, const char *uuid, const char *type)
{
    char path[128];
    json_t *all, *out = json_array(), *e;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/events", uuid);
    all = fx_get_json(d, path);
    assert_true(json_is_array(all));
    json_array_foreach(all, i, e)
    {
        const char *t = json_string_value(json_object_get(e, "type"));
        if (type == NULL || (t && strcmp(t, type) == 0))
            json_array_append(out, e);
    }
    json_decref(all);
    return out;
}

/* A URL's body (GET, or POST of json when not NULL): the HTTP status (0:
 * no answer), the text in *out (caller frees). */
static inline long fx_url_fetch(const char *url, const char *json, char **out)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (json) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *out = b.data ? b.data : strdup("");
    return status;
}

/* GET /deployments/{id}/log (caller frees). */
static inline char *fx_dep_log(struct fx_daemon *d, const char *uuid)
{
    char path[128];
    struct fx_resp r;
    char *text;

    snprintf(path, sizeof(path), "/deployments/%s/log", uuid);
    assert_int_equal(fx_get(d, path, &r), 200);
    text = strdup(r.body);
    fx_resp_free(&r);
    return text;
}

/* DELETE a deployment and wait (up to ms) until it is gone. */
static inline void fx_undeploy(struct fx_daemon *d, const char *uuid, int ms)
{
    char path[128];
    struct fx_resp r;

    snprintf(path, sizeof(path), "/deployments/%.64s", uuid);
    fx_http(d, "DELETE", path, NULL, NULL, &r);
    fx_resp_free(&r);
    assert_null(fx_wait_status(d, uuid, "", ms));
}

/* The text of a template file of the project (caller frees). */
static inline char *fx_example(const char *path)
{
    char *t = fx_read_file(path);

    if (t == NULL)
        fail_msg("cannot read %s", path);
    return t;
}

/* Runs $ORCHESTRATORD with args (shell words, already quoted) on 127.0.0.1:0 with dir/var
 * as its data directory; it must exit non-zero, and its output must contain want. Returns
 * that output (caller frees), for more checks. */
static inline char *fx_expect_no_start(const char *dir, const char *args, const char *want)
{
    char log[128], cmd[2048], *text;
    int status;

    snprintf(log, sizeof(log), "%s/daemon.log", dir);
    snprintf(cmd, sizeof(cmd), "'%s' %s --listen 127.0.0.1:0 --data-dir '%s/var' >'%s' 2>&1",
             env_or("ORCHESTRATORD", "build/release/bin/orchestratord"), args, dir, log);
    status = system(cmd);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    text = fx_read_file(log);
    assert_non_null(text);
    if (strstr(text, want) == NULL)
        fail_msg("expected '%s' in: %s", want, text);
    return text;
}

/* A compute node and a web service on it (python3's http.server on port), whose agent
 * sends a heartbeat every 200 ms (caller frees). */
static inline char *fx_service_template(unsigned port)
{
    static const char fmt[] =
        "tosca_definitions_version: tosca_simple_yaml_1_3\n"
        "topology_template:\n"
        "  node_templates:\n"
        "    box:\n"
        "      type: orc.nodes.GPUCompute\n"
        "      capabilities:\n"
        "        host:\n"
        "          properties: {num_cpus: 1, mem_size: 64 MB}\n"
        "    web:\n"
        "      type: orc.nodes.Service\n"
        "      properties:\n"
        "        command: exec python3 -m http.server \"$PORT\" --bind 127.0.0.1\n"
        "        port: %u\n"
        "        readiness_path: /\n"
        "        environment:\n"
        "          ORC_AGENT_HEARTBEAT_MS: \"200\"\n"
        "      requirements:\n"
        "        - host: box\n";
    char *t = malloc(sizeof(fmt) + 16);

    assert_non_null(t);
    snprintf(t, sizeof(fmt) + 16, fmt, port);
    return t;
}

/* The examples' texts, for a whole test program (fx_examples_load and
 * fx_examples_free as its group setup and teardown; libcurl is set up too). */
__attribute__((unused)) static char *fx_serving, *fx_training;

static inline int fx_examples_load(void **state)
{
    (void)state;
    fx_serving = fx_example("examples/gpu-serving.yaml");
    fx_training = fx_example("examples/gpu-training.yaml");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static inline int fx_examples_free(void **state)
{
    (void)state;
    free(fx_serving);
    free(fx_training);
    fx_log_clear();
    curl_global_cleanup();
    return 0;
}

#endif
