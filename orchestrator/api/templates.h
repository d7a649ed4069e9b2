/*
 * The template catalog (the marketplace of ready templates, docs/api.md "Templates"):
 * seeded at start from a directory of TOSCA files (the examples by default), grown by
 * operators who publish templates through the API and shrunk when they retire them.
 * What is published or retired is kept in the store (its meta table, under
 * "template/NAME"), so every daemon on a shared store sees one catalog and it survives
 * restarts; a stored entry overrides a seeded one of the same name. Each entry carries
 * what libtosca tells of the template (tosca_template_describe): metadata, the inputs
 * and their JSON Schema, from which the dashboard builds its deploy form. Users deploy
 * an entry by name: POST /deployments with templateName instead of template.
 */
#ifndef ORC_API_TEMPLATES_H
#define ORC_API_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "../store/store.h"

struct orc_planner;
struct orc_commit_s;
struct orc_catalog;

/* A catalog over store, reading templates with planner and answering writes once
 * commit made them durable; all three must outlive it. 0 and *out, or ORC_ENOMEM. */
int orc_catalog_new(orc_store_t *store, struct orc_planner *planner, struct orc_commit_s *commit,
                    struct orc_catalog **out);
/* Frees it; the reads of seeded files still running are abandoned. NULL-safe. */
void orc_catalog_free(struct orc_catalog *c);

/* Reads every *.yaml and *.yml file of dir (not its subdirectories), each under its
 * file name less the extension, on the planner (the catalog is ready once all are read:
 * orc_catalog_ready). A file that is not a valid template is logged, with its errors, and
 * left out. A missing dir is an error (ORC_ENOTFOUND, with the reason in err) unless
 * optional. */
int orc_catalog_seed(struct orc_catalog *c, const char *dir, bool optional, char *err,
                     size_t errlen);
/* True once every seeded file was read; else *reason says why not (a readiness check). */
bool orc_catalog_ready(void *catalog, const char **reason);

/* The template text of the entry called name, as a new string (orc_free): 0, ORC_ENOTFOUND
 * (no such entry), ORC_ECONFLICT (retired) or a store error, with the reason in why. */
int orc_catalog_text(struct orc_catalog *c, const char *name, char **text, char *why,
                     size_t whylen);

/* Registers /templates; c must outlive the api. 0 or an ORC_E* code. */
int orc_api_templates_register(orc_api_t *api, struct orc_catalog *c);

#endif
