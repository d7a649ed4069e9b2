/*
 * Group commit on the daemon's loop: the store writes of one loop iteration
 * share one transaction and one disk sync; what must wait until they are
 * durable waits in orc_commit_after.
 *
 * How: orc_commit_new installs the store's write hook (store.h). The first
 * write of an iteration opens a group (orc_store_group_begin); the committer
 * commits it from a uv_prepare handle (just before the loop blocks for I/O)
 * and from a uv_check handle (just after the I/O callbacks), or early, at the
 * start of the next write call, once it holds max_group_writes writes; then
 * it runs the waits queued before that commit. A wait's callback may write
 * and queue waits again: those belong to the next group, committed at the
 * next prepare or check (never in the same commit, so a chain of waits cannot
 * starve the loop's I/O).
 *
 * What a commit failure means for callers. Every write of the group returned
 * 0 and reads on the handle saw it, but none of it is stored: the database
 * is as it was before the group. In-memory state built on those writes is
 * wrong and must be dropped and re-read from the store (the engine treats it
 * as fatal for its in-memory state); nothing that waited has happened (each
 * wait got rc < 0): no driver was called, no client was answered, so answer
 * with an error (503) or retry from the stored state. A failed group does not
 * stop the committer: the next write opens a new group.
 *
 * Reads on the store see the open group's writes before they are durable.
 * An answer built from a read that must not show what a crash could undo
 * (GET of a status just written) waits in orc_commit_after too.
 *
 * Commits that do not wait: on a store that can (PostgreSQL,
 * orc_store_group_commit_send) the commit point sends the COMMIT and the
 * loop goes on; the group's waits run once its answer came, read from the
 * connection's socket by a poll handle (or at the next commit point, or when
 * the next store call on the handle needed the connection and waited for
 * it). A write made meanwhile belongs to the next group, and waits queued
 * meanwhile run after the pending commit's. orc_commit_flush and
 * orc_commit_close still wait for everything. On SQLite (whose commit is a
 * local fsync) every commit waits. The daemon waits on PostgreSQL too unless
 * store_commit is overlap (opts.wait; docs/store.md says why).
 *
 * Handles: the prepare and check handles are unref'd, and a third one (an
 * idle handle, which keeps the loop from blocking in poll) is active only
 * while a group is open or a wait is queued: the committer never keeps a loop
 * alive on its own, only while it has work, as a pending request would.
 * Everything runs on the loop's thread.
 */
#ifndef ORC_STORE_COMMIT_H
#define ORC_STORE_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "store.h"

typedef struct orc_commit_s orc_commit_t;
typedef struct orc_commit_wait_s orc_commit_wait_t;
typedef void (*orc_commit_cb)(orc_commit_wait_t *w, int status);

struct orc_commit_wait_s {
    void *data;       /* public: the caller's */
    orc_commit_cb cb; /* private from here on */
    orc_commit_wait_t *next;
    int status;
};

struct orc_commit_opts {
    size_t max_group_writes; /* commit early once a group holds this many writes; 0: 10000 */
    bool disabled;           /* no groups: every write is durable on return (compare in benches) */
    bool wait;               /* commit by waiting even where the store could send (config) */
};

#define ORC_COMMIT_DEFAULT_MAX_GROUP_WRITES 10000

/* Makes a committer for store on loop (opts NULL: defaults) and installs the
 * store's write hook; the store must not have another hook, nor an open
 * group (ORC_ECONFLICT), and must outlive the committer. *out is released
 * with orc_commit_close then orc_commit_free. ORC_EINVAL, ORC_ENOMEM. */
int orc_commit_new(uv_loop_t *loop, orc_store_t *store, const struct orc_commit_opts *opts,
                   orc_commit_t **out);

/* cb(w, 0) once every store write made before this call is durable; cb(w,
 * rc < 0) when the commit that should have made them durable failed (they
 * are lost). Never inside this call: from the committer's loop callback after
 * the commit, or on a later loop iteration when no group is open. w is caller
 * memory, untouched by the caller until cb runs. Waits run in the order they
 * were queued. */
void orc_commit_after(orc_commit_t *c, orc_commit_wait_t *w, orc_commit_cb cb);

/* Commits the open group now (if any) and runs the waits that depended on it
 * (and any other queued wait whose writes are durable), inside this call.
 * Returns the commit's result: 0 (also when no group was open) or the
 * failure the waits got. */
int orc_commit_flush(orc_commit_t *c);

/* Flushes, removes the write hook (later writes are durable on return),
 * closes the loop handles; done(ud) (may be NULL) runs once, later, from the
 * loop; then orc_commit_free. Waits queued after close starts get
 * ORC_ECANCELED (from the loop, before done). A second close does nothing. */
void orc_commit_close(orc_commit_t *c, void (*done)(void *ud), void *ud);

/* Frees a closed committer (after done ran). NULL-safe. Waits queued after
 * done get ORC_ECANCELED here. A committer whose handles are still open is
 * not freed (an error is logged): close it first. */
void orc_commit_free(orc_commit_t *c);

#define ORC_COMMIT_BUCKETS 10
/* Upper bounds of the commit-duration buckets, in seconds (0.5 ms to 1 s), and as text. */
extern const double orc_commit_bucket_bounds[ORC_COMMIT_BUCKETS];
extern const char *const orc_commit_bucket_labels[ORC_COMMIT_BUCKETS];

struct orc_commit_stats {
    uint64_t groups;             /* groups ended (committed or failed) */
    uint64_t writes;             /* write calls that joined those groups */
    uint64_t waits;              /* wait callbacks run */
    uint64_t failed_groups;      /* groups whose commit failed */
    uint64_t largest_group;      /* most writes in one group */
    uint64_t sent_groups;        /* of them, committed without waiting (the loop went on) */
    double commit_seconds_total; /* from each commit's start to its answer */
    uint64_t commit_buckets[ORC_COMMIT_BUCKETS]; /* commits by duration (not cumulative) */
};
void orc_commit_stats(const orc_commit_t *c, struct orc_commit_stats *out);

#endif
