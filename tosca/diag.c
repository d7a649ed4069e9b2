/*
 * Diagnostics: every problem found in a template is collected (never only the
 * first), with its position, a stable code and a message. Lenient mode turns
 * defects that do not stop a deployment into warnings; strict mode keeps them
 * errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

#define DIAGS_DEFAULT_MAX 1000

void tosca_diags_init(tosca_diags_t *d, bool strict)
{
    memset(d, 0, sizeof(*d));
    d->strict = strict;
}

void tosca_diags_fini(tosca_diags_t *d)
{
    for (size_t i = 0; i < d->count; i++) {
        tosca_free(d->items[i].file);
        tosca_free(d->items[i].message);
    }
    tosca_free(d->items);
    tosca_diags_init(d, d->strict);
}

/* Stores one diagnostic (msg is copied); counts it even when the list is full. */
static int diag_store(tosca_diags_t *d, tosca_severity_t sev, bool defect,
                      const tosca_mark_t *mark, const char *code, const char *msg)
{
    size_t max = d->max_items ? d->max_items : DIAGS_DEFAULT_MAX;
    tosca_diag_t *g;

    if (sev == TOSCA_SEV_ERROR)
        d->errors++;
    else
        d->warnings++;
    if (d->count >= max) {
        d->dropped++;
        return 0;
    }
    if (tosca_grow(&d->items, &d->capacity, d->count + 1, sizeof(*d->items)) < 0)
        return ORC_ENOMEM;
    g = &d->items[d->count];
    g->severity = sev;
    g->defect = defect;
    g->code = code;
    g->file = tosca_strdup(mark && mark->file ? mark->file : "");
    g->line = mark ? mark->line : 0;
    g->col = mark ? mark->col : 0;
    g->message = tosca_strdup(msg);
    if (g->file == NULL || g->message == NULL) {
        tosca_free(g->file);
        tosca_free(g->message);
        return ORC_ENOMEM;
    }
    d->count++;
    return 0;
}

static int diag_vadd(tosca_diags_t *d, tosca_severity_t sev, bool defect,
                     const tosca_mark_t *mark, const char *code, const char *fmt, va_list ap)
{
    char msg[1024];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    return diag_store(d, sev, defect, mark, code, msg);
}

int tosca_diag_copy(tosca_diags_t *d, const tosca_diag_t *g)
{
    tosca_mark_t m = {g->file, g->line, g->col};
    tosca_severity_t sev = g->defect ? (d->strict ? TOSCA_SEV_ERROR : TOSCA_SEV_WARNING)
                                     : g->severity;

    return diag_store(d, sev, g->defect, &m, g->code, g->message);
}

int tosca_diag_vadd(tosca_diags_t *d, tosca_severity_t sev, const tosca_mark_t *mark,
                    const char *code, const char *fmt, va_list ap)
{
    return diag_vadd(d, sev, false, mark, code, fmt, ap);
}

int tosca_error(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
                ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = tosca_diag_vadd(d, TOSCA_SEV_ERROR, mark, code, fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : ORC_ETOSCA;
}

int tosca_defect(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
                 ...)
{
    tosca_severity_t sev = d->strict ? TOSCA_SEV_ERROR : TOSCA_SEV_WARNING;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = diag_vadd(d, sev, true, mark, code, fmt, ap);
    va_end(ap);
    if (rc < 0)
        return rc;
    return d->strict ? ORC_ETOSCA : 0;
}

int tosca_warn(tosca_diags_t *d, const tosca_mark_t *mark, const char *code, const char *fmt,
               ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = tosca_diag_vadd(d, TOSCA_SEV_WARNING, mark, code, fmt, ap);
    va_end(ap);
    return rc < 0 ? rc : 0;
}

static int diag_cmp(const void *pa, const void *pb)
{
    const tosca_diag_t *a = pa, *b = pb;
    int c = strcmp(a->file, b->file);

    if (c)
        return c;
    if (a->line != b->line)
        return a->line < b->line ? -1 : 1;
    if (a->col != b->col)
        return a->col < b->col ? -1 : 1;
    return 0;
}

void tosca_diags_sort(tosca_diags_t *d)
{
    /* insertion sort: stable, and lists are short */
    for (size_t i = 1; i < d->count; i++) {
        tosca_diag_t t = d->items[i];
        size_t j = i;
        while (j > 0 && diag_cmp(&d->items[j - 1], &t) > 0) {
            d->items[j] = d->items[j - 1];
            j--;
        }
        d->items[j] = t;
    }
}

const char *tosca_diag_format(const tosca_diag_t *g, char *buf, size_t size)
{
    const char *sev = g->severity == TOSCA_SEV_ERROR ? "error" : "warning";

    if (g->file[0] && g->line)
        snprintf(buf, size, "%s:%u:%u: %s: %s [%s]", g->file, g->line, g->col, sev, g->message,
                 g->code);
    else if (g->file[0])
        snprintf(buf, size, "%s: %s: %s [%s]", g->file, sev, g->message, g->code);
    else
        snprintf(buf, size, "%s: %s [%s]", sev, g->message, g->code);
    return buf;
}

json_t *tosca_diags_to_json(const tosca_diags_t *d)
{
    json_t *arr = json_array();

    if (arr == NULL)
        return NULL;
    for (size_t i = 0; i < d->count; i++) {
        const tosca_diag_t *g = &d->items[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "severity",
                              g->severity == TOSCA_SEV_ERROR ? "error" : "warning", "code",
                              g->code, "file", g->file, "line", (json_int_t)g->line, "col",
                              (json_int_t)g->col, "message", g->message);
        if (o == NULL || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
