/*
 * The API load of issue 8 (test_load.c): CLIENTS concurrent clients, each on its own
 * keep-alive connection (libcurl multi, one easy handle per client), spread over one or
 * more daemons, for SECONDS. Each client runs the life of a deployment again and again:
 *
 *   create   POST /deployments                          201, the uuid from the answer
 *   watch    GET /deployments/{id}/events (SSE)         200, ends on CREATE_COMPLETE
 *   get      GET /deployments/{id}                      200, CREATE_COMPLETE
 *   list     GET /deployments?size=10                   200
 *   resources GET /deployments/{id}/resources           200
 *   delete   DELETE /deployments/{id}                   204
 *   unwatch  GET /deployments/{id}/events (SSE)         200 ending on deployment.deleted,
 *                                                       or 404 when it is gone already
 *   gone     GET /deployments/{id}                      404
 *
 * A cycle is started only before the deadline; those under way then run to their end
 * (so that nothing is left behind), within DRAIN_S. Any other status, a transport error
 * or a stream that ends elsewhere is an error (the first few are kept, with what was
 * answered). Latencies are per request, from the moment it is queued to its last byte;
 * the streams are timed apart (they last as long as the deployment takes). The resident
 * memory of the daemons named by pid is sampled once a second: its sum at the end of the
 * warm-up, at the end and at most.
 * Header-only, like daemon_fixture.h.
 */
#ifndef APILOAD_H
#define APILOAD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>

#define AL_MAX_CLIENTS 2048
#define AL_MAX_DAEMONS 8
#define AL_DRAIN_S 120.0
#define AL_KEEP_ERRORS 5

enum al_step {
    AL_CREATE,
    AL_WATCH,
    AL_GET,
    AL_LIST,
    AL_RESOURCES,
    AL_DELETE,
    AL_UNWATCH,
    AL_GONE,
    AL_NSTEPS
};

static const char *const al_step_names[AL_NSTEPS] = {"create",    "watch",  "get",     "list",
                                                     "resources", "delete", "unwatch", "gone"};

struct al_opts {
    const char *urls[AL_MAX_DAEMONS]; /* http://127.0.0.1:PORT */
    size_t nurls;
    pid_t pids[AL_MAX_DAEMONS]; /* whose VmRSS is sampled (0: none) */
    size_t npids;
    int clients;
    double seconds, warmup_s;
    const char *body; /* the POST /deployments JSON */
};

struct al_stats {
    long count, errors, status_5xx;
    double *ms;
    size_t n, cap;
};

struct al_report {
    struct al_stats step[AL_NSTEPS];
    long cycles, errors;
    char first_errors[AL_KEEP_ERRORS][400];
    long rss_warm_kb, rss_end_kb, rss_max_kb;
    double elapsed_s;
};

struct al_client {
    struct al_report *rep;
    const struct al_opts *o;
    CURL *easy;
    struct curl_slist *headers;
    const char *base;
    enum al_step step;
    char uuid[64], url[256];
    char *buf;
    size_t len, cap;
    double started;
    bool active;
};

static inline double al_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline size_t al_on_body(char *p, size_t s, size_t n, void *ud)
{
    struct al_client *c = ud;
    size_t len = s * n;

    if (c->len + len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + len + 1)
            cap *= 2;
        char *grown = realloc(c->buf, cap);
        if (grown == NULL)
            return 0;
        c->buf = grown;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, len);
    c->len += len;
    c->buf[c->len] = '\0';
    return len;
}

static inline void al_record(struct al_stats *st, double ms)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4096;
        double *grown = realloc(st->ms, cap * sizeof(*grown));
        if (grown == NULL)
            return;
        st->ms = grown;
        st->cap = cap;
    }
    st->ms[st->n++] = ms;
}

static inline void al_error(struct al_client *c, long status, const char *why)
{
    struct al_report *rep = c->rep;

    rep->step[c->step].errors++;
    if (rep->errors < AL_KEEP_ERRORS)
        snprintf(rep->first_errors[rep->errors], sizeof(rep->first_errors[0]),
                 "%s %s: %s (status %ld): %.200s", al_step_names[c->step], c->url, why, status,
                 c->buf ? c->buf : "");
    rep->errors++;
}

/* Queues the request of the client's current step. */
static inline void al_send(struct al_client *c, CURLM *multi)
{
    static const char *const methods[AL_NSTEPS] = {"POST", "GET",    "GET", "GET",
                                                   "GET",  "DELETE", "GET", "GET"};
    bool stream = c->step == AL_WATCH || c->step == AL_UNWATCH;

    switch (c->step) {
    case AL_CREATE:
        snprintf(c->url, sizeof(c->url), "%s/deployments", c->base);
        break;
    case AL_LIST:
        snprintf(c->url, sizeof(c->url), "%s/deployments?size=10", c->base);
        break;
    case AL_WATCH:
    case AL_UNWATCH:
        snprintf(c->url, sizeof(c->url), "%s/deployments/%s/events", c->base, c->uuid);
        break;
    case AL_RESOURCES:
        snprintf(c->url, sizeof(c->url), "%s/deployments/%s/resources", c->base, c->uuid);
        break;
    default:
        snprintf(c->url, sizeof(c->url), "%s/deployments/%s", c->base, c->uuid);
        break;
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, c->url);
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, methods[c->step]);
    curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    if (c->step == AL_CREATE) {
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->o->body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(c->o->body));
    }
    curl_slist_free_all(c->headers);
    c->headers = curl_slist_append(NULL, stream ? "Accept: text/event-stream"
                                                : "Content-Type: application/json");
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    c->len = 0;
    if (c->buf)
        c->buf[0] = '\0';
    c->started = al_now();
    curl_multi_add_handle(multi, c->easy);
}

/* Checks an answer; the step that follows, or AL_NSTEPS when the cycle ends. */
static inline enum al_step al_check(struct al_client *c, CURLcode res, long status)
{
    const char *body = c->buf ? c->buf : "";

    if (res != CURLE_OK) {
        al_error(c, 0, curl_easy_strerror(res));
        return AL_NSTEPS;
    }
    if (status >= 500)
        c->rep->step[c->step].status_5xx++;
    switch (c->step) {
    case AL_CREATE: {
        const char *u = strstr(body, "\"uuid\":\"");
        if (status != 201 || u == NULL || sscanf(u + 8, "%63[^\"]", c->uuid) != 1)
            break;
        return AL_WATCH;
    }
    case AL_WATCH:
        if (status == 200 && strstr(body, "\"status\":\"CREATE_COMPLETE\"") != NULL)
            return AL_GET;
        break;
    case AL_GET:
        if (status == 200 && strstr(body, "\"status\":\"CREATE_COMPLETE\"") != NULL)
            return AL_LIST;
        break;
    case AL_LIST:
        if (status == 200 && strstr(body, "\"totalElements\":") != NULL)
            return AL_RESOURCES;
        break;
    case AL_RESOURCES:
        if (status == 200 && strstr(body, "\"content\":") != NULL)
            return AL_DELETE;
        break;
    case AL_DELETE:
        if (status == 204)
            return AL_UNWATCH;
        break;
    case AL_UNWATCH:
        if (status == 404 || (status == 200 && (strstr(body, "deployment.deleted") != NULL ||
                                                strstr(body, "DELETE_COMPLETE") != NULL)))
            return AL_GONE;
        break;
    case AL_GONE:
        if (status == 404) {
            c->rep->cycles++;
            return AL_NSTEPS;
        }
        break;
    default:
        break;
    }
    al_error(c, status, "unexpected answer");
    return AL_NSTEPS;
}

static inline long al_rss_kb(const struct al_opts *o)
{
    long sum = 0;

    for (size_t i = 0; i < o->npids; i++) {
        char path[64], line[256];
        FILE *fp;

        snprintf(path, sizeof(path), "/proc/%ld/status", (long)o->pids[i]);
        fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        while (fgets(line, sizeof(line), fp))
            if (strncmp(line, "VmRSS:", 6) == 0)
                sum += atol(line + 6);
        fclose(fp);
    }
    return sum;
}

static inline int al_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (0..1) of a step's latencies, sorting them first; 0 when none. */
static inline double al_quantile(struct al_stats *st, double q)
{
    size_t i;

    if (st->n == 0)
        return 0;
    qsort(st->ms, st->n, sizeof(st->ms[0]), al_cmp_double);
    i = (size_t)(q * (double)(st->n - 1) + 0.5);
    return st->ms[i < st->n ? i : st->n - 1];
}

/* One finished transfer: its figures, then the client's next request (or its next cycle
 * before the deadline). */
static inline void al_done(struct al_client *c, CURLM *multi, CURLcode res, double deadline)
{
    long status = 0;
    enum al_step next;

    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, c->easy);
    c->rep->step[c->step].count++;
    al_record(&c->rep->step[c->step], (al_now() - c->started) * 1e3);
    next = al_check(c, res, status);
    if (next == AL_NSTEPS) { /* the cycle is over, done or failed: another before the deadline */
        if (al_now() >= deadline) {
            c->active = false;
            return;
        }
        next = AL_CREATE;
    }
    c->step = next;
    al_send(c, multi);
}

/* Runs the load; 0, or -1 when it could not be set up. rep is filled either way. */
static inline int al_run(const struct al_opts *o, struct al_report *rep)
{
    static struct al_client clients[AL_MAX_CLIENTS];
    CURLM *multi = curl_multi_init();
    double t0 = al_now(), deadline = t0 + o->seconds, next_sample = t0 + 1, warm = t0 + o->warmup_s;
    int active = o->clients, running = 0;

    memset(rep, 0, sizeof(*rep));
    if (multi == NULL || o->clients <= 0 || o->clients > AL_MAX_CLIENTS || o->nurls == 0)
        return -1;
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)o->clients * 2);
    for (int i = 0; i < o->clients; i++) {
        struct al_client *c = &clients[i];
        memset(c, 0, sizeof(*c));
        c->rep = rep;
        c->o = o;
        c->base = o->urls[(size_t)i % o->nurls];
        c->easy = curl_easy_init();
        if (c->easy == NULL)
            return -1;
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, al_on_body);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        c->active = true;
        c->step = AL_CREATE;
        al_send(c, multi);
    }
    while (active > 0 && al_now() < deadline + AL_DRAIN_S) {
        CURLMsg *msg;
        int left;

        curl_multi_perform(multi, &running);
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            struct al_client *c = NULL;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            al_done(c, multi, msg->data.result, deadline);
            if (!c->active)
                active--;
        }
        if (al_now() >= next_sample) {
            long rss = al_rss_kb(o);
            if (rss > rep->rss_max_kb)
                rep->rss_max_kb = rss;
            if (rep->rss_warm_kb == 0 && al_now() >= warm)
                rep->rss_warm_kb = rss;
            if (al_now() <= deadline)
                rep->rss_end_kb = rss;
            next_sample += 1;
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < o->clients; i++) {
        struct al_client *c = &clients[i];
        if (c->active) {
            c->rep->step[c->step].count++;
            al_error(c, 0, "still unanswered after the drain time");
        }
        curl_multi_remove_handle(multi, c->easy);
        curl_easy_cleanup(c->easy);
        curl_slist_free_all(c->headers);
        free(c->buf);
    }
    curl_multi_cleanup(multi);
    rep->elapsed_s = al_now() - t0;
    return 0;
}

/* Prints the figures: per step count, errors, 5xx, p50/p99/max ms; totals; memory. */
static inline void al_print(struct al_report *rep, const struct al_opts *o)
{
    long requests = 0, s5xx = 0;

    printf("apiload: %d clients on %zu daemon(s), %.0f s (+ drain), %.1f s in all\n", o->clients,
           o->nurls, o->seconds, rep->elapsed_s);
    printf("  %-10s %9s %7s %5s %9s %9s %9s\n", "step", "requests", "errors", "5xx", "p50 ms",
           "p99 ms", "max ms");
    for (int s = 0; s < AL_NSTEPS; s++) {
        struct al_stats *st = &rep->step[s];
        double p50 = al_quantile(st, 0.5), p99 = al_quantile(st, 0.99);
        printf("  %-10s %9ld %7ld %5ld %9.2f %9.2f %9.2f\n", al_step_names[s], st->count,
               st->errors, st->status_5xx, p50, p99, st->n ? st->ms[st->n - 1] : 0.0);
        requests += st->count;
        s5xx += st->status_5xx;
    }
    printf("  cycles %ld, requests %ld (%.0f/s), errors %ld, 5xx %ld\n", rep->cycles, requests,
           (double)requests / rep->elapsed_s, rep->errors, s5xx);
    printf("  daemons' VmRSS: %ld kB after the %.0f s warm-up, %ld kB at the end, %ld kB at "
           "most\n",
           rep->rss_warm_kb, o->warmup_s, rep->rss_end_kb, rep->rss_max_kb);
    for (long i = 0; i < rep->errors && i < AL_KEEP_ERRORS; i++)
        printf("  error: %s\n", rep->first_errors[i]);
}

static inline void al_report_free(struct al_report *rep)
{
    for (int s = 0; s < AL_NSTEPS; s++)
        free(rep->step[s].ms);
}

#endif
