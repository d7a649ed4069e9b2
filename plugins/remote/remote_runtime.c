/*
 * The runtime on a remote host (remote.h): gpu-agent and the reference
 * workloads, found here and hashed at site open, installed on a host under
 * BASE/.orc-runtime/ID where ID is derived from their hashes, so that
 * installs of different builds never collide and an install is reused by
 * every deployment. One sha256sum says what is there; what is missing or
 * different goes over SFTP to NAME.part.TAG, is verified, then renamed into
 * place (a reader never sees a partial file). TAG is this install's own, so
 * hosts that share the directory (an NFS home) can install at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "remote.h"

static const char *const runtime_names[] = {"gpu-agent", "gpu-train", "gpu-serve"};

static int sha256_file(const char *path, char hex[65], uint64_t *size)
{
    unsigned char buf[65536], md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    ssize_t n;

    *size = 0;
    if (fd < 0 || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = fd < 0 ? -errno : ORC_ENOMEM;
        goto out;
    }
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    if (n < 0) {
        rc = -errno;
        goto out;
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(ctx);
    return rc;
}

static char *path_join(const struct orc_host_api *h, const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = h->malloc(n);

    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static bool is_exec(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The folder gpu-agent is in: dir, else the daemon's, else PATH's. */
static char *runtime_home(const struct orc_host_api *h, const char *dir)
{
    char exe[4096];
    ssize_t n;
    const char *path;
    char *p;

    if (dir != NULL)
        return path_join(h, dir, "");
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            p = path_join(h, exe, "gpu-agent");
            if (p && is_exec(p)) {
                p[strlen(exe)] = '\0';
                return p;
            }
            h->free(p);
        }
    }
    path = getenv("PATH");
    for (const char *s = path ? path : ""; *s;) {
        const char *e = strchr(s, ':');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        char d[4096];
        if (len > 0 && len < sizeof(d)) {
            memcpy(d, s, len);
            d[len] = '\0';
            p = path_join(h, d, "gpu-agent");
            if (p && is_exec(p)) {
                p[len] = '\0';
                return p;
            }
            h->free(p);
        }
        s = e ? e + 1 : s + len;
    }
    return NULL;
}

static void runtime_id(struct rmt_runtime *rt)
{
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (ctx == NULL)
        return;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    for (size_t i = 0; i < rt->n; i++) {
        EVP_DigestUpdate(ctx, rt->files[i].name, strlen(rt->files[i].name));
        EVP_DigestUpdate(ctx, rt->files[i].sha256, 64);
    }
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 8; i++)
        snprintf(rt->id + 2 * i, 3, "%02x", md[i]);
}

int rmt_runtime_find(const struct orc_host_api *h, const char *dir, struct rmt_runtime *rt,
                     char *err, size_t errlen)
{
    char *home = runtime_home(h, dir);

    memset(rt, 0, sizeof(*rt));
    if (home == NULL) {
        snprintf(err, errlen,
                 "gpu-agent not found beside orchestratord nor on PATH (set runtime_dir)");
        return ORC_ENOTFOUND;
    }
    for (size_t i = 0; i < sizeof(runtime_names) / sizeof(runtime_names[0]); i++) {
        struct rmt_file *f = &rt->files[rt->n];
        char *p = path_join(h, home, runtime_names[i]);
        int rc;

        if (p == NULL) {
            h->free(home);
            rmt_runtime_free(h, rt);
            return ORC_ENOMEM;
        }
        if (!is_exec(p)) {
            h->free(p);
            if (i == 0) {
                snprintf(err, errlen, "runtime_dir %s has no executable gpu-agent", home);
                h->free(home);
                rmt_runtime_free(h, rt);
                return ORC_ENOTFOUND;
            }
            continue;
        }
        rc = sha256_file(p, f->sha256, &f->size);
        if (rc < 0) {
            snprintf(err, errlen, "cannot read %s: %s", p, orc_strerror(rc));
            h->free(p);
            h->free(home);
            rmt_runtime_free(h, rt);
            return ORC_EIO;
        }
        snprintf(f->name, sizeof(f->name), "%s", runtime_names[i]);
        f->local_path = p;
        rt->n++;
    }
    h->free(home);
    runtime_id(rt);
    return 0;
}

void rmt_runtime_free(const struct orc_host_api *h, struct rmt_runtime *rt)
{
    for (size_t i = 0; i < rt->n; i++)
        h->free(rt->files[i].local_path);
    memset(rt, 0, sizeof(*rt));
}

char *rmt_runtime_dir(const struct orc_host_api *h, const struct rmt_runtime *rt, const char *base)
{
    size_t n = strlen(base) + sizeof("/.orc-runtime/") + sizeof(rt->id);
    char *p = h->malloc(n);

    if (p)
        snprintf(p, n, "%s/.orc-runtime/%s", base, rt->id);
    return p;
}

/* ---- the install chain ---------------------------------------------------------------- */

enum install_step { IS_LOOK, IS_PUT, IS_COMMIT, IS_DONE };

struct rmt_install {
    const struct orc_host_api *host;
    struct orc_ssh_target t; /* strings borrowed from the caller (its site config) */
    const struct rmt_runtime *rt;
    char *dir;
    uint32_t timeout_ms;
    enum install_step step;
    bool need[RMT_RUNTIME_MAX];
    size_t next; /* the file being uploaded */
    char tag[32]; /* of this install's .part files */
    orc_ssh_req_t req;
    bool canceled;
    rmt_done_cb cb;
    void *arg;
    struct rmt_install **out;
};

static void install_end(struct rmt_install *in, int status, const char *error)
{
    rmt_done_cb cb = in->cb;
    void *arg = in->arg;
    char msg[ORC_OP_ERROR_LEN];

    snprintf(msg, sizeof(msg), "%s", error ? error : "");
    if (in->out)
        *in->out = NULL;
    in->host->ssh->release(in->host, &in->req);
    in->host->free(in->dir);
    in->host->free(in);
    cb(arg, status, msg);
}

static void on_install(orc_ssh_req_t *req, int status);

static int install_exec(struct rmt_install *in, const char *command)
{
    struct orc_ssh_exec x = {.command = command, .max_out = 16384, .timeout_ms = in->timeout_ms};

    in->host->ssh->release(in->host, &in->req);
    memset(&in->req, 0, sizeof(in->req));
    in->req.data = in;
    in->req.cb = on_install;
    return in->host->ssh->exec(in->host, &in->t, &in->req, &x);
}

/* `mkdir -p DIR && cd DIR && sha256sum NAMES` (missing files are fine) */
static int install_look(struct rmt_install *in)
{
    struct rmt_cmd c;
    const char *text;
    int rc;

    rmt_cmd_init(&c, in->host);
    rmt_cmd_raw(&c, "umask 022 && mkdir -p");
    rmt_cmd_word(&c, in->dir);
    rmt_cmd_raw(&c, " && cd");
    rmt_cmd_word(&c, in->dir);
    rmt_cmd_raw(&c, " && { sha256sum --");
    for (size_t i = 0; i < in->rt->n; i++)
        rmt_cmd_word(&c, in->rt->files[i].name);
    rmt_cmd_raw(&c, " 2>/dev/null; true; }");
    rc = rmt_cmd_done(&c, &text);
    if (rc == 0)
        rc = install_exec(in, text);
    rmt_cmd_free(&c);
    return rc;
}

/* Which files the host lacks or holds with another hash. */
static size_t install_compare(struct rmt_install *in, const char *out)
{
    size_t missing = 0;

    for (size_t i = 0; i < in->rt->n; i++) {
        const struct rmt_file *f = &in->rt->files[i];
        char line[128];
        snprintf(line, sizeof(line), "%s  %s\n", f->sha256, f->name);
        in->need[i] = out == NULL || strstr(out, line) == NULL;
        missing += in->need[i];
    }
    return missing;
}

static int install_put_next(struct rmt_install *in)
{
    char remote[4096];
    struct orc_ssh_put p = {.mode = 0700, .timeout_ms = in->timeout_ms};

    while (in->next < in->rt->n && !in->need[in->next])
        in->next++;
    if (in->next >= in->rt->n)
        return 1;
    snprintf(remote, sizeof(remote), "%s/%s.part.%s", in->dir, in->rt->files[in->next].name,
             in->tag);
    p.local_path = in->rt->files[in->next].local_path;
    p.remote_path = remote;
    in->host->ssh->release(in->host, &in->req);
    memset(&in->req, 0, sizeof(in->req));
    in->req.data = in;
    in->req.cb = on_install;
    return in->host->ssh->put(in->host, &in->t, &in->req, &p);
}

/* Verifies the .part files and renames them into place, in one command:
 *   cd DIR && { printf 'HASH  NAME.part.TAG\n...' | sha256sum -c --quiet --strict
 *     && chmod 0755 NAME.part.TAG && mv -f NAME.part.TAG NAME ...
 *     || { rm -f NAME.part.TAG ...; false; }; } */
static int install_commit(struct rmt_install *in)
{
    struct rmt_cmd c;
    const char *text;
    char list[RMT_RUNTIME_MAX * 128] = "";
    int rc;

    for (size_t i = 0; i < in->rt->n; i++)
        if (in->need[i]) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof(list) - len, "%s  %s.part.%s\n",
                     in->rt->files[i].sha256, in->rt->files[i].name, in->tag);
        }
    rmt_cmd_init(&c, in->host);
    rmt_cmd_raw(&c, "cd");
    rmt_cmd_word(&c, in->dir);
    rmt_cmd_raw(&c, " && { printf %s");
    rmt_cmd_word(&c, list);
    rmt_cmd_raw(&c, " | sha256sum -c --quiet --strict");
    for (size_t i = 0; i < in->rt->n; i++)
        if (in->need[i]) {
            char part[80];
            snprintf(part, sizeof(part), "%s.part.%s", in->rt->files[i].name, in->tag);
            rmt_cmd_raw(&c, " && chmod 0755");
            rmt_cmd_word(&c, part);
            rmt_cmd_raw(&c, " && mv -f");
            rmt_cmd_word(&c, part);
            rmt_cmd_word(&c, in->rt->files[i].name);
        }
    rmt_cmd_raw(&c, " || { rm -f");
    for (size_t i = 0; i < in->rt->n; i++)
        if (in->need[i]) {
            char part[80];
            snprintf(part, sizeof(part), "%s.part.%s", in->rt->files[i].name, in->tag);
            rmt_cmd_word(&c, part);
        }
    rmt_cmd_raw(&c, "; false; }; }");
    rc = rmt_cmd_done(&c, &text);
    if (rc == 0)
        rc = install_exec(in, text);
    rmt_cmd_free(&c);
    return rc;
}

static void install_fail(struct rmt_install *in, int rc)
{
    char msg[ORC_OP_ERROR_LEN];

    snprintf(msg, sizeof(msg), "%s", in->req.error[0] ? in->req.error : orc_strerror(rc));
    install_end(in, rc, msg);
}

static void on_install(orc_ssh_req_t *req, int status)
{
    struct rmt_install *in = req->data;
    int rc = 0;

    if (in->canceled)
        status = ORC_ECANCELED;
    if (status < 0) {
        install_fail(in, status);
        return;
    }
    switch (in->step) {
    case IS_LOOK:
        if (install_compare(in, req->exit_status == 0 ? req->out : NULL) == 0) {
            install_end(in, 0, NULL);
            return;
        }
        in->step = IS_PUT;
        in->next = 0;
        rc = install_put_next(in);
        break;
    case IS_PUT:
        in->next++;
        rc = install_put_next(in);
        break;
    case IS_COMMIT:
        if (req->exit_status != 0) {
            char msg[ORC_OP_ERROR_LEN];
            snprintf(msg, sizeof(msg),
                     "runtime upload to %s: checksum mismatch or rename failed: %.120s", in->dir,
                     req->err && *req->err ? req->err
                     : req->out            ? req->out
                                           : "");
            install_end(in, ORC_EDRIVER, msg);
            return;
        }
        install_end(in, 0, NULL);
        return;
    default:
        break;
    }
    if (rc == 1) { /* every file sent */
        in->step = IS_COMMIT;
        rc = install_commit(in);
    }
    if (rc < 0)
        install_fail(in, rc);
}

/* Unique among this daemon's installs and, with the pid and the clock,
 * among other daemons' installs into a shared directory. */
static void install_tag(char *tag, size_t len)
{
    static unsigned seq;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(tag, len, "%x-%lx%lx-%x", (unsigned)getpid(), (unsigned long)ts.tv_sec,
             (unsigned long)ts.tv_nsec, ++seq);
}

int rmt_runtime_install(const struct orc_host_api *h, const struct orc_ssh_target *t,
                        const struct rmt_runtime *rt, const char *base, uint32_t timeout_ms,
                        rmt_done_cb cb, void *arg, struct rmt_install **out)
{
    struct rmt_install *in;
    int rc;

    if (h->ssh == NULL || rt->n == 0)
        return ORC_ENOTSUP;
    in = h->calloc(1, sizeof(*in));
    if (in == NULL)
        return ORC_ENOMEM;
    in->host = h;
    in->t = *t;
    in->rt = rt;
    in->dir = rmt_runtime_dir(h, rt, base);
    in->timeout_ms = timeout_ms;
    install_tag(in->tag, sizeof(in->tag));
    in->cb = cb;
    in->arg = arg;
    if (in->dir == NULL) {
        h->free(in);
        return ORC_ENOMEM;
    }
    rc = install_look(in);
    if (rc < 0) {
        h->free(in->dir);
        h->free(in);
        return rc;
    }
    in->out = out;
    if (out)
        *out = in;
    return 0;
}

void rmt_install_cancel(struct rmt_install *in)
{
    if (in == NULL || in->canceled)
        return;
    in->canceled = true;
    in->host->ssh->cancel(in->host, &in->req);
}
