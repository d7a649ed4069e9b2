/*
 * Small operations on the model: named definition lists and the queries that
 * walk a type's derivation chain (nearest definition wins).
 */
#include <string.h>

#include "model.h"

int tosca_deflist_add(tosca_deflist_t *l, void *item)
{
    if (tosca_grow(&l->items, &l->cap, l->count + 1, sizeof(*l->items)) < 0)
        return ORC_ENOMEM;
    l->items[l->count++] = item;
    return 0;
}

void *tosca_deflist_find(const tosca_deflist_t *l, const char *name)
{
    for (size_t i = 0; i < l->count; i++) {
        const char *const *item_name = l->items[i];
        if (strcmp(*item_name, name) == 0)
            return l->items[i];
    }
    return NULL;
}

void tosca_deflist_fini(tosca_deflist_t *l)
{
    tosca_free(l->items);
    l->items = NULL;
    l->count = l->cap = 0;
}

bool tosca_type_is(const tosca_type_t *t, const char *name)
{
    for (; t; t = t->parent)
        if (strcmp(t->name, name) == 0)
            return true;
    return false;
}

bool tosca_type_derives(const tosca_type_t *t, const tosca_type_t *base)
{
    for (; t; t = t->parent)
        if (t == base)
            return true;
    return false;
}

#define TYPE_LOOKUP(fn, field, rtype)                                                          \
    rtype *fn(const tosca_type_t *t, const char *name)                                         \
    {                                                                                          \
        for (; t; t = t->parent) {                                                             \
            rtype *d = tosca_deflist_find(&t->field, name);                                    \
            if (d)                                                                             \
                return d;                                                                      \
        }                                                                                      \
        return NULL;                                                                           \
    }

TYPE_LOOKUP(tosca_type_property, properties, tosca_schema_t)
TYPE_LOOKUP(tosca_type_attribute, attributes, tosca_schema_t)
TYPE_LOOKUP(tosca_type_capability, capabilities, tosca_capdef_t)
TYPE_LOOKUP(tosca_type_requirement, requirements, tosca_reqdef_t)
TYPE_LOOKUP(tosca_type_interface, interfaces, tosca_ifacedef_t)
TYPE_LOOKUP(tosca_type_operation, operations, tosca_opdef_t)
TYPE_LOOKUP(tosca_type_artifact, artifacts, tosca_artdef_t)
