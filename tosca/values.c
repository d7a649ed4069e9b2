/*
 * Values and constraints: the TOSCA built-in value types (names, scalar units,
 * versions, timestamps), 1.x `constraints:` clauses (parsed here into arena
 * arrays), the check of a YAML value against a property / parameter schema
 * (built-in type, data type field by field, list and map entries, then every
 * constraint and 2.0 `validation` clause), and recognising function calls.
 *
 * Nothing here allocates except the constraint array (in the caller's arena)
 * and the C library's regex engine; no state outlives a call.
 *
 * Diagnostic codes (all at the offending node's position):
 *   constraint-syntax          a `constraints:` list or entry has the wrong shape
 *   constraint-unknown         unknown constraint operator
 *   constraint-not-applicable  operator cannot apply to the value's type
 *   constraint-operand         operand of the wrong shape or not a valid value
 *   constraint-violated        a value fails a constraint or validation clause
 *   type-mismatch              a value is not of its declared type (a defect for
 *                              non-string scalars given for strings, and for
 *                              everything when tosca_check_t.lenient_types)
 *   unknown-field              (defect) a data type value has a field its type lacks
 *   missing-field              a required field without default is missing
 */
#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

#define WHAT_MAX 512 /* a value's name in messages, e.g. "field 'x' of property 'y'" */
#define SHOW_MAX 128 /* a value rendered into a message */

static int merge_rc(int a, int b)
{
    if (a == ORC_ENOMEM || b == ORC_ENOMEM)
        return ORC_ENOMEM;
    return a < 0 ? a : b;
}

static bool scalar_is(const tosca_ynode_t *n, const char *s)
{
    return n && n->kind == TOSCA_Y_SCALAR && strcmp(n->u.scalar.str, s) == 0;
}

/* ---- built-in type names ------------------------------------------------ */

static const struct prim_name {
    const char *name;
    tosca_prim_t prim;
} prim_names[] = {
    {"string", TOSCA_P_STRING},
    {"integer", TOSCA_P_INTEGER},
    {"float", TOSCA_P_FLOAT},
    {"boolean", TOSCA_P_BOOLEAN},
    {"timestamp", TOSCA_P_TIMESTAMP},
    {"null", TOSCA_P_NULL},
    {"version", TOSCA_P_VERSION},
    {"range", TOSCA_P_RANGE},
    {"list", TOSCA_P_LIST},
    {"map", TOSCA_P_MAP},
    {"scalar-unit.size", TOSCA_P_SIZE},
    {"scalar-unit.time", TOSCA_P_TIME},
    {"scalar-unit.frequency", TOSCA_P_FREQUENCY},
    {"scalar-unit.bitrate", TOSCA_P_BITRATE},
    {"bytes", TOSCA_P_BYTES},
};

bool tosca_prim_from_name(const char *name, tosca_prim_t *out)
{
    if (name == NULL)
        return false;
    if (strncmp(name, "tosca:", 6) == 0)
        name += 6;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(prim_names); i++) {
        if (strcmp(prim_names[i].name, name) == 0) {
            *out = prim_names[i].prim;
            return true;
        }
    }
    return false;
}

const char *tosca_prim_name(tosca_prim_t p)
{
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(prim_names); i++)
        if (prim_names[i].prim == p)
            return prim_names[i].name;
    return p == TOSCA_P_COMPLEX ? "complex" : "any";
}

/* ---- scalar units ------------------------------------------------------- */

struct unit {
    const char *name;
    double factor; /* to bytes, seconds, Hz or bits per second */
};

static const struct unit size_units[] = {
    {"B", 1.0},
    {"kB", 1e3},
    {"KiB", 1024.0},
    {"MB", 1e6},
    {"MiB", 1048576.0},
    {"GB", 1e9},
    {"GiB", 1073741824.0},
    {"TB", 1e12},
    {"TiB", 1099511627776.0},
    {NULL, 0},
};

static const struct unit time_units[] = {
    {"d", 86400.0}, {"h", 3600.0}, {"m", 60.0},  {"s", 1.0},
    {"ms", 1e-3},   {"us", 1e-6},  {"ns", 1e-9}, {NULL, 0},
};

static const struct unit frequency_units[] = {
    {"Hz", 1.0}, {"kHz", 1e3}, {"MHz", 1e6}, {"GHz", 1e9}, {NULL, 0},
};

/* Bit forms first: a case-insensitive match ("mbps") then means bits. */
static const struct unit bitrate_units[] = {
    {"bps", 1.0},
    {"Kbps", 1e3},
    {"Kibps", 1024.0},
    {"Mbps", 1e6},
    {"Mibps", 1048576.0},
    {"Gbps", 1e9},
    {"Gibps", 1073741824.0},
    {"Tbps", 1e12},
    {"Tibps", 1099511627776.0},
    {"Bps", 8.0},
    {"KBps", 8e3},
    {"KiBps", 8.0 * 1024.0},
    {"MBps", 8e6},
    {"MiBps", 8.0 * 1048576.0},
    {"GBps", 8e9},
    {"GiBps", 8.0 * 1073741824.0},
    {"TBps", 8e12},
    {"TiBps", 8.0 * 1099511627776.0},
    {NULL, 0},
};

static const struct unit *unit_table(tosca_prim_t p)
{
    switch (p) {
    case TOSCA_P_SIZE:
        return size_units;
    case TOSCA_P_TIME:
        return time_units;
    case TOSCA_P_FREQUENCY:
        return frequency_units;
    case TOSCA_P_BITRATE:
        return bitrate_units;
    default:
        return NULL;
    }
}

/* Exact spelling first, else the first case-insensitive match. */
static const struct unit *unit_find(const struct unit *t, const char *u, size_t n)
{
    const struct unit *folded = NULL;

    for (; t->name; t++) {
        if (strlen(t->name) != n)
            continue;
        if (strncmp(t->name, u, n) == 0)
            return t;
        if (folded == NULL && strncasecmp(t->name, u, n) == 0)
            folded = t;
    }
    return folded;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Length of a decimal number (sign, digits, fraction, exponent) at s; 0 if none. */
static size_t scan_number(const char *s)
{
    size_t i = (*s == '+' || *s == '-'), digits = 0, j;

    for (; is_digit(s[i]); i++)
        digits++;
    if (s[i] == '.')
        for (i++; is_digit(s[i]); i++)
            digits++;
    if (digits == 0)
        return 0;
    if (s[i] == 'e' || s[i] == 'E') {
        j = i + 1;
        j += (s[j] == '+' || s[j] == '-');
        if (is_digit(s[j])) {
            while (is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

int tosca_scalar_unit_parse(tosca_prim_t p, const char *s, double *out)
{
    const struct unit *table = unit_table(p), *u;
    char num[64];
    size_t n, ulen;
    double v;

    if (table == NULL || s == NULL)
        return ORC_EINVAL;
    s += strspn(s, " \t");
    n = scan_number(s);
    if (n == 0 || n >= sizeof(num))
        return ORC_EINVAL;
    memcpy(num, s, n);
    num[n] = '\0';
    s += n;
    s += strspn(s, " \t");
    ulen = strcspn(s, " \t");
    if (ulen == 0 || s[ulen + strspn(s + ulen, " \t")] != '\0')
        return ORC_EINVAL;
    u = unit_find(table, s, ulen);
    if (u == NULL)
        return ORC_EINVAL;
    v = strtod(num, NULL) * u->factor;
    if (!isfinite(v) || (v < 0 && p != TOSCA_P_TIME))
        return ORC_EINVAL;
    *out = v;
    return 0;
}

/* ---- versions ----------------------------------------------------------- */

/* Reads a non-negative decimal integer (at most 18 digits); NULL if none. */
static const char *read_uint(const char *p, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;

    for (; is_digit(*p); p++, n++) {
        if (n >= 18)
            return NULL;
        v = v * 10 + (*p - '0');
    }
    if (n == 0)
        return NULL;
    *out = v;
    return p;
}

static const char *read_qualifier(const char *p, tosca_version_val_t *v)
{
    const char *q = p;

    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    if (p == q)
        return NULL;
    v->qualifier = q;
    v->qualifier_len = (size_t)(p - q);
    return p;
}

int tosca_version_parse(const char *s, tosca_version_val_t *out)
{
    const char *p;

    memset(out, 0, sizeof(*out));
    if (s == NULL)
        return ORC_EINVAL;
    p = read_uint(s, &out->major);
    if (p == NULL || *p != '.')
        return ORC_EINVAL;
    p = read_uint(p + 1, &out->minor);
    if (p == NULL || *p == '\0')
        return p ? 0 : ORC_EINVAL;
    if (*p != '.')
        return ORC_EINVAL;
    p = read_uint(p + 1, &out->fix);
    if (p == NULL || *p == '\0')
        return p ? 0 : ORC_EINVAL;
    if (*p != '.')
        return ORC_EINVAL;
    p = read_qualifier(p + 1, out);
    if (p == NULL || *p == '\0')
        return p ? 0 : ORC_EINVAL;
    if (*p != '-')
        return ORC_EINVAL;
    p = read_uint(p + 1, &out->build);
    return p && *p == '\0' ? 0 : ORC_EINVAL;
}

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

int tosca_version_cmp(const tosca_version_val_t *a, const tosca_version_val_t *b)
{
    size_t n;
    int c;

    c = cmp_i64(a->major, b->major);
    if (c == 0)
        c = cmp_i64(a->minor, b->minor);
    if (c == 0)
        c = cmp_i64(a->fix, b->fix);
    if (c != 0)
        return c;
    /* A version with a qualifier is older than the same one without. */
    if (a->qualifier == NULL || b->qualifier == NULL)
        return (a->qualifier == NULL) - (b->qualifier == NULL);
    n = a->qualifier_len < b->qualifier_len ? a->qualifier_len : b->qualifier_len;
    c = memcmp(a->qualifier, b->qualifier, n);
    if (c == 0)
        c = cmp_i64((int64_t)a->qualifier_len, (int64_t)b->qualifier_len);
    if (c == 0)
        c = cmp_i64(a->build, b->build);
    return c < 0 ? -1 : c > 0;
}

/* ---- timestamps (YAML 1.1) ---------------------------------------------- */

struct tstamp {
    int y, mo, d, h, mi, s;
    double frac;
    int64_t off; /* seconds east of UTC */
};

static const char *read_digits(const char *p, int min, int max, int *out)
{
    int v = 0, n = 0;

    for (; n < max && is_digit(p[n]); n++)
        v = v * 10 + (p[n] - '0');
    if (n < min)
        return NULL;
    *out = v;
    return p + n;
}

/* yyyy-m[m]-d[d]; *strict: month and day had two digits (needed for a date alone). */
static const char *ts_date(const char *p, struct tstamp *t, bool *strict)
{
    const char *q;

    p = read_digits(p, 4, 4, &t->y);
    if (p == NULL || *p != '-')
        return NULL;
    q = read_digits(p + 1, 1, 2, &t->mo);
    if (q == NULL || *q != '-')
        return NULL;
    *strict = q - p == 3;
    p = read_digits(q + 1, 1, 2, &t->d);
    if (p == NULL)
        return NULL;
    *strict = *strict && p - q == 3;
    return p;
}

/* ([Tt]|[ \t]+)h[h]:mm:ss(.f*)? */
static const char *ts_time(const char *p, struct tstamp *t)
{
    double scale = 0.1;

    if (*p == 'T' || *p == 't')
        p++;
    else if (*p == ' ' || *p == '\t')
        p += strspn(p, " \t");
    else
        return NULL;
    p = read_digits(p, 1, 2, &t->h);
    if (p == NULL || *p != ':')
        return NULL;
    p = read_digits(p + 1, 2, 2, &t->mi);
    if (p == NULL || *p != ':')
        return NULL;
    p = read_digits(p + 1, 2, 2, &t->s);
    if (p == NULL || *p != '.')
        return p;
    for (p++; is_digit(*p); p++, scale /= 10)
        t->frac += (*p - '0') * scale;
    return p;
}

/* [ \t]*(Z|[-+]h[h](:mm)?)? then the end of the string. */
static const char *ts_zone(const char *p, struct tstamp *t)
{
    int hh, mm = 0, sign;

    p += strspn(p, " \t");
    if (*p == 'Z')
        return p[1] == '\0' ? p + 1 : NULL;
    if (*p != '+' && *p != '-')
        return *p == '\0' ? p : NULL;
    sign = *p == '-' ? -1 : 1;
    p = read_digits(p + 1, 1, 2, &hh);
    if (p && *p == ':')
        p = read_digits(p + 1, 2, 2, &mm);
    if (p == NULL || *p != '\0' || hh > 23 || mm > 59)
        return NULL;
    t->off = sign * (hh * 3600 + mm * 60);
    return p;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return m == 2 && leap ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int tosca_timestamp_parse(const char *s, double *out)
{
    struct tstamp t = {0};
    bool strict = false;
    const char *p;
    int64_t secs;

    if (s == NULL)
        return ORC_EINVAL;
    p = ts_date(s, &t, &strict);
    if (p == NULL || (*p == '\0' && !strict))
        return ORC_EINVAL;
    if (*p != '\0') {
        p = ts_time(p, &t);
        p = p ? ts_zone(p, &t) : NULL;
        if (p == NULL)
            return ORC_EINVAL;
    }
    if (t.mo < 1 || t.mo > 12 || t.d < 1 || t.d > days_in_month(t.y, t.mo) || t.h > 23 ||
        t.mi > 59 || t.s > 59)
        return ORC_EINVAL;
    secs = days_from_civil(t.y, t.mo, t.d) * 86400 + t.h * 3600 + t.mi * 60 + t.s - t.off;
    *out = (double)secs + t.frac;
    return 0;
}

/* ---- bytes (2.0): base64 ------------------------------------------------ */

/* Decoded length of base64 text (whitespace ignored); ORC_EINVAL if malformed. */
static int base64_len(const char *s, size_t n, size_t *out)
{
    size_t chars = 0, pad = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c))
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad || !(isalnum(c) || c == '+' || c == '/'))
            return ORC_EINVAL;
        chars++;
    }
    if (pad > 2 || (chars + pad) % 4 != 0)
        return ORC_EINVAL;
    *out = (chars + pad) / 4 * 3 - pad;
    return 0;
}

/* ---- comparable values -------------------------------------------------- */

enum cv_kind { CV_NULL, CV_BOOL, CV_INT, CV_NUM, CV_STR, CV_VER, CV_RANGE };

/* A scalar (or range) converted by its TOSCA type so that it can be compared. */
struct cval {
    enum cv_kind kind;
    int64_t i;  /* CV_BOOL, CV_INT; CV_RANGE lower bound */
    int64_t hi; /* CV_RANGE upper bound, INT64_MAX for UNBOUNDED */
    double d;   /* CV_NUM: floats, scalar units (canonical), timestamps */
    const char *s;
    size_t len;
    tosca_version_val_t ver;
};

/* [lower, upper] of integers, upper may be UNBOUNDED; lower <= upper. */
static int range_of(const tosca_ynode_t *n, int64_t *lo, int64_t *hi)
{
    if (n == NULL || n->kind != TOSCA_Y_SEQ || n->u.seq.count != 2)
        return ORC_EINVAL;
    if (tosca_yget_int(n->u.seq.items[0], lo) < 0)
        return ORC_EINVAL;
    if (scalar_is(n->u.seq.items[1], "UNBOUNDED"))
        *hi = INT64_MAX;
    else if (tosca_yget_int(n->u.seq.items[1], hi) < 0)
        return ORC_EINVAL;
    return *lo <= *hi ? 0 : ORC_EINVAL;
}

/* Type by YAML resolution, for values whose TOSCA type is not known. */
static int cval_infer(const tosca_ynode_t *n, struct cval *cv)
{
    bool b;

    if (n == NULL || n->kind != TOSCA_Y_SCALAR)
        return ORC_EINVAL;
    if (tosca_yis_null(n)) {
        cv->kind = CV_NULL;
    } else if (tosca_yget_bool(n, &b) == 0) {
        cv->kind = CV_BOOL;
        cv->i = b;
    } else if (tosca_yget_int(n, &cv->i) == 0) {
        cv->kind = CV_INT;
    } else if (tosca_yget_float(n, &cv->d) == 0) {
        cv->kind = CV_NUM;
    } else {
        cv->kind = CV_STR;
        cv->s = n->u.scalar.str;
        cv->len = n->u.scalar.len;
    }
    return 0;
}

/* Types written as text: strings, bytes, timestamps, versions, scalar units. */
static int cval_text(tosca_prim_t p, const tosca_ynode_t *n, struct cval *cv)
{
    size_t len;

    if (n == NULL || n->kind != TOSCA_Y_SCALAR)
        return ORC_EINVAL;
    cv->kind = CV_NUM;
    switch (p) {
    case TOSCA_P_STRING:
    case TOSCA_P_BYTES:
        cv->kind = CV_STR;
        cv->s = n->u.scalar.str;
        cv->len = n->u.scalar.len;
        return p == TOSCA_P_BYTES ? base64_len(cv->s, cv->len, &len) : 0;
    case TOSCA_P_TIMESTAMP:
        return tosca_timestamp_parse(n->u.scalar.str, &cv->d);
    case TOSCA_P_VERSION:
        cv->kind = CV_VER;
        if (tosca_version_parse(n->u.scalar.str, &cv->ver) == 0)
            return 0;
        /* real templates write "7" for 7.0; check_node reports it as a defect */
        return read_uint(n->u.scalar.str, &cv->ver.major) &&
                       *read_uint(n->u.scalar.str, &cv->ver.major) == '\0'
                   ? 0
                   : ORC_EINVAL;
    default:
        return tosca_scalar_unit_parse(p, n->u.scalar.str, &cv->d);
    }
}

/* Converts n as a value of type p; ORC_EINVAL if it is not one (or p is a collection). */
static int cval_of(tosca_prim_t p, const tosca_ynode_t *n, struct cval *cv)
{
    bool b;

    memset(cv, 0, sizeof(*cv));
    switch (p) {
    case TOSCA_P_ANY:
        return cval_infer(n, cv);
    case TOSCA_P_NULL:
        cv->kind = CV_NULL;
        return tosca_yis_null(n) ? 0 : ORC_EINVAL;
    case TOSCA_P_BOOLEAN:
        cv->kind = CV_BOOL;
        if (tosca_yget_bool(n, &b) < 0)
            return ORC_EINVAL;
        cv->i = b;
        return 0;
    case TOSCA_P_INTEGER:
        cv->kind = CV_INT;
        return tosca_yget_int(n, &cv->i);
    case TOSCA_P_FLOAT:
        cv->kind = CV_NUM;
        return tosca_yget_float(n, &cv->d);
    case TOSCA_P_RANGE:
        cv->kind = CV_RANGE;
        return range_of(n, &cv->i, &cv->hi);
    case TOSCA_P_LIST:
    case TOSCA_P_MAP:
    case TOSCA_P_COMPLEX:
        return ORC_EINVAL;
    default:
        return cval_text(p, n, cv);
    }
}

static bool cv_numeric(const struct cval *v)
{
    return v->kind == CV_INT || v->kind == CV_NUM;
}

static double cv_num(const struct cval *v)
{
    return v->kind == CV_INT ? (double)v->i : v->d;
}

/* Three-way comparison; ORC_EINVAL when incomparable (or unordered and ordered asked). */
static int cval_cmp(const struct cval *a, const struct cval *b, bool ordered, int *out)
{
    size_t n;

    if (a->kind == CV_INT && b->kind == CV_INT) {
        *out = cmp_i64(a->i, b->i);
        return 0;
    }
    if (cv_numeric(a) && cv_numeric(b)) {
        double x = cv_num(a), y = cv_num(b);
        if (isnan(x) || isnan(y))
            return ORC_EINVAL;
        *out = (x > y) - (x < y);
        return 0;
    }
    if (a->kind != b->kind || (ordered && (a->kind == CV_BOOL || a->kind == CV_RANGE)))
        return ORC_EINVAL;
    switch (a->kind) {
    case CV_STR:
        n = a->len < b->len ? a->len : b->len;
        *out = memcmp(a->s, b->s, n);
        *out = *out ? (*out > 0) - (*out < 0) : cmp_i64((int64_t)a->len, (int64_t)b->len);
        return 0;
    case CV_VER:
        *out = tosca_version_cmp(&a->ver, &b->ver);
        return 0;
    case CV_BOOL:
    case CV_RANGE:
        *out = a->i == b->i && a->hi == b->hi ? 0 : 1;
        return 0;
    default: /* CV_NULL */
        *out = 0;
        return 0;
    }
}

static bool ynode_equal(const tosca_ynode_t *a, const tosca_ynode_t *b);

static bool map_equal(const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    if (a->u.map.count != b->u.map.count)
        return false;
    for (size_t i = 0; i < a->u.map.count; i++) {
        const tosca_ypair_t *p = tosca_ymap_pair(b, a->u.map.items[i].key->u.scalar.str);
        if (p == NULL || !ynode_equal(a->u.map.items[i].value, p->value))
            return false;
    }
    return true;
}

/* Structural equality with YAML scalar resolution (1 equals 1.0, "1" does not). */
static bool ynode_equal(const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    struct cval x, y;
    int c;

    if (a == NULL || b == NULL)
        return tosca_yis_null(a) && tosca_yis_null(b);
    if (a->kind != b->kind)
        return false;
    if (a->kind == TOSCA_Y_MAP)
        return map_equal(a, b);
    if (a->kind == TOSCA_Y_SCALAR)
        return cval_infer(a, &x) == 0 && cval_infer(b, &y) == 0 &&
               cval_cmp(&x, &y, false, &c) == 0 && c == 0;
    if (a->u.seq.count != b->u.seq.count)
        return false;
    for (size_t i = 0; i < a->u.seq.count; i++)
        if (!ynode_equal(a->u.seq.items[i], b->u.seq.items[i]))
            return false;
    return true;
}

/* Equality as values of type p ("1 GB" equals "1000 MB"), else structural. */
static bool values_equal(tosca_prim_t p, const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    struct cval x, y;
    int c;

    if (cval_of(p, a, &x) == 0 && cval_of(p, b, &y) == 0 && cval_cmp(&x, &y, false, &c) == 0)
        return c == 0;
    return ynode_equal(a, b);
}

/* ---- rendering values into messages ------------------------------------- */

struct tbuf {
    char *p;
    size_t cap;
    size_t len;
    bool cut;
};

static void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap) {
        n = b->cap - 1 - b->len;
        b->cut = true;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_puts(struct tbuf *b, const char *s)
{
    tb_put(b, s, strlen(s));
}

static void render(struct tbuf *b, const tosca_ynode_t *n, int depth)
{
    bool seq = n->kind == TOSCA_Y_SEQ;
    size_t count = seq ? n->u.seq.count : n->u.map.count;

    if (n->kind == TOSCA_Y_SCALAR && n->plain && n->u.scalar.len == 0) {
        tb_puts(b, "null");
        return;
    }
    if (n->kind == TOSCA_Y_SCALAR) {
        tb_puts(b, n->plain ? "" : "\"");
        tb_put(b, n->u.scalar.str, strlen(n->u.scalar.str));
        tb_puts(b, n->plain ? "" : "\"");
        return;
    }
    tb_puts(b, seq ? "[" : "{");
    for (size_t i = 0; i < count && !b->cut; i++) {
        tb_puts(b, i ? ", " : "");
        if (depth >= 4) {
            tb_puts(b, "...");
            break;
        }
        if (!seq) {
            render(b, n->u.map.items[i].key, depth + 1);
            tb_puts(b, ": ");
        }
        render(b, seq ? n->u.seq.items[i] : n->u.map.items[i].value, depth + 1);
    }
    tb_puts(b, seq ? "]" : "}");
}

/* n in flow style, cut with "..." beyond SHOW_MAX; returns buf. */
static const char *show(const tosca_ynode_t *n, char buf[SHOW_MAX])
{
    struct tbuf b = {buf, SHOW_MAX, 0, false};

    buf[0] = '\0';
    if (n == NULL)
        tb_puts(&b, "(none)");
    else
        render(&b, n, 0);
    if (b.cut)
        memcpy(buf + SHOW_MAX - 4, "...", 4);
    return buf;
}

/* ---- evaluating constraint operators ------------------------------------ */

static int64_t utf8_chars(const char *s, size_t n)
{
    int64_t count = 0;

    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

/* Characters of a string, decoded bytes of bytes, entries of a list or map. */
static int length_of(tosca_prim_t p, const tosca_ynode_t *n, int64_t *out)
{
    size_t len;

    if (n == NULL)
        return ORC_EINVAL;
    if (n->kind == TOSCA_Y_SEQ) {
        *out = (int64_t)n->u.seq.count;
    } else if (n->kind == TOSCA_Y_MAP) {
        *out = (int64_t)n->u.map.count;
    } else if (p == TOSCA_P_BYTES) {
        if (base64_len(n->u.scalar.str, n->u.scalar.len, &len) < 0)
            return ORC_EINVAL;
        *out = (int64_t)len;
    } else {
        *out = utf8_chars(n->u.scalar.str, n->u.scalar.len);
    }
    return 0;
}

/* Each eval_* returns 1 (holds), 0 (violated), ORC_EINVAL (cannot be
 * evaluated: operands of other types) or ORC_ENOMEM. */

static int eval_compare(tosca_cop_t op, tosca_prim_t p, const tosca_ynode_t *v,
                        const tosca_ynode_t *arg)
{
    struct cval x, y;
    int c;

    if (cval_of(p, v, &x) < 0 || cval_of(p, arg, &y) < 0 || cval_cmp(&x, &y, true, &c) < 0)
        return ORC_EINVAL;
    switch (op) {
    case TOSCA_C_GREATER_THAN:
        return c > 0;
    case TOSCA_C_GREATER_OR_EQUAL:
        return c >= 0;
    case TOSCA_C_LESS_THAN:
        return c < 0;
    default:
        return c <= 0;
    }
}

static int eval_in_range(tosca_prim_t p, const tosca_ynode_t *v, const tosca_ynode_t *arg)
{
    int64_t lo, hi, min, max;
    int r;

    if (p == TOSCA_P_RANGE) {
        if (range_of(v, &lo, &hi) < 0 || range_of(arg, &min, &max) < 0)
            return ORC_EINVAL;
        return lo >= min && hi <= max;
    }
    if (arg == NULL || arg->kind != TOSCA_Y_SEQ || arg->u.seq.count != 2)
        return ORC_EINVAL;
    r = eval_compare(TOSCA_C_GREATER_OR_EQUAL, p, v, arg->u.seq.items[0]);
    if (r != 1 || scalar_is(arg->u.seq.items[1], "UNBOUNDED"))
        return r;
    return eval_compare(TOSCA_C_LESS_OR_EQUAL, p, v, arg->u.seq.items[1]);
}

static int eval_valid_values(tosca_prim_t p, const tosca_ynode_t *v, const tosca_ynode_t *arg)
{
    if (arg == NULL || arg->kind != TOSCA_Y_SEQ)
        return ORC_EINVAL;
    for (size_t i = 0; i < arg->u.seq.count; i++)
        if (values_equal(p, v, arg->u.seq.items[i]))
            return 1;
    return 0;
}

static int eval_length(tosca_cop_t op, tosca_prim_t p, const tosca_ynode_t *v,
                       const tosca_ynode_t *arg)
{
    int64_t len, want;

    if (length_of(p, v, &len) < 0 || tosca_yget_int(arg, &want) < 0)
        return ORC_EINVAL;
    if (op == TOSCA_C_MIN_LENGTH)
        return len >= want;
    if (op == TOSCA_C_MAX_LENGTH)
        return len <= want;
    return len == want;
}

/* The whole value must match the POSIX extended regular expression. */
static int eval_pattern(const tosca_ynode_t *v, const tosca_ynode_t *arg)
{
    regmatch_t m;
    regex_t re;
    int r;

    if (v == NULL || v->kind != TOSCA_Y_SCALAR || arg == NULL || arg->kind != TOSCA_Y_SCALAR)
        return ORC_EINVAL;
    r = regcomp(&re, arg->u.scalar.str, REG_EXTENDED);
    if (r != 0)
        return r == REG_ESPACE ? ORC_ENOMEM : ORC_EINVAL;
    r = regexec(&re, v->u.scalar.str, 1, &m, 0);
    regfree(&re);
    if (r == REG_ESPACE)
        return ORC_ENOMEM;
    return r == 0 && m.rm_so == 0 && (size_t)m.rm_eo == v->u.scalar.len;
}

/* Evaluates `op: arg` for the value v of type p. */
static int eval_op(tosca_cop_t op, tosca_prim_t p, const tosca_ynode_t *v, const tosca_ynode_t *arg)
{
    switch (op) {
    case TOSCA_C_EQUAL:
        return values_equal(p, v, arg);
    case TOSCA_C_GREATER_THAN:
    case TOSCA_C_GREATER_OR_EQUAL:
    case TOSCA_C_LESS_THAN:
    case TOSCA_C_LESS_OR_EQUAL:
        return eval_compare(op, p, v, arg);
    case TOSCA_C_IN_RANGE:
        return eval_in_range(p, v, arg);
    case TOSCA_C_VALID_VALUES:
        return eval_valid_values(p, v, arg);
    case TOSCA_C_LENGTH:
    case TOSCA_C_MIN_LENGTH:
    case TOSCA_C_MAX_LENGTH:
        return eval_length(op, p, v, arg);
    case TOSCA_C_PATTERN:
        return eval_pattern(v, arg);
    default: /* TOSCA_C_SCHEMA: accepted, not evaluated */
        return 1;
    }
}

/* ---- parsing constraints ------------------------------------------------ */

#define PM(p) (1u << (p))
#define PM_ALL 0xFFFFFFFFu
#define PM_ORDERED                                                                                 \
    (PM(TOSCA_P_ANY) | PM(TOSCA_P_STRING) | PM(TOSCA_P_INTEGER) | PM(TOSCA_P_FLOAT) |              \
     PM(TOSCA_P_TIMESTAMP) | PM(TOSCA_P_VERSION) | PM(TOSCA_P_SIZE) | PM(TOSCA_P_TIME) |           \
     PM(TOSCA_P_FREQUENCY) | PM(TOSCA_P_BITRATE))
#define PM_LENGTH                                                                                  \
    (PM(TOSCA_P_ANY) | PM(TOSCA_P_STRING) | PM(TOSCA_P_LIST) | PM(TOSCA_P_MAP) | PM(TOSCA_P_BYTES))

/* Operators, the types they apply to, and what their operand must be. */
static const struct cop_info {
    const char *name;
    tosca_cop_t op;
    uint32_t prims;
    const char *expect; /* "<expect> <type><expect_post>" */
    const char *expect_post;
} cops[] = {
    {"equal", TOSCA_C_EQUAL, PM_ALL, "a value of type ", ""},
    {"greater_than", TOSCA_C_GREATER_THAN, PM_ORDERED, "a value of type ", ""},
    {"greater_or_equal", TOSCA_C_GREATER_OR_EQUAL, PM_ORDERED, "a value of type ", ""},
    {"less_than", TOSCA_C_LESS_THAN, PM_ORDERED, "a value of type ", ""},
    {"less_or_equal", TOSCA_C_LESS_OR_EQUAL, PM_ORDERED, "a value of type ", ""},
    {"in_range", TOSCA_C_IN_RANGE, PM_ORDERED | PM(TOSCA_P_RANGE), "a list [lower, upper] of type ",
     " with lower <= upper"},
    {"valid_values", TOSCA_C_VALID_VALUES, PM_ALL, "a list of values of type ", ""},
    {"length", TOSCA_C_LENGTH, PM_LENGTH, "a non-negative integer", NULL},
    {"min_length", TOSCA_C_MIN_LENGTH, PM_LENGTH, "a non-negative integer", NULL},
    {"max_length", TOSCA_C_MAX_LENGTH, PM_LENGTH, "a non-negative integer", NULL},
    {"pattern", TOSCA_C_PATTERN, PM(TOSCA_P_ANY) | PM(TOSCA_P_STRING), "a regular expression",
     NULL},
    {"schema", TOSCA_C_SCHEMA, PM_ALL, "a schema", NULL},
};

static const struct cop_info *cop_by_name(const char *name)
{
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(cops); i++)
        if (strcmp(cops[i].name, name) == 0)
            return &cops[i];
    return NULL;
}

const char *tosca_constraint_name(tosca_cop_t op)
{
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(cops); i++)
        if (cops[i].op == op)
            return cops[i].name;
    return "?";
}

/* A valid value of type p, as far as the type alone tells (data types: a map). */
static bool value_ok(tosca_prim_t p, const tosca_ynode_t *n)
{
    struct cval cv;

    switch (p) {
    case TOSCA_P_ANY:
        return true;
    case TOSCA_P_LIST:
        return n->kind == TOSCA_Y_SEQ;
    case TOSCA_P_MAP:
    case TOSCA_P_COMPLEX:
        return n->kind == TOSCA_Y_MAP;
    default:
        return cval_of(p, n, &cv) == 0;
    }
}

static bool range_operand_ok(tosca_prim_t p, const tosca_ynode_t *arg)
{
    struct cval lo, hi;
    int64_t a, b;
    int c;

    if (p == TOSCA_P_RANGE)
        return range_of(arg, &a, &b) == 0;
    if (arg->kind != TOSCA_Y_SEQ || arg->u.seq.count != 2 ||
        cval_of(p, arg->u.seq.items[0], &lo) < 0)
        return false;
    if (scalar_is(arg->u.seq.items[1], "UNBOUNDED"))
        return true;
    return cval_of(p, arg->u.seq.items[1], &hi) == 0 && cval_cmp(&lo, &hi, true, &c) == 0 && c <= 0;
}

static bool operand_ok(tosca_cop_t op, tosca_prim_t p, const tosca_ynode_t *arg)
{
    struct cval cv;
    int64_t n;

    switch (op) {
    case TOSCA_C_EQUAL:
        return value_ok(p, arg);
    case TOSCA_C_IN_RANGE:
        return range_operand_ok(p, arg);
    case TOSCA_C_VALID_VALUES:
        if (arg->kind != TOSCA_Y_SEQ)
            return false;
        for (size_t i = 0; i < arg->u.seq.count; i++)
            if (!value_ok(p, arg->u.seq.items[i]) || tosca_is_function(arg->u.seq.items[i]))
                return false;
        return true;
    case TOSCA_C_LENGTH:
    case TOSCA_C_MIN_LENGTH:
    case TOSCA_C_MAX_LENGTH:
        return tosca_yget_int(arg, &n) == 0 && n >= 0;
    case TOSCA_C_SCHEMA:
        return true;
    default: /* the comparisons */
        return cval_of(p, arg, &cv) == 0;
    }
}

static int check_pattern_operand(const tosca_ynode_t *arg, const tosca_mark_t *m, tosca_diags_t *d)
{
    char msg[128];
    regex_t re;
    int r;

    if (arg->kind != TOSCA_Y_SCALAR)
        return tosca_error(d, m, "constraint-operand",
                           "operand of 'pattern' must be a regular expression, not %s",
                           tosca_ykind_name(arg));
    r = regcomp(&re, arg->u.scalar.str, REG_EXTENDED | REG_NOSUB);
    if (r == 0) {
        regfree(&re);
        return 0;
    }
    if (r == REG_ESPACE)
        return ORC_ENOMEM;
    regerror(r, &re, msg, sizeof(msg));
    return tosca_error(d, m, "constraint-operand",
                       "operand of 'pattern' is not a valid regular expression: %s", msg);
}

static int check_operand(const struct cop_info *ci, tosca_prim_t p, const tosca_ynode_t *arg,
                         const tosca_mark_t *m, tosca_diags_t *d)
{
    char buf[SHOW_MAX];

    if (ci->op == TOSCA_C_PATTERN)
        return check_pattern_operand(arg, m, d);
    if (!tosca_is_function(arg) && operand_ok(ci->op, p, arg))
        return 0;
    return tosca_error(d, m, "constraint-operand", "operand of '%s' must be %s%s%s, not %s",
                       ci->name, ci->expect, ci->expect_post ? tosca_prim_name(p) : "",
                       ci->expect_post ? ci->expect_post : "", show(arg, buf));
}

static int parse_one(const tosca_ynode_t *item, tosca_prim_t p, tosca_constraint_t *k,
                     tosca_diags_t *d)
{
    const tosca_ynode_t *key;
    const struct cop_info *ci;
    int rc;

    if (item->kind != TOSCA_Y_MAP || item->u.map.count != 1)
        return tosca_error(d, &item->mark, "constraint-syntax",
                           "a constraint is a mapping of one operator to its operand, not %s",
                           tosca_ykind_name(item));
    key = item->u.map.items[0].key;
    ci = cop_by_name(key->u.scalar.str);
    if (ci == NULL)
        return tosca_error(d, &key->mark, "constraint-unknown", "unknown constraint operator '%s'",
                           key->u.scalar.str);
    if ((ci->prims & PM(p)) == 0)
        return tosca_error(d, &key->mark, "constraint-not-applicable",
                           "constraint '%s' does not apply to a value of type %s", ci->name,
                           tosca_prim_name(p));
    rc = check_operand(ci, p, item->u.map.items[0].value, &key->mark, d);
    if (rc < 0)
        return rc;
    k->op = ci->op;
    k->arg = item->u.map.items[0].value;
    k->mark = key->mark;
    return 0;
}

int tosca_constraints_parse(tosca_arena_t *a, const tosca_ynode_t *list, tosca_prim_t prim,
                            tosca_constraint_t **out, size_t *count, tosca_diags_t *d)
{
    tosca_constraint_t *items;
    size_t n = 0;
    int rc = 0;

    *out = NULL;
    *count = 0;
    if (list == NULL || tosca_yis_null(list))
        return 0;
    if (list->kind != TOSCA_Y_SEQ)
        return tosca_error(d, &list->mark, "constraint-syntax",
                           "constraints must be a list, not %s", tosca_ykind_name(list));
    items = tosca_arena_alloc(a, (list->u.seq.count ? list->u.seq.count : 1) * sizeof(*items));
    if (items == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < list->u.seq.count && rc != ORC_ENOMEM; i++) {
        int r = parse_one(list->u.seq.items[i], prim, &items[n], d);
        if (r == 0)
            n++;
        rc = merge_rc(rc, r);
    }
    *out = items;
    *count = n;
    return rc;
}

/* ---- function calls ----------------------------------------------------- */

bool tosca_is_function(const tosca_ynode_t *n)
{
    static const char *const names[] = {
        "get_input",
        "get_property",
        "get_attribute",
        "get_operation_output",
        "get_nodes_of_type",
        "get_artifact",
        "concat",
        "join",
        "token",
    };
    const char *k;

    if (n == NULL || n->kind != TOSCA_Y_MAP || n->u.map.count != 1)
        return false;
    k = n->u.map.items[0].key->u.scalar.str;
    if (k[0] == '$') /* 2.0; "$$..." escapes a literal key */
        return isalpha((unsigned char)k[1]) != 0;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(names); i++)
        if (strcmp(k, names[i]) == 0)
            return true;
    return false;
}

/* ---- 2.0 validation clauses --------------------------------------------- */

/* Outcome of a boolean expression; negative values are errors (ORC_ENOMEM). */
enum { TRI_FALSE = 0, TRI_TRUE = 1, TRI_UNKNOWN = 2 };

struct vl {
    const tosca_ynode_t *value; /* what $value stands for */
    tosca_prim_t prim;          /* its type */
};

/* One resolved operand of a boolean function. */
struct vl_arg {
    const tosca_ynode_t *n;
    tosca_prim_t prim;
    bool typed;              /* n is $value: prim is its type */
    tosca_ynode_t unescaped; /* a "$$..." literal with one '$' dropped */
};

enum vl_op {
    VL_HAS_SUFFIX = 100,
    VL_HAS_PREFIX,
    VL_CONTAINS,
    VL_HAS_ENTRY,
    VL_HAS_KEY,
    VL_HAS_ALL_ENTRIES,
    VL_HAS_ALL_KEYS,
    VL_HAS_ANY_ENTRY,
    VL_HAS_ANY_KEY,
};

/* Two-argument boolean functions; ops below 100 are constraint operators. */
static const struct vl_fn {
    const char *name;
    int op;
} vl_fns[] = {
    {"equal", TOSCA_C_EQUAL},
    {"greater_than", TOSCA_C_GREATER_THAN},
    {"greater_or_equal", TOSCA_C_GREATER_OR_EQUAL},
    {"less_than", TOSCA_C_LESS_THAN},
    {"less_or_equal", TOSCA_C_LESS_OR_EQUAL},
    {"in_range", TOSCA_C_IN_RANGE},
    {"valid_values", TOSCA_C_VALID_VALUES},
    {"length", TOSCA_C_LENGTH},
    {"min_length", TOSCA_C_MIN_LENGTH},
    {"max_length", TOSCA_C_MAX_LENGTH},
    {"matches", TOSCA_C_PATTERN},
    {"has_suffix", VL_HAS_SUFFIX},
    {"has_prefix", VL_HAS_PREFIX},
    {"contains", VL_CONTAINS},
    {"has_entry", VL_HAS_ENTRY},
    {"has_key", VL_HAS_KEY},
    {"has_all_entries", VL_HAS_ALL_ENTRIES},
    {"has_all_keys", VL_HAS_ALL_KEYS},
    {"has_any_entry", VL_HAS_ANY_ENTRY},
    {"has_any_key", VL_HAS_ANY_KEY},
};

/* The arguments of a function: a list, or one non-list argument. */
static size_t vl_argv(const tosca_ynode_t *args, tosca_ynode_t *const **items, tosca_ynode_t **one)
{
    if (args->kind == TOSCA_Y_SEQ) {
        *items = args->u.seq.items;
        return args->u.seq.count;
    }
    *one = (tosca_ynode_t *)args;
    *items = one;
    return 1;
}

/* {$value: [key or index, ...]}: the value, or a part of it (untyped). */
static int vl_value_path(const struct vl *e, const tosca_ynode_t *path, struct vl_arg *a)
{
    const tosca_ynode_t *cur = e->value;
    int64_t idx;

    a->n = e->value;
    a->prim = e->prim;
    a->typed = true;
    if (tosca_yis_null(path) || (path->kind == TOSCA_Y_SEQ && path->u.seq.count == 0))
        return 0;
    if (path->kind != TOSCA_Y_SEQ)
        return TRI_UNKNOWN;
    for (size_t i = 0; i < path->u.seq.count && cur; i++) {
        const tosca_ynode_t *step = path->u.seq.items[i];
        if (cur->kind == TOSCA_Y_SEQ && tosca_yget_int(step, &idx) == 0)
            cur = idx >= 0 && (size_t)idx < cur->u.seq.count ? cur->u.seq.items[idx] : NULL;
        else if (cur->kind == TOSCA_Y_MAP && step->kind == TOSCA_Y_SCALAR)
            cur = tosca_ymap_get(cur, step->u.scalar.str);
        else
            cur = NULL;
    }
    a->n = cur;
    a->prim = TOSCA_P_ANY;
    a->typed = false;
    return cur ? 0 : TRI_UNKNOWN;
}

/* 0, or TRI_UNKNOWN when the operand needs evaluation we do not do. */
static int vl_resolve(const struct vl *e, const tosca_ynode_t *n, struct vl_arg *a)
{
    a->n = n;
    a->prim = TOSCA_P_ANY;
    a->typed = false;
    if (scalar_is(n, "$value")) {
        a->n = e->value;
        a->prim = e->prim;
        a->typed = true;
        return 0;
    }
    if (n->kind == TOSCA_Y_SCALAR && strncmp(n->u.scalar.str, "$$", 2) == 0) {
        a->unescaped = *n;
        a->unescaped.u.scalar.str++;
        a->unescaped.u.scalar.len--;
        a->n = &a->unescaped;
        return 0;
    }
    if (!tosca_is_function(n))
        return 0;
    if (strcmp(n->u.map.items[0].key->u.scalar.str, "$value") == 0)
        return vl_value_path(e, n->u.map.items[0].value, a);
    return TRI_UNKNOWN;
}

static bool has_key(const tosca_ynode_t *map, const tosca_ynode_t *key)
{
    return map->kind == TOSCA_Y_MAP && key->kind == TOSCA_Y_SCALAR &&
           tosca_ymap_pair(map, key->u.scalar.str) != NULL;
}

static bool has_entry(const tosca_ynode_t *coll, const tosca_ynode_t *v)
{
    bool seq = coll->kind == TOSCA_Y_SEQ;
    size_t n = seq ? coll->u.seq.count : coll->u.map.count;

    for (size_t i = 0; i < n; i++)
        if (ynode_equal(seq ? coll->u.seq.items[i] : coll->u.map.items[i].value, v))
            return true;
    return false;
}

/* b is a contiguous part of a (strings or lists). */
static int contains(const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    size_t i, j;

    if (a->kind == TOSCA_Y_SCALAR && b->kind == TOSCA_Y_SCALAR)
        return strstr(a->u.scalar.str, b->u.scalar.str) != NULL;
    if (a->kind != TOSCA_Y_SEQ || b->kind != TOSCA_Y_SEQ)
        return ORC_EINVAL;
    for (i = 0; i + b->u.seq.count <= a->u.seq.count; i++) {
        for (j = 0; j < b->u.seq.count; j++)
            if (!ynode_equal(a->u.seq.items[i + j], b->u.seq.items[j]))
                break;
        if (j == b->u.seq.count)
            return 1;
    }
    return 0;
}

/* $has_all_entries, $has_any_entry, $has_all_keys, $has_any_key over the list b. */
static int has_many(const tosca_ynode_t *a, const tosca_ynode_t *b, bool all, bool keys)
{
    if (b->kind != TOSCA_Y_SEQ || (keys && a->kind != TOSCA_Y_MAP) || a->kind == TOSCA_Y_SCALAR)
        return ORC_EINVAL;
    for (size_t i = 0; i < b->u.seq.count; i++) {
        bool hit = keys ? has_key(a, b->u.seq.items[i]) : has_entry(a, b->u.seq.items[i]);
        if (hit != all)
            return hit;
    }
    return all;
}

static int affix(const tosca_ynode_t *a, const tosca_ynode_t *b, bool suffix)
{
    size_t al, bl;

    if (a->kind != TOSCA_Y_SCALAR || b->kind != TOSCA_Y_SCALAR)
        return ORC_EINVAL;
    al = a->u.scalar.len;
    bl = b->u.scalar.len;
    if (bl > al)
        return 0;
    return memcmp(a->u.scalar.str + (suffix ? al - bl : 0), b->u.scalar.str, bl) == 0;
}

/* The string and collection functions; same results as eval_op. */
static int eval_coll(int op, const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    switch (op) {
    case VL_HAS_SUFFIX:
    case VL_HAS_PREFIX:
        return affix(a, b, op == VL_HAS_SUFFIX);
    case VL_CONTAINS:
        return contains(a, b);
    case VL_HAS_ENTRY:
        return a->kind == TOSCA_Y_SCALAR ? ORC_EINVAL : has_entry(a, b);
    case VL_HAS_KEY:
        return a->kind == TOSCA_Y_MAP ? has_key(a, b) : ORC_EINVAL;
    case VL_HAS_ALL_ENTRIES:
    case VL_HAS_ANY_ENTRY:
        return has_many(a, b, op == VL_HAS_ALL_ENTRIES, false);
    default:
        return has_many(a, b, op == VL_HAS_ALL_KEYS, true);
    }
}

/* $valid_values over a literal list whose entries may be escaped or $value. */
static int vl_valid_values(const struct vl *e, tosca_prim_t p, const tosca_ynode_t *v,
                           const tosca_ynode_t *list)
{
    struct vl_arg item;
    int res = TRI_FALSE;

    for (size_t i = 0; i < list->u.seq.count; i++) {
        if (vl_resolve(e, list->u.seq.items[i], &item) != 0 || item.n == NULL)
            res = TRI_UNKNOWN;
        else if (values_equal(p, v, item.n))
            return TRI_TRUE;
    }
    return res;
}

static int vl_call(const struct vl *e, const char *name, const tosca_ynode_t *args)
{
    tosca_ynode_t *const *argv;
    tosca_ynode_t *one;
    struct vl_arg a[2];
    const struct vl_fn *fn = NULL;
    tosca_prim_t p;
    int r;

    for (size_t i = 0; i < TOSCA_ARRAY_LEN(vl_fns) && fn == NULL; i++)
        if (strcmp(vl_fns[i].name, name) == 0)
            fn = &vl_fns[i];
    if (fn == NULL || vl_argv(args, &argv, &one) != 2)
        return TRI_UNKNOWN;
    if (vl_resolve(e, argv[0], &a[0]) || vl_resolve(e, argv[1], &a[1]) || !a[0].n || !a[1].n)
        return TRI_UNKNOWN;
    p = a[0].typed ? a[0].prim : a[1].typed ? a[1].prim : TOSCA_P_ANY;
    if (fn->op == TOSCA_C_VALID_VALUES && a[1].n->kind == TOSCA_Y_SEQ)
        return vl_valid_values(e, p, a[0].n, a[1].n);
    if (fn->op < VL_HAS_SUFFIX)
        r = eval_op((tosca_cop_t)fn->op, p, a[0].n, a[1].n);
    else
        r = eval_coll(fn->op, a[0].n, a[1].n);
    if (r == ORC_ENOMEM)
        return r;
    return r < 0 ? TRI_UNKNOWN : r ? TRI_TRUE : TRI_FALSE;
}

static int vl_eval(const struct vl *e, const tosca_ynode_t *x);

/* $and / $or with three-valued logic; $not of one argument. */
static int vl_logic(const struct vl *e, const char *name, const tosca_ynode_t *args)
{
    tosca_ynode_t *const *argv;
    tosca_ynode_t *one;
    size_t n = vl_argv(args, &argv, &one);
    bool is_and = strcmp(name, "and") == 0;
    int res = is_and ? TRI_TRUE : TRI_FALSE, r;

    if (strcmp(name, "not") == 0) {
        r = n == 1 ? vl_eval(e, argv[0]) : TRI_UNKNOWN;
        return r == TRI_TRUE ? TRI_FALSE : r == TRI_FALSE ? TRI_TRUE : r;
    }
    for (size_t i = 0; i < n; i++) {
        r = vl_eval(e, argv[i]);
        if (r < 0)
            return r;
        if (r == (is_and ? TRI_FALSE : TRI_TRUE))
            return r;
        if (r == TRI_UNKNOWN)
            res = TRI_UNKNOWN;
    }
    return res;
}

static int vl_eval(const struct vl *e, const tosca_ynode_t *x)
{
    const char *name;
    bool b;

    if (tosca_yget_bool(x, &b) == 0)
        return b ? TRI_TRUE : TRI_FALSE;
    if (scalar_is(x, "$value") && tosca_yget_bool(e->value, &b) == 0)
        return b ? TRI_TRUE : TRI_FALSE;
    if (!tosca_is_function(x))
        return TRI_UNKNOWN;
    name = x->u.map.items[0].key->u.scalar.str;
    if (name[0] != '$')
        return TRI_UNKNOWN;
    name++;
    if (strcmp(name, "and") == 0 || strcmp(name, "or") == 0 || strcmp(name, "not") == 0)
        return vl_logic(e, name, x->u.map.items[0].value);
    return vl_call(e, name, x->u.map.items[0].value);
}

/* ---- checking values ---------------------------------------------------- */

static tosca_prim_t schema_prim(const tosca_schema_t *s)
{
    if (s->data_type && s->data_type->prim != TOSCA_P_ANY)
        return s->data_type->prim;
    return s->prim;
}

static const char *type_label(const tosca_schema_t *s)
{
    if (s->type_name)
        return s->type_name;
    if (s->data_type)
        return s->data_type->name;
    return tosca_prim_name(schema_prim(s));
}

static const tosca_schema_t *entry_schema_of(const tosca_schema_t *s, bool key)
{
    const tosca_schema_t *es = key ? s->key_schema : s->entry_schema;

    for (const tosca_type_t *t = s->data_type; t && es == NULL; t = t->parent)
        es = key ? t->key_schema : t->entry_schema;
    return es;
}

static int type_error(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                      const char *what)
{
    char buf[SHOW_MAX];

    show(v, buf);
    if (c->lenient_types)
        return tosca_defect(c->diags, &v->mark, "type-mismatch", "%s: value %s is not of type %s",
                            what, buf, type_label(s));
    return tosca_error(c->diags, &v->mark, "type-mismatch", "%s: value %s is not of type %s", what,
                       buf, type_label(s));
}

static int check_node(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                      const char *what, bool key);

/* Any scalar is a string; a plain one that resolves to something else is a defect. */
static int check_string(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                        const char *what, bool key)
{
    const char *rt;

    if (v->kind != TOSCA_Y_SCALAR)
        return type_error(c, s, v, what);
    rt = tosca_yresolved_type(v);
    if (key || strcmp(rt, "string") == 0)
        return 0;
    return tosca_defect(c->diags, &v->mark, "type-mismatch",
                        "%s: value %s is read as %s, not a string (quote it)", what,
                        v->u.scalar.str, rt);
}

static int check_list(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                      const char *what)
{
    const tosca_schema_t *es = entry_schema_of(s, false);
    char name[WHAT_MAX];
    int rc = 0;

    if (v->kind != TOSCA_Y_SEQ)
        return type_error(c, s, v, what);
    for (size_t i = 0; es && i < v->u.seq.count && rc != ORC_ENOMEM; i++) {
        snprintf(name, sizeof(name), "entry %zu of %s", i, what);
        rc = merge_rc(rc, check_node(c, es, v->u.seq.items[i], name, false));
    }
    return rc;
}

static int check_map(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                     const char *what)
{
    const tosca_schema_t *es = entry_schema_of(s, false), *ks = entry_schema_of(s, true);
    char name[WHAT_MAX];
    int rc = 0;

    if (v->kind != TOSCA_Y_MAP)
        return type_error(c, s, v, what);
    for (size_t i = 0; i < v->u.map.count && rc != ORC_ENOMEM; i++) {
        const tosca_ypair_t *p = &v->u.map.items[i];
        if (ks) {
            snprintf(name, sizeof(name), "key '%s' of %s", p->key->u.scalar.str, what);
            rc = merge_rc(rc, check_node(c, ks, p->key, name, true));
        }
        if (es) {
            snprintf(name, sizeof(name), "entry '%s' of %s", p->key->u.scalar.str, what);
            rc = merge_rc(rc, check_node(c, es, p->value, name, false));
        }
    }
    return rc;
}

/* Each field of the value is a property of the data type (or a parent). */
static int check_fields(const tosca_check_t *c, const tosca_type_t *dt, const tosca_ynode_t *v,
                        const char *what)
{
    char name[WHAT_MAX];
    int rc = 0;

    for (size_t i = 0; i < v->u.map.count && rc != ORC_ENOMEM; i++) {
        const tosca_ypair_t *p = &v->u.map.items[i];
        const tosca_schema_t *fs = tosca_type_property(dt, p->key->u.scalar.str);
        if (fs == NULL) {
            rc = merge_rc(rc, tosca_defect(c->diags, &p->key->mark, "unknown-field",
                                           "%s: '%s' is not a field of data type '%s'", what,
                                           p->key->u.scalar.str, dt->name));
            continue;
        }
        snprintf(name, sizeof(name), "field '%s' of %s", p->key->u.scalar.str, what);
        rc = merge_rc(rc, check_node(c, fs, p->value, name, false));
    }
    return rc;
}

/* Required fields without a default (nearest definition wins) must be given. */
static int check_required(const tosca_check_t *c, const tosca_type_t *dt, const tosca_ynode_t *v,
                          const char *what)
{
    int rc = 0;

    for (const tosca_type_t *t = dt; t && rc != ORC_ENOMEM; t = t->parent) {
        for (size_t i = 0; i < t->properties.count && rc != ORC_ENOMEM; i++) {
            const tosca_schema_t *fs = t->properties.items[i];
            if (!fs->required || fs->default_value || tosca_ymap_pair(v, fs->name) ||
                tosca_type_property(dt, fs->name) != fs)
                continue;
            rc = merge_rc(rc, tosca_error(c->diags, &v->mark, "missing-field",
                                          "%s: required field '%s' of data type '%s' is missing",
                                          what, fs->name, dt->name));
        }
    }
    return rc;
}

static int check_complex(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                         const char *what)
{
    int rc;

    if (v->kind != TOSCA_Y_MAP)
        return type_error(c, s, v, what);
    if (s->data_type == NULL)
        return 0;
    rc = check_fields(c, s->data_type, v, what);
    return merge_rc(rc, check_required(c, s->data_type, v, what));
}

static int check_type(const tosca_check_t *c, const tosca_schema_t *s, tosca_prim_t p,
                      const tosca_ynode_t *v, const char *what, bool key)
{
    struct cval cv;

    switch (p) {
    case TOSCA_P_ANY:
        return 0;
    case TOSCA_P_STRING:
        return check_string(c, s, v, what, key);
    case TOSCA_P_LIST:
        return check_list(c, s, v, what);
    case TOSCA_P_MAP:
        return check_map(c, s, v, what);
    case TOSCA_P_COMPLEX:
        return check_complex(c, s, v, what);
    default:
        return cval_of(p, v, &cv) == 0 ? 0 : type_error(c, s, v, what);
    }
}

static int check_constraints(const tosca_check_t *c, tosca_prim_t p, const tosca_constraint_t *k,
                             size_t n, const tosca_ynode_t *v, const char *what)
{
    char vbuf[SHOW_MAX], abuf[SHOW_MAX];
    int rc = 0, r;

    for (size_t i = 0; i < n; i++) {
        r = eval_op(k[i].op, p, v, k[i].arg);
        if (r == ORC_ENOMEM)
            return r;
        if (r != 0)
            continue; /* holds, or operands of other types (already reported) */
        rc = merge_rc(rc, tosca_error(c->diags, &v->mark, "constraint-violated",
                                      "%s: value %s violates %s: %s", what, show(v, vbuf),
                                      tosca_constraint_name(k[i].op), show(k[i].arg, abuf)));
    }
    return rc;
}

static int check_validation(const tosca_check_t *c, const tosca_ynode_t *clause, tosca_prim_t p,
                            const tosca_ynode_t *v, const char *what)
{
    struct vl e = {v, p};
    char vbuf[SHOW_MAX], cbuf[SHOW_MAX];
    int r;

    if (clause == NULL)
        return 0;
    r = vl_eval(&e, clause);
    if (r != TRI_FALSE)
        return r < 0 ? r : 0;
    return tosca_error(c->diags, &v->mark, "constraint-violated",
                       "%s: value %s fails validation %s", what, show(v, vbuf), show(clause, cbuf));
}

/* The schema's constraints and validation, then those of its data type chain. */
static int check_rules(const tosca_check_t *c, const tosca_schema_t *s, tosca_prim_t p,
                       const tosca_ynode_t *v, const char *what)
{
    int rc = check_constraints(c, p, s->constraints, s->constraint_count, v, what);

    rc = merge_rc(rc, check_validation(c, s->validation, p, v, what));
    for (const tosca_type_t *t = s->data_type; t && rc != ORC_ENOMEM; t = t->parent) {
        rc = merge_rc(rc, check_constraints(c, p, t->constraints, t->constraint_count, v, what));
        rc = merge_rc(rc, check_validation(c, t->validation, p, v, what));
    }
    return rc;
}

/* A quoted scalar whose text is a valid value of p ("4" for an integer):
 * lenient parsers read it so; a defect, and the value is read as plain. */
static int coerce_quoted(const tosca_check_t *c, tosca_prim_t p, const tosca_ynode_t **v,
                         tosca_ynode_t *tmp, const char *what)
{
    struct cval cv;

    if ((p != TOSCA_P_INTEGER && p != TOSCA_P_FLOAT && p != TOSCA_P_BOOLEAN) ||
        (*v)->kind != TOSCA_Y_SCALAR || (*v)->plain || (*v)->tag)
        return 0;
    *tmp = **v;
    tmp->plain = true;
    if (cval_of(p, tmp, &cv) < 0)
        return 0;
    *v = tmp;
    return tosca_defect(c->diags, &tmp->mark, "type-mismatch",
                        "%s: value \"%s\" is quoted, so it is a string; read as %s", what,
                        tmp->u.scalar.str, tosca_prim_name(p));
}

/* A version written without its minor number ("7"): read as 7.0, a defect. */
static int version_defect(const tosca_check_t *c, tosca_prim_t p, const tosca_ynode_t *v,
                          const char *what)
{
    if (p != TOSCA_P_VERSION || v->kind != TOSCA_Y_SCALAR || strchr(v->u.scalar.str, '.'))
        return 0;
    return tosca_defect(c->diags, &v->mark, "type-mismatch",
                        "%s: version '%s' has no minor number; read as %s.0", what,
                        v->u.scalar.str, v->u.scalar.str);
}

static int check_node(const tosca_check_t *c, const tosca_schema_t *s, const tosca_ynode_t *v,
                      const char *what, bool key)
{
    tosca_prim_t p = schema_prim(s);
    tosca_ynode_t tmp;
    int rc;

    if (v == NULL || tosca_is_function(v))
        return 0; /* absent (required-ness is the caller's), or computed later */
    if (tosca_yis_null(v) && p != TOSCA_P_NULL && p != TOSCA_P_ANY)
        return s->required ? type_error(c, s, v, what) : 0;
    rc = coerce_quoted(c, p, &v, &tmp, what);
    if (rc < 0)
        return rc;
    rc = check_type(c, s, p, v, what, key);
    if (rc == 0)
        rc = version_defect(c, p, v, what);
    if (rc < 0)
        return rc;
    return check_rules(c, s, p, v, what);
}

int tosca_value_check(const tosca_check_t *c, const tosca_schema_t *schema,
                      const tosca_ynode_t *value, const char *what)
{
    if (c == NULL || c->diags == NULL || schema == NULL)
        return ORC_EINVAL;
    return check_node(c, schema, value, what ? what : "value", false);
}
