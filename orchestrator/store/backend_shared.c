/*
 * What every backend does the same way: the contents of the events that
 * state changes append (type, one-line message, data), the compare half of a
 * deployment update, which insert errors belong to one item of a batch, and
 * the growth of the arrays lists hand out. The backends store what these
 * build, in the same transaction as the change (store_backend.h).
 */
#include <stdio.h>
#include <string.h>

#include "store_backend.h"

int orc__store_grow(void **items, size_t *cap, size_t count, size_t size)
{
    size_t before = *cap;
    int rc = orc_reserve_one(items, cap, count, size);

    if (rc == 0 && *cap > before) /* the new items start zeroed */
        memset((char *)*items + before * size, 0, (*cap - before) * size);
    return rc;
}

int orc__store_check_cas(orc_store_t *s, const orc_dep_update_t *u, int64_t version,
                         orc_dep_status_t status)
{
    if (u->expect_version && u->expect_version != version)
        return orc__store_failf(s, ORC_ECONFLICT,
                                "the deployment %s changed (version %lld, expected %lld)", u->uuid,
                                (long long)version, (long long)u->expect_version);
    if (u->from_statuses && !(u->from_statuses & ORC_DEP_MASK(status)))
        return orc__store_failf(s, ORC_ECONFLICT, "the deployment %s is %s", u->uuid,
                                orc_dep_status_name(status));
    return 0;
}

bool orc__store_item_error(int rc)
{
    return rc == ORC_ECONFLICT || rc == ORC_EINVAL || rc == ORC_ENOTFOUND || rc == ORC_ELIMIT;
}

json_t *orc__store_status_data(orc_dep_status_t st, int64_t version)
{
    return json_pack("{s:s, s:I}", "status", orc_dep_status_name(st), "version",
                     (json_int_t)version);
}

int orc__store_update_event(const orc_dep_update_t *u, orc_dep_status_t status, int64_t version,
                            struct orc__store_event *ev)
{
    const char *reason = u->values->status_reason;
    bool st = (u->set & ORC_DEP_F_STATUS) != 0;

    memset(ev, 0, sizeof(*ev));
    ev->type = u->event_type ? u->event_type : st ? "deployment.status" : "deployment.updated";
    ev->data = u->event_data ? json_incref(u->event_data) : orc__store_status_data(status, version);
    if (u->event_message == NULL && st)
        ev->owned = (u->set & ORC_DEP_F_STATUS_REASON) && reason
                        ? orc_asprintf("status %s: %s", orc_dep_status_name(status), reason)
                        : orc_asprintf("status %s", orc_dep_status_name(status));
    ev->message = u->event_message ? u->event_message
                  : ev->owned      ? ev->owned
                                   : "deployment updated";
    if (ev->data == NULL || (u->event_message == NULL && st && ev->owned == NULL)) {
        orc__store_event_clear(ev);
        return ORC_ENOMEM;
    }
    return 0;
}

int orc__store_attempt_event(int attempt, const char *site, const char *error, bool ended, bool ok,
                             struct orc__store_event *ev)
{
    int rc = 0;

    memset(ev, 0, sizeof(*ev));
    ev->type = ended ? "attempt.ended" : "attempt.started";
    ev->data = json_pack("{s:i, s:s}", "attempt", attempt, "site", site);
    ev->owned = !ended ? orc_asprintf("attempt %d on site %s started", attempt, site)
                : ok   ? orc_asprintf("attempt %d on site %s succeeded", attempt, site)
                       : orc_asprintf("attempt %d on site %s failed: %s", attempt, site,
                                      error ? error : "unknown error");
    ev->message = ev->owned;
    if (ev->data && ended)
        rc = json_object_set_new(ev->data, "ok", json_boolean(ok));
    if (ev->data && ended && !ok && error && rc == 0)
        rc = json_object_set_new(ev->data, "error", json_string(error));
    if (ev->data == NULL || ev->owned == NULL || rc != 0) {
        orc__store_event_clear(ev);
        return ORC_ENOMEM;
    }
    return 0;
}

/* s as the inside of a JSON string (quotes, backslashes and control
 * characters escaped); false when out does not have the room. */
static bool json_escape(const char *s, char *out, size_t size)
{
    size_t n = 0;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (n + 7 >= size)
            return false;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return true;
}

/* The data is written as text when the node name fits the buffer: this is on
 * the engine's path for every transition. */
int orc__store_resource_event(const char *type, const char *uuid, const char *node, int index,
                              orc_res_state_t st, const char *message, struct orc__store_event *ev)
{
    char esc[512];

    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    if (message == NULL)
        ev->owned = orc_asprintf("%s[%d]: %s", node, index, orc_res_state_name(st));
    ev->message = message ? message : ev->owned;
    if (json_escape(node, esc, sizeof(esc)))
        snprintf(ev->data_text, sizeof(ev->data_text),
                 "{\"resource\":\"%s\",\"node\":\"%s\",\"index\":%d,\"state\":\"%s\"}", uuid, esc,
                 index, orc_res_state_name(st));
    else /* a node name too long for the buffer: jansson writes it */
        ev->data = json_pack("{s:s, s:s, s:i, s:s}", "resource", uuid, "node", node, "index",
                             index, "state", orc_res_state_name(st));
    if (ev->message == NULL || (ev->data_text[0] == '\0' && ev->data == NULL)) {
        orc__store_event_clear(ev);
        return ORC_ENOMEM;
    }
    return 0;
}

void orc__store_event_clear(struct orc__store_event *ev)
{
    orc_free(ev->owned);
    json_decref(ev->data);
    memset(ev, 0, sizeof(*ev));
}
