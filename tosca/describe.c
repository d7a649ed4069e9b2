/*
 * What a template tells about itself to whoever would deploy it (tosca.h,
 * tosca_template_describe): its description and metadata, its inputs as written
 * (type, description, required, default, constraints) and the same inputs as a
 * JSON Schema object a form can be generated from. The template catalog and the
 * dashboard's deploy form read it.
 */
#include <string.h>

#include "internal.h"

/* ---- the inputs as written ---- */

static json_t *constraint_json(const tosca_constraint_t *c)
{
    json_t *o = json_object();

    if (o &&
        json_object_set_new(o, tosca_constraint_name(c->op), tosca_ynode_to_json(c->arg)) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v == NULL || json_object_set_new(obj, key, v) < 0 ? ORC_ENOMEM : 0;
}

static const char *schema_type(const tosca_schema_t *s)
{
    return s->type_name ? s->type_name : tosca_prim_name(s->prim);
}

/* Whether a deployer must give the input: tosca_plan fails without it. */
static bool input_required(const tosca_schema_t *s)
{
    return s->required && s->value == NULL &&
           (s->default_value == NULL || tosca_yis_null(s->default_value));
}

static json_t *input_json(const tosca_schema_t *s)
{
    json_t *o = json_object(), *cs = json_array();
    int rc = o && cs ? 0 : ORC_ENOMEM;

    if (rc == 0)
        rc = set_new(o, "name", json_string(s->name));
    if (rc == 0)
        rc = set_new(o, "type", json_string(schema_type(s)));
    if (rc == 0 && s->description)
        rc = set_new(o, "description", json_string(s->description));
    if (rc == 0)
        rc = set_new(o, "required", json_boolean(input_required(s)));
    if (rc == 0)
        rc = set_new(o, "secret", json_boolean(tosca_input_is_secret(s)));
    if (rc == 0 && s->default_value && !tosca_input_is_secret(s))
        rc = set_new(o, "default", tosca_ynode_to_json(s->default_value));
    if (rc == 0 && s->value)
        rc = set_new(o, "value", tosca_ynode_to_json(s->value));
    if (rc == 0 && s->entry_schema)
        rc = set_new(o, "entry_schema", json_string(schema_type(s->entry_schema)));
    if (rc == 0 && s->status)
        rc = set_new(o, "status", json_string(s->status));
    for (size_t i = 0; rc == 0 && i < s->constraint_count; i++)
        if (json_array_append_new(cs, constraint_json(&s->constraints[i])) < 0)
            rc = ORC_ENOMEM;
    if (rc == 0)
        rc = set_new(o, "constraints", json_incref(cs));
    json_decref(cs);
    if (rc < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the inputs as a JSON Schema ---- */

/* The JSON Schema type of a TOSCA type; scalar units, versions and timestamps are
 * strings in TOSCA's own syntax ("2 GB"), told apart by x-tosca-type. */
static const char *schema_json_type(tosca_prim_t p)
{
    switch (p) {
    case TOSCA_P_INTEGER:
        return "integer";
    case TOSCA_P_FLOAT:
        return "number";
    case TOSCA_P_BOOLEAN:
        return "boolean";
    case TOSCA_P_LIST:
    case TOSCA_P_RANGE:
        return "array";
    case TOSCA_P_MAP:
    case TOSCA_P_COMPLEX:
        return "object";
    case TOSCA_P_ANY:
        return NULL;
    default:
        return "string";
    }
}

static bool numeric(tosca_prim_t p)
{
    return p == TOSCA_P_INTEGER || p == TOSCA_P_FLOAT;
}

/* A number operand of a constraint, or NULL (a scalar unit, a string...). */
static json_t *number_arg(const tosca_ynode_t *n)
{
    json_t *j = tosca_ynode_to_json(n);

    if (json_is_number(j))
        return j;
    json_decref(j);
    return NULL;
}

/* An integer operand >= 0 (lengths), or -1. */
static json_int_t length_arg(const tosca_ynode_t *n)
{
    int64_t v;

    return tosca_yget_int(n, &v) == 0 && v >= 0 ? (json_int_t)v : -1;
}

static void set_length(json_t *prop, tosca_prim_t p, const char *what, json_int_t n)
{
    const char *key;

    if (n < 0)
        return;
    if (p == TOSCA_P_LIST)
        key = what[0] == 'm' && what[1] == 'i' ? "minItems" : "maxItems";
    else if (p == TOSCA_P_MAP || p == TOSCA_P_COMPLEX)
        key = what[0] == 'm' && what[1] == 'i' ? "minProperties" : "maxProperties";
    else
        key = what[0] == 'm' && what[1] == 'i' ? "minLength" : "maxLength";
    json_object_set_new(prop, key, json_integer(n));
}

/* The keywords of one constraint that JSON Schema can say; the rest stays in
 * x-tosca-constraints (which a form shows as text, and the server checks anyway). */
static void constrain(json_t *prop, tosca_prim_t p, const tosca_constraint_t *c)
{
    static const char *const bound_keys[] = {[TOSCA_C_GREATER_THAN] = "exclusiveMinimum",
                                             [TOSCA_C_GREATER_OR_EQUAL] = "minimum",
                                             [TOSCA_C_LESS_THAN] = "exclusiveMaximum",
                                             [TOSCA_C_LESS_OR_EQUAL] = "maximum"};
    const tosca_ynode_t *a = c->arg;

    switch (c->op) {
    case TOSCA_C_EQUAL:
        json_object_set_new(prop, "const", tosca_ynode_to_json(a));
        break;
    case TOSCA_C_GREATER_THAN:
    case TOSCA_C_GREATER_OR_EQUAL:
    case TOSCA_C_LESS_THAN:
    case TOSCA_C_LESS_OR_EQUAL:
        if (numeric(p))
            json_object_set_new(prop, bound_keys[c->op], number_arg(a));
        break;
    case TOSCA_C_IN_RANGE:
        if (numeric(p) && a->kind == TOSCA_Y_SEQ && a->u.seq.count == 2) {
            json_object_set_new(prop, "minimum", number_arg(a->u.seq.items[0]));
            json_object_set_new(prop, "maximum", number_arg(a->u.seq.items[1]));
        }
        break;
    case TOSCA_C_VALID_VALUES:
        json_object_set_new(prop, "enum", tosca_ynode_to_json(a));
        break;
    case TOSCA_C_LENGTH:
        set_length(prop, p, "min", length_arg(a));
        set_length(prop, p, "max", length_arg(a));
        break;
    case TOSCA_C_MIN_LENGTH:
        set_length(prop, p, "min", length_arg(a));
        break;
    case TOSCA_C_MAX_LENGTH:
        set_length(prop, p, "max", length_arg(a));
        break;
    case TOSCA_C_PATTERN:
        json_object_set_new(prop, "pattern", tosca_ynode_to_json(a));
        break;
    default:
        break;
    }
}

static json_t *property_schema(const tosca_schema_t *s, const json_t *written)
{
    json_t *prop = json_object();
    const char *type = schema_json_type(s->prim);

    if (prop == NULL)
        return NULL;
    if (type)
        json_object_set_new(prop, "type", json_string(type));
    if (type && strcmp(type, "string") == 0 && s->prim != TOSCA_P_STRING)
        json_object_set_new(prop, "x-tosca-type", json_string(schema_type(s)));
    if (s->prim == TOSCA_P_RANGE)
        json_object_set_new(prop, "x-tosca-type", json_string("range"));
    if (s->description)
        json_object_set_new(prop, "description", json_string(s->description));
    if (json_object_get(written, "default"))
        json_object_set_new(prop, "default", json_deep_copy(json_object_get(written, "default")));
    if (tosca_input_is_secret(s)) {
        json_object_set_new(prop, "writeOnly", json_true());
        json_object_set_new(prop, "format", json_string("password"));
    }
    if (s->entry_schema && schema_json_type(s->entry_schema->prim)) {
        const char *key = s->prim == TOSCA_P_LIST ? "items" : "additionalProperties";
        json_object_set_new(prop, key,
                            json_pack("{ss}", "type", schema_json_type(s->entry_schema->prim)));
    }
    for (size_t i = 0; i < s->constraint_count; i++)
        constrain(prop, s->prim, &s->constraints[i]);
    if (s->constraint_count > 0)
        json_object_set_new(prop, "x-tosca-constraints",
                            json_deep_copy(json_object_get(written, "constraints")));
    return prop;
}

/* {"type":"object","properties":{...},"required":[...]}: the inputs a deployer sets
 * (those with a fixed value are left out). Unknown parameters are not refused (the
 * planner warns and ignores them), so additionalProperties stays open. */
static json_t *inputs_schema(const tosca_template_t *t, const json_t *written)
{
    json_t *props = json_object(), *required = json_array();
    json_t *schema = json_pack("{ss sO}", "type", "object", "properties", props);

    for (size_t i = 0; schema && props && required && i < t->input_count; i++) {
        const tosca_schema_t *s = t->inputs[i];
        const json_t *w = json_array_get(written, i);

        if (s->value)
            continue;
        json_object_set_new(props, s->name, property_schema(s, w));
        if (json_is_true(json_object_get(w, "required")))
            json_array_append_new(required, json_string(s->name));
    }
    if (schema && required)
        json_object_set(schema, "required", required);
    json_decref(props);
    json_decref(required);
    return schema;
}

/* ---- the whole description ---- */

static json_t *text_of(const tosca_ynode_t *n)
{
    return n && n->kind == TOSCA_Y_SCALAR ? json_stringn(n->u.scalar.str, n->u.scalar.len)
                                          : json_null();
}

int tosca_template_describe(const tosca_template_t *t, json_t **out)
{
    json_t *d = json_object(), *inputs = json_array();
    json_t *metadata = t->metadata && t->metadata->kind == TOSCA_Y_MAP
                           ? tosca_ynode_to_json(t->metadata)
                           : json_object();
    int rc = d && inputs && metadata ? 0 : ORC_ENOMEM;

    *out = NULL;
    for (size_t i = 0; rc == 0 && i < t->input_count; i++)
        if (json_array_append_new(inputs, input_json(t->inputs[i])) < 0)
            rc = ORC_ENOMEM;
    if (rc == 0)
        rc = set_new(d, "tosca_definitions_version", json_string(tosca_template_version(t)));
    if (rc == 0)
        rc = set_new(d, "description", text_of(t->description));
    if (rc == 0)
        rc = set_new(d, "metadata", json_incref(metadata));
    if (rc == 0)
        rc = set_new(d, "inputs", json_incref(inputs));
    if (rc == 0)
        rc = set_new(d, "schema", inputs_schema(t, inputs));
    json_decref(inputs);
    json_decref(metadata);
    if (rc < 0) {
        json_decref(d);
        return rc;
    }
    *out = d;
    return 0;
}
