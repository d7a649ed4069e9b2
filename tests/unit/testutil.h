/*
 * Helpers shared by the unit tests: cmocka, reading files, locating the
 * shared corpus, and loading templates from strings with diagnostics.
 * Header-only: each test program includes it once.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tosca/tosca.h"

/* The shared corpus directory: $CORPUS, else ../shared/corpus. */
static inline const char *test_corpus_dir(void)
{
    const char *c = getenv("CORPUS");
    return c && *c ? c : "../shared/corpus";
}

/* True if diags hold a message with this code (any severity). */
static inline int test_has_code(const tosca_diags_t *d, const char *code)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->items[i].code, code) == 0)
            return 1;
    return 0;
}

/* Finds the first diagnostic with this code, or NULL. */
static inline const tosca_diag_t *test_find_code(const tosca_diags_t *d, const char *code)
{
    for (size_t i = 0; i < d->count; i++)
        if (strcmp(d->items[i].code, code) == 0)
            return &d->items[i];
    return NULL;
}

static inline void test_print_diags(const tosca_diags_t *d)
{
    char buf[2048];
    for (size_t i = 0; i < d->count; i++)
        fprintf(stderr, "  %s\n", tosca_diag_format(&d->items[i], buf, sizeof(buf)));
}

#endif
