/*
 * The REST call the cloud drivers share (plugins/cloud, cloud.h), with a
 * scripted HTTP client in place of host->http: each request gets the next
 * answer of the script (a status and body, a Retry-After, or no answer at
 * all) on a later loop iteration, and the test counts what was sent.
 *   - an answer at once: the code, the body parsed as JSON, Location and
 *     X-Subject-Token;
 *   - retries: 503, 500, 429 and no answer are sent again up to the
 *     attempts, with backoff; a 4xx is not; a non-idempotent request only
 *     after 429 or 503; Retry-After is waited for; the deadline stops them;
 *     the error says how many attempts were made;
 *   - cancel, in flight and while waiting to retry, ends with ORC_ECANCELED;
 *   - the APIs' own error messages are found in their bodies (Kubernetes'
 *     Status, Nova's itemNotFound, Neutron's NeutronError, Keystone's error).
 */
#define _GNU_SOURCE
#include <uv.h>

#include "testutil.h"

#include "../../plugins/cloud/cloud_call.c"

/* ---- a host with timers and a scripted HTTP client ---- */

struct answer {
    long code; /* 0: no answer (ORC_EHTTP) */
    const char *body;
    const char *headers;
};

static struct {
    uv_loop_t loop;
    const struct answer *script;
    size_t nscript, next;
    unsigned sent;
    char last_method[8], last_body[256];
    int64_t sent_at[16];
} T;

struct t_timer {
    uv_timer_t h;
    orc_host_timer_cb cb;
    void *arg;
};

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_timer(uv_timer_t *h)
{
    struct t_timer *t = h->data;
    t->cb(t->arg);
    uv_close((uv_handle_t *)h, on_timer_closed);
}

static uint64_t t_timer_start(const struct orc_host_api *host, uint64_t ms, orc_host_timer_cb cb,
                              void *arg)
{
    struct t_timer *t = calloc(1, sizeof(*t));

    (void)host;
    t->cb = cb;
    t->arg = arg;
    uv_timer_init(&T.loop, &t->h);
    t->h.data = t;
    uv_timer_start(&t->h, on_timer, ms, 0);
    return (uint64_t)(uintptr_t)t;
}

static int t_timer_stop(const struct orc_host_api *host, uint64_t id)
{
    struct t_timer *t = (struct t_timer *)(uintptr_t)id;

    (void)host;
    uv_timer_stop(&t->h);
    uv_close((uv_handle_t *)&t->h, on_timer_closed);
    return 0;
}

struct inflight {
    uv_timer_t h;
    orc_http_req_t *req;
    struct answer a;
    bool canceled;
};

static void on_answer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void deliver(uv_timer_t *h)
{
    struct inflight *f = h->data;
    orc_http_req_t *req = f->req;
    int status = 0;

    req->core_ = NULL;
    if (f->canceled) {
        status = ORC_ECANCELED;
    } else if (f->a.code == 0) {
        snprintf(req->error, sizeof(req->error), "%s: connection reset", T.last_method);
        status = ORC_EHTTP;
    } else {
        req->code = f->a.code;
        if (f->a.body) {
            req->body = strdup(f->a.body);
            req->body_len = strlen(f->a.body);
        }
        if (f->a.headers)
            req->headers = strdup(f->a.headers);
    }
    uv_close((uv_handle_t *)h, on_answer_closed);
    req->cb(req, status);
}

static int t_request(const struct orc_host_api *host, orc_http_req_t *req,
                     const struct orc_http_request *r)
{
    struct inflight *f = calloc(1, sizeof(*f));

    (void)host;
    assert_true(T.next < T.nscript);
    if (T.sent < 16)
        T.sent_at[T.sent] = cld_now_ms();
    T.sent++;
    snprintf(T.last_method, sizeof(T.last_method), "%s", r->method);
    snprintf(T.last_body, sizeof(T.last_body), "%.*s", (int)r->body_len, r->body ? r->body : "");
    f->req = req;
    f->a = T.script[T.next++];
    req->core_ = f;
    uv_timer_init(&T.loop, &f->h);
    f->h.data = f;
    uv_timer_start(&f->h, deliver, 1, 0);
    return 0;
}

static int t_cancel(const struct orc_host_api *host, orc_http_req_t *req)
{
    struct inflight *f = req->core_;

    (void)host;
    if (f == NULL)
        return ORC_ENOTFOUND;
    f->canceled = true;
    return 0;
}

static const char *t_header(const orc_http_req_t *req, const char *name, char *buf, size_t cap)
{
    const char *h = req->headers;
    size_t n = strlen(name);

    while (h && *h) {
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            const char *v = h + n + 1;
            while (*v == ' ')
                v++;
            snprintf(buf, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
            return buf;
        }
        h = strchr(h, '\n');
        h = h ? h + 1 : NULL;
    }
    return NULL;
}

static void t_release(const struct orc_host_api *host, orc_http_req_t *req)
{
    (void)host;
    free(req->body);
    free(req->headers);
    req->body = req->headers = NULL;
}

static const struct orc_http_api t_http = {sizeof(struct orc_http_api), t_request, t_cancel,
                                           t_header, t_release};

static struct orc_host_api host = {
    .version = ORC_HOST_API_VERSION,
    .size = sizeof(struct orc_host_api),
    .site = "test",
    .malloc = malloc,
    .calloc = calloc,
    .realloc = realloc,
    .free = free,
    .timer_start = t_timer_start,
    .timer_stop = t_timer_stop,
    .http = &t_http,
};

/* ---- running one call ---- */

struct result {
    bool done;
    int status;
    long code;
    char error[CLD_ERROR_LEN];
    char message[256];
    bool json;
    char token[1024], location[512];
    unsigned attempts;
};

static void on_done(struct cld_call *c, int status)
{
    struct result *r = c->data;

    r->done = true;
    r->status = status;
    r->code = c->code;
    r->json = c->json != NULL;
    r->attempts = c->attempts;
    snprintf(r->error, sizeof(r->error), "%s", c->error);
    snprintf(r->token, sizeof(r->token), "%s", c->token);
    snprintf(r->location, sizeof(r->location), "%s", c->location);
    if (status == 0)
        cld_api_message(c, r->message, sizeof(r->message));
}

static void script(const struct answer *a, size_t n)
{
    T.script = a;
    T.nscript = n;
    T.next = 0;
    T.sent = 0;
}

static struct result run_call(const char *method, const char *body, const struct cld_retry *retry,
                              int cancel_after_ms)
{
    struct cld_call c = {0};
    struct result r = {0};

    c.data = &r;
    assert_int_equal(0, cld_call_start(&c, &host, NULL, retry, method, "http://api.test/x", body,
                                       NULL, on_done));
    if (cancel_after_ms >= 0) {
        int64_t end = cld_now_ms() + cancel_after_ms;
        while (!r.done && cld_now_ms() < end) {
            uv_run(&T.loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
        cld_call_cancel(&c);
    }
    while (!r.done)
        uv_run(&T.loop, UV_RUN_ONCE);
    assert_false(cld_call_busy(&c));
    cld_call_release(&c);
    while (uv_run(&T.loop, UV_RUN_NOWAIT)) /* close what is closing */
        ;
    return r;
}

static const struct cld_retry fast = {.attempts = 4, .base_ms = 5, .cap_ms = 20, .idempotent = true};

/* ---- tests ---- */

static void test_answer(void **state)
{
    static const struct answer a[] = {
        {201, "{\"token\": {\"methods\": [\"password\"]}}",
         "X-Subject-Token: gAAAAAB\r\nLocation: http://api.test/x/1\r\n"}};
    struct result r;

    (void)state;
    script(a, 1);
    r = run_call("POST", "{\"auth\": {}}", &fast, -1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 201);
    assert_true(r.json);
    assert_string_equal(r.token, "gAAAAAB");
    assert_string_equal(r.location, "http://api.test/x/1");
    assert_string_equal(T.last_body, "{\"auth\": {}}");
    assert_int_equal(T.sent, 1);
}

static void test_retries(void **state)
{
    static const struct answer a[] = {{503, "busy", NULL}, {0, NULL, NULL}, {500, NULL, NULL},
                                      {200, "{}", NULL}};
    static const struct answer four[] = {{404, "{\"message\": \"x not found\"}", NULL}};
    static const struct answer spent[] = {{502, NULL, NULL}, {502, NULL, NULL}, {0, NULL, NULL},
                                          {0, NULL, NULL}};
    struct result r;

    (void)state;
    script(a, 4);
    r = run_call("GET", NULL, &fast, -1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 200);
    assert_int_equal(r.attempts, 4);
    /* a 4xx is the answer */
    script(four, 1);
    r = run_call("GET", NULL, &fast, -1);
    assert_int_equal(r.code, 404);
    assert_int_equal(T.sent, 1);
    assert_string_equal(r.message, "x not found");
    /* attempts spent: the last error, and how many were made */
    script(spent, 4);
    r = run_call("GET", NULL, &fast, -1);
    assert_int_equal(r.status, ORC_EHTTP);
    assert_non_null(strstr(r.error, "connection reset"));
    assert_non_null(strstr(r.error, "after 4 attempts"));
}

static void test_not_idempotent(void **state)
{
    static const struct answer a[] = {{500, NULL, NULL}};
    static const struct answer b[] = {{429, NULL, NULL}, {503, NULL, NULL}, {202, "{}", NULL}};
    static const struct answer c[] = {{0, NULL, NULL}};
    struct cld_retry once = fast;
    struct result r;

    (void)state;
    once.idempotent = false;
    script(a, 1); /* the server may have acted: not sent again */
    r = run_call("POST", "{}", &once, -1);
    assert_int_equal(r.code, 500);
    assert_int_equal(T.sent, 1);
    script(b, 3); /* 429 and 503 say nothing was done */
    r = run_call("POST", "{}", &once, -1);
    assert_int_equal(r.code, 202);
    assert_int_equal(T.sent, 3);
    script(c, 1);
    r = run_call("POST", "{}", &once, -1);
    assert_int_equal(r.status, ORC_EHTTP);
    assert_int_equal(T.sent, 1);
}

static void test_retry_after_and_deadline(void **state)
{
    static const struct answer a[] = {{429, NULL, "Retry-After: 1\r\n"}, {200, "{}", NULL}};
    static const struct answer b[] = {{503, NULL, "Retry-After: 5\r\n"}, {200, "{}", NULL}};
    struct cld_retry slow = {.attempts = 3, .base_ms = 5, .cap_ms = 3000, .idempotent = true};
    struct cld_retry tight = slow;
    struct result r;

    (void)state;
    script(a, 2);
    r = run_call("GET", NULL, &slow, -1);
    assert_int_equal(r.code, 200);
    assert_true(T.sent_at[1] - T.sent_at[0] >= 950); /* waited for what the server said */
    /* the wait would pass the deadline: the answer is the 503 */
    tight.deadline_ms = 1000;
    script(b, 2);
    r = run_call("GET", NULL, &tight, -1);
    assert_int_equal(r.code, 503);
    assert_int_equal(T.sent, 1);
}

static void test_cancel(void **state)
{
    static const struct answer a[] = {{503, NULL, "Retry-After: 2\r\n"}, {200, "{}", NULL}};
    static const struct answer b[] = {{200, "{}", NULL}};
    struct cld_retry slow = {.attempts = 3, .base_ms = 5, .cap_ms = 5000, .idempotent = true};
    struct result r;

    (void)state;
    script(a, 2); /* canceled while waiting to retry */
    r = run_call("GET", NULL, &slow, 100);
    assert_int_equal(r.status, ORC_ECANCELED);
    assert_int_equal(T.sent, 1);
    script(b, 1); /* canceled in flight */
    r = run_call("GET", NULL, &slow, 0);
    assert_int_equal(r.status, ORC_ECANCELED);
}

static void test_api_messages(void **state)
{
    static const struct answer a[] = {
        {409, "{\"kind\": \"Status\", \"apiVersion\": \"v1\", \"status\": \"Failure\", \"message\": "
              "\"jobs.batch \\\"j\\\" already exists\", \"reason\": \"AlreadyExists\", \"code\": 409}",
         NULL},
        {404, "{\"itemNotFound\": {\"code\": 404, \"message\": \"Instance x could not be found.\"}}",
         NULL},
        {409, "{\"NeutronError\": {\"type\": \"SecurityGroupInUse\", \"message\": \"Security Group "
              "s in use.\", \"detail\": \"\"}}",
         NULL},
        {401, "{\"error\": {\"code\": 401, \"title\": \"Unauthorized\", \"message\": \"The request "
              "you have made requires authentication.\"}}",
         NULL},
        {502, "<html>Bad Gateway</html>\nmore", NULL},
        {418, NULL, NULL}};
    static const char *const want[] = {"jobs.batch \"j\" already exists",
                                       "Instance x could not be found.",
                                       "Security Group s in use.",
                                       "The request you have made requires authentication.",
                                       "<html>Bad Gateway</html>", "HTTP 418"};
    struct cld_retry none = {.attempts = 1};

    (void)state;
    for (size_t i = 0; i < 6; i++) {
        struct result r;
        script(&a[i], 1);
        r = run_call("GET", NULL, &none, -1);
        assert_string_equal(r.message, want[i]);
    }
}

static void test_strings(void **state)
{
    char buf[64];
    uint64_t rng = 0;

    (void)state;
    assert_true(cld_urlencode("orc.io/host=a b,c", buf, sizeof(buf)));
    assert_string_equal(buf, "orc.io%2Fhost%3Da%20b%2Cc");
    assert_false(cld_urlencode("0123456789", buf, 8));
    for (int i = 0; i < 1000; i++)
        assert_true(cld_rand(&rng, 7) < 7);
    assert_true(cld_transient(429) && cld_transient(503) && !cld_transient(404));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer),          cmocka_unit_test(test_retries),
        cmocka_unit_test(test_not_idempotent), cmocka_unit_test(test_retry_after_and_deadline),
        cmocka_unit_test(test_cancel),          cmocka_unit_test(test_api_messages),
        cmocka_unit_test(test_strings),
    };
    int rc;

    uv_loop_init(&T.loop);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    uv_loop_close(&T.loop);
    return rc;
}
