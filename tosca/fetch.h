/* URL imports fetched over the network, only from the allowlist (fetch.c). */
#ifndef TOSCA_FETCH_H
#define TOSCA_FETCH_H

#include "base.h"

/* Fetches url (which the caller has checked against the allowlist) into the
 * cache directory (opts->cache_dir, or a private temporary directory) and
 * writes the local file's path to path_out. A cached copy is used when
 * present. Redirects are not followed; the size is capped at
 * limits.max_file_bytes; the timeout is opts->fetch_timeout_s. */
int tosca_fetch_url(const tosca_options_t *opts, const char *url, char *path_out, size_t size,
                    tosca_diags_t *d, const tosca_mark_t *at);

#endif
