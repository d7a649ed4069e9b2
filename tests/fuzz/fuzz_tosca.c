/*
 * libFuzzer target for the TOSCA loader: every input goes through
 * tosca_load_buffer() as a template named "fuzz/input.yaml" (a name with no
 * real directory, so relative and absolute file imports are denied), and a
 * template that loads is planned with no inputs. Inputs starting with "PK"
 * take the CSAR path: the loader tells zip archives apart by content.
 *
 * One tosca_ctx_t is created before the first input and kept, like the daemon
 * does, so the normative types and the imports named in the corpus import
 * map ($CORPUS/indigo/import-map.yaml, or ../shared/corpus/indigo) are parsed
 * once and then served from the context's cache. Without a corpus the target
 * still runs; URL imports are then denied (no allowlist, no network).
 *
 * Build and run with tests/fuzz/fuzz.mk (`make fuzz`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tosca/tosca.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tosca_ctx_t *fuzz_ctx;

/* Finds the corpus import map: $CORPUS (the corpus root or indigo itself),
 * then ../shared/corpus relative to the working directory. */
static const char *find_import_map(char *buf, size_t size)
{
    static const char *const fmts[] = {"%s/indigo/import-map.yaml", "%s/import-map.yaml"};
    const char *roots[2] = {getenv("CORPUS"), "../shared/corpus"};

    for (size_t r = 0; r < 2; r++) {
        if (roots[r] == NULL || roots[r][0] == '\0')
            continue;
        for (size_t i = 0; i < 2; i++) {
            snprintf(buf, size, fmts[i], roots[r]);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return NULL;
}

static tosca_ctx_t *fuzz_ctx_get(void)
{
    char path[4096];
    tosca_options_t opts;
    tosca_diags_t d;

    if (fuzz_ctx)
        return fuzz_ctx;
    tosca_options_init(&opts);
    opts.import_map = find_import_map(path, sizeof(path));
    tosca_diags_init(&d, false);
    if (tosca_ctx_new(&opts, &fuzz_ctx, &d) < 0 && opts.import_map) {
        /* a broken map is not the input's fault: go on without it */
        fprintf(stderr, "fuzz_tosca: import map %s rejected; running without it\n", path);
        tosca_diags_fini(&d);
        tosca_diags_init(&d, false);
        opts.import_map = NULL;
        tosca_ctx_new(&opts, &fuzz_ctx, &d);
    }
    tosca_diags_fini(&d);
    if (fuzz_ctx == NULL) {
        fprintf(stderr, "fuzz_tosca: tosca_ctx_new failed\n");
        abort();
    }
    return fuzz_ctx;
}

/* Walks the diagnostics the way orchctl prints them, so that formatting,
 * sorting and the JSON view see every message the fuzzer provokes. */
static void fuzz_diags_touch(tosca_diags_t *d)
{
    char buf[512];
    json_t *j;

    tosca_diags_sort(d);
    for (size_t i = 0; i < d->count; i++)
        tosca_diag_format(&d->items[i], buf, sizeof(buf));
    j = tosca_diags_to_json(d);
    json_decref(j);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_ctx_get();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tosca_ctx_t *ctx = fuzz_ctx_get();
    tosca_template_t *t = NULL;
    json_t *plan = NULL;
    tosca_diags_t d;
    int rc;

    tosca_diags_init(&d, false);
    /* a zero-length buffer still needs a valid pointer */
    rc = tosca_load_buffer(ctx, "fuzz/input.yaml", size ? (const void *)data : "", size, &t, &d);
    if (rc == 0 && t) {
        tosca_template_version(t);
        rc = tosca_plan(t, NULL, &plan, &d);
        if (rc == 0 && plan == NULL)
            abort(); /* the contract: 0 means a plan */
        json_decref(plan);
    } else if (t) {
        abort(); /* the contract: failure means *out is NULL */
    }
    fuzz_diags_touch(&d);
    tosca_template_free(t);
    tosca_diags_fini(&d);
    return 0;
}
