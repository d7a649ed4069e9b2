/*
 * The topology of a template (`topology_template` in 1.x, `service_template`
 * in 2.0): inputs, node templates (properties, capabilities, requirements
 * with their targets and relationships, interfaces, artifacts), relationship
 * templates, groups, policies, outputs, substitution mappings and workflows,
 * each validated against the type system; then the dependency order of the
 * node templates, where a cycle is an error.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct topo {
    tosca_template_t *t;
    tosca_ctx_t *ctx;
    tosca_file_t *f;
    tosca_diags_t *d;
    tosca_check_t chk;
    int rc;
};

static void note(struct topo *p, int rc)
{
    if (rc < 0 && (p->rc == 0 || rc == ORC_ENOMEM))
        p->rc = rc;
}

static const char *str_of(const tosca_ynode_t *n)
{
    return n && n->kind == TOSCA_Y_SCALAR && !tosca_yis_null(n) ? n->u.scalar.str : NULL;
}

static void *arena_array(struct topo *p, size_t n, size_t size)
{
    void *a = tosca_calloc(n ? n : 1, size);
    if (a == NULL)
        note(p, ORC_ENOMEM);
    return a;
}

/* ---- inputs ---- */

static void parse_inputs(struct topo *p, const tosca_ynode_t *map)
{
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, map, "inputs", &rc);
    tosca_template_t *t = p->t;

    note(p, rc);
    if (m == NULL)
        return;
    t->inputs = arena_array(p, m->u.map.count, sizeof(*t->inputs));
    for (size_t i = 0; t->inputs && i < m->u.map.count; i++) {
        const char *name = m->u.map.items[i].key->u.scalar.str;
        tosca_schema_t *s = NULL;
        char what[300];
        note(p, tosca_schema_parse(p->ctx, p->f, &p->t->arena, name, m->u.map.items[i].value,
                                   false, &s, p->d));
        if (s == NULL)
            return;
        s->mark = m->u.map.items[i].key->mark;
        snprintf(what, sizeof(what), "input '%s'", name);
        note(p, tosca_schema_resolve(p->ctx, p->f, s, what, p->d));
        t->inputs[t->input_count++] = s;
    }
}

/* ---- node templates, pass 1: names and types ---- */

static const char *const node_keys[] = {
    "type",       "description", "metadata",     "directives", "properties", "attributes",
    "requirements", "capabilities", "interfaces", "artifacts", "node_filter", "copy", "count",
    NULL};

static const tosca_ynode_t *node_get(const tosca_node_tpl_t *n, const char *key)
{
    const tosca_ynode_t *v = tosca_ymap_get(n->def, key);
    return v || n->copy_of == NULL ? v : tosca_ymap_get(n->copy_of, key);
}

static tosca_node_tpl_t *create_node(struct topo *p, const tosca_ynode_t *key,
                                     const tosca_ynode_t *def, size_t index)
{
    tosca_node_tpl_t *n = tosca_arena_alloc(&p->t->arena, sizeof(*n));

    if (n == NULL) {
        note(p, ORC_ENOMEM);
        return NULL;
    }
    n->name = key->u.scalar.str;
    n->index = index;
    n->def = def;
    n->mark = key->mark;
    if (def->kind != TOSCA_Y_MAP) {
        note(p, tosca_error(p->d, &def->mark, "expected-map",
                            "node template '%s' must be a mapping, not %s", n->name,
                            tosca_ykind_name(def)));
        n->def = NULL;
        return n;
    }
    note(p, tosca_check_keys(p->d, def, node_keys, "node template"));
    return n;
}

static void resolve_node_type(struct topo *p, tosca_node_tpl_t *n)
{
    const tosca_ynode_t *tn;
    const char *name;

    if (n->def == NULL)
        return;
    tn = node_get(n, "type");
    name = str_of(tn);
    if (name == NULL) {
        note(p, tosca_error(p->d, tn ? &tn->mark : &n->mark, "missing-key",
                            "node template '%s' has no type", n->name));
        return;
    }
    n->type = tosca_scope_find(p->ctx, p->f, TOSCA_TK_NODE, name);
    if (n->type == NULL) {
        const char *hint = p->f->version == TOSCA_V2_0 && strncmp(name, "tosca.", 6) == 0
                               ? " (import the profile org.oasis-open.tosca.simple:2.0)"
                               : "";
        note(p, tosca_error(p->d, &tn->mark, "unknown-type",
                            "node template '%s': unknown node type '%s'%s", n->name, name, hint));
        return;
    }
    n->kind = n->type->node_kind;
    n->description = str_of(node_get(n, "description"));
    n->properties = node_get(n, "properties");
    n->attributes = node_get(n, "attributes");
    n->interfaces = node_get(n, "interfaces");
    n->artifacts = node_get(n, "artifacts");
    n->directives = node_get(n, "directives");
    n->metadata = node_get(n, "metadata");
    n->node_filter = node_get(n, "node_filter");
}

static void apply_copy(struct topo *p, tosca_node_tpl_t *n)
{
    const tosca_ynode_t *c = tosca_ymap_get(n->def, "copy");
    tosca_node_tpl_t *src;

    if (c == NULL)
        return;
    src = str_of(c) ? tosca_hmap_get(&p->t->node_index, str_of(c)) : NULL;
    if (src == NULL || src->def == NULL) {
        note(p, tosca_error(p->d, &c->mark, "unknown-node",
                            "node template '%s': copy names no node template '%s'", n->name,
                            str_of(c) ? str_of(c) : "?"));
        return;
    }
    if (tosca_ymap_get(src->def, "copy")) {
        note(p, tosca_error(p->d, &c->mark, "bad-copy",
                            "node template '%s' copies '%s', which itself uses copy", n->name,
                            src->name));
        return;
    }
    n->copy_of = src->def;
}

static void parse_node_names(struct topo *p, const tosca_ynode_t *map)
{
    tosca_template_t *t = p->t;
    size_t n;

    t->nodes = arena_array(p, map->u.map.count, sizeof(*t->nodes));
    if (t->nodes == NULL)
        return;
    for (size_t i = 0; i < map->u.map.count; i++) {
        tosca_node_tpl_t *node = create_node(p, map->u.map.items[i].key,
                                             map->u.map.items[i].value, i);
        if (node == NULL)
            return;
        if (node->name[0] == '\0') /* nothing could name it: not in a requirement, not at a site */
            note(p, tosca_error(p->d, &map->u.map.items[i].key->mark, "bad-name",
                                "a node template needs a name (this one is empty)"));
        t->nodes[t->node_count++] = node;
        note(p, tosca_hmap_put(&t->node_index, node->name, node, NULL));
    }
    n = t->node_count;
    for (size_t i = 0; i < n; i++)
        if (t->nodes[i]->def)
            apply_copy(p, t->nodes[i]);
    for (size_t i = 0; i < n; i++)
        resolve_node_type(p, t->nodes[i]);
}

/* ---- properties ---- */

static void check_assignments(struct topo *p, const tosca_type_t *type,
                              const tosca_deflist_t *refine, const tosca_ynode_t *values,
                              bool attributes, const char *owner)
{
    const char *what = attributes ? "attribute" : "property";
    char buf[400];
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, values, attributes ? "attributes"
                                                                       : "properties", &rc);

    note(p, rc);
    for (size_t i = 0; m && i < m->u.map.count; i++) {
        const tosca_ynode_t *k = m->u.map.items[i].key, *v = m->u.map.items[i].value;
        tosca_schema_t *s = refine ? tosca_deflist_find(refine, k->u.scalar.str) : NULL;
        if (s == NULL)
            s = attributes ? tosca_type_attribute(type, k->u.scalar.str)
                           : tosca_type_property(type, k->u.scalar.str);
        snprintf(buf, sizeof(buf), "%s '%s' of %s", what, k->u.scalar.str, owner);
        if (s == NULL) {
            if (attributes && p->f->version < TOSCA_V2_0 &&
                tosca_type_property(type, k->u.scalar.str))
                continue; /* properties are reflected as attributes */
            note(p, tosca_defect(p->d, &k->mark, attributes ? "unknown-attribute"
                                                            : "unknown-property",
                                 "%s: %s '%s' is not defined by type '%s'", owner, what,
                                 k->u.scalar.str, type->name));
            continue;
        }
        p->chk.lenient_types = false;
        note(p, tosca_value_check(&p->chk, s, v, buf));
    }
}

/* Required properties (nearest definition wins) that have no value and no default. */
static void check_required(struct topo *p, const tosca_type_t *type,
                           const tosca_deflist_t *refine, const tosca_ynode_t *values,
                           const char *owner, const tosca_mark_t *at)
{
    tosca_hmap_t seen;

    tosca_hmap_init(&seen);
    for (int pass = 0; pass < 2; pass++) {
        for (const tosca_type_t *t = pass ? type : NULL; pass ? t != NULL : refine != NULL;
             t = pass ? t->parent : NULL) {
            const tosca_deflist_t *l = pass ? &t->properties : refine;
            for (size_t i = 0; i < l->count; i++) {
                const tosca_schema_t *s = l->items[i];
                if (tosca_hmap_get(&seen, s->name))
                    continue;
                note(p, tosca_hmap_put(&seen, s->name, (void *)s, NULL));
                if (!s->required || s->default_value || s->value ||
                    tosca_ymap_get(values, s->name))
                    continue;
                note(p, tosca_defect(p->d, at, "missing-property",
                                     "%s: required property '%s' has no value", owner,
                                     s->name));
            }
            if (!pass)
                break;
        }
    }
    tosca_hmap_fini(&seen);
}

/* ---- capabilities ---- */

static void parse_node_caps(struct topo *p, tosca_node_tpl_t *n)
{
    const tosca_ynode_t *caps = node_get(n, "capabilities");
    char owner[400];
    int rc = 0;

    caps = tosca_expect_map(p->d, caps, "capabilities", &rc);
    note(p, rc);
    if (caps == NULL)
        return;
    n->caps = arena_array(p, caps->u.map.count, sizeof(*n->caps));
    for (size_t i = 0; n->caps && i < caps->u.map.count; i++) {
        const tosca_ynode_t *k = caps->u.map.items[i].key, *v = caps->u.map.items[i].value;
        tosca_cap_assign_t *c = &n->caps[n->cap_count++];
        c->name = k->u.scalar.str;
        c->def_node = v;
        c->def = tosca_type_capability(n->type, c->name);
        if (c->def == NULL) {
            note(p, tosca_defect(p->d, &k->mark, "unknown-capability",
                                 "node template '%s': type '%s' has no capability '%s'",
                                 n->name, n->type->name, c->name));
            continue;
        }
        c->properties = tosca_ymap_get(v, "properties");
        c->attributes = tosca_ymap_get(v, "attributes");
        snprintf(owner, sizeof(owner), "capability '%s' of node '%s'", c->name, n->name);
        if (c->def->type) {
            check_assignments(p, c->def->type, &c->def->properties, c->properties, false,
                              owner);
            check_required(p, c->def->type, &c->def->properties, c->properties, owner,
                           &k->mark);
        }
    }
}

tosca_cap_assign_t *tosca_node_cap(const tosca_node_tpl_t *n, const char *name)
{
    for (size_t i = 0; i < n->cap_count; i++)
        if (strcmp(n->caps[i].name, name) == 0)
            return &n->caps[i];
    return NULL;
}

/* ---- requirements ---- */

/* The target's capability that fits: by name, else by type. */
static tosca_capdef_t *match_capability(struct topo *p, const tosca_node_tpl_t *target,
                                        const char *cap, const tosca_type_t *cap_type)
{
    tosca_type_t *ct = cap ? tosca_scope_find(p->ctx, p->f, TOSCA_TK_CAPABILITY, cap) : NULL;
    tosca_capdef_t *byname = cap ? tosca_type_capability(target->type, cap) : NULL;

    if (byname)
        return byname;
    if (ct == NULL)
        ct = (tosca_type_t *)cap_type;
    if (ct == NULL)
        return NULL;
    for (const tosca_type_t *t = target->type; t; t = t->parent)
        for (size_t i = 0; i < t->capabilities.count; i++) {
            tosca_capdef_t *c = t->capabilities.items[i];
            if (c->type && tosca_type_derives(c->type, ct))
                return c;
        }
    return NULL;
}

static tosca_node_tpl_t *find_node_of_type(struct topo *p, const tosca_type_t *nt,
                                           const tosca_node_tpl_t *self)
{
    for (size_t i = 0; i < p->t->node_count; i++) {
        tosca_node_tpl_t *c = p->t->nodes[i];
        if (c != self && c->type && tosca_type_derives(c->type, nt))
            return c;
    }
    return NULL;
}

static void resolve_target(struct topo *p, tosca_node_tpl_t *n, tosca_req_assign_t *r)
{
    tosca_type_t *nt;

    if (r->node == NULL)
        return;
    r->target = tosca_hmap_get(&p->t->node_index, r->node);
    if (r->target)
        return;
    nt = tosca_scope_find(p->ctx, p->f, TOSCA_TK_NODE, r->node);
    if (nt == NULL) {
        note(p, tosca_error(p->d, &r->mark, "unknown-node",
                            "node template '%s': requirement '%s' names '%s', which is neither "
                            "a node template nor a node type",
                            n->name, r->name, r->node));
        return;
    }
    /* an abstract requirement: fulfilled by a template of that type, if any */
    r->target = find_node_of_type(p, nt, n);
}

static void resolve_relationship(struct topo *p, tosca_node_tpl_t *n, tosca_req_assign_t *r,
                                 const tosca_ynode_t *rel)
{
    const char *name = str_of(rel);

    if (rel && rel->kind == TOSCA_Y_MAP) {
        name = str_of(tosca_ymap_get(rel, "type"));
        r->rel_properties = tosca_ymap_get(rel, "properties");
        r->rel_interfaces = tosca_ymap_get(rel, "interfaces");
    }
    if (name) {
        for (size_t i = 0; i < p->t->rel_count; i++)
            if (strcmp(p->t->rels[i]->name, name) == 0)
                r->rel_tpl = p->t->rels[i];
        r->rel_type = r->rel_tpl ? r->rel_tpl->type
                                 : tosca_scope_find(p->ctx, p->f, TOSCA_TK_RELATIONSHIP, name);
        if (r->rel_type == NULL && r->rel_tpl == NULL)
            note(p, tosca_error(p->d, &rel->mark, "unknown-type",
                                "node template '%s': requirement '%s' names unknown relationship "
                                "'%s'",
                                n->name, r->name, name));
        r->relationship = name;
    } else if (r->def && r->def->relationship_type) {
        r->rel_type = r->def->relationship_type;
    } else {
        r->rel_type = tosca_scope_find(p->ctx, p->f, TOSCA_TK_RELATIONSHIP,
                                       "tosca.relationships.DependsOn");
    }
}

/* A node cannot be hosted on itself (a dependency on itself is merely ignored). */
static void check_self_host(struct topo *p, const tosca_node_tpl_t *n, tosca_req_assign_t *r)
{
    if (r->target != n || !(tosca_req_hosted_on(r) || strcmp(r->name, "host") == 0))
        return;
    r->target = NULL;
    note(p, tosca_error(p->d, &r->mark, "self-host",
                        "node template '%s': requirement '%s' hosts the node on itself", n->name,
                        r->name));
}

static void check_req_capability(struct topo *p, const tosca_node_tpl_t *n,
                                 tosca_req_assign_t *r)
{
    const tosca_type_t *ct = r->def ? r->def->capability_type : NULL;

    if (r->target == NULL || r->target->type == NULL)
        return;
    r->target_cap = match_capability(p, r->target, r->capability, ct);
    if (r->target_cap == NULL && (r->capability || ct))
        note(p, tosca_defect(p->d, &r->mark, "capability-mismatch",
                             "node template '%s': requirement '%s' needs capability '%s', which "
                             "node '%s' (type '%s') does not offer",
                             n->name, r->name, r->capability ? r->capability : ct->name,
                             r->target->name, r->target->type->name));
}

static const char *const req_keys[] = {"node",       "capability", "relationship", "node_filter",
                                       "occurrences", "count",      "optional",     "allocation",
                                       "directives",  "description", "metadata", NULL};

static void parse_one_req(struct topo *p, tosca_node_tpl_t *n, tosca_req_assign_t *r,
                          const tosca_ynode_t *k, const tosca_ynode_t *v)
{
    const tosca_ynode_t *rel = NULL;

    r->name = k->u.scalar.str;
    r->def_node = v;
    r->mark = k->mark;
    r->def = tosca_type_requirement(n->type, r->name);
    if (r->def == NULL)
        note(p, tosca_defect(p->d, &k->mark, "unknown-requirement",
                             "node template '%s': type '%s' has no requirement '%s'", n->name,
                             n->type->name, r->name));
    if (v->kind == TOSCA_Y_SCALAR) {
        r->node = str_of(v);
    } else if (v->kind == TOSCA_Y_MAP) {
        note(p, tosca_check_keys(p->d, v, req_keys, "requirement assignment"));
        r->node = str_of(tosca_ymap_get(v, "node"));
        r->capability = str_of(tosca_ymap_get(v, "capability"));
        r->node_filter = tosca_ymap_get(v, "node_filter");
        rel = tosca_ymap_get(v, "relationship");
    } else {
        note(p, tosca_error(p->d, &v->mark, "expected-map",
                            "node template '%s': requirement '%s' must be a node name or a "
                            "mapping",
                            n->name, r->name));
        return;
    }
    if (r->node == NULL && r->def && r->def->node_type && r->node_filter == NULL)
        r->target = find_node_of_type(p, r->def->node_type, n);
    resolve_target(p, n, r);
    resolve_relationship(p, n, r, rel);
    check_self_host(p, n, r);
    check_req_capability(p, n, r);
}

static void check_occurrences(struct topo *p, const tosca_node_tpl_t *n)
{
    for (size_t i = 0; i < n->req_count; i++) {
        const tosca_req_assign_t *r = &n->reqs[i];
        size_t count = 0;
        bool first = true;
        if (r->def == NULL || r->def->occ_max < 0)
            continue;
        for (size_t j = 0; j < n->req_count; j++)
            if (n->reqs[j].def == r->def) {
                count++;
                first = first && j >= i;
            }
        if (first && count > (size_t)r->def->occ_max)
            note(p, tosca_defect(p->d, &r->mark, "occurrences",
                                 "node template '%s': requirement '%s' is assigned %zu times, "
                                 "its definition allows at most %lld",
                                 n->name, r->name, count, (long long)r->def->occ_max));
    }
}

static void parse_node_reqs(struct topo *p, tosca_node_tpl_t *n)
{
    const tosca_ynode_t *reqs = node_get(n, "requirements");

    if (reqs == NULL || tosca_yis_null(reqs))
        return;
    if (reqs->kind != TOSCA_Y_SEQ) {
        note(p, tosca_error(p->d, &reqs->mark, "expected-list",
                            "node template '%s': requirements must be a list of one-key "
                            "mappings",
                            n->name));
        return;
    }
    n->reqs = arena_array(p, reqs->u.seq.count, sizeof(*n->reqs));
    for (size_t i = 0; n->reqs && i < reqs->u.seq.count; i++) {
        const tosca_ynode_t *e = reqs->u.seq.items[i];
        if (e->kind != TOSCA_Y_MAP || e->u.map.count != 1) {
            note(p, tosca_error(p->d, &e->mark, "expected-map",
                                "node template '%s': each requirement must be a one-key mapping",
                                n->name));
            continue;
        }
        parse_one_req(p, n, &n->reqs[n->req_count++], e->u.map.items[0].key,
                      e->u.map.items[0].value);
    }
    check_occurrences(p, n);
}

/* ---- interfaces and artifacts ---- */

/* An operation is known when the interface's type declares it, or any
 * definition of the interface along the node type's chain does (1.x
 * refinements omit the interface type and add operations). */
static bool operation_known(const tosca_type_t *owner, const char *iface, const char *op)
{
    for (const tosca_type_t *o = owner; o; o = o->parent) {
        const tosca_ifacedef_t *def = tosca_deflist_find(&o->interfaces, iface);
        if (def == NULL)
            continue;
        if (tosca_deflist_find(&def->operations, op))
            return true;
        for (const tosca_type_t *t = def->type; t; t = t->parent)
            if (tosca_deflist_find(&t->operations, op))
                return true;
    }
    return false;
}

static void check_operations(struct topo *p, const char *owner, const tosca_type_t *type,
                             const tosca_ifacedef_t *def, const tosca_ynode_t *iface)
{
    const tosca_ynode_t *ops = tosca_ymap_get(iface, "operations");
    const tosca_ynode_t *lists[2] = {ops && ops->kind == TOSCA_Y_MAP ? ops : NULL, iface};

    for (int l = 0; l < 2; l++)
        for (size_t i = 0; lists[l] && i < lists[l]->u.map.count; i++) {
            const tosca_ynode_t *k = lists[l]->u.map.items[i].key;
            if (l == 1 && tosca_iface_key_reserved(k->u.scalar.str))
                continue;
            if (!operation_known(type, def->name, k->u.scalar.str))
                note(p, tosca_defect(p->d, &k->mark, "unknown-operation",
                                     "%s: interface '%s' has no operation '%s'", owner,
                                     def->name, k->u.scalar.str));
        }
}

static void check_interfaces(struct topo *p, const tosca_type_t *type,
                             const tosca_ynode_t *ifaces, const char *owner)
{
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, ifaces, "interfaces", &rc);

    note(p, rc);
    for (size_t i = 0; m && i < m->u.map.count; i++) {
        const tosca_ynode_t *k = m->u.map.items[i].key, *v = m->u.map.items[i].value;
        const tosca_ifacedef_t *def = tosca_type_interface(type, k->u.scalar.str);
        if (def == NULL) {
            note(p, tosca_defect(p->d, &k->mark, "unknown-interface",
                                 "%s: type '%s' has no interface '%s'", owner, type->name,
                                 k->u.scalar.str));
            continue;
        }
        if (v->kind != TOSCA_Y_MAP) {
            if (!tosca_yis_null(v))
                note(p, tosca_error(p->d, &v->mark, "expected-map",
                                    "%s: interface '%s' must be a mapping", owner,
                                    k->u.scalar.str));
            continue;
        }
        check_operations(p, owner, type, def, v);
    }
}

static void check_artifacts(struct topo *p, const tosca_ynode_t *arts, const char *owner)
{
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, arts, "artifacts", &rc);

    note(p, rc);
    for (size_t i = 0; m && i < m->u.map.count; i++) {
        const tosca_ynode_t *k = m->u.map.items[i].key, *v = m->u.map.items[i].value;
        const char *type = str_of(tosca_ymap_get(v, "type"));
        if (v->kind == TOSCA_Y_SCALAR)
            continue;
        if (v->kind != TOSCA_Y_MAP || tosca_ymap_get(v, "file") == NULL) {
            note(p, tosca_error(p->d, &v->mark, "bad-artifact",
                                "%s: artifact '%s' needs a file", owner, k->u.scalar.str));
            continue;
        }
        if (type && tosca_scope_find(p->ctx, p->f, TOSCA_TK_ARTIFACT, type) == NULL)
            note(p, tosca_error(p->d, &tosca_ymap_get(v, "type")->mark, "unknown-type",
                                "%s: artifact '%s' has unknown type '%s'", owner,
                                k->u.scalar.str, type));
    }
}

static void validate_node(struct topo *p, tosca_node_tpl_t *n)
{
    char owner[300];

    if (n->type == NULL)
        return;
    snprintf(owner, sizeof(owner), "node '%s'", n->name);
    check_assignments(p, n->type, NULL, n->properties, false, owner);
    check_required(p, n->type, NULL, n->properties, owner, &n->mark);
    check_assignments(p, n->type, NULL, n->attributes, true, owner);
    parse_node_caps(p, n);
    parse_node_reqs(p, n);
    check_interfaces(p, n->type, n->interfaces, owner);
    check_artifacts(p, n->artifacts, owner);
}

/* ---- relationship templates, groups, policies ---- */

static const char *const rel_keys[] = {"type",       "description", "metadata", "properties",
                                       "attributes", "interfaces",  "copy",     NULL};

static void parse_relationships(struct topo *p, const tosca_ynode_t *map)
{
    tosca_template_t *t = p->t;
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, map, "relationship_templates", &rc);

    note(p, rc);
    if (m == NULL)
        return;
    t->rels = arena_array(p, m->u.map.count, sizeof(*t->rels));
    for (size_t i = 0; t->rels && i < m->u.map.count; i++) {
        const tosca_ynode_t *k = m->u.map.items[i].key, *v = m->u.map.items[i].value;
        tosca_rel_tpl_t *r = tosca_arena_alloc(&t->arena, sizeof(*r));
        const char *type = str_of(tosca_ymap_get(v, "type"));
        char owner[300];
        if (r == NULL)
        {
            note(p, ORC_ENOMEM);
            return;
        }
        r->name = k->u.scalar.str;
        r->def = v;
        r->mark = k->mark;
        note(p, tosca_check_keys(p->d, v, rel_keys, "relationship template"));
        r->type = type ? tosca_scope_find(p->ctx, p->f, TOSCA_TK_RELATIONSHIP, type) : NULL;
        if (r->type == NULL) {
            note(p, tosca_error(p->d, &k->mark, "unknown-type",
                                "relationship template '%s': %s relationship type '%s'",
                                r->name, type ? "unknown" : "missing", type ? type : ""));
            continue;
        }
        r->properties = tosca_ymap_get(v, "properties");
        r->attributes = tosca_ymap_get(v, "attributes");
        r->interfaces = tosca_ymap_get(v, "interfaces");
        snprintf(owner, sizeof(owner), "relationship '%s'", r->name);
        check_assignments(p, r->type, NULL, r->properties, false, owner);
        check_interfaces(p, r->type, r->interfaces, owner);
        t->rels[t->rel_count++] = r;
    }
}

static bool is_group_name(const tosca_template_t *t, const char *name)
{
    for (size_t i = 0; i < t->group_count; i++)
        if (strcmp(t->groups[i]->name, name) == 0)
            return true;
    return false;
}

static void check_members(struct topo *p, const tosca_group_tpl_t *g, const char *what,
                          bool groups_allowed)
{
    const tosca_ynode_t *m = g->members;

    if (m == NULL || tosca_yis_null(m))
        return;
    if (m->kind != TOSCA_Y_SEQ) {
        note(p, tosca_error(p->d, &m->mark, "expected-list", "%s '%s': %s must be a list",
                            what, g->name, groups_allowed ? "targets" : "members"));
        return;
    }
    for (size_t i = 0; i < m->u.seq.count; i++) {
        const char *name = str_of(m->u.seq.items[i]);
        if (name && (tosca_hmap_get(&p->t->node_index, name) ||
                     (groups_allowed && is_group_name(p->t, name))))
            continue;
        note(p, tosca_error(p->d, &m->u.seq.items[i]->mark, "unknown-node",
                            "%s '%s': '%s' is not a node template%s", what, g->name,
                            name ? name : "?", groups_allowed ? " or group" : ""));
    }
}

static tosca_group_tpl_t *parse_group(struct topo *p, const tosca_ynode_t *k,
                                      const tosca_ynode_t *v, tosca_tkind_t kind)
{
    static const char *const group_keys[] = {"type",       "description", "metadata",
                                             "properties", "members",     "interfaces",
                                             "attributes", NULL};
    static const char *const policy_keys[] = {"type",       "description", "metadata",
                                              "properties", "targets",     "triggers", NULL};
    const char *what = kind == TOSCA_TK_GROUP ? "group" : "policy";
    tosca_group_tpl_t *g = tosca_arena_alloc(&p->t->arena, sizeof(*g));
    const char *type = str_of(tosca_ymap_get(v, "type"));
    char owner[300];

    if (g == NULL) {
        note(p, ORC_ENOMEM);
        return NULL;
    }
    g->name = k->u.scalar.str;
    g->def = v;
    g->mark = k->mark;
    note(p, tosca_check_keys(p->d, v, kind == TOSCA_TK_GROUP ? group_keys : policy_keys, what));
    g->type = type ? tosca_scope_find(p->ctx, p->f, kind, type) : NULL;
    if (g->type == NULL) {
        note(p, tosca_error(p->d, &k->mark, "unknown-type", "%s '%s': %s %s type '%s'", what,
                            g->name, type ? "unknown" : "missing", what, type ? type : ""));
        return g;
    }
    g->properties = tosca_ymap_get(v, "properties");
    g->members = tosca_ymap_get(v, kind == TOSCA_TK_GROUP ? "members" : "targets");
    snprintf(owner, sizeof(owner), "%s '%s'", what, g->name);
    check_assignments(p, g->type, NULL, g->properties, false, owner);
    return g;
}

static void parse_groups(struct topo *p, const tosca_ynode_t *map)
{
    tosca_template_t *t = p->t;
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, map, "groups", &rc);

    note(p, rc);
    if (m == NULL)
        return;
    t->groups = arena_array(p, m->u.map.count, sizeof(*t->groups));
    for (size_t i = 0; t->groups && i < m->u.map.count; i++) {
        tosca_group_tpl_t *g = parse_group(p, m->u.map.items[i].key, m->u.map.items[i].value,
                                           TOSCA_TK_GROUP);
        if (g)
            t->groups[t->group_count++] = g;
    }
    for (size_t i = 0; i < t->group_count; i++)
        check_members(p, t->groups[i], "group", false);
}

static void parse_policies(struct topo *p, const tosca_ynode_t *list)
{
    tosca_template_t *t = p->t;
    size_t n;

    if (list == NULL || tosca_yis_null(list))
        return;
    if (list->kind != TOSCA_Y_SEQ && list->kind != TOSCA_Y_MAP) {
        note(p, tosca_error(p->d, &list->mark, "expected-list",
                            "policies must be a list of one-key mappings"));
        return;
    }
    n = list->kind == TOSCA_Y_SEQ ? list->u.seq.count : list->u.map.count;
    t->policies = arena_array(p, n, sizeof(*t->policies));
    for (size_t i = 0; t->policies && i < n; i++) {
        const tosca_ynode_t *e = list->kind == TOSCA_Y_SEQ ? list->u.seq.items[i] : NULL;
        const tosca_ypair_t *pair = e ? (e->kind == TOSCA_Y_MAP && e->u.map.count == 1
                                             ? &e->u.map.items[0]
                                             : NULL)
                                      : &list->u.map.items[i];
        tosca_group_tpl_t *g;
        if (pair == NULL) {
            note(p, tosca_error(p->d, &e->mark, "expected-map",
                                "each policy must be a one-key mapping"));
            continue;
        }
        g = parse_group(p, pair->key, pair->value, TOSCA_TK_POLICY);
        if (g == NULL)
            return;
        t->policies[t->policy_count++] = g;
        check_members(p, g, "policy", true);
    }
}

/* ---- outputs, substitution mappings, workflows ---- */

static void parse_outputs(struct topo *p, const tosca_ynode_t *map)
{
    static const char *const out_keys[] = {"description", "value", "type", "required", "status",
                                           "entry_schema", "key_schema", "metadata", "mapping",
                                           "constraints", "validation", "default", NULL};
    tosca_template_t *t = p->t;
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, map, "outputs", &rc);

    note(p, rc);
    if (m == NULL)
        return;
    t->outputs = arena_array(p, m->u.map.count, sizeof(*t->outputs));
    for (size_t i = 0; t->outputs && i < m->u.map.count; i++) {
        const tosca_ynode_t *k = m->u.map.items[i].key, *v = m->u.map.items[i].value;
        tosca_output_t *o = tosca_arena_alloc(&t->arena, sizeof(*o));
        if (o == NULL) {
            note(p, ORC_ENOMEM);
            return;
        }
        o->name = k->u.scalar.str;
        o->mark = k->mark;
        if (v->kind != TOSCA_Y_MAP) {
            note(p, tosca_error(p->d, &v->mark, "expected-map",
                                "output '%s' must be a mapping with a 'value'", o->name));
            continue;
        }
        note(p, tosca_check_keys(p->d, v, out_keys, "output"));
        o->value = tosca_ymap_get(v, "value");
        if (o->value == NULL && tosca_ymap_get(v, "mapping") == NULL)
            note(p, tosca_defect(p->d, &k->mark, "missing-key", "output '%s' has no value",
                                 o->name));
        t->outputs[t->output_count++] = o;
    }
}

static void check_mapping_pairs(struct topo *p, const tosca_ynode_t *map, const char *what)
{
    for (size_t i = 0; map && map->kind == TOSCA_Y_MAP && i < map->u.map.count; i++) {
        const tosca_ynode_t *v = map->u.map.items[i].value;
        const char *node = v->kind == TOSCA_Y_SEQ && v->u.seq.count >= 1
                               ? str_of(v->u.seq.items[0])
                               : NULL;
        if (v->kind != TOSCA_Y_SEQ || v->u.seq.count < 2) {
            if (v->kind == TOSCA_Y_SEQ)
                note(p, tosca_error(p->d, &v->mark, "bad-substitution",
                                    "substitution %s '%s' must be [node_template, name]", what,
                                    map->u.map.items[i].key->u.scalar.str));
            continue;
        }
        if (node && !tosca_hmap_get(&p->t->node_index, node))
            note(p, tosca_error(p->d, &v->u.seq.items[0]->mark, "unknown-node",
                                "substitution %s '%s' maps to unknown node template '%s'", what,
                                map->u.map.items[i].key->u.scalar.str, node));
    }
}

static void parse_substitution(struct topo *p, const tosca_ynode_t *sm)
{
    const tosca_ynode_t *nt;

    if (sm == NULL || tosca_yis_null(sm))
        return;
    if (sm->kind != TOSCA_Y_MAP) {
        note(p, tosca_error(p->d, &sm->mark, "expected-map",
                            "substitution_mappings must be a mapping"));
        return;
    }
    p->t->substitution = sm;
    nt = tosca_ymap_get(sm, "node_type");
    if (nt == NULL || str_of(nt) == NULL)
        note(p, tosca_error(p->d, &sm->mark, "missing-key",
                            "substitution_mappings needs a node_type"));
    else if (tosca_scope_find(p->ctx, p->f, TOSCA_TK_NODE, str_of(nt)) == NULL)
        note(p, tosca_error(p->d, &nt->mark, "unknown-type",
                            "substitution_mappings: unknown node type '%s'", str_of(nt)));
    check_mapping_pairs(p, tosca_ymap_get(sm, "capabilities"), "capability");
    check_mapping_pairs(p, tosca_ymap_get(sm, "requirements"), "requirement");
}

static void check_step(struct topo *p, const char *wf, const tosca_ynode_t *steps,
                       const tosca_ypair_t *step)
{
    const tosca_ynode_t *v = step->value, *target = tosca_ymap_get(v, "target");
    const char *const next_keys[] = {"on_success", "on_failure"};

    if (v->kind != TOSCA_Y_MAP) {
        note(p, tosca_error(p->d, &v->mark, "expected-map",
                            "workflow '%s': step '%s' must be a mapping", wf,
                            step->key->u.scalar.str));
        return;
    }
    if (str_of(target) && !tosca_hmap_get(&p->t->node_index, str_of(target)) &&
        !is_group_name(p->t, str_of(target)))
        note(p, tosca_error(p->d, &target->mark, "unknown-node",
                            "workflow '%s': step '%s' targets unknown node or group '%s'", wf,
                            step->key->u.scalar.str, str_of(target)));
    for (size_t j = 0; j < 2; j++) {
        const tosca_ynode_t *n = tosca_ymap_get(v, next_keys[j]);
        size_t count = n && n->kind == TOSCA_Y_SEQ ? n->u.seq.count : n ? 1 : 0;
        for (size_t i = 0; i < count; i++) {
            const tosca_ynode_t *s = n->kind == TOSCA_Y_SEQ ? n->u.seq.items[i] : n;
            if (str_of(s) && tosca_ymap_get(steps, str_of(s)) == NULL)
                note(p, tosca_error(p->d, &s->mark, "unknown-step",
                                    "workflow '%s': step '%s' continues to unknown step '%s'",
                                    wf, step->key->u.scalar.str, str_of(s)));
        }
    }
}

static void parse_workflows(struct topo *p, const tosca_ynode_t *map)
{
    int rc = 0;
    const tosca_ynode_t *m = tosca_expect_map(p->d, map, "workflows", &rc);

    note(p, rc);
    if (m == NULL)
        return;
    p->t->workflows = m;
    for (size_t i = 0; i < m->u.map.count; i++) {
        const char *wf = m->u.map.items[i].key->u.scalar.str;
        const tosca_ynode_t *steps = tosca_ymap_get(m->u.map.items[i].value, "steps");
        if (steps && steps->kind != TOSCA_Y_MAP) {
            note(p, tosca_error(p->d, &steps->mark, "expected-map",
                                "workflow '%s': steps must be a mapping", wf));
            continue;
        }
        for (size_t j = 0; steps && j < steps->u.map.count; j++)
            check_step(p, wf, steps, &steps->u.map.items[j]);
    }
}

/* ---- dependency order (Kahn's algorithm, stable in template order) ---- */

static void report_cycle(struct topo *p, const size_t *indeg)
{
    tosca_strbuf_t b;
    const tosca_node_tpl_t *first = NULL;

    tosca_strbuf_init(&b);
    for (size_t i = 0; i < p->t->node_count; i++)
        if (indeg[i]) {
            tosca_strbuf_printf(&b, "%s'%s'", b.len ? ", " : "", p->t->nodes[i]->name);
            first = first ? first : p->t->nodes[i];
        }
    note(p, tosca_error(p->d, first ? &first->mark : NULL, "dependency-cycle",
                        "requirements form a cycle among node templates %s",
                        b.s ? b.s : "?"));
    tosca_strbuf_fini(&b);
}

/* Edges target -> dependent in compressed form: dependents of node i are
 * adj[first[i] .. first[i + 1]). Built in O(nodes + requirements). */
static void compute_order(struct topo *p)
{
    tosca_template_t *t = p->t;
    size_t n = t->node_count, head = 0, tail = 0, edges = 0;
    size_t *indeg = arena_array(p, n, sizeof(*indeg));
    size_t *first = arena_array(p, n + 1, sizeof(*first)), *fill = NULL, *adj = NULL;

    t->order = tosca_arena_alloc(&t->arena, (n ? n : 1) * sizeof(*t->order));
    if (indeg == NULL || first == NULL || t->order == NULL)
        goto out_oom;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < t->nodes[i]->req_count; r++) {
            const tosca_node_tpl_t *tg = t->nodes[i]->reqs[r].target;
            if (tg && tg != t->nodes[i]) {
                indeg[i]++;
                first[tg->index + 1]++;
                edges++;
            }
        }
    for (size_t i = 0; i < n; i++)
        first[i + 1] += first[i];
    adj = arena_array(p, edges, sizeof(*adj));
    fill = arena_array(p, n, sizeof(*fill));
    if (adj == NULL || fill == NULL)
        goto out_oom;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < t->nodes[i]->req_count; r++) {
            const tosca_node_tpl_t *tg = t->nodes[i]->reqs[r].target;
            if (tg && tg != t->nodes[i])
                adj[first[tg->index] + fill[tg->index]++] = i;
        }
    for (size_t i = 0; i < n; i++)
        if (indeg[i] == 0)
            t->order[tail++] = t->nodes[i];
    while (head < tail) {
        size_t done = t->order[head++]->index;
        for (size_t e = first[done]; e < first[done + 1]; e++)
            if (--indeg[adj[e]] == 0)
                t->order[tail++] = t->nodes[adj[e]];
    }
    if (tail < n)
        report_cycle(p, indeg);
    goto out_free;
out_oom:
    note(p, ORC_ENOMEM);
out_free:
    tosca_free(adj);
    tosca_free(fill);
    tosca_free(first);
    tosca_free(indeg);
}

/* ---- function references in every value ---- */

static void check_node_functions(struct topo *p, const tosca_node_tpl_t *n)
{
    char what[300];

    snprintf(what, sizeof(what), "node '%s'", n->name);
    note(p, tosca_functions_check(p->t, n, n->properties, what, p->d));
    note(p, tosca_functions_check(p->t, n, n->interfaces, what, p->d));
    for (size_t i = 0; i < n->cap_count; i++)
        note(p, tosca_functions_check(p->t, n, n->caps[i].properties, what, p->d));
    for (size_t i = 0; i < n->req_count; i++)
        note(p, tosca_functions_check(p->t, n, n->reqs[i].rel_properties, what, p->d));
}

static void check_all_functions(struct topo *p)
{
    char what[300];

    for (size_t i = 0; i < p->t->node_count; i++)
        if (p->t->nodes[i]->type)
            check_node_functions(p, p->t->nodes[i]);
    for (size_t i = 0; i < p->t->output_count; i++) {
        snprintf(what, sizeof(what), "output '%s'", p->t->outputs[i]->name);
        note(p, tosca_functions_check(p->t, NULL, p->t->outputs[i]->value, what, p->d));
    }
    for (size_t i = 0; i < p->t->rel_count; i++) {
        snprintf(what, sizeof(what), "relationship '%s'", p->t->rels[i]->name);
        note(p, tosca_functions_check(p->t, NULL, p->t->rels[i]->properties, what, p->d));
    }
    for (size_t i = 0; i < p->t->group_count; i++) {
        snprintf(what, sizeof(what), "group '%s'", p->t->groups[i]->name);
        note(p, tosca_functions_check(p->t, NULL, p->t->groups[i]->properties, what, p->d));
    }
    for (size_t i = 0; i < p->t->policy_count; i++) {
        snprintf(what, sizeof(what), "policy '%s'", p->t->policies[i]->name);
        note(p, tosca_functions_check(p->t, NULL, p->t->policies[i]->properties, what, p->d));
    }
}

/* ---- entry point ---- */

static const char *const topo_keys[] = {"description",  "metadata", "inputs", "outputs",
                                        "node_templates", "relationship_templates", "groups",
                                        "policies", "substitution_mappings", "workflows", NULL};

int tosca_topology_parse(tosca_template_t *t, tosca_diags_t *d)
{
    const tosca_ynode_t *root = t->entry->doc->root, *topo, *nodes;
    bool v2 = t->entry->version == TOSCA_V2_0;
    struct topo p = {t, t->ctx, t->entry, d, {d, t->entry->version, false}, 0};

    t->description = tosca_ymap_get(root, "description");
    t->metadata = tosca_ymap_get(root, "metadata");
    topo = tosca_ymap_get(root, v2 ? "service_template" : "topology_template");
    if (topo == NULL || tosca_yis_null(topo))
        return 0; /* a file of type definitions only */
    t->topology = tosca_expect_map(d, topo, v2 ? "service_template" : "topology_template",
                                   &p.rc);
    if (t->topology == NULL)
        return p.rc;
    note(&p, tosca_check_keys(d, topo, topo_keys, "topology"));
    parse_inputs(&p, tosca_ymap_get(topo, "inputs"));
    parse_relationships(&p, tosca_ymap_get(topo, "relationship_templates"));
    nodes = tosca_expect_map(d, tosca_ymap_get(topo, "node_templates"), "node_templates", &p.rc);
    if (nodes == NULL && v2)
        note(&p, tosca_error(d, &topo->mark, "missing-key",
                             "service_template needs node_templates"));
    if (nodes)
        parse_node_names(&p, nodes);
    for (size_t i = 0; i < t->node_count && p.rc != ORC_ENOMEM; i++)
        validate_node(&p, t->nodes[i]);
    parse_groups(&p, tosca_ymap_get(topo, "groups"));
    parse_policies(&p, tosca_ymap_get(topo, "policies"));
    parse_outputs(&p, tosca_ymap_get(topo, "outputs"));
    parse_substitution(&p, tosca_ymap_get(topo, "substitution_mappings"));
    parse_workflows(&p, tosca_ymap_get(topo, "workflows"));
    if (p.rc != ORC_ENOMEM) {
        compute_order(&p);
        check_all_functions(&p);
    }
    return p.rc;
}
