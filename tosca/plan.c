/*
 * The plan: what the deployment engine executes, as JSON (docs/tosca.md
 * describes its shape). Inputs are bound and checked, static functions
 * evaluated, node instances counted from `scalable` capabilities (honouring
 * `removal_list`), compute requirements normalised (bytes, Hz), host chains
 * and dependency order listed, lifecycle operations merged from the type
 * chain and the template, outputs kept with their deferred references.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define DEFAULT_MAX_INSTANCES 100000

struct planner {
    const tosca_template_t *t;
    tosca_diags_t *d;
    tosca_eval_t ev;
    json_t *inputs;  /* bound */
    json_t *secrets; /* names of the inputs that are secrets */
    size_t instances;
    int rc;
};

static void pl_note(struct planner *p, int rc)
{
    if (rc < 0 && p->rc != ORC_ENOMEM)
        p->rc = rc;
}

static void set(struct planner *p, json_t *obj, const char *key, json_t *v)
{
    if (v == NULL || json_object_set_new(obj, key, v) < 0)
        pl_note(p, ORC_ENOMEM);
}

static void push(struct planner *p, json_t *arr, json_t *v)
{
    if (v == NULL || json_array_append_new(arr, v) < 0)
        pl_note(p, ORC_ENOMEM);
}

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- inputs ---- */

static bool wants_plain(tosca_prim_t p)
{
    return p != TOSCA_P_STRING && p != TOSCA_P_ANY && p != TOSCA_P_COMPLEX &&
           p != TOSCA_P_LIST && p != TOSCA_P_MAP;
}

/* Points every node of a given value at the input's definition, so that
 * messages about it name the template line of the input. */
static void mark_all(tosca_ynode_t *n, const tosca_mark_t *m, int depth)
{
    if (n == NULL || depth > 64)
        return;
    n->mark = *m;
    if (n->kind == TOSCA_Y_MAP)
        for (size_t i = 0; i < n->u.map.count; i++) {
            n->u.map.items[i].key->mark = *m;
            mark_all(n->u.map.items[i].value, m, depth + 1);
        }
    else if (n->kind == TOSCA_Y_SEQ)
        for (size_t i = 0; i < n->u.seq.count; i++)
            mark_all(n->u.seq.items[i], m, depth + 1);
}

/* Checks a given input value against its definition; returns the value to
 * bind (strings coerced to numbers / booleans when the input's type says so). */
static json_t *bind_given(struct planner *p, const tosca_schema_t *s, json_t *v)
{
    tosca_check_t chk = {p->d, p->t->version, false};
    tosca_ydoc_t *doc = NULL;
    char *text, what[300];
    bool coerce = json_is_string(v) && wants_plain(s->prim);
    json_t *out = NULL;
    int rc;

    text = coerce ? tosca_strdup(json_string_value(v))
                  : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (text == NULL) {
        pl_note(p, ORC_ENOMEM);
        return NULL;
    }
    snprintf(what, sizeof(what), "input '%s'", s->name);
    rc = tosca_ydoc_parse(what, text, strlen(text), NULL, &doc, p->d);
    if (rc == 0 && doc->root == NULL && coerce)
        rc = tosca_error(p->d, &s->mark, "type-mismatch", "input '%s': empty value", s->name);
    if (rc == 0) {
        mark_all(doc->root, &s->mark, 0);
        rc = tosca_value_check(&chk, s, doc->root, what);
    }
    if (rc == 0)
        out = coerce ? tosca_ynode_to_json(doc->root) : json_deep_copy(v);
    pl_note(p, rc);
    tosca_ydoc_free(doc);
    if (coerce)
        tosca_free(text);
    else
        free(text); /* jansson's allocation */
    return out;
}

/* An input is a secret when its definition says so (metadata: {secret: true}) or its
 * name does (password, token, secret, credential, private_key, api_key...): its value
 * is masked wherever the orchestrator shows it (docs/security.md). */
bool tosca_input_is_secret(const tosca_schema_t *s)
{
    static const char *const words[] = {"password", "passwd", "token", "secret", "credential",
                                        "private_key", "privatekey", "api_key", "apikey", NULL};
    const tosca_ynode_t *md = s->def ? tosca_ymap_get(s->def, "metadata") : NULL;
    const tosca_ynode_t *flag = md ? tosca_ymap_get(md, "secret") : NULL;
    char lower[128];
    size_t i = 0;

    if (flag && flag->kind == TOSCA_Y_SCALAR &&
        (strcmp(flag->u.scalar.str, "true") == 0 || strcmp(flag->u.scalar.str, "True") == 0))
        return true;
    for (; s->name[i] && i + 1 < sizeof(lower); i++)
        lower[i] = (char)((s->name[i] >= 'A' && s->name[i] <= 'Z') ? s->name[i] + 32 : s->name[i]);
    lower[i] = '\0';
    for (size_t w = 0; words[w]; w++)
        if (strstr(lower, words[w]))
            return true;
    return false;
}

static void bind_inputs(struct planner *p, const json_t *given)
{
    const tosca_template_t *t = p->t;
    const char *key;
    json_t *v;

    for (size_t i = 0; i < t->input_count; i++) {
        const tosca_schema_t *s = t->inputs[i];
        json_t *g = json_object_get(given, s->name), *b = NULL;
        if (g)
            b = bind_given(p, s, g);
        else if (s->value || (s->default_value && !tosca_yis_null(s->default_value)))
            b = tosca_ynode_to_json(s->value ? s->value : s->default_value);
        else if (s->required)
            pl_note(p, tosca_error(p->d, &s->mark, "missing-input",
                                   "input '%s' is required and has no default: give a value",
                                   s->name));
        else
            b = json_null();
        if (b)
            set(p, p->inputs, s->name, b);
        if (tosca_input_is_secret(s))
            json_array_append_new(p->secrets, json_string(s->name));
    }
    json_object_foreach((json_t *)given, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < t->input_count && !known; i++)
            known = strcmp(t->inputs[i]->name, key) == 0;
        if (!known) {
            tosca_mark_t m = {t->entry->name, 0, 0};
            tosca_warn(p->d, &m, "unknown-input", "input '%s' is not defined by the template; "
                       "ignored", key);
        }
    }
}

/* ---- values ---- */

static json_t *eval(struct planner *p, const tosca_node_tpl_t *self, const tosca_ynode_t *v,
                    bool *deferred)
{
    json_t *j = tosca_eval(&p->ev, self, v, deferred);
    pl_note(p, p->ev.rc);
    return j ? j : json_null();
}

/* Assigned values first, then the defaults of the type chain (nearest wins). */
static json_t *effective_props(struct planner *p, const tosca_node_tpl_t *n,
                               const tosca_type_t *type, const tosca_deflist_t *refine,
                               const tosca_ynode_t *assigned, bool *deferred)
{
    json_t *out = json_object();

    for (size_t i = 0; out && assigned && assigned->kind == TOSCA_Y_MAP &&
                       i < assigned->u.map.count; i++)
        set(p, out, assigned->u.map.items[i].key->u.scalar.str,
            eval(p, n, assigned->u.map.items[i].value, deferred));
    for (int pass = 0; out && pass < 2; pass++)
        for (const tosca_type_t *t = type; t; t = pass ? t->parent : NULL) {
            const tosca_deflist_t *l = pass ? &t->properties : refine;
            for (size_t i = 0; l && i < l->count; i++) {
                const tosca_schema_t *s = l->items[i];
                const tosca_ynode_t *dv = s->value ? s->value : s->default_value;
                if (dv && !json_object_get(out, s->name))
                    set(p, out, s->name, eval(p, n, dv, deferred));
            }
            if (!pass)
                break;
        }
    if (out == NULL)
        pl_note(p, ORC_ENOMEM);
    return out ? out : json_null();
}

static json_t *node_caps(struct planner *p, const tosca_node_tpl_t *n, bool *deferred)
{
    json_t *caps = json_object();

    for (size_t i = 0; caps && i < n->cap_count; i++) {
        const tosca_cap_assign_t *c = &n->caps[i];
        json_t *o = json_object();
        if (c->def == NULL || o == NULL) {
            json_decref(o);
            continue;
        }
        set(p, o, "type", jstr(c->def->type ? c->def->type->name : c->def->type_name));
        set(p, o, "properties", effective_props(p, n, c->def->type, &c->def->properties,
                                                c->properties, deferred));
        set(p, caps, c->name, o);
    }
    return caps ? caps : json_null();
}

/* ---- compute requirements ---- */

static json_t *scalar_unit(struct planner *p, json_t *v, tosca_prim_t prim)
{
    double x;

    (void)p;
    if (json_is_string(v) && tosca_scalar_unit_parse(prim, json_string_value(v), &x) == 0)
        return json_integer((json_int_t)(x + 0.5));
    return json_incref(v);
}

static json_t *compute_reqs(struct planner *p, json_t *caps)
{
    static const struct {
        const char *name;
        tosca_prim_t unit;
    } fields[] = {{"num_cpus", TOSCA_P_ANY},     {"mem_size", TOSCA_P_SIZE},
                  {"disk_size", TOSCA_P_SIZE},   {"cpu_frequency", TOSCA_P_FREQUENCY},
                  {"num_gpus", TOSCA_P_ANY},     {"gpu_vendor", TOSCA_P_ANY},
                  {"gpu_model", TOSCA_P_ANY},    {"instance_type", TOSCA_P_ANY}};
    json_t *host = json_object_get(json_object_get(caps, "host"), "properties");
    json_t *os = json_object_get(json_object_get(caps, "os"), "properties");
    json_t *out = json_object();

    for (size_t i = 0; out && i < TOSCA_ARRAY_LEN(fields); i++) {
        json_t *v = json_object_get(host, fields[i].name);
        if (v == NULL || json_is_null(v))
            v = strcmp(fields[i].name, "num_gpus") == 0 ? json_integer(0) : json_null();
        else
            v = fields[i].unit != TOSCA_P_ANY ? scalar_unit(p, v, fields[i].unit)
                                              : json_incref(v);
        set(p, out, fields[i].name, v);
    }
    if (out && os)
        set(p, out, "os", json_incref(os));
    return out ? out : json_null();
}

/* ---- instances ---- */

static json_int_t int_prop(json_t *props, const char *name, json_int_t dflt)
{
    json_t *v = json_object_get(props, name);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void node_instances(struct planner *p, const tosca_node_tpl_t *n, json_t *caps,
                           json_t *out)
{
    json_t *sc = json_object_get(json_object_get(caps, "scalable"), "properties");
    json_int_t dflt = int_prop(sc, "default_instances", 1);
    json_int_t count = int_prop(sc, "count", dflt), lo = int_prop(sc, "min_instances", 0);
    json_int_t hi = int_prop(sc, "max_instances", -1);
    size_t max = p->t->ctx->opts.limits.max_instances ? p->t->ctx->opts.limits.max_instances
                                                      : DEFAULT_MAX_INSTANCES;
    json_t *inst = json_array(), *rl = json_object_get(sc, "removal_list");

    if (count < 0)
        pl_note(p, tosca_error(p->d, &n->mark, "bad-count",
                               "node '%s': %lld instances asked", n->name, (long long)count));
    else if (count < lo || (hi >= 0 && count > hi && hi >= lo))
        /* INDIGO's elastic clusters start outside their scaling bounds */
        pl_note(p, tosca_defect(p->d, &n->mark, "bad-count",
                                "node '%s': %lld instances asked, outside min_instances %lld "
                                "and max_instances %lld",
                                n->name, (long long)count, (long long)lo, (long long)hi));
    if (count > 0 && (p->instances += (size_t)count) > max) {
        pl_note(p, tosca_error(p->d, &n->mark, "too-many-instances",
                               "the plan needs more than %zu node instances (limit)", max));
        count = 0;
    }
    for (json_int_t i = 0; inst && i < count; i++) {
        json_t *o = json_object();
        char name[300];
        snprintf(name, sizeof(name), "%s[%lld]", n->name, (long long)i);
        set(p, o, "index", json_integer(i));
        set(p, o, "name", json_string(name));
        push(p, inst, o);
    }
    set(p, out, "count", json_integer(count < 0 ? 0 : count));
    set(p, out, "instances", inst);
    set(p, out, "removal_list", json_is_array(rl) ? json_incref(rl) : json_array());
}

/* ---- requirements and hosts ---- */

static void node_requirements(struct planner *p, const tosca_node_tpl_t *n, json_t *out,
                              bool *deferred)
{
    json_t *reqs = json_array(), *deps = json_array(), *chain = json_array();
    const tosca_node_tpl_t *h = tosca_node_host(n);

    for (size_t i = 0; reqs && i < n->req_count; i++) {
        const tosca_req_assign_t *r = &n->reqs[i];
        json_t *o = json_object();
        set(p, o, "name", json_string(r->name));
        set(p, o, "node", jstr(r->target ? r->target->name : r->node));
        set(p, o, "capability",
            jstr(r->target_cap ? r->target_cap->name : r->capability));
        set(p, o, "relationship", jstr(r->rel_type ? r->rel_type->name : r->relationship));
        if (r->rel_tpl)
            set(p, o, "relationship_template", json_string(r->rel_tpl->name));
        if (r->rel_properties || (r->rel_tpl && r->rel_tpl->properties))
            set(p, o, "properties",
                eval(p, n, r->rel_properties ? r->rel_properties : r->rel_tpl->properties,
                     deferred));
        if (r->target == NULL)
            set(p, o, "unresolved", json_true());
        push(p, reqs, o);
        if (r->target && r->target != n) {
            bool seen = false;
            size_t j;
            json_t *x;
            json_array_foreach(deps, j, x) seen = seen || strcmp(json_string_value(x),
                                                                 r->target->name) == 0;
            if (!seen)
                push(p, deps, json_string(r->target->name));
        }
    }
    for (size_t guard = 0; h && guard < p->t->node_count; h = tosca_node_host(h), guard++)
        push(p, chain, json_string(h->name));
    h = tosca_node_host(n);
    set(p, out, "requirements", reqs);
    set(p, out, "depends_on", deps);
    set(p, out, "host", jstr(h ? h->name : NULL));
    set(p, out, "host_chain", chain);
}

/* ---- lifecycle operations ---- */

static json_t *implementation_json(struct planner *p, const tosca_node_tpl_t *n,
                                   const tosca_ynode_t *impl, bool *deferred)
{
    json_t *o;

    if (impl == NULL)
        return json_null();
    if (impl->kind == TOSCA_Y_SCALAR) {
        o = json_object();
        set(p, o, "primary", tosca_ynode_to_json(impl));
        return o ? o : json_null();
    }
    return eval(p, n, impl, deferred);
}

static void set_operation(struct planner *p, const tosca_node_tpl_t *n, json_t *iface,
                          const char *op, const tosca_ynode_t *impl, const tosca_ynode_t *inputs,
                          bool *deferred)
{
    json_t *o = json_object_get(iface, op);

    if (o == NULL) {
        o = json_object();
        set(p, iface, op, o);
        if (o == NULL)
            return;
    }
    if (impl)
        set(p, o, "implementation", implementation_json(p, n, impl, deferred));
    if (inputs && inputs->kind == TOSCA_Y_MAP) {
        json_t *in = json_object_get(o, "inputs");
        json_t *ev = eval(p, n, inputs, deferred);
        if (in)
            json_object_update(in, ev), json_decref(ev);
        else
            set(p, o, "inputs", ev);
    }
}

static void type_operations(struct planner *p, const tosca_node_tpl_t *n, json_t *ifaces,
                            bool *deferred)
{
    const tosca_type_t *chain[64];
    size_t depth = 0;

    for (const tosca_type_t *t = n->type; t && depth < TOSCA_ARRAY_LEN(chain); t = t->parent)
        chain[depth++] = t;
    while (depth-- > 0)
        for (size_t i = 0; i < chain[depth]->interfaces.count; i++) {
            const tosca_ifacedef_t *x = chain[depth]->interfaces.items[i];
            json_t *iface = json_object_get(ifaces, x->name);
            for (size_t j = 0; j < x->operations.count; j++) {
                const tosca_opdef_t *op = x->operations.items[j];
                if (op->implementation == NULL)
                    continue;
                if (iface == NULL)
                    set(p, ifaces, x->name, iface = json_object());
                set_operation(p, n, iface, op->name, op->implementation, op->inputs, deferred);
            }
        }
}

static void template_operations(struct planner *p, const tosca_node_tpl_t *n, json_t *ifaces,
                                bool *deferred)
{
    const tosca_ynode_t *m = n->interfaces;

    for (size_t i = 0; m && m->kind == TOSCA_Y_MAP && i < m->u.map.count; i++) {
        const char *iname = m->u.map.items[i].key->u.scalar.str;
        const tosca_ynode_t *x = m->u.map.items[i].value, *ops = tosca_ymap_get(x, "operations");
        const tosca_ynode_t *common = tosca_ymap_get(x, "inputs");
        json_t *iface = json_object_get(ifaces, iname);
        if (x->kind != TOSCA_Y_MAP)
            continue;
        if (iface == NULL)
            set(p, ifaces, iname, iface = json_object());
        for (int l = 0; l < 2; l++) {
            const tosca_ynode_t *src = l ? x : ops;
            for (size_t j = 0; src && src->kind == TOSCA_Y_MAP && j < src->u.map.count; j++) {
                const char *op = src->u.map.items[j].key->u.scalar.str;
                const tosca_ynode_t *v = src->u.map.items[j].value;
                bool short_form = v->kind == TOSCA_Y_SCALAR;
                if (l && tosca_iface_key_reserved(op))
                    continue;
                set_operation(p, n, iface, op, short_form ? v : tosca_ymap_get(v, "implementation"),
                              short_form ? NULL : tosca_ymap_get(v, "inputs"), deferred);
                if (common)
                    set_operation(p, n, iface, op, NULL, common, deferred);
            }
        }
    }
}

/* An artifact definition; the short form (a file name) becomes {file}. */
static json_t *artifact_json(struct planner *p, const tosca_node_tpl_t *n,
                             const tosca_ynode_t *v, bool *deferred)
{
    if (v->kind == TOSCA_Y_SCALAR)
        return json_pack("{s:o}", "file", eval(p, n, v, deferred));
    return eval(p, n, v, deferred);
}

static json_t *node_artifacts(struct planner *p, const tosca_node_tpl_t *n, bool *deferred)
{
    json_t *arts = json_object();
    const tosca_ynode_t *m = n->artifacts;

    for (const tosca_type_t *t = n->type; arts && t; t = t->parent)
        for (size_t i = 0; i < t->artifacts.count; i++) {
            const tosca_artdef_t *a = t->artifacts.items[i];
            if (!json_object_get(arts, a->name))
                set(p, arts, a->name, artifact_json(p, n, a->def, deferred));
        }
    for (size_t i = 0; arts && m && m->kind == TOSCA_Y_MAP && i < m->u.map.count; i++) {
        set(p, arts, m->u.map.items[i].key->u.scalar.str,
            artifact_json(p, n, m->u.map.items[i].value, deferred));
    }
    return arts ? arts : json_null();
}

/* ---- nodes ---- */

static json_t *type_chain(const tosca_type_t *t)
{
    json_t *a = json_array();

    for (; a && t; t = t->parent)
        json_array_append_new(a, json_string(t->name));
    return a;
}

static json_t *plan_node(struct planner *p, const tosca_node_tpl_t *n)
{
    json_t *o = json_object(), *caps, *ifaces = json_object();
    bool deferred = false;

    if (o == NULL || ifaces == NULL) {
        json_decref(o);
        json_decref(ifaces);
        pl_note(p, ORC_ENOMEM);
        return NULL;
    }
    set(p, o, "name", json_string(n->name));
    set(p, o, "type", json_string(n->type->name));
    set(p, o, "types", type_chain(n->type));
    set(p, o, "kind", json_string(tosca_node_kind_name(n->kind)));
    set(p, o, "properties",
        effective_props(p, n, n->type, NULL, n->properties, &deferred));
    if (n->attributes)
        set(p, o, "attributes", eval(p, n, n->attributes, &deferred));
    caps = node_caps(p, n, &deferred);
    set(p, o, "capabilities", caps);
    node_instances(p, n, caps, o);
    if (n->kind == TOSCA_NK_COMPUTE)
        set(p, o, "compute", compute_reqs(p, caps));
    node_requirements(p, n, o, &deferred);
    type_operations(p, n, ifaces, &deferred);
    template_operations(p, n, ifaces, &deferred);
    set(p, o, "interfaces", ifaces);
    set(p, o, "artifacts", node_artifacts(p, n, &deferred));
    if (n->directives)
        set(p, o, "directives", tosca_ynode_to_json(n->directives));
    set(p, o, "deferred", json_boolean(deferred));
    return o;
}

/* ---- outputs, groups, policies ---- */

static json_t *plan_outputs(struct planner *p)
{
    json_t *outs = json_object();

    for (size_t i = 0; outs && i < p->t->output_count; i++) {
        const tosca_output_t *o = p->t->outputs[i];
        bool deferred = false;
        json_t *v = eval(p, NULL, o->value, &deferred);
        set(p, outs, o->name, json_pack("{s:o,s:b}", "value", v, "deferred", deferred));
    }
    return outs ? outs : json_null();
}

static json_t *plan_groups(struct planner *p, tosca_group_tpl_t **g, size_t n, const char *m)
{
    json_t *arr = json_array();

    for (size_t i = 0; arr && i < n; i++) {
        bool deferred = false;
        if (g[i]->type == NULL)
            continue;
        push(p, arr, json_pack("{s:s,s:s,s:o,s:o}", "name", g[i]->name, "type",
                               g[i]->type->name, m,
                               g[i]->members ? tosca_ynode_to_json(g[i]->members) : json_array(),
                               "properties",
                               effective_props(p, NULL, g[i]->type, NULL, g[i]->properties,
                                               &deferred)));
    }
    return arr ? arr : json_null();
}

static json_t *plan_all(struct planner *p)
{
    const tosca_template_t *t = p->t;
    json_t *plan = json_object(), *nodes = json_array(), *order = json_array();

    set(p, plan, "tosca_definitions_version", json_string(tosca_template_version(t)));
    if (t->description)
        set(p, plan, "description", tosca_ynode_to_json(t->description));
    set(p, plan, "metadata", t->metadata ? tosca_ynode_to_json(t->metadata) : json_object());
    set(p, plan, "inputs", json_incref(p->inputs));
    set(p, plan, "secret_inputs", json_incref(p->secrets));
    for (size_t i = 0; nodes && i < t->node_count; i++) {
        const tosca_node_tpl_t *n = t->order ? t->order[i] : t->nodes[i];
        push(p, order, json_string(n->name));
        push(p, nodes, plan_node(p, n));
    }
    set(p, plan, "nodes", nodes);
    set(p, plan, "order", order);
    set(p, plan, "outputs", plan_outputs(p));
    set(p, plan, "groups", plan_groups(p, t->groups, t->group_count, "members"));
    set(p, plan, "policies", plan_groups(p, t->policies, t->policy_count, "targets"));
    if (t->workflows)
        set(p, plan, "workflows", tosca_ynode_to_json(t->workflows));
    if (t->substitution)
        set(p, plan, "substitution_mappings", tosca_ynode_to_json(t->substitution));
    return plan;
}

int tosca_plan(const tosca_template_t *t, const json_t *inputs, json_t **out,
               tosca_diags_t *diags)
{
    struct planner p = {.t = t, .d = diags};
    size_t errors_before;
    json_t *plan = NULL;

    if (t == NULL || out == NULL || diags == NULL || (inputs && !json_is_object(inputs)))
        return ORC_EINVAL;
    *out = NULL;
    errors_before = diags->errors;
    p.inputs = json_object();
    p.secrets = json_array();
    if (p.inputs == NULL || p.secrets == NULL) {
        json_decref(p.inputs);
        json_decref(p.secrets);
        return ORC_ENOMEM;
    }
    bind_inputs(&p, inputs);
    p.ev = (tosca_eval_t){.t = t, .inputs = p.inputs, .d = diags};
    if (p.rc == 0 && t->order && t->node_count && t->order[t->node_count - 1] == NULL)
        p.rc = ORC_ETOSCA; /* dependency cycle, reported at load */
    if (p.rc == 0)
        plan = plan_all(&p);
    json_decref(p.inputs);
    json_decref(p.secrets);
    if (p.rc == 0 && diags->errors > errors_before)
        p.rc = ORC_ETOSCA;
    if (p.rc < 0) {
        json_decref(plan);
        return p.rc;
    }
    *out = plan;
    return 0;
}
