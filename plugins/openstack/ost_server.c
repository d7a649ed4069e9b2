/*
 * Provision (ost.h): the flavor that fits, then - unless a server of the name
 * exists already, which is taken as it is - the image, the site's key pair, a
 * security group named after the node with the template's ports open, and the
 * server itself with the cloud-init script and the metadata that mark it ours;
 * then its status polled with backoff until ACTIVE, and a floating IP when a
 * public address is wanted. Creates are never blindly sent again: when a POST's
 * answer is lost, the step looks the object up by name before it posts again. A
 * failure deletes whatever was made (ost_delete_all) before it answers.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ost.h"

/* ---- shared: our servers, our objects, the state of a server ---- */

int ost_res_state(const json_t *server)
{
    static const char *const ready[] = {"ACTIVE", "REBOOT", "HARD_REBOOT", "RESIZE",
                                        "VERIFY_RESIZE", "REVERT_RESIZE", "MIGRATING",
                                        "PASSWORD", NULL};
    static const char *const stopped[] = {"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED",
                                          "SHELVED_OFFLOADED", "STOPPED", NULL};
    const char *st = cld_jstr(server, "status", "");
    const char *task = cld_jstr(server, "OS-EXT-STS:task_state", "");

    if (strcmp(task, "deleting") == 0 || strcmp(st, "DELETED") == 0 ||
        strcmp(st, "SOFT_DELETED") == 0)
        return ORC_DRV_RES_DELETING;
    if (strcmp(st, "BUILD") == 0 || strcmp(st, "REBUILD") == 0)
        return ORC_DRV_RES_CREATING;
    if (strcmp(st, "ERROR") == 0)
        return ORC_DRV_RES_FAILED;
    for (int i = 0; ready[i]; i++)
        if (strcmp(st, ready[i]) == 0)
            return ORC_DRV_RES_READY;
    for (int i = 0; stopped[i]; i++)
        if (strcmp(st, stopped[i]) == 0)
            return ORC_DRV_RES_STOPPED;
    return ORC_DRV_RES_UNKNOWN;
}

int ost_list_servers(struct oop *o, oop_step next)
{
    char path[OST_NAME_MAX * 3 + 64], enc[OST_NAME_MAX * 3 + 1];

    if (!cld_urlencode(o->name, enc, sizeof(enc)))
        return ORC_EINVAL;
    snprintf(path, sizeof(path), "/servers/detail?name=%%5E%s%%24", enc);
    return oop_call(o, OST_COMPUTE, "GET", path, NULL, 0, next);
}

int ost_list_by(struct oop *o, const char *what, const char *field, oop_step next)
{
    char path[OST_NAME_MAX * 3 + 64], enc[OST_NAME_MAX * 3 + 1];

    cld_urlencode(o->name, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/%s?%s=%s", what, field, enc);
    return oop_call(o, OST_NETWORK, "GET", path, NULL, 0, next);
}

static int rank_of(const json_t *srv)
{
    static const int order[] = {[ORC_DRV_RES_READY] = 0,   [ORC_DRV_RES_CREATING] = 1,
                                [ORC_DRV_RES_STOPPED] = 2, [ORC_DRV_RES_UNKNOWN] = 3,
                                [ORC_DRV_RES_FAILED] = 4,  [ORC_DRV_RES_DELETING] = 5};
    return order[ost_res_state(srv)];
}

static bool before(const json_t *a, const json_t *b)
{
    if (rank_of(a) != rank_of(b))
        return rank_of(a) < rank_of(b);
    return strcmp(cld_jstr(a, "created", ""), cld_jstr(b, "created", "")) < 0;
}

json_t *ost_our_servers(const struct oop *o)
{
    json_t *out = json_array(), *srv;
    size_t i;

    if (out == NULL)
        return NULL;
    json_array_foreach(json_object_get(o->call.json, "servers"), i, srv) {
        const char *mark = cld_jstr(json_object_get(srv, "metadata"), "orc_name", "");
        size_t k = json_array_size(out);
        if (strcmp(cld_jstr(srv, "name", ""), o->name) != 0 || strcmp(mark, o->name) != 0)
            continue;
        while (k > 0 && before(srv, json_array_get(out, k - 1)))
            k--;
        json_array_insert(out, k, srv);
    }
    return out;
}

json_t *ost_our_objects(const struct oop *o, const char *key, const char *field)
{
    json_t *out = json_array(), *x;
    size_t i;

    if (out == NULL)
        return NULL;
    json_array_foreach(json_object_get(o->call.json, key), i, x) {
        if (strcmp(cld_jstr(x, field, ""), o->name) == 0)
            json_array_append(out, x);
    }
    return out;
}

const char *ost_address(const struct oop *o, const char *type)
{
    json_t *nets = json_object_get(o->server, "addresses"), *list, *a;
    const char *net, *any = "";
    size_t i;

    json_object_foreach(nets, net, list) {
        json_array_foreach(list, i, a) {
            const char *t = cld_jstr(a, "OS-EXT-IPS:type", "fixed");
            if (strcmp(t, type) != 0 || json_integer_value(json_object_get(a, "version")) == 6)
                continue;
            if (strcmp(net, o->s->net_name) == 0 || strcmp(type, "floating") == 0)
                return cld_jstr(a, "addr", "");
            if (!any[0])
                any = cld_jstr(a, "addr", "");
        }
    }
    return any;
}

int ost_report(struct oop *o)
{
    struct ost *s = o->s;
    orc_op_t *op = o->op;
    const struct ost_flavor *f;
    const char *fixed = ost_address(o, "fixed"), *pub = ost_address(o, "floating");
    const char *fid = cld_jstr(json_object_get(o->server, "flavor"), "id", NULL);
    char gpus[16];
    int rc = 0;

    if (op == NULL)
        return 0;
    if (o->flavor_name[0] == '\0') { /* an existing server: its flavor says what it has */
        f = ost_flavor_find(s, fid);
        ost_copy(o->flavor_name, sizeof(o->flavor_name),
                 f ? f->name
                   : cld_jstr(json_object_get(o->server, "flavor"), "original_name", fid));
        if (f && f->gpus) {
            ost_copy(o->gpu_model, sizeof(o->gpu_model), f->model);
            o->flavor_gpus = f->gpus;
        }
    }
    if (fixed[0] == '\0')
        fixed = o->fixed_ip;
    if (o->floating_ip[0])
        pub = o->floating_ip;
    snprintf(gpus, sizeof(gpus), "%u", o->flavor_gpus);
    op->exists = true;
    op->res_state = ost_res_state(o->server);
    rc |= s->host->op_attr_set(op, ORC_ATTR_PROVIDER_ID, cld_jstr(o->server, "id", ""));
    if (fixed[0])
        rc |= s->host->op_attr_set(op, ORC_ATTR_PRIVATE_ADDRESS, fixed);
    if (pub[0])
        rc |= s->host->op_attr_set(op, ORC_ATTR_PUBLIC_ADDRESS, pub);
    if (o->flavor_name[0])
        rc |= s->host->op_attr_set(op, ORC_ATTR_FLAVOR, o->flavor_name);
    if (o->flavor_gpus) {
        rc |= s->host->op_attr_set(op, ORC_ATTR_GPU_MODEL, o->gpu_model);
        rc |= s->host->op_attr_set(op, "num_gpus", gpus);
    }
    rc |= s->host->op_attr_set(op, "server_status", cld_jstr(o->server, "status", ""));
    if (o->sg_id[0])
        rc |= s->host->op_attr_set(op, "security_group", o->sg_id);
    if (o->fip_id[0])
        rc |= s->host->op_attr_set(op, "floating_ip", o->fip_id);
    if (o->image_id[0])
        rc |= s->host->op_attr_set(op, "image", o->image_id);
    return rc < 0 ? ORC_ENOMEM : 0;
}

/* ---- failures: clean up, then answer ---- */

static void prov_cleaned(struct oop *o, int status)
{
    char first[ORC_OP_ERROR_LEN];

    if (status < 0) {
        snprintf(first, sizeof(first), "%s", o->err);
        snprintf(o->err, sizeof(o->err), "%.170s (and the cleanup failed: %.55s)", o->fail_msg,
                 strncmp(first, "openstack: ", 11) == 0 ? first + 11 : first);
    } else {
        snprintf(o->err, sizeof(o->err), "%s", o->fail_msg);
    }
    oop_done(o, o->fail_code);
}

/* o->then of provision's steps: a failure deletes what was made first */
static void prov_on_fail(struct oop *o, int code)
{
    o->fail_code = code;
    snprintf(o->fail_msg, sizeof(o->fail_msg), "%s", o->err);
    if (!o->made || code == ORC_ECANCELED || code == ORC_EDENIED) {
        oop_done(o, code);
        return;
    }
    orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_INFO, "%s: deleting what was made",
                          o->err);
    o->then = prov_cleaned;
    o->deadline_ms = cld_now_ms() + o->s->c.delete_timeout_ms;
    o->tries = 0;
    ost_delete_all(o);
}

static void succeed_now(struct oop *o)
{
    int rc = ost_report(o);

    o->then = NULL;
    oop_done(o, rc);
}

/* Duplicates of the server go, best effort: a POST whose lost answer was acted on
 * after the step looked, or one the HTTP client sent again by itself (libcurl
 * replays a request whose kept-alive connection died before any answer byte).
 * The deprovision deletes every server of the name anyway. */
static void p_dedupe_next(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 16], enc[OST_ID_LEN * 3];
    int rc;

    if (o->idx >= json_array_size(o->list)) {
        succeed_now(o);
        return;
    }
    cld_urlencode(json_string_value(json_array_get(o->list, o->idx)), enc, sizeof(enc));
    o->idx++;
    snprintf(path, sizeof(path), "/servers/%s", enc);
    rc = oop_call(o, OST_COMPUTE, "DELETE", path, NULL, 0, p_dedupe_next);
    if (rc < 0)
        succeed_now(o);
}

static void p_dedupe_listed(struct oop *o, int status)
{
    json_t *ours, *srv;
    size_t i;

    if (status < 0 || o->call.code != 200 || (ours = ost_our_servers(o)) == NULL) {
        succeed_now(o);
        return;
    }
    json_decref(o->list);
    o->list = json_array();
    json_array_foreach(ours, i, srv) {
        if (strcmp(cld_jstr(srv, "id", ""), o->server_id) != 0) {
            orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_WARN,
                                  "openstack: server %s has a duplicate (%s): deleting it", o->name,
                                  cld_jstr(srv, "id", ""));
            json_array_append_new(o->list, json_string(cld_jstr(srv, "id", "")));
        }
    }
    json_decref(ours);
    o->idx = 0;
    p_dedupe_next(o, 0);
}

static void succeed(struct oop *o)
{
    if (o->rounds == 0 && o->resent) { /* this op posted the server: look for duplicates */
        o->rounds = 1;
        if (ost_list_servers(o, p_dedupe_listed) == 0)
            return;
    }
    succeed_now(o);
}

/* ---- steps ---- */

static void p_poll(struct oop *o, int status);
static void p_fip_list(struct oop *o, int status);
static void p_sg(struct oop *o, int status);
static void p_create(struct oop *o, int status);

/* the answer to a create POST when it cannot be used: quota or capacity, or else */
static void create_failed(struct oop *o, int status, const char *what, oop_step relook)
{
    char msg[200];

    /* 409 for a server: its name is taken; for a floating IP: the port has one already,
     * perhaps from a POST that timed out here but was carried out later */
    if (oop_transient(o, status) ||
        (status == 0 && o->call.code == 409 && (relook == p_create || relook == p_fip_list) &&
         !ost_has(oop_api_msg(o, msg, sizeof(msg)), "quota"))) {
        if (++o->creates > o->s->c.retries + 1) {
            oop_fail_call(o, status, what);
            return;
        }
        if (status == ORC_EHTTP && relook == p_create) {
            /* no answer: Nova may still be carrying the POST out; looking at once would
             * find nothing and post a second server */
            if (oop_wait(o, o->s->c.timeout_ms, relook) < 0)
                oop_fail(o, ORC_ENOMEM, "out of memory");
            return;
        }
        /* the object may exist anyway: the step looks it up before posting again */
        oop_retry_later(o, status, what, relook);
        return;
    }
    if (status == 0 && (o->call.code == 413 || o->call.code == 403 || o->call.code == 409)) {
        oop_api_msg(o, msg, sizeof(msg));
        if (o->call.code == 413 || ost_has(msg, "quota") || ost_has(msg, "limit") ||
            ost_has(msg, "No more IP") || ost_has(msg, "IpAddressGeneration")) {
            oop_fail(o, ORC_DRV_ENOCAPACITY, "%s: no capacity at site %s: %s", what,
                     o->s->host->site, msg);
            return;
        }
    }
    oop_fail_call(o, status, what);
}

static void p_fip_done(struct oop *o, int status)
{
    json_t *fip = json_object_get(o->call.json, "floatingip");

    if (status < 0 || (o->call.code != 200 && o->call.code != 201) || !json_is_object(fip)) {
        create_failed(o, status, "floating IP", p_fip_list);
        return;
    }
    ost_copy(o->fip_id, sizeof(o->fip_id), cld_jstr(fip, "id", ""));
    ost_copy(o->floating_ip, sizeof(o->floating_ip), cld_jstr(fip, "floating_ip_address", ""));
    succeed(o);
}

static void p_fip_listed(struct oop *o, int status)
{
    json_t *ours, *fip = NULL, *x, *body;
    char path[OST_ID_LEN + 32];
    size_t i;
    int rc;

    if (!oop_answer(o, status, "GET /v2.0/floatingips", p_fip_list, OST_CODES(200)))
        return;
    ours = ost_our_objects(o, "floatingips", "description");
    json_array_foreach(ours, i, x) {
        if (fip == NULL || strcmp(cld_jstr(x, "port_id", ""), o->port_id) == 0)
            fip = x;
    }
    if (fip && strcmp(cld_jstr(fip, "port_id", ""), o->port_id) == 0) {
        ost_copy(o->fip_id, sizeof(o->fip_id), cld_jstr(fip, "id", ""));
        ost_copy(o->floating_ip, sizeof(o->floating_ip), cld_jstr(fip, "floating_ip_address", ""));
        json_decref(ours);
        succeed(o);
        return;
    }
    o->made = true;
    if (fip) { /* ours, not on the port yet: associate it */
        snprintf(path, sizeof(path), "/floatingips/%s", cld_jstr(fip, "id", ""));
        body = json_pack("{s{ss}}", "floatingip", "port_id", o->port_id);
        rc = oop_call_json(o, OST_NETWORK, "PUT", path, body, 0, p_fip_done);
    } else {
        body = json_pack("{s{ss ss ss}}", "floatingip", "floating_network_id", o->s->fnet_id,
                         "description", o->name, "port_id", o->port_id);
        rc = oop_call_json(o, OST_NETWORK, "POST", "/floatingips", body, OST_CREATE, p_fip_done);
    }
    json_decref(ours);
    if (rc < 0)
        oop_fail_call(o, rc, "floating IP");
}

static void p_fip_list(struct oop *o, int status)
{
    int rc = ost_list_by(o, "floatingips", "description", p_fip_listed);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/floatingips");
}

static void p_port(struct oop *o, int status);

static void p_port_listed(struct oop *o, int status)
{
    json_t *ports = json_object_get(o->call.json, "ports"), *port = NULL, *x;
    size_t i;

    if (!oop_answer(o, status, "GET /v2.0/ports", p_port, OST_CODES(200)))
        return;
    json_array_foreach(ports, i, x) {
        if (port == NULL || strcmp(cld_jstr(x, "network_id", ""), o->s->net_id) == 0)
            port = x;
    }
    if (port == NULL) { /* not plugged yet */
        if (cld_now_ms() > o->build_deadline_ms) {
            oop_fail(o, ORC_EDRIVER, "server %s has no port on network %s", o->name,
                     o->s->net_name);
            return;
        }
        if (oop_wait(o, o->s->c.poll_ms, p_port) < 0)
            oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    ost_copy(o->port_id, sizeof(o->port_id), cld_jstr(port, "id", ""));
    ost_copy(o->fixed_ip, sizeof(o->fixed_ip),
             cld_jstr(json_array_get(json_object_get(port, "fixed_ips"), 0), "ip_address", ""));
    o->creates = 0;
    p_fip_list(o, 0);
}

static void p_port(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 32], enc[OST_ID_LEN * 3];
    int rc;

    cld_urlencode(o->server_id, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/ports?device_id=%s", enc);
    rc = oop_call(o, OST_NETWORK, "GET", path, NULL, 0, p_port_listed);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/ports");
}

static void p_active(struct oop *o)
{
    if (!o->want_fip) {
        succeed(o);
        return;
    }
    if (o->s->fnet_id[0] == '\0') {
        oop_fail(o, ORC_EINVAL, "no floating IP for %s: %s", o->name, o->s->fnet_why);
        return;
    }
    p_port(o, 0);
}

/* Nova's fault: "No valid host" and quotas are a capacity shortage (fail over) */
static void p_error(struct oop *o)
{
    json_t *fault = json_object_get(o->server, "fault");
    const char *msg = cld_jstr(fault, "message", "no fault message");
    bool capacity = ost_has(msg, "No valid host") || ost_has(msg, "quota") ||
                    ost_has(msg, "Insufficient");

    oop_fail(o, capacity ? ORC_DRV_ENOCAPACITY : ORC_EDRIVER, "server %s: ERROR: %s%s%s", o->name,
             msg, capacity ? " (site " : "", capacity ? "out of capacity)" : "");
}

static void p_state(struct oop *o)
{
    int st = ost_res_state(o->server);

    if (st == ORC_DRV_RES_READY) {
        p_active(o);
    } else if (st == ORC_DRV_RES_FAILED) {
        p_error(o);
    } else if (st == ORC_DRV_RES_DELETING) {
        oop_fail(o, ORC_ECONFLICT, "server %s is being deleted", o->name);
    } else if (cld_now_ms() >= o->build_deadline_ms) {
        oop_fail(o, ORC_EDRIVER, "server %s still %s after %u s (build_timeout_ms)", o->name,
                 cld_jstr(o->server, "status", "?"), o->s->c.build_timeout_ms / 1000);
    } else {
        uint32_t w = o->wait_ms;
        o->wait_ms = o->wait_ms * 2 > o->s->c.poll_max_ms ? o->s->c.poll_max_ms : o->wait_ms * 2;
        if (oop_wait(o, w, p_poll) < 0)
            oop_fail(o, ORC_ENOMEM, "out of memory");
    }
}

static void p_polled(struct oop *o, int status)
{
    json_t *srv = json_object_get(o->call.json, "server");

    if (oop_transient(o, status) && cld_now_ms() < o->build_deadline_ms) {
        uint32_t w = o->wait_ms;
        o->wait_ms = o->wait_ms * 2 > o->s->c.poll_max_ms ? o->s->c.poll_max_ms : o->wait_ms * 2;
        if (oop_wait(o, w, p_poll) < 0)
            oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    if (status == 0 && o->call.code == 404) {
        oop_fail(o, ORC_EDRIVER, "server %s (%s) vanished while it was built", o->name,
                 o->server_id);
        return;
    }
    if (status < 0 || o->call.code != 200 || !json_is_object(srv)) {
        oop_fail_call(o, status, "GET /servers/ID");
        return;
    }
    json_decref(o->server);
    o->server = json_incref(srv);
    p_state(o);
}

static void p_poll(struct oop *o, int status)
{
    char path[OST_ID_LEN * 3 + 16], enc[OST_ID_LEN * 3];
    int rc;

    cld_urlencode(o->server_id, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/servers/%s", enc);
    rc = oop_call(o, OST_COMPUTE, "GET", path, NULL, 0, p_polled);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /servers/ID");
}

/* a server of ours exists: take it as it is */
static void p_adopt(struct oop *o, json_t *srv)
{
    json_decref(o->server);
    o->server = json_incref(srv);
    ost_copy(o->server_id, sizeof(o->server_id), cld_jstr(srv, "id", ""));
    o->made = true;
    if (o->build_deadline_ms == 0)
        o->build_deadline_ms = cld_now_ms() + o->s->c.build_timeout_ms;
    p_state(o);
}

static void p_relooked(struct oop *o, int status)
{
    json_t *ours;

    if (!oop_answer(o, status, "GET /servers/detail", p_create, OST_CODES(200)))
        return;
    ours = ost_our_servers(o);
    if (ours && json_array_size(ours) > 0) {
        p_adopt(o, json_array_get(ours, 0));
        json_decref(ours);
        return;
    }
    json_decref(ours);
    p_create(o, -1); /* none: post it again */
}

static void p_created(struct oop *o, int status)
{
    json_t *srv = json_object_get(o->call.json, "server");

    if (status < 0 || (o->call.code != 202 && o->call.code != 200) || !json_is_object(srv)) {
        create_failed(o, status, "POST /servers", p_create);
        return;
    }
    ost_copy(o->server_id, sizeof(o->server_id), cld_jstr(srv, "id", ""));
    o->build_deadline_ms = cld_now_ms() + o->s->c.build_timeout_ms;
    orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_INFO,
                          "openstack: server %s (%s) created, flavor %s", o->name, o->server_id,
                          o->flavor_name);
    if (oop_wait(o, o->wait_ms, p_poll) < 0)
        oop_fail(o, ORC_ENOMEM, "out of memory");
}

#define OST_USER_DATA_MAX 65535 /* Nova's limit, base64 included */

/* true (with o->err) when the user data ud (base64) is over Nova's limit */
static bool user_data_too_big(struct oop *o, const char *ud)
{
    size_t n = strlen(ud);

    if (n <= OST_USER_DATA_MAX)
        return false;
    oop_errf(o, ORC_EINVAL, "the user data of %s is %zu bytes of base64, over Nova's %d: its "
             "workloads' commands and environment are too long", o->name, n, OST_USER_DATA_MAX);
    return true;
}

/* The POST /servers body, with ud (the user data, base64; freed here). */
static json_t *server_body(struct oop *o, char *ud)
{
    const struct ost *s = o->s;
    json_t *srv;

    srv = json_pack("{ss ss ss s[{ss}] s[{ss}] s{ss ss ss} ss}", "name", o->name, "flavorRef",
                    o->flavor_id, "imageRef", o->image_id, "networks", "uuid", s->net_id,
                    "security_groups", "name", o->sg_id, "metadata", "orc_name", o->name,
                    "orc_deployment", o->deployment, "orc_site", s->host->site ? s->host->site : "",
                    "user_data", ud);
    s->host->free(ud);
    if (srv && s->c.key_name)
        json_object_set_new(srv, "key_name", json_string(s->c.key_name));
    return srv ? json_pack("{so}", "server", srv) : NULL;
}

/* status < 0 on the first call; else a relook found nothing */
static void p_create(struct oop *o, int status)
{
    json_t *body;
    char *ud;
    int rc;

    if (status == 0) { /* after a lost answer: look first */
        rc = ost_list_servers(o, p_relooked);
        if (rc < 0)
            oop_fail_call(o, rc, "GET /servers/detail");
        return;
    }
    ud = ost_user_data(o->s, o);
    if (ud && user_data_too_big(o, ud)) {
        o->s->host->free(ud);
        oop_then(o, ORC_EINVAL);
        return;
    }
    body = ud ? server_body(o, ud) : NULL;
    if (body == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory (user data)");
        return;
    }
    o->made = true;
    o->resent = true; /* even one POST may have been replayed on a dead kept-alive connection */
    rc = oop_call_json(o, OST_COMPUTE, "POST", "/servers", body, OST_CREATE, p_created);
    if (rc < 0)
        oop_fail_call(o, rc, "POST /servers");
}

/* ---- the security group and its rules ---- */

static bool rule_covers(const json_t *r, uint16_t port)
{
    json_t *lo = json_object_get(r, "port_range_min"), *hi = json_object_get(r, "port_range_max");

    return strcmp(cld_jstr(r, "direction", ""), "ingress") == 0 &&
           strcmp(cld_jstr(r, "ethertype", "IPv4"), "IPv4") == 0 &&
           strcmp(cld_jstr(r, "protocol", ""), "tcp") == 0 && json_is_integer(lo) &&
           json_is_integer(hi) && json_integer_value(lo) <= port && json_integer_value(hi) >= port;
}

static void p_rules(struct oop *o, int status);

static void p_rule_made(struct oop *o, int status)
{
    json_t *r = json_object_get(o->call.json, "security_group_rule");

    if (status == 0 && o->call.code == 409) /* it exists: a retry of one that was made */
        r = json_pack("{ss ss ss si si}", "direction", "ingress", "ethertype", "IPv4", "protocol",
                      "tcp", "port_range_min", (int)o->ports[o->idx], "port_range_max",
                      (int)o->ports[o->idx]);
    else if (status == 0 && o->call.code == 201 && json_is_object(r))
        json_incref(r);
    else {
        if (oop_transient(o, status))
            oop_retry_later(o, status, "POST /v2.0/security-group-rules", p_rules);
        else
            create_failed(o, status, "POST /v2.0/security-group-rules", p_rules);
        return;
    }
    if (r == NULL || json_array_append_new(o->list, r) < 0) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    o->idx++;
    p_rules(o, 0);
}

static void p_rules(struct oop *o, int status)
{
    json_t *r, *body;
    size_t i;
    bool covered = true;
    int rc;

    for (; o->idx < o->nports; o->idx++) {
        covered = false;
        json_array_foreach(o->list, i, r) {
            if (rule_covers(r, o->ports[o->idx])) {
                covered = true;
                break;
            }
        }
        if (!covered)
            break;
    }
    if (o->idx >= o->nports) {
        o->creates = 0;
        p_create(o, -1);
        return;
    }
    body = json_pack("{s{ss ss ss ss si si ss}}", "security_group_rule", "security_group_id",
                     o->sg_id, "direction", "ingress", "ethertype", "IPv4", "protocol", "tcp",
                     "port_range_min", (int)o->ports[o->idx], "port_range_max",
                     (int)o->ports[o->idx], "remote_ip_prefix", "0.0.0.0/0");
    rc = oop_call_json(o, OST_NETWORK, "POST", "/security-group-rules", body, OST_CREATE,
                       p_rule_made);
    if (rc < 0)
        oop_fail_call(o, rc, "POST /v2.0/security-group-rules");
}

static void p_sg_use(struct oop *o, const json_t *sg)
{
    json_t *rules = json_object_get(sg, "security_group_rules");

    ost_copy(o->sg_id, sizeof(o->sg_id), cld_jstr(sg, "id", ""));
    json_decref(o->list);
    o->list = json_is_array(rules) ? json_deep_copy(rules) : json_array();
    if (o->list == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    o->idx = 0;
    p_rules(o, 0);
}

static void p_sg_made(struct oop *o, int status)
{
    json_t *sg = json_object_get(o->call.json, "security_group");

    if (status < 0 || o->call.code != 201 || !json_is_object(sg)) {
        create_failed(o, status, "POST /v2.0/security-groups", p_sg);
        return;
    }
    p_sg_use(o, sg);
}

static void p_sg_listed(struct oop *o, int status)
{
    json_t *ours, *body;
    char desc[160];
    int rc;

    if (!oop_answer(o, status, "GET /v2.0/security-groups", p_sg, OST_CODES(200)))
        return;
    ours = ost_our_objects(o, "security_groups", "name");
    if (ours && json_array_size(ours) > 0) {
        o->made = true;
        p_sg_use(o, json_array_get(ours, 0));
        json_decref(ours);
        return;
    }
    json_decref(ours);
    snprintf(desc, sizeof(desc), "orchestrator: node %.63s of deployment %.40s", o->name,
             o->deployment);
    body = json_pack("{s{ss ss}}", "security_group", "name", o->name, "description", desc);
    o->made = true;
    rc = oop_call_json(o, OST_NETWORK, "POST", "/security-groups", body, OST_CREATE, p_sg_made);
    if (rc < 0)
        oop_fail_call(o, rc, "POST /v2.0/security-groups");
}

static void p_sg(struct oop *o, int status)
{
    int rc = ost_list_by(o, "security-groups", "name", p_sg_listed);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2.0/security-groups");
}

/* ---- the key pair (once per site) ---- */

static void p_keypair(struct oop *o, int status);

static void p_keypair_made(struct oop *o, int status)
{
    if (status == 0 && (o->call.code == 200 || o->call.code == 201 || o->call.code == 409)) {
        o->s->keypair_ok = true;
        o->creates = 0;
        p_sg(o, 0);
        return;
    }
    create_failed(o, status, "POST /os-keypairs", p_keypair);
}

static void p_keypair_found(struct oop *o, int status)
{
    json_t *body;
    int rc;

    if (status == 0 && o->call.code == 200) {
        o->s->keypair_ok = true;
        p_sg(o, 0);
        return;
    }
    if (!oop_answer(o, status, "GET /os-keypairs", p_keypair, OST_CODES(404)))
        return;
    body = json_pack("{s{ss ss}}", "keypair", "name", o->s->c.key_name, "public_key",
                     o->s->c.public_key);
    rc = oop_call_json(o, OST_COMPUTE, "POST", "/os-keypairs", body, OST_CREATE, p_keypair_made);
    if (rc < 0)
        oop_fail_call(o, rc, "POST /os-keypairs");
}

static void p_keypair(struct oop *o, int status)
{
    char path[400], enc[300];
    int rc;

    if (o->s->c.public_key == NULL || o->s->keypair_ok) {
        p_sg(o, 0);
        return;
    }
    if (!cld_urlencode(o->s->c.key_name, enc, sizeof(enc))) {
        oop_fail(o, ORC_EINVAL, "key_name is too long");
        return;
    }
    snprintf(path, sizeof(path), "/os-keypairs/%s", enc);
    rc = oop_call(o, OST_COMPUTE, "GET", path, NULL, 0, p_keypair_found);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /os-keypairs");
}

/* ---- the image ---- */

static struct ost_image *image_slot(struct ost *s, const char *key, bool fresh_only)
{
    struct ost_image *old = &s->images[0];

    for (int i = 0; i < OST_IMAGE_CACHE; i++) {
        struct ost_image *im = &s->images[i];
        if (strcmp(im->key, key) == 0 &&
            (!fresh_only || cld_now_ms() - im->at_ms < OST_SYNC_MAX_AGE_MS))
            return im;
        if (im->at_ms < old->at_ms)
            old = im;
    }
    return fresh_only ? NULL : old;
}

static void image_found(struct oop *o, const char *id)
{
    struct ost_image *im = image_slot(o->s, o->image, false);

    ost_copy(o->image_id, sizeof(o->image_id), id); /* id may be im->id: copy it first */
    if (im->id != id) {
        ost_copy(im->key, sizeof(im->key), o->image);
        ost_copy(im->id, sizeof(im->id), o->image_id);
        im->at_ms = cld_now_ms();
    }
    o->creates = 0;
    p_keypair(o, 0);
}

static bool uuid_like(const char *s)
{
    size_t n = strlen(s);

    return n == 36 && strspn(s, "0123456789abcdefABCDEF-") == n;
}

static void p_image(struct oop *o, int status);

static void p_image_byid(struct oop *o, int status)
{
    if (status == 0 && o->call.code == 200) {
        image_found(o, cld_jstr(o->call.json, "id", o->image));
        return;
    }
    if (oop_transient(o, status)) {
        oop_retry_later(o, status, "GET /v2/images/ID", p_image);
        return;
    }
    if (status == 0 && o->call.code == 404) {
        oop_fail(o, ORC_EINVAL, "image '%s' is not in this cloud's Glance", o->image);
        return;
    }
    oop_fail_call(o, status, "GET /v2/images/ID");
}

static void p_image_listed(struct oop *o, int status)
{
    json_t *imgs = json_object_get(o->call.json, "images"), *im, *best = NULL;
    char path[800], enc[700];
    size_t i;
    int rc;

    if (!oop_answer(o, status, "GET /v2/images", p_image, OST_CODES(200)))
        return;
    json_array_foreach(imgs, i, im) {
        if (strcmp(cld_jstr(im, "name", ""), o->image) != 0)
            continue;
        if (best == NULL || (strcmp(cld_jstr(im, "status", ""), "active") == 0 &&
                             strcmp(cld_jstr(best, "status", ""), "active") != 0))
            best = im;
    }
    if (best) {
        image_found(o, cld_jstr(best, "id", ""));
        return;
    }
    if (!uuid_like(o->image)) {
        oop_fail(o, ORC_EINVAL, "image '%s' is not in this cloud's Glance", o->image);
        return;
    }
    cld_urlencode(o->image, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/images/%s", enc);
    rc = oop_call(o, OST_IMAGE, "GET", path, NULL, 0, p_image_byid);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2/images/ID");
}

static void p_image(struct oop *o, int status)
{
    struct ost_image *im = image_slot(o->s, o->image, true);
    char path[800], enc[700];
    int rc;

    if (im) {
        image_found(o, im->id);
        return;
    }
    if (!cld_urlencode(o->image, enc, sizeof(enc))) {
        oop_fail(o, ORC_EINVAL, "image name too long");
        return;
    }
    snprintf(path, sizeof(path), "/images?name=%s", enc);
    rc = oop_call(o, OST_IMAGE, "GET", path, NULL, 0, p_image_listed);
    if (rc < 0)
        oop_fail_call(o, rc, "GET /v2/images");
}

/* ---- the start: the flavor, a server that exists already ---- */

static void p_lookup(struct oop *o, int status);

static void p_looked(struct oop *o, int status)
{
    json_t *ours;

    if (!oop_answer(o, status, "GET /servers/detail", p_lookup, OST_CODES(200)))
        return;
    ours = ost_our_servers(o);
    if (ours == NULL) {
        oop_fail(o, ORC_ENOMEM, "out of memory");
        return;
    }
    if (json_array_size(ours) > 0) {
        orc_host_log_resource(o->s->host, o->name, ORC_DRV_LOG_INFO,
                              "openstack: server %s exists (%s): taken", o->name,
                              cld_jstr(json_array_get(ours, 0), "status", "?"));
        p_adopt(o, json_array_get(ours, 0));
    } else {
        p_image(o, 0);
    }
    json_decref(ours);
}

static void p_lookup(struct oop *o, int status)
{
    int rc = ost_list_servers(o, p_looked);

    if (rc < 0)
        oop_fail_call(o, rc, "GET /servers/detail");
}

static void p_synced(struct oop *o, int status);

static void p_resync(struct oop *o, int status)
{
    int rc = ost_sync_need(o, p_synced);

    if (rc < 0)
        oop_fail(o, rc, "cannot read the flavors");
}

static void p_synced(struct oop *o, int status)
{
    const struct ost_flavor *f;
    int code = 0;

    if (oop_transient(o, status)) {
        oop_retry_later(o, status, "reading the cloud's flavors and networks", p_resync);
        return;
    }
    if (status < 0) {
        oop_fail_call(o, status, "reading the cloud's flavors and networks");
        return;
    }
    f = ost_flavor_pick(o, &code);
    if (f == NULL) {
        oop_then(o, code);
        return;
    }
    ost_copy(o->flavor_id, sizeof(o->flavor_id), f->id);
    ost_copy(o->flavor_name, sizeof(o->flavor_name), f->name);
    ost_copy(o->gpu_model, sizeof(o->gpu_model), f->model);
    o->flavor_gpus = f->gpus;
    if (o->image[0] == '\0') {
        oop_fail(o, ORC_EINVAL, "no image: the template names none and the site config has no "
                                "image");
        return;
    }
    p_lookup(o, 0);
}

/* The workloads the user data starts (host API 4: req->boot_json), kept in o->boot. */
static int boot_of(struct oop *o, orc_op_t *op, const struct orc_node_req *req)
{
    const json_t *wls;
    json_error_t jerr;

    if (o->s->host->version < 4 || req->boot_json == NULL)
        return 0;
    o->boot = json_loads(req->boot_json, 0, &jerr);
    wls = json_object_get(o->boot, "workloads");
    if (!json_is_array(wls))
        return orc_op_failf(op, ORC_EINVAL, "openstack: the node's boot spec is not "
                            "{\"workloads\": [...]}: %s", o->boot ? "no workloads array" : jerr.text);
    if (json_array_size(wls) == 0) {
        json_decref(o->boot);
        o->boot = NULL;
    }
    return 0;
}

static int copy_request(struct oop *o, orc_op_t *op, const struct orc_node_req *req)
{
    const struct ost_conf *c = &o->s->c;

    ost_copy(o->name, sizeof(o->name), req->name);
    ost_copy(o->deployment, sizeof(o->deployment), req->deployment);
    o->cpus = req->num_cpus;
    o->mem = req->mem_size;
    o->disk = req->disk_size;
    o->gpus = req->num_gpus;
    ost_copy(o->model, sizeof(o->model), req->num_gpus ? req->gpu_model : NULL);
    ost_copy(o->instance_type, sizeof(o->instance_type), req->instance_type);
    ost_copy(o->image, sizeof(o->image), req->image && *req->image ? req->image : c->image);
    if (req->public_ip && c->floating_ip == OST_FIP_NEVER)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "openstack: site %s gives no public addresses (floating_ip: never)",
                            o->s->host->site);
    o->want_fip = c->floating_ip == OST_FIP_ALWAYS || req->public_ip;
    if (req->nports > OST_MAX_PORTS)
        return orc_op_failf(op, ORC_EINVAL, "openstack: at most %d ports per node",
                            OST_MAX_PORTS);
    for (size_t i = 0; i < req->nports; i++)
        o->ports[i] = req->ports[i];
    o->nports = req->nports;
    return boot_of(o, op, req);
}

/* The user data without its flavor (not chosen yet) is over the limit already: the node
 * fails before anything is made. 0, or < 0 with op->error. */
static int early_user_data_check(struct oop *o, orc_op_t *op)
{
    char *ud = ost_user_data(o->s, o);
    bool big = ud && user_data_too_big(o, ud);

    o->s->host->free(ud);
    if (ud == NULL)
        return orc_op_failf(op, ORC_ENOMEM, "openstack: out of memory (user data)");
    return big ? orc_op_failf(op, ORC_EINVAL, "%s", o->err) : 0;
}

int ost_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct ost *s = state;
    struct oop *o;
    int rc;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "openstack: the site is closing");
    if (!ost_name_ok(req->name))
        return orc_op_failf(op, ORC_EINVAL, "openstack: bad resource name '%.80s'",
                            req->name ? req->name : "(null)");
    if (req->kind != ORC_KIND_COMPUTE)
        return orc_op_failf(op, ORC_ENOTSUP, "openstack: node %s: services and jobs run on a "
                            "compute node here (give it a host requirement)", req->node ? req->node : req->name);
    o = oop_new(s, op, OOP_PROVISION);
    if (o == NULL)
        return ORC_ENOMEM;
    rc = copy_request(o, op, req);
    if (rc < 0) {
        o->op = NULL;
        op->drv = NULL;
        oop_done(o, rc);
        return rc;
    }
    rc = early_user_data_check(o, op);
    if (rc < 0) {
        o->op = NULL;
        op->drv = NULL;
        oop_done(o, rc);
        return rc;
    }
    o->then = prov_on_fail;
    o->deadline_ms = cld_now_ms() + s->c.build_timeout_ms + 120000;
    rc = ost_sync_need(o, p_synced);
    return oop_started(o, rc);
}
