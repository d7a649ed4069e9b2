/*
 * The PostgreSQL backend's schema migrations: the SQLite backend's steps
 * (sqlite_sql.c), one for one, in PostgreSQL's types, so that a database of
 * either kind at version N holds the same tables, columns and constraints.
 * Append only: a step that shipped is never edited, a change is a new step
 * (in both backends).
 *
 * Texts that lists sort or compare (uuids, statuses) use the "C" collation:
 * byte order, as SQLite compares, whatever the database's locale. JSON is
 * kept as text (as written: jsonb would reorder keys).
 */
#include "pg_internal.h"

static const char schema_v1[] =
    "CREATE TABLE deployments ("
    "  uuid                    TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  status                  TEXT COLLATE \"C\" NOT NULL CHECK (status IN"
    "                            ('CREATE_IN_PROGRESS', 'CREATE_COMPLETE', 'CREATE_FAILED',"
    "                             'UPDATE_IN_PROGRESS', 'UPDATE_COMPLETE', 'UPDATE_FAILED',"
    "                             'DELETE_IN_PROGRESS', 'DELETE_COMPLETE', 'DELETE_FAILED',"
    "                             'UNKNOWN')),"
    "  status_reason           TEXT,"
    "  task                    TEXT NOT NULL DEFAULT 'NONE' CHECK (task IN ('NONE', 'MONITORING',"
    "                            'QOS', 'BROKERING', 'DMS', 'DEPLOYER', 'UNKNOWN')),"
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
    "  keep_last_attempt       BOOLEAN NOT NULL DEFAULT false,"
    "  deleted                 BOOLEAN NOT NULL DEFAULT false,"
    "  version                 BIGINT NOT NULL DEFAULT 1,"
    "  created_ms              BIGINT NOT NULL,"
    "  updated_ms              BIGINT NOT NULL"
    ");"
    "CREATE INDEX deployments_owner ON deployments (created_by_issuer, created_by_subject);"
    "CREATE INDEX deployments_group ON deployments (user_group) WHERE user_group IS NOT NULL;"
    "CREATE INDEX deployments_status ON deployments (status);"
    "CREATE TABLE deployment_templates ("
    "  deployment_uuid TEXT COLLATE \"C\" PRIMARY KEY NOT NULL"
    "                    REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  template        TEXT NOT NULL,"
    "  parameters      TEXT NOT NULL DEFAULT '{}',"
    "  plan            TEXT"
    ");"
    "CREATE TABLE resources ("
    "  uuid            TEXT COLLATE \"C\" PRIMARY KEY NOT NULL,"
    "  deployment_uuid TEXT COLLATE \"C\" NOT NULL"
    "                    REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  node_name       TEXT NOT NULL,"
    "  node_type       TEXT NOT NULL,"
    "  instance_index  INTEGER NOT NULL DEFAULT 0 CHECK (instance_index >= 0),"
    "  state           TEXT NOT NULL CHECK (state IN ('INITIAL', 'CREATING', 'CREATED',"
    "                    'CONFIGURING', 'CONFIGURED', 'STARTING', 'STARTED', 'STOPPING',"
    "                    'STOPPED', 'DELETING', 'ERROR')),"
    "  site_name       TEXT,"
    "  provider_name   TEXT,"
    "  physical_id     TEXT,"
    "  attributes      TEXT,"
    "  metadata        TEXT,"
    "  required_by     TEXT NOT NULL DEFAULT '[]',"
    "  version         BIGINT NOT NULL DEFAULT 1,"
    "  created_ms      BIGINT NOT NULL,"
    "  updated_ms      BIGINT NOT NULL,"
    "  UNIQUE (deployment_uuid, node_name, instance_index)"
    ");"
    "CREATE INDEX resources_type ON resources (deployment_uuid, node_type);"
    /* identity ids are never reused, so SSE clients can resume by id */
    "CREATE TABLE events ("
    "  id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  deployment_uuid TEXT COLLATE \"C\" NOT NULL"
    "                    REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  time_ms         BIGINT NOT NULL,"
    "  type            TEXT NOT NULL,"
    "  message         TEXT NOT NULL DEFAULT '',"
    "  data            TEXT"
    ");"
    "CREATE INDEX events_deployment ON events (deployment_uuid, id);"
    "CREATE TABLE site_attempts ("
    "  deployment_uuid TEXT COLLATE \"C\" NOT NULL"
    "                    REFERENCES deployments (uuid) ON DELETE CASCADE,"
    "  attempt         INTEGER NOT NULL CHECK (attempt >= 1),"
    "  site_name       TEXT NOT NULL,"
    "  started_ms      BIGINT NOT NULL,"
    "  ended_ms        BIGINT,"
    "  ok              BOOLEAN,"
    "  error           TEXT,"
    "  PRIMARY KEY (deployment_uuid, attempt)"
    ");"
    "CREATE TABLE meta ("
    "  key        TEXT PRIMARY KEY NOT NULL,"
    "  value      TEXT NOT NULL,"
    "  updated_ms BIGINT NOT NULL"
    ");";

static const char schema_v2[] = "ALTER TABLE resources ADD COLUMN spec TEXT;";

static const char schema_v3[] =
    "ALTER TABLE deployments ADD COLUMN lease_owner TEXT, ADD COLUMN lease_expires_ms BIGINT;"
    "CREATE INDEX deployments_lease ON deployments (lease_owner) WHERE lease_owner IS NOT NULL;";

static const char schema_v4[] =
    "CREATE INDEX deployments_live ON deployments (uuid) WHERE NOT deleted;"
    "CREATE INDEX deployments_live_status ON deployments (status) WHERE NOT deleted;";

const struct orc__pg_migration orc__pg_migrations[] = {
    {"deployments, templates, resources, events, site attempts, meta", schema_v1},
    {"resources.spec: the node specification a resource was deployed with", schema_v2},
    {"deployments.lease_owner, lease_expires_ms: leases of several daemons", schema_v3},
    {"deployments_live, deployments_live_status: indexes of the deployments not deleted",
     schema_v4},
};
const int orc__pg_migration_count =
    (int)(sizeof(orc__pg_migrations) / sizeof(orc__pg_migrations[0]));
