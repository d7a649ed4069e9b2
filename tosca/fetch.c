/*
 * URL imports: the allowlist check, and fetching with libcurl. A URL is
 * checked as libcurl parses it (scheme, user info, host, port, path), so no
 * spelling of it reaches another host or a path outside an entry. Fetched
 * files are cached on disk under the SHA-256 of the URL, written atomically
 * (temporary file, then rename), and fetched again once older than the
 * context's cache_ttl_s; when that fetch fails the old copy is used, with a
 * warning.
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

/* ---- the allowlist ------------------------------------------------------------- */

struct url_parts {
    char *scheme, *host, *port, *path;
};

static void url_parts_free(struct url_parts *p)
{
    curl_free(p->scheme);
    curl_free(p->host);
    curl_free(p->port);
    curl_free(p->path);
    memset(p, 0, sizeof(*p));
}

static bool has_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    bool has = curl_url_get(u, what, &v, 0) == CURLUE_OK && v && v[0];

    curl_free(v);
    return has;
}

/* A path with a "." or ".." segment, or an encoded dot, slash or backslash: a
 * server may resolve it outside the prefix it seems to be under. */
static bool path_escapes(const char *path)
{
    static const char *const encoded[] = {"%2e", "%2f", "%5c"};

    for (size_t i = 0; i < sizeof(encoded) / sizeof(encoded[0]); i++)
        for (const char *p = path; (p = strchr(p, '%')) != NULL; p++)
            if (strncasecmp(p, encoded[i], 3) == 0)
                return true;
    for (const char *seg = path; *seg;) {
        size_t n = strcspn(seg, "/");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return true;
        seg += n + (seg[n] == '/');
    }
    return false;
}

static int refuse(char *why, size_t whylen, const char *reason)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", reason);
    return ORC_EINVAL;
}

/* Splits url as libcurl will fetch it (dot segments kept, to be seen). prefix:
 * the URL is an allowlist entry (no query or fragment either). */
static int url_split(const char *url, bool prefix, struct url_parts *out, char *why,
                     size_t whylen)
{
    CURLU *u;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c == 0x7f || *c == '\\')
            return refuse(why, whylen, "it holds a space, a control character or a backslash");
    u = curl_url();
    if (u == NULL)
        return ORC_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_PATH_AS_IS) != CURLUE_OK)
        rc = refuse(why, whylen, "it is not an absolute URL");
    else if (curl_url_get(u, CURLUPART_SCHEME, &out->scheme, 0) != CURLUE_OK ||
             (strcmp(out->scheme, "https") != 0 && strcmp(out->scheme, "http") != 0))
        rc = refuse(why, whylen, "only http and https URLs are fetched");
    else if (has_part(u, CURLUPART_USER) || has_part(u, CURLUPART_PASSWORD))
        rc = refuse(why, whylen, "it holds user info ('user@')");
    else if (prefix && (has_part(u, CURLUPART_QUERY) || has_part(u, CURLUPART_FRAGMENT)))
        rc = refuse(why, whylen, "a prefix has no query or fragment");
    else if (curl_url_get(u, CURLUPART_HOST, &out->host, 0) != CURLUE_OK ||
             curl_url_get(u, CURLUPART_PORT, &out->port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
             curl_url_get(u, CURLUPART_PATH, &out->path, 0) != CURLUE_OK)
        rc = refuse(why, whylen, "it has no host");
    else if (path_escapes(out->path))
        rc = refuse(why, whylen, "its path has a dot segment or an encoded '.', '/' or '\\'");
    curl_url_cleanup(u);
    if (rc < 0)
        url_parts_free(out);
    return rc;
}

int tosca_url_prefix_check(const char *prefix, char *why, size_t whylen)
{
    struct url_parts p;
    int rc = url_split(prefix, true, &p, why, whylen);

    url_parts_free(&p);
    return rc;
}

/* url's parts are under entry's: same scheme, host and port, and the entry's
 * path followed by nothing, or by '/' unless it ends with one. */
static bool under(const struct url_parts *url, const struct url_parts *entry)
{
    size_t n = strlen(entry->path);

    if (strcmp(url->scheme, entry->scheme) != 0 || strcasecmp(url->host, entry->host) != 0 ||
        strcmp(url->port, entry->port) != 0 || strncmp(url->path, entry->path, n) != 0)
        return false;
    return n == 0 || entry->path[n - 1] == '/' || url->path[n] == '\0' || url->path[n] == '/';
}

bool tosca_url_allowed(const char *const *allowlist, const char *url, char *why, size_t whylen)
{
    struct url_parts want, entry;
    bool ok = false;

    if (url_split(url, false, &want, why, whylen) < 0)
        return false;
    for (size_t i = 0; !ok && allowlist && allowlist[i]; i++) {
        if (url_split(allowlist[i], true, &entry, NULL, 0) < 0)
            continue;
        ok = under(&want, &entry);
        url_parts_free(&entry);
    }
    url_parts_free(&want);
    if (!ok)
        refuse(why, whylen, "it is not under a prefix of the URL allowlist");
    return ok;
}

/* ---- fetching and the cache ------------------------------------------------------ */

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
    {
        unsigned char md[32];
        char hex[65];
        unsigned mdlen = 0;
        if (!EVP_Digest(url, strlen(url), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
            return -EIO;
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        snprintf(out, size, "%s/%s.yaml", dir, hex);
    }
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
    if (stat(path_out, &st) < 0 || !S_ISREG(st.st_mode))
        return download(opts, url, path_out, d, at);
    if (opts->cache_ttl_s == 0 || time(NULL) - st.st_mtime < (time_t)opts->cache_ttl_s)
        return 0;
    {
        tosca_diags_t fresh;
        tosca_diags_init(&fresh, false);
        rc = download(opts, url, path_out, &fresh, at);
        if (rc < 0 && fresh.count > 0)
            rc = tosca_warn(d, at, "fetch-stale",
                            "using the copy of import '%s' fetched %lld s ago: %s", url,
                            (long long)(time(NULL) - st.st_mtime), fresh.items[0].message);
        tosca_diags_fini(&fresh);
        return rc < 0 ? rc : 0;
    }
}
