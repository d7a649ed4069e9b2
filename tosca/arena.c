/*
 * Arenas: bump allocation in chunks, freed all at once. YAML documents and
 * parsed templates keep all their small objects in one.
 */
#include <stdio.h>
#include <string.h>

#include "base.h"

#define ARENA_CHUNK 16384u
#define ARENA_ALIGN 16u

struct tosca_arena_chunk {
    struct tosca_arena_chunk *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

void tosca_arena_init(tosca_arena_t *a)
{
    a->head = NULL;
    a->used_total = 0;
}

void tosca_arena_fini(tosca_arena_t *a)
{
    struct tosca_arena_chunk *c = a->head;

    while (c) {
        struct tosca_arena_chunk *next = c->next;
        tosca_free(c);
        c = next;
    }
    a->head = NULL;
    a->used_total = 0;
}

static struct tosca_arena_chunk *arena_new_chunk(tosca_arena_t *a, size_t need)
{
    size_t size = need > ARENA_CHUNK ? need : ARENA_CHUNK;
    struct tosca_arena_chunk *c;

    if (size > SIZE_MAX - sizeof(*c))
        return NULL;
    c = tosca_malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->size = size;
    c->used = 0;
    if (a->head && need > ARENA_CHUNK) {
        /* big block: keep the current chunk in front for the small ones */
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c;
}

void *tosca_arena_alloc(tosca_arena_t *a, size_t n)
{
    struct tosca_arena_chunk *c = a->head;
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    void *p;

    if (need < n)
        return NULL;
    if (c == NULL || c->size - c->used < need) {
        c = arena_new_chunk(a, need);
        if (c == NULL)
            return NULL;
    }
    p = c->data + c->used;
    c->used += need;
    a->used_total += need;
    memset(p, 0, n);
    return p;
}

char *tosca_arena_strndup(tosca_arena_t *a, const char *s, size_t n)
{
    char *d = tosca_arena_alloc(a, n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *tosca_arena_strdup(tosca_arena_t *a, const char *s)
{
    return tosca_arena_strndup(a, s, strlen(s));
}

char *tosca_arena_printf(tosca_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = tosca_arena_alloc(a, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}
