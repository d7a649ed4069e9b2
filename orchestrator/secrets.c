/*
 * The secrets file (secrets.h): checked for its owner and mode before a byte is read,
 * parsed with libtosca's YAML reader (limits, duplicate keys refused), kept as a JSON
 * object of strings, wiped when freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "secrets.h"
#include "tosca/tosca.h"

#define SECRETS_MAX_BYTES (1024 * 1024)

struct orc_secrets {
    json_t *map; /* name -> value */
};

/* The open file must be the daemon's own and no one else's to read. */
static int check_file(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return orc_failf(err, errlen, ORC_EIO, "secrets file %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return orc_failf(err, errlen, ORC_EINVAL, "secrets file %s is not a regular file", path);
    if (st.st_uid != geteuid())
        return orc_failf(err, errlen, ORC_EINVAL,
                     "secrets file %s belongs to uid %u, not to the daemon's user (uid %u)", path,
                     (unsigned)st.st_uid, (unsigned)geteuid());
    if (st.st_mode & 077)
        return orc_failf(err, errlen, ORC_EINVAL,
                     "secrets file %s is mode %04o: it must not be readable by group or others "
                     "(chmod 600 it)",
                     path, (unsigned)(st.st_mode & 07777));
    if (st.st_size > SECRETS_MAX_BYTES)
        return orc_failf(err, errlen, ORC_EINVAL, "secrets file %s is larger than 1 MiB", path);
    return 0;
}

static int read_all(int fd, const char *path, char **text, size_t *len, char *err,
                    size_t errlen)
{
    char *buf = orc_malloc(SECRETS_MAX_BYTES + 1);
    size_t n = 0;
    ssize_t got;

    if (buf == NULL)
        return orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    while (n <= SECRETS_MAX_BYTES &&
           (got = read(fd, buf + n, SECRETS_MAX_BYTES + 1 - n)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            orc_free(buf);
            return orc_failf(err, errlen, ORC_EIO, "secrets file %s: %s", path, strerror(errno));
        }
        n += (size_t)got;
    }
    if (n > SECRETS_MAX_BYTES) {
        orc_free(buf);
        return orc_failf(err, errlen, ORC_EINVAL, "secrets file %s is larger than 1 MiB", path);
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

/* The map must hold strings only; the message names the key, never the value. */
static int check_map(const json_t *map, const char *path, char *err, size_t errlen)
{
    const char *name;
    json_t *v;

    if (!json_is_object(map))
        return orc_failf(err, errlen, ORC_EINVAL,
                     "secrets file %s: a map of secret names to values is expected", path);
    json_object_foreach((json_t *)map, name, v) {
        if (!json_is_string(v))
            return orc_failf(err, errlen, ORC_EINVAL,
                         "secrets file %s: the value of '%s' must be a string (quote it)", path,
                         name);
    }
    return 0;
}

int orc_secrets_load(const char *path, struct orc_secrets **out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), rc;
    struct orc_secrets *s;
    tosca_diags_t diags;
    json_t *map = NULL;
    char *text = NULL;
    size_t len = 0;

    *out = NULL;
    if (fd < 0)
        return orc_failf(err, errlen, ORC_EIO, "secrets file %s: %s", path, strerror(errno));
    rc = check_file(fd, path, err, errlen);
    if (rc == 0)
        rc = read_all(fd, path, &text, &len, err, errlen);
    close(fd);
    if (rc < 0)
        return rc;
    tosca_diags_init(&diags, false);
    rc = tosca_yaml_to_json(path, text, len, &map, &diags);
    tosca_diags_fini(&diags); /* its messages may quote a line, so only the place is said */
    explicit_bzero(text, len);
    orc_free(text);
    if (rc < 0)
        return orc_failf(err, errlen, rc == ORC_ENOMEM ? rc : ORC_EINVAL,
                     "secrets file %s is not valid YAML", path);
    rc = check_map(map, path, err, errlen);
    s = rc == 0 ? orc_calloc(1, sizeof(*s)) : NULL;
    if (rc == 0 && s == NULL)
        rc = orc_failf(err, errlen, ORC_ENOMEM, "out of memory");
    if (rc < 0) {
        json_decref(map);
        return rc;
    }
    s->map = map;
    *out = s;
    return 0;
}

int orc_secrets_lookup(void *secrets, const char *name, char **value)
{
    const struct orc_secrets *s = secrets;
    const char *v = json_string_value(json_object_get(s->map, name));

    if (v == NULL)
        return ORC_ENOTFOUND;
    *value = orc_strdup(v);
    return *value ? 0 : ORC_ENOMEM;
}

size_t orc_secrets_count(const struct orc_secrets *s)
{
    return json_object_size(s->map);
}

void orc_secrets_free(struct orc_secrets *s)
{
    const char *name;
    json_t *v;

    if (s == NULL)
        return;
    json_object_foreach(s->map, name, v) {
        if (json_is_string(v)) /* jansson keeps the bytes: wipe them */
            explicit_bzero((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(s->map);
    orc_free(s);
}
