/*
 * libcurl multi-socket on libuv (http_client.h): curl tells which sockets to
 * watch (socket callback -> uv_poll) and when to wake it (timer callback ->
 * uv_timer); uv events go back through curl_multi_socket_action, and
 * finished transfers are collected with curl_multi_info_read.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../base.h"
#include "http_client.h"

struct orc_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    unsigned open_handles; /* uv handles not closed yet */
    bool closing;
    void (*closed)(void *ud);
    void *closed_ud;
    struct transfer *transfers; /* in flight */
};

struct transfer {
    struct transfer *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char error[CURL_ERROR_SIZE];
    orc_http_done_fn done;
    void *ud;
};

struct sock {
    uv_poll_t poll; /* first: the handle is the struct */
    struct orc_http *h;
    curl_socket_t fd;
};

static void maybe_closed(struct orc_http *h)
{
    if (h->closing && h->open_handles == 0) {
        curl_multi_cleanup(h->multi);
        if (h->closed)
            h->closed(h->closed_ud);
        orc_free(h);
    }
}

static void timer_closed(uv_handle_t *handle)
{
    struct orc_http *h = handle->data;

    h->open_handles--;
    maybe_closed(h);
}

static void sock_closed(uv_handle_t *handle)
{
    struct sock *s = (struct sock *)handle;
    struct orc_http *h = s->h;

    orc_free(s);
    h->open_handles--;
    maybe_closed(h);
}

static void transfer_unlink(struct orc_http *h, struct transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        h->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void transfer_free(struct transfer *t)
{
    curl_slist_free_all(t->headers);
    curl_easy_cleanup(t->easy);
    orc_free(t->body);
    orc_free(t);
}

/* Finished transfers: report and free them. */
static void collect(struct orc_http *h)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct transfer *t = NULL;
        long status = 0;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_multi_remove_handle(h->multi, m->easy_handle);
        transfer_unlink(h, t);
        if (m->data.result == CURLE_OK)
            t->done(t->ud, 0, status, NULL);
        else
            t->done(t->ud, ORC_EHTTP, status,
                    t->error[0] ? t->error : curl_easy_strerror(m->data.result));
        transfer_free(t);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = (struct sock *)p;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(s->h->multi, s->fd, flags, &running);
    collect(s->h);
}

static void on_timer(uv_timer_t *t)
{
    struct orc_http *h = t->data;
    int running;

    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(h);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *ud)
{
    struct orc_http *h = ud;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *ud, void *sockp)
{
    struct orc_http *h = ud;
    struct sock *s = sockp;
    int events = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(h->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, sock_closed);
        }
        return 0;
    }
    if (s == NULL) {
        s = orc_calloc(1, sizeof(*s));
        if (s == NULL || uv_poll_init_socket(h->loop, &s->poll, fd) < 0) {
            orc_free(s);
            return -1;
        }
        s->h = h;
        s->fd = fd;
        h->open_handles++;
        curl_multi_assign(h->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

int orc_http_new(uv_loop_t *loop, struct orc_http **out)
{
    struct orc_http *h = orc_calloc(1, sizeof(*h));

    *out = NULL;
    if (h == NULL || (h->multi = curl_multi_init()) == NULL) {
        orc_free(h);
        return ORC_ENOMEM;
    }
    h->loop = loop;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    h->open_handles = 1;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *out = h;
    return 0;
}

/* Response bodies are not needed (the status says it all): dropped, not
 * written to stdout as libcurl would by default. */
static size_t discard_body(char *data, size_t size, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return size * n;
}

/* "Authorization: Bearer TOKEN" appended to the transfer's headers. */
static int add_bearer(struct transfer *t, const char *token)
{
    char *line = orc_asprintf("Authorization: Bearer %s", token);
    struct curl_slist *l = line ? curl_slist_append(t->headers, line) : NULL;

    orc_free(line);
    if (l == NULL)
        return ORC_ENOMEM;
    t->headers = l;
    return 0;
}

int orc_http_post(struct orc_http *h, const struct orc_http_post *p, orc_http_done_fn done,
                  void *ud)
{
    struct transfer *t;

    if (h->closing)
        return ORC_ECANCELED;
    t = orc_calloc(1, sizeof(*t));
    if (t == NULL || (t->easy = curl_easy_init()) == NULL ||
        (t->body = orc_strdup(p->body)) == NULL ||
        (t->headers = curl_slist_append(NULL, "Content-Type: application/json")) == NULL ||
        (p->bearer && add_bearer(t, p->bearer) < 0)) {
        if (t)
            transfer_free(t);
        return ORC_ENOMEM;
    }
    t->done = done;
    t->ud = ud;
    curl_easy_setopt(t->easy, CURLOPT_URL, p->url);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard_body);
    if (p->ca_file)
        curl_easy_setopt(t->easy, CURLOPT_CAINFO, p->ca_file);
    if (curl_multi_add_handle(h->multi, t->easy) != CURLM_OK) {
        transfer_free(t);
        return ORC_EHTTP;
    }
    t->next = h->transfers;
    if (t->next)
        t->next->prev = t;
    h->transfers = t;
    return 0;
}

int orc_http_post_json(struct orc_http *h, const char *url, const char *body, long timeout_ms,
                       orc_http_done_fn done, void *ud)
{
    struct orc_http_post p = {.url = url, .body = body, .timeout_ms = timeout_ms};

    return orc_http_post(h, &p, done, ud);
}

void orc_http_close(struct orc_http *h, void (*closed)(void *ud), void *ud)
{
    h->closing = true;
    h->closed = closed;
    h->closed_ud = ud;
    /* abort every transfer: its done runs with ORC_ECANCELED */
    while (h->transfers) {
        struct transfer *t = h->transfers;
        curl_multi_remove_handle(h->multi, t->easy);
        transfer_unlink(h, t);
        t->done(t->ud, ORC_ECANCELED, 0, "shutting down");
        transfer_free(t);
    }
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, timer_closed);
}
