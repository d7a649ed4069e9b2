/*
 * Hostile input against the real daemon (docs/security.md): a billion-laughs template, a
 * template nested too deep, JSON nested too deep, a body, a header block and a URL over
 * the limits, slow-loris clients, header injection through X-Request-Id and Host, and
 * shell metacharacters in template inputs that reach a workload's environment and
 * arguments on the local site, URL imports outside imports.urls (and one inside, from a
 * loopback HTTP server). Each gets a specific status (or none of its effect), and
 * the daemon answers a health check afterwards.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "daemon_fixture.h"

static int group_setup(void **state)
{
    return fx_examples_load(state);
}

static int group_teardown(void **state)
{
    return fx_examples_free(state);
}

static void daemon_alive(struct fx_daemon *d)
{
    struct fx_resp r;

    assert_int_equal(fx_get(d, "/healthz", &r), 200);
    fx_resp_free(&r);
}

/* POSTs {"template": text}; expects status and want in the message. */
static void post_template(struct fx_daemon *d, const char *text, long status, const char *want)
{
    json_t *body = json_pack("{ss}", "template", text);
    char *json = json_dumps(body, 0);
    struct fx_resp r;

    json_decref(body);
    if (fx_http(d, "POST", "/deployments", NULL, json, &r) != status ||
        (want && (r.json == NULL ||
                  strstr(json_string_value(json_object_get(r.json, "message")), want) == NULL)))
        fail_msg("expected %ld with '%s', got %ld %.300s", status, want ? want : "", r.status,
                 r.body);
    fx_resp_free(&r);
    free(json);
    daemon_alive(d);
}

/* The port of d's URL. */
static int port_of(const struct fx_daemon *d)
{
    return atoi(strrchr(d->url, ':') + 1);
}

static int connect_to(const struct fx_daemon *d)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(d))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Sends text raw and reads the whole answer (until the server closes or 5 s pass). */
static char *raw_exchange(const struct fx_daemon *d, const char *text)
{
    int fd = connect_to(d);
    struct timeval tv = {5, 0};
    char *out = calloc(1, 65536);
    size_t n = 0;
    ssize_t got;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    shutdown(fd, SHUT_WR);
    while (n < 65535 && (got = read(fd, out + n, 65535 - n)) > 0)
        n += (size_t)got;
    close(fd);
    return out;
}

static void test_templates(void **state)
{
    struct fx_daemon d;
    char *deep, *bomb, *p, roots[] = "/tmp/orc-roots-XXXXXX", env[128], types[160], cmd[96];
    const char *extra[] = {env, NULL};
    size_t n = 0;
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(roots));
    snprintf(types, sizeof(types), "%s/site-types.yaml", roots);
    f = fopen(types, "w");
    assert_non_null(f);
    fputs("tosca_definitions_version: tosca_simple_yaml_1_3\n"
          "node_types:\n  site.nodes.Box:\n    derived_from: tosca.nodes.Root\n", f);
    fclose(f);
    snprintf(env, sizeof(env), "ORCHESTRATOR_IMPORT_ROOTS=%s", roots);
    fx_start(&d, "orc-hostile", NULL, extra);
    /* a file under imports.roots may be imported */
    {
        char text[512];
        struct fx_resp r;
        json_t *body;
        char *json;
        snprintf(text, sizeof(text),
                 "tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - file: '%s'\n"
                 "topology_template: {node_templates: {b: {type: site.nodes.Box}}}\n",
                 types);
        body = json_pack("{ss}", "template", text);
        json = json_dumps(body, 0);
        if (fx_http(&d, "POST", "/deployments", NULL, json, &r) == 400)
            fail_msg("an import under imports.roots: %s", r.body);
        fx_resp_free(&r);
        free(json);
        json_decref(body);
    }
    /* billion laughs: nine levels of nine aliases each */
    bomb = malloc(8192);
    n += (size_t)sprintf(bomb + n, "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                                   "metadata:\n  l0: &l0 [lol]\n");
    for (int i = 1; i <= 9; i++) {
        n += (size_t)sprintf(bomb + n, "  l%d: &l%d [", i, i);
        for (int j = 0; j < 9; j++)
            n += (size_t)sprintf(bomb + n, "%s*l%d", j ? "," : "", i - 1);
        n += (size_t)sprintf(bomb + n, "]\n");
    }
    sprintf(bomb + n, "topology_template: {node_templates: {}}\n");
    post_template(&d, bomb, 400, "aliases expand to more than");
    free(bomb);
    /* nesting far deeper than the loader's limit */
    deep = malloc(200000);
    p = deep + sprintf(deep, "tosca_definitions_version: tosca_simple_yaml_1_3\nmetadata: ");
    for (int i = 0; i < 50000; i++)
        *p++ = '[';
    for (int i = 0; i < 50000; i++)
        *p++ = ']';
    strcpy(p, "\n");
    post_template(&d, deep, 400, "nesting deeper than");
    free(deep);
    /* imports that would read this machine's files or fetch from inside its network */
    {
        static const char *const imports[][2] = {
            {"/etc/passwd", "is outside the template's directory and the allowed roots"},
            {"../../../../etc/passwd", "relative import '../../../../etc/passwd' in a template"},
            {"file:///etc/hostname", "URL allowlist refuses it: only http and https"},
            {"http://169.254.169.254/latest/meta-data",
             "URL allowlist refuses it: it is not under a prefix"},
            {"http://127.0.0.1:9/types.yaml", "URL allowlist refuses it"},
            {NULL, NULL}};
        for (size_t i = 0; imports[i][0]; i++) {
            char text[512];
            snprintf(text, sizeof(text),
                     "tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n"
                     "  - file: '%s'\ntopology_template: {node_templates: {}}\n",
                     imports[i][0]);
            post_template(&d, text, 400, imports[i][1]);
        }
    }
    /* JSON nested deeper than limits.json_max_depth */
    {
        char *json = malloc(4096), *q = json;
        struct fx_resp r;
        q += sprintf(q, "{\"template\":\"x\",\"parameters\":");
        for (int i = 0; i < 100; i++)
            q += sprintf(q, "{\"a\":");
        q += sprintf(q, "1");
        for (int i = 0; i < 101; i++)
            *q++ = '}';
        *q = '\0';
        assert_int_equal(fx_http(&d, "POST", "/deployments", NULL, json, &r), 400);
        assert_non_null(strstr(r.body, "nest"));
        fx_resp_free(&r);
        free(json);
    }
    daemon_alive(&d);
    fx_stop(&d);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", roots);
    assert_int_equal(system(cmd), 0);
}

/* ---- URL imports: a loopback HTTP server of type files --------------------------------- */

struct type_server {
    int fd, port;
    pthread_t thread;
    int hits;    /* requests answered (counted before the answer is written) */
    int held;    /* requests for /tosca/slow.yaml waiting for release */
    int release; /* set: they are answered */
};

static const char served_types[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                                   "node_types:\n  remote.nodes.Box:\n"
                                   "    derived_from: tosca.nodes.Root\n";

/* One request per connection: /tosca/types.yaml gets the types, /tosca/slow.yaml too
 * but only once the test sets release, anything else 404. */
static void *type_server_main(void *arg)
{
    struct type_server *ts = arg;
    int c;

    while ((c = accept(ts->fd, NULL, NULL)) >= 0) {
        char req[2048], path[256] = "", answer[1024];
        ssize_t n = read(c, req, sizeof(req) - 1);
        bool found;
        if (n > 0) {
            req[n] = '\0';
            sscanf(req, "GET %255s", path);
        }
        if (strcmp(path, "/tosca/slow.yaml") == 0) {
            __atomic_add_fetch(&ts->held, 1, __ATOMIC_SEQ_CST);
            for (int i = 0; i < 3000 && !__atomic_load_n(&ts->release, __ATOMIC_SEQ_CST); i++)
                usleep(10000);
        }
        found = strcmp(path, "/tosca/types.yaml") == 0 || strcmp(path, "/tosca/slow.yaml") == 0;
        snprintf(answer, sizeof(answer),
                 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 found ? "200 OK" : "404 Not Found", found ? strlen(served_types) : 0,
                 found ? served_types : "");
        __atomic_add_fetch(&ts->hits, 1, __ATOMIC_SEQ_CST); /* before the daemon can answer */
        if (write(c, answer, strlen(answer)) < 0)
            perror("type server");
        close(c);
    }
    return NULL;
}

static void type_server_start(struct type_server *ts)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);

    memset(ts, 0, sizeof(*ts));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ts->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ts->fd >= 0);
    assert_int_equal(bind(ts->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ts->fd, 16), 0);
    assert_int_equal(getsockname(ts->fd, (struct sockaddr *)&a, &len), 0);
    ts->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&ts->thread, NULL, type_server_main, ts), 0);
}

static void type_server_stop(struct type_server *ts)
{
    shutdown(ts->fd, SHUT_RDWR);
    close(ts->fd);
    pthread_join(ts->thread, NULL);
}

static int type_server_hits(struct type_server *ts)
{
    return __atomic_load_n(&ts->hits, __ATOMIC_SEQ_CST);
}

/* A template importing url with one node of type remote.nodes.Box. */
static char *url_import_template(const char *url)
{
    char *text;

    assert_true(asprintf(&text,
                         "tosca_definitions_version: tosca_simple_yaml_1_3\nimports:\n  - '%s'\n"
                         "topology_template: {node_templates: {b: {type: remote.nodes.Box}}}\n",
                         url) > 0);
    return text;
}

/* While the daemon fetches an import from a server that does not answer yet, it serves
 * other requests: the fetch runs off the event loop. The server holds the request until
 * the health check has been answered, then answers; the deployment is created. */
static void slow_fetch_off_the_loop(struct fx_daemon *d, struct type_server *ts)
{
    char url[128], *text, *json, *head, answer[64] = "";
    json_t *body;
    int fd, hits = type_server_hits(ts);
    struct timeval tv = {30, 0};
    ssize_t n;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tosca/slow.yaml", ts->port);
    text = url_import_template(url);
    body = json_pack("{ss}", "template", text);
    json = json_dumps(body, 0);
    assert_true(asprintf(&head,
                         "POST /deployments HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         strlen(json), json) > 0);
    fd = connect_to(d);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    for (int i = 0; i < 3000 && __atomic_load_n(&ts->held, __ATOMIC_SEQ_CST) == 0; i++)
        usleep(10000);
    assert_int_equal(__atomic_load_n(&ts->held, __ATOMIC_SEQ_CST), 1);
    daemon_alive(d); /* while the fetch waits */
    assert_int_equal(type_server_hits(ts), hits); /* still held: the loop did not wait on it */
    __atomic_store_n(&ts->release, 1, __ATOMIC_SEQ_CST);
    n = read(fd, answer, sizeof(answer) - 1);
    assert_true(n > 0);
    answer[n] = '\0';
    if (strncmp(answer, "HTTP/1.1 201", 12) != 0)
        fail_msg("the import fetched slowly: %s", answer);
    close(fd);
    free(head);
    free(json);
    json_decref(body);
    free(text);
}

/* imports.urls admits URLs under its prefixes only, however they are spelt; what it
 * admits is fetched once, then read from the cache in the data directory. */
static void test_url_imports(void **state)
{
    struct type_server ts;
    struct fx_daemon d;
    char env[128], timeout[] = "ORCHESTRATOR_IMPORT_FETCH_TIMEOUT=20s", url[256], *text;
    const char *extra[] = {env, timeout, NULL};
    struct fx_resp r;
    json_t *body;
    char *json;

    (void)state;
    type_server_start(&ts);
    snprintf(env, sizeof(env), "ORCHESTRATOR_IMPORT_URLS=http://127.0.0.1:%d/tosca/", ts.port);
    fx_start(&d, "orc-hostile", NULL, extra);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tosca/types.yaml", ts.port);
    text = url_import_template(url);
    body = json_pack("{ss}", "template", text);
    json = json_dumps(body, 0);
    for (int round = 0; round < 2; round++) {
        if (fx_http(&d, "POST", "/deployments", NULL, json, &r) != 201)
            fail_msg("an import under imports.urls (round %d): %ld %.300s", round, r.status,
                     r.body);
        fx_resp_free(&r);
        assert_int_equal(type_server_hits(&ts), 1); /* the second came from the cache */
    }
    free(json);
    json_decref(body);
    free(text);
    /* a path the server does not have */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/tosca/missing.yaml", ts.port);
    text = url_import_template(url);
    post_template(&d, text, 400, "HTTP status 404");
    free(text);
    assert_int_equal(type_server_hits(&ts), 2);
    /* spellings that leave the prefix never reach a server */
    {
        static const char *const tricks[] = {
            "http://127.0.0.1:%d/tosca/../admin/types.yaml",
            "http://127.0.0.1:%d/tosca/%%2e%%2e/admin/types.yaml",
            "http://127.0.0.1:%d/tosca/sub/..%%2Ftypes.yaml",
            "http://127.0.0.1:%d/toscafake/types.yaml",
            "http://127.0.0.1:%d@127.0.0.1:9/tosca/types.yaml",
            "http://127.0.0.1:%d.evil.test/tosca/types.yaml",
            "https://127.0.0.1:%d/tosca/types.yaml",
            "http://localhost:%d/tosca/types.yaml",
            "http://127.0.0.1:%d/tosca\\..\\types.yaml",
            NULL};
        for (size_t i = 0; tricks[i]; i++) {
            snprintf(url, sizeof(url), tricks[i], ts.port);
            text = url_import_template(url);
            post_template(&d, text, 400, "the URL allowlist refuses it");
            free(text);
        }
        assert_int_equal(type_server_hits(&ts), 2);
    }
    slow_fetch_off_the_loop(&d, &ts);
    daemon_alive(&d);
    fx_stop(&d);
    type_server_stop(&ts);
}

/* The daemon refuses to start on an imports.urls entry that is not a URL prefix. */
static void test_url_allowlist_config(void **state)
{
    static const char *const bad[][2] = {
        {"ftp://types.example.org/", "only http and https"},
        {"https://u@types.example.org/", "user info"},
        {"https://types.example.org/t?x=1", "no query or fragment"},
        {"https://types.example.org/t/../", "dot segment"},
        {NULL, NULL}};
    char dir[] = "/tmp/orc-urls-XXXXXX", cmd[64];

    (void)state;
    assert_non_null(mkdtemp(dir));
    for (size_t i = 0; bad[i][0]; i++) {
        setenv("ORCHESTRATOR_IMPORT_URLS", bad[i][0], 1);
        free(fx_expect_no_start(dir, "", bad[i][1]));
    }
    unsetenv("ORCHESTRATOR_IMPORT_URLS");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_sizes_and_headers(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char *big, hdr[64], *answer, *url;
    const char *headers[] = {NULL, NULL};

    (void)state;
    fx_start(&d, "orc-hostile", NULL, NULL);
    /* a body over limits.max_body_bytes (4 MiB) */
    big = malloc(5u << 20);
    memset(big, 'a', (5u << 20) - 1);
    big[(5u << 20) - 1] = '\0';
    memcpy(big, "{\"template\":\"", 13);
    assert_int_equal(fx_http(&d, "POST", "/deployments", NULL, big, &r), 413);
    fx_resp_free(&r);
    daemon_alive(&d);
    /* a header block over limits.max_header_bytes (16 KiB) */
    big[20000] = '\0';
    {
        char *line = malloc(20100);
        snprintf(line, 20100, "X-Filler: %s", big + 13);
        headers[0] = line;
        assert_int_equal(fx_http(&d, "GET", "/deployments", headers, NULL, &r), 431);
        fx_resp_free(&r);
        free(line);
    }
    /* a URL over the same limit (sent raw: the fixture's URLs are shorter) */
    url = malloc(20200);
    snprintf(url, 20200, "GET /deployments/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
             big + 13);
    answer = raw_exchange(&d, url);
    if (strncmp(answer, "HTTP/1.1 431", 12) != 0)
        fail_msg("a 20 KB URL: %.100s", answer);
    free(answer);
    free(url);
    free(big);
    daemon_alive(&d);
    /* X-Request-Id that is not a token is not echoed; CR LF cannot split a response */
    snprintf(hdr, sizeof(hdr), "X-Request-Id: a\"b<script>");
    headers[0] = hdr;
    assert_int_equal(fx_http(&d, "GET", "/healthz", headers, NULL, &r), 200);
    fx_resp_free(&r);
    answer = raw_exchange(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\n"
                              "X-Request-Id: abc\rSet-Cookie: evil=1\r\nConnection: close\r\n\r\n");
    assert_null(strcasestr(answer, "set-cookie"));
    assert_null(strstr(answer, "abc\r"));
    free(answer);
    /* a Host that is not a host name does not reach the links */
    answer = raw_exchange(&d, "POST /deployments HTTP/1.1\r\nHost: evil.example\"><x\r\n"
                              "Content-Type: application/json\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\n{}");
    assert_non_null(strstr(answer, "HTTP/1.1 400"));
    assert_null(strstr(answer, "evil.example"));
    free(answer);
    daemon_alive(&d);
    fx_stop(&d);
}

/* Slow-loris: connections that send their head a byte at a time, and one that never
 * finishes it, are closed after limits.request_timeout while others are served. */
static void test_slow_loris(void **state)
{
    static const char *const env[] = {"ORCHESTRATOR_REQUEST_TIMEOUT=1500ms", NULL};
    struct fx_daemon d;
    int fds[20];
    char c;
    double t0;

    (void)state;
    fx_start(&d, "orc-hostile", NULL, env);
    for (int i = 0; i < 20; i++) {
        fds[i] = connect_to(&d);
        assert_true(write(fds[i], "GET /deployments HTTP/1.1\r\nHost: x\r\nX-Slow: ", 44) == 44);
    }
    t0 = fx_now_ms();
    for (int k = 0; k < 10; k++) { /* a byte now and then, and others are served meanwhile */
        for (int i = 0; i < 20; i++)
            if (write(fds[i], "a", 1) != 1)
                break;
        daemon_alive(&d);
        fx_sleep_ms(200);
    }
    /* by now every slow connection was closed by the server */
    for (int i = 0; i < 20; i++) {
        struct timeval tv = {3, 0};
        setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ssize_t got;
        do
            got = read(fds[i], &c, 1);
        while (got > 0);
        if (got < 0)
            fail_msg("slow connection %d still open after %.0f ms", i, fx_now_ms() - t0);
        close(fds[i]);
    }
    daemon_alive(&d);
    fx_stop(&d);
}

/* Shell metacharacters in inputs that reach a workload's environment and its command's
 * arguments: nothing of them runs. */
static void test_command_injection(void **state)
{
    struct fx_daemon d;
    char dir[] = "/tmp/orc-inject-XXXXXX", *tmpl, *body, uuid[64], pwned[128], cmd[160];
    struct stat st;
    json_t *j, *dep;

    (void)state;
    assert_non_null(mkdtemp(dir));
    assert_true(asprintf(&tmpl,
                         "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                         "topology_template:\n"
                         "  inputs:\n"
                         "    msg: {type: string}\n"
                         "    tag: {type: string}\n"
                         "  node_templates:\n"
                         "    box:\n"
                         "      type: orc.nodes.GPUCompute\n"
                         "      capabilities:\n"
                         "        host:\n"
                         "          properties: {num_cpus: 1, mem_size: 64 MB}\n"
                         "    job:\n"
                         "      type: orc.nodes.Job\n"
                         "      properties:\n"
                         "        command: printf '%%s\\n' \"$MSG\" > %s/seen\n"
                         "        environment:\n"
                         "          MSG: {get_input: msg}\n"
                         "          TAG: {get_input: tag}\n"
                         "      requirements:\n"
                         "        - host: box\n",
                         dir) > 0);
    snprintf(pwned, sizeof(pwned), "%s/pwned", dir);
    j = json_pack("{ss s{ssss}}", "template", tmpl, "parameters", "msg",
                  "$(touch /tmp/orc-inject-never) `touch /tmp/orc-inject-never`",
                  "tag", "'; touch /tmp/orc-inject-never; echo '");
    body = json_dumps(j, 0);
    json_decref(j);
    fx_start(&d, "orc-hostile", NULL, NULL);
    {
        struct fx_resp r;
        assert_int_equal(fx_http(&d, "POST", "/deployments", NULL, body, &r), 201);
        snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(r.json, "uuid")));
        fx_resp_free(&r);
    }
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000);
    json_decref(dep);
    /* the job printed the value as data; nothing in it ran */
    {
        char seen[160], *text;
        snprintf(seen, sizeof(seen), "%s/seen", dir);
        text = fx_read_file(seen);
        if (text == NULL || strstr(text, "$(touch /tmp/orc-inject-never)") == NULL)
            fail_msg("the job did not see the value as it was: %s", text ? text : "(none)");
        free(text);
    }
    assert_int_not_equal(stat("/tmp/orc-inject-never", &st), 0);
    assert_int_not_equal(stat(pwned, &st), 0);
    fx_undeploy(&d, uuid, 20000);
    daemon_alive(&d);
    fx_stop(&d);
    free(body);
    free(tmpl);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_templates, fx_teardown),
        cmocka_unit_test_teardown(test_url_imports, fx_teardown),
        cmocka_unit_test(test_url_allowlist_config),
        cmocka_unit_test_teardown(test_sizes_and_headers, fx_teardown),
        cmocka_unit_test_teardown(test_slow_loris, fx_teardown),
        cmocka_unit_test_teardown(test_command_injection, fx_teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* the server closes slow connections while we write */
    unlink("/tmp/orc-inject-never");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
