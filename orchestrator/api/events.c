/*
 * GET /deployments/{id}/events (deployments.h): a deployment's events as a
 * JSON list, or, when the client accepts text/event-stream, as a live stream
 * of server-sent events: the backlog after Last-Event-ID (or ?after=), then
 * each event as the engine stores it, until the deployment is in a final
 * status. The engine's notify hook marks the streams of a deployment and a
 * zero timer reads what is new from the store, once per loop iteration, each
 * stream from the id it sent last: nothing is lost or repeated, and the order
 * is the store's. What a read found is sent once the group commit made it
 * durable (store/commit.h): the ids of a group that failed may be handed out
 * again, so a stream never shows them. Reading waits while a client is
 * behind (backpressure).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deployments.h"
#include "feed.h"
#include "../base.h"
#include "../store/commit.h"
#include "../store/json.h"

#define PAGE 200                /* events read from the store at a time */
#define HIGH_WATER (64 * 1024)  /* buffered bytes above which a stream waits for drained() */
#define LIST_LIMIT 10000        /* events in one JSON list */
#define DEFAULT_HEARTBEAT_MS 15000
#define RETRY_MS 2000           /* the reconnection delay suggested to clients */
#define LOG "events"

struct watcher {
    struct orc_events *ev;
    orc_api_stream_t *stream;
    char uuid[ORC_UUID_LEN];
    int64_t last_id;       /* the last event sent */
    orc_event_list_t held; /* read, sent once durable */
    orc_commit_wait_t wait;
    bool waiting; /* for the commit of held */
    bool live;    /* the backlog is out: an event with a final status ends the stream */
    bool more;    /* the store may hold events not sent yet */
    bool ended;   /* the stream was ended */
    bool gone;    /* the stream is closed: freed when the wait returns */
    struct watcher *next;
    struct watcher **prev;
};

struct orc_events {
    orc_store_t *store;
    orc_commit_t *commit; /* NULL: writes are durable on return */
    uv_timer_t flush;     /* 0 ms after a notify: read what is new */
    uv_timer_t heartbeat; /* while streams are open */
    uint64_t heartbeat_ms;
    struct watcher *watchers;
    size_t nwatchers;
    unsigned closes;       /* timers not yet through their close callback */
    struct orc_feed *feed; /* GET /deployments/changes */
};

static void pump(struct watcher *w);

/* ---- request parsing ----------------------------------------------------------------- */

/* An event id: decimal digits, at most 18 of them; "" is 0. */
static bool parse_id(const char *s, int64_t *out)
{
    size_t n = strlen(s);

    *out = 0;
    if (n > 18 || strspn(s, "0123456789") != n)
        return false;
    *out = n ? strtoll(s, NULL, 10) : 0;
    return true;
}

/* The q of a media range from its parameters (p at the first ';', or NULL;
 * end: the range's end); 1 without one. */
static double range_q(const char *p, const char *end)
{
    while (p != NULL && p < end) {
        const char *v = p + 1 + strspn(p + 1, " \t"); /* stops at ',' or NUL: v <= end */
        if (end - v >= 2 && (v[0] == 'q' || v[0] == 'Q') && v[1] == '=')
            return strtod(v + 2, NULL);
        p = memchr(v, ';', (size_t)(end - v));
    }
    return 1;
}

/* True when a media range of the Accept header is text/event-stream with a
 * q above 0 (any parameters). */
static bool wants_stream(orc_api_req_t *req)
{
    static const char type[] = "text/event-stream";
    const size_t tlen = sizeof(type) - 1;
    const char *p = orc_api_req_header(req, "accept");

    while (p != NULL && *p) {
        const char *end = strchr(p, ',');
        size_t len;
        p += strspn(p, " \t");
        len = end ? (size_t)(end - p) : strlen(p);
        if (len >= tlen && strncasecmp(p, type, tlen) == 0 &&
            (len == tlen || strchr(" \t;", p[tlen]) != NULL) &&
            range_q(memchr(p + tlen, ';', len - tlen), p + len) > 0)
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* The id to resume after: Last-Event-ID (streams only), else ?after=. */
static int resume_id(orc_api_req_t *req, bool stream, int64_t *out)
{
    const char *last = stream ? orc_api_req_header(req, "last-event-id") : NULL;
    const char *after = orc_api_req_query(req, "after");

    if (last != NULL && !parse_id(last, out))
        return orc_api_req_fail(req, 400, "Last-Event-ID must be an event id (a number), not '%s'",
                                last);
    if (last == NULL && after != NULL && !parse_id(after, out))
        return orc_api_req_fail(req, 400, "after must be an event id (a number), not '%s'", after);
    return 0;
}

/* 404 unless the deployment exists, is not deleted and the caller may see it. */
static int check_deployment(orc_api_req_t *req, struct orc_events *ev, const char *id)
{
    orc_deployment_t *d = NULL;
    int rc;

    if (id == NULL || !orc_uuid_valid(id))
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id ? id : "");
    rc = orc_store_deployment_get_head(ev->store, id, &d);
    if (rc == 0 && (d->deleted || !orc_deployment_visible(orc_api_req_identity(req), d)))
        rc = ORC_ENOTFOUND;
    orc_deployment_free(d);
    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "The deployment %s doesn't exist", id);
    if (rc < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(ev->store));
    return 0;
}

/* ---- the JSON list ---------------------------------------------------------------------- */

static int send_list(orc_api_req_t *req, struct orc_events *ev, const char *id, int64_t after)
{
    orc_event_list_t l = {0};
    json_t *arr;
    int rc = orc_store_event_list(ev->store, id, after, LIST_LIMIT, &l);

    if (rc < 0)
        return orc_api_req_fail(req, rc == ORC_ENOTFOUND ? 404 : 500, "%s",
                                orc_store_errmsg(ev->store));
    arr = json_array();
    for (size_t i = 0; arr && i < l.count; i++) {
        json_t *j = NULL;
        if (orc_event_to_json(&l.items[i], &j) == 0)
            json_array_append_new(arr, j);
    }
    orc_event_list_clear(&l);
    return orc_api_send_json_new(req, 200, arr);
}

/* ---- one stream --------------------------------------------------------------------------- */

static bool final_status(const char *st)
{
    size_t n = st ? strlen(st) : 0;

    return (n > 9 && strcmp(st + n - 9, "_COMPLETE") == 0) ||
           (n > 7 && strcmp(st + n - 7, "_FAILED") == 0);
}

static void end_stream(struct watcher *w, const char *why)
{
    if (w->ended)
        return;
    w->ended = true;
    orc_log(ORC_LOG_DEBUG, LOG, "stream %s of deployment %s ends: %s",
            orc_api_stream_id(w->stream), w->uuid, why);
    orc_api_stream_end(w->stream);
}

/* "id: N\nevent: TYPE\ndata: JSON\n\n"; the data is the object of the JSON list. */
static int send_event(struct watcher *w, const orc_event_t *e)
{
    json_t *j = NULL;
    char type[128], *data;
    size_t len;
    int rc = orc_event_to_json(e, &j);

    if (rc < 0)
        return rc;
    len = json_dumpb(j, NULL, 0, JSON_COMPACT); /* compact JSON holds no newline */
    data = len ? orc_malloc(len + 1) : NULL;
    if (data == NULL) {
        json_decref(j);
        return ORC_ENOMEM;
    }
    json_dumpb(j, data, len, JSON_COMPACT);
    data[len] = '\0';
    json_decref(j);
    snprintf(type, sizeof(type), "%s", e->type ? e->type : "event");
    for (char *p = type; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    rc = orc_api_stream_printf(w->stream, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)e->id,
                               type, data);
    orc_free(data);
    return rc;
}

/* Ends the stream when the stored deployment is gone, deleted or final. */
static void check_row(struct watcher *w)
{
    orc_deployment_t *d = NULL;
    int rc = orc_store_deployment_get(w->ev->store, w->uuid, &d);

    if (rc == ORC_ENOTFOUND || (rc == 0 && d->deleted))
        end_stream(w, "the deployment is gone");
    else if (rc == 0 && final_status(orc_dep_status_name(d->status)))
        end_stream(w, orc_dep_status_name(d->status));
    else if (rc < 0)
        end_stream(w, orc_store_errmsg(w->ev->store)); /* the client resumes later */
    orc_deployment_free(d);
}

/* In the live part: does e leave the deployment final? *unsure when a
 * deployment event does not say its status. */
static bool ends_with(const orc_event_t *e, bool *unsure)
{
    const char *st;

    if (e->type == NULL || strncmp(e->type, "deployment.", 11) != 0)
        return false;
    st = json_string_value(json_object_get(e->data, "status"));
    if (st == NULL)
        *unsure = true;
    return final_status(st);
}

/* Sends the held events (durable now). */
static void send_held(struct watcher *w)
{
    orc_event_list_t *l = &w->held;
    bool unsure = false;

    for (size_t i = 0; i < l->count && send_event(w, &l->items[i]) == 0; i++) {
        w->last_id = l->items[i].id;
        if (w->live && ends_with(&l->items[i], &unsure)) {
            end_stream(w, json_string_value(json_object_get(l->items[i].data, "status")));
            break;
        }
    }
    orc_event_list_clear(l);
    if (unsure)
        w->live = false; /* the row says, at the next catch-up (a read that finds nothing) */
}

static void on_durable(orc_commit_wait_t *cw, int status)
{
    struct watcher *w = cw->data;

    w->waiting = false;
    if (w->gone) {
        orc_event_list_clear(&w->held);
        orc_free(w);
        return;
    }
    if (status == 0) {
        send_held(w);
    } else {
        orc_log(ORC_LOG_WARN, LOG, "deployment %s: events after %lld were not stored (%s): "
                "not sent", w->uuid, (long long)w->last_id, orc_strerror(status));
        orc_event_list_clear(&w->held);
        w->more = true; /* what is stored later comes with the next read */
    }
    pump(w);
}

/* Reads a page after last_id into held; returns false when there is
 * nothing more to send now (caught up, or the stream ended). */
static bool read_page(struct watcher *w)
{
    int rc = orc_store_event_list(w->ev->store, w->uuid, w->last_id, PAGE, &w->held);

    if (rc < 0) {
        if (rc != ORC_ENOTFOUND)
            orc_log(ORC_LOG_ERROR, LOG, "deployment %s: reading events: %s", w->uuid,
                    orc_store_errmsg(w->ev->store));
        end_stream(w, rc == ORC_ENOTFOUND ? "the deployment is gone" : "store error");
        return false;
    }
    if (w->held.count > 0)
        return true;
    w->more = false;
    if (!w->live) { /* in the same callback as the read: the row matches what was sent */
        check_row(w);
        w->live = true;
    }
    return false;
}

/* Sends what the store has after last_id while the client keeps up; each
 * page once it is durable. At the end of the backlog, a deployment already
 * final ends the stream. */
static void pump(struct watcher *w)
{
    while (w->more && !w->waiting && !w->ended && orc_api_stream_open(w->stream) &&
           orc_api_stream_buffered(w->stream) < HIGH_WATER && read_page(w)) {
        if (w->ev->commit != NULL) {
            w->waiting = true;
            w->wait.data = w;
            orc_commit_after(w->ev->commit, &w->wait, on_durable);
            return;
        }
        send_held(w);
    }
}

static void on_drained(orc_api_stream_t *s, void *data)
{
    (void)s;
    pump(data);
}

static void on_closed(orc_api_stream_t *s, int status, void *data)
{
    struct watcher *w = data;
    struct orc_events *ev = w->ev;

    (void)s;
    orc_log(ORC_LOG_DEBUG, LOG, "stream of deployment %s closed%s after event %lld", w->uuid,
            status == 0 ? "" : " by the client", (long long)w->last_id);
    *w->prev = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    if (--ev->nwatchers == 0)
        uv_timer_stop(&ev->heartbeat);
    w->gone = true;
    if (!w->waiting) /* else when the wait returns */
        orc_free(w);
}

static const orc_api_stream_cbs_t stream_cbs = {.drained = on_drained, .closed = on_closed};

static void on_heartbeat(uv_timer_t *t)
{
    struct orc_events *ev = t->data;

    for (struct watcher *w = ev->watchers; w != NULL; w = w->next)
        if (!w->ended)
            orc_api_stream_write(w->stream, ": heartbeat\n\n", 13);
}

static int start_stream(orc_api_req_t *req, struct orc_events *ev, const char *id, int64_t after)
{
    struct watcher *w = orc_calloc(1, sizeof(*w));
    int rc;

    if (w == NULL)
        return ORC_ENOMEM;
    w->ev = ev;
    memcpy(w->uuid, id, ORC_UUID_LEN);
    w->last_id = after;
    w->more = true;
    orc_api_set_header(req, "cache-control", "no-cache");
    orc_api_set_header(req, "x-accel-buffering", "no"); /* proxies: do not hold it back */
    rc = orc_api_stream_start(req, 200, "text/event-stream", &stream_cbs, w, &w->stream);
    if (rc < 0) {
        orc_free(w);
        return rc;
    }
    w->next = ev->watchers;
    w->prev = &ev->watchers;
    if (ev->watchers != NULL)
        ev->watchers->prev = &w->next;
    ev->watchers = w;
    if (ev->nwatchers++ == 0)
        uv_timer_start(&ev->heartbeat, on_heartbeat, ev->heartbeat_ms, ev->heartbeat_ms);
    orc_api_stream_printf(w->stream, "retry: %d\n\n", RETRY_MS);
    pump(w);
    return 0;
}

static int list_or_stream(orc_api_req_t *req, void *data)
{
    struct orc_events *ev = data;
    const char *id = orc_api_req_param(req, "id");
    bool stream = wants_stream(req);
    int64_t after = 0;
    int rc = check_deployment(req, ev, id);

    if (rc == 0)
        rc = resume_id(req, stream, &after);
    if (rc < 0)
        return rc;
    return stream ? start_stream(req, ev, id, after) : send_list(req, ev, id, after);
}

/* ---- the engine's side and the lifecycle ------------------------------------------------------ */

static void on_flush(uv_timer_t *t)
{
    struct orc_events *ev = t->data;

    for (struct watcher *w = ev->watchers; w != NULL; w = w->next)
        if (w->more && !w->ended && !w->waiting)
            pump(w);
}

void orc_events_notify(void *ud, const char *deployment_uuid)
{
    struct orc_events *ev = ud;
    bool any = false;

    orc_feed_notify(ev->feed, deployment_uuid);
    for (struct watcher *w = ev->watchers; w != NULL; w = w->next) {
        if (!w->ended && strcmp(w->uuid, deployment_uuid) == 0) {
            w->more = true;
            any = true;
        }
    }
    if (any && !uv_is_active((uv_handle_t *)&ev->flush))
        uv_timer_start(&ev->flush, on_flush, 0, 0);
}

int orc_events_new(uv_loop_t *loop, orc_store_t *store, struct orc_commit_s *commit,
                   uint64_t heartbeat_ms, struct orc_events **out)
{
    struct orc_events *ev = orc_calloc(1, sizeof(*ev));

    *out = NULL;
    if (ev == NULL)
        return ORC_ENOMEM;
    ev->store = store;
    ev->commit = commit;
    ev->heartbeat_ms = heartbeat_ms ? heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    uv_timer_init(loop, &ev->flush);
    uv_timer_init(loop, &ev->heartbeat);
    ev->flush.data = ev;
    ev->heartbeat.data = ev;
    if (orc_feed_new(loop, store, commit, ev->heartbeat_ms, &ev->feed) < 0) {
        uv_close((uv_handle_t *)&ev->flush, NULL); /* freed below: no callback needed */
        uv_close((uv_handle_t *)&ev->heartbeat, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        orc_free(ev);
        return ORC_ENOMEM;
    }
    *out = ev;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct orc_events *ev = h->data;

    if (--ev->closes == 0)
        orc_free(ev);
}

void orc_events_close(struct orc_events *ev)
{
    if (ev == NULL || ev->closes > 0)
        return;
    if (ev->nwatchers > 0) /* the api closes before: a caller's mistake */
        orc_log(ORC_LOG_ERROR, LOG, "closing with %zu stream(s) open", ev->nwatchers);
    orc_feed_close(ev->feed);
    ev->closes = 2;
    uv_close((uv_handle_t *)&ev->flush, timer_closed);
    uv_close((uv_handle_t *)&ev->heartbeat, timer_closed);
}

int orc_api_events_register(orc_api_t *api, struct orc_events *ev)
{
    static const orc_api_param_doc_t query[] = {
        {"after", "Only events with a greater id (default 0: all); a stream resumes from the "
                  "Last-Event-ID header first",
         "{\"type\":\"integer\",\"minimum\":0}", false},
        {NULL, NULL, NULL, false}};
    /* One entry per status: the stream is said in words (see the description) */
    static const orc_api_response_doc_t responses[] = {
        {200,
         "The events after `after`, oldest first (at most 10000); with Accept: "
         "text/event-stream instead a live stream of them (Content-Type: text/event-stream)",
         "application/json",
         "{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Event\"}}"},
        {400, "after or Last-Event-ID is not an event id", "application/json", NULL},
        {404, "No such deployment", "application/json", NULL},
        {503, "Too many open streams, or the server is shutting down", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t route = {
        .method = "GET",
        .pattern = "/deployments/{id}/events",
        .handler = list_or_stream,
        .data = ev,
        .summary = "Events (after=ID to resume); live with Accept: text/event-stream",
        .description =
            "Without Accept: text/event-stream: the JSON list of the deployment's events. With "
            "it: a stream of server-sent events (text/event-stream): `retry: 2000`, then the "
            "events after Last-Event-ID (or `after`), then each new event as it is stored, each "
            "as `id: N`, `event: TYPE`, `data: <the event object of the JSON list>`; a comment "
            "line every 15 s keeps it open. The stream ends after the event that leaves the "
            "deployment in a final status (*_COMPLETE, *_FAILED, deleted), at once after the "
            "backlog when it is final already.",
        .tag = "Deployments",
        .query = query,
        .responses = responses,
    };
    int rc = orc_api_register(api, &route); /* the Event schema is deployments.c's */

    return rc < 0 ? rc : orc_api_feed_register(api, ev->feed);
}
