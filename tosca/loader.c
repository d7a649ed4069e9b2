/*
 * Loading: the context and its cache of parsed definitions files, reading a
 * template from disk, memory or a CSAR, `tosca_definitions_version`, the
 * top-level keys of each version, imports (relative files, repositories,
 * namespace prefixes, URLs through the offline import map or an allowlisted
 * fetch) with cycle detection and root confinement, and type lookup in a
 * file's scope.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csar.h"
#include "fetch.h"
#include "internal.h"
#include "types_embed.h"

#define DEFAULT_MAX_IMPORTS 256

static const struct {
    const char *name;
    tosca_version_t v;
} versions[] = {
    {"tosca_simple_yaml_1_0", TOSCA_V1_0}, {"tosca_simple_yaml_1_1", TOSCA_V1_1},
    {"tosca_simple_yaml_1_2", TOSCA_V1_2}, {"tosca_simple_yaml_1_3", TOSCA_V1_3},
    {"tosca_2_0", TOSCA_V2_0},
    /* seen in the wild: the NFV profile uses the 1.2 grammar */
    {"tosca_simple_profile_for_nfv_1_0", TOSCA_V1_2},
};

tosca_version_t tosca_version_from_string(const char *s)
{
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(versions); i++)
        if (strcmp(s, versions[i].name) == 0)
            return versions[i].v;
    return TOSCA_V_UNKNOWN;
}

const char *tosca_version_string(tosca_version_t v)
{
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(versions); i++)
        if (versions[i].v == v)
            return versions[i].name;
    return "unknown";
}

/* ---- options and context ---- */

void tosca_options_init(tosca_options_t *o)
{
    memset(o, 0, sizeof(*o));
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        tosca_free(v[i]);
    tosca_free(v);
}

static char **dup_strv(const char *const *v, int *rc)
{
    size_t n = 0;
    char **out;

    while (v && v[n])
        n++;
    out = tosca_calloc(n + 1, sizeof(*out));
    if (out == NULL) {
        *rc = ORC_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if ((out[i] = tosca_strdup(v[i])) == NULL) {
            free_strv(out);
            *rc = ORC_ENOMEM;
            return NULL;
        }
    return out;
}

static void file_free(tosca_file_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->type_list.count; i++) {
        tosca_type_t *t = f->type_list.items[i];
        tosca_deflist_t *lists[] = {&t->properties, &t->attributes,  &t->capabilities,
                                    &t->requirements, &t->interfaces, &t->operations,
                                    &t->artifacts};
        for (size_t j = 0; j < TOSCA_ARRAY_LEN(lists); j++) {
            if (lists[j] == &t->capabilities || lists[j] == &t->interfaces)
                for (size_t k = 0; k < lists[j]->count; k++) {
                    if (lists[j] == &t->capabilities) {
                        tosca_capdef_t *c = lists[j]->items[k];
                        tosca_deflist_fini(&c->properties);
                        tosca_deflist_fini(&c->attributes);
                    } else {
                        tosca_ifacedef_t *x = lists[j]->items[k];
                        tosca_deflist_fini(&x->operations);
                    }
                }
            tosca_deflist_fini(lists[j]);
        }
    }
    for (int k = 0; k < TOSCA_TK__COUNT; k++)
        tosca_hmap_fini(&f->types[k]);
    tosca_deflist_fini(&f->type_list);
    tosca_free(f->imports);
    tosca_diags_fini(&f->diags);
    tosca_ydoc_free(f->doc);
    tosca_arena_fini(&f->arena);
    tosca_free(f->key);
    tosca_free(f);
}

static tosca_file_t *file_new(const char *key, const char *name, const char *dir)
{
    tosca_file_t *f = tosca_calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    tosca_arena_init(&f->arena);
    tosca_diags_init(&f->diags, false);
    f->key = tosca_strdup(key);
    f->name = tosca_arena_strdup(&f->arena, name);
    f->dir = tosca_arena_strdup(&f->arena, dir ? dir : "");
    f->root = "";
    if (f->key == NULL || f->name == NULL || f->dir == NULL) {
        file_free(f);
        return NULL;
    }
    return f;
}

static int load_import_map(tosca_ctx_t *ctx, const char *path, tosca_diags_t *d);
static int file_parse(tosca_ctx_t *ctx, tosca_template_t *t, tosca_file_t *f, const char *data,
                      size_t len, tosca_version_t fallback, tosca_diags_t *d);

int tosca_ctx_new(const tosca_options_t *opts, tosca_ctx_t **out, tosca_diags_t *diags)
{
    tosca_ctx_t *ctx = tosca_calloc(1, sizeof(*ctx));
    int rc = 0;

    *out = NULL;
    if (ctx == NULL)
        return ORC_ENOMEM;
    if (opts)
        ctx->opts = *opts;
    tosca_hmap_init(&ctx->file_cache);
    tosca_hmap_init(&ctx->mapped_real);
    ctx->allowlist = dup_strv(ctx->opts.url_allowlist, &rc);
    for (size_t i = 0; rc == 0 && ctx->allowlist[i]; i++) {
        char why[128];
        if (tosca_url_prefix_check(ctx->allowlist[i], why, sizeof(why)) < 0) {
            rc = tosca_error(diags, NULL, "url-allowlist", "URL allowlist entry '%s': %s",
                             ctx->allowlist[i], why);
        }
    }
    ctx->roots = dup_strv(ctx->opts.allowed_roots, &rc);
    for (size_t i = 0; rc == 0 && ctx->roots[i]; i++) {
        char rr[PATH_MAX];
        if (realpath(ctx->roots[i], rr) && strcmp(rr, ctx->roots[i]) != 0) {
            char *copy = tosca_strdup(rr);
            if (copy == NULL) {
                rc = ORC_ENOMEM;
                break;
            }
            tosca_free(ctx->roots[i]);
            ctx->roots[i] = copy;
        }
    }
    if (rc == 0 && ctx->opts.cache_dir &&
        (ctx->cache_dir = tosca_strdup(ctx->opts.cache_dir)) == NULL)
        rc = ORC_ENOMEM;
    ctx->opts.url_allowlist = (const char *const *)ctx->allowlist;
    ctx->opts.allowed_roots = (const char *const *)ctx->roots;
    ctx->opts.cache_dir = ctx->cache_dir;
    ctx->opts.import_map = NULL;
    if (rc == 0 && opts && opts->import_map)
        rc = load_import_map(ctx, opts->import_map, diags);
    if (rc < 0) {
        tosca_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

void tosca_ctx_free(tosca_ctx_t *ctx)
{
    if (ctx == NULL)
        return;
    for (size_t i = 0; i < ctx->files.count; i++)
        file_free(ctx->files.items[i]);
    tosca_deflist_fini(&ctx->files);
    tosca_hmap_fini(&ctx->file_cache);
    {
        size_t pos = 0;
        tosca_hmap_entry_t *e;
        while ((e = tosca_hmap_next(&ctx->mapped_real, &pos)) != NULL)
            tosca_free((char *)e->key);
        tosca_hmap_fini(&ctx->mapped_real);
    }
    free_strv(ctx->allowlist);
    free_strv(ctx->roots);
    tosca_free(ctx->cache_dir);
    tosca_free(ctx->import_map_dir_owned);
    tosca_ydoc_free(ctx->import_map_doc);
    tosca_free(ctx);
}

/* ---- reading files ---- */

static int read_file(const char *path, size_t max, char **data, size_t *len, tosca_diags_t *d,
                     const tosca_mark_t *at)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    ssize_t n;

    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return tosca_error(d, at, "cannot-read", "cannot read '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        if (!S_ISREG(st.st_mode))
            return tosca_error(d, at, "cannot-read", "'%s' is not a regular file", path);
        tosca_error(d, at, "input-too-large", "'%s' is %lld bytes, more than %zu (limit)",
                    path, (long long)st.st_size, max);
        return ORC_ELIMIT;
    }
    buf = tosca_malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return ORC_ENOMEM;
    }
    *len = 0;
    while (*len < (size_t)st.st_size &&
           (n = read(fd, buf + *len, (size_t)st.st_size - *len)) > 0)
        *len += (size_t)n;
    close(fd);
    buf[*len] = '\0';
    *data = buf;
    return 0;
}

static size_t max_file_bytes(const tosca_ctx_t *ctx)
{
    return ctx->opts.limits.max_file_bytes ? ctx->opts.limits.max_file_bytes : (4u << 20);
}

static void dir_of(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        snprintf(out, size, "%s", "");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

/* ---- the import map ---- */

static int load_import_map(tosca_ctx_t *ctx, const char *path, tosca_diags_t *d)
{
    char *data = NULL, rp[PATH_MAX], dir[PATH_MAX];
    size_t len = 0;
    int rc;

    rc = read_file(path, max_file_bytes(ctx), &data, &len, d, NULL);
    if (rc < 0)
        return rc;
    rc = tosca_ydoc_parse(path, data, len, &ctx->opts.limits, &ctx->import_map_doc, d);
    tosca_free(data);
    if (rc < 0)
        return rc;
    if (ctx->import_map_doc->root && ctx->import_map_doc->root->kind != TOSCA_Y_MAP)
        return tosca_error(d, &ctx->import_map_doc->root->mark, "import-map",
                           "the import map must map URLs to file names");
    if (realpath(path, rp) == NULL)
        return tosca_error(d, NULL, "cannot-read", "cannot resolve '%s': %s", path,
                           strerror(errno));
    dir_of(rp, dir, sizeof(dir));
    ctx->import_map_dir_owned = tosca_strdup(dir);
    ctx->import_map_dir = ctx->import_map_dir_owned;
    return ctx->import_map_dir ? 0 : ORC_ENOMEM;
}

static const char *import_map_lookup(const tosca_ctx_t *ctx, const char *url)
{
    const tosca_ynode_t *v;

    if (ctx->import_map_doc == NULL)
        return NULL;
    v = tosca_ymap_get(ctx->import_map_doc->root, url);
    return v && v->kind == TOSCA_Y_SCALAR ? v->u.scalar.str : NULL;
}

/* ---- path policy ---- */

static bool under(const char *path, const char *root)
{
    size_t n = strlen(root);

    if (n == 0)
        return false;
    if (strncmp(path, root, n) != 0)
        return false;
    return path[n] == '/' || path[n] == '\0' || root[n - 1] == '/';
}

/* The allowed roots were resolved when the context was made. */
static bool path_allowed(const tosca_ctx_t *ctx, const char *real, const char *template_root)
{
    if (template_root && template_root[0] && under(real, template_root))
        return true;
    for (size_t i = 0; ctx->roots && ctx->roots[i]; i++)
        if (under(real, ctx->roots[i]))
            return true;
    return false;
}

/* The template's root (its entry's directory, real path), resolved the
 * first time a relative import needs it. NULL when it has none. */
static const char *template_root(tosca_template_t *t)
{
    char rr[PATH_MAX];

    if (!t->root_resolved) {
        t->root_resolved = true;
        if (t->entry->dir[0] && t->entry->csar == NULL && realpath(t->entry->dir, rr))
            t->root_real = tosca_arena_strdup(&t->arena, rr);
    }
    return t->root_real;
}

/* Joins an archive-relative directory and a relative path, resolving "." and
 * ".."; fails when the result would leave the archive root. */
static int archive_join(const char *dir, const char *rel, char *out, size_t size)
{
    char buf[PATH_MAX];
    size_t n = 0;
    char *save = NULL, *tok;

    int len;

    if (rel[0] == '/')
        len = snprintf(buf, sizeof(buf), "%s", rel + 1);
    else if (dir[0])
        len = snprintf(buf, sizeof(buf), "%s/%s", dir, rel);
    else
        len = snprintf(buf, sizeof(buf), "%s", rel);
    if (len < 0 || (size_t)len >= sizeof(buf))
        return ORC_ELIMIT;
    out[0] = '\0';
    for (tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0) {
            char *slash;
            if (n == 0)
                return ORC_EDENIED;
            slash = strrchr(out, '/');
            n = slash ? (size_t)(slash - out) : 0;
            out[n] = '\0';
            continue;
        }
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "/" : "", tok);
        if (n >= size)
            return ORC_ELIMIT;
    }
    return 0;
}

/* ---- builtin normative types ---- */

static int load_builtin(tosca_ctx_t *ctx, int which, tosca_diags_t *d)
{
    static const char *const keys[] = {"builtin:simple", "builtin:simple-2.0", "builtin:orc"};
    const struct tosca_embedded_file *e = &tosca__embedded_types[which];
    tosca_file_t *f;
    tosca_diags_t local;
    int rc;

    f = file_new(keys[which], e->name, "");
    if (f == NULL || tosca_deflist_add(&ctx->files, f) < 0) {
        file_free(f);
        return ORC_ENOMEM;
    }
    f->is_builtin = true;
    ctx->builtin[which] = f;
    tosca_diags_init(&local, false);
    rc = file_parse(ctx, NULL, f, e->data, (size_t)(e->end - e->data), TOSCA_V1_3, &local);
    if (rc < 0 && rc != ORC_ENOMEM) {
        /* a defect in our own type files: report it loudly, it is a bug */
        for (size_t i = 0; i < local.count; i++)
            tosca_error(d, NULL, "builtin-types", "%s:%u:%u: %s", local.items[i].file,
                        local.items[i].line, local.items[i].col, local.items[i].message);
    }
    tosca_diags_fini(&local);
    f->status = rc;
    return rc;
}

tosca_file_t *tosca_builtin_for(const tosca_ctx_t *ctx, const tosca_file_t *f)
{
    return ctx->builtin[f && f->version == TOSCA_V2_0 ? 1 : 0];
}

/* 1.x templates get the Simple Profile and this project's types; 2.0 ones
 * get the 2.0 profile (when they import it). */
static int ensure_builtin(tosca_ctx_t *ctx, tosca_version_t v, tosca_diags_t *d)
{
    int rc;

    if (v == TOSCA_V2_0)
        return ctx->builtin[1] ? ctx->builtin[1]->status : load_builtin(ctx, 1, d);
    rc = ctx->builtin[0] ? ctx->builtin[0]->status : load_builtin(ctx, 0, d);
    if (rc == 0)
        rc = ctx->builtin[2] ? ctx->builtin[2]->status : load_builtin(ctx, 2, d);
    return rc;
}

/* ---- scope lookup ---- */

static const char *const kind_prefixes[TOSCA_TK__COUNT] = {
    "tosca.nodes.",     "tosca.relationships.", "tosca.capabilities.", "tosca.interfaces.",
    "tosca.artifacts.", "tosca.datatypes.",     "tosca.groups.",       "tosca.policies."};

static tosca_type_t *find_in_file(const tosca_file_t *f, tosca_tkind_t kind, const char *name,
                                  int depth)
{
    tosca_type_t *t = tosca_hmap_get(&f->types[kind], name);

    if (t || depth > 32)
        return t;
    for (size_t i = 0; i < f->import_count; i++) {
        const tosca_import_t *im = &f->imports[i];
        const char *n = name;
        if (im->file == NULL)
            continue;
        if (im->prefix) {
            size_t pl = strlen(im->prefix);
            if (strncmp(name, im->prefix, pl) != 0 || (name[pl] != ':' && name[pl] != '.'))
                continue;
            n = name + pl + 1;
        }
        t = find_in_file(im->file, kind, n, depth + 1);
        if (t)
            return t;
    }
    return NULL;
}

/* Normative short names: "Compute", "tosca:Compute", "network.Network",
 * "Standard" (interfaces), "tosca:Root". */
static tosca_type_t *find_normative(const tosca_file_t *b, tosca_tkind_t kind, const char *name)
{
    static const char *const iface_alias[][2] = {
        {"Standard", "tosca.interfaces.node.lifecycle.Standard"},
        {"Configure", "tosca.interfaces.relationship.Configure"},
    };
    char buf[512];
    tosca_type_t *t;

    if (strncmp(name, "tosca:", 6) == 0)
        name += 6;
    t = tosca_hmap_get(&b->types[kind], name);
    if (t)
        return t;
    if (kind == TOSCA_TK_INTERFACE)
        for (size_t i = 0; i < TOSCA_ARRAY_LEN(iface_alias); i++)
            if (strcmp(name, iface_alias[i][0]) == 0)
                return tosca_hmap_get(&b->types[kind], iface_alias[i][1]);
    if (strncmp(name, "tosca.", 6) == 0)
        return NULL;
    snprintf(buf, sizeof(buf), "%s%s", kind_prefixes[kind], name);
    return tosca_hmap_get(&b->types[kind], buf);
}

tosca_type_t *tosca_scope_find(const tosca_ctx_t *ctx, const tosca_file_t *f, tosca_tkind_t kind,
                               const char *name)
{
    tosca_type_t *t;
    const tosca_file_t *b;

    if (name == NULL)
        return NULL;
    t = find_in_file(f, kind, name, 0);
    if (t)
        return t;
    if (f->version == TOSCA_V2_0 && !f->is_builtin)
        return NULL; /* 2.0 imports nothing implicitly: the profile comes by import */
    b = f->is_builtin && f != ctx->builtin[2] ? f : tosca_builtin_for(ctx, f);
    t = b ? find_normative(b, kind, name) : NULL;
    if (t == NULL && b == ctx->builtin[0] && ctx->builtin[2])
        t = tosca_hmap_get(&ctx->builtin[2]->types[kind], name);
    return t;
}

/* ---- top-level keys and versions ---- */

static const char *const keys_v1[] = {
    "tosca_definitions_version", "namespace",          "metadata",         "description",
    "dsl_definitions",           "repositories",       "imports",          "artifact_types",
    "data_types",                "capability_types",   "interface_types",  "relationship_types",
    "node_types",                "group_types",        "policy_types",     "topology_template",
    NULL};
static const char *const keys_v1_0_extra[] = {"template_name", "template_author",
                                              "template_version", NULL};
static const char *const keys_v2[] = {
    "tosca_definitions_version", "profile",          "metadata",         "description",
    "dsl_definitions",           "repositories",     "imports",          "artifact_types",
    "data_types",                "capability_types", "interface_types",  "relationship_types",
    "node_types",                "group_types",      "policy_types",     "functions",
    "service_template",          NULL};

static int check_top_keys(const tosca_file_t *f, tosca_diags_t *d)
{
    const tosca_ynode_t *root = f->doc->root;
    const char *const *keys = f->version == TOSCA_V2_0 ? keys_v2 : keys_v1;
    int rc = 0;

    for (size_t i = 0; i < root->u.map.count; i++) {
        const tosca_ynode_t *k = root->u.map.items[i].key;
        const char *s = k->u.scalar.str;
        if (tosca_str_in(s, keys) || (f->version == TOSCA_V1_0 && tosca_str_in(s, keys_v1_0_extra)))
            continue;
        if (f->version != TOSCA_V2_0 && strcmp(s, "service_template") == 0)
            rc = tosca_defect(d, &k->mark, "unknown-key",
                              "'service_template' is TOSCA 2.0; %s uses 'topology_template'",
                              tosca_version_string(f->version));
        else
            rc = tosca_defect(d, &k->mark, "unknown-key",
                              "unknown top-level key '%s' for %s", s,
                              tosca_version_string(f->version));
    }
    return rc;
}

static int read_version(tosca_file_t *f, tosca_version_t fallback, bool is_entry,
                        tosca_diags_t *d)
{
    const tosca_ynode_t *root = f->doc->root;
    const tosca_ynode_t *v = tosca_ymap_get(root, "tosca_definitions_version");
    tosca_mark_t top = {f->name, 1, 1};

    if (v == NULL) {
        f->version = fallback;
        if (is_entry || fallback == TOSCA_V_UNKNOWN)
            return tosca_error(d, &top, "missing-version",
                               "missing 'tosca_definitions_version' (e.g. "
                               "tosca_simple_yaml_1_3 or tosca_2_0)");
        return tosca_defect(d, &top, "missing-version",
                            "missing 'tosca_definitions_version'; read as %s like its importer",
                            tosca_version_string(fallback));
    }
    if (v->kind != TOSCA_Y_SCALAR ||
        (f->version = tosca_version_from_string(v->u.scalar.str)) == TOSCA_V_UNKNOWN)
        return tosca_error(d, &v->mark, "unknown-version",
                           "unsupported tosca_definitions_version '%s' (supported: "
                           "tosca_simple_yaml_1_0 to 1_3, tosca_2_0)",
                           v->kind == TOSCA_Y_SCALAR ? v->u.scalar.str : "?");
    f->version_str = v->u.scalar.str;
    return 0;
}

/* ---- imports ---- */

struct import_req {
    const char *file;       /* file or url */
    const char *repository;
    const char *prefix;
    const char *profile;
    const tosca_ynode_t *node;
};

static const char *const import_keys[] = {"file", "url", "repository", "namespace_prefix",
                                          "namespace_uri", "namespace", "profile",
                                          "description", "metadata", NULL};

static int parse_import_entry(const tosca_file_t *f, const tosca_ynode_t *e,
                              struct import_req *r, tosca_diags_t *d)
{
    const tosca_ynode_t *m = e;

    memset(r, 0, sizeof(*r));
    r->node = e;
    if (e->kind == TOSCA_Y_SCALAR) {
        r->file = e->u.scalar.str;
        return 0;
    }
    /* 1.0 named import: `- name: uri` or `- name: {file: ...}` */
    if (e->kind == TOSCA_Y_MAP && e->u.map.count == 1 &&
        !tosca_str_in(e->u.map.items[0].key->u.scalar.str, import_keys)) {
        m = e->u.map.items[0].value;
        if (m->kind == TOSCA_Y_SCALAR) {
            r->file = m->u.scalar.str;
            return 0;
        }
    }
    if (m->kind != TOSCA_Y_MAP)
        return tosca_error(d, &e->mark, "bad-import",
                           "an import must be a file name, a URL or a mapping");
    tosca_check_keys(d, m, import_keys, "import");
    r->file = tosca_ymap_get(m, "file") ? tosca_expect_str(d, tosca_ymap_get(m, "file"), "file")
                                        : tosca_expect_str(d, tosca_ymap_get(m, "url"), "url");
    r->repository = tosca_expect_str(d, tosca_ymap_get(m, "repository"), "repository");
    r->prefix = tosca_expect_str(d, tosca_ymap_get(m, "namespace_prefix"), "namespace_prefix");
    if (r->prefix == NULL)
        r->prefix = tosca_expect_str(d, tosca_ymap_get(m, "namespace"), "namespace");
    r->profile = tosca_expect_str(d, tosca_ymap_get(m, "profile"), "profile");
    (void)f;
    if ((r->file == NULL) == (r->profile == NULL))
        return tosca_error(d, &e->mark, "bad-import",
                           "an import needs exactly one of 'file' (1.x), 'url' or 'profile'");
    return 0;
}

static bool is_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
           strncmp(s, "file://", 7) == 0 || strncmp(s, "ftp://", 6) == 0;
}

/* Applies `repository:` to an import location. */
static int apply_repository(const tosca_file_t *f, const struct import_req *r, char *out,
                            size_t size, tosca_diags_t *d)
{
    const tosca_ynode_t *repo, *url;

    if (r->repository == NULL) {
        snprintf(out, size, "%s", r->file);
        return 0;
    }
    repo = tosca_ymap_get(f->repositories, r->repository);
    url = repo && repo->kind == TOSCA_Y_MAP ? tosca_ymap_get(repo, "url") : repo;
    if (url == NULL || url->kind != TOSCA_Y_SCALAR)
        return tosca_error(d, &r->node->mark, "unknown-repository",
                           "import names repository '%s', which is not defined in "
                           "'repositories'",
                           r->repository);
    if (is_url(r->file))
        return tosca_error(d, &r->node->mark, "bad-import",
                           "an import with a repository must have a relative file name");
    snprintf(out, size, "%s%s%s", url->u.scalar.str,
             url->u.scalar.len && url->u.scalar.str[url->u.scalar.len - 1] == '/' ? "" : "/",
             r->file[0] == '/' ? r->file + 1 : r->file);
    return 0;
}

static tosca_file_t *find_owned(const tosca_template_t *t, const char *key)
{
    for (size_t i = 0; t && i < t->owned_files.count; i++) {
        tosca_file_t *f = t->owned_files.items[i];
        if (strcmp(f->key, key) == 0)
            return f;
    }
    return NULL;
}

static void replay_file(tosca_template_t *t, const tosca_file_t *f, tosca_diags_t *d)
{
    if (f->is_builtin || tosca_hmap_get(&t->replayed, f->key))
        return;
    if (tosca_hmap_put(&t->replayed, f->key, (void *)f, NULL) < 0)
        return;
    for (size_t i = 0; i < f->diags.count; i++) {
        const tosca_diag_t *g = &f->diags.items[i];
        tosca_diag_copy(d, g);
    }
    for (size_t i = 0; i < f->import_count; i++)
        if (f->imports[i].file)
            replay_file(t, f->imports[i].file, d);
}

/* A cached file that failed for want of memory or by a per-template limit is
 * parsed again: its failure says nothing about the file. */
static bool reusable(const tosca_file_t *f)
{
    return f->status != ORC_ENOMEM && f->status != ORC_ELIMIT;
}

static int cached_status(const tosca_file_t *f)
{
    if (f->status == ORC_ENOMEM || f->status == ORC_ELIMIT)
        return f->status;
    return f->status < 0 ? ORC_ETOSCA : 0;
}

/* Loads (or finds in the cache) a file of type definitions from disk. The
 * cache key holds the real path, size, mtime and the root the file's own
 * relative imports are confined to, so a file admitted under one template's
 * root is never reused, with what it imported, under another's. */
static int load_cached_fs(tosca_ctx_t *ctx, tosca_template_t *t, const tosca_file_t *from,
                          const char *real, const char *root, const char *shown,
                          tosca_file_t **out, const tosca_mark_t *at, tosca_diags_t *d)
{
    char key[PATH_MAX * 2 + 64], dir[PATH_MAX];
    struct stat st;
    tosca_file_t *f;
    char *data = NULL;
    size_t len = 0;
    int rc;

    if (stat(real, &st) < 0)
        return tosca_error(d, at, "cannot-read", "cannot read '%s': %s", shown,
                           strerror(errno));
    snprintf(key, sizeof(key), "%s@%lld.%ld.%lld|%s", real, (long long)st.st_size,
             (long)st.st_mtim.tv_sec, (long long)st.st_mtim.tv_nsec, root);
    f = tosca_hmap_get(&ctx->file_cache, key);
    if (f && f->state == 1)
        return tosca_error(d, at, "import-cycle",
                           "import cycle: '%s' imports itself through its imports", shown);
    if (f && reusable(f)) {
        replay_file(t, f, d);
        *out = f;
        return cached_status(f);
    }
    rc = read_file(real, max_file_bytes(ctx), &data, &len, d, at);
    if (rc < 0)
        return rc;
    dir_of(real, dir, sizeof(dir));
    f = file_new(key, shown, dir);
    if (f == NULL || (f->root = tosca_arena_strdup(&f->arena, root)) == NULL ||
        tosca_deflist_add(&ctx->files, f) < 0) {
        file_free(f);
        tosca_free(data);
        return ORC_ENOMEM;
    }
    if (tosca_hmap_put(&ctx->file_cache, f->key, f, NULL) < 0) {
        ctx->files.count--; /* the file was added last */
        file_free(f);
        tosca_free(data);
        return ORC_ENOMEM;
    }
    f->diags.strict = ctx->opts.strict;
    f->status = file_parse(ctx, t, f, data, len, from->version, &f->diags);
    tosca_free(data);
    replay_file(t, f, d);
    *out = f;
    return cached_status(f);
}

static int load_from_archive(tosca_ctx_t *ctx, tosca_template_t *t, const tosca_file_t *from,
                             const char *loc, tosca_file_t **out, const tosca_mark_t *at,
                             tosca_diags_t *d)
{
    char path[PATH_MAX], key[PATH_MAX + 8], dir[PATH_MAX];
    const char *data;
    size_t len;
    tosca_file_t *f;

    if (archive_join(from->dir, loc, path, sizeof(path)) < 0)
        return tosca_error(d, at, "import-denied", "import '%s' leaves the archive", loc);
    snprintf(key, sizeof(key), "csar:%s", path);
    if ((f = find_owned(t, key)) != NULL) {
        *out = f;
        if (f->state == 1)
            return tosca_error(d, at, "import-cycle", "import cycle through '%s'", path);
        return f->status < 0 ? ORC_ETOSCA : 0;
    }
    if (tosca_csar_read(from->csar, path, &data, &len) < 0)
        return tosca_error(d, at, "import-not-found", "import '%s': no file '%s' in the archive",
                           loc, path);
    dir_of(path, dir, sizeof(dir));
    {
        char shown[PATH_MAX * 2];
        snprintf(shown, sizeof(shown), "%s/%s", t->csar_name, path);
        f = file_new(key, shown, dir);
    }
    if (f == NULL || tosca_deflist_add(&t->owned_files, f) < 0) {
        file_free(f);
        return ORC_ENOMEM;
    }
    f->csar = from->csar;
    f->status = file_parse(ctx, t, f, data, len, from->version, d);
    *out = f;
    return f->status;
}

/* The root a file's relative imports must stay under. */
static const char *file_root(tosca_template_t *t, const tosca_file_t *from)
{
    if (from == t->entry) {
        const char *r = template_root(t);
        return r ? r : "";
    }
    return from->root;
}

static int load_fs_import(tosca_ctx_t *ctx, tosca_template_t *t, const tosca_file_t *from,
                          const char *loc, tosca_file_t **out, const tosca_mark_t *at,
                          tosca_diags_t *d)
{
    char joined[PATH_MAX * 2], real[PATH_MAX];
    const char *root = file_root(t, from);

    if (loc[0] != '/' && from->dir[0] == '\0')
        return tosca_error(d, at, "import-denied",
                           "relative import '%s' in a template that has no directory", loc);
    if (loc[0] == '/')
        snprintf(joined, sizeof(joined), "%s", loc);
    else
        snprintf(joined, sizeof(joined), "%s/%s", from->dir, loc);
    if (realpath(joined, real) == NULL)
        return tosca_error(d, at, "import-not-found", "import '%s': %s", loc, strerror(errno));
    if (!path_allowed(ctx, real, root))
        return tosca_error(d, at, "import-denied",
                           "import '%s' is outside the template's directory and the allowed "
                           "roots",
                           loc);
    return load_cached_fs(ctx, t, from, real, root, loc, out, at, d);
}

/* Resolves an import-map target once per context. */
static int resolve_mapped(tosca_ctx_t *ctx, const char *url, const char *mapped,
                          const char **real_out, const tosca_mark_t *at, tosca_diags_t *d)
{
    char joined[PATH_MAX * 2], real[PATH_MAX];
    size_t ul = strlen(url), rl;
    char *buf;

    if (mapped[0] == '/')
        snprintf(joined, sizeof(joined), "%s", mapped);
    else
        snprintf(joined, sizeof(joined), "%s/%s", ctx->import_map_dir, mapped);
    if (realpath(joined, real) == NULL)
        return tosca_error(d, at, "import-not-found",
                           "import '%s' maps to '%s', which cannot be read: %s", url, mapped,
                           strerror(errno));
    rl = strlen(real);
    buf = tosca_malloc(ul + rl + 2);
    if (buf == NULL)
        return ORC_ENOMEM;
    memcpy(buf, url, ul + 1);
    memcpy(buf + ul + 1, real, rl + 1);
    if (tosca_hmap_put(&ctx->mapped_real, buf, buf + ul + 1, NULL) < 0) {
        tosca_free(buf);
        return ORC_ENOMEM;
    }
    *real_out = buf + ul + 1;
    return 0;
}

static int load_url_import(tosca_ctx_t *ctx, tosca_template_t *t, const tosca_file_t *from,
                           const char *url, tosca_file_t **out, const tosca_mark_t *at,
                           tosca_diags_t *d)
{
    const char *mapped = import_map_lookup(ctx, url);

    if (mapped) {
        const char *real = tosca_hmap_get(&ctx->mapped_real, url);
        int rc = real ? 0 : resolve_mapped(ctx, url, mapped, &real, at, d);
        char root[PATH_MAX];
        if (rc < 0)
            return rc;
        dir_of(real, root, sizeof(root));
        return load_cached_fs(ctx, t, from, real, root, url, out, at, d);
    }
    {
        char why[128];
        if (!tosca_url_allowed(ctx->opts.url_allowlist, url, why, sizeof(why)))
            return tosca_error(d, at, "import-denied",
                               "import '%s' is not in the import map, and the URL allowlist "
                               "refuses it: %s",
                               url, why);
    }
    {
        char path[PATH_MAX];
        int rc = tosca_fetch_url(&ctx->opts, url, path, sizeof(path), d, at);
        if (rc < 0)
            return rc;
        ctx->fetch_count++;
        return load_cached_fs(ctx, t, from, path, "", url, out, at, d);
    }
}

static int load_profile(tosca_ctx_t *ctx, const struct import_req *r, tosca_file_t **out,
                        tosca_diags_t *d)
{
    static const char *const simple_names[] = {"org.oasis-open.tosca.simple:2.0",
                                               "org.oasis-open.simple:2.0", NULL};
    int rc;

    if (!tosca_str_in(r->profile, simple_names))
        return tosca_error(d, &r->node->mark, "unknown-profile",
                           "unknown profile '%s' (known: org.oasis-open.tosca.simple:2.0)",
                           r->profile);
    rc = ensure_builtin(ctx, TOSCA_V2_0, d);
    *out = ctx->builtin[1];
    return rc;
}

static int resolve_import(tosca_ctx_t *ctx, tosca_template_t *t, tosca_file_t *from,
                          const struct import_req *r, tosca_file_t **out, tosca_diags_t *d)
{
    char loc[PATH_MAX];
    size_t max = ctx->opts.limits.max_imports ? ctx->opts.limits.max_imports
                                              : DEFAULT_MAX_IMPORTS;
    int rc;

    *out = NULL;
    if (++t->import_total > max) {
        tosca_error(d, &r->node->mark, "too-many-imports",
                    "more than %zu imported files (limit)", max);
        return ORC_ELIMIT;
    }
    if (r->profile)
        return load_profile(ctx, r, out, d);
    rc = apply_repository(from, r, loc, sizeof(loc), d);
    if (rc < 0)
        return rc;
    if (is_url(loc))
        return load_url_import(ctx, t, from, loc, out, &r->node->mark, d);
    if (from->csar)
        return load_from_archive(ctx, t, from, loc, out, &r->node->mark, d);
    return load_fs_import(ctx, t, from, loc, out, &r->node->mark, d);
}

int tosca_file_load_imports(tosca_template_t *t, tosca_file_t *f, tosca_diags_t *d)
{
    const tosca_ynode_t *list = tosca_ymap_get(f->doc->root, "imports");
    int rc = 0;

    if (list == NULL || tosca_yis_null(list))
        return 0;
    if (list->kind != TOSCA_Y_SEQ)
        return tosca_error(d, &list->mark, "bad-import", "'imports' must be a list");
    f->imports = tosca_calloc(list->u.seq.count, sizeof(*f->imports));
    if (f->imports == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < list->u.seq.count; i++) {
        struct import_req r;
        tosca_import_t *im = &f->imports[f->import_count];
        int r1 = parse_import_entry(f, list->u.seq.items[i], &r, d);
        if (r1 == 0)
            r1 = resolve_import(t->ctx, t, f, &r, &im->file, d);
        im->prefix = r.prefix;
        im->mark = list->u.seq.items[i]->mark;
        f->import_count++;
        if (r1 == ORC_ENOMEM || r1 == ORC_ELIMIT)
            return r1;
        rc = r1 < 0 ? r1 : rc;
    }
    return rc;
}

/* ---- one file: YAML, version, keys, imports, types ---- */

static int file_parse(tosca_ctx_t *ctx, tosca_template_t *t, tosca_file_t *f, const char *data,
                      size_t len, tosca_version_t fallback, tosca_diags_t *d)
{
    tosca_mark_t top = {f->name, 1, 1};
    const tosca_ynode_t *root;
    int rc, rc2;

    f->state = 1;
    rc = tosca_ydoc_parse(f->name, data, len, &ctx->opts.limits, &f->doc, d);
    if (rc < 0)
        goto out;
    root = f->doc->root;
    if (root == NULL || tosca_yis_null(root)) {
        rc = tosca_error(d, &top, "empty-template", "the file is empty");
        goto out;
    }
    if (root->kind != TOSCA_Y_MAP) {
        rc = tosca_error(d, &root->mark, "expected-map",
                         "a TOSCA file must be a mapping at the top, not %s",
                         tosca_ykind_name(root));
        goto out;
    }
    rc = read_version(f, fallback, t && f == t->entry, d);
    if (rc < 0)
        goto out;
    if (!f->is_builtin && (rc = ensure_builtin(ctx, f->version, d)) < 0)
        goto out;
    rc = check_top_keys(f, d);
    f->repositories = tosca_ymap_get(root, "repositories");
    f->profile = tosca_ymap_get(root, "profile") ? tosca_ymap_get(root, "profile")->u.scalar.str
                                                  : NULL;
    if (t && (rc2 = tosca_file_load_imports(t, f, d)) < 0)
        rc = rc2;
    if (rc == ORC_ENOMEM || rc == ORC_ELIMIT)
        goto out;
    rc2 = tosca_types_parse(ctx, f, d);
    rc = rc2 < 0 ? rc2 : rc;
    if (rc2 != ORC_ENOMEM) {
        rc2 = tosca_types_resolve(ctx, f, d);
        rc = rc2 < 0 ? rc2 : rc;
    }
out:
    f->state = 2;
    return rc;
}

/* ---- templates ---- */

void tosca_template_free(tosca_template_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->owned_files.count; i++)
        file_free(t->owned_files.items[i]);
    tosca_deflist_fini(&t->owned_files);
    tosca_hmap_fini(&t->replayed);
    tosca_hmap_fini(&t->node_index);
    for (size_t i = 0; i < t->node_count; i++) {
        tosca_free(t->nodes[i]->caps);
        tosca_free(t->nodes[i]->reqs);
    }
    tosca_free(t->nodes);
    tosca_free(t->inputs);
    tosca_free(t->rels);
    tosca_free(t->groups);
    tosca_free(t->policies);
    tosca_free(t->outputs);
    tosca_csar_free(t->csar);
    tosca_arena_fini(&t->arena);
    tosca_free(t);
}

const char *tosca_template_version(const tosca_template_t *t)
{
    if (t == NULL || t->entry == NULL)
        return "unknown";
    return t->entry->version_str ? t->entry->version_str
                                 : tosca_version_string(t->entry->version);
}

static int open_archive(tosca_template_t *t, const char *name, const void *data, size_t len,
                        const char **entry_data, size_t *entry_len, char *entry_path,
                        size_t size, tosca_diags_t *d)
{
    int rc = tosca_csar_open(name, data, len, &t->ctx->opts.limits, &t->csar, d);

    if (rc < 0)
        return rc;
    snprintf(entry_path, size, "%s", tosca_csar_entry(t->csar));
    return tosca_csar_read(t->csar, entry_path, entry_data, entry_len);
}

static int load_entry(tosca_template_t *t, const char *name, const char *dir, const void *data,
                      size_t len, tosca_diags_t *d)
{
    char entry_path[PATH_MAX] = "", key[PATH_MAX + 16], shown[PATH_MAX * 2], adir[PATH_MAX];
    const char *edata = data;
    size_t elen = len;
    int rc;

    if (tosca_csar_is_zip(data, len)) {
        rc = open_archive(t, name, data, len, &edata, &elen, entry_path, sizeof(entry_path), d);
        if (rc < 0)
            return rc == ORC_ENOTFOUND ? ORC_ETOSCA : rc;
        dir_of(entry_path, adir, sizeof(adir));
        t->csar_name = tosca_arena_strdup(&t->arena, name);
        if (t->csar_name == NULL)
            return ORC_ENOMEM;
        snprintf(shown, sizeof(shown), "%s/%s", name, entry_path);
        snprintf(key, sizeof(key), "csar:%s", entry_path);
        t->entry = file_new(key, shown, adir);
    } else {
        t->entry = file_new("entry", name, dir);
    }
    if (t->entry == NULL || tosca_deflist_add(&t->owned_files, t->entry) < 0) {
        if (t->entry && t->owned_files.count == 0)
            file_free(t->entry);
        t->entry = NULL;
        return ORC_ENOMEM;
    }
    t->entry->csar = t->csar;
    rc = file_parse(t->ctx, t, t->entry, edata, elen, TOSCA_V_UNKNOWN, d);
    if (rc == ORC_ENOMEM || rc == ORC_ELIMIT || t->entry->doc == NULL ||
        t->entry->version == TOSCA_V_UNKNOWN)
        return rc < 0 ? rc : ORC_ETOSCA;
    {
        int rc2 = tosca_topology_parse(t, d);
        return rc2 < 0 ? rc2 : rc;
    }
}

static int load_common(tosca_ctx_t *ctx, const char *name, const char *dir, const void *data,
                       size_t len, tosca_template_t **out, tosca_diags_t *d)
{
    size_t errors_before = d->errors;
    tosca_template_t *t;
    int rc;

    *out = NULL;
    d->strict = d->strict || ctx->opts.strict;
    t = tosca_calloc(1, sizeof(*t));
    if (t == NULL)
        return ORC_ENOMEM;
    t->ctx = ctx;
    tosca_arena_init(&t->arena);
    tosca_hmap_init(&t->node_index);
    tosca_hmap_init(&t->replayed);
    t->diags = d;
    rc = load_entry(t, name, dir, data, len, d);
    t->diags = NULL;
    if (rc == 0 && d->errors > errors_before)
        rc = ORC_ETOSCA;
    if (rc < 0) {
        tosca_template_free(t);
        return rc;
    }
    t->version = t->entry->version;
    *out = t;
    return 0;
}

int tosca_load_buffer(tosca_ctx_t *ctx, const char *name, const void *data, size_t len,
                      tosca_template_t **out, tosca_diags_t *diags)
{
    char dir[PATH_MAX];

    if (ctx == NULL || data == NULL || out == NULL || diags == NULL)
        return ORC_EINVAL;
    name = name ? name : "<template>";
    dir_of(name, dir, sizeof(dir));
    return load_common(ctx, name, dir, data, len, out, diags);
}

int tosca_load_file(tosca_ctx_t *ctx, const char *path, tosca_template_t **out,
                    tosca_diags_t *diags)
{
    char *data = NULL, dir[PATH_MAX];
    size_t len = 0, max = max_file_bytes(ctx);
    size_t csar_max = ctx && ctx->opts.limits.max_csar_bytes ? ctx->opts.limits.max_csar_bytes
                                                            : (64u << 20);
    int rc;

    if (ctx == NULL || path == NULL || out == NULL || diags == NULL)
        return ORC_EINVAL;
    *out = NULL;
    rc = read_file(path, max > csar_max ? max : csar_max, &data, &len, diags, NULL);
    if (rc < 0)
        return rc;
    if (!tosca_csar_is_zip(data, len) && len > max) {
        tosca_mark_t m = {path, 0, 0};
        tosca_free(data);
        tosca_error(diags, &m, "input-too-large", "file is %zu bytes, more than %zu (limit)",
                    len, max);
        return ORC_ELIMIT;
    }
    dir_of(path, dir, sizeof(dir));
    if (dir[0] == '\0')
        snprintf(dir, sizeof(dir), "."); /* a file named without a directory */
    rc = load_common(ctx, path, dir, data, len, out, diags);
    tosca_free(data);
    return rc;
}
