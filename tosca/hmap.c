/*
 * Open-addressing hash map from borrowed string keys to pointers (FNV-1a,
 * linear probing, load factor at most 1/2). No deletion: the library builds
 * maps once per template and frees them whole.
 */
#include <string.h>

#include "base.h"

uint64_t tosca_hash(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

void tosca_hmap_init(tosca_hmap_t *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void tosca_hmap_fini(tosca_hmap_t *m)
{
    tosca_free(m->slots);
    tosca_hmap_init(m);
}

static tosca_hmap_entry_t *hmap_find(const tosca_hmap_t *m, const char *key, size_t n,
                                     uint64_t h)
{
    size_t mask = m->cap - 1;

    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        tosca_hmap_entry_t *e = &m->slots[i];
        if (e->key == NULL)
            return e;
        if (e->hash == h && e->key_len == n && memcmp(e->key, key, n) == 0)
            return e;
    }
}

void *tosca_hmap_getn(const tosca_hmap_t *m, const char *key, size_t n)
{
    tosca_hmap_entry_t *e;

    if (m->count == 0)
        return NULL;
    e = hmap_find(m, key, n, tosca_hash(key, n));
    return e->key ? e->value : NULL;
}

void *tosca_hmap_get(const tosca_hmap_t *m, const char *key)
{
    return tosca_hmap_getn(m, key, strlen(key));
}

static int hmap_rehash(tosca_hmap_t *m, size_t ncap)
{
    tosca_hmap_t n = {tosca_calloc(ncap, sizeof(tosca_hmap_entry_t)), ncap, m->count};

    if (n.slots == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        tosca_hmap_entry_t *e = &m->slots[i];
        if (e->key)
            *hmap_find(&n, e->key, e->key_len, e->hash) = *e;
    }
    tosca_free(m->slots);
    *m = n;
    return 0;
}

int tosca_hmap_putn(tosca_hmap_t *m, const char *key, size_t n, void *value, void **old)
{
    uint64_t h = tosca_hash(key, n);
    tosca_hmap_entry_t *e;

    if (old)
        *old = NULL;
    if ((m->count + 1) * 2 > m->cap) {
        int rc = hmap_rehash(m, m->cap ? m->cap * 2 : 16);
        if (rc < 0)
            return rc;
    }
    e = hmap_find(m, key, n, h);
    if (e->key) {
        if (old)
            *old = e->value;
        e->value = value;
        return 0;
    }
    e->key = key;
    e->key_len = n;
    e->hash = h;
    e->value = value;
    m->count++;
    return 0;
}

int tosca_hmap_put(tosca_hmap_t *m, const char *key, void *value, void **old)
{
    return tosca_hmap_putn(m, key, strlen(key), value, old);
}

tosca_hmap_entry_t *tosca_hmap_next(const tosca_hmap_t *m, size_t *pos)
{
    while (*pos < m->cap) {
        tosca_hmap_entry_t *e = &m->slots[(*pos)++];
        if (e->key)
            return e;
    }
    return NULL;
}
