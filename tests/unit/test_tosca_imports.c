/*
 * Imports (tosca/loader.c): relative files and nested imports, namespace prefixes,
 * repositories, the 1.0 named form, import cycles, confinement to the template's
 * directory (and the allowed roots), URL imports through an import map, an allowlist
 * and its cache, the import limit, the context's cache of imported files shared by
 * templates, and imports inside CSAR archives built here with libzip. Imported files
 * are fixtures under tests/tosca/fixtures/imports; the importing templates are strings
 * loaded as if they lived there.
 */
#include "tosca_fixture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "internal.h"

#define FIX "tests/tosca/fixtures/imports"

/* ---- temporary files ---------------------------------------------------------------- */

static char *tmpdir_new(void)
{
    char *d = strdup("/tmp/tosca-imports-XXXXXX");

    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

/* Writes dir/rel (creating the directories in between). */
static void write_file(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[PATH_MAX];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
    fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *dir, const char *rel, const char *text)
{
    write_file(dir, rel, text, strlen(text));
}

static void rm_rf(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char sub[PATH_MAX];

    if (lstat(path, &st) < 0)
        return;
    if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ---- CSARs built with libzip ------------------------------------------------------ */

/* An archive of NULL-terminated name, text pairs, written to dir/name. */
static void write_csar(const char *dir, const char *name, const char *const *pairs)
{
    zip_error_t ze;
    zip_source_t *src;
    zip_t *za;
    zip_int64_t size;
    char *buf;

    zip_error_init(&ze);
    src = zip_source_buffer_create(NULL, 0, 0, &ze);
    assert_non_null(src);
    zip_source_keep(src);
    za = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    assert_non_null(za);
    for (size_t i = 0; pairs[i]; i += 2) {
        zip_source_t *s = zip_source_buffer(za, pairs[i + 1], strlen(pairs[i + 1]), 0);
        assert_non_null(s);
        if (zip_file_add(za, pairs[i], s, ZIP_FL_ENC_UTF_8) < 0)
            fail_msg("zip_file_add(%s): %s", pairs[i], zip_strerror(za));
    }
    if (zip_close(za) < 0)
        fail_msg("zip_close: %s", zip_strerror(za));
    assert_int_equal(zip_source_open(src), 0);
    assert_int_equal(zip_source_seek(src, 0, SEEK_END), 0);
    size = zip_source_tell(src);
    assert_true(size > 0);
    assert_int_equal(zip_source_seek(src, 0, SEEK_SET), 0);
    buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(zip_source_read(src, buf, (zip_uint64_t)size), size);
    zip_source_close(src);
    zip_source_free(src);
    zip_error_fini(&ze);
    write_file(dir, name, buf, (size_t)size);
    free(buf);
}

/* Loads src as if it were the file FIX/<rel> (relative imports resolve there). */
static void load_at(ld_t *l, const char *rel, const char *src, const tosca_options_t *o)
{
    char name[PATH_MAX];
    tosca_options_t dflt;

    if (o == NULL) {
        tosca_options_init(&dflt);
        o = &dflt;
    }
    snprintf(name, sizeof(name), FIX "/%s", rel);
    load_opts(l, name, src, o, o->strict);
}

/* The first diagnostic with this code, checked to be about a file whose name ends with
 * file_end, at this line. */
static const tosca_diag_t *expect_in_file(const ld_t *l, tosca_severity_t sev, const char *code,
                                          const char *file_end, unsigned line, int caller)
{
    for (size_t i = 0; i < l->d.count; i++) {
        const tosca_diag_t *g = &l->d.items[i];
        size_t fl = strlen(g->file), el = strlen(file_end);
        if (strcmp(g->code, code) != 0 || fl < el || strcmp(g->file + fl - el, file_end) != 0 ||
            g->line != line)
            continue;
        if (g->severity != sev) {
            test_print_diags(&l->d);
            fail_msg("test line %d: [%s] in %s has the wrong severity", caller, code, g->file);
        }
        return g;
    }
    test_print_diags(&l->d);
    fail_msg("test line %d: no [%s] in ...%s at line %u", caller, code, file_end, line);
    return NULL;
}

#define EXPECT_ERR_IN(l, code, file, line)                                             \
    expect_in_file(l, TOSCA_SEV_ERROR, code, file, line, __LINE__)
#define EXPECT_WARN_IN(l, code, file, line)                                            \
    expect_in_file(l, TOSCA_SEV_WARNING, code, file, line, __LINE__)

/* ---- relative files -------------------------------------------------------------- */

static const char app_src[] = V13 "imports:\n"
                                  "  - types/app.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    vm:\n"
                                  "      type: tosca.nodes.Compute\n"
                                  "    app:\n"
                                  "      type: my.nodes.App\n"
                                  "      properties:\n"
                                  "        endpoint: {host: example.org, port: 443}\n"
                                  "      requirements:\n"
                                  "        - host: vm\n";

/* A relative import, which itself imports a file relative to its own directory. */
static void relative_import(void **state)
{
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", app_src, NULL);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "app"), "type", "my.nodes.App");
    ASSERT_JINT(plan_node(&l, "app"), "properties.port", 8080);
    ASSERT_JINT(plan_node(&l, "app"), "properties.endpoint.port", 443);
    unload(&l);
}

/* Types of a nested import are checked against the values of the template. */
static void nested_import_values(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - ./types/app.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    app:\n"
                                  "      type: my.nodes.App\n"
                                  "      properties:\n"
                                  "        endpoint: {host: example.org, port: 0}\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "constraint-violated", line_of(src, "endpoint:"), "in_range");
    unload(&l);
}

/* Three levels: types derive across files; the last file lacks its version (a defect,
 * reported in that file). */
static void nested_imports(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - nested/level1.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    n:\n"
                                  "      type: my.nodes.Level1\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_OK(&l);
    EXPECT_WARN_IN(&l, "missing-version", "level3.yaml", 1);
    assert_int_equal(l.d.count, 1);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JEQ(plan_node(&l, "n"), "types",
               "[\"my.nodes.Level1\", \"my.nodes.Level2\", \"my.nodes.Level3\", "
               "\"tosca.nodes.Root\"]");
    ASSERT_JINT(plan_node(&l, "n"), "properties.depth", 3);
    unload(&l);
}

static void namespace_prefix(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - file: types/app.yaml\n"
                                  "    namespace_prefix: p\n"
                                  "  - file: lib/repo_types.yaml\n"
                                  "    namespace_uri: http://example.org/ns\n"
                                  "    namespace_prefix: lib\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    colon:\n"
                                  "      type: p:my.nodes.App\n"
                                  "    dot:\n"
                                  "      type: p.my.nodes.App\n"
                                  "    repo:\n"
                                  "      type: lib:my.nodes.FromRepo\n"
                                  "    normative:\n"
                                  "      type: tosca:Compute\n";
    static const char bad[] = V13 "imports:\n"
                                  "  - file: types/app.yaml\n"
                                  "    namespace_prefix: p\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    plain:\n"
                                  "      type: my.nodes.App\n"
                                  "    wrong:\n"
                                  "      type: q:my.nodes.App\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "colon"), "type", "my.nodes.App");
    ASSERT_JSTR(plan_node(&l, "dot"), "type", "my.nodes.App");
    ASSERT_JSTR(plan_node(&l, "repo"), "properties.origin", "repository");
    ASSERT_JSTR(plan_node(&l, "normative"), "type", "tosca.nodes.Compute");
    unload(&l);
    /* prefixed types are only reachable through their prefix */
    load_at(&l, "main.yaml", bad, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "type: my.nodes.App"), "my.nodes.App");
    EXPECT_ERR(&l, "unknown-type", line_of(bad, "q:my"), "q:my.nodes.App");
    unload(&l);
}

static void repositories(void **state)
{
    static const char src[] = V13 "repositories:\n"
                                  "  local:\n"
                                  "    url: lib\n"
                                  "    description: next to the template\n"
                                  "  short: lib/\n"
                                  "imports:\n"
                                  "  - file: repo_types.yaml\n"
                                  "    repository: local\n"
                                  "  - file: /repo_types.yaml\n"
                                  "    repository: short\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    r:\n"
                                  "      type: my.nodes.FromRepo\n";
    static const char bad[] = V13 "repositories:\n"
                                  "  local: {url: lib}\n"
                                  "imports:\n"
                                  "  - file: repo_types.yaml\n"
                                  "    repository: elsewhere\n"
                                  "  - file: https://example.org/x.yaml\n"
                                  "    repository: local\n"
                                  "  - file: missing.yaml\n"
                                  "    repository: local\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_CLEAN(&l);
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JSTR(plan_node(&l, "r"), "properties.origin", "repository");
    unload(&l);
    load_at(&l, "main.yaml", bad, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "unknown-repository", line_of(bad, "- file: repo_types.yaml"), "'elsewhere'");
    EXPECT_ERR(&l, "bad-import", line_of(bad, "- file: https"), "relative");
    EXPECT_ERR(&l, "import-not-found", line_of(bad, "- file: missing.yaml"), "missing.yaml");
    unload(&l);
}

/* 1.0 named imports: `- name: uri` and `- name: {file: ...}`. */
static void named_import_1_0(void **state)
{
    static const char src[] = "tosca_definitions_version: tosca_simple_yaml_1_0\n"
                              "imports:\n"
                              "  - app_types: types/app.yaml\n"
                              "  - repo_types:\n"
                              "      file: lib/repo_types.yaml\n"
                              "topology_template:\n"
                              "  node_templates:\n"
                              "    app:\n"
                              "      type: my.nodes.App\n"
                              "    r:\n"
                              "      type: my.nodes.FromRepo\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_CLEAN(&l);
    unload(&l);
    /* entries that are neither */
    load_at(&l, "main.yaml",
            V13 "imports:\n"
                "  - [a, b]\n"
                "  - {namespace_prefix: p}\n",
            NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "bad-import", 3, "file name");
    EXPECT_ERR(&l, "bad-import", 4, "exactly one");
    unload(&l);
}

static void import_cycle(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - cycle/a.yaml\n";
    ld_t l;
    const tosca_diag_t *g;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_FAIL(&l);
    /* b.yaml imports a.yaml, which is still being loaded */
    g = EXPECT_ERR_IN(&l, "import-cycle", "b.yaml", 3);
    assert_non_null(strstr(g->message, "a.yaml"));
    assert_int_equal(count_code(&l.d, "import-cycle"), 1);
    unload(&l);
}

/* ---- confinement ------------------------------------------------------------------ */

static const char outside_src[] = V13 "imports:\n"
                                      "  - ../outside.yaml\n"
                                      "topology_template:\n"
                                      "  node_templates:\n"
                                      "    o:\n"
                                      "      type: my.nodes.Outside\n";

static void import_outside_denied(void **state)
{
    ld_t l;

    (void)state;
    load_at(&l, "sub/main.yaml", outside_src, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, "../outside.yaml");
    unload(&l);
    /* a file inside the template's directory is fine */
    load_at(&l, "sub/main.yaml",
            V13 "imports:\n"
                "  - local.yaml\n"
                "  - ../sub/./local.yaml\n",
            NULL);
    EXPECT_CLEAN(&l);
    unload(&l);
}

static void import_outside_allowed_root(void **state)
{
    const char *const roots[] = {FIX "/types", FIX, NULL};
    const char *const other[] = {FIX "/types", NULL};
    tosca_options_t o;
    ld_t l;

    (void)state;
    tosca_options_init(&o);
    o.allowed_roots = roots;
    load_at(&l, "sub/main.yaml", outside_src, &o);
    EXPECT_CLEAN(&l);
    unload(&l);
    o.allowed_roots = other; /* a root that does not cover it */
    load_at(&l, "sub/main.yaml", outside_src, &o);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, NULL);
    unload(&l);
}

static void import_absolute_path(void **state)
{
    char real[PATH_MAX], src[PATH_MAX + 256];
    ld_t l;

    (void)state;
    load_at(&l, "sub/main.yaml",
            V13 "imports:\n"
                "  - /etc/passwd\n",
            NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, "/etc/passwd");
    unload(&l);
    /* an absolute path is confined like a relative one: inside the directory it loads */
    assert_non_null(realpath(FIX "/sub/local.yaml", real));
    snprintf(src, sizeof(src), V13 "imports:\n  - %s\n", real);
    load_at(&l, "sub/main.yaml", src, NULL);
    EXPECT_CLEAN(&l);
    unload(&l);
}

/* A symbolic link inside the directory that points outside it is followed and refused. */
static void import_symlink_escape(void **state)
{
    char *dir = tmpdir_new(), link[PATH_MAX], target[PATH_MAX];
    ld_t l;

    (void)state;
    write_text(dir, "tpl/readme.txt", "x");
    assert_non_null(realpath(FIX "/outside.yaml", target));
    snprintf(link, sizeof(link), "%s/tpl/types.yaml", dir);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof(link), "%s/tpl/main.yaml", dir);
    {
        static const char src[] = V13 "imports:\n  - types.yaml\n";
        tosca_options_t o;
        tosca_options_init(&o);
        load_opts(&l, link, src, &o, false);
    }
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, "types.yaml");
    unload(&l);
    rm_rf(dir);
    free(dir);
}

/* Confinement is the importing template's: a file in types/ that imports ../shared.yaml
 * is refused for a template that lives in types/ (its nested import leaves the
 * template's directory). */
static void nested_import_outside_denied(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - lib.yaml\n";
    ld_t l;

    (void)state;
    load_at(&l, "conf/types/main.yaml", src, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR_IN(&l, "import-denied", "lib.yaml", 4);
    unload(&l);
    /* one level up the same files are inside the template's directory */
    load_at(&l, "conf/main.yaml", V13 "imports:\n  - types/lib.yaml\n", NULL);
    EXPECT_CLEAN(&l);
    unload(&l);
}

/* Regression: the context caches an imported file together with the outcome of its own imports,
 * which were confined to the directory of the template that loaded it first. A template
 * in conf/ loads types/lib.yaml and its ../shared.yaml; then a template in conf/types/
 * (same context) imports lib.yaml from the cache and gets shared.yaml, which is outside
 * its directory, without a word: confinement is bypassed. The other order poisons the
 * cache: after the refused conf/types/ template, the conf/ template, which is allowed
 * these files, is refused as well. */
static void cache_bypasses_confinement(void **state)
{
    static const char up[] = V13 "imports:\n  - types/lib.yaml\n";
    static const char down[] = V13 "imports:\n  - lib.yaml\n";
    char up_name[] = FIX "/conf/main.yaml", down_name[] = FIX "/conf/types/main.yaml";
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_diags_t d;
    tosca_template_t *t = NULL;

    (void)state;
    tosca_options_init(&o);
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    assert_int_equal(tosca_load_buffer(ctx, up_name, up, strlen(up), &t, &d), 0);
    tosca_template_free(t);
    t = NULL;
    assert_int_equal(tosca_load_buffer(ctx, down_name, down, strlen(down), &t, &d), ORC_ETOSCA);
    assert_non_null(test_find_code(&d, "import-denied"));
    tosca_diags_fini(&d);
    tosca_ctx_free(ctx);
    /* the other order */
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    assert_int_equal(tosca_load_buffer(ctx, down_name, down, strlen(down), &t, &d), ORC_ETOSCA);
    tosca_diags_fini(&d);
    assert_int_equal(tosca_load_buffer(ctx, up_name, up, strlen(up), &t, &d), 0);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    tosca_ctx_free(ctx);
}

static void import_without_directory(void **state)
{
    ld_t l;

    (void)state;
    load(&l, V13 "imports:\n  - types/app.yaml\n"); /* named "t.yaml": no directory */
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, "no directory");
    unload(&l);
}

static void import_not_found(void **state)
{
    static const char src[] = V13 "description: x\n"
                                  "imports:\n"
                                  "  - types/app.yaml\n"
                                  "  - types/nosuch.yaml\n"
                                  "  - file: nosuch-either.yaml\n";
    ld_t l;

    (void)state;
    load_at(&l, "main.yaml", src, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-not-found", 5, "types/nosuch.yaml");
    EXPECT_ERR(&l, "import-not-found", 6, "nosuch-either.yaml");
    assert_int_equal(l.d.errors, 2);
    unload(&l);
}

/* ---- URL imports ------------------------------------------------------------------------ */

static void url_import_denied(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - https://example.org/tosca/types.yaml\n"
                                  "  - http://example.org/other.yaml\n";
    const char *const allow[] = {"https://example.com/", NULL};
    tosca_options_t o;
    ld_t l;

    (void)state;
    tosca_options_init(&o);
    o.url_allowlist = allow; /* another host */
    load_at(&l, "main.yaml", src, &o);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", 3, "https://example.org/tosca/types.yaml");
    EXPECT_ERR(&l, "import-denied", 4, "allowlist");
    unload(&l);
}

static void url_import_map(void **state)
{
    static const char src[] = V13 "repositories:\n"
                                  "  remote: https://example.org/tosca/\n"
                                  "imports:\n"
                                  "  - https://example.org/tosca/app.yaml\n"
                                  "  - file: endpoint.yaml\n"
                                  "    repository: remote\n"
                                  "  - https://example.org/tosca/unmapped.yaml\n"
                                  "  - https://example.org/tosca/gone.yaml\n";
    char *dir = tmpdir_new(), map[PATH_MAX];
    tosca_options_t o;
    ld_t l;

    (void)state;
    write_text(dir, "map/import-map.yaml",
               "https://example.org/tosca/app.yaml: files/app.yaml\n"
               "https://example.org/tosca/endpoint.yaml: files/endpoint.yaml\n"
               "https://example.org/tosca/gone.yaml: files/gone.yaml\n");
    write_text(dir, "map/files/app.yaml",
               V13 "node_types:\n"
                   "  my.nodes.Mapped:\n"
                   "    derived_from: tosca.nodes.Root\n");
    write_text(dir, "map/files/endpoint.yaml",
               V13 "data_types:\n"
                   "  my.datatypes.Mapped:\n"
                   "    derived_from: string\n");
    snprintf(map, sizeof(map), "%s/map/import-map.yaml", dir);
    tosca_options_init(&o);
    o.import_map = map;
    load_opts(&l, "t.yaml", src, &o, false);
    EXPECT_FAIL(&l);
    EXPECT_ERR(&l, "import-denied", line_of(src, "unmapped"), "unmapped.yaml");
    EXPECT_ERR(&l, "import-not-found", line_of(src, "gone.yaml"), "files/gone.yaml");
    assert_int_equal(l.d.count, 2);
    unload(&l);
    /* the mapped ones alone load */
    {
        char ok[1024];
        snprintf(ok, sizeof(ok), "%.*s", (int)(strstr(src, "  - https://example.org/tosca/unm") - src),
                 src);
        strcat(ok, "topology_template:\n"
                   "  node_templates:\n"
                   "    m:\n"
                   "      type: my.nodes.Mapped\n");
        load_opts(&l, "t.yaml", ok, &o, false);
        EXPECT_CLEAN(&l);
        unload(&l);
    }
    /* a map that is not a mapping */
    write_text(dir, "bad-map.yaml", "- a\n- b\n");
    snprintf(map, sizeof(map), "%s/bad-map.yaml", dir);
    o.import_map = map;
    {
        tosca_ctx_t *ctx = (tosca_ctx_t *)1;
        tosca_diags_t d;
        tosca_diags_init(&d, false);
        assert_int_equal(tosca_ctx_new(&o, &ctx, &d), ORC_ETOSCA);
        assert_null(ctx);
        assert_non_null(test_find_code(&d, "import-map"));
        assert_int_equal(test_find_code(&d, "import-map")->line, 1);
        tosca_diags_fini(&d);
    }
    rm_rf(dir);
    free(dir);
}

/* The cache file of url under dir: the SHA-256 of the URL, in hex. */
static void cache_name(const char *url, char *out, size_t size)
{
    unsigned char md[32];
    unsigned n = 0;
    size_t at = 0;

    assert_true(EVP_Digest(url, strlen(url), md, &n, EVP_sha256(), NULL));
    for (unsigned i = 0; i < n && at + 3 < size; i++, at += 2)
        snprintf(out + at, 3, "%02x", md[i]);
    snprintf(out + at, size - at, ".yaml");
}

static const char cached_types[] = V13 "node_types:\n"
                                       "  my.nodes.Cached:\n"
                                       "    derived_from: tosca.nodes.Root\n";

/* A new cache directory that holds url's file (the types of my.nodes.Cached), whose path
 * goes to path. */
static char *cache_holding(const char *url, char *path, size_t size)
{
    char *dir = tmpdir_new(), name[80];

    cache_name(url, name, sizeof(name));
    write_text(dir, name, cached_types);
    snprintf(path, size, "%s/%s", dir, name);
    return dir;
}

/* An allowlisted URL is fetched into the cache once; a file already in the cache is used
 * without the network. */
static void url_allowlist_from_cache(void **state)
{
    static const char url[] = "https://types.example.org/v1/cached.yaml";
    static const char src[] = V13 "imports:\n"
                                  "  - https://types.example.org/v1/cached.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    c:\n"
                                  "      type: my.nodes.Cached\n";
    const char *const allow[] = {"https://types.example.org/", NULL};
    char path[PATH_MAX], *dir = cache_holding(url, path, sizeof(path));
    tosca_options_t o;
    ld_t l;

    (void)state;
    tosca_options_init(&o);
    o.url_allowlist = allow;
    o.cache_dir = dir;
    load_opts(&l, "t.yaml", src, &o, false);
    EXPECT_CLEAN(&l);
    unload(&l);
    rm_rf(dir);
    free(dir);
}

/* A cached copy older than cache_ttl_s is fetched again; when that fails (nothing listens
 * on the port) the old copy is used, with a warning that says so. */
static void url_cache_stale_copy_used_with_warning(void **state)
{
    static const char url[] = "http://127.0.0.1:9/v1/cached.yaml";
    static const char src[] = V13 "imports:\n"
                                  "  - http://127.0.0.1:9/v1/cached.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    c:\n"
                                  "      type: my.nodes.Cached\n";
    const char *const allow[] = {"http://127.0.0.1:9/v1/", NULL};
    char path[PATH_MAX], *dir = cache_holding(url, path, sizeof(path));
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    tosca_options_t o;
    ld_t l;

    (void)state;
    assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    tosca_options_init(&o);
    o.url_allowlist = allow;
    o.cache_dir = dir;
    o.cache_ttl_s = 3600;
    o.fetch_timeout_s = 2;
    load_opts(&l, "t.yaml", src, &o, false);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "fetch-stale", line_of(src, "- http"), "cached.yaml");
    unload(&l);
    /* without a TTL the copy is simply used */
    o.cache_ttl_s = 0;
    load_opts(&l, "t.yaml", src, &o, false);
    EXPECT_CLEAN(&l);
    unload(&l);
    rm_rf(dir);
    free(dir);
}

/* The allowlist matches URLs as libcurl parses them: no spelling reaches another host,
 * port or scheme, or a path outside an entry. */
static void url_allowlist_spellings(void **state)
{
    const char *const allow[] = {"https://types.example.org/tosca/", "http://10.0.0.5:8000/t",
                                 "https://Other.Example.org", NULL};
    static const char *const admitted[] = {
        "https://types.example.org/tosca/a.yaml",
        "https://types.example.org:443/tosca/a.yaml",
        "https://TYPES.example.org/tosca/sub/a.yaml",
        "https://types.example.org/tosca/a.yaml?v=2",
        "http://10.0.0.5:8000/t/a.yaml",
        "http://10.0.0.5:8000/t",
        "https://other.example.org/anything.yaml",
    };
    static const char *const refused[] = {
        "https://types.example.org/tosca/../admin.yaml",
        "https://types.example.org/tosca/./a.yaml",
        "https://types.example.org/tosca/%2e%2e/admin.yaml",
        "https://types.example.org/tosca/%2E%2e/admin.yaml",
        "https://types.example.org/tosca/a%2f..%2fb.yaml",
        "https://types.example.org/tosca\\..\\admin.yaml",
        "https://types.example.org/toscafake/a.yaml",
        "https://types.example.org/tosca",
        "http://types.example.org/tosca/a.yaml",
        "https://types.example.org:8443/tosca/a.yaml",
        "https://types.example.org.evil.test/tosca/a.yaml",
        "https://types.example.org@evil.test/tosca/a.yaml",
        "https://user:pw@types.example.org/tosca/a.yaml",
        "https://evil.test/types.example.org/tosca/a.yaml",
        "http://10.0.0.5:8000/tx.yaml",
        "http://10.0.0.5/t/a.yaml",
        "https://types.example.org/tosca/a b.yaml",
        "https://types.example.org/tosca/a\tb.yaml",
        "file:///etc/passwd",
        "ftp://types.example.org/tosca/a.yaml",
        "gopher://types.example.org/tosca/a.yaml",
        "types.example.org/tosca/a.yaml",
        "",
    };
    char why[128];

    (void)state;
    for (size_t i = 0; i < sizeof(admitted) / sizeof(admitted[0]); i++)
        if (!tosca_url_allowed(allow, admitted[i], why, sizeof(why)))
            fail_msg("'%s' refused: %s", admitted[i], why);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        why[0] = '\0';
        if (tosca_url_allowed(allow, refused[i], why, sizeof(why)))
            fail_msg("'%s' admitted", refused[i]);
        assert_true(why[0] != '\0');
    }
    assert_false(tosca_url_allowed(NULL, "https://types.example.org/tosca/a.yaml", NULL, 0));
}

/* Entries are checked when the context is made. */
static void url_allowlist_entries_checked(void **state)
{
    static const char *const bad[] = {"https://u@types.example.org/", "https://h/?q=1",
                                      "https://h/#f", "ftp://h/", "/local/dir", "https://h/a/../"};
    char why[128];

    (void)state;
    assert_int_equal(tosca_url_prefix_check("https://types.example.org/tosca/", why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *const allow[] = {bad[i], NULL};
        tosca_options_t o;
        tosca_ctx_t *ctx = (tosca_ctx_t *)1;
        tosca_diags_t d;

        if (tosca_url_prefix_check(bad[i], why, sizeof(why)) == 0)
            fail_msg("prefix '%s' accepted", bad[i]);
        tosca_options_init(&o);
        o.url_allowlist = allow;
        tosca_diags_init(&d, false);
        assert_int_equal(tosca_ctx_new(&o, &ctx, &d), ORC_ETOSCA);
        assert_null(ctx);
        assert_non_null(test_find_code(&d, "url-allowlist"));
        tosca_diags_fini(&d);
    }
}

/* ---- limits and the cache ----------------------------------------------------------- */

static void max_imports(void **state)
{
    static const char direct[] = V13 "imports:\n"
                                     "  - sub/local.yaml\n"
                                     "  - lib/repo_types.yaml\n"
                                     "  - outside.yaml\n";
    tosca_options_t o;
    ld_t l;

    (void)state;
    tosca_options_init(&o);
    o.limits.max_imports = 3;
    load_at(&l, "main.yaml", direct, &o);
    EXPECT_CLEAN(&l);
    unload(&l);
    o.limits.max_imports = 2;
    load_at(&l, "main.yaml", direct, &o);
    assert_int_equal(l.rc, ORC_ELIMIT);
    EXPECT_ERR(&l, "too-many-imports", 5, "2");
    unload(&l);
}

/* Regression: when the limit is reached inside an imported file (types/app.yaml imports
 * common/endpoint.yaml), tosca_load_buffer returns ORC_ETOSCA instead of ORC_ELIMIT
 * (load_cached_fs maps every failure of the imported file but ORC_ENOMEM to ORC_ETOSCA),
 * and the imported file stays in the context's cache with that failure: a later template
 * of the same context that imports it as its only file is refused too, although it is
 * far within the limit. */
static void max_imports_nested(void **state)
{
    static const char one[] = V13 "imports:\n"
                                  "  - sub/local.yaml\n"
                                  "  - types/app.yaml\n";
    static const char two[] = V13 "imports:\n"
                                  "  - types/app.yaml\n";
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_diags_t d;
    tosca_template_t *t = NULL;
    char name[] = FIX "/main.yaml";

    (void)state;
    tosca_options_init(&o);
    o.limits.max_imports = 2;
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    assert_int_equal(tosca_load_buffer(ctx, name, one, strlen(one), &t, &d), ORC_ELIMIT);
    assert_non_null(test_find_code(&d, "too-many-imports"));
    tosca_diags_fini(&d);
    /* app.yaml and its one import: 2 files, within the limit */
    assert_int_equal(tosca_load_buffer(ctx, name, two, strlen(two), &t, &d), 0);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    tosca_ctx_free(ctx);
}

/* Two templates of one context share an imported file: it is parsed once (the context
 * keeps one copy) and its diagnostics are replayed, identical, to each template; a
 * template that imports it twice hears them once. */
static void shared_import_parsed_once(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - types/warn.yaml\n"
                                  "  - types/./warn.yaml\n"
                                  "topology_template:\n"
                                  "  node_templates:\n"
                                  "    w:\n"
                                  "      type: my.nodes.Warned\n";
    static const char other[] = V13 "imports:\n"
                                    "  - types/warn.yaml\n"
                                    "topology_template:\n"
                                    "  node_templates:\n"
                                    "    w2:\n"
                                    "      type: my.nodes.Warned\n"
                                    "      properties: {level: 2}\n";
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_diags_t d1, d2;
    tosca_template_t *t1 = NULL, *t2 = NULL;
    size_t files;
    char name[] = FIX "/main.yaml";

    (void)state;
    tosca_options_init(&o);
    tosca_diags_init(&d1, false);
    tosca_diags_init(&d2, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d1), 0);
    assert_int_equal(tosca_load_buffer(ctx, name, src, strlen(src), &t1, &d1), 0);
    check_sanity(&d1);
    assert_int_equal(d1.count, 2); /* once, although imported twice */
    assert_int_equal(count_code(&d1, "unknown-key"), 2);
    assert_int_equal(d1.items[0].line, 2);
    assert_non_null(strstr(d1.items[0].file, "warn.yaml"));
    files = ctx->files.count;
    assert_int_equal(tosca_load_buffer(ctx, name, other, strlen(other), &t2, &d2), 0);
    check_sanity(&d2);
    assert_int_equal(ctx->files.count, files); /* nothing parsed again */
    assert_int_equal(d1.count, d2.count);
    for (size_t i = 0; i < d1.count; i++) {
        assert_string_equal(d1.items[i].code, d2.items[i].code);
        assert_string_equal(d1.items[i].file, d2.items[i].file);
        assert_int_equal(d1.items[i].line, d2.items[i].line);
        assert_int_equal(d1.items[i].col, d2.items[i].col);
        assert_int_equal(d1.items[i].severity, d2.items[i].severity);
        assert_string_equal(d1.items[i].message, d2.items[i].message);
    }
    /* both templates see the type; freeing one leaves the other's intact */
    tosca_template_free(t1);
    {
        json_t *plan = NULL;
        assert_int_equal(tosca_plan(t2, NULL, &plan, &d2), 0);
        assert_int_equal(json_integer_value(jpath(plan, "nodes.0.properties.level")), 2);
        json_decref(plan);
    }
    tosca_template_free(t2);
    tosca_diags_fini(&d1);
    tosca_diags_fini(&d2);
    tosca_ctx_free(ctx);
}

/* The defects of an imported file follow the mode of the load: warnings when lenient,
 * errors when strict (strict options). */
static void imported_defects_strict(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - types/warn.yaml\n";
    tosca_options_t o;
    ld_t l;

    (void)state;
    tosca_options_init(&o);
    load_at(&l, "main.yaml", src, &o);
    EXPECT_OK(&l);
    EXPECT_WARN_IN(&l, "unknown-key", "types/warn.yaml", 2);
    EXPECT_WARN_IN(&l, "unknown-key", "types/warn.yaml", 10);
    unload(&l);
    o.strict = true;
    load_at(&l, "main.yaml", src, &o);
    EXPECT_FAIL(&l);
    EXPECT_ERR_IN(&l, "unknown-key", "types/warn.yaml", 2);
    EXPECT_ERR_IN(&l, "unknown-key", "types/warn.yaml", 10);
    unload(&l);
}

/* Strict mode asked for through the diagnostics (tosca_diags_init(&d, true)) applies to
 * imported files too, although the context is lenient and holds them already: the same
 * cached file gives warnings, errors, warnings again. */
static void imported_defects_strict_diags(void **state)
{
    static const char src[] = V13 "imports:\n"
                                  "  - types/warn.yaml\n";
    static const bool strict[] = {false, true, false};
    char name[] = FIX "/main.yaml";
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_diags_t d;

    (void)state;
    tosca_options_init(&o);
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    for (size_t i = 0; i < sizeof(strict) / sizeof(strict[0]); i++) {
        tosca_template_t *t = NULL;
        int rc;
        tosca_diags_init(&d, strict[i]);
        rc = tosca_load_buffer(ctx, name, src, strlen(src), &t, &d);
        check_sanity(&d);
        assert_int_equal(rc, strict[i] ? ORC_ETOSCA : 0);
        assert_int_equal(d.count, 2);
        for (size_t k = 0; k < d.count; k++) {
            assert_string_equal(d.items[k].code, "unknown-key");
            assert_int_equal(d.items[k].severity,
                             strict[i] ? TOSCA_SEV_ERROR : TOSCA_SEV_WARNING);
        }
        tosca_template_free(t);
        tosca_diags_fini(&d);
    }
    tosca_ctx_free(ctx);
}

/* ---- CSARs ------------------------------------------------------------------------------- */

static const char meta[] = "TOSCA-Meta-File-Version: 1.1\n"
                           "CSAR-Version: 1.1\n"
                           "Created-By: test_tosca_imports\n"
                           "Entry-Definitions: Definitions/main.yaml\n";

static void csar_relative_import(void **state)
{
    static const char main_yaml[] = V13 "imports:\n"
                                        "  - types/app.yaml\n"
                                        "topology_template:\n"
                                        "  node_templates:\n"
                                        "    app:\n"
                                        "      type: my.nodes.Packed\n"
                                        "      properties:\n"
                                        "        size: 2 GB\n";
    static const char app_yaml[] = V13 "imports:\n"
                                       "  - ../common.yaml\n"
                                       "  - /Definitions/./more/extra.yaml\n"
                                       "node_types:\n"
                                       "  my.nodes.Packed:\n"
                                       "    derived_from: my.nodes.Base\n"
                                       "    properties:\n"
                                       "      size: {type: my.datatypes.Size}\n";
    static const char common_yaml[] = V13 "node_types:\n"
                                          "  my.nodes.Base:\n"
                                          "    derived_from: tosca.nodes.Root\n";
    static const char extra_yaml[] = V13 "data_types:\n"
                                         "  my.datatypes.Size:\n"
                                         "    derived_from: scalar-unit.size\n"
                                         "    constraints:\n"
                                         "      - less_than: 1 TB\n";
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", meta,
                                 "Definitions/main.yaml",     main_yaml,
                                 "Definitions/types/app.yaml", app_yaml,
                                 "Definitions/common.yaml",   common_yaml,
                                 "Definitions/more/extra.yaml", extra_yaml,
                                 NULL};
    char *dir = tmpdir_new(), path[PATH_MAX];
    ld_t l;

    (void)state;
    write_csar(dir, "app.csar", pairs);
    snprintf(path, sizeof(path), "%s/app.csar", dir);
    load_path(&l, path, NULL);
    EXPECT_CLEAN(&l);
    assert_string_equal(tosca_template_version(l.t), "tosca_simple_yaml_1_3");
    plan_with(&l, NULL);
    assert_int_equal(l.plan_rc, 0);
    ASSERT_JEQ(plan_node(&l, "app"), "types",
               "[\"my.nodes.Packed\", \"my.nodes.Base\", \"tosca.nodes.Root\"]");
    unload(&l);
    rm_rf(dir);
    free(dir);
}

static void csar_import_escapes(void **state)
{
    static const char main_yaml[] = V13 "imports:\n"
                                        "  - ../../outside.yaml\n"
                                        "  - types/missing.yaml\n"
                                        "  - /etc/passwd\n";
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", meta, "Definitions/main.yaml",
                                 main_yaml, NULL};
    char *dir = tmpdir_new(), path[PATH_MAX];
    const tosca_diag_t *g;
    ld_t l;

    (void)state;
    /* a file where the escape would land: it must not be read */
    write_text(dir, "outside.yaml", V13);
    write_csar(dir, "pkg/evil.csar", pairs);
    snprintf(path, sizeof(path), "%s/pkg/evil.csar", dir);
    load_path(&l, path, NULL);
    EXPECT_FAIL(&l);
    g = EXPECT_ERR_IN(&l, "import-denied", "evil.csar/Definitions/main.yaml", 3);
    assert_non_null(strstr(g->message, "leaves the archive"));
    EXPECT_ERR_IN(&l, "import-not-found", "evil.csar/Definitions/main.yaml", 4);
    /* an absolute name means the archive root, never the file system */
    g = EXPECT_ERR_IN(&l, "import-not-found", "evil.csar/Definitions/main.yaml", 5);
    assert_non_null(strstr(g->message, "in the archive"));
    unload(&l);
    rm_rf(dir);
    free(dir);
}

/* Without TOSCA-Metadata: the one YAML file of the root is the entry; an import cycle
 * inside the archive is found too. */
static void csar_root_yaml_and_cycle(void **state)
{
    const char *const pairs[] = {"service.yaml", V13 "imports:\n  - lib/a.yaml\n",
                                 "lib/a.yaml",   V13 "imports:\n  - b.yaml\n",
                                 "lib/b.yaml",   V13 "imports:\n  - ./a.yaml\n",
                                 NULL};
    char *dir = tmpdir_new(), path[PATH_MAX];
    ld_t l;

    (void)state;
    write_csar(dir, "cycle.csar", pairs);
    snprintf(path, sizeof(path), "%s/cycle.csar", dir);
    load_path(&l, path, NULL);
    EXPECT_FAIL(&l);
    EXPECT_ERR_IN(&l, "import-cycle", "lib/b.yaml", 3);
    unload(&l);
    rm_rf(dir);
    free(dir);
}

/* Regression: diagnostics about a file imported inside an archive name it
 * "<archive>/<entry path>/<member path>" ("x.csar/Definitions/main.yaml/lib/t.yaml"): the
 * name is built from the entry file's name, which already holds the entry's path
 * (loader.c, load_from_archive), so it names no file. It should be "x.csar/lib/t.yaml",
 * like the entry's own "x.csar/Definitions/main.yaml". */
static void csar_member_file_name(void **state)
{
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", meta,
                                 "Definitions/main.yaml", V13 "imports:\n  - ../lib/t.yaml\n",
                                 "lib/t.yaml", V13 "bogus: 1\n",
                                 NULL};
    char *dir = tmpdir_new(), path[PATH_MAX], want[PATH_MAX + 16];
    ld_t l;

    (void)state;
    write_csar(dir, "x.csar", pairs);
    snprintf(path, sizeof(path), "%s/x.csar", dir);
    snprintf(want, sizeof(want), "%s/lib/t.yaml", path);
    load_path(&l, path, NULL);
    rm_rf(dir);
    free(dir);
    EXPECT_OK(&l);
    EXPECT_WARN(&l, "unknown-key", 2, "bogus");
    assert_string_equal(l.d.items[0].file, want);
    unload(&l);
}

/* Loads app_src as FIX/main.yaml in ctx. */
static int load_app_at_fix(tosca_ctx_t *ctx, tosca_template_t **t, tosca_diags_t *d)
{
    return tosca_load_buffer(ctx, FIX "/main.yaml", app_src, strlen(app_src), t, d);
}

/* ---- out of memory ------------------------------------------------------------------ */

/* The number of definitions files a context holds that are not in its cache of imported
 * files: the normative types (Simple Profile and the project's types) and nothing else. */
static size_t uncached_files(const tosca_ctx_t *ctx)
{
    return ctx->files.count - ctx->file_cache.count;
}

/* A context with the normative types loaded, through the failing allocator. */
static tosca_ctx_t *warm_ctx(tosca_diags_t *d)
{
    tosca_options_t o;
    tosca_ctx_t *ctx;
    tosca_template_t *t = NULL;

    tosca_options_init(&o);
    assert_int_equal(tosca_ctx_new(&o, &ctx, d), 0);
    assert_int_equal(tosca_load_buffer(ctx, "w.yaml", V13, strlen(V13), &t, d), 0);
    tosca_template_free(t);
    tosca_diags_fini(d);
    assert_int_equal(uncached_files(ctx), 2);
    return ctx;
}

/* A CSAR whose entry imports two files of the archive, loaded and planned while the k-th
 * allocation fails, k = 0, 1, ...: ORC_ENOMEM or the full result, and no leak. Archive
 * members belong to the template, so one warm context serves every run. */
static void oom_csar(void **state)
{
    static const char main_yaml[] = V13 "imports:\n"
                                        "  - types/app.yaml\n"
                                        "topology_template:\n"
                                        "  node_templates:\n"
                                        "    app:\n"
                                        "      type: my.nodes.Packed\n";
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", meta,
                                 "Definitions/main.yaml", main_yaml,
                                 "Definitions/types/app.yaml",
                                 V13 "imports:\n  - ../common.yaml\n"
                                     "node_types:\n"
                                     "  my.nodes.Packed:\n"
                                     "    derived_from: my.nodes.Base\n",
                                 "Definitions/common.yaml",
                                 V13 "bogus: 1\n"
                                     "node_types:\n"
                                     "  my.nodes.Base:\n"
                                     "    derived_from: tosca.nodes.Root\n",
                                 NULL};
    char *dir = tmpdir_new(), path[PATH_MAX];
    tosca_ctx_t *ctx;
    tosca_diags_t d;
    json_t *ref = NULL;
    size_t base, ref_count = 0;
    long k;

    (void)state;
    write_csar(dir, "app.csar", pairs);
    snprintf(path, sizeof(path), "%s/app.csar", dir);
    oom_begin();
    tosca_diags_init(&d, false);
    ctx = warm_ctx(&d);
    base = oom.live;
    for (k = -1; k < 100000; k++) {
        tosca_template_t *t = NULL;
        json_t *plan = NULL;
        int rc, prc = -1;
        oom.injected = false;
        oom.left = k;
        rc = tosca_load_file(ctx, path, &t, &d);
        if (rc == 0)
            prc = tosca_plan(t, NULL, &plan, &d);
        oom.left = -1;
        if (k < 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(prc, 0);
            ref = plan;
            plan = NULL;
            ref_count = d.count;
            assert_int_equal(ref_count, 1); /* bogus: 1 */
        } else if (rc != ORC_ENOMEM && prc != ORC_ENOMEM) {
            if (rc != 0 || prc != 0 || d.count != ref_count || !json_equal(plan, ref)) {
                test_print_diags(&d);
                fail_msg("failed allocation %ld: load %s, plan %d", k, orc_err_name(rc), prc);
            }
        }
        json_decref(plan);
        tosca_template_free(t);
        tosca_diags_fini(&d);
        if (oom.live != base || oom.bad_free)
            fail_msg("failed allocation %ld: %zu blocks leaked, %zu bad frees", k,
                     oom.live - base, oom.bad_free);
        if (k >= 0 && !oom.injected)
            break;
    }
    assert_true(k > 50);
    json_decref(ref);
    tosca_ctx_free(ctx);
    assert_int_equal(oom.live, 0);
    oom_end();
    rm_rf(dir);
    free(dir);
}

/* Regression: out of memory in load_cached_fs (loader.c) after the new file joined ctx->files but
 * before it joined the cache (tosca_hmap_put fails) frees the file and leaves it in
 * ctx->files: tosca_ctx_free() then reads and frees it again (heap use after free, double
 * free; ASan: "heap-use-after-free ... in file_free"). Checked here before tosca_ctx_free,
 * through the context's invariant, so that the test fails instead of crashing. */
static void oom_import_double_free(void **state)
{
    tosca_diags_t d;
    long k;

    (void)state;
    oom_begin();
    tosca_diags_init(&d, false);
    for (k = 0; k < 100000; k++) {
        tosca_ctx_t *ctx = warm_ctx(&d);
        tosca_template_t *t = NULL;
        oom.injected = false;
        oom.left = k;
        load_app_at_fix(ctx, &t, &d);
        oom.left = -1;
        tosca_template_free(t);
        tosca_diags_fini(&d);
        if (uncached_files(ctx) != 2)
            fail_msg("failed allocation %ld: the context holds a file it has freed (%zu files, "
                     "%zu cached): tosca_ctx_free would free it twice",
                     k, ctx->files.count, ctx->file_cache.count);
        tosca_ctx_free(ctx);
        if (!oom.injected)
            break;
    }
    oom_end();
}

/* Regression: out of memory while an imported file is parsed leaves the half-parsed file in the
 * context's cache with status ORC_ENOMEM: every later template of that context that
 * imports it is refused with ORC_ETOSCA, with a misleading diagnostic ("unknown node type
 * 'my.nodes.App'") or none at all, although memory is available again. A failed file
 * should not stay cached. */
static void oom_import_poisons_cache(void **state)
{
    tosca_diags_t d;
    long k;

    (void)state;
    oom_begin();
    tosca_diags_init(&d, false);
    for (k = 0; k < 100000; k++) {
        tosca_ctx_t *ctx = warm_ctx(&d);
        tosca_template_t *t = NULL;
        int rc;
        oom.injected = false;
        oom.left = k;
        load_app_at_fix(ctx, &t, &d);
        oom.left = -1;
        tosca_template_free(t);
        tosca_diags_fini(&d);
        if (!oom.injected) {
            tosca_ctx_free(ctx);
            break;
        }
        if (uncached_files(ctx) != 2)
            continue; /* the double free above: leak this context rather than crash */
        t = NULL;
        rc = load_app_at_fix(ctx, &t, &d);
        if (rc != 0) {
            test_print_diags(&d);
            fail_msg("after a failed allocation %ld, the next load of the context gives %s with "
                     "%zu diagnostics",
                     k, orc_err_name(rc), d.count);
        }
        tosca_template_free(t);
        tosca_diags_fini(&d);
        tosca_ctx_free(ctx);
    }
    oom_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relative_import),
        cmocka_unit_test(nested_import_values),
        cmocka_unit_test(nested_imports),
        cmocka_unit_test(namespace_prefix),
        cmocka_unit_test(repositories),
        cmocka_unit_test(named_import_1_0),
        cmocka_unit_test(import_cycle),
        cmocka_unit_test(import_outside_denied),
        cmocka_unit_test(import_outside_allowed_root),
        cmocka_unit_test(import_absolute_path),
        cmocka_unit_test(import_symlink_escape),
        cmocka_unit_test(nested_import_outside_denied),
        cmocka_unit_test(import_without_directory),
        cmocka_unit_test(import_not_found),
        cmocka_unit_test(url_import_denied),
        cmocka_unit_test(url_import_map),
        cmocka_unit_test(url_allowlist_from_cache),
        cmocka_unit_test(url_cache_stale_copy_used_with_warning),
        cmocka_unit_test(url_allowlist_spellings),
        cmocka_unit_test(url_allowlist_entries_checked),
        cmocka_unit_test(max_imports),
        cmocka_unit_test(shared_import_parsed_once),
        cmocka_unit_test(imported_defects_strict),
        cmocka_unit_test(imported_defects_strict_diags),
        cmocka_unit_test(csar_relative_import),
        cmocka_unit_test(csar_import_escapes),
        cmocka_unit_test(csar_root_yaml_and_cycle),
        cmocka_unit_test(oom_csar),
        cmocka_unit_test(max_imports_nested),
        cmocka_unit_test(csar_member_file_name),
        cmocka_unit_test(cache_bypasses_confinement),
        cmocka_unit_test(oom_import_double_free),
        cmocka_unit_test(oom_import_poisons_cache),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
