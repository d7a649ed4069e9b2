/*
 * The sites file (sites.h): YAML through tosca_yaml_to_json, then a
 * key-table validation of each site that reports every problem with the
 * file name and the site's position and name.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../base.h"
#include "sites.h"
#include "orc/size.h"
#include "tosca/tosca.h"

#define SITES_FILE_MAX ((size_t)4 << 20)

struct ctx {
    const char *file;
    struct orc_sites_errors *errs;
    size_t nerrs;
    bool oom;
};

static void errf(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(struct ctx *c, const char *fmt, ...)
{
    char msg[512];
    char *line, **v;
    va_list ap;

    c->nerrs++;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->errs == NULL)
        return;
    line = *c->file ? orc_asprintf("%s: %s", c->file, msg) : orc_strdup(msg);
    v = line ? orc_realloc(c->errs->lines, (c->errs->count + 1) * sizeof(*v)) : NULL;
    if (v == NULL) {
        orc_free(line);
        c->oom = true;
        return;
    }
    c->errs->lines = v;
    v[c->errs->count++] = line;
}

/* ---- value checks ------------------------------------------------------------ */

static bool name_ok(const char *s, size_t max, bool upper_dot)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                  (i > 0 && (ch == '-' || ch == '_'));
        if (upper_dot)
            ok = ok || (ch >= 'A' && ch <= 'Z') || ch == '.' || ch == '-' || ch == '_';
        if (!ok)
            return false;
    }
    return true;
}

static char *dup_or_oom(struct ctx *c, const char *s)
{
    char *d = orc_strdup(s);

    if (d == NULL)
        c->oom = true;
    return d;
}

/* Compact JSON text in the daemon's allocator (not jansson's). */
static char *dump_compact(const json_t *v)
{
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    char *s;

    if (n == 0)
        return NULL;
    s = orc_malloc(n + 1);
    if (s == NULL)
        return NULL;
    json_dumpb(v, s, n, JSON_COMPACT);
    s[n] = '\0';
    return s;
}

/* ---- one site -------------------------------------------------------------------- */

static void parse_capacity(struct ctx *c, const char *where, const json_t *cap,
                           struct orc_site_capacity *out)
{
    const char *key;
    json_t *v;

    out->cpus = out->mem = out->disk = -1;
    if (!json_is_object(cap)) {
        errf(c, "%s: capacity: expected a mapping", where);
        return;
    }
    json_object_foreach((json_t *)cap, key, v) {
        if (strcmp(key, "cpus") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                errf(c, "%s: capacity.cpus: expected an integer >= 0", where);
            else
                out->cpus = json_integer_value(v);
        } else if (strcmp(key, "mem") == 0 || strcmp(key, "disk") == 0) {
            uint64_t b = 0;
            if (orc_size_json(v, &b) < 0)
                errf(c, "%s: capacity.%s: expected bytes or a size such as \"256 GB\"", where,
                     key);
            else if (key[0] == 'm')
                out->mem = (int64_t)b;
            else
                out->disk = (int64_t)b;
        } else if (strcmp(key, "gpus") == 0) {
            const char *model;
            json_t *n;
            if (!json_is_object(v)) {
                errf(c, "%s: capacity.gpus: expected a mapping of GPU model to count", where);
                continue;
            }
            out->gpus = orc_calloc(json_object_size(v) ? json_object_size(v) : 1,
                                   sizeof(*out->gpus));
            if (out->gpus == NULL) {
                c->oom = true;
                return;
            }
            json_object_foreach(v, model, n) {
                if (!json_is_integer(n) || json_integer_value(n) < 0) {
                    errf(c, "%s: capacity.gpus.%s: expected an integer >= 0", where, model);
                    continue;
                }
                out->gpus[out->ngpus].model = dup_or_oom(c, model);
                out->gpus[out->ngpus++].count = json_integer_value(n);
            }
        } else {
            errf(c, "%s: capacity: unknown key '%s' (known: cpus, mem, disk, gpus)", where, key);
        }
    }
}

static void parse_site(struct ctx *c, size_t i, const json_t *obj, struct orc_site_def *def)
{
    char where[128];
    const char *key;
    json_t *v;
    const json_t *name = json_object_get(obj, "name");

    def->enabled = true;
    def->capacity.cpus = def->capacity.mem = def->capacity.disk = -1;
    if (json_is_string(name))
        snprintf(where, sizeof(where), "sites[%zu] (%s)", i, json_string_value(name));
    else
        snprintf(where, sizeof(where), "sites[%zu]", i);
    json_object_foreach((json_t *)obj, key, v) {
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(v) || !name_ok(json_string_value(v), 63, false))
                errf(c, "%s: name: expected [a-z0-9][a-z0-9_-]*, at most 63 characters", where);
            else
                def->name = dup_or_oom(c, json_string_value(v));
        } else if (strcmp(key, "driver") == 0) {
            if (!json_is_string(v) || !name_ok(json_string_value(v), 32, false))
                errf(c, "%s: driver: expected a driver name ([a-z0-9_-], at most 32)", where);
            else
                def->driver = dup_or_oom(c, json_string_value(v));
        } else if (strcmp(key, "description") == 0) {
            if (!json_is_string(v))
                errf(c, "%s: description: expected a string", where);
            else
                def->description = dup_or_oom(c, json_string_value(v));
        } else if (strcmp(key, "priority") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < -1000 ||
                json_integer_value(v) > 1000)
                errf(c, "%s: priority: expected an integer between -1000 and 1000", where);
            else
                def->priority = (int)json_integer_value(v);
        } else if (strcmp(key, "enabled") == 0) {
            if (!json_is_boolean(v))
                errf(c, "%s: enabled: expected true or false", where);
            else
                def->enabled = json_is_true(v);
        } else if (strcmp(key, "config") == 0) {
            if (!json_is_object(v) && !json_is_null(v)) {
                errf(c, "%s: config: expected a mapping", where);
            } else if (json_is_object(v)) {
                def->config_json = dump_compact(v);
                if (def->config_json == NULL)
                    c->oom = true;
            }
        } else if (strcmp(key, "credentials") == 0) {
            if (!json_is_string(v) || !name_ok(json_string_value(v), 128, true))
                errf(c, "%s: credentials: expected a secret name ([A-Za-z0-9_.-], at most 128)",
                     where);
            else
                def->credentials = dup_or_oom(c, json_string_value(v));
        } else if (strcmp(key, "capacity") == 0) {
            parse_capacity(c, where, v, &def->capacity);
        } else {
            errf(c,
                 "%s: unknown key '%s' (known: name, driver, description, priority, enabled, "
                 "config, credentials, capacity)",
                 where, key);
        }
    }
    if (json_object_get(obj, "name") == NULL)
        errf(c, "%s: name is required", where);
    if (json_object_get(obj, "driver") == NULL)
        errf(c, "%s: driver is required", where);
}

static int own_config(struct orc_site_def *def)
{
    if (def->config_json == NULL)
        def->config_json = orc_strdup("{}");
    return def->config_json ? 0 : ORC_ENOMEM;
}

static int parse_doc(struct ctx *c, const json_t *doc, struct orc_sites *out)
{
    const json_t *list = doc;
    size_t n;

    if (json_is_object(doc)) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)doc, key, v) {
            if (strcmp(key, "version") == 0) {
                if (!json_is_integer(v) || json_integer_value(v) != 1)
                    errf(c, "version: only version 1 is known");
            } else if (strcmp(key, "sites") != 0) {
                errf(c, "unknown top-level key '%s' (known: version, sites)", key);
            }
        }
        list = json_object_get(doc, "sites");
    }
    if (!json_is_array(list)) {
        errf(c, "expected a list of sites (or a mapping with `sites:`)");
        return ORC_EFORMAT;
    }
    n = json_array_size(list);
    if (n == 0) {
        errf(c, "no sites defined");
        return ORC_EFORMAT;
    }
    out->items = orc_calloc(n, sizeof(*out->items));
    if (out->items == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *site = json_array_get(list, i);
        struct orc_site_def *def = &out->items[out->count++];

        if (!json_is_object(site)) {
            errf(c, "sites[%zu]: expected a mapping", i);
            def->enabled = true;
            continue;
        }
        parse_site(c, i, site, def);
        if (own_config(def) < 0)
            c->oom = true;
        for (size_t j = 0; def->name != NULL && j < i; j++)
            if (out->items[j].name != NULL && strcmp(out->items[j].name, def->name) == 0)
                errf(c, "sites[%zu]: name '%s' is already used by sites[%zu]", i, def->name, j);
    }
    if (c->oom)
        return ORC_ENOMEM;
    return c->nerrs ? ORC_EFORMAT : 0;
}

int orc_sites_load_buffer(const char *name, const char *data, size_t len, struct orc_sites *out,
                          struct orc_sites_errors *errs)
{
    struct ctx c = {.file = name ? name : "(sites)", .errs = errs};
    tosca_diags_t diags;
    json_t *doc = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (errs != NULL)
        memset(errs, 0, sizeof(*errs));
    tosca_diags_init(&diags, true);
    rc = tosca_yaml_to_json(c.file, data, len, &doc, &diags);
    if (rc < 0) {
        char buf[1024];
        for (size_t i = 0; i < diags.count; i++) {
            /* the diagnostic already starts with file:line:col */
            tosca_diag_format(&diags.items[i], buf, sizeof(buf));
            c.file = "";
            errf(&c, "%s", buf);
        }
        if (diags.count == 0)
            errf(&c, "cannot read: %s", orc_strerror(rc));
        tosca_diags_fini(&diags);
        return rc == ORC_ENOMEM ? rc : ORC_EFORMAT;
    }
    tosca_diags_fini(&diags);
    rc = parse_doc(&c, doc, out);
    json_decref(doc);
    if (rc < 0)
        orc_sites_free(out);
    return rc;
}

int orc_sites_load_file(const char *path, struct orc_sites *out, struct orc_sites_errors *errs)
{
    struct ctx c = {.file = path, .errs = errs};
    char *data = NULL;
    size_t len = 0;
    FILE *f;
    int rc;

    memset(out, 0, sizeof(*out));
    if (errs != NULL)
        memset(errs, 0, sizeof(*errs));
    f = fopen(path, "rb");
    if (f == NULL) {
        rc = -errno;
        errf(&c, "cannot open: %s", strerror(-rc));
        return ORC_EIO;
    }
    data = orc_malloc(SITES_FILE_MAX + 1);
    if (data == NULL) {
        fclose(f);
        return ORC_ENOMEM;
    }
    len = fread(data, 1, SITES_FILE_MAX + 1, f);
    rc = ferror(f) ? ORC_EIO : 0;
    fclose(f);
    if (rc == 0 && len > SITES_FILE_MAX) {
        errf(&c, "larger than %zu bytes", SITES_FILE_MAX);
        rc = ORC_ELIMIT;
    } else if (rc < 0) {
        errf(&c, "read error");
    } else {
        rc = orc_sites_load_buffer(path, data, len, out, errs);
    }
    orc_free(data);
    return rc;
}

int orc_sites_default(struct orc_sites *out)
{
    struct orc_site_def *d;

    memset(out, 0, sizeof(*out));
    d = orc_calloc(1, sizeof(*d));
    if (d == NULL)
        return ORC_ENOMEM;
    out->items = d;
    out->count = 1;
    d->name = orc_strdup("local");
    d->driver = orc_strdup("local");
    d->description = orc_strdup("this machine (embedded default)");
    d->config_json = orc_strdup("{}");
    d->enabled = true;
    d->capacity.cpus = d->capacity.mem = d->capacity.disk = -1;
    if (d->name == NULL || d->driver == NULL || d->description == NULL ||
        d->config_json == NULL) {
        orc_sites_free(out);
        return ORC_ENOMEM;
    }
    return 0;
}

void orc_sites_free(struct orc_sites *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++) {
        struct orc_site_def *d = &s->items[i];
        orc_free(d->name);
        orc_free(d->driver);
        orc_free(d->description);
        orc_free(d->config_json);
        orc_free(d->credentials);
        for (size_t j = 0; j < d->capacity.ngpus; j++)
            orc_free(d->capacity.gpus[j].model);
        orc_free(d->capacity.gpus);
    }
    orc_free(s->items);
    s->items = NULL;
    s->count = 0;
}

void orc_sites_errors_free(struct orc_sites_errors *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->count; i++)
        orc_free(e->lines[i]);
    orc_free(e->lines);
    e->lines = NULL;
    e->count = 0;
}

const struct orc_site_def *orc_sites_find(const struct orc_sites *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->count; i++)
        if (s->items[i].name != NULL && strcmp(s->items[i].name, name) == 0)
            return &s->items[i];
    return NULL;
}
