/*
 * Internals shared by the files of the PostgreSQL backend (libpq): the
 * connection struct with its cache of prepared statements (keyed by the SQL
 * text's address: each file keeps its statements beside the code that runs
 * them), parameters, the one function that maps SQLSTATEs to ORC_E* codes,
 * transactions (and the savepoint of each write inside a group), and column
 * readers that check what they read.
 *
 * Calls are synchronous, on the thread that holds the handle, like the
 * SQLite backend's: a query is one round trip to the server.
 *
 * Files: pg.c (connection, migrations, helpers, metadata), pg_schema.c (the
 * migrations), pg_deployments.c, pg_resources.c, pg_events.c (events and
 * site attempts).
 */
#ifndef ORC_STORE_PG_INTERNAL_H
#define ORC_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>

#include "store_backend.h"

/* the NOTIFY channel of appended events (payload: the deployment's uuid) */
#define PG_CHANNEL "orc_events"

/* Schema steps: step i (1-based) brings orc_schema.version from i-1 to i. The
 * same steps, in the same order, as the SQLite backend's; append only. */
struct orc__pg_migration {
    const char *what;
    const char *sql;
};
extern const struct orc__pg_migration orc__pg_migrations[];
extern const int orc__pg_migration_count;

#define PG_MAX_STATEMENTS 64

struct pg_store {
    orc_store_t base; /* first: the handle callers hold */
    PGconn *conn;
    const char *prepared[PG_MAX_STATEMENTS]; /* SQL texts prepared as "orc<i>" */
    int nprepared;
    bool in_tx;     /* a transaction of ours is open (BEGIN sent) */
    /* the last write of the open group succeeded and its savepoint is not released yet:
     * the next savepoint releases it in the same round trip (the commit releases all) */
    bool release_pending;
    bool listening; /* LISTEN sent: again after a reconnection */
    /* a COMMIT sent without waiting (pg_group_commit_send): its answer so far */
    bool committing;
    int commit_rc; /* 1: no result yet; then 0 or the failure */
    char commit_why[ORC_STORE_ERRMSG_LEN];
    /* orc_store_interrupt, from another thread: the session's cancel key, made anew
     * after each (re)connection, under cancel_mu */
    pthread_mutex_t cancel_mu;
    PGcancel *cancel;
};

static inline struct pg_store *pg_of(orc_store_t *s)
{
    return (struct pg_store *)s;
}

/* Parameters of one statement, $1..$n: each helper is a no-op once rc holds an
 * error, so a statement's parameters are written in a row and checked once.
 * Strings are the caller's (they must outlive the exec); numbers and JSON
 * texts live here until orc__pg_exec clears them. */
#define PG_MAX_PARAMS 32
struct pg_params {
    int n; /* the highest $i set */
    const char *values[PG_MAX_PARAMS];
    char nums[PG_MAX_PARAMS][24];
    char *owned[PG_MAX_PARAMS]; /* JSON texts */
    char status_set[256];
    int rc;
};
void orc__pg_p_text(struct pg_params *p, int idx, const char *v); /* NULL: SQL NULL */
void orc__pg_p_int(struct pg_params *p, int idx, int64_t v);
void orc__pg_p_opt_int(struct pg_params *p, int idx, int64_t v);    /* 0: SQL NULL */
void orc__pg_p_bool(struct pg_params *p, int idx, bool v);
void orc__pg_p_json(struct pg_params *p, int idx, const json_t *v); /* NULL: SQL NULL */
/* The statuses of a mask as a text[] literal: "{CREATE_COMPLETE,...}". */
void orc__pg_p_status_set(struct pg_params *p, int idx, uint32_t mask);

/* Runs sql (prepared on first use) with p (may be NULL): 0 and the result in
 * *res (caller PQclear()s; res NULL: discarded) when it succeeded, else the
 * mapped error with "what: the server's message" in the handle's errmsg. p is
 * cleared either way. */
int orc__pg_exec(struct pg_store *q, const char *sql, struct pg_params *p, const char *what,
                 PGresult **res);
/* The same, for a statement whose row count matters: *affected (may be NULL). */
int orc__pg_run(struct pg_store *q, const char *sql, struct pg_params *p, const char *what,
                int64_t *affected);
/* A statement without parameters, not prepared (BEGIN, SAVEPOINT, DDL). */
int orc__pg_simple(struct pg_store *q, const char *sql, const char *what);

/* Transactions, with the SQLite backend's contract (sqlite_internal.h):
 * begin/end around every write (its own transaction, or a savepoint of the open
 * group); the lite pair for writes whose failures are found before they change
 * anything, without a savepoint: in PostgreSQL any failed statement aborts the
 * whole transaction, so a lite write that fails in SQL loses its group;
 * read_begin/read_end give several reads one snapshot (REPEATABLE READ). */
int orc__pg_begin(struct pg_store *q);
int orc__pg_end(struct pg_store *q, int rc);
int orc__pg_begin_lite(struct pg_store *q);
int orc__pg_end_lite(struct pg_store *q, int rc);
int orc__pg_read_begin(struct pg_store *q);
int orc__pg_read_end(struct pg_store *q, int rc);
/* ROLLBACK of our open transaction, keeping the handle's error message. */
void orc__pg_rollback(struct pg_store *q);

/* Columns of row 0..n-1: NULL stays NULL; OOM and unparsable JSON are errors. */
int orc__pg_col_text(struct pg_store *q, const PGresult *r, int row, int col, char **out);
int orc__pg_col_json(struct pg_store *q, const PGresult *r, int row, int col, json_t **out);
int orc__pg_col_uuid(struct pg_store *q, const PGresult *r, int row, int col,
                     char out[ORC_UUID_LEN]);
int64_t orc__pg_col_int(const PGresult *r, int row, int col); /* NULL: 0 */
bool orc__pg_col_bool(const PGresult *r, int row, int col);   /* "t" */
bool orc__pg_col_null(const PGresult *r, int row, int col);

/* Appends an event inside the caller's transaction; data_text (JSON text) or
 * data; id may be NULL. */
int orc__pg_event_insert(struct pg_store *q, const char *deployment_uuid, int64_t time_ms,
                         const char *type, const char *message, const char *data_text,
                         const json_t *data, int64_t *id);
/* Appends what ev holds (backend_shared.c) and clears ev. */
int orc__pg_event_write(struct pg_store *q, const char *deployment_uuid, int64_t time_ms,
                        struct orc__store_event *ev);

/* ORC_ENOTFOUND, explained: the deployment uuid is not stored. */
int orc__pg_no_deployment(struct pg_store *q, const char *uuid);
/* The rows of a read of the deployment LEFT JOINed to its children: none at all is
 * ORC_ENOTFOUND (no such deployment); one whose column col is NULL is no child (*rows 0). */
int orc__pg_child_rows(struct pg_store *q, const PGresult *r, int col, const char *uuid,
                       int *rows);

/* Slots defined in pg_deployments.c, pg_resources.c and pg_events.c. */
int orc__pg_deployment_insert(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs, bool batch);
int orc__pg_deployment_get(orc_store_t *s, const char *uuid, bool with_spec,
                           orc_deployment_t **out);
int orc__pg_deployment_list(orc_store_t *s, const orc_dep_query_t *q, orc_deployment_list_t *out);
int orc__pg_deployment_list_in_status(orc_store_t *s, uint32_t statuses,
                                      orc_deployment_list_t *out);
int orc__pg_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT]);
int orc__pg_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version);
int orc__pg_deployment_delete(orc_store_t *s, const char *uuid);
int orc__pg_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n);
int orc__pg_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                         orc_resource_t **out);
int orc__pg_resource_list(orc_store_t *s, const orc_res_query_t *q, orc_resource_list_t *out);
int orc__pg_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version);
int orc__pg_resource_delete(orc_store_t *s, const char *uuid, const char *event_message);
int orc__pg_site_resource_count(orc_store_t *s, const char *site, int64_t *count);
int orc__pg_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms);
int orc__pg_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms, orc_lease_list_t *held);
int orc__pg_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                uint32_t statuses, size_t max, bool with_own, orc_lease_list_t *got);
int orc__pg_lease_release(orc_store_t *s, const char *uuid, const char *owner);
int orc__pg_event_append(orc_store_t *s, orc_event_t *ev);
int orc__pg_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out);
int orc__pg_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                          const char *site_name);
int orc__pg_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                        const char *error);
int orc__pg_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out);

#endif
