/*
 * libcurl multi-socket on libuv (http_client.h): curl tells which sockets to
 * watch (socket callback -> uv_poll) and when to wake it (timer callback ->
 * uv_timer); uv events go back through curl_multi_socket_action, and
 * finished transfers are collected with curl_multi_info_read. Two kinds of
 * transfer: the core's fire-and-forget POSTs (callbacks, reports: a done
 * function and the status) and the drivers' requests (orc_http_api: any
 * method, the response's body and headers kept in the caller's req).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "../base.h"
#include "http_client.h"

struct orc_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_timer_t later;          /* delivers canceled requests' callbacks */
    unsigned open_handles;     /* uv handles not closed yet */
    bool closing;
    void (*closed)(void *ud);
    void *closed_ud;
    struct transfer *transfers; /* in flight */
    struct transfer *canceled;  /* out of curl, callback not run yet (next) */
};

struct growbuf {
    char *p;
    size_t len, cap;
};

struct transfer {
    struct transfer *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char error[CURL_ERROR_SIZE];
    orc_http_done_fn done; /* a core POST; NULL: a driver's request (req) */
    void *ud;
    orc_http_req_t *req;
    const void *owner;
    char *method;
    char *url;
    struct growbuf rbody, rheaders;
    size_t max_body;
    bool truncated;
    bool public_only; /* connect to public addresses only (callbacks) */
    char refused[96]; /* why a connection was refused by that rule */
};

#define HTTP_MAX_HEADERS ((size_t)64 * 1024)
#define HTTP_DEFAULT_MAX_BODY ((size_t)8 * 1024 * 1024)

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
    orc_free(t->method);
    orc_free(t->url);
    orc_free(t->rbody.p);
    orc_free(t->rheaders.p);
    orc_free(t);
}

/* Appends n bytes (NUL-terminated after them); -1 when out of memory. */
static int growbuf_add(struct growbuf *b, const char *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = orc_realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* A driver's request ends: its results move to req, its callback runs. */
static void finish_req(struct transfer *t, int rc, long code, const char *error)
{
    orc_http_req_t *req = t->req;

    req->core_ = NULL;
    req->code = code;
    req->body = t->rbody.p;
    req->body_len = t->rbody.len;
    req->headers = t->rheaders.p;
    req->truncated = t->truncated;
    t->rbody.p = t->rheaders.p = NULL;
    if (error != NULL)
        snprintf(req->error, sizeof(req->error), "%s %s: %s", t->method, t->url, error);
    req->cb(req, rc);
}

static void finish(struct transfer *t, int rc, long code, const char *error)
{
    if (t->done != NULL)
        t->done(t->ud, rc, code, error);
    else
        finish_req(t, rc, code, error);
}

/* The callbacks of canceled requests, on a later loop iteration. */
static void deliver_canceled(uv_timer_t *timer)
{
    struct orc_http *h = timer->data;

    while (h->canceled != NULL) {
        struct transfer *t = h->canceled;
        h->canceled = t->next;
        finish(t, ORC_ECANCELED, 0, "canceled");
        transfer_free(t);
    }
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
            finish(t, 0, status, NULL);
        else if (m->data.result == CURLE_WRITE_ERROR && t->req != NULL && !t->truncated)
            finish(t, ORC_ENOMEM, status, "out of memory for the response");
        else if (t->refused[0])
            finish(t, ORC_EDENIED, status, t->refused);
        else
            finish(t, ORC_EHTTP, status,
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
    uv_timer_init(loop, &h->later);
    h->later.data = h;
    h->open_handles = 2;
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

/* The options every transfer shares. */
static void easy_common(struct transfer *t, const char *url, long timeout_ms, const char *ca_file)
{
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075700
    /* A transfer given up while its host name still resolves (a callback to a name whose
     * DNS server does not answer) must not join the resolver thread here, on the loop: it
     * would wait out the DNS timeout. The thread is left to finish and free itself. */
    curl_easy_setopt(t->easy, CURLOPT_QUICK_EXIT, 1L);
#endif
    if (ca_file)
        curl_easy_setopt(t->easy, CURLOPT_CAINFO, ca_file);
}

/* What an IPv4 address (host order) is when it is not public unicast; NULL: public. */
static const char *v4_kind(uint32_t a)
{
    if ((a >> 24) == 127)
        return "a loopback address";
    if ((a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8)
        return "a private address";
    if ((a >> 16) == 0xa9fe)
        return "a link-local address";
    if ((a >> 22) == (100u << 2 | 1)) /* 100.64.0.0/10 */
        return "a shared (carrier-grade NAT) address";
    if ((a >> 24) == 0 || a == 0xffffffffu || (a >> 28) >= 0xe)
        return "an address that is not unicast";
    return NULL;
}

const char *orc_addr_private_kind(const struct sockaddr *sa)
{
    static const unsigned char loop6[16] = {[15] = 1}, any6[16] = {0};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
    const unsigned char *b;

    if (sa->sa_family == AF_INET) {
        memcpy(&v4, sa, sizeof(v4));
        return v4_kind(ntohl(v4.sin_addr.s_addr));
    }
    if (sa->sa_family != AF_INET6)
        return "an address that is not IP";
    memcpy(&v6, sa, sizeof(v6));
    b = v6.sin6_addr.s6_addr;
    if (memcmp(b, mapped, 12) == 0) /* ::ffff:a.b.c.d: the IPv4 rules */
        return v4_kind((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15]);
    if (memcmp(b, loop6, 16) == 0)
        return "a loopback address";
    if (memcmp(b, any6, 16) == 0 || b[0] == 0xff)
        return "an address that is not unicast";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "a link-local address";
    if ((b[0] & 0xfe) == 0xfc)
        return "a private (unique local) address";
    return NULL;
}

/* CURLOPT_OPENSOCKETFUNCTION of public-only transfers: the address curl resolved is
 * checked right before the connection, so that a name cannot point elsewhere later. */
static curl_socket_t open_public(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct transfer *t = ud;
    const char *kind = orc_addr_private_kind(&a->addr);

    (void)purpose;
    if (kind != NULL) {
        snprintf(t->refused, sizeof(t->refused), "it resolves to %s, which callbacks may not reach",
                 kind);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static int transfer_add(struct orc_http *h, struct transfer *t)
{
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
    easy_common(t, p->url, p->timeout_ms, p->ca_file);
    if (p->public_only) {
        t->public_only = true;
        curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETFUNCTION, open_public);
        curl_easy_setopt(t->easy, CURLOPT_OPENSOCKETDATA, t);
    }
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard_body);
    return transfer_add(h, t);
}

/* ---- drivers' requests (orc_http_api) ---------------------------------------------- */

static size_t keep_body(char *data, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n, room = t->max_body - t->rbody.len;

    if (len > room) {
        t->truncated = true;
        len = room;
    }
    if (len > 0 && growbuf_add(&t->rbody, data, len) < 0)
        return 0; /* curl ends the transfer: CURLE_WRITE_ERROR */
    return size * n;
}

/* Header lines of the last response only (a 100 Continue or an interim
 * answer comes first: its lines are dropped when the next status line comes). */
static size_t keep_header(char *data, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        t->rheaders.len = 0;
        return len; /* the status line: code says it */
    }
    if (t->rheaders.len + len > HTTP_MAX_HEADERS || (len == 2 && data[0] == '\r'))
        return len;
    if (growbuf_add(&t->rheaders, data, len) < 0)
        return 0;
    return len;
}

static int add_header_lines(struct transfer *t, const char *const *lines)
{
    struct curl_slist *l;

    /* no "Expect: 100-continue" round trip on bodies */
    if ((l = curl_slist_append(t->headers, "Expect:")) == NULL)
        return ORC_ENOMEM;
    t->headers = l;
    for (; lines && *lines; lines++) {
        if (strchr(*lines, '\r') || strchr(*lines, '\n'))
            return ORC_EINVAL; /* no header injection */
        if ((l = curl_slist_append(t->headers, *lines)) == NULL)
            return ORC_ENOMEM;
        t->headers = l;
    }
    return 0;
}

static int request_body(struct transfer *t, const struct orc_http_request *r)
{
    if (strcmp(r->method, "GET") == 0 && r->body == NULL) {
        curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
        return 0;
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(t->easy, CURLOPT_NOBODY, 1L);
        return 0;
    }
    curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, t->method);
    /* libcurl sends a request again by itself when the kept-alive connection it reused
     * turns out closed before any answer byte; the server may have acted on the first
     * one. A request that is not idempotent goes on a new connection, so it is sent once. */
    if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PATCH") == 0)
        curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, 1L);
    if (r->body == NULL && strcmp(r->method, "DELETE") == 0)
        return 0;
    if (r->body_len > 0 && (t->body = orc_malloc(r->body_len)) == NULL)
        return ORC_ENOMEM;
    if (r->body_len > 0)
        memcpy(t->body, r->body, r->body_len);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body ? t->body : "");
    return 0;
}

static int request_setup(struct transfer *t, const struct orc_http_request *r)
{
    int rc;

    if ((t->easy = curl_easy_init()) == NULL || (t->method = orc_strdup(r->method)) == NULL ||
        (t->url = orc_strdup(r->url)) == NULL)
        return ORC_ENOMEM;
    if ((rc = add_header_lines(t, r->headers)) < 0 || (rc = request_body(t, r)) < 0)
        return rc;
    t->max_body = r->max_body ? r->max_body : HTTP_DEFAULT_MAX_BODY;
    easy_common(t, r->url, r->timeout_ms ? (long)r->timeout_ms : 30000L, r->ca_file);
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     r->connect_timeout_ms ? (long)r->connect_timeout_ms : 10000L);
    curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(t->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    if (r->cert_file)
        curl_easy_setopt(t->easy, CURLOPT_SSLCERT, r->cert_file);
    if (r->key_file)
        curl_easy_setopt(t->easy, CURLOPT_SSLKEY, r->key_file);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, keep_header);
    curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    return 0;
}

int orc_http_request(struct orc_http *h, const void *owner, orc_http_req_t *req,
                     const struct orc_http_request *r)
{
    struct transfer *t;
    int rc;

    if (req == NULL || req->cb == NULL || r == NULL || r->method == NULL || *r->method == '\0' ||
        r->url == NULL)
        return ORC_EINVAL;
    if (h->closing)
        return ORC_ECANCELED;
    req->code = 0;
    req->body = req->headers = NULL;
    req->body_len = 0;
    req->truncated = false;
    req->error[0] = '\0';
    if ((t = orc_calloc(1, sizeof(*t))) == NULL)
        return ORC_ENOMEM;
    t->req = req;
    t->owner = owner;
    if ((rc = request_setup(t, r)) < 0) {
        transfer_free(t);
        return rc;
    }
    if ((rc = transfer_add(h, t)) < 0)
        return rc;
    req->core_ = t;
    return 0;
}

int orc_http_cancel(struct orc_http *h, orc_http_req_t *req)
{
    struct transfer *t = req->core_;

    if (t == NULL)
        return ORC_ENOTFOUND;
    for (struct transfer *c = h->canceled; c; c = c->next)
        if (c == t)
            return 0; /* already canceled: its callback is on its way */
    curl_multi_remove_handle(h->multi, t->easy);
    transfer_unlink(h, t);
    t->prev = NULL;
    t->next = h->canceled;
    h->canceled = t;
    uv_timer_start(&h->later, deliver_canceled, 0, 0);
    return 0;
}

/* Drops every transfer of owner from list *head (curl's when in_curl). */
static unsigned drop_owned(struct orc_http *h, struct transfer **head, const void *owner,
                           bool in_curl)
{
    unsigned n = 0;

    for (struct transfer **pp = head; *pp;) {
        struct transfer *t = *pp;
        if (t->done != NULL || t->owner != owner) {
            pp = &t->next;
            continue;
        }
        if (in_curl) {
            curl_multi_remove_handle(h->multi, t->easy);
            transfer_unlink(h, t);
        } else {
            *pp = t->next;
        }
        t->req->core_ = NULL;
        transfer_free(t);
        n++;
    }
    return n;
}

unsigned orc_http_abandon(struct orc_http *h, const void *owner)
{
    return drop_owned(h, &h->transfers, owner, true) + drop_owned(h, &h->canceled, owner, false);
}

const char *orc_http_header(const orc_http_req_t *req, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);

    for (const char *l = req->headers; l && *l;) {
        const char *end = strchr(l, '\n');
        const char *next = end ? end + 1 : l + strlen(l);
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1, *e = end ? end : next;
            size_t len;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (cap == 0)
                return NULL;
            len = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        l = next;
    }
    return NULL;
}

void orc_http_release(orc_http_req_t *req)
{
    orc_free(req->body);
    orc_free(req->headers);
    req->body = req->headers = NULL;
    req->body_len = 0;
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
        finish(t, ORC_ECANCELED, 0, "shutting down");
        transfer_free(t);
    }
    deliver_canceled(&h->later);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, timer_closed);
    uv_close((uv_handle_t *)&h->later, timer_closed);
}
