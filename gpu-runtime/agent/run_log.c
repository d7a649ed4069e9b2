/*
 * Workload logs of `gpu-agent run` (run.h): DIR/NAME.log, appended, rotated
 * by size (NAME.log -> NAME.log.1 -> ... -> NAME.log.KEEP, the oldest
 * dropped), with the agent's own lines about the workload in the same file.
 * Writes are small and synchronous (a local file), as a logger's are.
 * DIR "-" is the agent's standard output instead (no file, no rotation):
 * where a container platform collects a container's log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../orchestrator/base.h"
#include "run.h"

int launch_log_open(struct launch_log *l, const char *dir, const char *base, uint64_t max_bytes,
                    unsigned keep)
{
    struct stat st;

    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->max_bytes = max_bytes;
    l->keep = keep;
    if (strcmp(dir, "-") == 0) {
        l->to_stdout = true;
        l->path = orc_asprintf("-");
        if (l->path == NULL)
            return -ENOMEM;
        l->fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        return l->fd < 0 ? -errno : 0;
    }
    l->path = orc_asprintf("%s/%s.log", dir, base);
    if (l->path == NULL)
        return -ENOMEM;
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (l->fd < 0)
        return -errno;
    l->size = fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    return 0;
}

static void rotate(struct launch_log *l)
{
    size_t n = strlen(l->path) + 16;
    char from[4096], to[4096];

    if (n > sizeof(from))
        return;
    close(l->fd);
    l->fd = -1;
    if (l->keep == 0) {
        unlink(l->path);
    } else {
        for (unsigned i = l->keep; i > 1; i--) {
            snprintf(from, sizeof(from), "%s.%u", l->path, i - 1);
            snprintf(to, sizeof(to), "%s.%u", l->path, i);
            rename(from, to); /* a missing one is fine */
        }
        snprintf(to, sizeof(to), "%s.1", l->path);
        rename(l->path, to);
    }
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    l->size = 0;
}

/* Appends all of data to the open file. */
static void write_all(struct launch_log *l, const char *data, size_t n)
{
    while (l->fd >= 0 && n > 0) {
        ssize_t w = write(l->fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        data += w;
        n -= (size_t)w;
        l->size += (uint64_t)w;
    }
}

void launch_log_write(struct launch_log *l, const char *data, size_t n)
{
    if (l->path == NULL)
        return;
    if (l->to_stdout) {
        write_all(l, data, n);
        return;
    }
    while (n > 0) { /* no file grows past max_bytes: what does not fit starts the next */
        if (l->size >= l->max_bytes)
            rotate(l);
        size_t room = (size_t)(l->max_bytes - l->size);
        size_t k = n < room ? n : room;
        write_all(l, data, k);
        if (l->fd < 0)
            return;
        data += k;
        n -= k;
    }
}

void launch_log_note(struct launch_log *l, const char *fmt, ...)
{
    char line[1024];
    struct tm tm;
    time_t now = time(NULL);
    va_list ap;
    size_t n;

    gmtime_r(&now, &tm);
    n = strftime(line, sizeof(line), "[gpu-agent %Y-%m-%dT%H:%M:%SZ] ", &tm);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    n = strlen(line);
    line[n++] = '\n';
    launch_log_write(l, line, n);
}

void launch_log_close(struct launch_log *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    orc_free(l->path);
    l->path = NULL;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xE0) == 0xC0)
        len = 2, min = 0x80, cp = p[0] & 0x1F;
    else if ((p[0] & 0xF0) == 0xE0)
        len = 3, min = 0x800, cp = p[0] & 0x0F;
    else if ((p[0] & 0xF8) == 0xF0)
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t launch_utf8_clean(const char *in, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t k = p[i] ? utf8_seq(p + i, n - i) : 0;
        if (k == 0) {
            memcpy(out + o, "\xEF\xBF\xBD", 3); /* U+FFFD (a NUL too: JSON text) */
            o += 3;
            i++;
        } else {
            memcpy(out + o, p + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
    return o;
}
