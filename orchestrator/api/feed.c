/*
 * GET /deployments/changes (feed.h): a live stream of the caller's deployments as they
 * change, for lists (the dashboard's). The events module hands every notify to the feed;
 * a zero timer takes the deployments changed since the last turn, waits until what was
 * stored about them is durable (store/commit.h), reads each once and sends it to every
 * stream whose caller may see it: `event: deployment` with the deployment's JSON (as
 * GET /deployments/{id} answers), or `event: deployment.deleted` with {"uuid"}. A client
 * that falls behind (over HIGH_WATER buffered) is cut off: it reconnects and lists again.
 * Many changes in one turn (over MAX_CHANGED) send `event: resync` instead: list again.
 */
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "../store/commit.h"
#include "../store/json.h"
#include "deployments.h"
#include "feed.h"

#define MAX_CHANGED 256
#define HIGH_WATER (256 * 1024)
#define LOG "events"

struct feed_watcher {
    struct orc_feed *feed;
    orc_api_stream_t *stream;
    char *issuer, *subject, *base_url;
    json_t *groups;
    unsigned roles;
    bool anonymous;
    struct feed_watcher *next, **prev;
};

struct orc_feed {
    orc_store_t *store;
    orc_commit_t *commit;
    uv_timer_t flush;
    struct feed_watcher *watchers;
    size_t nwatchers;
    char changed[MAX_CHANGED][ORC_UUID_LEN], batch[MAX_CHANGED][ORC_UUID_LEN];
    size_t nchanged, nbatch;
    bool overflow, batch_overflow; /* more than MAX_CHANGED: resync */
    orc_commit_wait_t wait;
    bool waiting;
    bool closing;
    unsigned open_timers; /* flush and beat, until their close callbacks ran */
    uv_timer_t beat;      /* a comment line every heartbeat_ms while streams are open */
    uint64_t heartbeat_ms;
};

static void feed_free_if_done(struct orc_feed *f)
{
    if (f->closing && f->open_timers == 0 && !f->waiting)
        orc_free(f);
}

static orc_identity_t identity_of(const struct feed_watcher *w)
{
    return (orc_identity_t){.issuer = w->issuer,
                            .subject = w->subject,
                            .groups = w->groups,
                            .roles = w->roles,
                            .anonymous = w->anonymous};
}

static bool may_see(const struct feed_watcher *w, const orc_deployment_t *d)
{
    orc_identity_t id = identity_of(w);

    return (w->roles & ORC_ROLE_ADMIN) || orc_deployment_visible(&id, d);
}

static void send_to(struct feed_watcher *w, const char *type, const char *data)
{
    if (!orc_api_stream_open(w->stream))
        return;
    if (orc_api_stream_buffered(w->stream) > HIGH_WATER) {
        orc_log(ORC_LOG_INFO, LOG, "deployments feed %s cut off: the client is behind",
                orc_api_stream_id(w->stream));
        orc_api_stream_end(w->stream);
        return;
    }
    orc_api_stream_printf(w->stream, "event: %s\ndata: %s\n\n", type, data);
}

/* One changed deployment to every watcher that may see it. */
static void send_one(struct orc_feed *f, const char *uuid)
{
    orc_deployment_t *d = NULL;
    int rc = orc_store_deployment_get_head(f->store, uuid, &d);

    if (rc < 0) {
        if (rc != ORC_ENOTFOUND)
            orc_log(ORC_LOG_WARN, LOG, "deployments feed: reading %s: %s", uuid,
                    orc_store_errmsg(f->store));
        return;
    }
    for (struct feed_watcher *w = f->watchers; w != NULL; w = w->next) {
        char *text = NULL, gone[ORC_UUID_LEN + 16];
        size_t len;
        if (!may_see(w, d))
            continue;
        if (d->deleted) {
            snprintf(gone, sizeof(gone), "{\"uuid\":\"%s\"}", uuid);
            send_to(w, "deployment.deleted", gone);
        } else if (orc_deployment_json_text(d, w->base_url, &text, &len) == 0) {
            send_to(w, "deployment", text);
        }
        orc_free(text);
    }
    orc_deployment_free(d);
}

static void start_batch(struct orc_feed *f);

static void on_durable(orc_commit_wait_t *cw, int status)
{
    struct orc_feed *f = cw->data;

    f->waiting = false;
    if (f->closing) {
        feed_free_if_done(f);
        return;
    }
    if (status == 0 && f->batch_overflow) {
        for (struct feed_watcher *w = f->watchers; w != NULL; w = w->next)
            send_to(w, "resync", "{}");
    } else if (status == 0) {
        for (size_t i = 0; i < f->nbatch; i++)
            send_one(f, f->batch[i]);
    } /* else not stored: nothing changed after all */
    f->nbatch = 0;
    start_batch(f);
}

static void start_batch(struct orc_feed *f)
{
    if (f->waiting || f->closing || (f->nchanged == 0 && !f->overflow))
        return;
    memcpy(f->batch, f->changed, f->nchanged * sizeof(f->changed[0]));
    f->nbatch = f->nchanged;
    f->batch_overflow = f->overflow;
    f->nchanged = 0;
    f->overflow = false;
    if (f->commit == NULL) {
        on_durable(&f->wait, 0);
        return;
    }
    f->waiting = true;
    f->wait.data = f;
    orc_commit_after(f->commit, &f->wait, on_durable);
}

static void on_flush(uv_timer_t *t)
{
    start_batch(t->data);
}

void orc_feed_notify(struct orc_feed *f, const char *uuid)
{
    if (f == NULL || f->nwatchers == 0 || f->closing)
        return;
    for (size_t i = 0; i < f->nchanged; i++)
        if (strcmp(f->changed[i], uuid) == 0)
            return;
    if (f->nchanged == MAX_CHANGED)
        f->overflow = true;
    else
        snprintf(f->changed[f->nchanged++], ORC_UUID_LEN, "%s", uuid);
    if (!uv_is_active((uv_handle_t *)&f->flush))
        uv_timer_start(&f->flush, on_flush, 0, 0);
}

/* ---- streams ---- */

static void watcher_free(struct feed_watcher *w)
{
    orc_free(w->issuer);
    orc_free(w->subject);
    orc_free(w->base_url);
    json_decref(w->groups);
    orc_free(w);
}

static void on_closed(orc_api_stream_t *s, int status, void *data)
{
    struct feed_watcher *w = data;

    (void)s;
    (void)status;
    *w->prev = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    if (--w->feed->nwatchers == 0)
        uv_timer_stop(&w->feed->beat);
    watcher_free(w);
}

static const orc_api_stream_cbs_t feed_cbs = {.closed = on_closed};

static void on_beat(uv_timer_t *t)
{
    struct orc_feed *f = t->data;

    for (struct feed_watcher *w = f->watchers; w != NULL; w = w->next)
        if (orc_api_stream_open(w->stream))
            orc_api_stream_write(w->stream, ": heartbeat\n\n", 13);
}

static int open_feed(orc_api_req_t *req, void *data)
{
    struct orc_feed *f = data;
    const orc_identity_t *id = orc_api_req_identity(req);
    struct feed_watcher *w = orc_calloc(1, sizeof(*w));
    int rc;

    if (w == NULL || (w->issuer = orc_strdup(id->issuer)) == NULL ||
        (w->subject = orc_strdup(id->subject)) == NULL ||
        (w->base_url = orc_strdup(orc_api_req_base_url(req))) == NULL) {
        if (w)
            watcher_free(w);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    w->feed = f;
    w->groups = json_copy((json_t *)id->groups);
    w->roles = id->roles;
    w->anonymous = id->anonymous;
    orc_api_set_header(req, "cache-control", "no-cache");
    orc_api_set_header(req, "x-accel-buffering", "no");
    rc = orc_api_stream_start(req, 200, "text/event-stream", &feed_cbs, w, &w->stream);
    if (rc < 0) {
        watcher_free(w);
        return rc;
    }
    w->next = f->watchers;
    w->prev = &f->watchers;
    if (f->watchers != NULL)
        f->watchers->prev = &w->next;
    f->watchers = w;
    if (f->nwatchers++ == 0)
        uv_timer_start(&f->beat, on_beat, f->heartbeat_ms, f->heartbeat_ms);
    orc_api_stream_printf(w->stream, "retry: 2000\n\n");
    return 0;
}

int orc_feed_new(uv_loop_t *loop, orc_store_t *store, struct orc_commit_s *commit,
                 uint64_t heartbeat_ms, struct orc_feed **out)
{
    struct orc_feed *f = orc_calloc(1, sizeof(*f));

    *out = f;
    if (f == NULL)
        return ORC_ENOMEM;
    f->store = store;
    f->commit = commit;
    f->heartbeat_ms = heartbeat_ms;
    uv_timer_init(loop, &f->flush);
    uv_timer_init(loop, &f->beat);
    f->flush.data = f->beat.data = f;
    f->open_timers = 2;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct orc_feed *f = h->data;

    f->open_timers--;
    feed_free_if_done(f);
}

void orc_feed_close(struct orc_feed *f)
{
    if (f == NULL || f->closing)
        return;
    if (f->nwatchers > 0) /* the api closes before: a caller's mistake */
        orc_log(ORC_LOG_ERROR, LOG, "deployments feed closing with %zu stream(s) open",
                f->nwatchers);
    f->closing = true;
    uv_close((uv_handle_t *)&f->flush, timer_closed);
    uv_close((uv_handle_t *)&f->beat, timer_closed);
}

int orc_api_feed_register(orc_api_t *api, struct orc_feed *f)
{
    static const orc_api_response_doc_t responses[] = {
        {200,
         "A stream of server-sent events (Content-Type: text/event-stream): `event: "
         "deployment` with the deployment's JSON each time one the caller may see changes, "
         "`event: deployment.deleted` with {\"uuid\"} when one is deleted, `event: resync` "
         "when too many changed at once to say (list again)",
         "text/event-stream", NULL},
        {503, "Too many open streams, or the server is shutting down", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t route = {
        .method = "GET",
        .pattern = "/deployments/changes",
        .handler = open_feed,
        .data = f,
        .summary = "Live changes of the caller's deployments (server-sent events)",
        .description = "For lists that stay up to date: each deployment the caller may see is "
                       "sent again whenever its status or fields change, once the change is "
                       "durable. No backlog: list first, then follow. A comment line every "
                       "15 s keeps it open; a client that falls behind is cut off (it "
                       "reconnects and lists again).",
        .tag = "Deployments",
        .responses = responses,
    };
    return orc_api_register(api, &route);
}
