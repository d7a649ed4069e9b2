/*
 * The in-memory model of libtosca: type definitions (all eight kinds), the
 * schemas of properties / attributes / parameters, and the topology of a
 * loaded template. Everything points into YAML documents (tosca_ynode_t) for
 * values and source positions; nothing here owns a YAML document.
 */
#ifndef TOSCA_MODEL_H
#define TOSCA_MODEL_H

#include "yaml.h"

/* tosca_definitions_version values we know, in order. */
typedef enum {
    TOSCA_V_UNKNOWN = 0,
    TOSCA_V1_0,
    TOSCA_V1_1,
    TOSCA_V1_2,
    TOSCA_V1_3,
    TOSCA_V2_0,
} tosca_version_t;

typedef enum {
    TOSCA_TK_NODE,
    TOSCA_TK_RELATIONSHIP,
    TOSCA_TK_CAPABILITY,
    TOSCA_TK_INTERFACE,
    TOSCA_TK_ARTIFACT,
    TOSCA_TK_DATA,
    TOSCA_TK_GROUP,
    TOSCA_TK_POLICY,
    TOSCA_TK__COUNT
} tosca_tkind_t;

/* Built-in value types. COMPLEX is a data type with properties. */
typedef enum {
    TOSCA_P_ANY = 0, /* unknown / unchecked */
    TOSCA_P_STRING,
    TOSCA_P_INTEGER,
    TOSCA_P_FLOAT,
    TOSCA_P_BOOLEAN,
    TOSCA_P_TIMESTAMP,
    TOSCA_P_NULL,
    TOSCA_P_VERSION,
    TOSCA_P_RANGE,
    TOSCA_P_LIST,
    TOSCA_P_MAP,
    TOSCA_P_SIZE,      /* scalar-unit.size */
    TOSCA_P_TIME,      /* scalar-unit.time */
    TOSCA_P_FREQUENCY, /* scalar-unit.frequency */
    TOSCA_P_BITRATE,   /* scalar-unit.bitrate */
    TOSCA_P_BYTES,     /* 2.0 */
    TOSCA_P_COMPLEX,
} tosca_prim_t;

/* The node kinds the engine and the drivers know (DESIGN.md). */
typedef enum {
    TOSCA_NK_SOFTWARE = 0,
    TOSCA_NK_COMPUTE,
    TOSCA_NK_SERVICE,
    TOSCA_NK_JOB,
    TOSCA_NK_NETWORK,
    TOSCA_NK_STORAGE,
} tosca_node_kind_t;

struct tosca_type;

/* One constraint clause (1.x `constraints:` entry). */
typedef enum {
    TOSCA_C_EQUAL,
    TOSCA_C_GREATER_THAN,
    TOSCA_C_GREATER_OR_EQUAL,
    TOSCA_C_LESS_THAN,
    TOSCA_C_LESS_OR_EQUAL,
    TOSCA_C_IN_RANGE,
    TOSCA_C_VALID_VALUES,
    TOSCA_C_LENGTH,
    TOSCA_C_MIN_LENGTH,
    TOSCA_C_MAX_LENGTH,
    TOSCA_C_PATTERN,
    TOSCA_C_SCHEMA, /* accepted, not evaluated */
} tosca_cop_t;

typedef struct tosca_constraint {
    tosca_cop_t op;
    const tosca_ynode_t *arg; /* operand as written (scalar, or list for in_range/valid_values) */
    tosca_mark_t mark;
} tosca_constraint_t;

/* A property, attribute, input, output or operation-input definition. */
typedef struct tosca_schema {
    const char *name;
    const char *type_name;          /* as written; NULL when absent */
    tosca_prim_t prim;              /* built-in base of the type */
    struct tosca_type *data_type;   /* the data type when type_name names one */
    bool required;                  /* default true for properties, false for attributes */
    bool required_given;            /* `required` was written */
    const tosca_ynode_t *default_value; /* NULL when absent */
    const tosca_ynode_t *value;     /* parameter `value` (outputs, 1.3/2.0 inputs) */
    const char *status;             /* supported, unsupported, experimental, deprecated */
    const char *description;
    tosca_constraint_t *constraints;
    size_t constraint_count;
    const tosca_ynode_t *validation; /* 2.0 validation clause */
    struct tosca_schema *entry_schema; /* list/map entries */
    struct tosca_schema *key_schema;   /* map keys */
    const tosca_ynode_t *def;          /* the definition node */
    tosca_mark_t mark;
} tosca_schema_t;

/* A growable array of named definitions; first field of each item is its name. */
typedef struct tosca_deflist {
    void **items;
    size_t count;
    size_t cap;
} tosca_deflist_t;

typedef struct tosca_capdef {
    const char *name;
    const char *type_name;
    struct tosca_type *type;
    int64_t occ_min, occ_max; /* occ_max -1: UNBOUNDED */
    const tosca_ynode_t *valid_source_types; /* list or NULL */
    tosca_deflist_t properties;   /* tosca_schema_t refinements */
    tosca_deflist_t attributes;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_capdef_t;

typedef struct tosca_reqdef {
    const char *name;
    const char *capability;  /* capability type name (or 2.0 capability name) */
    struct tosca_type *capability_type;
    const char *node;        /* node type name or NULL */
    struct tosca_type *node_type;
    const char *relationship; /* relationship type name or NULL */
    struct tosca_type *relationship_type;
    int64_t occ_min, occ_max; /* default [1,1]; -1: UNBOUNDED */
    const tosca_ynode_t *node_filter;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_reqdef_t;

typedef struct tosca_opdef {
    const char *name;
    const tosca_ynode_t *implementation; /* scalar or map {primary, dependencies, timeout...} */
    const tosca_ynode_t *inputs;
    const tosca_ynode_t *outputs;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_opdef_t;

typedef struct tosca_ifacedef {
    const char *name;
    const char *type_name;
    struct tosca_type *type;
    const tosca_ynode_t *inputs;
    tosca_deflist_t operations; /* tosca_opdef_t */
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_ifacedef_t;

typedef struct tosca_artdef {
    const char *name;
    const char *type_name;
    struct tosca_type *type;
    const char *file;
    const char *repository;
    const char *deploy_path;
    const tosca_ynode_t *properties;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
} tosca_artdef_t;

struct tosca_file;

typedef struct tosca_type {
    const char *name; /* as defined (full name) */
    tosca_tkind_t kind;
    const char *derived_from;
    struct tosca_type *parent;
    struct tosca_file *file;
    const tosca_ynode_t *def;
    tosca_mark_t mark;
    const char *description;
    const char *version;
    tosca_deflist_t properties;   /* tosca_schema_t, own only */
    tosca_deflist_t attributes;   /* tosca_schema_t */
    tosca_deflist_t capabilities; /* tosca_capdef_t (node types) */
    tosca_deflist_t requirements; /* tosca_reqdef_t (node types), in order */
    tosca_deflist_t interfaces;   /* tosca_ifacedef_t (node, relationship, group types) */
    tosca_deflist_t operations;   /* tosca_opdef_t (interface types) */
    tosca_deflist_t artifacts;    /* tosca_artdef_t (node types) */
    /* data types */
    tosca_prim_t prim; /* for data types: TOSCA_P_COMPLEX or the primitive derived from */
    tosca_constraint_t *constraints;
    size_t constraint_count;
    const tosca_ynode_t *validation;
    tosca_schema_t *entry_schema;
    tosca_schema_t *key_schema;
    /* relationship, capability, group, policy types */
    const tosca_ynode_t *valid_target_types;
    const tosca_ynode_t *valid_source_types;
    const tosca_ynode_t *members;
    const tosca_ynode_t *targets;
    /* artifact types */
    const char *mime_type;
    const tosca_ynode_t *file_ext;
    /* node types: the engine's kind, from the derivation chain */
    tosca_node_kind_t node_kind;
    int state; /* 0 new, 1 resolving, 2 resolved (cycle detection) */
} tosca_type_t;

/* ---- deflist helpers (model.c) ---- */
int tosca_deflist_add(tosca_deflist_t *l, void *item);
void *tosca_deflist_find(const tosca_deflist_t *l, const char *name);
void tosca_deflist_fini(tosca_deflist_t *l);

/* ---- type system queries (typesys.c) ---- */
/* true if t is name or derives from it (full names). */
bool tosca_type_is(const tosca_type_t *t, const char *name);
bool tosca_type_derives(const tosca_type_t *t, const tosca_type_t *base);
/* Nearest definition along the derivation chain, or NULL. */
tosca_schema_t *tosca_type_property(const tosca_type_t *t, const char *name);
tosca_schema_t *tosca_type_attribute(const tosca_type_t *t, const char *name);
tosca_capdef_t *tosca_type_capability(const tosca_type_t *t, const char *name);
tosca_reqdef_t *tosca_type_requirement(const tosca_type_t *t, const char *name);
tosca_ifacedef_t *tosca_type_interface(const tosca_type_t *t, const char *name);
tosca_opdef_t *tosca_type_operation(const tosca_type_t *t, const char *name);
tosca_artdef_t *tosca_type_artifact(const tosca_type_t *t, const char *name);

/* ---- values and constraints (values.c) ---- */

/* Maps a built-in type name ("string", "scalar-unit.size", "tosca:integer",
 * "integer" ...) to its tosca_prim_t; returns false when it is not built in. */
bool tosca_prim_from_name(const char *name, tosca_prim_t *out);
const char *tosca_prim_name(tosca_prim_t p);
/* The keyword of a constraint operator ("in_range"). */
const char *tosca_constraint_name(tosca_cop_t op);

/* Scalar-unit values in canonical units: bytes, seconds, Hz, bits per second. */
int tosca_scalar_unit_parse(tosca_prim_t p, const char *s, double *out);
/* TOSCA version "major.minor[.fix[.qualifier[-build]]]"; compares like versions. */
typedef struct tosca_version_val {
    int64_t major, minor, fix;
    const char *qualifier; /* borrowed from the input, may be NULL */
    size_t qualifier_len;
    int64_t build;
} tosca_version_val_t;
int tosca_version_parse(const char *s, tosca_version_val_t *out);
int tosca_version_cmp(const tosca_version_val_t *a, const tosca_version_val_t *b);
/* YAML 1.1 timestamp; seconds since the epoch, UTC. */
int tosca_timestamp_parse(const char *s, double *out);

/* Parses a `constraints:` list into an arena array; errors to diags. */
int tosca_constraints_parse(tosca_arena_t *a, const tosca_ynode_t *list, tosca_prim_t prim,
                            tosca_constraint_t **out, size_t *count, tosca_diags_t *d);

/* Value checking context: `what` names the value in messages, e.g.
 * "property 'num_cpus' of node 'server'". */
typedef struct tosca_check {
    tosca_diags_t *diags;
    tosca_version_t version;
    bool lenient_types; /* type mismatches are defects (warnings in lenient mode) */
} tosca_check_t;

/* Checks value against schema: its type (built-in or data type, field by
 * field, list/map entries), then every constraint (and 2.0 validation).
 * Function calls ({get_input: ...}, {$get_input: ...}) are not checked.
 * Returns 0, or ORC_ETOSCA after reporting to diags. */
int tosca_value_check(const tosca_check_t *c, const tosca_schema_t *schema,
                      const tosca_ynode_t *value, const char *what);
/* true if n is an intrinsic function call (a one-key map whose key is a
 * known function name, with or without the 2.0 '$'). */
bool tosca_is_function(const tosca_ynode_t *n);

#endif
