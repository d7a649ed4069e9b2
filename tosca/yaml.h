/*
 * YAML documents as trees of nodes that keep their source position, built
 * from libyaml's event API. A document owns an arena; every node, string and
 * array of a document lives in it and goes away with tosca_ydoc_free().
 * Aliases are resolved by sharing the anchored node (the tree is a DAG), with
 * the expansion counted against the limits so that "billion laughs" inputs
 * are refused; `<<` merge keys are applied; duplicate keys are errors.
 */
#ifndef TOSCA_YAML_H
#define TOSCA_YAML_H

#include "base.h"

typedef enum { TOSCA_Y_SCALAR, TOSCA_Y_MAP, TOSCA_Y_SEQ } tosca_ykind_t;

typedef struct tosca_ynode tosca_ynode_t;

typedef struct tosca_ypair {
    tosca_ynode_t *key; /* always a scalar */
    tosca_ynode_t *value;
} tosca_ypair_t;

struct tosca_ynode {
    tosca_ykind_t kind;
    bool plain;       /* scalar written without quotes or block style */
    tosca_mark_t mark;
    const char *tag;  /* explicit tag ("tag:yaml.org,2002:str") or NULL */
    size_t weight;    /* nodes in this subtree, itself included */
    union {
        struct {
            const char *str; /* NUL-terminated; may contain NUL only if len says so */
            size_t len;
        } scalar;
        struct {
            tosca_ypair_t *items;
            size_t count;
        } map;
        struct {
            tosca_ynode_t **items;
            size_t count;
        } seq;
    } u;
};

typedef struct tosca_ydoc {
    tosca_arena_t arena;
    tosca_ynode_t *root; /* NULL for an empty document */
    const char *file;    /* interned name, lives in the arena */
    size_t nodes;        /* nodes created, aliases expanded */
} tosca_ydoc_t;

/* Parses one YAML document from data. Checks size, UTF-8 / binary content,
 * depth, node count, alias expansion and duplicate keys; more than one
 * document is an error. file names the input in messages. Returns 0 and a
 * document (free with tosca_ydoc_free) or ORC_ETOSCA / ORC_ELIMIT /
 * ORC_ENOMEM with the reason in diags. */
int tosca_ydoc_parse(const char *file, const void *data, size_t len, const tosca_limits_t *lim,
                     tosca_ydoc_t **out, tosca_diags_t *diags);
void tosca_ydoc_free(tosca_ydoc_t *doc);

/* Lookup in a mapping by key (linear; maps are small). NULL if n is not a map. */
tosca_ynode_t *tosca_ymap_get(const tosca_ynode_t *n, const char *key);
tosca_ypair_t *tosca_ymap_pair(const tosca_ynode_t *n, const char *key);

/* Scalar predicates following the YAML 1.1 / 1.2 core schema that TOSCA uses:
 * only plain scalars without an explicit !!str tag resolve to non-strings. */
bool tosca_yis_null(const tosca_ynode_t *n);        /* NULL node, ~, null, Null, NULL, empty plain */
bool tosca_yis_str(const tosca_ynode_t *n, const char *s); /* scalar equal to s */
int tosca_yget_bool(const tosca_ynode_t *n, bool *out);     /* true/false/yes/no/on/off; 0 or ORC_EINVAL */
int tosca_yget_int(const tosca_ynode_t *n, int64_t *out);   /* decimal, 0x, 0o, leading sign */
int tosca_yget_float(const tosca_ynode_t *n, double *out);  /* also .inf, .nan; ints accepted */
/* What a plain scalar resolves to: "null", "boolean", "integer", "float" or "string";
 * "map" and "list" for collections. */
const char *tosca_yresolved_type(const tosca_ynode_t *n);
/* The node as JSON with YAML scalar resolution; NULL on OOM. */
json_t *tosca_ynode_to_json(const tosca_ynode_t *n);
/* Short human description of a node's kind for messages: "a mapping", ... */
const char *tosca_ykind_name(const tosca_ynode_t *n);

#endif
