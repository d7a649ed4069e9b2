/*
 * The SQLite backend's connection: open (parent folders, a 0600 file, WAL,
 * synchronous=FULL, foreign keys, busy timeout), schema migrations versioned
 * by PRAGMA user_version and applied in one transaction, the cache of
 * prepared statements, the single function that maps SQLite result codes to
 * ORC_E* codes, transactions (and, in the same two helpers, the savepoint
 * of each write inside a group), bind and column helpers, and the key/value
 * metadata slots. Record slots live in sqlite_deployments.c,
 * sqlite_resources.c and sqlite_events.c; all SQL text in sqlite_sql.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlite_internal.h"

#define SQ_BUSY_TIMEOUT_MS 5000

/* ---- the error boundary ---------------------------------------------------- */

static int sq_map(int src)
{
    if (src == SQLITE_IOERR_NOMEM)
        return ORC_ENOMEM;
    if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
        return ORC_ENOTFOUND; /* the parent row (deployment) does not exist */
    if (src == SQLITE_CONSTRAINT_CHECK || src == SQLITE_CONSTRAINT_NOTNULL)
        return ORC_EINVAL;
    switch (src & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return ORC_EAGAIN;
    case SQLITE_CONSTRAINT: /* unique, primary key, trigger */
        return ORC_ECONFLICT;
    case SQLITE_NOMEM:
        return ORC_ENOMEM;
    case SQLITE_TOOBIG:
        return ORC_ELIMIT;
    case SQLITE_NOTADB:
        return ORC_EFORMAT;
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
        return ORC_EINVAL;
    case SQLITE_INTERRUPT:
        return ORC_ECANCELED;
    default: /* IOERR, FULL, CANTOPEN, READONLY, CORRUPT, PROTOCOL, PERM, ERROR */
        return ORC_EIO;
    }
}

int orc__sq_err(struct sq_store *q, int src, const char *what)
{
    int rc = sq_map(src);
    const char *msg;

    if (rc == 0)
        return 0;
    msg = q->db && sqlite3_extended_errcode(q->db) == src ? sqlite3_errmsg(q->db)
                                                          : sqlite3_errstr(src);
    return orc__store_failf(&q->base, rc, "%s: %s", what, msg);
}

/* ---- statements ----------------------------------------------------------------- */

int orc__sq_stmt(struct sq_store *q, enum sq_stmt id, sqlite3_stmt **out)
{
    int src;

    *out = q->stmts[id];
    if (*out != NULL)
        return 0;
    src = sqlite3_prepare_v3(q->db, orc__sq_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &q->stmts[id],
                             NULL);
    if (src != SQLITE_OK)
        return orc__sq_err(q, src, "prepare");
    *out = q->stmts[id];
    return 0;
}

void orc__sq_release(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    /* reset repeats the last step's error, which the caller already has */
    (void)sqlite3_reset(st);
    (void)sqlite3_clear_bindings(st);
}

int orc__sq_step(struct sq_store *q, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);

    if (src == SQLITE_ROW)
        return 1;
    if (src == SQLITE_DONE)
        return 0;
    return orc__sq_err(q, src, what);
}

int orc__sq_run(struct sq_store *q, enum sq_stmt id, const char *what)
{
    sqlite3_stmt *st;
    int rc = orc__sq_stmt(q, id, &st);

    if (rc < 0)
        return rc;
    do
        rc = orc__sq_step(q, st, what);
    while (rc == 1);
    orc__sq_release(st);
    return rc;
}

/* ---- transactions ----------------------------------------------------------------- */

void orc__sq_rollback(struct sq_store *q)
{
    char saved[ORC_STORE_ERRMSG_LEN];

    if (sqlite3_get_autocommit(q->db))
        return; /* SQLite already rolled back (I/O error, full disk, ...) */
    memcpy(saved, q->base.errmsg, sizeof(saved));
    if (orc__sq_run(q, SQ_ROLLBACK, "rollback") < 0)
        orc_log(ORC_LOG_ERROR, "store", "%s", q->base.errmsg);
    memcpy(q->base.errmsg, saved, sizeof(saved));
}

int orc__sq_commit(struct sq_store *q)
{
    int rc = orc__sq_run(q, SQ_COMMIT, "commit");

    if (rc < 0)
        orc__sq_rollback(q);
    return rc;
}

/* The group cannot go on (its transaction is gone, or a write could not be
 * undone alone): whatever is left of it is rolled back and later writes of
 * the group fail with rc. */
static int group_lost(struct sq_store *q, int rc)
{
    orc__sq_rollback(q);
    return orc__store_group_break(&q->base, rc);
}

/* Undoes a failed write of a group and keeps its error message. */
static int undo_write(struct sq_store *q, int rc)
{
    char saved[ORC_STORE_ERRMSG_LEN];
    int urc;

    memcpy(saved, q->base.errmsg, sizeof(saved));
    urc = orc__sq_run(q, SQ_W_ROLLBACK_TO, "rollback to savepoint");
    if (urc == 0)
        urc = orc__sq_run(q, SQ_W_RELEASE, "release savepoint");
    if (urc < 0)
        return group_lost(q, urc);
    memcpy(q->base.errmsg, saved, sizeof(saved));
    return rc;
}

int orc__sq_begin(struct sq_store *q)
{
    const struct orc__store_group *g = &q->base.group;
    int rc;

    if (!g->open)
        return orc__sq_run(q, SQ_BEGIN, "begin transaction");
    if (g->failed < 0)
        return orc__store_failf(&q->base, g->failed, "the group of writes was rolled back: %s",
                                g->why);
    rc = orc__sq_run(q, SQ_W_SAVEPOINT, "savepoint");
    if (rc < 0)
        return group_lost(q, rc);
    return 0;
}

int orc__sq_end(struct sq_store *q, int rc)
{
    if (!q->base.group.open) {
        if (rc == 0)
            return orc__sq_commit(q);
        orc__sq_rollback(q);
        return rc;
    }
    if (q->base.group.failed < 0)
        return rc < 0 ? rc : q->base.group.failed;
    if (sqlite3_get_autocommit(q->db)) /* SQLite rolled the whole group back */
        return group_lost(
            q, rc < 0 ? rc : orc__store_failf(&q->base, ORC_EIO, "the group's transaction ended"));
    if (rc < 0)
        return undo_write(q, rc);
    rc = orc__sq_run(q, SQ_W_RELEASE, "release savepoint");
    return rc < 0 ? group_lost(q, rc) : 0;
}

int orc__sq_begin_lite(struct sq_store *q, int64_t *changes)
{
    const struct orc__store_group *g = &q->base.group;

    *changes = sqlite3_total_changes64(q->db);
    if (!g->open)
        return orc__sq_run(q, SQ_BEGIN, "begin transaction");
    if (g->failed < 0)
        return orc__store_failf(&q->base, g->failed, "the group of writes was rolled back: %s",
                                g->why);
    return 0;
}

int orc__sq_end_lite(struct sq_store *q, int rc, int64_t changes)
{
    bool wrote = sqlite3_total_changes64(q->db) != changes;

    if (!q->base.group.open || q->base.group.failed < 0)
        return orc__sq_end(q, rc);
    if (sqlite3_get_autocommit(q->db)) /* SQLite rolled the whole group back */
        return group_lost(
            q, rc < 0 ? rc : orc__store_failf(&q->base, ORC_EIO, "the group's transaction ended"));
    return rc < 0 && wrote ? group_lost(q, rc) : rc;
}

int orc__sq_read_begin(struct sq_store *q)
{
    if (q->base.group.open)
        return 0;
    return orc__sq_run(q, SQ_BEGIN_READ, "begin read");
}

int orc__sq_read_end(struct sq_store *q, int rc)
{
    if (q->base.group.open)
        return rc;
    if (rc == 0)
        return orc__sq_commit(q);
    orc__sq_rollback(q);
    return rc;
}

static int sq_group_begin(orc_store_t *s)
{
    return orc__sq_run(sq_of(s), SQ_BEGIN, "begin group");
}

static int sq_group_commit(orc_store_t *s)
{
    struct sq_store *q = sq_of(s);

    if (s->group.failed < 0) {
        orc__sq_rollback(q);
        return s->group.failed;
    }
    if (sqlite3_get_autocommit(q->db))
        return orc__store_failf(s, ORC_EIO, "the group's transaction ended before its commit");
    return orc__sq_commit(q);
}

/* ---- binding ------------------------------------------------------------------------ */

void orc__sq_b_text(struct sq_bind *b, int idx, const char *v)
{
    if (b->rc != SQLITE_OK)
        return;
    /* STATIC: the caller's strings outlive the statement's use (released
     * with its bindings cleared before the call returns) */
    b->rc = v ? sqlite3_bind_text(b->st, idx, v, -1, SQLITE_STATIC) : sqlite3_bind_null(b->st, idx);
}

void orc__sq_b_int(struct sq_bind *b, int idx, int64_t v)
{
    if (b->rc == SQLITE_OK)
        b->rc = sqlite3_bind_int64(b->st, idx, v);
}

void orc__sq_b_opt_int(struct sq_bind *b, int idx, int64_t v)
{
    if (b->rc != SQLITE_OK)
        return;
    b->rc = v ? sqlite3_bind_int64(b->st, idx, v) : sqlite3_bind_null(b->st, idx);
}

void orc__sq_b_json(struct sq_bind *b, int idx, const json_t *v)
{
    json_malloc_t malloc_fn;
    json_free_t free_fn;
    char *text;

    if (b->rc != SQLITE_OK)
        return;
    if (v == NULL) {
        b->rc = sqlite3_bind_null(b->st, idx);
        return;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL) {
        b->rc = SQLITE_NOMEM;
        return;
    }
    json_get_alloc_funcs(&malloc_fn, &free_fn);
    /* SQLite calls free_fn when done with text, also when binding fails */
    b->rc = sqlite3_bind_text(b->st, idx, text, -1, free_fn);
}

int orc__sq_b_done(struct sq_bind *b, const char *what)
{
    return b->rc == SQLITE_OK ? 0 : orc__sq_err(b->q, b->rc, what);
}

int orc__sq_cas_finish(struct sq_bind *b, const char *what, const char *kind, const char *uuid,
                       int64_t *new_version)
{
    int rc = orc__sq_b_done(b, what);

    if (rc == 0)
        rc = orc__sq_step(b->q, b->st, what);
    if (rc == 0)
        rc = orc__store_failf(&b->q->base, ORC_ECONFLICT, "the %s %s changed", kind, uuid);
    if (rc == 1) {
        *new_version = sqlite3_column_int64(b->st, 0);
        rc = orc__sq_step(b->q, b->st, what); /* run RETURNING to completion */
    }
    orc__sq_release(b->st);
    return rc;
}

/* ---- columns ------------------------------------------------------------------------- */

static int col_bytes(struct sq_store *q, sqlite3_stmt *st, int col, const char **text, int *len)
{
    *text = NULL;
    *len = 0;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    *text = (const char *)sqlite3_column_text(st, col);
    if (*text == NULL)
        return orc__sq_err(q, SQLITE_NOMEM, "read column");
    *len = sqlite3_column_bytes(st, col);
    return 0;
}

int orc__sq_col_text(struct sq_store *q, sqlite3_stmt *st, int col, char **out)
{
    const char *text;
    int len;
    int rc = col_bytes(q, st, col, &text, &len);

    *out = NULL;
    if (rc < 0 || text == NULL)
        return rc;
    *out = orc_strndup(text, (size_t)len);
    return *out ? 0 : orc__store_failf(&q->base, ORC_ENOMEM, "read column: out of memory");
}

int orc__sq_col_json(struct sq_store *q, sqlite3_stmt *st, int col, json_t **out)
{
    json_error_t jerr;
    const char *text;
    int len;
    int rc = col_bytes(q, st, col, &text, &len);

    *out = NULL;
    if (rc < 0 || text == NULL)
        return rc;
    *out = json_loadb(text, (size_t)len, JSON_DECODE_ANY, &jerr);
    if (*out != NULL)
        return 0;
    if (json_error_code(&jerr) == json_error_out_of_memory)
        return orc__store_failf(&q->base, ORC_ENOMEM, "read JSON column: out of memory");
    return orc__store_failf(&q->base, ORC_EFORMAT, "stored JSON (column %s) is malformed: %s",
                            sqlite3_column_name(st, col), jerr.text);
}

int orc__sq_col_uuid(struct sq_store *q, sqlite3_stmt *st, int col, char out[ORC_UUID_LEN])
{
    const char *text;
    int len;
    int rc = col_bytes(q, st, col, &text, &len);

    out[0] = '\0';
    if (rc < 0)
        return rc;
    if (text == NULL || len != ORC_UUID_LEN - 1 || !orc_uuid_valid(text))
        return orc__store_failf(&q->base, ORC_EFORMAT, "stored uuid is malformed");
    memcpy(out, text, ORC_UUID_LEN);
    return 0;
}

void orc__sq_status_set(uint32_t mask, char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int st = 0; st < ORC_DEP__COUNT; st++) {
        if (mask & ORC_DEP_MASK(st))
            used += (size_t)snprintf(buf + used, len - used, "%s%s,", used ? "" : ",",
                                     orc_dep_status_name((orc_dep_status_t)st));
    }
}

int orc__sq_event_insert(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                         const char *type, const char *message, const json_t *data, int64_t *id)
{
    return orc__sq_event_insert_text(q, deployment_uuid, time_ms, type, message, NULL, data, id);
}

int orc__sq_event_write(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                        struct orc__store_event *ev)
{
    int rc = orc__sq_event_insert_text(q, deployment_uuid, time_ms, ev->type, ev->message,
                                       ev->data_text[0] ? ev->data_text : NULL, ev->data, NULL);

    orc__store_event_clear(ev);
    return rc;
}

int orc__sq_event_insert_text(struct sq_store *q, const char *deployment_uuid, int64_t time_ms,
                              const char *type, const char *message, const char *data_text,
                              const json_t *data, int64_t *id)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_EVENT_INSERT, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, deployment_uuid);
    orc__sq_b_int(&b, 2, time_ms ? time_ms : orc_now_ms());
    orc__sq_b_text(&b, 3, type);
    orc__sq_b_text(&b, 4, message ? message : "");
    if (data_text)
        orc__sq_b_text(&b, 5, data_text);
    else
        orc__sq_b_json(&b, 5, data);
    rc = orc__sq_b_done(&b, "insert event");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "insert event");
    if (rc == 0 && id != NULL)
        *id = sqlite3_last_insert_rowid(q->db);
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_deployment_exists(struct sq_store *q, const char *uuid)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_DEP_EXISTS, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "find deployment");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "find deployment");
    if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    orc__sq_release(b.st);
    return rc < 0 ? rc : 0;
}

/* ---- opening: files and pragmas ------------------------------------------------------ */

/* mkdir -p of the folder that holds path (0700: templates carry secrets). */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    size_t len = strlen(path);

    if (len >= sizeof(dir)) {
        snprintf(err, errlen, "store: %s: path too long", path);
        return ORC_ELIMIT;
    }
    memcpy(dir, path, len + 1);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "store: cannot create folder %s: %s", dir, strerror(errno));
            return ORC_EIO;
        }
        *p = '/';
    }
    return 0;
}

/* fsync of the folder that holds path, so that a new entry in it survives a
 * crash (SQLite does the same for the WAL file it creates). */
static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    int fd, rc;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* Creates the database file with mode 0600 unless it exists; a new file and
 * its folder entry are synced before SQLite writes into it. */
static int create_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = 0;

    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0) {
        snprintf(err, errlen, "store: cannot create %s: %s", path, strerror(errno));
        return ORC_EIO;
    }
    if (fsync(fd) < 0 || sync_parent(path) < 0) {
        snprintf(err, errlen, "store: cannot sync %s: %s", path, strerror(errno));
        rc = ORC_EIO;
    }
    close(fd);
    return rc;
}

/* Runs a one-row PRAGMA (or query) and returns its first column as text
 * (copied into buf) and integer. */
static int query_one(struct sq_store *q, const char *sql, char *buf, size_t len, int64_t *num)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    int rc;

    if (src != SQLITE_OK)
        return orc__sq_err(q, src, sql);
    rc = orc__sq_step(q, st, sql);
    if (rc == 1) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (buf)
            snprintf(buf, len, "%s", t ? (const char *)t : "");
        if (num)
            *num = sqlite3_column_int64(st, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = orc__store_failf(&q->base, ORC_EIO, "%s: no result", sql);
    }
    sqlite3_finalize(st);
    return rc;
}

static int exec_sql(struct sq_store *q, const char *sql, const char *what)
{
    int src = sqlite3_exec(q->db, sql, NULL, NULL, NULL);

    return src == SQLITE_OK ? 0 : orc__sq_err(q, src, what);
}

static int configure(struct sq_store *q)
{
    char mode[32];
    int64_t fk = 0;
    int rc;

    sqlite3_extended_result_codes(q->db, 1);
    rc = sqlite3_busy_timeout(q->db, SQ_BUSY_TIMEOUT_MS) == SQLITE_OK ? 0 : ORC_EIO;
    if (rc == 0 && !q->memory)
        rc = query_one(q, "PRAGMA journal_mode = WAL", mode, sizeof(mode), NULL);
    if (rc == 0 && !q->memory && strcmp(mode, "wal") != 0)
        orc_log(ORC_LOG_WARN, "store", "WAL is not available here; journal mode is %s", mode);
    if (rc == 0)
        rc = exec_sql(q,
                      "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
                      " PRAGMA temp_store = MEMORY",
                      "pragmas");
    if (rc == 0)
        rc = query_one(q, "PRAGMA foreign_keys", NULL, 0, &fk);
    if (rc == 0 && fk != 1)
        rc = orc__store_failf(&q->base, ORC_ENOTSUP, "this SQLite has no foreign keys");
    return rc;
}

/* Refuses files that some other program made. */
static int check_ownership(struct sq_store *q)
{
    int64_t app = 0, tables = 0;
    int rc = query_one(q, "PRAGMA application_id", NULL, 0, &app);

    if (rc == 0 && app == 0)
        rc = query_one(q, "SELECT count(*) FROM sqlite_master", NULL, 0, &tables);
    if (rc < 0)
        return rc;
    if (app != ORC_SQ_APPLICATION_ID && (app != 0 || tables != 0))
        return orc__store_failf(&q->base, ORC_EFORMAT,
                                "not an orchestrator database (application_id %lld, %lld "
                                "tables)",
                                (long long)app, (long long)tables);
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------ */

static int check_version(struct sq_store *q, int64_t version)
{
    if (version >= 0 && version <= orc__sq_migration_count)
        return 0;
    if (version < 0)
        return orc__store_failf(&q->base, ORC_EFORMAT, "schema version %lld is not ours",
                                (long long)version);
    return orc__store_failf(&q->base, ORC_ENOTSUP,
                            "database schema version %lld is newer than this orchestrator "
                            "(which knows up to %d): upgrade the orchestrator or open a "
                            "backup",
                            (long long)version, orc__sq_migration_count);
}

/* Applies every pending step inside the caller's transaction. */
static int apply_steps(struct sq_store *q, int from)
{
    char sql[96];
    int rc = 0;

    for (int v = from + 1; v <= orc__sq_migration_count && rc == 0; v++) {
        orc_log(ORC_LOG_INFO, "store", "schema migration %d: %s", v,
                orc__sq_migrations[v - 1].what);
        rc = exec_sql(q, orc__sq_migrations[v - 1].sql, "schema migration");
        q->base.migrations_applied += rc == 0;
    }
    /* PRAGMAs cannot take parameters; these are numbers from the code */
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
             orc__sq_migration_count, ORC_SQ_APPLICATION_ID);
    if (rc == 0)
        rc = exec_sql(q, sql, "schema version");
    return rc;
}

static int migrate(struct sq_store *q)
{
    int64_t version = 0;
    int rc = query_one(q, "PRAGMA user_version", NULL, 0, &version);

    if (rc == 0)
        rc = check_version(q, version);
    if (rc < 0 || version == orc__sq_migration_count)
        goto out;
    rc = orc__sq_begin(q);
    if (rc < 0)
        goto out;
    /* again inside the write lock: another process may have migrated */
    rc = query_one(q, "PRAGMA user_version", NULL, 0, &version);
    if (rc == 0)
        rc = check_version(q, version);
    if (rc == 0 && version < orc__sq_migration_count)
        rc = apply_steps(q, (int)version);
    rc = orc__sq_end(q, rc);
    if (rc < 0)
        q->base.migrations_applied = 0;
out:
    if (rc == 0)
        q->base.schema_version = orc__sq_migration_count;
    return rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void sq_close(orc_store_t *s)
{
    struct sq_store *q = sq_of(s);

    for (int i = 0; i < SQ__COUNT; i++)
        sqlite3_finalize(q->stmts[i]);
    if (q->db != NULL) {
        if (q->base.schema_version > 0)
            (void)sqlite3_exec(q->db, "PRAGMA optimize", NULL, NULL, NULL);
        if (sqlite3_close(q->db) != SQLITE_OK)
            orc_log(ORC_LOG_ERROR, "store", "close: %s", sqlite3_errmsg(q->db));
    }
    orc_free(q);
}

/* No memory statistics: SQLite would count every allocation under a global
 * mutex, a few percent of the engine's time (docs/performance.md). Only
 * possible before SQLite's first initialization; later calls change nothing. */
static void sq_configure_library(void)
{
    static bool done;

    if (!done) {
        done = true;
        (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
}

static int sq_connect(struct sq_store *q, const char *target, char *err, size_t errlen)
{
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int src, rc = 0;

    sq_configure_library();
    if (!q->memory) {
        rc = make_parents(target, err, errlen);
        if (rc == 0)
            rc = create_file(target, err, errlen);
        if (rc < 0)
            return rc;
    }
    src = sqlite3_open_v2(target, &q->db, flags, NULL);
    if (src != SQLITE_OK) {
        rc = q->db ? orc__sq_err(q, src, "open") : ORC_ENOMEM;
        snprintf(err, errlen, "store: %s: %s", target, q->db ? q->base.errmsg : "out of memory");
    }
    return rc;
}

static int sq_open(const char *target, orc_store_t **out, char *err, size_t errlen)
{
    char scratch[16];
    struct sq_store *q;
    int rc;

    if (err == NULL || errlen == 0) {
        err = scratch;
        errlen = sizeof(scratch);
    }
    err[0] = '\0';
    q = orc_calloc(1, sizeof(*q));
    if (q == NULL) {
        snprintf(err, errlen, "store: out of memory");
        return ORC_ENOMEM;
    }
    q->base.ops = &orc__store_sqlite_ops;
    q->memory = strcmp(target, ":memory:") == 0;
    rc = sq_connect(q, target, err, errlen);
    if (rc < 0)
        goto out_close;
    rc = configure(q);
    if (rc == 0)
        rc = check_ownership(q);
    if (rc == 0)
        rc = migrate(q);
    if (rc < 0) {
        snprintf(err, errlen, "store: %s: %s", target, q->base.errmsg);
        goto out_close;
    }
    q->base.errmsg[0] = '\0';
    *out = &q->base;
    return 0;

out_close:
    sq_close(&q->base);
    return rc;
}

/* ---- metadata --------------------------------------------------------------------------- */

static int meta_set_body(struct sq_store *q, const char *key, const char *value)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_META_SET, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, key);
    orc__sq_b_text(&b, 2, value);
    orc__sq_b_int(&b, 3, orc_now_ms());
    rc = orc__sq_b_done(&b, "set meta");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "set meta");
    orc__sq_release(b.st);
    return rc;
}

static int sq_meta_set(orc_store_t *s, const char *key, const char *value)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = meta_set_body(q, key, value);
    return orc__sq_end(q, rc);
}

static int sq_meta_get(orc_store_t *s, const char *key, char **value)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_META_GET, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, key);
    rc = orc__sq_b_done(&b, "get meta");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "get meta");
    if (rc == 1)
        rc = orc__sq_col_text(q, b.st, 0, value);
    else if (rc == 0)
        rc = orc__store_failf(s, ORC_ENOTFOUND, "no meta key '%.64s'", key);
    orc__sq_release(b.st);
    return rc;
}

static int meta_delete_body(struct sq_store *q, const char *key)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_META_DELETE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, key);
    rc = orc__sq_b_done(&b, "delete meta");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "delete meta");
    if (rc == 0 && sqlite3_changes(q->db) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "no meta key '%.64s'", key);
    orc__sq_release(b.st);
    return rc;
}

static int sq_meta_delete(orc_store_t *s, const char *key)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = meta_delete_body(q, key);
    return orc__sq_end(q, rc);
}

static int list_meta(struct sq_store *q, const char *prefix, orc_meta_list_t *out)
{
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_META_LIST, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, prefix);
    rc = orc__sq_b_done(&b, "list meta");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "list meta")) == 1) {
        orc_meta_t *m;
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc < 0) {
            rc = orc__store_failf(&q->base, rc, "list meta: out of memory");
            break;
        }
        m = &out->items[out->count++];
        *m = (orc_meta_t){0};
        rc = orc__sq_col_text(q, b.st, 0, &m->key);
        if (rc == 0)
            rc = orc__sq_col_text(q, b.st, 1, &m->value);
    }
    orc__sq_release(b.st);
    return rc;
}

static int sq_meta_list(orc_store_t *s, const char *prefix, orc_meta_list_t *out)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_read_begin(q);

    if (rc == 0)
        rc = list_meta(q, prefix, out);
    rc = orc__sq_read_end(q, rc);
    if (rc < 0)
        orc_meta_list_clear(out);
    return rc;
}

static void sq_interrupt(orc_store_t *s)
{
    sqlite3_interrupt(sq_of(s)->db); /* thread-safe; a no-op while nothing runs */
}

const struct orc_store_ops orc__store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .deployment_insert = orc__sq_deployment_insert,
    .deployment_get = orc__sq_deployment_get,
    .deployment_list = orc__sq_deployment_list,
    .deployment_list_in_status = orc__sq_deployment_list_in_status,
    .deployment_counts = orc__sq_deployment_counts,
    .deployment_update = orc__sq_deployment_update,
    .deployment_delete = orc__sq_deployment_delete,
    .resources_insert = orc__sq_resources_insert,
    .resource_get = orc__sq_resource_get,
    .resource_list = orc__sq_resource_list,
    .resource_update = orc__sq_resource_update,
    .resource_delete = orc__sq_resource_delete,
    .site_resource_count = orc__sq_site_resource_count,
    .interrupt = sq_interrupt,
    .event_append = orc__sq_event_append,
    .event_list = orc__sq_event_list,
    .attempt_start = orc__sq_attempt_start,
    .attempt_end = orc__sq_attempt_end,
    .attempt_list = orc__sq_attempt_list,
    .lease_acquire = orc__sq_lease_acquire,
    .lease_renew = orc__sq_lease_renew,
    .lease_claim_expired = orc__sq_lease_claim_expired,
    .lease_release = orc__sq_lease_release,
    .meta_set = sq_meta_set,
    .meta_get = sq_meta_get,
    .meta_delete = sq_meta_delete,
    .meta_list = sq_meta_list,
    .group_begin = sq_group_begin,
    .group_commit = sq_group_commit,
};
