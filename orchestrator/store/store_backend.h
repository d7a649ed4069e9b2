/*
 * What a store backend implements (SQLite and PostgreSQL) and the
 * little it gets from store.c. store.c validates every argument (NULLs, uuid
 * syntax, enum ranges, JSON types) before it calls a slot, so that slots deal
 * only with storage; a slot maps its library's errors to ORC_E* codes at one
 * boundary function and explains failures with orc__store_failf().
 *
 * The handle: a backend's own struct starts with struct orc_store_s, which
 * store.c reads; ops->close frees the whole thing.
 *
 * Groups (orc_store_group_begin): store.c keeps the group's state in the
 * handle (open, writes, the error that broke it) and calls the write hook;
 * the backend opens and commits the group's transaction and runs each write
 * inside it as a savepoint (sqlite.c: orc__sq_begin / orc__sq_end).
 */
#ifndef ORC_STORE_BACKEND_H
#define ORC_STORE_BACKEND_H

#include "store.h"

#define ORC_STORE_ERRMSG_LEN 256

/* The list statements of a backend, one per orc_dep_sort_t at base + sort, each
 * LIST(filter, "ORDER BY terms") (both backends order the same way; d is deployments). */
/* clang-format off */
#define ORC_STORE_DEP_LISTS(LIST, base, filter)                                                    \
    [(base) + ORC_DEP_SORT_NEWEST] = LIST(filter, "d.uuid DESC"),                                  \
    [(base) + ORC_DEP_SORT_OLDEST] = LIST(filter, "d.uuid ASC"),                                   \
    [(base) + ORC_DEP_SORT_UPDATED_DESC] = LIST(filter, "d.updated_ms DESC, d.uuid DESC"),         \
    [(base) + ORC_DEP_SORT_UPDATED_ASC] = LIST(filter, "d.updated_ms ASC, d.uuid ASC"),            \
    [(base) + ORC_DEP_SORT_STATUS_ASC] = LIST(filter, "d.status ASC, d.uuid DESC"),                \
    [(base) + ORC_DEP_SORT_STATUS_DESC] = LIST(filter, "d.status DESC, d.uuid DESC"),
/* clang-format on */

struct orc_store_ops {
    const char *name;
    /* target is the backend-specific part ("PATH", ":memory:"). */
    int (*open)(const char *target, orc_store_t **out, char *err, size_t errlen);
    void (*close)(orc_store_t *s);

    int (*deployment_insert)(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs, bool batch);
    int (*deployment_get)(orc_store_t *s, const char *uuid, bool with_spec, orc_deployment_t **out);
    int (*deployment_list)(orc_store_t *s, const orc_dep_query_t *q, orc_deployment_list_t *out);
    int (*deployment_list_in_status)(orc_store_t *s, uint32_t statuses, orc_deployment_list_t *out);
    int (*deployment_counts)(orc_store_t *s, int64_t counts[ORC_DEP__COUNT]);
    int (*deployment_update)(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version);
    int (*deployment_delete)(orc_store_t *s, const char *uuid);

    int (*resources_insert)(orc_store_t *s, orc_resource_t *rs, size_t n);
    int (*resource_get)(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                        orc_resource_t **out);
    int (*resource_list)(orc_store_t *s, const orc_res_query_t *q, orc_resource_list_t *out);
    int (*resource_update)(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version);
    int (*resource_delete)(orc_store_t *s, const char *uuid, const char *event_message);
    int (*site_resource_count)(orc_store_t *s, const char *site, int64_t *count);

    int (*event_append)(orc_store_t *s, orc_event_t *ev);
    int (*event_list)(orc_store_t *s, const char *deployment_uuid, int64_t after_id, size_t limit,
                      orc_event_list_t *out);

    int (*attempt_start)(orc_store_t *s, const char *deployment_uuid, int attempt,
                         const char *site_name);
    int (*attempt_end)(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                       const char *error);
    int (*attempt_list)(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out);

    int (*lease_acquire)(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms);
    int (*lease_renew)(orc_store_t *s, const char *owner, int64_t ttl_ms, orc_lease_list_t *held);
    int (*lease_claim_expired)(orc_store_t *s, const char *owner, int64_t ttl_ms, uint32_t statuses,
                               size_t max, bool with_own, orc_lease_list_t *got);
    int (*lease_release)(orc_store_t *s, const char *uuid, const char *owner);

    /* NULL: the backend has no notifications (orc_store_listen is ORC_ENOTSUP) */
    int (*listen)(orc_store_t *s);
    int (*changes_fd)(orc_store_t *s);
    int (*changes_read)(orc_store_t *s, void (*fn)(void *ud, const char *uuid), void *ud);

    int (*meta_set)(orc_store_t *s, const char *key, const char *value);
    int (*meta_get)(orc_store_t *s, const char *key, char **value);
    int (*meta_delete)(orc_store_t *s, const char *key);
    int (*meta_list)(orc_store_t *s, const char *prefix, orc_meta_list_t *out);

    /* Group transactions: begin opens the one transaction of a group; commit
     * ends it (one disk sync) or, on failure, rolls it back. Called by
     * store.c with the group state already checked. */
    int (*group_begin)(orc_store_t *s);
    int (*group_commit)(orc_store_t *s);
    /* Commits that do not wait (NULL: the backend has none): send ends the open
     * group's transaction without waiting (0: sent; < 0: rolled back); answer reads
     * the reply to it: block false returns 1 while it has not all arrived; else 0
     * (durable) or < 0 (rolled back, errmsg set). fd is the socket it arrives on. */
    int (*group_commit_send)(orc_store_t *s);
    int (*commit_answer)(orc_store_t *s, bool block);
    int (*commit_fd)(const orc_store_t *s);
    /* from another thread: stops the statement running now (store.h) */
    void (*interrupt)(orc_store_t *s);
};

/* The open group of writes of a handle (store.h, orc_store_group_begin). */
struct orc__store_group {
    bool open;
    size_t writes;                  /* write calls that joined it */
    int failed;                     /* 0, or the error that rolled the whole group back */
    char why[ORC_STORE_ERRMSG_LEN]; /* what broke it, for the commit's message */
};

/* A commit sent without waiting (orc_store_group_commit_send). */
struct orc__store_commit {
    bool pending;                   /* sent, its outcome not taken yet */
    bool answered;                  /* its answer arrived: rc holds it */
    int rc;                         /* 0 or the error that rolled it back */
    size_t writes;                  /* write calls of its group */
    char why[ORC_STORE_ERRMSG_LEN]; /* the failure's message */
};

struct orc_store_s {
    const struct orc_store_ops *ops;
    int schema_version;
    int migrations_applied;
    char last_uuid[ORC_UUID_LEN]; /* for strictly increasing UUIDv7s */
    char errmsg[ORC_STORE_ERRMSG_LEN];
    struct orc__store_group group;
    struct orc__store_commit commit;
    uint64_t connection_id; /* the backend adds 1 at each (re)connection */
    orc_store_write_hook_fn write_hook;
    void *write_hook_ud;
};

extern const struct orc_store_ops orc__store_sqlite_ops;
extern const struct orc_store_ops orc__store_pg_ops;

/* Writes a one-line explanation into s->errmsg and returns rc. */
int orc__store_failf(orc_store_t *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A new UUIDv7, strictly greater than every one this handle made before (so
 * that rows created in the same millisecond keep their order). */
int orc__store_new_uuid(orc_store_t *s, char out[ORC_UUID_LEN]);

/* Marks the open group as rolled back by rc (the backend's transaction is
 * gone): later writes of the group fail at once and the commit reports it. */
int orc__store_group_break(orc_store_t *s, int rc);

/* OFFSET of a page: page * size, capped at INT64_MAX (past every end). */
static inline int64_t orc__store_page_offset(uint32_t page, uint32_t size)
{
    uint64_t off = (uint64_t)page * size;

    return off > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)off;
}

/* Makes room for one more item in a growing array (capacity doubles). */
int orc__store_grow(void **items, size_t *cap, size_t count, size_t size);

/* The contents of an event a state change appends (backend_shared.c):
 * message is owned or the caller's; the data is data_text (JSON text) when
 * that is set, else data. */
struct orc__store_event {
    const char *type;
    const char *message;
    char *owned; /* message, when built here */
    json_t *data;
    char data_text[768];
};
void orc__store_event_clear(struct orc__store_event *ev);
/* The compare half of a deployment update: ORC_ECONFLICT (explained) when the
 * stored version or status is not what u expects. */
int orc__store_check_cas(orc_store_t *s, const orc_dep_update_t *u, int64_t version,
                         orc_dep_status_t status);
/* An insert error that belongs to one item of a batch (its data), not to the database. */
bool orc__store_item_error(int rc);
/* Event of a deployment's status: {"status": name, "version": n}. */
json_t *orc__store_status_data(orc_dep_status_t st, int64_t version);
/* The event of a deployment update (status to its new value); ORC_ENOMEM. */
int orc__store_update_event(const orc_dep_update_t *u, orc_dep_status_t status, int64_t version,
                            struct orc__store_event *ev);
/* attempt.started / attempt.ended; ORC_ENOMEM. */
int orc__store_attempt_event(int attempt, const char *site, const char *error, bool ended, bool ok,
                             struct orc__store_event *ev);
/* A resource's event: {"resource","node","index","state"}, message "vm[0]: CREATED"
 * unless given; ORC_ENOMEM. */
int orc__store_resource_event(const char *type, const char *uuid, const char *node, int index,
                              orc_res_state_t st, const char *message, struct orc__store_event *ev);

#endif
