/*
 * The watch over the store's notifications (changes.h): a uv_poll on the store's
 * socket, re-armed when a reconnection gives the store a new one, and a timer that
 * also reads what libpq received while the store ran its own queries.
 */
#include "changes.h"

#include "base.h"

#define LOG "store"
#define CHECK_MS 250

struct orc_changes {
    uv_loop_t *loop;
    orc_store_t *store;
    orc_changes_fn fn;
    void *ud;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;            /* the socket watched; -1: none */
    bool polling;      /* poll initialized on fd */
    int open_handles;  /* to close before the free */
    bool closing;
};

static void read_changes(struct orc_changes *c)
{
    if (orc_store_changes_read(c->store, c->fn, c->ud) < 0)
        orc_log(ORC_LOG_DEBUG, LOG, "notifications: %s", orc_store_errmsg(c->store));
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct orc_changes *c = h->data;

    (void)events;
    if (status < 0 || c->closing)
        return; /* the timer re-arms on the store's next socket */
    read_changes(c);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct orc_changes *c = h->data;

    c->polling = false;
    if (--c->open_handles == 0 && c->closing)
        orc_free(c);
}

static void stop_polling(struct orc_changes *c)
{
    if (!c->polling || uv_is_closing((uv_handle_t *)&c->poll))
        return;
    uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

/* Watches the store's current socket (after a reconnection, a new one). */
static void arm(struct orc_changes *c)
{
    int fd = orc_store_changes_fd(c->store);

    if (c->polling && fd == c->fd)
        return;
    if (c->polling) {
        stop_polling(c); /* the new one is armed at a later tick, once this one closed */
        return;
    }
    if (fd < 0 || uv_poll_init_socket(c->loop, &c->poll, fd) != 0)
        return;
    c->poll.data = c;
    c->fd = fd;
    c->polling = true;
    c->open_handles++;
    uv_poll_start(&c->poll, UV_READABLE, on_readable);
}

static void on_tick(uv_timer_t *t)
{
    struct orc_changes *c = t->data;

    if (c->closing)
        return;
    arm(c);
    read_changes(c);
}

int orc_changes_start(uv_loop_t *loop, orc_store_t *store, orc_changes_fn fn, void *ud,
                      struct orc_changes **out)
{
    struct orc_changes *c;
    int rc = orc_store_listen(store);

    *out = NULL;
    if (rc < 0)
        return rc;
    c = orc_calloc(1, sizeof(*c));
    if (c == NULL)
        return ORC_ENOMEM;
    *c = (struct orc_changes){.loop = loop, .store = store, .fn = fn, .ud = ud, .fd = -1};
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    uv_timer_start(&c->timer, on_tick, CHECK_MS, CHECK_MS);
    uv_unref((uv_handle_t *)&c->timer);
    arm(c);
    *out = c;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct orc_changes *c = h->data;

    if (--c->open_handles == 0)
        orc_free(c);
}

void orc_changes_close(struct orc_changes *c)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    stop_polling(c);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
