/*
 * The agent's reporter (report.h): a bounded queue of reports, sent in
 * batches to the orchestrator's agent endpoint over libcurl on the agent's
 * loop. One batch is in flight at a time; a batch the orchestrator did not
 * acknowledge (no answer, 5xx, 429) is sent again after a backoff that
 * doubles from 250 ms up to 30 s, so an orchestrator that is down, restarting
 * or unreachable loses nothing: reports wait in the queue. When the queue is
 * full the oldest log chunk goes first (then the oldest heartbeat, then the
 * oldest report), counted as dropped. A 4xx other than 429 means the
 * orchestrator refuses the batch (bad token, deployment deleted): the batch
 * is dropped, so that one bad report never blocks the ones behind it.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../orchestrator/base.h"
#include "../../orchestrator/engine/http_client.h"
#include "agent.h"
#include "report.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define BATCH_MAX_REPORTS 256
#define BATCH_MAX_BYTES (512u << 10) /* under the daemon's default body limit */
#define POST_TIMEOUT_MS 10000

struct entry {
    struct entry *next;
    uint64_t seq;
    int64_t time_ms;
    char *type;
    json_t *data;
    size_t bytes; /* its size in a batch, roughly */
};

struct agent_reporter {
    uv_loop_t *loop;
    struct orc_http *http;
    char *url, *token, *ca_file, *resource_json; /* resource_json: "resource" and host */
    json_t *agent;  /* {"version", "hostname", "pid", "boot"} */
    json_t *status; /* what heartbeats carry */
    uint32_t heartbeat_ms, max_queue;
    struct entry *head, *tail;
    uint32_t queued;
    uint64_t next_seq;
    uint64_t inflight_last; /* last seq of the batch in flight; 0: none */
    uint32_t backoff_ms;
    uv_timer_t send_timer, heartbeat_timer;
    unsigned open_handles;
    bool closing, http_closed;
    uint64_t close_deadline_ms;
    void (*done)(void *ud);
    void *done_ud;
    struct agent_report_stats stats;
};

static const char *const env_names[] = {
    "ORC_AGENT_URL",          "ORC_AGENT_TOKEN",   "ORC_AGENT_DEPLOYMENT",   "ORC_AGENT_RESOURCE",
    "ORC_AGENT_HOST_RESOURCE", "ORC_AGENT_CA_FILE", "ORC_AGENT_HEARTBEAT_MS",
};

bool agent_report_env_name(const char *name_eq_value)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
        size_t n = strlen(env_names[i]);
        if (strncmp(name_eq_value, env_names[i], n) == 0 &&
            (name_eq_value[n] == '=' || name_eq_value[n] == '\0'))
            return true;
    }
    return false;
}

bool agent_report_conf_from_env(struct agent_report_conf *conf)
{
    const char *hb = getenv("ORC_AGENT_HEARTBEAT_MS");

    memset(conf, 0, sizeof(*conf));
    conf->url = getenv("ORC_AGENT_URL");
    if (conf->url == NULL || conf->url[0] == '\0')
        return false;
    conf->token = getenv("ORC_AGENT_TOKEN");
    conf->deployment = getenv("ORC_AGENT_DEPLOYMENT");
    conf->resource = getenv("ORC_AGENT_RESOURCE");
    conf->host_resource = getenv("ORC_AGENT_HOST_RESOURCE");
    conf->ca_file = getenv("ORC_AGENT_CA_FILE");
    if (hb)
        conf->heartbeat_ms = (uint32_t)strtoul(hb, NULL, 10);
    return true;
}

/* ---- the queue ---- */

static void entry_free(struct entry *e)
{
    orc_free(e->type);
    json_decref(e->data);
    orc_free(e);
}

/* Unlinks and frees the entry after prev (prev NULL: the head). */
static void drop_after(struct agent_reporter *r, struct entry *prev)
{
    struct entry *e = prev ? prev->next : r->head;

    if (prev)
        prev->next = e->next;
    else
        r->head = e->next;
    if (r->tail == e)
        r->tail = prev;
    r->queued--;
    r->stats.dropped++;
    entry_free(e);
}

/* The queue is full: the oldest log chunk, else the oldest heartbeat, else
 * the oldest report not in flight makes room. */
static void make_room(struct agent_reporter *r)
{
    static const char *const order[] = {"log", "heartbeat", NULL};

    for (int k = 0; k < 3; k++) {
        struct entry *prev = NULL;
        for (struct entry *e = r->head; e; prev = e, e = e->next) {
            if (r->inflight_last && e->seq <= r->inflight_last)
                continue;
            if (order[k] == NULL || strcmp(e->type, order[k]) == 0) {
                drop_after(r, prev);
                return;
            }
        }
    }
}

static void schedule_send(struct agent_reporter *r, uint64_t delay_ms);

void agent_report(struct agent_reporter *r, const char *type, json_t *data)
{
    struct entry *e = orc_calloc(1, sizeof(*e));

    if (data == NULL)
        data = json_object();
    if (e == NULL || data == NULL || (e->type = orc_strdup(type)) == NULL) {
        orc_log(ORC_LOG_WARN, "report", "out of memory: %s report dropped", type);
        r->stats.dropped++;
        json_decref(data);
        if (e)
            entry_free(e);
        return;
    }
    e->data = data;
    e->seq = ++r->next_seq;
    e->time_ms = orc_now_ms();
    e->bytes = 64 + strlen(type);
    if (strcmp(type, "log") == 0)
        e->bytes += json_string_length(json_object_get(data, "data")) * 2;
    else
        e->bytes += 1024;
    if (r->queued >= r->max_queue)
        make_room(r);
    if (r->tail)
        r->tail->next = e;
    else
        r->head = e;
    r->tail = e;
    r->queued++;
    if (r->inflight_last == 0 && r->backoff_ms == 0)
        schedule_send(r, 0);
}

void agent_report_set_status(struct agent_reporter *r, json_t *status)
{
    json_decref(r->status);
    r->status = status;
}

void agent_report_stats(const struct agent_reporter *r, struct agent_report_stats *out)
{
    *out = r->stats;
    out->queued = r->queued;
}

/* ---- sending ---- */

static void maybe_finish_close(struct agent_reporter *r);

/* The JSON of a batch: the head of the queue, up to the limits. Sets
 * *last to its last seq. */
static char *batch_text(struct agent_reporter *r, uint64_t *last)
{
    json_t *reports = json_array();
    size_t bytes = 0;
    char *text = NULL;

    for (struct entry *e = r->head; reports && e; e = e->next) {
        if (json_array_size(reports) == BATCH_MAX_REPORTS ||
            (bytes && bytes + e->bytes > BATCH_MAX_BYTES))
            break;
        json_t *one = json_pack("{sI ss sI sO}", "seq", (json_int_t)e->seq, "type", e->type,
                                "time_ms", (json_int_t)e->time_ms, "data", e->data);
        if (one == NULL || json_array_append_new(reports, one) < 0)
            goto out;
        bytes += e->bytes;
        *last = e->seq;
    }
    json_t *body = json_loads(r->resource_json, 0, NULL);
    if (body && json_object_set(body, "agent", r->agent) == 0 &&
        json_object_set(body, "reports", reports) == 0) {
        char *t = json_dumps(body, JSON_COMPACT);
        text = t ? orc_strdup(t) : NULL;
        free(t);
    }
    json_decref(body);
out:
    json_decref(reports);
    return text;
}

/* Drops the acknowledged entries (seq <= last). */
static void ack(struct agent_reporter *r, uint64_t last)
{
    while (r->head && r->head->seq <= last) {
        struct entry *e = r->head;
        r->head = e->next;
        if (r->tail == e)
            r->tail = NULL;
        r->queued--;
        entry_free(e);
    }
}

static void on_posted(void *ud, int rc, long status, const char *error)
{
    struct agent_reporter *r = ud;
    uint64_t last = r->inflight_last;

    r->inflight_last = 0;
    if (rc == 0 && status >= 200 && status < 300) {
        r->stats.batches_ok++;
        r->backoff_ms = 0;
        ack(r, last);
    } else if (rc == 0 && status >= 400 && status < 500 && status != 429) {
        orc_log(ORC_LOG_WARN, "report", "the orchestrator refused reports up to #%llu (HTTP %ld)",
                (unsigned long long)last, status);
        r->stats.attempts_failed++;
        for (struct entry *e = r->head; e && e->seq <= last; e = e->next)
            r->stats.dropped++;
        ack(r, last);
    } else if (rc == ORC_ECANCELED) {
        maybe_finish_close(r);
        return;
    } else {
        r->stats.attempts_failed++;
        r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (r->backoff_ms > BACKOFF_MAX_MS)
            r->backoff_ms = BACKOFF_MAX_MS;
        if (r->stats.attempts_failed == 1 || r->backoff_ms == BACKOFF_MAX_MS)
            orc_log(ORC_LOG_WARN, "report", "cannot reach %s (%s); %u reports queued, next try in %u ms",
                    r->url, rc ? error : "server error", r->queued, r->backoff_ms);
        schedule_send(r, r->backoff_ms);
        maybe_finish_close(r);
        return;
    }
    if (r->head)
        schedule_send(r, 0);
    maybe_finish_close(r);
}

static void send_batch(struct agent_reporter *r)
{
    uint64_t last = 0;
    char *text;

    if (r->head == NULL || r->inflight_last || r->http_closed)
        return;
    text = batch_text(r, &last);
    if (text == NULL) {
        schedule_send(r, BACKOFF_MIN_MS);
        return;
    }
    struct orc_http_post p = {.url = r->url, .body = text, .timeout_ms = POST_TIMEOUT_MS,
                              .bearer = r->token, .ca_file = r->ca_file};
    int rc = orc_http_post(r->http, &p, on_posted, r);
    orc_free(text);
    if (rc < 0) {
        schedule_send(r, BACKOFF_MAX_MS);
        return;
    }
    r->inflight_last = last;
}

static void on_send_timer(uv_timer_t *t)
{
    struct agent_reporter *r = t->data;

    if (!r->closing || uv_now(r->loop) < r->close_deadline_ms)
        send_batch(r);
    maybe_finish_close(r);
}

static void schedule_send(struct agent_reporter *r, uint64_t delay_ms)
{
    if (r->closing && uv_now(r->loop) + delay_ms > r->close_deadline_ms)
        delay_ms = r->close_deadline_ms > uv_now(r->loop) ? r->close_deadline_ms - uv_now(r->loop)
                                                           : 0;
    uv_timer_start(&r->send_timer, on_send_timer, delay_ms, 0);
}

/* A heartbeat replaces one still waiting in the queue (offline, only the
 * newest matters). */
static void on_heartbeat(uv_timer_t *t)
{
    struct agent_reporter *r = t->data;
    struct entry *prev = NULL;

    for (struct entry *e = r->head; e; prev = e, e = e->next)
        if (strcmp(e->type, "heartbeat") == 0 && !(r->inflight_last && e->seq <= r->inflight_last)) {
            drop_after(r, prev);
            r->stats.dropped--; /* replaced, not lost */
            break;
        }
    agent_report(r, "heartbeat", r->status ? json_deep_copy(r->status) : json_object());
}

/* ---- life cycle ---- */

static json_t *agent_identity(void)
{
    char host[256] = "";

    gethostname(host, sizeof(host) - 1);
    return json_pack("{ss ss sI sI}", "version", GPU_AGENT_VERSION, "hostname", host, "pid",
                     (json_int_t)getpid(), "boot", (json_int_t)orc_now_ms());
}

static char *reports_url(const struct agent_report_conf *conf)
{
    size_t n = strlen(conf->url);

    while (n && conf->url[n - 1] == '/')
        n--;
    return orc_asprintf("%.*s/agent/v1/deployments/%s/reports", (int)n, conf->url,
                        conf->deployment);
}

static void reporter_free(struct agent_reporter *r)
{
    while (r->head) {
        struct entry *e = r->head;
        r->head = e->next;
        entry_free(e);
    }
    json_decref(r->agent);
    json_decref(r->status);
    orc_free(r->url);
    orc_free(r->token);
    orc_free(r->ca_file);
    orc_free(r->resource_json);
    orc_free(r);
}

int agent_reporter_new(uv_loop_t *loop, const struct agent_report_conf *conf,
                       struct agent_reporter **out)
{
    struct agent_reporter *r;
    json_t *res;

    *out = NULL;
    if (conf->url == NULL || conf->deployment == NULL || conf->resource == NULL ||
        conf->token == NULL) {
        orc_log(ORC_LOG_ERROR, "report",
                "reporting needs ORC_AGENT_URL, ORC_AGENT_TOKEN, ORC_AGENT_DEPLOYMENT and "
                "ORC_AGENT_RESOURCE");
        return ORC_EINVAL;
    }
    if ((r = orc_calloc(1, sizeof(*r))) == NULL)
        return ORC_ENOMEM;
    r->loop = loop;
    r->heartbeat_ms = conf->heartbeat_ms ? conf->heartbeat_ms : 15000;
    r->max_queue = conf->max_queue ? conf->max_queue : 4096;
    r->url = reports_url(conf);
    r->token = orc_strdup(conf->token);
    r->ca_file = conf->ca_file ? orc_strdup(conf->ca_file) : NULL;
    r->agent = agent_identity();
    res = json_pack("{ss ss}", "resource", conf->resource, "host_resource",
                    conf->host_resource ? conf->host_resource : conf->resource);
    char *t = res ? json_dumps(res, JSON_COMPACT) : NULL;
    r->resource_json = t ? orc_strdup(t) : NULL;
    free(t);
    json_decref(res);
    if (r->url == NULL || r->token == NULL || r->agent == NULL || r->resource_json == NULL ||
        (conf->ca_file && r->ca_file == NULL) || orc_http_new(loop, &r->http) < 0) {
        reporter_free(r);
        return ORC_ENOMEM;
    }
    uv_timer_init(loop, &r->send_timer);
    uv_timer_init(loop, &r->heartbeat_timer);
    r->send_timer.data = r->heartbeat_timer.data = r;
    r->open_handles = 2;
    uv_timer_start(&r->heartbeat_timer, on_heartbeat, r->heartbeat_ms, r->heartbeat_ms);
    *out = r;
    return 0;
}

static void handle_closed(uv_handle_t *h)
{
    struct agent_reporter *r = h->data;

    if (--r->open_handles == 0) {
        void (*done)(void *) = r->done;
        void *ud = r->done_ud;
        reporter_free(r);
        if (done)
            done(ud);
    }
}

static void http_closed(void *ud)
{
    struct agent_reporter *r = ud;

    uv_close((uv_handle_t *)&r->send_timer, handle_closed);
    uv_close((uv_handle_t *)&r->heartbeat_timer, handle_closed);
}

/* Closing: once the queue is empty (or the time is up) and nothing is in
 * flight, the HTTP client and the timers close, then r is freed. */
static void maybe_finish_close(struct agent_reporter *r)
{
    if (!r->closing || r->http_closed)
        return;
    bool late = uv_now(r->loop) >= r->close_deadline_ms;
    if (r->inflight_last && !late)
        return;
    if (r->head && !late)
        return;
    if (r->head)
        orc_log(ORC_LOG_WARN, "report", "closing with %u reports not delivered", r->queued);
    r->http_closed = true;
    uv_timer_stop(&r->send_timer);
    orc_http_close(r->http, http_closed, r);
}

void agent_reporter_close(struct agent_reporter *r, uint32_t timeout_ms, void (*done)(void *ud),
                          void *ud)
{
    r->closing = true;
    r->done = done;
    r->done_ud = ud;
    r->close_deadline_ms = uv_now(r->loop) + timeout_ms;
    uv_timer_stop(&r->heartbeat_timer);
    /* one last try at once, whatever the backoff; a batch in flight gets
     * until the deadline */
    uv_timer_start(&r->send_timer, on_send_timer, r->inflight_last ? timeout_ms : 0, 0);
}
