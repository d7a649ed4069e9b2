/*
 * Helpers for tests that run a cloud API simulator of tests/sim/ (the
 * OpenStack one, openstack_sim.py, and the Kubernetes one, k8s_sim.py): start
 * it with python3 in a state directory and a JSON config, wait for the URL
 * it writes to DIR/url, read and change its knobs and inventory over its
 * /_sim/ endpoints, and stop it (SIGTERM: it kills what it started).
 * Header-only; include after testutil.h and daemon_fixture.h.
 */
#ifndef CLOUDSIM_FIXTURE_H
#define CLOUDSIM_FIXTURE_H

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

struct cloudsim {
    pid_t pid;
    char dir[256];
    char url[256]; /* the simulator's base URL */
    char log[300];
};

/* The simulator's script: $SIM_DIR/NAME (make test sets SIM_DIR), else tests/sim/NAME. */
static inline void cloudsim_script(const char *name, char *path, size_t cap)
{
    const char *d = getenv("SIM_DIR");
    snprintf(path, cap, "%s/%s", d && *d ? d : "tests/sim", name);
}

/* true when python3 and the script are there (tests skip otherwise, saying so) */
static inline bool cloudsim_available(const char *name)
{
    char path[512];

    cloudsim_script(name, path, sizeof(path));
    return access(path, R_OK) == 0 && system("python3 -c 'import ssl' >/dev/null 2>&1") == 0;
}

/* Starts NAME in dir (created) with config (JSON text or NULL) and extra
 * arguments (NULL-terminated or NULL); waits up to 10 s for dir/url. */
static inline void cloudsim_start(struct cloudsim *s, const char *name, const char *dir,
                                  const char *config, const char *const *extra)
{
    char script[512], conf[320], urlfile[320];
    const char *argv[24] = {"python3", script, "--state-dir", dir};
    int n = 4;

    memset(s, 0, sizeof(*s));
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    mkdir(dir, 0700);
    cloudsim_script(name, script, sizeof(script));
    snprintf(s->log, sizeof(s->log), "%s/sim.log", dir);
    snprintf(urlfile, sizeof(urlfile), "%s/url", dir);
    unlink(urlfile);
    if (config) {
        FILE *f;
        snprintf(conf, sizeof(conf), "%s/config.json", dir);
        f = fopen(conf, "w");
        assert_non_null(f);
        fputs(config, f);
        fclose(f);
        argv[n++] = "--config";
        argv[n++] = conf;
    }
    for (size_t i = 0; extra && extra[i] && n < 22; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(urlfile, "r");
        if (f) {
            if (fgets(s->url, sizeof(s->url), f) == NULL)
                s->url[0] = '\0';
            fclose(f);
            if (s->url[0])
                return;
        }
        usleep(25000);
    }
    {
        char *log = fx_read_file(s->log);
        print_message("simulator %s did not start; its log:\n%s\n", name, log ? log : "");
        free(log);
    }
    fail_msg("simulator %s did not write %s", name, urlfile);
}

static inline void cloudsim_stop(struct cloudsim *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        for (int i = 0; i < 200 && waitpid(s->pid, NULL, WNOHANG) == 0; i++)
            usleep(25000);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* GET (json NULL) or PUT/POST of json at the simulator's path: the parsed answer (caller
 * decrefs), NULL when it was not JSON. Plain http only (the knobs of a TLS simulator
 * are set through its --config). */
static inline json_t *cloudsim_call(const struct cloudsim *s, const char *method, const char *path,
                                    const char *json)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[512];
    json_t *out = NULL;

    snprintf(url, sizeof(url), "%s%s", s->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L); /* the test's own simulator */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (json) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    }
    if (curl_easy_perform(c) == CURLE_OK && b.data)
        out = json_loadb(b.data, b.len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(b.data);
    return out;
}

/* The length of array key of GET /_sim/inventory (-1: no such array). */
static inline long cloudsim_count(const struct cloudsim *s, const char *key)
{
    json_t *inv = cloudsim_call(s, "GET", "/_sim/inventory", NULL);
    json_t *a = json_object_get(inv, key);
    long n = json_is_array(a) ? (long)json_array_size(a) : json_is_integer(a) ? (long)json_integer_value(a) : -1;

    json_decref(inv);
    return n;
}

/* The absolute directory of gpu-agent, gpu-train and gpu-serve ($GPU_AGENT's, else
 * build/release/bin): what the simulators' pods and servers run. */
static inline void cloudsim_runtime_dir(char *out, size_t cap)
{
    const char *agent = getenv("GPU_AGENT");
    char *copy = strdup(agent && *agent ? agent : "build/release/bin/gpu-agent");
    char *slash = strrchr(copy, '/'), cwd[256];

    if (slash)
        *slash = '\0';
    if (copy[0] == '/') {
        snprintf(out, cap, "%s", slash ? copy : ".");
    } else {
        assert_non_null(getcwd(cwd, sizeof(cwd)));
        snprintf(out, cap, "%.255s/%.255s", cwd, slash ? copy : ".");
    }
    free(copy);
}

/* Waits up to ms until the inventory's arrays named in kinds (NULL-terminated) are
 * empty and no process the simulator started runs ("processes"); fails naming what
 * is left. */
static inline void cloudsim_assert_empty(const struct cloudsim *s, const char *const *kinds, int ms)
{
    double end = fx_now_ms() + ms;
    json_t *inv = NULL;

    for (;;) {
        size_t left = 0;
        json_decref(inv);
        inv = cloudsim_call(s, "GET", "/_sim/inventory", NULL);
        assert_non_null(inv);
        for (size_t i = 0; kinds[i]; i++)
            left += json_array_size(json_object_get(inv, kinds[i]));
        if (left == 0 && json_integer_value(json_object_get(inv, "processes")) == 0)
            break;
        if (fx_now_ms() > end) {
            char *text = json_dumps(inv, JSON_COMPACT);
            fail_msg("the simulator (%s) still holds: %s", s->url, text);
        }
        fx_sleep_ms(100);
    }
    json_decref(inv);
}

/* What the orchestrator makes on each simulator. */
static const char *const cloudsim_os_kinds[] = {"servers", "floating_ips", "security_groups",
                                                "ports", NULL};
static const char *const cloudsim_k8s_kinds[] = {"jobs", "deployments", "replicasets", "pods",
                                                 "services", "configmaps", NULL};

#endif
