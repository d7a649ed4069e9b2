/*
 * Hostile input against the real daemon (docs/security.md): a billion-laughs template, a
 * template nested too deep, JSON nested too deep, a body, a header block and a URL over
 * the limits, slow-loris clients, header injection through X-Request-Id and Host, and
 * shell metacharacters in template inputs that reach a workload's environment and
 * arguments on the local site. Each gets a specific status (or none of its effect), and
 * the daemon answers a health check afterwards.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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
            {"file:///etc/hostname", "is neither in the import map nor in the URL allowlist"},
            {"http://169.254.169.254/latest/meta-data",
             "is neither in the import map nor in the URL allowlist"},
            {"http://127.0.0.1:9/types.yaml", "is neither in the import map nor in the URL"},
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
        cmocka_unit_test_teardown(test_sizes_and_headers, fx_teardown),
        cmocka_unit_test_teardown(test_slow_loris, fx_teardown),
        cmocka_unit_test_teardown(test_command_injection, fx_teardown),
    };

    signal(SIGPIPE, SIG_IGN); /* the server closes slow connections while we write */
    unlink("/tmp/orc-inject-never");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
