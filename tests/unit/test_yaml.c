/*
 * Unit tests for the YAML layer (yaml.h): node trees with 1-based positions,
 * scalar resolution (YAML 1.1 / 1.2 core schema as TOSCA uses it), JSON
 * conversion, duplicate keys, anchors, aliases and merge keys, and the limits
 * and checks that make hostile input safe (alias bombs, depth, node count,
 * size, UTF-8 / binary content, syntax errors, several documents).
 */
#include <math.h>
#include <time.h>

#include "testutil.h"

#include "yaml.h"

/* ---- helpers ------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses len bytes; returns the parser's result. */
static int parse_n(const char *text, size_t len, const tosca_limits_t *lim, tosca_ydoc_t **doc,
                   tosca_diags_t *d)
{
    tosca_diags_init(d, false);
    return tosca_ydoc_parse("t.yaml", text, len, lim, doc, d);
}

static int parse(const char *text, const tosca_limits_t *lim, tosca_ydoc_t **doc, tosca_diags_t *d)
{
    return parse_n(text, strlen(text), lim, doc, d);
}

/* Parses a document that must load without any diagnostic. */
static tosca_ydoc_t *parse_ok(const char *text)
{
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    int rc = parse(text, NULL, &doc, &d);

    if (rc != 0 || d.count != 0)
        test_print_diags(&d);
    assert_int_equal(rc, 0);
    assert_int_equal(d.count, 0);
    assert_non_null(doc);
    tosca_diags_fini(&d);
    return doc;
}

/* Parses a document that must fail with rc and a diagnostic with code at
 * line:col (col 0: any column); returns that diagnostic's message, copied
 * into msg. */
static void expect_error_n(const char *text, size_t len, const tosca_limits_t *lim, int want_rc,
                           const char *code, uint32_t line, uint32_t col, char *msg, size_t size)
{
    tosca_diags_t d;
    tosca_ydoc_t *doc = (tosca_ydoc_t *)&d; /* must come back NULL */
    const tosca_diag_t *g;
    int rc = parse_n(text, len, lim, &doc, &d);

    g = test_find_code(&d, code);
    if (rc != want_rc || g == NULL || g->line != line || (col && g->col != col)) {
        fprintf(stderr, "rc %d, wanted %d %s at %u:%u; got:\n", rc, want_rc, code, line, col);
        test_print_diags(&d);
    }
    assert_int_equal(rc, want_rc);
    assert_null(doc);
    assert_non_null(g);
    assert_int_equal(g->severity, TOSCA_SEV_ERROR);
    assert_string_equal(g->file, "t.yaml");
    assert_int_equal(g->line, line);
    if (col)
        assert_int_equal(g->col, col);
    assert_true(d.errors >= 1);
    if (msg)
        snprintf(msg, size, "%s", g->message);
    tosca_diags_fini(&d);
}

static void expect_error(const char *text, const tosca_limits_t *lim, int want_rc, const char *code,
                         uint32_t line, uint32_t col)
{
    expect_error_n(text, strlen(text), lim, want_rc, code, line, col, NULL, 0);
}

/* The node at a '/'-separated path of map keys and list indexes. */
static tosca_ynode_t *at(const tosca_ydoc_t *doc, const char *path)
{
    tosca_ynode_t *n = doc->root;
    char buf[256], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        assert_non_null(n);
        if (n->kind == TOSCA_Y_SEQ) {
            size_t i = strtoul(part, NULL, 10);
            assert_true(i < n->u.seq.count);
            n = n->u.seq.items[i];
        } else {
            n = tosca_ymap_get(n, part);
        }
    }
    return n;
}

static void assert_mark(const tosca_ynode_t *n, uint32_t line, uint32_t col)
{
    assert_non_null(n);
    if (n->mark.line != line || n->mark.col != col)
        fprintf(stderr, "mark %u:%u, wanted %u:%u\n", n->mark.line, n->mark.col, line, col);
    assert_int_equal(n->mark.line, line);
    assert_int_equal(n->mark.col, col);
}

/* The key node of path's last component (a map entry). */
static tosca_ynode_t *key_of(const tosca_ydoc_t *doc, const char *map_path, const char *key)
{
    tosca_ypair_t *p = tosca_ymap_pair(map_path[0] ? at(doc, map_path) : doc->root, key);

    assert_non_null(p);
    return p->key;
}

/* ---- positions ----------------------------------------------------------- */

static void marks_of_scalars_keys_and_items(void **state)
{
    tosca_ydoc_t *doc = parse_ok("name: web\n"
                                 "ports:\n"
                                 "  - 80\n"
                                 "  - \"443\"\n"
                                 "nested:\n"
                                 "  inner: {a: 1, b: [x, y]}\n"
                                 "\n"
                                 "# comment\n"
                                 "text: |\n"
                                 "  block\n"
                                 "last:   'q'\n");

    (void)state;
    assert_string_equal(doc->file, "t.yaml");
    assert_mark(doc->root, 1, 1);
    assert_string_equal(doc->root->mark.file, "t.yaml");
    assert_mark(key_of(doc, "", "name"), 1, 1);
    assert_mark(at(doc, "name"), 1, 7);
    assert_mark(key_of(doc, "", "ports"), 2, 1);
    assert_mark(at(doc, "ports"), 3, 3);
    assert_mark(at(doc, "ports/0"), 3, 5);
    assert_mark(at(doc, "ports/1"), 4, 5);
    assert_mark(key_of(doc, "", "nested"), 5, 1);
    assert_mark(at(doc, "nested"), 6, 3);
    assert_mark(key_of(doc, "nested", "inner"), 6, 3);
    assert_mark(at(doc, "nested/inner"), 6, 10);
    assert_mark(key_of(doc, "nested/inner", "a"), 6, 11);
    assert_mark(at(doc, "nested/inner/a"), 6, 14);
    assert_mark(key_of(doc, "nested/inner", "b"), 6, 17);
    assert_mark(at(doc, "nested/inner/b"), 6, 20);
    assert_mark(at(doc, "nested/inner/b/0"), 6, 21);
    assert_mark(at(doc, "nested/inner/b/1"), 6, 24);
    assert_mark(key_of(doc, "", "text"), 9, 1);
    assert_mark(at(doc, "text"), 9, 7);
    assert_mark(key_of(doc, "", "last"), 11, 1);
    assert_mark(at(doc, "last"), 11, 9);
    tosca_ydoc_free(doc);
}

static void marks_count_characters_not_bytes(void **state)
{
    tosca_ydoc_t *doc = parse_ok("ключ: значение\n"
                                 "k: [é, \"€\", 😀x]\n");

    (void)state;
    assert_mark(at(doc, "ключ"), 1, 7);
    assert_mark(at(doc, "k/1"), 2, 8);
    assert_mark(at(doc, "k/2"), 2, 13);
    assert_string_equal(at(doc, "k/2")->u.scalar.str, "😀x");
    tosca_ydoc_free(doc);
}

static void bom_is_accepted(void **state)
{
    tosca_ydoc_t *doc = parse_ok("\xef\xbb\xbf"
                                 "a: 1\n"
                                 "b: x\n");

    (void)state;
    assert_mark(key_of(doc, "", "a"), 1, 1);
    assert_mark(at(doc, "a"), 1, 4);
    assert_mark(at(doc, "b"), 2, 4);
    assert_string_equal(key_of(doc, "", "a")->u.scalar.str, "a"); /* BOM not in the key */
    tosca_ydoc_free(doc);
}

/* ---- scalars ------------------------------------------------------------- */

static void plain_and_quoted_scalars(void **state)
{
    tosca_ydoc_t *doc = parse_ok("p: foo bar\n"
                                 "s: 'it''s'\n"
                                 "d: \"tab\\there\\u00e9\"\n"
                                 "nul: \"a\\0b\"\n"
                                 "lit: |\n"
                                 "  line1\n"
                                 "  line2\n"
                                 "fold: >\n"
                                 "  one\n"
                                 "  two\n"
                                 "multi: first\n"
                                 "  second\n");
    tosca_ynode_t *n;

    (void)state;
    n = at(doc, "p");
    assert_int_equal(n->kind, TOSCA_Y_SCALAR);
    assert_true(n->plain);
    assert_null(n->tag);
    assert_string_equal(n->u.scalar.str, "foo bar");
    assert_int_equal(n->u.scalar.len, 7);
    assert_int_equal(n->weight, 1);
    n = at(doc, "s");
    assert_false(n->plain);
    assert_string_equal(n->u.scalar.str, "it's");
    n = at(doc, "d");
    assert_false(n->plain);
    assert_string_equal(n->u.scalar.str, "tab\there\xc3\xa9");
    n = at(doc, "nul");
    assert_int_equal(n->u.scalar.len, 3);
    assert_memory_equal(n->u.scalar.str, "a\0b", 4);
    n = at(doc, "lit");
    assert_false(n->plain);
    assert_string_equal(n->u.scalar.str, "line1\nline2\n");
    n = at(doc, "fold");
    assert_false(n->plain);
    assert_string_equal(n->u.scalar.str, "one two\n");
    n = at(doc, "multi");
    assert_true(n->plain);
    assert_string_equal(n->u.scalar.str, "first second");
    assert_true(tosca_yis_str(at(doc, "p"), "foo bar"));
    assert_false(tosca_yis_str(at(doc, "p"), "foo"));
    assert_false(tosca_yis_str(doc->root, "p"));
    assert_false(tosca_yis_str(NULL, ""));
    tosca_ydoc_free(doc);
}

static void tags_decide_the_type(void **state)
{
    tosca_ydoc_t *doc = parse_ok("s: !!str 123\n"
                                 "i: !!int \"42\"\n"
                                 "f: !!float 1\n"
                                 "b: !!bool 'yes'\n"
                                 "n: !!null ''\n"
                                 "c: !custom 5\n"
                                 "e: ! 12\n"
                                 "u: 123\n"
                                 "q: \"123\"\n"
                                 "m: !!map {a: 1}\n"
                                 "l: !!seq [1]\n"
                                 "v: !<tag:example.com,2000:x> 7\n");
    int64_t i;
    double f;
    bool b;

    (void)state;
    assert_string_equal(at(doc, "s")->tag, "tag:yaml.org,2002:str");
    assert_string_equal(tosca_yresolved_type(at(doc, "s")), "string");
    assert_int_equal(tosca_yget_int(at(doc, "s"), &i), ORC_EINVAL);
    assert_int_equal(tosca_yget_float(at(doc, "s"), &f), ORC_EINVAL);
    assert_string_equal(tosca_yresolved_type(at(doc, "i")), "integer");
    assert_int_equal(tosca_yget_int(at(doc, "i"), &i), 0);
    assert_int_equal(i, 42);
    assert_string_equal(tosca_yresolved_type(at(doc, "f")), "float");
    assert_int_equal(tosca_yget_float(at(doc, "f"), &f), 0);
    assert_true(f == 1.0);
    assert_int_equal(tosca_yget_int(at(doc, "f"), &i), ORC_EINVAL);
    assert_string_equal(tosca_yresolved_type(at(doc, "b")), "boolean");
    assert_int_equal(tosca_yget_bool(at(doc, "b"), &b), 0);
    assert_true(b);
    assert_string_equal(tosca_yresolved_type(at(doc, "n")), "null");
    assert_string_equal(at(doc, "c")->tag, "!custom");
    assert_string_equal(tosca_yresolved_type(at(doc, "c")), "string");
    assert_string_equal(tosca_yresolved_type(at(doc, "e")), "string"); /* non-specific "!" */
    assert_null(at(doc, "u")->tag);
    assert_string_equal(tosca_yresolved_type(at(doc, "u")), "integer");
    assert_string_equal(tosca_yresolved_type(at(doc, "q")), "string");
    assert_string_equal(at(doc, "m")->tag, "tag:yaml.org,2002:map");
    assert_string_equal(tosca_yresolved_type(at(doc, "m")), "map");
    assert_string_equal(tosca_yresolved_type(at(doc, "l")), "list");
    assert_string_equal(at(doc, "v")->tag, "tag:example.com,2000:x");
    assert_string_equal(tosca_yresolved_type(at(doc, "v")), "string");
    tosca_ydoc_free(doc);
}

static void booleans(void **state)
{
    static const char *const yes[] = {"yes", "Yes",  "YES",  "on",  "On",
                                      "ON",  "true", "True", "TRUE"};
    static const char *const no[] = {"no",  "No",    "NO",    "off",  "Off",
                                     "OFF", "false", "False", "FALSE"};
    static const char *const neither[] = {"y", "n",       "tRUE", "yes!",
                                          "1", "\"yes\"", "'on'", "Yes please"};
    char text[64];
    bool b;

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(yes); i++) {
        snprintf(text, sizeof(text), "v: %s\n", yes[i]);
        tosca_ydoc_t *doc = parse_ok(text);
        b = false;
        assert_int_equal(tosca_yget_bool(at(doc, "v"), &b), 0);
        assert_true(b);
        assert_string_equal(tosca_yresolved_type(at(doc, "v")), "boolean");
        tosca_ydoc_free(doc);
    }
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(no); i++) {
        snprintf(text, sizeof(text), "v: %s\n", no[i]);
        tosca_ydoc_t *doc = parse_ok(text);
        b = true;
        assert_int_equal(tosca_yget_bool(at(doc, "v"), &b), 0);
        assert_false(b);
        assert_string_equal(tosca_yresolved_type(at(doc, "v")), "boolean");
        tosca_ydoc_free(doc);
    }
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(neither); i++) {
        snprintf(text, sizeof(text), "v: %s\n", neither[i]);
        tosca_ydoc_t *doc = parse_ok(text);
        assert_int_equal(tosca_yget_bool(at(doc, "v"), &b), ORC_EINVAL);
        assert_string_not_equal(tosca_yresolved_type(at(doc, "v")), "boolean");
        tosca_ydoc_free(doc);
    }
    assert_int_equal(tosca_yget_bool(NULL, &b), ORC_EINVAL);
}

static void integers(void **state)
{
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {
        {"0", 0},
        {"-5", -5},
        {"+7", 7},
        {"42", 42},
        {"0x1F", 31},
        {"0xff", 255},
        {"0o17", 15},
        {"012", 12},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    static const char *const bad[] = {"0x",
                                      "0xG1",
                                      "0o8",
                                      "0o",
                                      "-0x1F",
                                      "+0o7",
                                      "1_000",
                                      "12a",
                                      "--1",
                                      "+",
                                      "0b101",
                                      "1.0",
                                      "\"4\"",
                                      "9223372036854775808",
                                      "0x10000000000000000"};
    char text[64];
    int64_t v;

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(ok); i++) {
        snprintf(text, sizeof(text), "v: %s\n", ok[i].text);
        tosca_ydoc_t *doc = parse_ok(text);
        v = 12345;
        assert_int_equal(tosca_yget_int(at(doc, "v"), &v), 0);
        assert_true(v == ok[i].value);
        assert_string_equal(tosca_yresolved_type(at(doc, "v")), "integer");
        tosca_ydoc_free(doc);
    }
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(bad); i++) {
        snprintf(text, sizeof(text), "v: %s\n", bad[i]);
        tosca_ydoc_t *doc = parse_ok(text);
        if (tosca_yget_int(at(doc, "v"), &v) != ORC_EINVAL)
            fprintf(stderr, "'%s' read as an integer\n", bad[i]);
        assert_int_equal(tosca_yget_int(at(doc, "v"), &v), ORC_EINVAL);
        assert_string_not_equal(tosca_yresolved_type(at(doc, "v")), "integer");
        tosca_ydoc_free(doc);
    }
    tosca_ydoc_t *doc = parse_ok("q: \"4\"\nbig: 9223372036854775808\nm: {}\n");
    assert_string_equal(tosca_yresolved_type(at(doc, "q")), "string");
    assert_string_equal(tosca_yresolved_type(at(doc, "big")), "float"); /* too big for int64 */
    assert_int_equal(tosca_yget_int(at(doc, "m"), &v), ORC_EINVAL);
    assert_int_equal(tosca_yget_int(NULL, &v), ORC_EINVAL);
    tosca_ydoc_free(doc);
}

static void floats(void **state)
{
    tosca_ydoc_t *doc = parse_ok("e: 1.5e3\n"
                                 "f: 1.5\n"
                                 "g: -2.25E-2\n"
                                 "h: .5\n"
                                 "k: 3.\n"
                                 "i: 7\n"
                                 "hex: 0x10\n"
                                 "inf: .inf\n"
                                 "pinf: +.Inf\n"
                                 "ninf: -.INF\n"
                                 "nan: .NaN\n"
                                 "q: \"1.5\"\n"
                                 "bad1: 1.5.5\n"
                                 "bad2: 1e\n"
                                 "bad3: .\n"
                                 "bad4: e5\n"
                                 "bad5: inf\n");
    double f;

    (void)state;
    assert_int_equal(tosca_yget_float(at(doc, "e"), &f), 0);
    assert_true(f == 1500.0);
    assert_string_equal(tosca_yresolved_type(at(doc, "e")), "float");
    assert_int_equal(tosca_yget_float(at(doc, "f"), &f), 0);
    assert_true(f == 1.5);
    assert_int_equal(tosca_yget_float(at(doc, "g"), &f), 0);
    assert_true(f == -0.0225);
    assert_int_equal(tosca_yget_float(at(doc, "h"), &f), 0);
    assert_true(f == 0.5);
    assert_int_equal(tosca_yget_float(at(doc, "k"), &f), 0);
    assert_true(f == 3.0);
    /* integers are floats too, but resolve as integers */
    assert_int_equal(tosca_yget_float(at(doc, "i"), &f), 0);
    assert_true(f == 7.0);
    assert_string_equal(tosca_yresolved_type(at(doc, "i")), "integer");
    assert_int_equal(tosca_yget_float(at(doc, "hex"), &f), 0);
    assert_true(f == 16.0);
    assert_int_equal(tosca_yget_float(at(doc, "inf"), &f), 0);
    assert_true(isinf(f) && f > 0);
    assert_string_equal(tosca_yresolved_type(at(doc, "inf")), "float");
    assert_int_equal(tosca_yget_float(at(doc, "pinf"), &f), 0);
    assert_true(isinf(f) && f > 0);
    assert_int_equal(tosca_yget_float(at(doc, "ninf"), &f), 0);
    assert_true(isinf(f) && f < 0);
    assert_int_equal(tosca_yget_float(at(doc, "nan"), &f), 0);
    assert_true(isnan(f));
    assert_int_equal(tosca_yget_float(at(doc, "q"), &f), ORC_EINVAL);
    assert_string_equal(tosca_yresolved_type(at(doc, "q")), "string");
    for (unsigned i = 1; i <= 5; i++) {
        char key[16];
        snprintf(key, sizeof(key), "bad%u", i);
        assert_int_equal(tosca_yget_float(at(doc, key), &f), ORC_EINVAL);
        assert_string_equal(tosca_yresolved_type(at(doc, key)), "string");
    }
    assert_int_equal(tosca_yget_float(doc->root, &f), ORC_EINVAL);
    tosca_ydoc_free(doc);
}

static void nulls(void **state)
{
    tosca_ydoc_t *doc = parse_ok("tilde: ~\n"
                                 "empty:\n"
                                 "null1: null\n"
                                 "null2: Null\n"
                                 "null3: NULL\n"
                                 "nope: nUll\n"
                                 "qtilde: \"~\"\n"
                                 "qempty: ''\n"
                                 "list: [~, a]\n");

    (void)state;
    static const char *const keys[] = {"tilde", "empty", "null1", "null2", "null3"};
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(keys); i++) {
        tosca_ynode_t *n = at(doc, keys[i]);
        assert_non_null(n); /* present, as a null scalar */
        assert_true(tosca_yis_null(n));
        assert_string_equal(tosca_yresolved_type(n), "null");
    }
    assert_string_equal(at(doc, "empty")->u.scalar.str, "");
    assert_false(tosca_yis_null(at(doc, "nope")));
    assert_string_equal(tosca_yresolved_type(at(doc, "nope")), "string");
    assert_false(tosca_yis_null(at(doc, "qtilde")));
    assert_string_equal(tosca_yresolved_type(at(doc, "qtilde")), "string");
    assert_false(tosca_yis_null(at(doc, "qempty")));
    assert_string_equal(tosca_yresolved_type(at(doc, "qempty")), "string");
    assert_true(tosca_yis_null(at(doc, "list/0")));
    assert_true(tosca_yis_null(NULL));
    assert_false(tosca_yis_null(at(doc, "list")));
    assert_string_equal(tosca_yresolved_type(NULL), "null");
    assert_null(tosca_ymap_get(doc->root, "missing"));
    tosca_ydoc_free(doc);
}

static void kinds_and_lookups(void **state)
{
    tosca_ydoc_t *doc = parse_ok("m: {a: 1, b: 2}\nl: [1, 2, 3]\ns: x\n");
    tosca_ynode_t *m = at(doc, "m");

    (void)state;
    assert_int_equal(m->kind, TOSCA_Y_MAP);
    assert_int_equal(m->u.map.count, 2);
    assert_string_equal(m->u.map.items[0].key->u.scalar.str, "a"); /* source order */
    assert_string_equal(m->u.map.items[1].key->u.scalar.str, "b");
    assert_ptr_equal(tosca_ymap_pair(m, "b"), &m->u.map.items[1]);
    assert_null(tosca_ymap_pair(m, "c"));
    assert_null(tosca_ymap_get(at(doc, "l"), "a")); /* not a map */
    assert_null(tosca_ymap_get(NULL, "a"));
    assert_int_equal(at(doc, "l")->kind, TOSCA_Y_SEQ);
    assert_int_equal(at(doc, "l")->u.seq.count, 3);
    assert_string_equal(tosca_ykind_name(m), "a mapping");
    assert_string_equal(tosca_ykind_name(at(doc, "l")), "a list");
    assert_string_equal(tosca_ykind_name(at(doc, "s")), "a scalar");
    assert_string_equal(tosca_ykind_name(NULL), "nothing");
    /* nodes counted: root, 3 keys, map + 2 pairs, list + 3, scalar */
    assert_int_equal(doc->nodes, 1 + 3 + 5 + 4 + 1);
    assert_int_equal(doc->root->weight, doc->nodes);
    assert_int_equal(m->weight, 5);
    tosca_ydoc_free(doc);
    tosca_ydoc_free(NULL);
}

/* ---- JSON ---------------------------------------------------------------- */

static void node_to_json(void **state)
{
    tosca_ydoc_t *doc = parse_ok("name: web\n"
                                 "port: 0x50\n"
                                 "ratio: 1.5e3\n"
                                 "on: yes\n"
                                 "off: Off\n"
                                 "none: ~\n"
                                 "empty:\n"
                                 "quoted: \"4\"\n"
                                 "tagged: !!str 123\n"
                                 "inf: .inf\n"
                                 "nul: \"a\\0b\"\n"
                                 "list: [1, two, [3], {four: 4}]\n"
                                 "map: {x: {y: [true, null]}}\n"
                                 "emptymap: {}\n"
                                 "emptylist: []\n");
    json_t *want, *got;
    json_error_t err;

    (void)state;
    want = json_loads("{\"name\": \"web\", \"port\": 80, \"ratio\": 1500.0, \"on\": true,"
                      " \"off\": false, \"none\": null, \"empty\": null, \"quoted\": \"4\","
                      " \"tagged\": \"123\", \"inf\": \".inf\", \"nul\": \"a\\u0000b\","
                      " \"list\": [1, \"two\", [3], {\"four\": 4}],"
                      " \"map\": {\"x\": {\"y\": [true, null]}},"
                      " \"emptymap\": {}, \"emptylist\": []}",
                      JSON_ALLOW_NUL, &err);
    assert_non_null(want);
    got = tosca_ynode_to_json(doc->root);
    assert_non_null(got);
    if (!json_equal(want, got)) {
        char *s = json_dumps(got, JSON_ENCODE_ANY);
        fprintf(stderr, "got %s\n", s);
        free(s);
    }
    assert_true(json_equal(want, got));
    assert_true(json_is_integer(json_object_get(got, "port")));
    assert_true(json_is_real(json_object_get(got, "ratio")));
    assert_int_equal(json_string_length(json_object_get(got, "nul")), 3);
    json_decref(got);
    json_decref(want);

    got = tosca_ynode_to_json(NULL);
    assert_true(json_is_null(got));
    json_decref(got);
    got = tosca_ynode_to_json(at(doc, "list/1"));
    assert_string_equal(json_string_value(got), "two");
    json_decref(got);
    tosca_ydoc_free(doc);
}

/* ---- duplicate keys ------------------------------------------------------ */

static void duplicate_keys(void **state)
{
    char msg[256];

    (void)state;
    expect_error_n("a: 1\nb: 2\na: 3\n", 15, NULL, ORC_ETOSCA, "yaml-duplicate-key", 3, 1, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "'a'"));
    assert_non_null(strstr(msg, "line 1"));
    /* quoting does not make a different key */
    expect_error("x:\n  a: 1\n  \"a\": 2\n", NULL, ORC_ETOSCA, "yaml-duplicate-key", 3, 3);
    /* in a flow mapping, nested */
    expect_error_n("top:\n  m: {k: 1, j: 2, k: 3}\n", 29, NULL, ORC_ETOSCA, "yaml-duplicate-key", 2,
                   19, msg, sizeof(msg));
    assert_non_null(strstr(msg, "line 2"));
    /* same key in different maps is fine */
    tosca_ydoc_free(parse_ok("a: {k: 1}\nb: {k: 2}\nk: 3\n"));
}

static void duplicate_keys_all_reported_against_the_first(void **state)
{
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;

    (void)state;
    assert_int_equal(parse("k: 1\nother: 0\nk: 2\nk: 3\nj: 1\nj: 2\n", NULL, &doc, &d), ORC_ETOSCA);
    assert_null(doc);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.errors, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(d.items[i].code, "yaml-duplicate-key");
    assert_int_equal(d.items[0].line, 3);
    assert_non_null(strstr(d.items[0].message, "line 1"));
    assert_int_equal(d.items[1].line, 4);
    assert_non_null(strstr(d.items[1].message, "line 1")); /* the first, not the previous */
    assert_int_equal(d.items[2].line, 6);
    assert_non_null(strstr(d.items[2].message, "line 5"));
    tosca_diags_fini(&d);
}

/* ---- anchors, aliases, merge keys ---------------------------------------- */

static void aliases_share_the_anchored_node(void **state)
{
    tosca_ydoc_t *doc = parse_ok("a: &x {k: [1, 2]}\n"
                                 "b: *x\n"
                                 "s: &y hello\n"
                                 "t: [*y, *y]\n"
                                 "r: &x other\n" /* an anchor may be redefined */
                                 "u: *x\n");

    (void)state;
    assert_ptr_equal(at(doc, "b"), at(doc, "a"));
    assert_ptr_equal(at(doc, "t/0"), at(doc, "s"));
    assert_ptr_equal(at(doc, "t/1"), at(doc, "s"));
    assert_ptr_equal(at(doc, "u"), at(doc, "r"));
    assert_string_equal(at(doc, "u")->u.scalar.str, "other");
    /* expansion is counted: the alias adds the weight of its target */
    assert_int_equal(at(doc, "a")->weight, 5);
    assert_int_equal(doc->nodes, 1 + 6 + 5 + 5 + 1 + 3 + 1 + 1);
    tosca_ydoc_free(doc);
}

static void merge_single_source(void **state)
{
    tosca_ydoc_t *doc = parse_ok("base: &a {x: 1, y: 2, z: 3}\n"
                                 "after:\n"
                                 "  <<: *a\n"
                                 "  y: 20\n"
                                 "before:\n"
                                 "  z: 30\n"
                                 "  <<: *a\n"
                                 "  w: 0\n"
                                 "quoted: {\"<<\": *a}\n");
    tosca_ynode_t *m;
    int64_t v;

    (void)state;
    m = at(doc, "after");
    assert_int_equal(m->u.map.count, 3);
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "x"), &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "y"), &v), 0);
    assert_int_equal(v, 20); /* explicit keys win, even after the merge */
    assert_null(tosca_ymap_get(m, "<<"));
    m = at(doc, "before");
    assert_int_equal(m->u.map.count, 4);
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "z"), &v), 0);
    assert_int_equal(v, 30);
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "x"), &v), 0);
    assert_int_equal(v, 1);
    /* explicit keys first, then merged ones in source order */
    assert_string_equal(m->u.map.items[0].key->u.scalar.str, "z");
    assert_string_equal(m->u.map.items[1].key->u.scalar.str, "w");
    assert_string_equal(m->u.map.items[2].key->u.scalar.str, "x");
    assert_string_equal(m->u.map.items[3].key->u.scalar.str, "y");
    /* the source is untouched */
    assert_int_equal(at(doc, "base")->u.map.count, 3);
    /* a quoted "<<" is an ordinary key */
    assert_ptr_equal(tosca_ymap_get(at(doc, "quoted"), "<<"), at(doc, "base"));
    tosca_ydoc_free(doc);
}

static void merge_list_earlier_sources_win(void **state)
{
    tosca_ydoc_t *doc = parse_ok("a: &a {k: from-a, p: 1}\n"
                                 "b: &b {k: from-b, q: 2, p: 9}\n"
                                 "m: &m\n"
                                 "  <<: [*a, *b, {r: 3, k: inline}]\n"
                                 "  q: mine\n"
                                 "chain:\n"
                                 "  <<: *m\n"
                                 "  s: 4\n");
    tosca_ynode_t *m;
    int64_t v;

    (void)state;
    m = at(doc, "m");
    assert_int_equal(m->u.map.count, 4);
    assert_string_equal(tosca_ymap_get(m, "k")->u.scalar.str, "from-a");
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "p"), &v), 0);
    assert_int_equal(v, 1);
    assert_string_equal(tosca_ymap_get(m, "q")->u.scalar.str, "mine");
    assert_int_equal(tosca_yget_int(tosca_ymap_get(m, "r"), &v), 0);
    assert_int_equal(v, 3);
    /* merging a map that was itself merged sees its final keys */
    m = at(doc, "chain");
    assert_int_equal(m->u.map.count, 5);
    assert_string_equal(tosca_ymap_get(m, "k")->u.scalar.str, "from-a");
    assert_non_null(tosca_ymap_get(m, "s"));
    json_t *j = tosca_ynode_to_json(m);
    json_t *want =
        json_pack("{s:s,s:i,s:s,s:i,s:i}", "k", "from-a", "p", 1, "q", "mine", "r", 3, "s", 4);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    tosca_ydoc_free(doc);
}

static void merge_errors(void **state)
{
    (void)state;
    expect_error("a: 1\nm:\n  <<: 5\n", NULL, ORC_ETOSCA, "yaml-bad-merge", 3, 3);
    expect_error("a: &a [1]\nm:\n  <<: *a\n", NULL, ORC_ETOSCA, "yaml-bad-merge", 3, 3);
    expect_error("a: &a {x: 1}\nm: {<<: [*a, [1]]}\n", NULL, ORC_ETOSCA, "yaml-bad-merge", 2, 5);
    /* duplicate explicit keys next to a merge are still duplicates */
    expect_error("a: &a {x: 1}\nm: {<<: *a, y: 1, y: 2}\n", NULL, ORC_ETOSCA, "yaml-duplicate-key",
                 2, 19);
}

static void unknown_alias(void **state)
{
    char msg[256];

    (void)state;
    expect_error_n("a: *nope\n", 9, NULL, ORC_ETOSCA, "yaml-unknown-anchor", 1, 4, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "nope"));
    /* an anchor defined after the alias does not count */
    expect_error("a: *x\nb: &x 1\n", NULL, ORC_ETOSCA, "yaml-unknown-anchor", 1, 4);
    expect_error("- 1\n- [2, *y]\n", NULL, ORC_ETOSCA, "yaml-unknown-anchor", 2, 7);
}

static void recursive_alias(void **state)
{
    (void)state;
    expect_error("a: &x [ *x ]\n", NULL, ORC_ETOSCA, "yaml-recursive-alias", 1, 9);
    expect_error("a: &m {b: *m}\n", NULL, ORC_ETOSCA, "yaml-recursive-alias", 1, 11);
    expect_error("a: &x\n  - [1, [2, *x]]\n", NULL, ORC_ETOSCA, "yaml-recursive-alias", 2, 13);
    expect_error("a: &m\n  b:\n    <<: *m\n", NULL, ORC_ETOSCA, "yaml-recursive-alias", 3, 9);
    /* the anchor names the inner scalar at the time of the alias: not recursive */
    tosca_ydoc_t *doc = parse_ok("a: &x [ &x 1, *x ]\nb: *x\n");
    assert_ptr_equal(at(doc, "a/1"), at(doc, "a/0"));
    tosca_ydoc_free(doc);
    /* the inner collection re-anchored and closed: fine to alias from the outer */
    doc = parse_ok("a: &x [ &x [1], *x ]\n");
    assert_ptr_equal(at(doc, "a/1"), at(doc, "a/0"));
    tosca_ydoc_free(doc);
    /* an alias to a closed anchor inside another anchored collection */
    doc = parse_ok("a: &p [ &q [1], *q ]\nb: *p\n");
    assert_ptr_equal(at(doc, "b"), at(doc, "a"));
    tosca_ydoc_free(doc);
}

static void billion_laughs_fails_fast(void **state)
{
    static const char bomb[] =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    double t0 = now_s();
    int rc;

    (void)state;
    rc = parse(bomb, NULL, &doc, &d);
    assert_true(now_s() - t0 < 0.5);
    assert_int_equal(rc, ORC_ELIMIT);
    assert_null(doc);
    assert_true(test_has_code(&d, "yaml-alias-bomb"));
    assert_int_equal(d.count, 1);
    /* it stops on level e, where the aliases reach 100,000 nodes */
    assert_int_equal(test_find_code(&d, "yaml-alias-bomb")->line, 5);
    tosca_diags_fini(&d);

    /* a bomb made of mappings and merge keys is refused as well */
    static const char mbomb[] =
        "a: &a {a1: lol, a2: lol, a3: lol, a4: lol, a5: lol, a6: lol, a7: lol, a8: lol}\n"
        "b: &b {b1: *a, b2: *a, b3: *a, b4: *a, b5: *a, b6: *a, b7: *a, b8: *a}\n"
        "c: &c {c1: *b, c2: *b, c3: *b, c4: *b, c5: *b, c6: *b, c7: *b, c8: *b}\n"
        "d: &d {c1: *c, c2: *c, c3: *c, c4: *c, c5: *c, c6: *c, c7: *c, c8: *c}\n"
        "e: &e {c1: *d, c2: *d, c3: *d, c4: *d, c5: *d, c6: *d, c7: *d, c8: *d}\n"
        "f: &f {<<: [*e, *e, *e, *e, *e, *e, *e, *e]}\n";
    t0 = now_s();
    rc = parse(mbomb, NULL, &doc, &d);
    assert_true(now_s() - t0 < 0.5);
    assert_int_equal(rc, ORC_ELIMIT);
    assert_true(test_has_code(&d, "yaml-alias-bomb"));
    tosca_diags_fini(&d);
}

static void alias_expansion_limit(void **state)
{
    tosca_limits_t lim = {.max_alias_expansion = 8};
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;

    (void)state;
    /* [1, 2, 3] weighs 4: two aliases are 8, within the limit; three are not */
    assert_int_equal(parse("a: &a [1, 2, 3]\nb: *a\nc: *a\n", &lim, &doc, &d), 0);
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    expect_error("a: &a [1, 2, 3]\nb: *a\nc: *a\nd: *a\n", &lim, ORC_ELIMIT, "yaml-alias-bomb", 4,
                 4);
}

static void depth_limit(void **state)
{
    char text[512];
    tosca_limits_t lim = {.max_depth = 3};
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    char msg[256];

    (void)state;
    /* 200 nested lists with the default limit (64) */
    memset(text, '[', 200);
    memset(text + 200, ']', 200);
    text[400] = '\0';
    expect_error_n(text, 400, NULL, ORC_ELIMIT, "yaml-too-deep", 1, 65, msg, sizeof(msg));
    assert_non_null(strstr(msg, "64"));
    /* exactly 64 levels are fine */
    memset(text, '[', 64);
    memset(text + 64, ']', 64);
    text[128] = '\0';
    tosca_ydoc_free(parse_ok(text));
    /* a custom limit, block style */
    assert_int_equal(parse("a:\n  b:\n    c: 1\n", &lim, &doc, &d), 0);
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    expect_error("a:\n  b:\n    c:\n      - 1\n", &lim, ORC_ELIMIT, "yaml-too-deep", 4, 7);
    expect_error("{a: {b: [[1]]}}\n", &lim, ORC_ELIMIT, "yaml-too-deep", 1, 10);
}

static void node_limit(void **state)
{
    tosca_limits_t lim = {.max_nodes = 5};
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;

    (void)state;
    assert_int_equal(parse("[1, 2, 3, 4]\n", &lim, &doc, &d), 0);
    assert_int_equal(doc->nodes, 5);
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    expect_error("[1, 2, 3, 4, 5]\n", &lim, ORC_ELIMIT, "yaml-too-many-nodes", 1, 14);
    /* aliases count with the size of what they expand to */
    expect_error("- &a [1, 2]\n- *a\n", &lim, ORC_ELIMIT, "yaml-too-many-nodes", 2, 3);
}

static void file_size_limit(void **state)
{
    tosca_limits_t lim = {.max_file_bytes = 10};
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    char msg[256];

    (void)state;
    assert_int_equal(parse("a: 123456\n", &lim, &doc, &d), 0); /* exactly 10 bytes */
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    expect_error_n("a: 1234567\n", 11, &lim, ORC_ELIMIT, "input-too-large", 0, 0, msg, sizeof(msg));
    assert_non_null(strstr(msg, "11"));
    assert_non_null(strstr(msg, "10"));
}

/* ---- encoding and syntax ------------------------------------------------- */

static void invalid_utf8_and_binary(void **state)
{
    char msg[256];

    (void)state;
    expect_error("a: 1\nb: \xff\n", NULL, ORC_ETOSCA, "not-utf8", 2, 4);
    expect_error("a: 1\nb: caf\xc3\n", NULL, ORC_ETOSCA, "not-utf8", 2, 7);
    expect_error("a: \xed\xa0\x80\n", NULL, ORC_ETOSCA, "not-utf8", 1, 4); /* surrogate */
    expect_error("a: \xc0\xaf\n", NULL, ORC_ETOSCA, "not-utf8", 1, 4);     /* overlong */
    /* binary: NUL and other control bytes */
    expect_error_n("a: 1\nb: 2\n\0\0\0", 13, NULL, ORC_ETOSCA, "not-utf8", 3, 1, msg, sizeof(msg));
    assert_non_null(strstr(msg, "0x00"));
    assert_non_null(strstr(msg, "offset 10"));
    expect_error_n("\x01\x02\x03", 3, NULL, ORC_ETOSCA, "not-utf8", 1, 1, msg, sizeof(msg));
    assert_non_null(strstr(msg, "0x01"));
    expect_error("a: \"x\x01y\"\n", NULL, ORC_ETOSCA, "not-utf8", 1, 6);
    expect_error("k: x\x7f\n", NULL, ORC_ETOSCA, "not-utf8", 1, 5);
    /* columns count characters; a BOM takes none */
    expect_error("\xc3\xa9t\xc3\xa9: \x01\n", NULL, ORC_ETOSCA, "not-utf8", 1, 6);
    expect_error("\xef\xbb\xbf"
                 "a: 1\nb: \x01\n",
                 NULL, ORC_ETOSCA, "not-utf8", 2, 4);
    /* CR LF and a lone CR end lines as they do for the YAML parser */
    expect_error("a: 1\r\nb: \x01\n", NULL, ORC_ETOSCA, "not-utf8", 2, 4);
    expect_error("a: 1\rb: 2\rc: \x01\n", NULL, ORC_ETOSCA, "not-utf8", 3, 4);
    /* an embedded PDF-like header */
    static const char pdf[] = "%PDF-1.4\n%\xe2\xe3\xcf\xd3\n";
    expect_error_n(pdf, sizeof(pdf) - 1, NULL, ORC_ETOSCA, "not-utf8", 2, 2, NULL, 0);
}

static void characters_the_yaml_reader_refuses(void **state)
{
    char msg[256];

    (void)state;
    /* valid UTF-8 that YAML does not allow (C1 controls, U+FFFE): libyaml
     * refuses them; the position must still be the character's */
    expect_error_n("a: 1\nbb: x\xc2\x80y\n", 14, NULL, ORC_ETOSCA, "yaml-syntax", 2, 6, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "control characters"));
    expect_error("a: 1\nb: 2\nc: \xef\xbf\xbe\n", NULL, ORC_ETOSCA, "yaml-syntax", 3, 4);
    expect_error("\xef\xbb\xbf"
                 "a: \xc2\x9f\n",
                 NULL, ORC_ETOSCA, "yaml-syntax", 1, 4);
}

static void syntax_errors(void **state)
{
    char msg[256];

    (void)state;
    /* a tab where indentation belongs */
    expect_error_n("a:\n\tb: 1\n", 9, NULL, ORC_ETOSCA, "yaml-syntax", 2, 1, msg, sizeof(msg));
    assert_non_null(strstr(msg, "YAML syntax error"));
    /* an unclosed quote: found at the end, the message names where it began */
    expect_error_n("a: 1\nb: \"abc\nc: 2\n", 18, NULL, ORC_ETOSCA, "yaml-syntax", 4, 1, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "quoted scalar"));
    assert_non_null(strstr(msg, "line 2"));
    /* an unclosed flow sequence */
    expect_error("a: [1, 2\nb: 3\n", NULL, ORC_ETOSCA, "yaml-syntax", 2, 2);
    /* a second value on a line */
    expect_error("key: value: x\n", NULL, ORC_ETOSCA, "yaml-syntax", 1, 11);
    /* bad indentation */
    expect_error("a:\n    b: 1\n  c: 2\n", NULL, ORC_ETOSCA, "yaml-syntax", 3, 3);
    /* block sequence where a mapping value goes */
    expect_error("x: - a\n", NULL, ORC_ETOSCA, "yaml-syntax", 1, 4);
}

static void several_documents(void **state)
{
    char msg[256];

    (void)state;
    expect_error_n("a: 1\n---\nb: 2\n", 14, NULL, ORC_ETOSCA, "yaml-multiple-documents", 2, 1, msg,
                   sizeof(msg));
    expect_error("---\na: 1\n...\n---\nb: 2\n", NULL, ORC_ETOSCA, "yaml-multiple-documents", 4, 1);
    /* one document with explicit markers is fine */
    tosca_ydoc_t *doc = parse_ok("---\na: 1\n...\n");
    assert_non_null(at(doc, "a"));
    tosca_ydoc_free(doc);
    doc = parse_ok("%YAML 1.1\n---\na: 1\n");
    assert_mark(at(doc, "a"), 3, 4);
    tosca_ydoc_free(doc);
}

static void empty_documents(void **state)
{
    static const char *const empties[] = {"", "# only a comment\n", "\n\n   \n", "\xef\xbb\xbf"};
    tosca_diags_t d;
    tosca_ydoc_t *doc;

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(empties); i++) {
        doc = NULL;
        assert_int_equal(parse(empties[i], NULL, &doc, &d), 0);
        assert_non_null(doc);
        assert_null(doc->root);
        assert_int_equal(doc->nodes, 0);
        assert_int_equal(d.count, 0);
        tosca_ydoc_free(doc);
        tosca_diags_fini(&d);
    }
    /* NULL data of length 0 */
    assert_int_equal(tosca_ydoc_parse(NULL, NULL, 0, NULL, &doc, &d), 0);
    assert_null(doc->root);
    assert_string_equal(doc->file, "<input>");
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    /* empty collections nested before any other node (found by the fuzzer) */
    doc = parse_ok("[[[]], {}]\n");
    assert_int_equal(doc->root->u.seq.count, 2);
    assert_int_equal(doc->root->u.seq.items[0]->u.seq.items[0]->u.seq.count, 0);
    tosca_ydoc_free(doc);
    /* an explicit empty document is one null scalar */
    doc = parse_ok("---\n");
    assert_non_null(doc->root);
    assert_true(tosca_yis_null(doc->root));
    tosca_ydoc_free(doc);
}

static void complex_keys(void **state)
{
    char msg[256];

    (void)state;
    expect_error_n("? [a, b]\n: 1\n", 13, NULL, ORC_ETOSCA, "yaml-complex-key", 1, 3, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "a list"));
    expect_error_n("x: 1\n? {a: 1}\n: 2\n", 18, NULL, ORC_ETOSCA, "yaml-complex-key", 2, 3, msg,
                   sizeof(msg));
    assert_non_null(strstr(msg, "a mapping"));
    /* an alias to a mapping used as a key */
    expect_error("m: &m {x: 1}\n*m : 2\n", NULL, ORC_ETOSCA, "yaml-complex-key", 1, 4);
    /* an alias to a scalar is a fine key */
    tosca_ydoc_t *doc = parse_ok("k: &k name\n*k : 2\n");
    assert_non_null(at(doc, "name"));
    tosca_ydoc_free(doc);
    /* explicit scalar keys are fine */
    doc = parse_ok("? a\n: 1\n");
    assert_non_null(at(doc, "a"));
    tosca_ydoc_free(doc);
}

static void diagnostics_name_the_file(void **state)
{
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    char buf[512];

    (void)state;
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ydoc_parse("dir/svc.yaml", "a: *x\n", 6, NULL, &doc, &d), ORC_ETOSCA);
    assert_string_equal(tosca_diag_format(&d.items[0], buf, sizeof(buf)),
                        "dir/svc.yaml:1:4: error: alias '*x' refers to no anchor defined before "
                        "it [yaml-unknown-anchor]");
    tosca_diags_fini(&d);
    assert_int_equal(tosca_ydoc_parse(NULL, "a: *x\n", 6, NULL, &doc, &d), ORC_ETOSCA);
    assert_string_equal(d.items[0].file, "<input>");
    tosca_diags_fini(&d);
}

/* ---- scale --------------------------------------------------------------- */

/* "k0: 0\nk1: 1\n..." with n keys (or list items "- k0: 0"), into a new buffer. */
static char *gen_keys(size_t n, const char *prefix, const char *indent, size_t *len)
{
    char *buf = malloc(n * 40 + 64), *p = buf;

    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%sk%zu: %zu\n", indent, prefix, i, i);
    *len = (size_t)(p - buf);
    return buf;
}

static double time_parse(const char *text, size_t len, int want_rc)
{
    tosca_diags_t d;
    tosca_ydoc_t *doc = NULL;
    double t0 = now_s(), t;
    int rc = parse_n(text, len, NULL, &doc, &d);

    t = now_s() - t0;
    if (rc != want_rc)
        test_print_diags(&d);
    assert_int_equal(rc, want_rc);
    tosca_ydoc_free(doc);
    tosca_diags_fini(&d);
    return t;
}

static void large_mapping_and_fast_duplicates(void **state)
{
    enum { N = 8000 };
    size_t len, seq_len;
    char *text = gen_keys(N, "", "", &len);
    char *seq = gen_keys(N, "- ", "", &seq_len); /* as many nodes, no key checks */
    tosca_ydoc_t *doc;
    tosca_diags_t d;
    double t_map, t_seq, t_dup;
    int64_t v;

    (void)state;
    doc = parse_ok(text);
    assert_int_equal(doc->root->u.map.count, N);
    assert_int_equal(tosca_yget_int(tosca_ymap_get(doc->root, "k7999"), &v), 0);
    assert_int_equal(v, 7999);
    assert_mark(key_of(doc, "", "k7999"), N, 1);
    tosca_ydoc_free(doc);

    t_seq = time_parse(seq, seq_len, 0);
    t_map = time_parse(text, len, 0);
    /* a duplicate at the very end */
    len += (size_t)sprintf(text + len, "k4000: again\n");
    t_dup = time_parse(text, len, ORC_ETOSCA);
    assert_int_equal(parse_n(text, len, NULL, &doc, &d), ORC_ETOSCA);
    assert_int_equal(d.count, 1);
    assert_int_equal(d.items[0].line, N + 1);
    assert_non_null(strstr(d.items[0].message, "line 4001"));
    tosca_diags_fini(&d);
    /* linear: a map costs about what a list of as many one-key maps costs */
    if (t_map > 0.05)
        assert_true(t_map < 4 * t_seq + 0.05);
    assert_true(t_map < 2.0 && t_dup < 2.0);
    free(text);
    free(seq);
}

/* Work that grows with the square of the input would show here: a document
 * with N anchored collections, and N keys merged into N explicit keys. */
static void anchors_and_merges_scale_linearly(void **state)
{
    enum { N = 20000 };
    size_t len = 0, base_len;
    char *text = malloc((size_t)N * 80 + 64), *base;
    double t_anchor, t_merge, t_base;

    (void)state;
    assert_non_null(text);
    base = gen_keys(2 * N, "- ", "", &base_len);
    t_base = time_parse(base, base_len, 0);

    for (size_t i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "- &a%zu {k: %zu}\n", i, i);
    len += (size_t)sprintf(text + len, "- *a0\n");
    t_anchor = time_parse(text, len, 0);

    len = (size_t)sprintf(text, "base: &b\n");
    for (size_t i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "  k%zu: %zu\n", i, i);
    len += (size_t)sprintf(text + len, "m:\n  <<: *b\n");
    for (size_t i = 0; i < N; i++)
        len += (size_t)sprintf(text + len, "  j%zu: %zu\n", i, i);
    t_merge = time_parse(text, len, 0);

    /* generous: what is linear stays within a small factor of the baseline */
    if (t_anchor > 0.05 || t_merge > 0.05) {
        if (t_anchor > 10 * t_base + 0.05 || t_merge > 10 * t_base + 0.05)
            fprintf(stderr, "base %.3fs anchors %.3fs merge %.3fs\n", t_base, t_anchor, t_merge);
        assert_true(t_anchor < 10 * t_base + 0.05);
        assert_true(t_merge < 10 * t_base + 0.05);
    }

    tosca_ydoc_t *doc = parse_ok(text);
    tosca_ynode_t *m = at(doc, "m");
    assert_int_equal(m->u.map.count, 2 * N);
    assert_non_null(tosca_ymap_get(m, "k19999"));
    assert_non_null(tosca_ymap_get(m, "j0"));
    tosca_ydoc_free(doc);
    free(base);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(marks_of_scalars_keys_and_items),
        cmocka_unit_test(marks_count_characters_not_bytes),
        cmocka_unit_test(bom_is_accepted),
        cmocka_unit_test(plain_and_quoted_scalars),
        cmocka_unit_test(tags_decide_the_type),
        cmocka_unit_test(booleans),
        cmocka_unit_test(integers),
        cmocka_unit_test(floats),
        cmocka_unit_test(nulls),
        cmocka_unit_test(kinds_and_lookups),
        cmocka_unit_test(node_to_json),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(duplicate_keys_all_reported_against_the_first),
        cmocka_unit_test(aliases_share_the_anchored_node),
        cmocka_unit_test(merge_single_source),
        cmocka_unit_test(merge_list_earlier_sources_win),
        cmocka_unit_test(merge_errors),
        cmocka_unit_test(unknown_alias),
        cmocka_unit_test(recursive_alias),
        cmocka_unit_test(billion_laughs_fails_fast),
        cmocka_unit_test(alias_expansion_limit),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(node_limit),
        cmocka_unit_test(file_size_limit),
        cmocka_unit_test(invalid_utf8_and_binary),
        cmocka_unit_test(characters_the_yaml_reader_refuses),
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(several_documents),
        cmocka_unit_test(empty_documents),
        cmocka_unit_test(complex_keys),
        cmocka_unit_test(diagnostics_name_the_file),
        cmocka_unit_test(large_mapping_and_fast_duplicates),
        cmocka_unit_test(anchors_and_merges_scale_linearly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
