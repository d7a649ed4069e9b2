/*
 * The store records' JSON codec (json.h): deployment, resource and event
 * objects as the REST API renders them. Objects are built with a small
 * builder that remembers the first allocation failure, so each renderer is a
 * flat list of fields with one check at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct jb {
    json_t *obj;
    int rc;
};

static void jb_init(struct jb *b)
{
    b->obj = json_object();
    b->rc = b->obj ? 0 : ORC_ENOMEM;
}

/* Sets key to v, taking v's reference; v NULL means an allocation failed. */
static void jb_set(struct jb *b, const char *key, json_t *v)
{
    if (b->rc < 0 || v == NULL || json_object_set_new(b->obj, key, v) != 0) {
        json_decref(v);
        b->rc = ORC_ENOMEM;
    }
}

/* A JSON string of s. Text that is not UTF-8 (a driver's raw error output,
 * say) is sent with each non-ASCII byte as '?' rather than not at all. */
static json_t *str(const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *copy;

    if (j != NULL || s == NULL)
        return j;
    copy = orc_strdup(s);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    orc_free(copy);
    return j;
}

static void jb_str(struct jb *b, const char *key, const char *s)
{
    jb_set(b, key, str(s));
}

/* A string field, skipped when s is NULL (optional fields). */
static void jb_opt_str(struct jb *b, const char *key, const char *s)
{
    if (s != NULL)
        jb_set(b, key, str(s));
}

static void jb_time(struct jb *b, const char *key, int64_t ms)
{
    char buf[ORC_TIME_LEN];

    jb_set(b, key, json_string(orc_time_format(ms, buf)));
}

/* A copy of a JSON value, skipped when v is NULL. */
static void jb_opt_copy(struct jb *b, const char *key, const json_t *v)
{
    if (v != NULL)
        jb_set(b, key, json_deep_copy(v));
}

static int jb_finish(struct jb *b, json_t **out)
{
    if (b->rc < 0) {
        json_decref(b->obj);
        return b->rc;
    }
    *out = b->obj;
    return 0;
}

/* Length of base_url without trailing slashes. */
static int base_len(const char *base_url)
{
    size_t n = base_url ? strlen(base_url) : 0;

    while (n > 0 && base_url[n - 1] == '/')
        n--;
    return (int)n;
}

/* {"rel": rel, "href": base/deployments/uuid[suffix]} */
static json_t *make_link(const char *rel, const char *base_url, const char *uuid,
                         const char *suffix, const char *id)
{
    char *href = orc_asprintf("%.*s/deployments/%s%s%s", base_len(base_url),
                              base_url ? base_url : "", uuid, suffix, id ? id : "");
    json_t *l = href ? json_pack("{s:s, s:s}", "rel", rel, "href", href) : NULL;

    orc_free(href);
    return l;
}

/* An array of n links; a NULL among them (OOM) fails the array. Takes the
 * references of the items. */
static json_t *links(json_t *const *items, int n)
{
    json_t *arr = json_array();
    bool ok = arr != NULL;

    for (int i = 0; i < n; i++) {
        if (items[i] == NULL || (ok && json_array_append(arr, items[i]) != 0))
            ok = false;
        json_decref(items[i]);
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* ---- deployments as text: GET /deployments/{id} is the API's hot path ---- */

/* A growable text buffer that remembers the first allocation failure. */
struct tb {
    char *buf;
    size_t len, cap;
    int rc;
};

static void tb_raw(struct tb *b, const char *s, size_t n)
{
    if (b->rc < 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *nb;
        while (b->len + n + 1 > cap)
            cap *= 2;
        nb = orc_realloc(b->buf, cap);
        if (nb == NULL) {
            b->rc = ORC_ENOMEM;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void tb_lit(struct tb *b, const char *s)
{
    tb_raw(b, s, strlen(s));
}

/* Bytes of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s)
{
    size_t n = s[0] < 0x80                   ? 1
               : s[0] >= 0xc2 && s[0] < 0xe0 ? 2
               : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
               : s[0] >= 0xf0 && s[0] < 0xf5 ? 4
                                             : 0;

    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate, beyond U+10FFFF */
    return n;
}

/* s as a JSON string; bytes that are not UTF-8 are sent as '?' (as str()). */
static void tb_str(struct tb *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    char esc[8];

    tb_raw(b, "\"", 1);
    while (*p) {
        size_t run = 0, n;
        while (p[run] >= 0x20 && p[run] != '"' && p[run] != '\\' && p[run] < 0x80)
            run++;
        tb_raw(b, (const char *)p, run);
        p += run;
        if (*p == '\0')
            break;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p++;
            tb_raw(b, esc, 2);
        } else if (*p < 0x20) {
            tb_raw(b, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p++));
        } else if ((n = utf8_seq(p)) > 0) {
            tb_raw(b, (const char *)p, n);
            p += n;
        } else {
            tb_raw(b, "?", 1);
            p++;
        }
    }
    tb_raw(b, "\"", 1);
}

/* ,"key":"value" (no comma right after the opening brace) */
static void tb_field(struct tb *b, const char *key, const char *value)
{
    bool first = b->len > 0 && b->buf[b->len - 1] == '{';

    tb_raw(b, first ? "\"" : ",\"", first ? 1 : 2);
    tb_lit(b, key);
    tb_raw(b, "\":", 2);
    tb_str(b, value);
}

static void tb_opt_field(struct tb *b, const char *key, const char *value)
{
    if (value != NULL)
        tb_field(b, key, value);
}

static void tb_time(struct tb *b, const char *key, int64_t ms)
{
    char buf[ORC_TIME_LEN];

    tb_field(b, key, orc_time_format(ms, buf));
}

/* ,"key":<v as compact JSON> */
static void tb_json(struct tb *b, const char *key, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (text == NULL) {
        b->rc = ORC_ENOMEM;
        return;
    }
    tb_raw(b, ",\"", 2);
    tb_lit(b, key);
    tb_raw(b, "\":", 2);
    tb_lit(b, text);
    free(text); /* jansson's allocator */
}

static void tb_link(struct tb *b, const char *rel, const char *base_url, const char *uuid,
                    const char *suffix)
{
    char *href = orc_asprintf("%.*s/deployments/%s%s", base_len(base_url), base_url ? base_url : "",
                              uuid, suffix);

    if (href == NULL) {
        b->rc = ORC_ENOMEM;
        return;
    }
    tb_lit(b, "{\"rel\":");
    tb_str(b, rel);
    tb_lit(b, ",\"href\":");
    tb_str(b, href);
    tb_lit(b, "}");
    orc_free(href);
}

int orc_deployment_json_text(const orc_deployment_t *d, const char *base_url, char **text,
                             size_t *len)
{
    struct tb b = {0};

    if (d == NULL || text == NULL || orc_dep_status_name(d->status) == NULL ||
        orc_task_name(d->task) == NULL)
        return ORC_EINVAL;
    *text = NULL;
    tb_lit(&b, "{");
    tb_field(&b, "uuid", d->uuid);
    tb_time(&b, "creationTime", d->created_ms);
    tb_time(&b, "updateTime", d->updated_ms);
    tb_field(&b, "status", orc_dep_status_name(d->status));
    tb_opt_field(&b, "statusReason", d->status_reason);
    tb_field(&b, "task", orc_task_name(d->task));
    if (d->outputs)
        tb_json(&b, "outputs", d->outputs);
    else
        tb_lit(&b, ",\"outputs\":{}");
    tb_opt_field(&b, "physicalId", d->physical_id);
    tb_opt_field(&b, "callback", d->callback);
    tb_opt_field(&b, "userGroup", d->user_group);
    tb_opt_field(&b, "cloudProviderName", d->cloud_provider_name);
    if (d->cloud_provider_endpoint)
        tb_json(&b, "cloudProviderEndpoint", d->cloud_provider_endpoint);
    tb_lit(&b, ",\"createdBy\":{\"issuer\":");
    tb_str(&b, d->created_by.issuer);
    tb_lit(&b, ",\"subject\":");
    tb_str(&b, d->created_by.subject);
    tb_lit(&b, "},\"links\":[");
    tb_link(&b, "self", base_url, d->uuid, "");
    tb_lit(&b, ",");
    tb_link(&b, "resources", base_url, d->uuid, "/resources");
    tb_lit(&b, ",");
    tb_link(&b, "template", base_url, d->uuid, "/template");
    tb_lit(&b, "]}");
    if (b.rc < 0) {
        orc_free(b.buf);
        return b.rc;
    }
    *text = b.buf;
    if (len)
        *len = b.len;
    return 0;
}

/* The same as an object: one renderer for both, so they never differ. */
int orc_deployment_to_json(const orc_deployment_t *d, const char *base_url, json_t **out)
{
    json_error_t err;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (out == NULL)
        return ORC_EINVAL;
    *out = NULL;
    rc = orc_deployment_json_text(d, base_url, &text, &len);
    if (rc < 0)
        return rc;
    *out = json_loadb(text, len, 0, &err);
    orc_free(text);
    return *out ? 0 : ORC_ENOMEM;
}

int orc_resource_to_json(const orc_resource_t *r, const char *base_url, json_t **out)
{
    struct jb b;

    if (r == NULL || out == NULL || orc_res_state_name(r->state) == NULL)
        return ORC_EINVAL;
    *out = NULL;
    jb_init(&b);
    jb_str(&b, "uuid", r->uuid);
    jb_time(&b, "creationTime", r->created_ms);
    jb_time(&b, "updateTime", r->updated_ms);
    jb_opt_str(&b, "physicalId", r->physical_id);
    jb_str(&b, "state", orc_res_state_name(r->state));
    jb_str(&b, "toscaNodeType", r->node_type);
    jb_str(&b, "toscaNodeName", r->node_name);
    jb_set(&b, "requiredBy", r->required_by ? json_deep_copy(r->required_by) : json_array());
    jb_opt_copy(&b, "metadata", r->metadata);
    json_t *l[] = {make_link("deployment", base_url, r->deployment_uuid, "", NULL),
                   make_link("self", base_url, r->deployment_uuid, "/resources/", r->uuid)};
    jb_set(&b, "links", links(l, 2));
    return jb_finish(&b, out);
}

int orc_event_to_json(const orc_event_t *e, json_t **out)
{
    struct jb b;

    if (e == NULL || out == NULL)
        return ORC_EINVAL;
    *out = NULL;
    jb_init(&b);
    jb_set(&b, "id", json_integer((json_int_t)e->id));
    jb_time(&b, "time", e->time_ms);
    jb_set(&b, "timeMs", json_integer((json_int_t)e->time_ms));
    jb_str(&b, "type", e->type);
    jb_str(&b, "message", e->message);
    jb_opt_copy(&b, "data", e->data);
    return jb_finish(&b, out);
}
