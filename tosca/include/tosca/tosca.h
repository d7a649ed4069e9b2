/*
 * libtosca: the project's TOSCA engine. Loads service templates (TOSCA Simple
 * Profile in YAML 1.0-1.3 and TOSCA 2.0, plain files or CSAR archives),
 * resolves imports, validates them against the type system and turns them
 * into a plan (JSON) that the deployment engine executes.
 *
 * Threading: a tosca_ctx_t and everything loaded through it belong to one
 * thread at a time. Errors: functions return 0 or a negative ORC_E* code
 * (see orc/errno.h); template problems are collected in a tosca_diags_t,
 * each with file:line:col, a stable code and a message.
 */
#ifndef TOSCA_TOSCA_H
#define TOSCA_TOSCA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/errno.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- allocator ---------------------------------------------------------- */

/* Replaces the allocator used by the whole library (all four, or none: pass
 * NULLs to restore the C library's). Call before any other function. */
int tosca_replace_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                            void *(*calloc_fn)(size_t, size_t), void (*free_fn)(void *));

/* ---- diagnostics -------------------------------------------------------- */

typedef enum { TOSCA_SEV_ERROR = 0, TOSCA_SEV_WARNING = 1 } tosca_severity_t;

typedef struct tosca_diag_s {
    tosca_severity_t severity;
    const char *code; /* stable identifier, e.g. "duplicate-key" (static) */
    char *file;       /* as the user named it; "" when not tied to a file */
    uint32_t line;    /* 1-based; 0 when unknown */
    uint32_t col;     /* 1-based; 0 when unknown */
    char *message;
    bool defect; /* a defect: a warning in lenient mode, an error in strict mode */
} tosca_diag_t;

typedef struct tosca_diags_s {
    tosca_diag_t *items;
    size_t count;
    size_t capacity;
    size_t errors;
    size_t warnings;
    bool strict;        /* defects are errors instead of warnings */
    size_t max_items;   /* 0: default (1000); later ones are counted only */
    size_t dropped;
} tosca_diags_t;

void tosca_diags_init(tosca_diags_t *d, bool strict);
void tosca_diags_fini(tosca_diags_t *d);
/* Sorts by file, line, col (stable) so output reads top to bottom. */
void tosca_diags_sort(tosca_diags_t *d);
/* "file:line:col: error|warning: message [code]" into buf; returns buf. */
const char *tosca_diag_format(const tosca_diag_t *diag, char *buf, size_t size);
/* A JSON array of {severity, code, file, line, col, message}; NULL on OOM. */
json_t *tosca_diags_to_json(const tosca_diags_t *d);

/* ---- limits and options -------------------------------------------------- */

typedef struct tosca_limits_s {
    size_t max_file_bytes;      /* one YAML file (default 4 MiB) */
    size_t max_depth;           /* YAML nesting (default 64) */
    size_t max_nodes;           /* YAML nodes in one file incl. alias expansion (default 1,000,000) */
    size_t max_alias_expansion; /* nodes reached through aliases (default 100,000) */
    size_t max_imports;         /* files in one template's import closure (default 256) */
    size_t max_csar_bytes;      /* archive size (default 64 MiB) */
    size_t max_csar_entries;    /* entries in an archive (default 10,000) */
    size_t max_csar_unpacked;   /* sum of uncompressed sizes (default 256 MiB) */
    size_t max_instances;       /* node instances in one plan (default 100,000) */
} tosca_limits_t;

typedef struct tosca_options_s {
    bool strict;                /* defects become errors */
    tosca_limits_t limits;      /* zero fields take defaults */
    const char *import_map;     /* YAML file: URL -> local file (relative to the map) */
    const char *const *url_allowlist; /* NULL-terminated http(s) URL prefixes fetchable over
                                       * the network (tosca_url_prefix_check) */
    const char *cache_dir;      /* where fetched URL imports are cached (made 0700 if missing);
                                 * NULL: /tmp/tosca-import-cache-UID */
    const char *const *allowed_roots; /* NULL-terminated extra roots for file imports */
    unsigned fetch_timeout_s;   /* URL import fetch timeout (default 20) */
    unsigned cache_ttl_s;       /* cached imports older than this are fetched again (0: kept) */
} tosca_options_t;

void tosca_options_init(tosca_options_t *o);

/* Checks that prefix may be an entry of url_allowlist: an absolute http or https
 * URL without user info, query or fragment. 0, or ORC_EINVAL with the reason in why. */
int tosca_url_prefix_check(const char *prefix, char *why, size_t whylen);

/* Whether the allowlist admits url: parsed as libcurl will fetch it, http or https,
 * no user info, the scheme, host and port of an entry and a path under the entry's
 * (at a '/' boundary), and no dot segment, encoded dot, slash or backslash, control
 * character or space anywhere. why: the reason when not (NULL-able). */
bool tosca_url_allowed(const char *const *allowlist, const char *url, char *why, size_t whylen);

/* ---- context: caches of parsed type files (normative types, imports) ----- */

typedef struct tosca_ctx_s tosca_ctx_t;

/* Creates a context. opts is copied (strings too). The import map, when set,
 * is read here: its errors, and URL allowlist entries tosca_url_prefix_check
 * refuses, go to diags and make this fail with ORC_ETOSCA. */
int tosca_ctx_new(const tosca_options_t *opts, tosca_ctx_t **out, tosca_diags_t *diags);
void tosca_ctx_free(tosca_ctx_t *ctx);

/* ---- templates ---------------------------------------------------------- */

typedef struct tosca_template_s tosca_template_t;

/* Loads and validates a template file: a YAML service template or a CSAR
 * (zip) archive, told apart by content. Problems go to diags. Returns 0 and
 * *out (free with tosca_template_free) when there is no error (warnings
 * allowed), ORC_ETOSCA when diags hold errors (*out NULL), or another code. */
int tosca_load_file(tosca_ctx_t *ctx, const char *path, tosca_template_t **out,
                    tosca_diags_t *diags);
/* Same from memory. name is used in messages and to resolve relative imports
 * (its directory is the template's root); data need not be NUL-terminated. */
int tosca_load_buffer(tosca_ctx_t *ctx, const char *name, const void *data, size_t len,
                      tosca_template_t **out, tosca_diags_t *diags);
void tosca_template_free(tosca_template_t *t);

/* The tosca_definitions_version of the entry file ("tosca_simple_yaml_1_3"). */
const char *tosca_template_version(const tosca_template_t *t);

/* Builds the plan (see docs/tosca.md for its shape) with inputs (a JSON
 * object of input name -> value, may be NULL) bound. Returns 0 and *plan, or
 * ORC_ETOSCA with errors in diags (bad or missing inputs, cycles, limits). */
int tosca_plan(const tosca_template_t *t, const json_t *inputs, json_t **plan,
               tosca_diags_t *diags);

/* What the template tells a deployer, as a new JSON object (docs/tosca.md):
 * tosca_definitions_version, description (string or null), metadata (object), inputs
 * (a list, as written: name, type, description, required, secret, default, value,
 * entry_schema, status, constraints) and schema (the settable inputs as a JSON Schema
 * object, for forms). 0 and *out, or ORC_ENOMEM. */
int tosca_template_describe(const tosca_template_t *t, json_t **out);

/* Parses YAML (or JSON) text into JSON with the same limits and scalar
 * resolution as templates: for inputs files and `--inputs k=v` values.
 * An empty document gives JSON null. Returns 0, or ORC_ETOSCA / ORC_ELIMIT
 * with the reason in diags. */
int tosca_yaml_to_json(const char *name, const void *data, size_t len, json_t **out,
                       tosca_diags_t *diags);

#ifdef __cplusplus
}
#endif
#endif
