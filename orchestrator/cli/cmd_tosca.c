/*
 * orchctl validate / plan: run libtosca locally on template files or CSARs,
 * print diagnostics as `file:line:col: severity: message [code]` (or JSON),
 * and for plan the plan JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tosca/tosca.h"

#define MAX_URLS 32

struct tosca_args {
    const char **files;
    int nfiles;
    json_t *inputs;
    tosca_options_t opts;
    const char *urls[MAX_URLS + 1];
    const char *roots[MAX_URLS + 1];
    int nurls, nroots;
    bool json;
};

static int parse_option(struct tosca_args *a, int argc, char **argv, int *i)
{
    const char *opt = argv[*i];
    const char *val = *i + 1 < argc ? argv[*i + 1] : NULL;

    if (strcmp(opt, "--strict") == 0)
        a->opts.strict = true;
    else if (strcmp(opt, "--json") == 0)
        a->json = true;
    else if (val == NULL)
        return cli_usage_error("unknown option '%s' or missing value", opt);
    else if (++*i && strcmp(opt, "--inputs") == 0)
        return cli_input_kv(a->inputs, val);
    else if (strcmp(opt, "--inputs-file") == 0)
        return cli_inputs_file(a->inputs, val);
    else if (strcmp(opt, "--import-map") == 0)
        a->opts.import_map = val;
    else if (strcmp(opt, "--allow-url") == 0 && a->nurls < MAX_URLS)
        a->urls[a->nurls++] = val;
    else if (strcmp(opt, "--allow-root") == 0 && a->nroots < MAX_URLS)
        a->roots[a->nroots++] = val;
    else
        return cli_usage_error("unknown option '%s'", opt);
    return 0;
}

static int parse_args(struct tosca_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    tosca_options_init(&a->opts);
    a->opts.import_map = getenv("ORCHCTL_IMPORT_MAP");
    if (a->opts.import_map && !*a->opts.import_map)
        a->opts.import_map = NULL;
    a->inputs = json_object();
    a->files = calloc((size_t)argc, sizeof(*a->files));
    if (a->inputs == NULL || a->files == NULL)
        return CLI_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        int rc;
        if (strcmp(argv[i], "--") == 0) {
            while (++i < argc)
                a->files[a->nfiles++] = argv[i];
            break;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            a->files[a->nfiles++] = argv[i];
            continue;
        }
        rc = parse_option(a, argc, argv, &i);
        if (rc != 0)
            return rc;
    }
    a->opts.url_allowlist = a->urls;
    a->opts.allowed_roots = a->roots;
    if (a->nfiles == 0)
        return cli_usage_error("%s needs at least one template file", argv[0]);
    return 0;
}

static void free_args(struct tosca_args *a)
{
    json_decref(a->inputs);
    free(a->files);
}

/* Loads one file, and with inputs also binds them through a plan. */
static int check_one(tosca_ctx_t *ctx, struct tosca_args *a, const char *file,
                     tosca_diags_t *d, json_t **plan)
{
    tosca_template_t *t = NULL;
    int rc = tosca_load_file(ctx, file, &t, d);

    if (rc == 0 && (plan || json_object_size(a->inputs)))
        rc = tosca_plan(t, a->inputs, plan ? plan : &(json_t *){NULL}, d);
    if (rc == 0 && plan == NULL && json_object_size(a->inputs) == 0)
        rc = 0;
    tosca_template_free(t);
    return rc;
}

static json_t *file_report(const char *file, const tosca_diags_t *d, int rc)
{
    return json_pack("{s:s,s:b,s:i,s:i,s:o}", "file", file, "valid", rc == 0, "errors",
                     (json_int_t)d->errors, "warnings", (json_int_t)d->warnings,
                     "diagnostics", tosca_diags_to_json(d));
}

static int run_validate(tosca_ctx_t *ctx, struct tosca_args *a)
{
    json_t *report = json_array();
    int invalid = 0;
    size_t warnings = 0;

    for (int i = 0; i < a->nfiles; i++) {
        tosca_diags_t d;
        json_t *plan = NULL;
        int rc;
        tosca_diags_init(&d, a->opts.strict);
        rc = check_one(ctx, a, a->files[i], &d, json_object_size(a->inputs) ? &plan : NULL);
        json_decref(plan);
        tosca_diags_sort(&d);
        invalid += rc != 0;
        warnings += d.warnings;
        if (a->json)
            json_array_append_new(report, file_report(a->files[i], &d, rc));
        else
            cli_print_diags(&d, stdout);
        tosca_diags_fini(&d);
    }
    if (a->json) {
        json_t *top = json_pack("{s:b,s:o}", "valid", invalid == 0, "files", report);
        json_dumpf(top, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(top);
    } else {
        json_decref(report);
        printf("%d file%s: %d valid, %d invalid, %zu warning%s\n", a->nfiles,
               a->nfiles == 1 ? "" : "s", a->nfiles - invalid, invalid, warnings,
               warnings == 1 ? "" : "s");
    }
    return invalid ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static int with_context(int argc, char **argv, bool plan)
{
    struct tosca_args a;
    tosca_ctx_t *ctx = NULL;
    tosca_diags_t d;
    int rc = parse_args(&a, argc, argv);

    if (rc != 0) {
        free_args(&a);
        return rc;
    }
    if (plan && a.nfiles != 1) {
        free_args(&a);
        return cli_usage_error("plan takes exactly one template file");
    }
    tosca_diags_init(&d, a.opts.strict);
    if (tosca_ctx_new(&a.opts, &ctx, &d) < 0) {
        cli_print_diags(&d, stderr);
        tosca_diags_fini(&d);
        free_args(&a);
        return CLI_EXIT_USAGE;
    }
    if (plan) {
        json_t *p = NULL;
        rc = check_one(ctx, &a, a.files[0], &d, &p);
        tosca_diags_sort(&d);
        cli_print_diags(&d, stderr);
        if (rc == 0) {
            json_dumpf(p, stdout, JSON_INDENT(2));
            fputc('\n', stdout);
        }
        json_decref(p);
        rc = rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    } else {
        rc = run_validate(ctx, &a);
    }
    tosca_diags_fini(&d);
    tosca_ctx_free(ctx);
    free_args(&a);
    return rc;
}

int cmd_validate(int argc, char **argv)
{
    return with_context(argc, argv, false);
}

int cmd_plan(int argc, char **argv)
{
    return with_context(argc, argv, true);
}
