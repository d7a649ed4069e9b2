/*
 * Type definitions: parses the eight `*_types` sections of a definitions file
 * (pass 1) and resolves them in the file's scope (pass 2): derived_from
 * chains with cycle detection, the types named by property, capability,
 * requirement, interface and artifact definitions, and defaults checked
 * against their schemas and constraints.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const char *const tkind_names[TOSCA_TK__COUNT] = {
    "node", "relationship", "capability", "interface", "artifact", "data", "group", "policy"};
static const char *const tkind_sections[TOSCA_TK__COUNT] = {
    "node_types",      "relationship_types", "capability_types", "interface_types",
    "artifact_types",  "data_types",         "group_types",      "policy_types"};

const char *tosca_tkind_name(tosca_tkind_t k)
{
    return k < TOSCA_TK__COUNT ? tkind_names[k] : "?";
}

const char *tosca_tkind_section(tosca_tkind_t k)
{
    return k < TOSCA_TK__COUNT ? tkind_sections[k] : "?";
}

/* ---- small parsing helpers shared with topology.c ---- */

int tosca_check_keys(tosca_diags_t *d, const tosca_ynode_t *map, const char *const *keys,
                     const char *where)
{
    int rc = 0;

    if (map == NULL || map->kind != TOSCA_Y_MAP)
        return 0;
    for (size_t i = 0; i < map->u.map.count; i++) {
        const tosca_ynode_t *k = map->u.map.items[i].key;
        bool known = false;
        for (const char *const *p = keys; *p && !known; p++)
            known = strcmp(*p, k->u.scalar.str) == 0;
        if (!known) {
            int r = tosca_defect(d, &k->mark, "unknown-key", "%s: unknown key '%s'", where,
                                 k->u.scalar.str);
            if (r < 0)
                rc = r;
        }
    }
    return rc;
}

const char *tosca_expect_str(tosca_diags_t *d, const tosca_ynode_t *n, const char *what)
{
    if (n && n->kind == TOSCA_Y_SCALAR && !tosca_yis_null(n))
        return n->u.scalar.str;
    if (n)
        tosca_error(d, &n->mark, "expected-string", "%s must be a string, not %s", what,
                    tosca_yis_null(n) ? "empty" : tosca_ykind_name(n));
    return NULL;
}

const tosca_ynode_t *tosca_expect_map(tosca_diags_t *d, const tosca_ynode_t *n,
                                      const char *what, int *rc)
{
    if (n == NULL || tosca_yis_null(n))
        return NULL;
    if (n->kind == TOSCA_Y_MAP)
        return n;
    *rc = tosca_error(d, &n->mark, "expected-map", "%s must be a mapping, not %s", what,
                      tosca_ykind_name(n));
    return NULL;
}

static const char *opt_str(const tosca_ynode_t *map, const char *key)
{
    const tosca_ynode_t *v = tosca_ymap_get(map, key);
    return v && v->kind == TOSCA_Y_SCALAR ? v->u.scalar.str : NULL;
}

/* Parses `occurrences: [min, max]` (max may be UNBOUNDED). */
static int parse_occurrences(tosca_diags_t *d, const tosca_ynode_t *n, int64_t *min,
                             int64_t *max, const char *what)
{
    int64_t lo, hi;

    if (n == NULL)
        return 0;
    if (n->kind != TOSCA_Y_SEQ || n->u.seq.count != 2 ||
        tosca_yget_int(n->u.seq.items[0], &lo) < 0 || lo < 0)
        return tosca_error(d, &n->mark, "bad-occurrences",
                           "%s: occurrences must be [min, max] with 0 <= min <= max", what);
    if (tosca_yis_str(n->u.seq.items[1], "UNBOUNDED"))
        hi = -1;
    else if (tosca_yget_int(n->u.seq.items[1], &hi) < 0 || hi < lo)
        return tosca_error(d, &n->mark, "bad-occurrences",
                           "%s: occurrences must be [min, max] with 0 <= min <= max", what);
    *min = lo;
    *max = hi;
    return 0;
}

/* ---- schemas (property, attribute, parameter definitions) ---- */

static const char *const schema_keys[] = {
    "type",          "description", "required",   "default",  "value",    "status",
    "constraints",   "key_schema",  "entry_schema", "external_schema", "metadata", "validation",
    "title",         "mapping",     NULL};

static int schema_parse_fields(tosca_ctx_t *ctx, tosca_file_t *f, tosca_arena_t *a,
                               tosca_schema_t *s, const tosca_ynode_t *def, tosca_diags_t *d)
{
    const tosca_ynode_t *req = tosca_ymap_get(def, "required");
    const tosca_ynode_t *es = tosca_ymap_get(def, "entry_schema");
    const tosca_ynode_t *ks = tosca_ymap_get(def, "key_schema");
    int rc = 0;

    s->type_name = opt_str(def, "type");
    s->description = opt_str(def, "description");
    s->status = opt_str(def, "status");
    s->default_value = tosca_ymap_get(def, "default");
    s->value = tosca_ymap_get(def, "value");
    s->validation = tosca_ymap_get(def, "validation");
    if (req) {
        bool b;
        if (tosca_yget_bool(req, &b) < 0)
            rc = tosca_error(d, &req->mark, "expected-boolean",
                             "'%s': required must be true or false", s->name);
        else
            s->required = b, s->required_given = true;
    }
    if (es) {
        const tosca_ynode_t *esd = es->kind == TOSCA_Y_SCALAR ? NULL : es;
        int r = tosca_schema_parse(ctx, f, a, "entry_schema", esd ? esd : es, false,
                                   &s->entry_schema, d);
        rc = r < 0 ? r : rc;
    }
    if (ks) {
        int r = tosca_schema_parse(ctx, f, a, "key_schema", ks, false, &s->key_schema, d);
        rc = r < 0 ? r : rc;
    }
    return rc;
}

int tosca_schema_parse(tosca_ctx_t *ctx, tosca_file_t *f, tosca_arena_t *a, const char *name,
                       const tosca_ynode_t *def, bool is_attribute, tosca_schema_t **out,
                       tosca_diags_t *d)
{
    tosca_schema_t *s = tosca_arena_alloc(a, sizeof(*s));
    char where[256];
    int rc = 0;

    *out = NULL;
    if (s == NULL)
        return ORC_ENOMEM;
    s->name = name;
    s->def = def;
    s->mark = def ? def->mark : (tosca_mark_t){0};
    s->required = !is_attribute;
    *out = s;
    if (def == NULL || tosca_yis_null(def))
        return 0;
    if (def->kind == TOSCA_Y_SCALAR) {
        /* short form `name: type` (entry_schema: string, and lenient files) */
        s->type_name = def->u.scalar.str;
        return 0;
    }
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "definition of '%s' must be a mapping, not %s", name,
                           tosca_ykind_name(def));
    snprintf(where, sizeof(where), "definition of '%s'", name);
    rc = tosca_check_keys(d, def, schema_keys, where);
    {
        int r = schema_parse_fields(ctx, f, a, s, def, d);
        rc = r < 0 ? r : rc;
    }
    return rc;
}

/* Resolves a type name used as a value type: built-in primitive or data type. */
static int schema_resolve_type(tosca_ctx_t *ctx, const tosca_file_t *f, tosca_schema_t *s,
                               const char *what, tosca_diags_t *d)
{
    tosca_type_t *dt;

    if (s->type_name == NULL) {
        s->prim = TOSCA_P_ANY;
        return 0;
    }
    if (tosca_prim_from_name(s->type_name, &s->prim))
        return 0;
    dt = tosca_scope_find(ctx, f, TOSCA_TK_DATA, s->type_name);
    if (dt == NULL) {
        s->prim = TOSCA_P_ANY;
        return tosca_error(d, &s->mark, "unknown-type", "%s: unknown data type '%s'", what,
                           s->type_name);
    }
    s->data_type = dt;
    s->prim = dt->prim;
    return 0;
}

int tosca_schema_resolve(tosca_ctx_t *ctx, const tosca_file_t *f, tosca_schema_t *s,
                         const char *what, tosca_diags_t *d)
{
    const tosca_ynode_t *cons = tosca_ymap_get(s->def, "constraints");
    tosca_check_t chk = {d, f->version, false};
    int rc = schema_resolve_type(ctx, f, s, what, d);

    if (s->entry_schema) {
        int r = tosca_schema_resolve(ctx, f, s->entry_schema, what, d);
        rc = r < 0 ? r : rc;
    }
    if (s->key_schema) {
        int r = tosca_schema_resolve(ctx, f, s->key_schema, what, d);
        rc = r < 0 ? r : rc;
    }
    if (cons && s->constraints == NULL) {
        int r = tosca_constraints_parse(&((tosca_file_t *)f)->arena, cons, s->prim,
                                        &s->constraints, &s->constraint_count, d);
        rc = r < 0 ? r : rc;
    }
    if (rc == 0 && s->default_value && !tosca_yis_null(s->default_value)) {
        char buf[300];
        snprintf(buf, sizeof(buf), "default of %s", what);
        rc = tosca_value_check(&chk, s, s->default_value, buf);
    }
    return rc;
}

static int parse_schema_map(tosca_ctx_t *ctx, tosca_file_t *f, const tosca_ynode_t *map,
                            bool attributes, tosca_deflist_t *out, const char *where,
                            tosca_diags_t *d)
{
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(d, map, where, &rc);

    for (size_t i = 0; m && i < m->u.map.count; i++) {
        tosca_schema_t *s;
        int r = tosca_schema_parse(ctx, f, &f->arena, m->u.map.items[i].key->u.scalar.str,
                                   m->u.map.items[i].value, attributes, &s, d);
        if (r == ORC_ENOMEM || (s && tosca_deflist_add(out, s) < 0))
            return ORC_ENOMEM;
        rc = r < 0 ? r : rc;
    }
    return rc;
}

/* ---- capability, requirement, interface, artifact definitions ---- */

static const char *const capdef_keys[] = {"type", "description", "properties", "attributes",
                                          "valid_source_types", "valid_source_node_types",
                                          "occurrences", "metadata", NULL};

static int parse_capdef(tosca_ctx_t *ctx, tosca_file_t *f, const char *name,
                        const tosca_ynode_t *def, tosca_capdef_t **out, tosca_diags_t *d)
{
    tosca_capdef_t *c = tosca_arena_alloc(&f->arena, sizeof(*c));
    int rc = 0;

    if ((*out = c) == NULL)
        return ORC_ENOMEM;
    c->name = name;
    c->def = def;
    c->mark = def->mark;
    c->occ_min = 1;
    c->occ_max = -1;
    if (def->kind == TOSCA_Y_SCALAR) {
        c->type_name = def->u.scalar.str;
        return 0;
    }
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "capability definition '%s' must be a type name or a mapping", name);
    rc = tosca_check_keys(d, def, capdef_keys, "capability definition");
    c->type_name = tosca_expect_str(d, tosca_ymap_get(def, "type"), "capability type");
    if (c->type_name == NULL)
        rc = tosca_error(d, &def->mark, "missing-key", "capability '%s' has no type", name);
    c->valid_source_types = tosca_ymap_get(def, "valid_source_types");
    if (c->valid_source_types == NULL)
        c->valid_source_types = tosca_ymap_get(def, "valid_source_node_types");
    if (parse_occurrences(d, tosca_ymap_get(def, "occurrences"), &c->occ_min, &c->occ_max,
                          name) < 0)
        rc = ORC_ETOSCA;
    {
        int r = parse_schema_map(ctx, f, tosca_ymap_get(def, "properties"), false,
                                 &c->properties, "capability properties", d);
        int r2 = parse_schema_map(ctx, f, tosca_ymap_get(def, "attributes"), true,
                                  &c->attributes, "capability attributes", d);
        rc = r < 0 ? r : r2 < 0 ? r2 : rc;
    }
    return rc;
}

static const char *const reqdef_keys[] = {"capability", "node",        "relationship",
                                          "occurrences", "description", "node_filter",
                                          "count_range", "metadata",    NULL};

static int parse_reqdef(tosca_file_t *f, const char *name, const tosca_ynode_t *def,
                        tosca_reqdef_t **out, tosca_diags_t *d)
{
    tosca_reqdef_t *r = tosca_arena_alloc(&f->arena, sizeof(*r));
    const tosca_ynode_t *rel, *occ;
    int rc = 0;

    if ((*out = r) == NULL)
        return ORC_ENOMEM;
    r->name = name;
    r->def = def;
    r->mark = def->mark;
    r->occ_min = 1;
    r->occ_max = 1;
    if (def->kind == TOSCA_Y_SCALAR) {
        r->capability = def->u.scalar.str;
        return 0;
    }
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "requirement definition '%s' must be a mapping", name);
    rc = tosca_check_keys(d, def, reqdef_keys, "requirement definition");
    r->capability = opt_str(def, "capability");
    r->node = opt_str(def, "node");
    rel = tosca_ymap_get(def, "relationship");
    r->relationship = rel && rel->kind == TOSCA_Y_MAP ? opt_str(rel, "type") : opt_str(def,
                                                                                    "relationship");
    r->node_filter = tosca_ymap_get(def, "node_filter");
    occ = tosca_ymap_get(def, "occurrences");
    if (occ == NULL)
        occ = tosca_ymap_get(def, "count_range");
    if (parse_occurrences(d, occ, &r->occ_min, &r->occ_max, name) < 0)
        rc = ORC_ETOSCA;
    if (r->capability == NULL && f->version < TOSCA_V2_0)
        rc = tosca_error(d, &def->mark, "missing-key",
                         "requirement definition '%s' needs a capability", name);
    return rc;
}

static const char *const opdef_keys[] = {"description", "implementation", "inputs", "outputs",
                                         "metadata", NULL};
static const char *const iface_reserved[] = {"type", "inputs", "operations", "notifications",
                                             "description", "derived_from", "version",
                                             "metadata", NULL};

bool tosca_iface_key_reserved(const char *key)
{
    return tosca_str_in(key, iface_reserved);
}

static int parse_opdef(tosca_file_t *f, const char *name, const tosca_ynode_t *def,
                       tosca_deflist_t *ops, tosca_diags_t *d)
{
    tosca_opdef_t *o = tosca_arena_alloc(&f->arena, sizeof(*o));
    int rc = 0;

    if (o == NULL || tosca_deflist_add(ops, o) < 0)
        return ORC_ENOMEM;
    o->name = name;
    o->def = def;
    o->mark = def ? def->mark : (tosca_mark_t){0};
    if (def == NULL || def->kind == TOSCA_Y_SCALAR) {
        o->implementation = def && !tosca_yis_null(def) ? def : NULL;
        return 0;
    }
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "operation '%s' must be an implementation or a mapping", name);
    rc = tosca_check_keys(d, def, opdef_keys, "operation definition");
    o->implementation = tosca_ymap_get(def, "implementation");
    o->inputs = tosca_ymap_get(def, "inputs");
    o->outputs = tosca_ymap_get(def, "outputs");
    return rc;
}

/* Operations of an interface: under `operations:` (1.3+) or as direct keys. */
static int parse_operations(tosca_file_t *f, const tosca_ynode_t *def, tosca_deflist_t *ops,
                            tosca_diags_t *d)
{
    const tosca_ynode_t *opmap = tosca_ymap_get(def, "operations");
    int rc = 0;

    if (opmap && opmap->kind == TOSCA_Y_MAP)
        for (size_t i = 0; i < opmap->u.map.count; i++) {
            int r = parse_opdef(f, opmap->u.map.items[i].key->u.scalar.str,
                                opmap->u.map.items[i].value, ops, d);
            rc = r < 0 ? r : rc;
        }
    for (size_t i = 0; def && def->kind == TOSCA_Y_MAP && i < def->u.map.count; i++) {
        const char *k = def->u.map.items[i].key->u.scalar.str;
        if (!tosca_str_in(k, iface_reserved)) {
            int r = parse_opdef(f, k, def->u.map.items[i].value, ops, d);
            rc = r < 0 ? r : rc;
        }
    }
    return rc == ORC_ENOMEM ? rc : rc;
}

static int parse_ifacedef(tosca_file_t *f, const char *name, const tosca_ynode_t *def,
                          tosca_ifacedef_t **out, tosca_diags_t *d)
{
    tosca_ifacedef_t *i = tosca_arena_alloc(&f->arena, sizeof(*i));

    if ((*out = i) == NULL)
        return ORC_ENOMEM;
    i->name = name;
    i->def = def;
    i->mark = def->mark;
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "interface definition '%s' must be a mapping", name);
    i->type_name = opt_str(def, "type");
    i->inputs = tosca_ymap_get(def, "inputs");
    return parse_operations(f, def, &i->operations, d);
}

static int parse_artdef(tosca_file_t *f, const char *name, const tosca_ynode_t *def,
                        tosca_artdef_t **out, tosca_diags_t *d)
{
    tosca_artdef_t *a = tosca_arena_alloc(&f->arena, sizeof(*a));

    if ((*out = a) == NULL)
        return ORC_ENOMEM;
    a->name = name;
    a->def = def;
    a->mark = def->mark;
    if (def->kind == TOSCA_Y_SCALAR) {
        a->file = def->u.scalar.str;
        return 0;
    }
    if (def->kind != TOSCA_Y_MAP)
        return tosca_error(d, &def->mark, "expected-map",
                           "artifact definition '%s' must be a file name or a mapping", name);
    a->type_name = opt_str(def, "type");
    a->file = opt_str(def, "file");
    a->repository = opt_str(def, "repository");
    a->deploy_path = opt_str(def, "deploy_path");
    a->properties = tosca_ymap_get(def, "properties");
    if (a->file == NULL)
        return tosca_error(d, &def->mark, "missing-key", "artifact '%s' has no file", name);
    return 0;
}

/* Iterates a definitions map or (requirements) a list of one-key maps. */
typedef int (*def_fn)(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, const char *name,
                      const tosca_ynode_t *def, tosca_diags_t *d);

static int for_each_def(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t,
                        const tosca_ynode_t *n, const char *what, def_fn fn, tosca_diags_t *d)
{
    int rc = 0;

    if (n == NULL || tosca_yis_null(n))
        return 0;
    if (n->kind == TOSCA_Y_MAP) {
        for (size_t i = 0; i < n->u.map.count && rc != ORC_ENOMEM; i++) {
            int r = fn(ctx, f, t, n->u.map.items[i].key->u.scalar.str, n->u.map.items[i].value,
                       d);
            rc = r < 0 ? r : rc;
        }
        return rc;
    }
    if (n->kind == TOSCA_Y_SEQ) {
        for (size_t i = 0; i < n->u.seq.count && rc != ORC_ENOMEM; i++) {
            const tosca_ynode_t *e = n->u.seq.items[i];
            int r;
            if (e->kind != TOSCA_Y_MAP || e->u.map.count != 1)
                r = tosca_error(d, &e->mark, "expected-map",
                                "each entry of %s must be a one-key mapping", what);
            else
                r = fn(ctx, f, t, e->u.map.items[0].key->u.scalar.str,
                       e->u.map.items[0].value, d);
            rc = r < 0 ? r : rc;
        }
        return rc;
    }
    return tosca_error(d, &n->mark, "expected-map", "%s must be a mapping, not %s", what,
                       tosca_ykind_name(n));
}

static int add_cap(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, const char *name,
                   const tosca_ynode_t *def, tosca_diags_t *d)
{
    tosca_capdef_t *c = NULL;
    int rc = parse_capdef(ctx, f, name, def, &c, d);
    if (c && tosca_deflist_add(&t->capabilities, c) < 0) {
        tosca_deflist_fini(&c->properties);
        tosca_deflist_fini(&c->attributes);
        return ORC_ENOMEM;
    }
    return rc;
}

static int add_req(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, const char *name,
                   const tosca_ynode_t *def, tosca_diags_t *d)
{
    tosca_reqdef_t *r = NULL;
    int rc = parse_reqdef(f, name, def, &r, d);
    (void)ctx;
    if (r && tosca_deflist_add(&t->requirements, r) < 0)
        return ORC_ENOMEM;
    return rc;
}

static int add_iface(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, const char *name,
                     const tosca_ynode_t *def, tosca_diags_t *d)
{
    tosca_ifacedef_t *i = NULL;
    int rc = parse_ifacedef(f, name, def, &i, d);
    (void)ctx;
    if (i && tosca_deflist_add(&t->interfaces, i) < 0) {
        tosca_deflist_fini(&i->operations);
        return ORC_ENOMEM;
    }
    return rc;
}

static int add_art(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, const char *name,
                   const tosca_ynode_t *def, tosca_diags_t *d)
{
    tosca_artdef_t *a = NULL;
    int rc = parse_artdef(f, name, def, &a, d);
    (void)ctx;
    if (a && tosca_deflist_add(&t->artifacts, a) < 0)
        return ORC_ENOMEM;
    return rc;
}

/* ---- type definitions ---- */

static const char *const common_type_keys[] = {"derived_from", "version", "metadata",
                                               "description", NULL};
static const char *const kind_keys[TOSCA_TK__COUNT][12] = {
    [TOSCA_TK_NODE] = {"properties", "attributes", "requirements", "capabilities", "interfaces",
                       "artifacts", NULL},
    [TOSCA_TK_RELATIONSHIP] = {"properties", "attributes", "interfaces", "valid_target_types",
                               "valid_capability_types", "valid_target_node_types",
                               "valid_source_node_types", "credential", NULL},
    [TOSCA_TK_CAPABILITY] = {"properties", "attributes", "valid_source_types",
                             "valid_source_node_types", "valid_relationship_types", NULL},
    [TOSCA_TK_INTERFACE] = {"inputs", "operations", "notifications", NULL},
    [TOSCA_TK_ARTIFACT] = {"mime_type", "file_ext", "properties", NULL},
    [TOSCA_TK_DATA] = {"constraints", "properties", "key_schema", "entry_schema", "validation",
                       "units", "canonical_unit", "prefixes", "data_type", NULL},
    [TOSCA_TK_GROUP] = {"properties", "attributes", "members", "requirements", "capabilities",
                        "interfaces", NULL},
    [TOSCA_TK_POLICY] = {"properties", "targets", "triggers", NULL},
};

static int check_type_keys(tosca_diags_t *d, const tosca_type_t *t)
{
    int rc = 0;
    char where[300];

    snprintf(where, sizeof(where), "%s type '%s'", tosca_tkind_name(t->kind), t->name);
    for (size_t i = 0; i < t->def->u.map.count; i++) {
        const tosca_ynode_t *k = t->def->u.map.items[i].key;
        if (tosca_str_in(k->u.scalar.str, common_type_keys) ||
            tosca_str_in(k->u.scalar.str, kind_keys[t->kind]))
            continue;
        if (t->kind == TOSCA_TK_INTERFACE)
            continue; /* 1.0-1.2: operations are direct keys */
        rc = tosca_defect(d, &k->mark, "unknown-key", "%s: unknown key '%s'", where,
                          k->u.scalar.str);
    }
    return rc;
}

static int parse_type_members(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t,
                              tosca_diags_t *d)
{
    const tosca_ynode_t *def = t->def;
    int rc[8] = {0};

    rc[0] = parse_schema_map(ctx, f, tosca_ymap_get(def, "properties"), false, &t->properties,
                             "properties", d);
    rc[1] = parse_schema_map(ctx, f, tosca_ymap_get(def, "attributes"), true, &t->attributes,
                             "attributes", d);
    rc[2] = for_each_def(ctx, f, t, tosca_ymap_get(def, "capabilities"), "capabilities",
                         add_cap, d);
    rc[3] = for_each_def(ctx, f, t, tosca_ymap_get(def, "requirements"), "requirements",
                         add_req, d);
    if (t->kind == TOSCA_TK_INTERFACE)
        rc[4] = parse_operations(f, def, &t->operations, d);
    else
        rc[4] = for_each_def(ctx, f, t, tosca_ymap_get(def, "interfaces"), "interfaces",
                             add_iface, d);
    rc[5] = for_each_def(ctx, f, t, tosca_ymap_get(def, "artifacts"), "artifacts", add_art, d);
    if (t->kind == TOSCA_TK_DATA) {
        const tosca_ynode_t *es = tosca_ymap_get(def, "entry_schema");
        const tosca_ynode_t *ks = tosca_ymap_get(def, "key_schema");
        if (es)
            rc[6] = tosca_schema_parse(ctx, f, &f->arena, "entry_schema", es, false,
                                       &t->entry_schema, d);
        if (ks)
            rc[7] = tosca_schema_parse(ctx, f, &f->arena, "key_schema", ks, false,
                                       &t->key_schema, d);
        t->validation = tosca_ymap_get(def, "validation");
    }
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(rc); i++)
        if (rc[i] == ORC_ENOMEM)
            return ORC_ENOMEM;
    for (size_t i = 0; i < TOSCA_ARRAY_LEN(rc); i++)
        if (rc[i] < 0)
            return rc[i];
    return 0;
}

static int parse_type(tosca_ctx_t *ctx, tosca_file_t *f, tosca_tkind_t kind,
                      const tosca_ynode_t *key, const tosca_ynode_t *def, tosca_diags_t *d)
{
    tosca_type_t *t;
    void *old = NULL;
    int rc, rc2;

    if (def == NULL || def->kind != TOSCA_Y_MAP) {
        if (def == NULL || tosca_yis_null(def))
            def = NULL;
        else
            return tosca_error(d, &def->mark, "expected-map",
                               "%s type '%s' must be a mapping, not %s", tosca_tkind_name(kind),
                               key->u.scalar.str, tosca_ykind_name(def));
    }
    t = tosca_arena_alloc(&f->arena, sizeof(*t));
    if (t == NULL)
        return ORC_ENOMEM;
    t->name = key->u.scalar.str;
    t->kind = kind;
    t->file = f;
    t->def = def ? def : key;
    t->mark = key->mark;
    t->prim = TOSCA_P_COMPLEX;
    if (tosca_hmap_put(&f->types[kind], t->name, t, &old) < 0 ||
        tosca_deflist_add(&f->type_list, t) < 0)
        return ORC_ENOMEM;
    if (old)
        return tosca_error(d, &key->mark, "duplicate-type", "%s type '%s' is defined twice",
                           tosca_tkind_name(kind), t->name);
    if (def == NULL)
        return 0;
    t->derived_from = opt_str(def, "derived_from");
    t->description = opt_str(def, "description");
    t->version = opt_str(def, "version");
    t->valid_target_types = tosca_ymap_get(def, "valid_target_types");
    if (t->valid_target_types == NULL)
        t->valid_target_types = tosca_ymap_get(def, "valid_capability_types");
    t->valid_source_types = tosca_ymap_get(def, "valid_source_types");
    t->members = tosca_ymap_get(def, "members");
    t->targets = tosca_ymap_get(def, "targets");
    t->mime_type = opt_str(def, "mime_type");
    t->file_ext = tosca_ymap_get(def, "file_ext");
    rc = check_type_keys(d, t);
    rc2 = parse_type_members(ctx, f, t, d);
    return rc2 < 0 ? rc2 : rc;
}

int tosca_types_parse(tosca_ctx_t *ctx, tosca_file_t *f, tosca_diags_t *d)
{
    const tosca_ynode_t *root = f->doc->root;
    int rc = 0;

    for (int k = 0; k < TOSCA_TK__COUNT; k++) {
        int r = 0;
        const tosca_ynode_t *sec =
            tosca_expect_map(d, tosca_ymap_get(root, tkind_sections[k]), tkind_sections[k], &r);
        for (size_t i = 0; sec && i < sec->u.map.count && r != ORC_ENOMEM; i++) {
            int r2 = parse_type(ctx, f, (tosca_tkind_t)k, sec->u.map.items[i].key,
                                sec->u.map.items[i].value, d);
            r = r2 < 0 ? r2 : r;
        }
        if (r == ORC_ENOMEM)
            return r;
        rc = r < 0 ? r : rc;
    }
    return rc;
}

/* ---- pass 2: resolution ---- */

static int resolve_parent(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, tosca_diags_t *d)
{
    const tosca_ynode_t *df = tosca_ymap_get(t->def, "derived_from");
    tosca_mark_t *m = df ? &((tosca_ynode_t *)df)->mark : &t->mark;
    tosca_prim_t prim;

    if (t->derived_from == NULL)
        return 0;
    if (t->kind == TOSCA_TK_DATA && tosca_prim_from_name(t->derived_from, &prim)) {
        t->prim = prim;
        return 0;
    }
    if (t->kind == TOSCA_TK_DATA && strcmp(t->derived_from, "scalar") == 0 &&
        f->version == TOSCA_V2_0) {
        /* 2.0 scalar types define their own units: the name tells the known ones */
        t->prim = tosca_prim_from_name(t->name, &prim) ? prim : TOSCA_P_ANY;
        return 0;
    }
    t->parent = tosca_scope_find(ctx, t->file, t->kind, t->derived_from);
    if (t->parent == t || (t->parent == NULL && strcmp(t->derived_from, t->name) == 0)) {
        t->parent = NULL;
        return tosca_error(d, m, "derivation-cycle", "%s type '%s' derives from itself",
                           tosca_tkind_name(t->kind), t->name);
    }
    if (t->parent == NULL)
        return tosca_error(d, m, "unknown-type", "%s type '%s' derives from unknown type '%s'",
                           tosca_tkind_name(t->kind), t->name, t->derived_from);
    return 0;
}

/* Follows the chain to detect cycles (the chain may cross files). */
static int check_chain(tosca_type_t *t, tosca_diags_t *d)
{
    size_t steps = 0;

    for (tosca_type_t *p = t->parent; p; p = p->parent) {
        if (p == t || ++steps > 10000) {
            t->parent = NULL;
            return tosca_error(d, &t->mark, "derivation-cycle",
                               "%s type '%s' is part of a derived_from cycle",
                               tosca_tkind_name(t->kind), t->name);
        }
    }
    return 0;
}

static tosca_type_t *find_ref(tosca_ctx_t *ctx, tosca_file_t *f, tosca_tkind_t kind,
                              const char *name, const tosca_mark_t *m, const char *what,
                              tosca_diags_t *d, int *rc)
{
    tosca_type_t *t;

    if (name == NULL)
        return NULL;
    t = tosca_scope_find(ctx, f, kind, name);
    if (t == NULL)
        *rc = tosca_error(d, m, "unknown-type", "%s: unknown %s type '%s'", what,
                          tosca_tkind_name(kind), name);
    return t;
}

static int resolve_schemas(tosca_ctx_t *ctx, tosca_file_t *f, tosca_deflist_t *l,
                           const char *owner, const char *what, tosca_diags_t *d)
{
    int rc = 0;
    char buf[400];

    for (size_t i = 0; i < l->count; i++) {
        tosca_schema_t *s = l->items[i];
        int r;
        snprintf(buf, sizeof(buf), "%s '%s' of %s", what, s->name, owner);
        r = tosca_schema_resolve(ctx, f, s, buf, d);
        if (r == ORC_ENOMEM)
            return r;
        rc = r < 0 ? r : rc;
    }
    return rc;
}

static int resolve_node_members(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t,
                                const char *owner, tosca_diags_t *d)
{
    int rc = 0;

    for (size_t i = 0; i < t->capabilities.count; i++) {
        tosca_capdef_t *c = t->capabilities.items[i];
        c->type = find_ref(ctx, f, TOSCA_TK_CAPABILITY, c->type_name, &c->mark, owner, d, &rc);
        if (resolve_schemas(ctx, f, &c->properties, owner, "capability property", d) < 0)
            rc = ORC_ETOSCA;
    }
    for (size_t i = 0; i < t->requirements.count; i++) {
        tosca_reqdef_t *r = t->requirements.items[i];
        r->capability_type = tosca_scope_find(ctx, f, TOSCA_TK_CAPABILITY, r->capability);
        if (r->capability && !r->capability_type && f->version < TOSCA_V2_0)
            rc = tosca_error(d, &r->mark, "unknown-type",
                             "%s: requirement '%s' names unknown capability type '%s'", owner,
                             r->name, r->capability);
        r->node_type = find_ref(ctx, f, TOSCA_TK_NODE, r->node, &r->mark, owner, d, &rc);
        r->relationship_type = find_ref(ctx, f, TOSCA_TK_RELATIONSHIP, r->relationship,
                                        &r->mark, owner, d, &rc);
    }
    for (size_t i = 0; i < t->interfaces.count; i++) {
        tosca_ifacedef_t *x = t->interfaces.items[i];
        x->type = find_ref(ctx, f, TOSCA_TK_INTERFACE, x->type_name, &x->mark, owner, d, &rc);
    }
    for (size_t i = 0; i < t->artifacts.count; i++) {
        tosca_artdef_t *a = t->artifacts.items[i];
        a->type = find_ref(ctx, f, TOSCA_TK_ARTIFACT, a->type_name, &a->mark, owner, d, &rc);
    }
    return rc;
}

static int resolve_type(tosca_ctx_t *ctx, tosca_file_t *f, tosca_type_t *t, tosca_diags_t *d)
{
    char owner[300];
    int rc = 0, r;

    snprintf(owner, sizeof(owner), "%s type '%s'", tosca_tkind_name(t->kind), t->name);
    r = resolve_node_members(ctx, f, t, owner, d);
    rc = r < 0 ? r : rc;
    r = resolve_schemas(ctx, f, &t->properties, owner, "property", d);
    rc = r < 0 ? r : rc;
    r = resolve_schemas(ctx, f, &t->attributes, owner, "attribute", d);
    rc = r < 0 ? r : rc;
    if (t->entry_schema && (r = tosca_schema_resolve(ctx, f, t->entry_schema, owner, d)) < 0)
        rc = r;
    if (t->key_schema && (r = tosca_schema_resolve(ctx, f, t->key_schema, owner, d)) < 0)
        rc = r;
    return rc;
}

/* A data type's own constraints, parsed before any default in the file is
 * checked against them. */
static int parse_data_constraints(tosca_file_t *f, tosca_type_t *t, tosca_diags_t *d)
{
    const tosca_ynode_t *cons = tosca_ymap_get(t->def, "constraints");

    if (t->kind != TOSCA_TK_DATA || cons == NULL)
        return 0;
    return tosca_constraints_parse(&f->arena, cons, t->prim, &t->constraints,
                                   &t->constraint_count, d);
}

/* Data type primitive bases flow down the chain: parents first. */
static void inherit_prim(tosca_type_t *t)
{
    tosca_type_t *chain[64];
    size_t n = 0;

    for (tosca_type_t *p = t; p && n < TOSCA_ARRAY_LEN(chain); p = p->parent)
        chain[n++] = p;
    while (n-- > 1)
        if (chain[n - 1]->prim == TOSCA_P_COMPLEX && chain[n]->prim != TOSCA_P_COMPLEX &&
            chain[n - 1]->derived_from && !chain[n - 1]->properties.count)
            chain[n - 1]->prim = chain[n]->prim;
}

int tosca_types_resolve(tosca_ctx_t *ctx, tosca_file_t *f, tosca_diags_t *d)
{
    int rc = 0;

    for (size_t i = 0; i < f->type_list.count; i++) {
        int r = resolve_parent(ctx, f, f->type_list.items[i], d);
        rc = r < 0 ? r : rc;
    }
    for (size_t i = 0; i < f->type_list.count; i++) {
        int r = check_chain(f->type_list.items[i], d);
        rc = r < 0 ? r : rc;
    }
    for (size_t i = 0; i < f->type_list.count; i++) {
        tosca_type_t *t = f->type_list.items[i];
        if (t->kind == TOSCA_TK_DATA)
            inherit_prim(t);
        if (t->kind == TOSCA_TK_NODE)
            t->node_kind = tosca_node_kind_of(t);
    }
    for (size_t i = 0; i < f->type_list.count; i++) {
        int r = parse_data_constraints(f, f->type_list.items[i], d);
        if (r == ORC_ENOMEM)
            return r;
        rc = r < 0 ? r : rc;
    }
    for (size_t i = 0; i < f->type_list.count; i++) {
        int r = resolve_type(ctx, f, f->type_list.items[i], d);
        if (r == ORC_ENOMEM)
            return r;
        rc = r < 0 ? r : rc;
    }
    return rc;
}
