/*
 * CSAR archives (tosca/csar.c): every archive is built in memory here with
 * libzip, sometimes patched byte by byte afterwards (NUL in a name, a lying
 * size header, truncation), then opened; failures are checked by their
 * diagnostic code. Ends with out-of-memory loops over the whole open.
 */
#include "testutil.h"

#include <zip.h>

#include "csar.h"

#define MIB ((size_t)1024 * 1024)

static const char META_11[] = "TOSCA-Meta-File-Version: 1.1\n"
                              "CSAR-Version: 1.1\n"
                              "Created-By: test_csar\n"
                              "Entry-Definitions: Definitions/main.yaml\n";
static const char MAIN_YAML[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n";

/* ---- building archives ---------------------------------------------------- */

typedef struct {
    zip_source_t *src;
    zip_t *za;
} zbuild_t;

static void zb_begin(zbuild_t *b)
{
    zip_error_t ze;

    zip_error_init(&ze);
    b->src = zip_source_buffer_create(NULL, 0, 0, &ze);
    assert_non_null(b->src);
    zip_source_keep(b->src);
    b->za = zip_open_from_source(b->src, ZIP_TRUNCATE, &ze);
    assert_non_null(b->za);
    zip_error_fini(&ze);
}

/* Adds a file; data must live until zb_end. Returns its index. */
static zip_uint64_t zb_add(zbuild_t *b, const char *name, const void *data, size_t len)
{
    zip_source_t *s = zip_source_buffer(b->za, data, len, 0);
    zip_int64_t i;

    assert_non_null(s);
    i = zip_file_add(b->za, name, s, ZIP_FL_ENC_UTF_8);
    if (i < 0)
        fail_msg("zip_file_add(%s): %s", name, zip_strerror(b->za));
    return (zip_uint64_t)i;
}

static zip_uint64_t zb_str(zbuild_t *b, const char *name, const char *text)
{
    return zb_add(b, name, text, strlen(text));
}

/* Writes the archive; *len bytes at the returned buffer (free()). */
static char *zb_end(zbuild_t *b, size_t *len)
{
    zip_int64_t size;
    char *buf;

    if (zip_close(b->za) < 0)
        fail_msg("zip_close: %s", zip_strerror(b->za));
    assert_int_equal(zip_source_open(b->src), 0);
    assert_int_equal(zip_source_seek(b->src, 0, SEEK_END), 0);
    size = zip_source_tell(b->src);
    assert_true(size > 0);
    assert_int_equal(zip_source_seek(b->src, 0, SEEK_SET), 0);
    buf = malloc((size_t)size);
    assert_non_null(buf);
    assert_int_equal(zip_source_read(b->src, buf, (zip_uint64_t)size), size);
    zip_source_close(b->src);
    zip_source_free(b->src);
    *len = (size_t)size;
    return buf;
}

/* An archive of NULL-terminated name, text pairs. */
static char *zip_of(size_t *len, const char *const *pairs)
{
    zbuild_t b;

    zb_begin(&b);
    for (size_t i = 0; pairs[i]; i += 2)
        zb_str(&b, pairs[i], pairs[i + 1]);
    return zb_end(&b, len);
}

/* Replaces every occurrence of from (n bytes) in buf by to; returns how many. */
static int patch_all(char *buf, size_t len, const char *from, const char *to, size_t n)
{
    int count = 0;

    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, from, n) == 0) {
            memcpy(buf + i, to, n);
            count++;
        }
    return count;
}

/* The first occurrence of n bytes of needle in hay (hlen bytes), or NULL. */
static char *find(char *hay, size_t hlen, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= hlen; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return hay + i;
    return NULL;
}

/* n bytes that deflate poorly (a linear congruential sequence). */
static char *noise(size_t n)
{
    char *p = malloc(n);
    uint32_t x = 12345;

    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (char)(x >> 24);
    }
    return p;
}

/* ---- opening ---------------------------------------------------------------- */

typedef struct {
    tosca_diags_t d;
    tosca_csar_t *c;
    int rc;
} opened_t;

static void open_lim(opened_t *o, const void *buf, size_t len, const tosca_limits_t *lim,
                     bool strict)
{
    tosca_diags_init(&o->d, strict);
    o->rc = tosca_csar_open("t.csar", buf, len, lim, &o->c, &o->d);
    if (o->rc == 0)
        assert_non_null(o->c);
    else
        assert_null(o->c);
}

static void open_buf(opened_t *o, const void *buf, size_t len)
{
    open_lim(o, buf, len, NULL, false);
}

static void closed(opened_t *o)
{
    tosca_csar_free(o->c);
    tosca_diags_fini(&o->d);
}

/* Asserts rc and that a diagnostic has code (and mentions what, when not NULL). */
static void expect(opened_t *o, int rc, const char *code, const char *what)
{
    const tosca_diag_t *g = test_find_code(&o->d, code);

    if (o->rc != rc || g == NULL) {
        test_print_diags(&o->d);
        fail_msg("rc %s, expected %s with [%s]", orc_err_name(o->rc), orc_err_name(rc), code);
    }
    assert_string_equal(g->file, "t.csar");
    if (what && strstr(g->message, what) == NULL)
        fail_msg("'%s' does not mention '%s'", g->message, what);
}

static void expect_ok(opened_t *o)
{
    if (o->rc != 0 || o->d.errors) {
        test_print_diags(&o->d);
        fail_msg("rc %s", orc_err_name(o->rc));
    }
}

/* Builds pairs into an archive, opens it, expects rc and code, cleans up. */
static void check_pairs(const char *const *pairs, int rc, const char *code, const char *what)
{
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    open_buf(&o, buf, len);
    expect(&o, rc, code, what);
    closed(&o);
    free(buf);
}

/* ---- TOSCA.meta ------------------------------------------------------------ */

static void meta_entry(void **state)
{
    zbuild_t b;
    opened_t o;
    const char *data;
    size_t len, n;
    char *buf;

    (void)state;
    zb_begin(&b);
    zb_str(&b, "TOSCA-Metadata/TOSCA.meta", META_11);
    assert_true(zip_dir_add(b.za, "Definitions/", ZIP_FL_ENC_UTF_8) >= 0);
    zb_str(&b, "Definitions/main.yaml", MAIN_YAML);
    zb_str(&b, "Definitions/types.yaml", "node_types: {}\n");
    zb_add(&b, "files/empty.bin", "", 0);
    buf = zb_end(&b, &len);
    assert_true(tosca_csar_is_zip(buf, len));
    open_buf(&o, buf, len);
    expect_ok(&o);
    assert_int_equal(o.d.warnings, 0);
    assert_string_equal(tosca_csar_entry(o.c), "Definitions/main.yaml");
    assert_string_equal(tosca_csar_meta(o.c, "Created-By"), "test_csar");
    assert_string_equal(tosca_csar_meta(o.c, "CSAR-Version"), "1.1");
    assert_null(tosca_csar_meta(o.c, "Other-Definitions"));
    assert_int_equal(tosca_csar_other_count(o.c), 0);
    assert_int_equal(tosca_csar_file_count(o.c), 4); /* the directory is skipped */
    assert_int_equal(tosca_csar_read(o.c, "Definitions/main.yaml", &data, &n), 0);
    assert_int_equal(n, strlen(MAIN_YAML));
    assert_string_equal(data, MAIN_YAML);
    assert_int_equal(tosca_csar_read(o.c, "files/empty.bin", &data, &n), 0);
    assert_int_equal(n, 0);
    assert_string_equal(data, "");
    assert_int_equal(tosca_csar_read(o.c, "Definitions", &data, &n), ORC_ENOTFOUND);
    assert_int_equal(tosca_csar_read(o.c, "nope.yaml", &data, &n), ORC_ENOTFOUND);
    closed(&o);
    free(buf);
}

static void meta_csar2_other_definitions(void **state)
{
    static const char meta[] = "TOSCA-Meta-File-Version: 2.0\r\n"
                               "CSAR-Version: 2.0\r\n"
                               "Created-By: a very long creator name that\r\n"
                               "  goes on\r\n"
                               "Entry-Definitions: ./Definitions//main.yaml\r\n"
                               "Other-Definitions: Definitions/a.yaml  extra/b.yml\r\n"
                               "\r\n"
                               "\r\n"
                               "Name: Definitions/a.yaml\r\n"
                               "Content-Type: application/vnd.oasis.tosca.definitions.yaml\r\n";
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta",
                                 meta,
                                 "Definitions/main.yaml",
                                 MAIN_YAML,
                                 "Definitions/a.yaml",
                                 "a: 1\n",
                                 "extra/b.yml",
                                 "b\n",
                                 NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    (void)state;
    open_buf(&o, buf, len);
    expect_ok(&o);
    assert_int_equal(o.d.warnings, 0);
    assert_string_equal(tosca_csar_entry(o.c), "Definitions/main.yaml");
    assert_string_equal(tosca_csar_meta(o.c, "Created-By"),
                        "a very long creator name that goes on");
    assert_null(tosca_csar_meta(o.c, "Name")); /* not from the first block */
    assert_int_equal(tosca_csar_other_count(o.c), 2);
    assert_string_equal(tosca_csar_other(o.c, 0), "Definitions/a.yaml");
    assert_string_equal(tosca_csar_other(o.c, 1), "extra/b.yml");
    assert_null(tosca_csar_other(o.c, 2));
    closed(&o);
    free(buf);
}

static void meta_missing_versions(void **state)
{
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta",
                                 "CSAR-Version: 9.9\nEntry-Definitions: main.yaml\n", "main.yaml",
                                 MAIN_YAML, NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    (void)state;
    open_buf(&o, buf, len); /* lenient: warnings */
    expect_ok(&o);
    assert_int_equal(o.d.warnings, 3); /* no file version, unknown CSAR version, no creator */
    assert_true(test_has_code(&o.d, "csar-meta"));
    closed(&o);
    open_lim(&o, buf, len, NULL, true); /* strict: errors */
    expect(&o, ORC_ETOSCA, "csar-meta", "TOSCA-Meta-File-Version");
    assert_non_null(strstr(o.d.items[1].message, "unknown CSAR-Version '9.9'"));
    assert_non_null(strstr(o.d.items[2].message, "Created-By"));
    assert_int_equal(o.d.errors, 3);
    closed(&o);
    free(buf);
}

static void meta_missing_target(void **state)
{
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", META_11, "Definitions/other.yaml",
                                 MAIN_YAML, NULL};

    (void)state;
    check_pairs(pairs, ORC_ETOSCA, "csar-no-entry", "Definitions/main.yaml");
}

static void meta_bad_paths(void **state)
{
    static const char *const metas[] = {
        "Created-By: x\nEntry-Definitions: ../main.yaml\n",
        "Created-By: x\nEntry-Definitions: Definitions/../../main.yaml\n",
        "Created-By: x\nEntry-Definitions: /main.yaml\n",
        "Created-By: x\nEntry-Definitions: Definitions/\n",
        "Created-By: x\nEntry-Definitions: main.yaml\nOther-Definitions: ok.yaml ../x.yaml\n",
    };

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(metas); i++) {
        const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta",
                                     metas[i],
                                     "main.yaml",
                                     MAIN_YAML,
                                     "ok.yaml",
                                     "a: 1\n",
                                     NULL};
        check_pairs(pairs, ORC_ETOSCA, "csar-path", NULL);
    }
}

static void meta_syntax(void **state)
{
    const char *const no_colon[] = {"TOSCA-Metadata/TOSCA.meta",
                                    "Created-By: x\nEntry-Definitions main.yaml\n", "main.yaml",
                                    MAIN_YAML, NULL};
    const char *const dup[] = {"TOSCA-Metadata/TOSCA.meta",
                               "Entry-Definitions: main.yaml\nEntry-Definitions: main.yaml\n",
                               "main.yaml", MAIN_YAML, NULL};
    const char *const cont[] = {"TOSCA-Metadata/TOSCA.meta", " orphan\nEntry-Definitions: m\n",
                                "main.yaml", MAIN_YAML, NULL};
    const char *const ctrl[] = {"TOSCA-Metadata/TOSCA.meta", "Entry-Definitions: main.yaml\x01\n",
                                "main.yaml", MAIN_YAML, NULL};
    const char *const no_entry[] = {"TOSCA-Metadata/TOSCA.meta", "Created-By: x\n", "main.yaml",
                                    MAIN_YAML, NULL};
    const char *const no_meta[] = {"TOSCA-Metadata/other.txt", "x", "main.yaml", MAIN_YAML, NULL};

    (void)state;
    check_pairs(no_colon, ORC_ETOSCA, "csar-meta", ":2:");
    check_pairs(dup, ORC_ETOSCA, "csar-meta", "duplicate key 'Entry-Definitions'");
    check_pairs(cont, ORC_ETOSCA, "csar-meta", "continuation");
    check_pairs(ctrl, ORC_ETOSCA, "csar-meta", "control character");
    check_pairs(no_entry, ORC_ETOSCA, "csar-no-entry", "Entry-Definitions");
    check_pairs(no_meta, ORC_ETOSCA, "csar-meta", "TOSCA-Metadata/TOSCA.meta");
}

/* ---- root YAML convention -------------------------------------------------- */

static void root_yaml(void **state)
{
    const char *const pairs[] = {"service.YML",     MAIN_YAML,    "types/t.yaml",
                                 "a: 1\n",          "README.txt", "hi\n",
                                 "TOSCA-Metadata/", "",           NULL};
    opened_t o;
    size_t len;
    char *buf;

    (void)state;
    buf = zip_of(&len, pairs); /* "TOSCA-Metadata/" is an empty directory entry */
    open_buf(&o, buf, len);
    expect_ok(&o);
    assert_string_equal(tosca_csar_entry(o.c), "service.YML");
    assert_null(tosca_csar_meta(o.c, "Created-By"));
    closed(&o);
    free(buf);
}

static void root_yaml_two(void **state)
{
    const char *const two[] = {"a.yaml", MAIN_YAML, "sub/c.yaml", "x", "b.yml", MAIN_YAML, NULL};
    const char *const none[] = {"sub/a.yaml", MAIN_YAML, "notes.txt", "x", NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, two);

    (void)state;
    open_buf(&o, buf, len);
    expect(&o, ORC_ETOSCA, "csar-ambiguous-entry", "'a.yaml', 'b.yml'");
    closed(&o);
    free(buf);
    check_pairs(none, ORC_ETOSCA, "csar-no-entry", NULL);
}

/* ---- entry names ------------------------------------------------------------- */

static void bad_names(void **state)
{
    static const char *const names[] = {"../x.yaml", "/etc/passwd", "a/../../b", "a/..",
                                        "a\\b.yaml", "C:/x.yaml",   "c:x.yaml"};

    (void)state;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(names); i++) {
        const char *const pairs[] = {"main.yaml", MAIN_YAML, names[i], "x", NULL};
        check_pairs(pairs, ORC_ETOSCA, "csar-path", names[i]);
    }
}

static void all_bad_names_reported(void **state)
{
    const char *const pairs[] = {"../a", "x", "/b", "x", "main.yaml", MAIN_YAML, NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    (void)state;
    open_buf(&o, buf, len);
    expect(&o, ORC_ETOSCA, "csar-path", NULL);
    assert_int_equal(o.d.errors, 2);
    closed(&o);
    free(buf);
}

static void normalised_names(void **state)
{
    const char *const pairs[] = {"./svc//main.yaml", MAIN_YAML, "./b/./c.txt", "c", NULL};
    const char *const dup[] = {"a.yaml", "1", "./a.yaml", "2", NULL};
    const char *data;
    opened_t o;
    size_t len, n;
    char *buf = zip_of(&len, pairs);

    (void)state;
    open_buf(&o, buf, len);
    expect(&o, ORC_ETOSCA, "csar-no-entry", NULL); /* no root YAML after normalising */
    closed(&o);
    free(buf);

    const char *const ok[] = {"./main.yaml", MAIN_YAML, "./b/./c.txt", "c", NULL};
    buf = zip_of(&len, ok);
    open_buf(&o, buf, len);
    expect_ok(&o);
    assert_string_equal(tosca_csar_entry(o.c), "main.yaml");
    assert_int_equal(tosca_csar_read(o.c, "b/c.txt", &data, &n), 0);
    assert_string_equal(data, "c");
    assert_string_equal(tosca_csar_file_path(o.c, 1), "b/c.txt");
    closed(&o);
    free(buf);
    check_pairs(dup, ORC_ETOSCA, "csar-duplicate", "./a.yaml");
}

/* Names libzip will not write: patched in the local header and the central directory. The
 * name is not ASCII, so that it is flagged UTF-8: an unflagged name is CP437, where every
 * byte but NUL is a printable character. */
static void patched_name(const char *to, int rc, const char *code, const char *what)
{
    const char *const pairs[] = {"main.yaml", MAIN_YAML, "\xc3\xa9vilXname.yaml", "x", NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    assert_int_equal(patch_all(buf, len, "vilXname", to, 8), 2);
    open_buf(&o, buf, len);
    expect(&o, rc, code, what);
    closed(&o);
    free(buf);
}

static void nul_in_name(void **state)
{
    (void)state;
    /* libzip itself would turn the NUL into a space: the raw scan catches it */
    patched_name("vil\0name", ORC_ETOSCA, "csar-path", "NUL byte");
    /* libzip refuses control characters and bad UTF-8 in a UTF-8 name */
    patched_name("vil\aname", ORC_EFORMAT, "csar-bad-zip", "inconsistent");
    patched_name("vil\xffname", ORC_EFORMAT, "csar-bad-zip", "inconsistent");
}

static void symlink_entry(void **state)
{
    zbuild_t b;
    opened_t o;
    size_t len;
    char *buf;
    zip_uint64_t i;

    (void)state;
    zb_begin(&b);
    zb_str(&b, "main.yaml", MAIN_YAML);
    i = zb_str(&b, "link.yaml", "/etc/passwd");
    assert_int_equal(zip_file_set_external_attributes(b.za, i, 0, ZIP_OPSYS_UNIX, (0120777u) << 16),
                     0);
    buf = zb_end(&b, &len);
    open_buf(&o, buf, len);
    expect(&o, ORC_ETOSCA, "csar-symlink", "link.yaml");
    closed(&o);
    free(buf);
}

static void encrypted_entry(void **state)
{
    zbuild_t b;
    opened_t o;
    size_t len;
    char *buf;
    zip_uint64_t i;

    (void)state;
    if (!zip_encryption_method_supported(ZIP_EM_AES_128, 1))
        skip();
    zb_begin(&b);
    zb_str(&b, "main.yaml", MAIN_YAML);
    i = zb_str(&b, "secret.yaml", "password: hunter2\n");
    assert_int_equal(zip_file_set_encryption(b.za, i, ZIP_EM_AES_128, "pw"), 0);
    buf = zb_end(&b, &len);
    open_buf(&o, buf, len);
    expect(&o, ORC_ETOSCA, "csar-encrypted", "secret.yaml");
    closed(&o);
    free(buf);
}

/* ---- limits and zip bombs ------------------------------------------------------ */

/* An archive with main.yaml and one big file compressed at level 9. */
static char *big_zip(const char *name, const void *data, size_t n, size_t *len)
{
    zbuild_t b;
    zip_uint64_t i;

    zb_begin(&b);
    zb_str(&b, "main.yaml", MAIN_YAML);
    i = zb_add(&b, name, data, n);
    assert_int_equal(zip_set_file_compression(b.za, i, ZIP_CM_DEFLATE, 9), 0);
    return zb_end(&b, len);
}

/* Makes the second entry of a big_zip() archive claim 100 bytes uncompressed, in its local
 * header and in its central directory record alike. */
static void lie_about_size(char *buf, size_t len)
{
    char *lfh = find(buf + 4, len - 4, "PK\x03\x04", 4), *cd;

    assert_non_null(lfh);
    assert_non_null(find(lfh, 64, "blob.bin", 8));
    cd = find(buf, len, "PK\x01\x02", 4);
    assert_non_null(cd);
    cd = find(cd + 4, (size_t)(buf + len - cd - 4), "PK\x01\x02", 4);
    assert_non_null(cd);
    memcpy(lfh + 22, "\x64\0\0\0", 4);
    memcpy(cd + 24, "\x64\0\0\0", 4);
}

static void zip_bomb(void **state)
{
    size_t n = 50 * MIB, len;
    char *zeros = calloc(1, n), *buf;
    tosca_limits_t lim = {.max_csar_unpacked = 2 * MIB, .max_csar_bytes = 0};
    opened_t o;

    (void)state;
    assert_non_null(zeros);
    buf = big_zip("blob.bin", zeros, n, &len);
    free(zeros);
    assert_true(len < MIB);
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "max_csar_unpacked");
    closed(&o);
    lim.max_csar_unpacked = 0; /* default 256 MiB: the ratio check stops it */
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "compressed more than 1000:1");
    closed(&o);
    lim.max_csar_unpacked = 2 * MIB; /* the header lies: decompressing stops at the limit */
    lie_about_size(buf, len);
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "max_csar_unpacked");
    closed(&o);
    free(buf);
}

/* The header says 100 bytes; the data is 5 MiB: counting what comes out stops it. */
static void lying_size_header(void **state)
{
    size_t n = 5 * MIB, len;
    char *data = noise(n), *buf;
    tosca_limits_t lim = {.max_csar_unpacked = 1 * MIB};
    opened_t o;

    (void)state;
    buf = big_zip("blob.bin", data, n, &len);
    free(data);
    lie_about_size(buf, len);
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "max_csar_unpacked");
    closed(&o);
    free(buf);
}

static void yaml_file_limit(void **state)
{
    size_t n = 5 * MIB, len;
    char *data = noise(n), *buf;
    tosca_limits_t lim = {0};
    opened_t o;

    (void)state;
    buf = big_zip("big.yaml", data, n, &len);
    open_lim(&o, buf, len, &lim, false); /* default max_file_bytes: 4 MiB */
    expect(&o, ORC_ELIMIT, "csar-limit", "max_file_bytes");
    closed(&o);
    free(buf);
    buf = big_zip("big.bin", data, n, &len); /* other files: only the total counts */
    open_lim(&o, buf, len, &lim, false);
    expect_ok(&o);
    closed(&o);
    free(buf);
    free(data);
}

static void too_many_entries(void **state)
{
    tosca_limits_t lim = {.max_csar_entries = 10};
    char names[11][24];
    zbuild_t b;
    opened_t o;
    size_t len;
    char *buf;

    (void)state;
    zb_begin(&b);
    for (int i = 0; i < 11; i++) {
        snprintf(names[i], sizeof(names[i]), "f%d.txt", i);
        zb_str(&b, names[i], "x");
    }
    zb_str(&b, "main.yaml", MAIN_YAML);
    buf = zb_end(&b, &len);
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "max_csar_entries");
    closed(&o);
    lim.max_csar_entries = 12;
    open_lim(&o, buf, len, &lim, false);
    expect_ok(&o);
    closed(&o);
    lim.max_csar_bytes = len - 1;
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "max_csar_bytes");
    closed(&o);
    /* the end record's count is checked before libzip sets up that many entries */
    lim = (tosca_limits_t){.max_csar_entries = 0};
    memcpy(buf + len - 22 + 8, "\xfe\xff\xfe\xff", 4);
    open_lim(&o, buf, len, &lim, false);
    expect(&o, ORC_ELIMIT, "csar-limit", "65534 entries");
    closed(&o);
    free(buf);
}

/* ---- broken archives ------------------------------------------------------- */

static void not_a_zip(void **state)
{
    static const char text[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n";
    opened_t o;

    (void)state;
    assert_false(tosca_csar_is_zip(text, sizeof(text) - 1));
    assert_false(tosca_csar_is_zip("PK", 2));
    open_buf(&o, text, sizeof(text) - 1);
    expect(&o, ORC_EFORMAT, "csar-bad-zip", "Not a zip archive");
    closed(&o);
    open_buf(&o, "", 0);
    expect(&o, ORC_EFORMAT, "csar-bad-zip", NULL);
    closed(&o);
}

static void truncated_zip(void **state)
{
    const char *const pairs[] = {"TOSCA-Metadata/TOSCA.meta", META_11, "Definitions/main.yaml",
                                 MAIN_YAML, NULL};
    opened_t o;
    size_t len;
    char *buf = zip_of(&len, pairs);

    (void)state;
    assert_true(tosca_csar_is_zip(buf, len / 2));
    open_buf(&o, buf, len / 2);
    expect(&o, ORC_EFORMAT, "csar-bad-zip", NULL);
    closed(&o);
    open_buf(&o, buf, len - 1); /* the end record is cut short */
    expect(&o, ORC_EFORMAT, "csar-bad-zip", NULL);
    closed(&o);
    free(buf);
}

static void corrupt_data(void **state)
{
    size_t n = 64 * 1024, len;
    char *data = noise(n), *buf;
    opened_t o;

    (void)state;
    buf = big_zip("blob.bin", data, n, &len);
    free(data);
    buf[len / 2] ^= 0x55; /* inside the compressed data: a CRC or inflate error */
    open_buf(&o, buf, len);
    expect(&o, ORC_EFORMAT, "csar-bad-zip", "blob.bin");
    closed(&o);
    free(buf);
}

static void empty_archive(void **state)
{
    static const char eocd[22] = "PK\x05\x06";
    opened_t o;

    (void)state;
    assert_true(tosca_csar_is_zip(eocd, sizeof(eocd)));
    open_buf(&o, eocd, sizeof(eocd));
    expect(&o, ORC_ETOSCA, "csar-no-entry", NULL);
    closed(&o);
}

/* ---- out of memory ------------------------------------------------------------ */

static long oom_left;

static void *oom_malloc(size_t n)
{
    return oom_left-- > 0 ? malloc(n) : NULL;
}

static void *oom_realloc(void *p, size_t n)
{
    return oom_left-- > 0 ? realloc(p, n) : NULL;
}

static void *oom_calloc(size_t n, size_t size)
{
    return oom_left-- > 0 ? calloc(n, size) : NULL;
}

/* Fails the k-th allocation for k = 0, 1, ... until the open gets through: every failure
 * must be ORC_ENOMEM and leak nothing (the sanitizer build checks). */
static void oom_loop(const char *const *pairs, int final_rc)
{
    size_t len;
    char *buf = zip_of(&len, pairs);
    long k;

    for (k = 0; k < 100000; k++) {
        opened_t o;
        tosca_diags_init(&o.d, false);
        oom_left = k;
        assert_int_equal(tosca_replace_allocator(oom_malloc, oom_realloc, oom_calloc, free), 0);
        o.rc = tosca_csar_open("t.csar", buf, len, NULL, &o.c, &o.d);
        tosca_replace_allocator(NULL, NULL, NULL, NULL);
        if (o.rc != ORC_ENOMEM) {
            assert_int_equal(o.rc, final_rc);
            closed(&o);
            break;
        }
        assert_null(o.c);
        closed(&o);
    }
    assert_true(k > 5);
    free(buf);
}

static void oom(void **state)
{
    const char *const good[] = {"TOSCA-Metadata/TOSCA.meta",
                                "TOSCA-Meta-File-Version: 2.0\nCSAR-Version: 2.0\n"
                                "Created-By: x\n y\nEntry-Definitions: ./d/main.yaml\n"
                                "Other-Definitions: d/a.yaml\n",
                                "d/main.yaml",
                                MAIN_YAML,
                                "d/a.yaml",
                                "a",
                                NULL};
    const char *const bad[] = {"a.yaml", "1", "b.yaml", "2", "../c", "3", NULL};

    (void)state;
    oom_loop(good, 0);
    oom_loop(bad, ORC_ETOSCA);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meta_entry),
        cmocka_unit_test(meta_csar2_other_definitions),
        cmocka_unit_test(meta_missing_versions),
        cmocka_unit_test(meta_missing_target),
        cmocka_unit_test(meta_bad_paths),
        cmocka_unit_test(meta_syntax),
        cmocka_unit_test(root_yaml),
        cmocka_unit_test(root_yaml_two),
        cmocka_unit_test(bad_names),
        cmocka_unit_test(all_bad_names_reported),
        cmocka_unit_test(normalised_names),
        cmocka_unit_test(nul_in_name),
        cmocka_unit_test(symlink_entry),
        cmocka_unit_test(encrypted_entry),
        cmocka_unit_test(zip_bomb),
        cmocka_unit_test(lying_size_header),
        cmocka_unit_test(yaml_file_limit),
        cmocka_unit_test(too_many_entries),
        cmocka_unit_test(not_a_zip),
        cmocka_unit_test(truncated_zip),
        cmocka_unit_test(corrupt_data),
        cmocka_unit_test(empty_archive),
        cmocka_unit_test(oom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
