/*
 * orchctl watch (cli.h): follows a deployment's events until it is in a
 * final status. It reads the server-sent event stream of
 * /deployments/{id}/events, which the server ends after the event that makes
 * the deployment final; when the connection drops it resumes after the last
 * event it printed (Last-Event-ID). When the server offers no stream (a
 * daemon without them, or all streams taken: 503) it polls the JSON list
 * (?after=) every two seconds instead. Each event prints as one line (time,
 * type, message), with --json as its JSON object, one per line; on a
 * terminal a progress line shows how many node instances are up out of all
 * of them, counted from the resource events (resource.created and
 * resource.state carry each instance's state).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define POLL_MS 2000
#define DEFAULT_RETRY_MS 2000
#define MAX_FAILURES 15 /* attempts in a row that bring no event: then give up */

struct watch {
    const struct cli_server *srv;
    const char *id;
    bool deleting;
    bool tty;        /* stdout is a terminal and not --json: draw progress */
    bool bar;        /* a progress line is on the terminal */
    char status[64]; /* the deployment's status, from its events */
    long long last_id;
    json_t *res; /* resource uuid -> state, for progress */
};

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool final_status(const char *s)
{
    size_t n = strlen(s);

    return (n > 9 && strcmp(s + n - 9, "_COMPLETE") == 0) ||
           (n > 7 && strcmp(s + n - 7, "_FAILED") == 0);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- printing ---- */

static bool instance_up(const char *state)
{
    return strcmp(state, "CREATED") == 0 || strcmp(state, "CONFIGURED") == 0 ||
           strcmp(state, "STARTED") == 0;
}

static void clear_bar(struct watch *w)
{
    if (w->bar)
        fputs("\r\033[K", stdout);
    w->bar = false;
}

/* "  [#########.........] 3/6 instances up", left on the line until the next
 * event overwrites it. */
static void draw_bar(struct watch *w)
{
    size_t total = json_object_size(w->res), up = 0;
    const char *k;
    json_t *v;
    char bar[31];

    json_object_foreach(w->res, k, v) up += instance_up(json_string_value(v));
    if (total == 0)
        return;
    for (size_t i = 0; i < 30; i++)
        bar[i] = i < up * 30 / total ? '#' : '.';
    bar[30] = '\0';
    printf("  [%s] %zu/%zu instance%s up", bar, up, total, total == 1 ? "" : "s");
    w->bar = true;
}

/* Resource events carry the instance's state: {"resource": uuid, "state": S}. */
static void track_resource(struct watch *w, const json_t *ev)
{
    const json_t *data = json_object_get(ev, "data");
    const char *uuid = str(data, "resource"), *state = str(data, "state");

    if (strncmp(str(ev, "type"), "resource.", 9) == 0 && *uuid && *state)
        json_object_set_new(w->res, uuid, json_string(state));
}

/* Prints one event (text: its JSON as received, or NULL) unless it came
 * before; notes the status a deployment event reports. */
static void take_event(struct watch *w, const json_t *ev, const char *text)
{
    long long id = (long long)json_integer_value(json_object_get(ev, "id"));
    const char *st = str(json_object_get(ev, "data"), "status");

    if (!json_is_object(ev) || id <= w->last_id)
        return; /* never twice, whatever a server or a resume sends */
    w->last_id = id;
    track_resource(w, ev);
    if (strncmp(str(ev, "type"), "deployment.", 11) == 0 && *st)
        snprintf(w->status, sizeof(w->status), "%s", st);
    clear_bar(w);
    if (w->srv->json) {
        char *dumped = text ? NULL : json_dumps(ev, JSON_COMPACT);
        printf("%s\n", text ? text : dumped ? dumped : "{}");
        free(dumped);
    } else {
        printf("%s  %-22s %s\n", str(ev, "time"), str(ev, "type"), str(ev, "message"));
        if (w->tty) /* once instances are known it stays under the last line */
            draw_bar(w);
    }
    fflush(stdout);
}

static int finish(struct watch *w)
{
    if (w->bar)
        fputc('\n', stdout);
    w->bar = false;
    if (!w->srv->json)
        printf("%s: %s\n", w->id, w->status);
    fflush(stdout);
    return strstr(w->status, "_FAILED") != NULL ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* ---- polling (no stream offered) ---- */

/* The deployment's status by GET; DELETE_COMPLETE for a 404 when deleting. */
static int fetch_status(struct watch *w, char *out, size_t size)
{
    struct cli_server srv = *w->srv;
    struct cli_response r;
    char path[256];
    json_t *d;
    int rc;

    srv.quiet_404 = w->deleting;
    snprintf(path, sizeof(path), "/deployments/%s", w->id);
    rc = cli_request(&srv, "GET", path, NULL, &r);
    if (r.status == 404 && w->deleting) {
        cli_response_free(&r);
        snprintf(out, size, "DELETE_COMPLETE");
        return CLI_EXIT_OK;
    }
    d = rc == CLI_EXIT_OK ? cli_response_json(&r) : NULL;
    snprintf(out, size, "%s", str(d, "status"));
    json_decref(d);
    cli_response_free(&r);
    return rc != CLI_EXIT_OK ? rc : *out ? CLI_EXIT_OK : CLI_EXIT_SERVER;
}

/* Prints the events after the last one printed. */
static int fetch_events(struct watch *w)
{
    struct cli_server srv = *w->srv;
    struct cli_response r;
    char path[256];
    json_t *list, *ev;
    size_t i;
    int rc;

    srv.quiet_404 = w->deleting;
    snprintf(path, sizeof(path), "/deployments/%s/events?after=%lld", w->id, w->last_id);
    rc = cli_request(&srv, "GET", path, NULL, &r);
    if (r.status == 404 && w->deleting) {
        cli_response_free(&r);
        return CLI_EXIT_OK;
    }
    list = rc == CLI_EXIT_OK ? cli_response_json(&r) : NULL;
    json_array_foreach(list, i, ev) take_event(w, ev, NULL);
    json_decref(list);
    cli_response_free(&r);
    return rc != CLI_EXIT_OK ? rc : list ? CLI_EXIT_OK : CLI_EXIT_SERVER;
}

static int poll_events(struct watch *w)
{
    char st[64];
    int rc;

    for (;;) {
        /* the status first: the events read after it include its own */
        rc = fetch_status(w, st, sizeof(st));
        if (rc == CLI_EXIT_OK)
            rc = fetch_events(w);
        if (rc != CLI_EXIT_OK)
            return rc;
        if (final_status(st)) {
            snprintf(w->status, sizeof(w->status), "%s", st);
            return finish(w);
        }
        sleep_ms(POLL_MS);
    }
}

/* ---- the stream ---- */

static bool on_sse(const struct cli_sse_event *e, void *ud)
{
    struct watch *w = ud;
    json_error_t err;
    json_t *ev = json_loads(e->data, 0, &err);

    if (ev == NULL)
        fprintf(stderr, "orchctl: an event %s is not JSON: %s\n", e->id, err.text);
    else
        take_event(w, ev, e->data);
    json_decref(ev);
    return false; /* the server ends the stream when the deployment is final */
}

/* The server said no to the stream: -1 to poll instead, else an exit code. */
static int refused(struct watch *w, const struct cli_stream *st, int rc)
{
    if (st->status == 404 && w->deleting) {
        clear_bar(w);
        snprintf(w->status, sizeof(w->status), "DELETE_COMPLETE");
        return finish(w);
    }
    if (st->status < 400 || st->status == 406 || st->status == 501 || st->status == 503) {
        fprintf(stderr, "orchctl: no event stream (%ld%s%s): polling every %d s\n", st->status,
                st->error[0] ? ": " : "", st->error, POLL_MS / 1000);
        return -1;
    }
    clear_bar(w);
    fprintf(stderr, "orchctl: server answered %ld: %s\n", st->status,
            st->error[0] ? st->error : "(no message)");
    return rc;
}

static int follow(struct watch *w)
{
    struct cli_stream st = {.last_id = ""};
    char path[256];
    int failures = 0, rc;
    bool answered = false; /* the server answered once: a drop is worth waiting out */

    snprintf(path, sizeof(path), "/deployments/%s/events", w->id);
    for (;;) {
        if (w->last_id > 0)
            snprintf(st.last_id, sizeof(st.last_id), "%lld", w->last_id);
        rc = cli_stream(w->srv, path, &st, on_sse, w);
        if (rc == CLI_EXIT_OK && st.sse && final_status(w->status))
            return finish(w);
        if (st.status >= 300 || (st.status != 0 && !st.sse)) {
            rc = refused(w, &st, rc);
            return rc >= 0 ? rc : poll_events(w);
        }
        answered = answered || st.status != 0;
        failures = st.events > 0 ? 0 : failures + 1; /* dropped, or ended early */
        if (!answered || failures >= MAX_FAILURES) {
            clear_bar(w);
            fprintf(stderr, "orchctl: %s %s: %s\n", answered ? "giving up on the event stream of" : "cannot reach",
                    w->srv->url, st.error[0] ? st.error : "it ends without events");
            return CLI_EXIT_SERVER;
        }
        if (failures <= 1) { /* stderr: --json keeps stdout to the events */
            clear_bar(w);
            fprintf(stderr, "orchctl: the event stream %s; resuming after event %lld\n",
                    st.error[0] ? "dropped" : "ended early", w->last_id);
        }
        sleep_ms(st.retry_ms ? st.retry_ms : DEFAULT_RETRY_MS);
    }
}

int cli_watch(const struct cli_server *srv, const char *id, bool deleting)
{
    struct watch w = {.srv = srv, .id = id, .deleting = deleting};
    int rc;

    w.tty = !srv->json && isatty(STDOUT_FILENO);
    w.res = json_object();
    if (w.res == NULL)
        return CLI_EXIT_SERVER;
    rc = follow(&w);
    json_decref(w.res);
    return rc;
}
