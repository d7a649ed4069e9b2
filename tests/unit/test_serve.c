/*
 * gpu-serve (gpu-runtime/workloads/serve) against a model trained here:
 * the DEEPaaS v2 metadata has its shape; predict classifies points whose
 * class the generator knows and answers exactly the in-process forward
 * pass, from JSON, a single "input", urlencoded and multipart forms and the
 * query string; bad input gets a 400 that says what is wrong, an unknown
 * model 404, a wrong method 405 with Allow; the HTTP layer keeps
 * connections alive, pipelines, answers 100-continue and HEAD, enforces its
 * limits (413, 431, 411, 505) and survives garbage; the binary ($GPU_SERVE)
 * refuses a missing or corrupt checkpoint and stops cleanly on SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

#include "../../gpu-runtime/workloads/serve/serve.h"
#include "../../gpu-runtime/workloads/train/train.h"
#include "../../orchestrator/base.h"
#include "gm_model.h"

/* ---- the server under test ---- */

static struct {
    char dir[256];
    char ckpt[512];
    struct gm_model model; /* what the server loaded, for the expected answers */
    pid_t pid;
    int out; /* its stdout */
    int port;
} srv;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *serve_bin(void)
{
    const char *b = getenv("GPU_SERVE");

    return b && *b ? b : NULL;
}

/* Runs gpu-serve with args; *out_fd gets its stdout and stderr. */
static pid_t spawn(char *const argv[], int *out_fd)
{
    int o[2];
    pid_t pid;

    assert_int_equal(pipe(o), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(o[1], 1);
        dup2(o[1], 2);
        close(o[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(o[1]);
    *out_fd = o[0];
    return pid;
}

/* Reads fd until EOF or needle (ms at most) into buf; true when found. */
static bool read_until(int fd, char *buf, size_t cap, const char *needle, int ms)
{
    int64_t end = mono_ms() + ms;
    size_t len = strlen(buf);

    while (!strstr(buf, needle)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - mono_ms());

        if (left <= 0 || poll(&p, 1, left) <= 0)
            return false;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0)
            return strstr(buf, needle) != NULL;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return true;
}

/* Waits for pid (ms at most; then kills it): its exit status or 128 + signal. */
static int reap(pid_t pid, int ms)
{
    int64_t end = mono_ms() + ms;
    int st;

    while (waitpid(pid, &st, WNOHANG) != pid) {
        if (mono_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int setup(void **state)
{
    struct gt_config c;
    struct gt_result r;
    struct gm_error err = {0};
    char buf[4096] = "";

    (void)state;
    if (test_mkdtemp(srv.dir, sizeof(srv.dir), "serve") < 0)
        return -1;
    snprintf(srv.ckpt, sizeof(srv.ckpt), "%s/checkpoint.bin", srv.dir);
    gt_config_default(&c);
    c.samples = 16000;
    c.epochs = 4;
    c.device = GT_DEVICE_CPU;
    c.quiet = true;
    c.out = srv.ckpt;
    if (gt_train(&c, &r, &err) < 0) {
        print_error("training: %s\n", err.msg);
        return -1;
    }
    print_message("model: loss %.4f, held-out accuracy %.3f\n", r.epochs[3].loss,
                  r.epochs[3].accuracy);
    gt_result_free(&r);
    if (gm_checkpoint_load(&srv.model, srv.ckpt, &err) < 0)
        return -1;
    srv.pid = -1;
    if (serve_bin() == NULL)
        return 0;
    char *argv[] = {(char *)serve_bin(), "--model", srv.ckpt, "--port", "0",
                    "--max-rows",        "64",      NULL};
    srv.pid = spawn(argv, &srv.out);
    if (!read_until(srv.out, buf, sizeof(buf), "/v2/models/\n", 10000)) {
        print_error("gpu-serve did not start:\n%s\n", buf);
        return -1;
    }
    const char *p = strstr(buf, "127.0.0.1:");
    srv.port = p ? atoi(p + 10) : 0;
    return srv.port > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        reap(srv.pid, 5000);
        close(srv.out);
    }
    gm_model_free(&srv.model);
    test_rm_tree(srv.dir);
    return 0;
}

#define NEED_SERVER()                                                                              \
    do {                                                                                           \
        if (srv.pid <= 0)                                                                          \
            skip();                                                                                \
    } while (0)

/* ---- a small HTTP client ---- */

struct client {
    int fd;
    char *buf;
    size_t len;
};

struct reply {
    int status;
    char head[8192];
    char *body; /* NUL-terminated, owned */
    size_t body_len;
};

static void client_open(struct client *c)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)srv.port)};

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    c->buf = malloc(1 << 21);
    assert_non_null(c->buf);
    c->len = 0;
}

static void client_close(struct client *c)
{
    close(c->fd);
    free(c->buf);
}

static void client_send(struct client *c, const void *data, size_t n)
{
    const char *p = data;

    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

        if (w <= 0)
            return; /* the server may have closed: the reply says why */
        p += w;
        n -= (size_t)w;
    }
}

/* More bytes (2 s at most): false at EOF or timeout. */
static bool client_fill(struct client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};

    if (poll(&p, 1, 2000) <= 0)
        return false;
    ssize_t n = recv(c->fd, c->buf + c->len, (1 << 21) - 1 - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    return true;
}

static const char *header(const struct reply *r, const char *name)
{
    static char value[256];
    const char *p = r->head;
    size_t n = strlen(name);

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1, *e = strstr(v, "\r\n");

            while (*v == ' ')
                v++;
            snprintf(value, sizeof(value), "%.*s", (int)(e - v), v);
            return value;
        }
    }
    return NULL;
}

/* Reads one response (a HEAD one has no body): 0, or -1 at EOF first. */
static int client_read(struct client *c, struct reply *r, bool head_only)
{
    char *end;

    memset(r, 0, sizeof(*r));
    c->buf[c->len] = '\0';
    while ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
        if (!client_fill(c))
            return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    r->status = atoi(r->head + 9);
    const char *cl = header(r, "Content-Length");
    size_t bl = head_only || cl == NULL ? 0 : (size_t)atol(cl);
    while (c->len < hl + bl)
        if (!client_fill(c))
            return -1;
    r->body = malloc(bl + 1);
    memcpy(r->body, c->buf + hl, bl);
    r->body[bl] = '\0';
    r->body_len = bl;
    memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
    c->len -= hl + bl;
    c->buf[c->len] = '\0';
    return 0;
}

/* One request on a fresh connection; the body parsed as JSON into *json
 * (NULL-safe) and the reply's status returned. */
static int request(const char *method, const char *path, const char *ctype, const char *body,
                   json_t **json, char *allow, size_t allow_len)
{
    struct client c;
    struct reply r;
    char head[1024];
    size_t bl = body ? strlen(body) : 0;

    client_open(&c);
    int n = snprintf(head, sizeof(head),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "",
                     ctype ? "\r\n" : "", bl);
    client_send(&c, head, (size_t)n);
    if (bl)
        client_send(&c, body, bl);
    assert_int_equal(client_read(&c, &r, strcmp(method, "HEAD") == 0), 0);
    assert_non_null(strstr(r.head, "Content-Type: application/json"));
    if (json) {
        json_error_t je;

        *json = json_loads(r.body, 0, &je);
        if (*json == NULL)
            fail_msg("not JSON (%s): %s", je.text, r.body);
    }
    if (allow) {
        const char *a = header(&r, "Allow");

        snprintf(allow, allow_len, "%s", a ? a : "");
    }
    free(r.body);
    client_close(&c);
    return r.status;
}

/* Expects status and an error message containing needle. */
static void expect_error(const char *method, const char *path, const char *ctype, const char *body,
                         int status, const char *needle)
{
    json_t *j;
    int st = request(method, path, ctype, body, &j, NULL, 0);
    const char *msg = json_string_value(json_object_get(j, "message"));

    if (st != status || msg == NULL || strstr(msg, needle) == NULL)
        fail_msg("%s %s: got %d '%s', expected %d with '%s'", method, path, st,
                 msg ? msg : "(no message)", status, needle);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    json_decref(j);
}

#define PREDICT "/v2/models/mlp-classifier/predict/"

/* ---- metadata ---- */

static void check_meta(json_t *m)
{
    assert_string_equal(json_string_value(json_object_get(m, "id")), "mlp-classifier");
    assert_string_equal(json_string_value(json_object_get(m, "name")), "mlp-classifier");
    assert_true(json_is_string(json_object_get(m, "description")));
    assert_true(json_is_string(json_object_get(m, "license")));
    assert_true(json_is_string(json_object_get(m, "author")));
    assert_int_equal(strlen(json_string_value(json_object_get(m, "version"))), 8);
    json_t *links = json_object_get(m, "links");
    assert_true(json_array_size(links) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(links, 0), "rel")),
                        "self");
    assert_string_equal(json_string_value(json_object_get(json_array_get(links, 0), "href")),
                        "/v2/models/mlp-classifier/");
    assert_int_equal(json_integer_value(json_object_get(m, "inputs")), 2);
    assert_int_equal(json_integer_value(json_object_get(m, "classes")), 3);
    assert_int_equal(json_integer_value(json_object_get(m, "params")),
                     (json_int_t)srv.model.n_params);
}

static void test_metadata(void **state)
{
    json_t *j, *one;

    (void)state;
    NEED_SERVER();
    assert_int_equal(request("GET", "/v2/models/", NULL, NULL, &j, NULL, 0), 200);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 1);
    check_meta(json_array_get(json_object_get(j, "models"), 0));
    assert_int_equal(request("GET", "/v2/models/mlp-classifier/", NULL, NULL, &one, NULL, 0), 200);
    check_meta(one);
    assert_true(json_equal(one, json_array_get(json_object_get(j, "models"), 0)));
    json_decref(j);
    json_decref(one);
    assert_int_equal(request("GET", "/v2/models", NULL, NULL, NULL, NULL, 0), 200);
    assert_int_equal(request("GET", "/v2/", NULL, NULL, &j, NULL, 0), 200);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "v2");
    assert_string_equal(json_string_value(json_object_get(j, "version")), "stable");
    json_decref(j);
    assert_int_equal(request("GET", "/", NULL, NULL, &j, NULL, 0), 200);
    assert_int_equal(json_array_size(json_object_get(j, "versions")), 1);
    json_decref(j);
    assert_int_equal(request("GET", "/v2/models/?x=1", NULL, NULL, NULL, NULL, 0), 200);
}

/* ---- predict ---- */

/* The labels and probabilities of a predict answer against the in-process
 * forward pass of the same rows: equal to the last bit. */
static void check_predictions(json_t *j, const float *x, size_t n, uint32_t *labels)
{
    const uint32_t k = srv.model.classes;
    float probs[64 * 3], work[8192];
    uint32_t want[64];
    json_t *preds = json_object_get(j, "predictions");

    assert_string_equal(json_string_value(json_object_get(j, "status")), "OK");
    assert_int_equal(json_array_size(preds), n);
    assert_true(n <= 64 && gm_forward_work_size(&srv.model) <= 8192);
    gm_forward(&srv.model, x, n, probs, want, work);
    for (size_t r = 0; r < n; r++) {
        json_t *p = json_array_get(preds, r), *pr = json_object_get(p, "probabilities");
        double sum = 0;

        assert_int_equal(json_integer_value(json_object_get(p, "label")), want[r]);
        assert_int_equal(json_array_size(pr), k);
        for (uint32_t c = 0; c < k; c++) {
            float got = (float)json_number_value(json_array_get(pr, c));

            assert_true(got == probs[r * k + c]);
            sum += got;
        }
        assert_float_equal(sum, 1.0, 1e-5);
        if (labels)
            labels[r] = want[r];
    }
}

static void test_predict_known_points(void **state)
{
    static const double ts[] = {0.35, 0.5, 0.65, 0.8};
    struct gm_data_spec spec;
    float x[12 * 2];
    uint32_t labels[12];
    char body[4096];
    size_t o = 0;
    json_t *j;

    (void)state;
    NEED_SERVER();
    gm_data_spec_default(&spec);
    o += (size_t)snprintf(body + o, sizeof(body) - o, "{\"inputs\": [");
    for (uint32_t k = 0; k < 3; k++)
        for (int i = 0; i < 4; i++) {
            float *p = x + 2 * (k * 4 + (uint32_t)i);

            gm_dataset_point(&spec, k, ts[i], p);
            o += (size_t)snprintf(body + o, sizeof(body) - o, "%s[%.9g, %.9g]",
                                  k + (uint32_t)i ? ", " : "", (double)p[0], (double)p[1]);
        }
    snprintf(body + o, sizeof(body) - o, "]}");
    assert_int_equal(request("POST", PREDICT, "application/json", body, &j, NULL, 0), 200);
    check_predictions(j, x, 12, labels);
    json_decref(j);
    /* points on arm k's centre line are class k */
    for (uint32_t r = 0; r < 12; r++)
        if (labels[r] != r / 4)
            fail_msg("point %u (arm %u, t %.2f) predicted as %u", r, r / 4, ts[r % 4], labels[r]);
}

static void test_predict_formats(void **state)
{
    const float x[2] = {0.25f, -0.5f};
    json_t *j;

    (void)state;
    NEED_SERVER();
    static const struct {
        const char *ctype, *body, *path;
    } forms[] = {
        {"application/json", "{\"input\": [0.25, -0.5]}", PREDICT},
        {"application/json", "{\"inputs\": [0.25, -0.5]}", PREDICT},
        {"application/json; charset=utf-8", "  {\"inputs\": [[0.25, -0.5]]}\n", PREDICT},
        {"application/x-www-form-urlencoded", "inputs=%5B%5B0.25%2C+-0.5%5D%5D", PREDICT},
        {"application/x-www-form-urlencoded", "other=1&input=%5B0.25%2C-0.5%5D", PREDICT},
        {"application/x-www-form-urlencoded", "{\"inputs\": [[0.25, -0.5]]}",
         PREDICT}, /* curl -d */
        {"text/plain", "{\"inputs\": [[0.25, -0.5]]}", PREDICT},
        {NULL, "{\"inputs\": [[0.25, -0.5]]}", PREDICT},
        {"multipart/form-data; boundary=XyZ",
         "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n1\r\n"
         "--XyZ\r\nContent-Disposition: form-data; name=\"inputs\"\r\n\r\n[[0.25, -0.5]]\r\n"
         "--XyZ--\r\n",
         PREDICT},
        {NULL, NULL, PREDICT "?inputs=%5B0.25,-0.5%5D"},
        {NULL, NULL, "/v2/models/mlp-classifier/predict?inputs=%5B%5B0.25,-0.5%5D%5D"},
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        int st = request("POST", forms[i].path, forms[i].ctype, forms[i].body, &j, NULL, 0);

        if (st != 200)
            fail_msg("form %zu: %d %s", i, st, json_string_value(json_object_get(j, "message")));
        check_predictions(j, x, 1, NULL);
        json_decref(j);
    }
}

static void test_predict_errors(void **state)
{
    char many[65 * 12 + 32];
    size_t o;

    (void)state;
    NEED_SERVER();
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 2]", 400, "not JSON");
    expect_error("POST", PREDICT, "application/json", "hello", 400, "not JSON");
    expect_error("POST", PREDICT, "application/json", "", 400, "empty body");
    expect_error("POST", PREDICT, "application/json", "[[1, 2]]", 400, "JSON object");
    expect_error("POST", PREDICT, "application/json", "{\"rows\": [[1, 2]]}", 400,
                 "missing \"inputs\"");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": []}", 400, "empty");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": 7}", 400, "must be a list");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 2, 3]]}", 400,
                 "inputs[0] has 3 values; the model takes 2");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 2], [1]]}", 400,
                 "inputs[1] has 1 values");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, \"2\"]]}", 400,
                 "inputs[0][1] is not a number");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, null]]}", 400,
                 "is not a number");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 2], 3]}", 400,
                 "inputs[1] is not a list");
    expect_error("POST", PREDICT, "application/json", "{\"input\": [1, true]}", 400,
                 "input[1] is not a number");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 1e39]]}", 400,
                 "float range");
    expect_error("POST", PREDICT, "application/json", "{\"inputs\": [[1, 2]], \"inputs\": []}", 400,
                 "not JSON");
    o = (size_t)snprintf(many, sizeof(many), "{\"inputs\": [");
    for (int i = 0; i < 65; i++) /* the server was started with --max-rows 64 */
        o += (size_t)snprintf(many + o, sizeof(many) - o, "%s[1, 2]", i ? "," : "");
    snprintf(many + o, sizeof(many) - o, "]}");
    expect_error("POST", PREDICT, "application/json", many, 400, "too many rows: 65");
    expect_error("POST", PREDICT, "application/x-www-form-urlencoded", "rows=1", 400,
                 "no field \"inputs\"");
    expect_error("POST", PREDICT, "application/x-www-form-urlencoded", "inputs=%ZZ", 400,
                 "urlencoded");
    expect_error("POST", PREDICT, "application/x-www-form-urlencoded", "inputs=%5B1", 400,
                 "is not JSON");
    expect_error("POST", PREDICT, "multipart/form-data; boundary=B", "garbage", 400, "multipart");
    expect_error("POST", PREDICT, "image/png", "\x89PNG", 415, "Content-Type image/png");
}

static void test_not_found_and_methods(void **state)
{
    char allow[64];
    json_t *j;

    (void)state;
    NEED_SERVER();
    expect_error("GET", "/v2/models/resnet/", NULL, NULL, 404, "no model named 'resnet'");
    expect_error("POST", "/v2/models/resnet/predict/", "application/json", "{\"inputs\": [[1, 2]]}",
                 404, "no model named 'resnet'");
    expect_error("GET", "/v3/", NULL, NULL, 404, "no route");
    expect_error("GET", "/v2/models/mlp-classifier/train/", NULL, NULL, 404, "no route");
    assert_int_equal(request("GET", PREDICT, NULL, NULL, &j, allow, sizeof(allow)), 405);
    assert_string_equal(allow, "POST");
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")), "use POST"));
    json_decref(j);
    assert_int_equal(request("DELETE", "/v2/models/", NULL, NULL, NULL, allow, sizeof(allow)), 405);
    assert_string_equal(allow, "GET, HEAD");
    assert_int_equal(request("POST", "/v2/models/mlp-classifier/", "application/json", "{}", NULL,
                             allow, sizeof(allow)),
                     405);
    assert_int_equal(request("HEAD", "/v2/models/", NULL, NULL, NULL, NULL, 0), 200);
}

/* ---- HTTP ---- */

/* Sends raw bytes on a fresh connection and reads one reply. */
static int raw(const char *bytes, size_t n, struct reply *r)
{
    struct client c;
    int rc;

    client_open(&c);
    client_send(&c, bytes, n);
    rc = client_read(&c, r, false);
    client_close(&c);
    return rc < 0 ? -1 : r->status;
}

static void test_http_keepalive_pipelining(void **state)
{
    static const char get[] = "GET /v2/models/ HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char post[] = "POST " PREDICT " HTTP/1.1\r\nHost: x\r\n"
                               "Content-Type: application/json\r\nContent-Length: 21\r\n\r\n"
                               "{\"input\": [0.1, 0.2]}";
    struct client c;
    struct reply r;
    char three[512];

    (void)state;
    NEED_SERVER();
    client_open(&c);
    for (int i = 0; i < 3; i++) { /* one connection, one request after the other */
        client_send(&c, get, sizeof(get) - 1);
        assert_int_equal(client_read(&c, &r, false), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(header(&r, "Connection"), "keep-alive");
        free(r.body);
    }
    /* three requests in one write: three answers in order */
    int n = snprintf(three, sizeof(three), "%s%s%s", get, post, get);
    client_send(&c, three, (size_t)n);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(client_read(&c, &r, false), 0);
        assert_int_equal(r.status, 200);
        assert_true((strstr(r.body, "predictions") != NULL) == (i == 1));
        free(r.body);
    }
    /* a request split into small pieces */
    for (size_t i = 0; i < sizeof(post) - 1; i += 7) {
        client_send(&c, post + i, sizeof(post) - 1 - i < 7 ? sizeof(post) - 1 - i : 7);
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(client_read(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    /* Expect: 100-continue */
    static const char expect[] = "POST " PREDICT " HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 21\r\n\r\n";
    client_send(&c, expect, sizeof(expect) - 1);
    while (!strstr(c.buf, "\r\n\r\n"))
        assert_true(client_fill(&c));
    assert_int_equal(strncmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
    memmove(c.buf, c.buf + 25, c.len - 25);
    c.len -= 25;
    client_send(&c, "{\"input\": [0.1, 0.2]}", 21);
    assert_int_equal(client_read(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    free(r.body);
    /* HTTP/1.0 closes after the answer */
    static const char old[] = "GET /v2/ HTTP/1.0\r\n\r\n";
    client_send(&c, old, sizeof(old) - 1);
    assert_int_equal(client_read(&c, &r, false), 0);
    assert_string_equal(header(&r, "Connection"), "close");
    free(r.body);
    assert_false(client_fill(&c)); /* EOF */
    client_close(&c);
}

static void test_http_limits(void **state)
{
    struct reply r;
    char *big;
    size_t n;

    (void)state;
    NEED_SERVER();
    static const char *const bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /v2/models/\r\n\r\n",
        "GET v2 HTTP/1.1\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\nNo-Colon\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET /v2/ HTTP/1.1\r\nHost : x\r\n\r\n",
        "GET /v2/ HTTP/1.1\nHost: x\r\n\r\n",
        "POST " PREDICT " HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "POST " PREDICT " HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = raw(bad[i], strlen(bad[i]), &r);

        if (st != 400)
            fail_msg("request %zu: status %d, expected 400", i, st);
        assert_non_null(strstr(r.body, "\"status\":\"error\""));
        free(r.body);
    }
    static const char v2[] = "GET /v2/ HTTP/2.0\r\n\r\n";
    assert_int_equal(raw(v2, sizeof(v2) - 1, &r), 505);
    free(r.body);
    static const char chunked[] = "POST " PREDICT " HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "5\r\nhello\r\n0\r\n\r\n";
    assert_int_equal(raw(chunked, sizeof(chunked) - 1, &r), 411);
    free(r.body);
    static const char expect[] = "GET /v2/ HTTP/1.1\r\nExpect: teapot\r\n\r\n";
    assert_int_equal(raw(expect, sizeof(expect) - 1, &r), 417);
    free(r.body);
    /* a body over the limit (1 MiB) is refused on its head */
    static const char huge[] = "POST " PREDICT " HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n{";
    assert_int_equal(raw(huge, sizeof(huge) - 1, &r), 413);
    assert_non_null(strstr(r.body, "at most 1048576"));
    free(r.body);
    /* and so is a head over 16 KiB */
    n = 20000;
    big = malloc(n + 64);
    n = (size_t)snprintf(big, n + 64, "GET /v2/ HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', 20000 - n);
    memcpy(big + 20000, "\r\n\r\n", 5);
    assert_int_equal(raw(big, 20004, &r), 431);
    free(r.body);
    free(big);
}

static void test_http_garbage_survives(void **state)
{
    struct gm_rng rng;
    unsigned char junk[3000];

    (void)state;
    NEED_SERVER();
    gm_rng_seed(&rng, 99, 0);
    for (int i = 0; i < 30; i++) {
        struct client c;
        size_t n = 1 + gm_rng_below(&rng, sizeof(junk));

        for (size_t k = 0; k < n; k++)
            junk[k] = (unsigned char)gm_rng_below(&rng, 256);
        if (i % 3 == 0)
            memcpy(junk, "POST / HTTP/1.1\r\n", 17 < n ? 17 : n);
        client_open(&c);
        client_send(&c, junk, n);
        if (i % 2) { /* half-close, then read what comes (or EOF) */
            struct reply r;

            shutdown(c.fd, SHUT_WR);
            if (client_read(&c, &r, false) == 0)
                free(r.body);
        }
        client_close(&c); /* often mid-request */
    }
    assert_int_equal(request("GET", "/v2/models/", NULL, NULL, NULL, NULL, 0), 200);
}

/* ---- in-process: the routes and the form decoders without sockets ---- */

static void test_forms(void **state)
{
    char *v;
    size_t n;

    (void)state;
    assert_int_equal(gs_form_field("a=1&inputs=%5B1%2C+2%5D&b", 23, "inputs", &v, &n), 0);
    assert_string_equal(v, "[1, 2]");
    assert_int_equal(n, 6);
    orc_free(v);
    assert_int_equal(gs_form_field("inputs", 6, "inputs", &v, &n), 0);
    assert_string_equal(v, "");
    orc_free(v);
    assert_int_equal(gs_form_field("in%70uts=x", 10, "inputs", &v, &n), 0);
    assert_string_equal(v, "x");
    orc_free(v);
    assert_int_equal(gs_form_field("a=1", 3, "inputs", &v, &n), ORC_ENOTFOUND);
    assert_int_equal(gs_form_field("inputs=%4", 9, "inputs", &v, &n), ORC_EFORMAT);
    assert_int_equal(gs_form_field("inputs=%g0", 10, "inputs", &v, &n), ORC_EFORMAT);
    static const char mp[] =
        "preamble\r\n--b\r\nContent-Disposition: form-data; name=\"inputs\"\r\n"
        "Content-Type: text/plain\r\n\r\n[[1,2]]\r\n--b--\r\n";
    assert_int_equal(gs_multipart_field(mp, sizeof(mp) - 1, "multipart/form-data; boundary=\"b\"",
                                        "inputs", &v, &n),
                     0);
    assert_string_equal(v, "[[1,2]]");
    orc_free(v);
    assert_int_equal(
        gs_multipart_field(mp, sizeof(mp) - 1, "multipart/form-data; boundary=b", "input", &v, &n),
        ORC_ENOTFOUND);
    assert_int_equal(
        gs_multipart_field(mp, sizeof(mp) - 1, "multipart/form-data", "inputs", &v, &n),
        ORC_EFORMAT);
    assert_int_equal(
        gs_multipart_field(mp, 40, "multipart/form-data; boundary=b", "inputs", &v, &n),
        ORC_EFORMAT);
}

static void test_handle_in_process(void **state)
{
    struct gs_app app = {0};
    struct gs_response resp;
    struct gm_error err = {0};
    json_t *j;

    (void)state;
    assert_int_equal(gs_app_from_model(&app, &srv.model, "spirals", &err), 0);
    struct gs_request req = {"POST",
                             "/v2/models/spirals/predict",
                             NULL,
                             "application/json",
                             "{\"inputs\": [[0.25, -0.5]]}",
                             26};
    gs_handle(&app, &req, &resp);
    assert_int_equal(resp.status, 200);
    j = json_loads(resp.body, 0, NULL);
    const float x[2] = {0.25f, -0.5f};
    check_predictions(j, x, 1, NULL);
    json_decref(j);
    orc_free(resp.body);
    struct gs_request meta = {"GET", "/v2/models/spirals/", NULL, NULL, "", 0};
    gs_handle(&app, &meta, &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "\"id\":\"spirals\""));
    orc_free(resp.body);
    struct gs_request other = {"GET", "/v2/models/mlp-classifier/", NULL, NULL, "", 0};
    gs_handle(&app, &other, &resp);
    assert_int_equal(resp.status, 404);
    orc_free(resp.body);
    gs_app_free(&app);
    assert_int_equal(gs_app_from_model(&app, &srv.model, "a/b", &err), ORC_EINVAL);
    assert_non_null(strstr(err.msg, "--name"));
}

/* ---- the binary ---- */

/* Runs gpu-serve with args; expects status and needle in its output. */
static void expect_exit(int status, const char *needle, char *const argv[])
{
    char out[8192] = "";
    int fd;
    pid_t pid = spawn(argv, &fd);

    read_until(fd, out, sizeof(out), "\x01never", 5000);
    close(fd);
    assert_int_equal(reap(pid, 5000), status);
    if (strstr(out, needle) == NULL)
        fail_msg("expected '%s' in:\n%s", needle, out);
}

static void test_cli_errors(void **state)
{
    char bad[600], port[16];
    unsigned char *buf;
    size_t len = 0;

    (void)state;
    if (serve_bin() == NULL)
        skip();
    char *missing[] = {(char *)serve_bin(), "--model", "/nonexistent/ck.bin", "--port", "0", NULL};
    expect_exit(1, "No such file", missing);
    snprintf(bad, sizeof(bad), "%s/corrupt.bin", srv.dir);
    buf = (unsigned char *)test_read_file(srv.ckpt, &len);
    assert_non_null(buf);
    buf[len / 2] ^= 1;
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
    free(buf);
    char *corrupt[] = {(char *)serve_bin(), "--model", bad, "--port", "0", NULL};
    expect_exit(1, "checksum mismatch", corrupt);
    char *none[] = {(char *)serve_bin(), "--port", "0", NULL};
    expect_exit(2, "--model", none);
    char *badport[] = {(char *)serve_bin(), "--model", srv.ckpt, "--port", "http", NULL};
    expect_exit(2, "--port", badport);
    char *unknown[] = {(char *)serve_bin(), "--model", srv.ckpt, "--verbose", NULL};
    expect_exit(2, "--verbose", unknown);
    if (srv.pid > 0) { /* the port the running server holds */
        snprintf(port, sizeof(port), "%d", srv.port);
        char *busy[] = {(char *)serve_bin(), "--model", srv.ckpt, "--port", port, NULL};
        expect_exit(1, "in use", busy);
    }
}

static void test_sigterm(void **state)
{
    int64_t t0;
    struct client c;

    (void)state;
    NEED_SERVER();
    client_open(&c); /* an idle keep-alive connection does not hold the stop up */
    t0 = mono_ms();
    kill(srv.pid, SIGTERM);
    assert_int_equal(reap(srv.pid, 5000), 0);
    assert_true(mono_ms() - t0 < 3000);
    srv.pid = -1;
    close(srv.out);
    client_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_predict_known_points),
        cmocka_unit_test(test_predict_formats),
        cmocka_unit_test(test_predict_errors),
        cmocka_unit_test(test_not_found_and_methods),
        cmocka_unit_test(test_http_keepalive_pipelining),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_http_garbage_survives),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_handle_in_process),
        cmocka_unit_test(test_cli_errors),
        cmocka_unit_test(test_sigterm),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
