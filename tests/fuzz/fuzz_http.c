/*
 * libFuzzer targets for the daemon's HTTP request handling (docs/security.md): the whole
 * API (h2o's parser, the limits, the router, the authentication step, every handler,
 * the store and the engine behind them) runs in this process on 127.0.0.1, as the
 * daemon does, and each input is sent to it over a fresh TCP connection:
 *
 * - fuzz_http: the input is the raw request (method, path, headers, body: anything);
 * - fuzz_deployment (FUZZ_DEPLOYMENT_BODY): the input is the JSON body of a POST
 *   /deployments, behind a fixed, valid request head.
 *
 * The client half-closes after writing and reads until the server closes (or until an
 * answer is an event stream, which does not end while the client is there); an answer must
 * come within 5 s. Nothing may crash, leak or hang: the server must accept every input's
 * connection and answer a health check after every input (else the target aborts: the
 * daemon would be down). The health checks go over one kept-alive connection, opened
 * again whenever the server closed it, which spares a TCP connection per input.
 *
 * A watchdog thread makes the loop print its stack when one turn takes over 2 s. No
 * driver is loaded (the plugin folder is the empty data directory): a template that
 * passes goes through the planner and the engine to its site's open, which fails, and no
 * command of a fuzzed template ever runs on the fuzzing machine.
 *
 * Build and run with tests/fuzz/fuzz.mk (`make fuzz`).
 */
#define _GNU_SOURCE /* memmem, and nftw's FTW_DEPTH */
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <uv.h>

#include "api/server.h"
#include "base.h"
#include "config.h"
#include "services.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ANSWER_TIMEOUT_MS 5000

static uv_loop_t loop;

/* ---- the stall watchdog: when one turn of the loop takes over 2 s, the loop thread
 * prints its own stack (SIGUSR1), once per stall, so that a hang says where it was ---- */

void __sanitizer_print_stack_trace(void);

#define STALL_MS 2000

static pthread_t loop_thread;
static uint64_t turn_started_ms; /* 0: not in a turn (atomic) */

static void on_stall_signal(int sig)
{
    (void)sig;
    fprintf(stderr, "fuzz_http: the loop has been in one turn for over %d ms, at:\n", STALL_MS);
    __sanitizer_print_stack_trace();
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

static void *watchdog_main(void *arg)
{
    uint64_t reported = 0;

    (void)arg;
    for (;;) {
        uint64_t started = __atomic_load_n(&turn_started_ms, __ATOMIC_SEQ_CST);
        if (started != 0 && started != reported && now_ms() - started > STALL_MS) {
            reported = started;
            pthread_kill(loop_thread, SIGUSR1);
        }
        usleep(100 * 1000);
    }
    return NULL;
}

static void watchdog_start(void)
{
    pthread_t t;

    loop_thread = pthread_self();
    signal(SIGUSR1, on_stall_signal);
    if (pthread_create(&t, NULL, watchdog_main, NULL) == 0)
        pthread_detach(t);
}

/* One turn of the loop, watched. */
static void run_turn(void)
{
    __atomic_store_n(&turn_started_ms, now_ms(), __ATOMIC_SEQ_CST);
    uv_run(&loop, UV_RUN_ONCE);
    __atomic_store_n(&turn_started_ms, 0, __ATOMIC_SEQ_CST);
}
static orc_config_t cfg;
static orc_api_t *api;
static struct orc_services *svc;
static struct sockaddr_in server;

/* One exchange: connect, write everything, half-close, read to the end. */
struct exchange {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_shutdown_t shutdown;
    uv_timer_t timer;
    uv_buf_t out;
    size_t got;
    char first[16]; /* the start of the answer: "HTTP/1.1 200" */
    char tail[32];  /* the last bytes read, to find a marker across two reads */
    size_t tail_len;
    int closed; /* handles closed: 2 */
    bool timed_out;
    int refused; /* the connection failed: the libuv error */
};

static void on_closed(uv_handle_t *h)
{
    ((struct exchange *)h->data)->closed++;
}

static void finish(struct exchange *x)
{
    if (!uv_is_closing((uv_handle_t *)&x->tcp))
        uv_close((uv_handle_t *)&x->tcp, on_closed);
    if (!uv_is_closing((uv_handle_t *)&x->timer))
        uv_close((uv_handle_t *)&x->timer, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t want, uv_buf_t *buf)
{
    static char space[65536];

    (void)h;
    (void)want;
    *buf = uv_buf_init(space, sizeof(space));
}

/* An answer that is an event stream never ends while the client is there: the server keeps
 * it open even after the client's half-close, which it does not read past requests that
 * were pipelined behind it. Its head ends the exchange (the client closes). */
static const char stream_marker[] = "text/event-stream\r\n";

/* Whether the marker is in what was read: in this chunk, or across the last one's tail. */
static bool saw_stream(struct exchange *x, const char *data, size_t n)
{
    char joint[2 * sizeof(x->tail)];
    size_t m = sizeof(stream_marker) - 1, head = n < sizeof(x->tail) ? n : sizeof(x->tail);
    bool found;

    memcpy(joint, x->tail, x->tail_len);
    memcpy(joint + x->tail_len, data, head);
    found = memmem(joint, x->tail_len + head, stream_marker, m) != NULL ||
            memmem(data, n, stream_marker, m) != NULL;
    x->tail_len = n < sizeof(x->tail) ? n : sizeof(x->tail);
    memcpy(x->tail, data + n - x->tail_len, x->tail_len);
    return found;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct exchange *x = s->data;

    if (n > 0) {
        size_t at = x->got < sizeof(x->first) - 1 ? x->got : sizeof(x->first) - 1;
        size_t k = sizeof(x->first) - 1 - at;
        memcpy(x->first + at, buf->base, k < (size_t)n ? k : (size_t)n);
        x->got += (size_t)n;
        if (saw_stream(x, buf->base, (size_t)n))
            finish(x);
        return;
    }
    if (n < 0)
        finish(x);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_written(uv_write_t *req, int status)
{
    struct exchange *x = req->data;

    if (status == 0)
        uv_shutdown(&x->shutdown, (uv_stream_t *)&x->tcp, on_shutdown);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct exchange *x = req->data;

    if (status < 0) {
        x->refused = status;
        finish(x);
        return;
    }
    uv_read_start((uv_stream_t *)&x->tcp, on_alloc, on_read);
    if (x->out.len == 0) {
        uv_shutdown(&x->shutdown, (uv_stream_t *)&x->tcp, on_shutdown);
        return;
    }
    uv_write(&x->write, (uv_stream_t *)&x->tcp, &x->out, 1, on_written);
}

static void on_timeout(uv_timer_t *t)
{
    struct exchange *x = t->data;

    x->timed_out = true;
    finish(x);
}

/* Sends bytes to the server and waits until it closed the connection; the answer's
 * first bytes in first (NUL-terminated). */
static void exchange(const void *bytes, size_t len, char first[16])
{
    struct exchange x;

    memset(&x, 0, sizeof(x));
    x.out = uv_buf_init((char *)bytes, (unsigned)len);
    uv_tcp_init(&loop, &x.tcp);
    uv_timer_init(&loop, &x.timer);
    x.tcp.data = x.timer.data = x.connect.data = x.write.data = &x;
    uv_timer_start(&x.timer, on_timeout, ANSWER_TIMEOUT_MS, 0);
    if (uv_tcp_connect(&x.connect, &x.tcp, (const struct sockaddr *)&server, on_connected) < 0) {
        x.refused = UV_EINVAL;
        finish(&x);
    }
    while (x.closed < 2)
        run_turn();
    if (x.timed_out) {
        fprintf(stderr, "fuzz_http: no answer within %d ms\n", ANSWER_TIMEOUT_MS);
        abort();
    }
    if (x.refused) {
        fprintf(stderr, "fuzz_http: the server refused a connection: %s\n", uv_strerror(x.refused));
        abort();
    }
    memcpy(first, x.first, 16);
}

/* ---- the health check, over one kept-alive connection ---- */

struct health {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    bool open; /* connected, and not closed by either side */
    bool connecting;
    bool waiting; /* a request written, its answer not all read */
    bool timed_out;
    int closing; /* handles being closed */
    char answer[1024];
    size_t got;
};

static struct health hc;

static const char health_request[] = "GET /healthz HTTP/1.1\r\nHost: fuzz\r\n\r\n";

/* Whether the answer so far (NUL-terminated) is whole: its head and Content-Length bytes of
 * body. */
static bool health_answer_whole(void)
{
    const char *end = strstr(hc.answer, "\r\n\r\n");
    size_t body = 0;

    if (end == NULL)
        return false;
    for (const char *line = strstr(hc.answer, "\r\n"); line != NULL && line < end;
         line = strstr(line + 2, "\r\n"))
        if (strncasecmp(line + 2, "content-length:", 15) == 0)
            body = strtoul(line + 17, NULL, 10);
    return hc.got >= (size_t)(end + 4 - hc.answer) + body;
}

static void health_closed(uv_handle_t *h)
{
    (void)h;
    hc.closing--;
}

static void health_close(void)
{
    hc.open = hc.connecting = false;
    hc.closing++;
    uv_close((uv_handle_t *)&hc.tcp, health_closed);
}

static void health_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    if (n < 0) {
        health_close();
        return;
    }
    if (n == 0 || !hc.waiting)
        return;
    if (hc.got + (size_t)n >= sizeof(hc.answer)) {
        fprintf(stderr, "fuzz_http: the health check's answer is over %zu bytes\n",
                sizeof(hc.answer));
        abort();
    }
    memcpy(hc.answer + hc.got, buf->base, (size_t)n);
    hc.got += (size_t)n;
    hc.answer[hc.got] = '\0';
    if (health_answer_whole())
        hc.waiting = false;
}

static void health_connected(uv_connect_t *req, int status)
{
    (void)req;
    hc.connecting = false;
    if (status < 0) {
        fprintf(stderr, "fuzz_http: the health check cannot connect: %s\n", uv_strerror(status));
        abort();
    }
    hc.open = true;
    uv_read_start((uv_stream_t *)&hc.tcp, on_alloc, health_read);
}

static void health_timeout(uv_timer_t *t)
{
    (void)t;
    hc.timed_out = true;
}

static void health_connect(void)
{
    while (hc.closing > 0)
        run_turn();
    uv_tcp_init(&loop, &hc.tcp);
    hc.connecting = true;
    if (uv_tcp_connect(&hc.connect, &hc.tcp, (const struct sockaddr *)&server, health_connected) <
        0) {
        fprintf(stderr, "fuzz_http: the health check cannot connect\n");
        abort();
    }
    while (hc.connecting)
        run_turn();
}

/* One request on the kept-alive connection: true with the answer in hc.answer, false
 * when the server closed the connection before answering (it may close an idle one). */
static bool health_ask(void)
{
    uv_buf_t out = uv_buf_init((char *)health_request, sizeof(health_request) - 1);

    if (!hc.open)
        health_connect();
    hc.got = 0;
    hc.answer[0] = '\0';
    hc.waiting = true;
    hc.timed_out = false;
    uv_timer_start(&hc.timer, health_timeout, ANSWER_TIMEOUT_MS, 0);
    if (uv_write(&hc.write, (uv_stream_t *)&hc.tcp, &out, 1, NULL) < 0)
        health_close();
    while (hc.waiting && hc.open && !hc.timed_out)
        run_turn();
    uv_timer_stop(&hc.timer);
    if (hc.timed_out) {
        fprintf(stderr, "fuzz_http: the health check got no answer within %d ms\n",
                ANSWER_TIMEOUT_MS);
        abort();
    }
    if (!hc.waiting && hc.open)
        return true;
    if (hc.open)
        health_close();
    return hc.got > 0 && !hc.waiting; /* answered, then closed */
}

static void health_check(void)
{
    if (!health_ask() && !health_ask()) {
        fprintf(stderr, "fuzz_http: the server closed the health check's connection twice "
                        "without answering\n");
        abort();
    }
    if (hc.got < 12 || strncmp(hc.answer, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "fuzz_http: the health check after the input got '%.15s'\n", hc.answer);
        abort();
    }
}

/* Runs the loop for ms (the engine opens its sites, resumes deployments...). */
static void run_for(uint64_t ms)
{
    uint64_t end = uv_now(&loop) + ms;

    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&loop);
    }
}

/* The daemon's data directory, removed when the fuzzer exits. */
static char shm_dir[] = "/dev/shm/orc-fuzz-http-XXXXXX", tmp_dir[] = "/tmp/orc-fuzz-http-XXXXXX";
static char *data_dir;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_data_dir(void)
{
    nftw(data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* the store's fsyncs are not under test: in memory when the machine has a tmpfs */
    char *dir = access("/dev/shm", W_OK) == 0 ? shm_dir : tmp_dir;
    char err[512];
    const char *args[] = {"fuzz", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-level",
                          "error", NULL};

    (void)argc;
    (void)argv;
    if (mkdtemp(dir) == NULL || orc_config_init(&cfg) < 0 ||
        orc_config_load(&cfg, 7, (char *const *)args, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_http: setup: %s\n", err);
        abort();
    }
    data_dir = dir;
    atexit(remove_data_dir);
    /* as the daemon (daemon.c): a peer that closed first is an EPIPE, not a signal */
    signal(SIGPIPE, SIG_IGN);
    /* no driver: a template's command is never started on this machine (a deployment
     * fails at its site's open; the API, planner and engine paths before it all run) */
    setenv("ORCHESTRATOR_PLUGIN_DIR", dir, 1);
    orc_log_set_level(ORC_LOG_ERROR);
    if (uv_loop_init(&loop) != 0 || orc_api_new(&loop, &cfg, &api) < 0 ||
        orc_api_start(api) < 0 || orc_services_start(&loop, &cfg, api, &svc) < 0) {
        fprintf(stderr, "fuzz_http: cannot start the API\n");
        abort();
    }
    orc_api_set_ready(api, true);
    watchdog_start();
    uv_ip4_addr("127.0.0.1", orc_api_listener_port(api, 0), &server);
    uv_timer_init(&loop, &hc.timer);
    run_for(300);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char first[16];
#ifdef FUZZ_DEPLOYMENT_BODY
    char head[256];
    size_t n = (size_t)snprintf(head, sizeof(head),
                                "POST /deployments HTTP/1.1\r\nHost: fuzz\r\n"
                                "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                                "Connection: close\r\n\r\n",
                                size);
    char *req = malloc(n + size);

    if (req == NULL)
        return 0;
    memcpy(req, head, n);
    memcpy(req + n, data, size);
    exchange(req, n + size, first);
    free(req);
#else
    exchange(data, size, first);
#endif
    health_check();
    return 0;
}
