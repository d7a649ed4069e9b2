/*
 * /templates (templates.h): the catalog of ready templates. An entry is a JSON object:
 * name, source ("catalog": seeded from the directory; "published": through the API),
 * display_name, tags, icon, description, tosca_definitions_version, metadata, inputs,
 * schema (tosca_template_describe), retired, who published or retired it and when, and
 * the template text (shown on its own route only). Seeded entries live in memory;
 * published and retired ones in the store's meta table under "template/NAME", read
 * again on every request, so that the daemons of one store agree.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "../base.h"
#include "deployments.h"
#include "planner.h"
#include "templates.h"

#define LOG "catalog"
#define KEY_PREFIX "template/"
#define NAME_MAX_LEN 64
#define MAX_FILE_BYTES (4u << 20)
#define DEFAULT_PAGE_SIZE 50
#define MAX_PAGE_SIZE 500

struct seed_job;

struct orc_catalog {
    orc_store_t *store;
    struct orc_planner *planner;
    struct orc_commit_s *commit;
    json_t *seeded;        /* name -> entry */
    struct seed_job *jobs; /* seeded files being read */
    unsigned waiting;      /* of them */
};

/* ---- names and entries ---- */

/* A catalog name: a letter or digit, then letters, digits, '.', '_' or '-'; at most
 * NAME_MAX_LEN bytes. NULL when fine, else what is wrong. */
static const char *name_problem(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0)
        return "is empty";
    if (n > NAME_MAX_LEN)
        return "is longer than 64 bytes";
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool alnum =
            (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
            return "must be a letter or digit, then letters, digits, '.', '_' or '-'";
    }
    return NULL;
}

/* metadata.tag or metadata.tags (a string or a list of strings) as a list. */
static json_t *tags_of(const json_t *metadata)
{
    json_t *tags = json_array();
    const char *keys[] = {"tag", "tags"};

    for (size_t k = 0; tags && k < 2; k++) {
        const json_t *v = json_object_get(metadata, keys[k]);
        size_t i;
        json_t *item;
        if (json_is_string(v))
            json_array_append(tags, (json_t *)v);
        json_array_foreach(json_is_array(v) ? v : NULL, i, item)
        {
            if (json_is_string(item))
                json_array_append(tags, item);
        }
    }
    return tags;
}

static json_t *string_or_null(const json_t *v)
{
    return json_is_string(v) ? json_incref((json_t *)v) : json_null();
}

/* An entry from a template's description (stolen) and text. */
static json_t *entry_new(const char *name, const char *source, const char *text, json_t *desc)
{
    const json_t *md = json_object_get(desc, "metadata");
    const json_t *display = json_object_get(md, "display_name");
    json_t *e = json_pack(
        "{ss ss so so so so sb ss}", "name", name, "source", source, "display_name",
        json_is_string(display) ? json_incref((json_t *)display) : json_string(name), "tags",
        tags_of(md), "icon", string_or_null(json_object_get(md, "icon")), "description",
        string_or_null(json_object_get(desc, "description")), "retired", false, "template", text);

    if (e != NULL && json_object_update_missing(e, desc) < 0) {
        json_decref(e);
        e = NULL;
    }
    json_decref(desc);
    return e;
}

/* Who did something and when: {"issuer":..., "subject":..., "at": API time}. */
static json_t *stamp(const orc_identity_t *id)
{
    char when[ORC_TIME_LEN];

    return json_pack("{ss ss ss}", "issuer", id->issuer, "subject", id->subject, "at",
                     orc_time_format(orc_now_ms(), when));
}

/* ---- what the store holds ---- */

static json_t *parse_stored(const orc_meta_t *m)
{
    json_error_t je;
    json_t *e = json_loads(m->value, 0, &je);

    if (!json_is_object(e) || !json_is_string(json_object_get(e, "template"))) {
        orc_log(ORC_LOG_WARN, LOG, "the store's %s is not a catalog entry: left out", m->key);
        json_decref(e);
        return NULL;
    }
    return e;
}

/* Every entry: the seeded ones, with the store's over them (name -> entry, new). */
static int all_entries(struct orc_catalog *c, json_t **out)
{
    orc_meta_list_t l = {0};
    json_t *all = json_copy(c->seeded);
    int rc = all ? orc_store_meta_list(c->store, KEY_PREFIX, &l) : ORC_ENOMEM;

    for (size_t i = 0; rc == 0 && i < l.count; i++) {
        json_t *e = parse_stored(&l.items[i]);
        if (e && json_object_set_new(all, l.items[i].key + strlen(KEY_PREFIX), e) < 0)
            rc = ORC_ENOMEM;
    }
    orc_meta_list_clear(&l);
    if (rc < 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

/* The entry called name (a new reference): the store's, else the seeded one;
 * ORC_ENOTFOUND when neither. */
static int one_entry(struct orc_catalog *c, const char *name, json_t **out)
{
    char key[sizeof(KEY_PREFIX) + NAME_MAX_LEN];
    char *value = NULL;
    int rc;

    *out = NULL;
    if (name_problem(name))
        return ORC_ENOTFOUND;
    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    rc = orc_store_meta_get(c->store, key, &value);
    if (rc == 0) {
        *out = parse_stored(&(orc_meta_t){key, value});
        orc_free(value);
        return *out ? 0 : ORC_ENOTFOUND;
    }
    if (rc != ORC_ENOTFOUND)
        return rc;
    *out = json_incref(json_object_get(c->seeded, name));
    return *out ? 0 : ORC_ENOTFOUND;
}

static int store_entry(struct orc_catalog *c, const char *name, const json_t *e)
{
    char key[sizeof(KEY_PREFIX) + NAME_MAX_LEN];
    char *text = json_dumps(e, JSON_COMPACT);
    int rc;

    if (text == NULL)
        return ORC_ENOMEM;
    snprintf(key, sizeof(key), KEY_PREFIX "%s", name);
    rc = orc_store_meta_set(c->store, key, text);
    free(text); /* jansson's */
    return rc;
}

int orc_catalog_text(struct orc_catalog *c, const char *name, char **text, char *why, size_t whylen)
{
    json_t *e = NULL;
    int rc = one_entry(c, name, &e);

    *text = NULL;
    if (rc == ORC_ENOTFOUND)
        rc = orc_failf(why, whylen, rc, "there is no template '%.64s' in the catalog", name);
    else if (rc < 0)
        rc = orc_failf(why, whylen, rc, "the catalog cannot be read: %s",
                       orc_store_errmsg(c->store));
    else if (json_is_true(json_object_get(e, "retired")))
        rc = orc_failf(why, whylen, ORC_ECONFLICT, "the template '%.64s' is retired", name);
    else if ((*text = orc_strdup(json_string_value(json_object_get(e, "template")))) == NULL)
        rc = ORC_ENOMEM;
    json_decref(e);
    return rc;
}

/* ---- seeding from a directory ---- */

struct seed_job {
    struct orc_catalog *catalog;
    struct seed_job *next;
    orc_plan_job_t *job;
    char *name;
    char *path;
    char *text;
};

static void seed_job_free(struct seed_job *s)
{
    orc_free(s->name);
    orc_free(s->path);
    orc_free(s->text);
    orc_free(s);
}

static void seed_job_unlink(struct seed_job *s)
{
    struct orc_catalog *c = s->catalog;

    for (struct seed_job **p = &c->jobs; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    c->waiting--;
}

static void log_template_errors(const char *path, const tosca_diags_t *d, int rc)
{
    char line[1024];
    size_t shown = 0;

    orc_log(ORC_LOG_ERROR, LOG, "%s is not a valid template (%s): left out of the catalog", path,
            orc_strerror(rc));
    for (size_t i = 0; d && i < d->count && shown < 10; i++)
        if (d->items[i].severity == TOSCA_SEV_ERROR) {
            orc_log(ORC_LOG_ERROR, LOG, "  %s",
                    tosca_diag_format(&d->items[i], line, sizeof(line)));
            shown++;
        }
}

static void on_seed_described(void *data, int rc, json_t *desc, const tosca_diags_t *d)
{
    struct seed_job *s = data;
    struct orc_catalog *c = s->catalog;
    json_t *e = NULL;

    seed_job_unlink(s);
    if (rc == 0)
        e = entry_new(s->name, "catalog", s->text, desc);
    else if (rc != ORC_ECANCELED)
        log_template_errors(s->path, d, rc);
    if (e && json_object_set_new(c->seeded, s->name, e) == 0)
        orc_log(ORC_LOG_DEBUG, LOG, "%s: template %s", s->path, s->name);
    if (c->waiting == 0)
        orc_log(ORC_LOG_INFO, LOG, "%zu templates in the catalog from its directory",
                json_object_size(c->seeded));
    seed_job_free(s);
}

static bool yaml_file_name(const char *f, size_t *stem)
{
    size_t n = strlen(f);

    if (n > 5 && strcmp(f + n - 5, ".yaml") == 0)
        *stem = n - 5;
    else if (n > 4 && strcmp(f + n - 4, ".yml") == 0)
        *stem = n - 4;
    else
        return false;
    return f[0] != '.';
}

/* A seeded file's text, NUL-terminated: 0, or a failure said in why. */
static int read_text(const char *path, char **out, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    int rc = 0;

    *out = NULL;
    if (f == NULL)
        return orc_failf(why, whylen, ORC_EIO, "cannot open %s: %s", path, strerror(errno));
    buf = orc_malloc(MAX_FILE_BYTES + 1);
    if (buf == NULL)
        rc = ORC_ENOMEM;
    else if ((n = fread(buf, 1, MAX_FILE_BYTES + 1, f)) > MAX_FILE_BYTES)
        rc = orc_failf(why, whylen, ORC_ELIMIT, "%s is over %u bytes", path, MAX_FILE_BYTES);
    else if (ferror(f))
        rc = orc_failf(why, whylen, ORC_EIO, "cannot read %s", path);
    else if (memchr(buf, '\0', n) != NULL)
        rc = orc_failf(why, whylen, ORC_EINVAL, "%s holds a NUL byte: not a template", path);
    fclose(f);
    if (rc < 0) {
        orc_free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int seed_file(struct orc_catalog *c, const char *dir, const char *file, size_t stem)
{
    struct seed_job *s = orc_calloc(1, sizeof(*s));
    char why[512];
    int rc = s ? 0 : ORC_ENOMEM;

    if (rc == 0 && ((s->name = orc_strndup(file, stem)) == NULL ||
                    (s->path = orc_asprintf("%s/%s", dir, file)) == NULL))
        rc = ORC_ENOMEM;
    if (rc == 0 && name_problem(s->name)) {
        orc_log(ORC_LOG_WARN, LOG, "%s: '%s' %s: left out of the catalog", s->path, s->name,
                name_problem(s->name));
        seed_job_free(s);
        return 0;
    }
    if (rc == 0 && (rc = read_text(s->path, &s->text, why, sizeof(why))) < 0)
        orc_log(ORC_LOG_ERROR, LOG, "%s: left out of the catalog", why);
    if (rc == 0)
        rc = orc_planner_describe(c->planner, s->path, s->text, on_seed_described, s, &s->job);
    if (rc < 0) {
        if (s)
            seed_job_free(s);
        return rc == ORC_ENOMEM || rc == ORC_ECANCELED ? rc : 0;
    }
    s->catalog = c;
    s->next = c->jobs;
    c->jobs = s;
    c->waiting++;
    return 0;
}

int orc_catalog_seed(struct orc_catalog *c, const char *dir, bool optional, char *err,
                     size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *ent;
    int rc = 0;

    if (d == NULL && optional && errno == ENOENT) {
        orc_log(ORC_LOG_INFO, LOG, "no catalog directory %s: the catalog starts empty", dir);
        return 0;
    }
    if (d == NULL)
        return orc_failf(err, errlen, errno == ENOENT ? ORC_ENOTFOUND : ORC_EIO,
                         "cannot read the catalog directory %s: %s", dir, strerror(errno));
    while (rc == 0 && (ent = readdir(d)) != NULL) {
        size_t stem;
        if (yaml_file_name(ent->d_name, &stem))
            rc = seed_file(c, dir, ent->d_name, stem);
    }
    closedir(d);
    if (rc < 0)
        return orc_failf(err, errlen, rc, "cannot read the catalog directory %s: %s", dir,
                         orc_strerror(rc));
    if (c->waiting == 0)
        orc_log(ORC_LOG_INFO, LOG, "no templates in the catalog directory %s", dir);
    return 0;
}

bool orc_catalog_ready(void *catalog, const char **reason)
{
    struct orc_catalog *c = catalog;

    *reason = "reading the catalog's templates";
    return c->waiting == 0;
}

int orc_catalog_new(orc_store_t *store, struct orc_planner *planner, struct orc_commit_s *commit,
                    struct orc_catalog **out)
{
    struct orc_catalog *c = orc_calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL || (c->seeded = json_object()) == NULL) {
        orc_free(c);
        return ORC_ENOMEM;
    }
    c->store = store;
    c->planner = planner;
    c->commit = commit;
    *out = c;
    return 0;
}

void orc_catalog_free(struct orc_catalog *c)
{
    if (c == NULL)
        return;
    while (c->jobs) {
        struct seed_job *s = c->jobs;
        c->jobs = s->next;
        orc_planner_abandon(s->job);
        seed_job_free(s);
    }
    json_decref(c->seeded);
    orc_free(c);
}

/* ---- views ---- */

static json_t *links_of(orc_api_req_t *req, const char *name)
{
    return json_pack("[{ss ss} {ss ss}]", "rel", "self", "href",
                     orc_api_req_url(req, "/templates/%s", name), "rel", "template", "href",
                     orc_api_req_url(req, "/templates/%s/template", name));
}

/* An entry as the API shows it: all of it but the text (full), or its summary. */
static json_t *entry_view(orc_api_req_t *req, const json_t *e, bool full)
{
    static const char *const summary[] = {
        "name", "source",      "display_name", "tags",
        "icon", "description", "retired",      "tosca_definitions_version"};
    const char *name = json_string_value(json_object_get(e, "name"));
    json_t *v;

    if (full) {
        v = json_copy((json_t *)e);
        if (v)
            json_object_del(v, "template");
    } else {
        v = json_object();
        for (size_t i = 0; v && i < sizeof(summary) / sizeof(summary[0]); i++) {
            json_t *f = json_object_get(e, summary[i]);
            if (f)
                json_object_set(v, summary[i], f);
        }
    }
    if (v && json_object_set_new(v, "links", links_of(req, name ? name : "")) < 0) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* ---- list and show ---- */

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    for (; hay && *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

static bool has_tag(const json_t *e, const char *tag)
{
    size_t i;
    json_t *t;

    json_array_foreach(json_object_get(e, "tags"), i, t)
    {
        if (strcasecmp(json_string_value(t), tag) == 0)
            return true;
    }
    return false;
}

static bool text_matches(const json_t *e, const char *q)
{
    static const char *const fields[] = {"name", "display_name", "description"};
    size_t i;
    json_t *t;

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (contains_ci(json_string_value(json_object_get(e, fields[i])), q))
            return true;
    json_array_foreach(json_object_get(e, "tags"), i, t)
    {
        if (contains_ci(json_string_value(t), q))
            return true;
    }
    return false;
}

/* ?retired: false (the default) hides retired entries, true shows only them, all both. */
static int retired_filter(orc_api_req_t *req, int *out)
{
    const char *v = orc_api_req_query(req, "retired");

    *out = 0;
    if (v == NULL || *v == '\0' || strcmp(v, "false") == 0)
        return 0;
    if (strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "all") == 0)
        *out = 2;
    else
        return orc_api_req_fail(req, 400, "retired must be true, false or all, not '%.40s'", v);
    return 0;
}

static bool listed(const json_t *e, const char *q, const char *tag, int retired)
{
    bool is_retired = json_is_true(json_object_get(e, "retired"));

    if ((retired == 0 && is_retired) || (retired == 1 && !is_retired))
        return false;
    return (q == NULL || text_matches(e, q)) && (tag == NULL || *tag == '\0' || has_tag(e, tag));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The matching entries' summaries, by name, the page's only. */
static json_t *list_page(orc_api_req_t *req, json_t *all, const char *q, const char *tag,
                         int retired, uint32_t page, uint32_t size, int64_t *total)
{
    const char **names = orc_api_req_alloc(req, (json_object_size(all) + 1) * sizeof(*names));
    json_t *content = json_array(), *e;
    const char *name;
    size_t n = 0;

    json_object_foreach(all, name, e)
    {
        if (listed(e, q, tag, retired))
            names[n++] = name;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    *total = (int64_t)n;
    for (size_t i = (size_t)page * size; content && i < n && i < ((size_t)page + 1) * size; i++)
        json_array_append_new(content, entry_view(req, json_object_get(all, names[i]), false));
    return content;
}

static int list(orc_api_req_t *req, void *data)
{
    struct orc_catalog *c = data;
    const char *q = orc_api_req_query(req, "q"), *tag = orc_api_req_query(req, "tag");
    uint32_t page, size;
    int64_t total = 0;
    json_t *all = NULL, *content;
    int retired, rc;

    if ((rc = orc_api_uint_query(req, "page", 0, 1000000, &page)) < 0 ||
        (rc = orc_api_uint_query(req, "size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &size)) < 0 ||
        (rc = retired_filter(req, &retired)) < 0)
        return rc;
    if (size == 0)
        size = DEFAULT_PAGE_SIZE;
    if ((rc = all_entries(c, &all)) < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(c->store));
    content = list_page(req, all, q, tag, retired, page, size, &total);
    json_decref(all);
    if (content == NULL)
        return orc_api_req_fail(req, 500, "out of memory");
    return orc_api_send_json_new(req, 200,
                                 orc_api_paged(req, "/templates", content, page, size, total));
}

static int load_entry(orc_api_req_t *req, struct orc_catalog *c, json_t **e)
{
    const char *name = orc_api_req_param(req, "name");
    int rc = one_entry(c, name, e);

    if (rc == ORC_ENOTFOUND)
        return orc_api_req_fail(req, 404, "There is no template '%.64s' in the catalog", name);
    if (rc < 0)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(c->store));
    return 0;
}

static int show(orc_api_req_t *req, void *data)
{
    json_t *e = NULL;
    int rc = load_entry(req, data, &e);

    if (rc == 0)
        rc = orc_api_send_json_new(req, 200, entry_view(req, e, true));
    json_decref(e);
    return rc;
}

static int show_text(orc_api_req_t *req, void *data)
{
    json_t *e = NULL;
    int rc = load_entry(req, data, &e);
    const json_t *t = json_object_get(e, "template");

    if (rc == 0)
        rc = orc_api_send_body(req, 200, "application/yaml; charset=utf-8", json_string_value(t),
                               json_string_length(t));
    json_decref(e);
    return rc;
}

/* ---- publish and retire (operators) ---- */

/* A publish waiting for libtosca's description of its template. */
struct publish_wait {
    struct orc_catalog *catalog;
    orc_api_req_t *req;
    orc_plan_job_t *job;
    json_t *body; /* name and text point into it */
    const char *name;
    const char *text;
    bool replaces;
    int rc;
    json_t *desc;
    const tosca_diags_t *diags;
};

static void publish_wait_free(struct publish_wait *w)
{
    json_decref(w->body);
    json_decref(w->desc);
    orc_free(w);
}

static void publish_gone(orc_api_req_t *req, void *data)
{
    struct publish_wait *w = data;

    (void)req;
    orc_planner_abandon(w->job);
    publish_wait_free(w);
}

static int publish_finish(orc_api_req_t *req, void *data)
{
    struct publish_wait *w = data;
    struct orc_catalog *c = w->catalog;
    json_t *e;
    int rc;

    if ((rc = orc_api_plan_failed(req, w->rc, w->diags)) < 0)
        return rc;
    e = entry_new(w->name, "published", w->text, w->desc);
    w->desc = NULL;
    if (e == NULL || json_object_set_new(e, "published", stamp(orc_api_req_identity(req))) < 0) {
        json_decref(e);
        return orc_api_req_fail(req, 500, "out of memory");
    }
    rc = store_entry(c, w->name, e);
    if (rc < 0) {
        json_decref(e);
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(c->store));
    }
    orc_log_ctx(ORC_LOG_INFO, LOG, &(orc_log_ctx_t){0}, "template %s %s by %s", w->name,
                w->replaces ? "published again" : "published", orc_api_req_identity(req)->subject);
    rc = orc_api_reply_when_durable(req, c->commit, w->replaces ? 200 : 201,
                                    entry_view(req, e, true));
    json_decref(e);
    return rc;
}

static void on_publish_described(void *data, int rc, json_t *desc, const tosca_diags_t *d)
{
    struct publish_wait *w = data;

    w->job = NULL;
    w->rc = rc;
    w->desc = desc;
    w->diags = d;
    orc_api_req_continue(w->req, publish_finish, w);
    publish_wait_free(w);
}

static int publish_body(orc_api_req_t *req, struct publish_wait *w)
{
    const json_t *name = json_object_get(w->body, "name"),
                 *t = json_object_get(w->body, "template");
    const char *problem;

    if (!json_is_object(w->body))
        return orc_api_req_fail(req, 400, "the body must be a JSON object");
    if (!json_is_string(name))
        return orc_api_req_fail(req, 400, "name must be a string: the template's catalog name");
    if ((problem = name_problem(json_string_value(name))) != NULL)
        return orc_api_req_fail(req, 400, "name '%.64s' %s", json_string_value(name), problem);
    if (!json_is_string(t) || json_string_length(t) == 0)
        return orc_api_req_fail(req, 400, "A TOSCA template must be provided");
    if (strlen(json_string_value(t)) != json_string_length(t))
        return orc_api_req_fail(req, 400, "the template holds a NUL character");
    w->name = json_string_value(name);
    w->text = json_string_value(t);
    return 0;
}

/* Notes whether the name is taken and hands the text to the planner. */
static int describe_then_finish(orc_api_req_t *req, struct orc_catalog *c, struct publish_wait *w)
{
    json_t *old = NULL;
    int rc = one_entry(c, w->name, &old);

    if (rc < 0 && rc != ORC_ENOTFOUND)
        return orc_api_req_store_fail(req, rc, orc_store_errmsg(c->store));
    w->replaces = old != NULL;
    json_decref(old);
    rc = orc_planner_describe(c->planner, "template.yaml", w->text, on_publish_described, w,
                              &w->job);
    return rc < 0 ? orc_api_planner_refused(req, rc, c->planner) : 0;
}

static int publish(orc_api_req_t *req, void *data)
{
    struct orc_catalog *c = data;
    struct publish_wait *w = orc_calloc(1, sizeof(*w));
    int rc = w ? orc_api_req_json(req, &w->body) : orc_api_req_fail(req, 500, "out of memory");

    if (rc == 0)
        rc = publish_body(req, w);
    if (rc == 0)
        rc = describe_then_finish(req, c, w);
    if (rc == 0) {
        w->catalog = c;
        w->req = req;
        rc = orc_api_req_defer(req, publish_gone, w);
        if (rc == 0)
            return 0;
        orc_planner_abandon(w->job);
        rc = orc_api_req_fail(req, 500, "cannot wait for the template: %s", orc_strerror(rc));
    }
    if (w)
        publish_wait_free(w);
    return rc;
}

static int retire(orc_api_req_t *req, void *data)
{
    struct orc_catalog *c = data;
    json_t *e = NULL;
    int rc = load_entry(req, c, &e);

    if (rc == 0 && !json_is_true(json_object_get(e, "retired"))) {
        json_t *copy = json_deep_copy(e);
        if (copy == NULL || json_object_set_new(copy, "retired", json_true()) < 0 ||
            json_object_set_new(copy, "retired_by", stamp(orc_api_req_identity(req))) < 0)
            rc = orc_api_req_fail(req, 500, "out of memory");
        else if ((rc = store_entry(c, json_string_value(json_object_get(copy, "name")), copy)) < 0)
            rc = orc_api_req_store_fail(req, rc, orc_store_errmsg(c->store));
        else
            orc_log(ORC_LOG_INFO, LOG, "template %s retired by %s",
                    json_string_value(json_object_get(copy, "name")),
                    orc_api_req_identity(req)->subject);
        json_decref(e);
        e = copy;
    }
    if (rc == 0)
        rc = orc_api_reply_when_durable(req, c->commit, 200, entry_view(req, e, true));
    json_decref(e);
    return rc;
}

/* ---- routes ---- */

int orc_api_templates_register(orc_api_t *api, struct orc_catalog *c)
{
    static const char entry_schema[] =
        "{\"type\":\"object\",\"required\":[\"name\",\"source\",\"display_name\",\"tags\","
        "\"retired\",\"links\"],\"properties\":{"
        "\"name\":{\"type\":\"string\"},"
        "\"source\":{\"type\":\"string\",\"enum\":[\"catalog\",\"published\"]},"
        "\"display_name\":{\"type\":\"string\"},"
        "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
        "\"icon\":{\"type\":\"string\",\"nullable\":true},"
        "\"description\":{\"type\":\"string\",\"nullable\":true},"
        "\"retired\":{\"type\":\"boolean\"},"
        "\"tosca_definitions_version\":{\"type\":\"string\"},"
        "\"metadata\":{\"type\":\"object\"},"
        "\"inputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\","
        "\"type\",\"required\",\"secret\",\"constraints\"]}},"
        "\"schema\":{\"type\":\"object\",\"description\":\"The settable inputs as a JSON Schema "
        "(TOSCA types that JSON lacks are strings with x-tosca-type)\"},"
        "\"published\":{\"type\":\"object\"},\"retired_by\":{\"type\":\"object\"},"
        "\"links\":{\"type\":\"array\"}}}";
    static const orc_api_param_doc_t list_query[] = {
        {"q", "Text searched, case-insensitive, in name, display name, description and tags", NULL,
         false},
        {"tag", "Only entries with this tag", NULL, false},
        {"retired", "false (the default): entries in use; true: the retired ones; all: both",
         "{\"type\":\"string\",\"enum\":[\"false\",\"true\",\"all\"]}", false},
        {"page", "Page number, from 0", "{\"type\":\"integer\",\"minimum\":0}", false},
        {"size", "Entries per page (default 50, at most 500)",
         "{\"type\":\"integer\",\"minimum\":0}", false},
        {NULL, NULL, NULL, false}};
    static const orc_api_response_doc_t listed_docs[] = {
        {200, "A page of entries (summaries: no inputs), by name", "application/json",
         "{\"type\":\"object\",\"required\":[\"content\",\"page\",\"links\"],\"properties\":{"
         "\"content\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/"
         "TemplateSummary\"}}}}"},
        {400, "A bad query parameter", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t one_docs[] = {
        {200, "The entry", "application/json", "{\"$ref\":\"#/components/schemas/Template\"}"},
        {404, "No such entry", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t text_docs[] = {
        {200, "The template text", "application/yaml", NULL},
        {404, "No such entry", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t published_docs[] = {
        {201, "Published", "application/json", "{\"$ref\":\"#/components/schemas/Template\"}"},
        {200,
         "Published again: it replaces the entry of that name (and takes it out of "
         "retirement)",
         "application/json", "{\"$ref\":\"#/components/schemas/Template\"}"},
        {400, "Bad body or an invalid template (each error with file:line:col)", "application/json",
         NULL},
        {403, "Not an operator", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t retired_docs[] = {
        {200, "Retired (or retired already): no new deployments from it", "application/json",
         "{\"$ref\":\"#/components/schemas/Template\"}"},
        {403, "Not an operator", "application/json", NULL},
        {404, "No such entry", "application/json", NULL},
        {0, NULL, NULL, NULL}};
    const orc_api_route_t routes[] = {
        {"GET", "/templates", list, c, "List the catalog's templates",
         "Seeded from the catalog directory and published through the API; a user deploys one "
         "with POST /deployments {\"templateName\": NAME, \"parameters\": {...}}.",
         "Templates", NULL, list_query, listed_docs, ORC_API_ACCESS_USER},
        {"GET", "/templates/{name}", show, c, "One template of the catalog",
         "Its metadata, its inputs as written and as a JSON Schema for a deploy form.", "Templates",
         NULL, NULL, one_docs, ORC_API_ACCESS_USER},
        {"GET", "/templates/{name}/template", show_text, c, "The template text", NULL, "Templates",
         NULL, NULL, text_docs, ORC_API_ACCESS_USER},
        {"POST", "/templates", publish, c, "Publish a template",
         "Validates the template as a deployment's is (a 400 names file:line:col for each "
         "error) and adds it under name, or replaces the entry of that name.",
         "Templates",
         "{\"type\":\"object\",\"required\":[\"name\",\"template\"],\"properties\":{"
         "\"name\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$\"},"
         "\"template\":{\"type\":\"string\",\"minLength\":1}}}",
         NULL, published_docs, ORC_API_ACCESS_OPERATOR},
        {"DELETE", "/templates/{name}", retire, c, "Retire a template",
         "It stays readable (retired: true, listed with ?retired=true) for the deployments "
         "made from it; new deployments from it are refused (409). Publishing it again brings "
         "it back.",
         "Templates", NULL, NULL, retired_docs, ORC_API_ACCESS_OPERATOR},
    };
    int rc = orc_api_register_schema(api, "Template", entry_schema);

    if (rc == 0)
        rc = orc_api_register_schema(api, "TemplateSummary", entry_schema);
    if (rc == ORC_ECONFLICT)
        rc = 0;
    if (rc < 0)
        return rc;
    return orc_api_register_all(api, routes, sizeof(routes) / sizeof(routes[0]));
}
