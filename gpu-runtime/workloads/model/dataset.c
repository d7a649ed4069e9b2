/*
 * The dataset (gm_model.h): K interleaved spiral arms in D dimensions, generated
 * from a seed with input noise and label noise. The training and held-out
 * splits come from distinct random streams of the same seed, so they never
 * share points, and every rank of a distributed run generates the same bytes.
 */
#include <math.h>
#include <string.h>

#include "../../../orchestrator/base.h"
#include "gm_model.h"

#define MAX_SAMPLES 50000000u

void gm_data_spec_default(struct gm_data_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->seed = 1;
    spec->samples = 80000;
    spec->inputs = 2;
    spec->classes = 3;
    spec->label_noise = 0.02f;
    spec->noise = 0.05f;
    spec->turns = 1.5f;
}

/* The noise-free point of arm k at radius t, in double precision. */
static void spiral(const struct gm_data_spec *spec, uint32_t k, double t, double *x)
{
    double a = 2.0 * M_PI * ((double)k / spec->classes + spec->turns * t);

    x[0] = t * cos(a);
    x[1] = t * sin(a);
    for (uint32_t d = 2; d < spec->inputs; d++)
        x[d] = t * sin(a * (double)(d / 2 + 1) + (double)d) / 2.0;
}

void gm_dataset_point(const struct gm_data_spec *spec, uint32_t k, double t, float *x)
{
    double v[GM_MAX_INPUTS];

    if (spec->inputs < 2 || spec->inputs > GM_MAX_INPUTS || spec->classes == 0)
        return;
    spiral(spec, k, t, v);
    for (uint32_t d = 0; d < spec->inputs; d++)
        x[d] = (float)v[d];
}

static int check_spec(const struct gm_data_spec *s, struct gm_error *err)
{
    if (s->samples < 1 || s->samples > MAX_SAMPLES)
        return gm_failf(err, ORC_EINVAL, "samples %u: must be 1..%u", s->samples, MAX_SAMPLES);
    if (s->inputs < 2 || s->inputs > GM_MAX_INPUTS)
        return gm_failf(err, ORC_EINVAL, "data dimension %u: must be 2..%u", s->inputs,
                        GM_MAX_INPUTS);
    if (s->classes < 2 || s->classes > GM_MAX_CLASSES)
        return gm_failf(err, ORC_EINVAL, "classes %u: must be 2..%u", s->classes, GM_MAX_CLASSES);
    if (!(s->label_noise >= 0.0f && s->label_noise <= 1.0f) || !(s->noise >= 0.0f) ||
        !isfinite(s->noise) || !isfinite(s->turns))
        return gm_failf(err, ORC_EINVAL, "label noise must be in [0, 1], noise and turns finite");
    return 0;
}

int gm_dataset_generate(const struct gm_data_spec *spec, bool held_out, struct gm_dataset *ds,
                        struct gm_error *err)
{
    double v[GM_MAX_INPUTS];
    struct gm_rng rng;
    uint32_t n, d = spec->inputs;
    int rc;

    memset(ds, 0, sizeof(*ds));
    rc = check_spec(spec, err);
    if (rc < 0)
        return rc;
    n = held_out ? (spec->samples / 5 > 100 ? spec->samples / 5 : 100) : spec->samples;
    ds->x = orc_malloc((size_t)n * d * sizeof(float));
    ds->y = orc_malloc((size_t)n * sizeof(uint32_t));
    if (ds->x == NULL || ds->y == NULL) {
        gm_dataset_free(ds);
        return gm_failf(err, ORC_ENOMEM, "out of memory for %u samples of %u inputs", n, d);
    }
    ds->n = n;
    ds->inputs = d;
    gm_rng_seed(&rng, spec->seed, held_out ? 2 : 1);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k = gm_rng_below(&rng, spec->classes);
        double t = 0.05 + 0.95 * (1.0 - gm_rng_uniform(&rng)); /* (0.05, 1] */

        spiral(spec, k, t, v);
        for (uint32_t j = 0; j < d; j++)
            ds->x[(size_t)i * d + j] = (float)(v[j] + spec->noise * gm_rng_normal(&rng));
        if (gm_rng_uniform(&rng) < spec->label_noise)
            k = gm_rng_below(&rng, spec->classes);
        ds->y[i] = k;
    }
    return 0;
}

void gm_dataset_stats(const struct gm_dataset *ds, float *mean, float *std)
{
    for (uint32_t j = 0; j < ds->inputs; j++) {
        double s = 0.0, s2 = 0.0;

        for (uint32_t i = 0; i < ds->n; i++) {
            double x = ds->x[(size_t)i * ds->inputs + j];

            s += x;
            s2 += x * x;
        }
        double mu = ds->n ? s / ds->n : 0.0;
        double var = ds->n ? s2 / ds->n - mu * mu : 1.0;

        mean[j] = (float)mu;
        std[j] = var > 1e-12 ? (float)sqrt(var) : 1e-6f;
    }
}

void gm_dataset_free(struct gm_dataset *ds)
{
    if (ds == NULL)
        return;
    orc_free(ds->x);
    orc_free(ds->y);
    ds->x = NULL;
    ds->y = NULL;
    ds->n = 0;
}
