/*
 * The shared corpus of real TOSCA templates: every file is loaded in the
 * default (lenient) mode with the corpus import map and, when it loads,
 * planned with a value for each required input that has no default. The
 * expected outcome of each file is in tests/tosca/corpus-expect.txt; the
 * test also fails when a corpus file is missing from that list.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "internal.h"
#include "testutil.h"

#define EXPECT_FILE "tests/tosca/corpus-expect.txt"
#define MAX_ENTRIES 512

struct expect {
    char path[256];
    bool ok;
    char *checks[32]; /* "code@line" (errors) or "warn:code@line" */
    int nchecks;
};

static struct expect entries[MAX_ENTRIES];
static int nentries;
static char indigo[1024];

static void read_expectations(void)
{
    FILE *fp = fopen(EXPECT_FILE, "r");
    char line[4096];

    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp)) {
        char *save = NULL, *tok = strtok_r(line, " \t\n", &save);
        struct expect *e;
        if (tok == NULL || tok[0] == '#')
            continue;
        assert_true(nentries < MAX_ENTRIES);
        e = &entries[nentries++];
        snprintf(e->path, sizeof(e->path), "%s", tok);
        tok = strtok_r(NULL, " \t\n", &save);
        assert_non_null(tok);
        e->ok = strcmp(tok, "ok") == 0;
        while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL && e->nchecks < 32)
            e->checks[e->nchecks++] = strdup(tok);
    }
    fclose(fp);
}

static const struct expect *find_entry(const char *rel)
{
    for (int i = 0; i < nentries; i++)
        if (strcmp(entries[i].path, rel) == 0)
            return &entries[i];
    return NULL;
}

/* Every .yaml / .yml under dir (relative to indigo/) is listed. */
static int walk(const char *rel, int *seen)
{
    char path[2048];
    DIR *d;
    struct dirent *de;
    int missing = 0;

    snprintf(path, sizeof(path), "%s/%s", indigo, rel);
    d = opendir(path);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char sub[1024];
        struct stat st;
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
        snprintf(path, sizeof(path), "%s/%s", indigo, sub);
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            missing += walk(sub, seen);
        } else if ((n > 5 && strcmp(de->d_name + n - 5, ".yaml") == 0) ||
                   (n > 4 && strcmp(de->d_name + n - 4, ".yml") == 0)) {
            (*seen)++;
            if (find_entry(sub) == NULL) {
                fprintf(stderr, "corpus file not in %s: %s\n", EXPECT_FILE, sub);
                missing++;
            }
        }
    }
    closedir(d);
    return missing;
}

static void every_corpus_file_is_listed(void **state)
{
    int seen = 0;

    (void)state;
    assert_int_equal(walk("examples", &seen) + walk("templates", &seen), 0);
    assert_int_equal(seen, nentries);
}

/* A value of the input's type, for required inputs without a default. */
static json_t *sample_value(const tosca_schema_t *s)
{
    switch (s->prim) {
    case TOSCA_P_INTEGER:
        return json_integer(1);
    case TOSCA_P_FLOAT:
        return json_real(1.0);
    case TOSCA_P_BOOLEAN:
        return json_true();
    case TOSCA_P_SIZE:
        return json_string("1 GB");
    case TOSCA_P_LIST:
        return json_array();
    case TOSCA_P_MAP:
    case TOSCA_P_COMPLEX:
        return json_object();
    default:
        return json_string("sample");
    }
}

static json_t *required_inputs(const tosca_template_t *t)
{
    json_t *in = json_object();

    for (size_t i = 0; i < t->input_count; i++) {
        const tosca_schema_t *s = t->inputs[i];
        if (s->required && !s->default_value && !s->value)
            json_object_set_new(in, s->name, sample_value(s));
    }
    return in;
}

/* Each listed check names a diagnostic of the file itself at that line. */
static int check_listed(const struct expect *e, const char *file, const tosca_diags_t *d)
{
    int bad = 0;

    for (int i = 0; i < e->nchecks; i++) {
        bool warn = strncmp(e->checks[i], "warn:", 5) == 0;
        const char *spec = e->checks[i] + (warn ? 5 : 0);
        const char *at = strrchr(spec, '@');
        bool found = false;
        assert_non_null(at);
        for (size_t j = 0; j < d->count && !found; j++) {
            const tosca_diag_t *g = &d->items[j];
            found = strcmp(g->file, file) == 0 && (size_t)(at - spec) == strlen(g->code) &&
                    strncmp(g->code, spec, (size_t)(at - spec)) == 0 &&
                    g->line == (uint32_t)atoi(at + 1) &&
                    g->severity == (warn ? TOSCA_SEV_WARNING : TOSCA_SEV_ERROR);
        }
        if (!found) {
            fprintf(stderr, "%s: expected %s was not reported\n", e->path, e->checks[i]);
            bad++;
        }
    }
    return bad;
}

static int run_one(tosca_ctx_t *ctx, const struct expect *e)
{
    char file[2048];
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    json_t *plan = NULL, *inputs;
    int rc, bad = 0;

    snprintf(file, sizeof(file), "%.1000s/%.255s", indigo, e->path);
    tosca_diags_init(&d, false);
    rc = tosca_load_file(ctx, file, &t, &d);
    if (rc == 0) {
        inputs = required_inputs(t);
        rc = tosca_plan(t, inputs, &plan, &d);
        json_decref(inputs);
        if (rc == 0 && (!json_is_array(json_object_get(plan, "nodes")) ||
                        json_array_size(json_object_get(plan, "nodes")) != t->node_count))
            rc = -1;
    }
    if ((rc == 0) != e->ok) {
        fprintf(stderr, "%s: expected %s, got %s\n", e->path, e->ok ? "ok" : "refusal",
                rc == 0 ? "ok" : orc_err_name(rc));
        test_print_diags(&d);
        bad++;
    }
    bad += check_listed(e, file, &d);
    for (size_t j = 0; j < d.count; j++)
        if (!d.items[j].code[0] || (d.items[j].file[0] && d.items[j].line == 0 &&
                                    d.items[j].severity == TOSCA_SEV_ERROR &&
                                    strcmp(d.items[j].code, "input-too-large") != 0)) {
            fprintf(stderr, "%s: diagnostic without position or code: %s\n", e->path,
                    d.items[j].message);
            bad++;
        }
    json_decref(plan);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    return bad;
}

static void every_template_has_its_expected_outcome(void **state)
{
    char map[1100];
    tosca_options_t o;
    tosca_ctx_t *ctx = NULL;
    tosca_diags_t d;
    int bad = 0, ok = 0;

    (void)state;
    snprintf(map, sizeof(map), "%s/import-map.yaml", indigo);
    tosca_options_init(&o);
    o.import_map = map;
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    for (int i = 0; i < nentries; i++) {
        bad += run_one(ctx, &entries[i]);
        ok += entries[i].ok;
    }
    fprintf(stderr, "corpus: %d templates, %d load and plan, %d refused with the expected "
                    "errors\n", nentries, ok, nentries - ok);
    tosca_ctx_free(ctx);
    tosca_diags_fini(&d);
    assert_int_equal(bad, 0);
}

/* The shared types file's own defects are warnings, reported with their
 * position in that file, for every template that imports it. */
static void shared_types_defects_are_warnings(void **state)
{
    char map[1100], file[1100];
    tosca_options_t o;
    tosca_ctx_t *ctx = NULL;
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    const tosca_diag_t *g;

    (void)state;
    snprintf(map, sizeof(map), "%s/import-map.yaml", indigo);
    snprintf(file, sizeof(file), "%s/templates/deep-oc/deep-oc-mods_mesos-gpu.yml", indigo);
    tosca_options_init(&o);
    o.import_map = map;
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(&o, &ctx, &d), 0);
    assert_int_equal(tosca_load_file(ctx, file, &t, &d), 0);
    g = test_find_code(&d, "yaml-duplicate-key");
    assert_non_null(g);
    assert_int_equal(g->severity, TOSCA_SEV_WARNING);
    assert_int_equal(g->line, 1307);
    assert_non_null(strstr(g->file, "custom_types.yaml"));
    tosca_template_free(t);
    tosca_diags_fini(&d);
    /* strict mode: the same defects are errors */
    tosca_diags_init(&d, true);
    assert_int_equal(tosca_load_file(ctx, file, &t, &d), ORC_ETOSCA);
    assert_null(t);
    tosca_diags_fini(&d);
    tosca_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_corpus_file_is_listed),
        cmocka_unit_test(every_template_has_its_expected_outcome),
        cmocka_unit_test(shared_types_defects_are_warnings),
    };
    int rc;

    snprintf(indigo, sizeof(indigo), "%s/indigo", test_corpus_dir());
    read_expectations();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < nentries; i++)
        for (int j = 0; j < entries[i].nchecks; j++)
            free(entries[i].checks[j]);
    return rc;
}
