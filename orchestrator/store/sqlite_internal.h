/*
 * Internals shared by the files of the SQLite backend: the connection struct
 * with its cache of prepared statements (one per statement id, prepared on
 * first use, reset after each use), the statement and migration tables
 * (sqlite_sql.c), the one function that maps SQLite result codes to ORC_E*
 * codes, transactions, and bind/column helpers that check every return code.
 *
 * Files: sqlite.c (connection, migrations, helpers, events, attempts,
 * metadata), sqlite_deployments.c, sqlite_resources.c, sqlite_sql.c.
 */
#ifndef ORC_STORE_SQLITE_INTERNAL_H
#define ORC_STORE_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store_backend.h"

/* Every statement the backend runs; SQL text in sqlite_sql.c. */
enum sq_stmt {
    SQ_BEGIN,      /* BEGIN IMMEDIATE: every write transaction */
    SQ_BEGIN_READ, /* BEGIN DEFERRED: snapshot for count + page */
    SQ_COMMIT,
    SQ_ROLLBACK,
    SQ_SAVEPOINT, /* one batch item */
    SQ_RELEASE,
    SQ_ROLLBACK_TO,
    SQ_W_SAVEPOINT, /* one write call inside a group */
    SQ_W_RELEASE,
    SQ_W_ROLLBACK_TO,
    SQ_DEP_INSERT,
    SQ_TPL_INSERT,
    SQ_DEP_GET,
    SQ_DEP_GET_HEAD,
    SQ_DEP_HEAD,
    SQ_DEP_UPDATE,
    SQ_TPL_UPDATE,
    SQ_DEP_DELETE,
    SQ_DEP_EXISTS,
    SQ_DEP_COUNT,     /* of the deployments not deleted */
    SQ_DEP_COUNT_ALL, /* deleted ones too */
    SQ_DEP_LIST,      /* + orc_dep_sort_t: one statement per sort order */
    SQ_DEP_LIST_LAST = SQ_DEP_LIST + ORC_DEP_SORT__COUNT - 1,
    SQ_DEP_LIST_ALL, /* deleted ones too; + orc_dep_sort_t */
    SQ_DEP_LIST_ALL_LAST = SQ_DEP_LIST_ALL + ORC_DEP_SORT__COUNT - 1,
    SQ_DEP_IN_STATUS,
    SQ_DEP_STATUS_COUNTS,
    SQ_RES_SITE_COUNT,
    SQ_RES_INSERT,
    SQ_RES_GET,
    SQ_RES_HEAD,
    SQ_RES_UPDATE,
    SQ_RES_DELETE,
    SQ_RES_COUNT,
    SQ_RES_LIST_NEWEST,
    SQ_RES_LIST_OLDEST,
    SQ_EVENT_INSERT,
    SQ_EVENT_LIST,
    SQ_ATT_INSERT,
    SQ_ATT_HEAD,
    SQ_ATT_END,
    SQ_ATT_LIST,
    SQ_LEASE_ACQUIRE,
    SQ_LEASE_HOLDER,
    SQ_LEASE_RENEW,
    SQ_LEASE_CANDIDATES,
    SQ_LEASE_TAKE,
    SQ_LEASE_RELEASE,
    SQ_META_SET,
    SQ_META_GET,
    SQ_META_DELETE,
    SQ_META_LIST,
    SQ__COUNT
};

extern const char *const orc__sq_sql[SQ__COUNT];

/* Schema steps: step i (1-based) brings user_version from i-1 to i. Append
 * only; a shipped step is never edited. */
struct orc__sq_migration {
    const char *what;
    const char *sql;
};
extern const struct orc__sq_migration orc__sq_migrations[];
extern const int orc__sq_migration_count;

/* PRAGMA application_id of our files: "ORCH". */
#define ORC_SQ_APPLICATION_ID 0x4F524348

struct sq_store {
    orc_store_t base; /* first: the handle callers hold */
    sqlite3 *db;
    bool memory;
    sqlite3_stmt *stmts[SQ__COUNT];
};

static inline struct sq_store *sq_of(orc_store_t *s)
{
    return (struct sq_store *)s;
}

/* The boundary: maps an SQLite (extended) result code to 0 or an ORC_E* code
 * and, on failure, writes "what: sqlite's message" into the handle's errmsg. */
int orc__sq_err(struct sq_store *q, int src, const char *what);

/* The cached statement for id, prepared on first use. Release it with
 * orc__sq_release (reset + clear bindings) whatever happened. */
int orc__sq_stmt(struct sq_store *q, enum sq_stmt id, sqlite3_stmt **out);
void orc__sq_release(sqlite3_stmt *st);

/* Steps st once: 1 for a row, 0 when done, < 0 on error (mapped). */
int orc__sq_step(struct sq_store *q, sqlite3_stmt *st, const char *what);
/* Runs a statement without bindings to completion ("COMMIT"...). */
int orc__sq_run(struct sq_store *q, enum sq_stmt id, const char *what);

/* Transactions: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK (no-op when SQLite
 * already rolled back). rollback keeps q's error message. */
int orc__sq_commit(struct sq_store *q);
void orc__sq_rollback(struct sq_store *q);

/* Every write slot runs between these two, and they are the one place that
 * knows about groups. Outside a group: BEGIN IMMEDIATE, then COMMIT when
 * rc == 0 (returning its result) or ROLLBACK and rc. Inside a group: SAVEPOINT,
 * then RELEASE, or ROLLBACK TO + RELEASE and rc, so that a failed write leaves
 * the group as it was; if SQLite rolled the whole transaction back, the group
 * is marked broken (orc__store_group_break) and begin refuses later writes. */
int orc__sq_begin(struct sq_store *q);
int orc__sq_end(struct sq_store *q, int rc);
/* The same for a write whose first changing statement is the only one that
 * can fail on its own (no row matched, a constraint: SQLite undoes that
 * statement alone), the rest (its event) only as the disk or memory fails:
 * inside a group it runs without a savepoint, which inside a large group
 * costs more than the write (docs/store.md). A failure once something was
 * changed (changes: sqlite3_total_changes64 at begin) leaves the group
 * half-written, so the group is lost (its commit fails). */
int orc__sq_begin_lite(struct sq_store *q, int64_t *changes);
int orc__sq_end_lite(struct sq_store *q, int rc, int64_t changes);
/* Read slots that need one snapshot for several statements: BEGIN DEFERRED
 * ... COMMIT (ROLLBACK on failure); nothing inside a group, whose transaction
 * is the snapshot (and shows the group's writes). */
int orc__sq_read_begin(struct sq_store *q);
int orc__sq_read_end(struct sq_store *q, int rc);

/* Binding: each helper is a no-op once b->rc holds an error, so a statement's
 * bindings are written in a row and checked once. */
struct sq_bind {
    struct sq_store *q;
    sqlite3_stmt *st;
    int rc; /* first SQLite error, SQLITE_OK while none */
};
void orc__sq_b_text(struct sq_bind *b, int idx, const char *v); /* NULL: SQL NULL */
void orc__sq_b_int(struct sq_bind *b, int idx, int64_t v);
void orc__sq_b_opt_int(struct sq_bind *b, int idx, int64_t v);    /* 0: SQL NULL */
void orc__sq_b_json(struct sq_bind *b, int idx, const json_t *v); /* NULL: SQL NULL */
/* The bindings' outcome: 0 or the mapped error. */
int orc__sq_b_done(struct sq_bind *b, const char *what);
/* Runs a bound compare-and-set "UPDATE ... WHERE version = ? RETURNING
 * version" and releases it: ORC_ECONFLICT ("the KIND UUID changed") when no
 * row matched, else 0 and the new version in *new_version. */
int orc__sq_cas_finish(struct sq_bind *b, const char *what, const char *kind, const char *uuid,
                       int64_t *new_version);

/* Columns: NULL stays NULL; OOM and unparsable JSON are errors. */
int orc__sq_col_text(struct sq_store *q, sqlite3_stmt *st, int col, char **out);
int orc__sq_col_json(struct sq_store *q, sqlite3_stmt *st, int col, json_t **out);
/* Copies a uuid column into a fixed buffer (ORC_EFORMAT if it is not one). */
int orc__sq_col_uuid(struct sq_store *q, sqlite3_stmt *st, int col, char out[ORC_UUID_LEN]);

/* Appends an event inside the caller's transaction. id may be NULL. */
/* The same with the data as JSON text already (data_text; NULL: data). */
int orc__sq_event_insert_text(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                              const char *type, const char *message, const char *data_text,
                              const json_t *data, int64_t *id);
int orc__sq_event_insert(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                         const char *type, const char *message, const json_t *data, int64_t *id);

/* Appends what ev holds (backend_shared.c) and clears ev; an ORC_ENOMEM from
 * building it is the caller's to report. */
int orc__sq_event_write(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                        struct orc__store_event *ev);

/* 0 if the deployment exists, else ORC_ENOTFOUND (or a read error). */
int orc__sq_deployment_exists(struct sq_store *q, const char *uuid);

/* ",S1,S2," of the statuses in a mask (for instr() filters). buf >= 256. */
void orc__sq_status_set(uint32_t mask, char *buf, size_t len);

/* Backend slots defined in sqlite_deployments.c, sqlite_resources.c and
 * sqlite_events.c. */
int orc__sq_deployment_insert(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs, bool batch);
int orc__sq_deployment_get(orc_store_t *s, const char *uuid, bool with_spec,
                           orc_deployment_t **out);
int orc__sq_deployment_list(orc_store_t *s, const orc_dep_query_t *q, orc_deployment_list_t *out);
int orc__sq_deployment_list_in_status(orc_store_t *s, uint32_t statuses,
                                      orc_deployment_list_t *out);
int orc__sq_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT]);
int orc__sq_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version);
int orc__sq_deployment_delete(orc_store_t *s, const char *uuid);
int orc__sq_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n);
int orc__sq_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                         orc_resource_t **out);
int orc__sq_resource_list(orc_store_t *s, const orc_res_query_t *q, orc_resource_list_t *out);
int orc__sq_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version);
int orc__sq_resource_delete(orc_store_t *s, const char *uuid, const char *event_message);
int orc__sq_site_resource_count(orc_store_t *s, const char *site, int64_t *count);
int orc__sq_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms);
int orc__sq_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms, orc_lease_list_t *held);
int orc__sq_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                uint32_t statuses, size_t max, bool with_own,
                                orc_lease_list_t *got);
int orc__sq_lease_release(orc_store_t *s, const char *uuid, const char *owner);
int orc__sq_event_append(orc_store_t *s, orc_event_t *ev);
int orc__sq_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id, size_t limit,
                       orc_event_list_t *out);
int orc__sq_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                          const char *site_name);
int orc__sq_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                        const char *error);
int orc__sq_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out);

#endif
