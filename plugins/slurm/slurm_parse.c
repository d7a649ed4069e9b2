/*
 * Parsers of what the Slurm commands on the login node answer (Slurm 22.05
 * and later): `scontrol show job -o` and `scontrol show node -o` lines of
 * key=value pairs, `sacct -P` and `squeue -o` rows, `sinfo -O` rows with
 * '|' after each field, `sbatch --parsable`, the gres strings
 * ("gpu:a100:2(S:0-1)"), the job states and what they mean to the driver,
 * the agent's status file and the node marker (JSON). Pure functions on
 * text: no I/O, nothing of the loop.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "slurm.h"

/* ---- job states ------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum sl_jstate st;
} jstates[] = {
    {"PENDING", SJ_PENDING},     {"REQUEUED", SJ_PENDING},       {"REQUEUE_HOLD", SJ_PENDING},
    {"REQUEUE_FED", SJ_PENDING}, {"CONFIGURING", SJ_STARTING},   {"RUNNING", SJ_RUNNING},
    {"SUSPENDED", SJ_RUNNING},   {"RESIZING", SJ_RUNNING},       {"SIGNALING", SJ_RUNNING},
    {"STOPPED", SJ_RUNNING},     {"COMPLETING", SJ_ENDING},      {"STAGE_OUT", SJ_ENDING},
    {"COMPLETED", SJ_COMPLETED}, {"FAILED", SJ_FAILED},          {"TIMEOUT", SJ_TIMEOUT},
    {"PREEMPTED", SJ_PREEMPTED}, {"NODE_FAIL", SJ_NODE_FAIL},    {"CANCELLED", SJ_CANCELLED},
    {"BOOT_FAIL", SJ_OTHER_END}, {"DEADLINE", SJ_OTHER_END},     {"OUT_OF_MEMORY", SJ_OTHER_END},
    {"REVOKED", SJ_OTHER_END},   {"SPECIAL_EXIT", SJ_OTHER_END},
};

/* "CANCELLED by 0" (sacct) reads as CANCELLED; case as Slurm writes it. */
enum sl_jstate sl_jstate_parse(const char *name)
{
    size_t n = strcspn(name, " +");

    for (size_t i = 0; i < sizeof(jstates) / sizeof(jstates[0]); i++)
        if (strlen(jstates[i].name) == n && strncasecmp(jstates[i].name, name, n) == 0)
            return jstates[i].st;
    return SJ_UNKNOWN;
}

bool sl_jstate_ended(enum sl_jstate st)
{
    return st >= SJ_COMPLETED;
}

bool sl_jstate_broken(enum sl_jstate st)
{
    return st >= SJ_TIMEOUT;
}

/* ---- key=value lines ---------------------------------------------------------------- */

bool sl_kv_get(const char *line, size_t linelen, const char *key, char *val, size_t len)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i + klen < linelen; i++) {
        if ((i > 0 && line[i - 1] != ' ') || strncmp(line + i, key, klen) != 0 ||
            line[i + klen] != '=')
            continue;
        const char *v = line + i + klen + 1;
        size_t n = 0;
        while (v + n < line + linelen && v[n] != ' ' && v[n] != '\n')
            n++;
        if (n >= len)
            n = len - 1;
        memcpy(val, v, n);
        val[n] = '\0';
        return true;
    }
    return false;
}

/* "3:0" -> 3, 0 */
static bool exit_pair(const char *s, int *code, int *sig)
{
    char *end;
    long c = strtol(s, &end, 10), g = 0;

    if (end == s)
        return false;
    if (*end == ':')
        g = strtol(end + 1, NULL, 10);
    *code = (int)c;
    *sig = (int)g;
    return true;
}

/* Slurm writes spaces of reasons as '_'; "None" is no reason. */
static void clean_reason(char *r)
{
    if (strcmp(r, "None") == 0 || strcmp(r, "(null)") == 0) {
        r[0] = '\0';
        return;
    }
    for (; *r; r++)
        if (*r == '_')
            *r = ' ';
}

bool sl_parse_scontrol_job(const char *text, size_t len, struct sl_jobinfo *ji)
{
    char code[32];

    memset(ji, 0, sizeof(*ji));
    for (const char *p = text; p < text + len;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n > 6 && strncmp(p, "JobId=", 6) == 0 &&
            sl_kv_get(p, n, "JobState", ji->state, sizeof(ji->state))) {
            ji->found = true;
            ji->st = sl_jstate_parse(ji->state);
            if (sl_kv_get(p, n, "Reason", ji->reason, sizeof(ji->reason)))
                clean_reason(ji->reason);
            if (sl_kv_get(p, n, "ExitCode", code, sizeof(code)))
                ji->has_exit = exit_pair(code, &ji->exit_code, &ji->exit_signal);
            sl_kv_get(p, n, "NodeList", ji->nodelist, sizeof(ji->nodelist));
            sl_kv_get(p, n, "BatchHost", ji->batch_host, sizeof(ji->batch_host));
            if (strcmp(ji->nodelist, "(null)") == 0)
                ji->nodelist[0] = '\0';
            return true;
        }
        p += n + 1;
    }
    return false;
}

/* One '|'-separated field of a row: field i into buf. */
static bool field(const char *row, size_t n, unsigned i, char *buf, size_t len)
{
    const char *p = row, *end = row + n;

    for (unsigned k = 0; k < i; k++) {
        p = memchr(p, '|', (size_t)(end - p));
        if (p == NULL)
            return false;
        p++;
    }
    const char *bar = memchr(p, '|', (size_t)(end - p));
    size_t m = bar ? (size_t)(bar - p) : (size_t)(end - p);
    if (m >= len)
        m = len - 1;
    memcpy(buf, p, m);
    buf[m] = '\0';
    return true;
}

/* Calls fn(arg, row, n) for each non-empty line. */
static void each_line(const char *text, size_t len, void (*fn)(void *, const char *, size_t),
                      void *arg)
{
    for (const char *p = text; p < text + len;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        if (n > 0)
            fn(arg, p, n);
        p += (nl ? (size_t)(nl - p) : n) + 1;
    }
}

struct sacct_ctx {
    struct sl_jobinfo *ji;
};

static void sacct_row(void *arg, const char *row, size_t n)
{
    struct sl_jobinfo *ji = ((struct sacct_ctx *)arg)->ji;
    char id[SL_JOBID_LEN], code[32];

    if (ji->found || !field(row, n, 0, id, sizeof(id)) || strchr(id, '.') != NULL ||
        !field(row, n, 1, ji->state, sizeof(ji->state)))
        return;
    ji->st = sl_jstate_parse(ji->state);
    ji->found = ji->st != SJ_UNKNOWN;
    if (field(row, n, 2, code, sizeof(code)))
        ji->has_exit = exit_pair(code, &ji->exit_code, &ji->exit_signal);
}

bool sl_parse_sacct(const char *text, size_t len, struct sl_jobinfo *ji)
{
    struct sacct_ctx c = {ji};

    memset(ji, 0, sizeof(*ji));
    each_line(text, len, sacct_row, &c);
    return ji->found;
}

int sl_parse_sbatch(const char *text, size_t len, char id[SL_JOBID_LEN])
{
    size_t n = 0;

    while (len > 0 && (text[0] == ' ' || text[0] == '\n')) {
        text++;
        len--;
    }
    while (n < len && text[n] >= '0' && text[n] <= '9')
        n++;
    if (n == 0 || n >= SL_JOBID_LEN || (n < len && text[n] != ';' && text[n] != '\n'))
        return ORC_EFORMAT;
    memcpy(id, text, n);
    id[n] = '\0';
    return 0;
}

struct squeue_ctx {
    const char *id;
    unsigned active;
    bool found;
};

static void squeue_row(void *arg, const char *row, size_t n)
{
    struct squeue_ctx *c = arg;
    char id[SL_JOBID_LEN], st[SL_FIELD_LEN];

    if (!field(row, n, 0, id, sizeof(id)) || !field(row, n, 1, st, sizeof(st)))
        return;
    if (sl_jstate_ended(sl_jstate_parse(st)) || sl_jstate_parse(st) == SJ_UNKNOWN)
        return;
    c->active++;
    if (c->id && strcmp(c->id, id) == 0)
        c->found = true;
}

unsigned sl_parse_squeue_active(const char *text, size_t len)
{
    struct squeue_ctx c = {NULL, 0, false};

    each_line(text, len, squeue_row, &c);
    return c.active;
}

bool sl_squeue_job_active(const char *text, size_t len, const char *id)
{
    struct squeue_ctx c = {id, 0, false};

    each_line(text, len, squeue_row, &c);
    return c.found;
}

bool sl_parse_node_addr(const char *text, size_t len, char *addr, size_t addrlen)
{
    for (const char *p = text; p < text + len;) {
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n > 9 && strncmp(p, "NodeName=", 9) == 0)
            return sl_kv_get(p, n, "NodeAddr", addr, addrlen) ||
                   sl_kv_get(p, n, "NodeName", addr, addrlen);
        p += n + 1;
    }
    return false;
}

/* ---- the agent's status file ---------------------------------------------------------- */

void sl_parse_agent_status(const char *text, size_t len, const char *wl, struct sl_agent_status *a)
{
    json_t *doc = json_loadb(text, len, 0, NULL), *w, *pick = NULL;
    size_t i;

    memset(a, 0, sizeof(*a));
    a->exit_status = -1;
    json_array_foreach(json_object_get(doc, "workloads"), i, w)
    {
        const char *name = json_string_value(json_object_get(w, "name"));
        if (pick == NULL)
            pick = w; /* the first process, unless one is named wl */
        if (name && strcmp(name, wl) == 0) {
            pick = w;
            break;
        }
    }
    if (json_is_string(json_object_get(pick, "state"))) {
        a->found = true;
        snprintf(a->state, sizeof(a->state), "%s",
                 json_string_value(json_object_get(pick, "state")));
        if (json_is_integer(json_object_get(pick, "exit_status")))
            a->exit_status = (int)json_integer_value(json_object_get(pick, "exit_status"));
    }
    json_decref(doc);
}

/* ---- gres, partitions, sinfo ----------------------------------------------------------- */

/* One item "gpu:a100:2(S:0-1)" or "gpu:2": its count of type (NULL: any). */
static uint32_t gres_item(const char *it, size_t n, const char *type)
{
    char buf[128], *parts[4] = {0}, *save = NULL;
    unsigned np = 0;

    if (n >= sizeof(buf))
        return 0;
    memcpy(buf, it, n);
    buf[n] = '\0';
    buf[strcspn(buf, "(")] = '\0';
    for (char *t = strtok_r(buf, ":", &save); t && np < 4; t = strtok_r(NULL, ":", &save))
        parts[np++] = t;
    if (np < 2 || strcmp(parts[0], "gpu") != 0)
        return 0;
    if (np == 2) /* gpu:N: no type */
        return type == NULL ? (uint32_t)strtoul(parts[1], NULL, 10) : 0;
    if (type != NULL && strcasecmp(parts[1], type) != 0)
        return 0;
    return (uint32_t)strtoul(parts[2], NULL, 10);
}

uint32_t sl_gres_count(const char *gres, const char *type)
{
    uint32_t total = 0;
    int depth = 0;
    const char *start = gres;

    if (type != NULL && type[0] == '\0')
        type = NULL;
    for (const char *p = gres;; p++) { /* commas inside (...) do not split */
        if (*p == '(')
            depth++;
        else if (*p == ')' && depth > 0)
            depth--;
        if (*p == '\0' || (*p == ',' && depth == 0)) {
            total += gres_item(start, (size_t)(p - start), type);
            start = p + 1;
        }
        if (*p == '\0')
            return total;
    }
}

struct part_ctx {
    const char *gres;
    struct sl_part_max *m;
};

static void part_row(void *arg, const char *row, size_t n)
{
    struct part_ctx *c = arg;
    char gres[256], cpus[32], mem[32];
    uint32_t g;

    if (!field(row, n, 0, gres, sizeof(gres)) || !field(row, n, 1, cpus, sizeof(cpus)) ||
        !field(row, n, 2, mem, sizeof(mem)))
        return;
    c->m->rows++;
    g = sl_gres_count(gres, c->gres);
    if (g > c->m->gpus)
        c->m->gpus = g;
    if ((uint32_t)strtoul(cpus, NULL, 10) > c->m->cpus)
        c->m->cpus = (uint32_t)strtoul(cpus, NULL, 10);
    if (strtoull(mem, NULL, 10) > c->m->mem_mb)
        c->m->mem_mb = strtoull(mem, NULL, 10);
}

void sl_parse_part_max(const char *text, size_t len, const char *gres, struct sl_part_max *m)
{
    struct part_ctx c = {gres, m};

    memset(m, 0, sizeof(*m));
    each_line(text, len, part_row, &c);
}

/* A node takes jobs unless it is down, drained, failing, in maintenance,
 * powered off or not responding ("idle*"). */
static bool state_usable(const char *st)
{
    static const char *const bad[] = {"down", "drain", "drng", "fail", "maint", "inval",
                                      "boot", "futr",  "unk",  "npc",  "pow",   "reboot"};

    if (strpbrk(st, "*~#!%$@^") != NULL)
        return false;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (strncasecmp(st, bad[i], strlen(bad[i])) == 0)
            return false;
    return st[0] != '\0';
}

struct sinfo_ctx {
    void (*fn)(void *arg, const struct sl_sinfo_row *row);
    void *arg;
    size_t rows;
};

static void sinfo_row(void *arg, const char *row, size_t n)
{
    struct sinfo_ctx *c = arg;
    struct sl_sinfo_row r;
    char cpus[64], mem[32], amem[32];
    unsigned a = 0, i = 0, o = 0, t = 0;

    memset(&r, 0, sizeof(r));
    if (!field(row, n, 0, r.node, sizeof(r.node)) ||
        !field(row, n, 1, r.partition, sizeof(r.partition)) ||
        !field(row, n, 2, r.gres, sizeof(r.gres)) ||
        !field(row, n, 3, r.gres_used, sizeof(r.gres_used)) ||
        !field(row, n, 4, cpus, sizeof(cpus)) || !field(row, n, 5, mem, sizeof(mem)) ||
        !field(row, n, 6, amem, sizeof(amem)) || !field(row, n, 7, r.state, sizeof(r.state)))
        return;
    r.default_part = strchr(r.partition, '*') != NULL; /* "gpu*": the default partition */
    r.partition[strcspn(r.partition, "*")] = '\0';
    if (sscanf(cpus, "%u/%u/%u/%u", &a, &i, &o, &t) == 4) {
        r.cpus_alloc = a;
        r.cpus_total = t;
    }
    r.mem_mb = strtoull(mem, NULL, 10);
    r.mem_alloc_mb = strtoull(amem, NULL, 10);
    r.usable = state_usable(r.state);
    c->rows++;
    c->fn(c->arg, &r);
}

size_t sl_parse_sinfo(const char *text, size_t len,
                      void (*fn)(void *arg, const struct sl_sinfo_row *row), void *arg)
{
    struct sinfo_ctx c = {fn, arg, 0};

    each_line(text, len, sinfo_row, &c);
    return c.rows;
}

/* ---- the node marker -------------------------------------------------------------------- */

char *sl_node_json(const struct orc_host_api *host, const struct sl_node *n)
{
    json_t *o = json_pack("{si ss si si si sI ss ss ss ss sI}", "version", 1, "name", n->name,
                          "nodes", (int)n->nodes, "gpus", (int)n->gpus, "cpus", (int)n->cpus, "mem",
                          (json_int_t)n->mem, "model", n->model, "partition", n->partition, "gres",
                          n->gres, "runtime", n->runtime, "created_ms", (json_int_t)n->created_ms);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    char *copy = text ? sl_strdup(host, text) : NULL;

    free(text); /* jansson's allocator */
    json_decref(o);
    return copy;
}

static bool copy_str(json_t *o, const char *key, char *dst, size_t len)
{
    const char *v = json_string_value(json_object_get(o, key));

    if (v == NULL || strlen(v) >= len)
        return false;
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

static bool copy_u32(json_t *o, const char *key, uint32_t *dst)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return false;
    *dst = (uint32_t)json_integer_value(v);
    return true;
}

int sl_node_parse(const char *text, size_t len, struct sl_node *n)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    json_t *mem = json_object_get(o, "mem"), *at = json_object_get(o, "created_ms");
    bool ok;

    memset(n, 0, sizeof(*n));
    ok = json_is_object(o) && copy_str(o, "name", n->name, sizeof(n->name)) &&
         copy_u32(o, "nodes", &n->nodes) && copy_u32(o, "gpus", &n->gpus) &&
         copy_u32(o, "cpus", &n->cpus) && json_is_integer(mem) && json_integer_value(mem) >= 0 &&
         copy_str(o, "model", n->model, sizeof(n->model)) &&
         copy_str(o, "partition", n->partition, sizeof(n->partition)) &&
         copy_str(o, "gres", n->gres, sizeof(n->gres)) &&
         copy_str(o, "runtime", n->runtime, sizeof(n->runtime)) && n->nodes >= 1;
    if (ok) {
        n->mem = (uint64_t)json_integer_value(mem);
        n->created_ms = json_is_integer(at) ? (int64_t)json_integer_value(at) : 0;
    }
    json_decref(o);
    return ok ? 0 : ORC_EFORMAT;
}
