/*
 * The checkpoint file (layout in gm_model.h): encoding, atomic saving (a
 * temporary file in the same directory, fsync, rename, fsync of the
 * directory) and a loader that checks every field and says what is wrong
 * with a bad file instead of serving garbage.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../../orchestrator/base.h"
#include "gm_bytes.h"
#include "gm_model.h"

static const unsigned char ckpt_magic[8] = {'G', 'R', 'M', 'L', 'P', '\r', '\n', 0x1a};

#define MAX_FILE ((size_t)GM_CKPT_HEADER_SIZE + 8 * GM_MAX_INPUTS + 4 * (size_t)GM_MAX_PARAMS + 4)

static size_t ckpt_size(uint32_t inputs, size_t n_params)
{
    return GM_CKPT_HEADER_SIZE + 8 * (size_t)inputs + 4 * n_params + 4;
}

static void put_str(unsigned char *p, size_t cap, const char *s)
{
    size_t n = strnlen(s, cap - 1);

    memset(p, 0, cap);
    memcpy(p, s, n);
}

static void encode_header(const struct gm_model *m, unsigned char *h)
{
    const struct gm_train_info *in = &m->info;

    memset(h, 0, GM_CKPT_HEADER_SIZE);
    memcpy(h, ckpt_magic, 8);
    gm_put_u32(h + 8, GM_CKPT_VERSION);
    gm_put_u32(h + 12, GM_CKPT_HEADER_SIZE);
    gm_put_u32(h + 16, m->inputs);
    gm_put_u32(h + 20, m->hidden);
    gm_put_u32(h + 24, m->classes);
    gm_put_u32(h + 28, m->n_hidden);
    gm_put_u64(h + 32, m->n_params);
    put_str(h + 40, GM_NAME_MAX, m->name);
    gm_put_u64(h + 104, in->seed);
    gm_put_u32(h + 112, in->epochs);
    gm_put_u32(h + 116, in->samples);
    gm_put_u32(h + 120, in->world_size);
    gm_put_u32(h + 124, in->batch);
    gm_put_f32(h + 128, in->lr);
    gm_put_f32(h + 132, in->final_loss);
    gm_put_f32(h + 136, in->final_accuracy);
    gm_put_f32(h + 140, in->label_noise);
    put_str(h + 144, 16, in->optimizer);
    put_str(h + 160, 16, in->device);
}

int gm_checkpoint_encode(const struct gm_model *m, unsigned char **out, size_t *len)
{
    size_t n = ckpt_size(m->inputs, m->n_params);
    unsigned char *buf = orc_malloc(n), *p;

    *out = NULL;
    *len = 0;
    if (buf == NULL)
        return ORC_ENOMEM;
    encode_header(m, buf);
    p = buf + GM_CKPT_HEADER_SIZE;
    gm_put_f32s(p, m->mean, m->inputs);
    p += 4 * (size_t)m->inputs;
    gm_put_f32s(p, m->std, m->inputs);
    p += 4 * (size_t)m->inputs;
    gm_put_f32s(p, m->params, m->n_params);
    p += 4 * m->n_params;
    gm_put_u32(p, gm_crc32(0, buf, n - 4));
    *out = buf;
    *len = n;
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsync of the directory holding path, so that the rename survives a crash. */
static void sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int fd;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int gm_checkpoint_save(const struct gm_model *m, const char *path, struct gm_error *err)
{
    unsigned char *buf = NULL;
    char tmp[PATH_MAX];
    size_t len;
    int fd, rc;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return gm_failf(err, -ENAMETOOLONG, "%s: path too long", path);
    rc = gm_checkpoint_encode(m, &buf, &len);
    if (rc < 0)
        return gm_failf(err, rc, "%s: out of memory encoding the checkpoint", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = gm_failf(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
        goto out_free_buf;
    }
    rc = write_all(fd, buf, len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        gm_failf(err, rc, "%s: cannot write: %s", tmp, strerror(-rc));
        goto out_unlink;
    }
    if (rename(tmp, path) < 0) {
        rc = gm_failf(err, -errno, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        goto out_unlink;
    }
    sync_dir(path);
    goto out_free_buf;

out_unlink:
    unlink(tmp);
out_free_buf:
    orc_free(buf);
    return rc;
}

/* A NUL-padded string field: printable ASCII, NUL-terminated within cap. */
static bool get_str(const unsigned char *p, size_t cap, char *out, bool required)
{
    size_t n = strnlen((const char *)p, cap);

    if (n == cap || (required && n == 0))
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] > 0x7e)
            return false;
    for (size_t i = n; i < cap; i++)
        if (p[i] != 0)
            return false;
    memcpy(out, p, n + 1);
    return true;
}

static int decode_info(struct gm_model *m, const unsigned char *h, struct gm_error *err)
{
    struct gm_train_info *in = &m->info;

    in->seed = gm_get_u64(h + 104);
    in->epochs = gm_get_u32(h + 112);
    in->samples = gm_get_u32(h + 116);
    in->world_size = gm_get_u32(h + 120);
    in->batch = gm_get_u32(h + 124);
    in->lr = gm_get_f32(h + 128);
    in->final_loss = gm_get_f32(h + 132);
    in->final_accuracy = gm_get_f32(h + 136);
    in->label_noise = gm_get_f32(h + 140);
    if (!get_str(h + 144, 16, in->optimizer, false) || !get_str(h + 160, 16, in->device, false))
        return gm_failf(err, ORC_EFORMAT, "the optimizer or device field is not a short text");
    for (int i = 176; i < GM_CKPT_HEADER_SIZE; i++)
        if (h[i] != 0)
            return gm_failf(err, ORC_EFORMAT, "reserved header byte %d is not zero", i);
    return 0;
}

static int check_header(const unsigned char *buf, size_t len, struct gm_error *err)
{
    uint32_t version, hsize;

    if (len < 12 || memcmp(buf, ckpt_magic, 8) != 0) {
        if (len >= 5 && memcmp(buf, ckpt_magic, 5) == 0)
            return gm_failf(err, ORC_EFORMAT,
                            "bad magic: the file was changed by a text-mode transfer");
        return gm_failf(err, ORC_EFORMAT, "not a gpu-train checkpoint (bad magic)");
    }
    version = gm_get_u32(buf + 8);
    if (version != GM_CKPT_VERSION)
        return gm_failf(err, ORC_EFORMAT, "format version %u; this program reads version %u",
                        version, GM_CKPT_VERSION);
    if (len < GM_CKPT_HEADER_SIZE)
        return gm_failf(err, ORC_EFORMAT, "truncated: %zu bytes, shorter than the %d-byte header",
                        len, GM_CKPT_HEADER_SIZE);
    hsize = gm_get_u32(buf + 12);
    if (hsize != GM_CKPT_HEADER_SIZE)
        return gm_failf(err, ORC_EFORMAT, "header size %u; version %u has %d", hsize,
                        GM_CKPT_VERSION, GM_CKPT_HEADER_SIZE);
    return 0;
}

static bool all_finite(const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(f[i]))
            return false;
    return true;
}

/* The arrays after the header; the sizes are checked already. */
static int decode_arrays(struct gm_model *m, const unsigned char *p, struct gm_error *err)
{
    gm_get_f32s(m->mean, p, m->inputs);
    p += 4 * (size_t)m->inputs;
    gm_get_f32s(m->std, p, m->inputs);
    p += 4 * (size_t)m->inputs;
    gm_get_f32s(m->params, p, m->n_params);
    if (!all_finite(m->mean, m->inputs))
        return gm_failf(err, ORC_EFORMAT, "the input means are not all finite numbers");
    for (uint32_t i = 0; i < m->inputs; i++)
        if (!isfinite(m->std[i]) || !(m->std[i] > 0.0f))
            return gm_failf(err, ORC_EFORMAT, "the std of input %u is %g, not a positive number", i,
                            (double)m->std[i]);
    if (!all_finite(m->params, m->n_params))
        return gm_failf(err, ORC_EFORMAT, "the weights are not all finite numbers");
    return 0;
}

int gm_checkpoint_decode(struct gm_model *m, const unsigned char *buf, size_t len,
                         struct gm_error *err)
{
    char name[GM_NAME_MAX];
    uint64_t count;
    size_t want;
    uint32_t crc, stored;
    int rc;

    memset(m, 0, sizeof(*m));
    rc = check_header(buf, len, err);
    if (rc < 0)
        return rc;
    if (!get_str(buf + 40, GM_NAME_MAX, name, true))
        return gm_failf(err, ORC_EFORMAT, "the model name is not 1-63 printable characters");
    rc = gm_model_init(m, gm_get_u32(buf + 16), gm_get_u32(buf + 20), gm_get_u32(buf + 24),
                       gm_get_u32(buf + 28), name, err);
    if (rc < 0) {
        if (rc == ORC_EINVAL && err) /* the message says which dimension */
            err->code = ORC_EFORMAT;
        return rc == ORC_EINVAL ? ORC_EFORMAT : rc;
    }
    count = gm_get_u64(buf + 32);
    if (count != m->n_params) {
        rc = gm_failf(err, ORC_EFORMAT,
                      "%llu parameters stored; a %ux%ux%u model with %u hidden layers has %zu",
                      (unsigned long long)count, m->inputs, m->hidden, m->classes, m->n_hidden,
                      m->n_params);
        goto out_free;
    }
    want = ckpt_size(m->inputs, m->n_params);
    if (len != want) {
        rc = gm_failf(err, ORC_EFORMAT, "%s: %zu bytes, the header says %zu",
                      len < want ? "truncated" : "trailing bytes", len, want);
        goto out_free;
    }
    stored = gm_get_u32(buf + len - 4);
    crc = gm_crc32(0, buf, len - 4);
    if (crc != stored) {
        rc = gm_failf(err, ORC_EFORMAT, "checksum mismatch: stored %08x, computed %08x (corrupt)",
                      stored, crc);
        goto out_free;
    }
    rc = decode_info(m, buf, err);
    if (rc == 0)
        rc = decode_arrays(m, buf + GM_CKPT_HEADER_SIZE, err);
    if (rc == 0)
        return 0;
out_free:
    gm_model_free(m);
    return rc;
}

static int read_file(const char *path, unsigned char **out, size_t *len, struct gm_error *err)
{
    struct stat st;
    unsigned char *buf;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

    if (fd < 0)
        return gm_failf(err, -errno, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = gm_failf(err, ORC_EFORMAT, "%s: not a regular file", path);
        goto out_close;
    }
    if ((size_t)st.st_size > MAX_FILE) {
        rc = gm_failf(err, ORC_EFORMAT, "%s: %lld bytes, larger than any checkpoint", path,
                      (long long)st.st_size);
        goto out_close;
    }
    buf = orc_malloc((size_t)st.st_size);
    if (buf == NULL) {
        rc = gm_failf(err, ORC_ENOMEM, "%s: out of memory", path);
        goto out_close;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = gm_failf(err, r < 0 ? -errno : ORC_EIO, "%s: read failed: %s", path,
                          r < 0 ? strerror(errno) : "file shrank");
            orc_free(buf);
            goto out_close;
        }
        got += (size_t)r;
    }
    *out = buf;
    *len = got;
out_close:
    close(fd);
    return rc;
}

int gm_checkpoint_load(struct gm_model *m, const char *path, struct gm_error *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char why[sizeof(err->msg)];
    int rc;

    memset(m, 0, sizeof(*m));
    rc = read_file(path, &buf, &len, err);
    if (rc < 0)
        return rc;
    rc = gm_checkpoint_decode(m, buf, len, err);
    if (rc < 0 && err) {
        snprintf(why, sizeof(why), "%s", err->msg);
        gm_failf(err, rc, "%s: %s", path, why);
    }
    orc_free(buf);
    return rc;
}
