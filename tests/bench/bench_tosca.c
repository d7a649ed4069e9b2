/*
 * bench_tosca: how fast libtosca turns TOSCA templates into plans, measured
 * against the floor set by a bare libyaml event parse of the same bytes.
 *
 * 1. Corpus: every template of $CORPUS/indigo/{examples,templates} (with the
 *    corpus import map) is loaded from memory and planned with no inputs,
 *    through one tosca_ctx_t reused across iterations so imported type files
 *    are parsed once and served from the cache, as in the daemon. Templates
 *    the library rejects count too: the time is what the library spends on
 *    them. Each measurement repeats whole corpus passes for >= 2 s; 5 rounds,
 *    median reported, the bare parse interleaved with ours in the same run.
 * 2. Memory: in a child process with a counting allocator installed (so the
 *    timings above run on the plain C allocator): heap through libtosca's
 *    allocator and jansson per template, allocation counts, arena bytes.
 * 3. Scaling: synthetic TOSCA 1.3 templates with 1k..8k node templates built
 *    in memory; time per node and its ratio to the 1k size (flat = linear).
 *    Rounds visit every size in turn; medians again.
 *
 * Times are process CPU time (single-threaded, CPU-bound work; wall time on a
 * shared machine also counts the neighbours). Figures go to stdout. Exit
 * status: 0, or 1 if the library returned ORC_ENOMEM or a child crashed
 * (never because of the figures themselves).
 * Environment: CORPUS (the shared corpus root, or its indigo/ directory),
 * BENCH_MIN_SECONDS (default 2), BENCH_ROUNDS (default 5, at most 15),
 * BENCH_MAX_NODES (default 8000), BENCH_SKIP_CORPUS=1 (scaling only),
 * BENCH_CLOCK=wall, BENCH_DUMP_DIR=dir (write the synthetic templates there,
 * to run orchctl or a profiler on them).
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <yaml.h> /* libyaml's: the bench rule uses -iquote tosca */

#include "internal.h" /* arena counters only (bench_arena_bytes) */
#include "tosca/tosca.h"

#define BENCH_MAX_FILES 1024
#define BENCH_TARGET_RATIO 3.0

struct bench_file {
    char *path; /* as found under the corpus, used as the template's name */
    const char *short_name;
    char *data;
    size_t len;
    int load_rc; /* outcome of the warm-up load */
    int plan_rc; /* 1: not planned (load failed) */
    size_t errors;
    const char *first_code;
};

struct bench_corpus {
    char root[4096]; /* .../indigo, canonical (realpath) */
    char import_map[4200];
    struct bench_file files[BENCH_MAX_FILES];
    size_t count;
    size_t bytes;
};

/* One timed workload over a set of buffers. */
struct bench_work {
    tosca_ctx_t *ctx;
    const struct bench_file *files;
    size_t count;
    double load_s; /* accumulated by timed ours_one() calls */
    double plan_s;
    double free_s; /* json_decref of the plan, tosca_template_free, diags */
};

static int bench_failed; /* ORC_ENOMEM seen, or a child crashed */
static double min_seconds = 2.0;
static int rounds = 5;

/* ---- small helpers ---- */

static clockid_t bench_clock = CLOCK_PROCESS_CPUTIME_ID;

/* CPU time of this process by default: the workloads are single-threaded and
 * CPU-bound, and on a shared machine wall time also counts other programs.
 * BENCH_CLOCK=wall measures wall-clock time instead. */
static double now_s(void)
{
    struct timespec ts;

    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long max_rss_kib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (fp == NULL)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else if (buf) {
            buf[n] = '\0';
            *len = (size_t)n;
        }
    }
    fclose(fp);
    return buf;
}

static void note_rc(int rc, const char *what, const char *name)
{
    if (rc == ORC_ENOMEM) {
        if (!bench_failed)
            fprintf(stderr, "bench_tosca: %s of %s returned ORC_ENOMEM\n", what, name);
        bench_failed = 1;
    }
}

/* ---- the two workloads ---- */

/* Load + validate + plan of one buffer, then everything freed; returns the
 * load's rc. timed: the three phases are added to w's counters. */
static int ours_one(struct bench_work *w, const struct bench_file *f, bool timed)
{
    tosca_template_t *t = NULL;
    json_t *plan = NULL;
    tosca_diags_t d;
    double t0 = 0, t1 = 0, t2 = 0;
    int rc;

    tosca_diags_init(&d, false);
    if (timed)
        t0 = now_s();
    rc = tosca_load_buffer(w->ctx, f->path, f->data, f->len, &t, &d);
    if (timed)
        t1 = t2 = now_s();
    note_rc(rc, "load", f->path);
    if (rc == 0) {
        int prc = tosca_plan(t, NULL, &plan, &d);
        if (timed)
            t2 = now_s();
        note_rc(prc, "plan", f->path);
        json_decref(plan);
    }
    tosca_template_free(t);
    tosca_diags_fini(&d);
    if (timed) {
        double t3 = now_s();
        w->load_s += t1 - t0;
        w->plan_s += t2 - t1;
        w->free_s += t3 - t2;
    }
    return rc;
}

/* Bare libyaml: events until STREAM_END (or the first error), each deleted. */
static size_t bare_one(const struct bench_file *f)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    size_t events = 0;
    bool done = false;

    if (!yaml_parser_initialize(&parser))
        return 0;
    yaml_parser_set_input_string(&parser, (const unsigned char *)f->data, f->len);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev))
            break;
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
        events++;
    }
    yaml_parser_delete(&parser);
    return events;
}

static volatile size_t bare_sink; /* keeps the bare loop from being optimised out */

/* passes whole passes over w's files; returns seconds. */
static double run_ours(struct bench_work *w, long passes)
{
    double t0 = now_s();

    for (long p = 0; p < passes; p++)
        for (size_t i = 0; i < w->count; i++)
            ours_one(w, &w->files[i], true);
    return now_s() - t0;
}

static double run_bare(const struct bench_work *w, long passes)
{
    double t0 = now_s();
    size_t sink = 0;

    for (long p = 0; p < passes; p++)
        for (size_t i = 0; i < w->count; i++)
            sink += bare_one(&w->files[i]);
    bare_sink = sink;
    return now_s() - t0;
}

/* Passes needed for one measurement to last at least min_s. */
static long calibrate(struct bench_work *w, bool ours, double min_s)
{
    long passes = 1;

    for (;;) {
        double s = ours ? run_ours(w, passes) : run_bare(w, passes);
        if (s >= min_s / 4 || passes >= (1L << 30)) {
            double per = s / (double)passes;
            long need = (long)(min_s / (per > 1e-9 ? per : 1e-9)) + 1;
            return need > passes ? need : passes;
        }
        passes *= 4;
    }
}

struct bench_result {
    double ours_s; /* per pass, median */
    double bare_s;
    double share[3]; /* of ours: load+validate, plan, free */
};

static void shares(const struct bench_work *w, double share[3])
{
    double sum = w->load_s + w->plan_s + w->free_s;

    share[0] = sum > 0 ? w->load_s / sum : 0;
    share[1] = sum > 0 ? w->plan_s / sum : 0;
    share[2] = sum > 0 ? w->free_s / sum : 0;
}

/* rounds x (ours, bare) interleaved, each >= min_s; medians per pass. */
static struct bench_result measure(struct bench_work *w, double min_s, int nrounds)
{
    long po = calibrate(w, true, min_s), pb = calibrate(w, false, min_s);
    double ours[16], bare[16];
    struct bench_result r;

    w->load_s = w->plan_s = w->free_s = 0;
    for (int i = 0; i < nrounds; i++) {
        ours[i] = run_ours(w, po) / (double)po;
        bare[i] = run_bare(w, pb) / (double)pb;
    }
    shares(w, r.share);
    r.ours_s = median(ours, nrounds);
    r.bare_s = median(bare, nrounds);
    return r;
}

/* ---- the corpus ---- */

static bool has_yaml_ext(const char *name)
{
    const char *dot = strrchr(name, '.');

    return dot && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0);
}

static int cmp_file(const void *a, const void *b)
{
    return strcmp(((const struct bench_file *)a)->path, ((const struct bench_file *)b)->path);
}

static void corpus_scan(struct bench_corpus *c, const char *dir, int depth)
{
    DIR *dp = opendir(dir);
    struct dirent *de;

    if (dp == NULL || depth > 8) {
        if (dp)
            closedir(dp);
        return;
    }
    while ((de = readdir(dp)) != NULL && c->count < BENCH_MAX_FILES) {
        char path[4096];
        struct stat st;
        struct bench_file *f = &c->files[c->count];

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            corpus_scan(c, path, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode) || !has_yaml_ext(de->d_name))
            continue;
        f->data = read_all(path, &f->len);
        if (f->data == NULL)
            continue;
        f->path = strdup(path);
        c->bytes += f->len;
        c->count++;
    }
    closedir(dp);
}

/* Finds the corpus: $CORPUS/indigo, $CORPUS itself, ../shared/corpus/indigo. */
static bool corpus_find(struct bench_corpus *c)
{
    const char *env = getenv("CORPUS");
    const char *cands[3][2] = {{env, "/indigo"}, {env, ""}, {"../shared/corpus", "/indigo"}};

    for (int i = 0; i < 3; i++) {
        if (cands[i][0] == NULL || cands[i][0][0] == '\0')
            continue;
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s%s", cands[i][0], cands[i][1]);
        /* canonical, as a daemon would name its files: no "..", no links */
        if (realpath(dir, c->root) == NULL)
            continue;
        snprintf(c->import_map, sizeof(c->import_map), "%s/import-map.yaml", c->root);
        if (access(c->import_map, R_OK) == 0)
            return true;
    }
    return false;
}

static bool corpus_load(struct bench_corpus *c)
{
    static const char *const subdirs[] = {"examples", "templates"};
    size_t root_len;

    if (!corpus_find(c))
        return false;
    for (size_t i = 0; i < 2; i++) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/%s", c->root, subdirs[i]);
        corpus_scan(c, dir, 0);
    }
    qsort(c->files, c->count, sizeof(c->files[0]), cmp_file);
    root_len = strlen(c->root);
    for (size_t i = 0; i < c->count; i++)
        c->files[i].short_name = c->files[i].path + root_len + 1;
    return c->count > 0;
}

static int ctx_open(const char *import_map, size_t max_file_bytes, tosca_ctx_t **ctx)
{
    tosca_options_t o;
    tosca_diags_t d;
    char buf[1024];
    int rc;

    tosca_options_init(&o);
    o.import_map = import_map;
    o.limits.max_file_bytes = max_file_bytes;
    tosca_diags_init(&d, false);
    rc = tosca_ctx_new(&o, ctx, &d);
    for (size_t i = 0; rc < 0 && i < d.count; i++)
        fprintf(stderr, "bench_tosca: %s\n", tosca_diag_format(&d.items[i], buf, sizeof(buf)));
    tosca_diags_fini(&d);
    if (rc < 0)
        fprintf(stderr, "bench_tosca: tosca_ctx_new: %s\n", orc_strerror(rc));
    note_rc(rc, "ctx_new", import_map ? import_map : "-");
    return rc;
}

/* One untimed load+plan of f; keeps the outcome in f (and warms the cache). */
static void probe_one(tosca_ctx_t *ctx, struct bench_file *f)
{
    tosca_template_t *t = NULL;
    json_t *plan = NULL;
    tosca_diags_t d;

    tosca_diags_init(&d, false);
    f->load_rc = tosca_load_buffer(ctx, f->path, f->data, f->len, &t, &d);
    note_rc(f->load_rc, "load", f->path);
    f->plan_rc = 1;
    if (f->load_rc == 0) {
        f->plan_rc = tosca_plan(t, NULL, &plan, &d);
        note_rc(f->plan_rc, "plan", f->path);
    }
    f->errors = d.errors;
    f->first_code = NULL;
    for (size_t k = 0; k < d.count && f->first_code == NULL; k++)
        if (d.items[k].severity == TOSCA_SEV_ERROR)
            f->first_code = d.items[k].code; /* static string */
    json_decref(plan);
    tosca_template_free(t);
    tosca_diags_fini(&d);
}

/* Load failures one by one; plan failures (NULL inputs: templates with
 * required inputs fail there) counted by their first error code. */
static void corpus_outcomes(const struct bench_corpus *c)
{
    const char *codes[32];
    size_t counts[32], ncodes = 0, loaded = 0, planned = 0;

    for (size_t i = 0; i < c->count; i++) {
        const struct bench_file *f = &c->files[i];
        size_t k = 0;

        loaded += f->load_rc == 0;
        planned += f->plan_rc == 0;
        if (f->load_rc != 0) {
            printf("  rejected at load: %s: %s, %zu errors, first [%s]\n", f->short_name,
                   orc_err_name(f->load_rc), f->errors, f->first_code ? f->first_code : "-");
            continue;
        }
        if (f->plan_rc == 0)
            continue;
        while (k < ncodes && strcmp(codes[k], f->first_code ? f->first_code : "-") != 0)
            k++;
        if (k == ncodes && ncodes < 32) {
            codes[ncodes] = f->first_code ? f->first_code : "-";
            counts[ncodes++] = 0;
        }
        if (k < ncodes)
            counts[k]++;
    }
    for (size_t k = 0; k < ncodes; k++)
        printf("  rejected at plan (no inputs given): %zu templates, first error [%s]\n", counts[k],
               codes[k]);
    printf("outcome: %zu templates loaded and validated, %zu planned, %zu rejected at load\n",
           loaded, planned, c->count - loaded);
}

/* The templates where we are furthest above the bare parse. */
static void corpus_slowest(struct bench_work *w, const struct bench_corpus *c)
{
    struct slow {
        double ours, bare;
        size_t i;
    } *v = calloc(c->count, sizeof(*v)), tmp;
    const int iters = 20;

    if (v == NULL)
        return;
    for (size_t i = 0; i < c->count; i++) {
        struct bench_work one = {.ctx = w->ctx, .files = &c->files[i], .count = 1};
        v[i].ours = run_ours(&one, iters) / iters;
        v[i].bare = run_bare(&one, iters) / iters;
        v[i].i = i;
    }
    for (size_t i = 0; i < c->count; i++) /* selection of the top 5 by ratio */
        for (size_t j = i + 1; i < 5 && j < c->count; j++)
            if (v[j].ours / v[j].bare > v[i].ours / v[i].bare) {
                tmp = v[i];
                v[i] = v[j];
                v[j] = tmp;
            }
    printf("  highest ratios (one template, %d runs each):\n", iters);
    for (size_t i = 0; i < 5 && i < c->count; i++) {
        const struct bench_file *f = &c->files[v[i].i];
        printf("    %-52s %6.1f KiB %8.1f us %7.1f us %5.1fx%s\n", f->short_name,
               (double)f->len / 1024, v[i].ours * 1e6, v[i].bare * 1e6, v[i].ours / v[i].bare,
               f->load_rc ? " (rejected)" : "");
    }
    free(v);
}

static void print_rates(const char *what, double per_pass, size_t n, size_t bytes)
{
    printf("  %-26s %12.0f %14.1f %10.1f\n", what, (double)n / per_pass, per_pass / (double)n * 1e6,
           (double)bytes / per_pass / 1e6);
}

static void bench_corpus(struct bench_corpus *c)
{
    struct bench_work w = {0};
    struct bench_result r;
    double ratio;

    if (ctx_open(c->import_map, 0, &w.ctx) < 0)
        return;
    w.files = c->files;
    w.count = c->count;
    for (size_t i = 0; i < c->count; i++) /* outcomes; fills the type cache */
        probe_one(w.ctx, &c->files[i]);
    corpus_outcomes(c);
    r = measure(&w, min_seconds, rounds);
    ratio = r.ours_s / r.bare_s;
    printf("\n  %-26s %12s %14s %10s\n", "median of rounds", "templates/s", "us/template", "MB/s");
    print_rates("libtosca load+validate+plan", r.ours_s, c->count, c->bytes);
    print_rates("bare libyaml event parse", r.bare_s, c->count, c->bytes);
    printf("  ratio ours / bare: %.2fx (target <= %.1fx: %s)\n", ratio, BENCH_TARGET_RATIO,
           ratio <= BENCH_TARGET_RATIO ? "met" : "NOT met");
    printf("  split of our time: load+validate %.0f%%, plan %.0f%%, free (plan JSON, "
           "template) %.0f%%\n",
           r.share[0] * 100, r.share[1] * 100, r.share[2] * 100);
    corpus_slowest(&w, c);
    printf("  peak RSS after the corpus runs (ru_maxrss): %.1f MiB\n",
           (double)max_rss_kib() / 1024);
    tosca_ctx_free(w.ctx);
}

/* ---- memory: a counting allocator, in a child process ---- */

#define MEM_HDR 16u /* keeps the 16-byte alignment malloc gives */

static struct {
    size_t live, peak, allocs;
} mem;

static void mem_add(size_t n)
{
    mem.live += n;
    mem.allocs++;
    if (mem.live > mem.peak)
        mem.peak = mem.live;
}

static void *cnt_malloc(size_t n)
{
    unsigned char *p = malloc(n + MEM_HDR);

    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof(n));
    mem_add(n);
    return p + MEM_HDR;
}

static void *cnt_calloc(size_t n, size_t size)
{
    unsigned char *p;

    if (size && n > (SIZE_MAX - MEM_HDR) / size)
        return NULL;
    p = cnt_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void cnt_free(void *q)
{
    unsigned char *p = q;
    size_t n;

    if (p == NULL)
        return;
    memcpy(&n, p - MEM_HDR, sizeof(n));
    mem.live -= n;
    free(p - MEM_HDR);
}

static void *cnt_realloc(void *q, size_t n)
{
    unsigned char *p = q, *np;
    size_t old;

    if (p == NULL)
        return cnt_malloc(n);
    memcpy(&old, p - MEM_HDR, sizeof(old));
    np = realloc(p - MEM_HDR, n + MEM_HDR);
    if (np == NULL)
        return NULL;
    memcpy(np, &n, sizeof(n));
    mem.live -= old;
    mem_add(n);
    return np + MEM_HDR;
}

/* Bytes in the arenas of a template: topology objects, the entry file's
 * YAML tree and its own types (reads library internals, see internal.h). */
static size_t bench_arena_bytes(const tosca_template_t *t)
{
    size_t n = t->arena.used_total;

    for (size_t i = 0; i < t->owned_files.count; i++) {
        const tosca_file_t *f = t->owned_files.items[i];
        n += f->arena.used_total + (f->doc ? f->doc->arena.used_total : 0);
    }
    return n;
}

struct mem_row {
    size_t peak, allocs, arena, bytes;
};

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;

    return x < y ? -1 : x > y;
}

static size_t median_size(size_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_size);
    return v[n / 2];
}

static void mem_one(tosca_ctx_t *ctx, const struct bench_file *f, struct mem_row *row)
{
    size_t base = mem.live, allocs = mem.allocs;
    tosca_template_t *t = NULL;
    json_t *plan = NULL;
    tosca_diags_t d;

    mem.peak = mem.live;
    tosca_diags_init(&d, false);
    if (tosca_load_buffer(ctx, f->path, f->data, f->len, &t, &d) == 0) {
        row->arena = bench_arena_bytes(t);
        note_rc(tosca_plan(t, NULL, &plan, &d), "plan", f->path);
    }
    json_decref(plan);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    row->peak = mem.peak - base;
    row->allocs = mem.allocs - allocs;
    row->bytes = f->len;
}

static void mem_report(const struct mem_row *rows, size_t n, size_t cache)
{
    size_t *v = calloc(n, sizeof(*v));
    size_t max_peak = 0, max_arena = 0, sum_arena = 0, sum_bytes = 0, with_arena = 0;

    if (v == NULL)
        return;
    printf("\nmemory per template (counting allocator, libtosca + jansson heap; libyaml's\n"
           "own parser buffers not included), %zu templates:\n",
           n);
    printf("  type cache in the context after warm-up (normative + imported types): %.1f KiB\n",
           (double)cache / 1024);
    for (size_t i = 0; i < n; i++) {
        v[i] = rows[i].peak;
        max_peak = rows[i].peak > max_peak ? rows[i].peak : max_peak;
        max_arena = rows[i].arena > max_arena ? rows[i].arena : max_arena;
        if (rows[i].arena) {
            sum_arena += rows[i].arena;
            sum_bytes += rows[i].bytes;
            with_arena++;
        }
    }
    printf("  heap peak during load+plan: median %.1f KiB, max %.1f KiB\n",
           (double)median_size(v, n) / 1024, (double)max_peak / 1024);
    for (size_t i = 0; i < n; i++)
        v[i] = rows[i].allocs;
    printf("  allocations per template:   median %zu\n", median_size(v, n));
    if (with_arena)
        printf("  arena bytes (templates that load): mean %.1f KiB, max %.1f KiB, "
               "%.1f arena bytes per input byte\n",
               (double)sum_arena / (double)with_arena / 1024, (double)max_arena / 1024,
               (double)sum_arena / (double)sum_bytes);
    free(v);
}

static void mem_child(const struct bench_corpus *c)
{
    struct bench_work w = {0};
    struct mem_row *rows = calloc(c->count, sizeof(*rows));

    if (rows == NULL || tosca_replace_allocator(cnt_malloc, cnt_realloc, cnt_calloc, cnt_free) < 0)
        _exit(2);
    json_set_alloc_funcs(cnt_malloc, cnt_free);
    if (ctx_open(c->import_map, 0, &w.ctx) < 0)
        _exit(1);
    w.files = c->files;
    w.count = c->count;
    for (size_t i = 0; i < c->count; i++) /* warm the type cache */
        ours_one(&w, &c->files[i], false);
    for (size_t i = 0; i < c->count; i++)
        mem_one(w.ctx, &c->files[i], &rows[i]);
    mem_report(rows, c->count, mem.live);
    fflush(stdout);
    _exit(bench_failed ? 1 : 0);
}

/* Runs fn in a child (a crash there must not hide the rest). */
static void in_child(void (*fn)(const struct bench_corpus *), const struct bench_corpus *c)
{
    pid_t pid;
    int status;

    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("bench_tosca: fork");
        return;
    }
    if (pid == 0)
        fn(c);
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "bench_tosca: memory pass killed by signal %d\n", WTERMSIG(status));
        else
            fprintf(stderr, "bench_tosca: memory pass failed\n");
        bench_failed = 1;
    }
}

/* ---- scaling: synthetic templates ---- */

struct sbuf {
    char *s;
    size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap ? b->cap * 2 : 65536;
        b->s = realloc(b->s, b->cap);
        if (b->s == NULL) {
            fprintf(stderr, "bench_tosca: out of memory building a template\n");
            exit(1);
        }
    }
}

static const char synth_head[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                                 "description: synthetic scaling template (bench_tosca)\n"
                                 "capability_types:\n"
                                 "  bench.capabilities.GPUCompute:\n"
                                 "    derived_from: tosca.capabilities.Compute\n"
                                 "    properties:\n"
                                 "      num_gpus:\n"
                                 "        type: integer\n"
                                 "        required: false\n"
                                 "        constraints:\n"
                                 "          - greater_or_equal: 0\n"
                                 "node_types:\n"
                                 "  bench.nodes.GPUCompute:\n"
                                 "    derived_from: tosca.nodes.Compute\n"
                                 "    capabilities:\n"
                                 "      host:\n"
                                 "        type: bench.capabilities.GPUCompute\n"
                                 "  bench.nodes.App:\n"
                                 "    derived_from: tosca.nodes.SoftwareComponent\n"
                                 "    properties:\n"
                                 "      port:\n"
                                 "        type: integer\n"
                                 "        default: 8080\n"
                                 "      workers:\n"
                                 "        type: integer\n"
                                 "        required: false\n"
                                 "      peer_port:\n"
                                 "        type: integer\n"
                                 "        required: false\n"
                                 "topology_template:\n"
                                 "  inputs:\n"
                                 "    cpus:\n"
                                 "      type: integer\n"
                                 "      default: 4\n"
                                 "    mem:\n"
                                 "      type: scalar-unit.size\n"
                                 "      default: 8 GB\n"
                                 "    gpus:\n"
                                 "      type: integer\n"
                                 "      default: 1\n"
                                 "    workers:\n"
                                 "      type: integer\n"
                                 "      default: 2\n"
                                 "  node_templates:\n";

/* Groups of 4 node templates: one GPU host and three applications on it
 * (one plain, one depending on it by name, one reading its port). */
static void synth_group(struct sbuf *b, size_t g)
{
    sb_printf(b,
              "    host_%zu:\n"
              "      type: bench.nodes.GPUCompute\n"
              "      capabilities:\n"
              "        host:\n"
              "          properties:\n"
              "            num_cpus: { get_input: cpus }\n"
              "            mem_size: { get_input: mem }\n"
              "            num_gpus: { get_input: gpus }\n"
              "        os:\n"
              "          properties:\n"
              "            type: linux\n",
              g);
    sb_printf(b,
              "    app_%zu_a:\n"
              "      type: bench.nodes.App\n"
              "      properties:\n"
              "        workers: { get_input: workers }\n"
              "      requirements:\n"
              "        - host: host_%zu\n",
              g, g);
    sb_printf(b,
              "    app_%zu_b:\n"
              "      type: bench.nodes.App\n"
              "      properties:\n"
              "        port: 9090\n"
              "        peer_port: { get_property: [ app_%zu_a, port ] }\n"
              "      requirements:\n"
              "        - host: host_%zu\n"
              "        - dependency: app_%zu_a\n",
              g, g, g, g);
    sb_printf(b,
              "    app_%zu_c:\n"
              "      type: bench.nodes.App\n"
              "      properties:\n"
              "        workers: { get_property: [ app_%zu_a, workers ] }\n"
              "      requirements:\n"
              "        - host: host_%zu\n"
              "        - dependency: app_%zu_b\n",
              g, g, g, g);
}

static char *synth_template(size_t nodes, size_t *len)
{
    struct sbuf b = {0};
    size_t groups = nodes / 4;

    sb_printf(&b, "%s", synth_head);
    for (size_t g = 0; g < groups; g++)
        synth_group(&b, g);
    sb_printf(&b, "  outputs:\n");
    for (size_t o = 0; o < nodes / 100; o++) {
        size_t g = o * 25 % groups;
        sb_printf(&b,
                  "    endpoint_%zu:\n"
                  "      value: { concat: [ \"http://\", { get_attribute: [ host_%zu, "
                  "public_address ] }, \":\", { get_property: [ app_%zu_b, port ] } ] }\n",
                  o, g, g);
    }
    *len = b.len;
    return b.s;
}

/* BENCH_DUMP_DIR=dir writes the synthetic templates there (for orchctl, perf). */
static void synth_dump(const struct bench_file *f)
{
    const char *dir = getenv("BENCH_DUMP_DIR");
    char path[4096];
    FILE *fp;

    if (dir == NULL || dir[0] == '\0')
        return;
    snprintf(path, sizeof(path), "%s/%s", dir, f->path);
    fp = fopen(path, "wb");
    if (fp == NULL || fwrite(f->data, 1, f->len, fp) != f->len)
        fprintf(stderr, "bench_tosca: cannot write %s\n", path);
    if (fp)
        fclose(fp);
}

struct scale_row {
    struct bench_file f;
    char name[64];
    size_t nodes;
    long passes_ours, passes_bare;
    double ours[16], bare[16];
    double ours_s, bare_s, share[3];
    int rc;
};

static void scale_prepare(tosca_ctx_t *ctx, size_t nodes, struct scale_row *row)
{
    struct bench_work w = {.ctx = ctx, .files = &row->f, .count = 1};

    snprintf(row->name, sizeof(row->name), "synthetic-%zu.yaml", nodes);
    row->nodes = nodes;
    row->f.path = row->name;
    row->f.data = synth_template(nodes, &row->f.len);
    synth_dump(&row->f);
    probe_one(ctx, &row->f);
    row->rc = row->f.load_rc ? row->f.load_rc : row->f.plan_rc;
    if (row->rc)
        fprintf(stderr, "bench_tosca: %s rejected: %s, first error [%s]\n", row->name,
                orc_err_name(row->rc), row->f.first_code ? row->f.first_code : "-");
    row->passes_ours = calibrate(&w, true, min_seconds / 8);
    row->passes_bare = calibrate(&w, false, min_seconds / 8);
}

/* Rounds go over all sizes in turn, so that a noisy spell on a shared
 * machine spreads over the sizes instead of bending one of them. */
static size_t scale_measure(tosca_ctx_t *ctx, struct scale_row *rows, size_t max_nodes)
{
    size_t n = 0;

    for (size_t nodes = 1000; nodes <= max_nodes && n < 8; nodes *= 2)
        scale_prepare(ctx, nodes, &rows[n++]);
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            struct bench_work w = {.ctx = ctx, .files = &rows[i].f, .count = 1};
            rows[i].ours[r] = run_ours(&w, rows[i].passes_ours) / (double)rows[i].passes_ours;
            rows[i].bare[r] = run_bare(&w, rows[i].passes_bare) / (double)rows[i].passes_bare;
            double sh[3];
            shares(&w, sh);
            for (int k = 0; k < 3; k++)
                rows[i].share[k] += sh[k] / rounds;
        }
    for (size_t i = 0; i < n; i++) {
        rows[i].ours_s = median(rows[i].ours, rounds);
        rows[i].bare_s = median(rows[i].bare, rounds);
        free(rows[i].f.data);
    }
    return n;
}

static void bench_scaling(void)
{
    const char *env = getenv("BENCH_MAX_NODES");
    size_t max_nodes = env ? strtoul(env, NULL, 10) : 8000;
    static struct scale_row rows[8];
    double bgrowth = 1;
    size_t n;
    tosca_ctx_t *ctx;

    if (ctx_open(NULL, 256u << 20, &ctx) < 0)
        return;
    n = scale_measure(ctx, rows, max_nodes);
    tosca_ctx_free(ctx);
    printf("\n  %6s %7s %9s %17s %9s %8s %9s %8s %7s\n", "nodes", "KiB", "ours ms",
           "load/plan/free %", "us/node", "vs 1k", "bare ms", "us/node", "ratio");
    for (size_t i = 0; i < n; i++) {
        const struct scale_row *r = &rows[i];
        double per = r->ours_s / (double)r->nodes, per1 = rows[0].ours_s / (double)rows[0].nodes;
        double bper = r->bare_s / (double)r->nodes, bper1 = rows[0].bare_s / (double)rows[0].nodes;
        printf("  %6zu %7.0f %9.1f %7.0f/%3.0f/%3.0f %12.2f %7.2fx %9.2f %8.2f %6.1fx%s\n",
               r->nodes, (double)r->f.len / 1024, r->ours_s * 1e3, r->share[0] * 100,
               r->share[1] * 100, r->share[2] * 100, per * 1e6, per / per1, r->bare_s * 1e3,
               bper * 1e6, r->ours_s / r->bare_s, r->rc ? " (rejected)" : "");
        bgrowth = bper / bper1;
    }
    if (n) {
        const struct scale_row *l = &rows[n - 1];
        double growth = (l->ours_s / (double)l->nodes) / (rows[0].ours_s / (double)rows[0].nodes);
        printf("  growth: time/node at %zu nodes is %.2fx the 1k figure (%s; bare parse %.2fx)\n",
               l->nodes, growth, growth <= 1.3 ? "linear" : "NOT linear", bgrowth);
    }
    printf("  peak RSS after scaling (ru_maxrss): %.1f MiB\n", (double)max_rss_kib() / 1024);
}

/* ---- main ---- */

int main(void)
{
    static struct bench_corpus corpus;
    const char *env;
    struct timespec w0, w1;

    env = getenv("BENCH_MIN_SECONDS");
    if (env && atof(env) > 0)
        min_seconds = atof(env);
    env = getenv("BENCH_CLOCK");
    if (env && strcmp(env, "wall") == 0)
        bench_clock = CLOCK_MONOTONIC;
    env = getenv("BENCH_ROUNDS");
    if (env && atoi(env) > 0 && atoi(env) <= 15)
        rounds = atoi(env);
    clock_gettime(CLOCK_MONOTONIC, &w0);
    printf("== bench_tosca: libtosca load+validate+plan vs bare libyaml parse ==\n");
    printf("libyaml %s, jansson %s; %d rounds, >= %.1f s per measurement, medians; "
           "%s time\n",
           yaml_get_version_string(), JANSSON_VERSION, rounds, min_seconds,
           bench_clock == CLOCK_MONOTONIC ? "wall-clock" : "process CPU");
    env = getenv("BENCH_SKIP_CORPUS");
    if (env && atoi(env)) {
        printf("\n-- corpus: skipped (BENCH_SKIP_CORPUS)\n");
    } else if (!corpus_load(&corpus)) {
        printf("\n-- corpus: not found (set CORPUS to the shared corpus); skipped\n");
    } else {
        printf("\n-- corpus: %s (%zu templates from examples/ and templates/, %.1f KiB, "
               "import map)\n",
               corpus.root, corpus.count, (double)corpus.bytes / 1024);
        bench_corpus(&corpus);
        in_child(mem_child, &corpus);
    }
    printf("\n-- scaling: synthetic TOSCA 1.3, 1 host + 3 apps per 4 nodes, 1 output per 100\n");
    bench_scaling();
    for (size_t i = 0; i < corpus.count; i++) {
        free(corpus.files[i].path);
        free(corpus.files[i].data);
    }
    clock_gettime(CLOCK_MONOTONIC, &w1);
    printf("\ntotal bench time %.0f s (wall); %s\n",
           (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) * 1e-9,
           bench_failed ? "FAILED (ORC_ENOMEM or crash, see stderr)" : "ok");
    return bench_failed ? 1 : 0;
}
