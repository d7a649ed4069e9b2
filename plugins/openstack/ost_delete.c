/*
 * Deprovision, status and adopt, inventory (ost.h). A deletion goes by name: every
 * server named so with our metadata is deleted and waited for until Nova lists it no
 * more, then every floating IP whose description is the name, then the security
 * group of the name (Neutron refuses it while a port still uses it: 409, tried
 * again until the deadline); at the end a listing must show none of them. A name
 * the cloud does not know is a success. Transient failures are retried with
 * backoff within delete_timeout_ms.
 */
#include <stdio.h>
#include <string.h>

#include "ost.h"

#define SG_IN_USE_MS 60000

static void d_list(struct oop *o, int status);
static void d_wait(struct oop *o, int status);
static void d_fips(struct oop *o, int status);
static void d_sgs(struct oop *o, int status);
static void d_verify(struct oop *o, int status);

static uint32_t next_wait(struct oop *o)
{
    uint32_t w = o->wait_ms;

    o->wait_ms = o->wait_ms * 2 > o->s->c.poll_max_ms ? o->s->c.poll_max_ms : o->wait_ms * 2;
    return w;
}

static void path_of(char *buf, size_t cap, const char *prefix, const char *id)
{
    char enc[OST_ID_LEN * 3];

    if (!cld_urlencode(id, enc, sizeof(enc)))
        enc[0] = '\0';
    snprintf(buf, cap, "%s/%s", prefix, enc);
}

/* ids of an array of objects, as a new array of strings */
static json_t *ids_of(const json_t *objs)
{
    json_t *out = json_array(), *x;
    size_t i;

    json_array_foreach(objs, i, x) {
        if (out)
            json_array_append_new(out, json_string(cld_jstr(x, "id", "")));
    }
    return out;
}

/* ---- servers ---- */

/* o->list becomes the ids of ours (a new array, stolen), o->idx its first; false when out of
 * memory (the op failed). */
static bool take_ids(struct oop *o, json_t *ours)
{
    json_decref(o->list);
    o->list = ours ? ids_of(ours) : NULL;
    json_decref(ours);
    if (o->list == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return false;
    }
    if (json_array_size(o->list) > 0)
        o->existed = true;
    o->idx = 0;
    return true;
}

static void d_deleted(struct oop *o, int status);

static void d_del(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 16];
    int rc;

    if (o->idx >= json_array_size(o->list)) {
        if (json_array_size(o->list) == 0) {
            d_fips(o, 0);
            return;
        }
        if (o->phase_deadline_ms == 0)
            o->phase_deadline_ms = cld_now_ms() + o->s->c.delete_timeout_ms;
        o->rounds++;
        if (oop_wait(o, next_wait(o), d_wait) < 0)
            oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    path_of(path, sizeof(path), "/servers", json_string_value(json_array_get(o->list, o->idx)));
    rc = oop_call(o, OST_COMPUTE, "DELETE", path, NULL, 0, d_deleted);
    if (rc < 0)
        oop_fail_call(o, rc, "DELETE /servers/ID");
}

static void d_deleted(struct oop *o, int status)
{
    long code = o->call.code;

    /* 409: a task is running on it (it is still being built): later */
    if (oop_transient(o, status) || (status == 0 && code == 409)) {
        oop_retry_later(o, status < 0 ? status : 0, "DELETE /servers/ID", d_del);
        return;
    }
    if (status < 0 || (code != 204 && code != 202 && code != 200 && code != 404)) {
        oop_fail_call(o, status, "DELETE /servers/ID");
        return;
    }
    o->idx++;
    d_del(o, 0);
}

static void d_listed(struct oop *o, int status)
{
    if (!oop_answer(o, status, "GET /servers/detail", d_list, OST_CODES(200)))
        return;
    if (!take_ids(o, ost_our_servers(o)))
        return;
    d_del(o, 0);
}

static void d_list(struct oop *o, int status)
{
    int rc = ost_list_servers(o, d_listed);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /servers/detail");
}

static void d_waited(struct oop *o, int status)
{
    json_t *ours;
    size_t n;

    if (!oop_transient(o, status) && (status < 0 || o->call.code != 200)) {
        oop_fail_call(o, status, "GET /servers/detail");
        return;
    }
    ours = status == 0 && o->call.code == 200 ? ost_our_servers(o) : NULL;
    n = ours ? json_array_size(ours) : 1;
    if (ours && n == 0) {
        json_decref(ours);
        o->wait_ms = o->s->c.poll_ms;
        d_fips(o, 0);
        return;
    }
    if (cld_now_ms() > o->phase_deadline_ms) {
        oop_fail(o, ORC_EDRIVER, "server %s (%s) still there %u s after its deletion", o->name,
                 ours ? cld_jstr(json_array_get(ours, 0), "status", "?") : "unknown state",
                 o->s->c.delete_timeout_ms / 1000);
        json_decref(ours);
        return;
    }
    if (ours && o->rounds % 8 == 0) { /* a deletion that failed (ERROR): once more */
        json_decref(o->list);
        o->list = ids_of(ours);
        o->idx = 0;
        json_decref(ours);
        d_del(o, 0);
        return;
    }
    json_decref(ours);
    o->rounds++;
    if (oop_wait(o, next_wait(o), d_wait) < 0)
        oop_fail(o, ORC_ENOMEM, "out of memory");
}

static void d_wait(struct oop *o, int status)
{
    int rc = ost_list_servers(o, d_waited);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /servers/detail");
}

/* ---- floating IPs and the security group ---- */

static void d_fip_deleted(struct oop *o, int status);

static void d_fip_del(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 24];
    int rc;

    if (o->idx >= json_array_size(o->list)) {
        d_sgs(o, 0);
        return;
    }
    path_of(path, sizeof(path), "/floatingips",
            json_string_value(json_array_get(o->list, o->idx)));
    rc = oop_call(o, OST_NETWORK, "DELETE", path, NULL, 0, d_fip_deleted);
    if (rc < 0)
        oop_fail_call(o, rc, "DELETE /v2.0/floatingips/ID");
}

static void d_fip_deleted(struct oop *o, int status)
{
    if (!oop_answer(o, status, "DELETE /v2.0/floatingips/ID", d_fip_del, OST_CODES(204, 200, 404)))
        return;
    o->idx++;
    d_fip_del(o, 0);
}

static void d_fips_listed(struct oop *o, int status)
{
    if (!oop_answer(o, status, "GET /v2.0/floatingips", d_fips, OST_CODES(200)))
        return;
    if (!take_ids(o, ost_our_objects(o, "floatingips", "description")))
        return;
    d_fip_del(o, 0);
}

static void d_fips(struct oop *o, int status)
{
    int rc = ost_list_by(o, "floatingips", "description", d_fips_listed);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/floatingips");
}

static void d_sg_deleted(struct oop *o, int status);

static void d_sg_del(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 24];
    int rc;

    if (o->idx >= json_array_size(o->list)) {
        d_verify(o, 0);
        return;
    }
    path_of(path, sizeof(path), "/security-groups",
            json_string_value(json_array_get(o->list, o->idx)));
    rc = oop_call(o, OST_NETWORK, "DELETE", path, NULL, 0, d_sg_deleted);
    if (rc < 0)
        oop_fail_call(o, rc, "DELETE /v2.0/security-groups/ID");
}

static void d_sg_deleted(struct oop *o, int status)
{
    if (status == 0 && o->call.code == 409) { /* a port still uses it: it goes with the server */
        if (o->phase_deadline_ms == 0)
            o->phase_deadline_ms = cld_now_ms() + SG_IN_USE_MS;
        if (cld_now_ms() < o->phase_deadline_ms) {
            if (oop_wait(o, next_wait(o), d_sg_del) < 0)
                oop_fail(o, ORC_ENOMEM, "out of memory");
            return;
        }
    }
    if (!oop_answer(o, status, "DELETE /v2.0/security-groups/ID", d_sg_del, OST_CODES(204, 200, 404)))
        return;
    o->phase_deadline_ms = 0;
    o->wait_ms = o->s->c.poll_ms;
    o->idx++;
    d_sg_del(o, 0);
}

static void d_sgs_listed(struct oop *o, int status)
{
    if (!oop_answer(o, status, "GET /v2.0/security-groups", d_sgs, OST_CODES(200)))
        return;
    if (!take_ids(o, ost_our_objects(o, "security_groups", "name")))
        return;
    o->phase_deadline_ms = 0;
    d_sg_del(o, 0);
}

static void d_sgs(struct oop *o, int status)
{
    int rc = ost_list_by(o, "security-groups", "name", d_sgs_listed);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/security-groups");
}

/* ---- verify: nothing of the name is listed any more ---- */

static void d_again(struct oop *o, const char *what)
{
    if (++o->verifies > 3) {
        oop_fail(o, ORC_EDRIVER, "%s of %s still listed after its deletion", what, o->name);
        return;
    }
    orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_WARN,
                          "openstack: %s of %s still listed after its deletion: again", what,
                          o->name);
    o->phase_deadline_ms = 0;
    d_list(o, 0);
}

static void d_verified_sgs(struct oop *o, int status)
{
    json_t *ours;

    if (!oop_answer(o, status, "GET /v2.0/security-groups", d_verify, OST_CODES(200)))
        return;
    ours = ost_our_objects(o, "security_groups", "name");
    if (ours && json_array_size(ours) == 0) {
        json_decref(ours);
        oop_then(o, 0);
        return;
    }
    json_decref(ours);
    d_again(o, "a security group");
}

static void d_verified_fips(struct oop *o, int status)
{
    json_t *ours;
    int rc;

    if (!oop_answer(o, status, "GET /v2.0/floatingips", d_verify, OST_CODES(200)))
        return;
    ours = ost_our_objects(o, "floatingips", "description");
    if (ours == NULL || json_array_size(ours) > 0) {
        json_decref(ours);
        d_again(o, "a floating IP");
        return;
    }
    json_decref(ours);
    rc = ost_list_by(o, "security-groups", "name", d_verified_sgs);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/security-groups");
}

static void d_verify(struct oop *o, int status)
{
    int rc = ost_list_by(o, "floatingips", "description", d_verified_fips);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/floatingips");
}

void ost_delete_all(struct oop *o)
{
    json_decref(o->list);
    o->list = NULL;
    o->idx = 0;
    o->rounds = 0;
    o->verifies = 0;
    o->phase_deadline_ms = 0;
    o->wait_ms = o->s->c.poll_ms;
    d_list(o, 0);
}

/* ---- the slots ---- */

static void dp_done(struct oop *o, int status)
{
    if (o->op)
        o->op->exists = o->existed;
    if (status == 0)
        orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_INFO, "openstack: %s %s", o->name,
                              o->existed ? "deleted" : "was not there");
    oop_done(o, status);
}

static void dp_start(void *arg)
{
    struct oop *o = arg;

    o->timer = 0;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    ost_delete_all(o);
}

static struct oop *named_op(struct ost *s, orc_op_t *op, const char *name, enum oop_kind kind,
                            int *rc)
{
    struct oop *o;

    if (s->closing) {
        *rc = orc_op_failf(op, ORC_ECONFLICT, "openstack: the site is closing");
        return NULL;
    }
    if (!ost_name_ok(name)) {
        *rc = orc_op_failf(op, ORC_EINVAL, "openstack: bad resource name '%.80s'",
                           name ? name : "(null)");
        return NULL;
    }
    o = oop_new(s, op, kind);
    if (o == NULL) {
        *rc = ORC_ENOMEM;
        return NULL;
    }
    ost_copy(o->name, sizeof(o->name), name);
    return o;
}

int ost_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct ost *s = state;
    int rc;
    struct oop *o = named_op(s, op, name, OOP_DEPROVISION, &rc);

    if (o == NULL)
        return rc;
    o->then = dp_done;
    o->deadline_ms = cld_now_ms() + s->c.delete_timeout_ms;
    o->timer = s->host->timer_start(s->host, 0, dp_start, o);
    return oop_started(o, o->timer ? 0 : ORC_ENOMEM);
}

/* ---- status and adopt ---- */

static void st_fips(struct oop *o, int status)
{
    json_t *ours = status == 0 && o->call.code == 200
                       ? ost_our_objects(o, "floatingips", "description")
                       : NULL;
    json_t *fip = json_array_get(ours, 0);

    if (fip) {
        ost_copy(o->fip_id, sizeof(o->fip_id), cld_jstr(fip, "id", ""));
        ost_copy(o->floating_ip, sizeof(o->floating_ip), cld_jstr(fip, "floating_ip_address", ""));
    }
    json_decref(ours);
    oop_done(o, ost_report(o));
}

static void st_listed(struct oop *o, int status)
{
    json_t *ours;
    int rc;

    if (status < 0 || o->call.code != 200) {
        oop_fail_call(o, status, "GET /servers/detail");
        return;
    }
    ours = ost_our_servers(o);
    if (ours == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    if (json_array_size(ours) == 0) {
        json_decref(ours);
        o->op->exists = false;
        o->op->res_state = ORC_DRV_RES_UNKNOWN;
        oop_done(o, 0);
        return;
    }
    json_decref(o->server);
    o->server = json_incref(json_array_get(ours, 0));
    json_decref(ours);
    if (ost_res_state(o->server) != ORC_DRV_RES_READY) {
        oop_done(o, ost_report(o));
        return;
    }
    rc = ost_list_by(o, "floatingips", "description", st_fips);
    if (rc < 0)
        oop_done(o, ost_report(o));
}

static void st_start(void *arg)
{
    struct oop *o = arg;
    int rc;

    o->timer = 0;
    if (o->canceled) {
        oop_done(o, ORC_ECANCELED);
        return;
    }
    rc = ost_list_servers(o, st_listed);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /servers/detail");
}

int ost_status(void *state, orc_op_t *op, const char *name)
{
    struct ost *s = state;
    int rc;
    struct oop *o = named_op(s, op, name, OOP_STATUS, &rc);

    if (o == NULL)
        return rc;
    o->timer = s->host->timer_start(s->host, 0, st_start, o);
    return oop_started(o, o->timer ? 0 : ORC_ENOMEM);
}

/* ---- inventory ---- */

static void inv_limits(struct oop *o, int status)
{
    struct ost *s = o->s;
    bool ok = status == 0 && o->call.code == 200;

    if (!ok) { /* the scheduler still gets the flavors; Nova says at provision time */
        char why[ORC_OP_ERROR_LEN];
        if (status < 0)
            snprintf(why, sizeof(why), "%s", o->call.error);
        else
            snprintf(why, sizeof(why), "HTTP %ld", o->call.code);
        s->host->log(s->host, ORC_DRV_LOG_WARN, "openstack: GET /limits: %s: quotas unknown",
                     why);
    }
    oop_done(o, ost_pools(s, o->op, ok ? o->call.json : NULL) < 0 ? ORC_ENOMEM : 0);
}

static void inv_synced(struct oop *o, int status)
{
    int rc;

    if (status < 0) {
        oop_fail_call(o, status, "reading the cloud's flavors");
        return;
    }
    rc = oop_call(o, OST_COMPUTE, "GET", "/limits", NULL, 0, inv_limits);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /limits");
}

int ost_inventory(void *state, orc_op_t *op)
{
    struct ost *s = state;
    struct oop *o;
    int rc;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "openstack: the site is closing");
    o = oop_new(s, op, OOP_INVENTORY);
    if (o == NULL)
        return ORC_ENOMEM;
    ost_copy(o->name, sizeof(o->name), "inventory");
    rc = ost_sync_need(o, inv_synced);
    return oop_started(o, rc);
}
