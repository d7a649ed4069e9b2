/*
 * Unit tests for libtosca's base layer (base.h): the replaceable allocator and
 * tosca_grow, arenas, growable strings, the string hash map, diagnostics and
 * UTF-8 validation. Ends with allocation-failure loops over the YAML loader:
 * a test allocator fails the Nth allocation for every N until the parse
 * succeeds, and counts live blocks so that every failure path is leak-free.
 */
#include <math.h>

#include "testutil.h"

#include "base.h"
#include "yaml.h"

/* ---- test allocator: counts live blocks, fails on request --------------- */

static struct {
    size_t calls;       /* allocations attempted (malloc, calloc, realloc) */
    size_t fail_at;     /* fail exactly this call (1-based); 0: never */
    size_t big_size;    /* with big_allowed: allocations at least this large... */
    size_t big_allowed; /* ...succeed this many times, then fail */
    size_t big_seen;
    size_t failures; /* allocations refused */
    long live;       /* blocks handed out and not yet freed */
} ta;

static bool ta_should_fail(size_t n)
{
    ta.calls++;
    /* absurd sizes fail as a real allocator would (and ASan does not abort) */
    if (n > ((size_t)1 << 40) || (ta.fail_at && ta.calls == ta.fail_at)) {
        ta.failures++;
        return true;
    }
    if (ta.big_size && n >= ta.big_size && ++ta.big_seen > ta.big_allowed) {
        ta.failures++;
        return true;
    }
    return false;
}

static void *ta_malloc(size_t n)
{
    void *p;

    if (ta_should_fail(n))
        return NULL;
    p = malloc(n);
    if (p)
        ta.live++;
    return p;
}

static void *ta_calloc(size_t n, size_t size)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    if (ta_should_fail(n * size))
        return NULL;
    p = calloc(n, size);
    if (p)
        ta.live++;
    return p;
}

static void *ta_realloc(void *old, size_t n)
{
    void *p;

    if (ta_should_fail(n))
        return NULL;
    p = realloc(old, n);
    if (p && old == NULL)
        ta.live++;
    return p;
}

static void ta_free(void *p)
{
    if (p)
        ta.live--;
    free(p);
}

/* Installs the counting allocator with failures off. */
static void ta_install(void)
{
    memset(&ta, 0, sizeof(ta));
    assert_int_equal(tosca_replace_allocator(ta_malloc, ta_realloc, ta_calloc, ta_free), 0);
}

/* Checks that nothing leaked and restores the C library's allocator. */
static void ta_uninstall(void)
{
    assert_int_equal(ta.live, 0);
    assert_int_equal(tosca_replace_allocator(NULL, NULL, NULL, NULL), 0);
}

/* ---- allocator and tosca_grow ------------------------------------------- */

static void replace_allocator_all_or_none(void **state)
{
    (void)state;
    assert_int_equal(tosca_replace_allocator(ta_malloc, NULL, ta_calloc, ta_free), ORC_EINVAL);
    assert_int_equal(tosca_replace_allocator(NULL, NULL, NULL, ta_free), ORC_EINVAL);
    ta_install();
    char *s = tosca_strdup("hello");
    assert_string_equal(s, "hello");
    assert_int_equal(ta.live, 1);
    tosca_free(s);
    tosca_free(NULL); /* NULL-safe, never reaches the allocator */
    assert_null(tosca_strdup(NULL));
    s = tosca_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    tosca_free(s);
    /* zero sizes still give a real block */
    void *p = tosca_malloc(0), *q = tosca_calloc(0, 8);
    assert_non_null(p);
    assert_non_null(q);
    tosca_free(p);
    tosca_free(q);
    ta_uninstall();
}

static void grow_doubles_from_eight(void **state)
{
    int *items = NULL;
    size_t cap = 0;

    (void)state;
    ta_install();
    assert_int_equal(tosca_grow(&items, &cap, 0, sizeof(*items)), 0);
    assert_null(items); /* nothing needed, nothing allocated */
    assert_int_equal(tosca_grow(&items, &cap, 1, sizeof(*items)), 0);
    assert_int_equal(cap, 8);
    for (int i = 0; i < 8; i++)
        items[i] = i;
    int *before = items;
    assert_int_equal(tosca_grow(&items, &cap, 8, sizeof(*items)), 0);
    assert_ptr_equal(items, before); /* need <= cap: untouched */
    assert_int_equal(tosca_grow(&items, &cap, 9, sizeof(*items)), 0);
    assert_int_equal(cap, 16);
    assert_int_equal(tosca_grow(&items, &cap, 100, sizeof(*items)), 0);
    assert_int_equal(cap, 128);
    for (int i = 0; i < 8; i++)
        assert_int_equal(items[i], i); /* contents survive */
    items[127] = 127;
    tosca_free(items);
    ta_uninstall();
}

static void grow_refuses_overflow_and_oom(void **state)
{
    char *items = NULL;
    size_t cap = 0;

    (void)state;
    ta_install();
    /* need * elem overflows size_t */
    assert_int_equal(tosca_grow(&items, &cap, SIZE_MAX / 2, 4), ORC_ENOMEM);
    assert_int_equal(tosca_grow(&items, &cap, SIZE_MAX, 1), ORC_ENOMEM);
    /* the default first capacity (8) times a huge element overflows */
    assert_int_equal(tosca_grow(&items, &cap, 1, SIZE_MAX / 4 + 1), ORC_ENOMEM);
    assert_int_equal(tosca_grow(&items, &cap, 1, SIZE_MAX / 8 + 1), ORC_ENOMEM);
    assert_null(items);
    assert_int_equal(cap, 0);
    assert_int_equal(ta.calls, 0); /* refused before asking the allocator */

    assert_int_equal(tosca_grow(&items, &cap, 4, 1), 0);
    ta.fail_at = ta.calls + 1;
    assert_int_equal(tosca_grow(&items, &cap, 9, 1), ORC_ENOMEM);
    assert_int_equal(cap, 8); /* unchanged on failure, old block kept */
    assert_non_null(items);
    tosca_free(items);
    ta_uninstall();
}

/* ---- hash map ------------------------------------------------------------ */

static void hmap_insert_and_get(void **state)
{
    tosca_hmap_t m;
    int one = 1, two = 2;
    void *old = &one;

    (void)state;
    ta_install();
    tosca_hmap_init(&m);
    assert_null(tosca_hmap_get(&m, "a")); /* empty map, no slots yet */
    assert_int_equal(tosca_hmap_put(&m, "alpha", &one, &old), 0);
    assert_null(old);
    assert_int_equal(tosca_hmap_put(&m, "beta", &two, NULL), 0);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(tosca_hmap_get(&m, "alpha"), &one);
    assert_ptr_equal(tosca_hmap_get(&m, "beta"), &two);
    assert_null(tosca_hmap_get(&m, "gamma"));
    assert_null(tosca_hmap_get(&m, "alph"));
    assert_null(tosca_hmap_get(&m, ""));
    /* length-delimited lookups and keys */
    assert_ptr_equal(tosca_hmap_getn(&m, "alphabet", 5), &one);
    assert_int_equal(tosca_hmap_putn(&m, "a\0b", 3, &two, NULL), 0);
    assert_ptr_equal(tosca_hmap_getn(&m, "a\0b", 3), &two);
    assert_null(tosca_hmap_getn(&m, "a\0c", 3));
    assert_null(tosca_hmap_get(&m, "a"));
    tosca_hmap_fini(&m);
    assert_int_equal(m.count, 0);
    assert_null(m.slots);
    tosca_hmap_fini(&m); /* twice is fine */
    ta_uninstall();
}

static void hmap_replace_returns_old(void **state)
{
    tosca_hmap_t m;
    int v1 = 1, v2 = 2, v3 = 3;
    void *old = NULL;
    char key2[] = "key"; /* equal content, different storage */

    (void)state;
    tosca_hmap_init(&m);
    assert_int_equal(tosca_hmap_put(&m, "key", &v1, &old), 0);
    assert_null(old);
    assert_int_equal(tosca_hmap_put(&m, key2, &v2, &old), 0);
    assert_ptr_equal(old, &v1);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(tosca_hmap_get(&m, "key"), &v2);
    assert_int_equal(tosca_hmap_put(&m, "key", &v3, NULL), 0);
    assert_ptr_equal(tosca_hmap_get(&m, "key"), &v3);
    assert_int_equal(m.count, 1);
    tosca_hmap_fini(&m);
}

static void hmap_many_keys_rehash(void **state)
{
    enum { N = 20000 };
    static char keys[N][16];
    tosca_hmap_t m;

    (void)state;
    ta_install();
    tosca_hmap_init(&m);
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        assert_int_equal(tosca_hmap_put(&m, keys[i], keys[i], NULL), 0);
        assert_true(m.count * 2 <= m.cap); /* load factor at most 1/2 */
    }
    assert_int_equal(m.count, N);
    assert_int_equal(m.cap & (m.cap - 1), 0); /* power of two */
    assert_int_equal(ta.live, 1);             /* old slot arrays were freed */
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(tosca_hmap_get(&m, keys[i]), keys[i]);
    assert_null(tosca_hmap_get(&m, "k20000"));
    assert_null(tosca_hmap_get(&m, "k-1"));
    tosca_hmap_fini(&m);
    ta_uninstall();
}

static void hmap_iteration_visits_each_once(void **state)
{
    static const char *const names[] = {"one", "two",   "three", "four", "five",
                                        "six", "seven", "eight", "nine", "ten"};
    int seen[TOSCA_ARRAY_LEN(names)] = {0};
    tosca_hmap_t m;
    tosca_hmap_entry_t *e;
    size_t pos = 0, visited = 0;

    (void)state;
    tosca_hmap_init(&m);
    assert_null(tosca_hmap_next(&m, &pos)); /* empty */
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(names); i++)
        assert_int_equal(tosca_hmap_put(&m, names[i], &seen[i], NULL), 0);
    assert_int_equal(tosca_hmap_put(&m, "three", &seen[2], NULL), 0); /* replace: no new entry */
    pos = 0;
    while ((e = tosca_hmap_next(&m, &pos)) != NULL) {
        int *slot = e->value;
        size_t idx = (size_t)(slot - seen);
        assert_true(idx < TOSCA_ARRAY_LEN(names));
        assert_string_equal(e->key, names[idx]);
        assert_int_equal(e->key_len, strlen(names[idx]));
        assert_true(e->hash == tosca_hash(e->key, e->key_len));
        (*slot)++;
        visited++;
    }
    assert_int_equal(visited, TOSCA_ARRAY_LEN(names));
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(names); i++)
        assert_int_equal(seen[i], 1);
    assert_null(tosca_hmap_next(&m, &pos)); /* stays at the end */
    tosca_hmap_fini(&m);
}

static void hmap_hash_is_fnv1a(void **state)
{
    (void)state;
    assert_true(tosca_hash("", 0) == 0xcbf29ce484222325ull);
    assert_true(tosca_hash("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(tosca_hash("foobar", 6) == 0x85944171f73967e8ull);
    assert_true(tosca_hash("ab", 1) == tosca_hash("a", 1));
}

static void hmap_put_oom_keeps_map(void **state)
{
    enum { N = 8 };
    static const char *const keys[N] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    tosca_hmap_t m;

    (void)state;
    ta_install();
    tosca_hmap_init(&m);
    ta.fail_at = 1;
    assert_int_equal(tosca_hmap_put(&m, "x", NULL, NULL), ORC_ENOMEM);
    assert_int_equal(m.count, 0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(tosca_hmap_put(&m, keys[i], (void *)keys[i], NULL), 0);
    assert_int_equal(m.cap, 16);
    ta.fail_at = ta.calls + 1; /* the 9th key needs a rehash to 32 */
    assert_int_equal(tosca_hmap_put(&m, "i", (void *)"i", NULL), ORC_ENOMEM);
    assert_int_equal(m.count, N);
    assert_int_equal(m.cap, 16);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(tosca_hmap_get(&m, keys[i]), keys[i]);
    assert_null(tosca_hmap_get(&m, "i"));
    tosca_hmap_fini(&m);
    ta_uninstall();
}

/* ---- arena --------------------------------------------------------------- */

static void arena_alignment_and_zeroing(void **state)
{
    tosca_arena_t a;
    unsigned char *prev = NULL;
    size_t prev_n = 0;

    (void)state;
    ta_install();
    tosca_arena_init(&a);
    for (size_t n = 0; n < 3000; n++) {
        size_t sz = n % 97;
        unsigned char *p = tosca_arena_alloc(&a, sz);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        for (size_t i = 0; i < sz; i++)
            assert_int_equal(p[i], 0);
        memset(p, 0xA5, sz);
        if (prev) /* the previous block was not overwritten */
            for (size_t i = 0; i < prev_n; i++)
                assert_int_equal(prev[i], 0xA5);
        prev = p;
        prev_n = sz;
    }
    assert_true(a.used_total >= 3000 * 16 / 2);
    assert_int_equal(a.used_total % 16, 0);
    assert_true(ta.live > 1); /* more than one 16 KiB chunk */
    tosca_arena_fini(&a);
    assert_int_equal(a.used_total, 0);
    assert_null(a.head);
    tosca_arena_fini(&a); /* twice is fine */
    ta_uninstall();
}

static void arena_big_blocks(void **state)
{
    tosca_arena_t a;

    (void)state;
    ta_install();
    tosca_arena_init(&a);
    char *s1 = tosca_arena_alloc(&a, 10);
    unsigned char *big = tosca_arena_alloc(&a, 100000);
    char *s2 = tosca_arena_alloc(&a, 10);
    assert_non_null(s1);
    assert_non_null(big);
    assert_non_null(s2);
    assert_int_equal((uintptr_t)big % 16, 0);
    for (size_t i = 0; i < 100000; i++)
        assert_int_equal(big[i], 0);
    memset(big, 0xFF, 100000);
    /* small allocations continue in the chunk in front of the big block */
    assert_ptr_equal(s2, s1 + 16);
    assert_int_equal(ta.live, 2);
    assert_non_null(tosca_arena_alloc(&a, 16385));
    char *s3 = tosca_arena_alloc(&a, 1);
    assert_ptr_equal(s3, s2 + 16);
    assert_int_equal(ta.live, 3);
    /* a block of exactly one chunk's size */
    unsigned char *chunk = tosca_arena_alloc(&a, 16384);
    assert_non_null(chunk);
    assert_int_equal((uintptr_t)chunk % 16, 0);
    memset(chunk, 1, 16384);
    assert_int_equal(s3[0], 0);
    /* sizes that cannot be represented are refused, not wrapped */
    size_t calls = ta.calls;
    assert_null(tosca_arena_alloc(&a, SIZE_MAX));
    assert_null(tosca_arena_alloc(&a, SIZE_MAX - 15));
    assert_null(tosca_arena_alloc(&a, SIZE_MAX - 40));
    assert_int_equal(ta.calls, calls);
    assert_null(tosca_arena_alloc(&a, SIZE_MAX / 2 + 1 - 16)); /* the allocator says no */
    assert_int_equal(a.used_total, 16 * 3 + 100000 + 16384 + 16400);
    tosca_arena_fini(&a);
    ta_uninstall();
}

static void arena_strings_and_printf(void **state)
{
    tosca_arena_t a;

    (void)state;
    tosca_arena_init(&a);
    assert_string_equal(tosca_arena_strdup(&a, "hello"), "hello");
    assert_string_equal(tosca_arena_strdup(&a, ""), "");
    char *s = tosca_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_string_equal(tosca_arena_printf(&a, "%s:%d:%u", "f.yaml", 12, 3u), "f.yaml:12:3");
    assert_string_equal(tosca_arena_printf(&a, "%s", ""), "");
    /* longer than a chunk */
    char *long_s = tosca_arena_printf(&a, "%20000d|", 7);
    assert_non_null(long_s);
    assert_int_equal(strlen(long_s), 20001);
    assert_int_equal(long_s[19999], '7');
    assert_int_equal((uintptr_t)long_s % 16, 0);
    tosca_arena_fini(&a);
}

static void arena_oom(void **state)
{
    tosca_arena_t a;

    (void)state;
    ta_install();
    tosca_arena_init(&a);
    ta.fail_at = 1;
    assert_null(tosca_arena_alloc(&a, 8));
    assert_null(a.head);
    assert_non_null(tosca_arena_alloc(&a, 8));
    ta.fail_at = ta.calls + 1;
    assert_null(tosca_arena_printf(&a, "%50000d", 1));
    /* small ones still fit in the chunk: no allocation, no failure */
    ta.fail_at = ta.calls + 1;
    assert_string_equal(tosca_arena_strdup(&a, "fits"), "fits");
    assert_null(tosca_arena_alloc(&a, 20000));
    assert_int_equal(a.used_total, 16 + 16);
    tosca_arena_fini(&a);
    ta_uninstall();
}

/* ---- strbuf -------------------------------------------------------------- */

static void strbuf_append_printf_take(void **state)
{
    tosca_strbuf_t b;

    (void)state;
    ta_install();
    tosca_strbuf_init(&b);
    tosca_strbuf_append(&b, "abc", 2);
    tosca_strbuf_puts(&b, "-");
    tosca_strbuf_printf(&b, "%d/%s", 42, "x");
    assert_string_equal(b.s, "ab-42/x");
    assert_int_equal(b.len, 7);
    assert_true(b.cap > b.len);
    tosca_strbuf_append(&b, "\0z", 2); /* embedded NUL kept, length says so */
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.s, "ab-42/x\0z", 10);
    for (int i = 0; i < 1000; i++)
        tosca_strbuf_printf(&b, "%04d", i);
    assert_int_equal(b.len, 9 + 4000);
    assert_memory_equal(b.s + 9 + 4 * 999, "0999", 5);
    char *s = tosca_strbuf_take(&b);
    assert_non_null(s);
    assert_null(b.s); /* b was reset */
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_memory_equal(s, "ab-42/x", 8);
    tosca_free(s);
    /* take of an empty buffer is an empty string, not NULL */
    s = tosca_strbuf_take(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    tosca_free(s);
    /* printf of an empty string allocates the terminator */
    tosca_strbuf_printf(&b, "%s", "");
    assert_non_null(b.s);
    assert_string_equal(b.s, "");
    tosca_strbuf_fini(&b);
    tosca_strbuf_fini(&b);
    ta_uninstall();
}

static void strbuf_oom_is_sticky(void **state)
{
    tosca_strbuf_t b;

    (void)state;
    ta_install();
    tosca_strbuf_init(&b);
    tosca_strbuf_puts(&b, "ok");
    ta.fail_at = ta.calls + 1;
    tosca_strbuf_printf(&b, "%100d", 1);
    assert_true(b.oom);
    tosca_strbuf_puts(&b, "more"); /* allocator works again, but the flag sticks */
    assert_true(b.oom);
    assert_string_equal(b.s, "ok");
    assert_null(tosca_strbuf_take(&b));
    assert_null(b.s);
    assert_false(b.oom);
    /* a length that cannot be represented sets the flag, never wraps */
    tosca_strbuf_append(&b, "x", SIZE_MAX);
    assert_true(b.oom);
    tosca_strbuf_fini(&b);
    tosca_strbuf_puts(&b, "ab");
    tosca_strbuf_append(&b, "x", SIZE_MAX - 2);
    assert_true(b.oom);
    assert_string_equal(b.s, "ab");
    tosca_strbuf_fini(&b);
    assert_false(b.oom);
    ta_uninstall();
}

/* ---- diagnostics --------------------------------------------------------- */

static void diags_severity_by_mode(void **state)
{
    tosca_mark_t m = {"t.yaml", 3, 7};
    tosca_diags_t d;

    (void)state;
    ta_install();
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_error(&d, &m, "e-code", "bad %s", "thing"), ORC_ETOSCA);
    assert_int_equal(tosca_defect(&d, &m, "d-code", "defect %d", 1), 0);
    assert_int_equal(tosca_warn(&d, NULL, "w-code", "just a warning"), 0);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.errors, 1);
    assert_int_equal(d.warnings, 2);
    assert_int_equal(d.items[0].severity, TOSCA_SEV_ERROR);
    assert_string_equal(d.items[0].code, "e-code");
    assert_string_equal(d.items[0].message, "bad thing");
    assert_string_equal(d.items[0].file, "t.yaml");
    assert_ptr_not_equal(d.items[0].file, m.file); /* copied */
    assert_int_equal(d.items[0].line, 3);
    assert_int_equal(d.items[0].col, 7);
    assert_int_equal(d.items[1].severity, TOSCA_SEV_WARNING);
    assert_string_equal(d.items[1].message, "defect 1");
    assert_string_equal(d.items[2].file, ""); /* no mark */
    assert_int_equal(d.items[2].line, 0);
    assert_int_equal(d.items[2].col, 0);
    tosca_diags_fini(&d);
    assert_int_equal(d.count, 0);
    assert_int_equal(d.errors, 0);
    assert_false(d.strict);

    tosca_diags_init(&d, true);
    assert_int_equal(tosca_defect(&d, &m, "d-code", "defect"), ORC_ETOSCA);
    assert_int_equal(tosca_warn(&d, &m, "w-code", "warning"), 0);
    assert_int_equal(tosca_error(&d, NULL, "e-code", "error"), ORC_ETOSCA);
    assert_int_equal(d.errors, 2);
    assert_int_equal(d.warnings, 1);
    assert_int_equal(d.items[0].severity, TOSCA_SEV_ERROR);
    assert_int_equal(d.items[1].severity, TOSCA_SEV_WARNING);
    tosca_diags_fini(&d);
    assert_true(d.strict); /* mode survives fini */
    /* a mark without a file */
    tosca_mark_t nofile = {NULL, 2, 1};
    tosca_error(&d, &nofile, "c", "m");
    assert_string_equal(d.items[0].file, "");
    assert_int_equal(d.items[0].line, 2);
    tosca_diags_fini(&d);
    ta_uninstall();
}

static void diags_max_items_counts_dropped(void **state)
{
    tosca_diags_t d;

    (void)state;
    tosca_diags_init(&d, false);
    d.max_items = 3;
    for (int i = 0; i < 5; i++)
        assert_int_equal(tosca_error(&d, NULL, "e", "error %d", i), ORC_ETOSCA);
    assert_int_equal(tosca_warn(&d, NULL, "w", "warning"), 0);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.dropped, 3);
    assert_int_equal(d.errors, 5); /* dropped ones still count */
    assert_int_equal(d.warnings, 1);
    assert_string_equal(d.items[2].message, "error 2");
    tosca_diags_fini(&d);

    /* default cap is 1000 */
    tosca_diags_init(&d, false);
    for (int i = 0; i < 1005; i++)
        tosca_warn(&d, NULL, "w", "w%d", i);
    assert_int_equal(d.count, 1000);
    assert_int_equal(d.dropped, 5);
    assert_int_equal(d.warnings, 1005);
    tosca_diags_fini(&d);
}

static void diags_sort_is_stable(void **state)
{
    static const struct {
        const char *file;
        uint32_t line, col;
        const char *msg;
    } in[] = {
        {"b.yaml", 1, 1, "b1"},         {"a.yaml", 10, 2, "a10"},        {"a.yaml", 2, 5, "a2.5"},
        {"a.yaml", 2, 1, "a2.1"},       {"a.yaml", 2, 5, "a2.5-second"}, {NULL, 0, 0, "nofile"},
        {"a.yaml", 2, 5, "a2.5-third"},
    };
    static const char *const want[] = {"nofile",     "a2.1", "a2.5", "a2.5-second",
                                       "a2.5-third", "a10",  "b1"};
    tosca_diags_t d;

    (void)state;
    tosca_diags_init(&d, false);
    tosca_diags_sort(&d); /* empty is fine */
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(in); i++) {
        tosca_mark_t m = {in[i].file, in[i].line, in[i].col};
        tosca_error(&d, in[i].file ? &m : NULL, "c", "%s", in[i].msg);
    }
    tosca_diags_sort(&d);
    assert_int_equal(d.count, TOSCA_ARRAY_LEN(want));
    for (size_t i = 0; i < d.count; i++)
        assert_string_equal(d.items[i].message, want[i]);
    tosca_diags_fini(&d);
}

static void diag_format_forms(void **state)
{
    tosca_mark_t full = {"dir/t.yaml", 4, 9}, noline = {"t.yaml", 0, 0};
    tosca_diags_t d;
    char buf[256], tiny[8];

    (void)state;
    tosca_diags_init(&d, false);
    tosca_error(&d, &full, "yaml-syntax", "bad %s", "indent");
    tosca_warn(&d, &noline, "w-code", "whole file");
    tosca_defect(&d, NULL, "d-code", "no place");
    assert_string_equal(tosca_diag_format(&d.items[0], buf, sizeof(buf)),
                        "dir/t.yaml:4:9: error: bad indent [yaml-syntax]");
    assert_string_equal(tosca_diag_format(&d.items[1], buf, sizeof(buf)),
                        "t.yaml: warning: whole file [w-code]");
    assert_string_equal(tosca_diag_format(&d.items[2], buf, sizeof(buf)),
                        "warning: no place [d-code]");
    /* truncated, still terminated */
    assert_ptr_equal(tosca_diag_format(&d.items[0], tiny, sizeof(tiny)), tiny);
    assert_string_equal(tiny, "dir/t.y");
    tosca_diags_fini(&d);
}

static void diag_long_message_truncated(void **state)
{
    tosca_diags_t d;
    char big[3000];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    tosca_diags_init(&d, false);
    tosca_error(&d, NULL, "c", "%s", big);
    assert_int_equal(strlen(d.items[0].message), 1023);
    tosca_diags_fini(&d);
}

static void diags_to_json_fields(void **state)
{
    tosca_mark_t m = {"t.yaml", 4000000000u, 12};
    tosca_diags_t d;
    json_t *j, *o;

    (void)state;
    tosca_diags_init(&d, false);
    j = tosca_diags_to_json(&d);
    assert_non_null(j);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);

    tosca_error(&d, &m, "e-code", "broken \"quote\"");
    tosca_warn(&d, NULL, "w-code", "careful");
    j = tosca_diags_to_json(&d);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 2);
    o = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "error");
    assert_string_equal(json_string_value(json_object_get(o, "code")), "e-code");
    assert_string_equal(json_string_value(json_object_get(o, "file")), "t.yaml");
    assert_true(json_is_integer(json_object_get(o, "line")));
    assert_true(json_integer_value(json_object_get(o, "line")) == 4000000000ll);
    assert_int_equal(json_integer_value(json_object_get(o, "col")), 12);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "broken \"quote\"");
    assert_int_equal(json_object_size(o), 6);
    o = json_array_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "warning");
    assert_string_equal(json_string_value(json_object_get(o, "file")), "");
    assert_int_equal(json_integer_value(json_object_get(o, "line")), 0);
    json_decref(j);
    tosca_diags_fini(&d);
}

static void diags_oom(void **state)
{
    tosca_diags_t d;

    (void)state;
    ta_install();
    tosca_diags_init(&d, false);
    for (size_t n = 1; n <= 3; n++) { /* items array, file copy, message copy */
        ta.calls = 0;
        ta.fail_at = n;
        tosca_mark_t m = {"f", 1, 1};
        assert_int_equal(tosca_error(&d, &m, "c", "msg"), ORC_ENOMEM);
        assert_int_equal(d.count, 0);
        assert_int_equal(ta.live, n == 1 ? 0 : 1); /* only the items array */
        assert_int_equal(tosca_warn(&d, &m, "c", "msg"), 0);
        assert_int_equal(d.count, 1);
        assert_string_equal(d.items[0].message, "msg");
        tosca_diags_fini(&d);
        assert_int_equal(ta.live, 0);
    }
    ta.fail_at = 0;
    d.strict = true;
    ta.calls = 0;
    ta.fail_at = 2;
    assert_int_equal(tosca_defect(&d, NULL, "c", "msg"), ORC_ENOMEM);
    tosca_diags_fini(&d);
    ta_uninstall();
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* 0 when valid; else the 1-based offset of the first bad byte. */
static size_t utf8_bad(const char *s, size_t n)
{
    size_t bad = 0;
    int rc = tosca_utf8_check((const unsigned char *)s, n, &bad);

    if (rc == 0)
        return 0;
    assert_int_equal(rc, ORC_EFORMAT);
    assert_true(bad >= 1 && bad <= n);
    return bad;
}

#define BAD(lit) utf8_bad(lit, sizeof(lit) - 1)

static void utf8_valid_multibyte(void **state)
{
    (void)state;
    assert_int_equal(BAD(""), 0);
    assert_int_equal(BAD("plain ascii ~ \t\r\n"), 0);
    assert_int_equal(BAD("\xc2\x80"), 0);         /* U+0080, first 2-byte */
    assert_int_equal(BAD("caf\xc3\xa9"), 0);      /* é */
    assert_int_equal(BAD("\xdf\xbf"), 0);         /* U+07FF */
    assert_int_equal(BAD("\xe0\xa0\x80"), 0);     /* U+0800 */
    assert_int_equal(BAD("\xe2\x82\xac"), 0);     /* € */
    assert_int_equal(BAD("\xed\x9f\xbf"), 0);     /* U+D7FF */
    assert_int_equal(BAD("\xee\x80\x80"), 0);     /* U+E000 */
    assert_int_equal(BAD("\xef\xbf\xbd"), 0);     /* U+FFFD */
    assert_int_equal(BAD("\xf0\x90\x80\x80"), 0); /* U+10000 */
    assert_int_equal(BAD("\xf0\x9f\x98\x80"), 0); /* emoji */
    assert_int_equal(BAD("\xf4\x8f\xbf\xbf"), 0); /* U+10FFFF */
    assert_int_equal(BAD("\xef\xbb\xbf"
                         "a: 1"),
                     0); /* a BOM is text */
    assert_int_equal(tosca_utf8_check((const unsigned char *)"x", 0, NULL), 0);
    assert_int_equal(tosca_utf8_check((const unsigned char *)"\xff", 1, NULL), ORC_EFORMAT);
}

static void utf8_overlongs(void **state)
{
    (void)state;
    assert_int_equal(BAD("\xc0\x80"), 1); /* NUL, 2 bytes */
    assert_int_equal(BAD("\xc0\xaf"), 1); /* '/' */
    assert_int_equal(BAD("\xc1\xbf"), 1);
    assert_int_equal(BAD("ab\xe0\x80\x80"), 3);       /* NUL, 3 bytes */
    assert_int_equal(BAD("\xe0\x9f\xbf"), 1);         /* U+07FF, 3 bytes */
    assert_int_equal(BAD("\xf0\x80\x80\x80"), 1);     /* NUL, 4 bytes */
    assert_int_equal(BAD("\xf0\x8f\xbf\xbf"), 1);     /* U+FFFF, 4 bytes */
    assert_int_equal(BAD("\xf8\x88\x80\x80\x80"), 1); /* 5-byte forms */
    assert_int_equal(BAD("\xfc\x84\x80\x80\x80\x80"), 1);
}

static void utf8_surrogates_and_range(void **state)
{
    (void)state;
    assert_int_equal(BAD("\xed\xa0\x80"), 1);             /* U+D800 */
    assert_int_equal(BAD("x\xed\xbf\xbf"), 2);            /* U+DFFF */
    assert_int_equal(BAD("\xed\xa0\xbd\xed\xb8\x80"), 1); /* CESU-8 pair */
    assert_int_equal(BAD("\xf4\x90\x80\x80"), 1);         /* U+110000 */
    assert_int_equal(BAD("\xf5\x80\x80\x80"), 1);
    assert_int_equal(BAD("\xf7\xbf\xbf\xbf"), 1);
    assert_int_equal(BAD("\xfe"), 1);
    assert_int_equal(BAD("ok\xff"), 3);
}

static void utf8_truncated_and_stray(void **state)
{
    (void)state;
    assert_int_equal(BAD("\xc3"), 1); /* end of input */
    assert_int_equal(BAD("ab\xe2\x82"), 3);
    assert_int_equal(BAD("\xf0\x9f\x98"), 1);
    assert_int_equal(BAD("\xc3"
                         "A"),
                     1); /* ASCII where a continuation belongs */
    assert_int_equal(BAD("\xe2\x82"
                         "A"),
                     1);
    assert_int_equal(BAD("\xf0\x9f\x98"
                         "\xc3\xa9"),
                     1);
    assert_int_equal(BAD("\x80"), 1); /* lone continuations */
    assert_int_equal(BAD("abc\xbf"), 4);
    assert_int_equal(BAD("\xc3\xa9\xa9"), 3); /* one too many */
    /* a valid sequence cut short by the length passed in */
    assert_int_equal(utf8_bad("\xe2\x82\xac", 2), 1);
}

static void utf8_control_bytes_and_nul(void **state)
{
    (void)state;
    assert_int_equal(utf8_bad("a\0b", 3), 2);
    assert_int_equal(utf8_bad("\0", 1), 1);
    assert_int_equal(BAD("a: \x01"), 4);
    assert_int_equal(BAD("\x08"), 1);    /* backspace */
    assert_int_equal(BAD("x\x0b"), 2);   /* vertical tab */
    assert_int_equal(BAD("x\x0c"), 2);   /* form feed */
    assert_int_equal(BAD("\x1b[0m"), 1); /* escape */
    assert_int_equal(BAD("\x1f"), 1);
    assert_int_equal(BAD("del\x7f"), 4);
    assert_int_equal(BAD("\t\n\r \x20~"), 0);
    /* the first problem wins */
    assert_int_equal(BAD("ok\x01\xff"), 3);
}

/* ---- allocation failure loops over the YAML loader ----------------------- */

static const char oom_doc[] = "base: &base\n"
                              "  name: web\n"
                              "  port: 80\n"
                              "  tags: [a, b, c]\n"
                              "extra: &extra {debug: true, level: !!str 3}\n"
                              "svc:\n"
                              "  <<: [*base, *extra]\n"
                              "  port: 8080\n"
                              "  nested:\n"
                              "    deeper:\n"
                              "      list:\n"
                              "        - x: 1\n"
                              "        - &item {y: 2, z: [1, 2, {w: 3}]}\n"
                              "        - *item\n"
                              "other:\n"
                              "  <<: *base\n"
                              "  k1: v1\n"
                              "  k2: v2\n"
                              "  k3: v3\n"
                              "  k4: v4\n"
                              "  k5: v5\n"
                              "  k6: v6\n"
                              "  k7: v7\n"
                              "  k8: v8\n"
                              "  k9: v9\n"
                              "  k10: v10\n";

/* Fails the 1st, 2nd, ... allocation of a parse of text until one succeeds;
 * every failure must be ORC_ENOMEM (or, for a bad document, its own error)
 * with nothing leaked. Returns the number of failed attempts. */
static size_t oom_loop(const char *text, int final_rc)
{
    size_t n;

    ta_install();
    for (n = 1; n < 100000; n++) {
        tosca_diags_t d;
        tosca_ydoc_t *doc = (tosca_ydoc_t *)&d; /* must be reset to NULL */
        int rc;

        tosca_diags_init(&d, false);
        ta.calls = 0;
        ta.failures = 0;
        ta.fail_at = n;
        rc = tosca_ydoc_parse("oom.yaml", text, strlen(text), NULL, &doc, &d);
        ta.fail_at = 0;
        if (ta.failures == 0) { /* ran to the end without reaching allocation n */
            assert_int_equal(rc, final_rc);
            tosca_ydoc_free(doc);
            tosca_diags_fini(&d);
            assert_int_equal(ta.live, 0);
            break;
        }
        /* a valid document must report the failure; a bad one may still
         * report its own error if the failure hit nothing it needed */
        if (rc != ORC_ENOMEM && (final_rc == 0 || rc != final_rc)) {
            fprintf(stderr, "allocation %zu failed: rc %d\n", n, rc);
            fail();
        }
        if (rc != 0)
            assert_null(doc);
        tosca_ydoc_free(doc);
        tosca_diags_fini(&d);
        if (ta.live != 0)
            fprintf(stderr, "allocation %zu failed: %ld blocks leaked\n", n, ta.live);
        assert_int_equal(ta.live, 0);
    }
    ta_uninstall();
    return n - 1;
}

static void yaml_parse_survives_every_allocation_failure(void **state)
{
    (void)state;
    /* the document is valid: each failed attempt is ORC_ENOMEM, then it parses */
    size_t failures = oom_loop(oom_doc, 0);
    assert_true(failures >= 10);
}

static void yaml_error_paths_survive_allocation_failure(void **state)
{
    (void)state;
    assert_true(oom_loop("a: 1\nb: {c: 2, c: 3}\na: 4\n", ORC_ETOSCA) >= 3);
    assert_true(oom_loop("a: &x [1, {b: *x}]\n", ORC_ETOSCA) >= 2);
    assert_true(oom_loop("a: &a {x: 1}\nb: {<<: [*a, 5]}\n", ORC_ETOSCA) >= 2);
    assert_true(oom_loop("a: [1, 2\n", ORC_ETOSCA) >= 1);
    assert_true(oom_loop("a: 1\nb: \x01\n", ORC_ETOSCA) >= 1);
    assert_true(oom_loop("a: 1\n---\nb: 2\n", ORC_ETOSCA) >= 1);
    assert_true(oom_loop("? [a]\n: 1\n", ORC_ETOSCA) >= 1);
}

/* The arena asks for a second 16 KiB chunk at whatever point the first one
 * fills up; move that point across every allocation of the document's tail
 * and refuse the chunk each time. */
static void yaml_arena_chunk_failure_anywhere(void **state)
{
    static const char tail[] = "\nm: &a {k: v, <<: {z: 1}}\n"
                               "s: &s [x, *a, !!str 1, {q: &t [1, *a]}]\n"
                               "t: {<<: [*a, {n: *s}], u: *t}\n";
    size_t saw_enomem = 0;
    char *text = malloc(16384 + sizeof(tail) + 8);

    (void)state;
    assert_non_null(text);
    for (size_t pad = 14000; pad < 16384; pad += 4) {
        tosca_diags_t d;
        tosca_ydoc_t *doc = NULL;
        int rc;

        memcpy(text, "pad: ", 5);
        memset(text + 5, 'p', pad);
        memcpy(text + 5 + pad, tail, sizeof(tail));
        tosca_diags_init(&d, false);
        ta_install();
        ta.big_size = 16384;
        ta.big_allowed = 1;
        rc = tosca_ydoc_parse("chunk.yaml", text, strlen(text), NULL, &doc, &d);
        if (rc == ORC_ENOMEM) {
            saw_enomem++;
            assert_null(doc);
        } else {
            assert_int_equal(rc, 0);
        }
        tosca_ydoc_free(doc);
        tosca_diags_fini(&d);
        ta_uninstall();
    }
    free(text);
    assert_true(saw_enomem > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replace_allocator_all_or_none),
        cmocka_unit_test(grow_doubles_from_eight),
        cmocka_unit_test(grow_refuses_overflow_and_oom),
        cmocka_unit_test(hmap_insert_and_get),
        cmocka_unit_test(hmap_replace_returns_old),
        cmocka_unit_test(hmap_many_keys_rehash),
        cmocka_unit_test(hmap_iteration_visits_each_once),
        cmocka_unit_test(hmap_hash_is_fnv1a),
        cmocka_unit_test(hmap_put_oom_keeps_map),
        cmocka_unit_test(arena_alignment_and_zeroing),
        cmocka_unit_test(arena_big_blocks),
        cmocka_unit_test(arena_strings_and_printf),
        cmocka_unit_test(arena_oom),
        cmocka_unit_test(strbuf_append_printf_take),
        cmocka_unit_test(strbuf_oom_is_sticky),
        cmocka_unit_test(diags_severity_by_mode),
        cmocka_unit_test(diags_max_items_counts_dropped),
        cmocka_unit_test(diags_sort_is_stable),
        cmocka_unit_test(diag_format_forms),
        cmocka_unit_test(diag_long_message_truncated),
        cmocka_unit_test(diags_to_json_fields),
        cmocka_unit_test(diags_oom),
        cmocka_unit_test(utf8_valid_multibyte),
        cmocka_unit_test(utf8_overlongs),
        cmocka_unit_test(utf8_surrogates_and_range),
        cmocka_unit_test(utf8_truncated_and_stray),
        cmocka_unit_test(utf8_control_bytes_and_nul),
        cmocka_unit_test(yaml_parse_survives_every_allocation_failure),
        cmocka_unit_test(yaml_error_paths_survive_allocation_failure),
        cmocka_unit_test(yaml_arena_chunk_failure_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
