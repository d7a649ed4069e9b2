/*
 * Metrics in the Prometheus text format (version 0.0.4): HTTP requests by
 * method, route pattern and status; a request duration histogram by method
 * and route; connections; process start time, CPU, memory and open files;
 * build info; then whatever other subsystems add through
 * orc_api_add_metrics(). Route labels are patterns ("/deployments/{id}"),
 * and everything that matched no route counts as route="unmatched", so the
 * number of series stays bounded whatever clients send.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../daemon.h"
#include "internal.h"

static const double bucket_bounds[ORC_METRIC_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                         0.1,   0.25,   0.5,   1,    2.5,   5};
/* The same bounds as the le labels print them (%g). */
static const char *const bucket_labels[ORC_METRIC_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"};

static const unsigned unmatched_methods[8] = {
    ORC_HTTP_GET,   ORC_HTTP_HEAD,   ORC_HTTP_POST,    ORC_HTTP_PUT,
    ORC_HTTP_PATCH, ORC_HTTP_DELETE, ORC_HTTP_OPTIONS, 0 /* anything else */
};

void orc_metrics_init(struct orc_metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->tail = &m->series;
}

void orc_metrics_fini(struct orc_metrics *m)
{
    struct orc_metric_series *s = m->series;

    while (s != NULL) {
        struct orc_metric_series *next = s->next;
        orc_free(s->statuses);
        orc_free(s);
        s = next;
    }
    orc_metrics_init(m);
}

static struct orc_metric_series *series_new(struct orc_metrics *m, const char *method,
                                            const char *route)
{
    struct orc_metric_series *s = orc_calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->method = method;
    s->route = route;
    *m->tail = s;
    m->tail = &s->next;
    return s;
}

struct orc_metric_series *orc_metrics_route_series(struct orc_metrics *m, struct orc_route *route,
                                                   bool head)
{
    struct orc_metric_series **slot = &route->series[head ? 1 : 0];

    if (*slot == NULL)
        *slot = series_new(m, head ? "HEAD" : route->method_name, route->pattern);
    return *slot;
}

struct orc_metric_series *orc_metrics_unmatched(struct orc_metrics *m, unsigned method_bit)
{
    size_t i = 0;

    while (i < 7 && unmatched_methods[i] != method_bit)
        i++;
    if (m->unmatched[i] == NULL)
        m->unmatched[i] = series_new(m, orc_http_method_name(unmatched_methods[i]), "unmatched");
    return m->unmatched[i];
}

static void count_status(struct orc_metric_series *s, int status)
{
    struct orc_status_count *grown;

    for (size_t i = 0; i < s->nstatuses; i++) {
        if (s->statuses[i].status == status) {
            s->statuses[i].count++;
            return;
        }
    }
    grown = orc_realloc(s->statuses, (s->nstatuses + 1) * sizeof(*grown));
    if (grown == NULL)
        return; /* out of memory: this count is lost */
    s->statuses = grown;
    s->statuses[s->nstatuses++] = (struct orc_status_count){status, 1};
}

void orc_metrics_observe(struct orc_metric_series *s, int status, double seconds)
{
    count_status(s, status);
    if (seconds < 0)
        return;
    s->observations++;
    s->sum_seconds += seconds;
    for (size_t i = 0; i < ORC_METRIC_BUCKETS; i++) {
        if (seconds <= bucket_bounds[i]) {
            s->buckets[i]++;
            break;
        }
    }
}

/* ---- text output ---------------------------------------------------------------------- */

struct orc_api_text_s {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
};

/* Room for more bytes and a NUL after len; false (and oom) when out of memory. */
static bool text_reserve(orc_api_text_t *t, size_t more)
{
    size_t cap = t->cap ? t->cap : 65536; /* a scrape is some tens of KB */
    char *grown;

    if (t->oom)
        return false;
    if (t->len + more < t->cap)
        return true;
    while (cap <= t->len + more)
        cap *= 2;
    grown = orc_realloc(t->buf, cap);
    if (grown == NULL) {
        t->oom = true;
        return false;
    }
    t->buf = grown;
    t->cap = cap;
    return true;
}

static void text_vprintf(orc_api_text_t *t, const char *fmt, va_list ap)
{
    va_list again;
    int n;

    if (t->oom)
        return;
    va_copy(again, ap);
    n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
    if (n >= 0 && t->len + (size_t)n >= t->cap) {
        n = text_reserve(t, (size_t)n) ? vsnprintf(t->buf + t->len, t->cap - t->len, fmt, again)
                                       : -1;
    }
    va_end(again);
    if (n > 0)
        t->len += (size_t)n;
}

/* Bytes copied in where text_reserve already made room (the request and histogram lines,
 * many, are written without printf and with one reservation per series: a scrape of every
 * route's series stays cheap). */
static void text_put(orc_api_text_t *t, const char *s, size_t n)
{
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

static void text_put_u64(orc_api_text_t *t, uint64_t v)
{
    char digits[24];
    size_t n = sizeof(digits);

    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    text_put(t, digits + n, sizeof(digits) - n);
}

void orc_api_metrics_printf(orc_api_text_t *out, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    text_vprintf(out, fmt, ap);
    va_end(ap);
}

/* A label value with \, " and newlines escaped (into a small buffer). */
static const char *label(const char *v, char *buf, size_t len)
{
    size_t o = 0;

    for (; *v && o + 3 < len; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            buf[o++] = '\\';
            buf[o++] = *v == '\n' ? 'n' : *v;
        } else {
            buf[o++] = *v;
        }
    }
    buf[o] = '\0';
    return buf;
}

/* A series' labels as a line starts them: `NAME{method="M",route="R"` (route escaped); its
 * length, or 0 when it would not fit (cannot happen: method and route are bounded). */
static size_t series_prefix(const struct orc_metric_series *s, const char *name, char *buf,
                            size_t len)
{
    char route[256];
    int n = snprintf(buf, len, "%s{method=\"%s\",route=\"%s\"", name, s->method,
                     label(s->route, route, sizeof(route)));

    return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

/* seconds with nine decimals, as %.9f would, without printf (the sums of every series). */
static void text_put_seconds(orc_api_text_t *t, double seconds)
{
    uint64_t ns = (uint64_t)(seconds * 1e9 + 0.5);
    char frac[9];

    text_put_u64(t, ns / 1000000000u);
    text_put(t, ".", 1);
    ns %= 1000000000u;
    for (int i = 8; i >= 0; i--, ns /= 10)
        frac[i] = (char)('0' + ns % 10);
    text_put(t, frac, sizeof(frac));
}

/* Each line a series writes: its prefix, at most 40 bytes of other labels and separators,
 * up to 20 digits and 10 decimals, a newline. */
#define LINE_ROOM(prefix_len) ((prefix_len) + 40 + 31 + 1)

static void render_requests(orc_api_t *api, orc_api_text_t *t)
{
    char prefix[400];

    orc_api_metrics_printf(t, "# HELP orchestrator_http_requests_total HTTP requests answered, by "
                              "method, route pattern and status.\n"
                              "# TYPE orchestrator_http_requests_total counter\n");
    for (struct orc_metric_series *s = api->metrics.series; s != NULL; s = s->next) {
        size_t n = series_prefix(s, "orchestrator_http_requests_total", prefix, sizeof(prefix));

        if (n == 0 || !text_reserve(t, s->nstatuses * LINE_ROOM(n)))
            return;
        for (size_t i = 0; i < s->nstatuses; i++) {
            text_put(t, prefix, n);
            text_put(t, ",status=\"", 9);
            text_put_u64(t, (uint64_t)(unsigned)s->statuses[i].status);
            text_put(t, "\"} ", 3);
            text_put_u64(t, s->statuses[i].count);
            text_put(t, "\n", 1);
        }
        t->buf[t->len] = '\0';
    }
}

static void render_histogram(const struct orc_metric_series *s, orc_api_text_t *t)
{
    char bucket[400], sum[400], count[400];
    size_t nb = series_prefix(s, "orchestrator_http_request_duration_seconds_bucket", bucket,
                              sizeof(bucket));
    size_t ns =
        series_prefix(s, "orchestrator_http_request_duration_seconds_sum", sum, sizeof(sum));
    size_t nc =
        series_prefix(s, "orchestrator_http_request_duration_seconds_count", count, sizeof(count));
    uint64_t cumulative = 0;

    if (nb == 0 || ns == 0 || nc == 0 ||
        !text_reserve(t, (ORC_METRIC_BUCKETS + 1) * LINE_ROOM(nb) + LINE_ROOM(ns) + LINE_ROOM(nc)))
        return;
    for (size_t i = 0; i <= ORC_METRIC_BUCKETS; i++) {
        const char *le = i < ORC_METRIC_BUCKETS ? bucket_labels[i] : "+Inf";

        cumulative = i < ORC_METRIC_BUCKETS ? cumulative + s->buckets[i] : s->observations;
        text_put(t, bucket, nb);
        text_put(t, ",le=\"", 5);
        text_put(t, le, strlen(le));
        text_put(t, "\"} ", 3);
        text_put_u64(t, cumulative);
        text_put(t, "\n", 1);
    }
    text_put(t, sum, ns);
    text_put(t, "} ", 2);
    text_put_seconds(t, s->sum_seconds);
    text_put(t, "\n", 1);
    text_put(t, count, nc);
    text_put(t, "} ", 2);
    text_put_u64(t, s->observations);
    text_put(t, "\n", 1);
    t->buf[t->len] = '\0';
}

static void render_durations(orc_api_t *api, orc_api_text_t *t)
{
    orc_api_metrics_printf(t, "# HELP orchestrator_http_request_duration_seconds Time from routing "
                              "a request to the end of its response.\n"
                              "# TYPE orchestrator_http_request_duration_seconds histogram\n");
    for (struct orc_metric_series *s = api->metrics.series; s != NULL; s = s->next)
        if (s->observations > 0)
            render_histogram(s, t);
}

static void render_connections(orc_api_t *api, orc_api_text_t *t)
{
    const struct orc_metrics *m = &api->metrics;

    orc_api_metrics_printf(
        t,
        "# HELP orchestrator_http_connections_open Client connections open now.\n"
        "# TYPE orchestrator_http_connections_open gauge\n"
        "orchestrator_http_connections_open %zu\n"
        "# HELP orchestrator_http_connections_total Client connections accepted.\n"
        "# TYPE orchestrator_http_connections_total counter\n"
        "orchestrator_http_connections_total %llu\n"
        "# HELP orchestrator_http_connections_rejected_total Connections refused at "
        "limits.max_connections or while shutting down.\n"
        "# TYPE orchestrator_http_connections_rejected_total counter\n"
        "orchestrator_http_connections_rejected_total %llu\n"
        "# HELP orchestrator_http_requests_in_flight Requests routed and not yet finished.\n"
        "# TYPE orchestrator_http_requests_in_flight gauge\n"
        "orchestrator_http_requests_in_flight %llu\n",
        api->http ? orc_httpd_open_connections(api->http) : 0,
        (unsigned long long)m->connections_total, (unsigned long long)m->connections_rejected,
        (unsigned long long)m->requests_in_flight);
}

static size_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    size_t n = 0;

    if (d == NULL)
        return 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n > 3 ? n - 3 : 0; /* ".", ".." and the directory's own descriptor */
}

static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, resident = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void render_process(orc_api_t *api, orc_api_text_t *t)
{
    struct rusage ru;
    double cpu = 0;

    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
              (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    orc_api_metrics_printf(
        t,
        "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %.3f\n"
        "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total %.6f\n"
        "# HELP process_resident_memory_bytes Resident memory size.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %zu\n"
        "# HELP process_open_fds Open file descriptors.\n"
        "# TYPE process_open_fds gauge\n"
        "process_open_fds %zu\n"
        "# HELP orchestrator_build_info Build of the running daemon (always 1).\n"
        "# TYPE orchestrator_build_info gauge\n"
        "orchestrator_build_info{name=\"%s\",version=\"%s\",commit=\"%s\",branch=\"%s\"} 1\n",
        (double)api->start_ms / 1000.0, cpu, resident_bytes(), open_fds(), ORC_NAME, ORC_VERSION,
        ORC_GIT_COMMIT, ORC_GIT_BRANCH);
}

char *orc_api_metrics_text(orc_api_t *api, size_t *len)
{
    orc_api_text_t t = {0};

    render_requests(api, &t);
    render_durations(api, &t);
    render_connections(api, &t);
    render_process(api, &t);
    for (size_t i = 0; i < api->nsources; i++)
        api->sources[i].fn(api->sources[i].data, &t);
    if (t.oom) {
        orc_free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}

int orc_api_add_metrics(orc_api_t *api, orc_api_metrics_fn fn, void *data)
{
    struct orc_metrics_source *grown;

    if (fn == NULL)
        return ORC_EINVAL;
    grown = orc_realloc(api->sources, (api->nsources + 1) * sizeof(*grown));
    if (grown == NULL)
        return ORC_ENOMEM;
    api->sources = grown;
    api->sources[api->nsources++] = (struct orc_metrics_source){fn, data};
    return 0;
}

void orc_api_remove_metrics(orc_api_t *api, orc_api_metrics_fn fn, void *data)
{
    for (size_t i = 0; i < api->nsources; i++) {
        if (api->sources[i].fn == fn && api->sources[i].data == data) {
            memmove(&api->sources[i], &api->sources[i + 1],
                    (api->nsources - i - 1) * sizeof(api->sources[0]));
            api->nsources--;
            return;
        }
    }
}
