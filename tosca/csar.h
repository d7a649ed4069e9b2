/*
 * CSAR (TOSCA Cloud Service Archive) support: opens a zip archive held in
 * memory, checks every entry (names, links, encryption, sizes) and reads the
 * files into memory within the limits, then finds the entry definitions from
 * TOSCA-Metadata/TOSCA.meta or, without it, from the one YAML file in the
 * archive root. Later stages read the archive's files through
 * tosca_csar_read() by normalised archive-relative path; nothing is ever
 * written to disk.
 *
 * Diagnostic codes (file field: the archive's name):
 *   csar-bad-zip          not a zip, truncated, inconsistent, or unreadable (ORC_EFORMAT;
 *                         ORC_ENOMEM when libzip ran out of memory)
 *   csar-limit            a size, count or compression-ratio limit was hit (ORC_ELIMIT)
 *   csar-path             a bad entry name or a bad path in TOSCA.meta (ORC_ETOSCA)
 *   csar-symlink          an entry is a symbolic link (ORC_ETOSCA)
 *   csar-encrypted        an entry is encrypted (ORC_ETOSCA)
 *   csar-duplicate        two entries have the same normalised name (ORC_ETOSCA)
 *   csar-meta             TOSCA.meta is malformed or lacks a key (ORC_ETOSCA; missing or
 *                         unknown version keys are defects: warnings unless strict)
 *   csar-no-entry         no entry definitions, or Entry-Definitions / Other-Definitions
 *                         names no file in the archive (ORC_ETOSCA)
 *   csar-ambiguous-entry  no TOSCA.meta and several YAML files in the root (ORC_ETOSCA)
 *
 * Threading: an archive belongs to one thread at a time.
 */
#ifndef TOSCA_CSAR_H
#define TOSCA_CSAR_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

typedef struct tosca_csar tosca_csar_t;

/* true if data starts like a zip archive ("PK\x03\x04", or an empty archive "PK\x05\x06") */
bool tosca_csar_is_zip(const void *data, size_t len);

/* Opens an archive held in memory (data is not kept; the archive's entries are read into
 * memory here, within the limits). name is the archive's name for messages (file field of
 * diagnostics). Finds the entry definitions: TOSCA-Metadata/TOSCA.meta (keys
 * TOSCA-Meta-File-Version, CSAR-Version, Created-By, Entry-Definitions, and for CSAR 2.0 /
 * TOSCA 2.0 also Other-Definitions; block structure "Key: value" lines, blocks separated by
 * blank lines; first block is the metadata block) or, without TOSCA-Metadata, the
 * root-YAML-file convention: exactly one .yaml/.yml file in the archive root (its
 * `metadata:` may hold template_name etc.; you need not parse YAML, only find the file; more
 * than one root YAML file is an error naming them). Returns 0, or ORC_ETOSCA / ORC_ELIMIT /
 * ORC_EFORMAT / ORC_ENOMEM with a clear message in diags (code e.g. "csar-bad-zip",
 * "csar-no-entry", "csar-meta", "csar-path", "csar-limit"). lim may be NULL (defaults);
 * its zero fields take the defaults of tosca_limits_t. On success *out is owned by the
 * caller (tosca_csar_free); on failure *out is NULL. */
int tosca_csar_open(const char *name, const void *data, size_t len, const tosca_limits_t *lim,
                    tosca_csar_t **out, tosca_diags_t *diags);

/* Archive-relative path of the entry definitions file ("Definitions/main.yaml"). */
const char *tosca_csar_entry(const tosca_csar_t *c);

/* Contents of a file in the archive, by normalised archive-relative path ("a/b.yaml"; no
 * leading "/" or "./", no ".." components). The bytes live as long as the archive and are
 * NUL-terminated (len excludes the NUL). ORC_ENOTFOUND if there is no such file. */
int tosca_csar_read(const tosca_csar_t *c, const char *path, const char **data, size_t *len);

/* Metadata value of the TOSCA.meta first block ("Created-By"), or NULL. */
const char *tosca_csar_meta(const tosca_csar_t *c, const char *key);

/* The Other-Definitions of TOSCA.meta, normalised archive-relative paths that all name files
 * in the archive: how many, and the i-th (NULL when i is out of range). */
size_t tosca_csar_other_count(const tosca_csar_t *c);
const char *tosca_csar_other(const tosca_csar_t *c, size_t i);

/* Number of files (directories excluded) and the i-th file's path, in archive order. */
size_t tosca_csar_file_count(const tosca_csar_t *c);
const char *tosca_csar_file_path(const tosca_csar_t *c, size_t i);

/* Frees the archive and every byte read from it. NULL-safe. */
void tosca_csar_free(tosca_csar_t *c);

#endif
