/*
 * The HTTP client on the loop that drivers get as host->http
 * (orchestrator/engine/http_client.c) against a real HTTP/1.1 server in a
 * thread of this test (one thread per connection): methods, request
 * headers and bodies (binary too), response bodies and headers, statuses
 * as answers, truncation, refused connections, timeouts, cancel, header
 * injection refused, 50 requests at once, abandon and close with requests
 * in flight; over TLS (certificates made by the openssl tool at set-up):
 * the peer verified against ca_file, an unknown CA and a wrong host name
 * refused, a client certificate presented to a server that demands one.
 */
#define _GNU_SOURCE /* strcasestr */
#include "testutil.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "../../orchestrator/engine/http_client.h"

/* ---- the server ------------------------------------------------------------------------ */

/* A listening socket: plain HTTP (ctx NULL) or TLS with ctx. */
struct listener {
    int fd;
    unsigned port;
    SSL_CTX *ctx;
    pthread_t thread;
};
enum { PLAIN, TLS, MTLS, NLISTENERS };
static struct listener listeners[NLISTENERS];
static unsigned server_port; /* the plain one's */
static volatile int server_stop;
static char pki[256]; /* the certificates' directory; "" when they could not be made */

struct conn {
    int fd;
    SSL *ssl;
};

static void send_all(struct conn *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = c->ssl ? SSL_write(c->ssl, p, (int)n) : send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static ssize_t recv_some(struct conn *c, char *p, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, p, (int)n) : recv(c->fd, p, n, 0);
}

static void respond(struct conn *fd, int code, const char *extra_headers, const char *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Reply:  yes \r\n%s"
                     "Connection: close\r\n\r\n",
                     code, len, extra_headers ? extra_headers : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* The value of header name in the request head req (lower-case match). */
static void req_header(const char *req, const char *name, char *out, size_t cap)
{
    const char *p = strcasestr(req, name);
    size_t n = 0;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(name);
    while (*p == ' ')
        p++;
    while (p[n] && p[n] != '\r' && n + 1 < cap)
        n++;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* /echo: "METHOD PATH|X-Test|body bytes|body"; /status/N; /big/N; /slow. */
static void serve_one(struct conn *fd, const char *req, const char *body, size_t body_len)
{
    char method[16] = "", path[256] = "", xtest[128], out[2048];
    int n;

    sscanf(req, "%15s %255s", method, path);
    if (strcmp(path, "/echo") == 0) {
        req_header(req, "\nX-Test:", xtest, sizeof(xtest));
        n = snprintf(out, sizeof(out), "%s %s|%s|%zu|", method, path, xtest, body_len);
        if (body_len < sizeof(out) - (size_t)n) {
            memcpy(out + n, body, body_len);
            n += (int)body_len;
        }
        respond(fd, 200, "Content-Type: text/plain\r\n",
                strcmp(method, "HEAD") == 0 ? "" : out, strcmp(method, "HEAD") == 0 ? 0 : (size_t)n);
    } else if (strncmp(path, "/status/", 8) == 0) {
        respond(fd, atoi(path + 8), "Retry-After: 2\r\n", "s", 1);
    } else if (strncmp(path, "/big/", 5) == 0) {
        size_t len = (size_t)atol(path + 5);
        char *big = malloc(len);
        memset(big, 'a', len);
        respond(fd, 200, NULL, big, len);
        free(big);
    } else if (strcmp(path, "/slow") == 0) {
        for (int i = 0; i < 50 && !server_stop; i++)
            usleep(100000);
        respond(fd, 200, NULL, "late", 4);
    } else {
        respond(fd, 404, NULL, "no", 2);
    }
}

struct conn_arg {
    int fd;
    SSL_CTX *ctx;
};

static void serve_conn(struct conn *fd)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;

    while (len + 1 < sizeof(buf)) {
        ssize_t r = recv_some(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) == NULL)
            continue;
        char cl[32];
        size_t head = (size_t)(end + 4 - buf), want;
        req_header(buf, "\nContent-Length:", cl, sizeof(cl));
        want = (size_t)atol(cl);
        if (len - head >= want) {
            buf[head - 2] = '\0';
            serve_one(fd, buf, buf + head, want);
            break;
        }
    }
}

static void *conn_thread(void *arg)
{
    struct conn_arg a = *(struct conn_arg *)arg;
    struct conn c = {.fd = a.fd};

    free(arg);
    if (a.ctx == NULL) {
        serve_conn(&c);
    } else if ((c.ssl = SSL_new(a.ctx)) != NULL) {
        SSL_set_fd(c.ssl, a.fd);
        if (SSL_accept(c.ssl) == 1) {
            serve_conn(&c);
            SSL_shutdown(c.ssl);
        }
        SSL_free(c.ssl);
    }
    ERR_clear_error();
    close(a.fd);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct listener *l = arg;

    for (;;) {
        int fd = accept(l->fd, NULL, NULL);
        struct conn_arg *a;
        pthread_t t;
        if (fd < 0)
            return NULL; /* closed by server_close */
        a = malloc(sizeof(*a));
        a->fd = fd;
        a->ctx = l->ctx;
        if (pthread_create(&t, NULL, conn_thread, a) == 0) {
            pthread_detach(t);
        } else {
            free(a);
            close(fd);
        }
    }
}

static int listener_start(struct listener *l)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(l->fd, 128) < 0 || getsockname(l->fd, (struct sockaddr *)&a, &alen) < 0)
        return -1;
    l->port = ntohs(a.sin_port);
    return pthread_create(&l->thread, NULL, accept_thread, l) == 0 ? 0 : -1;
}

/* A CA, a server certificate for 127.0.0.1 and a client certificate it
 * signed, in pki (by the openssl tool). */
static bool make_pki(void)
{
    char cmd[2400];

    if (test_mkdtemp(pki, sizeof(pki), "orc-http-pki") < 0)
        return false;
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && {"
             " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "  -keyout ca.key -out ca.pem -subj /CN=orc-test-ca -days 2 &&"
             " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "  -keyout server.key -out server.csr -subj /CN=127.0.0.1 &&"
             " printf 'subjectAltName=IP:127.0.0.1\n' >server.ext &&"
             " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             "  -out server.pem -days 2 -extfile server.ext &&"
             " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             "  -keyout client.key -out client.csr -subj /CN=orc-driver &&"
             " openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             "  -out client.pem -days 2; } >pki.log 2>&1",
             pki);
    if (system(cmd) != 0) {
        print_message("could not make certificates (openssl, log in %s/pki.log)\n", pki);
        return false;
    }
    return true;
}

static SSL_CTX *server_ctx(bool demand_client_cert)
{
    char crt[300], key[300], ca[300];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    snprintf(crt, sizeof(crt), "%s/server.pem", pki);
    snprintf(key, sizeof(key), "%s/server.key", pki);
    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    if (ctx == NULL || SSL_CTX_use_certificate_file(ctx, crt, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return NULL;
    if (demand_client_cert) {
        SSL_CTX_load_verify_locations(ctx, ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
}

static int server_start(void **state)
{
    (void)state;
    /* as the daemon does: a peer that hangs up mid-write (a TLS handshake
     * the client refused) is an error return, not a signal */
    signal(SIGPIPE, SIG_IGN);
    if (listener_start(&listeners[PLAIN]) < 0)
        return -1;
    server_port = listeners[PLAIN].port;
    if (!make_pki()) {
        pki[0] = '\0';
        return 0; /* the TLS test fails and says why */
    }
    listeners[TLS].ctx = server_ctx(false);
    listeners[MTLS].ctx = server_ctx(true);
    if (listeners[TLS].ctx == NULL || listeners[MTLS].ctx == NULL ||
        listener_start(&listeners[TLS]) < 0 || listener_start(&listeners[MTLS]) < 0)
        return -1;
    return 0;
}

static int server_close(void **state)
{
    (void)state;
    server_stop = 1;
    for (int i = 0; i < NLISTENERS; i++) {
        if (listeners[i].port == 0)
            continue;
        shutdown(listeners[i].fd, SHUT_RDWR);
        close(listeners[i].fd);
        pthread_join(listeners[i].thread, NULL);
    }
    usleep(200000); /* the slow handlers see server_stop */
    for (int i = 0; i < NLISTENERS; i++)
        SSL_CTX_free(listeners[i].ctx);
    if (pki[0])
        test_rm_tree(pki);
    return 0;
}

/* ---- the client ------------------------------------------------------------------------ */

static uv_loop_t loop;
static struct orc_http *http;
static int owner_a, owner_b;

struct call {
    orc_http_req_t req;
    int done;
    int status;
};

static void on_done(orc_http_req_t *req, int status)
{
    struct call *c = req->data;
    c->done++;
    c->status = status;
}

static void run_until(const int *flag, int ms)
{
    uint64_t end = uv_now(&loop) + (uint64_t)ms;

    while (!*flag && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(500);
        uv_update_time(&loop);
    }
}

static int each_setup(void **state)
{
    (void)state;
    assert_int_equal(0, uv_loop_init(&loop));
    assert_int_equal(0, orc_http_new(&loop, &http));
    return 0;
}

static void closed(void *ud)
{
    *(int *)ud = 1;
}

static int each_teardown(void **state)
{
    int done = 0;

    (void)state;
    orc_http_close(http, closed, &done);
    run_until(&done, 5000);
    assert_true(done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(0, uv_loop_close(&loop));
    return 0;
}

static char url_buf[8][128];

static const char *url(int slot, const char *path)
{
    snprintf(url_buf[slot], sizeof(url_buf[slot]), "http://127.0.0.1:%u%s", server_port, path);
    return url_buf[slot];
}

static void start(struct call *c, const void *owner, const struct orc_http_request *r)
{
    memset(c, 0, sizeof(*c));
    c->req.data = c;
    c->req.cb = on_done;
    assert_int_equal(0, orc_http_request(http, owner, &c->req, r));
    assert_int_equal(c->done, 0); /* never inside the call */
}

static void call(struct call *c, const struct orc_http_request *r)
{
    start(c, &owner_a, r);
    run_until(&c->done, 10000);
    assert_int_equal(c->done, 1);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_methods_headers_bodies(void **state)
{
    static const char *const hdrs[] = {"X-Test: one two", "Content-Type: application/json", NULL};
    static const char binary[] = {'a', '\0', 'b'};
    struct orc_http_request r = {.method = "GET", .url = url(0, "/echo"), .headers = hdrs};
    struct call c;
    char v[64];

    (void)state;
    call(&c, &r);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.code, 200);
    assert_string_equal(c.req.body, "GET /echo|one two|0|");
    assert_string_equal(orc_http_header(&c.req, "x-reply", v, sizeof(v)), "yes");
    assert_string_equal(orc_http_header(&c.req, "CONTENT-TYPE", v, sizeof(v)), "text/plain");
    assert_null(orc_http_header(&c.req, "X-Absent", v, sizeof(v)));
    assert_null(orc_http_header(&c.req, "X-Rep", v, sizeof(v))); /* a prefix is not a name */
    assert_string_equal(orc_http_header(&c.req, "x-reply", v, 3), "ye"); /* cut to fit */
    orc_http_release(&c.req);
    assert_null(c.req.body);
    assert_null(c.req.headers);

    static const char *const methods[] = {"POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < 4; i++) {
        char want[64];
        r.method = methods[i];
        r.body = "{\"k\": 1}";
        r.body_len = 8;
        call(&c, &r);
        assert_int_equal(c.status, 0);
        snprintf(want, sizeof(want), "%s /echo|one two|8|{\"k\": 1}", methods[i]);
        assert_string_equal(c.req.body, want);
        orc_http_release(&c.req);
    }
    /* counted bytes, a NUL among them */
    r.method = "POST";
    r.body = binary;
    r.body_len = sizeof(binary);
    call(&c, &r);
    assert_int_equal(c.req.body_len, strlen("POST /echo|one two|3|") + 3);
    assert_memory_equal(c.req.body + c.req.body_len - 3, binary, 3);
    orc_http_release(&c.req);
    /* a POST without a body sends an empty one; DELETE without one sends none */
    r.body = NULL;
    r.body_len = 0;
    call(&c, &r);
    assert_string_equal(c.req.body, "POST /echo|one two|0|");
    orc_http_release(&c.req);
    r.method = "HEAD";
    call(&c, &r);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.code, 200);
    assert_int_equal(c.req.body_len, 0);
    orc_http_release(&c.req);
}

static void test_statuses_are_answers(void **state)
{
    static const int codes[] = {201, 404, 409, 429, 500, 503};
    struct orc_http_request r = {.method = "GET"};
    struct call c;
    char path[32], v[16];

    (void)state;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        snprintf(path, sizeof(path), "/status/%d", codes[i]);
        r.url = url(0, path);
        call(&c, &r);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.req.code, codes[i]);
        assert_string_equal(orc_http_header(&c.req, "Retry-After", v, sizeof(v)), "2");
        assert_string_equal(c.req.error, "");
        orc_http_release(&c.req);
    }
}

static void test_body_is_bounded(void **state)
{
    struct orc_http_request r = {.method = "GET", .url = url(0, "/big/300000"), .max_body = 1000};
    struct call c;

    (void)state;
    call(&c, &r);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.body_len, 1000);
    assert_true(c.req.truncated);
    assert_int_equal(strlen(c.req.body), 1000);
    orc_http_release(&c.req);
    r.max_body = 0; /* default 8 MiB: all of it */
    call(&c, &r);
    assert_int_equal(c.req.body_len, 300000);
    assert_false(c.req.truncated);
    orc_http_release(&c.req);
}

static void test_refused_and_timeout(void **state)
{
    char refused[128];
    struct orc_http_request r = {.method = "GET", .url = refused};
    struct call c;

    (void)state;
    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/x", test_free_port());
    call(&c, &r);
    assert_int_equal(c.status, ORC_EHTTP);
    assert_int_equal(c.req.code, 0);
    assert_non_null(strstr(c.req.error, "GET http://127.0.0.1:"));
    assert_non_null(strstr(c.req.error, "onnect"));

    r.url = url(0, "/slow");
    r.timeout_ms = 300;
    call(&c, &r);
    assert_int_equal(c.status, ORC_EHTTP);
    assert_non_null(strcasestr(c.req.error, "timed out"));
    orc_http_release(&c.req);
}

/* A core POST that may reach public addresses only (callbacks). */
struct post_result {
    int done, rc;
    long status;
    char error[256];
};

static void on_posted(void *ud, int rc, long status, const char *error)
{
    struct post_result *p = ud;

    p->done++;
    p->rc = rc;
    p->status = status;
    snprintf(p->error, sizeof(p->error), "%s", error ? error : "");
}

static void test_public_only(void **state)
{
    struct orc_http_post p = {.url = url(0, "/x"), .body = "{}", .timeout_ms = 5000,
                              .public_only = true};
    struct post_result res = {0};
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    static const char *const private4[] = {"127.0.0.1", "10.0.0.8", "172.16.5.4", "172.31.255.1",
                                           "192.168.1.1", "169.254.169.254", "100.64.0.1",
                                           "0.0.0.0", "224.0.0.1", NULL};
    static const char *const public4[] = {"8.8.8.8", "172.32.0.1", "100.128.0.1", "193.206.1.1",
                                          NULL};
    static const char *const private6[] = {"::1", "::", "fe80::1", "fd00::5", "ff02::1",
                                           "::ffff:127.0.0.1", "::ffff:10.1.1.1", NULL};

    (void)state;
    /* the address rules */
    for (size_t i = 0; private4[i]; i++) {
        assert_int_equal(inet_pton(AF_INET, private4[i], &v4.sin_addr), 1);
        if (orc_addr_private_kind((struct sockaddr *)&v4) == NULL)
            fail_msg("%s counted as public", private4[i]);
    }
    for (size_t i = 0; public4[i]; i++) {
        assert_int_equal(inet_pton(AF_INET, public4[i], &v4.sin_addr), 1);
        if (orc_addr_private_kind((struct sockaddr *)&v4) != NULL)
            fail_msg("%s counted as private", public4[i]);
    }
    for (size_t i = 0; private6[i]; i++) {
        assert_int_equal(inet_pton(AF_INET6, private6[i], &v6.sin6_addr), 1);
        if (orc_addr_private_kind((struct sockaddr *)&v6) == NULL)
            fail_msg("%s counted as public", private6[i]);
    }
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr), 1);
    assert_null(orc_addr_private_kind((struct sockaddr *)&v6));
    /* a name that resolves to loopback is refused when curl connects, saying so */
    snprintf(url_buf[1], sizeof(url_buf[1]), "http://localhost:%u/x", server_port);
    p.url = url_buf[1];
    assert_int_equal(orc_http_post(http, &p, on_posted, &res), 0);
    run_until(&res.done, 10000);
    assert_int_equal(res.done, 1);
    assert_int_equal(res.rc, ORC_EDENIED);
    assert_non_null(strstr(res.error, "resolves to a loopback address"));
    /* the same without the rule reaches the server */
    p.public_only = false;
    res = (struct post_result){0};
    assert_int_equal(orc_http_post(http, &p, on_posted, &res), 0);
    run_until(&res.done, 10000);
    assert_int_equal(res.rc, 0);
    assert_true(res.status > 0);
}

static void test_cancel(void **state)
{
    struct orc_http_request r = {.method = "GET", .url = url(0, "/slow")};
    struct call c;

    (void)state;
    start(&c, &owner_a, &r);
    run_until(&c.done, 200);
    assert_int_equal(0, orc_http_cancel(http, &c.req));
    assert_int_equal(c.done, 0); /* later, not inside cancel */
    assert_int_equal(0, orc_http_cancel(http, &c.req)); /* twice: still one callback */
    run_until(&c.done, 2000);
    assert_int_equal(c.done, 1);
    assert_int_equal(c.status, ORC_ECANCELED);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(c.done, 1);
    assert_int_equal(ORC_ENOTFOUND, orc_http_cancel(http, &c.req));
    orc_http_release(&c.req);
}

static void test_bad_requests_refused(void **state)
{
    static const char *const inject[] = {"X-Test: a\r\nX-Evil: 1", NULL};
    struct orc_http_request r = {.method = "GET", .url = url(0, "/echo"), .headers = inject};
    orc_http_req_t req = {.cb = on_done};

    (void)state;
    assert_int_equal(ORC_EINVAL, orc_http_request(http, &owner_a, &req, &r));
    r.headers = NULL;
    r.url = NULL;
    assert_int_equal(ORC_EINVAL, orc_http_request(http, &owner_a, &req, &r));
    r.url = url(0, "/echo");
    r.method = "";
    assert_int_equal(ORC_EINVAL, orc_http_request(http, &owner_a, &req, &r));
    r.method = "GET";
    req.cb = NULL;
    assert_int_equal(ORC_EINVAL, orc_http_request(http, &owner_a, &req, &r));
    /* only http and https */
    r.url = "file:///etc/passwd";
    {
        struct call c;
        call(&c, &r);
        assert_int_equal(c.status, ORC_EHTTP);
        orc_http_release(&c.req);
    }
}

#define MANY 50

static void test_many_at_once(void **state)
{
    static struct call calls[MANY];
    struct orc_http_request r = {.method = "GET", .url = url(0, "/echo")};
    int all = 0;

    (void)state;
    for (int i = 0; i < MANY; i++)
        start(&calls[i], &owner_a, &r);
    for (int tries = 0; tries < 2000 && !all; tries++) {
        int n = 0;
        for (int i = 0; i < MANY; i++)
            n += calls[i].done;
        all = n == MANY;
        if (!all) {
            int none = 0;
            run_until(&none, 5);
        }
    }
    assert_true(all);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(calls[i].status, 0);
        assert_int_equal(calls[i].req.code, 200);
        orc_http_release(&calls[i].req);
    }
}

static void test_abandon_and_close(void **state)
{
    struct orc_http_request r = {.method = "GET", .url = url(0, "/slow")};
    struct call a, a2, b;
    int wait = 0;

    (void)state;
    start(&a, &owner_a, &r);
    start(&b, &owner_b, &r);
    start(&a2, &owner_a, &r);
    run_until(&wait, 100);
    assert_int_equal(0, orc_http_cancel(http, &a2.req)); /* canceled, not delivered yet */
    assert_int_equal(2, orc_http_abandon(http, &owner_a));
    assert_int_equal(0, orc_http_abandon(http, &owner_a));
    run_until(&wait, 200);
    assert_int_equal(a.done, 0);
    assert_int_equal(a2.done, 0);
    assert_int_equal(b.done, 0);
    /* b is still in flight: closing the client ends it with ORC_ECANCELED */
    each_teardown(state);
    assert_int_equal(b.done, 1);
    assert_int_equal(b.status, ORC_ECANCELED);
    orc_http_release(&b.req);
    each_setup(state);
}

static void test_tls(void **state)
{
    char ca[300], crt[300], key[300], u[128];
    struct orc_http_request r = {.method = "GET", .url = u, .ca_file = ca};
    struct call c;

    (void)state;
    if (pki[0] == '\0')
        fail_msg("no certificates: the openssl tool did not make them");
    snprintf(ca, sizeof(ca), "%s/ca.pem", pki);
    snprintf(crt, sizeof(crt), "%s/client.pem", pki);
    snprintf(key, sizeof(key), "%s/client.key", pki);

    /* verified against the site's CA */
    snprintf(u, sizeof(u), "https://127.0.0.1:%u/echo", listeners[TLS].port);
    call(&c, &r);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.code, 200);
    assert_string_equal(c.req.body, "GET /echo||0|");
    orc_http_release(&c.req);

    /* the system's CAs do not know it: refused */
    r.ca_file = NULL;
    call(&c, &r);
    assert_int_equal(c.status, ORC_EHTTP);
    assert_int_equal(c.req.code, 0);
    assert_non_null(strcasestr(c.req.error, "certificate"));
    r.ca_file = ca;

    /* the certificate is for 127.0.0.1, not for localhost: refused */
    snprintf(u, sizeof(u), "https://localhost:%u/echo", listeners[TLS].port);
    call(&c, &r);
    assert_int_equal(c.status, ORC_EHTTP);
    assert_non_null(strstr(c.req.error, "localhost"));

    /* a server that demands a client certificate */
    snprintf(u, sizeof(u), "https://127.0.0.1:%u/echo", listeners[MTLS].port);
    call(&c, &r);
    assert_int_equal(c.status, ORC_EHTTP);
    r.cert_file = crt;
    r.key_file = key;
    call(&c, &r);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.req.code, 200);
    orc_http_release(&c.req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_methods_headers_bodies, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_statuses_are_answers, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_body_is_bounded, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_refused_and_timeout, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_public_only, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_refused, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_many_at_once, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_abandon_and_close, each_setup, each_teardown),
        cmocka_unit_test_setup_teardown(test_tls, each_setup, each_teardown),
    };

    return cmocka_run_group_tests(tests, server_start, server_close);
}
