/*
 * orchctl's client of server-sent event streams (text/event-stream, as the
 * WHATWG HTML standard defines it): one GET with libcurl that sends
 * Last-Event-ID when resuming, a parser of the stream's lines (id, event,
 * data, retry; comments ignored) that hands each event to a callback, and
 * an answer that says whether the server ended the stream, the connection
 * dropped, or the server answered something else than a stream.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cli.h"

#define MAX_LINE (1u << 20)       /* a longer line is a broken stream */
#define MAX_ERROR_BODY (64u << 10) /* of an error answer, for its message */
#define STALL_SECONDS 45L          /* nothing at all for this long (the server beats every 15 s) */

struct parser {
    struct cli_stream *st;
    cli_stream_cb cb;
    void *ud;
    CURL *curl;
    bool checked; /* status and type looked at */
    char *line;   /* bytes of the line being read */
    size_t llen;
    char *data; /* the event's data lines, joined with \n */
    size_t dlen;
    bool has_data;
    char type[64];
    char id[sizeof(((struct cli_stream *)0)->last_id)];
    char *body; /* an answer that is not a stream: its first bytes */
    size_t blen;
    bool broken;
};

static int append(char **buf, size_t *len, const char *p, size_t n)
{
    char *grown = realloc(*buf, *len + n + 1);

    if (grown == NULL)
        return -1;
    memcpy(grown + *len, p, n);
    *len += n;
    grown[*len] = '\0';
    *buf = grown;
    return 0;
}

static void dispatch(struct parser *ps)
{
    struct cli_sse_event ev;

    if (ps->has_data && !ps->st->stopped) {
        ev.id = ps->st->last_id;
        ev.type = ps->type[0] ? ps->type : "message";
        ev.data = ps->data ? ps->data : "";
        ps->st->events++;
        if (ps->cb(&ev, ps->ud))
            ps->st->stopped = true;
    }
    ps->dlen = 0;
    if (ps->data)
        ps->data[0] = '\0';
    ps->has_data = false;
    ps->type[0] = '\0';
}

/* One line without its end of line. */
static void field(struct parser *ps, char *line)
{
    char *value = strchr(line, ':');

    if (line[0] == '\0') {
        dispatch(ps);
        return;
    }
    if (value == line) /* a comment: the heartbeat */
        return;
    if (value != NULL) {
        *value++ = '\0';
        value += *value == ' ';
    } else {
        value = line + strlen(line);
    }
    if (strcmp(line, "data") == 0) {
        if ((ps->has_data && append(&ps->data, &ps->dlen, "\n", 1) < 0) ||
            append(&ps->data, &ps->dlen, value, strlen(value)) < 0)
            ps->broken = true;
        ps->has_data = true;
    } else if (strcmp(line, "event") == 0) {
        snprintf(ps->type, sizeof(ps->type), "%s", value);
    } else if (strcmp(line, "id") == 0 && strlen(value) < sizeof(ps->st->last_id)) {
        snprintf(ps->st->last_id, sizeof(ps->st->last_id), "%s", value);
    } else if (strcmp(line, "retry") == 0 && value[0] && strspn(value, "0123456789") ==
                                                             strlen(value)) {
        ps->st->retry_ms = (unsigned)strtoul(value, NULL, 10);
    }
}

/* Looks at the status and Content-Type before the first byte of the body. */
static void check_answer(struct parser *ps)
{
    char *type = NULL;

    ps->checked = true;
    curl_easy_getinfo(ps->curl, CURLINFO_RESPONSE_CODE, &ps->st->status);
    curl_easy_getinfo(ps->curl, CURLINFO_CONTENT_TYPE, &type);
    ps->st->sse = ps->st->status == 200 && type != NULL &&
                  strncasecmp(type, "text/event-stream", 17) == 0;
}

static size_t on_bytes(char *p, size_t size, size_t n, void *ud)
{
    struct parser *ps = ud;
    size_t bytes = size * n;

    if (!ps->checked)
        check_answer(ps);
    if (!ps->st->sse) { /* keep the start of it for an error message */
        if (ps->blen < MAX_ERROR_BODY && append(&ps->body, &ps->blen, p, bytes) < 0)
            return 0;
        return ps->st->status >= 400 ? bytes : 0; /* a 2xx that is no stream: stop */
    }
    for (size_t i = 0; i < bytes && !ps->st->stopped && !ps->broken; i++) {
        if (p[i] == '\n') {
            if (ps->llen > 0 && ps->line[ps->llen - 1] == '\r')
                ps->line[--ps->llen] = '\0';
            field(ps, ps->line ? ps->line : (char[]){'\0'});
            ps->llen = 0;
            if (ps->line)
                ps->line[0] = '\0';
        } else if (ps->llen >= MAX_LINE || append(&ps->line, &ps->llen, p + i, 1) < 0) {
            ps->broken = true;
        }
    }
    return ps->st->stopped || ps->broken ? 0 : bytes;
}

static CURL *stream_handle(const struct cli_server *srv, const char *path, struct cli_stream *st,
                           struct parser *ps, struct curl_slist **h, char *errbuf)
{
    char url[4096], resume[128];
    CURL *c = curl_easy_init();

    *h = cli_http_headers(srv, "Accept: text/event-stream", false);
    if (st->last_id[0]) {
        snprintf(resume, sizeof(resume), "Last-Event-ID: %s", st->last_id);
        *h = curl_slist_append(*h, resume);
    }
    if (c == NULL)
        return NULL;
    snprintf(url, sizeof(url), "%s%s", srv->url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, ps);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    return c;
}

/* The API's {"message"} of an error answer, else its body's first line. */
static void error_message(const char *body, char *out, size_t size)
{
    json_error_t err;
    json_t *j = body ? json_loads(body, 0, &err) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));

    snprintf(out, size, "%.*s", msg ? (int)strlen(msg) : body ? (int)strcspn(body, "\r\n") : 0,
             msg ? msg : body ? body : "");
    json_decref(j);
}

/* The exit code of a finished transfer. */
static int outcome(struct parser *ps, CURLcode cc, const char *errbuf)
{
    struct cli_stream *st = ps->st;

    if (!ps->checked && st->status == 0 && cc == CURLE_OK)
        check_answer(ps); /* an answer without a body */
    if (st->stopped)
        return CLI_EXIT_OK;
    if (st->status >= 400) {
        error_message(ps->body, st->error, sizeof(st->error));
        return st->status >= 500 ? CLI_EXIT_SERVER : CLI_EXIT_FAIL;
    }
    if (st->status != 0 && !st->sse)
        return CLI_EXIT_FAIL; /* answered, but not with a stream: the caller polls */
    if (cc != CURLE_OK || ps->broken) {
        snprintf(st->error, sizeof(st->error), "%s",
                 ps->broken ? "malformed stream" : errbuf[0] ? errbuf : curl_easy_strerror(cc));
        return CLI_EXIT_SERVER;
    }
    return CLI_EXIT_OK;
}

int cli_stream(const struct cli_server *srv, const char *path, struct cli_stream *st,
               cli_stream_cb cb, void *ud)
{
    struct parser ps = {.st = st, .cb = cb, .ud = ud};
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *h = NULL;
    CURLcode cc = CURLE_FAILED_INIT;
    int rc;

    st->status = 0;
    st->sse = false;
    st->stopped = false;
    st->events = 0;
    st->error[0] = '\0';
    ps.curl = stream_handle(srv, path, st, &ps, &h, errbuf);
    if (ps.curl != NULL)
        cc = curl_easy_perform(ps.curl);
    ps.has_data = false; /* an event the end cut short is dropped (as the standard says) */
    rc = outcome(&ps, cc, errbuf);
    curl_easy_cleanup(ps.curl);
    curl_slist_free_all(h);
    free(ps.line);
    free(ps.data);
    free(ps.body);
    return rc;
}
