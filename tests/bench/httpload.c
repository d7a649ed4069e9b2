/*
 * httpload: the benches' HTTP load generator (tests/bench/run.sh). Sends one
 * request, N times in all (or for a duration), over C keep-alive connections
 * kept busy at once (libcurl multi), counts the answers by status and
 * measures each request's latency from the moment it was queued to its last
 * byte. Unlike wrk it counts exactly: every request is answered, and any
 * answer other than the expected status, or a transport error, is an error.
 *
 *   httpload [-c CONC] [-n TOTAL | -d SECONDS] [-X METHOD] [-H 'Name: value']...
 *            [-b BODY_FILE] [-e STATUS] URL
 *
 * Prints one line of figures, "requests=... ok=... errors=... elapsed_s=...
 * rps=... p50_ms=... p90_ms=... p99_ms=... max_ms=...", where rps counts
 * only expected answers, and the first errors on stderr. Exit status: 0 when
 * every answer was the expected one, 1 otherwise, 2 on a usage error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../../orchestrator/base.h"

#define MAX_CONC 1024
#define SHOW_ERRORS 5

struct opts {
    const char *url, *method, *body_file;
    struct curl_slist *headers;
    long conc, expect;
    long total;    /* 0: run for seconds */
    double seconds;
};

struct load {
    struct opts o;
    CURLM *multi;
    CURL *easy[MAX_CONC];
    double started[MAX_CONC];
    char *body;
    size_t body_len;
    double *lat; /* ms, one per answer */
    size_t nlat, cap;
    long sent, ok, errors;
    double t0, deadline;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

static int usage(void)
{
    fprintf(stderr, "usage: httpload [-c CONC] [-n TOTAL | -d SECONDS] [-X METHOD] "
                    "[-H 'Name: value']... [-b BODY_FILE] [-e STATUS] URL\n");
    return 2;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    *o = (struct opts){.method = "GET", .conc = 16, .expect = 200};
    while ((c = getopt(argc, argv, "c:n:d:X:H:b:e:")) != -1) {
        switch (c) {
        case 'c':
            o->conc = atol(optarg);
            break;
        case 'n':
            o->total = atol(optarg);
            break;
        case 'd':
            o->seconds = atof(optarg);
            break;
        case 'X':
            o->method = optarg;
            break;
        case 'H':
            o->headers = curl_slist_append(o->headers, optarg);
            break;
        case 'b':
            o->body_file = optarg;
            break;
        case 'e':
            o->expect = atol(optarg);
            break;
        default:
            return usage();
        }
    }
    if (optind != argc - 1 || o->conc < 1 || o->conc > MAX_CONC ||
        (o->total < 1) == (o->seconds <= 0))
        return usage();
    o->url = argv[optind];
    /* no "Expect: 100-continue" round trip before a body */
    o->headers = curl_slist_append(o->headers, "Expect:");
    return 0;
}

static int read_body(struct load *l)
{
    FILE *fp;
    long n = -1;

    if (l->o.body_file == NULL)
        return 0;
    fp = fopen(l->o.body_file, "rb");
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fprintf(stderr, "httpload: cannot read %s\n", l->o.body_file);
        if (fp)
            fclose(fp);
        return -1;
    }
    l->body = orc_malloc((size_t)n + 1);
    l->body_len = (size_t)n;
    if (l->body == NULL || fread(l->body, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        fprintf(stderr, "httpload: cannot read %s\n", l->o.body_file);
        return -1;
    }
    fclose(fp);
    return 0;
}

static CURL *easy_new(struct load *l, long i)
{
    CURL *e = curl_easy_init();

    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, l->o.url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, l->o.method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l->o.headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)(intptr_t)i);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
    if (l->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, l->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)l->body_len);
    }
    return e;
}

static bool more_to_send(const struct load *l)
{
    return l->o.total ? l->sent < l->o.total : now_s() < l->deadline;
}

static void send_one(struct load *l, long i)
{
    l->started[i] = now_s();
    l->sent++;
    curl_multi_add_handle(l->multi, l->easy[i]);
}

static int record(struct load *l, double ms)
{
    if (l->nlat == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        double *n = orc_realloc(l->lat, cap * sizeof(*n));
        if (n == NULL)
            return -1;
        l->lat = n;
        l->cap = cap;
    }
    l->lat[l->nlat++] = ms;
    return 0;
}

static void on_done(struct load *l, CURLMsg *m)
{
    intptr_t i = 0;
    long status = 0;

    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&i);
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    record(l, (now_s() - l->started[i]) * 1000.0);
    if (m->data.result == CURLE_OK && status == l->o.expect) {
        l->ok++;
    } else {
        if (l->errors < SHOW_ERRORS)
            fprintf(stderr, "httpload: %s %s: %s, status %ld (expected %ld)\n", l->o.method,
                    l->o.url, curl_easy_strerror(m->data.result), status, l->o.expect);
        l->errors++;
    }
    curl_multi_remove_handle(l->multi, m->easy_handle);
    if (more_to_send(l))
        send_one(l, (long)i);
}

static int run(struct load *l)
{
    int running = 1, left;
    CURLMsg *m;

    l->t0 = now_s();
    l->deadline = l->t0 + l->o.seconds;
    for (long i = 0; i < l->o.conc && more_to_send(l); i++)
        send_one(l, i);
    while (running > 0) {
        if (curl_multi_perform(l->multi, &running) != CURLM_OK)
            return -1;
        while ((m = curl_multi_info_read(l->multi, &left)) != NULL)
            if (m->msg == CURLMSG_DONE)
                on_done(l, m);
        curl_multi_perform(l->multi, &running);
        if (running > 0 && curl_multi_poll(l->multi, NULL, 0, 100, NULL) != CURLM_OK)
            return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double pct(const struct load *l, double p)
{
    size_t k;

    if (l->nlat == 0)
        return 0;
    k = (size_t)(p * (double)(l->nlat - 1) + 0.5);
    return l->lat[k];
}

static void report(struct load *l, double elapsed)
{
    qsort(l->lat, l->nlat, sizeof(*l->lat), cmp_double);
    printf("requests=%ld ok=%ld errors=%ld elapsed_s=%.3f rps=%.1f p50_ms=%.2f p90_ms=%.2f "
           "p99_ms=%.2f max_ms=%.2f\n",
           l->sent, l->ok, l->errors, elapsed, (double)l->ok / elapsed, pct(l, 0.50),
           pct(l, 0.90), pct(l, 0.99), l->nlat ? l->lat[l->nlat - 1] : 0.0);
}

int main(int argc, char **argv)
{
    static struct load l;
    int rc = 1;

    if (parse_args(argc, argv, &l.o) != 0)
        return 2;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || read_body(&l) < 0)
        goto out;
    l.multi = curl_multi_init();
    if (l.multi == NULL)
        goto out;
    curl_multi_setopt(l.multi, CURLMOPT_MAXCONNECTS, l.o.conc);
    for (long i = 0; i < l.o.conc; i++) {
        l.easy[i] = easy_new(&l, i);
        if (l.easy[i] == NULL)
            goto out;
    }
    if (run(&l) < 0) {
        fprintf(stderr, "httpload: libcurl multi failed\n");
        goto out;
    }
    report(&l, now_s() - l.t0);
    rc = l.errors == 0 && l.ok > 0 ? 0 : 1;
out:
    for (long i = 0; i < l.o.conc; i++)
        curl_easy_cleanup(l.easy[i]);
    if (l.multi)
        curl_multi_cleanup(l.multi);
    curl_slist_free_all(l.o.headers);
    orc_free(l.lat);
    orc_free(l.body);
    curl_global_cleanup();
    return rc;
}
