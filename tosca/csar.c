/*
 * CSAR archives: a zip file held in memory is opened with libzip, every entry
 * is checked (name, link, encryption) and read into memory while the bytes
 * actually decompressed are counted against the limits (declared sizes are
 * never trusted: zip bombs stop at the limit), and the entry definitions are
 * found from TOSCA-Metadata/TOSCA.meta or from the single YAML file in the
 * archive root. libzip turns NUL bytes in entry names into spaces, so the
 * central directory's raw names are scanned here for NULs before that.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>

#include <zip.h>

#include "csar.h"

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define CSAR_DEFAULT_BYTES (64 * MIB)
#define CSAR_DEFAULT_ENTRIES ((size_t)10000)
#define CSAR_DEFAULT_UNPACKED (256 * MIB)
#define CSAR_DEFAULT_FILE (4 * MIB)
#define CSAR_RATIO_MIN_SIZE MIB /* the ratio check applies above this size */
#define CSAR_RATIO_MAX 1000     /* uncompressed : compressed */
#define CSAR_READ_HINT_MAX MIB  /* first allocation, whatever the header declares */
#define CSAR_LIST_MAX 8         /* names listed in one message */
#define META_PATH "TOSCA-Metadata/TOSCA.meta"
#define META_DIR "TOSCA-Metadata/"

#define UNIX_IFMT 0170000u
#define UNIX_IFLNK 0120000u

struct csar_file {
    char *path; /* normalised */
    char *data; /* NUL-terminated */
    size_t len;
};

struct csar_kv {
    char *key;
    char *value;
};

struct tosca_csar {
    char *name;
    struct csar_file *files;
    size_t nfiles;
    size_t files_cap;
    tosca_hmap_t index; /* path -> file index + 1; keys borrowed from files[] */
    struct csar_kv *meta;
    size_t nmeta;
    size_t meta_cap;
    char *entry;
    char **others;
    size_t nothers;
    size_t others_cap;
};

struct csar_limits {
    size_t bytes;
    size_t entries;
    size_t unpacked;
    size_t file;
};

/* State of one tosca_csar_open() call. */
struct csar_open {
    struct tosca_csar *c;
    tosca_diags_t *d;
    zip_t *za;
    struct csar_limits lim;
    size_t unpacked; /* bytes decompressed so far, all entries */
};

/* ---- diagnostics ---------------------------------------------------------- */

static int csar_fail(struct csar_open *op, int rc, const char *code, const char *fmt, ...)
    TOSCA_PRINTF(4, 5);
static int csar_defect(struct csar_open *op, const char *code, const char *fmt, ...)
    TOSCA_PRINTF(3, 4);

static int csar_vreport(struct csar_open *op, tosca_severity_t sev, int rc, const char *code,
                        const char *fmt, va_list ap)
{
    tosca_mark_t mark = {op->c->name, 0, 0};
    int r = tosca_diag_vadd(op->d, sev, &mark, code, fmt, ap);

    return r < 0 ? r : rc;
}

/* Records an error and returns rc (ORC_ENOMEM if the note could not be stored). */
static int csar_fail(struct csar_open *op, int rc, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rc = csar_vreport(op, TOSCA_SEV_ERROR, rc, code, fmt, ap);
    va_end(ap);
    return rc;
}

/* A defect: a warning that returns 0, or in strict mode an error returning ORC_ETOSCA. */
static int csar_defect(struct csar_open *op, const char *code, const char *fmt, ...)
{
    bool strict = op->d->strict;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = csar_vreport(op, strict ? TOSCA_SEV_ERROR : TOSCA_SEV_WARNING, strict ? ORC_ETOSCA : 0,
                      code, fmt, ap);
    va_end(ap);
    return rc;
}

/* The one place libzip error codes become ours. */
static int csar_zip_rc(int zip_err)
{
    return zip_err == ZIP_ER_MEMORY ? ORC_ENOMEM : ORC_EFORMAT;
}

/* ---- names ---------------------------------------------------------------- */

static bool csar_has_ext(const char *path, const char *ext)
{
    size_t n = strlen(path), e = strlen(ext);

    return n > e && strcasecmp(path + n - e, ext) == 0;
}

static bool csar_is_yaml(const char *path)
{
    return csar_has_ext(path, ".yaml") || csar_has_ext(path, ".yml");
}

static const char name_not_utf8[] = "is not valid UTF-8 or has a control character";

/* What is wrong with a raw entry name before normalisation, or NULL. */
static const char *csar_name_problem(const char *raw, size_t n)
{
    size_t bad_at;

    if (n == 0)
        return "is empty";
    if (tosca_utf8_check((const unsigned char *)raw, n, &bad_at) < 0)
        return name_not_utf8;
    if (memchr(raw, '\\', n))
        return "has a backslash";
    if (raw[0] == '/')
        return "is an absolute path";
    if (((raw[0] | 0x20) >= 'a' && (raw[0] | 0x20) <= 'z') && raw[1] == ':')
        return "starts with a drive letter";
    return NULL;
}

/* Normalises an archive path ("./a//b" -> "a/b"). Returns 0 with *out (NULL for a
 * directory: a name ending in '/'), ORC_ETOSCA with *why, or ORC_ENOMEM. */
static int csar_normalise(const char *raw, char **out, const char **why)
{
    size_t n = strlen(raw);
    tosca_strbuf_t b;

    *out = NULL;
    *why = csar_name_problem(raw, n);
    if (*why)
        return ORC_ETOSCA;
    tosca_strbuf_init(&b);
    for (const char *p = raw; *p;) {
        size_t k = strcspn(p, "/");
        if (k == 2 && p[0] == '.' && p[1] == '.') {
            tosca_strbuf_fini(&b);
            *why = "has a '..' component";
            return ORC_ETOSCA;
        }
        if (k > 0 && !(k == 1 && p[0] == '.')) {
            if (b.len > 0)
                tosca_strbuf_append(&b, "/", 1);
            tosca_strbuf_append(&b, p, k);
        }
        p += k + (p[k] == '/');
    }
    if (b.oom) {
        tosca_strbuf_fini(&b);
        return ORC_ENOMEM;
    }
    if (raw[n - 1] == '/')
        tosca_strbuf_fini(&b); /* a directory */
    else if (b.len == 0)
        *why = "names no file";
    else
        *out = tosca_strbuf_take(&b);
    return *why ? ORC_ETOSCA : 0;
}

/* ---- raw central directory: entry count and NUL bytes in names -------------- */

/* Where the end records put the central directory. */
struct raw_cd {
    uint64_t off;
    uint64_t size;
    uint64_t count; /* entries */
};

static uint32_t rd16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t rd32(const unsigned char *p)
{
    return rd16(p) | rd16(p + 2) << 16;
}

static uint64_t rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* The end of central directory record: the last signature whose comment fits. */
static const unsigned char *raw_eocd(const unsigned char *p, size_t len)
{
    size_t lo = len > 22 + 0xFFFF ? len - 22 - 0xFFFF : 0;

    if (len < 22)
        return NULL;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (memcmp(p + i, "PK\x05\x06", 4) == 0 && i + 22 + rd16(p + i + 20) <= len)
            return p + i;
    return NULL;
}

/* Finds the central directory (Zip64 too); false if the records do not add up. */
static bool raw_find_cd(const unsigned char *p, size_t len, struct raw_cd *cd)
{
    const unsigned char *e = raw_eocd(p, len);

    if (e == NULL)
        return false;
    cd->count = rd16(e + 10);
    cd->size = rd32(e + 12);
    cd->off = rd32(e + 16);
    if (cd->off == 0xFFFFFFFFu || cd->size == 0xFFFFFFFFu || cd->count == 0xFFFFu) {
        uint64_t z;
        if (e - p < 20 || memcmp(e - 20, "PK\x06\x07", 4) != 0)
            return false;
        z = rd64(e - 20 + 8);
        if (z > len || len - z < 56 || memcmp(p + z, "PK\x06\x06", 4) != 0)
            return false;
        cd->count = rd64(p + z + 32);
        cd->size = rd64(p + z + 40);
        cd->off = rd64(p + z + 48);
    }
    return cd->off <= len && cd->size <= len - cd->off;
}

static int csar_raw_nul(struct csar_open *op, uint64_t k, const unsigned char *name, size_t n)
{
    const unsigned char *nul = memchr(name, 0, n);
    size_t bad_at;

    if (nul == NULL)
        return 0;
    if (tosca_utf8_check(name, (size_t)(nul - name), &bad_at) < 0)
        return csar_fail(op, ORC_ETOSCA, "csar-path",
                         "entry #%" PRIu64 " has a NUL byte in its name", k);
    return csar_fail(op, ORC_ETOSCA, "csar-path", "entry '%.*s' has a NUL byte in its name",
                     (int)(nul - name), (const char *)name);
}

/* Scans the central directory's raw names for NUL bytes (libzip hides them). */
static int csar_raw_names(struct csar_open *op, const unsigned char *p, const struct raw_cd *cd)
{
    const unsigned char *q = p + cd->off, *end = q + cd->size;
    int rc = 0;

    for (uint64_t k = 0; end - q >= 46 && memcmp(q, "PK\x01\x02", 4) == 0; k++) {
        size_t nlen = rd16(q + 28), rest = nlen + rd16(q + 30) + rd16(q + 32);
        int r;
        if ((size_t)(end - q) - 46 < rest)
            break;
        r = csar_raw_nul(op, k, q + 46, nlen);
        if (r == ORC_ENOMEM)
            return r;
        rc = rc < 0 ? rc : r;
        q += 46 + rest;
    }
    return rc;
}

/* ---- reading entries ----------------------------------------------------- */

static int csar_over(struct csar_open *op, const char *path, size_t cap)
{
    if (cap < op->lim.unpacked - op->unpacked) /* the per-file limit was the smaller */
        return csar_fail(op, ORC_ELIMIT, "csar-limit",
                         "'%s' is larger than %zu bytes (max_file_bytes)", path, cap);
    return csar_fail(op, ORC_ELIMIT, "csar-limit",
                     "the archive unpacks to more than %zu bytes (max_csar_unpacked) at '%s'",
                     op->lim.unpacked, path);
}

/* True when size bytes came out of comp compressed bytes at more than 1000:1. */
static bool csar_ratio_bad(size_t size, const zip_stat_t *st)
{
    if (size <= CSAR_RATIO_MIN_SIZE)
        return false;
    if (!(st->valid & ZIP_STAT_COMP_SIZE))
        return true;
    return st->comp_size < UINT64_MAX / CSAR_RATIO_MAX &&
           (uint64_t)size > st->comp_size * CSAR_RATIO_MAX;
}

/* Decompresses into f->data, at most cap bytes, checking the ratio as it goes. */
static int csar_pump(struct csar_open *op, zip_file_t *zf, const zip_stat_t *st, size_t cap,
                     struct csar_file *f)
{
    char chunk[16 * KIB];
    size_t bcap = 0, hint = cap < CSAR_READ_HINT_MAX ? cap : CSAR_READ_HINT_MAX;

    if ((st->valid & ZIP_STAT_SIZE) && st->size < hint)
        hint = (size_t)st->size;
    if (tosca_grow(&f->data, &bcap, hint + 1, 1) < 0)
        return ORC_ENOMEM;
    for (;;) {
        zip_int64_t n = zip_fread(zf, chunk, sizeof(chunk));
        if (n < 0)
            return csar_fail(op, csar_zip_rc(zip_error_code_zip(zip_file_get_error(zf))),
                             "csar-bad-zip", "cannot read '%s': %s", f->path,
                             zip_file_strerror(zf));
        if (n == 0)
            break;
        if ((size_t)n > cap - f->len)
            return csar_over(op, f->path, cap);
        if (csar_ratio_bad(f->len + (size_t)n, st))
            return csar_fail(op, ORC_ELIMIT, "csar-limit",
                             "'%s' is compressed more than %d:1 (a zip bomb?)", f->path,
                             CSAR_RATIO_MAX);
        if (tosca_grow(&f->data, &bcap, f->len + (size_t)n + 1, 1) < 0)
            return ORC_ENOMEM;
        memcpy(f->data + f->len, chunk, (size_t)n);
        f->len += (size_t)n;
    }
    f->data[f->len] = '\0';
    return 0;
}

static int csar_read_file(struct csar_open *op, zip_uint64_t i, const zip_stat_t *st,
                          struct csar_file *f)
{
    size_t left = op->lim.unpacked - op->unpacked, cap = left;
    bool text = csar_is_yaml(f->path) || csar_has_ext(f->path, ".meta");
    zip_file_t *zf;
    int rc;

    if (text && op->lim.file < cap)
        cap = op->lim.file;
    if ((st->valid & ZIP_STAT_SIZE) && st->size > cap)
        return csar_over(op, f->path, cap); /* declared too big: no need to look */
    zf = zip_fopen_index(op->za, i, 0);
    if (zf == NULL)
        return csar_fail(op, csar_zip_rc(zip_error_code_zip(zip_get_error(op->za))), "csar-bad-zip",
                         "cannot open '%s': %s", f->path, zip_strerror(op->za));
    rc = csar_pump(op, zf, st, cap, f);
    zip_fclose(zf);
    if (rc == 0)
        op->unpacked += f->len;
    return rc;
}

/* Rejects links and encrypted entries. */
static int csar_check_kind(struct csar_open *op, zip_uint64_t i, const zip_stat_t *st)
{
    zip_uint8_t opsys;
    zip_uint32_t attr;

    if (zip_file_get_external_attributes(op->za, i, 0, &opsys, &attr) < 0)
        return csar_fail(op, ORC_EFORMAT, "csar-bad-zip", "entry '%s': %s", st->name,
                         zip_strerror(op->za));
    /* Unix mode in the high half; checked whatever the host system says */
    if (((attr >> 16) & UNIX_IFMT) == UNIX_IFLNK)
        return csar_fail(op, ORC_ETOSCA, "csar-symlink", "entry '%s' is a symbolic link", st->name);
    if ((st->valid & ZIP_STAT_ENCRYPTION_METHOD) && st->encryption_method != ZIP_EM_NONE)
        return csar_fail(op, ORC_ETOSCA, "csar-encrypted", "entry '%s' is encrypted", st->name);
    return 0;
}

/* Moves f into the archive's file list and index. */
static int csar_add_file(struct tosca_csar *c, struct csar_file *f)
{
    if (tosca_grow(&c->files, &c->files_cap, c->nfiles + 1, sizeof(*c->files)) < 0)
        return ORC_ENOMEM;
    if (tosca_hmap_put(&c->index, f->path, (void *)(uintptr_t)(c->nfiles + 1), NULL) < 0)
        return ORC_ENOMEM;
    c->files[c->nfiles++] = *f;
    memset(f, 0, sizeof(*f));
    return 0;
}

static int csar_load_one(struct csar_open *op, zip_uint64_t i)
{
    struct csar_file f = {NULL, NULL, 0};
    const char *why;
    zip_stat_t st;
    int rc;

    zip_stat_init(&st);
    if (zip_stat_index(op->za, i, 0, &st) < 0)
        return csar_fail(op, csar_zip_rc(zip_error_code_zip(zip_get_error(op->za))), "csar-bad-zip",
                         "entry #%" PRIu64 ": %s", (uint64_t)i, zip_strerror(op->za));
    rc = csar_normalise(st.name, &f.path, &why);
    if (rc == ORC_ETOSCA && why == name_not_utf8) /* not printable */
        return csar_fail(op, rc, "csar-path", "entry #%" PRIu64 "'s name %s", (uint64_t)i, why);
    if (rc == ORC_ETOSCA)
        return csar_fail(op, rc, "csar-path", "entry '%s' %s", st.name, why);
    if (rc == 0)
        rc = csar_check_kind(op, i, &st);
    if (rc < 0 || f.path == NULL)
        goto out_free; /* an error, or a directory: skipped */
    if (tosca_hmap_get(&op->c->index, f.path)) {
        rc = csar_fail(op, ORC_ETOSCA, "csar-duplicate", "entry '%s' is a second entry named '%s'",
                       st.name, f.path);
        goto out_free;
    }
    rc = csar_read_file(op, i, &st, &f);
    if (rc == 0)
        rc = csar_add_file(op->c, &f);
out_free:
    tosca_free(f.data);
    tosca_free(f.path);
    return rc;
}

static int csar_too_many(struct csar_open *op, uint64_t n)
{
    return csar_fail(op, ORC_ELIMIT, "csar-limit",
                     "the archive has %" PRIu64 " entries, more than %zu (max_csar_entries)", n,
                     op->lim.entries);
}

/* Reads every entry. Name and kind problems are all reported; anything else stops. */
static int csar_load_entries(struct csar_open *op)
{
    zip_int64_t n = zip_get_num_entries(op->za, 0);
    int rc = 0;

    if (n < 0 || (zip_uint64_t)n > op->lim.entries)
        return csar_too_many(op, (uint64_t)n);
    for (zip_uint64_t i = 0; i < (zip_uint64_t)n; i++) {
        int r = csar_load_one(op, i);
        if (r < 0 && rc == 0)
            rc = r;
        if (r < 0 && r != ORC_ETOSCA)
            return r;
    }
    return rc;
}

/* ---- TOSCA.meta ------------------------------------------------------------ */

static const struct csar_kv *meta_find(const struct tosca_csar *c, const char *key, size_t n)
{
    for (size_t i = 0; i < c->nmeta; i++)
        if (strlen(c->meta[i].key) == n && memcmp(c->meta[i].key, key, n) == 0)
            return &c->meta[i];
    return NULL;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

static int meta_store(struct tosca_csar *c, const char *key, size_t klen, const char *val,
                      size_t vlen)
{
    struct csar_kv kv = {tosca_strndup(key, klen), tosca_strndup(val, vlen)};

    if (kv.key == NULL || kv.value == NULL ||
        tosca_grow(&c->meta, &c->meta_cap, c->nmeta + 1, sizeof(*c->meta)) < 0) {
        tosca_free(kv.key);
        tosca_free(kv.value);
        return ORC_ENOMEM;
    }
    c->meta[c->nmeta++] = kv;
    return 0;
}

/* A continuation line extends the last value of the first block: as in a JAR manifest,
 * the text after its one leading space is appended as it is (trailing blanks dropped). */
static int meta_continue(struct tosca_csar *c, const char *s, size_t n)
{
    struct csar_kv *kv = &c->meta[c->nmeta - 1];
    size_t old = strlen(kv->value);
    char *v;

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    v = tosca_realloc(kv->value, old + n + 1);
    if (v == NULL)
        return ORC_ENOMEM;
    memcpy(v + old, s, n);
    v[old + n] = '\0';
    kv->value = v;
    return 0;
}

/* One non-blank line: "Key: value", or a continuation. Only the first block is kept. */
static int meta_line(struct csar_open *op, bool first, const char *line, size_t n, size_t lineno,
                     bool *have_key)
{
    const char *colon = memchr(line, ':', n), *val;
    size_t klen, vlen;

    if (line[0] == ' ' || line[0] == '\t') {
        if (!*have_key)
            return csar_fail(op, ORC_ETOSCA, "csar-meta",
                             META_PATH ":%zu: continuation line with no key before it", lineno);
        return first ? meta_continue(op->c, line + 1, n - 1) : 0;
    }
    klen = colon ? (size_t)(colon - line) : 0;
    if (klen == 0 || memchr(line, ' ', klen) || memchr(line, '\t', klen))
        return csar_fail(op, ORC_ETOSCA, "csar-meta",
                         META_PATH ":%zu: expected 'Key: value', found '%.*s'", lineno, (int)n,
                         line);
    *have_key = true;
    if (!first)
        return 0;
    if (meta_find(op->c, line, klen))
        return csar_fail(op, ORC_ETOSCA, "csar-meta", META_PATH ":%zu: duplicate key '%.*s'",
                         lineno, (int)klen, line);
    val = colon + 1;
    vlen = n - klen - 1;
    trim(&val, &vlen);
    return meta_store(op->c, line, klen, val, vlen);
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    return true;
}

/* Blocks of "Key: value" lines separated by blank lines; all problems reported. */
static int meta_parse(struct csar_open *op, const struct csar_file *f)
{
    size_t pos = 0, lineno = 0, block = 0, bad_at;
    bool in_block = false, have_key = false;
    int rc = 0;

    if (tosca_utf8_check((const unsigned char *)f->data, f->len, &bad_at) < 0)
        return csar_fail(op, ORC_ETOSCA, "csar-meta",
                         META_PATH ": bad UTF-8 or a control character at byte %zu", bad_at);
    while (pos < f->len) {
        const char *line = f->data + pos, *nl = memchr(line, '\n', f->len - pos);
        size_t n = nl ? (size_t)(nl - line) : f->len - pos;
        pos += n + (nl != NULL);
        lineno++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (blank(line, n)) {
            block += in_block;
            in_block = have_key = false;
            continue;
        }
        in_block = true;
        int r = meta_line(op, block == 0, line, n, lineno, &have_key);
        if (r == ORC_ENOMEM)
            return r;
        if (r < 0 && rc == 0)
            rc = r;
    }
    return rc;
}

/* The format and archive version keys: missing or unknown ones are defects. */
static int meta_versions(struct csar_open *op)
{
    static const char *const keys[] = {"TOSCA-Meta-File-Version", "CSAR-Version", "Created-By"};
    int rc = 0;

    for (size_t i = 0; i < TOSCA_ARRAY_LEN(keys); i++) {
        const char *v = tosca_csar_meta(op->c, keys[i]);
        int r = 0;
        if (v == NULL || *v == '\0')
            r = csar_defect(op, "csar-meta", META_PATH " has no %s", keys[i]);
        else if (i < 2 && strcmp(v, "1.0") != 0 && strcmp(v, "1.1") != 0 && strcmp(v, "2.0") != 0)
            r = csar_defect(op, "csar-meta", META_PATH ": unknown %s '%s'", keys[i], v);
        if (r == ORC_ENOMEM)
            return r;
        if (r < 0)
            rc = r;
    }
    return rc;
}

/* Normalises a path named by a TOSCA.meta key and checks that the file exists. */
static int meta_path(struct csar_open *op, const char *key, const char *value, char **out)
{
    const char *why;
    int rc = csar_normalise(value, out, &why);

    if (rc == ORC_ENOMEM)
        return rc;
    if (rc < 0 || *out == NULL)
        return csar_fail(op, ORC_ETOSCA, "csar-path", META_PATH ": %s '%s' %s", key, value,
                         *out == NULL && rc == 0 ? "names a directory" : why);
    if (tosca_hmap_get(&op->c->index, *out) == NULL)
        return csar_fail(op, ORC_ETOSCA, "csar-no-entry",
                         META_PATH ": %s '%s' is not a file in the archive", key, value);
    return 0;
}

/* Other-Definitions: paths separated by spaces. */
static int meta_others(struct csar_open *op, const char *list)
{
    struct tosca_csar *c = op->c;
    char *copy = tosca_strdup(list), *save = NULL;
    int rc = copy ? 0 : ORC_ENOMEM;

    for (char *t = copy ? strtok_r(copy, " \t", &save) : NULL; t && rc >= 0;
         t = strtok_r(NULL, " \t", &save)) {
        char *path = NULL;
        rc = meta_path(op, "Other-Definitions", t, &path);
        if (rc == 0 &&
            tosca_grow(&c->others, &c->others_cap, c->nothers + 1, sizeof(*c->others)) < 0)
            rc = ORC_ENOMEM;
        if (rc == 0) {
            c->others[c->nothers++] = path;
            path = NULL;
        }
        tosca_free(path);
    }
    tosca_free(copy);
    return rc;
}

static int meta_load(struct csar_open *op, const struct csar_file *f)
{
    const char *entry, *others;
    int rc = meta_parse(op, f);

    if (rc < 0)
        return rc;
    rc = meta_versions(op);
    if (rc < 0)
        return rc;
    entry = tosca_csar_meta(op->c, "Entry-Definitions");
    if (entry == NULL || *entry == '\0')
        return csar_fail(op, ORC_ETOSCA, "csar-no-entry", META_PATH " has no Entry-Definitions");
    rc = meta_path(op, "Entry-Definitions", entry, &op->c->entry);
    if (rc < 0)
        return rc;
    others = tosca_csar_meta(op->c, "Other-Definitions");
    return others ? meta_others(op, others) : 0;
}

/* ---- finding the entry definitions ---------------------------------------- */

/* Without TOSCA.meta: the one .yaml/.yml file in the archive root. */
static int csar_root_yaml(struct csar_open *op)
{
    struct tosca_csar *c = op->c;
    size_t found = 0, first = 0;
    tosca_strbuf_t names;
    int rc;

    tosca_strbuf_init(&names);
    for (size_t i = 0; i < c->nfiles; i++) {
        const char *p = c->files[i].path;
        if (strchr(p, '/') || !csar_is_yaml(p))
            continue;
        if (found++ == 0)
            first = i;
        if (found <= CSAR_LIST_MAX)
            tosca_strbuf_printf(&names, "%s'%s'", found > 1 ? ", " : "", p);
    }
    if (found == 1) {
        c->entry = tosca_strdup(c->files[first].path);
        rc = c->entry ? 0 : ORC_ENOMEM;
    } else if (found == 0) {
        rc = csar_fail(op, ORC_ETOSCA, "csar-no-entry",
                       "no " META_PATH " and no .yaml or .yml file in the archive root");
    } else {
        rc = names.oom ? ORC_ENOMEM
                       : csar_fail(op, ORC_ETOSCA, "csar-ambiguous-entry",
                                   "no " META_PATH " and %zu YAML files in the archive root "
                                   "(%s%s): cannot tell which is the entry definitions",
                                   found, names.s, found > CSAR_LIST_MAX ? ", ..." : "");
    }
    tosca_strbuf_fini(&names);
    return rc;
}

static int csar_find_entry(struct csar_open *op)
{
    struct tosca_csar *c = op->c;
    uintptr_t meta = (uintptr_t)tosca_hmap_get(&c->index, META_PATH);

    if (meta)
        return meta_load(op, &c->files[meta - 1]);
    for (size_t i = 0; i < c->nfiles; i++)
        if (strncmp(c->files[i].path, META_DIR, strlen(META_DIR)) == 0)
            return csar_fail(op, ORC_ETOSCA, "csar-meta",
                             "the archive has a " META_DIR " directory but no " META_PATH);
    return csar_root_yaml(op);
}

/* ---- opening -------------------------------------------------------------- */

static void csar_limits(const tosca_limits_t *lim, struct csar_limits *l)
{
    l->bytes = lim && lim->max_csar_bytes ? lim->max_csar_bytes : CSAR_DEFAULT_BYTES;
    l->entries = lim && lim->max_csar_entries ? lim->max_csar_entries : CSAR_DEFAULT_ENTRIES;
    l->unpacked = lim && lim->max_csar_unpacked ? lim->max_csar_unpacked : CSAR_DEFAULT_UNPACKED;
    l->file = lim && lim->max_file_bytes ? lim->max_file_bytes : CSAR_DEFAULT_FILE;
}

/* Opens the archive with libzip, after the checks that keep libzip's own work bounded: the
 * archive's size, and the entry count of its end record (libzip sets up every entry). */
static int csar_open_zip(struct csar_open *op, const void *data, size_t len)
{
    struct raw_cd cd;
    bool have_cd = raw_find_cd(data, len, &cd);
    zip_source_t *src;
    zip_error_t ze;
    int rc;

    if (len > op->lim.bytes)
        return csar_fail(op, ORC_ELIMIT, "csar-limit",
                         "the archive has %zu bytes, more than %zu (max_csar_bytes)", len,
                         op->lim.bytes);
    if (len == 0)
        return csar_fail(op, ORC_EFORMAT, "csar-bad-zip", "not a zip archive: it is empty");
    if (have_cd && cd.count > op->lim.entries)
        return csar_too_many(op, cd.count);
    zip_error_init(&ze);
    src = zip_source_buffer_create(data, len, 0, &ze);
    if (src) {
        op->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
        if (op->za == NULL)
            zip_source_free(src);
    }
    if (op->za == NULL) {
        rc = csar_fail(op, csar_zip_rc(zip_error_code_zip(&ze)), "csar-bad-zip",
                       "not a readable zip archive: %s", zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    if (!have_cd) /* libzip found it, but not where the end records say */
        return csar_fail(op, ORC_EFORMAT, "csar-bad-zip", "cannot locate the central directory");
    return csar_raw_names(op, data, &cd);
}

int tosca_csar_open(const char *name, const void *data, size_t len, const tosca_limits_t *lim,
                    tosca_csar_t **out, tosca_diags_t *diags)
{
    struct csar_open op = {.d = diags};
    int rc;

    *out = NULL;
    csar_limits(lim, &op.lim);
    op.c = tosca_calloc(1, sizeof(*op.c));
    if (op.c == NULL)
        return ORC_ENOMEM;
    tosca_hmap_init(&op.c->index);
    op.c->name = tosca_strdup(name ? name : "");
    if (op.c->name == NULL) {
        rc = ORC_ENOMEM;
        goto out_free_csar;
    }
    rc = csar_open_zip(&op, data, len);
    if (rc == 0)
        rc = csar_load_entries(&op);
    if (rc == 0)
        rc = csar_find_entry(&op);
    if (op.za)
        zip_discard(op.za);
    if (rc < 0)
        goto out_free_csar;
    *out = op.c; /* ownership moves to the caller */
    return 0;

out_free_csar:
    tosca_csar_free(op.c);
    return rc;
}

/* ---- access ------------------------------------------------------------------ */

bool tosca_csar_is_zip(const void *data, size_t len)
{
    return data && len >= 4 &&
           (memcmp(data, "PK\x03\x04", 4) == 0 || memcmp(data, "PK\x05\x06", 4) == 0);
}

const char *tosca_csar_entry(const tosca_csar_t *c)
{
    return c->entry;
}

int tosca_csar_read(const tosca_csar_t *c, const char *path, const char **data, size_t *len)
{
    uintptr_t i = (uintptr_t)tosca_hmap_get(&c->index, path);

    if (i == 0)
        return ORC_ENOTFOUND;
    *data = c->files[i - 1].data;
    *len = c->files[i - 1].len;
    return 0;
}

const char *tosca_csar_meta(const tosca_csar_t *c, const char *key)
{
    const struct csar_kv *kv = meta_find(c, key, strlen(key));

    return kv ? kv->value : NULL;
}

size_t tosca_csar_other_count(const tosca_csar_t *c)
{
    return c->nothers;
}

const char *tosca_csar_other(const tosca_csar_t *c, size_t i)
{
    return i < c->nothers ? c->others[i] : NULL;
}

size_t tosca_csar_file_count(const tosca_csar_t *c)
{
    return c->nfiles;
}

const char *tosca_csar_file_path(const tosca_csar_t *c, size_t i)
{
    return i < c->nfiles ? c->files[i].path : NULL;
}

void tosca_csar_free(tosca_csar_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nfiles; i++) {
        tosca_free(c->files[i].path);
        tosca_free(c->files[i].data);
    }
    tosca_free(c->files);
    tosca_hmap_fini(&c->index);
    for (size_t i = 0; i < c->nmeta; i++) {
        tosca_free(c->meta[i].key);
        tosca_free(c->meta[i].value);
    }
    tosca_free(c->meta);
    for (size_t i = 0; i < c->nothers; i++)
        tosca_free(c->others[i]);
    tosca_free(c->others);
    tosca_free(c->entry);
    tosca_free(c->name);
    tosca_free(c);
}
