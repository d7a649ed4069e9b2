/*
 * The README's walkthrough against the real daemon and the real orchctl:
 * orchestratord on an ephemeral loopback port with a temporary data
 * directory and its embedded default site (`local`, this machine); orchctl
 * deploys the training example (with a command that exists here), watches it
 * to CREATE_COMPLETE, reads its outputs, lists it, deletes it and waits for
 * DELETE_COMPLETE; curl-equivalent requests (libcurl) check the REST answers
 * the walkthrough shows, the catalog's and the sites' too (the examples, one deployed by
 * name; the local site active); a
 * template for a GPU this machine lacks fails fast
 * with a reason; a bad template is a 400 naming file:line:col.
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"

struct daemon {
    pid_t pid;
    char dir[64];
    char url[64];
};

static void daemon_start(struct daemon *d)
{
    char log[128];

    snprintf(d->dir, sizeof(d->dir), "/tmp/test-walk-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(log, sizeof(log), "%s/daemon.log", d->dir);
    d->pid = daemon_spawn(d->dir, NULL, log, d->url, sizeof(d->url));
}

static void daemon_stop(struct daemon *d)
{
    int status = 0;
    char cmd[128];

    kill(d->pid, SIGTERM);
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    live_pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
}

/* Runs orchctl with ORCHESTRATOR_URL set; returns its exit status and its
 * standard output (first line in out). */
static int orchctl(const struct daemon *d, const char *args, char *out, size_t size)
{
    char cmd[2048];
    FILE *p;
    int status;
    size_t n = 0;

    snprintf(cmd, sizeof(cmd), "ORCHESTRATOR_URL=%s %s %s", d->url,
             env_or("ORCHCTL", "build/release/bin/orchctl"), args);
    p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    while (n + 1 < size && fgets(out + n, (int)(size - n), p))
        n = strlen(out);
    status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static long http(const struct daemon *d, const char *method, const char *path, const char *json,
                 struct body *b)
{
    char url[256];
    long code = 0;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");

    snprintf(url, sizeof(url), "%s%s", d->url, path);
    b->data = NULL;
    b->len = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (json)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* Polls GET /deployments/ID until its status is want (or a final one). */
static void wait_status(const struct daemon *d, const char *id, const char *want)
{
    char path[128], needle[64];
    struct body b;

    snprintf(path, sizeof(path), "/deployments/%s", id);
    snprintf(needle, sizeof(needle), "\"status\":\"%s\"", want);
    for (int i = 0; i < 600; i++) {
        long code = http(d, "GET", path, NULL, &b);
        bool done = code == 200 && strstr(b.data, needle) != NULL;
        if (!done && (code != 200 || strstr(b.data, "_FAILED")))
            fprintf(stderr, "deployment %s: %ld %s\n", id, code, b.data);
        assert_true(code == 200 && strstr(b.data, "_FAILED") == NULL);
        free(b.data);
        if (done)
            return;
        usleep(100 * 1000);
    }
    fail_msg("deployment %s never reached %s", id, want);
}

/* A field of the first resource of a TOSCA type ("physicalId", ...). */
static void resource_field(const struct daemon *d, const char *id, const char *type,
                           const char *field, char *out, size_t size)
{
    char path[256];
    struct body b;
    json_error_t je;
    json_t *page;

    snprintf(path, sizeof(path), "/deployments/%s/resources?type=%s", id, type);
    assert_int_equal(http(d, "GET", path, NULL, &b), 200);
    page = json_loads(b.data, 0, &je);
    assert_non_null(page);
    snprintf(out, size, "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(page, "content"), 0), field)));
    json_decref(page);
    free(b.data);
}

static void expect_file(const char *path, const char *text)
{
    char buf[256] = "";
    FILE *fp = fopen(path, "r");

    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_non_null(strstr(buf, text));
}

/* The endpoint output, fetched: the service answers there. */
static void endpoint_answers(const struct daemon *d, const char *id, int port)
{
    char path[128], url[128], want[64];
    struct body b, page = {NULL, 0};
    long code = 0;
    CURL *c;

    snprintf(path, sizeof(path), "/deployments/%s/outputs", id);
    assert_int_equal(http(d, "GET", path, NULL, &b), 200);
    snprintf(want, sizeof(want), "\"endpoint\":\"http://127.0.0.1:%d/v2/models/\"", port);
    assert_non_null(strstr(b.data, want));
    free(b.data);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
    c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &page);
    assert_int_equal(curl_easy_perform(c), CURLE_OK); /* ready when complete */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    free(page.data);
    assert_int_equal(code, 200);
}

/* The README's curl part: a service deployed, updated to another port, deleted. */
static void serving_over_http(const struct daemon *d)
{
    char body[8192], id[64] = "", path[128], text[4096], *json;
    int port = 20000 + (int)(getpid() % 12000); /* below the ephemeral ports (32768-) */
    struct body b;
    json_t *req;
    FILE *fp = fopen("examples/gpu-serving.yaml", "r");
    size_t n;

    assert_non_null(fp);
    n = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    text[n] = '\0';
    req = json_pack("{s:s,s:{s:s,s:i}}", "template", text, "parameters", "command",
                    "mkdir -p v2/models && exec python3 -m http.server $PORT --bind 127.0.0.1",
                    "port", port);
    json = json_dumps(req, JSON_COMPACT);
    snprintf(body, sizeof(body), "%s", json);
    free(json);
    json_decref(req);
    assert_int_equal(http(d, "POST", "/deployments", body, &b), 201);
    assert_int_equal(sscanf(strstr(b.data, "\"uuid\":\"") + 8, "%36s", id), 1);
    free(b.data);
    wait_status(d, id, "CREATE_COMPLETE");
    endpoint_answers(d, id, port);
    snprintf(path, sizeof(path), "/deployments/%s", id);
    snprintf(body, sizeof(body), "{\"parameters\": {\"port\": %d}}", port + 1);
    assert_int_equal(http(d, "PUT", path, body, &b), 202);
    free(b.data);
    wait_status(d, id, "UPDATE_COMPLETE");
    endpoint_answers(d, id, port + 1); /* restarted on the new port */
    assert_int_equal(http(d, "DELETE", path, NULL, &b), 204);
    free(b.data);
    for (int i = 0; i < 600 && http(d, "GET", path, NULL, &b) != 404; i++) {
        free(b.data);
        usleep(100 * 1000);
    }
    free(b.data);
}

/* The README's catalog part: the examples listed and searched, an input's schema, one
 * deployed by name (with a command that exists here), deleted. */
static void catalog_over_http(const struct daemon *d)
{
    char id[64] = "", path[128];
    struct body b;
    json_error_t je;
    json_t *j, *names = json_array(), *e;
    size_t i;

    for (int k = 0; k < 500; k++) { /* ready once the catalog directory is read */
        long s = http(d, "GET", "/readyz", NULL, &b);
        free(b.data);
        if (s == 200)
            break;
        usleep(10 * 1000);
    }
    assert_int_equal(http(d, "GET", "/sites", NULL, &b), 200);
    j = json_loads(b.data, 0, &je);
    free(b.data);
    e = json_array_get(json_object_get(j, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "name")), "local");
    assert_string_equal(json_string_value(json_object_get(e, "state")), "active");
    assert_true(json_integer_value(json_object_get(json_object_get(e, "cpus"), "total")) > 0);
    json_decref(j);
    assert_int_equal(http(d, "GET", "/templates?q=training", NULL, &b), 200);
    j = json_loads(b.data, 0, &je);
    free(b.data);
    json_array_foreach(json_object_get(j, "content"), i, e)
    {
        json_array_append(names, json_object_get(e, "name"));
    }
    json_decref(j);
    j = json_pack("[ss]", "gpu-train-serve", "gpu-training");
    assert_true(json_equal(names, j));
    json_decref(j);
    json_decref(names);
    assert_int_equal(http(d, "GET", "/templates/gpu-training", NULL, &b), 200);
    j = json_loads(b.data, 0, &je);
    free(b.data);
    e = json_object_get(json_object_get(json_object_get(j, "schema"), "properties"), "epochs");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(e, "maximum")), 1000);
    json_decref(j);
    assert_int_equal(http(d, "POST", "/deployments",
                          "{\"templateName\": \"gpu-training\", \"parameters\": {\"epochs\": 2, "
                          "\"command\": \"echo trained > checkpoint.bin\"}}",
                          &b),
                     201);
    assert_int_equal(sscanf(strstr(b.data, "\"uuid\":\"") + 8, "%36s", id), 1);
    free(b.data);
    wait_status(d, id, "CREATE_COMPLETE");
    snprintf(path, sizeof(path), "/deployments/%s", id);
    assert_int_equal(http(d, "DELETE", path, NULL, &b), 204);
    free(b.data);
    for (int k = 0; k < 600 && http(d, "GET", path, NULL, &b) != 404; k++) {
        free(b.data);
        usleep(100 * 1000);
    }
    free(b.data);
}

static void walkthrough(void **state)
{
    struct daemon d;
    char out[8192], id[64], args[512];
    struct body b;

    (void)state;
    daemon_start(&d);
    /* deploy and watch until CREATE_COMPLETE */
    assert_int_equal(orchctl(&d,
                             "deploy examples/gpu-training.yaml --inputs epochs=2 --inputs "
                             "'command=echo training $EPOCHS epochs > checkpoint.bin'",
                             out, sizeof(out)),
                     0);
    assert_int_equal(sscanf(out, "%63s", id), 1);
    snprintf(args, sizeof(args), "watch %s", id);
    assert_int_equal(orchctl(&d, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "CREATE_COMPLETE"));
    snprintf(args, sizeof(args), "outputs %s", id);
    assert_int_equal(orchctl(&d, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"node_address\":\"127.0.0.1\""));
    assert_non_null(strstr(out, "\"exit_status\":0"));
    assert_int_equal(orchctl(&d, "list", out, sizeof(out)), 0);
    assert_non_null(strstr(out, id));
    /* the same over plain HTTP */
    snprintf(args, sizeof(args), "/deployments/%s", id);
    assert_int_equal(http(&d, "GET", args, NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"status\":\"CREATE_COMPLETE\""));
    assert_non_null(strstr(b.data, "\"cloudProviderName\":\"local\""));
    free(b.data);
    snprintf(args, sizeof(args), "/deployments/%s/", id); /* trailing slash */
    assert_int_equal(http(&d, "GET", args, NULL, &b), 200);
    free(b.data);
    /* update: the job runs again with the new input */
    snprintf(args, sizeof(args), "update %s --inputs epochs=3 --wait", id);
    assert_int_equal(orchctl(&d, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "UPDATE_COMPLETE"));
    {
        char name[128], file[512];
        resource_field(&d, id, "orc.nodes.GPUCompute", "physicalId", name, sizeof(name));
        snprintf(file, sizeof(file), "%s/var/sites/local/%s/checkpoint.bin", d.dir, name);
        expect_file(file, "training 3 epochs");
    }
    /* delete and wait */
    snprintf(args, sizeof(args), "delete %s --wait", id);
    assert_int_equal(orchctl(&d, args, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "DELETE_COMPLETE"));
    snprintf(args, sizeof(args), "/deployments/%s", id);
    assert_int_equal(http(&d, "GET", args, NULL, &b), 404);
    assert_non_null(strstr(b.data, "doesn't exist"));
    free(b.data);
    /* a GPU this machine does not have: fails fast, naming why */
    assert_int_equal(orchctl(&d, "deploy examples/gpu-training.yaml --inputs num_gpus=1 --wait",
                             out, sizeof(out)),
                     1);
    assert_non_null(strstr(out, "CREATE_FAILED"));
    /* a bad template: 400 with file:line:col */
    assert_int_equal(http(&d, "POST", "/deployments",
                          "{\"template\":\"tosca_definitions_version: tosca_simple_yaml_1_3\\n"
                          "topology_template:\\n  node_templates:\\n    a: {type: Nope}\\n\"}",
                          &b),
                     400);
    assert_non_null(strstr(b.data, "template.yaml:4:15"));
    free(b.data);
    assert_int_equal(http(&d, "POST", "/deployments", "{\"parameters\":{}}", &b), 400);
    assert_non_null(strstr(b.data, "A TOSCA template must be provided"));
    free(b.data);
    serving_over_http(&d);
    catalog_over_http(&d);
    daemon_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(walkthrough, kill_leftover)};
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
