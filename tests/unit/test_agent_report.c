/*
 * gpu-agent's reporter (gpu-runtime/agent/report.c) against a small HTTP
 * receiver in a thread of this test, standing for the orchestrator's agent
 * endpoint: reports made while nothing listens are queued and retried, and
 * arrive in order, each once, when the receiver starts; a 503 is retried; a
 * 401 drops the batch and the next ones go on; the queue's bound drops log
 * chunks first; heartbeats carry the status and replace each other while
 * offline; the token goes in the Authorization header; the environment
 * says where to report.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#include "report.h"

/* ---- the receiver ---- */

struct receiver {
    int lfd;
    unsigned port;
    pthread_t thread;
    pthread_mutex_t mu;
    int fail_first;      /* answer this many requests with fail_status */
    int fail_status;
    json_t *batches;     /* bodies received, in order */
    char auth[256];      /* the last Authorization header */
    volatile bool stop;
};

static int listen_on(unsigned port, unsigned *bound)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof(a);
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *bound = ntohs(a.sin_port);
    return fd;
}

/* Reads one request; answers it. */
static void serve_conn(struct receiver *rc, int fd)
{
    char buf[1 << 20];
    size_t got = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) != 1)
            break;
        ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n"), *cl = strcasestr(buf, "content-length:");
        if (!end || !cl || got - (size_t)(end + 4 - buf) < strtoul(cl + 15, NULL, 10))
            continue;
        char *auth = strcasestr(buf, "authorization: ");
        int status = 200;
        pthread_mutex_lock(&rc->mu);
        if (auth)
            sscanf(auth + 15, "%255[^\r]", rc->auth);
        if (rc->fail_first > 0) {
            rc->fail_first--;
            status = rc->fail_status;
        } else {
            json_array_append_new(rc->batches, json_loads(end + 4, 0, NULL));
        }
        pthread_mutex_unlock(&rc->mu);
        char answer[256];
        int len = snprintf(answer, sizeof(answer),
                           "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
                           "2\r\nConnection: close\r\n\r\n{}",
                           status);
        assert_true(write(fd, answer, (size_t)len) == len);
        break;
    }
    close(fd);
}

static void *receiver_main(void *arg)
{
    struct receiver *rc = arg;

    while (!rc->stop) {
        struct pollfd p = {.fd = rc->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            int fd = accept(rc->lfd, NULL, NULL);
            if (fd >= 0)
                serve_conn(rc, fd);
        }
    }
    return NULL;
}

static void receiver_start(struct receiver *rc, unsigned port)
{
    rc->lfd = listen_on(port, &rc->port);
    rc->stop = false;
    if (rc->batches == NULL)
        rc->batches = json_array();
    pthread_mutex_init(&rc->mu, NULL);
    assert_int_equal(pthread_create(&rc->thread, NULL, receiver_main, rc), 0);
}

static void receiver_stop(struct receiver *rc)
{
    rc->stop = true;
    pthread_join(rc->thread, NULL);
    close(rc->lfd);
}

/* Every report received, in order of arrival. */
static json_t *received(struct receiver *rc)
{
    json_t *all = json_array(), *b, *rep;
    size_t i, j;

    pthread_mutex_lock(&rc->mu);
    json_array_foreach(rc->batches, i, b)
        json_array_foreach(json_object_get(b, "reports"), j, rep)
            json_array_append(all, rep);
    pthread_mutex_unlock(&rc->mu);
    return all;
}

/* ---- the reporter on a loop of this thread ---- */

struct fixture {
    uv_loop_t loop;
    struct agent_reporter *r;
    bool closed;
};

static void conf_for(struct agent_report_conf *c, unsigned port, char *url, size_t len)
{
    snprintf(url, len, "http://127.0.0.1:%u/", port);
    *c = (struct agent_report_conf){.url = url,
                                    .token = "orc-agent-v1.test",
                                    .deployment = "0190a000-0000-7000-8000-000000000001",
                                    .resource = "0190a000-0000-7000-8000-000000000002",
                                    .host_resource = "0190a000-0000-7000-8000-000000000003",
                                    .heartbeat_ms = 100000};
}

/* uv_stop takes the loop: the timer's callback gets the timer */
static void stop_loop(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void run_until(struct fixture *f, int ms)
{
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, stop_loop, (uint64_t)ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void on_closed(void *ud)
{
    ((struct fixture *)ud)->closed = true;
}

static void close_reporter(struct fixture *f, uint32_t timeout_ms)
{
    agent_reporter_close(f->r, timeout_ms, on_closed, f);
    for (int i = 0; i < 400 && !f->closed; i++)
        run_until(f, 25);
    assert_true(f->closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static json_t *workload(int i)
{
    return json_pack("{ss ss si}", "name", "main", "state", "running", "restarts", i);
}

/* Nothing listens at first: reports queue; the receiver starts on that port;
 * everything arrives once, in order, with the token. */
static void test_offline_then_back(void **state)
{
    struct receiver rc = {0};
    struct fixture f = {0};
    struct agent_report_conf c;
    struct agent_report_stats st;
    char url[64];
    unsigned port;
    int probe = listen_on(0, &port);

    (void)state;
    close(probe); /* a port nothing listens on (for now) */
    assert_int_equal(uv_loop_init(&f.loop), 0);
    conf_for(&c, port, url, sizeof(url));
    assert_int_equal(agent_reporter_new(&f.loop, &c, &f.r), 0);
    for (int i = 0; i < 20; i++)
        agent_report(f.r, "workload", workload(i));
    run_until(&f, 700); /* a few failed attempts */
    agent_report_stats(f.r, &st);
    assert_true(st.attempts_failed >= 2);
    assert_int_equal(st.queued, 20);
    assert_int_equal(st.batches_ok, 0);
    receiver_start(&rc, port);
    for (int i = 0; i < 20; i++)
        agent_report(f.r, "workload", workload(100 + i));
    for (int k = 0; k < 200; k++) {
        run_until(&f, 25);
        agent_report_stats(f.r, &st);
        if (st.queued == 0)
            break;
    }
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.dropped, 0);
    json_t *all = received(&rc);
    assert_int_equal(json_array_size(all), 40);
    for (size_t i = 0; i < 40; i++) {
        json_t *rep = json_array_get(all, i);
        assert_int_equal(json_integer_value(json_object_get(rep, "seq")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(rep, "type")), "workload");
        json_int_t want = i < 20 ? (json_int_t)i : (json_int_t)(100 + i - 20);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(rep, "data"),
                                                            "restarts")),
                         want);
    }
    json_decref(all);
    assert_string_equal(rc.auth, "Bearer orc-agent-v1.test");
    json_t *first = json_array_get(rc.batches, 0);
    assert_string_equal(json_string_value(json_object_get(first, "resource")), c.resource);
    assert_string_equal(json_string_value(json_object_get(first, "host_resource")),
                        c.host_resource);
    assert_string_equal(json_string_value(json_object_get(json_object_get(first, "agent"),
                                                          "version")),
                        "0.4.0");
    close_reporter(&f, 1000);
    receiver_stop(&rc);
    json_decref(rc.batches);
}

/* 503 is retried; 401 drops that batch and the next ones go on. */
static void test_server_errors(void **state)
{
    struct receiver rc = {.fail_first = 2, .fail_status = 503};
    struct fixture f = {0};
    struct agent_report_conf c;
    struct agent_report_stats st;
    char url[64];

    (void)state;
    receiver_start(&rc, 0);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    conf_for(&c, rc.port, url, sizeof(url));
    assert_int_equal(agent_reporter_new(&f.loop, &c, &f.r), 0);
    agent_report(f.r, "health", json_pack("{ss}", "verdict", "none"));
    for (int k = 0; k < 200; k++) {
        run_until(&f, 25);
        agent_report_stats(f.r, &st);
        if (st.batches_ok == 1)
            break;
    }
    assert_int_equal(st.batches_ok, 1);
    assert_int_equal(st.attempts_failed, 2);
    pthread_mutex_lock(&rc.mu);
    rc.fail_first = 1;
    rc.fail_status = 401;
    pthread_mutex_unlock(&rc.mu);
    agent_report(f.r, "workload", workload(1));
    run_until(&f, 300);
    agent_report(f.r, "workload", workload(2));
    for (int k = 0; k < 100; k++) {
        run_until(&f, 25);
        agent_report_stats(f.r, &st);
        if (st.batches_ok == 2)
            break;
    }
    assert_int_equal(st.batches_ok, 2);
    assert_int_equal(st.dropped, 1); /* the refused one */
    json_t *all = received(&rc);
    assert_int_equal(json_array_size(all), 2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(all, 1), "data"), "restarts")),
                     2);
    json_decref(all);
    close_reporter(&f, 1000);
    receiver_stop(&rc);
    json_decref(rc.batches);
}

/* Offline with a full queue: log chunks go first; heartbeats replace each
 * other and carry the status. */
static void test_bound_and_heartbeats(void **state)
{
    struct receiver rc = {0};
    struct fixture f = {0};
    struct agent_report_conf c;
    struct agent_report_stats st;
    char url[64];
    unsigned port;
    int probe = listen_on(0, &port);

    (void)state;
    close(probe);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    conf_for(&c, port, url, sizeof(url));
    c.max_queue = 10;
    c.heartbeat_ms = 50;
    assert_int_equal(agent_reporter_new(&f.loop, &c, &f.r), 0);
    agent_report_set_status(f.r, json_pack("{ss}", "main", "running"));
    agent_report(f.r, "inventory", json_pack("{s[]}", "gpus"));
    for (int i = 0; i < 20; i++)
        agent_report(f.r, "log", json_pack("{ss si ss}", "name", "main", "offset", i, "data",
                                            "a line\n"));
    agent_report(f.r, "workload", workload(3));
    run_until(&f, 400); /* several heartbeats while offline */
    agent_report_stats(f.r, &st);
    assert_int_equal(st.queued, 10);
    receiver_start(&rc, port);
    for (int k = 0; k < 400; k++) {
        run_until(&f, 25);
        agent_report_stats(f.r, &st);
        if (st.queued == 0 && st.batches_ok > 0)
            break;
    }
    json_t *all = received(&rc), *rep;
    size_t i, logs = 0, beats = 0;
    bool inventory = false, wl = false;
    json_array_foreach(all, i, rep) {
        const char *t = json_string_value(json_object_get(rep, "type"));
        logs += strcmp(t, "log") == 0;
        inventory |= strcmp(t, "inventory") == 0;
        wl |= strcmp(t, "workload") == 0;
        if (strcmp(t, "heartbeat") == 0) {
            beats++;
            assert_string_equal(json_string_value(json_object_get(json_object_get(rep, "data"),
                                                                  "main")),
                                "running");
        }
    }
    assert_true(inventory && wl); /* kept: only log chunks made room */
    assert_true(logs >= 1 && logs <= 8);
    assert_true(beats >= 1);
    /* the log chunks kept are the newest */
    json_array_foreach(all, i, rep)
        if (strcmp(json_string_value(json_object_get(rep, "type")), "log") == 0)
            assert_true(json_integer_value(json_object_get(json_object_get(rep, "data"),
                                                           "offset")) >= 12);
    json_decref(all);
    close_reporter(&f, 1000);
    receiver_stop(&rc);
    json_decref(rc.batches);
}

/* Closing with reports that cannot be delivered ends at the deadline. */
static void test_close_deadline(void **state)
{
    struct fixture f = {0};
    struct agent_report_conf c;
    char url[64];
    unsigned port;
    int probe = listen_on(0, &port);

    (void)state;
    close(probe);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    conf_for(&c, port, url, sizeof(url));
    assert_int_equal(agent_reporter_new(&f.loop, &c, &f.r), 0);
    agent_report(f.r, "workload", workload(1));
    close_reporter(&f, 300);
}

static void test_conf_from_env(void **state)
{
    struct agent_report_conf c;

    (void)state;
    unsetenv("ORC_AGENT_URL");
    assert_false(agent_report_conf_from_env(&c));
    setenv("ORC_AGENT_URL", "https://orc.example.org", 1);
    setenv("ORC_AGENT_TOKEN", "t", 1);
    setenv("ORC_AGENT_HEARTBEAT_MS", "250", 1);
    assert_true(agent_report_conf_from_env(&c));
    assert_string_equal(c.url, "https://orc.example.org");
    assert_int_equal(c.heartbeat_ms, 250);
    assert_true(agent_report_env_name("ORC_AGENT_TOKEN=secret"));
    assert_true(agent_report_env_name("ORC_AGENT_URL"));
    assert_false(agent_report_env_name("ORC_AGENT_TOKENX=1"));
    assert_false(agent_report_env_name("PATH=/bin"));
    unsetenv("ORC_AGENT_URL");
    unsetenv("ORC_AGENT_TOKEN");
    unsetenv("ORC_AGENT_HEARTBEAT_MS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offline_then_back), cmocka_unit_test(test_server_errors),
        cmocka_unit_test(test_bound_and_heartbeats), cmocka_unit_test(test_close_deadline),
        cmocka_unit_test(test_conf_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
