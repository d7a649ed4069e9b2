/*
 * The fixture of the libtosca unit tests (test_tosca.c, test_tosca_plan.c,
 * test_tosca_imports.c): the V13/V20 template headers, a template loaded from
 * a string (load, load_mode, load_opts) or a file (load_path) into an ld_t
 * with its diagnostics checked for sanity, lines of the template found by
 * text (line_of), expectations on diagnostics by code, line and text
 * (EXPECT_ERR, EXPECT_WARN, EXPECT_CLEAN, EXPECT_FAIL, EXPECT_OK), the plan and
 * checks on its JSON (plan_with, plan_node, ASSERT_JSTR, ASSERT_JINT,
 * ASSERT_JEQ), and an allocator that fails the k-th allocation and tracks live
 * blocks (oom_begin, oom_end). Header-only: every function is static inline
 * (and the allocator's state unused-tolerant) so that a test program that does
 * not use one builds under -Werror; each test program includes it once.
 */
#ifndef TOSCA_FIXTURE_H
#define TOSCA_FIXTURE_H

#include "testutil.h"

#define V13 "tosca_definitions_version: tosca_simple_yaml_1_3\n"
#define V20                                                                                        \
    "tosca_definitions_version: tosca_2_0\n"                                                       \
    "imports:\n"                                                                                   \
    "  - profile: org.oasis-open.tosca.simple:2.0\n"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct {
    tosca_ctx_t *ctx;
    tosca_diags_t d;
    tosca_template_t *t;
    json_t *plan;
    int rc;      /* of the load */
    int plan_rc; /* of tosca_plan */
    const char *src;
} ld_t;

/* 1-based line of the n-th occurrence of needle in src. */
static inline unsigned line_of_n(const char *src, const char *needle, int n)
{
    const char *p = src, *hit;
    unsigned line = 1;

    for (;;) {
        hit = strstr(p, needle);
        if (hit == NULL)
            fail_msg("'%s' (occurrence %d) is not in the template", needle, n);
        if (--n <= 0)
            break;
        p = hit + 1;
    }
    for (const char *q = src; q < hit; q++)
        line += *q == '\n';
    return line;
}

static inline unsigned line_of(const char *src, const char *needle)
{
    return line_of_n(src, needle, 1);
}

static inline bool is_yaml_name(const char *f)
{
    size_t n = strlen(f);

    return (n > 5 && strcmp(f + n - 5, ".yaml") == 0) || (n > 4 && strcmp(f + n - 4, ".yml") == 0);
}

/* Every diagnostic has a code and a message; those about a template file have a line
 * (except the plan's warning about a given input the template does not define, which
 * comes from the caller's inputs, not from the file). Counts add up. */
static inline void check_sanity(const tosca_diags_t *d)
{
    size_t errors = 0, warnings = 0;

    for (size_t i = 0; i < d->count; i++) {
        const tosca_diag_t *g = &d->items[i];
        assert_non_null(g->code);
        assert_non_null(g->message);
        assert_non_null(g->file);
        if (g->code[0] == '\0' || g->message[0] == '\0') {
            test_print_diags(d);
            fail_msg("diagnostic %zu has an empty code or message", i);
        }
        if (is_yaml_name(g->file) && g->line == 0 &&
            !(strcmp(g->code, "unknown-input") == 0 && g->severity == TOSCA_SEV_WARNING)) {
            test_print_diags(d);
            fail_msg("diagnostic [%s] about %s has no line", g->code, g->file);
        }
        if (g->severity == TOSCA_SEV_ERROR)
            errors++;
        else
            warnings++;
    }
    if (d->dropped == 0) {
        assert_int_equal(errors, d->errors);
        assert_int_equal(warnings, d->warnings);
    }
}

static inline void load_opts(ld_t *l, const char *name, const char *src, const tosca_options_t *o,
                             bool strict_diags)
{
    memset(l, 0, sizeof(*l));
    tosca_diags_init(&l->d, strict_diags);
    assert_int_equal(tosca_ctx_new(o, &l->ctx, &l->d), 0);
    l->src = src;
    l->rc = tosca_load_buffer(l->ctx, name, src, strlen(src), &l->t, &l->d);
    check_sanity(&l->d);
    if (l->rc == 0) {
        assert_non_null(l->t);
        assert_int_equal(l->d.errors, 0);
    } else {
        assert_null(l->t);
    }
}

static inline void load_mode(ld_t *l, const char *src, bool strict)
{
    tosca_options_t o;

    tosca_options_init(&o);
    o.strict = strict;
    load_opts(l, "t.yaml", src, &o, strict);
}

static inline void load(ld_t *l, const char *src)
{
    load_mode(l, src, false);
}

static inline void load_path(ld_t *l, const char *path, const tosca_options_t *o)
{
    memset(l, 0, sizeof(*l));
    tosca_diags_init(&l->d, o && o->strict);
    assert_int_equal(tosca_ctx_new(o, &l->ctx, &l->d), 0);
    l->rc = tosca_load_file(l->ctx, path, &l->t, &l->d);
    check_sanity(&l->d);
}

static inline void unload(ld_t *l)
{
    json_decref(l->plan);
    tosca_template_free(l->t);
    tosca_ctx_free(l->ctx);
    tosca_diags_fini(&l->d);
    memset(l, 0, sizeof(*l));
}

/* Plans a loaded template with inputs given as JSON text (or NULL). */
static inline void plan_with(ld_t *l, const char *inputs)
{
    json_t *in = NULL;
    json_error_t je;

    assert_non_null(l->t);
    if (inputs) {
        in = json_loads(inputs, 0, &je);
        if (in == NULL)
            fail_msg("bad JSON in the test: %s", je.text);
    }
    l->plan_rc = tosca_plan(l->t, in, &l->plan, &l->d);
    json_decref(in);
    check_sanity(&l->d);
    if (l->plan_rc == 0)
        assert_non_null(l->plan);
    else
        assert_null(l->plan);
}

static inline size_t count_code(const tosca_diags_t *d, const char *code)
{
    size_t n = 0;

    for (size_t i = 0; i < d->count; i++)
        n += strcmp(d->items[i].code, code) == 0;
    return n;
}

/* Finds the diagnostic with this code at this line (0: any) whose message contains sub
 * (NULL: any), and checks its severity. Fails naming the test line otherwise. */
static inline const tosca_diag_t *expect_at(const ld_t *l, tosca_severity_t sev, const char *code,
                                            unsigned line, const char *sub, int caller)
{
    for (size_t i = 0; i < l->d.count; i++) {
        const tosca_diag_t *g = &l->d.items[i];
        if (strcmp(g->code, code) != 0 || (line && g->line != line) ||
            (sub && strstr(g->message, sub) == NULL))
            continue;
        if (g->severity != sev) {
            test_print_diags(&l->d);
            fail_msg("test line %d: [%s] at line %u is a%s", caller, code, g->line,
                     g->severity == TOSCA_SEV_ERROR ? "n error" : " warning");
        }
        return g;
    }
    test_print_diags(&l->d);
    fail_msg("test line %d: no %s [%s] at line %u%s%s", caller,
             sev == TOSCA_SEV_ERROR ? "error" : "warning", code, line, sub ? " naming " : "",
             sub ? sub : "");
    return NULL;
}

#define EXPECT_ERR(l, code, line, sub) expect_at(l, TOSCA_SEV_ERROR, code, line, sub, __LINE__)
#define EXPECT_WARN(l, code, line, sub) expect_at(l, TOSCA_SEV_WARNING, code, line, sub, __LINE__)

static inline void expect_clean_at(const ld_t *l, int caller)
{
    if (l->rc != 0 || l->d.count != 0) {
        test_print_diags(&l->d);
        fail_msg("test line %d: expected a clean load, got rc %d (%s)", caller, l->rc,
                 orc_err_name(l->rc));
    }
}
#define EXPECT_CLEAN(l) expect_clean_at(l, __LINE__)

static inline void expect_fail_at(const ld_t *l, int caller)
{
    if (l->rc != ORC_ETOSCA) {
        test_print_diags(&l->d);
        fail_msg("test line %d: expected ORC_ETOSCA, got %s", caller, orc_err_name(l->rc));
    }
}
#define EXPECT_FAIL(l) expect_fail_at(l, __LINE__)

/* Loaded with warnings only. */
static inline void expect_ok_at(const ld_t *l, int caller)
{
    if (l->rc != 0) {
        test_print_diags(&l->d);
        fail_msg("test line %d: expected the load to succeed, got %s", caller, orc_err_name(l->rc));
    }
}
#define EXPECT_OK(l) expect_ok_at(l, __LINE__)

/* ---- JSON of the plan ---- */

static inline json_t *plan_node(const ld_t *l, const char *name)
{
    size_t i;
    json_t *n;

    json_array_foreach(json_object_get(l->plan, "nodes"), i, n) {
        if (strcmp(json_string_value(json_object_get(n, "name")), name) == 0)
            return n;
    }
    fail_msg("no node '%s' in the plan", name);
    return NULL;
}

/* Follows a dot-separated path of object keys and array indexes. */
static inline json_t *jpath(json_t *v, const char *path)
{
    char buf[256], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *tok = strtok_r(buf, ".", &save); v && tok; tok = strtok_r(NULL, ".", &save)) {
        if (json_is_array(v))
            v = json_array_get(v, (size_t)strtoul(tok, NULL, 10));
        else
            v = json_object_get(v, tok);
    }
    return v;
}

static inline void assert_jstr_at(json_t *root, const char *path, const char *want, int caller)
{
    json_t *v = jpath(root, path);

    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0) {
        char *s = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
        print_message("%s = %s\n", path, s ? s : "(absent)");
        free(s);
        fail_msg("test line %d: %s is not \"%s\"", caller, path, want);
    }
}

static inline void assert_jint_at(json_t *root, const char *path, json_int_t want, int caller)
{
    json_t *v = jpath(root, path);

    if (!json_is_integer(v) || json_integer_value(v) != want) {
        char *s = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
        print_message("%s = %s\n", path, s ? s : "(absent)");
        free(s);
        fail_msg("test line %d: %s is not %lld", caller, path, (long long)want);
    }
}

/* Compares a plan value with JSON text. */
static inline void assert_jeq_at(json_t *root, const char *path, const char *want, int caller)
{
    json_error_t je;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &je), *v = jpath(root, path);

    if (w == NULL)
        fail_msg("bad JSON in the test: %s", je.text);
    if (!json_equal(v, w)) {
        char *s = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
        print_message("%s = %s\n", path, s ? s : "(absent)");
        free(s);
        json_decref(w);
        fail_msg("test line %d: %s is not %s", caller, path, want);
    }
    json_decref(w);
}

#define ASSERT_JSTR(root, path, want) assert_jstr_at(root, path, want, __LINE__)
#define ASSERT_JINT(root, path, want) assert_jint_at(root, path, want, __LINE__)
#define ASSERT_JEQ(root, path, want) assert_jeq_at(root, path, want, __LINE__)

/* ---- out of memory ------------------------------------------------------------------ */

/* An allocator that fails the k-th allocation from a point on and keeps the set of live
 * blocks, so that a leak or a free of a block it did not hand out shows without a
 * sanitizer. */
#define OOM_SLOTS 65536u
#define OOM_TOMB ((void *)1)

static struct {
    void *slot[OOM_SLOTS];
    size_t live, used;
    long left; /* allocations before the failure; -1: none */
    bool injected;
    size_t bad_free;
} oom __attribute__((unused));

static inline size_t oom_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    x ^= x >> 17;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 40) & (OOM_SLOTS - 1);
}

static inline void oom_track(void *p)
{
    size_t i = oom_hash(p);

    if (oom.used >= OOM_SLOTS / 2)
        return; /* full of tombstones: stop tracking rather than loop */
    while (oom.slot[i] && oom.slot[i] != OOM_TOMB)
        i = (i + 1) & (OOM_SLOTS - 1);
    if (oom.slot[i] == NULL)
        oom.used++;
    oom.slot[i] = p;
    oom.live++;
}

static inline void oom_untrack(void *p)
{
    size_t i = oom_hash(p);

    while (oom.slot[i] != p) {
        if (oom.slot[i] == NULL) {
            oom.bad_free++;
            return;
        }
        i = (i + 1) & (OOM_SLOTS - 1);
    }
    oom.slot[i] = OOM_TOMB;
    oom.live--;
}

static inline bool oom_fail(void)
{
    if (oom.left == 0) {
        oom.injected = true;
        return true;
    }
    if (oom.left > 0)
        oom.left--;
    return false;
}

static inline void *oom_malloc(size_t n)
{
    void *p = oom_fail() ? NULL : malloc(n ? n : 1);

    if (p)
        oom_track(p);
    return p;
}

static inline void *oom_calloc(size_t n, size_t size)
{
    void *p = oom_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);

    if (p)
        oom_track(p);
    return p;
}

static inline void *oom_realloc(void *old, size_t n)
{
    void *p;

    if (old == NULL)
        return oom_malloc(n);
    if (oom_fail())
        return NULL;
    oom_untrack(old);
    p = realloc(old, n ? n : 1);
    if (p)
        oom_track(p);
    else
        oom_track(old); /* still ours */
    return p;
}

static inline void oom_free(void *p)
{
    if (p) {
        oom_untrack(p);
        free(p);
    }
}

static inline void oom_begin(void)
{
    memset(&oom, 0, sizeof(oom));
    oom.left = -1;
    assert_int_equal(tosca_replace_allocator(oom_malloc, oom_realloc, oom_calloc, oom_free), 0);
}

static inline void oom_end(void)
{
    tosca_replace_allocator(NULL, NULL, NULL, NULL);
}

#endif /* TOSCA_FIXTURE_H */
