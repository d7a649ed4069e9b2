/*
 * Unit tests of the store (orchestrator/store/): every operation of the
 * interface on the SQLite backend, paging and filters, the optimistic version
 * check, one-transaction guarantees (a failing event insert, forced with a
 * trigger made through a second connection, must undo the change it goes
 * with), migrations (no re-migration, newer schema refused, atomic steps),
 * durability across a child that _exit()s without closing, the JSON codec
 * against API.md, bad input, groups (writes invisible to another connection
 * until the commit, failed writes leaving no trace inside a group, a commit
 * that fails because the WAL may not grow, a group lost midway by an
 * interrupt, the write hook), scale-in deletes, the count of the resources at a site, the resource
 * spec and its absence from the JSON, migration of a version-1 database, and a throughput figure
 * for single versus batched inserts (printed, never asserted). Each test runs on a fresh database
 * file in its own temporary folder, removed afterwards.
 *
 * Then the same tests run again on the PostgreSQL backend, against a real server
 * (deploy/testbed/postgres.sh, started here and stopped at the end), each on an emptied
 * database; the few that are about SQLite's files, pragmas and locks are skipped there.
 * The "raw" helpers speak to either database as another process would.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "testutil.h"

#include "testbed_fixture.h"

#include "store/json.h"
#include "store/sqlite_internal.h" /* the connection, to interrupt it; the v1 schema */
#include "store/store.h"

/* ---- fixture: a temporary folder and a store in it ------------------------- */

struct fx {
    char dir[256];  /* the temporary folder */
    char path[320]; /* dir/data/store.db: data/ is made by the store */
    orc_store_t *s;
};

/* The PostgreSQL database of the second run; NULL during the SQLite run. */
static const char *pg_url;

#define SQLITE_ONLY()                                                                              \
    do {                                                                                           \
        if (pg_url != NULL)                                                                        \
            skip();                                                                                \
    } while (0)

static bool is_pg(const char *path)
{
    return strncmp(path, "postgres", 8) == 0;
}

/* Runs SQL on a new connection to the PostgreSQL database; the first
 * column of the first row as an integer (-1: none), or the failure asserted. */
static int64_t pg_raw(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;
    int64_t v = -1;

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "SET client_min_messages = warning")); /* no NOTICEs of DROP ... CASCADE */
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "raw exec: %s\n", PQerrorMessage(c));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL)
        return -1;
    if (test_mkdtemp(f->dir, sizeof(f->dir), "orc-store") < 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/data/store.db", f->dir);
    if (pg_url != NULL) { /* a database as new as the SQLite run's file */
        snprintf(f->path, sizeof(f->path), "%s", pg_url);
        pg_raw(pg_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    }
    if (orc_store_open(f->path, &f->s, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        test_rm_tree(f->dir);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    orc_store_close(f->s);
    test_rm_tree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

static const char TEMPLATE[] = "tosca_definitions_version: tosca_simple_yaml_1_0\n"
                               "topology_template:\n  node_templates: {}\n";

/* A deployment to insert; strings point at literals (the store copies). */
static orc_deployment_t new_dep(const char *issuer, const char *subject, const char *group)
{
    orc_deployment_t d = {0};

    d.created_by.issuer = (char *)issuer;
    d.created_by.subject = (char *)subject;
    d.user_group = (char *)group;
    d.template_text = (char *)TEMPLATE;
    return d;
}

static void insert_dep(orc_store_t *s, orc_deployment_t *d)
{
    int rc = orc_store_deployment_insert(s, d);

    if (rc != 0)
        fprintf(stderr, "insert: %s: %s\n", orc_err_name(rc), orc_store_errmsg(s));
    assert_int_equal(rc, 0);
}

/* A second connection to the same file, as another process would have. */
static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(const char *path, const char *sql)
{
    if (is_pg(path)) {
        pg_raw(path, sql);
        return;
    }
    sqlite3 *db = raw_open(path);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

    if (rc != SQLITE_OK)
        fprintf(stderr, "raw exec: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(rc, SQLITE_OK);
}

static int64_t raw_int(const char *path, const char *sql)
{
    if (is_pg(path))
        return pg_raw(path, sql);
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* From another connection: every insert into table for which the SQL condition
 * on NEW holds fails ("injected failure: name"), as a constraint would. */
static void raw_fail_inserts(const char *path, const char *name, const char *table,
                             const char *when)
{
    char sql[1024];

    if (is_pg(path))
        snprintf(sql, sizeof(sql),
                 "CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                 " IF %s THEN RAISE EXCEPTION 'injected failure: %s'"
                 " USING ERRCODE = 'integrity_constraint_violation'; END IF; RETURN NEW; END $$;"
                 " CREATE TRIGGER %s BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s()",
                 name, when, name, name, table, name);
    else
        snprintf(sql, sizeof(sql),
                 "CREATE TRIGGER %s BEFORE INSERT ON %s WHEN %s"
                 " BEGIN SELECT RAISE(ABORT, 'injected failure: %s'); END",
                 name, table, when, name);
    raw_exec(path, sql);
}

static void raw_drop_trigger(const char *path, const char *name, const char *table)
{
    char sql[256];

    if (is_pg(path))
        snprintf(sql, sizeof(sql), "DROP TRIGGER %s ON %s; DROP FUNCTION %s()", name, table, name);
    else
        snprintf(sql, sizeof(sql), "DROP TRIGGER %s", name);
    raw_exec(path, sql);
}

static size_t count_events(orc_store_t *s, const char *uuid, const char *type)
{
    orc_event_list_t l;
    size_t n = 0;

    assert_int_equal(orc_store_event_list(s, uuid, 0, 0, &l), 0);
    for (size_t i = 0; i < l.count; i++)
        n += type == NULL || strcmp(l.items[i].type, type) == 0;
    orc_event_list_clear(&l);
    return n;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool file_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* ---- opening and migrations ----------------------------------------------------------- */

static void open_creates_folder_file_and_wal(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    orc_store_info_t info;
    struct stat st;
    char wal[400];
    sqlite3 *db;
    sqlite3_stmt *q;
    orc_deployment_t d = new_dep("https://iam.example/", "alice", NULL);

    orc_store_info(f->s, &info);
    assert_string_equal(info.backend, "sqlite");
    assert_int_equal(info.schema_version, 4);
    assert_int_equal(info.migrations_applied, 4);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    insert_dep(f->s, &d);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_true(file_exists(wal));

    db = raw_open(f->path);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_int_equal(raw_int(f->path, "PRAGMA user_version"), 4);
    assert_int_equal(raw_int(f->path, "PRAGMA application_id"), 0x4F524348);
    /* the deployments not deleted have indexes of their own (schema 4) */
    assert_int_equal(raw_int(f->path,
                             "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                             " AND name IN ('deployments_live', 'deployments_live_status')"),
                     2);
}

static void reopen_does_not_migrate_again(void **state)
{
    struct fx *f = *state;
    orc_store_info_t info;
    orc_deployment_t d = new_dep("iss", "bob", NULL);
    orc_deployment_t *got = NULL;
    char err[256];

    insert_dep(f->s, &d);
    orc_store_close(f->s);
    f->s = NULL;
    assert_int_equal(orc_store_open(f->path, &f->s, err, sizeof(err)), 0);
    orc_store_info(f->s, &info);
    assert_int_equal(info.schema_version, 4);
    assert_int_equal(info.migrations_applied, 0);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_string_equal(got->created_by.subject, "bob");
    orc_deployment_free(got);
    orc_store_info(f->s, &info);
    assert_string_equal(info.backend, pg_url ? "postgresql" : "sqlite");
    if (pg_url != NULL)
        return;
    /* "sqlite:" prefix names the same backend */
    orc_store_close(f->s);
    f->s = NULL;
    {
        char target[400];
        snprintf(target, sizeof(target), "sqlite:%s", f->path);
        assert_int_equal(orc_store_open(target, &f->s, err, sizeof(err)), 0);
    }
}

static void newer_schema_is_refused(void **state)
{
    struct fx *f = *state;
    orc_store_t *s = NULL;
    char err[256] = "";

    orc_store_close(f->s);
    f->s = NULL;
    raw_exec(f->path, pg_url ? "UPDATE orc_schema SET version = 7" : "PRAGMA user_version = 7");
    assert_int_equal(orc_store_open(f->path, &s, err, sizeof(err)), ORC_ENOTSUP);
    assert_null(s);
    assert_non_null(strstr(err, "newer"));
    assert_non_null(strstr(err, "version 7"));
    /* untouched: still 7 */
    assert_int_equal(
        raw_int(f->path, pg_url ? "SELECT version FROM orc_schema" : "PRAGMA user_version"), 7);
}

static void foreign_files_are_refused(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    char other[400], junk[400], err[256] = "";
    orc_store_t *s = NULL;
    FILE *fp;

    /* an SQLite file of some other program */
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    raw_exec(other, "CREATE TABLE things (x)");
    assert_int_equal(orc_store_open(other, &s, err, sizeof(err)), ORC_EFORMAT);
    assert_null(s);
    assert_non_null(strstr(err, "not an orchestrator database"));
    /* not a database at all */
    snprintf(junk, sizeof(junk), "%s/junk.db", f->dir);
    fp = fopen(junk, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database file. ", fp);
    fclose(fp);
    assert_int_equal(orc_store_open(junk, &s, err, sizeof(err)), ORC_EFORMAT);
    assert_null(s);
    /* a folder that cannot be made (a file is in the way) */
    snprintf(other, sizeof(other), "%s/junk.db/sub/store.db", f->dir);
    assert_int_equal(orc_store_open(other, &s, err, sizeof(err)), ORC_EIO);
    assert_non_null(strstr(err, "cannot create folder"));
}

static void migration_is_one_transaction(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    char path[400], err[256] = "";
    orc_store_t *s = NULL;

    /* ours, at version 0, but a table of step 1 is in the way: the step
     * fails half-way and must leave nothing behind */
    snprintf(path, sizeof(path), "%s/half.db", f->dir);
    raw_exec(path, "PRAGMA application_id = 1330791240; CREATE TABLE events (x)"); /* "ORCH" */
    assert_int_equal(orc_store_open(path, &s, err, sizeof(err)), ORC_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "events"));
    assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'deployments'"),
                     0);
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 0);
}

static void open_bad_targets(void **state)
{
    orc_store_t *s = (orc_store_t *)state; /* any non-NULL value: must be reset */
    char err[128] = "";

    assert_int_equal(orc_store_open(NULL, &s, err, sizeof(err)), ORC_EINVAL);
    assert_null(s);
    assert_int_equal(orc_store_open("", &s, err, sizeof(err)), ORC_EINVAL);
    assert_int_equal(orc_store_open("sqlite:", &s, err, sizeof(err)), ORC_EINVAL);
    assert_int_equal(orc_store_open(":memory:", NULL, err, sizeof(err)), ORC_EINVAL);
    /* nothing listens there; the password is not repeated */
    assert_int_equal(orc_store_open("postgresql://u:hunter2@127.0.0.1:1/orch", &s, err, sizeof(err)),
                     ORC_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(err, "hunter2"));
    assert_int_equal(orc_store_open(":memory:", &s, NULL, 0), 0);
    {
        orc_deployment_t d = new_dep("i", "s", NULL);
        insert_dep(s, &d);
    }
    orc_store_close(s);
    orc_store_close(NULL);
    assert_string_equal(orc_store_errmsg(NULL), "no store");
}

/* ---- deployments --------------------------------------------------------------------- */

static void deployment_insert_and_get(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("https://iam.example/", "alice", "ml-team");
    orc_deployment_t *got = NULL;
    orc_event_list_t ev;
    int64_t before = orc_now_ms();

    d.callback = "https://portal.example/cb";
    d.parameters = json_pack("{s:i, s:s}", "num_gpus", 2, "image", "pytorch:2");
    d.plan = json_pack("{s:[s]}", "nodes", "vm");
    d.timeout_mins = 60;
    d.max_providers_retry = 3;
    d.keep_last_attempt = true;
    d.task = ORC_TASK_NONE;
    insert_dep(f->s, &d);
    assert_true(orc_uuid_valid(d.uuid));
    assert_int_equal(d.uuid[14], '7'); /* UUIDv7 */
    assert_int_equal(d.status, ORC_DEP_CREATE_IN_PROGRESS);
    assert_int_equal(d.version, 1);
    assert_int_equal(d.provider_timeout_mins, ORC_DEFAULT_PROVIDER_TIMEOUT_MINS);
    assert_true(d.created_ms >= before && d.created_ms == d.updated_ms);

    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_string_equal(got->uuid, d.uuid);
    assert_int_equal(got->status, ORC_DEP_CREATE_IN_PROGRESS);
    assert_null(got->status_reason);
    assert_int_equal(got->task, ORC_TASK_NONE);
    assert_string_equal(got->created_by.issuer, "https://iam.example/");
    assert_string_equal(got->created_by.subject, "alice");
    assert_string_equal(got->user_group, "ml-team");
    assert_string_equal(got->callback, "https://portal.example/cb");
    assert_string_equal(got->template_text, TEMPLATE);
    assert_true(json_equal(got->parameters, d.parameters));
    assert_true(json_equal(got->plan, d.plan));
    assert_null(got->outputs);
    assert_null(got->physical_id);
    assert_int_equal(got->timeout_mins, 60);
    assert_int_equal(got->provider_timeout_mins, 14400);
    assert_int_equal(got->max_providers_retry, 3);
    assert_true(got->keep_last_attempt);
    assert_false(got->deleted);
    assert_int_equal(got->version, 1);
    assert_int_equal(got->created_ms, d.created_ms);
    orc_deployment_free(got);

    /* the first event, written in the same transaction */
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.items[0].type, "deployment.created");
    assert_string_equal(json_string_value(json_object_get(ev.items[0].data, "status")),
                        "CREATE_IN_PROGRESS");
    orc_event_list_clear(&ev);
    json_decref(d.parameters);
    json_decref(d.plan);

    /* no parameters: {} */
    d = new_dep("i", "s", NULL);
    insert_dep(f->s, &d);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_true(json_is_object(got->parameters) && json_object_size(got->parameters) == 0);
    assert_null(got->plan);
    assert_null(got->user_group);
    orc_deployment_free(got);
}

static void deployment_bad_input(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_deployment_t *got = (orc_deployment_t *)state;
    json_t *arr = json_array();

    assert_int_equal(orc_store_deployment_insert(NULL, &d), ORC_EINVAL);
    assert_int_equal(orc_store_deployment_insert(f->s, NULL), ORC_EINVAL);
    d.created_by.issuer = NULL;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "createdBy.issuer"));
    d = new_dep("i", "", NULL);
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    d = new_dep("i", "s", NULL);
    d.template_text = NULL;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "template"));
    d = new_dep("i", "s", NULL);
    d.parameters = arr;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "parameters must be an object"));
    d = new_dep("i", "s", NULL);
    d.task = (orc_task_t)42;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    d = new_dep("i", "s", NULL);
    d.timeout_mins = -1;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EINVAL);
    json_decref(arr);

    assert_int_equal(orc_store_deployment_get(f->s, "not-a-uuid", &got), ORC_EINVAL);
    assert_null(got);
    assert_non_null(strstr(orc_store_errmsg(f->s), "malformed"));
    assert_int_equal(orc_store_deployment_get(f->s, NULL, &got), ORC_EINVAL);
    assert_int_equal(orc_store_deployment_get(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", NULL),
                     ORC_EINVAL);
    assert_int_equal(orc_store_deployment_get(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", &got),
                     ORC_ENOTFOUND);
    assert_non_null(strstr(orc_store_errmsg(f->s), "doesn't exist"));
    assert_int_equal(orc_store_deployment_delete(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"),
                     ORC_ENOTFOUND);
    assert_int_equal(orc_store_deployment_set_status(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b",
                                                     0, ORC_DEP_CREATE_COMPLETE, NULL, NULL),
                     ORC_ENOTFOUND);
    d = new_dep("i", "s", NULL);
    insert_dep(f->s, &d);
    assert_int_equal(
        orc_store_deployment_set_status(f->s, d.uuid, 0, (orc_dep_status_t)99, NULL, NULL),
        ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "out of range"));
    {
        orc_dep_update_t u = {.uuid = d.uuid, .set = 0, .values = &d};
        assert_int_equal(orc_store_deployment_update(f->s, &u, NULL), ORC_EINVAL);
        u.set = ORC_DEP_F_STATUS;
        u.values = NULL;
        assert_int_equal(orc_store_deployment_update(f->s, &u, NULL), ORC_EINVAL);
        assert_int_equal(orc_store_deployment_update(f->s, NULL, NULL), ORC_EINVAL);
    }
    assert_int_equal(orc_store_deployment_list(f->s, NULL, NULL), ORC_EINVAL);
    {
        orc_dep_query_t q = {.sort = (orc_dep_sort_t)17};
        orc_deployment_list_t l;
        assert_int_equal(orc_store_deployment_list(f->s, &q, &l), ORC_EINVAL);
        q.sort = 0;
        q.excluded_statuses = 1u << 30;
        assert_int_equal(orc_store_deployment_list(f->s, &q, &l), ORC_EINVAL);
    }
    /* errors leave the handle usable; a success clears the message */
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_string_equal(orc_store_errmsg(f->s), "");
    orc_deployment_free(got);
}

static void enum_names_and_parsing(void **state)
{
    orc_dep_status_t st;
    orc_res_state_t rs;
    orc_task_t t;
    orc_dep_sort_t sort;
    uint32_t mask = 0;

    (void)state;
    assert_int_equal(orc_dep_status_parse("DELETE_FAILED", &st), 0);
    assert_int_equal(st, ORC_DEP_DELETE_FAILED);
    assert_int_equal(orc_dep_status_parse("delete_failed", &st), ORC_EINVAL);
    assert_int_equal(orc_dep_status_parse("BOGUS", &st), ORC_EINVAL);
    assert_int_equal(orc_dep_status_parse(NULL, &st), ORC_EINVAL);
    assert_string_equal(orc_dep_status_name(ORC_DEP_UPDATE_COMPLETE), "UPDATE_COMPLETE");
    assert_null(orc_dep_status_name(ORC_DEP__COUNT));
    assert_null(orc_dep_status_name((orc_dep_status_t)-1));
    assert_int_equal(orc_res_state_parse("CONFIGURED", &rs), 0);
    assert_int_equal(rs, ORC_RES_CONFIGURED);
    assert_int_equal(orc_res_state_parse("RUNNING", &rs), ORC_EINVAL);
    assert_string_equal(orc_res_state_name(ORC_RES_ERROR), "ERROR");
    assert_int_equal(orc_task_parse("DEPLOYER", &t), 0);
    assert_int_equal(t, ORC_TASK_DEPLOYER);
    assert_int_equal(orc_task_parse("", &t), ORC_EINVAL);

    assert_int_equal(orc_dep_status_mask_parse("CREATE_FAILED,DELETE_COMPLETE", &mask), 0);
    assert_int_equal(mask,
                     ORC_DEP_MASK(ORC_DEP_CREATE_FAILED) | ORC_DEP_MASK(ORC_DEP_DELETE_COMPLETE));
    assert_int_equal(orc_dep_status_mask_parse("", &mask), 0);
    assert_int_equal(mask, 0);
    assert_int_equal(orc_dep_status_mask_parse("CREATE_FAILED,", &mask), ORC_EINVAL);
    assert_int_equal(orc_dep_status_mask_parse("CREATE_FAILED,,UNKNOWN", &mask), ORC_EINVAL);
    assert_int_equal(orc_dep_status_mask_parse("NOPE", &mask), ORC_EINVAL);

    assert_int_equal(orc_dep_sort_parse(NULL, &sort), 0);
    assert_int_equal(sort, ORC_DEP_SORT_NEWEST);
    assert_int_equal(orc_dep_sort_parse("createdAt,desc", &sort), 0);
    assert_int_equal(sort, ORC_DEP_SORT_NEWEST);
    assert_int_equal(orc_dep_sort_parse("creationTime", &sort), 0);
    assert_int_equal(sort, ORC_DEP_SORT_OLDEST);
    assert_int_equal(orc_dep_sort_parse("updateTime,DESC", &sort), 0);
    assert_int_equal(sort, ORC_DEP_SORT_UPDATED_DESC);
    assert_int_equal(orc_dep_sort_parse("status,asc", &sort), 0);
    assert_int_equal(sort, ORC_DEP_SORT_STATUS_ASC);
    assert_int_equal(orc_dep_sort_parse("status,sideways", &sort), ORC_EINVAL);
    assert_int_equal(orc_dep_sort_parse("uuid", &sort), ORC_EINVAL);
}

/* 25 deployments: owners alternate alice/bob, every third in group g1. */
static void insert_many(orc_store_t *s, orc_deployment_t *ds, int n)
{
    for (int i = 0; i < n; i++) {
        ds[i] = new_dep("iss", i % 2 ? "bob" : "alice", i % 3 == 0 ? "g1" : NULL);
        insert_dep(s, &ds[i]);
    }
}

static void deployment_list_paging(void **state)
{
    struct fx *f = *state;
    orc_deployment_t ds[25];
    orc_deployment_list_t l;
    orc_dep_query_t q = {.size = 10};
    int seen = 0;

    insert_many(f->s, ds, 25);
    for (int i = 1; i < 25; i++)
        assert_true(strcmp(ds[i - 1].uuid, ds[i].uuid) < 0); /* strictly increasing */
    for (q.page = 0; q.page < 3; q.page++) {
        assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
        assert_int_equal(l.total, 25);
        assert_int_equal(l.count, q.page < 2 ? 10 : 5);
        for (size_t i = 0; i < l.count; i++, seen++) {
            /* newest first: the reverse of insertion */
            assert_string_equal(l.items[i].uuid, ds[24 - seen].uuid);
            assert_null(l.items[i].template_text); /* lists carry no spec */
            assert_null(l.items[i].parameters);
            assert_non_null(l.items[i].created_by.subject);
        }
        orc_deployment_list_clear(&l);
    }
    assert_int_equal(seen, 25);
    q.page = 3; /* past the end */
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(l.total, 25);
    orc_deployment_list_clear(&l);
    q.page = 4000000000u; /* far past the end: no overflow */
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.count, 0);
    orc_deployment_list_clear(&l);
    /* size 0: all, oldest first on request */
    q = (orc_dep_query_t){.sort = ORC_DEP_SORT_OLDEST};
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.count, 25);
    assert_string_equal(l.items[0].uuid, ds[0].uuid);
    orc_deployment_list_clear(&l);
    assert_int_equal(orc_store_deployment_list(f->s, NULL, &l), 0);
    assert_int_equal(l.count, 25);
    assert_string_equal(l.items[0].uuid, ds[24].uuid);
    orc_deployment_list_clear(&l);
}

static void deployment_list_filters_and_sorts(void **state)
{
    struct fx *f = *state;
    orc_deployment_t ds[25];
    orc_deployment_list_t l;
    orc_dep_query_t q = {0};

    insert_many(f->s, ds, 25);
    q.created_by_issuer = "iss";
    q.created_by_subject = "alice";
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 13);
    for (size_t i = 0; i < l.count; i++)
        assert_string_equal(l.items[i].created_by.subject, "alice");
    orc_deployment_list_clear(&l);
    q.created_by_issuer = "other-issuer";
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 0);
    orc_deployment_list_clear(&l);

    q = (orc_dep_query_t){.user_group = "g1"};
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 9);
    orc_deployment_list_clear(&l);
    q.created_by_subject = "bob"; /* ANDed: i odd and i % 3 == 0 */
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 4);
    orc_deployment_list_clear(&l);

    /* statuses: 5 complete, 3 failed */
    for (int i = 0; i < 8; i++)
        assert_int_equal(orc_store_deployment_set_status(
                             f->s, ds[i].uuid, 1,
                             i < 5 ? ORC_DEP_CREATE_COMPLETE : ORC_DEP_CREATE_FAILED, NULL, NULL),
                         0);
    q = (orc_dep_query_t){.excluded_statuses = ORC_DEP_MASK(ORC_DEP_CREATE_COMPLETE) |
                                               ORC_DEP_MASK(ORC_DEP_CREATE_FAILED)};
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 17);
    for (size_t i = 0; i < l.count; i++)
        assert_int_equal(l.items[i].status, ORC_DEP_CREATE_IN_PROGRESS);
    orc_deployment_list_clear(&l);

    /* sort by status: CREATE_COMPLETE < CREATE_FAILED < CREATE_IN_PROGRESS */
    q = (orc_dep_query_t){.sort = ORC_DEP_SORT_STATUS_ASC, .size = 6};
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.count, 6);
    for (int i = 0; i < 5; i++)
        assert_int_equal(l.items[i].status, ORC_DEP_CREATE_COMPLETE);
    assert_int_equal(l.items[5].status, ORC_DEP_CREATE_FAILED);
    orc_deployment_list_clear(&l);
    /* last updated first: ds[7] was the last status change */
    q = (orc_dep_query_t){.sort = ORC_DEP_SORT_UPDATED_DESC, .size = 1};
    usleep(2000);
    assert_int_equal(
        orc_store_deployment_set_status(f->s, ds[3].uuid, 2, ORC_DEP_UPDATE_COMPLETE, NULL, NULL),
        0);
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_string_equal(l.items[0].uuid, ds[3].uuid);
    orc_deployment_list_clear(&l);

    /* marked deleted: hidden unless asked for */
    assert_int_equal(orc_store_deployment_mark_deleted(f->s, ds[24].uuid, 0), 0);
    q = (orc_dep_query_t){0};
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 24);
    orc_deployment_list_clear(&l);
    q.include_deleted = true;
    assert_int_equal(orc_store_deployment_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 25);
    assert_true(l.items[0].deleted);
    assert_int_equal(l.items[0].status, ORC_DEP_DELETE_COMPLETE);
    orc_deployment_list_clear(&l);
}

static void deployment_update_fields(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_deployment_t v = {0};
    orc_deployment_t *got = NULL;
    orc_event_list_t ev;
    int64_t ver = 0;

    insert_dep(f->s, &d);
    assert_int_equal(orc_store_deployment_set_status(f->s, d.uuid, 1, ORC_DEP_CREATE_FAILED,
                                                     "no site fits", &ver),
                     0);
    assert_int_equal(ver, 2);
    v.outputs = json_pack("{s:s}", "endpoint", "http://10.0.0.5:5000");
    v.physical_id = "infra-1";
    v.cloud_provider_name = "site-a";
    v.cloud_provider_endpoint =
        json_pack("{s:s, s:s}", "cpEndpoint", "https://keystone", "deploymentType", "OPENSTACK");
    v.task = ORC_TASK_DEPLOYER;
    v.status = ORC_DEP_CREATE_COMPLETE;
    {
        orc_dep_update_t u = {.uuid = d.uuid,
                              .expect_version = 2,
                              .set = ORC_DEP_F_STATUS | ORC_DEP_F_STATUS_REASON | ORC_DEP_F_TASK |
                                     ORC_DEP_F_OUTPUTS | ORC_DEP_F_PHYSICAL_ID |
                                     ORC_DEP_F_PROVIDER_NAME | ORC_DEP_F_PROVIDER_ENDPOINT,
                              .values = &v};
        assert_int_equal(orc_store_deployment_update(f->s, &u, &ver), 0);
        assert_int_equal(ver, 3);
    }
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_int_equal(got->status, ORC_DEP_CREATE_COMPLETE);
    assert_null(got->status_reason); /* cleared: set with NULL */
    assert_int_equal(got->task, ORC_TASK_DEPLOYER);
    assert_true(json_equal(got->outputs, v.outputs));
    assert_string_equal(got->physical_id, "infra-1");
    assert_string_equal(got->cloud_provider_name, "site-a");
    assert_true(json_equal(got->cloud_provider_endpoint, v.cloud_provider_endpoint));
    assert_int_equal(got->version, 3);
    assert_true(got->updated_ms >= got->created_ms);
    assert_string_equal(got->template_text, TEMPLATE); /* untouched */
    orc_deployment_free(got);

    /* one event per change, in order */
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_int_equal(ev.count, 3);
    assert_string_equal(ev.items[1].type, "deployment.status");
    assert_string_equal(ev.items[1].message, "status CREATE_FAILED: no site fits");
    assert_string_equal(ev.items[2].message, "status CREATE_COMPLETE");
    assert_int_equal(json_integer_value(json_object_get(ev.items[2].data, "version")), 3);
    assert_true(ev.items[0].id < ev.items[1].id && ev.items[1].id < ev.items[2].id);
    orc_event_list_clear(&ev);

    /* an update without status: "deployment.updated", caller's message */
    {
        orc_deployment_t w = {.callback = "https://new.example/cb"};
        orc_dep_update_t u = {.uuid = d.uuid,
                              .set = ORC_DEP_F_CALLBACK,
                              .values = &w,
                              .event_message = "callback changed"};
        assert_int_equal(orc_store_deployment_update(f->s, &u, &ver), 0);
        assert_int_equal(ver, 4);
    }
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_string_equal(ev.items[3].type, "deployment.updated");
    assert_string_equal(ev.items[3].message, "callback changed");
    orc_event_list_clear(&ev);
    json_decref(v.outputs);
    json_decref(v.cloud_provider_endpoint);
}

static void deployment_version_conflict(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_deployment_t *a = NULL, *b = NULL;
    int64_t ver = 0;

    insert_dep(f->s, &d);
    /* two readers see version 1 */
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &a), 0);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &b), 0);
    assert_int_equal(orc_store_deployment_set_status(f->s, d.uuid, a->version,
                                                     ORC_DEP_CREATE_COMPLETE, NULL, &ver),
                     0);
    assert_int_equal(orc_store_deployment_set_status(f->s, d.uuid, b->version,
                                                     ORC_DEP_DELETE_IN_PROGRESS, NULL, NULL),
                     ORC_ECONFLICT);
    assert_non_null(strstr(orc_store_errmsg(f->s), "version 2, expected 1"));
    orc_deployment_free(a);
    orc_deployment_free(b);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &a), 0);
    assert_int_equal(a->status, ORC_DEP_CREATE_COMPLETE);
    assert_int_equal(a->version, 2);
    orc_deployment_free(a);
    assert_int_equal(count_events(f->s, d.uuid, "deployment.status"), 1);

    /* the API's rule "DELETE only when not already deleting", atomically */
    {
        orc_deployment_t v = {.status = ORC_DEP_DELETE_IN_PROGRESS};
        orc_dep_update_t u = {.uuid = d.uuid,
                              .from_statuses = ORC_DEP_MASK(ORC_DEP_CREATE_COMPLETE) |
                                               ORC_DEP_MASK(ORC_DEP_UPDATE_COMPLETE),
                              .set = ORC_DEP_F_STATUS,
                              .values = &v};
        assert_int_equal(orc_store_deployment_update(f->s, &u, &ver), 0);
        assert_int_equal(ver, 3);
        assert_int_equal(orc_store_deployment_update(f->s, &u, &ver), ORC_ECONFLICT);
        assert_non_null(strstr(orc_store_errmsg(f->s), "is DELETE_IN_PROGRESS"));
    }
    /* no check when expect_version is 0 */
    assert_int_equal(
        orc_store_deployment_set_status(f->s, d.uuid, 0, ORC_DEP_DELETE_FAILED, "timeout", &ver),
        0);
    assert_int_equal(ver, 4);
}

static void deployment_put_spec(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_deployment_t v = {0};
    orc_deployment_t *got = NULL;
    orc_dep_update_t u = {0};

    d.parameters = json_pack("{s:i}", "num_gpus", 1);
    insert_dep(f->s, &d);
    json_decref(d.parameters);
    v.status = ORC_DEP_UPDATE_IN_PROGRESS;
    v.template_text = "tosca_definitions_version: tosca_simple_yaml_1_0\n# v2\n";
    v.parameters = json_pack("{s:i, s:s}", "num_gpus", 4, "image", "x");
    v.plan = json_pack("[i,i]", 1, 2);
    v.timeout_mins = 30;
    v.provider_timeout_mins = 20;
    v.keep_last_attempt = true;
    u.uuid = d.uuid;
    u.expect_version = 1;
    u.set = ORC_DEP_F_STATUS | ORC_DEP_F_TEMPLATE | ORC_DEP_F_PARAMETERS | ORC_DEP_F_PLAN |
            ORC_DEP_F_OPTIONS;
    u.values = &v;
    assert_int_equal(orc_store_deployment_update(f->s, &u, NULL), 0);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_int_equal(got->status, ORC_DEP_UPDATE_IN_PROGRESS);
    assert_string_equal(got->template_text, v.template_text);
    assert_true(json_equal(got->parameters, v.parameters));
    assert_true(json_equal(got->plan, v.plan));
    assert_int_equal(got->timeout_mins, 30);
    assert_int_equal(got->provider_timeout_mins, 20);
    assert_int_equal(got->max_providers_retry, 0);
    assert_true(got->keep_last_attempt);
    assert_int_equal(got->version, 2);
    orc_deployment_free(got);
    /* a PUT without a template is refused before anything is written */
    v.template_text = NULL;
    u.expect_version = 2;
    assert_int_equal(orc_store_deployment_update(f->s, &u, NULL), ORC_EINVAL);
    json_decref(v.parameters);
    json_decref(v.plan);
}

static void deployment_delete_and_mark_deleted(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL), e = new_dep("i", "s", NULL);
    orc_resource_t r = {.node_name = "vm", .node_type = "tosca.nodes.Compute"};
    orc_event_t ev = {.type = "engine.log", .message = "after delete"};
    orc_deployment_t *got = NULL;
    int64_t last_id;

    insert_dep(f->s, &d);
    insert_dep(f->s, &e);
    memcpy(r.deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 1, "site-a"), 0);
    last_id = raw_int(f->path, "SELECT max(id) FROM events");
    assert_int_equal(orc_store_deployment_delete(f->s, d.uuid), 0);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), ORC_ENOTFOUND);
    assert_int_equal(orc_store_deployment_delete(f->s, d.uuid), ORC_ENOTFOUND);
    /* everything below it went with it */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM site_attempts"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployment_templates"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE deployment_uuid <> "
                                      "(SELECT uuid FROM deployments)"),
                     0);

    /* event ids are never reused, even after the newest rows went */
    memcpy(ev.deployment_uuid, e.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_event_append(f->s, &ev), 0);
    assert_true(ev.id > last_id);

    assert_int_equal(orc_store_deployment_mark_deleted(f->s, e.uuid, 2), ORC_ECONFLICT);
    assert_int_equal(orc_store_deployment_mark_deleted(f->s, e.uuid, 1), 0);
    assert_int_equal(orc_store_deployment_get(f->s, e.uuid, &got), 0);
    assert_true(got->deleted);
    assert_int_equal(got->status, ORC_DEP_DELETE_COMPLETE);
    assert_int_equal(got->version, 2);
    orc_deployment_free(got);
    assert_int_equal(count_events(f->s, e.uuid, "deployment.deleted"), 1);
}

static void deployment_recovery_list(void **state)
{
    struct fx *f = *state;
    orc_deployment_t ds[6];
    orc_deployment_list_t l;
    static const orc_dep_status_t sts[6] = {ORC_DEP_CREATE_IN_PROGRESS, ORC_DEP_CREATE_COMPLETE,
                                            ORC_DEP_UPDATE_IN_PROGRESS, ORC_DEP_DELETE_IN_PROGRESS,
                                            ORC_DEP_DELETE_FAILED,      ORC_DEP_DELETE_IN_PROGRESS};

    for (int i = 0; i < 6; i++) {
        ds[i] = new_dep("i", "s", NULL);
        insert_dep(f->s, &ds[i]);
        if (sts[i] != ORC_DEP_CREATE_IN_PROGRESS)
            assert_int_equal(
                orc_store_deployment_set_status(f->s, ds[i].uuid, 1, sts[i], NULL, NULL), 0);
    }
    assert_int_equal(orc_store_deployment_mark_deleted(f->s, ds[5].uuid, 0), 0);
    assert_int_equal(orc_store_deployment_list_in_status(f->s, ORC_DEP_MASK_IN_PROGRESS, &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].uuid, ds[0].uuid); /* oldest first */
    assert_string_equal(l.items[1].uuid, ds[2].uuid);
    assert_string_equal(l.items[2].uuid, ds[3].uuid);
    orc_deployment_list_clear(&l);
    assert_int_equal(orc_store_deployment_list_in_status(f->s, 0, &l), 0);
    assert_int_equal(l.count, 0);
    orc_deployment_list_clear(&l);
    assert_int_equal(orc_store_deployment_list_in_status(f->s, 1u << 31, &l), ORC_EINVAL);
}

/* ---- one transaction per change --------------------------------------------------------- */

static void failed_event_rolls_back_status(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_deployment_t *got = NULL;

    insert_dep(f->s, &d);
    /* another connection makes every status event fail */
    raw_fail_inserts(f->path, "fail_status", "events", "NEW.type = 'deployment.status'");
    assert_int_equal(
        orc_store_deployment_set_status(f->s, d.uuid, 1, ORC_DEP_CREATE_COMPLETE, "done", NULL),
        ORC_ECONFLICT);
    assert_non_null(strstr(orc_store_errmsg(f->s), "injected failure"));
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_int_equal(got->status, ORC_DEP_CREATE_IN_PROGRESS);
    assert_null(got->status_reason);
    assert_int_equal(got->version, 1);
    orc_deployment_free(got);
    assert_int_equal(count_events(f->s, d.uuid, NULL), 1);
    /* the handle still works and the same change then goes through */
    raw_drop_trigger(f->path, "fail_status", "events");
    assert_int_equal(
        orc_store_deployment_set_status(f->s, d.uuid, 1, ORC_DEP_CREATE_COMPLETE, "done", NULL), 0);
    assert_int_equal(count_events(f->s, d.uuid, "deployment.status"), 1);
}

static void failed_event_rolls_back_insert(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);

    raw_fail_inserts(f->path, "fail_created", "events", "NEW.type = 'deployment.created'");
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_ECONFLICT);
    assert_string_equal(d.uuid, "");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployment_templates"), 0);
}

static void failed_event_rolls_back_resource_state(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_resource_t r = {.node_name = "vm", .node_type = "tosca.nodes.Compute"};
    orc_resource_t *got = NULL;

    insert_dep(f->s, &d);
    memcpy(r.deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    raw_fail_inserts(f->path, "fail_state", "events", "NEW.type = 'resource.state'");
    assert_int_equal(orc_store_resource_set_state(f->s, r.uuid, 1, ORC_RES_CREATING, NULL),
                     ORC_ECONFLICT);
    assert_int_equal(orc_store_resource_get(f->s, NULL, r.uuid, &got), 0);
    assert_int_equal(got->state, ORC_RES_INITIAL);
    assert_int_equal(got->version, 1);
    orc_resource_free(got);
    /* attempts too: the start is undone with its event */
    raw_fail_inserts(f->path, "fail_attempt", "events", "NEW.type = 'attempt.started'");
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 1, "site-a"), ORC_ECONFLICT);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM site_attempts"), 0);
}

static void batch_insert_items_fail_alone(void **state)
{
    struct fx *f = *state;
    enum { N = 50 };
    orc_deployment_t ds[N];
    int rcs[N];

    raw_fail_inserts(f->path, "fail_cb", "deployments", "NEW.callback = 'http://fail.example/'");
    for (int i = 0; i < N; i++)
        ds[i] = new_dep("iss", "carol", NULL);
    ds[7].template_text = NULL;                       /* invalid: never reaches SQL */
    ds[20].created_by.subject = NULL;                 /* invalid */
    ds[33].callback = (char *)"http://fail.example/"; /* fails inside its savepoint */
    assert_int_equal(orc_store_insert_deployments_batch(f->s, ds, N, rcs), 0);
    for (int i = 0; i < N; i++) {
        orc_deployment_t *got = NULL;
        if (i == 7 || i == 20) {
            assert_int_equal(rcs[i], ORC_EINVAL);
            assert_string_equal(ds[i].uuid, "");
        } else if (i == 33) {
            assert_int_equal(rcs[i], ORC_ECONFLICT);
            assert_string_equal(ds[i].uuid, "");
        } else {
            assert_int_equal(rcs[i], 0);
            assert_int_equal(orc_store_deployment_get(f->s, ds[i].uuid, &got), 0);
            assert_int_equal(got->version, 1);
            orc_deployment_free(got);
        }
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), N - 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployment_templates"), N - 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), N - 3);
    assert_int_equal(orc_store_insert_deployments_batch(f->s, NULL, 1, rcs), ORC_EINVAL);
    assert_int_equal(orc_store_insert_deployments_batch(f->s, ds, 0, rcs), 0);
}

static void busy_database_is_eagain(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    sqlite3 *other = raw_open(f->path);

    /* another process holds the write lock past our busy timeout (5 s) */
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(orc_store_deployment_insert(f->s, &d), ORC_EAGAIN);
    assert_non_null(strstr(orc_store_errmsg(f->s), "locked"));
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    insert_dep(f->s, &d);
}

/* ---- durability ------------------------------------------------------------------------------ */

static void durable_without_close(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN] = "";
    orc_deployment_t *got = NULL;
    char err[256];
    int fds[2], status = 0;
    pid_t pid;

    /* no SQLite connection may cross fork(): the parent closes its own */
    orc_store_close(f->s);
    f->s = NULL;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        orc_store_t *s = NULL;
        orc_deployment_t d = new_dep("iss", "durable", NULL);
        close(fds[0]);
        if (orc_store_open(f->path, &s, NULL, 0) != 0 || orc_store_deployment_insert(s, &d) != 0)
            _exit(1);
        if (write(fds[1], d.uuid, ORC_UUID_LEN) != ORC_UUID_LEN)
            _exit(2);
        _exit(0); /* no close, no checkpoint, no atexit */
    }
    close(fds[1]);
    assert_int_equal(read(fds[0], uuid, ORC_UUID_LEN), ORC_UUID_LEN);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(orc_store_open(f->path, &f->s, err, sizeof(err)), 0);
    assert_int_equal(orc_store_deployment_get(f->s, uuid, &got), 0);
    assert_string_equal(got->created_by.subject, "durable");
    assert_int_equal(got->status, ORC_DEP_CREATE_IN_PROGRESS);
    orc_deployment_free(got);
    assert_int_equal(count_events(f->s, uuid, "deployment.created"), 1);
}

/* ---- resources ----------------------------------------------------------------------------------
 */

static void resources_insert_get_list(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL), other = new_dep("i", "s", NULL);
    orc_resource_t rs[3] = {
        {.node_name = "vm", .node_type = "tosca.nodes.indigo.Compute", .instance_index = 0},
        {.node_name = "vm", .node_type = "tosca.nodes.indigo.Compute", .instance_index = 1},
        {.node_name = "app", .node_type = "tosca.nodes.indigo.DEEPaaScont"},
    };
    orc_resource_t *got = NULL;
    orc_resource_list_t l;
    orc_res_query_t q = {0};

    insert_dep(f->s, &d);
    insert_dep(f->s, &other);
    rs[0].required_by = json_pack("[s]", "app");
    rs[0].metadata = json_pack("{s:s}", "flavor", "g1.large");
    rs[2].state = ORC_RES_INITIAL;
    for (int i = 0; i < 3; i++)
        memcpy(rs[i].deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resources_insert(f->s, rs, 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(orc_uuid_valid(rs[i].uuid));
        assert_int_equal(rs[i].version, 1);
    }
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, rs[0].uuid, &got), 0);
    assert_string_equal(got->node_name, "vm");
    assert_string_equal(got->node_type, "tosca.nodes.indigo.Compute");
    assert_int_equal(got->instance_index, 0);
    assert_int_equal(got->state, ORC_RES_INITIAL);
    assert_true(json_equal(got->required_by, rs[0].required_by));
    assert_true(json_equal(got->metadata, rs[0].metadata));
    assert_null(got->attributes);
    assert_null(got->site_name);
    assert_string_equal(got->deployment_uuid, d.uuid);
    orc_resource_free(got);
    got = NULL;
    /* required_by NULL is stored as [] */
    assert_int_equal(orc_store_resource_get(f->s, NULL, rs[2].uuid, &got), 0);
    assert_true(json_is_array(got->required_by) && json_array_size(got->required_by) == 0);
    orc_resource_free(got);
    /* belongs to another deployment */
    assert_int_equal(orc_store_resource_get(f->s, other.uuid, rs[0].uuid, &got), ORC_ENOTFOUND);
    assert_null(got);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, "bad", &got), ORC_EINVAL);

    q.deployment_uuid = d.uuid;
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 3);
    assert_string_equal(l.items[0].uuid, rs[2].uuid); /* newest first */
    orc_resource_list_clear(&l);
    q.node_type = "tosca.nodes.indigo.Compute";
    q.size = 1;
    q.page = 1;
    q.oldest_first = true;
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 2);
    assert_int_equal(l.count, 1);
    assert_string_equal(l.items[0].uuid, rs[1].uuid);
    orc_resource_list_clear(&l);
    q = (orc_res_query_t){.deployment_uuid = other.uuid};
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 0);
    orc_resource_list_clear(&l);
    q.deployment_uuid = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), ORC_ENOTFOUND);
    assert_int_equal(orc_store_resource_list(f->s, NULL, &l), ORC_EINVAL);
    assert_int_equal(count_events(f->s, d.uuid, "resource.created"), 3);
    json_decref(rs[0].required_by);
    json_decref(rs[0].metadata);
}

static void resources_insert_is_all_or_nothing(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_resource_t rs[3] = {
        {.node_name = "a", .node_type = "T"},
        {.node_name = "b", .node_type = "T"},
        {.node_name = "a", .node_type = "T"}, /* same (node, index) as the first */
    };
    orc_resource_t bad = {.node_name = "x", .node_type = "T"};

    insert_dep(f->s, &d);
    for (int i = 0; i < 3; i++)
        memcpy(rs[i].deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resources_insert(f->s, rs, 3), ORC_ECONFLICT);
    assert_non_null(strstr(orc_store_errmsg(f->s), "exists already"));
    for (int i = 0; i < 3; i++)
        assert_string_equal(rs[i].uuid, "");
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 0);
    assert_int_equal(count_events(f->s, d.uuid, "resource.created"), 0);
    /* unknown deployment */
    memcpy(bad.deployment_uuid, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", ORC_UUID_LEN);
    assert_int_equal(orc_store_resource_insert(f->s, &bad), ORC_ENOTFOUND);
    /* bad input */
    memcpy(bad.deployment_uuid, d.uuid, ORC_UUID_LEN);
    bad.state = (orc_res_state_t)77;
    assert_int_equal(orc_store_resource_insert(f->s, &bad), ORC_EINVAL);
    bad.state = ORC_RES_INITIAL;
    bad.instance_index = -1;
    assert_int_equal(orc_store_resource_insert(f->s, &bad), ORC_EINVAL);
    bad.instance_index = 0;
    bad.node_type = NULL;
    assert_int_equal(orc_store_resource_insert(f->s, &bad), ORC_EINVAL);
    bad.node_type = "T";
    bad.required_by = json_pack("[i]", 3);
    assert_int_equal(orc_store_resource_insert(f->s, &bad), ORC_EINVAL);
    json_decref(bad.required_by);
    assert_int_equal(orc_store_resource_insert(f->s, NULL), ORC_EINVAL);
}

static void resources_update(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_resource_t r = {.node_name = "vm", .node_type = "tosca.nodes.Compute"};
    orc_resource_t v = {0};
    orc_resource_t *got = NULL;
    orc_event_list_t ev;
    int64_t ver = 0;

    insert_dep(f->s, &d);
    memcpy(r.deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    assert_int_equal(orc_store_resource_set_state(f->s, r.uuid, 1, ORC_RES_CREATING, &ver), 0);
    assert_int_equal(ver, 2);
    assert_int_equal(orc_store_resource_set_state(f->s, r.uuid, 1, ORC_RES_CREATED, &ver),
                     ORC_ECONFLICT);
    v.state = ORC_RES_CREATED;
    v.site_name = "site-a";
    v.provider_name = "openstack";
    v.physical_id = "vm-12345";
    v.attributes = json_pack("{s:[s]}", "public_address", "203.0.113.7");
    v.metadata = json_pack("{s:s}", "flavor", "gpu.a100");
    v.required_by = json_pack("[s,s]", "app", "db");
    {
        orc_res_update_t u = {
            .uuid = r.uuid, .expect_version = 2, .set = ORC_RES_F__ALL, .values = &v};
        assert_int_equal(orc_store_resource_update(f->s, &u, &ver), 0);
        assert_int_equal(ver, 3);
    }
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, r.uuid, &got), 0);
    assert_int_equal(got->state, ORC_RES_CREATED);
    assert_string_equal(got->site_name, "site-a");
    assert_string_equal(got->provider_name, "openstack");
    assert_string_equal(got->physical_id, "vm-12345");
    assert_true(json_equal(got->attributes, v.attributes));
    assert_true(json_equal(got->metadata, v.metadata));
    assert_true(json_equal(got->required_by, v.required_by));
    assert_int_equal(got->version, 3);
    orc_resource_free(got);
    /* events: created, state CREATING, state CREATED */
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_int_equal(ev.count, 4);
    assert_string_equal(ev.items[1].type, "resource.created");
    assert_string_equal(ev.items[1].message, "vm[0]: INITIAL");
    assert_string_equal(json_string_value(json_object_get(ev.items[1].data, "resource")), r.uuid);
    assert_string_equal(json_string_value(json_object_get(ev.items[1].data, "state")), "INITIAL");
    assert_int_equal(json_object_size(ev.items[1].data), 4);
    assert_string_equal(ev.items[2].type, "resource.state");
    assert_string_equal(ev.items[2].message, "vm[0]: CREATING");
    assert_string_equal(ev.items[3].message, "vm[0]: CREATED");
    assert_string_equal(json_string_value(json_object_get(ev.items[3].data, "resource")), r.uuid);
    /* the same data on both backends (PostgreSQL writes it in the update's statement) */
    assert_string_equal(json_string_value(json_object_get(ev.items[3].data, "node")), "vm");
    assert_true(json_is_integer(json_object_get(ev.items[3].data, "index")));
    assert_int_equal(json_integer_value(json_object_get(ev.items[3].data, "index")), 0);
    assert_string_equal(json_string_value(json_object_get(ev.items[3].data, "state")), "CREATED");
    assert_int_equal(json_object_size(ev.items[3].data), 4);
    orc_event_list_clear(&ev);
    /* attributes only: "resource.updated"; unknown and bad input */
    {
        orc_res_update_t u = {.uuid = r.uuid, .set = ORC_RES_F_ATTRIBUTES, .values = &v};
        assert_int_equal(orc_store_resource_update(f->s, &u, NULL), 0);
        assert_int_equal(count_events(f->s, d.uuid, "resource.updated"), 1);
        u.uuid = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
        assert_int_equal(orc_store_resource_update(f->s, &u, NULL), ORC_ENOTFOUND);
        u.uuid = r.uuid;
        u.set = 1u << 20;
        assert_int_equal(orc_store_resource_update(f->s, &u, NULL), ORC_EINVAL);
    }
    assert_int_equal(orc_store_resource_set_state(f->s, r.uuid, 0, (orc_res_state_t)-3, NULL),
                     ORC_EINVAL);
    json_decref(v.attributes);
    json_decref(v.metadata);
    json_decref(v.required_by);
}

/* ---- events, attempts, metadata -------------------------------------------------------------- */

static void events_append_and_resume(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_event_t ev = {0};
    orc_event_list_t l;
    int64_t ids[5];

    insert_dep(f->s, &d);
    memcpy(ev.deployment_uuid, d.uuid, ORC_UUID_LEN);
    for (int i = 0; i < 5; i++) {
        char msg[32];
        snprintf(msg, sizeof(msg), "line %d", i);
        ev.id = 0;
        ev.time_ms = i == 0 ? 1700000000123 : 0;
        ev.type = "engine.log";
        ev.message = msg;
        ev.data = i == 2 ? json_pack("{s:i}", "n", 2) : NULL;
        assert_int_equal(orc_store_event_append(f->s, &ev), 0);
        json_decref(ev.data);
        ids[i] = ev.id;
        assert_true(ev.time_ms > 0);
        assert_true(i == 0 || ids[i] > ids[i - 1]);
    }
    /* resume after the second: three left; limit 2 */
    assert_int_equal(orc_store_event_list(f->s, d.uuid, ids[1], 0, &l), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.items[0].id, ids[2]);
    assert_string_equal(l.items[0].message, "line 2");
    assert_int_equal(json_integer_value(json_object_get(l.items[0].data, "n")), 2);
    assert_null(l.items[1].data);
    orc_event_list_clear(&l);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, ids[1], 2, &l), 0);
    assert_int_equal(l.count, 2);
    orc_event_list_clear(&l);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, ids[4], 0, &l), 0);
    assert_int_equal(l.count, 0);
    orc_event_list_clear(&l);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 1, &l), 0);
    assert_string_equal(l.items[0].type, "deployment.created");
    orc_event_list_clear(&l);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, ids[0] - 1, 1, &l), 0);
    assert_int_equal(l.items[0].time_ms, 1700000000123); /* the caller's time is kept */
    orc_event_list_clear(&l);
    orc_event_free(NULL);

    /* bad input and unknown deployment */
    ev.message = NULL;
    ev.type = NULL;
    assert_int_equal(orc_store_event_append(f->s, &ev), ORC_EINVAL);
    ev.type = "x";
    memcpy(ev.deployment_uuid, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", ORC_UUID_LEN);
    assert_int_equal(orc_store_event_append(f->s, &ev), ORC_ENOTFOUND);
    assert_int_equal(orc_store_event_list(f->s, ev.deployment_uuid, 0, 0, &l), ORC_ENOTFOUND);
    assert_int_equal(orc_store_event_append(f->s, NULL), ORC_EINVAL);
}

static void attempts_and_reason(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_attempt_list_t l;
    char *reason;

    insert_dep(f->s, &d);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 1, "site-a"), 0);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 1, "site-b"), ORC_ECONFLICT);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 1, false, "quota exceeded"), 0);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 1, true, NULL), ORC_ECONFLICT);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 2, "site-b"), 0);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 2, false, "no A100 free"), 0);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 3, "site-c"), 0);
    assert_int_equal(orc_store_attempt_list(f->s, d.uuid, &l), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.items[0].attempt, 1);
    assert_string_equal(l.items[0].site_name, "site-a");
    assert_int_equal(l.items[0].result, ORC_ATTEMPT_FAILED);
    assert_string_equal(l.items[0].error, "quota exceeded");
    assert_true(l.items[0].ended_ms >= l.items[0].started_ms);
    assert_int_equal(l.items[2].result, ORC_ATTEMPT_RUNNING);
    assert_int_equal(l.items[2].ended_ms, 0);
    reason = orc_attempt_list_reason(&l);
    assert_string_equal(reason, "site-a: quota exceeded; site-b: no A100 free");
    orc_free(reason);
    orc_attempt_list_clear(&l);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 3, true, NULL), 0);
    assert_int_equal(orc_store_attempt_list(f->s, d.uuid, &l), 0);
    assert_int_equal(l.items[2].result, ORC_ATTEMPT_OK);
    assert_null(l.items[2].error);
    orc_attempt_list_clear(&l);
    assert_int_equal(count_events(f->s, d.uuid, "attempt.started"), 3);
    assert_int_equal(count_events(f->s, d.uuid, "attempt.ended"), 3);
    { /* the same started event on both backends (PostgreSQL writes it with the attempt) */
        orc_event_list_t ev;
        assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
        assert_true(ev.count >= 2);
        assert_string_equal(ev.items[1].type, "attempt.started");
        assert_string_equal(ev.items[1].message, "attempt 1 on site site-a started");
        assert_int_equal(json_integer_value(json_object_get(ev.items[1].data, "attempt")), 1);
        assert_string_equal(json_string_value(json_object_get(ev.items[1].data, "site")), "site-a");
        orc_event_list_clear(&ev);
    }

    reason = orc_attempt_list_reason(NULL);
    assert_string_equal(reason, "");
    orc_free(reason);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 9, true, NULL), ORC_ENOTFOUND);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 0, "x"), ORC_EINVAL);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 4, NULL), ORC_EINVAL);
    assert_int_equal(orc_store_attempt_start(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", 1, "x"),
                     ORC_ENOTFOUND);
    assert_int_equal(orc_store_attempt_list(f->s, "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b", &l),
                     ORC_ENOTFOUND);
}

static void meta_key_value(void **state)
{
    struct fx *f = *state;
    char *v = NULL;

    assert_int_equal(orc_store_meta_get(f->s, "instance.id", &v), ORC_ENOTFOUND);
    assert_null(v);
    assert_int_equal(orc_store_meta_set(f->s, "instance.id", "abc"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "instance.id", "def"), 0);
    assert_int_equal(orc_store_meta_get(f->s, "instance.id", &v), 0);
    assert_string_equal(v, "def");
    orc_free(v);
    assert_int_equal(orc_store_meta_set(f->s, "empty", ""), 0);
    assert_int_equal(orc_store_meta_get(f->s, "empty", &v), 0);
    assert_string_equal(v, "");
    orc_free(v);
    assert_int_equal(orc_store_meta_delete(f->s, "instance.id"), 0);
    assert_int_equal(orc_store_meta_delete(f->s, "instance.id"), ORC_ENOTFOUND);
    assert_int_equal(orc_store_meta_set(f->s, NULL, "x"), ORC_EINVAL);
    assert_int_equal(orc_store_meta_set(f->s, "k", NULL), ORC_EINVAL);
    assert_int_equal(orc_store_meta_get(f->s, "k", NULL), ORC_EINVAL);
}

/* A prefix lists its keys in bytewise order, and only its own ("a_" and "a%" are no
 * patterns; "b" is not under "a/"). */
static void meta_list_by_prefix(void **state)
{
    struct fx *f = *state;
    orc_meta_list_t l = {0};

    assert_int_equal(orc_store_meta_list(f->s, "template/", &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(orc_store_meta_set(f->s, "template/b", "2"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "template/a", "1"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "template/B", "0"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "template", "not under"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "templatex/a", "not under"), 0);
    assert_int_equal(orc_store_meta_set(f->s, "a_b", "x"), 0);
    assert_int_equal(orc_store_meta_list(f->s, "template/", &l), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "template/B");
    assert_string_equal(l.items[0].value, "0");
    assert_string_equal(l.items[1].key, "template/a");
    assert_string_equal(l.items[2].key, "template/b");
    assert_string_equal(l.items[2].value, "2");
    orc_meta_list_clear(&l);
    assert_int_equal(orc_store_meta_list(f->s, "a%", &l), 0);
    assert_int_equal(l.count, 0);
    assert_int_equal(orc_store_meta_list(f->s, "a_", &l), 0);
    assert_int_equal(l.count, 1);
    orc_meta_list_clear(&l);
    assert_int_equal(orc_store_meta_list(f->s, "", &l), ORC_EINVAL);
    assert_int_equal(orc_store_meta_list(f->s, NULL, &l), ORC_EINVAL);
    assert_int_equal(orc_store_meta_list(f->s, "x", NULL), ORC_EINVAL);
}

/* ---- JSON codec ----------------------------------------------------------------------------- */

static void assert_api_time(const json_t *obj, const char *key)
{
    regex_t re;
    const char *t = json_string_value(json_object_get(obj, key));

    assert_non_null(t);
    assert_int_equal(
        regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}\\+0000$", REG_EXTENDED), 0);
    assert_int_equal(regexec(&re, t, 0, NULL, 0), 0);
    regfree(&re);
}

static void assert_link(const json_t *links, size_t i, const char *rel, const char *href)
{
    const json_t *l = json_array_get(links, i);

    assert_non_null(l);
    assert_int_equal(json_object_size(l), 2);
    assert_string_equal(json_string_value(json_object_get(l, "rel")), rel);
    assert_string_equal(json_string_value(json_object_get(l, "href")), href);
}

static void json_deployment_as_api(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("https://iam.example/", "alice", NULL);
    orc_deployment_t *got = NULL;
    json_t *j = NULL, *links;
    char href[256];

    insert_dep(f->s, &d);
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    got->created_ms = 1795706640000; /* 2026-11-26T15:24:00Z */
    assert_int_equal(orc_deployment_to_json(got, "https://orch.example:8443/", &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "uuid")), d.uuid);
    assert_api_time(j, "creationTime");
    assert_api_time(j, "updateTime");
    assert_string_equal(json_string_value(json_object_get(j, "creationTime")),
                        "2026-11-26T15:24+0000");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "CREATE_IN_PROGRESS");
    assert_string_equal(json_string_value(json_object_get(j, "task")), "NONE");
    assert_true(json_is_object(json_object_get(j, "outputs")));
    assert_int_equal(json_object_size(json_object_get(j, "outputs")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "createdBy"), "issuer")),
        "https://iam.example/");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "createdBy"), "subject")), "alice");
    assert_int_equal(json_object_size(json_object_get(j, "createdBy")), 2);
    /* optional fields are absent when not set */
    static const char *const absent[] = {"statusReason",      "physicalId",
                                         "callback",          "userGroup",
                                         "cloudProviderName", "cloudProviderEndpoint"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        assert_null(json_object_get(j, absent[i]));
    assert_int_equal(json_object_size(j), 8);
    links = json_object_get(j, "links");
    assert_int_equal(json_array_size(links), 3);
    snprintf(href, sizeof(href), "https://orch.example:8443/deployments/%s", d.uuid);
    assert_link(links, 0, "self", href);
    snprintf(href, sizeof(href), "https://orch.example:8443/deployments/%s/resources", d.uuid);
    assert_link(links, 1, "resources", href);
    snprintf(href, sizeof(href), "https://orch.example:8443/deployments/%s/template", d.uuid);
    assert_link(links, 2, "template", href);
    json_decref(j);

    /* every optional field set */
    got->status = ORC_DEP_CREATE_FAILED;
    got->status_reason = orc_strdup("site-a: quota");
    got->physical_id = orc_strdup("infra-9");
    got->callback = orc_strdup("https://cb.example/");
    got->user_group = orc_strdup("ml");
    got->cloud_provider_name = orc_strdup("site-a");
    got->cloud_provider_endpoint =
        json_pack("{s:s, s:s, s:s}", "cpEndpoint", "https://ks", "cpComputeServiceId", "svc-1",
                  "deploymentType", "OPENSTACK");
    got->outputs = json_pack("{s:s}", "url", "http://x");
    assert_int_equal(orc_deployment_to_json(got, NULL, &j), 0);
    assert_int_equal(json_object_size(j), 14);
    assert_string_equal(json_string_value(json_object_get(j, "statusReason")), "site-a: quota");
    assert_string_equal(json_string_value(json_object_get(j, "physicalId")), "infra-9");
    assert_string_equal(json_string_value(json_object_get(j, "callback")), "https://cb.example/");
    assert_string_equal(json_string_value(json_object_get(j, "userGroup")), "ml");
    assert_string_equal(json_string_value(json_object_get(j, "cloudProviderName")), "site-a");
    assert_true(
        json_equal(json_object_get(j, "cloudProviderEndpoint"), got->cloud_provider_endpoint));
    assert_true(json_equal(json_object_get(j, "outputs"), got->outputs));
    assert_true(json_object_get(j, "outputs") != got->outputs); /* a copy */
    snprintf(href, sizeof(href), "/deployments/%s", d.uuid);
    assert_link(json_object_get(j, "links"), 0, "self", href);
    json_decref(j);
    /* text that is not UTF-8 still renders */
    orc_free(got->status_reason);
    got->status_reason = orc_strdup("bad \xff byte");
    assert_int_equal(orc_deployment_to_json(got, "", &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "statusReason")), "bad ? byte");
    json_decref(j);
    /* quotes, backslashes, control characters and UTF-8 of every length are
     * escaped or kept; a surrogate's bytes are not UTF-8 */
    orc_free(got->status_reason);
    got->status_reason =
        orc_strdup("q\"\\ \n\t\x01 \xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xed\xa0\x80.");
    assert_int_equal(orc_deployment_to_json(got, "", &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "statusReason")),
                        "q\"\\ \n\t\x01 \xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 ???.");
    json_decref(j);
    got->status = (orc_dep_status_t)50;
    assert_int_equal(orc_deployment_to_json(got, "", &j), ORC_EINVAL);
    assert_int_equal(orc_deployment_to_json(NULL, "", &j), ORC_EINVAL);
    orc_deployment_free(got);
}

static void json_resource_and_event_as_api(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL);
    orc_resource_t r = {.node_name = "vm", .node_type = "tosca.nodes.indigo.Compute"};
    orc_resource_t *got = NULL;
    orc_event_list_t ev;
    json_t *j = NULL;
    char href[256];

    insert_dep(f->s, &d);
    memcpy(r.deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, r.uuid, &got), 0);
    assert_int_equal(orc_resource_to_json(got, "http://h:8080", &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "uuid")), r.uuid);
    assert_api_time(j, "creationTime");
    assert_api_time(j, "updateTime");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "INITIAL");
    assert_string_equal(json_string_value(json_object_get(j, "toscaNodeType")),
                        "tosca.nodes.indigo.Compute");
    assert_string_equal(json_string_value(json_object_get(j, "toscaNodeName")), "vm");
    assert_true(json_is_array(json_object_get(j, "requiredBy")));
    assert_int_equal(json_array_size(json_object_get(j, "requiredBy")), 0);
    assert_null(json_object_get(j, "physicalId"));
    assert_null(json_object_get(j, "metadata"));
    assert_int_equal(json_object_size(j), 8);
    snprintf(href, sizeof(href), "http://h:8080/deployments/%s", d.uuid);
    assert_link(json_object_get(j, "links"), 0, "deployment", href);
    snprintf(href, sizeof(href), "http://h:8080/deployments/%s/resources/%s", d.uuid, r.uuid);
    assert_link(json_object_get(j, "links"), 1, "self", href);
    assert_int_equal(json_array_size(json_object_get(j, "links")), 2);
    json_decref(j);
    got->physical_id = orc_strdup("vm-1");
    got->metadata = json_pack("{s:s}", "k", "v");
    json_decref(got->required_by); /* [] as read back */
    got->required_by = json_pack("[s]", "app");
    assert_int_equal(orc_resource_to_json(got, "http://h:8080", &j), 0);
    assert_string_equal(json_string_value(json_object_get(j, "physicalId")), "vm-1");
    assert_true(json_equal(json_object_get(j, "metadata"), got->metadata));
    assert_true(json_equal(json_object_get(j, "requiredBy"), got->required_by));
    json_decref(j);
    orc_resource_free(got);

    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 1, &ev), 0);
    assert_int_equal(orc_event_to_json(&ev.items[0], &j), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), ev.items[0].id);
    assert_api_time(j, "time");
    assert_int_equal(json_integer_value(json_object_get(j, "timeMs")), ev.items[0].time_ms);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "deployment.created");
    assert_string_equal(json_string_value(json_object_get(j, "message")), "deployment created");
    assert_true(json_is_object(json_object_get(j, "data")));
    json_decref(j);
    orc_event_list_clear(&ev);
    assert_int_equal(orc_resource_to_json(NULL, "", &j), ORC_EINVAL);
    assert_int_equal(orc_event_to_json(NULL, &j), ORC_EINVAL);
}

/* ---- groups: one transaction for many writes ---------------------------------------------------
 */

static const char NO_SUCH_UUID[] = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";

static orc_resource_t new_res(const char *deployment_uuid, const char *node, int index)
{
    orc_resource_t r = {.node_name = (char *)node, .node_type = (char *)"tosca.nodes.Compute"};

    r.instance_index = index;
    memcpy(r.deployment_uuid, deployment_uuid, ORC_UUID_LEN);
    return r;
}

/* What a site's removal would leave: the resources placed there of deployments not
 * deleted. */
static void site_resource_count(void **state)
{
    struct fx *f = *state;
    orc_deployment_t a = new_dep("iss", "alice", NULL), b = new_dep("iss", "bob", NULL);
    orc_resource_t r1, r2, r3;
    int64_t n = -1;

    insert_dep(f->s, &a);
    insert_dep(f->s, &b);
    r1 = new_res(a.uuid, "vm", 0);
    r1.site_name = (char *)"site-x";
    r2 = new_res(a.uuid, "vm", 1);
    r2.site_name = (char *)"site-y";
    r3 = new_res(b.uuid, "vm", 0);
    r3.site_name = (char *)"site-x";
    assert_int_equal(orc_store_resource_insert(f->s, &r1), 0);
    assert_int_equal(orc_store_resource_insert(f->s, &r2), 0);
    assert_int_equal(orc_store_resource_insert(f->s, &r3), 0);
    assert_int_equal(orc_store_site_resource_count(f->s, "site-x", &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(orc_store_site_resource_count(f->s, "site-z", &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(orc_store_deployment_mark_deleted(f->s, b.uuid, 0), 0);
    assert_int_equal(orc_store_site_resource_count(f->s, "site-x", &n), 0);
    assert_int_equal(n, 1); /* b is deleted: what it left there does not count */
    assert_int_equal(orc_store_site_resource_count(f->s, "", &n), ORC_EINVAL);
    assert_int_equal(orc_store_site_resource_count(f->s, NULL, &n), ORC_EINVAL);
}

static int64_t dep_version_raw(const char *path, const char *uuid)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "SELECT version FROM deployments WHERE uuid = '%s'", uuid);
    return raw_int(path, sql);
}

/* ---- leases ------------------------------------------------------------------------------ */

static bool lease_has(const orc_lease_list_t *l, const char *uuid)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].uuid, uuid) == 0)
            return true;
    return false;
}

static void leases_acquire_renew_release(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("i", "s", NULL), e = new_dep("i", "s", NULL);
    orc_lease_list_t held;
    char missing[ORC_UUID_LEN];

    insert_dep(f->s, &d);
    insert_dep(f->s, &e);
    assert_int_equal(orc_store_lease_acquire(f->s, d.uuid, "daemon-a", 60000), 0);
    assert_int_equal(orc_store_lease_acquire(f->s, d.uuid, "daemon-b", 60000), ORC_ECONFLICT);
    assert_non_null(strstr(orc_store_errmsg(f->s), "leased to daemon-a"));
    assert_int_equal(orc_store_lease_acquire(f->s, d.uuid, "daemon-a", 60000), 0); /* again */
    snprintf(missing, sizeof(missing), "%s", d.uuid);
    missing[ORC_UUID_LEN - 2] = missing[ORC_UUID_LEN - 2] == '0' ? '1' : '0';
    assert_int_equal(orc_store_lease_acquire(f->s, missing, "daemon-a", 60000), ORC_ENOTFOUND);
    /* renewing lists what is held, with status and version */
    assert_int_equal(orc_store_lease_renew(f->s, "daemon-a", 60000, &held), 0);
    assert_int_equal(held.count, 1);
    assert_string_equal(held.items[0].uuid, d.uuid);
    assert_int_equal(held.items[0].status, ORC_DEP_CREATE_IN_PROGRESS);
    assert_int_equal(held.items[0].version, 1);
    orc_lease_list_clear(&held);
    /* leases change no version and append no event */
    assert_int_equal(dep_version_raw(f->path, d.uuid), 1);
    assert_int_equal(count_events(f->s, d.uuid, NULL), 1);
    /* only the owner gives it back */
    assert_int_equal(orc_store_lease_release(f->s, d.uuid, "daemon-b"), 0);
    assert_int_equal(orc_store_lease_acquire(f->s, d.uuid, "daemon-b", 60000), ORC_ECONFLICT);
    assert_int_equal(orc_store_lease_release(f->s, d.uuid, "daemon-a"), 0);
    assert_int_equal(orc_store_lease_acquire(f->s, d.uuid, "daemon-b", 60000), 0);
    /* a deployment marked deleted is held no more */
    assert_int_equal(orc_store_deployment_mark_deleted(f->s, d.uuid, 0), 0);
    assert_int_equal(orc_store_lease_renew(f->s, "daemon-b", 60000, &held), 0);
    assert_int_equal(held.count, 0);
    orc_lease_list_clear(&held);
    /* bad input */
    assert_int_equal(orc_store_lease_acquire(f->s, e.uuid, "", 60000), ORC_EINVAL);
    assert_int_equal(orc_store_lease_acquire(f->s, e.uuid, NULL, 60000), ORC_EINVAL);
    assert_int_equal(orc_store_lease_acquire(f->s, e.uuid, "a", 0), ORC_EINVAL);
    assert_int_equal(orc_store_lease_acquire(f->s, "nope", "a", 1000), ORC_EINVAL);
    assert_int_equal(orc_store_lease_renew(f->s, "a", 1000, NULL), ORC_EINVAL);
    assert_int_equal(orc_store_lease_claim_expired(f->s, "a", 1000, 1u << 31, 1, false, &held),
                     ORC_EINVAL);
}

static void leases_expire_and_are_claimed(void **state)
{
    struct fx *f = *state;
    orc_deployment_t ds[4];
    orc_lease_list_t got, held;

    for (int i = 0; i < 4; i++) {
        ds[i] = new_dep("i", "s", NULL);
        insert_dep(f->s, &ds[i]);
    }
    assert_int_equal(
        orc_store_deployment_set_status(f->s, ds[3].uuid, 1, ORC_DEP_CREATE_COMPLETE, NULL, NULL),
        0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(orc_store_lease_acquire(f->s, ds[i].uuid, "daemon-a", 50), 0);
    /* not expired yet: nothing to claim for another, all of it for the owner (a restart) */
    assert_int_equal(
        orc_store_lease_claim_expired(f->s, "daemon-b", 60000, ORC_DEP_MASK_IN_PROGRESS, 10, false,
                                      &got),
        0);
    assert_int_equal(got.count, 0);
    orc_lease_list_clear(&got);
    assert_int_equal(
        orc_store_lease_claim_expired(f->s, "daemon-a", 60000, ORC_DEP_MASK_IN_PROGRESS, 10, true,
                                      &got),
        0);
    assert_int_equal(got.count, 3);
    assert_string_equal(got.items[0].previous_owner, "daemon-a");
    orc_lease_list_clear(&got);
    for (int i = 0; i < 3; i++) /* short again */
        assert_int_equal(orc_store_lease_acquire(f->s, ds[i].uuid, "daemon-a", 50), 0);
    orc_lease_list_clear(&got);
    usleep(120 * 1000);
    /* expired: daemon-b takes the three in progress, oldest first, not the complete one */
    assert_int_equal(
        orc_store_lease_claim_expired(f->s, "daemon-b", 60000, ORC_DEP_MASK_IN_PROGRESS, 2, false,
                                      &got),
        0);
    assert_int_equal(got.count, 2);
    assert_true(lease_has(&got, ds[0].uuid) && lease_has(&got, ds[1].uuid));
    assert_string_equal(got.items[0].previous_owner, "daemon-a");
    assert_int_equal(got.items[0].status, ORC_DEP_CREATE_IN_PROGRESS);
    orc_lease_list_clear(&got);
    assert_int_equal(
        orc_store_lease_claim_expired(f->s, "daemon-b", 60000, ORC_DEP_MASK_IN_PROGRESS, 10, false,
                                      &got),
        0);
    assert_int_equal(got.count, 1); /* the third; its own two only with_own */
    assert_string_equal(got.items[0].uuid, ds[2].uuid);
    assert_false(lease_has(&got, ds[3].uuid));
    orc_lease_list_clear(&got);
    /* the old owner learns that it lost them */
    assert_int_equal(orc_store_lease_renew(f->s, "daemon-a", 60000, &held), 0);
    assert_int_equal(held.count, 0);
    orc_lease_list_clear(&held);
    assert_int_equal(orc_store_lease_renew(f->s, "daemon-b", 60000, &held), 0);
    assert_int_equal(held.count, 3);
    orc_lease_list_clear(&held);
    assert_int_equal(orc_store_lease_acquire(f->s, ds[0].uuid, "daemon-a", 60000), ORC_ECONFLICT);
}

/* Two daemons claim at the same time, one deployment per claim, until none is left:
 * each deployment goes to exactly one of them. */
struct claimer {
    const char *path, *owner;
    char (*uuids)[ORC_UUID_LEN]; /* what it got */
    size_t count;
    int rc;
};

static void *claim_all(void *arg)
{
    struct claimer *c = arg;
    orc_store_t *s = NULL;
    orc_lease_list_t one;
    char err[256];

    c->rc = orc_store_open(c->path, &s, err, sizeof(err));
    while (c->rc == 0) {
        c->rc = orc_store_lease_claim_expired(s, c->owner, 60000, ORC_DEP_MASK_IN_PROGRESS, 1,
                                              false, &one);
        if (c->rc == 0 && one.count == 0)
            break;
        for (size_t i = 0; c->rc == 0 && i < one.count; i++)
            memcpy(c->uuids[c->count++], one.items[i].uuid, ORC_UUID_LEN);
        orc_lease_list_clear(&one);
    }
    orc_store_close(s);
    return NULL;
}

static void leases_claims_never_overlap(void **state)
{
    struct fx *f = *state;
    enum { N = 60 };
    static char got_a[N][ORC_UUID_LEN], got_b[N][ORC_UUID_LEN];
    struct claimer a = {f->path, "daemon-a", got_a, 0, 0}, b = {f->path, "daemon-b", got_b, 0, 0};
    orc_deployment_t ds[N];
    pthread_t ta, tb;

    for (int i = 0; i < N; i++) {
        ds[i] = new_dep("i", "s", NULL);
        insert_dep(f->s, &ds[i]);
    }
    assert_int_equal(pthread_create(&ta, NULL, claim_all, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, claim_all, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_int_equal(a.count + b.count, N);
    for (size_t i = 0; i < a.count; i++)
        for (size_t j = 0; j < b.count; j++)
            assert_string_not_equal(got_a[i], got_b[j]);
    print_message("leases: %zu and %zu of %d claimed by two daemons at once\n", a.count, b.count,
                  N);
}

static void group_writes_invisible_until_commit(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("iss", "grp", NULL);
    orc_resource_t r;
    orc_event_t ev = {.type = (char *)"engine.note", .message = (char *)"hello"};
    orc_deployment_t *got = NULL;
    char *v = NULL;
    int64_t ver = 0;

    assert_false(orc_store_group_active(f->s));
    assert_int_equal(orc_store_group_begin(f->s), 0);
    assert_true(orc_store_group_active(f->s));
    assert_int_equal(orc_store_group_writes(f->s), 0);
    insert_dep(f->s, &d);
    r = new_res(d.uuid, "vm", 0);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    assert_int_equal(orc_store_resource_set_state(f->s, r.uuid, 1, ORC_RES_CREATING, &ver), 0);
    assert_int_equal(ver, 2);
    memcpy(ev.deployment_uuid, d.uuid, ORC_UUID_LEN);
    assert_int_equal(orc_store_event_append(f->s, &ev), 0);
    assert_int_equal(orc_store_attempt_start(f->s, d.uuid, 1, "site-a"), 0);
    assert_int_equal(orc_store_attempt_end(f->s, d.uuid, 1, true, NULL), 0);
    assert_int_equal(
        orc_store_deployment_set_status(f->s, d.uuid, 1, ORC_DEP_CREATE_COMPLETE, NULL, &ver), 0);
    assert_int_equal(orc_store_meta_set(f->s, "k", "v"), 0);
    assert_int_equal(orc_store_group_writes(f->s), 8);
    /* this handle reads the group's writes ... */
    assert_int_equal(orc_store_deployment_get(f->s, d.uuid, &got), 0);
    assert_int_equal(got->status, ORC_DEP_CREATE_COMPLETE);
    assert_int_equal(got->version, 2);
    orc_deployment_free(got);
    assert_int_equal(count_events(f->s, d.uuid, NULL), 7);
    assert_int_equal(orc_store_meta_get(f->s, "k", &v), 0);
    assert_string_equal(v, "v");
    orc_free(v);
    {
        orc_deployment_list_t l;
        assert_int_equal(orc_store_deployment_list(f->s, NULL, &l), 0);
        assert_int_equal(l.total, 1);
        orc_deployment_list_clear(&l);
    }
    /* ... another connection sees none of it ... */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 0);
    assert_true(orc_store_group_active(f->s)); /* reads neither end nor join it */
    assert_int_equal(orc_store_group_writes(f->s), 8);
    /* ... until the commit */
    assert_int_equal(orc_store_group_commit(f->s), 0);
    assert_false(orc_store_group_active(f->s));
    assert_int_equal(orc_store_group_writes(f->s), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 1);
    assert_int_equal(dep_version_raw(f->path, d.uuid), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 7);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM site_attempts"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 1);
    /* after it, each write is its own durable transaction again */
    assert_int_equal(orc_store_meta_set(f->s, "k2", "v2"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta"), 2);
}

static void group_failed_writes_leave_no_trace(void **state)
{
    struct fx *f = *state;
    orc_deployment_t a = new_dep("iss", "a", NULL), b = new_dep("iss", "b", NULL);
    orc_deployment_t batch[3] = {new_dep("iss", "c", NULL), new_dep("iss", "d", NULL),
                                 new_dep("iss", "e", NULL)};
    orc_resource_t r, dup, orphan;
    orc_event_t ev = {.type = (char *)"engine.note"};
    int rcs[3];
    int64_t ver = 0;

    insert_dep(f->s, &a);
    r = new_res(a.uuid, "vm", 0);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    /* a constraint of the database that fails a write after its first row */
    raw_fail_inserts(f->path, "boom", "events", "NEW.message LIKE '%boom%'");
    raw_fail_inserts(f->path, "cb", "deployments", "NEW.callback = 'http://fail.example/'");
    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &b);
    /* ECONFLICT: version */
    assert_int_equal(
        orc_store_deployment_set_status(f->s, a.uuid, 5, ORC_DEP_CREATE_COMPLETE, NULL, NULL),
        ORC_ECONFLICT);
    /* ENOTFOUND: rows that are not there, and a parent that is not there */
    assert_int_equal(orc_store_resource_set_state(f->s, NO_SUCH_UUID, 0, ORC_RES_CREATING, NULL),
                     ORC_ENOTFOUND);
    orphan = new_res(NO_SUCH_UUID, "vm", 0);
    assert_int_equal(orc_store_resource_insert(f->s, &orphan), ORC_ENOTFOUND);
    assert_int_equal(orc_store_attempt_end(f->s, a.uuid, 3, false, "x"), ORC_ENOTFOUND);
    assert_int_equal(orc_store_meta_delete(f->s, "absent"), ORC_ENOTFOUND);
    assert_int_equal(orc_store_deployment_delete(f->s, NO_SUCH_UUID), ORC_ENOTFOUND);
    assert_int_equal(orc_store_resource_delete(f->s, NO_SUCH_UUID, NULL), ORC_ENOTFOUND);
    memcpy(ev.deployment_uuid, NO_SUCH_UUID, ORC_UUID_LEN);
    assert_int_equal(orc_store_event_append(f->s, &ev), ORC_ENOTFOUND);
    /* unique keys */
    dup = new_res(a.uuid, "vm", 0);
    assert_int_equal(orc_store_resource_insert(f->s, &dup), ORC_ECONFLICT);
    assert_int_equal(orc_store_attempt_start(f->s, a.uuid, 1, "site-a"), 0);
    assert_int_equal(orc_store_attempt_start(f->s, a.uuid, 1, "site-b"), ORC_ECONFLICT);
    /* a batch whose items fail alone, inside the group */
    batch[1].callback = (char *)"http://fail.example/";
    assert_int_equal(orc_store_insert_deployments_batch(f->s, batch, 3, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], ORC_ECONFLICT);
    assert_int_equal(rcs[2], 0);
    /* the group is intact: a's version is still 1 */
    assert_true(orc_store_group_active(f->s));
    assert_int_equal(
        orc_store_deployment_set_status(f->s, a.uuid, 1, ORC_DEP_CREATE_COMPLETE, NULL, &ver), 0);
    assert_int_equal(ver, 2);
    assert_int_equal(orc_store_group_writes(f->s), 14);
    assert_int_equal(orc_store_group_commit(f->s), 0);

    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 4);
    assert_int_equal(dep_version_raw(f->path, a.uuid), 2);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"
                                      " WHERE status = 'CREATE_COMPLETE'"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM site_attempts"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events WHERE message LIKE '%boom%'"
                                      " OR type = 'engine.note'"),
                     0);
    /* a: created, resource.created, attempt.started, status */
    assert_int_equal(count_events(f->s, a.uuid, NULL), 4);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 4 + 3);
    assert_string_equal(batch[1].uuid, "");
}

/* The engine's hot writes (resource insert and update, attempts, deployment
 * updates) run in a group without a savepoint: the only statement of theirs
 * that can fail on its own is the first that changes something. Should a
 * later one fail all the same (here a trigger, as a failing disk would), the
 * group cannot be trusted and is lost: nothing of it is stored. */
static void group_write_failing_after_its_row_loses_the_group(void **state)
{
    struct fx *f = *state;
    orc_deployment_t a = new_dep("iss", "a", NULL), b = new_dep("iss", "b", NULL);

    insert_dep(f->s, &a);
    raw_fail_inserts(f->path, "boom", "events", "NEW.message LIKE '%boom%'");
    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &b);
    assert_true(
        orc_store_deployment_set_status(f->s, a.uuid, 1, ORC_DEP_CREATE_FAILED, "boom", NULL) < 0);
    assert_non_null(strstr(orc_store_errmsg(f->s), "injected"));
    assert_true(orc_store_deployment_set_status(f->s, a.uuid, 0, ORC_DEP_CREATE_COMPLETE, NULL,
                                                NULL) < 0); /* the group is gone */
    assert_true(orc_store_group_commit(f->s) < 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 1);
    assert_int_equal(dep_version_raw(f->path, a.uuid), 1);
}

/* Sets the soft limit on file sizes (RLIMIT_FSIZE): a write past it fails
 * with EFBIG, as on a full disk. Returns the previous limit. */
static struct rlimit limit_file_size(rlim_t bytes)
{
    struct rlimit old, lim;

    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = bytes;
    fflush(stdout); /* nothing may be written to a redirected stdout meanwhile */
    fflush(stderr);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    return old;
}

static off_t wal_size(const char *db_path)
{
    char wal[400];
    struct stat st;

    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    assert_int_equal(stat(wal, &st), 0);
    return st.st_size;
}

static void group_commit_failure_rolls_back(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    orc_deployment_t a = new_dep("iss", "a", NULL), b = new_dep("iss", "b", NULL);
    orc_deployment_t c = new_dep("iss", "c", NULL);
    orc_deployment_t *got = NULL;
    orc_resource_t r;
    void (*old_handler)(int);
    struct rlimit old;
    int rc;

    insert_dep(f->s, &a);
    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &b);
    assert_int_equal(
        orc_store_deployment_set_status(f->s, a.uuid, 1, ORC_DEP_CREATE_COMPLETE, NULL, NULL), 0);
    r = new_res(a.uuid, "vm", 0);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    /* the group's pages are still in memory: the commit appends them to the
     * WAL, and the WAL may not grow (as on a full disk) */
    old_handler = signal(SIGXFSZ, SIG_IGN);
    old = limit_file_size((rlim_t)wal_size(f->path));
    rc = orc_store_group_commit(f->s);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);

    assert_int_equal(rc, ORC_EIO);
    assert_non_null(strstr(orc_store_errmsg(f->s), "group of 3 writes was rolled back"));
    assert_non_null(strstr(orc_store_errmsg(f->s), "commit"));
    assert_false(orc_store_group_active(f->s));
    /* none of it is stored, for this handle as for another connection */
    assert_int_equal(orc_store_deployment_get(f->s, b.uuid, &got), ORC_ENOTFOUND);
    assert_int_equal(orc_store_deployment_get(f->s, a.uuid, &got), 0);
    assert_int_equal(got->status, ORC_DEP_CREATE_IN_PROGRESS);
    assert_int_equal(got->version, 1);
    orc_deployment_free(got);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM resources"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM events"), 1);
    /* the handle goes on: a new group commits */
    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &c);
    assert_int_equal(orc_store_group_commit(f->s), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 2);
}

/* A progress handler that interrupts the statement running when it fires:
 * SQLite then rolls the whole transaction back. */
static int interrupt_once(void *ud)
{
    int *shots = ud;

    return (*shots)-- > 0;
}

static void group_lost_midway_fails_the_rest(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    struct sq_store *q = (struct sq_store *)f->s;
    orc_deployment_t a = new_dep("iss", "a", NULL), b = new_dep("iss", "b", NULL);
    orc_deployment_t c = new_dep("iss", "c", NULL);
    orc_deployment_t *got = NULL;
    int shots = 1;

    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &a);
    sqlite3_progress_handler(q->db, 1, interrupt_once, &shots);
    assert_int_equal(orc_store_deployment_insert(f->s, &b), ORC_ECANCELED);
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    assert_string_equal(b.uuid, "");
    /* the group is open but lost: later writes fail at once, reads work */
    assert_true(orc_store_group_active(f->s));
    assert_int_equal(orc_store_deployment_insert(f->s, &c), ORC_ECANCELED);
    assert_non_null(strstr(orc_store_errmsg(f->s), "rolled back"));
    assert_int_equal(orc_store_deployment_get(f->s, a.uuid, &got), ORC_ENOTFOUND);
    assert_int_equal(orc_store_group_commit(f->s), ORC_ECANCELED);
    assert_non_null(strstr(orc_store_errmsg(f->s), "group of 3 writes was rolled back"));
    assert_non_null(strstr(orc_store_errmsg(f->s), "interrupted"));
    assert_false(orc_store_group_active(f->s));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 0);
    /* and then writes are durable on their own again */
    insert_dep(f->s, &c);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"), 1);
}

struct hook_count {
    int calls;
    bool saw_group;
};

static void count_hook(orc_store_t *s, void *ud)
{
    struct hook_count *h = ud;

    h->calls++;
    h->saw_group = orc_store_group_active(s);
}

static void group_calls_and_hook(void **state)
{
    struct fx *f = *state;
    orc_deployment_t a = new_dep("iss", "a", NULL), bad = new_dep("iss", NULL, NULL);
    orc_deployment_t *got = NULL;
    struct hook_count h = {0};
    char err[256];

    /* misuse */
    assert_int_equal(orc_store_group_commit(f->s), ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "no group"));
    assert_int_equal(orc_store_group_begin(f->s), 0);
    assert_int_equal(orc_store_group_begin(f->s), ORC_ECONFLICT);
    assert_true(orc_store_group_active(f->s));
    assert_int_equal(orc_store_group_commit(f->s), 0); /* an empty group */
    assert_int_equal(orc_store_group_begin(NULL), ORC_EINVAL);
    assert_int_equal(orc_store_group_commit(NULL), ORC_EINVAL);
    assert_false(orc_store_group_active(NULL));
    assert_int_equal(orc_store_group_writes(NULL), 0);
    orc_store_set_write_hook(NULL, count_hook, &h);

    /* the hook runs at the start of every write call, not of reads */
    orc_store_set_write_hook(f->s, count_hook, &h);
    insert_dep(f->s, &a);
    assert_int_equal(orc_store_deployment_insert(f->s, &bad), ORC_EINVAL);
    assert_int_equal(orc_store_deployment_get(f->s, a.uuid, &got), 0);
    orc_deployment_free(got);
    assert_int_equal(h.calls, 2);
    assert_false(h.saw_group);
    assert_int_equal(orc_store_group_begin(f->s), 0);
    assert_int_equal(orc_store_meta_set(f->s, "k", "v"), 0);
    assert_int_equal(orc_store_deployment_insert(f->s, &bad), ORC_EINVAL);
    assert_int_equal(h.calls, 4);
    assert_true(h.saw_group);
    assert_int_equal(orc_store_group_writes(f->s), 2); /* refused calls count too */
    orc_store_set_write_hook(f->s, NULL, &h);
    assert_int_equal(orc_store_meta_set(f->s, "k", "w"), 0);
    assert_int_equal(h.calls, 4);
    /* close commits an open group */
    orc_store_close(f->s);
    f->s = NULL;
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM meta WHERE value = 'w'"), 1);
    assert_int_equal(orc_store_open(f->path, &f->s, err, sizeof(err)), 0);
}

/* ---- scale-in and the deployed specification --------------------------------------------------
 */

static void resource_delete_scale_in(void **state)
{
    struct fx *f = *state;
    orc_deployment_t d = new_dep("iss", "s", NULL);
    orc_resource_t rs[3];
    orc_resource_t *got = NULL;
    orc_resource_list_t l;
    orc_res_query_t q = {0};
    orc_event_list_t ev;

    insert_dep(f->s, &d);
    for (int i = 0; i < 3; i++)
        rs[i] = new_res(d.uuid, "worker", i);
    assert_int_equal(orc_store_resources_insert(f->s, rs, 3), 0);
    assert_int_equal(orc_store_resource_set_state(f->s, rs[2].uuid, 1, ORC_RES_STARTED, NULL), 0);
    assert_int_equal(orc_store_resource_delete(f->s, rs[2].uuid, NULL), 0);
    assert_int_equal(orc_store_resource_get(f->s, NULL, rs[2].uuid, &got), ORC_ENOTFOUND);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_string_equal(ev.items[ev.count - 1].type, "resource.deleted");
    assert_string_equal(ev.items[ev.count - 1].message, "node worker[2] removed");
    assert_string_equal(json_string_value(json_object_get(ev.items[ev.count - 1].data, "resource")),
                        rs[2].uuid);
    assert_string_equal(json_string_value(json_object_get(ev.items[ev.count - 1].data, "state")),
                        "STARTED");
    orc_event_list_clear(&ev);
    /* a message of the caller's */
    assert_int_equal(orc_store_resource_delete(f->s, rs[1].uuid, "scaled in to 1"), 0);
    assert_int_equal(orc_store_event_list(f->s, d.uuid, 0, 0, &ev), 0);
    assert_string_equal(ev.items[ev.count - 1].message, "scaled in to 1");
    orc_event_list_clear(&ev);
    /* gone twice: ENOTFOUND and no event */
    assert_int_equal(orc_store_resource_delete(f->s, rs[1].uuid, NULL), ORC_ENOTFOUND);
    assert_non_null(strstr(orc_store_errmsg(f->s), "doesn't exist"));
    assert_int_equal(count_events(f->s, d.uuid, "resource.deleted"), 2);
    assert_int_equal(orc_store_resource_delete(f->s, "nope", NULL), ORC_EINVAL);
    assert_int_equal(orc_store_resource_delete(f->s, NULL, NULL), ORC_EINVAL);
    q.deployment_uuid = d.uuid;
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), 0);
    assert_int_equal(l.total, 1);
    assert_string_equal(l.items[0].uuid, rs[0].uuid);
    orc_resource_list_clear(&l);
    /* the index is free again: scale out re-creates worker[1] */
    rs[1] = new_res(d.uuid, "worker", 1);
    assert_int_equal(orc_store_resource_insert(f->s, &rs[1]), 0);
    /* one transaction: a failing event keeps the row */
    raw_fail_inserts(f->path, "no_del", "events", "NEW.type = 'resource.deleted'");
    assert_int_equal(orc_store_resource_delete(f->s, rs[0].uuid, NULL), ORC_ECONFLICT);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, rs[0].uuid, &got), 0);
    orc_resource_free(got);
}

static void resource_spec_round_trip_not_in_json(void **state)
{
    struct fx *f = *state;
    char long_spec[ORC_RES_SPEC_MAX + 2];
    orc_deployment_t d = new_dep("iss", "s", NULL);
    orc_resource_t r, none, v = {0};
    orc_resource_t *got = NULL;
    orc_resource_list_t l;
    orc_res_query_t q = {0};
    orc_res_update_t u = {.set = ORC_RES_F_SPEC, .values = &v};
    json_t *j = NULL;
    const char *key;
    json_t *val;

    insert_dep(f->s, &d);
    r = new_res(d.uuid, "vm", 0);
    r.spec = (char *)"sha256:1f2e3d";
    none = new_res(d.uuid, "vm", 1);
    assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
    assert_int_equal(orc_store_resource_insert(f->s, &none), 0);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, r.uuid, &got), 0);
    assert_string_equal(got->spec, "sha256:1f2e3d");
    /* not part of the API's resource */
    assert_int_equal(orc_resource_to_json(got, NULL, &j), 0);
    json_object_foreach(j, key, val)
    {
        assert_null(strstr(key, "spec"));
        if (json_is_string(val))
            assert_null(strstr(json_string_value(val), "1f2e3d"));
    }
    json_decref(j);
    orc_resource_free(got);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, none.uuid, &got), 0);
    assert_null(got->spec);
    orc_resource_free(got);
    /* written with its update bit, alone or with others; NULL clears */
    v.spec = (char *)"sha256:aaaa";
    u.uuid = none.uuid;
    assert_int_equal(orc_store_resource_update(f->s, &u, NULL), 0);
    u.uuid = r.uuid;
    u.set = ORC_RES_F_STATE;
    v.state = ORC_RES_CREATED;
    assert_int_equal(orc_store_resource_update(f->s, &u, NULL), 0); /* keeps the spec */
    q.deployment_uuid = d.uuid;
    q.oldest_first = true;
    assert_int_equal(orc_store_resource_list(f->s, &q, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].spec, "sha256:1f2e3d");
    assert_string_equal(l.items[1].spec, "sha256:aaaa");
    orc_resource_list_clear(&l);
    u.set = ORC_RES_F_SPEC;
    v.spec = NULL;
    assert_int_equal(orc_store_resource_update(f->s, &u, NULL), 0);
    assert_int_equal(orc_store_resource_get(f->s, d.uuid, r.uuid, &got), 0);
    assert_null(got->spec);
    assert_int_equal(got->state, ORC_RES_CREATED);
    orc_resource_free(got);
    /* bad input */
    memset(long_spec, 'x', sizeof(long_spec) - 1);
    long_spec[sizeof(long_spec) - 1] = '\0';
    v.spec = long_spec;
    assert_int_equal(orc_store_resource_update(f->s, &u, NULL), ORC_EINVAL);
    assert_non_null(strstr(orc_store_errmsg(f->s), "spec"));
    v.spec = (char *)"";
    assert_int_equal(orc_store_resource_update(f->s, &u, NULL), ORC_EINVAL);
    none = new_res(d.uuid, "vm", 2);
    none.spec = long_spec;
    assert_int_equal(orc_store_resource_insert(f->s, &none), ORC_EINVAL);
    long_spec[ORC_RES_SPEC_MAX] = '\0'; /* exactly the limit */
    assert_int_equal(orc_store_resource_insert(f->s, &none), 0);
}

/* A database as the previous schema (version 1) left it: the shipped step 1,
 * run by hand, with rows in it. */
static void migration_from_schema_1(void **state)
{
    SQLITE_ONLY();
    struct fx *f = *state;
    char path[400], err[256] = "", sql[1024];
    const char *dep = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b";
    const char *res = "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2c";
    orc_store_t *s = NULL;
    orc_store_info_t info;
    orc_resource_t *got = NULL;
    orc_resource_t v = {.spec = (char *)"sha256:beef"};
    orc_res_update_t u = {.uuid = res, .set = ORC_RES_F_SPEC, .values = &v};

    snprintf(path, sizeof(path), "%s/v1.db", f->dir);
    raw_exec(path, orc__sq_migrations[0].sql);
    snprintf(sql, sizeof(sql),
             "PRAGMA user_version = 1; PRAGMA application_id = 1330791240;"
             "INSERT INTO deployments (uuid, status, created_by_issuer, created_by_subject,"
             " created_ms, updated_ms) VALUES ('%s', 'CREATE_COMPLETE', 'i', 's', 1, 1);"
             "INSERT INTO deployment_templates (deployment_uuid, template) VALUES ('%s', 't');"
             "INSERT INTO resources (uuid, deployment_uuid, node_name, node_type, state,"
             " created_ms, updated_ms) VALUES ('%s', '%s', 'vm', 'T', 'STARTED', 1, 1)",
             dep, dep, res, dep);
    raw_exec(path, sql);
    assert_int_equal(raw_int(path, "SELECT count(*) FROM pragma_table_info('resources')"
                                   " WHERE name = 'spec'"),
                     0);

    assert_int_equal(orc_store_open(path, &s, err, sizeof(err)), 0);
    orc_store_info(s, &info);
    assert_int_equal(info.schema_version, 4);
    assert_int_equal(info.migrations_applied, 3); /* steps 2 to 4 */
    assert_int_equal(raw_int(path, "PRAGMA user_version"), 4);
    assert_int_equal(orc_store_resource_get(s, dep, res, &got), 0);
    assert_string_equal(got->node_name, "vm");
    assert_int_equal(got->state, ORC_RES_STARTED);
    assert_null(got->spec);
    orc_resource_free(got);
    assert_int_equal(orc_store_resource_update(s, &u, NULL), 0);
    orc_store_close(s);
    s = NULL;
    /* reopened: nothing more to migrate, the spec is there */
    assert_int_equal(orc_store_open(path, &s, err, sizeof(err)), 0);
    orc_store_info(s, &info);
    assert_int_equal(info.migrations_applied, 0);
    assert_int_equal(orc_store_resource_get(s, NULL, res, &got), 0);
    assert_string_equal(got->spec, "sha256:beef");
    orc_resource_free(got);
    orc_store_close(s);
}

/* ---- throughput (figures only) ----------------------------------------------------------------
 */

static void throughput_single_vs_batched(void **state)
{
    struct fx *f = *state;
    enum { SINGLE = 200, BATCH = 100, BATCHES = 20 };
    orc_deployment_t *ds = calloc(BATCH, sizeof(*ds));
    int rcs[BATCH];
    double t0, single, batched;

    assert_non_null(ds);
    t0 = now_s();
    for (int i = 0; i < SINGLE; i++) {
        orc_deployment_t d = new_dep("iss", "bench", NULL);
        insert_dep(f->s, &d);
    }
    single = SINGLE / (now_s() - t0);
    t0 = now_s();
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++)
            ds[i] = new_dep("iss", "bench", NULL);
        assert_int_equal(orc_store_insert_deployments_batch(f->s, ds, BATCH, rcs), 0);
        for (int i = 0; i < BATCH; i++)
            assert_int_equal(rcs[i], 0);
    }
    batched = BATCH * BATCHES / (now_s() - t0);
    printf("store: inserts, each with its event (%s): single %.0f/s, batched by %d %.0f/s "
           "(x%.1f)\n",
           pg_url ? "PostgreSQL testbed on loopback, fsync off" : "SQLite WAL, synchronous=FULL",
           single, BATCH, batched, batched / single);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM deployments"),
                     SINGLE + BATCH * BATCHES);
    free(ds);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    orc_log_set_level(ORC_LOG_WARN); /* no "schema migration" line per test */
    const struct CMUnitTest tests[] = {
        T(open_creates_folder_file_and_wal),
        T(reopen_does_not_migrate_again),
        T(newer_schema_is_refused),
        T(foreign_files_are_refused),
        T(migration_is_one_transaction),
        cmocka_unit_test(open_bad_targets),
        cmocka_unit_test(enum_names_and_parsing),
        T(deployment_insert_and_get),
        T(deployment_bad_input),
        T(deployment_list_paging),
        T(deployment_list_filters_and_sorts),
        T(deployment_update_fields),
        T(deployment_version_conflict),
        T(deployment_put_spec),
        T(deployment_delete_and_mark_deleted),
        T(deployment_recovery_list),
        T(failed_event_rolls_back_status),
        T(failed_event_rolls_back_insert),
        T(failed_event_rolls_back_resource_state),
        T(batch_insert_items_fail_alone),
        T(busy_database_is_eagain),
        T(durable_without_close),
        T(resources_insert_get_list),
        T(resources_insert_is_all_or_nothing),
        T(resources_update),
        T(events_append_and_resume),
        T(attempts_and_reason),
        T(meta_key_value),
        T(meta_list_by_prefix),
        T(json_deployment_as_api),
        T(json_resource_and_event_as_api),
        T(group_writes_invisible_until_commit),
        T(group_failed_writes_leave_no_trace),
        T(group_write_failing_after_its_row_loses_the_group),
        T(group_commit_failure_rolls_back),
        T(group_lost_midway_fails_the_rest),
        T(group_calls_and_hook),
        T(resource_delete_scale_in),
        T(site_resource_count),
        T(resource_spec_round_trip_not_in_json),
        T(migration_from_schema_1),
        T(leases_acquire_renew_release),
        T(leases_expire_and_are_claimed),
        T(leases_claims_never_overlap),
        T(throughput_single_vs_batched),
    };

    struct tb_pg pg;
    int failed = cmocka_run_group_tests_name("store on sqlite", tests, NULL, NULL);

    if (!tb_pg_start_or_say(&pg))
        return 1;
    pg_url = pg.url;
    failed += cmocka_run_group_tests_name("store on postgresql", tests, NULL, NULL);
    pg_url = NULL;
    tb_pg_stop(&pg);
    return failed;
}
