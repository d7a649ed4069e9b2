/*
 * Unit tests of tosca/values.c: built-in type names, scalar units, versions,
 * timestamps, parsing `constraints:` lists, checking values against schemas
 * (built-in types, list and map entries, hand-built data types), constraint
 * evaluation, TOSCA 2.0 validation clauses and function-call detection.
 * Values come from YAML text through tosca_ydoc_parse so that diagnostics
 * carry real lines; every invalid case asserts the code and the line.
 */
#include <math.h>

#include "testutil.h"

#include "model.h"
#include "yaml.h"

#define MAX_DOCS 64
#define MAX_TYPES 16

struct fx {
    tosca_diags_t d;
    tosca_arena_t arena;
    tosca_check_t chk;
    tosca_ydoc_t *docs[MAX_DOCS];
    size_t ndocs;
    tosca_type_t *types[MAX_TYPES];
    size_t ntypes;
};

static int setup(void **state)
{
    struct fx *f = test_calloc(1, sizeof(*f));

    tosca_diags_init(&f->d, false);
    tosca_arena_init(&f->arena);
    f->chk.diags = &f->d;
    f->chk.version = TOSCA_V1_3;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    for (size_t i = 0; i < f->ndocs; i++)
        tosca_ydoc_free(f->docs[i]);
    for (size_t i = 0; i < f->ntypes; i++)
        tosca_deflist_fini(&f->types[i]->properties);
    tosca_diags_fini(&f->d);
    tosca_arena_fini(&f->arena);
    test_free(f);
    return 0;
}

/* Parses YAML text; the document lives until teardown. */
static const tosca_ynode_t *y(struct fx *f, const char *text)
{
    tosca_ydoc_t *doc = NULL;

    assert_true(f->ndocs < MAX_DOCS);
    assert_int_equal(tosca_ydoc_parse("t.yaml", text, strlen(text), NULL, &doc, &f->d), 0);
    f->docs[f->ndocs++] = doc;
    return doc->root;
}

static void reset(struct fx *f)
{
    tosca_diags_fini(&f->d);
}

/* A required schema of a built-in type (or of no type: NULL). */
static tosca_schema_t *schema(struct fx *f, const char *type)
{
    tosca_schema_t *s = tosca_arena_alloc(&f->arena, sizeof(*s));

    assert_non_null(s);
    s->name = "x";
    s->type_name = type;
    s->required = true;
    if (type)
        assert_true(tosca_prim_from_name(type, &s->prim));
    return s;
}

/* Parses constraints (YAML text) into s; they must be valid. */
static void constrain(struct fx *f, tosca_schema_t *s, const char *text)
{
    int rc = tosca_constraints_parse(&f->arena, y(f, text), s->prim, &s->constraints,
                                     &s->constraint_count, &f->d);
    if (rc != 0)
        test_print_diags(&f->d);
    assert_int_equal(rc, 0);
}

static int check(struct fx *f, const tosca_schema_t *s, const char *text)
{
    return tosca_value_check(&f->chk, s, y(f, text), "property 'x'");
}

/* The value passes without any diagnostic. */
static void ok(struct fx *f, const tosca_schema_t *s, const char *text)
{
    int rc = check(f, s, text);

    if (rc != 0 || f->d.count != 0) {
        fprintf(stderr, "value: %s\n", text);
        test_print_diags(&f->d);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(f->d.count, 0);
}

/* Diagnostics hold exactly one with this code, at this line; returns it. */
static const tosca_diag_t *expect_one(struct fx *f, const char *code, uint32_t line)
{
    const tosca_diag_t *g = test_find_code(&f->d, code);

    if (g == NULL || f->d.count != 1 || g->line != line)
        test_print_diags(&f->d);
    assert_non_null(g);
    assert_int_equal(f->d.count, 1);
    assert_int_equal(g->line, line);
    return g;
}

/* The value fails with one error of this code at this line. */
static void bad(struct fx *f, const tosca_schema_t *s, const char *text, const char *code,
                uint32_t line)
{
    int rc = check(f, s, text);

    if (rc != ORC_ETOSCA)
        fprintf(stderr, "value: %s\n", text);
    assert_int_equal(rc, ORC_ETOSCA);
    assert_int_equal(expect_one(f, code, line)->severity, TOSCA_SEV_ERROR);
    reset(f);
}

/* The value passes with one warning (a defect) of this code at this line. */
static void defect(struct fx *f, const tosca_schema_t *s, const char *text, const char *code,
                   uint32_t line)
{
    assert_int_equal(check(f, s, text), 0);
    assert_int_equal(expect_one(f, code, line)->severity, TOSCA_SEV_WARNING);
    reset(f);
}

/* Constraints text that must fail to parse for prim with one code at line. */
static void bad_constraint(struct fx *f, const char *type, const char *text, const char *code,
                           uint32_t line)
{
    tosca_constraint_t *k = NULL;
    size_t n = 99;
    tosca_prim_t p = TOSCA_P_ANY;

    if (type)
        assert_true(tosca_prim_from_name(type, &p));
    assert_int_equal(tosca_constraints_parse(&f->arena, y(f, text), p, &k, &n, &f->d), ORC_ETOSCA);
    expect_one(f, code, line);
    if (n != 0)
        fprintf(stderr, "kept a constraint of: %s\n", text);
    assert_int_equal(n, 0);
    reset(f);
}

static tosca_type_t *data_type(struct fx *f, const char *name, tosca_prim_t prim,
                               tosca_type_t *parent)
{
    tosca_type_t *t = tosca_arena_alloc(&f->arena, sizeof(*t));

    assert_non_null(t);
    assert_true(f->ntypes < MAX_TYPES);
    f->types[f->ntypes++] = t;
    t->name = name;
    t->kind = TOSCA_TK_DATA;
    t->prim = prim;
    t->parent = parent;
    return t;
}

static tosca_schema_t *add_field(struct fx *f, tosca_type_t *t, const char *name, const char *type,
                                 bool required)
{
    tosca_schema_t *s = schema(f, type);

    s->name = name;
    s->required = required;
    assert_int_equal(tosca_deflist_add(&t->properties, s), 0);
    return s;
}

static tosca_schema_t *typed(struct fx *f, tosca_type_t *t)
{
    tosca_schema_t *s = schema(f, NULL);

    s->type_name = t->name;
    s->data_type = t;
    s->prim = t->prim;
    return s;
}

/* ---- names -------------------------------------------------------------- */

static void prim_names(void **state)
{
    static const char *const names[] = {
        "string",
        "integer",
        "float",
        "boolean",
        "timestamp",
        "null",
        "version",
        "range",
        "list",
        "map",
        "scalar-unit.size",
        "scalar-unit.time",
        "scalar-unit.frequency",
        "scalar-unit.bitrate",
        "bytes",
    };
    tosca_prim_t p;
    char buf[64];

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(names); i++) {
        assert_true(tosca_prim_from_name(names[i], &p));
        assert_string_equal(tosca_prim_name(p), names[i]);
        snprintf(buf, sizeof(buf), "tosca:%s", names[i]);
        assert_true(tosca_prim_from_name(buf, &p));
        assert_string_equal(tosca_prim_name(p), names[i]);
    }
    assert_true(tosca_prim_from_name("scalar-unit.size", &p));
    assert_int_equal(p, TOSCA_P_SIZE);
    assert_false(tosca_prim_from_name("String", &p));
    assert_false(tosca_prim_from_name("tosca.datatypes.json", &p));
    assert_false(tosca_prim_from_name("tosca:", &p));
    assert_false(tosca_prim_from_name("scalar-unit", &p));
    assert_false(tosca_prim_from_name(NULL, &p));
}

/* ---- scalar units ------------------------------------------------------- */

static void su(tosca_prim_t p, const char *s, double want)
{
    double v = -1;

    if (tosca_scalar_unit_parse(p, s, &v) != 0)
        fprintf(stderr, "rejected: '%s'\n", s);
    assert_int_equal(tosca_scalar_unit_parse(p, s, &v), 0);
    assert_true(fabs(v - want) <= fabs(want) * 1e-12);
}

static void su_bad(tosca_prim_t p, const char *s)
{
    double v = 0;

    if (tosca_scalar_unit_parse(p, s, &v) != ORC_EINVAL)
        fprintf(stderr, "accepted: '%s'\n", s);
    assert_int_equal(tosca_scalar_unit_parse(p, s, &v), ORC_EINVAL);
}

static void scalar_size(void **state)
{
    (void)state;
    su(TOSCA_P_SIZE, "10 B", 10);
    su(TOSCA_P_SIZE, "1 kB", 1000);
    su(TOSCA_P_SIZE, "1 KiB", 1024);
    su(TOSCA_P_SIZE, "2 MB", 2e6);
    su(TOSCA_P_SIZE, "2 MiB", 2 * 1048576.0);
    su(TOSCA_P_SIZE, "1.5 GB", 1.5e9);
    su(TOSCA_P_SIZE, "1 GiB", 1073741824.0);
    su(TOSCA_P_SIZE, "3 TB", 3e12);
    su(TOSCA_P_SIZE, "1 TiB", 1099511627776.0);
    su(TOSCA_P_SIZE, "4GB", 4e9);    /* no space */
    su(TOSCA_P_SIZE, "4   gb", 4e9); /* spaces, case-insensitive */
    su(TOSCA_P_SIZE, "1 KB", 1000);  /* case-insensitive kB */
    su(TOSCA_P_SIZE, "1 kib", 1024);
    su(TOSCA_P_SIZE, "0.5 kB", 500);
    su(TOSCA_P_SIZE, "1e3 B", 1000);
    su(TOSCA_P_SIZE, "0 B", 0);
    su_bad(TOSCA_P_SIZE, "-1 GB"); /* negative */
    su_bad(TOSCA_P_SIZE, "1 XB");  /* unknown unit */
    su_bad(TOSCA_P_SIZE, "GB");    /* no number */
    su_bad(TOSCA_P_SIZE, "1024");  /* no unit */
    su_bad(TOSCA_P_SIZE, "1 G B");
    su_bad(TOSCA_P_SIZE, "1 Hz"); /* unit of another kind */
    su_bad(TOSCA_P_SIZE, "");
    su_bad(TOSCA_P_SIZE, "0x10 B");
    su_bad(TOSCA_P_SIZE, "1e999 B"); /* overflows */
    su_bad(TOSCA_P_INTEGER, "1 B");  /* not a scalar-unit type */
}

static void scalar_time(void **state)
{
    (void)state;
    su(TOSCA_P_TIME, "2 d", 172800);
    su(TOSCA_P_TIME, "1 h", 3600);
    su(TOSCA_P_TIME, "5 m", 300);
    su(TOSCA_P_TIME, "30 s", 30);
    su(TOSCA_P_TIME, "250 ms", 0.25);
    su(TOSCA_P_TIME, "10 us", 1e-5);
    su(TOSCA_P_TIME, "100 ns", 1e-7);
    su(TOSCA_P_TIME, "1.5h", 5400);
    su(TOSCA_P_TIME, "10 S", 10);
    su(TOSCA_P_TIME, "10 MS", 0.01);
    su_bad(TOSCA_P_TIME, "10 min");
    su_bad(TOSCA_P_TIME, "10");
    su_bad(TOSCA_P_TIME, "s");
    su_bad(TOSCA_P_TIME, "1 GB");
}

static void scalar_frequency(void **state)
{
    (void)state;
    su(TOSCA_P_FREQUENCY, "50 Hz", 50);
    su(TOSCA_P_FREQUENCY, "2 kHz", 2000);
    su(TOSCA_P_FREQUENCY, "800 MHz", 8e8);
    su(TOSCA_P_FREQUENCY, "2.4 GHz", 2.4e9);
    su(TOSCA_P_FREQUENCY, "2.4ghz", 2.4e9);
    su_bad(TOSCA_P_FREQUENCY, "-1 GHz");
    su_bad(TOSCA_P_FREQUENCY, "1 THz");
    su_bad(TOSCA_P_FREQUENCY, "1 s");
}

static void scalar_bitrate(void **state)
{
    (void)state;
    su(TOSCA_P_BITRATE, "100 bps", 100);
    su(TOSCA_P_BITRATE, "1 Kbps", 1e3);
    su(TOSCA_P_BITRATE, "1 Kibps", 1024);
    su(TOSCA_P_BITRATE, "10 Mbps", 1e7);
    su(TOSCA_P_BITRATE, "1 Mibps", 1048576);
    su(TOSCA_P_BITRATE, "1 Gbps", 1e9);
    su(TOSCA_P_BITRATE, "1 Gibps", 1073741824.0);
    su(TOSCA_P_BITRATE, "1 Tbps", 1e12);
    su(TOSCA_P_BITRATE, "1 Tibps", 1099511627776.0);
    su(TOSCA_P_BITRATE, "1 Bps", 8);
    su(TOSCA_P_BITRATE, "1 KBps", 8e3);
    su(TOSCA_P_BITRATE, "1 KiBps", 8192);
    su(TOSCA_P_BITRATE, "1 MBps", 8e6);
    su(TOSCA_P_BITRATE, "1 MiBps", 8 * 1048576.0);
    su(TOSCA_P_BITRATE, "1 GBps", 8e9);
    su(TOSCA_P_BITRATE, "1 GiBps", 8 * 1073741824.0);
    su(TOSCA_P_BITRATE, "1 TBps", 8e12);
    su(TOSCA_P_BITRATE, "1 TiBps", 8 * 1099511627776.0);
    su(TOSCA_P_BITRATE, "1 mbps", 1e6); /* ambiguous case: bits */
    su(TOSCA_P_BITRATE, "1Gbps", 1e9);
    su_bad(TOSCA_P_BITRATE, "1 Xbps");
    su_bad(TOSCA_P_BITRATE, "-5 Mbps");
    su_bad(TOSCA_P_BITRATE, "Mbps");
}

/* ---- versions ----------------------------------------------------------- */

static void versions(void **state)
{
    tosca_version_val_t a, b;

    (void)state;
    assert_int_equal(tosca_version_parse("2.0", &a), 0);
    assert_int_equal(a.major, 2);
    assert_int_equal(a.minor, 0);
    assert_int_equal(a.fix, 0);
    assert_null(a.qualifier);
    assert_int_equal(tosca_version_parse("1.2.3.beta-42", &a), 0);
    assert_int_equal(a.fix, 3);
    assert_int_equal(a.qualifier_len, 4);
    assert_memory_equal(a.qualifier, "beta", 4);
    assert_int_equal(a.build, 42);
    assert_int_equal(tosca_version_parse("10.20.30.rc1", &a), 0);
    assert_int_equal(a.build, 0);

    static const char *const bad_versions[] = {
        "2",
        "",
        "1.",
        ".1",
        "1.x",
        "1.0.",
        "1.0.0.",
        "1.0.0-alpha",
        "1.0.0.a-",
        "1.0.0.a-b",
        "-1.0",
        "1.0 ",
        "v1.0",
        "1.0.0.alpha.2",
        "1234567890123456789.0",
    };
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(bad_versions); i++) {
        if (tosca_version_parse(bad_versions[i], &a) != ORC_EINVAL)
            fprintf(stderr, "accepted: '%s'\n", bad_versions[i]);
        assert_int_equal(tosca_version_parse(bad_versions[i], &a), ORC_EINVAL);
    }

    /* Each entry is older than the next. */
    static const char *const order[] = {
        "0.9", "1.0.0.alpha", "1.0.0.alpha-2", "1.0.0.beta", "1.0", "1.0.1", "1.2", "1.10", "2.0.0",
    };
    for (size_t i = 0; i + 1 < TOSCA_ARRAY_LEN(order); i++) {
        assert_int_equal(tosca_version_parse(order[i], &a), 0);
        assert_int_equal(tosca_version_parse(order[i + 1], &b), 0);
        assert_int_equal(tosca_version_cmp(&a, &b), -1);
        assert_int_equal(tosca_version_cmp(&b, &a), 1);
        assert_int_equal(tosca_version_cmp(&a, &a), 0);
    }
    assert_int_equal(tosca_version_parse("1.0", &a), 0);
    assert_int_equal(tosca_version_parse("1.0.0", &b), 0);
    assert_int_equal(tosca_version_cmp(&a, &b), 0);
}

/* ---- timestamps --------------------------------------------------------- */

static void ts(const char *s, double want)
{
    double v = 0;

    if (tosca_timestamp_parse(s, &v) != 0)
        fprintf(stderr, "rejected: '%s'\n", s);
    assert_int_equal(tosca_timestamp_parse(s, &v), 0);
    assert_true(fabs(v - want) < 1e-6);
}

static void timestamps(void **state)
{
    static const char *const bad_stamps[] = {
        "2001-13-01",
        "2001-00-10",
        "2001-02-29",
        "1900-02-29",
        "2001-04-31",
        "2001-12-32",
        "2001-12-14 24:00:00",
        "2001-12-14 23:60:00",
        "2001-12-14 23:59:60",
        "2001-1-1",
        "01-12-14",
        "2001-12-14x",
        "2001-12-14T21:59",
        "2001-12-14T21:59:43+",
        "20011-12-14",
        "2001-12-14T21:59:43 +25",
        "2001-12-14T21:59:43Zjunk",
        "",
        "yesterday",
    };
    double v;

    (void)state;
    ts("2001-12-14t21:59:43.10-05:00", 1008385183.1);
    ts("2001-12-14 21:59:43.10 -5", 1008385183.1);
    ts("2001-12-15T02:59:43.1Z", 1008385183.1);
    ts("2001-12-15 2:59:43.10", 1008385183.1); /* no zone: UTC */
    ts("2001-12-15T02:59:43Z", 1008385183);
    ts("2001-12-15T08:29:43+05:30", 1008385183);
    ts("2001-12-15t02:59:43 Z", 1008385183);
    ts("2002-12-14", 1039824000);
    ts("2000-02-29", 951782400); /* leap year */
    ts("1969-12-31T23:00:00Z", -3600);
    ts("2001-12-14T21:59:43.-05:00", 1008385183); /* empty fraction */
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(bad_stamps); i++) {
        if (tosca_timestamp_parse(bad_stamps[i], &v) != ORC_EINVAL)
            fprintf(stderr, "accepted: '%s'\n", bad_stamps[i]);
        assert_int_equal(tosca_timestamp_parse(bad_stamps[i], &v), ORC_EINVAL);
    }
}

/* ---- parsing constraints ------------------------------------------------ */

static void constraints_parse_valid(void **state)
{
    struct fx *f = *state;
    tosca_constraint_t *k = NULL;
    size_t n = 0;
    const tosca_ynode_t *list = y(f, "- equal: 2\n"
                                     "- greater_than: 1\n"
                                     "- greater_or_equal: 1\n"
                                     "- less_than: 10\n"
                                     "- less_or_equal: 10\n"
                                     "- in_range: [1, UNBOUNDED]\n"
                                     "- valid_values: [1, 2, 3]\n");

    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_INTEGER, &k, &n, &f->d), 0);
    assert_int_equal(n, 7);
    assert_int_equal(k[0].op, TOSCA_C_EQUAL);
    assert_int_equal(k[5].op, TOSCA_C_IN_RANGE);
    assert_int_equal(k[6].op, TOSCA_C_VALID_VALUES);
    assert_int_equal(k[6].mark.line, 7);
    assert_int_equal(k[6].mark.col, 3);
    assert_int_equal(k[6].arg->kind, TOSCA_Y_SEQ);

    list = y(f, "- length: 4\n- min_length: 1\n- max_length: 8\n- pattern: '^[a-z]+$'\n"
                "- schema: whatever\n- valid_values: [a, b]\n- greater_than: abc\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_STRING, &k, &n, &f->d), 0);
    assert_int_equal(n, 7);
    assert_int_equal(k[3].op, TOSCA_C_PATTERN);
    assert_int_equal(k[4].op, TOSCA_C_SCHEMA);

    list = y(f, "- min_length: 1\n- max_length: 3\n- length: 2\n- equal: [a, b]\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_LIST, &k, &n, &f->d), 0);
    assert_int_equal(n, 4);
    list = y(f, "- greater_than: 1 GB\n- in_range: [1 MiB, 2 GiB]\n- valid_values: [1 GB, 2 GB]");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_SIZE, &k, &n, &f->d), 0);
    list = y(f, "- in_range: [1, 65535]\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_RANGE, &k, &n, &f->d), 0);
    list = y(f, "- greater_or_equal: 1.2\n- less_than: '2.0.1.beta-3'\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_VERSION, &k, &n, &f->d), 0);
    list = y(f, "- greater_than: 2001-12-14\n- in_range: [2000-01-01, 2030-01-01]\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_TIMESTAMP, &k, &n, &f->d), 0);
    list = y(f, "- in_range: [0.5, 1]\n- less_than: 2\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_FLOAT, &k, &n, &f->d), 0);
    list = y(f, "- equal: true\n- valid_values: [true]\n");
    assert_int_equal(tosca_constraints_parse(&f->arena, list, TOSCA_P_BOOLEAN, &k, &n, &f->d), 0);
    assert_int_equal(tosca_constraints_parse(&f->arena, NULL, TOSCA_P_BOOLEAN, &k, &n, &f->d), 0);
    assert_int_equal(n, 0);
    assert_int_equal(f->d.count, 0);
}

static void constraints_parse_errors(void **state)
{
    struct fx *f = *state;

    bad_constraint(f, "integer", "equal: 1\n", "constraint-syntax", 1);
    bad_constraint(f, "integer", "# first\n- 5\n", "constraint-syntax", 2);
    bad_constraint(f, "integer", "- {equal: 1, less_than: 3}\n", "constraint-syntax", 1);
    bad_constraint(f, "integer", "\n- bigger_than: 1\n", "constraint-unknown", 2);
    bad_constraint(f, "integer", "- pattern: '[0-9]+'\n", "constraint-not-applicable", 1);
    bad_constraint(f, "boolean", "\n- length: 1\n", "constraint-not-applicable", 2);
    bad_constraint(f, "boolean", "- greater_than: false\n", "constraint-not-applicable", 1);
    bad_constraint(f, "list", "- pattern: x\n", "constraint-not-applicable", 1);
    bad_constraint(f, "map", "- in_range: [1, 2]\n", "constraint-not-applicable", 1);
    bad_constraint(f, "integer", "- greater_than: 1.5\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- greater_than: '1'\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- less_than: [1]\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- equal: abc\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- in_range: [1, 2, 3]\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- in_range: [5, 1]\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- in_range: 5\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- in_range: [UNBOUNDED, 5]\n", "constraint-operand", 1);
    bad_constraint(f, "range", "- in_range: [1, x]\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- valid_values: 1\n", "constraint-operand", 1);
    bad_constraint(f, "integer", "- valid_values: [1, two]\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- length: -1\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- min_length: abc\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- max_length: 1.5\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- pattern: '[a-z'\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- pattern: [a]\n", "constraint-operand", 1);
    bad_constraint(f, "string", "- equal: {get_input: x}\n", "constraint-operand", 1);
    bad_constraint(f, "scalar-unit.size", "- greater_than: 1 GX\n", "constraint-operand", 1);
    bad_constraint(f, "scalar-unit.size", "- greater_than: 1024\n", "constraint-operand", 1);
    bad_constraint(f, "scalar-unit.time", "- in_range: [1 h, 1 s]\n", "constraint-operand", 1);
    bad_constraint(f, "scalar-unit.frequency", "- less_than: fast\n", "constraint-operand", 1);
    bad_constraint(f, "scalar-unit.bitrate", "- equal: 1 GB\n", "constraint-operand", 1);
    bad_constraint(f, "version", "- greater_than: 2.x\n", "constraint-operand", 1);
    bad_constraint(f, "timestamp", "- less_than: 2001-13-01\n", "constraint-operand", 1);
    bad_constraint(f, "list", "- equal: 5\n", "constraint-operand", 1);

    /* Valid entries are kept, bad ones reported: every error is collected. */
    {
        tosca_constraint_t *k = NULL;
        size_t n = 0;
        const tosca_ynode_t *l = y(f, "- equal: 1\n- foo: 2\n- length: 3\n- less_than: 4\n");
        assert_int_equal(tosca_constraints_parse(&f->arena, l, TOSCA_P_INTEGER, &k, &n, &f->d),
                         ORC_ETOSCA);
        assert_int_equal(n, 2);
        assert_int_equal(k[1].op, TOSCA_C_LESS_THAN);
        assert_int_equal(f->d.errors, 2);
        assert_int_equal(test_find_code(&f->d, "constraint-unknown")->line, 2);
        assert_int_equal(test_find_code(&f->d, "constraint-not-applicable")->line, 3);
    }
}

/* ---- constraint evaluation ---------------------------------------------- */

static void constraint_equal(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");

    constrain(f, s, "- equal: 3\n");
    ok(f, s, "3");
    ok(f, s, "0x3");
    bad(f, s, "\n4", "constraint-violated", 2);

    s = schema(f, "string");
    constrain(f, s, "- equal: abc\n");
    ok(f, s, "abc");
    ok(f, s, "'abc'");
    bad(f, s, "abd", "constraint-violated", 1);

    s = schema(f, "scalar-unit.size");
    constrain(f, s, "- equal: 1 GB\n");
    ok(f, s, "1000 MB");
    bad(f, s, "1 GiB", "constraint-violated", 1);

    s = schema(f, "list");
    constrain(f, s, "- equal: [1, 2]\n");
    ok(f, s, "[1, 2.0]");
    bad(f, s, "[1, '2']", "constraint-violated", 1);

    s = schema(f, "boolean");
    constrain(f, s, "- equal: true\n");
    ok(f, s, "yes");
    bad(f, s, "false", "constraint-violated", 1);
}

static void constraint_comparisons(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");

    constrain(f, s, "- greater_than: 1\n- less_than: 10\n");
    ok(f, s, "2");
    ok(f, s, "9");
    bad(f, s, "1", "constraint-violated", 1);
    bad(f, s, "10", "constraint-violated", 1);

    s = schema(f, "integer");
    constrain(f, s, "- greater_or_equal: 1\n- less_or_equal: 10\n");
    ok(f, s, "1");
    ok(f, s, "10");
    bad(f, s, "0", "constraint-violated", 1);
    bad(f, s, "11", "constraint-violated", 1);

    s = schema(f, "float");
    constrain(f, s, "- greater_than: 0.5\n- less_or_equal: 2\n");
    ok(f, s, "0.75");
    ok(f, s, "2");
    bad(f, s, "0.5", "constraint-violated", 1);
    bad(f, s, "2.01", "constraint-violated", 1);

    s = schema(f, "scalar-unit.size");
    constrain(f, s, "- greater_or_equal: 1 GB\n");
    ok(f, s, "1000 MB");
    ok(f, s, "1 GiB");
    bad(f, s, "999 MB", "constraint-violated", 1);

    s = schema(f, "scalar-unit.time");
    constrain(f, s, "- less_than: 1 m\n");
    ok(f, s, "59 s");
    bad(f, s, "60000 ms", "constraint-violated", 1);

    s = schema(f, "scalar-unit.frequency");
    constrain(f, s, "- greater_than: 1 GHz\n");
    ok(f, s, "1001 MHz");
    bad(f, s, "1000000 kHz", "constraint-violated", 1);

    s = schema(f, "scalar-unit.bitrate");
    constrain(f, s, "- less_or_equal: 1 Gbps\n");
    ok(f, s, "125 MBps");
    bad(f, s, "126 MBps", "constraint-violated", 1);

    s = schema(f, "version");
    constrain(f, s, "- greater_or_equal: 1.2\n- less_than: 2.0\n");
    ok(f, s, "1.2.0");
    ok(f, s, "1.10");
    bad(f, s, "1.2.0.beta", "constraint-violated", 1);
    bad(f, s, "2.0", "constraint-violated", 1);

    s = schema(f, "timestamp");
    constrain(f, s, "- greater_than: 2001-12-14\n");
    ok(f, s, "2001-12-14 00:00:01");
    bad(f, s, "2001-12-14t01:00:00+02:00", "constraint-violated", 1);

    s = schema(f, "string");
    constrain(f, s, "- less_than: m\n");
    ok(f, s, "abc");
    bad(f, s, "zeta", "constraint-violated", 1);
}

static void constraint_in_range(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");

    constrain(f, s, "- in_range: [1, 65535]\n");
    ok(f, s, "1");
    ok(f, s, "65535");
    bad(f, s, "0", "constraint-violated", 1);
    bad(f, s, "65536", "constraint-violated", 1);

    s = schema(f, "integer");
    constrain(f, s, "- in_range: [2, UNBOUNDED]\n");
    ok(f, s, "9223372036854775807");
    bad(f, s, "1", "constraint-violated", 1);

    s = schema(f, "scalar-unit.size");
    constrain(f, s, "- in_range: [1 GiB, 4 GiB]\n");
    ok(f, s, "2048 MiB");
    bad(f, s, "4097 MiB", "constraint-violated", 1);

    /* On a range, both bounds of the value must lie within. */
    s = schema(f, "range");
    constrain(f, s, "- in_range: [1, 100]\n");
    ok(f, s, "[1, 100]");
    ok(f, s, "[10, 20]");
    bad(f, s, "[0, 20]", "constraint-violated", 1);
    bad(f, s, "[10, UNBOUNDED]", "constraint-violated", 1);
    s = schema(f, "range");
    constrain(f, s, "- in_range: [1, UNBOUNDED]\n");
    ok(f, s, "[10, UNBOUNDED]");
}

static void constraint_valid_values(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "string");

    constrain(f, s, "- valid_values: [udp, tcp, icmp]\n");
    ok(f, s, "tcp");
    ok(f, s, "\"udp\"");
    bad(f, s, "\n\nsctp", "constraint-violated", 3);

    s = schema(f, "integer");
    constrain(f, s, "- valid_values: [1, 2, 4, 8]\n");
    ok(f, s, "8");
    bad(f, s, "3", "constraint-violated", 1);

    s = schema(f, "version");
    constrain(f, s, "- valid_values: [1.0, 2.0]\n");
    ok(f, s, "2.0.0");
    bad(f, s, "3.0", "constraint-violated", 1);

    s = schema(f, "map");
    constrain(f, s, "- valid_values: [{a: 1}, {b: 2}]\n");
    ok(f, s, "{b: 2}");
    bad(f, s, "{a: 2}", "constraint-violated", 1);
}

static void constraint_lengths(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "string");

    constrain(f, s, "- length: 3\n");
    ok(f, s, "abc");
    ok(f, s, "\"h\xc3\xa9h\""); /* 3 characters, 4 bytes */
    bad(f, s, "abcd", "constraint-violated", 1);

    s = schema(f, "string");
    constrain(f, s, "- min_length: 2\n- max_length: 4\n");
    ok(f, s, "ab");
    ok(f, s, "abcd");
    bad(f, s, "a", "constraint-violated", 1);
    bad(f, s, "abcde", "constraint-violated", 1);

    s = schema(f, "list");
    constrain(f, s, "- min_length: 1\n- max_length: 2\n");
    ok(f, s, "[a]");
    bad(f, s, "[]", "constraint-violated", 1);
    bad(f, s, "- a\n- b\n- c\n", "constraint-violated", 1);

    s = schema(f, "map");
    constrain(f, s, "- length: 2\n");
    ok(f, s, "{a: 1, b: 2}");
    bad(f, s, "{a: 1}", "constraint-violated", 1);

    s = schema(f, "bytes");
    constrain(f, s, "- max_length: 3\n");
    ok(f, s, "aGVs");                                /* "hel" */
    bad(f, s, "aGVsbG8=", "constraint-violated", 1); /* "hello" */
}

static void constraint_pattern(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "string");

    constrain(f, s, "- pattern: '[a-z][a-z0-9-]*'\n");
    ok(f, s, "web-1");
    bad(f, s, "Web-1", "constraint-violated", 1);
    bad(f, s, "web_1", "constraint-violated", 1); /* the whole value must match */

    s = schema(f, "string");
    constrain(f, s, "- pattern: '^(a|ab)(c|bcd)$'\n- schema: {type: object}\n");
    ok(f, s, "abcd");
    bad(f, s, "abc d", "constraint-violated", 1);
}

static void violation_message(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");
    char buf[512];

    constrain(f, s, "- greater_or_equal: 1\n");
    assert_int_equal(tosca_value_check(&f->chk, s, y(f, "num_cpus: 0\n")->u.map.items[0].value,
                                       "property 'num_cpus' of node 'server'"),
                     ORC_ETOSCA);
    assert_string_equal(f->d.items[0].message, "property 'num_cpus' of node 'server': value 0 "
                                               "violates greater_or_equal: 1");
    assert_int_equal(f->d.items[0].col, 11);
    tosca_diag_format(&f->d.items[0], buf, sizeof(buf));
    assert_non_null(strstr(buf, "t.yaml:1:11: error:"));
    assert_non_null(strstr(buf, "[constraint-violated]"));
    reset(f);

    s = schema(f, "string");
    constrain(f, s, "- valid_values: [a, b]\n");
    assert_int_equal(check(f, s, "\"c\""), ORC_ETOSCA);
    assert_string_equal(f->d.items[0].message,
                        "property 'x': value \"c\" violates valid_values: [a, b]");
}

/* ---- types -------------------------------------------------------------- */

static void types_scalar(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");

    ok(f, s, "42");
    ok(f, s, "-7");
    ok(f, s, "0x1F");
    defect(f, s, "'4'", "type-mismatch", 1); /* quoted, read as 4 */
    bad(f, s, "'four'", "type-mismatch", 1);
    bad(f, s, "\n4.5", "type-mismatch", 2);
    bad(f, s, "[4]", "type-mismatch", 1);
    bad(f, s, "true", "type-mismatch", 1);

    s = schema(f, "float");
    ok(f, s, "4");
    ok(f, s, "4.5");
    ok(f, s, "1e3");
    ok(f, s, ".inf");
    defect(f, s, "\"4.5\"", "type-mismatch", 1);
    bad(f, s, "abc", "type-mismatch", 1);

    s = schema(f, "boolean");
    ok(f, s, "true");
    ok(f, s, "False");
    defect(f, s, "'true'", "type-mismatch", 1);
    bad(f, s, "'yes please'", "type-mismatch", 1);
    bad(f, s, "1", "type-mismatch", 1);

    s = schema(f, "null");
    ok(f, s, "null");
    ok(f, s, "~");
    bad(f, s, "0", "type-mismatch", 1);

    s = schema(f, "timestamp");
    ok(f, s, "2001-12-14t21:59:43.10-05:00");
    ok(f, s, "'2002-12-14'");
    bad(f, s, "2001-02-29", "type-mismatch", 1);

    s = schema(f, "version");
    ok(f, s, "2.0");
    ok(f, s, "'1.0.0.alpha-3'");
    defect(f, s, "2", "type-mismatch", 1); /* read as 2.0 */
    bad(f, s, "2.x", "type-mismatch", 1);

    s = schema(f, "scalar-unit.size");
    ok(f, s, "4 GB");
    ok(f, s, "'512MiB'");
    bad(f, s, "4096", "type-mismatch", 1);
    bad(f, s, "-1 GB", "type-mismatch", 1);
    s = schema(f, "scalar-unit.time");
    bad(f, s, "10 GB", "type-mismatch", 1);
    s = schema(f, "scalar-unit.frequency");
    bad(f, s, "fast", "type-mismatch", 1);
    s = schema(f, "scalar-unit.bitrate");
    ok(f, s, "10 Gbps");
    bad(f, s, "10 Gb", "type-mismatch", 1);

    s = schema(f, "bytes");
    ok(f, s, "aGVsbG8=");
    ok(f, s, "''");
    bad(f, s, "aGVsbG8", "type-mismatch", 1);
    bad(f, s, "a=b=", "type-mismatch", 1);
}

static void types_string(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "string");

    ok(f, s, "hello world");
    ok(f, s, "'8080'");
    ok(f, s, "!!str 8080");
    ok(f, s, "|\n  text\n");
    /* Non-string plain scalars are defects: warnings by default. */
    defect(f, s, "8080", "type-mismatch", 1);
    defect(f, s, "\ntrue", "type-mismatch", 2);
    defect(f, s, "1.5", "type-mismatch", 1);
    bad(f, s, "[a]", "type-mismatch", 1);
    bad(f, s, "{a: b}", "type-mismatch", 1);

    /* In strict mode the defect is an error. */
    f->d.strict = true;
    bad(f, s, "8080", "type-mismatch", 1);
}

static void types_range(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "range");

    ok(f, s, "[1, 10]");
    ok(f, s, "[-5, UNBOUNDED]");
    ok(f, s, "[3, 3]");
    bad(f, s, "[10, 1]", "type-mismatch", 1);
    bad(f, s, "[1, 2, 3]", "type-mismatch", 1);
    bad(f, s, "[UNBOUNDED, 3]", "type-mismatch", 1);
    bad(f, s, "[1.5, 3]", "type-mismatch", 1);
    bad(f, s, "5", "type-mismatch", 1);
}

static void types_lenient_and_null(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "integer");

    constrain(f, s, "- greater_than: 5\n");
    f->chk.lenient_types = true;
    defect(f, s, "abc", "type-mismatch", 1); /* and the constraint is not evaluated */
    f->chk.lenient_types = false;
    /* a quoted number is read as one (a defect), then its constraints apply */
    defect(f, s, "'6'", "type-mismatch", 1);
    assert_int_equal(check(f, s, "'4'"), ORC_ETOSCA);
    assert_int_equal(f->d.count, 2);
    assert_non_null(test_find_code(&f->d, "constraint-violated"));
    reset(f);

    /* Explicit null: "no value" when optional, a type error when required. */
    bad(f, s, "\nnull", "type-mismatch", 2);
    assert_int_equal(tosca_value_check(&f->chk, s, y(f, "n:\n")->u.map.items[0].value, "n"),
                     ORC_ETOSCA);
    assert_string_equal(f->d.items[0].message, "n: value null is not of type integer");
    reset(f);
    s->required = false;
    ok(f, s, "null");
    ok(f, s, "~");

    /* Absent values are not checked here; type ANY takes anything. */
    assert_int_equal(tosca_value_check(&f->chk, s, NULL, "property 'x'"), 0);
    ok(f, schema(f, NULL), "{a: [1, 2]}");
    assert_int_equal(tosca_value_check(NULL, s, NULL, "x"), ORC_EINVAL);
    assert_int_equal(tosca_value_check(&f->chk, NULL, NULL, "x"), ORC_EINVAL);
    assert_int_equal(f->d.count, 0);
}

static void list_entries(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "list");

    ok(f, s, "[1, a, {b: c}]"); /* no entry schema: any entries */
    s->entry_schema = schema(f, "integer");
    constrain(f, s->entry_schema, "- less_than: 100\n");
    ok(f, s, "[]");
    ok(f, s, "- 1\n- 2\n- 99\n");
    bad(f, s, "- 1\n- two\n- 3\n", "type-mismatch", 2);
    bad(f, s, "- 1\n- 2\n- 300\n", "constraint-violated", 3);
    bad(f, s, "{a: 1}", "type-mismatch", 1);
    assert_int_equal(check(f, s, "- x\n- 1\n- y\n"), ORC_ETOSCA);
    assert_int_equal(f->d.errors, 2); /* every bad entry is reported */
    assert_string_equal(f->d.items[1].message,
                        "entry 2 of property 'x': value y is not of type integer");
    reset(f);

    /* A function call as an entry is not checked. */
    ok(f, s, "- 1\n- {get_input: n}\n");
}

static void map_entries(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "map");

    s->entry_schema = schema(f, "scalar-unit.size");
    s->key_schema = schema(f, "string");
    constrain(f, s->key_schema, "- pattern: '[a-z]+'\n");
    ok(f, s, "{}");
    ok(f, s, "ram: 4 GB\ndisk: 100 GiB\n");
    ok(f, s, "? ram\n: 1 GB\n");
    bad(f, s, "ram: 4 GB\ndisk: 100\n", "type-mismatch", 2);
    bad(f, s, "ram: 4 GB\nDisk: 1 GB\n", "constraint-violated", 2);
    bad(f, s, "[a]", "type-mismatch", 1);

    /* Keys are strings even when they look like numbers. */
    s = schema(f, "map");
    s->key_schema = schema(f, "string");
    s->entry_schema = schema(f, "string");
    ok(f, s, "8080: http\n");
    s->key_schema = schema(f, "integer");
    bad(f, s, "8080: http\nhttps: x\n", "type-mismatch", 2);
}

/* ---- data types --------------------------------------------------------- */

static void complex_fields(void **state)
{
    struct fx *f = *state;
    tosca_type_t *root = data_type(f, "tosca.datatypes.Root", TOSCA_P_COMPLEX, NULL);
    tosca_type_t *base = data_type(f, "my.Base", TOSCA_P_COMPLEX, root);
    tosca_type_t *t = data_type(f, "my.Server", TOSCA_P_COMPLEX, base);
    tosca_schema_t *s = typed(f, t), *fs;

    add_field(f, base, "name", "string", true);
    fs = add_field(f, base, "zone", "string", true);
    fs->default_value = y(f, "eu-1");
    add_field(f, t, "cpus", "integer", true);
    fs = add_field(f, t, "memory", "scalar-unit.size", false);
    constrain(f, fs, "- greater_or_equal: 1 GB\n");

    ok(f, s, "name: web\ncpus: 4\nmemory: 8 GB\n");
    ok(f, s, "{name: web, cpus: 4, zone: eu-2}");
    ok(f, s, "{get_input: server}");
    bad(f, s, "name: web\ncpus: four\n", "type-mismatch", 2);
    bad(f, s, "name: web\ncpus: 4\nmemory: 512 MB\n", "constraint-violated", 3);
    bad(f, s, "\nname: web\n", "missing-field", 2);
    bad(f, s, "\n\ncpus: 2\n", "missing-field", 3);
    bad(f, s, "- name\n", "type-mismatch", 1);
    bad(f, s, "name: web\ncpus: ~\n", "type-mismatch", 2);
    defect(f, s, "name: web\ncpus: 2\ncolour: red\n", "unknown-field", 3);

    assert_int_equal(check(f, s, "{colour: red}"), ORC_ETOSCA);
    assert_int_equal(f->d.errors, 2);   /* name and cpus */
    assert_int_equal(f->d.warnings, 1); /* colour */
    assert_non_null(strstr(test_find_code(&f->d, "missing-field")->message,
                           "required field 'cpus' of data type 'my.Server'"));
    reset(f);

    f->d.strict = true;
    bad(f, s, "name: web\ncpus: 2\ncolour: red\n", "unknown-field", 3);
}

static void complex_nested_and_override(void **state)
{
    struct fx *f = *state;
    tosca_type_t *port = data_type(f, "my.Port", TOSCA_P_COMPLEX, NULL);
    tosca_type_t *net = data_type(f, "my.Net", TOSCA_P_COMPLEX, NULL);
    tosca_type_t *net2 = data_type(f, "my.Net2", TOSCA_P_COMPLEX, net);
    tosca_schema_t *fs, *s;

    add_field(f, port, "number", "integer", true);
    fs = add_field(f, net, "ports", "list", true);
    fs->entry_schema = typed(f, port);
    add_field(f, net, "label", "string", true);
    /* The child makes 'label' optional: the nearest definition wins. */
    add_field(f, net2, "label", "string", false);
    s = typed(f, net2);

    ok(f, s, "ports:\n  - number: 80\n  - {number: 443}\n");
    bad(f, s, "ports:\n  - number: 80\n  - number: x\n", "type-mismatch", 3);
    bad(f, s, "ports:\n  - number: 80\n  - {}\n", "missing-field", 3);
    assert_int_equal(check(f, s, "ports:\n  - number: 80\n  - number: x\n"), ORC_ETOSCA);
    assert_string_equal(f->d.items[0].message,
                        "field 'number' of entry 1 of field 'ports' of property 'x': value x "
                        "is not of type integer");
    reset(f);
    bad(f, typed(f, net), "ports: []\n", "missing-field", 1);
}

static void derived_from_primitive(void **state)
{
    struct fx *f = *state;
    tosca_type_t *portdef = data_type(f, "tosca.datatypes.network.PortDef", TOSCA_P_INTEGER, NULL);
    tosca_type_t *high = data_type(f, "my.HighPort", TOSCA_P_INTEGER, portdef);
    tosca_type_t *names = data_type(f, "my.Names", TOSCA_P_LIST, NULL);
    tosca_schema_t *s;

    assert_int_equal(tosca_constraints_parse(&f->arena, y(f, "- in_range: [1, 65535]"),
                                             TOSCA_P_INTEGER, &portdef->constraints,
                                             &portdef->constraint_count, &f->d),
                     0);
    assert_int_equal(tosca_constraints_parse(&f->arena, y(f, "- greater_than: 1023"),
                                             TOSCA_P_INTEGER, &high->constraints,
                                             &high->constraint_count, &f->d),
                     0);
    s = typed(f, high);
    ok(f, s, "8080");
    bad(f, s, "80", "constraint-violated", 1);    /* own constraint */
    bad(f, s, "70000", "constraint-violated", 1); /* the parent's */
    defect(f, s, "'8080'", "type-mismatch", 1);
    bad(f, s, "'http'", "type-mismatch", 1);
    assert_int_equal(check(f, s, "'http'"), ORC_ETOSCA);
    assert_non_null(strstr(f->d.items[0].message, "is not of type my.HighPort"));
    reset(f);

    /* A property's own constraints apply on top of its type's. */
    s = typed(f, portdef);
    constrain(f, s, "- valid_values: [80, 443]\n");
    ok(f, s, "443");
    bad(f, s, "8443", "constraint-violated", 1);

    /* A data type derived from list brings its entry schema. */
    names->entry_schema = schema(f, "string");
    s = typed(f, names);
    ok(f, s, "[a, b]");
    bad(f, s, "[a, [b]]", "type-mismatch", 1);
}

/* ---- functions ---------------------------------------------------------- */

static void functions(void **state)
{
    struct fx *f = *state;
    static const char *const yes[] = {
        "{get_input: x}",
        "{get_property: [SELF, p]}",
        "{get_attribute: [SELF, a]}",
        "{get_operation_output: [SELF, Standard, create, out]}",
        "{get_nodes_of_type: T}",
        "{get_artifact: [SELF, a]}",
        "{concat: [a, b]}",
        "{join: [[a, b], ',']}",
        "{token: [a, ',', 0]}",
        "{$get_input: x}",
        "{$get_secret: x}",
        "{$my_function: [1]}",
        "{$and: []}",
    };
    static const char *const no[] = {
        "get_input", "[get_input, x]",  "{get_input: x, other: y}",
        "{}",        "{get_secret: x}", "{$$get_input: x}",
        "{$1: x}",   "{$: x}",          "{name: x}",
    };

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(yes); i++)
        assert_true(tosca_is_function(y(f, yes[i])));
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(no); i++)
        assert_false(tosca_is_function(y(f, no[i])));
    assert_false(tosca_is_function(NULL));

    /* Function calls are accepted whatever the type and constraints. */
    tosca_schema_t *s = schema(f, "integer");
    constrain(f, s, "- greater_than: 5\n");
    ok(f, s, "{get_input: n}");
    ok(f, s, "{$get_property: [SELF, n]}");
    bad(f, s, "{$$get_input: n}", "type-mismatch", 1);
}

/* ---- 2.0 validation ----------------------------------------------------- */

static tosca_schema_t *validated(struct fx *f, const char *type, const char *clause)
{
    tosca_schema_t *s = schema(f, type);

    s->validation = y(f, clause);
    return s;
}

static void validation_comparisons(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s;

    f->chk.version = TOSCA_V2_0;
    s = validated(f, "integer", "{$greater_or_equal: [$value, 1]}");
    ok(f, s, "1");
    bad(f, s, "\n0", "constraint-violated", 2);

    s = validated(f, "integer",
                  "$and:\n  - {$greater_than: [$value, 0]}\n"
                  "  - {$less_than: [$value, 10]}\n");
    ok(f, s, "5");
    bad(f, s, "10", "constraint-violated", 1);

    s = validated(f, "integer", "{$or: [{$equal: [$value, 1]}, {$equal: [$value, 3]}]}");
    ok(f, s, "3");
    bad(f, s, "2", "constraint-violated", 1);

    s = validated(f, "integer", "{$not: [{$less_or_equal: [$value, 5]}]}");
    ok(f, s, "6");
    bad(f, s, "5", "constraint-violated", 1);

    s = validated(f, "scalar-unit.size", "{$greater_than: [$value, 1 GB]}");
    ok(f, s, "2 GB");
    bad(f, s, "1000 MB", "constraint-violated", 1);

    s = validated(f, "version", "{$less_than: [1.0, $value]}"); /* $value on the right */
    ok(f, s, "1.0.1");
    bad(f, s, "1.0", "constraint-violated", 1);

    s = validated(f, "integer", "{$in_range: [$value, [1, 4]]}");
    ok(f, s, "4");
    bad(f, s, "5", "constraint-violated", 1);

    s = validated(f, "string", "{$valid_values: [$value, [a, b, $$c]]}");
    ok(f, s, "b");
    ok(f, s, "$c"); /* "$$c" is the literal "$c" */
    bad(f, s, "c", "constraint-violated", 1);

    s = validated(f, "string", "{$equal: [$value, $$x]}");
    ok(f, s, "$x");
    bad(f, s, "$$x", "constraint-violated", 1);

    s = validated(f, "boolean", "$value");
    ok(f, s, "true");
    bad(f, s, "false", "constraint-violated", 1);
    s = validated(f, "integer", "false");
    bad(f, s, "1", "constraint-violated", 1);
}

static void validation_strings_and_collections(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s;

    s = validated(f, "string", "{$and: [{$min_length: [$value, 2]}, {$max_length: [$value, 4]}]}");
    ok(f, s, "abc");
    bad(f, s, "a", "constraint-violated", 1);
    s = validated(f, "string", "{$length: [$value, 3]}");
    ok(f, s, "\"\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\""); /* three euro signs */
    bad(f, s, "ab", "constraint-violated", 1);
    s = validated(f, "string", "{$matches: [$value, '[0-9]+']}");
    ok(f, s, "'123'");
    bad(f, s, "12a", "constraint-violated", 1);
    s = validated(f, "string", "{$has_prefix: [$value, 'eu-']}");
    ok(f, s, "eu-west");
    bad(f, s, "us-east", "constraint-violated", 1);
    s = validated(f, "string", "{$has_suffix: [$value, '.com']}");
    ok(f, s, "example.com");
    bad(f, s, "example.org", "constraint-violated", 1);
    s = validated(f, "string", "{$contains: [$value, mid]}");
    ok(f, s, "amidst");
    bad(f, s, "muddle", "constraint-violated", 1);

    s = validated(f, "list", "{$contains: [$value, [2, 3]]}");
    ok(f, s, "[1, 2, 3, 4]");
    bad(f, s, "[2, 1, 3]", "constraint-violated", 1);
    s = validated(f, "list", "{$has_entry: [$value, 2]}");
    ok(f, s, "[1, 2]");
    bad(f, s, "[1, '2']", "constraint-violated", 1);
    s = validated(f, "list", "{$has_all_entries: [$value, [1, 2]]}");
    ok(f, s, "[2, 3, 1]");
    bad(f, s, "[2, 3]", "constraint-violated", 1);
    s = validated(f, "list", "{$has_any_entry: [$value, [1, 2]]}");
    ok(f, s, "[2, 3]");
    bad(f, s, "[3, 4]", "constraint-violated", 1);
    s = validated(f, "map", "{$has_key: [$value, a]}");
    ok(f, s, "{a: 1}");
    bad(f, s, "{b: 1}", "constraint-violated", 1);
    s = validated(f, "map", "{$has_entry: [$value, 1]}");
    ok(f, s, "{b: 1}");
    bad(f, s, "{b: 2}", "constraint-violated", 1);
    s = validated(f, "map", "{$has_all_keys: [$value, [a, b]]}");
    ok(f, s, "{a: 1, b: 2, c: 3}");
    bad(f, s, "{a: 1, c: 3}", "constraint-violated", 1);
    s = validated(f, "map", "{$has_any_key: [$value, [a, b]]}");
    ok(f, s, "{b: 2}");
    bad(f, s, "{c: 3}", "constraint-violated", 1);
    s = validated(f, "map", "{$greater_than: [{$value: [size]}, 2]}");
    ok(f, s, "{size: 3}");
    bad(f, s, "{size: 2}", "constraint-violated", 1);
    ok(f, s, "{other: 1}"); /* path not found: not evaluated */
}

static void validation_not_evaluated(void **state)
{
    struct fx *f = *state;
    tosca_type_t *t = data_type(f, "my.Even", TOSCA_P_INTEGER, NULL);
    tosca_schema_t *s;

    /* Other functions are accepted without evaluation, and so is what uses them. */
    s = validated(f, "integer", "{$greater_than: [$value, {$get_property: [SELF, min]}]}");
    ok(f, s, "0");
    s = validated(f, "integer", "{$and: [{$my_check: [$value]}, {$less_than: [$value, 5]}]}");
    ok(f, s, "1");
    bad(f, s, "7", "constraint-violated", 1); /* false and unknown is false */
    s = validated(f, "integer", "{$or: [{$my_check: [$value]}, {$less_than: [$value, 5]}]}");
    ok(f, s, "7"); /* unknown or false is unknown */
    s = validated(f, "integer", "{$equal: [$value]}");
    ok(f, s, "1"); /* malformed: left to the template checker */

    /* A data type's validation applies to its values. */
    t->validation = y(f, "{$valid_values: [$value, [2, 4, 6]]}");
    s = typed(f, t);
    ok(f, s, "4");
    bad(f, s, "\n5", "constraint-violated", 2);
    assert_int_equal(check(f, s, "5"), ORC_ETOSCA);
    assert_string_equal(f->d.items[0].message,
                        "property 'x': value 5 fails validation {$valid_values: [$value, "
                        "[2, 4, 6]]}");
}

/* ---- allocation failures ------------------------------------------------ */

static long fail_countdown; /* allocations left before failing; < 0: never */

static void *failing_malloc(size_t n)
{
    if (fail_countdown == 0)
        return NULL;
    fail_countdown--;
    return malloc(n);
}

static void *failing_realloc(void *p, size_t n)
{
    if (fail_countdown == 0)
        return NULL;
    fail_countdown--;
    return realloc(p, n);
}

static void *failing_calloc(size_t n, size_t size)
{
    if (fail_countdown == 0)
        return NULL;
    fail_countdown--;
    return calloc(n, size);
}

/* Every allocation failure gives ORC_ENOMEM, never a crash or a wrong verdict. */
static void out_of_memory(void **state)
{
    struct fx *f = *state;
    tosca_schema_t *s = schema(f, "list");
    const tosca_ynode_t *cons = y(f, "- min_length: 1\n- foo: 1\n");
    const tosca_ynode_t *v = y(f, "[1, x, 300]");
    int rc = ORC_ENOMEM;

    s->entry_schema = schema(f, "integer");
    constrain(f, s->entry_schema, "- less_than: 100\n");
    for (long n = 0; rc == ORC_ENOMEM; n++) {
        tosca_arena_t a;
        tosca_constraint_t *k;
        size_t count;

        tosca_arena_init(&a);
        reset(f);
        fail_countdown = n;
        tosca_replace_allocator(failing_malloc, failing_realloc, failing_calloc, free);
        rc = tosca_constraints_parse(&a, cons, TOSCA_P_LIST, &k, &count, &f->d);
        if (rc != ORC_ENOMEM)
            rc = tosca_value_check(&f->chk, s, v, "property 'x'");
        tosca_replace_allocator(NULL, NULL, NULL, NULL);
        tosca_arena_fini(&a);
        assert_true(rc == ORC_ENOMEM || rc == ORC_ETOSCA);
        assert_true(n < 1000);
    }
    assert_int_equal(f->d.errors, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prim_names),
        cmocka_unit_test(scalar_size),
        cmocka_unit_test(scalar_time),
        cmocka_unit_test(scalar_frequency),
        cmocka_unit_test(scalar_bitrate),
        cmocka_unit_test(versions),
        cmocka_unit_test(timestamps),
        cmocka_unit_test_setup_teardown(constraints_parse_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(constraints_parse_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_comparisons, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_in_range, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_valid_values, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(constraint_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(violation_message, setup, teardown),
        cmocka_unit_test_setup_teardown(types_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(types_string, setup, teardown),
        cmocka_unit_test_setup_teardown(types_range, setup, teardown),
        cmocka_unit_test_setup_teardown(types_lenient_and_null, setup, teardown),
        cmocka_unit_test_setup_teardown(list_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(map_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(complex_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(complex_nested_and_override, setup, teardown),
        cmocka_unit_test_setup_teardown(derived_from_primitive, setup, teardown),
        cmocka_unit_test_setup_teardown(functions, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_comparisons, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_strings_and_collections, setup, teardown),
        cmocka_unit_test_setup_teardown(validation_not_evaluated, setup, teardown),
        cmocka_unit_test_setup_teardown(out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
