/*
 * Store reads off the loop (docs/engine.md, "The store"): a bounded pool of threads,
 * each with a store handle of its own on the daemon's store (on PostgreSQL, a
 * connection of its own), that run the API's reads of deployments while the loop goes
 * on answering, and hand each result back to the loop.
 *
 * A read sees what is committed: the writes of the loop's open group (commit.h) only
 * once they are durable, which is what an answer must show anyway. Reads wait in a
 * FIFO for a free thread; at most max_waiting wait, the next is refused (ORC_EAGAIN:
 * the API answers 503), so a stalled database fills a bounded queue, not the memory.
 *
 * Threads: the loop thread owns the pool and the read records until it submits one,
 * and again from its done callback; a reader thread owns its store handle, and a
 * read from the moment it takes it to the moment it queues it back (under the pool's
 * mutex). fn runs on a reader thread: it may use its store handle and the read's own
 * memory, nothing of the loop's.
 */
#ifndef ORC_STORE_READERS_H
#define ORC_STORE_READERS_H

#include <stdint.h>

#include <uv.h>

#include "store.h"

typedef struct orc_readers_s orc_readers_t;
typedef struct orc_read_s orc_read_t;

/* On a reader thread: the read itself (0 or an ORC_E* code). */
typedef int (*orc_read_fn)(orc_store_t *s, orc_read_t *r);
/* On the loop thread, once: r->rc and r->errmsg say how it went. */
typedef void (*orc_read_done_fn)(orc_read_t *r);

struct orc_read_s {
    void *data;       /* public: the caller's */
    int rc;           /* fn's result; ORC_ECANCELED when the pool closed before it ran */
    char errmsg[256]; /* the store's message when rc < 0 */
    /* private */
    orc_read_fn fn;
    orc_read_done_fn done;
    orc_read_t *next;
};

struct orc_readers_opts {
    unsigned threads;     /* reader threads, each with its own handle (>= 1) */
    unsigned max_waiting; /* reads that may wait for a thread; 0: 1024 */
};

#define ORC_READERS_DEFAULT_MAX_WAITING 1024

struct orc_readers_stats {
    unsigned threads;
    unsigned running; /* reads a thread runs now */
    unsigned waiting; /* reads queued for a thread */
    uint64_t done;    /* reads finished */
    uint64_t refused; /* submits refused: the queue was full */
};

/* Opens opts->threads handles on target (orc_store_open's) and starts their threads.
 * A store only one handle may open (":memory:") is ORC_EINVAL. err says why it failed. */
int orc_readers_new(uv_loop_t *loop, const char *target, const struct orc_readers_opts *opts,
                    orc_readers_t **out, char *err, size_t errlen);

/* Queues r: fn(handle, r) on a reader thread, then done(r) on the loop, never inside
 * this call. r is caller memory, untouched by the caller until done runs. ORC_EAGAIN:
 * max_waiting reads wait already; ORC_ECANCELED: the pool is closing (done will not
 * run in either case). */
int orc_readers_submit(orc_readers_t *p, orc_read_t *r, orc_read_fn fn, orc_read_done_fn done);

void orc_readers_stats(const orc_readers_t *p, struct orc_readers_stats *out);

/* Closes the pool: the reads still waiting are done with ORC_ECANCELED, those running
 * are interrupted (orc_store_interrupt: a read stuck on a lock ends now) and end, the
 * threads are joined once the loop runs the async handle's close, each done runs, then
 * the handles close and the pool is freed. NULL-safe. */
void orc_readers_close(orc_readers_t *p);

#endif
