/*
 * The API's reads of the store off the loop (store/readers.h): a handler fills a
 * read record (fn, which runs on a reader thread with the reader's own store handle
 * and the record's own memory, then finish, which answers on the loop), and
 * orc_api_store_read defers the request until the read is done. Without readers
 * (SQLite by default) fn runs at once on the loop's handle, so one handler serves
 * both. Everything fn reads must be in the record: the request may be gone while it
 * runs (then finish does not run; release does).
 */
#ifndef ORC_API_STORE_READS_H
#define ORC_API_STORE_READS_H

#include "../store/readers.h"
#include "api.h"

struct orc_api_read {
    orc_read_t read;    /* first: the pool's record (rc, errmsg) */
    orc_api_req_t *req; /* NULL once the request is gone */
    void *ctx;          /* the handler's */
    orc_read_fn fn;
    /* on the loop, with read.rc and read.errmsg: answers as a handler does */
    int (*finish)(orc_api_req_t *req, struct orc_api_read *r);
    void (*release)(struct orc_api_read *r); /* frees the record, after finish or instead */
};

/* Runs r->fn off the loop on readers (NULL: now, on store), then r->finish; r is
 * released in every case. Returns as a handler does: 0 (deferred or answered), or an
 * orc_api_req_fail code (503 with Retry-After when every reader is busy and the queue
 * is full). */
int orc_api_store_read(orc_api_req_t *req, orc_readers_t *readers, orc_store_t *store,
                       struct orc_api_read *r);

#endif
