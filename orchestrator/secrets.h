/*
 * The daemon's secrets file (docs/security.md): a YAML map of secret names to values
 * (site credentials: tokens, passwords, PEM keys), readable by the daemon's user only.
 * Drivers reach it through host->secret_get; a name it lacks falls back to the
 * environment (ORC_SECRET_<NAME>). Values never leave through the API or the log.
 */
#ifndef ORC_SECRETS_H
#define ORC_SECRETS_H

#include <stddef.h>

struct orc_secrets;

/* Reads path: a regular file owned by this process's user, mode 0600 or stricter, at
 * most 1 MiB, a map of names to strings. 0 and *out; ORC_EINVAL / ORC_EIO / ORC_ENOMEM
 * with err naming the file and what is wrong (never a value). */
int orc_secrets_load(const char *path, struct orc_secrets **out, char *err, size_t errlen);
/* An orc_drv_secret_fn: a copy of the value of name (orc_free it), or ORC_ENOTFOUND. */
int orc_secrets_lookup(void *secrets, const char *name, char **value);
size_t orc_secrets_count(const struct orc_secrets *s);
void orc_secrets_free(struct orc_secrets *s);

#endif
