/*
 * Internal base of libtosca: the allocator, arenas, growable strings, a string
 * hash map, and the diagnostic helpers every parser stage reports through.
 * Nothing here is exported from the library's public header.
 */
#ifndef TOSCA_BASE_H
#define TOSCA_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tosca/tosca.h"

#define TOSCA_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TOSCA_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* ---- allocator (alloc.c): the only place malloc and free are called ------ */
void *tosca_malloc(size_t n);
void *tosca_calloc(size_t n, size_t size);
void *tosca_realloc(void *p, size_t n);
void tosca_free(void *p);
char *tosca_strdup(const char *s);
char *tosca_strndup(const char *s, size_t n);
/* Grows *items (of elem bytes each) so that it holds at least need; 0 or ORC_ENOMEM. */
int tosca_grow(void *items_ptr, size_t *cap, size_t need, size_t elem);

/* ---- arena (arena.c): bump allocation freed all at once ------------------ */
struct tosca_arena_chunk;
typedef struct tosca_arena {
    struct tosca_arena_chunk *head;
    size_t used_total;
} tosca_arena_t;

void tosca_arena_init(tosca_arena_t *a);
void tosca_arena_fini(tosca_arena_t *a);
void *tosca_arena_alloc(tosca_arena_t *a, size_t n); /* zeroed, 16-aligned; NULL on OOM */
char *tosca_arena_strndup(tosca_arena_t *a, const char *s, size_t n);
char *tosca_arena_strdup(tosca_arena_t *a, const char *s);
char *tosca_arena_printf(tosca_arena_t *a, const char *fmt, ...) TOSCA_PRINTF(2, 3);

/* ---- growable string (strbuf.c) ----------------------------------------- */
typedef struct tosca_strbuf {
    char *s;
    size_t len;
    size_t cap;
    bool oom; /* sticky: an append failed */
} tosca_strbuf_t;

void tosca_strbuf_init(tosca_strbuf_t *b);
void tosca_strbuf_fini(tosca_strbuf_t *b);
void tosca_strbuf_append(tosca_strbuf_t *b, const char *s, size_t n);
void tosca_strbuf_puts(tosca_strbuf_t *b, const char *s);
void tosca_strbuf_printf(tosca_strbuf_t *b, const char *fmt, ...) TOSCA_PRINTF(2, 3);
/* True if s equals one of the strings of the NULL-terminated list. */
bool tosca_str_in(const char *s, const char *const *list);
/* Hands the string to the caller (NULL if an append failed); resets b. */
char *tosca_strbuf_take(tosca_strbuf_t *b);

/* ---- string-keyed hash map (hmap.c); keys are borrowed, not copied ------- */
typedef struct tosca_hmap_entry {
    const char *key;
    size_t key_len;
    uint64_t hash;
    void *value;
} tosca_hmap_entry_t;

typedef struct tosca_hmap {
    tosca_hmap_entry_t *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
} tosca_hmap_t;

uint64_t tosca_hash(const char *s, size_t n);
void tosca_hmap_init(tosca_hmap_t *m);
void tosca_hmap_fini(tosca_hmap_t *m);
void *tosca_hmap_getn(const tosca_hmap_t *m, const char *key, size_t n);
void *tosca_hmap_get(const tosca_hmap_t *m, const char *key);
/* Inserts or replaces. *old (if not NULL) gets the replaced value or NULL. */
int tosca_hmap_putn(tosca_hmap_t *m, const char *key, size_t n, void *value, void **old);
int tosca_hmap_put(tosca_hmap_t *m, const char *key, void *value, void **old);
/* Iterates: start with *pos = 0; returns the next entry or NULL at the end. */
tosca_hmap_entry_t *tosca_hmap_next(const tosca_hmap_t *m, size_t *pos);

/* ---- diagnostics (diag.c) ----------------------------------------------- */

/* A source position; file is borrowed (interned by the loader). */
typedef struct tosca_mark {
    const char *file;
    uint32_t line;
    uint32_t col;
} tosca_mark_t;

/* Always an error. Returns ORC_ETOSCA (or ORC_ENOMEM if the note could not be
 * stored), so a caller can `return tosca_error(...)`. mark may be NULL. */
int tosca_error(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
                ...) TOSCA_PRINTF(4, 5);
/* A defect the lenient mode tolerates: a warning, or an error in strict mode.
 * Returns 0 when recorded as a warning, ORC_ETOSCA when it is an error. */
int tosca_defect(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
                 ...) TOSCA_PRINTF(4, 5);
/* Always a warning; returns 0. */
int tosca_warn(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
               ...) TOSCA_PRINTF(4, 5);
/* Adds a copy of g (a defect takes the strictness of d). 0 or ORC_ENOMEM. */
int tosca_diag_copy(tosca_diags_t *d, const tosca_diag_t *g);
int tosca_diag_vadd(tosca_diags_t *d, tosca_severity_t sev, const tosca_mark_t *mark,
                    const char *code, const char *fmt, va_list ap);

/* ---- UTF-8 (utf8.c) ------------------------------------------------------ */
/* Returns 0 if s is valid UTF-8 with no control characters other than TAB,
 * LF and CR; else the byte offset+1 of the first bad byte via *bad_at and
 * ORC_EFORMAT. */
int tosca_utf8_check(const unsigned char *s, size_t n, size_t *bad_at);

#endif
