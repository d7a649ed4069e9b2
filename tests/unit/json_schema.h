/*
 * A JSON-Schema checker for the subset that the OpenAPI 3.0 document of the
 * daemon uses: type (with nullable), enum, required, properties,
 * additionalProperties, items, $ref (a JSON pointer into the document),
 * oneOf / anyOf / allOf, pattern (POSIX extended regular expressions, which
 * the simple patterns of the document are), minimum / maximum, minLength and
 * minItems. Annotations (description, title, example, format, default,
 * readOnly, writeOnly, deprecated) are ignored; any other keyword is an
 * error, so that a schema never silently checks less than it says.
 *
 * js_schema_check() says whether a schema is well formed (keywords known,
 * values of the right kind, every $ref resolving); js_validate() whether a
 * value matches a schema. Both write the JSON path of the first problem and
 * what is wrong to err ("$.content[2].status: \"DONE\" is not one of the
 * enum") and return -1, or return 0. Header-only, for tests.
 */
#ifndef JSON_SCHEMA_H
#define JSON_SCHEMA_H

#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#define JS_MAX_DEPTH 64

struct js_ctx {
    const json_t *root; /* the document $refs point into */
    char *err;
    size_t errlen;
    int depth;
};

static inline int js_fail(struct js_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int js_fail(struct js_ctx *c, const char *path, const char *fmt, ...)
{
    size_t n;
    va_list ap;

    n = (size_t)snprintf(c->err, c->errlen, "%s: ", path);
    va_start(ap, fmt);
    if (n < c->errlen)
        vsnprintf(c->err + n, c->errlen - n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Resolves "#/a/b~1c" in root (RFC 6901 escapes); NULL when it does not. */
static inline const json_t *js_pointer(const json_t *root, const char *ref)
{
    const json_t *at = root;
    char tok[256];

    if (ref == NULL || ref[0] != '#')
        return NULL;
    ref++;
    while (at != NULL && *ref == '/') {
        size_t n = 0;
        for (ref++; *ref && *ref != '/' && n < sizeof(tok) - 1; ref++) {
            if (ref[0] == '~' && (ref[1] == '0' || ref[1] == '1')) {
                tok[n++] = ref[1] == '0' ? '~' : '/';
                ref++;
            } else {
                tok[n++] = *ref;
            }
        }
        tok[n] = '\0';
        at = json_object_get(at, tok);
    }
    return *ref == '\0' ? at : NULL;
}

/* A short rendering of a value for messages. */
static inline const char *js_show(const json_t *v, char *buf, size_t size)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

    snprintf(buf, size, "%.60s%s", s ? s : "?", s && strlen(s) > 60 ? "..." : "");
    free(s);
    return buf;
}

static inline const char *js_type_of(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

static inline bool js_is_type(const json_t *v, const char *type)
{
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    return strcmp(js_type_of(v), type) == 0;
}

static inline bool js_keyword_known(const char *k)
{
    static const char *const known[] = {
        "type",    "nullable", "enum",      "required", "properties",  "additionalProperties",
        "items",   "$ref",     "oneOf",     "anyOf",    "allOf",       "pattern",
        "minimum", "maximum",  "minLength", "minItems", "description", "title",
        "example", "format",   "default",   "readOnly", "writeOnly",   "deprecated"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(k, known[i]) == 0)
            return true;
    return false;
}

/* path + suffix into out. */
static inline const char *js_sub(char *out, size_t size, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline const char *js_sub(char *out, size_t size, const char *path, const char *fmt, ...)
{
    size_t n = (size_t)snprintf(out, size, "%s", path);
    va_list ap;

    va_start(ap, fmt);
    if (n < size)
        vsnprintf(out + n, size - n, fmt, ap);
    va_end(ap);
    return out;
}

/* ---- well-formedness of a schema ---- */

static inline int js_check_at(struct js_ctx *c, const json_t *s, const char *path);

static inline int js_check_list(struct js_ctx *c, const json_t *list, const char *path,
                                const char *key)
{
    char sub[512];
    const json_t *item;
    size_t i;

    if (!json_is_array(list) || json_array_size(list) == 0)
        return js_fail(c, path, "%s must be a non-empty array of schemas", key);
    json_array_foreach(list, i, item)
    {
        if (js_check_at(c, item, js_sub(sub, sizeof(sub), path, "/%s/%zu", key, i)) < 0)
            return -1;
    }
    return 0;
}

static inline int js_check_type(struct js_ctx *c, const json_t *t, const char *path)
{
    static const char *const types[] = {"object",  "array",  "string",
                                        "integer", "number", "boolean"};
    const char *s = json_string_value(t);

    for (size_t i = 0; s && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(s, types[i]) == 0)
            return 0;
    return js_fail(c, path, "type must be one of object, array, string, integer, number, boolean");
}

static inline int js_check_pattern(struct js_ctx *c, const json_t *p, const char *path)
{
    regex_t re;

    if (!json_is_string(p))
        return js_fail(c, path, "pattern must be a string");
    if (regcomp(&re, json_string_value(p), REG_EXTENDED | REG_NOSUB) != 0)
        return js_fail(c, path, "pattern %s does not compile", json_string_value(p));
    regfree(&re);
    return 0;
}

static inline int js_check_object_kw(struct js_ctx *c, const json_t *s, const char *path)
{
    const json_t *req = json_object_get(s, "required"), *props = json_object_get(s, "properties");
    const json_t *add = json_object_get(s, "additionalProperties"), *v;
    const char *k;
    char sub[512];
    size_t i;

    if (req && !json_is_array(req))
        return js_fail(c, path, "required must be an array");
    json_array_foreach(req, i, v)
    {
        if (!json_is_string(v))
            return js_fail(c, path, "required[%zu] is not a string", i);
    }
    if (props && !json_is_object(props))
        return js_fail(c, path, "properties must be an object");
    json_object_foreach((json_t *)props, k, v)
    {
        if (js_check_at(c, v, js_sub(sub, sizeof(sub), path, "/properties/%s", k)) < 0)
            return -1;
    }
    if (add && !json_is_boolean(add) &&
        js_check_at(c, add, js_sub(sub, sizeof(sub), path, "/additionalProperties")) < 0)
        return -1;
    return 0;
}

static inline int js_check_at(struct js_ctx *c, const json_t *s, const char *path)
{
    const json_t *v;
    const char *k;
    char sub[512];

    if (!json_is_object(s))
        return js_fail(c, path, "a schema must be an object");
    json_object_foreach((json_t *)s, k, v)
    {
        if (!js_keyword_known(k))
            return js_fail(c, path, "keyword '%s' is not supported by this checker", k);
    }
    if ((v = json_object_get(s, "$ref")) != NULL) {
        if (!json_is_object(js_pointer(c->root, json_string_value(v))))
            return js_fail(c, path, "$ref %s does not resolve", js_show(v, sub, sizeof(sub)));
        return 0;
    }
    if ((v = json_object_get(s, "type")) && js_check_type(c, v, path) < 0)
        return -1;
    if ((v = json_object_get(s, "nullable")) && !json_is_boolean(v))
        return js_fail(c, path, "nullable must be a boolean");
    if ((v = json_object_get(s, "enum")) && (!json_is_array(v) || json_array_size(v) == 0))
        return js_fail(c, path, "enum must be a non-empty array");
    if ((v = json_object_get(s, "pattern")) && js_check_pattern(c, v, path) < 0)
        return -1;
    if ((v = json_object_get(s, "items")) &&
        js_check_at(c, v, js_sub(sub, sizeof(sub), path, "/items")) < 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        static const char *const nums[] = {"minimum", "maximum", "minLength", "minItems"};
        if ((v = json_object_get(s, nums[i])) && !json_is_number(v))
            return js_fail(c, path, "%s must be a number", nums[i]);
    }
    for (int i = 0; i < 3; i++) {
        static const char *const lists[] = {"oneOf", "anyOf", "allOf"};
        if ((v = json_object_get(s, lists[i])) && js_check_list(c, v, path, lists[i]) < 0)
            return -1;
    }
    return js_check_object_kw(c, s, path);
}

/* 0 when schema (inside document root) is well formed; else -1 and err. */
static inline int js_schema_check(const json_t *root, const json_t *schema, const char *where,
                                  char *err, size_t errlen)
{
    struct js_ctx c = {root, err, errlen, 0};

    return js_check_at(&c, schema, where);
}

/* ---- validation of a value ---- */

static inline int js_valid_at(struct js_ctx *c, const json_t *s, const json_t *v, const char *path);

static inline int js_valid_object(struct js_ctx *c, const json_t *s, const json_t *v,
                                  const char *path)
{
    const json_t *req = json_object_get(s, "required"), *props = json_object_get(s, "properties");
    const json_t *add = json_object_get(s, "additionalProperties"), *item;
    const char *k;
    char sub[512];
    size_t i;

    json_array_foreach(req, i, item)
    {
        if (json_object_get(v, json_string_value(item)) == NULL)
            return js_fail(c, path, "required property '%s' is missing", json_string_value(item));
    }
    json_object_foreach((json_t *)v, k, item)
    {
        const json_t *ps = json_object_get(props, k);
        js_sub(sub, sizeof(sub), path, ".%s", k);
        if (ps != NULL) {
            if (js_valid_at(c, ps, item, sub) < 0)
                return -1;
        } else if (json_is_false(add)) {
            return js_fail(c, path,
                           "property '%s' is not in the schema (additionalProperties "
                           "is false)",
                           k);
        } else if (json_is_object(add) && js_valid_at(c, add, item, sub) < 0) {
            return -1;
        }
    }
    return 0;
}

static inline int js_valid_array(struct js_ctx *c, const json_t *s, const json_t *v,
                                 const char *path)
{
    const json_t *items = json_object_get(s, "items"), *min = json_object_get(s, "minItems");
    const json_t *item;
    char sub[512];
    size_t i;

    if (min && (double)json_array_size(v) < json_number_value(min))
        return js_fail(c, path, "%zu items, fewer than minItems %g", json_array_size(v),
                       json_number_value(min));
    json_array_foreach(v, i, item)
    {
        if (items && js_valid_at(c, items, item, js_sub(sub, sizeof(sub), path, "[%zu]", i)) < 0)
            return -1;
    }
    return 0;
}

static inline int js_valid_string(struct js_ctx *c, const json_t *s, const json_t *v,
                                  const char *path)
{
    const json_t *pat = json_object_get(s, "pattern"), *min = json_object_get(s, "minLength");
    regex_t re;
    int m;

    if (min && (double)json_string_length(v) < json_number_value(min))
        return js_fail(c, path, "\"%.60s\" is shorter than minLength %g", json_string_value(v),
                       json_number_value(min));
    if (pat == NULL)
        return 0;
    if (regcomp(&re, json_string_value(pat), REG_EXTENDED | REG_NOSUB) != 0)
        return js_fail(c, path, "pattern %s does not compile", json_string_value(pat));
    m = regexec(&re, json_string_value(v), 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        return js_fail(c, path, "\"%.80s\" does not match the pattern %s", json_string_value(v),
                       json_string_value(pat));
    return 0;
}

static inline int js_valid_number(struct js_ctx *c, const json_t *s, const json_t *v,
                                  const char *path)
{
    const json_t *min = json_object_get(s, "minimum"), *max = json_object_get(s, "maximum");

    if (min && json_number_value(v) < json_number_value(min))
        return js_fail(c, path, "%g is below the minimum %g", json_number_value(v),
                       json_number_value(min));
    if (max && json_number_value(v) > json_number_value(max))
        return js_fail(c, path, "%g is above the maximum %g", json_number_value(v),
                       json_number_value(max));
    return 0;
}

/* oneOf: exactly one; anyOf: at least one; allOf: every one. */
static inline int js_valid_combined(struct js_ctx *c, const json_t *s, const json_t *v,
                                    const char *path)
{
    static const char *const keys[] = {"oneOf", "anyOf", "allOf"};
    char saved[512] = "";

    for (int k = 0; k < 3; k++) {
        const json_t *list = json_object_get(s, keys[k]), *sub;
        size_t i, matched = 0;
        if (list == NULL)
            continue;
        json_array_foreach(list, i, sub)
        {
            if (js_valid_at(c, sub, v, path) == 0)
                matched++;
            else if (k == 2)
                return -1; /* allOf: the failing branch's message */
            else if (matched == 0)
                snprintf(saved, sizeof(saved), "%s", c->err);
        }
        if (k == 0 && matched != 1)
            return matched == 0
                       ? js_fail(c, path, "matches none of oneOf (first: %s)", saved)
                       : js_fail(c, path, "matches %zu of oneOf, not exactly one", matched);
        if (k == 1 && matched == 0)
            return js_fail(c, path, "matches none of anyOf (first: %s)", saved);
    }
    return 0;
}

static inline int js_valid_at(struct js_ctx *c, const json_t *s, const json_t *v, const char *path)
{
    const json_t *ref = json_object_get(s, "$ref"), *type = json_object_get(s, "type");
    const json_t *en = json_object_get(s, "enum"), *item;
    char shown[80];
    size_t i;
    int rc;

    if (!json_is_object(s))
        return js_fail(c, path, "the schema is not an object");
    if (ref != NULL) {
        const json_t *target = js_pointer(c->root, json_string_value(ref));
        if (target == NULL)
            return js_fail(c, path, "$ref %s does not resolve", json_string_value(ref));
        if (++c->depth > JS_MAX_DEPTH)
            return js_fail(c, path, "$ref nesting deeper than %d", JS_MAX_DEPTH);
        rc = js_valid_at(c, target, v, path);
        c->depth--;
        return rc;
    }
    if (json_is_null(v) && json_is_true(json_object_get(s, "nullable")))
        return 0;
    if (type && !js_is_type(v, json_string_value(type)))
        return js_fail(c, path, "expected %s, got %s %s", json_string_value(type), js_type_of(v),
                       js_show(v, shown, sizeof(shown)));
    if (en != NULL) {
        bool found = false;
        json_array_foreach(en, i, item)
        {
            found = found || json_equal(item, v);
        }
        if (!found)
            return js_fail(c, path, "%s is not one of the enum", js_show(v, shown, sizeof(shown)));
    }
    if (json_is_object(v))
        rc = js_valid_object(c, s, v, path);
    else if (json_is_array(v))
        rc = js_valid_array(c, s, v, path);
    else if (json_is_string(v))
        rc = js_valid_string(c, s, v, path);
    else if (json_is_number(v))
        rc = js_valid_number(c, s, v, path);
    else
        rc = 0;
    return rc < 0 ? rc : js_valid_combined(c, s, v, path);
}

/* 0 when value matches schema ($refs resolved in root); else -1 and err. */
static inline int js_validate(const json_t *root, const json_t *schema, const json_t *value,
                              char *err, size_t errlen)
{
    struct js_ctx c = {root, err, errlen, 0};

    return js_valid_at(&c, schema, value, "$");
}

#endif
