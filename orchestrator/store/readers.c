/*
 * The store's reader threads (readers.h): one FIFO of waiting reads, and one of
 * finished reads, both under the pool's mutex; each thread takes the oldest waiting
 * read, runs it on its own store handle, queues it as finished and wakes the loop
 * (uv_async), whose callback runs the done callbacks in the order the reads ended.
 */
#include <stdio.h>
#include <string.h>

#include "readers.h"

struct read_list {
    orc_read_t *head;
    orc_read_t *tail;
};

struct reader {
    orc_readers_t *pool;
    orc_store_t *store;
    uv_thread_t thread;
    bool started;
};

struct orc_readers_s {
    uv_loop_t *loop;
    uv_async_t finished_async; /* a thread finished a read */
    unsigned max_waiting;
    unsigned nreaders;
    struct reader *readers;
    bool closing; /* the loop thread's */
    uint64_t refused;
    /* under mu */
    uv_mutex_t mu;
    uv_cond_t cond;
    struct read_list waiting;
    struct read_list finished;
    unsigned nwaiting;
    unsigned running;
    uint64_t done;
    bool quit;
};

static void list_push(struct read_list *l, orc_read_t *r)
{
    r->next = NULL;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static orc_read_t *list_pop(struct read_list *l)
{
    orc_read_t *r = l->head;

    if (r != NULL) {
        l->head = r->next;
        if (l->head == NULL)
            l->tail = NULL;
        r->next = NULL;
    }
    return r;
}

/* ---- the reader threads ---- */

static void run_read(struct reader *t, orc_read_t *r)
{
    r->errmsg[0] = '\0';
    r->rc = r->fn(t->store, r);
    if (r->rc < 0)
        snprintf(r->errmsg, sizeof(r->errmsg), "%s", orc_store_errmsg(t->store));
}

static void reader_main(void *arg)
{
    struct reader *t = arg;
    orc_readers_t *p = t->pool;

    uv_mutex_lock(&p->mu);
    for (;;) {
        orc_read_t *r;

        while (!p->quit && p->waiting.head == NULL)
            uv_cond_wait(&p->cond, &p->mu);
        if (p->quit)
            break;
        r = list_pop(&p->waiting);
        p->nwaiting--;
        p->running++;
        uv_mutex_unlock(&p->mu);
        run_read(t, r);
        uv_mutex_lock(&p->mu);
        p->running--;
        p->done++;
        list_push(&p->finished, r);
        uv_async_send(&p->finished_async);
    }
    uv_mutex_unlock(&p->mu);
}

/* ---- the loop side ---- */

static void run_done(struct read_list *l)
{
    orc_read_t *r;

    while ((r = list_pop(l)) != NULL)
        r->done(r);
}

static void on_finished(uv_async_t *a)
{
    orc_readers_t *p = a->data;
    struct read_list finished;

    uv_mutex_lock(&p->mu);
    finished = p->finished;
    p->finished = (struct read_list){0};
    uv_mutex_unlock(&p->mu);
    run_done(&finished);
}

static void pool_free(orc_readers_t *p)
{
    for (unsigned i = 0; i < p->nreaders; i++)
        orc_store_close(p->readers[i].store);
    orc_free(p->readers);
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->mu);
    orc_free(p);
}

/* Stops and joins the threads (each ends the read it runs first). */
static void stop_threads(orc_readers_t *p)
{
    uv_mutex_lock(&p->mu);
    p->quit = true;
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nreaders; i++)
        if (p->readers[i].started)
            uv_thread_join(&p->readers[i].thread);
}

static int open_readers(orc_readers_t *p, const char *target, char *err, size_t errlen)
{
    for (unsigned i = 0; i < p->nreaders; i++) {
        struct reader *t = &p->readers[i];
        int rc = orc_store_open(target, &t->store, err, errlen);

        if (rc < 0)
            return rc;
        t->pool = p;
        if (uv_thread_create(&t->thread, reader_main, t) != 0) {
            snprintf(err, errlen, "cannot start a store reader thread");
            return ORC_ENOMEM;
        }
        t->started = true;
    }
    return 0;
}

static void on_async_closed(uv_handle_t *h)
{
    orc_readers_t *p = h->data;
    struct read_list finished;

    stop_threads(p);
    finished = p->finished; /* the threads are gone: no lock needed */
    p->finished = (struct read_list){0};
    run_done(&finished);
    pool_free(p);
}

int orc_readers_new(uv_loop_t *loop, const char *target, const struct orc_readers_opts *opts,
                    orc_readers_t **out, char *err, size_t errlen)
{
    orc_readers_t *p;
    int rc;

    *out = NULL;
    snprintf(err, errlen, "out of memory");
    if (opts == NULL || opts->threads == 0 || target == NULL) {
        snprintf(err, errlen, "store readers: at least one thread and a store");
        return ORC_EINVAL;
    }
    if (strcmp(target, ":memory:") == 0 || strcmp(target, "sqlite::memory:") == 0) {
        snprintf(err, errlen, "store readers: an in-memory store has one handle only");
        return ORC_EINVAL;
    }
    p = orc_calloc(1, sizeof(*p));
    if (p == NULL)
        return ORC_ENOMEM;
    p->loop = loop;
    p->max_waiting = opts->max_waiting ? opts->max_waiting : ORC_READERS_DEFAULT_MAX_WAITING;
    p->nreaders = opts->threads;
    p->readers = orc_calloc(opts->threads, sizeof(*p->readers));
    if (p->readers == NULL || uv_mutex_init(&p->mu) != 0) {
        orc_free(p->readers);
        orc_free(p);
        return ORC_ENOMEM;
    }
    if (uv_cond_init(&p->cond) != 0) {
        uv_mutex_destroy(&p->mu);
        orc_free(p->readers);
        orc_free(p);
        return ORC_ENOMEM;
    }
    if ((rc = uv_async_init(loop, &p->finished_async, on_finished)) != 0) {
        pool_free(p);
        return ORC_ENOMEM;
    }
    p->finished_async.data = p;
    if ((rc = open_readers(p, target, err, errlen)) < 0) {
        p->closing = true;
        uv_close((uv_handle_t *)&p->finished_async, on_async_closed);
        return rc;
    }
    *out = p;
    return 0;
}

int orc_readers_submit(orc_readers_t *p, orc_read_t *r, orc_read_fn fn, orc_read_done_fn done)
{
    int rc = 0;

    if (p->closing)
        return ORC_ECANCELED;
    r->fn = fn;
    r->done = done;
    r->rc = 0;
    r->errmsg[0] = '\0';
    uv_mutex_lock(&p->mu);
    if (p->nwaiting >= p->max_waiting) {
        rc = ORC_EAGAIN;
    } else {
        list_push(&p->waiting, r);
        p->nwaiting++;
        uv_cond_signal(&p->cond);
    }
    uv_mutex_unlock(&p->mu);
    if (rc < 0)
        p->refused++;
    return rc;
}

void orc_readers_stats(const orc_readers_t *p, struct orc_readers_stats *out)
{
    orc_readers_t *m = (orc_readers_t *)p; /* the mutex, not the pool, changes */

    uv_mutex_lock(&m->mu);
    *out = (struct orc_readers_stats){.threads = p->nreaders,
                                      .running = p->running,
                                      .waiting = p->nwaiting,
                                      .done = p->done,
                                      .refused = p->refused};
    uv_mutex_unlock(&m->mu);
}

void orc_readers_close(orc_readers_t *p)
{
    struct read_list waiting;

    if (p == NULL || p->closing)
        return;
    p->closing = true;
    uv_mutex_lock(&p->mu);
    waiting = p->waiting;
    p->waiting = (struct read_list){0};
    p->nwaiting = 0;
    uv_mutex_unlock(&p->mu);
    for (orc_read_t *r = waiting.head; r != NULL; r = r->next) {
        r->rc = ORC_ECANCELED;
        snprintf(r->errmsg, sizeof(r->errmsg), "the daemon is stopping");
    }
    run_done(&waiting);
    for (unsigned i = 0; i < p->nreaders; i++) /* a read that waits (a lock) ends now */
        orc_store_interrupt(p->readers[i].store);
    uv_close((uv_handle_t *)&p->finished_async, on_async_closed);
}
