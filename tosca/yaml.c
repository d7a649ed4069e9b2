/*
 * YAML loading on libyaml's event API into position-keeping node trees (see
 * yaml.h), with the limits that make hostile input safe: size, UTF-8 and
 * binary content, depth, node count, alias expansion, duplicate keys.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "yaml.h"

#define DEFAULT_MAX_FILE_BYTES (4u << 20)
#define DEFAULT_MAX_DEPTH 64u
#define DEFAULT_MAX_NODES 1000000u
#define DEFAULT_MAX_ALIAS 100000u

struct frame {
    tosca_ynode_t *node;
    size_t start;          /* its children start here in builder.kids */
    tosca_ynode_t **items; /* children when it ends; for maps key, value, key, value... */
    size_t count;
};

struct builder {
    tosca_ydoc_t *doc;
    tosca_diags_t *diags;
    size_t max_depth;
    size_t max_nodes;
    size_t max_alias;
    size_t alias_expanded;
    struct frame *stack;
    size_t depth;
    size_t stack_cap;
    tosca_ynode_t **kids; /* children of every open collection, innermost last */
    size_t nkids;
    size_t kids_cap;
    tosca_hmap_t anchors;
    int docs;
};

static size_t sat_add(size_t a, size_t b)
{
    return a + b < a ? SIZE_MAX : a + b;
}

static tosca_mark_t mark_of(struct builder *b, yaml_mark_t m)
{
    tosca_mark_t k = {b->doc->file, (uint32_t)m.line + 1, (uint32_t)m.column + 1};
    return k;
}

static int count_node(struct builder *b, size_t weight, const tosca_mark_t *mark)
{
    b->doc->nodes = sat_add(b->doc->nodes, weight);
    if (b->doc->nodes > b->max_nodes) {
        tosca_error(b->diags, mark, "yaml-too-many-nodes",
                    "document has more than %zu nodes (limit)", b->max_nodes);
        return ORC_ELIMIT;
    }
    return 0;
}

static tosca_ynode_t *new_node(struct builder *b, tosca_ykind_t kind, yaml_mark_t m,
                               const yaml_char_t *tag)
{
    tosca_ynode_t *n = tosca_arena_alloc(&b->doc->arena, sizeof(*n));

    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->mark = mark_of(b, m);
    n->weight = 1;
    if (tag) {
        n->tag = tosca_arena_strdup(&b->doc->arena, (const char *)tag);
        if (n->tag == NULL)
            return NULL;
    }
    return n;
}

static int frame_push_child(struct builder *b, tosca_ynode_t *child)
{
    struct frame *f;

    if (b->depth == 0) {
        b->doc->root = child;
        return 0;
    }
    f = &b->stack[b->depth - 1];
    if (tosca_grow(&b->kids, &b->kids_cap, b->nkids + 1, sizeof(*b->kids)) < 0)
        return ORC_ENOMEM;
    b->kids[b->nkids++] = child;
    f->node->weight = sat_add(f->node->weight, child->weight);
    return 0;
}

static int register_anchor(struct builder *b, const yaml_char_t *anchor, tosca_ynode_t *n)
{
    char *name;

    if (anchor == NULL)
        return 0;
    name = tosca_arena_strdup(&b->doc->arena, (const char *)anchor);
    if (name == NULL)
        return ORC_ENOMEM;
    return tosca_hmap_put(&b->anchors, name, n, NULL);
}

static int on_scalar(struct builder *b, yaml_event_t *ev)
{
    tosca_ynode_t *n = new_node(b, TOSCA_Y_SCALAR, ev->start_mark, ev->data.scalar.tag);
    int rc;

    if (n == NULL)
        return ORC_ENOMEM;
    rc = count_node(b, 1, &n->mark);
    if (rc < 0)
        return rc;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    n->u.scalar.len = ev->data.scalar.length;
    n->u.scalar.str = tosca_arena_strndup(&b->doc->arena, (const char *)ev->data.scalar.value,
                                          ev->data.scalar.length);
    if (n->u.scalar.str == NULL)
        return ORC_ENOMEM;
    rc = register_anchor(b, ev->data.scalar.anchor, n);
    return rc < 0 ? rc : frame_push_child(b, n);
}

/* True if n is a collection still open: an alias to it would be recursive. */
static bool is_open(const struct builder *b, const tosca_ynode_t *n)
{
    for (size_t i = 0; i < b->depth; i++)
        if (b->stack[i].node == n)
            return true;
    return false;
}

static int on_alias(struct builder *b, yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    tosca_mark_t mark = mark_of(b, ev->start_mark);
    tosca_ynode_t *target = tosca_hmap_get(&b->anchors, name);
    int rc;

    if (target == NULL)
        return tosca_error(b->diags, &mark, "yaml-unknown-anchor",
                           "alias '*%s' refers to no anchor defined before it", name);
    if (is_open(b, target))
        return tosca_error(b->diags, &mark, "yaml-recursive-alias",
                           "alias '*%s' refers to a collection that contains it", name);
    b->alias_expanded = sat_add(b->alias_expanded, target->weight);
    if (b->alias_expanded > b->max_alias) {
        tosca_error(b->diags, &mark, "yaml-alias-bomb",
                    "aliases expand to more than %zu nodes (limit)", b->max_alias);
        return ORC_ELIMIT;
    }
    rc = count_node(b, target->weight, &mark);
    return rc < 0 ? rc : frame_push_child(b, target);
}

static int on_collection_start(struct builder *b, yaml_event_t *ev, tosca_ykind_t kind)
{
    const yaml_char_t *tag, *anchor;
    tosca_ynode_t *n;
    int rc;

    if (kind == TOSCA_Y_MAP) {
        tag = ev->data.mapping_start.tag;
        anchor = ev->data.mapping_start.anchor;
    } else {
        tag = ev->data.sequence_start.tag;
        anchor = ev->data.sequence_start.anchor;
    }
    n = new_node(b, kind, ev->start_mark, tag);
    if (n == NULL)
        return ORC_ENOMEM;
    if (b->depth >= b->max_depth) {
        tosca_error(b->diags, &n->mark, "yaml-too-deep", "nesting deeper than %zu levels (limit)",
                    b->max_depth);
        return ORC_ELIMIT;
    }
    rc = count_node(b, 1, &n->mark);
    if (rc < 0)
        return rc;
    rc = register_anchor(b, anchor, n);
    if (rc < 0)
        return rc;
    if (tosca_grow(&b->stack, &b->stack_cap, b->depth + 1, sizeof(*b->stack)) < 0)
        return ORC_ENOMEM;
    b->stack[b->depth++] = (struct frame){.node = n, .start = b->nkids};
    return 0;
}

static bool is_merge_key(const tosca_ynode_t *k)
{
    return k->kind == TOSCA_Y_SCALAR && k->plain && strcmp(k->u.scalar.str, "<<") == 0;
}

static bool ynode_equal(const tosca_ynode_t *a, const tosca_ynode_t *b, int depth)
{
    if (a == b)
        return true;
    if (a->kind != b->kind || depth > 64)
        return false;
    if (a->kind == TOSCA_Y_SCALAR)
        return a->plain == b->plain && a->u.scalar.len == b->u.scalar.len &&
               memcmp(a->u.scalar.str, b->u.scalar.str, a->u.scalar.len) == 0;
    if (a->kind == TOSCA_Y_SEQ) {
        if (a->u.seq.count != b->u.seq.count)
            return false;
        for (size_t i = 0; i < a->u.seq.count; i++)
            if (!ynode_equal(a->u.seq.items[i], b->u.seq.items[i], depth + 1))
                return false;
        return true;
    }
    if (a->u.map.count != b->u.map.count)
        return false;
    for (size_t i = 0; i < a->u.map.count; i++)
        if (!ynode_equal(a->u.map.items[i].key, b->u.map.items[i].key, depth + 1) ||
            !ynode_equal(a->u.map.items[i].value, b->u.map.items[i].value, depth + 1))
            return false;
    return true;
}

/* Checks the explicit keys of a mapping for duplicates against the first
 * occurrence, and drops the repeats (the first stays). A repeat with another
 * value is an error: which one was meant cannot be known. A repeat of the
 * very same value changes nothing: a defect (a warning in lenient mode).
 * seen gets every key (for the merges). */
static int report_duplicate(struct builder *b, const tosca_ypair_t *first,
                            const tosca_ypair_t *dup)
{
    const tosca_ynode_t *k = dup->key;

    if (ynode_equal(first->value, dup->value, 0))
        return tosca_defect(b->diags, &k->mark, "yaml-duplicate-key",
                            "duplicate key '%s' repeats the value given at line %u",
                            k->u.scalar.str, first->key->mark.line);
    return tosca_error(b->diags, &k->mark, "yaml-duplicate-key",
                       "duplicate key '%s' (first defined at line %u)", k->u.scalar.str,
                       first->key->mark.line);
}

static bool same_key(const tosca_ynode_t *a, const tosca_ynode_t *b)
{
    return a->u.scalar.len == b->u.scalar.len &&
           memcmp(a->u.scalar.str, b->u.scalar.str, a->u.scalar.len) == 0;
}

/* Small mappings without merge keys (nearly all of them): pairwise, no table. */
static int check_duplicates_small(struct builder *b, tosca_ypair_t *pairs, size_t *n)
{
    size_t kept = 0;
    int rc = 0;

    for (size_t i = 0; i < *n && rc != ORC_ENOMEM; i++) {
        const tosca_ypair_t *first = NULL;
        for (size_t j = 0; j < kept && first == NULL; j++)
            if (same_key(pairs[j].key, pairs[i].key))
                first = &pairs[j];
        if (first) {
            int prc = report_duplicate(b, first, &pairs[i]);
            rc = prc < 0 ? prc : rc;
            continue;
        }
        pairs[kept++] = pairs[i];
    }
    *n = kept;
    return rc;
}

static int check_duplicates(struct builder *b, tosca_ypair_t *pairs, size_t *n,
                            tosca_hmap_t *seen)
{
    size_t kept = 0;
    int rc = 0;

    for (size_t i = 0; i < *n && rc != ORC_ENOMEM; i++) {
        const tosca_ynode_t *k = pairs[i].key;
        const tosca_ypair_t *first = tosca_hmap_getn(seen, k->u.scalar.str, k->u.scalar.len);
        int prc;

        if (first) {
            prc = report_duplicate(b, first, &pairs[i]);
            rc = prc < 0 ? prc : rc;
            continue;
        }
        pairs[kept] = pairs[i];
        prc = tosca_hmap_putn(seen, k->u.scalar.str, k->u.scalar.len, &pairs[kept], NULL);
        kept++;
        if (prc < 0)
            rc = prc;
    }
    *n = kept;
    return rc;
}

/* Adds the pairs of one merge source (a mapping) whose keys are not in seen. */
static int merge_from(struct builder *b, tosca_ypair_t *pairs, size_t *n, size_t cap,
                      tosca_hmap_t *seen, const tosca_ynode_t *src, const tosca_ynode_t *at)
{
    if (src->kind != TOSCA_Y_MAP)
        return tosca_error(b->diags, &at->mark, "yaml-bad-merge",
                           "merge key '<<' needs a mapping or a list of mappings");
    for (size_t i = 0; i < src->u.map.count && *n < cap; i++) {
        const tosca_ynode_t *k = src->u.map.items[i].key;
        if (tosca_hmap_getn(seen, k->u.scalar.str, k->u.scalar.len))
            continue;
        pairs[*n] = src->u.map.items[i];
        if (tosca_hmap_putn(seen, k->u.scalar.str, k->u.scalar.len, &pairs[*n], NULL) < 0)
            return ORC_ENOMEM;
        (*n)++;
    }
    return 0;
}

static size_t merge_capacity(const struct frame *f)
{
    size_t cap = f->count / 2;

    for (size_t i = 0; i + 1 < f->count; i += 2) {
        const tosca_ynode_t *v = f->items[i + 1];
        if (!is_merge_key(f->items[i]))
            continue;
        if (v->kind == TOSCA_Y_MAP)
            cap += v->u.map.count;
        else if (v->kind == TOSCA_Y_SEQ)
            for (size_t j = 0; j < v->u.seq.count; j++)
                if (v->u.seq.items[j]->kind == TOSCA_Y_MAP)
                    cap += v->u.seq.items[j]->u.map.count;
    }
    return cap;
}

static int finish_map(struct builder *b, struct frame *f)
{
    size_t cap = merge_capacity(f), n = 0;
    tosca_ypair_t *pairs = tosca_arena_alloc(&b->doc->arena, (cap ? cap : 1) * sizeof(*pairs));
    tosca_hmap_t seen;
    int rc;

    if (pairs == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i + 1 < f->count; i += 2) {
        tosca_ynode_t *k = f->items[i];
        if (k->kind != TOSCA_Y_SCALAR)
            return tosca_error(b->diags, &k->mark, "yaml-complex-key",
                               "mapping keys must be scalars, not %s", tosca_ykind_name(k));
        if (!is_merge_key(k))
            pairs[n++] = (tosca_ypair_t){k, f->items[i + 1]};
    }
    if (n <= 16 && n * 2 == f->count) { /* small, and no merge keys */
        rc = check_duplicates_small(b, pairs, &n);
        if (rc < 0)
            return rc;
        f->node->u.map.items = pairs;
        f->node->u.map.count = n;
        return 0;
    }
    tosca_hmap_init(&seen);
    rc = check_duplicates(b, pairs, &n, &seen);
    for (size_t i = 0; rc == 0 && i + 1 < f->count; i += 2) {
        tosca_ynode_t *k = f->items[i], *v = f->items[i + 1];
        if (!is_merge_key(k))
            continue;
        if (v->kind == TOSCA_Y_SEQ) {
            for (size_t j = 0; j < v->u.seq.count && rc == 0; j++)
                rc = merge_from(b, pairs, &n, cap, &seen, v->u.seq.items[j], k);
        } else {
            rc = merge_from(b, pairs, &n, cap, &seen, v, k);
        }
    }
    tosca_hmap_fini(&seen);
    if (rc < 0)
        return rc;
    f->node->u.map.items = pairs;
    f->node->u.map.count = n;
    return 0;
}

static int finish_seq(struct builder *b, struct frame *f)
{
    tosca_ynode_t **items =
        tosca_arena_alloc(&b->doc->arena, (f->count ? f->count : 1) * sizeof(*items));

    if (items == NULL)
        return ORC_ENOMEM;
    if (f->count)
        memcpy(items, f->items, f->count * sizeof(*items));
    f->node->u.seq.items = items;
    f->node->u.seq.count = f->count;
    return 0;
}

static int on_collection_end(struct builder *b)
{
    struct frame f = b->stack[--b->depth];
    int rc;

    f.items = b->kids ? b->kids + f.start : NULL; /* NULL: no child seen yet */
    f.count = b->nkids - f.start;
    rc = f.node->kind == TOSCA_Y_MAP ? finish_map(b, &f) : finish_seq(b, &f);
    b->nkids = f.start;
    if (rc < 0)
        return rc;
    return frame_push_child(b, f.node);
}

static int on_event(struct builder *b, yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            tosca_mark_t m = mark_of(b, ev->start_mark);
            return tosca_error(b->diags, &m, "yaml-multiple-documents",
                               "a template is one YAML document; a second one starts here");
        }
        return 0;
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_ALIAS_EVENT:
        return on_alias(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_collection_start(b, ev, TOSCA_Y_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_collection_start(b, ev, TOSCA_Y_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return on_collection_end(b);
    default:
        return 0;
    }
}

/* The line:col of byte offset off in data, counted as libyaml counts: a
 * leading BOM takes no column; LF, CR LF and a lone CR end a line. */
static tosca_mark_t mark_at(struct builder *b, const unsigned char *data, size_t len, size_t off)
{
    tosca_mark_t m = {b->doc->file, 1, 1};
    size_t i = 0;

    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        i = 3;
    for (; i < off && i < len; i++) {
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 >= len || data[i + 1] != '\n')))
            m.line++, m.col = 1;
        else if ((data[i] & 0xC0) != 0x80)
            m.col++;
    }
    return m;
}

/* Reader errors (characters libyaml refuses) carry a byte offset, not a mark. */
static int syntax_error(struct builder *b, yaml_parser_t *p, const void *data, size_t len)
{
    tosca_mark_t m = p->error == YAML_READER_ERROR ? mark_at(b, data, len, p->problem_offset)
                                                   : mark_of(b, p->problem_mark);
    const char *problem = p->problem ? p->problem : "malformed YAML";

    if (p->error == YAML_MEMORY_ERROR)
        return ORC_ENOMEM;
    if (p->context) {
        tosca_mark_t cm = mark_of(b, p->context_mark);
        return tosca_error(b->diags, &m, "yaml-syntax", "YAML syntax error: %s %s (line %u)",
                           problem, p->context, cm.line);
    }
    return tosca_error(b->diags, &m, "yaml-syntax", "YAML syntax error: %s", problem);
}

static int check_bytes(struct builder *b, const unsigned char *data, size_t len, size_t max)
{
    tosca_mark_t m = {b->doc->file, 0, 0};
    size_t skip = 0, bad = 0;

    if (len > max) {
        tosca_error(b->diags, &m, "input-too-large", "file is %zu bytes, more than %zu (limit)",
                    len, max);
        return ORC_ELIMIT;
    }
    if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF)
        skip = 3;
    if (tosca_utf8_check(data + skip, len - skip, &bad) == 0)
        return 0;
    bad = skip + bad - 1; /* 0-based offset in data */
    m = mark_at(b, data, len, bad);
    return tosca_error(b->diags, &m, "not-utf8",
                       "not a text file: invalid UTF-8 or control byte 0x%02x at offset %zu",
                       data[bad], bad);
}

static size_t pick(size_t v, size_t dflt)
{
    return v ? v : dflt;
}

static int run_parser(struct builder *b, const void *data, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int rc = 0;
    bool done = false;

    if (!yaml_parser_initialize(&p))
        return ORC_ENOMEM;
    yaml_parser_set_input_string(&p, data, len);
    while (!done && rc == 0) {
        if (!yaml_parser_parse(&p, &ev)) {
            rc = syntax_error(b, &p, data, len);
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(b, &ev);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc;
}

int tosca_ydoc_parse(const char *file, const void *data, size_t len, const tosca_limits_t *lim,
                     tosca_ydoc_t **out, tosca_diags_t *diags)
{
    static const tosca_limits_t none;
    struct builder b = {.diags = diags};
    int rc;

    *out = NULL;
    lim = lim ? lim : &none;
    if (len == 0)
        data = ""; /* libyaml asserts on a NULL input even when it is empty */
    b.doc = tosca_calloc(1, sizeof(*b.doc));
    if (b.doc == NULL)
        return ORC_ENOMEM;
    tosca_arena_init(&b.doc->arena);
    b.doc->file = tosca_arena_strdup(&b.doc->arena, file ? file : "<input>");
    if (b.doc->file == NULL) {
        rc = ORC_ENOMEM;
        goto out;
    }
    b.max_depth = pick(lim->max_depth, DEFAULT_MAX_DEPTH);
    b.max_nodes = pick(lim->max_nodes, DEFAULT_MAX_NODES);
    b.max_alias = pick(lim->max_alias_expansion, DEFAULT_MAX_ALIAS);
    tosca_hmap_init(&b.anchors);
    rc = check_bytes(&b, data, len, pick(lim->max_file_bytes, DEFAULT_MAX_FILE_BYTES));
    if (rc == 0)
        rc = run_parser(&b, data, len);
    tosca_free(b.kids);
    tosca_free(b.stack);
    tosca_hmap_fini(&b.anchors);
out:
    if (rc < 0) {
        tosca_ydoc_free(b.doc);
        return rc;
    }
    *out = b.doc;
    return 0;
}

void tosca_ydoc_free(tosca_ydoc_t *doc)
{
    if (doc == NULL)
        return;
    tosca_arena_fini(&doc->arena);
    tosca_free(doc);
}

/* ---- accessors ---------------------------------------------------------- */

tosca_ypair_t *tosca_ymap_pair(const tosca_ynode_t *n, const char *key)
{
    size_t klen;

    if (n == NULL || n->kind != TOSCA_Y_MAP)
        return NULL;
    klen = strlen(key);
    for (size_t i = 0; i < n->u.map.count; i++) {
        const tosca_ynode_t *k = n->u.map.items[i].key;
        if (k->u.scalar.len == klen && memcmp(k->u.scalar.str, key, klen) == 0)
            return &n->u.map.items[i];
    }
    return NULL;
}

tosca_ynode_t *tosca_ymap_get(const tosca_ynode_t *n, const char *key)
{
    tosca_ypair_t *p = tosca_ymap_pair(n, key);
    return p ? p->value : NULL;
}

static bool tag_is(const tosca_ynode_t *n, const char *suffix)
{
    size_t tl, sl;

    if (n->tag == NULL)
        return false;
    tl = strlen(n->tag);
    sl = strlen(suffix);
    return tl >= sl && strcmp(n->tag + tl - sl, suffix) == 0;
}

/* A scalar that may resolve to a non-string: plain and untagged, or tagged so. */
static bool resolvable(const tosca_ynode_t *n, const char *tag_suffix)
{
    if (n == NULL || n->kind != TOSCA_Y_SCALAR)
        return false;
    if (n->tag)
        return tag_is(n, tag_suffix);
    return n->plain;
}

bool tosca_yis_null(const tosca_ynode_t *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};

    if (n == NULL)
        return true;
    return resolvable(n, ":null") && n->u.scalar.len <= 4 && tosca_str_in(n->u.scalar.str, nulls);
}

/* Cheap test first: a plain scalar whose first character cannot start a
 * null, boolean or number is a string (most scalars are). */
static bool surely_string(const tosca_ynode_t *n)
{
    return n->kind == TOSCA_Y_SCALAR && n->tag == NULL &&
           (!n->plain || (n->u.scalar.len > 0 &&
                          strchr("~nNtTfFyYoO-+.0123456789", n->u.scalar.str[0]) == NULL));
}

bool tosca_yis_str(const tosca_ynode_t *n, const char *s)
{
    return n && n->kind == TOSCA_Y_SCALAR && strcmp(n->u.scalar.str, s) == 0;
}

int tosca_yget_bool(const tosca_ynode_t *n, bool *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                      "ON", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                                     "OFF", NULL};

    if (!resolvable(n, ":bool") || n->u.scalar.len > 5)
        return ORC_EINVAL;
    if (tosca_str_in(n->u.scalar.str, yes))
        *out = true;
    else if (tosca_str_in(n->u.scalar.str, no))
        *out = false;
    else
        return ORC_EINVAL;
    return 0;
}

static bool all_in(const char *s, const char *set)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (strchr(set, *s) == NULL)
            return false;
    return true;
}

int tosca_yget_int(const tosca_ynode_t *n, int64_t *out)
{
    const char *s, *digits;
    int base = 10;
    char *end;
    long long v;

    if (!resolvable(n, ":int"))
        return ORC_EINVAL;
    s = n->u.scalar.str;
    digits = s + (*s == '-' || *s == '+');
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')) {
        if (digits != s)
            return ORC_EINVAL;
        base = digits[1] == 'x' ? 16 : 8;
        digits += 2;
        if (!all_in(digits, base == 16 ? "0123456789abcdefABCDEF" : "01234567"))
            return ORC_EINVAL;
        s = digits;
    } else if (!all_in(digits, "0123456789")) {
        return ORC_EINVAL;
    }
    errno = 0;
    v = strtoll(s, &end, base);
    if (errno == ERANGE || *end)
        return ORC_EINVAL;
    *out = v;
    return 0;
}

static bool float_syntax(const char *s)
{
    size_t i = (*s == '-' || *s == '+'), digits = 0;

    while (s[i] >= '0' && s[i] <= '9')
        i++, digits++;
    if (s[i] == '.') {
        i++;
        while (s[i] >= '0' && s[i] <= '9')
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (s[i] == 'e' || s[i] == 'E') {
        i++;
        i += (s[i] == '-' || s[i] == '+');
        if (!(s[i] >= '0' && s[i] <= '9'))
            return false;
        while (s[i] >= '0' && s[i] <= '9')
            i++;
    }
    return s[i] == '\0';
}

int tosca_yget_float(const tosca_ynode_t *n, double *out)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninf[] = {"-.inf", "-.Inf", "-.INF", NULL};
    static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s;

    if (!resolvable(n, ":float") && !resolvable(n, ":int"))
        return ORC_EINVAL;
    s = n->u.scalar.str;
    if (tosca_str_in(s, inf))
        *out = INFINITY;
    else if (tosca_str_in(s, ninf))
        *out = -INFINITY;
    else if (tosca_str_in(s, nan))
        *out = NAN;
    else if (float_syntax(s))
        *out = strtod(s, NULL);
    else {
        int64_t i;
        if (tosca_yget_int(n, &i) < 0)
            return ORC_EINVAL;
        *out = (double)i;
    }
    return 0;
}

const char *tosca_yresolved_type(const tosca_ynode_t *n)
{
    bool b;
    int64_t i;
    double d;

    if (n == NULL)
        return "null";
    if (n->kind == TOSCA_Y_MAP)
        return "map";
    if (n->kind == TOSCA_Y_SEQ)
        return "list";
    if (surely_string(n))
        return "string";
    if (tosca_yis_null(n))
        return "null";
    if (tosca_yget_bool(n, &b) == 0)
        return "boolean";
    if (tosca_yget_int(n, &i) == 0)
        return "integer";
    if (tosca_yget_float(n, &d) == 0)
        return "float";
    return "string";
}

static json_t *scalar_to_json(const tosca_ynode_t *n)
{
    bool b;
    int64_t i;
    double d;

    if (surely_string(n))
        return json_stringn(n->u.scalar.str, n->u.scalar.len);
    if (tosca_yis_null(n))
        return json_null();
    if (tosca_yget_bool(n, &b) == 0)
        return json_boolean(b);
    if (tosca_yget_int(n, &i) == 0)
        return json_integer((json_int_t)i);
    if (tosca_yget_float(n, &d) == 0 && isfinite(d))
        return json_real(d);
    return json_stringn(n->u.scalar.str, n->u.scalar.len);
}

json_t *tosca_ynode_to_json(const tosca_ynode_t *n)
{
    json_t *j;

    if (n == NULL)
        return json_null();
    if (n->kind == TOSCA_Y_SCALAR)
        return scalar_to_json(n);
    if (n->kind == TOSCA_Y_SEQ) {
        j = json_array();
        for (size_t i = 0; j && i < n->u.seq.count; i++)
            if (json_array_append_new(j, tosca_ynode_to_json(n->u.seq.items[i])) < 0) {
                json_decref(j);
                return NULL;
            }
        return j;
    }
    j = json_object();
    for (size_t i = 0; j && i < n->u.map.count; i++) {
        const tosca_ypair_t *p = &n->u.map.items[i];
        if (json_object_setn_new(j, p->key->u.scalar.str, p->key->u.scalar.len,
                                 tosca_ynode_to_json(p->value)) < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

const char *tosca_ykind_name(const tosca_ynode_t *n)
{
    if (n == NULL)
        return "nothing";
    switch (n->kind) {
    case TOSCA_Y_MAP:
        return "a mapping";
    case TOSCA_Y_SEQ:
        return "a list";
    default:
        return "a scalar";
    }
}

int tosca_yaml_to_json(const char *name, const void *data, size_t len, json_t **out,
                       tosca_diags_t *diags)
{
    tosca_ydoc_t *doc = NULL;
    int rc = tosca_ydoc_parse(name, data, len, NULL, &doc, diags);

    *out = NULL;
    if (rc < 0)
        return rc;
    *out = tosca_ynode_to_json(doc->root);
    tosca_ydoc_free(doc);
    return *out ? 0 : ORC_ENOMEM;
}
