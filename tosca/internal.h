/*
 * libtosca internals shared by the loader, the type system, the topology
 * validator and the planner: files and their scopes, the context cache, and
 * the parsed topology of a template.
 */
#ifndef TOSCA_INTERNAL_H
#define TOSCA_INTERNAL_H

#include "model.h"

struct tosca_csar;

/* One import of a file, resolved. */
typedef struct tosca_import {
    struct tosca_file *file;
    const char *prefix; /* namespace_prefix / namespace, or NULL */
    tosca_mark_t mark;
} tosca_import_t;

/* A parsed definitions file: its YAML, its own types and its imports. Files
 * of imported type definitions are cached in the context and shared by the
 * templates that import them; the entry file belongs to its template. */
typedef struct tosca_file {
    char *key;                 /* cache key: canonical path, URL, or "builtin:..." */
    const char *name;          /* for messages (interned in arena) */
    const char *dir;           /* directory for relative imports ("" for none) */
    const char *root;          /* real directory its relative imports must stay under
                                * (the importing template's root, or for an import-map
                                * target its own directory); "" for none */
    struct tosca_csar *csar;   /* archive the file lives in, or NULL (borrowed) */
    tosca_ydoc_t *doc;
    tosca_arena_t arena;       /* types and schemas */
    tosca_version_t version;
    const char *version_str;
    tosca_hmap_t types[TOSCA_TK__COUNT];
    tosca_deflist_t type_list; /* all own types in definition order */
    tosca_import_t *imports;
    size_t import_count;
    const tosca_ynode_t *repositories; /* map name -> {url, ...} or NULL */
    const char *profile;       /* 2.0 `profile:` name, or NULL */
    bool is_builtin;
    int state;                 /* 0 new, 1 loading (import cycle detection), 2 done */
    int status;                /* result of loading: 0 or an ORC_E* code */
    tosca_diags_t diags;       /* what loading this file reported (replayed to importers) */
} tosca_file_t;

struct tosca_ctx_s {
    tosca_options_t opts;
    char **allowlist;          /* owned copies of opts strings */
    char **roots;
    char *cache_dir;
    tosca_ydoc_t *import_map_doc;
    const char *import_map_dir;
    char *import_map_dir_owned;
    tosca_hmap_t file_cache;   /* key -> tosca_file_t* (imported files) */
    tosca_hmap_t mapped_real;  /* import-map URL -> real path (one allocation each) */
    tosca_deflist_t files;     /* every cached file, to free them */
    tosca_file_t *builtin[3];  /* [0] Simple Profile 1.x, [1] 2.0 profile, [2] orc types */
    unsigned fetch_count;
};

/* ---- topology ---- */

typedef struct tosca_node_tpl tosca_node_tpl_t;

typedef struct tosca_req_assign {
    const char *name;          /* requirement name */
    tosca_reqdef_t *def;       /* matching definition on the node type, or NULL */
    const char *node;          /* target node template or node type name, as written */
    tosca_node_tpl_t *target;  /* resolved target template, or NULL (dangling / abstract) */
    const char *capability;    /* capability name or type, as written */
    tosca_capdef_t *target_cap; /* the target's capability that fulfils it */
    const char *relationship;  /* relationship type or template name, as written */
    tosca_type_t *rel_type;    /* resolved relationship type */
    struct tosca_rel_tpl *rel_tpl; /* when it names a relationship template */
    const tosca_ynode_t *rel_properties;
    const tosca_ynode_t *rel_interfaces;
    const tosca_ynode_t *node_filter;
    const tosca_ynode_t *def_node;
    tosca_mark_t mark;
} tosca_req_assign_t;

typedef struct tosca_cap_assign {
    const char *name;
    tosca_capdef_t *def;
    const tosca_ynode_t *properties;
    const tosca_ynode_t *attributes;
    const tosca_ynode_t *def_node;
} tosca_cap_assign_t;

struct tosca_node_tpl {
    const char *name;
    size_t index;              /* position in node_templates */
    tosca_type_t *type;
    tosca_node_kind_t kind;
    const char *description;
    const tosca_ynode_t *def;
    const tosca_ynode_t *properties;   /* map or NULL */
    const tosca_ynode_t *attributes;
    const tosca_ynode_t *interfaces;
    const tosca_ynode_t *artifacts;
    const tosca_ynode_t *directives;
    const tosca_ynode_t *metadata;
    const tosca_ynode_t *node_filter;
    const tosca_ynode_t *copy_of;      /* definition named by `copy:`, or NULL */
    tosca_cap_assign_t *caps;
    size_t cap_count;
    tosca_req_assign_t *reqs;
    size_t req_count;
    tosca_mark_t mark;
};

typedef struct tosca_rel_tpl {
    const char *name;
    tosca_type_t *type;
    const tosca_ynode_t *properties;
    const tosca_ynode_t *attributes;
    const tosca_ynode_t *interfaces;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_rel_tpl_t;

typedef struct tosca_group_tpl {
    const char *name;
    tosca_type_t *type;
    tosca_type_t *kind_type;   /* group or policy type */
    const tosca_ynode_t *properties;
    const tosca_ynode_t *members;  /* groups: members; policies: targets */
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_group_tpl_t;

typedef struct tosca_output {
    const char *name;
    const tosca_ynode_t *value;
    tosca_schema_t *schema;    /* may be NULL */
    tosca_mark_t mark;
} tosca_output_t;

struct tosca_template_s {
    tosca_ctx_t *ctx;
    tosca_file_t *entry;       /* owned */
    struct tosca_csar *csar;   /* owned, when loaded from an archive */
    tosca_arena_t arena;       /* topology objects */
    tosca_version_t version;
    const tosca_ynode_t *topology;
    const tosca_ynode_t *description;
    const tosca_ynode_t *metadata;
    tosca_schema_t **inputs;
    size_t input_count;
    tosca_node_tpl_t **nodes;
    size_t node_count;
    tosca_hmap_t node_index;   /* name -> tosca_node_tpl_t* */
    tosca_rel_tpl_t **rels;
    size_t rel_count;
    tosca_group_tpl_t **groups;
    size_t group_count;
    tosca_group_tpl_t **policies;
    size_t policy_count;
    tosca_output_t **outputs;
    size_t output_count;
    const tosca_ynode_t *substitution;
    const tosca_ynode_t *workflows;
    tosca_node_tpl_t **order;    /* node templates in dependency order (targets first) */
    tosca_deflist_t owned_files; /* entry file and archive members (not cached) */
    tosca_hmap_t replayed;       /* cached files whose diagnostics were copied in */
    tosca_diags_t *diags;        /* while loading */
    const char *root_real;       /* real path of the entry's directory, resolved lazily */
    const char *csar_name;       /* the archive's name, for messages */
    bool root_resolved;
    size_t import_total;         /* files in the import closure */
};

/* ---- loader.c ---- */
int tosca_file_load_imports(tosca_template_t *t, tosca_file_t *f, tosca_diags_t *d);
tosca_version_t tosca_version_from_string(const char *s);
const char *tosca_version_string(tosca_version_t v);
/* Looks a type up from a file's scope: its own types, its imports (with
 * namespace prefixes), then the normative types. Short names ("Compute",
 * "tosca:Compute") resolve to normative ones. NULL if not found. */
tosca_type_t *tosca_scope_find(const tosca_ctx_t *ctx, const tosca_file_t *f, tosca_tkind_t kind,
                               const char *name);
tosca_file_t *tosca_builtin_for(const tosca_ctx_t *ctx, const tosca_file_t *f);

/* ---- types.c ---- */
/* Parses the eight *_types sections of f into f->types (pass 1). */
int tosca_types_parse(tosca_ctx_t *ctx, tosca_file_t *f, tosca_diags_t *d);
/* Resolves derived_from and every type reference inside f's types (pass 2). */
int tosca_types_resolve(tosca_ctx_t *ctx, tosca_file_t *f, tosca_diags_t *d);
/* Parses one property/attribute/parameter definition. */
int tosca_schema_parse(tosca_ctx_t *ctx, tosca_file_t *f, tosca_arena_t *a, const char *name,
                       const tosca_ynode_t *def, bool is_attribute, tosca_schema_t **out,
                       tosca_diags_t *d);
/* Resolves a schema's type names within f's scope and checks its default. */
int tosca_schema_resolve(tosca_ctx_t *ctx, const tosca_file_t *f, tosca_schema_t *s,
                         const char *what, tosca_diags_t *d);
const char *tosca_tkind_name(tosca_tkind_t k);
/* Keys of an interface definition or assignment that are not operations
 * (1.0-1.2 write operations as direct keys). */
bool tosca_iface_key_reserved(const char *key);
const char *tosca_tkind_section(tosca_tkind_t k);
/* Key checking helper: reports each key of map not in the NULL-terminated
 * list as a defect "unknown-key" naming `where`. */
int tosca_check_keys(tosca_diags_t *d, const tosca_ynode_t *map, const char *const *keys,
                     const char *where);
/* Scalar string of n, or NULL with an error "expected-string" naming what. */
const char *tosca_expect_str(tosca_diags_t *d, const tosca_ynode_t *n, const char *what);
const tosca_ynode_t *tosca_expect_map(tosca_diags_t *d, const tosca_ynode_t *n,
                                      const char *what, int *rc);

/* ---- kinds.c ---- */
tosca_node_kind_t tosca_node_kind_of(const tosca_type_t *t);
const char *tosca_node_kind_name(tosca_node_kind_t k);

/* ---- topology.c ---- */
int tosca_topology_parse(tosca_template_t *t, tosca_diags_t *d);
tosca_cap_assign_t *tosca_node_cap(const tosca_node_tpl_t *n, const char *name);

/* ---- functions.c ---- */
/* Checks function calls inside value (recursively): names, argument shapes,
 * referenced inputs / nodes / properties exist. self may be NULL. */
int tosca_functions_check(const tosca_template_t *t, const tosca_node_tpl_t *self,
                          const tosca_ynode_t *value, const char *what, tosca_diags_t *d);

/* Static evaluation for the plan: get_input, get_property, concat, join,
 * token are computed; get_attribute, get_operation_output and get_artifact
 * stay as function objects (deferred) with SELF/HOST resolved to node names. */
typedef struct tosca_eval {
    const tosca_template_t *t;
    const json_t *inputs; /* bound inputs: name -> value */
    tosca_diags_t *d;
    int depth;
    int rc; /* first error (ORC_ETOSCA / ORC_ENOMEM); evaluation stops at it */
    const tosca_ynode_t *visiting[32]; /* property values being evaluated (cycles) */
    int nvisiting;
} tosca_eval_t;

/* Returns a new JSON value (never NULL unless e->rc is ORC_ENOMEM); sets
 * *deferred when part of the result must be resolved at run time. */
json_t *tosca_eval(tosca_eval_t *e, const tosca_node_tpl_t *self, const tosca_ynode_t *v,
                   bool *deferred);
/* The node a node is hosted on (first requirement whose relationship derives
 * from tosca.relationships.HostedOn), or NULL. */
const tosca_node_tpl_t *tosca_node_host(const tosca_node_tpl_t *n);
/* Whether a requirement's relationship is a HostedOn (what tosca_node_host looks for
 * first; then a requirement named "host"). */
bool tosca_req_hosted_on(const tosca_req_assign_t *r);
/* Value of a node's property: assigned, else the nearest default. NULL if none. */
const tosca_ynode_t *tosca_node_property(const tosca_node_tpl_t *n, const char *name);
/* Name of a function call node without the 2.0 '$' ("get_input"), or NULL. */
const char *tosca_function_name(const tosca_ynode_t *n);

/* ---- plan.c ---- */
/* An input is a secret when its definition says so (metadata: {secret: true}) or its name
 * does (password, token, api_key...): its value is masked wherever it is shown. */
bool tosca_input_is_secret(const tosca_schema_t *s);

#endif
