/*
 * All SQL of the SQLite backend in one place: the schema migrations (append
 * only: a step that shipped is never edited, a change is a new step) and the
 * statements the backend prepares once per connection. Every value reaches
 * SQLite through a bound parameter (?N); nothing here is ever formatted with
 * user data. The statements' column orders are what the row readers in
 * sqlite_deployments.c and sqlite_resources.c expect.
 *
 * The enum CHECKs are OR chains on purpose: SQLite evaluates "x IN (list of
 * more than two constants)" by building a temporary index on every
 * execution, which cost about a tenth of an insert.
 */
#include "sqlite_internal.h"

/* ---- migrations ------------------------------------------------------------ */

static const char schema_v1[] =
    "CREATE TABLE deployments ("
    "  uuid                    TEXT PRIMARY KEY NOT NULL,"
    "  status                  TEXT NOT NULL CHECK (status = 'CREATE_IN_PROGRESS'"
    "                            OR status = 'CREATE_COMPLETE' OR status = 'CREATE_FAILED'"
    "                            OR status = 'UPDATE_IN_PROGRESS' OR status = 'UPDATE_COMPLETE'"
    "                            OR status = 'UPDATE_FAILED' OR status = 'DELETE_IN_PROGRESS'"
    "                            OR status = 'DELETE_COMPLETE' OR status = 'DELETE_FAILED'"
    "                            OR status = 'UNKNOWN'),"
    "  status_reason           TEXT,"
    "  task                    TEXT NOT NULL DEFAULT 'NONE' CHECK (task = 'NONE'"
    "                            OR task = 'MONITORING' OR task = 'QOS' OR task = 'BROKERING'"
    "                            OR task = 'DMS' OR task = 'DEPLOYER' OR task = 'UNKNOWN'),"
    "  created_by_issuer       TEXT NOT NULL,"
    "  created_by_subject      TEXT NOT NULL,"
    "  user_group              TEXT,"
    "  callback                TEXT,"
    "  outputs                 TEXT," /* JSON object */
    "  physical_id             TEXT,"
    "  cloud_provider_name     TEXT,"
    "  cloud_provider_endpoint TEXT," /* JSON object */
    "  timeout_mins            INTEGER CHECK (timeout_mins >= 1),"
    "  provider_timeout_mins   INTEGER NOT NULL DEFAULT 14400"
    "                            CHECK (provider_timeout_mins >= 1),"
    "  max_providers_retry     INTEGER CHECK (max_providers_retry >= 1),"
    "  keep_last_attempt       INTEGER NOT NULL DEFAULT 0 CHECK (keep_last_attempt IN (0, 1)),"
    "  deleted                 INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),"
    "  version                 INTEGER NOT NULL DEFAULT 1,"
    "  created_ms              INTEGER NOT NULL,"
    "  updated_ms              INTEGER NOT NULL"
    ");"
    "CREATE INDEX deployments_owner ON deployments (created_by_issuer, created_by_subject);"
    "CREATE INDEX deployments_group ON deployments (user_group) WHERE user_group IS NOT NULL;"
    "CREATE INDEX deployments_status ON deployments (status);"
    /* the specification, apart so that lists never read the big texts */
    "CREATE TABLE deployment_templates ("
    "  deployment_uuid TEXT PRIMARY KEY NOT NULL"
    "                    REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  template        TEXT NOT NULL,"
    "  parameters      TEXT NOT NULL DEFAULT '{}'," /* JSON object */
    "  plan            TEXT"                        /* JSON */
    ");"
    "CREATE TABLE resources ("
    "  uuid            TEXT PRIMARY KEY NOT NULL,"
    "  deployment_uuid TEXT NOT NULL REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  node_name       TEXT NOT NULL,"
    "  node_type       TEXT NOT NULL,"
    "  instance_index  INTEGER NOT NULL DEFAULT 0 CHECK (instance_index >= 0),"
    "  state           TEXT NOT NULL CHECK (state = 'INITIAL' OR state = 'CREATING'"
    "                    OR state = 'CREATED' OR state = 'CONFIGURING' OR state = 'CONFIGURED'"
    "                    OR state = 'STARTING' OR state = 'STARTED' OR state = 'STOPPING'"
    "                    OR state = 'STOPPED' OR state = 'DELETING' OR state = 'ERROR'),"
    "  site_name       TEXT,"
    "  provider_name   TEXT,"
    "  physical_id     TEXT,"
    "  attributes      TEXT,"                       /* JSON object */
    "  metadata        TEXT,"                       /* JSON object */
    "  required_by     TEXT NOT NULL DEFAULT '[]'," /* JSON array of node names */
    "  version         INTEGER NOT NULL DEFAULT 1,"
    "  created_ms      INTEGER NOT NULL,"
    "  updated_ms      INTEGER NOT NULL,"
    "  UNIQUE (deployment_uuid, node_name, instance_index)"
    ");"
    "CREATE INDEX resources_type ON resources (deployment_uuid, node_type);"
    /* AUTOINCREMENT: ids are never reused, so SSE clients can resume by id */
    "CREATE TABLE events ("
    "  id              INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  deployment_uuid TEXT NOT NULL REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  time_ms         INTEGER NOT NULL,"
    "  type            TEXT NOT NULL,"
    "  message         TEXT NOT NULL DEFAULT '',"
    "  data            TEXT" /* JSON */
    ");"
    "CREATE INDEX events_deployment ON events (deployment_uuid, id);"
    "CREATE TABLE site_attempts ("
    "  deployment_uuid TEXT NOT NULL REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  attempt         INTEGER NOT NULL CHECK (attempt >= 1),"
    "  site_name       TEXT NOT NULL,"
    "  started_ms      INTEGER NOT NULL,"
    "  ended_ms        INTEGER," /* NULL while running */
    "  ok              INTEGER CHECK (ok IN (0, 1)),"
    "  error           TEXT,"
    "  PRIMARY KEY (deployment_uuid, attempt)"
    ") WITHOUT ROWID;"
    "CREATE TABLE meta ("
    "  key        TEXT PRIMARY KEY NOT NULL,"
    "  value      TEXT NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;";

/* the hash of the node specification a resource was last deployed with (the
 * engine restarts what changed); not part of the API's JSON */
static const char schema_v2[] = "ALTER TABLE resources ADD COLUMN spec TEXT;";

/* which daemon works on a deployment, until when (docs/store.md, Leases) */
static const char schema_v3[] =
    "ALTER TABLE deployments ADD COLUMN lease_owner TEXT;"
    "ALTER TABLE deployments ADD COLUMN lease_expires_ms INTEGER;"
    "CREATE INDEX deployments_lease ON deployments (lease_owner) WHERE lease_owner IS NOT NULL;";

/* the deployments not deleted, apart: lists and counts read them without the deleted ones
 * (which a store keeps for good) */
static const char schema_v4[] =
    "CREATE INDEX deployments_live ON deployments (uuid) WHERE deleted = 0;"
    "CREATE INDEX deployments_live_status ON deployments (status) WHERE deleted = 0;";

const struct orc__sq_migration orc__sq_migrations[] = {
    {"deployments, templates, resources, events, site attempts, meta", schema_v1},
    {"resources.spec: the node specification a resource was deployed with", schema_v2},
    {"deployments.lease_owner, lease_expires_ms: leases of several daemons", schema_v3},
    {"deployments_live, deployments_live_status: indexes of the deployments not deleted",
     schema_v4},
};
const int orc__sq_migration_count =
    (int)(sizeof(orc__sq_migrations) / sizeof(orc__sq_migrations[0]));

/* ---- statements -------------------------------------------------------------- */

/* column order read by sq_read_deployment() */
#define DEP_COLS                                                                                   \
    "d.uuid, d.status, d.status_reason, d.task, d.created_by_issuer, "                             \
    "d.created_by_subject, d.user_group, d.callback, d.outputs, d.physical_id, "                   \
    "d.cloud_provider_name, d.cloud_provider_endpoint, d.timeout_mins, "                           \
    "d.provider_timeout_mins, d.max_providers_retry, d.keep_last_attempt, "                        \
    "d.deleted, d.version, d.created_ms, d.updated_ms"

/* ?2 issuer, ?3 subject, ?4 group (NULL: any), ?5 ",S1,S2," excluded statuses; ?8 ?9 ?10
 * the viewer's issuer, subject and groups (a JSON array): only their own deployments and
 * their groups' (?8 NULL: everything). Those not deleted are read through the partial
 * index deployments_live (a store keeps every deleted deployment: a count must not scan
 * them); ?1 (include deleted) is bound to both and read by DEP_FILTER_ALL only. */
#define DEP_FILTER_LIVE " FROM deployments d WHERE d.deleted = 0" DEP_FILTER_REST
#define DEP_FILTER_ALL " FROM deployments d WHERE ?1" DEP_FILTER_REST
#define DEP_FILTER_REST                                                                            \
    " AND (?2 IS NULL OR d.created_by_issuer = ?2)"                                                \
    " AND (?3 IS NULL OR d.created_by_subject = ?3)"                                               \
    " AND (?4 IS NULL OR d.user_group = ?4)"                                                       \
    " AND instr(?5, ',' || d.status || ',') = 0"                                                \
    " AND (?8 IS NULL OR (d.created_by_issuer = ?8 AND d.created_by_subject = ?9)"                 \
    "      OR d.user_group IN (SELECT value FROM json_each(?10)))"

/* ?6 limit (-1: none), ?7 offset */
#define DEP_LIST(filter, order)                                                                    \
    "SELECT " DEP_COLS filter " ORDER BY " order " LIMIT ?6 OFFSET ?7"

/* column order read by sq_read_resource() */
#define RES_COLS                                                                                   \
    "r.uuid, r.deployment_uuid, r.node_name, r.node_type, r.instance_index, "                      \
    "r.state, r.site_name, r.provider_name, r.physical_id, r.attributes, "                         \
    "r.metadata, r.required_by, r.version, r.created_ms, r.updated_ms, r.spec"

#define RES_LIST(order)                                                                            \
    "SELECT " RES_COLS " FROM resources r WHERE r.deployment_uuid = ?1"                            \
    " AND (?2 IS NULL OR r.node_type = ?2) ORDER BY " order " LIMIT ?3 OFFSET ?4"

/* Updates write "col = CASE WHEN flag THEN value ELSE col END" for every
 * column: one statement updates any subset of the columns. */

const char *const orc__sq_sql[SQ__COUNT] = {
    [SQ_BEGIN] = "BEGIN IMMEDIATE",
    [SQ_BEGIN_READ] = "BEGIN DEFERRED",
    [SQ_COMMIT] = "COMMIT",
    [SQ_ROLLBACK] = "ROLLBACK",
    [SQ_SAVEPOINT] = "SAVEPOINT orc_item",
    [SQ_RELEASE] = "RELEASE orc_item",
    [SQ_ROLLBACK_TO] = "ROLLBACK TO orc_item",
    [SQ_W_SAVEPOINT] = "SAVEPOINT orc_write",
    [SQ_W_RELEASE] = "RELEASE orc_write",
    [SQ_W_ROLLBACK_TO] = "ROLLBACK TO orc_write",

    [SQ_DEP_INSERT] =
        "INSERT INTO deployments (uuid, status, status_reason, task, created_by_issuer,"
        " created_by_subject, user_group, callback, outputs, physical_id,"
        " cloud_provider_name, cloud_provider_endpoint, timeout_mins, provider_timeout_mins,"
        " max_providers_retry, keep_last_attempt, deleted, version, created_ms, updated_ms)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
        " 0, 1, ?17, ?17)",
    [SQ_TPL_INSERT] = "INSERT INTO deployment_templates (deployment_uuid, template, parameters,"
                      " plan) VALUES (?1, ?2, ?3, ?4)",
    [SQ_DEP_GET] = "SELECT " DEP_COLS ", t.template, t.parameters, t.plan FROM deployments d"
                   " LEFT JOIN deployment_templates t ON t.deployment_uuid = d.uuid"
                   " WHERE d.uuid = ?1",
    [SQ_DEP_GET_HEAD] = "SELECT " DEP_COLS " FROM deployments d WHERE d.uuid = ?1",
    [SQ_DEP_HEAD] = "SELECT version, status FROM deployments WHERE uuid = ?1",
    /* ?1 uuid, ?2 current version, ?3 now; then (flag, value) pairs */
    [SQ_DEP_UPDATE] = "UPDATE deployments SET"
                      " status = CASE WHEN ?4 THEN ?5 ELSE status END,"
                      " status_reason = CASE WHEN ?6 THEN ?7 ELSE status_reason END,"
                      " task = CASE WHEN ?8 THEN ?9 ELSE task END,"
                      " outputs = CASE WHEN ?10 THEN ?11 ELSE outputs END,"
                      " physical_id = CASE WHEN ?12 THEN ?13 ELSE physical_id END,"
                      " cloud_provider_name = CASE WHEN ?14 THEN ?15 ELSE cloud_provider_name END,"
                      " cloud_provider_endpoint = CASE WHEN ?16 THEN ?17"
                      "   ELSE cloud_provider_endpoint END,"
                      " callback = CASE WHEN ?18 THEN ?19 ELSE callback END,"
                      " timeout_mins = CASE WHEN ?20 THEN ?21 ELSE timeout_mins END,"
                      " provider_timeout_mins = CASE WHEN ?20 THEN ?22"
                      "   ELSE provider_timeout_mins END,"
                      " max_providers_retry = CASE WHEN ?20 THEN ?23 ELSE max_providers_retry END,"
                      " keep_last_attempt = CASE WHEN ?20 THEN ?24 ELSE keep_last_attempt END,"
                      " deleted = CASE WHEN ?25 THEN ?26 ELSE deleted END,"
                      " version = version + 1, updated_ms = ?3"
                      " WHERE uuid = ?1 AND version = ?2 RETURNING version",
    /* ?1 uuid; then (flag, value) pairs */
    [SQ_TPL_UPDATE] = "UPDATE deployment_templates SET"
                      " template = CASE WHEN ?2 THEN ?3 ELSE template END,"
                      " parameters = CASE WHEN ?4 THEN ?5 ELSE parameters END,"
                      " plan = CASE WHEN ?6 THEN ?7 ELSE plan END"
                      " WHERE deployment_uuid = ?1",
    [SQ_DEP_DELETE] = "DELETE FROM deployments WHERE uuid = ?1",
    [SQ_DEP_EXISTS] = "SELECT 1 FROM deployments WHERE uuid = ?1",
    [SQ_DEP_COUNT] = "SELECT count(*)" DEP_FILTER_LIVE,
    [SQ_DEP_COUNT_ALL] = "SELECT count(*)" DEP_FILTER_ALL,
    ORC_STORE_DEP_LISTS(DEP_LIST, SQ_DEP_LIST, DEP_FILTER_LIVE)
        ORC_STORE_DEP_LISTS(DEP_LIST, SQ_DEP_LIST_ALL, DEP_FILTER_ALL)[SQ_DEP_IN_STATUS] =
            "SELECT " DEP_COLS " FROM deployments d WHERE d.deleted = 0"
            " AND instr(?1, ',' || d.status || ',') > 0 ORDER BY d.uuid ASC",

    [SQ_DEP_STATUS_COUNTS] = "SELECT status, count(*) FROM deployments WHERE deleted = 0"
                             " GROUP BY status",

    [SQ_RES_SITE_COUNT] = "SELECT count(*) FROM resources r JOIN deployments d"
                          " ON d.uuid = r.deployment_uuid WHERE r.site_name = ?1 AND d.deleted = 0",

    [SQ_RES_INSERT] =
        "INSERT INTO resources (uuid, deployment_uuid, node_name, node_type, instance_index,"
        " state, site_name, provider_name, physical_id, attributes, metadata, required_by,"
        " version, created_ms, updated_ms, spec)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13, ?13, ?14)",
    [SQ_RES_GET] = "SELECT " RES_COLS " FROM resources r WHERE r.uuid = ?1"
                   " AND (?2 IS NULL OR r.deployment_uuid = ?2)",
    [SQ_RES_HEAD] = "SELECT deployment_uuid, node_name, instance_index, version, state"
                    " FROM resources WHERE uuid = ?1",
    /* ?1 uuid, ?2 current version, ?3 now; then (flag, value) pairs */
    [SQ_RES_UPDATE] = "UPDATE resources SET"
                      " state = CASE WHEN ?4 THEN ?5 ELSE state END,"
                      " site_name = CASE WHEN ?6 THEN ?7 ELSE site_name END,"
                      " provider_name = CASE WHEN ?8 THEN ?9 ELSE provider_name END,"
                      " physical_id = CASE WHEN ?10 THEN ?11 ELSE physical_id END,"
                      " attributes = CASE WHEN ?12 THEN ?13 ELSE attributes END,"
                      " metadata = CASE WHEN ?14 THEN ?15 ELSE metadata END,"
                      " required_by = CASE WHEN ?16 THEN ?17 ELSE required_by END,"
                      " spec = CASE WHEN ?18 THEN ?19 ELSE spec END,"
                      " version = version + 1, updated_ms = ?3"
                      " WHERE uuid = ?1 AND (?2 = 0 OR version = ?2)"
                      " RETURNING version, deployment_uuid, node_name, instance_index, state",
    [SQ_RES_DELETE] = "DELETE FROM resources WHERE uuid = ?1",
    [SQ_RES_COUNT] = "SELECT count(*) FROM resources r WHERE r.deployment_uuid = ?1"
                     " AND (?2 IS NULL OR r.node_type = ?2)",
    [SQ_RES_LIST_NEWEST] = RES_LIST("r.uuid DESC"),
    [SQ_RES_LIST_OLDEST] = RES_LIST("r.uuid ASC"),

    [SQ_EVENT_INSERT] = "INSERT INTO events (deployment_uuid, time_ms, type, message, data)"
                        " VALUES (?1, ?2, ?3, ?4, ?5)",
    [SQ_EVENT_LIST] = "SELECT id, deployment_uuid, time_ms, type, message, data FROM events"
                      " WHERE deployment_uuid = ?1 AND id > ?2 ORDER BY id LIMIT ?3",

    [SQ_ATT_INSERT] = "INSERT INTO site_attempts (deployment_uuid, attempt, site_name,"
                      " started_ms) VALUES (?1, ?2, ?3, ?4)",
    [SQ_ATT_HEAD] = "SELECT site_name, ended_ms FROM site_attempts"
                    " WHERE deployment_uuid = ?1 AND attempt = ?2",
    [SQ_ATT_END] = "UPDATE site_attempts SET ended_ms = ?3, ok = ?4, error = ?5"
                   " WHERE deployment_uuid = ?1 AND attempt = ?2 AND ended_ms IS NULL",
    [SQ_ATT_LIST] = "SELECT deployment_uuid, attempt, site_name, started_ms, ended_ms, ok,"
                    " error FROM site_attempts WHERE deployment_uuid = ?1 ORDER BY attempt",

    /* ?1 uuid, ?2 owner, ?3 now, ?4 ttl */
    [SQ_LEASE_ACQUIRE] = "UPDATE deployments SET lease_owner = ?2, lease_expires_ms = ?3 + ?4"
                         " WHERE uuid = ?1 AND (lease_owner IS NULL OR lease_owner = ?2"
                         " OR lease_expires_ms < ?3) RETURNING 1",
    [SQ_LEASE_HOLDER] = "SELECT lease_owner, lease_expires_ms FROM deployments WHERE uuid = ?1",
    /* ?1 owner, ?2 now, ?3 ttl */
    [SQ_LEASE_RENEW] = "UPDATE deployments SET lease_expires_ms = ?2 + ?3"
                       " WHERE lease_owner = ?1 AND deleted = 0 RETURNING uuid, status, version",
    /* ?1 owner (NULL: not its own), ?2 now, ?3 ",S1,S2,", ?4 max */
    [SQ_LEASE_CANDIDATES] = "SELECT uuid, lease_owner FROM deployments WHERE deleted = 0"
                            " AND instr(?3, ',' || status || ',') > 0"
                            " AND (lease_owner IS NULL OR lease_owner = ?1"
                            " OR lease_expires_ms < ?2) ORDER BY uuid LIMIT ?4",
    /* ?1 uuid, ?2 owner, ?3 now, ?4 ttl */
    [SQ_LEASE_TAKE] = "UPDATE deployments SET lease_owner = ?2, lease_expires_ms = ?3 + ?4"
                      " WHERE uuid = ?1 RETURNING uuid, status, version",
    [SQ_LEASE_RELEASE] = "UPDATE deployments SET lease_owner = NULL, lease_expires_ms = NULL"
                         " WHERE uuid = ?1 AND lease_owner = ?2",

    [SQ_META_SET] = "INSERT INTO meta (key, value, updated_ms) VALUES (?1, ?2, ?3)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                    " updated_ms = excluded.updated_ms",
    [SQ_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [SQ_META_DELETE] = "DELETE FROM meta WHERE key = ?1",
    [SQ_META_LIST] = "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1"
                     " ORDER BY key",
};
