/*
 * Intrinsic functions: checking calls at validation time (known names,
 * argument shapes, the inputs, nodes and properties they reference) and
 * static evaluation at plan time (get_input, get_property, concat, join,
 * token); run-time references (get_attribute, get_operation_output,
 * get_artifact) stay as function objects for the engine, with SELF and HOST
 * replaced by node template names.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define EVAL_MAX_DEPTH 32

const char *tosca_function_name(const tosca_ynode_t *n)
{
    const char *k;

    if (!tosca_is_function(n))
        return NULL;
    k = n->u.map.items[0].key->u.scalar.str;
    return k[0] == '$' ? k + 1 : k;
}

static const tosca_ynode_t *fn_args(const tosca_ynode_t *n)
{
    return n->u.map.items[0].value;
}

static size_t arg_count(const tosca_ynode_t *a)
{
    return a && a->kind == TOSCA_Y_SEQ ? a->u.seq.count : a ? 1 : 0;
}

static const tosca_ynode_t *arg_at(const tosca_ynode_t *a, size_t i)
{
    if (a && a->kind == TOSCA_Y_SEQ)
        return i < a->u.seq.count ? a->u.seq.items[i] : NULL;
    return i == 0 ? a : NULL;
}

static const char *arg_str(const tosca_ynode_t *a, size_t i)
{
    const tosca_ynode_t *n = arg_at(a, i);
    return n && n->kind == TOSCA_Y_SCALAR ? n->u.scalar.str : NULL;
}

bool tosca_req_hosted_on(const tosca_req_assign_t *r)
{
    return r->rel_type && tosca_type_is(r->rel_type, "tosca.relationships.HostedOn");
}

const tosca_node_tpl_t *tosca_node_host(const tosca_node_tpl_t *n)
{
    for (size_t i = 0; n && i < n->req_count; i++) {
        const tosca_req_assign_t *r = &n->reqs[i];
        if (r->target && tosca_req_hosted_on(r))
            return r->target;
    }
    for (size_t i = 0; n && i < n->req_count; i++)
        if (n->reqs[i].target && strcmp(n->reqs[i].name, "host") == 0)
            return n->reqs[i].target;
    return NULL;
}

const tosca_ynode_t *tosca_node_property(const tosca_node_tpl_t *n, const char *name)
{
    const tosca_ynode_t *v = tosca_ymap_get(n->properties, name);
    const tosca_schema_t *s;

    if (v)
        return v;
    s = n->type ? tosca_type_property(n->type, name) : NULL;
    return s ? (s->value ? s->value : s->default_value) : NULL;
}

static const tosca_ynode_t *cap_property(const tosca_node_tpl_t *n, const char *cap,
                                         const char *name)
{
    const tosca_cap_assign_t *c = tosca_node_cap(n, cap);
    const tosca_ynode_t *v = c ? tosca_ymap_get(c->properties, name) : NULL;
    const tosca_capdef_t *def;
    const tosca_schema_t *s;

    if (v)
        return v;
    def = n->type ? tosca_type_capability(n->type, cap) : NULL;
    if (def == NULL)
        return NULL;
    s = tosca_deflist_find(&def->properties, name);
    if (s == NULL && def->type)
        s = tosca_type_property(def->type, name);
    return s ? s->default_value : NULL;
}

/* ---- validation-time checks ---- */

struct fcheck {
    const tosca_template_t *t;
    const tosca_node_tpl_t *self;
    const char *what;
    tosca_diags_t *d;
    int rc;
};

static void fc_note(struct fcheck *c, int rc)
{
    if (rc < 0 && c->rc != ORC_ENOMEM)
        c->rc = rc;
}

static bool input_exists(const tosca_template_t *t, const char *name)
{
    for (size_t i = 0; i < t->input_count; i++)
        if (strcmp(t->inputs[i]->name, name) == 0)
            return true;
    return false;
}

static const tosca_node_tpl_t *entity_node(struct fcheck *c, const tosca_ynode_t *call,
                                           const char *entity, const char *fn)
{
    const tosca_node_tpl_t *n;

    if (strcmp(entity, "SELF") == 0 || strcmp(entity, "HOST") == 0) {
        if (c->self == NULL)
            fc_note(c, tosca_error(c->d, &call->mark, "bad-function",
                                   "%s: %s uses %s outside a node template", c->what, fn,
                                   entity));
        return c->self && entity[0] == 'H' ? tosca_node_host(c->self) : c->self;
    }
    if (strcmp(entity, "SOURCE") == 0 || strcmp(entity, "TARGET") == 0)
        return NULL;
    n = tosca_hmap_get(&c->t->node_index, entity);
    if (n == NULL)
        fc_note(c, tosca_error(c->d, &call->mark, "unknown-node",
                               "%s: %s refers to unknown node template '%s'", c->what, fn,
                               entity));
    return n;
}

static void check_get_property(struct fcheck *c, const tosca_ynode_t *call, const char *fn)
{
    const tosca_ynode_t *a = fn_args(call);
    const tosca_node_tpl_t *n;
    const char *p1, *p2;

    if (a->kind != TOSCA_Y_SEQ || a->u.seq.count < 2 || !arg_str(a, 0)) {
        fc_note(c, tosca_error(c->d, &call->mark, "bad-function",
                               "%s: %s needs [entity, (capability or requirement,) name, ...]",
                               c->what, fn));
        return;
    }
    n = entity_node(c, call, arg_str(a, 0), fn);
    p1 = arg_str(a, 1);
    p2 = arg_str(a, 2);
    if (n == NULL || n->type == NULL || strcmp(fn, "get_property") != 0 || p1 == NULL)
        return;
    if (tosca_type_property(n->type, p1) || (p2 && cap_property(n, p1, p2)) ||
        (p2 && tosca_type_capability(n->type, p1)) || (p2 && tosca_type_requirement(n->type, p1)))
        return;
    if (strcmp(arg_str(a, 0), "HOST") == 0)
        return; /* searched along the host chain at plan time */
    fc_note(c, tosca_defect(c->d, &call->mark, "unknown-property",
                            "%s: get_property refers to '%s', which node '%s' (type '%s') does "
                            "not define",
                            c->what, p1, n->name, n->type->name));
}

static void check_call(struct fcheck *c, const tosca_ynode_t *call)
{
    const char *fn = tosca_function_name(call);
    const tosca_ynode_t *a = fn_args(call);

    if (strcmp(fn, "get_input") == 0) {
        const char *name = arg_str(a, 0);
        if (name == NULL)
            fc_note(c, tosca_error(c->d, &call->mark, "bad-function",
                                   "%s: get_input needs an input name", c->what));
        else if (!input_exists(c->t, name))
            fc_note(c, tosca_error(c->d, &arg_at(a, 0)->mark, "unknown-input",
                                   "%s: get_input refers to undefined input '%s'", c->what,
                                   name));
    } else if (strcmp(fn, "get_property") == 0 || strcmp(fn, "get_attribute") == 0) {
        check_get_property(c, call, fn);
    } else if ((strcmp(fn, "concat") == 0 || strcmp(fn, "join") == 0) &&
               a->kind != TOSCA_Y_SEQ) {
        fc_note(c, tosca_error(c->d, &call->mark, "bad-function", "%s: %s needs a list",
                               c->what, fn));
    } else if (strcmp(fn, "token") == 0 && arg_count(a) != 3) {
        fc_note(c, tosca_error(c->d, &call->mark, "bad-function",
                               "%s: token needs [string, separators, index]", c->what));
    }
}

static void check_walk(struct fcheck *c, const tosca_ynode_t *v, int depth)
{
    if (v == NULL || depth > 64)
        return;
    if (tosca_function_name(v)) {
        check_call(c, v);
        v = fn_args(v); /* nested calls in arguments */
    }
    if (v->kind == TOSCA_Y_MAP)
        for (size_t i = 0; i < v->u.map.count; i++)
            check_walk(c, v->u.map.items[i].value, depth + 1);
    else if (v->kind == TOSCA_Y_SEQ)
        for (size_t i = 0; i < v->u.seq.count; i++)
            check_walk(c, v->u.seq.items[i], depth + 1);
}

int tosca_functions_check(const tosca_template_t *t, const tosca_node_tpl_t *self,
                          const tosca_ynode_t *value, const char *what, tosca_diags_t *d)
{
    struct fcheck c = {t, self, what, d, 0};

    check_walk(&c, value, 0);
    return c.rc;
}

/* ---- plan-time evaluation ---- */

static void ev_fail(tosca_eval_t *e, int rc)
{
    if (rc < 0 && e->rc != ORC_ENOMEM)
        e->rc = rc;
}

static json_t *ev_oom(tosca_eval_t *e, json_t *j)
{
    if (j == NULL)
        ev_fail(e, ORC_ENOMEM);
    return j ? j : json_null();
}

/* Follows nested names / indexes into a JSON value. */
static json_t *ev_path(json_t *v, const tosca_ynode_t *a, size_t from)
{
    for (size_t i = from; v && i < arg_count(a); i++) {
        const tosca_ynode_t *k = arg_at(a, i);
        int64_t idx;
        if (json_is_array(v) && tosca_yget_int(k, &idx) == 0)
            v = idx >= 0 ? json_array_get(v, (size_t)idx) : NULL;
        else if (json_is_object(v) && k->kind == TOSCA_Y_SCALAR)
            v = json_object_get(v, k->u.scalar.str);
        else
            v = NULL;
    }
    return v;
}

static json_t *ev_get_input(tosca_eval_t *e, const tosca_ynode_t *call)
{
    const tosca_ynode_t *a = fn_args(call);
    const char *name = arg_str(a, 0);
    json_t *v = name ? json_object_get(e->inputs, name) : NULL;

    if (v == NULL) {
        ev_fail(e, tosca_error(e->d, &call->mark, "unknown-input",
                               "get_input: no value for input '%s'", name ? name : "?"));
        return json_null();
    }
    v = ev_path(v, a, 1);
    return v ? json_deep_copy(v) : json_null();
}

static const tosca_node_tpl_t *ev_entity(const tosca_template_t *t, const tosca_node_tpl_t *self,
                                         const char *entity)
{
    if (strcmp(entity, "SELF") == 0)
        return self;
    if (strcmp(entity, "HOST") == 0)
        return tosca_node_host(self);
    if (strcmp(entity, "SOURCE") == 0 || strcmp(entity, "TARGET") == 0)
        return NULL;
    return tosca_hmap_get(&t->node_index, entity);
}

/* Finds the property a get_property names: on the node, a capability of it,
 * or the target of a requirement; HOST searches up the host chain. */
static const tosca_ynode_t *ev_find_property(const tosca_node_tpl_t **np, const tosca_ynode_t *a,
                                             bool host_chain, size_t *rest)
{
    const char *p1 = arg_str(a, 1), *p2 = arg_str(a, 2);

    for (const tosca_node_tpl_t *n = *np; n; n = host_chain ? tosca_node_host(n) : NULL) {
        const tosca_ynode_t *v = p1 ? tosca_node_property(n, p1) : NULL;
        *np = n;
        if (v) {
            *rest = 2;
            return v;
        }
        if (p2 && (v = cap_property(n, p1, p2)) != NULL) {
            *rest = 3;
            return v;
        }
        for (size_t i = 0; p2 && i < n->req_count; i++)
            if (strcmp(n->reqs[i].name, p1) == 0 && n->reqs[i].target &&
                (v = tosca_node_property(n->reqs[i].target, p2)) != NULL) {
                *np = n->reqs[i].target;
                *rest = 3;
                return v;
            }
    }
    return NULL;
}

static json_t *ev_get_property(tosca_eval_t *e, const tosca_node_tpl_t *self,
                               const tosca_ynode_t *call, bool *deferred)
{
    const tosca_ynode_t *a = fn_args(call), *v;
    const char *entity = arg_str(a, 0);
    const tosca_node_tpl_t *n = entity ? ev_entity(e->t, self, entity) : NULL;
    size_t rest = 2;
    json_t *val, *sub;

    if (n == NULL) {
        *deferred = true; /* SOURCE / TARGET: known when relationships run */
        return ev_oom(e, tosca_ynode_to_json(call));
    }
    v = ev_find_property(&n, a, strcmp(entity, "HOST") == 0, &rest);
    if (v == NULL)
        return json_null();
    for (int i = 0; i < e->nvisiting; i++)
        if (e->visiting[i] == v) {
            ev_fail(e, tosca_error(e->d, &call->mark, "function-cycle",
                                   "get_property cycle: the value refers back to itself"));
            return json_null();
        }
    if (e->nvisiting == (int)TOSCA_ARRAY_LEN(e->visiting)) {
        ev_fail(e, tosca_error(e->d, &call->mark, "function-cycle",
                               "get_property chains deeper than %d levels",
                               (int)TOSCA_ARRAY_LEN(e->visiting)));
        return json_null();
    }
    e->visiting[e->nvisiting++] = v;
    val = tosca_eval(e, n, v, deferred);
    e->nvisiting--;
    sub = ev_path(val, a, rest);
    sub = sub ? json_incref(sub) : json_null();
    json_decref(val);
    return sub;
}

/* get_attribute & co: keep the call, with SELF / HOST made explicit. */
static json_t *ev_deferred(tosca_eval_t *e, const tosca_node_tpl_t *self,
                           const tosca_ynode_t *call, bool *deferred)
{
    json_t *j = tosca_ynode_to_json(call);
    const char *key = call->u.map.items[0].key->u.scalar.str;
    json_t *args = j ? json_object_get(j, key) : NULL;
    json_t *first = json_array_get(args, 0);
    const char *entity = json_string_value(first);

    *deferred = true;
    if (j == NULL)
        return ev_oom(e, NULL);
    if (entity && strcmp(entity, "SELF") == 0 && self)
        json_array_set_new(args, 0, json_string(self->name));
    else if (entity && strcmp(entity, "HOST") == 0 && tosca_node_host(self))
        json_array_set_new(args, 0, json_string(tosca_node_host(self)->name));
    return j;
}

static bool all_scalars(const json_t *list)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v) if (json_is_object(v) || json_is_array(v)) return false;
    return true;
}

static void append_scalar(tosca_strbuf_t *b, const json_t *v)
{
    char num[64];

    if (json_is_string(v))
        tosca_strbuf_append(b, json_string_value(v), json_string_length(v));
    else if (json_is_integer(v))
        tosca_strbuf_printf(b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(num, sizeof(num), "%.17g", json_real_value(v)), tosca_strbuf_puts(b, num);
    else if (json_is_boolean(v))
        tosca_strbuf_puts(b, json_is_true(v) ? "true" : "false");
}

static json_t *join_strings(tosca_eval_t *e, const json_t *list, const char *sep)
{
    tosca_strbuf_t b;
    size_t i;
    json_t *v, *out;
    char *s;

    tosca_strbuf_init(&b);
    json_array_foreach(list, i, v)
    {
        if (i && sep)
            tosca_strbuf_puts(&b, sep);
        append_scalar(&b, v);
    }
    s = tosca_strbuf_take(&b);
    out = s ? json_string(s) : NULL;
    tosca_free(s);
    return ev_oom(e, out);
}

static json_t *ev_list(tosca_eval_t *e, const tosca_node_tpl_t *self, const tosca_ynode_t *a,
                       bool *deferred)
{
    json_t *out = json_array();

    for (size_t i = 0; out && i < arg_count(a); i++)
        json_array_append_new(out, tosca_eval(e, self, arg_at(a, i), deferred));
    return ev_oom(e, out);
}

/* concat, join and token: computed when their arguments are static. */
static json_t *ev_string_fn(tosca_eval_t *e, const tosca_node_tpl_t *self,
                            const tosca_ynode_t *call, const char *fn, bool *deferred)
{
    bool d = false;
    json_t *args = ev_list(e, self, fn_args(call), &d), *out;
    const char *key = call->u.map.items[0].key->u.scalar.str;

    if (d || !json_is_array(args)) {
        *deferred = *deferred || d;
        out = json_object();
        json_object_set_new(out, key, args);
        return ev_oom(e, out);
    }
    if (strcmp(fn, "concat") == 0 && all_scalars(args))
        out = join_strings(e, args, NULL);
    else if (strcmp(fn, "join") == 0 && json_is_array(json_array_get(args, 0)))
        out = join_strings(e, json_array_get(args, 0),
                           json_string_value(json_array_get(args, 1)));
    else if (strcmp(fn, "token") == 0)
        out = NULL;
    else
        return args; /* concat of lists (2.0): keep the list */
    if (out == NULL) {
        const char *s = json_string_value(json_array_get(args, 0));
        const char *seps = json_string_value(json_array_get(args, 1));
        json_int_t idx = json_integer_value(json_array_get(args, 2));
        out = json_null();
        for (json_int_t k = 0; s && seps && k <= idx; k++) {
            size_t len = strcspn(s, seps);
            if (k == idx) {
                json_decref(out);
                out = ev_oom(e, json_stringn(s, len));
            }
            s = s[len] ? s + len + 1 : NULL;
        }
    }
    json_decref(args);
    return out;
}

static json_t *ev_call(tosca_eval_t *e, const tosca_node_tpl_t *self, const tosca_ynode_t *call,
                       bool *deferred)
{
    const char *fn = tosca_function_name(call);

    if (strcmp(fn, "get_input") == 0)
        return ev_get_input(e, call);
    if (strcmp(fn, "get_property") == 0)
        return ev_get_property(e, self, call, deferred);
    if (strcmp(fn, "concat") == 0 || strcmp(fn, "join") == 0 || strcmp(fn, "token") == 0)
        return ev_string_fn(e, self, call, fn, deferred);
    return ev_deferred(e, self, call, deferred);
}

json_t *tosca_eval(tosca_eval_t *e, const tosca_node_tpl_t *self, const tosca_ynode_t *v,
                   bool *deferred)
{
    json_t *out;

    if (v == NULL || e->rc < 0)
        return json_null();
    if (++e->depth > EVAL_MAX_DEPTH) {
        e->depth--;
        ev_fail(e, tosca_error(e->d, &v->mark, "function-cycle",
                               "functions nest deeper than %d levels (a get_property cycle?)",
                               EVAL_MAX_DEPTH));
        return json_null();
    }
    if (tosca_function_name(v)) {
        out = ev_call(e, self, v, deferred);
    } else if (v->kind == TOSCA_Y_MAP) {
        out = json_object();
        for (size_t i = 0; out && i < v->u.map.count; i++)
            json_object_set_new(out, v->u.map.items[i].key->u.scalar.str,
                                tosca_eval(e, self, v->u.map.items[i].value, deferred));
        out = ev_oom(e, out);
    } else if (v->kind == TOSCA_Y_SEQ) {
        out = json_array();
        for (size_t i = 0; out && i < v->u.seq.count; i++)
            json_array_append_new(out, tosca_eval(e, self, v->u.seq.items[i], deferred));
        out = ev_oom(e, out);
    } else {
        out = ev_oom(e, tosca_ynode_to_json(v));
    }
    e->depth--;
    return out;
}
