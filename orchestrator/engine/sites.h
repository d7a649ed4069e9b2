/*
 * The sites file: which federated sites the daemon deploys on, each bound to
 * a provider driver (drivers.h). YAML, read with tosca_yaml_to_json and then
 * validated key by key (unknown keys are errors; every problem is reported,
 * not just the first). deploy/sites.example.yaml documents every field.
 * Without a sites file the daemon runs on the embedded default: one site
 * `local` on the driver `local`.
 */
#ifndef ORC_ENGINE_SITES_H
#define ORC_ENGINE_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orc/driver.h"

/* Capacity hints: what the operator says a site has, for ranking before the
 * driver's own inventory answers. -1: not given. */
struct orc_site_gpu_hint {
    char *model; /* "A100" */
    int64_t count;
};

struct orc_site_capacity {
    int64_t cpus;
    int64_t mem;  /* bytes */
    int64_t disk; /* bytes */
    struct orc_site_gpu_hint *gpus;
    size_t ngpus;
};

struct orc_site_def {
    char *name;        /* unique, [a-z0-9][a-z0-9_-]*, at most 63 chars */
    char *driver;      /* a loaded driver's name */
    char *description; /* NULL when not given */
    int priority;      /* higher is preferred; default 0; -1000..1000 */
    bool enabled;      /* default true */
    char *config_json; /* the `config:` mapping as compact JSON text; "{}" */
    char *credentials; /* secret name, or NULL */
    struct orc_site_capacity capacity;
};

struct orc_sites {
    struct orc_site_def *items;
    size_t count;
};

/* Validation problems, one line each: "FILE: sites[1] (gpu-a): priority:
 * expected an integer between -1000 and 1000". */
struct orc_sites_errors {
    char **lines;
    size_t count;
};

/* Reads a sites file. Returns 0 and *out (free with orc_sites_free), or
 * ORC_EFORMAT with every problem in errs (YAML syntax errors come with
 * file:line:col), ORC_EIO when the file cannot be read, ORC_ENOMEM. errs
 * may be NULL; when not, free it with orc_sites_errors_free. */
int orc_sites_load_file(const char *path, struct orc_sites *out, struct orc_sites_errors *errs);
/* The same from memory; name is used in messages. */
int orc_sites_load_buffer(const char *name, const char *data, size_t len, struct orc_sites *out,
                          struct orc_sites_errors *errs);
/* The embedded default: one site `local` on the driver `local`. */
int orc_sites_default(struct orc_sites *out);

void orc_sites_free(struct orc_sites *s);
void orc_sites_errors_free(struct orc_sites_errors *e);

const struct orc_site_def *orc_sites_find(const struct orc_sites *s, const char *name);

/* The driver-facing view of a site (pointers into def). */
static inline struct orc_site_conf orc_site_def_conf(const struct orc_site_def *def)
{
    struct orc_site_conf c = {def->name, def->config_json, def->credentials};
    return c;
}

#endif
