/*
 * The deployment engine on the sim driver and an in-memory store: a GPU
 * training template reaches CREATE_COMPLETE on the site that fits, a request
 * no site can hold fails at once naming why, failover goes to the next site
 * and statusReason names the failed one, delete deprovisions everything (the
 * sim inventory shows nothing left), and a restart re-drives a deployment
 * left in progress without duplicating resources.
 */
#include "testutil.h"
#include "engine_fixture.h"

static const char three_sites[] =
    "sites:\n"
    "  - name: small\n"
    "    driver: sim\n"
    "    priority: 30\n"
    "    config: {inventory: \"@DIR@/small.json\", capacity: {cpus: 4, mem: 8 GB, gpus: {T4: 1}}}\n"
    "  - name: broken\n"
    "    driver: sim\n"
    "    priority: 20\n"
    "    config: {inventory: \"@DIR@/broken.json\", capacity: {cpus: 64, mem: 256 GB,\n"
    "             gpus: {A100: 8}}, failures: {provision: 1.0}}\n"
    "  - name: good\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {inventory: \"@DIR@/good.json\", capacity: {cpus: 64, mem: 256 GB,\n"
    "             gpus: {A100: 8}}}\n";

static void training_completes_after_failover(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;

    start_engine(f, three_sites);
    submit(f, "examples/gpu-training.yaml", "{\"num_gpus\": 2, \"gpu_model\": \"A100\"}", uuid);
    d = wait_final(f, uuid);
    if (d->status != ORC_DEP_CREATE_COMPLETE)
        fprintf(stderr, "status %s: %s\n", orc_dep_status_name(d->status),
                d->status_reason ? d->status_reason : "");
    assert_int_equal(d->status, ORC_DEP_CREATE_COMPLETE);
    assert_string_equal(d->cloud_provider_name, "good");
    assert_true(json_is_object(d->outputs));
    assert_non_null(json_object_get(d->outputs, "node_address"));
    orc_deployment_free(d);
    assert_int_equal(sim_resources(f, "broken"), 0); /* the failed attempt was cleaned up */
    assert_true(sim_resources(f, "good") >= 1);
    assert_int_equal(sim_resources(f, "small"), 0); /* T4 only: never tried */

    /* delete: nothing stays at the provider */
    assert_int_equal(orc_store_deployment_set_status(f->store, uuid, 0,
                                                     ORC_DEP_DELETE_IN_PROGRESS, NULL, NULL), 0);
    assert_int_equal(orc_engine_delete(f->eng, uuid), 0);
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_DELETE_COMPLETE);
    orc_deployment_free(d);
    assert_int_equal(sim_resources(f, "good"), 0);
    stop_engine(f);
}

static void no_site_fits_fails_at_once(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;

    start_engine(f, three_sites);
    submit(f, "examples/gpu-training.yaml", "{\"num_gpus\": 4, \"gpu_model\": \"H100\"}", uuid);
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_CREATE_FAILED);
    assert_non_null(d->status_reason);
    assert_non_null(strstr(d->status_reason, "no site can run this deployment"));
    assert_non_null(strstr(d->status_reason, "H100"));
    assert_non_null(strstr(d->status_reason, "small"));
    orc_deployment_free(d);
    stop_engine(f);
}

/* A stored plan the engine cannot build a run of (a node hosted on itself, as an older
 * planner let through) fails the create at once instead of leaving it in progress. */
static void unrunnable_plan_fails_at_once(void **state)
{
    struct fx *f = *state;
    char *text = test_read_file("examples/gpu-training.yaml", NULL);
    json_t *inputs = json_object(), *plan;
    orc_deployment_t dep = {0}, *d = NULL;

    assert_non_null(text);
    start_engine(f, three_sites);
    plan = plan_text(f, text, inputs);
    json_object_set_new(json_array_get(json_object_get(plan, "nodes"), 0), "host",
                        json_string("train_node"));
    dep.created_by.issuer = "https://issuer.test";
    dep.created_by.subject = "alice";
    dep.template_text = text;
    dep.parameters = inputs;
    dep.plan = plan;
    assert_int_equal(orc_store_deployment_insert(f->store, &dep), 0);
    assert_int_equal(orc_engine_create_plan(f->eng, dep.uuid, plan), ORC_EFORMAT);
    assert_false(orc_engine_busy(f->eng, dep.uuid));
    assert_int_equal(orc_store_deployment_get(f->store, dep.uuid, &d), 0);
    assert_int_equal(d->status, ORC_DEP_CREATE_FAILED);
    assert_non_null(strstr(d->status_reason, "cannot be run"));
    orc_deployment_free(d);
    json_decref(plan);
    json_decref(inputs);
    free(text);
    stop_engine(f);
}

static void every_site_fails_lists_each(void **state)
{
    struct fx *f = *state;
    static const char sites[] =
        "sites:\n"
        "  - name: one\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/one.json\", failures: {provision: 1.0}}\n"
        "  - name: two\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/two.json\", failures: {provision: 1.0}}\n";
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;

    start_engine(f, sites);
    submit(f, "examples/gpu-serving.yaml", "{}", uuid);
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_CREATE_FAILED);
    assert_non_null(strstr(d->status_reason, "one:"));
    assert_non_null(strstr(d->status_reason, "two:"));
    orc_deployment_free(d);
    assert_int_equal(sim_resources(f, "one") + sim_resources(f, "two"), 0);
    stop_engine(f);
}

static void restart_redrives_without_duplicates(void **state)
{
    struct fx *f = *state;
    static const char sites[] =
        "sites:\n"
        "  - name: slow\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/slow.json\", latency: {default: {fixed_ms: 200}}}\n";
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;

    start_engine(f, sites);
    submit(f, "examples/gpu-serving.yaml", "{}", uuid);
    /* run until the provision is in flight at the site, then "stop" */
    for (int i = 0; i < 100000; i++) {
        orc_attempt_list_t l = {0};
        bool started;
        uv_run(&f->loop, UV_RUN_ONCE);
        assert_int_equal(orc_store_attempt_list(f->store, uuid, &l), 0);
        started = l.count > 0;
        orc_attempt_list_clear(&l);
        if (started)
            break;
    }
    for (int i = 0; i < 3; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    stop_engine(f);
    start_engine(f, sites); /* the restart resumes it */
    assert_true(orc_engine_busy(f->eng, uuid));
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_CREATE_COMPLETE);
    orc_deployment_free(d);
    assert_int_equal(sim_resources(f, "slow"), 1); /* one compute node, not two */
    stop_engine(f);
}


/* ---- a callback receiver: real HTTP on loopback, answers from a script ---- */

struct receiver {
    uv_tcp_t server;
    int port;
    const int *statuses; /* one per request, then the last again */
    size_t nstatuses, requests;
    char last_body[8192];
};

struct rconn {
    uv_tcp_t tcp;
    struct receiver *rv;
    char buf[16384];
    size_t len;
};

static void rconn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->handle, rconn_closed);
    free(w);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct rconn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct rconn *c = s->data;
    char *hdr_end, *cl;
    static char reply[128];
    uv_write_t *w;
    uv_buf_t out;
    int status;

    (void)buf;
    if (n < 0) {
        uv_close((uv_handle_t *)s, rconn_closed);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    hdr_end = strstr(c->buf, "\r\n\r\n");
    cl = strstr(c->buf, "Content-Length:");
    if (hdr_end == NULL || cl == NULL || strlen(hdr_end + 4) < (size_t)atoi(cl + 15))
        return; /* wait for the whole body */
    snprintf(c->rv->last_body, sizeof(c->rv->last_body), "%s", hdr_end + 4);
    status = c->rv->statuses[c->rv->requests < c->rv->nstatuses ? c->rv->requests
                                                                 : c->rv->nstatuses - 1];
    c->rv->requests++;
    snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             status);
    uv_read_stop(s);
    w = calloc(1, sizeof(*w));
    out = uv_buf_init(reply, (unsigned)strlen(reply));
    uv_write(w, s, &out, 1, on_written);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct receiver *rv = server->data;
    struct rconn *c = calloc(1, sizeof(*c));

    (void)status;
    c->rv = rv;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_close((uv_handle_t *)&c->tcp, rconn_closed);
}

static void receiver_start(uv_loop_t *loop, struct receiver *rv)
{
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound);

    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &rv->server);
    rv->server.data = rv;
    assert_int_equal(uv_tcp_bind(&rv->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&rv->server, 16, on_connection), 0);
    uv_tcp_getsockname(&rv->server, (struct sockaddr *)&bound, &len);
    rv->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

/* Completion POSTs the deployment JSON to the callback; a receiver that
 * fails twice gets it on the third try (retries with backoff). */
static void callback_retried_until_delivered(void **state)
{
    struct fx *f = *state;
    static const int statuses[] = {500, 503, 200};
    struct receiver rv = {.statuses = statuses, .nstatuses = 3};
    char uuid[ORC_UUID_LEN], url[64];
    orc_deployment_t *d;
    orc_event_list_t l = {0};
    bool delivered = false;

    start_engine(f, three_sites);
    receiver_start(&f->loop, &rv);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", rv.port);
    submit_with_callback(f, "examples/gpu-serving.yaml", url, uuid);
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_CREATE_COMPLETE);
    orc_deployment_free(d);
    for (int i = 0; i < 200000 && rv.requests < 3; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(rv.requests, 3);
    assert_non_null(strstr(rv.last_body, uuid));
    assert_non_null(strstr(rv.last_body, "\"status\":\"CREATE_COMPLETE\""));
    for (int i = 0; i < 1000 && !delivered; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(orc_store_event_list(f->store, uuid, 0, 0, &l), 0);
        for (size_t k = 0; k < l.count; k++)
            delivered = delivered || strcmp(l.items[k].type, "callback.delivered") == 0;
        orc_event_list_clear(&l);
    }
    assert_true(delivered);
    uv_close((uv_handle_t *)&rv.server, NULL);
    stop_engine(f);
}

/* A receiver that always fails gets a bounded number of tries (4 here), then
 * the engine gives up and says so in the deployment's events. */
static void callback_gives_up_after_bounded_tries(void **state)
{
    struct fx *f = *state;
    static const int statuses[] = {500};
    struct receiver rv = {.statuses = statuses, .nstatuses = 1};
    char uuid[ORC_UUID_LEN], url[64];
    orc_deployment_t *d;

    start_engine(f, three_sites);
    receiver_start(&f->loop, &rv);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", rv.port);
    submit_with_callback(f, "examples/gpu-serving.yaml", url, uuid);
    d = wait_final(f, uuid);
    orc_deployment_free(d);
    for (int i = 0; i < 200000 && !has_event(f, uuid, "callback.failed"); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(has_event(f, uuid, "callback.failed"));
    assert_int_equal(rv.requests, 4);
    uv_close((uv_handle_t *)&rv.server, NULL);
    stop_engine(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(training_completes_after_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(no_site_fits_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(unrunnable_plan_fails_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(every_site_fails_lists_each, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_redrives_without_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_retried_until_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(callback_gives_up_after_bounded_tries, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
