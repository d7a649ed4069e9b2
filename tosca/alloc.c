/*
 * The library's allocator: every heap allocation in libtosca goes through
 * these functions, so a host program (or a test injecting failures) can
 * replace them with tosca_replace_allocator().
 */
#include <stdlib.h>
#include <string.h>

#include "base.h"

static struct {
    void *(*malloc_fn)(size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*calloc_fn)(size_t, size_t);
    void (*free_fn)(void *);
} allocator = {malloc, realloc, calloc, free};

int tosca_replace_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                            void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *))
{
    if (!malloc_fn && !realloc_fn && !calloc_fn && !free_fn) {
        allocator.malloc_fn = malloc;
        allocator.realloc_fn = realloc;
        allocator.calloc_fn = calloc;
        allocator.free_fn = free;
        return 0;
    }
    if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
        return ORC_EINVAL;
    allocator.malloc_fn = malloc_fn;
    allocator.realloc_fn = realloc_fn;
    allocator.calloc_fn = calloc_fn;
    allocator.free_fn = free_fn;
    return 0;
}

void *tosca_malloc(size_t n)
{
    return allocator.malloc_fn(n ? n : 1);
}

void *tosca_calloc(size_t n, size_t size)
{
    if (n == 0 || size == 0)
        n = size = 1;
    return allocator.calloc_fn(n, size);
}

void *tosca_realloc(void *p, size_t n)
{
    return allocator.realloc_fn(p, n ? n : 1);
}

void tosca_free(void *p)
{
    if (p)
        allocator.free_fn(p);
}

char *tosca_strndup(const char *s, size_t n)
{
    char *d = tosca_malloc(n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *tosca_strdup(const char *s)
{
    return s ? tosca_strndup(s, strlen(s)) : NULL;
}

int tosca_grow(void *items_ptr, size_t *cap, size_t need, size_t elem)
{
    void **items = items_ptr;
    size_t ncap = *cap ? *cap : 8;
    void *p;

    if (need <= *cap)
        return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return ORC_ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return ORC_ENOMEM;
    p = tosca_realloc(*items, ncap * elem);
    if (p == NULL)
        return ORC_ENOMEM;
    *items = p;
    *cap = ncap;
    return 0;
}
