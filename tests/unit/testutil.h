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

#include <arpa/inet.h>
#include <cmocka.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tosca/tosca.h"

/* A whole file, NUL-terminated (caller frees), its length in *len (may be
 * NULL); NULL when it cannot be read whole. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n = 0;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = calloc(1, (size_t)n + 1)) != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf && len)
        *len = (size_t)n;
    fclose(f);
    return buf;
}

/* A loopback TCP port that was free a moment ago (bound to 0, then closed). */
static inline int test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    assert_int_equal(0, bind(fd, (struct sockaddr *)&a, sizeof(a)));
    assert_int_equal(0, getsockname(fd, (struct sockaddr *)&a, &len));
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Makes a fresh directory $TMPDIR/PREFIX-XXXXXX (TMPDIR unset: /tmp) into
 * out; 0, or -1 when it cannot. */
static inline int test_mkdtemp(char *out, size_t size, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || *tmp == '\0')
        tmp = "/tmp";
    if (snprintf(out, size, "%s/%s-XXXXXX", tmp, prefix) >= (int)size)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

/* Removes a file or a directory tree (test data only); missing is fine. */
static inline void test_rm_tree(const char *path)
{
    struct stat st;
    struct dirent *e;
    char sub[1024];
    DIR *d;

    if (lstat(path, &st) < 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    d = opendir(path);
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) < (int)sizeof(sub))
            test_rm_tree(sub);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

/* How many resources a sim cloud holds, from its inventory file (0 when the
 * file does not exist yet). */
static inline size_t test_sim_resources(const char *inventory_path)
{
    json_error_t err;
    json_t *inv = json_load_file(inventory_path, 0, &err), *res;
    size_t n;

    if (inv == NULL)
        return 0;
    res = json_object_get(inv, "resources");
    n = json_is_object(res) ? json_object_size(res) : json_array_size(res);
    json_decref(inv);
    return n;
}

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
