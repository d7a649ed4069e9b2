/*
 * Lease slots of the SQLite backend (store.h, Leases): one daemon per file in
 * practice, but the same rules as on PostgreSQL, by this machine's clock, so
 * that the engine's lease logic runs the same way on both.
 */
#include <string.h>

#include "sqlite_internal.h"

/* Why a lease could not be taken: the deployment is missing, or who holds it. */
static int holder_conflict(struct sq_store *q, const char *uuid, int64_t now)
{
    struct sq_bind b = {.q = q};
    int rc = orc__sq_stmt(q, SQ_LEASE_HOLDER, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    rc = orc__sq_b_done(&b, "read lease");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "read lease");
    if (rc == 0)
        rc = orc__store_failf(&q->base, ORC_ENOTFOUND, "the deployment %s doesn't exist", uuid);
    else if (rc == 1)
        rc = orc__store_failf(&q->base, ORC_ECONFLICT,
                              "the deployment %s is leased to %.64s for %lld ms more", uuid,
                              (const char *)sqlite3_column_text(b.st, 0),
                              (long long)(sqlite3_column_int64(b.st, 1) - now));
    orc__sq_release(b.st);
    return rc;
}

static int acquire_body(struct sq_store *q, const char *uuid, const char *owner, int64_t ttl_ms)
{
    struct sq_bind b = {.q = q};
    int64_t now = orc_now_ms();
    int rc = orc__sq_stmt(q, SQ_LEASE_ACQUIRE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, uuid);
    orc__sq_b_text(&b, 2, owner);
    orc__sq_b_int(&b, 3, now);
    orc__sq_b_int(&b, 4, ttl_ms);
    rc = orc__sq_b_done(&b, "take lease");
    if (rc == 0)
        rc = orc__sq_step(q, b.st, "take lease");
    if (rc == 1)
        rc = orc__sq_step(q, b.st, "take lease") == 0 ? 1 : ORC_EIO; /* RETURNING to the end */
    orc__sq_release(b.st);
    if (rc == 0)
        return holder_conflict(q, uuid, now);
    return rc < 0 ? rc : 0;
}

int orc__sq_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms)
{
    struct sq_store *q = sq_of(s);
    int64_t changes;
    int rc = orc__sq_begin_lite(q, &changes);

    if (rc == 0)
        rc = acquire_body(q, uuid, owner, ttl_ms);
    return orc__sq_end_lite(q, rc, changes);
}

/* Appends the (uuid, status, version) row of st to l. */
static int read_lease(struct sq_store *q, sqlite3_stmt *st, orc_lease_list_t *l, size_t *cap)
{
    const char *status = (const char *)sqlite3_column_text(st, 1);
    orc_lease_t *it;
    int rc = orc__store_grow((void **)&l->items, cap, l->count, sizeof(*l->items));

    if (rc < 0)
        return orc__store_failf(&q->base, rc, "leases: out of memory");
    it = &l->items[l->count++];
    rc = orc__sq_col_uuid(q, st, 0, it->uuid);
    if (rc == 0 && orc_dep_status_parse(status, &it->status) < 0)
        rc = orc__store_failf(&q->base, ORC_EFORMAT, "stored status '%.40s' is unknown",
                              status ? status : "(null)");
    it->version = sqlite3_column_int64(st, 2);
    return rc;
}

static int renew_body(struct sq_store *q, const char *owner, int64_t ttl_ms,
                      orc_lease_list_t *held)
{
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_LEASE_RENEW, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, owner);
    orc__sq_b_int(&b, 2, orc_now_ms());
    orc__sq_b_int(&b, 3, ttl_ms);
    rc = orc__sq_b_done(&b, "renew leases");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "renew leases")) == 1)
        rc = read_lease(q, b.st, held, &cap);
    orc__sq_release(b.st);
    return rc;
}

int orc__sq_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms, orc_lease_list_t *held)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = renew_body(q, owner, ttl_ms, held);
    return orc__sq_end(q, rc);
}

/* The uuids (and owners) of up to max claimable deployments. */
static int candidates(struct sq_store *q, const char *owner, int64_t now, uint32_t statuses,
                      size_t max, bool with_own, orc_lease_list_t *out)
{
    char set[256];
    struct sq_bind b = {.q = q};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_LEASE_CANDIDATES, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_status_set(statuses, set, sizeof(set));
    orc__sq_b_text(&b, 1, with_own ? owner : NULL);
    orc__sq_b_int(&b, 2, now);
    orc__sq_b_text(&b, 3, set);
    orc__sq_b_int(&b, 4, max < INT64_MAX ? (int64_t)max : -1);
    rc = orc__sq_b_done(&b, "find leases");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "find leases")) == 1) {
        rc = orc__store_grow((void **)&out->items, &cap, out->count, sizeof(*out->items));
        if (rc == 0)
            rc = orc__sq_col_uuid(q, b.st, 0, out->items[out->count].uuid);
        if (rc == 0)
            rc = orc__sq_col_text(q, b.st, 1, &out->items[out->count].previous_owner);
        out->count += rc == 0;
    }
    orc__sq_release(b.st);
    return rc;
}

static int take(struct sq_store *q, orc_lease_t *it, const char *owner, int64_t now,
                int64_t ttl_ms)
{
    struct sq_bind b = {.q = q};
    orc_lease_list_t one = {0};
    size_t cap = 0;
    int rc = orc__sq_stmt(q, SQ_LEASE_TAKE, &b.st);

    if (rc < 0)
        return rc;
    orc__sq_b_text(&b, 1, it->uuid);
    orc__sq_b_text(&b, 2, owner);
    orc__sq_b_int(&b, 3, now);
    orc__sq_b_int(&b, 4, ttl_ms);
    rc = orc__sq_b_done(&b, "take lease");
    while (rc == 0 && (rc = orc__sq_step(q, b.st, "take lease")) == 1)
        rc = read_lease(q, b.st, &one, &cap);
    orc__sq_release(b.st);
    if (rc == 0 && one.count == 1) {
        it->status = one.items[0].status;
        it->version = one.items[0].version;
    }
    orc_lease_list_clear(&one);
    return rc;
}

static int claim_body(struct sq_store *q, const char *owner, int64_t ttl_ms, uint32_t statuses,
                      size_t max, bool with_own, orc_lease_list_t *got)
{
    int64_t now = orc_now_ms();
    int rc = candidates(q, owner, now, statuses, max, with_own, got);

    for (size_t i = 0; rc == 0 && i < got->count; i++)
        rc = take(q, &got->items[i], owner, now, ttl_ms);
    return rc;
}

int orc__sq_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                uint32_t statuses, size_t max, bool with_own, orc_lease_list_t *got)
{
    struct sq_store *q = sq_of(s);
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = claim_body(q, owner, ttl_ms, statuses, max, with_own, got);
    return orc__sq_end(q, rc);
}

int orc__sq_lease_release(orc_store_t *s, const char *uuid, const char *owner)
{
    struct sq_store *q = sq_of(s);
    struct sq_bind b = {.q = q};
    int rc = orc__sq_begin(q);

    if (rc == 0)
        rc = orc__sq_stmt(q, SQ_LEASE_RELEASE, &b.st);
    if (rc == 0) {
        orc__sq_b_text(&b, 1, uuid);
        orc__sq_b_text(&b, 2, owner);
        rc = orc__sq_b_done(&b, "release lease");
        if (rc == 0)
            rc = orc__sq_step(q, b.st, "release lease");
        orc__sq_release(b.st);
    }
    return orc__sq_end(q, rc);
}
