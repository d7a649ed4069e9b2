/*
 * The daemon's durable store: deployments (with their template, parameters
 * and plan), resources, events, site attempts and a small key/value table of
 * daemon metadata. The store is the truth of the orchestrator: every state
 * change is one transaction that also appends an event, and a call that
 * returned 0 is on disk (a 201 means the deployment survives a crash) --
 * unless a group is open (orc_store_group_begin): then the writes share one
 * transaction and are on disk when orc_store_group_commit returned 0 (the
 * daemon's loop does that through orc_commit, commit.h).
 *
 * One interface, several backends behind a vtable (store_backend.h): SQLite
 * is the embedded default ("path" or ":memory:"); PostgreSQL comes later
 * behind the same functions. Calls are synchronous and a handle is used by one
 * thread at a time (the loop thread today, maybe a worker later).
 *
 * Conventions of every function below:
 *  - 0 on success, a negative ORC_E* code on failure: ORC_EINVAL (bad
 *    argument: NULL, malformed uuid, enum out of range, wrong JSON type),
 *    ORC_ENOTFOUND (no such deployment/resource/attempt/key), ORC_ECONFLICT
 *    (version changed, status not allowed, duplicate), ORC_EAGAIN (database
 *    busy), ORC_EIO, ORC_ENOMEM, ORC_ELIMIT, ORC_EFORMAT (stored data or file
 *    not ours). orc_store_errmsg() then says what, in one line.
 *  - Records passed in are read only, except the generated fields named in
 *    each comment (uuid, status, version, times, ids), which are written into
 *    the caller's struct. The store never takes ownership of inputs.
 *  - Records and lists handed out are owned by the caller and released with
 *    the matching _free/_clear function (all NULL-safe).
 */
#ifndef ORC_STORE_H
#define ORC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "../base.h"

typedef struct orc_store_s orc_store_t;

/* ---- enumerations: the API's names, in a fixed order -------------------- */

/* Deployment status. Positions are bit numbers in status masks. */
#define ORC_DEP_STATUS_MAP(X)                                                                      \
    X(CREATE_IN_PROGRESS)                                                                          \
    X(CREATE_COMPLETE)                                                                             \
    X(CREATE_FAILED)                                                                               \
    X(UPDATE_IN_PROGRESS)                                                                          \
    X(UPDATE_COMPLETE)                                                                             \
    X(UPDATE_FAILED)                                                                               \
    X(DELETE_IN_PROGRESS)                                                                          \
    X(DELETE_COMPLETE)                                                                             \
    X(DELETE_FAILED)                                                                               \
    X(UNKNOWN)

typedef enum {
#define ORC__DEP_ENUM(name) ORC_DEP_##name,
    ORC_DEP_STATUS_MAP(ORC__DEP_ENUM)
#undef ORC__DEP_ENUM
        ORC_DEP__COUNT
} orc_dep_status_t;

#define ORC_DEP_MASK(st) (1u << (st))
/* every *_IN_PROGRESS status: what crash recovery re-drives */
#define ORC_DEP_MASK_IN_PROGRESS                                                                   \
    (ORC_DEP_MASK(ORC_DEP_CREATE_IN_PROGRESS) | ORC_DEP_MASK(ORC_DEP_UPDATE_IN_PROGRESS) |         \
     ORC_DEP_MASK(ORC_DEP_DELETE_IN_PROGRESS))

/* Deployment task (what the orchestrator is doing for it). */
#define ORC_TASK_MAP(X)                                                                            \
    X(NONE)                                                                                        \
    X(MONITORING)                                                                                  \
    X(QOS)                                                                                         \
    X(BROKERING)                                                                                   \
    X(DMS)                                                                                         \
    X(DEPLOYER)                                                                                    \
    X(UNKNOWN)

typedef enum {
#define ORC__TASK_ENUM(name) ORC_TASK_##name,
    ORC_TASK_MAP(ORC__TASK_ENUM)
#undef ORC__TASK_ENUM
        ORC_TASK__COUNT
} orc_task_t;

/* Resource (node instance) state. */
#define ORC_RES_STATE_MAP(X)                                                                       \
    X(INITIAL)                                                                                     \
    X(CREATING)                                                                                    \
    X(CREATED)                                                                                     \
    X(CONFIGURING)                                                                                 \
    X(CONFIGURED)                                                                                  \
    X(STARTING)                                                                                    \
    X(STARTED)                                                                                     \
    X(STOPPING)                                                                                    \
    X(STOPPED)                                                                                     \
    X(DELETING)                                                                                    \
    X(ERROR)

typedef enum {
#define ORC__RES_ENUM(name) ORC_RES_##name,
    ORC_RES_STATE_MAP(ORC__RES_ENUM)
#undef ORC__RES_ENUM
        ORC_RES__COUNT
} orc_res_state_t;

/* Names ("CREATE_COMPLETE"); NULL for a value out of range. */
const char *orc_dep_status_name(orc_dep_status_t st);
const char *orc_task_name(orc_task_t task);
const char *orc_res_state_name(orc_res_state_t st);
/* Parse an exact (case-sensitive) name. ORC_EINVAL if s is NULL or unknown. */
int orc_dep_status_parse(const char *s, orc_dep_status_t *out);
int orc_task_parse(const char *s, orc_task_t *out);
int orc_res_state_parse(const char *s, orc_res_state_t *out);
/* Parse "S1,S2,..." (the API's excludedStatus) into a mask of ORC_DEP_MASK
 * bits. Empty string: 0. ORC_EINVAL names nothing but the first bad item. */
int orc_dep_status_mask_parse(const char *list, uint32_t *mask);

/* ---- records ------------------------------------------------------------ */

/* Default of providerTimeoutMins when the request has none (API.md). */
#define ORC_DEFAULT_PROVIDER_TIMEOUT_MINS 14400

typedef struct orc_deployment_s {
    char uuid[ORC_UUID_LEN]; /* generated by insert (UUIDv7) */
    orc_dep_status_t status; /* insert sets CREATE_IN_PROGRESS */
    char *status_reason;     /* NULL: none */
    orc_task_t task;
    struct {
        char *issuer;  /* required */
        char *subject; /* required */
    } created_by;
    char *user_group; /* NULL: none */
    char *callback;   /* NULL: none */
    /* the specification; NULL in list results (only get fills them) */
    char *template_text; /* required on insert */
    json_t *parameters;  /* object; NULL on insert: {} */
    json_t *plan;        /* any JSON; NULL: none yet */
    /* results */
    json_t *outputs;                 /* object; NULL: none */
    char *physical_id;               /* NULL: none */
    char *cloud_provider_name;       /* NULL: none */
    json_t *cloud_provider_endpoint; /* object; NULL: none */
    /* options; 0 means "not set" */
    int timeout_mins;          /* overall deadline; 0: none */
    int provider_timeout_mins; /* per site; 0 on insert: 14400 */
    int max_providers_retry;   /* sites to try; 0: all */
    bool keep_last_attempt;
    bool deleted;       /* marked deleted: hidden from lists, kept on disk */
    int64_t version;    /* optimistic lock; 1 after insert, +1 per update */
    int64_t created_ms; /* set by insert */
    int64_t updated_ms; /* set by insert and every update */
} orc_deployment_t;

typedef struct orc_resource_s {
    char uuid[ORC_UUID_LEN];            /* generated by insert */
    char deployment_uuid[ORC_UUID_LEN]; /* required */
    char *node_name;                    /* TOSCA node template name; required */
    char *node_type;                    /* TOSCA type; required */
    int instance_index;                 /* >= 0; (deployment, node, index) is unique */
    orc_res_state_t state;
    char *site_name;     /* NULL: not placed yet */
    char *provider_name; /* driver name; NULL: none */
    char *physical_id;   /* id at the provider; NULL: none */
    json_t *attributes;  /* object (public_address, ...); NULL: none */
    json_t *metadata;    /* object; NULL: none */
    json_t *required_by; /* array of node names (strings); NULL: [] */
    char *spec;          /* hash of the node specification it was last deployed with
                            (at most ORC_RES_SPEC_MAX bytes); NULL: none. Not in the
                            API's JSON */
    int64_t version;     /* 1 after insert, +1 per update */
    int64_t created_ms;
    int64_t updated_ms;
} orc_resource_t;

typedef struct orc_event_s {
    int64_t id; /* increasing, never reused; set by append */
    char deployment_uuid[ORC_UUID_LEN];
    int64_t time_ms; /* 0 on append: now */
    char *type;      /* "deployment.status", "resource.state", ... */
    char *message;   /* one human line; NULL on append: "" */
    json_t *data;    /* any JSON; NULL: none */
} orc_event_t;

typedef enum { ORC_ATTEMPT_RUNNING, ORC_ATTEMPT_OK, ORC_ATTEMPT_FAILED } orc_attempt_result_t;

typedef struct orc_attempt_s {
    char deployment_uuid[ORC_UUID_LEN];
    int attempt; /* 1-based number chosen by the engine */
    char *site_name;
    int64_t started_ms;
    int64_t ended_ms; /* 0 while running */
    orc_attempt_result_t result;
    char *error; /* NULL unless failed */
} orc_attempt_t;

/* Lists live in caller storage; _clear frees the items and zeroes the list. */
typedef struct {
    orc_deployment_t *items;
    size_t count;
    int64_t total; /* rows matching the filter, ignoring paging */
} orc_deployment_list_t;

typedef struct {
    orc_resource_t *items;
    size_t count;
    int64_t total;
} orc_resource_list_t;

typedef struct {
    orc_event_t *items;
    size_t count;
} orc_event_list_t;

typedef struct {
    orc_attempt_t *items;
    size_t count;
} orc_attempt_list_t;

/* _clear frees what a record points to and zeroes it; _free also frees the
 * record itself (records returned by the get functions). NULL-safe. */
void orc_deployment_clear(orc_deployment_t *d);
void orc_deployment_free(orc_deployment_t *d);
void orc_resource_clear(orc_resource_t *r);
void orc_resource_free(orc_resource_t *r);
void orc_event_clear(orc_event_t *e);
void orc_event_free(orc_event_t *e);
void orc_attempt_clear(orc_attempt_t *a);
void orc_attempt_free(orc_attempt_t *a);
void orc_deployment_list_clear(orc_deployment_list_t *l);
void orc_resource_list_clear(orc_resource_list_t *l);
void orc_event_list_clear(orc_event_list_t *l);
void orc_attempt_list_clear(orc_attempt_list_t *l);

/* Builds a statusReason from the attempts, oldest first:
 * "site-a: error text; site-b: error text". Only failed attempts count.
 * Returns a new string ("" when none failed) or NULL on OOM. */
char *orc_attempt_list_reason(const orc_attempt_list_t *l);

/* ---- opening ------------------------------------------------------------ */

typedef struct {
    const char *backend;    /* "sqlite" */
    int schema_version;     /* after migrations */
    int migrations_applied; /* by this open (0 when the schema was current) */
} orc_store_info_t;

/* Opens the store named by target:
 *   "PATH" or "sqlite:PATH"   SQLite file; missing parent folders are created
 *                             (0700) and a new file gets mode 0600
 *   ":memory:"                SQLite in memory (tests; not durable)
 *   "postgres://..."          ORC_ENOTSUP for now
 * Sets WAL, synchronous=FULL, foreign keys and a busy timeout, then applies
 * the pending schema migrations in one transaction. A database whose schema
 * is newer than this code is refused with ORC_ENOTSUP; a file that is not an
 * orchestrator database with ORC_EFORMAT. On failure *out is NULL and err
 * (if not NULL, errlen bytes) holds one line saying why. */
int orc_store_open(const char *target, orc_store_t **out, char *err, size_t errlen);

/* Closes the handle and frees it. NULL-safe. Nothing is lost without it:
 * every returned call is already durable, except the writes of a group that
 * is still open, which close commits first (a failure is logged). */
void orc_store_close(orc_store_t *s);

/* Asks the statement running on s now to stop (it fails, ORC_ECANCELED on PostgreSQL);
 * nothing when none runs. The one call that may come from another thread than the one
 * using s (the store's reader threads are stopped this way, readers.h). NULL-safe. */
void orc_store_interrupt(orc_store_t *s);

/* One line about the last failure on this handle ("" after a success). */
const char *orc_store_errmsg(const orc_store_t *s);

void orc_store_info(const orc_store_t *s, orc_store_info_t *info);

/* ---- groups: one transaction and one disk sync for many writes --------- */

/* Opens a group: until orc_store_group_commit, every write call on this handle
 * runs inside one transaction. Each write stays all-or-nothing on its own (a
 * SAVEPOINT around it: a write that fails leaves the group as it was before
 * that call), reads on this handle see the group's writes, and nothing is
 * durable until the commit. The group holds the database's write lock until
 * then. If the database itself fails in the middle (I/O error, full disk,
 * out of memory: SQLite rolls the whole transaction back), the group is lost:
 * that write and every later one of the group fail with its error and the
 * commit reports it. ORC_ECONFLICT if a group is open; ORC_EAGAIN (busy) or
 * ORC_EIO if the transaction cannot start (no group is open then). */
int orc_store_group_begin(orc_store_t *s);
/* Commits the group with one disk sync. 0: everything of it is durable.
 * < 0: the group was rolled back, none of it is stored, and orc_store_errmsg
 * says why. Either way no group is open afterwards. ORC_EINVAL if none is
 * open. */
int orc_store_group_commit(orc_store_t *s);
bool orc_store_group_active(const orc_store_t *s);
size_t orc_store_group_writes(const orc_store_t *s); /* write calls that joined the open group */

/* Commits that do not wait for the database's answer (PostgreSQL): the loop goes on
 * with other work while the server syncs its log.
 *
 * orc_store_group_commit_send sends the open group's commit and returns at once: 0
 * when sent (no group is open any more; the commit is pending); < 0 when the group was
 * rolled back before it could be sent (as orc_store_group_commit's failure: nothing of
 * it is stored); ORC_ENOTSUP when this backend only commits with
 * orc_store_group_commit (SQLite: the group stays open, nothing happened).
 *
 * orc_store_commit_result, without blocking: 1 while the answer has not arrived
 * (watch orc_store_commit_fd for readability, then ask again); 0: the group is
 * durable; < 0: it was rolled back, orc_store_errmsg says why. Taking a final answer
 * ends the pending commit. orc_store_commit_wait blocks until the answer and takes it.
 * Both ORC_EINVAL when no commit is pending.
 *
 * Meanwhile the handle stays usable: any other call first waits for the answer (it
 * blocks then, as a commit of orc_store_group_commit would have). When that answer is
 * a failure, write calls fail with it until orc_store_commit_result (or _wait) took
 * it, so that no write builds on the writes that were lost before their owner learns
 * of it; reads go on. */
int orc_store_group_commit_send(orc_store_t *s);
bool orc_store_commit_pending(const orc_store_t *s);
int orc_store_commit_result(orc_store_t *s);
int orc_store_commit_wait(orc_store_t *s);
/* The socket whose readability may bring the pending commit's answer; -1 when none
 * is pending. It is the handle's connection: watch a dup() of it with a poll handle
 * of your own (another watcher, orc_store_changes_fd, may hold the descriptor), and
 * compare orc_store_connection_id before reusing one: a reconnection makes a new
 * socket, possibly under the same number. */
int orc_store_commit_fd(const orc_store_t *s);
uint64_t orc_store_connection_id(const orc_store_t *s);

/* Called at the start of every write call, before the call joins a group or
 * checks its arguments: the committer uses it to open the group of the
 * current loop iteration when none is open, and to commit a full group
 * early, between two write calls. The hook may call orc_store_group_begin and
 * orc_store_group_commit, never a write function. NULL removes it. */
typedef void (*orc_store_write_hook_fn)(orc_store_t *s, void *ud);
void orc_store_set_write_hook(orc_store_t *s, orc_store_write_hook_fn fn, void *ud);

/* ---- deployments -------------------------------------------------------- */

/* Inserts a deployment, its template/parameters/plan and a first event
 * ("deployment.created") in one transaction. Reads every field of d but the
 * generated ones, which it writes: uuid, status (CREATE_IN_PROGRESS),
 * version (1), created_ms, updated_ms, deleted (false), and defaults
 * provider_timeout_mins. Required: created_by issuer and subject, template_text.
 * Durable when it returns 0. */
int orc_store_deployment_insert(orc_store_t *s, orc_deployment_t *d);

/* Group commit: inserts n deployments in one transaction (one disk sync), each
 * as orc_store_deployment_insert would. Items fail alone: rcs[i] (n ints, caller
 * storage) gets each item's result, and a failed item leaves no trace and an
 * empty uuid. Returns 0 when the transaction committed (then rcs says which
 * items are in), or < 0 when nothing was stored (every rcs[i] is that code). */
int orc_store_insert_deployments_batch(orc_store_t *s, orc_deployment_t *ds, size_t n, int *rcs);

/* Reads one deployment with its template, parameters and plan (deleted-marked
 * ones too: check d->deleted). *out is freed with orc_deployment_free. */
int orc_store_deployment_get(orc_store_t *s, const char *uuid, orc_deployment_t **out);
/* The same without the specification (template_text, parameters and plan
 * stay NULL): what most API answers need, at a fraction of the cost. */
int orc_store_deployment_get_head(orc_store_t *s, const char *uuid, orc_deployment_t **out);

typedef enum {
    ORC_DEP_SORT_NEWEST = 0, /* creation, newest first (UUIDv7 order): the default */
    ORC_DEP_SORT_OLDEST,
    ORC_DEP_SORT_UPDATED_DESC,
    ORC_DEP_SORT_UPDATED_ASC,
    ORC_DEP_SORT_STATUS_ASC, /* then newest first */
    ORC_DEP_SORT_STATUS_DESC,
    ORC_DEP_SORT__COUNT
} orc_dep_sort_t;

/* Parses the API's sort parameter "property[,asc|desc]" where property is
 * createdAt|creationTime|updatedAt|updateTime|status (direction defaults to
 * asc, as Spring's). NULL or "": ORC_DEP_SORT_NEWEST. ORC_EINVAL otherwise. */
int orc_dep_sort_parse(const char *spec, orc_dep_sort_t *out);

typedef struct {
    const char *created_by_issuer;  /* NULL: any */
    const char *created_by_subject; /* NULL: any */
    const char *user_group;         /* NULL: any */
    /* who looks: only deployments they created or of a group they are in (NULL: all) */
    const char *viewer_issuer;
    const char *viewer_subject;
    const char *viewer_groups;  /* their groups, a JSON array of strings ("[]", NULL: none) */
    uint32_t excluded_statuses; /* ORC_DEP_MASK bits */
    bool include_deleted;           /* default: marked-deleted rows are hidden */
    orc_dep_sort_t sort;
    uint32_t page; /* 0-based */
    uint32_t size; /* rows per page; 0: all rows */
} orc_dep_query_t;

/* One page of deployments matching q (all filters ANDed) and the number of
 * matching rows in out->total. Items carry no template, parameters or plan.
 * q NULL: everything, newest first. */
int orc_store_deployment_list(orc_store_t *s, const orc_dep_query_t *q, orc_deployment_list_t *out);

/* Every deployment (not marked deleted) whose status is in the mask, oldest
 * first, without template/plan: crash recovery passes ORC_DEP_MASK_IN_PROGRESS. */
int orc_store_deployment_list_in_status(orc_store_t *s, uint32_t statuses,
                                        orc_deployment_list_t *out);

/* How many deployments (not marked deleted) are in each status, by position. */
int orc_store_deployment_counts(orc_store_t *s, int64_t counts[ORC_DEP__COUNT]);

/* Fields an update writes (others keep their value); a NULL value clears. */
enum {
    ORC_DEP_F_STATUS = 1u << 0,
    ORC_DEP_F_STATUS_REASON = 1u << 1,
    ORC_DEP_F_TASK = 1u << 2,
    ORC_DEP_F_OUTPUTS = 1u << 3,
    ORC_DEP_F_PHYSICAL_ID = 1u << 4,
    ORC_DEP_F_PROVIDER_NAME = 1u << 5,
    ORC_DEP_F_PROVIDER_ENDPOINT = 1u << 6,
    ORC_DEP_F_CALLBACK = 1u << 7,
    ORC_DEP_F_OPTIONS = 1u << 8, /* the four timeout/retry/keep options together */
    ORC_DEP_F_TEMPLATE = 1u << 9,
    ORC_DEP_F_PARAMETERS = 1u << 10, /* NULL stores {} */
    ORC_DEP_F_PLAN = 1u << 11,
    ORC_DEP_F_DELETED = 1u << 12,
    ORC_DEP_F__ALL = (1u << 13) - 1
};

typedef struct {
    const char *uuid;
    int64_t expect_version;         /* compare-and-set: ORC_ECONFLICT if it differs; 0: no check */
    uint32_t from_statuses;         /* ORC_ECONFLICT unless the current status is in it; 0: any */
    unsigned set;                   /* ORC_DEP_F_* bits, at least one */
    const orc_deployment_t *values; /* source of the fields named in set */
    const char *event_type;         /* NULL: "deployment.status" when the status is set,
                                       else "deployment.updated" */
    const char *event_message;      /* NULL: generated ("status CREATE_COMPLETE") */
    json_t *event_data;             /* NULL: {"status":..., "version":...} */
} orc_dep_update_t;

/* Updates the fields named in u->set, bumps the version and updated time and
 * appends an event, in one transaction: either all of it is stored or none.
 * *new_version (may be NULL) gets the version after the update. */
int orc_store_deployment_update(orc_store_t *s, const orc_dep_update_t *u, int64_t *new_version);

/* Shorthand: status and statusReason (reason NULL clears it). */
int orc_store_deployment_set_status(orc_store_t *s, const char *uuid, int64_t expect_version,
                                    orc_dep_status_t status, const char *reason,
                                    int64_t *new_version);

/* Marks deleted: status DELETE_COMPLETE, hidden from lists, rows kept; with an
 * event ("deployment.deleted"). expect_version 0: no check. */
int orc_store_deployment_mark_deleted(orc_store_t *s, const char *uuid, int64_t expect_version);

/* Hard delete: the deployment and everything below it (template, resources,
 * events, attempts). */
int orc_store_deployment_delete(orc_store_t *s, const char *uuid);

/* ---- resources ---------------------------------------------------------- */

/* Inserts n resources and one "resource.created" event each, all or nothing,
 * in one transaction. Writes uuid, version (1), created_ms and updated_ms into
 * each item. ORC_ENOTFOUND if the deployment does not exist, ORC_ECONFLICT if
 * (deployment, node_name, instance_index) is taken. */
int orc_store_resources_insert(orc_store_t *s, orc_resource_t *rs, size_t n);
int orc_store_resource_insert(orc_store_t *s, orc_resource_t *r);

/* Reads a resource. deployment_uuid NULL: any; otherwise the resource must
 * belong to it (ORC_ENOTFOUND otherwise). Freed with orc_resource_free. */
int orc_store_resource_get(orc_store_t *s, const char *deployment_uuid, const char *uuid,
                           orc_resource_t **out);

typedef struct {
    const char *deployment_uuid; /* required */
    const char *node_type;       /* exact TOSCA type; NULL: any */
    bool oldest_first;           /* default newest first, as the API */
    uint32_t page;
    uint32_t size; /* 0: all */
} orc_res_query_t;

/* One page of a deployment's resources and out->total. ORC_ENOTFOUND if the
 * deployment does not exist. */
int orc_store_resource_list(orc_store_t *s, const orc_res_query_t *q, orc_resource_list_t *out);

enum {
    ORC_RES_F_STATE = 1u << 0,
    ORC_RES_F_SITE = 1u << 1,
    ORC_RES_F_PROVIDER = 1u << 2,
    ORC_RES_F_PHYSICAL_ID = 1u << 3,
    ORC_RES_F_ATTRIBUTES = 1u << 4,
    ORC_RES_F_METADATA = 1u << 5,
    ORC_RES_F_REQUIRED_BY = 1u << 6,
    ORC_RES_F_SPEC = 1u << 7,
    ORC_RES_F__ALL = (1u << 8) - 1
};

/* Longest spec of a resource, in bytes (a hash with its algorithm's name). */
#define ORC_RES_SPEC_MAX 128

typedef struct {
    const char *uuid;
    int64_t expect_version; /* 0: no check */
    unsigned set;           /* ORC_RES_F_* bits, at least one */
    const orc_resource_t *values;
    const char *event_message; /* NULL: generated ("node vm[0]: CREATED") */
    bool no_event;             /* no event (frequent updates: agent heartbeats) */
} orc_res_update_t;

/* Updates a resource and appends an event ("resource.state" when the state is
 * set, else "resource.updated"; none with no_event) to its deployment, in one
 * transaction. */
int orc_store_resource_update(orc_store_t *s, const orc_res_update_t *u, int64_t *new_version);
int orc_store_resource_set_state(orc_store_t *s, const char *uuid, int64_t expect_version,
                                 orc_res_state_t state, int64_t *new_version);

/* Removes a resource (scale-in) and appends a "resource.deleted" event to its
 * deployment (event_message NULL: "node NAME[INDEX] removed"), in one
 * transaction. ORC_ENOTFOUND if there is no such resource. */
int orc_store_resource_delete(orc_store_t *s, const char *uuid, const char *event_message);

/* How many resources of deployments not deleted are placed at site (its name): what a
 * site's removal would leave unreachable. */
int orc_store_site_resource_count(orc_store_t *s, const char *site, int64_t *count);

/* ---- events ------------------------------------------------------------- */

/* Appends an event; reads deployment_uuid, time_ms (0: now), type (required),
 * message, data; writes id and time_ms. ORC_ENOTFOUND: no such deployment. */
int orc_store_event_append(orc_store_t *s, orc_event_t *ev);

/* Events of a deployment with id > after_id, oldest first, at most limit
 * (0: all) — SSE resumes with Last-Event-ID as after_id. */
int orc_store_event_list(orc_store_t *s, const char *deployment_uuid, int64_t after_id,
                         size_t limit, orc_event_list_t *out);

/* ---- site attempts ------------------------------------------------------ */

/* Records that attempt number `attempt` (>= 1) of a deployment starts on a
 * site, with an "attempt.started" event. ORC_ECONFLICT if the number is taken. */
int orc_store_attempt_start(orc_store_t *s, const char *deployment_uuid, int attempt,
                            const char *site_name);
/* Records its end: ok, or failed with error text; "attempt.ended" event.
 * ORC_ENOTFOUND if it was never started, ORC_ECONFLICT if it already ended. */
int orc_store_attempt_end(orc_store_t *s, const char *deployment_uuid, int attempt, bool ok,
                          const char *error);
/* Attempts of a deployment, by number. */
int orc_store_attempt_list(orc_store_t *s, const char *deployment_uuid, orc_attempt_list_t *out);

/* ---- leases: which daemon works on a deployment ----------------------------
 *
 * Several daemons on one database each work only on the deployments whose
 * lease they hold. A lease names its owner (a daemon's instance name) and
 * expires ttl_ms after it was last taken or renewed, by the database's clock
 * (PostgreSQL) or this machine's (SQLite): an owner that stops renewing loses
 * its deployments to whoever claims them next. Leases change no version and
 * append no event. */

typedef struct {
    char uuid[ORC_UUID_LEN];
    orc_dep_status_t status;
    int64_t version;
    char *previous_owner; /* claim_expired: who held it before (NULL: nobody) */
} orc_lease_t;

typedef struct {
    orc_lease_t *items;
    size_t count;
} orc_lease_list_t;

void orc_lease_list_clear(orc_lease_list_t *l);

/* Takes the lease of one deployment for owner: 0 when it was free, expired or
 * owner's already (then renewed); ORC_ECONFLICT when another owner holds it
 * (the message names it); ORC_ENOTFOUND when there is no such deployment. */
int orc_store_lease_acquire(orc_store_t *s, const char *uuid, const char *owner, int64_t ttl_ms);
/* Renews every lease owner holds; held lists them (deployments not marked
 * deleted), with their stored status and version. */
int orc_store_lease_renew(orc_store_t *s, const char *owner, int64_t ttl_ms,
                          orc_lease_list_t *held);
/* Claims for owner up to max deployments (not marked deleted) in one of
 * statuses whose lease is free or expired, or owner's own when with_own (a
 * daemon that restarts under the same name), oldest first; concurrent
 * claimers never get the same one. */
int orc_store_lease_claim_expired(orc_store_t *s, const char *owner, int64_t ttl_ms,
                                  uint32_t statuses, size_t max, bool with_own, orc_lease_list_t *got);
/* Gives the lease back (nothing when owner does not hold it). */
int orc_store_lease_release(orc_store_t *s, const char *uuid, const char *owner);

/* ---- changes made through other daemons ------------------------------------
 *
 * On PostgreSQL every event appended also notifies (NOTIFY, at its commit) the
 * handles on the same database that listen: so a daemon learns of the events of
 * deployments other daemons work on (its live event streams show them). SQLite has
 * one daemon: ORC_ENOTSUP. */

/* Starts listening on this handle (again after a reconnection). */
int orc_store_listen(orc_store_t *s);
/* The socket to watch for readability while listening; -1 when there is none now. It
 * changes after a reconnection: watch the new one. */
int orc_store_changes_fd(orc_store_t *s);
/* Takes what arrived and calls fn(ud, deployment_uuid) for each notification. */
int orc_store_changes_read(orc_store_t *s, void (*fn)(void *ud, const char *uuid), void *ud);

/* ---- daemon metadata (key/value) ---------------------------------------- */

int orc_store_meta_set(orc_store_t *s, const char *key, const char *value);
/* *value is a new string (orc_free) or ORC_ENOTFOUND. */
int orc_store_meta_get(orc_store_t *s, const char *key, char **value);
int orc_store_meta_delete(orc_store_t *s, const char *key); /* ORC_ENOTFOUND if absent */

typedef struct {
    char *key;
    char *value;
} orc_meta_t;

typedef struct {
    orc_meta_t *items;
    size_t count;
} orc_meta_list_t;

void orc_meta_list_clear(orc_meta_list_t *l);
/* Every key that starts with prefix (not empty), with its value, in key order (bytewise). */
int orc_store_meta_list(orc_store_t *s, const char *prefix, orc_meta_list_t *out);

#endif
