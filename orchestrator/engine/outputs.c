/*
 * Outputs of a deployment: the plan keeps run-time references as TOSCA
 * function objects (get_attribute, concat of them, ...); once the nodes are
 * up they are evaluated here with the attributes the drivers reported
 * (private_address, public_address, endpoint, ...), falling back to the
 * node's properties and capability properties, as TOSCA reflects them.
 * The values of secret inputs (the plan's secret_inputs) are masked in them.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* What outputs are evaluated against: the run's instances and the plan. */
struct octx {
    const struct run *r;
    const json_t *plan;
};

static json_t *eval(const struct octx *c, const json_t *v, int depth);

static const char *fn_name(const json_t *v, const json_t **args)
{
    const char *k;
    json_t *a;

    if (!json_is_object(v) || json_object_size(v) != 1)
        return NULL;
    json_object_foreach((json_t *)v, k, a)
    {
        *args = a;
        return k[0] == '$' ? k + 1 : k;
    }
    return NULL;
}

/* An attribute value as JSON: "[8080]"-like strings are read as JSON. */
static json_t *attr_value(const json_t *attrs, const char *name)
{
    const json_t *v = json_object_get(attrs, name);
    const char *s = json_string_value(v);
    json_error_t err;

    if (s && (s[0] == '[' || s[0] == '{')) {
        json_t *j = json_loads(s, 0, &err);
        if (j)
            return j;
    }
    return v ? json_incref((json_t *)v) : NULL;
}

static const struct nrun *find_node(const struct run *r, const char *name)
{
    for (size_t i = 0; name && i < r->nnodes; i++)
        if (strcmp(r->nodes[i].name, name) == 0)
            return &r->nodes[i];
    return NULL;
}

/* Walks the rest of the path (names and list indexes). */
static json_t *follow(json_t *v, const json_t *args, size_t from)
{
    for (size_t i = from; v && i < json_array_size(args); i++) {
        const json_t *k = json_array_get(args, i);
        json_t *next = NULL;
        if (json_is_array(v) && json_is_integer(k))
            next = json_array_get(v, (size_t)json_integer_value(k));
        else if (json_is_object(v) && json_is_string(k))
            next = json_object_get(v, json_string_value(k));
        json_incref(next);
        json_decref(v);
        v = next;
    }
    return v;
}

static const json_t *plan_node(const json_t *plan, const char *name)
{
    const json_t *nodes = json_object_get(plan, "nodes"), *n;
    size_t i;

    json_array_foreach(nodes, i, n)
    {
        const char *s = json_string_value(json_object_get(n, "name"));
        if (s && strcmp(s, name) == 0)
            return n;
    }
    return NULL;
}

/* get_attribute [node, name, path...] or [node, capability, name, path...]. */
static json_t *get_attribute(const struct octx *c, const json_t *args)
{
    const struct nrun *n = find_node(c->r, json_string_value(json_array_get(args, 0)));
    const char *a1 = json_string_value(json_array_get(args, 1));
    const char *a2 = json_string_value(json_array_get(args, 2));
    const struct inst *first = orc__node_first(n);
    const json_t *pn, *caps;
    json_t *v;

    if (first == NULL || a1 == NULL)
        return json_null();
    pn = plan_node(c->plan, n->name);
    v = attr_value(first->attrs, a1);
    if (v == NULL && json_object_get(json_object_get(pn, "properties"), a1))
        v = json_incref(json_object_get(json_object_get(pn, "properties"), a1));
    if (v)
        return (v = follow(v, args, 2)) ? v : json_null();
    caps = json_object_get(json_object_get(pn, "capabilities"), a1);
    if (caps && a2) {
        v = json_incref(json_object_get(json_object_get(caps, "properties"), a2));
        return (v = follow(v, args, 3)) ? v : json_null();
    }
    return json_null();
}

static void append_text(char **buf, size_t *len, const json_t *v)
{
    char *text = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    const char *s = json_is_string(v) ? json_string_value(v) : text ? text : "";
    size_t n = strlen(s);
    char *nb = realloc(*buf, *len + n + 1);

    if (nb) {
        memcpy(nb + *len, s, n + 1);
        *buf = nb;
        *len += n;
    }
    free(text);
}

static json_t *concat(const struct octx *c, const json_t *args, const char *sep, int depth)
{
    char *buf = NULL;
    size_t len = 0, i;
    const json_t *a;
    json_t *out;

    json_array_foreach(args, i, a)
    {
        json_t *v = eval(c, a, depth + 1);
        if (i && sep) {
            json_t *s = json_string(sep);
            append_text(&buf, &len, s);
            json_decref(s);
        }
        if (!json_is_null(v))
            append_text(&buf, &len, v);
        json_decref(v);
    }
    out = json_string(buf ? buf : "");
    free(buf);
    return out;
}

static json_t *eval(const struct octx *c, const json_t *v, int depth)
{
    const json_t *args = NULL;
    const char *fn = depth < 32 ? fn_name(v, &args) : NULL;

    if (fn && strcmp(fn, "get_attribute") == 0)
        return get_attribute(c, args);
    if (fn && strcmp(fn, "concat") == 0 && json_is_array(args))
        return concat(c, args, NULL, depth);
    if (fn && strcmp(fn, "join") == 0 && json_is_array(json_array_get(args, 0)))
        return concat(c, json_array_get(args, 0), json_string_value(json_array_get(args, 1)),
                      depth);
    if (fn && (strcmp(fn, "get_operation_output") == 0 || strcmp(fn, "get_artifact") == 0))
        return json_null(); /* known to gpu-agent, not reported here yet */
    return json_deep_copy(v);
}

#define SECRET_MASK "******"
#define SECRET_MIN_LEN 4 /* shorter values would mask ordinary text */

/* s with every occurrence of secret replaced (a new string), or NULL when none is in it. */
static char *mask_in(const char *s, const char *secret)
{
    size_t slen = strlen(secret), n = 0, mlen = strlen(SECRET_MASK);
    const char *p = s, *hit;
    char *out, *w;

    for (hit = strstr(p, secret); hit; hit = strstr(hit + slen, secret))
        n++;
    if (n == 0)
        return NULL;
    out = malloc(strlen(s) + n * mlen + 1);
    if (out == NULL)
        return NULL;
    for (w = out; (hit = strstr(p, secret)) != NULL; p = hit + slen) {
        memcpy(w, p, (size_t)(hit - p));
        w += hit - p;
        memcpy(w, SECRET_MASK, mlen);
        w += mlen;
    }
    strcpy(w, p);
    return out;
}

/* Replaces the secret in every string of v (in place; v is the caller's new value). */
static json_t *mask_value(json_t *v, const char *secret)
{
    const char *k;
    json_t *item;
    size_t i;
    char *m;

    if (json_is_string(v) && (m = mask_in(json_string_value(v), secret)) != NULL) {
        json_decref(v);
        v = json_string(m);
        free(m);
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, item)
            json_object_set_new(v, k, mask_value(json_incref(item), secret));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
            json_array_set_new(v, i, mask_value(json_incref(item), secret));
    }
    return v;
}

char **orc_engine_secret_values(const json_t *plan)
{
    const json_t *names = json_object_get(plan, "secret_inputs"), *name;
    const json_t *inputs = json_object_get(plan, "inputs");
    size_t i, n = 0;
    char **out;

    if (json_array_size(names) == 0)
        return NULL;
    out = orc_calloc(json_array_size(names) + 1, sizeof(*out));
    json_array_foreach(names, i, name) {
        const char *secret = json_string_value(json_object_get(inputs, json_string_value(name)));
        if (out && secret && strlen(secret) >= SECRET_MIN_LEN &&
            (out[n] = orc_strdup(secret)) != NULL)
            n++;
    }
    if (out && n == 0) {
        orc_free(out);
        out = NULL;
    }
    return out;
}

void orc_engine_secret_values_free(char **secrets)
{
    for (size_t i = 0; secrets && secrets[i]; i++)
        orc_free(secrets[i]);
    orc_free(secrets);
}

json_t *orc_engine_mask_secrets(const json_t *plan, json_t *v)
{
    char **secrets = orc_engine_secret_values(plan);

    for (size_t i = 0; secrets && secrets[i]; i++)
        v = mask_value(v, secrets[i]);
    orc_engine_secret_values_free(secrets);
    return v;
}

char *orc_engine_mask_text(char *const *secrets, const char *text)
{
    char *masked = NULL;

    for (size_t i = 0; text && secrets && secrets[i]; i++) {
        char *m = mask_in(masked ? masked : text, secrets[i]);
        if (m) {
            free(masked);
            masked = m;
        }
    }
    return masked;
}

json_t *orc_engine_outputs(const struct run *r, const json_t *plan)
{
    const struct octx c = {r, plan};
    const json_t *outs = json_object_get(plan, "outputs"), *o;
    json_t *res = json_object();
    const char *name;

    json_object_foreach((json_t *)outs, name, o)
        json_object_set_new(res, name, eval(&c, json_object_get(o, "value"), 0));
    return orc_engine_mask_secrets(plan, res);
}
