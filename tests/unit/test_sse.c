/*
 * Live event streams of the real daemon: GET /deployments/{id}/events with
 * Accept: text/event-stream over real HTTP (libcurl and raw sockets), on sim
 * sites with latency so that deployments take a while. A stream read from
 * the start to CREATE_COMPLETE holds every event of the JSON list, in order,
 * once, and closes itself (forty of them at once, too); Last-Event-ID and
 * ?after= resume with exactly the rest; a finished deployment gets its
 * backlog and the end; 404, 400 and the JSON list without the header; a
 * large backlog goes out under backpressure; clients that disconnect leave
 * nothing behind; a client that does not read is cut off; the stream limit
 * answers 503 (and orchctl watch then polls); SIGTERM with a hundred streams
 * open ends each cleanly and exits 0 within the deadline, after a
 * heartbeat; orchctl watch exits 0 on success and 1 on failure, draws its
 * progress on a terminal, and resumes with Last-Event-ID across a restart of
 * the daemon. The deployments feed (GET /deployments/changes) sends a deployment each time
 * it changes, in order, and its deletion. Run under SANITIZE=1 the daemons' leak checks make
 * fx_stop fail.
 */
#define _GNU_SOURCE /* posix_openpt */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"

/* Every operation takes 150..250 ms: a deployment of gpu-serving ~0.6 s. */
static const char paced_site[] =
    "sites:\n"
    "  - name: paced\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/paced.json\", latency: {default: {fixed_ms: 150, "
    "jitter_ms: 100}}}\n";

/* Provisioning takes a minute: deployments stay in progress. */
static const char slow_site[] =
    "sites:\n"
    "  - name: slow\n"
    "    driver: sim\n"
    "    config: {latency: {default: 50, provision: 60000}}\n";

/* Room for hundreds of instances, no latency. */
static const char big_site[] = "sites:\n"
                               "  - name: big\n"
                               "    driver: sim\n"
                               "    config: {capacity: {cpus: 4096, mem: 8192 GiB, gpus: {}}}\n";

/* Every provision fails. */
static const char failing_site[] =
    "sites:\n"
    "  - name: failing\n"
    "    driver: sim\n"
    "    config: {latency: {default: 100}, failures: {provision: 1.0}}\n";

/* A fast site without GPUs first, a slow one with them. */
static const char two_sites[] =
    "sites:\n"
    "  - name: fast\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {latency: {default: 100}, capacity: {cpus: 64, mem: 256 GiB, gpus: {}}}\n"
    "  - name: gpus\n"
    "    driver: sim\n"
    "    config: {latency: {default: 50, provision: 60000}}\n";

/* 400 instances: a backlog of about 1,200 events, 300 KiB. */
static const char many_instances[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                                     "topology_template:\n"
                                     "  node_templates:\n"
                                     "    worker:\n"
                                     "      type: tosca.nodes.Compute\n"
                                     "      capabilities:\n"
                                     "        scalable:\n"
                                     "          properties: {count: 400}\n"
                                     "        host:\n"
                                     "          properties: {num_cpus: 1, mem_size: 1 GB}\n";

static char *serving;
static pid_t child_pid; /* an orchctl a failed assertion may leave running */

static int setup(void **state)
{
    (void)state;
    serving = fx_example("examples/gpu-serving.yaml");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    free(serving);
    fx_log_clear();
    curl_global_cleanup();
    return 0;
}

static int kill_all(void **state)
{
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
        child_pid = 0;
    }
    return kill_leftover(state);
}

/* ---- an SSE client -------------------------------------------------------------------- */

struct sse_event {
    long long id;
    char type[64];
    char *data;
};

struct sse {
    char *raw; /* everything received */
    size_t len;
    size_t parsed; /* bytes of raw read into events */
    struct sse_event *ev;
    size_t n;
    int retry; /* the retry: field, -1: none */
    size_t comments;
    size_t stop_after; /* the client hangs up after this many events; 0: never */
    const char *until; /* the client hangs up once this text came; NULL: never */
    long status;
    char ctype[128];
    CURLcode rc; /* CURLE_OK: the server ended the stream */
    double opened_ms, closed_ms;
    CURL *curl;
    struct curl_slist *headers;
};

static void sse_block(struct sse *s, char *block)
{
    struct sse_event e = {.id = -1};

    for (char *line = strtok(block, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == ':')
            s->comments++;
        else if (strncmp(line, "id: ", 4) == 0)
            e.id = atoll(line + 4);
        else if (strncmp(line, "event: ", 7) == 0)
            snprintf(e.type, sizeof(e.type), "%s", line + 7);
        else if (strncmp(line, "data: ", 6) == 0)
            e.data = fx_strdup(line + 6);
        else if (strncmp(line, "retry: ", 7) == 0)
            s->retry = atoi(line + 7);
        else
            fail_msg("a line that is no SSE field: '%s'", line);
    }
    if (e.data == NULL) {
        assert_int_equal(e.id, -1); /* an id without data is no event of ours */
        return;
    }
    s->ev = realloc(s->ev, (s->n + 1) * sizeof(*s->ev));
    assert_non_null(s->ev);
    s->ev[s->n++] = e;
}

static void sse_parse(struct sse *s)
{
    char *end;

    while ((end = strstr(s->raw + s->parsed, "\n\n")) != NULL) {
        size_t n = (size_t)(end - (s->raw + s->parsed));
        char *block = strndup(s->raw + s->parsed, n);
        assert_non_null(block);
        sse_block(s, block);
        free(block);
        s->parsed += n + 2;
    }
}

static size_t sse_on_bytes(char *p, size_t size, size_t n, void *ud)
{
    struct sse *s = ud;

    s->raw = realloc(s->raw, s->len + size * n + 1);
    assert_non_null(s->raw);
    memcpy(s->raw + s->len, p, size * n);
    s->len += size * n;
    s->raw[s->len] = '\0';
    sse_parse(s);
    if (s->until && strstr(s->raw, s->until))
        return 0;
    return s->stop_after && s->n >= s->stop_after ? 0 : size * n;
}

/* Prepares s to GET path as a stream, with Last-Event-ID last_id (NULL: none). */
static void sse_prepare(struct fx_daemon *d, struct sse *s, const char *path, const char *last_id,
                        size_t stop_after, long timeout_s)
{
    char url[512], hdr[96];

    memset(s, 0, sizeof(*s));
    s->retry = -1;
    s->stop_after = stop_after;
    s->curl = curl_easy_init();
    assert_non_null(s->curl);
    snprintf(url, sizeof(url), "%s%s", d->url, path);
    s->headers = curl_slist_append(NULL, "Accept: text/event-stream");
    if (last_id) {
        snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s", last_id);
        s->headers = curl_slist_append(s->headers, hdr);
    }
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, sse_on_bytes);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, timeout_s);
    s->opened_ms = fx_now_ms();
}

static void sse_done(struct sse *s, CURLcode rc)
{
    char *type = NULL;

    s->rc = rc;
    s->closed_ms = fx_now_ms();
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &s->status);
    curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(s->ctype, sizeof(s->ctype), "%s", type ? type : "");
    curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->headers);
    s->curl = NULL;
    s->headers = NULL;
}

static void sse_free(struct sse *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->ev[i].data);
    free(s->ev);
    free(s->raw);
    memset(s, 0, sizeof(*s));
}

static void events_path(char *out, size_t size, const char *uuid, const char *query)
{
    snprintf(out, size, "/deployments/%s/events%s", uuid, query ? query : "");
}

/* One stream, read until the server ends it, the client hangs up after
 * stop_after events, or timeout_s. */
static void sse_get(struct fx_daemon *d, const char *uuid, const char *query, const char *last_id,
                    size_t stop_after, long timeout_s, struct sse *s)
{
    char path[256];

    events_path(path, sizeof(path), uuid, query);
    sse_prepare(d, s, path, last_id, stop_after, timeout_s);
    sse_done(s, curl_easy_perform(s->curl));
}

/* n streams at once (libcurl multi), each as sse_get. */
static void sse_many(struct fx_daemon *d, const char *uuid, size_t n, size_t stop_after,
                     long timeout_s, struct sse *s)
{
    CURLM *m = curl_multi_init();
    char path[256];
    int running = 1;
    CURLMsg *msg;
    int left;

    events_path(path, sizeof(path), uuid, NULL);
    for (size_t i = 0; i < n; i++) {
        sse_prepare(d, &s[i], path, NULL, stop_after, timeout_s);
        curl_multi_add_handle(m, s[i].curl);
    }
    while (running) {
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            CURL *easy = msg->easy_handle; /* msg goes with the handle */
            CURLcode rc = msg->data.result;
            bool done = msg->msg == CURLMSG_DONE;
            for (size_t i = 0; done && i < n; i++) {
                if (s[i].curl == easy) {
                    curl_multi_remove_handle(m, easy);
                    sse_done(&s[i], rc);
                    break;
                }
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    curl_multi_cleanup(m);
}

/* The stream was answered as one and ended by the server. */
static void assert_ended_stream(const struct sse *s)
{
    if (s->rc != CURLE_OK)
        fail_msg("the stream did not end by itself: %s (got %zu events)", curl_easy_strerror(s->rc),
                 s->n);
    assert_int_equal(s->status, 200);
    assert_string_equal(s->ctype, "text/event-stream");
    assert_int_equal(s->retry, 2000);
    assert_int_equal(s->parsed, s->len); /* nothing after the last event */
}

/* Every event of the JSON list after `after` with an id up to the stream's
 * last is in the stream, in order, once, as the same object: SSE id and
 * event name it. Returns the number compared. */
static size_t assert_same_as_list(struct fx_daemon *d, const char *uuid, long long after,
                                  const struct sse *s)
{
    char path[256];
    json_t *list, *e;
    size_t i, k = 0;
    long long last = s->n ? s->ev[s->n - 1].id : after;

    snprintf(path, sizeof(path), "/deployments/%s/events?after=%lld", uuid, after);
    list = fx_get_json(d, path);
    json_array_foreach(list, i, e)
    {
        long long id = (long long)json_integer_value(json_object_get(e, "id"));
        json_error_t je;
        json_t *got;
        if (id > last)
            break;
        if (k >= s->n)
            fail_msg("event %lld of the list is missing from the stream", id);
        assert_int_equal(s->ev[k].id, id);
        assert_string_equal(s->ev[k].type, json_string_value(json_object_get(e, "type")));
        got = json_loads(s->ev[k].data, 0, &je);
        assert_non_null(got);
        if (!json_equal(got, e))
            fail_msg("event %lld: the stream's data differs from the list's", id);
        json_decref(got);
        k++;
    }
    assert_int_equal(k, s->n); /* nothing the list lacks, no repeat */
    json_decref(list);
    return k;
}

/* The last event says the deployment is in status. */
static void assert_last_status(const struct sse *s, const char *status)
{
    json_error_t je;
    json_t *last;

    assert_true(s->n > 0);
    last = json_loads(s->ev[s->n - 1].data, 0, &je);
    assert_non_null(last);
    assert_string_equal(json_string_value(json_object_get(json_object_get(last, "data"), "status")),
                        status);
    json_decref(last);
}

/* ---- raw sockets, metrics, orchctl ----------------------------------------------------------- */

static int port_of(const struct fx_daemon *d)
{
    return atoi(strrchr(d->url, ':') + 1);
}

/* A connection that asks for the stream of uuid (rcvbuf > 0: that small a
 * receive buffer, set before connecting). */
static int raw_stream(const struct fx_daemon *d, const char *uuid, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(d))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char req[256];
    int n;

    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req),
                 "GET /deployments/%s/events HTTP/1.1\r\nHost: t\r\n"
                 "Accept: text/event-stream\r\n\r\n",
                 uuid);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* Reads until needle arrived (NULL: until EOF or a reset) or timeout_ms;
 * returns what came (caller frees), *closed when the connection ended. */
static char *raw_read(int fd, const char *needle, int timeout_ms, bool *closed)
{
    double end = fx_now_ms() + timeout_ms;
    char *buf = calloc(1, 1), chunk[65536];
    size_t len = 0;

    assert_non_null(buf);
    *closed = false;
    while (fx_now_ms() < end && !(needle && strstr(buf, needle))) {
        struct pollfd p = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 50) <= 0)
            continue;
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
            *closed = true;
            break;
        }
        buf = realloc(buf, len + (size_t)n + 1);
        assert_non_null(buf);
        memcpy(buf + len, chunk, (size_t)n);
        len += (size_t)n;
        buf[len] = '\0';
    }
    return buf;
}

/* A value of /metrics ("orchestrator_http_streams_open"); -1 when absent. */
static long long metric(struct fx_daemon *d, const char *name)
{
    struct fx_resp r;
    char key[128];
    const char *at;
    long long v = -1;

    assert_int_equal(fx_get(d, "/metrics", &r), 200);
    snprintf(key, sizeof(key), "\n%s ", name);
    at = strstr(r.body, key);
    if (at)
        v = atoll(at + strlen(key));
    fx_resp_free(&r);
    return v;
}

static void wait_metric(struct fx_daemon *d, const char *name, long long want, int timeout_ms)
{
    double end = fx_now_ms() + timeout_ms;
    long long v;

    while ((v = metric(d, name)) != want && fx_now_ms() < end)
        fx_sleep_ms(50);
    if (v != want) {
        fx_dump_log(d);
        fail_msg("%s is %lld after %d ms, not %lld", name, v, timeout_ms, want);
    }
}

/* Starts orchctl with ORCHESTRATOR_URL=url and args; stdout and stderr go
 * to out (a file), or to the terminal tty when tty >= 0. */
static pid_t orchctl_start(const char *url, const char *const *args, const char *out, int tty)
{
    const char *argv[16] = {"orchctl"};
    size_t n = 1;
    pid_t pid;

    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = tty >= 0 ? tty : open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (tty >= 0)
            setsid();
        setenv("ORCHESTRATOR_URL", url, 1);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(env_or("ORCHCTL", "build/release/bin/orchctl"), (char *const *)argv);
        _exit(127);
    }
    child_pid = pid;
    return pid;
}

/* Its exit status; fails the test if it runs longer than timeout_ms. */
static int orchctl_wait(pid_t pid, int timeout_ms)
{
    double end = fx_now_ms() + timeout_ms;
    int status;

    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (fx_now_ms() > end)
            fail_msg("orchctl still runs after %d ms", timeout_ms);
        fx_sleep_ms(20);
    }
    child_pid = 0;
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Runs orchctl to its end; its output (caller frees) in *out. */
static int orchctl_run(const struct fx_daemon *d, const char *const *args, char **out,
                       int timeout_ms)
{
    char path[128];
    int rc;

    snprintf(path, sizeof(path), "%s/orchctl.out", d->dir);
    rc = orchctl_wait(orchctl_start(d->url, args, path, -1), timeout_ms);
    *out = fx_read_file(path);
    assert_non_null(*out);
    return rc;
}

/* The JSON events orchctl watch --json printed, one per line (caller
 * decrefs); other lines (its own messages) are skipped. */
static json_t *json_lines(const char *text)
{
    json_t *arr = json_array();
    const char *p = text;

    while (*p) {
        size_t n = strcspn(p, "\n");
        json_error_t je;
        json_t *j = p[0] == '{' ? json_loadb(p, n, 0, &je) : NULL;
        if (j)
            json_array_append_new(arr, j);
        p += n + (p[n] == '\n');
    }
    return arr;
}

/* orchctl's line for an event: time, type in 22 columns, message. */
static void assert_line(const char *out, const char *type, const char *message)
{
    char line[512];

    snprintf(line, sizeof(line), "  %-22s %s\n", type, message);
    if (strstr(out, line) == NULL)
        fail_msg("no line '%s' in:\n%s", line, out);
}

/* ---- the tests -------------------------------------------------------------------------------- */

static void streams_follow_a_deployment_to_the_end(void **state)
{
    enum { N = 40 };
    static struct sse many[N];
    struct fx_daemon d;
    struct sse one;
    char uuid[64];
    json_t *dep;

    (void)state;
    fx_start(&d, "test-sse-follow", paced_site, NULL);
    dep = fx_create(&d, serving, NULL, uuid);
    assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_IN_PROGRESS");
    json_decref(dep);
    sse_get(&d, uuid, NULL, NULL, 0, 60, &one);
    assert_ended_stream(&one);
    assert_last_status(&one, "CREATE_COMPLETE");
    assert_true(one.closed_ms - one.opened_ms > 200); /* it waited for the live events */
    assert_true(assert_same_as_list(&d, uuid, 0, &one) >= 8);
    assert_string_equal(one.ev[0].type, "deployment.created");
    sse_free(&one);

    /* forty at once, on a second deployment */
    json_decref(fx_create(&d, serving, NULL, uuid));
    sse_many(&d, uuid, N, 0, 60, many);
    for (size_t i = 0; i < N; i++) {
        assert_ended_stream(&many[i]);
        assert_last_status(&many[i], "CREATE_COMPLETE");
        assert_same_as_list(&d, uuid, 0, &many[i]);
        sse_free(&many[i]);
    }
    wait_metric(&d, "orchestrator_http_streams_open", 0, 5000);
    assert_int_equal(metric(&d, "orchestrator_http_streams_total"), N + 1);
    assert_int_equal(metric(&d, "orchestrator_http_streams_cut_total"), 0);
    assert_int_equal(metric(&d, "orchestrator_http_streams_lost_total"), 0);
    fx_stop(&d);
}

static void resume_gets_exactly_the_rest(void **state)
{
    struct fx_daemon d;
    struct sse first, rest, s;
    char uuid[64], id[32];
    long long k, last;
    double t0;

    (void)state;
    fx_start(&d, "test-sse-resume", paced_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    /* hang up after three events, resume from the third */
    sse_get(&d, uuid, NULL, NULL, 3, 60, &first);
    assert_int_equal(first.rc, CURLE_WRITE_ERROR);
    assert_int_equal(first.n, 3);
    snprintf(id, sizeof(id), "%lld", first.ev[2].id);
    sse_get(&d, uuid, NULL, id, 0, 60, &rest);
    assert_ended_stream(&rest);
    assert_last_status(&rest, "CREATE_COMPLETE");
    assert_true(rest.ev[0].id > first.ev[2].id);
    assert_same_as_list(&d, uuid, 0, &first);
    assert_same_as_list(&d, uuid, first.ev[2].id, &rest);
    last = rest.ev[rest.n - 1].id;
    k = rest.ev[rest.n / 2].id;
    sse_free(&first);
    sse_free(&rest);

    /* the deployment is final: the backlog, then the end at once */
    t0 = fx_now_ms();
    sse_get(&d, uuid, NULL, NULL, 0, 10, &s);
    assert_ended_stream(&s);
    assert_true(fx_now_ms() - t0 < 2000);
    assert_int_equal(s.ev[s.n - 1].id, last);
    assert_same_as_list(&d, uuid, 0, &s);
    sse_free(&s);
    snprintf(id, sizeof(id), "%lld", k);
    sse_get(&d, uuid, NULL, id, 0, 10, &s); /* Last-Event-ID */
    assert_ended_stream(&s);
    assert_true(s.ev[0].id > k);
    assert_same_as_list(&d, uuid, k, &s);
    sse_free(&s);
    sse_get(&d, uuid, "?after=0", id, 0, 10, &s); /* the header wins over ?after= */
    assert_ended_stream(&s);
    assert_same_as_list(&d, uuid, k, &s);
    sse_free(&s);
    snprintf(id, sizeof(id), "?after=%lld", k);
    sse_get(&d, uuid, id, NULL, 0, 10, &s); /* ?after= */
    assert_ended_stream(&s);
    assert_same_as_list(&d, uuid, k, &s);
    sse_free(&s);
    snprintf(id, sizeof(id), "%lld", last);
    sse_get(&d, uuid, NULL, id, 0, 10, &s); /* nothing left: only the end */
    assert_ended_stream(&s);
    assert_int_equal(s.n, 0);
    sse_free(&s);
    fx_stop(&d);
}

static void errors_and_the_json_list(void **state)
{
    static const char *const sse_accept[] = {"Accept: text/event-stream", NULL};
    static const char *const bad_id[] = {"Accept: text/event-stream", "Last-Event-ID: 12x", NULL};
    static const char *const q0[] = {"Accept: application/json, text/event-stream;q=0", NULL};
    static const char *const params[] = {"Accept: text/html;q=0.9, TEXT/Event-Stream ; q=0.5",
                                         NULL};
    struct fx_daemon d;
    struct fx_resp r;
    struct sse s;
    char uuid[64], path[256];

    (void)state;
    fx_start(&d, "test-sse-errors", paced_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000));
    fx_http(&d, "GET", "/deployments/01a23af1-0000-7000-8000-000000000000/events", sse_accept,
            NULL, &r);
    fx_assert_error(&r, 404, "01a23af1-0000-7000-8000-000000000000 doesn't exist");
    fx_resp_free(&r);
    fx_http(&d, "GET", "/deployments/not-a-uuid/events", sse_accept, NULL, &r);
    fx_assert_error(&r, 404, "doesn't exist");
    fx_resp_free(&r);
    events_path(path, sizeof(path), uuid, NULL);
    fx_http(&d, "GET", path, bad_id, NULL, &r);
    fx_assert_error(&r, 400, "Last-Event-ID must be an event id (a number), not '12x'");
    fx_resp_free(&r);
    events_path(path, sizeof(path), uuid, "?after=-3");
    fx_http(&d, "GET", path, NULL, NULL, &r);
    fx_assert_error(&r, 400, "after must be an event id (a number), not '-3'");
    fx_resp_free(&r);
    /* without the header, and with q=0, the JSON list as before */
    events_path(path, sizeof(path), uuid, NULL);
    assert_int_equal(fx_http(&d, "GET", path, q0, NULL, &r), 200);
    assert_string_equal(r.ctype, "application/json");
    assert_true(json_is_array(r.json) && json_array_size(r.json) >= 8);
    fx_resp_free(&r);
    events_path(path, sizeof(path), uuid, "?after=3");
    assert_int_equal(fx_get(&d, path, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r.json, 0), "id")), 4);
    fx_resp_free(&r);
    /* media range parameters, any case */
    events_path(path, sizeof(path), uuid, NULL);
    assert_int_equal(fx_http(&d, "GET", path, params, NULL, &r), 200);
    assert_string_equal(r.ctype, "text/event-stream");
    assert_non_null(strstr(r.body, "event: deployment.created\n"));
    fx_resp_free(&r);
    /* HEAD: the headers of a stream, no body */
    assert_int_equal(fx_http(&d, "HEAD", path, sse_accept, NULL, &r), 200);
    assert_string_equal(r.ctype, "text/event-stream");
    assert_int_equal(r.len, 0);
    fx_resp_free(&r);
    /* the daemon keeps serving streams */
    sse_get(&d, uuid, NULL, NULL, 0, 10, &s);
    assert_ended_stream(&s);
    sse_free(&s);
    fx_stop(&d);
}

static void large_backlog_under_backpressure(void **state)
{
    struct fx_daemon d;
    struct sse s;
    char uuid[64];

    (void)state;
    fx_start(&d, "test-sse-backlog", big_site, NULL);
    json_decref(fx_create(&d, many_instances, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 60000));
    sse_get(&d, uuid, NULL, NULL, 0, 30, &s);
    assert_ended_stream(&s);
    assert_true(s.n > 1200 && s.len > 256 * 1024); /* pages of 200, over the high water */
    assert_same_as_list(&d, uuid, 0, &s);
    sse_free(&s);
    fx_stop(&d);
}

static void disconnecting_clients_leave_nothing_behind(void **state)
{
    enum { N = 20 };
    static struct sse many[N];
    struct fx_daemon d;
    struct sse s;
    char uuid[64];

    (void)state;
    fx_start(&d, "test-sse-gone", slow_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    sse_many(&d, uuid, N, 1, 30, many); /* each hangs up after one event */
    for (size_t i = 0; i < N; i++) {
        if (many[i].rc != CURLE_WRITE_ERROR)
            fail_msg("stream %zu: %s, %ld, %zu events: %s", i, curl_easy_strerror(many[i].rc),
                     many[i].status, many[i].n, many[i].raw ? many[i].raw : "");
        sse_free(&many[i]);
    }
    /* the daemon notices within its 1 s sweep, not at the next event */
    wait_metric(&d, "orchestrator_http_streams_open", 0, 5000);
    assert_int_equal(metric(&d, "orchestrator_http_streams_lost_total"), N);
    assert_int_equal(metric(&d, "orchestrator_http_streams_cut_total"), 0);
    sse_get(&d, uuid, NULL, NULL, 2, 10, &s);
    assert_true(s.n >= 2); /* the backlog may come in one piece */
    sse_free(&s);
    wait_metric(&d, "orchestrator_http_streams_open", 0, 5000);
    fx_stop(&d); /* exit 0: under the sanitizers, no leak */
}

static void a_client_that_does_not_read_is_cut_off(void **state)
{
    static const char *const env[] = {"ORCHESTRATOR_REQUEST_TIMEOUT=1s", NULL};
    struct fx_daemon d;
    char uuid[64];
    bool closed;
    char *got;
    int fd;

    (void)state;
    fx_start(&d, "test-sse-stall", big_site, env);
    json_decref(fx_create(&d, many_instances, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 60000));
    fd = raw_stream(&d, uuid, 4096); /* 300 KiB of backlog, never read */
    wait_metric(&d, "orchestrator_http_streams_total", 1, 5000);
    wait_metric(&d, "orchestrator_http_streams_cut_total", 1, 10000);
    wait_metric(&d, "orchestrator_http_streams_open", 0, 5000);
    got = raw_read(fd, NULL, 5000, &closed);
    assert_true(closed);
    assert_null(strstr(got, "\r\n0\r\n\r\n")); /* it was cut, not ended */
    free(got);
    close(fd);
    got = fx_read_file(d.log);
    assert_non_null(strstr(got, "made no progress"));
    free(got);
    fx_stop(&d);
}

static void the_stream_limit_answers_503_and_watch_polls(void **state)
{
    static int fds[1024];
    struct fx_daemon d;
    char slow[64], fast[64], *out;
    long long limit;
    bool closed;
    char *got;
    json_t *list;

    (void)state;
    fx_start(&d, "test-sse-limit", two_sites, NULL);
    json_decref(fx_create(&d, serving, "{\"parameters\":{\"num_gpus\":1}}", slow));
    limit = metric(&d, "orchestrator_http_streams_limit");
    assert_true(limit > 0 && limit < 1000);
    for (long long i = 0; i < limit; i++) {
        fds[i] = raw_stream(&d, slow, 0);
        got = raw_read(fds[i], "event: deployment.created", 5000, &closed);
        assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
        free(got);
    }
    assert_int_equal(metric(&d, "orchestrator_http_streams_open"), limit);
    fds[limit] = raw_stream(&d, slow, 0);
    got = raw_read(fds[limit], NULL, 5000, &closed);
    assert_non_null(strstr(got, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(got, "too many open streams"));
    free(got);
    close(fds[limit]);
    assert_int_equal(metric(&d, "orchestrator_http_streams_rejected_total"), 1);
    /* orchctl watch falls back to polling the JSON list */
    json_decref(fx_create(&d, serving, NULL, fast));
    assert_int_equal(orchctl_run(&d, (const char *const[]){"watch", fast, NULL}, &out, 30000), 0);
    assert_non_null(strstr(out, "no event stream (503"));
    assert_line(out, "deployment.status", "status CREATE_COMPLETE");
    assert_non_null(strstr(out, ": CREATE_COMPLETE\n"));
    list = fx_events(&d, fast, NULL);
    for (size_t i = 0; i < json_array_size(list); i++) /* every event, once */
        assert_non_null(strstr(out, json_string_value(json_object_get(json_array_get(list, i),
                                                                       "message"))));
    json_decref(list);
    free(out);
    for (long long i = 0; i < limit; i++)
        close(fds[i]);
    wait_metric(&d, "orchestrator_http_streams_open", 0, 5000);
    fx_stop(&d);
}

static void sigterm_ends_open_streams_cleanly(void **state)
{
    enum { N = 100 };
    static int fds[N];
    struct fx_daemon d;
    char uuid[64];
    bool closed;
    char *got;
    double t0, took;

    (void)state;
    fx_start(&d, "test-sse-term", slow_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    for (int i = 0; i < N; i++) {
        fds[i] = raw_stream(&d, uuid, 0);
        got = raw_read(fds[i], "event: attempt.started", 5000, &closed);
        assert_non_null(strstr(got, "retry: 2000\n\n"));
        free(got);
    }
    assert_int_equal(metric(&d, "orchestrator_http_streams_open"), N);
    /* a comment every 15 s keeps them open */
    got = raw_read(fds[0], ": heartbeat\n\n", 17000, &closed);
    assert_non_null(strstr(got, ": heartbeat\n\n"));
    free(got);
    t0 = fx_now_ms();
    fx_stop(&d); /* SIGTERM; exit status 0 */
    took = fx_now_ms() - t0;
    fprintf(stderr, "SIGTERM with %d streams open: exited 0 after %.0f ms\n", N, took);
    assert_true(took < 10000); /* limits.shutdown_timeout */
    for (int i = 0; i < N; i++) { /* each ended with the last chunk, then closed */
        got = raw_read(fds[i], NULL, 2000, &closed);
        assert_true(closed);
        assert_true(strlen(got) >= 5 && strcmp(got + strlen(got) - 5, "0\r\n\r\n") == 0);
        free(got);
        close(fds[i]);
    }
}

static void watch_exits_0_on_success_and_1_on_failure(void **state)
{
    struct fx_daemon d;
    char uuid[64], *out;
    json_t *lines, *list;
    int rc;

    (void)state;
    fx_start(&d, "test-sse-watch", paced_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    rc = orchctl_run(&d, (const char *const[]){"watch", uuid, NULL}, &out, 30000);
    assert_int_equal(rc, 0);
    assert_line(out, "deployment.created", "deployment created");
    assert_line(out, "resource.state", "model_api[0]: STARTED");
    assert_line(out, "deployment.status", "status CREATE_COMPLETE");
    assert_null(strstr(out, "instances up")); /* no terminal: no progress line */
    free(out);
    /* --json: one object per line, every event of the list once */
    rc = orchctl_run(&d, (const char *const[]){"watch", uuid, "--json", NULL}, &out, 30000);
    assert_int_equal(rc, 0);
    lines = json_lines(out);
    list = fx_events(&d, uuid, NULL);
    assert_true(json_equal(lines, list));
    json_decref(lines);
    json_decref(list);
    free(out);
    fx_stop(&d);

    fx_start(&d, "test-sse-watch-fail", failing_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    rc = orchctl_run(&d, (const char *const[]){"watch", uuid, NULL}, &out, 30000);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "injected provision failure"));
    assert_non_null(strstr(out, ": CREATE_FAILED\n"));
    free(out);
    /* deploy --wait follows the same way */
    rc = orchctl_run(&d, (const char *const[]){"deploy", "examples/gpu-serving.yaml", "--wait", NULL},
                     &out, 30000);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, ": CREATE_FAILED\n"));
    free(out);
    fx_stop(&d);
}

static void watch_draws_progress_on_a_terminal(void **state)
{
    struct fx_daemon d;
    char uuid[64], *out = calloc(1, 1), buf[4096];
    size_t len = 0;
    int master, slave;
    pid_t pid;
    double end;

    (void)state;
    fx_start(&d, "test-sse-tty", paced_site, NULL);
    json_decref(fx_create(&d, serving, NULL, uuid));
    master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    pid = orchctl_start(d.url, (const char *const[]){"watch", uuid, NULL}, NULL, slave);
    close(slave);
    end = fx_now_ms() + 30000;
    while (fx_now_ms() < end) { /* read until the terminal is closed (EIO) */
        struct pollfd p = {master, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(master, buf, sizeof(buf));
        if (n <= 0)
            break;
        out = realloc(out, len + (size_t)n + 1);
        memcpy(out + len, buf, (size_t)n);
        len += (size_t)n;
        out[len] = '\0';
    }
    close(master);
    assert_int_equal(orchctl_wait(pid, 5000), 0);
    assert_non_null(strstr(out, "] 0/2 instances up"));
    assert_non_null(strstr(out, "[##############################] 2/2 instances up"));
    assert_non_null(strstr(out, "\r\033[K")); /* the progress line is redrawn in place */
    assert_non_null(strstr(out, ": CREATE_COMPLETE"));
    free(out);
    fx_stop(&d);
}

/* SIGTERM; the daemon must exit 0; its directory stays. */
static void stop_keep(struct fx_daemon *d)
{
    int status = -1;

    kill(d->pid, SIGTERM);
    for (int i = 0; i < 2000 && waitpid(d->pid, &status, WNOHANG) != d->pid; i++)
        fx_sleep_ms(10);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    live_pid = 0;
}

/* The daemon again, on the same port and data directory. */
static void restart_on_port(struct fx_daemon *d, const char *sites, int port)
{
    char listen[32], data[128], plugins[512], store[400];
    const char *extra[] = {"ORC_DRV_STRICT=1", plugins, NULL, NULL};
    const char *argv[] = {"orchestratord", "--listen", listen, "--data-dir", data,
                          "--sites",       sites,      NULL};
    char **envp;

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/var", d->dir);
    snprintf(plugins, sizeof(plugins), "ORCHESTRATOR_PLUGIN_DIR=%s", env_or("PLUGIN_DIR", ""));
    if (fx_pg_store(d->dir, store, sizeof(store))) /* the same store again */
        extra[2] = store;
    snprintf(d->log, sizeof(d->log), "%s/daemon-2.log", d->dir);
    envp = daemon_env(extra);
    d->pid = fork();
    assert_true(d->pid >= 0);
    if (d->pid == 0) {
        int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(env_or("ORCHESTRATORD", "build/release/bin/orchestratord"), (char *const *)argv,
               envp);
        _exit(127);
    }
    free(envp);
    live_pid = d->pid;
    fx_wait_engine(d);
}

static void watch_resumes_after_a_restart(void **state)
{
    static const char site[] =
        "sites:\n"
        "  - name: steady\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/steady.json\", latency: {default: 100, provision: 3000}}\n";
    struct fx_daemon d;
    char uuid[64], out[128], sites[128], *text = NULL;
    json_t *lines, *list;
    pid_t pid;
    int port;

    (void)state;
    fx_start(&d, "test-sse-restart", site, NULL);
    port = port_of(&d);
    snprintf(sites, sizeof(sites), "%s/sites.yaml", d.dir);
    snprintf(out, sizeof(out), "%s/watch.out", d.dir);
    json_decref(fx_create(&d, serving, NULL, uuid));
    pid = orchctl_start(d.url, (const char *const[]){"watch", uuid, "--json", NULL}, out, -1);
    for (int i = 0; i < 500; i++) { /* until it printed the attempt's start */
        free(text);
        text = fx_read_file(out);
        if (text && strstr(text, "\"attempt.started\""))
            break;
        fx_sleep_ms(10);
    }
    assert_non_null(strstr(text, "\"attempt.started\""));
    free(text);
    stop_keep(&d); /* the stream ends; watch retries */
    fx_sleep_ms(500);
    restart_on_port(&d, sites, port); /* the engine re-drives the deployment */
    assert_int_equal(orchctl_wait(pid, 60000), 0);
    text = fx_read_file(out);
    assert_non_null(strstr(text, "resuming after event"));
    lines = json_lines(text);
    list = fx_events(&d, uuid, NULL);
    if (!json_equal(lines, list)) { /* each event once, in order, across the restart */
        fprintf(stderr, "watch printed:\n%s\n", text);
        fail_msg("watch --json did not print exactly the events of the list");
    }
    json_decref(lines);
    json_decref(list);
    free(text);
    fx_stop(&d);
}

/* ---- the deployments feed: GET /deployments/changes ---- */

static void *feed_reader(void *arg)
{
    struct sse *s = arg;

    sse_done(s, curl_easy_perform(s->curl));
    return NULL;
}

/* The status of the deployment of a feed event's data ("" for none). */
static void feed_status(const struct sse_event *e, const char *uuid, char *out, size_t size)
{
    json_t *d = json_loads(e->data, 0, NULL);

    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "uuid")), uuid);
    snprintf(out, size, "%s",
             json_string_value(json_object_get(d, "status"))
                 ? json_string_value(json_object_get(d, "status"))
                 : "");
    json_decref(d);
}

static void feed_follows_each_change(void **state)
{
    struct fx_daemon d;
    struct sse s;
    pthread_t t;
    char uuid[64], st[64];
    bool complete = false, deleting = false;

    (void)state;
    fx_start(&d, "test-sse-feed", paced_site, NULL);
    sse_prepare(&d, &s, "/deployments/changes", NULL, 0, 60);
    s.until = "event: deployment.deleted";
    assert_int_equal(pthread_create(&t, NULL, feed_reader, &s), 0);
    fx_sleep_ms(300); /* the stream is open */
    json_decref(fx_create(&d, serving, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 20000));
    fx_undeploy(&d, uuid, 20000);
    pthread_join(t, NULL);
    assert_int_equal(s.status, 200);
    assert_non_null(strstr(s.ctype, "text/event-stream"));
    assert_int_equal(s.retry, 2000);
    assert_true(s.n >= 2);
    for (size_t i = 0; i + 1 < s.n; i++) { /* in order: complete, then deleting */
        assert_string_equal(s.ev[i].type, "deployment");
        feed_status(&s.ev[i], uuid, st, sizeof(st));
        assert_false(deleting && strcmp(st, "CREATE_COMPLETE") == 0);
        complete = complete || strcmp(st, "CREATE_COMPLETE") == 0;
        deleting = deleting || strcmp(st, "DELETE_IN_PROGRESS") == 0;
    }
    assert_true(complete && deleting);
    assert_string_equal(s.ev[s.n - 1].type, "deployment.deleted");
    feed_status(&s.ev[s.n - 1], uuid, st, sizeof(st));
    assert_string_equal(st, "");
    sse_free(&s);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(streams_follow_a_deployment_to_the_end, kill_all),
        cmocka_unit_test_teardown(resume_gets_exactly_the_rest, kill_all),
        cmocka_unit_test_teardown(errors_and_the_json_list, kill_all),
        cmocka_unit_test_teardown(large_backlog_under_backpressure, kill_all),
        cmocka_unit_test_teardown(disconnecting_clients_leave_nothing_behind, kill_all),
        cmocka_unit_test_teardown(a_client_that_does_not_read_is_cut_off, kill_all),
        cmocka_unit_test_teardown(the_stream_limit_answers_503_and_watch_polls, kill_all),
        cmocka_unit_test_teardown(sigterm_ends_open_streams_cleanly, kill_all),
        cmocka_unit_test_teardown(watch_exits_0_on_success_and_1_on_failure, kill_all),
        cmocka_unit_test_teardown(watch_draws_progress_on_a_terminal, kill_all),
        cmocka_unit_test_teardown(watch_resumes_after_a_restart, kill_all),
        cmocka_unit_test_teardown(feed_follows_each_change, kill_all),
    };

    return cmocka_run_group_tests(tests, setup, teardown_all);
}
