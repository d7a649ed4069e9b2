/*
 * The loop-level group committer (commit.h): the store's write hook opens a
 * group at the first write of a loop iteration; uv_prepare and uv_check
 * callbacks commit it and run the waits queued before the commit, in order.
 * Waits live in three FIFO lists of caller memory: those that depend on the
 * open group, those that depend on a commit sent without waiting (PostgreSQL:
 * its answer arrives on the connection's socket, watched through a dup() of
 * it with a poll handle of the committer's own, since the notifications'
 * watch holds the descriptor itself), and those whose outcome is known
 * (w->status) and that run at the next commit point. No allocation after
 * orc_commit_new.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "commit.h"

struct wait_list {
    orc_commit_wait_t *head;
    orc_commit_wait_t *tail;
};

struct orc_commit_s {
    uv_loop_t *loop;
    orc_store_t *store;
    uv_prepare_t prepare; /* commit point before the loop blocks for I/O */
    uv_check_t check;     /* commit point after the I/O callbacks */
    uv_idle_t idle;       /* active while there is work: poll does not block */
    size_t max_group_writes;
    bool disabled;
    bool sync_only;    /* commit by waiting: the store can only (SQLite), or opts.wait */
    bool begin_failed; /* the last group_begin failed (logged once) */
    bool closing;
    bool closed;               /* every handle's close callback ran */
    int handles_open;          /* while closing */
    struct wait_list on_group; /* waits on the open group */
    struct wait_list sent;     /* waits on the commit sent, its answer not taken */
    struct wait_list ready;    /* waits with a known status, to run */
    uint64_t sent_ns;          /* when that commit was sent */
    size_t sent_writes;        /* and the writes of its group */
    /* the watch of the store's socket while a commit is pending */
    uv_poll_t poll;
    int poll_fd;        /* our dup() of the socket; -1: none */
    uint64_t poll_conn; /* the store's connection it belongs to */
    bool poll_closing;  /* closed for a new connection: its close callback not run */
    void (*done)(void *ud);
    void *done_ud;
    struct orc_commit_stats stats;
};

static void run_ready(orc_commit_t *c);
static bool take_answer(orc_commit_t *c, bool block);
static void on_all_closed(orc_commit_t *c);

/* ---- wait lists ------------------------------------------------------------ */

static void list_push(struct wait_list *l, orc_commit_wait_t *w)
{
    w->next = NULL;
    if (l->tail != NULL)
        l->tail->next = w;
    else
        l->head = w;
    l->tail = w;
}

/* Moves every item of src to the end of dst, each with status. */
static void list_move(struct wait_list *dst, struct wait_list *src, int status)
{
    for (orc_commit_wait_t *w = src->head; w != NULL; w = w->next)
        w->status = status;
    if (src->head == NULL)
        return;
    if (dst->tail != NULL)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
}

/* ---- commit points ------------------------------------------------------------ */

static void on_idle(uv_idle_t *h)
{
    (void)h; /* only there so that poll does not block while there is work */
}

static void update_idle(orc_commit_t *c)
{
    bool group = !c->disabled && orc_store_group_active(c->store);
    bool want = !c->closing && (group || c->ready.head != NULL);
    bool active = uv_is_active((uv_handle_t *)&c->idle) != 0;

    if (want && !active)
        (void)uv_idle_start(&c->idle, on_idle);
    else if (!want && active)
        (void)uv_idle_stop(&c->idle);
}

const double orc_commit_bucket_bounds[ORC_COMMIT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                             0.025,  0.05,  0.1,    0.25,  1};
const char *const orc_commit_bucket_labels[ORC_COMMIT_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1"};

/* The figures of one group ended (committed, or lost with rc). */
static void count_group(orc_commit_t *c, size_t writes, uint64_t t0, int rc)
{
    double seconds = (double)(uv_hrtime() - t0) / 1e9;

    c->stats.commit_seconds_total += seconds;
    for (size_t i = 0; i < ORC_COMMIT_BUCKETS; i++)
        if (seconds <= orc_commit_bucket_bounds[i]) {
            c->stats.commit_buckets[i]++;
            break;
        }
    c->stats.groups++;
    c->stats.writes += writes;
    if (writes > c->stats.largest_group)
        c->stats.largest_group = writes;
    if (rc < 0) {
        c->stats.failed_groups++;
        orc_log(ORC_LOG_ERROR, "commit", "group of %zu writes lost: %s", writes,
                orc_store_errmsg(c->store));
    }
}

/* ---- commits sent without waiting ------------------------------------------------ */

static void on_poll_closed(uv_handle_t *h)
{
    orc_commit_t *c = h->data;

    close(c->poll_fd);
    c->poll_fd = -1;
    c->poll_closing = false;
    if (c->closing && --c->handles_open == 0)
        on_all_closed(c);
}

static void close_poll(orc_commit_t *c)
{
    if (c->poll_fd < 0 || c->poll_closing)
        return;
    c->poll_closing = true;
    uv_close((uv_handle_t *)&c->poll, on_poll_closed);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    orc_commit_t *c = h->data;

    (void)events;
    if (take_answer(c, status < 0)) { /* a socket error: the answer is an error now */
        run_ready(c);
        update_idle(c);
    }
}

/* Watches the socket the pending commit's answer comes on; false when it
 * cannot (the caller waits for the answer instead). */
static bool watch_answer(orc_commit_t *c)
{
    int fd = orc_store_commit_fd(c->store);
    uint64_t conn = orc_store_connection_id(c->store);

    if (fd < 0)
        return false;
    if (c->poll_fd >= 0 && c->poll_conn != conn)
        close_poll(c); /* a reconnection: the old socket's watch goes */
    if (c->poll_closing)
        return false;
    if (c->poll_fd < 0) {
        int mine = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (mine < 0)
            return false;
        if (uv_poll_init_socket(c->loop, &c->poll, mine) != 0) {
            close(mine);
            return false;
        }
        c->poll.data = c;
        c->poll_fd = mine;
        c->poll_conn = conn;
    }
    return uv_poll_start(&c->poll, UV_READABLE, on_readable) == 0;
}

/* Takes the answer to the commit sent, if it is in (block: waits for it),
 * and hands its waits their status; true when no commit is pending any more. */
static bool take_answer(orc_commit_t *c, bool block)
{
    int rc;

    if (!orc_store_commit_pending(c->store))
        return true;
    rc = block ? orc_store_commit_wait(c->store) : orc_store_commit_result(c->store);
    if (rc == 1)
        return false;
    if (c->poll_fd >= 0 && !c->poll_closing)
        uv_poll_stop(&c->poll);
    count_group(c, c->sent_writes, c->sent_ns, rc);
    list_move(&c->ready, &c->sent, rc);
    return true;
}

/* Sends the open group's commit without waiting; false when the store
 * cannot (the group is still open then). */
static bool send_group(orc_commit_t *c)
{
    size_t writes = orc_store_group_writes(c->store);
    uint64_t t0 = uv_hrtime();
    int rc = orc_store_group_commit_send(c->store);

    if (rc == ORC_ENOTSUP) {
        c->sync_only = true;
        return false;
    }
    if (rc < 0) { /* rolled back before it could be sent */
        count_group(c, writes, t0, rc);
        list_move(&c->ready, &c->on_group, rc);
        return true;
    }
    c->sent_ns = t0;
    c->sent_writes = writes;
    c->stats.sent_groups++;
    list_move(&c->sent, &c->on_group, 0);
    if (!watch_answer(c))
        take_answer(c, true);
    return true;
}

/* Ends the open group and hands its waits their status, or sends its commit
 * (unless wait: then it is durable on return). The answer to a commit sent
 * before is taken first: its waits come before this group's. */
static int end_group(orc_commit_t *c, bool wait)
{
    size_t writes;
    uint64_t t0;
    int rc;

    take_answer(c, true); /* answered already: the group's BEGIN waited for it */
    if (!wait && !c->sync_only && send_group(c))
        return 0;
    writes = orc_store_group_writes(c->store);
    t0 = uv_hrtime();
    rc = orc_store_group_commit(c->store);
    count_group(c, writes, t0, rc);
    list_move(&c->ready, &c->on_group, rc);
    return rc;
}

/* Runs the waits that are ready now; those queued by their callbacks wait
 * for the next commit point. */
static void run_ready(orc_commit_t *c)
{
    orc_commit_wait_t *w = c->ready.head;

    c->ready.head = c->ready.tail = NULL;
    while (w != NULL) {
        orc_commit_wait_t *next = w->next;
        orc_commit_cb cb = w->cb;

        w->next = NULL;
        w->cb = NULL;
        c->stats.waits++;
        cb(w, w->status); /* may reuse w */
        w = next;
    }
}

static void commit_point(orc_commit_t *c)
{
    if (!c->disabled) {
        take_answer(c, false);
        if (orc_store_group_active(c->store))
            end_group(c, false);
    }
    run_ready(c);
    update_idle(c);
}

static void on_prepare(uv_prepare_t *h)
{
    commit_point(h->data);
}

static void on_check(uv_check_t *h)
{
    commit_point(h->data);
}

/* The store's write hook: opens the group of this iteration, or commits a
 * full one early (between two write calls) and opens the next. */
static void on_write(orc_store_t *s, void *ud)
{
    orc_commit_t *c = ud;

    if (orc_store_group_active(s)) {
        if (orc_store_group_writes(s) < c->max_group_writes)
            return;
        end_group(c, false);
    }
    if (orc_store_group_begin(s) == 0) {
        c->begin_failed = false;
    } else if (!c->begin_failed) {
        /* the writes are durable on return meanwhile; waits run with 0 */
        orc_log(ORC_LOG_WARN, "commit", "cannot open a group, writing one by one: %s",
                orc_store_errmsg(s));
        c->begin_failed = true;
    }
    update_idle(c);
}

/* ---- interface ------------------------------------------------------------------- */

int orc_commit_new(uv_loop_t *loop, orc_store_t *store, const struct orc_commit_opts *opts,
                   orc_commit_t **out)
{
    orc_commit_t *c;

    if (out != NULL)
        *out = NULL;
    if (loop == NULL || store == NULL || out == NULL)
        return ORC_EINVAL;
    if (orc_store_group_active(store))
        return ORC_ECONFLICT;
    c = orc_calloc(1, sizeof(*c));
    if (c == NULL)
        return ORC_ENOMEM;
    c->loop = loop;
    c->store = store;
    c->max_group_writes = opts && opts->max_group_writes ? opts->max_group_writes
                                                         : ORC_COMMIT_DEFAULT_MAX_GROUP_WRITES;
    c->disabled = opts && opts->disabled;
    c->sync_only = opts && opts->wait;
    c->poll_fd = -1;
    /* these cannot fail: they only link the handles into the loop */
    (void)uv_prepare_init(loop, &c->prepare);
    (void)uv_check_init(loop, &c->check);
    (void)uv_idle_init(loop, &c->idle);
    c->prepare.data = c->check.data = c->idle.data = c;
    (void)uv_prepare_start(&c->prepare, on_prepare);
    (void)uv_check_start(&c->check, on_check);
    uv_unref((uv_handle_t *)&c->prepare);
    uv_unref((uv_handle_t *)&c->check);
    if (!c->disabled)
        orc_store_set_write_hook(store, on_write, c);
    *out = c;
    return 0;
}

void orc_commit_after(orc_commit_t *c, orc_commit_wait_t *w, orc_commit_cb cb)
{
    if (c == NULL || w == NULL || cb == NULL) {
        orc_log(ORC_LOG_ERROR, "commit", "orc_commit_after: %s is missing",
                c == NULL   ? "the committer"
                : w == NULL ? "the wait"
                            : "the callback");
        return;
    }
    w->cb = cb;
    w->status = 0;
    if (c->closing) {
        w->status = ORC_ECANCELED;
        list_push(&c->ready, w);
    } else if (!c->disabled && orc_store_group_active(c->store)) {
        list_push(&c->on_group, w);
    } else if (!c->disabled && orc_store_commit_pending(c->store)) {
        list_push(&c->sent, w); /* the writes before it are in the commit sent */
    } else {
        list_push(&c->ready, w); /* every write before this one is durable */
    }
    update_idle(c);
}

int orc_commit_flush(orc_commit_t *c)
{
    int rc = 0;

    if (c == NULL)
        return ORC_EINVAL;
    if (!c->disabled)
        take_answer(c, true); /* waiting always gives an answer */
    if (!c->disabled && orc_store_group_active(c->store))
        rc = end_group(c, true);
    run_ready(c);
    update_idle(c);
    return rc;
}

static void on_all_closed(orc_commit_t *c)
{
    c->closed = true;
    while (c->ready.head != NULL)
        run_ready(c); /* every one ORC_ECANCELED */
    if (c->done != NULL)
        c->done(c->done_ud);
}

static void on_closed(uv_handle_t *h)
{
    orc_commit_t *c = h->data;

    if (--c->handles_open == 0)
        on_all_closed(c);
}

void orc_commit_close(orc_commit_t *c, void (*done)(void *ud), void *ud)
{
    if (c == NULL || c->closing)
        return;
    c->done = done;
    c->done_ud = ud;
    if (!c->disabled)
        orc_store_set_write_hook(c->store, NULL, NULL);
    if (!c->disabled)
        take_answer(c, true);
    if (!c->disabled && orc_store_group_active(c->store))
        end_group(c, true);
    c->closing = true; /* from here on waits are canceled */
    run_ready(c);
    c->handles_open = 3 + (c->poll_fd >= 0);
    close_poll(c); /* (one closing already counts too: its callback sees closing) */
    uv_close((uv_handle_t *)&c->prepare, on_closed);
    uv_close((uv_handle_t *)&c->check, on_closed);
    uv_close((uv_handle_t *)&c->idle, on_closed);
}

void orc_commit_free(orc_commit_t *c)
{
    if (c == NULL)
        return;
    if (!c->closed) {
        orc_log(ORC_LOG_ERROR, "commit", "orc_commit_free before its close completed: not freed");
        return;
    }
    while (c->ready.head != NULL)
        run_ready(c);
    orc_free(c);
}

void orc_commit_stats(const orc_commit_t *c, struct orc_commit_stats *out)
{
    if (out == NULL)
        return;
    if (c == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = c->stats;
}
