/*
 * Fetching URL imports with libcurl. Used only for URLs the context's
 * allowlist admits; results are cached on disk under a name derived from the
 * URL, written atomically (temporary file, then rename).
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch.h"

struct sink {
    FILE *fp;
    size_t got;
    size_t max;
};

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    struct sink *s = ud;
    size_t bytes = size * n;

    if (s->got + bytes > s->max)
        return 0; /* aborts the transfer */
    s->got += bytes;
    return fwrite(p, 1, bytes, s->fp);
}

static int cache_path(const tosca_options_t *opts, const char *url, char *out, size_t size)
{
    const char *dir = opts->cache_dir;
    char tmpdir[64];

    if (dir == NULL) {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/tosca-import-cache-%d", (int)getuid());
        dir = tmpdir;
    }
    struct stat st;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    /* a cache someone else could write to would let them choose our types */
    if (lstat(dir, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022))
        return -EPERM;
    snprintf(out, size, "%s/%016llx.yaml", dir, (unsigned long long)tosca_hash(url, strlen(url)));
    return 0;
}

static int download(const tosca_options_t *opts, const char *url, const char *dest,
                    tosca_diags_t *d, const tosca_mark_t *at)
{
    char tmp[4200];
    struct sink s = {NULL, 0, opts->limits.max_file_bytes ? opts->limits.max_file_bytes
                                                          : (4u << 20)};
    CURL *h;
    CURLcode cc;
    long status = 0;

    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", dest, (int)getpid());
    s.fp = fopen(tmp, "wb");
    if (s.fp == NULL)
        return tosca_error(d, at, "fetch-failed", "cannot write the import cache: %s",
                           strerror(errno));
    h = curl_easy_init();
    if (h == NULL) {
        fclose(s.fp);
        unlink(tmp);
        return ORC_ENOMEM;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)(opts->fetch_timeout_s ? opts->fetch_timeout_s
                                                                      : 20));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    fclose(s.fp);
    if (cc != CURLE_OK || status != 200) {
        unlink(tmp);
        if (cc == CURLE_WRITE_ERROR)
            return tosca_error(d, at, "fetch-failed", "import '%s' is larger than %zu bytes",
                               url, s.max);
        if (cc != CURLE_OK)
            return tosca_error(d, at, "fetch-failed", "cannot fetch import '%s': %s", url,
                               curl_easy_strerror(cc));
        return tosca_error(d, at, "fetch-failed", "cannot fetch import '%s': HTTP status %ld",
                           url, status);
    }
    if (rename(tmp, dest) < 0) {
        unlink(tmp);
        return tosca_error(d, at, "fetch-failed", "cannot store import '%s': %s", url,
                           strerror(errno));
    }
    return 0;
}

int tosca_fetch_url(const tosca_options_t *opts, const char *url, char *path_out, size_t size,
                    tosca_diags_t *d, const tosca_mark_t *at)
{
    struct stat st;
    int rc = cache_path(opts, url, path_out, size);

    if (rc < 0)
        return tosca_error(d, at, "fetch-failed", "cannot create the import cache: %s",
                           strerror(-rc));
    if (stat(path_out, &st) == 0 && S_ISREG(st.st_mode))
        return 0;
    return download(opts, url, path_out, d, at);
}
