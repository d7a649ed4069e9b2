/*
 * Lease slots of the PostgreSQL backend (store.h, Leases), by the database's
 * clock, so that daemons on machines whose clocks differ agree on when a lease
 * ends. Claims lock the rows they take (FOR UPDATE SKIP LOCKED): daemons that
 * claim at the same moment never get the same deployment.
 */
#include <string.h>

#include "pg_internal.h"

/* now, in milliseconds since the epoch, by the server's clock */
#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

static const char acquire_sql[] =
    "UPDATE deployments SET lease_owner = $2::text, lease_expires_ms = " NOW_MS " + $3::bigint"
    " WHERE uuid = $1::text AND (lease_owner IS NULL OR lease_owner = $2::text"
    " OR lease_expires_ms < " NOW_MS ") RETURNING 1";
static const char holder_sql[] = "SELECT lease_owner, lease_expires_ms - " NOW_MS
                                 " FROM deployments WHERE uuid = $1::text";
static const char renew_sql[] =
    "UPDATE deployments SET lease_expires_ms = " NOW_MS " + $2::bigint"
    " WHERE lease_owner = $1::text AND NOT deleted RETURNING uuid, status, version";
static const char claim_sql[] =
    "WITH c AS (SELECT uuid, lease_owner FROM deployments WHERE NOT deleted"
    " AND status = ANY ($3::text[]) AND (lease_owner IS NULL"
    " OR ($5::boolean AND lease_owner = $1::text)"
    " OR lease_expires_ms < " NOW_MS ") ORDER BY uuid LIMIT $4::bigint FOR UPDATE SKIP LOCKED)"
    " UPDATE deployments d SET lease_owner = $1::text, lease_expires_ms = " NOW_MS
    " + $2::bigint FROM c WHERE d.uuid = c.uuid"
    " RETURNING d.uuid, d.status, d.version, c.lease_owner";
static const char release_sql[] =
    "UPDATE deployments SET lease_owner = NULL, lease_expires_ms = NULL"
    " WHERE uuid = $1::text AND lease_owner = $2::text";

/* Why a lease could not be taken: the deployment is missing, or who holds it. */
static int holder_conflict(struct pg_store *q, const char *uuid)
{
    struct pg_params p = {0};
    PGresult *r;
    int rc;

    orc__pg_p_text(&p, 1, uuid);
    rc = orc__pg_exec(q, holder_sql, &p, "read lease", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    else if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ECONFLICT,
                              "the deployment %s is leased to %.64s for %lld ms more", uuid,
                              PQgetvalue(r, 0, 0), (long long)orc__pg_col_int(r, 0, 1));
    PQclear(r);
    return rc;
}

int orc__pg_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r = NULL;
    int rc = orc__pg_begin_lite(q);

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, owner);
    orc__pg_p_int(&p, 3, ttl_ms);
    if (rc == 0)
        rc = orc__pg_exec(q, acquire_sql, &p, "take lease", &r);
    if (rc == 0 && PQntuples(r) == 0)
        rc = holder_conflict(q, uuid);
    PQclear(r);
    return orc__pg_end_lite(q, rc);
}

/* Every row of r: uuid, status, version (and the previous owner when with_owner). */
static int read_leases(struct pg_store *q, const PGresult *r, bool with_owner,
                       orc_lease_list_t *l)
{
    int rows = PQntuples(r), rc = 0;

    if (rows == 0)
        return 0;
    l->items = orc_calloc((size_t)rows, sizeof(*l->items));
    if (l->items == NULL)
        return orc__store_failf(&q->base, ORC_ENOMEM, "leases: out of memory");
    for (int i = 0; rc == 0 && i < rows; i++) {
        orc_lease_t *it = &l->items[l->count++];
        const char *status = PQgetvalue(r, i, 1);
        rc = orc__pg_col_uuid(q, r, i, 0, it->uuid);
        if (rc == 0 && orc_dep_status_parse(status, &it->status) < 0)
            rc = orc__store_failf(&q->base, ORC_EFORMAT, "stored status '%.40s' is unknown",
                                  status);
        it->version = orc__pg_col_int(r, i, 2);
        if (rc == 0 && with_owner)
            rc = orc__pg_col_text(q, r, i, 3, &it->previous_owner);
    }
    return rc;
}

int orc__pg_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms, orc_lease_list_t *held)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r = NULL;
    int rc = orc__pg_begin(q);

    orc__pg_p_text(&p, 1, owner);
    orc__pg_p_int(&p, 2, ttl_ms);
    if (rc == 0)
        rc = orc__pg_exec(q, renew_sql, &p, "renew leases", &r);
    if (rc == 0)
        rc = read_leases(q, r, false, held);
    PQclear(r);
    return orc__pg_end(q, rc);
}

int orc__pg_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                uint32_t statuses, size_t max, bool with_own, orc_lease_list_t *got)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    PGresult *r = NULL;
    int rc = orc__pg_begin(q);

    orc__pg_p_text(&p, 1, owner);
    orc__pg_p_int(&p, 2, ttl_ms);
    orc__pg_p_status_set(&p, 3, statuses);
    orc__pg_p_int(&p, 4, max < INT64_MAX ? (int64_t)max : INT64_MAX);
    orc__pg_p_bool(&p, 5, with_own);
    if (rc == 0)
        rc = orc__pg_exec(q, claim_sql, &p, "claim leases", &r);
    if (rc == 0)
        rc = read_leases(q, r, true, got);
    PQclear(r);
    return orc__pg_end(q, rc);
}

int orc__pg_lease_release(orc_store_t *s, const char *uuid, const char *owner)
{
    struct pg_store *q = pg_of(s);
    struct pg_params p = {0};
    int rc = orc__pg_begin_lite(q); /* one UPDATE that refuses nothing: no savepoint */

    orc__pg_p_text(&p, 1, uuid);
    orc__pg_p_text(&p, 2, owner);
    if (rc == 0)
        rc = orc__pg_exec(q, release_sql, &p, "release lease", NULL);
    return orc__pg_end_lite(q, rc);
}
